/*
 * tcp_sack.c: loss recovery by the SACK scoreboard, for flows whose peer negotiated SACK.
 * While such a flow has data in flight it holds a block from the lcore's pool (struct
 * tcp_sb: the segments in flight as they were sent, each SACKed / lost / retransmitted and
 * when it was last sent), so that:
 *  - RACK (RFC 8985 6) marks a segment lost when one sent after it was delivered and its
 *    reordering window (a quarter of the minimum RTT, widened by D-SACKs) has passed, with a
 *    timer for the rest: a loss needs no three segments after it, and a lost retransmission
 *    is found again; RFC 6675's DupThresh (three MSS SACKed above) marks too;
 *  - recovery sends what Proportional Rate Reduction (RFC 6937, with the slow-start
 *    reduction bound) allows against RFC 6675's pipe, lost segments first (NextSeg), then new
 *    data: every hole of a window is repaired in one round trip, and the flight comes down
 *    to ssthresh smoothly instead of stopping and bursting;
 *  - the tail loss probe (RFC 8985 7) replaces the first RTO: two SRTTs after the last
 *    segment went with no ACK, one segment (new data, or the last one again) brings the ACK
 *    or SACK that lets RACK find a lost tail; a probe that alone repaired a loss reduces the
 *    window as a recovery would (7.4).
 * The block goes back to the pool when everything sent is acknowledged. When the pool is
 * empty (counted) the flow recovers as NewReno (tcp_recovery.c) until its flight drains.
 * An RTO keeps the SACK marks and marks the rest lost (RFC 6675 5.1): go-back-N from SND.UNA
 * resends the holes only. A SACKed segment at SND.UNA means the peer reneged (RFC 2018 8):
 * the RTO then forgets the scoreboard and go-back-N resends everything.
 */
#include <string.h>

#include <rte_malloc.h>

#include "dp.h"
#include "log.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define SBS_EVER              8   /* retransmitted at some time: no RACK RTT sample from it */
#define TCP_WCDELACK_MS       200 /* RFC 8985 7.2: the peer may delay the ACK of a lone segment */
#define TCP_PTO_DELACK_MIN_MS 40  /* ... at least this long (pto_delack_ms) */
#define TCP_REO_MULT_MAX      16
#define TCP_RENEGE_MIN_MS     10 /* reneging suspected: the RTO no sooner (renege_wait) */

/* tcp_mem_stats reports the blocks per flow (one per 16 flows) in whole bytes */
_Static_assert(sizeof(struct tcp_sb) % 16 == 0, "struct tcp_sb: keep a multiple of 16 bytes");

int
tcp_sb_pool_init(struct tcp_lcore *tl, unsigned socket)
{
	uint32_t n = RTE_MAX(16u, tl->cfg.max_flows / 16);

	tl->sbs = rte_zmalloc_socket(
	    "tcp_sb", sizeof(struct tcp_sb) * n, RTE_CACHE_LINE_SIZE, (int)socket);
	if (tl->sbs == NULL)
		return -ENOMEM;
	tl->n_sbs = n;
	for (uint32_t i = n; i-- > 0;) {
		tl->sbs[i].next_free = tl->sb_free;
		tl->sb_free = i + 1;
	}
	return 0;
}

void
tcp_sb_pool_fini(struct tcp_lcore *tl)
{
	rte_free(tl->sbs);
	tl->sbs = NULL;
}

static struct tcp_sb_seg *
seg_at(struct tcp_sb *sb, unsigned i)
{
	return &sb->seg[(sb->head + i) % TCP_SB_SEGS];
}

static uint32_t
seg_len(const struct tcp_sb_seg *e)
{
	return e->end - e->start;
}

static struct tcp_sb *
sb_attach(struct tcp_conn *c)
{
	struct tcp_lcore *tl = tcb_tl(c);
	struct tcp_sb *sb;

	if (tl->sb_free == 0) {
		DP_INC(tl->lc, tcp, SB_EXHAUSTED);
		return NULL;
	}
	c->sb_ref = tl->sb_free;
	sb = &tl->sbs[c->sb_ref - 1];
	tl->sb_free = sb->next_free;
	tl->sb_used++;
	memset(sb, 0, offsetof(struct tcp_sb, seg));
	sb->end = sb->fack = c->snd_una;
	sb->min_rtt_ms = UINT32_MAX;
	sb->reo_mult = 1;
	tcp_hs_init(c, sb);
	return sb;
}

void
tcp_sb_release(struct tcp_conn *c)
{
	struct tcp_lcore *tl = tcb_tl(c);
	struct tcp_sb *sb = tcp_sb_of(c);

	if (sb == NULL)
		return;
	sb->next_free = tl->sb_free;
	tl->sb_free = c->sb_ref;
	tl->sb_used--;
	c->sb_ref = 0;
}

void
tcp_sb_reset(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);

	if (sb == NULL)
		return;
	sb->n = 0;
	sb->head = 0;
	sb->end = sb->fack = c->snd_una;
	sb->sacked = 0;
	sb->tlp_out = 0;
	sb->tmode = SBT_RTO;
}

