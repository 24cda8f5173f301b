/*
 * Unit tests for the broker core's spec rules found wrong by the review of issue 14 (part B):
 * QoS 2 without a Receive Maximum (3.1.1), the will after DISCONNECT >= 0x80, a PUBLISH that
 * could not be stored, repeated PUBREC, will delay on takeover, message expiry of wills and of
 * resent messages, Receive Maximum on resend, takeover of a session that ends with its
 * connection, $SYS publishes from clients, keepalive at scale, the client id hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"
#include "broker_int.h"

/* 10: 3.1.1 has no Receive Maximum: 40 QoS 2 messages awaiting PUBREL are all accepted. */
static void
test_v311_qos2_no_receive_max(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "q", 0);
	for (uint16_t i = 1; i <= 40; i++) {
		fx_publish(x, 1, "q", "m", 2, i, false);
		fx_expect_type(x, 1, MQTT_PUBREC, 0);
	}
	assert_false(x->f[1].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_RECEIVE_MAX), 0);
	for (uint16_t i = 1; i <= 40; i++) {
		fx_ack(x, 1, MQTT_PUBREL, i);
		fx_expect_type(x, 1, MQTT_PUBCOMP, 0);
	}
	assert_int_equal(fx_count(x, BROKER_C_PUBREL_UNKNOWN), 0);
	fx_free(x);
}

static void
connect_will(struct fx *x, int i, const char *id, bool clean, uint32_t delay_s, uint32_t expiry_s,
    uint32_t msg_expiry_s, uint16_t keepalive_s)
{
	assert_int_equal(fx_connect_will_send(x, i,
			     &(struct fx_will){ .id = id,
				 .clean = clean,
				 .delay_s = delay_s,
				 .expiry_s = expiry_s,
				 .msg_expiry_s = msg_expiry_s,
				 .keepalive_s = keepalive_s }),
	    0);
	fx_connack(x, i);
}

/* 10: [MQTT-3.14.4-3] only DISCONNECT 0x00 discards the will; 0x80 and up keep it. */
static void
test_disconnect_error_keeps_will(void **state)
{
	struct mqtt_packet d = { .type = MQTT_DISCONNECT };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "watch", true, 60, NULL);
	fx_subscribe(x, 0, "will/#", 1);
	connect_will(x, 1, "err", true, 0, 0, 0, 60);
	d.disconnect.reason = MQTT_RC_UNSPECIFIED_ERROR;
	assert_true(fx_send(x, 1, &d) < 0);
	fx_expect_publish(x, 0, "will/t", "gone", 1);
	connect_will(x, 2, "ok", true, 0, 0, 0, 60);
	d.disconnect.reason = 0;
	assert_true(fx_send(x, 2, &d) < 0);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* 10: a PUBLISH that could not be stored is not acknowledged as a success: 5.0 gets the
 * reason 0x97 (and PUBREL for that id is unknown), 3.1.1, which cannot be told, is closed. */
static void
test_publish_nomem_not_acked(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "pub5", true, 60, NULL);
	fx_connect(x, 2, MQTT_V311, "pub3", true, 60, NULL);
	fx_subscribe(x, 0, "t", 2);
	broker_msg_fail_next = 1;
	fx_publish(x, 1, "t", "lost", 1, 1, false);
	fx_expect_type(x, 1, MQTT_PUBACK, MQTT_RC_QUOTA_EXCEEDED);
	broker_msg_fail_next = 1;
	fx_publish(x, 1, "t", "lost", 2, 2, false);
	fx_expect_type(x, 1, MQTT_PUBREC, MQTT_RC_QUOTA_EXCEEDED);
	fx_ack(x, 1, MQTT_PUBREL, 2);
	fx_expect_type(x, 1, MQTT_PUBCOMP, MQTT_RC_PACKET_ID_NOT_FOUND);
	fx_expect_none(x, 0);
	broker_msg_fail_next = 1;
	fx_feed(x, 2, (const uint8_t[]){ 0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'x' }, 8);
	fx_expect_none(x, 2); /* no PUBACK */
	assert_true(x->f[2].closed);
	assert_int_equal(broker_msg_fail_next, 0);
	assert_int_equal(fx_count(x, BROKER_C_PUB_NOMEM), 3);
	fx_publish(x, 1, "t", "fine", 1, 3, false); /* the others go on */
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_expect_publish(x, 0, "t", "fine", 1);
	fx_free(x);
}

