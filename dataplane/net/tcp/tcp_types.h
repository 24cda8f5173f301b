/*
 * tcp_types.h: the stack's internal types (TCB, per-lcore state, parsed segment) and the
 * functions the tcp_*.c files call in one another. Nothing here is seen outside net/tcp/;
 * the rest of the dataplane uses tcp.h.
 *
 * Files in data-flow order: tcp_input.c (validate, demux, state machine) -> tcp_syncookie.c
 * (past the half-open limit) | tcp_connect.c (active open, SYN_SENT) -> tcp_buf.c (receive/out-of-order/send queues as mbuf chains)
 * -> tcp_api.c (what the app calls) -> tcp_output.c (segments, ACK coalescing, RST) ->
 * tcp_timer.c (timer wheel: RTO, delayed ACK, persist, keepalive, TIME_WAIT); loss recovery in
 * tcp_recovery.c and tcp_sack.c (scoreboard, RACK-TLP, PRR), with tcp_cubic.c and
 * tcp_newreno.c behind tcp_cc.h; tcp_lcore.c owns tables, pools and stats.
 */
#ifndef EDGEGW_TCP_TYPES_H
#define EDGEGW_TCP_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_prefetch.h>

#include "tcp.h"

struct rte_hash;
struct rte_mbuf;
struct tcp_cc_ops;

#define TCP_MAX_LISTENERS 16
#define TCP_WHEEL_SLOTS   1024 /* 1 ms per slot: about one second ahead, later ones re-queue */
#define TCP_DSACK_SLOTS   64   /* D-SACK blocks owed per lcore (tcp_dsack_note) */
#define TCP_OOO_MIN_SEGS  8    /* out-of-order segments kept per flow: 2 windows of MSS, */
#define TCP_OOO_MAX_SEGS  255  /* within these bounds (adjacent ones are merged) */
#define TCP_MAX_WSCALE    14
#define TCP_TS_OPT_LEN    12  /* NOP NOP TS(10) as we send it */
#define TCP_DEFAULT_MSS   536 /* RFC 879: the peer sent no MSS option */
#define TCP_MAX_OPS       32  /* distinct app callback sets per lcore (listeners, connects) */
#define TCP_MAX_LCORES    255 /* tcp_lcore instances alive at once (a TCB names its own in a byte) */
#define TCP_RX_BURST      32  /* segments looked up together (tcp_input_burst) */

/* The 4-tuple, as it appears on the wire (network order); 12 bytes, no padding. */
struct tcp_flow_key {
	uint32_t rip;
	uint32_t lip;
	uint16_t rport;
	uint16_t lport;
};

/* An mbuf chain used as a byte queue: segments linked by ->next, totals kept here. */
struct tcp_mq {
	struct rte_mbuf *head;
	struct rte_mbuf *tail;
	uint32_t bytes;
	uint32_t nsegs;
};

/* TCB flags */
enum {
	TF_INUSE = 1u << 0,
	TF_ACKNOW = 1u << 1,     /* send an ACK at the next flush */
	TF_ON_FLUSH = 1u << 2,   /* on the lcore's flush list */
	TF_FIN_QUEUED = 1u << 3, /* app shut down: FIN after the queued data */
	TF_FIN_SENT = 1u << 4,
	TF_RCVD_FIN = 1u << 5,
	TF_TS_OK = 1u << 6,       /* timestamps negotiated */
	TF_WS_OK = 1u << 7,       /* window scaling negotiated */
	TF_APP = 1u << 8,         /* accepted: the app holds the connection */
	TF_APP_CLOSED = 1u << 9,  /* tcp_close(): no callbacks but closed() */
	TF_RECOVERY = 1u << 10,   /* NewReno fast recovery */
	TF_PERSIST = 1u << 11,    /* the rexmt timer is the persist timer */
	TF_RTT_TIMING = 1u << 12, /* rtt_seq is being timed (Karn) */
	TF_REAP = 1u << 13,       /* closed, on the reap list */
	TF_FIN_ACKED = 1u << 14,
	TF_SACK_OK = 1u << 15, /* the peer may send SACK blocks (we use them to detect loss) */
	TF_ALL = 0xffffu       /* flags is 16 bits: widen it before adding one */
};

