/*
 * metrics.c: the agent's HTTP endpoint (see metrics.h): libmicrohttpd on its own thread,
 * GET /metrics (the agent's families, then the dataplane's from its telemetry socket) and
 * GET /stats (the agent's stats JSON). At most a few connections at once: it is scraped by one
 * Prometheus and read by edgegwctl, not served to the world.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "agent.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "stats.h"

#define METRICS_TEL_TIMEOUT_MS 1000
#define METRICS_MAX_CONNS      8

struct agent_metrics {
	struct agent *a;
	struct MHD_Daemon *d;
	char tel_path[256];
};

/* libmicrohttpd's own errors (a client that resets, the connection limit reached): counted and
 * logged through ours, rate-limited; its default wrote one raw stderr line per connection. */
static uint64_t http_errors;

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];

	(void)cls;
	__atomic_fetch_add(&http_errors, 1, __ATOMIC_RELAXED);
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\r\n")] = '\0';
	LOG_RATELIMITED(LOG_LVL_WARN, 60, "metrics: http: %s", line);
}

static void
agent_family(FILE *f, const char *name, const char *type, const char *help, double v)
{
	prom_family(f, name, type, help);
	prom_sample(f, name, NULL, v);
}

/* The MQTT uplink's link counters (uplink_stats.def): TYPE and class from their KIND. */
static void
render_uplink_link(const struct uplink_stats *u, FILE *f)
{
	char name[160];
	double scale;

	if (!u->has_link)
		return;
	for (int c = 0; c < UPLINK_C_COUNT; c++) {
		bool gauge = counter_kind_is_gauge(uplink_counter_kind[c]);
		const char *const cls[] = { "class", counter_kind_name(uplink_counter_kind[c]),
			NULL };

		prom_name(name, sizeof(name), "edgegw_agent_uplink_link_", uplink_counter_names[c],
		    gauge ? "" : "_total", &scale);
		prom_family(f, name, gauge ? "gauge" : "counter", uplink_counter_help[c]);
		prom_sample(f, name, gauge ? NULL : cls, (double)u->link[c] * scale);
	}
}

/* The store's counters (store_stats.def, TYPE and class from their KIND) and the spool's
 * (spool_counters.def: COUNTER or GAUGE). */
static void
render_store(const struct store_stats *s, FILE *f)
{
	char name[160];
	double scale;

	for (int c = 0; c < STORE_C_COUNT; c++) {
		bool gauge = counter_kind_is_gauge(store_counter_kind[c]);
		const char *const cls[] = { "class", counter_kind_name(store_counter_kind[c]),
			NULL };

		prom_name(name, sizeof(name), "edgegw_agent_store_", store_counter_names[c],
		    gauge ? "" : "_total", &scale);
		prom_family(f, name, gauge ? "gauge" : "counter", store_counter_help[c]);
		prom_sample(f, name, gauge ? NULL : cls, (double)s->c[c] * scale);
	}
	if (!s->has_spool)
		return;
	for (int c = 0; c < SPOOL_C_N; c++) {
		bool gauge = spool_counter_kind((enum spool_counter)c) == SPOOL_GAUGE;

		prom_name(name, sizeof(name), "edgegw_agent_spool_",
		    spool_counter_name((enum spool_counter)c), gauge ? "" : "_total", &scale);
		prom_family(f, name, gauge ? "gauge" : "counter",
		    spool_counter_desc((enum spool_counter)c));
		prom_sample(f, name, NULL, (double)s->spool[c] * scale);
	}
	agent_family(f, "edgegw_agent_spool_oldest_age_seconds", "gauge",
	    "age of the oldest record not yet acknowledged by the cloud (0: none)",
	    s->oldest_ms != 0 && clock_wall_ms() > s->oldest_ms
		? (double)(clock_wall_ms() - s->oldest_ms) / 1000.0
		: 0.0);
}

