/*
 * store.c: store and forward (store.h). Producers' messages through the rules into the spool;
 * the spool's durability reports from its flusher thread over an eventfd to the loop; durable
 * records drained into the uplink in class order (alarm, normal, bulk), within a class the live
 * ones (durable less than live_age_ms ago) ahead of the backlog, which holds a bounded share of
 * the max_inflight records given and not acknowledged; the uplink's delivery hooks recorded in
 * the spool (QoS 2 phases, their commit, acks). Neighbours: lib/spool, lib/rules, uplink.h
 * (mqtt_client.c, jsonl_sink.c).
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "uplink.h"

_Static_assert((int)RULES_ALARM == (int)SPOOL_ALARM && (int)RULES_BULK == (int)SPOOL_BULK &&
	(int)RULES_CLASS_N == (int)SPOOL_CLASS_N,
    "lib/rules and lib/spool name the classes alike");

const char *const store_counter_names[] = {
#define STORE_C(n, k, d) #n,
#include "store_stats.def"
#undef STORE_C
};
const char *const store_counter_help[] = {
#define STORE_C(n, k, d) d,
#include "store_stats.def"
#undef STORE_C
};
const enum counter_kind store_counter_kind[] = {
#define STORE_C(n, k, d) COUNTER_KIND_##k,
#include "store_stats.def"
#undef STORE_C
};

/* A commit's report, queued by the flusher for the loop. */
struct durable_report {
	uint64_t first, last;
	int status;
};

/* A sync the uplink waits for (dlv_sync): done once commit number no has been reported. */
#define STORE_SYNC_WAITS 4
struct sync_wait {
	uint64_t no, t0_us;
	uplink_synced_fn done;
	void *arg;
};

/* A record the uplink could not queue (-ENOBUFS): kept and given first next time. */
struct held_rec {
	uint64_t seq;
	uint8_t qos;
	bool retain, valid;
	char *topic;
	void *payload;
	size_t len;
};

/* Sequence numbers (0: an empty slot), open addressing: the backlog records given and not
 * acknowledged, so that an acknowledgement knows which lane it frees. */
struct seq_set {
	uint64_t *v;
	size_t cap, n; /* cap a power of two, n < cap / 2 */
};

/* When records became durable, coarsely: one mark per live_age_ms / 16, the newest last; what is
 * older than live_age_ms moves the live floor. */
#define STORE_LIVE_MARKS 32
struct live_mark {
	uint64_t first_ms, last_ms; /* reports folded in between these times */
	uint64_t last_seq;          /* the highest sequence number they covered */
};

struct store {
	struct rules *rules;
	struct rules *prev_rules; /* replaced by the last reload (store_set_rules), NULL: none */
	struct spool *sp;         /* NULL: no spool, messages go straight to the uplink */
	struct uplink *up;
	size_t max_inflight;
	/* the live lane: records from live_floor on are live (0 live_age_ms: none, spool order) */
	uint64_t live_age_ms, live_floor;
	size_t backlog_max, out_backlog; /* the backlog's share of max_inflight, and its use */
	bool backlog_maybe;              /* the last look found a backlog (or had no room to) */
	struct live_mark marks[STORE_LIVE_MARKS];
	unsigned mark_first, nmarks;
	struct seq_set given_backlog;
	uint64_t (*now_fn)(void *arg);
	void *now_arg;
	int efd;
	bool started, wake_pending;
	pthread_mutex_t lock; /* reports, filled by the flusher */
	struct durable_report *rep;
	size_t nrep, caprep;
	uint64_t committed_no; /* the last commit the spool reported (lock) */
	int committed_status;  /* and how its acks and marks went (lock) */
	bool sync_wanted;      /* a sync waits: wake the loop at each commit (lock) */
	struct sync_wait waits[STORE_SYNC_WAITS];
	size_t nwaits;
	struct {
		store_durable_fn fn;
		void *arg;
	} subs[STORE_DURABLE_SUBS_MAX];
	size_t nsubs;
	struct held_rec held;
	uint8_t *buf; /* read buffer: topic then payload */
	size_t buflen;
	char topic[SPOOL_TOPIC_MAX + 1];
	uint8_t *obuf; /* a record with its origin: origin then payload */
	size_t obuflen;
	struct recovered_origin *recov; /* found at open (store_recovered_origins) */
	size_t nrecov, caprecov;
	char dir[512]; /* the spool's */
	uint64_t cnt[STORE_C_COUNT];
};

