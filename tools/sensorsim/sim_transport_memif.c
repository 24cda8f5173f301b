/*
 * sim_transport_memif.c: the kernel-bypass transport. The simulator becomes a DPDK process
 * with a net_memif port (client role) facing the dataplane's memif port (server role), and
 * runs the dataplane's own stack as the client: dp_net_lib (Ethernet, ARP, IPv4, ICMP) and
 * tcp_lib with its active open. No kernel in the path: packets go through shared memory.
 *
 * One lcore: sim_memif_init() runs the EAL on one core (--cpu) and brings the port up; the
 * worker thread registers with the EAL at its first poll() and from then on owns the stack.
 * poll() runs the stack (the sessions' queued output, rx bursts, timers, ARP, tx) until a
 * handle is ready or the timeout passes. Handles are slots in a table; readiness is level
 * triggered like the kernel transport's epoll: a slot stays on the ready list while what it
 * waits for holds, and the TCP callbacks put slots on it when something changes.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "arp.h"
#include "pmtu.h"
#include "dp.h"
#include "icmp.h"
#include "ipv4.h"
#include "tcp.h"

#include "sim_transport.h"
#include "sim_transport_memif.h"

#define MEMIF_DEV              "net_memif0"
#define RX_BURSTS_PER_RUN      4
#define IDLE_RUNS_BEFORE_SLEEP 256
#define IDLE_SLEEP_US          20
#define LINK_WAIT_MS           5000
#define ARP_WAIT_MS            3000
#define CLOSE_FLUSH_MS         300

enum {
	MS_FREE = 0,
	MS_CONNECTING,
	MS_OPEN,
	MS_CLOSED,
	MS_ORPHAN
};

struct mslot {
	struct tcp_conn *c;
	void *ctx;     /* the session (connect/want) */
	uint32_t want; /* SIM_EV_IN | SIM_EV_OUT */
	int32_t next;  /* ready list, or free list */
	int err;       /* MS_CLOSED: 0 (orderly end) or an errno */
	uint8_t st;
	bool on_ready;
};

struct mstack {
	struct dp_lcore *lc;
	struct rte_mempool *pool;
	uint16_t port_id;
	struct mslot *slots;
	uint32_t n_slots;
	int32_t free_head;
	int32_t ready_head, ready_tail;
	bool registered;
	unsigned idle;
};

static struct mstack stack_; /* one per process: one lcore, one port */
static struct mstack *stk;

/* --- ready and free lists --- */

static void
mark_ready(struct mslot *sl)
{
	int32_t i = (int32_t)(sl - stk->slots);

	if (sl->on_ready)
		return;
	sl->on_ready = true;
	sl->next = -1;
	if (stk->ready_tail >= 0)
		stk->slots[stk->ready_tail].next = i;
	else
		stk->ready_head = i;
	stk->ready_tail = i;
}

static void
slot_free(struct mslot *sl)
{
	sl->st = MS_FREE;
	sl->c = NULL;
	sl->ctx = NULL;
	sl->want = 0;
	if (sl->on_ready)
		return; /* harvest() drops it from the ready list, then frees it */
	sl->next = stk->free_head;
	stk->free_head = (int32_t)(sl - stk->slots);
}

static struct mslot *
slot_alloc(void)
{
	struct mslot *sl;

	if (stk->free_head < 0)
		return NULL;
	sl = &stk->slots[stk->free_head];
	stk->free_head = sl->next;
	memset(sl, 0, sizeof(*sl));
	return sl;
}

/* --- TCP callbacks (run inside poll(), or inside close() for an immediate end) --- */

static int
on_accept(struct tcp_conn *c, void *lctx, void **cctx)
{
	(void)c, (void)lctx, (void)cctx;
	return -1; /* nothing listens here */
}

static void
on_connected(struct tcp_conn *c, void *ctx)
{
	struct mslot *sl = ctx;

	(void)c;
	sl->st = MS_OPEN;
	mark_ready(sl);
}

static void
on_change(struct tcp_conn *c, void *ctx)
{
	(void)c;
	mark_ready(ctx);
}

