/*
 * sim_report.c: the final report of a run, summed over the workers: a human-readable block and,
 * with --json, one JSON line (the last line of stdout) for scripts. Rates are over the publishing
 * phase; connects/s over the connect phase; latencies in nanoseconds in JSON, microseconds in text.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

static double
per_s(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0;
}

static void
sum_stats(struct sim_worker *ws, uint32_t nw, struct sim_stats *st, struct sim_hist *h,
    struct sim_hist *ah)
{
	memset(st, 0, sizeof(*st));
	sim_hist_init(h);
	sim_hist_init(ah);
	for (uint32_t i = 0; i < nw; i++) {
		const struct sim_stats *w = &ws[i].st;

		st->connects += w->connects;
		st->connect_failed += w->connect_failed;
		st->dead += w->dead;
		st->pings += w->pings;
		st->dup_qos2 += w->dup_qos2;
		st->stale += w->stale;
		st->barriers += w->barriers;
		st->q0_unconfirmed += w->q0_unconfirmed;
		st->barriers_acked += w->barriers_acked;
		if (w->barrier_last_ns > st->barrier_last_ns)
			st->barrier_last_ns = w->barrier_last_ns;
		for (int q = 0; q < 3; q++) {
			st->published[q] += w->published[q];
			st->acked[q] += w->acked[q];
			st->delivered[q] += w->delivered[q];
		}
		for (int e = 0; e < SIM_ERR_COUNT; e++)
			st->err[e] += w->err[e];
		sim_hist_merge(h, &ws[i].hist);
		sim_hist_merge(ah, &ws[i].ack_hist);
	}
}

static uint64_t
total3(const uint64_t v[3])
{
	return v[0] + v[1] + v[2];
}

/* Publishing time until the broker had taken in every publish (the last barrier ack), or 0. */
static double
ingest_s(const struct sim_stats *st, const struct sim_times *t)
{
	if (st->barriers == 0 || st->barriers_acked != st->barriers ||
	    st->barrier_last_ns < t->run_t0_ns)
		return 0;
	return (double)(st->barrier_last_ns - t->run_t0_ns) / 1e9;
}

static void
print_text(const struct sim_opts *o, const struct sim_times *t, const struct sim_stats *st,
    const struct sim_hist *h, const struct sim_hist *ah, uint64_t errs)
{
	printf("sessions %u publishers + %u subscribers, %u thread(s), MQTT %s, %s:%u\n",
	    o->sessions, o->subscribers, o->threads, o->version == MQTT_V5 ? "5.0" : "3.1.1",
	    o->host, o->port);
	printf("connect: %lu connected, %lu failed in %.3f s (%.0f connects/s)\n",
	    (unsigned long)st->connects, (unsigned long)st->connect_failed, t->connect_s,
	    per_s(st->connects, t->connect_s));
	printf(
	    "run %.3f s, drain %.3f s; ingest: %lu/%lu barriers acked, all taken in after %.3f s "
	    "(%.0f msgs/s)\n",
	    t->run_s, t->drain_s, (unsigned long)st->barriers_acked, (unsigned long)st->barriers,
	    ingest_s(st, t), per_s(total3(st->published), ingest_s(st, t)));
	for (int q = 0; q < 3; q++)
		printf("  QoS %d: published %10lu (%10.0f/s)  acked %10lu (%10.0f/s)  delivered "
		       "%10lu (%10.0f/s)\n",
		    q, (unsigned long)st->published[q], per_s(st->published[q], t->run_s),
		    (unsigned long)st->acked[q], per_s(st->acked[q], t->run_s),
		    (unsigned long)st->delivered[q], per_s(st->delivered[q], t->run_s));
	printf("  all:   published %10lu (%10.0f/s)  acked %10lu (%10.0f/s)  delivered %10lu "
	       "(%10.0f/s)\n",
	    (unsigned long)total3(st->published), per_s(total3(st->published), t->run_s),
	    (unsigned long)total3(st->acked), per_s(total3(st->acked), t->run_s),
	    (unsigned long)total3(st->delivered), per_s(total3(st->delivered), t->run_s));
	printf("latency publish->delivery (us): n %lu p50 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
	    (unsigned long)h->count, sim_hist_quantile(h, 0.5) / 1e3,
	    sim_hist_quantile(h, 0.99) / 1e3, sim_hist_quantile(h, 0.999) / 1e3,
	    (h->count ? h->max : 0) / 1e3);
	printf("latency publish->PUBACK/PUBREC (us): n %lu p50 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
	    (unsigned long)ah->count, sim_hist_quantile(ah, 0.5) / 1e3,
	    sim_hist_quantile(ah, 0.99) / 1e3, sim_hist_quantile(ah, 0.999) / 1e3,
	    (ah->count ? ah->max : 0) / 1e3);
	printf("pings %lu, QoS 0 unconfirmed at the end %lu, QoS 2 id reuse before PUBREL "
	       "(duplicates by the spec, not counted) %lu, published before this run (not "
	       "counted) %lu, errors %lu\n",
	    (unsigned long)st->pings, (unsigned long)st->q0_unconfirmed,
	    (unsigned long)st->dup_qos2, (unsigned long)st->stale, (unsigned long)errs);
	for (int e = 0; e < SIM_ERR_COUNT; e++)
		if (st->err[e])
			printf("  %-16s %10lu  %s\n", sim_err_name[e], (unsigned long)st->err[e],
			    sim_err_text[e]);
}

