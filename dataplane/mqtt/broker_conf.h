/*
 * broker_conf.h: the broker's section of the gateway config (`dataplane.mqtt`), read with
 * lib/conf. Kept out of broker.h so the broker core (and its fuzz harness) need no YAML.
 */
#ifndef EDGEGW_BROKER_CONF_H
#define EDGEGW_BROKER_CONF_H

#include "broker.h"
#include "conf.h"

/* The keys the broker reads, NULL-terminated (the service's own, enabled and port, are the
 * dataplane's). */
const char *const *broker_config_keys(void);
/* Read them from n into cfg (keys absent keep cfg's values); errors are recorded on n's
 * document (file:line:col: reason), as every lib/conf reader does. Unknown keys are the
 * caller's to check (it knows the service's keys too). */
void broker_config_parse(conf_node n, struct broker_config *cfg);
/*
 * A reload: copy into run the settings of next that can change on a running broker (limits,
 * timeouts, queue policy, $SYS period) and call restart(arg, key) for each that differs but
 * sizes what is already allocated (max_inflight, max_packet_size, max_filter_levels,
 * topic_alias_max: they keep run's value until the next start). Returns the settings changed.
 */
int broker_config_apply_live(struct broker_config *run, const struct broker_config *next,
    void (*restart)(void *arg, const char *key), void *arg);
/* The same on a running instance, on its own lcore: new connections, sessions and messages
 * follow the new limits (what exists over a lowered limit stays); counted CONFIG_APPLIED. */
int broker_reconfigure(struct broker *b, const struct broker_config *next, uint64_t now_ms);

#endif
