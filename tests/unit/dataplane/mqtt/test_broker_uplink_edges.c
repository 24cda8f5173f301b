/*
 * Unit tests of store and forward in the broker (uplink.c) at its edges: a 5.0 publisher that
 * names its durable topic through a topic alias, acknowledgements owed that only partly fit
 * when room comes back and are dropped with their connection, and durable answers for a
 * range wider than what is pending. The uplink is a fake (as in test_broker_uplink.c).
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
#include "fake_broker_uplink.h"

static int
publish_alias(struct fx *x, int i, const char *topic, uint16_t alias, uint16_t pid)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)"v";
	p.publish.payload_len = 1;
	p.publish.qos = 1;
	p.publish.packet_id = pid;
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_TOPIC_ALIAS, alias);
	return fx_send(x, i, &p);
}

/* The durable rule applies to the topic an alias stands for: the PUBLISH that binds it and
 * the one that only names the alias are both submitted, and acknowledged once durable. An
 * alias never bound, or over our maximum, is refused before the uplink sees anything. */
static void
test_alias_to_durable_topic(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sensor", true, 60, NULL);
	assert_int_equal(publish_alias(x, 0, "plant/t", 2, 1), 0);
	assert_int_equal(publish_alias(x, 0, "", 2, 2), 0);
	fx_expect_none(x, 0);
	assert_int_equal(u.n, 2);
	fx_durable(x, 1, 2, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_expect_type(x, 0, MQTT_PUBACK, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_expect_none(x, 0);
	assert_true(publish_alias(x, 0, "", 5, 3) < 0); /* never bound */
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_PROTOCOL_ERROR);
	fx_connect(x, 1, MQTT_V5, "sensor2", true, 60, NULL);
	assert_true(publish_alias(x, 1, "", (uint16_t)(x->cfg.topic_alias_max + 1), 1) < 0);
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_TOPIC_ALIAS_INVALID);
	assert_int_equal(u.n, 2);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	fx_free(x);
}

/* Owed acknowledgements go out as far as the room that came back allows, in order; those
 * still owed when the connection ends are dropped with it (the messages are durable: nothing
 * else to do). An answer for a range wider than what is pending touches only what is. */
static void
test_owed_partly_then_gone(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);
	struct mqtt_packet p;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sensor", true, 60, NULL);
	for (uint16_t pid = 1; pid <= 3; pid++)
		fx_publish(x, 0, "plant/a", "1", 1, pid, false);
	x->f[0].space = 4;
	fx_durable(x, 0, 100, 0); /* refs 1..3 are all there is */
	assert_false(fx_next(x, 0, &p));
	x->f[0].space = 12; /* room for two */
	broker_conn_writable(x->f[0].c, x->now);
	for (uint16_t pid = 1; pid <= 2; pid++) {
		assert_true(fx_next(x, 0, &p));
		assert_int_equal(p.type, MQTT_PUBACK);
		assert_int_equal(p.ack.packet_id, pid);
	}
	assert_false(fx_next(x, 0, &p));
	assert_int_equal(broker_uplink_pending(x->b), 1);
	fx_close(x, 0);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_ACKED), 2);
	fx_connect(x, 1, MQTT_V311, "next", true, 60, NULL); /* ref 4 */
	fx_publish(x, 1, "plant/b", "2", 1, 9, false);
	fx_durable(x, 4, 4, 0);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_free(x);
}

/* The ring full of messages that are durable but whose acks are owed (their publisher's send
 * buffer is full): a second publisher is held. When room comes back for some of the acks,
 * the slots they free let the held publisher go on at once. */
static void
test_owed_flush_releases_held(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "slow", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "held", true, 60, NULL);
	for (uint16_t pid = 1; pid <= 16; pid++)
		fx_publish(x, 0, "plant/a", "1", 1, pid, false);
	fx_publish(x, 1, "plant/b", "2", 1, 1, false);
	assert_true(broker_conn_held(x->f[1].c));
	x->f[0].space = 4;
	fx_durable(x, 1, 16, 0); /* all durable, every ack owed */
	assert_true(broker_conn_held(x->f[1].c));
	x->f[0].space = 12; /* room for two of them */
	broker_conn_writable(x->f[0].c, x->now);
	assert_int_equal(broker_uplink_pending(x->b), 14);
	assert_false(broker_conn_held(x->f[1].c));
	assert_true(x->f[1].wake);
	assert_int_equal(fx_refeed(x, 1), 0);
	assert_int_equal(u.n, 17);
	fx_free(x);
}

/* The uplink detached (the service stops: mqtt_uplink_stop) while acks wait. A message whose
 * durability is not known is failed: its publisher is closed unacknowledged and sends again.
 * A publisher owed the ack of a durable message is closed too: its resend is acknowledged
 * without an uplink. A publisher held for want of room goes on, acknowledged at once. Nothing
 * points at the freed ring afterwards (before: a NULL dereference at the next close or
 * writable of such a connection). */
static void
test_detach_ends_waiters(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "wait", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "owed", true, 60, NULL);
	fx_connect(x, 2, MQTT_V311, "held", true, 60, NULL);
	fx_publish(x, 0, "plant/a", "1", 1, 1, false); /* ref 1: durability not known */
	fx_publish(x, 1, "plant/b", "2", 2, 1, false); /* ref 2: durable, its PUBREC owed */
	x->f[1].space = 4;
	fx_durable(x, 2, 2, 0);
	u.room_rc = -ENOBUFS;
	fx_publish(x, 2, "plant/c", "3", 1, 1, false);
	assert_true(broker_conn_held(x->f[2].c));
	assert_int_equal(broker_uplink_pending(x->b), 2);

	broker_uplink_detach(x->b);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	assert_true(x->f[0].closed);
	assert_true(x->f[1].closed);
	fx_expect_none(x, 0); /* no PUBACK: the message may not be durable */
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_FAILED), 1);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_ACKED), 0);
	assert_false(broker_conn_held(x->f[2].c));
	assert_true(x->f[2].wake);
	assert_int_equal(fx_refeed(x, 2), 0);
	fx_expect_type(x, 2, MQTT_PUBACK, 0);
	/* the publishers come back and send again: acknowledged at once, nothing submitted */
	fx_connect(x, 3, MQTT_V311, "wait", true, 60, NULL);
	fx_publish(x, 3, "plant/a", "1", 1, 1, false);
	fx_expect_type(x, 3, MQTT_PUBACK, 0);
	fx_connect(x, 4, MQTT_V5, "owed", false, 60, NULL);
	fx_publish(x, 4, "plant/b", "2", 2, 1, false);
	fx_expect_type(x, 4, MQTT_PUBREC, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	assert_int_equal(u.n, 2);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_to_durable_topic),
		cmocka_unit_test(test_owed_partly_then_gone),
		cmocka_unit_test(test_owed_flush_releases_held),
		cmocka_unit_test(test_detach_ends_waiters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
