/*
 * tcp_recovery.c: what an ACK does to the congestion state, whatever the algorithm (which
 * only says how cwnd grows and what ssthresh becomes: tcp_cc.h). A flow with a SACK
 * scoreboard (tcp_sack.c) recovers by it: RACK-TLP, RFC 6675 pipe, PRR. Without one (the
 * peer did not offer SACK, or the lcore's blocks are all in use) it recovers as NewReno
 * (RFC 6582): three duplicate ACKs (or SACK blocks covering three segments beyond SND.UNA)
 * retransmit SND.UNA and inflate cwnd; partial ACKs retransmit the next hole and deflate; a
 * full ACK (covering `recover`) ends recovery; Early Retransmit (RFC 5827) when the flight
 * is too small for three duplicate ACKs. Limited Transmit (RFC 3042) for both. The
 * RTO's reduction is here too, and F-RTO (RFC 5682), which finds a spurious one and undoes
 * it, for every flow.
 */
#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

void
tcp_rec_init(struct tcp_conn *c)
{
	c->cwnd = tcp_initial_window(c->mss);
	c->ssthresh = TCP_SSTHRESH_INIT;
	c->snd_recover = c->snd_una - 1; /* RFC 6582: the ISS */
	c->dupacks = 0;
	tcb_tl(c)->cc->init(c);
}

/*
 * Limited Transmit (RFC 3042): the first two duplicate ACKs each let one new segment go
 * (cwnd + 1 MSS each), so that a window of a few segments still brings the third duplicate
 * ACK (or the SACK blocks) that fast retransmit needs instead of an RTO. cwnd itself must not
 * grow from it: the loan is paid back at the next ACK that is not a duplicate.
 */
void
tcp_rec_lt_undo(struct tcp_conn *c)
{
	uint32_t lent = (uint32_t)RTE_MIN(c->dupacks, (uint8_t)2) * c->mss;

	if (!(c->flags & TF_RECOVERY) && lent > 0)
		c->cwnd = RTE_MAX(c->cwnd > lent ? c->cwnd - lent : 0, (uint32_t)c->mss);
	c->dupacks = 0;
}

void
tcp_rec_lt_dupack(struct tcp_conn *c)
{
	if (c->dupacks < UINT8_MAX)
		c->dupacks++;
	if (c->dupacks <= 2 && !(c->flags & TF_RECOVERY)) {
		DP_INC(tcb_tl(c)->lc, tcp, LIMITED_TRANSMIT);
		c->cwnd += c->mss;
		tcp_flush_add(c);
	}
}

/* NewReno's fast retransmit and the start of fast recovery. */
static void
reno_enter(struct tcp_conn *c)
{
	/* RFC 6582 3.2 step 2: no new recovery for losses in the window we already repaired */
	if ((c->flags & TF_RECOVERY) || !SEQ_GT(c->snd_una, c->snd_recover))
		return;
	tcp_rec_lt_undo(c);
	c->dupacks = 3;
	c->ssthresh = tcb_tl(c)->cc->ssthresh(c, 0);
	c->snd_recover = c->snd_max;
	c->flags |= TF_RECOVERY;
	DP_INC(tcb_tl(c)->lc, tcp, FAST_REXMT);
	tcp_retransmit_una(c);
	c->cwnd = c->ssthresh + 3u * c->mss;
}

