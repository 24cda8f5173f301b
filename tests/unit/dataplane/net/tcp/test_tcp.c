/*
 * Unit tests for dataplane/net/tcp: the state machine fed crafted segments through tcp_input,
 * with every segment the stack sends captured (tcp_harness.c) and checked byte for byte:
 * flags, sequence and acknowledgment numbers, windows, options, payload.
 */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "tcp_harness.h"
#include "tcp_types.h"

#define ACK RTE_TCP_ACK_FLAG
#define SYN RTE_TCP_SYN_FLAG
#define FIN RTE_TCP_FIN_FLAG
#define RST RTE_TCP_RST_FLAG
#define PSH RTE_TCP_PSH_FLAG

static struct tcp_config cfg;

static void
cfg_default(void)
{
	tcp_config_defaults(&cfg);
}

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

/* A segment at an explicit sequence number from peer p. */
static void
seg_at(struct h_peer *p, uint8_t flags, uint32_t seq, const void *data, uint32_t len)
{
	struct h_seg s = { .flags = flags,
		.seq = seq,
		.ack = p->rcv_nxt,
		.win = 65535,
		.data = data,
		.len = len,
		.sport = p->port };

	h_input(&s);
}

/* /edgegw/mem's bytes per idle flow is what tcp_lcore_init reserved: the TCB pool and the flow
 * hash, per max_flows, against the DPDK heap's own statistics (within its per-block headers
 * and the fixed structs), at a power of two and one below it. */
static void
test_mem_stats_match_heap(void **state)
{
	static const uint32_t sizes[] = { 65536, 65535, 20000 };

	(void)state;
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct rte_malloc_socket_stats before, after;
		struct tcp_mem_stats m;
		struct tcp_config c;
		double reserved, said;
		int socket = (int)rte_socket_id() < 0 ? 0 : (int)rte_socket_id();

		tcp_config_defaults(&c);
		c.max_flows = sizes[i];
		assert_int_equal(rte_malloc_get_socket_stats(socket, &before), 0);
		h_setup(&c);
		assert_int_equal(rte_malloc_get_socket_stats(socket, &after), 0);
		tcp_mem_stats(&h_lc, &m);
		reserved =
		    (double)(after.heap_allocsz_bytes - before.heap_allocsz_bytes) / sizes[i];
		said = m.tcb_bytes + m.hash_bytes_per_entry + m.sb_bytes_per_flow +
		    m.dq_bytes_per_flow;
		print_message(
		    "max_flows %u: reserved %.2f B per flow, reported %.0f (TCB %u + hash %u)\n",
		    sizes[i], reserved, said, m.tcb_bytes, m.hash_bytes_per_entry);
		assert_true(said >= reserved - 1.0 && said <= reserved + 1.0);
		h_teardown();
	}
}

static void
test_handshake_options(void **state)
{
	/* MSS 1400, NOP WS 7, NOP NOP TS(100, 0) */
	uint8_t opts[20] = { 2, 4, 0x05, 0x78, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0 };
	struct h_seg syn = { .flags = SYN,
		.seq = 0xfffffff0u,
		.win = 29200,
		.opts = opts,
		.optlen = 20,
		.sport = 40000 };
	struct tcp_mem_stats ms;
	struct h_peer p = { .port = 40000, .ts = true, .tsval = 100 };
	static uint8_t buf[3000];
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_input(&syn);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, SYN | ACK);
	assert_int_equal(h_cap[0].ack, 0xfffffff1u);
	assert_int_equal(h_cap[0].sport, H_PORT);
	assert_int_equal(h_cap[0].dport, 40000);
	assert_int_equal(h_cap[0].dst_be, H_PEER_IP);
	assert_int_equal(h_cap[0].mss, 1460);
	assert_int_equal(h_cap[0].wscale, 2);
	assert_true(h_cap[0].has_ts);
	assert_int_equal(h_cap[0].tsecr, 100);
	assert_int_equal(h_cap[0].win, 65535); /* a SYN's window is not scaled */
	assert_int_equal(h_cap[0].len, 0);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.half_open, 1);
	assert_int_equal(ms.flows_by_state[TCP_ST_SYN_RECEIVED], 1);
	assert_int_equal(h_app.accepts, 0);

	p.isn = 0xfffffff0u;
	p.snd_nxt = p.isn + 1;
	p.iss = h_cap[0].seq;
	p.rcv_nxt = p.iss + 1;
	h_clear();
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(h_app.accepts, 1);
	c = h_app.c;
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	assert_int_equal(tcp_flow_count(&h_lc), 1);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.half_open, 0);

	/* data goes in segments of the peer's MSS less the timestamp option, scaled window */
	fill(buf, sizeof(buf), 0);
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(h_ncap, 3);
	assert_int_equal(h_cap[0].len, 1388);
	assert_int_equal(h_cap[1].len, 1388);
	assert_int_equal(h_cap[2].len, 3000 - 2 * 1388);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[1].seq, p.iss + 1 + 1388);
	assert_int_equal(h_cap[2].seq, p.iss + 1 + 2 * 1388);
	assert_int_equal(h_cap[2].flags, ACK | PSH);
	assert_int_equal(h_cap[0].ack, p.snd_nxt);
	assert_int_equal(h_cap[0].win, 65536 >> 2);
	assert_true(h_cap[0].has_ts);
	assert_int_equal(h_cap[0].tsecr, 101); /* the peer's last TSval */
	assert_int_equal(h_cap[0].optlen, 12);
	assert_memory_equal(h_cap[1].data, buf + 1388, 1388);
}

/* What a run of burst_scenario left: segments sent, app callbacks, counters moved. */
struct burst_trace {
	unsigned n;
	struct {
		uint16_t dport;
		uint8_t flags;
		uint32_t ack, len;
	} out[16];
	int accepts, readables, closes;
	uint32_t flows;
	uint64_t cnt[DPC__COUNT];
};

/*
 * Two established flows, then in one go: data to A, an exact RST that closes B, data to B
 * (now a flow that is gone), a SYN from a new port and the same SYN again (the second must
 * find the half-open flow the first made), data to A. As one burst (burst true:
 * tcp_input_burst, flows looked up together before any is handled) or one at a time.
 */
static void
burst_scenario(bool burst, struct burst_trace *t)
{
	struct h_peer a, b;
	struct h_seg syn = { .flags = SYN, .seq = 5000, .win = 65535, .sport = 40003 };
	struct dp_counters before;

	cfg_default();
	h_setup(&cfg);
	h_establish(&a, 40001, false);
	h_establish(&b, 40002, false);
	h_clear();
	before = h_lc.cnt;
	memset(t, 0, sizeof(*t));
	t->accepts = h_app.accepts;
	t->readables = h_app.readables;
	t->closes = h_app.closes;
	if (burst)
		h_burst_begin();
	h_send(&a, ACK | PSH, "a1", 2);
	h_send(&b, RST, NULL, 0);
	h_send(&b, ACK | PSH, "b1", 2);
	h_input(&syn);
	h_input(&syn);
	h_send(&a, ACK | PSH, "a2", 2);
	if (burst)
		h_burst_end();
	h_flush();
	assert_true(h_ncap <= RTE_DIM(t->out));
	for (unsigned i = 0; i < h_ncap; i++) {
		t->out[i].dport = h_cap[i].dport;
		t->out[i].flags = h_cap[i].flags;
		t->out[i].ack = h_cap[i].ack;
		t->out[i].len = h_cap[i].len;
	}
	t->n = h_ncap;
	t->accepts = h_app.accepts - t->accepts;
	t->readables = h_app.readables - t->readables;
	t->closes = h_app.closes - t->closes;
	t->flows = tcp_flow_count(&h_lc);
	for (unsigned i = 0; i < DPC__COUNT; i++)
		t->cnt[i] = h_lc.cnt.v[i] - before.v[i];
	h_teardown();
}

/* tcp_input_burst does what tcp_input one segment at a time does, even when a segment of the
 * burst adds or removes a flow that a later one belongs to (issue 16, bulk lookups). */
static void
test_input_burst_as_one_at_a_time(void **state)
{
	static struct burst_trace one, bulk;

	(void)state;
	burst_scenario(false, &one);
	burst_scenario(true, &bulk);
	assert_int_equal(one.flows, 2); /* A and the half-open one */
	assert_int_equal(one.closes, 1);
	assert_int_equal(bulk.n, one.n);
	for (unsigned i = 0; i < one.n; i++) {
		assert_int_equal(bulk.out[i].dport, one.out[i].dport);
		assert_int_equal(bulk.out[i].flags, one.out[i].flags);
		assert_int_equal(bulk.out[i].ack, one.out[i].ack);
		assert_int_equal(bulk.out[i].len, one.out[i].len);
	}
	assert_int_equal(bulk.accepts, one.accepts);
	assert_int_equal(bulk.readables, one.readables);
	assert_int_equal(bulk.closes, one.closes);
	assert_int_equal(bulk.flows, one.flows);
	for (unsigned i = 0; i < DPC__COUNT; i++)
		if (bulk.cnt[i] != one.cnt[i])
			fail_msg("counter %u: %llu in a burst, %llu one at a time", i,
			    (unsigned long long)bulk.cnt[i], (unsigned long long)one.cnt[i]);
}

