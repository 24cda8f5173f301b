/* test_learnt.c: what the poller learnt, kept per device and forgotten with a new profile
 * (agent/modbus/learnt.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "learnt.h"

static void
test_kept_and_forgotten_with_the_profile(void **state)
{
	struct mb_point pts[2] = { { .func = MB_FN_HOLDING, .address = 0, .count = 1 },
		{ .func = MB_FN_HOLDING, .address = 20, .count = 2 } };
	struct mb_profile prof = { .name = "meter",
		.max_read_regs = 125,
		.max_read_bits = 2000,
		.points = pts,
		.npoints = 2 };
	struct mb_learnt l = { 0 }, back;
	char dir[] = "/tmp/egw-learnt-XXXXXX", path[512], cmd[600];
	uint64_t h;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(mb_learnt_path(path, sizeof(path), dir, "rtu1", "m1"), 0);
	assert_int_equal(mb_learnt_load(path, 1, &back), -ENOENT);
	h = mb_profile_hash(&prof);
	assert_int_equal(mb_holes_add(&l.holes, MB_FN_HOLDING, 5, 10), 1);
	assert_int_equal(mb_holes_add(&l.holes, MB_FN_INPUT, 7, 1), 1);
	l.max_regs = 60;
	assert_int_equal(mb_learnt_save(path, h, &l), 0); /* makes <dir>/modbus */
	assert_int_equal(mb_learnt_load(path, h, &back), 0);
	assert_int_equal(back.holes.n, 2);
	assert_int_equal(back.max_regs, 60);
	assert_true(mb_holes_hit(back.holes.v, back.holes.n, MB_FN_HOLDING, 14, 15));
	assert_false(mb_holes_hit(back.holes.v, back.holes.n, MB_FN_HOLDING, 15, 20));
	mb_learnt_free(&back);
	/* the profile changes (a point moves): what was learnt is forgotten */
	pts[1].address = 22;
	assert_true(mb_profile_hash(&prof) != h);
	assert_int_equal(mb_learnt_load(path, mb_profile_hash(&prof), &back), -ENOENT);
	mb_learnt_free(&l);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_and_forgotten_with_the_profile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
