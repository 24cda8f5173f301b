/*
 * broker.c: one broker instance (one per worker lcore): its configuration and counters, the
 * connections, the input loop that decodes whole packets across segment boundaries and hands
 * each to its handler (handle_*.c), the send helpers over the transport ops, closing, and the
 * timers (keepalive at 1.5x, connect timeout, sessions, $SYS statistics).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "broker_int.h"

static const char *const counter_names[] = {
#define BROKER_C(name, kind, desc) #name,
#include "broker_counters.def"
#undef BROKER_C
};

static const char *const counter_descs[] = {
#define BROKER_C(name, kind, desc) desc,
#include "broker_counters.def"
#undef BROKER_C
};

void
broker_config_defaults(struct broker_config *cfg)
{
	*cfg = (struct broker_config){
		.max_conns = 10000,
		.max_sessions = 20000,
		.max_subs_per_session = 64,
		.max_filter_levels = 32,
		.max_queue = 1000,
		.max_inflight = 32,
		.receive_max = 32,
		.max_packet_size = 256 * 1024,
		.max_retained = 10000,
		.max_retained_bytes = 64ull << 20,
		.keepalive_max_s = 3600,
		.topic_alias_max = 16,
		.topic_alias_out_max = 16,
		.session_expiry_max_s = 86400,
		.connect_timeout_ms = 10000,
		.sys_interval_ms = 10000,
		.client_id_max = 128,
		.xlcore_claim_timeout_ms = 1000,
		.stall_timeout_ms = 30000,
		.queue_full = BROKER_QUEUE_HOLD,
	};
}

/* The client id hash's key: random per instance (getrandom), so ids cannot be chosen to
 * collide. Without randomness (an old kernel), the clock and an address: still not
 * guessable from outside in practice. */
static void
hash_key(uint64_t key[2])
{
	struct timespec ts;

	if (getrandom(key, 2 * sizeof(*key), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(*key)))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	key[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)key;
	key[1] = (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)(uintptr_t)&ts;
}

struct broker *
broker_create(
    const struct broker_config *cfg, const struct broker_transport_ops *ops, uint64_t now_ms)
{
	struct broker *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	if (cfg != NULL)
		b->cfg = *cfg;
	else
		broker_config_defaults(&b->cfg);
	if (b->cfg.max_inflight == 0)
		b->cfg.max_inflight = 1;
	if (b->cfg.max_packet_size == 0 || b->cfg.max_packet_size > MQTT_MAX_PACKET_SIZE)
		b->cfg.max_packet_size = MQTT_MAX_PACKET_SIZE;
	if (b->cfg.receive_max == 0)
		b->cfg.receive_max = 1;
	if (b->cfg.xlcore_claim_timeout_ms == 0)
		b->cfg.xlcore_claim_timeout_ms = 1000;
	if (b->cfg.stall_timeout_ms == 0)
		b->cfg.stall_timeout_ms = 30000;
	b->ops = ops;
	b->now_ms = b->started_ms = now_ms;
	b->wheel_ms = now_ms - now_ms % BROKER_WHEEL_MS;
	b->next_sys_ms = now_ms + b->cfg.sys_interval_ms;
	/* Straddling header fields and a SUBSCRIBE's filter block are gathered here. */
	b->scratch_len = b->cfg.max_packet_size < 65536 ? b->cfg.max_packet_size + 4096 : 69632;
	b->scratch = malloc(b->scratch_len);
	b->tree =
	    mqtt_topic_tree_create(b->cfg.max_filter_levels ? b->cfg.max_filter_levels : 32, NULL);
	b->retained = retain_create();
	b->sess_buckets = BROKER_SESS_HASH_MIN;
	b->sess_hash = calloc(b->sess_buckets, sizeof(*b->sess_hash));
	hash_key(b->sess_key);
	if (b->scratch == NULL || b->tree == NULL || b->retained == NULL || b->sess_hash == NULL) {
		broker_destroy(b);
		return NULL;
	}
	return b;
}

static void
conn_free(struct broker_conn *c)
{
	if (c->aliases != NULL)
		for (uint32_t i = 0; i < (uint32_t)c->b->cfg.topic_alias_max + c->alias_out_max;
		     i++)
			free((void *)c->aliases[i].s);
	free(c->aliases);
	free(c);
}

void
broker_destroy(struct broker *b)
{
	if (b == NULL)
		return;
	b->xops = NULL;          /* shutting down: nothing more to tell the other instances */
	broker_persist_close(b); /* first: the teardown below is no state change */
	while (b->conns != NULL) {
		struct broker_conn *c = b->conns;

		b->conns = c->next;
		if (c->s != NULL)
			c->s->conn = NULL;
		conn_free(c);
	}
	b->held = NULL; /* freed above: the sessions' teardown below must not release them */
	b->n_held = 0;
	for (uint32_t i = 0; b->sess_hash != NULL && i < b->sess_buckets; i++)
		while (b->sess_hash[i] != NULL) {
			will_clear(b->sess_hash[i]); /* shutting down: no wills */
			session_destroy(b->sess_hash[i]);
		}
	while (b->groups != NULL) { /* groups kept only for other instances' members */
		struct share_group *g = b->groups;

		b->groups = g->next;
		free(g->remote);
		free(g->filter);
		free(g);
	}
	for (uint32_t i = 0; i < BROKER_REPLAY; i++)
		broker_msg_unref(b->replay[i]);
	xlcore_fini(b);
	broker_uplink_detach(b);
	retain_destroy(b->retained);
	free(b->sess_hash);
	broker_msg_cache_drain();
	mqtt_topic_tree_destroy(b->tree);
	free(b->scratch);
	free(b->route_subs);
	free(b->iov);
	free(b);
}

