/*
 * Unit tests for the broker's memory safety when sends fail, and its backpressure
 * (docs/broker.md): a send that fails closes the connection through the transport, once; an
 * answer that does not fit the send buffer holds the client's input until it does; a
 * subscriber at its queue limit holds its publishers (queue_full hold) until it drains or
 * stalls; a full cross-lcore queue holds the publisher and the message waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

static uint32_t
gauge_conns(struct fx *x)
{
	struct broker_gauges g;

	broker_gauges_get(x->b, &g);
	return g.conns;
}

/* A 5.0 client whose send buffer is full times out: the DISCONNECT 0x8D cannot be sent, and
 * the close must not run twice (it used to re-enter broker_conn_kill through broker_conn_send). */
static void
test_kill_with_full_buffer(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "half-open", true, 2, NULL);
	fx_connect(x, 1, MQTT_V5, "other", true, 0, NULL);
	x->f[0].space = 0;
	fx_tick(x, 3100);
	assert_true(x->f[0].closed);
	assert_null(x->f[0].c);
	assert_int_equal(fx_count(x, BROKER_C_KEEPALIVE_TIMEOUT), 1);
	assert_int_equal(gauge_conns(x), 1);
	fx_publish(x, 1, "still", "alive", 1, 1, false); /* the list of connections is whole */
	fx_expect_type(x, 1, MQTT_PUBACK, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_close(x, 1);
	assert_int_equal(gauge_conns(x), 0);
	fx_free(x);
}

/* The same through a takeover: the old connection's DISCONNECT 0x8E does not fit. */
static void
test_takeover_with_full_buffer(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "same", true, 60, NULL);
	x->f[0].space = 0;
	fx_connect(x, 1, MQTT_V5, "same", true, 60, NULL);
	assert_true(x->f[0].closed);
	assert_int_equal(gauge_conns(x), 1);
	fx_close(x, 1);
	assert_int_equal(gauge_conns(x), 0);
	fx_free(x);
}

/* A send the transport refuses ends the connection through ops->close: the transport
 * forgets it (it used to be freed with the transport still pointing at it). */
static void
test_send_fail_closes_transport(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V311, "c", true, 60, NULL);
	x->f[0].fail_next = 1;
	assert_true(fx_send(x, 0, &(struct mqtt_packet){ .type = MQTT_PINGREQ }) < 0);
	assert_true(x->f[0].closed);
	assert_null(x->f[0].c);
	assert_int_equal(fx_count(x, BROKER_C_SEND_FAIL), 1);
	assert_int_equal(gauge_conns(x), 0);
	fx_open(x, 1, MQTT_V311); /* the gauge did not wrap: connections are still accepted */
	assert_int_equal(gauge_conns(x), 1);
	fx_close(x, 1);
	fx_free(x);
}

/* A QoS 1 flood from a client that does not read: each PUBACK that does not fit holds its
 * input (unconsumed, counted) until it reads; none is lost and the connection stays open. */
static void
test_puback_waits_for_room(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_packet p;
	int acks = 0;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "flood", true, 60, NULL);
	x->f[0].space = 24; /* a few PUBACKs past the room kept for answers */
	for (uint16_t pid = 1; pid <= 100; pid++) {
		struct mqtt_packet pub = { .type = MQTT_PUBLISH };
		uint8_t buf[64];
		int len;

		pub.publish.topic = (struct mqtt_str){ "t", 1 };
		pub.publish.qos = 1;
		pub.publish.packet_id = pid;
		len = mqtt_encode(buf, sizeof(buf), MQTT_V311, &pub);
		assert_int_equal(fx_feed(x, 0, buf, (size_t)len), 0);
		if (x->f[0].in_len > 0) { /* held: nothing lost, nothing answered past the room */
			assert_true(broker_conn_held(x->f[0].c));
			while (fx_next(x, 0, &p)) {
				assert_int_equal(p.type, MQTT_PUBACK);
				acks++;
			}
			fx_read_all(x, 0);
			assert_true(x->f[0].wake);
			x->f[0].space = 24;
			fx_refeed(x, 0);
		}
	}
	while (fx_next(x, 0, &p)) {
		assert_int_equal(p.type, MQTT_PUBACK);
		acks++;
	}
	assert_int_equal(acks, 100);
	assert_false(x->f[0].closed);
	assert_true(fx_count(x, BROKER_C_HOLD_ACK_ROOM) > 0);
	fx_free(x);
}

