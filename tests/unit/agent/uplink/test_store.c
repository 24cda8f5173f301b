/*
 * test_store.c: agent/uplink/store.c against a fake uplink (records what it is given, acts as
 * the cloud through the delivery hooks) and a spool on a temporary directory whose fdatasync can
 * be made to fail: the rules decide (unmatched: -ENOENT), a full spool refuses (-ENOBUFS), a
 * failed commit is reported and its records never sent, records go up only once durable and are
 * released only when acknowledged, QoS 2 phases survive a SIGKILL (restored under their packet
 * id), the uplink's refusals and a full uplink are counted; a record read back while memory
 * runs out (fail_alloc.h) is read again later, not lost.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fail_alloc.h"
#include "fake_uplink.h"
#include "store.h"
#include "uplink.h"

/* ---- a spool whose fdatasync fails on demand ---- */

static bool fail_sync;
/* A slow disk: while the gate is closed an fdatasync waits for it to open (5 s at most: then
 * gate_timed_out says the caller waited that long for the disk). */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_closed, in_gate, gate_timed_out;

static void
gate_pass(void)
{
	struct timespec until;

	pthread_mutex_lock(&gate_mu);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	in_gate = gate_closed;
	pthread_cond_broadcast(&gate_cv);
	while (gate_closed && !gate_timed_out)
		if (pthread_cond_timedwait(&gate_cv, &gate_mu, &until) == ETIMEDOUT)
			gate_timed_out = true;
	in_gate = false;
	pthread_mutex_unlock(&gate_mu);
}

static void
gate_set(bool closed)
{
	pthread_mutex_lock(&gate_mu);
	gate_closed = closed;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static int
f_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	gate_pass();
	if (fail_sync) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.fdatasync(NULL, fd);
}

static struct spool_io_ops fault_ops;
static char dir[64];
static struct fake_up F;
static struct store_conf *conf;
static uint32_t
    commit_wait_us;     /* 0: the default; long: what is submitted together commits together */
static bool fake_clock; /* the store's clock is fake_ms (the live lane's age) */
static uint64_t fake_ms;

static uint64_t
fake_now(void *arg)
{
	(void)arg;
	return fake_ms;
}

static struct store_conf *
load_conf(const char *uplink_yaml)
{
	struct conf_doc *doc;
	struct store_conf *c;
	char text[1024], err[256];

	snprintf(text, sizeof(text), "%s", uplink_yaml);
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	if (store_conf_parse(conf_get(conf_root(doc), "uplink"), &c) != 0)
		fail_msg("%s", conf_errors(doc));
	conf_free(doc);
	c->spool.dir = dir;
	c->spool.max_bytes = 1 << 20;
	c->spool.io = &fault_ops;
	if (commit_wait_us)
		c->spool.commit_max_wait_us = commit_wait_us;
	if (fake_clock)
		c->now_ms = fake_now;
	return c;
}

static const char rules_yaml[] =
    "uplink:\n"
    "  site: lab\n"
    "  rules:\n"
    "    - {match: \"plant/alarm/#\", topic: \"site/{site}/{topic}\", class: alarm}\n"
    "    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep}\n"
    "    - {match: \"meter/+\", topic: \"m/{topic}\", qos: 2}\n"
    "  spool: {dir: /unused}\n";

static struct store *
open_store(size_t max_inflight)
{
	struct store *s;

	conf = load_conf(rules_yaml);
	assert_int_equal(store_open(&s, conf, true, &F.up, max_inflight), 0);
	store_conf_free(conf);
	store_start(s);
	return s;
}

/* Wait (poll, bounded) for the flusher's report, then let the store act on it. */
static void
settle(struct store *s)
{
	struct pollfd p = { .fd = store_event_fd(s), .events = POLLIN };

	assert_int_equal(poll(&p, 1, 5000), 1);
	store_process(s);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(dir));
	fault_ops = spool_io_posix;
	fault_ops.fdatasync = f_fdatasync;
	fail_sync = false;
	commit_wait_us = 0;
	fake_clock = false;
	fake_ms = 1000000;
	gate_closed = in_gate = gate_timed_out = false;
	fu_init(&F, true);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static uint64_t
counter(struct store *s, enum store_counter c)
{
	struct store_stats st;

	store_get_stats(s, &st);
	return st.c[c];
}

