/*
 * test_tcp_states.c: the connection state machine at its less travelled edges, with crafted
 * segments through tcp_input (RFC 9293 3.10.7 "SEGMENT ARRIVES" state by state): the orphan
 * FIN_WAIT_2 limit and the half-closed flow that has none, SYN_SENT's checks of what comes
 * before a SYN-ACK, RST and SYN on synchronized flows (RFC 5961, RFC 7323 5.3 R1's RST
 * exemption from PAWS), a FIN that is the only new thing in a segment, a partly filled gap
 * (RFC 5681 4.2), headers and options that do not parse, a burst with bad segments in it,
 * an app without readable/writable callbacks, the API calls on flows that cannot take them,
 * and the timers that retry a FIN or data after a failed send. Every segment sent is checked.
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
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "tcp_harness.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define ACK RTE_TCP_ACK_FLAG
#define SYN RTE_TCP_SYN_FLAG
#define FIN RTE_TCP_FIN_FLAG
#define RST RTE_TCP_RST_FLAG
#define PSH RTE_TCP_PSH_FLAG

static struct tcp_config cfg;

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

static void
seg(struct h_peer *p, uint8_t flags, uint32_t seq, uint32_t ack, const void *data, uint32_t len)
{
	struct h_seg s = { .flags = flags,
		.seq = seq,
		.ack = ack,
		.win = 65535,
		.data = data,
		.len = len,
		.sport = p->port };

	h_input(&s);
}

static bool
sent_rst(void)
{
	for (unsigned i = 0; i < h_ncap; i++)
		if (h_cap[i].flags & RST)
			return true;
	return false;
}

/* The app closes; its FIN goes and the peer acknowledges it: FIN_WAIT_2. */
static void
to_fin_wait_2(struct h_peer *p, struct tcp_conn *c, bool close)
{
	h_clear();
	if (close)
		tcp_close(c);
	else
		tcp_shutdown(c);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, FIN | ACK);
	assert_int_equal(h_cap[0].seq, p->iss + 1);
	p->rcv_nxt = p->iss + 2;
	h_clear();
	h_send(p, ACK, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
}

/* A closed (orphan) connection whose peer acknowledged our FIN but never sends its own: it
 * may not hold the TCB for ever. After time_wait (Linux's tcp_fin_timeout), a RST and gone. */
static void
test_fin_wait_2_orphan_times_out(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.time_wait_ms = 5000;
	h_setup(&cfg);
	c = h_establish(&p, 44001, false);
	to_fin_wait_2(&p, c, true);
	h_advance_ms(4990);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(20);
	assert_int_equal(H_CNT(FIN_WAIT_2_TIMEOUT), 1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST | ACK);
	assert_int_equal(h_cap[0].seq, p.iss + 2);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_TIMEOUT);
}

/* Half-closed by the app (tcp_shutdown: it still reads): FIN_WAIT_2 has no limit, the peer
 * may send for as long as it likes. Once the app closes too, the orphan limit starts then. */
static void
test_fin_wait_2_half_closed_then_closed(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.time_wait_ms = 5000;
	h_setup(&cfg);
	c = h_establish(&p, 44002, false);
	h_app.consume = true;
	to_fin_wait_2(&p, c, false);
	h_advance_ms(12000);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
	h_send(&p, ACK | PSH, "late", 4);
	assert_int_equal(h_app.rxlen, 4);
	assert_memory_equal(h_app.rx, "late", 4);
	h_advance_ms(100); /* the delayed ACK */
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.snd_nxt);
	h_clear();
	tcp_close(c);
	tcp_close(c); /* twice: nothing more */
	h_flush();
	assert_int_equal(h_ncap, 0); /* the FIN went long ago */
	h_advance_ms(4990);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
	h_advance_ms(20);
	assert_int_equal(H_CNT(FIN_WAIT_2_TIMEOUT), 1);
	assert_true(sent_rst());
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

/* Our FIN could not be sent (no mbuf): the retransmission timer sends it, nothing else
 * would (no data in flight, no ACK to come). */
static void
test_fin_retried_after_failed_send(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 44003, false);
	h_clear();
	h_fail_alloc.next = 1;
	tcp_close(c);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(MBUF_FAIL), 1);
	h_advance_ms(c->rto_ms + 1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, FIN | ACK);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_1);
}

/* SYN_SENT (RFC 9293 3.10.7.3): an ACK outside (ISS, SND.NXT] is answered by a RST and
 * changes nothing; a RST without an acceptable ACK is dropped; a segment with neither SYN
 * nor RST is dropped (NO_ACK); a SYN alone (simultaneous open) is not taken. Then the
 * SYN-ACK after a retransmitted SYN: established, with the RTO of RFC 6298 5.7, and an app
 * without a connected() callback is fine. */
