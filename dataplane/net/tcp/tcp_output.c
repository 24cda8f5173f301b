/*
 * tcp_output.c: every segment the stack sends. Each is built in one fresh mbuf from dp_alloc()
 * (header, options, payload copied from the send queue), so retransmissions are copies and the
 * send queue is never handed to the NIC; the checksum field is left zero for ipv4_output().
 * tcp_output() sends what cwnd and the peer's window allow, with the ACK piggybacked; pure
 * ACKs are coalesced: input marks the flow (TF_ACKNOW) and tcp_flush() sends at most one per
 * flow per rx burst (duplicate ACKs for out-of-order data go at once, from input). A send that
 * fails is not taken as sent: data waits for the retransmission timer, an owed ACK for the
 * delayed-ACK timer. Also: SYNs, SYN-ACKs (with or without a TCB), RSTs, window probes.
 */
#include <string.h>

#include <netinet/in.h>
#include <rte_byteorder.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "dp.h"
#include "ipv4.h"
#include "pmtu.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define TCPOPT_EOL     0
#define TCPOPT_NOP     1
#define TCPOPT_MSS     2
#define TCPOPT_WSCALE  3
#define TCPOPT_SACK_OK 4
#define TCPOPT_SACK    5
#define TCPOPT_TS      8

struct seg_out {
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win; /* as it goes on the wire */
	uint8_t optlen;
	struct tcp_mq *q;  /* payload source (send queue) */
	uint32_t off, len; /* payload: offset into q and length */
	uint8_t opts[40];  /* last: memset up to here clears everything else */
};

static uint32_t
ts_now(const struct tcp_lcore *tl)
{
	return tl->now_ms + tl->ts_offset;
}

static uint8_t *
opt_ts(uint8_t *p, uint32_t tsval, uint32_t tsecr)
{
	*p++ = TCPOPT_NOP;
	*p++ = TCPOPT_NOP;
	*p++ = TCPOPT_TS;
	*p++ = 10;
	tsval = rte_cpu_to_be_32(tsval);
	tsecr = rte_cpu_to_be_32(tsecr);
	memcpy(p, &tsval, 4);
	memcpy(p + 4, &tsecr, 4);
	return p + 8;
}

static uint8_t *
opt_mss(uint8_t *p, uint16_t mss)
{
	*p++ = TCPOPT_MSS;
	*p++ = 4;
	*p++ = (uint8_t)(mss >> 8);
	*p++ = (uint8_t)mss;
	return p;
}

/* Build and hand one segment to ipv4_output. 0 or a negative errno (counted). nh_hint: the
 * flow's next-hop hint (NULL: a segment without a TCB). */
static int
seg_send(
    struct tcp_lcore *tl, const struct tcp_flow_key *k, const struct seg_out *o, uint32_t *nh_hint)
{
	struct dp_lcore *lc = tl->lc;
	uint16_t hlen = (uint16_t)(sizeof(struct rte_tcp_hdr) + o->optlen);
	struct rte_tcp_hdr *th;
	struct rte_mbuf *m;

	m = dp_alloc(lc);
	if (m == NULL) {
		DP_INC(lc, tcp, MBUF_FAIL);
		return -ENOBUFS;
	}
	th = (struct rte_tcp_hdr *)rte_pktmbuf_append(m, (uint16_t)(hlen + o->len));
	if (th == NULL) {
		rte_pktmbuf_free(m);
		DP_INC(lc, tcp, MBUF_FAIL);
		return -ENOBUFS;
	}
	th->src_port = k->lport;
	th->dst_port = k->rport;
	th->sent_seq = rte_cpu_to_be_32(o->seq);
	th->recv_ack = rte_cpu_to_be_32(o->ack);
	th->data_off = (uint8_t)((hlen / 4) << 4);
	th->tcp_flags = o->flags;
	th->rx_win = rte_cpu_to_be_16(o->win);
	th->cksum = 0;
	th->tcp_urp = 0;
	memcpy(th + 1, o->opts, o->optlen);
	if (o->len > 0 && tcp_mq_copy_out(tl, o->q, o->off, o->len, (uint8_t *)th + hlen) < 0) {
		rte_pktmbuf_free(m);
		DP_INC(lc, tcp, ERR_INTERNAL);
		return -EINVAL;
	}
	m->l4_len = hlen;
	DP_INC(lc, tcp, TX_SEGS);
	if (o->flags & RTE_TCP_RST_FLAG)
		DP_INC(lc, tcp, RST_SENT);
	return ipv4_output_hint(lc, m, k->lip, k->rip, IPPROTO_TCP, nh_hint);
}

