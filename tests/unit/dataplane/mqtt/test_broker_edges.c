/*
 * Unit tests for edges of the broker core that no flow test reaches: CONNECTs the broker
 * refuses (an Authentication Method, a malformed packet at either protocol level), a config
 * with zeros where limits should be, one client's overlapping subscriptions, a session moved
 * between lcores while the queue between them is full or its claim has timed out, and a 5.0
 * DISCONNECT that changes the session expiry. Checked on the wire bytes and the counters.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

/* A 5.0 CONNECT with an Authentication Method: this broker has no enhanced authentication,
 * so CONNACK 0x8C (Bad authentication method), the connection closed, no session made. */
static void
test_auth_method_refused(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p, k = { .type = MQTT_CONNECT };
	struct broker_gauges g;

	(void)state;
	fx_open(x, 0, MQTT_V5);
	k.connect.version = MQTT_V5;
	k.connect.clean_start = true;
	k.connect.keepalive_s = 60;
	k.connect.client_id = MQTT_STR("dev");
	mqtt_props_set_str(
	    &k.connect.props, MQTT_PROP_AUTHENTICATION_METHOD, MQTT_STR("SCRAM-SHA-1"));
	assert_true(fx_send(x, 0, &k) < 0); /* the broker closed it */
	assert_true(fx_next(x, 0, &p));
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_int_equal(p.connack.reason, MQTT_RC_BAD_AUTHENTICATION_METHOD);
	assert_false(p.connack.session_present);
	fx_expect_none(x, 0);
	assert_true(x->f[0].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_AUTH_METHOD), 1);
	broker_gauges_get(x->b, &g);
	assert_int_equal(g.sessions, 0);
	fx_free(x);
}

/* A packet that is not a CONNECT first is closed without a word; a CONNECT the codec refuses
 * gets the CONNACK of its own protocol level (read from the raw bytes): 0x01 for an unknown
 * level in 3.1.1 terms, a 5.0 reason for a malformed 5.0 one. */
static void
test_bad_connects(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p;
	/* PINGREQ before CONNECT */
	static const uint8_t ping[] = { 0xC0, 0x00 };
	/* CONNECT, protocol level 9 */
	static const uint8_t level9[] = { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x09, 0x02,
		0x00, 0x3C, 0x00, 0x01, 'a' };
	/* CONNECT 5.0 whose properties hold an unknown identifier (0x7F) */
	static const uint8_t v5bad[] = { 0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
		0x00, 0x3C, 0x02, 0x7F, 0x00, 0x00, 0x01, 'a' };
	/* CONNECT 3.1.1 with the reserved flag bit set */
	static const uint8_t reserved[] = { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03,
		0x00, 0x3C, 0x00, 0x01, 'a' };

	(void)state;
	fx_open(x, 0, MQTT_V311);
	assert_true(fx_feed(x, 0, ping, sizeof(ping)) < 0);
	assert_true(x->f[0].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_NOT_CONNECT), 1);
	fx_expect_none(x, 0);

	fx_open(x, 1, MQTT_V311);
	fx_feed(x, 1, level9, sizeof(level9));
	assert_true(fx_next(x, 1, &p));
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_int_equal(p.connack.reason, 0x01); /* unacceptable protocol version */
	assert_true(x->f[1].closed);

	fx_open(x, 2, MQTT_V5);
	fx_feed(x, 2, v5bad, sizeof(v5bad));
	assert_true(fx_next(x, 2, &p));
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_true(p.connack.reason >= 0x80);
	assert_true(x->f[2].closed);

	fx_open(x, 3, MQTT_V311);
	fx_feed(x, 3, reserved, sizeof(reserved));
	assert_true(x->f[3].closed);
	fx_free(x);
}

/* Zeros where a config should have limits are taken as the smallest that work (one in
 * flight, a Receive Maximum of 1, the codec's largest packet): a client still gets through,
 * told so in its CONNACK. */
