/*
 * tcp.h: the userspace TCP of the dataplane, as seen by the rest of the fast path.
 * A TCP for many small-message peers, passive open (the gateway's services) and active open
 * (the load generator's client side, later the uplink): per-lcore flow table
 * (rte_hash on the 4-tuple), send/receive buffers as mbuf chains, RFC 6298 RTO, NewReno,
 * delayed ACK, window scaling, timestamps, keepalive, zero-window probes, TIME_WAIT,
 * SYN cookies past the half-open limit, RFC 5961 challenge ACKs.
 *
 * Threading: everything here runs on the lcore that owns the flow; no locks.
 */
#ifndef EDGEGW_NET_TCP_H
#define EDGEGW_NET_TCP_H

#include <stdbool.h>
#include <stdint.h>

struct dp_lcore;
struct rte_mbuf;
struct tcp_conn;

/* Tunables, from the config's dataplane.tcp section (defaults in tcp_config_defaults()). */
struct tcp_config {
	uint32_t max_flows;     /* per lcore: flow table size (established + TIME_WAIT) */
	uint32_t max_half_open; /* per lcore: SYN_RECEIVED entries before SYN cookies */
	uint32_t rcvbuf_bytes;  /* receive buffer per connection (window advertised) */
	uint32_t sndbuf_bytes;  /* send buffer per connection */
	uint16_t mss;           /* our MSS (from the port MTU) */
	uint8_t wscale;         /* our window scale shift */
	bool timestamps;        /* offer/accept RFC 7323 timestamps */
	uint32_t rto_min_ms, rto_max_ms, rto_initial_ms;
	uint32_t delack_ms;    /* delayed ACK timer */
	uint32_t time_wait_ms; /* 2*MSL */
	uint32_t syn_retries, data_retries;
	bool keepalive;
	uint32_t keepalive_idle_ms, keepalive_intvl_ms, keepalive_probes;
	uint32_t challenge_ack_per_s; /* RFC 5961 challenge ACKs per lcore per second (mean: drawn
				       * at random each second in [x/2, 3x/2]); and 1 per flow per 500 ms */
	uint8_t cc;                   /* congestion control: enum tcp_cc_algo */
};

enum tcp_cc_algo {
	TCP_CC_CUBIC = 0, /* RFC 9438, the default */
	TCP_CC_NEWRENO,   /* RFC 5681 / 6582 */
};
void tcp_config_defaults(struct tcp_config *cfg);

/* Why a connection ended, given to the app's closed() callback. */
enum tcp_close_reason {
	TCP_CLOSE_NORMAL = 0, /* both FINs exchanged */
	TCP_CLOSE_RESET,      /* peer sent RST */
	TCP_CLOSE_TIMEOUT,    /* retransmissions exhausted */
	TCP_CLOSE_KEEPALIVE,  /* keepalive probes unanswered */
	TCP_CLOSE_ABORT,      /* we aborted (tcp_abort) */
	TCP_CLOSE_SHUTDOWN,   /* stack shutting down */
};

/*
 * The application side of a listening port (dataplane/svc: echo.c, mqtt_tcp.c).
 * Callbacks run on the lcore owning the connection, from tcp_input or the timers. They may
 * call any tcp_* function on the connection (tcp_abort and tcp_close included); what they
 * send leaves at the next tcp_flush, in the same segments as the ACK. closed() is called
 * exactly once per accepted connection (never for one refused or never established) and once
 * per connection tcp_connect() returned.
 */
struct tcp_app_ops {
	/* A connection reached ESTABLISHED. Return 0 and set *conn_ctx to accept, <0 to refuse (RST). */
	int (*accept)(struct tcp_conn *c, void *listen_ctx, void **conn_ctx);
	/* In-order data (or the peer's FIN: tcp_conn_eof()) is waiting: take it with tcp_recv(). */
	void (*readable)(struct tcp_conn *c, void *conn_ctx);
	/* Acknowledged data freed send-buffer space (tcp_send_space() grew). Optional. */
	void (*writable)(struct tcp_conn *c, void *conn_ctx);
	/* The connection is gone; c must not be used after this returns. */
	void (*closed)(struct tcp_conn *c, void *conn_ctx, enum tcp_close_reason why);
	/* Active open only: the handshake completed (ESTABLISHED); tcp_send may be used now. */
	void (*connected)(struct tcp_conn *c, void *conn_ctx);
};

/*
 * Room in every TCB for the app's own per-connection state, so that it allocates nothing per
 * connection: tcp_app_area(c) is TCP_APP_AREA bytes, 8-aligned, zeroed when the connection
 * starts (before accept() or tcp_connect() returns), the app's until its closed() returns.
 * tcp_app_area_conn() goes back from the area to its connection.
 */
#define TCP_APP_AREA 32
void *tcp_app_area(struct tcp_conn *c);
struct tcp_conn *tcp_app_area_conn(void *area);

int tcp_lcore_init(struct dp_lcore *lc, const struct tcp_config *cfg);
void tcp_lcore_fini(struct dp_lcore *lc); /* aborts every flow (RST), frees everything */

/* Listen on our address, port in host order. */
int tcp_listen(struct dp_lcore *lc, uint16_t port, const struct tcp_app_ops *ops, void *listen_ctx);

/*
 * Active open from our address src_be (0: the primary; another: one of dp_lcore's extra
 * addresses, each with its own port range) to dst_be:dport (dport in host order), from an ephemeral port
 * (1024..65535, the next free 4-tuple). The SYN leaves at the next tcp_flush (after ARP if
 * need be). ops->connected() reports the handshake; ops->closed() is then called exactly once
 * for the connection, also when it never got established (TCP_CLOSE_RESET: refused;
 * TCP_CLOSE_TIMEOUT: syn_retries exhausted; TCP_CLOSE_ABORT: tcp_close/tcp_abort before).
 * ops->accept is not used. Returns 0 and *out, or -EINVAL (src_be not ours), -ENOSPC (no free TCB),
 * -EADDRNOTAVAIL (every port towards dst_be:dport in use). Simultaneous open is not
 * supported (a SYN without ACK in SYN_SENT is dropped and counted).
 */
