/* eth.c: Ethernet layer of the fast path: frames in from the rx burst, out to the tx queue. */
#include "eth.h"

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "arp.h"
#include "dp.h"
#include "ipv4.h"

void
eth_input(struct dp_lcore *lc, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eh;
	uint16_t type;

	if (unlikely(rte_pktmbuf_data_len(m) < sizeof(*eh))) {
		DP_INC(lc, eth, RUNT);
		rte_pktmbuf_free(m);
		return;
	}
	eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	if (unlikely(!rte_is_same_ether_addr(&eh->dst_addr, &lc->mac) &&
		!rte_is_broadcast_ether_addr(&eh->dst_addr))) {
		DP_INC(lc, eth, NOT_FOR_US);
		rte_pktmbuf_free(m);
		return;
	}
	type = rte_be_to_cpu_16(eh->ether_type);
	m->l2_len = sizeof(*eh);
	switch (type) {
	case RTE_ETHER_TYPE_IPV4:
		rte_pktmbuf_adj(m, sizeof(*eh));
		ipv4_input(lc, m);
		return;
	case RTE_ETHER_TYPE_ARP:
		rte_pktmbuf_adj(m, sizeof(*eh));
		arp_input(lc, m);
		return;
	case RTE_ETHER_TYPE_VLAN:
	case RTE_ETHER_TYPE_QINQ:
		DP_INC(lc, eth, VLAN);
		break;
	default:
		DP_INC(lc, eth, UNKNOWN_TYPE);
		break;
	}
	rte_pktmbuf_free(m);
}

void
eth_output(
    struct dp_lcore *lc, struct rte_mbuf *m, const struct rte_ether_addr *dst, uint16_t ethertype)
{
	struct rte_ether_hdr *eh;

	eh = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eh));
	if (unlikely(eh == NULL)) {
		DP_INC(lc, port, MBUF_ALLOC_FAIL);
		rte_pktmbuf_free(m);
		return;
	}
	rte_ether_addr_copy(dst, &eh->dst_addr);
	rte_ether_addr_copy(&lc->mac, &eh->src_addr);
	eh->ether_type = rte_cpu_to_be_16(ethertype);
	m->l2_len = sizeof(*eh);
	dp_tx_enqueue(lc, m);
}
