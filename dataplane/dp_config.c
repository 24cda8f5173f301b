/* dp_config.c: parse and validate the `dataplane:` section of the gateway config (lib/conf). */
#include "dp_config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_conf.h"
#include "conf.h"
#include "rules.h"
#include "tcp_conf.h"
#include "log.h"

static const char *const top_keys[] = { "dataplane", "agent", "uplink", NULL };
static const char *const dp_keys[] = { "eal", "log_level", "port", "workers", "mbufs",
	"idle_sleep_us", "hugepages", "arp", "pmtu", "icmp", "tcp", "services", "mqtt", "channel",
	NULL };
static const char *const port_keys[] = { "device", "driver", "ipv4", "gateway", "rx_desc",
	"tx_desc", "mtu", NULL };
static const char *const hugepage_keys[] = { "size", "total", NULL };
static const char *const port_drivers[] = { "vfio-pci", "uio_pci_generic", "igb_uio", NULL };
static const char *const svc_keys[] = { "echo", "discard", NULL };
static const char *const one_svc_keys[] = { "enabled", "port", NULL };
/* dataplane.mqtt: the service's own keys; the broker's are broker_config_keys() */
static const char *const mqtt_keys[] = { "enabled", "port", NULL };
static const char *const arp_keys[] = { "entries", "timeout", NULL };
static const char *const icmp_keys[] = { "rate_per_s", NULL };
static const char *const pmtu_keys[] = { "entries", "timeout", NULL };

static void
parse_eal(conf_node n, struct dp_config *cfg)
{
	if (!conf_present(n)) {
		conf_error(n, "dataplane.eal is required (EAL arguments)");
		return;
	}
	if (!conf_is_seq(n)) {
		conf_error(n, "dataplane.eal must be a list of EAL arguments");
		return;
	}
	cfg->eal_argv[cfg->eal_argc++] = strdup("edgegw-dataplane");
	for (size_t i = 0; i < conf_seq_len(n); i++) {
		const char *s;

		if (cfg->eal_argc >= DP_EAL_ARGS_MAX - 1) {
			conf_error(
			    conf_seq_at(n, i), "more than %d EAL arguments", DP_EAL_ARGS_MAX - 2);
			return;
		}
		if (conf_str(conf_seq_at(n, i), &s) == 0)
			cfg->eal_argv[cfg->eal_argc++] = strdup(s);
	}
}

static void
parse_port(conf_node n, struct dp_config *cfg)
{
	const char *dev = NULL;
	uint32_t v;

	if (!conf_present(n)) {
		conf_error(n, "dataplane.port is required");
		return;
	}
	conf_check_keys(n, port_keys);
	if (conf_str(conf_get(n, "device"), &dev) == 0) {
		if (strlen(dev) >= sizeof(cfg->device))
			conf_error(conf_get(n, "device"), "device name too long");
		else
			strcpy(cfg->device, dev);
	}
	/* the kernel driver a PCI port is bound to before start (edgegw-prepare) */
	cfg->port_driver = 0;
	conf_get_enum(n, "driver", 0, port_drivers, &cfg->port_driver);
	if (conf_ipv4_prefix(conf_get(n, "ipv4"), &cfg->ip_be, &cfg->prefix_len) == 0) {
		if (cfg->prefix_len < 8 || cfg->prefix_len > 30)
			conf_error(conf_get(n, "ipv4"), "prefix length must be 8..30");
		cfg->netmask_be = htonl(cfg->prefix_len ? ~0u << (32 - cfg->prefix_len) : 0);
	}
	if (conf_present(conf_get(n, "gateway")) &&
	    conf_ipv4(conf_get(n, "gateway"), &cfg->gateway_be) == 0 &&
	    (cfg->gateway_be & cfg->netmask_be) != (cfg->ip_be & cfg->netmask_be))
		conf_error(conf_get(n, "gateway"), "gateway is not on the port's subnet");
	if (conf_get_u32(n, "rx_desc", 1024, 64, 16384, &v) == 0)
		cfg->rx_desc = (uint16_t)v;
	if (conf_get_u32(n, "tx_desc", 1024, 64, 16384, &v) == 0)
		cfg->tx_desc = (uint16_t)v;
	if (conf_get_u32(n, "mtu", 0, 0, 9000, &v) == 0)
		cfg->mtu = (uint16_t)v;
	if (cfg->mtu != 0 && cfg->mtu < 576)
		conf_error(conf_get(n, "mtu"), "mtu below 576");
}

