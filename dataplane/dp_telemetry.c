/*
 * dp_telemetry.c: the dataplane's stats on the DPDK telemetry socket
 * (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2; dpdk-telemetry.py, tests/lab/dpstat.py):
 *   /edgegw/counters   every counter of dp_counters.def, summed over the workers
 *   /edgegw/status     uptime, workers, flows, ARP entries, mbufs in use, link
 *   /edgegw/describe   counter name -> what it counts
 *   /edgegw/kinds      counter name -> its kind (dp_counters.def: info, drop, limit, bad_input,
 *                      error, gauge), for the exporters' TYPE and class
 *   /edgegw/workers    per worker: lcore, queue, packets in and out, TCP flows
 *   /edgegw/broker     the MQTT broker's counters (sessions, messages, drops), summed over workers
 *   /edgegw/mem        TCP memory: flows by state, TCB and hash bytes, mbufs held in queues
 * Runs on DPDK's telemetry thread: it only reads the workers' counters.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_telemetry.h>

#include "arp.h"
#include "dp_main.h"
#include "svc.h"
#include "tcp.h"

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
tel_kinds(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd, (void)params;
	rte_tel_data_start_dict(d);
	for (unsigned id = 0; id < DPC__COUNT; id++)
		rte_tel_data_add_dict_string(
		    d, dp_counter_name(id), counter_kind_name(dp_counter_kind(id)));
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
	rte_tel_data_add_dict_u64(
	    d, "uptime_s", (rte_rdtsc() - dp_state.start_tsc) / rte_get_tsc_hz());
	rte_tel_data_add_dict_u64(d, "workers", dp_state.n_workers);
	rte_tel_data_add_dict_u64(d, "tcp_flows", flows);
	rte_tel_data_add_dict_u64(d, "arp_entries", arp);
	rte_tel_data_add_dict_u64(d, "mbufs_in_use", inuse);
	rte_tel_data_add_dict_u64(d, "link_up", up);
	rte_tel_data_add_dict_u64(d, "link_speed_mbps", speed);
	return 0;
}

/* Memory per idle flow is what a flow costs with no data in flight: its TCB and its hash entry;
 * data in flight is counted separately as the mbufs the queues hold. */
static int
tel_mem(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct tcp_mem_stats sum, one;
	uint32_t states[TCP_ST_COUNT] = { 0 };
	char name[64];

	(void)cmd, (void)params;
	memset(&sum, 0, sizeof(sum));
	for (unsigned i = 0; i < dp_state.n_workers; i++) {
		tcp_mem_stats(dp_state.workers[i], &one);
		sum.flows += one.flows;
		sum.max_flows += one.max_flows;
		sum.half_open += one.half_open;
		sum.tcb_bytes = one.tcb_bytes;
		sum.hash_bytes_per_entry = one.hash_bytes_per_entry;
		sum.dq_bytes_per_flow = one.dq_bytes_per_flow;
		sum.sndq_mbufs += one.sndq_mbufs;
		sum.rcvq_mbufs += one.rcvq_mbufs;
		sum.ooo_mbufs += one.ooo_mbufs;
		sum.sndq_bytes += one.sndq_bytes;
		sum.rcvq_bytes += one.rcvq_bytes;
		sum.ooo_bytes += one.ooo_bytes;
		for (int s = 0; s < TCP_ST_COUNT; s++)
			states[s] += one.flows_by_state[s];
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "flows", sum.flows);
	rte_tel_data_add_dict_u64(d, "max_flows", sum.max_flows);
	rte_tel_data_add_dict_u64(d, "half_open", sum.half_open);
	rte_tel_data_add_dict_u64(d, "tcb_bytes", sum.tcb_bytes);
	rte_tel_data_add_dict_u64(d, "hash_entry_bytes", sum.hash_bytes_per_entry);
	rte_tel_data_add_dict_u64(d, "delack_entry_bytes", sum.dq_bytes_per_flow);
	/* what each flow the table can hold costs before it holds data: its TCB, its hash entry
	 * and its delayed-ACK queue slot (both sized by max_flows) */
	rte_tel_data_add_dict_u64(d, "bytes_per_idle_flow",
	    sum.tcb_bytes + sum.hash_bytes_per_entry + sum.dq_bytes_per_flow);
	rte_tel_data_add_dict_u64(d, "sndq_mbufs", sum.sndq_mbufs);
	rte_tel_data_add_dict_u64(d, "rcvq_mbufs", sum.rcvq_mbufs);
	rte_tel_data_add_dict_u64(d, "ooo_mbufs", sum.ooo_mbufs);
	rte_tel_data_add_dict_u64(d, "sndq_bytes", sum.sndq_bytes);
	rte_tel_data_add_dict_u64(d, "rcvq_bytes", sum.rcvq_bytes);
	rte_tel_data_add_dict_u64(d, "ooo_bytes", sum.ooo_bytes);
	rte_tel_data_add_dict_u64(d, "mbufs_in_use",
	    dp_state.n_workers ? rte_mempool_in_use_count(dp_state.workers[0]->pool) : 0);
	for (int s = 0; s < TCP_ST_COUNT; s++) {
		snprintf(name, sizeof(name), "state_%s", tcp_state_name((enum tcp_state)s));
		rte_tel_data_add_dict_u64(d, name, states[s]);
	}
	for (unsigned i = 0; i < dp_state.n_svc; i++)
		if (dp_state.svc[i]->telemetry_mem != NULL)
			dp_state.svc[i]->telemetry_mem(d);
	return 0;
}

