/*
 * fuzz_dp_config.c: libFuzzer harness of the gateway config as the dataplane reads it
 * (dataplane/dp_config.c: the port, EAL, TCP, broker, channel and uplink-rule sections over
 * lib/conf and libyaml): any bytes as the config file. A config the dataplane cannot read must
 * keep it from starting with "file:line:col: reason", never take it down another way.
 *
 * Checks: nothing crashes or leaks (ASan, LSan); a refusal (-1) says where, in that form, under
 * the file's name; any other answer is 0.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_config.h"
#include "log.h"

/* A broken promise: say which, then stop (libFuzzer keeps the input). */
static void __attribute__((noreturn)) broken(const char *why, const char *err)
{
	fprintf(stderr, "fuzz_dp_config: %s: \"%s\"\n", why, err);
	abort();
}

/* "PATH:LINE:COL: reason" */
static bool
says_where(const char *err, const char *path)
{
	size_t n = strlen(path);
	char *end;

	if (strncmp(err, path, n) != 0 || err[n] != ':')
		return false;
	err += n + 1;
	(void)strtoul(err, &end, 10);
	if (end == err || *end != ':')
		return false;
	err = end + 1;
	(void)strtoul(err, &end, 10);
	return end != err && end[0] == ':' && end[1] == ' ' && end[2] != '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct dp_config cfg;
	char err[512] = "";
	int fd, rc;

	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/dev/shm/fuzz_dp_config.%d.yaml", (int)getpid());
		if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
			snprintf(path, sizeof(path), "/tmp/fuzz_dp_config.%d.yaml", (int)getpid());
		else
			close(fd);
	}
	log_set_level(LOG_LVL_ERR);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    (size > 0 && write(fd, data, size) != (ssize_t)size))
		broken("cannot write the config", path);
	close(fd);
	memset(&cfg, 0, sizeof(cfg));
	rc = dp_config_load(path, &cfg, err, sizeof(err));
	if (rc == 0)
		dp_config_free(&cfg);
	else if (rc != -1)
		broken("an answer other than 0 or -1", err);
	else if (!says_where(err, path))
		broken("a refusal that does not say where", err);
	unlink(path);
	return 0;
}
