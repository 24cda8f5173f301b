/*
 * handle_connect.c: CONNECT (version, client id, clean start, session expiry, takeover of a
 * live connection with the same client id, will, keepalive, the client's Receive Maximum and
 * Maximum Packet Size), CONNACK with what the server allows, and DISCONNECT from the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

static void
send_connack(struct broker_conn *c, uint8_t version, bool present, uint8_t reason,
    const struct mqtt_props *props)
{
	struct mqtt_connack k = { .session_present = present, .reason = reason };
	uint8_t buf[512];
	int len;

	if (props != NULL && version == MQTT_V5)
		k.props = *props;
	len = mqtt_encode_connack(buf, sizeof(buf), version, &k);
	if (len > 0 && (size_t)len <= sizeof(buf))
		broker_conn_send_buf(c, buf, len);
}

/* The protocol level of a whole CONNECT the codec refused, read from its raw bytes: it tells
 * which CONNACK format the client understands. 0 when it cannot be read. */
static uint8_t
raw_level(const struct mqtt_iov *segs, size_t n)
{
	uint8_t h[16];
	size_t k = 0, at;

	for (size_t i = 0; i < n && k < sizeof(h); i++)
		for (size_t j = 0; j < segs[i].len && k < sizeof(h); j++)
			h[k++] = segs[i].base[j];
	for (at = 1; at < k && at < 5 && (h[at] & 0x80); at++)
		;
	at += 1 + 2 + 4; /* remaining length end, name length, "MQTT" */
	return at < k ? h[at] : 0;
}

void
broker_handle_connect_error(struct broker_conn *c, const struct mqtt_iov *segs, size_t n, int err)
{
	uint8_t level;
	int rc311;

	if (n == 0 || segs[0].len == 0 || (segs[0].base[0] >> 4) != MQTT_CONNECT)
		return; /* not a CONNECT at all: just close */
	level = raw_level(segs, n);
	if (level == MQTT_V5) {
		send_connack(c, MQTT_V5, false, mqtt_err_reason(err), NULL);
		return;
	}
	if ((rc311 = mqtt_err_connack_v311(err)) >= 0)
		send_connack(c, MQTT_V311, false, (uint8_t)rc311, NULL);
}

/* Refuse a CONNECT whose packet was valid: CONNACK with the reason, then close. */
static void
refuse(struct broker_conn *c, const struct mqtt_connect *k, uint8_t rc5, uint8_t rc311,
    enum broker_counter cnt)
{
	send_connack(c, k->version, false, k->version == MQTT_V5 ? rc5 : rc311, NULL);
	broker_conn_kill(c, rc5, cnt);
}

/* The old connection ends now so the session is free for the new one before this CONNECT
 * goes on. Its will goes as on any abrupt end, but the new connection is one to the same
 * session: within the Will Delay Interval that cancels the will (5.0 3.1.3.2.2), unless the
 * session ends here (clean start, or a session that ends with its connection). */
static void
take_over(struct broker_session *s, bool session_ends)
{
	struct broker_conn *old = s->conn;
	struct session_cold *k = s->cold;

	broker_count(s->b, BROKER_C_SESSION_TAKEOVER);
	broker_conn_kill(old, MQTT_RC_SESSION_TAKEN_OVER, BROKER_C_COUNT);
	old->s = NULL;
	s->conn = NULL;
	broker_count(s->b, BROKER_C_ABRUPT_CLOSE);
	if (session_ends || (k != NULL && k->will_delay_s == 0))
		broker_will_publish(s);
	else
		broker_will_clear(s);
}

static uint32_t
session_expiry(const struct broker_conn *c, const struct mqtt_connect *k)
{
	const struct broker_config *cfg = &c->b->cfg;
	uint32_t e;

	if (k->version != MQTT_V5)
		e = k->clean_start ? 0 : cfg->session_expiry_max_s;
	else
		e = mqtt_props_has(&k->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL)
		    ? k->props.v[MQTT_PROP_SESSION_EXPIRY_INTERVAL].u
		    : 0;
	return e > cfg->session_expiry_max_s ? cfg->session_expiry_max_s : e;
}

/* Find, replace or create the session; NULL (CONNACK sent, connection killed) on refusal. */
static struct broker_session *
attach(struct broker_conn *c, const struct mqtt_connect *k, struct mqtt_str id, bool *present)
{
	struct broker *b = c->b;
	struct broker_session *s = broker_session_find(b, id.s, id.len);
	/* A session that ends with its connection (3.1.1 clean session, 5.0 expiry 0) ends
	 * with the one taken over: it is not resumed, its subscriptions go with it. */
	bool ends = s != NULL && (k->clean_start || (s->conn != NULL && s->expiry_s == 0));

	if (s != NULL && s->conn != NULL)
		take_over(s, ends);
	if (ends) {
		broker_session_destroy(s);
		s = NULL;
	}
	*present = s != NULL;
	if (s != NULL) {
		broker_count(b, BROKER_C_SESSION_RESUMED);
		broker_will_clear(s); /* back before its will delay: the will is not sent */
		return s;
	}
	if (b->n_sessions >= b->cfg.max_sessions) {
		refuse(c, k, MQTT_RC_QUOTA_EXCEEDED, 3, BROKER_C_LIMIT_SESSIONS);
		return NULL;
	}
	if ((s = broker_session_create(b, id.s, id.len)) == NULL)
		refuse(c, k, MQTT_RC_SERVER_UNAVAILABLE, 3, BROKER_C_COUNT);
	return s;
}

