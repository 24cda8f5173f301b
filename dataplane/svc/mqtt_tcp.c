/*
 * mqtt_tcp.c: the broker core on the dataplane TCP. A connection's received bytes stay in
 * their mbuf chain: the broker reads the segments in place and says how many bytes it used;
 * the unused tail (a partial packet) stays chained until more arrives. Replies are written into
 * the TCP send buffer (tcp_write). Cross-lcore messages go through one rte_ring per worker.
 * One broker instance per worker lcore (broker.h), started through dp_service_mqtt (svc.h);
 * see docs/broker.md.
 */
#include "svc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_telemetry.h>

#include "broker.h"
#include "broker_conf.h"
#include "mqtt_admin.h"
#include "dp.h"
#include "mqtt_uplink.h"
#include "tcp.h"

#define MQTT_TCP_TICK_MS    50
#define MQTT_X_BURST        32
#define MQTT_TCP_LINGER_KIB 1024

/* The broker's journal syncer (broker_persist_spawn): a control thread, on the cores DPDK keeps
 * for them (not the workers'). */
static int
spawn_ctrl(pthread_t *th, const char *name, void *(*fn)(void *), void *arg)
{
	return rte_ctrl_thread_create(th, name, NULL, fn, arg);
}

struct mqtt_service {
	struct dp_lcore *lc;
	struct broker *b;
	uint64_t next_tick_ms;
	struct mqtt_iov *iov; /* one entry per segment of the longest chain seen */
	size_t iov_cap;
	struct mqtt_tcp_conn *wake;  /* the broker takes their held input again (input_ready) */
	uint32_t pending_cap;        /* bytes taken from TCP and not yet used, per connection */
	uint32_t live_gen;           /* the reload generation this instance has applied */
	struct mqtt_admin_slot *adm; /* the operator's requests (mqtt_admin.c) */
	struct mqtt_uplink *up;      /* the lcore's channel to the agent (store and forward) */
};

/* One per connection, in the TCB's app area (tcp_app_area): no allocation per connection.
 * Its service is its lcore's, its TCP connection the TCB it sits in (tc_of). */
struct mqtt_tcp_conn {
	struct broker_conn *bc;   /* NULL once either side closed it */
	struct rte_mbuf *pending; /* received bytes the broker has not used yet */
	bool busy, dead;          /* in one of our callbacks; closed() came meanwhile */
	bool woken;               /* on svc->wake */
	bool eof;                 /* FIN seen while the broker held our input: close after it */
	bool linger;              /* closed by the broker for an error: FIN sent, what comes is
				   * discarded until the peer's FIN, so that it can read the
				   * DISCONNECT (a close with unread data would be a reset) */
	uint16_t discarded_kib;   /* while lingering: past MQTT_TCP_LINGER_KIB, reset */
	struct mqtt_tcp_conn *wnext;
};

_Static_assert(sizeof(struct mqtt_tcp_conn) <= TCP_APP_AREA, "must fit the TCB's app area");

static inline struct tcp_conn *
tc_of(struct mqtt_tcp_conn *mc)
{
	return tcp_app_area_conn(mc);
}

static struct mqtt_service *services[RTE_MAX_LCORE];
static struct rte_ring *xrings[RTE_MAX_LCORE];
static unsigned n_xrings;
static unsigned n_mqtt_workers; /* the workers of this start (each runs an instance) */
/* $SYS figures of every instance, summed by the first ($SYS/broker/...) */
static struct broker_sys_board *sys_board;
/* A reload's settings, published by the main lcore (svc_reload) and taken by each worker at its
 * next poll: the pointer, then the generation (release); a worker reads the generation, then
 * the pointer (acquire), applies it on its own lcore and says so in its live_gen. */
static struct broker_config *live_next;
static uint32_t live_gen;

/* A connection's service: the one of the lcore it runs on (every callback runs there). */
static inline struct mqtt_service *
svc_of(const struct mqtt_tcp_conn *mc)
{
	(void)mc;
	return services[rte_lcore_id()];
}