static void
list_del(struct broker_conn **head, struct broker_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void
list_add(struct broker_conn **head, struct broker_conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head != NULL)
		(*head)->prev = c;
	*head = c;
}

/*
 * Connection deadlines in a timer wheel, so keepalive (1.5x) and the connect timeout are
 * enforced at the first tick past them whatever the number of connections: a tick runs only
 * the slots whose time has come. A packet does not touch the wheel (it only moves last_rx_ms
 * on): when a connection's slot comes, its deadline is computed again and it is killed or
 * placed where it now belongs. A connection is killed at the first broker_tick with now at or
 * past its deadline (the dataplane ticks every 50 ms).
 */
static uint64_t
conn_deadline(const struct broker_conn *c)
{
	if (c->state == CONN_NEW)
		return c->opened_ms + c->b->cfg.connect_timeout_ms;
	if ((c->state == CONN_ACTIVE || c->state == CONN_CLAIMING) && c->keepalive_s != 0)
		return c->last_rx_ms + (uint64_t)c->keepalive_s * 1500u;
	return UINT64_MAX; /* none: dying, or keepalive 0 */
}

static void
wheel_add(struct broker *b, struct broker_conn *c, uint64_t at)
{
	uint64_t d = at > b->wheel_ms ? (at - b->wheel_ms) / BROKER_WHEEL_MS : 0;
	uint32_t i;

	if (d >= BROKER_WHEEL_SLOTS)
		d = BROKER_WHEEL_SLOTS - 1;
	i = (uint32_t)((b->wheel_ms / BROKER_WHEEL_MS + d) % BROKER_WHEEL_SLOTS);
	c->wslot = (uint16_t)i;
	c->wprev = NULL;
	c->wnext = b->wheel[i];
	if (c->wnext != NULL)
		c->wnext->wprev = c;
	b->wheel[i] = c;
}

static void
wheel_del(struct broker *b, struct broker_conn *c)
{
	if (c->wslot == BROKER_WHEEL_NONE)
		return;
	if (c->wprev != NULL)
		c->wprev->wnext = c->wnext;
	else
		b->wheel[c->wslot] = c->wnext;
	if (c->wnext != NULL)
		c->wnext->wprev = c->wprev;
	c->wnext = c->wprev = NULL;
	c->wslot = BROKER_WHEEL_NONE;
}

void
conn_timer_arm(struct broker_conn *c)
{
	uint64_t at = conn_deadline(c);

	wheel_del(c->b, c);
	if (at != UINT64_MAX)
		wheel_add(c->b, c, at);
}

/* A connection's slot came: killed when its deadline passed, else placed again. */
static void
conn_timer_fire(struct broker *b, struct broker_conn *c)
{
	uint64_t at = conn_deadline(c);

	if (at == UINT64_MAX)
		return;
	if (b->now_ms < at || c->state == CONN_CLAIMING) /* claiming: once its CONNACK went */
		wheel_add(b, c, b->now_ms < at ? at : b->now_ms + BROKER_WHEEL_MS);
	else if (c->state == CONN_NEW)
		conn_kill(c, MQTT_RC_MAXIMUM_CONNECT_TIME, BROKER_C_CONNECT_TIMEOUT);
	else
		conn_kill(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, BROKER_C_KEEPALIVE_TIMEOUT);
}

/* Run the slot list l (taken out of the wheel whole: conn_timer_fire may put some back in
 * the same slot, nothing else touches the wheel meanwhile). */
static void
wheel_fire_list(struct broker *b, struct broker_conn *l)
{
	while (l != NULL) {
		struct broker_conn *c = l;

		l = c->wnext;
		c->wnext = c->wprev = NULL;
		c->wslot = BROKER_WHEEL_NONE;
		conn_timer_fire(b, c);
	}
}

/* The slots from wheel_ms to now: each whole slot is run and left behind; the one now falls
 * in is run (what is due goes) and stays. After a long pause (a whole turn), every slot is
 * run once, from now. */
static void
wheel_run(struct broker *b)
{
	if (b->now_ms - b->wheel_ms >= (uint64_t)BROKER_WHEEL_SLOTS * BROKER_WHEEL_MS) {
		struct broker_conn *all = NULL;

		for (uint32_t i = 0; i < BROKER_WHEEL_SLOTS; i++)
			while (b->wheel[i] != NULL) {
				struct broker_conn *c = b->wheel[i];

				wheel_del(b, c);
				c->wnext = all;
				all = c;
			}
		b->wheel_ms = b->now_ms - b->now_ms % BROKER_WHEEL_MS;
		wheel_fire_list(b, all);
		return;
	}
	for (;;) {
		uint32_t i = (uint32_t)((b->wheel_ms / BROKER_WHEEL_MS) % BROKER_WHEEL_SLOTS);
		struct broker_conn *l = b->wheel[i];

		b->wheel[i] = NULL;
		wheel_fire_list(b, l);
		if (b->now_ms < b->wheel_ms + BROKER_WHEEL_MS)
			return;
		b->wheel_ms += BROKER_WHEEL_MS;
	}
}

