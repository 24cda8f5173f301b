/*
 * fuzz_tcp_input.c: libFuzzer harness for the dataplane's TCP. The input is a script of
 * records: crafted segments (with a correct IPv4 header and, unless the record says otherwise,
 * a correct TCP checksum, so the fuzzer gets past validation into the state machine), clock
 * steps, flushes and application calls. Sequence and acknowledgment numbers may be given
 * relative to what each side sent last, so handshakes and data exchanges are reachable.
 * After each input the stack is torn down and every mbuf must be back in the pool.
 * A record byte from 0xfc up makes the doubles (dp_alloc, ipv4_output_src) fail from then on,
 * one call in N at random, so the error paths are fuzzed too.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "dp.h"
#include "ipv4.h"
#include "tcp.h"

#define NPEER     4
#define BASE_PORT 40000
#define POOL_N    2047

static struct dp_lcore lc;
static struct rte_mempool *pool;
static struct {
	uint32_t snd_nxt; /* the peer's next sequence number */
	uint32_t our_end; /* end of the last segment we sent to it */
	struct tcp_conn *c;
} peers[NPEER];

struct cursor {
	const uint8_t *p;
	size_t n;
};

static uint32_t
get(struct cursor *cu, unsigned bytes)
{
	uint32_t v = 0;

	while (bytes-- > 0) {
		v = v << 8 | (cu->n > 0 ? *cu->p : 0);
		if (cu->n > 0) {
			cu->p++;
			cu->n--;
		}
	}
	return v;
}

/* --- doubles of the dataplane functions tcp_lib calls --- */

/*
 * They fail too, as the real ones do (no mbuf; ipv4_output_src consuming the segment and
 * returning an error): a failure record sets how often, one call in fail_alloc_one_in /
 * fail_output_one_in (0: never), drawn from a generator the input seeds.
 */
static unsigned fail_alloc_one_in, fail_output_one_in;
static uint64_t fail_seed;

static bool
fail_now(unsigned one_in)
{
	if (one_in == 0)
		return false;
	fail_seed = fail_seed * 6364136223846793005ull + 1442695040888963407ull;
	return (fail_seed >> 33) % one_in == 0;
}

struct rte_mbuf *
dp_alloc(struct dp_lcore *l)
{
	if (fail_now(fail_alloc_one_in))
		return NULL;
	return rte_pktmbuf_alloc(l->pool);
}

int
ipv4_output_src(
    struct dp_lcore *l, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be, uint8_t proto)
{
	struct rte_tcp_hdr th;
	const struct rte_tcp_hdr *t = rte_pktmbuf_read(m, 0, sizeof(th), &th);
	unsigned idx;

	(void)l, (void)src_be, (void)dst_be, (void)proto;
	if (t == NULL || (t->data_off >> 4) * 4u > m->pkt_len || t->cksum != 0)
		abort(); /* the stack built a broken segment */
	if (fail_now(fail_output_one_in)) {
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	idx = rte_be_to_cpu_16(t->dst_port) - BASE_PORT;
	if (idx < NPEER)
		peers[idx].our_end = rte_be_to_cpu_32(t->sent_seq) + m->pkt_len -
		    (t->data_off >> 4) * 4u +
		    !!(t->tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG));
	rte_pktmbuf_free(m);
	return 0;
}

int
ipv4_output_hint(struct dp_lcore *l, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be,
    uint8_t proto, uint32_t *nh_hint)
{
	(void)nh_hint;
	return ipv4_output_src(l, m, src_be, dst_be, proto);
}

/* --- an echo application --- */

static unsigned
peer_idx(const struct tcp_conn *c)
{
	uint32_t ip;
	uint16_t port;

	tcp_conn_peer(c, &ip, &port);
	return (unsigned)(rte_be_to_cpu_16(port) - BASE_PORT);
}

