/*
 * test_tcp_lcore.c: the per-lcore TCP state (dataplane/net/tcp/tcp_lcore.c) at its limits:
 * configs tcp_lcore_init refuses (each rule of cfg_check), an MSS clamped to the mbuf pool's
 * data room, a flow table too large for memory, the registry of TCP lcores full, listener
 * and callback-table limits, active opens with bad arguments, and an lcore without TCP
 * (segments freed, every call a no-op). Each refusal is checked for what it leaves: nothing
 * allocated (mbufs, rte_malloc heap) and a working stack afterwards.
 */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "tcp_harness.h"
#include "tcp_types.h"

#define SYN RTE_TCP_SYN_FLAG
#define ACK RTE_TCP_ACK_FLAG

static struct tcp_config cfg;

/* Bytes allocated from the rte_malloc heaps (what tcp_lcore_init takes). */
static size_t
heap_used(void)
{
	struct rte_malloc_socket_stats st;
	size_t used = 0;

	for (int s = 0; s < RTE_MAX_NUMA_NODES; s++)
		if (rte_malloc_get_socket_stats(s, &st) == 0)
			used += st.heap_allocsz_bytes;
	return used;
}

/* h_lc ready for tcp_lcore_init, without it (h_setup also inits and listens). */
static void
lc_bare(void)
{
	h_setup(&cfg);
	tcp_lcore_fini(&h_lc);
	assert_null(h_lc.tcp);
}

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

/* Each rule of cfg_check: the init fails with -EINVAL, takes nothing, and the lcore can
 * still be set up with a good config. */
static void
test_bad_configs_refused(void **state)
{
	struct tcp_config c;
	size_t before;
	unsigned n = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	lc_bare();
	before = heap_used();
#define REFUSED(stmt)                                                 \
	do {                                                          \
		tcp_config_defaults(&c);                              \
		stmt;                                                 \
		assert_int_equal(tcp_lcore_init(&h_lc, &c), -EINVAL); \
		assert_null(h_lc.tcp);                                \
		assert_int_equal(heap_used(), before);                \
		n++;                                                  \
	} while (0)
	REFUSED(c.max_flows = 7);
	REFUSED(c.max_half_open = 0);
	REFUSED(c.mss = 87);
	REFUSED(c.wscale = TCP_MAX_WSCALE + 1);
	REFUSED(c.rcvbuf_bytes = c.mss - 1);
	REFUSED(c.sndbuf_bytes = c.mss - 1);
	REFUSED(c.rto_min_ms = 0);
	REFUSED(c.rto_max_ms = c.rto_min_ms - 1);
	REFUSED(c.rto_initial_ms = 0);
	REFUSED(c.challenge_ack_per_s = 0);
	REFUSED(c.time_wait_ms = 0);
	/* a buffer the window cannot advertise: 65535 << 2 is below 1 MB */
	REFUSED((c.wscale = 2, c.rcvbuf_bytes = 1u << 20));
	/* no mbuf pool, or a clock that does not count milliseconds */
	{
		struct rte_mempool *pool = h_lc.pool;

		REFUSED(h_lc.pool = NULL);
		h_lc.pool = pool;
	}
	REFUSED(h_lc.tsc_hz = 999);
	h_lc.tsc_hz = 1000000000ull;
#undef REFUSED
	assert_int_equal(n, 14);
	/* the boundary values themselves are accepted */
	tcp_config_defaults(&c);
	c.max_flows = 8;
	c.mss = 88;
	c.rcvbuf_bytes = c.sndbuf_bytes = 88;
	c.rto_max_ms = c.rto_min_ms;
	c.wscale = 0;
	assert_int_equal(tcp_lcore_init(&h_lc, &c), 0);
	/* a second init of the same lcore: refused, the first one kept */
	assert_int_equal(tcp_lcore_init(&h_lc, &cfg), -EALREADY);
	assert_int_equal(h_lc.tcp->cfg.max_flows, 8);
	assert_int_equal(tcp_listen(&h_lc, H_PORT, &h_ops, &h_app), 0);
}

/* Every segment we build fits one mbuf: a pool whose data room is below MSS + headers
 * clamps the MSS we announce, and a full-sized write goes out in segments that fit. */
