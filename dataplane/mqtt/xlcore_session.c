/*
 * xlcore_session.c: a client id across lcores. A CONNECT accepted on one instance is a claim
 * posted to the others (broker_xlcore_claim): they end their live connection with that client
 * id (DISCONNECT 0x8E, will) and, for a clean start, discard their stored session. For a claim
 * without clean start from an instance that had no session for the id, every other instance
 * answers, the one holding the stored session with all of it (subscriptions, inflight slots
 * with their packet ids and states, the queue, the incoming QoS 2 ids awaiting PUBREL), the
 * others with "none". The claimer holds the CONNACK until all have answered (or
 * xlcore_claim_timeout_ms passed), restores the session, then sends CONNACK with session
 * present 1 and resends what is owed (DUP).
 */
#include <stdlib.h>
#include <string.h>

#include "xlcore_int.h"
#include "mqtt_topic.h"

uint32_t
broker_xlcore_claim(struct broker *b, const char *id, size_t len, bool clean_start, uint64_t at_ms,
    struct broker_session *s)
{
	struct session_cold *k = NULL;
	struct xclaim *c;
	uint32_t n;

	if (b->xops == NULL)
		return 0;
	if (s != NULL && (k = broker_session_cold_get(s)) == NULL)
		s = NULL; /* no room to wait for answers: the claim only ends other connections */
	if ((c = malloc(sizeof(*c) + len)) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		if (s != NULL)
			broker_session_cold_put(s);
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
	n = broker_xlcore_post_all(b, (struct xhdr *)c, BROKER_C_XLCORE_CLAIM_TX, NULL);
	if (s == NULL)
		return 0;
	if (n == 0) {
		broker_session_cold_put(s);
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
broker_xlcore_claim_timeout(struct broker_session *s)
{
	broker_count(s->b, BROKER_C_XLCORE_CLAIM_TIMEOUT);
	broker_connect_claim_done(s);
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
		 n_rx = s != NULL ? s->n_rx_qos2 : 0,
		 n_up = s != NULL && s->cold != NULL ? s->cold->n_rx_up : 0;
	uint32_t n_msgs = s != NULL ? s->qlen : 0, n_subs = s != NULL ? s->n_subs : 0, i = 0;
	size_t size = sizeof(struct xsession) + id_len + (size_t)n_slots * sizeof(struct out_slot) +
	    (size_t)n_msgs * sizeof(struct xqent) + (size_t)n_subs * sizeof(struct xsub) +
	    (size_t)n_up * sizeof(struct broker_rx_up) + (size_t)n_rx * sizeof(uint16_t);
	const struct qent *q;
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
		.n_rx_up = n_up,
		.n_subs = n_subs,
		.n_msgs = n_msgs,
		.seq = seq };
	x->from = s != NULL ? s->b->xself : 0;
	x->slots = (struct out_slot *)(x + 1);
	x->msgs = (struct xqent *)(x->slots + n_slots);
	x->subs = (struct xsub *)(x->msgs + n_msgs);
	x->rx_up = (struct broker_rx_up *)(x->subs + n_subs);
	x->rx = (uint16_t *)(x->rx_up + n_up);
	at = (char *)(x->rx + n_rx);
	memcpy(at, id, id_len);
	x->id = at;
	if (s == NULL)
		return x;
	slots_in_order(s, x->slots);
	STAILQ_FOREACH (q, &s->queue, next) {
		x->msgs[i++] = (struct xqent){ q->msg, q->qos, q->retain, q->sub_id };
		broker_msg_ref(q->msg);
	}
	if (n_rx > 0) /* rx_qos2 is NULL until the first QoS 2 PUBLISH */
		memcpy(x->rx, s->rx_qos2, (size_t)n_rx * sizeof(uint16_t));
	if (n_up > 0)
		memcpy(x->rx_up, s->cold->rx_up, (size_t)n_up * sizeof(*x->rx_up));
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
	return broker_xlcore_post(b, to, (struct xhdr *)x, true, BROKER_C_COUNT) >= 0;
}

/* The session goes to the instance its client reconnected to. When it cannot be packed (out
 * of memory), it stays here (the claimer's wait times out): kept rather than lost. */
static void
session_move(struct broker *b, struct broker_session *s, const struct xclaim *c)
{
	uint64_t buckets = 0;

	for (const struct broker_sub *sub = s->subs; sub != NULL; sub = sub->next_in_sess)
		if (sub->group == NULL)
			buckets |= 1ull << broker_xlcore_bucket(sub->filter, sub->filter_len);
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
			broker_subs_group_moved(b, sub->group, c->from);
	broker_count(b, BROKER_C_XLCORE_SESSION_MOVED);
	broker_will_clear(s); /* its client is back (elsewhere): a delayed will is not sent */
	broker_session_destroy(s);
}

/* Another instance accepted a CONNECT for this client id at c->at_ms. A connection here that
 * is newer than that claim (the client came back here since) is left alone. */
void
broker_xlcore_claim_input(struct broker *b, const struct xclaim *c)
{
	struct broker_session *s = broker_session_find(b, c->id, c->id_len);
	struct broker_conn *old = s != NULL ? s->conn : NULL;

	if (old != NULL && old->opened_ms > c->at_ms) {
		s = NULL; /* stale: this lcore keeps it (and its newer claim ends the other) */
	} else if (old != NULL) {
		broker_count(b, BROKER_C_XLCORE_TAKEOVER);
		broker_conn_kill(old, MQTT_RC_SESSION_TAKEN_OVER, BROKER_C_COUNT);
		old->s = NULL; /* the session goes offline now, not at reap */
		broker_session_offline(s, true, b->now_ms);
		s = broker_session_find(b, c->id, c->id_len); /* NULL: expiry 0, gone already */
	}
	if (s != NULL && c->clean_start) {
		broker_count(b, BROKER_C_XLCORE_SESSION_DISCARDED);
		broker_session_destroy(s);
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
		struct broker_sub *new = broker_session_sub_merge(s, &sub, o->sub_id);

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
			broker_session_deliver(s, x->msgs[i].msg, x->msgs[i].qos, x->msgs[i].retain,
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

		if (!broker_session_slot_restore(s, o) && o->msg != NULL)
			broker_session_deliver(s, o->msg, o->qos, o->retain, o->sub_id);
	}
	for (uint16_t i = 0; i < x->n_rx; i++) /* more than receive_max here: not kept */
		broker_session_rx_qos2_add(s, x->rx[i]);
	for (uint16_t i = 0; i < x->n_rx_up; i++) /* their origins: released from here */
		broker_uplink_rx_add(s, x->rx_up[i].pid, &x->rx_up[i].o, x->rx_up[i].confirmed);
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
		broker_session_deliver(s, o->msg, o->qos, o->retain, o->sub_id);
	}
	merge_queue(b, s, x);
	if (fresh != NULL)
		replay(b, s, fresh, n_fresh);
	free(fresh);
	broker_session_drain(s);
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
			broker_connect_claim_done(s);
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
void
broker_xlcore_session_answer(struct broker *b, const struct xsession *x)
{
	struct broker_session *s = broker_session_find(b, x->id, x->id_len);

	if (x->found && b->peers != NULL && x->from < b->xn) {
		b->peers[x->from].got_from++;
		b->interest_dirty = true; /* the sender waits for this count: announce it */
	}
	session_answer_apply(b, s, x);
	if (x->found && (s = broker_session_find(b, x->id, x->id_len)) != NULL)
		broker_persist_session_image(
		    s); /* its subscriptions and messages, journaled here */
	if (b->interest_dirty)
		broker_xlcore_tick(b);
}
