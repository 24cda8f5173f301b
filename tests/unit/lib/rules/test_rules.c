/*
 * test_rules.c: lib/rules: the `uplink:` section parsed into rules (defaults when absent, every
 * key, each rejection at its file:line:col), first match wins, cloud topics rendered; the
 * `downlink:` list: cloud topics mapped to local ones (prefix stripped, QoS capped).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
	assert_non_null(conf_first_error(doc));
	if (strstr(conf_errors(doc), where) == NULL || strstr(conf_errors(doc), what) == NULL)
		fail_msg("expected '%s' ... '%s' in: %s", where, what, conf_errors(doc));
	conf_free(doc);
}

static void
test_absent_sends_everything_as_is(void **state)
{
	struct rules *r;
	const struct rule *ru;
	char buf[64];

	(void)state;
	assert_int_equal(parse("agent: {}\n", &r), 0);
	ru = rules_match(r, "site/lab/meter/v", 16);
	assert_non_null(ru);
	assert_int_equal(ru->qos, RULES_QOS_KEEP);
	assert_int_equal(ru->cls, RULES_NORMAL);
	assert_true(ru->durable);
	assert_int_equal(rules_render(r, ru, "site/lab/meter/v", 16, buf, sizeof(buf)), 16);
	assert_string_equal(buf, "site/lab/meter/v");
	rules_free(r);
	conf_free(doc);
	/* a section without rules: the same default */
	assert_int_equal(parse("uplink: {site: x}\n", &r), 0);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->v[0].match, "#");
	rules_free(r);
	conf_free(doc);
}

static struct rules *
parse_ok(const char *text)
{
	struct rules *r;

	assert_int_equal(parse(text, &r), 0);
	conf_free(doc);
	return r;
}

/* A reload compares the running set with the file's: every field counts, where it was written
 * does not. */
static void
test_equal(void **state)
{
	static const char *const base =
	    "uplink:\n  site: lab\n  rules:\n"
	    "    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: normal}\n"
	    "  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", max_qos: "
	    "1}\n";
	static const char *const differ[] = {
		"uplink:\n  site: lab2\n  rules:\n"
		"    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: "
		"normal}\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		"max_qos: 1}\n",
		"uplink:\n  site: lab\n  rules:\n"
		"    - {match: \"plant/+\", topic: \"site/{site}/{topic}\", qos: keep, class: "
		"normal}\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		"max_qos: 1}\n",
		"uplink:\n  site: lab\n  rules:\n"
		"    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: 1, class: "
		"normal}\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		"max_qos: 1}\n",
		"uplink:\n  site: lab\n  rules:\n"
		"    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: "
		"bulk}\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		"max_qos: 1}\n",
		"uplink:\n  site: lab\n  rules:\n"
		"    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: "
		"normal, "
		"durable: false}\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		"max_qos: 1}\n",
		"uplink:\n  site: lab\n  rules:\n"
		"    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: "
		"normal}\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/\", max_qos: 1}\n",
		"uplink:\n  site: lab\n  rules:\n"
		"    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: "
		"normal}\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		"max_qos: 2}\n",
		"uplink:\n  site: lab\n  rules:\n"
		"    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: "
		"normal}\n",
		"uplink:\n  site: lab\n  rules: []\n"
		"  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		"max_qos: 1}\n",
	};
	struct rules *a, *b;

	(void)state;
	a = parse_ok(base);
	/* the same rules written elsewhere in the file (other lines) are equal */
	b = parse_ok("# a comment\n\nagent: {}\n"
		     "uplink:\n  site: lab\n  rules:\n"
		     "    - match: \"plant/#\"\n      topic: \"site/{site}/{topic}\"\n"
		     "  downlink:\n    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", "
		     "max_qos: 1}\n");
	assert_true(rules_equal(a, b));
	assert_true(rules_equal(b, a));
	rules_free(b);
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		b = parse_ok(differ[i]);
		if (rules_equal(a, b))
			fail_msg("case %zu: equal to the base", i);
		rules_free(b);
	}
	assert_false(rules_equal(a, NULL));
	assert_true(rules_equal(NULL, NULL));
	rules_free(a);
}

