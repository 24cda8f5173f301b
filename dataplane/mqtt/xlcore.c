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
	    ((struct xhdr *)x)->xkind == XK_RETAIN || ((struct xhdr *)x)->xkind == XK_XACK)
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
static int
post_now(struct broker *b, uint32_t dst, struct xhdr *x, bool keep, enum broker_counter sent)
{
	struct xpend *p;

	if ((b->peers == NULL || b->peers[dst].n_xpend == 0) &&
	    b->xops->post(b->xctx, dst, (struct broker_xmsg *)x)) {
		if (sent != BROKER_C_COUNT)
			broker_count(b, sent);
		return 1;
	}
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

/* With a state directory, a post waits for the end of the call (broker_reap): the journal
 * write that holds what it depends on (the outbox entry of a QoS 1/2 message, a session's
 * deletion here before it moves) comes first. false: no memory, post it now. */
static bool
stage(struct broker *b, uint32_t dst, struct xhdr *x, bool keep, enum broker_counter sent)
{
	if (b->n_xstage == b->xstage_cap) {
		uint32_t cap = b->xstage_cap != 0 ? 2 * b->xstage_cap : 64;
		struct xstage *n = realloc(b->xstage, cap * sizeof(*n));

		if (n == NULL)
			return false;
		b->xstage = n;
		b->xstage_cap = cap;
	}
	b->xstage[b->n_xstage++] = (struct xstage){
		.x = x, .by = b->cur_in, .dst = dst, .sent = (uint16_t)sent, .keep = keep
	};
	/* what waits for room already: this one will too; stop reading its publisher now */
	if (keep && b->cur_in != NULL && b->peers != NULL && b->peers[dst].n_xpend > 0)
		broker_conn_hold(b->cur_in, HOLD_XLCORE);
	return true;
}

int
broker_xlcore_post(
    struct broker *b, uint32_t dst, struct xhdr *x, bool keep, enum broker_counter sent)
{
	if (b->persist != NULL && stage(b, dst, x, keep, sent))
		return 1;
	return post_now(b, dst, x, keep, sent);
}

void
broker_xlcore_stage_drain(struct broker *b)
{
	struct broker_conn *cur = b->cur_in;

	for (uint32_t i = 0; i < b->n_xstage; i++) {
		struct xstage *e = &b->xstage[i];
		uint8_t kind = e->x->xkind;

		if (b->xops == NULL) { /* shutting down */
			broker_xmsg_free((struct broker_xmsg *)e->x);
			continue;
		}
		b->cur_in = e->by; /* held if it does not fit, as when posted at once */
		if (post_now(b, e->dst, e->x, e->keep, (enum broker_counter)e->sent) < 0 &&
		    kind == XK_INTEREST)
			b->interest_dirty = true; /* posted again at the next tick */
	}
	b->n_xstage = 0;
	b->cur_in = cur;
}

/* ---- the outbox (state across restarts: xlcore_int.h) ---- */

/* Journaled QoS 1/2 posts need a state directory, and a destination mask per entry. */
static bool
outbox_on(const struct broker *b)
{
	return b->persist != NULL && b->peers != NULL && b->xn <= 64;
}

struct xout *
broker_xlcore_outbox_add(struct broker *b, uint64_t seq, uint64_t mask, uint8_t kind, uint8_t hops,
    const char *filter, uint16_t flen, struct broker_msg *m)
{
	struct xout *o = malloc(sizeof(*o) + flen);

	if (o == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return NULL;
	}
	*o = (struct xout){
		.seq = seq, .mask = mask, .msg = m, .kind = kind, .hops = hops, .flen = flen
	};
	if (flen > 0)
		memcpy(o->filter, filter, flen);
	broker_msg_ref(m);
	if (b->xout_tail != NULL)
		b->xout_tail->next = o;
	else
		b->xout_head = o;
	b->xout_tail = o;
	b->n_xout++;
	if (seq > b->xout_seq)
		b->xout_seq = seq;
	return o;
}

/* Out of memory: the entry is lost, the message goes all the same (as before the outbox). */
static void
outbox_put(struct broker *b, uint64_t seq, uint64_t mask, uint8_t kind, uint8_t hops,
    const char *filter, uint16_t flen, struct broker_msg *m)
{
	struct xout *o = broker_xlcore_outbox_add(b, seq, mask, kind, hops, filter, flen, m);

	if (o != NULL)
		broker_persist_xout(b, o);
}

static bool
outbox_acked(const struct broker *b, const struct xout *o)
{
	for (uint64_t m = o->mask; m != 0; m &= m - 1) {
		uint32_t dst = (uint32_t)__builtin_ctzll(m);

		if (dst < b->xn && b->peers[dst].xout_acked < o->seq)
			return false;
	}
	return true; /* an instance that is no more (fewer workers now) acknowledges nothing */
}

void
broker_xlcore_outbox_prune(struct broker *b)
{
	struct xout *o;

	while ((o = b->xout_head) != NULL && (b->peers == NULL || outbox_acked(b, o))) {
		b->xout_head = o->next;
		b->n_xout--;
		broker_msg_unref(o->msg);
		free(o);
	}
	if (b->xout_head == NULL)
		b->xout_tail = NULL;
}

/* Post one entry again to dst, as it went the first time (numbered, kept when full). */
static bool
outbox_repost(struct broker *b, const struct xout *o, uint32_t dst)
{
	struct xgroup *g;

	if (o->kind == XK_PUBLISH) {
		broker_msg_ref(o->msg);
		return post_now(b, dst, (struct xhdr *)o->msg, true, BROKER_C_COUNT) >= 0;
	}
	if ((g = calloc(1, sizeof(*g) + o->flen)) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return false;
	}
	*g = (struct xgroup){ .refcnt = 1,
		.xkind = XK_DELIVER,
		.hops = o->hops,
		.len = o->flen,
		.from = b->xself,
		.xseq = o->seq,
		.msg = o->msg };
	memcpy(g->filter, o->filter, o->flen);
	broker_msg_ref(o->msg);
	return post_now(b, dst, (struct xhdr *)g, true, BROKER_C_COUNT) >= 0;
}

uint32_t
broker_xlcore_outbox_resend(struct broker *b)
{
	uint32_t n = 0;

	if (b->xops == NULL || b->peers == NULL)
		return 0;
	for (const struct xout *o = b->xout_head; o != NULL; o = o->next) {
		/* read back from the journal, not shared yet: numbered as it first went */
		o->msg->xfrom = (uint16_t)b->xself;
		o->msg->xseq = o->seq;
		for (uint32_t dst = 0; dst < b->xn && dst < 64; dst++)
			if ((o->mask >> dst & 1) != 0 && dst != b->xself &&
			    b->peers[dst].xout_acked < o->seq && outbox_repost(b, o, dst)) {
				broker_count(
				    b, BROKER_C_XLCORE_RESENT); /* posted, or waits for room */
				n++;
			}
	}
	return n;
}

/* A destination journaled our numbers up to x->seq: those entries can go. */
static void
xack_input(struct broker *b, const struct xack *x)
{
	struct xpeer *p;

	if (b->peers == NULL || x->from >= b->xn || x->seq <= b->peers[x->from].xout_acked)
		return;
	p = &b->peers[x->from];
	p->xout_acked = x->seq;
	broker_persist_xack(b, x->from, x->seq);
	broker_xlcore_outbox_prune(b);
}

/* The tick: what was taken from each instance's outbox is written to our journal, then told
 * to it (an acknowledgement it may act on only once that is in the page cache). */
static void
xack_send(struct broker *b)
{
	if (b->persist == NULL || b->peers == NULL)
		return;
	broker_persist_xin_sync(b);
	for (uint32_t k = 0; k < b->xn; k++) {
		struct xpeer *p = &b->peers[k];
		struct xack *x;

		if (k == b->xself || p->xin_written <= p->xin_told)
			continue;
		if ((x = malloc(sizeof(*x))) == NULL) {
			broker_count(b, BROKER_C_NOMEM);
			return;
		}
		*x = (struct xack){
			.refcnt = 1, .xkind = XK_XACK, .from = b->xself, .seq = p->xin_written
		};
		p->xin_told = p->xin_written;
		broker_xlcore_post(b, k, (struct xhdr *)x, true, BROKER_C_COUNT);
	}
}

/* A numbered message from instance `from`: false when it was taken here already (before a
 * restart: its outbox posts again what we had not acknowledged). */
static bool
xin_fresh(struct broker *b, uint32_t from, uint64_t seq)
{
	if (seq == 0 || b->peers == NULL || from >= b->xn)
		return true;
	if (seq <= b->peers[from].xin_seq) {
		broker_count(b, BROKER_C_XLCORE_DUP);
		return false;
	}
	b->peers[from].xin_seq = seq;
	return true;
}

static void
outbox_fini(struct broker *b)
{
	while (b->xout_head != NULL) {
		struct xout *o = b->xout_head;

		b->xout_head = o->next;
		broker_msg_unref(o->msg);
		free(o);
	}
	b->xout_tail = NULL;
	b->n_xout = 0;
}

void
broker_xlcore_retry(struct broker *b, uint64_t now_ms)
{
	struct xpend **pp = &b->xpend_head, *p;

	b->now_ms = now_ms;
	if (b->n_xstage > 0 && b->xops != NULL)
		broker_reap(b); /* staged by a call that does not end in broker_reap (admin) */
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
	/* a QoS 1/2 message goes in the outbox (state across restarts): numbered before it is
	 * posted (staged: it leaves after the journal write that holds the entry) */
	bool out = x->xkind == XK_PUBLISH && m != NULL && m->qos > 0 && outbox_on(b);
	uint64_t mask = 0, seq = 0;
	uint32_t n = 0;

	if (out)
		seq = ((struct broker_msg *)x)->xseq = ++b->xout_seq;
	for (uint32_t dst = 0; dst < b->xn; dst++) {
		if (dst == b->xself)
			continue;
		if (m != NULL && !peer_wants(b, dst, m)) {
			broker_count(b, BROKER_C_XLCORE_SKIPPED);
			continue;
		}
		__atomic_add_fetch(&x->refcnt, 1, __ATOMIC_RELAXED);
		if (broker_xlcore_post(b, dst, x, keep, sent) >= 0) {
			n++;
			mask |= 1ull << (dst & 63);
		}
	}
	if (out && mask != 0)
		outbox_put(b, seq, mask, XK_PUBLISH, 0, NULL, 0, (struct broker_msg *)x);
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
	uint64_t seq = 0;
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
	if (kind == XK_DELIVER && m->qos > 0 && outbox_on(b))
		seq = x->xseq = ++b->xout_seq; /* in the outbox as a published message is */
	/* member counts wait for room like QoS 1/2 (a lost one is also made good by the next) */
	rc = broker_xlcore_post(b, dst, (struct xhdr *)x,
	    kind == XK_MEMBER || (m != NULL && m->qos > 0),
	    m != NULL ? BROKER_C_XLCORE_TX : BROKER_C_COUNT);
	if (rc >= 0 && seq != 0)
		outbox_put(b, seq, 1ull << dst, XK_DELIVER, hops, filter, (uint16_t)len, m);
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
	if (b->xops != NULL)
		xack_send(b);
	if (b->xops != NULL && b->interest_dirty)
		interest_announce(b);
	if (b->xops != NULL)
		broker_subs_group_counts_retry(b);
	broker_xlcore_retry(b, b->now_ms);
}

void
broker_xlcore_fini(struct broker *b)
{
	for (uint32_t i = 0; i < b->n_xstage; i++)
		broker_xmsg_free((struct broker_xmsg *)b->xstage[i].x);
	free(b->xstage);
	b->xstage = NULL;
	b->n_xstage = b->xstage_cap = 0;
	outbox_fini(b);
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
	} else if (((struct xhdr *)x)->xkind == XK_XACK) {
		xack_input(b, (struct xack *)x);
	} else if (((struct xhdr *)x)->xkind == XK_DELIVER) {
		struct xgroup *g = (struct xgroup *)x;

		if (xin_fresh(b, g->from, g->xseq)) {
			broker_count(b, BROKER_C_XLCORE_RX);
			broker_subs_group_deliver(b, g->filter, g->len, g->msg, g->from, g->hops);
		}
	} else if (!xin_fresh(b, ((struct broker_msg *)x)->xfrom, ((struct broker_msg *)x)->xseq)) {
		/* taken before a restart: routed and journaled then */
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
