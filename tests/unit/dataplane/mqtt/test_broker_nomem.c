/*
 * The broker out of memory (tests/unit/lib/fail_alloc.h: malloc, calloc and realloc of the
 * broker's link fail on demand). A scenario that touches every kind of state the broker
 * allocates (sessions, subscriptions with identifiers, a share group, retained messages, QoS
 * 1/2 in flight and queued, a delayed will, topic aliases both ways, a session moved between
 * two lcores, the state journal, its snapshot and its replay) runs once for every allocation
 * it makes, with that one allocation failing. Whatever failed, the broker must go on: no crash
 * or leak (ASan), nothing sent on a closed connection (the fixture asserts it), a failure is
 * counted (or, for the state journal's open, returned to the caller), and afterwards a new
 * client is served as usual. NOMEM_DEBUG=1 names the allocations whose failure went unseen;
 * NOMEM_ONLY=n runs the scenarios with only allocation n failing (under gdb: break in
 * fail_alloc.c's fails() to see where it is).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "broker_fixture.h"
#include "fail_alloc.h"

static char dir[64];

static void
clean_dir(void)
{
	static const char *const names[] = { "broker-0.journal", "broker-0.snap", "broker-0.tmp",
		"broker-1.journal", "broker-1.snap", "broker-1.tmp" };
	char p[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
}

/* ---- a client that answers whatever comes, and sends only while its connection lives ---- */
static bool
alive(struct fx *x, int i)
{
	return x->f[i].c != NULL;
}

static void
send_soft(struct fx *x, int i, const struct mqtt_packet *p)
{
	if (alive(x, i))
		fx_send(x, i, p);
}

static void
ack_soft(struct fx *x, int i, enum mqtt_type type, uint16_t pid)
{
	struct mqtt_packet p = { .type = type };

	p.ack.packet_id = pid;
	send_soft(x, i, &p);
}

/* Read what came, answering QoS 1/2 deliveries and PUBRELs; the number of PUBLISHes. */
static int
answer(struct fx *x, int i)
{
	struct mqtt_packet p;
	int n = 0;

	while (fx_next(x, i, &p)) {
		if (p.type == MQTT_PUBLISH) {
			n++;
			if (p.publish.qos == 1)
				ack_soft(x, i, MQTT_PUBACK, p.publish.packet_id);
			else if (p.publish.qos == 2)
				ack_soft(x, i, MQTT_PUBREC, p.publish.packet_id);
		} else if (p.type == MQTT_PUBREL) {
			ack_soft(x, i, MQTT_PUBCOMP, p.ack.packet_id);
		}
	}
	fx_read_all(x, i);
	return n;
}

/* fx_open and fx_close, for a connection that may be refused or gone */
static void
open_soft(struct fx *x, int i, uint8_t version)
{
	struct fake *f = &x->f[i];

	memset(f, 0, sizeof(*f));
	f->space = FX_OUT;
	f->version = version;
	mqtt_decoder_init(&f->dec, MQTT_ROLE_CLIENT, version, 0, f->scratch, sizeof(f->scratch));
	f->c = broker_conn_open(x->b, f, x->now); /* NULL: no memory for it */
}

static void
close_soft(struct fx *x, int i)
{
	if (alive(x, i))
		fx_close(x, i);
}

static void
connect_soft(struct fx *x, int i, uint8_t version, const char *id, bool clean, bool will)
{
	struct mqtt_packet p = { .type = MQTT_CONNECT };

	open_soft(x, i, version);
	if (x->f[i].c == NULL)
		return;
	p.connect.version = version;
	p.connect.clean_start = clean;
	p.connect.keepalive_s = 60;
	p.connect.client_id = (struct mqtt_str){ id, (uint16_t)strlen(id) };
	if (version == MQTT_V5) {
		mqtt_props_set_u32(&p.connect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
		mqtt_props_set_u32(&p.connect.props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 4);
	}
	if (will) {
		p.connect.has_will = true;
		p.connect.will.topic = MQTT_STR("will/t");
		p.connect.will.payload = MQTT_STR("gone");
		p.connect.will.qos = 1;
		mqtt_props_set_u32(&p.connect.will.props, MQTT_PROP_WILL_DELAY_INTERVAL, 2);
	}
	send_soft(x, i, &p);
}

static void
subscribe_soft(struct fx *x, int i, const char *filter, uint8_t qos, uint32_t sub_id)
{
	struct mqtt_subscription s = { .filter = { filter, (uint16_t)strlen(filter) }, .qos = qos };
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE };

	p.subscribe.packet_id = 1;
	p.subscribe.subs = &s;
	p.subscribe.n_subs = 1;
	if (sub_id != 0 && x->f[i].version == MQTT_V5) {
		p.subscribe.props.sub_ids = &sub_id;
		p.subscribe.props.n_sub_ids = 1;
	}
	send_soft(x, i, &p);
}

