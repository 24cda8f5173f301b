/*
 * Unit tests for the broker core's bad-input rules: the one offending connection is closed
 * (5.0: DISCONNECT or CONNACK with the reason; 3.1.1: just closed), the reason's counter goes
 * up, and other sessions carry on as before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

struct bad_case {
	const char *name;
	uint8_t bytes[16];
	size_t len;
	uint8_t reason; /* 5.0 DISCONNECT reason */
	enum broker_counter cnt;
};

/* 5.0 packets (a property length byte where 5.0 has one). */
static const struct bad_case v5_cases[] = {
	{ "malformed: QoS 3", { 0x36, 0x04, 0x00, 0x01, 'a', 0x00 }, 6, 0x81,
	    BROKER_C_BAD_MALFORMED },
	{ "malformed: SUBSCRIBE flags", { 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x00 }, 9,
	    0x81, BROKER_C_BAD_MALFORMED },
	{ "truncated filter", { 0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x0A, 'a' }, 8, 0x81,
	    BROKER_C_BAD_TRUNCATED },
	{ "oversized", { 0x30, 0xC8, 0x01 }, 3, 0x95, BROKER_C_BAD_OVERSIZED },
	{ "SUBSCRIBE without filters", { 0x82, 0x03, 0x00, 0x01, 0x00 }, 5, 0x82,
	    BROKER_C_BAD_SUBSCRIBE_EMPTY },
	{ "invalid UTF-8", { 0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00 }, 7, 0x81,
	    BROKER_C_BAD_UTF8 },
	{ "wildcard topic", { 0x30, 0x06, 0x00, 0x03, 'a', '/', '+', 0x00 }, 8, 0x90,
	    BROKER_C_BAD_TOPIC_WILDCARD },
	{ "remaining length 5 bytes", { 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, 6, 0x81,
	    BROKER_C_BAD_RLEN },
	{ "second CONNECT",
	    { 0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x01,
		'b' },
	    16, 0x82, BROKER_C_BAD_SECOND_CONNECT },
	{ "AUTH not negotiated", { 0xF0, 0x00 }, 2, 0x82, BROKER_C_BAD_PROTOCOL },
};

/* Sessions 0 (subscriber) and 2 (publisher) must not notice what happens to 1. */
static void
others_unaffected(struct fx *x)
{
	fx_publish(x, 2, "ok", "fine", 1, 1, false);
	fx_expect_type(x, 2, MQTT_PUBACK, 0);
	fx_expect_publish(x, 0, "ok", "fine", 1);
	assert_false(x->f[0].closed);
	assert_false(x->f[2].closed);
}

static struct fx *
bystanders(uint8_t version, uint32_t max_packet)
{
	struct broker_config cfg;
	struct fx *x;

	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	if (max_packet != 0)
		cfg.max_packet_size = max_packet;
	x = fx_new(&cfg);
	fx_connect(x, 0, version, "sub", true, 60, NULL);
	fx_connect(x, 2, version, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "ok", 1);
	return x;
}

static void
test_bad_input_v5(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(v5_cases) / sizeof(v5_cases[0]); k++) {
		const struct bad_case *bc = &v5_cases[k];
		struct fx *x = bystanders(MQTT_V5, 128);

		print_message("case: %s\n", bc->name);
		fx_connect(x, 1, MQTT_V5, "bad", true, 60, NULL);
		assert_int_equal(fx_count(x, bc->cnt), 0);
		assert_true(fx_feed(x, 1, bc->bytes, bc->len) < 0);
		assert_true(x->f[1].closed);
		fx_expect_type(x, 1, MQTT_DISCONNECT, bc->reason);
		fx_expect_none(x, 1);
		assert_int_equal(fx_count(x, bc->cnt), 1);
		others_unaffected(x);
		fx_free(x);
	}
}

/* 3.1.1 has no DISCONNECT from the server: the connection is just dropped. */
static void
test_bad_input_v311(void **state)
{
	static const struct bad_case cases[] = {
		{ "wildcard topic", { 0x30, 0x05, 0x00, 0x03, 'a', '/', '#' }, 7, 0,
		    BROKER_C_BAD_TOPIC_WILDCARD },
		{ "invalid UTF-8", { 0x30, 0x04, 0x00, 0x02, 0xED, 0xA0 }, 6, 0,
		    BROKER_C_BAD_UTF8 },
		{ "remaining length 5 bytes", { 0x30, 0x80, 0x80, 0x80, 0x80, 0x01 }, 6, 0,
		    BROKER_C_BAD_RLEN },
		{ "SUBSCRIBE without filters", { 0x82, 0x02, 0x00, 0x01 }, 4, 0,
		    BROKER_C_BAD_SUBSCRIBE_EMPTY },
		{ "second CONNECT",
		    { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00,
			0x01, 'b' },
		    15, 0, BROKER_C_BAD_SECOND_CONNECT },
	};

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct fx *x = bystanders(MQTT_V311, 0);

		print_message("case: %s\n", cases[k].name);
		fx_connect(x, 1, MQTT_V311, "bad", true, 60, NULL);
		assert_true(fx_feed(x, 1, cases[k].bytes, cases[k].len) < 0);
		assert_true(x->f[1].closed);
		fx_expect_none(x, 1);
		assert_int_equal(fx_count(x, cases[k].cnt), 1);
		others_unaffected(x);
		fx_free(x);
	}
}

