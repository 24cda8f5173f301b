/* test_profile.c: profile parsing and its errors (agent/modbus/profile.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "profile.h"

static int
parse(const char *text, struct mb_profile *p, char *err, size_t errlen)
{
	return mb_profile_parse("t.yaml", text, strlen(text), p, err, errlen);
}

static void
test_good_profile(void **state)
{
	const char *y =
	    "name: meter\n"
	    "max_read_registers: 60\n"
	    "word_order: little\n"
	    "heartbeat: 30s\n"
	    "points:\n"
	    "  - {name: v, function: input, address: 0, type: f32, unit: V, deadband: 0.5}\n"
	    "  - {name: e, function: holding, address: 10, type: u64, word_order: big, qos: 1}\n"
	    "  - {name: s, function: holding, address: 20, type: string, length: 4}\n"
	    "  - {name: a, function: holding, address: 30, type: bit, bit: 0}\n"
	    "  - {name: b, function: holding, address: 30, type: bit, bit: 1}\n"
	    "  - {name: c, function: coil, address: 0, writable: true}\n";
	struct mb_profile p;
	char err[256];

	(void)state;
	assert_int_equal(parse(y, &p, err, sizeof(err)), 0);
	assert_string_equal(p.name, "meter");
	assert_int_equal(p.max_read_regs, 60);
	assert_int_equal(p.npoints, 6);
	assert_true(p.points[0].word_swap);
	assert_false(p.points[1].word_swap);
	assert_int_equal(p.points[1].count, 4);
	assert_int_equal(p.points[1].qos, 1);
	assert_int_equal(p.points[2].count, 4);
	assert_int_equal(p.points[0].heartbeat_ms, 30000);
	assert_int_equal(p.points[5].type, MB_T_BOOL);
	assert_true(p.points[5].writable);
	mb_profile_free(&p);
}

struct bad_case {
	const char *yaml;
	const char *want; /* substring of the error, which starts with t.yaml:LINE */
};

static void
test_bad_profiles(void **state)
{
	static const struct bad_case cases[] = {
		{ "points:\n  - {name: x, function: holding, address: 0, type: u24}\n",
		    "t.yaml:2:" },
		{ "points:\n  - {name: x, function: holding, address: 0, type: u24}\n",
		    "not one of" },
		{ "points:\n  - {name: x, function: holding, address: 0, byte_order: middle}\n",
		    "not one of" },
		{ "points:\n  - {name: x, function: holding, address: 65535, type: f32}\n",
		    "runs past" },
		{ "points:\n  - {name: x, function: holding, address: 70000}\n", "out of range" },
		{ "points:\n  - {name: x, function: holding, address: 0, type: u32}\n"
		  "  - {name: y, function: holding, address: 1}\n",
		    "t.yaml:3:" },
		{ "points:\n  - {name: x, function: holding, address: 0, type: u32}\n"
		  "  - {name: y, function: holding, address: 1}\n",
		    "overlaps" },
		{ "points:\n  - {name: x, function: coil, address: 0, type: u16}\n",
		    "must be of type bool" },
		{ "points:\n  - {name: x, function: input, address: 0, writable: true}\n",
		    "read-only" },
		{ "bit_write: sometimes\npoints:\n  - {name: x, function: holding, address: 0, "
		  "type: bit, bit: 2, writable: true}\n",
		    "not one of" },
		{ "points:\n  - {name: x, function: holding, address: 0, colour: red}\n",
		    "unknown key 'colour'" },
		{ "points:\n  - {name: x, function: holding, address: 0, type: string}\n",
		    "needs 'length'" },
		{ "points:\n  - {name: x, function: holding, address: 0, type: bit, bit: 16}\n",
		    "out of range" },
		{ "points:\n  - {name: x, function: holding, address: 0}\n  - {name: x, function: "
		  "holding, address: 1}\n",
		    "duplicate" },
		{ "points: []\n", "non-empty" },
		{ "points:\n  - {name: 'a b', function: holding, address: 0}\n",
		    "letters, digits" },
		{ "points:\n  - {name: a, function: holding, address: 0, unit: \"\\\"x\"}\n",
		    "unit must not" },
		{ "points:\n  - {name: x, function: holding, address: 0, scale: 0}\n", "scale" },
		{ "points:\n  - {name: x, function: holding, address: 0, min: 5, max: 1, writable: "
		  "true}\n",
		    "above max" },
		{ "points:\n  - [1, 2]\n", "mapping" },
		{ "topic: '{x}/{point}'\npoints:\n  - {name: x, function: holding, address: 0}\n",
		    "not a valid template" },
		{ "points: {\n", "t.yaml:" },
		{ "points:\n  - {name: x, function: holding, address: 0}\nholes:\n"
		  "  - {function: holding, address: 0, count: 4}\n",
		    "covers point 'x'" },
		{ "points:\n  - {name: x, function: holding, address: 0}\nholes:\n"
		  "  - {function: holding, count: 4}\n",
		    "needs an 'address'" },
		{ "points:\n  - {name: x, function: holding, address: 0}\nholes:\n"
		  "  - {function: holding, address: 65530, count: 10}\n",
		    "runs past" },
	};
	struct mb_profile p;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_not_equal(parse(cases[i].yaml, &p, err, sizeof(err)), 0);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
	}
}

