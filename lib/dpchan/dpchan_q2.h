/*
 * dpchan_q2.h: the agent's QoS 2 origins (the channel's server owns one, dpchan_server.c). For
 * each QoS 2 record the dataplane sent durably, its origin (boot id, lcore, ref of the start of
 * the dataplane that first sent it) is kept until the dataplane releases it (RELEASE: the
 * sensor's PUBREL for it was taken), whether the cloud has acknowledged the record or not. A
 * restarted dataplane whose sensor sends such a message again forwards it under that origin:
 * held here, it is answered durable and not stored a second time (docs/architecture.md, "QoS 2
 * across a restart of the dataplane").
 *
 * Kept in a file (the spool's directory) so that a SIGKILL of the agent forgets nothing: an
 * origin is written (and synced, dpchan_q2_sync, or on the file's thread, dpchan_q2_sync_begin)
 * once its record is durable, before the dataplane is told so; a release is written without a sync (lost, the origin stays: harmless).
 * The file is fixed-size records with a CRC-32C each, rewritten whole at open, when it has
 * grown to twice what it holds, and after a write or sync of it failed. Bounded (max): the oldest origin is forgotten for a new one,
 * counted Q2_EVICTED. Counts into the server's table (dpchan_counters.def, Q2_*).
 */
#ifndef EDGEGW_DPCHAN_Q2_H
#define EDGEGW_DPCHAN_Q2_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dpchan.h"

struct dpchan_q2;

enum dpchan_q2_state {
	DPCHAN_Q2_NONE,    /* not held */
	DPCHAN_Q2_WAITING, /* taken, its record not durable yet */
	DPCHAN_Q2_HELD,    /* its record is durable (sent up or not) */
};

/* The file's reads at open and its writes, behind a table so that tests inject faults (a failed
 * read, a failed or short write, a failing fdatasync or rename). Each returns what the POSIX
 * call returns, -1 with errno set on failure. */
struct dpchan_q2_io {
	int (*open)(void *ctx, const char *path, int flags, mode_t mode);
	ssize_t (*read)(void *ctx, int fd, void *buf, size_t len);
	ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len);
	int (*fdatasync)(void *ctx, int fd);
	int (*rename)(void *ctx, const char *from, const char *to);
};

/* path NULL: in memory only. max 0: 65536. cnt: the counters to count into
 * (DPCHAN_C_COUNT of them). io NULL: POSIX. NULL with errno set: EPROTONOSUPPORT (written by
 * a newer version), ENOMEM, or the file's error. */
struct dpchan_q2 *dpchan_q2_open(
    const char *path, uint32_t max, uint64_t *cnt, const struct dpchan_q2_io *io, void *io_ctx);
void dpchan_q2_close(struct dpchan_q2 *q);
enum dpchan_q2_state dpchan_q2_state(const struct dpchan_q2 *q, const struct dpchan_origin *o);
/* The record of o was given to the sink under token (tokens increase). */
void dpchan_q2_taken(struct dpchan_q2 *q, const struct dpchan_origin *o, uint64_t token);
/* o's record is durable already (found in the spool at start): held from now. */
void dpchan_q2_held(struct dpchan_q2 *q, const struct dpchan_origin *o);
/* Tokens first..last became durable (status 0: their origins are held from now, written) or
 * failed (< 0: forgotten, the record was never stored). */
void dpchan_q2_settle(struct dpchan_q2 *q, uint64_t first, uint64_t last, int status);
/* Forget o (held, or still waiting: the dataplane is done with it either way); false when it
 * was not there. */
bool dpchan_q2_release(struct dpchan_q2 *q, const struct dpchan_origin *o);
/*
 * Resync with a new start of the dataplane (dpchan_proto.h, HELD): dpchan_q2_resync() begins
 * one (at the first HELLO of that start); from then every origin that comes in, and every one
 * dpchan_q2_mark() is called for (one its lcores listed as held), is marked seen; once every
 * lcore has listed its own, dpchan_q2_sweep() forgets the origins of other starts than boot_id
 * left unmarked (their RELEASE was lost: no lcore holds their sensor's exchange any more; a
 * resend of one would be sent up as new anyway), written as releases, counted Q2_SWEPT. Their
 * number.
 */
void dpchan_q2_resync(struct dpchan_q2 *q);
void dpchan_q2_mark(struct dpchan_q2 *q, const struct dpchan_origin *o);
uint32_t dpchan_q2_sweep(struct dpchan_q2 *q, uint64_t boot_id);
/* Sync what was written since the last call (call before answering durable); 0 or -errno.
 * After a write or sync that failed (counted Q2_IO_FAIL), the file may lack origins or end in
 * a torn record: it is written again whole (as at open) at each call until that succeeds. */
int dpchan_q2_sync(struct dpchan_q2 *q);
/*
 * The same off the caller's loop: the fdatasync runs on the file's own thread (started at
 * open). 1 and *gen: what was written so far is durable once dpchan_q2_synced() returns
 * gen or more. 0: nothing was waiting to be synced, or it was done here (a rewrite that was due,
 * which syncs the new file itself; memory only; no thread could be started); < 0 as
 * dpchan_q2_sync's, done here. A failed sync on the thread is counted and logged by
 * dpchan_q2_synced (Q2_IO_FAIL), and the file is written whole at the next call, as
 * dpchan_q2_sync's; what waited for it goes on all the same.
 */
int dpchan_q2_sync_begin(struct dpchan_q2 *q, uint64_t *gen);
/* Wait (on the caller's thread) until the sync gen ended. */
void dpchan_q2_sync_wait(struct dpchan_q2 *q, uint64_t gen);
/* Readable when a sync on the thread ended (-1: no thread: memory only, or it could not start). */
int dpchan_q2_event_fd(const struct dpchan_q2 *q);
/* The last sync ended on the thread (0: none). */
uint64_t dpchan_q2_synced(struct dpchan_q2 *q);
uint32_t dpchan_q2_count(const struct dpchan_q2 *q);

#endif
