/*
 * mqttc.h: the cloud MQTT client (5.0, or 3.1.1 by config) over plain TCP or TLS (tls.h).
 * Non-blocking and single-threaded: the owner watches the one fd the client asks for (hooks
 * watch/unwatch), calls mqttc_on_io() when it is ready and mqttc_tick() periodically. Names
 * are resolved on a helper thread (resolve.c) so nothing here waits.
 *
 * Delivery: messages wait in a bounded queue, leave in order within a window of QoS 1/2
 * messages in flight, and are resent (DUP, or PUBREL) after a reconnect that resumes the
 * session. A store (the spool) follows a message through hooks: persist() at each QoS 2 step
 * and acked() when the broker owns it; after a restart it puts them back with mqttc_restore()
 * under their old packet ids, so a QoS 2 message is completed, not sent twice. The commit that
 * makes the QoS 2 steps durable runs elsewhere (persist_sync starts it, mqttc_persist_synced()
 * ends it): the bytes that announce those steps wait in the output buffer meanwhile, what was
 * encoded before them leaves, and the owner's loop never waits for the disk.
 */
#ifndef EDGEGW_UPLINK_MQTTC_H
#define EDGEGW_UPLINK_MQTTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_conf.h"
#include "resolve.h"
#include "uplink_counters.h"

struct mqttc;

/* Where a QoS 1/2 message stands; what persist() records and mqttc_restore() takes back. */
enum mqttc_msg_state {
	MQTTC_MSG_QUEUED = 0, /* not sent yet (no packet id) */
	MQTTC_MSG_SENT,       /* PUBLISH sent with packet_id, no PUBACK/PUBREC yet */
	MQTTC_MSG_RELEASED,   /* QoS 2: PUBREC received, PUBREL sent, no PUBCOMP yet */
	MQTTC_MSG_DONE,       /* the broker owns it (PUBACK, PUBCOMP, or refused with a reason) */
};

#define MQTTC_OWN_LATER 1 /* message(): ownership is decided later (mqttc_owned) */

enum mqttc_state {
	MQTTC_IDLE = 0, /* waiting for the next attempt */
	MQTTC_RESOLVING,
	MQTTC_CONNECTING, /* TCP */
	MQTTC_TLS,        /* handshake */
	MQTTC_WAIT_CONNACK,
	MQTTC_UP,
};

struct mqttc_hooks {
	void *arg;
	/* Watch fd for these epoll events (EPOLLIN, EPOLLOUT); called again to change them. */
	int (*watch)(void *arg, int fd, uint32_t events, bool add);
	void (*unwatch)(void *arg, int fd);
	/* A message from the broker on a subscribed topic (delivered once for QoS 2; packet_id:
	 * its QoS 2 packet id, for the owner to keep with it, else 0). Returns 0 when the gateway
	 * owns it (then it is acknowledged: PUBACK, PUBREC), < 0 when not: no answer, the broker
	 * sends it again after the next reconnect, which the client makes 10 s later (counted
	 * downlink_not_owned, downlink_redeliver), or MQTTC_OWN_LATER
	 * (QoS 1/2 only) when that is known later: the owner calls mqttc_owned() with token once
	 * it is (on disk), never from inside this call. Acknowledgements leave in the order the
	 * messages came (MQTT 4.6): one that waits holds back those after it. */
	int (*message)(void *arg, const char *topic, const uint8_t *payload, size_t len,
	    uint8_t qos, bool retain, uint16_t packet_id, uint64_t token);
	/* The broker released a QoS 2 message it sent (PUBREL for packet_id), or lost the session
	 * (packet_id 0: every id) (optional): forget it where it was kept. Nonzero: not forgotten,
	 * no PUBCOMP (the broker sends PUBREL again after the next reconnect); MQTTC_OWN_LATER (an
	 * id, not 0): forgotten once that is on disk, and mqttc_released() says so (PUBCOMP then). */
	int (*released)(void *arg, uint16_t packet_id);
	/* A QoS 2 message moved to state st under packet_id (optional). Nonzero: not recorded. */
	int (*persist)(void *arg, uint64_t ref, uint16_t packet_id, enum mqttc_msg_state st);
	/* Start making every persist() so far durable (optional), without waiting: the owner
	 * calls mqttc_persist_synced() on the loop once it is (never from inside this call). The
	 * bytes those steps announce wait until then, and one commit covers a whole batch. 0:
	 * started; 1: nothing to make durable (done now); < 0: cannot (counted persist_fail, the
	 * bytes go: exactly once is not guaranteed for them). */
	int (*persist_sync)(void *arg);
	/* The broker took the message (reason 0) or refused it (5.0 reason >= 0x80) (optional). */
	void (*acked)(void *arg, uint64_t ref, uint8_t reason);
	/* Time, for tests; NULL: the monotonic clock. */
	uint64_t (*now_ms)(void *arg);
	/* Name lookup, for tests (run on the resolver thread); NULL: getaddrinfo. */
	uplink_lookup_fn lookup;
};


