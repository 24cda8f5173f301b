/*
 * spool_recover.c: what spool_open finds on disk. Every segment is read whole and its records
 * checked (magic, lengths, class and QoS against the file's stream, increasing sequence numbers,
 * CRC-32C); after a bad spot the scan looks for the next record that checks out, so one
 * corruption costs only the bytes it hit. The tail of a stream's last segment that does not
 * check out is a torn write (no commit that covered it completed): it is cut off. A bad spot
 * anywhere else is corruption: counted, logged, skipped; a segment with nothing intact is set
 * aside as *.bad. A header that says a newer format refuses the open and changes nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "log.h"
#include "spool_internal.h"

struct found {
	unsigned stream;
	uint64_t first_seq;
	char name[SPOOL_NAME_MAX];
};

static int
found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	if (x->stream != y->stream)
		return x->stream < y->stream ? -1 : 1;
	return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

/* Length of a valid record at off, or 0. */
static uint32_t
rec_check(const uint8_t *b, uint64_t size, uint64_t off, unsigned s, uint64_t prev_seq)
{
	struct spool_rec_hdr h;
	if (off + sizeof(h) > size)
		return 0;
	memcpy(&h, b + off, sizeof(h));
	if (h.magic != SPOOL_REC_MAGIC || h.payload_len > SPOOL_PAYLOAD_MAX ||
	    (h.cls_qos & 0xf) > 2 || (h.cls_qos >> 4) >= SPOOL_CLASS_N ||
	    spool_stream_of((enum spool_class)(h.cls_qos >> 4), h.cls_qos & 0xf) != s ||
	    h.seq <= prev_seq || h.seq >= SPOOL_SEQ_LIMIT)
		return 0;
	uint64_t len = sizeof(h) + (uint64_t)h.topic_len + h.payload_len;
	if (off + len > size || spool_rec_crc(&h, b + off + sizeof(h)) != h.crc)
		return 0;
	return (uint32_t)len;
}

static uint64_t
resync(const uint8_t *b, uint64_t size, uint64_t off, unsigned s, uint64_t prev_seq)
{
	static const uint32_t magic = SPOOL_REC_MAGIC;
	for (uint64_t p = off + 1; p + sizeof(struct spool_rec_hdr) <= size; p++)
		if (!memcmp(b + p, &magic, 4) && rec_check(b, size, p, s, prev_seq))
			return p;
	return size;
}

static void
set_aside(struct spool *sp, const char *name)
{
	char from[4096], to[4096], bad[SPOOL_NAME_MAX + 8];
	snprintf(bad, sizeof(bad), "%s.bad", name);
	if (!spool_path(sp, name, from, sizeof(from)) && !spool_path(sp, bad, to, sizeof(to)))
		sp->io->rename(sp->io_ctx, from, to);
}

/* A segment is mapped rather than read: recovery of a big spool is bound by memory bandwidth,
 * and a copy of every byte would double it. Falls back to reading through the ops table. */
static int
seg_load(struct spool *sp, int fd, const uint8_t **b, uint64_t *size, bool *mapped)
{
	struct stat st;
	*mapped = false;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		void *m =
		    mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (m != MAP_FAILED) {
			*b = m;
			*size = (uint64_t)st.st_size;
			*mapped = true;
			return 0;
		}
	}
	uint8_t *r;
	int rc = spool_read_whole(sp, fd, &r, size);
	*b = r;
	return rc;
}

static void
seg_unload(const uint8_t *b, uint64_t size, bool mapped)
{
	if (mapped)
		munmap((void *)(uintptr_t)b, size);
	else
		free((void *)(uintptr_t)b);
}

