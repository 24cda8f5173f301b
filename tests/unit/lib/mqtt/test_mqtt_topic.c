/*
 * test_mqtt_topic.c: topic name and filter validation, shared subscription parsing, and the
 * wildcard matching table (filter, topic, expected), including the '$' rules and '#' matching
 * its parent level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_topic.h"

struct match_row {
	const char *filter;
	const char *topic;
	bool match;
};

static const struct match_row match_table[] = {
	{ "a/b/c", "a/b/c", true },
	{ "a/b/c", "a/b", false },
	{ "a/b", "a/b/c", false },
	{ "a/b/c", "a/b/d", false },
	{ "a/b", "a/bc", false },
	{ "a/bc", "a/b", false },
	{ "A/b", "a/b", false }, /* case sensitive */
	{ "#", "a", true },
	{ "#", "a/b/c", true },
	{ "#", "/", true },
	{ "a/#", "a", true }, /* '#' matches the parent level */
	{ "a/#", "a/", true },
	{ "a/#", "a/b", true },
	{ "a/#", "a/b/c", true },
	{ "a/#", "ab", false },
	{ "a/#", "b/a", false },
	{ "a/b/#", "a", false },
	{ "+", "a", true },
	{ "+", "a/b", false },
	{ "+", "/a", false },
	{ "+/+", "/a", true }, /* empty first level */
	{ "/+", "/a", true },
	{ "+/b", "a/b", true },
	{ "+/b", "a/c", false },
	{ "a/+", "a/", true }, /* '+' matches an empty level */
	{ "a/+", "a", false },
	{ "a/+/c", "a/b/c", true },
	{ "a/+/c", "a/b/d/c", false },
	{ "a/+/#", "a/b", true },
	{ "a/+/#", "a/b/c/d", true },
	{ "a/+/#", "a", false },
	{ "+/+/+", "a/b/c", true },
	{ "+/+/+", "a/b", false },
	{ "a//b", "a//b", true },
	{ "a/+/b", "a//b", true },
	{ "/", "/", true },
	{ "a/", "a", false },
	{ "a", "a/", false },
	/* '$' topics: not matched by filters starting with a wildcard */
	{ "#", "$SYS", false },
	{ "#", "$SYS/broker/load", false },
	{ "+/broker/load", "$SYS/broker/load", false },
	{ "+", "$SYS", false },
	{ "$SYS/#", "$SYS/broker/load", true },
	{ "$SYS/#", "$SYS", true },
	{ "$SYS/+/load", "$SYS/broker/load", true },
	{ "$SYS/broker/load", "$SYS/broker/load", true },
	{ "a/#", "a/$SYS", true }, /* only the first character counts */
	{ "+/$x", "a/$x", true },
	{ "#", "a$", true },
};

static void
test_match_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(match_table) / sizeof(match_table[0]); i++) {
		const struct match_row *r = &match_table[i];
		bool got;

		assert_int_equal(mqtt_topic_filter_valid(r->filter, strlen(r->filter)), 0);
		assert_int_equal(mqtt_topic_name_valid(r->topic, strlen(r->topic)), 0);
		got = mqtt_topic_match(r->filter, strlen(r->filter), r->topic, strlen(r->topic));
		if (got != r->match)
			fail_msg("filter '%s' topic '%s': got %d want %d", r->filter, r->topic, got,
			    r->match);
	}
}

struct valid_row {
	const char *s;
	int name_rc;   /* mqtt_topic_name_valid */
	int filter_rc; /* mqtt_topic_filter_valid */
};

static const struct valid_row valid_table[] = {
	{ "a/b", 0, 0 },
	{ "/", 0, 0 },
	{ "$SYS/x", 0, 0 },
	{ "", -MQTT_E_TOPIC_EMPTY, -MQTT_E_FILTER_INVALID },
	{ "+", -MQTT_E_TOPIC_NAME_INVALID, 0 },
	{ "#", -MQTT_E_TOPIC_NAME_INVALID, 0 },
	{ "a/+/b", -MQTT_E_TOPIC_NAME_INVALID, 0 },
	{ "a/#", -MQTT_E_TOPIC_NAME_INVALID, 0 },
	{ "+/+", -MQTT_E_TOPIC_NAME_INVALID, 0 },
	{ "a+", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_FILTER_INVALID },
	{ "+a", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_FILTER_INVALID },
	{ "a/b#", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_FILTER_INVALID },
	{ "a/#/b", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_FILTER_INVALID },
	{ "#/", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_FILTER_INVALID },
	{ "##", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_FILTER_INVALID },
	{ "++", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_FILTER_INVALID },
	{ "$share/g/a/+", -MQTT_E_TOPIC_NAME_INVALID, 0 },
	{ "$share/g/#", -MQTT_E_TOPIC_NAME_INVALID, 0 },
	{ "$share/g", 0, -MQTT_E_SHARE_INVALID },
	{ "$share/g/", 0, -MQTT_E_SHARE_INVALID },
	{ "$share//a", 0, -MQTT_E_SHARE_INVALID },
	{ "$share/#/a", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_SHARE_INVALID },
	{ "$share/g/a+", -MQTT_E_TOPIC_NAME_INVALID, -MQTT_E_SHARE_INVALID },
	{ "$share", 0, 0 }, /* no slash: an ordinary filter */
	{ "$shared/g/a", 0, 0 },
	{ "caf\xc3\xa9", 0, 0 },
	{ "a\xed\xa0\x80", -MQTT_E_UTF8_SURROGATE, -MQTT_E_UTF8_SURROGATE },
};

static void
test_valid_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid_table) / sizeof(valid_table[0]); i++) {
		const struct valid_row *r = &valid_table[i];
		int n = mqtt_topic_name_valid(r->s, strlen(r->s));
		int f = mqtt_topic_filter_valid(r->s, strlen(r->s));

		if (n != r->name_rc || f != r->filter_rc)
			fail_msg("'%s': name %d want %d, filter %d want %d", r->s, n, r->name_rc, f,
			    r->filter_rc);
	}
}

static void
test_nul_in_topic(void **state)
{
	(void)state;
	assert_int_equal(mqtt_topic_name_valid("a\0b", 3), -MQTT_E_UTF8_NUL);
	assert_int_equal(mqtt_topic_filter_valid("a\0b", 3), -MQTT_E_UTF8_NUL);
}

static void
test_share_parse(void **state)
{
	struct mqtt_str g, f;
	const char *s = "$share/line-2/plant/+/temp";

	(void)state;
	assert_int_equal(mqtt_topic_share_parse(s, strlen(s), &g, &f), 1);
	assert_int_equal(g.len, 6);
	assert_memory_equal(g.s, "line-2", 6);
	assert_int_equal(f.len, 12);
	assert_memory_equal(f.s, "plant/+/temp", 12);
	assert_true(mqtt_topic_match(f.s, f.len, "plant/1/temp", 12));
	assert_int_equal(mqtt_topic_share_parse("a/b", 3, &g, &f), 0);
	assert_int_equal(mqtt_topic_share_parse("$share/g", 8, &g, &f), -MQTT_E_SHARE_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_valid_table),
		cmocka_unit_test(test_nul_in_topic),
		cmocka_unit_test(test_share_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