static void
publish_soft(struct fx *x, int i, const char *topic, const char *payload, uint8_t qos, uint16_t pid,
    bool retain, uint16_t alias)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)payload;
	p.publish.payload_len = (uint32_t)strlen(payload);
	p.publish.qos = qos;
	p.publish.packet_id = pid;
	p.publish.retain = retain;
	if (alias != 0)
		mqtt_props_set_u32(&p.publish.props, MQTT_PROP_TOPIC_ALIAS, alias);
	if (x->f[i].version == MQTT_V5)
		mqtt_props_set_u32(&p.publish.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 3600);
	send_soft(x, i, &p);
	if (qos == 2) {
		answer(x, i);
		ack_soft(x, i, MQTT_PUBREL, pid);
	}
	answer(x, i);
}

static uint64_t
failures_counted(struct fx *x)
{
	return fx_count(x, BROKER_C_NOMEM) + fx_count(x, BROKER_C_PUB_NOMEM) +
	    fx_count(x, BROKER_C_PERSIST_FAIL);
}

/* ---- the scenario ---- */

/* One instance with its state journal: returns what it counted as failures. */
static uint64_t
scenario_one(uint64_t n)
{
	struct fx *x = fx_new(NULL), *y = fx_new(NULL);
	uint64_t counted, refused = 0; /* opens that failed: told to the caller, not counted */

	fail_alloc_nth(n);
	if (broker_persist_open(x->b, dir, 0, 0, x->now) != 0) {
		refused++;
		clean_dir(); /* no state (out of memory at open): the broker runs without */
	}
	connect_soft(x, 0, MQTT_V5, "sub", true, true);
	subscribe_soft(x, 0, "t/#", 2, 3);
	subscribe_soft(x, 0, "t/+", 1, 4);
	subscribe_soft(x, 0, "$share/g/t/x", 1, 0);
	connect_soft(x, 1, MQTT_V311, "pub", true, false);
	connect_soft(x, 2, MQTT_V5, "alias", true, false);
	answer(x, 0);
	answer(x, 1);
	answer(x, 2);
	publish_soft(x, 1, "t/x", "retained", 0, 0, true, 0);
	publish_soft(x, 1, "t/x", "one", 1, 1, false, 0);
	publish_soft(x, 1, "t/y", "two", 2, 2, false, 0);
	publish_soft(x, 2, "t/a", "aliased", 1, 1, false, 1);
	publish_soft(x, 2, "", "again", 1, 2, false, 1);
	answer(x, 0);
	answer(x, 0); /* the PUBRELs' PUBCOMPs */
	publish_soft(x, 1, "t/x", "", 0, 0, true, 0);
	close_soft(x, 0); /* its will waits 2 s */
	publish_soft(x, 1, "t/q", "queued1", 1, 3, false, 0);
	publish_soft(x, 1, "t/q", "queued2", 2, 4, false, 0);
	fx_tick(x, 1000);
	connect_soft(x, 0, MQTT_V5, "sub", false, false); /* back: the will is cancelled */
	answer(x, 0);
	answer(x, 0);
	close_soft(x, 0);
	publish_soft(x, 1, "t/q", "for later", 1, 5, true, 0);
	fx_tick(x, 3000);
	counted = failures_counted(x);
	fx_free(x);

	/* the restart: the journal replayed, compacted into a snapshot */
	x = y;
	if (broker_persist_open(x->b, dir, 0, 0, x->now) != 0) {
		refused++;
		clean_dir();
	}
	connect_soft(x, 0, MQTT_V5, "sub", false, false);
	answer(x, 0);
	answer(x, 0);
	counted += failures_counted(x) + refused;
	fail_alloc_nth(0);
	fx_free(x);
	return counted;
}

