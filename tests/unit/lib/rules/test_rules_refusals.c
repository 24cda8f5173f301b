/*
 * test_rules_refusals.c: lib/rules, the refusals and edges test_rules.c leaves out. Each bad
 * `uplink:` section alone is refused with its reason at its file:line:col (a template with a
 * stray '}' or empty, a rule or downlink rule that is not a mapping, a key that is not a
 * string, a site too long, more rules than RULES_MAX, a shared-subscription match, a placeholder
 * other than {site}); rules_equal tells each field apart; rendering refuses a buffer too small
 * and a cloud topic its rule did not match.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rules.h"

static struct conf_doc *doc;

static int
parse(const char *text, struct rules **r)
{
	char err[256];

	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	return rules_parse(conf_get(conf_root(doc), "uplink"), r);
}

static void
expect_error(const char *text, const char *where, const char *what)
{
	struct rules *r = (struct rules *)1;

	assert_int_equal(parse(text, &r), -1);
	assert_null(r);
	if (strstr(conf_errors(doc), where) == NULL || strstr(conf_errors(doc), what) == NULL)
		fail_msg("expected '%s' ... '%s' in: %s", where, what, conf_errors(doc));
	conf_free(doc);
}

static struct rules *
parse_ok(const char *text)
{
	struct rules *r = NULL;

	if (parse(text, &r) != 0)
		fail_msg("refused: %s", conf_errors(doc));
	conf_free(doc);
	return r;
}

static void
test_uplink_refusals(void **state)
{
	(void)state;
	expect_error("uplink:\n  rules:\n    - {match: a, topic: \"x/}\"}\n", "t.yaml:3:25",
	    "'}' without '{'");
	expect_error("uplink:\n  rules:\n    - {match: a, topic: \"\"}\n", "t.yaml:3:25",
	    "must not be empty");
	expect_error("uplink:\n  rules:\n    - plant/#\n", "t.yaml:3:7", "must be a mapping");
	expect_error("uplink:\n  rules:\n    - {match: [a]}\n", "t.yaml:3:15", "");
	expect_error("uplink:\n  rules:\n    - {match: a, topic: [x]}\n", "t.yaml:3:25", "");
	expect_error("uplink:\n  site: [x]\n", "t.yaml:2:9", "");
	{
		char text[256] = "uplink:\n  site: ";
		size_t n = strlen(text);

		memset(text + n, 's', RULES_SITE_MAX);
		strcpy(text + n + RULES_SITE_MAX, "\n");
		expect_error(text, "t.yaml:2:9", "longer than 127 bytes");
	}
}

static void
test_downlink_refusals(void **state)
{
	(void)state;
	expect_error("uplink:\n  downlink:\n    - cmd/#\n", "t.yaml:3:7", "must be a mapping");
	expect_error("uplink:\n  downlink:\n    - {match: [a]}\n", "t.yaml:3:15", "");
	expect_error("uplink:\n  downlink:\n    - {match: a, strip: [a]}\n", "t.yaml:3:25", "");
	expect_error("uplink:\n  downlink:\n    - {match: a, topic: [a]}\n", "t.yaml:3:25", "");
	expect_error("uplink:\n  downlink:\n    - {match: \"$share/g/a\"}\n", "t.yaml:3:15",
	    "not a valid MQTT topic filter");
	expect_error("uplink:\n  downlink:\n    - {match: \"a}/x\"}\n", "t.yaml:3:15",
	    "the only placeholder here is {site}");
	expect_error("uplink:\n  downlink:\n    - {match: \"{host}/x\"}\n", "t.yaml:3:15",
	    "the only placeholder here is {site}");
}

/* One more than RULES_MAX rules, or downlink rules: refused whole. */
static void
test_too_many(void **state)
{
	static const char *const keys[] = { "rules", "downlink" };

	(void)state;
	for (int k = 0; k < 2; k++) {
		size_t cap = 64 + (RULES_MAX + 1) * 20, n = 0;
		char *text = malloc(cap);
		char what[64];

		assert_non_null(text);
		n += (size_t)snprintf(text + n, cap - n, "uplink:\n  %s:\n", keys[k]);
		for (int i = 0; i <= RULES_MAX; i++)
			n += (size_t)snprintf(text + n, cap - n, "    - {match: a}\n");
		snprintf(what, sizeof(what), "more than %u", RULES_MAX);
		expect_error(text, "t.yaml:3:5", what);
		free(text);
	}
}

