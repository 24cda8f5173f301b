/*
 * store.h: store and forward in the agent. The store owns the durable spool (lib/spool) and the
 * uplink rules (lib/rules): producers (the Modbus poller's readings, and the dataplane's sensor
 * messages through the agent's side of the dataplane channel) call store_submit(); the rules say
 * whether and under which cloud topic, QoS and class a message goes up; the record is appended to
 * the spool; once durable it is drained into the uplink (uplink.h) with its sequence number as
 * ref, and released only when the cloud acknowledged it (PUBACK, PUBCOMP; QoS 0: once written).
 * QoS 2 phases are recorded in the spool before the bytes that announce them leave, so a restart
 * resumes each exchange under its packet id (exactly once). Docs: docs/uplink.md, docs/spool.md.
 *
 * Threads: everything here runs on the agent's loop thread. The spool commits on its own flusher
 * thread, the commits the uplink asks for to make QoS 2 phases durable included (the loop never
 * waits for an fdatasync); its reports hop to the loop through store_event_fd(): the owner
 * watches that fd (EPOLLIN) and calls store_process() when it is readable, and on each tick.
 */
#ifndef EDGEGW_UPLINK_STORE_H
#define EDGEGW_UPLINK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "counter_kind.h"
#include "rules.h"
#include "spool.h"

struct uplink;
struct store;

#define STORE_DURABLE_SUBS_MAX 4     /* store_on_durable() registrations */
#define STORE_MAX_INFLIGHT_DEF 1000  /* records given to the uplink and not acknowledged */
#define STORE_MAX_INFLIGHT_MAX 65535 /* the MQTT client's window is 65535 packet ids */
#define STORE_FLAG_RETAIN      0x01  /* spool record flag */
#define STORE_FLAG_ORIGIN      0x02  /* spool record flag: the payload starts with an origin */
#define STORE_FLAG_QOS2 \
	0x04 /* spool record flag: with an origin, its producer sent it at
				     * QoS 2 (the origin is held until released: dpchan_q2.h) */

/* Where a record came from, kept in the spool before its payload (STORE_FLAG_ORIGIN) so that a
 * producer that sends it again after the agent restarted is recognised and it is not stored
 * twice: the dataplane's lcores send again every record they were not told is durable, and
 * (producer, lane, ref) is their (boot id, lcore, ref). The uplink never sees it. */
struct store_origin {
	uint64_t producer;
	uint32_t lane;
	uint32_t rsv; /* 0 */
	uint64_t ref;
};
#define STORE_ORIGIN_LEN 24u
_Static_assert(sizeof(struct store_origin) == STORE_ORIGIN_LEN, "origin is 24 bytes on disk");

/* The gateway config's `uplink:` section as the agent uses it: the rules (lib/rules) and the
 * spool's settings (`uplink.spool`, lib/spool's keys). */
struct store_conf {
	struct rules *rules;
	struct spool_config spool; /* spool.dir points at dir below */
	char dir[512];
	bool spool_set; /* `uplink.spool` was written (a jsonl uplink uses a spool only then) */
	/* `uplink.drain`: records made durable less than live_age_ms ago are live and go ahead of
	 * the older ones (the backlog) within their class; the backlog holds at most
	 * backlog_percent % of max_inflight, and always has that much while there is one. live_age_ms
	 * 0: no live lane, strict spool order. docs/uplink.md#live-data-and-backlog */
	uint64_t live_age_ms;
	uint32_t backlog_percent;
	/* `uplink.drain.max_inflight`: records given to the uplink and not acknowledged, at most
	 * (the agent also keeps it within half the MQTT client's max_queue) */
	uint32_t max_inflight;
	bool max_inflight_set; /* written in the config (lowered with a warning, not silently) */
	uint64_t (*now_ms)(void *arg); /* tests; NULL: the monotonic clock */
	void *now_arg;
};
#define STORE_LIVE_AGE_MS_DEF     10000
#define STORE_BACKLOG_PERCENT_DEF 25

/* Parse `uplink:` (absent: the default rules, the default spool). 0, or -1 with the errors
 * recorded in the document (file:line:col). *out is allocated; free with store_conf_free(). */
int store_conf_parse(conf_node uplink, struct store_conf **out);
void store_conf_free(struct store_conf *c);

