/*
 * tcp_input.c: a received segment's way through the stack. tcp_input() validates it (length,
 * data offset, checksum by offload flag or in software, flag combinations, options), finds
 * its flow in the per-lcore table or hands it to the listener (SYN, SYN cookie ACK, RFC 793
 * reset for the rest); tcp_conn_input() runs the state machine in RFC 793 order with the
 * RFC 5961 (blind RST/SYN/ACK) and RFC 7323 (PAWS, timestamps) checks, queues the payload
 * and tells the app. Replies are not sent here (the flow is marked and tcp_flush() sends),
 * but for the duplicate ACK each out-of-order segment is owed.
 */
#include <string.h>

#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_random.h>
#include <rte_tcp.h>

#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define TCP_HDR_MIN 20
#define TCP_HDR_MAX 60

enum {
	OPT_EOL = 0,
	OPT_NOP = 1,
	OPT_MSS = 2,
	OPT_WS = 3,
	OPT_SACK_OK = 4,
	OPT_SACK = 5,
	OPT_TS = 8
};

static void
ack_now(struct tcp_conn *c)
{
	c->flags |= TF_ACKNOW;
	tcp_flush_add(c);
}

static bool
alive(const struct tcp_conn *c)
{
	return c->state != TCP_ST_CLOSED;
}

/* RST and close a flow the app never held (no closed() callback). */
static void
abort_unaccepted(struct tcp_conn *c)
{
	tcp_send_rst(c);
	tcp_conn_close(c, TCP_CLOSE_ABORT);
}

static void
sack_parse(const uint8_t *p, unsigned n, struct tcp_opts *o)
{
	for (unsigned b = 0; b < n && o->nsack < RTE_DIM(o->sack); b++, p += 8) {
		uint32_t l, r;

		memcpy(&l, p, 4);
		memcpy(&r, p + 4, 4);
		o->sack[o->nsack][0] = rte_be_to_cpu_32(l);
		o->sack[o->nsack][1] = rte_be_to_cpu_32(r);
		o->nsack++;
	}
}

/* Options of a header; -1 on a malformed list (bad length, running past the header). */
static int
opts_parse(const uint8_t *p, unsigned len, struct tcp_opts *o)
{
	unsigned i = 0;

	memset(o, 0, sizeof(*o));
	while (i < len) {
		uint8_t kind = p[i], olen;

		if (kind == OPT_EOL)
			break;
		if (kind == OPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= len || (olen = p[i + 1]) < 2 || i + olen > len)
			return -1;
		switch (kind) {
		case OPT_MSS:
			if (olen != 4)
				return -1;
			o->has_mss = true;
			o->mss = (uint16_t)(p[i + 2] << 8 | p[i + 3]);
			break;
		case OPT_WS:
			if (olen != 3)
				return -1;
			o->has_ws = true;
			o->wscale = RTE_MIN(p[i + 2], (uint8_t)TCP_MAX_WSCALE);
			break;
		case OPT_TS:
			if (olen != 10)
				return -1;
			o->has_ts = true;
			memcpy(&o->tsval, p + i + 2, 4);
			memcpy(&o->tsecr, p + i + 6, 4);
			o->tsval = rte_be_to_cpu_32(o->tsval);
			o->tsecr = rte_be_to_cpu_32(o->tsecr);
			break;
		case OPT_SACK_OK:
			if (olen != 2)
				return -1;
			o->sack_ok = true;
			break;
		case OPT_SACK:
			if (olen < 10 || (olen - 2) % 8 != 0)
				return -1;
			sack_parse(p + i + 2, (olen - 2u) / 8, o);
			break;
		default:
			break; /* others: skipped */
		}
		i += olen;
	}
	return 0;
}

/* Invalid combinations: no SYN/RST/ACK at all (null, FIN or PSH/URG alone, "xmas"),
 * SYN with FIN or RST. */
static bool
flags_valid(uint8_t f)
{
	if (!(f & (RTE_TCP_SYN_FLAG | RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG)))
		return false;
	if ((f & RTE_TCP_SYN_FLAG) && (f & (RTE_TCP_FIN_FLAG | RTE_TCP_RST_FLAG)))
		return false;
	return true;
}

static bool
cksum_ok(const struct rte_mbuf *m, const struct rte_ipv4_hdr *ip)
{
	switch (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) {
	case RTE_MBUF_F_RX_L4_CKSUM_GOOD:
	case RTE_MBUF_F_RX_L4_CKSUM_NONE: /* not filled in, data verified (virtio) */
		return true;
	case RTE_MBUF_F_RX_L4_CKSUM_BAD:
		return false;
	default:
		return rte_ipv4_udptcp_cksum_mbuf_verify(m, ip, 0) == 0;
	}
}

