/*
 * tcp_timer.c: per-connection timers on one hashed wheel per lcore (1 ms slots, 1024 slots).
 * A TCB holds three deadlines (retransmit/persist or SYN-ACK retry; delayed ACK; keepalive,
 * FIN_WAIT_2 or TIME_WAIT) and sits in the wheel once, at its earliest deadline. Moves are
 * lazy: a later deadline leaves it where it is, and when its slot comes round it fires what
 * is due and re-queues for the rest. Deadlines past the wheel's horizon re-queue once per
 * lap. The delayed ACK, armed at most once per received segment and usually earlier than the
 * retransmission deadline, is not in the wheel (it would move the TCB there at every arm,
 * touching its neighbours' links): it goes on a per-lcore FIFO of (TCB, deadline), in arm
 * order, one entry per TCB; an entry whose TCB was re-armed later goes back on the tail when
 * it comes up (its ACK may then wait behind a later entry: at most one delack_ms more).
 * Also: RTT estimation and RTO (RFC 6298), retransmission timeout handling.
 */
#include <rte_common.h>
#include <rte_mempool.h>

#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

static uint32_t *
deadline(struct tcp_conn *c, int which)
{
	switch (which) {
	case TT_REXMT:
		return &c->t_rexmt;
	case TT_DELACK:
		return &c->t_delack;
	default:
		return &c->t_keep;
	}
}

/* A slot's TCBs: a doubly linked list by tcb_ref, its head in tl->wheel[]. */
static void
wheel_insert(struct tcp_lcore *tl, struct tcp_conn *c, uint32_t slot_ms)
{
	uint32_t *head = &tl->wheel[slot_ms % TCP_WHEEL_SLOTS];
	uint32_t ref = tcb_ref(tl, c);

	c->tw_prev = 0;
	c->tw_next = *head;
	if (*head != 0)
		tcb_at(tl, *head)->tw_prev = ref;
	*head = ref;
	c->tw_ms = slot_ms;
	c->in_wheel = 1;
}

static void
wheel_remove(struct tcp_lcore *tl, struct tcp_conn *c)
{
	if (c->tw_prev != 0)
		tcb_at(tl, c->tw_prev)->tw_next = c->tw_next;
	else
		tl->wheel[c->tw_ms % TCP_WHEEL_SLOTS] = c->tw_next;
	if (c->tw_next != 0)
		tcb_at(tl, c->tw_next)->tw_prev = c->tw_prev;
	c->tw_next = c->tw_prev = 0;
	c->in_wheel = 0;
}

static void
wheel_schedule(struct tcp_conn *c)
{
	struct tcp_lcore *tl = tcb_tl(c);
	uint32_t target = 0;
	bool any = false;
	int t;

	if (c->flags & TF_REAP)
		return; /* closed: its wheel link is its reap-list link now (tcp_types.h) */
	for (t = TT_REXMT; t <= TT_KEEP; t <<= 1) {
		if (!(c->timer_on & t) || t == TT_DELACK)
			continue;
		if (!any || SEQ_LT(*deadline(c, t), target))
			target = *deadline(c, t);
		any = true;
	}
	if (!any)
		return; /* left in the wheel if it is: lazy removal */
	if (SEQ_LEQ(target, tl->wheel_ms))
		target = tl->wheel_ms + 1;
	if (target - tl->wheel_ms >= TCP_WHEEL_SLOTS)
		target = tl->wheel_ms + TCP_WHEEL_SLOTS - 1;
	if (c->in_wheel) {
		if (SEQ_LEQ(c->tw_ms, target))
			return;
		wheel_remove(tl, c);
	}
	wheel_insert(tl, c, target);
}

static void
dq_push(struct tcp_lcore *tl, struct tcp_conn *c, uint32_t deadline_ms)
{
	tl->dq[tl->dq_tail++ & tl->dq_mask] = (struct tcp_dq_ent){ tcb_ref(tl, c), deadline_ms };
	c->timer_on |= TT_DQ;
}

void
tcp_timer_set(struct tcp_conn *c, int which, uint32_t delay_ms)
{
	*deadline(c, which) = tcb_tl(c)->now_ms + delay_ms;
	if (which == TT_DELACK) {
		c->timer_on |= TT_DELACK;
		if (!(c->timer_on & TT_DQ) && !(c->flags & TF_REAP))
			dq_push(tcb_tl(c), c, c->t_delack);
		return;
	}
	if (which == TT_REXMT && c->sb_ref != 0)
		tcp_sb_of(c)->tmode = SBT_RTO; /* the caller says otherwise after (tcp_sack.c) */
	c->timer_on |= (uint8_t)which;
	wheel_schedule(c);
}

