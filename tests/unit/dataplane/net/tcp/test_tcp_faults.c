/*
 * Unit tests for dataplane/net/tcp: error paths driven through doubles that fail on demand
 * or at random (tcp_harness.h: h_fail_alloc, h_fail_output), every error counter of the
 * stack reached, and one test per defect of the TCP review (issue 16), each with crafted
 * segments through tcp_input and every segment the stack sends checked.
 */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <rte_byteorder.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "icmp.h"
#include "tcp_harness.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define ACK RTE_TCP_ACK_FLAG
#define SYN RTE_TCP_SYN_FLAG
#define FIN RTE_TCP_FIN_FLAG
#define RST RTE_TCP_RST_FLAG

static struct tcp_config cfg;

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

static void
fill(uint8_t *b, uint32_t len, uint32_t base)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)((base + i) * 7 + 3);
}

/* A segment from peer p with every field given. */
static void
seg(struct h_peer *p, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win, const void *data,
    uint32_t len)
{
	struct h_seg s = { .flags = flags,
		.seq = seq,
		.ack = ack,
		.win = win,
		.data = data,
		.len = len,
		.sport = p->port };

	h_input(&s);
}

/* Count captured segments with payload (or with the given flag). */
static unsigned
n_data_segs(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < h_ncap; i++)
		n += h_cap[i].len > 0;
	return n;
}

static bool
any_rst(void)
{
	for (unsigned i = 0; i < h_ncap; i++)
		if (h_cap[i].flags & RST)
			return true;
	return false;
}

/* The SACK blocks of a captured segment, host order; returns how many. */
static unsigned
sack_of(const struct h_out *o, uint32_t (*blk)[2])
{
	const uint8_t *p = o->data - o->optlen;
	unsigned i = 0, n = 0;

	while (i < o->optlen && p[i] != 0) {
		if (p[i] == 1) {
			i++;
			continue;
		}
		if (p[i] == 5)
			for (unsigned b = 0; b < (p[i + 1] - 2u) / 8; b++, n++) {
				blk[n][0] = (uint32_t)p[i + 2 + 8 * b] << 24 |
				    p[i + 3 + 8 * b] << 16 | p[i + 4 + 8 * b] << 8 |
				    p[i + 5 + 8 * b];
				blk[n][1] = (uint32_t)p[i + 6 + 8 * b] << 24 |
				    p[i + 7 + 8 * b] << 16 | p[i + 8 + 8 * b] << 8 |
				    p[i + 9 + 8 * b];
			}
		i += p[i + 1];
	}
	return n;
}

/* --- the doubles fail: every error counter reached --- */

/* Finding 5: the first data segment's mbuf allocation fails with nothing in flight. Before,
 * no timer was armed and the data stayed unsent for good. */
static void
test_alloc_fail_first_segment_retried(void **state)
{
	static uint8_t buf[100];
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41000, false);
	fill(buf, sizeof(buf), 0);
	h_clear();
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_fail_alloc.next = 1; /* the segment's mbuf */
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(MBUF_FAIL), 1);
	h_advance_ms(999);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1); /* the retransmission timer, armed by the failure */
	assert_int_equal(n_data_segs(), 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].len, sizeof(buf));
	assert_memory_equal(h_cap[0].data, buf, sizeof(buf));
}

/* The same when ipv4_output_src fails (no route, no headroom): the segment is gone. */
static void
test_output_fail_first_segment_retried(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41001, false);
	h_fail_output.next = 1;
	h_clear();
	assert_int_equal(tcp_write(c, "hello", 5), 5);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(h_fail_output.failed, 1);
	h_advance_ms(1000);
	assert_int_equal(n_data_segs(), 1);
	assert_memory_equal(h_cap[0].data, "hello", 5);
}

/* Finding 5: an ACK whose mbuf allocation failed was marked sent (TF_ACKNOW cleared, the
 * delayed-ACK timer stopped): the peer waited for its RTO. Now it goes a delack later. */
static void
test_alloc_fail_ack_still_owed(void **state)
{
	static uint8_t buf[2 * 1460];
	struct h_peer p;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_establish(&p, 41002, false);
	h_clear();
	h_send(&p, ACK, buf, 1460);
	h_send(&p, ACK, buf + 1460, 1460); /* every second full segment: ACK now */
	h_fail_alloc.next = 1;
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(MBUF_FAIL), 1);
	h_advance_ms(cfg.delack_ms);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 2 * 1460);
}

