/*
 * test_net_stack.c: dataplane/net below TCP (dp_io.c, eth.c, arp.c, ipv4.c, icmp.c) and
 * drivers/nic, with crafted frames through a real ethdev: a net_ring port (rte_eth_from_rings)
 * whose rx ring the test fills and whose tx ring it reads, brought up by nic_port_setup. Time
 * is the lcore's now_tsc, set by the test. Each error counter of these layers is driven and
 * checked by name; frames sent are checked byte by byte where they carry what the test asks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include <rte_arp.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include "arp.h"
#include "dp.h"
#include "eth.h"
#include "icmp.h"
#include "ipv4.h"
#include "nic.h"
#include "tcp.h"

#define IP(a, b, c, d) RTE_BE32(((uint32_t)(a) << 24) | ((b) << 16) | ((c) << 8) | (d))
#define TX_RING        16 /* exact size: the 17th frame of a burst is refused by the "NIC" */
#define ARP_N          8
#define ICMP_RATE      2

static struct rte_mempool *pool;
static struct rte_ring *rx_ring, *tx_ring;
static uint16_t port;
static struct dp_lcore lc;
static const struct rte_ether_addr our_mac = { { 0x02, 0, 0, 0, 0, 0x01 } };
static const struct rte_ether_addr peer_mac = { { 0x02, 0, 0, 0, 0, 0x02 } };
static const struct rte_ether_addr bcast = { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };
static const uint32_t our_ip = IP(198, 18, 0, 1), peer_ip = IP(198, 18, 0, 2);

#define CNT(layer, name) (lc.cnt.v[DPC_##layer##_##name])

/* Frames the stack sent (flushed through the port), oldest first. */
static unsigned
drain_tx(struct rte_mbuf **out, unsigned max)
{
	dp_tx_flush(&lc);
	return rte_ring_dequeue_burst(tx_ring, (void **)out, max, NULL);
}

static void
free_all(struct rte_mbuf **m, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		rte_pktmbuf_free(m[i]);
}

static struct rte_mbuf *
frame(const struct rte_ether_addr *dst, uint16_t type, const void *l3, uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eh) + len);

	rte_ether_addr_copy(dst, &eh->dst_addr);
	rte_ether_addr_copy(&peer_mac, &eh->src_addr);
	eh->ether_type = rte_cpu_to_be_16(type);
	memcpy(eh + 1, l3, len);
	return m;
}

static void
arp_pkt(struct rte_arp_hdr *a, uint16_t op, uint32_t sip, uint32_t tip)
{
	memset(a, 0, sizeof(*a));
	a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a->arp_hlen = RTE_ETHER_ADDR_LEN;
	a->arp_plen = 4;
	a->arp_opcode = rte_cpu_to_be_16(op);
	rte_ether_addr_copy(&peer_mac, &a->arp_data.arp_sha);
	a->arp_data.arp_sip = sip;
	a->arp_data.arp_tip = tip;
}

/* An IPv4 packet with an ICMP echo request of 8 payload bytes; fields adjustable after. */
struct ip_echo {
	struct rte_ipv4_hdr ip;
	struct rte_icmp_hdr ic;
	uint8_t data[8];
} __rte_packed;

static void
ip_echo(struct ip_echo *p, uint32_t src, uint32_t dst)
{
	memset(p, 0, sizeof(*p));
	p->ip.version_ihl = RTE_IPV4_VHL_DEF;
	p->ip.total_length = rte_cpu_to_be_16(sizeof(*p));
	p->ip.time_to_live = 64;
	p->ip.next_proto_id = IPPROTO_ICMP;
	p->ip.src_addr = src;
	p->ip.dst_addr = dst;
	p->ic.icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
	p->ic.icmp_ident = rte_cpu_to_be_16(0x1234);
	p->ic.icmp_seq_nb = rte_cpu_to_be_16(7);
	memcpy(p->data, "edgegw!!", 8);
	p->ic.icmp_cksum = (uint16_t)~rte_raw_cksum(&p->ic, sizeof(p->ic) + sizeof(p->data));
	p->ip.hdr_checksum = rte_ipv4_cksum(&p->ip);
}

static void
recksum(struct ip_echo *p)
{
	p->ip.hdr_checksum = 0;
	p->ip.hdr_checksum = rte_ipv4_cksum(&p->ip);
}

static void
input_ip(const void *l3, uint16_t len)
{
	eth_input(&lc, frame(&our_mac, RTE_ETHER_TYPE_IPV4, l3, len));
}

/* The peer tells us its MAC (a request for our address): learned, and answered. */
static void
peer_announces(void)
{
	struct rte_arp_hdr a;
	struct rte_mbuf *out[4];
	unsigned n;

	arp_pkt(&a, RTE_ARP_OP_REQUEST, peer_ip, our_ip);
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	n = drain_tx(out, 4);
	free_all(out, n);
}

