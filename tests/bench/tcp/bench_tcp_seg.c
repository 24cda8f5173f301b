/*
 * bench_tcp_seg: the cost per segment of the TCP library alone (issue 16, "Cost per segment"):
 * no NIC (IPv4, ARP and Ethernet output included, not input). N established flows (a SYN, the
 * SYN-ACK, the ACK each), from as many peer addresses as it takes (50,000 flows each: ports
 * 1024..50,023), each address learnt by ARP; then segments of -s bytes (64), each to a random flow, through tcp_input and tcp_flush: into a discard app
 * (ns per received segment) and into an echo app (ns per echoed segment: the echo leaves as
 * one segment carrying the ACK). The segments are built in mbufs from a template (the cost of
 * building and freeing one is measured alone and printed, not subtracted); sent segments are
 * sent through the real IPv4, ARP and Ethernet output (checksums by offload) to a stand-in
 * for the tx queue, which frees them and plays the peer's receiver (its next segment
 * acknowledges what reached it); each flow keeps its last echo until the next segment
 * to it acknowledges it (so the pool is sized for one mbuf per flow). Segments go in bursts
 * of -b (as the rx burst hands them over: tcp_input_burst, then one tcp_flush and one
 * tcp_timers_poll, as dataplane/dp_worker.c does); the stack's clock moves -n ns per segment
 * (default 1,000: a million segments a second on the lcore), so delayed ACKs and
 * retransmission timers are armed, moved and fired as they would be. The last two columns,
 * "stack alone", take out the time each run spent building its segments (TSC around each
 * burst's build and around its trip through the stack): at many flows the build writes into
 * mbufs the stack freed long ago, out of cache, which a NIC would have filled by DMA, so the
 * build costs more there than the build+free column (hot mbufs) says. Numbers only.
 *
 *   bench_tcp_seg [-b BURST] [-n NS_PER_SEG] [-s PAYLOAD_BYTES] [-c SEGMENTS] [FLOWS...]
 *   (default -b 1 -n 1000 -s 64 -c 2000000 1000 100000; at most 250 peer addresses, 12.5M
 *   flows; a smaller -c for a run under valgrind, which counts instructions where the
 *   machine's counters cannot: valgrind --tool=callgrind --toggle-collect=run_echoed)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_random.h>
#include <rte_tcp.h>

#include "arp.h"
#include "dp.h"
#include "pmtu.h"
#include "tcp.h"

#define OUR_IP         0x010012c6u /* 198.18.0.1 */
#define PORT           1883
#define FLOWS_PER_PEER 50000u /* ports 1024.. of one peer address */
#define MAX_PEER_IPS   250u   /* 198.18.0.2 .. 198.18.0.251 */

static struct dp_lcore lc;
static uint32_t last_seq, n_out, burst = 1, ns_per_seg = 1000, payload = 64, segs = 2000000;
static bool echo;

struct peer {
	uint32_t snd_nxt, rcv_nxt;
};
static struct peer *peers;
static uint32_t n_peers;

/* Flow i's peer: address 198.18.0.(2 + i / FLOWS_PER_PEER), port 1024 + i % FLOWS_PER_PEER. */
static uint32_t
peer_ip(uint32_t i)
{
	return 0x000012c6u | (2u + i / FLOWS_PER_PEER) << 24;
}

static uint16_t
peer_port(uint32_t i)
{
	return (uint16_t)(1024u + i % FLOWS_PER_PEER);
}

struct rte_mbuf *
dp_alloc(struct dp_lcore *l)
{
	return rte_pktmbuf_alloc(l->pool);
}

/* The stand-in for the tx burst: frees what is sent, and plays the peer's receiver (its next
 * segment acknowledges the in-order data that reached it). Frames come through the real
 * ipv4_output_src, ARP and Ethernet output (checksums by offload, as on a NIC that has it). */
