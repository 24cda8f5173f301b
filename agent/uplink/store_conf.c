/*
 * store_conf.c: the gateway config's `uplink:` section as the agent reads it: the rules
 * (lib/rules) and `uplink.spool` (lib/spool's spool_config_parse), errors as file:line:col.
 * agent_config.c calls it on the top-level node; the store (store.c) takes the result.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

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