static void
test_data_echo_piggyback(void **state)
{
	struct h_peer p;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_establish(&p, 40001, false);
	h_app.echo = true;
	h_send(&p, ACK | PSH, "hello", 5);
	assert_int_equal(h_app.readables, 1);
	assert_int_equal(h_ncap, 0); /* nothing before the flush: replies are coalesced */
	h_flush();
	assert_int_equal(h_ncap, 1); /* the echo carries the ACK: no separate pure ACK */
	assert_int_equal(h_cap[0].flags, ACK | PSH);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 5);
	assert_int_equal(h_cap[0].len, 5);
	assert_memory_equal(h_cap[0].data, "hello", 5);
	assert_int_equal(h_cap[0].win, 65535); /* no scaling negotiated: capped */
	assert_int_equal(H_CNT(ACKS_SENT), 0);
	p.rcv_nxt += 5;
	h_clear();
	h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(h_app.writables, 1);
	h_advance_ms(5000); /* acked: nothing to retransmit */
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(RX_BYTES), 5);
}

static void
test_delayed_ack(void **state)
{
	static uint8_t big[1460];
	struct h_peer p;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_establish(&p, 40002, false);
	h_app.consume = true;
	h_send(&p, ACK | PSH, "0123456789", 10);
	h_flush();
	assert_int_equal(h_ncap, 0);
	h_advance_ms(39);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].ack, p.isn + 11);
	assert_int_equal(H_CNT(DELACK), 1);

	/* two full-sized segments in one burst: one ACK, at once, for both */
	h_clear();
	h_send(&p, ACK, big, sizeof(big));
	h_send(&p, ACK, big, sizeof(big));
	assert_int_equal(h_ncap, 0);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.isn + 11 + 2 * 1460);
	assert_int_equal(h_app.rxlen, 10 + 2 * 1460);
	h_advance_ms(100);
	assert_int_equal(h_ncap, 1); /* no delayed ACK left behind */
}

/*
 * Every second data segment is acknowledged at once, small ones too. A sensor's publishes are
 * segments of a few dozen bytes; acknowledged only a delayed ACK later (40 ms), a Linux sender
 * with two of them in flight fired its tail loss probe (RFC 8985: PTO = 2 SRTT when more than
 * one segment is out) and sent the last one again: in the MQTT bench's paced run, up to 6,500
 * duplicate segments per run (4 % of what the broker received), at most 386 after (docs/tcp.md).
 */
static void
test_ack_every_second_small_segment(void **state)
{
	struct h_peer p;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_establish(&p, 40004, false);
	h_app.consume = true;
	h_send(&p, ACK | PSH, "publish-1", 9);
	h_flush();
	assert_int_equal(h_ncap, 0); /* one: delayed */
	h_advance_ms(10);
	h_send(&p, ACK | PSH, "publish-2", 9);
	h_flush();
	assert_int_equal(h_ncap, 1); /* the second: at once, for both */
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 18);
	assert_int_equal(H_CNT(DELACK), 0);
	h_advance_ms(100);
	assert_int_equal(h_ncap, 1); /* no delayed ACK left behind */

	/* the count starts again after that ACK: a third segment alone waits */
	h_send(&p, ACK | PSH, "publish-3", 9);
	h_flush();
	assert_int_equal(h_ncap, 1);
	h_advance_ms(cfg.delack_ms);
	assert_int_equal(h_ncap, 2);
	assert_int_equal(h_cap[1].ack, p.isn + 1 + 27);
	assert_int_equal(H_CNT(DELACK), 1);
}

/*
 * A delayed ACK armed while the flow waits in the timer wheel for a later deadline (its
 * retransmission timer) leaves it in its slot: the delayed ACK has a queue of its own, so the
 * arm touches no other TCB (issue 16, cost per segment). It still goes out delack_ms later,
 * and a flow that reuses a closed flow's TCB (whose delayed-ACK entry is still queued) gets
 * its own delayed ACK on time, once.
 */
static void
test_delack_keeps_wheel_slot(void **state)
{
	struct h_peer p, q;
	struct tcp_conn *c, *c2;
	uint32_t slot;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40005, false);
	h_app.consume = true;
	assert_int_equal(tcp_write(c, (const uint8_t *)"ping", 4), 4);
	h_flush(); /* our data out: the retransmission timer holds the flow in the wheel */
	assert_int_equal(h_ncap, 1);
	assert_true(c->in_wheel);
	slot = c->tw_ms;
	assert_true(slot - tcb_tl(c)->now_ms > cfg.delack_ms);
	h_clear();
	seg_at(&p, ACK | PSH, p.snd_nxt, "abc", 3); /* data, our "ping" not acknowledged */
	p.snd_nxt += 3;
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_true(c->in_wheel);
	assert_int_equal(c->tw_ms, slot); /* not moved to the delayed ACK's deadline */
	h_advance_ms(cfg.delack_ms - 1);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.snd_nxt);
	assert_int_equal(H_CNT(DELACK), 1);

	/* another delayed ACK armed, then the flow is reset: its entry outlives it */
	h_clear();
	seg_at(&p, ACK | PSH, p.snd_nxt, "d", 1);
	p.snd_nxt += 1;
	h_flush();
	h_advance_ms(10);
	seg_at(&p, RST, p.snd_nxt, NULL, 0);
	h_flush();
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	/* a new flow takes the same TCB and owes a delayed ACK 20 ms later than the old one */
	h_advance_ms(10);
	c2 = h_establish(&q, 40006, false);
	assert_ptr_equal(c2, c);
	h_clear();
	h_send(&q, ACK | PSH, "e", 1);
	h_flush();
	h_advance_ms(cfg.delack_ms - 1); /* the old flow's deadline passed: nothing for it */
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].dport, 40006);
	assert_int_equal(H_CNT(DELACK), 2);
	h_advance_ms(2 * cfg.delack_ms);
	assert_int_equal(h_ncap, 1);
}

static void
test_window_backpressure(void **state)
{
	static uint8_t buf[4097];
	struct rte_mbuf *m;
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	cfg.rcvbuf_bytes = 4096;
	cfg.wscale = 0;
	h_setup(&cfg);
	c = h_establish(&p, 40003, false);
	fill(buf, sizeof(buf), 0);
	/* the app does not read: the window closes */
	h_send(&p, ACK, buf, 1460);
	h_send(&p, ACK, buf + 1460, 1460);
	h_send(&p, ACK, buf + 2920, 1176);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 4096);
	assert_int_equal(h_cap[0].win, 0);
	assert_int_equal(tcp_recv_avail(c), 4096);
	/* one more byte into the zero window: dropped, and the ACK repeats the zero window */
	h_clear();
	h_send(&p, ACK, buf + 4096, 1);
	p.snd_nxt -= 1;
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 4096);
	assert_int_equal(h_cap[0].win, 0);
	assert_int_equal(H_CNT(ZERO_WINDOW_DROP), 1);
	/* the app reads: a window update goes out */
	h_clear();
	m = tcp_recv(c, 100000);
	assert_non_null(m);
	assert_int_equal(m->pkt_len, 4096);
	for (struct rte_mbuf *s = m; s != NULL; s = s->next)
		assert_true(s->data_len > 0);
	{
		static uint8_t got[4096];
		const void *q = rte_pktmbuf_read(m, 0, 4096, got);

		assert_memory_equal(q, buf, 4096);
	}
	rte_pktmbuf_free(m);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].win, 4096);
}

static void
test_out_of_order_and_dup(void **state)
{
	static uint8_t buf[600];
	struct tcp_mem_stats ms;
	struct h_peer p;
	uint32_t base;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_establish(&p, 40004, false);
	h_app.consume = true;
	fill(buf, sizeof(buf), 0);
	base = p.snd_nxt;
	/* [100, 200) first: held, and a duplicate ACK for the hole at once */
	seg_at(&p, ACK, base + 100, buf + 100, 100);
	assert_int_equal(h_app.readables, 0);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, base);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.ooo_bytes, 100);
	/* overlapping pieces: [300, 400), then [250, 500) covering it, then [150, 260) */
	seg_at(&p, ACK, base + 300, buf + 300, 100);
	seg_at(&p, ACK, base + 250, buf + 250, 250);
	seg_at(&p, ACK, base + 150, buf + 150, 110);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.ooo_bytes, 400); /* [100, 500) held once */
	assert_int_equal(h_app.readables, 0);
	/* the hole fills: everything comes out in order */
	h_clear();
	seg_at(&p, ACK, base, buf, 100);
	assert_int_equal(h_app.readables, 1);
	assert_int_equal(h_app.rxlen, 500);
	assert_memory_equal(h_app.rx, buf, 500);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, base + 500);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.ooo_mbufs, 0);
	assert_int_equal(ms.ooo_bytes, 0);
	/* a duplicate: counted, ACKed, not delivered again */
	h_clear();
	seg_at(&p, ACK, base, buf, 100);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, base + 500);
	assert_int_equal(h_app.rxlen, 500);
	assert_int_equal(h_app.readables, 1);
	assert_true(H_CNT(DUP_SEGS) >= 1);
	/* a partial duplicate: only the new tail is delivered */
	seg_at(&p, ACK, base + 450, buf + 450, 150);
	assert_int_equal(h_app.rxlen, 600);
	assert_memory_equal(h_app.rx, buf, 600);
}