static void
parse_service(conf_node svcs, const char *name, uint16_t def_port, struct dp_service_conf *s)
{
	conf_node n = conf_get(svcs, name);
	uint32_t port;

	s->enabled = false;
	s->port = def_port;
	if (!conf_present(n))
		return;
	conf_check_keys(n, one_svc_keys);
	conf_get_bool(n, "enabled", false, &s->enabled);
	if (conf_get_u32(n, "port", def_port, 1, 65535, &port) == 0)
		s->port = (uint16_t)port;
}

/* dataplane.mqtt: the broker on the dataplane's TCP. The service's keys are read here, the
 * broker's limits by the broker (broker_conf.c), defaults from broker_config_defaults(). */
static void
parse_mqtt(conf_node n, struct dp_config *cfg)
{
	const char *const *bk = broker_config_keys();
	const char *keys[64];
	size_t nk = 0;
	uint32_t u;

	cfg->mqtt.enabled = false;
	cfg->mqtt.port = 1883;
	if (!conf_present(n))
		return;
	for (size_t i = 0; mqtt_keys[i] != NULL; i++)
		keys[nk++] = mqtt_keys[i];
	for (size_t i = 0; bk[i] != NULL && nk < sizeof(keys) / sizeof(keys[0]) - 1; i++)
		keys[nk++] = bk[i];
	keys[nk] = NULL;
	conf_check_keys(n, keys);
	conf_get_bool(n, "enabled", true, &cfg->mqtt.enabled);
	if (conf_get_u32(n, "port", 1883, 1, 65535, &u) == 0)
		cfg->mqtt.port = (uint16_t)u;
	broker_config_parse(n, &cfg->broker);
	if ((cfg->echo.enabled && cfg->echo.port == cfg->mqtt.port) ||
	    (cfg->discard.enabled && cfg->discard.port == cfg->mqtt.port))
		conf_error(
		    conf_get(n, "port"), "port %u is taken by a test service", cfg->mqtt.port);
}

/* dataplane.hugepages: what edgegw-prepare reserves before start (unless eal says --no-huge). */
static void
parse_hugepages(conf_node n, struct dp_config *cfg)
{
	uint64_t v;

	cfg->hugepage_kb = 2048;
	cfg->hugepages_bytes = 1ull << 30;
	if (!conf_present(n))
		return;
	conf_check_keys(n, hugepage_keys);
	if (conf_get_size_bytes(n, "size", 2u << 20, 2u << 20, 1u << 30, &v) == 0) {
		if (v != 2u << 20 && v != 1u << 30)
			conf_error(conf_get(n, "size"), "hugepage size is 2M or 1G");
		cfg->hugepage_kb = (uint32_t)(v >> 10);
	}
	if (conf_get_size_bytes(n, "total", cfg->hugepages_bytes, 2u << 20, 1ull << 40, &v) == 0)
		cfg->hugepages_bytes = v;
}

bool
dp_config_is_pci(const char *device)
{
	unsigned dom, bus, dev, fn;
	char end;

	return sscanf(device, "%4x:%2x:%2x.%1x%c", &dom, &bus, &dev, &fn, &end) == 4;
}

bool
dp_config_uses_hugepages(const struct dp_config *cfg)
{
	for (int i = 0; i < cfg->eal_argc; i++)
		if (strcmp(cfg->eal_argv[i], "--no-huge") == 0)
			return false;
	return true;
}

