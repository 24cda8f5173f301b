/*
 * tcp_cc.h: congestion control behind a small ops table (VPP's tcp_cc.h habit), so another
 * algorithm (CUBIC) is one more file. tcp_input.c calls ack() for each ACK that advances
 * SND.UNA (after it has advanced) and dupack() for each duplicate ACK; sack_loss() when the
 * peer's SACK blocks cover three segments' worth beyond SND.UNA (RFC 6675's DupThresh, which
 * also works when the peer's ACKs ride on its data and so are never duplicate ACKs);
 * tcp_timer.c calls rto() on a retransmission timeout. cwnd and ssthresh are in the TCB.
 */
#ifndef EDGEGW_TCP_CC_H
#define EDGEGW_TCP_CC_H

#include <stdint.h>

struct tcp_conn;

struct tcp_cc_ops {
	const char *name;
	void (*init)(struct tcp_conn *c);                /* connection established */
	void (*ack)(struct tcp_conn *c, uint32_t acked); /* bytes newly acknowledged */
	void (*dupack)(struct tcp_conn *c);
	void (*dupack_reset)(struct tcp_conn *c); /* an ACK neither new nor duplicate */
	void (*rto)(struct tcp_conn *c);
	void (*sack_loss)(struct tcp_conn *c); /* SACKs show a hole at SND.UNA */
};

extern const struct tcp_cc_ops tcp_cc_newreno;

#endif
