/*
 * store.c: store and forward (store.h). Producers' messages through the rules into the spool;
 * the spool's durability reports from its flusher thread over an eventfd to the loop; durable
 * records drained into the uplink in class order (alarm, normal, bulk), at most max_inflight
 * given and not acknowledged; the uplink's delivery hooks recorded in the spool (QoS 2 phases,
 * their commit, acks). Neighbours: lib/spool, lib/rules, uplink.h (mqtt_client.c, jsonl_sink.c).
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

/* A record the uplink could not queue (-ENOBUFS): kept and given first next time. */
struct held_rec {
	uint64_t seq;
	uint8_t qos;
	bool retain, valid;
	char *topic;
	void *payload;
	size_t len;
};

struct store {
	struct rules *rules;
	struct rules *prev_rules; /* replaced by the last reload (store_set_rules), NULL: none */
	struct spool *sp;         /* NULL: no spool, messages go straight to the uplink */
	struct uplink *up;
	size_t max_inflight;
	int efd;
	bool started, wake_pending;
	pthread_mutex_t lock; /* reports, filled by the flusher */
	struct durable_report *rep;
	size_t nrep, caprep;
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

static int
dlv_sync(void *arg)
{
	struct store *s = arg;
	uint64_t t0 = clock_mono_us();
	int rc = spool_commit(s->sp);

	s->cnt[STORE_C_q2_syncs]++;
	s->cnt[STORE_C_q2_sync_us] += clock_mono_us() - t0;
	if (rc != 0) {
		s->cnt[STORE_C_sync_fail]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "store: commit of QoS 2 phases failed: %s (exactly once not guaranteed for "
		    "them)",
		    strerror(-rc));
	}
	return rc;
}

static void
dlv_acked(void *arg, uint64_t ref, uint8_t reason)
{
	struct store *s = arg;

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

/* 1: given (or released as never sendable), 0: the uplink is full (held). */
static int
give(struct store *s, uint64_t seq, const char *topic, const void *p, size_t len, uint8_t qos,
    bool retain)
{
	int rc = uplink_send(s->up, topic, p, len, qos, retain, seq);

	if (rc == 0) {
		s->cnt[STORE_C_sent]++;
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

/* Read the next record of cls (or of any class, cls < 0) into s->buf and s->topic. */
static int
read_rec(struct store *s, int cls, struct spool_rec *rec)
{
	int rc;

	for (;;) {
		rc = cls < 0 ? spool_read_next(s->sp, rec, s->buf, s->buflen)
			     : spool_read(s->sp, (enum spool_class)cls, rec, s->buf, s->buflen);
		if (rc != -ENOBUFS)
			break;
		size_t need = (size_t)rec->topic_len + rec->payload_len + 64;
		uint8_t *nb = realloc(s->buf, need);

		if (nb == NULL)
			return -ENOMEM;
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

static void
drain(struct store *s)
{
	struct spool_rec rec;

	if (s->sp == NULL || !s->started || give_held(s) == 0)
		return;
	while (uplink_backlog(s->up) < s->max_inflight && read_rec(s, -1, &rec) == 1)
		if (give_rec(s, &rec) == 0)
			break;
}

void
store_start(struct store *s)
{
	struct spool_rec rec;
	size_t n;

	if (s->sp == NULL || s->started)
		return;
	/* What was in flight is a prefix of each class's unacknowledged records: read that much of
	 * every class now, before the first connect, so that each QoS 2 exchange resumes. */
	for (int c = 0; c < SPOOL_CLASS_N; c++)
		for (n = 0; n < s->max_inflight && read_rec(s, c, &rec) == 1; n++)
			if (give_rec(s, &rec) == 0)
				break;
	s->started = true;
	if (s->cnt[STORE_C_restored] > 0)
		log_info("store: %llu QoS 2 messages resume their exchange with the cloud",
		    (unsigned long long)s->cnt[STORE_C_restored]);
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
		sc.recover_flags = STORE_FLAG_ORIGIN;
		sc.on_recovered = on_recovered;
		sc.on_recovered_arg = s;
		if ((rc = spool_open(&sc, &s->sp)) != 0) {
			log_err("store: cannot open the spool in %s: %s", sc.dir, strerror(-rc));
			goto fail;
		}
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
