/*
 * stats.c: the stats JSON file and the SIGUSR1 log dump. Bus totals are sums of the device
 * counters (except the lateness max, which is a max); utilisation is bus-busy time over
 * uptime. The file is replaced atomically so a reader never sees half of it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "clock.h"
#include "dpchan_link.h"
#include "stats.h"
#include "log.h"

const char *const agent_dev_counter_names[] = {
#define AGENT_DEV_COUNTER(n, k, d) #n,
#include "stats.def"
#undef AGENT_DEV_COUNTER
};

const char *const agent_dev_counter_help[] = {
#define AGENT_DEV_COUNTER(n, k, d) d,
#include "stats.def"
#undef AGENT_DEV_COUNTER
};

const enum counter_kind agent_dev_counter_kind[] = {
#define AGENT_DEV_COUNTER(n, k, d) COUNTER_KIND_##k,
#include "stats.def"
#undef AGENT_DEV_COUNTER
};

static void
bus_totals(const struct mb_bus *b, uint64_t *tot)
{
	struct mb_bus_info bi;

	mb_bus_info(b, &bi);
	memset(tot, 0, AGENT_DC_COUNT * sizeof(*tot));
	for (size_t d = 0; d < bi.ndevs; d++)
		for (int c = 0; c < AGENT_DC_COUNT; c++) {
			uint64_t v =
			    agent_stat_get(mb_bus_dev_stats_ro(b, d), (enum agent_dev_counter)c);

			if (c == AGENT_DC_lateness_ms_max)
				tot[c] = v > tot[c] ? v : tot[c];
			else
				tot[c] += v;
		}
}

static void
counters_json(FILE *f, const uint64_t *v)
{
	for (int c = 0; c < AGENT_DC_COUNT; c++)
		fprintf(f, "%s\"%s\":%llu", c ? "," : "", agent_dev_counter_names[c],
		    (unsigned long long)v[c]);
}

static void
bus_json(const struct mb_bus *b, FILE *f)
{
	struct mb_bus_info bi;
	uint64_t tot[AGENT_DC_COUNT], v[AGENT_DC_COUNT];

	mb_bus_info(b, &bi);
	bus_totals(b, tot);
	fprintf(f,
	    "{\"name\":\"%s\",\"state\":\"%s\",\"faults\":%llu,\"connected\":%s,"
	    "\"connect_errors\":%llu,\"uptime_ms\":%llu,\"busy_ms\":%llu,\"utilisation\":%.4f,",
	    bi.name, bi.fault ? "fault" : "ok", (unsigned long long)bi.faults,
	    bi.connected ? "true" : "false", (unsigned long long)bi.connect_errors,
	    (unsigned long long)(bi.uptime_us / 1000), (unsigned long long)(bi.busy_us / 1000),
	    bi.uptime_us ? (double)bi.busy_us / (double)bi.uptime_us : 0.0);
	counters_json(f, tot);
	fputs(",\"devices\":[", f);
	for (size_t d = 0; d < bi.ndevs; d++) {
		struct mb_bus_dev_info di;

		mb_bus_dev_info(b, d, &di);
		for (int c = 0; c < AGENT_DC_COUNT; c++)
			v[c] = agent_stat_get(mb_bus_dev_stats_ro(b, d), (enum agent_dev_counter)c);
		fprintf(f,
		    "%s{\"name\":\"%s\",\"unit_id\":%u,\"state\":\"%s\",\"interval_ms\":%llu,"
		    "\"backoff_ms\":%llu,\"reads_per_poll\":%zu,",
		    d ? "," : "", di.name, di.unit_id, di.failing ? "backoff" : "ok",
		    (unsigned long long)di.interval_ms, (unsigned long long)di.backoff_ms,
		    di.nblocks);
		counters_json(f, v);
		fputc('}', f);
	}
	fputs("]}", f);
}

/* The cloud link's counters (uplink_stats.def) as "link":{...}, when the backend has them. */
static void
link_json(const struct uplink_stats *us, FILE *f)
{
	if (!us->has_link)
		return;
	fputs(",\"link\":{", f);
	for (int i = 0; i < UPLINK_C_COUNT; i++)
		fprintf(f, "%s\"%s\":%llu", i ? "," : "", uplink_counter_names[i],
		    (unsigned long long)us->link[i]);
	fputc('}', f);
}

