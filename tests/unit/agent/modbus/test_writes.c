/* test_writes.c: write command parsing and checks (agent/modbus/writes.c, jansson). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "writes.h"

static int
parse(const char *s, struct mb_write_req *r, char *err, size_t errlen)
{
	return mb_write_parse(s, strlen(s), r, err, errlen);
}

static void
test_parse_good_and_bad(void **state)
{
	struct mb_write_req r;
	char err[128];
	static const char *const bad[] = {
		"",
		"{",
		"[1]",
		"{\"device\":\"d\",\"point\":\"p\"}",
		"{\"device\":\"d\",\"point\":\"p\",\"value\":{\"x\":1}}",
		"{\"device\":\"d\",\"point\":\"p\",\"value\":1}x",
		"{\"device\":5,\"point\":\"p\",\"value\":1}",
		"{\"device\":\"d\",\"point\":\"p\",\"value\":1e}",
		"{\"device\":\"d\" \"point\":\"p\",\"value\":1}",
	};

	(void)state;
	assert_int_equal(
	    parse(" {\"id\":\"7\", \"device\":\"tc1\",\"point\":\"sp\",\"value\":21.5} ", &r, err,
		sizeof(err)),
	    0);
	assert_string_equal(r.id, "7");
	assert_string_equal(r.device, "tc1");
	assert_true(r.value == 21.5);
	assert_int_equal(
	    parse("{\"device\":\"d\",\"point\":\"c\",\"value\":true}", &r, err, sizeof(err)), 0);
	assert_true(r.value == 1.0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &r, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted bad command %zu: %s", i, bad[i]);
	/* integers a double holds exactly are taken, beyond 2^53 too; one it would round is not
	 * (it was written rounded, and its read-back said "ok") */
	assert_int_equal(parse("{\"device\":\"d\",\"point\":\"p\",\"value\":9007199254740992}", &r,
			     err, sizeof(err)),
	    0);
	assert_true(r.value == 9007199254740992.0);
	assert_int_equal(parse("{\"device\":\"d\",\"point\":\"p\",\"value\":1000000000000000000}",
			     &r, err, sizeof(err)),
	    0);
	assert_int_equal(parse("{\"device\":\"d\",\"point\":\"p\",\"value\":9007199254740993}", &r,
			     err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "exactly"));
	assert_int_equal(parse("{\"device\":\"d\",\"point\":\"p\",\"value\":9223372036854775807}",
			     &r, err, sizeof(err)),
	    -EINVAL);
}

/* Refusals that name the field, and the values each JSON type gives. */
static void
test_parse_refusals_named(void **state)
{
	static const struct {
		const char *cmd, *err;
	} bad[] = {
		{ "[1]", "a command is a JSON object" },
		{ "{\"device\":\"\",\"point\":\"p\",\"value\":1}",
		    "\"device\" must be a non-empty" },
		/* jansson refuses a NUL in a string before our own check would */
		{ "{\"device\":\"a\\u0000b\",\"point\":\"p\",\"value\":1}", "is not allowed" },
		{ "{\"id\":7,\"device\":\"d\",\"point\":\"p\",\"value\":1}", "\"id\" must be" },
		{ "{\"device\":\"d\",\"value\":1}", "missing \"point\"" },
		{ "{\"device\":\"d\",\"point\":\"p\",\"value\":\"a\\u0000b\"}", "is not allowed" },
		{ "{\"device\":\"d\",\"point\":\"p\",\"value\":null}",
		    "\"value\" must be a number, true/false or a string" },
		{ "{\"device\":\"d\",\"device\":\"e\",\"point\":\"p\",\"value\":1}", "bad JSON" },
	};
	struct mb_write_req r;
	char err[256], cmd[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse(bad[i].cmd, &r, err, sizeof(err)) != -EINVAL)
			fail_msg("case %zu accepted", i);
		if (strstr(err, bad[i].err) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].err);
	}
	/* a string value one longer than the longest string point */
	snprintf(cmd, sizeof(cmd), "{\"device\":\"d\",\"point\":\"p\",\"value\":\"%0*d\"}",
	    (int)sizeof(r.str), 0);
	assert_int_equal(parse(cmd, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"value\": a string of at most"));
	snprintf(cmd, sizeof(cmd), "{\"device\":\"d\",\"point\":\"p\",\"value\":\"%0*d\"}",
	    (int)sizeof(r.str) - 1, 0);
	assert_int_equal(parse(cmd, &r, err, sizeof(err)), 0);
	assert_true(r.is_str);
	assert_int_equal(strlen(r.str), sizeof(r.str) - 1);
	assert_int_equal(
	    parse("{\"device\":\"d\",\"point\":\"c\",\"value\":false}", &r, err, sizeof(err)), 0);
	assert_true(r.value == 0.0);
	assert_false(r.is_str);
	assert_string_equal(r.id, ""); /* id is optional */
}