static void
test_zero_limits(void **state)
{
	struct broker_config cfg;
	struct fx *x;
	struct mqtt_packet p;
	struct mqtt_publish m;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_inflight = 0;
	cfg.receive_max = 0;
	cfg.max_packet_size = 0;
	cfg.xlcore_claim_timeout_ms = 0;
	cfg.stall_timeout_ms = 0;
	cfg.topic_alias_max = 0;
	x = fx_new(&cfg);
	fx_connect_start(x, 0, MQTT_V5, "sub", true, 60, NULL);
	assert_true(fx_next(x, 0, &p));
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_int_equal(p.connack.reason, 0);
	assert_int_equal(p.connack.props.v[MQTT_PROP_RECEIVE_MAXIMUM].u, 1);
	assert_false(mqtt_props_has(&p.connack.props, MQTT_PROP_MAXIMUM_PACKET_SIZE));
	assert_false(mqtt_props_has(&p.connack.props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM));
	fx_subscribe(x, 0, "t", 1);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 1, "t", "1", 1, 1, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_publish(x, 1, "t", "2", 1, 2, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	m = fx_expect_publish(x, 0, "t", "1", 1);
	fx_expect_none(x, 0); /* one in flight at a time */
	fx_ack(x, 0, MQTT_PUBACK, m.packet_id);
	fx_expect_publish(x, 0, "t", "2", 1);
	fx_free(x);
}

/* One copy per session for overlapping subscriptions, at the highest QoS they grant; in
 * 5.0 it carries the identifiers of those that have one (one here: no list). */
static void
test_overlapping_subscriptions(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE };
	struct mqtt_subscription subs[1] = { { .filter = MQTT_STR("a/#"), .qos = 1 } };
	struct mqtt_publish m;
	uint32_t id = 42;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "old", true, 60, NULL);
	fx_subscribe(x, 0, "a/#", 0);
	fx_subscribe(x, 0, "a/b", 1);
	fx_subscribe(x, 0, "+/b", 0);
	fx_connect(x, 1, MQTT_V5, "new", true, 60, NULL);
	p.subscribe.packet_id = 7;
	p.subscribe.subs = subs;
	p.subscribe.n_subs = 1;
	p.subscribe.props.sub_ids = &id;
	p.subscribe.props.n_sub_ids = 1;
	assert_int_equal(fx_send(x, 1, &p), 0);
	fx_expect_type(x, 1, MQTT_SUBACK, 1);
	fx_subscribe(x, 1, "a/b", 2); /* no identifier */
	fx_connect(x, 2, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 2, "a/b", "x", 2, 1, false);
	fx_expect_type(x, 2, MQTT_PUBREC, 0);
	fx_expect_publish(x, 0, "a/b", "x", 1);
	fx_expect_none(x, 0);
	m = fx_expect_publish(x, 1, "a/b", "x", 2);
	assert_int_equal(m.props.n_sub_ids, 1);
	assert_int_equal(m.props.sub_ids[0], 42);
	fx_expect_none(x, 1);
	fx_free(x);
}

/* A 5.0 DISCONNECT may change the session expiry, capped at the configured maximum; one that
 * sets it on a session that ends with its connection (expiry 0 at CONNECT) is a protocol
 * error (5.0 3.14.2.2.2): DISCONNECT 0x82 and the session is not kept. */
static void
test_disconnect_sets_expiry(void **state)
{
	struct broker_config cfg;
	struct fx *x;
	struct mqtt_packet d = { .type = MQTT_DISCONNECT };
	struct mqtt_props props = { 0 };

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.session_expiry_max_s = 100;
	x = fx_new(&cfg);
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 10);
	fx_connect(x, 0, MQTT_V5, "keep", true, 60, &props);
	fx_subscribe(x, 0, "t", 1);
	mqtt_props_set_u32(&d.disconnect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 100000);
	assert_true(fx_send(x, 0, &d) <= 0);
	assert_true(x->f[0].closed);
	fx_tick(x, 50000); /* 10 s would have ended it; it is 100 s now (capped) */
	assert_true(fx_connect(x, 0, MQTT_V5, "keep", false, 60, &props));
	fx_close(x, 0);

	fx_connect(x, 1, MQTT_V5, "brief", true, 60, NULL); /* expiry 0 */
	assert_true(fx_send(x, 1, &d) <= 0);
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_PROTOCOL_ERROR);
	assert_true(x->f[1].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_PROTOCOL), 1);
	assert_false(fx_connect(x, 1, MQTT_V5, "brief", false, 60, NULL));
	fx_free(x);
}

/* A 5.0 client's own limits: Topic Alias Maximum larger than ours is cut to ours, and a
 * Maximum Packet Size it sets keeps bigger messages from it (dropped, counted). */
static void
test_client_limits(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_props props = { 0 };
	struct mqtt_publish m;
	char big[300];

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 1000);
	mqtt_props_set_u32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE, 200);
	fx_connect(x, 0, MQTT_V5, "small", true, 60, &props);
	fx_subscribe(x, 0, "t/#", 0);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fx_publish(x, 1, "t/a", big, 0, 0, false);
	fx_expect_none(x, 0);
	fx_publish(x, 1, "t/a", "fits", 0, 0, false);
	m = fx_expect_publish(x, 0, "t/a", "fits", 0);
	assert_true(mqtt_props_has(&m.props, MQTT_PROP_TOPIC_ALIAS));
	fx_free(x);
}

/* Each kind of malformed packet from a connected 5.0 client: a DISCONNECT with a reason of
 * 0x80 or more, the connection closed, and the counter that names the fault (an operator
 * reads which fault it was in the stats). */