void
tcp_timer_stop(struct tcp_conn *c, int which)
{
	c->timer_on &= (uint8_t)~which;
	if (which == TT_REXMT)
		c->flags &= ~TF_PERSIST;
}

void
tcp_timers_stop_all(struct tcp_conn *c)
{
	c->timer_on &= TT_DQ; /* its queue entry stays until it comes up */
	c->flags &= ~TF_PERSIST;
	if (c->in_wheel)
		wheel_remove(tcb_tl(c), c);
}

void
tcp_rexmt_restart(struct tcp_conn *c)
{
	if (c->snd_una == c->snd_max) {
		if (!(c->flags & TF_PERSIST))
			tcp_timer_stop(c, TT_REXMT);
	} else {
		c->flags &= ~TF_PERSIST;
		tcp_rexmt_arm(c); /* the RTO, or a tail loss probe's timeout before it */
	}
}

/* RFC 6298 section 2, in integer milliseconds: srtt8 = 8 * SRTT, rttvar4 = 4 * RTTVAR. */
void
tcp_rtt_sample(struct tcp_conn *c, uint32_t rtt_ms)
{
	const struct tcp_config *cfg = &tcb_tl(c)->cfg;
	uint32_t rto;

	if (rtt_ms > cfg->rto_max_ms)
		return; /* a bogus echo (TSecr from the future or long ago): no sample */
	if (rtt_ms == 0)
		rtt_ms = 1;
	if (c->srtt8 == 0) {
		c->srtt8 = rtt_ms * 8;
		c->rttvar4 = rtt_ms * 2;
	} else {
		int32_t delta = (int32_t)rtt_ms - (int32_t)(c->srtt8 / 8);
		uint32_t adelta = (uint32_t)(delta < 0 ? -delta : delta);

		c->srtt8 = (uint32_t)((int32_t)c->srtt8 + delta);
		c->rttvar4 = c->rttvar4 + adelta - c->rttvar4 / 4;
	}
	/* rto_min bounds the variance term, not the sum (Linux's tcp_rtt_estimator: mdev_max
	 * starts at tcp_rto_min): a timeout waits SRTT and then at least rto_min for what the
	 * path and the peer's ACKs may add, on a 40 ms path as on a 1 ms one */
	rto = c->srtt8 / 8 + RTE_MAX(cfg->rto_min_ms, c->rttvar4);
	c->rto_ms = RTE_MIN(rto, cfg->rto_max_ms);
}

/* RFC 6298 5.7: the SYN (or SYN-ACK) timed out and no RTT was measured: data starts with an
 * RTO of 3 s, not the initial 1 s that already proved too short once. */
void
tcp_rto_after_syn_timeout(struct tcp_conn *c)
{
	const struct tcp_config *cfg = &tcb_tl(c)->cfg;

	uint32_t rto = RTE_MAX(cfg->rto_initial_ms, 3000u);

	c->rto_ms = RTE_MIN(rto, cfg->rto_max_ms);
}

void
tcp_keep_reset(struct tcp_conn *c)
{
	c->last_rx_ms = tcb_tl(c)->now_ms;
	c->keep_probes = 0;
	if (tcb_tl(c)->cfg.keepalive && !(c->timer_on & TT_KEEP) &&
	    (c->state == TCP_ST_ESTABLISHED || c->state == TCP_ST_CLOSE_WAIT))
		tcp_timer_set(c, TT_KEEP, tcb_tl(c)->cfg.keepalive_idle_ms);
}

static void
rto_backoff(struct tcp_conn *c)
{
	c->rto_ms = RTE_MIN(c->rto_ms * 2, tcb_tl(c)->cfg.rto_max_ms);
	if (c->rxtshift < UINT8_MAX)
		c->rxtshift++;
}

/*
 * Zero-window probes. They back off like retransmissions (rxtshift; rto_ms itself is left
 * alone) and, as Linux's icsk_probes_out, keep_probes counts those the peer left unanswered
 * (any segment from it resets the count: tcp_keep_reset): data_retries unanswered probes end
 * the connection. An orphan (the app closed it) gets no more than data_retries probes in
 * all, answered or not, as Linux's tcp_orphan_retries: a peer that keeps its window shut
 * must not hold a closed connection's buffers for ever.
 */