static int
setup(void **state)
{
	(void)state;
	memset(&lc.cnt, 0, sizeof(lc.cnt));
	lc.now_tsc = rte_rdtsc(); /* dp_rx_burst sets it from the TSC too */
	lc.tx_wait_us = 0;
	lc.gateway_be = 0;
	assert_int_equal(arp_lcore_init(&lc, ARP_N, 60000), 0);
	icmp_lcore_init(&lc, ICMP_RATE);
	return 0;
}

static int
teardown(void **state)
{
	struct rte_mbuf *m;

	(void)state;
	dp_tx_flush(&lc);
	while (rte_ring_dequeue(tx_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	while (rte_ring_dequeue(rx_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	arp_lcore_fini(&lc);
	/* every mbuf back in the pool: nothing the stack dropped or held leaked */
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
	return 0;
}

static void
test_eth_drops(void **state)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	static const struct rte_ether_addr other = { { 0x02, 9, 9, 9, 9, 9 } };
	uint8_t body[28] = { 0 };

	(void)state;
	rte_pktmbuf_append(m, 10);
	eth_input(&lc, m);
	assert_int_equal(CNT(eth, RUNT), 1);
	eth_input(&lc, frame(&other, RTE_ETHER_TYPE_IPV4, body, sizeof(body)));
	assert_int_equal(CNT(eth, NOT_FOR_US), 1);
	eth_input(&lc, frame(&our_mac, RTE_ETHER_TYPE_VLAN, body, sizeof(body)));
	eth_input(&lc, frame(&our_mac, RTE_ETHER_TYPE_QINQ, body, sizeof(body)));
	assert_int_equal(CNT(eth, VLAN), 2);
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_IPV6, body, sizeof(body)));
	assert_int_equal(CNT(eth, UNKNOWN_TYPE), 1);
	assert_int_equal(CNT(ipv4, RX) + CNT(arp, BAD), 0);
}

static void
test_arp_request_answered(void **state)
{
	struct rte_arp_hdr a;
	struct rte_mbuf *out[4];
	const struct rte_ether_hdr *eh;
	const struct rte_arp_hdr *r;

	(void)state;
	arp_pkt(&a, RTE_ARP_OP_REQUEST, peer_ip, our_ip);
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	assert_int_equal(CNT(arp, RX_REQUEST), 1);
	assert_int_equal(drain_tx(out, 4), 1);
	eh = rte_pktmbuf_mtod(out[0], const struct rte_ether_hdr *);
	r = (const struct rte_arp_hdr *)(eh + 1);
	assert_memory_equal(&eh->dst_addr, &peer_mac, 6);
	assert_memory_equal(&eh->src_addr, &our_mac, 6);
	assert_int_equal(rte_be_to_cpu_16(eh->ether_type), RTE_ETHER_TYPE_ARP);
	assert_int_equal(rte_be_to_cpu_16(r->arp_opcode), RTE_ARP_OP_REPLY);
	assert_memory_equal(&r->arp_data.arp_sha, &our_mac, 6);
	assert_int_equal(r->arp_data.arp_sip, our_ip);
	assert_int_equal(r->arp_data.arp_tip, peer_ip);
	assert_int_equal(CNT(arp, TX_REPLY), 1);
	assert_int_equal(arp_entry_count(&lc), 1); /* the sender learned (RFC 826) */
	free_all(out, 1);
}

static void
test_arp_bad_and_ignored(void **state)
{
	struct rte_arp_hdr a;
	struct rte_mbuf *out[4];

	(void)state;
	arp_pkt(&a, RTE_ARP_OP_REQUEST, peer_ip, our_ip);
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, 20)); /* short */
	a.arp_plen = 6;
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	arp_pkt(&a, 3, peer_ip, our_ip); /* RARP request opcode */
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	assert_int_equal(CNT(arp, BAD), 3);
	arp_pkt(&a, RTE_ARP_OP_REQUEST, peer_ip, IP(198, 18, 0, 77));
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	assert_int_equal(CNT(arp, NOT_FOR_US), 1);
	/* gratuitous from an unknown host: counted, never added */
	arp_pkt(&a, RTE_ARP_OP_REQUEST, peer_ip, peer_ip);
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	assert_int_equal(CNT(arp, GRATUITOUS), 1);
	/* a sender off our subnet is not learned */
	arp_pkt(&a, RTE_ARP_OP_REPLY, IP(198, 19, 0, 2), our_ip);
	eth_input(&lc, frame(&our_mac, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	assert_int_equal(CNT(arp, RX_REPLY), 1);
	assert_int_equal(arp_entry_count(&lc), 0);
	assert_int_equal(drain_tx(out, 4), 0);
}

static struct rte_mbuf *
l4_payload(uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	memset(rte_pktmbuf_append(m, len), 0xab, len);
	return m;
}

static void
test_arp_hold_and_resolve(void **state)
{
	struct rte_arp_hdr a;
	struct rte_mbuf *out[16];
	unsigned n;

	(void)state;
	for (int i = 0; i < 5; i++) /* 4 wait; the 5th pushes out the oldest */
		assert_int_equal(ipv4_output(&lc, l4_payload(8), peer_ip, 253), 0);
	assert_int_equal(CNT(arp, HOLD_DROP), 1);
	assert_int_equal(CNT(arp, TX_REQUEST), 1);
	assert_int_equal(CNT(ipv4, TX), 5);
	n = drain_tx(out, 16);
	assert_int_equal(n, 1); /* the request, broadcast */
	assert_memory_equal(&rte_pktmbuf_mtod(out[0], struct rte_ether_hdr *)->dst_addr, &bcast, 6);
	free_all(out, n);
	/* the reply releases the 4 held packets to the peer's MAC */
	arp_pkt(&a, RTE_ARP_OP_REPLY, peer_ip, our_ip);
	eth_input(&lc, frame(&our_mac, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	n = drain_tx(out, 16);
	assert_int_equal(n, 4);
	for (unsigned i = 0; i < n; i++) {
		const struct rte_ether_hdr *eh =
		    rte_pktmbuf_mtod(out[i], const struct rte_ether_hdr *);
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eh + 1);

		assert_memory_equal(&eh->dst_addr, &peer_mac, 6);
		assert_int_equal(ip->dst_addr, peer_ip);
		assert_int_equal(ip->src_addr, our_ip);
		assert_int_equal(ip->next_proto_id, 253);
		assert_int_equal(rte_raw_cksum(ip, sizeof(*ip)), 0xffff);
	}
	free_all(out, n);
	assert_int_equal(CNT(arp, UNRESOLVED), 0);
}

static void
test_arp_unresolved_and_stale(void **state)
{
	struct rte_mbuf *out[16];
	uint64_t sec = rte_get_tsc_hz();
	unsigned n;

	(void)state;
	ipv4_output(&lc, l4_payload(8), IP(198, 18, 0, 9), 253);
	ipv4_output(&lc, l4_payload(8), IP(198, 18, 0, 9), 253);
	for (int i = 0; i < 4; i++) { /* retries each second, then gives up */
		lc.now_tsc += sec + sec / 2;
		arp_poll(&lc);
	}
	assert_int_equal(CNT(arp, TX_REQUEST), 3);
	assert_int_equal(CNT(arp, UNRESOLVED), 2);
	assert_int_equal(arp_entry_count(&lc), 0);
	n = drain_tx(out, 16);
	assert_int_equal(n, 3);
	free_all(out, n);

	/* a learned entry past its timeout is used while it is asked for again */
	peer_announces();
	lc.now_tsc += 61 * sec;
	ipv4_output(&lc, l4_payload(8), peer_ip, 253);
	assert_int_equal(CNT(arp, TX_REQUEST), 4);
	n = drain_tx(out, 16);
	assert_int_equal(n, 2); /* the request, and the packet to the still-known MAC */
	free_all(out, n);
}

static void
test_arp_cache_full(void **state)
{
	struct rte_mbuf *out[64];
	unsigned n;

	(void)state;
	/* the hash may hold a few more than asked: fill until it refuses */
	for (int i = 0; i < 8 * ARP_N && CNT(arp, CACHE_FULL) == 0; i++) {
		ipv4_output(&lc, l4_payload(8), IP(198, 18, 0, 10 + i), 253);
		n = drain_tx(out, 64);
		free_all(out, n);
	}
	assert_int_equal(CNT(arp, CACHE_FULL), 1);
	assert_true(arp_entry_count(&lc) >= ARP_N);
	/* a reply from a host not in the full cache: learning it fails too */
	{
		struct rte_arp_hdr a;

		arp_pkt(&a, RTE_ARP_OP_REPLY, IP(198, 18, 0, 200), our_ip);
		eth_input(&lc, frame(&our_mac, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
		assert_int_equal(CNT(arp, CACHE_FULL), 2);
	}
}

static void
test_arp_shared_between_lcores(void **state)
{
	struct dp_lcore other = lc;
	struct dp_lcore *both[2] = { &lc, &other };
	struct rte_mbuf *out[4];

	(void)state;
	other.lcore_id = 1;
	other.arp = NULL;
	assert_int_equal(arp_lcore_init(&other, ARP_N, 60000), 0);
	arp_lcores_link(both, 2);
	peer_announces(); /* learned on lc: passed to other */
	assert_int_equal(arp_entry_count(&other), 0);
	arp_poll(&other);
	assert_int_equal(arp_entry_count(&other), 1);
	other.tx_n = 0;
	ipv4_output(&other, l4_payload(8), peer_ip, 253); /* no request: known */
	assert_int_equal(other.cnt.v[DPC_arp_TX_REQUEST], 0);
	assert_int_equal(other.tx_n, 1);
	dp_tx_flush(&other);
	assert_int_equal(rte_ring_dequeue_burst(tx_ring, (void **)out, 4, NULL), 1);
	free_all(out, 1);
	arp_lcore_fini(&other);
}

static void
test_ipv4_input_drops(void **state)
{
	struct ip_echo p;
	uint8_t opt[sizeof(struct ip_echo) + 4];

	(void)state;
	ip_echo(&p, peer_ip, our_ip);
	input_ip(&p, 12);
	assert_int_equal(CNT(ipv4, TRUNCATED), 1);
	p.ip.total_length = rte_cpu_to_be_16(200);
	recksum(&p);
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, TRUNCATED), 2);
	ip_echo(&p, peer_ip, our_ip);
	p.ip.version_ihl = 0x65;
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, BAD_VERSION), 1);
	p.ip.version_ihl = 0x44;
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, BAD_HDR_LEN), 1);
	ip_echo(&p, peer_ip, our_ip);
	p.ip.hdr_checksum ^= 1;
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, BAD_CKSUM), 1);
	/* one 4-byte option (NOPs), checksum right */
	ip_echo(&p, peer_ip, our_ip);
	memcpy(opt, &p.ip, sizeof(p.ip));
	memset(opt + sizeof(p.ip), 1, 4);
	memcpy(opt + sizeof(p.ip) + 4, &p.ic, sizeof(p) - sizeof(p.ip));
	((struct rte_ipv4_hdr *)opt)->version_ihl = 0x46;
	((struct rte_ipv4_hdr *)opt)->total_length = rte_cpu_to_be_16(sizeof(opt));
	((struct rte_ipv4_hdr *)opt)->hdr_checksum = 0;
	((struct rte_ipv4_hdr *)opt)->hdr_checksum = (uint16_t)~rte_raw_cksum(opt, 24);
	input_ip(opt, sizeof(opt));
	assert_int_equal(CNT(ipv4, OPTIONS), 1);
	p.ip.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG);
	recksum(&p);
	input_ip(&p, sizeof(p));
	p.ip.fragment_offset = rte_cpu_to_be_16(100);
	recksum(&p);
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, FRAGMENT), 2);
	ip_echo(&p, peer_ip, IP(198, 18, 0, 3));
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, NOT_FOR_US), 1);
	{
		static const uint32_t bad_src[] = { 0, IP(127, 0, 0, 1), IP(224, 0, 0, 1),
			IP(255, 255, 255, 255), IP(198, 18, 0, 255), IP(198, 18, 0, 1) };

		for (unsigned i = 0; i < RTE_DIM(bad_src); i++) {
			ip_echo(&p, bad_src[i], our_ip);
			input_ip(&p, sizeof(p));
		}
		assert_int_equal(CNT(ipv4, BAD_SRC), RTE_DIM(bad_src));
	}
	ip_echo(&p, peer_ip, our_ip);
	p.ip.time_to_live = 0;
	recksum(&p);
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, TTL_ZERO), 1);
	ip_echo(&p, peer_ip, our_ip);
	p.ip.next_proto_id = IPPROTO_UDP;
	recksum(&p);
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, UNKNOWN_PROTO), 1);
	assert_int_equal(CNT(ipv4, RX), 17);
	assert_int_equal(CNT(icmp, ECHO_REQUEST) + CNT(icmp, BAD), 0);
}

