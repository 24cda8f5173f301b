/* test_decode.c: every type and byte/word order (agent/modbus/decode.c), and write encoding. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "decode.h"

static struct mb_point
pt(enum mb_type t, bool byte_swap, bool word_swap)
{
	struct mb_point p;

	memset(&p, 0, sizeof(p));
	p.func = MB_FN_HOLDING;
	p.type = t;
	p.count = mb_type_regs(t);
	p.byte_swap = byte_swap;
	p.word_swap = word_swap;
	p.scale = 1.0;
	return p;
}

/* 0x11223344 as the four orders put it on the wire. */
static void
test_u32_orders(void **state)
{
	const uint16_t abcd[] = { 0x1122, 0x3344 }, cdab[] = { 0x3344, 0x1122 },
		       badc[] = { 0x2211, 0x4433 }, dcba[] = { 0x4433, 0x2211 };
	struct mb_point p;
	struct mb_value v;

	(void)state;
	p = pt(MB_T_U32, false, false);
	mb_decode_regs(&p, abcd, &v);
	assert_int_equal(v.uval, 0x11223344);
	p = pt(MB_T_U32, false, true);
	mb_decode_regs(&p, cdab, &v);
	assert_int_equal(v.uval, 0x11223344);
	p = pt(MB_T_U32, true, false);
	mb_decode_regs(&p, badc, &v);
	assert_int_equal(v.uval, 0x11223344);
	p = pt(MB_T_U32, true, true);
	mb_decode_regs(&p, dcba, &v);
	assert_int_equal(v.uval, 0x11223344);
	assert_true(v.exact);
}

static void
test_signed_and_64(void **state)
{
	const uint16_t m1[] = { 0xffff, 0xffff, 0xffff, 0xfffe };
	const uint16_t u64[] = { 0x0102, 0x0304, 0x0506, 0x0708 };
	const uint16_t u64ws[] = { 0x0708, 0x0506, 0x0304, 0x0102 };
	struct mb_point p;
	struct mb_value v;

	(void)state;
	p = pt(MB_T_I16, false, false);
	mb_decode_regs(&p, m1 + 3, &v);
	assert_int_equal(v.ival, -2);
	p = pt(MB_T_I32, false, false);
	mb_decode_regs(&p, m1 + 2, &v);
	assert_int_equal(v.ival, -2);
	p = pt(MB_T_I64, false, false);
	mb_decode_regs(&p, m1, &v);
	assert_int_equal(v.ival, -2);
	p = pt(MB_T_U64, false, false);
	mb_decode_regs(&p, u64, &v);
	assert_true(v.uval == 0x0102030405060708ull);
	p = pt(MB_T_U64, false, true);
	mb_decode_regs(&p, u64ws, &v);
	assert_true(v.uval == 0x0102030405060708ull);
}

static void
test_floats_scale_offset(void **state)
{
	const uint16_t f32[] = { 0x41c8, 0x0000 }; /* 25.0 */
	const uint16_t f32ws[] = { 0x0000, 0x41c8 };
	const uint16_t f64[] = { 0x4009, 0x21fb, 0x5444, 0x2d18 }; /* pi */
	const uint16_t raw[] = { 2345 };
	struct mb_point p;
	struct mb_value v;

	(void)state;
	p = pt(MB_T_F32, false, false);
	mb_decode_regs(&p, f32, &v);
	assert_true(v.num == 25.0);
	assert_false(v.exact);
	p = pt(MB_T_F32, false, true);
	mb_decode_regs(&p, f32ws, &v);
	assert_true(v.num == 25.0);
	p = pt(MB_T_F64, false, false);
	mb_decode_regs(&p, f64, &v);
	assert_true(fabs(v.num - M_PI) < 1e-15);
	p = pt(MB_T_U16, false, false);
	p.scale = 0.1;
	p.offset = -100;
	mb_decode_regs(&p, raw, &v);
	assert_true(fabs(v.num - 134.5) < 1e-9);
	assert_false(v.exact);
}

/* A scaled integer prints as its decimal, not as the product's binary rounding
 * (1807 * 0.1 is 180.70000000000002 in binary); unscaled doubles keep every digit. */