/* Validate and parse; *hlen gets the header length. 0 or -1 (counted). */
static int
seg_parse(struct dp_lcore *lc, const struct rte_mbuf *m, struct tcp_seg *s, uint32_t *hlen)
{
	const struct rte_ipv4_hdr *ip =
	    rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, -(int)m->l3_len);
	uint8_t buf[TCP_HDR_MAX];
	const struct rte_tcp_hdr *th;
	uint32_t doff;

	if (m->pkt_len < TCP_HDR_MIN || (th = rte_pktmbuf_read(m, 0, TCP_HDR_MIN, buf)) == NULL)
		goto bad_hdr;
	doff = (uint32_t)(th->data_off >> 4) * 4;
	if (doff < TCP_HDR_MIN || doff > m->pkt_len || th->src_port == 0 || th->dst_port == 0)
		goto bad_hdr;
	if ((th = rte_pktmbuf_read(m, 0, doff, buf)) == NULL)
		goto bad_hdr;
	if (!cksum_ok(m, ip)) {
		DP_INC(lc, tcp, BAD_CKSUM);
		return -1;
	}
	s->flags = th->tcp_flags;
	if (!flags_valid(s->flags)) {
		DP_INC(lc, tcp, BAD_FLAGS);
		return -1;
	}
	if (opts_parse((const uint8_t *)(th + 1), doff - TCP_HDR_MIN, &s->opt) < 0) {
		DP_INC(lc, tcp, BAD_OPTIONS);
		return -1;
	}
	s->key.rip = ip->src_addr;
	s->key.lip = ip->dst_addr;
	s->key.rport = th->src_port;
	s->key.lport = th->dst_port;
	s->seq = rte_be_to_cpu_32(th->sent_seq);
	s->ack = rte_be_to_cpu_32(th->recv_ack);
	s->win = rte_be_to_cpu_16(th->rx_win);
	s->len = m->pkt_len - doff;
	s->dup = false;
	*hlen = doff;
	return 0;
bad_hdr:
	DP_INC(lc, tcp, BAD_HDR);
	return -1;
}

/*
 * RFC 5961 challenge ACKs, bounded twice (as Linux since 4.7, against the off-path side
 * channel of CVE-2016-5696: a fixed, shared budget lets a blind attacker count the challenge
 * ACKs another flow used up): per flow, one per TCP_CHACK_FLOW_MS; per lcore, a budget drawn
 * at random each second between half and one and a half times challenge_ack_per_s.
 */
#define TCP_CHACK_FLOW_MS 500

bool
tcp_challenge_ack_ok(struct tcp_conn *c)
{
	struct tcp_lcore *tl = tcb_tl(c);
	uint32_t sec = tl->now_ms / 1000, per_s = tl->cfg.challenge_ack_per_s;

	if (tl->now_ms - c->chack_ms < TCP_CHACK_FLOW_MS) {
		DP_INC(tl->lc, tcp, CHALLENGE_ACK_FLOW_LIMITED);
		return false;
	}
	if (sec != tl->chack_sec || tl->chack_budget == 0) {
		tl->chack_sec = sec;
		tl->chack_count = 0;
		tl->chack_budget = per_s / 2 + (uint32_t)rte_rand_max(per_s) + 1;
	}
	if (tl->chack_count >= tl->chack_budget) {
		DP_INC(tl->lc, tcp, CHALLENGE_ACK_LIMITED);
		return false;
	}
	tl->chack_count++;
	c->chack_ms = tl->now_ms;
	return true;
}

static void
challenge_ack(struct tcp_conn *c)
{
	if (!tcp_challenge_ack_ok(c))
		return;
	DP_INC(tcb_tl(c)->lc, tcp, CHALLENGE_ACK);
	ack_now(c);
}

/* RFC 5961 section 3: only an exact RST resets; one elsewhere in the window is challenged. */
static void
rst_input(struct tcp_conn *c, const struct tcp_seg *s)
{
	uint32_t wnd = RTE_MAX(tcp_rcv_window(c), 1u);

	if (s->seq == c->rcv_nxt) {
		DP_INC(tcb_tl(c)->lc, tcp, RST_RCVD);
		tcp_conn_close(c, TCP_CLOSE_RESET);
	} else if (SEQ_IN_RANGE(s->seq, c->rcv_nxt, c->rcv_nxt + wnd)) {
		challenge_ack(c);
	} else {
		DP_INC(tcb_tl(c)->lc, tcp, RST_BAD_SEQ);
	}
}