/* armed timers (timer_on bits) */
enum {
	TT_REXMT = 1,
	TT_DELACK = 2, /* on the lcore's delayed-ACK queue, not the wheel (tcp_timer.c) */
	TT_KEEP = 4,
	TT_DQ = 8 /* not a timer: the TCB has an entry on the delayed-ACK queue (kept when the
		   * TCB is closed and reused: that entry is then the new flow's) */
};

/* The delayed-ACK queue: TCB reference and deadline, in the order they were armed. */
struct tcp_dq_ent {
	uint32_t ref;
	uint32_t deadline_ms;
};

/*
 * The TCB. Sized for many idle connections: no buffer memory when idle (queues are mbuf
 * chains), 32-bit millisecond deadlines instead of timer objects, one wheel link; the lists it
 * is on link TCBs by 32-bit reference (tcb_ref(): index in the lcore's pool + 1, 0 for none),
 * and its lcore and app callbacks are one-byte indices (tcb_tl(), tcb_ops()); the next hop's
 * ARP entry is remembered by position (nh_hint), so a sent segment skips the ARP table's hash. The app's own
 * per-connection state lives in it too (app[]: tcp_app_area()). 256 bytes, no padding holes:
 * four cache lines exactly, so that no TCB of the pool straddles a fifth.
 */
struct tcp_conn {
	struct tcp_flow_key key;
	uint16_t flags;         /* TF_* */
	uint16_t mss;           /* payload bytes per segment we send (options deducted) */
	uint8_t state;          /* enum tcp_state */
	uint8_t snd_wscale : 4; /* peer's shift, applied to windows it sends (0..14) */
	uint8_t rcv_wscale : 4; /* our shift, applied to windows we send */
	uint8_t rxtshift;       /* consecutive retransmissions (backoff) */
	uint8_t dupacks;
	uint8_t keep_probes;
	uint8_t segs_unacked; /* data segments received since our last ACK */
	uint8_t ooo_n;
	uint8_t timer_on : 4; /* TT_* */
	uint8_t in_wheel : 1;
	uint8_t frto : 2;  /* F-RTO (RFC 5682, tcp_recovery.c): TCP_FRTO_* */
	uint8_t dsack : 1; /* a D-SACK block is owed: in the lcore's dsack[] (tcp_dsack_note) */
	uint8_t tli;       /* its tcp_lcore: tcp_lcores[tli] */
	uint8_t ops_i;     /* its app callbacks: tl->ops_tab[ops_i], 0: none */
	/* what mss goes back up to when the path MTU that lowered it is gone (RFC 1191: the
	 * table's entry expired; tcp_pmtu_apply): the handshake's MSS, or the lowered one
	 * itself when the table could not keep it (tcp_pmtu_update) */
	uint16_t mss_max;
	uint32_t tw_ms; /* wheel slot time we sit in (valid if in_wheel) */

	uint32_t flush_next; /* tcb_ref: the flush list */
	union {
		uint32_t next_free; /* tcb_ref: free list, then reap list */
		uint32_t tw_next;   /* tcb_ref: the wheel slot's list (never both: a TCB
				     * leaves the wheel when it closes, tcp_conn_close) */
	};
	uint32_t tw_prev;
	uint32_t nh_hint; /* where the next hop's ARP entry sits (ipv4_output_hint), 0: unknown */