static uint64_t
spool_counter(struct store *s, enum spool_counter c)
{
	struct store_stats st;

	store_get_stats(s, &st);
	assert_true(st.has_spool);
	return st.spool[c];
}

/* ---- QoS 2 syncs (dlv.sync): started on the loop, ended by a later store_process ---- */

struct sync_end {
	int n, status;
};

static void
on_synced(void *arg, int status)
{
	struct sync_end *e = arg;

	e->n++;
	e->status = status;
}

/* Ask for a sync and run the loop (store_process on the eventfd) until it ends: its status. */
static int
sync_wait(struct store *s)
{
	struct sync_end e = { 0 };

	assert_int_equal(F.up.dlv.sync(F.up.dlv.arg, on_synced, &e), 0);
	assert_int_equal(e.n, 0); /* never from inside the call */
	while (e.n == 0)
		settle(s);
	assert_int_equal(e.n, 1);
	return e.status;
}

/* ---- durability reports ---- */

struct reports {
	uint64_t first, last, n;
	int status;
};

static void
on_report(void *arg, uint64_t first, uint64_t last, int status)
{
	struct reports *r = arg;

	if (r->n++ == 0)
		r->first = first;
	r->last = last;
	r->status = status;
}

/* ---- tests ---- */

static void
test_rules_spool_and_release(void **state)
{
	struct store *s = open_store(0);
	struct reports rep = { 0 };
	uint64_t seq, seq2;

	(void)state;
	assert_int_equal(store_on_durable(s, on_report, &rep), 0);
	assert_int_equal(store_submit(s, "other/x", "1", 1, 1, false, &seq), -ENOENT);
	assert_int_equal(seq, 0);
	assert_int_equal(store_submit(s, "plant/line1/t", "p1", 2, 1, true, &seq), 0);
	assert_int_equal(store_submit(s, "meter/3", "p2", 2, 0, false, &seq2), 0);
	assert_true(seq2 > seq);
	assert_int_equal(F.n, 0); /* nothing goes up before it is durable */
	while (rep.last < seq2)
		settle(s);
	assert_int_equal(rep.status, 0);
	assert_true(rep.first <= seq);
	assert_int_equal(F.n, 2);
	assert_string_equal(F.g[0].topic, "site/lab/plant/line1/t");
	assert_string_equal(F.g[0].payload, "p1");
	assert_int_equal(F.g[0].qos, 1);
	assert_true(F.g[0].retain);
	assert_int_equal(F.g[0].ref, seq);
	assert_string_equal(F.g[1].topic, "m/meter/3");
	assert_int_equal(F.g[1].qos, 2); /* the rule's QoS */
	fu_ack(&F, 0, 0);
	fu_ack(&F, 1, 0x87); /* refused for good: released too */
	store_process(s);
	assert_int_equal(counter(s, STORE_C_unmatched), 1);
	assert_int_equal(counter(s, STORE_C_appended), 2);
	assert_int_equal(counter(s, STORE_C_durable), 2);
	assert_int_equal(counter(s, STORE_C_sent), 2);
	assert_int_equal(counter(s, STORE_C_acked), 1);
	assert_int_equal(counter(s, STORE_C_cloud_refused), 1);
	assert_int_equal(counter(s, STORE_C_backlog), 0);
	assert_int_equal(spool_counter(s, SPOOL_C_acked), 2);
	/* an ack of what is gone already */
	F.up.dlv.acked(F.up.dlv.arg, seq, 0);
	assert_int_equal(counter(s, STORE_C_ack_unknown), 1);
	store_close(s);
	/* released: nothing comes back after a restart */
	F.n = 0;
	s = open_store(0);
	store_process(s);
	assert_int_equal(F.n, 0);
	store_close(s);
}