/*
 * A retransmission timeout (RFC 6675 5.1; Linux's tcp_timeout_mark_lost): the peer still
 * holds what it SACKed, so those marks stay and every other segment is lost, its earlier
 * retransmission too: pipe holds only what is sent from now on, and go-back-N skips the
 * SACKed segments (tcp_sb_skip). Unless the segment at SND.UNA is SACKed: a peer that held
 * it would have acknowledged it, so it dropped what it had SACKed (reneging, RFC 2018 8).
 * Then nothing it said is trusted: the scoreboard is forgotten and everything goes again.
 */
void
tcp_sb_rto(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);

	if (sb == NULL)
		return;
	if (sb->n > 0 && (seg_at(sb, 0)->flags & SBS_SACKED)) {
		DP_INC(tcb_tl(c)->lc, tcp, SACK_RENEGING);
		LOG_RATELIMITED(LOG_LVL_INFO, 60,
		    "tcp: lcore %u: a peer dropped data it had SACKed (reneging): resending from "
		    "SND.UNA",
		    tcb_tl(c)->lc->lcore_id);
		tcp_sb_reset(c);
		return;
	}
	for (unsigned i = 0; i < sb->n; i++) {
		struct tcp_sb_seg *e = seg_at(sb, i);

		if (!(e->flags & SBS_SACKED))
			e->flags = (uint8_t)((e->flags | SBS_LOST) & ~SBS_RETRANS);
	}
	sb->tlp_out = 0;
	sb->tmode = SBT_RTO;
}

/*
 * Go-back-N after an RTO (tcp_output): snd_nxt past the SACKed segments it has reached, and
 * *room no more than the hole up to the next one, so that no SACKed byte goes again. Returns
 * the bytes SACKed below snd_nxt while the timeout's first round trip lasts (no new data
 * acknowledged since: rxtshift), else 0: they are not in flight, so cwnd counts only what is
 * (RFC 6675 pipe, Linux's tcp_packets_in_flight) and the holes after a SACKed run go as it
 * allows; the peer's window still counts them. The first ACK after the timeout that shows a
 * hole starts recovery, which sends against pipe itself.
 */
uint32_t
tcp_sb_skip(struct tcp_conn *c, uint32_t *room)
{
	struct tcp_sb *sb = tcp_sb_of(c);
	uint32_t below = 0;

	if (sb == NULL || sb->sacked == 0 || (c->rxtshift == 0 && !SEQ_LT(c->snd_nxt, sb->end)))
		return 0;
	for (unsigned i = 0; i < sb->n; i++) {
		struct tcp_sb_seg *e = seg_at(sb, i);

		if (!(e->flags & SBS_SACKED))
			continue;
		if (SEQ_GT(e->start, c->snd_nxt)) {
			*room = RTE_MIN(*room, e->start - c->snd_nxt);
			break;
		}
		if (SEQ_GT(e->end, c->snd_nxt))
			c->snd_nxt = e->end;
		below += seg_len(e);
	}
	return c->rxtshift > 0 ? below : 0;
}

/* SND.UNA sits at a SACKed segment: the peer reneged, or its ACKs are odd. As Linux's
 * tcp_check_sack_reneging: half a round trip (10 ms at least) for an ACK that says
 * otherwise, then the RTO, which finds it (tcp_sb_rto). */
static void
renege_wait(struct tcp_conn *c, struct tcp_sb *sb)
{
	uint32_t wait = RTE_MAX(c->srtt8 / 16, (uint32_t)TCP_RENEGE_MIN_MS);

	if (c->flags & TF_PERSIST)
		return;
	if (sb->tmode != SBT_RTO || !(c->timer_on & TT_REXMT) ||
	    SEQ_GT(c->t_rexmt, tcb_tl(c)->now_ms + wait))
		tcp_timer_set(c, TT_REXMT, wait);
}

bool
tcp_sb_room(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);

	if (sb == NULL) {
		/* a block covers a flight from its start: take one when the flight is empty */
		if ((c->flags & TF_SACK_OK) && c->snd_una == c->snd_max)
			sb_attach(c);
		return true;
	}
	return sb->n < TCP_SB_SEGS || SEQ_LT(c->snd_nxt, sb->end);
}

/* A retransmission of [seq, end) while an episode may still be undone: one more copy a
 * D-SACK must show unneeded; the first one's time for Eifel. */
static void
undo_count(struct tcp_conn *c, struct tcp_sb *sb, uint32_t seq, uint32_t end)
{
	if (!sb->undo_on)
		return;
	if (!sb->undo_sent) {
		sb->undo_sent = 1;
		sb->undo_tsval = tcb_tl(c)->now_ms + tcb_tl(c)->ts_offset;
		sb->undo_eifel = (c->flags & TF_TS_OK) != 0;
		sb->undo_lo = seq;
		sb->undo_hi = end;
	}
	if (sb->undo_retrans < UINT16_MAX)
		sb->undo_retrans++;
	if (SEQ_LT(seq, sb->undo_lo))
		sb->undo_lo = seq;
	if (SEQ_GT(end, sb->undo_hi))
		sb->undo_hi = end;
}

/* [seq, end) sent again: one more copy for an undo to account for (undo_count), and one a
 * D-SACK may report without the network having made it (dsack_input). */
