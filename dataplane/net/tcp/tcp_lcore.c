/*
 * tcp_lcore.c: per-lcore state of the TCP stack: configuration defaults, the flow table
 * (rte_hash on the 4-tuple), the TCB pool (an array with a free list, sized max_flows), the
 * listener table, the flush and reap lists, state bookkeeping and the memory stats.
 * Neighbours: tcp_input.c looks flows up here; every file allocates/frees TCBs through here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_random.h>

#include "dp.h"
#include "tcp_cc.h"
#include "tcp_types.h"

/* Every live tcp_lcore, so that a TCB names its own in one byte (workers start in parallel:
 * a slot is taken with compare-and-swap). */
struct tcp_lcore *tcp_lcores[TCP_MAX_LCORES];

_Static_assert(sizeof(struct tcp_conn) == 256, "TCB size changed: update docs/tcp.md");
_Static_assert(TF_SACK_OK <= TF_ALL, "TCB flags are 16 bits");

static int
tl_register(struct tcp_lcore *tl)
{
	for (unsigned i = 0; i < TCP_MAX_LCORES; i++) {
		struct tcp_lcore *none = NULL;

		if (__atomic_compare_exchange_n(
			&tcp_lcores[i], &none, tl, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			tl->index = (uint8_t)i;
			return 0;
		}
	}
	return -ENOSPC;
}

int
tcp_ops_index(struct tcp_lcore *tl, const struct tcp_app_ops *ops)
{
	unsigned i;

	for (i = 1; i < tl->n_ops; i++)
		if (tl->ops_tab[i] == ops)
			return (int)i;
	if (tl->n_ops == TCP_MAX_OPS)
		return -ENOSPC;
	tl->ops_tab[tl->n_ops] = ops;
	return tl->n_ops++;
}

void *
tcp_app_area(struct tcp_conn *c)
{
	return c->app;
}

struct tcp_conn *
tcp_app_area_conn(void *area)
{
	return (struct tcp_conn *)((char *)area - offsetof(struct tcp_conn, app));
}

void
tcp_config_defaults(struct tcp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_flows = 4096;
	cfg->max_half_open = 256;
	cfg->rcvbuf_bytes = 65536;
	cfg->sndbuf_bytes = 65536;
	cfg->mss = 1460;
	cfg->wscale = 2;
	cfg->timestamps = true;
	cfg->rto_min_ms = 200;
	cfg->rto_max_ms = 60000;
	cfg->rto_initial_ms = 1000;
	cfg->delack_ms = 40;
	cfg->time_wait_ms = 60000;
	cfg->syn_retries = 5;
	cfg->data_retries = 10;
	cfg->keepalive = false;
	cfg->keepalive_idle_ms = 7200000;
	cfg->keepalive_intvl_ms = 75000;
	cfg->keepalive_probes = 9;
	cfg->challenge_ack_per_s = 1000;
}

static const char *const state_names[TCP_ST_COUNT] = {
	[TCP_ST_CLOSED] = "CLOSED",
	[TCP_ST_SYN_RECEIVED] = "SYN_RECEIVED",
	[TCP_ST_ESTABLISHED] = "ESTABLISHED",
	[TCP_ST_FIN_WAIT_1] = "FIN_WAIT_1",
	[TCP_ST_FIN_WAIT_2] = "FIN_WAIT_2",
	[TCP_ST_CLOSE_WAIT] = "CLOSE_WAIT",
	[TCP_ST_CLOSING] = "CLOSING",
	[TCP_ST_LAST_ACK] = "LAST_ACK",
	[TCP_ST_TIME_WAIT] = "TIME_WAIT",
	[TCP_ST_SYN_SENT] = "SYN_SENT",
};

const char *
tcp_state_name(enum tcp_state st)
{
	return (unsigned)st < TCP_ST_COUNT ? state_names[st] : "?";
}

enum tcp_state
tcp_conn_state(const struct tcp_conn *c)
{
	return (enum tcp_state)c->state;
}

/* The stack's millisecond clock, from the loop's cached TSC. */
void
tcp_update_clock(struct tcp_lcore *tl)
{
	uint64_t d = tl->lc->now_tsc - tl->base_tsc;

	tl->now_ms = (uint32_t)(d / tl->tsc_per_ms);
}

static int
cfg_check(const struct tcp_config *cfg)
{
	if (cfg->max_flows < 8 || cfg->max_half_open == 0 || cfg->mss < 88 ||
	    cfg->wscale > TCP_MAX_WSCALE || cfg->rcvbuf_bytes < cfg->mss ||
	    cfg->sndbuf_bytes < cfg->mss || cfg->rto_min_ms == 0 ||
	    cfg->rto_max_ms < cfg->rto_min_ms || cfg->rto_initial_ms == 0 ||
	    cfg->challenge_ack_per_s == 0 || cfg->time_wait_ms == 0)
		return -EINVAL;
	if ((uint64_t)cfg->rcvbuf_bytes > (65535ull << cfg->wscale))
		return -EINVAL; /* the window could not advertise the whole buffer */
	return 0;
}

static int
tables_create(struct tcp_lcore *tl, unsigned socket)
{
	static unsigned seq;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = tl->cfg.max_flows,
		.key_len = sizeof(struct tcp_flow_key),
		.hash_func = rte_jhash,
		.hash_func_init_val = (uint32_t)rte_rand(),
		.socket_id = (int)socket,
		/* buckets that overflow chain into an extension table: a full cuckoo table
		 * could otherwise refuse inserts below max_flows */
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	};
	uint32_t i;

	snprintf(name, sizeof(name), "tcpf_%u_%u", tl->lc->lcore_id, seq++);
	tl->flows = rte_hash_create(&hp);
	if (tl->flows == NULL)
		return -rte_errno ? -rte_errno : -ENOMEM;
	tl->tcbs = rte_zmalloc_socket("tcp_tcbs", sizeof(struct tcp_conn) * tl->cfg.max_flows,
	    RTE_CACHE_LINE_SIZE, (int)socket);
	if (tl->tcbs == NULL)
		return -ENOMEM;
	tl->dq_mask = rte_align32pow2(tl->cfg.max_flows) - 1;
	tl->dq = rte_zmalloc_socket(
	    "tcp_dq", sizeof(*tl->dq) * (tl->dq_mask + 1), RTE_CACHE_LINE_SIZE, (int)socket);
	if (tl->dq == NULL)
		return -ENOMEM;
	for (i = tl->cfg.max_flows; i-- > 0;) {
		tl->tcbs[i].next_free = tcb_ref(tl, tl->free_list);
		tl->free_list = &tl->tcbs[i];
	}
	return 0;
}

