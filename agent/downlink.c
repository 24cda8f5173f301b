/*
 * downlink.c: cloud messages to the dataplane's broker (downlink.h): the downlink rules map the
 * cloud topic; a QoS 1/2 message goes into a spool of its own (lib/spool, one class, no consumer
 * but this) and is acknowledged to the cloud once it is on disk; the spool's records go, in
 * order, to one lcore as DOWN records carrying a ref (their sequence number above the spool's
 * ref base: ref_base_load), and each is released only when the dataplane answers that its
 * broker took it (DOWN_ACK). Those not answered when a
 * connection ends are sent again from the oldest (the dataplane answers one it took already
 * without delivering it twice). QoS 2 packet ids: downlink_q2.c. Neighbours: main.c (the
 * uplink's message hook), dpchan_link.c.
 */
#include "downlink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "downlink_q2.h"
#include "log.h"
#include "loop.h"
#include "ownq.h"
#include "store.h"

#define DOWN_WAIT_DURABLE_MS 2000 /* longest the loop waits for a spooled message's fdatasync */
#define DOWN_WINDOW          256  /* DOWN records sent and not answered, at most */
#define DOWN_FLAG_RETAIN     0x01

struct downlink {
	const struct rules *rules;
	struct dpchan_server *srv;
	struct store *st;
	struct spool *sp;        /* NULL: no spool, a QoS 1/2 message is never owned */
	struct downlink_ids *q2; /* with the spool */
	uint64_t disconnects;    /* the server's DISCONNECTS when last looked at */
	uint64_t last_seq;       /* the last record appended */
	uint64_t ref_base;       /* a record's ref on the channel: ref_base + its sequence number */
	uint32_t inflight;       /* records sent, not answered */
	bool backlog;            /* the spool may hold records not sent on this connection */
	bool held;               /* rec was read and not sent yet (the socket was full) */
	bool released;           /* releases (spool_ack) not committed yet */
	struct spool_rec rec;
	uint8_t *buf; /* rec's topic and payload */
	downlink_owned_fn owned_fn;
	void *owned_arg;
	struct ownq own; /* QoS 1/2 messages spooled, acknowledged once their record is durable */
	char dir[600];
	char local[65536]; /* a message's local topic (downlink_deliver) */
};

static void
on_tick(void *arg, uint64_t now_ms)
{
	(void)now_ms;
	downlink_replay(arg);
}

/* After each of the spool's commits (ownq.h): what waited for it is answered. */
static void
on_wake(void *arg, uint32_t events)
{
	struct downlink *d = arg;

	(void)events;
	ownq_clear(&d->own);
	downlink_replay(d);
	ownq_committed(&d->own);
}

static void on_down_ack(void *arg, uint64_t first, uint64_t last, int status);

/*
 * The refs the dataplane dedupes by (it journals the highest it took: docs/architecture.md,
 * "Downlink") must keep growing for as long as its state lives. The spool's sequence numbers
 * do while the spool lives, but restart at 1 in a spool removed by hand; so a record's ref is
 * its sequence number plus a base drawn when the spool's directory first gets one: the wall
 * clock in microseconds, above every ref an earlier spool there sent (it sent fewer records
 * than microseconds passed) as long as the clock did not go back (a box without a real-time
 * clock booting at its firmware's date: ref_rebase catches that). Kept in <downlink>/ref-base
 * (8 bytes, written aside and renamed).
 */
static int ref_base_store(struct downlink *d, const char *path);

static int
ref_base_load(struct downlink *d)
{
	char path[700];
	struct timespec ts;
	uint8_t b[8];
	int fd;

	snprintf(path, sizeof(path), "%s/ref-base", d->dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		ssize_t n = read(fd, b, sizeof(b));

		close(fd);
		for (int i = 7; n == (ssize_t)sizeof(b) && i >= 0; i--)
			d->ref_base = d->ref_base << 8 | b[i];
		if (d->ref_base != 0)
			return 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	d->ref_base = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	return ref_base_store(d, path);
}

static int
ref_base_store(struct downlink *d, const char *path)
{
	char tmp[710];
	uint8_t b[8];
	int fd, rc = 0;

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(d->ref_base >> (8 * i));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -errno;
	errno = 0;
	if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b) || fdatasync(fd) != 0)
		rc = errno != 0 ? -errno : -EIO;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc == 0 && (fd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) != 0)
			rc = -errno;
		close(fd);
	}
	if (rc == 0)
		log_info(
		    "downlink: %s: a new ref base (%llu): the dataplane takes its records as new",
		    path, (unsigned long long)d->ref_base);
	return rc;
}