static void
sent_again(struct tcp_conn *c, struct tcp_sb *sb, uint32_t seq, uint32_t end)
{
	undo_count(c, sb, seq, end);
	if (sb->dsack_credit < UINT8_MAX)
		sb->dsack_credit++;
}

/* The flight up to max, as the window's use (Linux's tcp_cwnd_validate): a new window
 * begins once the last one is acknowledged; within one, its high mark only rises. */
static void
window_use(const struct tcp_conn *c, struct tcp_sb *sb, uint32_t max)
{
	uint32_t flight = max - c->snd_una;

	if (SEQ_GEQ(c->snd_una, sb->flight_end) || flight > sb->flight_hi) {
		sb->flight_hi = flight;
		sb->flight_end = max;
	}
}

/*
 * The flight a congestion event measures the window by (RFC 9438 4.6, RFC 5681's FlightSize):
 * the most that was in flight in the window the loss was found in, not what is left of it.
 * An ACK burst (the delayed ACKs of a whole flight arrive together) acknowledges most of that
 * window before the ACK whose SACK shows the hole; what is in flight after it is a few
 * segments, and a reduction from that took cwnd to a third or less of a window that lost
 * one segment. Never more than was in flight: an app-limited flow's cwnd it never filled
 * still counts for nothing.
 */
uint32_t
tcp_sb_flight(const struct tcp_conn *c)
{
	const struct tcp_sb *sb = tcp_sb_of(c);
	uint32_t flight = c->snd_max - c->snd_una;

	if (sb != NULL && SEQ_LT(c->snd_una, sb->flight_end))
		flight = RTE_MAX(flight, sb->flight_hi);
	return flight;
}

/* [seq, end) left (seq < snd_max: again). Called before snd_max moves. */
void
tcp_sb_sent(struct tcp_conn *c, uint32_t seq, uint32_t end)
{
	struct tcp_sb *sb = tcp_sb_of(c);
	uint32_t now = tcb_tl(c)->now_ms;

	if (sb == NULL || !SEQ_LT(seq, end))
		return;
	window_use(c, sb, SEQ_GT(end, c->snd_max) ? end : c->snd_max);
	if (sb->tmode == SBT_UNDO) { /* a flight again: its own timer (tcp_rexmt_arm) */
		sb->tmode = SBT_RTO;
		if (!(c->flags & TF_PERSIST))
			tcp_timer_stop(c, TT_REXMT);
	}
	if (seq == sb->end) {
		struct tcp_sb_seg *e;

		if (sb->n == TCP_SB_SEGS)
			return; /* tcp_sb_room() said no: not reached */
		e = seg_at(sb, sb->n++);
		e->start = seq;
		e->end = end;
		e->xmit_ms = now;
		/* after an RTO: sent again, but the first copy is presumed gone */
		e->flags = SEQ_LT(seq, c->snd_max) ? SBS_EVER : 0;
		if (e->flags)
			sent_again(c, sb, seq, end);
		sb->end = end;
		return;
	}
	for (unsigned i = 0; i < sb->n; i++) {
		struct tcp_sb_seg *e = seg_at(sb, i);

		if (SEQ_GEQ(e->start, end))
			break;
		if (SEQ_GEQ(e->start, seq) && SEQ_LEQ(e->end, end)) {
			e->flags |= SBS_RETRANS | SBS_EVER;
			e->xmit_ms = now;
			sent_again(c, sb, e->start, e->end);
		}
	}
}

/* RFC 6675 pipe: bytes in the network, the untracked tail (after an RTO) included. */
static uint32_t
sb_pipe(const struct tcp_conn *c, struct tcp_sb *sb)
{
	uint32_t pipe = c->snd_max - sb->end;

	for (unsigned i = 0; i < sb->n; i++) {
		struct tcp_sb_seg *e = seg_at(sb, i);

		if (e->flags & SBS_SACKED)
			continue;
		if (!(e->flags & SBS_LOST))
			pipe += seg_len(e);
		if (e->flags & SBS_RETRANS)
			pipe += seg_len(e);
	}
	return pipe;
}

/* RFC 8985 6.2 step 2: the most recently sent segment delivered, and reordering seen. */
static void
rack_update(struct tcp_conn *c, struct tcp_sb *sb, const struct tcp_sb_seg *e)
{
	uint32_t rtt = tcb_tl(c)->now_ms - e->xmit_ms;

	if (e->flags & SBS_EVER) {
		/* which copy was delivered? one faster than any RTT seen is the original */
		if (sb->min_rtt_ms == UINT32_MAX || rtt < sb->min_rtt_ms)
			return;
	} else {
		sb->min_rtt_ms = RTE_MIN(sb->min_rtt_ms, rtt);
		tcp_hs_rtt(sb, rtt);
		if (SEQ_LT(e->end, sb->fack))
			sb->reo_seen = 1; /* delivered below the highest delivered: reordering */
	}
	if (SEQ_GT(e->end, sb->fack))
		sb->fack = e->end;
	if (!sb->rack_valid || SEQ_GT(e->xmit_ms, sb->rack_xmit_ms) ||
	    (e->xmit_ms == sb->rack_xmit_ms && SEQ_GT(e->end, sb->rack_end))) {
		sb->rack_valid = 1;
		sb->rack_xmit_ms = e->xmit_ms;
		sb->rack_end = e->end;
		sb->rack_rtt_ms = rtt;
	}
}