static void
test_prepare(void **state)
{
	struct mb_point p;
	struct mb_write_op op;
	char err[128];

	(void)state;
	memset(&p, 0, sizeof(p));
	strcpy(p.name, "sp");
	p.func = MB_FN_HOLDING;
	p.type = MB_T_I16;
	p.count = 1;
	p.scale = 0.1;
	assert_int_equal(mb_write_prepare(&p, 21.5, &op, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "read-only"));
	p.writable = true;
	assert_int_equal(mb_write_prepare(&p, 21.5, &op, err, sizeof(err)), 0);
	assert_int_equal(op.regs[0], 215);
	assert_int_equal(mb_write_prepare(&p, -3276.9, &op, err, sizeof(err)), -ERANGE);
	p.func = MB_FN_COIL;
	p.type = MB_T_BOOL;
	assert_int_equal(mb_write_prepare(&p, 2, &op, err, sizeof(err)), -ERANGE);
	assert_int_equal(mb_write_prepare(&p, 1, &op, err, sizeof(err)), 0);
	assert_true(op.coil);
}

/* The full write set: FC15, FC6 or FC16 per profile, bits of a register, strings. */
static void
test_prepare_write_set(void **state)
{
	struct mb_point p;
	struct mb_write_op op;
	struct mb_write_req r;
	char err[128];

	(void)state;
	memset(&p, 0, sizeof(p));
	strcpy(p.name, "x");
	p.writable = true;
	p.scale = 1;
	p.func = MB_FN_COIL;
	p.type = MB_T_BOOL;
	p.count = 1;
	assert_int_equal(mb_write_prepare(&p, 1, &op, err, sizeof(err)), 0);
	assert_int_equal(op.how, MB_WR_COIL);
	p.write_multiple = true; /* write_single: multiple */
	assert_int_equal(mb_write_prepare(&p, 1, &op, err, sizeof(err)), 0);
	assert_int_equal(op.how, MB_WR_COILS);
	p.func = MB_FN_HOLDING;
	p.type = MB_T_U16;
	assert_int_equal(mb_write_prepare(&p, 7, &op, err, sizeof(err)), 0);
	assert_int_equal(op.how, MB_WR_REGS);
	assert_int_equal(op.count, 1);
	p.write_multiple = false;
	assert_int_equal(mb_write_prepare(&p, 7, &op, err, sizeof(err)), 0);
	assert_int_equal(op.how, MB_WR_REG);
	/* bit 3 of a register: read-modify-write, or FC22 */
	p.type = MB_T_BIT;
	p.bit = 3;
	assert_int_equal(mb_write_prepare(&p, 1, &op, err, sizeof(err)), 0);
	assert_int_equal(op.how, MB_WR_RMW);
	assert_int_equal(op.and_mask, 0xfff7);
	assert_int_equal(op.or_mask, 0x0008);
	p.mask_write = true;
	assert_int_equal(mb_write_prepare(&p, 0, &op, err, sizeof(err)), 0);
	assert_int_equal(op.how, MB_WR_MASK);
	assert_int_equal(op.or_mask, 0);
	assert_int_equal(mb_write_prepare(&p, 2, &op, err, sizeof(err)), -ERANGE);
	/* strings */
	p.type = MB_T_STRING;
	p.count = 3;
	assert_int_equal(
	    parse("{\"device\":\"d\",\"point\":\"s\",\"value\":\"ABC\"}", &r, err, sizeof(err)), 0);
	assert_true(r.is_str);
	assert_int_equal(mb_write_prepare_req(&p, &r, &op, err, sizeof(err)), 0);
	assert_int_equal(op.how, MB_WR_REGS);
	assert_int_equal(op.count, 3);
	assert_int_equal(op.regs[0], 0x4142);
	assert_int_equal(op.regs[1], 0x4300);
	assert_int_equal(op.regs[2], 0);
	assert_int_equal(
	    parse("{\"device\":\"d\",\"point\":\"s\",\"value\":\"ABCDEFG\"}", &r, err, sizeof(err)),
	    0);
	assert_int_equal(mb_write_prepare_req(&p, &r, &op, err, sizeof(err)), -ERANGE);
	assert_int_equal(mb_write_prepare(&p, 1, &op, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "must be a string"));
	p.type = MB_T_U16;
	p.count = 1;
	assert_int_equal(mb_write_prepare_req(&p, &r, &op, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "must be a number"));
}