	/* send sequence space */
	uint32_t snd_una, snd_nxt, snd_max; /* ISS: snd_una until SYN_RECEIVED/SYN_SENT end */
	uint32_t snd_wnd, snd_wl1, snd_wl2, max_sndwnd;
	uint32_t snd_recover, cwnd, ssthresh;
	/* receive sequence space */
	uint32_t rcv_nxt, rcv_adv; /* IRS: rcv_nxt - 1 in SYN_RECEIVED */
	uint32_t ts_recent;
	/* RTT (RFC 6298), milliseconds scaled: srtt x8, rttvar x4 */
	uint32_t srtt8, rttvar4, rto_ms;
	union {
		struct { /* TF_RTT_TIMING: the segment timed (no timestamps) */
			uint32_t rtt_seq, rtt_start_ms;
		};
		struct { /* frto != 0 (then nothing is timed): the window before the RTO */
			uint32_t frto_cwnd, frto_ssthresh;
		};
	};
	/* timer deadlines, ms on the lcore clock */
	uint32_t t_rexmt, t_delack, t_keep;
	uint32_t last_rx_ms;
	uint32_t last_tx_ms; /* last data segment sent (RFC 5681 4.1: cwnd after idle) */
	uint32_t chack_ms;   /* last challenge ACK sent (RFC 5961 per-flow bound) */
	uint32_t sb_ref;     /* its loss-recovery block (tcp_sack.c) while data is in flight, 0 */
	/* CUBIC (RFC 9438): W_max and cwnd at the epoch's start in bytes, the epoch's start
	 * (ms, 0: none); NewReno leaves them alone */
	uint32_t cc_wmax, cc_cwnd_epoch, cc_epoch_ms;

	struct tcp_mq sndq;   /* from snd_una: unacked then unsent data */
	struct tcp_mq rcvq;   /* in order, not yet taken by the app */
	struct rte_mbuf *ooo; /* out-of-order packets, sorted, linked via the dynfield */

	void *app_ctx;
	uint64_t app[TCP_APP_AREA / 8]; /* the app's, from accept/tcp_connect to closed() */
};

struct tcp_listener {
	uint16_t port_be;
	uint8_t ops_i; /* its callbacks: the lcore's ops_tab[ops_i] */
	void *ctx;
};

/* TCP options as parsed from a segment. */
struct tcp_opts {
	uint16_t mss;
	uint8_t wscale;
	bool has_mss, has_ws, has_ts, sack_ok;
	uint8_t nsack;
	uint32_t tsval, tsecr;
	uint32_t sack[4][2]; /* SACK blocks [left, right), host order */
};

/* One received segment, parsed and validated. */
struct tcp_seg {
	struct tcp_flow_key key;
	uint32_t seq, ack;
	uint32_t len;  /* payload bytes (after trimming to the window) */
	bool dup;      /* all of it was received before: its ACK field still counts */
	uint16_t win;  /* unscaled */
	uint8_t flags; /* RTE_TCP_*_FLAG */
	struct tcp_opts opt;
};

/*
 * A flow's loss-recovery block (tcp_sack.c), from a per-lcore pool, held while a flow that
 * negotiated SACK has data in flight: the scoreboard of the segments in flight as sent (RFC
 * 6675: SACKed, lost, retransmitted; when each was last sent, for RACK), RACK's state
 * (RFC 8985), the tail loss probe's and PRR's (RFC 6937). Kept out of the TCB: an idle flow
 * (most of them) holds none, and the TCB stays at four cache lines.
 */
#define TCP_SB_SEGS 64 /* segments in flight tracked: a scoreboard flow sends no more */

enum {
	SBS_SACKED = 1,  /* selectively acknowledged */
	SBS_LOST = 2,    /* marked lost (RACK or DupThresh), not retransmitted since */
	SBS_RETRANS = 4, /* retransmitted at least once */
};

enum {
	SBT_RTO = 0, /* what the rexmt deadline stands for while a block is held */
	SBT_TLP,     /* the probe timeout (RFC 8985 7.2) */
	SBT_REO,     /* RACK's reordering timer (RFC 8985 6.3) */
	SBT_UNDO,    /* nothing in flight: how long the block waits for a D-SACK (undo) */
};

struct tcp_sb_seg {
	uint32_t start, end; /* [start, end), the FIN counting */
	uint32_t xmit_ms;    /* last (re)transmission */
	uint8_t flags;       /* SBS_* */
};