static int
open_spool(struct downlink *d, const struct spool_config *base)
{
	struct spool_config c = *base;
	int rc;

	if (snprintf(d->dir, sizeof(d->dir), "%s/downlink",
		base->dir ? base->dir : SPOOL_DEFAULT_DIR) >= (int)sizeof(d->dir))
		return -ENAMETOOLONG;
	c.dir = d->dir;
	c.max_bytes = (base->max_bytes ? base->max_bytes : (1ull << 30)) / 16;
	if (c.max_bytes < (1u << 20))
		c.max_bytes = 1u << 20;
	c.segment_bytes = 0;
	c.policy_set = false;
	c.on_durable = NULL;
	c.on_committed = ownq_on_commit; /* every commit: also one that synced an id's free */
	c.on_committed_arg = &d->own;
	c.before_commit = downlink_ids_before_commit;
	c.before_commit_arg = &d->q2;
	c.recover_flags = 0;
	c.on_recovered = NULL;
	/* the flusher starts once the ids are open: its commits sync them (before_commit) */
	if ((rc = spool_open(&c, &d->sp)) != 0 ||
	    (rc = downlink_ids_open(&d->q2, d->dir, d->sp, base->io, base->io_ctx)) != 0 ||
	    (rc = spool_start_flusher(d->sp)) != 0 || (rc = ref_base_load(d)) != 0) {
		log_err("downlink: spool %s: %s", d->dir, strerror(-rc));
		return rc;
	}
	store_count(d->st, STORE_C_down_q2_corrupt, downlink_ids_corrupt(d->q2));
	d->backlog = true; /* what it held at open goes first */
	return 0;
}

int
downlink_open(struct downlink **out, struct agent_loop *loop, const struct rules *r,
    struct dpchan_server *srv, const struct spool_config *spool_base, struct store *st)
{
	struct downlink *d = calloc(1, sizeof(*d));
	int rc;

	if (d == NULL || (d->buf = malloc(DPCHAN_FRAME_MAX)) == NULL) {
		free(d);
		return -ENOMEM;
	}
	d->rules = r;
	d->srv = srv;
	d->st = st;
	d->disconnects = dpchan_server_counter(srv, DPCHAN_C_DISCONNECTS);
	if ((rc = ownq_open(&d->own, loop, on_wake, d)) != 0) {
		free(d->buf);
		free(d);
		return rc;
	}
	if ((spool_base != NULL && (rc = open_spool(d, spool_base)) != 0) ||
	    (rc = agent_loop_add_tick(loop, on_tick, d)) != 0) {
		downlink_close(d);
		return rc;
	}
	dpchan_server_set_down_ack(srv, on_down_ack, d);
	*out = d;
	return 0;
}

void
downlink_set_rules(struct downlink *d, const struct rules *r)
{
	d->rules = r;
}

void
downlink_set_owned(struct downlink *d, downlink_owned_fn fn, void *arg)
{
	d->owned_fn = fn;
	d->owned_arg = arg;
}

void
downlink_set_on_commit(struct downlink *d, void (*fn)(void *arg), void *arg)
{
	d->own.on_commit = fn;
	d->own.on_commit_arg = arg;
}

/* Into the spool: its sequence number in *seq; 0, or a negative errno. */
static int
spool_put(struct downlink *d, const struct dpchan_rec *r, uint64_t *seq)
{
	struct spool_rec_in in = { .cls = SPOOL_NORMAL,
		.qos = r->qos,
		.flags = r->retain ? DOWN_FLAG_RETAIN : 0,
		.topic = r->topic,
		.topic_len = r->topic_len,
		.payload = r->payload,
		.payload_len = r->payload_len };
	int rc;

	if (d->sp == NULL)
		return -ENOTCONN;
	if ((rc = spool_append(d->sp, &in, seq)) != 0)
		return rc;
	d->last_seq = *seq;
	d->backlog = true;
	return 0;
}

/* Wait for seq on disk: 0, or a negative errno. */
static int
spool_wait(struct downlink *d, uint64_t seq)
{
	int rc = spool_wait_durable(d->sp, seq, DOWN_WAIT_DURABLE_MS);

	return rc == 1 ? 0 : rc == 0 ? -ETIMEDOUT : rc;
}

static void
q2_fail(struct downlink *d, uint16_t packet_id, int rc)
{
	store_count(d->st, STORE_C_down_q2_fail, 1);
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "downlink: cannot keep QoS 2 packet id %u in %s/q2-ids (%s): exactly once holds only "
	    "until the agent restarts",
	    packet_id, d->dir, strerror(-rc));
}

