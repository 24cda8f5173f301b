/*
 * Unit tests for loss recovery in dataplane/net/tcp (issue 16, "Loss recovery"): the SACK
 * scoreboard with RFC 6675 pipe and NextSeg, Proportional Rate Reduction (RFC 6937), RACK
 * and the tail loss probe (RFC 8985), CUBIC (RFC 9438) against NewReno. Loss patterns are
 * played by a peer that crafts its ACKs and SACK blocks by hand (drop segment N, drop a
 * retransmission, a lost tail), with the clock moved by hand; every segment the stack sends
 * is checked. Each test fails on the stack before tcp_sack.c (NewReno repairing one hole
 * per round trip, loss found only by three duplicate ACKs or 3 MSS of SACK, else the RTO).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <rte_byteorder.h>
#include <rte_tcp.h>

#include "tcp_cc.h"
#include "tcp_harness.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define ACK RTE_TCP_ACK_FLAG
#define SYN RTE_TCP_SYN_FLAG
#define MSS 1460

static struct tcp_config cfg;
static uint8_t buf[256 * MSS];

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

/* Our segment i (0-based, MSS-sized) as a sequence number. */
static uint32_t
sq(const struct h_peer *p, unsigned i)
{
	return p->iss + 1 + i * MSS;
}

/* An ACK from the peer of everything below ack, SACKing segments [b[k][0], b[k][1]) by index. */
static void
ack_sack(struct h_peer *p, unsigned ack, const unsigned (*b)[2], unsigned nb)
{
	uint32_t blk[4][2];

	assert_true(nb <= 4);
	for (unsigned k = 0; k < nb; k++) {
		blk[k][0] = sq(p, b[k][0]);
		blk[k][1] = sq(p, b[k][1]);
	}
	h_ack_sack(p, sq(p, ack), blk, nb);
}

/* Write n segments' worth and send the initial window (10 segments). */
static struct tcp_conn *
start_bulk(struct h_peer *p, uint16_t port, unsigned n)
{
	struct tcp_conn *c = h_open_sack(p, port, MSS);

	assert_int_equal(tcp_write(c, buf, n * MSS), (int)(n * MSS));
	h_flush();
	assert_int_equal(h_n_data(), RTE_MIN(n, 10u));
	h_clear();
	return c;
}

/* Three holes in one window (segments 0, 2 and 5 of 10 lost): the first SACK that shows
 * them brings all three retransmissions at once (RFC 6675 NextSeg), and new data up to
 * ssthresh beside them (PRR's slow-start bound). NewReno resent one hole per round trip. */
