/*
 * session.c: sessions by client id, and everything a session keeps across connections: the
 * outgoing QoS 1/2 messages in flight (bounded by max_inflight and the client's Receive
 * Maximum), the queue of messages waiting for room or for the client to come back (bounded by
 * max_queue), the incoming QoS 2 packet ids awaiting PUBREL, expiry. Takeover and clean start
 * are decided in handle_connect.c.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

/*
 * The client id table. Client ids are chosen by unauthenticated clients, so the hash is keyed
 * (SipHash-1-3 with a random key per instance, broker_create) and the table grows (doubling
 * past one session per bucket): ids made to collide cannot pile into one chain.
 */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                   \
	do {                       \
		v0 += v1;          \
		v1 = ROTL(v1, 13); \
		v1 ^= v0;          \
		v0 = ROTL(v0, 32); \
		v2 += v3;          \
		v3 = ROTL(v3, 16); \
		v3 ^= v2;          \
		v0 += v3;          \
		v3 = ROTL(v3, 21); \
		v3 ^= v0;          \
		v2 += v1;          \
		v1 = ROTL(v1, 17); \
		v1 ^= v2;          \
		v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t
siphash13(const uint64_t key[2], const uint8_t *in, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, in + i, 8); /* little-endian hosts (the dataplane's) */
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t k = 0; i + k < len; k++)
		b |= (uint64_t)in[i + k] << (8 * k);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t
id_hash(const struct broker *b, const char *s, size_t len)
{
	return (uint32_t)siphash13(b->sess_key, (const uint8_t *)s, len) & (b->sess_buckets - 1);
}

/* Twice the buckets, every session moved to its new chain; false (the table as it was) when
 * out of memory. The session timers start their pass again (their bucket is another one). */
static bool
sess_hash_grow(struct broker *b)
{
	uint32_t n = b->sess_buckets * 2;
	struct broker_session **t = calloc(n, sizeof(*t));

	if (t == NULL)
		return false;
	for (uint32_t i = 0; i < b->sess_buckets; i++)
		while (b->sess_hash[i] != NULL) {
			struct broker_session *s = b->sess_hash[i];
			uint32_t h = (uint32_t)siphash13(
					 b->sess_key, (const uint8_t *)s->client_id, s->id_len) &
			    (n - 1);

			b->sess_hash[i] = s->hnext;
			s->hnext = t[h];
			t[h] = s;
		}
	free(b->sess_hash);
	b->sess_hash = t;
	b->sess_buckets = n;
	b->sess_bucket = 0;
	b->sess_next = NULL;
	return true;
}

struct broker_session *
broker_session_find(struct broker *b, const char *id, size_t len)
{
	for (struct broker_session *s = b->sess_hash[id_hash(b, id, len)]; s != NULL; s = s->hnext)
		if (s->id_len == len && memcmp(s->client_id, id, len) == 0)
			return s;
	return NULL;
}

struct broker_session *
broker_session_create(struct broker *b, const char *id, size_t len)
{
	size_t size = offsetof(struct broker_session, client_id) + len + 1;
	struct broker_session *s = calloc(1, size < sizeof(*s) ? sizeof(*s) : size);
	uint32_t h;

	if (b->n_sessions >= b->sess_buckets && b->sess_buckets < BROKER_SESS_HASH_MAX)
		sess_hash_grow(b); /* failing that, the chains get longer */
	h = id_hash(b, id, len);
	if (s == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return NULL;
	}
	memcpy(s->client_id, id, len);
	s->client_id[len] = '\0';
	s->id_len = (uint16_t)len;
	s->b = b;
	s->id = ++b->next_session_id;
	s->next_pid = 1;
	STAILQ_INIT(&s->queue); /* its head points into s: s never moves */
	s->hnext = b->sess_hash[h];
	b->sess_hash[h] = s;
	b->n_sessions++;
	broker_count(b, BROKER_C_SESSION_CREATED);
	return s;
}

void
broker_session_unsubscribe_all(struct broker_session *s)
{
	while (s->subs != NULL) {
		struct broker_sub *sub = s->subs;

		s->subs = sub->next_in_sess;
		broker_subs_remove(s->b, sub);
		free(sub->filter);
		free(sub);
		s->b->n_subs--;
	}
	s->n_subs = 0;
}