static void
persist_fire(struct tcp_conn *c)
{
	const struct tcp_config *cfg = &tcb_tl(c)->cfg;
	struct dp_lcore *lc = tcb_tl(c)->lc;
	uint64_t ivl;

	c->flags &= ~TF_PERSIST;
	if (c->snd_wnd != 0 || c->sndq.bytes == 0) {
		tcp_output(c);
		return;
	}
	if ((c->flags & TF_APP_CLOSED) && c->rxtshift >= cfg->data_retries) {
		DP_INC(lc, tcp, ORPHAN_TIMEOUT);
		tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_TIMEOUT);
		return;
	}
	if (c->keep_probes >= cfg->data_retries) {
		DP_INC(lc, tcp, PERSIST_TIMEOUT);
		tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_TIMEOUT);
		return;
	}
	DP_INC(lc, tcp, PERSIST_PROBE);
	tcp_send_probe(c);
	if (c->keep_probes < UINT8_MAX)
		c->keep_probes++;
	if (c->rxtshift < UINT8_MAX)
		c->rxtshift++;
	ivl = (uint64_t)c->rto_ms << (c->rxtshift < 16 ? c->rxtshift : 16);
	if (ivl > cfg->rto_max_ms)
		ivl = cfg->rto_max_ms;
	c->flags |= TF_PERSIST;
	tcp_timer_set(c, TT_REXMT, (uint32_t)ivl);
}

static void
rexmt_fire(struct tcp_conn *c)
{
	const struct tcp_config *cfg = &tcb_tl(c)->cfg;
	struct dp_lcore *lc = tcb_tl(c)->lc;

	if (c->flags & TF_PERSIST) {
		persist_fire(c);
		return;
	}
	if (c->state == TCP_ST_SYN_SENT) {
		if (c->rxtshift >= cfg->syn_retries) {
			DP_INC(lc, tcp, CONNECT_TIMEOUT);
			tcp_conn_close(c, TCP_CLOSE_TIMEOUT);
			return;
		}
		rto_backoff(c);
		DP_INC(lc, tcp, SYN_REXMT);
		tcp_send_syn(c);
		tcp_timer_set(c, TT_REXMT, c->rto_ms);
		return;
	}
	if (c->state == TCP_ST_SYN_RECEIVED) {
		if (c->rxtshift >= cfg->syn_retries) {
			DP_INC(lc, tcp, HALF_OPEN_EXPIRED);
			tcp_conn_close(c, TCP_CLOSE_TIMEOUT);
			return;
		}
		rto_backoff(c);
		DP_INC(lc, tcp, SYNACK_REXMT);
		tcp_send_synack(c);
		tcp_timer_set(c, TT_REXMT, c->rto_ms);
		return;
	}
	if (tcp_sb_timer_fire(c))
		return; /* a tail loss probe or RACK's reordering timer */
	if (c->snd_una == c->snd_max) {
		/* nothing in flight: a send failed (no mbuf) with data or a FIN waiting */
		if (c->sndq.bytes > 0 || ((c->flags & TF_FIN_QUEUED) && !(c->flags & TF_FIN_SENT)))
			tcp_output(c);
		return;
	}
	if (c->snd_wnd == 0) {
		/* the peer shrank its window to zero under data in flight: probe, do not
		 * count retries against a peer that answers */
		c->frto = TCP_FRTO_OFF;
		c->snd_nxt = c->snd_una;
		persist_fire(c);
		return;
	}
	if (c->rxtshift >= cfg->data_retries) {
		DP_INC(lc, tcp, CONN_TIMEOUT);
		tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_TIMEOUT);
		return;
	}
	DP_INC(lc, tcp, REXMT_TIMEOUT);
	tcp_rec_rto(c); /* before the backoff: ssthresh only on the first */
	rto_backoff(c);
	c->flags &= ~TF_RTT_TIMING;
	c->snd_nxt = c->snd_una; /* go back: resend from the first unacknowledged byte */
	tcp_timer_set(c, TT_REXMT, c->rto_ms);
	tcp_output(c);
}

static void
keep_fire(struct tcp_conn *c)
{
	const struct tcp_config *cfg = &tcb_tl(c)->cfg;
	struct dp_lcore *lc = tcb_tl(c)->lc;
	uint32_t idle = tcb_tl(c)->now_ms - c->last_rx_ms;

	switch (c->state) {
	case TCP_ST_TIME_WAIT:
		DP_INC(lc, tcp, TIME_WAIT_EXPIRED);
		tcp_conn_close(c, TCP_CLOSE_NORMAL);
		return;
	case TCP_ST_FIN_WAIT_2:
		if (!(c->flags & TF_APP_CLOSED))
			return; /* half-closed by the app, which still reads: no limit */
		DP_INC(lc, tcp, FIN_WAIT_2_TIMEOUT);
		tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_TIMEOUT);
		return;
	case TCP_ST_ESTABLISHED:
	case TCP_ST_CLOSE_WAIT:
		break;
	default:
		return;
	}
	if (!cfg->keepalive)
		return;
	if (idle < cfg->keepalive_idle_ms && c->keep_probes == 0) {
		tcp_timer_set(c, TT_KEEP, cfg->keepalive_idle_ms - idle);
		return;
	}
	if (c->keep_probes >= cfg->keepalive_probes) {
		DP_INC(lc, tcp, KEEPALIVE_DROP);
		tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_KEEPALIVE);
		return;
	}
	c->keep_probes++;
	DP_INC(lc, tcp, KEEPALIVE_PROBE);
	tcp_send_probe(c);
	tcp_timer_set(c, TT_KEEP, cfg->keepalive_intvl_ms);
}