/* 10: a PUBREC again for an id already awaiting PUBCOMP gets PUBREL 0x00 again. */
static void
test_repeated_pubrec(void **state)
{
	struct fx *x = fx_new(NULL);
	uint16_t pid;

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "q", 2);
	fx_publish(x, 1, "q", "x", 2, 1, false);
	pid = fx_expect_publish(x, 0, "q", "x", 2).packet_id;
	fx_ack(x, 0, MQTT_PUBREC, pid);
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	fx_ack(x, 0, MQTT_PUBREC, pid);
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	fx_ack(x, 0, MQTT_PUBCOMP, pid);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_free(x);
}

/* 6: a takeover (clean start 0) is a new connection to the session within the Will Delay
 * Interval: no will. A takeover with clean start 1 ends the session: the will goes at once. */
static void
test_takeover_will_delay(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "watch", true, 60, NULL);
	fx_subscribe(x, 0, "will/#", 1);
	connect_will(x, 1, "late", false, 5, 100, 0, 60);
	connect_will(x, 2, "late", false, 5, 100, 0, 60);
	assert_true(x->f[1].closed);
	fx_expect_none(x, 0);
	fx_tick(x, 10000);
	fx_expect_none(x, 0);
	connect_will(x, 3, "late", true, 5, 100, 0, 60); /* clean start: the session ends */
	fx_expect_publish(x, 0, "will/t", "gone", 1);
	fx_tick(x, 10000);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_WILL_PUBLISHED), 1);
	fx_free(x);
}

/* 7: a will's Message Expiry Interval counts from its publication. */
static void
test_will_expiry_from_publication(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;

	(void)state;
	fx_connect(x, 0, MQTT_V5, "watch", true, 0, NULL);
	fx_subscribe(x, 0, "will/#", 1);
	connect_will(x, 1, "old", true, 0, 0, 60, 0);
	fx_tick(x, 120000);
	fx_close(x, 1);
	p = fx_expect_publish(x, 0, "will/t", "gone", 1);
	assert_true(mqtt_props_has(&p.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL));
	assert_int_equal(p.props.v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u, 60);
	assert_int_equal(fx_count(x, BROKER_C_MSG_EXPIRED), 0);
	fx_free(x);
}

static void
publish_expiring(struct fx *x, int i, const char *topic, uint16_t pid, uint32_t expiry_s)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)"e";
	p.publish.payload_len = 1;
	p.publish.qos = 1;
	p.publish.packet_id = pid;
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s);
	assert_int_equal(fx_send(x, i, &p), 0);
}

/* 7: an unacknowledged message that expired is dropped at reconnect, not resent (and never
 * with a wrapped expiry); one still alive goes with what is left of it. */
static void
test_inflight_expired_dropped(void **state)
{
	struct mqtt_props props = { 0 };
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 1000);
	fx_connect(x, 0, MQTT_V5, "keep", false, 0, &props);
	fx_connect(x, 1, MQTT_V5, "pub", true, 0, NULL);
	fx_subscribe(x, 0, "t", 1);
	publish_expiring(x, 1, "t", 1, 10);
	publish_expiring(x, 1, "t", 2, 100);
	fx_expect_publish(x, 0, "t", "e", 1);
	fx_expect_publish(x, 0, "t", "e", 1);
	fx_close(x, 0);
	fx_tick(x, 20000);
	assert_true(fx_connect(x, 0, MQTT_V5, "keep", false, 0, &props));
	p = fx_expect_publish(x, 0, "t", "e", 1);
	assert_true(p.dup);
	assert_int_equal(p.props.v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u, 80);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_MSG_EXPIRED), 1);
	fx_free(x);
}

