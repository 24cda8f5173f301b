/*
 * xlcore.c: publishing, and the cross-lcore part of the broker. Two kinds of message cross
 * between the instances of a group, both immutable and shared by reference (the reference count
 * is the only thing two lcores touch, atomically):
 * - a PUBLISH: stored (retained) and routed on the instance that received it, then posted to
 *   every other instance, which does the same for its own sessions;
 * - a client id claim: a CONNECT was accepted on one instance; the others end their live
 *   connection with that client id (DISCONNECT 0x8E, will) and, for a clean start, discard
 *   their stored session;
 * - a session answer: for a claim without clean start from an instance that had no session
 *   for the id, every other instance answers, the one holding the stored session with all
 *   of it (subscriptions, inflight slots with their packet ids and states, the queue, the
 *   incoming QoS 2 ids awaiting PUBREL), the others with "none". The claimer holds the
 *   CONNACK until all have answered (or xlcore_claim_timeout_ms passed), restores the
 *   session, then sends CONNACK with session present 1 and resends what is owed (DUP);
 * - shared subscription groups: each group has an owner instance (a hash of its filter);
 *   the others tell it how many members they have (a member message per join and leave), it
 *   alone picks, for each message, an instance with members, and sends that one a delivery;
 * - a retained message's store order: each topic has an owner instance (a hash of the topic)
 *   whose order every instance's retained store follows (retain_input).
 */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "mqtt_topic.h"

enum {
	XK_PUBLISH = 0,
	XK_CLAIM = 1,
	XK_SESSION = 2,
	XK_MEMBER = 3,
	XK_DELIVER = 4,
	XK_INTEREST = 5,
	XK_RETAIN = 6
};

/* Every cross-lcore object starts like this (struct broker_msg does too). */
struct xhdr {
	uint32_t refcnt;
	uint8_t xkind;
};

struct xclaim {
	uint32_t refcnt;
	uint8_t xkind;
	bool clean_start;
	bool answer; /* every instance answers (XK_SESSION, found or not) */
	uint16_t id_len;
	uint32_t from; /* the claiming instance */
	uint64_t at_ms;
	uint32_t seq; /* the claimer's number for it, echoed in the answer */
	char id[];
};

struct xsub {
	const char *filter;
	uint16_t len;
	uint8_t qos;
	bool no_local, rap;
	uint32_t sub_id;
};

struct xqent {
	struct broker_msg *msg; /* a reference */
	uint8_t qos;
	bool retain;
	uint32_t sub_id;
};

/* One block: this header, the arrays, then the client id and the filters. found false: the
 * answer "no session here" (nothing else but the id). seq 0: a session moved unasked (the
 * claimer had one already, the client was told present 1 there). */
struct xsession {
	uint32_t refcnt;
	uint8_t xkind;
	bool found;
	uint16_t id_len;
	uint16_t n_slots, n_rx;
	uint32_t n_subs, n_msgs;
	uint32_t seq;
	uint32_t from;
	const char *id;
	struct xsub *subs;
	struct out_slot *slots; /* inflight, in send order; msg NULL: only the PUBREL left */
	struct xqent *msgs;     /* the queue */
	uint16_t *rx;           /* incoming QoS 2 ids awaiting PUBREL */
};

/* An instance's interest summary: the buckets (first topic level) of its trie entries, and
 * for each instance how many sessions it has received from it (so that one can stop adding
 * the buckets of the sessions it sent: they are in mask from then on). */
struct xinterest {
	uint32_t refcnt;
	uint8_t xkind;
	uint32_t from;
	uint64_t mask;
	uint32_t got[]; /* xn entries */
};

/* A retained message stored on the topic's owner instance, for the others to store in the
 * owner's order (not routed again: the PUBLISH itself was). Posted to every other instance,
 * the last one frees it. */
struct xretain {
	uint32_t refcnt;
	uint8_t xkind;
	struct broker_msg *msg;
};

/* A share group's member count on instance from (to the owner: the count itself, not a
 * change, so one lost is made good by the next), or a message for the group (msg set: to the
 * chosen instance, or back to the owner when that one's members left). */
