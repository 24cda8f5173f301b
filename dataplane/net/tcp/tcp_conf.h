/*
 * tcp_conf.h: the TCP's section of the gateway config (`dataplane.tcp`). Kept out of tcp.h so
 * the stack itself (and its unit tests) need no YAML.
 */
#ifndef EDGEGW_TCP_CONF_H
#define EDGEGW_TCP_CONF_H

#include "conf.h"
#include "tcp.h"

/* Read n (a map; absent: nothing) into t, which holds the defaults; errors are recorded on n's
 * document (file:line:col: reason) like every lib/conf reader; unknown keys are errors. */
void tcp_config_parse(conf_node n, struct tcp_config *t);

#endif