static void
test_alarm_class_first(void **state)
{
	struct store *s;
	uint64_t seq;

	(void)state;
	commit_wait_us = 1000000;
	s = open_store(0);
	F.send_rc = -ENOBUFS; /* the client's queue is full: the first record read is held */
	assert_int_equal(store_submit(s, "plant/a", "n", 1, 1, false, &seq), 0);
	while (counter(s, STORE_C_durable) < 1)
		settle(s);
	assert_true(counter(s, STORE_C_send_busy) >= 1);
	/* while it is held nothing else is read: a normal record, then an alarm, both durable
	 * (in one commit or two: a record that finds the spool idle commits at once, so which
	 * of two records submitted back to back is read first was up to the flusher) */
	assert_int_equal(store_submit(s, "plant/b", "n2", 2, 1, false, &seq), 0);
	assert_int_equal(store_submit(s, "plant/alarm/oven", "a", 1, 1, false, &seq), 0);
	while (counter(s, STORE_C_durable) < 3)
		settle(s);
	F.send_rc = 0;
	store_process(s);
	assert_int_equal(F.n, 3);
	/* the held record first, then the alarm ahead of the normal record before it */
	assert_string_equal(F.g[0].payload, "n");
	assert_string_equal(F.g[1].payload, "a");
	assert_string_equal(F.g[2].payload, "n2");
	store_close(s);
}

static void
test_spool_full_refuses(void **state)
{
	struct store *s = open_store(0);
	static char big[16384];
	uint64_t seq;
	int rc = 0, i;

	(void)state;
	F.send_rc = -ENOBUFS; /* the cloud is away: nothing is released */
	for (i = 0; i < 200 && rc == 0; i++) {
		rc = store_submit(s, "plant/x", big, sizeof(big), 1, false, &seq);
		if (rc == 0 && i % 16 == 15)
			settle(s);
	}
	assert_int_equal(rc, -ENOBUFS);
	assert_true(i > 10 && i < 200);
	assert_int_equal(counter(s, STORE_C_refused_full), 1);
	/* over the spool's payload limit */
	void *huge = calloc(1, SPOOL_PAYLOAD_MAX + 1);
	assert_int_equal(
	    store_submit(s, "plant/x", huge, SPOOL_PAYLOAD_MAX + 1, 1, false, &seq), -EMSGSIZE);
	free(huge);
	assert_int_equal(counter(s, STORE_C_append_fail), 1);
	store_close(s);
}

static void
test_commit_failure_never_sent(void **state)
{
	struct store *s = open_store(0);
	struct reports rep = { 0 };
	uint64_t seq;

	(void)state;
	assert_int_equal(store_on_durable(s, on_report, &rep), 0);
	fail_sync = true;
	assert_int_equal(store_submit(s, "plant/x", "lost", 4, 1, false, &seq), 0);
	while (rep.n == 0)
		settle(s);
	assert_true(rep.status < 0);
	assert_true(rep.first <= seq && seq <= rep.last);
	assert_int_equal(counter(s, STORE_C_durable_fail), 1);
	assert_int_equal(F.n, 0);
	fail_sync = false;
	store_close(s);
	s = open_store(0); /* nor after a restart */
	store_process(s);
	assert_int_equal(F.n, 0);
	store_close(s);
}

static void
test_qos2_phase_survives_restart(void **state)
{
	struct store *s = open_store(0);
	uint64_t seq;

	(void)state;
	assert_int_equal(store_submit(s, "meter/1", "q2", 2, 0, false, &seq), 0);
	while (F.n == 0)
		settle(s);
	assert_int_equal(F.g[0].qos, 2);
	/* the client sent the PUBLISH under id 77: mark, commit, then the connection dies */
	assert_int_equal(F.up.dlv.mark(F.up.dlv.arg, seq, 77, UPLINK_PHASE_PUBLISHED), 0);
	assert_int_equal(sync_wait(s), 0);
	store_abandon(s); /* SIGKILL: nothing committed on the way out */
	F.n = F.outstanding = 0;
	s = open_store(0);
	assert_int_equal(F.n, 1); /* restored by store_start, before any connect */
	assert_int_equal(F.g[0].phase, UPLINK_PHASE_PUBLISHED);
	assert_int_equal(F.g[0].packet_id, 77);
	assert_int_equal(F.g[0].ref, seq);
	assert_int_equal(counter(s, STORE_C_restored), 1);
	/* PUBREC: released, then the process dies again before PUBCOMP */
	assert_int_equal(F.up.dlv.mark(F.up.dlv.arg, seq, 77, UPLINK_PHASE_RELEASED), 0);
	assert_int_equal(sync_wait(s), 0);
	store_abandon(s); /* SIGKILL: nothing committed on the way out */
	F.n = F.outstanding = 0;
	s = open_store(0);
	assert_int_equal(F.n, 1);
	assert_int_equal(F.g[0].phase, UPLINK_PHASE_RELEASED);
	fu_ack(&F, 0, 0); /* PUBCOMP */
	store_close(s);
	F.n = F.outstanding = 0;
	s = open_store(0);
	assert_int_equal(F.n, 0);
	store_close(s);
	commit_wait_us = 1000000; /* the explicit commit below is the one that fails */
	s = open_store(0);
	/* a phase the spool cannot record (unknown record), and a commit that fails */
	assert_int_not_equal(F.up.dlv.mark(F.up.dlv.arg, 999999, 1, UPLINK_PHASE_PUBLISHED), 0);
	assert_int_equal(counter(s, STORE_C_mark_fail), 1);
	fail_sync = true;
	assert_int_equal(store_submit(s, "meter/2", "x", 1, 0, false, &seq), 0);
	assert_int_not_equal(sync_wait(s), 0);
	assert_int_equal(counter(s, STORE_C_sync_fail), 1);
	fail_sync = false;
	store_close(s);
}