struct xgroup {
	uint32_t refcnt;
	uint8_t xkind;
	uint8_t hops; /* XK_DELIVER: how many times it crossed already */
	uint16_t len;
	uint32_t from;
	uint32_t count; /* XK_MEMBER: members on from */
	struct broker_msg *msg;
	char filter[];
};

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
static uint32_t
bucket(const char *s, size_t len)
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
	uint64_t want = (1ull << bucket(m->topic.s, m->topic.len)) | (1ull << XL_WILD);

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
xpost(struct broker *b, uint32_t dst, struct xhdr *x, bool keep)
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
		conn_hold(b->cur_in, HOLD_XLCORE);
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
static uint32_t
post_all(struct broker *b, struct xhdr *x, enum broker_counter sent, const struct broker_msg *m)
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
		if ((rc = xpost(b, dst, x, keep)) > 0)
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
xlcore_group_owner(const struct broker *b, const char *filter, size_t len)
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
	rc = xpost(b, dst, (struct xhdr *)x, kind == XK_MEMBER || (m != NULL && m->qos > 0));
	if (rc > 0 && m != NULL)
		broker_count(b, BROKER_C_XLCORE_TX);
	return rc >= 0;
}

bool
xlcore_group_member(struct broker *b, const struct share_group *g)
{
	uint32_t owner;

	if (b->xops == NULL || (owner = owner_of(b, g->filter, g->filter_len)) == b->xself)
		return true;
	return post_group(b, owner, XK_MEMBER, g->filter, g->filter_len, g->n_members, NULL, 0);
}

void
xlcore_group_deliver(struct broker *b, uint32_t dst, const char *filter, size_t len,
    struct broker_msg *m, uint8_t hops)
{
	post_group(b, dst, XK_DELIVER, filter, len, 0, m, hops);
}

void
xlcore_group_bounce(
    struct broker *b, const char *filter, size_t len, struct broker_msg *m, uint8_t hops)
{
	post_group(b, owner_of(b, filter, len), XK_DELIVER, filter, len, 0, m, (uint8_t)(hops + 1));
}

