/*
 * Unit test of exactly once through a SIGKILL of the agent (agent/dpchan_store.c with the real
 * store, spool and lib/dpchan server on the agent's loop): an lcore's client sends QoS 2 records,
 * the spool makes them durable, and the agent dies before any DURABLE answer left (the store is
 * dropped without closing: what SIGKILL leaves). The agent starts again on the same spool; the
 * client, which never heard back, sends every record again under the same refs. Each must be in
 * the spool once and reach the (fake) cloud once, with the payload the sensor sent; records sent
 * after the restart are still taken.
 *
 * And the rules on both sides of a reload: a record the lcore sends durably (it defers its
 * publisher's ack) on a topic none of the agent's rules matches, the running set nor the one its
 * last reload replaced (the dataplane reloaded a new rule first), is answered failed, never
 * durable: the publisher is not acknowledged for a message that would not go up. One the set
 * the reload replaced matches (the dataplane has not reloaded yet) is stored under that rule.
 *
 * And QoS 2 through a SIGKILL of the dataplane (issue 15): its first start sends QoS 2 records,
 * the agent makes them durable (and answers, and the cloud acknowledges and releases them; or
 * the agent dies too before any of that); the dataplane dies before it acknowledged its sensor;
 * its next start, under a new boot id, gets the sensor's resends and sends them with the origin
 * of their first copy. Each message reaches the cloud once; the origins are released when the
 * sensor's PUBREL comes (RELEASE).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <cmocka.h>

#include "dpchan_client.h"
#include "dpchan_link.h"
#include "fake_uplink.h"
#include "loop.h"
#include "store.h"
#include "uplink.h"

#define N_BEFORE 40u /* records sent before the kill */
#define N_AFTER  3u  /* new records sent after the restart */

/* ---- the world: the agent's loop, store and link; an lcore's client ---- */

struct world {
	struct agent_loop *loop;
	struct store *st;
	struct dpchan_link *link;
	struct dpchan_client *c;
	struct fake_up F;
	unsigned submitted, want_submitted;
	uint64_t durable_ok;
	bool answers; /* the store's reports reach the loop (false: the agent "dies" first) */
	int ticks;
};

static char dir[] = "/tmp/dpchan-store-XXXXXX";

static void
on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct world *w = arg;

	assert_int_equal(status, 0);
	w->durable_ok += last - first + 1;
}

static void
on_ready(void *arg)
{
	(void)arg;
}

static const struct dpchan_client_ops client_ops = { .durable = on_durable, .ready = on_ready };

static void
on_store(void *arg, uint32_t events)
{
	(void)events;
	store_process(arg);
}

static uint64_t
spool_counter(struct store *st, enum spool_counter k)
{
	struct store_stats ss;

	store_get_stats(st, &ss);
	return ss.spool[k];
}

/* The lcore's side: send records up to want_submitted; stop once the phase's goal is met. */
static void
tick(void *arg, uint64_t now_ms)
{
	struct world *w = arg;
	char p[16];
	struct dpchan_rec r = { .qos = 2, .topic = "plant/x", .topic_len = 7 };

	dpchan_client_poll(w->c, now_ms);
	while (dpchan_client_connected(w->c) && w->submitted < w->want_submitted) {
		r.ref = ++w->submitted;
		r.payload_len = (uint32_t)snprintf(p, sizeof(p), "m%u", w->submitted);
		r.payload = (const uint8_t *)p;
		assert_int_equal(dpchan_client_submit(w->c, &r), 0);
	}
	if (w->answers) {
		store_process(w->st);
		if (w->durable_ok == w->want_submitted && w->F.n >= w->want_submitted)
			agent_loop_stop(w->loop);
	} else if (spool_counter(w->st, SPOOL_C_durable_records) == w->want_submitted) {
		agent_loop_stop(w->loop); /* all on disk, no answer sent: the kill comes now */
	}
	if (++w->ticks > 3000)
		agent_loop_stop(w->loop);
}