static void
test_ipv4_output_errors(void **state)
{
	struct rte_mbuf *m, *out[4];
	unsigned n;

	(void)state;
	assert_int_equal(ipv4_output(&lc, l4_payload(8), IP(203, 0, 113, 1), 253), -ENETUNREACH);
	assert_int_equal(CNT(ipv4, NO_ROUTE), 1);
	/* no headroom for the IPv4 header */
	m = rte_pktmbuf_alloc(pool);
	m->data_off = 0;
	rte_pktmbuf_append(m, 8);
	assert_int_equal(ipv4_output(&lc, m, peer_ip, 253), -ENOBUFS);
	assert_int_equal(CNT(port, MBUF_ALLOC_FAIL), 1);
	/* off-link through the gateway: ARP asks for the gateway */
	lc.gateway_be = IP(198, 18, 0, 254);
	assert_int_equal(ipv4_output(&lc, l4_payload(8), IP(203, 0, 113, 1), 253), 0);
	n = drain_tx(out, 4);
	assert_int_equal(n, 1);
	assert_int_equal(
	    ((struct rte_arp_hdr *)(rte_pktmbuf_mtod(out[0], struct rte_ether_hdr *) + 1))
		->arp_data.arp_tip,
	    lc.gateway_be);
	free_all(out, n);
	assert_int_equal(CNT(ipv4, TX), 1);
}

