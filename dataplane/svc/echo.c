/*
 * echo.c: the TCP echo and discard services, so the stack is tested and benchmarked on its own.
 * They keep no per-connection state: what is waiting lives in the TCP buffers, and echo only
 * takes as much as the send buffer has room for, so a client that does not read closes its
 * own receive window (backpressure end to end, no unbounded queue here).
 */
#include "svc.h"

#include <stdint.h>

#include <rte_mbuf.h>

#include "dp.h"
#include "tcp.h"

static int
svc_accept(struct tcp_conn *c, void *listen_ctx, void **conn_ctx)
{
	(void)c;
	*conn_ctx = listen_ctx;
	return 0;
}

static void
echo_pump(struct tcp_conn *c, void *ctx)
{
	uint32_t n = RTE_MIN(tcp_recv_avail(c), tcp_send_space(c));

	(void)ctx;
	if (n > 0) {
		struct rte_mbuf *m = tcp_recv(c, n);

		if (m != NULL && tcp_send(c, m) != 0)
			rte_pktmbuf_free(m); /* cannot happen: n fits the send space */
	}
	if (tcp_conn_eof(c))
		tcp_close(c); /* FIN after what is queued: a half-close is echoed as one */
}

static void
discard_readable(struct tcp_conn *c, void *ctx)
{
	struct rte_mbuf *m;

	(void)ctx;
	while ((m = tcp_recv(c, UINT32_MAX)) != NULL)
		rte_pktmbuf_free(m);
	if (tcp_conn_eof(c))
		tcp_close(c);
}

static void
svc_closed(struct tcp_conn *c, void *ctx, enum tcp_close_reason why)
{
	(void)c, (void)ctx, (void)why;
}

static const struct tcp_app_ops echo_ops = {
	.accept = svc_accept,
	.readable = echo_pump,
	.writable = echo_pump,
	.closed = svc_closed,
};

static const struct tcp_app_ops discard_ops = {
	.accept = svc_accept,
	.readable = discard_readable,
	.closed = svc_closed,
};

static int
echo_listen(struct dp_lcore *lc, const struct dp_service_conf *sc)
{
	return tcp_listen(lc, sc->port, &echo_ops, NULL);
}

static int
discard_listen(struct dp_lcore *lc, const struct dp_service_conf *sc)
{
	return tcp_listen(lc, sc->port, &discard_ops, NULL);
}

const struct dp_service dp_service_echo = { .name = "echo", .listen = echo_listen };
const struct dp_service dp_service_discard = { .name = "discard", .listen = discard_listen };