static void
on_closed(struct tcp_conn *c, void *ctx, enum tcp_close_reason why)
{
	struct mslot *sl = ctx;

	(void)c;
	if (sl->st == MS_ORPHAN) { /* the session closed it already */
		slot_free(sl);
		return;
	}
	switch (why) {
	case TCP_CLOSE_NORMAL:
		sl->err = 0;
		break;
	case TCP_CLOSE_RESET:
		sl->err = sl->st == MS_CONNECTING ? ECONNREFUSED : ECONNRESET;
		break;
	case TCP_CLOSE_TIMEOUT:
	case TCP_CLOSE_KEEPALIVE:
		sl->err = ETIMEDOUT;
		break;
	default:
		sl->err = ECONNABORTED;
		break;
	}
	sl->st = MS_CLOSED;
	sl->c = NULL;
	mark_ready(sl);
}

static const struct tcp_app_ops conn_ops = {
	.accept = on_accept,
	.readable = on_change,
	.writable = on_change,
	.closed = on_closed,
	.connected = on_connected,
};

/* --- the stack's loop --- */

/* One pass: the sessions' output, up to a few rx bursts, timers, ARP, tx. Returns rx packets. */
static unsigned
stack_run(struct mstack *s)
{
	struct dp_lcore *lc = s->lc;
	unsigned total = 0;

	lc->now_tsc = rte_rdtsc();
	tcp_flush(lc);
	for (int b = 0; b < RX_BURSTS_PER_RUN; b++) {
		uint16_t n = dp_rx_burst(lc);

		total += n;
		if (n < DP_RX_BURST)
			break;
	}
	tcp_timers_poll(lc);
	arp_poll(lc);
	tcp_flush(lc);
	if (lc->tx_n > 0)
		dp_tx_flush(lc);
	return total;
}

static uint32_t
slot_events(const struct mslot *sl)
{
	uint32_t ev = 0;

	switch (sl->st) {
	case MS_OPEN:
		if ((sl->want & SIM_EV_IN) && (tcp_recv_avail(sl->c) > 0 || tcp_conn_eof(sl->c)))
			ev |= SIM_EV_IN;
		if ((sl->want & SIM_EV_OUT) && tcp_send_space(sl->c) > 0)
			ev |= SIM_EV_OUT;
		return ev;
	case MS_CLOSED:
		return (sl->want & (SIM_EV_IN | SIM_EV_OUT)) | SIM_EV_ERR;
	default:
		return 0;
	}
}

/* Events of the slots on the ready list; those still ready stay on it (level triggered). */
static int
harvest(struct mstack *s, struct sim_event *ev, int max)
{
	int32_t i = s->ready_head;
	int n = 0;

	s->ready_head = s->ready_tail = -1;
	while (i >= 0) {
		struct mslot *sl = &s->slots[i];
		int32_t next = sl->next;
		uint32_t e = n < max ? slot_events(sl) : 0;

		sl->on_ready = false;
		if (n >= max || e != 0) {
			if (e != 0)
				ev[n++] = (struct sim_event){ .ctx = sl->ctx, .events = e };
			mark_ready(sl);
		} else if (sl->st == MS_FREE) {
			slot_free(sl); /* freed while on the list: now to the free list */
		}
		i = next;
	}
	return n;
}

/* --- the transport ops --- */

static int
mt_open(struct sim_transport *t)
{
	if (stk == NULL)
		return -ENODEV;
	t->priv = stk;
	t->fd = -1;
	return 0;
}

static int
mt_connect(struct sim_transport *t, const struct sockaddr_in *src, const struct sockaddr_in *dst,
    void *ctx)
{
	struct mstack *s = t->priv;
	struct mslot *sl = slot_alloc();
	int rc;

	if (sl == NULL)
		return -EMFILE;
	sl->st = MS_CONNECTING;
	sl->ctx = ctx;
	sl->want = SIM_EV_OUT;
	s->lc->now_tsc = rte_rdtsc();
	rc = tcp_connect(s->lc, src != NULL ? src->sin_addr.s_addr : 0, dst->sin_addr.s_addr,
	    ntohs(dst->sin_port), &conn_ops, sl, &sl->c);
	if (rc < 0) {
		slot_free(sl);
		return rc;
	}
	return (int)(sl - s->slots);
}

static int
mt_connect_result(struct sim_transport *t, int h)
{
	const struct mslot *sl = &((struct mstack *)t->priv)->slots[h];

	if (sl->st == MS_OPEN)
		return 0;
	if (sl->st == MS_CLOSED)
		return -(sl->err ? sl->err : ECONNABORTED);
	return -EINPROGRESS;
}

