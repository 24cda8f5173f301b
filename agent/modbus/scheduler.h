/*
 * scheduler.h: which device a bus polls next. Pure logic over millisecond clocks so it can be
 * unit tested: earliest deadline first across the bus's devices; a device whose whole poll
 * failed is backed off exponentially (interval, 2x, 4x .. max_backoff) and probed with a
 * single try, so a dead device costs one timeout per backoff period instead of starving others.
 */
#ifndef EDGEGW_MB_SCHEDULER_H
#define EDGEGW_MB_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mb_sched_dev {
	uint64_t interval_ms;
	uint64_t next_due_ms;
	uint64_t backoff_ms; /* 0 while healthy */
	uint32_t fail_streak;
};

struct mb_sched {
	struct mb_sched_dev *devs;
	size_t n;
	uint64_t max_backoff_ms;
};

int mb_sched_init(struct mb_sched *s, size_t n, const uint64_t *interval_ms,
    uint64_t max_backoff_ms, uint64_t now_ms);
void mb_sched_free(struct mb_sched *s);

/* Index of the device to poll now (earliest deadline, due by now), or -1 with *wait_ms set to
 * the time until the next deadline. */
int mb_sched_next(const struct mb_sched *s, uint64_t now_ms, uint64_t *wait_ms);

/* A device is "dead" (probe with one try) once a poll failed. */
bool mb_sched_dead(const struct mb_sched *s, size_t dev);

/* Record a poll that started at started_ms and ended at now_ms; returns the lateness (start
 * past deadline) in ms. */
uint64_t
mb_sched_done(struct mb_sched *s, size_t dev, bool ok, uint64_t started_ms, uint64_t now_ms);

#endif