static void
test_icmp_echo_and_limits(void **state)
{
	struct ip_echo p;
	struct rte_mbuf *out[8];
	unsigned n;

	(void)state;
	peer_announces();
	ip_echo(&p, peer_ip, our_ip);
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 1);
	n = drain_tx(out, 8);
	assert_int_equal(n, 1);
	{
		const struct rte_ether_hdr *eh =
		    rte_pktmbuf_mtod(out[0], const struct rte_ether_hdr *);
		const struct ip_echo *r = (const struct ip_echo *)(eh + 1);

		assert_int_equal(rte_pktmbuf_pkt_len(out[0]), sizeof(*eh) + sizeof(p));
		assert_memory_equal(&eh->dst_addr, &peer_mac, 6);
		assert_int_equal(r->ip.src_addr, our_ip);
		assert_int_equal(r->ip.dst_addr, peer_ip);
		assert_int_equal(r->ic.icmp_type, RTE_IP_ICMP_ECHO_REPLY);
		assert_int_equal(r->ic.icmp_ident, p.ic.icmp_ident);
		assert_int_equal(r->ic.icmp_seq_nb, p.ic.icmp_seq_nb);
		assert_memory_equal(r->data, p.data, sizeof(p.data));
		assert_int_equal(rte_raw_cksum(&r->ic, sizeof(r->ic) + sizeof(r->data)), 0xffff);
		assert_int_equal(rte_raw_cksum(&r->ip, sizeof(r->ip)), 0xffff);
	}
	free_all(out, n);
	/* the bucket holds ICMP_RATE tokens and time stands still: the third is over the limit */
	input_ip(&p, sizeof(p));
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 2);
	assert_int_equal(CNT(icmp, RATE_LIMITED), 1);
	lc.now_tsc += rte_get_tsc_hz(); /* a second later: tokens again */
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 3);
	n = drain_tx(out, 8);
	free_all(out, n);
	assert_int_equal(n, 2);

	ip_echo(&p, peer_ip, our_ip);
	p.ic.icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	p.ic.icmp_cksum = 0;
	p.ic.icmp_cksum = (uint16_t)~rte_raw_cksum(&p.ic, sizeof(p.ic) + sizeof(p.data));
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(icmp, OTHER), 1);
}

