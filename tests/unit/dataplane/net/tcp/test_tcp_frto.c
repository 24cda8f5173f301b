/*
 * test_tcp_frto.c: F-RTO (RFC 5682, the SACK-enhanced variant, run for flows with and without
 * SACK) and Eifel (RFC 3522) after a retransmission timeout (tcp_recovery.c). A peer whose
 * ACKs are late, not lost (a Wi-Fi stall), sets off an RTO: the first ACK after the
 * retransmission brings two new segments instead of the flight again, and the next one, for
 * data sent once only, shows the timeout spurious: the window from before it comes back
 * (FRTO_SPURIOUS) and nothing of the flight is sent twice. A flight that was really lost
 * (the next ACK is a duplicate, its SACK block only for the new data) goes back to SND.UNA
 * in slow start with the reduction kept. Each test fails on the stack before F-RTO, which
 * went back over the whole flight (go-back-N) and kept the reduction.
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

/* Our segment i (mss-sized) as a sequence number. */
static uint32_t
sq(const struct h_peer *p, unsigned i, uint16_t mss)
{
	return p->iss + 1 + i * mss;
}

/* A flow with ten segments in flight and twenty more queued; the RTO fires (the peer's
 * ACKs are late): only segment 0 goes again, cwnd one MSS. */
static void
flight_then_rto(struct tcp_conn *c, const struct h_peer *p, uint32_t *cwnd0, uint32_t *ss0)
{
	assert_int_equal(tcp_write(c, buf, 30 * c->mss), (int)(30 * c->mss));
	h_flush();
	assert_int_equal(h_n_data(), 10);
	*cwnd0 = c->cwnd;
	*ss0 = c->ssthresh;
	h_clear();
	h_advance_ms(c->rto_ms + 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	assert_int_equal(h_n_data(), 1);
	assert_int_equal(h_n_at(sq(p, 0, c->mss)), 1);
	assert_int_equal(c->cwnd, c->mss);
	assert_true(c->ssthresh < *ss0);
	h_clear();
}

/* No SACK, no timestamps (an embedded peer): the ACKs of the flight come late. The first
 * (segments 0 and 1) lets segments 10 and 11 go, not 1 and 2 again (step 2b); the next
 * acknowledges 2 and 3, sent only before the timeout: spurious (3b). The window comes back
 * and the rest of the flight is never sent again. */
static void
test_frto_spurious_no_sack(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd0, ss0;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 47001, false);
	assert_false(c->flags & TF_SACK_OK);
	flight_then_rto(c, &p, &cwnd0, &ss0);
	p.rcv_nxt = sq(&p, 2, MSS);
	h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_int_equal(h_n_data(), 2);
	assert_int_equal(h_n_at(sq(&p, 10, MSS)), 1);
	assert_int_equal(h_n_at(sq(&p, 11, MSS)), 1);
	assert_int_equal(H_CNT(FRTO_SPURIOUS), 0);
	h_clear();
	p.rcv_nxt = sq(&p, 4, MSS);
	h_send(&p, ACK, NULL, 0);
	assert_int_equal(H_CNT(FRTO_SPURIOUS), 1);
	assert_int_equal(c->cwnd, cwnd0);
	assert_int_equal(c->ssthresh, ss0);
	h_flush();
	/* the restored window sends new data, from SND.MAX */
	assert_true(h_n_data() > 0);
	for (unsigned i = 0; i < h_ncap; i++)
		if (h_cap[i].len > 0)
			assert_true(SEQ_GEQ(h_cap[i].seq, sq(&p, 12, MSS)));
	/* the rest of the old flight arrives: none of it was sent twice */
	p.rcv_nxt = sq(&p, 12, MSS);
	h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_int_equal(H_CNT(REXMT_SEGS), 1);
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
}

/* The flight was lost (no SACK): the first ACK covers only the retransmission; segments 10
 * and 11 go; the next ACK is a duplicate (10 arrived above the hole at 1): the timeout was
 * real (3a). Back to SND.UNA in slow start, the reduction kept, no fast retransmit for the
 * window the timeout already went over (RFC 6582); the holes are filled without another
 * timeout. */
