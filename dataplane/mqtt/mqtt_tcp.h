/*
 * mqtt_tcp.h: the MQTT service of the dataplane: the broker core (broker.h) on the dataplane's
 * own TCP (net/tcp/tcp.h), one broker instance per worker lcore, joined by rte_rings for the
 * cross-lcore fan-out. Hooked up from main.c / the worker loop (see docs/broker.md).
 */
#ifndef EDGEGW_MQTT_TCP_H
#define EDGEGW_MQTT_TCP_H

#include <stdint.h>

#include "broker.h"

struct dp_lcore;

/* On the main lcore, before the workers start: one ring per worker (ring_size a power of 2). */
int mqtt_service_init(unsigned n_workers, unsigned ring_size);
/* On each worker lcore (after tcp_lcore_init): its broker, listening on port. cfg NULL: defaults. */
int mqtt_service_listen(struct dp_lcore *lc, uint16_t port, const struct broker_config *cfg);
/* Every loop iteration: messages from other lcores, and the broker's timers. */
void mqtt_service_poll(struct dp_lcore *lc);
/* On each worker lcore at exit, before tcp_lcore_fini (which then aborts the flows). */
void mqtt_service_fini(struct dp_lcore *lc);
/* This lcore's broker (counters for the stats exporters), NULL if none. */
struct broker *mqtt_service_broker(const struct dp_lcore *lc);

#endif