static void
test_mss_clamped_to_pool(void **state)
{
	struct rte_mempool *small = rte_pktmbuf_pool_create(
	    "tcp_ut_small", 255, 0, 0, (uint16_t)(RTE_PKTMBUF_HEADROOM + 600), SOCKET_ID_ANY);
	uint8_t opts[4] = { 2, 4, 0x05, 0xb4 }, data[2000];
	struct h_seg s = {
		.flags = SYN, .seq = 1000, .win = 65535, .opts = opts, .optlen = 4, .sport = 40001
	};
	struct tcp_conn *c;
	(void)state;

	assert_non_null(small);
	tcp_config_defaults(&cfg);
	lc_bare();
	h_lc.pool = small;
	assert_int_equal(tcp_lcore_init(&h_lc, &cfg), 0);
	assert_int_equal(tcp_listen(&h_lc, H_PORT, &h_ops, &h_app), 0);
	assert_int_equal(h_lc.tcp->cfg.mss, 540);
	h_clear();
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].mss, 540);
	s.flags = ACK;
	s.seq = 1001;
	s.ack = h_cap[0].seq + 1;
	s.optlen = 0;
	h_input(&s);
	assert_non_null(c = h_app.c);
	assert_int_equal(c->mss, 540);
	memset(data, 7, sizeof(data));
	h_clear();
	assert_int_equal(tcp_write(c, data, sizeof(data)), (int)sizeof(data));
	h_flush();
	assert_int_equal(h_ncap, 4); /* 540 + 540 + 540 + 380 */
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(h_cap[i].len, 540);
	assert_int_equal(h_cap[3].len, 380);
	tcp_lcore_fini(&h_lc);
	assert_int_equal(rte_mempool_in_use_count(small), 0);
	rte_mempool_free(small);
	h_lc.pool = NULL;
	/* h_teardown: an lcore without TCP */
}

/* A flow table too large for the memory: the init fails with -ENOMEM and frees what it
 * took (when the failure comes part way, everything made before it); the registry slot is
 * given back. */
static void
test_table_too_large(void **state)
{
	size_t before;
	(void)state;

	tcp_config_defaults(&cfg);
	lc_bare();
	before = heap_used();
	cfg.max_flows = 1u << 30; /* the hash alone is far beyond the EAL's 128 MB */
	assert_true(tcp_lcore_init(&h_lc, &cfg) < 0);
	assert_null(h_lc.tcp);
	assert_int_equal(heap_used(), before);
	/* the hash (17 MB) and the TCBs (77 MB) fit in the EAL's 128 MB, the loss-recovery
	 * blocks made after them do not */
	cfg.max_flows = 300000;
	assert_int_equal(tcp_lcore_init(&h_lc, &cfg), -ENOMEM);
	assert_null(h_lc.tcp);
	assert_int_equal(heap_used(), before);
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
}

/* At most TCP_MAX_LCORES instances at once (a TCB names its lcore in a byte): one more is
 * refused with -ENOSPC, nothing kept; when one goes, its slot is free again. */
static void
test_lcore_registry_full(void **state)
{
	struct dp_lcore *lcs = calloc(TCP_MAX_LCORES, sizeof(*lcs));
	size_t before;
	unsigned n = 0;
	(void)state;

	assert_non_null(lcs);
	tcp_config_defaults(&cfg);
	cfg.max_flows = 8;
	h_setup(&cfg); /* h_lc holds one slot */
	for (unsigned i = 0; i < TCP_MAX_LCORES; i++) {
		lcs[i].pool = h_lc.pool;
		lcs[i].tsc_hz = h_lc.tsc_hz;
		lcs[i].lcore_id = 1000 + i;
		if (tcp_lcore_init(&lcs[i], &cfg) != 0)
			break;
		n++;
	}
	/* every slot the others left: the last init was refused */
	assert_true(n < TCP_MAX_LCORES);
	before = heap_used();
	assert_int_equal(tcp_lcore_init(&lcs[n], &cfg), -ENOSPC);
	assert_null(lcs[n].tcp);
	assert_int_equal(heap_used(), before);
	tcp_lcore_fini(&lcs[0]);
	assert_int_equal(tcp_lcore_init(&lcs[n], &cfg), 0);
	tcp_lcore_fini(&lcs[n]);
	for (unsigned i = 1; i < n; i++)
		tcp_lcore_fini(&lcs[i]);
	free(lcs);
}

static const struct tcp_app_ops no_accept = { .closed = NULL };

/* tcp_listen's refusals; the listener table (TCP_MAX_LISTENERS) and the callback table
 * (TCP_MAX_OPS distinct sets, listeners and active opens together) full. */
