/*
 * mqtt_topic_tree.c: subscription trie (see mqtt_topic_tree.h). A node is one filter level; its
 * named children are kept sorted for binary search, '+' and '#' children apart. Subscriptions
 * live in a small array at the node where their filter ends. Matching walks the name's levels:
 * at each node the named child and the '+' child continue the walk, and a '#' child matches
 * everything left, including nothing ("a/#" matches "a").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"
#include "mqtt_topic_tree.h"

struct tt_sub {
	void *subscriber;
	struct mqtt_sub_opts opts;
	char *group; /* share group (NUL-terminated copy) or NULL */
	uint16_t group_len;
};

struct tt_node {
	struct tt_node *parent;
	struct tt_node **kids; /* named children, sorted by (len, bytes) */
	uint32_t n_kids, cap_kids;
	struct tt_node *plus, *hash;
	struct tt_sub *subs;
	uint32_t n_subs, cap_subs;
	uint16_t len;
	char level[];
};

struct mqtt_topic_tree {
	struct tt_node *root;
	unsigned max_levels;
	size_t n_subs, n_nodes;
	struct mqtt_topic_tree_alloc mem;
};

static void *
libc_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

static void *
libc_realloc(void *p, size_t size)
{
	return realloc(p, size);
}

static void
libc_free(void *p)
{
	free(p);
}

static struct tt_node *
node_new(struct mqtt_topic_tree *t, struct tt_node *parent, const char *level, size_t len)
{
	struct tt_node *n = t->mem.calloc(1, sizeof(*n) + len + 1);

	if (n == NULL)
		return NULL;
	n->parent = parent;
	n->len = (uint16_t)len;
	memcpy(n->level, level, len);
	t->n_nodes++;
	return n;
}

struct mqtt_topic_tree *
mqtt_topic_tree_create(unsigned max_levels, const struct mqtt_topic_tree_alloc *alloc)
{
	static const struct mqtt_topic_tree_alloc libc = { libc_calloc, libc_realloc, libc_free };
	const struct mqtt_topic_tree_alloc *mem = alloc ? alloc : &libc;
	struct mqtt_topic_tree *t = mem->calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->mem = *mem;
	t->max_levels = max_levels ? max_levels : 1;
	t->root = node_new(t, NULL, "", 0);
	if (t->root == NULL) {
		mem->free(t);
		return NULL;
	}
	return t;
}

static void
node_free(struct mqtt_topic_tree *t, struct tt_node *n)
{
	if (n == NULL)
		return;
	for (uint32_t i = 0; i < n->n_kids; i++)
		node_free(t, n->kids[i]);
	node_free(t, n->plus);
	node_free(t, n->hash);
	for (uint32_t i = 0; i < n->n_subs; i++)
		t->mem.free(n->subs[i].group);
	t->mem.free(n->kids);
	t->mem.free(n->subs);
	t->mem.free(n);
}

void
mqtt_topic_tree_destroy(struct mqtt_topic_tree *t)
{
	if (t == NULL)
		return;
	node_free(t, t->root);
	t->mem.free(t);
}

static int
level_cmp(const struct tt_node *n, const char *level, size_t len)
{
	if (n->len != len)
		return n->len < len ? -1 : 1;
	return memcmp(n->level, level, len);
}