/* Kept while a claim is open: see struct broker. The oldest goes when the ring is full. */
static void
replay_keep(struct broker *b, struct broker_msg *m)
{
	struct broker_msg **slot = &b->replay[b->pub_seq++ % BROKER_REPLAY];

	broker_msg_unref(*slot);
	broker_msg_ref(m);
	*slot = m;
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
		retain_set(b, m);
		return;
	}
	if (owner != b->xself)
		return; /* its owner's XK_RETAIN says when */
	retain_set(b, m);
	if ((x = malloc(sizeof(*x))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	*x = (struct xretain){ .refcnt = 1, .xkind = XK_RETAIN, .msg = m };
	broker_msg_ref(m);
	post_all(b, (struct xhdr *)x, BROKER_C_XLCORE_RETAIN_TX, NULL);
}

void
broker_publish(struct broker *b, struct broker_msg *m, bool *matched)
{
	m->xfrom = (uint16_t)b->xself;
	if (m->retain)
		retain_set(b, m);
	broker_route(b, m, matched);
	if (b->xops != NULL && b->now_ms < b->replay_until_ms)
		replay_keep(b, m);
	if (b->xops != NULL) {
		broker_msg_ref(m);
		post_all(b, (struct xhdr *)m, BROKER_C_XLCORE_TX, m);
		*matched = true; /* subscribers elsewhere are not known here */
	}
}

uint32_t
broker_xlcore_claim(struct broker *b, const char *id, size_t len, bool clean_start, uint64_t at_ms,
    struct broker_session *s)
{
	struct session_cold *k = NULL;
	struct xclaim *c;
	uint32_t n;

	if (b->xops == NULL)
		return 0;
	if (s != NULL && (k = session_cold_get(s)) == NULL)
		s = NULL; /* no room to wait for answers: the claim only ends other connections */
	if ((c = malloc(sizeof(*c) + len)) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		if (s != NULL)
			session_cold_put(s);
		return 0;
	}
	if (s != NULL && ++b->next_claim_seq == 0)
		b->next_claim_seq = 1; /* 0 means none */
	*c = (struct xclaim){ .refcnt = 1,
		.xkind = XK_CLAIM,
		.clean_start = clean_start,
		.answer = s != NULL,
		.id_len = (uint16_t)len,
		.from = b->xself,
		.at_ms = at_ms,
		.seq = s != NULL ? b->next_claim_seq : 0 };
	memcpy(c->id, id, len);
	n = post_all(b, (struct xhdr *)c, BROKER_C_XLCORE_CLAIM_TX, NULL);
	if (s == NULL)
		return 0;
	if (n == 0) {
		session_cold_put(s);
		return 0;
	}
	s->claim_seq = b->next_claim_seq;
	s->claim_pub_seq = (uint32_t)b->pub_seq;
	k->claim_pending = n; /* answers lost on the way: the timeout ends the wait */
	k->claim_found = false;
	k->claim_deadline_ms = b->now_ms + b->cfg.xlcore_claim_timeout_ms;
	if (b->replay_until_ms < k->claim_deadline_ms)
		b->replay_until_ms = k->claim_deadline_ms;
	return n;
}

void
xlcore_claim_timeout(struct broker_session *s)
{
	broker_count(s->b, BROKER_C_XLCORE_CLAIM_TIMEOUT);
	connect_claim_done(s);
}

/* Inflight slots in send order (few, max_inflight: a scan per slot); out NULL: count only. */
static uint16_t
slots_in_order(const struct broker_session *s, struct out_slot *out)
{
	uint16_t n = 0;
	uint32_t last = 0;

	for (;;) {
		const struct out_slot *next = NULL;

		for (uint16_t i = 0; s->inflight != NULL && i < s->b->cfg.max_inflight; i++) {
			const struct out_slot *o = &s->inflight[i];

			if (o->state != SLOT_FREE && (n == 0 || (int32_t)(o->seq - last) > 0) &&
			    (next == NULL || (int32_t)(o->seq - next->seq) < 0))
				next = o;
		}
		if (next == NULL)
			return n;
		if (out != NULL) {
			out[n] = *next;
			if (next->msg != NULL)
				broker_msg_ref(next->msg);
		}
		last = next->seq;
		n++;
	}
}

static char *
pack_subs(const struct broker_session *s, struct xsub *out, char *at)
{
	uint32_t i = 0;

	for (const struct broker_sub *sub = s->subs; sub != NULL; sub = sub->next_in_sess, i++) {
		memcpy(at, sub->filter, sub->filter_len);
		out[i] = (struct xsub){ at, sub->filter_len, sub->qos, sub->no_local, sub->rap,
			sub->sub_id };
		at += sub->filter_len;
	}
	return at;
}

/* Pack a stored session (NULL: the answer "none") for the claimer, whose number for the
 * claim is seq; NULL when out of memory. Everything but the id is empty for "none". */
static struct xsession *
session_pack(const struct broker_session *s, const char *id, uint16_t id_len, uint64_t seq)
{
	uint16_t n_slots = s != NULL ? slots_in_order(s, NULL) : 0,
		 n_rx = s != NULL ? s->n_rx_qos2 : 0;
	uint32_t n_msgs = s != NULL ? s->qlen : 0, n_subs = s != NULL ? s->n_subs : 0, i = 0;
	size_t size = sizeof(struct xsession) + id_len + (size_t)n_slots * sizeof(struct out_slot) +
	    (size_t)n_msgs * sizeof(struct xqent) + (size_t)n_subs * sizeof(struct xsub) +
	    (size_t)n_rx * sizeof(uint16_t);
	struct xsession *x;
	char *at;

	for (const struct broker_sub *sub = s != NULL ? s->subs : NULL; sub;
	     sub = sub->next_in_sess)
		size += sub->filter_len;
	if ((x = calloc(1, size)) == NULL)
		return NULL;
	*x = (struct xsession){ .refcnt = 1,
		.xkind = XK_SESSION,
		.found = s != NULL,
		.id_len = id_len,
		.n_slots = n_slots,
		.n_rx = n_rx,
		.n_subs = n_subs,
		.n_msgs = n_msgs,
		.seq = seq };
	x->from = s != NULL ? s->b->xself : 0;
	x->slots = (struct out_slot *)(x + 1);
	x->msgs = (struct xqent *)(x->slots + n_slots);
	x->subs = (struct xsub *)(x->msgs + n_msgs);
	x->rx = (uint16_t *)(x->subs + n_subs);
	at = (char *)(x->rx + n_rx);
	memcpy(at, id, id_len);
	x->id = at;
	if (s == NULL)
		return x;
	slots_in_order(s, x->slots);
	for (const struct qent *q = s->qhead; q != NULL; q = q->next, i++) {
		x->msgs[i] = (struct xqent){ q->msg, q->qos, q->retain, q->sub_id };
		broker_msg_ref(q->msg);
	}
	if (n_rx > 0) /* rx_qos2 is NULL until the first QoS 2 PUBLISH */
		memcpy(x->rx, s->rx_qos2, (size_t)n_rx * sizeof(uint16_t));
	pack_subs(s, x->subs, at + id_len);
	return x;
}

/* An answer that does not fit the claimer's ring waits for room, in order, like a QoS 1
 * copy: dropped, the session would stay here as a ghost that a later CONNECT here resumes
 * (present 1, what the client acknowledged on the other lcore sent again), and a "none"
 * would make the claimer wait for its timeout. */
static bool
post_answer(struct broker *b, struct xsession *x, uint32_t to)
{
	if (x == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return false;
	}
	return xpost(b, to, (struct xhdr *)x, true) >= 0;
}

/* The session goes to the instance its client reconnected to. When it cannot be packed (out
 * of memory), it stays here (the claimer's wait times out): kept rather than lost. */
static void
session_move(struct broker *b, struct broker_session *s, const struct xclaim *c)
{
	uint64_t buckets = 0;

	for (const struct broker_sub *sub = s->subs; sub != NULL; sub = sub->next_in_sess)
		if (sub->group == NULL)
			buckets |= 1ull << bucket(sub->filter, sub->filter_len);
	if (!post_answer(b, session_pack(s, s->client_id, s->id_len, c->seq), c->from))
		return;
	/* Messages published here from now on must reach its subscriptions there, before the
	 * claimer has announced them (its announcements echo how many sessions it got). */
	if (b->peers != NULL && c->from < b->xn) {
		b->peers[c->from].pending |= buckets;
		b->peers[c->from].moved_to++;
	}
	for (const struct broker_sub *sub = s->subs; sub != NULL; sub = sub->next_in_sess)
		if (sub->group != NULL)
			tt_group_moved(b, sub->group, c->from);
	broker_count(b, BROKER_C_XLCORE_SESSION_MOVED);
	will_clear(s); /* its client is back (elsewhere): a delayed will is not sent */
	session_destroy(s);
}

/* Another instance accepted a CONNECT for this client id at c->at_ms. A connection here that
 * is newer than that claim (the client came back here since) is left alone. */
static void
claim_input(struct broker *b, const struct xclaim *c)
{
	struct broker_session *s = session_find(b, c->id, c->id_len);
	struct broker_conn *old = s != NULL ? s->conn : NULL;

	if (old != NULL && old->opened_ms > c->at_ms) {
		s = NULL; /* stale: this lcore keeps it (and its newer claim ends the other) */
	} else if (old != NULL) {
		broker_count(b, BROKER_C_XLCORE_TAKEOVER);
		conn_kill(old, MQTT_RC_SESSION_TAKEN_OVER, BROKER_C_COUNT);
		old->s = NULL; /* the session goes offline now, not at reap */
		session_offline(s, true, b->now_ms);
		s = session_find(b, c->id, c->id_len); /* NULL: expiry 0, gone already */
	}
	if (s != NULL && c->clean_start) {
		broker_count(b, BROKER_C_XLCORE_SESSION_DISCARDED);
		session_destroy(s);
	} else if (s != NULL) {
		session_move(b, s, c);
		return;
	}
	if (c->answer)
		post_answer(b, session_pack(NULL, c->id, c->id_len, c->seq), c->from);
}

/* The moved subscriptions join s; those that are new are put in fresh (when not NULL). */
static uint32_t
merge_subs(struct broker_session *s, const struct xsession *x, struct broker_sub **fresh)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < x->n_subs; i++) {
		const struct xsub *o = &x->subs[i];
		struct mqtt_subscription sub = { .filter = { o->filter, o->len },
			.qos = o->qos,
			.no_local = o->no_local,
			.retain_as_published = o->rap };
		struct broker_sub *new = session_sub_merge(s, &sub, o->sub_id);

		if (new != NULL && fresh != NULL)
			fresh[n++] = new;
	}
	return n;
}

