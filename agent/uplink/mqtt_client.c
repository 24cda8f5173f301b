/*
 * mqtt_client.c: the "mqtt" uplink backend: mqttc (the cloud MQTT client, mqttc.h) behind the
 * uplink ops, on the agent's event loop. The loop calls back for the one fd the client
 * watches and ticks it; commands from the broker go to the agent's cmd_fn. The client's store
 * hooks (persist, persist_sync, acked) are passed on to the store's delivery hooks (uplink.h) for
 * messages with a ref (the spool's sequence number); ref 0 messages live in memory only. The
 * store's sync ends later, on the loop (mu_synced), and lets the bytes that waited for it go.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "mqttc.h"
#include "uplink.h"
#include "log.h"

struct mqtt_uplink {
	struct uplink up;
	struct agent_loop *loop;
	struct mqttc *c;
	uint64_t acked, refused;
};

static void
mu_on_io(void *arg, uint32_t events)
{
	struct mqtt_uplink *u = arg;

	mqttc_on_io(u->c, events);
}

static int
mu_watch(void *arg, int fd, uint32_t events, bool add)
{
	struct mqtt_uplink *u = arg;

	return add ? agent_loop_add_fd(u->loop, fd, events, mu_on_io, u)
		   : agent_loop_mod_fd(u->loop, fd, events);
}

static void
mu_unwatch(void *arg, int fd)
{
	struct mqtt_uplink *u = arg;

	agent_loop_del_fd(u->loop, fd);
}

static int
mu_message(void *arg, const char *topic, const uint8_t *payload, size_t len, uint8_t qos,
    bool retain, uint16_t packet_id, uint64_t token)
{
	struct mqtt_uplink *u = arg;
	int rc = u->up.cmd_fn(u->up.cmd_arg, topic, payload, len, qos, retain, packet_id, token);

	return rc == UPLINK_OWN_LATER ? MQTTC_OWN_LATER : rc;
}

static int
mu_released(void *arg, uint16_t packet_id)
{
	struct mqtt_uplink *u = arg;

	int rc = u->up.q2in.released != NULL ? u->up.q2in.released(u->up.q2in.arg, packet_id) : 0;

	return rc == UPLINK_OWN_LATER ? MQTTC_OWN_LATER : rc;
}

static int
mu_unsubscribe(struct uplink *up, const char *filter)
{
	struct mqtt_uplink *u = (struct mqtt_uplink *)up;
	int rc = mqttc_subscribe_remove(u->c, filter);

	if (rc == 0)
		log_info("uplink: unsubscribing %s", filter);
	return rc;
}

static void
mu_restore_in(struct uplink *up, uint16_t packet_id)
{
	mqttc_restore_in(((struct mqtt_uplink *)up)->c, packet_id);
}

static void
mu_released_later(struct uplink *up, uint16_t packet_id, int rc)
{
	mqttc_released(((struct mqtt_uplink *)up)->c, packet_id, rc);
}

static void
mu_owned(struct uplink *up, uint64_t token, uint8_t qos, uint16_t packet_id, int rc)
{
	mqttc_owned(((struct mqtt_uplink *)up)->c, token, qos, packet_id, rc);
}

static int
mu_subscribe(struct uplink *up, const char *filter, uint8_t qos)
{
	struct mqtt_uplink *u = (struct mqtt_uplink *)up;
	int rc = mqttc_subscribe_add(u->c, filter, qos);

	if (rc == 0)
		log_info("uplink: subscribing %s (QoS %u) at every connect", filter, qos);
	return rc;
}

static void
mu_acked(void *arg, uint64_t ref, uint8_t reason)
{
	struct mqtt_uplink *u = arg;

	if (reason >= 0x80)
		u->refused++;
	else
		u->acked++;
	if (ref != 0 && u->up.dlv.acked != NULL)
		u->up.dlv.acked(u->up.dlv.arg, ref, reason);
}

static int
mu_persist(void *arg, uint64_t ref, uint16_t packet_id, enum mqttc_msg_state st)
{
	struct mqtt_uplink *u = arg;

	if (ref == 0 || u->up.dlv.mark == NULL ||
	    (st != MQTTC_MSG_SENT && st != MQTTC_MSG_RELEASED))
		return 0; /* DONE: acked() releases it */
	return u->up.dlv.mark(u->up.dlv.arg, ref, packet_id,
	    st == MQTTC_MSG_SENT ? UPLINK_PHASE_PUBLISHED : UPLINK_PHASE_RELEASED);
}

/* The store's commit ended (on the loop, from store_process): the held bytes may go. */
static void
mu_synced(void *arg, int status)
{
	struct mqtt_uplink *u = arg;

	mqttc_persist_synced(u->c, status);
}

