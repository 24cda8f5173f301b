/*
 * Unit tests for the broker core (dataplane/mqtt): protocol flows through a fake transport,
 * checked on the wire bytes the broker sends (CONNECT/CONNACK, QoS 0/1/2 both ways, sessions,
 * takeover, will, retained, keepalive, shared subscriptions, flow control, topic alias).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

static void
test_connect_v311(void **state)
{
	static const uint8_t connack[] = { 0x20, 0x02, 0x00, 0x00 };
	static const uint8_t connect[] = { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
		0x00, 0x3C, 0x00, 0x01, 'a' };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_open(x, 0, MQTT_V311);
	assert_int_equal(fx_feed(x, 0, connect, sizeof(connect)), 0);
	fx_expect_bytes(x, 0, connack, sizeof(connack));
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_CONNECTED), 1);
	fx_free(x);
}

static void
test_connect_v5_assigned_id(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p = { .type = MQTT_CONNECT }, r;

	(void)state;
	fx_open(x, 0, MQTT_V5);
	p.connect.version = MQTT_V5;
	p.connect.clean_start = true;
	p.connect.keepalive_s = 0; /* asks for none: the server's maximum comes back */
	assert_int_equal(fx_send(x, 0, &p), 0);
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.type, MQTT_CONNACK);
	assert_int_equal(r.connack.reason, 0);
	assert_true(mqtt_props_has(&r.connack.props, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER));
	assert_true(r.connack.props.v[MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER].s.len > 4);
	assert_int_equal(r.connack.props.v[MQTT_PROP_SERVER_KEEP_ALIVE].u, x->cfg.keepalive_max_s);
	assert_int_equal(r.connack.props.v[MQTT_PROP_RECEIVE_MAXIMUM].u, x->cfg.receive_max);
	assert_int_equal(
	    r.connack.props.v[MQTT_PROP_TOPIC_ALIAS_MAXIMUM].u, x->cfg.topic_alias_max);
	assert_int_equal(fx_count(x, BROKER_C_CLIENT_ID_ASSIGNED), 1);
	fx_free(x);
}

static void
test_connect_bad_level(void **state)
{
	/* level 3 (MQTT 3.1 is "MQIsdp" anyway): 3.1.1 CONNACK 0x01 then close */
	static const uint8_t connect[] = { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x03, 0x02,
		0x00, 0x3C, 0x00, 0x01, 'a' };
	static const uint8_t connack[] = { 0x20, 0x02, 0x00, 0x01 };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_open(x, 0, MQTT_V311);
	assert_true(fx_feed(x, 0, connect, sizeof(connect)) < 0);
	fx_expect_bytes(x, 0, connack, sizeof(connack));
	assert_true(x->f[0].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_PROTOCOL_VERSION), 1);
	fx_free(x);
}

static void
test_qos0(void **state)
{
	static const uint8_t want[] = { 0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i' };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "a/b", 0);
	fx_publish(x, 1, "a/b", "hi", 0, 0, false);
	fx_expect_bytes(x, 0, want, sizeof(want));
	fx_expect_none(x, 0);
	fx_expect_none(x, 1);
	fx_free(x);
}

static void
test_qos1_both_ways(void **state)
{
	static const uint8_t puback[] = { 0x40, 0x02, 0x00, 0x05 };
	static const uint8_t pub[] = { 0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'h',
		'i' };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "a/b", 1);
	fx_publish(x, 1, "a/b", "hi", 1, 5, false);
	fx_expect_bytes(x, 1, puback, sizeof(puback));
	fx_expect_bytes(x, 0, pub, sizeof(pub));
	fx_ack(x, 0, MQTT_PUBACK, 1);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_ack(x, 0, MQTT_PUBACK, 1); /* twice: no longer in flight */
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 1);
	fx_free(x);
}