static uint64_t
now_ms(const struct dp_lcore *lc)
{
	return lc->now_tsc / (lc->tsc_hz / 1000);
}

static int
op_send(void *ctx, const struct mqtt_iov *iov, size_t n)
{
	struct mqtt_tcp_conn *mc = ctx;
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += iov[i].len;
	if (total > tcp_send_space(tc_of(mc)))
		return -ENOBUFS; /* a partial write would break the stream: the broker closes */
	for (size_t i = 0; i < n; i++)
		if (tcp_write(tc_of(mc), iov[i].base, (uint32_t)iov[i].len) != (int)iov[i].len)
			return -ENOBUFS;
	return 0;
}

static size_t
op_send_space(void *ctx)
{
	return tcp_send_space(tc_of(ctx));
}

static void
op_close(void *ctx, uint8_t reason)
{
	struct mqtt_tcp_conn *mc = ctx;

	mc->bc = NULL;
	if (reason < 0x80) {
		tcp_close(tc_of(mc)); /* FIN after what was sent; closed() ends mc */
		return;
	}
	/* An error (DISCONNECT with its reason in 5.0): the client is likely still sending, and a
	 * close with unread data would reset the connection before it read the DISCONNECT. */
	mc->linger = true;
	tcp_shutdown(tc_of(mc));
}

/* Lingering after an error close: read and drop until the peer's FIN, then close. */
static void
linger_input(struct mqtt_tcp_conn *mc)
{
	struct tcp_conn *c = tc_of(mc);
	struct rte_mbuf *m = tcp_recv(c, UINT32_MAX);

	if (m != NULL) {
		uint32_t kib = mc->discarded_kib + rte_pktmbuf_pkt_len(m) / 1024u;

		mc->discarded_kib = (uint16_t)(kib < UINT16_MAX ? kib : UINT16_MAX);
		rte_pktmbuf_free(m);
	}
	rte_pktmbuf_free(mc->pending);
	mc->pending = NULL;
	if (mc->discarded_kib > MQTT_TCP_LINGER_KIB)
		tcp_abort(c); /* it does not stop: closed() ends mc */
	else if (tcp_conn_eof(c))
		tcp_close(c);
}

/* Called inside a broker call: the feed happens from mqtt_service_poll, after it. */
static void
op_input_ready(void *ctx)
{
	struct mqtt_tcp_conn *mc = ctx;

	if (mc->woken)
		return;
	mc->woken = true;
	mc->wnext = svc_of(mc)->wake;
	svc_of(mc)->wake = mc;
}

static void
wake_del(struct mqtt_tcp_conn *mc)
{
	struct mqtt_tcp_conn **pp = &svc_of(mc)->wake;

	if (!mc->woken)
		return;
	while (*pp != mc)
		pp = &(*pp)->wnext;
	*pp = mc->wnext;
	mc->woken = false;
}

static const struct broker_transport_ops tcp_ops = {
	.send = op_send,
	.send_space = op_send_space,
	.close = op_close,
	.input_ready = op_input_ready,
};

/* Drop the first n bytes of a chain; returns what is left (NULL when nothing). */
static struct rte_mbuf *
chain_trim(struct rte_mbuf *m, size_t n)
{
	while (m != NULL && n >= m->data_len) {
		struct rte_mbuf *next = m->next;

		n -= m->data_len;
		if (next != NULL) {
			next->pkt_len = m->pkt_len - m->data_len;
			next->nb_segs = (uint16_t)(m->nb_segs - 1);
		}
		m->next = NULL;
		m->nb_segs = 1;
		rte_pktmbuf_free_seg(m);
		m = next;
	}
	if (m != NULL && n > 0)
		rte_pktmbuf_adj(m, (uint16_t)n);
	return m;
}

/*
 * Take received bytes from TCP, but never more than pending_cap waiting here: what the broker
 * has not used (a partial packet, or input held during a session claim) stays bounded, and the
 * rest stays in the TCP receive buffer, whose window then closes on the client. 0, or -1 when
 * the chain cannot grow (the caller gives up on the peer).
 */
