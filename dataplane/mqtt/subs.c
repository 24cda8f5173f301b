/*
 * subs.c: the broker's side of lib/mqtt's subscription trie (mqtt_topic_tree.h). An
 * ordinary subscription is entered as its struct broker_sub. A shared subscription group
 * ($share/{group}/{filter}) is entered once, as its struct share_group, so a match reports the
 * group once and the broker hands the message to one member, round robin. With several
 * instances (lcores), each group has an owner instance that knows how many members every
 * instance has and alone decides which instance gets each message (xlcore.c carries it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "mqtt_topic.h"

static struct share_group *
group_find(struct broker *b, const char *filter, size_t len)
{
	for (struct share_group *g = b->groups; g != NULL; g = g->next)
		if (g->filter_len == len && memcmp(g->filter, filter, len) == 0)
			return g;
	return NULL;
}

/* A group is entered by its whole filter; other instances match on the filter inside it. */
static void
group_interest(struct broker *b, const struct share_group *g, int delta)
{
	struct mqtt_str group, inner;

	if (mqtt_topic_share_parse(g->filter, g->filter_len, &group, &inner) == 1)
		broker_xlcore_interest(b, inner.s, inner.len, delta);
}

static struct share_group *
group_new(struct broker *b, const char *filter, size_t len)
{
	struct share_group *g = calloc(1, sizeof(*g));

	if (g == NULL || (g->filter = malloc(len)) == NULL) {
		free(g);
		return NULL;
	}
	memcpy(g->filter, filter, len);
	g->filter_len = (uint16_t)len;
	if (mqtt_topic_tree_insert(
		b->tree, g->filter, g->filter_len, g, &(struct mqtt_sub_opts){ 0 }) < 0) {
		free(g->filter);
		free(g);
		return NULL;
	}
	g->next = b->groups;
	b->groups = g;
	group_interest(b, g, +1);
	return g;
}

/* Gone once it has no member here and (owner) none elsewhere, and the owner knows. */
static void
group_drop_if_empty(struct broker *b, struct share_group *g)
{
	struct share_group **pg = &b->groups;

	if (g->n_members > 0 || g->n_remote > 0 || g->count_dirty)
		return;
	mqtt_topic_tree_remove(b->tree, g->filter, g->filter_len, g);
	group_interest(b, g, -1);
	while (*pg != g)
		pg = &(*pg)->next;
	*pg = g->next;
	free(g->remote);
	free(g->filter);
	free(g);
}

int
broker_subs_insert(struct broker *b, struct broker_sub *sub)
{
	struct mqtt_str group, inner;
	struct share_group *g;
	int rc;

	if (mqtt_topic_share_parse(sub->filter, sub->filter_len, &group, &inner) != 1) {
		rc = mqtt_topic_tree_insert(b->tree, sub->filter, sub->filter_len, sub,
		    &(struct mqtt_sub_opts){ .qos = sub->qos });
		if (rc >= 0)
			broker_xlcore_interest(b, sub->filter, sub->filter_len, +1);
		return rc < 0 ? rc : 0;
	}
	g = group_find(b, sub->filter, sub->filter_len);
	if (g == NULL && (g = group_new(b, sub->filter, sub->filter_len)) == NULL)
		return -ENOMEM;
	sub->group = g;
	sub->next_in_group = g->members;
	g->members = sub;
	g->n_members++;
	g->count_dirty = !broker_xlcore_group_member(b, g);
	return 0;
}

void
broker_subs_remove(struct broker *b, struct broker_sub *sub)
{
	struct share_group *g = sub->group;
	struct broker_sub **pp;

	if (g == NULL) {
		mqtt_topic_tree_remove(b->tree, sub->filter, sub->filter_len, sub);
		broker_xlcore_interest(b, sub->filter, sub->filter_len, -1);
		return;
	}
	for (pp = &g->members; *pp != sub; pp = &(*pp)->next_in_group)
		;
	*pp = sub->next_in_group;
	sub->group = NULL;
	g->n_members--;
	g->count_dirty = !broker_xlcore_group_member(b, g);
	group_drop_if_empty(b, g);
}

/* The next local member round robin, skipping members whose session is offline when one is
 * online (an offline member would only queue it, or drop it at QoS 0). */
static struct broker_sub *
group_pick(struct share_group *g)
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

/* The owner's choice among the instances that have members: UINT32_MAX when none. */
static uint32_t
group_pick_instance(struct broker *b, struct share_group *g)
{
	uint32_t with = 0, k;

	for (uint32_t i = 0; i < b->xn; i++)
		with += i == b->xself ? g->n_members > 0 : g->remote != NULL && g->remote[i] > 0;
	if (with == 0)
		return UINT32_MAX;
	k = g->rr_inst++ % with;
	for (uint32_t i = 0; i < b->xn; i++) {
		bool has = i == b->xself ? g->n_members > 0 : g->remote != NULL && g->remote[i] > 0;

		if (has && k-- == 0)
			return i;
	}
	return UINT32_MAX;
}

