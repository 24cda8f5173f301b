/* arp.c: ARP cache, resolution and replies; see arp.h. */
#include "arp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_ring.h>

#include "dp.h"
#include "eth.h"
#include "log.h"

#define ARP_HOLD_MAX   4 /* packets waiting per unresolved neighbour */
#define ARP_RETRIES    3 /* requests before giving up on a neighbour */
#define ARP_RETRY_MS   1000
#define ARP_POLL_MS    100
#define ARP_SHARE_RING 1024 /* learned entries in flight to each other lcore */

enum arp_state {
	ARP_INCOMPLETE = 1,
	ARP_REACHABLE,
	ARP_STALE
};

struct arp_entry {
	uint32_t ip_be;
	uint8_t state;
	uint8_t tries;
	uint8_t n_hold;
	struct rte_ether_addr mac;
	uint64_t deadline_tsc; /* INCOMPLETE/STALE: next request; REACHABLE: becomes stale */
	struct rte_mbuf *hold[ARP_HOLD_MAX];
};

/* An entry learned on one lcore, for the others. */
struct arp_share {
	uint32_t ip_be;
	struct rte_ether_addr mac;
};

struct arp_table {
	struct rte_hash *h;
	struct arp_entry *e;
	uint32_t cap;
	uint64_t reachable_tsc;
	uint64_t retry_tsc;
	uint64_t next_poll_tsc;
	struct rte_ring *inbox; /* entries learned by other lcores */
	unsigned n_peers;
	struct rte_ring *peers[DP_MAX_LCORES];
};

int
arp_lcore_init(struct dp_lcore *lc, uint32_t entries, uint32_t timeout_ms)
{
	struct arp_table *t;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.entries = entries,
		.key_len = sizeof(uint32_t),
		.hash_func = rte_jhash,
		.socket_id = (int)rte_socket_id(),
	};

	t = rte_zmalloc_socket("arp", sizeof(*t), RTE_CACHE_LINE_SIZE, (int)rte_socket_id());
	if (t == NULL)
		return -ENOMEM;
	snprintf(name, sizeof(name), "arp_%u", lc->lcore_id);
	hp.name = name;
	t->h = rte_hash_create(&hp);
	t->e = rte_zmalloc_socket(
	    "arp_e", sizeof(*t->e) * entries, RTE_CACHE_LINE_SIZE, (int)rte_socket_id());
	snprintf(name, sizeof(name), "arp_in_%u", lc->lcore_id);
	t->inbox = rte_ring_create(name, ARP_SHARE_RING, (int)rte_socket_id(), RING_F_SC_DEQ);
	if (t->h == NULL || t->e == NULL || t->inbox == NULL) {
		rte_hash_free(t->h);
		rte_free(t->e);
		rte_ring_free(t->inbox);
		rte_free(t);
		return -ENOMEM;
	}
	t->cap = entries;
	t->reachable_tsc = lc->tsc_hz / 1000 * timeout_ms;
	t->retry_tsc = lc->tsc_hz / 1000 * ARP_RETRY_MS;
	lc->arp = t;
	return 0;
}

void
arp_lcores_link(struct dp_lcore *const *lcs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < n; j++)
			if (i != j)
				lcs[i]->arp->peers[lcs[i]->arp->n_peers++] = lcs[j]->arp->inbox;
}

static void
entry_drop_holds(struct dp_lcore *lc, struct arp_entry *e)
{
	for (unsigned i = 0; i < e->n_hold; i++) {
		rte_pktmbuf_free(e->hold[i]);
		DP_INC(lc, arp, UNRESOLVED);
	}
	e->n_hold = 0;
}

void
arp_lcore_fini(struct dp_lcore *lc)
{
	struct arp_table *t = lc->arp;
	const void *key;
	void *data;
	uint32_t iter = 0;
	int32_t pos;
	void *obj;

	if (t == NULL)
		return;
	while ((pos = rte_hash_iterate(t->h, &key, &data, &iter)) >= 0)
		for (unsigned i = 0; i < t->e[pos].n_hold; i++)
			rte_pktmbuf_free(t->e[pos].hold[i]);
	while (rte_ring_dequeue(t->inbox, &obj) == 0)
		rte_free(obj);
	rte_hash_free(t->h);
	rte_ring_free(t->inbox);
	rte_free(t->e);
	rte_free(t);
	lc->arp = NULL;
}

static void
arp_send(struct dp_lcore *lc, uint16_t op, uint32_t sip_be, uint32_t tip_be,
    const struct rte_ether_addr *tha, const struct rte_ether_addr *eth_dst)
{
	struct rte_mbuf *m = dp_alloc(lc);
	struct rte_arp_hdr *a;

	if (m == NULL)
		return;
	a = (struct rte_arp_hdr *)rte_pktmbuf_append(m, sizeof(*a));
	a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a->arp_hlen = RTE_ETHER_ADDR_LEN;
	a->arp_plen = sizeof(uint32_t);
	a->arp_opcode = rte_cpu_to_be_16(op);
	rte_ether_addr_copy(&lc->mac, &a->arp_data.arp_sha);
	a->arp_data.arp_sip = sip_be;
	rte_ether_addr_copy(tha, &a->arp_data.arp_tha);
	a->arp_data.arp_tip = tip_be;
	if (op == RTE_ARP_OP_REQUEST)
		DP_INC(lc, arp, TX_REQUEST);
	else
		DP_INC(lc, arp, TX_REPLY);
	eth_output(lc, m, eth_dst, RTE_ETHER_TYPE_ARP);
}

