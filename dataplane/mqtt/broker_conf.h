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

#endif
