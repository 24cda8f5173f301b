/*
 * downlink_q2.c: the downlink's QoS 2 packet ids on disk (downlink_q2.h). The whole table is in
 * memory (512 KiB); each change is one 16-byte pwrite of its entry (value and checksum), then an
 * fdatasync where the order needs one.
 */
#include "downlink_q2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

#define Q2_IDS     65536u
#define Q2_PENDING (1ull << 62)
#define Q2_OWNED   (2ull << 62)
#define Q2_SEQ     (Q2_PENDING - 1)
#define Q2_ENT     16u /* bytes of an entry: u64 value, u32 CRC-32C of (id, value), u32 0 */
#define Q2_MAGIC   "edgegwQ2"
#define Q2_VERSION 2u /* 1: 8-byte entries without a checksum or header (read and converted) */
#define Q2_SIZE    ((size_t)Q2_IDS * Q2_ENT)

struct downlink_ids {
	const struct spool_io_ops *io;
	void *io_ctx;
	int fd;
	unsigned corrupt; /* entries whose checksum failed at open: freed */
	/* writes so far, and those an fdatasync covered: the loop writes, the spool's flusher may
	 * sync (downlink_ids_sync from the spool's before_commit) */
	_Atomic uint64_t gen, synced;
	uint64_t v[Q2_IDS]; /* the loop's alone */
};

