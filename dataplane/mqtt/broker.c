/*
 * broker.c: one broker instance (one per worker lcore): its configuration defaults, creation
 * and teardown, its counters and gauges. The rest of it, by job: conn.c (connections: open,
 * hold, kill, reap), read_handle.c (the input loop and dispatch), send.c and send_publish.c
 * (what goes out), timer.c (deadlines, broker_tick), sys_tree.c ($SYS).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "broker_int.h"

static const char *const counter_names[] = {
#define BROKER_C(name, kind, desc) #name,
#include "broker_counters.def"
#undef BROKER_C
};

static const char *const counter_descs[] = {
#define BROKER_C(name, kind, desc) desc,
#include "broker_counters.def"
#undef BROKER_C
};

void
broker_config_defaults(struct broker_config *cfg)
{
	*cfg = (struct broker_config){
		.max_conns = 10000,
		.max_sessions = 20000,
		.max_subs_per_session = 64,
		.max_filter_levels = 32,
		.max_queue = 1000,
		.max_inflight = 32,
		.receive_max = 32,
		.max_packet_size = 256 * 1024,
		.max_retained = 10000,
		.max_retained_bytes = 64ull << 20,
		.keepalive_max_s = 3600,
		.topic_alias_max = 16,
		.topic_alias_out_max = 16,
		.session_expiry_max_s = 86400,
		.connect_timeout_ms = 10000,
		.sys_interval_ms = 10000,
		.client_id_max = 128,
		.xlcore_claim_timeout_ms = 1000,
		.stall_timeout_ms = 30000,
		.queue_full = BROKER_QUEUE_HOLD,
	};
}

/* The client id hash's key: random per instance (getrandom), so ids cannot be chosen to
 * collide. Without randomness (an old kernel), the clock and an address: still not
 * guessable from outside in practice. */
static void
hash_key(uint64_t key[2])
{
	struct timespec ts;

	if (getrandom(key, 2 * sizeof(*key), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(*key)))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	key[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)key;
	key[1] = (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)(uintptr_t)&ts;
}

struct broker *
broker_create(
    const struct broker_config *cfg, const struct broker_transport_ops *ops, uint64_t now_ms)
{
	struct broker *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	if (cfg != NULL)
		b->cfg = *cfg;
	else
		broker_config_defaults(&b->cfg);
	if (b->cfg.max_inflight == 0)
		b->cfg.max_inflight = 1;
	if (b->cfg.max_packet_size == 0 || b->cfg.max_packet_size > MQTT_MAX_PACKET_SIZE)
		b->cfg.max_packet_size = MQTT_MAX_PACKET_SIZE;
	if (b->cfg.receive_max == 0)
		b->cfg.receive_max = 1;
	if (b->cfg.xlcore_claim_timeout_ms == 0)
		b->cfg.xlcore_claim_timeout_ms = 1000;
	if (b->cfg.stall_timeout_ms == 0)
		b->cfg.stall_timeout_ms = 30000;
	b->ops = ops;
	b->now_ms = b->started_ms = now_ms;
	b->wheel_ms = now_ms - now_ms % BROKER_WHEEL_MS;
	b->next_sys_ms = now_ms + b->cfg.sys_interval_ms;
	/* Straddling header fields and a SUBSCRIBE's filter block are gathered here. */
	b->scratch_len = b->cfg.max_packet_size < 65536 ? b->cfg.max_packet_size + 4096 : 69632;
	b->scratch = malloc(b->scratch_len);
	b->tree =
	    mqtt_topic_tree_create(b->cfg.max_filter_levels ? b->cfg.max_filter_levels : 32, NULL);
	b->retained = broker_retain_create();
	b->sess_buckets = BROKER_SESS_HASH_MIN;
	b->sess_hash = calloc(b->sess_buckets, sizeof(*b->sess_hash));
	hash_key(b->sess_key);
	if (b->scratch == NULL || b->tree == NULL || b->retained == NULL || b->sess_hash == NULL) {
		broker_destroy(b);
		return NULL;
	}
	return b;
}

void
broker_destroy(struct broker *b)
{
	if (b == NULL)
		return;
	b->xops = NULL;          /* shutting down: nothing more to tell the other instances */
	broker_persist_close(b); /* first: the teardown below is no state change */
	while (b->conns != NULL) {
		struct broker_conn *c = b->conns;

		b->conns = c->next;
		if (c->s != NULL)
			c->s->conn = NULL;
		broker_conn_free(c);
	}
	b->held = NULL; /* freed above: the sessions' teardown below must not release them */
	b->n_held = 0;
	for (uint32_t i = 0; b->sess_hash != NULL && i < b->sess_buckets; i++)
		while (b->sess_hash[i] != NULL) {
			broker_will_clear(b->sess_hash[i]); /* shutting down: no wills */
			broker_session_destroy(b->sess_hash[i]);
		}
	while (b->groups != NULL) { /* groups kept only for other instances' members */
		struct share_group *g = b->groups;

		b->groups = g->next;
		free(g->remote);
		free(g->filter);
		free(g);
	}
	for (uint32_t i = 0; i < BROKER_REPLAY; i++)
		broker_msg_unref(b->replay[i]);
	broker_xlcore_fini(b);
	broker_uplink_free(b); /* the connections are gone: nothing to tell them */
	broker_retain_destroy(b->retained);
	free(b->sess_hash);
	broker_msg_cache_drain();
	mqtt_topic_tree_destroy(b->tree);
	free(b->scratch);
	free(b->route_subs);
	free(b->iov);
	free(b);
}

bool
broker_xlcore_paused(const struct broker *b)
{
	return b->n_over > 0;
}

void
broker_gauges_get(const struct broker *b, struct broker_gauges *g)
{
	*g = (struct broker_gauges){ .conns = b->n_conns,
		.sessions = b->n_sessions,
		.subscriptions = b->n_subs,
		.windows = b->n_windows,
		.qos2_tables = b->n_qos2_tables,
		.cold = b->n_cold,
		.queued = b->n_queued,
		.held = b->n_held,
		.xpending = b->n_xpend,
		.xoutbox = b->n_xout };
}

uint64_t
broker_counter_get(const struct broker *b, enum broker_counter c)
{
	return c < BROKER_C_COUNT ? b->cnt[c] : 0;
}

const char *
broker_counter_name(enum broker_counter c)
{
	return c < BROKER_C_COUNT ? counter_names[c] : "?";
}

const char *
broker_counter_desc(enum broker_counter c)
{
	return c < BROKER_C_COUNT ? counter_descs[c] : "?";
}

enum counter_kind
broker_counter_kind(enum broker_counter c)
{
	static const enum counter_kind kinds[] = {
#define BROKER_C(name, kind, desc) COUNTER_KIND_##kind,
#include "broker_counters.def"
#undef BROKER_C
	};

	return c < BROKER_C_COUNT ? kinds[c] : COUNTER_KIND_INFO;
}