/* 8: resends after a reconnect respect the client's new Receive Maximum [MQTT-3.3.4-9]. */
static void
test_resend_respects_receive_max(void **state)
{
	struct mqtt_props props = { 0 }, small = { 0 };
	struct fx *x = fx_new(NULL);
	uint16_t pid[10];

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 1000);
	small = props;
	mqtt_props_set_u32(&small, MQTT_PROP_RECEIVE_MAXIMUM, 2);
	fx_connect(x, 0, MQTT_V5, "keep", false, 60, &props);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	for (uint16_t i = 0; i < 10; i++) {
		fx_publish(x, 1, "t", "m", 1, (uint16_t)(i + 1), false);
		pid[i] = fx_expect_publish(x, 0, "t", "m", 1).packet_id;
	}
	fx_close(x, 0);
	assert_true(fx_connect(x, 0, MQTT_V5, "keep", false, 60, &small));
	assert_int_equal(fx_expect_publish(x, 0, "t", "m", 1).packet_id, pid[0]);
	assert_int_equal(fx_expect_publish(x, 0, "t", "m", 1).packet_id, pid[1]);
	fx_expect_none(x, 0);
	fx_ack(x, 0, MQTT_PUBACK, pid[0]);
	assert_int_equal(fx_expect_publish(x, 0, "t", "m", 1).packet_id, pid[2]);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* 9: a session that ends with its connection (3.1.1 clean session, 5.0 expiry 0) is not
 * resumed by a takeover with clean start 0: present 0, its subscriptions gone. */
static void
test_takeover_of_ending_session(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
		fx_connect(x, 0, v, "c", true, 60, NULL);
		fx_subscribe(x, 0, "t", 1);
		assert_false(fx_connect(x, 1, v, "c", false, 60, NULL));
		assert_true(x->f[0].closed);
		fx_connect(x, 2, v, "pub", true, 60, NULL);
		fx_publish(x, 2, "t", "x", 0, 0, false);
		fx_expect_none(x, 1);
		fx_close(x, 1);
		fx_close(x, 2);
	}
	fx_free(x);
}

/* 11: clients may not publish under $SYS/: refused (5.0 0x87), counted, not retained. */
static void
test_sys_publish_refused(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "watch", true, 60, NULL);
	fx_subscribe(x, 0, "$SYS/#", 1);
	fx_connect(x, 1, MQTT_V5, "spoof", true, 60, NULL);
	fx_connect(x, 2, MQTT_V311, "spoof3", true, 60, NULL);
	fx_publish(x, 1, "$SYS/broker/uptime", "1", 1, 1, true);
	fx_expect_type(x, 1, MQTT_PUBACK, MQTT_RC_NOT_AUTHORIZED);
	fx_publish(x, 1, "$SYS", "1", 0, 0, true);
	fx_publish(x, 2, "$SYS/broker/uptime", "1", 2, 1, true);
	fx_expect_type(x, 2, MQTT_PUBREC, 0); /* 3.1.1 cannot be told: acked, not routed */
	fx_ack(x, 2, MQTT_PUBREL, 1);
	fx_expect_type(x, 2, MQTT_PUBCOMP, 0);
	fx_expect_none(x, 0);
	assert_int_equal(broker_retain_count(x->b), 0);
	assert_int_equal(fx_count(x, BROKER_C_BAD_SYS_PUBLISH), 3);
	fx_publish(x, 1, "$SYSTEM/x", "ok", 0, 0, false); /* another topic: fine */
	fx_free(x);
}

/* 13: keepalive enforced within 100 ms of 1.5 x, whatever the number of connections: 9,000
 * others (connected to nothing, long connect timeout) share the broker; ticks every 50 ms. */
static void
test_keepalive_at_scale(void **state)
{
	struct broker_config cfg;
	struct fx *x;
	uint64_t t0, closed_at = 0;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.connect_timeout_ms = 3600 * 1000;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V311, "ka", true, 2, NULL);
	for (int i = 0; i < 9000; i++)
		assert_non_null(broker_conn_open(x->b, &x->f[7], x->now));
	for (int k = 0; k < 37; k++) { /* the timers' position is not where the test began */
		fx_tick(x, 27);
		fx_feed(x, 0, (const uint8_t[]){ 0xC0, 0x00 }, 2);
		fx_expect_type(x, 0, MQTT_PINGRESP, 0);
	}
	t0 = x->now;
	while (!x->f[0].closed && x->now - t0 < 6000) {
		fx_tick(x, 50);
		if (x->f[0].closed)
			closed_at = x->now - t0;
	}
	print_message("closed %llu ms after the last packet\n", (unsigned long long)closed_at);
	assert_true(closed_at >= 3000);
	assert_true(closed_at < 3100);
	assert_int_equal(fx_count(x, BROKER_C_KEEPALIVE_TIMEOUT), 1);
	assert_int_equal(fx_count(x, BROKER_C_CONNECT_TIMEOUT), 0);
	fx_free(x);
}

