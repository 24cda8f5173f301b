/*
 * The path MTU table (pmtu.c, RFC 1191) on its own: what it keeps per destination, when an
 * entry ages out, a full table (refused and counted, room made from expired entries), the
 * filter in front of the hash, refused inits. TCP's use of it (one ICMP lowers every flow to
 * the destination) is in tcp/test_tcp_pmtu.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <rte_eal.h>

#include "dp.h"
#include "pmtu.h"

#define ENTRIES 16
#define LIFE_MS 600000
#define MS      1000000ull /* TSC ticks at 1 GHz */

static struct dp_lcore lc;

static uint32_t
dst(unsigned i)
{
	return 0x000012c6u | (uint32_t)(i + 2) << 24; /* 198.18.0.(i + 2) */
}

static int
setup(void **state)
{
	(void)state;
	memset(&lc, 0, sizeof(lc));
	lc.tsc_hz = 1000000000ull;
	lc.now_tsc = 1000000000ull;
	return pmtu_lcore_init(&lc, ENTRIES, LIFE_MS);
}

static int
teardown(void **state)
{
	(void)state;
	pmtu_lcore_fini(&lc);
	assert_null(lc.pmtu);
	pmtu_lcore_fini(&lc); /* again: nothing to do */
	return 0;
}

/* An entry only goes down while it lives; an equal message renews its life. */
static void
test_lower_renew_expire(void **state)
{
	(void)state;
	assert_int_equal(pmtu_get(&lc, dst(0)), 0);
	assert_int_equal(pmtu_learn(&lc, dst(0), 1400), 0);
	assert_int_equal(pmtu_get(&lc, dst(0)), 1400);
	assert_int_equal(pmtu_get(&lc, dst(1)), 0);
	assert_int_equal(pmtu_learn(&lc, dst(0), 1450), 0); /* larger: stale, ignored */
	assert_int_equal(pmtu_get(&lc, dst(0)), 1400);
	assert_int_equal(pmtu_learn(&lc, dst(0), 1200), 0);
	assert_int_equal(pmtu_get(&lc, dst(0)), 1200);
	assert_int_equal(lc.cnt.v[DPC_pmtu_LEARNED], 2);
	lc.now_tsc += (LIFE_MS - 10) * MS;
	assert_int_equal(pmtu_learn(&lc, dst(0), 1200), 0); /* the same again: life renewed */
	assert_int_equal(lc.cnt.v[DPC_pmtu_LEARNED], 2);
	lc.now_tsc += 20 * MS;
	assert_int_equal(pmtu_get(&lc, dst(0)), 1200);
	lc.now_tsc += LIFE_MS * MS;
	assert_int_equal(pmtu_get(&lc, dst(0)), 0);
	assert_int_equal(lc.cnt.v[DPC_pmtu_EXPIRED], 1);
	assert_int_equal(pmtu_entry_count(&lc), 0);
	/* expired but not yet removed: a larger value is taken as new */
	assert_int_equal(pmtu_learn(&lc, dst(1), 1000), 0);
	lc.now_tsc += (LIFE_MS + 1) * MS;
	assert_int_equal(pmtu_learn(&lc, dst(1), 1300), 0);
	assert_int_equal(pmtu_get(&lc, dst(1)), 1300);
	assert_int_equal(lc.cnt.v[DPC_pmtu_LEARNED], 4);
}

/* A full table refuses a new destination (counted) until entries age out; then the first
 * refusal's scan makes room from every expired one. */
static void
test_full_table(void **state)
{
	(void)state;
	for (unsigned i = 0; i < ENTRIES; i++)
		assert_int_equal(pmtu_learn(&lc, dst(i), (uint16_t)(1000 + i)), 0);
	assert_int_equal(pmtu_entry_count(&lc), ENTRIES);
	assert_int_equal(pmtu_learn(&lc, dst(ENTRIES), 900), -ENOSPC);
	assert_int_equal(lc.cnt.v[DPC_pmtu_CACHE_FULL], 1);
	assert_int_equal(pmtu_get(&lc, dst(ENTRIES)), 0);
	assert_int_equal(pmtu_learn(&lc, dst(3), 800), 0); /* one it holds: still lowered */
	assert_int_equal(pmtu_get(&lc, dst(3)), 800);
	for (unsigned i = 0; i < ENTRIES; i++)
		assert_int_not_equal(pmtu_get(&lc, dst(i)), 0);
	lc.now_tsc += (LIFE_MS + 1) * MS;
	assert_int_equal(pmtu_learn(&lc, dst(ENTRIES), 900), 0);
	assert_int_equal(lc.cnt.v[DPC_pmtu_EXPIRED], ENTRIES);
	assert_int_equal(pmtu_entry_count(&lc), 1);
	assert_int_equal(pmtu_get(&lc, dst(ENTRIES)), 900);
}

/* No table (an lcore without one, as the load generator's may be): nothing kept, no cost. */
static void
test_no_table_and_bad_init(void **state)
{
	struct dp_lcore x = { .tsc_hz = 1000000000ull };
	(void)state;

	assert_int_equal(pmtu_learn(&x, dst(0), 1000), -ENOENT);
	assert_int_equal(pmtu_get(&x, dst(0)), 0);
	assert_int_equal(pmtu_lookup(&x, dst(0)), 0);
	assert_int_equal(pmtu_entry_count(&x), 0);
	assert_int_equal(pmtu_lcore_init(&x, 0, LIFE_MS), -EINVAL);
	assert_int_equal(pmtu_lcore_init(&x, 1u << 16, LIFE_MS), -EINVAL);
	assert_int_equal(pmtu_lcore_init(&x, ENTRIES, 0), -EINVAL);
	assert_null(x.pmtu);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lower_renew_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_table_and_bad_init, setup, teardown),
	};
	char prefix[64];
	char *argv[] = { "test_pmtu", "--no-huge", "--no-pci", "-m", "64", "--file-prefix", prefix,
		"--log-level", "lib.*:error", NULL };
	int rc;

	snprintf(prefix, sizeof(prefix), "pmtu_ut_%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	dp_eal_cleanup();
	return rc;
}