/* A reason is the agent's own text with a file path in it: escape what JSON needs. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned)(unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* Devices whose profile is bad or missing: they do not run, and are listed apart. */
static void
disabled_json(const struct agent_config *c, FILE *f)
{
	bool first = true;
	char state[600];

	fprintf(f, "\"devices_disabled\":%zu,\"disabled_devices\":[", c->ndisabled);
	for (size_t i = 0; i < c->nbuses; i++)
		for (size_t j = 0; j < c->buses[i].noff; j++) {
			const struct agent_device_conf *d = &c->buses[i].off[j];

			fprintf(f, "%s{\"bus\":\"%s\",\"name\":\"%s\",\"unit_id\":%u,\"profile\":",
			    first ? "" : ",", c->buses[i].name, d->name, d->unit_id);
			json_str(f, d->profile_name);
			snprintf(state, sizeof(state), "disabled: %s", d->disabled);
			fputs(",\"state\":", f);
			json_str(f, state);
			fputs(",\"reason\":", f);
			json_str(f, d->disabled);
			fputc('}', f);
			first = false;
		}
	fputc(']', f);
}

/* The store's counters (store_stats.def) and the spool's (spool_counters.def) as
 * "store":{...,"spool":{...}}. */
static void
store_json(const struct store_stats *ss, FILE *f)
{
	fputs(",\"store\":{", f);
	for (int i = 0; i < STORE_C_COUNT; i++)
		fprintf(f, "%s\"%s\":%llu", i ? "," : "", store_counter_names[i],
		    (unsigned long long)ss->c[i]);
	if (ss->has_spool) {
		fputs(",\"spool\":{", f);
		for (int i = 0; i < SPOOL_C_N; i++)
			fprintf(f, "%s\"%s\":%llu", i ? "," : "",
			    spool_counter_name((enum spool_counter)i),
			    (unsigned long long)ss->spool[i]);
		fprintf(f, ",\"oldest_ms\":%llu", (unsigned long long)ss->oldest_ms);
		fputc('}', f);
	}
	fputc('}', f);
}

/* The dataplane channel's server counters (lib/dpchan/dpchan_counters.def):
 * "dpchan":{"connected":lcores,"CONNECTS":n,...}; absent when the channel is off. */
static void
chan_json(const struct agent *a, FILE *f)
{
	if (!a->has_chan_snap)
		return;
	fprintf(f, ",\"dpchan\":{\"connected\":%u", a->chan_conns_snap);
	for (int c = 0; c < DPCHAN_C_COUNT; c++)
		fprintf(f, ",\"%s\":%llu", dpchan_counter_name((enum dpchan_counter)c),
		    (unsigned long long)a->chan_snap[c]);
	fputc('}', f);
}

void
agent_stats_json(const struct agent *a, FILE *f)
{
	const struct uplink_stats us = a->up_snap;

	fprintf(f,
	    "{\"pid\":%d,\"ts_ms\":%llu,\"uptime_ms\":%llu,\"queue_dropped\":%llu,\"commands_"
	    "rejected\":%llu,"
	    "\"uplink\":{\"connected\":%s,\"submitted\":%llu,\"sent\":%llu,\"acked\":%llu,"
	    "\"dropped\":%llu,\"resent\":%llu,\"queued\":%llu,\"connects\":%llu,\"disconnects\":%"
	    "llu,"
	    "\"commands\":%llu",
	    (int)getpid(), (unsigned long long)clock_wall_ms(),
	    (unsigned long long)(clock_mono_ms() - a->started_ms),
	    (unsigned long long)__atomic_load_n(&a->q.dropped, __ATOMIC_RELAXED),
	    (unsigned long long)a->cmd_rejected_snap, us.connected ? "true" : "false",
	    (unsigned long long)us.submitted, (unsigned long long)us.sent,
	    (unsigned long long)us.acked, (unsigned long long)us.dropped,
	    (unsigned long long)us.resent, (unsigned long long)us.queued,
	    (unsigned long long)us.connects, (unsigned long long)us.disconnects,
	    (unsigned long long)us.commands);
	link_json(&us, f);
	fputc('}', f);
	store_json(&a->store_snap, f);
	chan_json(a, f);
	fputs(",\"buses\":[", f);
	for (size_t i = 0; i < a->nbuses; i++) {
		if (i)
			fputc(',', f);
		bus_json(a->buses[i], f);
	}
	fputs("],", f);
	disabled_json(&a->cfg, f);
	fputs("}\n", f);
}

