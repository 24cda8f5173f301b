/*
 * downlink_q2.c: the downlink's QoS 2 packet ids on disk (downlink_q2.h). The whole table is in
 * memory (512 KiB); each change is one 8-byte pwrite of its entry, then an fdatasync where the
 * order needs one.
 */
#include "downlink_q2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define Q2_IDS     65536u
#define Q2_PENDING (1ull << 62)
#define Q2_OWNED   (2ull << 62)
#define Q2_SEQ     (Q2_PENDING - 1)

struct downlink_ids {
	const struct spool_io_ops *io;
	void *io_ctx;
	int fd;
	/* writes so far, and those an fdatasync covered: the loop writes, the spool's flusher may
	 * sync (downlink_ids_sync from the spool's before_commit) */
	_Atomic uint64_t gen, synced;
	uint64_t v[Q2_IDS]; /* the loop's alone */
};

static int
q2_write(struct downlink_ids *q, uint16_t id, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	errno = 0;
	if (q->io->pwrite(q->io_ctx, q->fd, b, sizeof(b), (off_t)id * 8) != (ssize_t)sizeof(b))
		return errno != 0 ? -errno : -EIO;
	q->v[id] = v;
	atomic_fetch_add(&q->gen, 1);
	return 0;
}

int
downlink_ids_sync(struct downlink_ids *q)
{
	uint64_t g = atomic_load(&q->gen), s = atomic_load(&q->synced);

	if (g == s)
		return 0;
	errno = 0;
	if (q->io->fdatasync(q->io_ctx, q->fd) != 0)
		return errno != 0 ? -errno : -EIO;
	while (s < g && !atomic_compare_exchange_weak(&q->synced, &s, g))
		; /* the other thread may have synced more meanwhile: keep the larger */
	return 0;
}

/* Load the table; settle what a crash left PENDING. */
static int
q2_load(struct downlink_ids *q, struct spool *sp)
{
	static uint8_t buf[Q2_IDS * 8];
	ssize_t n = q->io->pread(q->io_ctx, q->fd, buf, sizeof(buf), 0);
	unsigned owned = 0, dropped = 0;
	int rc;

	if (n < 0)
		return -errno;
	memset(buf + n, 0, sizeof(buf) - (size_t)n); /* a new or short file: free entries */
	for (uint32_t id = 1; id < Q2_IDS; id++) {
		uint64_t v = 0;

		for (int i = 7; i >= 0; i--)
			v = v << 8 | buf[id * 8 + (uint32_t)i];
		q->v[id] = v;
		if ((v & ~Q2_SEQ) == Q2_PENDING) {
			rc = sp != NULL && spool_rec_kept(sp, v & Q2_SEQ)
			    ? q2_write(q, (uint16_t)id, Q2_OWNED | (v & Q2_SEQ))
			    : q2_write(q, (uint16_t)id, 0);
			if (rc != 0)
				return rc;
			dropped += q->v[id] == 0;
		}
		owned += q->v[id] != 0;
	}
	if (owned > 0 || dropped > 0)
		log_info("downlink: %u QoS 2 messages from the cloud await their PUBREL (%u ids "
			 "freed: their messages never reached the spool)",
		    owned, dropped);
	return downlink_ids_sync(q);
}

int
downlink_ids_open(struct downlink_ids **out, const char *dir, struct spool *sp,
    const struct spool_io_ops *io, void *io_ctx)
{
	struct downlink_ids *q = calloc(1, sizeof(*q));
	char path[700];
	int rc;

	if (q == NULL)
		return -ENOMEM;
	q->io = io != NULL ? io : &spool_io_posix;
	q->io_ctx = io_ctx;
	snprintf(path, sizeof(path), "%s/q2-ids", dir);
	if ((q->fd = q->io->open(q->io_ctx, path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		free(q);
		return rc;
	}
	if ((rc = q2_load(q, sp)) != 0) {
		log_err("downlink: %s: %s", path, strerror(-rc));
		downlink_ids_close(q);
		return rc;
	}
	*out = q;
	return 0;
}

void
downlink_ids_close(struct downlink_ids *q)
{
	if (q == NULL)
		return;
	downlink_ids_sync(q);
	q->io->close(q->io_ctx, q->fd);
	free(q);
}

bool
downlink_ids_held(const struct downlink_ids *q, uint16_t id)
{
	return (q->v[id] & ~Q2_SEQ) == Q2_OWNED;
}

void
downlink_ids_each(
    const struct downlink_ids *q, void (*fn)(void *arg, uint16_t packet_id), void *arg)
{
	for (uint32_t id = 1; id < Q2_IDS; id++)
		if (downlink_ids_held(q, (uint16_t)id))
			fn(arg, (uint16_t)id);
}

int
downlink_ids_pending(struct downlink_ids *q, uint16_t id, uint64_t seq)
{
	return q2_write(q, id, Q2_PENDING | (seq & Q2_SEQ));
}

int
downlink_ids_before_commit(void *arg)
{
	struct downlink_ids **q = arg;

	return *q != NULL ? downlink_ids_sync(*q) : 0;
}

int
downlink_ids_own(struct downlink_ids *q, uint16_t id)
{
	if ((q->v[id] & ~Q2_SEQ) != Q2_PENDING)
		return 0; /* owned already, or freed meanwhile (its session lost): not taken again */
	return q2_write(q, id, Q2_OWNED | (q->v[id] & Q2_SEQ));
}

int
downlink_ids_free(struct downlink_ids *q, uint16_t id, uint64_t *need)
{
	int rc = id != 0 && q->v[id] != 0 ? q2_write(q, id, 0) : 0;

	*need = atomic_load(&q->gen);
	return rc;
}

bool
downlink_ids_durable(const struct downlink_ids *q, uint64_t need)
{
	return atomic_load(&((struct downlink_ids *)q)->synced) >= need;
}

int
downlink_ids_pubrel(struct downlink_ids *q, struct spool *sp, uint16_t id, uint64_t *need)
{
	int rc;

	if (need == NULL || id == 0)
		return downlink_ids_release(q, id);
	if ((rc = downlink_ids_free(q, id, need)) == 0 && !downlink_ids_durable(q, *need))
		spool_commit_request(sp); /* the commit's before_commit syncs the table */
	return rc;
}

int
downlink_ids_release(struct downlink_ids *q, uint16_t id)
{
	int rc = 0;

	if (id != 0)
		rc = q->v[id] != 0 ? q2_write(q, id, 0) : 0;
	for (uint32_t i = 1; id == 0 && i < Q2_IDS && rc == 0; i++)
		if (q->v[i] != 0)
			rc = q2_write(q, (uint16_t)i, 0);
	return rc != 0 ? rc : downlink_ids_sync(q);
}
