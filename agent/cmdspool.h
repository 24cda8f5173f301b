/*
 * cmdspool.h: the Modbus command topic's spool, `<uplink.spool.dir>/commands` (lib/spool, one
 * class, no consumer but this). A QoS 1/2 command from the cloud is acknowledged (PUBACK, PUBREC)
 * only once it is on disk here (fdatasync), and its record is released only when its bus
 * answered (written, or a definite error: a response went out) or it was refused with a
 * response. A record not released when the agent dies is run again at the next start
 * (`cmd_replayed`): a command is then at least once on the bus (a register write is an
 * idempotent setpoint), never lost once acknowledged.
 *
 * QoS 2: the cloud's packet id is kept in `<commands>/q2-ids` (downlink_q2.h, the downlink's
 * table and order): PENDING with the record's sequence number (fdatasync) before the record is
 * waited for, OWNED (fdatasync) once it is durable, and only then PUBREC. At open a PENDING id
 * counts as owned only when the spool kept its record: a crash before the command was durable
 * frees the id (the cloud's resend is run once); one after it keeps it (the resend is answered
 * PUBREC, and the spool's record is what runs). Freed at PUBREL (cmdspool_q2_release).
 *
 * One thread (the agent's loop). Counts in the store's counters (cmd_*, store_stats.def).
 */
#ifndef EDGEGW_AGENT_CMDSPOOL_H
#define EDGEGW_AGENT_CMDSPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

struct store;
struct cmdspool;

/* Hands a durable command (record seq) to its bus: 0 queued (cmdspool_done(seq) once it is
 * answered), 1 answered already (refused, its response submitted): released now. */
typedef int (*cmdspool_exec_fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len);

/* Open (create) the spool in base's directory's `commands` folder (base->dir NULL: the default
 * spool directory), with base's I/O hooks, and settle its q2-ids. 0 or a negative errno. */
int cmdspool_open(struct cmdspool **out, const struct spool_config *base, struct store *st,
    cmdspool_exec_fn exec, void *arg);
/* A QoS 1/2 command (packet_id: its QoS 2 packet id, else 0): 0 once it is durable (acknowledge
 * it; it is run by the next cmdspool_run), a negative errno when it could not be kept (counted
 * cmd_not_owned, not run: do not acknowledge, the cloud sends it again). */
int cmdspool_accept(
    struct cmdspool *c, const uint8_t *payload, size_t len, uint8_t qos, uint16_t packet_id);
/* Hand every durable record not handed yet to exec, oldest first; what a previous agent left
 * (records older than this agent's first) counted cmd_replayed. The agent calls it once at start,
 * after its buses started, and after each command it accepted. */
void cmdspool_run(struct cmdspool *c);
/* Record seq was answered (its response submitted): released (committed off the loop). */
void cmdspool_done(struct cmdspool *c, uint64_t seq);
/* PUBREL for packet_id (0: the cloud lost the session, every id): freed on disk; 0 or < 0. */
int cmdspool_q2_release(struct cmdspool *c, uint16_t packet_id);
/* Every QoS 2 id owned and not released (put back into the MQTT client at start). */
void cmdspool_q2_each(struct cmdspool *c, void (*fn)(void *arg, uint16_t packet_id), void *arg);
/* Commits the releases and frees. */
void cmdspool_close(struct cmdspool *c);
/* Frees without committing what is buffered: what a SIGKILL leaves (tests). */
void cmdspool_abandon(struct cmdspool *c);

#endif