/* More refusals, one place wrong each: the error names it. */
static void
test_more_bad_profiles(void **state)
{
#define P "points:\n  - "
	static const struct bad_case cases[] = {
		{ "- 1\n", "a profile must be a mapping" },
		{ "name: 'a b'\n" P "{name: x, function: holding, address: 0}\n",
		    "profile name 'a b'" },
		{ "colour: red\n" P "{name: x, function: holding, address: 0}\n",
		    "unknown key 'colour'" },
		{ "max_read_registers: 126\n" P "{name: x, function: holding, address: 0}\n",
		    "t.yaml:1:21: 126 is out of range [1, 125]" },
		{ "max_gap: -1\n" P "{name: x, function: holding, address: 0}\n",
		    "t.yaml:1:10: -1 is out of range" },
		{ "groups: 7\n" P "{name: x, function: holding, address: 0}\n",
		    "'groups' maps a name to an interval" },
		{ "addressing: octal\n" P "{name: x, function: holding, address: 0}\n",
		    "not one of" },
		{ "write_single: some\n" P "{name: x, function: holding, address: 0}\n",
		    "not one of" },
		{ "byte_order: middle\n" P "{name: x, function: holding, address: 0}\n",
		    "not one of" },
		{ "word_order: middle\n" P "{name: x, function: holding, address: 0}\n",
		    "not one of" },
		{ "qos: 2\n" P "{name: x, function: holding, address: 0}\n",
		    "t.yaml:1:6: 2 is out of range [0, 1]" },
		{ "deadband: x\n" P "{name: x, function: holding, address: 0}\n",
		    "t.yaml:1:11: 'x' is not a number" },
		{ "heartbeat: forever\n" P "{name: x, function: holding, address: 0}\n",
		    "'forever' is not a duration" },
		{ "points: 7\n", "a profile needs a non-empty 'points' list" },
		{ "name: x\n", "a profile needs a non-empty 'points' list" },
		{ P "{function: holding, address: 0}\n", "a point needs a 'name'" },
		{ P "{name: x, function: holding}\n", "point 'x' needs an 'address'" },
		{ P "{name: x, address: 0}\n", "point 'x' needs a 'function'" },
		{ P "{name: x, function: holding, address: 0, interval: 1s, group: fast}\n",
		    "an interval or a group, not both" },
		{ P "{name: x, function: holding, address: 0, group: fast}\n",
		    "no group 'fast' in the profile's groups" },
		{ "groups: {fast: 1ms}\n" P
		  "{name: x, function: holding, address: 0, group: fast}\n",
		    "t.yaml:1:16: duration 1ms is out of range" },
		{ P "{name: x, function: holding, address: 0, interval: 1ms}\n",
		    "t.yaml:2:56: duration 1ms is out of range" },
		{ "addressing: one\n" P "{name: x, function: holding, address: 0}\n",
		    "1-based: 1..65536" },
		{ "addressing: modicon\n" P "{name: x, address: 20001}\n",
		    "not a Modicon reference" },
		{ "addressing: modicon\n" P "{name: x, address: 40000}\n",
		    "not a Modicon reference" },
		{ "addressing: modicon\n" P "{name: x, function: input, address: 40001}\n",
		    "function input does not match reference 40001 (holding)" },
		{ P "{name: x, function: holding, address: 0, length: 2}\n",
		    "'length' is only for string points" },
		{ P "{name: x, function: holding, address: 0, type: bit}\n",
		    "a bit point needs 'bit'" },
		{ P "{name: x, function: holding, address: 0, bit: 3}\n",
		    "'bit' is only for bit points" },
		{ P "{name: x, function: holding, address: 0, writable: maybe}\n",
		    "t.yaml:2:56: expected true or false" },
		{ P "{name: x, function: discrete, address: 0, writable: true}\n", "read-only" },
		{ P "{name: x, function: holding, address: 0, min: x, writable: true}\n",
		    "t.yaml:2:51: 'x' is not a number" },
		{ P "{name: x, function: holding, address: 0, deadband: -1}\n",
		    "deadband must not be negative" },
		{ P "{name: x, function: holding, address: 0, unit: \"a\\tb\"}\n",
		    "unit must not" },
		{ P "{name: x, function: holding, address: 0, topic: 'a/#'}\n",
		    "topic 'a/#' is not a valid template" },
		{ P "{name: x, function: holding, address: 0, word_order: sideways}\n",
		    "not one of" },
		{ P "{name: x, function: holding, address: 0, offset: x}\n",
		    "t.yaml:2:54: 'x' is not a number" },
		{ P "{name: x, function: holding, address: 0}\nholes: 7\n",
		    "'holes' is a list of {function, address, count}" },
		{ P "{name: x, function: holding, address: 0}\nholes:\n  - 7\n",
		    "a hole is a mapping" },
		{ P "{name: x, function: holding, address: 0}\nholes:\n  - {function: holding, "
		    "address: 10, count: 2, colour: red}\n",
		    "unknown key 'colour'" },
		{ "addressing: modicon\n" P
		  "{name: x, address: 40001}\nholes:\n  - {address: 200001, "
		  "count: 2}\n",
		    "not a Modicon reference" },
		/* the error at the hole (it said "t.yaml:1:1: '' is not one of: coil, ...") */
		{ P "{name: x, function: holding, address: 0}\nholes:\n  - {address: 10, count: "
		    "2}\n",
		    "t.yaml:4:5: a hole needs a 'function'" },
	};
	struct mb_profile p;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (parse(cases[i].yaml, &p, err, sizeof(err)) == 0) {
			mb_profile_free(&p);
			fail_msg("case %zu accepted", i);
		}
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
	}
