/*
 * prom.h: writing the Prometheus text exposition format (version 0.0.4): a family's # HELP and
 * # TYPE once, then its samples; names made of [a-z0-9_], label values escaped. Units become
 * base units here (a name's _us or _ms becomes _seconds, the value scaled), so every exporter
 * of the agent and the dataplane names time the same way.
 */
#ifndef EDGEGW_PROM_H
#define EDGEGW_PROM_H

#include <stdbool.h>
#include <stdio.h>

/* "# HELP name help" and "# TYPE name type" ("counter" or "gauge"). */
void prom_family(FILE *f, const char *name, const char *type, const char *help);
/* One sample: name{labels} value. labels is "k","v",... pairs, NULL-terminated (may be NULL). */
void prom_sample(FILE *f, const char *name, const char *const *labels, double value);
void prom_sample_u64(FILE *f, const char *name, const char *const *labels, unsigned long long v);
/* prefix + counter name in lower case with anything but [a-z0-9_] as '_', a unit token (_us,
 * _ms) dropped and _seconds appended (*scale set to turn the value into seconds; 1 otherwise),
 * a trailing _sum of a time dropped (the total is the counter), and suffix ("_total" or "")
 * last. */
void prom_name(char *out, size_t outlen, const char *prefix, const char *name, const char *suffix,
    double *scale);

#endif