/* RFC 5961 section 4: a SYN on a synchronized flow is answered by a challenge ACK. */
static void
syn_input(struct tcp_conn *c, const struct tcp_seg *s)
{
	if (c->state == TCP_ST_SYN_RECEIVED && s->seq + 1 == c->rcv_nxt &&
	    !(s->flags & RTE_TCP_ACK_FLAG)) {
		DP_INC(tcb_tl(c)->lc, tcp, SYN_RETRANSMITTED); /* our SYN-ACK was lost */
		tcp_send_synack(c);
		return;
	}
	DP_INC(tcb_tl(c)->lc, tcp, SYN_ON_SYNC);
	challenge_ack(c);
}

/* RFC 7323 section 5: PAWS. A segment older than TS.Recent is a duplicate from long ago. */
static bool
paws_reject(const struct tcp_conn *c, const struct tcp_seg *s)
{
	return (c->flags & TF_TS_OK) && s->opt.has_ts && !(s->flags & RTE_TCP_RST_FLAG) &&
	    SEQ_LT(s->opt.tsval, c->ts_recent);
}

/*
 * Sequence check (RFC 793 "first check sequence number") with trimming to the window.
 * Returns -1 if the segment is not acceptable (an ACK is owed and queued); *mp may change.
 */
static int
seq_check(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf **mp)
{
	uint32_t fin = !!(s->flags & RTE_TCP_FIN_FLAG), wnd;
	int32_t todrop = (int32_t)(c->rcv_nxt - s->seq), over;

	if (todrop > 0) {
		if ((uint32_t)todrop >= s->len + fin) {
			/* all of it already received: the text goes, but the ACK field is still
			 * news (RFC 9293 3.10.7.4, as BSD): after an RTO on both sides each one's
			 * retransmissions carry the only ACK of the other's data */
			DP_INC(tcb_tl(c)->lc, tcp, DUP_SEGS);
			tcp_dsack_note(c, s->seq, s->seq + s->len); /* RFC 2883: it came twice */
			if (c->state == TCP_ST_TIME_WAIT && fin)    /* our last ACK was lost */
				tcp_timer_set(c, TT_KEEP, tcb_tl(c)->cfg.time_wait_ms);
			ack_now(c);
			rte_pktmbuf_free(*mp);
			*mp = NULL;
			s->len = 0;
			s->flags &= (uint8_t)~RTE_TCP_FIN_FLAG;
			s->dup = true;
			return 0;
		}
		if ((uint32_t)todrop >= s->len) { /* only the FIN is new */
			rte_pktmbuf_free(*mp);
			*mp = NULL;
			todrop = (int32_t)s->len;
		} else {
			*mp = tcp_pkt_adj(*mp, (uint32_t)todrop);
		}
		tcp_dsack_note(c, s->seq, c->rcv_nxt); /* the part that came twice */
		DP_INC(tcb_tl(c)->lc, tcp, DUP_SEGS);
		s->seq += (uint32_t)todrop;
		s->len -= (uint32_t)todrop;
	}
	wnd = tcp_rcv_window(c);
	over = (int32_t)(s->seq + s->len - (c->rcv_nxt + wnd));
	if (over > 0) {
		if ((uint32_t)over < s->len) { /* the tail is beyond the window: cut it */
			tcp_pkt_keep(*mp, s->len - (uint32_t)over);
			s->len -= (uint32_t)over;
			s->flags &= (uint8_t)~RTE_TCP_FIN_FLAG;
			ack_now(c); /* the sender overran the window: show it the edge now */
		} else if (wnd == 0 && s->seq == c->rcv_nxt) {
			/* a probe into our zero window: the data goes, the ACK is still news */
			DP_INC(tcb_tl(c)->lc, tcp, ZERO_WINDOW_DROP);
			rte_pktmbuf_free(*mp);
			*mp = NULL;
			s->len = 0;
			s->flags &= (uint8_t)~RTE_TCP_FIN_FLAG;
			ack_now(c);
		} else {
			DP_INC(tcb_tl(c)->lc, tcp, OUT_OF_WINDOW);
			ack_now(c);
			return -1;
		}
	}
	return 0;
}