#undef P
}

static void
test_declared_holes(void **state)
{
	const char *y = "points:\n"
			"  - {name: a, function: holding, address: 0}\n"
			"  - {name: b, function: holding, address: 9}\n"
			"holes:\n"
			"  - {function: holding, address: 3, count: 4}\n"
			"  - {function: input, address: 0}\n";
	struct mb_profile p;
	char err[256];

	(void)state;
	assert_int_equal(parse(y, &p, err, sizeof(err)), 0);
	assert_int_equal(p.nholes, 2);
	assert_int_equal(p.holes[0].func, MB_FN_HOLDING);
	assert_int_equal(p.holes[0].start, 3);
	assert_int_equal(p.holes[0].count, 4);
	assert_int_equal(p.holes[1].func, MB_FN_INPUT);
	assert_int_equal(p.holes[1].count, 1);
	mb_profile_free(&p);
}

/* Addresses as manuals write them: 1-based and Modicon references. */
static void
test_addressing(void **state)
{
	const char *one = "addressing: one\n"
			  "points:\n"
			  "  - {name: a, function: holding, address: 1}\n"
			  "  - {name: b, function: coil, address: 65536}\n"
			  "holes:\n"
			  "  - {function: holding, address: 11, count: 2}\n";
	const char *modicon = "addressing: modicon\n"
			      "points:\n"
			      "  - {name: h, address: 40001}\n"
			      "  - {name: h6, address: 400101, type: f32}\n"
			      "  - {name: i, address: 30010}\n"
			      "  - {name: c, address: 1}\n"
			      "  - {name: d, address: 10002, function: discrete}\n";
	struct mb_profile p;
	char err[256];

	(void)state;
	assert_int_equal(parse(one, &p, err, sizeof(err)), 0);
	assert_int_equal(p.points[0].address, 0);
	assert_int_equal(p.points[1].address, 65535);
	assert_int_equal(p.holes[0].start, 10);
	mb_profile_free(&p);
	assert_int_equal(parse(modicon, &p, err, sizeof(err)), 0);
	assert_int_equal(p.points[0].func, MB_FN_HOLDING);
	assert_int_equal(p.points[0].address, 0);
	assert_int_equal(p.points[1].func, MB_FN_HOLDING);
	assert_int_equal(p.points[1].address, 100);
	assert_int_equal(p.points[2].func, MB_FN_INPUT);
	assert_int_equal(p.points[2].address, 9);
	assert_int_equal(p.points[3].func, MB_FN_COIL);
	assert_int_equal(p.points[3].address, 0);
	assert_int_equal(p.points[4].func, MB_FN_DISCRETE);
	assert_int_equal(p.points[4].address, 1);
	mb_profile_free(&p);
	assert_int_not_equal(parse("addressing: one\npoints:\n  - {name: a, function: holding, "
				   "address: 0}\n",
				 &p, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "1-based"));
	assert_int_not_equal(parse("addressing: modicon\npoints:\n  - {name: a, address: 20001}\n",
				 &p, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "not a Modicon reference"));
	assert_int_not_equal(parse("addressing: modicon\npoints:\n  - {name: a, address: 40001, "
				   "function: input}\n",
				 &p, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "does not match"));
}

