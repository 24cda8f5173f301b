/*
 * store_conf.c: the gateway config's `uplink:` section as the agent reads it: the rules
 * (lib/rules), `uplink.spool` (lib/spool's spool_config_parse) and `uplink.drain` (the store's
 * live and backlog lanes, here), errors as file:line:col.
 * agent_config.c calls it on the top-level node; the store (store.c) takes the result.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

static const char *const drain_keys[] = { "live_age", "backlog_percent", "max_inflight", NULL };

/* `uplink.drain` (absent: the defaults). 0 or -1. */
static int
drain_parse(conf_node d, struct store_conf *c)
{
	int rc = 0;

	c->live_age_ms = STORE_LIVE_AGE_MS_DEF;
	c->backlog_percent = STORE_BACKLOG_PERCENT_DEF;
	c->max_inflight = STORE_MAX_INFLIGHT_DEF;
	if (!conf_present(d))
		return 0;
	if (!conf_is_map(d))
		return conf_error(
		    d, "'drain' must be a mapping (live_age, backlog_percent, max_inflight)");
	rc = conf_check_keys(d, drain_keys);
	if (conf_get_duration_ms(
		d, "live_age", STORE_LIVE_AGE_MS_DEF, 0, 24 * 3600 * 1000ull, &c->live_age_ms) < 0)
		rc = -1;
	if (conf_get_u32(
		d, "backlog_percent", STORE_BACKLOG_PERCENT_DEF, 1, 100, &c->backlog_percent) < 0)
		rc = -1;
	if (conf_get_u32(d, "max_inflight", STORE_MAX_INFLIGHT_DEF, 1, STORE_MAX_INFLIGHT_MAX,
		&c->max_inflight) < 0)
		rc = -1;
	c->max_inflight_set = conf_present(conf_get(d, "max_inflight"));
	return rc;
}

int
store_conf_parse(conf_node uplink, struct store_conf **out)
{
	struct store_conf *c = calloc(1, sizeof(*c));
	conf_node sp = { 0 };
	int rc;

	*out = NULL;
	if (c == NULL)
		return -1;
	rc = rules_parse(uplink, &c->rules);
	if (conf_present(uplink) && conf_is_map(uplink))
		sp = conf_get(uplink, "spool");
	c->spool_set = conf_present(sp);
	if (spool_config_parse(sp, &c->spool) < 0)
		rc = -1;
	if (drain_parse(conf_is_map(uplink) ? conf_get(uplink, "drain") : (conf_node){ 0 }, c) < 0)
		rc = -1;
	if (rc == 0 && strlen(c->spool.dir) >= sizeof(c->dir))
		rc = conf_error(
		    conf_get(sp, "dir"), "dir is longer than %zu bytes", sizeof(c->dir) - 1);
	if (rc != 0) {
		store_conf_free(c);
		return -1;
	}
	strcpy(c->dir, c->spool.dir); /* the document goes; the path stays */
	c->spool.dir = c->dir;
	*out = c;
	return 0;
}

void
store_conf_free(struct store_conf *c)
{
	if (c == NULL)
		return;
	rules_free(c->rules);
	free(c);
}