/* The ACK of our SYN-ACK: the connection is established and offered to the app. */
static int
synrcvd_ack(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct tcp_lcore *tl = tcb_tl(c);
	void *ctx = NULL;

	if (!SEQ_GT(s->ack, c->snd_una) || SEQ_GT(s->ack, c->snd_max)) {
		DP_INC(tl->lc, tcp, BAD_HANDSHAKE_ACK);
		tcp_send_rst_reply(tl, s);
		return -1;
	}
	tcp_timer_stop(c, TT_REXMT);
	c->rto_ms = tl->cfg.rto_initial_ms;
	if ((c->flags & TF_TS_OK) && s->opt.has_ts && s->opt.tsecr != 0)
		tcp_rtt_sample(c, tl->now_ms + tl->ts_offset - s->opt.tsecr);
	else if (c->rxtshift > 0)
		tcp_rto_after_syn_timeout(c);
	c->rxtshift = 0;
	c->snd_una = s->ack;
	c->snd_wnd = (uint32_t)s->win << c->snd_wscale;
	c->max_sndwnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	tcp_set_state(c, TCP_ST_ESTABLISHED);
	tcp_rec_init(c);
	if (tcb_ops(c)->accept(c, c->app_ctx, &ctx) < 0) {
		DP_INC(tl->lc, tcp, ACCEPT_REFUSED);
		abort_unaccepted(c);
		return -1;
	}
	if (!alive(c))
		return -1; /* accept() aborted it itself */
	c->app_ctx = ctx;
	c->flags |= TF_APP;
	DP_INC(tl->lc, tcp, CONN_ACCEPTED);
	tcp_keep_reset(c);
	return 0;
}

static void
enter_time_wait(struct tcp_conn *c)
{
	tcp_set_state(c, TCP_ST_TIME_WAIT);
	tcp_timer_stop(c, TT_REXMT);
	tcp_timer_set(c, TT_KEEP, tcb_tl(c)->cfg.time_wait_ms);
}

/* Our FIN is acknowledged. Returns -1 if the connection is gone. */
static int
fin_acked(struct tcp_conn *c)
{
	switch (c->state) {
	case TCP_ST_FIN_WAIT_1:
		tcp_set_state(c, TCP_ST_FIN_WAIT_2);
		if (c->flags & TF_APP_CLOSED) /* an orphan: do not wait forever for the peer */
			tcp_timer_set(c, TT_KEEP, tcb_tl(c)->cfg.time_wait_ms);
		return 0;
	case TCP_ST_CLOSING:
		enter_time_wait(c);
		return 0;
	case TCP_ST_LAST_ACK:
		tcp_conn_close(c, TCP_CLOSE_NORMAL);
		return -1;
	default:
		return 0;
	}
}

static void
rtt_update(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct tcp_lcore *tl = tcb_tl(c);

	if ((c->flags & TF_TS_OK) && s->opt.has_ts && s->opt.tsecr != 0) {
		tcp_rtt_sample(c, tl->now_ms + tl->ts_offset - s->opt.tsecr);
	} else if ((c->flags & TF_RTT_TIMING) && SEQ_GT(s->ack, c->rtt_seq)) {
		c->flags &= ~TF_RTT_TIMING;
		tcp_rtt_sample(c, tl->now_ms - c->rtt_start_ms);
	}
}