/* Poll rates per point (interval:) or per group (groups: / group:). */
static void
test_poll_rates(void **state)
{
	const char *y = "groups: {fast: 200ms, slow: 1m}\n"
			"points:\n"
			"  - {name: a, function: holding, address: 0, group: fast}\n"
			"  - {name: b, function: holding, address: 1, interval: 5s}\n"
			"  - {name: c, function: holding, address: 2}\n";
	struct mb_profile p;
	char err[256];

	(void)state;
	assert_int_equal(parse(y, &p, err, sizeof(err)), 0);
	assert_int_equal(p.points[0].interval_ms, 200);
	assert_int_equal(p.points[1].interval_ms, 5000);
	assert_int_equal(p.points[2].interval_ms, 0);
	mb_profile_free(&p);
	assert_int_not_equal(
	    parse("points:\n  - {name: a, function: holding, address: 0, group: fast}\n", &p, err,
		sizeof(err)),
	    0);
	assert_non_null(strstr(err, "no group 'fast'"));
	assert_int_not_equal(parse("groups: {fast: 1ms}\npoints:\n  - {name: a, function: "
				   "holding, address: 0, group: fast}\n",
				 &p, err, sizeof(err)),
	    0);
}

/* Mutated profiles never crash the reader: a parse succeeds or says why. */
static void
test_mutated_profiles(void **state)
{
	const char *seed =
	    "name: m\nmax_read_registers: 60\npoints:\n"
	    "  - {name: v, function: input, address: 0, type: f32, unit: V, deadband: 0.5}\n"
	    "  - {name: s, function: holding, address: 20, type: string, length: 4}\n"
	    "  - {name: a, function: holding, address: 30, type: bit, bit: 1}\n";
	char buf[512], err[256];
	uint32_t r = 7;
	struct mb_profile p;

	(void)state;
	for (int i = 0; i < 3000; i++) {
		size_t n = strlen(seed);

		memcpy(buf, seed, n);
		for (int m = 0; m < 1 + i % 3; m++) {
			r = r * 1103515245u + 12345u;
			buf[(r >> 8) % n] = " :-{}[],\n0a9x\"'"[(r >> 20) % 16];
		}
		err[0] = '\0';
		if (mb_profile_parse("m.yaml", buf, n, &p, err, sizeof(err)) == 0)
			mb_profile_free(&p);
		else
			assert_true(strncmp(err, "m.yaml:", 7) == 0);
	}
}

/* Each bad point of a profile is reported, not only the first (issue 18). */
static void
test_every_bad_point_reported(void **state)
{
	static const char text[] = "name: p\n"
				   "points:\n"
				   "  - {name: a, function: holding, address: 0, type: u24}\n"
				   "  - {name: b, function: holding, address: 1}\n"
				   "  - {name: c, function: holding}\n"
				   "  - {name: d, function: holding, address: 3, qos: 2}\n";
	struct mb_profile p;
	char err[2048];

	(void)state;
	assert_int_equal(parse(text, &p, err, sizeof(err)), -EINVAL);
	if (strstr(err, "t.yaml:3:") == NULL || strstr(err, "t.yaml:5:") == NULL ||
	    strstr(err, "t.yaml:6:") == NULL || strstr(err, "t.yaml:4:") != NULL)
		fail_msg("want errors at lines 3, 5 and 6 only:\n%s", err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_profile),
		cmocka_unit_test(test_bad_profiles),
		cmocka_unit_test(test_more_bad_profiles),
		cmocka_unit_test(test_declared_holes),
		cmocka_unit_test(test_addressing),
		cmocka_unit_test(test_poll_rates),
		cmocka_unit_test(test_mutated_profiles),
		cmocka_unit_test(test_every_bad_point_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
