/*
 * spool_commit.c: group commit. Everything appended since the last commit is written to the
 * tail segment of its stream and made durable with one fdatasync per touched file (plus one of
 * the directory when a segment was created); the consumer's acks and QoS 2 marks go to the ack
 * log in the same commit. A failed write or fdatasync fails the whole commit: its records are
 * reported failed (never acknowledged, never delivered: a VOID entry in the ack log covers them
 * should they surface after a crash), the files are cut back, and a disk that said ENOSPC is
 * given a rest. Then segments whose records are all acknowledged, dropped or expired are deleted.
 * The flusher thread runs commits on the bounded wait of docs/spool.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "spool_internal.h"

struct stream_job {
	struct spool_seg *seg; /* where this commit writes; NULL: nothing for this stream */
	bool created;
	bool attempted;
	uint64_t old_size;
	int err;
};

static int
write_all(struct spool *sp, int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = sp->io->pwrite(sp->io_ctx, fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void
count_write_error(struct spool *sp, int err, const char *what, const char *name)
{
	pthread_mutex_lock(&sp->lock);
	sp->c[err == -ENOSPC ? SPOOL_C_enospc : SPOOL_C_write_errors]++;
	pthread_mutex_unlock(&sp->lock);
	LOG_RATELIMITED(
	    LOG_LVL_ERR, 10, "spool: %s %s/%s: %s", what, sp->dir, name, strerror(-err));
}

static struct spool_seg *
seg_create(struct spool *sp, unsigned s, uint64_t first_seq, int *err)
{
	struct spool_seg *g = calloc(1, sizeof(*g));
	if (!g) {
		*err = -ENOMEM;
		return NULL;
	}
	g->stream = (uint8_t)s;
	g->first_seq = first_seq;
	g->created_ms = spool_now_ms(sp);
	spool_seg_name(g->name, sizeof(g->name), s, first_seq);
	char path[4096];
	*err = spool_path(sp, g->name, path, sizeof(path));
	/* never over a file that is there: a segment named so from before (recovery keeps
	 * next_seq above every segment's name, so only damage could make one) keeps its records */
	g->fd = *err ? -1 : sp->io->open(sp->io_ctx, path, O_RDWR | O_CREAT | O_EXCL, 0640);
	if (!*err && g->fd < 0)
		*err = -errno;
	if (*err) {
		count_write_error(sp, *err, "create", g->name);
		spool_seg_free(sp, g);
		return NULL;
	}
	struct spool_file_hdr h = { .version = SPOOL_FORMAT_VERSION,
		.hdr_len = sizeof(h),
		.stream = (uint8_t)s,
		.first_seq = first_seq };
	memcpy(h.magic, SPOOL_SEG_MAGIC, 8);
	h.crc = spool_file_hdr_crc(&h);
	*err = write_all(sp, g->fd, &h, sizeof(h), 0);
	g->size = sizeof(h);
	return g;
}

static void
seg_discard_file(struct spool *sp, struct spool_seg *g)
{
	char path[4096];
	if (!spool_path(sp, g->name, path, sizeof(path)))
		sp->io->unlink(sp->io_ctx, path);
	spool_seg_free(sp, g);
}

/* Writes one stream's share of the commit (not yet synced). */
static int
write_stream(struct spool *sp, unsigned s, struct stream_job *j)
{
	struct spool_buf *b = &sp->st[s].flight;
	j->attempted = true;
	if (!j->seg) {
		struct spool_rec_hdr h;
		memcpy(&h, b->data, sizeof(h));
		j->seg = seg_create(sp, s, h.seq, &j->err);
		j->created = true;
		if (!j->seg)
			return j->err;
		if (j->err) {
			count_write_error(sp, j->err, "write", j->seg->name);
			return j->err;
		}
	}
	j->err = write_all(sp, j->seg->fd, b->data, b->len, j->seg->size);
	if (j->err)
		count_write_error(sp, j->err, "write", j->seg->name);
	return j->err;
}

static int
sync_fd(struct spool *sp, int fd, const char *name)
{
	int rc = sp->io->fdatasync(sp->io_ctx, fd);
	int e = rc < 0 ? -errno : 0;
	pthread_mutex_lock(&sp->lock);
	sp->c[SPOOL_C_fdatasyncs]++;
	if (e)
		sp->c[SPOOL_C_sync_errors]++;
	pthread_mutex_unlock(&sp->lock);
	if (e)
		LOG_RATELIMITED(
		    LOG_LVL_ERR, 10, "spool: fdatasync %s/%s: %s", sp->dir, name, strerror(-e));
	return e;
}

/* After a failure the files are cut back to what was durable before this commit, so the failed
 * records cannot surface; a segment whose fdatasync failed takes no more appends (the kernel may
 * have dropped its dirty pages: its state is not to be trusted past what an earlier sync said). */
static void
undo_stream(struct spool *sp, struct stream_job *j)
{
	if (!j->attempted || !j->seg)
		return;
	if (j->created) {
		seg_discard_file(sp, j->seg);
		j->seg = NULL;
		return;
	}
	if (sp->io->ftruncate(sp->io_ctx, j->seg->fd, (off_t)j->old_size) == 0)
		sp->io->fdatasync(sp->io_ctx, j->seg->fd);
	j->seg->sealed = true;
}

/* Index the records just made durable (lock held). */
static void
index_flight(struct spool *sp, unsigned s, struct stream_job *j)
{
	struct spool_stream *st = &sp->st[s];
	struct spool_buf *b = &st->flight;
	struct spool_seg *g = j->seg;
	if (j->created) {
		if (st->tail)
			st->tail->next = g;
		else
			st->head = g;
		st->tail = g;
		if (!st->cur_seg)
			st->cur_seg = g;
		sp->seg_bytes += g->size;
		sp->c[SPOOL_C_segments_created]++;
	}
	for (uint32_t off = 0; off < b->len;) {
		struct spool_rec_hdr h;
		memcpy(&h, b->data + off, sizeof(h));
		uint32_t len = (uint32_t)sizeof(h) + h.topic_len + h.payload_len;
		struct spool_idx e = { .seq = h.seq, .off = (uint32_t)(g->size + off), .len = len };
		if (spool_idx_push(g, &e) < 0) {
			/* out of memory: the record is on disk and comes back at the next open */
			sp->c[SPOOL_C_read_errors]++;
		}
		if (h.time_ms > g->newest_ms)
			g->newest_ms = h.time_ms;
		off += len;
	}
	g->size += b->len;
	sp->seg_bytes += b->len;
	sp->c[SPOOL_C_durable_records] += b->nrec;
	sp->c[SPOOL_C_durable_bytes] += b->len;
	if (g->size >= sp->cfg.segment_bytes)
		g->sealed = true;
}

void
spool_expire_sealed(struct spool *sp, uint64_t now_ms)
{
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		uint64_t age = sp->cfg.policy[spool_stream_class(s)].max_age_ms;
		if (!age)
			continue;
		struct spool_seg *g;
		while ((g = sp->st[s].head) && g->sealed && g->newest_ms + age <= now_ms) {
			sp->c[SPOOL_C_expired] += g->live;
			sp->c[SPOOL_C_segments_dropped]++;
			if (g->live)
				log_warnx("spool: segment %s expired: %u unacknowledged records "
					  "older than %" PRIu64 " ms dropped",
				    g->name, g->live, age);
			spool_seg_doom(sp, g);
		}
	}
}

/* Segments with nothing left to deliver go (lock held). An idle tail is sealed first once it
 * is big enough or old enough, so a quiet stream does not keep a delivered segment forever. */
static void
release_done(struct spool *sp, uint64_t now_ms)
{
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		struct spool_stream *st = &sp->st[s];
		struct spool_seg *t = st->tail;
		if (t && !t->sealed && t->n && !t->live && !st->flight.len &&
		    (t->size >= sp->cfg.segment_bytes / 8 || now_ms >= t->created_ms + 10000))
			t->sealed = true;
		for (struct spool_seg *g = st->head, *n; g; g = n) {
			n = g->next;
			if (g->sealed && !g->live) {
				sp->c[SPOOL_C_segments_released]++;
				spool_seg_doom(sp, g);
			}
		}
	}
}