struct recovered_origin {
	uint64_t seq;
	struct store_origin o;
	bool qos2;
};

static void
wake(struct store *s)
{
	uint64_t one = 1;

	if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "store: eventfd: %s", strerror(errno));
}

/* The flusher's thread: queue the report (consecutive ones of one status merge) and wake the loop. */
static void
on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct store *s = arg;
	struct durable_report *r;

	pthread_mutex_lock(&s->lock);
	r = s->nrep > 0 ? &s->rep[s->nrep - 1] : NULL;
	if (r != NULL && r->status == status && r->last + 1 == first) {
		r->last = last;
	} else if (s->nrep < s->caprep ||
	    (r = realloc(s->rep, (s->caprep * 2 + 8) * sizeof(*r))) != NULL) {
		if (s->nrep == s->caprep) {
			s->rep = r;
			s->caprep = s->caprep * 2 + 8;
		}
		s->rep[s->nrep++] = (struct durable_report){ first, last, status };
	} else {
		log_err("store: out of memory for a durability report (%llu..%llu)",
		    (unsigned long long)first, (unsigned long long)last);
	}
	pthread_mutex_unlock(&s->lock);
	wake(s);
}

/* ---- the backlog given (seq_set) ---- */

static size_t
set_slot(const struct seq_set *t, uint64_t seq)
{
	return (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 20) & (t->cap - 1);
}

static void set_put(struct seq_set *t, uint64_t seq);

static int
set_grow(struct seq_set *t)
{
	struct seq_set o = *t;

	t->cap = o.cap ? o.cap * 2 : 256;
	t->n = 0;
	if ((t->v = calloc(t->cap, sizeof(*t->v))) == NULL) {
		*t = o;
		return -ENOMEM;
	}
	for (size_t i = 0; i < o.cap; i++)
		if (o.v[i] != 0)
			set_put(t, o.v[i]);
	free(o.v);
	return 0;
}

static void
set_put(struct seq_set *t, uint64_t seq)
{
	size_t i = set_slot(t, seq);

	while (t->v[i] != 0 && t->v[i] != seq)
		i = (i + 1) & (t->cap - 1);
	t->n += t->v[i] == 0;
	t->v[i] = seq;
}

static int
set_add(struct seq_set *t, uint64_t seq)
{
	if ((t->n + 1) * 2 > t->cap && set_grow(t) != 0)
		return -ENOMEM;
	set_put(t, seq);
	return 0;
}

/* true when seq was there (removed; the probe run behind it is shifted back). */
static bool
set_del(struct seq_set *t, uint64_t seq)
{
	size_t i, j, k;

	if (t->cap == 0)
		return false;
	for (i = set_slot(t, seq); t->v[i] != seq; i = (i + 1) & (t->cap - 1))
		if (t->v[i] == 0)
			return false;
	t->v[i] = 0;
	t->n--;
	for (j = (i + 1) & (t->cap - 1); t->v[j] != 0; j = (j + 1) & (t->cap - 1)) {
		k = set_slot(t, t->v[j]);
		/* t->v[j] may move to i when its home k is not within (i, j] */
		if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
			t->v[i] = t->v[j];
			t->v[j] = 0;
			i = j;
		}
	}
	return true;
}

/* ---- the live floor ---- */

static uint64_t
store_now_ms(const struct store *s)
{
	return s->now_fn != NULL ? s->now_fn(s->now_arg) : clock_mono_ms();
}