static void
test_restore_refused_sends_as_new(void **state)
{
	struct store *s = open_store(0);
	uint64_t seq;

	(void)state;
	assert_int_equal(store_submit(s, "meter/1", "q2", 2, 0, false, &seq), 0);
	while (F.n == 0)
		settle(s);
	assert_int_equal(F.up.dlv.mark(F.up.dlv.arg, seq, 5, UPLINK_PHASE_PUBLISHED), 0);
	assert_int_equal(sync_wait(s), 0);
	store_close(s);
	F.n = F.outstanding = 0;
	F.restore_rc = -EINVAL;
	s = open_store(0);
	assert_int_equal(F.n, 1);
	assert_int_equal(F.g[0].phase, 0);
	assert_int_equal(counter(s, STORE_C_restore_late), 1);
	store_close(s);
}

static void
test_inflight_bound_and_invalid(void **state)
{
	struct store *s = open_store(3);
	uint64_t seq;

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_submit(s, "plant/x", "m", 1, 1, false, &seq), 0);
	while (counter(s, STORE_C_durable) < 5)
		settle(s);
	assert_int_equal(F.n, 3); /* bounded */
	fu_ack(&F, 0, 0);
	store_process(s);
	assert_int_equal(F.n, 4);
	/* the uplink can never send the next one: released, counted */
	F.send_rc = -EINVAL;
	fu_ack(&F, 1, 0);
	store_process(s);
	assert_int_equal(counter(s, STORE_C_send_invalid), 1);
	F.send_rc = 0;
	store_close(s);
}

static void
test_bad_topic_and_subscribers(void **state)
{
	struct store *s = open_store(0);
	char *t = malloc(65536);
	uint64_t seq;

	(void)state;
	memset(t, 'a', 65535);
	memcpy(t, "plant/", 6);
	t[65535] = '\0';
	assert_int_equal(store_submit(s, t, "x", 1, 1, false, &seq), -ENAMETOOLONG);
	assert_int_equal(counter(s, STORE_C_bad_topic), 1);
	free(t);
	for (int i = 0; i < STORE_DURABLE_SUBS_MAX; i++)
		assert_int_equal(store_on_durable(s, on_report, NULL), 0);
	assert_int_equal(store_on_durable(s, on_report, NULL), -ENOSPC);
	store_close(s);
}

static void
test_without_spool(void **state)
{
	struct store *s;
	uint64_t seq = 9;

	(void)state;
	conf = load_conf("uplink: {rules: [{match: \"a/#\", topic: \"up/{topic}\"}]}\n");
	assert_false(conf->spool_set);
	assert_int_equal(store_open(&s, conf, false, &F.up, 0), 0);
	store_conf_free(conf);
	store_start(s);
	assert_int_equal(store_submit(s, "a/b", "x", 1, 1, false, &seq), 0);
	assert_int_equal(seq, 0);
	assert_int_equal(F.n, 1);
	assert_string_equal(F.g[0].topic, "up/a/b");
	assert_int_equal(F.g[0].ref, 0);
	assert_int_equal(counter(s, STORE_C_unspooled), 1);
	store_close(s);
}

/*
 * A reload's rules (store_set_rules): readings go by the new set at once (a removed rule stops
 * them, a new one sends, a changed QoS applies); a record of the dataplane that awaits
 * its durability answer (origin with ref != 0) on a topic the new set dropped is stored under
 * the previous set's rule (the dataplane took it under that rule and defers its publisher's
 * ack), while a best-effort one (ref 0) and a reading are not.
 */
