/*
 * test_broker_admin.c: the operator's view of a broker instance (broker_admin.c): listings paged
 * and escaped, kick with and without purge, retained delete.
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

struct lines {
	char text[16][160];
	int n;
};

static void
keep(void *arg, const char *line)
{
	struct lines *l = arg;

	assert_true(strlen(line) < 128); /* a DPDK telemetry string */
	if (l->n < 16)
		snprintf(l->text[l->n++], sizeof(l->text[0]), "%s", line);
}

static bool
has(const struct lines *l, const char *want)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->text[i], want) == 0)
			return true;
	return false;
}

/* Every session once over the pages; ids with odd bytes escaped; long ones cut and marked. */
static void
test_sessions_paged(void **state)
{
	struct fx *x = fx_new(NULL);
	struct lines a = { 0 }, b = { 0 };
	char id[16];

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		fx_connect(x, i, MQTT_V311, id, i % 2 == 0, 60, NULL);
	}
	fx_connect(x, 5, MQTT_V5, "odd id\\", true, 60, NULL);
	fx_connect(x, 6, MQTT_V5, "a-very-long-client-id-that-does-not-fit-in-a-line-0123456789",
	    true, 60, NULL);
	assert_int_equal(broker_admin_sessions(x->b, 0, 4, keep, &a), 7);
	assert_int_equal(a.n, 4);
	assert_int_equal(broker_admin_sessions(x->b, 4, 4, keep, &b), 7);
	assert_int_equal(b.n, 3);
	for (int i = 0; i < b.n; i++)
		memcpy(a.text[a.n++], b.text[i], sizeof(a.text[0]));
	assert_true(has(&a, "s0 online v3.1.1 subs=0 queued=0 inflight=0 expiry_s=0"));
	assert_true(has(&a, "s1 online v3.1.1 subs=0 queued=0 inflight=0 expiry_s=86400"));
	assert_true(has(&a, "odd\\x20id\\x5c online v5 subs=0 queued=0 inflight=0 expiry_s=0"));
	{
		bool cut = false;

		for (int i = 0; i < a.n; i++)
			cut |= strncmp(a.text[i], "a-very-long-client-id", 21) == 0 &&
			    strstr(a.text[i], "... online v5") != NULL;
		assert_true(cut);
	}
	fx_free(x);
}

static void
test_subscriptions_and_retained(void **state)
{
	struct fx *x = fx_new(NULL);
	struct lines l = { 0 };

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
	fx_subscribe(x, 0, "plant/+/t", 1);
	fx_subscribe(x, 0, "cmd/#", 2 | 0x04); /* No Local */
	assert_int_equal(broker_admin_subscriptions(x->b, 0, 10, keep, &l), 2);
	assert_true(has(&l, "sub plant/+/t qos=1"));
	assert_true(has(&l, "sub cmd/# qos=2 no_local"));
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 1, "plant/a/t", "21.5", 0, 0, true);
	fx_expect_publish(x, 0, "plant/a/t", "21.5", 0);
	l.n = 0;
	assert_int_equal(broker_admin_retained(x->b, 0, 10, keep, &l), 1);
	assert_true(has(&l, "plant/a/t qos=0 bytes=4"));
	/* delete: cleared as a client would (an empty retained message reaches the subscriber) */
	assert_int_equal(broker_admin_retained_delete(x->b, "plant/a/t", 9, x->now), 1);
	fx_expect_publish(x, 0, "plant/a/t", "", 0);
	assert_int_equal(broker_admin_retained(x->b, 0, 10, keep, &l), 0);
	assert_int_equal(broker_admin_retained_delete(x->b, "plant/a/t", 9, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_ADMIN_RETAINED_DELETED), 1);
	fx_free(x);
}

/* kick: a 5.0 client is told 0x98 and its session stays; purge removes it, online or not. */
static void
test_kick(void **state)
{
	struct fx *x = fx_new(NULL);
	struct mqtt_props p = { 0 };
	struct lines l = { 0 };

	(void)state;
	mqtt_props_set_u32(&p, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect(x, 0, MQTT_V5, "k1", true, 60, &p);
	fx_connect(x, 1, MQTT_V5, "k2", true, 60, &p);
	assert_int_equal(broker_admin_kick(x->b, "k1", 2, false, x->now), 1);
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_ADMINISTRATIVE_ACTION);
	assert_true(x->f[0].closed);
	assert_int_equal(broker_admin_sessions(x->b, 0, 10, keep, &l), 2);
	assert_true(has(&l, "k1 offline v- subs=0 queued=0 inflight=0 expiry_s=600"));
	/* purge: the offline one, then the online one */
	assert_int_equal(broker_admin_kick(x->b, "k1", 2, true, x->now), 1);
	assert_int_equal(broker_admin_kick(x->b, "k2", 2, true, x->now), 1);
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_ADMINISTRATIVE_ACTION);
	assert_int_equal(broker_admin_sessions(x->b, 0, 10, keep, &l), 0);
	assert_int_equal(broker_admin_kick(x->b, "k3", 2, false, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_ADMIN_KICK), 3);
	fx_free(x);
}

/* The gateway's own message: to the subscribers at min(QoS, subscription); never to $SYS or a
 * filter. */
static void
test_publish(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sensor", true, 60, NULL);
	fx_subscribe(x, 0, "cmd/#", 1);
	assert_int_equal(
	    broker_admin_publish(x->b, "cmd/valve", 9, "open", 4, 2, false, x->now), 1);
	fx_expect_publish(x, 0, "cmd/valve", "open", 1);
	assert_int_equal(broker_admin_publish(x->b, "other", 5, "x", 1, 0, false, x->now), 0);
	assert_int_equal(broker_admin_publish(x->b, "cmd/#", 5, "x", 1, 0, false, x->now), -EINVAL);
	assert_int_equal(
	    broker_admin_publish(x->b, "$SYS/broker/x", 13, "x", 1, 0, false, x->now), -EINVAL);
	assert_int_equal(broker_admin_publish(x->b, "cmd/a", 5, "x", 1, 3, false, x->now), -EINVAL);
	fx_expect_none(x, 0);
	/* retained: kept for the next subscriber */
	assert_int_equal(broker_admin_publish(x->b, "cfg/rate", 8, "5s", 2, 1, true, x->now), 0);
	fx_connect(x, 1, MQTT_V311, "late", true, 60, NULL);
	fx_subscribe(x, 1, "cfg/#", 1);
	fx_expect_publish(x, 1, "cfg/rate", "5s", 1);
	assert_int_equal(fx_count(x, BROKER_C_ADMIN_PUBLISHED), 3);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sessions_paged),
		cmocka_unit_test(test_subscriptions_and_retained),
		cmocka_unit_test(test_kick),
		cmocka_unit_test(test_publish),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
