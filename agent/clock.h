/*
 * clock.h: the agent's clocks. Monotonic for deadlines and intervals (never jumps), wall clock
 * only for timestamps in messages.
 */
#ifndef EDGEGW_AGENT_CLOCK_H
#define EDGEGW_AGENT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t
clock_mono_ms(void)
{
	return clock_mono_us() / 1000u;
}

static inline uint64_t
clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