static void
test_qos2_both_ways(void **state)
{
	static const uint8_t pubrec[] = { 0x50, 0x02, 0x00, 0x09 };
	static const uint8_t pubcomp[] = { 0x70, 0x02, 0x00, 0x09 };
	static const uint8_t pubrel[] = { 0x62, 0x02, 0x00, 0x01 };
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "q", 2);
	fx_publish(x, 1, "q", "two", 2, 9, false);
	fx_expect_bytes(x, 1, pubrec, sizeof(pubrec));
	p = fx_expect_publish(x, 0, "q", "two", 2);
	assert_int_equal(p.packet_id, 1);
	assert_false(p.dup);
	fx_ack(x, 1, MQTT_PUBREL, 9);
	fx_expect_bytes(x, 1, pubcomp, sizeof(pubcomp));
	fx_ack(x, 0, MQTT_PUBREC, 1);
	fx_expect_bytes(x, 0, pubrel, sizeof(pubrel));
	fx_ack(x, 0, MQTT_PUBCOMP, 1);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_free(x);
}

static void
test_qos2_duplicate_suppressed(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "q", 2);
	fx_publish(x, 1, "q", "once", 2, 3, false);
	fx_publish(x, 1, "q", "once", 2, 3, false); /* resent before PUBREL */
	fx_expect_type(x, 1, MQTT_PUBREC, 0);
	fx_expect_type(x, 1, MQTT_PUBREC, 0);
	fx_expect_publish(x, 0, "q", "once", 2);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_QOS2_DUP), 1);
	fx_ack(x, 1, MQTT_PUBREL, 3);
	fx_expect_type(x, 1, MQTT_PUBCOMP, 0);
	fx_publish(x, 1, "q", "again", 2, 3, false); /* id free again: a new message */
	fx_expect_publish(x, 0, "q", "again", 2);
	fx_free(x);
}

static void
test_delivery_qos_is_min(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "s0", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "s2", true, 60, NULL);
	fx_connect(x, 2, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 0);
	fx_subscribe(x, 1, "t", 2);
	fx_publish(x, 2, "t", "m", 1, 1, false);
	fx_expect_publish(x, 0, "t", "m", 0);
	fx_expect_publish(x, 1, "t", "m", 1);
	fx_free(x);
}

static void
test_offline_queue_and_dup_redelivery(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;

	(void)state;
	assert_false(fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL));
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_publish(x, 1, "t", "first", 1, 1, false);
	p = fx_expect_publish(x, 0, "t", "first", 1); /* never acknowledged */
	fx_close(x, 0);
	fx_publish(x, 1, "t", "second", 1, 2, false);
	fx_publish(x, 1, "t", "zero", 0, 0, false); /* QoS 0 is not kept for offline sessions */
	assert_int_equal(fx_count(x, BROKER_C_OFFLINE_QOS0_DROP), 1);
	assert_true(fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL));
	struct mqtt_publish again = fx_expect_publish(x, 0, "t", "first", 1);
	assert_true(again.dup);
	assert_int_equal(again.packet_id, p.packet_id);
	struct mqtt_publish q = fx_expect_publish(x, 0, "t", "second", 1);
	assert_false(q.dup);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_PUB_REDELIVERED), 1);
	fx_free(x);
}

static void
test_queue_bound(void **state)
{
	struct broker_config cfg;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_queue = 2;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_close(x, 0);
	fx_publish(x, 1, "t", "1", 1, 1, false);
	fx_publish(x, 1, "t", "2", 1, 2, false);
	fx_publish(x, 1, "t", "3", 1, 3, false);
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_QUEUE), 1);
	fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL);
	fx_expect_publish(x, 0, "t", "1", 1);
	fx_expect_publish(x, 0, "t", "2", 1);
	fx_expect_none(x, 0);
	fx_free(x);
}

static void
test_takeover(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "same", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "same", false, 60, NULL);
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_SESSION_TAKEN_OVER);
	assert_true(x->f[0].closed);
	assert_false(x->f[1].closed);
	assert_int_equal(fx_count(x, BROKER_C_SESSION_TAKEOVER), 1);
	fx_subscribe(x, 1, "t", 0);
	fx_publish(x, 1, "t", "still", 0, 0, false);
	fx_expect_publish(x, 1, "t", "still", 0);
	fx_free(x);
}

/* A 5.0 client with a will; a session kept expiry_s after it goes (0: clean, not kept). */
static void
connect_with_will(struct fx *x, int i, const char *id, uint32_t delay_s, uint32_t expiry_s)
{
	assert_int_equal(fx_connect_will(x, i, id, expiry_s == 0, delay_s, expiry_s), 0);
}