static void
test_empty_list_sends_nothing(void **state)
{
	struct rules *r;

	(void)state;
	assert_int_equal(parse("uplink: {rules: []}\n", &r), 0);
	assert_int_equal(r->n, 0);
	assert_null(rules_match(r, "a/b", 3));
	rules_free(r);
	conf_free(doc);
}

static void
test_every_key_and_first_match(void **state)
{
	static const char text[] =
	    "uplink:\n"
	    "  site: lab\n"
	    "  spool: {dir: /tmp/x}\n"
	    "  rules:\n"
	    "    - {match: \"plant/alarm/+\", topic: \"site/{site}/alarms/{topic}\", qos: 2, "
	    "class: alarm}\n"
	    "    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: normal, "
	    "durable: true}\n"
	    "    - {match: \"bulk/+/x\", qos: 0, class: bulk, durable: false}\n";
	struct rules *r;
	const struct rule *ru;
	char buf[128];

	(void)state;
	assert_int_equal(parse(text, &r), 0);
	assert_string_equal(r->site, "lab");
	assert_int_equal(r->n, 3);
	ru = rules_match(r, "plant/alarm/oven", 16);
	assert_ptr_equal(ru, &r->v[0]);
	assert_int_equal(rule_qos(ru, 0), 2);
	assert_int_equal(ru->cls, RULES_ALARM);
	assert_int_equal(ru->line, 5);
	assert_int_equal(rules_render(r, ru, "plant/alarm/oven", 16, buf, sizeof(buf)), 32);
	assert_string_equal(buf, "site/lab/alarms/plant/alarm/oven");
	/* first match wins: plant/alarm/a/b is not matched by the first rule ('+' is one level) */
	ru = rules_match(r, "plant/alarm/a/b", 15);
	assert_ptr_equal(ru, &r->v[1]);
	assert_int_equal(rule_qos(ru, 1), 1);
	assert_true(rule_durable(ru, 1));
	assert_false(rule_durable(ru, 0));
	rules_render(r, ru, "plant/alarm/a/b", 15, buf, sizeof(buf));
	assert_string_equal(buf, "site/lab/plant/alarm/a/b");
	ru = rules_match(r, "bulk/7/x", 8);
	assert_ptr_equal(ru, &r->v[2]);
	assert_int_equal(rule_qos(ru, 2), 0);
	assert_int_equal(ru->cls, RULES_BULK);
	assert_false(rule_durable(ru, 1));
	assert_null(rules_match(r, "other/topic", 11));
	assert_null(rules_match(r, "bulk/7/y", 8));
	/* not NUL-terminated input: only len counts */
	assert_ptr_equal(rules_match(r, "plant/xyz-garbage", 9), &r->v[1]);
	rules_render(r, &r->v[1], "plant/xyz-garbage", 9, buf, sizeof(buf));
	assert_string_equal(buf, "site/lab/plant/xyz");
	rules_free(r);
	conf_free(doc); /* the rules own their strings: free the document first next time */
}

