/*
 * log_capture.c: stderr into a file and back (log_capture.h).
 */
#include "log_capture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static int saved_stderr = -1;
static char path[64];

static void
remove_file(void)
{
	if (path[0] != '\0')
		unlink(path);
	path[0] = '\0';
}

void
log_capture_begin(void)
{
	static int registered;
	int fd;

	if (!registered++)
		atexit(remove_file);
	log_capture_end();
	remove_file();
	snprintf(path, sizeof(path), "/tmp/egw-test-log.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

void
log_capture_end(void)
{
	char line[1024];
	FILE *f;

	if (saved_stderr < 0)
		return;
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	saved_stderr = -1;
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

int
log_capture_count(const char *s, const char *t)
{
	char line[1024];
	int n = 0;
	FILE *f;

	log_capture_end();
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, s) != NULL && (t == NULL || strstr(line, t) != NULL);
	fclose(f);
	return n;
}