static void
test_will(void **state)
{
	struct mqtt_packet d = { .type = MQTT_DISCONNECT };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "watch", true, 60, NULL);
	fx_subscribe(x, 0, "will/#", 1);
	connect_with_will(x, 1, "dies", 0, 0);
	fx_close(x, 1);
	fx_expect_publish(x, 0, "will/t", "gone", 1);
	assert_int_equal(fx_count(x, BROKER_C_WILL_PUBLISHED), 1);
	connect_with_will(x, 2, "leaves", 0, 0);
	assert_true(fx_send(x, 2, &d) < 0); /* clean DISCONNECT: no will */
	assert_true(x->f[2].closed);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_WILL_PUBLISHED), 1);
	fx_free(x);
}

static void
test_will_delay(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "watch", true, 60, NULL);
	fx_subscribe(x, 0, "will/#", 1);
	connect_with_will(x, 1, "late", 5, 100);
	fx_close(x, 1);
	fx_tick(x, 4000);
	fx_expect_none(x, 0);
	fx_tick(x, 1000);
	fx_expect_publish(x, 0, "will/t", "gone", 1);
	/* back within the delay: no will */
	connect_with_will(x, 2, "back", 5, 100);
	fx_close(x, 2);
	fx_tick(x, 2000);
	connect_with_will(x, 2, "back", 5, 100);
	fx_tick(x, 10000);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* Redelivery keeps the original send order even when slots were reused out of order. */
static void
test_redelivery_order(void **state)
{
	struct fx *x = fx_new(NULL);
	uint16_t pid[3];

	(void)state;
	fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_publish(x, 1, "t", "a", 1, 1, false);
	fx_publish(x, 1, "t", "b", 1, 2, false);
	pid[0] = fx_expect_publish(x, 0, "t", "a", 1).packet_id;
	pid[1] = fx_expect_publish(x, 0, "t", "b", 1).packet_id;
	fx_ack(x, 0, MQTT_PUBACK, pid[0]);       /* frees the first slot */
	fx_publish(x, 1, "t", "c", 1, 3, false); /* takes it: newer than "b" */
	pid[2] = fx_expect_publish(x, 0, "t", "c", 1).packet_id;
	fx_close(x, 0);
	fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL);
	assert_int_equal(fx_expect_publish(x, 0, "t", "b", 1).packet_id, pid[1]);
	assert_int_equal(fx_expect_publish(x, 0, "t", "c", 1).packet_id, pid[2]);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* A PUBLISH past PUBREC is finished with PUBREL after a reconnect, not sent again. */
static void
test_pubrel_resent_after_reconnect(void **state)
{
	static const uint8_t pubrel[] = { 0x62, 0x02, 0x00, 0x01 };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 2);
	fx_publish(x, 1, "t", "x", 2, 1, false);
	fx_expect_publish(x, 0, "t", "x", 2);
	fx_ack(x, 0, MQTT_PUBREC, 1);
	fx_expect_bytes(x, 0, pubrel, sizeof(pubrel));
	fx_close(x, 0);
	fx_connect(x, 0, MQTT_V311, "keep", false, 60, NULL);
	fx_expect_bytes(x, 0, pubrel, sizeof(pubrel));
	fx_ack(x, 0, MQTT_PUBCOMP, 1);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_free(x);
}

static void
test_client_max_packet_size(void **state)
{
	struct mqtt_props props = { 0 };
	struct fx *x = fx_new(NULL);

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE, 20);
	fx_connect(x, 0, MQTT_V5, "small", true, 60, &props);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_publish(x, 1, "t", "this payload does not fit in twenty bytes", 1, 1, false);
	fx_publish(x, 1, "t", "fits", 1, 2, false);
	fx_expect_publish(x, 0, "t", "fits", 1);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_CLIENT_PACKET_SIZE), 1);
	fx_free(x);
}

static void
test_disconnect_with_will(void **state)
{
	struct mqtt_packet d = { .type = MQTT_DISCONNECT };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "watch", true, 60, NULL);
	fx_subscribe(x, 0, "will/#", 1);
	connect_with_will(x, 1, "asks", 0, 0);
	d.disconnect.reason = MQTT_RC_DISCONNECT_WITH_WILL;
	assert_true(fx_send(x, 1, &d) < 0);
	fx_expect_publish(x, 0, "will/t", "gone", 1);
	fx_free(x);
}

