/*
 * Unit tests of store and forward in the broker (uplink.c, docs/broker.md): under a durable
 * rule a QoS 1/2 PUBLISH is delivered locally at once, but its PUBACK/PUBREC waits for the
 * uplink's durable answer; while the uplink cannot take more, the publisher is held (never
 * acknowledged and dropped); a failed durability closes the publisher unacknowledged; a
 * connection or session that goes away while its acks are pending breaks nothing (ASan).
 * The uplink is a fake that can fill up and refuse.
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

/* Client i sends a PUBLISH again (DUP set): fx_send's result. */
static int
publish_dup(struct fx *x, int i, const char *topic, const char *payload, uint8_t qos, uint16_t pid)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish = (struct mqtt_publish){ .topic = { topic, (uint16_t)strlen(topic) },
		.qos = qos,
		.packet_id = pid,
		.dup = true,
		.payload = (const uint8_t *)payload,
		.payload_len = (uint32_t)strlen(payload) };
	return fx_send(x, i, &p);
}

/* QoS 1: delivered to the subscriber at once, PUBACK only once durable. */
static void
test_puback_after_durable(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 64);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sensor", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "local", true, 60, NULL);
	fx_subscribe(x, 1, "plant/#", 1);
	fx_publish(x, 0, "plant/t1", "21.5", 1, 7, false);
	fx_expect_publish(x, 1, "plant/t1", "21.5", 1);
	fx_expect_none(x, 0); /* no PUBACK yet */
	assert_int_equal(u.n, 1);
	assert_int_equal(u.refs[0], 1);
	assert_int_equal(broker_uplink_pending(x->b), 1);
	fx_publish(x, 0, "other/t", "x", 1, 8, false); /* no rule: acknowledged at once */
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_durable(x, 1, 1, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_expect_none(x, 0);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_DEFERRED), 1);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_ACKED), 1);
	fx_durable(x, 1, 1, 0); /* an answer again (after a reconnect of the channel): nothing */
	fx_expect_none(x, 0);
	fx_free(x);
}

/* QoS 2: PUBREC once durable; a resend meanwhile is neither routed nor submitted again, nor
 * answered before the message is durable. */
static void
test_pubrec_after_durable(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 64);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sensor", true, 60, NULL);
	fx_publish(x, 0, "plant/q2", "a", 2, 3, false);
	fx_expect_none(x, 0);
	assert_int_equal(publish_dup(x, 0, "plant/q2", "a", 2, 3), 0);
	fx_expect_none(x, 0);
	assert_int_equal(u.n, 1);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_QOS2_WAIT), 1);
	fx_durable(x, 1, 1, 0);
	fx_expect_type(x, 0, MQTT_PUBREC, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_expect_none(x, 0);
	fx_ack(x, 0, MQTT_PUBREL, 3);
	fx_expect_type(x, 0, MQTT_PUBCOMP, 0);
	fx_free(x);
}

/* A QoS 1 retry on the same connection (DUP, a client with a retry interval) while the first's
 * PUBACK waits for durability: neither routed nor sent up again, and one PUBACK answers both.
 * Before, it was delivered and submitted again and answered again: the client, freeing the id
 * at the first PUBACK and sending its next message under it, took the second PUBACK for that
 * one's before it was durable. Without DUP it is a new message (a client reusing ids early),
 * and after the PUBACK a retry that crossed it is one too (MQTT-4.3.2-2). */
static void
test_qos1_retry_while_pending(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 64);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sensor", true, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "local", true, 60, NULL);
	fx_subscribe(x, 1, "plant/#", 1);
	fx_publish(x, 0, "plant/t1", "a", 1, 7, false);
	fx_expect_publish(x, 1, "plant/t1", "a", 1);
	assert_int_equal(publish_dup(x, 0, "plant/t1", "a", 1, 7), 0);
	fx_expect_none(x, 1); /* not delivered again */
	fx_expect_none(x, 0);
	assert_int_equal(u.n, 1); /* nor sent up again */
	assert_int_equal(fx_count(x, BROKER_C_QOS1_DUP), 1);
	fx_durable(x, 1, 1, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_expect_none(x, 0); /* one PUBACK */

	/* a retry that crossed the PUBACK: new (MQTT-4.3.2-2) */
	assert_int_equal(publish_dup(x, 0, "plant/t1", "a", 1, 7), 0);
	fx_expect_publish(x, 1, "plant/t1", "a", 1);
	assert_int_equal(u.n, 2);
	fx_durable(x, 2, 2, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);

	fx_publish(x, 0, "plant/t1", "b", 1, 8, false);
	fx_publish(x, 0, "plant/t1", "c", 1, 8, false); /* no DUP: a new message */
	fx_expect_publish(x, 1, "plant/t1", "b", 1);
	fx_expect_publish(x, 1, "plant/t1", "c", 1);
	assert_int_equal(u.n, 4);
	fx_durable(x, 3, 4, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_QOS1_DUP), 1);
	fx_free(x);
}

