/*
 * Unit tests for the broker's cross-lcore fan-out (dataplane/mqtt/xlcore.c): two broker
 * instances joined by bounded queues standing in for the dataplane's rte_rings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

#define QCAP 4

struct xq {
	struct broker_xmsg *m[2][QCAP];
	int n[2];
};

static bool post(void *xctx, uint32_t dst, struct broker_xmsg *m)
{
	struct xq *q = xctx;

	if (q->n[dst] == QCAP)
		return false;
	q->m[dst][q->n[dst]++] = m;
	return true;
}

static const struct broker_xlcore_ops xops = { .post = post };

/* What the dataplane's worker loop does with its ring each iteration. */
static void pump(struct xq *q, struct fx *x[2])
{
	for (int d = 0; d < 2; d++) {
		for (int i = 0; i < q->n[d]; i++)
			broker_xlcore_input(x[d]->b, q->m[d][i], x[d]->now);
		q->n[d] = 0;
	}
}

static void setup_pair(struct xq *q, struct fx *x[2])
{
	memset(q, 0, sizeof(*q));
	for (uint32_t i = 0; i < 2; i++) {
		x[i] = fx_new(NULL);
		broker_xlcore_attach(x[i]->b, i, 2, &xops, q);
	}
}

static void test_fanout_across(void **state)
{
	struct fx *x[2];
	struct xq q;

	(void)state;
	setup_pair(&q, x);
	fx_connect(x[1], 0, MQTT_V5, "far", true, 60, NULL);
	fx_connect(x[0], 0, MQTT_V5, "near", true, 60, NULL);
	fx_connect(x[0], 1, MQTT_V5, "pub", true, 60, NULL);
	fx_subscribe(x[1], 0, "t/#", 1);
	fx_subscribe(x[0], 0, "t/#", 1);
	fx_publish(x[0], 1, "t/1", "both", 1, 1, false);
	fx_expect_type(x[0], 1, MQTT_PUBACK, 0);
	fx_expect_publish(x[0], 0, "t/1", "both", 1);
	fx_expect_none(x[1], 0);
	pump(&q, x);
	fx_expect_publish(x[1], 0, "t/1", "both", 1);
	assert_int_equal(fx_count(x[0], BROKER_C_XLCORE_TX), 1);
	assert_int_equal(broker_counter_get(x[1]->b, BROKER_C_XLCORE_RX), 1);
	fx_free(x[0]);
	fx_free(x[1]);
}

static void test_retained_replicated(void **state)
{
	struct fx *x[2];
	struct xq q;

	(void)state;
	setup_pair(&q, x);
	fx_connect(x[0], 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x[0], 1, "r", "kept", 1, 1, true);
	pump(&q, x);
	fx_connect(x[1], 0, MQTT_V311, "late", true, 60, NULL);
	fx_subscribe(x[1], 0, "r", 1);
	assert_true(fx_expect_publish(x[1], 0, "r", "kept", 1).retain);
	fx_free(x[0]);
	fx_free(x[1]);
}

static void test_queue_full_counted(void **state)
{
	struct fx *x[2];
	struct xq q;

	(void)state;
	setup_pair(&q, x);
	fx_connect(x[0], 1, MQTT_V311, "pub", true, 60, NULL);
	for (int i = 0; i < QCAP + 2; i++)
		fx_publish(x[0], 1, "t", "m", 0, 0, false);
	assert_int_equal(fx_count(x[0], BROKER_C_XLCORE_TX), QCAP);
	assert_int_equal(fx_count(x[0], BROKER_C_XLCORE_DROP), 2);
	for (int i = 0; i < q.n[1]; i++) /* a queue drained at shutdown */
		broker_xmsg_free(q.m[1][i]);
	fx_free(x[0]);
	fx_free(x[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fanout_across),
		cmocka_unit_test(test_retained_replicated),
		cmocka_unit_test(test_queue_full_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
