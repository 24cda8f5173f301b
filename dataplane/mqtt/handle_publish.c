/*
 * handle_publish.c: PUBLISH from a client (topic alias, QoS 0/1/2 with PUBACK/PUBREC, QoS 2
 * duplicate suppression by packet id until PUBREL, our Receive Maximum, retain), the acks of
 * both directions (PUBACK/PUBREC/PUBREL/PUBCOMP), and routing a message to the matching
 * subscriptions at min(published QoS, granted QoS) with the 5.0 subscription options.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

struct route_ctx {
	struct broker_msg *m;
	bool matched;
	uint32_t n; /* ordinary matches kept in b->route_subs */
	bool nomem;
	bool twice; /* a session matched through two subscriptions or more */
};

void
broker_deliver_sub(struct broker_sub *sub, struct broker_msg *m)
{
	if (sub->no_local && sub->s->id == m->origin)
		return;
	broker_session_deliver(
	    sub->s, m, m->qos < sub->qos ? m->qos : sub->qos, sub->rap && m->retain, sub->sub_id);
}

/* Shared subscriptions are deliveries of their own; ordinary ones are kept to be grouped by
 * session (broker_route). */
static void
route_one(struct broker_sub *sub, void *arg)
{
	struct route_ctx *r = arg;
	struct broker *b = sub->s->b;

	if (sub->no_local && sub->s->id == r->m->origin)
		return;
	r->matched = true;
	if (sub->group != NULL || r->nomem) {
		broker_deliver_sub(sub, r->m);
		return;
	}
	r->twice |= sub->s->route_gen == b->route_gen;
	sub->s->route_gen = b->route_gen;
	if (r->n == b->route_cap) {
		uint32_t cap = b->route_cap ? b->route_cap * 2 : 64;
		struct broker_sub **v = realloc(b->route_subs, cap * sizeof(*v));

		if (v == NULL) { /* deliver what is kept one by one, and the rest as they come */
			broker_count(b, BROKER_C_NOMEM);
			for (uint32_t i = 0; i < r->n; i++)
				broker_deliver_sub(b->route_subs[i], r->m);
			r->n = 0;
			r->nomem = true;
			broker_deliver_sub(sub, r->m);
			return;
		}
		b->route_subs = v;
		b->route_cap = cap;
	}
	b->route_subs[r->n++] = sub;
}

static int
by_session(const void *a, const void *b)
{
	const struct broker_sub *x = *(struct broker_sub *const *)a,
				*y = *(struct broker_sub *const *)b;

	return x->s->id < y->s->id ? -1 : x->s->id > y->s->id;
}

/* One copy per session, however many of its subscriptions match, at the highest of their
 * QoS ([MQTT-3.3.5-1] in 3.1.1, 5.0 3.3.4), with the identifiers of all of them
 * [MQTT-3.3.4-4]; retained as published when one of them says so. */
static void
deliver_grouped(struct broker *b, struct broker_msg *m, struct broker_sub **v, uint32_t n)
{
	uint32_t ids[32];
	uint16_t n_ids = 0;
	uint8_t qos = 0;
	bool rap = false;

	if (n == 1) {
		broker_deliver_sub(v[0], m);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint8_t q = m->qos < v[i]->qos ? m->qos : v[i]->qos;

		qos = q > qos ? q : qos;
		rap |= v[i]->rap;
		if (v[i]->sub_id != 0 && n_ids < 32)
			ids[n_ids++] = v[i]->sub_id;
	}
	if (n_ids <= 1) {
		broker_session_deliver(v[0]->s, m, qos, rap && m->retain, n_ids ? ids[0] : 0);
		return;
	}
	struct broker_msg *c = broker_msg_with_sub_ids(b, m, ids, n_ids);

	if (c == NULL) { /* a copy per subscription, each with its own identifier (3.3.4-5) */
		for (uint32_t i = 0; i < n; i++)
			broker_deliver_sub(v[i], m);
		return;
	}
	broker_session_deliver(v[0]->s, c, qos, rap && m->retain, 0);
	broker_msg_unref(c);
}