static void
arp_request(struct dp_lcore *lc, uint32_t ip_be)
{
	static const struct rte_ether_addr zero,
	    bcast = { .addr_bytes = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };

	arp_send(lc, RTE_ARP_OP_REQUEST, lc->ip_be, ip_be, &zero, &bcast);
}

static void
entry_send_holds(struct dp_lcore *lc, struct arp_entry *e)
{
	for (unsigned i = 0; i < e->n_hold; i++)
		eth_output(lc, e->hold[i], &e->mac, RTE_ETHER_TYPE_IPV4);
	e->n_hold = 0;
}

/* Records ip -> mac. create: add the entry if it is not there (else only update). */
static void
arp_learn(
    struct dp_lcore *lc, uint32_t ip_be, const struct rte_ether_addr *mac, bool create, bool share)
{
	struct arp_table *t = lc->arp;
	int32_t pos = rte_hash_lookup(t->h, &ip_be);
	struct arp_entry *e;

	if (pos < 0) {
		if (!create)
			return;
		pos = rte_hash_add_key(t->h, &ip_be);
		if (pos < 0) {
			DP_INC(lc, arp, CACHE_FULL);
			return;
		}
		memset(&t->e[pos], 0, sizeof(t->e[pos]));
		t->e[pos].ip_be = ip_be;
	}
	e = &t->e[pos];
	rte_ether_addr_copy(mac, &e->mac);
	e->state = ARP_REACHABLE;
	e->tries = 0;
	e->deadline_tsc = lc->now_tsc + t->reachable_tsc;
	entry_send_holds(lc, e);
	if (!share)
		return;
	for (unsigned i = 0; i < t->n_peers; i++) {
		struct arp_share *s = rte_malloc(NULL, sizeof(*s), 0);

		if (s == NULL)
			continue;
		s->ip_be = ip_be;
		rte_ether_addr_copy(mac, &s->mac);
		if (rte_ring_enqueue(t->peers[i], s) != 0)
			rte_free(s);
	}
}

static bool
sender_ok(const struct dp_lcore *lc, uint32_t sip_be, const struct rte_ether_addr *sha)
{
	return sip_be != 0 && !dp_is_our_ip(lc, sip_be) && rte_is_unicast_ether_addr(sha) &&
	    (sip_be & lc->netmask_be) == (lc->ip_be & lc->netmask_be);
}

void
arp_input(struct dp_lcore *lc, struct rte_mbuf *m)
{
	struct rte_arp_hdr *a;
	uint32_t sip, tip;
	uint16_t op;

	if (rte_pktmbuf_data_len(m) < sizeof(*a)) {
		DP_INC(lc, arp, BAD);
		goto drop;
	}
	a = rte_pktmbuf_mtod(m, struct rte_arp_hdr *);
	op = rte_be_to_cpu_16(a->arp_opcode);
	if (a->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    a->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    a->arp_hlen != RTE_ETHER_ADDR_LEN || a->arp_plen != 4 ||
	    (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)) {
		DP_INC(lc, arp, BAD);
		goto drop;
	}
	sip = a->arp_data.arp_sip;
	tip = a->arp_data.arp_tip;
	if (sip == tip) { /* gratuitous: refresh what we know, never add */
		DP_INC(lc, arp, GRATUITOUS);
		if (sender_ok(lc, sip, &a->arp_data.arp_sha))
			arp_learn(lc, sip, &a->arp_data.arp_sha, false, true);
		goto drop;
	}
	if (!dp_is_our_ip(lc, tip)) {
		DP_INC(lc, arp, NOT_FOR_US);
		goto drop;
	}
	/* RFC 826: a packet for us adds or updates the sender. */
	if (sender_ok(lc, sip, &a->arp_data.arp_sha))
		arp_learn(lc, sip, &a->arp_data.arp_sha, true, true);
	if (op == RTE_ARP_OP_REPLY) {
		DP_INC(lc, arp, RX_REPLY);
		goto drop;
	}
	DP_INC(lc, arp, RX_REQUEST);
	{
		struct rte_ether_addr sha = a->arp_data.arp_sha;

		arp_send(lc, RTE_ARP_OP_REPLY, tip, sip, &sha, &sha);
	}
drop:
	rte_pktmbuf_free(m);
}

/* Sends m to next_hop_be, or holds it while its MAC is asked for. Returns the position of the
 * entry it went by, -1 when it waits (or was dropped). */
