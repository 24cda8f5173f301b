/*
 * test_tcp_queues.c: the buffers of dataplane/net/tcp/tcp_buf.c at their edges, through
 * crafted segments and the API. Receive side: the out-of-order queue and the SACK blocks our
 * ACKs carry (RFC 2018 4: the block with the newest segment first, joined runs reported with
 * the newest segment in them, the oldest block left out when there are more than fit; RFC
 * 2883: data that came twice reported once, first), held
 * segments that in-order data covers whole or in part, and the cap on out-of-order mbufs
 * across all flows. App side: mbufs the app still references (a clone, refcnt > 1) are never
 * written into, empty chains and empty segments, reads of zero bytes, a split read without
 * an mbuf. Every byte delivered or sent is compared with what the peer or app wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <rte_byteorder.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "tcp_harness.h"
#include "tcp_types.h"

#define ACK RTE_TCP_ACK_FLAG
#define SYN RTE_TCP_SYN_FLAG
#define PSH RTE_TCP_PSH_FLAG

static struct tcp_config cfg;
static uint8_t stream[64 * 1024];

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

/* The peer's byte stream: byte i of it. */
static void
stream_fill(void)
{
	for (unsigned i = 0; i < sizeof(stream); i++)
		stream[i] = (uint8_t)(i * 13 + i / 251);
}

/* A passive open whose SYN offers SACK (and timestamps when ts); the peer p as h_establish
 * leaves it. */
static struct tcp_conn *
open_sack(struct h_peer *p, uint16_t port, bool ts)
{
	uint8_t opts[20] = { 2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0 };
	struct h_seg s = { .flags = SYN,
		.seq = 5000,
		.win = 65535,
		.opts = opts,
		.optlen = ts ? 20 : 8,
		.sport = port };

	memset(p, 0, sizeof(*p));
	p->port = port;
	p->ts = ts;
	p->tsval = 9;
	h_clear();
	h_input(&s);
	p->iss = h_cap[0].seq;
	p->snd_nxt = 5001;
	p->rcv_nxt = p->iss + 1;
	h_send(p, ACK, NULL, 0);
	assert_non_null(h_app.c);
	assert_true(h_app.c->flags & TF_SACK_OK);
	h_clear();
	return h_app.c;
}

/* Stream bytes [off, off + len) from the peer, at sequence number 5001 + off. */
static void
send_at(struct h_peer *p, uint32_t off, uint32_t len)
{
	uint32_t keep = p->snd_nxt;

	p->snd_nxt = 5001 + off;
	h_send(p, ACK, stream + off, len);
	p->snd_nxt = keep;
}

/* The SACK blocks of a captured segment, as stream offsets; returns how many. */
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
			for (unsigned b = 0; b < (p[i + 1] - 2u) / 8; b++, n++)
				for (unsigned k = 0; k < 2; k++) {
					const uint8_t *q = p + i + 2 + 8 * b + 4 * k;

					blk[n][k] = ((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
							(uint32_t)q[2] << 8 | q[3]) -
					    5001;
				}
		i += p[i + 1];
	}
	return n;
}

/* The last segment we sent, which must be an ACK: its SACK blocks. */
static unsigned
last_sack(uint32_t (*blk)[2])
{
	assert_true(h_ncap > 0);
	assert_int_equal(h_cap[h_ncap - 1].flags & ACK, ACK);
	return sack_of(&h_cap[h_ncap - 1], blk);
}

/* Two full-sized segments side by side are held as two mbufs (no room to join them) but
 * reported as one block; that block counts as new as its newest segment (RFC 2018 4). */
static void
test_sack_joined_run_newest(void **state)
{
	uint32_t blk[4][2];
	struct h_peer p;
	(void)state;

	stream_fill();
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	open_sack(&p, 45001, false);
	send_at(&p, 1460, 1460);     /* A */
	send_at(&p, 5 * 1460, 1460); /* C, after another hole */
	h_clear();
	send_at(&p, 2920, 1460); /* B: continues A, newest */
	h_flush();
	assert_int_equal(h_app.c->ooo_n, 3);
	assert_int_equal(last_sack(blk), 2);
	assert_int_equal(blk[0][0], 1460);
	assert_int_equal(blk[0][1], 3 * 1460);
	assert_int_equal(blk[1][0], 5 * 1460);
	assert_int_equal(blk[1][1], 6 * 1460);
	/* a segment before the held ones, not touching them: its own block, first */
	h_clear();
	send_at(&p, 500, 100);
	assert_int_equal(last_sack(blk), 3);
	assert_int_equal(blk[0][0], 500);
	assert_int_equal(blk[1][0], 1460);
	assert_int_equal(blk[2][0], 5 * 1460);
}

