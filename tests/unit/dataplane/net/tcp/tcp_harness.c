/* tcp_harness.c: see tcp_harness.h. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "ipv4.h"
#include "pmtu.h"
#include "tcp_harness.h"
#include "tcp_types.h"

struct dp_lcore h_lc;
unsigned h_ncap;
struct h_out h_cap[H_MAX_CAP];
struct h_app h_app;

static uint8_t cap_bytes[H_MAX_CAP][2048];
static struct rte_mempool *pool;
#define POOL_N 4095

/* A packet chain's bytes, flat. */
static void
copy_out(const struct rte_mbuf *m, uint8_t *dst)
{
	const void *p = rte_pktmbuf_read(m, 0, m->pkt_len, dst);

	assert_non_null(p);
	if (p != dst)
		memcpy(dst, p, m->pkt_len);
}

/* --- test doubles of the dataplane's functions --- */

/* Failure injection (h_fail): the next n calls fail, then one in every `one_in` at random. */
struct h_fail h_fail_alloc, h_fail_output;

static bool
fail_now(struct h_fail *f)
{
	if (f->next > 0) {
		f->next--;
		f->failed++;
		return true;
	}
	if (f->one_in > 0) {
		f->seed = f->seed * 6364136223846793005ull + 1442695040888963407ull;
		if ((f->seed >> 33) % f->one_in == 0) {
			f->failed++;
			return true;
		}
	}
	return false;
}

struct rte_mbuf *
dp_alloc(struct dp_lcore *lc)
{
	if (fail_now(&h_fail_alloc))
		return NULL;
	return rte_pktmbuf_alloc(lc->pool);
}

static void
parse_opts(struct h_out *o, const uint8_t *p, unsigned len)
{
	unsigned i = 0;

	o->wscale = -1;
	while (i < len && p[i] != 0) {
		if (p[i] == 1) {
			i++;
			continue;
		}
		assert_true(i + 1 < len && p[i + 1] >= 2);
		if (p[i] == 2)
			o->mss = (uint16_t)(p[i + 2] << 8 | p[i + 3]);
		else if (p[i] == 3)
			o->wscale = p[i + 2];
		else if (p[i] == 8) {
			o->has_ts = true;
			o->tsval =
			    (uint32_t)p[i + 2] << 24 | p[i + 3] << 16 | p[i + 4] << 8 | p[i + 5];
			o->tsecr =
			    (uint32_t)p[i + 6] << 24 | p[i + 7] << 16 | p[i + 8] << 8 | p[i + 9];
		}
		i += p[i + 1];
	}
}