struct broker_conn *
broker_conn_open(struct broker *b, void *transport_ctx, uint64_t now_ms)
{
	struct broker_conn *c;

	b->now_ms = now_ms;
	if (b->n_conns >= b->cfg.max_conns) {
		broker_count(b, BROKER_C_LIMIT_CONNS);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return NULL;
	}
	c->b = b;
	c->ctx = transport_ctx;
	c->opened_ms = c->last_rx_ms = now_ms;
	c->client_recv_max = UINT16_MAX;
	c->wslot = BROKER_WHEEL_NONE;
	mqtt_decoder_init(
	    &c->dec, MQTT_ROLE_SERVER, 0, b->cfg.max_packet_size, b->scratch, b->scratch_len);
	list_add(&b->conns, c);
	b->n_conns++;
	conn_timer_arm(c);
	broker_count(b, BROKER_C_CONN_OPENED);
	return c;
}

bool
conn_alive(const struct broker_conn *c)
{
	return c->state != CONN_DYING;
}

size_t
conn_send_space(struct broker_conn *c)
{
	return conn_alive(c) ? c->b->ops->send_space(c->ctx) : 0;
}

/* A send that fails ends the connection, through conn_kill like any other end: the transport
 * is told to close (it still points at the connection until then), and conn_kill sends
 * nothing more on a connection whose send failed. */
bool
conn_send(struct broker_conn *c, const struct mqtt_iov *iov, size_t n)
{
	if (!conn_alive(c))
		return false;
	if (c->b->ops->send(c->ctx, iov, n) < 0) {
		broker_count(c->b, BROKER_C_SEND_FAIL);
		c->send_failed = true;
		conn_kill(c, MQTT_RC_UNSPECIFIED_ERROR, BROKER_C_COUNT);
		return false;
	}
	broker_count(c->b, BROKER_C_PKT_TX);
	return true;
}

static void
held_del(struct broker_conn *c)
{
	if (c->hprev != NULL)
		c->hprev->hnext = c->hnext;
	else
		c->b->held = c->hnext;
	if (c->hnext != NULL)
		c->hnext->hprev = c->hprev;
	c->hnext = c->hprev = NULL;
	c->b->n_held--;
}

void
conn_hold(struct broker_conn *c, enum conn_hold reason)
{
	struct broker *b = c->b;

	if (!conn_alive(c) || (c->hold & reason) != 0)
		return;
	broker_count(b,
	    reason == HOLD_ACK_ROOM        ? BROKER_C_HOLD_ACK_ROOM
		: reason == HOLD_SUB_QUEUE ? BROKER_C_HOLD_SUB_QUEUE
		: reason == HOLD_UPLINK    ? BROKER_C_HOLD_UPLINK
					   : BROKER_C_HOLD_XLCORE);
	if (c->hold == 0) {
		c->hprev = NULL;
		c->hnext = b->held;
		if (b->held != NULL)
			b->held->hprev = c;
		b->held = c;
		b->n_held++;
	}
	c->hold |= (uint8_t)reason;
}

void
conn_release(struct broker_conn *c, enum conn_hold reason)
{
	if ((c->hold & reason) == 0)
		return;
	c->hold &= (uint8_t)~reason;
	if (reason == HOLD_SUB_QUEUE)
		c->held_on = NULL;
	if (c->hold != 0)
		return;
	held_del(c);
	/* the current input call goes on by itself; others are passed again by the transport */
	if (c != c->b->cur_in && conn_alive(c) && c->state != CONN_CLAIMING &&
	    c->b->ops->input_ready != NULL)
		c->b->ops->input_ready(c->ctx);
}

void
broker_release_all(struct broker *b, enum conn_hold reason, const struct broker_session *on)
{
	struct broker_conn *c = b->held, *next;

	for (; c != NULL; c = next) {
		next = c->hnext; /* conn_release unlinks c */
		if ((c->hold & reason) != 0 && (on == NULL || c->held_on == on))
			conn_release(c, reason);
	}
}

bool
conn_send_buf(struct broker_conn *c, const uint8_t *buf, int len)
{
	struct mqtt_iov one = { buf, len > 0 ? (size_t)len : 0 };

	return len > 0 && conn_send(c, &one, 1);
}

bool
conn_send_ack(struct broker_conn *c, enum mqtt_type type, uint16_t pid, uint8_t reason)
{
	struct mqtt_ack a = { .packet_id = pid, .reason = c->version == MQTT_V5 ? reason : 0 };
	uint8_t buf[16];

	return conn_send_buf(c, buf, mqtt_encode_ack(buf, sizeof(buf), c->version, type, &a));
}

struct mqtt_str *
alias_table(struct broker_conn *c)
{
	size_t n = (size_t)c->b->cfg.topic_alias_max + c->alias_out_max;

	if (c->aliases == NULL && n > 0 && (c->aliases = calloc(n, sizeof(*c->aliases))) == NULL)
		broker_count(c->b, BROKER_C_NOMEM);
	return c->aliases;
}

/*
 * Outbound topic alias (5.0, when the client allows some): a topic sent before on this
 * connection goes as its alias with an empty topic; another one takes the next alias round
 * robin and goes in full with it. *fresh: the alias is (re)bound by this packet, to be
 * remembered only once the packet is sent. 0: no alias.
 */
