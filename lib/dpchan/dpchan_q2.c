/*
 * dpchan_q2.c: the agent's QoS 2 origins (dpchan_q2.h). An open-addressing hash of origins
 * (linear probing, deletion by backward shift: no tombstones to sweep), a ring in the order
 * they came for the bound (the oldest goes first), a ring of those awaiting durability in token
 * order, and the file.
 *
 * File: a 16-byte header (magic "EGWDQ2O1", u32 version, u32 CRC-32C of the 12 before), then
 * 32-byte records: u32 CRC-32C of the 28 after it, u8 type (1 held, 2 released), 3 zero, u32
 * lcore, u64 boot id, u64 ref, 4 zero. Little-endian (the agent's own box).
 */
#include "dpchan_q2.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

#define Q2_MAGIC    "EGWDQ2O1"
#define Q2_VERSION  1u
#define Q2_HDR      16u
#define Q2_REC      32u
#define Q2_ADD      1u
#define Q2_DEL      2u
#define Q2_MAX_DEF  65536u
#define Q2_PATH_MAX 512u

struct q2_ent {
	uint64_t boot_id, ref, token;
	uint32_t lcore;
	uint32_t serial; /* its place in the order ring (0: the slot is empty) */
	uint8_t state;   /* enum dpchan_q2_state */
	uint32_t gen;    /* the resync that last saw it held, or that it came in (dpchan_q2_mark) */
};

struct q2_ring_ent {
	struct dpchan_origin o;
	uint64_t tag; /* order ring: the entry's serial; waiting ring: its token */
};

struct q2_ring {
	struct q2_ring_ent *v;
	uint32_t head, len;
};

struct dpchan_q2 {
	uint32_t max, mask; /* hash: mask + 1 slots, at least 2 * max */
	uint32_t n;
	uint32_t next_serial;
	uint32_t gen; /* the resync now (dpchan_q2_resync): 0 before the first */
	struct q2_ent *h;
	struct q2_ring order, waiting; /* max each */
	uint64_t *cnt;
	int fd; /* -1: memory only */
	const struct dpchan_q2_io *io;
	void *io_ctx;
	bool need_sync;
	/* The sync thread (dpchan_q2_sync_begin): fdatasyncs the file off the caller's loop. mu
	 * guards what the thread shares: want_gen, done_gen, th_err, stop and fd's value. */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv, done_cv;
	bool th_started, stop;
	uint64_t want_gen, done_gen; /* syncs asked for, and the last one ended */
	int th_err;                  /* the first failure since dpchan_q2_synced last read it */
	int efd;                     /* eventfd: a sync ended (-1: no thread) */
	bool io_failed;     /* logged: a write or sync failed since the file was last whole */
	bool rewrite;       /* the file may lack origins or end torn: written again whole */
	uint64_t file_recs; /* records in the file: compacted when over 2 n + 4096 */
	char path[Q2_PATH_MAX], tmp[Q2_PATH_MAX + 8];
};

/* ---- the hash ---- */
static uint32_t
slot_of(const struct dpchan_q2 *q, const struct dpchan_origin *o)
{
	uint64_t x = o->boot_id ^ (o->ref * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)o->lcore << 47);

	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 29;
	return (uint32_t)x & q->mask;
}

static bool
same(const struct q2_ent *e, const struct dpchan_origin *o)
{
	return e->serial != 0 && e->boot_id == o->boot_id && e->ref == o->ref &&
	    e->lcore == o->lcore;
}

static struct q2_ent *
find(const struct dpchan_q2 *q, const struct dpchan_origin *o)
{
	if (q->h == NULL)
		return NULL;
	for (uint32_t i = slot_of(q, o);; i = (i + 1) & q->mask) {
		struct q2_ent *e = &q->h[i];

		if (e->serial == 0)
			return NULL;
		if (same(e, o))
			return e;
	}
}