/* Out-of-order packets are linked through an mbuf dynamic field: next packet and its seq. */
static int
ooo_dynfield_register(void)
{
	static const struct rte_mbuf_dynfield desc = {
		.name = "egw_tcp_ooo",
		.size = sizeof(struct rte_mbuf *) + sizeof(uint64_t),
		.align = __alignof__(struct rte_mbuf *),
	};
	int off = rte_mbuf_dynfield_register(&desc);

	return off < 0 ? -rte_errno : off;
}

static void
tl_free(struct tcp_lcore *tl)
{
	if (tl->index < TCP_MAX_LCORES && tcp_lcores[tl->index] == tl)
		__atomic_store_n(&tcp_lcores[tl->index], NULL, __ATOMIC_RELEASE);
	if (tl->flows != NULL)
		rte_hash_free(tl->flows);
	rte_free(tl->tcbs);
	rte_free(tl->dq);
	tcp_sb_pool_fini(tl);
	rte_free(tl);
}

int
tcp_lcore_init(struct dp_lcore *lc, const struct tcp_config *cfg)
{
	unsigned socket = rte_socket_id() == (unsigned)SOCKET_ID_ANY ? 0 : rte_socket_id();
	struct tcp_lcore *tl;
	uint32_t ooo;
	uint16_t room;
	int rc, i;

	if (lc->tcp != NULL)
		return -EALREADY;
	if ((rc = cfg_check(cfg)) < 0 || lc->pool == NULL || lc->tsc_hz < 1000)
		return rc < 0 ? rc : -EINVAL;
	tl = rte_zmalloc_socket("tcp_lcore", sizeof(*tl), RTE_CACHE_LINE_SIZE, (int)socket);
	if (tl == NULL)
		return -ENOMEM;
	tl->lc = lc;
	tl->cfg = *cfg;
	tl->cc = cfg->cc == TCP_CC_NEWRENO ? &tcp_cc_newreno : &tcp_cc_cubic;
	tl->base_tsc = lc->now_tsc;
	tl->tsc_per_ms = lc->tsc_hz / 1000;
	tl->ts_offset = (uint32_t)rte_rand();
	for (i = 0; i < 4; i++)
		tl->cookie_secret[i] = (uint32_t)rte_rand();
	tl->n_ops = 1;              /* ops_tab[0]: none */
	tl->index = TCP_MAX_LCORES; /* not registered yet (tl_free checks) */
	/* every segment we build fits one mbuf: clamp the MSS to the pool's data room */
	room = rte_pktmbuf_data_room_size(lc->pool) - RTE_PKTMBUF_HEADROOM;
	tl->seg_room = room;
	if (tl->cfg.mss + 60 > room)
		tl->cfg.mss = room - 60;
	/* out-of-order data: up to two windows' worth of segments per flow, and a quarter of
	 * the pool for all flows, so peers that never fill their holes cannot drain the pool */
	ooo = RTE_MIN(2 * cfg->rcvbuf_bytes / tl->cfg.mss, (uint32_t)TCP_OOO_MAX_SEGS);
	tl->ooo_max_segs = (uint8_t)RTE_MAX(ooo, (uint32_t)TCP_OOO_MIN_SEGS);
	tl->ooo_mbuf_cap = RTE_MAX(64u, lc->pool->size / 4);
	if ((rc = ooo_dynfield_register()) < 0 || (tl->ooo_dynoff = rc, 0) ||
	    (rc = tl_register(tl)) < 0 || (rc = tables_create(tl, socket)) < 0 ||
	    (rc = tcp_sb_pool_init(tl, socket)) < 0) {
		tl_free(tl);
		return rc;
	}
	lc->tcp = tl;
	return 0;
}

