/*
 * dpchan.h: the channel between the dataplane's worker lcores and the agent (messages up,
 * durability acknowledgements and downlink publishes back). One Unix SOCK_SEQPACKET connection
 * per worker lcore, non-blocking on both ends. Wire format: dpchan_proto.h; the dataplane's
 * end: dpchan_client.h; the agent's end: dpchan_server.h; why this channel:
 * docs/architecture.md. No DPDK here: both programs link it.
 */
#ifndef EDGEGW_DPCHAN_H
#define EDGEGW_DPCHAN_H

#include <stdint.h>

#include "counter_kind.h"
#include "dpchan_proto.h"

enum dpchan_counter {
#define DPCHAN_C(name, kind, desc) DPCHAN_C_##name,
#include "dpchan_counters.def"
#undef DPCHAN_C
	DPCHAN_C_COUNT
};

const char *dpchan_counter_name(enum dpchan_counter c);
const char *dpchan_counter_desc(enum dpchan_counter c);
enum counter_kind dpchan_counter_kind(enum dpchan_counter c);

#endif