/* RFC 8985 6.2 step 4: the reordering window. */
static uint32_t
rack_reo_wnd(const struct tcp_conn *c, const struct tcp_sb *sb)
{
	uint32_t srtt = RTE_MAX(c->srtt8 / 8, 1u), base;

	if (!sb->reo_seen && ((c->flags & TF_RECOVERY) || sb->sacked >= 3u * c->mss))
		return 0; /* no reordering seen: as fast as DupThresh */
	base = sb->min_rtt_ms != UINT32_MAX ? sb->min_rtt_ms / 4 : srtt / 4;
	base = RTE_MIN(base * sb->reo_mult, srtt);
	return RTE_MAX(base, 1u);
}

/* RFC 8985 6.2 step 5: mark lost what was sent before the RACK segment and is overdue
 * (*marked: how many, when asked); returns the time until the next one would be (the
 * reordering timer), 0 for none. */
static uint32_t
rack_detect(struct tcp_conn *c, struct tcp_sb *sb, unsigned *marked)
{
	uint32_t now = tcb_tl(c)->now_ms, reo, wait = 0;

	if (!sb->rack_valid)
		return 0;
	reo = rack_reo_wnd(c, sb);
	for (unsigned i = 0; i < sb->n; i++) {
		struct tcp_sb_seg *e = seg_at(sb, i);
		int32_t left;

		if ((e->flags & SBS_SACKED) || (e->flags & (SBS_LOST | SBS_RETRANS)) == SBS_LOST)
			continue; /* delivered, or lost and not yet sent again */
		if (SEQ_GT(e->xmit_ms, sb->rack_xmit_ms) ||
		    (e->xmit_ms == sb->rack_xmit_ms && SEQ_GEQ(e->end, sb->rack_end)))
			continue; /* sent after the RACK segment */
		left = (int32_t)(e->xmit_ms + sb->rack_rtt_ms + reo - now);
		if (left <= 0) {
			e->flags = (uint8_t)((e->flags | SBS_LOST) & ~SBS_RETRANS);
			DP_INC(tcb_tl(c)->lc, tcp, RACK_LOST);
			if (marked != NULL)
				(*marked)++;
		} else {
			wait = RTE_MAX(wait, (uint32_t)left);
		}
	}
	return wait;
}

/* RFC 6675 IsLost: more than (DupThresh - 1) MSS SACKed above a segment. */
static void
dupthresh_detect(struct tcp_conn *c, struct tcp_sb *sb)
{
	uint32_t above = 0;

	for (unsigned i = sb->n; i-- > 0;) {
		struct tcp_sb_seg *e = seg_at(sb, i);

		if (e->flags & SBS_SACKED)
			above += seg_len(e);
		else if (!(e->flags & SBS_LOST) && above > 2u * c->mss)
			e->flags |= SBS_LOST;
	}
}

static bool
any_lost(struct tcp_sb *sb)
{
	for (unsigned i = 0; i < sb->n; i++)
		if ((seg_at(sb, i)->flags & (SBS_LOST | SBS_SACKED | SBS_RETRANS)) == SBS_LOST)
			return true;
	return false;
}

/* RFC 6937: how much may go now. */
static void
prr_update(struct tcp_conn *c, struct tcp_sb *sb, uint32_t delivered)
{
	uint32_t pipe = sb_pipe(c, sb), ss = c->ssthresh;
	int64_t sndcnt;

	sb->prr_delivered += delivered;
	if (pipe > ss) {
		uint64_t fs = RTE_MAX(sb->recover_fs, 1u);

		sndcnt = (int64_t)(((uint64_t)sb->prr_delivered * ss + fs - 1) / fs) - sb->prr_out;
	} else {
		/* slow-start reduction bound: catch up to ssthresh, no faster than slow start */
		int64_t limit =
		    RTE_MAX((int64_t)sb->prr_delivered - sb->prr_out, (int64_t)delivered);

		sndcnt = RTE_MIN((int64_t)(ss - pipe), limit + c->mss);
	}
	sb->sndcnt = sndcnt > 0 ? (uint32_t)sndcnt : 0;
}

static void
enter_recovery(struct tcp_conn *c, struct tcp_sb *sb)
{
	struct tcp_lcore *tl = tcb_tl(c);

	tcp_rec_lt_undo(c);
	/* RFC 6675 5 (and 6582 3.2): one reduction per window of data */
	if (SEQ_GT(c->snd_una, c->snd_recover)) {
		tcp_sb_undo_start(c);
		c->ssthresh = tl->cc->ssthresh(c, 0);
		c->snd_recover = c->snd_max;
		DP_INC(tl->lc, tcp, FAST_REXMT);
	}
	c->flags |= TF_RECOVERY;
	DP_INC(tl->lc, tcp, SACK_RECOVERY);
	if (sb->tmode != SBT_RTO) {
		tcp_timer_set(c, TT_REXMT, c->rto_ms); /* no probe in recovery: the RTO */
		sb->tmode = SBT_RTO;
	}
	sb->recover_fs = c->snd_max - c->snd_una;
	sb->prr_delivered = sb->prr_out = 0;
	sb->tlp_out = 0;
}

