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

static void
test_plan_never_reads_through_a_hole(void **state)
{
	struct mb_point p[] = { pt(MB_FN_HOLDING, 0, 1), pt(MB_FN_HOLDING, 1, 1),
		pt(MB_FN_HOLDING, 5, 1) };
	struct mb_hole h = { MB_FN_HOLDING, 3, 1 };
	struct mb_plan_limits l = rtu_limits(9600);
	struct mb_plan plan;

	(void)state;
	assert_int_equal(mb_plan_build(&plan, p, 3, &l), 0);
	assert_int_equal(plan.nblocks, 1); /* 3 unread registers: cheaper to read through */
	mb_plan_free(&plan);
	l.holes = &h;
	l.nholes = 1;
	assert_int_equal(mb_plan_build(&plan, p, 3, &l), 0);
	assert_int_equal(plan.nblocks, 2);
	assert_int_equal(plan.blocks[0].count, 2);
	assert_int_equal(plan.blocks[1].start, 5);
	mb_plan_free(&plan);
}

static void
test_holes_merge(void **state)
{
	struct mb_holes h = { 0 };

	(void)state;
	assert_int_equal(mb_holes_add(&h, MB_FN_HOLDING, 10, 5), 1);
	assert_int_equal(mb_holes_add(&h, MB_FN_HOLDING, 11, 2), 0); /* known */
	assert_int_equal(mb_holes_add(&h, MB_FN_INPUT, 10, 5), 1);   /* another table */
	assert_int_equal(mb_holes_add(&h, MB_FN_HOLDING, 15, 5), 1); /* touches: merged */
	assert_int_equal(h.n, 2);
	assert_true(mb_holes_hit(h.v, h.n, MB_FN_HOLDING, 19, 20));
	assert_false(mb_holes_hit(h.v, h.n, MB_FN_HOLDING, 20, 30));
	assert_false(mb_holes_hit(h.v, h.n, MB_FN_COIL, 10, 11));
	mb_holes_free(&h);
}

/* A device model: refuses reads over its holes (2) or longer than its limit (3). */
struct model {
	const struct mb_hole *holes;
	size_t nholes;
	uint16_t limit;
};

static int
model_read(const struct model *m, const struct mb_block *b)
{
	if (b->count > m->limit)
		return 3;
	return mb_holes_hit(m->holes, m->nholes, b->func, b->start, (uint32_t)b->start + b->count)
	    ? 2
	    : 0;
}

/* One scan as bus.c runs it; returns the exceptions it got. */
static int
scan(struct mb_plan *plan, const struct mb_point *p, const struct model *m, struct mb_holes *h,
    uint16_t *max_regs, uint16_t *max_bits)
{
	struct mb_learning lg = { 0 };
	int exc = 0;

	for (size_t bi = 0; bi < plan->nblocks; bi++) {
		int e = model_read(m, &plan->blocks[bi]);

		if (e == 0) {
			assert_int_equal(mb_learning_read_ok(&lg, &plan->blocks[bi]), 0);
			continue;
		}
		exc++;
		if (mb_plan_learn(plan, p, bi, e, &lg, h, max_regs, max_bits) & MB_LEARNT_SPLIT)
			bi--;
	}
	assert_true(mb_learning_finish(&lg, h) >= 0);
	mb_learning_free(&lg);
	return exc;
}

/* Exception 2 bisects around the hole and learns it; the next plan reads around it only, not
 * one request per point as the old split did. Exception 3 halves the read length. */
static void
test_learning_converges_to_the_plan_with_known_holes(void **state)
{
	struct mb_point p[40];
	const struct mb_hole truth[] = { { MB_FN_HOLDING, 20, 6 }, { MB_FN_HOLDING, 52, 4 },
		{ MB_FN_HOLDING, 80, 1 } };
	struct model m = { truth, 3, 60 };
	struct mb_plan_limits l = rtu_limits(9600), best = l;
	struct mb_holes h = { 0 };
	uint16_t max_regs = 0, max_bits = 0;
	struct mb_plan plan, ideal;
	int scans = 0, exc;
	size_t n = 0;

	(void)state;
	for (uint16_t a = 0; a < 120; a += 3)
		if (!mb_holes_hit(truth, 3, MB_FN_HOLDING, a, a + 2u))
			p[n++] = pt(MB_FN_HOLDING, a, 2);
	best.holes = truth;
	best.nholes = 3;
	best.max_regs = 60;
	assert_int_equal(mb_plan_build(&ideal, p, n, &best), 0);
	assert_int_equal(mb_plan_build(&plan, p, n, &l), 0);
	do {
		exc = scan(&plan, p, &m, &h, &max_regs, &max_bits);
		mb_plan_free(&plan);
		l.holes = h.v;
		l.nholes = h.n;
		if (max_regs)
			l.max_regs = max_regs;
		assert_int_equal(mb_plan_build(&plan, p, n, &l), 0);
		scans++;
	} while (exc > 0 && scans < 10);
	assert_int_equal(exc, 0);
	assert_true(scans <= 3);
	assert_true(max_regs >= 30 && max_regs <= 60);
	/* within 10% of the plan that knew the holes and the limit */
	assert_true(mb_plan_cost_us(&plan, &l.cost) <= 1.1 * mb_plan_cost_us(&ideal, &best.cost));
	mb_plan_free(&plan);
	mb_plan_free(&ideal);
	mb_holes_free(&h);
}

/* A point that is itself refused is learnt as a hole and read alone: no thrash. */
static void
test_refused_point_is_read_alone(void **state)
{
	struct mb_point p[] = { pt(MB_FN_HOLDING, 0, 1), pt(MB_FN_HOLDING, 1, 1),
		pt(MB_FN_HOLDING, 2, 1) };
	const struct mb_hole truth = { MB_FN_HOLDING, 1, 1 };
	struct model m = { &truth, 1, 125 };
	struct mb_plan_limits l = rtu_limits(9600);
	struct mb_holes h = { 0 };
	uint16_t mr = 0, mbits = 0;
	struct mb_plan plan;

	(void)state;
	assert_int_equal(mb_plan_build(&plan, p, 3, &l), 0);
	assert_int_equal(scan(&plan, p, &m, &h, &mr, &mbits), 3); /* block, half, the point */
	assert_int_equal(h.n, 1);
	mb_plan_free(&plan);
	l.holes = h.v;
	l.nholes = h.n;
	assert_int_equal(mb_plan_build(&plan, p, 3, &l), 0);
	assert_int_equal(plan.nblocks, 3);
	/* steady: the refused point costs its one request a scan, nothing is learnt again */
	assert_int_equal(scan(&plan, p, &m, &h, &mr, &mbits), 1);
	assert_int_equal(h.n, 1);
	assert_int_equal(plan.nblocks, 3);
	/* the hole moves (a firmware update): the point answers, the hole is forgotten */
	assert_int_equal(mb_holes_forget(&h, MB_FN_HOLDING, 1, 1), 1);
	assert_int_equal(h.n, 0);
	assert_int_equal(mb_holes_forget(&h, MB_FN_HOLDING, 1, 1), 0);
	mb_plan_free(&plan);
	mb_holes_free(&h);
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
		cmocka_unit_test(test_plan_never_reads_through_a_hole),
		cmocka_unit_test(test_holes_merge),
		cmocka_unit_test(test_learning_converges_to_the_plan_with_known_holes),
		cmocka_unit_test(test_refused_point_is_read_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
