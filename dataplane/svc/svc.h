/*
 * svc.h: the services that run on the dataplane's TCP, each one a struct dp_service (as VPP's
 * session layer attaches an application): main.c starts the enabled ones, the worker loop
 * (dp_worker.c) polls them, dp_telemetry.c lets each add its figures. A new service (MQTT over
 * TLS, the channel to the agent) is one more entry in dp_services[] (svc.c) and its own file;
 * neither the worker loop nor main changes.
 */
#ifndef EDGEGW_SVC_H
#define EDGEGW_SVC_H

#include <stdbool.h>
#include <stdint.h>

struct dp_lcore;
struct rte_tel_data;

/* A service's part of the config: dataplane.services.<name>, or dataplane.<name> for MQTT. */
struct dp_service_conf {
	bool enabled;
	uint16_t port;
	const void *opts; /* the service's own settings (struct broker_config for mqtt), or NULL */
};

struct dp_service {
	const char *name;
	/* Main lcore, once, before any worker: shared state (rings). Optional. */
	int (*init)(const struct dp_service_conf *sc, unsigned n_workers);
	/* Each worker lcore after tcp_lcore_init: its instance, listening on sc->port. */
	int (*listen)(struct dp_lcore *lc, const struct dp_service_conf *sc);
	/* Every loop iteration of a worker: work that no TCP callback starts. Optional. */
	void (*poll)(struct dp_lcore *lc);
	/* Each worker at exit, before tcp_lcore_fini aborts the flows. Optional. */
	void (*fini)(struct dp_lcore *lc);
	/* Main lcore, once: its own telemetry commands (/edgegw/<name>...). Optional. */
	int (*telemetry_init)(void);
	/* Its gauges, summed over the workers, added to the /edgegw/mem dict. Optional. */
	void (*telemetry_mem)(struct rte_tel_data *d);
	/* Main lcore, SIGHUP with a valid config (sc is the new config's): hand what can change
	 * live to the workers; returns how many applied it, or < 0. Optional. */
	int (*reload)(const struct dp_service_conf *sc);
};

/* Every service the dataplane can run, in start order, NULL-terminated. */
extern const struct dp_service *const dp_services[];

extern const struct dp_service dp_service_echo;
extern const struct dp_service dp_service_discard;
extern const struct dp_service dp_service_mqtt;

#endif
