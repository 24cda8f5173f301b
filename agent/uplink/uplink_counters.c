/* uplink_counters.c: names, descriptions and kinds of the cloud link's counters (uplink_stats.def). */
#include "uplink_counters.h"

const char *const uplink_counter_names[] = {
#define UPLINK_COUNTER(n, k, d) #n,
#include "uplink_stats.def"
#undef UPLINK_COUNTER
};

const char *const uplink_counter_help[] = {
#define UPLINK_COUNTER(n, k, d) d,
#include "uplink_stats.def"
#undef UPLINK_COUNTER
};

const enum counter_kind uplink_counter_kind[] = {
#define UPLINK_COUNTER(n, k, d) COUNTER_KIND_##k,
#include "uplink_stats.def"
#undef UPLINK_COUNTER
};