/* A durability report up to last_seq came in at now. */
static void
live_note(struct store *s, uint64_t last_seq, uint64_t now)
{
	struct live_mark *m;

	if (s->live_age_ms == 0)
		return;
	m = s->nmarks ? &s->marks[(s->mark_first + s->nmarks - 1) % STORE_LIVE_MARKS] : NULL;
	if (m != NULL && now - m->first_ms < s->live_age_ms / 16) {
		m->last_ms = now;
		m->last_seq = last_seq > m->last_seq ? last_seq : m->last_seq;
		return;
	}
	if (s->nmarks == STORE_LIVE_MARKS) { /* 31 marks span more than live_age_ms: old */
		m = &s->marks[s->mark_first];
		s->live_floor = m->last_seq + 1 > s->live_floor ? m->last_seq + 1 : s->live_floor;
		s->mark_first = (s->mark_first + 1) % STORE_LIVE_MARKS;
		s->nmarks--;
	}
	s->marks[(s->mark_first + s->nmarks++) % STORE_LIVE_MARKS] =
	    (struct live_mark){ now, now, last_seq };
}

/* Records durable for live_age_ms or longer are the backlog now. */
static void
live_advance(struct store *s, uint64_t now)
{
	while (s->nmarks > 0 && s->marks[s->mark_first].last_ms + s->live_age_ms <= now) {
		uint64_t f = s->marks[s->mark_first].last_seq + 1;

		if (f > s->live_floor)
			s->live_floor = f;
		s->mark_first = (s->mark_first + 1) % STORE_LIVE_MARKS;
		s->nmarks--;
	}
}

/* The flusher's thread: a commit ended (its acks and QoS 2 marks durable when status is 0). */
static void
on_committed(void *arg, uint64_t no, int status)
{
	struct store *s = arg;
	bool wanted;

	pthread_mutex_lock(&s->lock);
	s->committed_no = no;
	s->committed_status = status;
	wanted = s->sync_wanted;
	pthread_mutex_unlock(&s->lock);
	if (wanted)
		wake(s);
}

/* On the loop: tell the uplink about the syncs the commits reported so far have settled. */
static void
settle_syncs(struct store *s)
{
	struct sync_wait w;
	uint64_t no;
	int st;

	pthread_mutex_lock(&s->lock);
	no = s->committed_no;
	st = s->committed_status;
	pthread_mutex_unlock(&s->lock);
	while (s->nwaits > 0 && s->waits[0].no <= no) {
		w = s->waits[0];
		memmove(s->waits, s->waits + 1, --s->nwaits * sizeof(w));
		s->cnt[STORE_C_q2_syncs]++;
		s->cnt[STORE_C_q2_sync_us] += clock_mono_us() - w.t0_us;
		if (st != 0) {
			s->cnt[STORE_C_sync_fail]++;
			LOG_RATELIMITED(LOG_LVL_WARN, 60,
			    "store: commit of QoS 2 phases failed: %s (exactly once not guaranteed "
			    "for them)",
			    strerror(-st));
		}
		w.done(w.arg, st); /* may ask for the next sync */
	}
	pthread_mutex_lock(&s->lock);
	s->sync_wanted = s->nwaits > 0;
	pthread_mutex_unlock(&s->lock);
}

/* ---- delivery hooks (uplink.h), on the loop thread ---- */

static int
dlv_mark(void *arg, uint64_t ref, uint16_t packet_id, enum uplink_phase ph)
{
	struct store *s = arg;
	int rc = spool_q2_mark(s->sp, ref,
	    ph == UPLINK_PHASE_RELEASED ? SPOOL_Q2_RELEASED : SPOOL_Q2_PUBLISHED, packet_id);

	if (rc != 0) {
		s->cnt[STORE_C_mark_fail]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "store: QoS 2 phase of record %llu not recorded: %s", (unsigned long long)ref,
		    strerror(-rc));
	}
	return rc;
}

/* The commit (an fdatasync of the ack log) runs on the spool's flusher, not on this loop: the
 * uplink holds back the bytes the marks announce until done() (settle_syncs). */
static int
dlv_sync(void *arg, uplink_synced_fn done, void *done_arg)
{
	struct store *s = arg;

	if (s->nwaits == STORE_SYNC_WAITS)
		return -EBUSY;
	pthread_mutex_lock(&s->lock);
	s->sync_wanted = true; /* before the request: its commit's report wakes the loop */
	pthread_mutex_unlock(&s->lock);
	s->waits[s->nwaits++] =
	    (struct sync_wait){ spool_commit_request(s->sp), clock_mono_us(), done, done_arg };
	return 0;
}