void
tcp_lcore_fini(struct dp_lcore *lc)
{
	struct tcp_lcore *tl = lc->tcp;
	uint32_t i;

	if (tl == NULL)
		return;
	tcp_update_clock(tl);
	for (i = 0; i < tl->cfg.max_flows; i++) {
		struct tcp_conn *c = &tl->tcbs[i];

		if (!(c->flags & TF_INUSE) || c->state == TCP_ST_CLOSED)
			continue;
		if (c->state != TCP_ST_TIME_WAIT && c->state != TCP_ST_SYN_SENT)
			tcp_send_rst(c);
		tcp_conn_close(c, TCP_CLOSE_SHUTDOWN);
	}
	tcp_reap(tl);
	lc->tcp = NULL;
	tl_free(tl);
}

int
tcp_listen(struct dp_lcore *lc, uint16_t port, const struct tcp_app_ops *ops, void *listen_ctx)
{
	struct tcp_lcore *tl = lc->tcp;
	uint16_t port_be = rte_cpu_to_be_16(port);
	int oi;

	if (tl == NULL || ops == NULL || ops->accept == NULL || ops->closed == NULL || port == 0)
		return -EINVAL;
	if (tcp_listener_find(tl, port_be) != NULL)
		return -EADDRINUSE;
	if (tl->n_listeners == TCP_MAX_LISTENERS || (oi = tcp_ops_index(tl, ops)) < 0)
		return -ENOSPC;
	tl->listeners[tl->n_listeners++] =
	    (struct tcp_listener){ port_be, (uint8_t)oi, listen_ctx };
	return 0;
}

