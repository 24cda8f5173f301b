/*
 * test_spool_config.c: the `spool:` config section (lib/spool/spool_config.c): defaults when
 * absent, every key read, and each rejection named with its line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spool.h"

static struct conf_doc *doc;

static conf_node
load(const char *text)
{
	char err[256];
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	return conf_get(conf_root(doc), "spool");
}

static void
test_absent_gives_defaults(void **state)
{
	(void)state;
	struct spool_config c, d;
	assert_int_equal(spool_config_parse(load("other: 1\n"), &c), 0);
	spool_config_defaults(&d);
	assert_string_equal(c.dir, SPOOL_DEFAULT_DIR);
	assert_int_equal(c.max_bytes, d.max_bytes);
	assert_false(c.policy[SPOOL_ALARM].drop_when_full);
	assert_true(c.policy[SPOOL_BULK].drop_when_full);
	conf_free(doc);
}

static void
test_every_key(void **state)
{
	(void)state;
	struct spool_config c;
	assert_int_equal(
	    spool_config_parse(load("spool:\n"
				    "  dir: /data/spool\n"
				    "  max_bytes: 2G\n"
				    "  segment_bytes: 16M\n"
				    "  commit_max_wait_us: 500\n"
				    "  commit_bytes: 128k\n"
				    "  buffer_bytes: 1M\n"
				    "  disk_full_retry: 5s\n"
				    "  classes:\n"
				    "    alarm: {max_age: 0, drop_when_full: false}\n"
				    "    normal: {max_age: 48h, drop_when_full: true}\n"
				    "    bulk: {max_age: 30m}\n"),
		&c),
	    0);
	assert_string_equal(c.dir, "/data/spool");
	assert_int_equal(c.max_bytes, 2ull << 30);
	assert_int_equal(c.segment_bytes, 16u << 20);
	assert_int_equal(c.commit_max_wait_us, 500);
	assert_int_equal(c.commit_bytes, 128u << 10);
	assert_int_equal(c.buffer_bytes, 1u << 20);
	assert_int_equal(c.disk_full_retry_ms, 5000);
	assert_int_equal(c.policy[SPOOL_ALARM].max_age_ms, 0);
	assert_int_equal(c.policy[SPOOL_NORMAL].max_age_ms, 48ull * 3600 * 1000);
	assert_true(c.policy[SPOOL_NORMAL].drop_when_full);
	assert_int_equal(c.policy[SPOOL_BULK].max_age_ms, 30ull * 60 * 1000);
	assert_true(c.policy[SPOOL_BULK].drop_when_full); /* the default stays */
	conf_free(doc);
}

static void
test_rejections(void **state)
{
	(void)state;
	static const struct {
		const char *yaml, *says;
	} rows[] = {
		{ "spool:\n  sizee: 1\n", "t.yaml:2" },
		{ "spool:\n  max_bytes: 10\n", "t.yaml:2" },
		{ "spool:\n  max_bytes: 64M\n  segment_bytes: 32M\n", "quarter of max_bytes" },
		{ "spool:\n  commit_bytes: 1M\n  buffer_bytes: 512k\n", "at least commit_bytes" },
		{ "spool:\n  dir: relative/path\n", "absolute" },
		{ "spool:\n  classes:\n    urgent: {max_age: 1s}\n", "t.yaml:3" },
		{ "spool:\n  classes:\n    bulk: {drop_when_full: perhaps}\n", "t.yaml:3" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct spool_config c;
		assert_int_equal(spool_config_parse(load(rows[i].yaml), &c), -1);
		assert_non_null(conf_first_error(doc));
		if (!strstr(conf_errors(doc), rows[i].says))
			fail_msg(
			    "row %zu: '%s' does not say '%s'", i, conf_errors(doc), rows[i].says);
		conf_free(doc);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent_gives_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_rejections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
