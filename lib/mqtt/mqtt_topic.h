/*
 * mqtt_topic.h: topic name and topic filter rules of MQTT (spec 4.7): validation, matching with
 * '+' and '#' and the '$'-topic rule, and shared subscriptions ($share/{group}/{filter}).
 * Used by the codec's decoder, the broker's topic tree and clients.
 */
#ifndef EDGEGW_MQTT_TOPIC_H
#define EDGEGW_MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "mqtt_codec.h"

/* 0 when valid: non-empty, valid UTF-8, no '+' or '#'. Else -MQTT_E_TOPIC_EMPTY,
 * -MQTT_E_TOPIC_NAME_INVALID or -MQTT_E_UTF8_x. */
int mqtt_topic_name_valid(const char *name, size_t len);

/* 0 when valid: non-empty UTF-8, '+' alone in its level, '#' alone in the last level, and a
 * "$share/" filter well formed. Else -MQTT_E_FILTER_INVALID, -MQTT_E_SHARE_INVALID or -MQTT_E_UTF8_x. */
int mqtt_topic_filter_valid(const char *filter, size_t len);

/*
 * Split a shared subscription "$share/{group}/{filter}". Returns 1 (group and filter set) when
 * filter is one, 0 when it is an ordinary filter, -MQTT_E_SHARE_INVALID when it starts with
 * "$share/" but the group is empty or has a wildcard, or the filter is missing or invalid.
 */
int mqtt_topic_share_parse(
    const char *filter, size_t len, struct mqtt_str *group, struct mqtt_str *inner);

/* Does a (valid, non-shared) filter match a (valid) topic name? Filters starting with a wildcard
 * do not match names starting with '$'. */
bool mqtt_topic_match(const char *filter, size_t flen, const char *name, size_t nlen);

#endif