/*
 * The window we offer, in bytes: buffer space the app has not filled, with receiver-side
 * silly window avoidance (no offer below min(rcvbuf/4, MSS)) and never shrinking what we
 * already offered (RFC 7323 2.4).
 */
uint32_t
tcp_rcv_window(const struct tcp_conn *c)
{
	uint32_t rcvbuf = tcb_tl(c)->cfg.rcvbuf_bytes;
	uint32_t avail = rcvbuf > c->rcvq.bytes ? rcvbuf - c->rcvq.bytes : 0;
	uint32_t maxwin = 65535u << c->rcv_wscale;

	if (avail < rcvbuf / 4 && avail < c->mss)
		avail = 0;
	/* the pool runs low: flows already holding data get no new window (what was offered
	 * stays offered), the others one segment, so every flow can still make progress */
	if (tcb_tl(c)->pressure)
		avail = c->rcvq.bytes > 0 || c->ooo != NULL ? 0 : RTE_MIN(avail, (uint32_t)c->mss);
	if (SEQ_GT(c->rcv_adv, c->rcv_nxt))
		avail = RTE_MAX(avail, c->rcv_adv - c->rcv_nxt);
	return RTE_MIN(avail, maxwin);
}

/* The D-SACK block c is owed (RFC 2883), if its lcore still holds it. */
static bool
dsack_owed(const struct tcp_conn *c, uint32_t blk[2])
{
	const struct tcp_lcore *tl = tcb_tl(c);
	uint32_t ref = tcb_ref(tl, c);

	if (!c->dsack || tl->dsack[ref % TCP_DSACK_SLOTS].ref != ref)
		return false;
	blk[0] = tl->dsack[ref % TCP_DSACK_SLOTS].l;
	blk[1] = tl->dsack[ref % TCP_DSACK_SLOTS].r;
	return true;
}

/* How many SACK blocks our segments carry now (what fits beside the timestamps): the D-SACK
 * block owed first, then the out-of-order blocks, newest first. */
static unsigned
sack_nblocks(const struct tcp_conn *c, uint32_t (*blk)[2])
{
	uint32_t tmp[4][2];
	unsigned max = (c->flags & TF_TS_OK) ? 3 : 4, d;

	if (!(c->flags & TF_SACK_OK) || (c->ooo == NULL && !c->dsack))
		return 0;
	if (blk == NULL)
		blk = tmp;
	d = dsack_owed(c, blk[0]);
	return d + (c->ooo != NULL ? tcp_ooo_sack_blocks(c, blk + d, max - d) : 0);
}

/* Option bytes the SACK blocks take (NOP NOP kind len + 8 per block); payload gives way. */
static uint32_t
sack_space(const struct tcp_conn *c)
{
	unsigned n = sack_nblocks(c, NULL);

	return n > 0 ? 4 + 8 * n : 0;
}

static uint8_t *
opt_sack(uint8_t *p, uint32_t (*blk)[2], unsigned n)
{
	*p++ = TCPOPT_NOP;
	*p++ = TCPOPT_NOP;
	*p++ = TCPOPT_SACK;
	*p++ = (uint8_t)(2 + 8 * n);
	for (unsigned i = 0; i < n; i++) {
		uint32_t l = rte_cpu_to_be_32(blk[i][0]), r = rte_cpu_to_be_32(blk[i][1]);

		memcpy(p, &l, 4);
		memcpy(p + 4, &r, 4);
		p += 8;
	}
	return p;
}