static void
queue_clear(struct broker_session *s)
{
	broker_session_over_end(s);
	while (!STAILQ_EMPTY(&s->queue)) {
		struct qent *q = STAILQ_FIRST(&s->queue);

		STAILQ_REMOVE_HEAD(&s->queue, next);
		broker_msg_unref(q->msg);
		free(q);
	}
	s->b->n_queued -= s->qlen;
	s->qlen = 0;
}

/* The parts allocated on use go back (counted in the gauges): the window and the QoS 2 id
 * table (what they hold is the caller's), the cold part with its held CONNACK. */
static void
window_free(struct broker_session *s)
{
	if (s->inflight == NULL)
		return;
	free(s->inflight);
	s->inflight = NULL;
	s->b->n_windows--;
}

static void
qos2_table_free(struct broker_session *s)
{
	if (s->rx_qos2 == NULL)
		return;
	free(s->rx_qos2);
	s->rx_qos2 = NULL;
	s->rx_qos2_cap = 0;
	s->b->n_qos2_tables--;
}

static void
cold_free(struct broker_session *s)
{
	if (s->cold == NULL)
		return;
	free(s->cold->connack);
	free(s->cold->rx_up);
	free(s->cold);
	s->cold = NULL;
	s->b->n_cold--;
}

/* The session's state is gone for good; a pending delayed will goes out now (spec 3.1.3.2.2). */
void
broker_session_destroy(struct broker_session *s)
{
	struct broker *b = s->b;
	struct broker_session **pp = &b->sess_hash[id_hash(b, s->client_id, s->id_len)];

	broker_persist_session_gone(s); /* first: what follows journals nothing for it */
	if (session_will_at(s) != 0)
		broker_will_publish(s);
	broker_will_clear(s);
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	if (b->sess_next == s)
		b->sess_next = s->hnext;
	broker_session_unsubscribe_all(s);
	queue_clear(s);
	for (uint16_t i = 0; s->inflight != NULL && i < b->cfg.max_inflight; i++)
		broker_msg_unref(s->inflight[i].msg);
	if (s->conn != NULL)
		s->conn->s = NULL;
	if (b->up != NULL) /* QoS 2 ids awaiting durability forget it */
		broker_uplink_session_gone(s);
	window_free(s);
	qos2_table_free(s);
	cold_free(s);
	free(s);
	b->n_sessions--;
}

struct session_cold *
broker_session_cold_get(struct broker_session *s)
{
	if (s->cold == NULL) {
		if ((s->cold = calloc(1, sizeof(*s->cold))) == NULL)
			broker_count(s->b, BROKER_C_NOMEM);
		else
			s->b->n_cold++;
	}
	return s->cold;
}

void
broker_session_cold_put(struct broker_session *s)
{
	struct session_cold *k = s->cold;

	if (k != NULL && k->will == NULL && k->will_at_ms == 0 && k->claim_pending == 0 &&
	    k->connack == NULL && k->n_rx_up == 0)
		cold_free(s);
}

static uint16_t
inflight_limit(const struct broker_session *s)
{
	uint16_t lim = s->b->cfg.max_inflight;

	if (s->conn != NULL && s->conn->client_recv_max < lim)
		lim = s->conn->client_recv_max;
	return lim;
}

struct out_slot *
broker_session_slot(struct broker_session *s, uint16_t pid)
{
	for (uint16_t i = 0; s->inflight != NULL && i < s->b->cfg.max_inflight; i++)
		if (s->inflight[i].state != SLOT_FREE && s->inflight[i].pid == pid)
			return &s->inflight[i];
	return NULL;
}

void
broker_session_slot_free(struct broker_session *s, struct out_slot *slot)
{
	broker_persist_msg_state(s, slot->did, 0, SLOT_FREE);
	broker_msg_unref(slot->msg);
	memset(slot, 0, sizeof(*slot));
	s->n_inflight--;
}

static uint16_t
pid_next(struct broker_session *s)
{
	for (;;) {
		uint16_t pid = s->next_pid++;

		if (s->next_pid == 0)
			s->next_pid = 1;
		if (broker_session_slot(s, pid) == NULL)
			return pid;
	}
}

/* The inflight window is allocated with the first QoS 1/2 delivery: an idle session, or one
 * that only ever gets QoS 0, does not pay for it. */
