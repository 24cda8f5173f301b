/*
 * main.c: edgegw-dataplane start-up and shutdown. Loads the config (EAL arguments included),
 * brings the port up, builds one context per worker lcore, launches the workers and keeps the
 * main lcore for control: signals, link watch, telemetry. Failures at start-up are loud
 * (rte_exit with the reason); nothing below main exits.
 *
 * Under systemd (Type=notify) it says READY once the workers run, pings the watchdog only while
 * every worker's loop is turning, and says STOPPING on the way out. SIGHUP re-reads and checks
 * the config (a bad one is reported and the running one stays); a good one changes what can
 * change live (log level, broker limits, uplink rules) and names what needs a restart.
 *
 *   edgegw-dataplane -c /etc/edgegw/gateway.yaml [--check]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_timer.h>
#include <systemd/sd-daemon.h>

#include "arp.h"
#include "icmp.h"
#include "pmtu.h"
#include "dp_main.h"
#include "log.h"
#include "nic.h"
#include "mqtt_uplink.h"
#include "rules.h"
#include "svc.h"
#include "tcp.h"

struct dp_state dp_state;

static volatile sig_atomic_t reload_asked;

/* Uplink rule sets a reload replaced while an lcore did not say it had let go of them (a stuck
 * worker): freed at a later swap every lcore took, or at exit. */
#define DP_RULES_RETIRED_MAX 8
static struct rules *rules_retired[DP_RULES_RETIRED_MAX];
static unsigned n_rules_retired;
#define DP_RULES_SWAP_WAIT_MS 2000

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_asked = 1;
	else
		dp_state.quit = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: edgegw-dataplane [-c CONFIG] [--check]\n"
	    "  -c, --config FILE  gateway config (default " EDGEGW_CONFDIR "/gateway.yaml)\n"
	    "      --check        validate the config and exit\n"
	    "      --prepare-plan print what the host needs before start (hugepages, NIC\n"
	    "                     driver binding) for edgegw-prepare, and exit\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         this help\n"
	    "Signals: SIGTERM/SIGINT stop, SIGHUP re-reads the config. See edgegw-dataplane(8).\n");
}

