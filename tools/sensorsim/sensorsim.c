/*
 * sensorsim.c: edgegw-sensorsim, the MQTT load generator and sensor simulator. main parses the
 * options, spreads the sessions over worker threads (sim_worker.c), walks the run through its
 * phases (connect all, publish for a duration or a count, drain acks and deliveries, stop) and
 * prints the report: human-readable, and one JSON line with --json. SIGINT/SIGTERM end the
 * publishing phase (a second one stops at once). See docs/sensorsim.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"
#include "sim_transport_memif.h"

const char *const sim_err_name[SIM_ERR_COUNT] = {
#define SIM_ERR(name, kind, text) #name,
#include "sim_error.def"
#undef SIM_ERR
};
const char *const sim_err_text[SIM_ERR_COUNT] = {
#define SIM_ERR(name, kind, text) text,
#include "sim_error.def"
#undef SIM_ERR
};

static volatile sig_atomic_t signals_seen;

static void
on_signal(int sig)
{
	(void)sig;
	signals_seen++;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Sum of one counter over the workers, read while they run. */
static uint64_t
sum_at(const struct sim_worker *ws, uint32_t n, size_t off)
{
	uint64_t s = 0;

	for (uint32_t i = 0; i < n; i++)
		s += __atomic_load_n(
		    (const uint64_t *)((const char *)&ws[i].st + off), __ATOMIC_RELAXED);
	return s;
}

#define SUM(ws, n, field) sum_at((ws), (n), offsetof(struct sim_stats, field))

static int
raise_fd_limit(uint32_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max < need + 1024 ? rl.rlim_max : need + 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need) {
		fprintf(stderr,
		    "edgegw-sensorsim: %u sessions need %u descriptors, the limit is %lu "
		    "(raise ulimit -n)\n",
		    need - 64, need, (unsigned long)rl.rlim_cur);
		return -EMFILE;
	}
	return 0;
}

static int
run_init(struct sim_run *r, const struct sim_opts *o)
{
	uint32_t max_pkt = o->payload + SIM_MAX_TOPIC + 64;

	memset(r, 0, sizeof(*r));
	r->o = o;
	r->dst.sin_family = AF_INET;
	r->dst.sin_port = htons(o->port);
	inet_pton(AF_INET, o->host, &r->dst.sin_addr);
	r->total_sessions = o->sessions + o->subscribers;
	r->qos_sum = o->qos_weight[0] + o->qos_weight[1] + o->qos_weight[2];
	r->in_cap = 8192 + max_pkt;
	r->out_cap = 8192 + 2 * max_pkt;
	r->t0_ns = sim_now_ns();
	r->fill = malloc(o->payload + 1);
	if (r->fill == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->payload; i++)
		r->fill[i] = (uint8_t)('a' + i % 26);
	return 0;
}

static int
worker_init(struct sim_worker *w, struct sim_run *r, uint32_t idx, uint32_t first, uint32_t n)
{
	const struct sim_opts *o = r->o;
	uint64_t now = sim_now_ns();

	memset(w, 0, sizeof(*w));
	w->run = r;
	w->idx = idx;
	w->tr.ops = o->transport == SIM_TR_MEMIF ? &sim_transport_memif : &sim_transport_kernel;
	w->tr.fd = -1;
	w->rng = 2463534242u ^ (idx * 2654435761u);
	sim_hist_init(&w->hist);
	sim_hist_init(&w->ack_hist);
	mqtt_decoder_init(
	    &w->dec, MQTT_ROLE_CLIENT, o->version, r->in_cap, w->scratch, sizeof(w->scratch));
	sim_pace_init(&w->connect_pace, o->connect_rate / o->threads, 8, now);
	w->budget = UINT64_MAX;
	if (o->count > 0) {
		/* The share of this worker's publishers (ids below o->sessions); sums to count. */
		uint64_t p0 = first < o->sessions ? first : o->sessions;
		uint64_t p1 = first + n < o->sessions ? first + n : o->sessions;

		w->budget = o->sessions == 0
		    ? 0
		    : (uint64_t)((unsigned __int128)o->count * p1 / o->sessions -
			  (unsigned __int128)o->count * p0 / o->sessions);
	}
	if (w->budget == 0)
		w->done_publishing = true;
	if (w->tr.ops->open(&w->tr) < 0)
		return -errno;
	w->s = calloc(n ? n : 1, sizeof(*w->s));
	if (w->s == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		if (sim_session_alloc(w, &w->s[i], first + i) < 0)
			return -ENOMEM;
		w->n_s++;
	}
	return 0;
}

static void
worker_free(struct sim_worker *w)
{
	for (uint32_t i = 0; i < w->n_s; i++)
		sim_session_free(&w->s[i]);
	free(w->s);
	if (w->tr.ops != NULL)
		w->tr.ops->destroy(&w->tr);
}

static void
set_phase(struct sim_run *r, enum sim_phase ph)
{
	__atomic_store_n(&r->phase, (int)ph, __ATOMIC_RELAXED);
}

static double
secs_since(uint64_t t0)
{
	return (double)(sim_now_ns() - t0) / 1e9;
}

