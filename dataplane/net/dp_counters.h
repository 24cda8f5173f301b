/* dp_counters.h: expands dp_counters.def into the counter ids, the per-lcore array and names. */
#ifndef EDGEGW_DP_COUNTERS_H
#define EDGEGW_DP_COUNTERS_H

#include <stdint.h>

#include "counter_kind.h"

enum dp_counter_id {
#define DP_C(layer, name, kind, desc) DPC_##layer##_##name,
#include "dp_counters.def"
#undef DP_C
	DPC__COUNT
};

struct dp_counters {
	uint64_t v[DPC__COUNT];
};

/* "layer_name" in lower case, e.g. "tcp_bad_cksum", and the description from the .def. */
const char *dp_counter_name(enum dp_counter_id id);
const char *dp_counter_desc(enum dp_counter_id id);
enum counter_kind dp_counter_kind(enum dp_counter_id id);

#define DP_INC(lc, layer, name)    ((lc)->cnt.v[DPC_##layer##_##name]++)
#define DP_ADD(lc, layer, name, n) ((lc)->cnt.v[DPC_##layer##_##name] += (n))

#endif
