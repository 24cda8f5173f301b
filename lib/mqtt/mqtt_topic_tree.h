/*
 * mqtt_topic_tree.h: the broker's subscription trie. One node per topic level; '+' and '#'
 * children kept apart from the named ones so a PUBLISH topic is matched in one walk, with the
 * '$'-topic rule. Shared subscriptions ($share/{group}/{filter}) sit at their inner filter and are
 * reported with their group, so the broker can pick one member per group.
 * Allocates on subscribe and unsubscribe only (never while matching), through hooks the caller
 * may replace (rte_malloc in the dataplane). Not thread-safe: one writer, readers synchronised by
 * the caller (RCU or per-lcore replicas).
 */
#ifndef EDGEGW_MQTT_TOPIC_TREE_H
#define EDGEGW_MQTT_TOPIC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_codec.h"

struct mqtt_sub_opts {
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling;
	uint32_t sub_id; /* 5.0 subscription identifier, 0: none */
};

struct mqtt_topic_tree_alloc {
	void *(*calloc)(size_t n, size_t size);
	void *(*realloc)(void *p, size_t size);
	void (*free)(void *p);
};

struct mqtt_topic_tree;

/* max_levels bounds the levels of a filter (and so the depth of a match); alloc NULL: libc. */
struct mqtt_topic_tree *
mqtt_topic_tree_create(unsigned max_levels, const struct mqtt_topic_tree_alloc *alloc);
void mqtt_topic_tree_destroy(struct mqtt_topic_tree *t);

/*
 * Subscribe: 0 added, 1 when this subscriber already had this filter (options replaced, as the
 * spec asks), -EINVAL for a filter mqtt_topic_filter_valid() rejects, -E2BIG for more levels than
 * max_levels, -ENOMEM. (errno codes only: the broker has validated the SUBSCRIBE already.)
 */
int mqtt_topic_tree_insert(struct mqtt_topic_tree *t, const char *filter, size_t len,
    void *subscriber, const struct mqtt_sub_opts *opts);

/* Unsubscribe: 0 removed, -ENOENT when there was no such subscription. */
int
mqtt_topic_tree_remove(struct mqtt_topic_tree *t, const char *filter, size_t len, void *subscriber);

/*
 * Called once per matching subscription (a subscriber with overlapping filters is called once for
 * each). group is the share group, or NULL. A non-zero return stops the walk.
 */
typedef int (*mqtt_topic_tree_cb)(
    void *subscriber, const struct mqtt_sub_opts *opts, const struct mqtt_str *group, void *arg);

/* Match a topic name; returns how many subscriptions matched (the callback was called). */
size_t mqtt_topic_tree_match(const struct mqtt_topic_tree *t, const char *name, size_t len,
    mqtt_topic_tree_cb cb, void *arg);

size_t mqtt_topic_tree_subscriptions(const struct mqtt_topic_tree *t);
size_t mqtt_topic_tree_nodes(const struct mqtt_topic_tree *t);

#endif