static int32_t
arp_output_pos(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t next_hop_be)
{
	struct arp_table *t = lc->arp;
	int32_t pos = rte_hash_lookup(t->h, &next_hop_be);
	struct arp_entry *e;

	if (likely(pos >= 0)) {
		e = &t->e[pos];
		if (likely(e->state != ARP_INCOMPLETE)) {
			if (unlikely(e->state == ARP_REACHABLE && lc->now_tsc > e->deadline_tsc)) {
				/* Stale: keep using it while we ask again (arp_poll retries). */
				e->state = ARP_STALE;
				e->tries = 1;
				e->deadline_tsc = lc->now_tsc + t->retry_tsc;
				arp_request(lc, next_hop_be);
			}
			eth_output(lc, m, &e->mac, RTE_ETHER_TYPE_IPV4);
			return pos;
		}
	} else {
		pos = rte_hash_add_key(t->h, &next_hop_be);
		if (pos < 0) {
			DP_INC(lc, arp, CACHE_FULL);
			rte_pktmbuf_free(m);
			return -1;
		}
		e = &t->e[pos];
		memset(e, 0, sizeof(*e));
		e->ip_be = next_hop_be;
		e->state = ARP_INCOMPLETE;
		e->tries = 1;
		e->deadline_tsc = lc->now_tsc + t->retry_tsc;
		arp_request(lc, next_hop_be);
	}
	if (e->n_hold == ARP_HOLD_MAX) { /* keep the newest: drop the oldest */
		DP_INC(lc, arp, HOLD_DROP);
		rte_pktmbuf_free(e->hold[0]);
		memmove(&e->hold[0], &e->hold[1], sizeof(e->hold[0]) * (ARP_HOLD_MAX - 1));
		e->n_hold--;
	}
	e->hold[e->n_hold++] = m;
	return -1;
}

/* The entry next_hop_be's hint names, if it is still that neighbour's and reachable. */
static inline struct arp_entry *
hint_entry(const struct dp_lcore *lc, uint32_t next_hop_be, uint32_t hint)
{
	const struct arp_table *t = lc->arp;
	struct arp_entry *e;

	if (hint == 0 || hint > t->cap)
		return NULL;
	e = &t->e[hint - 1];
	if (e->ip_be != next_hop_be || e->state != ARP_REACHABLE || lc->now_tsc > e->deadline_tsc)
		return NULL;
	return e;
}

void
arp_output_hint(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t next_hop_be, uint32_t *hint)
{
	struct arp_entry *e = hint_entry(lc, next_hop_be, *hint);
	int32_t pos;

	if (likely(e != NULL)) {
		eth_output(lc, m, &e->mac, RTE_ETHER_TYPE_IPV4);
		return;
	}
	pos = arp_output_pos(lc, m, next_hop_be);
	*hint = pos >= 0 ? (uint32_t)pos + 1 : 0;
}

void
arp_output(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t next_hop_be)
{
	arp_output_pos(lc, m, next_hop_be);
}

void
arp_poll(struct dp_lcore *lc)
{
	struct arp_table *t = lc->arp;
	struct arp_share *s;
	uint32_t dead[64], ndead = 0, iter = 0;
	const void *key;
	void *data;
	int32_t pos;

	while (rte_ring_sc_dequeue(t->inbox, (void **)&s) == 0) {
		arp_learn(lc, s->ip_be, &s->mac, true, false);
		rte_free(s);
	}
	if (lc->now_tsc < t->next_poll_tsc)
		return;
	t->next_poll_tsc = lc->now_tsc + lc->tsc_hz / 1000 * ARP_POLL_MS;
	while ((pos = rte_hash_iterate(t->h, &key, &data, &iter)) >= 0) {
		struct arp_entry *e = &t->e[pos];

		if (e->state == ARP_REACHABLE) {
			/* unused for a whole timeout past its expiry (a use makes it STALE and asks
			 * again): forget it, or any host on the link could fill the table for good
			 * with requests (RFC 1122 2.3.2.1) */
			if (lc->now_tsc >= e->deadline_tsc + t->reachable_tsc &&
			    ndead < RTE_DIM(dead)) {
				/* counted when removed: one that waits for the next poll (more
				 * than a batch expired at once) is not counted twice */
				DP_INC(lc, arp, EXPIRED);
				dead[ndead++] = e->ip_be;
			}
			continue;
		}
		if (lc->now_tsc < e->deadline_tsc)
			continue;
		if (e->tries >= ARP_RETRIES) {
			entry_drop_holds(lc, e);
			if (ndead < RTE_DIM(dead))
				dead[ndead++] = e->ip_be;
			continue;
		}
		e->tries++;
		e->deadline_tsc = lc->now_tsc + t->retry_tsc;
		arp_request(lc, e->ip_be);
	}
	for (uint32_t i = 0; i < ndead; i++) {
		pos = rte_hash_del_key(t->h, &dead[i]);
		if (pos >= 0)
			t->e[pos].state = 0; /* no hint (arp_output_hint) finds it any more */
	}
}

uint32_t
arp_entry_count(const struct dp_lcore *lc)
{
	return lc->arp ? (uint32_t)rte_hash_count(lc->arp->h) : 0;
}