static void
test_icmp_short(void **state)
{
	struct ip_echo p;

	(void)state;
	ip_echo(&p, peer_ip, our_ip);
	p.ip.total_length = rte_cpu_to_be_16(20 + 4);
	recksum(&p);
	input_ip(&p, 20 + 4);
	assert_int_equal(CNT(icmp, BAD), 1);
	ip_echo(&p, peer_ip, our_ip);
	p.ic.icmp_cksum ^= 0x100;
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(icmp, BAD), 2);
}

static void
test_dp_rx_burst(void **state)
{
	struct ip_echo p;
	struct rte_mbuf *in[3], *out[8];
	unsigned n;

	(void)state;
	assert_int_equal(dp_rx_burst(&lc), 0);
	assert_int_equal(CNT(port, IDLE_POLLS), 1);
	peer_announces();
	icmp_lcore_init(&lc, 100);
	ip_echo(&p, peer_ip, our_ip);
	for (int i = 0; i < 3; i++)
		in[i] = frame(&our_mac, RTE_ETHER_TYPE_IPV4, &p, sizeof(p));
	assert_int_equal(rte_ring_enqueue_burst(rx_ring, (void **)in, 3, NULL), 3);
	assert_int_equal(dp_rx_burst(&lc), 3);
	assert_int_equal(CNT(port, RX_BURSTS), 1);
	assert_int_equal(CNT(port, RX_PKTS), 3);
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 3);
	n = drain_tx(out, 8);
	assert_int_equal(n, 3);
	assert_int_equal(CNT(port, TX_PKTS), 4); /* 3 replies and the ARP reply before */
	free_all(out, n);
}

static void
test_dp_tx_drop_and_wait(void **state)
{
	struct rte_mbuf *out[TX_RING];
	unsigned n;

	(void)state;
	/* the "NIC" takes TX_RING frames; a gateway drops the rest rather than wait */
	for (int i = 0; i < TX_RING + 3; i++)
		dp_tx_enqueue(&lc, l4_payload(60));
	dp_tx_flush(&lc);
	assert_int_equal(CNT(port, TX_PKTS), TX_RING);
	assert_int_equal(CNT(port, TX_DROP), 3);
	/* a load generator waits for room, up to tx_wait_us, then drops */
	lc.tx_wait_us = 50;
	dp_tx_enqueue(&lc, l4_payload(60));
	dp_tx_flush(&lc);
	assert_int_equal(CNT(port, TX_DROP), 4);
	n = rte_ring_dequeue_burst(tx_ring, (void **)out, TX_RING, NULL);
	assert_int_equal(n, TX_RING);
	free_all(out, n);
	/* a full tx buffer (DP_TX_BUF) flushes before taking one more */
	for (int i = 0; i < DP_TX_BUF + 1; i++) {
		dp_tx_enqueue(&lc, l4_payload(60));
		if (i % TX_RING == 0) {
			n = rte_ring_dequeue_burst(tx_ring, (void **)out, TX_RING, NULL);
			free_all(out, n);
		}
	}
	assert_int_equal(lc.tx_n, 1);
	assert_true(CNT(port, TX_DROP) > 4);
}