static uint16_t
alias_out(struct broker_conn *c, struct mqtt_str topic, bool *fresh)
{
	struct mqtt_str *t;

	*fresh = false;
	if (c->alias_out_max == 0 || topic.len == 0 || (t = alias_table(c)) == NULL)
		return 0;
	t += c->b->cfg.topic_alias_max;
	for (uint16_t i = 0; i < c->alias_out_max; i++)
		if (t[i].len == topic.len && memcmp(t[i].s, topic.s, topic.len) == 0)
			return (uint16_t)(i + 1);
	*fresh = true;
	return (uint16_t)(c->alias_out_next + 1);
}

/* The PUBLISH that bound alias a to topic went out: the client knows it from now on. */
static void
alias_out_sent(struct broker_conn *c, uint16_t a, struct mqtt_str topic)
{
	struct mqtt_str *e = &c->aliases[c->b->cfg.topic_alias_max + a - 1];
	char *copy = malloc(topic.len);

	free((void *)e->s);
	*e = (struct mqtt_str){ NULL, 0 };
	if (copy == NULL) { /* the client has it, we forget it: the topic goes in full again */
		broker_count(c->b, BROKER_C_NOMEM);
	} else {
		memcpy(copy, topic.s, topic.len);
		*e = (struct mqtt_str){ copy, topic.len };
	}
	c->alias_out_next = (uint16_t)((c->alias_out_next + 1) % c->alias_out_max);
}

static void
publish_props(const struct broker_conn *c, const struct broker_msg *m, const uint32_t *sub_id,
    struct mqtt_props *p)
{
	memset(p, 0, sizeof(*p));
	if (c->version != MQTT_V5)
		return;
	if (m->has_pfi)
		mqtt_props_set_u32(p, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, m->pfi);
	if (m->expiry_ms != 0) /* what is left of it, rounded up (expired ones are not sent) */
		mqtt_props_set_u32(p, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
		    m->expiry_ms > c->b->now_ms
			? (uint32_t)((m->expiry_ms - c->b->now_ms + 999) / 1000)
			: 1);
	if (m->content_type.len > 0)
		mqtt_props_set_str(p, MQTT_PROP_CONTENT_TYPE, m->content_type);
	if (m->response_topic.len > 0)
		mqtt_props_set_str(p, MQTT_PROP_RESPONSE_TOPIC, m->response_topic);
	if (m->correlation.len > 0)
		mqtt_props_set_str(p, MQTT_PROP_CORRELATION_DATA, m->correlation);
	p->user = m->user;
	p->n_user = m->n_user;
	if (m->n_sub_ids > 0) { /* one copy for several subscriptions: all their ids */
		p->sub_ids = broker_msg_sub_ids(m);
		p->n_sub_ids = m->n_sub_ids;
	} else if (*sub_id != 0) {
		p->sub_ids = sub_id;
		p->n_sub_ids = 1;
	}
}

int
conn_send_publish(struct broker_conn *c, const struct broker_msg *m, uint8_t qos, uint16_t pid,
    bool dup, bool retain, uint32_t sub_id)
{
	struct mqtt_publish p = { .qos = qos,
		.dup = dup,
		.retain = retain,
		.topic = m->topic,
		.packet_id = pid,
		.payload_len = m->payload_len };
	uint8_t stack[512], *hdr = stack;
	struct mqtt_iov iov[2];
	uint16_t alias;
	bool fresh;
	int len;

	if (!conn_alive(c))
		return -1;
	if (broker_msg_expired(m, c->b->now_ms)) { /* [MQTT-3.3.2-5]: first sends and resends */
		broker_count(c->b, BROKER_C_MSG_EXPIRED);
		return -1;
	}
	publish_props(c, m, &sub_id, &p.props);
	if ((alias = alias_out(c, m->topic, &fresh)) != 0) {
		mqtt_props_set_u32(&p.props, MQTT_PROP_TOPIC_ALIAS, alias);
		if (!fresh)
			p.topic = (struct mqtt_str){ "", 0 };
	}
	len = mqtt_encode_publish_header(stack, sizeof(stack), c->version, &p);
	if (len < 0)
		return -1;
	if ((uint64_t)len + m->payload_len > c->client_max_packet && c->client_max_packet != 0) {
		broker_count(c->b, BROKER_C_LIMIT_CLIENT_PACKET_SIZE);
		return -1;
	}
	if (conn_send_space(c) < (size_t)len + m->payload_len + BROKER_ANSWER_ROOM)
		return 0;
	if ((size_t)len > sizeof(stack)) {
		if ((hdr = malloc((size_t)len)) == NULL) {
			broker_count(c->b, BROKER_C_NOMEM);
			return 0;
		}
		mqtt_encode_publish_header(hdr, (size_t)len, c->version, &p);
	}
	iov[0] = (struct mqtt_iov){ hdr, (size_t)len };
	iov[1] = (struct mqtt_iov){ m->payload, m->payload_len };
	len = conn_send(c, iov, m->payload_len > 0 ? 2 : 1) ? 1 : -1;
	if (hdr != stack)
		free(hdr);
	if (len > 0)
		broker_count(c->b, BROKER_C_PUB_TX);
	if (len > 0 && fresh)
		alias_out_sent(c, alias, m->topic);
	return len;
}

/* Marked dying before anything is sent, so that a DISCONNECT that cannot be sent (a full
 * buffer) does not come back here through conn_send: a failed send never re-enters a close. */