static void
test_malformed_counted_by_kind(void **state)
{
	static const struct {
		const char *what;
		uint8_t b[20];
		size_t n;
		enum broker_counter cnt;
	} cases[] = {
		{ "remaining length of 5 bytes", { 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F }, 6,
		    BROKER_C_BAD_RLEN },
		{ "topic not UTF-8", { 0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00 }, 7,
		    BROKER_C_BAD_UTF8 },
		{ "topic with NUL", { 0x30, 0x05, 0x00, 0x02, 'a', 0x00, 0x00 }, 7,
		    BROKER_C_BAD_UTF8 },
		{ "wildcard in a topic name", { 0x30, 0x05, 0x00, 0x02, 'a', '+', 0x00 }, 7,
		    BROKER_C_BAD_TOPIC_WILDCARD },
		{ "filter a/#/b",
		    { 0x82, 0x0B, 0x00, 0x01, 0x00, 0x00, 0x05, 'a', '/', '#', '/', 'b', 0x00 }, 13,
		    BROKER_C_BAD_FILTER },
		{ "share without a filter",
		    { 0x82, 0x0E, 0x00, 0x01, 0x00, 0x00, 0x08, '$', 's', 'h', 'a', 'r', 'e', '/',
			'g', 0x00 },
		    16, BROKER_C_BAD_FILTER },
		{ "SUBSCRIBE without filters", { 0x82, 0x03, 0x00, 0x01, 0x00 }, 5,
		    BROKER_C_BAD_SUBSCRIBE_EMPTY },
		{ "UNSUBSCRIBE without filters", { 0xA2, 0x03, 0x00, 0x01, 0x00 }, 5,
		    BROKER_C_BAD_SUBSCRIBE_EMPTY },
		{ "topic longer than the packet", { 0x30, 0x04, 0x00, 0x05, 'a', 'b' }, 6,
		    BROKER_C_BAD_TRUNCATED },
		{ "topic alias 0", { 0x30, 0x07, 0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x00 }, 9,
		    BROKER_C_BAD_TOPIC_ALIAS },
		{ "QoS 1 with packet id 0", { 0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 0x00 }, 8,
		    BROKER_C_BAD_PROTOCOL },
		{ "CONNACK from a client", { 0x20, 0x03, 0x00, 0x00, 0x00 }, 5,
		    BROKER_C_BAD_PROTOCOL },
		{ "a property twice", { 0x30, 0x08, 0x00, 0x01, 'a', 0x04, 0x01, 0x00, 0x01, 0x00 },
		    10, BROKER_C_BAD_PROTOCOL },
		{ "payload format 2", { 0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x01, 0x02 }, 8,
		    BROKER_C_BAD_PROTOCOL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *x = fx_new(NULL);
		struct mqtt_packet p;

		print_message("%s\n", cases[i].what);
		fx_connect(x, 0, MQTT_V5, "bad", true, 60, NULL);
		fx_feed(x, 0, cases[i].b, cases[i].n);
		assert_true(x->f[0].closed);
		assert_true(fx_next(x, 0, &p));
		assert_int_equal(p.type, MQTT_DISCONNECT);
		assert_true(p.disconnect.reason >= 0x80);
		assert_int_equal(fx_count(x, cases[i].cnt), 1);
		fx_free(x);
	}
}

/* Before CONNECT: a protocol name that is not MQTT (CONNACK 0x01 in 3.1.1), an empty client
 * id on a 3.1.1 session that is to be kept (CONNACK 0x02), each counted by kind. */
static void
test_bad_connect_counted(void **state)
{
	static const uint8_t name[] = { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02,
		0x00, 0x3C, 0x00, 0x01, 'a' };
	static const uint8_t empty_id[] = { 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00,
		0x00, 0x3C, 0x00, 0x00 };
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p;

	(void)state;
	fx_open(x, 0, MQTT_V311);
	fx_feed(x, 0, name, sizeof(name));
	assert_true(x->f[0].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_PROTOCOL_VERSION), 1);
	fx_open(x, 1, MQTT_V311);
	fx_feed(x, 1, empty_id, sizeof(empty_id));
	assert_true(fx_next(x, 1, &p));
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_int_equal(p.connack.reason, 0x02);
	assert_true(x->f[1].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_CLIENT_ID), 1);
	fx_free(x);
}

/* A PUBLISH whose payload arrives over more segments than the broker slices on its stack
 * (a chain of small mbufs): delivered whole and in order. */
static void
test_payload_over_many_segments(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p = { .type = MQTT_PUBLISH };
	char payload[61];
	uint8_t buf[128];
	struct mqtt_iov segs[64];
	size_t n = 0, used = 0;
	int len;

	(void)state;
	for (size_t i = 0; i < sizeof(payload) - 1; i++)
		payload[i] = (char)('a' + i % 26);
	payload[sizeof(payload) - 1] = '\0';
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 0);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	p.publish.topic = MQTT_STR("t");
	p.publish.payload = (const uint8_t *)payload;
	p.publish.payload_len = sizeof(payload) - 1;
	len = mqtt_encode(buf, sizeof(buf), MQTT_V311, &p);
	assert_true(len > 0);
	for (int at = 0; at < len; at += 2)
		segs[n++] = (struct mqtt_iov){ buf + at, at + 2 <= len ? 2 : 1 };
	assert_true(n > 16);
	assert_int_equal(broker_conn_input(x->f[1].c, segs, n, &used, x->now), 0);
	assert_int_equal(used, (size_t)len);
	fx_expect_publish(x, 0, "t", payload, 0);
	fx_free(x);
}

/* Topic aliases from a 5.0 client: one set then used alone reaches the subscriber under its
 * topic; one never set (DISCONNECT 0x82) or over our maximum (0x94) ends the connection,
 * counted. */
