/*
 * tcp_hystart.c: HyStart++ (RFC 9406) in the initial slow start, for every congestion
 * control (both grow alike there: tcp_ss_grow() is their slow start). Per round trip (from
 * the ACK of the round's first byte to the ACK of what was sent by then) the minimum RTT
 * of at least eight samples; when a round's minimum exceeds the last one's by RttThresh
 * (an eighth of it, within 4..16 ms) the queue on the path is growing: Conservative Slow
 * Start (growth divided by 4) for up to five rounds, then congestion avoidance from that
 * cwnd, before the overshoot of a doubling ends in a burst of losses. A round in CSS whose
 * minimum falls back below the one that started it was a false alarm: slow start again.
 * Its state and its RTT samples (one per segment delivered, RACK's: tcp_sack.c) are in
 * the flow's loss-recovery block: a flow without one (no SACK, or the pool spent) grows
 * by plain slow start, and a flow whose flight drained starts counting rounds again.
 */
#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define HS_MIN_RTT_THRESH_MS 4u
#define HS_MAX_RTT_THRESH_MS 16u
#define HS_MIN_RTT_DIVISOR   8u
#define HS_N_RTT_SAMPLE      8
#define HS_CSS_GROWTH_DIV    4u
#define HS_CSS_ROUNDS        5
#define HS_NONE              UINT16_MAX /* no RTT sample yet */

void
tcp_hs_init(const struct tcp_conn *c, struct tcp_sb *sb)
{
	sb->hs_end = c->snd_una;
	sb->hs_last_min = sb->hs_cur_min = sb->hs_css_base = HS_NONE;
	sb->hs_samples = sb->hs_css = sb->hs_css_rounds = sb->hs_done = 0;
}

void
tcp_hs_rtt(struct tcp_sb *sb, uint32_t rtt_ms)
{
	if (rtt_ms < sb->hs_cur_min)
		sb->hs_cur_min = (uint16_t)rtt_ms; /* HS_NONE is above any: none over 65 s */
	if (sb->hs_samples < UINT8_MAX)
		sb->hs_samples++;
}

/* An ACK that acknowledged new data: the first beyond the round's last byte starts the next
 * round (as Linux's HyStart: the ACK of the last byte is still the old round's). */
void
tcp_hs_round(struct tcp_conn *c, struct tcp_sb *sb)
{
	if (sb->hs_done || SEQ_LEQ(c->snd_una, sb->hs_end))
		return;
	if (c->ssthresh != TCP_SSTHRESH_INIT) {
		sb->hs_done = 1; /* a loss ended the initial slow start */
		sb->hs_css = 0;
		return;
	}
	if (sb->hs_css && ++sb->hs_css_rounds >= HS_CSS_ROUNDS) {
		DP_INC(tcb_tl(c)->lc, tcp, HYSTART_EXIT);
		c->ssthresh = c->cwnd; /* congestion avoidance from here */
		sb->hs_done = 1;
		sb->hs_css = 0;
		return;
	}
	sb->hs_last_min = sb->hs_cur_min;
	sb->hs_cur_min = HS_NONE;
	sb->hs_samples = 0;
	sb->hs_end = c->snd_max;
}

uint32_t
tcp_ss_grow(struct tcp_conn *c, uint32_t acked)
{
	struct tcp_sb *sb = tcp_sb_of(c);
	uint32_t inc = RTE_MIN(acked, (uint32_t)c->mss), thresh;

	if (sb == NULL || sb->hs_done || c->ssthresh != TCP_SSTHRESH_INIT ||
	    sb->hs_samples < HS_N_RTT_SAMPLE || sb->hs_cur_min == HS_NONE)
		return sb != NULL && sb->hs_css ? RTE_MAX(inc / HS_CSS_GROWTH_DIV, 1u) : inc;
	if (!sb->hs_css) {
		if (sb->hs_last_min == HS_NONE)
			return inc;
		thresh = RTE_MIN(sb->hs_last_min / HS_MIN_RTT_DIVISOR, HS_MAX_RTT_THRESH_MS);
		thresh = RTE_MAX(thresh, HS_MIN_RTT_THRESH_MS);
		if (sb->hs_cur_min < sb->hs_last_min + thresh)
			return inc;
		DP_INC(tcb_tl(c)->lc, tcp, HYSTART_CSS);
		sb->hs_css = 1;
		sb->hs_css_rounds = 0;
		sb->hs_css_base = sb->hs_cur_min;
	} else if (sb->hs_cur_min < sb->hs_css_base) {
		DP_INC(tcb_tl(c)->lc, tcp, HYSTART_CSS_BACK);
		sb->hs_css = 0;
		sb->hs_css_base = HS_NONE;
		return inc;
	}
	return RTE_MAX(inc / HS_CSS_GROWTH_DIV, 1u);
}