/* Random failures of both doubles: 20 kB still arrive whole and in order. */
static void
test_random_failures_bulk(void **state)
{
	static uint8_t buf[20000], got[20000];
	uint32_t have = 0;
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41003, false);
	fill(buf, sizeof(buf), 5);
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_fail_alloc = (struct h_fail){ .one_in = 4, .seed = 1 };
	h_fail_output = (struct h_fail){ .one_in = 5, .seed = 2 };
	for (int round = 0; round < 2000 && have < sizeof(buf); round++) {
		h_clear();
		h_flush();
		h_advance_ms(50);
		for (unsigned i = 0; i < h_ncap; i++) {
			const struct h_out *o = &h_cap[i];
			uint32_t off = o->seq - (p.iss + 1);

			if (o->len == 0 || off > have || off + o->len <= have)
				continue;
			memcpy(got + have, o->data + (have - off), off + o->len - have);
			have = off + o->len;
		}
		p.rcv_nxt = p.iss + 1 + have;
		h_send(&p, ACK, NULL, 0);
	}
	assert_int_equal(have, sizeof(buf));
	assert_memory_equal(got, buf, sizeof(buf));
	assert_true(h_fail_alloc.failed > 0 && h_fail_output.failed > 0);
	assert_true(H_CNT(MBUF_FAIL) > 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	h_fail_alloc.one_in = h_fail_output.one_in = 0;
}

/* tcp_recv splitting a segment copies into a fresh mbuf: when there is none, nothing is
 * lost (the data stays queued). */
static void
test_alloc_fail_recv_split(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct rte_mbuf *m;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41004, false);
	h_send(&p, ACK, "0123456789", 10);
	h_fail_alloc.next = 1;
	assert_null(tcp_recv(c, 4));
	assert_int_equal(H_CNT(MBUF_FAIL), 1);
	assert_int_equal(tcp_recv_avail(c), 10);
	m = tcp_recv(c, 4);
	assert_non_null(m);
	assert_int_equal(m->pkt_len, 4);
	rte_pktmbuf_free(m);
	assert_int_equal(tcp_recv_avail(c), 6);
}

/* tcp_write cannot get a single mbuf: -ENOBUFS, nothing queued. */
static void
test_alloc_fail_write(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41005, false);
	h_fail_alloc.next = 1;
	assert_int_equal(tcp_write(c, "x", 1), -ENOBUFS);
	assert_int_equal(H_CNT(MBUF_FAIL), 1);
	assert_int_equal(tcp_send_space(c), cfg.sndbuf_bytes);
}

/* FLOW_TABLE_FULL: every TCB taken; a passive open past it gets a cookie whose ACK finds no
 * TCB, an active open is refused. */
static void
test_flow_table_full(void **state)
{
	struct h_seg s = { .flags = SYN, .win = 65535 };
	struct tcp_conn *out;
	uint32_t cookie;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.max_flows = 8;
	h_setup(&cfg);
	for (uint16_t i = 0; i < 8; i++) {
		s.sport = (uint16_t)(42000 + i);
		s.seq = 1000u * i;
		h_input(&s);
	}
	assert_int_equal(tcp_flow_count(&h_lc), 8);
	h_clear();
	s.sport = 42100;
	s.seq = 777;
	h_input(&s);
	assert_int_equal(H_CNT(COOKIE_SENT), 1);
	cookie = h_cap[0].seq;
	s = (struct h_seg){
		.flags = ACK, .seq = 778, .ack = cookie + 1, .win = 65535, .sport = 42100
	};
	h_input(&s);
	assert_int_equal(H_CNT(FLOW_TABLE_FULL), 1);
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 80, &h_ops, &h_app, &out), -ENOSPC);
	assert_int_equal(H_CNT(FLOW_TABLE_FULL), 2);
}

