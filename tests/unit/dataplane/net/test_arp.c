/*
 * test_arp.c: dataplane/net/arp.c at its edges, with doubles for what it calls below
 * (eth_output captures, dp_alloc allocates): malformed and refused packets (RFC 826 fields,
 * senders that must not be learned: 0.0.0.0 probes of RFC 5227, our own address, a group
 * MAC), gratuitous ARP that refreshes but never adds, a stale entry used while it is asked
 * for again, next-hop hints that are out of range or expired, more entries expiring in one
 * poll than the poll's batch, a peer lcore whose inbox is full, and tables that cannot be
 * made. Requests and replies are crafted, the clock is moved by hand. test_arp_expiry.c
 * holds the expiry of learned entries; test_net_stack.c the layer through a real port.
 */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <rte_arp.h>
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "arp.h"
#include "dp.h"
#include "eth.h"

#define OUR_IP  0x010012c6u /* 198.18.0.1 */
#define TIMEOUT 1000        /* ms */

static struct dp_lcore lc;
static struct rte_mempool *pool;
static unsigned n_out;
static struct rte_ether_addr last_dst;
static uint16_t last_type;
static struct rte_arp_hdr last_arp;
static unsigned lcore_ids = 100;

struct rte_mbuf *
dp_alloc(struct dp_lcore *l)
{
	return rte_pktmbuf_alloc(l->pool);
}

void
eth_output(struct dp_lcore *l, struct rte_mbuf *m, const struct rte_ether_addr *dst, uint16_t et)
{
	(void)l;
	n_out++;
	last_dst = *dst;
	last_type = et;
	if (et == RTE_ETHER_TYPE_ARP)
		last_arp = *rte_pktmbuf_mtod(m, struct rte_arp_hdr *);
	rte_pktmbuf_free(m);
}

/* 198.18.<1 + hi>.<lo>: never our 198.18.0.1 */
static uint32_t
ip_of(unsigned host)
{
	host += 256;
	return 0x000012c6u | (uint32_t)(host >> 8 & 0xff) << 16 | (uint32_t)(host & 0xff) << 24;
}

static struct rte_ether_addr
mac_of(unsigned host, uint8_t tag)
{
	return (struct rte_ether_addr){ { 0x02, tag, 0, 0, (uint8_t)(host >> 8), (uint8_t)host } };
}

/* An ARP packet; edit the fields after. */
static struct rte_arp_hdr
arp_pkt(uint16_t op, uint32_t sip, const struct rte_ether_addr *sha, uint32_t tip)
{
	struct rte_arp_hdr a;

	memset(&a, 0, sizeof(a));
	a.arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a.arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a.arp_hlen = RTE_ETHER_ADDR_LEN;
	a.arp_plen = 4;
	a.arp_opcode = rte_cpu_to_be_16(op);
	a.arp_data.arp_sha = *sha;
	a.arp_data.arp_sip = sip;
	a.arp_data.arp_tip = tip;
	return a;
}

static void
input(struct dp_lcore *l, const struct rte_arp_hdr *a)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	assert_non_null(m);
	memcpy(rte_pktmbuf_append(m, sizeof(*a)), a, sizeof(*a));
	arp_input(l, m);
}

static void
advance_ms(struct dp_lcore *l, uint32_t ms)
{
	for (uint32_t i = 0; i < ms; i += 10) { /* as a worker loop polls */
		l->now_tsc += l->tsc_hz / 100;
		arp_poll(l);
	}
}

/* An lcore of our own (the tables are named by lcore id: each test takes fresh ids). */
static void
lcore_up(struct dp_lcore *l, uint32_t entries, uint32_t netmask_be)
{
	memset(l, 0, sizeof(*l));
	l->lcore_id = lcore_ids++;
	l->pool = pool;
	l->ip_be = OUR_IP;
	l->netmask_be = netmask_be;
	l->mac.addr_bytes[0] = 0x02;
	l->tsc_hz = 1000000000ull;
	l->now_tsc = 1000000000ull;
	assert_int_equal(arp_lcore_init(l, entries, TIMEOUT), 0);
}

static int
setup(void **state)
{
	(void)state;
	lcore_up(&lc, 16, 0x0000ffffu); /* 198.18.0.0/16 */
	n_out = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	arp_lcore_fini(&lc);
	assert_int_equal(arp_entry_count(&lc), 0); /* no table: none */
	arp_lcore_fini(&lc);                       /* again: nothing to do */
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
	return 0;
}

