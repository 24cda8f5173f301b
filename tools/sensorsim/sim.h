/*
 * sim.h: the simulator's run, worker and session structs, shared by sim_session.c (the MQTT
 * client state machine of one session), sim_worker.c (one thread's event loop) and sensorsim.c
 * (main: options, threads, phases, report). Counters are written by their worker only and read
 * by main while running (relaxed atomic loads and stores, plain moves on x86).
 */
#ifndef EDGEGW_SIM_H
#define EDGEGW_SIM_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mqtt_codec.h"
#include "sim_hist.h"
#include "sim_opts.h"
#include "sim_pace.h"
#include "sim_transport.h"

enum sim_err {
#define SIM_ERR(name, kind, text) SIM_ERR_##name,
#include "sim_error.def"
#undef SIM_ERR
	SIM_ERR_COUNT
};

extern const char *const sim_err_name[SIM_ERR_COUNT];
extern const char *const sim_err_text[SIM_ERR_COUNT];

#define SIM_INC(c)    __atomic_store_n(&(c), (c) + 1, __ATOMIC_RELAXED)
#define SIM_ADD(c, n) __atomic_store_n(&(c), (c) + (n), __ATOMIC_RELAXED)
#define SIM_SUB(c, n) __atomic_store_n(&(c), (c) - (n), __ATOMIC_RELAXED)
#define SIM_LOAD(c)   __atomic_load_n(&(c), __ATOMIC_RELAXED)

/* Run phases, set by main, read by the workers. */
enum sim_phase {
	SIM_PH_CONNECT,
	SIM_PH_RUN,
	SIM_PH_DRAIN,
	SIM_PH_STOP
};

struct sim_stats {
	uint64_t started;   /* sessions whose connect was started */
	uint64_t connects;  /* CONNACK accepted */
	uint64_t ready;     /* connected (and subscribed when it subscribes) */
	uint64_t ready_pub; /* of which publishers */
	uint64_t dead;      /* sessions lost (failed to connect or dropped later) */
	uint64_t connect_failed;
	uint64_t published[3];
	uint64_t acked[3];     /* [0]: QoS 0 covered by a later PINGRESP (taken in) */
	uint64_t delivered[3]; /* by the QoS they arrived with */
	uint64_t dup_qos2;     /* QoS 2 PUBLISH with an id awaiting PUBREL: a duplicate by the
				     * spec (MQTT-4.3.3), not counted; a broker reusing ids shows here */
	uint64_t stale;        /* deliveries stamped before this run began: published by an
				     * earlier run (a backlog the broker took in late), not counted */
	uint64_t inflight;     /* QoS 1/2 publishes and barriers awaiting their answer, now */
	uint64_t pings;
	uint64_t barriers, barriers_acked;
	uint64_t q0_unconfirmed;  /* QoS 0 publishes no PINGRESP covered before the session ended */
	uint64_t barrier_last_ns; /* when the last barrier was acknowledged */
	uint64_t err[SIM_ERR_COUNT];
};

/* Shared by all workers; read-only once the workers start, except phase. */
struct sim_run {
	const struct sim_opts *o;
	struct sockaddr_in dst;
	int phase; /* enum sim_phase, atomic */
	uint32_t total_sessions;
	uint32_t qos_sum;
	uint32_t in_cap, out_cap; /* per-session buffers */
	uint8_t *fill;            /* payload bytes after the stamp */
	uint64_t t0_ns; /* sim_now_ns() at the start: a stamp before it is another run's */
};

enum sim_state {
	SS_IDLE,
	SS_TCP,
	SS_CONNACK,
	SS_SUBACK,
	SS_READY,
	SS_DEAD
};

struct sim_inflight {
	uint16_t pid;
	uint8_t qos;
	uint8_t stage;    /* QoS 2: 0 awaiting PUBREC, 1 awaiting PUBCOMP */
	uint64_t sent_ns; /* when the PUBLISH was queued: the ack latency */
};

#define SIM_RECEIVE_MAX 1024u /* Receive Maximum we announce in a 5.0 CONNECT */
#define SIM_PINGS_MAX   4u    /* PINGREQs in flight per session */

struct sim_session {
	uint32_t id;
	int h;            /* transport handle */
	uint8_t state;    /* enum sim_state */
	uint8_t next_qos; /* QoS of the next publish, picked once */
	bool subscriber;  /* dedicated: never publishes */
	bool barrier_sent;
	uint8_t ping_head, n_ping; /* PINGREQs awaiting PINGRESP (a FIFO: answers come in order) */
	uint32_t q0_open;          /* QoS 0 publishes since the last PINGREQ */
	uint32_t q0_unconfirmed;   /* QoS 0 publishes not yet covered by a PINGRESP */
	struct {
		uint32_t q0;
		uint8_t barrier;
		uint64_t sent_ns;
	} ping[SIM_PINGS_MAX];
	uint32_t want;   /* SIM_EV_* currently asked of the transport */
	uint32_t window; /* min(--window, broker's receive maximum) */
	uint32_t n_fl;
	uint16_t next_pid;
	uint32_t seq;
	uint32_t n_next;
	uint32_t in_len, out_off, out_len;
	uint8_t *in, *out;
	struct sim_inflight *fl;
	uint64_t *rx_q2; /* bitmap of QoS 2 ids awaiting PUBREL (lazy) */
	uint64_t start_ns, last_tx_ns;
	struct sim_pace pace;
};

struct sim_worker {
	struct sim_run *run;
	uint32_t idx;
	pthread_t thread;
	struct sim_transport tr;
	struct sim_session *s;
	uint32_t n_s;
	uint32_t next_connect; /* next session to start */
	uint32_t scan_pos;     /* the session timer scan: where the last slice stopped */
	uint32_t handshakes;   /* sessions between connect() and ready */
	struct sim_pace connect_pace;
	uint64_t budget;      /* publishes left (count mode), UINT64_MAX otherwise */
	bool done_publishing; /* atomic: budget spent */
	uint32_t rng;
	struct mqtt_decoder dec;
	uint8_t scratch[4096];
	struct sim_stats st;
	struct sim_hist hist;
	struct sim_hist ack_hist; /* PUBLISH to its PUBACK (QoS 1) or PUBREC (QoS 2) */
};

uint64_t sim_now_ns(void);

/* sim_session.c */
int sim_session_alloc(struct sim_worker *w, struct sim_session *s, uint32_t id);
void sim_session_free(struct sim_session *s);
void sim_session_start(struct sim_worker *w, struct sim_session *s, uint64_t now);
void sim_session_event(struct sim_worker *w, struct sim_session *s, uint32_t ev, uint64_t now);
/* Timers: publish pacing, keepalive, connect timeout. */
void sim_session_tick(struct sim_worker *w, struct sim_session *s, uint64_t now, bool slow);
/* SIM_PH_STOP: DISCONNECT (best effort), close, count what never got its ack. */
void sim_session_stop(struct sim_worker *w, struct sim_session *s);

struct sim_times {
	double connect_s, run_s, drain_s;
	uint64_t run_t0_ns;
};

/* sim_report.c: sums the workers' counters and histograms, prints; returns main's exit code. */
int
sim_report(struct sim_worker *ws, uint32_t nw, const struct sim_opts *o, const struct sim_times *t);

/* sim_worker.c */
void *sim_worker_main(void *arg);

#endif
