/*
 * dp.h: the per-lcore context every layer of the fast path receives, and the few shared
 * services (time, counters, tx queue) they use. One struct dp_lcore per worker lcore; nothing
 * in it is touched by another lcore except the counters, which the main lcore only reads.
 *
 * Data flow (one file per step): dataplane/dp_worker.c rx burst (dp_io.c) -> eth.c -> arp.c |
 * ipv4.c -> icmp.c | tcp/tcp_input.c -> a service (dataplane/svc: echo.c, mqtt_tcp.c) ->
 * tcp/tcp_output.c -> ipv4.c ipv4_output -> eth.c -> dp_tx_enqueue -> tx burst at the end of the
 * burst.
 */
#ifndef EDGEGW_DP_H
#define EDGEGW_DP_H

#include <stdbool.h>
#include <stdint.h>

#include <limits.h>
#include <stdio.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "dirs.h"
#include "dp_counters.h"
#include "nic.h"

#define DP_MAX_LCORES    64
#define DP_RX_BURST      32
#define DP_TX_BUF        512
#define DP_MAX_EXTRA_IPS 15

struct dp_config;
struct tcp_lcore;
struct arp_table;
struct pmtu_table;
struct icmp_share;

struct dp_lcore {
	/* identity */
	unsigned lcore_id;
	unsigned worker_idx; /* 0..n_workers-1 */
	uint16_t port_id;
	uint16_t queue_id;        /* rx and tx queue owned by this lcore */
	struct rte_mempool *pool; /* pool on this lcore's socket */
	const struct dp_config *cfg;
	struct nic_caps caps;                   /* offloads the port has (drivers/nic) */
	struct rte_ether_addr mac;              /* our MAC on the port */
	uint32_t ip_be;                         /* our IPv4 address, network order */
	uint32_t extra_ip_be[DP_MAX_EXTRA_IPS]; /* more addresses on the same subnet (the load
						   * generator's stack: more source addresses) */
	uint8_t n_extra_ip;
	uint32_t netmask_be;
	uint32_t gateway_be; /* 0: none */

	/* time, refreshed once per loop iteration */
	uint64_t now_tsc;
	uint64_t tsc_hz;

	/* packets built during this burst, sent by dp_tx_flush() */
	uint32_t tx_wait_us; /* 0 (the dataplane): a full tx ring drops after 8 tries; else
				    * wait up to this long for room (the load generator's stack) */
	uint16_t tx_n;
	struct rte_mbuf *tx_buf[DP_TX_BUF];

	/* TCP segments of this rx burst, handed to tcp_input_burst together at its end (their
	 * flows looked up in one go): ipv4_input keeps them here while tcp_rx_batch is set */
	bool tcp_rx_batch;
	uint16_t tcp_rx_n;
	struct rte_mbuf *tcp_rx[DP_RX_BURST];

	/* per-layer state */
	struct arp_table *arp;
	struct tcp_lcore *tcp;
	struct pmtu_table *pmtu; /* path MTU per destination (pmtu.h), NULL: none kept */
	struct icmp_share *icmp; /* ICMP for flows of other lcores (icmp.h), NULL: one lcore */

	/* counters: written by this lcore only, summed by readers */
	struct dp_counters cnt __rte_cache_aligned;
} __rte_cache_aligned;

/* Is ip_be one of our addresses? */
static inline bool
dp_is_our_ip(const struct dp_lcore *lc, uint32_t ip_be)
{
	if (likely(ip_be == lc->ip_be))
		return true;
	for (unsigned i = 0; i < lc->n_extra_ip; i++)
		if (lc->extra_ip_be[i] == ip_be)
			return true;
	return false;
}

/* Microseconds since an arbitrary epoch, from the loop's cached TSC. */
static inline uint64_t
dp_now_us(const struct dp_lcore *lc)
{
	return lc->now_tsc / (lc->tsc_hz / 1000000);
}

/* One rx burst from the lcore's queue, each frame through eth_input; refreshes now_tsc and
 * counts the burst (or the idle poll). Returns the number of frames. */
uint16_t dp_rx_burst(struct dp_lcore *lc);

/* Queue a complete frame (Ethernet header included) for transmission at the end of the burst.
 * Takes ownership; a full buffer flushes first, and a frame the NIC refuses is freed and counted. */
void dp_tx_enqueue(struct dp_lcore *lc, struct rte_mbuf *m);
void dp_tx_flush(struct dp_lcore *lc);

/* Allocate an mbuf for a locally generated packet with at least `headroom` bytes in front
 * (for the L2/L3 headers the lower layers prepend). NULL and a counter when the pool is empty. */
struct rte_mbuf *dp_alloc(struct dp_lcore *lc);

/* rte_eal_cleanup(), then the EAL's runtime directory (/var/run/dpdk/PREFIX) removed: for
 * programs and tests that run with a private file prefix and leave nothing behind. */
static inline void
dp_eal_cleanup(void)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	dirs_remove_flat(dir);
}

#endif
