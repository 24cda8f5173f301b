/*
 * spool.c: opening and closing a spool, the producers' append with the byte bound and the drop
 * policy, durability status, counters. The commit is in spool_commit.c, recovery in
 * spool_recover.c, the consumer in spool_consume.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"
#include "spool_internal.h"

static const struct {
	const char *name, *desc;
	enum spool_counter_kind kind;
} counter_info[SPOOL_C_N] = {
#define SPOOL_C(name, kind, desc) [SPOOL_C_##name] = { #name, desc, SPOOL_##kind },
#include "spool_counters.def"
#undef SPOOL_C
};

const char *
spool_counter_name(enum spool_counter c)
{
	return c < SPOOL_C_N ? counter_info[c].name : "?";
}

const char *
spool_counter_desc(enum spool_counter c)
{
	return c < SPOOL_C_N ? counter_info[c].desc : "?";
}

enum spool_counter_kind
spool_counter_kind(enum spool_counter c)
{
	return c < SPOOL_C_N ? counter_info[c].kind : SPOOL_COUNTER;
}

const char *
spool_class_name(enum spool_class cls)
{
	static const char *const names[SPOOL_CLASS_N] = { "alarm", "normal", "bulk" };
	return cls < SPOOL_CLASS_N ? names[cls] : "?";
}

void
spool_config_defaults(struct spool_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dir = SPOOL_DEFAULT_DIR;
	cfg->max_bytes = 1ull << 30;
	cfg->commit_max_wait_us = 1000;
	cfg->commit_bytes = 256u << 10;
	cfg->disk_full_retry_ms = 1000;
	cfg->policy[SPOOL_ALARM] =
	    (struct spool_class_policy){ .max_age_ms = 0, .drop_when_full = false };
	cfg->policy[SPOOL_NORMAL] = (struct spool_class_policy){ .max_age_ms = 7ull * 86400 * 1000,
		.drop_when_full = false };
	cfg->policy[SPOOL_BULK] = (struct spool_class_policy){ .max_age_ms = 1ull * 86400 * 1000,
		.drop_when_full = true };
	cfg->policy_set = true;
}

static void
config_fill(struct spool_config *c, const struct spool_config *in)
{
	struct spool_config d;
	spool_config_defaults(&d);
	*c = *in;
	if (!c->dir)
		c->dir = d.dir;
	if (!c->max_bytes)
		c->max_bytes = d.max_bytes;
	if (!c->segment_bytes) {
		c->segment_bytes = c->max_bytes / 32;
		if (c->segment_bytes < (64u << 10))
			c->segment_bytes = 64u << 10;
		if (c->segment_bytes > (64u << 20))
			c->segment_bytes = 64u << 20;
	}
	if (c->segment_bytes > (1ull << 30))
		c->segment_bytes = 1ull << 30; /* record offsets are 32-bit */
	if (!c->commit_max_wait_us)
		c->commit_max_wait_us = d.commit_max_wait_us;
	if (!c->commit_bytes)
		c->commit_bytes = d.commit_bytes;
	if (!c->buffer_bytes)
		c->buffer_bytes = 4 * c->commit_bytes;
	if (!c->disk_full_retry_ms)
		c->disk_full_retry_ms = d.disk_full_retry_ms;
	if (!c->policy_set)
		memcpy(c->policy, d.policy, sizeof(c->policy));
	if (!c->io)
		c->io = &spool_io_posix;
}