/* The channel down or full: the publisher is held, its PUBLISH left unconsumed (nothing acked,
 * nothing lost); ready lets it go on. The ring's own bound holds the same way. */
static void
test_hold_while_full(void **state)
{
	struct fake_up u = { .room_rc = -ENOTCONN };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sensor", true, 60, NULL);
	fx_publish(x, 0, "plant/a", "1", 1, 1, false);
	assert_true(broker_conn_held(x->f[0].c));
	assert_true(x->f[0].in_len > 0);
	assert_int_equal(u.n, 0);
	assert_int_equal(fx_count(x, BROKER_C_HOLD_UPLINK), 1);
	fx_publish(x, 0, "bulk/b", "q0", 0, 0, false); /* queued behind it, with the transport */
	u.room_rc = 0;
	broker_uplink_ready(x->b, x->now);
	assert_true(x->f[0].wake);
	assert_int_equal(fx_refeed(x, 0), 0);
	assert_int_equal(x->f[0].in_len, 0);
	assert_int_equal(u.n, 2);
	assert_int_equal(u.best, 1);
	/* the ring's bound: 16 awaiting, the 17th holds until one is answered */
	for (uint16_t pid = 2; pid <= 16; pid++)
		fx_publish(x, 0, "plant/a", "1", 1, pid, false);
	assert_int_equal(broker_uplink_pending(x->b), 16);
	fx_publish(x, 0, "plant/a", "17", 1, 17, false);
	assert_true(broker_conn_held(x->f[0].c));
	fx_durable(x, 1, 1, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	assert_false(broker_conn_held(x->f[0].c));
	assert_int_equal(fx_refeed(x, 0), 0);
	assert_int_equal(broker_uplink_pending(x->b), 16);
	fx_durable(x, 2, 17, 0);
	for (int i = 2; i <= 17; i++)
		fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* QoS 0 and best-effort rules: up when there is room, dropped and counted when not, never held. */
static void
test_best_effort(void **state)
{
	struct fake_up u = { .room_rc = -ENOBUFS };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sensor", true, 60, NULL);
	fx_publish(x, 0, "plant/q0", "1", 0, 0, false);
	fx_publish(x, 0, "bulk/q1", "1", 1, 1, false);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	assert_false(broker_conn_held(x->f[0].c));
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_BEST_EFFORT_DROP), 2);
	u.room_rc = 0;
	fx_publish(x, 0, "plant/q0", "1", 0, 0, false);
	assert_int_equal(u.best, 1);
	{ /* too large for the channel: closed unacknowledged (0x95 in 5.0) */
		static char big[1200];
		struct mqtt_packet p = { .type = MQTT_PUBLISH };

		memset(big, 'x', sizeof(big) - 1);
		p.publish = (struct mqtt_publish){ .topic = { "plant/big", 9 },
			.qos = 1,
			.packet_id = 2,
			.payload = (const uint8_t *)big,
			.payload_len = 1199 };
		assert_true(fx_send(x, 0, &p) < 0);
		assert_int_equal(fx_count(x, BROKER_C_UPLINK_TOO_LARGE), 1);
		fx_expect_none(x, 0);
	}
	fx_free(x);
}

/* Not durable: no ack; the publisher is closed (5.0: DISCONNECT 0x80) to send it again; a QoS 2
 * id leaves the table of its persistent session, so the resend is taken (and submitted) anew. */
