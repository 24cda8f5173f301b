/*
 * fuzz_agent_config.c: libFuzzer harness of the gateway config's reading by the agent
 * (agent/agent_config.c over lib/conf and libyaml): any bytes as the config file, read in both
 * modes (strict, as --check does; not strict, as the running agent does). A config is
 * operator input: a bad one must be refused with "file:line:col: reason" and nothing else.
 *
 * Checks: nothing crashes or leaks (ASan, LSan); a refusal (-EINVAL) says where, in that form
 * (the config's file, or in strict mode a profile file it names); any other answer is 0.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_config.h"
#include "log.h"

/* A broken promise: say which, then stop (libFuzzer keeps the input). */
static void __attribute__((noreturn)) broken(const char *why, const char *err)
{
	fprintf(stderr, "fuzz_agent_config: %s: \"%s\"\n", why, err);
	abort();
}

/* "FILE:LINE:COL: reason": the config's own file, or (strict) a profile file it names; or
 * "FILE: reason" for a profile file that could not be read at all (no line to name) */
static bool
says_where(const char *err)
{
	const char *p = strchr(err, ':');
	char *end;

	if (p == NULL || p == err)
		return false;
	if (p[1] == ' ' && p[2] != '\0' && p - err > 5 &&
	    (strncmp(p - 5, ".yaml", 5) == 0 || strncmp(p - 4, ".yml", 4) == 0))
		return true;
	p++;
	(void)strtoul(p, &end, 10);
	if (end == p || *end != ':')
		return false;
	p = end + 1;
	(void)strtoul(p, &end, 10);
	return end != p && end[0] == ':' && end[1] == ' ' && end[2] != '\0';
}

static char top[64]; /* the folder of its own (removed at exit) */

static void
remove_top(void)
{
	char etc[80];

	snprintf(etc, sizeof(etc), "%s/etc", top);
	rmdir(etc);
	rmdir(top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the config's name, two folders deep in a folder of its own that stays empty: a
	 * relative profiles_dir is taken from there, whatever folder the fuzzer runs in */
	static char name[96];

	if (name[0] == '\0') {
		char d[] = "/dev/shm/fuzz_agent_config.XXXXXX",
		     t[] = "/tmp/fuzz_agent_config.XXXXXX";
		const char *dir = mkdtemp(d);

		if (dir == NULL && (dir = mkdtemp(t)) == NULL)
			broken("no folder for the config", "");
		snprintf(top, sizeof(top), "%s", dir);
		atexit(remove_top);
		snprintf(name, sizeof(name), "%s/etc", dir);
		if (mkdir(name, 0700) != 0)
			broken("no folder for the config", name);
		snprintf(name, sizeof(name), "%s/etc/gateway.yaml", dir);
	}
	for (int strict = 0; strict < 2; strict++) {
		struct agent_config cfg;
		char err[512] = "";
		int rc;

		log_set_level(LOG_LVL_ERR);
		rc = agent_config_parse_string_mode(
		    name, (const char *)data, size, strict, &cfg, err, sizeof(err));
		if (rc == 0)
			agent_config_free(&cfg);
		else if (rc != -EINVAL)
			broken("an answer other than 0 or -EINVAL", err);
		else if (!says_where(err))
			broken("a refusal that does not say where", err);
	}
	return 0;
}