static void
dlv_acked(void *arg, uint64_t ref, uint8_t reason)
{
	struct store *s = arg;

	if (set_del(&s->given_backlog, ref))
		s->out_backlog--;
	if (spool_ack(s->sp, ref) != 0)
		s->cnt[STORE_C_ack_unknown]++;
	if (reason >= 0x80) {
		s->cnt[STORE_C_cloud_refused]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "store: the cloud refused record %llu for good (reason 0x%02x): released",
		    (unsigned long long)ref, reason);
	} else {
		s->cnt[STORE_C_acked]++;
	}
	if (!s->wake_pending) { /* room for more: drain from the loop, not from inside the uplink */
		s->wake_pending = true;
		wake(s);
	}
}

/* ---- draining ---- */

/* A record went to the uplink: which lane it took (by the floor now). */
static void
count_lane(struct store *s, uint64_t seq)
{
	if (s->live_age_ms != 0 && seq < s->live_floor) {
		s->cnt[STORE_C_sent_backlog]++;
		if (set_add(&s->given_backlog, seq) == 0)
			s->out_backlog++;
		else /* counted as live: the backlog lane may hold one more */
			LOG_RATELIMITED(
			    LOG_LVL_ERR, 60, "store: out of memory for the backlog set");
	} else {
		s->cnt[STORE_C_sent_live]++;
	}
}

/* 1: given (or released as never sendable), 0: the uplink is full (held). */
static int
give(struct store *s, uint64_t seq, const char *topic, const void *p, size_t len, uint8_t qos,
    bool retain)
{
	int rc = uplink_send(s->up, topic, p, len, qos, retain, seq);

	if (rc == 0) {
		s->cnt[STORE_C_sent]++;
		count_lane(s, seq);
		return 1;
	}
	if (rc == -ENOBUFS) {
		s->cnt[STORE_C_send_busy]++;
		return 0;
	}
	s->cnt[STORE_C_send_invalid]++;
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "store: record %llu to %.100s can never be sent (%s): released",
	    (unsigned long long)seq, topic, strerror(-rc));
	spool_ack(s->sp, seq);
	return 1;
}

static void
hold(struct store *s, uint64_t seq, const char *topic, const void *p, size_t len, uint8_t qos,
    bool retain)
{
	struct held_rec *h = &s->held;

	char *t = strdup(topic);
	void *pl = malloc(len ? len : 1);

	if (t == NULL || pl == NULL) {
		free(t);
		free(pl);
		log_err("store: out of memory holding record %llu (given again after a restart)",
		    (unsigned long long)seq);
		return;
	}
	memcpy(pl, p, len);
	*h = (struct held_rec){ seq, qos, retain, true, t, pl, len };
}

static int
give_held(struct store *s)
{
	struct held_rec *h = &s->held;

	if (!h->valid)
		return 1;
	if (give(s, h->seq, h->topic, h->payload, h->len, h->qos, h->retain) == 0)
		return 0;
	free(h->topic);
	free(h->payload);
	memset(h, 0, sizeof(*h));
	return 1;
}

/* Which record read_rec() reads: the oldest of cls (of any class, cls < 0), the oldest live one
 * of cls, or record seq. */
enum read_how {
	READ_OLDEST,
	READ_LIVE,
	READ_SEQ,
};

static int
read_once(struct store *s, enum read_how how, int cls, uint64_t seq, struct spool_rec *rec)
{
	switch (how) {
	case READ_LIVE:
		return spool_read_live(
		    s->sp, (enum spool_class)cls, s->live_floor, rec, s->buf, s->buflen);
	case READ_SEQ: {
		int rc = spool_read_seq(s->sp, seq, rec, s->buf, s->buflen);

		return rc == -ENOENT ? 0 : rc; /* gone meanwhile (expired, bad): counted there */
	}
	case READ_OLDEST:
		break;
	}
	return cls < 0 ? spool_read_next(s->sp, rec, s->buf, s->buflen)
		       : spool_read(s->sp, (enum spool_class)cls, rec, s->buf, s->buflen);
}