static void
agent_start(struct world *w, bool answers, agent_tick_fn fn, void *arg)
{
	static const char yaml[] = "uplink:\n  site: lab\n  rules:\n"
				   "    - {match: \"plant/#\", topic: \"site/{site}/{topic}\"}\n"
				   "  spool: {dir: /unused}\n";
	struct store_conf *sc;
	struct conf_doc *doc;
	struct dpchan_conf dc;
	char err[256];

	assert_int_equal(conf_load_string("t.yaml", yaml, strlen(yaml), &doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(doc), "uplink"), &sc), 0);
	conf_free(doc);
	sc->spool.dir = dir;
	assert_int_equal(store_open(&w->st, sc, true, &w->F.up, 0), 0);
	store_conf_free(sc);
	store_start(w->st);
	dpchan_conf_defaults(&dc);
	snprintf(dc.path, sizeof(dc.path), "%s/dp.sock", dir);
	assert_int_equal(agent_loop_create(&w->loop, 2), 0);
	assert_int_equal(dpchan_link_open_store(&w->link, w->loop, &dc, w->st), 0);
	w->answers = answers;
	if (answers)
		assert_int_equal(
		    agent_loop_add_fd(w->loop, store_event_fd(w->st), EPOLLIN, on_store, w->st), 0);
	assert_int_equal(agent_loop_add_tick(w->loop, fn, arg), 0);
	w->ticks = 0;
}

static void
test_resent_after_agent_kill_stored_once(void **state)
{
	static struct world w; /* the fake cloud keeps 4096 records */
	unsigned seen[N_BEFORE + N_AFTER + 1] = { 0 };
	struct dpchan_client_config cc = { .lcore = 3, .boot_id = 0x5eed, .reconnect_min_ms = 1 };
	char path[96];
	uint64_t known;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dp.sock", dir);
	cc.path = path;
	assert_non_null(w.c = dpchan_client_new(&cc, &client_ops, &w));
	fu_init(&w.F, false); /* no restore: what was in flight goes again as new */

	/* the agent takes N_BEFORE records and makes them durable; it dies before answering */
	agent_start(&w, false, tick, &w);
	w.want_submitted = N_BEFORE;
	assert_int_equal(agent_loop_run(w.loop), 0);
	assert_int_equal(spool_counter(w.st, SPOOL_C_durable_records), N_BEFORE);
	assert_int_equal(w.durable_ok, 0);
	dpchan_link_close(w.link);
	store_abandon(w.st); /* no close, no commit: what SIGKILL leaves */
	agent_loop_destroy(w.loop);
	assert_int_equal(dpchan_client_pending(w.c, NULL), N_BEFORE);

	/* it starts again on the same spool; the lcore sends all again, and three new ones */
	agent_start(&w, true, tick, &w);
	assert_int_equal(spool_counter(w.st, SPOOL_C_recovered_records), N_BEFORE);
	w.want_submitted = N_BEFORE + N_AFTER;
	assert_int_equal(agent_loop_run(w.loop), 0);
	assert_int_equal(w.durable_ok, N_BEFORE + N_AFTER);
	assert_int_equal(dpchan_client_pending(w.c, NULL), 0);
	/* stored once: only the new ones were appended, and each reached the cloud once */
	assert_int_equal(spool_counter(w.st, SPOOL_C_appended), N_AFTER);
	for (size_t k = 0; k < w.F.n; k++) {
		unsigned i;

		assert_string_equal(w.F.g[k].topic, "site/lab/plant/x");
		assert_int_equal(w.F.g[k].qos, 2);
		assert_int_equal(sscanf(w.F.g[k].payload, "m%u", &i), 1);
		assert_true(i >= 1 && i <= N_BEFORE + N_AFTER);
		seen[i]++;
	}
	for (unsigned i = 1; i <= N_BEFORE + N_AFTER; i++)
		if (seen[i] != 1)
			fail_msg("message m%u reached the cloud %u times", i, seen[i]);
	assert_int_equal(w.F.n, N_BEFORE + N_AFTER);
	known = dpchan_server_counter(dpchan_link_server(w.link), DPCHAN_C_RECS_KNOWN);
	assert_int_equal(known, N_BEFORE);

	dpchan_client_free(w.c);
	dpchan_link_close(w.link);
	store_close(w.st);
	agent_loop_destroy(w.loop);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* ---- the rules across a reload ---- */

struct rworld {
	struct world w;
	uint64_t ok, failed;
	unsigned sent;
};

static void
r_on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct rworld *r = arg;

	if (status == 0)
		r->ok += last - first + 1;
	else
		r->failed += last - first + 1;
}

