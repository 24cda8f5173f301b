/*
 * uplink.c: store and forward in the broker: a client's PUBLISH that the uplink rules send up
 * is handed to the uplink channel (broker_uplink_ops: the dataplane's lcore client of
 * lib/dpchan, a fake in the unit tests), and under a durable rule its PUBACK (QoS 1) or PUBREC
 * (QoS 2) waits until the agent says the message is durable (broker_uplink_durable). Local
 * subscribers get it at once, as any other. While the channel cannot take one more, the
 * publisher's input is held (HOLD_UPLINK): a message is never acknowledged and then dropped.
 * docs/broker.md, "Store and forward".
 *
 * What waits is a ring of entries indexed by ref (refs increase by one per durable message on
 * this instance, so ref - head_ref is the position): the connection to acknowledge, the packet
 * id, and for QoS 2 the session whose table of ids awaiting PUBREL holds it. A connection that
 * goes away leaves its entries without a connection (nothing is sent for them: the client sends
 * the message again); a session that goes away leaves them without a session.
 *
 * QoS 2 across a restart: when the uplink names origins (ops->origin), a QoS 2 id is journaled
 * with the origin of its message (boot id, lcore, ref) in the same call that submits it, so
 * before the record leaves on the channel. After a restart, a resend of that id whose durability
 * was never confirmed goes up again under that origin (broker_uplink_qos2_resend): the agent
 * answers durable without storing it a second time if it has it, stores it if it never got it.
 * The sensor's PUBREL releases the origin (ops->release). That journal record is on disk before
 * the PUBREC goes (UE_SYNC: the agent's durable answer came, the broker's fdatasync of the write
 * that holds the record has not ended yet; broker_persist_sync_kick asks for it at once and
 * broker_uplink_sync_poll sends what it let go), so that a power cut after the PUBREC cannot
 * have the sensor's resend taken as a new message and stored twice. The same wait holds the
 * PUBCOMP until the id's release is on disk, and the PUBREC of a resend answered from the table
 * until the origin is (broker_uplink_defer_ack); while the ring is full, such a PUBREL or resend
 * waits unread (uplink_sync_hold). docs/broker.md.
 */
#include <errno.h>
#include <stdlib.h>

#include "broker_int.h"

enum {
	UE_FREE = 0,
	UE_WAIT, /* submitted, durability not known yet */
	UE_OWED, /* durable, its ack did not fit the send buffer yet */
	UE_SYNC, /* durable, its ack waits for a journal write on disk (jseq: origin or release) */
};

struct uplink_ent {
	struct broker_conn *c;    /* NULL: the connection went away */
	struct broker_session *s; /* QoS 2: whose rx_qos2 holds pid; NULL otherwise or gone */
	uint64_t jseq;            /* QoS 2: the journal write its ack waits for (0: none) */
	uint16_t pid;
	uint8_t qos;
	uint8_t reason; /* of the ack (0x10 when nothing matched, 5.0) */
	uint8_t state;
	uint8_t ack; /* MQTT_PUBACK, MQTT_PUBREC, or MQTT_PUBCOMP (broker_uplink_defer_ack) */
};

struct broker_uplink {
	const struct broker_uplink_ops *ops;
	void *uctx;
	struct uplink_ent *ring;
	uint32_t mask;
	uint64_t head_ref, next_ref; /* oldest entry; the next ref given */
	uint32_t n_qos2;             /* entries holding a session */
	uint32_t n_sync;             /* entries in UE_SYNC */
	uint32_t n_jwait;     /* entries in UE_WAIT with a journal write to sync (jseq): counted in
			   * wait_for, out where an entry leaves UE_WAIT (ack_or_owe, fail_one) */
	uint64_t seen_synced; /* the journal's synced write at the last look */
	bool full;            /* a publisher was held for want of an entry */
};

/* Bytes a deferred ack needs (3.1.1: 4; 5.0 with a reason: 5; with room to spare). */
#define UPLINK_ACK_ROOM 8u

int
broker_uplink_attach(
    struct broker *b, const struct broker_uplink_ops *ops, void *uctx, uint32_t max_pending)
{
	struct broker_uplink *u = calloc(1, sizeof(*u));
	uint32_t cap = 16;