/* The agent's end of the dataplane channel (dpchan_counters.def, TYPE and class from KIND). */
static void
render_chan(const struct agent *a, FILE *f)
{
	char name[160];
	double scale;

	if (!a->has_chan_snap)
		return;
	agent_family(f, "edgegw_agent_dpchan_connected_lcores", "gauge",
	    "dataplane lcores connected to the agent's channel", (double)a->chan_conns_snap);
	for (int c = 0; c < DPCHAN_C_COUNT; c++) {
		enum counter_kind k = dpchan_counter_kind((enum dpchan_counter)c);
		bool gauge = counter_kind_is_gauge(k);
		const char *const cls[] = { "class", counter_kind_name(k), NULL };

		prom_name(name, sizeof(name), "edgegw_agent_dpchan_",
		    dpchan_counter_name((enum dpchan_counter)c), gauge ? "" : "_total", &scale);
		prom_family(f, name, gauge ? "gauge" : "counter",
		    dpchan_counter_desc((enum dpchan_counter)c));
		prom_sample(f, name, gauge ? NULL : cls, (double)a->chan_snap[c] * scale);
	}
}

static void
render_uplink(const struct agent *a, FILE *f)
{
	const struct uplink_stats *u = &a->up_snap;
	static const struct {
		const char *name, *help;
		size_t off;
	} ctr[] = {
#define U(n, h) { "edgegw_agent_uplink_" #n "_total", h, offsetof(struct uplink_stats, n) }
		U(submitted, "messages handed to the uplink"),
		U(sent, "messages sent to the cloud"),
		U(acked, "messages the cloud acknowledged"),
		U(dropped, "messages dropped (queue full or refused)"),
		U(resent, "messages sent again after a reconnect"),
		U(connects, "uplink connections made"),
		U(disconnects, "uplink connections lost"),
		U(commands, "commands received from the cloud"),
#undef U
	};

	agent_family(f, "edgegw_agent_uplink_connected", "gauge",
	    "1 when the uplink is connected to the cloud", u->connected ? 1 : 0);
	agent_family(f, "edgegw_agent_uplink_queued_messages", "gauge",
	    "messages waiting for the uplink", (double)u->queued);
	for (size_t i = 0; i < sizeof(ctr) / sizeof(ctr[0]); i++) {
		prom_family(f, ctr[i].name, "counter", ctr[i].help);
		prom_sample_u64(f, ctr[i].name, NULL,
		    (unsigned long long)*(const uint64_t *)((const char *)u + ctr[i].off));
	}
	render_uplink_link(u, f);
	render_store(&a->store_snap, f);
	render_chan(a, f);
}

enum bus_field {
	BF_CONNECTED,
	BF_CONNECT_ERRORS,
	BF_BUSY,
	BF_UPTIME,
	BF_COUNT
};

static void
render_buses(const struct agent *a, FILE *f)
{
	static const struct {
		const char *name, *type, *help;
	} fam[BF_COUNT] = {
		{ "edgegw_agent_bus_connected", "gauge",
		    "1 when the bus's port or server is open" },
		{ "edgegw_agent_bus_connect_errors_total", "counter",
		    "failures to open the bus's port or connect to its server" },
		{ "edgegw_agent_bus_busy_seconds_total", "counter",
		    "time the bus spent in transactions" },
		{ "edgegw_agent_bus_uptime_seconds", "gauge", "time since the bus started" },
	};

	for (int k = 0; k < BF_COUNT; k++) {
		prom_family(f, fam[k].name, fam[k].type, fam[k].help);
		for (size_t i = 0; i < a->nbuses; i++) {
			struct mb_bus_info bi;
			double v;

			mb_bus_info(a->buses[i], &bi);
			v = k == BF_CONNECTED        ? (bi.connected ? 1 : 0)
			    : k == BF_CONNECT_ERRORS ? (double)bi.connect_errors
			    : k == BF_BUSY           ? (double)bi.busy_us / 1e6
						     : (double)bi.uptime_us / 1e6;
			prom_sample(
			    f, fam[k].name, (const char *const[]){ "bus", bi.name, NULL }, v);
		}
	}
}

