/*
 * downlink.c: cloud messages to the dataplane's broker (downlink.h): the downlink rules map the
 * cloud topic, the channel's server sends one DOWN record to one lcore; while it cannot, the
 * message waits on disk in a spool of its own (lib/spool, one class, no consumer but this) and
 * leaves in order once it can. Neighbours: main.c (the uplink's message hook), dpchan_link.c.
 */
#include "downlink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "store.h"

#define DOWN_WAIT_DURABLE_MS 2000 /* longest the loop waits for a spooled message's fdatasync */
#define DOWN_FLAG_RETAIN     0x01

struct downlink {
	const struct rules *rules;
	struct dpchan_server *srv;
	struct store *st;
	struct spool *sp; /* NULL: no spool, a message the channel cannot take now is not owned */
	bool recovering;  /* what the spool held at open has not all been handed over yet */
	uint64_t unsent;  /* spooled since, not handed over yet */
	uint8_t *buf;     /* a spooled record's topic and payload */
	char dir[600];
};

static void
on_tick(void *arg, uint64_t now_ms)
{
	(void)now_ms;
	downlink_replay(arg);
}

static int
open_spool(struct downlink *d, const struct spool_config *base)
{
	struct spool_config c = *base;
	int rc;

	if (snprintf(d->dir, sizeof(d->dir), "%s/downlink",
		base->dir ? base->dir : SPOOL_DEFAULT_DIR) >= (int)sizeof(d->dir))
		return -ENAMETOOLONG;
	c.dir = d->dir;
	c.max_bytes = (base->max_bytes ? base->max_bytes : (1ull << 30)) / 16;
	if (c.max_bytes < (1u << 20))
		c.max_bytes = 1u << 20;
	c.segment_bytes = 0;
	c.policy_set = false;
	c.on_durable = NULL;
	if ((rc = spool_open(&c, &d->sp)) != 0 || (rc = spool_start_flusher(d->sp)) != 0) {
		log_err("downlink: spool %s: %s", d->dir, strerror(-rc));
		return rc;
	}
	d->recovering = true;
	return 0;
}

int
downlink_open(struct downlink **out, struct agent_loop *loop, const struct rules *r,
    struct dpchan_server *srv, const struct spool_config *spool_base, struct store *st)
{
	struct downlink *d = calloc(1, sizeof(*d));
	int rc;

	if (d == NULL || (d->buf = malloc(DPCHAN_FRAME_MAX)) == NULL) {
		free(d);
		return -ENOMEM;
	}
	d->rules = r;
	d->srv = srv;
	d->st = st;
	if ((spool_base != NULL && (rc = open_spool(d, spool_base)) != 0) ||
	    (rc = agent_loop_add_tick(loop, on_tick, d)) != 0) {
		downlink_close(d);
		return rc;
	}
	*out = d;
	return 0;
}

void
downlink_set_rules(struct downlink *d, const struct rules *r)
{
	d->rules = r;
}

/* On disk (fdatasync) or not at all: 0, or a negative errno. */
static int
spool_put(struct downlink *d, const struct dpchan_rec *r)
{
	struct spool_rec_in in = { .cls = SPOOL_NORMAL,
		.qos = r->qos,
		.flags = r->retain ? DOWN_FLAG_RETAIN : 0,
		.topic = r->topic,
		.topic_len = r->topic_len,
		.payload = r->payload,
		.payload_len = r->payload_len };
	uint64_t seq;
	int rc;

	if (d->sp == NULL)
		return -ENOTCONN;
	if ((rc = spool_append(d->sp, &in, &seq)) != 0)
		return rc;
	d->unsent++; /* in the spool now, whatever the commit says: replay reads what is durable */
	rc = spool_wait_durable(d->sp, seq, DOWN_WAIT_DURABLE_MS);
	return rc == 1 ? 0 : rc == 0 ? -ETIMEDOUT : rc;
}

int
downlink_deliver(struct downlink *d, const char *topic, const uint8_t *payload, size_t len,
    uint8_t qos, bool retain)
{
	const struct down_rule *rule = rules_down_match(d->rules, topic, strlen(topic));
	struct dpchan_rec r = {
		.retain = retain, .payload = payload, .payload_len = (uint32_t)len
	};
	char local[256];
	int n, rc;

	if (rule == NULL)
		return -ENOENT;
	store_count(d->st, STORE_C_down_received, 1);
	n = rules_down_render(d->rules, rule, topic, strlen(topic), local, sizeof(local));
	if (n < 0) {
		store_count(d->st, STORE_C_down_bad_topic, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "downlink: %s: no local topic under the rule of line %u (%s); dropped", topic,
		    rule->line, strerror(-n));
		return 0;
	}
	if (DPCHAN_HDR_LEN + dpchan_rec_size(true, (size_t)n, len) > DPCHAN_FRAME_MAX) {
		store_count(d->st, STORE_C_down_too_large, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "downlink: %s: %zu bytes, over the channel's frame (%u); dropped", topic, len,
		    DPCHAN_FRAME_MAX);
		return 0;
	}
	r.qos = down_rule_qos(rule, qos);
	r.topic = local;
	r.topic_len = (uint16_t)n;
	downlink_replay(d); /* older ones first */
	if (!d->recovering && d->unsent == 0 && (rc = dpchan_server_down(d->srv, &r)) == 0) {
		store_count(d->st, STORE_C_down_to_dataplane, 1);
		return 0;
	}
	if ((rc = spool_put(d, &r)) == 0) {
		store_count(d->st, STORE_C_down_spooled, 1);
		return 0;
	}
	if (qos == 0) {
		store_count(d->st, STORE_C_down_lost, 1);
		return 0;
	}
	store_count(d->st, STORE_C_down_not_owned, 1);
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "downlink: %s: the dataplane channel cannot take it and the spool could not (%s); "
	    "not acknowledged (the cloud sends it again)",
	    topic, strerror(-rc));
	return rc;
}

void
downlink_replay(struct downlink *d)
{
	struct spool_rec rec;
	unsigned handed = 0;
	int rc;

	if (d->sp == NULL || dpchan_server_connected(d->srv) == 0)
		return; /* nothing to hand over, or nobody to take it */
	while (d->recovering || d->unsent > 0) {
		rc = spool_read_next(d->sp, &rec, d->buf, DPCHAN_FRAME_MAX);
		if (rc == 0) {
			d->recovering = false; /* what is left is not durable yet: next time */
			break;
		}
		if (rc < 0) {
			LOG_RATELIMITED(
			    LOG_LVL_WARN, 60, "downlink: spool read: %s", strerror(-rc));
			break;
		}
		struct dpchan_rec r = { .qos = rec.qos,
			.retain = rec.flags & DOWN_FLAG_RETAIN,
			.topic = rec.topic,
			.topic_len = rec.topic_len,
			.payload = rec.payload,
			.payload_len = rec.payload_len };
		rc = dpchan_server_down(d->srv, &r);
		if (rc == -ENOTCONN || rc == -EAGAIN) {
			spool_rewind(d->sp); /* the same record first, next time */
			break;
		}
		store_count(d->st, rc == 0 ? STORE_C_down_replayed : STORE_C_down_too_large, 1);
		spool_ack(d->sp, rec.seq);
		if (d->unsent > 0)
			d->unsent--;
		handed++;
	}
	if (handed > 0)
		spool_commit(d->sp); /* the releases: a restart does not hand them over again */
}

void
downlink_close(struct downlink *d)
{
	if (d == NULL)
		return;
	spool_close(d->sp);
	free(d->buf);
	free(d); /* the loop's tick still names it: the loop does not run again */
}