static int
pull(struct mqtt_tcp_conn *mc)
{
	uint32_t have = mc->pending != NULL ? rte_pktmbuf_pkt_len(mc->pending) : 0;
	uint32_t cap = svc_of(mc)->pending_cap;
	struct rte_mbuf *m;

	if (have >= cap || (m = tcp_recv(tc_of(mc), cap - have)) == NULL)
		return 0;
	if (mc->pending == NULL) {
		mc->pending = m;
		return 0;
	}
	if (rte_pktmbuf_chain(mc->pending, m) != 0) {
		rte_pktmbuf_free(m);
		return -1;
	}
	return 0;
}

/* Hand the pending chain to the broker (a packet may span any number of segments), pulling
 * more from TCP as the broker uses it. */
static void
feed(struct mqtt_tcp_conn *mc)
{
	struct mqtt_service *svc = svc_of(mc);
	uint64_t now = now_ms(svc->lc);

	while (mc->bc != NULL && mc->pending != NULL) {
		size_t n = 0, used = 0, segs = mc->pending->nb_segs;

		if (segs > svc->iov_cap) {
			struct mqtt_iov *v = realloc(svc->iov, segs * sizeof(*v));

			if (v == NULL) { /* cannot look at it: give up on this peer */
				broker_conn_closed(mc->bc, now);
				mc->bc = NULL;
				tcp_abort(tc_of(mc)); /* closed() runs now: mc is dead */
				return;
			}
			svc->iov = v;
			svc->iov_cap = segs;
		}
		for (struct rte_mbuf *s = mc->pending; s != NULL && n < segs; s = s->next)
			svc->iov[n++] =
			    (struct mqtt_iov){ rte_pktmbuf_mtod(s, const uint8_t *), s->data_len };
		if (broker_conn_input(mc->bc, svc->iov, n, &used, now) < 0)
			return; /* closed by the broker (mc->bc is NULL) */
		mc->pending = chain_trim(mc->pending, used);
		if (used == 0)
			return; /* a partial packet, or input held: wait */
		if (pull(mc) != 0) {
			broker_conn_closed(mc->bc, now);
			mc->bc = NULL;
			tcp_abort(tc_of(mc));
			return;
		}
	}
}

static int
on_accept(struct tcp_conn *c, void *listen_ctx, void **conn_ctx)
{
	struct mqtt_service *svc = listen_ctx;
	struct mqtt_tcp_conn *mc = tcp_app_area(c);

	memset(mc, 0, sizeof(*mc));
	if ((mc->bc = broker_conn_open(svc->b, mc, now_ms(svc->lc))) == NULL)
		return -EBUSY; /* max_conns: refused with RST, counted by the broker */
	*conn_ctx = mc;
	return 0;
}

/* The connection is over for us: what it held goes back (the area goes with its TCB). */
static void
conn_release(struct mqtt_tcp_conn *mc)
{
	rte_pktmbuf_free(mc->pending);
	mc->pending = NULL;
}

/*
 * tcp_close() and tcp_abort() may call closed() at once (unread or out-of-order data, RST),
 * and the broker closes connections from inside our calls into it: while one of our callbacks
 * runs, closed() only marks mc dead, and the callback releases what it holds on its way out.
 */
static bool
enter(struct mqtt_tcp_conn *mc)
{
	mc->busy = true;
	return svc_of(mc)->b != NULL; /* NULL: shutting down */
}

static bool
leave(struct mqtt_tcp_conn *mc)
{
	mc->busy = false;
	if (!mc->dead)
		return true;
	conn_release(mc);
	return false;
}

/* FIN without DISCONNECT. While the broker holds a CONNACK (and the bytes after the CONNECT)
 * for a session claim, what the client sent before its FIN is handled first. */
static void
end_of_input(struct mqtt_tcp_conn *mc)
{
	if (broker_conn_held(mc->bc)) {
		mc->eof = true;
		return;
	}
	broker_conn_closed(mc->bc, now_ms(svc_of(mc)->lc));
	mc->bc = NULL;
	tcp_close(tc_of(mc));
}