static void
del_slot(struct dpchan_q2 *q, struct q2_ent *e)
{
	uint32_t i = (uint32_t)(e - q->h), j = i;

	q->h[i].serial = 0;
	q->n--;
	for (;;) { /* backward shift: what probed past i moves back into it */
		struct dpchan_origin o;
		uint32_t home;

		j = (j + 1) & q->mask;
		if (q->h[j].serial == 0)
			break;
		o = (struct dpchan_origin){ q->h[j].boot_id, q->h[j].ref, q->h[j].lcore };
		home = slot_of(q, &o);
		if (((j - home) & q->mask) >= ((j - i) & q->mask)) {
			q->h[i] = q->h[j];
			q->h[j].serial = 0;
			i = j;
		}
	}
	q->cnt[DPCHAN_C_Q2_ORIGINS] = q->n;
}

/* ---- the file ---- */
/* ---- POSIX, the default I/O ---- */
static int
px_open(void *ctx, const char *path, int flags, mode_t mode)
{
	(void)ctx;
	return open(path, flags, mode);
}

static ssize_t
px_read(void *ctx, int fd, void *buf, size_t len)
{
	(void)ctx;
	return read(fd, buf, len);
}

static ssize_t
px_write(void *ctx, int fd, const void *buf, size_t len)
{
	(void)ctx;
	return write(fd, buf, len);
}

static int
px_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	return fdatasync(fd);
}

static int
px_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	return rename(from, to);
}

static const struct dpchan_q2_io q2_io_posix = {
	.open = px_open,
	.read = px_read,
	.write = px_write,
	.fdatasync = px_fdatasync,
	.rename = px_rename,
};

/* A write or sync failed: the file may lack what it was to hold (or end in a torn record, which
 * hides every record after it at the next open): written again whole at the next sync. */
static void
io_failed(struct dpchan_q2 *q, const char *what, int err)
{
	q->cnt[DPCHAN_C_Q2_IO_FAIL]++;
	if (!q->io_failed)
		log_err("dpchan: QoS 2 origins: %s %s: %s (written again whole at the next sync; "
			"until then a QoS 2 message its sensor sends again after a restart of both "
			"the agent and the dataplane may be stored twice)",
		    what, q->path, strerror(err));
	q->io_failed = true;
	q->rewrite = true;
}

static void
rec_put(uint8_t r[Q2_REC], uint8_t type, const struct dpchan_origin *o)
{
	uint32_t crc;

	memset(r, 0, Q2_REC);
	r[4] = type;
	memcpy(r + 8, &o->lcore, 4);
	memcpy(r + 12, &o->boot_id, 8);
	memcpy(r + 20, &o->ref, 8);
	crc = crc32c(r + 4, Q2_REC - 4, 0);
	memcpy(r, &crc, 4);
}

static void
file_append(struct dpchan_q2 *q, uint8_t type, const struct dpchan_origin *o)
{
	uint8_t r[Q2_REC];

	if (q->fd < 0)
		return;
	rec_put(r, type, o);
	errno = 0;
	if (q->io->write(q->io_ctx, q->fd, r, Q2_REC) != (ssize_t)Q2_REC) {
		io_failed(q, "write to", errno ? errno : EIO);
		return;
	}
	q->file_recs++;
	q->need_sync |= type == Q2_ADD;
}

static void
hdr_put(uint8_t h[Q2_HDR])
{
	uint32_t v = Q2_VERSION, crc;

	memcpy(h, Q2_MAGIC, 8);
	memcpy(h + 8, &v, 4);
	crc = crc32c(h, 12, 0);
	memcpy(h + 12, &crc, 4);
}

/* Everything held, as a new file renamed over the old one; 0 or -errno. */
static void th_idle(struct dpchan_q2 *q);