static void
test_inbound_topic_alias(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_subscribe(x, 0, "a/#", 0);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	p.publish.topic = MQTT_STR("a/b");
	p.publish.payload = (const uint8_t *)"1";
	p.publish.payload_len = 1;
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_TOPIC_ALIAS, 3);
	assert_int_equal(fx_send(x, 1, &p), 0);
	fx_expect_publish(x, 0, "a/b", "1", 0);
	p.publish.topic = (struct mqtt_str){ "", 0 };
	p.publish.payload = (const uint8_t *)"2";
	assert_int_equal(fx_send(x, 1, &p), 0);
	fx_expect_publish(x, 0, "a/b", "2", 0);
	p.publish.topic = MQTT_STR("a/c"); /* rebound */
	p.publish.payload = (const uint8_t *)"3";
	assert_int_equal(fx_send(x, 1, &p), 0);
	p.publish.topic = (struct mqtt_str){ "", 0 };
	p.publish.payload = (const uint8_t *)"4";
	assert_int_equal(fx_send(x, 1, &p), 0);
	fx_expect_publish(x, 0, "a/c", "3", 0);
	fx_expect_publish(x, 0, "a/c", "4", 0);
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_TOPIC_ALIAS, 4); /* never set */
	assert_true(fx_send(x, 1, &p) < 0);
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_PROTOCOL_ERROR);
	assert_int_equal(fx_count(x, BROKER_C_BAD_TOPIC_ALIAS), 1);

	fx_connect(x, 2, MQTT_V5, "pub2", true, 60, NULL);
	p.publish.topic = MQTT_STR("a/d");
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_TOPIC_ALIAS, x->cfg.topic_alias_max + 1);
	assert_true(fx_send(x, 2, &p) < 0);
	fx_expect_type(x, 2, MQTT_DISCONNECT, MQTT_RC_TOPIC_ALIAS_INVALID);
	assert_int_equal(fx_count(x, BROKER_C_BAD_TOPIC_ALIAS), 2);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* Acknowledgements out of place from a 5.0 subscriber: a PUBCOMP or PUBACK for a message
 * awaiting PUBREC is counted and changes nothing; a PUBREC with an error reason ends that
 * message (no PUBREL; the next goes); a PUBREC for an id we do not know gets PUBREL 0x92;
 * a PUBREC repeated after our PUBREL gets the PUBREL again. */
static void
test_acks_out_of_place(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet a = { .type = MQTT_PUBREC };
	struct mqtt_props props = { 0 };
	struct mqtt_publish m;

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_RECEIVE_MAXIMUM, 1);
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, &props);
	fx_subscribe(x, 0, "t", 2);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 1, "t", "first", 2, 1, false);
	fx_publish(x, 1, "t", "second", 2, 2, false);
	m = fx_expect_publish(x, 0, "t", "first", 2);
	fx_expect_none(x, 0); /* Receive Maximum 1 */
	fx_ack(x, 0, MQTT_PUBCOMP, m.packet_id);
	fx_ack(x, 0, MQTT_PUBACK, m.packet_id);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 2);
	a.ack.packet_id = m.packet_id;
	a.ack.reason = MQTT_RC_UNSPECIFIED_ERROR;
	assert_int_equal(fx_send(x, 0, &a), 0);
	m = fx_expect_publish(x, 0, "t", "second", 2); /* no PUBREL for the first */
	fx_ack(x, 0, MQTT_PUBREC, (uint16_t)(m.packet_id + 100));
	fx_expect_type(x, 0, MQTT_PUBREL, MQTT_RC_PACKET_ID_NOT_FOUND);
	fx_ack(x, 0, MQTT_PUBREC, m.packet_id);
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	fx_ack(x, 0, MQTT_PUBREC, m.packet_id); /* our PUBREL was lost */
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	fx_ack(x, 0, MQTT_PUBCOMP, m.packet_id);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 3);
	fx_free(x);
}

/* ---- CONNECT and DISCONNECT ---- */

/* A 5.0 CONNECT with a will (delay_s; session expiry expiry_s, 0: none). */
static void
connect_will(struct fx *x, int i, const char *id, bool clean, uint32_t delay_s, uint32_t expiry_s,
    const char *will_topic)
{
	fx_connect_will_send(x, i,
	    &(struct fx_will){ .id = id,
		.topic = will_topic,
		.clean = clean,
		.delay_s = delay_s,
		.expiry_s = expiry_s,
		.keepalive_s = 60 });
}

/* A takeover (same client id, a live connection) ends the old connection as an abrupt end
 * would: a will without delay goes at once; one with a delay is cancelled by the new
 * connection to the same session; a session that ends here (clean start) sends it anyway. */
static void
test_takeover_and_will(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet r;

	(void)state;
	fx_connect(x, 7, MQTT_V311, "watch", true, 60, NULL);
	fx_subscribe(x, 7, "will/#", 1);
	connect_will(x, 0, "nodelay", false, 0, 600, "will/nodelay");
	assert_true(fx_connack(x, 0) == false);
	connect_will(x, 1, "nodelay", false, 0, 600, "will/nodelay");
	assert_true(fx_connack(x, 1));
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_SESSION_TAKEN_OVER);
	fx_expect_publish(x, 7, "will/nodelay", "gone", 1);

	connect_will(x, 2, "delayed", false, 30, 600, "will/delayed");
	assert_false(fx_connack(x, 2));
	connect_will(x, 3, "delayed", false, 30, 600, "will/delayed");
	assert_true(fx_connack(x, 3));
	fx_tick(x, 31000);
	fx_expect_none(x, 7); /* cancelled by the return */

	connect_will(x, 4, "ends", false, 30, 600, "will/ends");
	assert_false(fx_connack(x, 4));
	connect_will(x, 5, "ends", true, 30, 600, "will/ends"); /* clean start: the old ends */
	assert_true(fx_next(x, 5, &r));
	assert_int_equal(r.type, MQTT_CONNACK);
	assert_false(r.connack.session_present);
	fx_expect_publish(x, 7, "will/ends", "gone", 1);
	assert_int_equal(fx_count(x, BROKER_C_SESSION_TAKEOVER), 3);
	fx_free(x);
}

