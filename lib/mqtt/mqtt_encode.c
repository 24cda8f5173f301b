/*
 * mqtt_encode.c: packet encoders. Each checks its input against the rules the decoder enforces,
 * sizes the body with a counting pass, then writes fixed header and body into the caller's
 * buffer (or only returns the length when the buffer is too small). The PUBLISH header encoder
 * leaves the payload out so the broker can send it from where it already is.
 */
#include <string.h>

#include "mqtt_internal.h"
#include "mqtt_topic.h"

typedef void (*body_fn)(struct mqtt_wr *w, const void *arg, uint8_t version);

/*
 * Fixed header + body. extra counts payload bytes that the body does not write (PUBLISH header
 * only). Returns the bytes this call writes (or would write).
 */
static int
emit(uint8_t *buf, size_t cap, uint8_t b0, body_fn fn, const void *arg, uint8_t version,
    uint32_t extra)
{
	struct mqtt_wr w = { NULL, 0, 0 };
	size_t rlen, total;

	fn(&w, arg, version);
	rlen = w.pos + extra;
	if (rlen > MQTT_MAX_REMAINING_LEN)
		return -MQTT_E_PACKET_TOO_LARGE;
	total = 1 + mqtt_vbi_size((uint32_t)rlen) + w.pos;
	if (total > cap)
		return (int)total;
	w = (struct mqtt_wr){ buf, cap, 0 };
	mqtt_wr_u8(&w, b0);
	mqtt_wr_vbi(&w, (uint32_t)rlen);
	fn(&w, arg, version);
	return (int)total;
}

static int
check_version(uint8_t version)
{
	return version == MQTT_V311 || version == MQTT_V5 ? 0 : -MQTT_E_BAD_ARG;
}

static int
check_props(uint8_t version, const struct mqtt_props *p, uint32_t where)
{
	if (p == NULL)
		return 0;
	if (version != MQTT_V5)
		return mqtt_props_empty(p) ? 0 : -MQTT_E_PROP_NOT_ALLOWED;
	return mqtt_props_check(p, where);
}

static void
wr_props(struct mqtt_wr *w, const struct mqtt_props *p, uint8_t version)
{
	if (version != MQTT_V5)
		return;
	mqtt_wr_vbi(w, (uint32_t)mqtt_props_size(p));
	mqtt_props_write(w, p);
}

static int
utf8(struct mqtt_str s)
{
	return mqtt_utf8_check((const uint8_t *)s.s, s.len);
}

/* ---- CONNECT ---- */

static void
body_connect(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_connect *c = arg;
	uint8_t fl = (uint8_t)(c->clean_start << 1);

	if (c->has_will)
		fl |= (uint8_t)(0x04 | c->will.qos << 3 | c->will.retain << 5);
	fl |= (uint8_t)(c->has_password << 6 | c->has_username << 7);
	mqtt_wr_str(w, MQTT_STR("MQTT"));
	mqtt_wr_u8(w, version);
	mqtt_wr_u8(w, fl);
	mqtt_wr_u16(w, c->keepalive_s);
	wr_props(w, &c->props, version);
	mqtt_wr_str(w, c->client_id);
	if (c->has_will) {
		wr_props(w, &c->will.props, version);
		mqtt_wr_str(w, c->will.topic);
		mqtt_wr_str(w, c->will.payload);
	}
	if (c->has_username)
		mqtt_wr_str(w, c->username);
	if (c->has_password)
		mqtt_wr_str(w, c->password);
}

static int
check_connect(const struct mqtt_connect *c)
{
	int rc;

	if ((rc = check_version(c->version)) != 0 ||
	    (rc = check_props(c->version, &c->props, MQTT_TBIT(MQTT_CONNECT))) != 0 ||
	    (rc = utf8(c->client_id)) != 0)
		return rc;
	if (c->version == MQTT_V311 && c->client_id.len == 0 && !c->clean_start)
		return -MQTT_E_CLIENT_ID_EMPTY;
	if (c->version == MQTT_V311 && c->has_password && !c->has_username)
		return -MQTT_E_PASSWORD_NO_USER;
	if (c->has_username && (rc = utf8(c->username)) != 0)
		return rc;
	if (!c->has_will)
		return 0;
	if (c->will.qos > 2)
		return -MQTT_E_WILL_QOS;
	if ((rc = check_props(c->version, &c->will.props, MQTT_WILL_BIT)) != 0)
		return rc;
	return mqtt_topic_name_valid(c->will.topic.s, c->will.topic.len);
}