static void
reno_new_ack(struct tcp_conn *c, uint32_t acked)
{
	if (c->flags & TF_RECOVERY) {
		if (SEQ_GEQ(c->snd_una, c->snd_recover)) {
			/* full ACK: leave recovery, cwnd to ssthresh (no burst beyond flight + MSS) */
			c->cwnd = RTE_MIN(c->ssthresh, c->snd_max - c->snd_una + c->mss);
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
	tcp_rec_lt_undo(c);
	tcb_tl(c)->cc->ack(c, acked);
}

/*
 * Early Retransmit (RFC 5827, byte-based): a flight of fewer than four segments with nothing
 * new to send (nothing queued beyond it, or no window for it) cannot bring three duplicate
 * ACKs, not even with Limited Transmit: one fewer than the segments out is enough. A
 * request/response peer without SACK (an MQTT sensor on lwIP) that loses the first of two
 * or three segments gets it back after one round trip instead of the RTO. (The scoreboard's
 * RACK replaces it for flows with SACK, as RFC 8985 does.) 0: not applicable.
 */
static unsigned
reno_er_thresh(const struct tcp_conn *c)
{
	uint32_t flight = c->snd_max - c->snd_una;

	if (flight >= 4u * c->mss || (c->sndq.bytes > flight && c->snd_wnd > flight))
		return 0;
	return (flight + c->mss - 1) / c->mss - 1;
}

static void
reno_dupack(struct tcp_conn *c)
{
	unsigned er;

	if (c->flags & TF_RECOVERY) {
		c->cwnd += c->mss; /* a segment left the network: one more may go */
		tcp_flush_add(c);
		return;
	}
	tcp_rec_lt_dupack(c);
	if (c->dupacks == 3) {
		reno_enter(c);
	} else if (c->dupacks < 3 && (er = reno_er_thresh(c)) != 0 && c->dupacks >= er &&
	    SEQ_GT(c->snd_una, c->snd_recover)) {
		DP_INC(tcb_tl(c)->lc, tcp, EARLY_REXMT);
		reno_enter(c);
	}
}

/* SACK blocks without a scoreboard: three MSS selectively acknowledged beyond SND.UNA
 * (RFC 6675's DupThresh in bytes) mean the segment at SND.UNA is lost. */
static void
reno_sack(struct tcp_conn *c, const struct tcp_seg *s)
{
	uint32_t sacked = 0;

	if ((c->flags & TF_RECOVERY) || c->snd_una == c->snd_max)
		return;
	for (unsigned i = 0; i < s->opt.nsack; i++) {
		uint32_t l = s->opt.sack[i][0], r = s->opt.sack[i][1];

		if (SEQ_LEQ(r, c->snd_una) || SEQ_GT(r, c->snd_max) || !SEQ_LT(l, r))
			continue; /* D-SACK, stale, or nonsense */
		if (SEQ_LT(l, c->snd_una))
			l = c->snd_una;
		sacked += r - l;
	}
	if (sacked >= 3u * c->mss) {
		DP_INC(tcb_tl(c)->lc, tcp, SACK_LOSS);
		reno_enter(c);
	}
}

/*
 * F-RTO (RFC 5682): after a first timeout outside recovery only SND.UNA went again (step 1,
 * cwnd one MSS); the next ACKs tell whether the rest of the flight was lost or only its ACKs
 * were late (a Wi-Fi stall, a long queue). The SACK-enhanced variant (3.1), which Linux also
 * runs for flows without SACK: the first ACK after the retransmission that advances SND.UNA,
 * covers the retransmission and stays below `recover` (SND.MAX at the timeout) sends two new
 * segments instead of going back (step 2b); the next ACK then acknowledges data that was
 * never retransmitted (cumulatively, or by a SACK block below `recover`): the originals got
 * through, the timeout was spurious (3b); a duplicate ACK without that: they were lost, go
 * back to SND.UNA in slow start (3a). With timestamps the first ACK already tells (Eifel,
 * RFC 3522): it echoes a TSval older than the retransmission's. A spurious timeout gives back
 * the window from before it (cwnd and ssthresh; CUBIC's state exactly when the flow holds a
 * loss-recovery block at the time, else CUBIC's epoch starts again at the restored window)
 * and sends on from SND.MAX: nothing of the flight is sent twice. A flow that holds a block
 * gives it back when it skips to SND.MAX (the timeout marked the whole flight lost on it,
 * and step 2b bets that it was not): NewReno with SACK blocks until the flight drains.
 */
static void
frto_skip_ahead(struct tcp_conn *c)
{
	tcp_sb_release(c);
	if (SEQ_LT(c->snd_nxt, c->snd_max))
		c->snd_nxt = c->snd_max;
	tcp_rexmt_restart(c); /* the RTO: a probe timeout armed for the block no longer applies */
}

static void
frto_spurious(struct tcp_conn *c)
{
	DP_INC(tcb_tl(c)->lc, tcp, FRTO_SPURIOUS);
	c->frto = TCP_FRTO_OFF;
	tcp_rec_lt_undo(c);
	if (!tcp_sb_undo(c)) { /* the block's undo restores CUBIC's three words too */
		c->cwnd = RTE_MAX(c->cwnd, c->frto_cwnd);
		c->ssthresh = RTE_MAX(c->ssthresh, c->frto_ssthresh);
		c->snd_recover = c->snd_una - 1; /* a later loss may be recovered from again */
	}
	frto_skip_ahead(c);
	tcp_flush_add(c);
}

/* A SACK block for data sent before the timeout and not since: [SND.UNA, recover). */
static bool
frto_orig_sacked(const struct tcp_conn *c, const struct tcp_seg *s)
{
	if (!(c->flags & TF_SACK_OK))
		return false;
	for (unsigned i = 0; i < s->opt.nsack; i++) {
		uint32_t l = s->opt.sack[i][0], r = s->opt.sack[i][1];

		if (SEQ_LT(l, r) && SEQ_GT(r, c->snd_una) && SEQ_LT(l, c->snd_recover) &&
		    SEQ_LEQ(r, c->snd_max))
			return true;
	}
	return false;
}

/* Steps 2 and 3 for one ACK; true when the ACK is done with. */
static bool
frto_ack(struct tcp_conn *c, const struct tcp_seg *s, uint32_t acked, enum tcp_ack_kind kind)
{
	struct tcp_lcore *tl = tcb_tl(c);
	uint32_t flight;

	if (kind == TCP_ACK_OTHER)
		return false; /* the peer's data, a window update: neither progress nor a loss */
	if (c->frto == TCP_FRTO_STEP3) {
		if (kind == TCP_ACK_NEW || frto_orig_sacked(c, s)) {
			frto_spurious(c); /* 3b: data sent once only, before the timeout, arrived */
			return kind == TCP_ACK_NEW;
		}
		/* 3a: the duplicate ACK of the new segments: the flight was lost */
		c->frto = TCP_FRTO_OFF;
		c->cwnd = RTE_MIN(c->cwnd, 3u * c->mss);
		c->snd_nxt = c->snd_una;
		tcp_flush_add(c);
		return true;
	}
	/* step 2: the first ACK after the retransmission */
	if (kind == TCP_ACK_DUP) {
		c->frto = TCP_FRTO_OFF; /* 2a: a hole at SND.UNA: conventional recovery */
		return false;
	}
	if ((c->flags & TF_TS_OK) && s->opt.has_ts && s->opt.tsecr != 0 &&
	    SEQ_LT(s->opt.tsecr, c->last_tx_ms + tl->ts_offset)) {
		frto_spurious(c); /* Eifel: the ACK of an original, sent before the timeout */
		return true;
	}
	flight = c->snd_max - c->snd_una;
	if (SEQ_GEQ(c->snd_una, c->snd_recover) || SEQ_LT(c->snd_una, c->snd_nxt) ||
	    c->sndq.bytes <= flight || c->snd_wnd <= flight) {
		/* 2a: all of the flight acknowledged (nothing to tell), or not even the
		 * retransmission; or no new data may go (RFC 5682 2.1 note): go back */
		c->frto = TCP_FRTO_OFF;
		return false;
	}
	/* 2b: two new segments instead of the rest of the flight again */
	tcp_rec_lt_undo(c);
	tl->cc->ack(c, acked); /* slow start from the timeout's one MSS, as going back would */
	frto_skip_ahead(c);
	if (tcp_output_new(c, UINT32_MAX) == 0) {
		c->frto = TCP_FRTO_OFF; /* no mbuf: go back after all */
		c->snd_nxt = c->snd_una;
		tcp_flush_add(c);
		return true;
	}
	tcp_output_new(c, UINT32_MAX);
	c->frto = TCP_FRTO_STEP3;
	return true;
}

void
tcp_rec_ack(struct tcp_conn *c, const struct tcp_seg *s, uint32_t acked, enum tcp_ack_kind kind)
{
	if (c->frto != TCP_FRTO_OFF && frto_ack(c, s, acked, kind))
		return;
	if (c->sb_ref != 0) {
		tcp_sb_ack(c, s, acked, kind);
		return;
	}
	switch (kind) {
	case TCP_ACK_NEW:
		reno_new_ack(c, acked);
		break;
	case TCP_ACK_DUP:
		reno_dupack(c);
		break;
	default:
		if (!(c->flags & TF_RECOVERY))
			tcp_rec_lt_undo(c);
		break;
	}
	if ((c->flags & TF_SACK_OK) && s->opt.nsack > 0)
		reno_sack(c, s);
}

/* A retransmission timeout: one segment's window, ssthresh from the algorithm on the first
 * (RFC 5681: it stays when a retransmission is lost too), recovery ended, go-back-N from
 * SND.UNA over what the scoreboard does not hold SACKed (all of it if the peer reneged). */
void
tcp_rec_rto(struct tcp_conn *c)
{
	bool frto_again = c->frto != TCP_FRTO_OFF;

	c->frto = TCP_FRTO_OFF; /* a timeout during F-RTO: conventional recovery */
	if (c->rxtshift == 0) {
		tcp_rec_lt_undo(c);
		if (!(c->flags & TF_RECOVERY)) { /* in recovery: the episode's window is kept */
			tcp_sb_undo_start(c);
			if (!frto_again) { /* F-RTO step 1 (RFC 5682 3.1) */
				c->frto = TCP_FRTO_STEP2;
				c->flags &= ~TF_RTT_TIMING; /* its words hold the window now */
				c->frto_cwnd = c->cwnd;
				c->frto_ssthresh = c->ssthresh;
			}
		}
		c->ssthresh = tcb_tl(c)->cc->ssthresh(c, 1);
	}
	c->cwnd = c->mss;
	c->snd_recover = c->snd_max;
	c->flags &= ~TF_RECOVERY;
	c->dupacks = 0;
	tcp_sb_rto(c);
}