/* Read a record (read_how) into s->buf and s->topic: 1, 0 (none), or a negative errno. */
static int
read_rec(struct store *s, enum read_how how, int cls, uint64_t seq, struct spool_rec *rec)
{
	int rc;

	for (;;) {
		rc = read_once(s, how, cls, seq, rec);
		if (rc != -ENOBUFS)
			break;
		size_t need = (size_t)rec->topic_len + rec->payload_len + 64;
		uint8_t *nb = realloc(s->buf, need);

		if (nb == NULL) {
			rc = -ENOMEM; /* counted below: read again at the next run */
			break;
		}
		s->buf = nb;
		s->buflen = need;
	}
	if (rc < 0) {
		s->cnt[STORE_C_read_fail]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "store: spool read: %s", strerror(-rc));
		return rc;
	}
	if (rc == 1) {
		memcpy(s->topic, rec->topic, rec->topic_len);
		s->topic[rec->topic_len] = '\0';
	}
	return rc;
}

/* A record read with a QoS 2 phase goes back under its packet id when the uplink still can. */
static int
give_rec(struct store *s, const struct spool_rec *rec_in)
{
	struct spool_rec r = *rec_in, *rec = &r;
	bool retain = (rec->flags & STORE_FLAG_RETAIN) != 0;

	if (rec->flags & STORE_FLAG_ORIGIN) { /* the origin is the agent's, not the cloud's */
		if (rec->payload_len < STORE_ORIGIN_LEN) {
			s->cnt[STORE_C_read_fail]++;
			spool_ack(s->sp, rec->seq);
			return 1;
		}
		r.payload += STORE_ORIGIN_LEN;
		r.payload_len -= STORE_ORIGIN_LEN;
	}

	if (rec->q2_state != SPOOL_Q2_NONE && rec->qos == 2 && s->up->ops->restore != NULL) {
		enum uplink_phase ph = rec->q2_state == SPOOL_Q2_RELEASED ? UPLINK_PHASE_RELEASED
									  : UPLINK_PHASE_PUBLISHED;

		if (s->up->ops->restore(s->up, s->topic, rec->payload, rec->payload_len, rec->qos,
			retain, rec->seq, rec->q2_packet_id, ph) == 0) {
			s->cnt[STORE_C_restored]++;
			count_lane(s, rec->seq);
			return 1;
		}
		s->cnt[STORE_C_restore_late]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "store: QoS 2 record %llu (packet id %u) could not resume its exchange: sent "
		    "as new (the cloud may see it twice)",
		    (unsigned long long)rec->seq, rec->q2_packet_id);
	}
	if (give(s, rec->seq, s->topic, rec->payload, rec->payload_len, rec->qos, retain) == 1)
		return 1;
	hold(s, rec->seq, s->topic, rec->payload, rec->payload_len, rec->qos, retain);
	return 0;
}

/* The backlog's free slots kept from the live lane (while there may be a backlog). */
static size_t
backlog_reserve(const struct store *s)
{
	return s->backlog_maybe && s->out_backlog < s->backlog_max ? s->backlog_max - s->out_backlog
								   : 0;
}

/* One class: its live records while the window less the backlog's reserve allows, then its
 * backlog within the share. 1: done, 0: the uplink is full (a record is held). */
static int
drain_class(struct store *s, int cls, bool *backlog_seen)
{
	struct spool_rec rec;

	while (uplink_backlog(s->up) + backlog_reserve(s) < s->max_inflight &&
	    read_rec(s, READ_LIVE, cls, 0, &rec) == 1)
		if (give_rec(s, &rec) == 0)
			return 0;
	while (s->out_backlog < s->backlog_max && uplink_backlog(s->up) < s->max_inflight) {
		if (read_rec(s, READ_OLDEST, cls, 0, &rec) != 1)
			return 1;
		if (rec.seq >= s->live_floor) /* no backlog left in cls: a live one, in order */
			return give_rec(s, &rec);
		*backlog_seen = true;
		if (give_rec(s, &rec) == 0)
			return 0;
	}
	*backlog_seen |= s->out_backlog >= s->backlog_max; /* no room to look: assume more */
	return 1;
}

