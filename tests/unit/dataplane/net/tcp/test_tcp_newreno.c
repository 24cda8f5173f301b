/*
 * test_tcp_newreno.c: loss recovery for flows without a SACK scoreboard (tcp_recovery.c):
 * peers that do not offer SACK (many embedded stacks), and SACK flows when the lcore's
 * scoreboard pool is exhausted. RFC 5681 3.2 fast recovery with the window inflated by each
 * further duplicate ACK, RFC 6582's partial ACK (the next hole resent at once) and its rule
 * against a second fast retransmit for the window an RTO already went back over, and SACK
 * blocks taken as RFC 6675's DupThresh in bytes (stale and nonsense blocks ignored, a block
 * reaching below SND.UNA clipped), and Early Retransmit (RFC 5827) for a flight too small for
 * three duplicate ACKs. Losses are played by a peer that crafts its ACKs.
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
#define MSS 1460

static struct tcp_config cfg;
static uint8_t buf[40 * MSS];

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

/* Our segment i (MSS-sized) as a sequence number. */
static uint32_t
sq(const struct h_peer *p, unsigned i)
{
	return p->iss + 1 + i * MSS;
}

/* Segments 0 and 5 of a window are lost, no SACK. The third duplicate ACK resends 0 (fast
 * retransmit); each further one inflates the window by an MSS and new data goes (RFC 5681
 * 3.2 step 4); the ACK of 0..4 is partial: 5 goes at once (RFC 6582 3.2 step 5), no RTO;
 * the full ACK ends recovery with no burst (cwnd at most flight + MSS). */
static void
test_fast_recovery_two_holes(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	unsigned sent_during = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.cc = TCP_CC_NEWRENO;
	h_setup(&cfg);
	c = h_establish(&p, 46001, false);
	assert_false(c->flags & TF_SACK_OK);
	assert_int_equal(tcp_write(c, buf, 30 * MSS), 30 * MSS);
	h_flush();
	assert_int_equal(h_n_data(), 10);
	h_advance_ms(20);
	/* segments 1..4 and 6..9 arrive: eight duplicate ACKs (the peer ACKs each at once) */
	for (unsigned k = 1; k <= 8; k++) {
		h_clear();
		p.rcv_nxt = sq(&p, 0);
		h_send(&p, ACK, NULL, 0);
		h_flush();
		if (k <= 2) { /* Limited Transmit */
			assert_int_equal(h_n_data(), 1);
		} else if (k == 3) {
			assert_int_equal(H_CNT(FAST_REXMT), 1);
			assert_true(c->flags & TF_RECOVERY);
			assert_true(h_n_at(sq(&p, 0)) > 0);
		} else {
			sent_during += h_n_data();
		}
	}
	assert_true(sent_during > 0); /* the inflated window let new data out */
	assert_int_equal(h_n_at(sq(&p, 5)), 0);
	/* the retransmission of 0 arrives: ACK of 0..4 only (5 is lost): partial */
	h_clear();
	p.rcv_nxt = sq(&p, 5);
	h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_true(h_n_at(sq(&p, 5)) > 0);
	assert_true(c->flags & TF_RECOVERY);
	assert_int_equal(H_CNT(FAST_REXMT), 1);
	/* the peer's data meanwhile (neither new ACK nor duplicate) changes nothing */
	h_send(&p, ACK, "x", 1);
	assert_true(c->flags & TF_RECOVERY);
	/* everything sent before recovery began is acknowledged: recovery ends */
	p.rcv_nxt = c->snd_recover;
	h_send(&p, ACK, NULL, 0);
	assert_false(c->flags & TF_RECOVERY);
	assert_true(c->cwnd <= c->snd_max - c->snd_una + MSS);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	/* slow start back up to ssthresh, then congestion avoidance: one ACK of one segment
	 * grows cwnd by MSS * MSS / cwnd, about one MSS per window (RFC 5681 3.1) */
	for (int i = 0; i < 20 && c->cwnd < c->ssthresh; i++) {
		h_flush();
		p.rcv_nxt = c->snd_una + MSS;
		h_send(&p, ACK, NULL, 0);
	}
	h_flush();
	assert_true(c->cwnd >= c->ssthresh);
	assert_true(c->snd_max - c->snd_una >= MSS);
	{
		uint32_t before = c->cwnd;

		p.rcv_nxt = c->snd_una + MSS;
		h_send(&p, ACK, NULL, 0);
		assert_int_equal(c->cwnd, before + MSS * MSS / before);
	}
}

/* After an RTO went back to SND.UNA, duplicate ACKs for data of that same window (the peer
 * got part of it) must not start a fast retransmit (RFC 6582 3.2 step 1 and section 4):
 * that would halve the window a second time for the same loss. */