/* Messages published here since the claim went out, matched against the subscriptions that
 * just arrived: they reached the other lcore after the session had left it (shared groups
 * excepted: their owner picked a member when each was published). */
static void
replay(struct broker *b, struct broker_session *s, struct broker_sub **fresh, uint32_t n_fresh)
{
	/* claim_pub_seq keeps pub_seq's low 32 bits: what was published since is the difference */
	uint64_t from = b->pub_seq - (uint32_t)((uint32_t)b->pub_seq - s->claim_pub_seq);

	if (b->pub_seq - from > BROKER_REPLAY) {
		b->cnt[BROKER_C_XLCORE_REPLAY_LOST] += b->pub_seq - from - BROKER_REPLAY;
		from = b->pub_seq - BROKER_REPLAY;
	}
	for (uint64_t seq = from; seq < b->pub_seq; seq++) {
		struct broker_msg *m = b->replay[seq % BROKER_REPLAY];

		for (uint32_t i = 0; i < n_fresh; i++)
			if (fresh[i]->group == NULL &&
			    mqtt_topic_match(
				fresh[i]->filter, fresh[i]->filter_len, m->topic.s, m->topic.len))
				broker_deliver_sub(fresh[i], m);
	}
}

/* Room for the subscriptions that will be new, when the answer is to our claim (seq): the
 * messages published here meanwhile are matched against them afterwards. */