int mqttc_create(struct mqttc **out, const struct uplink_mqtt_conf *conf,
    const struct mqttc_hooks *hooks, char *err, size_t errlen);
void mqttc_destroy(struct mqttc *c);

/* Queue a message; ref is the store's name for it (handed back to persist/acked). */
int mqttc_publish(struct mqttc *c, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref);
/* Subscribe filter (at qos) too, at every connect, with the command topic (conf cmd_topic, QoS
 * 2, subscribed first); added while connected (a reload's new downlink rule), it is subscribed
 * at once. 0, -EEXIST, -ENOSPC (32 filters besides it), -EINVAL, -ENOMEM. */
int mqttc_subscribe_add(struct mqttc *c, const char *filter, uint8_t qos);
/* Stop subscribing filter (a reload removed its downlink rule): UNSUBSCRIBE now when connected,
 * and not at the next connects. 0, -ENOENT. */
int mqttc_subscribe_remove(struct mqttc *c, const char *filter);
/* Put back a QoS 2 packet id the broker sent whose PUBREL had not come before a restart (kept by
 * the message's owner): a resend (DUP) under it is answered PUBREC and not delivered again. */
void mqttc_restore_in(struct mqttc *c, uint16_t packet_id);
/* The message that message() answered MQTTC_OWN_LATER for under token is owned now (rc 0:
 * acknowledged once those before it are) or will not be (rc < 0: no answer, counted
 * downlink_not_owned). The connection it came on may be gone: then nothing is sent (the broker
 * sends it again), and a QoS 2 packet_id owned is remembered, so that the resend is answered
 * PUBREC and not delivered twice; unless the broker lost the session since (the id may be a new
 * message's by then). */
void mqttc_owned(struct mqttc *c, uint64_t token, uint8_t qos, uint16_t packet_id, int rc);
/* The PUBREL the released() hook answered MQTTC_OWN_LATER for: the id is forgotten on disk
 * (rc 0: PUBCOMP, if connected; else the broker's next PUBREL gets it) or could not be (rc < 0:
 * counted downlink_release_fail, no PUBCOMP). Nothing when that PUBREL was answered since (it
 * came again) or the broker lost the session meanwhile: the id may be a new message's. */
void mqttc_released(struct mqttc *c, uint16_t packet_id, int rc);
/* Acknowledgements to the broker waiting for an earlier message's mqttc_owned (a gauge). */
size_t mqttc_acks_waiting(const struct mqttc *c);
/* Put back a message a store kept in flight (state SENT or RELEASED) before the first connect. */
int mqttc_restore(struct mqttc *c, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref, uint16_t packet_id, enum mqttc_msg_state st);

/* The commit persist_sync() started has ended: status 0, every persist() before it is durable
 * (otherwise counted persist_fail; the bytes go all the same). Sends what waited for it. */
void mqttc_persist_synced(struct mqttc *c, int status);
/* Output bytes waiting for such a commit (tests, stats). */
size_t mqttc_held_bytes(const struct mqttc *c);

/* The watched fd (socket or resolver pipe: the client watches one at a time) is ready. */
void mqttc_on_io(struct mqttc *c, uint32_t events);
void mqttc_tick(struct mqttc *c);
/* Drop the connection now (as if it was lost) and reconnect after the backoff. */
void mqttc_disconnect(struct mqttc *c, const char *why);

enum mqttc_state mqttc_state(const struct mqttc *c);
size_t mqttc_queued(const struct mqttc *c);   /* waiting, not sent */
size_t mqttc_inflight(const struct mqttc *c); /* sent, not completed */
/* Counters in uplink_stats.def order (UPLINK_C_*). */
const uint64_t *mqttc_counters(const struct mqttc *c);
/* Seed the backoff jitter (tests); otherwise seeded from the clock and pid. */
void mqttc_seed(struct mqttc *c, uint64_t seed);
/* The delay the next failed attempt will wait: exponential with full jitter (exposed for tests). */
uint64_t mqttc_backoff_next(struct mqttc *c);

#endif