static void
test_durable_failed(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL);
	fx_publish(x, 0, "plant/q2", "a", 2, 9, false);
	fx_durable(x, 1, 1, -EIO);
	fx_expect_none(x, 0);
	assert_true(x->f[0].closed);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_FAILED), 1);
	assert_true(fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL));
	fx_publish(x, 0, "plant/q2", "a", 2, 9, false);
	assert_int_equal(u.n, 2); /* taken again */
	fx_durable(x, 2, 2, 0);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	/* 5.0 is told why */
	fx_connect(x, 1, MQTT_V5, "five", true, 60, NULL);
	fx_publish(x, 1, "plant/q1", "a", 1, 1, false);
	fx_durable(x, 3, 3, -EIO);
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_UNSPECIFIED_ERROR);
	/* the channel refuses after admitting (it went away): closed unacknowledged */
	fx_connect(x, 1, MQTT_V5, "five", true, 60, NULL);
	u.submit_rc = -ENOTCONN;
	{
		struct mqtt_packet p = { .type = MQTT_PUBLISH };

		p.publish = (struct mqtt_publish){ .topic = { "plant/q1", 8 },
			.qos = 1,
			.packet_id = 2,
			.payload = (const uint8_t *)"a",
			.payload_len = 1 };
		assert_true(fx_send(x, 1, &p) < 0);
	}
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_UNSPECIFIED_ERROR);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_FAILED), 3);
	fx_free(x);
}

/* A connection that closes while its acks wait, and a session that goes away: the answers
 * that come later find nothing to send to (no use after free under ASan). A QoS 2 resend on
 * the new connection of a persistent session gets its PUBREC there, once durable. */
static void
test_closed_while_pending(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "gone", true, 60, NULL);
	fx_publish(x, 0, "plant/a", "1", 1, 1, false);
	fx_publish(x, 0, "plant/b", "2", 2, 2, false);
	fx_close(x, 0); /* clean session: the session goes too */
	fx_connect(x, 1, MQTT_V311, "other", true, 60, NULL);
	fx_durable(x, 1, 2, 0);
	fx_expect_none(x, 1);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_ORPHAN), 2);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	/* persistent session: QoS 2 resent after a reconnect */
	fx_connect(x, 2, MQTT_V311, "keep", false, 60, NULL);
	fx_publish(x, 2, "plant/c", "3", 2, 5, false);
	fx_close(x, 2);
	assert_true(fx_connect(x, 2, MQTT_V311, "keep", false, 60, NULL));
	fx_publish(x, 2, "plant/c", "3", 2, 5, false);
	fx_expect_none(x, 2);
	assert_int_equal(u.n, 3); /* not submitted twice */
	fx_durable(x, 3, 3, 0);
	fx_expect_type(x, 2, MQTT_PUBREC, 0);
	/* the answer comes after the session was discarded (clean start elsewhere) */
	fx_publish(x, 2, "plant/d", "4", 2, 6, false);
	fx_close(x, 2);
	fx_connect(x, 3, MQTT_V311, "keep", true, 60, NULL);
	fx_durable(x, 4, 4, -EIO);
	fx_expect_none(x, 3);
	fx_free(x); /* and one pending at destroy */
}

/* Durable acks that do not fit the send buffer are owed, in order, until it has room. */
static void
test_owed_acks(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);
	struct mqtt_packet p;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "sensor", true, 60, NULL);
	for (uint16_t pid = 1; pid <= 3; pid++)
		fx_publish(x, 0, "plant/a", "1", 1, pid, false);
	x->f[0].space = 4;
	fx_durable(x, 1, 3, 0);
	assert_false(fx_next(x, 0, &p)); /* all three owed */
	fx_read_all(x, 0);
	for (uint16_t pid = 1; pid <= 3; pid++) {
		assert_true(fx_next(x, 0, &p));
		assert_int_equal(p.type, MQTT_PUBACK);
		assert_int_equal(p.ack.packet_id, pid);
	}
	assert_int_equal(broker_uplink_pending(x->b), 0);
	fx_free(x);
}

/* A publisher that stops reading: the acks it is owed find no room and their entries hold the
 * ring's head, so the ring filled behind them with another publisher's and held that one too
 * (at max_pending, 16 here), for as long as the first lived (keepalive 0: for good). After
 * stall_timeout without progress it is closed (ACK_STALL_KILL); the other goes on. A reader
 * that takes an ack now and then restarts the clock. */