/* HASH_ADD_FAIL: the flow hash refuses the insert (filled here with foreign keys). */
static void
test_hash_add_fail(void **state)
{
	struct h_seg s = { .flags = SYN, .seq = 5, .win = 65535, .sport = 42200 };
	struct tcp_flow_key k = { .rip = 0x090012c6u, .lip = H_OUR_IP, .rport = 1 };
	unsigned n = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.max_flows = 8;
	h_setup(&cfg);
	for (uint16_t port = 1; port < 1000; port++) {
		k.lport = port;
		if (rte_hash_add_key(h_lc.tcp->flows, &k) < 0)
			break;
		n++;
	}
	assert_true(n >= 8 && n < 999);
	h_clear();
	h_input(&s);
	assert_int_equal(H_CNT(HASH_ADD_FAIL), 1);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	for (uint16_t port = 1; port <= n; port++) {
		k.lport = port;
		rte_hash_del_key(h_lc.tcp->flows, &k);
	}
}

/* NO_EPHEMERAL_PORT: every 4-tuple towards dst:80 is in use. */
static void
test_no_ephemeral_port(void **state)
{
	struct tcp_flow_key k = { .rip = 0x090012c6u, .lip = H_OUR_IP };
	struct tcp_conn *out;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.max_flows = 65536;
	h_setup(&cfg);
	k.rport = rte_cpu_to_be_16(80);
	for (uint32_t port = 1024; port <= 65535; port++) {
		k.lport = rte_cpu_to_be_16((uint16_t)port);
		assert_true(rte_hash_add_key_data(h_lc.tcp->flows, &k, &cfg) >= 0);
	}
	assert_int_equal(
	    tcp_connect(&h_lc, 0, 0x090012c6u, 80, &h_ops, &h_app, &out), -EADDRNOTAVAIL);
	assert_int_equal(H_CNT(NO_EPHEMERAL_PORT), 1);
	/* another destination port has them all free */
	assert_int_equal(tcp_connect(&h_lc, 0, 0x090012c6u, 81, &h_ops, &h_app, &out), 0);
	for (uint32_t port = 1024; port <= 65535; port++) {
		k.lport = rte_cpu_to_be_16((uint16_t)port);
		rte_hash_del_key(h_lc.tcp->flows, &k);
	}
}

/* ERR_INTERNAL: the send queue holds fewer bytes than its count says (a bug, made here by
 * hand): the segment is not built, the error counted. */
static void
test_err_internal(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41006, false);
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 0, NULL, 0); /* window shut: nothing goes */
	assert_int_equal(tcp_write(c, "abc", 3), 3);
	h_flush();
	c->sndq.bytes += 50;
	h_clear();
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 65535, NULL, 0);
	h_flush();
	assert_int_equal(H_CNT(ERR_INTERNAL), 1);
	assert_int_equal(n_data_segs(), 0);
	c->sndq.bytes -= 50;
}

/* --- the review's defects (issue 16) --- */

/* Finding 1: after an RTO rewound snd_nxt, our pure ACKs carried it: a peer that already
 * holds more takes them as old. They carry SND.MAX. */
static void
test_ack_carries_snd_max_after_rto(void **state)
{
	static uint8_t buf[3 * 1460];
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41010, false);
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(n_data_segs(), 3);
	h_clear();
	h_advance_ms(1000); /* RTO: the first segment again, cwnd one segment */
	assert_int_equal(n_data_segs(), 1);
	h_clear();
	h_send(&p, ACK, "ping", 4);
	h_advance_ms(cfg.delack_ms);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].len, 0);
	assert_int_equal(h_cap[0].seq, p.iss + 1 + 3 * 1460);
	/* and so does a RST */
	h_clear();
	tcp_abort(c);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1 + 3 * 1460);
}

/* Finding 1: the ACK field of a fully duplicate segment was never processed: after both
 * sides timed out, each one's retransmissions carried the only ACK of the other's data. */
static void
test_duplicate_segment_ack_processed(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t old_seq;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41011, false);
	assert_int_equal(tcp_write(c, "0123456789", 10), 10);
	h_flush();
	old_seq = p.snd_nxt;
	h_send(&p, ACK, "abcd", 4); /* acks nothing of ours yet */
	h_flush();
	assert_int_equal(tcp_recv_avail(c), 4);
	/* the peer's RTO: the same segment again, now acknowledging our 10 bytes */
	h_clear();
	seg(&p, ACK, old_seq, p.iss + 1 + 10, 65535, "abcd", 4);
	h_flush();
	assert_int_equal(tcp_recv_avail(c), 4); /* the text was a duplicate */
	assert_int_equal(tcp_send_space(c), cfg.sndbuf_bytes);
	assert_int_equal(H_CNT(DUP_ACKS), 0);
	assert_int_equal(h_cap[0].flags, ACK); /* the duplicate is still answered */
	h_clear();
	h_advance_ms(5000);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_int_equal(n_data_segs(), 0);
}