static void
test_dp_alloc_pool_empty(void **state)
{
	struct rte_mempool *small =
	    rte_pktmbuf_pool_create("ut_small", 4, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	struct rte_mempool *saved = lc.pool;
	struct rte_mbuf *m[4];
	struct rte_arp_hdr a;

	(void)state;
	assert_non_null(small);
	lc.pool = small;
	for (int i = 0; i < 4; i++)
		assert_non_null(m[i] = dp_alloc(&lc));
	assert_null(dp_alloc(&lc));
	assert_int_equal(CNT(port, MBUF_ALLOC_FAIL), 1);
	/* an ARP request for us with no mbuf for the reply: learned, not answered, counted */
	arp_pkt(&a, RTE_ARP_OP_REQUEST, peer_ip, our_ip);
	eth_input(&lc, frame(&bcast, RTE_ETHER_TYPE_ARP, &a, sizeof(a)));
	assert_int_equal(CNT(port, MBUF_ALLOC_FAIL), 2);
	assert_int_equal(CNT(arp, TX_REPLY), 0);
	assert_int_equal(lc.tx_n, 0);
	free_all(m, 4);
	lc.pool = saved;
	rte_mempool_free(small);
}

static void
test_eth_output_no_headroom(void **state)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

	(void)state;
	m->data_off = 4;
	rte_pktmbuf_append(m, 20);
	eth_output(&lc, m, &peer_mac, RTE_ETHER_TYPE_IPV4);
	assert_int_equal(CNT(port, MBUF_ALLOC_FAIL), 1);
	assert_int_equal(lc.tx_n, 0);
}

static void
test_nic_port(void **state)
{
	bool up;
	uint32_t speed;
	uint16_t pid;
	char name[RTE_ETH_NAME_MAX_LEN];

	(void)state;
	assert_int_equal(rte_eth_dev_get_name_by_port(port, name), 0);
	assert_int_equal(nic_port_find(name, &pid), 0);
	assert_int_equal(pid, port);
	assert_int_equal(nic_port_find("no_such_port0", &pid), -ENODEV);
	assert_int_equal(nic_link_get(port, &up, &speed), 0);
	assert_true(up);
	assert_int_equal(dp_counter_name(DPC_arp_CACHE_FULL)[0], 'a');
	assert_string_equal(dp_counter_name(DPC_arp_CACHE_FULL), "arp_cache_full");
	assert_int_equal(dp_counter_kind(DPC_port_TX_DROP), COUNTER_KIND_DROP);
	assert_int_equal(dp_counter_kind(DPC_port_RX_PKTS), COUNTER_KIND_INFO);
}

/* An echo request whose frame is longer than its IPv4 total length (Ethernet padding, a
 * minimum-size frame): the padding is cut, the reply is as long as the request. */
static void
test_ipv4_padding_trimmed(void **state)
{
	uint8_t padded[sizeof(struct ip_echo) + 10];
	struct ip_echo p;
	struct rte_mbuf *out[4];
	unsigned n;

	(void)state;
	peer_announces();
	ip_echo(&p, peer_ip, our_ip);
	memset(padded, 0, sizeof(padded));
	memcpy(padded, &p, sizeof(p));
	input_ip(padded, sizeof(padded));
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 1);
	n = drain_tx(out, 4);
	assert_int_equal(n, 1);
	assert_int_equal(rte_pktmbuf_pkt_len(out[0]), sizeof(struct rte_ether_hdr) + sizeof(p));
	free_all(out, n);
}

/* Lengths that do not add up: a total length below the header's, and a header (with options)
 * that does not fit the first segment of a chained frame. Both TRUNCATED, nothing answered. */
static void
test_ipv4_lengths(void **state)
{
	struct ip_echo p;
	uint8_t opt[sizeof(struct ip_echo) + 4];
	struct rte_mbuf *m, *m2;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)opt;

	(void)state;
	ip_echo(&p, peer_ip, our_ip);
	p.ip.total_length = rte_cpu_to_be_16(16);
	recksum(&p);
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(ipv4, TRUNCATED), 1);
	/* 24 bytes of header (one option), the first mbuf holding 22 of them */
	ip_echo(&p, peer_ip, our_ip);
	memcpy(opt, &p.ip, sizeof(p.ip));
	memset(opt + sizeof(p.ip), 1, 4);
	memcpy(opt + sizeof(p.ip) + 4, &p.ic, sizeof(p) - sizeof(p.ip));
	ip->version_ihl = 0x46;
	ip->total_length = rte_cpu_to_be_16(sizeof(opt));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = (uint16_t)~rte_raw_cksum(opt, 24);
	m = frame(&our_mac, RTE_ETHER_TYPE_IPV4, opt, 22);
	m2 = rte_pktmbuf_alloc(pool);
	memcpy(rte_pktmbuf_append(m2, sizeof(opt) - 22), opt + 22, sizeof(opt) - 22);
	assert_int_equal(rte_pktmbuf_chain(m, m2), 0);
	eth_input(&lc, m);
	assert_int_equal(CNT(ipv4, TRUNCATED), 2);
	assert_int_equal(CNT(ipv4, OPTIONS), 0);
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 0);
}

/* The NIC's checksum verdict (rx offload): BAD drops a packet whose header sums right, GOOD
 * spares the sum of one whose header would not (the NIC checked what arrived). */
