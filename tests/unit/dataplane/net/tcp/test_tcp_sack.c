/*
 * test_tcp_sack.c: the sender's SACK scoreboard (tcp_sack.c) at its edges, with a peer that
 * crafts its ACKs and SACK blocks: the 64 segments a scoreboard tracks (the flight stops
 * there whatever cwnd and the window allow), SACK blocks to ignore (beyond what was sent,
 * reversed, stale), a cumulative ACK inside a segment (the repair starts at SND.UNA), D-SACK
 * in both forms of RFC 2883 and RACK's reordering window widened once per round trip (RFC
 * 8985 6.2 step 4), and the tail loss probe (RFC 8985 7) that resends the last segment with
 * our FIN, followed by the window reduction of 7.4 unless a D-SACK shows the probe was not
 * needed. test_tcp_recovery.c holds the main loss patterns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <rte_byteorder.h>
#include <rte_tcp.h>

#include "tcp_harness.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define ACK RTE_TCP_ACK_FLAG
#define SYN RTE_TCP_SYN_FLAG
#define FIN RTE_TCP_FIN_FLAG

static struct tcp_config cfg;
static uint8_t buf[200 * 1460];
static uint32_t mss;

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

/* h_open_sack, with the MSS the flow took kept in mss. */
static struct tcp_conn *
open_sack(struct h_peer *p, uint16_t port, uint16_t m)
{
	struct tcp_conn *c = h_open_sack(p, port, m);

	mss = c->mss;
	return c;
}

/* A flow with an RTT sample (the first segment acknowledged after rtt ms). */
static struct tcp_conn *
open_timed(struct h_peer *p, uint16_t port, uint32_t rtt)
{
	struct tcp_conn *c = open_sack(p, port, 1460);

	assert_int_equal(tcp_write(c, buf, 100), 100);
	h_flush();
	h_advance_ms(rtt);
	h_ack_sack(p, c->snd_max, NULL, 0);
	assert_int_not_equal(c->srtt8, 0);
	h_clear();
	return c;
}

/* A fresh lcore with a timed flow (open_timed) and nseg full segments written and sent. */
static struct tcp_conn *
timed_flight(struct h_peer *p, uint16_t port, unsigned nseg)
{
	struct tcp_conn *c;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = open_timed(p, port, 20);
	assert_int_equal(tcp_write(c, buf, nseg * mss), (int)(nseg * mss));
	h_flush();
	return c;
}

/* A scoreboard tracks at most TCP_SB_SEGS segments in flight: with cwnd and the peer's
 * window both above that (small segments), the flight stops at 64 and each ACK of one lets
 * one more go. */
static void
test_scoreboard_bounds_flight(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	unsigned most = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.sndbuf_bytes = 256 * 1024;
	h_setup(&cfg);
	c = open_sack(&p, 47001, 536);
	assert_int_equal(mss, 536);
	assert_int_equal(tcp_write(c, buf, 400 * 536), 400 * 536);
	h_flush();
	/* one ACK per segment: slow start doubles cwnd each round trip */
	for (int i = 0; i < 400 && c->cwnd <= 80u * 536; i++) {
		unsigned flight;

		h_clear();
		h_ack_sack(&p, c->snd_una + 536, NULL, 0);
		h_flush();
		flight = (c->snd_max - c->snd_una) / 536;
		assert_true(flight <= TCP_SB_SEGS);
		most = flight > most ? flight : most;
	}
	assert_true(c->cwnd > 80u * 536);
	assert_true(c->snd_wnd > 80u * 536);
	assert_int_equal(most, TCP_SB_SEGS);
	assert_int_equal(c->snd_max - c->snd_una, TCP_SB_SEGS * 536);
	h_clear();
	h_ack_sack(&p, c->snd_una + 536, NULL, 0);
	h_flush();
	assert_int_equal(h_n_data(), 1);
	assert_int_equal(H_CNT(SB_EXHAUSTED), 0);
}

/* SACK blocks that say nothing: beyond SND.MAX (never sent), reversed, below SND.UNA when not
 * the first (stale): nothing is marked, no recovery. A cumulative ACK inside a segment moves
 * that segment's start: when it is found lost, the repair starts at SND.UNA (and when its
 * mbuf cannot be had at the ACK, it goes at the flush). */