/* New data (and maybe our FIN) acknowledged. Returns -1 if the connection is gone. */
static int
new_ack(struct tcp_conn *c, const struct tcp_seg *s, bool *writable)
{
	uint32_t acked = s->ack - c->snd_una, data = acked;

	rtt_update(c, s);
	if ((c->flags & TF_FIN_SENT) && SEQ_GT(s->ack, c->snd_una + c->sndq.bytes)) {
		data = c->sndq.bytes;
		c->flags |= TF_FIN_ACKED;
	}
	tcp_mq_drop_front(tcb_tl(c), &c->sndq, TCP_Q_SND, data);
	c->snd_una = s->ack;
	if (SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	c->rxtshift = 0;
	tcp_rexmt_restart(c);
	tcp_rec_ack(c, s, acked, TCP_ACK_NEW);
	*writable = data > 0;
	tcp_flush_add(c);
	if (c->flags & TF_FIN_ACKED)
		return fin_acked(c);
	return 0;
}

/* RFC 793 "fifth check the ACK field" with RFC 5961 section 5. -1: drop (or gone). */
static int
ack_input(struct tcp_conn *c, const struct tcp_seg *s, bool *writable)
{
	uint32_t win = (uint32_t)s->win << c->snd_wscale;

	if (SEQ_GT(s->ack, c->snd_max) || SEQ_LT(s->ack, c->snd_una - c->max_sndwnd)) {
		DP_INC(tcb_tl(c)->lc, tcp, BAD_ACK);
		challenge_ack(c);
		return -1;
	}
	if (SEQ_GT(s->ack, c->snd_una)) {
		if (new_ack(c, s, writable) < 0)
			return -1;
	} else if (s->ack == c->snd_una && s->len == 0 && !s->dup &&
	    !(s->flags & RTE_TCP_FIN_FLAG) && win == c->snd_wnd && c->snd_una != c->snd_max) {
		DP_INC(tcb_tl(c)->lc, tcp, DUP_ACKS);
		tcp_rec_ack(c, s, 0, TCP_ACK_DUP);
	} else {
		tcp_rec_ack(c, s, 0, TCP_ACK_OTHER);
	}
	/* window update, only from a segment newer than the last one that set it */
	if (SEQ_LT(c->snd_wl1, s->seq) || (c->snd_wl1 == s->seq && SEQ_LEQ(c->snd_wl2, s->ack))) {
		if (win > c->snd_wnd)
			tcp_flush_add(c);
		c->snd_wnd = win;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		c->max_sndwnd = RTE_MAX(c->max_sndwnd, win);
		if (win > 0 && (c->flags & TF_PERSIST)) {
			tcp_timer_stop(c, TT_REXMT);
			c->rxtshift = 0;
		}
	}
	return 0;
}

/* In-order payload to the receive queue, out-of-order to the reassembly list. */
static bool
data_input(struct tcp_conn *c, const struct tcp_seg *s, struct rte_mbuf *m)
{
	struct dp_lcore *lc = tcb_tl(c)->lc;
	uint32_t before = c->rcv_nxt;

	if (s->seq != c->rcv_nxt) {
		tcp_ooo_insert(c, m, s->seq);
		/* a duplicate ACK for the hole, now: one per out-of-order segment (RFC 5681 4.2),
		 * not one per burst, or a sender without SACK never sees three and waits for
		 * its RTO */
		tcp_send_ack(c);
		return false;
	}
	c->rcv_nxt += s->len;
	tcp_mq_append(tcb_tl(c), &c->rcvq, TCP_Q_RCV, m);
	if (c->ooo != NULL)
		tcp_ooo_drain(c);
	DP_ADD(lc, tcp, RX_BYTES, c->rcv_nxt - before);
	if (c->rcv_nxt - before != s->len || c->ooo != NULL) {
		ack_now(c); /* a hole filled: tell the sender at once (RFC 5681 4.2) */
	} else if (++c->segs_unacked >= 2) {
		ack_now(c); /* every second data segment, small ones too (docs/tcp.md) */
	} else if (!(c->timer_on & TT_DELACK)) {
		tcp_timer_set(c, TT_DELACK, tcb_tl(c)->cfg.delack_ms);
	}
	return true;
}

static bool
fin_input(struct tcp_conn *c)
{
	c->rcv_nxt++;
	c->flags |= TF_RCVD_FIN;
	ack_now(c);
	switch (c->state) {
	case TCP_ST_ESTABLISHED:
		tcp_set_state(c, TCP_ST_CLOSE_WAIT);
		return true;
	case TCP_ST_FIN_WAIT_1:
		tcp_set_state(c, TCP_ST_CLOSING);
		return true;
	case TCP_ST_FIN_WAIT_2:
		enter_time_wait(c);
		return true;
	default:
		return false;
	}
}

static bool
receiving(const struct tcp_conn *c)
{
	return c->state == TCP_ST_ESTABLISHED || c->state == TCP_ST_FIN_WAIT_1 ||
	    c->state == TCP_ST_FIN_WAIT_2;
}

/* Payload and FIN of an acceptable segment; true if the app has something new to read. */
static bool
text_input(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	bool readable = false;

	if (!receiving(c)) { /* past the peer's FIN: RFC 793 ignores the text */
		rte_pktmbuf_free(m);
		return false;
	}
	if (s->len > 0 && (c->flags & TF_APP_CLOSED)) {
		/* nobody will read it: tell the peer rather than pretend (as Linux does) */
		rte_pktmbuf_free(m);
		DP_INC(tcb_tl(c)->lc, tcp, DATA_AFTER_CLOSE);
		tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_ABORT);
		return false;
	}
	if (s->len > 0)
		readable = data_input(c, s, m);
	else
		rte_pktmbuf_free(m);
	if ((s->flags & RTE_TCP_FIN_FLAG) && s->seq + s->len == c->rcv_nxt)
		readable |= fin_input(c);
	return readable;
}

/* The app's callbacks, after the segment is fully processed. */
static void
notify(struct tcp_conn *c, bool readable, bool writable)
{
	if ((c->flags & (TF_APP | TF_APP_CLOSED)) == TF_APP) {
		if (readable && tcb_ops(c)->readable != NULL)
			tcb_ops(c)->readable(c, c->app_ctx);
		if (writable && alive(c) && (c->flags & TF_APP) && tcb_ops(c)->writable != NULL &&
		    !(c->flags & TF_APP_CLOSED))
			tcb_ops(c)->writable(c, c->app_ctx);
	}
	if (alive(c) && c->state == TCP_ST_TIME_WAIT && (c->flags & TF_APP)) {
		tcp_mq_free(tcb_tl(c), &c->sndq, TCP_Q_SND);
		tcp_app_closed(c, TCP_CLOSE_NORMAL);
		tcp_mq_free(tcb_tl(c), &c->rcvq, TCP_Q_RCV);
		tcp_ooo_free(c);
	}
}