void
conn_kill(struct broker_conn *c, uint8_t reason, enum broker_counter cnt)
{
	struct broker *b = c->b;
	bool disconnect = c->version == MQTT_V5 && c->state == CONN_ACTIVE && reason >= 0x80 &&
	    !c->transport_gone && !c->send_failed;

	if (!conn_alive(c))
		return;
	if (cnt != BROKER_C_COUNT)
		broker_count(b, cnt);
	c->state = CONN_DYING;
	c->close_reason = reason;
	if (b->conn_cursor == c)
		b->conn_cursor = c->next;
	list_del(&b->conns, c);
	list_add(&b->dying, c);
	if (c->hold != 0) {
		c->hold = 0;
		c->held_on = NULL;
		held_del(c);
	}
	if (c->s != NULL && c->s->conn == c && c->s->over_since_ms != 0)
		session_over_end(c->s); /* its publishers go on (the session may be offline) */
	if (disconnect) {
		struct mqtt_disconnect d = { .reason = reason };
		uint8_t buf[8];
		struct mqtt_iov one = { buf, 0 };
		int len = mqtt_encode_disconnect(buf, sizeof(buf), MQTT_V5, &d);

		one.len = len > 0 ? (size_t)len : 0;
		if (len > 0 && b->ops->send_space(c->ctx) >= one.len &&
		    b->ops->send(c->ctx, &one, 1) == 0)
			broker_count(b, BROKER_C_PKT_TX);
	}
}

/* Closing happens here, at the end of each call into the broker, never in the middle of a
 * fan-out: a will published now may kill more connections, so loop until none is left. */
void
broker_reap(struct broker *b)
{
	/* The state this call changed goes to the page cache before the transport puts what the
	 * call sent on the wire (after the call returns: broker_persist_open). */
	if (b->persist != NULL)
		persist_flush(b);
	while (b->dying != NULL) {
		struct broker_conn *c = b->dying;
		struct broker_session *s = c->s;

		list_del(&b->dying, c);
		wheel_del(b, c);
		b->n_conns--;
		broker_count(b, BROKER_C_CONN_CLOSED);
		if (c->n_uplink > 0) /* its acks awaiting durability are not sent */
			uplink_conn_gone(c);
		if (!c->transport_gone)
			b->ops->close(c->ctx, c->close_reason);
		if (s != NULL && s->conn == c) {
			if (!c->clean_disconnect)
				broker_count(b, BROKER_C_ABRUPT_CLOSE);
			session_offline(s, !c->clean_disconnect, b->now_ms);
		}
		conn_free(c);
	}
}

/* The input segments from byte off on, in b->iov (grown when a chain is longer than before). */
static size_t
segs_from(struct broker *b, const struct mqtt_iov *segs, size_t n, size_t off)
{
	size_t k = 0;

	if (n > b->iov_cap) {
		struct mqtt_iov *v = realloc(b->iov, n * sizeof(*v));

		if (v == NULL)
			return 0;
		b->iov = v;
		b->iov_cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		if (off >= segs[i].len) {
			off -= segs[i].len;
			continue;
		}
		b->iov[k++] = (struct mqtt_iov){ segs[i].base + off, segs[i].len - off };
		off = 0;
	}
	return k;
}

static enum broker_counter
err_counter(int err)
{
	switch (err < 0 ? -err : err) {
	case MQTT_E_RLEN_TOO_LONG:
		return BROKER_C_BAD_RLEN;
	case MQTT_E_PACKET_TOO_LARGE:
	case MQTT_E_SCRATCH_FULL:
		return BROKER_C_BAD_OVERSIZED;
	case MQTT_E_UTF8_MALFORMED:
	case MQTT_E_UTF8_SURROGATE:
	case MQTT_E_UTF8_NUL:
		return BROKER_C_BAD_UTF8;
	case MQTT_E_TOPIC_NAME_INVALID:
		return BROKER_C_BAD_TOPIC_WILDCARD;
	case MQTT_E_FILTER_INVALID:
	case MQTT_E_SHARE_INVALID:
		return BROKER_C_BAD_FILTER;
	case MQTT_E_SUBSCRIBE_EMPTY:
	case MQTT_E_UNSUBSCRIBE_EMPTY:
		return BROKER_C_BAD_SUBSCRIBE_EMPTY;
	case MQTT_E_TRUNCATED:
	case MQTT_E_TRAILING:
	case MQTT_E_PROP_LENGTH:
		return BROKER_C_BAD_TRUNCATED;
	case MQTT_E_NOT_CONNECTED:
		return BROKER_C_BAD_NOT_CONNECT;
	case MQTT_E_PROTOCOL_NAME:
	case MQTT_E_PROTOCOL_LEVEL:
		return BROKER_C_BAD_PROTOCOL_VERSION;
	case MQTT_E_CLIENT_ID_EMPTY:
		return BROKER_C_BAD_CLIENT_ID;
	case MQTT_E_TOPIC_ALIAS_ZERO:
		return BROKER_C_BAD_TOPIC_ALIAS;
	case MQTT_E_PACKET_ID_ZERO:
	case MQTT_E_WRONG_DIRECTION:
	case MQTT_E_PROP_DUPLICATE:
	case MQTT_E_PROP_VALUE:
		return BROKER_C_BAD_PROTOCOL;
	default:
		return BROKER_C_BAD_MALFORMED;
	}
}

static void
decode_failed(struct broker_conn *c, const struct mqtt_iov *segs, size_t n, int err)
{
	if (c->state == CONN_NEW) {
		handle_connect_error(c, segs, n, err);
		conn_kill(c, mqtt_err_reason(err), err_counter(err));
	} else {
		conn_kill(c, mqtt_err_reason(err), err_counter(err));
	}
}