static void
leave_recovery(struct tcp_conn *c, struct tcp_sb *sb)
{
	c->flags &= ~TF_RECOVERY;
	c->cwnd = RTE_MAX(c->ssthresh, 2u * c->mss); /* RFC 6937: cwnd = ssthresh */
	c->dupacks = 0;
	/* RFC 8985 6.2 step 4: 16 recoveries without a D-SACK take the window back */
	if (sb->reo_persist > 0 && --sb->reo_persist == 0)
		sb->reo_mult = 1;
	/* the ACK that ended it restarted the timer while recovery was on: as the RTO. What is
	 * still in flight (sent during the recovery) gets its probe timeout (RFC 8985 7.2), or
	 * a lost tail waits for the RTO and its window of one segment. */
	tcp_rexmt_restart(c);
}

/* A D-SACK (RFC 2883): something arrived twice. Widen RACK's window, once a round trip
 * (RFC 8985 6.2 step 4), when it can be a copy we sent again (a spurious retransmission: the
 * original was only late): a duplicate the network made, with nothing of ours sent again to
 * account for it, would widen the window for nothing and leave real losses found a round
 * trip late (Linux's tcp_dsack_seen skips those likewise). Remember whether it was the tail
 * loss probe's copy. */
static void
dsack_input(struct tcp_conn *c, struct tcp_sb *sb, uint32_t l, uint32_t r)
{
	uint32_t segs = (r - l + c->mss - 1) / c->mss; /* l < r: sack_mark */
	bool ours = sb->dsack_credit > 0;

	DP_INC(tcb_tl(c)->lc, tcp, DSACK_RCVD);
	sb->dsack_credit = (uint8_t)(sb->dsack_credit - RTE_MIN(segs, sb->dsack_credit));
	if (ours && (!sb->dsack_round || SEQ_GEQ(c->snd_una, sb->dsack_end))) {
		sb->reo_mult = (uint8_t)RTE_MIN(sb->reo_mult + 1, TCP_REO_MULT_MAX);
		sb->reo_persist = 16;
		sb->dsack_round = 1;
		sb->dsack_end = c->snd_max;
	}
	if (sb->tlp_out && sb->tlp_rexmit && SEQ_LT(l, sb->tlp_end) && SEQ_GT(r, l))
		sb->tlp_dsack = 1;
	/* RFC 3708: each retransmission of the episode this block covers arrived twice, so
	 * one copy of it was not needed (a duplicate made by the network counts too, as in
	 * Linux: it can only make an undo come early, never miss one) */
	if (sb->undo_on && sb->undo_retrans > 0 && SEQ_GT(r, sb->undo_lo) && SEQ_LT(l, sb->undo_hi))
		sb->undo_retrans = (uint16_t)(sb->undo_retrans - RTE_MIN(segs, sb->undo_retrans));
}

void
tcp_sb_undo_start(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);

	if (sb == NULL)
		return;
	sb->prior_cwnd = c->cwnd;
	sb->prior_ssthresh = c->ssthresh;
	sb->prior_cc[0] = c->cc_wmax;
	sb->prior_cc[1] = c->cc_cwnd_epoch;
	sb->prior_cc[2] = c->cc_epoch_ms;
	sb->undo_on = 1;
	sb->undo_sent = 0;
	sb->undo_eifel = 0;
	sb->undo_retrans = 0;
}

/* The episode's reduction was not needed: back to the window before it (Linux's
 * tcp_undo_cwnd_reduction; RFC 9438 4.9 for CUBIC's state). Marks of loss not yet acted on
 * were made with the reordering window now widened: RACK judges them again. A loss found
 * later in the same window may reduce again. */
static void
undo_reduction(struct tcp_conn *c, struct tcp_sb *sb)
{
	c->cwnd = RTE_MAX(c->cwnd, sb->prior_cwnd);
	c->ssthresh = RTE_MAX(c->ssthresh, sb->prior_ssthresh);
	c->cc_wmax = sb->prior_cc[0];
	c->cc_cwnd_epoch = sb->prior_cc[1];
	c->cc_epoch_ms = sb->prior_cc[2];
	c->snd_recover = c->snd_una - 1;
	sb->undo_on = 0;
	if (c->flags & TF_RECOVERY) {
		c->flags &= ~TF_RECOVERY;
		c->dupacks = 0;
		for (unsigned i = 0; i < sb->n; i++) {
			struct tcp_sb_seg *e = seg_at(sb, i);

			if ((e->flags & (SBS_LOST | SBS_SACKED | SBS_RETRANS)) == SBS_LOST)
				e->flags &= (uint8_t)~SBS_LOST;
		}
	}
	tcp_flush_add(c);
}

bool
tcp_sb_undo(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);

	if (sb == NULL || !sb->undo_on)
		return false;
	undo_reduction(c, sb);
	return true;
}

/* Was the episode spurious? Every retransmission D-SACKed (RFC 3708), or (timestamps) the
 * ACK that covers them all echoes a TSval sent before the first of them: an original, not
 * a retransmission, made it (Eifel, RFC 3522). */
