/*
 * sim_pace.h: rate pacing for connects and publishes. A pacer holds the time the next event is
 * due; each event taken moves it one interval on. When the caller fell behind (a slow loop, a
 * stalled socket) at most `burst` events are owed, so a stall is not followed by an unbounded
 * catch-up storm. Interval 0 means no limit.
 */
#ifndef EDGEGW_SIM_PACE_H
#define EDGEGW_SIM_PACE_H

#include <stdbool.h>
#include <stdint.h>

struct sim_pace {
	uint64_t interval_ns;
	uint64_t next_ns;
	uint32_t burst;
};

/* The burst of a session's publish pacer: 4 events, or 4 ms of them when that is more. */
#define SIM_PACE_BURST(rate_per_s) ((rate_per_s) > 1000 ? (uint32_t)((rate_per_s) / 250) : 4u)

/* rate_per_s <= 0: unlimited. */
static inline void
sim_pace_init(struct sim_pace *p, double rate_per_s, uint32_t burst, uint64_t now_ns)
{
	p->interval_ns = rate_per_s > 0 ? (uint64_t)(1e9 / rate_per_s) : 0;
	if (rate_per_s > 0 && p->interval_ns == 0)
		p->interval_ns = 1;
	p->burst = burst ? burst : 1;
	p->next_ns = now_ns;
}

/* Take one event if it is due at now_ns. */
static inline bool
sim_pace_take(struct sim_pace *p, uint64_t now_ns)
{
	uint64_t floor_ns;

	if (p->interval_ns == 0)
		return true;
	if (now_ns < p->next_ns)
		return false;
	floor_ns = now_ns - (uint64_t)(p->burst - 1) * p->interval_ns;
	if (now_ns >= (uint64_t)(p->burst - 1) * p->interval_ns && p->next_ns < floor_ns)
		p->next_ns = floor_ns; /* forget what is owed beyond the burst */
	p->next_ns += p->interval_ns;
	return true;
}

/* Nanoseconds until the next event is due (0: now or unlimited). */
static inline uint64_t
sim_pace_wait_ns(const struct sim_pace *p, uint64_t now_ns)
{
	return p->interval_ns == 0 || now_ns >= p->next_ns ? 0 : p->next_ns - now_ns;
}

#endif