static void
fail_record(struct spool *sp, uint64_t lo, uint64_t hi, int err, uint64_t nrec)
{
	sp->fails[sp->nfails % SPOOL_FAIL_RING] = (struct spool_fail){ lo, hi, err };
	sp->nfails++;
	sp->c[SPOOL_C_failed_records] += nrec;
	atomic_store_explicit(&sp->last_failed_seq, hi, memory_order_release);
	if (err == -ENOSPC) {
		sp->disk_full = true;
		sp->disk_full_until_ns =
		    spool_mono_ns() + (uint64_t)sp->cfg.disk_full_retry_ms * 1000000;
	}
	log_err("spool: commit of records %" PRIu64 "..%" PRIu64 " (%" PRIu64
		" records) failed: %s; they are not acknowledged",
	    lo, hi, nrec, strerror(-err));
}

/* Unlinks the doomed segments, then syncs the directory. Their acks were written by this commit
 * first; should the ack log have failed (a full disk), they go anyway: freeing space is what is
 * needed then, and a deleted record cannot be delivered again. */
static void
unlink_doomed(struct spool *sp, struct spool_seg *list)
{
	if (!list)
		return;
	for (struct spool_seg *g = list, *n; g; g = n) {
		n = g->next;
		seg_discard_file(sp, g);
	}
	sp->io->fsync_dir(sp->io_ctx, sp->dir);
	pthread_mutex_lock(&sp->lock);
	sp->c[SPOOL_C_fdatasyncs]++;
	sp->disk_full = false;
	pthread_mutex_unlock(&sp->lock);
}

