/*
 * topic_tree.c: the broker's side of lib/mqtt's subscription trie (mqtt_topic_tree.h). An
 * ordinary subscription is entered as its struct broker_sub. A shared subscription group
 * ($share/{group}/{filter}) is entered once, as its struct share_group, so a match reports the
 * group once and the broker hands the message to one member, round robin.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "mqtt_topic.h"

static struct share_group *group_get(struct broker *b, const struct broker_sub *sub, bool create)
{
	struct share_group *g;

	for (g = b->groups; g != NULL; g = g->next)
		if (g->filter_len == sub->filter_len && memcmp(g->filter, sub->filter, sub->filter_len) == 0)
			return g;
	if (!create || (g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->filter = sub->filter; /* the first member's copy; moved when that member leaves */
	g->filter_len = sub->filter_len;
	if (mqtt_topic_tree_insert(b->tree, g->filter, g->filter_len, g,
				   &(struct mqtt_sub_opts){ 0 }) < 0) {
		free(g);
		return NULL;
	}
	g->next = b->groups;
	b->groups = g;
	return g;
}

static void group_drop(struct broker *b, struct share_group *g)
{
	struct share_group **pg = &b->groups;

	mqtt_topic_tree_remove(b->tree, g->filter, g->filter_len, g);
	while (*pg != g)
		pg = &(*pg)->next;
	*pg = g->next;
	free(g);
}

int tt_insert(struct broker *b, struct broker_sub *sub)
{
	struct mqtt_str group, inner;
	int rc;

	if (mqtt_topic_share_parse(sub->filter, sub->filter_len, &group, &inner) != 1) {
		rc = mqtt_topic_tree_insert(b->tree, sub->filter, sub->filter_len, sub,
					    &(struct mqtt_sub_opts){ .qos = sub->qos });
		return rc < 0 ? rc : 0;
	}
	if ((sub->group = group_get(b, sub, true)) == NULL)
		return -ENOMEM;
	sub->next_in_group = sub->group->members;
	sub->group->members = sub;
	sub->group->n_members++;
	return 0;
}

void tt_remove(struct broker *b, struct broker_sub *sub)
{
	struct share_group *g = sub->group;
	struct broker_sub **pp;

	if (g == NULL) {
		mqtt_topic_tree_remove(b->tree, sub->filter, sub->filter_len, sub);
		return;
	}
	for (pp = &g->members; *pp != sub; pp = &(*pp)->next_in_group)
		;
	*pp = sub->next_in_group;
	sub->group = NULL;
	if (--g->n_members == 0) {
		group_drop(b, g);
		return;
	}
	if (g->filter == sub->filter) /* the filter text lives on in another member */
		g->filter = g->members->filter;
}

/* The next member round robin, skipping members whose session is offline when one is online
 * (an offline member would only queue it, or drop it at QoS 0). */
static struct broker_sub *group_pick(struct share_group *g)
{
	struct broker_sub *m = NULL;

	for (uint32_t tries = 0; tries < g->n_members; tries++) {
		m = g->members;
		for (uint32_t k = g->rr++ % g->n_members; k > 0; k--)
			m = m->next_in_group;
		if (m->s->conn != NULL)
			break;
	}
	return m;
}

struct match_ctx {
	tt_visit_fn fn;
	void *arg;
};

static int on_match(void *subscriber, const struct mqtt_sub_opts *opts,
		    const struct mqtt_str *group, void *arg)
{
	struct match_ctx *mc = arg;

	(void)opts; /* the broker's own copy in struct broker_sub is the one kept up to date */
	if (group == NULL) {
		mc->fn(subscriber, mc->arg);
	} else {
		mc->fn(group_pick(subscriber), mc->arg);
	}
	return 0;
}

void tt_match(struct broker *b, const char *topic, size_t len, tt_visit_fn fn, void *arg)
{
	struct match_ctx mc = { fn, arg };

	mqtt_topic_tree_match(b->tree, topic, len, on_match, &mc);
}
