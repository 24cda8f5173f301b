/*
 * xlcore.c: publishing, and the cross-lcore part of the broker. Two kinds of message cross
 * between the instances of a group, both immutable and shared by reference (the reference count
 * is the only thing two lcores touch, atomically):
 * - a PUBLISH: stored (retained) and routed on the instance that received it, then posted to
 *   every other instance, which does the same for its own sessions;
 * - a client id claim: a CONNECT was accepted on one instance; the others end their live
 *   connection with that client id (DISCONNECT 0x8E, will) and, for a clean start, discard
 *   their stored session;
 * - a moved session: answering a claim without clean start, the instance holding the stored
 *   session sends its subscriptions and undelivered messages to the claimer, which merges them
 *   into the session it made at CONNECT, and drops its own.
 * - shared subscription groups: each group has an owner instance (a hash of its filter);
 *   the others tell it how many members they have (a member message per join and leave), it
 *   alone picks, for each message, an instance with members, and sends that one a delivery.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

enum { XK_PUBLISH = 0, XK_CLAIM = 1, XK_SESSION = 2, XK_MEMBER = 3, XK_DELIVER = 4 };

/* Every cross-lcore object starts like this (struct broker_msg does too). */
struct xhdr {
	uint32_t refcnt;
	uint8_t xkind;
};

struct xclaim {
	uint32_t refcnt;
	uint8_t xkind;
	bool clean_start;
	uint16_t id_len;
	uint32_t from;              /* the claiming instance */
	uint64_t at_ms;
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
	struct broker_msg *msg;     /* a reference */
	uint8_t qos;
	bool retain;
	uint32_t sub_id;
};

/* One block: this header, the arrays, then the client id and the filters. */
struct xsession {
	uint32_t refcnt;
	uint8_t xkind;
	uint16_t id_len;
	uint32_t n_subs, n_msgs;
	const char *id;
	struct xsub *subs;
	struct xqent *msgs;
};

/* A share group's member count changed on instance from (to the owner), or a message for
 * the group (msg set, to the chosen instance). */
struct xgroup {
	uint32_t refcnt;
	uint8_t xkind;
	int8_t delta;
	uint16_t len;
	uint32_t from;
	struct broker_msg *msg;
	char filter[];
};

static void xsession_free(struct xsession *x)
{
	for (uint32_t i = 0; i < x->n_msgs; i++)
		broker_msg_unref(x->msgs[i].msg);
	free(x);
}

static void xclaim_unref(struct xclaim *c)
{
	if (__atomic_sub_fetch(&c->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
		free(c);
}

void broker_xmsg_free(struct broker_xmsg *x)
{
	if (((struct xhdr *)x)->xkind == XK_CLAIM)
		xclaim_unref((struct xclaim *)x);
	else if (((struct xhdr *)x)->xkind == XK_SESSION)
		xsession_free((struct xsession *)x); /* only ever posted to one instance */
	else if (((struct xhdr *)x)->xkind == XK_MEMBER || ((struct xhdr *)x)->xkind == XK_DELIVER) {
		broker_msg_unref(((struct xgroup *)x)->msg); /* each posted to one instance */
		free(x);
	} else
		broker_msg_unref((struct broker_msg *)x);
}

void broker_xlcore_attach(struct broker *b, uint32_t self, uint32_t n,
			  const struct broker_xlcore_ops *ops, void *xctx)
{
	b->xops = n > 1 ? ops : NULL;
	b->xctx = xctx;
	b->xself = self;
	b->xn = n;
	/* session ids (no local) stay unique across the group */
	b->next_session_id = (uint64_t)self << 48;
}

/* Post x (holding one reference, which this call gives away) to every other instance. */
static void post_all(struct broker *b, struct xhdr *x, enum broker_counter sent)
{
	for (uint32_t dst = 0; dst < b->xn; dst++) {
		if (dst == b->xself)
			continue;
		__atomic_add_fetch(&x->refcnt, 1, __ATOMIC_RELAXED);
		if (b->xops->post(b->xctx, dst, (struct broker_xmsg *)x)) {
			broker_count(b, sent);
		} else {
			broker_xmsg_free((struct broker_xmsg *)x);
			broker_count(b, BROKER_C_XLCORE_DROP);
		}
	}
	broker_xmsg_free((struct broker_xmsg *)x);
}

static uint32_t group_owner_of(const struct broker *b, const char *filter, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)filter[i]) * 16777619u;
	return h % b->xn;
}

bool xlcore_group_owner(const struct broker *b, const char *filter, size_t len)
{
	return b->xn <= 1 || group_owner_of(b, filter, len) == b->xself;
}

