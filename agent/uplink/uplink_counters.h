/*
 * uplink_counters.h: the cloud link's counters (uplink_stats.def) as an enum and their names.
 */
#ifndef EDGEGW_UPLINK_COUNTERS_H
#define EDGEGW_UPLINK_COUNTERS_H

enum uplink_counter {
#define UPLINK_COUNTER(n, d) UPLINK_C_##n,
#include "uplink_stats.def"
#undef UPLINK_COUNTER
	UPLINK_C_COUNT
};

extern const char *const uplink_counter_names[];
extern const char *const uplink_counter_help[];

#endif