static ssize_t
mt_send(struct sim_transport *t, int h, const void *buf, size_t len)
{
	struct mslot *sl = &((struct mstack *)t->priv)->slots[h];
	int n;

	if (sl->st == MS_CLOSED)
		return -(sl->err ? sl->err : EPIPE);
	if (sl->st != MS_OPEN)
		return -ENOTCONN;
	n = tcp_write(sl->c, buf, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
	if (n > 0)
		return n;
	return n == 0 || n == -ENOBUFS ? -EAGAIN : n;
}

static ssize_t
mt_recv(struct sim_transport *t, int h, void *buf, size_t len)
{
	struct mslot *sl = &((struct mstack *)t->priv)->slots[h];
	struct rte_mbuf *m, *seg;
	uint8_t *p = buf;

	if (sl->st == MS_CLOSED)
		return sl->err ? -sl->err : 0;
	if (sl->st != MS_OPEN)
		return -EAGAIN;
	m = tcp_recv(sl->c, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
	if (m == NULL)
		return tcp_conn_eof(sl->c) ? 0 : -EAGAIN;
	for (seg = m; seg != NULL; seg = seg->next) {
		memcpy(p, rte_pktmbuf_mtod(seg, const void *), seg->data_len);
		p += seg->data_len;
	}
	rte_pktmbuf_free(m);
	return p - (uint8_t *)buf;
}

static int
mt_want(struct sim_transport *t, int h, uint32_t events, void *ctx)
{
	struct mslot *sl = &((struct mstack *)t->priv)->slots[h];

	sl->want = events;
	sl->ctx = ctx;
	if (events != 0)
		mark_ready(sl); /* harvest() reports it if it holds now */
	return 0;
}

static void
mt_close(struct sim_transport *t, int h)
{
	struct mslot *sl = &((struct mstack *)t->priv)->slots[h];

	switch (sl->st) {
	case MS_CONNECTING:
	case MS_OPEN:
		/* FIN after what is queued (RST with unread input); the slot lives until closed() */
		sl->st = MS_ORPHAN;
		sl->want = 0;
		tcp_close(sl->c);
		break;
	case MS_CLOSED:
		slot_free(sl);
		break;
	default:
		break;
	}
}

static int
mt_poll(struct sim_transport *t, struct sim_event *ev, int max, int timeout_ms)
{
	struct mstack *s = t->priv;
	uint64_t end = rte_rdtsc() + (uint64_t)timeout_ms * (rte_get_tsc_hz() / 1000);

	if (!s->registered) {
		/* the worker thread owns the stack from here: give it an lcore id (mempool caches) */
		if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() < 0)
			fprintf(stderr,
			    "edgegw-sensorsim: memif: thread not registered with the EAL "
			    "(%s): mbuf caches off\n",
			    rte_strerror(rte_errno));
		s->registered = true;
	}
	for (;;) {
		unsigned rx = stack_run(s);
		int n = harvest(s, ev, max);

		if (n > 0)
			return n;
		if (rte_rdtsc() >= end)
			return 0;
		if (rx > 0) {
			s->idle = 0;
		} else if (++s->idle > IDLE_RUNS_BEFORE_SLEEP) {
			rte_delay_us_sleep(IDLE_SLEEP_US);
		}
	}
}

static void
mt_destroy(struct sim_transport *t)
{
	t->priv = NULL;
}

const struct sim_transport_ops sim_transport_memif = {
	.name = "memif",
	.open = mt_open,
	.destroy = mt_destroy,
	.connect = mt_connect,
	.connect_result = mt_connect_result,
	.send = mt_send,
	.recv = mt_recv,
	.want = mt_want,
	.close = mt_close,
	.poll = mt_poll,
};

/* --- bring-up and teardown (main thread) --- */

static void
run_for_ms(struct mstack *s, unsigned ms, bool (*done)(struct mstack *))
{
	uint64_t end = rte_rdtsc() + (uint64_t)ms * (rte_get_tsc_hz() / 1000);

	while (rte_rdtsc() < end && (done == NULL || !done(s))) {
		if (stack_run(s) == 0)
			rte_delay_us_sleep(100);
	}
}

static bool
link_up(struct mstack *s)
{
	bool up = false;
	uint32_t speed;

	return nic_link_get(s->port_id, &up, &speed) == 0 && up;
}

static bool
echo_answered(struct mstack *s)
{
	return s->lc->cnt.v[DPC_icmp_OTHER] > 0 && arp_entry_count(s->lc) > 0;
}

/* An ICMP echo to the broker: resolves its MAC before the first SYNs (the ARP hold queue
 * keeps only a few packets) and checks it answers at all. */
static int
ping(struct mstack *s, uint32_t dst_be)
{
	struct rte_mbuf *m = dp_alloc(s->lc);
	struct rte_icmp_hdr *ic;

	if (m == NULL)
		return -ENOMEM;
	ic = (struct rte_icmp_hdr *)rte_pktmbuf_append(m, sizeof(*ic) + 8);
	if (ic == NULL) {
		rte_pktmbuf_free(m);
		return -ENOMEM;
	}
	memset(ic, 0, sizeof(*ic) + 8);
	ic->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
	ic->icmp_ident = rte_cpu_to_be_16((uint16_t)getpid());
	ic->icmp_seq_nb = rte_cpu_to_be_16(1);
	ic->icmp_cksum = (uint16_t)~rte_raw_cksum(ic, sizeof(*ic) + 8);
	s->lc->now_tsc = rte_rdtsc();
	ipv4_output(s->lc, m, dst_be, IPPROTO_ICMP);
	run_for_ms(s, ARP_WAIT_MS, echo_answered);
	return echo_answered(s) ? 0 : -EHOSTUNREACH;
}

static int
first_cpu(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &set))
				return i;
	return 0;
}