static void post_group(struct broker *b, uint32_t dst, uint8_t kind, int delta,
		       const struct share_group *g, struct broker_msg *m)
{
	struct xgroup *x = calloc(1, sizeof(*x) + g->filter_len);

	if (x == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	*x = (struct xgroup){ .refcnt = 1, .xkind = kind, .delta = (int8_t)delta,
			      .len = g->filter_len, .from = b->xself, .msg = m };
	memcpy(x->filter, g->filter, g->filter_len);
	if (m != NULL)
		broker_msg_ref(m);
	if (!b->xops->post(b->xctx, dst, (struct broker_xmsg *)x)) {
		broker_xmsg_free((struct broker_xmsg *)x);
		broker_count(b, BROKER_C_XLCORE_DROP);
	} else if (m != NULL) {
		broker_count(b, BROKER_C_XLCORE_TX);
	}
}

void xlcore_group_member(struct broker *b, const struct share_group *g, int delta)
{
	uint32_t owner;

	if (b->xops == NULL || (owner = group_owner_of(b, g->filter, g->filter_len)) == b->xself)
		return;
	post_group(b, owner, XK_MEMBER, delta, g, NULL);
}

void xlcore_group_deliver(struct broker *b, uint32_t dst, const struct share_group *g,
			  struct broker_msg *m)
{
	post_group(b, dst, XK_DELIVER, 0, g, m);
}

void broker_publish(struct broker *b, struct broker_msg *m, bool *matched)
{
	if (m->retain)
		retain_set(b, m);
	broker_route(b, m, matched);
	if (b->xops != NULL) {
		broker_msg_ref(m);
		post_all(b, (struct xhdr *)m, BROKER_C_XLCORE_TX);
		*matched = true; /* subscribers elsewhere are not known here */
	}
}

void broker_xlcore_claim(struct broker *b, const char *id, size_t len, bool clean_start,
			 uint64_t at_ms)
{
	struct xclaim *c;

	if (b->xops == NULL)
		return;
	if ((c = malloc(sizeof(*c) + len)) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	*c = (struct xclaim){ .refcnt = 1, .xkind = XK_CLAIM, .clean_start = clean_start,
			      .id_len = (uint16_t)len, .from = b->xself, .at_ms = at_ms };
	memcpy(c->id, id, len);
	post_all(b, (struct xhdr *)c, BROKER_C_XLCORE_CLAIM_TX);
}

/* Messages the session still owes its client, oldest first: unacknowledged deliveries (the
 * client was told there is no session, so they go again as new ones), then the queue. */
static uint32_t owed(const struct broker_session *s, struct xqent *out)
{
	uint32_t n = 0, last = 0;

	for (;;) { /* inflight slots in send order; few (max_inflight), so a scan per slot */
		const struct out_slot *next = NULL;

		for (uint16_t i = 0; s->inflight != NULL && i < s->b->cfg.max_inflight; i++) {
			const struct out_slot *o = &s->inflight[i];

			if (o->msg != NULL && (n == 0 || (int32_t)(o->seq - last) > 0) &&
			    (next == NULL || (int32_t)(o->seq - next->seq) < 0))
				next = o;
		}
		if (next == NULL)
			break;
		if (out != NULL)
			out[n] = (struct xqent){ next->msg, next->qos, next->retain, next->sub_id };
		last = next->seq;
		n++;
	}
	for (const struct qent *q = s->qhead; q != NULL; q = q->next, n++)
		if (out != NULL)
			out[n] = (struct xqent){ q->msg, q->qos, q->retain, q->sub_id };
	return n;
}

/* Pack a stored session for the instance its client reconnected to; NULL when out of memory. */
static struct xsession *session_pack(struct broker_session *s)
{
	size_t size = sizeof(struct xsession) + s->id_len;
	uint32_t n_msgs = owed(s, NULL);
	struct xsession *x;
	char *at;
	uint32_t i = 0;

	for (const struct broker_sub *sub = s->subs; sub != NULL; sub = sub->next_in_sess)
		size += sizeof(struct xsub) + sub->filter_len;
	size += (size_t)n_msgs * sizeof(struct xqent);
	if ((x = calloc(1, size)) == NULL)
		return NULL;
	*x = (struct xsession){ .refcnt = 1, .xkind = XK_SESSION, .id_len = s->id_len,
				.n_subs = s->n_subs, .n_msgs = n_msgs };
	x->msgs = (struct xqent *)(x + 1);
	x->subs = (struct xsub *)(x->msgs + n_msgs);
	at = (char *)(x->subs + s->n_subs);
	owed(s, x->msgs);
	for (uint32_t k = 0; k < n_msgs; k++)
		broker_msg_ref(x->msgs[k].msg);
	memcpy(at, s->client_id, s->id_len);
	x->id = at;
	at += s->id_len;
	for (const struct broker_sub *sub = s->subs; sub != NULL; sub = sub->next_in_sess, i++) {
		memcpy(at, sub->filter, sub->filter_len);
		x->subs[i] = (struct xsub){ at, sub->filter_len, sub->qos, sub->no_local, sub->rap,
					    sub->sub_id };
		at += sub->filter_len;
	}
	return x;
}

static void session_move(struct broker *b, struct broker_session *s, uint32_t to)
{
	struct xsession *x = session_pack(s);

	if (x == NULL) {
		broker_count(b, BROKER_C_NOMEM);
	} else if (!b->xops->post(b->xctx, to, (struct broker_xmsg *)x)) {
		xsession_free(x);
		broker_count(b, BROKER_C_XLCORE_DROP);
	} else {
		broker_count(b, BROKER_C_XLCORE_SESSION_MOVED);
	}
	will_clear(s); /* its client is back (elsewhere): a delayed will is not sent */
	session_destroy(s);
}

/* Another instance accepted a CONNECT for this client id at c->at_ms. A connection here that
 * is newer than that claim (the client came back here since) is left alone. */
static void claim_input(struct broker *b, const struct xclaim *c)
{
	struct broker_session *s = session_find(b, c->id, c->id_len);
	struct broker_conn *old;

	if (s == NULL)
		return;
	old = s->conn;
	if (old != NULL) {
		if (old->opened_ms > c->at_ms)
			return;
		broker_count(b, BROKER_C_XLCORE_TAKEOVER);
		conn_kill(old, MQTT_RC_SESSION_TAKEN_OVER, BROKER_C_COUNT);
		old->s = NULL; /* the session goes offline now, not at reap */
		session_offline(s, true, b->now_ms);
		if ((s = session_find(b, c->id, c->id_len)) == NULL)
			return; /* expiry 0: gone already */
	}
	if (c->clean_start) {
		broker_count(b, BROKER_C_XLCORE_SESSION_DISCARDED);
		session_destroy(s);
	} else {
		session_move(b, s, c->from);
	}
}

/* The client's stored session from another instance joins the one it has here. */
static void session_merge(struct broker *b, const struct xsession *x)
{
	struct broker_session *s = session_find(b, x->id, x->id_len);

	if (s == NULL)
		return; /* gone meanwhile (expiry 0 and disconnected) */
	broker_count(b, BROKER_C_XLCORE_SESSION_MERGED);
	for (uint32_t i = 0; i < x->n_subs; i++) {
		const struct xsub *o = &x->subs[i];
		struct mqtt_subscription sub = { .filter = { o->filter, o->len }, .qos = o->qos,
						 .no_local = o->no_local,
						 .retain_as_published = o->rap };

		session_sub_merge(s, &sub, o->sub_id);
	}
	for (uint32_t i = 0; i < x->n_msgs; i++)
		if (!broker_msg_expired(x->msgs[i].msg, b->now_ms))
			session_deliver(s, x->msgs[i].msg, x->msgs[i].qos, x->msgs[i].retain,
					x->msgs[i].sub_id);
	session_drain(s);
}

void broker_xlcore_input(struct broker *b, struct broker_xmsg *x, uint64_t now_ms)
{
	b->now_ms = now_ms;
	if (((struct xhdr *)x)->xkind == XK_CLAIM) {
		claim_input(b, (struct xclaim *)x);
	} else if (((struct xhdr *)x)->xkind == XK_SESSION) {
		session_merge(b, (struct xsession *)x);
	} else if (((struct xhdr *)x)->xkind == XK_MEMBER) {
		struct xgroup *g = (struct xgroup *)x;

		tt_group_remote(b, g->filter, g->len, g->from, g->delta);
	} else if (((struct xhdr *)x)->xkind == XK_DELIVER) {
		struct xgroup *g = (struct xgroup *)x;

		broker_count(b, BROKER_C_XLCORE_RX);
		tt_group_deliver(b, g->filter, g->len, g->msg);
	} else {
		struct broker_msg *m = (struct broker_msg *)x;
		bool matched;

		broker_count(b, BROKER_C_XLCORE_RX);
		if (m->retain)
			retain_set(b, m);
		broker_route(b, m, &matched);
	}
	broker_xmsg_free(x);
	broker_reap(b);
}
