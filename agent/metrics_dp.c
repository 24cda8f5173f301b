/*
 * metrics_dp.c: the dataplane's DPDK telemetry replies (/edgegw/counters, /status, /workers,
 * /mem, /broker, /dpchan) turned into Prometheus families: edgegw_dataplane_* for the packet
 * path and TCP, edgegw_broker_* for the MQTT broker, edgegw_dataplane_dpchan_* for its end of
 * the channel to the agent, per-worker figures with an lcore label. Keys the
 * dataplane adds later appear without a change here (a counter of /counters or /broker becomes
 * NAME_total, a key of /status or /mem a gauge).
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "tel_client.h"

static const char *const dp_commands[] = { "/edgegw/counters", "/edgegw/describe", "/edgegw/kinds",
	"/edgegw/status", "/edgegw/workers", "/edgegw/mem", "/edgegw/broker",
	"/edgegw/broker_describe", "/edgegw/broker_kinds", "/edgegw/dpchan",
	"/edgegw/dpchan_describe", "/edgegw/dpchan_kinds" };

void
metrics_dp_read(struct metrics_dp *s, const char *sock_path, int timeout_ms)
{
	json_t **slot[] = { &s->counters, &s->describe, &s->kinds, &s->status, &s->workers, &s->mem,
		&s->broker, &s->broker_describe, &s->broker_kinds, &s->dpchan, &s->dpchan_describe,
		&s->dpchan_kinds };
	struct tel_conn c;
	char err[256];

	memset(s, 0, sizeof(*s));
	if (tel_open(&c, sock_path, timeout_ms, err, sizeof(err)) != 0)
		return;
	s->up = true;
	for (size_t i = 0; i < sizeof(slot) / sizeof(slot[0]) && c.fd >= 0; i++)
		*slot[i] = tel_query(&c, dp_commands[i], err, sizeof(err));
	/* a socket that greets but answers nothing, or stops answering in time (tel_query
	 * closed it), is a dataplane that is not serving: up 0, not some families missing */
	if (c.fd < 0 || (s->counters == NULL && s->status == NULL)) {
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "metrics: dataplane telemetry %s: %s", sock_path,
		    c.fd < 0 ? err : "no counters, no status");
		metrics_dp_free(s);
		s->up = false;
	}
	tel_close(&c);
}

void
metrics_dp_free(struct metrics_dp *s)
{
	json_t *all[] = { s->counters, s->describe, s->kinds, s->status, s->workers, s->mem,
		s->broker, s->broker_describe, s->broker_kinds, s->dpchan, s->dpchan_describe,
		s->dpchan_kinds };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		json_decref(all[i]);
	memset(s, 0, sizeof(*s));
}

/* The help text of a counter: describe may map a name to a string or to {"help": ...}. */
static const char *
help_of(json_t *describe, const char *key)
{
	json_t *d = json_object_get(describe, key);

	if (json_is_object(d))
		d = json_object_get(d, "help");
	return json_is_string(d) ? json_string_value(d) : NULL;
}

static double
num(json_t *v)
{
	return json_is_integer(v) ? (double)json_integer_value(v) : json_number_value(v);
}

/* One family per key of a flat dict of counters; its kind (the table's KIND column, from
 * /edgegw/kinds) gives the TYPE and the class label; "info" when the dataplane has no kinds. */
static void
render_counters(FILE *f, json_t *dict, json_t *describe, json_t *kinds, const char *prefix)
{
	const char *key;
	json_t *v;
	char name[160], help[300];
	double scale;

	json_object_foreach(dict, key, v)
	{
		const char *h = help_of(describe, key);
		const char *kind = json_string_value(json_object_get(kinds, key));
		bool gauge;

		kind = kind ? kind : "info";
		gauge = strcmp(kind, "gauge") == 0;
		prom_name(name, sizeof(name), prefix, key, gauge ? "" : "_total", &scale);
		if (h == NULL) {
			snprintf(help, sizeof(help), "%s counter %s", prefix, key);
			h = help;
		}
		prom_family(f, name, gauge ? "gauge" : "counter", h);
		prom_sample(f, name, gauge ? NULL : (const char *const[]){ "class", kind, NULL },
		    num(v) * scale);
	}
}

static void
render_gauge(FILE *f, const char *prefix, const char *key, json_t *v, const char *help)
{
	char name[160];
	double scale;

	prom_name(name, sizeof(name), prefix, key, "", &scale);
	prom_family(f, name, "gauge", help);
	prom_sample(f, name, NULL, num(v) * scale);
}