	while (cap < max_pending && cap < (1u << 24))
		cap <<= 1;
	if (u == NULL || (u->ring = calloc(cap, sizeof(*u->ring))) == NULL) {
		free(u);
		return -ENOMEM;
	}
	u->ops = ops;
	u->uctx = uctx;
	u->mask = cap - 1;
	u->head_ref = u->next_ref = 1;
	broker_uplink_detach(b);
	b->up = u;
	return 0;
}

void
broker_uplink_free(struct broker *b)
{
	if (b->up == NULL)
		return;
	free(b->up->ring);
	free(b->up);
	b->up = NULL;
}

static inline struct uplink_ent *
ent(struct broker_uplink *u, uint64_t ref)
{
	return &u->ring[ref & u->mask];
}

static bool
ring_full(const struct broker_uplink *u)
{
	return u->next_ref - u->head_ref > u->mask;
}

/* The topic a PUBLISH names, through its 5.0 alias (without changing it: broker_handle_publish
 * does); false when it cannot be told (broker_handle_publish refuses it). */
static bool
peek_topic(const struct broker_conn *c, const struct mqtt_publish *p, struct mqtt_str *t)
{
	uint32_t a;

	*t = p->topic;
	if (p->topic.len > 0 || c->version != MQTT_V5 ||
	    !mqtt_props_has(&p->props, MQTT_PROP_TOPIC_ALIAS))
		return p->topic.len > 0;
	a = p->props.v[MQTT_PROP_TOPIC_ALIAS].u;
	if (a == 0 || a > c->b->cfg.topic_alias_max || c->aliases == NULL)
		return false;
	*t = c->aliases[a - 1];
	return t->len > 0;
}

/* pkt's answer would wait in the ring for the journal's fdatasync (broker_uplink_defer_ack):
 * the PUBREL of an id that went up (its PUBCOMP waits for the release on disk), or the resend
 * of one whose PUBREC was sent (answered from the table: it waits for the origin on disk,
 * which a connection lost while its PUBREC waited left unsynced). With the ring full the
 * packet waits unread, as a publisher held for want of an entry does: answered at once, a
 * power cut after the answer would lose the id's state. */
static bool
uplink_sync_hold(const struct broker_conn *c, const struct mqtt_packet *pkt)
{
	const struct broker_rx_up *e;
	uint64_t seq;
	uint16_t pid;

	if (c->state != CONN_ACTIVE || c->s == NULL)
		return false;
	if (pkt->type == MQTT_PUBREL)
		pid = pkt->ack.packet_id;
	else if (pkt->type == MQTT_PUBLISH && pkt->publish.qos == 2)
		pid = pkt->publish.packet_id;
	else
		return false;
	if ((e = broker_uplink_rx_find(c->s, pid)) == NULL)
		return false;
	if (pkt->type == MQTT_PUBLISH && !e->confirmed)
		return false; /* goes up again under its origin: admitted below, or held there */
	if ((seq = broker_persist_session_seq(c->s)) == 0)
		return false; /* not journaled: no sync to wait for */
	return pkt->type == MQTT_PUBREL || !broker_persist_synced(c->b, seq);
}

/* c's input waits (the packet left unread) until an entry of u is free or the channel has
 * room again (pop_front, broker_uplink_ready). */
static bool
hold_for_uplink(struct broker_conn *c, struct broker_uplink *u)
{
	u->full |= ring_full(u);
	broker_conn_hold(c, HOLD_UPLINK);
	return false;
}

