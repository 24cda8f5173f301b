/*
 * test_conf_refusals.c: what lib/conf refuses, and what it says. Every typed getter on a wrong
 * value, a wrong kind of node and a missing one; documents that do not load; the error list
 * when it overflows or does not fit. Each refusal returns -1 and adds one error naming
 * file:line:col and the reason, which is what an operator reads when a config is rejected.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"

static struct conf_doc *
load(const char *text)
{
	struct conf_doc *doc = NULL;
	char err[256];

	if (conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)) != 0)
		fail_msg("load: %s", err);
	return doc;
}

/* rc is a refusal and the newest error says want. */
static void
refused(struct conf_doc *doc, int rc, const char *want)
{
	const char *all = conf_errors(doc), *last;

	assert_int_equal(rc, -1);
	assert_non_null(all);
	last = strrchr(all, '\n');
	last = last ? last + 1 : all;
	if (strstr(last, want) == NULL)
		fail_msg("error '%s', want '%s'", last, want);
}

static void
test_documents_that_do_not_load(void **state)
{
	struct conf_doc *doc = NULL;
	char err[256], path[] = "/tmp/test_conf.XXXXXX";
	int fd;

	(void)state;
	assert_int_equal(conf_load_string("e.yaml", "", 0, &doc, err, sizeof(err)), -1);
	assert_string_equal(err, "e.yaml:1:1: empty document");
	assert_int_equal(conf_load_string("c.yaml", "# nothing\n", 10, &doc, err, sizeof(err)), -1);
	assert_string_equal(err, "c.yaml:1:1: empty document");
	assert_int_equal(
	    conf_load_string("p.yaml", "a: [1, 2\nb: 3\n", 14, &doc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "p.yaml:"));
	assert_non_null(strstr(err, "while parsing a flow sequence"));
	assert_null(doc);
	assert_int_equal(conf_load_file("/nonexistent/edgegw.yaml", &doc, err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/edgegw.yaml: No such file or directory");

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "k: v\n", 5), 5);
	close(fd);
	assert_int_equal(conf_load_file(path, &doc, err, sizeof(err)), 0);
	assert_string_equal(conf_file(doc), path);
	assert_null(conf_first_error(doc));
	assert_int_equal(conf_error_count(doc), 0);
	assert_int_equal(conf_format_errors(doc, err, sizeof(err)), 8);
	assert_string_equal(err, "no error");
	conf_free(doc);
	unlink(path);
	conf_free(NULL);
}

static void
test_wrong_kind_of_node(void **state)
{
	struct conf_doc *doc = load("s: 1\nm: {a: 1}\nl: [1, 2]\n? [x, y]\n: complex\n");
	conf_node r = conf_root(doc), s = conf_get(r, "s"), m = conf_get(r, "m"),
		  l = conf_get(r, "l"), none = conf_get(r, "none");
	static const char *const allowed[] = { "s", "m", "l", NULL };
	const char *str;

	(void)state;
	assert_true(conf_is_scalar(s) && !conf_is_scalar(m) && !conf_is_scalar(none));
	assert_true(conf_is_seq(l) && !conf_is_seq(none) && !conf_is_map(none));
	assert_false(conf_present(conf_get(none, "x"))); /* nothing under nothing, no error */
	assert_int_equal(conf_error_count(doc), 0);
	assert_false(conf_present(conf_get(s, "x")));
	refused(doc, -1, "t.yaml:1:4: expected a mapping (looking for 'x')");
	assert_int_equal(conf_map_len(s), 0);
	assert_int_equal(conf_seq_len(m), 0);
	assert_null(conf_map_key(m, 1));
	assert_false(conf_present(conf_map_val(m, 1)));
	assert_false(conf_present(conf_seq_at(l, 2)));
	assert_true(conf_present(conf_seq_at(l, 1)));
	refused(doc, conf_check_keys(s, allowed), "t.yaml:1:4: expected a mapping");
	assert_int_equal(conf_check_keys(none, allowed), 0);
	refused(doc, conf_check_keys(r, allowed), "t.yaml:4:3: unknown key '(non-scalar)'");
	refused(doc, conf_str(m, &str), "t.yaml:2:4: expected a string");
	refused(doc, conf_str(none, &str), "t.yaml:1:1: expected a string");
	conf_free(doc);
}