/* Fill seq/ack/window/timestamp (and SACK blocks) for a segment of a synchronized flow. */
static void
seg_init(struct tcp_conn *c, struct seg_out *o, uint32_t seq, uint8_t flags)
{
	uint32_t win = tcp_rcv_window(c), blk[4][2], d[2];
	uint8_t *p = o->opts;
	unsigned nsack = 0;

	memset(o, 0, offsetof(struct seg_out, opts));
	o->seq = seq;
	o->ack = c->rcv_nxt;
	o->flags = flags;
	o->win = (uint16_t)(win >> c->rcv_wscale);
	o->q = &c->sndq;
	if (c->flags & TF_TS_OK)
		p = opt_ts(p, ts_now(tcb_tl(c)), c->ts_recent);
	if ((flags & RTE_TCP_ACK_FLAG) && (nsack = sack_nblocks(c, blk)) > 0)
		p = opt_sack(p, blk, nsack);
	if ((flags & RTE_TCP_ACK_FLAG) && c->dsack) { /* reported once (RFC 2883 4) */
		if (nsack > 0 && dsack_owed(c, d))
			DP_INC(tcb_tl(c)->lc, tcp, DSACK_SENT);
		c->dsack = 0;
	}
	o->optlen = (uint8_t)(p - o->opts);
}

/* An ACK went out: the delayed ACK is no longer owed, and the offered edge moved. */
static void
ack_sent(struct tcp_conn *c, const struct seg_out *o)
{
	uint32_t edge = c->rcv_nxt + ((uint32_t)o->win << c->rcv_wscale);

	c->flags &= ~TF_ACKNOW;
	c->segs_unacked = 0;
	tcp_timer_stop(c, TT_DELACK);
	if (SEQ_GT(edge, c->rcv_adv))
		c->rcv_adv = edge;
}

/* Send a segment of the flow; its ACK counts as sent only if the segment left. */
static int
conn_send(struct tcp_conn *c, struct seg_out *o)
{
	int rc = seg_send(tcb_tl(c), &c->key, o, &c->nh_hint);

	if (rc == 0 && (o->flags & RTE_TCP_ACK_FLAG))
		ack_sent(c, o);
	return rc;
}

/*
 * The sequence number of a segment without data: the highest sent (BSD's snd_max, RFC 9293
 * 3.10.7.4), not snd_nxt, which an RTO rewinds to SND.UNA: a peer would take an ACK that
 * seems to come from before what it already received as old. In persist, snd_nxt.
 */
static uint32_t
ctl_seq(const struct tcp_conn *c)
{
	return (c->flags & TF_PERSIST) ? c->snd_nxt : c->snd_max;
}

void
tcp_send_ack(struct tcp_conn *c)
{
	struct seg_out o;

	seg_init(c, &o, ctl_seq(c), RTE_TCP_ACK_FLAG);
	DP_INC(tcb_tl(c)->lc, tcp, ACKS_SENT);
	if (conn_send(c, &o) < 0) {
		/* still owed (TF_ACKNOW stays): the delayed-ACK timer tries again */
		c->flags |= TF_ACKNOW;
		tcp_timer_set(c, TT_DELACK, tcb_tl(c)->cfg.delack_ms);
	}
}

void
tcp_send_probe(struct tcp_conn *c)
{
	struct seg_out o;

	/* an already acknowledged sequence number: the peer must answer with an ACK */
	seg_init(c, &o, c->snd_una - 1, RTE_TCP_ACK_FLAG);
	conn_send(c, &o);
}

void
tcp_send_rst(struct tcp_conn *c)
{
	struct seg_out o;

	seg_init(c, &o, ctl_seq(c), RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG);
	o.optlen = 0;
	o.win = 0;
	seg_send(tcb_tl(c), &c->key, &o, &c->nh_hint);
}

