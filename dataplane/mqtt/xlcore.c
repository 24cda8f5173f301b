/*
 * xlcore.c: publishing, and the cross-lcore part of the broker. Two kinds of message cross
 * between the instances of a group, both immutable and shared by reference (the reference count
 * is the only thing two lcores touch, atomically):
 * - a PUBLISH: stored (retained) and routed on the instance that received it, then posted to
 *   every other instance, which does the same for its own sessions;
 * - a client id claim: a CONNECT was accepted on one instance; the others end their live
 *   connection with that client id (DISCONNECT 0x8E, will) and, for a clean start, discard
 *   their stored session.
 * Moving a stored session's state to the instance where its client reconnects, and shared
 * subscription balancing across instances, are not done yet (docs/broker.md).
 */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

enum { XK_PUBLISH = 0, XK_CLAIM = 1 };

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
	uint64_t at_ms;
	char id[];
};

static void xclaim_unref(struct xclaim *c)
{
	if (__atomic_sub_fetch(&c->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
		free(c);
}

void broker_xmsg_free(struct broker_xmsg *x)
{
	if (((struct xhdr *)x)->xkind == XK_CLAIM)
		xclaim_unref((struct xclaim *)x);
	else
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
			      .id_len = (uint16_t)len, .at_ms = at_ms };
	memcpy(c->id, id, len);
	post_all(b, (struct xhdr *)c, BROKER_C_XLCORE_CLAIM_TX);
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
	}
}

void broker_xlcore_input(struct broker *b, struct broker_xmsg *x, uint64_t now_ms)
{
	b->now_ms = now_ms;
	if (((struct xhdr *)x)->xkind == XK_CLAIM) {
		claim_input(b, (struct xclaim *)x);
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
