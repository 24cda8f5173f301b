/* Unit tests for dataplane/dp_config.c: the lab config loads; bad configs are rejected with
 * file:line and the reason, and nothing half-parsed is left behind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "dp_config.h"
#include "rules.h"

/* The config test links the TCP library for tcp_config_defaults() only; the packet path it
 * also pulls in must never run here. */
struct rte_mbuf *dp_alloc(struct dp_lcore *lc);
int ipv4_output_src(
    struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be, uint8_t proto);
int ipv4_output_hint(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be,
    uint8_t proto, uint32_t *nh_hint);
struct rte_mbuf *
dp_alloc(struct dp_lcore *lc)
{
	(void)lc;
	abort();
}
int
ipv4_output_src(
    struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be, uint8_t proto)
{
	(void)lc, (void)m, (void)src_be, (void)dst_be, (void)proto;
	abort();
}
int
ipv4_output_hint(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be,
    uint8_t proto, uint32_t *nh_hint)
{
	(void)lc, (void)m, (void)src_be, (void)dst_be, (void)proto, (void)nh_hint;
	abort();
}

static char *
write_tmp(const char *text)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/dpcfg-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void
test_lab_config_loads(void **state)
{
	struct dp_config cfg;
	char err[512] = "";

	(void)state;
	assert_int_equal(
	    dp_config_load(SRCDIR "/configs/lab/gateway.yaml", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.device, "net_tap0");
	assert_int_equal(ntohl(cfg.ip_be), 0xC6120001);
	assert_int_equal(cfg.prefix_len, 24);
	assert_int_equal(ntohl(cfg.netmask_be), 0xFFFFFF00);
	assert_true(cfg.echo.enabled);
	assert_int_equal(cfg.echo.port, 7);
	assert_true(cfg.discard.enabled);
	assert_int_equal(cfg.discard.port, 9);
	assert_int_equal(cfg.tcp.rcvbuf_bytes, 256 * 1024);
	assert_string_equal(cfg.eal_argv[0], "edgegw-dataplane");
	assert_true(cfg.eal_argc > 4);
	dp_config_free(&cfg);
}

struct bad_case {
	const char *yaml;
	unsigned line;
	const char *reason;
};

static const struct bad_case bad_cases[] = {
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workerz: 1\n", 4,
	    "unknown key 'workerz'" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1}\n", 3, "no /length" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  tcp:\n    rcvbuf: "
	  "12q\n",
	    5, "not a size" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24, gateway: 10.9.9.9}\n",
	    3, "not on the port's subnet" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  services:\n    "
	  "echo: {enabled: true, port: 70000}\n",
	    5, "out of range" },
	{ "dataplane:\n  port: {device: x, ipv4: 198.18.0.1/24}\n", 0,
	    "dataplane.eal is required" },
	{ "agent: {}\n", 1, "no 'dataplane' section" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  log_level: err\n", 4,
	    "error, warn, info, debug" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\nlogging: {}\n", 4,
	    "unknown key 'logging'" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  mqtt:\n    "
	  "topic_alias_out_max: 70000\n",
	    5, "out of range" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  mqtt:\n    "
	  "queue_full: drop\n",
	    5, "hold, drop-oldest, drop-new" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  mqtt:\n    "
	  "stall_timeout: 10ms\n",
	    5, "out of range" },
	{ "dataplane: [1,\n", 0, "" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workers: 1\n"
	  "  workers: 2\n",
	    5, "duplicate key 'workers' (first at line 4)" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workers: 02\n", 4,
	    "leading zero" },
	{ "dataplane:\n  eal: [-l, \"0-1\"]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
	  "  workers: 2\n",
	    4, "workers: 2 needs 3 EAL lcores (the main one and one per worker) but eal names 2" },
	{ "dataplane:\n  eal: [-c, \"0x3\"]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
	  "  workers: 4\n",
	    4, "but eal names 2" },
	{ "dataplane:\n  eal: [\"-l0,2\"]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workers: "
	  "2\n",
	    4, "but eal names 2" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  tcp: {max_flows: "
	  "100}\n"
	  "  mqtt: {enabled: true, max_connections: 200}\n",
	    5, "mqtt.max_connections 200 is above tcp.max_flows 100" },
	/* the shared uplink: section is accepted and checked by lib/rules */
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\nuplink:\n  rules:\n"
	  "    - {match: \"a/#/b\"}\n",
	    6, "not a valid MQTT topic filter" },
};

