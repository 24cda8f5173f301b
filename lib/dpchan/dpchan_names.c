/* dpchan_names.c: names, descriptions and kinds of the channel's counters (dpchan_counters.def). */
#include "dpchan.h"

static const char *const names[] = {
#define DPCHAN_C(name, kind, desc) #name,
#include "dpchan_counters.def"
#undef DPCHAN_C
};
static const char *const descs[] = {
#define DPCHAN_C(name, kind, desc) desc,
#include "dpchan_counters.def"
#undef DPCHAN_C
};
static const enum counter_kind kinds[] = {
#define DPCHAN_C(name, kind, desc) COUNTER_KIND_##kind,
#include "dpchan_counters.def"
#undef DPCHAN_C
};

const char *
dpchan_counter_name(enum dpchan_counter c)
{
	return (unsigned)c < DPCHAN_C_COUNT ? names[c] : "?";
}

const char *
dpchan_counter_desc(enum dpchan_counter c)
{
	return (unsigned)c < DPCHAN_C_COUNT ? descs[c] : "?";
}

enum counter_kind
dpchan_counter_kind(enum dpchan_counter c)
{
	return (unsigned)c < DPCHAN_C_COUNT ? kinds[c] : COUNTER_KIND_INFO;
}