/* Its record durable: its QoS 2 id owned with it (downlink_q2.h). */
static void
own_q2(struct downlink *d, uint16_t packet_id)
{
	int rc = downlink_ids_own(d->q2, packet_id);

	if (rc != 0)
		q2_fail(d, packet_id, rc);
}

static void
not_owned(struct downlink *d, const char *topic, int rc)
{
	store_count(d->st, STORE_C_down_not_owned, 1);
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "downlink: %s: the downlink spool could not take it (%s); not acknowledged (the cloud "
	    "sends it again)",
	    topic, d->sp == NULL ? "no spool" : strerror(-rc));
}

/*
 * A QoS 1/2 message (cloud_qos: the QoS it came with; packet_id for QoS 2): owned once on disk,
 * its QoS 2 packet id with it. Appended, then acknowledged once the flusher's commit made it
 * durable (settle: the loop never waits for the disk), 1; without a way to say so later (no
 * owned_fn) or with DOWN_WAITERS waiting, the loop waits for that commit here: 0 owned. A
 * negative errno: not owned. A QoS 2 resend of one still waiting takes that one's place (the
 * connection it came on is gone): not spooled twice.
 */
static int
own(struct downlink *d, const struct dpchan_rec *r, uint8_t cloud_qos, uint16_t packet_id,
    uint64_t token)
{
	bool q2 = cloud_qos == 2 && packet_id != 0 && d->q2 != NULL;
	struct ownq_item *w = q2 ? ownq_find_id(&d->own, packet_id) : NULL;
	uint64_t seq = 0, next = 0;
	int rc;

	if (w != NULL) {
		w->token = token;
		return 1;
	}
	/* the id names its record before the record exists: the commit that makes the record
	 * durable makes the id durable first (downlink_q2.h), and the loop never waits for either */
	if (q2 && d->sp != NULL &&
	    (rc = downlink_ids_pending(d->q2, packet_id, next = spool_next_seq(d->sp))) != 0) {
		q2_fail(d, packet_id, rc);
		q2 = false;
	}
	rc = spool_put(d, r, &seq);
	if (rc == 0 && q2 && seq != next)
		rc = -EPROTO; /* another producer appended in between: never (one loop) */
	if (rc != 0) {
		if (q2 && downlink_ids_release(d->q2, packet_id) != 0)
			q2_fail(d, packet_id, rc); /* settled against the spool at the next open */
		return rc;
	}
	if (d->owned_fn != NULL &&
	    ownq_push(&d->own,
		&(struct ownq_item){ .seq = seq,
		    .token = token,
		    .packet_id = q2 ? packet_id : 0,
		    .qos = cloud_qos }))
		return 1;
	if ((rc = spool_wait(d, seq)) != 0)
		return rc; /* a PENDING id is settled against the spool at the next open */
	if (q2)
		own_q2(d, packet_id);
	return 0;
}

/* The waiting messages whose commits ended, oldest first: owned, or not (acknowledged or not). */
static void
settle(struct downlink *d)
{
	struct ownq_item w;
	int st;

	while ((st = ownq_next(&d->own, d->sp, &w)) != 0) {
		if (st == 1) {
			if (w.packet_id != 0)
				own_q2(d, w.packet_id);
			store_count(d->st, STORE_C_down_spooled, 1);
		} else {
			not_owned(d, "a spooled message", st);
		}
		if (d->owned_fn != NULL)
			d->owned_fn(d->owned_arg, w.token, w.qos, w.packet_id, st == 1 ? 0 : st);
	}
}

static void send_spooled(struct downlink *d);

/* A QoS 0 message: live when nothing waits before it, else spooled (not waited for), else lost. */
static void
best_effort(struct downlink *d, const struct dpchan_rec *r, const char *topic)
{
	uint64_t seq;

	send_spooled(d); /* older ones first */
	if (!d->backlog && !d->held && dpchan_server_down(d->srv, r) == 0) {
		store_count(d->st, STORE_C_down_to_dataplane, 1);
		return;
	}
	if (spool_put(d, r, &seq) == 0) {
		store_count(d->st, STORE_C_down_spooled, 1);
		return;
	}
	store_count(d->st, STORE_C_down_lost, 1);
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "downlink: %s: QoS 0, the channel cannot take it and the spool could not; dropped",
	    topic);
}