static const struct dpchan_client_ops r_client_ops = { .durable = r_on_durable, .ready = on_ready };

/* Two durable records, valve/x then plant/x; stops once both are answered. */
static void
r_tick(void *arg, uint64_t now_ms)
{
	static const char *const topics[] = { "valve/x", "plant/x" };
	struct rworld *r = arg;
	struct dpchan_rec rec = { .qos = 1, .payload = (const uint8_t *)"m1", .payload_len = 2 };

	dpchan_client_poll(r->w.c, now_ms);
	while (dpchan_client_connected(r->w.c) && r->sent < 2) {
		rec.topic = topics[r->sent];
		rec.topic_len = 7;
		rec.ref = ++r->sent;
		assert_int_equal(dpchan_client_submit(r->w.c, &rec), 0);
	}
	store_process(r->w.st);
	if (r->ok + r->failed == 2 || ++r->w.ticks > 3000)
		agent_loop_stop(r->w.loop);
}

static void
test_durable_record_without_rule(void **state)
{
	static const char next_yaml[] = "uplink:\n  rules: [{match: \"meter/#\"}]\n";
	static struct rworld r; /* the fake cloud keeps 4096 records: not on the stack */
	struct dpchan_client_config cc = { .lcore = 1, .boot_id = 0xab, .reconnect_min_ms = 1 };
	struct store_conf *nc;
	struct conf_doc *doc;
	char path[96], err[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	fu_init(&r.w.F, false);
	strcpy(dir, "/tmp/dpchan-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dp.sock", dir);
	cc.path = path;
	assert_non_null(r.w.c = dpchan_client_new(&cc, &r_client_ops, &r));
	fu_init(&r.w.F, false);
	agent_start(&r.w, true, r_tick, &r);
	/* a reload: plant/# removed (kept as the previous set), valve/# never had a rule */
	assert_int_equal(
	    conf_load_string("t.yaml", next_yaml, strlen(next_yaml), &doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(doc), "uplink"), &nc), 0);
	conf_free(doc);
	store_set_rules(r.w.st, nc->rules);
	nc->rules = NULL;
	store_conf_free(nc);
	assert_int_equal(agent_loop_run(r.w.loop), 0);
	assert_int_equal(r.failed, 1); /* valve/x: refused, its publisher is not acknowledged */
	assert_int_equal(r.ok, 1);     /* plant/x: under the rule the reload replaced */
	assert_int_equal(spool_counter(r.w.st, SPOOL_C_appended), 1);

	dpchan_client_free(r.w.c);
	dpchan_link_close(r.w.link);
	store_close(r.w.st);
	agent_loop_destroy(r.w.loop);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* ---- QoS 2 through a restart of the dataplane (and of the agent) ---- */

#define Q2_N   20u /* sent by the first start, sent again by the second */
#define Q2_NEW 3u  /* new ones from the second start */

enum q2_variant {
	Q2_DP_KILL,           /* the dataplane dies once the agent answered; the cloud released */
	Q2_BOTH_AFTER_ANSWER, /* the same, and the agent dies too */
	Q2_BOTH_BEFORE_ANSWER, /* the agent dies once durable, before answering; then the dataplane */
};

struct qworld {
	struct world w;
	enum q2_variant v;
	int phase; /* 1: the first start sends; 2: the next one; 3: the PUBRELs; 4: done */
	uint64_t ok;
	unsigned sent;
	bool released;
	uint64_t origins_held; /* before the PUBRELs */
};

#define BOOT_A 0xa1u
#define BOOT_B 0xb2u

static void
q_on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct qworld *q = arg;

	assert_int_equal(status, 0);
	q->ok += last - first + 1;
}

static const struct dpchan_client_ops q_client_ops = { .durable = q_on_durable, .ready = on_ready };