static void
test_rules_outlive_the_document(void **state)
{
	struct rules *r;
	char buf[64];

	(void)state;
	assert_int_equal(
	    parse(
		"uplink: {site: s1, rules: [{match: \"a/#\", topic: \"x/{site}/{topic}\"}]}\n", &r),
	    0);
	conf_free(doc);
	assert_string_equal(r->v[0].match, "a/#");
	assert_int_equal(rules_render(r, rules_match(r, "a/b", 3), "a/b", 3, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "x/s1/a/b");
	rules_free(r);
}

static void
test_render_bounds(void **state)
{
	struct rules *r;
	char buf[8];

	(void)state;
	assert_int_equal(
	    parse("uplink: {rules: [{match: \"#\", topic: \"up/{topic}\"}]}\n", &r), 0);
	assert_int_equal(rules_render(r, &r->v[0], "abcd", 4, buf, sizeof(buf)), 7);
	assert_int_equal(rules_render(r, &r->v[0], "abcde", 5, buf, sizeof(buf)), -ENAMETOOLONG);
	assert_int_equal(rules_render(r, &r->v[0], "a\xff", 2, buf, sizeof(buf)), -EINVAL);
	rules_free(r);
	conf_free(doc);
}

static void
test_errors_at_their_place(void **state)
{
	(void)state;
	expect_error("uplink: [1]\n", "t.yaml:1:9", "must be a mapping");
	expect_error("uplink: {sit: x}\n", "t.yaml:1:10", "sit");
	expect_error("uplink:\n  rules:\n    - {topic: x}\n", "t.yaml:3:7", "needs 'match'");
	expect_error("uplink:\n  rules:\n    - {match: \"a/#/b\"}\n", "t.yaml:3:15",
	    "not a valid MQTT topic filter");
	expect_error(
	    "uplink:\n  rules:\n    - {match: \"$share/g/a\"}\n", "t.yaml:3:15", "not a valid");
	expect_error("uplink:\n  rules:\n    - {match: a, topic: \"x/{site}\"}\n", "t.yaml:3:25",
	    "uplink.site is not set");
	expect_error("uplink:\n  site: s\n  rules:\n    - {match: a, topic: \"x/{host}\"}\n",
	    "t.yaml:4:25", "unknown placeholder");
	expect_error("uplink:\n  rules:\n    - {match: a, topic: \"x/+\"}\n", "t.yaml:3:25",
	    "must not hold");
	expect_error("uplink:\n  rules:\n    - {match: a, qos: 3}\n", "t.yaml:3:23", "keep");
	expect_error("uplink:\n  rules:\n    - {match: a, class: urgent}\n", "t.yaml:3:25", "bulk");
	expect_error("uplink:\n  rules:\n    - {match: a, durable: maybe}\n", "t.yaml:3:27", "");
	expect_error("uplink:\n  rules:\n    - {match: a, color: red}\n", "t.yaml:3:18", "color");
	expect_error("uplink: {site: \"a/#\"}\n", "t.yaml:1:16", "must not hold");
	expect_error("uplink: {rules: {match: a}}\n", "t.yaml:1:17", "must be a list");
	/* every error of the file, not the first only */
	expect_error("uplink:\n  rules:\n    - {match: \"a/#/b\"}\n    - {match: a, qos: 7}\n",
	    "t.yaml:4:", "keep");
}

static void
down_expect(const struct rules *r, const char *cloud, const char *local)
{
	const struct down_rule *d = rules_down_match(r, cloud, strlen(cloud));
	char buf[128];

	if (local == NULL) {
		assert_null(d);
		return;
	}
	assert_non_null(d);
	assert_int_equal(
	    rules_down_render(r, d, cloud, strlen(cloud), buf, sizeof(buf)), (int)strlen(local));
	assert_string_equal(buf, local);
}

static void
test_downlink_lab_mapping(void **state)
{
	struct rules *r;

	(void)state;
	/* the lab's: site/lab/cmd/plant/# reaches sensors subscribed to cmd/plant/# */
	assert_int_equal(
	    parse("uplink:\n  site: lab\n  downlink:\n"
		  "    - {match: \"site/{site}/cmd/plant/#\", strip: \"site/{site}/\"}\n"
		  "    - {match: \"site/{site}/cfg/+\", strip: \"site/{site}/cfg/\", "
		  "topic: \"gw/{site}/{topic}\", max_qos: 1}\n",
		&r),
	    0);
	assert_int_equal(r->n_down, 2);
	assert_string_equal(r->down[0].match, "site/lab/cmd/plant/#");
	assert_string_equal(r->down[0].strip, "site/lab/");
	down_expect(r, "site/lab/cmd/plant/valve1", "cmd/plant/valve1");
	down_expect(r, "site/lab/cmd/plant/a/b/c", "cmd/plant/a/b/c");
	down_expect(r, "site/lab/cmd/plant", "cmd/plant"); /* '#' takes the parent level too */
	down_expect(r, "site/other/cmd/plant/x", NULL);
	down_expect(r, "site/lab/cmd/plantx", NULL);
	down_expect(r, "site/lab/cfg/rate", "gw/lab/rate");
	down_expect(r, "site/lab/cfg/a/b", NULL);
	/* QoS kept, or capped by max_qos */
	for (uint8_t q = 0; q <= 2; q++) {
		assert_int_equal(down_rule_qos(&r->down[0], q), q);
		assert_int_equal(down_rule_qos(&r->down[1], q), q < 1 ? q : 1);
	}
	/* the uplink rules are the default (everything up as is): downlink adds none */
	assert_int_equal(r->n, 1);
	rules_free(r);
	conf_free(doc);
	/* none by default */
	assert_int_equal(parse("uplink: {site: lab}\n", &r), 0);
	assert_int_equal(r->n_down, 0);
	down_expect(r, "site/lab/cmd/plant/x", NULL);
	rules_free(r);
	conf_free(doc);
}

static void
test_downlink_render_bounds(void **state)
{
	struct rules *r;
	const struct down_rule *d;
	char buf[16];

	(void)state;
	assert_int_equal(
	    parse("uplink:\n  downlink:\n    - {match: \"c/#\", strip: \"c/\"}\n", &r), 0);
	d = rules_down_match(r, "c", 1);
	assert_non_null(d);
	/* nothing left after strip: not a topic */
	assert_int_equal(rules_down_render(r, d, "c", 1, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(
	    rules_down_render(r, d, "c/0123456789abcdef", 18, buf, sizeof(buf)), -ENAMETOOLONG);
	assert_int_equal(rules_down_render(r, d, "c/x", 3, buf, sizeof(buf)), 1);
	rules_free(r);
	conf_free(doc);
}

static void
test_downlink_errors_at_their_place(void **state)
{
	(void)state;
	expect_error("uplink:\n  downlink: {match: a}\n", "t.yaml:2:13", "must be a list");
	expect_error("uplink:\n  downlink:\n    - {strip: a}\n", "t.yaml:3:7", "needs 'match'");
	expect_error("uplink:\n  downlink:\n    - {match: \"a/#/b\"}\n", "t.yaml:3:15",
	    "not a valid MQTT topic filter");
	expect_error("uplink:\n  downlink:\n    - {match: \"{site}/x\"}\n", "t.yaml:3:15",
	    "uplink.site is not set");
	expect_error("uplink:\n  site: s\n  downlink:\n    - {match: \"{host}/x\"}\n",
	    "t.yaml:4:15", "only placeholder");
	expect_error("uplink:\n  downlink:\n    - {match: \"a/b/#\", strip: \"b/\"}\n",
	    "t.yaml:3:31", "not the start of match");
	expect_error("uplink:\n  downlink:\n    - {match: \"a/+/#\", strip: \"a/+/\"}\n",
	    "t.yaml:3:31", "must not hold");
	expect_error("uplink:\n  downlink:\n    - {match: a, max_qos: 3}\n", "t.yaml:3:27", "2");
	expect_error("uplink:\n  downlink:\n    - {match: a, topic: \"x/#\"}\n", "t.yaml:3:25",
	    "must not hold");
	expect_error("uplink:\n  downlink:\n    - {match: a, qos: 1}\n", "t.yaml:3:18", "qos");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent_sends_everything_as_is),
		cmocka_unit_test(test_empty_list_sends_nothing),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_every_key_and_first_match),
		cmocka_unit_test(test_rules_outlive_the_document),
		cmocka_unit_test(test_render_bounds),
		cmocka_unit_test(test_downlink_lab_mapping),
		cmocka_unit_test(test_downlink_render_bounds),
		cmocka_unit_test(test_downlink_errors_at_their_place),
		cmocka_unit_test(test_errors_at_their_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