static void
test_ipv4_rx_cksum_offload(void **state)
{
	struct ip_echo p;
	struct rte_mbuf *m, *out[4];
	unsigned n;

	(void)state;
	peer_announces();
	ip_echo(&p, peer_ip, our_ip);
	m = frame(&our_mac, RTE_ETHER_TYPE_IPV4, &p, sizeof(p));
	m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_BAD;
	eth_input(&lc, m);
	assert_int_equal(CNT(ipv4, BAD_CKSUM), 1);
	p.ip.hdr_checksum ^= 0x5a5a;
	m = frame(&our_mac, RTE_ETHER_TYPE_IPV4, &p, sizeof(p));
	m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD;
	eth_input(&lc, m);
	assert_int_equal(CNT(ipv4, BAD_CKSUM), 1);
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 1);
	n = drain_tx(out, 4);
	assert_int_equal(n, 1);
	free_all(out, n);
}

/* A minimal TCP segment (header only) from the peer to port 80. */
static void
tcp_pkt(uint8_t *b)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)b;
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);

	memset(b, 0, 40);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16(40);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = peer_ip;
	ip->dst_addr = our_ip;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	th->src_port = rte_cpu_to_be_16(40000);
	th->dst_port = rte_cpu_to_be_16(80);
	th->data_off = 5 << 4;
	th->tcp_flags = RTE_TCP_SYN_FLAG;
	th->cksum = rte_ipv4_udptcp_cksum(ip, th);
}

/* TCP segments of an rx burst wait for its end (one bulk flow lookup), up to DP_RX_BURST; one
 * more goes to TCP at once. An lcore without TCP frees them all. */
static void
test_ipv4_tcp_batched(void **state)
{
	uint8_t b[40];
	struct rte_mbuf *in[2];

	(void)state;
	tcp_pkt(b);
	in[0] = frame(&our_mac, RTE_ETHER_TYPE_IPV4, b, sizeof(b));
	in[1] = frame(&our_mac, RTE_ETHER_TYPE_IPV4, b, sizeof(b));
	assert_int_equal(rte_ring_enqueue_burst(rx_ring, (void **)in, 2, NULL), 2);
	assert_int_equal(dp_rx_burst(&lc), 2);
	assert_int_equal(CNT(ipv4, RX), 2);
	assert_int_equal(lc.tcp_rx_n, 0); /* handed over at the burst's end, and freed */
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
	/* a batch already full: the next segment is not kept */
	lc.tcp_rx_batch = true;
	for (unsigned i = 0; i <= DP_RX_BURST; i++)
		input_ip(b, sizeof(b));
	lc.tcp_rx_batch = false;
	assert_int_equal(lc.tcp_rx_n, DP_RX_BURST);
	assert_int_equal(rte_mempool_in_use_count(pool), DP_RX_BURST);
	tcp_input_burst(&lc, lc.tcp_rx, lc.tcp_rx_n);
	lc.tcp_rx_n = 0;
	assert_int_equal(CNT(ipv4, RX), 2 + DP_RX_BURST + 1);
}

/* Transmit checksum offload: with it the IPv4 header's sum is left to the NIC, and the TCP
 * sum holds only the pseudo-header, each asked for by the mbuf's flags; without it both are
 * computed in full. */
static void
test_ipv4_tx_cksum_offload(void **state)
{
	uint8_t b[40];
	struct rte_mbuf *m, *out[4];
	const struct rte_ipv4_hdr *ip;
	const struct rte_tcp_hdr *th;
	unsigned n;

	(void)state;
	peer_announces();
	tcp_pkt(b);
	for (int off = 0; off < 2; off++) {
		lc.caps.tx_ipv4_cksum = lc.caps.tx_tcp_cksum = off == 0;
		m = rte_pktmbuf_alloc(pool);
		memcpy(rte_pktmbuf_append(m, 20), b + 20, 20);
		rte_pktmbuf_mtod(m, struct rte_tcp_hdr *)->cksum = 0;
		assert_int_equal(ipv4_output(&lc, m, peer_ip, IPPROTO_TCP), 0);
		n = drain_tx(out, 4);
		assert_int_equal(n, 1);
		ip =
		    (const struct rte_ipv4_hdr *)(rte_pktmbuf_mtod(out[0], struct rte_ether_hdr *) +
			1);
		th = (const struct rte_tcp_hdr *)(ip + 1);
		if (off == 0) {
			assert_true(out[0]->ol_flags & RTE_MBUF_F_TX_IP_CKSUM);
			assert_true(out[0]->ol_flags & RTE_MBUF_F_TX_TCP_CKSUM);
			assert_int_equal(ip->hdr_checksum, 0);
			assert_int_equal(th->cksum, rte_ipv4_phdr_cksum(ip, out[0]->ol_flags));
		} else {
			assert_false(
			    out[0]->ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM));
			assert_int_equal(rte_raw_cksum(ip, sizeof(*ip)), 0xffff);
			assert_int_equal(rte_ipv4_udptcp_cksum_verify(ip, th), 0);
		}
		free_all(out, n);
	}
	lc.caps.tx_ipv4_cksum = lc.caps.tx_tcp_cksum = false;
}

/* ICMP that is not an echo request (code 0), nor a "fragmentation needed": counted OTHER and
 * never answered; a message in two mbufs is not summed across them: BAD. */