static struct dpchan_origin
q_origin(unsigned i)
{
	return i <= Q2_N ? (struct dpchan_origin){ BOOT_A, i, 3 }
			 : (struct dpchan_origin){ BOOT_B, i, 3 };
}

static char q_path[96];

/* The next start of the dataplane: a new boot id, nothing sent yet. */
static void
q_dataplane_restart(struct qworld *q)
{
	struct dpchan_client_config cc = {
		.lcore = 3, .boot_id = BOOT_B, .reconnect_min_ms = 1, .path = q_path
	};

	dpchan_client_free(q->w.c); /* SIGKILL: whatever it had not acknowledged is gone */
	assert_non_null(q->w.c = dpchan_client_new(&cc, &q_client_ops, q));
	q->sent = 0;
	q->ok = 0;
	q->phase = 2;
}

static void
q_send(struct qworld *q)
{
	unsigned want = q->phase == 1 ? Q2_N : Q2_N + Q2_NEW;
	struct dpchan_rec r = { .qos = 2, .topic = "plant/q", .topic_len = 7 };
	char p[16];

	while (dpchan_client_connected(q->w.c) && q->sent < want) {
		r.ref = ++q->sent;
		/* the second start: the sensor's resends go with the origin of their first copy */
		r.has_origin = q->phase == 2 && r.ref <= Q2_N;
		r.origin = q_origin((unsigned)r.ref);
		r.payload_len = (uint32_t)snprintf(p, sizeof(p), "m%u", q->sent);
		r.payload = (const uint8_t *)p;
		assert_int_equal(dpchan_client_submit(q->w.c, &r), 0);
	}
}

static void
q_tick(void *arg, uint64_t now_ms)
{
	struct qworld *q = arg;
	struct world *w = &q->w;

	dpchan_client_poll(w->c, now_ms);
	if (q->phase <= 2)
		q_send(q);
	if (q->phase == 3 && !q->released && dpchan_client_connected(w->c)) {
		for (unsigned i = 1; i <= Q2_N + Q2_NEW; i++) {
			struct dpchan_origin o = q_origin(i);

			assert_int_equal(dpchan_client_release(w->c, &o), 0);
		}
		q->released = true;
	}
	if (w->answers)
		store_process(w->st);
	for (size_t i = 0, acked = 0; i < w->F.n; i++) { /* the cloud acknowledges: released */
		if (!w->F.g[i].done) {
			fu_ack(&w->F, i, 0);
			acked++;
		}
		if (i + 1 == w->F.n &&
		    acked > 0) /* committed, as a QoS 2 uplink commits its phases */
			assert_int_equal(w->F.up.dlv.sync(w->F.up.dlv.arg), 0);
	}
	if (!w->answers) {
		if (spool_counter(w->st, SPOOL_C_durable_records) == Q2_N)
			agent_loop_stop(
			    w->loop); /* all on disk, no answer sent: the kill comes now */
	} else if (q->phase == 1 && q->ok == Q2_N && w->F.n >= Q2_N) {
		if (q->v == Q2_DP_KILL)
			q_dataplane_restart(q);
		else
			agent_loop_stop(w->loop); /* the agent dies too */
	} else if (q->phase == 2 && q->ok == Q2_N + Q2_NEW && w->F.n >= Q2_N + Q2_NEW) {
		q->origins_held =
		    dpchan_server_counter(dpchan_link_server(w->link), DPCHAN_C_Q2_ORIGINS);
		q->phase = 3; /* the sensor's PUBRELs come */
	} else if (q->phase == 3 &&
	    dpchan_server_counter(dpchan_link_server(w->link), DPCHAN_C_RELEASE_RX) ==
		Q2_N + Q2_NEW) {
		agent_loop_stop(w->loop);
	}
	if (++w->ticks > 3000)
		agent_loop_stop(w->loop);
}

static void
agent_kill(struct world *w)
{
	dpchan_link_close(w->link);
	store_abandon(w->st); /* no close, no commit: what SIGKILL leaves */
	agent_loop_destroy(w->loop);
}