static int
write_acks(struct spool *sp)
{
	if (!sp->ack_flight_n)
		return 0;
	size_t len = (size_t)sp->ack_flight_n * sizeof(struct spool_ack_ent);
	int rc = write_all(sp, sp->ack_fd, sp->ack_flight, len, sp->ack_size);
	if (!rc)
		rc = sync_fd(sp, sp->ack_fd, SPOOL_ACK_FILE);
	if (rc) {
		sp->io->ftruncate(sp->io_ctx, sp->ack_fd, (off_t)sp->ack_size);
		pthread_mutex_lock(&sp->lock);
		sp->c[SPOOL_C_acklog_errors]++;
		spool_acklog_requeue(sp);
		pthread_mutex_unlock(&sp->lock);
		LOG_RATELIMITED(LOG_LVL_ERR, 10,
		    "spool: ack log write failed: %s (kept for the next commit)", strerror(-rc));
		return rc;
	}
	sp->ack_size += len;
	sp->ack_flight_n = 0;
	return 0;
}

int
spool_commit(struct spool *sp)
{
	struct stream_job jobs[SPOOL_STREAMS] = { 0 };
	pthread_mutex_lock(&sp->commit_lock);
	pthread_mutex_lock(&sp->lock);
	uint64_t now_ms = spool_now_ms(sp);
	uint64_t lo = atomic_load(&sp->resolved_seq) + 1, hi = sp->next_seq - 1;
	uint64_t no = ++sp->commit_no;
	uint64_t nrec = 0;
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		struct spool_stream *st = &sp->st[s];
		struct spool_buf t = st->flight;
		st->flight = st->buf;
		st->buf = t;
		st->buf.len = st->buf.nrec = 0;
		nrec += st->flight.nrec;
		if (st->flight.len && st->tail && !st->tail->sealed) {
			jobs[s].seg = st->tail;
			jobs[s].old_size = st->tail->size;
		}
	}
	sp->oldest_buffered_ns = 0;
	struct spool_ack_ent *ta = sp->ack_flight;
	uint32_t tc = sp->ack_flight_cap;
	sp->ack_flight = sp->ack_pend;
	sp->ack_flight_n = sp->ack_n;
	sp->ack_flight_cap = sp->ack_cap;
	sp->ack_pend = ta;
	sp->ack_cap = tc;
	sp->ack_n = 0;
	spool_expire_sealed(sp, now_ms);
	release_done(sp, now_ms);
	struct spool_seg *doomed = sp->doomed;
	sp->doomed = NULL;
	pthread_mutex_unlock(&sp->lock);

	int err = 0, pre_err = 0;
	if (sp->cfg.before_commit &&
	    (pre_err = sp->cfg.before_commit(sp->cfg.before_commit_arg)) != 0) {
		err = pre_err;
		pthread_mutex_lock(&sp->lock);
		sp->c[SPOOL_C_sync_errors]++;
		pthread_mutex_unlock(&sp->lock);
		LOG_RATELIMITED(LOG_LVL_ERR, 10,
		    "spool: %s: what must be durable first is not (%s): "
		    "the commit fails",
		    sp->dir, strerror(-pre_err));
	}
	for (unsigned s = 0; s < SPOOL_STREAMS && !err; s++)
		if (sp->st[s].flight.len)
			err = write_stream(sp, s, &jobs[s]);
	bool created = false;
	for (unsigned s = 0; s < SPOOL_STREAMS && !err; s++) {
		if (!sp->st[s].flight.len)
			continue;
		err = sync_fd(sp, jobs[s].seg->fd, jobs[s].seg->name);
		created |= jobs[s].created;
	}
	if (!err && created) {
		if (sp->io->fsync_dir(sp->io_ctx, sp->dir) < 0)
			err = -errno;
		pthread_mutex_lock(&sp->lock);
		sp->c[SPOOL_C_fdatasyncs]++;
		if (err)
			sp->c[SPOOL_C_sync_errors]++;
		pthread_mutex_unlock(&sp->lock);
	}
	if (err) {
		for (unsigned s = 0; s < SPOOL_STREAMS; s++)
			undo_stream(sp, &jobs[s]);
		if (hi >= lo) {
			struct spool_ack_ent v = { .type = SPOOL_ACK_VOID, .lo = lo, .hi = hi };
			pthread_mutex_lock(&sp->lock);
			spool_acklog_queue_flight(sp, &v);
			pthread_mutex_unlock(&sp->lock);
		}
	}
	int ack_err = 0;
	if (pre_err) { /* no release may be durable before what it depends on: the next commit */
		pthread_mutex_lock(&sp->lock);
		spool_acklog_requeue(sp);
		pthread_mutex_unlock(&sp->lock);
		ack_err = pre_err;
	} else {
		ack_err = write_acks(sp);
	}

	pthread_mutex_lock(&sp->lock);
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		struct spool_stream *st = &sp->st[s];
		if (!err && st->flight.len)
			index_flight(sp, s, &jobs[s]);
		sp->buffered_bytes -= st->flight.len;
		st->flight.len = st->flight.nrec = 0;
	}
	if (nrec)
		sp->c[SPOOL_C_commits]++;
	if (err && hi >= lo)
		fail_record(sp, lo, hi, err, nrec);
	if (hi >= lo)
		atomic_store_explicit(&sp->resolved_seq, hi, memory_order_release);
	if (nrec) {
		sp->last_commit_ns = spool_mono_ns();
		sp->nrec_avg += ((int64_t)nrec * 256 - sp->nrec_avg) / 8;
	}
	pthread_cond_broadcast(&sp->settled_cond);
	pthread_mutex_unlock(&sp->lock);

	if (hi >= lo && sp->cfg.on_durable)
		sp->cfg.on_durable(sp->cfg.on_durable_arg, lo, hi, err);
	if (sp->cfg.on_committed)
		sp->cfg.on_committed(sp->cfg.on_committed_arg, no, ack_err);
	unlink_doomed(sp, doomed);
	if (!ack_err && sp->ack_size > (4u << 20) &&
	    sp->ack_size > 8 * sizeof(struct spool_ack_ent) * 1024)
		spool_acklog_compact(sp);
	pthread_mutex_unlock(&sp->commit_lock);
	return err ? err : ack_err;
}