static int
scan_segment(struct spool *sp, const struct found *f, bool last, uint64_t *prev_seq)
{
	char path[4096];
	int rc = spool_path(sp, f->name, path, sizeof(path));
	if (rc)
		return rc;
	int fd = sp->io->open(sp->io_ctx, path, O_RDWR, 0);
	if (fd < 0) {
		rc = -errno;
		log_err("spool: cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	const uint8_t *b;
	uint64_t size;
	bool mapped;
	if ((rc = seg_load(sp, fd, &b, &size, &mapped)) < 0) {
		log_err("spool: cannot read %s: %s", path, strerror(-rc));
		sp->io->close(sp->io_ctx, fd);
		return rc;
	}
	struct spool_file_hdr h = { 0 };
	if (size >= sizeof(h))
		memcpy(&h, b, sizeof(h));
	bool hdr_ok = size >= sizeof(h) && !memcmp(h.magic, SPOOL_SEG_MAGIC, 8) &&
	    h.crc == spool_file_hdr_crc(&h);
	if (hdr_ok && h.version > SPOOL_FORMAT_VERSION) {
		log_err("spool: %s was written by a newer version (format %u, this one reads %u): "
			"refusing to open",
		    path, h.version, SPOOL_FORMAT_VERSION);
		seg_unload(b, size, mapped);
		sp->io->close(sp->io_ctx, fd);
		return -EPROTONOSUPPORT;
	}
	hdr_ok = hdr_ok && h.version == SPOOL_FORMAT_VERSION && h.stream == f->stream &&
	    h.first_seq == f->first_seq;

	struct spool_seg *g = calloc(1, sizeof(*g));
	if (!g) {
		seg_unload(b, size, mapped);
		sp->io->close(sp->io_ctx, fd);
		return -ENOMEM;
	}
	g->fd = fd;
	g->stream = (uint8_t)f->stream;
	g->first_seq = f->first_seq;
	snprintf(g->name, sizeof(g->name), "%s", f->name);
	/* room for records of ~100 bytes up front: growing by doubling would copy the index */
	g->cap = (uint32_t)(size / 128 + 64);
	g->idx = malloc((size_t)g->cap * sizeof(*g->idx));
	if (!g->idx)
		g->cap = 0;
	uint64_t off = sizeof(h), end = sizeof(h), bad_bytes = 0, bad_spots = 0;
	while (off < size) {
		uint32_t len = rec_check(b, size, off, f->stream, *prev_seq);
		if (!len) {
			uint64_t next = resync(b, size, off, f->stream, *prev_seq);
			if (next == size)
				break; /* nothing valid after: the tail */
			bad_bytes += next - off;
			bad_spots++;
			off = next;
			continue;
		}
		struct spool_rec_hdr rh;
		memcpy(&rh, b + off, sizeof(rh));
		struct spool_idx e = { .seq = rh.seq, .off = (uint32_t)off, .len = len };
		if ((rc = spool_idx_push(g, &e)) < 0)
			break;
		if (sp->cfg.on_recovered != NULL && (rh.flags & sp->cfg.recover_flags) != 0)
			sp->cfg.on_recovered(sp->cfg.on_recovered_arg, rh.seq, rh.flags,
			    b + off + sizeof(rh) + rh.topic_len, rh.payload_len);
		if (rh.time_ms > g->newest_ms)
			g->newest_ms = rh.time_ms;
		if (!g->created_ms)
			g->created_ms = rh.time_ms;
		*prev_seq = rh.seq;
		off += len;
		end = off;
	}
	seg_unload(b, size, mapped);
	if (rc) {
		spool_seg_free(sp, g);
		return rc;
	}
	uint64_t tail = size > end ? size - end : 0;
	sp->c[SPOOL_C_recovered_segments]++;
	if (!g->n) {
		/* A last segment with nothing intact is one whose first commit never completed. */
		if (last) {
			sp->c[SPOOL_C_torn_bytes] += size;
			log_info("spool: %s: torn at creation (%" PRIu64
				 " bytes, no complete record): removed",
			    f->name, size);
			sp->io->unlink(sp->io_ctx, path);
		} else {
			sp->c[SPOOL_C_corrupt_segments]++;
			sp->c[SPOOL_C_corrupt_bytes] += size;
			log_err("spool: %s: no intact record in %" PRIu64
				" bytes: set aside as %s.bad",
			    f->name, size, f->name);
			set_aside(sp, f->name);
		}
		spool_seg_free(sp, g);
		return 0;
	}
	if (!hdr_ok) {
		sp->c[SPOOL_C_corrupt_segments]++;
		log_err(
		    "spool: %s: bad segment header; its %u intact records are kept", f->name, g->n);
	}
	if (bad_spots) {
		sp->c[SPOOL_C_corrupt_records] += bad_spots;
		sp->c[SPOOL_C_corrupt_bytes] += bad_bytes;
		log_err("spool: %s: %" PRIu64 " corrupt spots (%" PRIu64
			" bytes) skipped, %u intact records kept",
		    f->name, bad_spots, bad_bytes, g->n);
	}
	g->size = size;
	if (tail && last) {
		sp->c[SPOOL_C_torn_bytes] += tail;
		log_info("spool: %s: torn write of %" PRIu64 " bytes at the end: cut off", f->name,
		    tail);
		if (sp->io->ftruncate(sp->io_ctx, fd, (off_t)end) == 0) {
			sp->io->fdatasync(sp->io_ctx, fd);
			g->size = end;
		}
	} else if (tail) {
		sp->c[SPOOL_C_corrupt_records]++;
		sp->c[SPOOL_C_corrupt_bytes] += tail;
		log_err("spool: %s: %" PRIu64 " bad bytes at the end skipped", f->name, tail);
	} else if (last) {
		/* A process killed between its write and its fdatasync leaves records in the page
		 * cache only: they are read back here and count as durable from now on (a producer
		 * is told so when it sends them again), so they must be on disk first. Only the last
		 * segment of a stream can hold such a write. */
		sp->io->fdatasync(sp->io_ctx, fd);
	}
	g->sealed =
	    !last || !hdr_ok || bad_spots || g->size != end || g->size >= sp->cfg.segment_bytes;
	sp->c[SPOOL_C_recovered_records] += g->n;
	struct spool_stream *st = &sp->st[f->stream];
	if (st->tail)
		st->tail->next = g;
	else
		st->head = g;
	st->tail = g;
	if (!st->cur_seg)
		st->cur_seg = g;
	sp->seg_bytes += g->size;
	if (*prev_seq + 1 > sp->next_seq)
		sp->next_seq = *prev_seq + 1;
	return 0;
}

int
spool_recover(struct spool *sp)
{
	DIR *d = opendir(sp->dir);
	if (!d)
		return -errno;
	struct found *fs = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		unsigned s;
		uint64_t first;
		if (spool_seg_name_parse(de->d_name, &s, &first) < 0 ||
		    strlen(de->d_name) >= SPOOL_NAME_MAX)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct found *t = realloc(fs, cap * sizeof(*t));
			if (!t) {
				rc = -ENOMEM;
				break;
			}
			fs = t;
		}
		fs[n].stream = s;
		fs[n].first_seq = first;
		memcpy(fs[n].name, de->d_name, strlen(de->d_name) + 1); /* shorter: checked above */
		n++;
	}
	closedir(d);
	if (!rc && n)
		qsort(fs, n, sizeof(*fs), found_cmp);
	uint64_t prev_seq = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (i == 0 || fs[i].stream != fs[i - 1].stream)
			prev_seq = 0;
		bool last = i + 1 == n || fs[i + 1].stream != fs[i].stream;
		rc = scan_segment(sp, &fs[i], last, &prev_seq);
		/* a new segment is named by its first record's number: above every segment name
		 * found too, or one whose name says more than its records hold (a file renamed,
		 * damage) would share its name with a new one (found by tests/fuzz/spool) */
		if (fs[i].first_seq + 1 > sp->next_seq)
			sp->next_seq = fs[i].first_seq + 1;
	}
	free(fs);
	if (!rc && (sp->c[SPOOL_C_recovered_segments] || sp->c[SPOOL_C_torn_bytes]))
		log_info("spool: %s: %" PRIu64 " records in %" PRIu64
			 " segments recovered (%" PRIu64 " torn bytes cut, %" PRIu64
			 " corrupt bytes skipped, %" PRIu64 " segments with a bad header)",
		    sp->dir, sp->c[SPOOL_C_recovered_records], sp->c[SPOOL_C_recovered_segments],
		    sp->c[SPOOL_C_torn_bytes], sp->c[SPOOL_C_corrupt_bytes],
		    sp->c[SPOOL_C_corrupt_segments]);
	return rc;
}