int
ipv4_output_src(
    struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be, uint8_t proto)
{
	struct h_out *o;
	const struct rte_tcp_hdr *th;
	uint8_t *b;
	unsigned hlen;

	assert_ptr_equal(lc, &h_lc);
	assert_int_equal(proto, IPPROTO_TCP);
	assert_true(dp_is_our_ip(lc, src_be));
	if (fail_now(&h_fail_output)) { /* as ipv4_output_src: m consumed, error returned */
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	assert_true(h_ncap < H_MAX_CAP);
	assert_true(m->pkt_len <= sizeof(cap_bytes[0]));
	b = cap_bytes[h_ncap];
	copy_out(m, b);
	/* the headroom must take IPv4 + Ethernet, the checksum must be left to us */
	assert_true(rte_pktmbuf_headroom(m) >= 34);
	th = (const struct rte_tcp_hdr *)b;
	assert_int_equal(th->cksum, 0);
	o = &h_cap[h_ncap++];
	memset(o, 0, sizeof(*o));
	hlen = (th->data_off >> 4) * 4u;
	o->dst_be = dst_be;
	o->src_be = src_be;
	o->sport = rte_be_to_cpu_16(th->src_port);
	o->dport = rte_be_to_cpu_16(th->dst_port);
	o->seq = rte_be_to_cpu_32(th->sent_seq);
	o->ack = rte_be_to_cpu_32(th->recv_ack);
	o->flags = th->tcp_flags;
	o->win = rte_be_to_cpu_16(th->rx_win);
	o->optlen = hlen - 20;
	parse_opts(o, b + 20, hlen - 20);
	o->len = m->pkt_len - hlen;
	o->data = b + hlen;
	rte_pktmbuf_free(m);
	return 0;
}

int
ipv4_output_hint(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be,
    uint8_t proto, uint32_t *nh_hint)
{
	(void)nh_hint;
	return ipv4_output_src(lc, m, src_be, dst_be, proto);
}

int
ipv4_output(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t dst_be, uint8_t proto)
{
	return ipv4_output_src(lc, m, lc->ip_be, dst_be, proto);
}

/* --- the test application --- */

/* The app area: zeroed at the start of every connection (TCBs are reused), the app's until
 * closed(); the harness fills it at accept and checks it is intact at closed(). */
#define AREA_FILL 0xA5

static void
area_check(struct tcp_conn *c, uint8_t want)
{
	uint8_t *a = tcp_app_area(c);

	assert_ptr_equal(tcp_app_area_conn(a), c);
	assert_int_equal((uintptr_t)a % 8, 0);
	for (unsigned i = 0; i < TCP_APP_AREA; i++)
		assert_int_equal(a[i], want);
}

static int
app_accept(struct tcp_conn *c, void *listen_ctx, void **conn_ctx)
{
	assert_ptr_equal(listen_ctx, &h_app);
	area_check(c, 0);
	memset(tcp_app_area(c), AREA_FILL, TCP_APP_AREA);
	h_app.accepts++;
	if (h_app.refuse)
		return -1;
	h_app.c = c;
	*conn_ctx = &h_app;
	return 0;
}

static void
app_readable(struct tcp_conn *c, void *ctx)
{
	struct rte_mbuf *m;

	assert_ptr_equal(ctx, &h_app);
	h_app.readables++;
	if (!h_app.echo && !h_app.consume)
		return;
	while ((m = tcp_recv(c, UINT32_MAX)) != NULL) {
		assert_true(h_app.rxlen + m->pkt_len <= sizeof(h_app.rx));
		copy_out(m, h_app.rx + h_app.rxlen);
		h_app.rxlen += m->pkt_len;
		if (h_app.echo)
			assert_int_equal(tcp_send(c, m), 0);
		else
			rte_pktmbuf_free(m);
	}
}

static void
app_writable(struct tcp_conn *c, void *ctx)
{
	(void)c;
	assert_ptr_equal(ctx, &h_app);
	h_app.writables++;
}

static void
app_closed(struct tcp_conn *c, void *ctx, enum tcp_close_reason why)
{
	assert_ptr_equal(ctx, &h_app);
	assert_non_null(c);
	area_check(c, ((uint8_t *)tcp_app_area(c))[0] == AREA_FILL ? AREA_FILL : 0);
	h_app.closes++;
	h_app.why = why;
	if (c == h_app.c)
		h_app.c = NULL;
}

static void
app_connected(struct tcp_conn *c, void *ctx)
{
	assert_ptr_equal(ctx, &h_app);
	h_app.connects++;
	h_app.c = c;
}

const struct tcp_app_ops h_ops = {
	.accept = app_accept,
	.readable = app_readable,
	.writable = app_writable,
	.closed = app_closed,
	.connected = app_connected,
};

/* --- setup --- */

int
h_eal_init(void)
{
	char prefix[64];
	char *argv[] = { "test_tcp", "--no-huge", "--no-pci", "-m", "128", "--no-shconf",
		"--file-prefix", prefix, "--log-level=error", "--no-telemetry", NULL };

	snprintf(prefix, sizeof(prefix), "tcp_ut_%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0)
		return -1;
	atexit(dp_eal_cleanup);
	pool = rte_pktmbuf_pool_create(
	    "tcp_ut", POOL_N, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	return pool != NULL ? 0 : -1;
}

unsigned
h_pool_in_use(void)
{
	return POOL_N - rte_mempool_avail_count(pool);
}

void
h_setup(const struct tcp_config *cfg)
{
	memset(&h_lc, 0, sizeof(h_lc));
	memset(&h_app, 0, sizeof(h_app));
	h_lc.pool = pool;
	h_lc.ip_be = H_OUR_IP;
	h_lc.tsc_hz = 1000000000ull;
	h_lc.now_tsc = 5000000000ull;
	h_ncap = 0;
	memset(&h_fail_alloc, 0, sizeof(h_fail_alloc));
	memset(&h_fail_output, 0, sizeof(h_fail_output));
	assert_int_equal(pmtu_lcore_init(&h_lc, 16, 600000), 0);
	assert_int_equal(tcp_lcore_init(&h_lc, cfg), 0);
	assert_int_equal(tcp_listen(&h_lc, H_PORT, &h_ops, &h_app), 0);
}

void
h_teardown(void)
{
	h_fail_alloc.next = h_fail_alloc.one_in = 0;
	h_fail_output.next = h_fail_output.one_in = 0;
	tcp_lcore_fini(&h_lc);
	pmtu_lcore_fini(&h_lc);
	assert_null(h_lc.tcp);
	assert_int_equal(h_pool_in_use(), 0); /* every mbuf came back: no leak */
}

void
h_clear(void)
{
	h_ncap = 0;
}

void
h_flush(void)
{
	tcp_flush(&h_lc);
}

void
h_advance_ms(uint32_t ms)
{
	/* move in 1 ms steps as a worker loop would, so timer order is exercised */
	for (uint32_t i = 0; i < ms; i++) {
		h_lc.now_tsc += h_lc.tsc_hz / 1000;
		tcp_timers_poll(&h_lc);
	}
}

uint64_t
h_cnt(enum dp_counter_id id)
{
	return h_lc.cnt.v[id];
}

/* h_burst_begin .. h_burst_end: segments wait, then go in one tcp_input_burst */
static bool burst_on;
static unsigned burst_n;
static struct rte_mbuf *burst[64];

void
h_input(const struct h_seg *s)
{
	static uint8_t pkt[2048];
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	unsigned thlen = 20 + s->optlen, total = 20 + thlen + s->len;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)pkt;
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(pkt + 20);
	void *dst;

	assert_non_null(m);
	assert_true(thlen % 4 == 0 && total <= sizeof(pkt));
	memset(pkt, 0, 40);
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16((uint16_t)total);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = H_PEER_IP;
	ip->dst_addr = H_OUR_IP;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	th->src_port = rte_cpu_to_be_16(s->sport);
	th->dst_port = rte_cpu_to_be_16(s->dport ? s->dport : H_PORT);
	th->sent_seq = rte_cpu_to_be_32(s->seq);
	th->recv_ack = rte_cpu_to_be_32(s->ack);
	th->data_off =
	    (uint8_t)((s->doff_override > 0 ? (unsigned)s->doff_override : thlen / 4) << 4);
	th->tcp_flags = s->flags;
	th->rx_win = rte_cpu_to_be_16(s->win);
	if (s->optlen)
		memcpy(th + 1, s->opts, s->optlen);
	if (s->len)
		memcpy((uint8_t *)th + thlen, s->data, s->len);
	th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	if (s->bad_cksum)
		th->cksum ^= 0x0101;
	dst = rte_pktmbuf_append(m, (uint16_t)total);
	assert_non_null(dst);
	memcpy(dst, pkt, total);
	if (s->split > 0 && s->split < total - 20) {
		/* scattered rx: the rest of the segment in a second mbuf */
		struct rte_mbuf *m2 = rte_pktmbuf_alloc(pool);
		uint16_t rest = (uint16_t)(total - 20 - s->split);

		assert_non_null(m2);
		memcpy(rte_pktmbuf_append(m2, rest), pkt + 20 + s->split, rest);
		assert_int_equal(rte_pktmbuf_trim(m, rest), 0);
		assert_int_equal(rte_pktmbuf_chain(m, m2), 0);
	}
	rte_pktmbuf_adj(m, 20);
	m->l2_len = 14;
	m->l3_len = 20;
	m->ol_flags = s->ol_flags;
	if (burst_on) {
		assert_true(burst_n < RTE_DIM(burst));
		burst[burst_n++] = m;
		return;
	}
	tcp_input(&h_lc, m);
}

void
h_burst_begin(void)
{
	burst_on = true;
	burst_n = 0;
}

void
h_burst_end(void)
{
	burst_on = false;
	tcp_input_burst(&h_lc, burst, burst_n);
	burst_n = 0;
}

/* A segment from the peer at its snd_nxt, acking what we sent (rcv_nxt). */
void
h_send(struct h_peer *p, uint8_t flags, const void *data, uint32_t len)
{
	uint8_t opts[12] = { 1, 1, 8, 10 };
	struct h_seg s = {
		.flags = flags,
		.seq = p->snd_nxt,
		.ack = p->rcv_nxt,
		.win = 65535,
		.data = data,
		.len = len,
		.sport = p->port,
	};

	if (p->ts) {
		uint32_t v = rte_cpu_to_be_32(++p->tsval), e = 0;

		memcpy(opts + 4, &v, 4);
		memcpy(opts + 8, &e, 4);
		s.opts = opts;
		s.optlen = 12;
	}
	h_input(&s);
	p->snd_nxt += len + !!(flags & RTE_TCP_FIN_FLAG);
}

struct tcp_conn *
h_establish(struct h_peer *p, uint16_t port, bool ts)
{
	/* MSS 1460, NOP WS 7, NOP NOP TS */
	uint8_t opts[20] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0 };
	struct h_seg s = { .flags = RTE_TCP_SYN_FLAG,
		.win = 65535,
		.opts = opts,
		.optlen = ts ? 20 : 4,
		.sport = port };
	unsigned accepts = (unsigned)h_app.accepts;

	memset(p, 0, sizeof(*p));
	p->port = port;
	/* 0x80..0x100 bytes before the wrap: most tests carry the peer's sequence numbers across
	 * 2^32, so every comparison on the receive path must be modular */
	p->isn = 0xffffff00u + (port & 0x7f);
	p->ts = ts;
	p->tsval = 100;
	s.seq = p->isn;
	h_clear();
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
	assert_int_equal(h_cap[0].ack, p->isn + 1);
	p->iss = h_cap[0].seq;
	p->snd_nxt = p->isn + 1;
	p->rcv_nxt = p->iss + 1;
	h_clear();
	h_send(p, RTE_TCP_ACK_FLAG, NULL, 0);
	assert_int_equal((unsigned)h_app.accepts, accepts + 1);
	assert_non_null(h_app.c);
	assert_int_equal(tcp_conn_state(h_app.c), TCP_ST_ESTABLISHED);
	return h_app.c;
}

struct tcp_conn *
h_open_sack(struct h_peer *p, uint16_t port, uint16_t mss)
{
	uint8_t opts[8] = { 2, 4, (uint8_t)(mss >> 8), (uint8_t)mss, 1, 1, 4, 2 };
	struct h_seg s = { .flags = RTE_TCP_SYN_FLAG,
		.seq = 1000,
		.win = 65535,
		.opts = opts,
		.optlen = 8,
		.sport = port };

	memset(p, 0, sizeof(*p));
	p->port = port;
	h_clear();
	h_input(&s);
	p->iss = h_cap[0].seq;
	p->snd_nxt = 1001;
	p->rcv_nxt = p->iss + 1;
	h_send(p, RTE_TCP_ACK_FLAG, NULL, 0);
	assert_non_null(h_app.c);
	assert_true(h_app.c->flags & TF_SACK_OK);
	h_clear();
	return h_app.c;
}

void
h_ack_sack(struct h_peer *p, uint32_t ack, const uint32_t (*b)[2], unsigned nb)
{
	h_ack_sack_win(p, ack, b, nb, 65535);
}

void
h_ack_sack_win(struct h_peer *p, uint32_t ack, const uint32_t (*b)[2], unsigned nb, uint16_t win)
{
	uint8_t opts[4 + 4 * 8] = { 1, 1, 5, (uint8_t)(2 + 8 * nb) };
	struct h_seg s = { .flags = RTE_TCP_ACK_FLAG,
		.seq = p->snd_nxt,
		.ack = ack,
		.win = win,
		.sport = p->port };

	assert_true(nb <= 4);
	for (unsigned k = 0; k < nb; k++) {
		uint32_t l = rte_cpu_to_be_32(b[k][0]), r = rte_cpu_to_be_32(b[k][1]);

		memcpy(opts + 4 + 8 * k, &l, 4);
		memcpy(opts + 8 + 8 * k, &r, 4);
	}
	if (nb > 0) {
		s.opts = opts;
		s.optlen = 4 + 8 * nb;
	}
	h_input(&s);
}

unsigned
h_n_data(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < h_ncap; i++)
		n += h_cap[i].len > 0;
	return n;
}

unsigned
h_n_at(uint32_t seq)
{
	unsigned n = 0;

	for (unsigned i = 0; i < h_ncap; i++)
		n += h_cap[i].len > 0 && h_cap[i].seq == seq;
	return n;
}