static void
undo_check(struct tcp_conn *c, struct tcp_sb *sb, const struct tcp_seg *s)
{
	if (!sb->undo_on || !sb->undo_sent)
		return;
	if (sb->undo_retrans == 0) {
		DP_INC(tcb_tl(c)->lc, tcp, UNDO_DSACK);
		undo_reduction(c, sb);
		return;
	}
	if (sb->undo_eifel && SEQ_GEQ(c->snd_una, c->snd_recover) &&
	    SEQ_GEQ(c->snd_una, sb->undo_hi)) {
		sb->undo_eifel = 0; /* the first ACK of them all decides */
		if (s->opt.has_ts && s->opt.tsecr != 0 && SEQ_LT(s->opt.tsecr, sb->undo_tsval)) {
			DP_INC(tcb_tl(c)->lc, tcp, UNDO_EIFEL);
			undo_reduction(c, sb);
		}
	}
}

/* Mark what the blocks cover, lowest segment first (so reordering is judged in order). */
static void
sack_mark(struct tcp_conn *c, struct tcp_sb *sb, const struct tcp_seg *s)
{
	uint32_t blk[4][2];
	unsigned nb = 0;

	for (unsigned i = 0; i < s->opt.nsack; i++) {
		uint32_t l = s->opt.sack[i][0], r = s->opt.sack[i][1];

		if (i == 0 && SEQ_LT(l, r) &&
		    (SEQ_LEQ(r, c->snd_una) ||
			(s->opt.nsack > 1 && SEQ_GEQ(l, s->opt.sack[1][0]) &&
			    SEQ_LEQ(r, s->opt.sack[1][1])))) {
			dsack_input(c, sb, l, r);
			continue;
		}
		if (SEQ_LEQ(r, c->snd_una) || SEQ_GT(r, c->snd_max) || !SEQ_LT(l, r))
			continue; /* stale or nonsense */
		blk[nb][0] = l;
		blk[nb][1] = r;
		nb++;
	}
	for (unsigned i = 0; i < sb->n && nb > 0; i++) {
		struct tcp_sb_seg *e = seg_at(sb, i);

		if (e->flags & SBS_SACKED)
			continue;
		for (unsigned b = 0; b < nb; b++) {
			if (SEQ_GEQ(e->start, blk[b][0]) && SEQ_LEQ(e->end, blk[b][1])) {
				e->flags |= SBS_SACKED;
				sb->sacked += seg_len(e);
				rack_update(c, sb, e);
				break;
			}
		}
	}
}

/* Segments the cumulative ACK covers leave the scoreboard. */
static void
cum_ack(struct tcp_conn *c, struct tcp_sb *sb)
{
	while (sb->n > 0) {
		struct tcp_sb_seg *e = seg_at(sb, 0);

		if (SEQ_LEQ(e->end, c->snd_una)) {
			if (e->flags & SBS_SACKED)
				sb->sacked -= seg_len(e);
			else
				rack_update(c, sb, e);
			sb->head = (uint16_t)((sb->head + 1) % TCP_SB_SEGS);
			sb->n--;
		} else {
			/* partly (after a smaller MSS, or a peer that acknowledges part of what it
			 * SACKed): what the ACK covers leaves the SACKed total with it */
			if (SEQ_LT(e->start, c->snd_una)) {
				if (e->flags & SBS_SACKED)
					sb->sacked -= c->snd_una - e->start;
				e->start = c->snd_una;
			}
			break;
		}
	}
	if (SEQ_LT(sb->end, c->snd_una))
		sb->end = c->snd_una;
	if (SEQ_LT(sb->fack, c->snd_una))
		sb->fack = c->snd_una;
}

/* The ACK that ended a probe's episode was sent for the original, not for the probe: it
 * echoes a TSval older than the probe's, or came back sooner after the probe than a round
 * trip (the block's minimum RTT, else half of SRTT: the peer's delayed ACK of the original
 * crossing the probe). */
static bool
tlp_ack_of_original(const struct tcp_conn *c, const struct tcp_sb *sb, const struct tcp_seg *s)
{
	uint32_t rtt = sb->min_rtt_ms != UINT32_MAX ? sb->min_rtt_ms : c->srtt8 / 16;

	if ((c->flags & TF_TS_OK) && s->opt.has_ts && s->opt.tsecr != 0)
		return SEQ_LT(s->opt.tsecr, sb->tlp_sent_ms + tcb_tl(c)->ts_offset);
	return tcb_tl(c)->now_ms - sb->tlp_sent_ms < rtt;
}

/* RFC 8985 7.4: the probe's episode ends; a probe that alone repaired a loss (its ACK came
 * without a D-SACK for the original, and not for the original) reduces the window as
 * recovery would have. */