static void
test_pubrel_unknown(void **state)
{
	struct fx *x = bystanders(MQTT_V5, 0);

	(void)state;
	fx_connect(x, 1, MQTT_V5, "odd", true, 60, NULL);
	fx_ack(x, 1, MQTT_PUBREL, 4242);
	fx_expect_type(x, 1, MQTT_PUBCOMP, MQTT_RC_PACKET_ID_NOT_FOUND);
	assert_false(x->f[1].closed); /* not a protocol error: the session goes on */
	assert_int_equal(fx_count(x, BROKER_C_PUBREL_UNKNOWN), 1);
	others_unaffected(x);
	fx_free(x);
}

static void
test_not_connect_first(void **state)
{
	struct fx *x = bystanders(MQTT_V5, 0);

	(void)state;
	fx_open(x, 1, MQTT_V5);
	assert_true(fx_feed(x, 1, (const uint8_t[]){ 0xC0, 0x00 }, 2) < 0);
	assert_true(x->f[1].closed);
	fx_expect_none(x, 1);
	assert_int_equal(fx_count(x, BROKER_C_BAD_NOT_CONNECT), 1);
	others_unaffected(x);
	fx_free(x);
}

static void
test_connect_errors(void **state)
{
	/* 5.0 CONNECT with a malformed will topic (wildcard): CONNACK 0x90 */
	static const uint8_t bad_will[] = { 0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06,
		0x00, 0x3C, 0x00, 0x00, 0x01, 'c', 0x00, 0x00, 0x01, '#', 0x00 };
	struct fx *x = bystanders(MQTT_V5, 0);
	struct mqtt_packet p = { .type = MQTT_CONNECT };
	char id[200];

	(void)state;
	fx_open(x, 1, MQTT_V5);
	assert_true(fx_feed(x, 1, bad_will, sizeof(bad_will)) < 0);
	fx_expect_type(x, 1, MQTT_CONNACK, MQTT_RC_TOPIC_NAME_INVALID);
	assert_true(x->f[1].closed);
	/* client id over client_id_max: CONNACK 0x85 */
	memset(id, 'x', sizeof(id));
	fx_open(x, 1, MQTT_V5);
	p.connect = (struct mqtt_connect){
		.version = MQTT_V5, .clean_start = true, .client_id = { id, sizeof(id) }
	};
	assert_true(fx_send(x, 1, &p) < 0);
	fx_expect_type(x, 1, MQTT_CONNACK, MQTT_RC_CLIENT_ID_NOT_VALID);
	assert_int_equal(fx_count(x, BROKER_C_BAD_CLIENT_ID), 1);
	others_unaffected(x);
	fx_free(x);
}

static void
test_receive_max_exceeded(void **state)
{
	struct broker_config cfg;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.receive_max = 2;
	x = fx_new(&cfg);
	fx_connect(x, 1, MQTT_V5, "greedy", true, 60, NULL);
	fx_publish(x, 1, "t", "1", 2, 1, false);
	fx_publish(x, 1, "t", "2", 2, 2, false);
	fx_expect_type(x, 1, MQTT_PUBREC, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_expect_type(x, 1, MQTT_PUBREC, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish = (struct mqtt_publish){ .topic = MQTT_STR("t"), .qos = 2, .packet_id = 3 };
	assert_true(fx_send(x, 1, &p) < 0);
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED);
	assert_int_equal(fx_count(x, BROKER_C_BAD_RECEIVE_MAX), 1);
	fx_free(x);
}

static void
test_limits_counted(void **state)
{
	struct broker_config cfg;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_conns = 4;
	cfg.max_sessions = 2;
	cfg.max_subs_per_session = 1;
	cfg.max_retained = 1;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V5, "a", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "b", true, 60, NULL);
	fx_open(x, 2, MQTT_V5);
	struct mqtt_packet p = { .type = MQTT_CONNECT };

	p.connect = (struct mqtt_connect){
		.version = MQTT_V5, .clean_start = true, .client_id = MQTT_STR("c")
	};
	assert_true(fx_send(x, 2, &p) < 0);
	fx_expect_type(x, 2, MQTT_CONNACK, MQTT_RC_QUOTA_EXCEEDED);
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_SESSIONS), 1);
	fx_open(x, 2, MQTT_V5);
	fx_open(x, 3, MQTT_V5); /* not yet connected: still holds a connection slot */
	assert_null(broker_conn_open(x->b, &x->f[4], x->now));
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_CONNS), 1);
	fx_subscribe(x, 0, "one", 0);
	struct mqtt_subscription s = { .filter = MQTT_STR("two") };

	p = (struct mqtt_packet){ .type = MQTT_SUBSCRIBE };
	p.subscribe.packet_id = 5;
	p.subscribe.subs = &s;
	p.subscribe.n_subs = 1;
	fx_send(x, 0, &p);
	struct mqtt_packet r;

	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.suback.reasons[0], MQTT_RC_QUOTA_EXCEEDED);
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_SUBS), 1);
	fx_publish(x, 1, "r1", "x", 0, 0, true);
	fx_publish(x, 1, "r2", "y", 0, 0, true);
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_RETAINED), 1);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input_v5),
		cmocka_unit_test(test_bad_input_v311),
		cmocka_unit_test(test_pubrel_unknown),
		cmocka_unit_test(test_not_connect_first),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_receive_max_exceeded),
		cmocka_unit_test(test_limits_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