/* Finding 3: a fast retransmit sent a full MSS at SND.UNA although only 1000 bytes had gone
 * (the peer's window): past SND.MAX, and the peer's ACK of it was then "unsent data". */
static void
test_retransmit_una_stays_below_snd_max(void **state)
{
	static uint8_t buf[3000];
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41012, false);
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 1000, NULL, 0);
	h_clear();
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(n_data_segs(), 1);
	assert_int_equal(h_cap[0].len, 1000);
	h_clear();
	for (int i = 0; i < 3; i++) /* three duplicate ACKs (same window) */
		seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 1000, NULL, 0);
	assert_int_equal(H_CNT(FAST_REXMT), 1);
	assert_int_equal(n_data_segs(), 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].len, 1000);
	/* the peer ACKs all of it: accepted (not beyond SND.MAX) */
	seg(&p, ACK, p.snd_nxt, p.iss + 1 + 1000, 1000, NULL, 0);
	assert_int_equal(H_CNT(BAD_ACK), 0);
	assert_int_equal(tcp_send_space(c), cfg.sndbuf_bytes - 2000);
}

/* Finding 6: one segment with an invalid ACK and a huge TSval set TS.Recent, and every later
 * segment failed PAWS. */
static void
test_ts_recent_only_after_valid_ack(void **state)
{
	uint8_t opts[12] = { 1, 1, 8, 10, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0 };
	struct h_peer p;
	struct tcp_conn *c;
	struct h_seg s;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41013, true);
	s = (struct h_seg){ .flags = ACK,
		.seq = p.snd_nxt,
		.ack = p.rcv_nxt + 100000, /* acknowledges what we never sent */
		.win = 65535,
		.opts = opts,
		.optlen = 12,
		.data = "evil",
		.len = 4,
		.sport = p.port };
	h_input(&s);
	assert_int_equal(H_CNT(BAD_ACK), 1);
	h_send(&p, ACK, "good", 4);
	assert_int_equal(H_CNT(PAWS), 0);
	assert_int_equal(tcp_recv_avail(c), 4);
}

/* Finding 2: a peer that shuts its window and vanishes: the probes go unanswered and the
 * connection ends after data_retries of them (it stayed ESTABLISHED for good). */
static void
test_zero_window_probes_give_up(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.data_retries = 4;
	h_setup(&cfg);
	c = h_establish(&p, 41014, false);
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 0, NULL, 0);
	assert_int_equal(tcp_write(c, "stuck", 5), 5);
	h_flush();
	for (int s = 0; s < 30 * 60 && h_app.closes == 0; s++)
		h_advance_ms(1000);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_TIMEOUT);
	assert_int_equal(H_CNT(PERSIST_PROBE), 4);
	assert_int_equal(H_CNT(PERSIST_TIMEOUT), 1);
	assert_true(any_rst());
}

/* Finding 2: a peer that answers every probe keeps the connection (the existing test), but
 * once the app closed it, an orphan stuck behind a shut window ends too (it stayed in
 * FIN_WAIT_1 for good). Probes back off without inflating the RTO. */
static void
test_orphan_zero_window_times_out(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	int probes = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.data_retries = 4;
	h_setup(&cfg);
	c = h_establish(&p, 41015, false);
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 0, NULL, 0);
	assert_int_equal(tcp_write(c, "stuck", 5), 5);
	tcp_close(c);
	h_flush();
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_1);
	for (int s = 0; s < 60 * 60 && h_app.closes == 0; s++) {
		h_clear();
		h_advance_ms(1000);
		if (h_ncap > 0 && !any_rst()) { /* a probe: answered, window still shut */
			probes++;
			seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 0, NULL, 0);
			h_flush();
		}
	}
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_TIMEOUT);
	assert_int_equal(H_CNT(ORPHAN_TIMEOUT), 1);
	assert_int_equal(probes, 4);
}

/* Finding 11: persist backoff doubled rto_ms itself; after the window opened, the next RTO
 * came 8 s late. */