static void
tlp_check(struct tcp_conn *c, struct tcp_sb *sb, const struct tcp_seg *s)
{
	if (!sb->tlp_out || SEQ_LT(c->snd_una, sb->tlp_end))
		return;
	sb->tlp_out = 0;
	if (sb->tlp_rexmit && !sb->tlp_dsack && tlp_ack_of_original(c, sb, s))
		sb->tlp_dsack = 1; /* as good as its D-SACK, which is on its way */
	if (sb->tlp_rexmit && sb->tlp_dsack)
		DP_INC(tcb_tl(c)->lc, tcp, TLP_SPURIOUS);
	if (sb->tlp_rexmit && !sb->tlp_dsack && !(c->flags & TF_RECOVERY)) {
		DP_INC(tcb_tl(c)->lc, tcp, TLP_RECOVERED);
		c->ssthresh = tcb_tl(c)->cc->ssthresh(c, 0);
		c->cwnd = c->ssthresh;
		c->snd_recover = c->snd_max;
	}
}

void
tcp_sb_ack(struct tcp_conn *c, const struct tcp_seg *s, uint32_t acked, enum tcp_ack_kind kind)
{
	struct tcp_sb *sb = tcp_sb_of(c);
	uint32_t sacked_before = sb->sacked, delivered, wait;

	if (acked > 0)
		tcp_hs_round(c, sb);
	cum_ack(c, sb);
	if (s->opt.nsack > 0)
		sack_mark(c, sb, s);
	delivered = acked + sb->sacked - sacked_before; /* RFC 6937 DeliveredData */
	undo_check(c, sb, s);
	tlp_check(c, sb, s);
	if ((c->flags & TF_RECOVERY) && SEQ_GEQ(c->snd_una, c->snd_recover))
		leave_recovery(c, sb); /* and no growth from the ACK that ended it */
	else if (!(c->flags & TF_RECOVERY)) {
		if (kind == TCP_ACK_NEW) {
			tcp_rec_lt_undo(c);
			tcb_tl(c)->cc->ack(c, acked);
		} else if (kind == TCP_ACK_DUP) {
			tcp_rec_lt_dupack(c); /* Limited Transmit; loss is RACK's to find */
		} else {
			tcp_rec_lt_undo(c);
		}
	}
	if (c->snd_una == c->snd_max && !(c->flags & TF_RECOVERY)) {
		if (sb->undo_on && sb->undo_sent && sb->undo_retrans > 0) {
			/* the D-SACKs of the episode come after the cumulative ACK: hold the
			 * block for them an RTO at most (later ACKs do not extend it) */
			if (sb->tmode != SBT_UNDO || !(c->timer_on & TT_REXMT)) {
				tcp_timer_set(c, TT_REXMT, c->rto_ms);
				sb->tmode = SBT_UNDO;
			}
			return;
		}
		/* data waits for the flush that follows this burst: it goes on with the block
		 * (and HyStart++'s rounds) rather than a fresh one */
		if (c->sndq.bytes == c->snd_max - c->snd_una || c->state != TCP_ST_ESTABLISHED)
			tcp_sb_release(c);
		return;
	}
	if (sb->sacked == 0 && !(c->flags & TF_RECOVERY))
		return; /* all delivered in order so far: everything left was sent after */
	if (sb->n > 0 && (seg_at(sb, 0)->flags & SBS_SACKED)) {
		renege_wait(c, sb); /* reneged? the RTO decides, RACK does not */
		return;
	}
	wait = rack_detect(c, sb, NULL);
	dupthresh_detect(c, sb);
	if (!(c->flags & TF_RECOVERY) && any_lost(sb)) {
		enter_recovery(c, sb);
		prr_update(c, sb, delivered);
		sb->sndcnt = RTE_MAX(sb->sndcnt, (uint32_t)c->mss); /* the fast retransmit */
		tcp_sb_output(c); /* at once, as a fast retransmit always went */
		tcp_flush_add(c);
	} else if (c->flags & TF_RECOVERY) {
		prr_update(c, sb, delivered);
		tcp_flush_add(c);
	}
	/* RFC 8985 6.3, in recovery too (as Linux's tcp_rack_mark_lost): a retransmission
	 * whose later segments were SACKed a window too early is found lost by the timer, not
	 * by the RTO, when nothing else is left to come back. It stands in for the RTO until it
	 * fires (then the RTO again, tcp_sb_timer_fire), as NextSeg's resend of the head does. */
	if (wait > 0 && sb->tmode != SBT_REO) {
		tcp_timer_set(c, TT_REXMT, wait);
		sb->tmode = SBT_REO;
	}
}

/* Recovery's sending (RFC 6675 NextSeg, paced by PRR): lost segments, then new data. */
void
tcp_sb_output(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);

	while (sb != NULL && sb->sndcnt > 0) {
		struct tcp_sb_seg *lost = NULL;
		uint32_t n;

		for (unsigned i = 0; i < sb->n && lost == NULL; i++) {
			struct tcp_sb_seg *e = seg_at(sb, i);

			if ((e->flags & (SBS_LOST | SBS_SACKED | SBS_RETRANS)) == SBS_LOST)
				lost = e;
		}
		if (lost != NULL) {
			bool head = lost->start == c->snd_una;

			n = seg_len(lost);
			if (tcp_send_range(c, lost->start, lost->end) < 0)
				break;
			/* the RTO counts from the first unacknowledged segment's latest copy (as
			 * Linux's tcp_xmit_retransmit_queue re-arms it): from the last cumulative
			 * ACK instead, a retransmission lost again and found by RACK a round trip
			 * later runs into the RTO before its second copy can be acknowledged */
			if (head)
				tcp_rexmt_arm(c); /* in recovery: the RTO, no probe */
		} else if ((n = tcp_output_new(c, UINT32_MAX)) == 0) {
			break;
		}
		sb->prr_out += n;
		sb->sndcnt = sb->sndcnt > n ? sb->sndcnt - n : 0;
	}
}