/* The state machine for a segment of a known flow (RFC 793 "SEGMENT ARRIVES", other states). */
void
tcp_conn_input(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	bool readable = false, writable = false;

	if (c->state == TCP_ST_SYN_SENT) {
		tcp_synsent_input(c, s, m);
		return;
	}
	if (paws_reject(c, s)) {
		DP_INC(tcb_tl(c)->lc, tcp, PAWS);
		ack_now(c);
		goto drop;
	}
	if (s->flags & RTE_TCP_RST_FLAG) {
		rst_input(c, s);
		goto drop;
	}
	if (s->flags & RTE_TCP_SYN_FLAG) {
		syn_input(c, s);
		goto drop;
	}
	if (seq_check(c, s, &m) < 0)
		goto drop;
	if (!(s->flags & RTE_TCP_ACK_FLAG)) {
		DP_INC(tcb_tl(c)->lc, tcp, NO_ACK);
		goto drop;
	}
	/* RFC 7323 4.3 and RFC 5961 5.2: TS.Recent only from a segment whose ACK is acceptable
	 * (one forged segment with a huge TSval would fail every later one on PAWS) */
	if (c->state == TCP_ST_SYN_RECEIVED && synrcvd_ack(c, s) < 0)
		goto drop;
	if (ack_input(c, s, &writable) < 0 || !alive(c))
		goto drop;
	tcp_keep_reset(c);
	if ((c->flags & TF_TS_OK) && s->opt.has_ts && SEQ_LEQ(s->seq, c->rcv_nxt) &&
	    SEQ_GEQ(s->opt.tsval, c->ts_recent))
		c->ts_recent = s->opt.tsval;
	readable = text_input(c, s, m);
	m = NULL;
	if (alive(c))
		notify(c, readable, writable);
	return;
drop:
	rte_pktmbuf_free(m);
}

/*
 * The options of the peer's SYN (passive open) or SYN-ACK (active open): window scaling when
 * it sent the option and we offer (or offered) it, timestamps when both want them, SACK, and
 * our MSS: the peer's (or RFC 879's 536) capped by ours, less the timestamp option.
 */
void
tcp_syn_opts_take(struct tcp_conn *c, const struct tcp_seg *s, bool we_scale)
{
	const struct tcp_config *cfg = &tcb_tl(c)->cfg;
	uint16_t mss;

	if (s->opt.has_ws && we_scale) {
		c->flags |= TF_WS_OK;
		c->snd_wscale = s->opt.wscale;
		c->rcv_wscale = cfg->wscale;
	}
	if (s->opt.has_ts && cfg->timestamps) {
		c->flags |= TF_TS_OK;
		c->ts_recent = s->opt.tsval;
	}
	if (s->opt.sack_ok)
		c->flags |= TF_SACK_OK;
	mss = s->opt.has_mss ? RTE_MIN(s->opt.mss, cfg->mss) : RTE_MIN(TCP_DEFAULT_MSS, cfg->mss);
	mss = RTE_MAX(mss, (uint16_t)64);
	c->mss = c->mss_max = (uint16_t)(mss - ((c->flags & TF_TS_OK) ? TCP_TS_OPT_LEN : 0));
	tcp_pmtu_apply(c); /* a path MTU learnt from an earlier flow to the peer */
}

static void
syn_new(struct tcp_lcore *tl, const struct tcp_listener *l, const struct tcp_seg *s)
{
	const struct tcp_config *cfg = &tl->cfg;
	struct tcp_conn *c;
	uint16_t mss;

	if (tl->half_open >= cfg->max_half_open || tl->free_list == NULL) {
		uint32_t iss = tcp_cookie_make(tl, s, &mss);

		DP_INC(tl->lc, tcp, COOKIE_SENT);
		tcp_send_cookie_synack(tl, s, iss, mss);
		return;
	}
	if ((c = tcp_conn_alloc(tl, &s->key)) == NULL)
		return;
	c->rcv_nxt = s->seq + 1;
	c->snd_una = (uint32_t)rte_rand(); /* the ISS */
	c->snd_nxt = c->snd_max = c->snd_una + 1;
	tcp_syn_opts_take(c, s, cfg->wscale > 0);
	c->snd_wnd = s->win; /* a SYN's window is never scaled */
	c->rto_ms = cfg->rto_initial_ms;
	c->ops_i = l->ops_i;
	c->app_ctx = l->ctx; /* the listener's, until accept() gives the connection's */
	tcp_set_state(c, TCP_ST_SYN_RECEIVED);
	DP_INC(tl->lc, tcp, SYN_RCVD);
	tcp_send_synack(c);
	tcp_timer_set(c, TT_REXMT, c->rto_ms);
}