static void
test_rto_retransmit(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40005, false);
	assert_int_equal(tcp_write(c, "retransmit me", 13), 13);
	h_flush();
	assert_int_equal(h_ncap, 1);
	h_clear();
	h_advance_ms(999);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1); /* rto_initial_ms = 1000 */
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].len, 13);
	assert_memory_equal(h_cap[0].data, "retransmit me", 13);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	/* backoff: twice as long */
	h_clear();
	h_advance_ms(1999);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	/* acknowledged: the timer stops */
	p.rcv_nxt += 13;
	h_clear();
	h_send(&p, ACK, NULL, 0);
	h_advance_ms(10000);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
}

/* rto_min bounds the variance term, as Linux's: an RTO waits SRTT and at least rto_min more
 * (it was max(SRTT + 4 RTTVAR, rto_min): on a 40 ms path the timer fired 200 ms after a send,
 * while ACKs held 160-200 ms by a busy relay were still on their way). */
static void
test_rto_min_bounds_variance(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40032, false);
	for (int i = 0; i < 40; i++)
		tcp_rtt_sample(c, 40); /* a steady 40 ms path: 4 RTTVAR near 0 */
	assert_int_equal(c->srtt8 / 8, 40);
	assert_true(c->rttvar4 < 4);
	assert_int_equal(c->rto_ms, 40 + 200);
	for (int i = 0; i < 80; i++)
		tcp_rtt_sample(c, 1); /* a LAN: Linux's 201 ms */
	assert_int_equal(c->srtt8 / 8, 1);
	assert_int_equal(c->rto_ms, 1 + 200);
	for (int i = 0; i < 8; i++)
		tcp_rtt_sample(c, i % 2 ? 40 : 400); /* a jittery path: 4 RTTVAR beyond rto_min */
	assert_true(c->rttvar4 > 200);
	assert_int_equal(c->rto_ms, c->srtt8 / 8 + c->rttvar4);
	tcp_rtt_sample(c, cfg.rto_max_ms); /* never beyond rto_max */
	assert_int_equal(c->rto_ms, cfg.rto_max_ms);
}

static void
test_rto_gives_up(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	cfg.data_retries = 2;
	h_setup(&cfg);
	c = h_establish(&p, 40006, false);
	assert_int_equal(tcp_write(c, "x", 1), 1);
	h_flush();
	h_clear();
	h_advance_ms(1000 + 2000);
	assert_int_equal(h_ncap, 2);
	h_advance_ms(3999);
	assert_int_equal(h_ncap, 2);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 3);
	assert_int_equal(h_cap[2].flags, RST | ACK);
	assert_int_equal(h_cap[2].seq, p.iss + 2);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_TIMEOUT);
	assert_int_equal(H_CNT(CONN_TIMEOUT), 1);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

static void
test_fast_retransmit(void **state)
{
	static uint8_t buf[5 * 1460];
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40007, false);
	fill(buf, sizeof(buf), 0);
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(h_ncap, 5);
	/* segment 2 is lost: the peer ACKs segment 1, then duplicates for 3, 4, 5 */
	p.rcv_nxt = p.iss + 1 + 1460;
	h_clear();
	h_send(&p, ACK, NULL, 0);
	h_send(&p, ACK, NULL, 0);
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(h_ncap, 0);
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(h_ncap, 1); /* third duplicate: retransmit at once */
	assert_int_equal(h_cap[0].seq, p.iss + 1 + 1460);
	assert_int_equal(h_cap[0].len, 1460);
	assert_memory_equal(h_cap[0].data, buf + 1460, 1460);
	assert_int_equal(H_CNT(FAST_REXMT), 1);
	assert_int_equal(H_CNT(DUP_ACKS), 3);
	/* partial ACK (up to segment 3): the next hole goes at once (RFC 6582) */
	h_clear();
	p.rcv_nxt = p.iss + 1 + 3 * 1460;
	h_send(&p, ACK, NULL, 0);
	assert_true(h_ncap >= 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1 + 3 * 1460);
	/* full ACK: recovery ends, nothing more to send */
	h_clear();
	p.rcv_nxt = p.iss + 1 + 5 * 1460;
	h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_int_equal(h_ncap, 0);
	h_advance_ms(3000);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
}

static void
test_peer_fin_close_wait_last_ack(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40008, false);
	h_app.consume = true;
	h_send(&p, ACK | FIN, "bye", 3);
	assert_int_equal(tcp_conn_state(c), TCP_ST_CLOSE_WAIT);
	assert_int_equal(h_app.rxlen, 3);
	assert_true(tcp_conn_eof(c));
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 3 + 1);
	/* we can still send in CLOSE_WAIT, then close: data and FIN together */
	h_clear();
	assert_int_equal(tcp_write(c, "ok", 2), 2);
	tcp_close(c);
	assert_int_equal(tcp_conn_state(c), TCP_ST_LAST_ACK);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK | PSH | FIN);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].len, 2);
	p.rcv_nxt = p.iss + 1 + 2 + 1;
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_NORMAL);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(H_CNT(CONN_CLOSED), 1);
}

static void
test_our_fin_time_wait(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	cfg.time_wait_ms = 500;
	h_setup(&cfg);
	c = h_establish(&p, 40009, false);
	tcp_close(c);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_1);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK | FIN);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	p.rcv_nxt = p.iss + 2;
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
	assert_int_equal(h_app.closes, 0);
	h_clear();
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_NORMAL);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].ack, p.isn + 2);
	/* our ACK was lost: the peer's FIN again is ACKed again and TIME_WAIT restarts */
	h_advance_ms(300);
	h_clear();
	seg_at(&p, ACK | FIN, p.isn + 1, NULL, 0);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.isn + 2);
	h_advance_ms(499);
	assert_int_equal(tcp_flow_count(&h_lc), 1);
	h_advance_ms(1);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(H_CNT(TIME_WAIT_EXPIRED), 1);
	assert_int_equal(h_app.closes, 1);
}

static void
test_simultaneous_close(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40010, false);
	tcp_shutdown(c);
	h_flush();
	assert_int_equal(h_cap[h_ncap - 1].flags, ACK | FIN);
	/* the peer's FIN crosses ours: it does not acknowledge our FIN */
	h_clear();
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_CLOSING);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].seq, p.iss + 2);
	assert_int_equal(h_cap[0].ack, p.isn + 2);
	p.rcv_nxt = p.iss + 2;
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	assert_int_equal(h_app.closes, 1);
}

static void
test_fin_wait_1_to_time_wait(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40011, false);
	tcp_close(c);
	h_flush();
	p.rcv_nxt = p.iss + 2; /* FIN+ACK covering our FIN in one segment */
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	assert_int_equal(h_app.closes, 1);
	/* a segment with data after close: the stack resets (nobody would read it) */
}

static void
test_rst_exact_vs_challenge(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40012, false);
	/* in the window, not exact: challenge ACK, the connection lives */
	seg_at(&p, RST, p.snd_nxt + 100, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].ack, p.snd_nxt);
	assert_int_equal(H_CNT(CHALLENGE_ACK), 1);
	/* outside the window: silently dropped */
	h_clear();
	seg_at(&p, RST, p.snd_nxt + 200000, NULL, 0);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(RST_BAD_SEQ), 1);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	/* exact: reset */
	seg_at(&p, RST, p.snd_nxt, NULL, 0);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_RESET);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(H_CNT(RST_RCVD), 1);
}

static void
test_syn_on_established(void **state)
{
	struct h_seg syn = { .flags = SYN, .seq = 12345, .win = 1000, .sport = 40013 };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40013, false);
	h_input(&syn);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].ack, p.snd_nxt);
	assert_int_equal(H_CNT(SYN_ON_SYNC), 1);
	assert_int_equal(H_CNT(CHALLENGE_ACK), 1);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	assert_int_equal(h_app.closes, 0);
}