static struct rte_mempool *
pool_for_socket(int socket, uint32_t nb)
{
	static struct rte_mempool *pools[RTE_MAX_NUMA_NODES];
	char name[RTE_MEMPOOL_NAMESIZE];
	unsigned idx = socket < 0 ? 0 : (unsigned)socket;

	if (pools[idx] == NULL) {
		snprintf(name, sizeof(name), "mbuf_s%u", idx);
		pools[idx] =
		    rte_pktmbuf_pool_create(name, nb, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
		if (pools[idx] == NULL)
			rte_exit(EXIT_FAILURE, "mbuf pool of %u on socket %d: %s\n", nb, socket,
			    rte_strerror(rte_errno));
	}
	return pools[idx];
}

static void
workers_create(void)
{
	const struct dp_config *cfg = &dp_state.cfg;
	struct rte_mempool *qpools[DP_MAX_LCORES];
	struct nic_port_conf pc = { .device = cfg->device,
		.n_queues = cfg->workers,
		.rx_desc = cfg->rx_desc,
		.tx_desc = cfg->tx_desc,
		.mtu = cfg->mtu };
	struct nic_caps caps;
	struct rte_ether_addr mac;
	unsigned lcore, w = 0;
	int rc;

	if (rte_lcore_count() - 1 < cfg->workers)
		rte_exit(EXIT_FAILURE,
		    "%u worker(s) configured but the EAL has %u worker lcore(s) "
		    "(-l in dataplane.eal)\n",
		    cfg->workers, rte_lcore_count() - 1);
	RTE_LCORE_FOREACH_WORKER (lcore) {
		if (w == cfg->workers)
			break;
		qpools[w++] = pool_for_socket((int)rte_lcore_to_socket_id(lcore), cfg->mbufs);
	}
	if (nic_port_find(cfg->device, &dp_state.port_id) != 0)
		rte_exit(
		    EXIT_FAILURE, "port '%s' not found (dataplane.port.device)\n", cfg->device);
	rc = nic_port_setup(dp_state.port_id, &pc, qpools, &caps, &mac);
	if (rc != 0)
		rte_exit(EXIT_FAILURE, "port '%s' setup failed: %s\n", cfg->device, strerror(-rc));

	/* Store and forward: each MQTT worker's channel to the agent (dataplane.channel). */
	mqtt_uplink_configure(&cfg->channel);
	(void)mqtt_uplink_set_rules(cfg->rules, 0); /* no worker runs yet: nothing to wait for */
	/* The enabled services; some (MQTT) number their instances by worker and learn how many
	 * workers there are first. */
	for (const struct dp_service *const *sp = dp_services; *sp != NULL; sp++) {
		struct dp_service_conf sc = dp_config_service(cfg, (*sp)->name);

		if (!sc.enabled)
			continue;
		if (dp_state.n_svc == DP_MAX_SERVICES)
			rte_exit(EXIT_FAILURE, "more than %u services\n", DP_MAX_SERVICES);
		if ((*sp)->init != NULL && (rc = (*sp)->init(&sc, cfg->workers)) != 0)
			rte_exit(EXIT_FAILURE, "%s service: %s\n", (*sp)->name, strerror(-rc));
		dp_state.svc_conf[dp_state.n_svc] = sc;
		dp_state.svc[dp_state.n_svc++] = *sp;
	}
	w = 0;
	RTE_LCORE_FOREACH_WORKER (lcore) {
		struct dp_lcore *lc;
		struct tcp_config tc = cfg->tcp;

		if (w == cfg->workers)
			break;
		lc = rte_zmalloc_socket("dp_lcore", sizeof(*lc), RTE_CACHE_LINE_SIZE,
		    (int)rte_lcore_to_socket_id(lcore));
		if (lc == NULL)
			rte_exit(EXIT_FAILURE, "out of memory for lcore %u\n", lcore);
		lc->lcore_id = lcore;
		lc->worker_idx = w;
		lc->port_id = dp_state.port_id;
		lc->queue_id = (uint16_t)w;
		lc->pool = qpools[w];
		lc->cfg = cfg;
		lc->caps = caps;
		lc->mac = mac;
		lc->ip_be = cfg->ip_be;
		lc->netmask_be = cfg->netmask_be;
		lc->gateway_be = cfg->gateway_be;
		lc->tsc_hz = rte_get_tsc_hz();
		lc->now_tsc = rte_rdtsc();
		/* MSS from the port MTU unless the config asks for less. */
		tc.mss = (uint16_t)RTE_MIN(tc.mss, caps.mtu - 40);
		if ((rc = arp_lcore_init(lc, cfg->arp_entries, cfg->arp_timeout_ms)) != 0 ||
		    (rc = pmtu_lcore_init(lc, cfg->pmtu_entries, cfg->pmtu_timeout_ms)) != 0 ||
		    (rc = tcp_lcore_init(lc, &tc)) != 0)
			rte_exit(EXIT_FAILURE, "lcore %u init: %s\n", lcore, strerror(-rc));
		for (unsigned i = 0; i < dp_state.n_svc; i++)
			if ((rc = dp_state.svc[i]->listen(lc, &dp_state.svc_conf[i])) != 0)
				rte_exit(EXIT_FAILURE, "%s service on port %u: %s\n",
				    dp_state.svc[i]->name, dp_state.svc_conf[i].port,
				    strerror(-rc));
		dp_state.workers[w++] = lc;
	}
	dp_state.n_workers = w;
	arp_lcores_link(dp_state.workers, w);
	if ((rc = icmp_lcores_link(dp_state.workers, w)) != 0)
		rte_exit(EXIT_FAILURE, "ICMP rings between the workers: %s\n", strerror(-rc));
}

static void
counters_log_final(void)
{
	for (unsigned id = 0; id < DPC__COUNT; id++) {
		uint64_t v = dp_counter_sum(id);

		if (v != 0)
			log_info("counter %s = %llu", dp_counter_name(id), (unsigned long long)v);
	}
}

/* reload: the settings that differ but need a restart, gathered for one log line */
struct restart_list {
	char text[1024];
	size_t len;
	unsigned n;
};

static void
restart_note(void *arg, const char *key)
{
	struct restart_list *r = arg;
	int w;

	r->n++;
	if (r->len >= sizeof(r->text))
		return;
	w = snprintf(r->text + r->len, sizeof(r->text) - r->len, "%s%s", r->n > 1 ? ", " : "", key);
	if (w > 0)
		r->len += (size_t)w;
}

static void
rules_retired_free(void)
{
	for (unsigned i = 0; i < n_rules_retired; i++)
		rules_free(rules_retired[i]);
	n_rules_retired = 0;
}

/*
 * The reload changed `uplink:` (dp_config_apply_live put the new set in the running config and
 * the old one in next): every worker takes the new set at its next poll; the old one is freed
 * once none reads it. Messages a worker took under the old set keep their promise: those
 * deferred for durability still wait for the agent's answer (dataplane/mqtt/uplink.c).
 */
static void
uplink_rules_swap(struct dp_config *next)
{
	struct rules *old = next->rules;
	const struct rules *r = dp_state.cfg.rules;

	next->rules = NULL;
	if (mqtt_uplink_set_rules(r, DP_RULES_SWAP_WAIT_MS) == 0) {
		rules_free(old);
		rules_retired_free(); /* every lcore holds the newest set: none reads these */
		log_info("reload: uplink rules applied on every worker (%zu rules, %zu downlink)",
		    r != NULL ? r->n : 0, r != NULL ? r->n_down : 0);
		return;
	}
	if (n_rules_retired < DP_RULES_RETIRED_MAX)
		rules_retired[n_rules_retired++] = old;
	else
		log_err("reload: too many uplink rule sets a worker may still read: one is leaked");
	log_warnx("reload: a worker did not take the new uplink rules within %u ms; the old set "
		  "is kept until it does",
	    DP_RULES_SWAP_WAIT_MS);
}

/*
 * SIGHUP: the config is read and checked whole; a bad one is reported and changes nothing. A
 * good one: what can change live does (log level; the broker's limits, applied by each worker
 * on its own lcore through the service's reload op; the uplink rules, taken by each worker's
 * uplink at its next poll), what cannot is named as needing a restart and keeps its running
 * value.
 */
static void
reload(void)
{
	struct dp_config next;
	struct restart_list r = { .len = 0, .n = 0 };
	char err[4096]; /* every config error, one per line */
	const struct rules *rules_before;
	int live;

	sd_notify(0, "RELOADING=1");
	if (dp_config_load(dp_state.cfg.path, &next, err, sizeof(err)) != 0) {
		log_err("reload: config rejected, the running one stays: %s", err);
		sd_notify(0, "READY=1");
		return;
	}
	rules_before = dp_state.cfg.rules;
	live = dp_config_apply_live(&dp_state.cfg, &next, restart_note, &r);
	log_set_level((enum log_level)dp_state.cfg.log_level);
	if (dp_state.cfg.rules != rules_before)
		uplink_rules_swap(&next);
	for (unsigned i = 0; i < dp_state.n_svc && live > 0; i++) {
		struct dp_service_conf sc = dp_config_service(&dp_state.cfg, dp_state.svc[i]->name);
		int applied;

		if (dp_state.svc[i]->reload == NULL)
			continue;
		applied = dp_state.svc[i]->reload(&sc);
		if (applied != (int)dp_state.n_workers)
			log_warnx("reload: %s: %d of %u workers applied the new settings",
			    dp_state.svc[i]->name, applied, dp_state.n_workers);
	}
	log_info("reload: %s: %d setting(s) changed live%s%s", dp_state.cfg.path, live,
	    r.n > 0 ? "; needs a restart (running values kept): " : "", r.n > 0 ? r.text : "");
	dp_config_free(&next);
	sd_notify(0, "READY=1");
}

/* The watchdog is pinged only while every worker's loop turns (its now_tsc moves). */
static void
watchdog_poll(uint64_t period_us)
{
	static uint64_t last_tsc[DP_MAX_LCORES], last_ping_us;
	static bool stalled_logged;
	uint64_t now_us = rte_get_timer_cycles() / (rte_get_timer_hz() / 1000000);

	if (period_us == 0 || now_us - last_ping_us < period_us / 2)
		return;
	for (unsigned i = 0; i < dp_state.n_workers; i++) {
		uint64_t t = __atomic_load_n(&dp_state.workers[i]->now_tsc, __ATOMIC_RELAXED);

		if (t == last_tsc[i]) {
			if (!stalled_logged)
				log_err("worker %u (lcore %u) is stuck: not pinging the watchdog",
				    i, dp_state.workers[i]->lcore_id);
			stalled_logged = true;
			return;
		}
		last_tsc[i] = t;
	}
	sd_notify(0, "WATCHDOG=1");
	last_ping_us = now_us;
}

static void
control_loop(void)
{
	bool was_up = false, up;
	uint32_t speed;
	unsigned ticks = 0;
	uint64_t wd_us = 0;

	if (sd_watchdog_enabled(0, &wd_us) <= 0)
		wd_us = 0;
	while (!dp_state.quit) {
		usleep(100 * 1000);
		if (reload_asked) {
			reload_asked = 0;
			reload();
		}
		watchdog_poll(wd_us);
		if (++ticks % 10 == 0 && nic_link_get(dp_state.port_id, &up, &speed) == 0 &&
		    up != was_up) {
			log_info("port %u link %s (%u Mbps)", dp_state.port_id, up ? "up" : "down",
			    speed);
			was_up = up;
		}
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "prepare-plan", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = EDGEGW_CONFDIR "/gateway.yaml";
	char err[4096]; /* every config error, one per line */
	bool check = false, plan = false;
	enum log_level lvl = LOG_LVL_INFO;
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'P':
			plan = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("edgegw-dataplane %s\n", EDGEGW_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	log_init("edgegw-dataplane", LOG_LVL_INFO);
	if (dp_config_load(path, &dp_state.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "edgegw-dataplane: config rejected: %s\n", err);
		return 1;
	}
	lvl = (enum log_level)dp_state.cfg.log_level;
	if (check) {
		printf("%s: ok\n", path);
		return 0;
	}
	if (plan) {
		/* one line per step, for configs/systemd/edgegw-prepare (shell) */
		if (dp_config_uses_hugepages(&dp_state.cfg))
			printf("hugepages %uK %llu\n", dp_state.cfg.hugepage_kb,
			    (unsigned long long)dp_state.cfg.hugepages_bytes);
		if (dp_config_is_pci(dp_state.cfg.device))
			printf("bind %s %s\n", dp_state.cfg.device,
			    dp_config_port_driver(&dp_state.cfg));
		return 0;
	}
	log_set_level(lvl);

	{
		/* The EAL may reorder its argv: give it a copy. */
		char *eal_argv[DP_EAL_ARGS_MAX];

		memcpy(eal_argv, dp_state.cfg.eal_argv, sizeof(eal_argv));
		if (dp_log_route_dpdk() != 0)
			log_warnx("DPDK's log is not routed through ours: lines may appear twice");
		rc = rte_eal_init(dp_state.cfg.eal_argc, eal_argv);
		if (rc < 0)
			rte_exit(EXIT_FAILURE, "EAL init failed (dataplane.eal in %s): %s\n", path,
			    rte_strerror(rte_errno));
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	rte_timer_subsystem_init();
	dp_state.start_tsc = rte_rdtsc();

	workers_create();
	if (dp_telemetry_init() != 0)
		log_warnx("telemetry commands not registered (telemetry disabled?)");
	for (unsigned i = 0; i < dp_state.n_workers; i++)
		rte_eal_remote_launch(
		    dp_worker_loop, dp_state.workers[i], dp_state.workers[i]->lcore_id);
	log_info("ready: %u worker(s), serving on port %u (%s)", dp_state.n_workers,
	    dp_state.port_id, dp_state.cfg.device);

	sd_notifyf(0, "READY=1\nSTATUS=%u worker(s) serving on %s", dp_state.n_workers,
	    dp_state.cfg.device);
	control_loop();
	sd_notify(0, "STOPPING=1");
	log_info("stopping");
	rte_eal_mp_wait_lcore();
	counters_log_final();
	icmp_lcores_unlink(dp_state.workers, dp_state.n_workers);
	for (unsigned i = 0; i < dp_state.n_workers; i++) {
		arp_lcore_fini(dp_state.workers[i]);
		pmtu_lcore_fini(dp_state.workers[i]);
		rte_free(dp_state.workers[i]);
	}
	nic_port_close(dp_state.port_id);
	rules_retired_free(); /* the workers have stopped */
	dp_config_free(&dp_state.cfg);
	rte_eal_cleanup();
	log_info("stopped");
	return 0;
}