const struct tcp_listener *
tcp_listener_find(const struct tcp_lcore *tl, uint16_t port_be)
{
	unsigned i;

	for (i = 0; i < tl->n_listeners; i++)
		if (tl->listeners[i].port_be == port_be)
			return &tl->listeners[i];
	return NULL;
}

struct tcp_conn *
tcp_conn_lookup(struct tcp_lcore *tl, const struct tcp_flow_key *key)
{
	void *data;

	if (rte_hash_lookup_data(tl->flows, key, &data) < 0)
		return NULL;
	return data;
}

/* A fresh TCB in the table, state CLOSED; NULL (counted) when the pool or the table is full. */
struct tcp_conn *
tcp_conn_alloc(struct tcp_lcore *tl, const struct tcp_flow_key *key)
{
	struct tcp_conn *c = tl->free_list;
	uint8_t dq;

	if (c == NULL) {
		DP_INC(tl->lc, tcp, FLOW_TABLE_FULL);
		return NULL;
	}
	tl->free_list = tcb_at(tl, c->next_free);
	dq = c->timer_on & TT_DQ; /* an old flow's delayed-ACK entry is this one's now */
	memset(c, 0, sizeof(*c));
	c->timer_on = dq;
	c->key = *key;
	c->tli = tl->index;
	c->flags = TF_INUSE;
	c->chack_ms = tl->now_ms - 1000000; /* no challenge ACK yet */
	if (rte_hash_add_key_data(tl->flows, key, c) < 0) {
		DP_INC(tl->lc, tcp, HASH_ADD_FAIL);
		c->flags = 0;
		c->next_free = tcb_ref(tl, tl->free_list);
		tl->free_list = c;
		return NULL;
	}
	tl->flows_gen++;
	tl->n_used++;
	tl->by_state[TCP_ST_CLOSED]++;
	return c;
}

void
tcp_set_state(struct tcp_conn *c, enum tcp_state st)
{
	struct tcp_lcore *tl = tcb_tl(c);

	if (c->state == TCP_ST_SYN_RECEIVED)
		tl->half_open--;
	if (st == TCP_ST_SYN_RECEIVED)
		tl->half_open++;
	tl->by_state[c->state]--;
	tl->by_state[st]++;
	c->state = (uint8_t)st;
}

/* Tell the app once that its connection is gone; the TCB may live on (TIME_WAIT). */
void
tcp_app_closed(struct tcp_conn *c, enum tcp_close_reason why)
{
	const struct tcp_app_ops *ops = tcb_ops(c);

	if (!(c->flags & TF_APP))
		return;
	c->flags &= ~TF_APP;
	c->ops_i = 0;
	if (why == TCP_CLOSE_NORMAL)
		DP_INC(tcb_tl(c)->lc, tcp, CONN_CLOSED);
	ops->closed(c, c->app_ctx, why);
}

/*
 * The connection ends: out of the table, timers off, buffers freed, closed() called. The TCB
 * itself goes back to the pool at the next tcp_reap() (end of flush or timer poll), so code
 * up the stack that still holds c (a callback returning into tcp_input) sees state CLOSED.
 */
void
tcp_conn_close(struct tcp_conn *c, enum tcp_close_reason why)
{
	struct tcp_lcore *tl = tcb_tl(c);

	if (c->flags & TF_REAP)
		return;
	rte_hash_del_key(tl->flows, &c->key);
	tl->flows_gen++;
	tcp_timers_stop_all(c);
	tcp_mq_free(tl, &c->sndq, TCP_Q_SND);
	tcp_mq_free(tl, &c->rcvq, TCP_Q_RCV);
	tcp_ooo_free(c);
	tcp_sb_release(c);
	tcp_set_state(c, TCP_ST_CLOSED);
	c->flags |= TF_REAP;
	c->next_free = tcb_ref(tl, tl->reap_head);
	tl->reap_head = c;
	tcp_app_closed(c, why);
}