static uint32_t
fnv1a(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static uint32_t
longest_chain(const struct broker *b)
{
#ifdef BROKER_SESS_HASH /* the fixed table before issue 14 */
	uint32_t n = BROKER_SESS_HASH;
#else
	uint32_t n = b->sess_buckets;
#endif
	uint32_t max = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = 0;

		for (const struct broker_session *s = b->sess_hash[i]; s != NULL; s = s->hnext)
			k++;
		max = k > max ? k : max;
	}
	return max;
}

/* 15: client ids made to collide under an unkeyed hash (here FNV-1a mod 4,096, what the
 * table used) do not share a chain; the table grows with the sessions. */
static void
test_client_id_hash_flooding(void **state)
{
	struct fx *x = fx_new(NULL);
	char id[32];
	uint32_t made = 0;

	(void)state;
	for (uint32_t k = 0; made < 500; k++) {
		int n = snprintf(id, sizeof(id), "flood-%u", k);

		if (fnv1a(id, (size_t)n) % 4096 != 7)
			continue;
		assert_non_null(broker_session_create(x->b, id, (size_t)n));
		made++;
	}
	for (uint32_t k = 0; k < 5000; k++) {
		int n = snprintf(id, sizeof(id), "plain-%u", k);

		assert_non_null(broker_session_create(x->b, id, (size_t)n));
	}
	print_message("longest chain: %u\n", longest_chain(x->b));
	assert_true(longest_chain(x->b) <= 12);
	assert_non_null(broker_session_find(x->b, "plain-4999", 10));
	fx_free(x);
}

/* Also: the configured maximum keep-alive lowers a 5.0 client's, told in CONNACK (Server Keep
 * Alive), and is the one enforced; a client within it gets none. */
static void
test_server_keep_alive(void **state)
{
	struct broker_config cfg;
	struct mqtt_packet p = { .type = MQTT_CONNECT }, r;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.keepalive_max_s = 60;
	x = fx_new(&cfg);
	fx_open(x, 0, MQTT_V5);
	p.connect.version = MQTT_V5;
	p.connect.clean_start = true;
	p.connect.keepalive_s = 600;
	p.connect.client_id = MQTT_STR("long");
	assert_int_equal(fx_send(x, 0, &p), 0);
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.type, MQTT_CONNACK);
	assert_true(mqtt_props_has(&r.connack.props, MQTT_PROP_SERVER_KEEP_ALIVE));
	assert_int_equal(r.connack.props.v[MQTT_PROP_SERVER_KEEP_ALIVE].u, 60);
	fx_open(x, 1, MQTT_V5);
	p.connect.keepalive_s = 30;
	p.connect.client_id = MQTT_STR("short");
	assert_int_equal(fx_send(x, 1, &p), 0);
	assert_true(fx_next(x, 1, &r));
	assert_false(mqtt_props_has(&r.connack.props, MQTT_PROP_SERVER_KEEP_ALIVE));
	fx_tick(x, 89999);
	assert_false(x->f[0].closed);
	fx_tick(x, 1);
	assert_true(x->f[0].closed);
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_KEEP_ALIVE_TIMEOUT);
	assert_int_equal(fx_count(x, BROKER_C_KEEPALIVE_LOWERED), 1);
	fx_free(x);
}

#define QCAP 16

/* 5: after a claim timeout the client was told session present 0: a QoS 2 message it may
 * have had already (sent, no PUBREC) is not sent again under a new packet id (it would be a
 * duplicate); a QoS 1 one is (at least once). */