/* Options of a SYN or SYN-ACK: MSS, window scale (ws < 0: none), timestamps, SACK permitted. */
static uint8_t
syn_opts(const struct tcp_lcore *tl, uint8_t *opts, int ws, bool ts, uint32_t tsecr, bool sack)
{
	uint8_t *p = opt_mss(opts, tl->cfg.mss);

	if (ws >= 0) {
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_WSCALE;
		*p++ = 3;
		*p++ = (uint8_t)ws;
	}
	if (ts)
		p = opt_ts(p, ts_now(tl), tsecr);
	if (sack) {
		/* we take SACK blocks (loss detection) but send none: RFC 2018 allows both */
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_NOP;
		*p++ = TCPOPT_SACK_OK;
		*p++ = 2;
	}
	return (uint8_t)(p - opts);
}

void
tcp_send_synack(struct tcp_conn *c)
{
	struct tcp_lcore *tl = tcb_tl(c);
	struct seg_out o;

	memset(&o, 0, offsetof(struct seg_out, opts));
	o.seq = c->snd_una; /* the ISS, until the handshake completes */
	o.ack = c->rcv_nxt;
	o.flags = RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG;
	o.win = (uint16_t)RTE_MIN(tl->cfg.rcvbuf_bytes, 65535u); /* never scaled in a SYN */
	o.optlen = syn_opts(tl, o.opts, (c->flags & TF_WS_OK) ? c->rcv_wscale : -1,
	    c->flags & TF_TS_OK, c->ts_recent, c->flags & TF_SACK_OK);
	seg_send(tl, &c->key, &o, &c->nh_hint);
	c->rcv_adv = c->rcv_nxt + o.win;
}

/* Active open: our SYN offers everything we do; the SYN-ACK decides (tcp_connect.c). */
void
tcp_send_syn(struct tcp_conn *c)
{
	struct tcp_lcore *tl = tcb_tl(c);
	struct seg_out o;

	memset(&o, 0, offsetof(struct seg_out, opts));
	o.seq = c->snd_una; /* the ISS, until the handshake completes */
	o.flags = RTE_TCP_SYN_FLAG;
	o.win = (uint16_t)RTE_MIN(tl->cfg.rcvbuf_bytes, 65535u);
	o.optlen = syn_opts(tl, o.opts, tl->cfg.wscale, tl->cfg.timestamps, 0, true);
	seg_send(tl, &c->key, &o, &c->nh_hint);
}

/* A SYN-ACK whose ISS is a SYN cookie: no TCB, MSS option only (see tcp_syncookie.c). */
void
tcp_send_cookie_synack(struct tcp_lcore *tl, const struct tcp_seg *s, uint32_t iss, uint16_t mss)
{
	struct seg_out o;

	memset(&o, 0, offsetof(struct seg_out, opts));
	o.seq = iss;
	o.ack = s->seq + 1;
	o.flags = RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG;
	o.win = (uint16_t)RTE_MIN(tl->cfg.rcvbuf_bytes, 65535u);
	o.optlen = (uint8_t)(opt_mss(o.opts, RTE_MIN(mss, tl->cfg.mss)) - o.opts);
	seg_send(tl, &s->key, &o, NULL);
}

/* RFC 793 "Reset Generation" for a segment that belongs to no connection. */
void
tcp_send_rst_reply(struct tcp_lcore *tl, const struct tcp_seg *s)
{
	struct seg_out o;

	if (s->flags & RTE_TCP_RST_FLAG)
		return;
	memset(&o, 0, offsetof(struct seg_out, opts));
	if (s->flags & RTE_TCP_ACK_FLAG) {
		o.seq = s->ack;
		o.flags = RTE_TCP_RST_FLAG;
	} else {
		o.seq = 0;
		o.ack = s->seq + s->len + !!(s->flags & RTE_TCP_SYN_FLAG) +
		    !!(s->flags & RTE_TCP_FIN_FLAG);
		o.flags = RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG;
	}
	seg_send(tl, &s->key, &o, NULL);
}