/* A will under $SYS/ is refused at CONNECT (it would spoof the broker's statistics): 0x87 in
 * 5.0, 5 (not authorized) in 3.1.1, counted. */
static void
test_sys_will_refused(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p = { .type = MQTT_CONNECT }, r;

	(void)state;
	connect_will(x, 0, "spoof", true, 0, 0, "$SYS/broker/clients");
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.type, MQTT_CONNACK);
	assert_int_equal(r.connack.reason, MQTT_RC_NOT_AUTHORIZED);
	assert_true(x->f[0].closed);
	fx_open(x, 1, MQTT_V311);
	p.connect.version = MQTT_V311;
	p.connect.clean_start = true;
	p.connect.keepalive_s = 60;
	p.connect.client_id = MQTT_STR("spoof");
	p.connect.has_will = true;
	p.connect.will.topic = MQTT_STR("$SYS/x");
	p.connect.will.payload = MQTT_STR("x");
	fx_send(x, 1, &p);
	assert_true(fx_next(x, 1, &r));
	assert_int_equal(r.connack.reason, 5);
	assert_true(x->f[1].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_SYS_PUBLISH), 2);
	fx_free(x);
}

/* What the CONNACK tells a 5.0 client when we grant less than it asked: the session expiry
 * capped at ours, a keepalive of 0 or over ours lowered (Server Keep Alive); a 3.1.1 client
 * keeps its keepalive (it cannot be told). */
static void
test_connack_grants(void **state)
{
	struct broker_config cfg;
	struct mqtt_props props = { 0 };
	struct mqtt_packet r;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.keepalive_max_s = 100;
	cfg.session_expiry_max_s = 1000;
	x = fx_new(&cfg);
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 5000);
	fx_connect_start(x, 0, MQTT_V5, "a", true, 0, &props);
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.connack.props.v[MQTT_PROP_SESSION_EXPIRY_INTERVAL].u, 1000);
	assert_int_equal(r.connack.props.v[MQTT_PROP_SERVER_KEEP_ALIVE].u, 100);
	fx_connect_start(x, 1, MQTT_V5, "b", true, 500, NULL);
	assert_true(fx_next(x, 1, &r));
	assert_int_equal(r.connack.props.v[MQTT_PROP_SERVER_KEEP_ALIVE].u, 100);
	assert_false(mqtt_props_has(&r.connack.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL));
	fx_connect_start(x, 2, MQTT_V5, "c", true, 50, NULL);
	assert_true(fx_next(x, 2, &r));
	assert_false(mqtt_props_has(&r.connack.props, MQTT_PROP_SERVER_KEEP_ALIVE));
	fx_connect(x, 3, MQTT_V311, "d", true, 500, NULL);
	assert_int_equal(fx_count(x, BROKER_C_KEEPALIVE_LOWERED), 2);
	fx_free(x);
}

/* DISCONNECT: a 5.0 one without properties, or one that sets the expiry to 0, ends a kept
 * session as it says; a 3.1.1 one leaves its session as it was. */
static void
test_disconnect_variants(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_props props = { 0 };
	struct mqtt_packet d = { .type = MQTT_DISCONNECT };

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect(x, 0, MQTT_V5, "keep", true, 60, &props);
	fx_send(x, 0, &d); /* no properties: the expiry stays */
	assert_true(fx_connect(x, 0, MQTT_V5, "keep", false, 60, &props));
	mqtt_props_set_u32(&d.disconnect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 0);
	fx_send(x, 0, &d); /* ends it now */
	assert_false(fx_connect(x, 0, MQTT_V5, "keep", false, 60, &props));
	fx_connect(x, 1, MQTT_V311, "old", false, 60, NULL);
	fx_subscribe(x, 1, "t", 1);
	fx_send(x, 1, &(struct mqtt_packet){ .type = MQTT_DISCONNECT });
	assert_true(x->f[1].closed);
	assert_true(fx_connect(x, 1, MQTT_V311, "old", false, 60, NULL));
	fx_free(x);
}

/* A topic long enough that the PUBLISH header does not fit the broker's stack buffer: the
 * delivery still goes whole, to a 3.1.1 and a 5.0 subscriber. */
static void
test_long_topic_delivered(void **state)
{
	struct fx *x = fx_new(NULL);
	static char topic[601];

	(void)state;
	memset(topic, 'x', sizeof(topic) - 1);
	topic[0] = 'L';
	fx_connect(x, 0, MQTT_V311, "s3", true, 60, NULL);
	fx_subscribe(x, 0, "+", 1);
	fx_connect(x, 1, MQTT_V5, "s5", true, 60, NULL);
	fx_subscribe(x, 1, topic, 1);
	fx_connect(x, 2, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 2, topic, "long", 1, 1, false);
	fx_expect_type(x, 2, MQTT_PUBACK, 0);
	fx_expect_publish(x, 0, topic, "long", 1);
	fx_expect_publish(x, 1, topic, "long", 1);
	fx_free(x);
}