static void
test_bad_ack_and_rate_limit(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	cfg.challenge_ack_per_s = 2;
	h_setup(&cfg);
	c = h_establish(&p, 40014, false);
	p.rcv_nxt = p.iss + 1 + 5000; /* acknowledges data never sent */
	for (int i = 0; i < 3; i++) {
		h_send(&p, ACK, "data", 4);
		h_flush();
	}
	assert_int_equal(h_ncap, 1); /* one per flow per 500 ms (test_tcp_faults: the rest) */
	assert_int_equal(h_cap[0].ack, p.isn + 1); /* the data was not taken */
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(H_CNT(BAD_ACK), 3);
	assert_int_equal(H_CNT(CHALLENGE_ACK_FLOW_LIMITED), 2);
	assert_int_equal(tcp_recv_avail(c), 0);
	/* the next second has a fresh budget */
	h_advance_ms(1000);
	h_clear();
	seg_at(&p, ACK, p.isn + 1, NULL, 0);
	h_flush();
	assert_int_equal(h_ncap, 1);
}

static void
test_syn_cookies(void **state)
{
	uint8_t mss[4] = { 2, 4, 0x05, 0xb4 };
	struct h_seg s = { .flags = SYN, .win = 65535, .opts = mss, .optlen = 4 };
	struct tcp_mem_stats ms;
	uint32_t cookie;
	(void)state;

	cfg_default();
	cfg.max_half_open = 2;
	h_setup(&cfg);
	for (uint16_t port = 1000; port < 1003; port++) {
		s.sport = port;
		s.seq = 1000u * port;
		h_input(&s);
	}
	assert_int_equal(h_ncap, 3);
	assert_int_equal(tcp_flow_count(&h_lc), 2); /* the third got a cookie, not a TCB */
	assert_int_equal(H_CNT(COOKIE_SENT), 1);
	assert_int_equal(h_cap[2].flags, SYN | ACK);
	assert_int_equal(h_cap[2].ack, 1000u * 1002 + 1);
	assert_int_equal(h_cap[2].optlen, 4); /* MSS only: no room in a cookie for the rest */
	assert_int_equal(h_cap[2].mss, 1460);
	cookie = h_cap[2].seq;
	/* a forged cookie: reset, counted */
	h_clear();
	s = (struct h_seg){ .flags = ACK,
		.seq = 1000u * 1002 + 1,
		.ack = cookie + 2,
		.win = 65535,
		.sport = 1002 };
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST);
	assert_int_equal(h_cap[0].seq, cookie + 2);
	assert_int_equal(H_CNT(COOKIE_FAILED), 1);
	/* the right cookie from another port is not valid either */
	h_clear();
	s.ack = cookie + 1;
	s.sport = 1003;
	h_input(&s);
	assert_int_equal(h_cap[0].flags, RST);
	assert_int_equal(H_CNT(COOKIE_FAILED), 2);
	/* the real ACK: the flow is created and accepted, with data on the ACK */
	h_clear();
	h_app.echo = true;
	s.sport = 1002;
	s.flags = ACK | PSH;
	s.data = "hi";
	s.len = 2;
	h_input(&s);
	assert_int_equal(H_CNT(COOKIE_VALID), 1);
	assert_int_equal(h_app.accepts, 1);
	assert_int_equal(tcp_conn_state(h_app.c), TCP_ST_ESTABLISHED);
	assert_int_equal(tcp_flow_count(&h_lc), 3);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].seq, cookie + 1);
	assert_int_equal(h_cap[0].ack, 1000u * 1002 + 3);
	assert_memory_equal(h_cap[0].data, "hi", 2);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.half_open, 2);
	/* a cookie expires: 3 slots (of 65.5 s) later it is refused */
	tcp_abort(h_app.c);
	h_lc.now_tsc += 3ull * 65536 * (h_lc.tsc_hz / 1000);
	h_clear();
	s.data = NULL;
	s.len = 0;
	s.flags = ACK;
	h_input(&s);
	assert_int_equal(h_cap[0].flags, RST);
}

static void
test_half_open_expires(void **state)
{
	struct h_seg s = { .flags = SYN, .seq = 42, .win = 65535, .sport = 41000 };
	(void)state;

	cfg_default();
	cfg.syn_retries = 2;
	h_setup(&cfg);
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	h_advance_ms(1000);
	assert_int_equal(h_ncap, 2);
	assert_int_equal(h_cap[1].flags, SYN | ACK);
	assert_int_equal(h_cap[1].seq, h_cap[0].seq);
	h_advance_ms(2000);
	assert_int_equal(h_ncap, 3);
	assert_int_equal(tcp_flow_count(&h_lc), 1);
	h_advance_ms(4000);
	assert_int_equal(h_ncap, 3);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(H_CNT(HALF_OPEN_EXPIRED), 1);
	assert_int_equal(H_CNT(SYNACK_REXMT), 2);
	assert_int_equal(h_app.accepts, 0);
	/* the peer's retransmitted SYN before expiry gets the same SYN-ACK */
	h_clear();
	h_input(&s);
	s.seq = 42;
	h_input(&s);
	assert_int_equal(h_ncap, 2);
	assert_int_equal(h_cap[1].seq, h_cap[0].seq);
	assert_int_equal(H_CNT(SYN_RETRANSMITTED), 1);
}

static void
test_zero_window_probe(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct h_seg s;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40015, false);
	s = (struct h_seg){
		.flags = ACK, .seq = p.snd_nxt, .ack = p.rcv_nxt, .win = 0, .sport = p.port
	};
	h_input(&s); /* the peer's window closes */
	assert_int_equal(tcp_write(c, "waiting", 7), 7);
	h_flush();
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1000);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].seq, p.iss); /* SND.UNA - 1: forces an ACK */
	assert_int_equal(h_cap[0].len, 0);
	assert_int_equal(H_CNT(PERSIST_PROBE), 1);
	h_input(&s); /* still closed */
	h_flush();
	h_advance_ms(1999);
	assert_int_equal(h_ncap, 1);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 2); /* probes back off */
	assert_int_equal(H_CNT(PERSIST_PROBE), 2);
	/* the window opens: the data goes */
	h_clear();
	s.win = 1000;
	h_input(&s);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_cap[0].len, 7);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
}

static void
test_keepalive(void **state)
{
	struct h_peer p;
	(void)state;

	cfg_default();
	cfg.keepalive = true;
	cfg.keepalive_idle_ms = 1000;
	cfg.keepalive_intvl_ms = 100;
	cfg.keepalive_probes = 3;
	h_setup(&cfg);
	h_establish(&p, 40016, false);
	h_advance_ms(999);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].seq, p.iss);
	assert_int_equal(h_cap[0].len, 0);
	/* answered: the idle period starts again */
	h_send(&p, ACK, NULL, 0);
	h_advance_ms(999);
	assert_int_equal(h_ncap, 1);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 2);
	/* unanswered: two more probes, then reset */
	h_advance_ms(200);
	assert_int_equal(h_ncap, 4);
	assert_int_equal(h_app.closes, 0);
	h_advance_ms(100);
	assert_int_equal(h_ncap, 5);
	assert_int_equal(h_cap[4].flags, RST | ACK);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_KEEPALIVE);
	assert_int_equal(H_CNT(KEEPALIVE_PROBE), 4);
	assert_int_equal(H_CNT(KEEPALIVE_DROP), 1);
}

static void
test_bad_segments(void **state)
{
	uint8_t bad_mss[4] = { 2, 3, 0x05, 0 };
	uint8_t past_end[4] = { 1, 1, 8, 10 };
	uint8_t zero_len[4] = { 30, 0, 1, 1 };
	struct h_peer p;
	struct h_seg s;
	struct rte_mbuf *m;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_establish(&p, 40017, false);
	h_clear();
	s = (struct h_seg){ .flags = ACK,
		.seq = p.snd_nxt,
		.ack = p.rcv_nxt,
		.win = 65535,
		.data = "xx",
		.len = 2,
		.sport = p.port };
	s.bad_cksum = true;
	h_input(&s);
	assert_int_equal(H_CNT(BAD_CKSUM), 1);
	s.bad_cksum = false;
	s.ol_flags = RTE_MBUF_F_RX_L4_CKSUM_BAD; /* the NIC says bad */
	h_input(&s);
	assert_int_equal(H_CNT(BAD_CKSUM), 2);
	s.ol_flags = 0;
	s.doff_override = 4;
	h_input(&s);
	s.doff_override = 15; /* 60-byte header in a 22-byte segment */
	h_input(&s);
	assert_int_equal(H_CNT(BAD_HDR), 2);
	s.doff_override = 0;
	s.flags = SYN | FIN;
	h_input(&s);
	s.flags = SYN | RST;
	h_input(&s);
	s.flags = 0;
	h_input(&s);
	s.flags = FIN | PSH | RTE_TCP_URG_FLAG;
	h_input(&s);
	assert_int_equal(H_CNT(BAD_FLAGS), 4);
	s.flags = ACK;
	s.opts = bad_mss;
	s.optlen = 4;
	h_input(&s);
	s.opts = past_end;
	h_input(&s);
	s.opts = zero_len;
	h_input(&s);
	assert_int_equal(H_CNT(BAD_OPTIONS), 3);
	/* shorter than a TCP header */
	m = rte_pktmbuf_alloc(h_lc.pool);
	assert_non_null(rte_pktmbuf_append(m, 30));
	memset(rte_pktmbuf_mtod(m, void *), 0x45, 30);
	rte_pktmbuf_adj(m, 20);
	m->l3_len = 20;
	tcp_input(&h_lc, m);
	assert_int_equal(H_CNT(BAD_HDR), 3);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(h_app.readables, 0);
	assert_int_equal(tcp_recv_avail(h_app.c), 0);
	/* the NIC vouches for a checksum: not checked again */
	s.opts = NULL;
	s.optlen = 0;
	s.bad_cksum = true;
	s.ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	h_input(&s);
	assert_int_equal(tcp_recv_avail(h_app.c), 2);
	assert_int_equal(H_CNT(BAD_CKSUM), 2);
}

