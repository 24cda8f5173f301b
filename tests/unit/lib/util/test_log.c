/*
 * test_log.c: lib/util/log.c as an operator reads it. Lines on stderr carry a time, the program
 * and the level, or under systemd (JOURNAL_STREAM naming stderr) only the journal's <N>
 * priority; levels filter, names parse in any case, an overlong line is cut, and the rate
 * limiter lets one line through per interval and says how many it held back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static char path[] = "/tmp/test_log.XXXXXX";
static int saved = -1;

/* stderr into a temporary file for the test; returns what was written. */
static void
capture(void)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *
captured(void)
{
	static char text[8192];
	FILE *f;
	size_t n;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	unlink(path);
	strcpy(path, "/tmp/test_log.XXXXXX");
	return text;
}

static void
test_plain_lines_and_levels(void **state)
{
	char *out, big[3000];

	(void)state;
	unsetenv("JOURNAL_STREAM");
	capture();
	log_init("tlog", LOG_LVL_WARN);
	assert_false(log_to_journal());
	log_err("disk %s", "gone");
	log_warnx("slow");
	log_info("not shown");
	log_debug("not shown either");
	log_set_level(LOG_LVL_DEBUG);
	assert_int_equal(log_get_level(), LOG_LVL_DEBUG);
	log_debug("now %d", 4);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_err("%s", big);
	out = captured();
	assert_non_null(strstr(out, "Z tlog[error] disk gone\n"));
	assert_non_null(strstr(out, "Z tlog[warn] slow\n"));
	assert_non_null(strstr(out, "Z tlog[debug] now 4\n"));
	assert_null(strstr(out, "not shown"));
	/* the long line is cut to the line buffer, not split or overflowed */
	assert_true(strlen(strrchr(out, '[')) < 1024);
}

static void
test_journal_lines(void **state)
{
	struct stat st;
	char js[64], *out;

	(void)state;
	capture();
	assert_int_equal(fstat(2, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("tlog", LOG_LVL_INFO);
	assert_true(log_to_journal());
	log_err("e%d", 1);
	log_warnx("w");
	log_info("i");
	out = captured();
	assert_string_equal(out, "<3>e1\n<4>w\n<6>i\n");
	/* another stream, or a value that does not parse: not the journal */
	setenv("JOURNAL_STREAM", "1:2", 1);
	log_init("tlog", LOG_LVL_INFO);
	assert_false(log_to_journal());
	setenv("JOURNAL_STREAM", "journal", 1);
	log_init("tlog", LOG_LVL_INFO);
	assert_false(log_to_journal());
	unsetenv("JOURNAL_STREAM");
	log_init("tlog", LOG_LVL_ERR);
}

static void
test_level_names(void **state)
{
	enum log_level l = LOG_LVL_ERR;

	(void)state;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("WARN", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("verbose", &l), -1);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_string_equal(log_level_names[LOG_LVL_INFO], "info");
	assert_null(log_level_names[LOG_LVL_DEBUG + 1]);
}

static void
test_ratelimit(void **state)
{
	struct log_ratelimit rl = { 0 };
	uint64_t sup = 99;

	(void)state;
	assert_int_equal(log_ratelimit_ok(&rl, 3600, &sup), 1);
	assert_int_equal(sup, 0);
	assert_int_equal(log_ratelimit_ok(&rl, 3600, &sup), 0);
	assert_int_equal(log_ratelimit_ok(&rl, 3600, &sup), 0);
	assert_int_equal(log_ratelimit_ok(&rl, 0, &sup), 1); /* interval over: says what it held */
	assert_int_equal(sup, 2);
	assert_int_equal(log_ratelimit_ok(&rl, 0, &sup), 1);
	assert_int_equal(sup, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_lines_and_levels),
		cmocka_unit_test(test_journal_lines),
		cmocka_unit_test(test_level_names),
		cmocka_unit_test(test_ratelimit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
