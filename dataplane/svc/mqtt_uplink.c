/*
 * mqtt_uplink.c: the broker's uplink ops backed by the lcore's dpchan client (mqtt_uplink.h).
 * The client never blocks: records are copied into its arena at submit and leave in one
 * sendmsg per poll; its answers come back through durable/ready on the same lcore.
 */
#include "mqtt_uplink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "dpchan_client.h"
#include "rules.h"

struct mqtt_uplink {
	struct broker *b;
	struct dpchan_client *c;
	uint64_t now_ms;
};

static const struct rules *rules;
static struct dpchan_conf conf; /* enabled false until configured */
static uint64_t boot_id;

void
mqtt_uplink_configure(const struct dpchan_conf *c)
{
	struct timespec ts;

	conf = *c;
	if (getrandom(&boot_id, sizeof(boot_id), GRND_NONBLOCK) != (ssize_t)sizeof(boot_id)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		boot_id = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
	}
}

bool
mqtt_uplink_enabled(void)
{
	return conf.enabled;
}

void
mqtt_uplink_set_rules(const struct rules *r)
{
	rules = r;
}

enum broker_uplink_class
mqtt_uplink_classify(const struct rules *r, const char *topic, size_t len, uint8_t qos)
{
	const struct rule *rule;

	if (r == NULL)
		return BROKER_UPLINK_DURABLE;
	if ((rule = rules_match(r, topic, len)) == NULL)
		return BROKER_UPLINK_NONE;
	return rule->durable && qos > 0 ? BROKER_UPLINK_DURABLE : BROKER_UPLINK_BEST_EFFORT;
}

static enum broker_uplink_class
op_wants(void *uctx, const char *topic, size_t len, uint8_t qos)
{
	(void)uctx;
	return mqtt_uplink_classify(rules, topic, len, qos);
}

static int
op_room(void *uctx, size_t topic_len, size_t payload_len)
{
	struct mqtt_uplink *u = uctx;

	return dpchan_client_room(u->c, topic_len, payload_len);
}

static int
op_submit(void *uctx, uint64_t ref, uint8_t qos, bool retain, const char *topic, size_t topic_len,
    const uint8_t *payload, size_t payload_len)
{
	struct mqtt_uplink *u = uctx;
	struct dpchan_rec r = { .ref = ref,
		.qos = qos,
		.retain = retain,
		.topic = topic,
		.topic_len = (uint16_t)topic_len,
		.payload = payload,
		.payload_len = (uint32_t)payload_len };

	if (topic_len > UINT16_MAX || payload_len > UINT32_MAX)
		return -EMSGSIZE;
	return dpchan_client_submit(u->c, &r);
}

static const struct broker_uplink_ops uplink_ops = {
	.wants = op_wants,
	.room = op_room,
	.submit = op_submit,
};

static void
on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct mqtt_uplink *u = arg;

	broker_uplink_durable(u->b, first, last, status, u->now_ms);
}

static void
on_ready(void *arg)
{
	struct mqtt_uplink *u = arg;

	broker_uplink_ready(u->b, u->now_ms);
}

/* A cloud message the agent passes down: published from the gateway itself, to this lcore's
 * subscribers and the other lcores' (the agent sends each to one lcore only). */
static int
on_down(void *arg, const struct dpchan_rec *r)
{
	struct mqtt_uplink *u = arg;

	return broker_admin_publish(
	    u->b, r->topic, r->topic_len, r->payload, r->payload_len, r->qos, r->retain, u->now_ms);
}

static const struct dpchan_client_ops client_ops = {
	.durable = on_durable,
	.ready = on_ready,
	.down = on_down,
};

struct mqtt_uplink *
mqtt_uplink_start(struct broker *b, uint32_t lcore)
{
	const struct dpchan_conf *c = &conf;
	struct mqtt_uplink *u = calloc(1, sizeof(*u));
	struct dpchan_client_config cc = {
		.path = c->path,
		.boot_id = boot_id,
		.lcore = lcore,
		.pending_bytes = c->pending_bytes,
		.reconnect_max_ms = c->reconnect_max_ms,
	};

	if (u == NULL)
		return NULL;
	u->b = b;
	if ((u->c = dpchan_client_new(&cc, &client_ops, u)) == NULL ||
	    broker_uplink_attach(b, &uplink_ops, u, c->max_pending) != 0) {
		mqtt_uplink_stop(u);
		return NULL;
	}
	return u;
}

void
mqtt_uplink_poll(struct mqtt_uplink *u, uint64_t now_ms)
{
	u->now_ms = now_ms;
	dpchan_client_poll(u->c, now_ms);
}

void
mqtt_uplink_stop(struct mqtt_uplink *u)
{
	if (u == NULL)
		return;
	if (u->b != NULL)
		broker_uplink_detach(u->b);
	dpchan_client_free(u->c);
	free(u);
}

uint64_t
mqtt_uplink_counter(const struct mqtt_uplink *u, enum dpchan_counter k)
{
	return u != NULL ? dpchan_client_counter(u->c, k) : 0;
}