static int
compact(struct dpchan_q2 *q)
{
	size_t len = Q2_HDR + (size_t)q->n * Q2_REC, at = Q2_HDR;
	uint8_t *buf = malloc(len);
	int fd, rc = 0;
	char *dir, *slash;

	if (buf == NULL)
		return -ENOMEM;
	hdr_put(buf);
	for (uint32_t i = 0; q->h != NULL && i <= q->mask; i++) {
		const struct q2_ent *e = &q->h[i];

		if (e->serial != 0 && e->state == DPCHAN_Q2_HELD) {
			struct dpchan_origin o = { e->boot_id, e->ref, e->lcore };

			rec_put(buf + at, Q2_ADD, &o);
			at += Q2_REC;
		}
	}
	errno = 0;
	fd = q->io->open(q->io_ctx, q->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || q->io->write(q->io_ctx, fd, buf, at) != (ssize_t)at ||
	    q->io->fdatasync(q->io_ctx, fd) != 0 || q->io->rename(q->io_ctx, q->tmp, q->path) != 0)
		rc = -(errno ? errno : EIO);
	free(buf);
	if (rc != 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if ((dir = strdup(q->path)) != NULL && (slash = strrchr(dir, '/')) != NULL) {
		int dfd;

		*slash = '\0';
		if ((dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >=
		    0) {
			fsync(dfd);
			close(dfd);
		}
	}
	free(dir);
	th_idle(q); /* no sync of the old file in flight: it is closed now */
	if (q->th_started)
		pthread_mutex_lock(&q->mu);
	if (q->fd >= 0)
		close(q->fd);
	q->fd = fd;
	if (q->th_started)
		pthread_mutex_unlock(&q->mu);
	lseek(fd, 0, SEEK_END);
	q->file_recs = (at - Q2_HDR) / Q2_REC;
	q->need_sync = false;
	return 0;
}

/* ---- the table ---- */

static bool
live(const struct dpchan_q2 *q, const struct q2_ring_ent *r)
{
	const struct q2_ent *e = find(q, &r->o);

	return e != NULL && e->serial == (uint32_t)r->tag;
}

/* The order ring without the places of origins released since. */
static void
order_compact(struct dpchan_q2 *q)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < q->order.len; i++) {
		struct q2_ring_ent r = q->order.v[(q->order.head + i) % q->max];

		if (live(q, &r))
			q->order.v[(q->order.head + n++) % q->max] = r;
	}
	q->order.len = n;
}

/* Forget the oldest origin (the bound). */
static void
evict_oldest(struct dpchan_q2 *q)
{
	while (q->order.len > 0) {
		struct q2_ring_ent r = q->order.v[q->order.head];
		struct q2_ent *e = find(q, &r.o);

		q->order.head = (q->order.head + 1) % q->max;
		q->order.len--;
		if (e == NULL || e->serial != (uint32_t)r.tag)
			continue; /* released since: its place in the ring was stale */
		if (q->cnt[DPCHAN_C_Q2_EVICTED]++ == 0)
			log_warnx(
			    "dpchan: %u QoS 2 origins held: the oldest are forgotten unreleased "
			    "from now (raise dataplane.channel.max_qos2_origins)",
			    q->max);
		file_append(q, Q2_DEL, &r.o);
		del_slot(q, e);
		return;
	}
}

static struct q2_ent *
insert(struct dpchan_q2 *q, const struct dpchan_origin *o, uint8_t state, uint64_t token)
{
	struct q2_ent *e = find(q, o);
	uint32_t i;

	if (e != NULL) {
		e->state = state;
		e->token = token;
		return e;
	}
	if (q->h == NULL && (q->h = calloc((size_t)q->mask + 1, sizeof(*q->h))) == NULL) {
		log_err("dpchan: out of memory for the QoS 2 origins");
		q->cnt[DPCHAN_C_Q2_IO_FAIL]++;
		return NULL;
	}
	if (q->order.len == q->max)
		order_compact(q);
	if (q->n >= q->max)
		evict_oldest(q);
	if (++q->next_serial == 0)
		q->next_serial = 1;
	for (i = slot_of(q, o); q->h[i].serial != 0; i = (i + 1) & q->mask)
		;
	e = &q->h[i];
	*e = (struct q2_ent){ o->boot_id, o->ref, token, o->lcore, q->next_serial, state, q->gen };
	q->order.v[(q->order.head + q->order.len++) % q->max] =
	    (struct q2_ring_ent){ *o, q->next_serial };
	q->n++;
	q->cnt[DPCHAN_C_Q2_ORIGINS] = q->n;
	return e;
}