void
dp_tx_enqueue(struct dp_lcore *l, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const struct rte_ipv4_hdr *ip;
	const struct rte_tcp_hdr *th;
	uint32_t i, len;

	(void)l;
	if (eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
		rte_pktmbuf_free(m);
		return;
	}
	ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, sizeof(*eh));
	th = (const struct rte_tcp_hdr *)(ip + 1);
	i = ((rte_be_to_cpu_32(ip->dst_addr) & 0xffu) - 2u) * FLOWS_PER_PEER +
	    rte_be_to_cpu_16(th->dst_port) - 1024u;
	last_seq = rte_be_to_cpu_32(th->sent_seq);
	n_out++;
	len = m->pkt_len - (uint32_t)(sizeof(*eh) + sizeof(struct rte_ipv4_hdr)) -
	    (uint32_t)(th->data_off >> 4) * 4;
	if (peers != NULL && i < n_peers && len > 0 &&
	    (int32_t)(last_seq - peers[i].rcv_nxt) <= 0 &&
	    (int32_t)(last_seq + len - peers[i].rcv_nxt) > 0)
		peers[i].rcv_nxt = last_seq + len;
	rte_pktmbuf_free(m);
}

/* A peer's MAC, learnt by ARP as the dataplane would (a request from it for our address). */
static void
arp_learn_peer(uint32_t ip_be)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(lc.pool);
	static const struct rte_ether_addr peer_mac = { { 0x02, 0, 0, 0, 0, 2 } };
	struct rte_arp_hdr h, *a = &h;
	char *d;

	memset(a, 0, sizeof(*a));
	a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a->arp_hlen = RTE_ETHER_ADDR_LEN;
	a->arp_plen = 4;
	a->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	a->arp_data.arp_sha = peer_mac;
	a->arp_data.arp_sip = ip_be;
	a->arp_data.arp_tip = OUR_IP;
	if (m == NULL || (d = rte_pktmbuf_append(m, sizeof(h))) == NULL) {
		fprintf(stderr, "bench_tcp_seg: mbuf pool empty\n");
		exit(1);
	}
	memcpy(d, &h, sizeof(h)); /* built on the stack (see mk) */
	arp_input(&lc, m);
}

static int
app_accept(struct tcp_conn *c, void *lctx, void **cctx)
{
	(void)c;
	(void)lctx;
	*cctx = NULL;
	return 0;
}

static void
app_readable(struct tcp_conn *c, void *ctx)
{
	struct rte_mbuf *m = tcp_recv(c, UINT32_MAX);

	(void)ctx;
	if (m == NULL)
		return;
	if (echo)
		tcp_send(c, m);
	else
		rte_pktmbuf_free(m);
}

static void
app_closed(struct tcp_conn *c, void *ctx, enum tcp_close_reason why)
{
	(void)c;
	(void)ctx;
	(void)why;
}

static const struct tcp_app_ops ops = {
	.accept = app_accept, .readable = app_readable, .closed = app_closed
};

static struct rte_mbuf *
mk(uint32_t i, uint32_t seq, uint32_t ack, uint8_t flags, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(lc.pool);
	struct {
		struct rte_ipv4_hdr ip;
		struct rte_tcp_hdr th;
	} h;
	char *d;

	/* built on the stack, then copied (-O2's array-bounds check on the appended room) */
	memset(&h, 0, sizeof(h));
	h.ip.version_ihl = 0x45;
	h.ip.total_length = rte_cpu_to_be_16((uint16_t)(40 + len));
	h.ip.next_proto_id = IPPROTO_TCP;
	h.ip.src_addr = peer_ip(i);
	h.ip.dst_addr = OUR_IP;
	h.th.src_port = rte_cpu_to_be_16(peer_port(i));
	h.th.dst_port = rte_cpu_to_be_16(PORT);
	h.th.sent_seq = rte_cpu_to_be_32(seq);
	h.th.recv_ack = rte_cpu_to_be_32(ack);
	h.th.data_off = 5 << 4;
	h.th.tcp_flags = flags;
	h.th.rx_win = rte_cpu_to_be_16(65535);
	if (m == NULL || (d = rte_pktmbuf_append(m, (uint16_t)(40 + len))) == NULL) {
		fprintf(stderr, "bench_tcp_seg: mbuf pool empty\n");
		exit(1);
	}
	memcpy(d, &h, 40);
	memset(d + 40, 'x', len);
	rte_pktmbuf_adj(m, 20);
	m->l3_len = 20;
	m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	return m;
}

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the box is shared */
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void
establish(uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		tcp_input(&lc, mk(i, 1000, 0, RTE_TCP_SYN_FLAG, 0));
		peers[i].snd_nxt = 1001;
		peers[i].rcv_nxt = last_seq + 1;
		tcp_input(&lc, mk(i, 1001, peers[i].rcv_nxt, RTE_TCP_ACK_FLAG, 0));
	}
	tcp_flush(&lc);
}