static struct out_slot *
slot_alloc(struct broker_session *s)
{
	if (s->inflight == NULL) {
		if ((s->inflight = calloc(s->b->cfg.max_inflight, sizeof(*s->inflight))) == NULL) {
			broker_count(s->b, BROKER_C_NOMEM);
			return NULL;
		}
		s->b->n_windows++;
	}
	for (uint16_t i = 0; i < s->b->cfg.max_inflight; i++)
		if (s->inflight[i].state == SLOT_FREE)
			return &s->inflight[i];
	return NULL;
}

/* 1 sent (or dropped for good), 0 no room: the caller keeps it. did: its journal entry when it
 * comes from the queue, taken (set to 0) when it goes into the window; NULL: a new delivery,
 * journaled here if the session persists. */
static int
try_send(struct broker_session *s, struct broker_msg *m, uint8_t qos, bool retain, uint32_t sub_id,
    uint32_t *did)
{
	struct broker_conn *c = s->conn;
	struct out_slot *slot;
	uint16_t pid = 0;
	int rc;

	if (c == NULL || !broker_conn_alive(c) || c->state != CONN_ACTIVE)
		return 0;
	if (qos > 0 && (s->n_inflight >= inflight_limit(s) || (slot = slot_alloc(s)) == NULL))
		return 0;
	if (qos > 0)
		pid = pid_next(s);
	rc = broker_conn_send_publish(c, m, qos, pid, false, retain, sub_id);
	if (rc < 0 && !broker_conn_alive(c))
		return 0; /* the connection just died: the session keeps the message */
	if (rc <= 0 || qos == 0)
		return rc == 0 ? 0 : 1;
	broker_msg_ref(m);
	*slot = (struct out_slot){ .msg = m,
		.pid = pid,
		.qos = qos,
		.retain = retain,
		.sub_id = sub_id,
		.seq = s->next_seq++,
		.state = qos == 1 ? SLOT_WAIT_PUBACK : SLOT_WAIT_PUBREC };
	if (did != NULL && *did != 0) {
		broker_persist_msg_state(s, *did, pid, slot->state);
		slot->did = *did;
		*did = 0;
	} else {
		slot->did = broker_persist_msg_add(s, m, qos, retain, sub_id, pid, slot->state);
	}
	s->n_inflight++;
	return 1;
}

static void
queue_pop(struct broker_session *s)
{
	struct qent *q = STAILQ_FIRST(&s->queue);

	STAILQ_REMOVE_HEAD(&s->queue, next);
	s->qlen--;
	s->b->n_queued--;
	broker_persist_msg_state(s, q->did, 0, SLOT_FREE);
	broker_msg_unref(q->msg);
	free(q);
}

void
broker_session_over_end(struct broker_session *s)
{
	if (s->over_since_ms == 0)
		return;
	s->over_since_ms = 0;
	s->b->n_over--;
	broker_release_all(s->b, HOLD_SUB_QUEUE, s);
}

/*
 * The queue is at max_queue. QoS 0 is dropped. QoS 1/2 for a connected client, queue_full
 * hold: queued past the limit, and the publisher being read (b->cur_in) is held on this
 * session until it drains (broker_session_drain) or is disconnected for a stall: the queue exceeds
 * max_queue by at most one message per publisher held (and one burst from other lcores, which
 * stop being taken meanwhile: broker_xlcore_paused). Otherwise drop-oldest or drop-new.
 * Returns false when m is not to be queued.
 */
static bool
queue_full(struct broker_session *s, uint8_t qos)
{
	struct broker *b = s->b;
	bool online = s->conn != NULL && broker_conn_alive(s->conn);

	if (qos == 0) {
		broker_count(b, BROKER_C_LIMIT_QUEUE_QOS0);
		return false;
	}
	if (online && b->cfg.queue_full == BROKER_QUEUE_HOLD) {
		if (s->over_since_ms == 0) {
			s->over_since_ms = b->now_ms != 0 ? b->now_ms : 1;
			b->n_over++;
		}
		if (b->cur_in != NULL && b->cur_in->s != s) { /* never held on itself */
			broker_conn_hold(b->cur_in, HOLD_SUB_QUEUE);
			if (b->cur_in->held_on == NULL)
				b->cur_in->held_on = s;
		}
		return true;
	}
	broker_count(b, BROKER_C_LIMIT_QUEUE);
	if (b->cfg.queue_full != BROKER_QUEUE_DROP_OLDEST || STAILQ_EMPTY(&s->queue))
		return false;
	queue_pop(s);
	return true;
}