struct tcp_sb {
	uint32_t next_free; /* pool free list: index + 1 */
	uint16_t head, n;   /* ring of n segments from seg[head] */
	uint32_t end;    /* where tracking ends: above it (after an RTO) segments are untracked */
	uint32_t sacked; /* bytes SACKed above SND.UNA */
	/* RACK: the most recently sent segment delivered, its RTT; the highest delivered */
	uint32_t rack_xmit_ms, rack_end, rack_rtt_ms, min_rtt_ms, fack;
	uint8_t rack_valid, reo_seen, reo_mult, tmode; /* tmode: SBT_* */
	uint8_t tlp_out, tlp_rexmit, tlp_dsack, dsack_round;
	uint32_t tlp_end;     /* snd_max when the probe went */
	uint32_t tlp_sent_ms; /* when it went (its TSval: + the lcore's ts_offset) */
	uint32_t dsack_end;   /* RACK 6.2: one reo_wnd step per round trip */
	/* PRR (RFC 6937) */
	uint32_t recover_fs, prr_delivered, prr_out, sndcnt;
	/* Undo of a spurious reduction (RFC 2883 D-SACK, RFC 3522 Eifel; tcp_sack.c): the
	 * window before the episode's reduction (CUBIC's three words too), the range its
	 * retransmissions covered, our TSval at the first, those not yet shown spurious */
	uint32_t prior_cwnd, prior_ssthresh, prior_cc[3];
	uint32_t undo_lo, undo_hi, undo_tsval;
	uint16_t undo_retrans;
	uint8_t undo_on, undo_sent, undo_eifel;
	/* segments sent again and not yet reported twice (D-SACK), at most 255: a D-SACK beyond
	 * them reports a copy the network made, which says nothing of reordering */
	uint8_t dsack_credit;
	uint8_t reo_persist; /* RFC 8985 6.2 step 4: recoveries left before reo_mult goes back */
	/* the most in flight since the window being acknowledged now began (Linux's
	 * max_packets_out), and where that window ends: what a congestion event measures the
	 * window by (tcp_sb_flight) */
	uint32_t flight_hi, flight_end;
	/* HyStart++ (RFC 9406; tcp_hystart.c), in the initial slow start: RTTs in ms,
	 * UINT16_MAX for none */
	uint32_t hs_end;
	uint16_t hs_last_min, hs_cur_min, hs_css_base;
	uint8_t hs_samples, hs_css, hs_css_rounds, hs_done;
	struct tcp_sb_seg seg[TCP_SB_SEGS];
} __attribute__((aligned(16)));

/* F-RTO (RFC 5682) after a retransmission timeout: c->frto */
enum {
	TCP_FRTO_OFF = 0,
	TCP_FRTO_STEP2, /* SND.UNA resent: waiting for the first ACK after it */
	TCP_FRTO_STEP3, /* new data sent instead of going back: waiting for the next ACK */
};

enum tcp_ack_kind {
	TCP_ACK_NEW,   /* advances SND.UNA */
	TCP_ACK_DUP,   /* RFC 5681's duplicate ACK */
	TCP_ACK_OTHER, /* neither (data, window update, old) */
};

/* Per-lcore state. */
struct tcp_lcore {
	struct dp_lcore *lc;
	struct tcp_config cfg;
	const struct tcp_cc_ops *cc;
	struct rte_hash *flows;
	uint32_t flows_gen; /* bumped at every add to or removal from flows (tcp_input_burst) */
	struct tcp_conn *tcbs;
	struct tcp_conn *free_list;
	const struct tcp_app_ops *ops_tab[TCP_MAX_OPS]; /* [0] NULL: TCBs name theirs by index */
	uint8_t n_ops;
	uint8_t index; /* in tcp_lcores[] */
	uint32_t n_used;
	uint32_t half_open;
	uint32_t by_state[TCP_ST_COUNT];
	uint64_t q_mbufs[3]; /* sndq, rcvq, ooo */
	uint64_t q_bytes[3];
	struct tcp_listener listeners[TCP_MAX_LISTENERS];
	unsigned n_listeners;
	uint16_t eph_next; /* active open: next ephemeral port to try (host order) */
	struct tcp_conn *flush_head;
	struct tcp_conn *reap_head;
	int ooo_dynoff;        /* mbuf dynfield offset for the out-of-order link */
	uint8_t ooo_max_segs;  /* per flow */
	uint32_t ooo_mbuf_cap; /* per lcore: out-of-order mbufs, all flows together */
	bool pressure;         /* mbuf pool below 1/8 free: windows close for flows holding data */
	uint16_t seg_room;     /* largest TCP segment (header included) one mbuf holds */

