/*
 * broker_conf.c: the broker's settings (the `dataplane.mqtt` section), read from the gateway
 * config and checked against one table: the parser and broker_config_check() (for programs that
 * fill struct broker_config themselves: the simulator, the tests) take their key, unit and
 * range from the same row, so they cannot disagree.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker_conf.h"
#include "broker_int.h"
#include "mqtt_codec.h"

enum lim_unit {
	LIM_COUNT, /* a plain number */
	LIM_BYTES, /* a size: 64k, 1m, ... */
	LIM_MS,    /* a duration, kept in milliseconds */
	LIM_S,     /* a duration, kept in seconds */
};

struct lim {
	const char *key;   /* in the config */
	const char *field; /* in struct broker_config, for broker_config_check's message */
	size_t off;
	uint8_t width;   /* bytes of the field */
	uint8_t unit;    /* enum lim_unit */
	bool live;       /* a reload changes it on the running broker (else: at the next start) */
	uint64_t lo, hi; /* in the field's unit */
	const char *why; /* said when under lo, if there is more to say than the range */
};

#define LIM(key, field, unit, lo, hi, why)                                              \
	{                                                                               \
		key, #field, offsetof(struct broker_config, field),                     \
		    sizeof(((struct broker_config *)0)->field), unit, true, lo, hi, why \
	}
/* Sizes of what is allocated per broker, connection or session: fixed until a restart. */
#define LIM_RESTART(key, field, unit, lo, hi, why)                                       \
	{                                                                                \
		key, #field, offsetof(struct broker_config, field),                      \
		    sizeof(((struct broker_config *)0)->field), unit, false, lo, hi, why \
	}

static const struct lim lims[] = {
	LIM("max_connections", max_conns, LIM_COUNT, 1, 10000000, NULL),
	LIM("max_sessions", max_sessions, LIM_COUNT, 1, 10000000, NULL),
	LIM("max_subscriptions_per_session", max_subs_per_session, LIM_COUNT, 1, 100000, NULL),
	LIM_RESTART("max_filter_levels", max_filter_levels, LIM_COUNT, 1, 1024, NULL),
	LIM("max_queued_messages", max_queue, LIM_COUNT, 0, 10000000, NULL),
	LIM_RESTART("max_inflight", max_inflight, LIM_COUNT, 1, 65535, NULL),
	LIM("receive_maximum", receive_max, LIM_COUNT, 1, 65535,
	    "the MQTT 5.0 Receive Maximum is at least 1"),
	LIM_RESTART("max_packet_size", max_packet_size, LIM_BYTES, 128, MQTT_MAX_PACKET_SIZE,
	    "under 128 bytes no real client can connect"),
	LIM("max_retained", max_retained, LIM_COUNT, 0, 10000000, NULL),
	LIM("max_retained_bytes", max_retained_bytes, LIM_BYTES, 0, 1ull << 40, NULL),
	LIM("keepalive_max", keepalive_max_s, LIM_S, 0, 65535, NULL),
	LIM_RESTART("topic_alias_max", topic_alias_max, LIM_COUNT, 0, 65535, NULL),
	LIM("topic_alias_out_max", topic_alias_out_max, LIM_COUNT, 0, 65535, NULL),
	LIM("session_expiry_max", session_expiry_max_s, LIM_S, 0, 4294967295ull, NULL),
	LIM("connect_timeout", connect_timeout_ms, LIM_MS, 100, 600000, NULL),
	LIM("sys_interval", sys_interval_ms, LIM_MS, 0, 86400000, NULL),
	LIM("client_id_max", client_id_max, LIM_COUNT, 23, 65535,
	    "MQTT requires client ids of up to 23 bytes to be accepted"),
	LIM("stall_timeout", stall_timeout_ms, LIM_MS, 100, 3600000, NULL),
	LIM_RESTART("state_sync", state_sync_ms, LIM_MS, 0, 600000, NULL),
};

/* enum broker_queue_full, in order */
static const char *const queue_full_names[] = { "hold", "drop-oldest", "drop-new", NULL };

/* The keys of dataplane.mqtt the broker reads (the service's own, enabled and port, are the
 * dataplane's: dp_config.c). scripts/check-config-ref reads this list. */
static const char *const broker_keys[] = { "max_connections", "max_sessions",
	"max_subscriptions_per_session", "max_filter_levels", "max_queued_messages", "max_inflight",
	"receive_maximum", "max_packet_size", "max_retained", "max_retained_bytes", "keepalive_max",
	"topic_alias_max", "topic_alias_out_max", "session_expiry_max", "connect_timeout",
	"sys_interval", "client_id_max", "queue_full", "stall_timeout", "state_dir", "state_sync",
	NULL };

