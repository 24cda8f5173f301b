/* icmp.c: answers echo requests in place (the request mbuf becomes the reply), hands
 * "fragmentation needed" to TCP (path MTU); see icmp.h. */
#include "icmp.h"

#include <string.h>

#include <netinet/in.h>

#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_per_lcore.h>

#include "dp.h"
#include "ipv4.h"
#include "tcp.h"

/* Token bucket per lcore: a ping flood cannot take the worker's whole tx budget. */
struct icmp_bucket {
	uint32_t rate_per_s;
	double tokens;
	uint64_t last_tsc;
};
static RTE_DEFINE_PER_LCORE(struct icmp_bucket, icmp_bucket);

void
icmp_lcore_init(struct dp_lcore *lc, uint32_t rate_per_s)
{
	(void)lc;
	RTE_PER_LCORE(icmp_bucket).rate_per_s = rate_per_s;
	RTE_PER_LCORE(icmp_bucket).tokens = rate_per_s;
}

static bool
icmp_take_token(struct dp_lcore *lc)
{
	struct icmp_bucket *b = &RTE_PER_LCORE(icmp_bucket);
	double add = (double)(lc->now_tsc - b->last_tsc) * b->rate_per_s / (double)lc->tsc_hz;

	b->last_tsc = lc->now_tsc;
	b->tokens = RTE_MIN(b->tokens + add, (double)b->rate_per_s);
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED  4

/*
 * Destination unreachable, fragmentation needed (RFC 1191): the original IPv4 header and the
 * first 8 bytes of its TCP header follow the 8-byte ICMP header; the next-hop MTU is in the
 * ICMP header's last two bytes. TCP checks the flow and the sequence number (RFC 5927).
 */
static void
frag_needed(struct dp_lcore *lc, const struct rte_mbuf *m)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_ipv4_hdr *in = (const struct rte_ipv4_hdr *)(p + 8);
	uint32_t len = rte_pktmbuf_data_len(m), ihl;
	uint16_t mtu = (uint16_t)(p[6] << 8 | p[7]), sport, dport;
	uint32_t seq;

	DP_INC(lc, icmp, FRAG_NEEDED);
	if (len < 8 + sizeof(*in) || (ihl = (in->version_ihl & 15u) * 4) < sizeof(*in) ||
	    len < 8 + ihl + 8 || in->next_proto_id != IPPROTO_TCP ||
	    !dp_is_our_ip(lc, in->src_addr))
		return;
	memcpy(&sport, p + 8 + ihl, 2);
	memcpy(&dport, p + 8 + ihl + 2, 2);
	memcpy(&seq, p + 8 + ihl + 4, 4);
	tcp_pmtu_update(lc, in->src_addr, in->dst_addr, sport, dport, rte_be_to_cpu_32(seq), mtu);
}

void
icmp_input(struct dp_lcore *lc, struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip =
	    rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, -(int)m->l3_len);
	struct rte_icmp_hdr *ic;
	uint32_t src;

	if (rte_pktmbuf_data_len(m) < sizeof(*ic) ||
	    rte_pktmbuf_pkt_len(m) != rte_pktmbuf_data_len(m) ||
	    rte_raw_cksum(rte_pktmbuf_mtod(m, void *), rte_pktmbuf_data_len(m)) != 0xffff) {
		DP_INC(lc, icmp, BAD);
		goto drop;
	}
	ic = rte_pktmbuf_mtod(m, struct rte_icmp_hdr *);
	if (ic->icmp_type == ICMP_DEST_UNREACH && ic->icmp_code == ICMP_FRAG_NEEDED) {
		frag_needed(lc, m);
		goto drop;
	}
	if (ic->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || ic->icmp_code != 0) {
		DP_INC(lc, icmp, OTHER);
		goto drop;
	}
	if (!icmp_take_token(lc)) {
		DP_INC(lc, icmp, RATE_LIMITED);
		goto drop;
	}
	DP_INC(lc, icmp, ECHO_REQUEST);
	src = ip->src_addr;
	ic->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	ic->icmp_cksum = 0;
	ic->icmp_cksum = (uint16_t)~rte_raw_cksum(ic, rte_pktmbuf_data_len(m));
	/* ipv4_output prepends a fresh header in the room the old one leaves. */
	ipv4_output(lc, m, src, IPPROTO_ICMP);
	return;
drop:
	rte_pktmbuf_free(m);
}