static void
test_set_rules_live(void **state)
{
	static const char next_yaml[] =
	    "uplink:\n"
	    "  site: lab\n"
	    "  rules:\n"
	    "    - {match: \"meter/+\", topic: \"m2/{topic}\", qos: 1, class: alarm}\n"
	    "    - {match: \"valve/#\", topic: \"v/{topic}\"}\n";
	struct store *s = open_store(0);
	struct store_conf *nc = load_conf(next_yaml);
	struct store_origin o = { .producer = 7, .lane = 1, .ref = 42 };
	struct store_origin best = { .producer = 7, .lane = 1, .ref = 0 };
	struct reports rep = { 0 };
	uint64_t seq[3], last = 0;

	(void)state;
	assert_int_equal(store_on_durable(s, on_report, &rep), 0);
	assert_int_equal(store_submit(s, "valve/1", "v0", 2, 1, false, &seq[0]), -ENOENT);
	store_set_rules(s, nc->rules);
	nc->rules = NULL;
	store_conf_free(nc);
	assert_ptr_not_equal(store_rules(s), NULL);
	assert_int_equal(store_rules(s)->n, 2);
	/* readings: the removed rule no longer sends, the new one does, the changed one's QoS */
	assert_int_equal(store_submit(s, "plant/line1/t", "r0", 2, 1, false, &seq[0]), -ENOENT);
	assert_int_equal(store_submit(s, "valve/1", "v1", 2, 1, false, &seq[0]), 0);
	assert_int_equal(store_submit(s, "meter/3", "m1", 2, 0, false, &seq[1]), 0);
	/* the dataplane's: taken under the old plant/# rule, awaiting its answer: stored */
	assert_int_equal(store_submit_from(s, "plant/line1/t", "d1", 2, 1, false, &o, &seq[2]), 0);
	assert_int_equal(
	    store_submit_from(s, "plant/line1/t", "d0", 2, 0, false, &best, &last), -ENOENT);
	while (rep.last < seq[2])
		settle(s);
	assert_int_equal(rep.status, 0);
	assert_int_equal(F.n, 3);
	for (size_t i = 0; i < F.n; i++) {
		if (F.g[i].ref == seq[0]) {
			assert_string_equal(F.g[i].topic, "v/valve/1");
		} else if (F.g[i].ref == seq[1]) {
			assert_string_equal(F.g[i].topic, "m2/meter/3");
			assert_int_equal(F.g[i].qos, 1); /* the new rule's QoS (was 2) */
		} else {
			assert_int_equal(F.g[i].ref, seq[2]);
			assert_string_equal(F.g[i].topic, "site/lab/plant/line1/t");
			assert_string_equal(F.g[i].payload, "d1");
		}
	}
	assert_int_equal(counter(s, STORE_C_unmatched), 3);
	store_close(s);
}


/* ---- live data ahead of the backlog ---- */

/* Submit n records to topic (payload prefix%d) and wait until all are durable. */
static void
submit_n(struct store *s, const char *topic, const char *prefix, int from, int n, uint8_t qos)
{
	uint64_t d0 = counter(s, STORE_C_durable), seq;
	char p[32];

	for (int i = from; i < from + n; i++) {
		snprintf(p, sizeof(p), "%s%d", prefix, i);
		assert_int_equal(store_submit(s, topic, p, strlen(p), qos, false, &seq), 0);
	}
	while (counter(s, STORE_C_durable) < d0 + (uint64_t)n)
		settle(s);
}

/* Play the cloud: acknowledge everything given and not done, until nothing more comes. */
static void
ack_all(struct store *s)
{
	size_t done = 0;

	while (done < F.n) {
		for (; done < F.n; done++)
			if (!F.g[done].done)
				fu_ack(&F, done, 0);
		store_process(s);
	}
}

/* The index of the first record given with this payload, F.n when none. */
static size_t
given_at(const char *payload)
{
	size_t i;

	for (i = 0; i < F.n; i++)
		if (strcmp(F.g[i].payload, payload) == 0)
			break;
	return i;
}

/*
 * A backlog of 200 records (what the spool holds after the agent restarted): it takes at most
 * the backlog share (25 % of 20 records in flight: 5) of the window, so a live record submitted
 * now is the 6th given, not the 201st; the backlog then drains whole, in spool order, each once.
 */