static void
qos2_dataplane_restart(enum q2_variant v)
{
	static struct qworld q; /* the fake cloud keeps 4096 records */
	unsigned seen[Q2_N + Q2_NEW + 1] = { 0 };
	struct dpchan_client_config cc = { .lcore = 3, .boot_id = BOOT_A, .reconnect_min_ms = 1 };
	struct dpchan_server *srv;
	char cmd[128];

	memset(&q, 0, sizeof(q));
	q.v = v;
	q.phase = 1;
	strcpy(dir, "/tmp/dpchan-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(q_path, sizeof(q_path), "%s/dp.sock", dir);
	cc.path = q_path;
	fu_init(&q.w.F, false);

	/* the first start of the dataplane sends Q2_N QoS 2 records; the agent makes them durable
	 * and (but in the last variant) answers, and the cloud acknowledges each */
	assert_non_null(q.w.c = dpchan_client_new(&cc, &q_client_ops, &q));
	agent_start(&q.w, v != Q2_BOTH_BEFORE_ANSWER, q_tick, &q);
	assert_int_equal(agent_loop_run(q.w.loop), 0);
	if (v != Q2_DP_KILL) { /* the agent dies, then the dataplane: both start again */
		assert_int_equal(spool_counter(q.w.st, SPOOL_C_durable_records), Q2_N);
		agent_kill(&q.w);
		q_dataplane_restart(&q);
		agent_start(&q.w, true, q_tick, &q);
		assert_int_equal(agent_loop_run(q.w.loop), 0);
	}
	/* the dataplane died before it acknowledged its sensor (its answers were not journaled):
	 * the sensor sent every message again, and each reached the cloud once */
	assert_int_equal(q.phase, 3);
	assert_int_equal(q.ok, Q2_N + Q2_NEW);
	srv = dpchan_link_server(q.w.link);
	for (size_t k = 0; k < q.w.F.n; k++) {
		unsigned i;

		assert_string_equal(q.w.F.g[k].topic, "site/lab/plant/q");
		assert_int_equal(sscanf(q.w.F.g[k].payload, "m%u", &i), 1);
		assert_true(i >= 1 && i <= Q2_N + Q2_NEW);
		seen[i]++;
	}
	for (unsigned i = 1; i <= Q2_N + Q2_NEW; i++)
		if (seen[i] != 1)
			fail_msg("message m%u reached the cloud %u times", i, seen[i]);
	assert_int_equal(dpchan_server_counter(srv, DPCHAN_C_Q2_HELD), Q2_N);
	assert_int_equal(dpchan_server_counter(srv, DPCHAN_C_RECS_ORIGIN), Q2_N);
	assert_int_equal(q.origins_held, Q2_N + Q2_NEW);
	/* then the sensor's PUBRELs: every origin is released, and that outlives the agent */
	assert_int_equal(dpchan_server_counter(srv, DPCHAN_C_RELEASE_UNKNOWN), 0);
	assert_int_equal(dpchan_server_counter(srv, DPCHAN_C_Q2_ORIGINS), 0);
	agent_kill(&q.w);
	q.phase = 4;
	agent_start(&q.w, true, q_tick, &q);
	srv = dpchan_link_server(q.w.link);
	assert_int_equal(dpchan_server_counter(srv, DPCHAN_C_Q2_ORIGINS), 0);

	dpchan_client_free(q.w.c);
	dpchan_link_close(q.w.link);
	store_close(q.w.st);
	agent_loop_destroy(q.w.loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_qos2_dataplane_kill(void **state)
{
	(void)state;
	qos2_dataplane_restart(Q2_DP_KILL);
}

static void
test_qos2_both_killed_after_answer(void **state)
{
	(void)state;
	qos2_dataplane_restart(Q2_BOTH_AFTER_ANSWER);
}

static void
test_qos2_both_killed_before_answer(void **state)
{
	(void)state;
	qos2_dataplane_restart(Q2_BOTH_BEFORE_ANSWER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resent_after_agent_kill_stored_once),
		cmocka_unit_test(test_durable_record_without_rule),
		cmocka_unit_test(test_qos2_dataplane_kill),
		cmocka_unit_test(test_qos2_both_killed_after_answer),
		cmocka_unit_test(test_qos2_both_killed_before_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