void
tcp_reap(struct tcp_lcore *tl)
{
	struct tcp_conn *c;

	while ((c = tl->reap_head) != NULL) {
		if (c->flags & TF_ON_FLUSH)
			return; /* still on the flush list: tcp_flush reaps after walking it */
		tl->reap_head = tcb_at(tl, c->next_free);
		tl->by_state[TCP_ST_CLOSED]--;
		tl->n_used--;
		c->flags = 0;
		c->next_free = tcb_ref(tl, tl->free_list);
		tl->free_list = c;
	}
}

void
tcp_flush_add(struct tcp_conn *c)
{
	if (c->flags & (TF_ON_FLUSH | TF_REAP))
		return;
	c->flags |= TF_ON_FLUSH;
	c->flush_next = tcb_ref(tcb_tl(c), tcb_tl(c)->flush_head);
	tcb_tl(c)->flush_head = c;
}

uint32_t
tcp_flow_count(const struct dp_lcore *lc)
{
	return lc->tcp != NULL ? lc->tcp->n_used - lc->tcp->by_state[TCP_ST_CLOSED] : 0;
}

/*
 * What rte_hash (22.11, as created in tables_create) reserves for n entries, over n: a key
 * slot per entry plus one (data pointer + key, rounded up to 16), buckets of 8 entries (64
 * bytes each; the count rounded up to a power of two), as many extension buckets, and the
 * 4-byte free-slot rings of both (their sizes rounded up to a power of two). For 65,536
 * entries: 32 + 8 + 8 + 8 + 1 = 57 bytes (the key ring doubles at a power of two: 53 bytes
 * for 65,535). Checked against rte_malloc's heap statistics in test_tcp.
 */
static uint32_t
hash_bytes_per_entry(uint32_t n)
{
	uint64_t key_slot = RTE_ALIGN_CEIL(sizeof(void *) + sizeof(struct tcp_flow_key), 16);
	uint64_t buckets = rte_align32pow2(n) / 8;
	uint64_t bytes = key_slot * (n + 1) + 2 * buckets * 64 + 4ull * rte_align32pow2(n + 1) +
	    4ull * rte_align32pow2((uint32_t)buckets + 1);

	return (uint32_t)((bytes + n - 1) / n);
}

void
tcp_mem_stats(const struct dp_lcore *lc, struct tcp_mem_stats *out)
{
	const struct tcp_lcore *tl = lc->tcp;
	int i;

	memset(out, 0, sizeof(*out));
	out->tcb_bytes = sizeof(struct tcp_conn);
	if (tl == NULL)
		return;
	out->hash_bytes_per_entry = hash_bytes_per_entry(tl->cfg.max_flows);
	out->sb_bytes_per_flow =
	    (uint32_t)(((uint64_t)tl->n_sbs * sizeof(struct tcp_sb) + tl->cfg.max_flows / 2) /
		tl->cfg.max_flows);
	out->dq_bytes_per_flow =
	    (uint32_t)(((uint64_t)(tl->dq_mask + 1) * sizeof(*tl->dq) + tl->cfg.max_flows / 2) /
		tl->cfg.max_flows);
	out->sb_blocks = tl->n_sbs;
	out->sb_used = tl->sb_used;
	for (i = 0; i < TCP_ST_COUNT; i++)
		out->flows_by_state[i] = tl->by_state[i];
	out->flows = tcp_flow_count(lc);
	out->max_flows = tl->cfg.max_flows;
	out->half_open = tl->half_open;
	out->sndq_mbufs = tl->q_mbufs[TCP_Q_SND];
	out->rcvq_mbufs = tl->q_mbufs[TCP_Q_RCV];
	out->ooo_mbufs = tl->q_mbufs[TCP_Q_OOO];
	out->sndq_bytes = tl->q_bytes[TCP_Q_SND];
	out->rcvq_bytes = tl->q_bytes[TCP_Q_RCV];
	out->ooo_bytes = tl->q_bytes[TCP_Q_OOO];
}
