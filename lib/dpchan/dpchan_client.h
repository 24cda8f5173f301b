/*
 * dpchan_client.h: the dataplane's end of the channel to the agent, one per worker lcore.
 * Run to completion: nothing blocks. dpchan_client_submit() copies a record into the lcore's
 * pending arena (bounded by pending_bytes); dpchan_client_poll(), once per loop iteration,
 * sends every record not sent yet as one frame (a batch), reads the agent's DURABLE and DOWN
 * frames, and reconnects on a timer with exponential backoff when the agent is absent or went
 * away. A record stays in the arena until the agent reports it durable (or failed): after a
 * reconnect every such record is sent again, under the same ref. QoS 0 (ref 0) records leave
 * the arena once sent. A QoS 2 record a sensor sent again after the dataplane restarted goes with
 * the origin of its first copy (rec.has_origin), so that the agent stores it once.
 */
#ifndef EDGEGW_DPCHAN_CLIENT_H
#define EDGEGW_DPCHAN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dpchan.h"

struct dpchan_client;

struct dpchan_client_config {
	const char *path;          /* the agent's socket (NULL: DPCHAN_DEFAULT_PATH) */
	uint64_t boot_id;          /* the same for every lcore of one dataplane start */
	uint32_t lcore;            /* sent in HELLO */
	uint32_t pending_bytes;    /* arena: records not yet durable (0: 4 MiB) */
	uint32_t reconnect_min_ms; /* backoff after a failed attempt (0: 100), doubled up to */
	uint32_t reconnect_max_ms; /* (0: 1000) */
	/* The highest DOWN ref taken, shared by every lcore of this dataplane (NULL: this client's
	 * own): a DOWN record the agent sends again is answered, not delivered twice. The caller
	 * seeds it with the highest ref its broker journaled before a restart (mqtt_uplink.c). */
	uint64_t *down_seen;
};

struct dpchan_client_ops {
	/* The agent's answer for the records of refs first..last (status 0 durable, < 0 not). */
	void (*durable)(void *arg, uint64_t first, uint64_t last, int status);
	/* Connected again, or room came back in the arena: submit may succeed now. */
	void (*ready)(void *arg);
	/* A downlink publish from the agent. Optional. Returns 1 when a subscription matched, 0
	 * when none did (counted DOWN_NO_SUBSCRIBER), < 0 when refused (counted DOWN_REFUSED).
	 * A record with a ref is answered with a DOWN_ACK of that result once this call returned
	 * (the broker delivered it into its subscribers' queues and journaled what its persistence
	 * keeps), at the end of the poll; one whose ref was taken before is answered without a
	 * call (DOWN_DUP). */
	int (*down)(void *arg, const struct dpchan_rec *r);
};

struct dpchan_client *dpchan_client_new(
    const struct dpchan_client_config *cfg, const struct dpchan_client_ops *ops, void *arg);
void dpchan_client_free(struct dpchan_client *c);

/* Whether a record of this size would be taken now: 0, -ENOTCONN (not connected), -ENOBUFS
 * (the arena is full: wait for ready), -EMSGSIZE (it never fits a frame). Counted only by
 * submit. */
int dpchan_client_room(const struct dpchan_client *c, size_t topic_len, size_t payload_len);
/* Copy r in to be sent at the next poll; 0 or room()'s errors (counted). */
int dpchan_client_submit(struct dpchan_client *c, const struct dpchan_rec *r);
/* The sensor's QoS 2 exchange of the record first sent under o is complete: the agent may
 * forget o. Queued (4096 at most, then -ENOBUFS, counted RELEASE_DROP and logged once) and sent
 * at a poll, after the records; 0 or a negative errno. Best effort: one lost (dropped here, or
 * with a SIGKILL) leaves the origin in the agent until the next start of the dataplane resyncs
 * it (dpchan_client_held) or its bound evicts it (no harm but room). */
int dpchan_client_release(struct dpchan_client *c, const struct dpchan_origin *o);
/* The origins of earlier starts of the dataplane this lcore's broker holds as this start
 * begins (incoming QoS 2 ids awaiting PUBREL: broker_uplink_held), and how many lcores this
 * start runs. Copied; listed to the agent after each connect (HELD, counted HELD_TX), then
 * HELD_END: once every lcore has, the agent forgets the origins of earlier starts none listed
 * (their RELEASE was lost). A superset is harmless (kept until released or evicted). Without
 * this call nothing is listed and the agent forgets nothing that way. 0, -EINVAL (lcores 0)
 * or -ENOMEM. */
int dpchan_client_held(
    struct dpchan_client *c, const struct dpchan_origin *v, uint32_t n, uint32_t lcores);
/* Connect (when due), send, receive. now_ms: the caller's clock (for the backoff). */
void dpchan_client_poll(struct dpchan_client *c, uint64_t now_ms);
bool dpchan_client_connected(const struct dpchan_client *c);
/* Releases queued, not sent yet. */
uint32_t dpchan_client_releases(const struct dpchan_client *c);
/* Records in the arena (sent or not) and the bytes they take. */
uint32_t dpchan_client_pending(const struct dpchan_client *c, uint32_t *bytes);
uint64_t dpchan_client_counter(const struct dpchan_client *c, enum dpchan_counter k);

#endif