static struct broker_gauges
gauges(struct fx *x)
{
	struct broker_gauges g;

	broker_gauges_get(x->b, &g);
	return g;
}

/* An idle session holds its record only: the QoS 1/2 window and the table of incoming QoS 2
 * ids go back at the next tick once empty, the cold part when the will is gone (a clean
 * DISCONNECT); each comes back on use. */
static void
test_idle_session_sheds_state(void **state)
{
	struct mqtt_packet d = { .type = MQTT_DISCONNECT };
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL); /* a session kept offline */
	fx_subscribe(x, 0, "q", 2);
	connect_with_will(x, 1, "pub", 0, 0);
	assert_int_equal(gauges(x).sessions, 2);
	assert_int_equal(gauges(x).cold, 1);
	assert_int_equal(gauges(x).windows, 0);
	for (int round = 0; round < 2; round++) {
		fx_publish(x, 1, "q", "two", 2, 9, false);
		fx_expect_type(x, 1, MQTT_PUBREC, 0);
		p = fx_expect_publish(x, 0, "q", "two", 2);
		assert_int_equal(gauges(x).windows, 1);
		assert_int_equal(gauges(x).qos2_tables, 1);
		fx_tick(x, 1000); /* both in use: kept */
		assert_int_equal(gauges(x).windows, 1);
		assert_int_equal(gauges(x).qos2_tables, 1);
		fx_ack(x, 1, MQTT_PUBREL, 9);
		fx_expect_type(x, 1, MQTT_PUBCOMP, 0);
		fx_ack(x, 0, MQTT_PUBREC, p.packet_id);
		fx_expect_type(x, 0, MQTT_PUBREL, 0);
		fx_ack(x, 0, MQTT_PUBCOMP, p.packet_id);
		fx_tick(x, 1000);
		assert_int_equal(gauges(x).windows, 0);
		assert_int_equal(gauges(x).qos2_tables, 0);
	}
	/* a message queued while the window is gone is still delivered when it comes back */
	fx_close(x, 0);
	fx_tick(x, 1000);
	fx_publish(x, 1, "q", "later", 1, 10, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_int_equal(gauges(x).queued, 1);
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	p = fx_expect_publish(x, 0, "q", "later", 1);
	assert_int_equal(gauges(x).queued, 0);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	assert_true(fx_send(x, 1, &d) < 0); /* clean: the will is dropped */
	assert_int_equal(gauges(x).cold, 0);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_free(x);
}

static void
test_disconnect_expiry_from_zero(void **state)
{
	struct mqtt_packet d = { .type = MQTT_DISCONNECT };
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "zero", true, 60, NULL);
	mqtt_props_set_u32(&d.disconnect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 100);
	assert_true(fx_send(x, 0, &d) < 0);
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_PROTOCOL_ERROR);
	assert_int_equal(fx_count(x, BROKER_C_BAD_PROTOCOL), 1);
	fx_free(x);
}