static void
test_unknown_flow_rst(void **state)
{
	struct h_seg s = { .flags = ACK, .seq = 1234, .ack = 5678, .win = 100, .sport = 2000 };
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST); /* <SEQ=SEG.ACK><CTL=RST> */
	assert_int_equal(h_cap[0].seq, 5678);
	assert_int_equal(h_cap[0].dport, 2000);
	assert_int_equal(H_CNT(UNKNOWN_FLOW), 1);
	/* a closed port: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN count */
	h_clear();
	s = (struct h_seg){ .flags = SYN,
		.seq = 777,
		.win = 100,
		.sport = 2001,
		.dport = 9999,
		.data = "0123456789",
		.len = 10 };
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST | ACK);
	assert_int_equal(h_cap[0].seq, 0);
	assert_int_equal(h_cap[0].ack, 777 + 10 + 1);
	assert_int_equal(h_cap[0].sport, 9999);
	assert_int_equal(H_CNT(NO_LISTENER), 1);
	/* a RST is never answered */
	h_clear();
	s = (struct h_seg){ .flags = RST, .seq = 1, .sport = 2002 };
	h_input(&s);
	s.dport = 9999;
	h_input(&s);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

static void
test_accept_refused(void **state)
{
	struct h_seg s = { .flags = SYN, .seq = 99, .win = 65535, .sport = 2100 };
	uint32_t iss;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_app.refuse = true;
	h_input(&s);
	iss = h_cap[0].seq;
	h_clear();
	s = (struct h_seg){ .flags = ACK, .seq = 100, .ack = iss + 1, .win = 65535, .sport = 2100 };
	h_input(&s);
	assert_int_equal(h_app.accepts, 1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST | ACK);
	assert_int_equal(h_cap[0].seq, iss + 1);
	assert_int_equal(h_app.closes, 0); /* never accepted: no closed() */
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(H_CNT(ACCEPT_REFUSED), 1);
}

static void
test_paws(void **state)
{
	uint8_t opts[12] = { 1, 1, 8, 10, 0, 0, 0, 50, 0, 0, 0, 0 }; /* TSval 50 < 101 */
	struct h_peer p;
	struct h_seg s;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_establish(&p, 40018, true);
	s = (struct h_seg){ .flags = ACK,
		.seq = p.snd_nxt,
		.ack = p.rcv_nxt,
		.win = 65535,
		.opts = opts,
		.optlen = 12,
		.data = "old",
		.len = 3,
		.sport = p.port };
	h_clear();
	h_input(&s);
	h_flush();
	assert_int_equal(H_CNT(PAWS), 1);
	assert_int_equal(tcp_recv_avail(h_app.c), 0);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].tsecr, 101);
}

static void
test_fini_aborts_all(void **state)
{
	struct h_peer p;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	for (uint16_t port = 3000; port < 3003; port++) {
		struct tcp_conn *c = h_establish(&p, port, false);

		assert_int_equal(tcp_write(c, "pending", 7), 7);
		h_send(&p, ACK, "unread", 6);
	}
	h_flush();
	h_clear();
	tcp_lcore_fini(&h_lc);
	assert_int_equal(h_ncap, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(h_cap[i].flags, RST | ACK);
	assert_int_equal(h_app.closes, 3);
	assert_int_equal(h_app.why, TCP_CLOSE_SHUTDOWN);
	assert_int_equal(h_pool_in_use(), 0);
}

static void
test_mem_stats(void **state)
{
	static uint8_t buf[3000];
	struct tcp_mem_stats ms;
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40019, false);
	tcp_mem_stats(&h_lc, &ms);
	assert_true(ms.tcb_bytes + ms.hash_bytes_per_entry <= 2048);
	assert_int_equal(ms.flows, 1);
	assert_int_equal(ms.flows_by_state[TCP_ST_ESTABLISHED], 1);
	assert_int_equal(ms.sndq_mbufs + ms.rcvq_mbufs + ms.ooo_mbufs, 0);
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_send(&p, ACK, "abc", 3);
	h_send(&p, ACK, "def", 3); /* copied into the first one's room */
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.sndq_bytes, 3000);
	assert_int_equal(ms.sndq_mbufs, 2);
	assert_int_equal(ms.rcvq_bytes, 6);
	assert_int_equal(ms.rcvq_mbufs, 1);
	printf("TCB %u bytes, hash ~%u bytes per entry\n", ms.tcb_bytes, ms.hash_bytes_per_entry);
}

static void
test_close_with_unread_data_resets(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40020, false);
	h_send(&p, ACK, "unread", 6);
	h_clear();
	tcp_close(c);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST | ACK);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_ABORT);
	assert_int_equal(H_CNT(CLOSE_UNREAD), 1);
	h_flush();
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

static void
test_data_after_close_resets(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40021, false);
	tcp_close(c);
	h_flush();
	h_clear();
	h_send(&p, ACK, "late", 4);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST | ACK);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_ABORT);
	assert_int_equal(H_CNT(DATA_AFTER_CLOSE), 1);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

static void
test_half_close_keeps_reading(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	cfg.keepalive = true;
	cfg.keepalive_idle_ms = 100;
	cfg.keepalive_intvl_ms = 10;
	cfg.keepalive_probes = 1;
	h_setup(&cfg);
	c = h_establish(&p, 40022, false);
	h_app.consume = true;
	tcp_shutdown(c);
	h_flush();
	p.rcv_nxt = p.iss + 2;
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
	assert_int_equal(tcp_write(c, "no", 2), -ENOTCONN);
	h_advance_ms(1000); /* neither keepalive nor an orphan timeout: the app still reads */
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
	h_send(&p, ACK | PSH, "more", 4);
	assert_int_equal(h_app.rxlen, 4);
	assert_memory_equal(h_app.rx, "more", 4);
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_NORMAL);
}

static void
test_recv_split_and_chained_input(void **state)
{
	static uint8_t buf[1000], got[1000];
	struct rte_mbuf *m;
	struct h_peer p;
	struct tcp_conn *c;
	struct h_seg s;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40023, false);
	fill(buf, sizeof(buf), 0);
	/* a two-mbuf segment, the split inside the TCP header itself */
	s = (struct h_seg){ .flags = ACK,
		.seq = p.snd_nxt,
		.ack = p.rcv_nxt,
		.win = 65535,
		.data = buf,
		.len = 600,
		.sport = p.port,
		.split = 12 };
	h_input(&s);
	/* and one split inside the payload */
	s.seq += 600;
	s.data = buf + 600;
	s.len = 400;
	s.split = 20 + 150;
	h_input(&s);
	assert_int_equal(tcp_recv_avail(c), 1000);
	/* the app takes less than a segment: it gets a copy of the first 300 bytes */
	m = tcp_recv(c, 300);
	assert_non_null(m);
	assert_int_equal(m->pkt_len, 300);
	assert_memory_equal(rte_pktmbuf_read(m, 0, 300, got), buf, 300);
	rte_pktmbuf_free(m);
	m = tcp_recv(c, 10000);
	assert_non_null(m);
	assert_int_equal(m->pkt_len, 700);
	assert_memory_equal(rte_pktmbuf_read(m, 0, 700, got), buf + 300, 700);
	rte_pktmbuf_free(m);
	assert_null(tcp_recv(c, 10000));
}

