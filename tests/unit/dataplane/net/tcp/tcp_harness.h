/*
 * tcp_harness.h: drives tcp_lib without a NIC. Test doubles of the dataplane functions TCP
 * calls (ipv4_output captures each segment; dp_alloc takes from a test pool), a peer that
 * crafts segments (real IPv4 header and TCP checksum, fed to tcp_input), a parsed view of
 * what the stack sent, a test application, and a clock the test moves by hand.
 */
#ifndef EDGEGW_TEST_TCP_HARNESS_H
#define EDGEGW_TEST_TCP_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "dp.h"
#include "tcp.h"

#define H_OUR_IP  0x010012c6u /* 198.18.0.1, network order on little-endian */
#define H_PEER_IP 0x020012c6u /* 198.18.0.2 */
#define H_PORT    1883
#define H_MAX_CAP 256

/* One captured output segment, parsed. */
struct h_out {
	uint32_t dst_be, src_be;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	uint16_t mss;
	int wscale; /* -1: absent */
	bool has_ts;
	uint32_t tsval, tsecr;
	uint32_t len; /* payload */
	const uint8_t *data;
	unsigned optlen;
};

/*
 * Failure injection for the doubles: dp_alloc() returns NULL, ipv4_output_src() frees the
 * segment and returns -ENOBUFS (as the real one does when it cannot send). next: the next n
 * calls fail; one_in > 0: after those, each call fails with probability 1/one_in (seeded,
 * reproducible). failed counts the failures. Reset by h_setup() and h_teardown().
 */
struct h_fail {
	unsigned next;
	unsigned one_in;
	uint64_t seed;
	unsigned failed;
};
extern struct h_fail h_fail_alloc, h_fail_output;

extern struct dp_lcore h_lc;
extern unsigned h_ncap;
extern struct h_out h_cap[H_MAX_CAP];

/* The test application. */
struct h_app {
	int accepts, readables, writables, closes, connects;
	enum tcp_close_reason why;
	struct tcp_conn *c;
	bool refuse;  /* accept() returns -1 */
	bool echo;    /* readable: take everything and send it back */
	bool consume; /* readable: take everything into rx[] */
	uint8_t rx[256 * 1024];
	uint32_t rxlen;
};
extern struct h_app h_app;
extern const struct tcp_app_ops h_ops;

/* A peer's side of one connection. */
struct h_peer {
	uint16_t port; /* host order */
	uint32_t isn, snd_nxt;
	uint32_t iss; /* ours, learnt from the SYN-ACK */
	uint32_t rcv_nxt;
	bool ts;
	uint32_t tsval;
};

struct h_seg {
	uint8_t flags;
	uint32_t seq, ack;
	uint16_t win;
	const uint8_t *opts;
	unsigned optlen;
	const void *data;
	uint32_t len;
	bool bad_cksum;
	int doff_override; /* >0: data offset field (words) as given */
	uint16_t sport;    /* 0: the peer's */
	uint16_t dport;    /* 0: H_PORT */
	uint64_t ol_flags; /* as a NIC would set them (checksum offload) */
	unsigned split;    /* >0: a two-mbuf chain, the first holding this many TCP bytes */
};

int h_eal_init(void);
void h_setup(const struct tcp_config *cfg); /* lcore, tcp_lcore_init, listen on H_PORT */
void h_teardown(void);                      /* fini, then every mbuf back in the pool */
void h_input(const struct h_seg *s);
/* Between these, h_input (h_send...) keeps the segments; h_burst_end hands them to
 * tcp_input_burst together, as one rx burst. */
void h_burst_begin(void);
void h_burst_end(void);
void h_send(struct h_peer *p, uint8_t flags, const void *data, uint32_t len);
void h_clear(void);
void h_advance_ms(uint32_t ms); /* clock forward, timers polled */
void h_flush(void);
unsigned h_pool_in_use(void);

/* Handshake with MSS 1460 (and WS 7 / TS when ts is true). Returns the connection. */
struct tcp_conn *h_establish(struct h_peer *p, uint16_t port, bool ts);
uint64_t h_cnt(enum dp_counter_id id);

/* --- a flow in flight, for the loss-recovery tests (sack, newreno, recovery) --- */

/* A passive open whose SYN offers MSS mss and SACK (no timestamps, no window scaling), the
 * peer's ISN 1000; asserts that the flow took SACK. Returns the connection. */
struct tcp_conn *h_open_sack(struct h_peer *p, uint16_t port, uint16_t mss);
/* An ACK from p of everything below ack, with SACK blocks [b[k][0], b[k][1]) given as
 * sequence numbers (nb at most 4; b may be NULL when nb is 0). */
void h_ack_sack(struct h_peer *p, uint32_t ack, const uint32_t (*b)[2], unsigned nb);
/* The same with the window win (bytes: h_open_sack's flows do not scale). */
void
h_ack_sack_win(struct h_peer *p, uint32_t ack, const uint32_t (*b)[2], unsigned nb, uint16_t win);
/* Captured segments with payload: how many, and how many of them start at seq. */
unsigned h_n_data(void);
unsigned h_n_at(uint32_t seq);

#define H_CNT(name) h_cnt(DPC_tcp_##name)

#endif