static void
dispatch(
    struct broker_conn *c, const struct mqtt_packet *pkt, const struct mqtt_iov *segs, size_t n)
{
	uint8_t buf[4];

	if (c->state == CONN_NEW && pkt->type != MQTT_CONNECT) {
		conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_NOT_CONNECT);
		return;
	}
	switch (pkt->type) {
	case MQTT_CONNECT:
		if (c->state != CONN_NEW)
			conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_SECOND_CONNECT);
		else
			handle_connect(c, &pkt->connect);
		conn_timer_arm(c); /* keepalive from now on, no more connect timeout */
		break;
	case MQTT_PUBLISH:
		handle_publish(c, pkt, segs, n);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		handle_ack(c, pkt->type, &pkt->ack);
		break;
	case MQTT_SUBSCRIBE:
		handle_subscribe(c, &pkt->subscribe);
		break;
	case MQTT_UNSUBSCRIBE:
		handle_unsubscribe(c, &pkt->unsubscribe);
		break;
	case MQTT_PINGREQ:
		conn_send_buf(c, buf, mqtt_encode_pingresp(buf, sizeof(buf)));
		break;
	case MQTT_DISCONNECT:
		handle_disconnect(c, &pkt->disconnect);
		break;
	default: /* AUTH: no enhanced authentication was negotiated at CONNECT */
		conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_PROTOCOL);
		break;
	}
}

/* Bytes an answer to pkt may take (0: it has none): an ack is at most 6 bytes here, a SUBACK
 * or UNSUBACK one more per filter. Deliveries leave BROKER_ANSWER_ROOM free (conn_send_publish)
 * so that the answer to a PUBLISH routed to its own publisher still fits. */
static size_t
answer_room(const struct mqtt_packet *pkt)
{
	switch (pkt->type) {
	case MQTT_PUBLISH:
		return pkt->publish.qos > 0 ? BROKER_ANSWER_ROOM : 0;
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PINGREQ:
		return BROKER_ANSWER_ROOM;
	case MQTT_SUBSCRIBE:
		return BROKER_ANSWER_ROOM + pkt->subscribe.n_subs;
	case MQTT_UNSUBSCRIBE:
		return BROKER_ANSWER_ROOM + pkt->unsubscribe.n_filters;
	default:
		return 0;
	}
}

/* The input loop: whole packets, while nothing holds the connection's input. A packet whose
 * answer does not fit the send buffer is left unconsumed (decoding has no side effect) and the
 * input is held until the transport says it has room (broker_conn_writable): an acknowledgement
 * is never lost on an open connection. */
static void
input_loop(struct broker_conn *c, const struct mqtt_iov *segs, size_t n, size_t *consumed)
{
	struct broker *b = c->b;
	struct mqtt_packet pkt;

	while (conn_alive(c) && c->state != CONN_CLAIMING && c->hold == 0) {
		size_t k = segs_from(b, segs, n, *consumed);
		int rc;

		if (k == 0 && n > b->iov_cap) { /* no memory for the list: it cannot be read */
			conn_kill(c, MQTT_RC_IMPLEMENTATION_SPECIFIC, BROKER_C_NOMEM);
			break;
		}
		if (k == 0)
			break;
		rc = mqtt_decode(&c->dec, b->iov, k, &pkt);
		if (rc == 0)
			break;
		if (rc < 0) {
			decode_failed(c, b->iov, k, rc);
			break;
		}
		if (c->state == CONN_ACTIVE && conn_send_space(c) < answer_room(&pkt)) {
			conn_hold(c, HOLD_ACK_ROOM);
			break;
		}
		if (!uplink_admit(c, &pkt)) /* held (HOLD_UPLINK), the packet left unconsumed */
			break;
		*consumed += (size_t)rc;
		c->last_rx_ms = b->now_ms;
		broker_count(b, BROKER_C_PKT_RX);
		b->cnt[BROKER_C_BYTES_RX] += (uint64_t)rc;
		dispatch(c, &pkt, b->iov, k);
	}
}

int
broker_conn_input(
    struct broker_conn *c, const struct mqtt_iov *segs, size_t n, size_t *consumed, uint64_t now_ms)
{
	struct broker *b = c->b;
	int rc;

	b->now_ms = now_ms;
	*consumed = 0;
	if (b->n_xpend > 0)
		broker_xlcore_retry(b, now_ms);
	if ((c->hold & HOLD_ACK_ROOM) != 0 && conn_send_space(c) >= BROKER_ANSWER_ROOM)
		conn_release(c, HOLD_ACK_ROOM); /* tried again below; held again if still short */
	/* A CONNACK held for a session claim, or input held back: what follows stays with the
	 * transport (input_ready says when to pass it again). */
	b->cur_in = c;
	input_loop(c, segs, n, consumed);
	b->cur_in = NULL;
	rc = conn_alive(c) ? 0 : -EPIPE;
	if (rc == 0 && c->s != NULL)
		session_drain(c->s);
	broker_reap(b);
	return rc;
}

bool
broker_conn_held(const struct broker_conn *c)
{
	return c->state == CONN_CLAIMING || c->hold != 0;
}

