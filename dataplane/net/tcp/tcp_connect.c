/*
 * tcp_connect.c: active open. tcp_connect() picks an ephemeral port for the 4-tuple, sends the
 * SYN (MSS, window scale, timestamps, SACK permitted) and arms the retransmission timer (SYN
 * retries in tcp_timer.c); tcp_synsent_input() is RFC 793 "SEGMENT ARRIVES" in SYN_SENT: an
 * acceptable SYN-ACK establishes the connection and tells the app (connected()), an
 * acceptable RST refuses it (closed(TCP_CLOSE_RESET)). Once ESTABLISHED an actively opened
 * flow is like any other. Used by the load generator's memif transport, later by the uplink.
 */
#include <errno.h>

#include <rte_byteorder.h>
#include <rte_mbuf.h>
#include <rte_random.h>
#include <rte_tcp.h>

#include "dp.h"
#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_types.h"

#define EPH_LO 1024u
#define EPH_HI 65535u
#define EPH_N  (EPH_HI - EPH_LO + 1)

/* The next ephemeral port whose 4-tuple is free (TIME_WAIT flows keep theirs). 0: none. */
static uint16_t
eph_port(struct tcp_lcore *tl, struct tcp_flow_key *key)
{
	for (uint32_t n = 0; n < EPH_N; n++) {
		uint16_t port = tl->eph_next;

		tl->eph_next = port >= EPH_HI ? EPH_LO : (uint16_t)(port + 1);
		key->lport = rte_cpu_to_be_16(port);
		if (tcp_listener_find(tl, key->lport) == NULL && tcp_conn_lookup(tl, key) == NULL)
			return port;
	}
	return 0;
}

int
tcp_connect(struct dp_lcore *lc, uint32_t src_be, uint32_t dst_be, uint16_t dport,
    const struct tcp_app_ops *ops, void *conn_ctx, struct tcp_conn **out)
{
	struct tcp_lcore *tl = lc->tcp;
	struct tcp_flow_key key;
	struct tcp_conn *c;
	int oi;

	if (src_be == 0)
		src_be = lc->ip_be;
	if (tl == NULL || ops == NULL || ops->closed == NULL || dport == 0 || dst_be == 0 ||
	    out == NULL || !dp_is_our_ip(lc, src_be))
		return -EINVAL;
	if (tl->free_list == NULL) {
		DP_INC(lc, tcp, FLOW_TABLE_FULL);
		return -ENOSPC;
	}
	if ((oi = tcp_ops_index(tl, ops)) < 0)
		return oi;         /* more distinct callback sets than TCP_MAX_OPS */
	if (tl->eph_next < EPH_LO) /* first use: start anywhere in the range */
		tl->eph_next = (uint16_t)(EPH_LO + rte_rand_max(EPH_N));
	key.rip = dst_be;
	key.lip = src_be;
	key.rport = rte_cpu_to_be_16(dport);
	if (eph_port(tl, &key) == 0) {
		DP_INC(lc, tcp, NO_EPHEMERAL_PORT);
		return -EADDRNOTAVAIL;
	}
	tcp_update_clock(tl);
	if ((c = tcp_conn_alloc(tl, &key)) == NULL)
		return -ENOSPC;
	c->snd_una = (uint32_t)rte_rand(); /* the ISS */
	c->snd_nxt = c->snd_max = c->snd_una + 1;
	/* until the SYN-ACK says */
	c->mss = c->mss_max = RTE_MIN((uint16_t)TCP_DEFAULT_MSS, tl->cfg.mss);
	c->rto_ms = tl->cfg.rto_initial_ms;
	c->rtt_start_ms = tl->now_ms;
	c->ops_i = (uint8_t)oi;
	c->app_ctx = conn_ctx;
	c->flags |= TF_APP; /* closed() from here on, whatever happens */
	tcp_set_state(c, TCP_ST_SYN_SENT);
	DP_INC(lc, tcp, CONNECT);
	tcp_send_syn(c);
	tcp_timer_set(c, TT_REXMT, c->rto_ms);
	*out = c;
	return 0;
}

/* The peer's SYN-ACK: options, sequence spaces, ESTABLISHED. */
static void
synack_input(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct tcp_lcore *tl = tcb_tl(c);
	const struct tcp_config *cfg = &tl->cfg;

	c->rcv_nxt = s->seq + 1;
	tcp_syn_opts_take(c, s, true); /* our SYN always offers window scaling */
	/* the window we offered in the SYN (never scaled) */
	c->rcv_adv = c->rcv_nxt + RTE_MIN(cfg->rcvbuf_bytes, 65535u);
	tcp_timer_stop(c, TT_REXMT);
	if (c->rxtshift == 0) /* Karn: no sample from a retransmitted SYN */
		tcp_rtt_sample(c, tl->now_ms - c->rtt_start_ms);
	else
		tcp_rto_after_syn_timeout(c);
	c->rxtshift = 0;
	c->snd_una = s->ack;
	c->snd_wnd = s->win; /* a SYN's window is never scaled */
	c->max_sndwnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	tcp_set_state(c, TCP_ST_ESTABLISHED);
	tcp_rec_init(c);
	tcp_keep_reset(c);
	c->flags |= TF_ACKNOW; /* the handshake's third segment, at the next flush */
	tcp_flush_add(c);
	DP_INC(tl->lc, tcp, CONN_CONNECTED);
}

/* RFC 793 "SEGMENT ARRIVES", state SYN-SENT. */
void
tcp_synsent_input(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	struct tcp_lcore *tl = tcb_tl(c);
	uint8_t f = s->flags;

	rte_pktmbuf_free(m); /* data on a SYN-ACK is not taken: the peer sends it again */
	if ((f & RTE_TCP_ACK_FLAG) && (SEQ_LEQ(s->ack, c->snd_una) || SEQ_GT(s->ack, c->snd_max))) {
		DP_INC(tl->lc, tcp, BAD_HANDSHAKE_ACK);
		tcp_send_rst_reply(tl, s); /* an old duplicate's; nothing for a RST */
		return;
	}
	if (f & RTE_TCP_RST_FLAG) {
		if (f & RTE_TCP_ACK_FLAG) {
			DP_INC(tl->lc, tcp, CONN_REFUSED);
			tcp_conn_close(c, TCP_CLOSE_RESET);
		} else {
			DP_INC(tl->lc, tcp, RST_BAD_SEQ); /* unacceptable without the ACK */
		}
		return;
	}
	if (!(f & RTE_TCP_SYN_FLAG)) {
		DP_INC(tl->lc, tcp, NO_ACK); /* an ACK alone before any SYN: dropped */
		return;
	}
	if (!(f & RTE_TCP_ACK_FLAG)) {
		DP_INC(tl->lc, tcp, SIMULTANEOUS_OPEN);
		return;
	}
	synack_input(c, s);
	if (tcb_ops(c)->connected != NULL)
		tcb_ops(c)->connected(c, c->app_ctx);
}