static void
test_persist_backoff_keeps_rto(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41016, false);
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 0, NULL, 0);
	assert_int_equal(tcp_write(c, "data", 4), 4);
	h_flush();
	h_advance_ms(1000 + 2000 + 4000); /* three probes */
	assert_int_equal(H_CNT(PERSIST_PROBE), 3);
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 65535, NULL, 0);
	h_clear();
	h_flush();
	assert_int_equal(n_data_segs(), 1); /* the data goes, and is lost */
	h_clear();
	h_advance_ms(999);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(n_data_segs(), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
}

/* A passive open whose SYN offers SACK; returns our ISS. */
static uint32_t
open_sack(uint16_t port, uint32_t isn)
{
	uint8_t opts[8] = { 2, 4, 0x05, 0xb4, 1, 1, 4, 2 };
	struct h_seg s = {
		.flags = SYN, .seq = isn, .win = 65535, .opts = opts, .optlen = 8, .sport = port
	};
	uint32_t iss;

	h_clear();
	h_input(&s);
	iss = h_cap[0].seq;
	s = (struct h_seg){
		.flags = ACK, .seq = isn + 1, .ack = iss + 1, .win = 65535, .sport = port
	};
	h_input(&s);
	assert_non_null(h_app.c);
	return iss;
}

/* Finding 8: SACK blocks went lowest first; with more holes than blocks the newest data was
 * never reported. The block holding the segment just received goes first (RFC 2018 4). */
static void
test_sack_newest_first(void **state)
{
	uint32_t iss, blk[4][2];
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	iss = open_sack(41020, 1000);
	for (uint32_t i = 0; i < 5; i++) {
		struct h_seg s = { .flags = ACK,
			.seq = 1001 + 100 + 200 * i,
			.ack = iss + 1,
			.win = 65535,
			.data = "sacked",
			.len = 6,
			.sport = 41020 };
		unsigned n;

		h_clear();
		h_input(&s);
		h_flush();
		assert_int_equal(h_ncap, 1);
		n = sack_of(&h_cap[0], blk);
		assert_int_equal(n, i + 1 < 4 ? i + 1 : 4);
		assert_int_equal(blk[0][0], s.seq);
		assert_int_equal(blk[0][1], s.seq + 6);
		if (n > 1)
			assert_int_equal(blk[1][0], s.seq - 200); /* then the one before */
	}
}

/* Finding 10: one duplicate ACK per flow per rx burst; a sender without SACK needs one per
 * out-of-order segment to see three. */
static void
test_dupack_per_ooo_segment(void **state)
{
	struct h_peer p;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_establish(&p, 41021, false);
	h_clear();
	for (uint32_t i = 1; i <= 3; i++) /* one burst: no flush between them */
		seg(&p, ACK, p.snd_nxt + 100 * i, p.rcv_nxt, 65535, "x", 1);
	assert_int_equal(h_ncap, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(h_cap[i].flags, ACK);
		assert_int_equal(h_cap[i].ack, p.snd_nxt);
	}
	h_flush();
	assert_int_equal(h_ncap, 3); /* nothing more owed */
}

/* Finding 9: a cookie ACK was accepted although no cookie had been sent (2^24 blind ACKs
 * forge a connection). Only while cookies are in use. */
static void
test_cookie_only_when_sent_recently(void **state)
{
	struct tcp_seg ts;
	struct h_seg s;
	uint32_t cookie;
	uint16_t mss;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	memset(&ts, 0, sizeof(ts));
	ts.key.rip = H_PEER_IP;
	ts.key.lip = H_OUR_IP;
	ts.key.rport = rte_cpu_to_be_16(41030);
	ts.key.lport = rte_cpu_to_be_16(H_PORT);
	ts.seq = 5000;
	cookie = tcp_cookie_make(h_lc.tcp, &ts, &mss); /* what a lucky guess would hit */
	h_lc.tcp->cookie_used = false;                 /* ... with no cookie ever sent */
	s = (struct h_seg){
		.flags = ACK, .seq = 5001, .ack = cookie + 1, .win = 65535, .sport = 41030
	};
	h_clear();
	h_input(&s);
	assert_int_equal(H_CNT(COOKIE_VALID), 0);
	assert_int_equal(h_app.accepts, 0);
	assert_int_equal(H_CNT(UNKNOWN_FLOW), 1);
	assert_int_equal(h_cap[0].flags, RST);
}

