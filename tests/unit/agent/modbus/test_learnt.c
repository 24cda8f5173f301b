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

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A state file is taken whole or not at all: every line must be one we wrote, the profile's
 * hash first; a file for another profile is not ours. Comments and blank lines are skipped. */
static void
test_state_file_lines(void **state)
{
	static const struct {
		const char *text;
		int rc;
	} cases[] = {
		{ "# learnt\n\nprofile 2a\nmax_regs 60\nmax_bits 800\nno_function coil\n"
		  "hole holding 10 2\nhole input 0 1\n",
		    0 },
		{ "profile 2b\nmax_regs 60\n", -ENOENT }, /* another profile's */
		{ "max_regs 60\nprofile 2a\n", -EINVAL }, /* the profile line comes first */
		{ "profile 2a\nmax_regs 0\n", -EINVAL },  /* limits out of range */
		{ "profile 2a\nmax_regs 126\n", -EINVAL },
		{ "profile 2a\nmax_bits 2001\n", -EINVAL },
		{ "profile 2a\nmax_bits 0\n", -EINVAL },
		{ "profile 2a\nno_function registers\n", -EINVAL }, /* no such table */
		{ "profile 2a\nhole registers 1 1\n", -EINVAL },
		{ "profile 2a\nhole holding 1 0\n", -EINVAL },     /* empty */
		{ "profile 2a\nhole holding 65535 2\n", -EINVAL }, /* past the end */
		{ "profile 2a\nhole holding 1\n", -EINVAL },       /* short */
		{ "profile 2a\ncolour red\n", -EINVAL },
	};
	char dir[] = "/tmp/egw-learnt-XXXXXX", path[128], cmd[160];
	struct mb_learnt l;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dev.state", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		put(path, cases[i].text);
		rc = mb_learnt_load(path, 0x2a, &l);
		if (rc != cases[i].rc)
			fail_msg("case %zu: %d, want %d", i, rc, cases[i].rc);
		if (rc == 0) {
			assert_int_equal(l.max_regs, 60);
			assert_int_equal(l.max_bits, 800);
			assert_int_equal(l.no_func, 1u << MB_FN_COIL);
			assert_int_equal(l.holes.n, 2);
		}
		mb_learnt_free(&l);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Saving: the folder is made (two levels), a path with no folder or too long is refused, a
 * folder that cannot be written is an error and leaves no temporary file. */
static void
test_state_file_save_errors(void **state)
{
	char dir[] = "/tmp/egw-learnt-XXXXXX", path[700], cmd[160];
	struct mb_learnt l, back;

	(void)state;
	memset(&l, 0, sizeof(l));
	l.max_regs = 10;
	l.max_bits = 20;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/dev.state", dir);
	assert_int_equal(mb_learnt_save(path, 7, &l), 0);
	assert_int_equal(mb_learnt_load(path, 7, &back), 0);
	assert_int_equal(back.max_regs, 10);
	assert_int_equal(back.max_bits, 20);
	mb_learnt_free(&back);
	assert_int_not_equal(mb_learnt_save("no-folder.state", 7, &l), 0);
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_not_equal(mb_learnt_save(path, 7, &l), 0);
	/* a regular file where the folder should be */
	snprintf(path, sizeof(path), "%s/file", dir);
	put(path, "x");
	snprintf(path, sizeof(path), "%s/file/dev.state", dir);
	assert_int_not_equal(mb_learnt_save(path, 7, &l), 0);
	assert_int_equal(mb_learnt_path(path, 8, dir, "bus", "dev"), -ENAMETOOLONG);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_and_forgotten_with_the_profile),
		cmocka_unit_test(test_state_file_lines),
		cmocka_unit_test(test_state_file_save_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
