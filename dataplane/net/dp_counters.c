/* dp_counters.c: names and descriptions of the counters listed in dp_counters.def. */
#include "dp_counters.h"

static const char *const dp_names[DPC__COUNT] = {
#define DP_C(layer, name, kind, desc) [DPC_##layer##_##name] = #layer "_" #name,
#include "dp_counters.def"
#undef DP_C
};

static const char *const dp_descs[DPC__COUNT] = {
#define DP_C(layer, name, kind, desc) [DPC_##layer##_##name] = desc,
#include "dp_counters.def"
#undef DP_C
};

static const enum counter_kind dp_kinds[DPC__COUNT] = {
#define DP_C(layer, name, kind, desc) [DPC_##layer##_##name] = COUNTER_KIND_##kind,
#include "dp_counters.def"
#undef DP_C
};

enum counter_kind
dp_counter_kind(enum dp_counter_id id)
{
	return (unsigned)id < DPC__COUNT ? dp_kinds[id] : COUNTER_KIND_INFO;
}

/* Lower-cased once: "tcp_BAD_CKSUM" -> "tcp_bad_cksum". */
static char dp_lower[DPC__COUNT][64];

const char *
dp_counter_name(enum dp_counter_id id)
{
	if ((unsigned)id >= DPC__COUNT)
		return "?";
	if (dp_lower[id][0] == '\0') {
		const char *s = dp_names[id];
		unsigned i;

		for (i = 0; s[i] != '\0' && i < sizeof(dp_lower[id]) - 1; i++)
			dp_lower[id][i] =
			    (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
		dp_lower[id][i] = '\0';
	}
	return dp_lower[id];
}

const char *
dp_counter_desc(enum dp_counter_id id)
{
	return (unsigned)id < DPC__COUNT ? dp_descs[id] : "?";
}