static void
test_sack_blocks_ignored_and_partial_ack(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	c = timed_flight(&p, 47002, 8);
	assert_int_equal(h_n_data(), 8);
	{
		uint32_t b0 = c->snd_una;
		const uint32_t junk[4][2] = {
			{ b0 + 6 * mss, b0 + 20 * mss }, /* beyond SND.MAX */
			{ b0 + 5 * mss, b0 + 3 * mss },  /* reversed */
			{ b0 - 200, b0 - 100 },          /* stale, not first: no D-SACK */
			{ b0 + 2 * mss, b0 + 2 * mss },  /* empty */
		};
		const uint32_t holes[1][2] = { { b0 + 2 * mss, b0 + 8 * mss } };

		h_advance_ms(5);
		/* none of them marks anything */
		h_ack_sack(&p, b0, junk, 4);
		assert_int_equal(tcp_sb_of(c)->sacked, 0);
		assert_false(c->flags & TF_RECOVERY);
		assert_int_equal(H_CNT(DSACK_RCVD), 0);
		/* segment 0 and 100 bytes of 1 arrive; 1's rest is lost, 2..7 arrive */
		/* the repair's first mbuf cannot be had: it goes at the flush, once */
		h_clear();
		h_fail_alloc.next = 1;
		h_ack_sack(&p, b0 + mss + 100, holes, 1);
		assert_int_equal(H_CNT(MBUF_FAIL), 1);
		h_flush();
		assert_true(c->flags & TF_RECOVERY);
		assert_true(h_n_data() >= 1);
		assert_int_equal(h_cap[0].seq, b0 + mss + 100);
		assert_int_equal(h_cap[0].len, mss - 100);
		for (unsigned i = 1; i < h_ncap; i++)
			assert_int_not_equal(h_cap[i].seq, b0 + mss + 100);
	}
}

/* A cumulative ACK that ends inside a SACKed segment (a peer that acknowledges part of what it
 * SACKed, or segments cut again after a smaller MSS): the part it covers leaves the SACKed
 * total with it, and once everything is acknowledged nothing is left counted as SACKed (the
 * total drifted upwards by the part before: pipe and PRR's DeliveredData read it). */
static void
test_partial_ack_of_sacked_segment(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t b0;
	(void)state;

	c = timed_flight(&p, 47006, 6);
	assert_int_equal(h_n_data(), 6);
	b0 = c->snd_una;
	{
		const uint32_t blk[1][2] = { { b0 + 2 * mss, b0 + 4 * mss } };

		h_advance_ms(5);
		h_ack_sack(&p, b0 + mss, blk, 1);
		assert_int_equal(tcp_sb_of(c)->sacked, 2 * mss);
		h_ack_sack(&p, b0 + 2 * mss + 100, blk, 1);
		assert_int_equal(tcp_sb_of(c)->sacked, 2 * mss - 100);
		h_ack_sack(&p, b0 + 4 * mss, NULL, 0);
		assert_int_equal(tcp_sb_of(c)->sacked, 0);
		h_ack_sack(&p, b0 + 6 * mss, NULL, 0);
		assert_int_equal(c->snd_una, c->snd_max);
	}
	if (tcp_sb_of(c) != NULL)
		assert_int_equal(tcp_sb_of(c)->sacked, 0);
}

/* D-SACK (RFC 2883): below the cumulative ACK (4.1.1), or a first block inside the second
 * (4.2, a duplicate above it). Each is counted; RACK's reordering window widens once per
 * round trip however many come in it (RFC 8985 6.2 step 4), and again in the next. */
static void
test_dsack_forms_and_rounds(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t b0;
	(void)state;

	c = timed_flight(&p, 47003, 10);
	b0 = c->snd_una;
	assert_int_equal(tcp_sb_of(c)->reo_mult, 1);
	/* the copies reported are ours: three segments sent again, as a retransmission counts
	 * them (test_dsack_network_copy: a copy the network made does not widen the window) */
	tcp_sb_of(c)->dsack_credit = 3;
	{
		const uint32_t below[1][2] = { { b0, b0 + mss } };
		const uint32_t inside[2][2] = { { b0 + 6 * mss, b0 + 7 * mss },
			{ b0 + 5 * mss, b0 + 8 * mss } };

		h_ack_sack(&p, b0 + 3 * mss, below, 1);
		assert_int_equal(H_CNT(DSACK_RCVD), 1);
		assert_int_equal(tcp_sb_of(c)->reo_mult, 2);
		h_ack_sack(&p, b0 + 4 * mss, inside, 2);
		assert_int_equal(H_CNT(DSACK_RCVD), 2);
		assert_int_equal(tcp_sb_of(c)->reo_mult, 2); /* same round trip */
		/* 5..7 were SACKed by the second block */
		assert_int_equal(tcp_sb_of(c)->sacked, 3 * mss);
	}
	/* the round ends when what was in flight at the first D-SACK is acknowledged */
	h_flush();
	assert_int_equal(tcp_write(c, buf, 4 * mss), (int)(4 * mss));
	h_flush();
	{
		uint32_t end = c->snd_max;
		const uint32_t old[1][2] = { { b0 + mss, b0 + 2 * mss } };

		h_ack_sack(&p, b0 + 10 * mss, old, 1);
		assert_true(SEQ_LT(b0 + 10 * mss, end));
		assert_int_equal(H_CNT(DSACK_RCVD), 3);
		assert_int_equal(tcp_sb_of(c)->reo_mult, 3);
	}
}