static void
test_ooo_merge_and_limit(void **state)
{
	static uint8_t buf[4000];
	struct tcp_mem_stats ms;
	struct h_peer p;
	uint32_t base;
	(void)state;

	cfg_default(); /* 65536-byte buffer, MSS 1460: 89 out-of-order segments per flow */
	h_setup(&cfg);
	h_establish(&p, 40024, false);
	h_app.consume = true;
	fill(buf, sizeof(buf), 0);
	base = p.snd_nxt;
	/* adjacent pieces after a hole are merged into one mbuf */
	for (uint32_t off = 100; off < 1000; off += 100)
		seg_at(&p, ACK, base + off, buf + off, 100);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.ooo_bytes, 900);
	assert_int_equal(ms.ooo_mbufs, 1);
	/* pieces with holes between them each need a slot: the 90th is refused */
	for (uint32_t i = 0; i < 89; i++)
		seg_at(&p, ACK, base + 1010 + 20 * i, buf + 1010 + 20 * i, 10);
	assert_int_equal(H_CNT(OOO_DROP), 1);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.ooo_mbufs, 89);
	/* the first hole fills: [0, 1000) comes out, the rest stays held */
	seg_at(&p, ACK, base, buf, 100);
	assert_int_equal(h_app.rxlen, 1000);
	assert_memory_equal(h_app.rx, buf, 1000);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.ooo_mbufs, 88);
}

static void
test_beyond_window(void **state)
{
	static uint8_t buf[3000];
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	cfg.rcvbuf_bytes = 2000;
	cfg.wscale = 0;
	h_setup(&cfg);
	c = h_establish(&p, 40025, false);
	fill(buf, sizeof(buf), 0);
	/* 2500 bytes and a FIN into a 2000-byte window: the tail is cut, the FIN with it */
	h_send(&p, ACK, buf, 1460);
	assert_int_equal(tcp_recv_avail(c), 1460);
	h_clear();
	seg_at(&p, ACK | FIN, p.snd_nxt, buf + 1460, 1040);
	assert_int_equal(tcp_recv_avail(c), 2000);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED); /* the FIN was cut off */
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 2000);
	assert_int_equal(h_cap[0].win, 0);
	/* wholly beyond the window: dropped with an ACK */
	h_clear();
	seg_at(&p, ACK, p.isn + 1 + 5000, buf, 100);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.isn + 1 + 2000);
	assert_int_equal(H_CNT(OUT_OF_WINDOW), 1);
	assert_int_equal(tcp_recv_avail(c), 2000);
}

static void
test_fin_and_rst_in_other_states(void **state)
{
	struct h_seg syn = { .flags = SYN, .seq = 500, .win = 65535, .sport = 40026 };
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t iss;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	/* SYN_RECEIVED: an exact RST ends the half-open flow quietly */
	h_input(&syn);
	assert_int_equal(tcp_flow_count(&h_lc), 1);
	syn = (struct h_seg){ .flags = RST, .seq = 501, .sport = 40026 };
	h_input(&syn);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(h_app.accepts + h_app.closes, 0);

	/* SYN_RECEIVED: the handshake ACK carries data and the FIN */
	h_clear();
	syn = (struct h_seg){ .flags = SYN, .seq = 700, .win = 65535, .sport = 40027 };
	h_input(&syn);
	iss = h_cap[0].seq;
	h_app.consume = true;
	syn = (struct h_seg){ .flags = ACK | FIN,
		.seq = 701,
		.ack = iss + 1,
		.win = 65535,
		.data = "all",
		.len = 3,
		.sport = 40027 };
	h_input(&syn);
	c = h_app.c;
	assert_non_null(c);
	assert_int_equal(tcp_conn_state(c), TCP_ST_CLOSE_WAIT);
	assert_int_equal(h_app.rxlen, 3);
	assert_true(tcp_conn_eof(c));
	/* CLOSE_WAIT: the FIN again (our ACK was lost) is ACKed again */
	h_flush();
	h_clear();
	h_input(&syn);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, 701 + 3 + 1);
	assert_int_equal(tcp_conn_state(c), TCP_ST_CLOSE_WAIT);
	/* LAST_ACK: an exact RST instead of the last ACK */
	tcp_close(c);
	assert_int_equal(tcp_conn_state(c), TCP_ST_LAST_ACK);
	syn = (struct h_seg){ .flags = RST, .seq = 705, .sport = 40027 };
	h_input(&syn);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_RESET);

	/* TIME_WAIT: an exact RST ends it early (RFC 1337 hazard accepted, as Linux) */
	c = h_establish(&p, 40028, false);
	tcp_close(c);
	h_flush();
	p.rcv_nxt = p.iss + 2;
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	assert_int_equal(tcp_flow_count(&h_lc), 1);
	h_send(&p, RST, NULL, 0);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(h_app.closes, 2); /* once, at TIME_WAIT: not again for the RST */
}

static void
test_time_wait_reuse(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct h_seg syn;
	uint32_t old_rcv;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = h_establish(&p, 40029, false);
	tcp_close(c);
	h_flush();
	p.rcv_nxt = p.iss + 2;
	h_send(&p, ACK | FIN, NULL, 0);
	assert_int_equal(tcp_conn_state(c), TCP_ST_TIME_WAIT);
	old_rcv = p.snd_nxt;
	/* an old-looking SYN (sequence not past the old connection's): challenge ACK */
	h_flush();
	h_clear();
	syn = (struct h_seg){ .flags = SYN, .seq = old_rcv - 10, .win = 65535, .sport = 40029 };
	h_input(&syn);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(H_CNT(TIME_WAIT_REUSED), 0);
	/* a SYN past it: TIME_WAIT gives way and the new connection starts */
	h_clear();
	syn.seq = old_rcv + 100000;
	h_input(&syn);
	assert_int_equal(H_CNT(TIME_WAIT_REUSED), 1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, SYN | ACK);
	assert_int_equal(h_cap[0].ack, old_rcv + 100001);
	assert_int_equal(tcp_flow_count(&h_lc), 1);
	assert_int_equal(h_app.closes, 1); /* the old connection's closed() was not repeated */
	syn = (struct h_seg){ .flags = ACK,
		.seq = old_rcv + 100001,
		.ack = h_cap[0].seq + 1,
		.win = 65535,
		.sport = 40029 };
	h_input(&syn);
	assert_int_equal(h_app.accepts, 2);
	assert_int_equal(tcp_conn_state(h_app.c), TCP_ST_ESTABLISHED);
}

static void
test_sack(void **state)
{
	uint8_t opts[8] = { 2, 4, 0x05, 0xb4, 1, 1, 4, 2 }; /* MSS 1460, SACK permitted */
	uint8_t sack[12] = { 1, 1, 5, 10 };
	static uint8_t buf[5 * 1460];
	struct h_seg s = {
		.flags = SYN, .seq = 1000, .win = 65535, .opts = opts, .optlen = 8, .sport = 40030
	};
	struct tcp_conn *c;
	uint32_t iss, l, r;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].optlen, 8); /* MSS, NOP NOP SACK-permitted */
	assert_memory_equal(h_cap[0].data - 4, "\x01\x01\x04\x02", 4);
	iss = h_cap[0].seq;
	s = (struct h_seg){
		.flags = ACK, .seq = 1001, .ack = iss + 1, .win = 65535, .sport = 40030
	};
	h_input(&s);
	c = h_app.c;
	assert_non_null(c);

	/* receiving: a hole, then our ACK carries the SACK block of what we hold */
	h_clear();
	s.seq = 1001 + 100;
	s.data = "sacked";
	s.len = 6;
	h_input(&s);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, 1001);
	assert_int_equal(h_cap[0].optlen, 12);
	assert_memory_equal(h_cap[0].data - 12, "\x01\x01\x05\x0a", 4);
	memcpy(&l, h_cap[0].data - 8, 4);
	memcpy(&r, h_cap[0].data - 4, 4);
	assert_int_equal(rte_be_to_cpu_32(l), 1101);
	assert_int_equal(rte_be_to_cpu_32(r), 1107);
	/* our data segments give way to the SACK option: MSS less 12 bytes */
	fill(buf, sizeof(buf), 0);
	h_clear();
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(h_cap[0].len, 1460 - 12);
	/* the hole fills: no more SACK blocks, full-sized segments again */
	h_clear();
	s.seq = 1001;
	s.data = buf;
	s.len = 100;
	s.ack = iss + 1;
	h_input(&s);
	assert_int_equal(tcp_recv_avail(c), 106);
	h_flush();
	assert_true(h_ncap >= 1);
	assert_int_equal(h_cap[0].optlen, 0);

	/* sending: the peer's ACKs ride on its data (never duplicate ACKs) but SACK three
	 * segments beyond SND.UNA: the first segment is lost, retransmit it at once */
	h_clear();
	l = rte_cpu_to_be_32(iss + 1 + 1448);
	r = rte_cpu_to_be_32(iss + 1 + 1448 + 3 * 1460);
	memcpy(sack + 4, &l, 4);
	memcpy(sack + 8, &r, 4);
	s = (struct h_seg){ .flags = ACK,
		.seq = 1107,
		.ack = iss + 1,
		.win = 65535,
		.opts = sack,
		.optlen = 12,
		.data = "more",
		.len = 4,
		.sport = 40030 };
	h_input(&s);
	assert_int_equal(H_CNT(SACK_RECOVERY), 1); /* the scoreboard's (tcp_sack.c) */
	assert_int_equal(H_CNT(FAST_REXMT), 1);
	assert_int_equal(H_CNT(DUP_ACKS), 0);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].seq, iss + 1);
	assert_int_equal(h_cap[0].len, 1448); /* the segment as it was sent */
	assert_memory_equal(h_cap[0].data, buf, 1448);
	/* a bogus block (beyond what we sent) is ignored */
	r = rte_cpu_to_be_32(iss + 1 + 100000);
	memcpy(sack + 8, &r, 4);
	h_app.c = c;
	s.seq = 1111;
	h_input(&s);
	assert_int_equal(H_CNT(SACK_RECOVERY), 1);
}

