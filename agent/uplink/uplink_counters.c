/* uplink_counters.c: names and descriptions of the cloud link's counters (uplink_stats.def). */
#include "uplink_counters.h"

const char *const uplink_counter_names[] = {
#define UPLINK_COUNTER(n, d) #n,
#include "uplink_stats.def"
#undef UPLINK_COUNTER
};

const char *const uplink_counter_help[] = {
#define UPLINK_COUNTER(n, d) d,
#include "uplink_stats.def"
#undef UPLINK_COUNTER
};
