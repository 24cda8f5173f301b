/* log.c: see log.h. Thread-safe: one write per line, stderr is line-buffered. */
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static const char *log_prog = "edgegw";
static volatile enum log_level log_level_cur = LOG_LVL_INFO;
static bool log_journal;
/* One spelling of each level for every program and config (log_level: keys) */
const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
#define log_names log_level_names
/* syslog priorities (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG) for the journal's <N> prefix */
static const int log_prio[] = { 3, 4, 6, 7 };

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected to stderr: when stderr
 * is still that stream, the journal stamps and tags each line itself. */
static bool
stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *progname, enum log_level level)
{
	log_prog = progname;
	log_level_cur = level;
	log_journal = stderr_is_journal();
	setvbuf(stderr, NULL, _IOLBF, 0);
}

bool
log_to_journal(void)
{
	return log_journal;
}

void
log_set_level(enum log_level level)
{
	log_level_cur = level;
}
enum log_level
log_get_level(void)
{
	return log_level_cur;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; log_names[i] != NULL; i++)
		if (strcasecmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n;

	if (lvl > log_level_cur)
		return;
	if (log_journal) {
		/* <N>: the line's priority; no time or name, the journal records both */
		n = snprintf(line, sizeof(line), "<%d>", log_prio[lvl]);
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		fprintf(stderr, "%s\n", line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%s] ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000, log_prog, log_names[lvl]);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

int
log_ratelimit_ok(struct log_ratelimit *rl, unsigned interval_s, uint64_t *suppressed)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (rl->last_s != 0 && (uint64_t)ts.tv_sec < rl->last_s + interval_s) {
		rl->suppressed++;
		return 0;
	}
	rl->last_s = (uint64_t)ts.tv_sec ? (uint64_t)ts.tv_sec : 1;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return 1;
}