int
downlink_deliver(struct downlink *d, const char *topic, const uint8_t *payload, size_t len,
    uint8_t qos, bool retain, uint16_t packet_id, uint64_t token)
{
	const struct down_rule *rule = rules_down_match(d->rules, topic, strlen(topic));
	struct dpchan_rec r = {
		.retain = retain, .payload = payload, .payload_len = (uint32_t)len
	};
	char *local = d->local;
	int n, rc;

	if (rule == NULL)
		return -ENOENT;
	store_count(d->st, STORE_C_down_received, 1);
	n = rules_down_render(d->rules, rule, topic, strlen(topic), local, sizeof(d->local));
	if (n < 0) {
		store_count(d->st, STORE_C_down_bad_topic, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "downlink: %s: no local topic under the rule of line %u (%s); dropped", topic,
		    rule->line, strerror(-n));
		return 0;
	}
	if (DPCHAN_HDR_LEN + dpchan_rec_size(true, (size_t)n, len) > DPCHAN_FRAME_MAX) {
		store_count(d->st, STORE_C_down_too_large, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "downlink: %s: %zu bytes, over the channel's frame (%u); dropped", topic, len,
		    DPCHAN_FRAME_MAX);
		return 0;
	}
	r.qos = down_rule_qos(rule, qos);
	r.topic = local;
	r.topic_len = (uint16_t)n;
	if (qos == 0) {
		best_effort(d, &r, topic);
		return 0;
	}
	if ((rc = own(d, &r, qos, packet_id, token)) == 1)
		return DOWNLINK_OWN_LATER;
	if (rc == 0) {
		store_count(d->st, STORE_C_down_spooled, 1);
		send_spooled(d); /* on its way now */
		return 0;
	}
	not_owned(d, topic, rc);
	return rc;
}

/* The dataplane's broker took (status >= 0) or refused (< 0) the records of refs first..last. */
static void
on_down_ack(void *arg, uint64_t first, uint64_t last, int status)
{
	struct downlink *d = arg;

	if (d->sp == NULL || last <= d->ref_base) {
		store_count(d->st, STORE_C_down_ack_dup, 1); /* not one of this spool's */
		return;
	}
	first = first > d->ref_base ? first - d->ref_base : 1;
	last -= d->ref_base;
	for (uint64_t seq = first; seq <= last && seq - first < DOWN_WINDOW * 4u; seq++) {
		if (spool_ack(d->sp, seq) != 0) {
			store_count(d->st, STORE_C_down_ack_dup, 1);
			continue;
		}
		d->released = true;
		if (d->inflight > 0)
			d->inflight--;
		if (status < 0) {
			store_count(d->st, STORE_C_down_refused, 1);
			LOG_RATELIMITED(LOG_LVL_WARN, 60,
			    "downlink: the dataplane's broker refused spooled message %llu (%s); "
			    "dropped",
			    (unsigned long long)seq, strerror(-status));
			continue;
		}
		store_count(d->st, STORE_C_down_taken, 1);
		if (status == 0)
			store_count(d->st, STORE_C_down_no_subscriber, 1);
	}
}

/* A connection ended: what was sent and not answered goes again, from the oldest. */
static void
check_disconnects(struct downlink *d)
{
	uint64_t n = dpchan_server_counter(d->srv, DPCHAN_C_DISCONNECTS);

	if (n == d->disconnects)
		return;
	d->disconnects = n;
	if (d->inflight == 0 && !d->held)
		return;
	store_count(d->st, STORE_C_down_resent, d->inflight);
	spool_rewind(d->sp);
	d->inflight = 0;
	d->held = false;
	d->backlog = true;
}

/*
 * The dataplane's newest start took refs above every one this spool made (its HELLO says so):
 * they came from an earlier spool whose base was drawn from a clock that has since gone back,
 * or from this one before its sequence numbers restarted. Every record sent now would be
 * answered as taken before and never delivered: the base moves above them, and what waits
 * goes again under the new refs (the dataplane took none of it: each was at or below).
 */
static void
ref_rebase(struct downlink *d)
{
	uint64_t seen = dpchan_server_down_seen(d->srv), hi = spool_durable_seq(d->sp);
	char path[700];
	int rc;

	if (d->last_seq > hi)
		hi = d->last_seq;
	if (seen <= d->ref_base + hi)
		return;
	log_warnx("downlink: the dataplane took refs up to %llu, above every one this spool made "
		  "(base %llu, %llu records): the base moves to %llu (was the clock set back?)",
	    (unsigned long long)seen, (unsigned long long)d->ref_base, (unsigned long long)hi,
	    (unsigned long long)seen);
	d->ref_base = seen;
	store_count(d->st, STORE_C_down_rebased, 1);
	snprintf(path, sizeof(path), "%s/ref-base", d->dir);
	if ((rc = ref_base_store(d, path)) != 0) /* the next HELLO says the same: done again */
		log_warnx("downlink: %s: %s", path, strerror(-rc));
	if (d->inflight > 0 || d->held) {
		store_count(d->st, STORE_C_down_resent, d->inflight);
		spool_rewind(d->sp);
		d->inflight = 0;
		d->held = false;
	}
	d->backlog = true;
}