static void
test_unsubscribe(void **state)
{
	static const uint8_t unsuback311[] = { 0xB0, 0x02, 0x00, 0x09 };
	struct mqtt_str f[2] = { MQTT_STR("t"), MQTT_STR("never") };
	struct mqtt_packet u = { .type = MQTT_UNSUBSCRIBE }, r;
	struct fx *x = fx_new(NULL);

	(void)state;
	u.unsubscribe.packet_id = 9;
	u.unsubscribe.filters = f;
	u.unsubscribe.n_filters = 2;
	fx_connect(x, 0, MQTT_V311, "old", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "new", true, 60, NULL);
	fx_connect(x, 2, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 0);
	fx_subscribe(x, 1, "t", 0);
	fx_send(x, 0, &u);
	fx_expect_bytes(x, 0, unsuback311, sizeof(unsuback311));
	fx_send(x, 1, &u);
	assert_true(fx_next(x, 1, &r));
	assert_int_equal(r.type, MQTT_UNSUBACK);
	assert_int_equal(r.suback.n_reasons, 2);
	assert_int_equal(r.suback.reasons[0], MQTT_RC_SUCCESS);
	assert_int_equal(r.suback.reasons[1], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
	fx_publish(x, 2, "t", "gone", 0, 0, false);
	fx_expect_none(x, 0);
	fx_expect_none(x, 1);
	fx_free(x);
}

static void
test_connect_timeout(void **state)
{
	struct fx *x = fx_new(NULL);
	size_t used;

	(void)state;

	fx_open(x, 0, MQTT_V311);
	/* a CONNECT that never ends: kept by the transport, nothing consumed */
	static const uint8_t part[] = { 0x10, 0x0D, 0x00 };
	struct mqtt_iov seg = { part, sizeof(part) };

	assert_int_equal(broker_conn_input(x->f[0].c, &seg, 1, &used, x->now), 0);
	assert_int_equal(used, 0);
	fx_tick(x, x->cfg.connect_timeout_ms - 1);
	assert_false(x->f[0].closed);
	fx_tick(x, 1);
	assert_true(x->f[0].closed);
	assert_int_equal(fx_count(x, BROKER_C_CONNECT_TIMEOUT), 1);
	fx_free(x);
}

/* An offline member of a share group is passed over while another is online. */
static void
test_shared_prefers_online(void **state)
{
	struct mqtt_props props = { 0 };
	struct fx *x = fx_new(NULL);

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 60);
	fx_connect(x, 0, MQTT_V5, "away", false, 60, &props);
	fx_connect(x, 1, MQTT_V5, "here", true, 60, NULL);
	fx_connect(x, 2, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "$share/g/t", 1);
	fx_subscribe(x, 1, "$share/g/t", 1);
	fx_close(x, 0);
	for (int k = 0; k < 3; k++)
		fx_publish(x, 2, "t", "m", 1, (uint16_t)(k + 1), false);
	for (int k = 0; k < 3; k++)
		fx_expect_publish(x, 1, "t", "m", 1);
	fx_free(x);
}

static void
test_retained(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;

	(void)state;
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 1, "r/a", "one", 1, 1, true);
	fx_publish(x, 1, "r/a", "two", 1, 2, true); /* replaces */
	fx_publish(x, 1, "r/b", "bee", 0, 0, true);
	fx_publish(x, 1, "r/b", "", 0, 0, true); /* clears */
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_subscribe(x, 0, "r/+", 1);
	p = fx_expect_publish(x, 0, "r/a", "two", 1);
	assert_true(p.retain);
	fx_expect_none(x, 0);
	fx_publish(x, 1, "r/a", "live", 0, 0, true);
	p = fx_expect_publish(x, 0, "r/a", "live", 0);
	assert_false(p.retain); /* live delivery: retain cleared unless retain-as-published */
	assert_int_equal(fx_count(x, BROKER_C_RETAIN_CLEARED), 1);
	fx_free(x);
}

static void
test_retain_handling_v5(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_publish(x, 1, "r", "kept", 0, 0, true);
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
	fx_subscribe(x, 0, "r", 0 | 2 << 4); /* 2: never */
	fx_expect_none(x, 0);
	fx_subscribe(x, 0, "x/#", 0 | 1 << 4);
	fx_subscribe(x, 0, "r", 0 | 1 << 4); /* 1: only if new; it exists */
	fx_expect_none(x, 0);
	fx_subscribe(x, 0, "r", 0 | 8); /* 0 + retain as published */
	fx_expect_publish(x, 0, "r", "kept", 0);
	fx_publish(x, 1, "r", "new", 0, 0, true);
	assert_true(fx_expect_publish(x, 0, "r", "new", 0).retain);
	fx_free(x);
}

static void
test_keepalive(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "ka", true, 10, NULL);
	fx_tick(x, 14999);
	assert_false(x->f[0].closed);
	fx_feed(x, 0, (const uint8_t[]){ 0xC0, 0x00 }, 2); /* PINGREQ resets the clock */
	fx_expect_type(x, 0, MQTT_PINGRESP, 0);
	fx_tick(x, 14999);
	assert_false(x->f[0].closed);
	fx_tick(x, 1);
	assert_true(x->f[0].closed);
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_KEEP_ALIVE_TIMEOUT);
	assert_int_equal(fx_count(x, BROKER_C_KEEPALIVE_TIMEOUT), 1);
	fx_free(x);
}

