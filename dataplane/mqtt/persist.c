/*
 * persist.c: the broker's state across restarts. Each instance (one per worker lcore) keeps an
 * append-only journal of what a restart must find again (retained messages, persistent sessions
 * with their subscriptions, incoming QoS 2 ids awaiting PUBREL, outgoing QoS 1/2 messages queued
 * or in flight) and, from time to time, a snapshot of all of it that replaces the journal
 * (compaction). At open, the snapshot then the journal are replayed into the instance.
 *
 * Neighbours: the hooks are called from retain.c, session.c, handle_connect.c,
 * handle_publish.c, handle_subscribe.c, xlcore_session.c and xlcore.c (the outbox of QoS 1/2
 * messages posted to other lcores, and how far this instance journaled theirs: xlcore_int.h;
 * what is left of it is posted again at open) and broker_admin.c (the highest downlink ref
 * taken from the agent, in the write of the message it came with); conn.c writes what a call
 * journaled to the page cache when the call ends (broker_reap), before the transport sends
 * what it queued, so nothing a client was told is lost to a SIGKILL; broker_tick (timer.c)
 * syncs it to disk at most every state_sync_ms (power cuts) and compacts: both on the instance's
 * syncer thread (the compaction's snapshot serialized on the lcore, its files written, synced
 * and renamed there: compact_start, compact_io).
 * Format, promises and costs: docs/broker.md, "State across restarts".
 *
 * Files in the state directory, per instance n: broker-<n>.snap and broker-<n>.journal (and
 * broker-<n>.journal.next, the new journal while a compaction's files are written), each a
 * 32-byte header (magic, version, kind, generation, CRC-32C) and records: a 12-byte header
 * (CRC-32C over the rest of the header and the body, body length, type) and the body. A journal
 * whose generation is older than the snapshot's was folded into it already and is ignored. A
 * record that is cut short or fails its checksum ends the replay there (a torn tail after a
 * crash), counted PERSIST_TORN and logged; what was read before it is kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"
#include "mqtt_topic.h"
#include "xlcore_int.h"

#define P_MAGIC         "EGWBSTA1"
#define P_VERSION       1u
#define P_KIND_JOURNAL  1u
#define P_KIND_SNAPSHOT 2u
#define P_FILE_HDR      32u
#define P_REC_HDR       12u
/* The longest record a broker writes: a message of the largest packet MQTT allows (every byte
 * of it topic, payload and properties) with a client id and fixed fields; a longer length is
 * damage. Below what any record can be, a message the broker took under a large
 * max_packet_size ended the replay as torn, and the open's compaction dropped all after it. */
#define P_REC_MAX       (MQTT_MAX_PACKET_SIZE + (1u << 20))
#define P_COMPACT_MIN   (4u << 20) /* journal bytes before a compaction is considered */
#define P_SYNC_MS_DEF   1000u
#define P_PATH_MAX      300u
#define P_XSEQ_RUN_BITS 40u /* outbox numbers per run: a new run starts at the next 2^40 */

enum p_type {
	P_RETAIN = 1, /* msg */
	P_RETAIN_DEL, /* topic */
	P_SESS,       /* id, expiry_s, subscriptions: replaces what the session had */
	P_SESS_DEL,   /* id */
	P_RXQ2,       /* id, pid, add */
	P_MSG,        /* id, did, pid, state, qos, retain, sub_id, msg */
	P_MSG_STATE,  /* id, did, pid, state */
	P_MSG_DEL,    /* id, did */
	P_WILL,       /* id, ms left, delay_s, expiry_s, expires, msg: a pending delayed will */
	P_WILL_DEL,   /* id */
	P_XOUT,       /* seq, mask, kind, hops, filter, msg: a post to other instances (outbox) */
	P_XIN,        /* n, (instance, seq) n times: their outbox numbers journaled here */
	P_XACK,       /* instance, seq: it journaled our outbox up to seq */
	P_XSEQ,       /* seq: the last outbox number given (a snapshot's) */
	P_RXQ2_UP,    /* id, pid, boot_id, lcore, ref, confirmed: P_RXQ2 add, gone up under that
		       * origin (an older version skips it: the id is then journaled once durable) */
	P_DOWN_REF,   /* ref: the highest DOWN ref taken (broker_down_publish; an older version
		       * skips it: the agent's resend is then delivered again) */
	P_SESS_OFF,   /* id, expiry_s, deadline: the session went offline and ends then (an
		       * older version skips it: the expiry counts again from its start) */
};

/*
 * Times that run while the broker is down are written as wall-clock deadlines (CLOCK_REALTIME
 * ms, P_WALL set): a message's expiry, a delayed will's time, an offline session's end. The
 * broker's own clock is monotonic and starts again with the process: what was written as the
 * time left at the write came back whole at every restart, so a message that had expired
 * before a kill was delivered after it, a will waited its whole delay again, and a session
 * restarted more often than its expiry never ended. A value without P_WALL (written by an
 * older version) is the time left, as it was.
 */
#define P_WALL (1ull << 63)

static uint64_t
wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t (*broker_persist_wall_ms)(void) = wall_now_ms;

/* A deadline of the broker's clock (past: now) as written. */
static uint64_t
wall_of(uint64_t deadline_ms, uint64_t now_ms)
{
	return P_WALL |
	    (broker_persist_wall_ms() + (deadline_ms > now_ms ? deadline_ms - now_ms : 0));
}

/* The time left of a value as written: a wall-clock deadline (0 when past), or what an older
 * version wrote, the time left at its write. */
static uint64_t
left_of(uint64_t v)
{
	uint64_t wall;

	if (!(v & P_WALL))
		return v;
	wall = broker_persist_wall_ms();
	return (v & ~P_WALL) > wall ? (v & ~P_WALL) - wall : 0;
}

/* A compaction's file work, off the lcore (compact_start): the snapshot the lcore serialized,
 * synced and renamed over the old one; the journal of the new generation, which the lcore
 * already appends to at its `.next` name, synced and renamed over the old journal. */
struct p_job {
	uint8_t *snap; /* the snapshot's bytes (freed by the syncer) */
	size_t len;
	int old_fd;  /* the old journal: synced first (its records before the new one's), locked
		      * until the new journal holds its name */
	int next_fd; /* a dup of the new journal */
	uint64_t w;  /* the writes the old journal holds */
	bool busy;   /* handed over, its result not taken yet */
	bool done;   /* the syncer finished it: err says how */
	int err;
};

/* The periodic fdatasync and a compaction's files, off the lcore: the lcore hands over a dup of
 * the journal (so that a compaction may replace the journal meanwhile), or a compaction job,
 * and goes on; one at a time. */
struct p_syncer {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started, stop;
	int fd;     /* handed over, being synced until done (-1: idle) */
	int err;    /* a sync's failure, for the lcore to count and log (0: none) */
	uint64_t w; /* the journal writes (wseq) the handed fd holds */
	struct p_job job;
	_Atomic uint64_t synced; /* every journal write up to this one is on disk */
	_Atomic bool posted;     /* a sync or a job is handed over: the lcore's kick looks here,
				  * without the lock, at every iteration of its loop */
};

struct broker_persist {
	int fd; /* the journal */
	struct p_syncer sy;
	uint32_t inst, sync_ms;
	uint64_t gen;
	uint8_t *buf; /* records not written yet */
	size_t len, cap;
	uint64_t jbytes, snap_bytes; /* the journal's size; the last snapshot's */
	uint64_t last_sync_ms;
	uint64_t wseq;    /* journal writes so far (the lcore's); p_syncer.synced: those on disk */
	uint64_t kick_ns; /* the last sync broker_persist_sync_kick handed over */
	bool dirty;       /* written since the last fdatasync */
	bool replaying;   /* the hooks journal nothing while the files are read */
	bool failed;      /* a write failed: logged once until one works again */
	bool resnap;      /* a write failed: the next tick writes everything as a snapshot */
	uint32_t xout_lost; /* outbox entries read with no other instance to post them to */
	uint32_t bad;       /* records read that hold what no broker writes (bad_record) */
	char dir[P_PATH_MAX], jpath[P_PATH_MAX], spath[P_PATH_MAX], tpath[P_PATH_MAX];
	char npath
	    [P_PATH_MAX]; /* the new journal while its compaction runs: broker-n.journal.next */
};

static int compact_io(struct broker_persist *p, struct p_job *j);
static void write_failed(struct broker *b, int err);

unsigned broker_persist_fail_next;
broker_spawn_fn broker_persist_spawn;
int (*broker_persist_fdatasync)(int fd) = fdatasync;

/* Every journal write up to w is on disk (never moves back). */
static void
synced_up(struct p_syncer *y, uint64_t w)
{
	uint64_t s = atomic_load(&y->synced);

	while (s < w && !atomic_compare_exchange_weak(&y->synced, &s, w))
		;
}