static void
test_owed_acks_stall(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);
	uint64_t ref = 1;
	struct mqtt_packet p;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "stuck", true, 0, NULL);
	fx_connect(x, 1, MQTT_V311, "other", true, 60, NULL);
	fx_publish(x, 0, "plant/a", "1", 1, 1, false);
	fx_publish(x, 0, "plant/a", "2", 1, 2, false);
	x->f[0].space = 4;
	fx_durable(x, ref, ref + 1, 0);
	ref += 2;
	assert_false(fx_next(x, 0, &p)); /* both owed */
	for (uint16_t pid = 1; pid <= 14; pid++, ref++) {
		fx_publish(x, 1, "plant/b", "1", 1, pid, false);
		fx_durable(x, ref, ref, 0);
		fx_expect_type(x, 1, MQTT_PUBACK, 0);
	}
	fx_publish(x, 1, "plant/b", "1", 1, 15, false);
	assert_true(broker_conn_held(x->f[1].c)); /* the ring is full behind "stuck" */
	fx_tick(x, 20000);
	assert_false(x->f[0].closed);
	x->f[0].space = 8; /* it read a little: room for one ack, progress */
	broker_conn_writable(x->f[0].c, x->now);
	assert_true(fx_next(x, 0, &p));
	assert_int_equal(p.ack.packet_id, 1);
	assert_false(fx_next(x, 0, &p));           /* the second has no room */
	assert_false(broker_conn_held(x->f[1].c)); /* one entry freed: the other's 15th goes in */
	assert_int_equal(fx_refeed(x, 1), 0);
	fx_publish(x, 1, "plant/b", "1", 1, 16, false);
	assert_true(broker_conn_held(x->f[1].c)); /* and its 16th waits again */
	fx_tick(x, 20000);
	assert_int_equal(fx_count(x, BROKER_C_ACK_STALL_KILL), 0);
	fx_tick(x, 11000); /* 31 s since it took the last */
	assert_int_equal(fx_count(x, BROKER_C_ACK_STALL_KILL), 1);
	assert_true(x->f[0].closed);
	assert_false(broker_conn_held(x->f[1].c));
	assert_int_equal(fx_refeed(x, 1), 0);
	fx_durable(x, ref, ref + 1, 0);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	fx_free(x);
}

/* A QoS 2 resend (DUP) while other sessions' entries fill the ring: found among them while it
 * waits (not sent up again, its PUBREC when durable), answered at once after; the look covers
 * the sender's own entries (a count per session), not every entry of the ring per resend. */
static void
test_qos2_resend_among_others(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 64);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "a", false, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "b", true, 60, NULL);
	fx_publish(x, 1, "plant/b", "0", 2, 1, false); /* ref 1 */
	fx_publish(x, 0, "plant/a", "a", 2, 3, false); /* ref 2 */
	for (uint16_t pid = 2; pid <= 21; pid++)       /* refs 3..22 */
		fx_publish(x, 1, "plant/b", "1", 2, pid, false);
	assert_int_equal(publish_dup(x, 0, "plant/a", "a", 2, 3), 0);
	assert_int_equal(u.n, 22); /* not sent up again */
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_QOS2_WAIT), 1);
	fx_expect_none(x, 0);
	fx_durable(x, 2, 2, 0);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	fx_expect_none(x, 0);
	assert_int_equal(
	    publish_dup(x, 0, "plant/a", "a", 2, 3), 0); /* after its PUBREC: at once */
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_QOS2_WAIT), 1);
	assert_int_equal(u.n, 22);
	fx_close(x, 1); /* b's clean session goes, its entries let go of it */
	assert_int_equal(publish_dup(x, 0, "plant/a", "a", 2, 3), 0);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	fx_durable(x, 1, 22, 0);
	fx_ack(x, 0, MQTT_PUBREL, 3);
	fx_expect_type(x, 0, MQTT_PUBCOMP, 0);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_puback_after_durable),
		cmocka_unit_test(test_pubrec_after_durable),
		cmocka_unit_test(test_qos1_retry_while_pending),
		cmocka_unit_test(test_hold_while_full),
		cmocka_unit_test(test_best_effort),
		cmocka_unit_test(test_durable_failed),
		cmocka_unit_test(test_closed_while_pending),
		cmocka_unit_test(test_owed_acks),
		cmocka_unit_test(test_owed_acks_stall),
		cmocka_unit_test(test_qos2_resend_among_others),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