/* More held ranges than blocks fit (4 without timestamps, 3 with): the oldest ones are left
 * out whatever their place in the sequence space; a duplicate of a held one makes it the
 * newest again (it is what the segment triggering the ACK carried). */
static void
test_sack_oldest_left_out(void **state)
{
	uint32_t blk[4][2];
	struct h_peer p;
	(void)state;

	stream_fill();
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	open_sack(&p, 45002, false);
	for (int k = 5; k >= 1; k--) /* highest first: the highest is the oldest */
		send_at(&p, (uint32_t)k * 1000, 100);
	assert_int_equal(last_sack(blk), 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(blk[i][0], (i + 1) * 1000);
	h_clear();
	send_at(&p, 5000, 100); /* the oldest, again: its D-SACK, then its block, the newest */
	assert_int_equal(last_sack(blk), 4);
	assert_int_equal(blk[0][0], 5000);
	assert_int_equal(blk[0][1], 5100);
	assert_int_equal(blk[1][0], 5000);
	assert_int_equal(blk[2][0], 1000);
	assert_int_equal(H_CNT(DUP_SEGS), 1);
	h_teardown();

	/* with timestamps three blocks fit beside them */
	h_setup(&cfg);
	open_sack(&p, 45003, true);
	for (int k = 5; k >= 1; k--)
		send_at(&p, (uint32_t)k * 1000, 100);
	assert_int_equal(last_sack(blk), 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(blk[i][0], (i + 1) * 1000);
}

/* Data that arrives twice is reported to its sender once, in the first SACK block of the next
 * ACK (RFC 2883 4): below RCV.NXT whole or in part, or a copy of a held out-of-order segment
 * (then the block that holds it comes second). Without it a sender cannot tell a reordered
 * segment it sent again from a lost one, nor undo the reduction (a Linux peer's CUBIC). */
static void
test_dsack_sent(void **state)
{
	uint32_t blk[4][2];
	struct h_peer p;
	(void)state;

	stream_fill();
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	open_sack(&p, 45010, true);
	send_at(&p, 0, 1000);
	h_flush();
	h_clear();
	send_at(&p, 0, 1000); /* the same again, whole */
	h_flush();
	assert_int_equal(last_sack(blk), 1);
	assert_int_equal(blk[0][0], 0);
	assert_int_equal(blk[0][1], 1000);
	assert_int_equal(h_cap[h_ncap - 1].ack, 5001 + 1000);
	assert_int_equal(H_CNT(DSACK_SENT), 1);
	h_clear();
	send_at(&p, 3000, 100); /* out of order: its block alone, the D-SACK was said once */
	h_flush();
	assert_int_equal(last_sack(blk), 1);
	assert_int_equal(blk[0][0], 3000);
	assert_int_equal(blk[0][1], 3100);
	h_clear();
	send_at(&p, 500, 1000); /* [500, 1000) again, [1000, 1500) new */
	h_flush();
	assert_int_equal(last_sack(blk), 2);
	assert_int_equal(blk[0][0], 500);
	assert_int_equal(blk[0][1], 1000);
	assert_int_equal(blk[1][0], 3000);
	assert_int_equal(h_cap[h_ncap - 1].ack, 5001 + 1500);
	h_clear();
	send_at(&p, 3000, 100); /* a held one again: D-SACK, then the block that holds it */
	h_flush();
	assert_int_equal(last_sack(blk), 2);
	assert_int_equal(blk[0][0], 3000);
	assert_int_equal(blk[0][1], 3100);
	assert_int_equal(blk[1][0], 3000);
	assert_int_equal(blk[1][1], 3100);
	h_clear();
	send_at(&p, 3050, 150); /* overlaps the held one's end: its first 50 bytes came twice */
	h_flush();
	assert_int_equal(last_sack(blk), 2);
	assert_int_equal(blk[0][0], 3050);
	assert_int_equal(blk[0][1], 3100);
	assert_int_equal(blk[1][0], 3000);
	assert_int_equal(blk[1][1], 3200);
	assert_int_equal(H_CNT(DSACK_SENT), 4);
	h_teardown();

	/* a peer that did not offer SACK gets no SACK option, D-SACK or other */
	h_setup(&cfg);
	assert_false(h_establish(&p, 45011, true)->flags & TF_SACK_OK);
	h_send(&p, ACK, stream, 1000);
	h_flush();
	h_clear();
	p.snd_nxt -= 1000;
	h_send(&p, ACK, stream, 1000);
	h_flush();
	assert_int_equal(last_sack(blk), 0);
	assert_int_equal(H_CNT(DSACK_SENT), 0);
	assert_int_equal(H_CNT(DUP_SEGS), 1);
}

/* In-order data that covers a held segment whole (it is dropped) and another in part (its
 * new bytes are kept): the app reads the stream exactly, once. */
static void
test_ooo_covered_by_in_order(void **state)
{
	struct h_peer p;
	(void)state;

	stream_fill();
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	open_sack(&p, 45004, false);
	h_app.consume = true;
	send_at(&p, 100, 100);  /* will be covered whole */
	send_at(&p, 1000, 500); /* will be covered in part */
	assert_int_equal(h_app.c->ooo_n, 2);
	send_at(&p, 0, 1200);
	assert_int_equal(h_app.c->ooo_n, 0);
	assert_int_equal(h_app.rxlen, 1500);
	assert_memory_equal(h_app.rx, stream, 1500);
	h_flush();
	assert_int_equal(h_cap[h_ncap - 1].ack, 5001 + 1500);
	assert_int_equal(h_lc.tcp->q_mbufs[TCP_Q_OOO], 0);
}

/* Out-of-order data is held for every flow within a quarter of the pool in all (peers that
 * never fill their holes cannot drain it): past that, segments are dropped (OOO_DROP) even
 * for a flow that holds few, and the flows keep working. */
static void
test_ooo_cap_across_flows(void **state)
{
	struct h_peer p[13];
	uint32_t cap, per = 80, held = 0;
	unsigned f;
	(void)state;

	stream_fill();
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	cap = h_lc.tcp->ooo_mbuf_cap;
	assert_true(per < h_lc.tcp->ooo_max_segs);
	for (f = 0; held + per <= cap; f++) {
		assert_true(f < 13);
		open_sack(&p[f], (uint16_t)(45100 + f), false);
		for (uint32_t k = 1; k <= per; k++) {
			send_at(&p[f], 2 * k, 1);
			h_clear();
		}
		assert_int_equal(h_app.c->ooo_n, per);
		held += per;
	}
	assert_int_equal(H_CNT(OOO_DROP), 0);
	open_sack(&p[f], (uint16_t)(45100 + f), false);
	for (uint32_t k = 1; k <= per; k++) {
		send_at(&p[f], 2 * k, 1);
		h_clear();
	}
	assert_int_equal(h_app.c->ooo_n, cap - held);
	assert_int_equal(H_CNT(OOO_DROP), per - (cap - held));
	assert_int_equal(h_lc.tcp->q_mbufs[TCP_Q_OOO], cap);
	/* the first hole filled: the byte after it goes to the app, and its slot is free for
	 * the next segment of any flow */
	h_app.consume = true;
	send_at(&p[f], 0, 2);
	assert_int_equal(h_app.rxlen, 3);
	assert_memory_equal(h_app.rx, stream, 3);
	assert_int_equal(h_app.c->ooo_n, cap - held - 1);
	send_at(&p[f], 1000, 1);
	assert_int_equal(h_app.c->ooo_n, cap - held);
	assert_int_equal(H_CNT(OOO_DROP), per - (cap - held));
}

/* An mbuf the app still holds a reference to (refcnt 2), or a clone of one (indirect): the
 * stack sends it but never writes the app's next bytes into it; both arrive intact. */
static void
test_shared_mbufs_not_written(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct rte_mbuf *m, *orig, *clone;
	uint8_t out[64];
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 45005, false);
	/* refcnt 2: the app keeps it */
	m = rte_pktmbuf_alloc(h_lc.pool);
	memcpy(rte_pktmbuf_append(m, 5), "hello", 5);
	rte_mbuf_refcnt_update(m, 1);
	assert_int_equal(tcp_send(c, m), 0);
	assert_int_equal(tcp_write(c, "WORLD", 5), 5);
	assert_int_equal(m->data_len, 5);
	assert_int_equal(rte_pktmbuf_tailroom(m) > 5, 1);
	assert_memory_not_equal(rte_pktmbuf_mtod_offset(m, char *, 5), "WORLD", 5);
	/* a clone: its data is the original's */
	orig = rte_pktmbuf_alloc(h_lc.pool);
	memcpy(rte_pktmbuf_append(orig, 4), "abcd", 4);
	clone = rte_pktmbuf_clone(orig, h_lc.pool);
	assert_non_null(clone);
	assert_int_equal(tcp_send(c, clone), 0);
	assert_int_equal(tcp_write(c, "wxyz", 4), 4);
	assert_int_equal(orig->data_len, 4);
	assert_memory_not_equal(rte_pktmbuf_mtod_offset(orig, char *, 4), "wxyz", 4);
	h_clear();
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].len, 18);
	memcpy(out, h_cap[0].data, 18);
	assert_memory_equal(out, "helloWORLDabcdwxyz", 18);
	/* the peer acknowledges: the stack lets go of its references */
	p.rcv_nxt += 18;
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(rte_mbuf_refcnt_read(m), 1);
	rte_pktmbuf_free(m);
	rte_pktmbuf_free(orig);
}