/* Finding 9: a peer that said MSS 100 got 216-byte segments from a cookie connection. */
static void
test_cookie_honours_small_mss(void **state)
{
	uint8_t mss100[4] = { 2, 4, 0, 100 };
	struct h_seg s = { .flags = SYN, .seq = 1, .win = 65535, .sport = 41031 };
	static uint8_t buf[1000];
	uint32_t cookie;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.max_half_open = 1;
	h_setup(&cfg);
	h_input(&s); /* takes the only half-open slot */
	h_clear();
	s = (struct h_seg){
		.flags = SYN, .seq = 9000, .win = 65535, .opts = mss100, .optlen = 4, .sport = 41032
	};
	h_input(&s);
	assert_int_equal(H_CNT(COOKIE_SENT), 1);
	assert_true(h_cap[0].mss <= 100);
	cookie = h_cap[0].seq;
	s = (struct h_seg){
		.flags = ACK, .seq = 9001, .ack = cookie + 1, .win = 65535, .sport = 41032
	};
	h_input(&s);
	assert_int_equal(H_CNT(COOKIE_VALID), 1);
	assert_non_null(h_app.c);
	h_clear();
	assert_int_equal(tcp_write(h_app.c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_true(n_data_segs() >= 10);
	for (unsigned i = 0; i < h_ncap; i++)
		assert_true(h_cap[i].len <= 100);
}

/* Finding 7: a flow gets at most one challenge ACK per 500 ms ... */
static void
test_challenge_ack_per_flow(void **state)
{
	struct h_peer p, q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_establish(&p, 41040, false);
	h_establish(&q, 41041, false);
	h_clear();
	for (int i = 0; i < 3; i++) {
		seg(&p, ACK, p.snd_nxt, p.rcv_nxt + 5000, 65535, NULL, 0); /* unsent data acked */
		h_flush();
	}
	assert_int_equal(h_ncap, 1);
	assert_int_equal(H_CNT(CHALLENGE_ACK_FLOW_LIMITED), 2);
	seg(&q, ACK, q.snd_nxt, q.rcv_nxt + 5000, 65535, NULL, 0); /* another flow: its own */
	h_flush();
	assert_int_equal(h_ncap, 2);
	h_advance_ms(500);
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt + 5000, 65535, NULL, 0);
	h_flush();
	assert_int_equal(h_ncap, 3);
}

/* ... and the lcore's budget is drawn anew each second (a fixed one is CVE-2016-5696's side
 * channel): between half and one and a half challenge_ack_per_s, not always the same. */
static void
test_challenge_ack_budget_random(void **state)
{
	static struct h_peer peers[24];
	unsigned seen[16], distinct = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.challenge_ack_per_s = 4;
	h_setup(&cfg);
	for (unsigned i = 0; i < 24; i++)
		h_establish(&peers[i], (uint16_t)(41100 + i), false);
	for (unsigned sec = 0; sec < 16; sec++) {
		h_advance_ms(1000);
		h_clear();
		for (unsigned i = 0; i < 24; i++) {
			struct h_peer *p = &peers[i];

			seg(p, ACK, p->snd_nxt, p->rcv_nxt + 5000, 65535, NULL, 0);
		}
		h_flush();
		seen[sec] = h_ncap;
		assert_true(h_ncap >= 2 && h_ncap <= 6);
		distinct += sec > 0 && seen[sec] != seen[0];
	}
	assert_true(distinct > 0);
}

/* Finding 11: after a SYN-ACK timeout (no RTT measured) data starts with a 3 s RTO. */
static void
test_rto_3s_after_synack_timeout(void **state)
{
	struct h_seg s = { .flags = SYN, .seq = 100, .win = 65535, .sport = 41050 };
	uint32_t iss;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_input(&s);
	iss = h_cap[0].seq;
	h_advance_ms(1000);
	assert_int_equal(H_CNT(SYNACK_REXMT), 1);
	s = (struct h_seg){
		.flags = ACK, .seq = 101, .ack = iss + 1, .win = 65535, .sport = 41050
	};
	h_input(&s);
	assert_non_null(h_app.c);
	assert_int_equal(tcp_write(h_app.c, "x", 1), 1);
	h_flush();
	h_clear();
	h_advance_ms(2999);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(n_data_segs(), 1);
}

/* Finding 11: an ACK owed in SYN_RECEIVED (an unacceptable segment) was never sent: the
 * SYN-ACK, which carries it, goes again. */
static void
test_synrcvd_owed_ack_sent(void **state)
{
	struct h_seg s = { .flags = SYN, .seq = 100, .win = 65535, .sport = 41051 };
	uint32_t iss;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_input(&s);
	iss = h_cap[0].seq;
	h_clear();
	s = (struct h_seg){
		.flags = ACK, .seq = 101 + 1000000, .ack = iss + 1, .win = 65535, .sport = 41051
	};
	h_input(&s);
	assert_int_equal(H_CNT(OUT_OF_WINDOW), 1);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, SYN | ACK);
	assert_int_equal(h_cap[0].ack, 101);
}

