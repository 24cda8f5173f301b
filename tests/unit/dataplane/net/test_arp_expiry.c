/*
 * ARP cache expiry (issue 16, finding 4): entries learned from requests used to stay for
 * good, so any host on the link could fill the table (CACHE_FULL hours later). arp.c is
 * compiled in with doubles for what it calls below (eth_output captures, dp_alloc allocates);
 * requests are crafted, the clock is moved by hand. The net layer's own unit tests (eth, arp,
 * ipv4, icmp) live beside this one. Also the next-hop hint a TCP flow keeps (issue 16, cost
 * per segment: arp_output_hint skips the table's hash): a changed MAC, an expired or
 * forgotten entry and a slot taken by another host are all followed.
 */
#include <setjmp.h>
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
#include <rte_mbuf.h>

#include "arp.h"
#include "dp.h"
#include "eth.h"

#define OUR_IP  0x010012c6u /* 198.18.0.1 */
#define ENTRIES 16
#define TIMEOUT 1000 /* ms */

static struct dp_lcore lc;
static struct rte_mempool *pool;
static unsigned n_out;
static struct rte_ether_addr last_dst;
static uint16_t last_type;

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
	rte_pktmbuf_free(m);
}

static void
advance_ms(uint32_t ms)
{
	for (uint32_t i = 0; i < ms; i += 10) { /* as a worker loop polls */
		lc.now_tsc += lc.tsc_hz / 100;
		arp_poll(&lc);
	}
}

/* A request for our address from 198.18.1.<host>, MAC 02:00:00:00:<mac4>:<host>. */
static void
request_from_mac(uint8_t host, uint8_t mac4)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	struct rte_arp_hdr *a;

	if (m == NULL || (a = (struct rte_arp_hdr *)rte_pktmbuf_append(m, sizeof(*a))) == NULL)
		abort(); /* the pool is sized for the test: a NULL here is a bug in it */
	memset(a, 0, sizeof(*a));
	a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a->arp_hlen = RTE_ETHER_ADDR_LEN;
	a->arp_plen = 4;
	a->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	a->arp_data.arp_sha.addr_bytes[0] = 0x02;
	a->arp_data.arp_sha.addr_bytes[4] = mac4;
	a->arp_data.arp_sha.addr_bytes[5] = host;
	a->arp_data.arp_sip = 0x000112c6u | (uint32_t)host << 24;
	a->arp_data.arp_tip = OUR_IP;
	arp_input(&lc, m);
}

static void
request_from(uint8_t host)
{
	request_from_mac(host, 0);
}

static uint32_t
host_ip(uint8_t host)
{
	return 0x000112c6u | (uint32_t)host << 24;
}

/* Send one packet to host by its hint; true if it left for MAC ..:mac4:host. */
static bool
sent_to(uint8_t host, uint8_t mac4, uint32_t *hint)
{
	unsigned before = n_out;

	arp_output_hint(&lc, rte_pktmbuf_alloc(pool), host_ip(host), hint);
	return n_out > before && last_type == RTE_ETHER_TYPE_IPV4 &&
	    last_dst.addr_bytes[4] == mac4 && last_dst.addr_bytes[5] == host;
}