static void
test_frto_real_loss_no_sack(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t cwnd0, ss0, ss_rto;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = h_establish(&p, 47002, false);
	flight_then_rto(c, &p, &cwnd0, &ss0);
	ss_rto = c->ssthresh;
	p.rcv_nxt = sq(&p, 1, MSS);
	h_send(&p, ACK, NULL, 0);
	h_flush();
	assert_int_equal(h_n_data(), 2);
	assert_int_equal(h_n_at(sq(&p, 10, MSS)), 1);
	h_clear();
	h_send(&p, ACK, NULL, 0); /* duplicate: 10 arrived, 1 did not */
	h_flush();
	assert_int_equal(H_CNT(FRTO_SPURIOUS), 0);
	assert_int_equal(c->ssthresh, ss_rto);
	assert_true(c->cwnd <= 3u * MSS);
	assert_int_equal(h_n_at(sq(&p, 1, MSS)), 1); /* going back */
	h_clear();
	h_send(&p, ACK, NULL, 0); /* 11 arrived */
	h_flush();
	assert_int_equal(H_CNT(FAST_REXMT), 0);
	/* slow start over the holes, ACK by ACK */
	for (unsigned next = 2; next <= 12; next++) {
		p.rcv_nxt = sq(&p, next, MSS);
		h_send(&p, ACK, NULL, 0);
		h_flush();
	}
	assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
	assert_int_equal(H_CNT(FRTO_SPURIOUS), 0);
	assert_true(c->ssthresh <= ss_rto + 2u * MSS);
}

/* SACK (the peer offers it; the flow held a scoreboard at the timeout): the first ACK
 * after the retransmission brings segments 10 and 11; the next is a duplicate whose SACK
 * block covers 3 and 4, sent only before the timeout: spurious (RFC 5682 3.1 step 3b), the
 * window comes back. With the block covering only the new segments, the timeout stands. */
static void
test_frto_sack(void **state)
{
	(void)state;

	for (int spurious = 1; spurious >= 0; spurious--) {
		struct h_peer p;
		struct tcp_conn *c;
		uint32_t cwnd0, ss0, blk[1][2];

		tcp_config_defaults(&cfg);
		h_setup(&cfg);
		c = h_open_sack(&p, (uint16_t)(47010 + spurious), MSS);
		assert_int_equal(tcp_write(c, buf, 30 * MSS), 30 * MSS);
		h_flush();
		assert_non_null(tcp_sb_of(c)); /* no RTT yet: no tail loss probe before the RTO */
		cwnd0 = c->cwnd;
		ss0 = c->ssthresh;
		h_clear();
		h_advance_ms(c->rto_ms + 1);
		assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
		assert_int_equal(h_n_at(sq(&p, 0, MSS)), 1);
		h_clear();
		h_ack_sack(&p, sq(&p, 2, MSS), NULL, 0);
		h_flush();
		assert_int_equal(h_n_at(sq(&p, 2, MSS)), 0);
		assert_int_equal(h_n_at(sq(&p, 10, MSS)), 1);
		assert_int_equal(h_n_at(sq(&p, 11, MSS)), 1);
		assert_null(tcp_sb_of(c)); /* skipped ahead: NewReno until the flight drains */
		h_clear();
		if (spurious) {
			blk[0][0] = sq(&p, 3, MSS);
			blk[0][1] = sq(&p, 5, MSS);
		} else {
			blk[0][0] = c->snd_max - 2 * MSS;
			blk[0][1] = c->snd_max - MSS;
		}
		h_ack_sack(&p, sq(&p, 2, MSS), (const uint32_t(*)[2])blk, 1);
		h_flush();
		assert_int_equal(H_CNT(FRTO_SPURIOUS), (uint64_t)spurious);
		if (spurious) {
			/* and Limited Transmit's loan for the duplicate ACK (RFC 3042) */
			assert_int_equal(c->cwnd, cwnd0 + MSS);
			assert_int_equal(c->ssthresh, ss0);
			assert_int_equal(h_n_at(sq(&p, 2, MSS)), 0);
		} else {
			assert_true(c->ssthresh < ss0);
			assert_int_equal(h_n_at(sq(&p, 2, MSS)), 1); /* going back */
		}
		if (spurious)
			h_teardown();
	}
}

/* An ACK from p of everything below ack, echoing tsecr. */
static void
ack_tsecr(struct h_peer *p, uint32_t ack, uint32_t tsecr)
{
	uint8_t opts[12] = { 1, 1, 8, 10 };
	uint32_t v = rte_cpu_to_be_32(++p->tsval), e = rte_cpu_to_be_32(tsecr);
	struct h_seg s = {
		.flags = ACK, .seq = p->snd_nxt, .ack = ack, .win = 65535, .sport = p->port
	};

	memcpy(opts + 4, &v, 4);
	memcpy(opts + 8, &e, 4);
	s.opts = opts;
	s.optlen = 12;
	h_input(&s);
}

/* Timestamps, no SACK (Eifel, RFC 3522): the first ACK after the retransmission echoes the
 * TSval of the original segment 1, sent before the timeout: spurious at once, and the flow
 * goes on from SND.MAX. One that echoes the retransmission's TSval leaves F-RTO to decide. */