const char *
dp_config_port_driver(const struct dp_config *cfg)
{
	return port_drivers[cfg->port_driver];
}

/* Lcores an EAL argument list names (-l/--lcores list, -c mask); 0 when it names none. */
static unsigned
eal_lcore_count(const struct dp_config *cfg)
{
	for (int i = 1; i < cfg->eal_argc; i++) {
		const char *a = cfg->eal_argv[i], *v = NULL;
		bool mask = false;

		if ((strcmp(a, "-l") == 0 || strcmp(a, "--lcores") == 0) && i + 1 < cfg->eal_argc)
			v = cfg->eal_argv[i + 1];
		else if (strncmp(a, "-l", 2) == 0 && a[2] != '\0' && a[2] != '-')
			v = a + 2;
		else if (strncmp(a, "--lcores=", 9) == 0)
			v = a + 9;
		else if (strcmp(a, "-c") == 0 && i + 1 < cfg->eal_argc)
			v = cfg->eal_argv[i + 1], mask = true;
		if (v == NULL)
			continue;
		if (mask) {
			unsigned long long m = strtoull(v, NULL, 16);

			return (unsigned)__builtin_popcountll(m);
		}
		/* "0-3,5" or "0,2": ranges and singles; lcore@cpu groups count as one each. */
		unsigned n = 0;
		const char *p = v;

		while (*p != '\0') {
			char *end;
			unsigned long lo = strtoul(p, &end, 10), hi = lo;

			if (end == p)
				return 0; /* a form we do not read ((0-3)@2 ...): leave it to EAL */
			p = end;
			if (*p == '-') {
				hi = strtoul(p + 1, &end, 10);
				if (end == p + 1 || hi < lo)
					return 0;
				p = end;
			}
			n += (unsigned)(hi - lo + 1);
			if (*p == '@') /* lcore@cpu: the cpu is not an lcore */
				p += strcspn(p, ",");
			if (*p == ',')
				p++;
			else if (*p != '\0')
				return 0;
		}
		return n;
	}
	return 0;
}

/*
 * Keys that are fine alone but not together: caught at --check time instead of as a failed
 * start (workers without lcores) or a limit that can never be reached (connections that have
 * no flow to live in).
 */
static void
check_cross(conf_node dp, struct dp_config *cfg)
{
	conf_node mq = conf_get(dp, "mqtt");
	unsigned lcores = eal_lcore_count(cfg);

	if (lcores != 0 && cfg->workers > lcores - 1)
		conf_error(conf_present(conf_get(dp, "workers")) ? conf_get(dp, "workers")
								 : conf_get(dp, "eal"),
		    "workers: %u needs %u EAL lcores (the main one and one per worker) but eal "
		    "names %u: add lcores to -l or lower workers",
		    cfg->workers, cfg->workers + 1, lcores);
	if (!cfg->mqtt.enabled)
		return;
	if (!conf_present(conf_get(mq, "max_connections"))) {
		/* The default follows the flow table, so an unset limit is a reachable one. */
		if (cfg->broker.max_conns > cfg->tcp.max_flows)
			cfg->broker.max_conns = cfg->tcp.max_flows;
	} else if (cfg->broker.max_conns > cfg->tcp.max_flows) {
		conf_error(conf_get(mq, "max_connections"),
		    "mqtt.max_connections %u is above tcp.max_flows %u (both per worker; each "
		    "connection needs a flow): raise tcp.max_flows or lower max_connections",
		    cfg->broker.max_conns, cfg->tcp.max_flows);
	}
}

/* uplink: (lib/rules) is shared with the agent: checked here too, so --check refuses what the
 * agent would; the dataplane keeps the rules to decide which sensor PUBLISHes go up
 * (svc/mqtt_uplink.c). */
static void
parse_uplink(conf_node up, struct dp_config *cfg)
{
	if (rules_parse(up, &cfg->rules) != 0)
		cfg->rules = NULL;
}

