/*
 * dp_log.c: DPDK's own log lines go through the project's logger (lib/util/log.h) once, with
 * their level: to the journal with a priority under systemd, to stderr otherwise. Without this
 * the EAL writes each line to stdout and to syslog, and the journal shows it twice.
 */
#include <stdio.h>
#include <string.h>

#include <rte_log.h>

#include "dp_main.h"
#include "log.h"

/* A line may arrive in pieces (one vfprintf, then fflush): kept per thread until its '\n'. */
static __thread char pending[512];
static __thread size_t pending_n;

static enum log_level
level_of_current(void)
{
	unsigned l = (unsigned)rte_log_cur_msg_loglevel();

	if (l <= RTE_LOG_ERR)
		return LOG_LVL_ERR;
	if (l == RTE_LOG_WARNING)
		return LOG_LVL_WARN;
	return l == RTE_LOG_DEBUG ? LOG_LVL_DEBUG : LOG_LVL_INFO;
}

static ssize_t
dpdk_log_write(void *cookie, const char *buf, size_t len)
{
	(void)cookie;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n' || pending_n == sizeof(pending) - 1) {
			pending[pending_n] = '\0';
			if (pending_n > 0)
				log_msg(level_of_current(), "dpdk: %s", pending);
			pending_n = 0;
			if (buf[i] == '\n')
				continue;
		}
		pending[pending_n++] = buf[i];
	}
	return (ssize_t)len;
}

int
dp_log_route_dpdk(void)
{
	static const cookie_io_functions_t fns = { .write = dpdk_log_write };
	FILE *f = fopencookie(NULL, "w", fns);

	if (f == NULL)
		return -1;
	setvbuf(f, NULL, _IOLBF, 0);
	return rte_openlog_stream(f);
}
