/*
 * tcp_cc.h: congestion control behind a small ops table (VPP's tcp_cc.h habit): an algorithm
 * says how cwnd grows (ack) and what ssthresh becomes at a congestion event (ssthresh); loss
 * detection and recovery, the same for every algorithm, live in tcp_recovery.c (duplicate
 * ACKs, NewReno partial ACKs, Limited Transmit) and tcp_sack.c (the SACK scoreboard: RFC 6675
 * pipe, RACK-TLP, PRR). CUBIC (RFC 9438, tcp_cubic.c) is the default, NewReno
 * (tcp_newreno.c) the option (`dataplane.tcp.congestion_control`). cwnd and ssthresh are in
 * the TCB, and so is CUBIC's own state (cc_wmax, cc_cwnd_epoch, cc_epoch_ms): an undo of a
 * spurious reduction (tcp_sack.c) saves and restores those three words with cwnd and
 * ssthresh, whatever the algorithm. Slow start is tcp_ss_grow() for both (HyStart++,
 * tcp_hystart.c).
 */
#ifndef EDGEGW_TCP_CC_H
#define EDGEGW_TCP_CC_H

#include <stdint.h>

struct tcp_conn;

struct tcp_cc_ops {
	const char *name;
	void (*init)(struct tcp_conn *c); /* connection established */
	void (*ack)(
	    struct tcp_conn *c, uint32_t acked); /* bytes newly acknowledged, not in recovery */
	/* a congestion event (loss detected, or an RTO with rto true): the new ssthresh; the
	 * algorithm updates its own state, the caller sets ssthresh and cwnd */
	uint32_t (*ssthresh)(struct tcp_conn *c, int rto);
};

extern const struct tcp_cc_ops tcp_cc_newreno;
extern const struct tcp_cc_ops tcp_cc_cubic;

/* RFC 6928: min(10 * MSS, max(2 * MSS, 14600)) */
static inline uint32_t
tcp_initial_window(uint16_t mss)
{
	uint32_t iw = 2u * mss > 14600u ? 2u * mss : 14600u;

	return 10u * mss < iw ? 10u * mss : iw;
}

#endif