/* Packets that are not Ethernet/IPv4 ARP: BAD, never learned, never answered. */
static void
test_bad_fields(void **state)
{
	struct rte_ether_addr sha = mac_of(2, 0);
	struct rte_arp_hdr a;
	(void)state;

	a = arp_pkt(RTE_ARP_OP_REQUEST, ip_of(2), &sha, OUR_IP);
	a.arp_hardware = rte_cpu_to_be_16(6); /* IEEE 802 */
	input(&lc, &a);
	a = arp_pkt(RTE_ARP_OP_REQUEST, ip_of(2), &sha, OUR_IP);
	a.arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
	input(&lc, &a);
	a = arp_pkt(RTE_ARP_OP_REQUEST, ip_of(2), &sha, OUR_IP);
	a.arp_hlen = 8;
	input(&lc, &a);
	assert_int_equal(lc.cnt.v[DPC_arp_BAD], 3);
	assert_int_equal(arp_entry_count(&lc), 0);
	assert_int_equal(n_out, 0);
}

/* Senders RFC 826's merge must not take: 0.0.0.0 (an RFC 5227 probe), our own address (a
 * conflict: the table would send our traffic to them), a group MAC. The request is still
 * answered, to the MAC it came from. */
static void
test_senders_not_learned(void **state)
{
	struct rte_ether_addr sha = mac_of(3, 0), group = { { 0x01, 0, 0x5e, 0, 0, 1 } };
	struct rte_arp_hdr a;
	(void)state;

	a = arp_pkt(RTE_ARP_OP_REQUEST, 0, &sha, OUR_IP);
	input(&lc, &a);
	assert_int_equal(n_out, 1);
	assert_int_equal(rte_be_to_cpu_16(last_arp.arp_opcode), RTE_ARP_OP_REPLY);
	assert_true(rte_is_same_ether_addr(&last_dst, &sha));
	a = arp_pkt(RTE_ARP_OP_REPLY, OUR_IP, &sha, OUR_IP + 0x01000000u);
	input(&lc, &a); /* for 198.18.0.2: not for us */
	assert_int_equal(lc.cnt.v[DPC_arp_NOT_FOR_US], 1);
	a = arp_pkt(RTE_ARP_OP_REPLY, ip_of(3), &group, OUR_IP);
	input(&lc, &a);
	a = arp_pkt(RTE_ARP_OP_REPLY, ip_of(3), &sha, OUR_IP);
	a.arp_data.arp_sip = OUR_IP;
	a.arp_data.arp_tip = OUR_IP; /* our own address announced by another: a conflict */
	input(&lc, &a);
	assert_int_equal(lc.cnt.v[DPC_arp_GRATUITOUS], 1);
	assert_int_equal(lc.cnt.v[DPC_arp_RX_REPLY], 1);
	assert_int_equal(arp_entry_count(&lc), 0);
}

/* Gratuitous ARP (sender = target): a known host's new MAC is taken at once (a failover),
 * an unknown host is not added, a bad sender is ignored. */
static void
test_gratuitous_refreshes(void **state)
{
	struct rte_ether_addr old = mac_of(4, 1), new = mac_of(4, 2),
			      group = { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };
	struct rte_arp_hdr a;
	unsigned before;
	(void)state;

	a = arp_pkt(RTE_ARP_OP_REPLY, ip_of(4), &old, OUR_IP);
	input(&lc, &a);
	assert_int_equal(arp_entry_count(&lc), 1);
	a = arp_pkt(RTE_ARP_OP_REQUEST, ip_of(4), &new, ip_of(4));
	input(&lc, &a);
	a = arp_pkt(RTE_ARP_OP_REQUEST, ip_of(5), &new, ip_of(5));
	input(&lc, &a);
	a = arp_pkt(RTE_ARP_OP_REQUEST, ip_of(4), &group, ip_of(4));
	input(&lc, &a);
	assert_int_equal(lc.cnt.v[DPC_arp_GRATUITOUS], 3);
	assert_int_equal(arp_entry_count(&lc), 1);
	before = n_out;
	arp_output(&lc, rte_pktmbuf_alloc(pool), ip_of(4));
	assert_int_equal(n_out, before + 1);
	assert_int_equal(last_type, RTE_ETHER_TYPE_IPV4);
	assert_true(rte_is_same_ether_addr(&last_dst, &new));
}