static void
test_syn_sent_checks(void **state)
{
	static struct tcp_app_ops ops; /* the stack keeps a pointer to it */
	struct tcp_conn *c;
	uint32_t iss;
	(void)state;

	ops = h_ops;
	ops.connected = NULL;
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_clear();
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 80, &ops, &h_app, &c), 0);
	assert_int_equal(h_ncap, 1);
	iss = h_cap[0].seq;
	h_clear();
	{
		struct h_seg s = { .flags = ACK,
			.seq = 7000,
			.ack = iss,
			.win = 65535,
			.sport = 80,
			.dport = rte_be_to_cpu_16(c->key.lport) };

		h_input(&s); /* acknowledges nothing we sent */
		s.ack = iss + 2;
		h_input(&s); /* acknowledges more than we sent */
		assert_int_equal(H_CNT(BAD_HANDSHAKE_ACK), 2);
		assert_int_equal(h_ncap, 2);
		assert_int_equal(h_cap[0].flags, RST);
		assert_int_equal(h_cap[0].seq, iss);
		assert_int_equal(h_cap[1].seq, iss + 2);
		s.flags = RST;
		s.ack = 0;
		h_input(&s);
		assert_int_equal(H_CNT(RST_BAD_SEQ), 1);
		s.flags = ACK;
		s.ack = iss + 1;
		h_input(&s);
		assert_int_equal(H_CNT(NO_ACK), 1);
		s.flags = SYN;
		s.ack = 0;
		h_input(&s);
		assert_int_equal(H_CNT(SIMULTANEOUS_OPEN), 1);
		assert_int_equal(h_ncap, 2);
		assert_int_equal(tcp_conn_state(c), TCP_ST_SYN_SENT);
		/* the SYN is sent again at the RTO; the SYN-ACK after it */
		h_advance_ms(cfg.rto_initial_ms + 1);
		assert_int_equal(h_ncap, 3);
		assert_int_equal(h_cap[2].flags & SYN, SYN);
		s.flags = SYN | ACK;
		s.ack = iss + 1;
		h_clear();
		h_input(&s);
		h_flush();
	}
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	assert_int_equal(h_app.connects, 0); /* no callback to call */
	assert_int_equal(c->rto_ms, 3000);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].ack, 7001);
}

/* RST on a synchronized flow (RFC 5961 3): outside the window it is dropped and counted;
 * exactly at RCV.NXT it resets even with an old timestamp: RFC 7323 5.3 R1 exempts RSTs
 * from PAWS (a peer that rebooted has a new timestamp clock). */
static void
test_rst_window_and_paws(void **state)
{
	uint8_t opts[12] = { 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0 }; /* TSval 1: very old */
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 44004, true);
	h_clear();
	seg(&p, RST, p.snd_nxt + 1000000, 0, NULL, 0);
	assert_int_equal(H_CNT(RST_BAD_SEQ), 1);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	{
		struct h_seg s = { .flags = RST,
			.seq = p.snd_nxt,
			.win = 0,
			.opts = opts,
			.optlen = 12,
			.sport = p.port };

		h_input(&s);
	}
	assert_int_equal(H_CNT(PAWS), 0);
	assert_int_equal(H_CNT(RST_RCVD), 1);
	assert_int_equal(h_app.why, TCP_CLOSE_RESET);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(h_ncap, 0);
}

/* In SYN_RECEIVED a SYN that carries an ACK is no retransmission of the peer's SYN: it is
 * challenged (RFC 5961 4), not taken as the handshake's ACK. */
static void
test_syn_with_ack_in_syn_received(void **state)
{
	uint8_t opts[4] = { 2, 4, 0x05, 0xb4 };
	struct h_seg s = {
		.flags = SYN, .seq = 500, .win = 65535, .opts = opts, .optlen = 4, .sport = 44005
	};
	uint32_t iss;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_clear();
	h_input(&s);
	iss = h_cap[0].seq;
	h_input(&s); /* the same SYN again: our SYN-ACK was lost */
	assert_int_equal(H_CNT(SYN_RETRANSMITTED), 1);
	assert_int_equal(h_ncap, 2);
	assert_int_equal(h_cap[1].flags, SYN | ACK);
	h_clear();
	s.flags = SYN | ACK;
	s.ack = iss + 1;
	h_input(&s);
	h_flush();
	assert_int_equal(H_CNT(SYN_ON_SYNC), 1);
	assert_int_equal(H_CNT(SYN_RETRANSMITTED), 1);
	assert_int_equal(H_CNT(CHALLENGE_ACK), 1);
	/* the challenge ACK: before the handshake completes, our SYN-ACK is the ACK we owe */
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, SYN | ACK);
	assert_int_equal(h_cap[0].seq, iss);
	assert_int_equal(h_cap[0].ack, 501);
	assert_int_equal(h_app.accepts, 0);
}