	/* clock */
	uint64_t base_tsc;
	uint64_t tsc_per_ms;
	uint32_t now_ms;
	uint32_t wheel_ms;               /* last slot processed */
	uint32_t ts_offset;              /* random offset of our TSval */
	uint32_t wheel[TCP_WHEEL_SLOTS]; /* tcb_ref of each slot's first TCB */
	/* delayed ACKs (a ring: one entry per TCB at most, so max_flows rounded up to a power
	 * of two never overflows): arming one touches no other TCB and never moves this one */
	struct tcp_dq_ent *dq;
	uint32_t dq_mask, dq_head, dq_tail;
	/* entries before it have had their TCBs prefetched (dq_poll); dq_head <= dq_pf <=
	 * dq_tail: dq_poll alone moves dq_head and dq_pf, prefetching before it takes an
	 * entry, and dq_push only adds at the tail */
	uint32_t dq_pf;

	/* SYN cookies */
	uint32_t cookie_secret[4];
	uint32_t cookie_last_ms;
	bool cookie_used;

	/* RFC 5961 challenge ACK budget: randomized each second (CVE-2016-5696) */
	uint32_t chack_sec;
	uint32_t chack_count;
	uint32_t chack_budget;

	uint32_t ooo_stamp; /* arrival order of out-of-order segments (SACK: newest first) */
	/* D-SACK blocks owed (RFC 2883), by tcb_ref % TCP_DSACK_SLOTS: a duplicate is ACKed at
	 * once, so a slot is rarely shared; a flow that loses its slot reports one D-SACK less */
	struct {
		uint32_t ref, l, r;
	} dsack[TCP_DSACK_SLOTS];

	/* loss-recovery blocks (tcp_sack.c): max(16, max_flows / 16), free list by index + 1 */
	struct tcp_sb *sbs;
	uint32_t n_sbs, sb_free, sb_used;
};

enum {
	TCP_Q_SND = 0,
	TCP_Q_RCV = 1,
	TCP_Q_OOO = 2
};

extern struct tcp_lcore *tcp_lcores[TCP_MAX_LCORES];

static inline struct tcp_lcore *
tcb_tl(const struct tcp_conn *c)
{
	return tcp_lcores[c->tli];
}

static inline const struct tcp_app_ops *
tcb_ops(const struct tcp_conn *c)
{
	return tcp_lcores[c->tli]->ops_tab[c->ops_i];
}

/* 32-bit references between TCBs of one lcore: index + 1, 0 for none. */
static inline uint32_t
tcb_ref(const struct tcp_lcore *tl, const struct tcp_conn *c)
{
	return c != NULL ? (uint32_t)(c - tl->tcbs) + 1 : 0;
}

static inline struct tcp_conn *
tcb_at(const struct tcp_lcore *tl, uint32_t ref)
{
	return ref != 0 ? &tl->tcbs[ref - 1] : NULL;
}

/* The TCB's four cache lines, requested together: the state machine touches them one after
 * another, and each would otherwise wait for its own miss (input_bulk, dq_poll). */
static inline void
tcb_prefetch(const struct tcp_conn *c)
{
	if (c == NULL)
		return;
	for (unsigned l = 0; l < sizeof(*c); l += RTE_CACHE_LINE_SIZE)
		rte_prefetch0((const char *)c + l);
}

/* The index of ops in tl's table, added on first use; -ENOSPC when the table is full. */
int tcp_ops_index(struct tcp_lcore *tl, const struct tcp_app_ops *ops);