enum dpchan_q2_state
dpchan_q2_state(const struct dpchan_q2 *q, const struct dpchan_origin *o)
{
	const struct q2_ent *e = find(q, o);

	return e != NULL ? (enum dpchan_q2_state)e->state : DPCHAN_Q2_NONE;
}

void
dpchan_q2_taken(struct dpchan_q2 *q, const struct dpchan_origin *o, uint64_t token)
{
	if (q->waiting.len == q->max) { /* max awaiting durability: this one is not kept */
		q->cnt[DPCHAN_C_Q2_EVICTED]++;
		return;
	}
	if (insert(q, o, DPCHAN_Q2_WAITING, token) == NULL)
		return;
	q->waiting.v[(q->waiting.head + q->waiting.len++) % q->max] =
	    (struct q2_ring_ent){ *o, token };
}

void
dpchan_q2_held(struct dpchan_q2 *q, const struct dpchan_origin *o)
{
	const struct q2_ent *e = find(q, o);

	if (e != NULL && e->state == DPCHAN_Q2_HELD)
		return;
	if (insert(q, o, DPCHAN_Q2_HELD, 0) != NULL)
		file_append(q, Q2_ADD, o);
}

void
dpchan_q2_settle(struct dpchan_q2 *q, uint64_t first, uint64_t last, int status)
{
	(void)first; /* reports come in token order: every one up to last is settled now */
	while (q->waiting.len > 0) {
		struct q2_ring_ent *r = &q->waiting.v[q->waiting.head];
		struct q2_ent *e;

		if (r->tag > last)
			break;
		q->waiting.head = (q->waiting.head + 1) % q->max;
		q->waiting.len--;
		if ((e = find(q, &r->o)) == NULL || e->state != DPCHAN_Q2_WAITING ||
		    e->token != r->tag)
			continue; /* evicted meanwhile */
		if (status == 0) {
			e->state = DPCHAN_Q2_HELD;
			file_append(q, Q2_ADD, &r->o);
		} else {
			del_slot(q, e); /* never stored: a resend is stored anew */
		}
	}
}

bool
dpchan_q2_release(struct dpchan_q2 *q, const struct dpchan_origin *o)
{
	struct q2_ent *e = find(q, o);

	if (e == NULL)
		return false;
	if (e->state == DPCHAN_Q2_HELD) /* one still waiting was never written */
		file_append(q, Q2_DEL, o);
	del_slot(q, e); /* a waiting one's place in the waiting ring goes stale */
	return true;
}

void
dpchan_q2_resync(struct dpchan_q2 *q)
{
	if (++q->gen == 0)
		q->gen = 1;
}

void
dpchan_q2_mark(struct dpchan_q2 *q, const struct dpchan_origin *o)
{
	struct q2_ent *e = find(q, o);

	if (e != NULL)
		e->gen = q->gen;
}

uint32_t
dpchan_q2_sweep(struct dpchan_q2 *q, uint64_t boot_id)
{
	struct dpchan_origin *v;
	uint32_t n = 0;

	if (q->h == NULL || q->n == 0)
		return 0;
	/* gathered first: a deletion shifts entries back into slots already visited */
	if ((v = malloc((size_t)q->n * sizeof(*v))) == NULL) {
		log_err("dpchan: out of memory to forget the QoS 2 origins no longer held "
			"(kept until released or evicted)");
		q->cnt[DPCHAN_C_Q2_IO_FAIL]++;
		return 0;
	}
	for (uint32_t i = 0; i <= q->mask; i++) {
		const struct q2_ent *e = &q->h[i];

		if (e->serial != 0 && e->boot_id != boot_id && e->gen != q->gen)
			v[n++] = (struct dpchan_origin){ e->boot_id, e->ref, e->lcore };
	}
	for (uint32_t i = 0; i < n; i++)
		(void)dpchan_q2_release(q, &v[i]);
	free(v);
	q->cnt[DPCHAN_C_Q2_SWEPT] += n;
	return n;
}