static void
test_frto_eifel(void **state)
{
	(void)state;

	for (int spurious = 1; spurious >= 0; spurious--) {
		struct h_peer p;
		struct tcp_conn *c;
		uint32_t ts_orig, ts_rexmt, cwnd0, ss0;
		uint16_t mss;

		tcp_config_defaults(&cfg);
		h_setup(&cfg);
		c = h_establish(&p, (uint16_t)(47020 + spurious), true);
		assert_true(c->flags & TF_TS_OK);
		mss = c->mss;
		assert_int_equal(tcp_write(c, buf, 30 * mss), 30 * mss);
		h_flush();
		ts_orig = h_cap[1].tsval;
		cwnd0 = c->cwnd;
		ss0 = c->ssthresh;
		h_clear();
		h_advance_ms(c->rto_ms + 1);
		assert_int_equal(H_CNT(REXMT_TIMEOUT), 1);
		assert_int_equal(h_n_data(), 1);
		ts_rexmt = h_cap[0].tsval;
		assert_true(ts_rexmt != ts_orig);
		h_clear();
		h_advance_ms(3);
		ack_tsecr(&p, sq(&p, 2, mss), spurious ? ts_orig : ts_rexmt);
		h_flush();
		assert_int_equal(H_CNT(FRTO_SPURIOUS), (uint64_t)spurious);
		if (spurious) {
			assert_int_equal(c->cwnd, cwnd0);
			assert_int_equal(c->ssthresh, ss0);
		} else {
			assert_true(c->ssthresh < ss0);
		}
		/* new data either way: what the restored window allows beside the 8 segments
		 * in flight, or F-RTO's two */
		assert_int_equal(h_n_data(), 2);
		assert_int_equal(h_n_at(sq(&p, 2, mss)), 0);
		for (unsigned i = 0; i < h_ncap; i++)
			if (h_cap[i].len > 0)
				assert_true(SEQ_GEQ(h_cap[i].seq, sq(&p, 10, mss)));
		if (spurious)
			h_teardown();
	}
}

/* Timestamps and SACK: the flow still holds its loss-recovery block when the first ACK
 * after the retransmission shows the timeout spurious (Eifel): the block's undo gives back
 * CUBIC's state exactly (RFC 9438 4.9), not only cwnd and ssthresh. */
static void
test_frto_eifel_sack(void **state)
{
	/* MSS 1460, SACK permitted, timestamps */
	uint8_t opts[16] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0 };
	struct h_seg syn = {
		.flags = RTE_TCP_SYN_FLAG, .seq = 1000, .win = 65535, .opts = opts, .optlen = 16
	};
	struct h_peer p;
	struct tcp_conn *c;
	uint32_t ts_orig, cwnd0, ss0, cc0[3];
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	memset(&p, 0, sizeof(p));
	p.port = syn.sport = 47030;
	p.tsval = 100;
	h_clear();
	h_input(&syn);
	p.iss = h_cap[0].seq;
	p.snd_nxt = 1001;
	h_clear();
	ack_tsecr(&p, p.iss + 1, h_cap[0].tsval);
	c = h_app.c;
	assert_non_null(c);
	assert_true((c->flags & TF_SACK_OK) && (c->flags & TF_TS_OK));
	assert_int_equal(tcp_write(c, buf, 30 * c->mss), (int)(30 * c->mss));
	h_flush();
	assert_non_null(tcp_sb_of(c));
	ts_orig = h_cap[1].tsval;
	cwnd0 = c->cwnd;
	ss0 = c->ssthresh;
	cc0[0] = c->cc_wmax;
	cc0[1] = c->cc_cwnd_epoch;
	cc0[2] = c->cc_epoch_ms;
	h_clear();
	/* the handshake gave an RTT: a tail loss probe first, then the RTO */
	while (H_CNT(REXMT_TIMEOUT) == 0)
		h_advance_ms(10);
	assert_true(c->cc_wmax != cc0[0]);
	h_advance_ms(3);
	ack_tsecr(&p, sq(&p, 2, c->mss), ts_orig);
	assert_int_equal(H_CNT(FRTO_SPURIOUS), 1);
	assert_int_equal(c->cwnd, cwnd0);
	assert_int_equal(c->ssthresh, ss0);
	assert_int_equal(c->cc_wmax, cc0[0]);
	assert_int_equal(c->cc_cwnd_epoch, cc0[1]);
	assert_int_equal(c->cc_epoch_ms, cc0[2]);
	assert_null(tcp_sb_of(c)); /* sends on from SND.MAX: NewReno until the flight drains */
	assert_int_equal(c->snd_nxt, c->snd_max);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_frto_spurious_no_sack, teardown),
		cmocka_unit_test_teardown(test_frto_real_loss_no_sack, teardown),
		cmocka_unit_test_teardown(test_frto_sack, teardown),
		cmocka_unit_test_teardown(test_frto_eifel, teardown),
		cmocka_unit_test_teardown(test_frto_eifel_sack, teardown),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
