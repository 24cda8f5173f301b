/* pmtu.c: the per-destination path MTU table (RFC 1191); see pmtu.h. */
#include "pmtu.h"

#include <errno.h>
#include <stdio.h>

#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

struct pmtu_entry {
	uint32_t dst_be;
	uint16_t mtu;
	uint64_t expires_tsc;
};

int
pmtu_lcore_init(struct dp_lcore *lc, uint32_t entries, uint32_t timeout_ms)
{
	int socket = (int)rte_socket_id();
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.entries = entries,
		.key_len = sizeof(uint32_t),
		.hash_func = rte_jhash,
		.socket_id = socket,
	};
	struct pmtu_table *t;

	if (entries == 0 || entries > UINT16_MAX || timeout_ms == 0)
		return -EINVAL;
	t = rte_zmalloc_socket("pmtu", sizeof(*t), RTE_CACHE_LINE_SIZE, socket);
	if (t == NULL)
		return -ENOMEM;
	/* unique per table: tests and tools init several lcores with the same id */
	snprintf(name, sizeof(name), "pmtu_%p", (void *)t);
	hp.name = name;
	t->h = rte_hash_create(&hp);
	t->e = rte_zmalloc_socket("pmtu_e", sizeof(*t->e) * entries, RTE_CACHE_LINE_SIZE, socket);
	if (t->h == NULL || t->e == NULL) {
		rte_hash_free(t->h);
		rte_free(t->e);
		rte_free(t);
		return -ENOMEM;
	}
	t->cap = entries;
	t->expire_tsc = lc->tsc_hz / 1000 * timeout_ms;
	lc->pmtu = t;
	return 0;
}

void
pmtu_lcore_fini(struct dp_lcore *lc)
{
	struct pmtu_table *t = lc->pmtu;

	if (t == NULL)
		return;
	rte_hash_free(t->h);
	rte_free(t->e);
	rte_free(t);
	lc->pmtu = NULL;
}

static void
entry_del(struct pmtu_table *t, uint32_t dst_be)
{
	if (rte_hash_del_key(t->h, &dst_be) >= 0) {
		t->filter[pmtu_filter_slot(dst_be)]--;
		t->n--;
	}
}

/* A full table: room from the entries past their life (a scan of the table, only then). */
static void
expire_all(struct dp_lcore *lc, struct pmtu_table *t)
{
	const void *key;
	void *data;
	uint32_t iter = 0;
	int32_t pos;

	while ((pos = rte_hash_iterate(t->h, &key, &data, &iter)) >= 0) {
		if (t->e[pos].expires_tsc <= lc->now_tsc) {
			entry_del(t, t->e[pos].dst_be);
			DP_INC(lc, pmtu, EXPIRED);
		}
	}
}

int
pmtu_learn(struct dp_lcore *lc, uint32_t dst_be, uint16_t mtu)
{
	struct pmtu_table *t = lc->pmtu;
	struct pmtu_entry *e;
	int32_t pos;

	if (t == NULL)
		return -ENOENT;
	pos = rte_hash_lookup(t->h, &dst_be);
	if (pos >= 0 && t->e[pos].expires_tsc > lc->now_tsc && t->e[pos].mtu < mtu)
		return 0; /* the path is known smaller: a stale message */
	if (pos < 0) {
		if (t->n >= t->cap)
			expire_all(lc, t);
		if (t->n >= t->cap || (pos = rte_hash_add_key(t->h, &dst_be)) < 0) {
			DP_INC(lc, pmtu, CACHE_FULL);
			return -ENOSPC;
		}
		t->filter[pmtu_filter_slot(dst_be)]++;
		t->n++;
		t->e[pos].dst_be = 0; /* a new entry: counted below */
	}
	e = &t->e[pos];
	if (e->dst_be != dst_be || e->mtu != mtu || e->expires_tsc <= lc->now_tsc)
		DP_INC(lc, pmtu, LEARNED);
	e->dst_be = dst_be;
	e->mtu = mtu;
	e->expires_tsc = lc->now_tsc + t->expire_tsc;
	return 0;
}

uint16_t
pmtu_lookup(struct dp_lcore *lc, uint32_t dst_be)
{
	struct pmtu_table *t = lc->pmtu;
	int32_t pos;

	if (t == NULL || (pos = rte_hash_lookup(t->h, &dst_be)) < 0)
		return 0;
	if (t->e[pos].expires_tsc <= lc->now_tsc) {
		entry_del(t, dst_be);
		DP_INC(lc, pmtu, EXPIRED);
		return 0;
	}
	return t->e[pos].mtu;
}

uint32_t
pmtu_entry_count(const struct dp_lcore *lc)
{
	return lc->pmtu != NULL ? lc->pmtu->n : 0;
}