bool
broker_uplink_admit(struct broker_conn *c, const struct mqtt_packet *pkt)
{
	struct broker_uplink *u = c->b->up;
	const struct mqtt_publish *p = &pkt->publish;
	size_t extra = 0;
	struct mqtt_str t;
	int rc;

	if (u != NULL && ring_full(u) && uplink_sync_hold(c, pkt))
		return hold_for_uplink(c, u);
	if (u == NULL || pkt->type != MQTT_PUBLISH || p->qos == 0 || c->state != CONN_ACTIVE ||
	    !peek_topic(c, p, &t) || topic_is_sys(t) ||
	    u->ops->wants(u->uctx, t.s, t.len, p->qos) != BROKER_UPLINK_DURABLE)
		return true;
	if (p->qos == 2 && c->s != NULL) { /* a resend awaiting PUBREL is not submitted again, */
		for (uint16_t i = 0; i < c->s->n_rx_qos2; i++)
			if (c->s->rx_qos2[i] == p->packet_id) {
				/* but for one that went up unconfirmed before a restart */
				const struct broker_rx_up *e =
				    broker_uplink_rx_find(c->s, p->packet_id);

				if (e == NULL || e->confirmed)
					return true;
				extra = BROKER_UPLINK_ORIGIN_LEN;
				break;
			}
	}
	rc = ring_full(u) ? -ENOBUFS : u->ops->room(u->uctx, t.len, p->payload_at.len + extra);
	if (rc == 0 || rc == -EMSGSIZE) /* too large: refused in broker_uplink_publish */
		return true;
	return hold_for_uplink(c, u);
}

static void wait_for(struct broker_conn *c, struct broker_uplink *u, uint64_t ref, uint8_t qos,
    uint16_t pid, uint8_t reason, uint64_t jseq);

/* Submit m under ref (as: the origin of its first copy, or NULL); on refusal (admitted, then
 * refused: too large, or the channel went away) the publisher is closed. 0 or the error. */
static int
submit_or_kill(struct broker_conn *c, struct broker_uplink *u, uint64_t ref,
    const struct broker_uplink_origin *as, const struct broker_msg *m)
{
	int rc = ring_full(u) ? -ENOBUFS
			      : u->ops->submit(u->uctx, ref, as, m->qos, m->retain, m->topic.s,
				    m->topic.len, m->payload, m->payload_len);

	if (rc != 0)
		broker_conn_kill(c,
		    rc == -EMSGSIZE ? MQTT_RC_PACKET_TOO_LARGE : MQTT_RC_UNSPECIFIED_ERROR,
		    rc == -EMSGSIZE ? BROKER_C_UPLINK_TOO_LARGE : BROKER_C_UPLINK_FAILED);
	return rc;
}

enum uplink_verdict
broker_uplink_publish(
    struct broker_conn *c, const struct broker_msg *m, uint16_t pid, uint8_t reason)
{
	struct broker *b = c->b;
	struct broker_uplink *u = b->up;
	enum broker_uplink_class cls;
	uint64_t ref, jseq = 0;
	int rc;

	if (u == NULL)
		return UPLINK_ACK_NOW;
	cls = u->ops->wants(u->uctx, m->topic.s, m->topic.len, m->qos);
	if (cls == BROKER_UPLINK_NONE)
		return UPLINK_ACK_NOW;
	if (cls == BROKER_UPLINK_BEST_EFFORT || m->qos == 0) {
		rc = u->ops->submit(u->uctx, 0, NULL, m->qos, m->retain, m->topic.s, m->topic.len,
		    m->payload, m->payload_len);
		broker_count(b, rc == 0 ? BROKER_C_UPLINK_TX : BROKER_C_UPLINK_BEST_EFFORT_DROP);
		return UPLINK_ACK_NOW;
	}
	ref = u->next_ref;
	if (submit_or_kill(c, u, ref, NULL, m) != 0)
		return UPLINK_KILLED;
	if (m->qos == 2 && c->s != NULL && u->ops->origin != NULL) {
		/* journaled in this call, so before the record leaves on the channel: a restart
		 * knows it went up, and under which origin (broker_uplink_qos2_resend); on disk
		 * before the PUBREC (UE_SYNC) */
		struct broker_rx_up e = { .pid = pid };

		u->ops->origin(u->uctx, ref, &e.o);
		if (broker_uplink_rx_add(c->s, pid, &e.o, false))
			jseq = broker_persist_rx_qos2_up(c->s, &e);
	}
	wait_for(c, u, ref, m->qos, pid, reason, jseq);
	return UPLINK_DEFERRED;
}