static void
test_no_fast_retransmit_after_rto(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.cc = TCP_CC_NEWRENO;
	h_setup(&cfg);
	c = h_establish(&p, 46002, false);
	assert_int_equal(tcp_write(c, buf, 10 * MSS), 10 * MSS);
	h_flush();
	h_clear();
	h_advance_ms(c->rto_ms + 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	assert_true(h_n_at(sq(&p, 0)) > 0);
	p.rcv_nxt = sq(&p, 0);
	for (int k = 0; k < 3; k++)
		h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_int_equal(H_CNT(DUP_ACKS), 3);
	assert_int_equal(H_CNT(FAST_REXMT), 0);
	assert_false(c->flags & TF_RECOVERY);
	/* slow start after the RTO: cwnd was one MSS, Limited Transmit's loan is paid back
	 * (RFC 3042), and byte counting at L = 1 SMSS (RFC 5681 3.1) grows it by one MSS for
	 * an ACK of three segments, not three */
	assert_true(c->cwnd < c->ssthresh);
	p.rcv_nxt = sq(&p, 3);
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(c->cwnd, 2 * MSS);
}

/* A SACK flow whose lcore has no scoreboard left (SB_EXHAUSTED) recovers as NewReno, taking
 * SACK blocks as DupThresh in bytes (RFC 6675: three MSS above SND.UNA): a D-SACK, a stale
 * block, a reversed one and one beyond what we sent count for nothing; a block that starts
 * below SND.UNA counts from SND.UNA. */
static void
test_sack_without_scoreboard(void **state)
{
	uint8_t opts[8] = { 2, 4, 0x05, 0xb4, 1, 1, 4, 2 };
	struct h_peer p[17];
	struct tcp_conn *c = NULL;
	unsigned i;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.max_flows = 64; /* 16 scoreboards */
	h_setup(&cfg);
	assert_int_equal(h_lc.tcp->n_sbs, 16);
	for (i = 0; i < 17; i++) {
		struct h_seg s = { .flags = SYN,
			.seq = 100,
			.win = 65535,
			.opts = opts,
			.optlen = 8,
			.sport = (uint16_t)(46100 + i) };

		memset(&p[i], 0, sizeof(p[i]));
		p[i].port = s.sport;
		h_clear();
		h_input(&s);
		p[i].iss = h_cap[0].seq;
		p[i].snd_nxt = 101;
		p[i].rcv_nxt = p[i].iss + 1;
		h_send(&p[i], ACK, NULL, 0);
		c = h_app.c;
		assert_int_equal(tcp_write(c, buf, 8 * MSS), 8 * MSS);
		h_flush();
	}
	assert_int_equal(H_CNT(SB_EXHAUSTED), 1);
	assert_null(tcp_sb_of(c));
	{
		struct h_peer *q = &p[16];
		const uint32_t none[4][2] = {
			{ sq(q, 0) - 100, sq(q, 0) }, /* D-SACK: below SND.UNA */
			{ sq(q, 6), sq(q, 20) },      /* beyond what we sent */
			{ sq(q, 5), sq(q, 3) },       /* reversed */
			{ sq(q, 1), sq(q, 3) + 100 }, /* 2 MSS + 100: not yet three */
		};
		const uint32_t more[2][2] = {
			{ sq(q, 0), sq(q, 2) }, /* reaches below SND.UNA (seg 0 acked): 1 MSS */
			{ sq(q, 3), sq(q, 5) }, /* 2 MSS: three in all */
		};

		h_clear();
		h_ack_sack(q, sq(q, 0), none, 4);
		assert_int_equal(H_CNT(SACK_LOSS), 0);
		assert_false(c->flags & TF_RECOVERY);
		h_clear();
		h_ack_sack(q, sq(q, 1), more, 2);
		h_flush();
		assert_int_equal(H_CNT(SACK_LOSS), 1);
		assert_int_equal(H_CNT(FAST_REXMT), 1);
		assert_true(c->flags & TF_RECOVERY);
		assert_true(h_n_at(sq(q, 1)) > 0);
		/* in recovery, more blocks start nothing new */
		h_ack_sack(q, sq(q, 1), more, 2);
		assert_int_equal(H_CNT(SACK_LOSS), 1);
	}
}

/* Early Retransmit (RFC 5827), no SACK: a reply of three segments, the first lost, nothing
 * more queued. Limited Transmit has nothing to send, so three duplicate ACKs never come:
 * the second (one fewer than the segments out) resends segment 0, without waiting for the
 * RTO. With data queued beyond the flight, the duplicate ACKs let it out instead (Limited
 * Transmit) and nothing is resent early. */
static void
test_early_retransmit(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 46003, false);
	assert_int_equal(tcp_write(c, buf, 3 * MSS), 3 * MSS);
	h_flush();
	assert_int_equal(h_n_data(), 3);
	h_clear();
	h_advance_ms(20);
	p.rcv_nxt = sq(&p, 0);
	h_send(&p, ACK, NULL, 0); /* segment 1 arrived */
	h_flush();
	assert_int_equal(h_n_data(), 0);
	assert_int_equal(H_CNT(EARLY_REXMT), 0);
	h_send(&p, ACK, NULL, 0); /* segment 2 */
	h_flush();
	assert_int_equal(H_CNT(EARLY_REXMT), 1);
	assert_int_equal(H_CNT(FAST_REXMT), 1);
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	assert_true(c->flags & TF_RECOVERY);
	p.rcv_nxt = sq(&p, 3);
	h_send(&p, ACK, NULL, 0);
	assert_false(c->flags & TF_RECOVERY);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	h_teardown();

	/* more queued than the flight: Limited Transmit, no early retransmit */
	h_setup(&cfg);
	c = h_establish(&p, 46004, false);
	assert_int_equal(tcp_write(c, buf, 3 * MSS), 3 * MSS);
	h_flush();
	assert_int_equal(tcp_write(c, buf, 2 * MSS), 2 * MSS);
	h_clear();
	p.rcv_nxt = sq(&p, 0);
	h_send(&p, ACK, NULL, 0);
	h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_int_equal(H_CNT(EARLY_REXMT), 0);
	assert_int_equal(h_n_at(sq(&p, 0)), 0);
	assert_int_equal(h_n_at(sq(&p, 3)), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fast_recovery_two_holes, teardown),
		cmocka_unit_test_teardown(test_no_fast_retransmit_after_rto, teardown),
		cmocka_unit_test_teardown(test_sack_without_scoreboard, teardown),
		cmocka_unit_test_teardown(test_early_retransmit, teardown),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