/* One sample of a device family: bus and device labels, and class for a counter. */
static void
dev_sample(FILE *f, const char *name, const char *bus, const char *dev, const char *cls, uint64_t v,
    double scale)
{
	const char *const lab[] = { "bus", bus, "device", dev, cls ? "class" : NULL, cls, NULL };

	if (scale == 1.0)
		prom_sample_u64(f, name, lab, (unsigned long long)v);
	else
		prom_sample(f, name, lab, (double)v * scale);
}

/* One family per device field and per stats.def counter, every device a sample; a counter's
 * KIND gives its TYPE and class label. */
static void
render_devices(const struct agent *a, FILE *f)
{
	char name[160];
	double scale;

	prom_family(f, "edgegw_agent_device_backoff", "gauge",
	    "1 while the device is failing and polled at the backoff interval");
	for (size_t i = 0; i < a->nbuses; i++) {
		struct mb_bus_info bi;

		mb_bus_info(a->buses[i], &bi);
		for (size_t d = 0; d < bi.ndevs; d++) {
			struct mb_bus_dev_info di;

			mb_bus_dev_info(a->buses[i], d, &di);
			prom_sample_u64(f, "edgegw_agent_device_backoff",
			    (const char *const[]){ "bus", bi.name, "device", di.name, NULL },
			    di.failing);
		}
	}
	for (int c = 0; c < AGENT_DC_COUNT; c++) {
		const char *kind = counter_kind_name(agent_dev_counter_kind[c]);
		bool gauge = counter_kind_is_gauge(agent_dev_counter_kind[c]);

		prom_name(name, sizeof(name), "edgegw_agent_device_", agent_dev_counter_names[c],
		    gauge ? "" : "_total", &scale);
		prom_family(f, name, gauge ? "gauge" : "counter", agent_dev_counter_help[c]);
		for (size_t i = 0; i < a->nbuses; i++) {
			struct mb_bus_info bi;

			mb_bus_info(a->buses[i], &bi);
			for (size_t d = 0; d < bi.ndevs; d++) {
				struct mb_bus_dev_info di;

				mb_bus_dev_info(a->buses[i], d, &di);
				dev_sample(f, name, bi.name, di.name, gauge ? NULL : kind,
				    agent_stat_get(mb_bus_dev_stats_ro(a->buses[i], d),
					(enum agent_dev_counter)c),
				    scale);
			}
		}
	}
}

/* Devices not running because their profile is bad or missing: a total and one sample each. */
static void
render_disabled(const struct agent_config *c, FILE *f)
{
	agent_family(f, "edgegw_agent_devices_disabled", "gauge",
	    "devices not polled because their profile is bad or missing", (double)c->ndisabled);
	prom_family(f, "edgegw_agent_device_disabled", "gauge",
	    "1 for each device not polled (its profile is bad or missing; the log says why)");
	for (size_t i = 0; i < c->nbuses; i++)
		for (size_t j = 0; j < c->buses[i].noff; j++)
			prom_sample_u64(f, "edgegw_agent_device_disabled",
			    (const char *const[]){ "bus", c->buses[i].name, "device",
				c->buses[i].off[j].name, "profile", c->buses[i].off[j].profile_name,
				NULL },
			    1);
}