static void
client_limits(struct broker_conn *c, const struct mqtt_connect *k)
{
	const struct mqtt_props *p = &k->props;

	if (k->version != MQTT_V5)
		return;
	if (mqtt_props_has(p, MQTT_PROP_RECEIVE_MAXIMUM))
		c->client_recv_max = (uint16_t)p->v[MQTT_PROP_RECEIVE_MAXIMUM].u;
	if (mqtt_props_has(p, MQTT_PROP_MAXIMUM_PACKET_SIZE))
		c->client_max_packet = p->v[MQTT_PROP_MAXIMUM_PACKET_SIZE].u;
	if (mqtt_props_has(p, MQTT_PROP_TOPIC_ALIAS_MAXIMUM)) {
		uint32_t a = p->v[MQTT_PROP_TOPIC_ALIAS_MAXIMUM].u;

		c->alias_out_max =
		    (uint16_t)(a < c->b->cfg.topic_alias_out_max ? a
								 : c->b->cfg.topic_alias_out_max);
	}
}

static void
connack_props(struct broker_conn *c, const struct mqtt_connect *k, struct mqtt_str id,
    bool assigned, uint32_t expiry, struct mqtt_props *p)
{
	const struct broker_config *cfg = &c->b->cfg;

	memset(p, 0, sizeof(*p));
	mqtt_props_set_u32(p, MQTT_PROP_RECEIVE_MAXIMUM, cfg->receive_max);
	if (cfg->max_packet_size < MQTT_MAX_PACKET_SIZE)
		mqtt_props_set_u32(p, MQTT_PROP_MAXIMUM_PACKET_SIZE, cfg->max_packet_size);
	if (cfg->topic_alias_max > 0)
		mqtt_props_set_u32(p, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, cfg->topic_alias_max);
	if (assigned)
		mqtt_props_set_str(p, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER, id);
	if (c->keepalive_s != k->keepalive_s)
		mqtt_props_set_u32(p, MQTT_PROP_SERVER_KEEP_ALIVE, c->keepalive_s);
	if (mqtt_props_has(&k->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL) &&
	    expiry != k->props.v[MQTT_PROP_SESSION_EXPIRY_INTERVAL].u)
		mqtt_props_set_u32(p, MQTT_PROP_SESSION_EXPIRY_INTERVAL, expiry);
}

static uint16_t
keepalive(struct broker_conn *c, const struct mqtt_connect *k)
{
	uint16_t max = c->b->cfg.keepalive_max_s;

	/* 3.1.1 cannot tell the client: keep its value. 5.0: Server Keep Alive. */
	if (k->version != MQTT_V5 || max == 0 || (k->keepalive_s != 0 && k->keepalive_s <= max))
		return k->keepalive_s;
	broker_count(c->b, BROKER_C_KEEPALIVE_LOWERED);
	return max;
}

/* Checks before any state changes; false when refused (CONNACK sent). */
static bool
connect_acceptable(struct broker_conn *c, const struct mqtt_connect *k)
{
	if (k->client_id.len > c->b->cfg.client_id_max) {
		refuse(c, k, MQTT_RC_CLIENT_ID_NOT_VALID, 2, BROKER_C_BAD_CLIENT_ID);
		return false;
	}
	if (k->has_will && topic_is_sys(k->will.topic)) { /* it would spoof the statistics */
		refuse(c, k, MQTT_RC_NOT_AUTHORIZED, 5, BROKER_C_BAD_SYS_PUBLISH);
		return false;
	}
	if (k->version == MQTT_V5 && mqtt_props_has(&k->props, MQTT_PROP_AUTHENTICATION_METHOD)) {
		refuse(c, k, MQTT_RC_BAD_AUTHENTICATION_METHOD, 5, BROKER_C_BAD_AUTH_METHOD);
		return false;
	}
	return true;
}

