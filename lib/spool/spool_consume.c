/*
 * spool_consume.c: the consumer's side (read in sequence order per class, from the oldest or
 * from a sequence number on (the uplink's live data), ack, QoS 2 marks, rewind) and the ack log that makes its progress survive a restart: acks.log, a header and
 * 24-byte entries (ack ranges, QoS 2 phases, VOID ranges of failed commits, the sequence floor),
 * appended by each commit and rewritten whole when it grows past 4 MiB.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "spool_internal.h"

/* ---- ack log entries in memory ---- */

static int
ent_push(struct spool_ack_ent **arr, uint32_t *n, uint32_t *cap, const struct spool_ack_ent *e)
{
	if (*n == *cap) {
		uint32_t c = *cap ? *cap * 2 : 1024;
		struct spool_ack_ent *a = realloc(*arr, (size_t)c * sizeof(*a));
		if (!a)
			return -ENOMEM;
		*arr = a;
		*cap = c;
	}
	struct spool_ack_ent x = *e;
	x.crc = spool_ack_crc(&x);
	(*arr)[(*n)++] = x;
	return 0;
}

int
spool_acklog_queue(struct spool *sp, const struct spool_ack_ent *e)
{
	return ent_push(&sp->ack_pend, &sp->ack_n, &sp->ack_cap, e);
}

int
spool_acklog_queue_flight(struct spool *sp, const struct spool_ack_ent *e)
{
	return ent_push(&sp->ack_flight, &sp->ack_flight_n, &sp->ack_flight_cap, e);
}

void
spool_acklog_requeue(struct spool *sp)
{
	for (uint32_t i = 0; i < sp->ack_n; i++)
		if (spool_acklog_queue_flight(sp, &sp->ack_pend[i]) < 0)
			break;
	struct spool_ack_ent *t = sp->ack_pend;
	uint32_t tc = sp->ack_cap;
	sp->ack_pend = sp->ack_flight;
	sp->ack_n = sp->ack_flight_n;
	sp->ack_cap = sp->ack_flight_cap;
	sp->ack_flight = t;
	sp->ack_flight_cap = tc;
	sp->ack_flight_n = 0;
}

/* ---- applying the log at open ---- */

static void
mark_range(struct spool *sp, unsigned s, uint64_t lo, uint64_t hi, uint8_t state)
{
	for (struct spool_seg *g = sp->st[s].head; g; g = g->next) {
		if (!g->n || g->idx[g->n - 1].seq < lo || g->idx[0].seq > hi)
			continue;
		uint32_t a = 0, b = g->n;
		while (a < b) {
			uint32_t m = (a + b) / 2;
			if (g->idx[m].seq < lo)
				a = m + 1;
			else
				b = m;
		}
		for (; a < g->n && g->idx[a].seq <= hi; a++) {
			if (g->idx[a].state != SPOOL_IDX_LIVE)
				continue;
			g->idx[a].state = state;
			g->live--;
		}
	}
}

/* An entry this code could have written: a known type, its numbers below SPOOL_SEQ_LIMIT, a
 * range not backwards and of a stream that exists, a QoS 2 phase that exists. One that fails is corrupt, as a bad CRC is
 * (applied, a range up to 2^64 - 1 would acknowledge every record appended after it, and
 * next_seq could not move past it). */
static bool
ent_valid(const struct spool_ack_ent *e)
{
	switch (e->type) {
	case SPOOL_ACK_RANGE:
		if (e->stream >= SPOOL_STREAMS)
			return false;
		/* fall through */
	case SPOOL_ACK_VOID:
		return e->lo <= e->hi && e->hi < SPOOL_SEQ_LIMIT;
	case SPOOL_ACK_Q2:
		return e->lo < SPOOL_SEQ_LIMIT && e->hi <= SPOOL_Q2_RELEASED;
	case SPOOL_ACK_FLOOR:
		return e->lo < SPOOL_SEQ_LIMIT;
	default:
		return false;
	}
}