static void
test_live_ahead_of_backlog(void **state)
{
	struct store *s = open_store(20);
	char want[32];
	size_t live_at, b = 0;

	(void)state;
	F.send_rc = -ENOBUFS; /* the cloud is away */
	submit_n(s, "plant/x", "b", 0, 200, 1);
	store_close(s);
	fu_init(&F, true);
	s = open_store(20);
	assert_int_equal(F.n, 5); /* the backlog's share of the window */
	assert_int_equal(counter(s, STORE_C_backlog_inflight), 5);
	submit_n(s, "plant/x", "live", 0, 1, 1);
	live_at = given_at("live0");
	assert_true(live_at < F.n);
	assert_true(live_at <= 5); /* behind at most the backlog's share */
	ack_all(s);
	assert_int_equal(F.n, 201);
	for (size_t i = 0; i < F.n; i++) {
		if (i == live_at)
			continue;
		snprintf(want, sizeof(want), "b%zu", b++);
		assert_string_equal(F.g[i].payload, want); /* spool order, none twice */
	}
	assert_int_equal(counter(s, STORE_C_sent_live), 1);
	assert_int_equal(counter(s, STORE_C_sent_backlog), 200);
	assert_int_equal(counter(s, STORE_C_backlog_inflight), 0);
	store_close(s);
}

/*
 * An outage without a restart: what waited longer than live_age (10 s) is the backlog when the
 * link comes back; live records keep coming faster than the cloud takes them (each round fills
 * the window), and still the backlog drains in its share, never starved; classes keep their
 * order (an alarm of the backlog goes before normal live data).
 */
static void
test_backlog_not_starved(void **state)
{
	struct store *s;
	uint64_t sb;
	int round;

	(void)state;
	fake_clock = true;
	s = open_store(20);
	F.send_rc = -ENOBUFS; /* link down */
	submit_n(s, "plant/x", "b", 0, 100, 1);
	submit_n(s, "plant/alarm/t", "a", 0, 1, 1);
	fake_ms += 11000;
	submit_n(s, "plant/x", "l", 0, 30, 1); /* live: arrived just now */
	F.send_rc = 0;                         /* link up */
	store_process(s);
	assert_int_equal(F.n, 20);
	assert_string_equal(F.g[0].payload, "b0"); /* held when the link went down: first */
	assert_string_equal(F.g[1].payload, "a0"); /* alarm next, though of the backlog */
	assert_int_equal(counter(s, STORE_C_backlog_inflight), 5);
	assert_int_equal(counter(s, STORE_C_sent_live), 15);
	for (round = 0, sb = counter(s, STORE_C_sent_backlog); sb < 101; round++) {
		size_t n0 = F.n;

		submit_n(s, "plant/x", "m", 100 * round, 25, 1); /* more live than the window */
		for (size_t i = 0; i < n0; i++)
			if (!F.g[i].done)
				fu_ack(&F, i, 0);
		store_process(s);
		assert_true(counter(s, STORE_C_sent_backlog) > sb); /* progress every round */
		sb = counter(s, STORE_C_sent_backlog);
		fake_ms += 100; /* live data stays live */
		assert_true(round < 40);
	}
	ack_all(s);
	assert_int_equal(counter(s, STORE_C_acked), counter(s, STORE_C_appended));
	store_close(s);
}

/*
 * SIGKILL with QoS 2 records in flight in both lanes (so not a prefix of the class): after the
 * restart every record with a phase resumes under its packet id, none is sent as new again,
 * and every record reaches the cloud exactly once.
 */