/* An ACK for a listener with no flow: it may complete a SYN cookie handshake. */
static void
cookie_ack(
    struct tcp_lcore *tl, const struct tcp_listener *l, struct tcp_seg *s, struct rte_mbuf *m)
{
	struct tcp_conn *c;
	uint16_t mss;

	/* RFC 4987 3.6: only while cookies are in use (one sent in the last two slots, the
	 * life of a cookie); otherwise a blind attacker's 2^24 ACKs would forge a flow */
	if (!tl->cookie_used || tl->now_ms - tl->cookie_last_ms >= 2u * 64 * 1024) {
		DP_INC(tl->lc, tcp, UNKNOWN_FLOW);
		tcp_send_rst_reply(tl, s);
		rte_pktmbuf_free(m);
		return;
	}
	if (tcp_cookie_check(tl, s, &mss) < 0) {
		DP_INC(tl->lc, tcp, COOKIE_FAILED);
		tcp_send_rst_reply(tl, s);
		rte_pktmbuf_free(m);
		return;
	}
	if ((c = tcp_conn_alloc(tl, &s->key)) == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	DP_INC(tl->lc, tcp, COOKIE_VALID);
	/* rebuild the half-open state the cookie stood for, then take the usual path */
	c->rcv_nxt = s->seq;
	c->snd_una = s->ack - 1; /* the ISS */
	c->snd_nxt = c->snd_max = s->ack;
	c->mss = c->mss_max = mss;
	tcp_pmtu_apply(c);
	c->rto_ms = tl->cfg.rto_initial_ms;
	c->ops_i = l->ops_i;
	c->app_ctx = l->ctx;
	c->rcv_adv = c->rcv_nxt + RTE_MIN(tl->cfg.rcvbuf_bytes, 65535u);
	tcp_set_state(c, TCP_ST_SYN_RECEIVED);
	tcp_conn_input(c, s, m);
}

/* RFC 793 "SEGMENT ARRIVES" in state LISTEN (or CLOSED: no listener). */
static void
listen_input(struct tcp_lcore *tl, struct tcp_seg *s, struct rte_mbuf *m)
{
	const struct tcp_listener *l = tcp_listener_find(tl, s->key.lport);

	if (l == NULL) {
		DP_INC(tl->lc, tcp, NO_LISTENER);
		tcp_send_rst_reply(tl, s);
	} else if (s->flags & RTE_TCP_RST_FLAG) {
		DP_INC(tl->lc, tcp, UNKNOWN_FLOW); /* nothing to reset */
	} else if ((s->flags & RTE_TCP_ACK_FLAG) && !(s->flags & RTE_TCP_SYN_FLAG)) {
		cookie_ack(tl, l, s, m);
		return;
	} else if (s->flags & RTE_TCP_ACK_FLAG) {
		DP_INC(tl->lc, tcp, UNKNOWN_FLOW); /* SYN-ACK to a server port */
		tcp_send_rst_reply(tl, s);
	} else {
		syn_new(tl, l, s); /* data on a SYN is dropped: the peer sends it again */
	}
	rte_pktmbuf_free(m);
}

/*
 * A new SYN for a 4-tuple in TIME_WAIT may start a new connection at once if it cannot be
 * confused with the old one: a newer timestamp (RFC 6191) or, without timestamps, a sequence
 * number past the old connection's (RFC 1122 4.2.2.13). Sensors that reboot often reuse
 * their first ephemeral port.
 */
static bool
time_wait_reusable(const struct tcp_conn *c, const struct tcp_seg *s)
{
	if (c->state != TCP_ST_TIME_WAIT ||
	    (s->flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG | RTE_TCP_RST_FLAG)) !=
		RTE_TCP_SYN_FLAG)
		return false;
	if ((c->flags & TF_TS_OK) && s->opt.has_ts)
		return SEQ_GT(s->opt.tsval, c->ts_recent);
	return SEQ_GT(s->seq, c->rcv_nxt);
}

/* Validate and parse a segment; *mp becomes its payload (NULL: none). -1: dropped. */
static int
seg_take(struct dp_lcore *lc, struct rte_mbuf **mp, struct tcp_seg *s)
{
	uint32_t hlen;

	DP_INC(lc, tcp, RX_SEGS);
	if (seg_parse(lc, *mp, s, &hlen) < 0) {
		rte_pktmbuf_free(*mp);
		return -1;
	}
	if (s->len == 0) {
		rte_pktmbuf_free(*mp);
		*mp = NULL;
	} else {
		*mp = tcp_pkt_adj(*mp, hlen);
	}
	return 0;
}