/* The ring entry that waits for ref's answer. */
static void
wait_for(struct broker_conn *c, struct broker_uplink *u, uint64_t ref, uint8_t qos, uint16_t pid,
    uint8_t reason, uint64_t jseq)
{
	*ent(u, ref) = (struct uplink_ent){ .c = c,
		.s = qos == 2 ? c->s : NULL,
		.jseq = jseq,
		.pid = pid,
		.ack = qos == 1 ? MQTT_PUBACK : MQTT_PUBREC,
		.qos = qos,
		.reason = reason,
		.state = UE_WAIT };
	u->n_qos2 += qos == 2 && c->s != NULL;
	if (qos == 2 && c->s != NULL)
		c->s->n_up++;
	u->n_jwait += jseq != 0; /* its sync starts now, beside the agent's commit (sync_poll) */
	u->next_ref++;
	c->n_uplink++;
	broker_count(c->b, BROKER_C_UPLINK_TX);
	broker_count(c->b, BROKER_C_UPLINK_DEFERRED);
}

enum uplink_verdict
broker_uplink_qos2_resend(struct broker_conn *c, const struct broker_msg *m, uint16_t pid)
{
	struct broker_uplink *u = c->b->up;
	struct broker_rx_up *e;
	uint64_t ref;

	if (u == NULL || c->s == NULL || (e = broker_uplink_rx_find(c->s, pid)) == NULL ||
	    e->confirmed)
		return UPLINK_ACK_NOW;
	ref = u->next_ref;
	if (submit_or_kill(c, u, ref, &e->o, m) != 0)
		return UPLINK_KILLED;
	broker_count(c->b, BROKER_C_UPLINK_QOS2_RESENT);
	wait_for(c, u, ref, 2, pid, 0, 0); /* its origin was read from the journal: on disk */
	return UPLINK_DEFERRED;
}

/* ---- the origins of QoS 2 ids awaiting PUBREL (in the session's cold part) ---- */

struct broker_rx_up *
broker_uplink_rx_find(const struct broker_session *s, uint16_t pid)
{
	const struct session_cold *k = s->cold;

	for (uint16_t i = 0; k != NULL && i < k->n_rx_up; i++)
		if (k->rx_up[i].pid == pid)
			return &k->rx_up[i];
	return NULL;
}

bool
broker_uplink_rx_add(
    struct broker_session *s, uint16_t pid, const struct broker_uplink_origin *o, bool confirmed)
{
	struct broker_rx_up *e = broker_uplink_rx_find(s, pid);
	struct session_cold *k;

	if (e == NULL) {
		if ((k = broker_session_cold_get(s)) == NULL)
			return false; /* counted NOMEM: a resend after a restart is taken as new */
		if (k->n_rx_up == k->rx_up_cap) {
			uint32_t cap = k->rx_up_cap ? 2u * k->rx_up_cap : 4u;
			struct broker_rx_up *t;

			if (cap > UINT16_MAX || (t = realloc(k->rx_up, cap * sizeof(*t))) == NULL) {
				broker_count(s->b, BROKER_C_NOMEM);
				broker_session_cold_put(s);
				return false;
			}
			k->rx_up = t;
			k->rx_up_cap = (uint16_t)cap;
		}
		e = &k->rx_up[k->n_rx_up++];
	}
	*e = (struct broker_rx_up){ *o, pid, confirmed };
	return true;
}

void
broker_uplink_rx_done(struct broker_session *s, uint16_t pid, bool release)
{
	struct broker_rx_up *e = broker_uplink_rx_find(s, pid);
	struct broker_uplink *u = s->b->up;
	struct session_cold *k = s->cold;

	if (e == NULL)
		return;
	if (release && u != NULL && u->ops->release != NULL) {
		u->ops->release(u->uctx, &e->o);
		broker_count(s->b, BROKER_C_UPLINK_QOS2_RELEASED);
	}
	*e = k->rx_up[--k->n_rx_up];
	if (k->n_rx_up == 0) {
		free(k->rx_up);
		k->rx_up = NULL;
		k->rx_up_cap = 0;
		broker_session_cold_put(s);
	}
}

void
broker_uplink_session_end(struct broker_session *s)
{
	while (s->cold != NULL && s->cold->n_rx_up > 0)
		broker_uplink_rx_done(s, s->cold->rx_up[0].pid, true);
}

uint32_t
broker_uplink_held(
    struct broker *b, void (*fn)(void *arg, const struct broker_uplink_origin *o), void *arg)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < b->sess_buckets; i++)
		for (const struct broker_session *s = b->sess_hash[i]; s != NULL; s = s->hnext)
			for (uint16_t j = 0; s->cold != NULL && j < s->cold->n_rx_up; j++, n++)
				fn(arg, &s->cold->rx_up[j].o);
	return n;
}