/* Cross-field checks pass when the keys agree; an unset connection limit follows the flows. */
static void
test_cross_fields_agree(void **state)
{
	struct dp_config cfg;
	char err[4096] = "";
	char *path = write_tmp("dataplane:\n  eal: [-l, \"0-2,5\"]\n  workers: 3\n"
			       "  port: {device: x, ipv4: 198.18.0.1/24}\n  tcp: {max_flows: 100}\n"
			       "  mqtt: {enabled: true}\n");

	(void)state;
	if (dp_config_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(cfg.workers, 3);
	assert_int_equal(cfg.broker.max_conns, 100);
	dp_config_free(&cfg);
	unlink(path);
}

/* Every error of a file is reported, each with its own line, not just the first. */
static void
test_every_error_reported(void **state)
{
	struct dp_config cfg;
	char err[4096] = "", want[128];
	char *path = write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
			       "  workerz: 1\n  mbufs: 5\n  icmp: {rate_per_s: 0}\n");

	(void)state;
	assert_int_equal(dp_config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:4:3: unknown key 'workerz'", path);
	assert_non_null(strstr(err, want));
	snprintf(want, sizeof(want), "\n%s:5:10: 5 is out of range", path);
	assert_non_null(strstr(err, want));
	snprintf(want, sizeof(want), "\n%s:6:22: 0 is out of range", path);
	assert_non_null(strstr(err, want));
	unlink(path);
}

static void
test_mqtt_section(void **state)
{
	struct dp_config cfg;
	char err[512] = "";
	char *path = write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
			       "  mqtt: {enabled: true, port: 1884, topic_alias_out_max: 0,\n"
			       "         topic_alias_max: 4, max_inflight: 8}\n");

	(void)state;
	assert_int_equal(dp_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_true(cfg.mqtt.enabled);
	assert_int_equal(cfg.mqtt.port, 1884);
	assert_int_equal(cfg.broker.topic_alias_out_max, 0); /* 0 is valid: no outbound aliases */
	assert_int_equal(cfg.broker.topic_alias_max, 4);
	assert_int_equal(cfg.broker.max_inflight, 8);
	assert_int_equal(cfg.broker.receive_max, 32); /* defaults for the rest */
	assert_int_equal(cfg.broker.queue_full, BROKER_QUEUE_HOLD);
	assert_int_equal(cfg.broker.stall_timeout_ms, 30000);
	dp_config_free(&cfg);
	unlink(path);
	path = write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
			 "  mqtt: {queue_full: drop-oldest, stall_timeout: 2s}\n");
	assert_int_equal(dp_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.broker.queue_full, BROKER_QUEUE_DROP_OLDEST);
	assert_int_equal(cfg.broker.stall_timeout_ms, 2000);
	dp_config_free(&cfg);
	unlink(path);
}