int
mqtt_encode_connect(uint8_t *buf, size_t cap, const struct mqtt_connect *c)
{
	int rc = check_connect(c);

	return rc != 0 ? rc : emit(buf, cap, MQTT_CONNECT << 4, body_connect, c, c->version, 0);
}

/* ---- CONNACK ---- */

static void
body_connack(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_connack *c = arg;

	mqtt_wr_u8(w, c->session_present);
	mqtt_wr_u8(w, c->reason);
	wr_props(w, &c->props, version);
}

int
mqtt_encode_connack(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_connack *c)
{
	int rc;

	if ((rc = check_version(version)) != 0 ||
	    (rc = check_props(version, &c->props, MQTT_TBIT(MQTT_CONNACK))) != 0)
		return rc;
	if (!mqtt_reason_valid(version, MQTT_CONNACK, c->reason))
		return -MQTT_E_REASON_INVALID;
	if (c->session_present && c->reason != 0)
		return -MQTT_E_SESSION_PRESENT;
	return emit(buf, cap, MQTT_CONNACK << 4, body_connack, c, version, 0);
}

/* ---- PUBLISH ---- */

static void
body_publish_header(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_publish *p = arg;

	mqtt_wr_str(w, p->topic);
	if (p->qos > 0)
		mqtt_wr_u16(w, p->packet_id);
	wr_props(w, &p->props, version);
}

static void
body_publish(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_publish *p = arg;

	body_publish_header(w, arg, version);
	mqtt_wr_bytes(w, p->payload, p->payload_len);
}

static int
check_publish(uint8_t version, const struct mqtt_publish *p)
{
	int rc;

	if ((rc = check_version(version)) != 0 ||
	    (rc = check_props(version, &p->props, MQTT_TBIT(MQTT_PUBLISH))) != 0)
		return rc;
	if (p->qos > 2)
		return -MQTT_E_QOS_INVALID;
	if (p->dup && p->qos == 0)
		return -MQTT_E_DUP_QOS0;
	if (p->qos > 0 && p->packet_id == 0)
		return -MQTT_E_PACKET_ID_ZERO;
	if (p->topic.len == 0)
		return version == MQTT_V5 && mqtt_props_has(&p->props, MQTT_PROP_TOPIC_ALIAS)
		    ? 0
		    : -MQTT_E_TOPIC_EMPTY;
	return mqtt_topic_name_valid(p->topic.s, p->topic.len);
}

static uint8_t
publish_b0(const struct mqtt_publish *p)
{
	return (uint8_t)(MQTT_PUBLISH << 4 | p->dup << 3 | p->qos << 1 | p->retain);
}

int
mqtt_encode_publish(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_publish *p)
{
	int rc = check_publish(version, p);

	if (rc != 0)
		return rc;
	if (p->payload == NULL && p->payload_len > 0)
		return -MQTT_E_BAD_ARG; /* a decoded payload in pieces: use the header encoder */
	if (p->payload_len > MQTT_MAX_REMAINING_LEN)
		return -MQTT_E_PACKET_TOO_LARGE;
	return emit(buf, cap, publish_b0(p), body_publish, p, version, 0);
}