struct match_ctx {
	struct broker *b;
	struct broker_msg *m;
	broker_subs_visit_fn fn;
	void *arg;
};

static int
on_match(
    void *subscriber, const struct mqtt_sub_opts *opts, const struct mqtt_str *group, void *arg)
{
	struct match_ctx *mc = arg;
	struct share_group *g = subscriber;
	uint32_t dst;

	(void)opts; /* the broker's own copy in struct broker_sub is the one kept up to date */
	if (group == NULL) {
		mc->fn(subscriber, mc->arg);
		return 0;
	}
	if (mc->b->xops == NULL) {
		mc->fn(group_pick(g), mc->arg);
		return 0;
	}
	if (!broker_xlcore_group_owner(mc->b, g->filter, g->filter_len))
		return 0; /* the owner decides, on its copy of the message */
	dst = group_pick_instance(mc->b, g);
	if (dst == mc->b->xself)
		mc->fn(group_pick(g), mc->arg);
	else if (dst != UINT32_MAX)
		broker_xlcore_group_deliver(mc->b, dst, g->filter, g->filter_len, mc->m, 0);
	return 0;
}

void
broker_subs_match(struct broker *b, struct broker_msg *m, broker_subs_visit_fn fn, void *arg)
{
	struct match_ctx mc = { b, m, fn, arg };

	mqtt_topic_tree_match(b->tree, m->topic.s, m->topic.len, on_match, &mc);
}

/* Owner: another instance's member count for a group. Counts are absolute, not changes: a
 * count that did not arrive is made good by the next one, and by a delivery sent back. */
void
broker_subs_group_remote(
    struct broker *b, const char *filter, size_t len, uint32_t from, uint32_t count)
{
	struct share_group *g = group_find(b, filter, len);

	if (from >= b->xn || (g == NULL && (count == 0 || (g = group_new(b, filter, len)) == NULL)))
		return;
	if (g->remote == NULL && (g->remote = calloc(b->xn, sizeof(*g->remote))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		group_drop_if_empty(b, g);
		return;
	}
	g->n_remote = g->n_remote - g->remote[from] + count;
	g->remote[from] = count;
	group_drop_if_empty(b, g);
}

/* Between the move and the new instance's count, the owner would see no member there (and,
 * if that was the last one, drop the group): what was published meanwhile would not reach
 * the group. Counted there now, a delivery goes to the new instance behind the session
 * (same ring, in order); should the session not arrive there after all, the delivery comes
 * back and corrects the count (broker_subs_group_deliver). */
void
broker_subs_group_moved(struct broker *b, struct share_group *g, uint32_t to)
{
	if (!broker_xlcore_group_owner(b, g->filter, g->filter_len) || to >= b->xn ||
	    to == b->xself)
		return;
	if (g->remote == NULL && (g->remote = calloc(b->xn, sizeof(*g->remote))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	g->remote[to]++;
	g->n_remote++;
}

void
broker_subs_group_counts_retry(struct broker *b)
{
	for (struct share_group *g = b->groups, *next; g != NULL; g = next) {
		next = g->next;
		if (g->count_dirty && broker_xlcore_group_member(b, g)) {
			g->count_dirty = false;
			group_drop_if_empty(b, g);
		}
	}
}

/* Hops a delivery may make between the owner and instances whose members left before it is
 * dropped: each hop back sets that instance's count to 0 on the owner, so this is only a
 * bound against counts that keep changing. */
#define GROUP_MAX_HOPS 8u

/*
 * A delivery the owner chose this instance for: one local member gets it. When the members
 * here left meanwhile (unsubscribed, session gone or moved), it goes back to the owner, which
 * learns that this instance has none (the leave itself is ahead of it in the same ring) and
 * picks another instance; the message was acknowledged to its publisher (QoS 1/2), so it is
 * not dropped while the group has a member anywhere (SHARED_REROUTED). No member left at all:
 * dropped, counted SHARED_NO_MEMBER, as a message published after the last one left.
 */
void
broker_subs_group_deliver(struct broker *b, const char *filter, size_t len, struct broker_msg *m,
    uint32_t from, uint8_t hops)
{
	struct share_group *g = group_find(b, filter, len);
	uint32_t dst;

	if (!broker_xlcore_group_owner(b, filter, len)) {
		if (g != NULL && g->n_members > 0)
			broker_deliver_sub(group_pick(g), m);
		else
			broker_xlcore_group_bounce(b, filter, len, m, hops);
		return;
	}
	broker_subs_group_remote(b, filter, len, from, 0); /* from sent it back: none there */
	if ((g = group_find(b, filter, len)) == NULL ||
	    (dst = group_pick_instance(b, g)) == UINT32_MAX || hops >= GROUP_MAX_HOPS) {
		broker_count(b, BROKER_C_SHARED_NO_MEMBER);
		return;
	}
	broker_count(b, BROKER_C_SHARED_REROUTED);
	if (dst == b->xself)
		broker_deliver_sub(group_pick(g), m);
	else
		broker_xlcore_group_deliver(b, dst, filter, len, m, (uint8_t)(hops + 1));
}