static void *
syncer_main(void *arg)
{
	struct p_syncer *y = arg;

	pthread_mutex_lock(&y->mu);
	for (;;) {
		while (y->fd < 0 && !(y->job.busy && !y->job.done) && !y->stop)
			pthread_cond_wait(&y->cv, &y->mu);
		/* a compaction's files: finished before a stop */
		if (y->job.busy && !y->job.done) {
			struct broker_persist *p = (struct broker_persist *)((char *)y -
			    offsetof(struct broker_persist, sy));
			uint64_t w = y->job.w;
			int rc;

			pthread_mutex_unlock(&y->mu);
			/* on success the old journal is synced and the snapshot holds it all */
			if ((rc = compact_io(p, &y->job)) == 0)
				synced_up(y, w);
			pthread_mutex_lock(&y->mu);
			y->job.err = rc;
			y->job.done = true;
			atomic_store(&y->posted, false);
			pthread_cond_broadcast(&y->cv);
			continue;
		}
		if (y->fd < 0)
			break;
		int fd = y->fd, rc;
		uint64_t w = y->w;

		pthread_mutex_unlock(&y->mu);
		rc = broker_persist_fdatasync(fd) != 0 ? -errno : 0;
		close(fd);
		if (rc == 0)
			synced_up(y, w);
		pthread_mutex_lock(&y->mu);
		y->fd = -1;
		atomic_store(&y->posted, false);
		if (rc != 0)
			y->err = rc;
	}
	pthread_mutex_unlock(&y->mu);
	return NULL;
}

static int
spawn(pthread_t *th, const char *name, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(th, NULL, fn, arg);

	if (rc == 0)
		pthread_setname_np(*th, name);
	return -rc;
}

static void
syncer_start(struct broker_persist *p)
{
	struct p_syncer *y = &p->sy;
	char name[16];
	int rc;

	y->fd = -1;
	pthread_mutex_init(&y->mu, NULL);
	pthread_cond_init(&y->cv, NULL);
	snprintf(name, sizeof(name), "egw-sync-%u", p->inst);
	if ((rc = (broker_persist_spawn != NULL ? broker_persist_spawn : spawn)(
		 &y->th, name, syncer_main, y)) != 0) {
		log_warnx("broker %u: no syncer thread (%s): the lcore syncs its journal itself",
		    p->inst, strerror(rc < 0 ? -rc : rc));
		return;
	}
	y->started = true;
}

static void
syncer_stop(struct broker_persist *p)
{
	struct p_syncer *y = &p->sy;

	if (y->started) {
		pthread_mutex_lock(&y->mu);
		y->stop = true;
		pthread_cond_signal(&y->cv);
		pthread_mutex_unlock(&y->mu);
		pthread_join(y->th, NULL);
		y->started = false;
	}
	pthread_cond_destroy(&y->cv);
	pthread_mutex_destroy(&y->mu);
}

/* Hand the journal to the syncer: 0, or -EBUSY while it still syncs the last one (the next
 * tick tries again), or the sync's own failure when there is no thread (done here). */
