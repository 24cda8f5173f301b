/*
 * dpchan_conf.h: the channel's settings, `dataplane.channel` of the gateway config. Both programs
 * read this one section: the dataplane connects its lcores to `path`, the agent listens there
 * (docs/config.md). Parsed with lib/conf; errors go into the document as file:line:col.
 */
#ifndef EDGEGW_DPCHAN_CONF_H
#define EDGEGW_DPCHAN_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

struct dpchan_conf {
	bool enabled;           /* off: nothing goes up, the broker acknowledges as before */
	char path[108];         /* the agent's socket [DPCHAN_DEFAULT_PATH] */
	uint32_t pending_bytes; /* per lcore: records not yet durable [4 MiB] */
	uint32_t max_pending;   /* per lcore: durable messages awaiting their answer [16384] */
	/* backoff ceiling while the agent is absent [1 s: a failed connect to a local socket
	 * costs one system call, and durable ingest waits for the channel] */
	uint32_t reconnect_max_ms;
	uint32_t max_qos2_origins; /* agent: QoS 2 origins held until released [65536] */
};

void dpchan_conf_defaults(struct dpchan_conf *c);
/* `dataplane.channel` (absent: the defaults, disabled; present: enabled unless it says not). */
void dpchan_conf_parse(conf_node n, struct dpchan_conf *c);

#endif