static void
enqueue(struct broker_session *s, struct broker_msg *m, uint8_t qos, bool retain, uint32_t sub_id)
{
	struct broker *b = s->b;
	struct qent *q;

	if (s->qlen >= b->cfg.max_queue && !queue_full(s, qos))
		return;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	broker_msg_ref(m);
	*q = (struct qent){ .msg = m,
		.qos = qos,
		.retain = retain,
		.sub_id = sub_id,
		.did = broker_persist_msg_add(s, m, qos, retain, sub_id, 0, SLOT_FREE) };
	STAILQ_INSERT_TAIL(&s->queue, q, next);
	s->qlen++;
	b->n_queued++;
}

void
broker_session_deliver(
    struct broker_session *s, struct broker_msg *m, uint8_t qos, bool retain, uint32_t sub_id)
{
	if (s->conn == NULL && qos == 0) {
		broker_count(s->b, BROKER_C_OFFLINE_QOS0_DROP);
		return;
	}
	if (STAILQ_EMPTY(&s->queue) && try_send(s, m, qos, retain, sub_id, NULL) == 1)
		return;
	enqueue(s, m, qos, retain, sub_id); /* keeps order behind what already waits */
}

static bool
resend_slot(struct broker_session *s, struct out_slot *slot)
{
	struct broker_conn *c = s->conn;

	if (slot->state == SLOT_WAIT_PUBCOMP) {
		if (broker_conn_send_space(c) < 4)
			return false;
		broker_conn_send_ack(c, MQTT_PUBREL, slot->pid, 0);
	} else {
		int rc = broker_conn_send_publish(
		    c, slot->msg, slot->qos, slot->pid, true, slot->retain, slot->sub_id);
		if (rc == 0 || !broker_conn_alive(c))
			return false;
		if (rc < 0) {
			broker_session_slot_free(s, slot); /* can never be sent to this client */
			return true;
		}
		broker_count(s->b, BROKER_C_PUB_REDELIVERED);
	}
	slot->need_send = false;
	return true;
}

/* The oldest slot waiting to be (re)sent, NULL when none. */
static struct out_slot *
oldest_unsent(struct broker_session *s)
{
	struct out_slot *best = NULL;

	for (uint16_t i = 0; s->inflight != NULL && i < s->b->cfg.max_inflight; i++) {
		struct out_slot *o = &s->inflight[i];

		if (o->need_send && (best == NULL || (int32_t)(o->seq - best->seq) < 0))
			best = o;
	}
	return best;
}

/* Publishers held on s go on once it is back under 3/4 of max_queue (not at every message
 * taken: each release costs a pass over the held connections); while it stays over, each
 * message sent is progress, and the stall clock starts again. */
static void
queue_progress(struct broker_session *s)
{
	if (s->over_since_ms == 0)
		return;
	if (s->qlen <= s->b->cfg.max_queue - s->b->cfg.max_queue / 4)
		broker_session_over_end(s);
	else
		s->over_since_ms = s->b->now_ms != 0 ? s->b->now_ms : 1;
}

/* Slots sent on this connection and not finished: what the client's Receive Maximum counts
 * (PUBLISHes not yet PUBACKed or PUBCOMPed). */
static uint16_t
sent_unfinished(const struct broker_session *s)
{
	uint16_t n = 0;

	for (uint16_t i = 0; s->inflight != NULL && i < s->b->cfg.max_inflight; i++)
		n += s->inflight[i].state != SLOT_FREE && !s->inflight[i].need_send;
	return n;
}

void
broker_session_drain(struct broker_session *s)
{
	struct broker *b = s->b;
	struct out_slot *o;
	uint32_t qlen = s->qlen;

	if (s->conn == NULL || s->conn->state != CONN_ACTIVE)
		return;
	/* Resends in send order, a PUBLISH only within the client's Receive Maximum of this
	 * connection, which may be lower than the last one's [MQTT-3.3.4-9]; a PUBREL owed goes
	 * regardless (it adds no PUBLISH). The queue waits behind them. */
	while ((o = oldest_unsent(s)) != NULL) {
		if (!broker_conn_alive(s->conn))
			return;
		if (o->state != SLOT_WAIT_PUBCOMP && sent_unfinished(s) >= inflight_limit(s))
			return;
		if (!resend_slot(s, o))
			return;
	}
	while (!STAILQ_EMPTY(&s->queue) && s->conn != NULL && broker_conn_alive(s->conn)) {
		struct qent *q = STAILQ_FIRST(&s->queue);

		if (broker_msg_expired(q->msg, b->now_ms))
			broker_count(b, BROKER_C_MSG_EXPIRED);
		else if (try_send(s, q->msg, q->qos, q->retain, q->sub_id, &q->did) == 0)
			break;
		queue_pop(s); /* its journal entry, unless it went with it to the window */
	}
	if (s->qlen != qlen)
		queue_progress(s);
}

