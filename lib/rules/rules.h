/*
 * rules.h: the uplink rules of the gateway config (its top-level `uplink:` section): which local
 * topics go up to the cloud, under which cloud topic, with which QoS and priority class, and
 * whether the local publisher's PUBACK/PUBREC waits until the message is on disk. Shared by the
 * agent (the Modbus poller's readings, the store in agent/uplink/store.h) and the dataplane
 * (which sensor PUBLISHes go up). No DPDK, no I/O: parsed once, then read-only and safe to share
 * between threads.
 *
 *   uplink:
 *     site: lab
 *     rules:                      # first match wins; a topic no rule matches does not go up
 *       - {match: "plant/#", topic: "site/{site}/{topic}", qos: keep, class: normal, durable: true}
 *     downlink:                   # cloud -> local; first match wins; none by default
 *       - {match: "site/{site}/cmd/plant/#", strip: "site/{site}/", max_qos: 2}
 *     spool: {dir: /var/lib/edgegw/spool, max_bytes: 1g}   # the agent's (lib/spool keys)
 *
 * Keys of a rule: `match` (MQTT filter, '+' and '#' allowed, required), `topic` (template:
 * literal text with `{site}` and `{topic}`, the matched local topic whole; default "{topic}"),
 * `qos` (keep | 0 | 1 | 2; default keep), `class` (alarm | normal | bulk; default normal),
 * `durable` (default true; only QoS 1/2 messages ever wait). Without `rules:` (or without the
 * whole section) there is one rule: {match: "#", topic: "{topic}"} (everything goes up as is);
 * `rules: []` sends nothing. `spool:` is accepted here and read by its owner (the agent, with
 * spool_config_parse()). Errors go into the document as file:line:col: reason (lib/conf).
 *
 * Keys of a downlink rule (the agent subscribes every `match` on each connect to the cloud and
 * publishes what arrives into the dataplane's broker): `match` (a filter on cloud topics, '+'
 * and '#' allowed, {site} filled in; required), `strip` (a prefix every matching cloud topic
 * starts with, removed before `topic` is applied, {site} filled in; default none), `topic`
 * (template for the local topic: {topic} is the cloud topic less `strip`, {site}; default
 * "{topic}"), `max_qos` (0, 1, 2: the local publish's QoS is the cloud message's, at most this;
 * default 2). So `site/lab/cmd/plant/x` becomes `cmd/plant/x` under the example above.
 */
#ifndef EDGEGW_RULES_H
#define EDGEGW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define RULES_SITE_MAX 128
#define RULES_MAX      1024 /* rules in one config */
#define RULES_QOS_KEEP 0xff /* rule.qos: the message's own QoS */

/* Same order and values as lib/spool's enum spool_class (most important first). */
enum rules_class {
	RULES_ALARM = 0,
	RULES_NORMAL,
	RULES_BULK,
	RULES_CLASS_N
};

struct rule {
	const char *match; /* MQTT filter (NUL-terminated, owned by the rule set) */
	size_t match_len;
	const char *topic; /* template with {site} and {topic} */
	uint8_t qos;       /* 0, 1, 2 or RULES_QOS_KEEP */
	enum rules_class cls;
	bool durable;  /* the publisher's PUBACK/PUBREC waits for the spool's fdatasync */
	unsigned line; /* where it was written (for log lines) */
};

/* A downlink rule: cloud topics matching `match` go to the local topic rendered from `topic`. */
struct down_rule {
	const char *match; /* MQTT filter on cloud topics, {site} filled in */
	size_t match_len;
	const char *strip; /* prefix removed from the cloud topic ("" none), {site} filled in */
	size_t strip_len;
	const char *topic; /* template with {site} and {topic} (the cloud topic less strip) */
	uint8_t max_qos;   /* the local publish's QoS is min(message's, max_qos) */
	unsigned line;
};

struct rules {
	char site[RULES_SITE_MAX];
	size_t n;
	struct rule *v; /* in config order: the first match wins */
	size_t n_down;
	struct down_rule *down; /* `downlink:`, in config order: the first match wins */
};

/* Parse the `uplink:` mapping (absent: the default rule set). Returns 0 and a new set in *out, or
 * -1 with every error recorded in the document (file:line:col; *out is NULL). The set owns its
 * strings: the document may be freed afterwards. */
int rules_parse(conf_node uplink, struct rules **out);
void rules_free(struct rules *r);

/* Do two rule sets say the same (site, rules and downlink rules, in order; where they were
 * written does not count)? A reload compares the running set with the file's. */
bool rules_equal(const struct rules *a, const struct rules *b);

/* The first rule whose filter matches the topic name (not NUL-terminated), or NULL: the topic
 * does not go up. */
const struct rule *rules_match(const struct rules *r, const char *topic, size_t len);

/* The cloud topic of a local topic under a rule, NUL-terminated into buf. Returns its length, or
 * -ENAMETOOLONG when buf (or the MQTT limit, 65535) is too small, -EINVAL when the result is not
 * a valid topic name (empty, or not UTF-8). */
int rules_render(const struct rules *r, const struct rule *rule, const char *topic, size_t len,
    char *buf, size_t buflen);

/* The QoS the message goes up with: the rule's, or the message's own under `keep`. */
static inline uint8_t
rule_qos(const struct rule *rule, uint8_t msg_qos)
{
	return rule->qos == RULES_QOS_KEEP ? msg_qos : rule->qos;
}

/* Does the publisher's acknowledgement of a message of this QoS wait for durability? */
static inline bool
rule_durable(const struct rule *rule, uint8_t msg_qos)
{
	return msg_qos > 0 && rule->durable;
}

const char *rules_class_name(enum rules_class cls);

/* The first downlink rule whose filter matches the cloud topic name, or NULL. */
const struct down_rule *rules_down_match(const struct rules *r, const char *topic, size_t len);
/* The local topic of a cloud topic under a downlink rule, NUL-terminated into buf: its length,
 * -ENAMETOOLONG, or -EINVAL when it is not a valid topic name (e.g. nothing left after strip). */
int rules_down_render(const struct rules *r, const struct down_rule *d, const char *topic,
    size_t len, char *buf, size_t buflen);

static inline uint8_t
down_rule_qos(const struct down_rule *d, uint8_t msg_qos)
{
	return msg_qos < d->max_qos ? msg_qos : d->max_qos;
}

#endif