/* Index of the named child, or where it would go (*found false). */
static uint32_t
kid_find(const struct tt_node *n, const char *level, size_t len, bool *found)
{
	uint32_t lo = 0, hi = n->n_kids;

	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = level_cmp(n->kids[mid], level, len);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct tt_node *
kid_get(struct mqtt_topic_tree *t, struct tt_node *n, const char *level, size_t len, bool create)
{
	struct tt_node **slot = NULL, *k;
	bool found;
	uint32_t i;

	if (len == 1 && level[0] == '+')
		slot = &n->plus;
	else if (len == 1 && level[0] == '#')
		slot = &n->hash;
	if (slot != NULL) {
		if (*slot == NULL && create)
			*slot = node_new(t, n, level, len);
		return *slot;
	}
	i = kid_find(n, level, len, &found);
	if (found || !create)
		return found ? n->kids[i] : NULL;
	if (n->n_kids == n->cap_kids) {
		uint32_t cap = n->cap_kids ? n->cap_kids * 2 : 4;
		struct tt_node **kids = t->mem.realloc(n->kids, cap * sizeof(*kids));

		if (kids == NULL)
			return NULL;
		n->kids = kids;
		n->cap_kids = cap;
	}
	if ((k = node_new(t, n, level, len)) == NULL)
		return NULL;
	memmove(&n->kids[i + 1], &n->kids[i], (n->n_kids - i) * sizeof(*n->kids));
	n->kids[i] = k;
	n->n_kids++;
	return k;
}

/* Length of the level starting at f[pos] (up to '/' or the end). */
static size_t
level_len(const char *f, size_t len, size_t pos)
{
	const char *slash = memchr(f + pos, '/', len - pos);

	return slash ? (size_t)(slash - (f + pos)) : len - pos;
}

static unsigned
count_levels(const char *f, size_t len)
{
	unsigned n = 1;

	for (size_t i = 0; i < len; i++)
		n += f[i] == '/';
	return n;
}

/* Walk (and with create, build) the path of a filter; NULL when absent or out of memory. */
static struct tt_node *
path(struct mqtt_topic_tree *t, const char *f, size_t len, bool create)
{
	struct tt_node *n = t->root;
	size_t pos = 0;

	for (;;) {
		size_t l = level_len(f, len, pos);

		n = kid_get(t, n, f + pos, l, create);
		if (n == NULL || pos + l == len)
			return n;
		pos += l + 1;
	}
}

/* The last existing node on a filter's path: where to prune from after a failed insert. */
static struct tt_node *
deepest(struct mqtt_topic_tree *t, const char *f, size_t len)
{
	struct tt_node *n = t->root, *k;
	size_t pos = 0;

	for (;;) {
		size_t l = level_len(f, len, pos);

		if ((k = kid_get(t, n, f + pos, l, false)) == NULL)
			return n;
		n = k;
		if (pos + l == len)
			return n;
		pos += l + 1;
	}
}

static int
split_share(const char *filter, size_t len, struct mqtt_str *group, struct mqtt_str *inner)
{
	int rc;

	if (mqtt_topic_filter_valid(filter, len) != 0)
		return -EINVAL;
	rc = mqtt_topic_share_parse(filter, len, group, inner);
	if (rc < 0)
		return -EINVAL;
	if (rc == 0) {
		group->s = NULL;
		group->len = 0;
		inner->s = filter;
		inner->len = (uint16_t)len;
	}
	return 0;
}

static struct tt_sub *
sub_find(struct tt_node *n, void *subscriber, const struct mqtt_str *group)
{
	for (uint32_t i = 0; i < n->n_subs; i++) {
		struct tt_sub *s = &n->subs[i];

		if (s->subscriber == subscriber && s->group_len == group->len &&
		    (group->len == 0 || memcmp(s->group, group->s, group->len) == 0) &&
		    (s->group == NULL) == (group->s == NULL))
			return s;
	}
	return NULL;
}

/* Drop nodes left with no subscriptions and no children, from n up to (not including) root. */
static void
prune(struct mqtt_topic_tree *t, struct tt_node *n)
{
	while (n != t->root && n->n_subs == 0 && n->n_kids == 0 && !n->plus && !n->hash) {
		struct tt_node *p = n->parent;
		bool found;
		uint32_t i;

		if (p->plus == n) {
			p->plus = NULL;
		} else if (p->hash == n) {
			p->hash = NULL;
		} else {
			i = kid_find(p, n->level, n->len, &found);
			memmove(
			    &p->kids[i], &p->kids[i + 1], (p->n_kids - i - 1) * sizeof(*p->kids));
			p->n_kids--;
		}
		t->mem.free(n->kids);
		t->mem.free(n->subs);
		t->mem.free(n);
		t->n_nodes--;
		n = p;
	}
}

static int
sub_add(struct mqtt_topic_tree *t, struct tt_node *n, void *subscriber,
    const struct mqtt_str *group, const struct mqtt_sub_opts *opts)
{
	struct tt_sub *s;

	if (n->n_subs == n->cap_subs) {
		uint32_t cap = n->cap_subs ? n->cap_subs * 2 : 2;
		struct tt_sub *subs = t->mem.realloc(n->subs, cap * sizeof(*subs));

		if (subs == NULL)
			return -ENOMEM;
		n->subs = subs;
		n->cap_subs = cap;
	}
	s = &n->subs[n->n_subs];
	memset(s, 0, sizeof(*s));
	if (group->s != NULL) {
		if ((s->group = t->mem.calloc(1, group->len + 1u)) == NULL)
			return -ENOMEM;
		memcpy(s->group, group->s, group->len);
		s->group_len = group->len;
	}
	s->subscriber = subscriber;
	s->opts = *opts;
	n->n_subs++;
	t->n_subs++;
	return 0;
}

int
mqtt_topic_tree_insert(struct mqtt_topic_tree *t, const char *filter, size_t len, void *subscriber,
    const struct mqtt_sub_opts *opts)
{
	struct mqtt_str group, inner;
	struct tt_node *n;
	struct tt_sub *s;
	int rc;

	if ((rc = split_share(filter, len, &group, &inner)) != 0)
		return rc;
	if (count_levels(inner.s, inner.len) > t->max_levels)
		return -E2BIG;
	if ((n = path(t, inner.s, inner.len, true)) == NULL) {
		prune(t, deepest(t, inner.s, inner.len));
		return -ENOMEM;
	}
	if ((s = sub_find(n, subscriber, &group)) != NULL) {
		s->opts = *opts;
		return 1;
	}
	if ((rc = sub_add(t, n, subscriber, &group, opts)) != 0)
		prune(t, n);
	return rc;
}

int
mqtt_topic_tree_remove(struct mqtt_topic_tree *t, const char *filter, size_t len, void *subscriber)
{
	struct mqtt_str group, inner;
	struct tt_node *n;
	struct tt_sub *s;

	if (split_share(filter, len, &group, &inner) != 0)
		return -EINVAL;
	if ((n = path(t, inner.s, inner.len, false)) == NULL ||
	    (s = sub_find(n, subscriber, &group)) == NULL)
		return -ENOENT;
	t->mem.free(s->group);
	*s = n->subs[--n->n_subs];
	t->n_subs--;
	prune(t, n);
	return 0;
}

struct walk {
	mqtt_topic_tree_cb cb;
	void *arg;
	size_t matched;
	bool stop;
};

static void
emit(const struct tt_node *n, struct walk *w)
{
	if (n == NULL)
		return;
	for (uint32_t i = 0; i < n->n_subs && !w->stop; i++) {
		const struct tt_sub *s = &n->subs[i];
		struct mqtt_str g = { s->group, s->group_len };

		w->matched++;
		if (w->cb != NULL &&
		    w->cb(s->subscriber, &s->opts, s->group ? &g : NULL, w->arg) != 0)
			w->stop = true;
	}
}

/* n has matched the levels before name[pos]; at_end: the name had no more levels. */
static void
walk(const struct tt_node *n, const char *name, size_t len, size_t pos, bool at_end, bool root,
    struct walk *w)
{
	bool dollar = root && len > 0 && name[0] == '$';
	size_t l;
	bool found;
	uint32_t i;

	if (w->stop)
		return;
	if (!dollar)
		emit(n->hash, w); /* "x/#" matches "x" and everything below */
	if (at_end) {
		emit(n, w);
		return;
	}
	l = level_len(name, len, pos);
	i = kid_find(n, name + pos, l, &found);
	if (found)
		walk(n->kids[i], name, len, pos + l + 1, pos + l == len, false, w);
	if (n->plus != NULL && !dollar)
		walk(n->plus, name, len, pos + l + 1, pos + l == len, false, w);
}

size_t
mqtt_topic_tree_match(
    const struct mqtt_topic_tree *t, const char *name, size_t len, mqtt_topic_tree_cb cb, void *arg)
{
	struct walk w = { cb, arg, 0, false };

	walk(t->root, name, len, 0, false, true, &w);
	return w.matched;
}

size_t
mqtt_topic_tree_subscriptions(const struct mqtt_topic_tree *t)
{
	return t->n_subs;
}

size_t
mqtt_topic_tree_nodes(const struct mqtt_topic_tree *t)
{
	return t->n_nodes - 1; /* the root is not a level */
}