bool
broker_uplink_qos2_pending(struct broker_conn *c, uint16_t pid)
{
	struct broker_uplink *u = c->b->up;
	uint32_t left;

	/* a client's resend (DUP) costs a look at its own session's entries only: none, most often,
	 * and at most those, newest first, not the whole ring's (every other publisher's) */
	if (u == NULL || c->s == NULL || (left = c->s->n_up) == 0)
		return false;
	for (uint64_t r = u->next_ref; left > 0 && r-- > u->head_ref;) {
		struct uplink_ent *e = ent(u, r);

		if (e->s != c->s)
			continue;
		left--;
		if (e->state == UE_WAIT && e->pid == pid) {
			if (e->c != c) { /* resent on a new connection: acknowledged there */
				if (e->c != NULL)
					e->c->n_uplink--;
				e->c = c;
				c->n_uplink++;
			}
			broker_count(c->b, BROKER_C_UPLINK_QOS2_WAIT);
			return true;
		}
	}
	return false;
}

bool
broker_uplink_qos1_pending(struct broker_conn *c, uint16_t pid)
{
	struct broker_uplink *u = c->b->up;
	uint32_t left = c->n_uplink;

	if (u == NULL)
		return false;
	for (uint64_t r = u->next_ref; left > 0 && r-- > u->head_ref;) {
		const struct uplink_ent *e = ent(u, r);

		if (e->c != c)
			continue;
		left--;
		if (e->qos == 1 && e->pid == pid)
			return true;
	}
	return false;
}

static void
ent_free(struct broker_uplink *u, struct uplink_ent *e)
{
	if (e->c != NULL)
		e->c->n_uplink--;
	u->n_qos2 -= e->s != NULL;
	if (e->s != NULL)
		e->s->n_up--;
	u->n_sync -= e->state == UE_SYNC;
	*e = (struct uplink_ent){ 0 };
}

/* Send e's ack if it fits, keeping this connection's acks in order; else it is owed. */
static void
ack_or_owe(struct broker *b, struct broker_uplink *u, struct uplink_ent *e)
{
	struct broker_conn *c = e->c;

	u->n_jwait -= e->jseq != 0; /* leaves UE_WAIT (broker_uplink_durable takes no other) */
	if (e->s != NULL) {         /* durable now: a restart may answer its resend with PUBREC */
		struct broker_rx_up *o = broker_uplink_rx_find(e->s, e->pid);

		if (o != NULL)
			o->confirmed = true;
		broker_persist_rx_qos2(e->s, e->pid, true);
	}
	if (c == NULL || !broker_conn_alive(c)) {
		broker_count(b, BROKER_C_UPLINK_ORPHAN);
		ent_free(u, e);
		return;
	}
	if (e->jseq != 0 && !broker_persist_synced(b, e->jseq)) {
		/* the PUBREC, and the acks of this connection after it, wait for the disk */
		c->n_owed++;
		u->n_sync++;
		e->state = UE_SYNC;
		broker_count(b, BROKER_C_UPLINK_SYNC_WAIT);
		broker_persist_sync_kick(b);
		return;
	}
	if (c->n_owed == 0 && broker_conn_send_space(c) >= UPLINK_ACK_ROOM) {
		broker_conn_send_ack(c, e->ack, e->pid, e->reason);
		broker_count(c->b, BROKER_C_UPLINK_ACKED);
		ent_free(u, e);
		return;
	}
	if (e->state != UE_OWED)
		c->n_owed++;
	if (c->owed_since_ms == 0)
		c->owed_since_ms = b->now_ms; /* broker_uplink_owed_stalled */
	e->state = UE_OWED;
}

/* The agent could not make it durable: not acknowledged, and the publisher is closed so that
 * it sends the message again (docs/broker.md); a QoS 2 id leaves the table of ids awaiting
 * PUBREL, so that the resend is taken as new. */