/* An entry ent_valid took: its numbers below SPOOL_SEQ_LIMIT, its stream and phase real. */
static void
apply_ent(struct spool *sp, const struct spool_ack_ent *e)
{
	uint64_t top = e->type == SPOOL_ACK_RANGE || e->type == SPOOL_ACK_VOID ? e->hi : e->lo;
	if (top + 1 > sp->next_seq)
		sp->next_seq = top + 1;
	switch (e->type) {
	case SPOOL_ACK_RANGE:
		mark_range(sp, e->stream, e->lo, e->hi, SPOOL_IDX_ACKED);
		break;
	case SPOOL_ACK_VOID:
		for (unsigned s = 0; s < SPOOL_STREAMS; s++)
			mark_range(sp, s, e->lo, e->hi, SPOOL_IDX_DEAD);
		break;
	case SPOOL_ACK_Q2: {
		struct spool_idx *x = spool_find(sp, e->lo, NULL);
		if (x) {
			x->q2_state = (uint8_t)e->hi;
			x->q2_pid = e->pid;
		}
		break;
	}
	default:
		break;
	}
}

static int
write_fresh(struct spool *sp, int fd)
{
	struct spool_file_hdr h = { .version = SPOOL_FORMAT_VERSION, .hdr_len = sizeof(h) };
	memcpy(h.magic, SPOOL_ACK_MAGIC, 8);
	h.crc = spool_file_hdr_crc(&h);
	struct spool_ack_ent f = { .type = SPOOL_ACK_FLOOR, .lo = sp->next_seq - 1 };
	f.crc = spool_ack_crc(&f);
	uint8_t buf[sizeof(h) + sizeof(f)];
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &f, sizeof(f));
	if (sp->io->ftruncate(sp->io_ctx, fd, 0) < 0 ||
	    sp->io->pwrite(sp->io_ctx, fd, buf, sizeof(buf), 0) != sizeof(buf) ||
	    sp->io->fdatasync(sp->io_ctx, fd) < 0)
		return errno ? -errno : -EIO;
	sp->ack_size = sizeof(buf);
	return 0;
}

int
spool_read_whole(struct spool *sp, int fd, uint8_t **out, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	*out = malloc(*size ? *size : 1);
	if (!*out)
		return -ENOMEM;
	for (uint64_t off = 0; off < *size;) {
		ssize_t n = sp->io->pread(sp->io_ctx, fd, *out + off, *size - off, (off_t)off);
		if (n <= 0) {
			free(*out);
			return n < 0 ? -errno : -EIO;
		}
		off += (uint64_t)n;
	}
	return 0;
}