static void
drain(struct store *s)
{
	struct spool_rec rec;
	bool backlog_seen = false;

	if (s->sp == NULL || !s->started)
		return;
	if (s->live_age_ms != 0)
		live_advance(s, store_now_ms(s));
	if (give_held(s) == 0)
		return;
	if (s->live_age_ms == 0) { /* one lane: spool order within each class */
		while (uplink_backlog(s->up) < s->max_inflight &&
		    read_rec(s, READ_OLDEST, -1, 0, &rec) == 1)
			if (give_rec(s, &rec) == 0)
				break;
		return;
	}
	for (int c = 0; c < SPOOL_CLASS_N; c++)
		if (drain_class(s, c, &backlog_seen) == 0) {
			s->backlog_maybe = true;
			return;
		}
	s->backlog_maybe = backlog_seen;
}

void
store_start(struct store *s)
{
	struct spool_rec rec;
	uint64_t *seqs;
	size_t n;

	if (s->sp == NULL || s->started)
		return;
	/* Every record that was in flight with a QoS 2 phase goes back now, before the first
	 * connect, so that each exchange resumes; the live lane means they need not be a prefix
	 * of their class. */
	n = spool_q2_pending(s->sp, NULL, 0);
	seqs = n ? malloc(n * sizeof(*seqs)) : NULL;
	if (n && seqs == NULL)
		log_err(
		    "store: out of memory listing %zu QoS 2 records in flight (sent as new)", n);
	else if (spool_q2_pending(s->sp, seqs, n) < n)
		n = 0; /* cannot happen: nothing marks meanwhile */
	for (size_t i = 0; seqs != NULL && i < n; i++)
		if (read_rec(s, READ_SEQ, -1, seqs[i], &rec) == 1 && give_rec(s, &rec) == 0)
			break;
	free(seqs);
	s->started = true;
	if (s->cnt[STORE_C_restored] > 0)
		log_info("store: %llu QoS 2 messages resume their exchange with the cloud",
		    (unsigned long long)s->cnt[STORE_C_restored]);
	drain(s);
}

void
store_process(struct store *s)
{
	struct durable_report *rep;
	uint64_t v;
	size_t n;

	if (read(s->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "store: eventfd: %s", strerror(errno));
	s->wake_pending = false;
	pthread_mutex_lock(&s->lock);
	rep = s->rep;
	n = s->nrep;
	s->rep = NULL;
	s->nrep = s->caprep = 0;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		uint64_t k = rep[i].last - rep[i].first + 1;

		live_note(s, rep[i].last, store_now_ms(s));
		s->cnt[rep[i].status == 0 ? STORE_C_durable : STORE_C_durable_fail] += k;
		if (rep[i].status != 0)
			log_warnx(
			    "store: records %llu..%llu were not made durable (%s): never sent",
			    (unsigned long long)rep[i].first, (unsigned long long)rep[i].last,
			    strerror(-rep[i].status));
		for (size_t j = 0; j < s->nsubs; j++)
			s->subs[j].fn(s->subs[j].arg, rep[i].first, rep[i].last, rep[i].status);
	}
	free(rep);
	settle_syncs(s);
	drain(s);
}

/* ---- producers ---- */

int
store_submit(struct store *s, const char *local_topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t *seq)
{
	return store_submit_from(s, local_topic, payload, len, qos, retain, NULL, seq);
}

/* payload behind the origin in s->obuf; NULL when out of memory. */
static const void *
with_origin(struct store *s, const struct store_origin *o, const void *payload, size_t len)
{
	size_t need = STORE_ORIGIN_LEN + len;

	if (need > s->obuflen) {
		uint8_t *nb = realloc(s->obuf, need);

		if (nb == NULL)
			return NULL;
		s->obuf = nb;
		s->obuflen = need;
	}
	memcpy(s->obuf, o, STORE_ORIGIN_LEN);
	memcpy(s->obuf + STORE_ORIGIN_LEN, payload, len);
	return s->obuf;
}