static void
test_kill_with_both_lanes_in_flight(void **state)
{
	enum {
		NB = 60,
		NL = 10
	};
	int cloud[NB + NL] = { 0 }; /* how often the cloud got each as a new message */
	struct store *s;
	size_t marked = 0, restored = 0;

	(void)state;
	fake_clock = true;
	s = open_store(20);
	F.send_rc = -ENOBUFS;
	submit_n(s, "meter/1", "", 0, NB, 2);
	fake_ms += 20000;
	F.send_rc = 0;
	store_process(s);
	submit_n(s, "meter/1", "", NB, NL, 2);
	assert_int_equal(F.n, 5 + NL);
	for (size_t i = 0; i < F.n; i++) { /* the PUBLISH of each leaves: phase recorded */
		cloud[atoi(F.g[i].payload)]++;
		assert_int_equal(F.up.dlv.mark(F.up.dlv.arg, F.g[i].ref, (uint16_t)(100 + i),
				     i % 2 ? UPLINK_PHASE_RELEASED : UPLINK_PHASE_PUBLISHED),
		    0);
	}
	assert_int_equal(sync_wait(s), 0);
	fu_ack(&F, 0, 0); /* one backlog and one live record complete */
	fu_ack(&F, F.n - 1, 0);
	marked = F.n - 2;
	assert_int_equal(sync_wait(s), 0); /* the next commit: the acks too */
	store_process(s); /* more backlog is given: not sent yet when the agent dies */
	store_abandon(s);
	fu_init(&F, true);
	s = open_store(20);
	for (size_t i = 0; i < F.n; i++)
		restored += F.g[i].phase != 0;
	assert_int_equal(restored, marked);
	assert_int_equal(counter(s, STORE_C_restored), marked);
	assert_int_equal(counter(s, STORE_C_restore_late), 0);
	ack_all(s);
	for (size_t i = 0; i < F.n; i++)
		if (F.g[i].phase == 0)
			cloud[atoi(F.g[i].payload)]++;
	for (int i = 0; i < NB + NL; i++)
		assert_int_equal(cloud[i], 1);
	store_close(s);
}

/*
 * The commit that makes a QoS 2 phase durable runs on the spool's flusher: with the disk stuck
 * in an fdatasync, dlv.sync returns at once and the loop goes on (producers submit, the store
 * processes), the sync ends only once the disk answered, and a SIGKILL right after finds the
 * phase on disk (the exchange resumes under its packet id).
 */
static void
test_slow_commit_does_not_block(void **state)
{
	struct store *s = open_store(0);
	struct sync_end e = { 0 };
	uint64_t seq, seq2;

	(void)state;
	assert_int_equal(store_submit(s, "meter/1", "q2", 2, 0, false, &seq), 0);
	while (F.n == 0)
		settle(s);
	assert_int_equal(F.up.dlv.mark(F.up.dlv.arg, seq, 9, UPLINK_PHASE_PUBLISHED), 0);
	gate_set(true);
	assert_int_equal(F.up.dlv.sync(F.up.dlv.arg, on_synced, &e), 0);
	pthread_mutex_lock(&gate_mu);
	while (!in_gate && !gate_timed_out) /* the flusher reaches the stuck disk */
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	assert_false(gate_timed_out); /* the loop did not wait for the disk */
	assert_int_equal(store_submit(s, "meter/2", "x", 1, 0, false, &seq2), 0);
	store_process(s);
	assert_int_equal(e.n, 0); /* not before the disk answered */
	gate_set(false);
	while (e.n == 0)
		settle(s);
	assert_int_equal(e.status, 0);
	assert_int_equal(counter(s, STORE_C_q2_syncs), 1);
	store_abandon(s); /* SIGKILL */
	fu_init(&F, true);
	s = open_store(0);
	assert_true(F.n >= 1);
	assert_int_equal(F.g[0].ref, seq);
	assert_int_equal(F.g[0].phase, UPLINK_PHASE_PUBLISHED);
	assert_int_equal(F.g[0].packet_id, 9);
	store_close(s);
}