int
agent_stats_write_file(const struct agent *a, const char *path)
{
	char tmp[600];
	FILE *f;
	int rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		return -errno;
	agent_stats_json(a, f);
	if (fclose(f) != 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* One line with the cloud link's counters that are not zero. */
static void
link_log(const struct agent *a)
{
	struct uplink_stats us = { 0 };
	char line[2048];
	size_t n = 0;

	if (a->up == NULL)
		return;
	uplink_get_stats(a->up, &us);
	if (!us.has_link)
		return;
	line[0] = '\0';
	for (int i = 0; i < UPLINK_C_COUNT && n < sizeof(line) - 64; i++)
		if (us.link[i] != 0)
			n += (size_t)snprintf(line + n, sizeof(line) - n, " %s %llu",
			    uplink_counter_names[i], (unsigned long long)us.link[i]);
	log_info("stats: uplink %s queued %llu%s", us.connected ? "up" : "down",
	    (unsigned long long)us.queued, line);
}

void
agent_stats_snapshot(struct agent *a)
{
	pthread_mutex_lock(&a->stats_lock);
	if (a->up != NULL)
		uplink_get_stats(a->up, &a->up_snap);
	if (a->store != NULL)
		store_get_stats(a->store, &a->store_snap);
	a->has_chan_snap = a->chan != NULL;
	if (a->chan != NULL) {
		const struct dpchan_server *sv = dpchan_link_server(a->chan);

		a->chan_conns_snap = dpchan_server_connected(sv);
		for (int c = 0; c < DPCHAN_C_COUNT; c++)
			a->chan_snap[c] = dpchan_server_counter(sv, (enum dpchan_counter)c);
	}
	a->cmd_rejected_snap = a->cmd_rejected;
	pthread_mutex_unlock(&a->stats_lock);
}

void
agent_stats_log(const struct agent *a)
{
	uint64_t tot[AGENT_DC_COUNT];

	for (size_t i = 0; i < a->nbuses; i++) {
		struct mb_bus_info bi;

		mb_bus_info(a->buses[i], &bi);
		bus_totals(a->buses[i], tot);
		log_info(
		    "stats: bus %s utilisation %.1f%% requests %llu responses %llu timeouts %llu "
		    "crc_errors %llu bad_frames %llu exceptions %llu late_polls %llu "
		    "lateness_ms_max %llu",
		    bi.name, bi.uptime_us ? 100.0 * (double)bi.busy_us / (double)bi.uptime_us : 0.0,
		    (unsigned long long)tot[AGENT_DC_requests],
		    (unsigned long long)tot[AGENT_DC_responses],
		    (unsigned long long)tot[AGENT_DC_timeouts],
		    (unsigned long long)tot[AGENT_DC_crc_errors],
		    (unsigned long long)tot[AGENT_DC_bad_frames],
		    (unsigned long long)tot[AGENT_DC_exceptions],
		    (unsigned long long)tot[AGENT_DC_late_polls],
		    (unsigned long long)tot[AGENT_DC_lateness_ms_max]);
		for (size_t d = 0; d < bi.ndevs; d++) {
			const struct agent_dev_stats *s = mb_bus_dev_stats_ro(a->buses[i], d);
			struct mb_bus_dev_info di;

			mb_bus_dev_info(a->buses[i], d, &di);
			log_info("stats: device %s/%s %s polls %llu requests %llu responses %llu "
				 "timeouts %llu "
				 "crc_errors %llu bad_frames %llu exceptions %llu published %llu",
			    bi.name, di.name, di.failing ? "backoff" : "ok",
			    (unsigned long long)agent_stat_get(s, AGENT_DC_polls),
			    (unsigned long long)agent_stat_get(s, AGENT_DC_requests),
			    (unsigned long long)agent_stat_get(s, AGENT_DC_responses),
			    (unsigned long long)agent_stat_get(s, AGENT_DC_timeouts),
			    (unsigned long long)agent_stat_get(s, AGENT_DC_crc_errors),
			    (unsigned long long)agent_stat_get(s, AGENT_DC_bad_frames),
			    (unsigned long long)agent_stat_get(s, AGENT_DC_exceptions),
			    (unsigned long long)agent_stat_get(s, AGENT_DC_published));
		}
	}
	link_log(a);
}
