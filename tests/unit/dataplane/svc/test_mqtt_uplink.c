/*
 * Unit tests of the uplink rules on a running dataplane (dataplane/svc/mqtt_uplink.c): a reload
 * publishes a new rule set (mqtt_uplink_set_rules) and each lcore's uplink takes it at its next
 * poll, with no lock on the path that classifies PUBLISHes.
 *
 * - Swap under traffic: worker threads stand in for lcores, each classifying topics in a loop
 *   through its own uplink while the main thread swaps sets and frees each old one as soon as
 *   mqtt_uplink_set_rules says no uplink reads it; ASan reports any read of a freed set.
 * - A removed rule, a changed rule: a broker (the broker fixture's fake transport) with a real
 *   uplink over a real channel (lib/dpchan, server in this process): a PUBLISH deferred under the
 *   old rule keeps waiting through the swap, reaches the agent's side and gets its PUBACK when
 *   the durability answer comes; after the swap a removed rule's topic is acknowledged at once
 *   and not sent up, a new rule's is deferred, a rule turned non-durable sends best effort.
 * - A SIGKILL between a downlink record's journal write and its DOWN_ACK (a forked dataplane
 *   and the EDGEGW_TEST_KILL_AT_DOWN hook): the agent's resend to the restarted dataplane is
 *   answered, and the QoS 2 subscriber gets the message exactly once.
 * A bad rule never gets here: the config is refused whole (test_dp_config, the lab's
 * test_reload_rules.py).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "broker_fixture.h"
#include "conf.h"
#include "dpchan_server.h"
#include "mqtt_uplink.h"
#include "rules.h"

static struct rules *
parse(const char *rules_yaml)
{
	char text[1024], err[256];
	struct conf_doc *doc;
	struct rules *r = NULL;

	snprintf(text, sizeof(text), "uplink:\n  site: lab\n  rules:\n%s", rules_yaml);
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	if (rules_parse(conf_get(conf_root(doc), "uplink"), &r) != 0)
		fail_msg("%s", conf_errors(doc));
	conf_free(doc);
	return r;
}

/* ---- swap under traffic ---- */

#define N_WORKERS 3
#define N_SWAPS   300

struct worker {
	pthread_t t;
	struct fx *x;
	struct mqtt_uplink *u;
	uint64_t looked, durable, best;
	int bad; /* a class neither set gives */
};

static volatile int stop;

static void *
worker_loop(void *arg)
{
	struct worker *w = arg;
	uint64_t now = 1;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		mqtt_uplink_poll(w->u, now++); /* the quiescent point: takes a new set */
		for (int i = 0; i < 64; i++) {
			enum broker_uplink_class c = mqtt_uplink_wants(w->u, "a/x/y", 5, 1);

			w->looked++;
			w->durable += c == BROKER_UPLINK_DURABLE;
			w->best += c == BROKER_UPLINK_BEST_EFFORT;
			w->bad += c == BROKER_UPLINK_NONE;
			/* a topic no set sends up: matched against every rule of the set */
			w->bad += mqtt_uplink_wants(w->u, "zzz/q", 5, 1) != BROKER_UPLINK_NONE;
		}
	}
	return NULL;
}

static void
test_swap_under_traffic(void **state)
{
	struct dpchan_conf dc = { .enabled = true,
		.pending_bytes = 1 << 16,
		.max_pending = 64,
		.reconnect_max_ms = 1000 };
	struct worker w[N_WORKERS];
	struct rules *cur = parse("    - {match: \"a/#\", durable: true}\n");

	(void)state;
	snprintf(dc.path, sizeof(dc.path), "/nonexistent/egw-test-%d.sock", (int)getpid());
	mqtt_uplink_configure(&dc);
	assert_int_equal(mqtt_uplink_set_rules(cur, 0), 0); /* no uplink yet: nothing to wait */
	memset(w, 0, sizeof(w));
	stop = 0;
	for (int i = 0; i < N_WORKERS; i++) {
		w[i].x = fx_new(NULL);
		assert_non_null(w[i].u = mqtt_uplink_start(w[i].x->b, (uint32_t)i + 1, N_WORKERS));
		assert_int_equal(pthread_create(&w[i].t, NULL, worker_loop, &w[i]), 0);
	}
	for (int n = 0; n < N_SWAPS; n++) {
		/* every other set sends a/# best effort; filler rules make each match take time */
		struct rules *next = parse(n % 2 == 0 ? "    - {match: \"b/+/c\"}\n"
							"    - {match: \"c/#\", class: bulk}\n"
							"    - {match: \"a/#\", durable: false}\n"
						      : "    - {match: \"a/+/y\", class: alarm}\n");

		assert_int_equal(mqtt_uplink_set_rules(next, 5000), 0);
		rules_free(cur); /* no uplink reads it any more */
		cur = next;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < N_WORKERS; i++) {
		assert_int_equal(pthread_join(w[i].t, NULL), 0);
		assert_int_equal(w[i].bad, 0);
		assert_true(w[i].looked > 0);
		mqtt_uplink_stop(w[i].u);
		fx_free(w[i].x);
	}
	/* a stopped uplink is not waited for */
	assert_int_equal(mqtt_uplink_set_rules(NULL, 0), 0);
	rules_free(cur);
}