static void
test_integers(void **state)
{
	struct conf_doc *doc = load("neg: -1\nx: 12x\nbig: 99999999999999999999\nhex: 0x10\n"
				    "oct: 010\nzeros: 00\nplus: +5\nm: {a: 1}\n");
	conf_node r = conf_root(doc);
	uint64_t u;
	uint32_t u32;
	int64_t i;

	(void)state;
	refused(doc, conf_u64(conf_get(r, "neg"), 0, 10, &u), "'-1' is not an unsigned integer");
	refused(doc, conf_u64(conf_get(r, "x"), 0, 10, &u), "t.yaml:2:4: '12x' is not an unsigned");
	refused(doc, conf_u64(conf_get(r, "big"), 0, UINT64_MAX, &u), "is not an unsigned integer");
	assert_int_equal(conf_u64(conf_get(r, "hex"), 0, 100, &u), 0);
	assert_int_equal(u, 16);
	refused(doc, conf_u64(conf_get(r, "hex"), 0, 15, &u), "16 is out of range [0, 15]");
	refused(doc, conf_u64(conf_get(r, "oct"), 0, 100, &u),
	    "'010' has a leading zero (octal is not accepted): write 10");
	refused(doc, conf_u64(conf_get(r, "zeros"), 0, 100, &u),
	    "leading zero (octal is not "
	    "accepted): write 0");
	refused(doc, conf_u64(conf_get(r, "m"), 0, 100, &u), "t.yaml:8:4: expected an unsigned");
	refused(doc, conf_u32(conf_get(r, "hex"), 20, 30, &u32), "16 is out of range [20, 30]");
	refused(doc, conf_get_u32(r, "neg", 0, 0, 10, &u32), "'-1' is not an unsigned integer");
	assert_int_equal(conf_get_u32(r, "absent", 9, 0, 10, &u32), 0);
	assert_int_equal(u32, 9);

	assert_int_equal(conf_i64(conf_get(r, "neg"), -5, 5, &i), 0);
	assert_int_equal(i, -1);
	assert_int_equal(conf_i64(conf_get(r, "plus"), -5, 5, &i), 0);
	assert_int_equal(i, 5);
	refused(doc, conf_i64(conf_get(r, "plus"), -5, 4, &i), "5 is out of range [-5, 4]");
	refused(doc, conf_i64(conf_get(r, "x"), -5, 5, &i), "'12x' is not an integer");
	refused(doc, conf_i64(conf_get(r, "big"), INT64_MIN, INT64_MAX, &i), "is not an integer");
	refused(doc, conf_i64(conf_get(r, "oct"), -5, 5, &i), "'010' has a leading zero");
	refused(doc, conf_i64(conf_get(r, "m"), -5, 5, &i), "expected an integer");
	conf_free(doc);
}

static void
test_numbers_and_booleans(void **state)
{
	struct conf_doc *doc =
	    load("huge: 1e400\nnan: nan\ntail: 1.5x\nm: {a: 1}\nno: off\nmaybe: maybe\n");
	conf_node r = conf_root(doc);
	double d;
	bool b = true;

	(void)state;
	refused(doc, conf_double(conf_get(r, "huge"), &d), "'1e400' is not a number");
	refused(doc, conf_double(conf_get(r, "nan"), &d), "'nan' is not a number");
	refused(doc, conf_double(conf_get(r, "tail"), &d), "'1.5x' is not a number");
	refused(doc, conf_double(conf_get(r, "m"), &d), "expected a number");
	refused(doc, conf_get_double(r, "tail", 0, &d), "'1.5x' is not a number");
	assert_int_equal(conf_get_double(r, "absent", 2.5, &d), 0);
	assert_true(d == 2.5);
	assert_int_equal(conf_bool(conf_get(r, "no"), &b), 0);
	assert_false(b);
	refused(doc, conf_bool(conf_get(r, "maybe"), &b), "t.yaml:6:8: expected true or false");
	refused(doc, conf_bool(conf_get(r, "m"), &b), "expected true or false");
	assert_int_equal(conf_get_bool(r, "absent", true, &b), 0);
	assert_true(b);
	conf_free(doc);
}

static void
test_addresses(void **state)
{
	struct conf_doc *doc =
	    load("bad: 300.1.1.1\nnet: 198.18.0.0\nwide: 198.18.0.0/33\n"
		 "empty: 198.18.0.0/\nname: gw/24\nm: {a: 1}\n"
		 "long: 198.18.0.0/24xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxx\n");
	conf_node r = conf_root(doc);
	uint32_t a;
	uint8_t len;

	(void)state;
	refused(doc, conf_ipv4(conf_get(r, "bad"), &a), "'300.1.1.1' is not an IPv4 address");
	refused(doc, conf_ipv4(conf_get(r, "m"), &a), "'' is not an IPv4 address");
	refused(doc, conf_ipv4_prefix(conf_get(r, "net"), &a, &len), "'198.18.0.0' has no /length");
	refused(doc, conf_ipv4_prefix(conf_get(r, "wide"), &a, &len),
	    "'198.18.0.0/33' is not an IPv4 prefix");
	refused(doc, conf_ipv4_prefix(conf_get(r, "empty"), &a, &len), "is not an IPv4 prefix");
	refused(
	    doc, conf_ipv4_prefix(conf_get(r, "name"), &a, &len), "'gw/24' is not an IPv4 prefix");
	refused(doc, conf_ipv4_prefix(conf_get(r, "long"), &a, &len),
	    "expected an IPv4 prefix (a.b.c.d/len)");
	refused(doc, conf_ipv4_prefix(conf_get(r, "m"), &a, &len), "expected an IPv4 prefix");
	conf_free(doc);
}