/* A parsed segment to its flow c (NULL: none) or the listener. */
static void
seg_dispatch(struct tcp_lcore *tl, struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	if (c != NULL && time_wait_reusable(c, s)) {
		DP_INC(tl->lc, tcp, TIME_WAIT_REUSED);
		tcp_conn_close(c, TCP_CLOSE_NORMAL); /* the app heard closed() on entry */
		c = NULL;
	}
	if (c != NULL)
		tcp_conn_input(c, s, m);
	else
		listen_input(tl, s, m);
}

void
tcp_input(struct dp_lcore *lc, struct rte_mbuf *m)
{
	struct tcp_lcore *tl = lc->tcp;
	struct tcp_seg s;

	if (tl == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	tcp_update_clock(tl);
	if (seg_take(lc, &m, &s) < 0)
		return;
	seg_dispatch(tl, tcp_conn_lookup(tl, &s.key), &s, m);
}

/*
 * The second stage of a burst's prefetch: the head of c's send queue, the mbuf an ACK frees
 * (its header and the dynamic field the queue's cursor lives in: both cache lines). At many
 * flows it has sat unacknowledged for the time every other flow took a segment, long out of
 * cache; with the lines on their way, the ACK's free does not wait for them. Read from the
 * TCB, which the first stage prefetched (tcb_prefetch; the loads of a burst's TCBs overlap:
 * none of them waits for another). bench_tcp_seg -b 32 at 100,000 flows, the stack alone:
 * 610-710 -> 310-350 ns per echoed segment; prefetching 2, 4 or 8 segments ahead of the
 * dispatch instead of the whole burst first gave less; both prefetches for a burst of one
 * (-b 1) gained nothing measurable, and are not done there (docs/performance.md).
 */
static inline void
sndq_prefetch(const struct tcp_conn *c)
{
	const struct rte_mbuf *h;

	if (c == NULL || (h = c->sndq.head) == NULL)
		return;
	rte_prefetch0(h);
	rte_prefetch0((const char *)h + RTE_CACHE_LINE_SIZE);
}

/*
 * Up to TCP_RX_BURST segments: all parsed first, their flows looked up together
 * (rte_hash_lookup_bulk_data, which prefetches the buckets), the TCBs prefetched and then
 * their send queues' heads (sndq_prefetch), then
 * each through the state machine in arrival order. A segment may add or remove a flow (a SYN,
 * a reset, a close): a later one of the burst is then looked up again (flows_gen), so it sees
 * the table as tcp_input one at a time would. A burst of one (a lightly loaded lcore, the
 * common case on a gateway) takes a single lookup: the bulk call's set-up, the hit mask and
 * the key arrays cost about 290 instructions more per segment (docs/performance.md).
 */
static void
input_bulk(struct tcp_lcore *tl, struct rte_mbuf **pkts, unsigned n)
{
	struct tcp_seg segs[TCP_RX_BURST];
	struct rte_mbuf *pay[TCP_RX_BURST];
	const void *keys[TCP_RX_BURST];
	void *tcbs[TCP_RX_BURST];
	uint64_t hits = 0;
	unsigned k = 0;
	uint32_t gen;

	for (unsigned i = 0; i < n; i++) {
		pay[k] = pkts[i];
		if (seg_take(tl->lc, &pay[k], &segs[k]) < 0)
			continue;
		keys[k] = &segs[k].key;
		k++;
	}
	if (k == 0)
		return;
	if (k == 1) { /* one segment: the bulk call's set-up costs more than it overlaps */
		seg_dispatch(tl, tcp_conn_lookup(tl, &segs[0].key), &segs[0], pay[0]);
		return;
	}
	rte_hash_lookup_bulk_data(tl->flows, keys, k, &hits, tcbs);
	for (unsigned i = 0; i < k; i++) {
		if (!(hits & (1ull << i))) {
			tcbs[i] = NULL;
			continue;
		}
		tcb_prefetch(tcbs[i]);
	}
	for (unsigned i = 0; i < k; i++)
		sndq_prefetch(tcbs[i]);
	gen = tl->flows_gen;
	for (unsigned i = 0; i < k; i++) {
		struct tcp_conn *c = tcbs[i];

		if (tl->flows_gen != gen)
			c = tcp_conn_lookup(tl, &segs[i].key);
		seg_dispatch(tl, c, &segs[i], pay[i]);
	}
}

void
tcp_input_burst(struct dp_lcore *lc, struct rte_mbuf **pkts, unsigned n)
{
	struct tcp_lcore *tl = lc->tcp;

	if (tl == NULL) {
		rte_pktmbuf_free_bulk(pkts, n);
		return;
	}
	tcp_update_clock(tl);
	for (unsigned i = 0; i < n; i += TCP_RX_BURST)
		input_bulk(tl, pkts + i, RTE_MIN(n - i, (unsigned)TCP_RX_BURST));
}
