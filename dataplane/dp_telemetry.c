/*
 * dp_telemetry.c: the dataplane's stats on the DPDK telemetry socket
 * (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2; dpdk-telemetry.py, tests/lab/dpstat.py):
 *   /edgegw/counters   every counter of dp_counters.def, summed over the workers
 *   /edgegw/status     uptime, workers, flows, ARP entries, mbufs in use, link
 *   /edgegw/describe   counter name -> what it counts
 * Runs on DPDK's telemetry thread: it only reads the workers' counters.
 */
#include <string.h>

#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_telemetry.h>

#include "arp.h"
#include "dp_main.h"
#include "tcp/tcp.h"

uint64_t
dp_counter_sum(enum dp_counter_id id)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < dp_state.n_workers; i++)
		s += dp_state.workers[i]->cnt.v[id];
	return s;
}

static int
tel_counters(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd, (void)params;
	rte_tel_data_start_dict(d);
	for (unsigned id = 0; id < DPC__COUNT; id++)
		rte_tel_data_add_dict_u64(d, dp_counter_name(id), dp_counter_sum(id));
	return 0;
}

static int
tel_describe(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd, (void)params;
	rte_tel_data_start_dict(d);
	for (unsigned id = 0; id < DPC__COUNT; id++)
		rte_tel_data_add_dict_string(d, dp_counter_name(id), dp_counter_desc(id));
	return 0;
}

static int
tel_status(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint64_t flows = 0, arp = 0, inuse = 0;
	bool up = false;
	uint32_t speed = 0;

	(void)cmd, (void)params;
	for (unsigned i = 0; i < dp_state.n_workers; i++) {
		flows += tcp_flow_count(dp_state.workers[i]);
		arp += arp_entry_count(dp_state.workers[i]);
	}
	if (dp_state.n_workers > 0)
		inuse = rte_mempool_in_use_count(dp_state.workers[0]->pool);
	nic_link_get(dp_state.port_id, &up, &speed);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "uptime_s", (rte_rdtsc() - dp_state.start_tsc) / rte_get_tsc_hz());
	rte_tel_data_add_dict_u64(d, "workers", dp_state.n_workers);
	rte_tel_data_add_dict_u64(d, "tcp_flows", flows);
	rte_tel_data_add_dict_u64(d, "arp_entries", arp);
	rte_tel_data_add_dict_u64(d, "mbufs_in_use", inuse);
	rte_tel_data_add_dict_u64(d, "link_up", up);
	rte_tel_data_add_dict_u64(d, "link_speed_mbps", speed);
	return 0;
}

int
dp_telemetry_init(void)
{
	int rc = 0;

	rc |= rte_telemetry_register_cmd("/edgegw/counters", tel_counters,
					 "Every dataplane counter, summed over the workers");
	rc |= rte_telemetry_register_cmd("/edgegw/describe", tel_describe,
					 "What each counter of /edgegw/counters counts");
	rc |= rte_telemetry_register_cmd("/edgegw/status", tel_status,
					 "Uptime, workers, TCP flows, ARP entries, mbufs in use, link");
	return rc ? -1 : 0;
}
