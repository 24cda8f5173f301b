/*
 * agent.h: the agent as a whole: config, event loop, buses, uplink. main.c builds it;
 * stats.c reads it.
 */
#ifndef EDGEGW_AGENT_H
#define EDGEGW_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent_config.h"
#include "loop.h"
#include "bus.h"
#include "dpchan.h"
#include "msgq.h"
#include "store.h"
#include "uplink.h"

struct dpchan_link;
struct downlink;
struct cmdspool;

struct agent {
	const char *cfg_path;
	bool strict; /* --strict: a bad or missing profile stops the agent (and a reload) */
	bool failed; /* stopped by a failure (a reload whose buses did not start): exit 1, so that
		      * the supervisor (Restart=on-failure) starts it again */
	struct agent_config cfg;
	struct agent_loop *loop;
	struct agent_msgq q;
	struct mb_bus **buses;
	const struct agent_bus_conf **bus_conf; /* what each bus was built from (it points there) */
	size_t nbuses;
	/* Configs replaced by a reload whose buses still run (kept: they did not change); freed
	 * when none of their buses is left. */
	struct agent_config **retired;
	size_t nretired;
	struct uplink *up;
	struct store *store;      /* rules + spool: readings go through it to the uplink */
	struct dpchan_link *chan; /* the dataplane's sensor messages into the store (NULL: off) */
	struct downlink *down;    /* cloud messages to the dataplane's broker (NULL: none) */
	struct cmdspool *cmds;    /* QoS 1/2 commands and their QoS 2 ids on disk (NULL: none) */
	/* PUBRELs whose id's free is on its way to disk (the spools' next commits): PUBCOMP waits */
	struct q2_release {
		uint16_t id;
		uint64_t need_down, need_cmd, since_ms;
	} q2rel[64];
	uint32_t nq2rel;
	uint64_t next_stats_ms;
	uint64_t started_ms;
	uint64_t watchdog_ms, next_watchdog_ms; /* systemd WatchdogSec, 0: none */
	uint64_t cmd_rejected;                  /* commands refused before reaching a bus */
	/* Read by the metrics thread (metrics.h): the buses are replaced, and these copies the
	 * loop makes each tick are written, under stats_lock. */
	pthread_mutex_t stats_lock;
	struct uplink_stats up_snap;
	struct store_stats store_snap;
	uint64_t cmd_rejected_snap;
	bool has_chan_snap; /* the dataplane channel is served (a->chan) */
	uint32_t chan_conns_snap;
	uint64_t chan_snap[DPCHAN_C_COUNT];
	struct agent_metrics *metrics;
};

#endif