/* Finding 11: cwnd was not reduced after idle (RFC 5681 4.1): after a long pause the whole
 * grown window went out in one burst. */
static void
test_cwnd_restart_after_idle(void **state)
{
	static uint8_t buf[60 * 1460];
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.sndbuf_bytes = sizeof(buf);
	cfg.rcvbuf_bytes = 65536;
	h_setup(&cfg);
	c = h_establish(&p, 41052, false);
	/* grow cwnd: 20 segments sent and acknowledged one by one */
	assert_int_equal(tcp_write(c, buf, 20 * 1460), 20 * 1460);
	for (int i = 0; i < 40; i++) {
		h_flush();
		p.rcv_nxt = SEQ_LT(p.rcv_nxt + 1460, p.iss + 1 + 20 * 1460) ? p.rcv_nxt + 1460
									    : p.iss + 1 + 20 * 1460;
		seg(&p, ACK, p.snd_nxt, p.rcv_nxt, 65535, NULL, 0);
	}
	assert_true(c->cwnd > 10u * 1460);
	h_advance_ms(10000);
	h_clear();
	assert_int_equal(tcp_write(c, buf, 40 * 1460), 40 * 1460);
	h_flush();
	assert_int_equal(n_data_segs(), 10);
	assert_int_equal(H_CNT(CWND_IDLE_RESTART), 1);
}

/* An ICMP "fragmentation needed" (mtu) quoting our segment to port with sequence seq. */
static void
icmp_frag_needed(uint16_t port, uint32_t seq, uint16_t mtu)
{
	uint8_t b[20 + 8 + 20 + 8] = { 0 };
	struct rte_ipv4_hdr *outer = (struct rte_ipv4_hdr *)b,
			    *in = (struct rte_ipv4_hdr *)(b + 28);
	uint16_t sport = rte_cpu_to_be_16(H_PORT), dport = rte_cpu_to_be_16(port), ck;
	uint32_t seq_be = rte_cpu_to_be_32(seq);
	struct rte_mbuf *m = rte_pktmbuf_alloc(h_lc.pool);

	outer->version_ihl = 0x45;
	outer->next_proto_id = IPPROTO_ICMP;
	outer->src_addr = 0xfe0012c6u;
	outer->dst_addr = H_OUR_IP;
	b[20] = 3; /* destination unreachable */
	b[21] = 4; /* fragmentation needed */
	b[26] = (uint8_t)(mtu >> 8);
	b[27] = (uint8_t)mtu;
	in->version_ihl = 0x45;
	in->next_proto_id = IPPROTO_TCP;
	in->src_addr = H_OUR_IP;
	in->dst_addr = H_PEER_IP;
	memcpy(b + 48, &sport, 2);
	memcpy(b + 50, &dport, 2);
	memcpy(b + 52, &seq_be, 4);
	ck = (uint16_t)~rte_raw_cksum(b + 20, sizeof(b) - 20);
	memcpy(b + 22, &ck, 2);
	assert_non_null(m);
	memcpy(rte_pktmbuf_append(m, sizeof(b)), b, sizeof(b));
	rte_pktmbuf_adj(m, 20);
	m->l3_len = 20;
	icmp_input(&h_lc, m);
}

/* Finding 11: DF is always set and ICMP "fragmentation needed" was ignored: a path with a
 * smaller MTU black-holed every full-sized segment. The flow's MSS now follows it. */
