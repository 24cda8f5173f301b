/*
 * log.h: one-line-per-event logging for every edgegw program (OpenBSD log_warnx style).
 * Lines go to stderr with a time, the program name and a level; under systemd (JOURNAL_STREAM
 * names stderr) they carry the journal's <N> priority prefix instead and no time or name.
 * LOG_RATELIMITED() keeps a path that a peer can trigger from writing one line per packet.
 */
#ifndef EDGEGW_LOG_H
#define EDGEGW_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG
};

void log_init(const char *progname, enum log_level level);
/* Whether lines go to the journal (<N> prefixes): set by log_init. */
bool log_to_journal(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_level_parse(const char *s, enum log_level *out);
/* "error", "warn", "info", "debug", NULL: indexed by enum log_level (conf_enum takes it) */
extern const char *const log_level_names[];

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warnx(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                       \
	do {                                                 \
		if (log_get_level() >= LOG_LVL_DEBUG)        \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__); \
	} while (0)

/* At most one line per interval_s from this call site; says how many were suppressed. */
struct log_ratelimit {
	uint64_t last_s;
	uint64_t suppressed;
};
int log_ratelimit_ok(struct log_ratelimit *rl, unsigned interval_s, uint64_t *suppressed);

#define LOG_RATELIMITED(lvl, interval_s, fmt, ...)                                      \
	do {                                                                            \
		static __thread struct log_ratelimit rl_;                               \
		uint64_t sup_;                                                          \
		if (log_ratelimit_ok(&rl_, (interval_s), &sup_))                        \
			log_msg((lvl), fmt " (%llu similar suppressed)", ##__VA_ARGS__, \
			    (unsigned long long)sup_);                                  \
	} while (0)

#endif