void
agent_metrics_render(const struct agent *a, FILE *f)
{
	agent_family(f, "edgegw_agent_uptime_seconds", "gauge", "time since the agent started",
	    (double)(clock_mono_ms() - a->started_ms) / 1e3);
	prom_family(f, "edgegw_agent_queue_dropped_total", "counter",
	    "messages from the buses dropped because the queue to the uplink was full");
	prom_sample_u64(f, "edgegw_agent_queue_dropped_total", NULL,
	    (unsigned long long)__atomic_load_n(&a->q.dropped, __ATOMIC_RELAXED));
	prom_family(f, "edgegw_agent_commands_rejected_total", "counter",
	    "cloud commands refused before reaching a bus");
	prom_sample_u64(f, "edgegw_agent_commands_rejected_total", NULL,
	    (unsigned long long)a->cmd_rejected_snap);
	prom_family(f, "edgegw_agent_metrics_http_errors_total", "counter",
	    "errors of the metrics endpoint's HTTP server (clients that reset or time out, the "
	    "connection limit reached)");
	prom_sample_u64(f, "edgegw_agent_metrics_http_errors_total", NULL,
	    (unsigned long long)__atomic_load_n(&http_errors, __ATOMIC_RELAXED));
	render_uplink(a, f);
	render_buses(a, f);
	render_devices(a, f);
	render_disabled(&a->cfg, f);
}

static enum MHD_Result
respond(struct MHD_Connection *conn, unsigned status, const char *type, char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return respond(conn, status, "text/plain; charset=utf-8", strdup(text), strlen(text));
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_len, void **con_cls)
{
	struct agent_metrics *m = cls;
	struct metrics_dp dp;
	char *body = NULL;
	size_t len = 0;
	FILE *f;
	bool metrics = strcmp(url, "/metrics") == 0;

	(void)version, (void)upload, (void)upload_len, (void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
	if (!metrics && strcmp(url, "/stats") != 0)
		return respond_text(conn, MHD_HTTP_NOT_FOUND,
		    "edgegw-agent: /metrics (Prometheus), /stats (the agent's JSON)\n");
	if (metrics) /* outside the lock: this may wait for the dataplane */
		metrics_dp_read(&dp, m->tel_path, METRICS_TEL_TIMEOUT_MS);
	f = open_memstream(&body, &len);
	if (f == NULL)
		return MHD_NO;
	pthread_mutex_lock(&m->a->stats_lock);
	if (metrics)
		agent_metrics_render(m->a, f);
	else
		agent_stats_json(m->a, f);
	pthread_mutex_unlock(&m->a->stats_lock);
	if (metrics) {
		metrics_dp_render(&dp, f);
		metrics_dp_free(&dp);
	}
	if (fclose(f) != 0) {
		free(body);
		return MHD_NO;
	}
	return respond(conn, MHD_HTTP_OK,
	    metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json", body, len);
}

int
agent_metrics_start(struct agent *a, struct agent_metrics **out)
{
	struct sockaddr_storage ss;
	struct agent_metrics *m;

	*out = NULL;
	if (!a->cfg.metrics_listen[0])
		return 0;
	if (agent_listen_parse(a->cfg.metrics_listen, &ss) != 0)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->a = a;
	snprintf(m->tel_path, sizeof(m->tel_path), "%s", a->cfg.dataplane_telemetry);
	m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
		(ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first */
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)METRICS_MAX_CONNS,
	    /* one host holds at most half the slots: a slow client (slowloris) does not lock
	     * the others out */
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNS / 2,
	    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (m->d == NULL) {
		log_err("metrics: cannot listen on %s (address in use or not on this host?)",
		    a->cfg.metrics_listen);
		free(m);
		return -EADDRNOTAVAIL;
	}
	log_info("metrics: http://%s/metrics (dataplane telemetry %s)", a->cfg.metrics_listen,
	    m->tel_path);
	*out = m;
	return 0;
}

void
agent_metrics_stop(struct agent_metrics *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->d);
	free(m);
}

void
agent_metrics_keep_settings(const struct agent_config *old, struct agent_config *nc)
{
	if (strcmp(old->metrics_listen, nc->metrics_listen) == 0 &&
	    strcmp(old->dataplane_telemetry, nc->dataplane_telemetry) == 0)
		return;
	log_warnx("reload: metrics settings changed; they apply at the next restart");
	memcpy(nc->metrics_listen, old->metrics_listen, sizeof(nc->metrics_listen));
	memcpy(nc->dataplane_telemetry, old->dataplane_telemetry, sizeof(nc->dataplane_telemetry));
}
