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
 * table and order): PENDING with the record's sequence number before the record's commit,
 * OWNED once it is durable, and only then PUBREC; the fdatasyncs are the spool flusher's (its
 * before_commit syncs the ids ahead of the records and releases it writes): the loop goes on
 * meanwhile (ownq.h). At open a PENDING id
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

struct agent_loop;
struct store;
struct cmdspool;

/* Hands a durable command (record seq) to its bus: 0 queued (cmdspool_done(seq) once it is
 * answered), 1 answered already (refused, its response submitted): released now. */
typedef int (*cmdspool_exec_fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len);

/* Open (create) the spool in base's directory's `commands` folder (base->dir NULL: the default
 * spool directory), with base's I/O hooks, and settle its q2-ids. With a loop, the spool's
 * flusher wakes it after each commit (ownq.h: commands acknowledged without the loop waiting for
 * the disk, once cmdspool_set_owned named who answers). 0 or a negative errno. */
int cmdspool_open(struct cmdspool **out, struct agent_loop *loop, const struct spool_config *base,
    struct store *st, cmdspool_exec_fn exec, void *arg);
/* A command cmdspool_accept() answered CMDSPOOL_OWN_LATER for (token) is durable (rc 0:
 * acknowledge it) or could not be kept (rc < 0, counted cmd_not_owned). On the loop, in the
 * order the commands came, from cmdspool_run (before the commands it runs) or the flusher's
 * wake-up; never from inside cmdspool_accept(). */
typedef void (*cmdspool_owned_fn)(
    void *arg, uint64_t token, uint8_t qos, uint16_t packet_id, int rc);
void cmdspool_set_owned(struct cmdspool *c, cmdspool_owned_fn fn, void *arg);
/* fn(arg) on the loop after each of the spool's commits (also one that only synced a QoS 2 id
 * freed by cmdspool_q2_release: cmdspool_q2_durable may now say yes). With a loop only. */
void cmdspool_set_on_commit(struct cmdspool *c, void (*fn)(void *arg), void *arg);
#define CMDSPOOL_OWN_LATER 1
/* A QoS 1/2 command (packet_id: its QoS 2 packet id, else 0; token: the uplink's name for it):
 * CMDSPOOL_OWN_LATER when the owned_fn will say (the record is appended, its commit is the
 * flusher's); without one set (or with OWNQ_MAX waiting), 0 once it is durable (the loop waits
 * for it here): acknowledge it, it is run by the next cmdspool_run; a negative errno when it
 * could not be kept (counted cmd_not_owned, not run: do not acknowledge, the cloud sends it
 * again). A QoS 2 resend of a command still waiting takes its place (not spooled twice). */
int cmdspool_accept(struct cmdspool *c, const uint8_t *payload, size_t len, uint8_t qos,
    uint16_t packet_id, uint64_t token);
/* Hand every durable record not handed yet to exec, oldest first; what a previous agent left
 * (records older than this agent's first) counted cmd_replayed. The agent calls it once at start,
 * after its buses started, and after each command it accepted. */
void cmdspool_run(struct cmdspool *c);
/* Record seq was answered (its response submitted): released (committed off the loop). */
void cmdspool_done(struct cmdspool *c, uint64_t seq);
/* PUBREL for packet_id (0: the cloud lost the session, every id): freed on disk; 0 or < 0. */
int cmdspool_q2_release(struct cmdspool *c, uint16_t packet_id, uint64_t *need);
/* With need (and an id): freed, made durable by the spool's next commit (requested); PUBCOMP
 * waits until this says so. */
bool cmdspool_q2_durable(const struct cmdspool *c, uint64_t need);
/* Every QoS 2 id owned and not released (put back into the MQTT client at start). */
void cmdspool_q2_each(struct cmdspool *c, void (*fn)(void *arg, uint16_t packet_id), void *arg);
/* Commits the releases and frees. */
void cmdspool_close(struct cmdspool *c);
/* Frees without committing what is buffered: what a SIGKILL leaves (tests). */
void cmdspool_abandon(struct cmdspool *c);

#endif