int
dp_config_load(const char *path, struct dp_config *cfg, char *err, size_t errlen)
{
	struct conf_doc *doc;
	conf_node root, dp;
	uint64_t v;
	uint32_t u;

	memset(cfg, 0, sizeof(*cfg));
	tcp_config_defaults(&cfg->tcp);
	broker_config_defaults(&cfg->broker);
	if (conf_load_file(path, &doc, err, errlen) != 0)
		return -1;
	root = conf_root(doc);
	conf_check_keys(root, top_keys);
	parse_uplink(conf_get(root, "uplink"), cfg);
	dp = conf_get(root, "dataplane");
	if (!conf_present(dp)) {
		conf_error(root, "no 'dataplane' section");
		goto out;
	}
	conf_check_keys(dp, dp_keys);
	parse_eal(conf_get(dp, "eal"), cfg);
	cfg->log_level = LOG_LVL_INFO;
	conf_get_enum(dp, "log_level", LOG_LVL_INFO, log_level_names, &cfg->log_level);
	parse_port(conf_get(dp, "port"), cfg);
	parse_hugepages(conf_get(dp, "hugepages"), cfg);
	if (conf_get_u32(dp, "workers", 1, 1, 64, &u) == 0)
		cfg->workers = (uint16_t)u;
	conf_get_u32(dp, "mbufs", 32768, 1024, 16u << 20, &cfg->mbufs);
	conf_get_u32(dp, "idle_sleep_us", 0, 0, 100000, &cfg->idle_sleep_us);
	conf_check_keys(conf_get(dp, "arp"), arp_keys);
	conf_get_u32(conf_get(dp, "arp"), "entries", 4096, 16, 1u << 20, &cfg->arp_entries);
	if (conf_get_duration_ms(conf_get(dp, "arp"), "timeout", 300000, 1000, 86400000, &v) == 0)
		cfg->arp_timeout_ms = (uint32_t)v;
	conf_check_keys(conf_get(dp, "pmtu"), pmtu_keys);
	conf_get_u32(conf_get(dp, "pmtu"), "entries", 1024, 16, 65535, &cfg->pmtu_entries);
	if (conf_get_duration_ms(conf_get(dp, "pmtu"), "timeout", 600000, 1000, 86400000, &v) == 0)
		cfg->pmtu_timeout_ms = (uint32_t)v;
	conf_check_keys(conf_get(dp, "icmp"), icmp_keys);
	conf_get_u32(conf_get(dp, "icmp"), "rate_per_s", 1000, 1, 10000000, &cfg->icmp_rate_per_s);
	if (conf_present(conf_get(dp, "tcp")))
		tcp_config_parse(conf_get(dp, "tcp"), &cfg->tcp);
	conf_check_keys(conf_get(dp, "services"), svc_keys);
	parse_service(conf_get(dp, "services"), "echo", 7, &cfg->echo);
	parse_service(conf_get(dp, "services"), "discard", 9, &cfg->discard);
	if (cfg->echo.enabled && cfg->discard.enabled && cfg->echo.port == cfg->discard.port)
		conf_error(conf_get(conf_get(dp, "services"), "discard"),
		    "echo and discard share port %u", cfg->echo.port);
	parse_mqtt(conf_get(dp, "mqtt"), cfg);
	dpchan_conf_parse(conf_get(dp, "channel"), &cfg->channel); /* lib/dpchan */
	check_cross(dp, cfg);
out:
	if (conf_first_error(doc) != NULL) {
		conf_format_errors(doc, err, errlen);
		conf_free(doc);
		dp_config_free(cfg);
		return -1;
	}
	cfg->path = strdup(path);
	conf_free(doc);
	return 0;
}