/* Keep the CONNACK (present 0) until the other lcores have answered the session claim. */
static bool
hold_connack(struct broker_conn *c, const struct mqtt_connect *k, const struct mqtt_props *props)
{
	struct session_cold *cold = c->s->cold; /* the claim is open: allocated */
	struct mqtt_connack ack = { .reason = 0 };
	uint8_t buf[512];
	int len;

	if (k->version == MQTT_V5)
		ack.props = *props;
	len = mqtt_encode_connack(buf, sizeof(buf), k->version, &ack);
	free(cold->connack); /* one held for an earlier connection that left during the claim */
	cold->connack = NULL;
	if (len <= 0 || (size_t)len > sizeof(buf) ||
	    (cold->connack = malloc((size_t)len)) == NULL) {
		refuse(c, k, MQTT_RC_SERVER_UNAVAILABLE, 3, BROKER_C_NOMEM);
		return false;
	}
	memcpy(cold->connack, buf, (size_t)len);
	cold->connack_len = (uint16_t)len;
	c->state = CONN_CLAIMING;
	broker_count(c->b, BROKER_C_XLCORE_CLAIM_WAIT);
	return true;
}

void
broker_connect_claim_done(struct broker_session *s)
{
	struct broker_conn *c = s->conn;
	struct session_cold *k = s->cold;
	uint8_t *connack;
	size_t at = 1, len;

	if (k == NULL)
		return;
	k->claim_pending = 0;
	connack = k->connack;
	len = k->connack_len;
	k->connack = NULL;
	if (c == NULL || c->state != CONN_CLAIMING || connack == NULL) {
		free(connack); /* the client left meanwhile: the session waits for it, restored */
		broker_session_cold_put(s);
		return;
	}
	/* The acknowledge flags follow the fixed header (type, remaining length as a varint);
	 * bit 0 is session present. */
	while (at < len && (connack[at] & 0x80))
		at++;
	if (++at < len && k->claim_found)
		connack[at] |= 1;
	broker_session_cold_put(s);
	c->state = CONN_ACTIVE;
	broker_conn_send_buf(c, connack, len);
	free(connack);
	broker_session_resume(s);
	if (broker_conn_alive(c) && c->b->ops->input_ready != NULL)
		c->b->ops->input_ready(c->ctx);
}

void
broker_handle_connect(struct broker_conn *c, const struct mqtt_connect *k)
{
	struct broker *b = c->b;
	struct mqtt_str id = k->client_id;
	struct broker_session *s;
	struct mqtt_props props;
	char gen[32];
	bool present, assigned = id.len == 0;
	uint32_t expiry;

	c->version = k->version;
	if (!connect_acceptable(c, k))
		return;
	if (assigned) {
		int n = snprintf(gen, sizeof(gen), "egw-%016llx",
		    (unsigned long long)++b->next_assigned_id ^ (b->started_ms << 20));
		id = (struct mqtt_str){ gen, (uint16_t)n };
		broker_count(b, BROKER_C_CLIENT_ID_ASSIGNED);
	}
	if ((s = attach(c, k, id, &present)) == NULL)
		return;
	expiry = session_expiry(c, k);
	s->expiry_s = expiry;
	s->expire_at_ms = 0;
	s->conn = c;
	c->s = s;
	broker_persist_session(s);
	c->keepalive_s = keepalive(c, k);
	client_limits(c, k);
	broker_will_store(s, k, b->now_ms);
	c->state = CONN_ACTIVE;
	broker_count(b, BROKER_C_CONNECTED);
	connack_props(c, k, id, assigned, expiry, &props);
	/* No session here for a client that wants one: the other lcores may have it. They all
	 * answer, the holder with the session, before the CONNACK says whether it is present.
	 * A session whose earlier claim is still open (its first connection was taken over
	 * here meanwhile) waits for that one. */
	broker_xlcore_claim(b, id.s, id.len, k->clean_start, b->now_ms,
	    !present && !k->clean_start && !assigned ? s : NULL);
	if (session_claim_pending(s) > 0) {
		s->cold->claim_found |= present;
		hold_connack(c, k, &props);
		return;
	}
	send_connack(c, k->version, present, 0, &props);
	broker_session_resume(s);
}

void
broker_handle_disconnect(struct broker_conn *c, const struct mqtt_disconnect *d)
{
	struct broker_session *s = c->s;

	broker_count(c->b, BROKER_C_DISCONNECT_RX);
	if (c->version == MQTT_V5 && s != NULL &&
	    mqtt_props_has(&d->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL)) {
		uint32_t e = d->props.v[MQTT_PROP_SESSION_EXPIRY_INTERVAL].u;

		if (s->expiry_s == 0 && e != 0) { /* spec 3.14.2.2.2 */
			broker_conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_PROTOCOL);
			return;
		}
		s->expiry_s =
		    e > c->b->cfg.session_expiry_max_s ? c->b->cfg.session_expiry_max_s : e;
		broker_persist_session(s);
	}
	/* [MQTT-3.14.4-3]: only a normal disconnection (0x00) discards the will; 0x04 asks
	 * for it, and an error (0x80 and up) is not a normal end either. */
	c->clean_disconnect = !(c->version == MQTT_V5 && d->reason != 0);
	broker_conn_kill(c, 0, BROKER_C_COUNT);
}
