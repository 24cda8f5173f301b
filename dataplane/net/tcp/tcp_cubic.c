/*
 * tcp_cubic.c: CUBIC (RFC 9438), the default congestion control. After a congestion event
 * cwnd follows W_cubic(t) = C (t - K)^3 + W_max from the event's epoch (C = 0.4 segments/s^3,
 * beta = 0.7, K the time to get back to W_max), never below the Reno-friendly estimate
 * W_est (RFC 9438 4.3, its time-based form: alpha = 3 (1 - beta) / (1 + beta) segments per
 * SRTT), with fast convergence (4.7) and growth per ACK bounded to half a segment per segment
 * acknowledged (cwnd grows at most 1.5x per RTT, 4.2). Slow start as Reno's. The state is
 * three words of the TCB: W_max, cwnd at the epoch's start, the epoch's start.
 */
#include <math.h>

#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define CUBIC_C    0.4
#define CUBIC_BETA 0.7

static void
cubic_init(struct tcp_conn *c)
{
	c->cc_wmax = 0;
	c->cc_cwnd_epoch = 0;
	c->cc_epoch_ms = 0;
}

static uint32_t
srtt_ms(const struct tcp_conn *c)
{
	return c->srtt8 != 0 ? RTE_MAX(c->srtt8 / 8, 1u) : 100u;
}

static void
cubic_ack(struct tcp_conn *c, uint32_t acked)
{
	uint32_t now = tcb_tl(c)->now_ms | 1; /* 0 means no epoch */
	double mss = c->mss, t, k, target, w_est, w, inc;

	if (c->cwnd < c->ssthresh) { /* slow start, with HyStart++ */
		c->cwnd += tcp_ss_grow(c, acked);
		return;
	}
	if (c->cc_epoch_ms == 0) {
		c->cc_epoch_ms = now;
		c->cc_cwnd_epoch = c->cwnd;
		if (c->cc_wmax < c->cwnd) /* no event yet, or above the last one: K = 0 */
			c->cc_wmax = c->cwnd;
	}
	w = c->cwnd / mss;
	k = cbrt((c->cc_wmax - RTE_MIN(c->cc_wmax, c->cc_cwnd_epoch)) / mss / CUBIC_C);
	/* the window one RTT ahead (RFC 9438 4.2) */
	t = (double)(now - c->cc_epoch_ms + srtt_ms(c)) / 1000.0;
	target = CUBIC_C * (t - k) * (t - k) * (t - k) + c->cc_wmax / mss;
	target = RTE_MIN(target, 1.5 * w);
	w_est = c->cc_cwnd_epoch / mss +
	    3.0 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA) * (double)(now - c->cc_epoch_ms) / srtt_ms(c);
	if (target < w_est)
		target = w_est; /* the Reno-friendly region */
	if (target <= w)
		inc = 1.0 / (100.0 * w); /* at W_max: the slowest growth */
	else
		inc = (target - w) / w;
	inc *= (double)acked; /* bytes: (segments to grow per segment acked) x bytes acked */
	c->cwnd += RTE_MAX((uint32_t)inc, 1u);
	c->cwnd = RTE_MIN(c->cwnd, UINT32_MAX / 2);
}

static uint32_t
cubic_ssthresh(struct tcp_conn *c, int rto)
{
	/* RFC 9438 4.6: from the flight, not cwnd, which an app-limited flow never filled */
	uint32_t flight = RTE_MAX(tcp_sb_flight(c), 2u * c->mss);
	uint32_t cwnd = RTE_MIN(c->cwnd, flight), ss;

	(void)rto;
	/* fast convergence (4.7): a flow whose W_max shrank gives way to newer ones */
	if (c->cc_wmax != 0 && cwnd < c->cc_wmax)
		c->cc_wmax = (uint32_t)(cwnd * (1 + CUBIC_BETA) / 2);
	else
		c->cc_wmax = cwnd;
	c->cc_epoch_ms = 0;
	ss = (uint32_t)(cwnd * CUBIC_BETA);
	return RTE_MAX(ss, 2u * c->mss);
}

const struct tcp_cc_ops tcp_cc_cubic = {
	.name = "cubic",
	.init = cubic_init,
	.ack = cubic_ack,
	.ssthresh = cubic_ssthresh,
};