/*
 * One segment at SND.UNA (fast retransmit, partial ACK), whatever snd_nxt is: only bytes
 * already sent (below SND.MAX), so neither cwnd nor the peer's window is overrun and the
 * peer's ACK of it is never "unsent data"; the FIN rides along if it was sent and this is
 * the last of the data.
 */
void
tcp_retransmit_una(struct tcp_conn *c)
{
	struct seg_out o;
	bool fin_out = (c->flags & TF_FIN_SENT) && !(c->flags & TF_FIN_ACKED);
	uint32_t sent = c->snd_max - c->snd_una - fin_out, end;
	uint32_t room = c->mss - sack_space(c);
	uint32_t len = RTE_MIN(c->sndq.bytes, sent);
	uint8_t flags = RTE_TCP_ACK_FLAG;

	len = RTE_MIN(len, room);
	if (fin_out && len == sent)
		flags |= RTE_TCP_FIN_FLAG;
	if (len == 0 && !(flags & RTE_TCP_FIN_FLAG))
		return;
	seg_init(c, &o, c->snd_una, flags);
	o.off = 0;
	o.len = len;
	c->flags &= ~TF_RTT_TIMING; /* Karn: no RTT sample across a retransmission */
	DP_INC(tcb_tl(c)->lc, tcp, REXMT_SEGS);
	end = c->snd_una + len + !!(flags & RTE_TCP_FIN_FLAG);
	if (conn_send(c, &o) == 0) {
		tcp_sb_sent(c, c->snd_una, end);
		if (SEQ_LT(c->snd_nxt, end))
			c->snd_nxt = end; /* after an RTO: do not send these bytes again at once */
	}
	tcp_timer_set(c, TT_REXMT, c->rto_ms);
}

/*
 * A retransmission of [seq, end), already sent (a segment of the scoreboard, or the tail
 * loss probe): the FIN rides along when end covers it. 0 or a negative errno.
 */
int
tcp_send_range(struct tcp_conn *c, uint32_t seq, uint32_t end)
{
	uint32_t data_end = c->snd_una + c->sndq.bytes;
	uint8_t flags = RTE_TCP_ACK_FLAG;
	struct seg_out o;
	int rc;

	if (SEQ_LT(seq, c->snd_una) || !SEQ_LT(seq, end) || SEQ_GT(end, c->snd_max))
		return -EINVAL;
	if (SEQ_GT(end, data_end)) {
		if (!(c->flags & TF_FIN_SENT) || (c->flags & TF_FIN_ACKED) || end != data_end + 1)
			return -EINVAL;
		flags |= RTE_TCP_FIN_FLAG;
		end = data_end;
	}
	seg_init(c, &o, seq, flags);
	o.off = seq - c->snd_una;
	o.len = end - seq;
	c->flags &= ~TF_RTT_TIMING; /* Karn */
	DP_INC(tcb_tl(c)->lc, tcp, REXMT_SEGS);
	DP_ADD(tcb_tl(c)->lc, tcp, TX_BYTES, o.len);
	rc = conn_send(c, &o);
	if (rc == 0)
		tcp_sb_sent(c, seq, end + !!(flags & RTE_TCP_FIN_FLAG));
	if (!(c->timer_on & TT_REXMT))
		tcp_rexmt_arm(c);
	return rc;
}

static bool
can_send_data(const struct tcp_conn *c)
{
	switch (c->state) {
	case TCP_ST_ESTABLISHED:
	case TCP_ST_CLOSE_WAIT:
	case TCP_ST_FIN_WAIT_1:
	case TCP_ST_CLOSING:
	case TCP_ST_LAST_ACK:
		return true;
	default:
		return false;
	}
}

/* Length of the next segment at snd_nxt (at most room bytes), 0 if none should go now;
 * *fin: the FIN rides along. not_out: bytes below snd_nxt that are not in flight (SACKed,
 * after an RTO: tcp_sb_skip), which cwnd does not count and the peer's window does. */
