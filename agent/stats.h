/*
 * stats.h: the agent's counters in one place. Bus threads add with relaxed atomics; the main
 * loop reads them to write the stats JSON file and to log a dump on SIGUSR1. Ready to be
 * exported to Prometheus later (names follow stats.def).
 */
#ifndef EDGEGW_AGENT_STATS_H
#define EDGEGW_AGENT_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "counter_kind.h"

enum agent_dev_counter {
#define AGENT_DEV_COUNTER(n, k, d) AGENT_DC_##n,
#include "stats.def"
#undef AGENT_DEV_COUNTER
	AGENT_DC_COUNT
};

extern const char *const agent_dev_counter_names[];
extern const char *const agent_dev_counter_help[];
extern const enum counter_kind agent_dev_counter_kind[];

struct agent_dev_stats {
	uint64_t c[AGENT_DC_COUNT];
};

static inline void
agent_stat_add(struct agent_dev_stats *s, enum agent_dev_counter c, uint64_t v)
{
	__atomic_fetch_add(&s->c[c], v, __ATOMIC_RELAXED);
}

static inline void
agent_stat_max(struct agent_dev_stats *s, enum agent_dev_counter c, uint64_t v)
{
	uint64_t cur = __atomic_load_n(&s->c[c], __ATOMIC_RELAXED);

	while (v > cur &&
	    !__atomic_compare_exchange_n(
		&s->c[c], &cur, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static inline uint64_t
agent_stat_get(const struct agent_dev_stats *s, enum agent_dev_counter c)
{
	return __atomic_load_n(&s->c[c], __ATOMIC_RELAXED);
}

struct agent;
/* Copy what the loop alone writes (uplink figures, rejected commands) for the stats readers. */
void agent_stats_snapshot(struct agent *a);
/* Write the whole stats tree as JSON to f (uplink figures as of the last snapshot). */
void agent_stats_json(const struct agent *a, FILE *f);
/* Write it to path atomically (temporary file + rename). */
int agent_stats_write_file(const struct agent *a, const char *path);
/* One log line per bus and per device. */
void agent_stats_log(const struct agent *a);

#endif
