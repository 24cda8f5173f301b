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
struct mqtt_uplink;
/*
 * Which PUBLISHes go up: the gateway config's uplink rules (lib/rules: the first match; a
 * durable rule defers a QoS 1/2 ack until durable, QoS 0 and other rules go best effort; no
 * match stays local). NULL: every QoS 1/2 message durably, QoS 0 best effort (the rules' default
 * set).
 *
 * Each lcore's uplink reads its own pointer to the set, with no lock: the main lcore publishes a
 * new set (at start, and on a reload that changed `uplink:`), and each uplink takes it at the top
 * of its poll, a point where none of its broker's calls is running (a quiescent point), and says
 * which generation it holds. Returns 0 once every started uplink holds r: no lcore reads the
 * previous set any more and the caller may free it; -ETIMEDOUT when one did not take it within
 * wait_ms (a stuck lcore: keep the previous set alive). Main lcore only; r stays valid until it is
 * replaced by a later call that returned 0. Messages already taken are not looked at again: a
 * PUBLISH deferred under the old set keeps waiting for its durability answer and is acknowledged
 * when it comes (uplink.c), whatever the new set says about its topic.
 */
int mqtt_uplink_set_rules(const struct rules *r, unsigned wait_ms);
/* What the rules say for a topic (also for tests). */
enum broker_uplink_class
mqtt_uplink_classify(const struct rules *rules, const char *topic, size_t len, uint8_t qos);
/* What this lcore's uplink says for a topic now: its broker's question (tests call it too). */
enum broker_uplink_class
mqtt_uplink_wants(const struct mqtt_uplink *u, const char *topic, size_t len, uint8_t qos);

/* The channel's settings for every lcore (main lcore, before the workers start); a boot id
 * is drawn for this start of the dataplane. */
void mqtt_uplink_configure(const struct dpchan_conf *c);
bool mqtt_uplink_enabled(void);

/* On the worker lcore: its channel, attached to its broker as the uplink, after the broker's
 * state was restored (the QoS 2 origins it holds of earlier starts are listed to the agent at
 * each connect: dpchan_client_held). n_lcores: the workers of this start. NULL on failure. */
struct mqtt_uplink *mqtt_uplink_start(struct broker *b, uint32_t lcore, uint32_t n_lcores);
/* Every loop iteration: connect when due, send this iteration's records as one batch, apply
 * the agent's answers. */
void mqtt_uplink_poll(struct mqtt_uplink *u, uint64_t now_ms);
void mqtt_uplink_stop(struct mqtt_uplink *u);
uint64_t mqtt_uplink_counter(const struct mqtt_uplink *u, enum dpchan_counter k);

#endif