/* Connections whose CONNACK went out after a claim: what they sent meanwhile is read now. */
static void
wake_poll(struct mqtt_service *svc)
{
	struct mqtt_tcp_conn *mc;

	while ((mc = svc->wake) != NULL) {
		svc->wake = mc->wnext;
		mc->woken = false;
		if (!enter(mc)) {
			leave(mc);
			continue;
		}
		feed(mc);
		if (!mc->dead && mc->bc != NULL && mc->eof)
			end_of_input(mc);
		leave(mc);
	}
}

static void
on_readable(struct tcp_conn *c, void *ctx)
{
	struct mqtt_tcp_conn *mc = ctx;

	if (!enter(mc)) {
		/* shutting down: drop what came */
		struct rte_mbuf *m = tcp_recv(c, UINT32_MAX);

		rte_pktmbuf_free(m);
		leave(mc);
		return;
	}
	if (mc->linger) {
		linger_input(mc);
		leave(mc);
		return;
	}
	if (pull(mc) != 0) { /* over the segment limit of a chain: give up on this peer */
		if (mc->bc != NULL)
			broker_conn_closed(mc->bc, now_ms(svc_of(mc)->lc));
		mc->bc = NULL;
		tcp_abort(c);
		leave(mc);
		return;
	}
	feed(mc);
	/* EOF only once everything before the FIN was taken from TCP and used */
	if (!mc->dead && mc->bc != NULL && tcp_conn_eof(c))
		end_of_input(mc);
	leave(mc);
}

static void
on_writable(struct tcp_conn *c, void *ctx)
{
	struct mqtt_tcp_conn *mc = ctx;

	(void)c;
	if (enter(mc) && mc->bc != NULL)
		broker_conn_writable(mc->bc, now_ms(svc_of(mc)->lc));
	leave(mc);
}

static void
on_closed(struct tcp_conn *c, void *ctx, enum tcp_close_reason why)
{
	struct mqtt_tcp_conn *mc = ctx;

	(void)c, (void)why;
	wake_del(mc);
	if (mc->bc != NULL && svc_of(mc)->b != NULL)
		broker_conn_closed(mc->bc, now_ms(svc_of(mc)->lc));
	mc->bc = NULL;
	if (mc->busy)
		mc->dead = true; /* released when the callback on the stack returns */
	else
		conn_release(mc);
}

static const struct tcp_app_ops mqtt_app_ops = {
	.accept = on_accept,
	.readable = on_readable,
	.writable = on_writable,
	.closed = on_closed,
};

static bool
x_post(void *xctx, uint32_t dst, struct broker_xmsg *m)
{
	(void)xctx;
	return dst < n_xrings && rte_ring_mp_enqueue(xrings[dst], m) == 0;
}

static const struct broker_xlcore_ops x_ops = { .post = x_post };