int
mqtt_encode_publish_header(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_publish *p)
{
	int rc = check_publish(version, p);

	if (rc != 0)
		return rc;
	if (p->payload_len > MQTT_MAX_REMAINING_LEN)
		return -MQTT_E_PACKET_TOO_LARGE;
	return emit(buf, cap, publish_b0(p), body_publish_header, p, version, p->payload_len);
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP ---- */

static void
body_ack(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_ack *a = arg;
	bool no_props = mqtt_props_empty(&a->props);

	mqtt_wr_u16(w, a->packet_id);
	if (version != MQTT_V5 || (a->reason == 0 && no_props))
		return;
	mqtt_wr_u8(w, a->reason);
	if (!no_props)
		wr_props(w, &a->props, version);
}

int
mqtt_encode_ack(
    uint8_t *buf, size_t cap, uint8_t version, enum mqtt_type type, const struct mqtt_ack *a)
{
	int rc;

	if (type < MQTT_PUBACK || type > MQTT_PUBCOMP)
		return -MQTT_E_BAD_ARG;
	if ((rc = check_version(version)) != 0 ||
	    (rc = check_props(version, &a->props, MQTT_TBIT(type))) != 0)
		return rc;
	if (a->packet_id == 0)
		return -MQTT_E_PACKET_ID_ZERO;
	if (!mqtt_reason_valid(version, type, a->reason))
		return -MQTT_E_REASON_INVALID;
	return emit(buf, cap, (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0)), body_ack, a,
	    version, 0);
}

/* ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK ---- */

static void
body_subscribe(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_subscribe *s = arg;

	mqtt_wr_u16(w, s->packet_id);
	wr_props(w, &s->props, version);
	for (uint16_t i = 0; i < s->n_subs; i++) {
		const struct mqtt_subscription *e = &s->subs[i];

		mqtt_wr_str(w, e->filter);
		mqtt_wr_u8(w,
		    (uint8_t)(e->qos | e->no_local << 2 | e->retain_as_published << 3 |
			e->retain_handling << 4));
	}
}

int
mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_subscribe *s)
{
	int rc;

	if ((rc = check_version(version)) != 0 ||
	    (rc = check_props(version, &s->props, MQTT_TBIT(MQTT_SUBSCRIBE))) != 0)
		return rc;
	if (s->packet_id == 0)
		return -MQTT_E_PACKET_ID_ZERO;
	if (s->n_subs == 0)
		return -MQTT_E_SUBSCRIBE_EMPTY;
	for (uint16_t i = 0; i < s->n_subs; i++)
		if ((rc = mqtt_sub_check(version, &s->subs[i])) != 0)
			return rc;
	return emit(buf, cap, MQTT_SUBSCRIBE << 4 | 2, body_subscribe, s, version, 0);
}

static void
body_suback(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_suback *s = arg;

	mqtt_wr_u16(w, s->packet_id);
	wr_props(w, &s->props, version);
	mqtt_wr_bytes(w, s->reasons, s->n_reasons);
}

static int
check_suback(uint8_t version, enum mqtt_type type, const struct mqtt_suback *s)
{
	int rc;

	if ((rc = check_version(version)) != 0 ||
	    (rc = check_props(version, &s->props, MQTT_TBIT(type))) != 0)
		return rc;
	if (s->packet_id == 0)
		return -MQTT_E_PACKET_ID_ZERO;
	if (type == MQTT_UNSUBACK && version != MQTT_V5)
		return s->n_reasons == 0 ? 0 : -MQTT_E_BAD_ARG;
	if (s->n_reasons == 0)
		return -MQTT_E_ACK_EMPTY;
	for (uint16_t i = 0; i < s->n_reasons; i++)
		if (!mqtt_reason_valid(version, type, s->reasons[i]))
			return -MQTT_E_REASON_INVALID;
	return 0;
}

int
mqtt_encode_suback(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_suback *s)
{
	int rc = check_suback(version, MQTT_SUBACK, s);

	return rc != 0 ? rc : emit(buf, cap, MQTT_SUBACK << 4, body_suback, s, version, 0);
}

int
mqtt_encode_unsuback(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_suback *s)
{
	int rc = check_suback(version, MQTT_UNSUBACK, s);

	return rc != 0 ? rc : emit(buf, cap, MQTT_UNSUBACK << 4, body_suback, s, version, 0);
}

static void
body_unsubscribe(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_unsubscribe *u = arg;

	mqtt_wr_u16(w, u->packet_id);
	wr_props(w, &u->props, version);
	for (uint16_t i = 0; i < u->n_filters; i++)
		mqtt_wr_str(w, u->filters[i]);
}