static void
fail_one(struct broker *b, struct broker_uplink *u, struct uplink_ent *e)
{
	struct broker_session *s = e->s;

	u->n_jwait -= e->jseq != 0; /* leaves UE_WAIT, freed below */
	broker_count(b, BROKER_C_UPLINK_FAILED);
	for (uint16_t i = 0; s != NULL && i < s->n_rx_qos2; i++)
		if (s->rx_qos2[i] == e->pid) {
			s->rx_qos2[i] = s->rx_qos2[--s->n_rx_qos2];
			broker_persist_rx_qos2(s, e->pid, false);
			broker_uplink_rx_done(s, e->pid, false); /* not durable: nothing held */
			break;
		}
	if (e->c != NULL && broker_conn_alive(e->c))
		broker_conn_kill(e->c, MQTT_RC_UNSPECIFIED_ERROR, BROKER_C_COUNT);
	ent_free(u, e);
}

/* The uplink goes away (its service stops) while acks wait: no answer will come for them, and
 * the connections must not point into the freed ring. What waits for durability is failed as
 * an answer < 0 would (not acknowledged, the publisher closed and sending again, a QoS 2 id
 * released); a publisher owed a durable message's ack is closed too (its resend is answered
 * without an uplink; a QoS 2 id stays, its PUBREC comes from the table); held publishers go
 * on, acknowledged at once from now on. docs/broker.md, "Store and forward". */
void
broker_uplink_detach(struct broker *b)
{
	struct broker_uplink *u = b->up;

	if (u == NULL)
		return;
	for (uint64_t r = u->head_ref; r < u->next_ref; r++) {
		struct uplink_ent *e = ent(u, r);

		if (e->state == UE_WAIT) {
			fail_one(b, u, e);
		} else if (e->state == UE_OWED || e->state == UE_SYNC) {
			e->c->n_owed--; /* an owed entry has its connection: conn_gone frees it */
			broker_conn_kill(e->c, MQTT_RC_UNSPECIFIED_ERROR, BROKER_C_COUNT);
			ent_free(u, e);
		}
	}
	broker_uplink_free(b);
	broker_release_all(b, HOLD_UPLINK, NULL);
	broker_reap(b);
}

static void
pop_front(struct broker *b, struct broker_uplink *u)
{
	while (u->head_ref < u->next_ref && ent(u, u->head_ref)->state == UE_FREE)
		u->head_ref++;
	if (u->full && !ring_full(u)) {
		u->full = false;
		broker_release_all(b, HOLD_UPLINK, NULL);
	}
}

void
broker_uplink_durable(struct broker *b, uint64_t first, uint64_t last, int status, uint64_t now_ms)
{
	struct broker_uplink *u = b->up;

	if (u == NULL)
		return;
	b->now_ms = now_ms;
	if (first < u->head_ref)
		first = u->head_ref;
	if (last >= u->next_ref)
		last = u->next_ref - 1;
	for (uint64_t r = first; r <= last && r >= first; r++) {
		struct uplink_ent *e = ent(u, r);

		if (e->state != UE_WAIT)
			continue; /* answered before (a resend's answer), or owed already */
		if (status == 0)
			ack_or_owe(b, u, e);
		else
			fail_one(b, u, e);
	}
	pop_front(b, u);
	broker_reap(b);
}

void
broker_uplink_ready(struct broker *b, uint64_t now_ms)
{
	b->now_ms = now_ms;
	if (b->up != NULL)
		broker_release_all(b, HOLD_UPLINK, NULL);
	broker_reap(b);
}

void
broker_uplink_flush_owed(struct broker_conn *c)
{
	struct broker_uplink *u = c->b->up;

	for (uint64_t r = u->head_ref; r < u->next_ref && c->n_owed > 0; r++) {
		struct uplink_ent *e = ent(u, r);

		if (e->c != c || (e->state != UE_OWED && e->state != UE_SYNC))
			continue;
		if (e->state == UE_SYNC || broker_conn_send_space(c) < UPLINK_ACK_ROOM)
			break; /* the rest waits; what went out frees its slots below */
		broker_conn_send_ack(c, e->ack, e->pid, e->reason);
		broker_count(c->b, BROKER_C_UPLINK_ACKED);
		c->n_owed--;
		c->owed_since_ms = c->b->now_ms; /* progress: the clock starts again */
		ent_free(u, e);
	}
	if (c->n_owed == 0)
		c->owed_since_ms = 0;
	else if (c->owed_since_ms == 0) /* owed since their journal sync: from now */
		c->owed_since_ms = c->b->now_ms;
	pop_front(c->b, u);
}