int
store_submit_from(struct store *s, const char *local_topic, const void *payload, size_t len,
    uint8_t qos, bool retain, const struct store_origin *origin, uint64_t *seq)
{
	const struct rules *rs;
	const struct rule *ru;
	struct spool_rec_in in;
	int n, rc;

	*seq = 0;
	s->cnt[STORE_C_submitted]++;
	rs = s->rules;
	ru = rules_match(rs, local_topic, strlen(local_topic));
	if (ru == NULL && origin != NULL && origin->ref != 0 && s->prev_rules != NULL) {
		/* the dataplane defers its publisher's ack under the rules it read: the set the
		 * last reload replaced (it has not reloaded yet, or the record was on its way) */
		rs = s->prev_rules;
		if ((ru = rules_match(rs, local_topic, strlen(local_topic))) != NULL)
			LOG_RATELIMITED(LOG_LVL_INFO, 60,
			    "store: %s: no rule now; stored under the previous rules' line %u (the "
			    "dataplane took it under them)",
			    local_topic, ru->line);
	}
	if (ru == NULL) {
		s->cnt[STORE_C_unmatched]++;
		return -ENOENT;
	}
	n = rules_render(rs, ru, local_topic, strlen(local_topic), s->topic, sizeof(s->topic));
	if (n < 0) {
		s->cnt[STORE_C_bad_topic]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "store: no cloud topic for %s (rule at line %u): %s", local_topic, ru->line,
		    strerror(-n));
		return n;
	}
	if (s->sp == NULL) {
		s->cnt[STORE_C_unspooled]++;
		return uplink_submit(s->up, s->topic, payload, len, rule_qos(ru, qos), retain);
	}
	if (len > SPOOL_PAYLOAD_MAX - (origin != NULL ? STORE_ORIGIN_LEN : 0))
		return s->cnt[STORE_C_append_fail]++, -EMSGSIZE;
	if (origin != NULL) {
		if ((payload = with_origin(s, origin, payload, len)) == NULL)
			return s->cnt[STORE_C_append_fail]++, -ENOMEM;
		len += STORE_ORIGIN_LEN;
	}
	in = (struct spool_rec_in){ .cls = (enum spool_class)ru->cls,
		.qos = rule_qos(ru, qos),
		.flags = (uint8_t)((retain ? STORE_FLAG_RETAIN : 0) |
		    (origin != NULL ? STORE_FLAG_ORIGIN : 0) |
		    (origin != NULL && qos == 2 ? STORE_FLAG_QOS2 : 0)),
		.topic = s->topic,
		.topic_len = (uint16_t)n,
		.payload = payload,
		.payload_len = (uint32_t)len };
	rc = spool_append(s->sp, &in, seq);
	if (rc == 0)
		s->cnt[STORE_C_appended]++;
	else if (rc == -ENOBUFS)
		s->cnt[STORE_C_refused_full]++;
	else
		s->cnt[STORE_C_append_fail]++;
	return rc;
}

int
store_on_durable(struct store *s, store_durable_fn fn, void *arg)
{
	if (s->nsubs == STORE_DURABLE_SUBS_MAX)
		return -ENOSPC;
	s->subs[s->nsubs].fn = fn;
	s->subs[s->nsubs++].arg = arg;
	return 0;
}

/* ---- origins found at open ---- */

/* The spool's recovery (spool_open, this thread): a record with an origin. */
static void
on_recovered(void *arg, uint64_t seq, uint8_t flags, const uint8_t *payload, uint32_t len)
{
	struct store *s = arg;

	if (len < STORE_ORIGIN_LEN)
		return;
	if (s->nrecov == s->caprecov) {
		size_t cap = s->caprecov ? s->caprecov * 2 : 1024;
		struct recovered_origin *t = realloc(s->recov, cap * sizeof(*t));

		if (t == NULL) { /* those records may be stored again if the producer resends */
			LOG_RATELIMITED(LOG_LVL_ERR, 60, "store: out of memory for record origins");
			return;
		}
		s->recov = t;
		s->caprecov = cap;
	}
	s->recov[s->nrecov].seq = seq;
	s->recov[s->nrecov].qos2 = (flags & STORE_FLAG_QOS2) != 0;
	memcpy(&s->recov[s->nrecov++].o, payload, STORE_ORIGIN_LEN);
}

size_t
store_recovered_origins(struct store *s, store_origin_fn fn, void *arg)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nrecov; i++)
		if (spool_rec_kept(s->sp, s->recov[i].seq)) {
			fn(arg, &s->recov[i].o, s->recov[i].qos2,
			    spool_rec_acked(s->sp, s->recov[i].seq));
			n++;
		}
	free(s->recov);
	s->recov = NULL;
	s->nrecov = s->caprecov = 0;
	return n;
}

