/*
 * test_metrics.c: the Prometheus rendering of the dataplane's telemetry (agent/metrics_dp.c)
 * and the name rules of agent/prom.c: base units, _total, labels, the up gauge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"
#include "prom.h"

static void
test_names(void **state)
{
	char n[160];
	double scale;

	(void)state;
	prom_name(n, sizeof(n), "edgegw_agent_device_", "busy_us", "_total", &scale);
	assert_string_equal(n, "edgegw_agent_device_busy_seconds_total");
	assert_true(scale == 1e-6);
	prom_name(n, sizeof(n), "edgegw_agent_device_", "lateness_ms_sum", "_total", &scale);
	assert_string_equal(n, "edgegw_agent_device_lateness_seconds_total");
	assert_true(scale == 1e-3);
	prom_name(n, sizeof(n), "edgegw_agent_device_", "lateness_ms_max", "", &scale);
	assert_string_equal(n, "edgegw_agent_device_lateness_max_seconds");
	prom_name(n, sizeof(n), "edgegw_broker_", "PUB_RX", "_total", &scale);
	assert_string_equal(n, "edgegw_broker_pub_rx_total");
	assert_true(scale == 1.0);
	prom_name(n, sizeof(n), "edgegw_dataplane_", "uptime_s", "", &scale);
	assert_string_equal(n, "edgegw_dataplane_uptime_seconds");
	/* a word that merely starts like a unit is not one */
	prom_name(n, sizeof(n), "x_", "tcp_msl_used", "", &scale);
	assert_string_equal(n, "x_tcp_msl_used");
	prom_name(n, sizeof(n), "x_", "a-b.c", "", &scale);
	assert_string_equal(n, "x_a_b_c");
	/* "us" the word: a count, not microseconds; named without "_us" (promtool's lint) */
	prom_name(n, sizeof(n), "edgegw_dataplane_", "eth_NOT_FOR_US", "_total", &scale);
	assert_string_equal(n, "edgegw_dataplane_eth_not_for_this_host_total");
	assert_true(scale == 1.0);
}

static char *
render(const struct metrics_dp *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	metrics_dp_render(s, f);
	fclose(f);
	return buf;
}

static void
test_down(void **state)
{
	struct metrics_dp s = { 0 };
	char *t;

	(void)state;
	/* nothing listens there: up 0, no error, no other family */
	metrics_dp_read(&s, "/nonexistent/dpdk_telemetry.v2", 100);
	assert_false(s.up);
	t = render(&s);
	assert_non_null(strstr(t, "# TYPE edgegw_dataplane_up gauge\nedgegw_dataplane_up 0\n"));
	assert_null(strstr(t, "_total"));
	free(t);
}

static void
test_up(void **state)
{
	struct metrics_dp s = { .up = true };
	char *t;

	(void)state;
	s.counters = json_loads(
	    "{\"port_rx_pkts\": 12, \"tcp_bad_cksum\": 3, \"big\": 12345678901234}", 0, NULL);
	s.describe = json_loads("{\"port_rx_pkts\": \"frames received\", \"tcp_bad_cksum\": "
				"{\"help\": \"drop: bad\\nchecksum\", \"kind\": \"drop\"}}",
	    0, NULL);
	s.kinds = json_loads("{\"tcp_bad_cksum\": \"drop\", \"big\": \"gauge\"}", 0, NULL);
	s.broker_kinds = json_loads("{\"PUB_RX\": \"info\"}", 0, NULL);
	s.status = json_loads("{\"uptime_s\": 5, \"link_speed_mbps\": 1000}", 0, NULL);
	s.workers = json_loads("{\"w0_lcore\": 1, \"w0_queue\": 0, \"w0_rx_pkts\": 7, "
			       "\"w1_lcore\": 2, \"w1_queue\": 1, \"w1_rx_pkts\": 5}",
	    0, NULL);
	s.mem = json_loads("{\"state_established\": 4, \"tcb_bytes\": 512, \"mqtt_sessions\": 9, "
			   "\"mbufs_in_use\": 3}",
	    0, NULL);
	s.broker = json_loads("{\"PUB_RX\": 42}", 0, NULL);
	s.dpchan = json_loads("{\"RECS_TX\": 17, \"SEND_FAIL\": 2}", 0, NULL);
	s.dpchan_describe = json_loads("{\"RECS_TX\": \"records sent to the agent\"}", 0, NULL);
	s.dpchan_kinds = json_loads("{\"RECS_TX\": \"info\", \"SEND_FAIL\": \"error\"}", 0, NULL);
	t = render(&s);
	assert_non_null(strstr(t, "edgegw_dataplane_up 1\n"));
	assert_non_null(strstr(t,
	    "# HELP edgegw_dataplane_port_rx_pkts_total frames received\n"
	    "# TYPE edgegw_dataplane_port_rx_pkts_total counter\n"
	    "edgegw_dataplane_port_rx_pkts_total{class=\"info\"} 12\n"));
	/* the kind from /edgegw/kinds: the class label, and a gauge is no _total counter */
	assert_non_null(strstr(t, "edgegw_dataplane_tcp_bad_cksum_total{class=\"drop\"} 3\n"));
	assert_non_null(
	    strstr(t, "# TYPE edgegw_dataplane_big gauge\nedgegw_dataplane_big 12345678901234\n"));
	/* help text escaped: a newline would end the line */
	assert_non_null(
	    strstr(t, "# HELP edgegw_dataplane_tcp_bad_cksum_total drop: bad\\nchecksum\n"));
	assert_non_null(strstr(t, "edgegw_dataplane_uptime_seconds 5\n"));
	assert_non_null(strstr(t, "edgegw_dataplane_link_speed_bytes 125000000\n"));
	assert_non_null(strstr(t,
	    "edgegw_dataplane_worker_rx_packets_total{lcore=\"1\",queue=\"0\"} 7\n"
	    "edgegw_dataplane_worker_rx_packets_total{lcore=\"2\",queue=\"1\"} 5\n"));
	assert_non_null(
	    strstr(t, "edgegw_dataplane_tcp_flows_by_state{state=\"established\"} 4\n"));
	assert_non_null(strstr(t, "edgegw_dataplane_mem_tcb_bytes 512\n"));
	assert_non_null(
	    strstr(t, "# TYPE edgegw_broker_sessions gauge\nedgegw_broker_sessions 9\n"));
	assert_non_null(strstr(t,
	    "# TYPE edgegw_broker_pub_rx_total counter\n"
	    "edgegw_broker_pub_rx_total{class=\"info\"} 42\n"));
	assert_null(strstr(t, "mem_mbufs_in_use"));
	/* the dataplane's end of the channel to the agent (/edgegw/dpchan) */
	assert_non_null(strstr(t,
	    "# HELP edgegw_dataplane_dpchan_recs_tx_total records sent to the agent\n"
	    "# TYPE edgegw_dataplane_dpchan_recs_tx_total counter\n"
	    "edgegw_dataplane_dpchan_recs_tx_total{class=\"info\"} 17\n"));
	assert_non_null(strstr(t, "edgegw_dataplane_dpchan_send_fail_total{class=\"error\"} 2\n"));
	free(t);
	metrics_dp_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_down),
		cmocka_unit_test(test_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
