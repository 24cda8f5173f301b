/* Unit tests for lib/conf: typed accessors, defaults, and file:line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>

#include "conf.h"

static struct conf_doc *
load(const char *text)
{
	struct conf_doc *doc = NULL;
	char err[256];

	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	return doc;
}

static void
test_scalars(void **state)
{
	(void)state;
	struct conf_doc *doc =
	    load("a: 42\nb: 1.5\nc: yes\nip: 198.18.0.1\nd: 250ms\ne: 2s\nsz: 64k\n"
		 "net: 198.18.0.0/24\nlist: [1, 2, 3]\n");
	conf_node r = conf_root(doc);
	uint64_t u, ms, sz;
	double d;
	bool b;
	uint32_t ip, net;
	uint8_t len;

	assert_int_equal(conf_u64(conf_get(r, "a"), 0, 100, &u), 0);
	assert_int_equal(u, 42);
	{
		uint32_t u32;

		assert_int_equal(conf_u32(conf_get(r, "a"), 0, 100, &u32), 0);
		assert_int_equal(u32, 42);
	}
	assert_int_equal(conf_double(conf_get(r, "b"), &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(conf_bool(conf_get(r, "c"), &b), 0);
	assert_true(b);
	assert_int_equal(conf_ipv4(conf_get(r, "ip"), &ip), 0);
	assert_int_equal(ip, htonl(0xC6120001));
	assert_int_equal(conf_duration_ms(conf_get(r, "d"), 0, 10000, &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(conf_get_duration_ms(r, "e", 0, 0, 10000, &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(conf_get_size_bytes(r, "sz", 0, 0, 1 << 20, &sz), 0);
	assert_int_equal(sz, 65536);
	assert_int_equal(conf_ipv4_prefix(conf_get(r, "net"), &net, &len), 0);
	assert_int_equal(len, 24);
	assert_int_equal(conf_seq_len(conf_get(r, "list")), 3);
	assert_int_equal(conf_get_u64(r, "missing", 7, 0, 10, &u), 0);
	assert_int_equal(u, 7);
	assert_null(conf_first_error(doc));
	conf_free(doc);
}

static void
test_errors_name_line(void **state)
{
	(void)state;
	struct conf_doc *doc = load("top:\n  port: 70000\n  typo_key: 1\n");
	conf_node top = conf_get(conf_root(doc), "top");
	static const char *const allowed[] = { "port", NULL };
	uint64_t u = 5;

	assert_int_equal(conf_u64(conf_get(top, "port"), 1, 65535, &u), -1);
	assert_int_equal(u, 5);
	assert_non_null(conf_first_error(doc));
	assert_non_null(strstr(conf_first_error(doc), "t.yaml:2:"));
	assert_non_null(strstr(conf_first_error(doc), "out of range"));
	assert_int_equal(conf_check_keys(top, allowed), -1);
	assert_int_equal(conf_error_count(doc), 2);
	conf_free(doc);
}

static void
test_parse_error(void **state)
{
	(void)state;
	struct conf_doc *doc = NULL;
	char err[256];
	const char *bad = "a: [1, 2\nb: 3\n";

	assert_int_equal(
	    conf_load_string("bad.yaml", bad, strlen(bad), &doc, err, sizeof(err)), -1);
	assert_null(doc);
	assert_non_null(strstr(err, "bad.yaml:"));
}

static void
test_enum_and_types(void **state)
{
	(void)state;
	static const char *const names[] = { "rtu", "tcp", NULL };
	struct conf_doc *doc = load("k: tcp\nbad: udp\nneg: -3\nstr: [1]\n");
	conf_node r = conf_root(doc);
	int e = -1;
	uint64_t u;
	const char *s;

	assert_int_equal(conf_enum(conf_get(r, "k"), names, &e), 0);
	assert_int_equal(e, 1);
	assert_int_equal(conf_enum(conf_get(r, "bad"), names, &e), -1);
	assert_non_null(strstr(conf_first_error(doc), "rtu, tcp"));
	assert_int_equal(conf_u64(conf_get(r, "neg"), 0, 10, &u), -1);
	{
		uint32_t u32 = 9;

		assert_int_equal(conf_u32(conf_get(r, "neg"), 0, 10, &u32), -1);
		assert_int_equal(u32, 9);
	}
	assert_int_equal(conf_str(conf_get(r, "str"), &s), -1);
	conf_free(doc);
}

static void
test_duplicate_keys(void **state)
{
	(void)state;
	struct conf_doc *doc = load("a: 1\nsub:\n  x: 1\n  y: 2\n  x: 3\na: 2\n");

	/* Recorded at load, both duplicates, each naming where the first one is. */
	assert_int_equal(conf_error_count(doc), 2);
	assert_non_null(
	    strstr(conf_errors(doc), "t.yaml:5:3: duplicate key 'x' (first at line 3)"));
	assert_non_null(
	    strstr(conf_errors(doc), "t.yaml:6:1: duplicate key 'a' (first at line 1)"));
	conf_free(doc);
}

static void
test_numbers_never_octal(void **state)
{
	(void)state;
	struct conf_doc *doc = load("z: 0\nlead: 010\nhex: 0x1F\nneg: -010\n");
	conf_node r = conf_root(doc);
	uint64_t u = 99;
	int64_t i = 99;

	assert_int_equal(conf_u64(conf_get(r, "z"), 0, 100, &u), 0);
	assert_int_equal(u, 0);
	assert_int_equal(conf_u64(conf_get(r, "hex"), 0, 100, &u), 0);
	assert_int_equal(u, 31);
	assert_int_equal(conf_u64(conf_get(r, "lead"), 0, 100, &u), -1);
	assert_int_equal(u, 31);
	assert_non_null(strstr(conf_first_error(doc), "t.yaml:2:7: '010' has a leading zero"));
	assert_non_null(strstr(conf_first_error(doc), "write 10"));
	assert_int_equal(conf_i64(conf_get(r, "neg"), -100, 100, &i), -1);
	assert_int_equal(i, 99);
	conf_free(doc);
}

static void
test_every_error_reported(void **state)
{
	(void)state;
	struct conf_doc *doc = load("a: x\nb: y\nc: z\n");
	conf_node r = conf_root(doc);
	uint64_t u;
	char buf[4096], small[60];

	assert_null(conf_errors(doc));
	conf_u64(conf_get(r, "a"), 0, 1, &u);
	conf_u64(conf_get(r, "b"), 0, 1, &u);
	conf_u64(conf_get(r, "c"), 0, 1, &u);
	conf_format_errors(doc, buf, sizeof(buf));
	assert_non_null(strstr(buf, "t.yaml:1:4: 'x'"));
	assert_non_null(strstr(buf, "\nt.yaml:2:4: 'y'"));
	assert_non_null(strstr(buf, "\nt.yaml:3:4: 'z'"));
	/* A short buffer keeps whole lines and says more were cut. */
	conf_format_errors(doc, small, sizeof(small));
	assert_non_null(strstr(small, "t.yaml:1:4:"));
	assert_null(strstr(small, "t.yaml:3:4:"));
	for (int k = 0; k < 40; k++)
		conf_error(r, "extra %d", k);
	assert_int_equal(conf_error_count(doc), 43);
	conf_format_errors(doc, buf, sizeof(buf));
	assert_non_null(strstr(buf, "(11 more errors not shown)"));
	conf_free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_errors_name_line),
		cmocka_unit_test(test_parse_error),
		cmocka_unit_test(test_enum_and_types),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_numbers_never_octal),
		cmocka_unit_test(test_every_error_reported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