/* An entry past its lifetime is used while it is asked for again (one request), and stays
 * in use without more requests until the retry is due; the answer makes it fresh. */
static void
test_stale_entry_used(void **state)
{
	struct rte_ether_addr sha = mac_of(6, 0);
	struct rte_arp_hdr a;
	(void)state;

	a = arp_pkt(RTE_ARP_OP_REPLY, ip_of(6), &sha, OUR_IP);
	input(&lc, &a);
	lc.now_tsc += lc.tsc_hz / 1000 * (TIMEOUT + 1); /* no poll: still in the table */
	n_out = 0;
	arp_output(&lc, rte_pktmbuf_alloc(pool), ip_of(6));
	assert_int_equal(n_out, 2); /* the request, then the packet to the known MAC */
	assert_int_equal(lc.cnt.v[DPC_arp_TX_REQUEST], 1);
	arp_output(&lc, rte_pktmbuf_alloc(pool), ip_of(6));
	arp_output(&lc, rte_pktmbuf_alloc(pool), ip_of(6));
	assert_int_equal(n_out, 4);
	assert_int_equal(lc.cnt.v[DPC_arp_TX_REQUEST], 1);
	assert_true(rte_is_same_ether_addr(&last_dst, &sha));
	input(&lc, &a);
	advance_ms(&lc, TIMEOUT / 2);
	assert_int_equal(lc.cnt.v[DPC_arp_TX_REQUEST], 1);
}

/* A hint (the entry's slot + 1) that is past the table, names another host, or names an
 * entry that expired: the packet goes by the table, and the hint is corrected. */
static void
test_hints_checked(void **state)
{
	struct rte_ether_addr sha = mac_of(7, 0);
	struct rte_arp_hdr a;
	uint32_t hint = 1000, good;
	(void)state;

	a = arp_pkt(RTE_ARP_OP_REPLY, ip_of(7), &sha, OUR_IP);
	input(&lc, &a);
	n_out = 0;
	arp_output_hint(&lc, rte_pktmbuf_alloc(pool), ip_of(7), &hint);
	assert_int_equal(n_out, 1);
	assert_true(rte_is_same_ether_addr(&last_dst, &sha));
	assert_true(hint >= 1 && hint <= 16);
	good = hint;
	/* expired: the hint must not send to it blindly; the table path asks again */
	lc.now_tsc += lc.tsc_hz / 1000 * (TIMEOUT + 1);
	arp_output_hint(&lc, rte_pktmbuf_alloc(pool), ip_of(7), &hint);
	assert_int_equal(lc.cnt.v[DPC_arp_TX_REQUEST], 1);
	assert_int_equal(hint, good);
	/* stale now (not REACHABLE): the hint is not enough either, no second request */
	arp_output_hint(&lc, rte_pktmbuf_alloc(pool), ip_of(7), &hint);
	assert_int_equal(lc.cnt.v[DPC_arp_TX_REQUEST], 1);
	assert_int_equal(n_out, 4);
	assert_true(rte_is_same_ether_addr(&last_dst, &sha));
}

/* More learned entries expire in one poll than the poll removes at once (64): each is counted
 * EXPIRED once, however many polls it takes to remove them all. */
static void
test_mass_expiry_counted_once(void **state)
{
	struct dp_lcore big;
	(void)state;

	lcore_up(&big, 256, 0x0000ffffu);
	for (unsigned h = 1; h <= 100; h++) {
		struct rte_ether_addr sha = mac_of(h, 0);
		struct rte_arp_hdr a = arp_pkt(RTE_ARP_OP_REPLY, ip_of(h), &sha, OUR_IP);

		input(&big, &a);
	}
	assert_int_equal(arp_entry_count(&big), 100);
	big.now_tsc += big.tsc_hz / 1000 * (2 * TIMEOUT + 1); /* all at once, past the grace */
	arp_poll(&big);
	assert_int_equal(arp_entry_count(&big), 100 - 64);
	advance_ms(&big, 200);
	assert_int_equal(arp_entry_count(&big), 0);
	assert_int_equal(big.cnt.v[DPC_arp_EXPIRED], 100);
	arp_lcore_fini(&big);
}

