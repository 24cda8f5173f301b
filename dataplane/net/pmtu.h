/*
 * pmtu.h: the path MTU learnt per destination (RFC 1191), per worker lcore. ICMP
 * "fragmentation needed" that TCP has validated against a flow (tcp_pmtu_update, RFC 5927)
 * lowers a destination's entry; every flow to that destination takes it (a new one at its
 * handshake, one already open at its next send), and an entry expires 10 minutes (the
 * config's dataplane.pmtu.timeout) after it was last lowered: flows then try the port's MTU
 * again (the ones it lowered at their next send, as far as their handshake allowed). Bounded (dataplane.pmtu.entries): a full table refuses, counted, and only the
 * flow the message named is lowered. No locks: each lcore keeps its own (as its flows).
 */
#ifndef EDGEGW_NET_PMTU_H
#define EDGEGW_NET_PMTU_H

#include <stdint.h>

#include "dp.h"

#define PMTU_MIN_MTU     68  /* RFC 791: every link passes 68 bytes; less is implausible */
#define PMTU_FLOOR_MTU   576 /* lower is taken as this (Linux's min_pmtu is 552) */
#define PMTU_FILTER_BITS 12  /* the filter in front of the hash: 4096 counters */

struct pmtu_entry;

struct pmtu_table {
	uint32_t n; /* entries in use: 0 lets pmtu_get() return at once */
	uint32_t cap;
	uint64_t expire_tsc; /* an entry's life after its last decrease */
	struct rte_hash *h;  /* destination -> index into e[] */
	struct pmtu_entry *e;
	/* entries per filter slot (a hash of the destination): a send to a destination with no
	 * entry costs a load or two instead of a hash lookup */
	uint16_t filter[1u << PMTU_FILTER_BITS];
};

/* entries: 1..65535; timeout_ms > 0. -EINVAL, -ENOMEM. */
int pmtu_lcore_init(struct dp_lcore *lc, uint32_t entries, uint32_t timeout_ms);
void pmtu_lcore_fini(struct dp_lcore *lc);

/* Lower dst_be's path MTU to mtu, or add it; an equal one renews the entry's life, a larger
 * one is stale while the entry lives. Returns 0, or -ENOSPC when the table is full of live
 * entries (counted pmtu CACHE_FULL). No table: -ENOENT. */
int pmtu_learn(struct dp_lcore *lc, uint32_t dst_be, uint16_t mtu);
/* dst_be's path MTU, or 0 when none is known (an expired entry is removed, counted). */
uint16_t pmtu_lookup(struct dp_lcore *lc, uint32_t dst_be);
uint32_t pmtu_entry_count(const struct dp_lcore *lc);

static inline unsigned
pmtu_filter_slot(uint32_t dst_be)
{
	return (dst_be * 2654435761u) >> (32 - PMTU_FILTER_BITS);
}

/* The send path's question; a destination with no entry costs a load or two. */
static inline uint16_t
pmtu_get(struct dp_lcore *lc, uint32_t dst_be)
{
	const struct pmtu_table *t = lc->pmtu;

	if (likely(t == NULL || t->n == 0 || t->filter[pmtu_filter_slot(dst_be)] == 0))
		return 0;
	return pmtu_lookup(lc, dst_be);
}

#endif
