/*
 * counter_kind.h: what a counter of the project's tables (.def files) tells, its KIND column, as
 * VPP's TCP error table carries a severity: the exporters (DPDK telemetry /edgegw/kinds,
 * Prometheus's TYPE and class label, edgegwctl) read it from the table, never out of a
 * description string. The tables write the bare token (INFO, DROP, ...).
 */
#ifndef EDGEGW_COUNTER_KIND_H
#define EDGEGW_COUNTER_KIND_H

#include <stdbool.h>

enum counter_kind {
	COUNTER_KIND_INFO = 0, /* an event worth counting */
	COUNTER_KIND_DROP,     /* a packet or message dropped */
	COUNTER_KIND_LIMIT,    /* a configured limit hit */
	COUNTER_KIND_BAD,      /* bad input from a peer */
	COUNTER_KIND_ERROR,    /* a failure, ours or the peer's */
	COUNTER_KIND_GAUGE,    /* a level that goes up and down, not a count */
	COUNTER_KIND__COUNT
};

/* "info", "drop", "limit", "bad_input", "error", "gauge" */
static inline const char *
counter_kind_name(enum counter_kind k)
{
	static const char *const names[COUNTER_KIND__COUNT] = { "info", "drop", "limit",
		"bad_input", "error", "gauge" };

	return (unsigned)k < COUNTER_KIND__COUNT ? names[k] : "info";
}

static inline bool
counter_kind_is_gauge(enum counter_kind k)
{
	return k == COUNTER_KIND_GAUGE;
}

#endif
