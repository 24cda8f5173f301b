/*
 * tcp_api.c: what the application (dataplane/svc: echo.c, mqtt_tcp.c) calls on a connection:
 * take received data, queue data to send, shut down, close, abort. Nothing is sent from
 * here: the flow is put on the flush list and tcp_flush() sends at the end of the burst,
 * so all replies an rx burst produces leave together, with the ACK piggybacked.
 */
#include <errno.h>

#include <rte_mbuf.h>

#include "dp.h"
#include "tcp_seq.h"
#include "tcp_types.h"

static bool
may_send(const struct tcp_conn *c)
{
	return (c->state == TCP_ST_ESTABLISHED || c->state == TCP_ST_CLOSE_WAIT) &&
	    !(c->flags & TF_FIN_QUEUED);
}

uint32_t
tcp_recv_avail(const struct tcp_conn *c)
{
	return c->rcvq.bytes;
}

bool
tcp_conn_eof(const struct tcp_conn *c)
{
	return (c->flags & TF_RCVD_FIN) && c->rcvq.bytes == 0;
}

/*
 * Taking data opens the window: announce it when it grew by enough to matter (receiver silly
 * window avoidance, RFC 1122 4.2.3.3). Out of a zero window, by that section's own threshold,
 * min(RCV.BUFF/2, MSS), as Linux announces any window its SWS rule lets it offer there: with
 * the mbuf pool low a flow that read its data may offer one MSS (tcp_rcv_window), and a peer
 * at a zero window that is not told waits for its zero-window probe, seconds with backoff.
 */
static void
window_update(struct tcp_conn *c)
{
	uint32_t offered = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	uint32_t now = tcp_rcv_window(c);
	uint32_t half = tcb_tl(c)->cfg.rcvbuf_bytes / 2;
	uint32_t need =
	    offered == 0 ? RTE_MIN((uint32_t)c->mss, half) : offered + RTE_MIN(2u * c->mss, half);

	if (now >= need) {
		c->flags |= TF_ACKNOW;
		tcp_flush_add(c);
	}
}

struct rte_mbuf *
tcp_recv(struct tcp_conn *c, uint32_t max_bytes)
{
	struct rte_mbuf *m;

	if (c->state == TCP_ST_CLOSED)
		return NULL;
	m = tcp_mq_take(tcb_tl(c), &c->rcvq, TCP_Q_RCV, max_bytes);
	if (m != NULL && !(c->flags & TF_RCVD_FIN))
		window_update(c);
	return m;
}

uint32_t
tcp_send_space(const struct tcp_conn *c)
{
	uint32_t buf = tcb_tl(c)->cfg.sndbuf_bytes;

	if (!may_send(c))
		return 0;
	return buf > c->sndq.bytes ? buf - c->sndq.bytes : 0;
}

int
tcp_send(struct tcp_conn *c, struct rte_mbuf *chain)
{
	if (!may_send(c))
		return -ENOTCONN;
	if (chain->pkt_len > tcp_send_space(c))
		return -ENOBUFS;
	DP_ADD(tcb_tl(c)->lc, tcp, APP_TX_BYTES, chain->pkt_len);
	tcp_mq_append(tcb_tl(c), &c->sndq, TCP_Q_SND, chain);
	tcp_flush_add(c);
	return 0;
}

int
tcp_write(struct tcp_conn *c, const void *buf, uint32_t len)
{
	uint32_t n;

	if (!may_send(c))
		return -ENOTCONN;
	n = RTE_MIN(len, tcp_send_space(c));
	if (n == 0)
		return 0;
	n = tcp_mq_write(tcb_tl(c), &c->sndq, TCP_Q_SND, buf, n);
	if (n == 0)
		return -ENOBUFS;
	DP_ADD(tcb_tl(c)->lc, tcp, APP_TX_BYTES, n);
	tcp_flush_add(c);
	return (int)n;
}

void
tcp_shutdown(struct tcp_conn *c)
{
	if (c->flags & TF_FIN_QUEUED)
		return;
	switch (c->state) {
	case TCP_ST_ESTABLISHED:
		tcp_set_state(c, TCP_ST_FIN_WAIT_1);
		break;
	case TCP_ST_CLOSE_WAIT:
		tcp_set_state(c, TCP_ST_LAST_ACK);
		break;
	default:
		return;
	}
	c->flags |= TF_FIN_QUEUED;
	tcp_flush_add(c);
}

void
tcp_close(struct tcp_conn *c)
{
	if (c->state == TCP_ST_CLOSED || (c->flags & TF_APP_CLOSED))
		return;
	if (c->state == TCP_ST_SYN_SENT) { /* nothing to say to the peer yet (RFC 793) */
		tcp_conn_close(c, TCP_CLOSE_ABORT);
		return;
	}
	if (c->rcvq.bytes > 0 || c->ooo != NULL) {
		/* unread data would be lost silently: reset instead (RFC 2525 2.17, as Linux) */
		DP_INC(tcb_tl(c)->lc, tcp, CLOSE_UNREAD);
		tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_ABORT);
		return;
	}
	c->flags |= TF_APP_CLOSED;
	tcp_shutdown(c);
	if (c->state == TCP_ST_FIN_WAIT_2) /* shut down earlier, FIN acked: orphan timeout */
		tcp_timer_set(c, TT_KEEP, tcb_tl(c)->cfg.time_wait_ms);
}

void
tcp_abort(struct tcp_conn *c)
{
	if (c->state == TCP_ST_CLOSED)
		return;
	DP_INC(tcb_tl(c)->lc, tcp, ABORT);
	if (c->state != TCP_ST_TIME_WAIT && c->state != TCP_ST_SYN_SENT)
		tcp_send_rst(c);
	tcp_conn_close(c, TCP_CLOSE_ABORT);
}

void
tcp_conn_peer(const struct tcp_conn *c, uint32_t *ip_be, uint16_t *port_be)
{
	*ip_be = c->key.rip;
	*port_be = c->key.rport;
}