static uint32_t
next_seg_len(const struct tcp_conn *c, uint32_t room, uint32_t not_out, bool *fin)
{
	uint32_t off = c->snd_nxt - c->snd_una, flight = off - RTE_MIN(not_out, off);
	uint32_t avail = off < c->sndq.bytes ? c->sndq.bytes - off : 0;
	uint32_t usable = off < c->snd_wnd ? c->snd_wnd - off : 0;
	uint32_t len;

	usable = RTE_MIN(usable, flight < c->cwnd ? c->cwnd - flight : 0);
	len = RTE_MIN(avail, usable);

	len = RTE_MIN(len, room);

	*fin = (c->flags & TF_FIN_QUEUED) && off <= c->sndq.bytes && off + len == c->sndq.bytes;
	/* sender silly window avoidance: a runt only when it empties the queue or nothing is
	 * outstanding (otherwise the ACK clock brings a bigger window) */
	if (len > 0 && len < room && len < avail && c->snd_nxt != c->snd_una)
		return *fin = false, 0;
	return len;
}

static void
persist_check(struct tcp_conn *c)
{
	uint32_t off = c->snd_nxt - c->snd_una;

	if (c->snd_wnd == 0 && off < c->sndq.bytes && c->snd_una == c->snd_max &&
	    !(c->timer_on & TT_REXMT)) {
		c->flags |= TF_PERSIST;
		tcp_timer_set(c, TT_REXMT, c->rto_ms);
	}
}

/*
 * RFC 5681 4.1: after an idle period longer than the RTO (nothing in flight, nothing sent),
 * cwnd restarts at no more than the initial window: the ACK clock that justified it is gone.
 */
static void
idle_restart(struct tcp_conn *c)
{
	uint32_t iw = RTE_MAX(2u * c->mss, 14600u);

	iw = RTE_MIN(10u * c->mss, iw);

	if (c->snd_una == c->snd_max && c->cwnd > iw &&
	    tcb_tl(c)->now_ms - c->last_tx_ms > c->rto_ms) {
		c->cwnd = iw;
		DP_INC(tcb_tl(c)->lc, tcp, CWND_IDLE_RESTART);
	}
}

/* One segment at snd_nxt of len bytes (and the FIN); -1 if it could not go. */
static int
send_next(struct tcp_conn *c, uint32_t len, bool fin)
{
	uint8_t flags = RTE_TCP_ACK_FLAG;
	uint32_t seq = c->snd_nxt;
	bool is_new = c->snd_nxt == c->snd_max;
	struct seg_out o;

	if (fin)
		flags |= RTE_TCP_FIN_FLAG;
	if (len > 0 && c->snd_nxt - c->snd_una + len == c->sndq.bytes)
		flags |= RTE_TCP_PSH_FLAG;
	seg_init(c, &o, c->snd_nxt, flags);
	o.off = c->snd_nxt - c->snd_una;
	o.len = len;
	if (conn_send(c, &o) < 0) {
		/* nothing left: try again when the retransmission timer fires (with nothing
		 * in flight no ACK would ever bring us back here) */
		if (!(c->timer_on & TT_REXMT))
			tcp_timer_set(c, TT_REXMT, c->rto_ms);
		return -1;
	}
	if (SEQ_LT(c->snd_nxt, c->snd_max)) {
		DP_INC(tcb_tl(c)->lc, tcp, REXMT_SEGS);
	} else if (!(c->flags & TF_RTT_TIMING) && !(c->flags & TF_TS_OK) && !c->frto) {
		c->flags |= TF_RTT_TIMING;
		c->rtt_seq = c->snd_nxt;
		c->rtt_start_ms = tcb_tl(c)->now_ms;
	}
	c->last_tx_ms = tcb_tl(c)->now_ms;
	DP_ADD(tcb_tl(c)->lc, tcp, TX_BYTES, len);
	tcp_sb_sent(c, seq, seq + len + fin); /* before snd_max moves: new or again */
	c->snd_nxt += len + fin;
	if (fin)
		c->flags |= TF_FIN_SENT;
	if (SEQ_GT(c->snd_nxt, c->snd_max))
		c->snd_max = c->snd_nxt;
	if (!(c->timer_on & TT_REXMT) || (c->flags & TF_PERSIST)) {
		c->flags &= ~TF_PERSIST;
		tcp_rexmt_arm(c);
	} else if (is_new && tcp_sb_of(c) != NULL && tcp_sb_of(c)->tmode == SBT_TLP) {
		tcp_rexmt_arm(c); /* RFC 8985 7.2: the probe timeout restarts with new data */
	}
	return 0;
}