/* tcp_lcore.c */
void tcp_update_clock(struct tcp_lcore *tl);
struct tcp_conn *tcp_conn_alloc(struct tcp_lcore *tl, const struct tcp_flow_key *key);
struct tcp_conn *tcp_conn_lookup(struct tcp_lcore *tl, const struct tcp_flow_key *key);
void tcp_set_state(struct tcp_conn *c, enum tcp_state st);
void tcp_conn_close(struct tcp_conn *c, enum tcp_close_reason why); /* to CLOSED, reaped later */
void tcp_app_closed(struct tcp_conn *c, enum tcp_close_reason why); /* closed() once */
void tcp_reap(struct tcp_lcore *tl);
const struct tcp_listener *tcp_listener_find(const struct tcp_lcore *tl, uint16_t port_be);
void tcp_flush_add(struct tcp_conn *c);

/* tcp_buf.c */
struct rte_mbuf *tcp_pkt_adj(struct rte_mbuf *m, uint32_t n); /* drop n < pkt_len front bytes */
void tcp_pkt_keep(struct rte_mbuf *m, uint32_t keep);         /* keep the first keep > 0 */
void tcp_mq_append(struct tcp_lcore *tl, struct tcp_mq *q, int qi, struct rte_mbuf *m);
void tcp_mq_drop_front(struct tcp_lcore *tl, struct tcp_mq *q, int qi, uint32_t n);
void tcp_mq_free(struct tcp_lcore *tl, struct tcp_mq *q, int qi);
struct rte_mbuf *tcp_mq_take(struct tcp_lcore *tl, struct tcp_mq *q, int qi, uint32_t max);
int tcp_mq_copy_out(
    const struct tcp_lcore *tl, struct tcp_mq *q, uint32_t off, uint32_t len, uint8_t *dst);
uint32_t
tcp_mq_write(struct tcp_lcore *tl, struct tcp_mq *q, int qi, const uint8_t *buf, uint32_t len);
void tcp_ooo_insert(struct tcp_conn *c, struct rte_mbuf *m, uint32_t seq);
/* [l, r) arrived twice: the next segment's first SACK block says so (RFC 2883) */
void tcp_dsack_note(struct tcp_conn *c, uint32_t l, uint32_t r);
void tcp_ooo_drain(struct tcp_conn *c); /* move what rcv_nxt reached into rcvq */
void tcp_ooo_free(struct tcp_conn *c);
uint32_t tcp_ooo_bytes(const struct tcp_conn *c);
unsigned tcp_ooo_sack_blocks(const struct tcp_conn *c, uint32_t (*blk)[2], unsigned max);

/* tcp_input.c */
void tcp_conn_input(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m);
void tcp_syn_opts_take(struct tcp_conn *c, const struct tcp_seg *s, bool we_scale);
bool tcp_challenge_ack_ok(struct tcp_conn *c);
uint32_t tcp_rcv_window(const struct tcp_conn *c);

/* tcp_connect.c */
void tcp_synsent_input(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m);

/* tcp_syncookie.c */
uint32_t tcp_cookie_make(struct tcp_lcore *tl, const struct tcp_seg *s, uint16_t *mss);
int tcp_cookie_check(struct tcp_lcore *tl, const struct tcp_seg *s, uint16_t *mss);

/* tcp_output.c */
void tcp_output(struct tcp_conn *c);
void tcp_send_ack(struct tcp_conn *c);
void tcp_send_syn(struct tcp_conn *c);
void tcp_send_synack(struct tcp_conn *c);
void
tcp_send_cookie_synack(struct tcp_lcore *tl, const struct tcp_seg *s, uint32_t iss, uint16_t mss);
void tcp_send_rst(struct tcp_conn *c);                                  /* RST at snd_nxt (abort) */
void tcp_send_rst_reply(struct tcp_lcore *tl, const struct tcp_seg *s); /* RFC 793 reply */
void tcp_send_probe(struct tcp_conn *c);     /* SEQ = SND.UNA - 1, no data: forces an ACK */
void tcp_retransmit_una(struct tcp_conn *c); /* one segment at snd_una */
int tcp_send_range(struct tcp_conn *c, uint32_t seq, uint32_t end); /* a retransmission */
uint32_t tcp_output_new(struct tcp_conn *c, uint32_t max); /* one new segment, cwnd aside */
void tcp_pmtu_apply(struct tcp_conn *c); /* MSS within the destination's path MTU (pmtu.h) */

