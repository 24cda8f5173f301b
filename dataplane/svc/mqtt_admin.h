/*
 * mqtt_admin.h: the operator's requests to the broker instances (edgegwctl sessions,
 * subscriptions, retained, kick, retained delete), asked over DPDK telemetry and answered by
 * each worker on its own lcore (the broker is not shared: the telemetry thread never reads it).
 */
#ifndef EDGEGW_MQTT_ADMIN_H
#define EDGEGW_MQTT_ADMIN_H

#include <stdint.h>

struct broker;
struct mqtt_admin_slot;

/* A worker's slot (its answers), made when its instance starts; NULL: out of memory. */
struct mqtt_admin_slot *mqtt_admin_slot_new(unsigned worker_idx);
/* Every loop of the worker: answer the request in progress, if any, from its broker. */
void mqtt_admin_poll(struct mqtt_admin_slot *slot, struct broker *b, uint64_t now_ms);
/* Main lcore, once: /edgegw/sessions, /edgegw/subscriptions, /edgegw/retained, /edgegw/kick,
 * /edgegw/kick_purge, /edgegw/retained_delete, /edgegw/publish. */
int mqtt_admin_telemetry_init(void);

#endif