static int
tel_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char name[64];

	(void)cmd, (void)params;
	rte_tel_data_start_dict(d);
	for (unsigned i = 0; i < dp_state.n_workers; i++) {
		const struct dp_lcore *lc = dp_state.workers[i];

#define W(field, val)                                             \
	do {                                                      \
		snprintf(name, sizeof(name), "w%u_%s", i, field); \
		rte_tel_data_add_dict_u64(d, name, (val));        \
	} while (0)
		W("lcore", lc->lcore_id);
		W("queue", lc->queue_id);
		W("rx_pkts", lc->cnt.v[DPC_port_RX_PKTS]);
		W("tx_pkts", lc->cnt.v[DPC_port_TX_PKTS]);
		W("tcp_flows", tcp_flow_count(lc));
		W("tcp_accepted", lc->cnt.v[DPC_tcp_CONN_ACCEPTED]);
#undef W
	}
	return 0;
}

int
dp_telemetry_init(void)
{
	int rc = 0;

	rc |= rte_telemetry_register_cmd(
	    "/edgegw/counters", tel_counters, "Every dataplane counter, summed over the workers");
	rc |= rte_telemetry_register_cmd(
	    "/edgegw/describe", tel_describe, "What each counter of /edgegw/counters counts");
	rc |= rte_telemetry_register_cmd("/edgegw/kinds", tel_kinds,
	    "The kind of each counter of /edgegw/counters: info, drop, limit, bad_input, error, "
	    "gauge");
	rc |= rte_telemetry_register_cmd("/edgegw/status", tel_status,
	    "Uptime, workers, TCP flows, ARP entries, mbufs in use, link");
	rc |= rte_telemetry_register_cmd("/edgegw/workers", tel_workers,
	    "Per worker: lcore, queue, packets in and out, TCP flows and accepts");
	rc |= rte_telemetry_register_cmd("/edgegw/mem", tel_mem,
	    "Memory: TCP flows by state, bytes per idle flow, mbufs held in queues; MQTT sessions "
	    "and their parts held");
	for (unsigned i = 0; i < dp_state.n_svc; i++)
		if (dp_state.svc[i]->telemetry_init != NULL)
			rc |= dp_state.svc[i]->telemetry_init();
	return rc ? -1 : 0;
}