static void
test_pool_pressure_closes_windows(void **state)
{
	static struct rte_mbuf *hog[4095];
	static uint8_t buf[1000];
	struct h_peer p;
	unsigned n = 0;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	h_establish(&p, 40031, false);
	h_app.consume = true;
	/* drain the pool below 1/8 free */
	while (h_lc.pool->size - h_pool_in_use() >= h_lc.pool->size / 8)
		assert_non_null(hog[n++] = rte_pktmbuf_alloc(h_lc.pool));
	h_advance_ms(1);
	assert_int_equal(H_CNT(MEM_PRESSURE), 1);
	/* the app reads everything, yet the right edge does not move: the window shrinks as
	 * data arrives (what was offered stays offered) */
	h_send(&p, ACK | PSH, buf, sizeof(buf));
	h_send(&p, ACK | PSH, buf, sizeof(buf));
	assert_int_equal(h_app.rxlen, 2000);
	h_clear();
	h_flush();
	h_advance_ms(40); /* the delayed ACK */
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].win, 65535 - 2000);
	/* the pool recovers: the next ACK offers the whole buffer again */
	while (n > 0)
		rte_pktmbuf_free(hog[--n]);
	h_advance_ms(1);
	h_clear();
	h_send(&p, ACK | PSH, buf, 10);
	h_advance_ms(40);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].win, 65535);
	assert_int_equal(H_CNT(MEM_PRESSURE), 1);
}

/* --- active open (tcp_connect.c) --- */

#define PEER_SVC 5000

/* tcp_connect to the peer's PEER_SVC; checks the SYN and returns it (h_cap[0]). */
static struct tcp_conn *
connect_syn(struct h_out *syn)
{
	struct tcp_conn *c = NULL;

	h_clear();
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, PEER_SVC, &h_ops, &h_app, &c), 0);
	assert_non_null(c);
	assert_int_equal(tcp_conn_state(c), TCP_ST_SYN_SENT);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, SYN);
	assert_int_equal(h_cap[0].dst_be, H_PEER_IP);
	assert_int_equal(h_cap[0].dport, PEER_SVC);
	assert_true(h_cap[0].sport >= 1024);
	*syn = h_cap[0];
	return c;
}

/* The peer's SYN-ACK to our SYN, from PEER_SVC; opts as given. */
static void
synack(const struct h_out *syn, uint32_t isn, const uint8_t *opts, unsigned optlen)
{
	struct h_seg s = { .flags = SYN | ACK,
		.seq = isn,
		.ack = syn->seq + 1,
		.win = 29200,
		.opts = opts,
		.optlen = optlen,
		.sport = PEER_SVC,
		.dport = syn->sport };

	h_clear();
	h_input(&s);
}

/* A flow whose application held its data (the broker holding a publisher back) while the pool
 * went low: its window closed. The application then reads it all, still under pressure: the
 * window it can offer is one MSS, less than the step an open window waits for, but out of a
 * zero window it is announced (RFC 1122 4.2.3.3's threshold), not left to the peer's
 * zero-window probe (whose backoff may be seconds by then). It went nowhere before. */
static void
test_window_update_under_pressure(void **state)
{
	static struct rte_mbuf *hog[4095];
	static uint8_t buf[1460];
	struct rte_mbuf *m;
	struct tcp_conn *c;
	struct h_peer p;
	unsigned n = 0;
	(void)state;

	cfg_default();
	cfg.rcvbuf_bytes = 8 * 1460;
	h_setup(&cfg);
	c = h_establish(&p, 40033, false);
	while (h_lc.pool->size - h_pool_in_use() >= h_lc.pool->size / 8)
		assert_non_null(hog[n++] = rte_pktmbuf_alloc(h_lc.pool));
	h_advance_ms(1);
	assert_int_equal(H_CNT(MEM_PRESSURE), 1);
	for (int i = 0; i < 8; i++) /* what was offered: the window closes */
		h_send(&p, ACK | PSH, buf, sizeof(buf));
	h_flush();
	h_advance_ms(40);
	h_flush();
	assert_true(h_ncap >= 1);
	assert_int_equal(h_cap[h_ncap - 1].win, 0);
	h_clear();
	assert_non_null(m = tcp_recv(c, UINT32_MAX)); /* all of it, the pool still low */
	assert_int_equal(m->pkt_len, 8 * 1460);
	rte_pktmbuf_free(m);
	h_flush();
	assert_int_equal(h_ncap, 1); /* one MSS, out of a zero window */
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].ack, p.snd_nxt);
	assert_int_equal(h_cap[0].win, 1460);
	/* the pool recovers: the peer's segment into that MSS gets the whole buffer back */
	while (n > 0)
		rte_pktmbuf_free(hog[--n]);
	h_advance_ms(2);
	h_clear();
	h_send(&p, ACK | PSH, buf, sizeof(buf));
	assert_non_null(m = tcp_recv(c, UINT32_MAX));
	rte_pktmbuf_free(m);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].ack, p.snd_nxt);
	assert_int_equal(h_cap[0].win, 8 * 1460);
}

static void
test_active_open(void **state)
{
	/* MSS 1400, NOP WS 7, NOP NOP TS(500, echo) */
	uint8_t opts[20] = { 2, 4, 0x05, 0x78, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0x01, 0xf4 };
	struct h_peer p;
	struct h_out syn;
	struct tcp_mem_stats ms;
	static uint8_t buf[3000];
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = connect_syn(&syn);
	assert_int_equal(syn.mss, 1460);
	assert_int_equal(syn.wscale, 2);
	assert_true(syn.has_ts);
	assert_int_equal(syn.tsecr, 0);
	assert_int_equal(syn.win, 65535);
	assert_int_equal(H_CNT(CONNECT), 1);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.flows_by_state[TCP_ST_SYN_SENT], 1);
	assert_int_equal(ms.half_open, 0); /* SYN flood accounting is for passive opens */
	assert_int_equal(tcp_send_space(c), 0);
	assert_int_equal(tcp_write(c, "x", 1), -ENOTCONN);

	/* the SYN-ACK echoes our TSval: the handshake completes, the third segment is an ACK */
	memcpy(opts + 16,
	    (uint8_t[]){ (uint8_t)(syn.tsval >> 24), (uint8_t)(syn.tsval >> 16),
		(uint8_t)(syn.tsval >> 8), (uint8_t)syn.tsval },
	    4);
	synack(&syn, 0xfffffff8u, opts, 20);
	assert_int_equal(h_app.connects, 1);
	assert_ptr_equal(h_app.c, c);
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	assert_int_equal(H_CNT(CONN_CONNECTED), 1);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, ACK);
	assert_int_equal(h_cap[0].seq, syn.seq + 1);
	assert_int_equal(h_cap[0].ack, 0xfffffff9u);
	assert_int_equal(h_cap[0].tsecr, 500);
	assert_int_equal(h_cap[0].win, 65536 >> 2); /* scaled from now on */

	/* data both ways: our segments are the peer's MSS less the timestamps */
	p = (struct h_peer){ .port = PEER_SVC,
		.isn = 0xfffffff8u,
		.snd_nxt = 0xfffffff9u,
		.iss = syn.seq,
		.rcv_nxt = syn.seq + 1,
		.ts = true,
		.tsval = 500 };
	fill(buf, sizeof(buf), 0);
	h_clear();
	assert_int_equal(tcp_write(c, buf, sizeof(buf)), (int)sizeof(buf));
	h_flush();
	assert_int_equal(h_ncap, 3);
	assert_int_equal(h_cap[0].len, 1388);
	assert_int_equal(h_cap[0].dport, PEER_SVC);
	assert_memory_equal(h_cap[1].data, buf + 1388, 1388);
	/* the harness's peer talks to H_PORT: this one is at our ephemeral port */
	{
		struct h_seg d = { .flags = ACK | PSH,
			.seq = p.snd_nxt,
			.ack = syn.seq + 1 + 3000,
			.win = 1000,
			.data = "hello",
			.len = 5,
			.sport = PEER_SVC,
			.dport = syn.sport };

		h_app.consume = true;
		h_clear();
		h_input(&d);
		assert_int_equal(h_app.rxlen, 5);
		assert_memory_equal(h_app.rx, "hello", 5);
		assert_int_equal(h_app.writables, 1);
	}
	/* abort: RST, closed() once */
	tcp_abort(c);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_ABORT);
}