/* One rx burst as the worker loop runs it: the segments through input together (as
 * dp_rx_burst hands them over), then the flush and the timers. */
static void
rx_burst(struct rte_mbuf **pkts, uint32_t n)
{
	tcp_input_burst(&lc, pkts, n);
	tcp_flush(&lc);
	tcp_timers_poll(&lc);
}

/* The share of a run's time its segments' build took (TSC around each burst's build and
 * around its trip through the stack): the build writes into mbufs the stack freed, at many
 * flows long out of cache, where a NIC would have written them by DMA; the stack's own time is
 * the rest. */
static double build_share;

/* ns per segment: -s bytes each to a random flow, through input and the flush */
static double
run(uint32_t n, bool do_echo, bool build_only)
{
	struct rte_mbuf *pkts[256];
	uint64_t t_build = 0, t_stack = 0;
	double t0;

	echo = do_echo;
	t0 = now_ns();
	for (uint32_t k = 0; k < segs; k += burst) {
		uint64_t a = rte_rdtsc(), b;

		for (uint32_t j = 0; j < burst; j++) {
			uint32_t i = (uint32_t)rte_rand_max(n);

			pkts[j] = mk(i, peers[i].snd_nxt, peers[i].rcv_nxt,
			    RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG, payload);
			/* a segment only built is never sent: the peer's next one takes its place
			 * (until 3 Dec 2026 it did not, so every later segment was out of order) */
			if (!build_only)
				peers[i].snd_nxt += payload;
		}
		lc.now_tsc += (uint64_t)burst * ns_per_seg; /* tsc_hz is 1e9: 1 tick a ns */
		if (build_only) {
			rte_pktmbuf_free_bulk(pkts, burst);
			continue;
		}
		b = rte_rdtsc();
		rx_burst(pkts, burst);
		t_build += b - a;
		t_stack += rte_rdtsc() - b;
	}
	build_share = t_build + t_stack > 0 ? (double)t_build / (double)(t_build + t_stack) : 0;
	return (now_ns() - t0) / segs;
}

/* One function per kind of run, never inlined: callgrind --toggle-collect=run_echoed counts
 * the instructions of those segments alone (divide by -c) */
static __attribute__((noinline)) double
run_received(uint32_t n)
{
	return run(n, false, false);
}

static __attribute__((noinline)) double
run_echoed(uint32_t n)
{
	return run(n, true, false);
}