/* tcp_recovery.c */
void tcp_rec_init(struct tcp_conn *c); /* connection established: IW, cc init */
void
tcp_rec_ack(struct tcp_conn *c, const struct tcp_seg *s, uint32_t acked, enum tcp_ack_kind kind);
void tcp_rec_rto(struct tcp_conn *c);
void tcp_rec_lt_undo(struct tcp_conn *c);
void tcp_rec_lt_dupack(struct tcp_conn *c);

/* tcp_sack.c */
int tcp_sb_pool_init(struct tcp_lcore *tl, unsigned socket);
void tcp_sb_pool_fini(struct tcp_lcore *tl);
/* c's loss-recovery block, NULL when it holds none (asked on every ACK and send: inline) */
static inline struct tcp_sb *
tcp_sb_of(const struct tcp_conn *c)
{
	return c->sb_ref != 0 ? &tcb_tl(c)->sbs[c->sb_ref - 1] : NULL;
}
uint32_t tcp_sb_flight(const struct tcp_conn *c);
void tcp_sb_release(struct tcp_conn *c);
void tcp_sb_reset(struct tcp_conn *c);      /* go-back-N: forget what is tracked */
void tcp_sb_rto(struct tcp_conn *c);        /* a timeout: SACK marks kept, unless reneged */
void tcp_sb_undo_start(struct tcp_conn *c); /* before a reduction: remember the window */
bool tcp_sb_undo(struct tcp_conn *c);       /* undo the block's remembered reduction, if any */
bool tcp_sb_room(struct tcp_conn *c);       /* may a new segment go (attaches a block if none) */
/* go-back-N after a timeout: snd_nxt past what is SACKed, *room up to the next SACKed byte;
 * returns the SACKed bytes below snd_nxt that cwnd does not count (none outside the RTO's
 * first round trip) */
uint32_t tcp_sb_skip(struct tcp_conn *c, uint32_t *room);
void tcp_sb_sent(struct tcp_conn *c, uint32_t seq, uint32_t end);
void
tcp_sb_ack(struct tcp_conn *c, const struct tcp_seg *s, uint32_t acked, enum tcp_ack_kind kind);
void tcp_sb_output(struct tcp_conn *c);     /* in recovery: PRR's share, lost segments first */
bool tcp_sb_timer_fire(struct tcp_conn *c); /* true: a TLP or reordering timer, handled */
void tcp_rexmt_arm(struct tcp_conn *c);     /* RTO, or the probe timeout when a TLP may go */

/* tcp_hystart.c: HyStart++ (RFC 9406) in the initial slow start */
#define TCP_SSTHRESH_INIT (UINT32_MAX / 2) /* "arbitrarily high" (RFC 5681 3.1) */
void tcp_hs_init(const struct tcp_conn *c, struct tcp_sb *sb);
void tcp_hs_rtt(struct tcp_sb *sb, uint32_t rtt_ms);
void tcp_hs_round(struct tcp_conn *c, struct tcp_sb *sb); /* an ACK of new data */
uint32_t tcp_ss_grow(struct tcp_conn *c, uint32_t acked); /* slow start's increase */

/* tcp_timer.c */
void tcp_timer_set(struct tcp_conn *c, int which, uint32_t delay_ms);
void tcp_timer_stop(struct tcp_conn *c, int which);
void tcp_timers_stop_all(struct tcp_conn *c);
void tcp_rexmt_restart(struct tcp_conn *c); /* arm RTO for outstanding data, or stop it */
void tcp_rtt_sample(struct tcp_conn *c, uint32_t rtt_ms);
void tcp_keep_reset(struct tcp_conn *c);
void tcp_rto_after_syn_timeout(struct tcp_conn *c); /* RFC 6298 5.7: 3 s */

#endif