/*
 * One new segment of at most max bytes, as far as the peer's window allows but whatever
 * cwnd says (PRR's share in recovery, a tail loss probe). Returns the sequence space sent.
 */
uint32_t
tcp_output_new(struct tcp_conn *c, uint32_t max)
{
	uint32_t room = RTE_MIN(c->mss - sack_space(c), max), cwnd = c->cwnd, before = c->snd_nxt;
	uint32_t len;
	bool fin;

	if (!can_send_data(c) || c->snd_nxt != c->snd_max || room == 0 || !tcp_sb_room(c))
		return 0;
	c->cwnd = UINT32_MAX / 2;
	len = next_seg_len(c, room, 0, &fin);
	c->cwnd = cwnd;
	if ((len == 0 && !fin) || send_next(c, len, fin) < 0)
		return 0;
	return c->snd_nxt - before;
}

/* Send what the windows allow, FIN after the data, and an ACK if one is owed and none rode. */
void
tcp_output(struct tcp_conn *c)
{
	uint32_t room, len;
	bool fin;

	if (!can_send_data(c)) {
		if (!(c->flags & TF_ACKNOW) || c->state == TCP_ST_CLOSED ||
		    c->state == TCP_ST_SYN_SENT)
			return;
		if (c->state == TCP_ST_SYN_RECEIVED) {
			/* an ACK owed before the handshake completed: the SYN-ACK is that ACK */
			c->flags &= ~TF_ACKNOW;
			tcp_send_synack(c);
		} else {
			tcp_send_ack(c);
		}
		return;
	}
	if (SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	tcp_pmtu_apply(c);
	room = c->mss - sack_space(c); /* SACK blocks take from the payload */
	idle_restart(c);
	if ((c->flags & TF_RECOVERY) && c->sb_ref != 0) {
		tcp_sb_output(c); /* PRR decides, lost segments first (RFC 6675 NextSeg) */
	} else {
		for (;;) {
			uint32_t seg_room = room, not_out;

			not_out = tcp_sb_skip(c, &seg_room); /* after an RTO: the holes only */
			len = next_seg_len(c, seg_room, not_out, &fin);
			if ((len == 0 && !fin) || !tcp_sb_room(c))
				break;
			if (send_next(c, len, fin) < 0 || fin)
				break;
			/* the queue all sent, no FIN to follow: the next turn would find nothing */
			if (c->snd_nxt - c->snd_una >= c->sndq.bytes && !(c->flags & TF_FIN_QUEUED))
				break;
		}
	}
	persist_check(c);
	if (c->flags & TF_ACKNOW)
		tcp_send_ack(c);
}

void
tcp_flush(struct dp_lcore *lc)
{
	struct tcp_lcore *tl = lc->tcp;
	struct tcp_conn *c;

	if (tl == NULL)
		return;
	tcp_update_clock(tl);
	while ((c = tl->flush_head) != NULL) {
		tl->flush_head = tcb_at(tl, c->flush_next);
		c->flush_next = 0;
		c->flags &= ~TF_ON_FLUSH;
		if (c->state != TCP_ST_CLOSED)
			tcp_output(c);
	}
	tcp_reap(tl);
}

/* The MSS a path MTU leaves for c's segments (its options deducted). */
static uint32_t
pmtu_mss(const struct tcp_conn *c, uint32_t mtu)
{
	return mtu - 40u - ((c->flags & TF_TS_OK) ? TCP_TS_OPT_LEN : 0);
}

/*
 * c's MSS no larger than what its destination's path MTU allows (pmtu.h): at the handshake
 * and before each send, so one message lowers every flow to the destination (as Linux's
 * tcp_current_mss() does from the route). What is in flight stays: a segment of it that was
 * too large brings its own message, or times out. When the entry is gone (expired: RFC 1191
 * 7 tries a larger MTU after 10 minutes) or larger, the MSS goes back up, as far as mss_max.
 */
void
tcp_pmtu_apply(struct tcp_conn *c)
{
	struct dp_lcore *lc = tcb_tl(c)->lc;
	uint16_t mtu = pmtu_get(lc, c->key.rip);
	uint32_t mss = c->mss_max;

	if (likely(mtu == 0) && likely(c->mss >= c->mss_max))
		return;
	if (mtu != 0)
		mss = RTE_MIN(mss, pmtu_mss(c, mtu));
	if (mss < c->mss) {
		c->mss = (uint16_t)mss;
		DP_INC(lc, pmtu, APPLIED);
	} else if (mss > c->mss) {
		c->mss = (uint16_t)mss;
		DP_INC(lc, pmtu, RAISED);
	}
}

bool
tcp_pmtu_update(struct dp_lcore *lc, uint32_t lip_be, uint32_t rip_be, uint16_t lport_be,
    uint16_t rport_be, uint32_t seq, uint16_t mtu)
{
	struct tcp_flow_key key = {
		.rip = rip_be, .lip = lip_be, .rport = rport_be, .lport = lport_be
	};
	struct tcp_lcore *tl = lc->tcp;
	struct tcp_conn *c;
	int learnt = -ENOENT;
	uint32_t mss;

	if (tl == NULL)
		return false;
	if (mtu < PMTU_MIN_MTU) { /* RFC 791: 68 passes every link (0: a pre-RFC 1191 router) */
		DP_INC(lc, tcp, PMTU_BAD_MTU);
		return true;
	}
	if ((c = tcp_conn_lookup(tl, &key)) == NULL)
		return false; /* not here: the caller counts it, or passes it to the other lcores */
	if (c->state == TCP_ST_SYN_SENT || c->state == TCP_ST_SYN_RECEIVED ||
	    !SEQ_IN_RANGE(seq, c->snd_una, c->snd_max)) {
		/* RFC 5927 4.1: not a segment of ours in flight, so nothing learnt for the
		 * destination either (a handshake's segments are small: nothing to resend) */
		DP_INC(lc, tcp, PMTU_IGNORED);
		return true;
	}
	if (mtu < PMTU_FLOOR_MTU) { /* as Linux's min_pmtu: no lower, whoever says so */
		DP_INC(lc, tcp, PMTU_CLAMPED);
		mtu = PMTU_FLOOR_MTU;
	}
	if (mtu < (uint32_t)tl->cfg.mss + 40u)
		learnt = pmtu_learn(lc, rip_be, mtu); /* other flows to rip_be: tcp_pmtu_apply() */
	mss = pmtu_mss(c, mtu);
	if (mss >= c->mss) {
		DP_INC(lc, tcp, PMTU_IGNORED);
		return true;
	}
	/* one the table could not keep (full, or none) is the flow's for its life: no entry
	 * would expire to tell it when to try larger again */
	if (learnt < 0)
		c->mss_max = (uint16_t)mss;
	DP_INC(lc, tcp, PMTU_REDUCED);
	c->mss = (uint16_t)mss;
	c->flags &= ~TF_RTT_TIMING;
	c->snd_nxt = c->snd_una; /* what is in flight was too big: again, in smaller segments */
	tcp_sb_reset(c);
	tcp_flush_add(c);
	return true;
}