void
broker_conn_writable(struct broker_conn *c, uint64_t now_ms)
{
	c->b->now_ms = now_ms;
	if (c->n_owed > 0) /* durable messages' acks first: they were due before */
		uplink_flush_owed(c);
	if (c->s != NULL)
		session_drain(c->s);
	/* after the deliveries, which leave room for answers (conn_send_publish) */
	if ((c->hold & HOLD_ACK_ROOM) != 0 && conn_send_space(c) >= BROKER_ANSWER_ROOM)
		conn_release(c, HOLD_ACK_ROOM);
	broker_reap(c->b);
}

void
broker_conn_closed(struct broker_conn *c, uint64_t now_ms)
{
	struct broker *b = c->b;

	b->now_ms = now_ms;
	c->transport_gone = true;
	conn_kill(c, 0, BROKER_C_COUNT);
	broker_reap(b);
}

/*
 * $SYS: the figures an instance publishes, in board order: the named ones, then every counter
 * (only the drop, limit, bad-input and error kinds are published, and only when not zero).
 */
enum sys_fig {
	SYS_CLIENTS,
	SYS_SESSIONS,
	SYS_SUBS,
	SYS_PUB_RX,
	SYS_PUB_TX,
	SYS_BYTES_RX,
	SYS_COUNTERS, /* then BROKER_C_COUNT counters */
	SYS_FIGS = SYS_COUNTERS + BROKER_C_COUNT
};

static const char *const sys_names[SYS_COUNTERS] = {
	[SYS_CLIENTS] = "clients/connected",
	[SYS_SESSIONS] = "sessions/count",
	[SYS_SUBS] = "subscriptions/count",
	[SYS_PUB_RX] = "messages/received",
	[SYS_PUB_TX] = "messages/sent",
	[SYS_BYTES_RX] = "bytes/received",
};

struct sys_slot {
	uint64_t v[SYS_FIGS];
} __attribute__((aligned(64)));

struct broker_sys_board {
	uint32_t n;
	struct sys_slot slot[];
};

struct broker_sys_board *
broker_sys_board_new(uint32_t n)
{
	struct broker_sys_board *board;

	if (n == 0 ||
	    posix_memalign(
		(void **)&board, 64, sizeof(*board) + (size_t)n * sizeof(struct sys_slot)) != 0)
		return NULL;
	memset(board, 0, sizeof(*board) + (size_t)n * sizeof(struct sys_slot));
	board->n = n;
	return board;
}

void
broker_sys_board_free(struct broker_sys_board *board)
{
	free(board);
}

void
broker_sys_attach(struct broker *b, struct broker_sys_board *board, uint32_t self)
{
	if (board != NULL && self < board->n) {
		b->sys_board = board;
		b->sys_self = self;
	}
}

static bool
sys_published(enum sys_fig f)
{
	enum broker_counter c;

	if (f < SYS_COUNTERS)
		return true;
	c = (enum broker_counter)(f - SYS_COUNTERS);
	return broker_counter_kind(c) != COUNTER_KIND_INFO &&
	    broker_counter_kind(c) != COUNTER_KIND_GAUGE;
}

/* Retained on every instance: a client sees the latest whichever lcore it landed on. */
static void
sys_publish(struct broker *b, bool own, const char *name, uint64_t val)
{
	char num[24], topic[128];
	struct mqtt_iov pl = { (const uint8_t *)num, 0 };
	struct mqtt_str t = { topic, 0 };
	struct broker_msg *m;
	bool matched;

	if (own)
		t.len = (uint16_t)snprintf(topic, sizeof(topic), "$SYS/broker/lcore/%u/%s",
		    b->sys_board != NULL ? b->sys_self : b->xself, name);
	else
		t.len = (uint16_t)snprintf(topic, sizeof(topic), "$SYS/broker/%s", name);
	pl.len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, val);
	if ((m = broker_msg_new(b, t, &pl, 1, NULL, b->now_ms)) == NULL)
		return;
	m->retain = true;
	broker_publish(b, m, &matched); /* to the other instances too */
	broker_msg_unref(m);
	broker_count(b, BROKER_C_SYS_PUBLISHED);
}

static void
sys_publish_figs(struct broker *b, bool own, const uint64_t *v)
{
	char name[80];

	for (int f = 0; f < SYS_FIGS; f++) {
		if (!sys_published((enum sys_fig)f))
			continue;
		if (f < SYS_COUNTERS) {
			sys_publish(b, own, sys_names[f], v[f]);
		} else if (v[f] != 0) {
			snprintf(
			    name, sizeof(name), "counters/%s", counter_names[f - SYS_COUNTERS]);
			sys_publish(b, own, name, v[f]);
		}
	}
}