static void
test_conf_errors(void **state)
{
	struct conf_doc *doc;
	struct store_conf *c;
	char err[256];
	static const char bad[] =
	    "uplink:\n  spool: {dir: relative}\n  rules: [{match: \"#/a\"}]\n"
	    "  drain: {backlog_percent: 0, live_age: 1s, nope: 1, max_inflight: 0}\n";
	static const char good[] = "uplink:\n  drain: {max_inflight: 250}\n";
	static const char same[] = "uplink:\n  drain: {max_inflight: 1000}\n";

	(void)state;
	assert_int_equal(conf_load_string("t.yaml", bad, strlen(bad), &doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(doc), "uplink"), &c), -1);
	assert_null(c);
	assert_non_null(strstr(conf_errors(doc), "t.yaml:2:"));
	assert_non_null(strstr(conf_errors(doc), "t.yaml:3:"));
	assert_non_null(strstr(conf_errors(doc), "t.yaml:4:"));
	assert_non_null(strstr(conf_errors(doc), "0 is out of range [1, 100]"));
	assert_non_null(strstr(conf_errors(doc), "0 is out of range [1, 65535]"));
	assert_non_null(strstr(conf_errors(doc), "nope"));
	conf_free(doc);
	/* absent: the default rules and spool directory */
	assert_int_equal(conf_load_string("t.yaml", "agent: {}\n", 10, &doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(doc), "uplink"), &c), 0);
	conf_free(doc);
	assert_string_equal(c->spool.dir, SPOOL_DEFAULT_DIR);
	assert_int_equal(c->rules->n, 1);
	assert_int_equal(c->live_age_ms, STORE_LIVE_AGE_MS_DEF);
	assert_int_equal(c->backlog_percent, STORE_BACKLOG_PERCENT_DEF);
	assert_int_equal(c->max_inflight, STORE_MAX_INFLIGHT_DEF);
	assert_false(c->max_inflight_set);
	store_conf_free(c);
	/* set */
	assert_int_equal(conf_load_string("t.yaml", good, strlen(good), &doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(doc), "uplink"), &c), 0);
	conf_free(doc);
	assert_int_equal(c->max_inflight, 250);
	assert_true(c->max_inflight_set);
	store_conf_free(c);
	/* set to the default: still said to be set (the agent warns when it must lower it) */
	assert_int_equal(conf_load_string("t.yaml", same, strlen(same), &doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(doc), "uplink"), &c), 0);
	conf_free(doc);
	assert_int_equal(c->max_inflight, STORE_MAX_INFLIGHT_DEF);
	assert_true(c->max_inflight_set);
	store_conf_free(c);
}

/* A spool that cannot be opened (its directory cannot be made) fails the open with the
 * reason and leaves nothing behind (ASan: no leak, no eventfd or thread left running). */
static void
test_open_fails_cleanly(void **state)
{
	struct store *s = NULL;
	char bad[96];
	FILE *f;

	(void)state;
	snprintf(bad, sizeof(bad), "%s/file", dir);
	assert_non_null(f = fopen(bad, "w"));
	fclose(f);
	snprintf(bad, sizeof(bad), "%s/file/spool", dir); /* under a regular file */
	conf = load_conf(rules_yaml);
	conf->spool.dir = bad;
	assert_true(store_open(&s, conf, true, &F.up, 0) < 0);
	store_conf_free(conf);
	store_close(NULL);
	store_abandon(NULL);
}

/* A record larger than the store's read buffer (64 KiB) needs a larger one when it is read
 * back to go up; with no memory for it the read fails (counted read_fail), the record stays in
 * the spool and goes up whole at the next run, once. */
static void
test_read_out_of_memory(void **state)
{
	static char big[100 << 10];
	struct store *s = open_store(0);
	struct reports rep = { 0 };
	struct pollfd p;
	uint64_t seq;

	(void)state;
	memset(big, 'x', sizeof(big));
	memcpy(big, "big:", 4);
	assert_int_equal(store_on_durable(s, on_report, &rep), 0);
	assert_int_equal(store_submit(s, "plant/big", big, sizeof(big), 1, false, &seq), 0);
	p = (struct pollfd){ .fd = store_event_fd(s), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1); /* durable: the flusher is idle again */
	fail_alloc_from(1);
	store_process(s);
	fail_alloc_nth(0);
	assert_true(fail_alloc_failed() >= 1);
	assert_int_equal(rep.status, 0);
	assert_int_equal(rep.last, seq);
	/* each read that found no memory counted (before, the allocation's failure returned
	 * before the count: read_fail never moved) */
	assert_int_equal(counter(s, STORE_C_read_fail), fail_alloc_failed());
	assert_int_equal(F.n, 0);
	store_process(s); /* memory again (the agent's tick runs it at least) */
	assert_int_equal(F.n, 1);
	assert_int_equal(F.g[0].ref, seq);
	assert_int_equal(strncmp(F.g[0].payload, "big:xxxx", 8), 0);
	fu_ack(&F, 0, 0);
	store_process(s);
	assert_int_equal(counter(s, STORE_C_acked), 1);
	assert_int_equal(counter(s, STORE_C_sent), 1); /* once */
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rules_spool_and_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alarm_class_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_full_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure_never_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_phase_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_refused_sends_as_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflight_bound_and_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_topic_and_subscribers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_rules_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_ahead_of_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog_not_starved, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_kill_with_both_lanes_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_commit_does_not_block, setup, teardown),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test_setup_teardown(test_open_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_out_of_memory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