/* dataplane.channel (svc/mqtt_uplink.c): off when absent, on when present; bounds refused. */
static void
test_channel_section(void **state)
{
	struct dp_config cfg;
	char err[512] = "";
	char *path =
	    write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n");

	(void)state;
	assert_int_equal(dp_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_false(cfg.channel.enabled);
	assert_string_equal(cfg.channel.path, "/run/edgegw/dpchan.sock");
	dp_config_free(&cfg);
	unlink(path);
	path = write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
			 "  channel: {path: /tmp/x.sock, pending_bytes: 1M, max_pending: 64,\n"
			 "            reconnect_max: 2s}\n");
	assert_int_equal(dp_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_true(cfg.channel.enabled);
	assert_string_equal(cfg.channel.path, "/tmp/x.sock");
	assert_int_equal(cfg.channel.pending_bytes, 1u << 20);
	assert_int_equal(cfg.channel.max_pending, 64);
	assert_int_equal(cfg.channel.reconnect_max_ms, 2000);
	dp_config_free(&cfg);
	unlink(path);
	path = write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
			 "  channel: {max_pending: 1, pending_bytes: 1k, bogus: 1}\n");
	assert_int_equal(dp_config_load(path, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[16, 16777216]"));
	assert_non_null(strstr(err, "[262144, 1073741824]"));
	assert_non_null(strstr(err, "bogus"));
	unlink(path);
}

/* The parser and broker_config_check() read one table (broker_conf.c): a value one accepts the
 * other accepts, at both ends of each range (they disagreed on max_packet_size: 64 was read,
 * then refused by the check). */
static void
test_parser_and_check_agree(void **state)
{
	static const struct {
		const char *kv;
		bool ok;
	} cases[] = {
		{ "max_packet_size: 127", false },
		{ "max_packet_size: 128", true },
		{ "max_packet_size: 64", false },
		{ "client_id_max: 22", false },
		{ "client_id_max: 23", true },
		{ "receive_maximum: 0", false },
		{ "receive_maximum: 65535", true },
		{ "keepalive_max: 18h", true },  /* 64800 s */
		{ "keepalive_max: 19h", false }, /* over 65535 s */
		{ "connect_timeout: 99ms", false },
		{ "max_queued_messages: 0", true },
		{ "max_connections: 0", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dp_config cfg;
		char text[256], err[1024] = "";
		char *path;
		int rc;

		snprintf(text, sizeof(text),
		    "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
		    "  mqtt: {%s}\n",
		    cases[i].kv);
		path = write_tmp(text);
		rc = dp_config_load(path, &cfg, err, sizeof(err));
		if ((rc == 0) != cases[i].ok)
			fail_msg("'%s': parser says %d (%s)", cases[i].kv, rc, err);
		if (rc == 0) {
			assert_int_equal(broker_config_check(&cfg.broker, err, sizeof(err)), 0);
			dp_config_free(&cfg);
		}
		unlink(path);
	}
	/* and the check refuses what the parser refuses, naming the key */
	{
		struct broker_config b;
		char err[256];

		broker_config_defaults(&b);
		b.max_packet_size = 64;
		assert_int_equal(broker_config_check(&b, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "max_packet_size"));
		broker_config_defaults(&b);
		b.connect_timeout_ms = 99;
		assert_int_equal(broker_config_check(&b, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "connect_timeout"));
	}
}

static void
note_restart(void *arg, const char *key)
{
	char *list = arg;

	strcat(list, key);
	strcat(list, ";");
}

/* A reload copies what changes live and names what waits for a restart. */
static void
test_apply_live(void **state)
{
	struct dp_config run, next;
	char err[1024] = "", restart[512] = "";
	char *path;

	(void)state;
	path = write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
			 "  mqtt: {max_connections: 100, max_inflight: 8}\n");
	assert_int_equal(dp_config_load(path, &run, err, sizeof(err)), 0);
	unlink(path);
	path = write_tmp("dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.2/24}\n"
			 "  log_level: debug\n  tcp: {rcvbuf: 128k}\n"
			 "  mqtt: {max_connections: 50, max_inflight: 16, queue_full: drop-new}\n");
	assert_int_equal(dp_config_load(path, &next, err, sizeof(err)), 0);
	unlink(path);
	/* live: log_level, max_connections, queue_full */
	assert_int_equal(dp_config_apply_live(&run, &next, note_restart, restart), 3);
	assert_int_equal(run.broker.max_conns, 50);
	assert_int_equal(run.broker.queue_full, BROKER_QUEUE_DROP_NEW);
	assert_int_equal(run.log_level, next.log_level);
	/* fixed until a restart: the running values stay */
	assert_int_equal(run.broker.max_inflight, 8);
	assert_int_equal(run.ip_be, htonl(0xc6120001));
	assert_string_equal(
	    restart, "dataplane.port.ipv4;dataplane.tcp;dataplane.mqtt.max_inflight;");
	/* the same again changes nothing */
	restart[0] = '\0';
	assert_int_equal(dp_config_apply_live(&run, &next, note_restart, restart), 0);
	assert_string_equal(
	    restart, "dataplane.port.ipv4;dataplane.tcp;dataplane.mqtt.max_inflight;");
	dp_config_free(&run);
	dp_config_free(&next);
}

/*
 * The uplink rules change live: the running config takes the file's set and next keeps the
 * running one (main.c frees it once no lcore reads it); the same set again changes nothing; a
 * file with a bad rule is refused whole, so nothing is applied and the running set stays.
 */
static void
test_apply_live_rules(void **state)
{
	static const char base[] = "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: "
				   "198.18.0.1/24}\nuplink:\n  rules:\n";
	struct dp_config run, next, bad;
	char err[1024] = "", restart[512] = "", text[512];
	struct rules *old;
	char *path;

	(void)state;
	snprintf(text, sizeof(text), "%s    - {match: \"plant/#\"}\n", base);
	path = write_tmp(text);
	assert_int_equal(dp_config_load(path, &run, err, sizeof(err)), 0);
	unlink(path);
	old = run.rules;
	snprintf(text, sizeof(text), "%s    - {match: \"valve/#\", durable: false}\n", base);
	path = write_tmp(text);
	assert_int_equal(dp_config_load(path, &next, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(dp_config_apply_live(&run, &next, note_restart, restart), 1);
	assert_string_equal(restart, "");
	assert_ptr_equal(next.rules, old); /* the caller frees it once no lcore reads it */
	assert_null(rules_match(run.rules, "plant/a", 7));
	assert_non_null(rules_match(run.rules, "valve/1", 7));
	assert_int_equal(
	    mqtt_uplink_classify(run.rules, "valve/1", 7, 1), BROKER_UPLINK_BEST_EFFORT);
	/* the same set again: nothing changes, no pointer moves */
	old = run.rules;
	dp_config_free(&next);
	path = write_tmp(text);
	assert_int_equal(dp_config_load(path, &next, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(dp_config_apply_live(&run, &next, note_restart, restart), 0);
	assert_ptr_equal(run.rules, old);
	/* a bad rule: the whole file is refused with where and why */
	snprintf(
	    text, sizeof(text), "%s    - {match: \"valve/#\"}\n    - {match: \"a/#/b\"}\n", base);
	path = write_tmp(text);
	assert_int_equal(dp_config_load(path, &bad, err, sizeof(err)), -1);
	unlink(path);
	assert_non_null(strstr(err, ":7:"));
	assert_ptr_equal(run.rules, old);
	dp_config_free(&run);
	dp_config_free(&next);
}

static void
test_bad_configs_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct dp_config cfg;
		char err[4096] = "", want[128];
		char *path = write_tmp(bad_cases[i].yaml);

		assert_int_equal(dp_config_load(path, &cfg, err, sizeof(err)), -1);
		assert_non_null(strstr(err, path));
		if (bad_cases[i].line != 0) {
			snprintf(want, sizeof(want), "%s:%u:", path, bad_cases[i].line);
			if (strstr(err, want) == NULL)
				fail_msg("case %zu: '%s' lacks '%s'", i, err, want);
		}
		if (strstr(err, bad_cases[i].reason) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err, bad_cases[i].reason);
		assert_int_equal(cfg.eal_argc, 0); /* nothing half-parsed is kept */
		unlink(path);
	}
}

#define BASE "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"

/* More refusals, one key wrong each, with the line and the reason. */
static const struct bad_case more_bad[] = {
	{ "dataplane:\n  eal: a\n  port: {device: x, ipv4: 198.18.0.1/24}\n", 2,
	    "must be a list of EAL arguments" },
	{ "dataplane:\n  eal: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, "
	  "w, "
	  "x, y, z, a1, b1, c1, d1, e1, f1, g1, h1, i1, j1, k1, l1, m1, n1, o1, p1, q1, r1, s1, "
	  "t1, "
	  "u1, v1, w1, x1, y1, z1, a2, b2, c2, d2, e2, f2, g2, h2, i2, j2, k2, l2, m2]\n"
	  "  port: {device: x, ipv4: 198.18.0.1/24}\n",
	    2, "EAL arguments" },
	{ "dataplane:\n  eal: [a]\n  port: {device: "
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  ", ipv4: 198.18.0.1/24}\n",
	    3, "device name too long" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/7}\n", 3,
	    "prefix length must be 8..30" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/31}\n", 3,
	    "prefix length must be 8..30" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24, mtu: 500}\n", 3,
	    "mtu below 576" },
	{ "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24, rx_desc: 8}\n", 3,
	    "out of range" },
	{ BASE "  hugepages: {size: 4M}\n", 4, "hugepage size is 2M or 1G" },
	{ BASE "  hugepages: {size: 2M, total: 1k}\n", 4, "out of range" },
	{ BASE "  services:\n    echo: {enabled: true, port: 1883}\n  mqtt: {port: 1883}\n", 6,
	    "port 1883 is taken by a test service" },
	{ BASE
	    "  services:\n    echo: {enabled: true, port: 7}\n    discard: {enabled: true, port: "
	    "7}\n",
	    6, "echo and discard share port 7" },
	{ "dataplane:\n  eal: [-l, 0-1]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workers: 2\n",
	    4, "workers: 2 needs 3 EAL lcores" },
	{ "dataplane:\n  eal: [-l0]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workers: 1\n", 4,
	    "needs 2 EAL lcores" },
	{ "dataplane:\n  eal: ['--lcores=0,1']\n  port: {device: x, ipv4: 198.18.0.1/24}\n  "
	  "workers: 2\n",
	    4, "eal names 2" },
	{ "dataplane:\n  eal: [-c, '0x3']\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workers: "
	  "3\n",
	    4, "eal names 2" },
	{ "dataplane:\n  eal: [-l, '0@1,1@2']\n  port: {device: x, ipv4: 198.18.0.1/24}\n  "
	  "workers: "
	  "2\n",
	    4, "eal names 2" },
	{ "dataplane:\n  eal: [-l, 0-1]\n  port: {device: x, ipv4: 198.18.0.1/24}\n  mqtt: "
	  "{max_connections: 9999999}\n  tcp: {max_flows: 64}\n",
	    4, "is above tcp.max_flows" },
	{ BASE "  arp: {timeout: 1ms}\n", 4, "out of range" },
	{ BASE "  icmp: {rate_per_s: 0}\n", 4, "out of range" },
	{ BASE "  pmtu: {entries: 70000}\n", 4, "out of range" },
	{ BASE "  pmtu: {timeout: 1ms}\n", 4, "out of range" },
	{ BASE "  pmtu: {size: 3}\n", 4, "unknown key" },
	{ BASE "  log_level: loud\n", 4, "not one of" },
};

static void
test_more_bad_configs_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(more_bad) / sizeof(more_bad[0]); i++) {
		struct dp_config cfg;
		char err[4096] = "", want[128];
		char *path = write_tmp(more_bad[i].yaml);

		if (dp_config_load(path, &cfg, err, sizeof(err)) == 0) {
			dp_config_free(&cfg);
			fail_msg("case %zu accepted", i);
		}
		if (more_bad[i].line != 0) {
			snprintf(want, sizeof(want), "%s:%u:", path, more_bad[i].line);
			if (strstr(err, want) == NULL)
				fail_msg("case %zu: '%s' lacks '%s'", i, err, want);
		}
		if (strstr(err, more_bad[i].reason) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err, more_bad[i].reason);
		unlink(path);
	}
}