/* A $SYS board for no instance is not made; an instance number past the board is not
 * attached (the broker publishes as the only one: no per-lcore topics). */
static void
test_sys_board_misuse(void **state)
{
	struct broker_sys_board *board = broker_sys_board_new(1);
	struct broker_config cfg;
	struct mqtt_packet p;
	struct fx *x;
	bool lcore = false, total = false;

	(void)state;
	assert_null(broker_sys_board_new(0));
	assert_non_null(board);
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 1000;
	x = fx_new(&cfg);
	broker_sys_attach(x->b, board, 1);
	fx_connect(x, 0, MQTT_V311, "sys", true, 60, NULL);
	fx_subscribe(x, 0, "$SYS/#", 0);
	fx_tick(x, 1000);
	while (fx_next(x, 0, &p)) {
		assert_int_equal(p.type, MQTT_PUBLISH);
		lcore |= p.publish.topic.len > 18 &&
		    memcmp(p.publish.topic.s, "$SYS/broker/lcore/", 18) == 0;
		total |= p.publish.topic.len == 29 &&
		    memcmp(p.publish.topic.s, "$SYS/broker/clients/connected", 29) == 0;
	}
	assert_false(lcore);
	assert_true(total);
	fx_free(x);
	broker_sys_board_free(board);
}

/* Every counter has a distinct name and a description; one past the last reads as 0 and "?"
 * (telemetry asks by index). */
static void
test_counter_names(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	for (int c = 0; c < BROKER_C_COUNT; c++) {
		assert_true(strlen(broker_counter_name((enum broker_counter)c)) > 0);
		assert_true(strlen(broker_counter_desc((enum broker_counter)c)) > 0);
		for (int d = 0; d < c; d++)
			assert_string_not_equal(broker_counter_name((enum broker_counter)c),
			    broker_counter_name((enum broker_counter)d));
	}
	assert_int_equal(broker_counter_get(x->b, BROKER_C_COUNT), 0);
	assert_string_equal(broker_counter_name(BROKER_C_COUNT), "?");
	assert_string_equal(broker_counter_desc(BROKER_C_COUNT), "?");
	assert_int_equal(broker_counter_kind(BROKER_C_COUNT), COUNTER_KIND_INFO);
	fx_free(x);
}

/* ---- the operator's view ---- */
struct lines {
	char text[8][160];
	int n;
};

static void
keep_line(void *arg, const char *line)
{
	struct lines *l = arg;

	if (l->n < 8)
		snprintf(l->text[l->n++], sizeof(l->text[0]), "%s", line);
}

/* Listings of subscriptions and retained messages by page (each entry on one page only, the
 * options a subscription has shown), a kick without purge of an offline session (it stays),
 * and the checks on what the operator publishes or deletes. */
static void
test_admin_pages_and_checks(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_props props = { 0 };
	struct lines a = { 0 }, b = { 0 };
	static char big[300 * 1024];

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, &props);
	fx_subscribe(x, 0, "a", 1 | 0x08); /* Retain As Published */
	fx_subscribe(x, 0, "b", 0 | 0x04 | 0x08);
	fx_subscribe(x, 0, "c", 2);
	assert_int_equal(broker_admin_subscriptions(x->b, 1, 1, keep_line, &a), 3);
	assert_int_equal(a.n, 1);
	assert_int_equal(broker_admin_subscriptions(x->b, 0, 3, keep_line, &b), 3);
	assert_int_equal(b.n, 3);
	assert_string_equal(a.text[0], b.text[1]);
	assert_true(strcmp(b.text[0], "sub a qos=1 rap") == 0 ||
	    strcmp(b.text[1], "sub a qos=1 rap") == 0 || strcmp(b.text[2], "sub a qos=1 rap") == 0);
	assert_true(strcmp(b.text[0], "sub b qos=0 no_local rap") == 0 ||
	    strcmp(b.text[1], "sub b qos=0 no_local rap") == 0 ||
	    strcmp(b.text[2], "sub b qos=0 no_local rap") == 0);
	for (int i = 0; i < 3; i++) {
		char t[16];

		snprintf(t, sizeof(t), "r/%d", i);
		assert_int_equal(broker_admin_publish(x->b, t, 3, "v", 1, 0, true, x->now), 0);
	}
	a.n = b.n = 0;
	assert_int_equal(broker_admin_retained(x->b, 2, 5, keep_line, &a), 3);
	assert_int_equal(a.n, 1);
	assert_int_equal(broker_admin_retained(x->b, 0, 2, keep_line, &b), 3);
	assert_int_equal(b.n, 2);
	assert_string_not_equal(a.text[0], b.text[0]);
	assert_string_not_equal(a.text[0], b.text[1]);
	/* checks */
	assert_int_equal(broker_admin_publish(x->b, "", 0, "x", 1, 0, false, x->now), -EINVAL);
	assert_int_equal(
	    broker_admin_publish(x->b, "r/big", 5, big, sizeof(big), 0, false, x->now), -E2BIG);
	assert_int_equal(broker_admin_retained_delete(x->b, "", 0, x->now), 0);
	assert_int_equal(broker_admin_retained_delete(x->b, "r/none", 6, x->now), 0);
	/* a kick without purge of an offline session: it stays */
	fx_close(x, 0);
	assert_int_equal(broker_admin_kick(x->b, "sub", 3, false, x->now), 1);
	assert_true(fx_connect(x, 0, MQTT_V5, "sub", false, 60, &props));
	fx_free(x);
}

