/*
 * tcp_cc.h: congestion control behind a small ops table (VPP's tcp_cc.h habit), so another
 * algorithm (CUBIC) is one more file. tcp_input.c calls ack() for each ACK that advances
 * SND.UNA (after it has advanced) and dupack() for each duplicate ACK; tcp_timer.c calls
 * rto() on a retransmission timeout. cwnd and ssthresh live in the TCB, in bytes.
 */
#ifndef EDGEGW_TCP_CC_H
#define EDGEGW_TCP_CC_H

#include <stdint.h>

struct tcp_conn;

struct tcp_cc_ops {
	const char *name;
	void (*init)(struct tcp_conn *c);                  /* connection established */
	void (*ack)(struct tcp_conn *c, uint32_t acked);   /* bytes newly acknowledged */
	void (*dupack)(struct tcp_conn *c);
	void (*rto)(struct tcp_conn *c);
};

extern const struct tcp_cc_ops tcp_cc_newreno;

#endif