static int
mqtt_service_init(unsigned n_workers, unsigned ring_size)
{
	char name[RTE_RING_NAMESIZE];

	if (n_workers > RTE_MAX_LCORE)
		return -EINVAL;
	for (unsigned i = 0; i < n_workers && n_workers > 1; i++) {
		snprintf(name, sizeof(name), "egw_mqtt_x%u", i);
		xrings[i] = rte_ring_create(name, ring_size, (int)rte_socket_id(), RING_F_SC_DEQ);
		if (xrings[i] == NULL)
			return -rte_errno;
	}
	n_xrings = n_workers > 1 ? n_workers : 0;
	n_mqtt_workers = n_workers;
	if (n_workers > 1 && sys_board == NULL &&
	    (sys_board = broker_sys_board_new(n_workers)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
mqtt_service_listen(struct dp_lcore *lc, uint16_t port, const struct broker_config *cfg)
{
	struct mqtt_service *svc = calloc(1, sizeof(*svc));
	struct broker_config def;
	int rc;

	if (svc == NULL)
		return -ENOMEM;
	svc->lc = lc;
	if (cfg == NULL) {
		broker_config_defaults(&def);
		cfg = &def;
	}
	/* a whole packet of the largest size we accept, and its header */
	svc->pending_cap = cfg->max_packet_size + 16;
	if ((svc->b = broker_create(cfg, &tcp_ops, now_ms(lc))) == NULL) {
		free(svc);
		return -ENOMEM;
	}
	if (n_xrings > 1)
		broker_xlcore_attach(svc->b, lc->worker_idx, n_xrings, &x_ops, NULL);
	/* state across restarts: recovered before the first connection (docs/broker.md); its
	 * syncer thread a DPDK control thread, off the worker cores */
	broker_persist_spawn = spawn_ctrl;
	if (cfg->state_dir[0] != '\0' &&
	    (rc = broker_persist_open(
		 svc->b, cfg->state_dir, lc->worker_idx, cfg->state_sync_ms, now_ms(lc))) != 0) {
		broker_destroy(svc->b);
		free(svc);
		return rc;
	}
	if ((svc->adm = mqtt_admin_slot_new(lc->worker_idx)) == NULL) {
		broker_destroy(svc->b);
		free(svc);
		return -ENOMEM;
	}
	if (sys_board != NULL)
		broker_sys_attach(svc->b, sys_board, lc->worker_idx);
	if (mqtt_uplink_enabled() &&
	    (svc->up = mqtt_uplink_start(svc->b, lc->lcore_id, n_mqtt_workers)) == NULL) {
		broker_destroy(svc->b);
		free(svc);
		return -ENOMEM;
	}
	if ((rc = tcp_listen(lc, port, &mqtt_app_ops, svc)) != 0) {
		mqtt_uplink_stop(svc->up);
		broker_destroy(svc->b);
		free(svc);
		return rc;
	}
	services[lc->lcore_id] = svc;
	return 0;
}

static void
mqtt_service_poll(struct dp_lcore *lc)
{
	struct mqtt_service *svc = services[lc->lcore_id];
	void *msgs[MQTT_X_BURST];
	uint64_t now;
	unsigned n;

	if (svc == NULL || svc->b == NULL)
		return;
	now = now_ms(lc);
	if (n_xrings > 1) {
		/* a subscriber over its queue limit holds its publishers: those on other lcores
		 * are held by this ring filling up meanwhile */
		n = broker_xlcore_paused(svc->b)
		    ? 0
		    : rte_ring_sc_dequeue_burst(xrings[lc->worker_idx], msgs, MQTT_X_BURST, NULL);
		for (unsigned i = 0; i < n; i++)
			broker_xlcore_input(svc->b, msgs[i], now);
		broker_xlcore_retry(svc->b, now);
	}
	if (__atomic_load_n(&live_gen, __ATOMIC_ACQUIRE) != svc->live_gen) {
		uint32_t g = __atomic_load_n(&live_gen, __ATOMIC_ACQUIRE);

		broker_reconfigure(svc->b, __atomic_load_n(&live_next, __ATOMIC_ACQUIRE), now);
		__atomic_store_n(&svc->live_gen, g, __ATOMIC_RELEASE);
	}
	mqtt_admin_poll(svc->adm, svc->b, now);
	if (now >= svc->next_tick_ms) {
		broker_tick(svc->b, now);
		svc->next_tick_ms = now + MQTT_TCP_TICK_MS;
	}
	/* after this iteration's input: its records leave as one batch, answers come in */
	if (svc->up != NULL)
		mqtt_uplink_poll(svc->up, now);
	broker_uplink_sync_poll(svc->b, now); /* PUBRECs whose origin's record is now on disk */
	wake_poll(svc);
}

/* The broker goes first: the flows tcp_lcore_fini() aborts afterwards find svc->b NULL and
 * free only their own state (svc itself stays, one small struct per lcore until exit). */
static void
mqtt_service_fini(struct dp_lcore *lc)
{
	struct mqtt_service *svc = services[lc->lcore_id];
	void *m;

	if (svc == NULL)
		return;
	if (n_xrings > 1)
		while (rte_ring_sc_dequeue(xrings[lc->worker_idx], &m) == 0)
			broker_xmsg_free(m);
	mqtt_uplink_stop(svc->up); /* before its broker: it detaches itself */
	svc->up = NULL;
	broker_destroy(svc->b);
	svc->b = NULL;
}

/* Every instance's broker, in lcore order: the figures below are sums over them. */
#define FOREACH_BROKER(b)                               \
	for (unsigned _l = 0; _l < RTE_MAX_LCORE; _l++) \
		for (struct broker *b = services[_l] ? services[_l]->b : NULL; b != NULL; b = NULL)

static int
tel_broker(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd, (void)params;
	rte_tel_data_start_dict(d);
	for (unsigned c = 0; c < BROKER_C_COUNT; c++) {
		uint64_t v = 0;

		FOREACH_BROKER(b)
		v += broker_counter_get(b, (enum broker_counter)c);
		rte_tel_data_add_dict_u64(d, broker_counter_name((enum broker_counter)c), v);
	}
	return 0;
}

/* broker_counters.def's descriptions and kinds, for the exporters' HELP, TYPE and class. */
static int
tel_broker_describe(const char *cmd, const char *params, struct rte_tel_data *d)
{
	bool kinds = strcmp(cmd, "/edgegw/broker_kinds") == 0;

	(void)params;
	rte_tel_data_start_dict(d);
	for (unsigned c = 0; c < BROKER_C_COUNT; c++)
		rte_tel_data_add_dict_string(d, broker_counter_name((enum broker_counter)c),
		    kinds ? counter_kind_name(broker_counter_kind((enum broker_counter)c))
			  : broker_counter_desc((enum broker_counter)c));
	return 0;
}

/* The channel to the agent (lib/dpchan's counters), summed over the workers. */
static int
tel_dpchan(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd, (void)params;
	rte_tel_data_start_dict(d);
	for (unsigned c = 0; c < DPCHAN_C_COUNT; c++) {
		uint64_t v = 0;

		for (unsigned l = 0; l < RTE_MAX_LCORE; l++)
			if (services[l] != NULL)
				v += mqtt_uplink_counter(services[l]->up, (enum dpchan_counter)c);
		rte_tel_data_add_dict_u64(d, dpchan_counter_name((enum dpchan_counter)c), v);
	}
	return 0;
}

/* What each counter of /edgegw/dpchan counts, or (/edgegw/dpchan_kinds) its kind. */
static int
tel_dpchan_describe(const char *cmd, const char *params, struct rte_tel_data *d)
{
	bool kinds = strcmp(cmd, "/edgegw/dpchan_kinds") == 0;

	(void)params;
	rte_tel_data_start_dict(d);
	for (unsigned c = 0; c < DPCHAN_C_COUNT; c++)
		rte_tel_data_add_dict_string(d, dpchan_counter_name((enum dpchan_counter)c),
		    kinds ? counter_kind_name(dpchan_counter_kind((enum dpchan_counter)c))
			  : dpchan_counter_desc((enum dpchan_counter)c));
	return 0;
}

static int
svc_telemetry_init(void)
{
	return rte_telemetry_register_cmd("/edgegw/dpchan", tel_dpchan,
		   "Channel to the agent (store and forward): counters summed over the workers") |
	    rte_telemetry_register_cmd("/edgegw/dpchan_describe", tel_dpchan_describe,
		"What each counter of /edgegw/dpchan counts") |
	    rte_telemetry_register_cmd("/edgegw/dpchan_kinds", tel_dpchan_describe,
		"The kind of each counter of /edgegw/dpchan") |
	    rte_telemetry_register_cmd(
		"/edgegw/broker", tel_broker, "MQTT broker counters, summed over the workers") |
	    rte_telemetry_register_cmd("/edgegw/broker_describe", tel_broker_describe,
		"What each counter of /edgegw/broker counts") |
	    rte_telemetry_register_cmd("/edgegw/broker_kinds", tel_broker_describe,
		"The kind of each counter of /edgegw/broker: info, drop, limit, bad_input, "
		"error, gauge") |
	    mqtt_admin_telemetry_init();
}

/* The broker's gauges (records, and the parts of sessions that exist only while used), summed
 * over the workers, under these names in /edgegw/mem. */
static const struct {
	const char *name;
	size_t off;
} gauge_fields[] = {
	{ "mqtt_conns", offsetof(struct broker_gauges, conns) },
	{ "mqtt_sessions", offsetof(struct broker_gauges, sessions) },
	{ "mqtt_subscriptions", offsetof(struct broker_gauges, subscriptions) },
	{ "mqtt_sessions_with_window", offsetof(struct broker_gauges, windows) },
	{ "mqtt_sessions_with_qos2_ids", offsetof(struct broker_gauges, qos2_tables) },
	{ "mqtt_sessions_with_will_or_claim", offsetof(struct broker_gauges, cold) },
	{ "mqtt_queued_msgs", offsetof(struct broker_gauges, queued) },
	{ "mqtt_held_conns", offsetof(struct broker_gauges, held) },
	{ "mqtt_xlcore_pending", offsetof(struct broker_gauges, xpending) },
	{ "mqtt_xlcore_outbox", offsetof(struct broker_gauges, xoutbox) },
};

static void
svc_telemetry_mem(struct rte_tel_data *d)
{
	uint64_t sum[RTE_DIM(gauge_fields)] = { 0 };
	struct broker_gauges g;

	FOREACH_BROKER(b)
	{
		broker_gauges_get(b, &g);
		for (unsigned j = 0; j < RTE_DIM(gauge_fields); j++)
			sum[j] += *(const uint32_t *)((const char *)&g + gauge_fields[j].off);
	}
	for (unsigned j = 0; j < RTE_DIM(gauge_fields); j++)
		rte_tel_data_add_dict_u64(d, gauge_fields[j].name, sum[j]);
}

static int
svc_init(const struct dp_service_conf *sc, unsigned n_workers)
{
	(void)sc;
	return mqtt_service_init(n_workers, 1024);
}

static int
svc_listen(struct dp_lcore *lc, const struct dp_service_conf *sc)
{
	return mqtt_service_listen(lc, sc->port, sc->opts);
}

/*
 * Main lcore, SIGHUP with a valid config: publish the broker settings and wait (up to 2 s) for
 * every worker to have applied them; the previous settings are freed only then (no worker can
 * still be reading them). Returns the workers that applied it.
 */
static int
svc_reload(const struct dp_service_conf *sc)
{
	struct broker_config *next, *old = live_next;
	uint32_t g = live_gen + 1, done = 0, total = 0;

	if (sc->opts == NULL || (next = malloc(sizeof(*next))) == NULL)
		return -ENOMEM;
	memcpy(next, sc->opts, sizeof(*next));
	__atomic_store_n(&live_next, next, __ATOMIC_RELEASE);
	__atomic_store_n(&live_gen, g, __ATOMIC_RELEASE);
	for (int waited_ms = 0; waited_ms <= 2000; waited_ms++) {
		done = total = 0;
		for (unsigned i = 0; i < RTE_MAX_LCORE; i++)
			if (services[i] != NULL) {
				total++;
				done +=
				    __atomic_load_n(&services[i]->live_gen, __ATOMIC_ACQUIRE) == g;
			}
		if (done == total)
			break;
		rte_delay_ms(1);
	}
	if (done == total)
		free(old); /* else kept: a worker that did not answer may still read it */
	return (int)done;
}

const struct dp_service dp_service_mqtt = {
	.name = "mqtt",
	.init = svc_init,
	.listen = svc_listen,
	.poll = mqtt_service_poll,
	.fini = mqtt_service_fini,
	.telemetry_init = svc_telemetry_init,
	.telemetry_mem = svc_telemetry_mem,
	.reload = svc_reload,
};