/* A D-SACK of a segment never sent again reports a copy the network made (the lab's relay
 * duplicates 1 %): counted, but RACK's reordering window stays (widened, it would leave real
 * losses found a round trip late). The D-SACK of a copy we sent (the tail loss probe's) widens
 * it. */
static void
test_dsack_network_copy(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t b0;
	(void)state;

	c = timed_flight(&p, 47007, 5);
	b0 = c->snd_una;
	{
		const uint32_t net[1][2] = { { b0, b0 + mss } };

		h_ack_sack(&p, b0 + 2 * mss, net, 1);
	}
	assert_int_equal(H_CNT(DSACK_RCVD), 1);
	assert_int_equal(tcp_sb_of(c)->reo_mult, 1);
	/* nothing new to send: the probe sends the last segment again */
	h_clear();
	h_advance_ms(300);
	assert_int_equal(H_CNT(TLP_PROBE), 1);
	assert_int_equal(h_n_at(b0 + 4 * mss), 1);
	{
		const uint32_t ours[2][2] = { { b0 + 4 * mss, b0 + 5 * mss },
			{ b0 + 4 * mss, b0 + 5 * mss } };

		h_ack_sack(&p, b0 + 3 * mss, ours, 2);
	}
	assert_int_equal(H_CNT(DSACK_RCVD), 2);
	assert_int_equal(tcp_sb_of(c)->reo_mult, 2);
}

/* The tail loss probe when the last segment carried our FIN: nothing new to send, so the last
 * segment goes again, FIN and all. */
static struct tcp_conn *
tail_with_fin(struct h_peer *p, uint16_t port)
{
	struct tcp_conn *c = open_timed(p, port, 20);
	uint32_t b0 = c->snd_una;

	assert_int_equal(tcp_write(c, buf, 3 * mss), (int)(3 * mss));
	tcp_close(c);
	h_flush();
	assert_int_equal(h_n_data(), 3);
	assert_int_equal(h_cap[2].flags & FIN, FIN);
	h_advance_ms(10);
	h_ack_sack(p, b0 + 2 * mss, NULL, 0); /* the last one (and the FIN) gets no answer */
	h_clear();
	for (int i = 0; i < 1000 && h_ncap == 0; i++)
		h_advance_ms(1);
	assert_int_equal(H_CNT(TLP_PROBE), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].seq, b0 + 2 * mss);
	assert_int_equal(h_cap[0].len, mss);
	assert_int_equal(h_cap[0].flags & FIN, FIN);
	return c;
}

/* RFC 8985 7.4: the probe alone repaired the tail (its ACK came without a D-SACK): a loss,
 * so the window is reduced as a recovery would have done. */
static void
test_tlp_fin_probe_repairs(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = tail_with_fin(&p, 47004);
	cwnd = c->cwnd;
	h_advance_ms(20); /* the probe's round trip (an ACK sooner was sent for the original) */
	h_ack_sack(&p, c->snd_max, NULL, 0);
	assert_int_equal(H_CNT(TLP_RECOVERED), 1);
	assert_true(c->cwnd < cwnd);
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
}

/* The original arrived after all: the ACK carries a D-SACK for the probe's copy, so there
 * was no loss and the window stays. */
static void
test_tlp_fin_probe_not_needed(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = tail_with_fin(&p, 47005);
	cwnd = c->cwnd;
	{
		const uint32_t dup[1][2] = { { c->snd_max - 1 - mss, c->snd_max - 1 } };

		h_ack_sack(&p, c->snd_max, dup, 1);
	}
	assert_int_equal(H_CNT(DSACK_RCVD), 1);
	assert_int_equal(H_CNT(TLP_RECOVERED), 0);
	assert_true(c->cwnd >= cwnd); /* not reduced (the ACK of new data may grow it) */
	assert_int_equal(tcp_conn_state(c), TCP_ST_FIN_WAIT_2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_scoreboard_bounds_flight, teardown),
		cmocka_unit_test_teardown(test_sack_blocks_ignored_and_partial_ack, teardown),
		cmocka_unit_test_teardown(test_partial_ack_of_sacked_segment, teardown),
		cmocka_unit_test_teardown(test_dsack_forms_and_rounds, teardown),
		cmocka_unit_test_teardown(test_dsack_network_copy, teardown),
		cmocka_unit_test_teardown(test_tlp_fin_probe_repairs, teardown),
		cmocka_unit_test_teardown(test_tlp_fin_probe_not_needed, teardown),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
