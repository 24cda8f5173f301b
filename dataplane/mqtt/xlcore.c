/*
 * xlcore.c: the cross-lcore part of the broker: a group of instances (one per worker lcore)
 * post each other immutable messages (xlcore_int.h), shared by reference. This file posts
 * them (in order, kept when a destination's ring is full rather than lost) and frees them,
 * keeps each instance's interest summary (the first topic levels it has subscriptions for:
 * a message goes only where it may match), carries share group member counts and deliveries
 * (each group has an owner instance, a hash of its filter, that alone picks among the
 * instances with members), orders retained messages (each topic has an owner whose order
 * every instance's retained store follows: retain_input), and takes every kind in
 * (broker_xlcore_input). Publishing is publish.c's; client id claims and sessions moving to
 * the lcore their client resumed on are xlcore_session.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "xlcore_int.h"

static void
xsession_free(struct xsession *x)
{
	for (uint16_t i = 0; i < x->n_slots; i++)
		broker_msg_unref(x->slots[i].msg);
	for (uint32_t i = 0; i < x->n_msgs; i++)
		broker_msg_unref(x->msgs[i].msg);
	free(x);
}

/* Claims, interest summaries and retained orders go to every instance: the last one frees
 * it. */
static void
xhdr_unref(struct xhdr *x)
{
	if (__atomic_sub_fetch(&x->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (x->xkind == XK_RETAIN)
		broker_msg_unref(((struct xretain *)x)->msg);
	free(x);
}

void
broker_xmsg_free(struct broker_xmsg *x)
{
	if (((struct xhdr *)x)->xkind == XK_CLAIM || ((struct xhdr *)x)->xkind == XK_INTEREST ||
	    ((struct xhdr *)x)->xkind == XK_RETAIN)
		xhdr_unref((struct xhdr *)x);
	else if (((struct xhdr *)x)->xkind == XK_SESSION)
		xsession_free((struct xsession *)x); /* only ever posted to one instance */
	else if (((struct xhdr *)x)->xkind == XK_MEMBER ||
	    ((struct xhdr *)x)->xkind == XK_DELIVER) {
		broker_msg_unref(((struct xgroup *)x)->msg); /* each posted to one instance */
		free(x);
	} else
		broker_msg_unref((struct broker_msg *)x);
}

void
broker_xlcore_attach(
    struct broker *b, uint32_t self, uint32_t n, const struct broker_xlcore_ops *ops, void *xctx)
{
	b->xops = n > 1 ? ops : NULL;
	b->xctx = xctx;
	b->xself = self;
	b->xn = n;
	free(b->peers);
	if (n > 1 && (b->peers = calloc(n, sizeof(*b->peers))) == NULL)
		broker_count(b, BROKER_C_NOMEM); /* then every message goes everywhere */
	for (uint32_t i = 0; b->peers != NULL && i < n; i++)
		b->peers[i].mask = UINT64_MAX; /* until it says what it has */
	/* session ids (no local) stay unique across the group */
	b->next_session_id = (uint64_t)self << 48;
}

/* The bucket of a topic's or filter's first level. */
uint32_t
broker_xlcore_bucket(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	if (len > 0 && (s[0] == '+' || s[0] == '#') && (len == 1 || s[1] == '/'))
		return XL_WILD;
	for (i = 0; i < len && s[i] != '/'; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h % XL_WILD;
}

/* Could a subscription on instance dst match m? Retained messages go everywhere (each
 * instance keeps the whole retained set); so does everything without a summary. */
static bool
peer_wants(const struct broker *b, uint32_t dst, const struct broker_msg *m)
{
	const struct xpeer *p = b->peers != NULL ? &b->peers[dst] : NULL;
	uint64_t want =
	    (1ull << broker_xlcore_bucket(m->topic.s, m->topic.len)) | (1ull << XL_WILD);

	return m->retain || p == NULL || ((p->mask | p->pending) & want) != 0;
}

/* A post that found its destination's queue full, kept until there is room (in order per
 * destination): what was acknowledged to a publisher is never dropped between lcores. */
struct xpend {
	struct xpend *next;
	struct xhdr *x;
	uint32_t dst;
};

/*
 * Post x (one reference, which this call gives away) to dst behind what already waits for it.
 * 1: posted; 0: kept (keep: a QoS 1/2 or retained message, a share group's member count), and
 * the publisher being read is held until it went (HOLD_XLCORE); -1: dropped, counted.
 */
int
broker_xlcore_post(struct broker *b, uint32_t dst, struct xhdr *x, bool keep)
{
	struct xpend *p;

	if ((b->peers == NULL || b->peers[dst].n_xpend == 0) &&
	    b->xops->post(b->xctx, dst, (struct broker_xmsg *)x))
		return 1;
	if (!keep || b->peers == NULL || (p = malloc(sizeof(*p))) == NULL) {
		broker_xmsg_free((struct broker_xmsg *)x);
		broker_count(b, BROKER_C_XLCORE_DROP);
		return -1;
	}
	*p = (struct xpend){ .x = x, .dst = dst };
	if (b->xpend_tail != NULL)
		b->xpend_tail->next = p;
	else
		b->xpend_head = p;
	b->xpend_tail = p;
	b->peers[dst].n_xpend++;
	b->n_xpend++;
	if (b->cur_in != NULL)
		broker_conn_hold(b->cur_in, HOLD_XLCORE);
	return 0;
}

void
broker_xlcore_retry(struct broker *b, uint64_t now_ms)
{
	struct xpend **pp = &b->xpend_head, *p;

	b->now_ms = now_ms;
	if (b->n_xpend == 0 || b->xops == NULL)
		return;
	for (uint32_t i = 0; i < b->xn; i++)
		b->peers[i].xblocked = false;
	while ((p = *pp) != NULL) {
		struct xpeer *d = &b->peers[p->dst];

		if (d->xblocked || !b->xops->post(b->xctx, p->dst, (struct broker_xmsg *)p->x)) {
			d->xblocked = true; /* the ones behind it wait too: order */
			b->xpend_tail = p;
			pp = &p->next;
			continue;
		}
		broker_count(b, BROKER_C_XLCORE_RETRY);
		if (p->x->xkind == XK_PUBLISH || p->x->xkind == XK_DELIVER)
			broker_count(b, BROKER_C_XLCORE_TX);
		*pp = p->next;
		d->n_xpend--;
		b->n_xpend--;
		free(p);
	}
	if (b->xpend_head == NULL)
		b->xpend_tail = NULL;
	if (b->n_xpend == 0)
		broker_release_all(b, HOLD_XLCORE, NULL);
	broker_reap(b);
}

static void
xpend_fini(struct broker *b)
{
	while (b->xpend_head != NULL) {
		struct xpend *p = b->xpend_head;

		b->xpend_head = p->next;
		broker_xmsg_free((struct broker_xmsg *)p->x);
		free(p);
	}
	b->xpend_tail = NULL;
	b->n_xpend = 0;
}

/* Post x (holding one reference, which this call gives away) to every other instance, or
 * (m set) those that may want m; returns to how many it went (or waits to go). */
uint32_t
broker_xlcore_post_all(
    struct broker *b, struct xhdr *x, enum broker_counter sent, const struct broker_msg *m)
{
	/* Kept when the ring is full: a claim lost would leave two live connections for one
	 * client id [MQTT-3.1.4-3] (or a session where its client is no more); a retained order
	 * lost, retained stores that differ for good. */
	bool keep = x->xkind == XK_RETAIN || x->xkind == XK_CLAIM ||
	    (m != NULL && (m->qos > 0 || m->retain));
	uint32_t n = 0;

	for (uint32_t dst = 0; dst < b->xn; dst++) {
		int rc;

		if (dst == b->xself)
			continue;
		if (m != NULL && !peer_wants(b, dst, m)) {
			broker_count(b, BROKER_C_XLCORE_SKIPPED);
			continue;
		}
		__atomic_add_fetch(&x->refcnt, 1, __ATOMIC_RELAXED);
		if ((rc = broker_xlcore_post(b, dst, x, keep)) > 0)
			broker_count(b, sent);
		if (rc >= 0)
			n++;
	}
	broker_xmsg_free((struct broker_xmsg *)x);
	return n;
}

/* The instance that owns a share group (by its filter) or a retained topic (by its name). */
static uint32_t
owner_of(const struct broker *b, const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h % b->xn;
}

bool
broker_xlcore_group_owner(const struct broker *b, const char *filter, size_t len)
{
	return b->xn <= 1 || owner_of(b, filter, len) == b->xself;
}

/* false: not posted (out of memory, or a QoS 0 delivery that found the ring full) */
static bool
post_group(struct broker *b, uint32_t dst, uint8_t kind, const char *filter, size_t len,
    uint32_t count, struct broker_msg *m, uint8_t hops)
{
	struct xgroup *x = calloc(1, sizeof(*x) + len);
	int rc;

	if (x == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return false;
	}
	*x = (struct xgroup){ .refcnt = 1,
		.xkind = kind,
		.hops = hops,
		.len = (uint16_t)len,
		.from = b->xself,
		.count = count,
		.msg = m };
	memcpy(x->filter, filter, len);
	if (m != NULL)
		broker_msg_ref(m);
	/* member counts wait for room like QoS 1/2 (a lost one is also made good by the next) */
	rc = broker_xlcore_post(
	    b, dst, (struct xhdr *)x, kind == XK_MEMBER || (m != NULL && m->qos > 0));
	if (rc > 0 && m != NULL)
		broker_count(b, BROKER_C_XLCORE_TX);
	return rc >= 0;
}

bool
broker_xlcore_group_member(struct broker *b, const struct share_group *g)
{
	uint32_t owner;

	if (b->xops == NULL || (owner = owner_of(b, g->filter, g->filter_len)) == b->xself)
		return true;
	return post_group(b, owner, XK_MEMBER, g->filter, g->filter_len, g->n_members, NULL, 0);
}

void
broker_xlcore_group_deliver(struct broker *b, uint32_t dst, const char *filter, size_t len,
    struct broker_msg *m, uint8_t hops)
{
	post_group(b, dst, XK_DELIVER, filter, len, 0, m, hops);
}

void
broker_xlcore_group_bounce(
    struct broker *b, const char *filter, size_t len, struct broker_msg *m, uint8_t hops)
{
	post_group(b, owner_of(b, filter, len), XK_DELIVER, filter, len, 0, m, (uint8_t)(hops + 1));
}

/*
 * One order of retained messages per topic on every instance [MQTT-3.3.1-5]: the topic's
 * owner stores them in the order they reach it, and every other instance stores them in that
 * order: a message from the owner when it arrives (its ring is in order), one from a third
 * instance only when the owner sends it on (XK_RETAIN). Without this, "A" published on one
 * lcore and "B" on another at the same time left each holding the other's, for good. The
 * publishing instance stores its own at once, so that its clients see it on their next
 * SUBSCRIBE; the owner's order then reaches it too (its own message comes back last when
 * nothing newer came), so all end alike.
 */
static void
retain_input(struct broker *b, struct broker_msg *m)
{
	uint32_t owner = owner_of(b, m->topic.s, m->topic.len);
	struct xretain *x;

	if (m->xfrom == owner) {
		broker_retain_set(b, m);
		return;
	}
	if (owner != b->xself)
		return; /* its owner's XK_RETAIN says when */
	broker_retain_set(b, m);
	if ((x = malloc(sizeof(*x))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	*x = (struct xretain){ .refcnt = 1, .xkind = XK_RETAIN, .msg = m };
	broker_msg_ref(m);
	broker_xlcore_post_all(b, (struct xhdr *)x, BROKER_C_XLCORE_RETAIN_TX, NULL);
}

/* Post this instance's summary (its buckets, and the sessions it got from each instance). */
static void
interest_announce(struct broker *b)
{
	struct xinterest *x = calloc(1, sizeof(*x) + b->xn * sizeof(uint32_t));

	b->interest_dirty = true;
	if (x == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	*x = (struct xinterest){
		.refcnt = 1, .xkind = XK_INTEREST, .from = b->xself, .mask = b->interest_mask
	};
	for (uint32_t i = 0; b->peers != NULL && i < b->xn; i++)
		x->got[i] = b->peers[i].got_from;
	if (broker_xlcore_post_all(b, (struct xhdr *)x, BROKER_C_XLCORE_INTEREST_TX, NULL) ==
	    b->xn - 1)
		b->interest_dirty = false;
}

void
broker_xlcore_interest(struct broker *b, const char *filter, size_t len, int delta)
{
	uint32_t k = broker_xlcore_bucket(filter, len);
	uint64_t mask;

	if (delta < 0 && b->interest_cnt[k] == 0)
		return;
	b->interest_cnt[k] = (uint32_t)((int64_t)b->interest_cnt[k] + delta);
	mask = b->interest_cnt[k] > 0 ? b->interest_mask | (1ull << k)
				      : b->interest_mask & ~(1ull << k);
	if (mask == b->interest_mask)
		return;
	b->interest_mask = mask;
	if (b->xops != NULL)
		interest_announce(b);
}

void
broker_xlcore_tick(struct broker *b)
{
	if (b->xops != NULL && b->interest_dirty)
		interest_announce(b);
	if (b->xops != NULL)
		broker_subs_group_counts_retry(b);
	broker_xlcore_retry(b, b->now_ms);
}

void
broker_xlcore_fini(struct broker *b)
{
	xpend_fini(b);
	free(b->peers);
	b->peers = NULL;
}

static void
interest_input(struct broker *b, const struct xinterest *x)
{
	struct xpeer *p;

	if (b->peers == NULL || x->from >= b->xn)
		return;
	p = &b->peers[x->from];
	p->mask = x->mask;
	if (x->got[b->xself] >= p->moved_to)
		p->pending = 0; /* it has every session sent to it: their buckets are in mask */
}

void
broker_xlcore_input(struct broker *b, struct broker_xmsg *x, uint64_t now_ms)
{
	b->now_ms = now_ms;
	if (((struct xhdr *)x)->xkind == XK_CLAIM) {
		broker_xlcore_claim_input(b, (struct xclaim *)x);
	} else if (((struct xhdr *)x)->xkind == XK_SESSION) {
		broker_xlcore_session_answer(b, (struct xsession *)x);
	} else if (((struct xhdr *)x)->xkind == XK_INTEREST) {
		interest_input(b, (struct xinterest *)x);
	} else if (((struct xhdr *)x)->xkind == XK_MEMBER) {
		struct xgroup *g = (struct xgroup *)x;

		broker_subs_group_remote(b, g->filter, g->len, g->from, g->count);
	} else if (((struct xhdr *)x)->xkind == XK_RETAIN) {
		broker_retain_set(b, ((struct xretain *)x)->msg);
	} else if (((struct xhdr *)x)->xkind == XK_DELIVER) {
		struct xgroup *g = (struct xgroup *)x;

		broker_count(b, BROKER_C_XLCORE_RX);
		broker_subs_group_deliver(b, g->filter, g->len, g->msg, g->from, g->hops);
	} else {
		struct broker_msg *m = (struct broker_msg *)x;
		bool matched;

		broker_count(b, BROKER_C_XLCORE_RX);
		if (m->retain)
			retain_input(b, m);
		broker_route(b, m, &matched);
	}
	broker_xmsg_free(x);
	broker_reap(b);
}