static struct broker_sub **
fresh_alloc(struct broker *b, const struct xsession *x)
{
	struct broker_sub **fresh;

	if (x->seq == 0 || x->n_subs == 0)
		return NULL;
	if ((fresh = calloc(x->n_subs, sizeof(*fresh))) == NULL)
		broker_count(b, BROKER_C_NOMEM);
	return fresh;
}

static void
merge_queue(struct broker *b, struct broker_session *s, const struct xsession *x)
{
	for (uint32_t i = 0; i < x->n_msgs; i++)
		if (!broker_msg_expired(x->msgs[i].msg, b->now_ms))
			session_deliver(s, x->msgs[i].msg, x->msgs[i].qos, x->msgs[i].retain,
			    x->msgs[i].sub_id);
}

/* Before the CONNACK: the session comes back whole, packet ids and states included, so the
 * client (told session present 1) sees its unacknowledged messages again with DUP and the
 * PUBRELs it waits for, and a QoS 2 PUBLISH it repeats is not routed twice. What the window
 * here cannot take is sent as new messages ahead of the queue. */
static void
session_restore(struct broker *b, struct broker_session *s, const struct xsession *x)
{
	struct broker_sub **fresh = fresh_alloc(b, x);
	uint32_t n_fresh = merge_subs(s, x, fresh);

	broker_count(b, BROKER_C_XLCORE_SESSION_RESTORED);
	for (uint16_t i = 0; i < x->n_slots; i++) {
		const struct out_slot *o = &x->slots[i];

		if (!session_slot_restore(s, o) && o->msg != NULL)
			session_deliver(s, o->msg, o->qos, o->retain, o->sub_id);
	}
	for (uint16_t i = 0; i < x->n_rx; i++) /* more than receive_max here: not kept */
		session_rx_qos2_add(s, x->rx[i]);
	merge_queue(b, s, x);
	if (fresh != NULL)
		replay(b, s, fresh, n_fresh);
	free(fresh);
}

/* After the CONNACK (the claim timed out, or a session moved unasked): the client was told
 * there was no session, or has its own state for the one here, so the packet ids mean
 * nothing to it: unacknowledged messages go again as new ones (QoS 1: at least once; a QoS 2
 * one that was sent is not, it may have been received: exactly once forbids a second copy,
 * counted), then the queue, then what was published here since the claim, in order. */