static void
test_pmtu_frag_needed(void **state)
{
	static uint8_t buf[3 * 1460];
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41060, false);
	fill(buf, sizeof(buf), 1);
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(h_cap[0].len, 1460);
	/* a forgery: a sequence number not in flight changes nothing */
	icmp_frag_needed(41060, p.iss + 1 + 100000, 1000);
	assert_int_equal(H_CNT(PMTU_IGNORED), 1);
	h_clear();
	icmp_frag_needed(41060, p.iss + 1, 1000);
	assert_int_equal(H_CNT(PMTU_REDUCED), 1);
	h_flush();
	assert_true(n_data_segs() >= 4);
	assert_int_equal(h_cap[0].seq, p.iss + 1); /* in flight again, in 960-byte segments */
	for (unsigned i = 0; i < h_ncap; i++)
		assert_true(h_cap[i].len <= 1000 - 40);
	assert_memory_equal(h_cap[0].data, buf, h_cap[0].len);
}

/* Part 2, Limited Transmit (RFC 3042): with the window full, the first two duplicate ACKs
 * each let one new segment go, so a small window still gets to three; cwnd does not keep the
 * loan. */
static void
test_limited_transmit(void **state)
{
	static uint8_t buf[14 * 1460];
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 41070, false);
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(n_data_segs(), 10); /* the initial window */
	cwnd = c->cwnd;
	for (int i = 0; i < 2; i++) {
		h_clear();
		h_send(&p, ACK, NULL, 0); /* a duplicate (segment 1 lost) */
		h_flush();
		assert_int_equal(n_data_segs(), 1);
		assert_int_equal(h_cap[0].seq, p.iss + 1 + (10u + (unsigned)i) * 1460);
	}
	assert_int_equal(H_CNT(LIMITED_TRANSMIT), 2);
	/* reordering, not loss: everything so far is acknowledged; the loan is paid back */
	p.rcv_nxt = p.iss + 1 + 12 * 1460;
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(c->cwnd, cwnd + 1460); /* slow start's growth only, no loan kept */
	assert_int_equal(H_CNT(FAST_REXMT), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_alloc_fail_first_segment_retried, teardown),
		cmocka_unit_test_teardown(test_output_fail_first_segment_retried, teardown),
		cmocka_unit_test_teardown(test_alloc_fail_ack_still_owed, teardown),
		cmocka_unit_test_teardown(test_random_failures_bulk, teardown),
		cmocka_unit_test_teardown(test_alloc_fail_recv_split, teardown),
		cmocka_unit_test_teardown(test_alloc_fail_write, teardown),
		cmocka_unit_test_teardown(test_flow_table_full, teardown),
		cmocka_unit_test_teardown(test_hash_add_fail, teardown),
		cmocka_unit_test_teardown(test_no_ephemeral_port, teardown),
		cmocka_unit_test_teardown(test_err_internal, teardown),
		cmocka_unit_test_teardown(test_ack_carries_snd_max_after_rto, teardown),
		cmocka_unit_test_teardown(test_duplicate_segment_ack_processed, teardown),
		cmocka_unit_test_teardown(test_retransmit_una_stays_below_snd_max, teardown),
		cmocka_unit_test_teardown(test_ts_recent_only_after_valid_ack, teardown),
		cmocka_unit_test_teardown(test_zero_window_probes_give_up, teardown),
		cmocka_unit_test_teardown(test_orphan_zero_window_times_out, teardown),
		cmocka_unit_test_teardown(test_persist_backoff_keeps_rto, teardown),
		cmocka_unit_test_teardown(test_sack_newest_first, teardown),
		cmocka_unit_test_teardown(test_dupack_per_ooo_segment, teardown),
		cmocka_unit_test_teardown(test_cookie_only_when_sent_recently, teardown),
		cmocka_unit_test_teardown(test_cookie_honours_small_mss, teardown),
		cmocka_unit_test_teardown(test_challenge_ack_per_flow, teardown),
		cmocka_unit_test_teardown(test_challenge_ack_budget_random, teardown),
		cmocka_unit_test_teardown(test_rto_3s_after_synack_timeout, teardown),
		cmocka_unit_test_teardown(test_synrcvd_owed_ack_sent, teardown),
		cmocka_unit_test_teardown(test_cwnd_restart_after_idle, teardown),
		cmocka_unit_test_teardown(test_pmtu_frag_needed, teardown),
		cmocka_unit_test_teardown(test_limited_transmit, teardown),
	};

	if (h_eal_init() < 0)
		return 1;
	if (getenv("TCP_TEST") != NULL) /* one test by name (a failed one leaves the harness) */
		cmocka_set_test_filter(getenv("TCP_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