/* ---- two lcores ---- */

/* A resuming CONNECT on lcore 1 whose claim sat in the queue past the claim timeout: the
 * client got its CONNACK (session present 0) and left again, and its session (expiry 0)
 * ended with it. The session lcore 0 then sends finds no one: counted XLCORE_SESSION_LOST,
 * delivered to no one, and the next client with that id starts without it. */
static void
test_session_arrives_for_no_one(void **state)
{
	struct fx *x[2];
	struct fx_xq q;
	struct broker_gauges g;

	(void)state;
	fx_xq_pair(&q, x, FX_RING_MAX, NULL);
	fx_connect_start(x[0], 0, MQTT_V311, "mover", false, 60, NULL);
	fx_xq_pump(&q, x);
	fx_xq_pump(&q, x);
	assert_false(fx_connack(x[0], 0));
	fx_subscribe(x[0], 0, "m/#", 1);
	fx_close(x[0], 0); /* a persistent session, offline on lcore 0 */

	fx_connect_start(x[1], 0, MQTT_V5, "mover", false, 60, NULL);
	fx_expect_none(x[1], 0); /* the CONNACK waits for lcore 0's answer */
	fx_tick(x[1], 1001);
	assert_int_equal(fx_count(x[1], BROKER_C_XLCORE_CLAIM_TIMEOUT), 1);
	assert_false(fx_connack(x[1], 0));
	fx_close(x[1], 0);
	broker_gauges_get(x[1]->b, &g);
	assert_int_equal(g.sessions, 0);
	for (int i = 0; i < 3; i++)
		fx_xq_pump(&q, x);
	assert_int_equal(fx_count(x[1], BROKER_C_XLCORE_SESSION_LOST), 1);
	broker_gauges_get(x[0]->b, &g);
	assert_int_equal(g.sessions, 0); /* moved away: not on lcore 0 either */
	broker_gauges_get(x[1]->b, &g);
	assert_int_equal(g.sessions, 0);
	fx_connect_start(x[0], 1, MQTT_V311, "mover", false, 60, NULL);
	for (int i = 0; i < 3; i++)
		fx_xq_pump(&q, x);
	assert_false(fx_connack(x[0], 1));
	fx_xq_free(&q, x);
}

/* More messages published on lcore 1 while a claim from it is open than it keeps to match
 * against the subscriptions that arrive (BROKER_REPLAY, 256): the oldest are counted
 * XLCORE_REPLAY_LOST, the newest reach the moved session in order. The copies sent to lcore
 * 0 meanwhile find the session gone from there (they go after the claim in its queue). */
static void
test_replay_overflow(void **state)
{
	struct fx *x[2];
	struct fx_xq q;
	struct mqtt_packet p;
	char pl[16];
	int n = 0, next = 300 - 256;

	(void)state;
	fx_xq_pair(&q, x, FX_RING_MAX, NULL);
	fx_connect_start(x[0], 0, MQTT_V311, "mover", false, 60, NULL);
	fx_xq_pump(&q, x);
	fx_xq_pump(&q, x);
	assert_false(fx_connack(x[0], 0));
	fx_subscribe(x[0], 0, "r/#", 0);
	fx_xq_pump(&q, x); /* its interest is known on lcore 1 */
	fx_close(x[0], 0);

	fx_connect(x[1], 1, MQTT_V311, "pub", true, 60, NULL);
	fx_connect_start(x[1], 0, MQTT_V311, "mover", false, 60, NULL);
	fx_expect_none(x[1], 0);
	for (int i = 0; i < 300; i++) {
		snprintf(pl, sizeof(pl), "%d", i);
		fx_publish(x[1], 1, "r/x", pl, 0, 0, false);
	}
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, x);
	assert_int_equal(fx_count(x[1], BROKER_C_XLCORE_REPLAY_LOST), 300 - 256);
	assert_true(fx_connack(x[1], 0));
	while (fx_next(x[1], 0, &p)) {
		assert_int_equal(p.type, MQTT_PUBLISH);
		snprintf(pl, sizeof(pl), "%d", next++);
		assert_int_equal(p.publish.payload_len, strlen(pl));
		assert_memory_equal(p.publish.payload, pl, strlen(pl));
		n++;
	}
	assert_int_equal(n, 256);
	fx_xq_free(&q, x);
}