static void
conn_fire(struct tcp_conn *c)
{
	uint32_t now = tcb_tl(c)->now_ms;

	if ((c->timer_on & TT_REXMT) && SEQ_LEQ(c->t_rexmt, now)) {
		c->timer_on &= (uint8_t)~TT_REXMT;
		rexmt_fire(c);
	}
	if (c->state != TCP_ST_CLOSED && (c->timer_on & TT_KEEP) && SEQ_LEQ(c->t_keep, now)) {
		c->timer_on &= (uint8_t)~TT_KEEP;
		keep_fire(c);
	}
	if (c->state != TCP_ST_CLOSED)
		wheel_schedule(c);
}

/* Once per millisecond: is the mbuf pool running low? (Memory the peers make us hold is
 * bounded per flow by the window; this bounds it across flows.) */
static void
pressure_check(struct tcp_lcore *tl)
{
	struct rte_mempool *mp = tl->lc->pool;
	bool low = rte_mempool_avail_count(mp) < mp->size / 8;

	if (low && !tl->pressure)
		DP_INC(tl->lc, tcp, MEM_PRESSURE);
	tl->pressure = low;
}

/* How many entries of the delayed-ACK queue ahead of the one being sent have their TCBs
 * prefetched (dq_poll). */
#define TCP_DQ_PREFETCH 8

/* The delayed ACKs that are due, in arm order. The queue names the TCBs to come, so theirs are
 * requested TCP_DQ_PREFETCH entries ahead, each once (dq_pf): at many flows a delayed ACK's TCB
 * has gone out of cache since its segment came (every other flow took one meanwhile), and each
 * ACK would wait for its own misses. */
static void
dq_poll(struct tcp_lcore *tl)
{
	while (tl->dq_head != tl->dq_tail) {
		struct tcp_dq_ent e = tl->dq[tl->dq_head & tl->dq_mask];
		struct tcp_conn *c;

		if (SEQ_GT(e.deadline_ms, tl->now_ms))
			break;
		for (; tl->dq_pf != tl->dq_tail && tl->dq_pf - tl->dq_head <= TCP_DQ_PREFETCH;
		     tl->dq_pf++)
			tcb_prefetch(tcb_at(tl, tl->dq[tl->dq_pf & tl->dq_mask].ref));
		tl->dq_head++;
		c = tcb_at(tl, e.ref);
		c->timer_on &= (uint8_t)~TT_DQ;
		if (!(c->timer_on & TT_DELACK) || c->state == TCP_ST_CLOSED)
			continue; /* sent meanwhile, or the flow is gone */
		if (SEQ_GT(c->t_delack, tl->now_ms)) {
			dq_push(tl, c, c->t_delack); /* re-armed later since */
			continue;
		}
		c->timer_on &= (uint8_t)~TT_DELACK;
		DP_INC(tl->lc, tcp, DELACK);
		tcp_send_ack(c);
	}
}

void
tcp_timers_poll(struct dp_lcore *lc)
{
	struct tcp_lcore *tl = lc->tcp;
	struct tcp_conn *c;

	if (tl == NULL)
		return;
	tcp_update_clock(tl);
	if (tl->now_ms != tl->wheel_ms)
		pressure_check(tl);
	if (tl->now_ms - tl->wheel_ms > TCP_WHEEL_SLOTS)
		tl->wheel_ms =
		    tl->now_ms - TCP_WHEEL_SLOTS; /* a long stall: visit each slot once */
	while (SEQ_LT(tl->wheel_ms, tl->now_ms)) {
		tl->wheel_ms++;
		while ((c = tcb_at(tl, tl->wheel[tl->wheel_ms % TCP_WHEEL_SLOTS])) != NULL) {
			wheel_remove(tl, c);
			conn_fire(c);
		}
	}
	dq_poll(tl);
	tcp_reap(tl);
}