/* ---- the flusher ---- */

static bool
commit_due(struct spool *sp, uint64_t now_ns)
{
	uint64_t wait_ns = (uint64_t)sp->cfg.commit_max_wait_us * 1000;
	if (sp->buffered_bytes >= sp->cfg.commit_bytes)
		return true;
	if (sp->oldest_buffered_ns && now_ns - sp->oldest_buffered_ns >= wait_ns)
		return true;
	/* a record that finds the spool idle at least that long while its commits carry a record
	 * at a time (a moving average of at most 1.5; none yet counts): a sensor every few
	 * seconds, no company is coming, so it goes at once. Under batches it waits as before:
	 * under a closed loop (each publisher waits for its PUBACKs) the next records come a round
	 * trip after the commit, and going at once would split every batch (and a straggler
	 * committed alone must not start a chain of single commits beside the batches: the
	 * average, not the last commit). One appended during the last commit is older than its
	 * end: it waits. */
	if (sp->oldest_buffered_ns && sp->nrec_avg <= 384 &&
	    sp->oldest_buffered_ns >= sp->last_commit_ns + wait_ns)
		return true;
	return sp->doomed != NULL || sp->commit_want > sp->commit_no;
}

static void *
flusher_main(void *arg)
{
	struct spool *sp = arg;
	uint64_t last_ns = spool_mono_ns();
	pthread_mutex_lock(&sp->lock);
	while (!sp->stopping) {
		uint64_t now = spool_mono_ns();
		/* acks and the bounds are looked at at least every 100 ms */
		if (commit_due(sp, now) || (sp->ack_n && now - last_ns >= 100000000ull) ||
		    now - last_ns >= 1000000000ull) {
			pthread_mutex_unlock(&sp->lock);
			spool_commit(sp);
			last_ns = spool_mono_ns();
			pthread_mutex_lock(&sp->lock);
			continue;
		}
		uint64_t until = sp->oldest_buffered_ns
		    ? sp->oldest_buffered_ns + (uint64_t)sp->cfg.commit_max_wait_us * 1000
		    : now + 100000000ull;
		struct timespec ts = { .tv_sec = (time_t)(until / 1000000000ull),
			.tv_nsec = (long)(until % 1000000000ull) };
		pthread_cond_timedwait(&sp->work_cond, &sp->lock, &ts);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

uint64_t
spool_commit_request(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	uint64_t no = sp->commit_no + 1; /* the next commit to take its input */
	if (no > sp->commit_want)
		sp->commit_want = no;
	pthread_cond_signal(&sp->work_cond);
	pthread_mutex_unlock(&sp->lock);
	return no;
}

int
spool_start_flusher(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	if (sp->flusher_running) {
		pthread_mutex_unlock(&sp->lock);
		return -EALREADY;
	}
	int rc = pthread_create(&sp->flusher, NULL, flusher_main, sp);
	if (!rc)
		sp->flusher_running = true;
	pthread_mutex_unlock(&sp->lock);
	return -rc;
}