/* The peer sends its last data again with the FIN (its first copy arrived, its ACK was
 * lost): the data is a duplicate, the FIN is new and taken; CLOSE_WAIT, the ACK covers it. */
static void
test_fin_only_new(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t seq;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 44006, false);
	h_app.consume = true;
	seq = p.snd_nxt;
	h_send(&p, ACK | PSH, "abcdef", 6);
	assert_int_equal(h_app.rxlen, 6);
	h_clear();
	seg(&p, ACK | FIN, seq, p.rcv_nxt, "abcdef", 6);
	h_flush();
	assert_int_equal(tcp_conn_state(c), TCP_ST_CLOSE_WAIT);
	assert_int_equal(h_app.rxlen, 6);
	assert_true(tcp_conn_eof(c));
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, seq + 7);
}

/* RFC 5681 4.2: a segment that fills part of a gap is acknowledged at once (not delayed), so
 * the sender learns what still is missing; data taken in order waits for the delayed ACK. */
static void
test_partial_gap_fill_acked_at_once(void **state)
{
	static uint8_t d[3000];
	struct h_peer p;
	uint32_t base;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_establish(&p, 44007, false);
	base = p.snd_nxt;
	memset(d, 'x', sizeof(d));
	seg(&p, ACK, base + 2000, p.rcv_nxt, d, 500); /* a hole of 2000 before it */
	h_flush();
	assert_int_equal(h_ncap, 1); /* duplicate ACK at once */
	h_clear();
	seg(&p, ACK, base, p.rcv_nxt, d, 500); /* 1500 of the hole still missing */
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, base + 500);
	h_clear();
	seg(&p, ACK, base + 500, p.rcv_nxt, d, 1500); /* the rest: everything in order now */
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, base + 2500);
	h_clear();
	seg(&p, ACK, base + 2500, p.rcv_nxt, d, 100); /* in order, nothing missing: delayed */
	h_flush();
	assert_int_equal(h_ncap, 0);
}

/* A SYN-ACK to a listening port without a flow (RFC 9293 3.10.7.2: an ACK in LISTEN) is
 * answered by a RST at the ACK's sequence number, no flow made. */
static void
test_synack_to_listener(void **state)
{
	struct h_seg s = { .flags = SYN | ACK, .seq = 9, .ack = 12345, .win = 100, .sport = 44008 };
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_clear();
	h_input(&s);
	assert_int_equal(H_CNT(UNKNOWN_FLOW), 1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST);
	assert_int_equal(h_cap[0].seq, 12345);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

/* A TCP header of raw bytes (after a valid IPv4 header) straight to tcp_input. */
static void
raw_input(const uint8_t *tcp, uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(h_lc.pool);
	struct rte_ipv4_hdr *ip;

	assert_non_null(m);
	ip = (struct rte_ipv4_hdr *)rte_pktmbuf_append(m, (uint16_t)(20 + len));
	if (ip == NULL)
		abort(); /* (and tells gcc's -Warray-bounds that ip is a real buffer) */
	memset(ip, 0, 20);
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(20 + len));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = H_PEER_IP;
	ip->dst_addr = H_OUR_IP;
	memcpy(ip + 1, tcp, len);
	rte_pktmbuf_adj(m, 20);
	m->l2_len = 14;
	m->l3_len = 20;
	tcp_input(&h_lc, m);
}

/* Headers that do not parse: shorter than 20 bytes, a zero port, and option lists RFC 9293
 * 3.1 does not allow (a kind without its length at the end, a timestamp or SACK option of
 * the wrong length). Each is counted and dropped, nothing answered, no flow made. */
