/*
 * uplink_counters.h: the cloud link's counters (uplink_stats.def) as an enum and their names.
 */
#ifndef EDGEGW_UPLINK_COUNTERS_H
#define EDGEGW_UPLINK_COUNTERS_H

#include "counter_kind.h"

enum uplink_counter {
#define UPLINK_COUNTER(n, k, d) UPLINK_C_##n,
#include "uplink_stats.def"
#undef UPLINK_COUNTER
	UPLINK_C_COUNT
};

extern const char *const uplink_counter_names[];
extern const char *const uplink_counter_help[];
extern const enum counter_kind uplink_counter_kind[];

#endif
