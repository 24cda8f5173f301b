/*
 * mqtt_uplink.h: store and forward on the dataplane: each worker's broker instance gets the
 * lcore's channel to the agent (lib/dpchan client) as its uplink (broker_uplink_ops): client
 * PUBLISHes the uplink rules send up become records on the channel, and the agent's DURABLE
 * answers release the deferred PUBACK/PUBREC (dataplane/mqtt/uplink.c). Configured by
 * `dataplane.channel` (dpchan_conf.h, docs/config.md). No DPDK here: mqtt_tcp.c calls it from its lcore.
 */
#ifndef EDGEGW_MQTT_UPLINK_H
#define EDGEGW_MQTT_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"
#include "dpchan.h"
#include "dpchan_conf.h"

struct rules;
/* Which PUBLISHes go up: the gateway config's uplink rules (lib/rules: the first match; a
 * durable rule defers a QoS 1/2 ack until durable, QoS 0 and other rules go best effort; no
 * match stays local). NULL: every QoS 1/2 message durably, QoS 0 best effort (the rules' default
 * set). Set before any lcore starts; read-only afterwards, shared by the lcores. */
void mqtt_uplink_set_rules(const struct rules *rules);
/* What the rules say for a topic (also for tests). */
enum broker_uplink_class
mqtt_uplink_classify(const struct rules *rules, const char *topic, size_t len, uint8_t qos);

/* The channel's settings for every lcore (main lcore, before the workers start); a boot id
 * is drawn for this start of the dataplane. */
void mqtt_uplink_configure(const struct dpchan_conf *c);
bool mqtt_uplink_enabled(void);

struct mqtt_uplink;
/* On the worker lcore: its channel, attached to its broker as the uplink. NULL on failure. */
struct mqtt_uplink *mqtt_uplink_start(struct broker *b, uint32_t lcore);
/* Every loop iteration: connect when due, send this iteration's records as one batch, apply
 * the agent's answers. */
void mqtt_uplink_poll(struct mqtt_uplink *u, uint64_t now_ms);
void mqtt_uplink_stop(struct mqtt_uplink *u);
uint64_t mqtt_uplink_counter(const struct mqtt_uplink *u, enum dpchan_counter k);

#endif