/* Two rule sets differ when any one field of any rule differs, and only then. */
static void
test_equal_field_by_field(void **state)
{
	static const char base[] =
	    "uplink:\n  site: s\n  rules:\n"
	    "    - {match: a, topic: \"t/{topic}\", qos: 1, class: normal}\n"
	    "  downlink:\n    - {match: \"c/#\", strip: \"c/\", max_qos: 1}\n";
	static const char *const differ[] = {
		"uplink:\n  site: s\n  rules:\n"
		"    - {match: a, topic: \"t/{topic}\", qos: 0, class: normal}\n"
		"  downlink:\n    - {match: \"c/#\", strip: \"c/\", max_qos: 1}\n",
		"uplink:\n  site: s\n  rules:\n"
		"    - {match: a, topic: \"t/{topic}\", qos: 1, class: bulk}\n"
		"  downlink:\n    - {match: \"c/#\", strip: \"c/\", max_qos: 1}\n",
		"uplink:\n  site: s\n  rules:\n"
		"    - {match: a, topic: \"t/{topic}\", qos: 1, class: normal, durable: false}\n"
		"  downlink:\n    - {match: \"c/#\", strip: \"c/\", max_qos: 1}\n",
		"uplink:\n  site: s\n  rules:\n"
		"    - {match: a, topic: \"t/{topic}\", qos: 1, class: normal}\n"
		"  downlink:\n    - {match: \"c/#\", strip: \"c/\", max_qos: 2}\n",
		"uplink:\n  site: s\n  rules:\n"
		"    - {match: a, topic: \"t/{topic}\", qos: 1, class: normal}\n"
		"  downlink:\n    - {match: \"c/#\", strip: \"c/\", topic: \"in/{topic}\", "
		"max_qos: 1}\n",
	};
	struct rules *a = parse_ok(base), *b = parse_ok(base);

	(void)state;
	assert_true(rules_equal(a, b));
	assert_true(rules_equal(NULL, NULL));
	assert_false(rules_equal(a, NULL));
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		struct rules *c = parse_ok(differ[i]);

		if (rules_equal(a, c) || rules_equal(c, a))
			fail_msg("equal to the base: %s", differ[i]);
		rules_free(c);
	}
	rules_free(b);
	rules_free(a);
}

/* Rendering: a buffer too small (or none) is refused, never cut; a cloud topic that does not
 * start with the rule's strip (shorter, or another prefix) is not the rule's to render. */
static void
test_render_refusals(void **state)
{
	struct rules *r =
	    parse_ok("uplink:\n  site: lab\n  rules:\n"
		     "    - {match: \"#\", topic: \"site/{site}/{topic}\"}\n"
		     "  downlink:\n    - {match: \"c/{site}/#\", strip: \"c/{site}/\"}\n");
	const struct rule *ru = rules_match(r, "m/v", 3);
	const struct down_rule *d = rules_down_match(r, "c/lab/x", 7);
	char buf[64];

	(void)state;
	assert_non_null(ru);
	assert_non_null(d);
	assert_int_equal(rules_render(r, ru, "m/v", 3, buf, sizeof(buf)), 12);
	assert_string_equal(buf, "site/lab/m/v");
	assert_int_equal(rules_render(r, ru, "m/v", 3, buf, 12), -ENAMETOOLONG);
	assert_int_equal(rules_render(r, ru, "m/v", 3, buf, 0), -ENAMETOOLONG);
	assert_int_equal(rules_down_render(r, d, "c/lab/x", 7, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "x");
	assert_int_equal(rules_down_render(r, d, "c/la", 4, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(rules_down_render(r, d, "c/lax/x", 7, buf, sizeof(buf)), -EINVAL);
	assert_string_equal(rules_class_name(RULES_BULK), "bulk");
	assert_string_equal(rules_class_name(RULES_CLASS_N), "?");
	rules_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uplink_refusals),
		cmocka_unit_test(test_downlink_refusals),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_equal_field_by_field),
		cmocka_unit_test(test_render_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