/* The slots come in their send order: each gets the next seq here, so resume keeps it. A PUBREL
 * still owed goes past the client's Receive Maximum rather than be lost (its packet id would
 * stay in use at the client for good). */
bool
broker_session_slot_restore(struct broker_session *s, const struct out_slot *o)
{
	struct out_slot *slot;

	if (broker_session_slot(s, o->pid) != NULL ||
	    (o->msg != NULL && s->n_inflight >= inflight_limit(s)) ||
	    (slot = slot_alloc(s)) == NULL)
		return false;
	*slot = *o;
	if (slot->msg != NULL)
		broker_msg_ref(slot->msg);
	slot->seq = s->next_seq++;
	slot->need_send = true;
	s->n_inflight++;
	return true;
}

bool
broker_session_rx_qos2_room(struct broker_session *s)
{
	struct broker *b = s->b;
	uint32_t cap;
	uint16_t *t;

	if (s->rx_qos2 != NULL && s->n_rx_qos2 < s->rx_qos2_cap)
		return true;
	cap = s->rx_qos2 == NULL ? b->cfg.receive_max : (uint32_t)s->rx_qos2_cap * 2;
	if (cap > UINT16_MAX) /* packet ids are 16 bits, 0 is not one: never more than this */
		cap = UINT16_MAX;
	if (cap <= s->n_rx_qos2)
		return false;
	if ((t = realloc(s->rx_qos2, cap * sizeof(*t))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return false;
	}
	if (s->rx_qos2 == NULL)
		b->n_qos2_tables++;
	s->rx_qos2 = t;
	s->rx_qos2_cap = (uint16_t)cap;
	return true;
}

bool
broker_session_rx_qos2_add(struct broker_session *s, uint16_t pid)
{
	for (uint16_t i = 0; i < s->n_rx_qos2; i++)
		if (s->rx_qos2[i] == pid)
			return true;
	if (!broker_session_rx_qos2_room(s))
		return false;
	s->rx_qos2[s->n_rx_qos2++] = pid;
	return true;
}

void
broker_session_resume(struct broker_session *s)
{
	for (uint16_t i = 0; s->inflight != NULL && i < s->b->cfg.max_inflight; i++)
		if (s->inflight[i].state != SLOT_FREE)
			s->inflight[i].need_send = true;
	broker_session_drain(s);
}

void
broker_session_offline(struct broker_session *s, bool send_will, uint64_t now_ms)
{
	struct session_cold *k = s->cold;

	s->conn = NULL;
	broker_session_over_end(
	    s); /* nothing is held for an offline session: it drops at the limit */
	if (send_will && k != NULL && k->will != NULL) {
		uint32_t delay = k->will_delay_s < s->expiry_s ? k->will_delay_s : s->expiry_s;

		if (delay == 0) {
			broker_will_publish(s);
		} else {
			k->will_at_ms = now_ms + (uint64_t)delay * 1000u;
			broker_count(s->b, BROKER_C_WILL_DELAYED);
			broker_persist_will(s, true);
		}
	}
	if (session_will_at(s) == 0)
		broker_will_clear(s);
	if (s->expiry_s == 0) {
		broker_uplink_session_end(s); /* its QoS 2 exchanges end with it */
		broker_session_destroy(s);
		return;
	}
	s->expire_at_ms = now_ms + (uint64_t)s->expiry_s * 1000u;
	broker_persist_session_off(s);
}

/* Once a second or so: an idle session gives back its window and its QoS 2 id table (they
 * come back on use), an offline one sends its delayed will and expires. */
void
broker_session_tick(struct broker_session *s, uint64_t now_ms)
{
	if (s->n_inflight == 0)
		window_free(s);
	if (s->n_rx_qos2 == 0)
		qos2_table_free(s);
	if (s->conn != NULL)
		return;
	if (session_will_at(s) != 0 && now_ms >= session_will_at(s)) {
		broker_will_publish(s);
		broker_will_clear(s);
	}
	if (s->expire_at_ms != 0 && now_ms >= s->expire_at_ms) {
		broker_count(s->b, BROKER_C_SESSION_EXPIRED);
		broker_uplink_session_end(s);
		broker_session_destroy(s);
	}
}

/* ---- recovery (persist.c replays the journal through these) ---- */

static struct qent *
queue_find(struct broker_session *s, uint32_t did)
{
	struct qent *q;

	STAILQ_FOREACH (q, &s->queue, next)
		if (q->did == did)
			return q;
	return NULL;
}

/* Recovery only: STAILQ_REMOVE walks the queue to q's predecessor, as queue_find did. */
static void
queue_unlink(struct broker_session *s, struct qent *q)
{
	STAILQ_REMOVE(&s->queue, q, qent, next);
	s->qlen--;
	s->b->n_queued--;
	broker_msg_unref(q->msg);
	free(q);
}

static struct out_slot *
slot_find_did(struct broker_session *s, uint32_t did)
{
	for (uint16_t i = 0; s->inflight != NULL && i < s->b->cfg.max_inflight; i++)
		if (s->inflight[i].state != SLOT_FREE && s->inflight[i].did == did)
			return &s->inflight[i];
	return NULL;
}

/* Into the window when it was sent (resent with DUP at resume, same packet id); queued
 * otherwise, or when the window has no room (then it goes as a new message). */
void
broker_persist_replay_entry(struct broker_session *s, struct broker_msg *m, uint32_t did,
    uint16_t pid, uint8_t state, uint8_t qos, bool retain, uint32_t sub_id)
{
	struct out_slot o = { .msg = m,
		.pid = pid,
		.qos = qos,
		.state = state,
		.retain = retain,
		.sub_id = sub_id,
		.did = did };
	struct qent *q;

	if (state != SLOT_FREE && pid != 0 && broker_session_slot_restore(s, &o))
		return;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		broker_count(s->b, BROKER_C_NOMEM);
		return;
	}
	broker_msg_ref(m);
	*q = (struct qent){ .msg = m, .qos = qos, .retain = retain, .sub_id = sub_id, .did = did };
	STAILQ_INSERT_TAIL(&s->queue, q, next);
	s->qlen++;
	s->b->n_queued++;
}