static void
sys_tick(struct broker *b)
{
	struct broker_sys_board *board = b->sys_board;
	uint64_t v[SYS_FIGS], sum[SYS_FIGS];
	bool several = b->xn > 1 || (board != NULL && board->n > 1);

	if (b->cfg.sys_interval_ms == 0 || b->now_ms < b->next_sys_ms)
		return;
	b->next_sys_ms = b->now_ms + b->cfg.sys_interval_ms;
	v[SYS_CLIENTS] = b->n_conns;
	v[SYS_SESSIONS] = b->n_sessions;
	v[SYS_SUBS] = b->n_subs;
	v[SYS_PUB_RX] = b->cnt[BROKER_C_PUB_RX];
	v[SYS_PUB_TX] = b->cnt[BROKER_C_PUB_TX];
	v[SYS_BYTES_RX] = b->cnt[BROKER_C_BYTES_RX];
	memcpy(&v[SYS_COUNTERS], b->cnt, sizeof(b->cnt));
	/* the same everywhere: uptime, and retained messages (every instance holds them all) */
	if (!several || (board != NULL && b->sys_self == 0)) {
		sys_publish(b, false, "uptime", (b->now_ms - b->started_ms) / 1000);
		sys_publish(b, false, "retained messages/count", retain_count(b));
	}
	if (!several) {
		sys_publish_figs(b, false, v);
		return;
	}
	sys_publish(b, true, "uptime", (b->now_ms - b->started_ms) / 1000);
	sys_publish_figs(b, true, v);
	if (board == NULL)
		return;
	for (int f = 0; f < SYS_FIGS; f++)
		__atomic_store_n(&board->slot[b->sys_self].v[f], v[f], __ATOMIC_RELAXED);
	if (b->sys_self != 0)
		return;
	/* the others' figures are those of their last interval: at most one interval old */
	memset(sum, 0, sizeof(sum));
	for (uint32_t i = 0; i < board->n; i++)
		for (int f = 0; f < SYS_FIGS; f++)
			sum[f] += __atomic_load_n(&board->slot[i].v[f], __ATOMIC_RELAXED);
	sys_publish_figs(b, false, sum);
}

/*
 * What is not a deadline, a slice per tick: a whole pass takes BROKER_SCAN_TICKS ticks (about a
 * second), so 100,000 sessions cost a worker ~1/20 of a pass per tick instead of stalling its
 * loop (and its rx ring) for the whole list every 50 ms. Connections: queued messages past
 * their expiry, room that came back (keepalive and the connect timeout are in the wheel);
 * sessions: will delay and expiry, in seconds (a second late is within them).
 */
#define BROKER_SCAN_TICKS 20u
#define BROKER_SCAN_MIN   64u

static void
conn_timers(struct broker *b)
{
	uint32_t budget = b->n_conns / BROKER_SCAN_TICKS + BROKER_SCAN_MIN;
	struct broker_conn *c = b->conn_cursor != NULL ? b->conn_cursor : b->conns, *next;

	for (; c != NULL && budget > 0; c = next, budget--) {
		next = c->next;
		if (c->state == CONN_ACTIVE && c->s != NULL && c->s->over_since_ms != 0 &&
		    b->now_ms - c->s->over_since_ms >= b->cfg.stall_timeout_ms)
			conn_kill(c, MQTT_RC_QUOTA_EXCEEDED, BROKER_C_STALL_KILL);
		else if (c->state == CONN_ACTIVE && c->s != NULL)
			session_drain(c->s); /* message expiry, room that came back */
	}
	b->conn_cursor = c; /* NULL: the pass is over, the next starts at the head */
}

/* Sessions by client id hash bucket, whole buckets until the tick's budget of sessions is
 * spent (as for connections) or the pass is over: with few sessions a tick sees them all. */
static void
session_timers(struct broker *b, uint64_t now_ms)
{
	uint32_t budget = b->n_sessions / BROKER_SCAN_TICKS + BROKER_SCAN_MIN;

	for (uint32_t i = 0; i < b->sess_buckets && budget > 0; i++) {
		struct broker_session *s = b->sess_hash[b->sess_bucket];

		for (; s != NULL; s = b->sess_next, budget = budget > 0 ? budget - 1 : 0) {
			b->sess_next = s->hnext; /* session_tick may destroy s (and move this) */
			if (session_claim_pending(s) > 0 && now_ms >= s->cold->claim_deadline_ms)
				xlcore_claim_timeout(s); /* before session_tick: it may destroy s */
			session_tick(s, now_ms);
		}
		b->sess_next = NULL;
		b->sess_bucket = (b->sess_bucket + 1) & (b->sess_buckets - 1);
	}
}

void
broker_tick(struct broker *b, uint64_t now_ms)
{
	b->now_ms = now_ms;
	wheel_run(b);
	conn_timers(b);
	broker_reap(b);
	session_timers(b, now_ms);
	sys_tick(b);
	if (b->xops != NULL)
		xlcore_tick(b);
	broker_reap(b);
	if (b->persist != NULL)
		persist_tick(b, now_ms);
}

bool
broker_xlcore_paused(const struct broker *b)
{
	return b->n_over > 0;
}

void
broker_gauges_get(const struct broker *b, struct broker_gauges *g)
{
	*g = (struct broker_gauges){ .conns = b->n_conns,
		.sessions = b->n_sessions,
		.subscriptions = b->n_subs,
		.windows = b->n_windows,
		.qos2_tables = b->n_qos2_tables,
		.cold = b->n_cold,
		.queued = b->n_queued,
		.held = b->n_held,
		.xpending = b->n_xpend };
}

uint64_t
broker_counter_get(const struct broker *b, enum broker_counter c)
{
	return c < BROKER_C_COUNT ? b->cnt[c] : 0;
}

const char *
broker_counter_name(enum broker_counter c)
{
	return c < BROKER_C_COUNT ? counter_names[c] : "?";
}

const char *
broker_counter_desc(enum broker_counter c)
{
	return c < BROKER_C_COUNT ? counter_descs[c] : "?";
}

enum counter_kind
broker_counter_kind(enum broker_counter c)
{
	static const enum counter_kind kinds[] = {
#define BROKER_C(name, kind, desc) COUNTER_KIND_##kind,
#include "broker_counters.def"
#undef BROKER_C
	};

	return c < BROKER_C_COUNT ? kinds[c] : COUNTER_KIND_INFO;
}
