/*
 * downlink_q2.h: the QoS 2 packet ids the cloud sent the agent (the agent as MQTT receiver) that
 * the gateway owns and whose PUBREL has not come yet, kept on disk so that a resend (DUP) after
 * the agent restarted is answered PUBREC again and not delivered to the sensors twice.
 *
 * One file, `<downlink spool>/q2-ids`: a 16-byte header (magic, version 2, CRC-32C), then an
 * entry of 16 bytes per packet id n at n * 16 (sparse): a u64 value and the CRC-32C of the id
 * and the value, or all zero. 0: free; PENDING | seq: the message went into the downlink spool
 * as record seq, not known durable yet; OWNED | seq: it is (PUBREC may go). An entry is one
 * aligned 16-byte pwrite. An entry whose checksum fails at open (a flipped bit, garbage) is
 * freed and counted (downlink_ids_corrupt): the side that cannot lose a message, a resend of it
 * being delivered again; an entry read as OWNED that was not would answer the cloud's next
 * message under that id PUBREC without delivering it. Version 1's file (8-byte entries, no
 * header or checksum) is converted at open; a newer version's is refused (-EPROTONOSUPPORT,
 * as the spool's), a file that is not one too (-EPROTO): the agent does not start.
 * Order (downlink.c, cmdspool.c): downlink_ids_pending (seq: spool_next_seq, written, not synced)
 * -> spool_append (that seq) -> the spool's commit, whose before_commit hook
 * (downlink_ids_before_commit) makes the table durable before the record is written -> the
 * record durable -> downlink_ids_own (written) -> PUBREC. The fdatasyncs are the spool flusher's,
 * not the agent loop's. At open a PENDING entry counts as owned only when the spool kept its
 * record (spool_rec_kept): a crash before the record was on disk leaves the id free, and the
 * cloud's resend is delivered once. OWNED entries are durable before the spool's releases are
 * (the same hook, before the commit writes its acks), so an id never outlives its record
 * unrecorded. A PUBREL's free is synced on the loop before PUBCOMP (downlink_ids_release).
 */
#ifndef EDGEGW_AGENT_DOWNLINK_Q2_H
#define EDGEGW_AGENT_DOWNLINK_Q2_H

#include <stdbool.h>
#include <stdint.h>

#include "spool.h"

struct downlink_ids;

/* Open (create) dir/q2-ids and settle its PENDING entries against sp (NULL: none). Its file
 * operations go through io (NULL: spool_io_posix; the spool's table, so that tests inject
 * faults the same way). 0 or a negative errno. */
int downlink_ids_open(struct downlink_ids **out, const char *dir, struct spool *sp,
    const struct spool_io_ops *io, void *io_ctx);
void downlink_ids_close(struct downlink_ids *q);
/* Entries (and the header) found corrupt at open, freed. */
unsigned downlink_ids_corrupt(const struct downlink_ids *q);
/* Owned and not released (what the MQTT client answers PUBREC to without delivering). */
bool downlink_ids_held(const struct downlink_ids *q, uint16_t packet_id);
/* Call fn for every owned id (put back into the MQTT client at start). */
void downlink_ids_each(
    const struct downlink_ids *q, void (*fn)(void *arg, uint16_t packet_id), void *arg);
/* packet_id's message is about to be spool record seq: written (0), made durable by the spool's
 * next commit before that record is (downlink_ids_before_commit). */
int downlink_ids_pending(struct downlink_ids *q, uint16_t packet_id, uint64_t seq);
/* spool_config.before_commit for the spool the ids go with; arg: the address of the owner's
 * pointer to the table (NULL there: nothing to sync). On the committing thread. */
int downlink_ids_before_commit(void *arg);
/* Its record is durable: owned (written, made durable by the next downlink_ids_sync). Only a
 * PENDING id: one freed since (the cloud lost the session) stays free. */
int downlink_ids_own(struct downlink_ids *q, uint16_t packet_id);
/* fdatasync when something was written since the last one (either thread). */
int downlink_ids_sync(struct downlink_ids *q);
/* PUBREL came for packet_id: free, written (0) and made durable by the spool's next commit
 * (before_commit); *need is what downlink_ids_durable waits for (also when the id was free
 * already: an earlier free of it may not be on disk yet). */
int downlink_ids_free(struct downlink_ids *q, uint16_t packet_id, uint64_t *need);
bool downlink_ids_durable(const struct downlink_ids *q, uint64_t need);
/* A PUBREL for id (0: every id): with need (and an id) downlink_ids_free and a commit of sp
 * asked for, so that the loop does not wait; else downlink_ids_release. */
int downlink_ids_pubrel(struct downlink_ids *q, struct spool *sp, uint16_t id, uint64_t *need);
/* PUBREL came (packet_id), or the cloud lost the session (packet_id 0: every id): free, on disk
 * before it returns 0. */
int downlink_ids_release(struct downlink_ids *q, uint16_t packet_id);

#endif
