/*
 * test_broker_sys.c: the broker's own settings at run time: a live reload
 * (broker_reconfigure), and $SYS with several instances. Each publishes its own figures under
 * $SYS/broker/lcore/<n>/; the first sums every instance's (the board) under Mosquitto's names, so
 * a dashboard on $SYS/broker/clients/connected shows the whole broker however many workers run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker_conf.h"
#include "broker_fixture.h"

/* A reload lowers the connection limit and stops $SYS on a running instance; a setting that
 * sizes allocations (max_inflight) keeps its value; the same settings again change nothing. */
static void
test_reconfigure(void **state)
{
	struct broker_config cfg, next;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 1000;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V311, "mon", true, 60, NULL);
	fx_subscribe(x, 0, "$SYS/broker/clients/connected", 0);
	next = cfg;
	next.max_conns = 2;
	next.sys_interval_ms = 0;
	next.max_inflight = (uint16_t)(cfg.max_inflight * 2);
	assert_int_equal(broker_reconfigure(x->b, &next, x->now), 2);
	assert_int_equal(fx_count(x, BROKER_C_CONFIG_APPLIED), 1);
	fx_tick(x, 5000);
	fx_expect_none(x, 0); /* no $SYS any more */
	fx_connect(x, 1, MQTT_V311, "two", true, 60, NULL);
	/* the third connection: over the new limit, refused */
	assert_null(broker_conn_open(x->b, &x->f[2], x->now));
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_CONNS), 1);
	assert_int_equal(broker_reconfigure(x->b, &next, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_CONFIG_APPLIED), 1);
	/* $SYS back, counted from the reload */
	next.sys_interval_ms = 1000;
	assert_int_equal(broker_reconfigure(x->b, &next, x->now), 1);
	fx_tick(x, 1000);
	fx_expect_publish(x, 0, "$SYS/broker/clients/connected", "2", 0);
	fx_free(x);
}

static struct fx *
sys_instance(struct broker_sys_board *board, uint32_t self)
{
	struct broker_config cfg;
	struct fx *x;

	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 1000;
	x = fx_new(&cfg);
	broker_sys_attach(x->b, board, self);
	return x;
}

/* The totals are the sum of the instances' last figures; each instance's own stay per lcore. */
static void
test_sys_summed(void **state)
{
	struct broker_sys_board *board = broker_sys_board_new(2);
	struct fx *a, *b;

	(void)state;
	assert_non_null(board);
	a = sys_instance(board, 0);
	b = sys_instance(board, 1);
	fx_connect(a, 0, MQTT_V311, "mon", true, 60, NULL);
	fx_subscribe(a, 0, "$SYS/broker/clients/connected", 0);
	fx_subscribe(a, 0, "$SYS/broker/messages/received", 0);
	fx_subscribe(a, 0, "$SYS/broker/lcore/0/clients/connected", 0);
	fx_connect(b, 1, MQTT_V311, "s1", true, 60, NULL);
	fx_connect(b, 2, MQTT_V5, "s2", true, 60, NULL);
	fx_publish(b, 1, "plant/t", "1", 0, 0, false);
	fx_publish(b, 2, "plant/t", "2", 0, 0, false);
	fx_publish(a, 0, "plant/t", "3", 0, 0, false);
	/* b's interval first, then a's: a sums b's figures with its own */
	fx_tick(b, 1000);
	fx_tick(a, 1000);
	fx_expect_publish(a, 0, "$SYS/broker/lcore/0/clients/connected", "1", 0);
	fx_expect_publish(a, 0, "$SYS/broker/clients/connected", "3", 0);
	fx_expect_publish(a, 0, "$SYS/broker/messages/received", "3", 0);
	fx_expect_none(a, 0);
	/* the next interval follows what changed on b */
	fx_close(b, 2);
	fx_tick(b, 1000);
	fx_tick(a, 1000);
	fx_expect_publish(a, 0, "$SYS/broker/lcore/0/clients/connected", "1", 0);
	fx_expect_publish(a, 0, "$SYS/broker/clients/connected", "2", 0);
	fx_expect_publish(a, 0, "$SYS/broker/messages/received", "3", 0);
	fx_free(a);
	fx_free(b);
	broker_sys_board_free(board);
}

/* Only the first instance publishes the totals: the second's clients see its own figures and
 * (through the cross-lcore fan-out, not here) the first's totals, never a partial sum. */
static void
test_sys_second_no_totals(void **state)
{
	struct broker_sys_board *board = broker_sys_board_new(2);
	struct fx *b;

	(void)state;
	b = sys_instance(board, 1);
	fx_connect(b, 0, MQTT_V311, "mon", true, 60, NULL);
	fx_subscribe(b, 0, "$SYS/broker/#", 0);
	fx_tick(b, 1000);
	for (;;) {
		struct mqtt_packet p;

		if (!fx_next(b, 0, &p))
			break;
		assert_int_equal(p.type, MQTT_PUBLISH);
		assert_true(p.publish.topic.len > 20);
		assert_memory_equal(p.publish.topic.s, "$SYS/broker/lcore/1/", 20);
	}
	fx_free(b);
	broker_sys_board_free(board);
}

/* Alone (no board, one instance): Mosquitto's names carry the instance's own figures. */
static void
test_sys_alone(void **state)
{
	struct broker_config cfg;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 1000;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V311, "mon", true, 60, NULL);
	fx_subscribe(x, 0, "$SYS/broker/clients/connected", 0);
	fx_tick(x, 1000);
	fx_expect_publish(x, 0, "$SYS/broker/clients/connected", "1", 0);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* PUBLISHes are counted by QoS too (the demo's view shows the rates). */
static void
test_pub_rx_by_qos(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "p", true, 60, NULL);
	fx_publish(x, 0, "t", "a", 0, 0, false);
	fx_publish(x, 0, "t", "b", 1, 1, false);
	fx_expect_type(x, 0, MQTT_PUBACK, 0x10); /* no matching subscribers (5.0) */
	fx_publish(x, 0, "t", "c", 2, 2, false);
	fx_publish(x, 0, "t", "d", 2, 3, false);
	assert_int_equal(fx_count(x, BROKER_C_PUB_RX), 4);
	assert_int_equal(fx_count(x, BROKER_C_PUB_RX_QOS0), 1);
	assert_int_equal(fx_count(x, BROKER_C_PUB_RX_QOS1), 1);
	assert_int_equal(fx_count(x, BROKER_C_PUB_RX_QOS2), 2);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reconfigure),
		cmocka_unit_test(test_pub_rx_by_qos),
		cmocka_unit_test(test_sys_summed),
		cmocka_unit_test(test_sys_second_no_totals),
		cmocka_unit_test(test_sys_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