static void
put_le(uint8_t *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *b, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* Entry id holding v: all zero when free (what a hole in the file reads as), else the value and
 * the CRC-32C of the id and the value. */
static void
ent_encode(uint8_t b[Q2_ENT], uint16_t id, uint64_t v)
{
	uint8_t k[10];

	memset(b, 0, Q2_ENT);
	if (v == 0)
		return;
	put_le(k, id, 2);
	put_le(k + 2, v, 8);
	put_le(b, v, 8);
	put_le(b + 8, crc32c(k, sizeof(k), 0), 4);
}

/* The value of entry id; false when it is not one ent_encode made (a flipped bit, garbage). */
static bool
ent_decode(const uint8_t b[Q2_ENT], uint16_t id, uint64_t *v)
{
	uint8_t want[Q2_ENT];

	*v = get_le(b, 8);
	ent_encode(want, id, *v);
	return memcmp(b, want, Q2_ENT) == 0 &&
	    ((*v & ~Q2_SEQ) == Q2_PENDING || *v == 0 || (*v & ~Q2_SEQ) == Q2_OWNED);
}

static void
hdr_encode(uint8_t b[Q2_ENT])
{
	memcpy(b, Q2_MAGIC, 8);
	put_le(b + 8, Q2_VERSION, 4);
	put_le(b + 12, crc32c(b, 12, 0), 4);
}

/* The header at the file's start (a new file, or one whose header was spoilt). */
static int
hdr_write(struct downlink_ids *q, const uint8_t hdr[Q2_ENT])
{
	errno = 0;
	if (q->io->pwrite(q->io_ctx, q->fd, hdr, Q2_ENT, 0) != (ssize_t)Q2_ENT)
		return errno != 0 ? -errno : -EIO;
	atomic_fetch_add(&q->gen, 1);
	return 0;
}

static int
q2_write(struct downlink_ids *q, uint16_t id, uint64_t v)
{
	uint8_t b[Q2_ENT];

	ent_encode(b, id, v);
	errno = 0;
	if (q->io->pwrite(q->io_ctx, q->fd, b, sizeof(b), (off_t)id * Q2_ENT) != (ssize_t)sizeof(b))
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

/*
 * The file as version 1 left it (an 8-byte value per id at id * 8, no header: its first 8 bytes,
 * id 0's, are zero), rewritten as this version beside it and renamed over it; fd then names the
 * new file, and *image its contents (read as any file of this version). What the old file says
 * is taken as it is (it has no checksum).
 */
static int
q2_convert(struct downlink_ids *q, const char *path, const uint8_t *old, size_t n, const char *dir,
    const uint8_t **image)
{
	static uint8_t buf[Q2_SIZE];
	char tmp[720];
	int fd, rc = 0;

	memset(buf, 0, sizeof(buf));
	hdr_encode(buf);
	for (uint32_t id = 1; id < Q2_IDS && (size_t)id * 8 + 8 <= n; id++)
		ent_encode(buf + (size_t)id * Q2_ENT, (uint16_t)id, get_le(old + id * 8, 8));
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if ((fd = q->io->open(q->io_ctx, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -errno;
	errno = 0;
	if (q->io->pwrite(q->io_ctx, fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
	    q->io->fdatasync(q->io_ctx, fd) != 0 || q->io->rename(q->io_ctx, tmp, path) != 0 ||
	    q->io->fsync_dir(q->io_ctx, dir) != 0) {
		rc = errno != 0 ? -errno : -EIO;
		q->io->close(q->io_ctx, fd);
		q->io->unlink(q->io_ctx, tmp);
		return rc;
	}
	q->io->close(q->io_ctx, q->fd);
	q->fd = fd;
	*image = buf;
	log_info("downlink: %s: converted from version 1 (no checksums)", path);
	return 0;
}

/* Load the table; settle what a crash left PENDING. */
static int
q2_load(struct downlink_ids *q, struct spool *sp, const char *path, const char *dir)
{
	static uint8_t buf[Q2_SIZE + 1];
	const uint8_t *ents = buf; /* the entries: the file's, or its conversion's */
	uint8_t hdr[Q2_ENT];
	ssize_t n = q->io->pread(q->io_ctx, q->fd, buf, sizeof(buf), 0);
	unsigned owned = 0, dropped = 0, bad = 0;
	uint32_t version;
	int rc;

	if (n < 0)
		return -errno;
	memset(buf + n, 0, sizeof(buf) - (size_t)n); /* a new or short file: free entries */
	hdr_encode(hdr);
	version = (uint32_t)get_le(buf + 8, 4);
	if (n == 0 || (n < (ssize_t)Q2_ENT && memcmp(buf, hdr, (size_t)n) == 0)) {
		/* new, or its header's first write cut short: the header on disk before any entry */
		if ((rc = hdr_write(q, hdr)) != 0)
			return rc;
	} else if (memcmp(buf, Q2_MAGIC, 8) == 0 && version > Q2_VERSION &&
	    get_le(buf + 12, 4) == crc32c(buf, 12, 0)) {
		log_warnx(
		    "downlink: %s: written by a newer version (format %u, this one reads %u): "
		    "left as it is",
		    path, version, Q2_VERSION);
		return -EPROTONOSUPPORT; /* as the spool's (spool_recover.c) */
	} else if (memcmp(buf, Q2_MAGIC, 8) != 0) {
		if (get_le(buf, 8) != 0 || (size_t)n > (size_t)Q2_IDS * 8) {
			log_warnx("downlink: %s: not a q2-ids file (%zd bytes)", path, n);
			return -EPROTO;
		}
		if ((rc = q2_convert(q, path, buf, (size_t)n, dir, &ents)) != 0)
			return rc;
	} else if (memcmp(buf, hdr, sizeof(hdr)) != 0) { /* the magic right, the rest not */
		log_warnx("downlink: %s: header checksum wrong: rewritten (entries have their own)",
		    path);
		q->corrupt++;
		if ((rc = hdr_write(q, hdr)) != 0)
			return rc;
	}
	for (uint32_t id = 1; id < Q2_IDS; id++) {
		uint64_t v;

		if (!ent_decode(ents + (size_t)id * Q2_ENT, (uint16_t)id, &v)) {
			/* a bit flipped or garbage: which state it held is unknown. Free is the
			 * side that cannot lose a message: a resend of it is delivered again */
			bad++;
			if ((rc = q2_write(q, (uint16_t)id, 0)) != 0)
				return rc;
			continue;
		}
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
	q->corrupt += bad;
	if (bad > 0)
		log_warnx("downlink: %s: %u entries failed their checksum: their ids are taken as "
			  "free (a cloud resend of such a message is delivered again)",
		    path, bad);
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
	if ((rc = q2_load(q, sp, path, dir)) != 0) {
		log_err("downlink: %s: %s", path, strerror(-rc));
		downlink_ids_close(q);
		return rc;
	}
	*out = q;
	return 0;
}

unsigned
downlink_ids_corrupt(const struct downlink_ids *q)
{
	return q->corrupt;
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