int
sim_memif_init(const struct sim_opts *o, uint32_t sessions, uint32_t dst_be)
{
	struct mstack *s = &stack_;
	/* four per session for the first 20,000 (flat-out runs), one per session beyond (idle
	 * crowds) */
	uint32_t mbufs =
	    16384u + 4u * RTE_MIN(sessions, 20000u) + (sessions > 20000u ? sessions - 20000u : 0);
	/* mbufs (2,304 B each, ~2,500 with the mempool's headers), TCBs and flow hash (~320 B a
	 * flow), slack */
	uint64_t mem_mb = ((uint64_t)mbufs * 2560 + (uint64_t)sessions * 2 * 320) / (1 << 20) + 256;
	char cpu[16], mem[24], prefix[32], vdev[192];
	/* a prefix of our own: concurrent runs cannot collide (its directory goes at the end) */
	char *argv[] = { "edgegw-sensorsim", "-l", cpu, "--no-huge", "--no-pci", "--file-prefix",
		prefix, "-m", mem, "--vdev", vdev, "--log-level", "*:warning", "--no-telemetry",
		NULL };
	struct nic_port_conf pc = {
		.device = MEMIF_DEV, .n_queues = 1, .rx_desc = 1024, .tx_desc = 1024
	};
	struct tcp_config tc;
	struct dp_lcore *lc;
	int rc;

	snprintf(cpu, sizeof(cpu), "%d", o->cpu >= 0 ? o->cpu : first_cpu());
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)mem_mb);
	snprintf(prefix, sizeof(prefix), "egw-sim%d", (int)getpid());
	snprintf(vdev, sizeof(vdev),
	    MEMIF_DEV ",role=client,socket=%s,socket-abstract=no,id=0,rsize=14", o->memif_socket);
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0) {
		fprintf(stderr, "edgegw-sensorsim: memif: EAL init failed: %s\n",
		    rte_strerror(rte_errno));
		return -ENODEV;
	}
	s->pool = rte_pktmbuf_pool_create(
	    "sim_mbufs", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (s->pool == NULL) {
		fprintf(stderr, "edgegw-sensorsim: memif: pool of %u mbufs: %s\n", mbufs,
		    rte_strerror(rte_errno));
		return -ENOMEM;
	}
	lc = rte_zmalloc("sim_lcore", sizeof(*lc), RTE_CACHE_LINE_SIZE);
	if (lc == NULL)
		return -ENOMEM;
	if ((rc = nic_port_find(MEMIF_DEV, &s->port_id)) != 0 ||
	    (rc = nic_port_setup(s->port_id, &pc, &s->pool, &lc->caps, &lc->mac)) != 0) {
		fprintf(stderr, "edgegw-sensorsim: memif: port %s: %s\n", vdev, strerror(-rc));
		return rc < 0 ? rc : -ENODEV;
	}
	lc->lcore_id = rte_lcore_id();
	lc->port_id = s->port_id;
	lc->pool = s->pool;
	lc->ip_be = o->local.s_addr;
	lc->netmask_be = htonl(o->local_plen ? ~0u << (32 - o->local_plen) : 0);
	/* --bind: more addresses of ours (each its own 64,512 ports), sessions round-robin */
	for (uint32_t i = 0; i < o->n_bind; i++) {
		if (dp_is_our_ip(lc, o->bind[i].s_addr))
			continue;
		if (lc->n_extra_ip == DP_MAX_EXTRA_IPS ||
		    (o->bind[i].s_addr & lc->netmask_be) != (lc->ip_be & lc->netmask_be)) {
			fprintf(stderr,
			    "edgegw-sensorsim: memif: --bind %s: more than %u addresses, or "
			    "not in the subnet of --local\n",
			    inet_ntoa(o->bind[i]), DP_MAX_EXTRA_IPS);
			return -EINVAL;
		}
		lc->extra_ip_be[lc->n_extra_ip++] = o->bind[i].s_addr;
	}
	lc->tsc_hz = rte_get_tsc_hz();
	lc->now_tsc = rte_rdtsc();
	lc->tx_wait_us = 2000; /* a full ring means the broker is behind: wait, do not drop */
	tcp_config_defaults(&tc);
	tc.max_flows = RTE_MAX(sessions + sessions / 4 + 1024, 4096u); /* TIME_WAIT leftovers */
	tc.rcvbuf_bytes = 256 * 1024;
	tc.sndbuf_bytes = 256 * 1024;
	tc.wscale = 3;
	tc.mss = (uint16_t)RTE_MIN(1460, lc->caps.mtu - 40);
	if ((rc = arp_lcore_init(lc, 64, 300000)) != 0 ||
	    (rc = pmtu_lcore_init(lc, 64, 600000)) != 0 || (rc = tcp_lcore_init(lc, &tc)) != 0) {
		fprintf(stderr, "edgegw-sensorsim: memif: stack init: %s\n", strerror(-rc));
		return rc;
	}
	arp_lcores_link(&lc, 1);
	icmp_lcore_init(lc, 100);
	s->lc = lc;
	s->n_slots = sessions + 64;
	s->slots = calloc(s->n_slots, sizeof(*s->slots));
	if (s->slots == NULL)
		return -ENOMEM;
	for (uint32_t i = s->n_slots; i-- > 0;) {
		s->slots[i].next = i + 1 < s->n_slots ? (int32_t)(i + 1) : -1;
	}
	s->free_head = 0;
	s->ready_head = s->ready_tail = -1;
	stk = s;

	run_for_ms(s, LINK_WAIT_MS, link_up);
	if (!link_up(s)) {
		fprintf(stderr,
		    "edgegw-sensorsim: memif: link down after %u ms: is the dataplane "
		    "serving a memif port on %s?\n",
		    LINK_WAIT_MS, o->memif_socket);
		return -ENOTCONN;
	}
	if ((rc = ping(s, dst_be)) < 0) {
		fprintf(stderr,
		    "edgegw-sensorsim: memif: no echo reply from %s in %u ms (our address "
		    "%s/%u)\n",
		    o->host, ARP_WAIT_MS, inet_ntoa(o->local), o->local_plen);
		return rc;
	}
	s->registered = false; /* the main thread ran it so far; the worker registers itself */
	return 0;
}