static void
test_listen_limits(void **state)
{
	static struct tcp_app_ops ops[TCP_MAX_OPS];
	struct tcp_app_ops only_accept = { .accept = h_ops.accept };
	struct tcp_conn *c;
	unsigned i;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg); /* listens on H_PORT with h_ops: ops slot 1 */
	assert_int_equal(tcp_listen(&h_lc, H_PORT, &h_ops, &h_app), -EADDRINUSE);
	assert_int_equal(tcp_listen(&h_lc, 0, &h_ops, &h_app), -EINVAL);
	assert_int_equal(tcp_listen(&h_lc, 80, NULL, &h_app), -EINVAL);
	assert_int_equal(tcp_listen(&h_lc, 80, &no_accept, &h_app), -EINVAL);
	assert_int_equal(tcp_listen(&h_lc, 80, &only_accept, &h_app), -EINVAL);
	for (i = 1; i < TCP_MAX_LISTENERS; i++) /* the same ops: one slot for all */
		assert_int_equal(tcp_listen(&h_lc, (uint16_t)(H_PORT + i), &h_ops, &h_app), 0);
	assert_int_equal(tcp_listen(&h_lc, 9999, &h_ops, &h_app), -ENOSPC);
	assert_int_equal(h_lc.tcp->n_listeners, TCP_MAX_LISTENERS);
	assert_int_equal(h_lc.tcp->n_ops, 2);
	/* active opens with a distinct ops each fill the callback table; slot 0 means none */
	for (i = 0; i < TCP_MAX_OPS - 2; i++) {
		ops[i] = h_ops;
		assert_int_equal(
		    tcp_connect(&h_lc, 0, H_PEER_IP, (uint16_t)(100 + i), &ops[i], &h_app, &c), 0);
	}
	ops[i] = h_ops;
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 999, &ops[i], &h_app, &c), -ENOSPC);
	assert_int_equal(tcp_flow_count(&h_lc), TCP_MAX_OPS - 2);
	/* a set already in the table still works */
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 999, &ops[0], &h_app, &c), 0);
	assert_int_equal(tcp_flow_count(&h_lc), TCP_MAX_OPS - 1);
}

/* tcp_connect's argument checks: each refused with -EINVAL, no flow, nothing sent. */
static void
test_connect_bad_args(void **state)
{
	struct tcp_conn *c = NULL;
	struct tcp_app_ops no_closed = h_ops;
	(void)state;

	no_closed.closed = NULL;
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	h_clear();
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 80, NULL, &h_app, &c), -EINVAL);
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 80, &no_closed, &h_app, &c), -EINVAL);
	assert_int_equal(tcp_connect(&h_lc, 0, 0, 80, &h_ops, &h_app, &c), -EINVAL);
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 80, &h_ops, &h_app, NULL), -EINVAL);
	assert_null(c);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	assert_int_equal(H_CNT(CONNECT), 0);
}

/* An lcore without TCP (tcp_lcore_init never ran, or failed): segments are freed, the loop's
 * calls do nothing, the stats say zero flows, and nothing can listen or connect. */
static void
test_lcore_without_tcp(void **state)
{
	struct tcp_mem_stats st;
	struct rte_mbuf *burst[3];
	struct tcp_conn *c;
	uint8_t opts[4] = { 2, 4, 0x05, 0xb4 };
	struct h_seg s = {
		.flags = SYN, .seq = 1, .win = 65535, .opts = opts, .optlen = 4, .sport = 40002
	};
	(void)state;

	tcp_config_defaults(&cfg);
	lc_bare();
	h_clear();
	h_input(&s); /* tcp_input */
	for (unsigned i = 0; i < 3; i++) {
		burst[i] = rte_pktmbuf_alloc(h_lc.pool);
		assert_non_null(rte_pktmbuf_append(burst[i], 40));
	}
	tcp_input_burst(&h_lc, burst, 3);
	assert_int_equal(h_pool_in_use(), 0);
	h_flush();
	h_advance_ms(10);
	tcp_pmtu_update(&h_lc, H_OUR_IP, H_PEER_IP, 1, 2, 0, 600);
	assert_int_equal(h_ncap, 0);
	assert_int_equal(tcp_flow_count(&h_lc), 0);
	memset(&st, 0xff, sizeof(st));
	tcp_mem_stats(&h_lc, &st);
	assert_int_equal(st.tcb_bytes, sizeof(struct tcp_conn));
	assert_int_equal(st.max_flows, 0);
	assert_int_equal(st.flows, 0);
	assert_int_equal(tcp_listen(&h_lc, 80, &h_ops, &h_app), -EINVAL);
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 80, &h_ops, &h_app, &c), -EINVAL);
	tcp_lcore_fini(&h_lc); /* again: nothing */
}

/* The names an operator sees for each state (the API's tcp_state_name), and "?" for a value
 * that is none. */
static void
test_state_names(void **state)
{
	static const char *const want[TCP_ST_COUNT] = { "CLOSED", "SYN_RECEIVED", "ESTABLISHED",
		"FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT",
		"SYN_SENT" };
	(void)state;

	for (int i = 0; i < TCP_ST_COUNT; i++)
		assert_string_equal(tcp_state_name((enum tcp_state)i), want[i]);
	assert_string_equal(tcp_state_name(TCP_ST_COUNT), "?");
	assert_string_equal(tcp_state_name((enum tcp_state) - 1), "?");
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bad_configs_refused, teardown),
		cmocka_unit_test_teardown(test_mss_clamped_to_pool, teardown),
		cmocka_unit_test_teardown(test_table_too_large, teardown),
		cmocka_unit_test_teardown(test_lcore_registry_full, teardown),
		cmocka_unit_test_teardown(test_listen_limits, teardown),
		cmocka_unit_test_teardown(test_connect_bad_args, teardown),
		cmocka_unit_test_teardown(test_lcore_without_tcp, teardown),
		cmocka_unit_test_teardown(test_state_names, teardown),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
