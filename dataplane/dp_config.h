/*
 * dp_config.h: the dataplane's part of the gateway config (the `dataplane:` section), parsed
 * whole and validated before anything starts. The `agent:` section belongs to edgegw-agent.
 */
#ifndef EDGEGW_DP_CONFIG_H
#define EDGEGW_DP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "mqtt_uplink.h"
#include "svc.h"
#include "tcp.h"

#define DP_EAL_ARGS_MAX 64

struct dp_config {
	char *path;
	int eal_argc;
	char *eal_argv[DP_EAL_ARGS_MAX];
	int log_level; /* enum log_level */

	char device[128];
	int port_driver; /* index: dp_config_port_driver() */
	uint32_t hugepage_kb;
	uint64_t hugepages_bytes;
	uint32_t ip_be, netmask_be, gateway_be;
	uint8_t prefix_len;
	uint16_t rx_desc, tx_desc, mtu;

	uint16_t workers;
	uint32_t mbufs;
	uint32_t idle_sleep_us;
	uint32_t arp_entries;
	uint32_t arp_timeout_ms;
	uint32_t pmtu_entries;    /* path MTU per destination (RFC 1191), per worker */
	uint32_t pmtu_timeout_ms; /* an entry's life after its last decrease */
	uint32_t icmp_rate_per_s;

	struct tcp_config tcp;
	struct dp_service_conf echo, discard, mqtt; /* .opts is set by dp_config_service */
	struct broker_config broker;
	struct dpchan_conf channel; /* dataplane.channel: store and forward to the agent */
	struct rules *rules;        /* uplink: (lib/rules): which PUBLISHes go up */
};

/* Loads and validates path; on error returns -1 with "file:line:col: reason" in err. */
int dp_config_load(const char *path, struct dp_config *cfg, char *err, size_t errlen);
void dp_config_free(struct dp_config *cfg);
/* What edgegw-prepare does before start: is the port a PCI address (else a vdev), which
 * kernel driver it is bound to, and whether hugepages are used (eal has no --no-huge). */
bool dp_config_is_pci(const char *device);
const char *dp_config_port_driver(const struct dp_config *cfg);
bool dp_config_uses_hugepages(const struct dp_config *cfg);
/*
 * SIGHUP with a valid next: copy into run what changes on a running dataplane (log_level, the
 * broker's limits: broker_config_apply_live; the uplink rules, whose sets are swapped: run gets
 * next's and next keeps the running one, which the caller frees once no lcore reads it,
 * mqtt_uplink_set_rules) and call restart(arg, key) for each setting that differs but is fixed
 * until the next start (EAL, port, workers, pools, TCP, services' ports, the broker's allocation
 * sizes), named as in the file. Returns the live settings changed.
 */
int dp_config_apply_live(struct dp_config *run, struct dp_config *next,
    void (*restart)(void *arg, const char *key), void *arg);
/* The config of the service called name (svc.h): enabled, port and its own settings. */
struct dp_service_conf dp_config_service(const struct dp_config *cfg, const char *name);

#endif