void
broker_route(struct broker *b, struct broker_msg *m, bool *matched)
{
	struct route_ctx r = { .m = m };

	if (++b->route_gen == 0) /* wrapped: a session may hold any value, start past them */
		b->route_gen = 1;
	broker_subs_match(b, m, route_one, &r);
	if (!r.twice) { /* the usual case: one subscription per session, nothing to group */
		for (uint32_t i = 0; i < r.n; i++)
			broker_deliver_sub(b->route_subs[i], m);
		*matched = r.matched;
		return;
	}
	qsort(b->route_subs, r.n, sizeof(*b->route_subs), by_session);
	for (uint32_t i = 0, j; i < r.n; i = j) {
		for (j = i + 1; j < r.n && b->route_subs[j]->s == b->route_subs[i]->s; j++)
			;
		deliver_grouped(b, m, b->route_subs + i, j - i);
	}
	*matched = r.matched;
}

/* Inbound topic alias (5.0): set it with a topic, or use it with an empty one. */
static bool
resolve_alias(struct broker_conn *c, const struct mqtt_publish *p, struct mqtt_str *topic)
{
	uint16_t max = c->b->cfg.topic_alias_max;
	uint32_t a;

	*topic = p->topic;
	if (c->version != MQTT_V5 || !mqtt_props_has(&p->props, MQTT_PROP_TOPIC_ALIAS))
		return true;
	a = p->props.v[MQTT_PROP_TOPIC_ALIAS].u;
	if (a == 0 || a > max) {
		broker_conn_kill(c, MQTT_RC_TOPIC_ALIAS_INVALID, BROKER_C_BAD_TOPIC_ALIAS);
		return false;
	}
	if (broker_alias_table(c) == NULL) {
		broker_conn_kill(
		    c, MQTT_RC_IMPLEMENTATION_SPECIFIC, BROKER_C_COUNT); /* counted: NOMEM */
		return false;
	}
	if (p->topic.len == 0) {
		*topic = c->aliases[a - 1];
		if (topic->len == 0) {
			broker_conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_TOPIC_ALIAS);
			return false;
		}
		return true;
	}
	char *copy = malloc(p->topic.len);

	if (copy == NULL) {
		broker_conn_kill(c, MQTT_RC_IMPLEMENTATION_SPECIFIC, BROKER_C_NOMEM);
		return false;
	}
	memcpy(copy, p->topic.s, p->topic.len);
	free((void *)c->aliases[a - 1].s);
	c->aliases[a - 1] = (struct mqtt_str){ copy, p->topic.len };
	return true;
}

static bool
rx_qos2_has(const struct broker_session *s, uint16_t pid, uint16_t *at)
{
	for (uint16_t i = 0; i < s->n_rx_qos2; i++)
		if (s->rx_qos2[i] == pid) {
			*at = i;
			return true;
		}
	return false;
}

/* The PUBLISH becomes a message, retained and routed, then handed to the uplink when its
 * rules say so (*up: whether its ack waits for durability). The reason for its
 * acknowledgement: 0, 0x10 when nothing matched, 0x97 when it could not be stored (not a
 * success: counted). */
/* The PUBLISH as a message (its payload gathered from the segments); NULL when out of memory
 * (counted). */
static struct broker_msg *
publish_msg(struct broker_conn *c, const struct mqtt_publish *p, struct mqtt_str topic,
    const struct mqtt_iov *segs, size_t n)
{
	struct mqtt_iov slices[16], *pl = slices;
	struct broker *b = c->b;
	struct broker_msg *m = NULL;
	size_t ns = mqtt_span_slices(segs, n, &p->payload_at, slices, 16);

	if (ns > 16) { /* a payload over many small segments */
		if ((pl = malloc(ns * sizeof(*pl))) != NULL)
			mqtt_span_slices(segs, n, &p->payload_at, pl, ns);
	}
	if (pl != NULL)
		m = broker_msg_new(b, topic, pl, ns, &p->props, b->now_ms);
	if (pl != slices)
		free(pl);
	if (m == NULL) {
		broker_count(b, BROKER_C_PUB_NOMEM);
		return NULL;
	}
	m->qos = p->qos;
	m->retain = p->retain;
	m->origin = c->s->id;
	return m;
}