static void
test_json_scaled_decimal(void **state)
{
	const uint16_t raw[] = { 1807 };
	const uint16_t third[] = { 0x3fd5, 0x5555, 0x5555, 0x5555 }; /* 1/3 */
	struct mb_point p;
	struct mb_value v;
	char js[64];

	(void)state;
	p = pt(MB_T_I16, false, false);
	p.scale = 0.1;
	mb_decode_regs(&p, raw, &v);
	mb_value_json(&p, &v, js, sizeof(js));
	assert_string_equal(js, "180.7");
	p.scale = 0.01;
	mb_decode_regs(&p, raw, &v);
	mb_value_json(&p, &v, js, sizeof(js));
	assert_string_equal(js, "18.07");
	/* a round value is not written in exponent form (100 * 0.1 once printed as 1e+01) */
	{
		const uint16_t hundred[] = { 100 }, big[] = { 25000 };

		p.scale = 0.1;
		mb_decode_regs(&p, hundred, &v);
		mb_value_json(&p, &v, js, sizeof(js));
		assert_string_equal(js, "10");
		p.scale = 1000;
		mb_decode_regs(&p, big, &v);
		mb_value_json(&p, &v, js, sizeof(js));
		assert_string_equal(js, "25000000");
	}
	p = pt(MB_T_F64, false, false);
	mb_decode_regs(&p, third, &v);
	mb_value_json(&p, &v, js, sizeof(js));
	assert_string_equal(js, "0.3333333333333333");
}

static void
test_bits_bool_string(void **state)
{
	const uint16_t status[] = { 0x0009 };
	const uint16_t name[] = { 0x4142, 0x4344, 0x2000 }; /* "ABCD " */
	const uint16_t name_bs[] = { 0x4241, 0x4443 };
	struct mb_point p;
	struct mb_value v;
	char js[64];

	(void)state;
	p = pt(MB_T_BIT, false, false);
	p.bit = 3;
	mb_decode_regs(&p, status, &v);
	assert_int_equal(v.uval, 1);
	p.bit = 1;
	mb_decode_regs(&p, status, &v);
	assert_int_equal(v.uval, 0);
	mb_value_json(&p, &v, js, sizeof(js));
	assert_string_equal(js, "false");
	p = pt(MB_T_STRING, false, false);
	p.count = 3;
	mb_decode_regs(&p, name, &v);
	assert_string_equal(v.str, "ABCD");
	mb_value_json(&p, &v, js, sizeof(js));
	assert_string_equal(js, "\"ABCD\"");
	p = pt(MB_T_STRING, true, false);
	p.count = 2;
	mb_decode_regs(&p, name_bs, &v);
	assert_string_equal(v.str, "ABCD");
	p = pt(MB_T_BOOL, false, false);
	p.func = MB_FN_COIL;
	mb_decode_bit(&p, 1, &v);
	mb_value_json(&p, &v, js, sizeof(js));
	assert_string_equal(js, "true");
}

static void
test_encode_round_trip_and_range(void **state)
{
	static const enum mb_type types[] = { MB_T_U16, MB_T_I16, MB_T_U32, MB_T_I32, MB_T_U64,
		MB_T_I64, MB_T_F32, MB_T_F64 };
	uint16_t regs[4];
	struct mb_value v;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		for (int o = 0; o < 4; o++) {
			struct mb_point p = pt(types[i], o & 1, o & 2);
			double want =
			    (types[i] == MB_T_U16 || types[i] == MB_T_U32 || types[i] == MB_T_U64)
			    ? 1234.0
			    : -1234.0;

			p.scale = 0.5;
			assert_int_equal(mb_encode_regs(&p, want, regs, err, sizeof(err)), 0);
			mb_decode_regs(&p, regs, &v);
			assert_true(v.num == want);
		}
	struct mb_point p = pt(MB_T_U16, false, false);
	assert_int_equal(mb_encode_regs(&p, 70000, regs, err, sizeof(err)), -ERANGE);
	assert_int_equal(mb_encode_regs(&p, -1, regs, err, sizeof(err)), -ERANGE);
	p.has_max = true;
	p.max = 100;
	assert_int_equal(mb_encode_regs(&p, 101, regs, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "outside"));
	assert_int_equal(mb_encode_regs(&p, NAN, regs, err, sizeof(err)), -EINVAL);
	/* the scale takes a finite value out of range: refused, not written as +Inf */
	p = pt(MB_T_F64, false, false);
	p.scale = 0.1;
	assert_int_equal(mb_encode_regs(&p, 1e308, regs, err, sizeof(err)), -ERANGE);
	p = pt(MB_T_F32, false, false);
	assert_int_equal(mb_encode_regs(&p, 1e39, regs, err, sizeof(err)), -ERANGE);
}

static void
test_deadband(void **state)
{
	struct mb_value a = { .kind = MB_V_NUM, .num = 10.0 }, b = a;

	(void)state;
	b.num = 10.4;
	assert_true(mb_value_within(&a, &b, 0.5));
	b.num = 10.6;
	assert_false(mb_value_within(&a, &b, 0.5));
	b.num = 10.0;
	assert_true(mb_value_within(&a, &b, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u32_orders),
		cmocka_unit_test(test_signed_and_64),
		cmocka_unit_test(test_floats_scale_offset),
		cmocka_unit_test(test_json_scaled_decimal),
		cmocka_unit_test(test_bits_bool_string),
		cmocka_unit_test(test_encode_round_trip_and_range),
		cmocka_unit_test(test_deadband),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
