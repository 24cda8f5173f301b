/* icmp.c: answers echo requests in place (the request mbuf becomes the reply), hands
 * "fragmentation needed" to TCP (path MTU); see icmp.h. */
#include "icmp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <netinet/in.h>

#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_malloc.h>
#include <rte_per_lcore.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

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
#define ICMP_SHARE_RING   256 /* messages an lcore's inbox holds */

/* A "fragmentation needed" for another lcore's flow: what TCP needs of it. */
struct icmp_frag {
	uint32_t lip_be, rip_be;
	uint16_t lport_be, rport_be;
	uint32_t seq;
	uint16_t mtu, pad;
};
_Static_assert(sizeof(struct icmp_frag) % 4 == 0, "an rte_ring element is a multiple of 4");

struct icmp_share {
	struct rte_ring *inbox; /* from the other lcores (multi-producer, this one consumes) */
	unsigned n_peers;
	struct rte_ring *peers[DP_MAX_LCORES];
};

void
icmp_lcores_unlink(struct dp_lcore *const *lcs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (lcs[i]->icmp == NULL)
			continue;
		rte_ring_free(lcs[i]->icmp->inbox);
		rte_free(lcs[i]->icmp);
		lcs[i]->icmp = NULL;
	}
}

int
icmp_lcores_link(struct dp_lcore *const *lcs, unsigned n)
{
	char name[RTE_RING_NAMESIZE];

	if (n < 2)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		struct icmp_share *s = rte_zmalloc("icmp_share", sizeof(*s), RTE_CACHE_LINE_SIZE);

		snprintf(name, sizeof(name), "icmp_in_%u", lcs[i]->lcore_id);
		if (s == NULL ||
		    (s->inbox = rte_ring_create_elem(name, sizeof(struct icmp_frag),
			 ICMP_SHARE_RING, (int)rte_socket_id(), RING_F_SC_DEQ)) == NULL) {
			rte_free(s);
			icmp_lcores_unlink(lcs, n);
			return -ENOMEM;
		}
		lcs[i]->icmp = s;
	}
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < n; j++)
			if (i != j)
				lcs[i]->icmp->peers[lcs[i]->icmp->n_peers++] = lcs[j]->icmp->inbox;
	return 0;
}

/* Pass f to every other lcore; false with none to pass it to. */
static bool
frag_share(struct dp_lcore *lc, const struct icmp_frag *f)
{
	struct icmp_share *s = lc->icmp;

	if (s == NULL || s->n_peers == 0)
		return false;
	for (unsigned i = 0; i < s->n_peers; i++)
		if (rte_ring_mp_enqueue_elem(s->peers[i], (void *)(uintptr_t)f, sizeof(*f)) != 0)
			DP_INC(lc, icmp, FRAG_SHARE_DROP);
	DP_INC(lc, icmp, FRAG_SHARED);
	return true;
}

void
icmp_poll(struct dp_lcore *lc)
{
	struct icmp_frag v[16];
	unsigned n;

	if (lc->icmp == NULL)
		return;
	while ((n = rte_ring_sc_dequeue_burst_elem(
		    lc->icmp->inbox, v, sizeof(v[0]), RTE_DIM(v), NULL)) > 0)
		for (unsigned i = 0; i < n; i++) /* not this lcore's flow either: nothing to say */
			(void)tcp_pmtu_update(lc, v[i].lip_be, v[i].rip_be, v[i].lport_be,
			    v[i].rport_be, v[i].seq, v[i].mtu);
}

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
	struct icmp_frag f;
	uint32_t seq;

	DP_INC(lc, icmp, FRAG_NEEDED);
	if (len < 8 + sizeof(*in) || (ihl = (in->version_ihl & 15u) * 4) < sizeof(*in) ||
	    len < 8 + ihl + 8 || in->next_proto_id != IPPROTO_TCP ||
	    !dp_is_our_ip(lc, in->src_addr))
		return;
	memcpy(&sport, p + 8 + ihl, 2);
	memcpy(&dport, p + 8 + ihl + 2, 2);
	memcpy(&seq, p + 8 + ihl + 4, 4);
	f = (struct icmp_frag){ in->src_addr, in->dst_addr, sport, dport, rte_be_to_cpu_32(seq),
		mtu, 0 };
	/* RSS hashed the message by its own addresses: the flow may be another lcore's */
	if (!tcp_pmtu_update(lc, f.lip_be, f.rip_be, f.lport_be, f.rport_be, f.seq, f.mtu) &&
	    !frag_share(lc, &f))
		DP_INC(lc, tcp, PMTU_IGNORED); /* no such flow (RFC 5927 4.1) */
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