static uint8_t
publish_route(struct broker_conn *c, const struct mqtt_publish *p, struct mqtt_str topic,
    const struct mqtt_iov *segs, size_t n, enum uplink_verdict *up)
{
	struct broker *b = c->b;
	struct broker_msg *m = publish_msg(c, p, topic, segs, n);
	bool matched = false;

	if (m == NULL)
		return MQTT_RC_QUOTA_EXCEEDED;
	broker_publish(b, m, &matched);
	if (!matched)
		broker_count(b, BROKER_C_PUB_NO_SUBSCRIBER);
	if (b->up != NULL)
		*up = broker_uplink_publish(
		    c, m, p->packet_id, matched ? 0 : MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	broker_msg_unref(m);
	return matched ? 0 : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
}

/* A resend of an id that went up before a restart, its durability never confirmed: up again
 * under the origin of its first copy (not routed again: the restart found its deliveries in
 * the journal with the id). */
static enum uplink_verdict
qos2_resend_up(struct broker_conn *c, const struct mqtt_publish *p, struct mqtt_str topic,
    const struct mqtt_iov *segs, size_t n)
{
	const struct broker_rx_up *e =
	    c->b->up != NULL ? broker_uplink_rx_find(c->s, p->packet_id) : NULL;
	enum uplink_verdict v;
	struct broker_msg *m;

	if (e == NULL || e->confirmed)
		return UPLINK_ACK_NOW;
	if ((m = publish_msg(c, p, topic, segs, n)) == NULL) { /* closed: it sends it again */
		broker_conn_kill(c, MQTT_RC_QUOTA_EXCEEDED, BROKER_C_COUNT);
		return UPLINK_KILLED;
	}
	v = broker_uplink_qos2_resend(c, m, p->packet_id);
	broker_msg_unref(m);
	return v;
}

/* A resend of an id that went up durable, answered from the table: its PUBREC waits for the
 * origin's journal write on disk, as the first copy's did (a power cut after it would take the
 * next resend as new). The first copy's PUBREC may have been waiting for that sync when its
 * connection was lost; the wait is for the session's last journal write, which holds it. */
static bool
qos2_defer_resend_pubrec(struct broker_conn *c, uint16_t pid)
{
	return broker_uplink_rx_find(c->s, pid) != NULL &&
	    broker_uplink_defer_ack(c, MQTT_PUBREC, pid, broker_persist_session_seq(c->s));
}

/* Room for one more incoming QoS 2 id awaiting PUBREL; false: the connection is killed. 5.0:
 * at most our Receive Maximum; 3.1.1 has none (the table grows up to every packet id). */
static bool
qos2_admit(struct broker_conn *c, struct broker_session *s)
{
	if (c->version == MQTT_V5 && s->n_rx_qos2 >= c->b->cfg.receive_max) {
		broker_conn_kill(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, BROKER_C_BAD_RECEIVE_MAX);
		return false;
	}
	if (!broker_session_rx_qos2_room(s)) {
		broker_conn_kill(
		    c, MQTT_RC_IMPLEMENTATION_SPECIFIC, BROKER_C_COUNT); /* NOMEM counted */
		return false;
	}
	return true;
}

void
broker_handle_publish(
    struct broker_conn *c, const struct mqtt_packet *pkt, const struct mqtt_iov *segs, size_t n)
{
	const struct mqtt_publish *p = &pkt->publish;
	struct broker_session *s = c->s;
	enum uplink_verdict up = UPLINK_ACK_NOW;
	struct mqtt_str topic;
	uint16_t at;
	uint8_t rc;

	broker_count(c->b, BROKER_C_PUB_RX);
	broker_count(c->b,
	    p->qos == 0       ? BROKER_C_PUB_RX_QOS0
		: p->qos == 1 ? BROKER_C_PUB_RX_QOS1
			      : BROKER_C_PUB_RX_QOS2); /* the decoder refused QoS 3 */
	if (!resolve_alias(c, p, &topic))
		return;
	if (p->qos == 2 && rx_qos2_has(s, p->packet_id, &at)) {
		broker_count(c->b, BROKER_C_QOS2_DUP); /* already routed: only the PUBREC again, */
		if (!broker_uplink_qos2_pending(c, p->packet_id) && /* when durable if it goes up */
		    qos2_resend_up(c, p, topic, segs, n) == UPLINK_ACK_NOW &&
		    !qos2_defer_resend_pubrec(c, p->packet_id))
			broker_conn_send_ack(c, MQTT_PUBREC, p->packet_id, 0);
		return;
	}
	if (p->qos == 1 && p->dup && c->n_uplink > 0 &&
	    broker_uplink_qos1_pending(c, p->packet_id)) {
		/* the client's retry on this connection while the first's PUBACK waits for the
		 * disk: already routed and on its way up, and that PUBACK answers both. A second
		 * would reach a client that took the first as freeing the id and sent its next
		 * message under it: that one would be acknowledged before it is durable */
		broker_count(c->b, BROKER_C_QOS1_DUP);
		return;
	}
	if (p->qos == 2 && !qos2_admit(c, s))
		return;
	if (topic_is_sys(topic)) { /* the broker's own: 3.1.1 cannot be told, acked as usual */
		broker_count(c->b, BROKER_C_BAD_SYS_PUBLISH);
		rc = c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0;
	} else {
		rc = publish_route(c, p, topic, segs, n, &up);
	}
	if (p->qos == 0 || up == UPLINK_KILLED)
		return;
	if (rc == MQTT_RC_QUOTA_EXCEEDED && c->version != MQTT_V5) {
		/* 3.1.1 has no way to refuse it: closed unacknowledged, the client sends it again */
		broker_conn_kill(c, MQTT_RC_QUOTA_EXCEEDED, BROKER_C_COUNT);
		return;
	}
	if (p->qos == 2 && rc < 0x80) {
		s->rx_qos2[s->n_rx_qos2++] = p->packet_id;
		/* Deferred: journaled once durable (uplink.c), or a restart would answer the
		 * client's resend with PUBREC for a message the spool never got. */
		if (up != UPLINK_DEFERRED)
			broker_persist_rx_qos2(s, p->packet_id, true);
	}
	if (up == UPLINK_DEFERRED) /* PUBACK or PUBREC once durable (uplink.c) */
		return;
	broker_conn_send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id, rc);
}