int
spool_acklog_open(struct spool *sp)
{
	char path[4096], tmp[4096];
	int rc = spool_path(sp, SPOOL_ACK_FILE, path, sizeof(path));
	if (!rc)
		rc = spool_path(sp, SPOOL_ACK_FILE ".tmp", tmp, sizeof(tmp));
	if (rc)
		return rc;
	sp->io->unlink(sp->io_ctx, tmp); /* a compaction that did not finish */
	int fd = sp->io->open(sp->io_ctx, path, O_RDWR | O_CREAT, 0640);
	if (fd < 0) {
		rc = -errno;
		log_err("spool: cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	sp->ack_fd = fd;
	uint8_t *b;
	uint64_t size;
	if ((rc = spool_read_whole(sp, fd, &b, &size)) < 0) {
		log_err("spool: cannot read %s: %s", path, strerror(-rc));
		return rc;
	}
	struct spool_file_hdr h;
	if (size >= sizeof(h))
		memcpy(&h, b, sizeof(h));
	bool hdr_ok = size >= sizeof(h) && !memcmp(h.magic, SPOOL_ACK_MAGIC, 8) &&
	    h.crc == spool_file_hdr_crc(&h);
	if (hdr_ok && h.version > SPOOL_FORMAT_VERSION) {
		free(b);
		log_err("spool: %s was written by a newer version (format %u, this one reads %u): "
			"refusing to open",
		    path, h.version, SPOOL_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (!hdr_ok) {
		if (size)
			log_err("spool: %s has a bad header (%" PRIu64
				" bytes): acknowledgements lost, records may be "
				"delivered again",
			    path, size);
		free(b);
		rc = write_fresh(sp, fd);
		if (!rc && sp->io->fsync_dir(sp->io_ctx, sp->dir) < 0)
			rc = -errno;
		return rc;
	}
	uint64_t off = sizeof(h), bad = 0;
	for (; off + sizeof(struct spool_ack_ent) <= size; off += sizeof(struct spool_ack_ent)) {
		struct spool_ack_ent e;
		memcpy(&e, b + off, sizeof(e));
		if (e.crc != spool_ack_crc(&e) || !ent_valid(&e)) {
			bad++;
			continue;
		}
		apply_ent(sp, &e);
	}
	free(b);
	if (bad) {
		sp->c[SPOOL_C_corrupt_records] += bad;
		log_err("spool: %s: %" PRIu64 " entries with a bad checksum or contents skipped",
		    path, bad);
	}
	if (off != size) {
		sp->c[SPOOL_C_torn_bytes] += size - off;
		if (sp->io->ftruncate(sp->io_ctx, fd, (off_t)off) < 0)
			return -errno;
	}
	sp->ack_size = off;
	return 0;
}

/* Rewrites the ack log from the state in memory: the floor, then per segment the runs of
 * records that are settled (acked or dead) and the QoS 2 phases of the live ones. */
int
spool_acklog_compact(struct spool *sp)
{
	struct spool_ack_ent *a = NULL;
	uint32_t n = 0, cap = 0;
	int rc = 0;
	pthread_mutex_lock(&sp->lock);
	struct spool_ack_ent f = { .type = SPOOL_ACK_FLOOR, .lo = sp->next_seq - 1 };
	rc = ent_push(&a, &n, &cap, &f);
	for (unsigned s = 0; s < SPOOL_STREAMS && !rc; s++) {
		for (struct spool_seg *g = sp->st[s].head; g && !rc; g = g->next) {
			for (uint32_t i = 0; i < g->n && !rc; i++) {
				struct spool_idx *x = &g->idx[i];
				if (x->state == SPOOL_IDX_LIVE) {
					if (x->q2_state) {
						struct spool_ack_ent q = { .type = SPOOL_ACK_Q2,
							.stream = (uint8_t)s,
							.pid = x->q2_pid,
							.lo = x->seq,
							.hi = x->q2_state };
						rc = ent_push(&a, &n, &cap, &q);
					}
					continue;
				}
				uint32_t j = i;
				while (j + 1 < g->n && g->idx[j + 1].state != SPOOL_IDX_LIVE)
					j++;
				struct spool_ack_ent r = { .type = SPOOL_ACK_RANGE,
					.stream = (uint8_t)s,
					.lo = x->seq,
					.hi = g->idx[j].seq };
				rc = ent_push(&a, &n, &cap, &r);
				i = j;
			}
		}
	}
	pthread_mutex_unlock(&sp->lock);
	char path[4096], tmp[4096];
	if (!rc)
		rc = spool_path(sp, SPOOL_ACK_FILE, path, sizeof(path));
	if (!rc)
		rc = spool_path(sp, SPOOL_ACK_FILE ".tmp", tmp, sizeof(tmp));
	int fd = -1;
	if (!rc && (fd = sp->io->open(sp->io_ctx, tmp, O_RDWR | O_CREAT | O_TRUNC, 0640)) < 0)
		rc = -errno;
	if (!rc) {
		struct spool_file_hdr h = { .version = SPOOL_FORMAT_VERSION, .hdr_len = sizeof(h) };
		memcpy(h.magic, SPOOL_ACK_MAGIC, 8);
		h.crc = spool_file_hdr_crc(&h);
		size_t len = (size_t)n * sizeof(*a);
		if (sp->io->pwrite(sp->io_ctx, fd, &h, sizeof(h), 0) != sizeof(h) ||
		    sp->io->pwrite(sp->io_ctx, fd, a, len, sizeof(h)) != (ssize_t)len ||
		    sp->io->fdatasync(sp->io_ctx, fd) < 0 ||
		    sp->io->rename(sp->io_ctx, tmp, path) < 0 ||
		    sp->io->fsync_dir(sp->io_ctx, sp->dir) < 0)
			rc = errno ? -errno : -EIO;
		else {
			sp->io->close(sp->io_ctx, sp->ack_fd);
			sp->ack_fd = fd;
			sp->ack_size = sizeof(h) + len;
			fd = -1;
		}
	}
	if (fd >= 0) {
		sp->io->close(sp->io_ctx, fd);
		sp->io->unlink(sp->io_ctx, tmp);
	}
	free(a);
	pthread_mutex_lock(&sp->lock);
	sp->c[rc ? SPOOL_C_acklog_errors : SPOOL_C_acklog_compactions]++;
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

/* ---- reading ---- */

/* The first record at or after the cursor (*segp, *posp) that is live and not given yet; moves
 * the cursor onto it (both the consumer's cursor and spool_read_live's use this). */
static struct spool_idx *
cursor_peek(struct spool_seg **segp, uint32_t *posp, struct spool_seg **outg)
{
	while (*segp) {
		struct spool_seg *g = *segp;
		for (; *posp < g->n; (*posp)++) {
			struct spool_idx *x = &g->idx[*posp];
			if (x->state == SPOOL_IDX_LIVE && !x->given) {
				*outg = g;
				return x;
			}
		}
		if (!g->next)
			return NULL; /* stay: more may be appended to this segment */
		*segp = g->next;
		*posp = 0;
	}
	return NULL;
}

static struct spool_idx *
stream_peek(struct spool *sp, unsigned s, struct spool_seg **segp)
{
	return cursor_peek(&sp->st[s].cur_seg, &sp->st[s].cur_pos, segp);
}

/* Places stream s's live cursor on its first record with seq >= from (lock held). */
static void
live_seek(struct spool *sp, unsigned s, uint64_t from)
{
	struct spool_stream *st = &sp->st[s];
	struct spool_seg *g = st->head;

	while (g && g->next && (!g->n || g->idx[g->n - 1].seq < from))
		g = g->next;
	st->live_seg = g;
	st->live_pos = 0;
	st->live_from = from;
	if (!g)
		return;
	uint32_t a = 0, b = g->n;
	while (a < b) {
		uint32_t m = (a + b) / 2;
		if (g->idx[m].seq < from)
			a = m + 1;
		else
			b = m;
	}
	st->live_pos = a;
}

/* The sequence number the live cursor stands at (the next record it looks at, or past its
 * segment's last). */
static uint64_t
live_at(const struct spool_stream *st)
{
	const struct spool_seg *g = st->live_seg;

	if (st->live_pos < g->n)
		return g->idx[st->live_pos].seq;
	return g->n ? g->idx[g->n - 1].seq + 1 : g->first_seq;
}

static struct spool_idx *
live_peek(struct spool *sp, unsigned s, uint64_t from, struct spool_seg **segp)
{
	struct spool_stream *st = &sp->st[s];

	/* A floor that moved up but not past the cursor keeps it: what lies behind the cursor was
	 * given or is gone (so the records given live are not stepped over again at each move). */
	if (st->live_seg && from > st->live_from && from <= live_at(st))
		st->live_from = from;
	if (!st->live_seg || st->live_from != from)
		live_seek(sp, s, from);
	return cursor_peek(&st->live_seg, &st->live_pos, segp);
}

static void
kill_rec(struct spool_seg *g, struct spool_idx *x)
{
	x->state = SPOOL_IDX_DEAD;
	g->live--;
}

/* Reads and checks record x of stream s (lock held) and marks it given. 1, -ENOBUFS (not given),
 * or 0 when it went bad or expired (the caller looks again). */
static int
fetch(struct spool *sp, unsigned s, struct spool_seg *g, struct spool_idx *x, struct spool_rec *rec,
    void *buf, size_t len)
{
	struct spool_rec_hdr h;
	ssize_t n = sp->io->pread(sp->io_ctx, g->fd, &h, sizeof(h), x->off);
	size_t body = n == sizeof(h) ? (size_t)h.topic_len + h.payload_len : 0;
	if (n != sizeof(h) || h.magic != SPOOL_REC_MAGIC || h.seq != x->seq ||
	    sizeof(h) + body != x->len) {
		sp->c[SPOOL_C_read_errors]++;
		LOG_RATELIMITED(LOG_LVL_ERR, 10,
		    "spool: record %" PRIu64 " in %s unreadable: skipped", x->seq, g->name);
		kill_rec(g, x);
		return 0;
	}
	*rec = (struct spool_rec){ .seq = h.seq,
		.time_ms = h.time_ms,
		.cls = (enum spool_class)(h.cls_qos >> 4),
		.qos = h.cls_qos & 0xf,
		.flags = h.flags,
		.q2_state = (enum spool_q2_state)x->q2_state,
		.q2_packet_id = x->q2_pid,
		.topic_len = h.topic_len,
		.payload_len = h.payload_len };
	if (body > len)
		return -ENOBUFS;
	uint64_t age = sp->cfg.policy[spool_stream_class(s)].max_age_ms;
	if (age && h.time_ms + age <= spool_now_ms(sp)) {
		sp->c[SPOOL_C_expired]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 10,
		    "spool: %s record %" PRIu64 " older than %" PRIu64 " ms: expired",
		    spool_class_name(spool_stream_class(s)), x->seq, age);
		kill_rec(g, x);
		return 0;
	}
	if ((size_t)sp->io->pread(sp->io_ctx, g->fd, buf, body, x->off + sizeof(h)) != body ||
	    spool_rec_crc(&h, buf) != h.crc) {
		sp->c[SPOOL_C_read_errors]++;
		LOG_RATELIMITED(LOG_LVL_ERR, 10,
		    "spool: record %" PRIu64 " in %s fails its checksum: skipped", x->seq, g->name);
		kill_rec(g, x);
		return 0;
	}
	rec->topic = buf;
	rec->payload = (const uint8_t *)buf + h.topic_len;
	x->given = 1; /* the cursors step over it */
	sp->c[SPOOL_C_delivered]++;
	return 1;
}

/* The next record of cls from a pair of cursors (the class's two streams, merged by seq). */
static int
read_class(struct spool *sp, enum spool_class cls, bool live, uint64_t from, struct spool_rec *rec,
    void *buf, size_t len)
{
	int rc = 0;
	unsigned s1 = spool_stream_of(cls, 1), s0 = spool_stream_of(cls, 0);

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		struct spool_seg *g1 = NULL, *g0 = NULL;
		struct spool_idx *x1 =
		    live ? live_peek(sp, s1, from, &g1) : stream_peek(sp, s1, &g1);
		struct spool_idx *x0 =
		    live ? live_peek(sp, s0, from, &g0) : stream_peek(sp, s0, &g0);
		if (!x1 && !x0)
			break;
		bool take1 = x1 && (!x0 || x1->seq < x0->seq);
		rc = take1 ? fetch(sp, s1, g1, x1, rec, buf, len)
			   : fetch(sp, s0, g0, x0, rec, buf, len);
		if (rc)
			break;
	}
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

int
spool_read(struct spool *sp, enum spool_class cls, struct spool_rec *rec, void *buf, size_t len)
{
	if (cls >= SPOOL_CLASS_N)
		return -EINVAL;
	return read_class(sp, cls, false, 0, rec, buf, len);
}

int
spool_read_live(struct spool *sp, enum spool_class cls, uint64_t from_seq, struct spool_rec *rec,
    void *buf, size_t len)
{
	if (cls >= SPOOL_CLASS_N)
		return -EINVAL;
	return read_class(sp, cls, true, from_seq, rec, buf, len);
}

int
spool_read_next(struct spool *sp, struct spool_rec *rec, void *buf, size_t len)
{
	for (unsigned c = 0; c < SPOOL_CLASS_N; c++) {
		int rc = spool_read(sp, (enum spool_class)c, rec, buf, len);
		if (rc)
			return rc;
	}
	return 0;
}

size_t
spool_q2_pending(struct spool *sp, uint64_t *seqs, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&sp->lock);
	for (unsigned c = 0; c < SPOOL_CLASS_N; c++) /* QoS 0 streams hold no QoS 2 record */
		for (struct spool_seg *g = sp->st[spool_stream_of((enum spool_class)c, 1)].head; g;
		     g = g->next)
			for (uint32_t i = 0; i < g->n && g->live; i++) {
				const struct spool_idx *x = &g->idx[i];
				if (x->state != SPOOL_IDX_LIVE || x->given ||
				    x->q2_state == SPOOL_Q2_NONE)
					continue;
				if (n < max)
					seqs[n] = x->seq;
				n++;
			}
	pthread_mutex_unlock(&sp->lock);
	return n;
}

int
spool_read_seq(struct spool *sp, uint64_t seq, struct spool_rec *rec, void *buf, size_t len)
{
	struct spool_seg *g;
	int rc = -ENOENT;

	pthread_mutex_lock(&sp->lock);
	struct spool_idx *x = spool_find(sp, seq, &g);
	if (x && x->state == SPOOL_IDX_LIVE && !x->given)
		rc = fetch(sp, g->stream, g, x, rec, buf, len);
	pthread_mutex_unlock(&sp->lock);
	return rc == 0 ? -ENOENT : rc;
}

void
spool_rewind(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		sp->st[s].cur_seg = sp->st[s].head;
		sp->st[s].cur_pos = 0;
		sp->st[s].live_seg = NULL;
		for (struct spool_seg *g = sp->st[s].head; g; g = g->next)
			for (uint32_t i = 0; i < g->n; i++)
				g->idx[i].given = 0;
	}
	pthread_mutex_unlock(&sp->lock);
}

int
spool_ack(struct spool *sp, uint64_t seq)
{
	struct spool_seg *g;
	int rc = 0;
	pthread_mutex_lock(&sp->lock);
	struct spool_idx *x = spool_find(sp, seq, &g);
	if (!x || x->state != SPOOL_IDX_LIVE) {
		rc = -ENOENT;
		goto out;
	}
	x->state = SPOOL_IDX_ACKED;
	g->live--;
	sp->c[SPOOL_C_acked]++;
	/* consecutive acks of one stream become one range entry */
	struct spool_ack_ent *last = sp->ack_n ? &sp->ack_pend[sp->ack_n - 1] : NULL;
	if (last && last->type == SPOOL_ACK_RANGE && last->stream == g->stream && x > g->idx &&
	    x[-1].seq == last->hi) {
		last->hi = seq;
		last->crc = spool_ack_crc(last);
	} else {
		struct spool_ack_ent e = {
			.type = SPOOL_ACK_RANGE, .stream = g->stream, .lo = seq, .hi = seq
		};
		rc = spool_acklog_queue(sp, &e);
	}
out:
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

int
spool_q2_mark(struct spool *sp, uint64_t seq, enum spool_q2_state state, uint16_t packet_id)
{
	if (state > SPOOL_Q2_RELEASED)
		return -EINVAL;
	struct spool_seg *g;
	int rc;
	pthread_mutex_lock(&sp->lock);
	struct spool_idx *x = spool_find(sp, seq, &g);
	if (!x || x->state != SPOOL_IDX_LIVE) {
		rc = -ENOENT;
	} else {
		x->q2_state = (uint8_t)state;
		x->q2_pid = packet_id;
		sp->c[SPOOL_C_q2_marks]++;
		struct spool_ack_ent e = { .type = SPOOL_ACK_Q2,
			.stream = g->stream,
			.pid = packet_id,
			.lo = seq,
			.hi = state };
		rc = spool_acklog_queue(sp, &e);
	}
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

int
spool_oldest_ms(struct spool *sp, uint64_t *out)
{
	int rc = 0;

	*out = 0;
	pthread_mutex_lock(&sp->lock);
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		/* the first live record of the stream is its oldest: records are in append order */
		for (struct spool_seg *g = sp->st[s].head; g != NULL; g = g->next) {
			struct spool_idx *x = NULL;
			struct spool_rec_hdr h;

			if (g->live == 0)
				continue;
			for (uint32_t i = 0; i < g->n && x == NULL; i++)
				if (g->idx[i].state == SPOOL_IDX_LIVE)
					x = &g->idx[i];
			if (x == NULL)
				continue;
			if (sp->io->pread(sp->io_ctx, g->fd, &h, sizeof(h), x->off) != sizeof(h) ||
			    h.magic != SPOOL_REC_MAGIC || h.seq != x->seq) {
				rc = -EIO;
				break;
			}
			if (*out == 0 || h.time_ms < *out)
				*out = h.time_ms;
			break;
		}
	}
	pthread_mutex_unlock(&sp->lock);
	return rc;
}