static void
test_icmp_other_and_chained(void **state)
{
	struct ip_echo p;
	struct rte_mbuf *m, *m2, *out[4];

	(void)state;
	peer_announces();
	ip_echo(&p, peer_ip, our_ip);
	p.ic.icmp_code = 1;
	p.ic.icmp_cksum = 0;
	p.ic.icmp_cksum = (uint16_t)~rte_raw_cksum(&p.ic, sizeof(p.ic) + sizeof(p.data));
	input_ip(&p, sizeof(p));
	ip_echo(&p, peer_ip, our_ip);
	p.ic.icmp_type = 3; /* unreachable, code 1: host unreachable */
	p.ic.icmp_code = 1;
	p.ic.icmp_cksum = 0;
	p.ic.icmp_cksum = (uint16_t)~rte_raw_cksum(&p.ic, sizeof(p.ic) + sizeof(p.data));
	input_ip(&p, sizeof(p));
	assert_int_equal(CNT(icmp, OTHER), 2);
	ip_echo(&p, peer_ip, our_ip);
	m = frame(&our_mac, RTE_ETHER_TYPE_IPV4, &p, sizeof(p) - 4);
	m2 = rte_pktmbuf_alloc(pool);
	memcpy(rte_pktmbuf_append(m2, 4), (uint8_t *)&p + sizeof(p) - 4, 4);
	assert_int_equal(rte_pktmbuf_chain(m, m2), 0);
	eth_input(&lc, m);
	assert_int_equal(CNT(icmp, BAD), 1);
	assert_int_equal(CNT(icmp, ECHO_REQUEST), 0);
	assert_int_equal(drain_tx(out, 4), 0);
}

/* Counter names and kinds as an operator reads them: lower case (digits kept), each with a
 * description; an id past the table is "?" and never a read out of bounds. */
static void
test_counter_names(void **state)
{
	(void)state;
	assert_string_equal(dp_counter_name(DPC_tcp_FIN_WAIT_2_TIMEOUT), "tcp_fin_wait_2_timeout");
	assert_string_equal(dp_counter_name(DPC_tcp_FIN_WAIT_2_TIMEOUT), "tcp_fin_wait_2_timeout");
	assert_true(strlen(dp_counter_desc(DPC_tcp_FIN_WAIT_2_TIMEOUT)) > 10);
	assert_string_equal(dp_counter_name(DPC__COUNT), "?");
	assert_string_equal(dp_counter_desc(DPC__COUNT), "?");
	assert_int_equal(dp_counter_kind(DPC__COUNT), COUNTER_KIND_INFO);
	for (int i = 0; i < DPC__COUNT; i++) {
		const char *n = dp_counter_name((enum dp_counter_id)i);

		assert_true(n[0] != '\0' && n[0] != '?');
		for (const char *c = n; *c != '\0'; c++)
			assert_false(*c >= 'A' && *c <= 'Z');
		assert_true(dp_counter_desc((enum dp_counter_id)i)[0] != '\0');
	}
}

static int
eal_and_port(void)
{
	char prefix[64];
	char *argv[] = { "test_net_stack", "--no-huge", "--no-pci", "-m", "64", "--no-shconf",
		"--file-prefix", prefix, "--log-level=error", "--no-telemetry", NULL };
	struct nic_port_conf conf = {
		.device = "ut_ring", .n_queues = 1, .rx_desc = 64, .tx_desc = 64
	};
	struct rte_mempool *pools[1];
	struct rte_ether_addr mac;
	int p;

	snprintf(prefix, sizeof(prefix), "net_ut_%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return -1;
	atexit(dp_eal_cleanup);
	pool = rte_pktmbuf_pool_create("ut", 2048, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	rx_ring = rte_ring_create("ut_rx", 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	tx_ring = rte_ring_create(
	    "ut_tx", TX_RING, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (pool == NULL || rx_ring == NULL || tx_ring == NULL)
		return -1;
	p = rte_eth_from_rings("ut_ring", &rx_ring, 1, &tx_ring, 1, SOCKET_ID_ANY);
	if (p < 0)
		return -1;
	port = (uint16_t)p;
	pools[0] = pool;
	if (nic_port_setup(port, &conf, pools, &lc.caps, &mac) != 0)
		return -1;
	lc.port_id = port;
	lc.pool = pool;
	lc.tsc_hz = rte_get_tsc_hz();
	lc.mac = our_mac;
	lc.ip_be = our_ip;
	lc.netmask_be = IP(255, 255, 255, 0);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nic_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eth_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_request_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_bad_and_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_hold_and_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_unresolved_and_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_cache_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_shared_between_lcores, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_input_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_output_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_echo_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_short, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dp_rx_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dp_tx_drop_and_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dp_alloc_pool_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eth_output_no_headroom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_padding_trimmed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_lengths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_rx_cksum_offload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_tcp_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_tx_cksum_offload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_other_and_chained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_names, setup, teardown),
	};

	if (eal_and_port() != 0) {
		fprintf(stderr, "test_net_stack: EAL or the net_ring port did not come up\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