static struct fx *
fx_queue(uint8_t policy, uint32_t max_queue)
{
	struct broker_config cfg;

	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_queue = max_queue;
	cfg.max_inflight = 1;
	cfg.queue_full = policy;
	cfg.stall_timeout_ms = 5000;
	return fx_new(&cfg);
}

/* Publishes on 1 until its input is held; returns how many were accepted (PUBACKed). */
static int
publish_until_held(struct fx *x, int n)
{
	int acked = 0;

	for (int k = 0; k < n && !broker_conn_held(x->f[1].c); k++) {
		char pl[16];

		snprintf(pl, sizeof(pl), "%d", k);
		fx_publish(x, 1, "t", pl, 1, (uint16_t)(k + 1), false);
		fx_expect_type(x, 1, MQTT_PUBACK, 0);
		acked++;
	}
	return acked;
}

/* queue_full hold: the subscriber's queue at its limit holds the publisher, and every message
 * acknowledged reaches the subscriber, in order, as it acknowledges. */
static void
test_queue_full_holds_publisher(void **state)
{
	struct fx *x = fx_queue(BROKER_QUEUE_HOLD, 4);
	struct mqtt_packet p;
	int acked, got = 0;

	(void)state;
	fx_connect(x, 0, MQTT_V311, "slow", true, 0, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 0, NULL);
	fx_subscribe(x, 0, "t", 1);
	acked = publish_until_held(x, 50);
	assert_true(broker_conn_held(x->f[1].c));
	assert_int_equal(acked, 1 + 4 + 1); /* inflight, the queue, one over it */
	assert_int_equal(fx_count(x, BROKER_C_HOLD_SUB_QUEUE), 1);
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_QUEUE), 0);
	assert_true(broker_xlcore_paused(x->b));
	while (fx_next(x, 0, &p)) {
		char want[16];

		assert_int_equal(p.type, MQTT_PUBLISH);
		snprintf(want, sizeof(want), "%d", got++);
		assert_memory_equal(p.publish.payload, want, strlen(want));
		fx_ack(x, 0, MQTT_PUBACK, p.publish.packet_id);
	}
	assert_int_equal(got, acked);
	assert_true(x->f[1].wake); /* the publisher reads again */
	assert_false(broker_conn_held(x->f[1].c));
	assert_false(broker_xlcore_paused(x->b));
	fx_free(x);
}

/* A held subscriber that makes no progress is disconnected after stall_timeout (0x97,
 * counted), and its publishers go on. */
static void
test_stalled_subscriber_disconnected(void **state)
{
	struct fx *x = fx_queue(BROKER_QUEUE_HOLD, 4);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "stuck", true, 0, NULL);
	fx_connect(x, 1, MQTT_V311, "pub", true, 0, NULL);
	fx_subscribe(x, 0, "t", 1);
	publish_until_held(x, 50);
	fx_tick(x, 1000);
	assert_false(x->f[0].closed);
	fx_tick(x, 5000);
	assert_true(x->f[0].closed);
	assert_int_equal(x->f[0].close_reason, MQTT_RC_QUOTA_EXCEEDED);
	assert_int_equal(fx_count(x, BROKER_C_STALL_KILL), 1);
	assert_true(x->f[1].wake);
	assert_false(broker_conn_held(x->f[1].c));
	fx_free(x);
}

/* drop-new keeps the old behaviour, counted; drop-oldest keeps the newest; QoS 0 is dropped
 * at the limit whatever the policy, counted apart. The publisher is never held. */
static void
test_queue_full_drop_policies(void **state)
{
	(void)state;
	for (int pol = BROKER_QUEUE_DROP_OLDEST; pol <= BROKER_QUEUE_DROP_NEW; pol++) {
		struct fx *x = fx_queue((uint8_t)pol, 2);

		fx_connect(x, 0, MQTT_V311, "slow", true, 0, NULL);
		fx_connect(x, 1, MQTT_V311, "pub", true, 0, NULL);
		fx_subscribe(x, 0, "t", 1);
		assert_int_equal(publish_until_held(x, 6), 6);
		fx_publish(x, 1, "t", "q0", 0, 0, false);
		assert_int_equal(fx_count(x, BROKER_C_LIMIT_QUEUE), 3);
		assert_int_equal(fx_count(x, BROKER_C_LIMIT_QUEUE_QOS0), 1);
		fx_expect_publish(x, 0, "t", "0", 1);
		fx_ack(x, 0, MQTT_PUBACK, 1);
		fx_expect_publish(x, 0, "t", pol == BROKER_QUEUE_DROP_NEW ? "1" : "4", 1);
		fx_free(x);
	}
}