static void
print_arr(const char *name, const uint64_t v[3])
{
	printf("\"%s\":[%lu,%lu,%lu],", name, (unsigned long)v[0], (unsigned long)v[1],
	    (unsigned long)v[2]);
}

static void
print_hist_json(const char *name, const struct sim_hist *h)
{
	printf("\"%s\":{\"count\":%lu,\"p50\":%lu,\"p99\":%lu,\"p999\":%lu,\"max\":%lu},", name,
	    (unsigned long)h->count, (unsigned long)sim_hist_quantile(h, 0.5),
	    (unsigned long)sim_hist_quantile(h, 0.99), (unsigned long)sim_hist_quantile(h, 0.999),
	    (unsigned long)(h->count ? h->max : 0));
}

static void
print_json(const struct sim_opts *o, const struct sim_times *t, const struct sim_stats *st,
    const struct sim_hist *h, const struct sim_hist *ah, uint64_t errs)
{
	printf("{\"sessions\":%u,\"subscribers\":%u,\"threads\":%u,\"mqtt\":\"%s\",", o->sessions,
	    o->subscribers, o->threads, o->version == MQTT_V5 ? "5.0" : "3.1.1");
	printf("\"connected\":%lu,\"connect_failures\":%lu,\"connect_s\":%.6f,\"connects_per_s\":%."
	       "1f,",
	    (unsigned long)st->connects, (unsigned long)st->connect_failed, t->connect_s,
	    per_s(st->connects, t->connect_s));
	printf("\"run_s\":%.6f,\"drain_s\":%.6f,\"ingest_s\":%.6f,\"ingest_per_s\":%.1f,", t->run_s,
	    t->drain_s, ingest_s(st, t), per_s(total3(st->published), ingest_s(st, t)));
	print_arr("published", st->published);
	print_arr("acked", st->acked);
	print_arr("delivered", st->delivered);
	printf("\"published_per_s\":%.1f,\"acked_per_s\":%.1f,\"delivered_per_s\":%.1f,",
	    per_s(total3(st->published), t->run_s), per_s(total3(st->acked), t->run_s),
	    per_s(total3(st->delivered), t->run_s));
	print_hist_json("latency_ns", h);
	print_hist_json("ack_latency_ns", ah);
	printf("\"pings\":%lu,\"q0_unconfirmed\":%lu,\"dup_qos2\":%lu,\"stale\":%lu,"
	       "\"errors_total\":%lu,\"errors\":{",
	    (unsigned long)st->pings, (unsigned long)st->q0_unconfirmed,
	    (unsigned long)st->dup_qos2, (unsigned long)st->stale, (unsigned long)errs);
	for (int e = 0, first = 1; e < SIM_ERR_COUNT; e++) {
		if (st->err[e] == 0)
			continue;
		printf(
		    "%s\"%s\":%lu", first ? "" : ",", sim_err_name[e], (unsigned long)st->err[e]);
		first = 0;
	}
	printf("}}\n");
}

int
sim_report(struct sim_worker *ws, uint32_t nw, const struct sim_opts *o, const struct sim_times *t)
{
	static struct sim_hist h, ah;
	struct sim_stats st;
	uint64_t errs = 0;

	sum_stats(ws, nw, &st, &h, &ah);
	for (int e = 0; e < SIM_ERR_COUNT; e++)
		errs += st.err[e];
	if (!o->quiet)
		print_text(o, t, &st, &h, &ah, errs);
	if (o->json)
		print_json(o, t, &st, &h, &ah, errs);
	fflush(stdout);
	return 0;
}