/* ---- life ---- */

int
store_open(struct store **out, struct store_conf *conf, bool use_spool, struct uplink *up,
    size_t max_inflight)
{
	struct store *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL)
		return -ENOMEM;
	s->up = up;
	s->max_inflight = max_inflight ? max_inflight : STORE_MAX_INFLIGHT_DEF;
	s->live_age_ms = conf->live_age_ms;
	s->backlog_max =
	    s->max_inflight * (conf->backlog_percent ? conf->backlog_percent : 100) / 100;
	if (s->backlog_max == 0)
		s->backlog_max = 1;
	s->backlog_maybe = true;
	s->now_fn = conf->now_ms;
	s->now_arg = conf->now_arg;
	pthread_mutex_init(&s->lock, NULL);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		rc = -errno;
		goto fail;
	}
	s->rules = conf->rules;
	conf->rules = NULL;
	if (use_spool) {
		struct spool_config sc = conf->spool;

		sc.on_durable = on_durable;
		sc.on_durable_arg = s;
		sc.on_committed = on_committed;
		sc.on_committed_arg = s;
		sc.recover_flags = STORE_FLAG_ORIGIN;
		sc.on_recovered = on_recovered;
		sc.on_recovered_arg = s;
		if ((rc = spool_open(&sc, &s->sp)) != 0) {
			log_err("store: cannot open the spool in %s: %s", sc.dir, strerror(-rc));
			goto fail;
		}
		/* what the spool holds at open is the backlog */
		s->live_floor = spool_durable_seq(s->sp) + 1;
		if ((rc = spool_start_flusher(s->sp)) != 0)
			goto fail;
		snprintf(s->dir, sizeof(s->dir), "%s", sc.dir);
		s->buflen = 64 << 10;
		if ((s->buf = malloc(s->buflen)) == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		up->dlv = (struct uplink_delivery){ s, dlv_mark, dlv_sync, dlv_acked };
	}
	log_info("store: %zu uplink rules%s%s", s->rules->n, s->sp ? ", spool in " : ", no spool",
	    s->sp ? conf->spool.dir : "");
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

static void
store_free(struct store *s)
{
	if (s->efd >= 0)
		close(s->efd);
	pthread_mutex_destroy(&s->lock);
	free(s->held.topic);
	free(s->held.payload);
	free(s->rep);
	free(s->buf);
	free(s->obuf);
	free(s->recov);
	free(s->given_backlog.v);
	rules_free(s->rules);
	rules_free(s->prev_rules);
	free(s);
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->sp != NULL)
		spool_close(s->sp); /* commits what is buffered; reports come no more */
	store_free(s);
}

void
store_abandon(struct store *s)
{
	if (s == NULL)
		return;
	if (s->sp != NULL)
		spool_abandon(s->sp);
	store_free(s);
}

int
store_event_fd(const struct store *s)
{
	return s->efd;
}

void
store_get_stats(struct store *s, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->c, s->cnt, sizeof(out->c));
	out->c[STORE_C_backlog] = uplink_backlog(s->up);
	out->c[STORE_C_backlog_inflight] = s->out_backlog;
	out->has_spool = s->sp != NULL;
	if (s->sp != NULL) {
		spool_counters(s->sp, out->spool);
		if (spool_oldest_ms(s->sp, &out->oldest_ms) != 0)
			out->oldest_ms = 0; /* an unreadable header is counted by the read path */
	}
}

void
store_count(struct store *s, enum store_counter c, uint64_t n)
{
	if ((unsigned)c < STORE_C_COUNT)
		s->cnt[c] += n;
}

const char *
store_spool_dir(const struct store *s)
{
	return s->sp != NULL ? s->dir : NULL;
}

const struct rules *
store_rules(const struct store *s)
{
	return s->rules;
}

void
store_set_rules(struct store *s, struct rules *r)
{
	rules_free(s->prev_rules);
	s->prev_rules = s->rules;
	s->rules = r;
	log_info("store: %zu uplink rules now (a reload; %zu before)", r->n, s->prev_rules->n);
}