static void
test_sack_repairs_every_hole(void **state)
{
	static const unsigned blk[3][2] = { { 6, 10 }, { 3, 5 }, { 1, 2 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42001, 30);
	h_advance_ms(50);
	ack_sack(&p, 0, blk, 3);
	h_flush();
	assert_int_equal(H_CNT(SACK_RECOVERY), 1);
	assert_true(c->flags & TF_RECOVERY);
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	assert_int_equal(h_n_at(sq(&p, 2)), 1);
	assert_int_equal(h_n_at(sq(&p, 5)), 1);
	/* the three holes first, in order; then new data while pipe (0 now) is below ssthresh */
	assert_int_equal(h_cap[0].seq, sq(&p, 0));
	assert_int_equal(h_cap[1].seq, sq(&p, 2));
	assert_int_equal(h_cap[2].seq, sq(&p, 5));
	assert_int_equal(h_n_data(), c->ssthresh / MSS + (c->ssthresh % MSS != 0));
	assert_int_equal(h_cap[3].seq, sq(&p, 10));
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	/* all repaired: the cumulative ACK ends recovery at ssthresh (RFC 6937) */
	h_clear();
	h_advance_ms(50);
	ack_sack(&p, 10 + h_n_data(), NULL, 0);
	assert_false(c->flags & TF_RECOVERY);
	assert_int_equal(c->cwnd, c->ssthresh);
}

/* One loss in a window of ten: after it is found, each further SACK lets out what PRR
 * allows (ssthresh/RecoverFS of what was delivered), never a burst, and by the end of the
 * window the flight is ssthresh. NewReno stopped sending for half a window, then went on
 * one segment per duplicate ACK. */
static void
test_prr_paces_recovery(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct tcp_sb *sb;
	uint32_t fs = 1, ss = 0, total = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42002, 40);
	h_advance_ms(50);
	for (unsigned k = 1; k < 10; k++) {
		unsigned blk[1][2] = { { 1, k + 1 } };

		h_clear();
		ack_sack(&p, 0, blk, 1);
		h_flush();
		if (!(c->flags & TF_RECOVERY)) {
			/* Limited Transmit: one new segment per duplicate ACK */
			assert_true(k <= 2);
			assert_int_equal(h_n_data(), 1);
			continue;
		}
		sb = tcp_sb_of(c);
		assert_non_null(sb);
		if (H_CNT(SACK_RECOVERY) == 1 && total == 0) { /* the ACK that found the loss */
			assert_int_equal(h_cap[0].seq, sq(&p, 0));
			fs = sb->recover_fs;
			ss = c->ssthresh;
			assert_int_equal(fs, 12u * MSS); /* 10 + 2 of Limited Transmit */
		}
		for (unsigned i = 0; i < h_ncap; i++)
			total += h_cap[i].len;
		assert_true(h_n_data() <= 1); /* no burst */
		/* what PRR allows: ceil(delivered * ssthresh / RecoverFS), whole segments */
		assert_true(total <= (uint64_t)sb->prr_delivered * ss / fs + MSS);
		assert_true(total + MSS >= (uint64_t)sb->prr_delivered * ss / fs);
	}
	assert_int_equal(H_CNT(SACK_RECOVERY), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
}

/* A loss with one segment after it (segment 8 of 10 lost; 9 SACKed): too little SACKed for
 * DupThresh, no third duplicate ACK. RACK marks it lost when its reordering window (a quarter
 * of the minimum RTT) has passed and it is resent then, not at the RTO. */
static void
test_rack_loss_with_one_segment_after(void **state)
{
	static const unsigned blk[1][2] = { { 9, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42003, 10);
	h_advance_ms(40);
	ack_sack(&p, 8, NULL, 0); /* 0..7 arrived: RTT 40 ms */
	h_clear();
	ack_sack(&p, 8, blk, 1); /* 9 too, 8 missing */
	h_flush();
	assert_int_equal(h_n_data(), 0);  /* maybe reordering: wait min_rtt/4 */
	assert_int_equal(c->rto_ms, 240); /* (the RTO is further off) */
	h_advance_ms(9);
	assert_int_equal(h_n_data(), 0);
	h_advance_ms(2);
	assert_int_equal(H_CNT(RACK_LOST), 1);
	assert_int_equal(h_n_at(sq(&p, 8)), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_int_equal(H_CNT(TLP_PROBE), 0);
}

/* The retransmission of a lost segment is lost too. Segments sent after it are SACKed: RACK
 * (time since sent, not sequence) finds it lost again and resends it a second time, without
 * waiting for the RTO. */
static void
test_rack_lost_retransmission(void **state)
{
	static const unsigned blk1[1][2] = { { 1, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	unsigned sent;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42004, 40);
	h_advance_ms(50);
	ack_sack(&p, 0, blk1, 1); /* 0 lost */
	h_flush();
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	sent = h_n_data(); /* the retransmission of 0, then new segments 10.. */
	assert_true(sent >= 2);
	assert_int_equal(h_cap[1].seq, sq(&p, 10));
	h_clear();
	h_advance_ms(50);
	{
		/* 10.. arrived, sent with (after) the retransmission of 0, which did not */
		unsigned blk2[2][2] = { { 10, 10 + sent - 1 }, { 1, 10 } };

		ack_sack(&p, 0, blk2, 2);
	}
	h_flush();
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	assert_int_equal(H_CNT(RACK_LOST), 2);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_true(c->flags & TF_RECOVERY);
}

/* As above on a path that has reordered (RACK's window is then a quarter of the minimum RTT,
 * in recovery too): the SACK of the segments sent after the retransmission comes a window
 * before the retransmission can be called lost, and nothing comes after it (all else is
 * delivered). RACK's timer marks it lost when its window has passed and it goes a third
 * time then, in recovery as outside it (RFC 8985 6.3). Without the timer in recovery it
 * waited for the RTO: one window and a go-back (the lossy bench: one RTO in three so). */
static void
test_rack_timer_in_recovery(void **state)
{
	static const unsigned blk1[1][2] = { { 1, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	unsigned sent;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42030, 40);
	tcp_sb_of(c)->reo_seen = 1;
	c->srtt8 = 8 * 50; /* (RACK's window is at most SRTT) */
	h_advance_ms(50);
	ack_sack(&p, 0, blk1, 1); /* 0 lost (DupThresh) */
	h_flush();
	assert_true(c->flags & TF_RECOVERY);
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	sent = h_n_data(); /* 0 again, then new segments 10.. */
	assert_true(sent >= 2);
	h_clear();
	h_advance_ms(50);
	{
		unsigned blk2[2][2] = { { 10, 10 + sent - 1 }, { 1, 10 } };

		ack_sack(&p, 0, blk2, 2); /* all but 0's second copy: its window (50 / 4) left */
	}
	h_flush();
	assert_int_equal(h_n_at(sq(&p, 0)), 0);
	h_advance_ms(11);
	assert_int_equal(h_n_at(sq(&p, 0)), 0);
	h_advance_ms(2);
	assert_int_equal(H_CNT(RACK_LOST), 1);  /* (the first loss was DupThresh's) */
	assert_int_equal(h_n_at(sq(&p, 0)), 1); /* the third copy, by the timer */
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_true(c->flags & TF_RECOVERY);
}

/* The retransmission of the first unacknowledged segment is lost too, and RACK sends it a
 * third time 50 ms after the second: the RTO counts from that copy (as Linux re-arms it when it
 * sends the head again), not from the second. Counted from the second, it fires before the
 * third copy can be acknowledged: one window and a go-back for a loss RACK had repaired (the
 * lossy bench saw most of its RTOs so, at 3 % loss both ways and 40 ms RTT). */
static void
test_rto_from_head_sent_again(void **state)
{
	static const unsigned blk1[1][2] = { { 1, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	unsigned sent;
	uint32_t rto;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42005, 40);
	h_advance_ms(50);
	ack_sack(&p, 0, blk1, 1); /* 0 lost: sent again now */
	h_flush();
	sent = h_n_data();
	h_clear();
	h_advance_ms(50);
	{
		unsigned blk2[2][2] = { { 10, 10 + sent - 1 }, { 1, 10 } };

		ack_sack(&p, 0, blk2, 2); /* 0's second copy lost: the third goes now */
	}
	h_flush();
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	rto = c->rto_ms;
	h_advance_ms(rto - 40); /* the second copy's RTO has passed, not the third's */
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_true(c->flags & TF_RECOVERY);
	h_advance_ms(41);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1); /* nothing came for it either: the RTO */
}

/* The last segment of a burst is lost: nothing after it to SACK, no duplicate ACK. With one
 * segment out the probe timeout is 2 SRTT + the allowance for the peer's delayed ACK, here 4
 * RTTVAR (80 ms after the first sample), under the RTO: the probe goes at 160 ms, as a probe:
 * no backoff, no window of one segment. Its ACK alone repaired a loss, so the window is
 * reduced as a recovery would (RFC 8985 7.4). */
static void
test_tlp_recovers_lost_tail(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42005, 3);
	h_advance_ms(40);
	ack_sack(&p, 2, NULL, 0); /* 0 and 1 arrived, 2 (the tail) did not */
	h_flush();
	assert_int_equal(c->srtt8 / 8, 40);
	assert_int_equal(c->rto_ms, 240); /* SRTT + rto_min */
	h_clear();
	h_advance_ms(159);
	assert_int_equal(h_n_data(), 0);
	h_advance_ms(1);
	assert_int_equal(H_CNT(TLP_PROBE), 1);
	assert_int_equal(h_n_data(), 1);
	assert_int_equal(h_cap[0].seq, sq(&p, 2));
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_int_equal(c->rto_ms, 240); /* no backoff */
	cwnd = c->cwnd;
	assert_true(cwnd > MSS);
	h_advance_ms(40);
	ack_sack(&p, 3, NULL, 0);
	assert_int_equal(H_CNT(TLP_RECOVERED), 1);
	assert_true(c->cwnd < cwnd);
	assert_int_equal(c->snd_una, c->snd_max);
	assert_int_equal(c->sb_ref, 0); /* nothing in flight: the block went back */
}

/* Recovery ends with segments it sent still in flight, and the last of them is lost: the ACK
 * that ended the recovery arms the probe timeout (2 SRTT), not the RTO it armed while the
 * recovery was still on. Armed as the RTO, the lost tail waited 200 ms and went with a window
 * of one segment (the lossy bench saw one such RTO in five). */
static void
test_probe_after_recovery(void **state)
{
	static const unsigned blk[1][2] = { { 2, 11 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42013, 11);
	h_advance_ms(40);
	ack_sack(&p, 1, NULL, 0); /* an RTT sample: 40 ms; segment 10 goes */
	h_flush();
	h_advance_ms(5);
	ack_sack(&p, 1, blk, 1); /* 1 lost: recovery, up to segment 11 */
	h_flush();
	assert_true(c->flags & TF_RECOVERY);
	assert_int_equal(h_n_at(sq(&p, 1)), 1);
	assert_int_equal(tcp_write(c, buf, 2 * MSS), (int)(2 * MSS));
	h_flush();
	assert_int_equal(h_n_at(sq(&p, 12)), 1); /* 11 and 12 sent during the recovery */
	h_clear();
	h_advance_ms(40);
	ack_sack(&p, 11, NULL, 0); /* recovery over; 11 and 12 in flight, lost */
	h_flush();
	assert_false(c->flags & TF_RECOVERY);
	assert_int_equal(c->snd_max - c->snd_una, 2 * MSS);
	h_advance_ms(100); /* 2 SRTT: 80 ms */
	assert_int_equal(H_CNT(TLP_PROBE), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_int_equal(h_n_at(sq(&p, 12)), 1); /* nothing new: the last segment again */
}

/* RFC 8985 6.2 step 4: a reordering window a D-SACK widened goes back to its base after 16
 * recoveries without another (a path that reordered once is not taken to reorder for ever).
 * The block is set one recovery short of that, then one recovery runs. */
static void
test_reo_window_back_after_recoveries(void **state)
{
	static const unsigned blk[1][2] = { { 1, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42014, 10);
	tcp_sb_of(c)->reo_mult = 3;
	tcp_sb_of(c)->reo_persist = 2;
	h_advance_ms(40);
	ack_sack(&p, 0, blk, 1); /* 0 lost */
	h_flush();
	assert_true(c->flags & TF_RECOVERY);
	h_advance_ms(40);
	ack_sack(&p, 10, NULL, 0); /* the recovery ends: 15 left before the window goes back */
	assert_false(c->flags & TF_RECOVERY);
	if (tcp_sb_of(c) == NULL)
		fail_msg("the block went back with nothing in flight: nothing to look at");
	assert_int_equal(tcp_sb_of(c)->reo_mult, 3);
	assert_int_equal(tcp_sb_of(c)->reo_persist, 1);
	assert_int_equal(tcp_write(c, buf, 10 * MSS), (int)(10 * MSS));
	h_flush();
	{
		unsigned b2[1][2] = { { 11, 14 } };

		h_advance_ms(40);
		ack_sack(&p, 10, b2, 1); /* 10 lost */
		h_flush();
		assert_true(c->flags & TF_RECOVERY);
		h_advance_ms(40);
		ack_sack(&p, 14, NULL, 0);
	}
	assert_false(c->flags & TF_RECOVERY);
	assert_int_equal(tcp_sb_of(c)->reo_mult, 1);
}

/* The last two segments of a burst are lost: the probe (2 SRTT after the last ACK, the RTO
 * is further) resends the last one; its SACK shows the other missing, and RACK resends it
 * after the reordering window. No RTO. */
static void
test_tlp_then_rack(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	static const unsigned blk[1][2] = { { 3, 4 } };
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42010, 4);
	h_advance_ms(40);
	ack_sack(&p, 2, NULL, 0); /* 2 and 3 lost */
	h_flush();
	h_clear();
	h_advance_ms(79);
	assert_int_equal(h_n_data(), 0);
	h_advance_ms(1);
	assert_int_equal(H_CNT(TLP_PROBE), 1);
	assert_int_equal(h_n_data(), 1);
	assert_int_equal(h_cap[0].seq, sq(&p, 3));
	h_clear();
	h_advance_ms(40);
	ack_sack(&p, 2, blk, 1);
	h_flush();
	h_advance_ms(10);
	assert_int_equal(h_n_at(sq(&p, 2)), 1);
	assert_int_equal(H_CNT(RACK_LOST), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	ack_sack(&p, 4, NULL, 0);
	assert_int_equal(c->snd_una, c->snd_max);
}

/* With new data waiting (but cwnd full), the probe is new data, not a retransmission
 * (RFC 8985 7.3). */
static void
test_tlp_sends_new_data(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t next;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42006, 30); /* 10 in flight, 20 waiting for cwnd */
	h_advance_ms(40);
	ack_sack(&p, 1, NULL, 0); /* an RTT sample; then nothing more arrives */
	h_flush();
	next = c->snd_max;
	h_clear();
	h_advance_ms(79);
	assert_int_equal(H_CNT(TLP_PROBE), 0);
	h_advance_ms(1);
	assert_int_equal(H_CNT(TLP_PROBE), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_int_equal(h_n_data(), 1);
	assert_int_equal(h_cap[0].seq, next);
	assert_int_equal(c->snd_max, next + MSS);
}

/* CUBIC (the default) reduces to 0.7 of the flight, NewReno (the option) to half. */
static void
test_cubic_beta(void **state)
{
	static const unsigned blk[1][2] = { { 1, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42007, 10);
	h_advance_ms(50);
	ack_sack(&p, 0, blk, 1);
	assert_int_equal(c->ssthresh, 10u * MSS * 7 / 10);
	assert_int_equal(c->cc_wmax, 10u * MSS);
	h_teardown();

	tcp_config_defaults(&cfg);
	cfg.cc = TCP_CC_NEWRENO;
	h_setup(&cfg);
	c = start_bulk(&p, 42008, 10);
	h_advance_ms(50);
	ack_sack(&p, 0, blk, 1);
	assert_int_equal(c->ssthresh, 10u * MSS / 2);
}

/* The ACKs of a flight come back together (the peer's delayed ACKs, one rx burst): the first
 * acknowledges six of ten segments, the next SACKs the three after the lost seventh. The
 * reduction is from the window that lost it (ten segments), not from the four left in flight
 * once the first ACK is in: 7 segments for CUBIC, 5 for NewReno (it was 2.8 and 2). */
static void
test_beta_of_window_after_ack_burst(void **state)
{
	static const unsigned blk[1][2] = { { 7, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	for (int reno = 0; reno <= 1; reno++) {
		tcp_config_defaults(&cfg);
		cfg.cc = reno ? TCP_CC_NEWRENO : TCP_CC_CUBIC;
		h_setup(&cfg);
		c = start_bulk(&p, (uint16_t)(42010 + reno), 10);
		h_advance_ms(50);
		ack_sack(&p, 6, NULL, 0);
		assert_false(c->flags & TF_RECOVERY);
		assert_int_equal(c->snd_max - c->snd_una, 4u * MSS);
		ack_sack(&p, 6, blk, 1);
		assert_true(c->flags & TF_RECOVERY);
		assert_int_equal(c->ssthresh, reno ? 10u * MSS / 2 : 10u * MSS * 7 / 10);
		if (!reno)
			assert_int_equal(c->cc_wmax, 10u * MSS);
		h_teardown();
	}
}

/* A flow that never filled its window (a request/response flow with cwnd grown large long
 * ago) is reduced from what it had in flight: four segments, not cwnd (RFC 9438 4.6). */
static void
test_beta_of_flight_when_app_limited(void **state)
{
	static const unsigned blk[1][2] = { { 1, 4 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_open_sack(&p, 42012, MSS);
	c->cwnd = c->ssthresh = 40u * MSS;
	assert_int_equal(tcp_write(c, buf, 4 * MSS), 4 * MSS);
	h_flush();
	assert_int_equal(h_n_data(), 4);
	h_advance_ms(50);
	ack_sack(&p, 0, blk, 1);
	assert_true(c->flags & TF_RECOVERY);
	assert_int_equal(c->ssthresh, (uint32_t)(4u * MSS * 0.7)); /* as tcp_cubic.c rounds */
}

/* CUBIC's window after a reduction: concave up to W_max, which it reaches K seconds after
 * the event (K = cbrt(W_max (1 - beta) / C)), then convex beyond; Reno would need
 * (W_max - ssthresh) / MSS round trips. */
static void
test_cubic_growth(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t wmax;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.sndbuf_bytes = 4u << 20;
	h_setup(&cfg);
	c = h_open_sack(&p, 42009, MSS);
	c->srtt8 = 8 * 100; /* a 100 ms path */
	c->cwnd = c->ssthresh = 70u * MSS;
	c->cc_wmax = wmax = 100u * MSS;
	c->cc_epoch_ms = 0;
	/* K = cbrt(W_max (1 - beta) / C) = cbrt(100 x 0.3 / 0.4) = 4.2 s. One ACK of one
	 * segment every ms (a window's worth per RTT) for 2 s: W_cubic(2 s) is 95 segments,
	 * Reno would be at 90 (one segment per RTT), its friendly estimate at 81 */
	for (unsigned t = 0; t < 2000; t++) {
		h_advance_ms(1);
		tcb_tl(c)->cc->ack(c, MSS);
	}
	assert_true(c->cwnd < wmax);
	assert_true(c->cwnd > 92u * MSS);
	/* at 6 s, past K: probing beyond W_max, slowly (W_cubic(6 s) = 103) */
	for (unsigned t = 0; t < 4000; t++) {
		h_advance_ms(1);
		tcb_tl(c)->cc->ack(c, MSS);
	}
	assert_true(c->cwnd > wmax);
	assert_true(c->cwnd < 110u * MSS);
}

/* The blocks are a pool (max(16, max_flows/16)): a flow that finds none is counted and
 * sends as before (NewReno recovery); blocks go back when the flight drains. */
static void
test_sb_pool_exhausted(void **state)
{
	struct h_peer p[17];
	struct tcp_conn *c[17];
	struct tcp_mem_stats ms;
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.max_flows = 32;
	h_setup(&cfg);
	for (unsigned i = 0; i < 17; i++) {
		c[i] = h_open_sack(&p[i], (uint16_t)(42100 + i), MSS);
		assert_int_equal(tcp_write(c[i], buf, MSS), MSS);
		h_flush();
	}
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.sb_blocks, 16);
	assert_int_equal(ms.sb_used, 16);
	assert_int_equal(H_CNT(SB_EXHAUSTED), 1);
	assert_int_equal(c[16]->sb_ref, 0);
	assert_int_equal(c[16]->snd_max - c[16]->snd_una, MSS); /* it sent all the same */
	for (unsigned i = 0; i < 17; i++)
		ack_sack(&p[i], 1, NULL, 0);
	tcp_mem_stats(&h_lc, &ms);
	assert_int_equal(ms.sb_used, 0);
}

/* A D-SACK (a block below the cumulative ACK: the peer got segment 0 twice) is counted and
 * marks no segment lost: nothing is retransmitted for it. */
static void
test_dsack_counted(void **state)
{
	static const unsigned dup[][2] = { { 0, 1 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42006, 10);
	assert_true(c->sb_ref != 0);
	h_advance_ms(40);
	ack_sack(&p, 2, dup, 1);
	h_flush();
	assert_int_equal(H_CNT(DSACK_RCVD), 1);
	assert_int_equal(h_n_at(sq(&p, 0)), 0);
	assert_int_equal(h_n_at(sq(&p, 2)), 0); /* no loss marked */
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
}

/* Without a loss-recovery block (the pool is spent) a SACK flow still finds a loss from its
 * SACK blocks (3 MSS selectively acknowledged above the hole), counted SACK_LOSS, and resends
 * the hole as NewReno would. */
static void
test_sack_loss_without_block(void **state)
{
	static const unsigned above[][2] = { { 1, 5 } };
	struct h_peer p[17];
	struct tcp_conn *c[17];
	(void)state;

	tcp_config_defaults(&cfg);
	cfg.max_flows = 32;
	h_setup(&cfg);
	for (unsigned i = 0; i < 16; i++) {
		c[i] = h_open_sack(&p[i], (uint16_t)(42200 + i), MSS);
		assert_int_equal(tcp_write(c[i], buf, MSS), MSS);
		h_flush();
	}
	c[16] = start_bulk(&p[16], 42216, 5);
	assert_int_equal(c[16]->sb_ref, 0);
	h_advance_ms(40);
	ack_sack(&p[16], 0, above, 1);
	h_flush();
	assert_int_equal(H_CNT(SACK_LOSS), 1);
	assert_true(h_n_at(sq(&p[16], 0)) >= 1);
}

/* Request/response (the lossy bench's round trips): our replies are lone segments whose ACK
 * rides on the peer's next request, 40 ms later each time. The RTT samples show no delayed
 * ACK (RTTVAR decays), so a lost reply is probed 2 SRTT + 40 ms after it went (120 ms), not
 * 2 SRTT + 200 ms capped by the RTO (200 ms) as RFC 8985's worst case would have it. */
static void
test_pto_lone_reply(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t next;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_open_sack(&p, 42011, MSS);
	for (unsigned i = 0; i < 12; i++) {
		assert_int_equal(tcp_write(c, buf, 64), 64);
		h_flush();
		h_advance_ms(40);
		h_ack_sack(&p, c->snd_max, NULL, 0);
	}
	assert_int_equal(c->srtt8 / 8, 40);
	assert_true(c->rttvar4 < 40); /* 4 RTTVAR: the ACKs came when expected */
	h_clear();
	next = c->snd_max;
	assert_int_equal(tcp_write(c, buf, 64), 64); /* this reply is lost */
	h_flush();
	h_clear();
	h_advance_ms(119);
	assert_int_equal(H_CNT(TLP_PROBE), 0);
	h_advance_ms(1);
	assert_int_equal(H_CNT(TLP_PROBE), 1);
	assert_int_equal(h_n_at(next), 1);
	/* the probe was not needed after all (the peer had paused): its D-SACK keeps the
	 * window and is counted */
	{
		const uint32_t dup[1][2] = { { next, next + 64 } };
		uint32_t cwnd = c->cwnd;

		h_advance_ms(40);
		h_ack_sack(&p, next + 64, dup, 1);
		assert_int_equal(H_CNT(TLP_SPURIOUS), 1);
		assert_int_equal(H_CNT(TLP_RECOVERED), 0);
		assert_true(c->cwnd >= cwnd);
	}
	/* again, but the peer's delayed ACK of the original crosses the probe: it comes back
	 * 5 ms after the probe, sooner than any round trip, before the probe's D-SACK. It is
	 * the original's ACK: no reduction (RFC 8985 7.4 would have taken it for the probe's) */
	{
		uint32_t cwnd = c->cwnd, ss = c->ssthresh;

		next = c->snd_max;
		assert_int_equal(tcp_write(c, buf, 64), 64);
		h_flush();
		h_clear();
		h_advance_ms(120);
		assert_int_equal(H_CNT(TLP_PROBE), 2);
		assert_int_equal(h_n_at(next), 1);
		h_advance_ms(5);
		h_ack_sack(&p, next + 64, NULL, 0);
		assert_int_equal(H_CNT(TLP_SPURIOUS), 2);
		assert_int_equal(H_CNT(TLP_RECOVERED), 0);
		assert_int_equal(c->ssthresh, ss);
		assert_true(c->cwnd >= cwnd);
	}
}

/* Reordering, not loss: segment 0 comes late, after 1..3 (SACKed: RACK, with no reordering
 * seen yet, marks 0 lost at once and the window is reduced). Then 0 arrives, and its
 * retransmission after it: the peer's D-SACK (RFC 2883) shows every retransmission of the
 * episode unneeded, so cwnd, ssthresh and CUBIC's W_max go back to what they were before
 * (RFC 3708; Linux's undo), counted UNDO_DSACK. */
static void
test_dsack_undo_spurious_fast_rexmt(void **state)
{
	static const unsigned sack13[1][2] = { { 1, 4 } };
	static const unsigned dup0[1][2] = { { 0, 1 } };
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd0, ss0, wmax0;
	unsigned acked;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42012, 40);
	cwnd0 = c->cwnd;
	ss0 = c->ssthresh;
	wmax0 = c->cc_wmax;
	h_advance_ms(50);
	ack_sack(&p, 0, sack13, 1);
	h_flush();
	assert_true(c->flags & TF_RECOVERY);
	assert_int_equal(h_n_at(sq(&p, 0)), 1); /* the (spurious) fast retransmit */
	assert_true(c->ssthresh < ss0);
	assert_true(c->cwnd < cwnd0 || c->ssthresh < cwnd0);
	acked = 10 + h_n_data() - 1; /* 0..9, and the new segments recovery sent */
	h_clear();
	h_advance_ms(5);
	ack_sack(&p, 10, NULL, 0); /* the original 0 arrived: 0..9 delivered */
	h_advance_ms(5);
	ack_sack(&p, 10, dup0, 1); /* then its retransmission: D-SACK */
	h_flush();
	assert_int_equal(H_CNT(UNDO_DSACK), 1);
	assert_false(c->flags & TF_RECOVERY);
	assert_int_equal(c->ssthresh, ss0);
	assert_true(c->cwnd >= cwnd0);
	assert_int_equal(c->cc_wmax, wmax0);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	(void)acked;
}

/* The same when the flight drains first (all ten acknowledged, nothing more to send): the
 * D-SACK comes after the cumulative ACK, so the block waits for it (an RTO at most); and a
 * real loss (the retransmission filled the hole, no D-SACK) keeps the reduction and gives
 * the block back when that wait ends. */
static void
test_dsack_undo_after_drain(void **state)
{
	static const unsigned sack13[1][2] = { { 1, 4 } };
	static const unsigned dup0[1][2] = { { 0, 1 } };
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd0, ss0;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42013, 10);
	cwnd0 = c->cwnd;
	ss0 = c->ssthresh;
	h_advance_ms(50);
	ack_sack(&p, 0, sack13, 1);
	h_flush();
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	h_advance_ms(5);
	ack_sack(&p, 10, NULL, 0);
	assert_int_equal(c->snd_una, c->snd_max);
	assert_true(c->sb_ref != 0); /* held for the D-SACK */
	assert_true(c->ssthresh < ss0);
	h_advance_ms(5);
	ack_sack(&p, 10, dup0, 1);
	assert_int_equal(H_CNT(UNDO_DSACK), 1);
	assert_int_equal(c->ssthresh, ss0);
	assert_int_equal(c->cwnd, cwnd0);
	assert_int_equal(c->sb_ref, 0);
	h_teardown();

	/* a real loss: no D-SACK comes */
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42014, 10);
	h_advance_ms(50);
	ack_sack(&p, 0, sack13, 1);
	h_flush();
	h_advance_ms(50);
	ack_sack(&p, 10, NULL, 0);
	assert_true(c->sb_ref != 0);
	h_advance_ms(c->rto_ms);
	assert_int_equal(c->sb_ref, 0);
	assert_int_equal(H_CNT(UNDO_DSACK), 0);
	assert_true(c->ssthresh < ss0);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);

	/* new data while the block waits for a D-SACK: its flight gets its own timer, not
	 * the wait's end. A second episode (segment 11 lost, 12..14 SACKed), drained: */
	h_advance_ms(50);
	h_clear();
	assert_int_equal(tcp_write(c, buf, 5 * MSS), 5 * MSS);
	h_flush();
	assert_int_equal(h_n_data(), 5);
	h_advance_ms(50);
	{
		static const unsigned sack1214[1][2] = { { 12, 15 } };

		ack_sack(&p, 11, sack1214, 1);
	}
	h_flush();
	assert_int_equal(H_CNT(FAST_REXMT), 2);
	h_advance_ms(50);
	h_ack_sack(&p, c->snd_max, NULL, 0);
	h_flush();
	assert_int_equal(c->snd_una, c->snd_max);
	assert_true(c->sb_ref != 0); /* waiting for its D-SACK */
	h_advance_ms(c->rto_ms / 2);
	assert_int_equal(tcp_write(c, buf, MSS), MSS);
	h_flush();
	h_clear();
	h_advance_ms(c->rto_ms / 2 + 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_int_equal(H_CNT(TLP_PROBE), 0);
	assert_int_equal(h_n_data(), 0);
	h_advance_ms(c->rto_ms / 2); /* the probe within an RTO of the send, not of the wait */
	assert_int_equal(H_CNT(TLP_PROBE), 1);
}

/* An ACK with timestamps (TSval the peer's next, TSecr as given) and SACK blocks by index
 * of segments of ts_mss bytes (MSS 1460 less the timestamps' 12). */
static const uint32_t ts_mss = MSS - 12;

static void
ack_ts(struct h_peer *p, unsigned ack, const unsigned (*b)[2], unsigned nb, uint32_t tsecr)
{
	uint8_t opts[12 + 4 + 4 * 8] = { 1, 1, 8, 10 };
	uint32_t v = rte_cpu_to_be_32(++p->tsval), e = rte_cpu_to_be_32(tsecr);
	struct h_seg s = { .flags = ACK,
		.seq = p->snd_nxt,
		.ack = p->iss + 1 + ack * ts_mss,
		.win = 65535,
		.sport = p->port };

	memcpy(opts + 4, &v, 4);
	memcpy(opts + 8, &e, 4);
	opts[12] = 1;
	opts[13] = 1;
	opts[14] = 5;
	opts[15] = (uint8_t)(2 + 8 * nb);
	for (unsigned k = 0; k < nb; k++) {
		uint32_t l = rte_cpu_to_be_32(p->iss + 1 + b[k][0] * ts_mss);
		uint32_t r = rte_cpu_to_be_32(p->iss + 1 + b[k][1] * ts_mss);

		memcpy(opts + 16 + 8 * k, &l, 4);
		memcpy(opts + 20 + 8 * k, &r, 4);
	}
	s.opts = opts;
	s.optlen = nb > 0 ? 16 + 8 * nb : 12;
	h_input(&s);
}

/* With timestamps (Eifel, RFC 3522): segment 0 is late, not lost; 1..3 SACKed set off a
 * fast retransmit of it. The ACK that then covers everything echoes the TSval of the
 * original 0 (it filled the hole; the peer's TS.Recent came from it), older than the
 * retransmission's: the reduction is undone without waiting for a D-SACK (UNDO_EIFEL). A
 * TSecr from the retransmission keeps it. */
static void
test_eifel_undo(void **state)
{
	static const unsigned sack13[1][2] = { { 1, 4 } };
	(void)state;

	for (int spurious = 1; spurious >= 0; spurious--) {
		/* MSS 1460, SACK permitted, timestamps */
		uint8_t opts[16] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0 };
		struct h_seg syn = { .flags = SYN,
			.seq = 1000,
			.win = 65535,
			.opts = opts,
			.optlen = 16,
			.sport = (uint16_t)(42020 + spurious) };
		struct h_peer p;
		struct tcp_conn *c;
		uint32_t ss0, ts_orig, ts_rexmt = 0;

		tcp_config_defaults(&cfg);
		h_setup(&cfg);
		memset(&p, 0, sizeof(p));
		p.port = syn.sport;
		p.tsval = 100;
		h_clear();
		h_input(&syn);
		p.iss = h_cap[0].seq;
		p.snd_nxt = 1001;
		c = h_app.c;
		h_clear();
		ack_ts(&p, 0, NULL, 0, h_cap[0].tsval);
		c = h_app.c;
		assert_non_null(c);
		assert_true((c->flags & TF_SACK_OK) && (c->flags & TF_TS_OK));
		assert_int_equal(c->mss, ts_mss);
		assert_int_equal(tcp_write(c, buf, 10 * c->mss), (int)(10 * c->mss));
		h_flush();
		ts_orig = h_cap[0].tsval;
		ss0 = c->ssthresh;
		h_clear();
		h_advance_ms(50);
		ack_ts(&p, 0, sack13, 1, ts_orig);
		h_flush();
		for (unsigned i = 0; i < h_ncap; i++)
			if (h_cap[i].len > 0 && h_cap[i].seq == p.iss + 1)
				ts_rexmt = h_cap[i].tsval;
		assert_true(ts_rexmt != 0 && ts_rexmt != ts_orig);
		assert_true(c->ssthresh < ss0);
		h_advance_ms(5);
		ack_ts(&p, (unsigned)((c->snd_max - p.iss - 1) / ts_mss), NULL, 0,
		    spurious ? ts_orig : ts_rexmt);
		assert_int_equal(H_CNT(UNDO_EIFEL), (uint64_t)spurious);
		if (spurious)
			assert_int_equal(c->ssthresh, ss0);
		else
			assert_true(c->ssthresh < ss0);
		if (spurious)
			h_teardown();
	}
}

/* One round trip of a bulk sender: every data segment captured since the last is
 * acknowledged one by one, rtt ms after it went; the send buffer topped up. Returns how
 * many segments that round held. */
static unsigned
hs_round(struct h_peer *p, struct tcp_conn *c, uint32_t rtt)
{
	uint32_t ends[H_MAX_CAP];
	unsigned n = 0;

	for (unsigned i = 0; i < h_ncap; i++)
		if (h_cap[i].len > 0)
			ends[n++] = h_cap[i].seq + h_cap[i].len;
	h_clear();
	h_advance_ms(rtt);
	for (unsigned i = 0; i < n; i++)
		h_ack_sack(p, ends[i], NULL, 0);
	(void)tcp_write(c, buf, sizeof(buf));
	h_flush();
	return n;
}

/* HyStart++ (RFC 9406), CUBIC and NewReno alike: three rounds of slow start at 40 ms, then
 * the path's queue grows (60 ms, more than 40 + 40/8): Conservative Slow Start, and after
 * its five rounds congestion avoidance (ssthresh = cwnd) with no loss at all. Plain slow
 * start kept doubling until a loss. */
static void
test_hystart_leaves_slow_start(void **state)
{
	(void)state;
	for (int alg = 0; alg < 2; alg++) {
		struct h_peer p;
		struct tcp_conn *c;
		uint32_t cwnd_css;

		tcp_config_defaults(&cfg);
		cfg.cc = alg == 0 ? TCP_CC_CUBIC : TCP_CC_NEWRENO;
		cfg.sndbuf_bytes = 4u << 20;
		h_setup(&cfg);
		c = start_bulk(&p, (uint16_t)(42015 + alg), 10);
		(void)tcp_write(c, buf, sizeof(buf));
		h_flush();
		h_ncap = 0;
		/* the initial window again, captured: start_bulk cleared it */
		for (unsigned i = 0; i < 10; i++) {
			h_cap[h_ncap].seq = sq(&p, i);
			h_cap[h_ncap++].len = MSS;
		}
		for (unsigned r = 0; r < 3; r++)
			hs_round(&p, c, 40);
		assert_int_equal(H_CNT(HYSTART_CSS), 0);
		assert_int_equal(c->ssthresh, TCP_SSTHRESH_INIT);
		hs_round(&p, c, 60);
		assert_int_equal(H_CNT(HYSTART_CSS), 1);
		assert_int_equal(c->ssthresh, TCP_SSTHRESH_INIT);
		cwnd_css = c->cwnd;
		for (unsigned r = 0; r < 6 && H_CNT(HYSTART_EXIT) == 0; r++)
			hs_round(&p, c, 60);
		assert_int_equal(H_CNT(HYSTART_EXIT), 1);
		assert_true(c->ssthresh <= c->cwnd && c->cwnd < c->ssthresh + MSS);
		/* CSS grew a quarter as fast: far from the doublings of slow start */
		assert_true(c->cwnd < 2 * cwnd_css);
		assert_int_equal(H_CNT(REXMT_SEGS), 0);
		if (alg == 0)
			h_teardown(); /* the fixture's teardown ends the last */
	}
}

/* HyStart++'s false alarm: three rounds of slow start at 40 ms, one at 60 ms (Conservative
 * Slow Start), then the RTT falls back to 40 ms, under the minimum that started CSS: the rise
 * was not lasting (a burst of cross traffic), so back to slow start (RFC 9406 4.3), which
 * doubles the window per round again; no exit to congestion avoidance, no loss. Staying in
 * CSS would have grown the next round by a quarter of that. */
static void
test_hystart_css_back_to_slow_start(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd0;
	unsigned n;

	(void)state;
	tcp_config_defaults(&cfg);
	cfg.sndbuf_bytes = 4u << 20;
	h_setup(&cfg);
	c = start_bulk(&p, 42017, 10);
	(void)tcp_write(c, buf, sizeof(buf));
	h_flush();
	h_ncap = 0;
	for (unsigned i = 0; i < 10; i++) {
		h_cap[h_ncap].seq = sq(&p, i);
		h_cap[h_ncap++].len = MSS;
	}
	for (unsigned r = 0; r < 3; r++)
		hs_round(&p, c, 40);
	hs_round(&p, c, 60);
	assert_int_equal(H_CNT(HYSTART_CSS), 1);
	assert_int_equal(H_CNT(HYSTART_CSS_BACK), 0);
	hs_round(&p, c, 40); /* the RTT falls back: slow start again */
	assert_int_equal(H_CNT(HYSTART_CSS_BACK), 1);
	cwnd0 = c->cwnd;
	n = hs_round(&p, c, 40); /* the peer's window (64 KiB) bounds the round, not cwnd */
	assert_true(n > 8);
	assert_int_equal(c->cwnd - cwnd0, n * MSS); /* an MSS per segment acked: slow start */
	assert_int_equal(H_CNT(HYSTART_CSS), 1);
	assert_int_equal(H_CNT(HYSTART_EXIT), 0);
	assert_int_equal(c->ssthresh, TCP_SSTHRESH_INIT);
	assert_int_equal(H_CNT(REXMT_SEGS), 0);
}

/* Whether [seq, seq + len) touches one of the nb blocks b (sequence numbers). */
static bool
in_blocks(uint32_t seq, uint32_t len, const uint32_t (*b)[2], unsigned nb)
{
	for (unsigned k = 0; k < nb; k++)
		if (SEQ_LT(seq, b[k][1]) && SEQ_GT(seq + len, b[k][0]))
			return true;
	return false;
}

/* A retransmission timeout keeps what the peer SACKed (RFC 6675 5.1). The flight starts with
 * a 500-byte segment, then nine of an MSS; 1-2 and 4-9 are SACKed, the fast retransmits of
 * 0 and 3 are lost too, the RTO fires: go-back-N sends 0 alone, its 500 bytes (not an MSS
 * that runs into the SACKed 1), and after the ACK of 0-2 the hole at 3 and what followed
 * the flight, never 4-9 again. The stack before sent an MSS from SND.UNA, then 3 and 4. */
static void
test_rto_keeps_sack(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t at[11], blk[2][2], rto_max;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_open_sack(&p, 42301, MSS);
	assert_int_equal(tcp_write(c, buf, 500), 500);
	h_flush();
	assert_int_equal(tcp_write(c, buf, 30 * MSS), 30 * MSS);
	h_flush();
	assert_int_equal(h_n_data(), 10);
	for (unsigned i = 0; i < 11; i++)
		at[i] = i == 0 ? sq(&p, 0) : sq(&p, 0) + 500 + (i - 1) * MSS;
	assert_int_equal(h_cap[0].len, 500);
	blk[0][0] = at[1];
	blk[0][1] = at[3];
	blk[1][0] = at[4];
	blk[1][1] = at[10];
	h_clear();
	h_advance_ms(50);
	h_ack_sack(&p, at[0], (const uint32_t(*)[2])blk, 2);
	h_flush();
	assert_int_equal(H_CNT(SACK_RECOVERY), 1);
	assert_int_equal(h_n_at(at[0]), 1);
	assert_int_equal(h_n_at(at[3]), 1);
	rto_max = c->snd_max;
	h_clear();
	h_advance_ms(c->rto_ms + 1); /* the retransmissions were lost too */
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	assert_int_equal(h_n_data(), 1);
	assert_int_equal(h_cap[0].seq, at[0]);
	assert_int_equal(h_cap[0].len, 500);
	h_clear();
	h_advance_ms(50);
	h_ack_sack(&p, at[3], (const uint32_t(*)[2]) & blk[1], 1);
	h_flush();
	/* recovery again, PRR against a pipe that holds only what went after the timeout: the
	 * 500 bytes delivered plus an MSS, in whole segments: the hole at 3, then 10, the first
	 * of what followed the flight (lost too, for the timeout) */
	assert_int_equal(h_n_data(), 2);
	assert_int_equal(h_n_at(at[3]), 1);
	assert_int_equal(h_n_at(at[10]), 1);
	for (unsigned i = 0; i < h_ncap; i++) {
		if (h_cap[i].len == 0)
			continue;
		assert_false(in_blocks(h_cap[i].seq, h_cap[i].len, (const uint32_t(*)[2])blk, 2));
		assert_true(SEQ_LT(h_cap[i].seq, rto_max)); /* the timeout's flight first */
	}
	h_clear();
	h_advance_ms(50);
	h_ack_sack(&p, rto_max, NULL, 0);
	h_flush();
	assert_false(c->flags & TF_RECOVERY);
	assert_true(h_n_data() > 0); /* on with new data */
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	assert_int_equal(H_CNT(SACK_RENEGING), 0);
}

/* Reneging (RFC 2018 8): the peer SACKed 2-9, then acknowledges 0-1 and no more, so it no
 * longer holds 2. Half a round trip later (10 ms at least: Linux's tcp_check_sack_reneging)
 * the RTO fires, counts it, forgets the scoreboard and goes back over everything from
 * SND.UNA, 3 and 4 as well, once SACKed. The stack before waited for the full RTO; one that
 * kept the SACK marks without this check would never resend 2-9. */
static void
test_rto_sack_reneging(void **state)
{
	static const unsigned above[][2] = { { 2, 10 } };
	struct h_peer p;
	struct tcp_conn *c;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42302, 30);
	h_advance_ms(50);
	ack_sack(&p, 0, above, 1);
	h_flush();
	assert_int_equal(H_CNT(SACK_RECOVERY), 1);
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	assert_int_equal(h_n_at(sq(&p, 1)), 1);
	h_clear();
	h_advance_ms(50);
	ack_sack(&p, 2, NULL, 0); /* up to the SACKed 2: it was dropped */
	h_flush();
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	h_clear();
	h_advance_ms(11);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	assert_int_equal(H_CNT(SACK_RENEGING), 1);
	assert_int_equal(h_n_data(), 1);
	assert_int_equal(h_n_at(sq(&p, 2)), 1);
	assert_int_equal(c->cwnd, MSS);
	h_clear();
	h_advance_ms(50);
	ack_sack(&p, 3, NULL, 0);
	h_flush();
	assert_int_equal(h_n_at(sq(&p, 3)), 1); /* SACKed once, sent again */
	assert_int_equal(h_n_at(sq(&p, 4)), 1);
	assert_int_equal(H_CNT(SACK_RENEGING), 1); /* once per timeout, not per segment */
}

/* A flight of 0 (500 bytes), 1-3 (an MSS each) and 4, the last 300 bytes of the data; the
 * peer SACKs 1-3 with a window of win bytes from SND.UNA, the fast retransmit of 0 is lost
 * and the RTO fires. Returns how many segments of the timeout's first flight start at 4. */
static unsigned
rto_tail_hole(uint16_t port, uint16_t win)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t blk[1][2], tail;
	unsigned n;

	h_setup(&cfg);
	c = h_open_sack(&p, port, MSS);
	assert_int_equal(tcp_write(c, buf, 500), 500);
	h_flush();
	assert_int_equal(tcp_write(c, buf, 3 * MSS + 300), 3 * MSS + 300);
	h_flush();
	assert_int_equal(h_n_data(), 5);
	blk[0][0] = sq(&p, 0) + 500;
	blk[0][1] = tail = sq(&p, 0) + 500 + 3 * MSS;
	h_clear();
	h_advance_ms(50);
	h_ack_sack_win(&p, sq(&p, 0), (const uint32_t(*)[2])blk, 1, win);
	h_flush();
	assert_int_equal(H_CNT(SACK_RECOVERY), 1);
	assert_int_equal(h_n_data(), 1);
	h_clear();
	h_advance_ms(c->rto_ms + 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	assert_int_equal(c->cwnd, MSS);
	assert_int_equal(h_n_at(sq(&p, 0)), 1);
	assert_int_equal(h_cap[0].len, 500);
	for (unsigned i = 0; i < h_ncap; i++) /* never a SACKed byte again */
		assert_false(in_blocks(h_cap[i].seq, h_cap[i].len, (const uint32_t(*)[2])blk, 1));
	n = h_n_at(tail);
	if (n > 0) {
		assert_int_equal(h_n_data(), 2);
		assert_int_equal(h_cap[1].len, 300);
		assert_true(SEQ_LEQ(tail + 300, sq(&p, 0) + win)); /* within the peer's window */
	}
	h_teardown();
	return n;
}

/* After a timeout cwnd counts what is in flight, not what the peer SACKed (RFC 6675 pipe,
 * as Linux): the first flight after it sends the 500-byte hole at SND.UNA and the 300-byte
 * hole after the SACKed 1-3, 800 bytes against one MSS, never 1-3 again. The peer's window
 * still counts the SACKed bytes: 100 bytes short of the tail, the tail waits. The stack
 * before counted the 3 MSS stepped over as sent: the tail waited a round trip for the ACK
 * of 0. */
static void
test_rto_pipe_not_sacked(void **state)
{
	(void)state;
	tcp_config_defaults(&cfg);
	assert_int_equal(rto_tail_hole(42303, 500 + 3 * MSS + 300), 1);
	assert_int_equal(rto_tail_hole(42304, 500 + 3 * MSS + 200), 0);
}

/* Reneging suspected under a zero window: the peer SACKed 1-3, then acknowledges 0 and no
 * more (SND.UNA at the SACKed 1) and shuts its window. The reneging wait arms the RTO, which
 * finds the window zero and probes instead (persist). The probe's answer leaves SND.UNA at
 * the SACKed 1 again: the persist timer keeps its backed-off deadline (renege_wait leaves
 * TT_REXMT to it), so no probe goes 10 ms later, and no data goes into the zero window. */
static void
test_renege_wait_under_persist(void **state)
{
	static const unsigned run[][2] = { { 1, 4 } };
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t deadline;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = start_bulk(&p, 42305, 30);
	h_advance_ms(50);
	ack_sack(&p, 0, run, 1);
	h_flush();
	assert_int_equal(H_CNT(SACK_RECOVERY), 1);
	h_clear();
	h_advance_ms(5);
	h_ack_sack_win(&p, sq(&p, 1), NULL, 0, 0); /* up to the SACKed 1, window shut */
	h_flush();
	assert_int_equal(h_n_data(), 0);
	assert_int_equal(c->snd_wnd, 0);
	assert_true(c->timer_on & TT_REXMT);
	assert_true(SEQ_LEQ(c->t_rexmt, tcb_tl(c)->now_ms + c->rto_ms / 2)); /* the wait */
	h_advance_ms(c->t_rexmt - tcb_tl(c)->now_ms);
	assert_int_equal(H_CNT(PERSIST_PROBE), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
	assert_true(c->flags & TF_PERSIST);
	assert_int_equal(h_n_data(), 0);
	deadline = c->t_rexmt;
	assert_true(SEQ_GT(deadline, tcb_tl(c)->now_ms + 100));
	h_clear();
	h_ack_sack_win(&p, sq(&p, 1), NULL, 0, 0); /* the probe's answer: still shut */
	h_flush();
	assert_true(c->flags & TF_PERSIST);
	assert_true(c->timer_on & TT_REXMT);
	assert_int_equal(c->t_rexmt, deadline);
	h_advance_ms(11);
	assert_int_equal(h_ncap, 0);
	h_advance_ms(deadline - tcb_tl(c)->now_ms);
	assert_int_equal(H_CNT(PERSIST_PROBE), 2);
	assert_int_equal(h_n_data(), 0); /* a probe, no data into the zero window */
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sack_repairs_every_hole, teardown),
		cmocka_unit_test_teardown(test_prr_paces_recovery, teardown),
		cmocka_unit_test_teardown(test_rack_loss_with_one_segment_after, teardown),
		cmocka_unit_test_teardown(test_rack_lost_retransmission, teardown),
		cmocka_unit_test_teardown(test_rack_timer_in_recovery, teardown),
		cmocka_unit_test_teardown(test_rto_from_head_sent_again, teardown),
		cmocka_unit_test_teardown(test_probe_after_recovery, teardown),
		cmocka_unit_test_teardown(test_reo_window_back_after_recoveries, teardown),
		cmocka_unit_test_teardown(test_tlp_recovers_lost_tail, teardown),
		cmocka_unit_test_teardown(test_tlp_then_rack, teardown),
		cmocka_unit_test_teardown(test_tlp_sends_new_data, teardown),
		cmocka_unit_test_teardown(test_cubic_beta, teardown),
		cmocka_unit_test_teardown(test_beta_of_window_after_ack_burst, teardown),
		cmocka_unit_test_teardown(test_beta_of_flight_when_app_limited, teardown),
		cmocka_unit_test_teardown(test_cubic_growth, teardown),
		cmocka_unit_test_teardown(test_sb_pool_exhausted, teardown),
		cmocka_unit_test_teardown(test_dsack_counted, teardown),
		cmocka_unit_test_teardown(test_sack_loss_without_block, teardown),
		cmocka_unit_test_teardown(test_pto_lone_reply, teardown),
		cmocka_unit_test_teardown(test_dsack_undo_spurious_fast_rexmt, teardown),
		cmocka_unit_test_teardown(test_dsack_undo_after_drain, teardown),
		cmocka_unit_test_teardown(test_hystart_leaves_slow_start, teardown),
		cmocka_unit_test_teardown(test_hystart_css_back_to_slow_start, teardown),
		cmocka_unit_test_teardown(test_eifel_undo, teardown),
		cmocka_unit_test_teardown(test_rto_keeps_sack, teardown),
		cmocka_unit_test_teardown(test_rto_sack_reneging, teardown),
		cmocka_unit_test_teardown(test_rto_pipe_not_sacked, teardown),
		cmocka_unit_test_teardown(test_renege_wait_under_persist, teardown),
	};

	if (h_eal_init() < 0)
		return 1;
	if (getenv("TCP_TEST") != NULL)
		cmocka_set_test_filter(getenv("TCP_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