static int
app_accept(struct tcp_conn *c, void *lctx, void **cctx)
{
	unsigned i = peer_idx(c);

	(void)lctx;
	if (i >= NPEER || peers[i].c != NULL)
		abort(); /* one flow per 4-tuple */
	peers[i].c = c;
	*cctx = NULL;
	return 0;
}

static void
app_readable(struct tcp_conn *c, void *ctx)
{
	uint32_t n = tcp_recv_avail(c) < tcp_send_space(c) ? tcp_recv_avail(c) : tcp_send_space(c);
	struct rte_mbuf *m;

	(void)ctx;
	if (n > 0 && (m = tcp_recv(c, n)) != NULL) {
		if (m->pkt_len > n)
			abort();
		if (tcp_send(c, m) != 0)
			rte_pktmbuf_free(m);
	}
}

static void
app_closed(struct tcp_conn *c, void *ctx, enum tcp_close_reason why)
{
	unsigned i = peer_idx(c);

	(void)ctx, (void)why;
	if (i >= NPEER || peers[i].c != c)
		abort(); /* closed() for a connection never accepted, or twice */
	peers[i].c = NULL;
}

static const struct tcp_app_ops ops = {
	.accept = app_accept,
	.readable = app_readable,
	.writable = app_readable,
	.closed = app_closed,
};

/* --- records --- */

static void
rec_segment(struct cursor *cu)
{
	static uint8_t pkt[20 + 60 + 1500];
	uint8_t flags = (uint8_t)get(cu, 1), mode = (uint8_t)get(cu, 1);
	unsigned idx = get(cu, 1) % NPEER, optlen = get(cu, 1) % 41, hlen, plen, total;
	uint32_t seq = get(cu, 4), ack = get(cu, 4);
	uint16_t win = (uint16_t)get(cu, 2);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)pkt;
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(pkt + 20);
	struct rte_mbuf *m;

	if (mode & 1)
		seq = peers[idx].snd_nxt + (uint32_t)(int8_t)seq;
	if (mode & 2)
		ack = peers[idx].our_end + (uint32_t)(int8_t)ack;
	hlen = 20 + (optlen + 3) / 4 * 4;
	memset(pkt, 0, 20 + hlen);
	for (unsigned i = 0; i < optlen; i++)
		pkt[40 + i] = (uint8_t)get(cu, 1);
	plen = get(cu, 2) % 1461;
	for (unsigned i = 0; i < plen; i++)
		pkt[20 + hlen + i] = (uint8_t)(cu->n > 0 ? get(cu, 1) : i);
	total = 20 + hlen + plen;
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16((uint16_t)total);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = 0x020012c6u;
	ip->dst_addr = lc.ip_be;
	th->src_port = rte_cpu_to_be_16((uint16_t)(BASE_PORT + idx));
	th->dst_port = rte_cpu_to_be_16((mode & 4) ? 9 : 7);
	th->sent_seq = rte_cpu_to_be_32(seq);
	th->recv_ack = rte_cpu_to_be_32(ack);
	th->data_off = (uint8_t)(((mode & 8) ? (get(cu, 1) & 15) : hlen / 4) << 4);
	th->tcp_flags = flags;
	th->rx_win = rte_cpu_to_be_16(win);
	th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	if (mode & 16)
		th->cksum ^= 1;
	if ((m = rte_pktmbuf_alloc(pool)) == NULL)
		return;
	memcpy(rte_pktmbuf_append(m, (uint16_t)total), pkt, total);
	if ((mode & 32) && total > 21) { /* a scattered segment */
		unsigned cut = 20 + 1 + get(cu, 2) % (total - 21);
		struct rte_mbuf *m2 = rte_pktmbuf_alloc(pool);

		if (m2 != NULL) {
			memcpy(rte_pktmbuf_append(m2, (uint16_t)(total - cut)), pkt + cut,
			    total - cut);
			rte_pktmbuf_trim(m, (uint16_t)(total - cut));
			rte_pktmbuf_chain(m, m2);
		}
	}
	rte_pktmbuf_adj(m, 20);
	m->l2_len = 14;
	m->l3_len = 20;
	m->ol_flags = (mode & 64) ? RTE_MBUF_F_RX_L4_CKSUM_GOOD : 0;
	if (mode & 1)
		peers[idx].snd_nxt = seq + plen + !!(flags & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG));
	tcp_input(&lc, m);
}

