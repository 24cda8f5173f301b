/*
 * metrics.h: the agent's Prometheus endpoint (agent.metrics.listen): GET /metrics serves the
 * agent's counters and the dataplane's, the latter read from the dataplane's DPDK telemetry
 * socket on each scrape; GET /stats the agent's stats JSON (edgegwctl reads it).
 *
 * libmicrohttpd runs its own thread (MHD_USE_INTERNAL_POLLING_THREAD): a scrape waits on the
 * dataplane's socket (up to its timeout) and that must never stall the event loop that drives
 * the uplink and the watchdog. The agent's figures it reads are atomics, or copies the loop
 * makes under agent.stats_lock (the uplink's, each tick); the buses are replaced on reload
 * under the same lock, so a scrape never reads a freed bus.
 */
#ifndef EDGEGW_AGENT_METRICS_H
#define EDGEGW_AGENT_METRICS_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

struct agent;
struct agent_config;
struct agent_metrics;

/* Starts the HTTP server on a->cfg.metrics_listen (nothing when empty). */
int agent_metrics_start(struct agent *a, struct agent_metrics **out);
void agent_metrics_stop(struct agent_metrics *m);
/* Reload: the listen address and the socket path apply at the next restart (warned). */
void agent_metrics_keep_settings(const struct agent_config *old, struct agent_config *nc);
/* The agent's families (call with a->stats_lock held). */
void agent_metrics_render(const struct agent *a, FILE *f);

/* The dataplane's telemetry replies of one scrape (NULL: that command failed). */
struct metrics_dp {
	bool up;
	json_t *counters, *describe, *kinds, *status, *workers, *mem, *broker, *broker_describe,
	    *broker_kinds, *dpchan, *dpchan_describe, *dpchan_kinds;
};
/* Queries every command; up is false (and the rest NULL) when the socket does not answer. */
void metrics_dp_read(struct metrics_dp *s, const char *sock_path, int timeout_ms);
void metrics_dp_free(struct metrics_dp *s);
/* edgegw_dataplane_up, then the dataplane's and the broker's families. */
void metrics_dp_render(const struct metrics_dp *s, FILE *f);

#endif
