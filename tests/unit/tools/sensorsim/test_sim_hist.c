/* test_sim_hist.c: the log-linear histogram: exact small values, bounded relative error,
 * quantiles against a sorted reference, merge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "sim_hist.h"

static struct sim_hist h, h2;

static void
test_small_values_exact(void **st)
{
	(void)st;
	for (uint64_t v = 0; v < SIM_HIST_SUB; v++) {
		assert_int_equal(sim_hist_index(v), v);
		assert_int_equal(sim_hist_bucket_high(sim_hist_index(v)), v);
	}
}

static void
test_relative_error_bounded(void **st)
{
	uint32_t prev = 0;

	(void)st;
	for (uint64_t v = 1; v < (1ull << 46); v = v * 1.01 + 1) {
		uint32_t idx = sim_hist_index(v);
		uint64_t hi = sim_hist_bucket_high(idx);

		assert_true(idx < SIM_HIST_BUCKETS);
		assert_true(idx >= prev); /* monotonic */
		prev = idx;
		if (v <= sim_hist_bucket_high(SIM_HIST_BUCKETS - 1)) {
			assert_true(hi >= v);
			assert_true((double)(hi - v) <= (double)v / 64.0 + 1);
			if (idx > 0) /* v is above the previous bucket */
				assert_true(sim_hist_bucket_high(idx - 1) < v);
		}
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_quantiles_match_reference(void **st)
{
	enum {
		N = 100000
	};
	static uint64_t ref[N];
	const double qs[] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
	uint32_t x = 12345;

	(void)st;
	sim_hist_init(&h);
	for (int i = 0; i < N; i++) {
		x = x * 1103515245u + 12345u;
		ref[i] = 1000 + (x >> 8) % 5000000; /* 1 us .. 5 ms */
		if (i % 1000 == 0)
			ref[i] *= 40; /* a tail */
		sim_hist_record(&h, ref[i]);
	}
	qsort(ref, N, sizeof(ref[0]), cmp_u64);
	assert_int_equal(h.count, N);
	assert_int_equal(h.min, ref[0]);
	assert_int_equal(h.max, ref[N - 1]);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		size_t k = (size_t)(qs[i] * N + 0.999999) - 1;
		uint64_t got = sim_hist_quantile(&h, qs[i]);

		assert_true(got >= ref[k]);
		assert_true((double)got <= (double)ref[k] * (1 + 1.0 / 64) + 1);
	}
	assert_int_equal(sim_hist_quantile(&h, 1.0), ref[N - 1]);
}

static void
test_merge_and_empty(void **st)
{
	(void)st;
	sim_hist_init(&h);
	sim_hist_init(&h2);
	assert_int_equal(sim_hist_quantile(&h, 0.99), 0);
	sim_hist_record(&h, 10);
	sim_hist_record(&h2, 1000000);
	sim_hist_record(&h2, UINT64_MAX); /* beyond the top bucket: counted, flagged */
	sim_hist_merge(&h, &h2);
	assert_int_equal(h.count, 3);
	assert_int_equal(h.min, 10);
	assert_int_equal(h.max, UINT64_MAX);
	assert_int_equal(h.overflow, 1);
	assert_int_equal(sim_hist_quantile(&h, 0.1), 10);
	assert_true(sim_hist_quantile(&h, 0.5) >= 1000000);
	assert_true(sim_hist_quantile(&h, 0.5) <= 1000000 + 1000000 / 64);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_values_exact),
		cmocka_unit_test(test_relative_error_bounded),
		cmocka_unit_test(test_quantiles_match_reference),
		cmocka_unit_test(test_merge_and_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