static void
test_active_open_no_options(void **state)
{
	struct h_out syn;
	struct tcp_conn *c;
	(void)state;

	cfg_default();
	h_setup(&cfg);
	c = connect_syn(&syn);
	synack(&syn, 1000, NULL, 0); /* a minimal peer: no MSS, no scaling, no timestamps */
	assert_int_equal(tcp_conn_state(c), TCP_ST_ESTABLISHED);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].win, 65535); /* our window unscaled: the peer did not agree */
	assert_false(h_cap[0].has_ts);
	h_clear();
	{
		static uint8_t buf[1000];

		assert_int_equal(tcp_write(c, buf, sizeof(buf)), 1000);
		h_flush();
		assert_int_equal(h_ncap, 2);
		assert_int_equal(h_cap[0].len, 536); /* RFC 879 default MSS */
	}
}

static void
test_active_open_refused_and_bad_acks(void **state)
{
	struct h_out syn;
	struct h_seg s = { .sport = PEER_SVC, .win = 1000 };
	(void)state;

	cfg_default();
	h_setup(&cfg);
	(void)connect_syn(&syn);
	s.dport = syn.sport;

	/* an ACK for something we never sent: RST with its ACK as our SEQ, we stay in SYN_SENT */
	s.flags = SYN | ACK;
	s.seq = 77;
	s.ack = syn.seq;
	h_clear();
	h_input(&s);
	assert_int_equal(H_CNT(BAD_HANDSHAKE_ACK), 1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST);
	assert_int_equal(h_cap[0].seq, syn.seq);
	assert_int_equal(h_app.closes, 0);

	/* a RST without ACK is not acceptable in SYN_SENT */
	s.flags = RST;
	s.ack = 0;
	h_clear();
	h_input(&s);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(h_app.closes, 0);
	/* a SYN without ACK (simultaneous open) is dropped and counted */
	s.flags = SYN;
	h_input(&s);
	assert_int_equal(H_CNT(SIMULTANEOUS_OPEN), 1);
	assert_int_equal(h_app.closes, 0);

	/* RST+ACK acknowledging our SYN: refused */
	s.flags = RST | ACK;
	s.seq = 0;
	s.ack = syn.seq + 1;
	h_input(&s);
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_RESET);
	assert_int_equal(H_CNT(CONN_REFUSED), 1);
	assert_int_equal(h_app.connects, 0);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
}

static void
test_active_open_timeout_and_close(void **state)
{
	struct h_out syn, syn2;
	struct tcp_conn *c2;
	(void)state;

	cfg_default();
	cfg.syn_retries = 2;
	h_setup(&cfg);
	(void)connect_syn(&syn);
	h_clear();
	h_advance_ms(1000); /* RTO 1 s: the SYN again, same ISS */
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, SYN);
	assert_int_equal(h_cap[0].seq, syn.seq);
	h_clear();
	h_advance_ms(1999); /* backed off to 2 s */
	assert_int_equal(h_ncap, 0);
	h_advance_ms(1);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(H_CNT(SYN_REXMT), 2);
	h_advance_ms(4000); /* retries exhausted */
	assert_int_equal(h_app.closes, 1);
	assert_int_equal(h_app.why, TCP_CLOSE_TIMEOUT);
	assert_int_equal(H_CNT(CONNECT_TIMEOUT), 1);
	assert_int_equal(tcp_flow_count(&h_lc), 0);

	/* two opens to the same service take different ports; closing one before the SYN-ACK
	 * ends it quietly (closed(ABORT), nothing sent), and a late SYN-ACK gets a RST */
	c2 = connect_syn(&syn);
	(void)connect_syn(&syn2);
	assert_int_not_equal(syn.sport, syn2.sport);
	h_clear();
	tcp_close(c2);
	h_flush();
	assert_int_equal(h_ncap, 0);
	assert_int_equal(h_app.closes, 2);
	assert_int_equal(h_app.why, TCP_CLOSE_ABORT);
	synack(&syn, 5, NULL, 0);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RST);
	assert_int_equal(tcp_flow_count(&h_lc), 1);
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 0, &h_ops, &h_app, &c2), -EINVAL);
	/* a source address that is not ours is refused; an extra one of ours is used as given */
	assert_int_equal(
	    tcp_connect(&h_lc, H_PEER_IP, H_PEER_IP, PEER_SVC, &h_ops, &h_app, &c2), -EINVAL);
	h_lc.extra_ip_be[0] = 0x0a0012c6u; /* 198.18.0.10 */
	h_lc.n_extra_ip = 1;
	h_clear();
	assert_int_equal(
	    tcp_connect(&h_lc, 0x0a0012c6u, H_PEER_IP, PEER_SVC, &h_ops, &h_app, &c2), 0);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].src_be, 0x0a0012c6u);
	h_lc.n_extra_ip = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mem_stats_match_heap),
		cmocka_unit_test_teardown(test_handshake_options, teardown),
		cmocka_unit_test(test_input_burst_as_one_at_a_time),
		cmocka_unit_test_teardown(test_data_echo_piggyback, teardown),
		cmocka_unit_test_teardown(test_delayed_ack, teardown),
		cmocka_unit_test_teardown(test_ack_every_second_small_segment, teardown),
		cmocka_unit_test_teardown(test_delack_keeps_wheel_slot, teardown),
		cmocka_unit_test_teardown(test_window_backpressure, teardown),
		cmocka_unit_test_teardown(test_out_of_order_and_dup, teardown),
		cmocka_unit_test_teardown(test_rto_retransmit, teardown),
		cmocka_unit_test_teardown(test_rto_min_bounds_variance, teardown),
		cmocka_unit_test_teardown(test_rto_gives_up, teardown),
		cmocka_unit_test_teardown(test_fast_retransmit, teardown),
		cmocka_unit_test_teardown(test_peer_fin_close_wait_last_ack, teardown),
		cmocka_unit_test_teardown(test_our_fin_time_wait, teardown),
		cmocka_unit_test_teardown(test_simultaneous_close, teardown),
		cmocka_unit_test_teardown(test_fin_wait_1_to_time_wait, teardown),
		cmocka_unit_test_teardown(test_rst_exact_vs_challenge, teardown),
		cmocka_unit_test_teardown(test_syn_on_established, teardown),
		cmocka_unit_test_teardown(test_bad_ack_and_rate_limit, teardown),
		cmocka_unit_test_teardown(test_syn_cookies, teardown),
		cmocka_unit_test_teardown(test_half_open_expires, teardown),
		cmocka_unit_test_teardown(test_zero_window_probe, teardown),
		cmocka_unit_test_teardown(test_keepalive, teardown),
		cmocka_unit_test_teardown(test_bad_segments, teardown),
		cmocka_unit_test_teardown(test_unknown_flow_rst, teardown),
		cmocka_unit_test_teardown(test_accept_refused, teardown),
		cmocka_unit_test_teardown(test_paws, teardown),
		cmocka_unit_test_teardown(test_fini_aborts_all, teardown),
		cmocka_unit_test_teardown(test_mem_stats, teardown),
		cmocka_unit_test_teardown(test_close_with_unread_data_resets, teardown),
		cmocka_unit_test_teardown(test_data_after_close_resets, teardown),
		cmocka_unit_test_teardown(test_half_close_keeps_reading, teardown),
		cmocka_unit_test_teardown(test_recv_split_and_chained_input, teardown),
		cmocka_unit_test_teardown(test_ooo_merge_and_limit, teardown),
		cmocka_unit_test_teardown(test_beyond_window, teardown),
		cmocka_unit_test_teardown(test_fin_and_rst_in_other_states, teardown),
		cmocka_unit_test_teardown(test_time_wait_reuse, teardown),
		cmocka_unit_test_teardown(test_sack, teardown),
		cmocka_unit_test_teardown(test_pool_pressure_closes_windows, teardown),
		cmocka_unit_test_teardown(test_window_update_under_pressure, teardown),
		cmocka_unit_test_teardown(test_active_open, teardown),
		cmocka_unit_test_teardown(test_active_open_no_options, teardown),
		cmocka_unit_test_teardown(test_active_open_refused_and_bad_acks, teardown),
		cmocka_unit_test_teardown(test_active_open_timeout_and_close, teardown),
	};

	if (h_eal_init() < 0) {
		fprintf(stderr, "rte_eal_init failed\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