/* Open the store: takes conf's rules (conf->rules becomes NULL) and, when use_spool, opens and
 * recovers the spool in conf->spool.dir and starts its flusher. Without a spool, store_submit()
 * sends straight to the uplink (nothing is durable: *seq is 0 and on_durable is never called).
 * Registers itself as the uplink's delivery hooks. max_inflight bounds what is given to the
 * uplink and not yet acknowledged (0: STORE_MAX_INFLIGHT_DEF). Returns 0 or a negative errno
 * (the spool's: -EBUSY when another process holds the directory, -EPROTONOSUPPORT, ...). */
int store_open(struct store **out, struct store_conf *conf, bool use_spool, struct uplink *up,
    size_t max_inflight);
/* Before the loop runs (before the uplink first connects): puts every record that was in flight
 * with a QoS 2 phase back into the uplink under its packet id, then starts draining. */
void store_start(struct store *s);
/* Commits what is buffered and closes the spool; destroy the uplink first (no reports after). */
void store_close(struct store *s);
/* Frees without committing what is buffered or any further I/O: what a SIGKILL leaves (tests). */
void store_abandon(struct store *s);

/* Submit a message from a local producer. local_topic is the topic as the producer named it
 * (NUL-terminated); qos and retain are the message's own. Returns 0 with *seq the spool's
 * sequence number (the message is durable once the on_durable report covering seq says status
 * 0), -ENOENT when no rule matches (not sent; *seq 0), -ENOBUFS when the spool cannot take it now
 * (full, or the disk is behind: hold the producer and retry; never acknowledge), -ENAMETOOLONG or
 * -EINVAL when the cloud topic cannot be made, -EMSGSIZE when the payload is over the spool's
 * limit. Never blocks. */
int store_submit(struct store *s, const char *local_topic, const void *payload, size_t len,
    uint8_t qos, bool retain, uint64_t *seq);
/* The same, the record's origin kept with it (NULL: none). */
int store_submit_from(struct store *s, const char *local_topic, const void *payload, size_t len,
    uint8_t qos, bool retain, const struct store_origin *origin, uint64_t *seq);
/* The origins of the records found in the spool at open that still count (on disk, not voided
 * by a failed commit; acknowledged by the cloud or not): each to fn once (qos2: its producer
 * sent it at QoS 2; acked: the cloud acknowledged it), then forgotten. Call after store_open,
 * before the producers connect. Returns how many. */
typedef void (*store_origin_fn)(void *arg, const struct store_origin *o, bool qos2, bool acked);
size_t store_recovered_origins(struct store *s, store_origin_fn fn, void *arg);

/* Called on the loop thread once per commit, for the range of sequence numbers it settled:
 * status 0 (every record in [first_seq, last_seq] is on disk) or a negative errno (none of them
 * is: do not acknowledge them; they are never sent). Ranges come in increasing order and may
 * cover sequence numbers of other producers. */
typedef void (*store_durable_fn)(void *arg, uint64_t first_seq, uint64_t last_seq, int status);
/* Register fn (up to STORE_DURABLE_SUBS_MAX): 0, or -ENOSPC. */
int store_on_durable(struct store *s, store_durable_fn fn, void *arg);

/* The fd to watch (EPOLLIN), and what to call when it is readable and on each tick. */
int store_event_fd(const struct store *s);
void store_process(struct store *s);

/* ---- counters (store_stats.def) ---- */
enum store_counter {
#define STORE_C(n, k, d) STORE_C_##n,
#include "store_stats.def"
#undef STORE_C
	STORE_C_COUNT
};
extern const char *const store_counter_names[];
extern const char *const store_counter_help[];
extern const enum counter_kind store_counter_kind[];

struct store_stats {
	uint64_t c[STORE_C_COUNT];
	bool has_spool;
	uint64_t spool[SPOOL_C_N]; /* lib/spool/spool_counters.def */
	uint64_t oldest_ms;        /* append time of the oldest record not yet acked, 0: none */
};
void store_get_stats(struct store *s, struct store_stats *out);
/* Count for a neighbour that reports in the store's table (the downlink, agent/downlink.h). */
void store_count(struct store *s, enum store_counter c, uint64_t n);
const struct rules *store_rules(const struct store *s);
/* The spool's directory; NULL without a spool. */
const char *store_spool_dir(const struct store *s);
/*
 * A reload's new rules (the store takes r): the readings and the dataplane's records submitted
 * from now on go by them. The set they replace is kept until the next call, for the records
 * the dataplane classified under it: a record it awaits a durability answer for (an origin with
 * ref != 0) that no new rule matches is stored under the rule of the previous set that matches
 * it, so that a message the dataplane took under the old rules (it reloads on its own signal,
 * before or after the agent) is not acknowledged and lost. Loop thread only (as every call).
 */
void store_set_rules(struct store *s, struct rules *r);

#endif