static bool
flows_quiet(struct mstack *s)
{
	struct tcp_mem_stats ms;

	tcp_mem_stats(s->lc, &ms);
	return ms.flows == ms.flows_by_state[TCP_ST_TIME_WAIT];
}

void
sim_memif_fini(void)
{
	struct mstack *s = stk;
	struct dp_lcore *lc;

	if (s == NULL)
		return;
	lc = s->lc;
	/* let the last DISCONNECTs and FINs out, and their answers in */
	run_for_ms(s, CLOSE_FLUSH_MS, flows_quiet);
	fprintf(stderr,
	    "edgegw-sensorsim: memif stack: %llu packets in, %llu out, %llu tx drops, "
	    "%llu TCP retransmissions, %llu mbuf failures\n",
	    (unsigned long long)lc->cnt.v[DPC_port_RX_PKTS],
	    (unsigned long long)lc->cnt.v[DPC_port_TX_PKTS],
	    (unsigned long long)lc->cnt.v[DPC_port_TX_DROP],
	    (unsigned long long)lc->cnt.v[DPC_tcp_REXMT_SEGS],
	    (unsigned long long)(lc->cnt.v[DPC_port_MBUF_ALLOC_FAIL] +
		lc->cnt.v[DPC_tcp_MBUF_FAIL]));
	lc->now_tsc = rte_rdtsc();
	tcp_lcore_fini(lc);
	dp_tx_flush(lc);
	arp_lcore_fini(lc);
	pmtu_lcore_fini(lc);
	nic_port_close(s->port_id);
	free(s->slots);
	rte_free(lc);
	stk = NULL;
	dp_eal_cleanup();
}