/* Lcore lists EAL accepts that we do not count (a group in parentheses, a reversed range):
 * workers are then left to EAL to check, not refused here. */
static void
test_lcore_forms_left_to_eal(void **state)
{
	static const char *const eal[] = { "[-l, '(0-3)@2']", "[-l, 3-1]", "[-l, '0-']",
		"[-l, '0;1']", "[--lcores, 0-7, -n, 4]" };
	char text[512], err[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(eal) / sizeof(eal[0]); i++) {
		struct dp_config cfg;
		char *path;

		snprintf(text, sizeof(text),
		    "dataplane:\n  eal: %s\n  port: {device: x, ipv4: 198.18.0.1/24}\n  workers: "
		    "4\n",
		    eal[i]);
		path = write_tmp(text);
		if (dp_config_load(path, &cfg, err, sizeof(err)) != 0)
			fail_msg("case %zu: %s", i, err);
		assert_int_equal(cfg.workers, 4);
		dp_config_free(&cfg);
		unlink(path);
	}
}

/* Every key a reload cannot change live is named, and none of them is applied. */
static void
test_restart_keys(void **state)
{
	struct dp_config run, next;
	char err[4096] = "", restart[1024] = "";
	char *path;

	(void)state;
	path = write_tmp(BASE "  mqtt: {port: 1883}\n");
	assert_int_equal(dp_config_load(path, &run, err, sizeof(err)), 0);
	unlink(path);
	path = write_tmp(
	    "dataplane:\n  eal: [b]\n"
	    "  port: {device: y, ipv4: 198.18.0.1/24, gateway: 198.18.0.254, rx_desc: "
	    "512, mtu: 1400}\n"
	    "  hugepages: {size: 1G}\n  workers: 2\n  mbufs: 4096\n"
	    "  idle_sleep_us: 10\n  arp: {entries: 64}\n  pmtu: {entries: 32, timeout: 1m}\n"
	    "  icmp: {rate_per_s: 5}\n"
	    "  services:\n    echo: {enabled: true}\n    discard: {enabled: true}\n"
	    "  mqtt: {port: 1884}\n"
	    "uplink: {site: b}\n");
	if (dp_config_load(path, &next, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	unlink(path);
	/* uplink: live (test_apply_live_rules), the only change applied */
	assert_int_equal(dp_config_apply_live(&run, &next, note_restart, restart), 1);
	assert_string_equal(restart,
	    "dataplane.eal;dataplane.port.device;dataplane.port.gateway;"
	    "dataplane.port.rx_desc/tx_desc;dataplane.port.mtu;dataplane.hugepages;"
	    "dataplane.workers;dataplane.mbufs;dataplane.idle_sleep_us;dataplane.arp;"
	    "dataplane.pmtu;dataplane.icmp.rate_per_s;dataplane.services.echo;dataplane.services."
	    "discard;"
	    "dataplane.mqtt.enabled/port;");
	assert_string_equal(run.rules->site, "b");
	assert_string_equal(run.device, "x");
	assert_int_equal(run.workers, 1);
	assert_int_equal(run.pmtu_entries, 1024); /* the defaults: RFC 1191's 10 minutes */
	assert_int_equal(run.pmtu_timeout_ms, 600000);
	assert_int_equal(next.pmtu_entries, 32);
	assert_int_equal(next.pmtu_timeout_ms, 60000);
	dp_config_free(&run);
	dp_config_free(&next);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lab_config_loads),
		cmocka_unit_test(test_bad_configs_rejected),
		cmocka_unit_test(test_mqtt_section),
		cmocka_unit_test(test_channel_section),
		cmocka_unit_test(test_every_error_reported),
		cmocka_unit_test(test_cross_fields_agree),
		cmocka_unit_test(test_parser_and_check_agree),
		cmocka_unit_test(test_apply_live),
		cmocka_unit_test(test_apply_live_rules),
		cmocka_unit_test(test_more_bad_configs_rejected),
		cmocka_unit_test(test_lcore_forms_left_to_eal),
		cmocka_unit_test(test_restart_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