uint64_t
spool_now_ms(struct spool *sp)
{
	if (sp->cfg.now_ms)
		return sp->cfg.now_ms(sp->cfg.now_arg);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
spool_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
spool_path(struct spool *sp, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", sp->dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void
spool_seg_name(char *out, size_t len, unsigned stream, uint64_t first_seq)
{
	snprintf(out, len, "%s-q%c-%020" PRIu64 ".seg",
	    spool_class_name(spool_stream_class(stream)), spool_stream_qos0(stream) ? '0' : '1',
	    first_seq);
}

int
spool_seg_name_parse(const char *name, unsigned *stream, uint64_t *first_seq)
{
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		char pre[32];
		int n = snprintf(pre, sizeof(pre), "%s-q%c-",
		    spool_class_name(spool_stream_class(s)), spool_stream_qos0(s) ? '0' : '1');
		if (strncmp(name, pre, (size_t)n) != 0)
			continue;
		const char *p = name + n;
		if (strlen(p) != 24 || strcmp(p + 20, ".seg") != 0)
			return -EINVAL;
		uint64_t v = 0;
		for (int i = 0; i < 20; i++) {
			if (p[i] < '0' || p[i] > '9')
				return -EINVAL;
			v = v * 10 + (uint64_t)(p[i] - '0');
			if (v >= SPOOL_SEQ_LIMIT)
				return -EINVAL; /* no segment of ours is named so (nor wraps past 2^64) */
		}
		*stream = s;
		*first_seq = v;
		return 0;
	}
	return -EINVAL;
}

int
spool_idx_push(struct spool_seg *seg, const struct spool_idx *e)
{
	if (seg->n == seg->cap) {
		uint32_t cap = seg->cap ? seg->cap * 2 : 256;
		struct spool_idx *n = realloc(seg->idx, (size_t)cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		seg->idx = n;
		seg->cap = cap;
	}
	seg->idx[seg->n++] = *e;
	if (e->state == SPOOL_IDX_LIVE)
		seg->live++;
	return 0;
}

void
spool_seg_free(struct spool *sp, struct spool_seg *seg)
{
	if (seg->fd >= 0)
		sp->io->close(sp->io_ctx, seg->fd);
	free(seg->idx);
	free(seg);
}

/* The consumer's cursors never point at a segment that leaves its stream's list. */
void
spool_cursor_fix(struct spool *sp, struct spool_seg *gone)
{
	struct spool_stream *st = &sp->st[gone->stream];
	if (st->cur_seg == gone) {
		st->cur_seg = gone->next;
		st->cur_pos = 0;
	}
	if (st->live_seg == gone)
		st->live_seg = NULL; /* placed again at the next spool_read_live */
}

static void
seg_unlink_from_stream(struct spool *sp, struct spool_seg *seg)
{
	struct spool_stream *st = &sp->st[seg->stream];
	spool_cursor_fix(sp, seg);
	struct spool_seg **pp = &st->head, *prev = NULL;
	while (*pp && *pp != seg) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = seg->next;
	if (st->tail == seg)
		st->tail = prev;
	seg->next = NULL;
}

void
spool_seg_doom(struct spool *sp, struct spool_seg *seg)
{
	for (uint32_t i = 0; i < seg->n; i++)
		if (seg->idx[i].state == SPOOL_IDX_LIVE)
			seg->idx[i].state = SPOOL_IDX_DEAD;
	seg->live = 0;
	seg_unlink_from_stream(sp, seg);
	sp->seg_bytes -= seg->size;
	seg->next = sp->doomed;
	sp->doomed = seg;
}

struct spool_idx *
spool_find(struct spool *sp, uint64_t seq, struct spool_seg **segp)
{
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		for (struct spool_seg *g = sp->st[s].head; g; g = g->next) {
			if (!g->n || seq < g->idx[0].seq || seq > g->idx[g->n - 1].seq)
				continue;
			uint32_t lo = 0, hi = g->n;
			while (lo < hi) {
				uint32_t mid = (lo + hi) / 2;
				if (g->idx[mid].seq < seq)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < g->n && g->idx[lo].seq == seq) {
				if (segp)
					*segp = g;
				return &g->idx[lo];
			}
		}
	}
	return NULL;
}

/* ---- byte bound and drop policy ---- */

/* Victims in policy order: QoS 0 streams first (bulk, normal, alarm), then the QoS 1/2 streams
 * of bulk, normal, alarm where the class may drop; never a class more important than the
 * record that needs the room. Only sealed segments: the tail being written is the commit's. */
static struct spool_seg *
pick_victim(struct spool *sp, enum spool_class in_cls, uint8_t in_qos)
{
	static const unsigned order[SPOOL_STREAMS] = {
		SPOOL_BULK * 2 + 1,
		SPOOL_NORMAL * 2 + 1,
		SPOOL_ALARM * 2 + 1,
		SPOOL_BULK * 2,
		SPOOL_NORMAL * 2,
		SPOOL_ALARM * 2,
	};
	for (unsigned i = 0; i < SPOOL_STREAMS; i++) {
		unsigned s = order[i];
		enum spool_class cls = spool_stream_class(s);
		if (!spool_stream_qos0(s)) {
			if (!sp->cfg.policy[cls].drop_when_full)
				continue;
			/* a QoS 0 record never pushes out a QoS 1/2 one; a record only pushes out its
			 * own class or a less important one */
			if (in_qos == 0 || cls < in_cls)
				continue;
		}
		struct spool_seg *g = sp->st[s].head;
		if (g && g->sealed)
			return g;
	}
	return NULL;
}

static void
drop_segment(struct spool *sp, struct spool_seg *g, const char *why)
{
	unsigned s = g->stream;
	uint64_t n = g->live;
	enum spool_counter c = spool_stream_qos0(s) ? SPOOL_C_dropped_qos0
	    : spool_stream_class(s) == SPOOL_BULK   ? SPOOL_C_dropped_bulk
	    : spool_stream_class(s) == SPOOL_NORMAL ? SPOOL_C_dropped_normal
						    : SPOOL_C_dropped_alarm;
	sp->c[c] += n;
	sp->c[SPOOL_C_segments_dropped]++;
	log_warnx("spool: %s: dropped segment %s (%" PRIu64 " unacknowledged %s records, %" PRIu64
		  " bytes)",
	    why, g->name, n,
	    spool_stream_qos0(s) ? "QoS 0" : spool_class_name(spool_stream_class(s)), g->size);
	spool_seg_doom(sp, g);
}

static int
make_room(struct spool *sp, uint64_t need, enum spool_class cls, uint8_t qos)
{
	while (sp->seg_bytes + sp->buffered_bytes + need > sp->cfg.max_bytes) {
		struct spool_seg *g = pick_victim(sp, cls, qos);
		if (!g)
			return -ENOBUFS;
		drop_segment(sp, g, "full");
	}
	return 0;
}

int
spool_append(struct spool *sp, const struct spool_rec_in *in, uint64_t *seq_out)
{
	if (!in || in->cls >= SPOOL_CLASS_N || in->qos > 2 || in->payload_len > SPOOL_PAYLOAD_MAX ||
	    (in->topic_len && !in->topic) || (in->payload_len && !in->payload)) {
		pthread_mutex_lock(&sp->lock);
		sp->c[SPOOL_C_refused_invalid]++;
		pthread_mutex_unlock(&sp->lock);
		return in && in->payload_len > SPOOL_PAYLOAD_MAX ? -EMSGSIZE : -EINVAL;
	}
	uint32_t len = (uint32_t)sizeof(struct spool_rec_hdr) + in->topic_len + in->payload_len;
	unsigned s = spool_stream_of(in->cls, in->qos);
	struct spool_rec_hdr h = {
		.magic = SPOOL_REC_MAGIC,
		.time_ms = spool_now_ms(sp),
		.payload_len = in->payload_len,
		.topic_len = in->topic_len,
		.cls_qos = (uint8_t)(in->cls << 4 | in->qos),
		.flags = in->flags,
	};
	uint32_t body_crc =
	    crc32c(in->payload, in->payload_len, crc32c(in->topic, in->topic_len, 0));
	int rc = 0;
	pthread_mutex_lock(&sp->lock);
	struct spool_buf *b = &sp->st[s].buf;
	if (len > sp->cfg.buffer_bytes) {
		sp->c[SPOOL_C_refused_invalid]++;
		rc = -EMSGSIZE;
	} else if (sp->disk_full && spool_mono_ns() < sp->disk_full_until_ns) {
		sp->c[SPOOL_C_refused_disk_full]++;
		rc = -ENOBUFS;
	} else if (b->len + len > b->cap) {
		sp->c[SPOOL_C_refused_buffer]++;
		pthread_cond_signal(&sp->work_cond);
		rc = -ENOBUFS;
	} else if (make_room(sp, len, in->cls, in->qos) < 0) {
		sp->c[SPOOL_C_refused_full]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 10,
		    "spool: full (%" PRIu64 " bytes), refusing %s QoS %u records",
		    sp->cfg.max_bytes, spool_class_name(in->cls), in->qos);
		rc = -ENOBUFS;
	}
	if (rc) {
		pthread_mutex_unlock(&sp->lock);
		return rc;
	}
	h.seq = sp->next_seq++;
	uint8_t *p = b->data + b->len;
	if (in->topic_len)
		memcpy(p + sizeof(h), in->topic, in->topic_len);
	if (in->payload_len)
		memcpy(p + sizeof(h) + in->topic_len, in->payload, in->payload_len);
	h.crc = spool_rec_crc_finish(&h, body_crc);
	memcpy(p, &h, sizeof(h));
	b->len += len;
	b->nrec++;
	/* the first record since the last commit took the buffers: its wait starts now, and the
	 * flusher (asleep until there is work, or committing) is told. buffered_bytes is no sign:
	 * it still counts the commit in flight, so a record appended during a commit found it
	 * non-zero, set no start and woke nobody, and waited for the flusher's idle timeout
	 * (100 ms) instead of commit_max_wait_us */
	bool first = sp->oldest_buffered_ns == 0;
	if (first)
		sp->oldest_buffered_ns = spool_mono_ns();
	uint64_t before = sp->buffered_bytes;
	sp->buffered_bytes += len;
	sp->c[SPOOL_C_appended]++;
	sp->c[SPOOL_C_appended_bytes] += len;
	if (first || (before < sp->cfg.commit_bytes && sp->buffered_bytes >= sp->cfg.commit_bytes))
		pthread_cond_signal(&sp->work_cond);
	pthread_mutex_unlock(&sp->lock);
	if (seq_out)
		*seq_out = h.seq;
	return 0;
}