static int
mu_persist_sync(void *arg)
{
	struct mqtt_uplink *u = arg;

	if (u->up.dlv.sync == NULL)
		return 1; /* no store: nothing is persisted, nothing to wait for */
	return u->up.dlv.sync(u->up.dlv.arg, mu_synced, u);
}

static void
mu_tick(void *arg, uint64_t now)
{
	struct mqtt_uplink *u = arg;

	(void)now;
	mqttc_tick(u->c);
}

static int
mu_send(struct uplink *up, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref)
{
	struct mqtt_uplink *u = (struct mqtt_uplink *)up;

	return mqttc_publish(u->c, topic, payload, len, qos, retain, ref);
}

static int
mu_restore(struct uplink *up, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref, uint16_t packet_id, enum uplink_phase ph)
{
	struct mqtt_uplink *u = (struct mqtt_uplink *)up;

	return mqttc_restore(u->c, topic, payload, len, qos, retain, ref, packet_id,
	    ph == UPLINK_PHASE_RELEASED ? MQTTC_MSG_RELEASED : MQTTC_MSG_SENT);
}

static size_t
mu_backlog(const struct uplink *up)
{
	const struct mqtt_uplink *u = (const struct mqtt_uplink *)up;

	return mqttc_queued(u->c) + mqttc_inflight(u->c);
}

static void
mu_stats(const struct uplink *up, struct uplink_stats *out)
{
	const struct mqtt_uplink *u = (const struct mqtt_uplink *)up;
	const uint64_t *c = mqttc_counters(u->c);

	memset(out, 0, sizeof(*out));
	memcpy(out->link, c, sizeof(out->link));
	out->has_link = true;
	out->submitted = c[UPLINK_C_submitted];
	out->resent = c[UPLINK_C_resent_dup] + c[UPLINK_C_pubrel_resent] + c[UPLINK_C_resent_new];
	out->sent =
	    c[UPLINK_C_pub_qos0] + c[UPLINK_C_pub_qos1] + c[UPLINK_C_pub_qos2] + out->resent;
	out->acked = u->acked;
	out->dropped = c[UPLINK_C_dropped_full] + c[UPLINK_C_dropped_invalid] + u->refused +
	    c[UPLINK_C_downlink_oversized];
	out->connects = c[UPLINK_C_connects];
	out->disconnects = c[UPLINK_C_disconnects];
	out->commands = c[UPLINK_C_downlink];
	out->queued = mqttc_queued(u->c) + mqttc_inflight(u->c);
	out->connected = mqttc_state(u->c) == MQTTC_UP;
}

static void
mu_destroy(struct uplink *up)
{
	struct mqtt_uplink *u = (struct mqtt_uplink *)up;

	mqttc_destroy(u->c);
	free(u);
}

static const struct uplink_ops mqtt_ops = { .name = "mqtt",
	.send = mu_send,
	.restore = mu_restore,
	.backlog = mu_backlog,
	.stats = mu_stats,
	.subscribe = mu_subscribe,
	.unsubscribe = mu_unsubscribe,
	.restore_in = mu_restore_in,
	.owned = mu_owned,
	.released = mu_released_later,
	.destroy = mu_destroy };

int
uplink_mqtt_create(struct uplink **out, struct agent_loop *loop, const struct uplink_mqtt_conf *cf,
    uplink_cmd_fn fn, void *arg)
{
	struct mqtt_uplink *u = calloc(1, sizeof(*u));
	struct mqttc_hooks h = { .watch = mu_watch,
		.unwatch = mu_unwatch,
		.message = mu_message,
		.released = mu_released,
		.persist = mu_persist,
		.persist_sync = mu_persist_sync,
		.acked = mu_acked };
	char err[256] = "out of memory";
	int rc;

	if (u == NULL)
		return -ENOMEM;
	u->up = (struct uplink){ .ops = &mqtt_ops, .cmd_fn = fn, .cmd_arg = arg };
	u->loop = loop;
	h.arg = u;
	rc = mqttc_create(&u->c, cf, &h, err, sizeof(err));
	if (rc != 0) {
		log_err("uplink: %s", err);
		free(u);
		return rc;
	}
	if ((rc = agent_loop_add_tick(loop, mu_tick, u)) != 0) {
		mqttc_destroy(u->c);
		free(u);
		return rc;
	}
	log_info("uplink: MQTT %s to %s:%u%s as %s, commands on %s",
	    cf->version == 5 ? "5.0" : "3.1.1", cf->host, cf->port,
	    cf->tls.enabled ? " over TLS" : "", cf->client_id,
	    cf->cmd_topic[0] ? cf->cmd_topic : "(none)");
	*out = &u->up;
	return 0;
}
