/* test_sim_pace.c: rate pacing: the rate over a long simulated time, the bounded catch-up after
 * a stall, unlimited mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_pace.h"

/* Take as often as allowed, stepping a fake clock by step_ns, for dur_ns. */
static uint64_t
run(struct sim_pace *p, uint64_t t0, uint64_t dur_ns, uint64_t step_ns)
{
	uint64_t n = 0;

	for (uint64_t t = t0; t < t0 + dur_ns; t += step_ns)
		while (sim_pace_take(p, t))
			n++;
	return n;
}

static void
test_rate_held(void **st)
{
	struct sim_pace p;

	(void)st;
	sim_pace_init(&p, 1000, 4, 5000000000ull);
	/* 10 s at 1000/s, polled every 0.3 ms: 10000 events, +1 for the one due at t0 */
	assert_in_range(run(&p, 5000000000ull, 10000000000ull, 300000), 10000, 10001);
	sim_pace_init(&p, 3, 1, 0);
	assert_in_range(run(&p, 0, 10000000000ull, 1000000), 30, 31);
}

static void
test_stall_bounded_burst(void **st)
{
	struct sim_pace p;
	uint64_t n = 0;

	(void)st;
	sim_pace_init(&p, 1000, 4, 1000000000ull);
	assert_true(sim_pace_take(&p, 1000000000ull));
	/* a 1 s stall owes 1000 events: only the burst (4) is paid back */
	while (sim_pace_take(&p, 2000000000ull))
		n++;
	assert_int_equal(n, 4);
	assert_true(sim_pace_wait_ns(&p, 2000000000ull) > 0);
	assert_true(sim_pace_wait_ns(&p, 2000000000ull) <= 1000000);
	/* and then the steady rate again */
	assert_in_range(run(&p, 2000000000ull, 1000000000ull, 100000), 999, 1001);
}

/* A session's pacer (SIM_PACE_BURST) at a high rate, taken by a scan that comes every 1.25 ms
 * (the 1 ms poll, late under load): the rate is held. With a burst of 4 at 4,000/s each scan
 * owed 5 and paid 4 (3,200/s); in the durable bench's paced row (half its flat-out rate,
 * 4,287/s per session) the simulator sent 95,000 of 214,000/s offered. At a sensor's rate the
 * burst stays 4. */
static void
test_session_burst_keeps_high_rates(void **st)
{
	struct sim_pace p;

	(void)st;
	assert_int_equal(SIM_PACE_BURST(1.0), 4);
	assert_int_equal(SIM_PACE_BURST(1000.0), 4);
	sim_pace_init(&p, 4000, SIM_PACE_BURST(4000.0), 0);
	assert_in_range(run(&p, 0, 1000000000ull, 1250000), 3990, 4001);
	sim_pace_init(&p, 4000, 4, 0);
	assert_in_range(run(&p, 0, 1000000000ull, 1250000), 3190, 3201);
}

static void
test_unlimited(void **st)
{
	struct sim_pace p;

	(void)st;
	sim_pace_init(&p, 0, 1, 0);
	for (int i = 0; i < 1000; i++)
		assert_true(sim_pace_take(&p, 0));
	assert_int_equal(sim_pace_wait_ns(&p, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_held),
		cmocka_unit_test(test_stall_bounded_burst),
		cmocka_unit_test(test_session_burst_keeps_high_rates),
		cmocka_unit_test(test_unlimited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