/* Two instances: a session moved from one to the other, a share group across both. */
static uint64_t
scenario_two(uint64_t n)
{
	struct fx_xq q;
	struct fx *x[2];
	uint64_t counted;

	fx_xq_pair(&q, x, FX_RING_MAX, NULL);
	fail_alloc_nth(n);
	connect_soft(x[0], 0, MQTT_V311, "mover", false, false);
	fx_xq_pump(&q, x);
	fx_xq_pump(&q, x);
	subscribe_soft(x[0], 0, "m/#", 1, 0);
	subscribe_soft(x[0], 0, "$share/g/s", 1, 0);
	connect_soft(x[1], 1, MQTT_V311, "member", true, false);
	subscribe_soft(x[1], 1, "$share/g/s", 1, 0);
	fx_xq_pump(&q, x);
	answer(x[0], 0);
	answer(x[1], 1);
	close_soft(x[0], 0);
	connect_soft(x[0], 2, MQTT_V311, "pub", true, false);
	publish_soft(x[0], 2, "m/1", "queued", 1, 1, false, 0);
	publish_soft(x[0], 2, "s", "shared", 1, 2, false, 0);
	publish_soft(x[0], 2, "r", "retained", 0, 0, true, 0);
	fx_xq_pump(&q, x);
	connect_soft(x[1], 0, MQTT_V311, "mover", false, false); /* claimed from instance 0 */
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, x);
	answer(x[1], 0);
	answer(x[1], 1);
	publish_soft(x[0], 2, "m/2", "after", 1, 3, false, 0);
	for (int i = 0; i < 3; i++)
		fx_xq_pump(&q, x);
	answer(x[1], 0);
	fx_tick(x[0], 1500);
	fx_tick(x[1], 1500);
	counted = failures_counted(x[0]) + failures_counted(x[1]);
	fail_alloc_nth(0);
	fx_xq_free(&q, x);
	return counted;
}

/* Afterwards, with memory again: a broker on the same state serves a new client. */
static void
still_serves(void)
{
	struct fx *x = fx_new(NULL);

	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	fx_connect(x, 0, MQTT_V311, "check", true, 60, NULL);
	fx_subscribe(x, 0, "c", 1);
	fx_connect(x, 1, MQTT_V5, "check-pub", true, 60, NULL);
	fx_publish(x, 1, "c", "ok", 1, 1, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_expect_publish(x, 0, "c", "ok", 1);
	fx_free(x);
	clean_dir();
}

static void
sweep(uint64_t (*scenario)(uint64_t), const char *name)
{
	uint64_t total, with_failure = 0, counted_runs = 0;

	clean_dir();
	scenario(UINT64_MAX); /* count them, none fails */
	total = fail_alloc_seen();
	clean_dir();
	assert_true(total > 50);
	for (uint64_t n = 1; n <= total; n++) {
		uint64_t counted;

		if (getenv("NOMEM_ONLY") != NULL && strtoull(getenv("NOMEM_ONLY"), NULL, 10) != n)
			continue;
		counted = scenario(n);

		if (fail_alloc_failed() > 0) {
			with_failure++;
			counted_runs += counted > 0;
			if (counted == 0 && getenv("NOMEM_DEBUG") != NULL)
				print_message("%s: allocation %llu failed, not counted\n", name,
				    (unsigned long long)n);
		}
		still_serves();
	}
	print_message("%s: %llu allocations, %llu runs with one failing, %llu of them counted\n",
	    name, (unsigned long long)total, (unsigned long long)with_failure,
	    (unsigned long long)counted_runs);
	assert_true(with_failure > total / 2);
	assert_int_equal(counted_runs, with_failure); /* no failure goes unnoticed */
}

static void
test_one_instance_out_of_memory(void **state)
{
	(void)state;
	sweep(scenario_one, "one instance");
}

static void
test_two_instances_out_of_memory(void **state)
{
	(void)state;
	sweep(scenario_two, "two instances");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_instance_out_of_memory),
		cmocka_unit_test(test_two_instances_out_of_memory),
	};
	int rc;

	/* on tmpfs where there is one: hundreds of opens, each with its fdatasyncs */
	snprintf(dir, sizeof(dir), "/dev/shm/egw-bnomem-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		snprintf(dir, sizeof(dir), "/tmp/egw-bnomem-XXXXXX");
		if (mkdtemp(dir) == NULL)
			return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	clean_dir();
	rmdir(dir);
	return rc;
}
