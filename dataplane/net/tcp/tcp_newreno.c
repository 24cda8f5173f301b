/*
 * tcp_newreno.c: Reno's growth and reduction (RFC 5681): slow start with byte counting
 * (L = 1 SMSS), congestion avoidance of one MSS per window, ssthresh at half the flight.
 * Recovery itself (NewReno partial ACKs, SACK scoreboard, PRR) is tcp_recovery.c and
 * tcp_sack.c, the same for every algorithm.
 */
#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

static void
newreno_init(struct tcp_conn *c)
{
	(void)c;
}

static void
newreno_ack(struct tcp_conn *c, uint32_t acked)
{
	if (c->cwnd < c->ssthresh)
		c->cwnd += tcp_ss_grow(c, acked); /* slow start, with HyStart++ */
	else
		c->cwnd += RTE_MAX(1u, (uint32_t)((uint64_t)c->mss * c->mss / c->cwnd));
	c->cwnd = RTE_MIN(c->cwnd, UINT32_MAX / 2);
}

static uint32_t
newreno_ssthresh(struct tcp_conn *c, int rto)
{
	uint32_t h = tcp_sb_flight(c) / 2;

	(void)rto;
	return RTE_MAX(h, 2u * c->mss);
}

const struct tcp_cc_ops tcp_cc_newreno = {
	.name = "newreno",
	.init = newreno_init,
	.ack = newreno_ack,
	.ssthresh = newreno_ssthresh,
};