static void
test_shared_round_robin(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "m0", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "m1", true, 60, NULL);
	fx_connect(x, 2, MQTT_V5, "pub", true, 60, NULL);
	fx_connect(x, 3, MQTT_V5, "plain", true, 60, NULL);
	fx_subscribe(x, 0, "$share/g/s/+", 1);
	fx_subscribe(x, 1, "$share/g/s/+", 1);
	fx_subscribe(x, 3, "s/#", 0);
	for (int k = 0; k < 4; k++)
		fx_publish(x, 2, "s/x", "m", 0, 0, false);
	for (int k = 0; k < 2; k++) {
		fx_expect_publish(x, 0, "s/x", "m", 0);
		fx_expect_publish(x, 1, "s/x", "m", 0);
	}
	fx_expect_none(x, 0);
	fx_expect_none(x, 1);
	for (int k = 0; k < 4; k++) /* every ordinary subscriber still gets each one */
		fx_expect_publish(x, 3, "s/x", "m", 0);
	fx_free(x);
}

static void
test_receive_maximum(void **state)
{
	struct mqtt_props props = { 0 };
	struct fx *x = fx_new(NULL);
	struct mqtt_publish p;

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_RECEIVE_MAXIMUM, 2);
	fx_connect(x, 0, MQTT_V5, "slow", true, 60, &props);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_publish(x, 1, "t", "1", 1, 1, false);
	fx_publish(x, 1, "t", "2", 1, 2, false);
	fx_publish(x, 1, "t", "3", 1, 3, false);
	p = fx_expect_publish(x, 0, "t", "1", 1);
	fx_expect_publish(x, 0, "t", "2", 1);
	fx_expect_none(x, 0);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	fx_expect_publish(x, 0, "t", "3", 1);
	fx_free(x);
}

static void
test_backpressure(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 0);
	x->f[0].space = 0;
	fx_publish(x, 1, "t", "held", 0, 0, false);
	fx_expect_none(x, 0);
	x->f[0].space = FX_OUT;
	broker_conn_writable(x->f[0].c, x->now);
	fx_expect_publish(x, 0, "t", "held", 0);
	fx_free(x);
}

static void
publish_alias(struct fx *x, int i, const char *topic, uint16_t alias, const char *pl)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)pl;
	p.publish.payload_len = (uint32_t)strlen(pl);
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_TOPIC_ALIAS, alias);
	fx_send(x, i, &p);
}

static void
test_topic_alias(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "long/topic", 0);
	publish_alias(x, 1, "long/topic", 1, "a");
	publish_alias(x, 1, "", 1, "b");
	fx_expect_publish(x, 0, "long/topic", "a", 0);
	fx_expect_publish(x, 0, "long/topic", "b", 0);
	publish_alias(x, 1, "long/topic", (uint16_t)(x->cfg.topic_alias_max + 1), "c");
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_TOPIC_ALIAS_INVALID);
	assert_true(x->f[1].closed);
	assert_int_equal(fx_count(x, BROKER_C_BAD_TOPIC_ALIAS), 1);
	fx_free(x);
}

/* A delivery: its topic as sent (empty when aliased) and its alias (0: none). */
static void
expect_aliased(struct fx *x, int i, const char *topic, uint32_t alias, const char *payload)
{
	struct mqtt_publish p = fx_expect_publish(x, i, topic, payload, 0);

	if (alias == 0) {
		assert_false(mqtt_props_has(&p.props, MQTT_PROP_TOPIC_ALIAS));
	} else {
		assert_true(mqtt_props_has(&p.props, MQTT_PROP_TOPIC_ALIAS));
		assert_int_equal(p.props.v[MQTT_PROP_TOPIC_ALIAS].u, alias);
	}
}

/* Outbound aliases: up to the client's Topic Alias Maximum, topic in full when an alias is
 * (re)bound, empty after; round robin; an alias counts as known only once its packet left. */