int
dpchan_q2_sync(struct dpchan_q2 *q)
{
	int rc, err = 0;

	if (q->fd < 0)
		return 0;
	if (q->rewrite || q->file_recs > 2ull * q->n + 4096u) {
		if ((rc = compact(q)) == 0) {
			if (q->io_failed)
				log_info(
				    "dpchan: QoS 2 origins: %s written again whole (%u origins)",
				    q->path, q->n);
			q->rewrite = q->io_failed = false;
			return 0;
		}
		io_failed(q, "rewrite of", -rc);
		err = rc; /* what was appended since is synced all the same */
	}
	if (q->need_sync) {
		errno = 0;
		if (q->io->fdatasync(q->io_ctx, q->fd) != 0) {
			rc = -(errno ? errno : EIO);
			io_failed(q, "sync of", -rc);
			return rc;
		}
		q->need_sync = false;
	}
	return err;
}

/* ---- the sync thread ---- */

/* Wait until no sync is in flight (a rewrite replaces the file under it). */
static void
th_idle(struct dpchan_q2 *q)
{
	dpchan_q2_sync_wait(q, q->want_gen); /* only this (the caller's) thread raises want_gen */
}

static void *
th_main(void *arg)
{
	struct dpchan_q2 *q = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		uint64_t g;
		int fd, rc;

		while (!q->stop && q->done_gen == q->want_gen)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->done_gen == q->want_gen) /* stopping, nothing asked */
			break;
		g = q->want_gen;
		fd = q->fd;
		pthread_mutex_unlock(&q->mu);
		errno = 0;
		rc = q->io->fdatasync(q->io_ctx, fd) != 0 ? -(errno ? errno : EIO) : 0;
		pthread_mutex_lock(&q->mu);
		q->done_gen = g;
		if (rc != 0 && q->th_err == 0)
			q->th_err = rc;
		pthread_cond_broadcast(&q->done_cv);
		if (write(q->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			(void)0; /* the counter is saturated: readable already */
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* The thread, once: 0, or -errno (the caller then syncs on its own thread). */
static int
th_start(struct dpchan_q2 *q)
{
	int rc;

	if (q->th_started)
		return 0;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return -errno;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->done_cv, NULL);
	if ((rc = pthread_create(&q->th, NULL, th_main, q)) != 0) {
		pthread_cond_destroy(&q->done_cv);
		pthread_cond_destroy(&q->cv);
		pthread_mutex_destroy(&q->mu);
		close(q->efd);
		q->efd = -1;
		return -rc;
	}
	q->th_started = true;
	return 0;
}

static void
th_stop(struct dpchan_q2 *q)
{
	if (!q->th_started)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->th, NULL);
	pthread_cond_destroy(&q->done_cv);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	close(q->efd);
	q->efd = -1;
	q->th_started = false;
}

int
dpchan_q2_sync_begin(struct dpchan_q2 *q, uint64_t *gen)
{
	bool busy;

	*gen = 0;
	if (q->fd < 0)
		return 0;
	if (q->th_started) {
		pthread_mutex_lock(&q->mu);
		busy = q->done_gen != q->want_gen;
		pthread_mutex_unlock(&q->mu);
	} else {
		busy = false;
	}
	/* a rewrite is due: here (it syncs the new file itself). After a failure (the file may lack
	 * what was just written) at once, waiting for a sync in flight; when it has only grown,
	 * not while one is in flight */
	if (q->rewrite || (!busy && q->file_recs > 2ull * q->n + 4096u))
		return dpchan_q2_sync(q); /* compact() waits for the thread to be idle */
	if (!q->need_sync)
		return 0;
	if (!q->th_started)
		return dpchan_q2_sync(q); /* no thread: on the caller's */
	q->need_sync = false;
	pthread_mutex_lock(&q->mu);
	*gen = ++q->want_gen;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return 1;
}