/*
 * c is owed acks that have found no room in its send buffer for stall_timeout: a client that
 * stopped reading. Its entries cannot leave the ring, whose head they hold, and behind them
 * the ring fills with every other publisher's: at max_pending each durable publisher on the
 * lcore is held, for as long as c lives (with keepalive 0, and its TCP answering zero-window
 * probes, for good). The caller closes it; its messages are durable already and its resends
 * are answered as any (conn_gone frees the entries).
 */
bool
broker_uplink_owed_stalled(struct broker_conn *c, uint64_t now_ms)
{
	return c->n_owed > 0 && c->owed_since_ms != 0 &&
	    now_ms - c->owed_since_ms >= c->b->cfg.stall_timeout_ms &&
	    broker_conn_send_space(c) < UPLINK_ACK_ROOM;
}

bool
broker_uplink_defer_ack(struct broker_conn *c, uint8_t ack, uint16_t pid, uint64_t jseq)
{
	struct broker_uplink *u = c->b->up;

	/* a full ring: broker_uplink_admit held the packet that asks for this (uplink_sync_hold) */
	if (u == NULL || jseq == 0 || broker_persist_synced(c->b, jseq) || ring_full(u))
		return false;
	*ent(u, u->next_ref++) =
	    (struct uplink_ent){ .c = c, .jseq = jseq, .pid = pid, .ack = ack, .state = UE_SYNC };
	c->n_uplink++;
	c->n_owed++;
	u->n_sync++;
	broker_count(c->b, BROKER_C_UPLINK_SYNC_WAIT);
	return true; /* what it waits for is written at the end of this call: sync_poll asks */
}

void
broker_uplink_sync_poll(struct broker *b, uint64_t now_ms)
{
	struct broker_uplink *u = b->up;
	uint64_t synced;

	if (u == NULL || (u->n_sync == 0 && u->n_jwait == 0))
		return;
	/* the records of QoS 2 origins written since the last sync: synced now, while the agent
	 * commits their messages (or asked again if the syncer was busy) */
	broker_persist_sync_kick(b);
	if (u->n_sync == 0)
		return;
	if ((synced = broker_persist_synced_seq(b)) == u->seen_synced &&
	    !broker_persist_synced(b, UINT64_MAX))
		return;
	u->seen_synced = synced;
	b->now_ms = now_ms;
	for (uint64_t r = u->head_ref; r < u->next_ref && u->n_sync > 0; r++) {
		struct uplink_ent *e = ent(u, r);

		if (e->state != UE_SYNC)
			continue;
		if (!broker_persist_synced(b, e->jseq))
			break;      /* the journal writes of later entries are later */
		e->state = UE_OWED; /* still counted in its connection's n_owed */
		u->n_sync--;
		broker_uplink_flush_owed(e->c);
	}
	pop_front(b, u);
	broker_reap(b);
}

void
broker_uplink_conn_gone(struct broker_conn *c)
{
	struct broker_uplink *u = c->b->up;

	for (uint64_t r = u->head_ref; r < u->next_ref && c->n_uplink > 0; r++) {
		struct uplink_ent *e = ent(u, r);

		if (e->c != c)
			continue;
		c->n_uplink--;
		e->c = NULL;
		if (e->state == UE_OWED || e->state == UE_SYNC) /* durable: nothing more to do */
			ent_free(u, e);
	}
	c->n_owed = 0;
	pop_front(c->b, u);
}

void
broker_uplink_session_gone(struct broker_session *s)
{
	struct broker_uplink *u = s->b->up;

	for (uint64_t r = u->head_ref; r < u->next_ref && u->n_qos2 > 0; r++) {
		struct uplink_ent *e = ent(u, r);

		if (e->s == s) {
			e->s = NULL;
			s->n_up--;
			u->n_qos2--;
		}
	}
}

uint32_t
broker_uplink_pending(const struct broker *b)
{
	return b->up != NULL ? (uint32_t)(b->up->next_ref - b->up->head_ref) : 0;
}