static void
test_topic_alias_out(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_props props = { 0 };

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 2);
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, &props);
	fx_connect(x, 1, MQTT_V5, "plain", true, 60, NULL); /* allows none */
	fx_connect(x, 2, MQTT_V311, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "a/#", 0);
	fx_subscribe(x, 1, "a/#", 0);
	fx_publish(x, 2, "a/1", "p1", 0, 0, false);
	fx_publish(x, 2, "a/1", "p2", 0, 0, false);
	fx_publish(x, 2, "a/2", "p3", 0, 0, false);
	fx_publish(x, 2, "a/3", "p4", 0, 0, false); /* no free alias: 1 is bound again */
	fx_publish(x, 2, "a/1", "p5", 0, 0, false); /* forgotten: full again, takes 2 */
	expect_aliased(x, 0, "a/1", 1, "p1");
	expect_aliased(x, 0, "", 1, "p2");
	expect_aliased(x, 0, "a/2", 2, "p3");
	expect_aliased(x, 0, "a/3", 1, "p4");
	expect_aliased(x, 0, "a/1", 2, "p5");
	fx_expect_none(x, 0);
	for (int k = 0; k < 5; k++) /* the client that allows none gets every topic in full */
		fx_expect_publish(x, 1,
		    k == 2       ? "a/2"
			: k == 3 ? "a/3"
				 : "a/1",
		    (const char *[]){ "p1", "p2", "p3", "p4", "p5" }[k], 0);

	/* held for lack of room: the alias it would bind is not known until it is sent */
	x->f[0].space = 0;
	fx_publish(x, 2, "a/4", "p6", 0, 0, false);
	fx_expect_none(x, 0);
	x->f[0].space = FX_OUT;
	broker_conn_writable(x->f[0].c, x->now);
	expect_aliased(x, 0, "a/4", 1, "p6");
	fx_publish(x, 2, "a/4", "p7", 0, 0, false);
	expect_aliased(x, 0, "", 1, "p7");
	fx_publish(x, 2, "a/1", "p8", 0, 0, false);
	expect_aliased(x, 0, "", 2, "p8");
	fx_free(x);
}

static void
test_no_local_and_sub_id(void **state)
{
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE }, r;
	struct mqtt_subscription s = { .filter = MQTT_STR("t"), .qos = 0, .no_local = true };
	uint32_t id = 42;
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "self", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "other", true, 60, NULL);
	p.subscribe.packet_id = 1;
	p.subscribe.subs = &s;
	p.subscribe.n_subs = 1;
	p.subscribe.props.sub_ids = &id;
	p.subscribe.props.n_sub_ids = 1;
	fx_send(x, 0, &p);
	fx_expect_type(x, 0, MQTT_SUBACK, 0);
	fx_publish(x, 0, "t", "mine", 0, 0, false);
	fx_expect_none(x, 0);
	fx_publish(x, 1, "t", "theirs", 0, 0, false);
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.publish.props.n_sub_ids, 1);
	assert_int_equal(r.publish.props.sub_ids[0], 42);
	fx_free(x);
}

static void
test_message_expiry(void **state)
{
	struct mqtt_props props = { 0 };
	struct mqtt_packet p = { .type = MQTT_PUBLISH };
	struct fx *x = fx_new(NULL);

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 300);
	fx_connect(x, 0, MQTT_V5, "keep", false, 60, &props);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_close(x, 0);
	p.publish = (struct mqtt_publish){ .topic = MQTT_STR("t"),
		.qos = 1,
		.packet_id = 1,
		.payload = (const uint8_t *)"short",
		.payload_len = 5 };
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 2);
	fx_send(x, 1, &p);
	p.publish.packet_id = 2;
	p.publish.payload = (const uint8_t *)"long!";
	p.publish.props.v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u = 60;
	fx_send(x, 1, &p);
	fx_tick(x, 3000);
	fx_connect(x, 0, MQTT_V5, "keep", false, 60, &props);
	struct mqtt_publish got = fx_expect_publish(x, 0, "t", "long!", 1);
	assert_int_equal(got.props.v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u, 57);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_MSG_EXPIRED), 1);
	fx_free(x);
}