/* ---- a rule removed or changed while messages wait ---- */

struct sink {
	uint64_t next_token;
	char topics[16][32];
	uint64_t refs[16];
	uint32_t n;
};

static int
sink_submit(void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *token)
{
	struct sink *k = arg;

	(void)from;
	assert_true(k->n < 16);
	snprintf(k->topics[k->n], sizeof(k->topics[0]), "%.*s", (int)r->topic_len, r->topic);
	k->refs[k->n++] = r->ref;
	*token = ++k->next_token;
	return 0;
}

static const struct dpchan_sink_ops sink_ops = { .submit = sink_submit };

struct env {
	char dir[64];
	struct dpchan_server *s;
	struct sink sink;
	struct fx *x;
	struct mqtt_uplink *u;
};

static void
pump(struct env *e)
{
	for (int i = 0; i < 4; i++) {
		e->x->now += 10;
		mqtt_uplink_poll(e->u, e->x->now);
		dpchan_server_run(e->s);
	}
}

static void
env_open(struct env *e, struct rules *r)
{
	struct dpchan_conf dc = { .enabled = true,
		.pending_bytes = 1 << 16,
		.max_pending = 64,
		.reconnect_max_ms = 100 };
	struct dpchan_server_config sc = { .path = dc.path };

	memset(e, 0, sizeof(*e));
	strcpy(e->dir, "/tmp/egw-uplink-test-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(dc.path, sizeof(dc.path), "%s/dpchan.sock", e->dir);
	mqtt_uplink_configure(&dc);
	assert_non_null(e->s = dpchan_server_new(&sc, &sink_ops, &e->sink));
	assert_int_equal(mqtt_uplink_set_rules(r, 0), 0);
	e->x = fx_new(NULL);
	assert_non_null(e->u = mqtt_uplink_start(e->x->b, 1, 1));
	pump(e);
	assert_int_equal(dpchan_server_connected(e->s), 1);
	fx_connect(e->x, 0, MQTT_V311, "sensor", true, 60, NULL);
}

static void
env_close(struct env *e)
{
	mqtt_uplink_stop(e->u);
	fx_free(e->x);
	dpchan_server_free(e->s);
	rmdir(e->dir);
	assert_int_equal(mqtt_uplink_set_rules(NULL, 0), 0);
}

static void
expect_ack(struct env *e, uint16_t pid)
{
	struct mqtt_packet p;

	assert_true(fx_next(e->x, 0, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.ack.packet_id, pid);
}

static void
test_removed_rule(void **state)
{
	struct rules *old = parse("    - {match: \"plant/#\", topic: \"site/{site}/{topic}\"}\n");
	struct rules *next = parse("    - {match: \"valve/#\"}\n");
	struct env e;

	(void)state;
	env_open(&e, old);
	/* under the old rule: deferred until durable, on its way to the agent */
	fx_publish(e.x, 0, "plant/a", "1", 1, 1, false);
	pump(&e);
	fx_expect_none(e.x, 0);
	assert_int_equal(e.sink.n, 1);
	assert_string_equal(e.sink.topics[0], "plant/a");
	/* published, not yet taken: the lcore still reads the old set until its poll */
	assert_int_equal(mqtt_uplink_set_rules(next, 0), -ETIMEDOUT);
	assert_int_equal(mqtt_uplink_wants(e.u, "plant/b", 7, 1), BROKER_UPLINK_DURABLE);
	pump(&e);
	assert_int_equal(mqtt_uplink_wants(e.u, "plant/b", 7, 1), BROKER_UPLINK_NONE);
	rules_free(old); /* the only uplink took the new set at its poll */
	/* the removed rule's topic: acknowledged at once, stays local */
	fx_publish(e.x, 0, "plant/b", "2", 1, 2, false);
	expect_ack(&e, 2);
	/* the new rule's: deferred */
	fx_publish(e.x, 0, "valve/1", "3", 1, 3, false);
	pump(&e);
	fx_expect_none(e.x, 0);
	assert_int_equal(e.sink.n, 2);
	assert_string_equal(e.sink.topics[1], "valve/1");
	/* the agent makes both durable: the message taken under the removed rule keeps its promise */
	dpchan_server_durable(e.s, 1, 2, 0);
	pump(&e);
	expect_ack(&e, 1);
	expect_ack(&e, 3);
	fx_expect_none(e.x, 0);
	assert_int_equal(fx_count(e.x, BROKER_C_UPLINK_ACKED), 2);
	env_close(&e);
	rules_free(next);
}

/* durable true -> false: a QoS 1 message now goes best effort (ref 0) and is acknowledged at
 * once; QoS and class are the agent's to apply (agent/uplink/store.c). */
static void
test_changed_rule(void **state)
{
	struct rules *old = parse("    - {match: \"plant/#\", qos: keep}\n");
	struct rules *next =
	    parse("    - {match: \"plant/#\", qos: 0, class: bulk, durable: false}\n");
	struct env e;

	(void)state;
	env_open(&e, old);
	fx_publish(e.x, 0, "plant/a", "1", 1, 1, false);
	pump(&e);
	fx_expect_none(e.x, 0);
	assert_int_equal(mqtt_uplink_set_rules(next, 0), -ETIMEDOUT);
	pump(&e);
	rules_free(old);
	fx_publish(e.x, 0, "plant/a", "2", 1, 2, false);
	expect_ack(&e, 2);
	pump(&e);
	assert_int_equal(e.sink.n, 2);
	assert_int_equal(e.sink.refs[0], 1);
	assert_int_equal(e.sink.refs[1], 0); /* best effort now */
	dpchan_server_durable(e.s, 1, 1, 0);
	pump(&e);
	expect_ack(&e, 1);
	env_close(&e);
	rules_free(next);
}

/* ---- a SIGKILL between a DOWN record's journal write and its DOWN_ACK ---- */

struct agent_acks {
	int n;
	uint64_t first, last;
	int status;
};

static void
on_down_ack(void *arg, uint64_t first, uint64_t last, int status)
{
	struct agent_acks *a = arg;

	a->n++;
	a->first = first;
	a->last = last;
	a->status = status;
}

static struct fx *
fx_state(const char *state)
{
	struct fx *x = fx_new(NULL);

	assert_int_equal(broker_persist_open(x->b, state, 0, 0, x->now), 0);
	return x;
}

/* The dataplane: its broker on the state directory, its uplink to the agent's socket, the test
 * hook armed; it takes the agent's DOWN record and SIGKILLs itself before answering. No cmocka
 * here: any failure is an exit status the parent sees. */
static void
down_child(const char *state, const struct dpchan_conf *dc, const char *flag)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_uplink *u;

	setenv("EDGEGW_TEST_KILL_AT_DOWN", flag, 1);
	mqtt_uplink_configure(dc);
	if (broker_persist_open(x->b, state, 0, 0, x->now) != 0)
		_exit(2);
	if ((u = mqtt_uplink_start(x->b, 1, 1)) == NULL)
		_exit(3);
	for (int i = 0; i < 20000; i++) { /* 20 s at most */
		x->now += 10;
		mqtt_uplink_poll(u, x->now);
		usleep(1000);
	}
	_exit(4);
}

/* The broker took QoS 2 DOWN record 5 for a persistent subscriber that is offline: queued in its
 * session, journaled; the dataplane is SIGKILLed before the DOWN_ACK leaves (the test hook), so
 * the agent sends record 5 again to the restarted dataplane (as agent/downlink.c does for what a
 * connection did not answer: test_downlink). The restarted broker finds the message in its
 * journal, and the ref with it: the resend is answered without a second delivery, and the
 * subscriber gets the message once. Before the ref was journaled it got it twice. */
static void
test_down_kill_before_ack(void **state)
{
	struct rules *r = parse("    - {match: \"plant/#\"}\n");
	struct dpchan_conf dc = { .enabled = true,
		.pending_bytes = 1 << 16,
		.max_pending = 64,
		.reconnect_max_ms = 100 };
	struct dpchan_server_config sc = { .path = dc.path };
	struct dpchan_rec rec = { .ref = 5,
		.qos = 2,
		.topic = "cmd/valve",
		.topic_len = 9,
		.payload = (const uint8_t *)"open",
		.payload_len = 4 };
	struct mqtt_props props = { 0 };
	struct agent_acks acks = { 0 };
	struct sink k = { 0 };
	struct mqtt_publish p;
	struct dpchan_server *s;
	struct mqtt_uplink *u;
	char dir[64], stdir[96], flag[96], cmd[128];
	struct fx *x;
	pid_t pid;
	int ws = 0;

	(void)state;
	strcpy(dir, "/tmp/egw-down-kill-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(dc.path, sizeof(dc.path), "%s/dpchan.sock", dir);
	snprintf(stdir, sizeof(stdir), "%s/state", dir);
	snprintf(flag, sizeof(flag), "%s/kill-at-down", dir);
	assert_int_equal(mqtt_uplink_set_rules(r, 0), 0);
	/* the subscriber's session: QoS 2 on cmd/#, kept 600 s, offline */
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	x = fx_state(stdir);
	fx_connect(x, 0, MQTT_V5, "actuator", true, 60, &props);
	fx_subscribe(x, 0, "cmd/#", 2);
	fx_close(x, 0);
	fx_free(x);

	assert_non_null(s = dpchan_server_new(&sc, &sink_ops, &k));
	dpchan_server_set_down_ack(s, on_down_ack, &acks);
	fclose(fopen(flag, "w"));
	assert_true((pid = fork()) >= 0);
	if (pid == 0)
		down_child(stdir, &dc, flag);
	for (int i = 0; i < 5000 && dpchan_server_connected(s) == 0; i++) {
		dpchan_server_run(s);
		usleep(1000);
	}
	assert_int_equal(dpchan_server_connected(s), 1);
	assert_int_equal(dpchan_server_down(s, &rec), 0);
	for (int i = 0; i < 10000 && waitpid(pid, &ws, WNOHANG) == 0; i++) {
		dpchan_server_run(s);
		usleep(1000);
	}
	assert_true(WIFSIGNALED(ws));
	assert_int_equal(WTERMSIG(ws), SIGKILL);
	assert_int_not_equal(access(flag, F_OK), 0); /* the hook fired */
	dpchan_server_run(s);
	assert_int_equal(acks.n, 0); /* killed before its answer */

	/* the restarted dataplane; the agent sends what was not answered again */
	mqtt_uplink_configure(&dc);
	x = fx_state(stdir);
	assert_int_equal(broker_down_ref(x->b), 5);
	assert_non_null(u = mqtt_uplink_start(x->b, 1, 1));
	for (int i = 0; i < 5000 && dpchan_server_connected(s) == 0; i++) {
		mqtt_uplink_poll(u, x->now += 10);
		dpchan_server_run(s);
		usleep(1000);
	}
	assert_int_equal(dpchan_server_connected(s), 1);
	assert_int_equal(dpchan_server_down(s, &rec), 0);
	for (int i = 0; i < 5000 && acks.n == 0; i++) {
		mqtt_uplink_poll(u, x->now += 10);
		dpchan_server_run(s);
		usleep(1000);
	}
	assert_int_equal(acks.n, 1); /* released at the agent */
	assert_int_equal(acks.first, 5);
	assert_int_equal(acks.last, 5);
	/* the subscriber comes back: the message once (from the journal), not a second copy */
	assert_true(fx_connect(x, 0, MQTT_V5, "actuator", false, 60, &props));
	p = fx_expect_publish(x, 0, "cmd/valve", "open", 2);
	fx_expect_none(x, 0);
	assert_int_equal(mqtt_uplink_counter(u, DPCHAN_C_DOWN_DUP), 1);
	assert_int_equal(acks.status, 0); /* the answer for one taken before */
	fx_ack(x, 0, MQTT_PUBREC, p.packet_id);
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	fx_ack(x, 0, MQTT_PUBCOMP, p.packet_id);
	fx_expect_none(x, 0);

	mqtt_uplink_stop(u);
	fx_free(x);
	dpchan_server_free(s);
	assert_int_equal(mqtt_uplink_set_rules(NULL, 0), 0);
	rules_free(r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_swap_under_traffic),
		cmocka_unit_test(test_removed_rule),
		cmocka_unit_test(test_changed_rule),
		cmocka_unit_test(test_down_kill_before_ack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