static void
test_response_escapes(void **state)
{
	struct mb_write_req r = { .id = "a\"b", .device = "d", .point = "p" };
	char buf[256];

	(void)state;
	assert_true(
	    mb_write_response(buf, sizeof(buf), &r, false, "point 'p' is read-only", NULL) > 0);
	assert_string_equal(buf,
	    "{\"id\":\"a\\\"b\",\"device\":\"d\",\"point\":\"p\",\"status\":\"error\","
	    "\"reason\":\"point 'p' is read-only\"}");
	assert_true(mb_write_response(buf, sizeof(buf), &r, true, NULL, "21.5") > 0);
	assert_non_null(strstr(buf, "\"status\":\"ok\",\"value\":21.5}"));
}

/* The largest response: every field as long as it may be, every character a control
 * character (escaped to six), a 255-byte reason and a 159-byte value, fits
 * MB_WRITE_RESPONSE_MAX (the 1 KiB buffer before left such a command without a response). */
static void
test_response_largest(void **state)
{
	struct mb_write_req r = { 0 };
	static char buf[MB_WRITE_RESPONSE_MAX];
	char reason[256], value[160];

	(void)state;
	memset(r.id, 1, sizeof(r.id) - 1);
	memset(r.device, 1, sizeof(r.device) - 1);
	memset(r.point, 1, sizeof(r.point) - 1);
	memset(reason, 1, sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	memset(value, '9', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	assert_true(mb_write_response(buf, 1024, &r, false, reason, value) < 0);
	assert_true(mb_write_response(buf, sizeof(buf), &r, false, reason, value) > 0);
	assert_non_null(strstr(buf, "\\u0001\",\"value\":999"));
}

/* Mutated commands (flipped, dropped, inserted bytes) never crash and are accepted or refused
 * with a reason; under ASan this is a small fuzzer for the JSON reader. */
static void
test_mutated_commands(void **state)
{
	const char *seed = "{\"id\":\"7\",\"device\":\"tc1\",\"point\":\"sp\",\"value\":-21.5e0}";
	uint32_t r = 1;
	char buf[128], err[128];
	struct mb_write_req req;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		size_t n = strlen(seed);
		int rc;

		memcpy(buf, seed, n);
		for (int m = 0; m < 1 + i % 4; m++) {
			r = r * 1103515245u + 12345u;
			size_t at = (r >> 8) % n;

			switch ((r >> 4) % 3) {
			case 0:
				buf[at] = (char)(r >> 16);
				break;
			case 1:
				memmove(buf + at, buf + at + 1, n - at - 1);
				n--;
				break;
			default:
				if (n < sizeof(buf) - 1) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = (char)(r >> 20);
					n++;
				}
			}
		}
		err[0] = '\0';
		rc = mb_write_parse(buf, n, &req, err, sizeof(err));
		assert_true(rc == 0 || (rc == -EINVAL && err[0] != '\0'));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good_and_bad),
		cmocka_unit_test(test_parse_refusals_named),
		cmocka_unit_test(test_prepare),
		cmocka_unit_test(test_prepare_write_set),
		cmocka_unit_test(test_response_escapes),
		cmocka_unit_test(test_response_largest),
		cmocka_unit_test(test_mutated_commands),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