void
dpchan_q2_sync_wait(struct dpchan_q2 *q, uint64_t gen)
{
	if (!q->th_started)
		return;
	pthread_mutex_lock(&q->mu);
	while (q->done_gen < gen)
		pthread_cond_wait(&q->done_cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

int
dpchan_q2_event_fd(const struct dpchan_q2 *q)
{
	return q->th_started ? q->efd : -1;
}

uint64_t
dpchan_q2_synced(struct dpchan_q2 *q)
{
	uint64_t v, g;
	int err;

	if (!q->th_started)
		return 0;
	if (read(q->efd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		(void)0; /* nothing ended since: the answer is the same */
	pthread_mutex_lock(&q->mu);
	g = q->done_gen;
	err = q->th_err;
	q->th_err = 0;
	pthread_mutex_unlock(&q->mu);
	if (err != 0)
		io_failed(q, "sync of", -err); /* written again whole at the next sync */
	return g;
}

uint32_t
dpchan_q2_count(const struct dpchan_q2 *q)
{
	return q->n;
}

/* ---- open: read the file back ---- */

/* The records after the header, read Q2_READ_BUF bytes at a time (a file at the bound, 2 n +
 * 4096 records of 32 bytes, took about 135,000 reads one record each). Their count in *good;
 * a read error: -errno (the rest is not torn, only unread: the caller must not write the file
 * anew without it). */
#define Q2_READ_BUF (2048u * Q2_REC)

static bool
load_rec(struct dpchan_q2 *q, const uint8_t r[Q2_REC])
{
	struct dpchan_origin o;
	uint32_t crc;

	memcpy(&crc, r, 4);
	if (crc != crc32c(r + 4, Q2_REC - 4, 0) || (r[4] != Q2_ADD && r[4] != Q2_DEL))
		return false;
	memcpy(&o.lcore, r + 8, 4);
	memcpy(&o.boot_id, r + 12, 8);
	memcpy(&o.ref, r + 20, 8);
	if (r[4] == Q2_ADD)
		insert(q, &o, DPCHAN_Q2_HELD, 0);
	else
		dpchan_q2_release(q, &o);
	return true;
}

static int
load_recs(struct dpchan_q2 *q, int fd, uint64_t *good)
{
	uint8_t *buf = malloc(Q2_READ_BUF);
	size_t have = 0, at;
	ssize_t n;
	int err = 0;

	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		n = q->io->read(q->io_ctx, fd, buf + have, Q2_READ_BUF - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = -errno; /* taken before free() could change it */
		if (n <= 0)
			break;
		have += (size_t)n;
		for (at = 0; have - at >= Q2_REC; at += Q2_REC) {
			if (!load_rec(q, buf + at))
				goto out; /* torn or corrupt from here */
			(*good)++;
		}
		memmove(buf, buf + at, have - at); /* a record's start, its rest in the next read */
		have -= at;
	}
out:
	free(buf);
	return err;
}

static int
load(struct dpchan_q2 *q)
{
	struct stat st;
	uint8_t hdr[Q2_HDR];
	uint32_t v, crc;
	uint64_t good = 0;
	int fd = open(q->path, O_RDONLY | O_CLOEXEC), rc;
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) != 0 || (n = q->io->read(q->io_ctx, fd, hdr, Q2_HDR)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	memcpy(&v, hdr + 8, 4);
	memcpy(&crc, hdr + 12, 4);
	if (n == Q2_HDR && memcmp(hdr, Q2_MAGIC, 8) == 0 && crc == crc32c(hdr, 12, 0) &&
	    v > Q2_VERSION) {
		close(fd);
		return -EPROTONOSUPPORT;
	}
	if (n != Q2_HDR || memcmp(hdr, Q2_MAGIC, 8) != 0 || crc != crc32c(hdr, 12, 0)) {
		close(fd);
		if (st.st_size > 0) {
			q->cnt[DPCHAN_C_Q2_TORN]++;
			log_warnx("dpchan: %s is not a QoS 2 origin file (or its header is torn): "
				  "ignored, written anew",
			    q->path);
		}
		return 0;
	}
	rc = load_recs(q, fd, &good);
	close(fd);
	if (rc != 0)
		return rc;
	if ((uint64_t)st.st_size > Q2_HDR + good * Q2_REC) {
		q->cnt[DPCHAN_C_Q2_TORN]++;
		log_warnx("dpchan: %s: %llu bytes after record %llu are torn or corrupt: the "
			  "origins up to there are kept",
		    q->path, (unsigned long long)(st.st_size - Q2_HDR - good * Q2_REC),
		    (unsigned long long)good);
	}
	q->cnt[DPCHAN_C_Q2_RECOVERED] += q->n;
	if (q->n > 0)
		log_info("dpchan: %u QoS 2 origins held from before (%s)", q->n, q->path);
	return 0;
}

struct dpchan_q2 *
dpchan_q2_open(
    const char *path, uint32_t max, uint64_t *cnt, const struct dpchan_q2_io *io, void *io_ctx)
{
	struct dpchan_q2 *q = calloc(1, sizeof(*q));
	uint32_t cap = 16;
	int rc;

	if (q == NULL)
		return NULL;
	q->max = max != 0 ? max : Q2_MAX_DEF;
	while (cap < 2 * q->max)
		cap <<= 1;
	q->mask = cap - 1;
	q->cnt = cnt;
	q->fd = -1;
	q->efd = -1;
	q->io = io != NULL ? io : &q2_io_posix;
	q->io_ctx = io_ctx;
	q->order.v = malloc((size_t)q->max * sizeof(*q->order.v));
	q->waiting.v = malloc((size_t)q->max * sizeof(*q->waiting.v));
	if (q->order.v == NULL || q->waiting.v == NULL) {
		dpchan_q2_close(q);
		errno = ENOMEM;
		return NULL;
	}
	if (path == NULL)
		return q;
	if (strlen(path) >= Q2_PATH_MAX) {
		dpchan_q2_close(q);
		errno = ENAMETOOLONG;
		return NULL;
	}
	snprintf(q->path, sizeof(q->path), "%s", path);
	snprintf(q->tmp, sizeof(q->tmp), "%s.tmp", path);
	if ((rc = load(q)) == 0)
		rc = compact(q); /* what was read back, as the new file; a torn tail goes */
	if (rc == 0 && (rc = th_start(q)) != 0) {
		log_warnx("dpchan: QoS 2 origins: no sync thread (%s): synced on the agent's loop",
		    strerror(-rc));
		rc = 0;
	}
	if (rc != 0) {
		if (rc == -EPROTONOSUPPORT)
			log_err("dpchan: %s was written by a newer version: not started", path);
		else
			log_err("dpchan: QoS 2 origin file %s: %s", path, strerror(-rc));
		dpchan_q2_close(q);
		errno = -rc;
		return NULL;
	}
	return q;
}

void
dpchan_q2_close(struct dpchan_q2 *q)
{
	if (q == NULL)
		return;
	th_stop(q); /* after the syncs asked for */
	if (q->fd >= 0) {
		if (q->rewrite)
			dpchan_q2_sync(q); /* a last try to leave it whole */
		else if (q->need_sync)
			q->io->fdatasync(q->io_ctx, q->fd);
		close(q->fd);
	}
	free(q->h);
	free(q->order.v);
	free(q->waiting.v);
	free(q);
}