static void
rec_app(struct cursor *cu)
{
	static const uint8_t junk[3000];
	uint8_t action = (uint8_t)get(cu, 1);
	struct tcp_conn *c = peers[action % NPEER].c;
	struct rte_mbuf *m;

	if (c == NULL)
		return;
	switch ((action >> 2) % 6) {
	case 0:
		tcp_write(c, junk, get(cu, 2) % sizeof(junk));
		break;
	case 1:
		if ((m = tcp_recv(c, get(cu, 2))) != NULL)
			rte_pktmbuf_free(m);
		break;
	case 2:
		tcp_shutdown(c);
		break;
	case 3:
		tcp_close(c);
		break;
	case 4:
		tcp_abort(c);
		break;
	default:
		(void)tcp_conn_eof(c);
		break;
	}
}

static int
setup_once(void)
{
	char *argv[] = { "fuzz_tcp", "--no-huge", "--no-pci", "-m", "64", "--no-shconf",
		"--file-prefix", NULL, "--log-level=error", "--no-telemetry", NULL };
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "tcp_fz_%d", (int)getpid());
	argv[7] = prefix;
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return -1;
	atexit(dp_eal_cleanup);
	pool =
	    rte_pktmbuf_pool_create("fz", POOL_N, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	return pool != NULL ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct cursor cu = { data, size };
	struct tcp_config cfg;

	if (!ready && (ready = setup_once() == 0 ? 1 : -1) < 0)
		abort();
	memset(&lc, 0, sizeof(lc));
	memset(peers, 0, sizeof(peers));
	lc.pool = pool;
	lc.ip_be = 0x010012c6u;
	lc.tsc_hz = 1000000000ull;
	lc.now_tsc = 1000000000000ull;
	tcp_config_defaults(&cfg);
	cfg.max_flows = 16;
	cfg.max_half_open = 2;
	cfg.rcvbuf_bytes = 4096;
	cfg.sndbuf_bytes = 4096;
	cfg.wscale = (uint8_t)(get(&cu, 1) % 3);
	cfg.timestamps = get(&cu, 1) & 1;
	cfg.keepalive = get(&cu, 1) & 1;
	cfg.keepalive_idle_ms = 1000;
	cfg.keepalive_intvl_ms = 100;
	cfg.time_wait_ms = 2000;
	if (tcp_lcore_init(&lc, &cfg) != 0 || tcp_listen(&lc, 7, &ops, NULL) != 0)
		abort();
	fail_alloc_one_in = fail_output_one_in = 0;
	fail_seed = size;
	while (cu.n > 0) {
		uint8_t rec = (uint8_t)get(&cu, 1);

		if (rec >= 0xfc) { /* a failure record: how often the doubles fail from here on */
			uint8_t f = (uint8_t)get(&cu, 1);

			fail_alloc_one_in = f & 15;
			fail_output_one_in = f >> 4;
			continue;
		}
		switch (rec % 4) {
		case 0:
			rec_segment(&cu);
			break;
		case 1:
			lc.now_tsc += (uint64_t)(get(&cu, 2) % 4000) * 1000000ull;
			tcp_timers_poll(&lc);
			break;
		case 2:
			tcp_flush(&lc);
			break;
		default:
			rec_app(&cu);
			break;
		}
	}
	tcp_flush(&lc);
	tcp_lcore_fini(&lc);
	for (unsigned i = 0; i < NPEER; i++)
		if (peers[i].c != NULL)
			abort(); /* an accepted connection never got closed() */
	if (rte_mempool_avail_count(pool) != POOL_N)
		abort(); /* an mbuf leaked */
	return 0;
}