static void
render_status(FILE *f, json_t *status)
{
	const char *key;
	json_t *v;

	json_object_foreach(status, key, v)
	{
		if (strcmp(key, "link_speed_mbps") == 0) {
			prom_family(f, "edgegw_dataplane_link_speed_bytes", "gauge",
			    "link speed in bytes per second");
			prom_sample(
			    f, "edgegw_dataplane_link_speed_bytes", NULL, num(v) * 125000.0);
			continue;
		}
		render_gauge(f, "edgegw_dataplane_", key, v, NULL);
	}
}

/* /edgegw/workers: w<i>_<field>; one family per field, the worker's lcore as a label. */
static void
render_workers(FILE *f, json_t *w)
{
	static const struct {
		const char *field, *name, *type, *help;
	} fields[] = {
		{ "rx_pkts", "edgegw_dataplane_worker_rx_packets_total", "counter",
		    "frames received by this worker" },
		{ "tx_pkts", "edgegw_dataplane_worker_tx_packets_total", "counter",
		    "frames sent by this worker" },
		{ "tcp_accepted", "edgegw_dataplane_worker_tcp_accepted_total", "counter",
		    "TCP connections this worker accepted" },
		{ "tcp_flows", "edgegw_dataplane_worker_tcp_flows", "gauge",
		    "TCP flows this worker holds" },
	};
	char key[64], lcore[16], queue[16];

	for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
		prom_family(f, fields[k].name, fields[k].type, fields[k].help);
		for (unsigned i = 0;; i++) {
			json_t *v;

			snprintf(key, sizeof(key), "w%u_lcore", i);
			if (json_object_get(w, key) == NULL)
				break;
			snprintf(lcore, sizeof(lcore), "%lld",
			    (long long)json_integer_value(json_object_get(w, key)));
			snprintf(key, sizeof(key), "w%u_queue", i);
			snprintf(queue, sizeof(queue), "%lld",
			    (long long)json_integer_value(json_object_get(w, key)));
			snprintf(key, sizeof(key), "w%u_%s", i, fields[k].field);
			v = json_object_get(w, key);
			if (v != NULL)
				prom_sample_u64(f, fields[k].name,
				    (const char *const[]){ "lcore", lcore, "queue", queue, NULL },
				    (unsigned long long)json_integer_value(v));
		}
	}
}

/* /edgegw/mem: gauges; state_<s> as one family with a state label; mqtt_* are the broker's. */
static void
render_mem(FILE *f, json_t *mem)
{
	const char *key;
	json_t *v;
	bool states = false;

	json_object_foreach(mem, key, v)
	{
		if (strncmp(key, "state_", 6) == 0) {
			if (!states)
				prom_family(f, "edgegw_dataplane_tcp_flows_by_state", "gauge",
				    "TCP flows in each state, over the workers");
			states = true;
			prom_sample(f, "edgegw_dataplane_tcp_flows_by_state",
			    (const char *const[]){ "state", key + 6, NULL }, num(v));
		}
	}
	json_object_foreach(mem, key, v)
	{
		if (strncmp(key, "state_", 6) == 0 || strcmp(key, "mbufs_in_use") == 0)
			continue; /* mbufs_in_use: in /edgegw/status already */
		if (strncmp(key, "mqtt_", 5) == 0)
			render_gauge(f, "edgegw_broker_", key + 5, v, NULL);
		else
			render_gauge(f, "edgegw_dataplane_mem_", key, v, NULL);
	}
}

void
metrics_dp_render(const struct metrics_dp *s, FILE *f)
{
	prom_family(f, "edgegw_dataplane_up", "gauge",
	    "1 when the dataplane's telemetry socket answered this scrape, 0 otherwise");
	prom_sample_u64(f, "edgegw_dataplane_up", NULL, s->up ? 1 : 0);
	if (!s->up)
		return;
	if (s->counters != NULL)
		render_counters(f, s->counters, s->describe, s->kinds, "edgegw_dataplane_");
	if (s->status != NULL)
		render_status(f, s->status);
	if (s->workers != NULL)
		render_workers(f, s->workers);
	if (s->mem != NULL)
		render_mem(f, s->mem);
	if (s->broker != NULL)
		render_counters(
		    f, s->broker, s->broker_describe, s->broker_kinds, "edgegw_broker_");
	if (s->dpchan != NULL)
		render_counters(
		    f, s->dpchan, s->dpchan_describe, s->dpchan_kinds, "edgegw_dataplane_dpchan_");
}
