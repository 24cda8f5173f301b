/*
 * downlink_q2.h: the QoS 2 packet ids the cloud sent the agent (the agent as MQTT receiver) that
 * the gateway owns and whose PUBREL has not come yet, kept on disk so that a resend (DUP) after
 * the agent restarted is answered PUBREC again and not delivered to the sensors twice.
 *
 * One file, `<downlink spool>/q2-ids`: 65536 entries of 8 bytes (sparse), entry n for packet id n.
 * 0: free; PENDING | seq: the message went into the downlink spool as record seq, not known
 * durable yet; OWNED | seq: it is (PUBREC may go). An entry is one aligned 8-byte pwrite.
 * Order (downlink.c): spool_append (seq) -> down_q2_pending (fdatasync) -> the record durable ->
 * down_q2_owned -> PUBREC. At open a PENDING entry counts as owned only when the spool kept its
 * record (spool_rec_kept): a crash before the record was on disk leaves the id free, and the
 * cloud's resend is delivered once. OWNED entries are made durable (down_q2_sync) before the
 * spool's releases are committed, so an id never outlives its record unrecorded.
 */
#ifndef EDGEGW_AGENT_DOWNLINK_Q2_H
#define EDGEGW_AGENT_DOWNLINK_Q2_H

#include <stdbool.h>
#include <stdint.h>

#include "spool.h"

struct down_q2;

/* Open (create) dir/q2-ids and settle its PENDING entries against sp. 0 or a negative errno. */
int down_q2_open(struct down_q2 **out, const char *dir, struct spool *sp);
void down_q2_close(struct down_q2 *q);
/* Owned and not released (what the MQTT client answers PUBREC to without delivering). */
bool down_q2_owned_id(const struct down_q2 *q, uint16_t packet_id);
/* Call fn for every owned id (put back into the MQTT client at start). */
void down_q2_each(const struct down_q2 *q, void (*fn)(void *arg, uint16_t packet_id), void *arg);
/* packet_id's message is spool record seq, not yet durable: on disk (fdatasync) before it
 * returns 0. */
int down_q2_pending(struct down_q2 *q, uint16_t packet_id, uint64_t seq);
/* Its record is durable: owned (written, made durable by the next down_q2_sync). */
int down_q2_owned(struct down_q2 *q, uint16_t packet_id);
/* fdatasync when something was written since the last one. */
int down_q2_sync(struct down_q2 *q);
/* PUBREL came (packet_id), or the cloud lost the session (packet_id 0: every id): free, on disk
 * before it returns 0. */
int down_q2_release(struct down_q2 *q, uint16_t packet_id);

#endif
