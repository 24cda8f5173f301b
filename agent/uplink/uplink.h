/*
 * uplink.h: where the agent's messages go: the cloud MQTT client (5.0 or 3.1.1, TLS;
 * mqtt_client.c over mqttc.h) or a JSON-lines sink (jsonl_sink.c, for tests and debugging).
 * The store (store.h) drains the spool into it with uplink_send(), naming each message by its
 * spool sequence number (ref) and hearing back through the delivery hooks: the QoS 2 phases to
 * record, when to make them durable, and when the cloud took a message. uplink_submit() sends
 * outside the store (command responses: in memory only). Commands from the other side come back
 * through cmd_fn. Everything runs on the agent's event loop and never blocks.
 */
#ifndef EDGEGW_UPLINK_H
#define EDGEGW_UPLINK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mqtt_conf.h"
#include "uplink_counters.h"

struct agent_loop;
struct uplink;

/* A message from the cloud on a subscribed topic (the command topic, the downlink filters;
 * packet_id: its QoS 2 packet id, else 0). Returns 0 when the gateway owns it (it is
 * acknowledged to the cloud), < 0 when not (a QoS 1/2 message is not acknowledged: the cloud
 * sends it again after the next reconnect), or UPLINK_OWN_LATER (QoS 1/2) when that is
 * known later: then uplink_owned() with token says so, on the loop, after this returned. */
typedef int (*uplink_cmd_fn)(void *arg, const char *topic, const uint8_t *payload, size_t len,
    uint8_t qos, bool retain, uint16_t packet_id, uint64_t token);
#define UPLINK_OWN_LATER 1

/* QoS 2 from the cloud: where the packet ids of the messages the gateway owns are kept until
 * their PUBREL (the downlink, downlink_q2.h): released() forgets one (0: all, the cloud lost the
 * session); < 0: not forgotten (no PUBCOMP yet); UPLINK_OWN_LATER (an id): uplink_released()
 * says when it is, on disk. */
struct uplink_q2_in {
	void *arg;
	int (*released)(void *arg, uint16_t packet_id);
};

struct uplink_stats {
	uint64_t submitted, sent, acked, dropped, resent, connects, disconnects, commands;
	uint64_t queued; /* messages waiting (a gauge) */
	bool connected;
	bool has_link;                 /* link[] is filled (the mqtt backend) */
	uint64_t link[UPLINK_C_COUNT]; /* the cloud link's counters, uplink_stats.def */
};

/* QoS 2 towards the cloud: where a message stands (what the store records before the bytes that
 * announce it leave, and what it hands back after a restart). */
enum uplink_phase {
	UPLINK_PHASE_PUBLISHED = 1, /* PUBLISH sent under packet_id, no PUBREC yet */
	UPLINK_PHASE_RELEASED,      /* PUBREC received, PUBREL sent, no PUBCOMP yet */
};

/* The end of a sync (uplink_delivery.sync): status 0, every mark before it is durable. */
typedef void (*uplink_synced_fn)(void *arg, int status);

/* What a backend reports about messages sent with a ref (uplink_send; ref 0: nothing). */
struct uplink_delivery {
	void *arg;
	/* A QoS 2 message reached a phase; nonzero: not recorded (counted by the backend). */
	int (*mark)(void *arg, uint64_t ref, uint16_t packet_id, enum uplink_phase ph);
	/* Start making every mark so far durable, without waiting (the commit runs on the spool's
	 * flusher thread): done(done_arg, status) follows on the loop thread, never from inside
	 * this call. The bytes the marks announce wait for it. 0: started; < 0: not (no done). */
	int (*sync)(void *arg, uplink_synced_fn done, void *done_arg);
	/* The cloud took the message (reason 0; QoS 0: once written) or refused it for good
	 * (reason >= 0x80): either way the backend is done with it. */
	void (*acked)(void *arg, uint64_t ref, uint8_t reason);
};

/* The backend operations (one table per implementation, as libmodbus does per transport). */
struct uplink_ops {
	const char *name;
	/* Queue a message; ref != 0 names it in the delivery reports. -ENOBUFS: full, try later;
	 * other errors: the message can never be sent (too large, bad topic). */
	int (*send)(struct uplink *u, const char *topic, const void *payload, size_t len,
	    uint8_t qos, bool retain, uint64_t ref);
	/* Put back a QoS 1/2 message that was in flight before a restart under its packet id
	 * (optional: NULL means send it again as new). Only before the first connect. */
	int (*restore)(struct uplink *u, const char *topic, const void *payload, size_t len,
	    uint8_t qos, bool retain, uint64_t ref, uint16_t packet_id, enum uplink_phase ph);
	/* Messages given and not done yet (queued or in flight). */
	size_t (*backlog)(const struct uplink *u);
	void (*stats)(const struct uplink *u, struct uplink_stats *out);
	/* Subscribe a cloud filter too (the downlink rules), at every connect (optional: NULL
	 * for a backend without downlink). 0 or a negative errno. */
	int (*subscribe)(struct uplink *u, const char *filter, uint8_t qos);
	/* No longer (a reload removed its rule): unsubscribed now when connected (optional). */
	int (*unsubscribe)(struct uplink *u, const char *filter);
	/* A QoS 2 packet id the cloud sent, owned and not released before a restart (optional):
	 * a resend under it is answered, not delivered again. Before the first connect. */
	void (*restore_in)(struct uplink *u, uint16_t packet_id);
	/* The PUBREL q2in.released answered UPLINK_OWN_LATER for: forgotten on disk (rc 0) or not
	 * (optional, as owned). */
	void (*released)(struct uplink *u, uint16_t packet_id, int rc);
	/* A cloud message cmd_fn answered UPLINK_OWN_LATER for is owned (rc 0) or will not be
	 * (optional: a backend whose cmd_fn never sees QoS 1/2). */
	void (*owned)(struct uplink *u, uint64_t token, uint8_t qos, uint16_t packet_id, int rc);
	void (*destroy)(struct uplink *u);
};

struct uplink {
	const struct uplink_ops *ops;
	uplink_cmd_fn cmd_fn;
	void *cmd_arg;
	struct uplink_delivery dlv; /* set by the store; all NULL: no reports */
	struct uplink_q2_in q2in;   /* set by the downlink; NULL released: none kept */
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
	return u->ops->send(u, topic, payload, len, qos, retain, 0);
}

static inline int
uplink_send(struct uplink *u, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref)
{
	return u->ops->send(u, topic, payload, len, qos, retain, ref);
}

static inline int
uplink_subscribe(struct uplink *u, const char *filter, uint8_t qos)
{
	return u->ops->subscribe != NULL ? u->ops->subscribe(u, filter, qos) : -ENOTSUP;
}

static inline int
uplink_unsubscribe(struct uplink *u, const char *filter)
{
	return u->ops->unsubscribe != NULL ? u->ops->unsubscribe(u, filter) : -ENOTSUP;
}

static inline void
uplink_restore_in(struct uplink *u, uint16_t packet_id)
{
	if (u->ops->restore_in != NULL)
		u->ops->restore_in(u, packet_id);
}

static inline void
uplink_owned(struct uplink *u, uint64_t token, uint8_t qos, uint16_t packet_id, int rc)
{
	if (u->ops->owned != NULL)
		u->ops->owned(u, token, qos, packet_id, rc);
}

static inline void
uplink_released(struct uplink *u, uint16_t packet_id, int rc)
{
	if (u->ops->released != NULL)
		u->ops->released(u, packet_id, rc);
}

static inline size_t
uplink_backlog(const struct uplink *u)
{
	return u->ops->backlog(u);
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