static void
handle_pubrel(struct broker_conn *c, uint16_t pid)
{
	struct broker_session *s = c->s;
	uint64_t jseq;
	uint16_t at;
	bool up;

	if (!rx_qos2_has(s, pid, &at)) {
		broker_count(c->b, BROKER_C_PUBREL_UNKNOWN);
		broker_conn_send_ack(c, MQTT_PUBCOMP, pid, MQTT_RC_PACKET_ID_NOT_FOUND);
		return;
	}
	s->rx_qos2[at] = s->rx_qos2[--s->n_rx_qos2];
	up = broker_uplink_rx_find(s, pid) != NULL;
	jseq = broker_persist_rx_qos2(s, pid, false);
	broker_uplink_rx_done(s, pid, true); /* the agent may forget its origin */
	/* a message that went up durable: its release on disk before PUBCOMP, or a power cut
	 * would leave the id awaiting PUBREL and take the sensor's next message under that id
	 * for a duplicate (lost) */
	if (up && broker_uplink_defer_ack(c, MQTT_PUBCOMP, pid, jseq))
		return;
	broker_conn_send_ack(c, MQTT_PUBCOMP, pid, 0);
}

/* PUBACK, PUBREC, PUBCOMP for our deliveries; PUBREL for the client's QoS 2. */
void
broker_handle_ack(struct broker_conn *c, enum mqtt_type type, const struct mqtt_ack *a)
{
	struct broker_session *s = c->s;
	struct out_slot *slot;
	uint8_t want = type == MQTT_PUBACK ? SLOT_WAIT_PUBACK
	    : type == MQTT_PUBREC          ? SLOT_WAIT_PUBREC
					   : SLOT_WAIT_PUBCOMP;

	if (type == MQTT_PUBREL) {
		handle_pubrel(c, a->packet_id);
		return;
	}
	slot = broker_session_slot(s, a->packet_id);
	if (type == MQTT_PUBREC && slot != NULL && slot->state == SLOT_WAIT_PUBCOMP) {
		broker_conn_send_ack(
		    c, MQTT_PUBREL, a->packet_id, 0); /* our PUBREL was lost: again */
		return;
	}
	if (slot == NULL || slot->state != want) {
		broker_count(c->b, BROKER_C_ACK_UNKNOWN);
		if (type == MQTT_PUBREC) /* spec 4.3.3: answer so the client can finish */
			broker_conn_send_ack(
			    c, MQTT_PUBREL, a->packet_id, MQTT_RC_PACKET_ID_NOT_FOUND);
		return;
	}
	if (type != MQTT_PUBREC || a->reason >= 0x80) {
		broker_session_slot_free(s, slot);
	} else {
		broker_msg_unref(slot->msg);
		slot->msg = NULL;
		slot->state = SLOT_WAIT_PUBCOMP;
		broker_persist_msg_state(s, slot->did, slot->pid, slot->state);
		broker_conn_send_ack(c, MQTT_PUBREL, a->packet_id, 0);
	}
	broker_session_drain(s);
}