/*
 * Connect phase: until every session is ready or lost. Each session times out on its own
 * (--connect-timeout from its start), so this ends; the bound here only guards against a bug,
 * and waits longer while --connect-rate is still starting sessions.
 */
static void
phase_connect(struct sim_worker *ws, uint32_t nw, const struct sim_opts *o, uint32_t total,
    struct sim_times *t)
{
	uint64_t t0 = sim_now_ns(), last_start = t0, started = 0;

	while (!signals_seen && secs_since(last_start) < o->connect_timeout_s + 1) {
		uint64_t n = SUM(ws, nw, started);

		if (n != started) {
			started = n;
			last_start = sim_now_ns();
		}
		if (SUM(ws, nw, ready) + SUM(ws, nw, dead) >= total)
			break;
		sleep_ms(2);
	}
	t->connect_s = secs_since(t0);
}

static bool
all_done_publishing(const struct sim_worker *ws, uint32_t nw)
{
	for (uint32_t i = 0; i < nw; i++)
		if (!__atomic_load_n(&ws[i].done_publishing, __ATOMIC_RELAXED))
			return false;
	return true;
}

static void
phase_run(struct sim_worker *ws, uint32_t nw, const struct sim_opts *o, struct sim_times *t)
{
	uint64_t t0 = sim_now_ns();
	int seen = signals_seen;

	t->run_t0_ns = t0;
	set_phase(ws[0].run, SIM_PH_RUN);
	while (signals_seen == seen) {
		double el = secs_since(t0);

		if (o->no_publish ? el >= o->duration_s
				  : (o->duration_s > 0 && el >= o->duration_s) ||
			    (o->count > 0 && all_done_publishing(ws, nw)) ||
			    (o->count > 0 && SUM(ws, nw, ready_pub) == 0))
			break; /* (no publisher left to spend the count) */
		sleep_ms(1);
	}
	t->run_s = secs_since(t0);
}

/* Drain: until nothing is in flight and deliveries stopped for 200 ms, or --drain is over. */
static void
phase_drain(struct sim_worker *ws, uint32_t nw, const struct sim_opts *o, struct sim_times *t)
{
	uint64_t t0 = sim_now_ns(), quiet_since = t0, last = UINT64_MAX;
	int seen = signals_seen;

	set_phase(ws[0].run, SIM_PH_DRAIN);
	while (signals_seen == seen && secs_since(t0) < o->drain_s) {
		uint64_t d = SUM(ws, nw, delivered[0]) + SUM(ws, nw, delivered[1]) +
		    SUM(ws, nw, delivered[2]);

		if (d != last) {
			last = d;
			quiet_since = sim_now_ns();
		}
		if (SUM(ws, nw, inflight) == 0 && secs_since(quiet_since) >= 0.2)
			break;
		sleep_ms(5);
	}
	t->drain_s = secs_since(t0);
}

int
main(int argc, char **argv)
{
	static struct sim_opts o;
	static struct sim_worker ws[SIM_MAX_THREADS];
	struct sim_run run;
	struct sim_times times = { 0 };
	uint32_t nw, total, first = 0;
	int rc;

	sim_opts_defaults(&o);
	rc = sim_opts_parse(&o, argc, argv);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	total = o.sessions + o.subscribers;
	nw = o.threads < total ? o.threads : total;
	o.threads = nw;
	/* sockets need descriptors; the memif transport's flows do not */
	if ((o.transport == SIM_TR_KERNEL && raise_fd_limit(total + 64) < 0) ||
	    run_init(&run, &o) < 0)
		return 1;
	if (o.transport == SIM_TR_MEMIF) {
		if (sim_memif_init(&o, total, run.dst.sin_addr.s_addr) < 0)
			return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	for (uint32_t i = 0; i < nw; i++) {
		uint32_t n = total / nw + (i < total % nw ? 1 : 0);

		if ((rc = worker_init(&ws[i], &run, i, first, n)) < 0) {
			fprintf(stderr, "edgegw-sensorsim: worker %u: %s\n", i, strerror(-rc));
			return 1;
		}
		first += n;
	}
	for (uint32_t i = 0; i < nw; i++)
		pthread_create(&ws[i].thread, NULL, sim_worker_main, &ws[i]);
	phase_connect(ws, nw, &o, total, &times);
	/* Scripts wait for this line to sample the broker with every session connected. */
	fprintf(stderr, "edgegw-sensorsim: connect phase over: %lu ready, %lu lost in %.3f s\n",
	    (unsigned long)SUM(ws, nw, ready), (unsigned long)SUM(ws, nw, dead), times.connect_s);
	if (!signals_seen)
		phase_run(ws, nw, &o, &times);
	if (signals_seen < 2)
		phase_drain(ws, nw, &o, &times);
	set_phase(&run, SIM_PH_STOP);
	for (uint32_t i = 0; i < nw; i++)
		pthread_join(ws[i].thread, NULL);
	rc = sim_report(ws, nw, &o, &times);
	for (uint32_t i = 0; i < nw; i++)
		worker_free(&ws[i]);
	sim_memif_fini();
	free(run.fill);
	return rc;
}
