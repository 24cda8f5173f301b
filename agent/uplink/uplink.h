/*
 * uplink.h: where the agent's messages go. The poller calls uplink_submit() and never learns
 * what is behind it: the cloud MQTT client (5.0 or 3.1.1, TLS; mqtt_client.c over mqttc.h) or
 * a JSON-lines sink (jsonl_sink.c, for tests and debugging). Commands from the other side come back through cmd_fn.
 * Everything runs on the agent's event loop and never blocks.
 */
#ifndef EDGEGW_UPLINK_H
#define EDGEGW_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mqtt_conf.h"
#include "uplink_counters.h"

struct agent_loop;
struct uplink;

typedef void (*uplink_cmd_fn)(void *arg, const char *topic, const uint8_t *payload, size_t len);

struct uplink_stats {
	uint64_t submitted, sent, acked, dropped, resent, connects, disconnects, commands;
	uint64_t queued; /* messages waiting (a gauge) */
	bool connected;
	bool has_link;                 /* link[] is filled (the mqtt backend) */
	uint64_t link[UPLINK_C_COUNT]; /* the cloud link's counters, uplink_stats.def */
};

/* The backend operations (one table per implementation, as libmodbus does per transport). */
struct uplink_ops {
	const char *name;
	int (*submit)(struct uplink *u, const char *topic, const void *payload, size_t len,
	    uint8_t qos, bool retain);
	void (*stats)(const struct uplink *u, struct uplink_stats *out);
	void (*destroy)(struct uplink *u);
};

struct uplink {
	const struct uplink_ops *ops;
	uplink_cmd_fn cmd_fn;
	void *cmd_arg;
};

int uplink_mqtt_create(struct uplink **out, struct agent_loop *loop,
    const struct uplink_mqtt_conf *c, uplink_cmd_fn fn, void *arg);
/* path "-" is stdout; cmd_path (optional) is a FIFO or file read line by line as commands on
 * cmd_topic. */
int uplink_jsonl_create(struct uplink **out, struct agent_loop *loop, const char *path,
    const char *cmd_path, const char *cmd_topic, uplink_cmd_fn fn, void *arg);

static inline int
uplink_submit(
    struct uplink *u, const char *topic, const void *payload, size_t len, uint8_t qos, bool retain)
{
	return u->ops->submit(u, topic, payload, len, qos, retain);
}

static inline void
uplink_get_stats(const struct uplink *u, struct uplink_stats *out)
{
	u->ops->stats(u, out);
}

static inline void
uplink_destroy(struct uplink *u)
{
	if (u != NULL)
		u->ops->destroy(u);
}

#endif
