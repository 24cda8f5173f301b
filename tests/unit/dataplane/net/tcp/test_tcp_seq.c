/* Unit tests for dataplane/net/tcp/tcp_seq.h: sequence comparisons across wrap-around. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tcp_seq.h"

static void
test_plain(void **state)
{
	(void)state;
	assert_true(SEQ_LT(1, 2));
	assert_false(SEQ_LT(2, 2));
	assert_true(SEQ_LEQ(2, 2));
	assert_true(SEQ_GT(3, 2));
	assert_false(SEQ_GT(2, 2));
	assert_true(SEQ_GEQ(2, 2));
	assert_false(SEQ_GEQ(1, 2));
}

static void
test_wrap(void **state)
{
	(void)state;
	/* 0xfffffff0 is "before" 0x10: 32 numbers apart across the wrap */
	assert_true(SEQ_LT(0xfffffff0u, 0x10u));
	assert_true(SEQ_GT(0x10u, 0xfffffff0u));
	assert_true(SEQ_LEQ(0xffffffffu, 0u));
	assert_true(SEQ_GEQ(0u, 0xffffffffu));
	assert_false(SEQ_LT(0u, 0xffffffffu));
	/* half the space away is the limit: 2^31 - 1 ahead is still "greater" */
	assert_true(SEQ_GT(0x7fffffffu, 0u));
	assert_true(SEQ_LT(0x80000001u, 0u));
	assert_int_equal(seq_max(0xfffffff0u, 5u), 5u);
	assert_int_equal(seq_min(0xfffffff0u, 5u), 0xfffffff0u);
}

static void
test_range(void **state)
{
	(void)state;
	/* a window straddling the wrap: [0xffffff00, 0x100) */
	assert_true(SEQ_IN_RANGE(0xffffff00u, 0xffffff00u, 0x100u));
	assert_true(SEQ_IN_RANGE(0u, 0xffffff00u, 0x100u));
	assert_true(SEQ_IN_RANGE(0xffu, 0xffffff00u, 0x100u));
	assert_false(SEQ_IN_RANGE(0x100u, 0xffffff00u, 0x100u));
	assert_false(SEQ_IN_RANGE(0xfffffeffu, 0xffffff00u, 0x100u));
	/* empty range */
	assert_false(SEQ_IN_RANGE(5u, 5u, 5u));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