static void
test_bad_headers_and_options(void **state)
{
	static const uint8_t bad_opts[][8] = {
		{ 1, 1, 1, 8 },                /* kind 8 in the last byte: no length */
		{ 1, 1, 8, 8, 0, 0, 0, 1 },    /* timestamps of 8 bytes, not 10 */
		{ 1, 1, 5, 6, 0, 0, 0, 1 },    /* SACK of 6: not one whole block */
		{ 2, 4, 5, 0xb4, 4, 1, 0, 0 }, /* SACK permitted of length 1 */
	};
	static const unsigned bad_len[] = { 4, 8, 8, 8 };
	uint8_t th[20] = { 0 };
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_clear();
	th[0] = 0xab; /* source port 0xab01 */
	th[1] = 0x01;
	th[2] = H_PORT >> 8;
	th[3] = H_PORT & 0xff;
	th[12] = 5 << 4;
	th[13] = SYN;
	raw_input(th, 12); /* runt */
	th[2] = th[3] = 0;
	raw_input(th, 20); /* destination port 0 */
	assert_int_equal(H_CNT(BAD_HDR), 2);
	for (unsigned i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
		struct h_seg s = { .flags = SYN,
			.seq = 1,
			.win = 1000,
			.opts = bad_opts[i],
			.optlen = bad_len[i],
			.sport = 44009 };

		h_input(&s);
	}
	assert_int_equal(H_CNT(BAD_OPTIONS), 4);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

/* A burst (one bulk lookup) with bad segments among good ones: the bad are counted and
 * dropped, the others go through in order; a burst of bad segments only does nothing. */
static void
test_burst_with_bad_segments(void **state)
{
	struct h_peer p;
	struct h_seg bad = { .flags = ACK, .seq = 1, .win = 1, .sport = 44010, .bad_cksum = true };
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_establish(&p, 44010, false);
	h_app.consume = true;
	h_burst_begin();
	h_input(&bad);
	h_send(&p, ACK | PSH, "one", 3);
	h_input(&bad);
	h_send(&p, ACK | PSH, "two", 3);
	h_burst_end();
	assert_int_equal(H_CNT(BAD_CKSUM), 2);
	assert_int_equal(h_app.rxlen, 6);
	assert_memory_equal(h_app.rx, "onetwo", 6);
	h_burst_begin();
	h_input(&bad);
	h_input(&bad);
	h_burst_end();
	assert_int_equal(H_CNT(BAD_CKSUM), 4);
	assert_int_equal(h_pool_in_use(), 0);
}

/* An app without readable() or writable() (it polls): data is queued for it to take, the
 * ACK that frees send space calls nothing, nothing breaks. */
static void
test_app_without_callbacks(void **state)
{
	static struct tcp_app_ops ops; /* the stack keeps a pointer to it */
	struct h_peer p;
	struct tcp_conn *c;
	uint8_t out[8];
	struct rte_mbuf *m;
	(void)state;

	ops = h_ops;
	ops.readable = NULL;
	ops.writable = NULL;
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	assert_int_equal(tcp_listen(&h_lc, 2000, &ops, &h_app), 0);
	memset(&p, 0, sizeof(p));
	{
		uint8_t opts[4] = { 2, 4, 0x05, 0xb4 };
		struct h_seg s = { .flags = SYN,
			.seq = 77,
			.win = 65535,
			.opts = opts,
			.optlen = 4,
			.sport = 44011,
			.dport = 2000 };

		h_clear();
		h_input(&s);
		p.iss = h_cap[0].seq;
		s.flags = ACK;
		s.seq = 78;
		s.ack = p.iss + 1;
		s.optlen = 0;
		h_input(&s);
		c = h_app.c;
		assert_non_null(c);
		/* our data out, then the peer's data with the ACK of ours */
		assert_int_equal(tcp_write(c, "ping", 4), 4);
		h_flush();
		s.flags = ACK | PSH;
		s.ack = p.iss + 5;
		s.data = "pong";
		s.len = 4;
		h_input(&s);
	}
	assert_int_equal(h_app.readables + h_app.writables, 0);
	assert_int_equal(tcp_recv_avail(c), 4);
	assert_false(tcp_conn_eof(c));
	m = tcp_recv(c, 8);
	assert_non_null(m);
	assert_int_equal(m->pkt_len, 4);
	assert_memory_equal(rte_pktmbuf_read(m, 0, 4, out), "pong", 4);
	rte_pktmbuf_free(m);
}

/* The send calls on a flow that cannot take data: after its FIN (-ENOTCONN), and a chain
 * larger than the send space (-ENOBUFS; the caller keeps it). Shutting down twice, or in a
 * state that has no FIN to send, does nothing. Aborting a flow in TIME_WAIT sends no RST. */
static void
test_api_refusals(void **state)
{
	static uint8_t big[70000];
	struct h_peer p;
	struct tcp_conn *c;
	struct rte_mbuf *m;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.sndbuf_bytes = 4096;
	h_setup(&cfg);
	c = h_establish(&p, 44012, false);
	m = rte_pktmbuf_alloc(h_lc.pool);
	assert_non_null(rte_pktmbuf_append(m, 2000));
	assert_int_equal(tcp_write(c, big, 3000), 3000);
	assert_int_equal(tcp_send(c, m), -ENOBUFS);
	assert_int_equal(tcp_write(c, big, sizeof(big)), 1096);
	assert_int_equal(tcp_write(c, big, 1), 0);
	h_clear();
	tcp_shutdown(c);
	tcp_shutdown(c);
	assert_int_equal(tcp_send(c, m), -ENOTCONN);
	assert_int_equal(tcp_write(c, big, 1), -ENOTCONN);
	assert_int_equal(tcp_send_space(c), 0);
	rte_pktmbuf_free(m);
	h_flush();
	/* everything and the FIN acknowledged; the peer's FIN: TIME_WAIT */
	p.rcv_nxt = p.iss + 1 + 4096 + 1;
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	h_flush(); /* the ACK of the FIN */
	h_clear();
	tcp_shutdown(c); /* nothing to shut down */
	h_flush();
	assert_int_equal(h_ncap, 0);
}

/* tcp_abort in TIME_WAIT: the flow goes, without a RST (the connection ended cleanly). */
static void
test_abort_in_time_wait(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 44013, false);
	to_fin_wait_2(&p, c, false);
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	h_clear();
	tcp_abort(c);
	assert_int_equal(tcp_conn_state(c), TCP_ST_CLOSED);
	tcp_abort(c); /* again: nothing */
	h_flush();
	assert_false(sent_rst());
	assert_int_equal(H_CNT(ABORT), 1);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

/* The peer opens its window while the only segment we tried could not be built: the probe
 * timer, still armed, sends the data (nothing else would). Probe intervals are capped at
 * rto_max. */
static void
test_persist_window_opens_send_failed(void **state)
{
	static uint8_t d[4000];
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t last = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.rto_max_ms = 1000;
	h_setup(&cfg);
	c = h_establish(&p, 44014, false);
	/* the peer's window is zero */
	h_clear();
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, NULL, 0);
	{
		struct h_seg s = {
			.flags = ACK, .seq = p.snd_nxt, .ack = p.rcv_nxt, .win = 0, .sport = p.port
		};

		h_input(&s);
	}
	assert_int_equal(tcp_write(c, d, sizeof(d)), (int)sizeof(d));
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_true(c->flags & TF_PERSIST);
	/* probes, each answered with the window still zero; intervals never above 1 s */
	for (int i = 0; i < 6; i++) {
		uint32_t t0 = h_lc.tcp->now_ms;

		h_clear();
		while (h_ncap == 0)
			h_advance_ms(1);
		assert_true(h_lc.tcp->now_ms - t0 <= 1000);
		last = h_lc.tcp->now_ms - t0;
		assert_int_equal(h_cap[0].seq, p.iss); /* below SND.UNA: must be answered */
		{
			struct h_seg s = { .flags = ACK,
				.seq = p.snd_nxt,
				.ack = p.rcv_nxt,
				.win = 0,
				.sport = p.port };

			h_input(&s);
		}
	}
	assert_int_equal(last, 1000);
	/* the window opens; the segment it allows cannot be built */
	h_clear();
	h_fail_alloc.next = 1;
	seg(&p, ACK, p.snd_nxt, p.rcv_nxt, NULL, 0);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(MBUF_FAIL), 1);
	h_advance_ms(1001);
	assert_true(h_ncap >= 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].len, 1460);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fin_wait_2_orphan_times_out, teardown),
		cmocka_unit_test_teardown(test_fin_wait_2_half_closed_then_closed, teardown),
		cmocka_unit_test_teardown(test_fin_retried_after_failed_send, teardown),
		cmocka_unit_test_teardown(test_syn_sent_checks, teardown),
		cmocka_unit_test_teardown(test_rst_window_and_paws, teardown),
		cmocka_unit_test_teardown(test_syn_with_ack_in_syn_received, teardown),
		cmocka_unit_test_teardown(test_fin_only_new, teardown),
		cmocka_unit_test_teardown(test_partial_gap_fill_acked_at_once, teardown),
		cmocka_unit_test_teardown(test_synack_to_listener, teardown),
		cmocka_unit_test_teardown(test_bad_headers_and_options, teardown),
		cmocka_unit_test_teardown(test_burst_with_bad_segments, teardown),
		cmocka_unit_test_teardown(test_app_without_callbacks, teardown),
		cmocka_unit_test_teardown(test_api_refusals, teardown),
		cmocka_unit_test_teardown(test_abort_in_time_wait, teardown),
		cmocka_unit_test_teardown(test_persist_window_opens_send_failed, teardown),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
