/*
 * topic_tree.c: the subscription trie, one node per filter level. Matching a topic name walks
 * only the branches its levels (and '+', '#') select, so its cost follows the topic's depth and
 * the matching subscriptions, not the number of subscriptions. Shared subscription groups hang
 * off the node of their inner filter and give one member per match, round robin.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

static struct tt_node *node_new(struct tt_node *parent, const char *level, size_t len)
{
	struct tt_node *n = calloc(1, sizeof(*n) + len);

	if (n == NULL)
		return NULL;
	n->parent = parent;
	n->len = (uint16_t)len;
	memcpy(n->level, level, len);
	if (parent != NULL) {
		n->sibling = parent->child;
		parent->child = n;
	}
	return n;
}

struct tt_node *tt_create(void)
{
	return node_new(NULL, "", 0);
}

void tt_destroy(struct tt_node *n)
{
	while (n != NULL && n->child != NULL) {
		struct tt_node *c = n->child;

		n->child = c->sibling;
		c->sibling = NULL;
		tt_destroy(c);
	}
	free(n);
}

static bool level_is(const struct tt_node *n, const char *s, size_t len)
{
	return n->len == len && memcmp(n->level, s, len) == 0;
}

static struct tt_node *child_get(struct tt_node *n, const char *s, size_t len, bool create)
{
	for (struct tt_node *c = n->child; c != NULL; c = c->sibling)
		if (level_is(c, s, len))
			return c;
	return create ? node_new(n, s, len) : NULL;
}

static void prune(struct tt_node *n)
{
	while (n->parent != NULL && n->child == NULL && n->subs == NULL && n->groups == NULL) {
		struct tt_node *p = n->parent, **pp = &p->child;

		while (*pp != n)
			pp = &(*pp)->sibling;
		*pp = n->sibling;
		free(n);
		n = p;
	}
}

static struct share_group *group_get(struct tt_node *n, struct mqtt_str name)
{
	struct share_group *g;

	for (g = n->groups; g != NULL; g = g->next)
		if (g->name_len == name.len && memcmp(g->name, name.s, name.len) == 0)
			return g;
	if ((g = calloc(1, sizeof(*g))) == NULL || (g->name = malloc(name.len + 1u)) == NULL) {
		free(g);
		return NULL;
	}
	memcpy(g->name, name.s, name.len);
	g->name_len = name.len;
	g->next = n->groups;
	n->groups = g;
	return g;
}

int tt_insert(struct tt_node *root, struct broker_sub *sub, struct mqtt_str filter,
	      struct mqtt_str group)
{
	const char *p = filter.s, *end = filter.s + filter.len;
	struct tt_node *n = root;

	for (;;) {
		const char *q = memchr(p, '/', (size_t)(end - p));

		if (q == NULL)
			q = end;
		if ((n = child_get(n, p, (size_t)(q - p), true)) == NULL)
			return -ENOMEM;
		if (q == end)
			break;
		p = q + 1;
	}
	sub->node = n;
	if (group.s == NULL) {
		sub->next_in_node = n->subs;
		n->subs = sub;
		return 0;
	}
	if ((sub->group = group_get(n, group)) == NULL) {
		prune(n);
		return -ENOMEM;
	}
	sub->next_in_node = sub->group->members;
	sub->group->members = sub;
	sub->group->n_members++;
	return 0;
}

static void unlink_sub(struct broker_sub **head, struct broker_sub *sub)
{
	while (*head != NULL && *head != sub)
		head = &(*head)->next_in_node;
	if (*head != NULL)
		*head = sub->next_in_node;
}

void tt_remove(struct broker_sub *sub)
{
	struct tt_node *n = sub->node;
	struct share_group *g = sub->group;

	if (n == NULL)
		return;
	if (g == NULL) {
		unlink_sub(&n->subs, sub);
	} else {
		unlink_sub(&g->members, sub);
		if (--g->n_members == 0) {
			struct share_group **pg = &n->groups;

			while (*pg != g)
				pg = &(*pg)->next;
			*pg = g->next;
			free(g->name);
			free(g);
		}
	}
	sub->node = NULL;
	prune(n);
}

static void visit_node(struct tt_node *n, tt_visit_fn fn, void *arg)
{
	for (struct broker_sub *s = n->subs, *next; s != NULL; s = next) {
		next = s->next_in_node;
		fn(s, arg);
	}
	for (struct share_group *g = n->groups; g != NULL; g = g->next) {
		struct broker_sub *m = g->members;

		for (uint32_t k = g->rr++ % g->n_members; k > 0; k--)
			m = m->next_in_node;
		fn(m, arg);
	}
}

/* p == NULL: every level of the topic was consumed by the path down to n. */
static void walk(struct tt_node *n, const char *p, const char *end, bool dollar,
		 tt_visit_fn fn, void *arg)
{
	bool root = n->parent == NULL;
	const char *q, *next;

	if (p == NULL) {
		visit_node(n, fn, arg);
		struct tt_node *h = child_get(n, "#", 1, false); /* "a/#" matches "a" */
		if (h != NULL)
			visit_node(h, fn, arg);
		return;
	}
	q = memchr(p, '/', (size_t)(end - p));
	if (q == NULL)
		q = end;
	next = q == end ? NULL : q + 1;
	for (struct tt_node *c = n->child; c != NULL; c = c->sibling) {
		bool wild = level_is(c, "+", 1) || level_is(c, "#", 1);

		if (wild && root && dollar)
			continue; /* a leading wildcard does not match a '$' topic */
		if (level_is(c, "#", 1))
			visit_node(c, fn, arg);
		else if (wild || level_is(c, p, (size_t)(q - p)))
			walk(c, next, end, dollar, fn, arg);
	}
}

void tt_match(struct tt_node *root, const char *topic, size_t len, tt_visit_fn fn, void *arg)
{
	walk(root, topic, topic + len, len > 0 && topic[0] == '$', fn, arg);
}
