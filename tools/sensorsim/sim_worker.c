/*
 * sim_worker.c: one worker thread: its own poller (epoll) over its slice of the sessions, a
 * paced trickle of new connects (at most SIM_HANDSHAKES_MAX in progress over all threads, so a
 * listen backlog is not flooded into SYN retries), and a timer scan for publish pacing,
 * keepalives and timeouts.
 * Phases come from main (sim.h); on SIM_PH_STOP every session is closed and the thread returns.
 */
#include <signal.h>
#include <stdlib.h>

#include "sim.h"

/* Handshakes in progress, all threads together: below a common listen backlog (Mosquitto: 100),
 * past which SYNs are dropped and retried a second later. */
#define SIM_HANDSHAKES_MAX 64u
#define SLOW_TICK_NS       100000000ull /* timeouts and keepalives: every 100 ms */

static int
phase(const struct sim_worker *w)
{
	return __atomic_load_n(&w->run->phase, __ATOMIC_RELAXED);
}

static void
start_connects(struct sim_worker *w, uint64_t now)
{
	uint32_t max = SIM_HANDSHAKES_MAX / w->run->o->threads;

	while (w->next_connect < w->n_s && w->handshakes < (max ? max : 1) &&
	    sim_pace_take(&w->connect_pace, now))
		sim_session_start(w, &w->s[w->next_connect++], now);
}

/* Poll timeout: 1 ms while something is paced, else 10 ms (phase changes, timers). */
static int
poll_ms(const struct sim_worker *w)
{
	const struct sim_opts *o = w->run->o;

	if (w->next_connect < w->n_s || (phase(w) == SIM_PH_RUN && o->rate > 0 && !o->no_publish))
		return 1;
	return 10;
}

/*
 * Timers (publish pacing, keepalive, connect timeouts): a few thousand sessions are scanned
 * whole each period; a larger crowd a sixteenth at a time, so 100,000 sessions do not keep the
 * thread from its poller for milliseconds every millisecond (pacing then lags by at most 16
 * periods; keepalive and timeouts are seconds).
 */
#define SCAN_WHOLE 4096u

static void
scan(struct sim_worker *w, uint64_t now, bool slow)
{
	uint32_t n = w->next_connect, slice = n <= SCAN_WHOLE ? n : n / 16 + 256;

	if (n > SCAN_WHOLE)
		slow = true; /* each session is visited a sixteenth as often */
	for (uint32_t k = 0; k < slice; k++) {
		if (w->scan_pos >= n)
			w->scan_pos = 0;
		sim_session_tick(w, &w->s[w->scan_pos++], now, slow);
	}
}

static void
worker_loop(struct sim_worker *w)
{
	struct sim_event ev[256];
	uint64_t last_slow = 0, last_scan = 0;

	while (phase(w) != SIM_PH_STOP) {
		uint64_t now = sim_now_ns();
		bool slow = now - last_slow >= SLOW_TICK_NS;
		int n;

		start_connects(w, now);
		n = w->tr.ops->poll(&w->tr, ev, 256, poll_ms(w));
		now = sim_now_ns();
		for (int i = 0; i < n; i++)
			sim_session_event(w, ev[i].ctx, ev[i].events, now);
		if (now - last_scan < (uint64_t)poll_ms(w) * 1000000ull)
			continue; /* a busy loop scans its sessions at most once per poll period */
		scan(w, now, slow);
		last_scan = now;
		if (slow)
			last_slow = now;
	}
}

void *
sim_worker_main(void *arg)
{
	struct sim_worker *w = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals go to main */
	worker_loop(w);
	for (uint32_t i = 0; i < w->n_s; i++)
		sim_session_stop(w, &w->s[i]);
	return NULL;
}