static uint64_t
lim_get(const struct broker_config *cfg, const struct lim *l)
{
	const uint8_t *p = (const uint8_t *)cfg + l->off;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	switch (l->width) {
	case 2:
		memcpy(&v16, p, sizeof(v16));
		return v16;
	case 4:
		memcpy(&v32, p, sizeof(v32));
		return v32;
	default:
		memcpy(&v64, p, sizeof(v64));
		return v64;
	}
}

static void
lim_set(struct broker_config *cfg, const struct lim *l, uint64_t v)
{
	uint8_t *p = (uint8_t *)cfg + l->off;
	uint16_t v16 = (uint16_t)v;
	uint32_t v32 = (uint32_t)v;

	switch (l->width) {
	case 2:
		memcpy(p, &v16, sizeof(v16));
		break;
	case 4:
		memcpy(p, &v32, sizeof(v32));
		break;
	default:
		memcpy(p, &v, sizeof(v));
		break;
	}
}

const char *const *
broker_config_keys(void)
{
	return broker_keys;
}

/* state_dir: absent keeps cfg's (the library's default: none); "" turns it off. */
static void
parse_state_dir(conf_node n, struct broker_config *cfg)
{
	const char *dir = NULL;

	if (conf_get_str(n, "state_dir", NULL, &dir) != 0 || dir == NULL)
		return;
	if (dir[0] != '\0' && dir[0] != '/') {
		conf_error(conf_get(n, "state_dir"), "state_dir must be an absolute path");
		return;
	}
	if (strlen(dir) >= sizeof(cfg->state_dir) - 32) {
		conf_error(conf_get(n, "state_dir"), "state_dir is too long (at most %zu bytes)",
		    sizeof(cfg->state_dir) - 33);
		return;
	}
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", dir);
}

void
broker_config_parse(conf_node n, struct broker_config *cfg)
{
	uint64_t v;
	uint32_t u;
	int e;

	for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		const struct lim *l = &lims[i];
		uint64_t cur = lim_get(cfg, l);

		switch (l->unit) {
		case LIM_COUNT:
			if (conf_get_u32(n, l->key, (uint32_t)cur, (uint32_t)l->lo, (uint32_t)l->hi,
				&u) == 0)
				lim_set(cfg, l, u);
			break;
		case LIM_BYTES:
			if (conf_get_size_bytes(n, l->key, cur, l->lo, l->hi, &v) == 0)
				lim_set(cfg, l, v);
			break;
		case LIM_MS:
			if (conf_get_duration_ms(n, l->key, cur, l->lo, l->hi, &v) == 0)
				lim_set(cfg, l, v);
			break;
		case LIM_S:
			if (conf_get_duration_ms(
				n, l->key, cur * 1000, l->lo * 1000, l->hi * 1000, &v) == 0)
				lim_set(cfg, l, v / 1000);
			break;
		}
	}
	if (conf_get_enum(n, "queue_full", cfg->queue_full, queue_full_names, &e) == 0)
		cfg->queue_full = (uint8_t)e;
	parse_state_dir(n, cfg);
}

int
broker_config_check(const struct broker_config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		const struct lim *l = &lims[i];
		uint64_t v = lim_get(cfg, l);

		if (v >= l->lo && v <= l->hi)
			continue;
		if (err != NULL && errlen > 0) {
			if (v < l->lo && l->why != NULL)
				snprintf(err, errlen, "%s (%s): %s", l->field, l->key, l->why);
			else
				snprintf(err, errlen,
				    "%s (%s): %" PRIu64 " is not in %" PRIu64 "..%" PRIu64,
				    l->field, l->key, v, l->lo, l->hi);
		}
		return -EINVAL;
	}
	if (cfg->queue_full > BROKER_QUEUE_DROP_NEW) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "queue_full: one of hold, drop-oldest, drop-new");
		return -EINVAL;
	}
	return 0;
}

int
broker_config_apply_live(struct broker_config *run, const struct broker_config *next,
    void (*restart)(void *arg, const char *key), void *arg)
{
	int n = 0;

	for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		const struct lim *l = &lims[i];
		uint64_t was = lim_get(run, l), now = lim_get(next, l);

		if (was == now)
			continue;
		if (!l->live) {
			if (restart != NULL)
				restart(arg, l->key);
			continue;
		}
		lim_set(run, l, now);
		n++;
	}
	if (run->queue_full != next->queue_full) {
		run->queue_full = next->queue_full;
		n++;
	}
	return n;
}

int
broker_reconfigure(struct broker *b, const struct broker_config *next, uint64_t now_ms)
{
	uint32_t sys_was = b->cfg.sys_interval_ms;
	int n = broker_config_apply_live(&b->cfg, next, NULL, NULL);

	b->now_ms = now_ms;
	if (n == 0)
		return 0;
	/* a new $SYS period counts from now; 0 stops it, and a later reload starts it again */
	if (b->cfg.sys_interval_ms != sys_was)
		b->next_sys_ms = now_ms + b->cfg.sys_interval_ms;
	broker_count(b, BROKER_C_CONFIG_APPLIED);
	return n;
}