int tcp_connect(struct dp_lcore *lc, uint32_t src_be, uint32_t dst_be, uint16_t dport,
    const struct tcp_app_ops *ops, void *conn_ctx, struct tcp_conn **out);

/* Input: m->data_off at the TCP header, l2_len/l3_len set, IPv4 header validated. Consumes m. */
void tcp_input(struct dp_lcore *lc, struct rte_mbuf *m);
/* The same for n segments of one rx burst, in order: their flows are looked up together and
 * their TCBs prefetched. Consumes them all. */
void tcp_input_burst(struct dp_lcore *lc, struct rte_mbuf **pkts, unsigned n);
/*
 * ICMP "fragmentation needed" (RFC 1191) for a segment we sent from lip_be:lport_be to
 * rip_be:rport_be (network order) with sequence number seq: the flow's MSS drops to fit mtu
 * (not below 576 bytes of IP) and what is in flight is sent again in the smaller segments.
 * Ignored (counted) unless seq is in flight (RFC 5927 4.1: blind forgeries). false: no such
 * flow on this lcore (not counted: the caller counts it, or passes it to the other lcores).
 */
bool tcp_pmtu_update(struct dp_lcore *lc, uint32_t lip_be, uint32_t rip_be, uint16_t lport_be,
    uint16_t rport_be, uint32_t seq, uint16_t mtu);
/* Called once per loop iteration after the rx burst: sends coalesced ACKs and queued data. */
void tcp_flush(struct dp_lcore *lc);
/* Called every loop iteration (cheap when nothing is due): runs expired timers. */
void tcp_timers_poll(struct dp_lcore *lc);

/* Receive: up to max_bytes of in-order data as an mbuf chain owned by the caller (NULL: none).
 * Whole queued segments when they fit (zero copy); a first segment longer than max_bytes is
 * split by copying max_bytes into a fresh mbuf. Taking data may send a window update. */
struct rte_mbuf *tcp_recv(struct tcp_conn *c, uint32_t max_bytes);
uint32_t tcp_recv_avail(const struct tcp_conn *c);
bool tcp_conn_eof(const struct tcp_conn *c); /* peer's FIN received and all data taken */

/* Send: appends the chain to the send buffer (ownership passes). -ENOBUFS if it does not fit
 * in tcp_send_space() (chain not consumed). tcp_write copies from a flat buffer; returns bytes. */
int tcp_send(struct tcp_conn *c, struct rte_mbuf *chain);
int tcp_write(struct tcp_conn *c, const void *buf, uint32_t len);
uint32_t tcp_send_space(const struct tcp_conn *c);

void tcp_shutdown(struct tcp_conn *c); /* FIN after the queued data */
/* Shutdown, and no more callbacks but closed(). With data received and not taken it resets
 * instead (RST, closed(TCP_CLOSE_ABORT)), as does data arriving after the close. */
void tcp_close(struct tcp_conn *c);
void tcp_abort(struct tcp_conn *c); /* RST now; closed(TCP_CLOSE_ABORT) is called */

/* For logs and stats: peer address and port (network order), and the flow count. */
void tcp_conn_peer(const struct tcp_conn *c, uint32_t *ip_be, uint16_t *port_be);
uint32_t tcp_flow_count(const struct dp_lcore *lc);

/* Connection states (RFC 793 names); LISTEN is a port in the listener table, not a flow. */
enum tcp_state {
	TCP_ST_CLOSED = 0,
	TCP_ST_SYN_RECEIVED,
	TCP_ST_ESTABLISHED,
	TCP_ST_FIN_WAIT_1,
	TCP_ST_FIN_WAIT_2,
	TCP_ST_CLOSE_WAIT,
	TCP_ST_CLOSING,
	TCP_ST_LAST_ACK,
	TCP_ST_TIME_WAIT,
	TCP_ST_SYN_SENT, /* active open: our SYN sent, waiting for the SYN-ACK */
	TCP_ST_COUNT
};
const char *tcp_state_name(enum tcp_state st); /* "ESTABLISHED", ... */
enum tcp_state tcp_conn_state(const struct tcp_conn *c);

/* Memory held by the stack on one lcore, for the stats exporters (read on the owning lcore,
 * or accept a torn read). Idle memory per flow is tcb_bytes + hash_bytes_per_entry. */
struct tcp_mem_stats {
	uint32_t flows_by_state[TCP_ST_COUNT];
	uint32_t flows; /* flows in the table, all states */
	uint32_t max_flows;
	uint32_t half_open;            /* SYN_RECEIVED (passive) */
	uint32_t tcb_bytes;            /* sizeof the TCB (the per-lcore pool holds max_flows) */
	uint32_t hash_bytes_per_entry; /* what the flow hash reserves for max_flows, per entry */
	uint32_t sb_bytes_per_flow;    /* the loss-recovery blocks' pool, per max_flows entry */
	uint32_t dq_bytes_per_flow;    /* the delayed-ACK queue, per max_flows entry */
	uint32_t sb_blocks, sb_used;   /* loss-recovery blocks: in the pool, held by flows */
	uint64_t sndq_mbufs, rcvq_mbufs, ooo_mbufs; /* mbufs held in queues */
	uint64_t sndq_bytes, rcvq_bytes, ooo_bytes;
};
void tcp_mem_stats(const struct dp_lcore *lc, struct tcp_mem_stats *out);

#endif
