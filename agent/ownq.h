/*
 * ownq.h: QoS 1/2 messages from the cloud appended to a spool (the downlink's, the command
 * topic's) whose acknowledgement waits for the spool flusher's commit, in the order they came.
 * The flusher's thread wakes the agent's loop over an eventfd after each commit (ownq_on_commit
 * is the spool's on_committed, with the ownq as its argument: every commit, also one that only
 * synced a QoS 2 id's free); the loop takes the settled ones from the head (ownq_next) and
 * answers each through the MQTT client (mqttc_owned), then runs the ownq's on_commit hook (the
 * agent's PUBCOMPs that waited for that commit). So the loop never waits for an fdatasync to
 * acknowledge a cloud message, nor for its tick to complete a QoS 2 release. Neighbours: downlink.c,
 * cmdspool.c, agent/uplink/mqttc.c (MQTTC_OWN_LATER).
 */
#ifndef EDGEGW_AGENT_OWNQ_H
#define EDGEGW_AGENT_OWNQ_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "spool.h"

#define OWNQ_MAX 256 /* waiting at most (above the client's receive maximum, 64) */

struct ownq_item {
	uint64_t seq;       /* its record in the spool */
	uint64_t token;     /* the MQTT client's name for it (mqttc_owned) */
	uint16_t packet_id; /* QoS 2: its id, kept with it; else 0 */
	uint8_t qos;        /* the QoS it came with */
};

struct ownq {
	struct agent_loop *loop;
	int efd; /* -1: not open (ownq_push refuses: the caller waits for the disk itself) */
	void (*on_commit)(void *arg); /* optional: on the loop, after each commit's wake */
	void *on_commit_arg;
	struct ownq_item it[OWNQ_MAX];
	uint32_t head, n;
};

/* The eventfd, watched on loop: on_wake(arg) runs on the loop after each commit (it calls
 * ownq_clear). 0 or a negative errno (then efd stays -1). */
int ownq_open(struct ownq *q, struct agent_loop *loop, agent_fd_fn on_wake, void *arg);
/* After the spool closed (its flusher stopped). Safe on one never opened (efd -1). */
void ownq_close(struct ownq *q);
/* spool_config.on_committed (arg: the ownq), on the flusher's thread. */
void ownq_on_commit(void *arg, uint64_t commit_no, int status);
/* On the loop, in on_wake: the eventfd read back to zero. */
void ownq_clear(struct ownq *q);
/* On the loop, at the end of on_wake: the on_commit hook, if one is set. */
void ownq_committed(struct ownq *q);
/* Append (seq order); false when it is not open or OWNQ_MAX wait. */
bool ownq_push(struct ownq *q, const struct ownq_item *it);
/* The waiting QoS 2 message with packet_id, or NULL. */
struct ownq_item *ownq_find_id(struct ownq *q, uint16_t packet_id);
/* The cloud lost the session: the waiting QoS 2 messages' ids were its own, and a new session
 * numbers its messages again. Each is kept as a message with no id: not the one a resend
 * finds, and not the one owned or freed when its commit ends. */
void ownq_forget_ids(struct ownq *q);
/* The oldest, once its commit ended: popped into *out, 1 durable or a negative errno (its
 * commit failed); 0 when none waits or the oldest is not settled yet. */
int ownq_next(struct ownq *q, struct spool *sp, struct ownq_item *out);

#endif
