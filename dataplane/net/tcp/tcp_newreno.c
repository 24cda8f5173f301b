/*
 * tcp_newreno.c: slow start and congestion avoidance (RFC 5681, byte counting with L = 1 SMSS),
 * initial window per RFC 6928, and NewReno fast retransmit / fast recovery (RFC 6582):
 * three duplicate ACKs retransmit SND.UNA and inflate cwnd; partial ACKs retransmit the next
 * hole and deflate; a full ACK (covering `recover`) ends recovery. Limited Transmit (RFC 3042)
 * on the first two duplicate ACKs.
 */
#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

static uint32_t
flight_size(const struct tcp_conn *c)
{
	return c->snd_max - c->snd_una;
}

static uint32_t
half_flight(const struct tcp_conn *c)
{
	uint32_t h = flight_size(c) / 2;

	return RTE_MAX(h, 2u * c->mss);
}

static void
newreno_init(struct tcp_conn *c)
{
	/* RFC 6928: min(10 * MSS, max(2 * MSS, 14600)) */
	uint32_t iw = RTE_MAX(2u * c->mss, 14600u);

	c->cwnd = RTE_MIN(10u * c->mss, iw);
	c->ssthresh = UINT32_MAX / 2;
	c->snd_recover = c->snd_una - 1; /* RFC 6582: the ISS */
	c->dupacks = 0;
}

/*
 * Limited Transmit (RFC 3042): the first two duplicate ACKs each let one new segment go
 * (cwnd + 1 MSS each), so that a window of a few segments still brings the third duplicate
 * ACK (or the SACK blocks) that fast retransmit needs instead of an RTO. cwnd itself must not
 * grow from it: the loan is paid back at the next ACK that is not a duplicate.
 */
static void
limited_transmit_undo(struct tcp_conn *c)
{
	uint32_t lent = (uint32_t)RTE_MIN(c->dupacks, (uint8_t)2) * c->mss;

	if (!(c->flags & TF_RECOVERY) && lent > 0)
		c->cwnd = RTE_MAX(c->cwnd > lent ? c->cwnd - lent : 0, (uint32_t)c->mss);
	c->dupacks = 0;
}

static void
newreno_ack(struct tcp_conn *c, uint32_t acked)
{
	if (c->flags & TF_RECOVERY) {
		if (SEQ_GEQ(c->snd_una, c->snd_recover)) {
			/* full ACK: leave recovery, cwnd to ssthresh (no burst beyond flight + MSS) */
			c->cwnd = RTE_MIN(c->ssthresh, flight_size(c) + c->mss);
			c->flags &= ~TF_RECOVERY;
			c->dupacks = 0;
			return;
		}
		/* partial ACK: the next hole is lost too */
		tcp_retransmit_una(c);
		c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
		if (acked >= c->mss)
			c->cwnd += c->mss;
		c->cwnd = RTE_MAX(c->cwnd, (uint32_t)c->mss);
		return;
	}
	limited_transmit_undo(c);
	if (c->cwnd < c->ssthresh)
		c->cwnd += RTE_MIN(acked, (uint32_t)c->mss);
	else
		c->cwnd += RTE_MAX(1u, (uint32_t)((uint64_t)c->mss * c->mss / c->cwnd));
	c->cwnd = RTE_MIN(c->cwnd, UINT32_MAX / 2);
}

static void enter_recovery(struct tcp_conn *c);

static void
newreno_dupack(struct tcp_conn *c)
{
	if (c->dupacks < UINT8_MAX)
		c->dupacks++;
	if (c->flags & TF_RECOVERY) {
		c->cwnd += c->mss; /* a segment left the network: one more may go */
		tcp_flush_add(c);
		return;
	}
	if (c->dupacks == 3) {
		limited_transmit_undo(c);
		c->dupacks = 3;
		enter_recovery(c);
	} else if (c->dupacks <= 2) {
		DP_INC(tcb_tl(c)->lc, tcp, LIMITED_TRANSMIT);
		c->cwnd += c->mss;
		tcp_flush_add(c);
	}
}

static void
newreno_dupack_reset(struct tcp_conn *c)
{
	if (!(c->flags & TF_RECOVERY))
		limited_transmit_undo(c);
}

/* Fast retransmit and the start of fast recovery. */
static void
enter_recovery(struct tcp_conn *c)
{
	/* RFC 6582 3.2 step 2: no new recovery for losses in the window we already repaired */
	if ((c->flags & TF_RECOVERY) || !SEQ_GT(c->snd_una, c->snd_recover))
		return;
	c->ssthresh = half_flight(c);
	c->snd_recover = c->snd_max;
	c->flags |= TF_RECOVERY;
	DP_INC(tcb_tl(c)->lc, tcp, FAST_REXMT);
	tcp_retransmit_una(c);
	c->cwnd = c->ssthresh + 3u * c->mss;
}

static void
newreno_rto(struct tcp_conn *c)
{
	c->ssthresh = half_flight(c);
	c->cwnd = c->mss;
	c->snd_recover = c->snd_max;
	c->flags &= ~TF_RECOVERY;
	c->dupacks = 0;
}

const struct tcp_cc_ops tcp_cc_newreno = {
	.name = "newreno",
	.init = newreno_init,
	.ack = newreno_ack,
	.dupack = newreno_dupack,
	.dupack_reset = newreno_dupack_reset,
	.rto = newreno_rto,
	.sack_loss = enter_recovery,
};