static void
test_durations_sizes_enums(void **state)
{
	static const char *const names[] = { "rtu", "tcp", NULL };
	struct conf_doc *doc = load("unit: 5 parsecs\nneg: -1s\nforever: 1e30d\nspaced: 5 s\n"
				    "bare: 2\nhalf: 1.5k\nsz: 64q\nkind: udp\nm: {a: 1}\n");
	conf_node r = conf_root(doc);
	uint64_t v;
	int e;

	(void)state;
	refused(doc, conf_duration_ms(conf_get(r, "unit"), 0, 10, &v),
	    "'5 parsecs' is not a duration (e.g. 250ms, 5s, 2m, 1h)");
	refused(doc, conf_duration_ms(conf_get(r, "neg"), 0, 10, &v), "'-1s' is not a duration");
	refused(doc, conf_duration_ms(conf_get(r, "forever"), 0, UINT64_MAX, &v),
	    "'1e30d' is not a duration");
	refused(doc, conf_duration_ms(conf_get(r, "m"), 0, 10, &v), "'' is not a duration");
	assert_int_equal(conf_duration_ms(conf_get(r, "spaced"), 0, 10000, &v), 0);
	assert_int_equal(v, 5000);
	assert_int_equal(conf_duration_ms(conf_get(r, "bare"), 0, 10000, &v), 0);
	assert_int_equal(v, 2); /* a bare number is milliseconds */
	refused(doc, conf_duration_ms(conf_get(r, "spaced"), 0, 1000, &v),
	    "duration 5 s is out of range [0ms, 1000ms]");
	assert_int_equal(conf_size_bytes(conf_get(r, "half"), 0, 4096, &v), 0);
	assert_int_equal(v, 1536);
	refused(doc, conf_size_bytes(conf_get(r, "half"), 0, 1024, &v),
	    "size 1.5k is out of range [0, 1024] bytes");
	refused(doc, conf_size_bytes(conf_get(r, "sz"), 0, 1024, &v), "'64q' is not a size");
	refused(doc, conf_size_bytes(conf_get(r, "m"), 0, 1024, &v), "'' is not a size");
	refused(doc, conf_get_size_bytes(r, "sz", 1, 0, 1024, &v), "'64q' is not a size");
	refused(doc, conf_enum(conf_get(r, "kind"), names, &e), "'udp' is not one of: rtu, tcp");
	refused(doc, conf_enum(conf_get(r, "m"), names, &e), "'' is not one of: rtu, tcp");
	refused(doc, conf_get_enum(r, "kind", 0, names, &e), "'udp' is not one of: rtu, tcp");
	assert_int_equal(conf_get_enum(r, "absent", 1, names, &e), 0);
	assert_int_equal(e, 1);
	conf_free(doc);
}

/* Past 32 errors the rest are counted; a short buffer is cut at a whole line. */
static void
test_error_list_overflow(void **state)
{
	struct conf_doc *doc = load("a: x\n");
	conf_node a = conf_get(conf_root(doc), "a");
	char small[64], big[8192];
	uint64_t u;

	(void)state;
	for (int i = 0; i < 40; i++)
		assert_int_equal(conf_u64(a, 0, 1, &u), -1);
	assert_int_equal(conf_error_count(doc), 40);
	assert_string_equal(conf_first_error(doc), "t.yaml:1:4: 'x' is not an unsigned integer");
	assert_true(conf_format_errors(doc, big, sizeof(big)) > 0);
	assert_non_null(strstr(big, "\n(8 more errors not shown)"));
	assert_true(conf_format_errors(doc, small, sizeof(small)) >= (int)sizeof(small));
	assert_string_equal(
	    small, "t.yaml:1:4: 'x' is not an unsigned integer\n(more errors not sho");
	conf_free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_documents_that_do_not_load),
		cmocka_unit_test(test_wrong_kind_of_node),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_numbers_and_booleans),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_durations_sizes_enums),
		cmocka_unit_test(test_error_list_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
