/* ipv4.c: IPv4 input validation and dispatch, output with checksums and next hop; see ipv4.h. */
#include "ipv4.h"

#include <errno.h>
#include <netinet/in.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "arp.h"
#include "dp.h"
#include "icmp.h"
#include "tcp.h"

static inline bool
ipv4_src_bad(const struct dp_lcore *lc, uint32_t src_be)
{
	uint32_t s = rte_be_to_cpu_32(src_be);
	uint32_t bcast = lc->ip_be | ~lc->netmask_be;

	return s == 0 || (s >> 24) == 127 || (s & 0xf0000000) == 0xe0000000 || s == 0xffffffff ||
	    src_be == bcast || dp_is_our_ip(lc, src_be);
}

void
ipv4_input(struct dp_lcore *lc, struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip;
	uint16_t hlen, tlen;
	uint64_t ck;

	DP_INC(lc, ipv4, RX);
	if (unlikely(rte_pktmbuf_data_len(m) < sizeof(*ip))) {
		DP_INC(lc, ipv4, TRUNCATED);
		goto drop;
	}
	ip = rte_pktmbuf_mtod(m, struct rte_ipv4_hdr *);
	if (unlikely((ip->version_ihl >> 4) != 4)) {
		DP_INC(lc, ipv4, BAD_VERSION);
		goto drop;
	}
	hlen = (uint16_t)((ip->version_ihl & 0xf) * 4);
	if (unlikely(hlen < sizeof(*ip))) {
		DP_INC(lc, ipv4, BAD_HDR_LEN);
		goto drop;
	}
	tlen = rte_be_to_cpu_16(ip->total_length);
	if (unlikely(
		tlen < hlen || tlen > rte_pktmbuf_pkt_len(m) || hlen > rte_pktmbuf_data_len(m))) {
		DP_INC(lc, ipv4, TRUNCATED);
		goto drop;
	}
	ck = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	if (unlikely(ck == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
		(ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(ip, hlen) != 0xffff))) {
		DP_INC(lc, ipv4, BAD_CKSUM);
		goto drop;
	}
	if (unlikely(hlen != sizeof(*ip))) {
		DP_INC(lc, ipv4, OPTIONS);
		goto drop;
	}
	if (unlikely(ip->fragment_offset &
		rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))) {
		DP_INC(lc, ipv4, FRAGMENT);
		goto drop;
	}
	if (unlikely(!dp_is_our_ip(lc, ip->dst_addr))) {
		DP_INC(lc, ipv4, NOT_FOR_US);
		goto drop;
	}
	if (unlikely(ipv4_src_bad(lc, ip->src_addr))) {
		DP_INC(lc, ipv4, BAD_SRC);
		goto drop;
	}
	if (unlikely(ip->time_to_live == 0)) {
		DP_INC(lc, ipv4, TTL_ZERO);
		goto drop;
	}
	/* Trim Ethernet padding, then hand over with data at the L4 header. */
	if (rte_pktmbuf_pkt_len(m) > tlen)
		rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - tlen);
	m->l3_len = hlen;
	switch (ip->next_proto_id) {
	case IPPROTO_TCP:
		rte_pktmbuf_adj(m, hlen);
		if (lc->tcp_rx_batch && lc->tcp_rx_n < DP_RX_BURST) {
			lc->tcp_rx[lc->tcp_rx_n++] = m; /* tcp_input_burst at the burst's end */
			return;
		}
		tcp_input(lc, m);
		return;
	case IPPROTO_ICMP:
		rte_pktmbuf_adj(m, hlen);
		icmp_input(lc, m);
		return;
	default:
		DP_INC(lc, ipv4, UNKNOWN_PROTO);
		break;
	}
drop:
	rte_pktmbuf_free(m);
}

int
ipv4_output(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t dst_be, uint8_t proto)
{
	return ipv4_output_src(lc, m, lc->ip_be, dst_be, proto);
}

int
ipv4_output_src(
    struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be, uint8_t proto)
{
	return ipv4_output_hint(lc, m, src_be, dst_be, proto, NULL);
}

int
ipv4_output_hint(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be,
    uint8_t proto, uint32_t *nh_hint)
{
	struct rte_ipv4_hdr *ip;
	uint32_t next_hop = dst_be;
	uint16_t l4len = (uint16_t)rte_pktmbuf_pkt_len(m);

	if ((dst_be & lc->netmask_be) != (lc->ip_be & lc->netmask_be)) {
		if (lc->gateway_be == 0) {
			DP_INC(lc, ipv4, NO_ROUTE);
			rte_pktmbuf_free(m);
			return -ENETUNREACH;
		}
		next_hop = lc->gateway_be;
	}
	ip = (struct rte_ipv4_hdr *)rte_pktmbuf_prepend(m, sizeof(*ip));
	if (unlikely(ip == NULL)) {
		DP_INC(lc, port, MBUF_ALLOC_FAIL);
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(l4len + sizeof(*ip)));
	ip->packet_id = 0; /* DF set: no fragmentation, so no ID needed (RFC 6864) */
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = proto;
	ip->hdr_checksum = 0;
	ip->src_addr = src_be;
	ip->dst_addr = dst_be;
	m->l2_len = RTE_ETHER_HDR_LEN;
	m->l3_len = sizeof(*ip);
	m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;

	if (proto == IPPROTO_TCP) {
		struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);

		if (lc->caps.tx_tcp_cksum) {
			m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
			th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
		} else {
			th->cksum = rte_ipv4_udptcp_cksum_mbuf(m, ip, sizeof(*ip));
		}
	}
	if (lc->caps.tx_ipv4_cksum)
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	else
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	DP_INC(lc, ipv4, TX);
	if (nh_hint != NULL)
		arp_output_hint(lc, m, next_hop, nh_hint);
	else
		arp_output(lc, m, next_hop);
	return 0;
}