/* The next record to send into d->rec: 1, 0 none (yet), < 0 a read error. */
static int
next_rec(struct downlink *d)
{
	int rc;

	if (d->held)
		return 1;
	while ((rc = spool_read_next(d->sp, &d->rec, d->buf, DPCHAN_FRAME_MAX)) == -ENOBUFS) {
		/* over any DOWN frame (spooled by a build with a larger one): it can never go, and
		 * would hold back every record behind it */
		store_count(d->st, STORE_C_down_spool_fail, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "downlink: spooled message %llu (%u bytes of topic and payload) is over the "
		    "channel's frame (%u): dropped",
		    (unsigned long long)d->rec.seq, d->rec.topic_len + d->rec.payload_len,
		    DPCHAN_FRAME_MAX);
		spool_ack(d->sp, d->rec.seq);
		d->released = true;
	}
	if (rc == 0) /* what was appended and is not durable yet: still waiting */
		d->backlog = spool_durable_seq(d->sp) < d->last_seq;
	if (rc < 0) {
		store_count(d->st, STORE_C_down_spool_fail, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "downlink: spool read: %s", strerror(-rc));
	}
	d->held = rc == 1;
	return rc;
}

/* What the spool holds (durable), in order, while the dataplane takes it; the releases its
 * answers made committed. */
static void
send_spooled(struct downlink *d)
{
	int rc;

	if (d->sp == NULL)
		return;
	check_disconnects(d);
	ref_rebase(d);
	while (
	    dpchan_server_connected(d->srv) > 0 && d->inflight < DOWN_WINDOW && next_rec(d) == 1) {
		struct dpchan_rec r = { .ref = d->ref_base + d->rec.seq,
			.qos = d->rec.qos,
			.retain = d->rec.flags & DOWN_FLAG_RETAIN,
			.topic = d->rec.topic,
			.topic_len = d->rec.topic_len,
			.payload = d->rec.payload,
			.payload_len = d->rec.payload_len };

		rc = dpchan_server_down(d->srv, &r);
		if (rc != 0 && rc != -E2BIG && rc != -EINVAL)
			break; /* no lcore, its socket full or failing: the same record next time */
		d->held = false;
		if (rc == 0) {
			store_count(d->st, STORE_C_down_replayed, 1);
			d->inflight++;
			continue;
		}
		store_count(d->st, STORE_C_down_too_large, 1); /* cannot ever go: released */
		spool_ack(d->sp, d->rec.seq);
		d->released = true;
	}
	if (d->released) {
		/* the QoS 2 ids those messages carried are on disk before their records go: the
		 * commit syncs them first (before_commit) */
		d->released = false;
		spool_commit_request(
		    d->sp); /* the flusher writes the releases: the loop never waits */
	}
}

void
downlink_replay(struct downlink *d)
{
	if (d->sp == NULL)
		return;
	settle(d);
	send_spooled(d);
}

int
downlink_q2_release(struct downlink *d, uint16_t packet_id, uint64_t *need)
{
	int rc;

	if (need != NULL)
		*need = 0;
	if (d == NULL || d->q2 == NULL)
		return 0;
	if (packet_id == 0) /* the session is gone: so are the ids of what waits for the disk */
		ownq_forget_ids(&d->own);
	if ((rc = downlink_ids_pubrel(d->q2, d->sp, packet_id, need)) != 0) {
		store_count(d->st, STORE_C_down_q2_fail, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "downlink: cannot free QoS 2 packet id %u in %s/q2-ids (%s): PUBCOMP withheld",
		    packet_id, d->dir, strerror(-rc));
	}
	return rc;
}

bool
downlink_q2_durable(const struct downlink *d, uint64_t need)
{
	return d == NULL || d->q2 == NULL || downlink_ids_durable(d->q2, need);
}

void
downlink_q2_each(struct downlink *d, void (*fn)(void *arg, uint16_t packet_id), void *arg)
{
	if (d != NULL && d->q2 != NULL)
		downlink_ids_each(d->q2, fn, arg);
}

void
downlink_close(struct downlink *d)
{
	if (d == NULL)
		return;
	if (d->srv != NULL)
		dpchan_server_set_down_ack(d->srv, NULL, NULL);
	spool_close(d->sp); /* its last commit syncs the ids; the flusher stopped */
	downlink_ids_close(d->q2);
	ownq_close(&d->own);
	free(d->buf);
	free(d); /* the loop's tick still names it: the loop does not run again */
}
