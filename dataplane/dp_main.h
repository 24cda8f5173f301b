/* dp_main.h: the process-wide state of edgegw-dataplane, shared by main, the workers and stats. */
#ifndef EDGEGW_DP_MAIN_H
#define EDGEGW_DP_MAIN_H

#include <stdint.h>

#include "dp.h"
#include "dp_config.h"

#define DP_MAX_SERVICES 8

struct dp_state {
	struct dp_config cfg;
	uint16_t port_id;
	unsigned n_workers;
	struct dp_lcore *workers[DP_MAX_LCORES];
	/* The services the config enables, with their config (svc.h), in start order. */
	const struct dp_service *svc[DP_MAX_SERVICES];
	struct dp_service_conf svc_conf[DP_MAX_SERVICES];
	unsigned n_svc;
	volatile int quit; /* set by the signal handler; workers leave their loop */
	uint64_t start_tsc;
};

extern struct dp_state dp_state;

/* The worker lcore's run-to-completion loop (rte_eal_remote_launch entry). */
int dp_worker_loop(void *arg);
/* Sum of one counter over every worker. */
uint64_t dp_counter_sum(enum dp_counter_id id);
/* DPDK's log lines through lib/util's logger (before rte_eal_init): 0 or -1. */
int dp_log_route_dpdk(void);
/* Registers /edgegw/... commands on the DPDK telemetry socket. */
int dp_telemetry_init(void);

#endif