void
dp_config_free(struct dp_config *cfg)
{
	rules_free(cfg->rules);
	for (int i = 0; i < cfg->eal_argc; i++)
		free(cfg->eal_argv[i]);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

struct dp_service_conf
dp_config_service(const struct dp_config *cfg, const char *name)
{
	struct dp_service_conf sc = { 0 };

	if (strcmp(name, "echo") == 0)
		sc = cfg->echo;
	else if (strcmp(name, "discard") == 0)
		sc = cfg->discard;
	else if (strcmp(name, "mqtt") == 0) {
		sc = cfg->mqtt;
		sc.opts = &cfg->broker;
	}
	return sc;
}

/* broker_config_apply_live's restart keys, named as in the file */
struct restart_ctx {
	void (*restart)(void *arg, const char *key);
	void *arg;
};

static void
broker_restart_key(void *arg, const char *key)
{
	struct restart_ctx *r = arg;
	char name[96];

	snprintf(name, sizeof(name), "dataplane.mqtt.%s", key);
	r->restart(r->arg, name);
}

int
dp_config_apply_live(struct dp_config *run, struct dp_config *next,
    void (*restart)(void *arg, const char *key), void *arg)
{
	struct restart_ctx rc = { restart, arg };
	bool eal_same = run->eal_argc == next->eal_argc;
	int n = 0;

	for (int i = 0; eal_same && i < run->eal_argc; i++)
		eal_same = strcmp(run->eal_argv[i], next->eal_argv[i]) == 0;
	if (!eal_same)
		restart(arg, "dataplane.eal");
#define RESTART_IF(cond, key)              \
	do {                               \
		if (cond)                  \
			restart(arg, key); \
	} while (0)
	RESTART_IF(strcmp(run->device, next->device) != 0 || run->port_driver != next->port_driver,
	    "dataplane.port.device");
	RESTART_IF(run->ip_be != next->ip_be || run->prefix_len != next->prefix_len,
	    "dataplane.port.ipv4");
	RESTART_IF(run->gateway_be != next->gateway_be, "dataplane.port.gateway");
	RESTART_IF(run->rx_desc != next->rx_desc || run->tx_desc != next->tx_desc,
	    "dataplane.port.rx_desc/tx_desc");
	RESTART_IF(run->mtu != next->mtu, "dataplane.port.mtu");
	RESTART_IF(
	    run->hugepage_kb != next->hugepage_kb || run->hugepages_bytes != next->hugepages_bytes,
	    "dataplane.hugepages");
	RESTART_IF(run->workers != next->workers, "dataplane.workers");
	RESTART_IF(run->mbufs != next->mbufs, "dataplane.mbufs");
	RESTART_IF(run->idle_sleep_us != next->idle_sleep_us, "dataplane.idle_sleep_us");
	RESTART_IF(
	    run->arp_entries != next->arp_entries || run->arp_timeout_ms != next->arp_timeout_ms,
	    "dataplane.arp");
	RESTART_IF(run->pmtu_entries != next->pmtu_entries ||
		run->pmtu_timeout_ms != next->pmtu_timeout_ms,
	    "dataplane.pmtu");
	RESTART_IF(run->icmp_rate_per_s != next->icmp_rate_per_s, "dataplane.icmp.rate_per_s");
	RESTART_IF(memcmp(&run->tcp, &next->tcp, sizeof(run->tcp)) != 0, "dataplane.tcp");
	RESTART_IF(run->echo.enabled != next->echo.enabled || run->echo.port != next->echo.port,
	    "dataplane.services.echo");
	RESTART_IF(run->discard.enabled != next->discard.enabled ||
		run->discard.port != next->discard.port,
	    "dataplane.services.discard");
	RESTART_IF(run->mqtt.enabled != next->mqtt.enabled || run->mqtt.port != next->mqtt.port,
	    "dataplane.mqtt.enabled/port");
#undef RESTART_IF
	if (!rules_equal(run->rules, next->rules)) { /* uplink: site, rules, downlink */
		struct rules *t = run->rules;

		run->rules = next->rules;
		next->rules = t;
		n++;
	}
	if (run->log_level != next->log_level) {
		run->log_level = next->log_level;
		n++;
	}
	n += broker_config_apply_live(&run->broker, &next->broker, broker_restart_key, &rc);
	return n;
}