static void
test_claim_timeout_no_qos2_duplicate(void **state)
{
	struct mqtt_props props = { 0 };
	struct fx *x[2];
	struct fx_xq q;

	(void)state;
	fx_xq_pair(&q, x, QCAP, NULL);
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 1000);
	fx_connect_start(x[0], 0, MQTT_V5, "c", false, 60, &props);
	fx_xq_pump(&q, x); /* the claim and its "none" answer */
	fx_xq_pump(&q, x);
	assert_false(fx_connack(x[0], 0));
	fx_connect(x[0], 1, MQTT_V5, "pub", true, 60, NULL);
	fx_xq_pump(&q, x);
	fx_subscribe(x[0], 0, "q", 2);
	fx_xq_pump(&q, x);
	fx_publish(x[0], 1, "q", "two", 2, 1, false);
	fx_publish(x[0], 1, "q", "one", 1, 2, false);
	fx_expect_publish(x[0], 0, "q", "two", 2); /* never PUBRECed */
	fx_expect_publish(x[0], 0, "q", "one", 1); /* never PUBACKed */
	fx_xq_pump(&q, x);
	fx_close(x[0], 0);
	fx_connect_start(x[1], 0, MQTT_V5, "c", false, 60, &props);
	fx_expect_none(x[1], 0); /* held for the claim's answer */
	fx_tick(x[1], 1500);     /* the answer is late */
	assert_false(fx_connack(x[1], 0));
	fx_xq_pump(&q, x); /* the claim reaches instance 0, which sends the session */
	fx_xq_pump(&q, x);
	assert_int_equal(fx_count(x[1], BROKER_C_XLCORE_SESSION_MERGED), 1);
	fx_expect_publish(x[1], 0, "q", "one", 1);
	fx_expect_none(x[1], 0);
	fx_xq_free(&q, x);
}

static void
subscribe_id(struct fx *x, int i, const char *filter, uint8_t qos, uint32_t id)
{
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE };
	struct mqtt_subscription sub = { .filter = { filter, (uint16_t)strlen(filter) },
		.qos = qos };

	p.subscribe.packet_id = 1;
	p.subscribe.subs = &sub;
	p.subscribe.n_subs = 1;
	if (id != 0) {
		p.subscribe.props.sub_ids = &id;
		p.subscribe.props.n_sub_ids = 1;
	}
	assert_int_equal(fx_send(x, i, &p), 0);
	fx_expect_type(x, i, MQTT_SUBACK, qos);
}

/* Also: a message matching several of one client's subscriptions goes as one copy, at the
 * highest of their QoS, with all of their Subscription Identifiers (5.0 3.3.4). */
static void
test_one_copy_all_sub_ids(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;
	bool seen1 = false, seen2 = false;

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_connect(x, 2, MQTT_V311, "old", true, 60, NULL);
	subscribe_id(x, 0, "a/+", 0, 1);
	subscribe_id(x, 0, "a/#", 1, 2);
	subscribe_id(x, 0, "a/b", 0, 0);
	fx_subscribe(x, 2, "a/+", 0);
	fx_subscribe(x, 2, "a/b", 1);
	fx_publish(x, 1, "a/b", "m", 1, 1, false);
	p = fx_expect_publish(x, 0, "a/b", "m", 1);
	assert_int_equal(p.props.n_sub_ids, 2);
	for (int i = 0; i < 2; i++) {
		seen1 |= p.props.sub_ids[i] == 1;
		seen2 |= p.props.sub_ids[i] == 2;
	}
	assert_true(seen1 && seen2);
	fx_expect_none(x, 0);
	fx_expect_publish(x, 2, "a/b", "m", 1); /* 3.1.1: one copy at the highest QoS too */
	fx_expect_none(x, 2);
	fx_publish(x, 1, "a/c/d", "n", 1, 2, false); /* one match: its own id */
	p = fx_expect_publish(x, 0, "a/c/d", "n", 1);
	assert_int_equal(p.props.n_sub_ids, 1);
	assert_int_equal(p.props.sub_ids[0], 2);
	fx_expect_none(x, 0);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v311_qos2_no_receive_max),
		cmocka_unit_test(test_disconnect_error_keeps_will),
		cmocka_unit_test(test_publish_nomem_not_acked),
		cmocka_unit_test(test_repeated_pubrec),
		cmocka_unit_test(test_takeover_will_delay),
		cmocka_unit_test(test_will_expiry_from_publication),
		cmocka_unit_test(test_inflight_expired_dropped),
		cmocka_unit_test(test_resend_respects_receive_max),
		cmocka_unit_test(test_takeover_of_ending_session),
		cmocka_unit_test(test_sys_publish_refused),
		cmocka_unit_test(test_keepalive_at_scale),
		cmocka_unit_test(test_client_id_hash_flooding),
		cmocka_unit_test(test_server_keep_alive),
		cmocka_unit_test(test_one_copy_all_sub_ids),
		cmocka_unit_test(test_claim_timeout_no_qos2_duplicate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