/* A PUBLISH at qos with a Message Expiry Interval (0: none) from a 5.0 client. */
static void
publish_exp(struct fx *x, int i, const char *topic, const char *payload, uint8_t qos, uint16_t pid,
    uint32_t expiry_s)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)payload;
	p.publish.payload_len = (uint32_t)strlen(payload);
	p.publish.qos = qos;
	p.publish.packet_id = pid;
	if (expiry_s != 0)
		mqtt_props_set_u32(&p.publish.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s);
	assert_int_equal(fx_send(x, i, &p), 0);
}

/* A session that reaches lcore 1 after its claim timed out is merged into the one the client
 * has there as new messages: the QoS 1 one in flight goes again, the QoS 2 one sent and not
 * yet PUBRECed does not (it may have been received: exactly once, counted uncertain), the one
 * whose PUBREC came holds no message, and messages that expired meanwhile, in flight or
 * queued, are dropped. A claim answered "none" after its timeout changes nothing. */
static void
test_late_session_merged(void **state)
{
	struct mqtt_props props = { 0 };
	struct mqtt_publish p;
	struct fx *x[2];
	struct fx_xq q;

	(void)state;
	fx_xq_pair(&q, x, FX_RING_MAX, NULL);
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect_start(x[0], 0, MQTT_V5, "m", false, 60, &props);
	fx_xq_pump(&q, x);
	fx_xq_pump(&q, x);
	assert_false(fx_connack(x[0], 0));
	fx_subscribe(x[0], 0, "t/#", 2);
	fx_xq_pump(&q, x);
	fx_connect(x[0], 1, MQTT_V5, "pub", true, 60, NULL);
	publish_exp(x[0], 1, "t/1", "one", 1, 1, 0);
	fx_expect_type(x[0], 1, MQTT_PUBACK, 0);
	fx_expect_publish(x[0], 0, "t/1", "one", 1); /* not acknowledged */
	publish_exp(x[0], 1, "t/2", "two", 2, 2, 0);
	fx_expect_type(x[0], 1, MQTT_PUBREC, 0);
	fx_expect_publish(x[0], 0, "t/2", "two", 2); /* no PUBREC */
	publish_exp(x[0], 1, "t/3", "three", 2, 3, 0);
	fx_expect_type(x[0], 1, MQTT_PUBREC, 0);
	p = fx_expect_publish(x[0], 0, "t/3", "three", 2);
	fx_ack(x[0], 0, MQTT_PUBREC, p.packet_id);
	fx_expect_type(x[0], 0, MQTT_PUBREL, 0); /* no PUBCOMP */
	publish_exp(x[0], 1, "t/4", "short", 1, 4, 1);
	fx_expect_type(x[0], 1, MQTT_PUBACK, 0);
	fx_expect_publish(x[0], 0, "t/4", "short", 1);
	fx_close(x[0], 0);
	publish_exp(x[0], 1, "t/5", "queued short", 1, 5, 1);
	fx_expect_type(x[0], 1, MQTT_PUBACK, 0);
	publish_exp(x[0], 1, "t/6", "queued", 1, 6, 0);
	fx_expect_type(x[0], 1, MQTT_PUBACK, 0);

	fx_connect_start(x[1], 0, MQTT_V5, "m", false, 60, &props);
	fx_connect_start(x[1], 1, MQTT_V5, "nobody", false, 60, &props);
	fx_tick(x[1], 1500); /* both claims time out, still in the queue */
	assert_false(fx_connack(x[1], 0));
	assert_false(fx_connack(x[1], 1));
	for (int i = 0; i < 3; i++)
		fx_xq_pump(&q, x);
	assert_int_equal(fx_count(x[1], BROKER_C_XLCORE_SESSION_MERGED), 1);
	assert_int_equal(fx_count(x[1], BROKER_C_XLCORE_QOS2_UNCERTAIN), 1);
	assert_int_equal(fx_count(x[1], BROKER_C_XLCORE_SESSION_LOST), 0);
	p = fx_expect_publish(x[1], 0, "t/1", "one", 1);
	assert_false(p.dup);
	fx_expect_publish(x[1], 0, "t/6", "queued", 1);
	fx_expect_none(x[1], 0);
	fx_expect_none(x[1], 1);
	fx_xq_free(&q, x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_method_refused),
		cmocka_unit_test(test_bad_connects),
		cmocka_unit_test(test_zero_limits),
		cmocka_unit_test(test_overlapping_subscriptions),
		cmocka_unit_test(test_disconnect_sets_expiry),
		cmocka_unit_test(test_client_limits),
		cmocka_unit_test(test_malformed_counted_by_kind),
		cmocka_unit_test(test_bad_connect_counted),
		cmocka_unit_test(test_payload_over_many_segments),
		cmocka_unit_test(test_inbound_topic_alias),
		cmocka_unit_test(test_acks_out_of_place),
		cmocka_unit_test(test_admin_pages_and_checks),
		cmocka_unit_test(test_takeover_and_will),
		cmocka_unit_test(test_sys_will_refused),
		cmocka_unit_test(test_connack_grants),
		cmocka_unit_test(test_disconnect_variants),
		cmocka_unit_test(test_long_topic_delivered),
		cmocka_unit_test(test_sys_board_misuse),
		cmocka_unit_test(test_counter_names),
		cmocka_unit_test(test_session_arrives_for_no_one),
		cmocka_unit_test(test_replay_overflow),
		cmocka_unit_test(test_late_session_merged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