static void
session_merge(struct broker *b, struct broker_session *s, const struct xsession *x)
{
	struct broker_sub **fresh = fresh_alloc(b, x);
	uint32_t n_fresh = merge_subs(s, x, fresh);

	broker_count(b, BROKER_C_XLCORE_SESSION_MERGED);
	for (uint16_t i = 0; i < x->n_slots; i++) {
		const struct out_slot *o = &x->slots[i];

		if (o->msg == NULL || broker_msg_expired(o->msg, b->now_ms))
			continue;
		if (o->state == SLOT_WAIT_PUBREC) { /* every slot was sent once */
			/* sent, maybe received: under a new id it could be a second copy */
			broker_count(b, BROKER_C_XLCORE_QOS2_UNCERTAIN);
			continue;
		}
		session_deliver(s, o->msg, o->qos, o->retain, o->sub_id);
	}
	merge_queue(b, s, x);
	if (fresh != NULL)
		replay(b, s, fresh, n_fresh);
	free(fresh);
	session_drain(s);
}

/* The answer's effect on the session it is for (s, NULL when none here). */
static void
session_answer_apply(struct broker *b, struct broker_session *s, const struct xsession *x)
{
	if (s != NULL && x->seq != 0 && x->seq == s->claim_seq && session_claim_pending(s) > 0) {
		if (x->found) {
			session_restore(b, s, x);
			s->cold->claim_found = true;
		}
		if (--s->cold->claim_pending == 0)
			connect_claim_done(s);
		return;
	}
	if (!x->found)
		return; /* a "none" after the timeout */
	if (s == NULL || (x->seq != 0 && x->seq != s->claim_seq)) {
		broker_count(b, BROKER_C_XLCORE_SESSION_LOST);
		return;
	}
	session_merge(b, s, x);
}

/* An answer to a claim made here, or a session moved unasked. */
static void
session_answer(struct broker *b, const struct xsession *x)
{
	struct broker_session *s = session_find(b, x->id, x->id_len);

	if (x->found && b->peers != NULL && x->from < b->xn) {
		b->peers[x->from].got_from++;
		b->interest_dirty = true; /* the sender waits for this count: announce it */
	}
	session_answer_apply(b, s, x);
	if (x->found && (s = session_find(b, x->id, x->id_len)) != NULL)
		persist_session_image(s); /* its subscriptions and messages, journaled here */
	if (b->interest_dirty)
		xlcore_tick(b);
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
	if (post_all(b, (struct xhdr *)x, BROKER_C_XLCORE_INTEREST_TX, NULL) == b->xn - 1)
		b->interest_dirty = false;
}

void
xlcore_interest(struct broker *b, const char *filter, size_t len, int delta)
{
	uint32_t k = bucket(filter, len);
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
xlcore_tick(struct broker *b)
{
	if (b->xops != NULL && b->interest_dirty)
		interest_announce(b);
	if (b->xops != NULL)
		tt_group_counts_retry(b);
	broker_xlcore_retry(b, b->now_ms);
}

void
xlcore_fini(struct broker *b)
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
		claim_input(b, (struct xclaim *)x);
	} else if (((struct xhdr *)x)->xkind == XK_SESSION) {
		session_answer(b, (struct xsession *)x);
	} else if (((struct xhdr *)x)->xkind == XK_INTEREST) {
		interest_input(b, (struct xinterest *)x);
	} else if (((struct xhdr *)x)->xkind == XK_MEMBER) {
		struct xgroup *g = (struct xgroup *)x;

		tt_group_remote(b, g->filter, g->len, g->from, g->count);
	} else if (((struct xhdr *)x)->xkind == XK_RETAIN) {
		retain_set(b, ((struct xretain *)x)->msg);
	} else if (((struct xhdr *)x)->xkind == XK_DELIVER) {
		struct xgroup *g = (struct xgroup *)x;

		broker_count(b, BROKER_C_XLCORE_RX);
		tt_group_deliver(b, g->filter, g->len, g->msg, g->from, g->hops);
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