/* More neighbours than one poll removes give up at once: every held packet is dropped and
 * counted once, and all entries go. */
static void
test_mass_unresolved(void **state)
{
	struct dp_lcore big;
	(void)state;

	lcore_up(&big, 256, 0x0000ffffu);
	for (unsigned h = 1; h <= 80; h++)
		arp_output(&big, rte_pktmbuf_alloc(pool), ip_of(h));
	assert_int_equal(big.cnt.v[DPC_arp_TX_REQUEST], 80);
	for (int i = 0; i < 5; i++) { /* the retries, then past the last one */
		big.now_tsc += big.tsc_hz + big.tsc_hz / 2;
		arp_poll(&big);
	}
	assert_int_equal(big.cnt.v[DPC_arp_UNRESOLVED], 80);
	assert_int_equal(arp_entry_count(&big), 0);
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
	arp_lcore_fini(&big);
}

/* Entries learned on one lcore go to the others through a ring each: when a peer's ring is
 * full (it has not polled), the rest are lost to it, never leaked; what waits in a ring when
 * its lcore goes is freed. */
static size_t
heap_used(void)
{
	struct rte_malloc_socket_stats st;

	assert_int_equal(rte_malloc_get_socket_stats(0, &st), 0);
	return st.heap_allocsz_bytes;
}

static void
test_share_ring_full(void **state)
{
	static struct dp_lcore a, b;
	struct dp_lcore *both[2] = { &a, &b };
	size_t heap = heap_used();
	(void)state;

	lcore_up(&a, 2048, 0x0000ffffu);
	lcore_up(&b, 2048, 0x0000ffffu);
	arp_lcores_link(both, 2);
	for (unsigned h = 1; h <= 1100; h++) {
		struct rte_ether_addr sha = mac_of(h, 0);
		struct rte_arp_hdr p = arp_pkt(RTE_ARP_OP_REPLY, ip_of(h), &sha, OUR_IP);

		input(&a, &p);
	}
	assert_int_equal(arp_entry_count(&a), 1100);
	arp_poll(&b);
	assert_int_equal(arp_entry_count(&b), 1023); /* the ring's capacity */
	arp_poll(&b);
	assert_int_equal(arp_entry_count(&b), 1023);
	arp_poll(&a); /* what b learned from a is not passed back */
	assert_int_equal(arp_entry_count(&a), 1100);
	/* one more learned on a waits in b's ring when b goes: freed with it */
	{
		struct rte_ether_addr sha = mac_of(2000, 0);
		struct rte_arp_hdr p = arp_pkt(RTE_ARP_OP_REPLY, ip_of(2000), &sha, OUR_IP);

		input(&a, &p);
	}
	arp_lcore_fini(&b);
	arp_lcore_fini(&a);
	assert_int_equal(heap_used(), heap); /* nothing shared was leaked */
}

/* Tables that cannot be made: no entries (the hash refuses), or an lcore id already taken
 * (its hash and ring names are in use): -ENOMEM, nothing kept. */
static void
test_init_failures(void **state)
{
	struct dp_lcore x;
	size_t heap = heap_used();
	(void)state;

	memset(&x, 0, sizeof(x));
	x.lcore_id = lcore_ids++;
	x.tsc_hz = 1000000000ull;
	assert_int_equal(arp_lcore_init(&x, 0, TIMEOUT), -ENOMEM);
	assert_null(x.arp);
	x.lcore_id = lc.lcore_id;
	assert_int_equal(arp_lcore_init(&x, 16, TIMEOUT), -ENOMEM);
	assert_null(x.arp);
	assert_int_equal(heap_used(), heap);
}

int
main(void)
{
	char prefix[64];
	char *argv[] = { "test_arp", "--no-huge", "--no-pci", "-m", "64", "--no-shconf",
		"--file-prefix", prefix, "--log-level=crit", "--no-telemetry", NULL };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_senders_not_learned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gratuitous_refreshes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_entry_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hints_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mass_expiry_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mass_unresolved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_share_ring_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_failures, setup, teardown),
	};
	int rc;

	snprintf(prefix, sizeof(prefix), "arpe_ut_%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return 1;
	pool = rte_pktmbuf_pool_create(
	    "arpe_ut", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	dp_eal_cleanup();
	return rc;
}