static int
syncer_post(struct broker_persist *p)
{
	struct p_syncer *y = &p->sy;
	int fd, rc = 0;

	if (!y->started) {
		if (broker_persist_fdatasync(p->fd) != 0)
			return -errno;
		synced_up(y, p->wseq);
		return 0;
	}
	pthread_mutex_lock(&y->mu);
	if (y->fd >= 0 || y->job.busy)
		rc = -EBUSY;
	else if ((fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		rc = -errno;
	else {
		y->fd = fd;
		y->w = p->wseq;
		atomic_store(&y->posted, true);
	}
	if (rc == 0)
		pthread_cond_signal(&y->cv);
	pthread_mutex_unlock(&y->mu);
	return rc;
}

/* A sync of the journal handed over (syncer_post), counted; a failure to hand it over is
 * counted and logged as a failed write. Nothing while the syncer still runs the last one: a
 * later call asks again. */
static void
sync_post(struct broker *b, uint64_t now_ms)
{
	struct broker_persist *p = b->persist;
	int rc = syncer_post(p);

	if (rc == -EBUSY)
		return;
	if (rc != 0)
		write_failed(b, rc);
	p->dirty = false;
	p->last_sync_ms = now_ms;
	broker_count(b, BROKER_C_PERSIST_SYNC);
}

/* A failure the syncer saw since the last look (0: none). */
static int
syncer_err(struct broker_persist *p)
{
	struct p_syncer *y = &p->sy;
	int rc;

	if (!y->started)
		return 0;
	pthread_mutex_lock(&y->mu);
	rc = y->err;
	y->err = 0;
	pthread_mutex_unlock(&y->mu);
	return rc;
}

/* ---- record writer: into a growable buffer ---- */
struct pbuf {
	uint8_t *buf;
	size_t len, cap;
	bool oom;
};

/* The buffer grows (or is out of memory): put() inlines the common case, so that a record's
 * fixed-size fields are plain stores (the calls were a third of a journaled message's cost:
 * callgrind, bench_broker_persist). */
static void
put_slow(struct pbuf *w, const void *p, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap != 0 ? w->cap : 4096;
		uint8_t *nb;

		while (cap < w->len + n)
			cap *= 2;
		if ((nb = realloc(w->buf, cap)) == NULL) {
			w->oom = true;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static inline __attribute__((always_inline)) void
put(struct pbuf *w, const void *p, size_t n)
{
	if (__builtin_expect(w->oom || w->len + n > w->cap, 0)) {
		put_slow(w, p, n);
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void
put_u8(struct pbuf *w, uint8_t v)
{
	put(w, &v, 1);
}
static void
put_u16(struct pbuf *w, uint16_t v)
{
	put(w, &v, 2);
}
static void
put_u32(struct pbuf *w, uint32_t v)
{
	put(w, &v, 4);
}
static void
put_u64(struct pbuf *w, uint64_t v)
{
	put(w, &v, 8);
}
static void
put_str(struct pbuf *w, const char *s, uint16_t n)
{
	put_u16(w, n);
	put(w, s, n);
}

/* Begin a record: its header is filled in by rec_end. */
static size_t
rec_begin(struct pbuf *w, enum p_type t)
{
	size_t at = w->len;
	uint8_t hdr[P_REC_HDR] = { 0 };

	hdr[8] = (uint8_t)t;
	put(w, hdr, sizeof(hdr));
	return at;
}

static void
rec_end(struct pbuf *w, size_t at)
{
	uint32_t len, crc;

	if (w->oom)
		return;
	len = (uint32_t)(w->len - at - P_REC_HDR);
	memcpy(w->buf + at + 4, &len, 4);
	crc = crc32c(w->buf + at + 4, w->len - at - 4, 0);
	memcpy(w->buf + at, &crc, 4);
}

static void
put_msg(struct pbuf *w, const struct broker_msg *m, uint64_t now_ms)
{
	const uint32_t *ids = broker_msg_sub_ids(m);

	put_u8(w, m->qos);
	put_u8(w, m->retain);
	put_u64(w, m->expiry_ms == 0 ? 0 : wall_of(m->expiry_ms, now_ms));
	put_u8(w, m->has_pfi ? m->pfi : 0xff);
	put_str(w, m->topic.s, m->topic.len);
	put_u32(w, m->payload_len);
	put(w, m->payload, m->payload_len);
	put_str(w, m->content_type.s, m->content_type.len);
	put_str(w, m->response_topic.s, m->response_topic.len);
	put_str(w, m->correlation.s, m->correlation.len);
	put_u16(w, m->n_user);
	for (uint16_t i = 0; i < m->n_user; i++) {
		put_str(w, m->user[i].key.s, m->user[i].key.len);
		put_str(w, m->user[i].val.s, m->user[i].val.len);
	}
	put_u16(w, m->n_sub_ids);
	for (uint16_t i = 0; i < m->n_sub_ids; i++)
		put_u32(w, ids[i]);
}

/* ---- record reader ---- */
struct preader {
	const uint8_t *p;
	size_t n;
	bool bad;
	bool counted; /* bad, and counted so (bad_record) */
};

static const void *
get(struct preader *r, size_t n)
{
	const void *at = r->p;

	if (r->bad || r->n < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->n -= n;
	return at;
}

#define GET_FN(name, type)                          \
	static type name(struct preader *r)         \
	{                                           \
		type v = 0;                         \
		const void *at = get(r, sizeof(v)); \
		if (at != NULL)                     \
			memcpy(&v, at, sizeof(v));  \
		return v;                           \
	}
GET_FN(get_u8, uint8_t)
GET_FN(get_u16, uint16_t)
GET_FN(get_u32, uint32_t)
GET_FN(get_u64, uint64_t)

static struct mqtt_str
get_str(struct preader *r)
{
	uint16_t n = get_u16(r);
	const char *s = get(r, n);

	return (struct mqtt_str){ s != NULL ? s : "", s != NULL ? n : 0 };
}

/*
 * A record whose CRC checks out but that holds what no broker writes (a QoS, a delivery state,
 * a topic or a filter out of range: damage that kept the CRC, or a file made by hand) is
 * skipped whole and counted (PERSIST_BAD), never taken into the state. Found by
 * tests/fuzz/broker/fuzz_broker_persist: a delivery owed a PUBREL (its message already let
 * go) taken back to waiting for its PUBREC was resent without a message when its client
 * returned, and the broker crashed on it, at every restart.
 */
static void
bad_record(struct broker *b, struct preader *r)
{
	r->bad = true;
	if (r->counted)
		return;
	r->counted = true;
	b->persist->bad++;
	broker_count(b, BROKER_C_PERSIST_BAD);
}

/* A message as put_msg wrote it; NULL when malformed (counted: bad_record) or out of memory
 * (counted: NOMEM). Its user properties and subscription identifiers are as many as the
 * message had (a PUBLISH may carry thousands of user properties): on the stack up to 64, on the
 * heap beyond. */
static struct broker_msg *
get_msg(struct broker *b, struct preader *r)
{
	struct mqtt_props props = { 0 };
	struct mqtt_user_prop user_s[64], *user = user_s;
	uint32_t ids_s[64], *ids = ids_s;
	uint8_t qos = get_u8(r), retain = get_u8(r), pfi;
	uint64_t expiry_left = get_u64(r);
	struct mqtt_str topic, ct, rt, corr;
	struct mqtt_iov pl;
	uint16_t n_user, n_ids;
	struct broker_msg *m = NULL, *c;

	pfi = get_u8(r);
	topic = get_str(r);
	pl.len = get_u32(r);
	pl.base = get(r, pl.len);
	ct = get_str(r);
	rt = get_str(r);
	corr = get_str(r);
	n_user = get_u16(r);
	if (!r->bad && n_user > 64 && (user = malloc(n_user * sizeof(*user))) == NULL)
		goto nomem;
	for (uint16_t i = 0; i < n_user && !r->bad; i++) {
		user[i].key = get_str(r);
		user[i].val = get_str(r);
	}
	n_ids = get_u16(r);
	if (!r->bad && n_ids > 64 && (ids = malloc(n_ids * sizeof(*ids))) == NULL)
		goto nomem;
	for (uint16_t i = 0; i < n_ids && !r->bad; i++)
		ids[i] = get_u32(r);
	if (r->bad || qos > 2 || mqtt_topic_name_valid(topic.s, topic.len) != 0) {
		bad_record(b, r);
		goto out;
	}
	if (pfi != 0xff)
		mqtt_props_set_u32(&props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, pfi);
	if (ct.len > 0)
		mqtt_props_set_str(&props, MQTT_PROP_CONTENT_TYPE, ct);
	if (rt.len > 0)
		mqtt_props_set_str(&props, MQTT_PROP_RESPONSE_TOPIC, rt);
	if (corr.len > 0)
		mqtt_props_set_str(&props, MQTT_PROP_CORRELATION_DATA, corr);
	props.user = user;
	props.n_user = n_user;
	if ((m = broker_msg_new(b, topic, &pl, 1, &props, b->now_ms)) == NULL)
		goto out;
	m->qos = qos;
	m->retain = retain != 0;
	if (expiry_left != 0) { /* none left: expired now */
		m->expiry_ms = b->now_ms + left_of(expiry_left);
		m->expiry_ms += m->expiry_ms == 0;
	}
	if (n_ids > 0) {
		c = broker_msg_with_sub_ids(b, m, ids, n_ids);
		broker_msg_unref(m);
		m = c;
	}
	goto out;
nomem:
	broker_count(b, BROKER_C_NOMEM);
out:
	if (user != user_s)
		free(user);
	if (ids != ids_s)
		free(ids);
	return m;
}

/* ---- files ---- */
static int
write_all(int fd, const uint8_t *p, size_t n)
{
	if (broker_persist_fail_next > 0) {
		broker_persist_fail_next--;
		return -EIO;
	}
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
file_hdr(uint8_t hdr[P_FILE_HDR], uint32_t kind, uint64_t gen)
{
	uint32_t ver = P_VERSION, crc;

	memset(hdr, 0, P_FILE_HDR);
	memcpy(hdr, P_MAGIC, 8);
	memcpy(hdr + 8, &ver, 4);
	memcpy(hdr + 12, &kind, 4);
	memcpy(hdr + 16, &gen, 8);
	crc = crc32c(hdr, 28, 0);
	memcpy(hdr + 28, &crc, 4);
}

/* 0 and the generation, -EPROTONOSUPPORT for a newer version, -EINVAL when not ours. */
static int
file_hdr_check(const uint8_t *hdr, size_t n, uint32_t kind, uint64_t *gen)
{
	uint32_t ver, k, crc;

	if (n < P_FILE_HDR || memcmp(hdr, P_MAGIC, 8) != 0)
		return -EINVAL;
	memcpy(&crc, hdr + 28, 4);
	if (crc != crc32c(hdr, 28, 0))
		return -EINVAL;
	memcpy(&ver, hdr + 8, 4);
	memcpy(&k, hdr + 12, 4);
	memcpy(gen, hdr + 16, 8);
	if (ver > P_VERSION)
		return -EPROTONOSUPPORT;
	return k == kind ? 0 : -EINVAL;
}

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Whole file into memory; -ENOENT when absent. */
static int
read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *p;
	size_t got = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || (p = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*out = p;
	*len = got;
	return 0;
}

/* ---- the hooks ---- */
static struct pbuf
pb_of(struct broker_persist *p)
{
	return (struct pbuf){ p->buf, p->len, p->cap, false };
}

static void
pb_keep(struct broker *b, struct broker_persist *p, const struct pbuf *w, size_t at)
{
	p->buf = w->buf;
	p->cap = w->cap;
	if (w->oom) { /* the record is lost: the state on disk is behind memory */
		broker_count(b, BROKER_C_PERSIST_FAIL);
		p->len = at;
		return;
	}
	p->len = w->len;
}

static bool
journaling(const struct broker *b)
{
	return b->persist != NULL && !b->persist->replaying;
}

static bool
sess_journaling(const struct broker_session *s)
{
	return s->persisted && journaling(s->b);
}

void
broker_persist_retain(struct broker *b, const struct broker_msg *m, bool set)
{
	struct broker_persist *p = b->persist;
	struct pbuf w;
	size_t at;

	if (!journaling(b))
		return;
	w = pb_of(p);
	at = rec_begin(&w, set ? P_RETAIN : P_RETAIN_DEL);
	if (set)
		put_msg(&w, m, b->now_ms);
	else
		put_str(&w, m->topic.s, m->topic.len);
	rec_end(&w, at);
	pb_keep(b, p, &w, at);
}

static void put_will(struct pbuf *w, struct broker_session *s);

static void
put_sess(struct pbuf *w, const struct broker_session *s)
{
	size_t at = rec_begin(w, P_SESS);

	put_str(w, s->client_id, s->id_len);
	put_u32(w, s->expiry_s);
	put_u32(w, s->n_subs);
	for (const struct broker_sub *sub = s->subs; sub != NULL; sub = sub->next_in_sess) {
		put_str(w, sub->filter, sub->filter_len);
		put_u8(w, sub->qos);
		put_u8(w, (uint8_t)(sub->no_local | sub->rap << 1));
		put_u32(w, sub->sub_id);
	}
	rec_end(w, at);
}

static void
put_id_rec(struct pbuf *w, enum p_type t, const struct broker_session *s)
{
	size_t at = rec_begin(w, t);

	put_str(w, s->client_id, s->id_len);
	rec_end(w, at);
}

/* An offline session's end, as a wall-clock deadline. */
static void
put_sess_off(struct pbuf *w, const struct broker_session *s)
{
	size_t at = rec_begin(w, P_SESS_OFF);

	put_str(w, s->client_id, s->id_len);
	put_u32(w, s->expiry_s);
	put_u64(w, wall_of(s->expire_at_ms, s->b->now_ms));
	rec_end(w, at);
}

static void
put_msg_rec(struct pbuf *w, const struct broker_session *s, uint32_t did, uint16_t pid,
    uint8_t state, const struct broker_msg *m, uint8_t qos, bool retain, uint32_t sub_id)
{
	size_t at = rec_begin(w, P_MSG);

	put_str(w, s->client_id, s->id_len);
	put_u32(w, did);
	put_u16(w, pid);
	put_u8(w, state);
	put_u8(w, qos);
	put_u8(w, retain);
	put_u32(w, sub_id);
	put_msg(w, m, s->b->now_ms);
	rec_end(w, at);
}

/* The slots in their send order (resume keeps it). */
static int
slot_cmp(const void *a, const void *b)
{
	const struct out_slot *x = *(const struct out_slot *const *)a;
	const struct out_slot *y = *(const struct out_slot *const *)b;

	return (int32_t)(x->seq - y->seq) < 0 ? -1 : (x->seq == y->seq ? 0 : 1);
}

static void
put_rxq2_up(struct pbuf *w, const struct broker_session *s, const struct broker_rx_up *e)
{
	size_t at = rec_begin(w, P_RXQ2_UP);

	put_str(w, s->client_id, s->id_len);
	put_u16(w, e->pid);
	put_u64(w, e->o.boot_id);
	put_u32(w, e->o.lcore);
	put_u64(w, e->o.ref);
	put_u8(w, e->confirmed);
	rec_end(w, at);
}

/* A delivery's journal name: the one it has (the journal's records and a compaction's `.next`
 * after the snapshot name it so: renaming here, a kill before the snapshot's rename replayed the
 * old journal under the old names and then `.next`'s acks under the new, matching nothing), or
 * a new one for an entry not journaled yet (did 0). */
static uint32_t
entry_did(struct broker_session *s, uint32_t did)
{
	if (did != 0)
		return did;
	if ((did = ++s->next_did) == 0)
		did = ++s->next_did;
	return did;
}

/* All of a session: what a snapshot holds, and what a session that comes from another
 * instance (or becomes persistent) writes at once, each entry under its journal name. */
static void
put_session_image(struct pbuf *w, struct broker_session *s, bool del_first)
{
	struct broker *b = s->b;
	struct out_slot *order[256], **slots = order;
	struct qent *q;
	uint16_t n = 0;

	if (del_first)
		put_id_rec(w, P_SESS_DEL, s);
	put_sess(w, s);
	if (s->conn == NULL && s->expire_at_ms != 0)
		put_sess_off(w, s);
	if (s->cold != NULL && s->cold->will != NULL && s->cold->will_at_ms != 0)
		put_will(w, s);
	for (uint16_t i = 0; i < s->n_rx_qos2; i++) {
		const struct broker_rx_up *up = broker_uplink_rx_find(s, s->rx_qos2[i]);
		size_t at;

		if (up != NULL) {
			put_rxq2_up(w, s, up);
			continue;
		}
		at = rec_begin(w, P_RXQ2);
		put_str(w, s->client_id, s->id_len);
		put_u16(w, s->rx_qos2[i]);
		put_u8(w, 1);
		rec_end(w, at);
	}
	if (s->inflight != NULL && b->cfg.max_inflight > 256 &&
	    (slots = calloc(b->cfg.max_inflight, sizeof(*slots))) == NULL) {
		w->oom = true;
		return;
	}
	for (uint16_t i = 0; s->inflight != NULL && i < b->cfg.max_inflight; i++)
		if (s->inflight[i].state != SLOT_FREE)
			slots[n++] = &s->inflight[i];
	qsort(slots, n, sizeof(*slots), slot_cmp);
	for (uint16_t i = 0; i < n; i++) {
		struct out_slot *o = slots[i];

		o->did = entry_did(s, o->did);
		if (o->msg != NULL) {
			put_msg_rec(
			    w, s, o->did, o->pid, o->state, o->msg, o->qos, o->retain, o->sub_id);
		} else { /* PUBREC came: only the PUBREL is owed, no message is kept */
			size_t at = rec_begin(w, P_MSG_STATE);

			put_str(w, s->client_id, s->id_len);
			put_u32(w, o->did);
			put_u16(w, o->pid);
			put_u8(w, o->state);
			rec_end(w, at);
		}
	}
	if (slots != order)
		free(slots);
	STAILQ_FOREACH (q, &s->queue, next)
		if (q->qos > 0) {
			q->did = entry_did(s, q->did);
			put_msg_rec(
			    w, s, q->did, 0, SLOT_FREE, q->msg, q->qos, q->retain, q->sub_id);
		}
}

void
broker_persist_session(struct broker_session *s)
{
	struct broker *b = s->b;
	struct broker_persist *p = b->persist;
	struct pbuf w;
	size_t at;

	if (!journaling(b) || (s->expiry_s == 0 && !s->persisted))
		return;
	w = pb_of(p);
	at = w.len;
	if (s->expiry_s == 0) { /* ends with its connection now: not for a restart */
		put_id_rec(&w, P_SESS_DEL, s);
		s->persisted = false;
	} else if (!s->persisted) {
		put_session_image(&w, s, true);
		s->persisted = true;
	} else {
		put_sess(&w, s);
	}
	pb_keep(b, p, &w, at);
}

void
broker_persist_session_off(struct broker_session *s)
{
	struct broker *b = s->b;
	struct broker_persist *p = b->persist;
	struct pbuf w;
	size_t at;

	if (!journaling(b) || !s->persisted || s->expire_at_ms == 0)
		return;
	w = pb_of(p);
	at = w.len;
	put_sess_off(&w, s);
	pb_keep(b, p, &w, at);
}

void
broker_persist_session_image(struct broker_session *s)
{
	struct broker_persist *p = s->b->persist;
	struct pbuf w;
	size_t at;

	if (!journaling(s->b) || s->expiry_s == 0)
		return;
	w = pb_of(p);
	at = w.len;
	put_session_image(&w, s, true);
	s->persisted = true;
	pb_keep(s->b, p, &w, at);
}

void
broker_persist_session_gone(struct broker_session *s)
{
	struct broker_persist *p = s->b->persist;
	struct pbuf w;
	size_t at;

	if (!sess_journaling(s))
		return;
	s->persisted = false;
	w = pb_of(p);
	at = w.len;
	put_id_rec(&w, P_SESS_DEL, s);
	pb_keep(s->b, p, &w, at);
}

static void
put_will(struct pbuf *w, struct broker_session *s)
{
	struct session_cold *k = s->cold;
	uint64_t now = s->b->now_ms;
	size_t at = rec_begin(w, P_WILL);

	put_str(w, s->client_id, s->id_len);
	put_u64(w, wall_of(k->will_at_ms, now));
	put_u32(w, k->will_delay_s);
	put_u32(w, k->will_expiry_s);
	put_u8(w, k->will_expires);
	put_msg(w, k->will, now);
	rec_end(w, at);
	k->will_journaled = true;
}

void
broker_persist_will(struct broker_session *s, bool set)
{
	struct broker_persist *p = s->b->persist;
	struct session_cold *k = s->cold;
	struct pbuf w;
	size_t at;

	if (k == NULL || set == k->will_journaled || (set && k->will == NULL))
		return;
	if (!sess_journaling(s)) {
		k->will_journaled = false;
		return;
	}
	w = pb_of(p);
	at = w.len;
	if (set) {
		put_will(&w, s);
	} else {
		put_id_rec(&w, P_WILL_DEL, s);
		k->will_journaled = false;
	}
	pb_keep(s->b, p, &w, at);
}

uint64_t
broker_persist_rx_qos2(struct broker_session *s, uint16_t pid, bool add)
{
	struct broker_persist *p = s->b->persist;
	struct pbuf w;
	size_t at;

	if (!sess_journaling(s))
		return 0;
	w = pb_of(p);
	at = rec_begin(&w, P_RXQ2);
	put_str(&w, s->client_id, s->id_len);
	put_u16(&w, pid);
	put_u8(&w, add);
	rec_end(&w, at);
	pb_keep(s->b, p, &w, at);
	return p->wseq + 1; /* the write at the end of this call */
}

uint64_t
broker_persist_rx_qos2_up(struct broker_session *s, const struct broker_rx_up *e)
{
	struct broker_persist *p = s->b->persist;
	struct pbuf w;
	size_t at;

	if (!sess_journaling(s))
		return 0;
	w = pb_of(p);
	at = w.len;
	put_rxq2_up(&w, s, e);
	pb_keep(s->b, p, &w, at);
	return p->wseq + 1; /* the write at the end of this call */
}

uint64_t
broker_persist_session_seq(const struct broker_session *s)
{
	const struct broker_persist *p = s->b->persist;

	if (!sess_journaling(s))
		return 0;
	return p->wseq + (p->len > 0); /* records not written yet: the write at the call's end */
}

bool
broker_persist_synced(const struct broker *b, uint64_t wseq)
{
	const struct broker_persist *p = b->persist;

	/* a journal that cannot be written holds no promise to wait for (logged, counted) */
	return p == NULL || p->failed || atomic_load(&p->sy.synced) >= wseq;
}

uint64_t
broker_persist_synced_seq(const struct broker *b)
{
	return b->persist != NULL ? atomic_load(&b->persist->sy.synced) : 0;
}

void
broker_persist_sync_kick(struct broker *b)
{
	struct broker_persist *p = b->persist;
	struct timespec ts;
	uint64_t now_ns;

	if (p == NULL || p->fd < 0 || atomic_load(&p->sy.synced) >= p->wseq ||
	    (p->sy.started && atomic_load_explicit(&p->sy.posted, memory_order_acquire)))
		return; /* nothing new to sync, or the syncer is at it: the next kick looks again */
	/* at most one handed over per 50 us: where an fdatasync costs nothing (tmpfs) a sync per
	 * write would be a dup, a wake-up and a close per broker call; on a disk the sync itself
	 * takes longer than that */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (now_ns - p->kick_ns < 50000)
		return;
	p->kick_ns = now_ns;
	sync_post(b, b->now_ms);
}

uint32_t
broker_persist_msg_add(struct broker_session *s, const struct broker_msg *m, uint8_t qos,
    bool retain, uint32_t sub_id, uint16_t pid, uint8_t state)
{
	struct broker_persist *p = s->b->persist;
	uint32_t did;
	struct pbuf w;
	size_t at;

	if (!sess_journaling(s) || qos == 0)
		return 0;
	did = entry_did(s, 0);
	w = pb_of(p);
	at = w.len;
	put_msg_rec(&w, s, did, pid, state, m, qos, retain, sub_id);
	pb_keep(s->b, p, &w, at);
	return did;
}

void
broker_persist_msg_state(struct broker_session *s, uint32_t did, uint16_t pid, uint8_t state)
{
	struct broker_persist *p = s->b->persist;
	struct pbuf w;
	size_t at;

	if (!sess_journaling(s) || did == 0)
		return;
	w = pb_of(p);
	at = rec_begin(&w, state == SLOT_FREE ? P_MSG_DEL : P_MSG_STATE);
	put_str(&w, s->client_id, s->id_len);
	put_u32(&w, did);
	if (state != SLOT_FREE) {
		put_u16(&w, pid);
		put_u8(&w, state);
	}
	rec_end(&w, at);
	pb_keep(s->b, p, &w, at);
}

/* ---- what crosses lcores (the outbox: xlcore_int.h) ---- */
static void
put_xout(struct pbuf *w, const struct xout *o, uint64_t now_ms)
{
	size_t at = rec_begin(w, P_XOUT);

	put_u64(w, o->seq);
	put_u64(w, o->mask);
	put_u8(w, o->kind);
	put_u8(w, o->hops);
	put_str(w, o->filter, o->flen);
	put_msg(w, o->msg, now_ms);
	rec_end(w, at);
}

void
broker_persist_xout(struct broker *b, const struct xout *o)
{
	struct broker_persist *p = b->persist;
	struct pbuf w;
	size_t at;

	if (!journaling(b))
		return;
	w = pb_of(p);
	at = w.len;
	put_xout(&w, o, b->now_ms);
	pb_keep(b, p, &w, at);
}

static void
put_xack(struct pbuf *w, uint32_t dst, uint64_t seq)
{
	size_t at = rec_begin(w, P_XACK);

	put_u32(w, dst);
	put_u64(w, seq);
	rec_end(w, at);
}

void
broker_persist_xack(struct broker *b, uint32_t dst, uint64_t seq)
{
	struct broker_persist *p = b->persist;
	struct pbuf w;
	size_t at;

	if (!journaling(b))
		return;
	w = pb_of(p);
	at = w.len;
	put_xack(&w, dst, seq);
	pb_keep(b, p, &w, at);
}

/* Has an instance's outbox number been taken here and not journaled yet? */
static bool
xin_dirty(const struct broker *b)
{
	for (uint32_t k = 0; b->peers != NULL && k < b->xn; k++)
		if (b->peers[k].xin_seq > b->peers[k].xin_written)
			return true;
	return false;
}

static void
put_xin(struct pbuf *w, const struct broker *b)
{
	size_t at = rec_begin(w, P_XIN);
	uint16_t n = 0;

	for (uint32_t k = 0; k < b->xn; k++)
		n += b->peers[k].xin_seq != 0;
	put_u16(w, n);
	for (uint32_t k = 0; k < b->xn; k++)
		if (b->peers[k].xin_seq != 0) {
			put_u32(w, k);
			put_u64(w, b->peers[k].xin_seq);
		}
	rec_end(w, at);
}

static void
xin_written(struct broker *b)
{
	for (uint32_t k = 0; b->peers != NULL && k < b->xn; k++)
		b->peers[k].xin_written = b->peers[k].xin_seq;
}

static void
put_down_ref(struct pbuf *w, uint64_t ref)
{
	size_t at = rec_begin(w, P_DOWN_REF);

	put_u64(w, ref);
	rec_end(w, at);
}

void
broker_persist_down_ref(struct broker *b)
{
	struct broker_persist *p = b->persist;
	struct pbuf w;
	size_t at;

	if (!journaling(b))
		return;
	w = pb_of(p);
	at = w.len;
	put_down_ref(&w, b->down_ref);
	pb_keep(b, p, &w, at);
}

static void persist_write(struct broker *b, bool xin);

void
broker_persist_xin_sync(struct broker *b)
{
	if (journaling(b))
		persist_write(b, true);
}

/* ---- writing out ---- */
static void
write_failed(struct broker *b, int err)
{
	struct broker_persist *p = b->persist;

	broker_count(b, BROKER_C_PERSIST_FAIL);
	if (!p->failed)
		log_err("broker %u: state journal %s: %s (state changes are kept in memory only "
			"until a write works again)",
		    p->inst, p->jpath, strerror(-err));
	p->failed = true;
}

void
broker_persist_flush(struct broker *b)
{
	persist_write(b, false);
}

/* The records of this call, with the outbox numbers taken since the last write (xin: those
 * alone if nothing else is pending). */
static void
persist_write(struct broker *b, bool xin)
{
	struct broker_persist *p = b->persist;
	bool xin_put = true; /* the numbers taken are in this write (or none is new) */
	int rc;

	if (p == NULL || p->fd < 0 || p->replaying || (p->len == 0 && !(xin && xin_dirty(b))))
		return;
	/* What this write holds was routed after the outbox numbers taken so far: they go with
	 * it (a write with nothing else in it waits for the tick, broker_persist_xin_sync). */
	if (xin_dirty(b)) {
		struct pbuf w = pb_of(p);
		size_t at = w.len;

		put_xin(&w, b);
		xin_put = !w.oom;
		pb_keep(b, p, &w, at);
	}
	if ((rc = write_all(p->fd, p->buf, p->len)) != 0) {
		/* What got written of it goes (a partial record would end the replay there, and
		 * hide what follows); the tick writes the whole state again as a snapshot. */
		write_failed(b, rc);
		if (ftruncate(p->fd, (off_t)p->jbytes) != 0) /* the snapshot replaces it anyway */
			broker_count(b, BROKER_C_PERSIST_FAIL);
		p->resnap = true;
	} else {
		p->failed = false;
		p->dirty = true;
		p->wseq++;
		p->jbytes += p->len;
		if (xin_put)
			xin_written(b);
	}
	p->len = 0;
}

struct snap_arg {
	struct pbuf *w;
	uint64_t now_ms;
};

static void
snapshot_put_retained(void *arg, const struct broker_msg *m)
{
	struct snap_arg *a = arg;
	size_t at;

	if (broker_msg_expired(m, a->now_ms))
		return; /* written as 1 ms left, it would be delivered again after a restart */
	at = rec_begin(a->w, P_RETAIN);

	put_msg(a->w, m, a->now_ms);
	rec_end(a->w, at);
}

/* The snapshot's part of what crosses lcores: the outbox with its numbering and what the
 * others acknowledged of it, and the numbers of theirs taken here. */
static void
put_outbox(struct pbuf *w, struct broker *b)
{
	size_t at;

	if (b->peers == NULL)
		return;
	at = rec_begin(w, P_XSEQ);
	put_u64(w, b->xout_seq);
	rec_end(w, at);
	put_xin(w, b);
	for (uint32_t k = 0; k < b->xn; k++)
		if (b->peers[k].xout_acked != 0)
			put_xack(w, k, b->peers[k].xout_acked);
	for (const struct xout *o = b->xout_head; o != NULL; o = o->next)
		put_xout(w, o, b->now_ms);
}

/* The snapshot of everything now, with its file header of generation gen. */
static int
snapshot_image(struct broker *b, uint64_t gen, struct pbuf *w)
{
	uint8_t hdr[P_FILE_HDR];

	file_hdr(hdr, P_KIND_SNAPSHOT, gen);
	put(w, hdr, sizeof(hdr));
	broker_retain_walk(b, snapshot_put_retained, &(struct snap_arg){ w, b->now_ms });
	for (uint32_t i = 0; i < b->sess_buckets; i++)
		for (struct broker_session *s = b->sess_hash[i]; s != NULL; s = s->hnext)
			if (s->persisted)
				put_session_image(w, s, false);
	put_outbox(w, b);
	if (b->down_ref != 0)
		put_down_ref(w, b->down_ref);
	if (w->oom) {
		free(w->buf);
		w->buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The snapshot's bytes to the temporary name, synced (with sync: the syncer's hook on its thread),
 * renamed over the snapshot, the directory synced. */
static int
snapshot_write(struct broker_persist *p, const uint8_t *buf, size_t len, int (*sync)(int fd))
{
	int fd, rc;

	if ((fd = open(p->tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if ((rc = write_all(fd, buf, len)) == 0 && sync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(p->tpath, p->spath) != 0)
		rc = -errno;
	if (rc == 0)
		fsync_dir(p->dir);
	return rc;
}

/* A new journal generation, all on the lcore (at open, after a failed write or compaction, or
 * with no syncer thread): the snapshot of everything now (written, synced, renamed over the
 * old one), then an empty journal of its generation in place of the old, then the `.next`
 * journal of a compaction that failed half way removed (older than the snapshot now). A crash
 * between the two leaves the old journal, older than the snapshot: ignored at the next open. */
static int
compact(struct broker *b)
{
	struct broker_persist *p = b->persist;
	struct pbuf w = { 0 };
	uint8_t hdr[P_FILE_HDR];
	uint64_t gen = p->gen + 1;
	int fd, rc = 0;

	broker_persist_flush(b);
	if ((rc = snapshot_image(b, gen, &w)) != 0)
		return rc;
	rc = snapshot_write(p, w.buf, w.len, fdatasync);
	p->snap_bytes = w.len;
	free(w.buf);
	if (rc != 0)
		return rc;
	/* the new journal: written aside, then renamed over the old one */
	file_hdr(hdr, P_KIND_JOURNAL, gen);
	if ((fd = open(p->tpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if ((rc = write_all(fd, hdr, sizeof(hdr))) == 0 && fdatasync(fd) != 0)
		rc = -errno;
	if (rc == 0 && rename(p->tpath, p->jpath) != 0)
		rc = -errno;
	if (rc != 0) {
		/* The snapshot is newer than the journal now: what the journal gets from here on
		 * is ignored at the next open. Compact again at the next tick, not once the
		 * journal has doubled. */
		p->resnap = true;
		close(fd);
		return rc;
	}
	fsync_dir(p->dir);
	if (unlink(p->npath) == 0)
		fsync_dir(p->dir);
	xin_written(b); /* in the snapshot */
	if (p->fd >= 0)
		close(p->fd);
	flock(fd, LOCK_EX | LOCK_NB);
	p->fd = fd;
	p->gen = gen;
	p->jbytes = P_FILE_HDR;
	p->dirty = false;
	synced_up(&p->sy, p->wseq); /* all of it in the snapshot, synced */
	broker_count(b, BROKER_C_PERSIST_COMPACTED);
	return 0;
}

/* The syncer's part of a compaction (compact_start), in this order so that each crash point
 * leaves files the next open reads right (recover): the old journal synced (nothing of the
 * new one's may reach the disk before what it follows); the snapshot written, synced, renamed
 * (from here the old journal is older than the snapshot); the new journal synced and renamed
 * over the old one. 0 or a negative errno: the first step that failed. */
static int
compact_io(struct broker_persist *p, struct p_job *j)
{
	int rc = 0;

	if (broker_persist_fdatasync(j->old_fd) != 0)
		rc = -errno;
	if (rc == 0)
		rc = snapshot_write(p, j->snap, j->len, broker_persist_fdatasync);
	free(j->snap);
	j->snap = NULL;
	if (rc == 0 && broker_persist_fdatasync(j->next_fd) != 0)
		rc = -errno;
	if (rc == 0 && rename(p->npath, p->jpath) != 0)
		rc = -errno;
	if (rc == 0)
		fsync_dir(p->dir);
	close(j->next_fd);
	close(j->old_fd); /* its lock: the new journal, locked too, holds the name now */
	j->next_fd = j->old_fd = -1;
	return rc;
}

/*
 * A compaction with its file work on the syncer thread: the lcore writes what is pending to the
 * old journal, serializes the snapshot (memory only), opens the new generation's journal under
 * its `.next` name and appends to it from here on; the syncer syncs the old journal, writes and
 * syncs the snapshot and renames both into place (compact_io). The lcore's part costs the
 * snapshot's serialization, an open and a 32-byte write; no fdatasync. A failure of the
 * syncer's part is taken at a later tick (job_take): the files stay readable (recover reads the
 * `.next` journal after the old one, or after the snapshot), and the next tick compacts on the
 * lcore (resnap).
 */
static int
compact_start(struct broker *b)
{
	struct broker_persist *p = b->persist;
	struct p_syncer *y = &p->sy;
	struct pbuf w = { 0 };
	uint8_t hdr[P_FILE_HDR];
	uint64_t gen = p->gen + 1;
	int fd, dfd, rc;

	persist_write(b, true); /* the old journal holds everything up to the snapshot */
	if (p->resnap || p->fd < 0)
		return compact(b);
	if ((rc = snapshot_image(b, gen, &w)) != 0)
		return rc;
	file_hdr(hdr, P_KIND_JOURNAL, gen);
	if ((fd = open(p->npath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		free(w.buf);
		return rc;
	}
	if ((rc = write_all(fd, hdr, sizeof(hdr))) != 0 ||
	    (dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		rc = rc != 0 ? rc : -errno;
		close(fd);
		unlink(p->npath);
		free(w.buf);
		return rc;
	}
	flock(fd, LOCK_EX | LOCK_NB);
	pthread_mutex_lock(&y->mu);
	y->job = (struct p_job){ .snap = w.buf,
		.len = w.len,
		.old_fd = p->fd,
		.next_fd = dfd,
		.w = p->wseq,
		.busy = true };
	atomic_store(&y->posted, true);
	pthread_cond_signal(&y->cv);
	pthread_mutex_unlock(&y->mu);
	p->fd = fd;
	p->gen = gen;
	p->jbytes = P_FILE_HDR;
	p->snap_bytes = w.len;
	p->dirty = true; /* the new journal's records: the periodic sync, once the job is done */
	return 0;
}

/* The result of the syncer's compaction, once it is done (wait: until it is): false while it
 * still runs. A failure is counted and logged, and the next tick compacts on the lcore. */
static bool
job_take(struct broker *b, bool wait)
{
	struct broker_persist *p = b->persist;
	struct p_syncer *y = &p->sy;
	int err;

	pthread_mutex_lock(&y->mu);
	while (wait && y->job.busy && !y->job.done)
		pthread_cond_wait(&y->cv, &y->mu);
	if (y->job.busy && !y->job.done) {
		pthread_mutex_unlock(&y->mu);
		return false;
	}
	if (!y->job.busy) {
		pthread_mutex_unlock(&y->mu);
		return true;
	}
	err = y->job.err;
	y->job.busy = y->job.done = false;
	pthread_mutex_unlock(&y->mu);
	if (err != 0) {
		write_failed(b, err);
		p->resnap = true;
		return true;
	}
	broker_count(b, BROKER_C_PERSIST_COMPACTED);
	return true;
}

void
broker_persist_settle(struct broker *b)
{
	if (b->persist != NULL && b->persist->sy.started)
		job_take(b, true);
}

void
broker_persist_tick(struct broker *b, uint64_t now_ms)
{
	struct broker_persist *p = b->persist;
	int rc;

	broker_persist_flush(b);
	if (p->sy.started && !job_take(b, false))
		return; /* a compaction's files are being written: syncs and compactions wait */
	if ((rc = syncer_err(p)) != 0)
		write_failed(b, rc);
	if (p->dirty && now_ms - p->last_sync_ms >= p->sync_ms && p->fd >= 0)
		sync_post(b, now_ms);
	if (!p->resnap && (p->jbytes <= P_COMPACT_MIN || p->jbytes <= 2 * p->snap_bytes))
		return;
	/* off the lcore when it can be: a state written whole again after a failure is not */
	rc = p->sy.started && !p->resnap ? compact_start(b) : compact(b);
	if (rc != 0) {
		write_failed(b, rc);
		p->snap_bytes = p->jbytes; /* try again when it has doubled (or at once: resnap) */
		return;
	}
	if (p->resnap)
		log_info("broker %u: state written whole to %s again after a failed write", p->inst,
		    p->dir);
	p->resnap = false;
	p->failed = false;
}

/* ---- recovery ---- */
static struct broker_session *
rec_session(struct broker *b, struct preader *r)
{
	struct mqtt_str id = get_str(r);

	return r->bad ? NULL : broker_session_find(b, id.s, id.len);
}

static void
replay_sess(struct broker *b, struct preader *r)
{
	struct mqtt_str id = get_str(r);
	uint32_t expiry = get_u32(r), n = get_u32(r);
	struct broker_session *s;

	if (r->bad)
		return;
	if ((s = broker_session_find(b, id.s, id.len)) == NULL &&
	    (s = broker_session_create(b, id.s, id.len)) == NULL)
		return;
	/* what a CONNECT gets now: session_expiry_max may have been lowered since (and a
	 * forged expiry would hold the session for good) */
	if (expiry > b->cfg.session_expiry_max_s)
		expiry = b->cfg.session_expiry_max_s;
	s->expiry_s = expiry;
	s->expire_at_ms = b->now_ms + (uint64_t)expiry * 1000u;
	s->persisted = true;
	broker_session_unsubscribe_all(s);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		struct mqtt_subscription sub = { 0 };
		uint8_t fl;
		uint32_t sub_id;

		sub.filter = get_str(r);
		sub.qos = get_u8(r);
		fl = get_u8(r);
		sub_id = get_u32(r);
		sub.no_local = fl & 1;
		sub.retain_as_published = (fl >> 1) & 1;
		if (!r->bad &&
		    (sub.qos > 2 || mqtt_topic_filter_valid(sub.filter.s, sub.filter.len) != 0))
			bad_record(b, r); /* the subscriptions before it stay: each is whole */
		if (!r->bad)
			broker_session_sub_merge(s, &sub, sub_id);
	}
}

static void
replay_msg(struct broker *b, struct preader *r)
{
	struct broker_session *s = rec_session(b, r);
	uint32_t did = get_u32(r), sub_id;
	uint16_t pid = get_u16(r);
	uint8_t state = get_u8(r), qos = get_u8(r), retain = get_u8(r);
	struct broker_msg *m;

	sub_id = get_u32(r);
	if (!r->bad && !broker_delivery_ok(qos, state, pid))
		bad_record(b, r);
	if (r->bad || s == NULL || (m = get_msg(b, r)) == NULL)
		return;
	if (did > s->next_did)
		s->next_did = did;
	broker_persist_replay_entry(s, m, did, pid, state, qos, retain != 0, sub_id);
	broker_msg_unref(m);
}

static void
replay_msg_state(struct broker *b, struct preader *r, bool del)
{
	struct broker_session *s = rec_session(b, r);
	uint32_t did = get_u32(r);
	uint16_t pid = del ? 0 : get_u16(r);
	uint8_t state = del ? SLOT_FREE : get_u8(r);

	if (!r->bad && !del && (state > SLOT_WAIT_PUBCOMP || (state != SLOT_FREE && pid == 0)))
		bad_record(b, r);
	if (r->bad || s == NULL)
		return;
	if (did > s->next_did)
		s->next_did = did;
	if (!broker_persist_replay_state(s, did, pid, state))
		bad_record(b, r); /* a step no delivery takes (back to a message let go) */
}

/* An offline session: it ends when it would have without the restart (the time down counts). */
static void
replay_sess_off(struct broker *b, struct preader *r)
{
	struct broker_session *s = rec_session(b, r);
	uint32_t expiry = get_u32(r);
	uint64_t left = left_of(get_u64(r));

	if (r->bad || s == NULL)
		return;
	if (expiry > b->cfg.session_expiry_max_s) /* as replay_sess */
		expiry = b->cfg.session_expiry_max_s;
	if (left > (uint64_t)expiry * 1000u)
		left = (uint64_t)expiry * 1000u;
	s->expiry_s = expiry;
	s->expire_at_ms = b->now_ms + left;
	s->expire_at_ms += s->expire_at_ms == 0;
}

static void
replay_will(struct broker *b, struct preader *r)
{
	struct broker_session *s = rec_session(b, r);
	uint64_t left = get_u64(r);
	uint32_t delay = get_u32(r), expiry = get_u32(r);
	uint8_t expires = get_u8(r);
	struct session_cold *k;
	struct broker_msg *m;

	if (r->bad || s == NULL || (m = get_msg(b, r)) == NULL)
		return;
	broker_will_clear(s);
	if ((k = broker_session_cold_get(s)) == NULL) {
		broker_msg_unref(m);
		return;
	}
	m->expiry_ms = 0; /* counts from its publication (broker_will_publish) */
	k->will = m;
	left = left_of(left);
	k->will_at_ms = b->now_ms + (left != 0 ? left : 1);
	k->will_delay_s = delay;
	k->will_expiry_s = expiry;
	k->will_expires = expires != 0;
	k->will_journaled = true;
}

/* An outbox entry; without other instances now (fewer workers), it has nowhere to go. */
static void
replay_xout(struct broker *b, struct preader *r)
{
	uint64_t seq = get_u64(r), mask = get_u64(r);
	uint8_t kind = get_u8(r), hops = get_u8(r);
	struct mqtt_str filter = get_str(r);
	struct broker_msg *m;

	if (r->bad || (m = get_msg(b, r)) == NULL)
		return;
	if (b->peers != NULL)
		broker_xlcore_outbox_add(b, seq, mask, kind, hops, filter.s, filter.len, m);
	else
		b->persist->xout_lost++;
	broker_msg_unref(m);
}

static void
replay_xin(struct broker *b, struct preader *r)
{
	uint16_t n = get_u16(r);

	for (uint16_t i = 0; i < n && !r->bad; i++) {
		uint32_t k = get_u32(r);
		uint64_t seq = get_u64(r);

		if (!r->bad && b->peers != NULL && k < b->xn && seq > b->peers[k].xin_seq)
			b->peers[k].xin_seq = b->peers[k].xin_written = seq;
	}
}

static void
replay_xack(struct broker *b, struct preader *r)
{
	uint32_t k = get_u32(r);
	uint64_t seq = get_u64(r);

	if (!r->bad && b->peers != NULL && k < b->xn && seq > b->peers[k].xout_acked)
		b->peers[k].xout_acked = seq;
}

static void
replay_rxq2_up(struct broker *b, struct preader *r)
{
	struct broker_session *s = rec_session(b, r);
	struct broker_uplink_origin o;
	uint16_t pid = get_u16(r);
	uint8_t confirmed;

	o.boot_id = get_u64(r);
	o.lcore = get_u32(r);
	o.ref = get_u64(r);
	confirmed = get_u8(r);
	if (r->bad || s == NULL || !broker_session_rx_qos2_add(s, pid))
		return;
	broker_uplink_rx_add(s, pid, &o, confirmed != 0);
}

static void
replay_one(struct broker *b, uint8_t type, struct preader *r)
{
	struct broker_session *s;
	struct broker_msg *m;

	switch (type) {
	case P_RETAIN:
		if ((m = get_msg(b, r)) != NULL) {
			broker_retain_set(b, m);
			broker_msg_unref(m);
		}
		break;
	case P_RETAIN_DEL: {
		struct mqtt_str t = get_str(r);
		struct mqtt_iov none = { NULL, 0 };

		if (!r->bad && (m = broker_msg_new(b, t, &none, 0, NULL, b->now_ms)) != NULL) {
			broker_retain_set(b, m); /* an empty payload clears */
			broker_msg_unref(m);
		}
		break;
	}
	case P_SESS:
		replay_sess(b, r);
		break;
	case P_SESS_DEL:
		if ((s = rec_session(b, r)) != NULL) {
			broker_will_clear(
			    s); /* sent when the session ended: its effects are journaled */
			broker_session_destroy(s);
		}
		break;
	case P_SESS_OFF:
		replay_sess_off(b, r);
		break;
	case P_WILL:
		replay_will(b, r);
		break;
	case P_WILL_DEL:
		if ((s = rec_session(b, r)) != NULL)
			broker_will_clear(s);
		break;
	case P_RXQ2: {
		uint16_t pid;
		uint8_t add;

		s = rec_session(b, r);
		pid = get_u16(r);
		add = get_u8(r);
		if (r->bad || s == NULL)
			break;
		if (add) {
			struct broker_rx_up *e = broker_uplink_rx_find(s, pid);

			broker_session_rx_qos2_add(s, pid);
			if (e != NULL) /* durable: the agent confirmed it before the restart */
				e->confirmed = true;
			break;
		}
		for (uint16_t i = 0; i < s->n_rx_qos2; i++)
			if (s->rx_qos2[i] == pid) {
				s->rx_qos2[i] = s->rx_qos2[--s->n_rx_qos2];
				break;
			}
		broker_uplink_rx_done(s, pid, false);
		break;
	}
	case P_RXQ2_UP:
		replay_rxq2_up(b, r);
		break;
	case P_MSG:
		replay_msg(b, r);
		break;
	case P_MSG_STATE:
	case P_MSG_DEL:
		replay_msg_state(b, r, type == P_MSG_DEL);
		break;
	case P_XOUT:
		replay_xout(b, r);
		break;
	case P_XIN:
		replay_xin(b, r);
		break;
	case P_XACK:
		replay_xack(b, r);
		break;
	case P_XSEQ: {
		uint64_t seq = get_u64(r);

		if (!r->bad && seq > b->xout_seq)
			b->xout_seq = seq;
		break;
	}
	case P_DOWN_REF: {
		uint64_t ref = get_u64(r);

		if (!r->bad && ref > b->down_ref)
			b->down_ref = ref;
		break;
	}
	default: /* a type from a newer version of the same format: skipped */
		break;
	}
}

/* Replay the records of one file after its header; the bytes that were good. */
static size_t
replay_file(struct broker *b, const uint8_t *buf, size_t len, const char *path, uint32_t *n)
{
	size_t at = P_FILE_HDR;

	*n = 0;
	while (at < len) {
		uint32_t crc, rlen;

		if (len - at < P_REC_HDR)
			break;
		memcpy(&crc, buf + at, 4);
		memcpy(&rlen, buf + at + 4, 4);
		if (rlen > P_REC_MAX || len - at - P_REC_HDR < rlen ||
		    crc != crc32c(buf + at + 4, (size_t)rlen + P_REC_HDR - 4, 0))
			break;
		struct preader pr = { buf + at + P_REC_HDR, rlen, false, false };

		replay_one(b, buf[at + 8], &pr);
		if (pr.bad) /* shorter than its fields say: damage that kept its checksum */
			bad_record(b, &pr);
		at += P_REC_HDR + rlen;
		(*n)++;
	}
	if (at < len) {
		broker_count(b, BROKER_C_PERSIST_TORN);
		log_warnx("broker %u: %s: %zu bytes after record %u are torn or corrupt (a write "
			  "cut short by a crash, or damage): the state up to there is kept",
		    b->persist->inst, path, len - at, *n);
	}
	return at;
}

/*
 * Snapshot, then the journal if it is not older than the snapshot, then the `.next` journal of a
 * compaction the process did not see finished (compact_start, compact_io) where it continues
 * what was read: after the journal of the generation before it when that journal was read to
 * its end (its snapshot not renamed yet; a torn journal ends the replay there, as a torn record
 * would: what follows it may depend on what was lost), or after the snapshot of its own
 * generation (renamed, the journal not yet). Any other is older than the snapshot: ignored.
 */
static int
recover(struct broker *b)
{
	struct broker_persist *p = b->persist;
	uint8_t *buf = NULL;
	size_t len;
	uint64_t sgen = 0, jgen = 0, ngen = 0;
	uint32_t ns = 0, nj = 0, nn = 0;
	bool have_snap = false, j_read = false, j_whole = false;
	int rc;

	p->replaying = true;
	if ((rc = read_file(p->spath, &buf, &len)) == 0) {
		if ((rc = file_hdr_check(buf, len, P_KIND_SNAPSHOT, &sgen)) == 0) {
			have_snap = true;
			replay_file(b, buf, len, p->spath, &ns);
		}
		free(buf);
		if (rc == -EPROTONOSUPPORT)
			goto out;
		if (rc != 0) {
			broker_count(b, BROKER_C_PERSIST_TORN);
			log_warnx("broker %u: %s is not a broker state snapshot: ignored", p->inst,
			    p->spath);
		}
	} else if (rc != -ENOENT) {
		goto out;
	}
	if ((rc = read_file(p->jpath, &buf, &len)) == 0) {
		rc = file_hdr_check(buf, len, P_KIND_JOURNAL, &jgen);
		if (rc == 0 && (!have_snap || jgen >= sgen)) {
			j_read = true;
			j_whole = replay_file(b, buf, len, p->jpath, &nj) == len;
		} else if (rc == -EINVAL && len > 0) {
			broker_count(b, BROKER_C_PERSIST_TORN);
			log_warnx("broker %u: %s has no valid header: ignored", p->inst, p->jpath);
		}
		free(buf);
		if (rc == -EPROTONOSUPPORT)
			goto out;
	} else if (rc != -ENOENT) {
		goto out;
	}
	if ((rc = read_file(p->npath, &buf, &len)) == 0) {
		rc = file_hdr_check(buf, len, P_KIND_JOURNAL, &ngen);
		if (rc == 0 && (j_read ? ngen == jgen + 1 && j_whole : have_snap && ngen == sgen))
			replay_file(b, buf, len, p->npath, &nn);
		else if (rc == 0 && j_read && ngen == jgen + 1)
			log_warnx("broker %u: %s not read: it follows %s, whose end is torn",
			    p->inst, p->npath, p->jpath);
		free(buf);
		if (rc == -EPROTONOSUPPORT)
			goto out;
	} else if (rc != -ENOENT) {
		goto out;
	}
	rc = 0;
	p->gen = sgen > jgen ? sgen : jgen;
	p->gen = ngen > p->gen ? ngen : p->gen;
	b->cnt[BROKER_C_PERSIST_RECOVERED] += ns + nj + nn;
	if (ns + nj + nn > 0)
		log_info("broker %u: state recovered from %s: %u records (snapshot %u, journal "
			 "%u, %u from a compaction not finished), %u sessions, %u retained",
		    p->inst, p->dir, ns + nj + nn, ns, nj, nn, b->n_sessions,
		    broker_retain_count(b));
	if (p->bad > 0)
		log_err("broker %u: %s: %u records hold what no broker writes (damage that kept "
			"their checksums): skipped, the rest of the state kept",
		    p->inst, p->dir, p->bad);
out:
	p->replaying = false;
	if (rc == -EPROTONOSUPPORT)
		log_err("broker %u: the state in %s was written by a newer version: left "
			"untouched, not started",
		    p->inst, p->dir);
	return rc;
}

/* The directory and its parents, as `mkdir -p` (/var/lib/edgegw on a fresh box). */
static int
mkdir_p(const char *dir)
{
	char path[P_PATH_MAX];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *at = path + 1; *at != '\0'; at++)
		if (*at == '/') {
			*at = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST)
				return -errno;
			*at = '/';
		}
	return mkdir(path, 0700) != 0 && errno != EEXIST ? -errno : 0;
}

/* Post again what the other instances had not journaled when we stopped (in their rings
 * then, or waiting for room in them); they take only what they have not (xlcore_int.h). */
static void
outbox_restart(struct broker *b)
{
	uint32_t n;

	if (b->persist->xout_lost > 0)
		log_warnx("broker %u: %u messages for other lcores' instances in %s, and no other "
			  "instance now (fewer workers): not delivered there",
		    b->persist->inst, b->persist->xout_lost, b->persist->dir);
	if ((n = broker_xlcore_outbox_resend(b)) > 0)
		log_info("broker %u: %u messages posted again to other lcores (acknowledged to "
			 "their publishers, not journaled there before the stop)",
		    b->persist->inst, n);
}

int
broker_persist_open(
    struct broker *b, const char *dir, uint32_t instance, uint32_t sync_ms, uint64_t now_ms)
{
	struct broker_persist *p;
	int lockfd, rc;

	if (b->persist != NULL || dir == NULL || dir[0] == '\0')
		return -EINVAL;
	if (strlen(dir) > P_PATH_MAX - 32)
		return -ENAMETOOLONG;
	if ((rc = mkdir_p(dir)) != 0)
		return rc;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->fd = -1;
	p->inst = instance;
	p->sync_ms = sync_ms != 0 ? sync_ms : P_SYNC_MS_DEF;
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(p->jpath, sizeof(p->jpath), "%s/broker-%u.journal", dir, instance);
	snprintf(p->spath, sizeof(p->spath), "%s/broker-%u.snap", dir, instance);
	snprintf(p->tpath, sizeof(p->tpath), "%s/broker-%u.tmp", dir, instance);
	snprintf(p->npath, sizeof(p->npath), "%s/broker-%u.journal.next", dir, instance);
	/* one process per directory: the journal is locked while open */
	if ((lockfd = open(p->jpath, O_RDONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0 &&
	    flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
		close(lockfd);
		free(p);
		return -EBUSY;
	}
	b->persist = p;
	b->now_ms = now_ms;
	p->last_sync_ms = now_ms;
	syncer_start(p);
	if ((rc = recover(b)) == 0) {
		broker_xlcore_outbox_prune(b); /* what the others had acknowledged */
		/* New outbox numbers start above any of the last run's, which the others may have
		 * journaled though our journal lost its tail (a power cut): one of them reused
		 * would be taken there for one already routed, and dropped. The snapshot below
		 * (synced) keeps the new start. */
		b->xout_seq = ((b->xout_seq >> P_XSEQ_RUN_BITS) + 1) << P_XSEQ_RUN_BITS;
		rc = compact(b); /* what was recovered, as the new snapshot; a torn tail goes */
	}
	if (lockfd >= 0)
		close(lockfd);
	if (rc != 0) {
		log_err("broker %u: state directory %s: %s", instance, dir, strerror(-rc));
		broker_persist_close(b);
		return rc;
	}
	outbox_restart(b);
	return 0;
}

void
broker_persist_close(struct broker *b)
{
	struct broker_persist *p = b->persist;

	if (p == NULL)
		return;
	syncer_stop(p); /* a sync in flight ends first */
	if (p->fd >= 0) {
		broker_persist_flush(b);
		if (p->dirty)
			broker_persist_fdatasync(p->fd);
		close(p->fd);
	}
	free(p->buf);
	free(p);
	b->persist = NULL;
}

size_t
broker_persist_pending(const struct broker *b)
{
	return b->persist != NULL ? b->persist->len : 0;
}
