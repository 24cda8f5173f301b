/* test_scheduler.c: deadline order and backoff (agent/modbus/scheduler.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scheduler.h"

static void
test_earliest_deadline_first(void **state)
{
	const uint64_t iv[] = { 1000, 250, 500 };
	struct mb_sched s;
	uint64_t wait;
	int polls[3] = { 0 };

	(void)state;
	assert_int_equal(mb_sched_init(&s, 3, iv, 30000, 0), 0);
	/* Simulate 10 s, each poll taking 20 ms. */
	for (uint64_t now = 0; now < 10000;) {
		int d = mb_sched_next(&s, now, &wait);

		if (d < 0) {
			assert_true(wait > 0);
			now += wait;
			continue;
		}
		assert_true(mb_sched_done(&s, (size_t)d, true, now, now + 20) <= 60);
		polls[d]++;
		now += 20;
	}
	assert_int_equal(polls[0], 10);
	assert_int_equal(polls[1], 40);
	assert_int_equal(polls[2], 20);
	mb_sched_free(&s);
}

static void
test_dead_device_backs_off_and_recovers(void **state)
{
	const uint64_t iv[] = { 1000, 1000 };
	struct mb_sched s;
	uint64_t wait;
	int healthy = 0, dead = 0;

	(void)state;
	assert_int_equal(mb_sched_init(&s, 2, iv, 8000, 0), 0);
	/* device 1 never answers: each failed poll costs 600 ms (3 x 200 ms timeouts), a probe
	 * 200 ms; device 0 must keep its 1 s interval. */
	for (uint64_t now = 0; now < 60000;) {
		int d = mb_sched_next(&s, now, &wait);
		uint64_t cost, late;

		if (d < 0) {
			now += wait;
			continue;
		}
		cost = d == 0 ? 20 : (mb_sched_dead(&s, 1) ? 200 : 600);
		late = mb_sched_done(&s, (size_t)d, d == 0, now, now + cost);
		if (d == 0) {
			assert_true(late < 1000);
			healthy++;
		} else {
			dead++;
		}
		now += cost;
	}
	assert_in_range(healthy, 58, 60);
	/* backoff 1, 2, 4, 8, 8, ... s: about 9 probes in a minute, not 60 */
	assert_in_range(dead, 7, 10);
	assert_int_equal(s.devs[1].backoff_ms, 8000);
	mb_sched_done(&s, 1, true, 60000, 60010);
	assert_false(mb_sched_dead(&s, 1));
	assert_int_equal(s.devs[1].next_due_ms, 61010); /* fell behind: phase restarts from now */
	mb_sched_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_earliest_deadline_first),
		cmocka_unit_test(test_dead_device_backs_off_and_recovers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