int
mqtt_encode_unsubscribe(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_unsubscribe *u)
{
	int rc;

	if ((rc = check_version(version)) != 0 ||
	    (rc = check_props(version, &u->props, MQTT_TBIT(MQTT_UNSUBSCRIBE))) != 0)
		return rc;
	if (u->packet_id == 0)
		return -MQTT_E_PACKET_ID_ZERO;
	if (u->n_filters == 0)
		return -MQTT_E_UNSUBSCRIBE_EMPTY;
	for (uint16_t i = 0; i < u->n_filters; i++)
		if ((rc = mqtt_topic_filter_valid(u->filters[i].s, u->filters[i].len)) != 0)
			return rc;
	return emit(buf, cap, MQTT_UNSUBSCRIBE << 4 | 2, body_unsubscribe, u, version, 0);
}

/* ---- PINGREQ, PINGRESP, DISCONNECT, AUTH ---- */

static void
body_empty(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	(void)w;
	(void)arg;
	(void)version;
}

int
mqtt_encode_pingreq(uint8_t *buf, size_t cap)
{
	return emit(buf, cap, MQTT_PINGREQ << 4, body_empty, NULL, MQTT_V311, 0);
}

int
mqtt_encode_pingresp(uint8_t *buf, size_t cap)
{
	return emit(buf, cap, MQTT_PINGRESP << 4, body_empty, NULL, MQTT_V311, 0);
}

/* 5.0 leaves out what is default: no properties, then reason 0. */
static void
body_disconnect(struct mqtt_wr *w, const void *arg, uint8_t version)
{
	const struct mqtt_disconnect *d = arg;
	bool no_props = mqtt_props_empty(&d->props);

	if (version != MQTT_V5 || (d->reason == 0 && no_props))
		return;
	mqtt_wr_u8(w, d->reason);
	if (!no_props)
		wr_props(w, &d->props, version);
}

static int
encode_reason_pkt(
    uint8_t *buf, size_t cap, uint8_t version, enum mqtt_type type, const struct mqtt_disconnect *d)
{
	static const struct mqtt_disconnect none;
	int rc;

	if (d == NULL)
		d = &none;
	if ((rc = check_version(version)) != 0 ||
	    (rc = check_props(version, &d->props, MQTT_TBIT(type))) != 0)
		return rc;
	if (!mqtt_reason_valid(version, type, d->reason))
		return -MQTT_E_REASON_INVALID;
	return emit(buf, cap, (uint8_t)(type << 4), body_disconnect, d, version, 0);
}

int
mqtt_encode_disconnect(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_disconnect *d)
{
	return encode_reason_pkt(buf, cap, version, MQTT_DISCONNECT, d);
}

int
mqtt_encode_auth(uint8_t *buf, size_t cap, const struct mqtt_disconnect *a)
{
	return encode_reason_pkt(buf, cap, MQTT_V5, MQTT_AUTH, a);
}

int
mqtt_encode(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_packet *pkt)
{
	switch (pkt->type) {
	case MQTT_CONNECT:
		return mqtt_encode_connect(buf, cap, &pkt->connect);
	case MQTT_CONNACK:
		return mqtt_encode_connack(buf, cap, version, &pkt->connack);
	case MQTT_PUBLISH:
		return mqtt_encode_publish(buf, cap, version, &pkt->publish);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return mqtt_encode_ack(buf, cap, version, pkt->type, &pkt->ack);
	case MQTT_SUBSCRIBE:
		return mqtt_encode_subscribe(buf, cap, version, &pkt->subscribe);
	case MQTT_SUBACK:
		return mqtt_encode_suback(buf, cap, version, &pkt->suback);
	case MQTT_UNSUBSCRIBE:
		return mqtt_encode_unsubscribe(buf, cap, version, &pkt->unsubscribe);
	case MQTT_UNSUBACK:
		return mqtt_encode_unsuback(buf, cap, version, &pkt->suback);
	case MQTT_PINGREQ:
		return mqtt_encode_pingreq(buf, cap);
	case MQTT_PINGRESP:
		return mqtt_encode_pingresp(buf, cap);
	case MQTT_DISCONNECT:
		return mqtt_encode_disconnect(buf, cap, version, &pkt->disconnect);
	case MQTT_AUTH:
		return version == MQTT_V5 ? mqtt_encode_auth(buf, cap, &pkt->disconnect)
					  : -MQTT_E_TYPE_RESERVED;
	default:
		return -MQTT_E_TYPE_RESERVED;
	}
}