bool
broker_delivery_ok(uint8_t qos, uint8_t state, uint16_t pid)
{
	switch (state) {
	case SLOT_FREE:
		return qos == 1 || qos == 2;
	case SLOT_WAIT_PUBACK:
		return qos == 1 && pid != 0;
	case SLOT_WAIT_PUBREC:
	case SLOT_WAIT_PUBCOMP:
		return qos == 2 && pid != 0;
	default:
		return false;
	}
}

bool
broker_persist_replay_state(struct broker_session *s, uint32_t did, uint16_t pid, uint8_t state)
{
	struct out_slot *slot = slot_find_did(s, did);
	struct qent *q;

	if (state == SLOT_FREE) {
		if (slot != NULL)
			broker_session_slot_free(s, slot);
		else if ((q = queue_find(s, did)) != NULL)
			queue_unlink(s, q);
		return true;
	}
	/* the step must be one a delivery of its QoS takes, and never back to sending a message
	 * already let go (owed a PUBREL only) */
	if (slot != NULL &&
	    (!broker_delivery_ok(slot->qos, state, pid) ||
		(slot->msg == NULL && state != SLOT_WAIT_PUBCOMP)))
		return false;
	if (slot == NULL && (q = queue_find(s, did)) != NULL) {
		if (!broker_delivery_ok(q->qos, state, pid))
			return false;
		/* sent from the queue: into the window with its packet id */
		broker_persist_replay_entry(
		    s, q->msg, did, pid, state, q->qos, q->retain, q->sub_id);
		q->did = 0;
		queue_unlink(s, q);
		slot = slot_find_did(s, did);
	} else if (slot == NULL && state == SLOT_WAIT_PUBCOMP && pid != 0) {
		/* a snapshot's PUBREL owed: no message is kept for it */
		struct out_slot o = { .pid = pid, .state = state, .qos = 2, .did = did };

		broker_session_slot_restore(s, &o);
		return true;
	}
	if (slot == NULL)
		return true; /* a delivery the journal no longer holds (settled before) */
	slot->pid = pid;
	slot->state = state;
	if (state == SLOT_WAIT_PUBCOMP) {
		broker_msg_unref(slot->msg);
		slot->msg = NULL;
	}
	return true;
}