/* Two instances joined by queues of XQCAP (broker_fixture.h). */
#define XQCAP 2

/* QoS 1 copies for another lcore whose queue is full are kept and the publisher is held, not
 * dropped after their PUBACK: all arrive, in order, once the queue has room. */
static void
test_xlcore_full_holds_publisher(void **state)
{
	struct fx *x[2];
	struct fx_xq q;
	struct mqtt_packet p;
	int got = 0;

	(void)state;
	fx_xq_pair(&q, x, XQCAP, NULL);
	fx_connect(x[1], 0, MQTT_V311, "far", true, 0, NULL);
	fx_subscribe(x[1], 0, "t", 1);
	fx_connect(x[0], 1, MQTT_V311, "pub", true, 0, NULL);
	fx_xq_pump(&q, x);
	fx_xq_pump(&q, x);
	for (int k = 0; k < 10; k++) {
		char pl[16];

		snprintf(pl, sizeof(pl), "%d", k);
		if (broker_conn_held(x[0]->f[1].c)) {
			assert_true(fx_count(x[0], BROKER_C_HOLD_XLCORE) > 0);
			fx_xq_pump(&q, x);
		}
		fx_publish(x[0], 1, "t", pl, 1, (uint16_t)(k + 1), false);
	}
	for (int k = 0; k < 10; k++)
		fx_xq_pump(&q, x);
	while (fx_next(x[1], 0, &p)) {
		char want[16];

		assert_int_equal(p.type, MQTT_PUBLISH);
		snprintf(want, sizeof(want), "%d", got++);
		assert_memory_equal(p.publish.payload, want, strlen(want));
		fx_ack(x[1], 0, MQTT_PUBACK, p.publish.packet_id);
		fx_xq_pump(&q, x);
	}
	assert_int_equal(got, 10);
	assert_int_equal(fx_count(x[0], BROKER_C_XLCORE_DROP), 0);
	assert_true(fx_count(x[0], BROKER_C_XLCORE_RETRY) > 0);
	fx_xq_free(&q, x);
}

static void
fx_subscribe_any(struct fx *x, int i, const char *filter, uint8_t qos)
{
	struct mqtt_subscription sub = { .filter = { filter, (uint16_t)strlen(filter) },
		.qos = qos };
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE };

	p.subscribe.packet_id = 9;
	p.subscribe.subs = &sub;
	p.subscribe.n_subs = 1;
	fx_send(x, i, &p);
}

/* Sends that fail at random: every connection either stays open or is closed through the
 * transport, once; the gauge follows. */
static void
test_random_send_failures(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_seed(14);
	for (int round = 0; round < 200; round++) {
		int i = round % FX_CONNS;
		char id[8];

		if (x->f[i].c == NULL) {
			struct mqtt_packet p = { .type = MQTT_CONNECT };

			snprintf(id, sizeof(id), "c%d", i);
			fx_open(x, i, round % 2 ? MQTT_V5 : MQTT_V311);
			x->f[i].fail_pct = 20;
			p.connect.version = x->f[i].version;
			p.connect.clean_start = true;
			p.connect.keepalive_s = 1;
			p.connect.client_id = (struct mqtt_str){ id, (uint16_t)strlen(id) };
			if (fx_send(x, i, &p) == 0 && x->f[i].c != NULL)
				fx_subscribe_any(x, i, "#", 1);
			continue;
		}
		struct mqtt_packet pub = { .type = MQTT_PUBLISH };

		pub.publish.topic = (struct mqtt_str){ "t", 1 };
		pub.publish.qos = (uint8_t)(round % 3);
		pub.publish.packet_id = pub.publish.qos ? (uint16_t)(round + 1) : 0;
		fx_send(x, i, &pub);
		if (round % 17 == 0)
			fx_tick(x, 700);
		uint32_t open = 0;

		for (int k = 0; k < FX_CONNS; k++)
			if (x->f[k].c != NULL)
				open++;
		assert_int_equal(gauge_conns(x), open);
	}
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_with_full_buffer),
		cmocka_unit_test(test_takeover_with_full_buffer),
		cmocka_unit_test(test_send_fail_closes_transport),
		cmocka_unit_test(test_puback_waits_for_room),
		cmocka_unit_test(test_queue_full_holds_publisher),
		cmocka_unit_test(test_stalled_subscriber_disconnected),
		cmocka_unit_test(test_queue_full_drop_policies),
		cmocka_unit_test(test_random_send_failures),
		cmocka_unit_test(test_xlcore_full_holds_publisher),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
