/* test_planner.c: the coalescing planner (agent/modbus/planner.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "planner.h"

static struct mb_point
pt(enum mb_func f, uint16_t addr, uint16_t count)
{
	struct mb_point p;

	memset(&p, 0, sizeof(p));
	p.func = f;
	p.address = addr;
	p.count = count;
	p.type = count == 2 ? MB_T_F32 : MB_T_U16;
	return p;
}

static struct mb_plan_limits
rtu_limits(uint32_t baud)
{
	struct mb_plan_limits l = { .max_regs = 125, .max_bits = 2000, .max_gap = -1 };

	mb_cost_rtu(&l.cost, baud, 11, 0);
	return l;
}

static void
test_cost_matches_environment_timing(void **state)
{
	struct mb_cost c;

	(void)state;
	mb_cost_rtu(&c, 9600, 11, 0);
	/* ENVIRONMENT.md: a 125-register read takes 305 ms at 9600, 309 ms with both gaps. */
	assert_true(mb_cost_read_us(&c, MB_FN_HOLDING, 125) > 308000.0);
	assert_true(mb_cost_read_us(&c, MB_FN_HOLDING, 125) < 310000.0);
	mb_cost_rtu(&c, 115200, 11, 0);
	assert_true(mb_cost_read_us(&c, MB_FN_HOLDING, 125) - 2 * 1750.0 > 25000.0);
	assert_true(mb_cost_read_us(&c, MB_FN_HOLDING, 125) - 2 * 1750.0 < 26000.0);
}

static void
test_adjacent_points_merge(void **state)
{
	struct mb_point p[] = { pt(MB_FN_HOLDING, 10, 2), pt(MB_FN_HOLDING, 0, 1),
		pt(MB_FN_HOLDING, 1, 9) };
	struct mb_plan_limits l = rtu_limits(9600);
	struct mb_plan plan;

	(void)state;
	assert_int_equal(mb_plan_build(&plan, p, 3, &l), 0);
	assert_int_equal(plan.nblocks, 1);
	assert_int_equal(plan.blocks[0].start, 0);
	assert_int_equal(plan.blocks[0].count, 12);
	assert_int_equal(plan.blocks[0].npts, 3);
	assert_int_equal(plan.idx[0], 1); /* sorted by address */
	mb_plan_free(&plan);
}

static void
test_small_gap_read_through_large_gap_split(void **state)
{
	/* Request overhead at 9600 is 20 characters: a 5-register gap (10 chars) is read
	 * through, a 20-register gap (40 chars) is not. */
	struct mb_point p[] = { pt(MB_FN_INPUT, 0, 2), pt(MB_FN_INPUT, 7, 2),
		pt(MB_FN_INPUT, 29, 2) };
	struct mb_plan_limits l = rtu_limits(9600);
	struct mb_plan plan;

	(void)state;
	assert_int_equal(mb_plan_build(&plan, p, 3, &l), 0);
	assert_int_equal(plan.nblocks, 2);
	assert_int_equal(plan.blocks[0].count, 9);
	assert_int_equal(plan.blocks[1].start, 29);
	mb_plan_free(&plan);
	l.max_gap = 2; /* a device that rejects reads over unmapped registers */
	assert_int_equal(mb_plan_build(&plan, p, 3, &l), 0);
	assert_int_equal(plan.nblocks, 3);
	mb_plan_free(&plan);
}

static void
test_tables_never_merge_and_limits_hold(void **state)
{
	struct mb_point p[200];
	struct mb_plan_limits l = rtu_limits(115200);
	struct mb_plan plan;

	(void)state;
	for (int i = 0; i < 100; i++)
		p[i] = pt(MB_FN_HOLDING, (uint16_t)(2 * i), 2); /* 200 registers in a row */
	for (int i = 100; i < 200; i++)
		p[i] = pt(MB_FN_COIL, (uint16_t)(30 * i), 1); /* sparse coils */
	assert_int_equal(mb_plan_build(&plan, p, 200, &l), 0);
	for (size_t b = 0; b < plan.nblocks; b++) {
		if (plan.blocks[b].func == MB_FN_HOLDING)
			assert_true(plan.blocks[b].count <= 125);
		else
			assert_true(plan.blocks[b].count <= 2000);
	}
	/* 200 registers need two reads (124 + 76 since points do not straddle). */
	assert_int_equal(plan.blocks[0].func, MB_FN_COIL);
	assert_int_equal(plan.blocks[plan.nblocks - 2].count, 124);
	assert_int_equal(plan.blocks[plan.nblocks - 1].count, 76);
	/* coils 30 apart: 30 bits cost 4 bytes, far less than a request: all coils in 2 reads */
	assert_int_equal(plan.nblocks, 4);
	l.max_regs = 10;
	mb_plan_free(&plan);
	assert_int_equal(mb_plan_build(&plan, p, 100, &l), 0);
	assert_int_equal(plan.nblocks, 20);
	mb_plan_free(&plan);
}

static void
test_tcp_cost_reads_through_any_gap(void **state)
{
	struct mb_point p[] = { pt(MB_FN_HOLDING, 0, 1), pt(MB_FN_HOLDING, 120, 1) };
	struct mb_plan_limits l = {
		.max_regs = 125, .max_bits = 2000, .max_gap = -1, .cost = { .turnaround_us = 1000 }
	};
	struct mb_plan plan;

	(void)state;
	assert_int_equal(mb_plan_build(&plan, p, 2, &l), 0);
	assert_int_equal(plan.nblocks, 1);
	assert_int_equal(plan.blocks[0].count, 121);
	mb_plan_free(&plan);
}

static void
test_split_keeps_shared_registers_together(void **state)
{
	struct mb_point p[] = { pt(MB_FN_HOLDING, 0, 1), pt(MB_FN_HOLDING, 2, 1),
		pt(MB_FN_HOLDING, 2, 1), pt(MB_FN_HOLDING, 4, 2), pt(MB_FN_INPUT, 0, 1) };
	struct mb_plan_limits l = rtu_limits(9600);
	struct mb_plan plan;

	(void)state;
	p[1].type = p[2].type = MB_T_BIT;
	p[2].bit = 3;
	assert_int_equal(mb_plan_build(&plan, p, 5, &l), 0);
	assert_int_equal(plan.nblocks, 2);
	assert_int_equal(mb_plan_split(&plan, p, 0), 3);
	assert_int_equal(plan.nblocks, 4);
	assert_int_equal(plan.blocks[1].start, 2);
	assert_int_equal(plan.blocks[1].npts, 2);
	assert_int_equal(plan.blocks[2].start, 4);
	assert_int_equal(plan.blocks[2].count, 2);
	assert_true(plan.blocks[2].split);
	assert_int_equal(plan.blocks[3].func, MB_FN_INPUT);
	assert_int_equal(mb_plan_split(&plan, p, 0), -EINVAL); /* single point: nothing to split */
	mb_plan_free(&plan);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cost_matches_environment_timing),
		cmocka_unit_test(test_adjacent_points_merge),
		cmocka_unit_test(test_small_gap_read_through_large_gap_split),
		cmocka_unit_test(test_tables_never_merge_and_limits_hold),
		cmocka_unit_test(test_tcp_cost_reads_through_any_gap),
		cmocka_unit_test(test_split_keeps_shared_registers_together),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