static void
test_hint_follows_arp_changes(void **state)
{
	uint32_t hint = 0, hint2 = 0;
	unsigned before;

	(void)state;
	advance_ms(3 * TIMEOUT); /* what the test before left expires */
	request_from_mac(50, 1);
	assert_true(sent_to(50, 1, &hint));
	assert_int_not_equal(hint, 0);
	assert_true(sent_to(50, 1, &hint)); /* by the hint */
	/* the host answers from another MAC (a replaced board): the next packet follows */
	request_from_mac(50, 2);
	assert_true(sent_to(50, 2, &hint));
	/* its entry expires: still sent (stale, asked again), not by the hint alone */
	advance_ms(TIMEOUT + 50);
	before = (unsigned)lc.cnt.v[DPC_arp_TX_REQUEST];
	assert_true(sent_to(50, 2, &hint));
	assert_int_equal(lc.cnt.v[DPC_arp_TX_REQUEST], before + 1);
	/* forgotten, and every slot taken by other hosts: a packet to it must not leave by the
	 * old hint for whichever host took its slot */
	request_from_mac(51, 3);
	assert_true(sent_to(51, 3, &hint2));
	advance_ms(5 * TIMEOUT); /* 51 unused, 50 stale and unanswered: both go */
	assert_int_equal(arp_entry_count(&lc), 0);
	for (uint8_t h = 1; h <= ENTRIES; h++)
		request_from_mac(h, 4);
	assert_int_equal(arp_entry_count(&lc), ENTRIES);
	before = n_out;
	arp_output_hint(&lc, rte_pktmbuf_alloc(pool), host_ip(50), &hint);
	arp_output_hint(&lc, rte_pktmbuf_alloc(pool), host_ip(51), &hint2);
	assert_int_equal(n_out, before); /* no entry, no room: dropped (CACHE_FULL) */
	assert_int_equal(hint, 0);
	assert_int_equal(hint2, 0);
	/* room again: 50 is asked for, its packet waits, then leaves for the MAC it answers from */
	advance_ms(5 * TIMEOUT);
	arp_output_hint(&lc, rte_pktmbuf_alloc(pool), host_ip(50), &hint);
	assert_int_equal(last_type, RTE_ETHER_TYPE_ARP);
	assert_int_equal(hint, 0);
	before = n_out;
	request_from_mac(50, 5);
	assert_int_equal(n_out, before + 2); /* the held packet left, then our reply */
	assert_true(sent_to(50, 5, &hint));
	assert_int_not_equal(hint, 0);
}

static void
test_learned_entries_expire(void **state)
{
	struct rte_mbuf *m;
	(void)state;

	for (uint8_t h = 1; h <= ENTRIES; h++)
		request_from(h);
	assert_int_equal(arp_entry_count(&lc), ENTRIES);
	request_from(100);
	assert_int_equal(lc.cnt.v[DPC_arp_CACHE_FULL], 1); /* full, as a flood would leave it */
	/* host 1 is in use: sending to it after its expiry re-validates it, it stays */
	advance_ms(TIMEOUT + 100);
	m = rte_pktmbuf_alloc(pool);
	arp_output(&lc, m, 0x000112c6u | 1u << 24);
	advance_ms(TIMEOUT + 200);
	/* the others were never used: gone, and room for new hosts */
	assert_int_equal(lc.cnt.v[DPC_arp_EXPIRED], ENTRIES - 1);
	assert_int_equal(arp_entry_count(&lc), 1);
	request_from(100);
	assert_int_equal(arp_entry_count(&lc), 2);
	assert_int_equal(lc.cnt.v[DPC_arp_CACHE_FULL], 1);
}

int
main(void)
{
	char prefix[64];
	char *argv[] = { "test_arp_expiry", "--no-huge", "--no-pci", "-m", "64", "--no-shconf",
		"--file-prefix", prefix, "--log-level=error", "--no-telemetry", NULL };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_learned_entries_expire),
		cmocka_unit_test(test_hint_follows_arp_changes),
	};
	int rc;

	snprintf(prefix, sizeof(prefix), "arp_ut_%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return 1;
	pool =
	    rte_pktmbuf_pool_create("arp_ut", 511, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL)
		return 1;
	lc.pool = pool;
	lc.ip_be = OUR_IP;
	lc.netmask_be = 0x0000feffu; /* 255.254.0.0 */
	lc.mac.addr_bytes[0] = 0x02;
	lc.tsc_hz = 1000000000ull;
	lc.now_tsc = 1000000000ull;
	if (arp_lcore_init(&lc, ENTRIES, TIMEOUT) != 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	arp_lcore_fini(&lc);
	dp_eal_cleanup();
	return rc;
}
