/*
 * Unit tests for subscription matching as the broker does it (lib/mqtt's trie behind
 * dataplane/mqtt/subs.c): a table of filter / topic pairs, each subscribed and published
 * through the broker, checked against mqtt_topic_match too; overlapping filters; the filter
 * depth limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"
#include "mqtt_topic.h"

static const struct {
	const char *filter, *topic;
	bool match;
} table[] = {
	{ "a/b", "a/b", true },
	{ "a/b", "a/c", false },
	{ "a/+", "a/b", true },
	{ "a/+", "a/b/c", false },
	{ "a/#", "a", true },
	{ "a/#", "a/b/c", true },
	{ "#", "a/b", true },
	{ "+/+", "a/b", true },
	{ "+", "a/b", false },
	{ "+/b", "/b", true },
	{ "a//c", "a//c", true },
	{ "a/+/c", "a//c", true },
	{ "#", "$SYS/x", false },
	{ "+/x", "$SYS/x", false },
	{ "$SYS/#", "$SYS/x", true },
	{ "$SYS/+", "$SYS/x", true },
	{ "#", "$data/x", false }, /* the $ rule for any $ topic a client may publish */
	{ "+/x", "$data/x", false },
	{ "$data/#", "$data/x", true },
	{ "a/b/#", "a/b", true },
	{ "a/+/#", "a/b", true },
	{ "a/", "a/", true },
	{ "a/", "a", false },
	{ "a/+", "a/", true },
	{ "sport/tennis/#", "sport/tennis/player1/ranking", true },
	{ "/+", "/finance", true },
	{ "+", "/finance", false },
	{ "A/b", "a/b", false },
	{ "a/b", "a/b/", false },
};

/* Clients may not publish under $SYS/ (the broker's own): those rows are checked against
 * mqtt_topic_match only; the $data rows check the same rule through the broker. */
static bool
client_may_publish(const char *t)
{
	return strncmp(t, "$SYS", 4) != 0;
}

static void
test_match_table(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
		const char *f = table[k].filter, *t = table[k].topic;
		struct fx *x = fx_new(NULL);

		print_message("%s ~ %s\n", f, t);
		assert_int_equal(mqtt_topic_match(f, strlen(f), t, strlen(t)), table[k].match);
		if (!client_may_publish(t)) {
			fx_free(x);
			continue;
		}
		fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
		fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
		fx_subscribe(x, 0, f, 0);
		fx_publish(x, 1, t, "p", 0, 0, false);
		if (table[k].match)
			fx_expect_publish(x, 0, t, "p", 0);
		fx_expect_none(x, 0);
		fx_free(x);
	}
}

static bool
first_of(size_t k)
{
	for (size_t j = 0; j < k; j++)
		if (strcmp(table[j].filter, table[k].filter) == 0)
			return false;
	return true;
}

/* Every filter at once: each topic reaches the session once when any filter matches. */
static void
test_overlapping(void **state)
{
	size_t n = sizeof(table) / sizeof(table[0]);
	struct fx *x = fx_new(NULL);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, NULL);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	for (size_t k = 0; k < n; k++)
		if (first_of(k))
			fx_subscribe(x, 0, table[k].filter, 0);
	for (size_t k = 0; k < n; k++) {
		const char *t = table[k].topic;
		size_t want = 0;
		struct mqtt_packet p;

		if (!client_may_publish(t))
			continue;
		for (size_t j = 0; j < n; j++)
			if (first_of(j) &&
			    mqtt_topic_match(
				table[j].filter, strlen(table[j].filter), t, strlen(t)))
				want++;
		fx_publish(x, 1, t, "p", 0, 0, false);
		if (want > 1)
			want = 1; /* one copy per session, however many filters match */
		for (size_t i = 0; i < want; i++) {
			assert_true(fx_next(x, 0, &p));
			assert_int_equal(p.type, MQTT_PUBLISH);
		}
		fx_expect_none(x, 0);
	}
	fx_free(x);
}

static void
test_filter_depth_limit(void **state)
{
	struct broker_config cfg;
	struct mqtt_subscription s = { .filter = MQTT_STR("a/b/c/d/e"), .qos = 1 };
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE }, r;
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_filter_levels = 4;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V5, "deep", true, 60, NULL);
	p.subscribe.packet_id = 1;
	p.subscribe.subs = &s;
	p.subscribe.n_subs = 1;
	fx_send(x, 0, &p);
	assert_true(fx_next(x, 0, &r));
	assert_true(r.suback.reasons[0] >= 0x80);
	assert_int_equal(fx_count(x, BROKER_C_LIMIT_FILTER_LEVELS), 1);
	fx_subscribe(x, 0, "a/b/c/d", 1);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_overlapping),
		cmocka_unit_test(test_filter_depth_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