uint64_t
spool_next_seq(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	uint64_t n = sp->next_seq;
	pthread_mutex_unlock(&sp->lock);
	return n;
}

uint64_t
spool_durable_seq(const struct spool *sp)
{
	return atomic_load_explicit(&sp->resolved_seq, memory_order_acquire);
}

static int
seq_status_locked(struct spool *sp, uint64_t seq)
{
	if (seq > atomic_load(&sp->resolved_seq))
		return 0;
	unsigned n = sp->nfails < SPOOL_FAIL_RING ? sp->nfails : SPOOL_FAIL_RING;
	for (unsigned i = 0; i < n; i++)
		if (seq >= sp->fails[i].lo && seq <= sp->fails[i].hi)
			return sp->fails[i].err;
	return 1;
}

uint64_t
spool_last_failed_seq(const struct spool *sp)
{
	return atomic_load_explicit(&sp->last_failed_seq, memory_order_acquire);
}

int
spool_seq_status(struct spool *sp, uint64_t seq)
{
	pthread_mutex_lock(&sp->lock);
	int rc = seq_status_locked(sp, seq);
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

bool
spool_rec_kept(struct spool *sp, uint64_t seq)
{
	pthread_mutex_lock(&sp->lock);
	const struct spool_idx *x = spool_find(sp, seq, NULL);
	bool kept = x != NULL && x->state != SPOOL_IDX_DEAD;
	pthread_mutex_unlock(&sp->lock);
	return kept;
}

bool
spool_rec_acked(struct spool *sp, uint64_t seq)
{
	pthread_mutex_lock(&sp->lock);
	const struct spool_idx *x = spool_find(sp, seq, NULL);
	bool acked = x != NULL && x->state == SPOOL_IDX_ACKED;
	pthread_mutex_unlock(&sp->lock);
	return acked;
}

int
spool_wait_durable(struct spool *sp, uint64_t seq, uint32_t timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&sp->lock);
	int rc;
	while ((rc = seq_status_locked(sp, seq)) == 0 && !sp->stopping) {
		if (!sp->flusher_running) {
			pthread_mutex_unlock(&sp->lock);
			spool_commit(sp);
			pthread_mutex_lock(&sp->lock);
			continue;
		}
		if (pthread_cond_timedwait(&sp->settled_cond, &sp->lock, &until) == ETIMEDOUT) {
			rc = seq_status_locked(sp, seq);
			break;
		}
	}
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

void
spool_counters(struct spool *sp, uint64_t out[SPOOL_C_N])
{
	pthread_mutex_lock(&sp->lock);
	sp->c[SPOOL_C_bytes_used] = sp->seg_bytes + sp->buffered_bytes;
	uint64_t live = 0, segs = 0;
	for (unsigned s = 0; s < SPOOL_STREAMS; s++)
		for (struct spool_seg *g = sp->st[s].head; g; g = g->next) {
			live += g->live;
			segs++;
		}
	sp->c[SPOOL_C_records_live] = live;
	sp->c[SPOOL_C_segments] = segs;
	memcpy(out, sp->c, sizeof(sp->c));
	pthread_mutex_unlock(&sp->lock);
}

/* ---- open and close ---- */

static int
mkdir_p(const char *dir)
{
	char tmp[4096];
	if (strlen(dir) >= sizeof(tmp))
		return -ENAMETOOLONG;
	strcpy(tmp, dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int
buf_init(struct spool_buf *b, uint32_t cap)
{
	b->data = malloc(cap);
	b->cap = cap;
	b->len = b->nrec = 0;
	return b->data ? 0 : -ENOMEM;
}

static void
spool_free(struct spool *sp)
{
	for (unsigned s = 0; s < SPOOL_STREAMS; s++) {
		struct spool_stream *st = &sp->st[s];
		for (struct spool_seg *g = st->head, *n; g; g = n) {
			n = g->next;
			spool_seg_free(sp, g);
		}
		free(st->buf.data);
		free(st->flight.data);
	}
	for (struct spool_seg *g = sp->doomed, *n; g; g = n) {
		n = g->next;
		spool_seg_free(sp, g);
	}
	if (sp->ack_fd >= 0)
		sp->io->close(sp->io_ctx, sp->ack_fd);
	free(sp->ack_pend);
	free(sp->ack_flight);
	if (sp->lock_fd >= 0)
		close(sp->lock_fd);
	pthread_mutex_destroy(&sp->lock);
	pthread_mutex_destroy(&sp->commit_lock);
	pthread_cond_destroy(&sp->settled_cond);
	pthread_cond_destroy(&sp->work_cond);
	free(sp);
}

static int
lock_dir(struct spool *sp)
{
	char path[4096];
	int rc = spool_path(sp, SPOOL_LOCK_FILE, path, sizeof(path));
	if (rc)
		return rc;
	sp->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (sp->lock_fd < 0)
		return -errno;
	if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return 0;
}

int
spool_open(const struct spool_config *cfg_in, struct spool **out)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	config_fill(&sp->cfg, cfg_in);
	sp->io = sp->cfg.io;
	sp->io_ctx = sp->cfg.io_ctx;
	sp->lock_fd = sp->ack_fd = -1;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_mutex_init(&sp->commit_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->settled_cond, &ca);
	pthread_cond_init(&sp->work_cond, &ca);
	pthread_condattr_destroy(&ca);
	sp->next_seq = 1;
	int rc = 0;
	if (strlen(sp->cfg.dir) >= sizeof(sp->dir))
		rc = -ENAMETOOLONG;
	else
		strcpy(sp->dir, sp->cfg.dir);
	sp->cfg.dir = sp->dir;
	for (unsigned s = 0; s < SPOOL_STREAMS && !rc; s++) {
		rc = buf_init(&sp->st[s].buf, sp->cfg.buffer_bytes);
		if (!rc)
			rc = buf_init(&sp->st[s].flight, sp->cfg.buffer_bytes);
	}
	if (!rc && (rc = mkdir_p(sp->dir)) < 0)
		log_err("spool: cannot create %s: %s", sp->dir, strerror(-rc));
	if (!rc && (rc = lock_dir(sp)) < 0)
		log_err("spool: cannot lock %s: %s", sp->dir,
		    rc == -EBUSY ? "another process has it open" : strerror(-rc));
	if (!rc)
		rc = spool_recover(sp);
	if (!rc)
		rc = spool_acklog_open(sp);
	if (rc) {
		spool_free(sp);
		return rc;
	}
	atomic_store(&sp->resolved_seq, sp->next_seq - 1);
	*out = sp;
	return 0;
}

static void
stop_flusher(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	sp->stopping = true;
	pthread_cond_broadcast(&sp->work_cond);
	pthread_cond_broadcast(&sp->settled_cond);
	bool running = sp->flusher_running;
	pthread_mutex_unlock(&sp->lock);
	if (running)
		pthread_join(sp->flusher, NULL);
	sp->flusher_running = false;
}

void
spool_close(struct spool *sp)
{
	if (!sp)
		return;
	stop_flusher(sp);
	spool_commit(sp);
	spool_free(sp);
}

void
spool_abandon(struct spool *sp)
{
	if (!sp)
		return;
	stop_flusher(sp);
	spool_free(sp);
}