int
main(int argc, char **argv)
{
	char *eal[] = { "bench_tcp_seg", "--no-huge", "--no-pci", "-m", "2048", "--no-shconf",
		"--log-level=error", "--no-telemetry", NULL };
	uint32_t sizes[8] = { 1000, 100000 }, nsizes = 2, most = 0;
	int opt;

	while ((opt = getopt(argc, argv, "b:c:n:s:")) != -1) {
		if (opt == 'b')
			burst = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'c')
			segs = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 's')
			payload = (uint32_t)strtoul(optarg, NULL, 10);
		else if (opt == 'n')
			ns_per_seg = (uint32_t)strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (burst == 0 || burst > 256 || segs == 0 || segs % burst != 0) {
		fprintf(stderr, "bench_tcp_seg: -b from 1 to 256, dividing %u\n", segs);
		return 2;
	}
	if (payload == 0 || payload > 1460) {
		fprintf(stderr, "bench_tcp_seg: -s from 1 to 1460 bytes\n");
		return 2;
	}
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0)
		return 1;
	if (optind < argc) {
		nsizes = 0;
		for (int i = optind; i < argc && nsizes < 8; i++)
			sizes[nsizes++] = (uint32_t)strtoul(argv[i], NULL, 10);
	}
	for (uint32_t s = 0; s < nsizes; s++) {
		if (sizes[s] == 0 || sizes[s] > FLOWS_PER_PEER * MAX_PEER_IPS) {
			fprintf(stderr, "bench_tcp_seg: flows from 1 to %u\n",
			    FLOWS_PER_PEER * MAX_PEER_IPS);
			return 2;
		}
		most = RTE_MAX(most, sizes[s]);
	}
	/* one mbuf per flow (its last echo, until the next segment acknowledges it), a burst's */
	lc.pool = rte_pktmbuf_pool_create(
	    "bench", RTE_MAX(131071u, most + 32768u), 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	lc.ip_be = OUR_IP;
	lc.tsc_hz = 1000000000ull;
	lc.now_tsc = 5000000000ull;
	lc.netmask_be = 0x00ffffffu; /* 198.18.0.0/24 */
	lc.mac = (struct rte_ether_addr){ { 0x02, 0, 0, 0, 0, 1 } };
	lc.caps.tx_tcp_cksum = true;
	lc.caps.tx_ipv4_cksum = true;
	/* the path MTU table as the dataplane has it (empty: what a send asks of it) */
	if (lc.pool == NULL || arp_lcore_init(&lc, 512, 3600000) < 0 ||
	    pmtu_lcore_init(&lc, 1024, 600000) < 0)
		return 1;
	for (uint32_t i = 0; i < most; i += FLOWS_PER_PEER)
		arp_learn_peer(peer_ip(i));
	printf("burst %u, %u ns of stack clock per segment, %u payload bytes, %u flows per peer "
	       "address\n",
	    burst, ns_per_seg, payload, FLOWS_PER_PEER);
	printf("%8s %12s %12s %14s %10s %10s %10s    %s\n", "flows", "ns/received", "ns/echoed",
	    "ns/build+free", "out/in rx", "out/in ec", "in order",
	    "stack alone: ns/received ns/echoed");
	for (uint32_t s = 0; s < nsizes; s++) {
		struct tcp_config cfg;
		double rx, ec, bld, rx_stack;
		uint32_t rx_out;
		uint64_t rx_bytes;

		tcp_config_defaults(&cfg);
		cfg.max_flows = sizes[s] + 64;
		cfg.max_half_open = sizes[s] + 64;
		peers = calloc(sizes[s], sizeof(*peers));
		n_peers = sizes[s];
		if (peers == NULL || tcp_lcore_init(&lc, &cfg) < 0 ||
		    tcp_listen(&lc, PORT, &ops, NULL) < 0) {
			fprintf(stderr, "bench_tcp_seg: init for %u flows failed\n", sizes[s]);
			return 1;
		}
		establish(sizes[s]);
		if (tcp_flow_count(&lc) != sizes[s]) {
			fprintf(stderr, "bench_tcp_seg: %u flows of %u\n", tcp_flow_count(&lc),
			    sizes[s]);
			return 1;
		}
		bld = run(sizes[s], false, true);
		n_out = 0;
		rx = run_received(sizes[s]);
		rx_stack = rx * (1 - build_share);
		rx_out = n_out;
		/* the delayed ACKs the received run left armed go now, not inside the echoed run
		 * (at 100,000 flows and -c 50000 they were 0.7 pure ACKs per echoed segment) */
		lc.now_tsc += (uint64_t)cfg.delack_ms * 2 * 1000000;
		tcp_timers_poll(&lc);
		n_out = 0;
		rx_bytes = lc.cnt.v[DPC_tcp_RX_BYTES];
		ec = run_echoed(sizes[s]);
		/* segments sent per segment received, and the share of the payload taken in
		 * order: a check that each run did what it says */
		printf("%8u %12.0f %12.0f %14.0f %10.2f %10.2f %10.2f    %11.0f %9.0f\n", sizes[s],
		    rx, ec, bld, (double)rx_out / segs, (double)n_out / segs,
		    (double)(lc.cnt.v[DPC_tcp_RX_BYTES] - rx_bytes) / ((double)segs * payload),
		    rx_stack, ec * (1 - build_share));
		tcp_lcore_fini(&lc);
		free(peers);
		peers = NULL;
	}
	return 0;
}
