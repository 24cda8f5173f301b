/*
 * rules_internal.h: what rules.c (the uplink rules) and rules_down.c (the downlink rules) share
 * inside lib/rules. Not for other modules: they read rules.h.
 */
#ifndef EDGEGW_RULES_INTERNAL_H
#define EDGEGW_RULES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "rules.h"

char *rules_dup_str(const char *s);
/* A topic template: literal text (no wildcards), {site} (only with have_site) and {topic}. */
int rules_check_template(conf_node at, const char *t, bool have_site);
/* tmpl with {site} and {topic} filled in, NUL-terminated into buf: its length, -ENAMETOOLONG,
 * or -EINVAL when the result is not a valid topic name. */
int rules_render_template(
    const char *site, const char *tmpl, const char *topic, size_t len, char *buf, size_t buflen);
/* The `downlink:` list into r->down (r->site already set); errors recorded in the document. */
int rules_down_parse(conf_node list, struct rules *r);
void rules_down_free(struct rules *r);

#endif
