/*
 * dp_io.c: the few services every layer of the fast path uses on its lcore: one rx burst through
 * the layers, mbuf allocation for locally built packets and the per-burst tx buffer (dp.h). Part of dp_net_lib with the
 * protocol layers, so another DPDK program (the load generator's memif transport) runs the
 * same stack.
 */
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include "dp.h"
#include "eth.h"
#include "tcp.h"

uint16_t
dp_rx_burst(struct dp_lcore *lc)
{
	struct rte_mbuf *pkts[DP_RX_BURST];
	uint16_t n = rte_eth_rx_burst(lc->port_id, lc->queue_id, pkts, DP_RX_BURST);

	lc->now_tsc = rte_rdtsc();
	if (n == 0) {
		DP_INC(lc, port, IDLE_POLLS);
		return 0;
	}
	DP_INC(lc, port, RX_BURSTS);
	DP_ADD(lc, port, RX_PKTS, n);
	lc->tcp_rx_batch = true; /* TCP segments wait for the burst's end: one bulk lookup */
	for (uint16_t i = 0; i < n; i++) {
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		eth_input(lc, pkts[i]);
	}
	lc->tcp_rx_batch = false;
	if (lc->tcp_rx_n > 0) {
		tcp_input_burst(lc, lc->tcp_rx, lc->tcp_rx_n);
		lc->tcp_rx_n = 0;
	}
	return n;
}

struct rte_mbuf *
dp_alloc(struct dp_lcore *lc)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(lc->pool);

	if (unlikely(m == NULL))
		DP_INC(lc, port, MBUF_ALLOC_FAIL);
	return m;
}

void
dp_tx_flush(struct dp_lcore *lc)
{
	uint16_t sent = 0;
	unsigned tries = 0;
	uint64_t deadline = 0;

	while (sent < lc->tx_n) {
		uint16_t n = rte_eth_tx_burst(
		    lc->port_id, lc->queue_id, lc->tx_buf + sent, (uint16_t)(lc->tx_n - sent));

		sent += n;
		if (lc->tx_wait_us == 0) {
			if (++tries == 8)
				break; /* a gateway never stalls its loop on a full ring: drop */
		} else if (n == 0) {
			/* a load generator waits for the peer to drain the ring, up to tx_wait_us */
			uint64_t now = rte_rdtsc();

			if (deadline == 0)
				deadline = now + lc->tx_wait_us * (lc->tsc_hz / 1000000);
			else if (now > deadline)
				break;
		}
	}
	DP_ADD(lc, port, TX_PKTS, sent);
	if (unlikely(sent < lc->tx_n)) {
		DP_ADD(lc, port, TX_DROP, lc->tx_n - sent);
		rte_pktmbuf_free_bulk(lc->tx_buf + sent, (unsigned)(lc->tx_n - sent));
	}
	lc->tx_n = 0;
}

void
dp_tx_enqueue(struct dp_lcore *lc, struct rte_mbuf *m)
{
	if (unlikely(lc->tx_n == DP_TX_BUF))
		dp_tx_flush(lc);
	lc->tx_buf[lc->tx_n++] = m;
}