static void
test_session_expiry(void **state)
{
	struct mqtt_props props = { 0 };
	struct fx *x = fx_new(NULL);

	(void)state;
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 10);
	fx_connect(x, 0, MQTT_V5, "brief", false, 60, &props);
	fx_close(x, 0);
	fx_tick(x, 5000);
	assert_true(fx_connect(x, 0, MQTT_V5, "brief", false, 60, &props));
	fx_close(x, 0);
	fx_tick(x, 10000);
	assert_int_equal(fx_count(x, BROKER_C_SESSION_EXPIRED), 1);
	assert_false(fx_connect(x, 0, MQTT_V5, "brief", false, 60, &props));
	fx_free(x);
}

static void
test_segmented_input(void **state)
{
	static const uint8_t pkt[] = { 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00,
		0x3C, 0x00, 0x01, 'a', 0xC0, 0x00 /* PINGREQ */ };
	struct mqtt_iov segs[3] = { { pkt, 3 }, { pkt + 3, 9 }, { pkt + 12, 4 } };
	struct fx *x = fx_new(NULL);
	size_t used;

	(void)state;
	fx_open(x, 0, MQTT_V311);
	/* the CONNECT spans three segments; the PINGREQ is one byte short */
	assert_int_equal(broker_conn_input(x->f[0].c, segs, 3, &used, x->now), 0);
	assert_int_equal(used, 15);
	fx_expect_type(x, 0, MQTT_CONNACK, 0);
	fx_expect_none(x, 0);
	assert_int_equal(
	    broker_conn_input(x->f[0].c, (struct mqtt_iov[]){ { pkt + 15, 2 } }, 1, &used, x->now),
	    0);
	assert_int_equal(used, 2);
	fx_expect_type(x, 0, MQTT_PINGRESP, 0);
	fx_free(x);
}

static void
test_sys_topics(void **state)
{
	struct broker_config cfg;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 1000;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V311, "mon", true, 60, NULL);
	fx_subscribe(x, 0, "#", 0);
	fx_subscribe(x, 0, "$SYS/broker/clients/+", 0);
	fx_tick(x, 1000);
	fx_expect_publish(x, 0, "$SYS/broker/clients/connected", "1", 0); /* '#' gets no $SYS */
	fx_expect_none(x, 0);
	fx_free(x);
}

static void
test_config_check(void **state)
{
	struct broker_config cfg;
	char err[128];

	(void)state;
	broker_config_defaults(&cfg);
	assert_int_equal(broker_config_check(&cfg, err, sizeof(err)), 0);
	cfg.client_id_max = 8;
	assert_int_equal(broker_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "client_id_max"));
	broker_config_defaults(&cfg);
	cfg.receive_max = 0;
	assert_int_equal(broker_config_check(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "receive_max"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_v311),
		cmocka_unit_test(test_connect_v5_assigned_id),
		cmocka_unit_test(test_connect_bad_level),
		cmocka_unit_test(test_qos0),
		cmocka_unit_test(test_qos1_both_ways),
		cmocka_unit_test(test_qos2_both_ways),
		cmocka_unit_test(test_qos2_duplicate_suppressed),
		cmocka_unit_test(test_delivery_qos_is_min),
		cmocka_unit_test(test_offline_queue_and_dup_redelivery),
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_takeover),
		cmocka_unit_test(test_will),
		cmocka_unit_test(test_will_delay),
		cmocka_unit_test(test_redelivery_order),
		cmocka_unit_test(test_pubrel_resent_after_reconnect),
		cmocka_unit_test(test_client_max_packet_size),
		cmocka_unit_test(test_disconnect_with_will),
		cmocka_unit_test(test_idle_session_sheds_state),
		cmocka_unit_test(test_disconnect_expiry_from_zero),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_shared_prefers_online),
		cmocka_unit_test(test_retained),
		cmocka_unit_test(test_retain_handling_v5),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_shared_round_robin),
		cmocka_unit_test(test_receive_maximum),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_topic_alias),
		cmocka_unit_test(test_topic_alias_out),
		cmocka_unit_test(test_no_local_and_sub_id),
		cmocka_unit_test(test_message_expiry),
		cmocka_unit_test(test_session_expiry),
		cmocka_unit_test(test_segmented_input),
		cmocka_unit_test(test_sys_topics),
		cmocka_unit_test(test_config_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