/* The app's odd calls: an empty chain (freed, nothing sent), a chain with an empty mbuf in
 * it (skipped), a read of zero bytes (nothing), a read that must split a segment when no mbuf
 * is left (NULL, counted, the data stays for the next read). */
static void
test_app_buffer_edges(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct rte_mbuf *m, *m2, *m3;
	uint8_t out[16];
	(void)state;

	stream_fill();
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 45006, false);
	h_clear();
	m = rte_pktmbuf_alloc(h_lc.pool);
	assert_int_equal(tcp_send(c, m), 0);
	h_flush();
	assert_int_equal(h_ncap, 0);
	m = rte_pktmbuf_alloc(h_lc.pool);
	m2 = rte_pktmbuf_alloc(h_lc.pool);
	m3 = rte_pktmbuf_alloc(h_lc.pool);
	memcpy(rte_pktmbuf_append(m, 3), "abc", 3);
	memcpy(rte_pktmbuf_append(m3, 3), "def", 3);
	assert_int_equal(rte_pktmbuf_chain(m, m2), 0);
	assert_int_equal(rte_pktmbuf_chain(m, m3), 0);
	assert_int_equal(tcp_send(c, m), 0);
	h_flush();
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].len, 6);
	assert_memory_equal(h_cap[0].data, "abcdef", 6);
	/* receive: 100 bytes held for the app */
	h_send(&p, ACK | PSH, stream, 100);
	assert_int_equal(tcp_recv_avail(c), 100);
	assert_null(tcp_recv(c, 0));
	h_fail_alloc.next = 1;
	assert_null(tcp_recv(c, 10));
	assert_int_equal(H_CNT(MBUF_FAIL), 1);
	assert_int_equal(tcp_recv_avail(c), 100);
	m = tcp_recv(c, 10);
	assert_non_null(m);
	assert_int_equal(m->pkt_len, 10);
	assert_memory_equal(rte_pktmbuf_read(m, 0, 10, out), stream, 10);
	rte_pktmbuf_free(m);
	assert_int_equal(tcp_recv_avail(c), 90);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sack_joined_run_newest, teardown),
		cmocka_unit_test_teardown(test_sack_oldest_left_out, teardown),
		cmocka_unit_test_teardown(test_dsack_sent, teardown),
		cmocka_unit_test_teardown(test_ooo_covered_by_in_order, teardown),
		cmocka_unit_test_teardown(test_ooo_cap_across_flows, teardown),
		cmocka_unit_test_teardown(test_shared_mbufs_not_written, teardown),
		cmocka_unit_test_teardown(test_app_buffer_edges, teardown),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