/*
 * The allowance for the peer's delayed ACK of a lone segment. RFC 8985 7.2 recommends the
 * worst case, 200 ms, and lets a sender that knows better use less. What we know: the
 * RTT samples of this flow include the delays its peer put on its ACKs (TSecr, or the
 * timed segment, count from our send), so 4 RTTVAR covers how much more than SRTT its ACKs
 * took so far; a request/response peer whose ACK rides on its next request shows none.
 * Not below 40 ms, the shortest delayed-ACK timer of common stacks (Linux's TCP_ATO_MIN),
 * which a peer that pauses before its next request uses. A probe that was not needed costs
 * one segment and no window (its D-SACK: tlp_check); counted TLP_SPURIOUS.
 */
static uint32_t
pto_delack_ms(const struct tcp_conn *c)
{
	uint32_t v = RTE_MAX(c->rttvar4, (uint32_t)TCP_PTO_DELACK_MIN_MS);

	return RTE_MIN(v, (uint32_t)TCP_WCDELACK_MS);
}

static bool
tlp_allowed(const struct tcp_conn *c, const struct tcp_sb *sb)
{
	return !(c->flags & TF_RECOVERY) && !sb->tlp_out && c->srtt8 != 0 && c->rxtshift == 0 &&
	    c->snd_una != c->snd_max;
}

void
tcp_rexmt_arm(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);
	uint32_t pto;

	if (sb == NULL || !tlp_allowed(c, sb)) {
		tcp_timer_set(c, TT_REXMT, c->rto_ms);
		if (sb != NULL)
			sb->tmode = SBT_RTO;
		return;
	}
	/* RFC 8985 7.2: two SRTTs, and the peer's delayed ACK when one segment is out */
	pto = 2 * RTE_MAX(c->srtt8 / 8, 1u);
	if (c->snd_max - c->snd_una <= c->mss)
		pto += pto_delack_ms(c);
	tcp_timer_set(c, TT_REXMT, RTE_MIN(pto, c->rto_ms));
	sb->tmode = SBT_TLP;
}

/* The tail loss probe: new data if the peer's window allows, else the last segment again. */
static void
tlp_fire(struct tcp_conn *c, struct tcp_sb *sb)
{
	DP_INC(tcb_tl(c)->lc, tcp, TLP_PROBE);
	sb->tlp_out = 1;
	sb->tlp_dsack = 0;
	sb->tlp_rexmit = 0;
	sb->tlp_sent_ms = tcb_tl(c)->now_ms;
	if (tcp_output_new(c, UINT32_MAX) == 0) {
		unsigned i = sb->n;

		while (i-- > 0 && (seg_at(sb, i)->flags & SBS_SACKED))
			;
		if (i < sb->n) {
			sb->tlp_rexmit = 1;
			tcp_send_range(c, seg_at(sb, i)->start, seg_at(sb, i)->end);
		}
	}
	sb->tlp_end = c->snd_max;
	tcp_timer_set(c, TT_REXMT, c->rto_ms);
}

bool
tcp_sb_timer_fire(struct tcp_conn *c)
{
	struct tcp_sb *sb = tcp_sb_of(c);
	unsigned marked = 0;
	uint8_t mode;
	uint32_t wait;

	if (sb == NULL || sb->tmode == SBT_RTO)
		return false;
	if (sb->tmode == SBT_UNDO || c->snd_una == c->snd_max) {
		sb->tmode = SBT_RTO;
		if (c->snd_una == c->snd_max) { /* no D-SACK came: the episode stands */
			sb->undo_on = 0;
			tcp_sb_release(c);
			return false;
		}
		tcp_rexmt_arm(c); /* not reached: a send ends the wait (tcp_sb_sent) */
		return true;
	}
	mode = sb->tmode;
	sb->tmode = SBT_RTO;
	if (mode == SBT_TLP) {
		tlp_fire(c, sb);
		return true;
	}
	/* RFC 8985 6.3: the reordering window of a segment has passed */
	wait = rack_detect(c, sb, &marked);
	if (!(c->flags & TF_RECOVERY) ? any_lost(sb) : marked > 0) {
		if (!(c->flags & TF_RECOVERY))
			enter_recovery(c, sb);
		/* what it found lost left the pipe: at least its resend may go (in recovery,
		 * as Linux: cwnd as PRR set it at the last ACK, over a flight one smaller) */
		prr_update(c, sb, 0);
		sb->sndcnt = RTE_MAX(sb->sndcnt, (uint32_t)c->mss);
	}
	if (c->flags & TF_RECOVERY)
		tcp_sb_output(c);
	if (wait > 0) {
		tcp_timer_set(c, TT_REXMT, wait);
		sb->tmode = SBT_REO;
	} else {
		tcp_rexmt_arm(c);
	}
	return true;
}
