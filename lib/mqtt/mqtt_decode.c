/*
 * mqtt_decode.c: packet decoder. mqtt_peek() frames a packet from its fixed header;
 * mqtt_decode() checks the fixed header against the per-type table (flags, direction, version)
 * and hands the body to one decoder per packet type, each applying the spec's rules in wire order.
 */
#include <string.h>

#include "mqtt_internal.h"
#include "mqtt_topic.h"

#define C2S       1u /* sent by clients: decoded by a server */
#define S2C       2u
#define ANY_FLAGS 0xFF

static const struct {
	uint8_t flags; /* required low nibble, or ANY_FLAGS */
	uint8_t dir_v5, dir_v311;
} type_tab[16] = {
	[MQTT_CONNECT] = { 0, C2S, C2S },
	[MQTT_CONNACK] = { 0, S2C, S2C },
	[MQTT_PUBLISH] = { ANY_FLAGS, C2S | S2C, C2S | S2C },
	[MQTT_PUBACK] = { 0, C2S | S2C, C2S | S2C },
	[MQTT_PUBREC] = { 0, C2S | S2C, C2S | S2C },
	[MQTT_PUBREL] = { 2, C2S | S2C, C2S | S2C },
	[MQTT_PUBCOMP] = { 0, C2S | S2C, C2S | S2C },
	[MQTT_SUBSCRIBE] = { 2, C2S, C2S },
	[MQTT_SUBACK] = { 0, S2C, S2C },
	[MQTT_UNSUBSCRIBE] = { 2, C2S, C2S },
	[MQTT_UNSUBACK] = { 0, S2C, S2C },
	[MQTT_PINGREQ] = { 0, C2S, C2S },
	[MQTT_PINGRESP] = { 0, S2C, S2C },
	[MQTT_DISCONNECT] = { 0, C2S | S2C, C2S },
	[MQTT_AUTH] = { 0, C2S | S2C, 0 },
};

struct fixed_hdr {
	uint8_t b0;
	uint8_t hdr_len;
	bool nonminimal;
	uint32_t rlen;
};

/* Up to 5 header bytes gathered across segments; returns how many there were. */
static size_t
gather(const struct mqtt_iov *iov, size_t niov, uint8_t *h, size_t *avail)
{
	size_t n = 0;

	*avail = 0;
	for (size_t i = 0; i < niov; i++) {
		for (size_t k = 0; k < iov[i].len && n < 5; k++)
			h[n++] = iov[i].base[k];
		*avail += iov[i].len;
	}
	return n;
}

/* 1 with *fh filled, 0 when the header is incomplete, -MQTT_E_RLEN_TOO_LONG. */
static int
parse_fixed(const uint8_t *h, size_t n, struct fixed_hdr *fh)
{
	uint32_t v = 0;

	for (size_t i = 1; i <= 4; i++) {
		if (i >= n)
			return 0;
		v |= (uint32_t)(h[i] & 0x7F) << (7 * (i - 1));
		if (!(h[i] & 0x80)) {
			fh->b0 = h[0];
			fh->hdr_len = (uint8_t)(i + 1);
			fh->nonminimal = i > 1 && h[i] == 0;
			fh->rlen = v;
			return 1;
		}
	}
	return -MQTT_E_RLEN_TOO_LONG;
}

int
mqtt_peek(const struct mqtt_iov *iov, size_t niov, uint32_t max_packet_size, uint32_t *pkt_len)
{
	struct fixed_hdr fh;
	uint8_t h[5];
	size_t avail, n = gather(iov, niov, h, &avail);
	uint32_t total;
	int rc;

	*pkt_len = 0;
	if ((rc = parse_fixed(h, n, &fh)) <= 0)
		return rc;
	total = fh.hdr_len + fh.rlen;
	if (max_packet_size != 0 && total > max_packet_size)
		return -MQTT_E_PACKET_TOO_LARGE;
	*pkt_len = total;
	return avail >= total;
}

void
mqtt_decoder_init(struct mqtt_decoder *d, enum mqtt_role role, uint8_t version,
    uint32_t max_packet_size, uint8_t *scratch, uint32_t scratch_len)
{
	memset(d, 0, sizeof(*d));
	d->role = role;
	d->version = version;
	d->max_packet_size = max_packet_size;
	d->scratch = scratch;
	d->scratch_len = scratch_len;
}

static int
decode_props(const struct mqtt_decoder *d, struct mqtt_cur *c, uint32_t where, struct mqtt_props *p)
{
	if (d->version != MQTT_V5) {
		memset(p, 0, sizeof(*p));
		return 0;
	}
	return mqtt_props_decode(c, where, p);
}

static int
decode_pid(struct mqtt_cur *c, uint16_t *pid)
{
	int rc = mqtt_cur_u16(c, pid);

	return rc != 0 ? rc : *pid == 0 ? -MQTT_E_PACKET_ID_ZERO : 0;
}

static bool
str_is(struct mqtt_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.s, lit, s.len) == 0;
}

/* Protocol name and level, first: a 3.1.1 server answers a bad level with CONNACK 0x01. */
static int
decode_protocol(struct mqtt_cur *c, const struct fixed_hdr *fh, uint8_t *level)
{
	struct mqtt_str name;
	int rc;

	if ((rc = mqtt_cur_str(c, &name)) != 0 || (rc = mqtt_cur_u8(c, level)) != 0)
		return rc;
	if (str_is(name, "MQIsdp") && *level == 3)
		return -MQTT_E_PROTOCOL_LEVEL; /* MQTT 3.1: not spoken */
	if (!str_is(name, "MQTT"))
		return -MQTT_E_PROTOCOL_NAME;
	if (*level != MQTT_V311 && *level != MQTT_V5)
		return -MQTT_E_PROTOCOL_LEVEL;
	if (*level == MQTT_V5 && fh->nonminimal)
		return -MQTT_E_RLEN_NONMINIMAL;
	return 0;
}

static int
decode_will(struct mqtt_decoder *d, struct mqtt_cur *c, struct mqtt_will *w)
{
	int rc;

	if ((rc = decode_props(d, c, MQTT_WILL_BIT, &w->props)) != 0 ||
	    (rc = mqtt_cur_bin(c, &w->topic)) != 0)
		return rc;
	if ((rc = mqtt_topic_name_valid(w->topic.s, w->topic.len)) != 0)
		return rc;
	return mqtt_cur_bin(c, &w->payload);
}

static int
decode_connect(
    struct mqtt_decoder *d, struct mqtt_cur *c, const struct fixed_hdr *fh, struct mqtt_connect *k)
{
	uint8_t level, fl;
	int rc;

	memset(k, 0, sizeof(*k));
	if ((rc = decode_protocol(c, fh, &level)) != 0 || (rc = mqtt_cur_u8(c, &fl)) != 0)
		return rc;
	if (fl & 0x01)
		return -MQTT_E_CONNECT_RESERVED;
	k->version = level;
	k->clean_start = fl & 0x02;
	k->has_will = fl & 0x04;
	k->will.qos = (fl >> 3) & 3;
	k->will.retain = fl & 0x20;
	k->has_password = fl & 0x40;
	k->has_username = fl & 0x80;
	if (!k->has_will && (k->will.qos != 0 || k->will.retain))
		return -MQTT_E_WILL_FLAGS;
	if (k->will.qos == 3)
		return -MQTT_E_WILL_QOS;
	if (level == MQTT_V311 && k->has_password && !k->has_username)
		return -MQTT_E_PASSWORD_NO_USER;
	d->version = level; /* properties follow the CONNECT's own version */
	if ((rc = mqtt_cur_u16(c, &k->keepalive_s)) != 0 ||
	    (rc = decode_props(d, c, MQTT_TBIT(MQTT_CONNECT), &k->props)) != 0 ||
	    (rc = mqtt_cur_str(c, &k->client_id)) != 0)
		return rc;
	if (level == MQTT_V311 && k->client_id.len == 0 && !k->clean_start)
		return -MQTT_E_CLIENT_ID_EMPTY;
	if (k->has_will && (rc = decode_will(d, c, &k->will)) != 0)
		return rc;
	if (k->has_username && (rc = mqtt_cur_str(c, &k->username)) != 0)
		return rc;
	if (k->has_password && (rc = mqtt_cur_bin(c, &k->password)) != 0)
		return rc;
	return 0;
}

static int
decode_connack(struct mqtt_decoder *d, struct mqtt_cur *c, struct mqtt_connack *k)
{
	uint8_t fl;
	int rc;

	memset(k, 0, sizeof(*k));
	if ((rc = mqtt_cur_u8(c, &fl)) != 0 || (rc = mqtt_cur_u8(c, &k->reason)) != 0)
		return rc;
	if (fl & 0xFE)
		return -MQTT_E_CONNACK_FLAGS;
	k->session_present = fl & 1;
	if (!mqtt_reason_valid(d->version, MQTT_CONNACK, k->reason))
		return -MQTT_E_REASON_INVALID;
	if (k->session_present && k->reason != 0)
		return -MQTT_E_SESSION_PRESENT;
	return decode_props(d, c, MQTT_TBIT(MQTT_CONNACK), &k->props);
}

static int
decode_publish(struct mqtt_decoder *d, struct mqtt_cur *c, uint8_t flags, struct mqtt_publish *p)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->qos = (flags >> 1) & 3;
	p->dup = flags & 8;
	p->retain = flags & 1;
	if (p->qos == 3)
		return -MQTT_E_QOS_INVALID;
	if (p->dup && p->qos == 0)
		return -MQTT_E_DUP_QOS0;
	/* UTF-8 is checked with the topic rules below (once, not twice). */
	if ((rc = mqtt_cur_bin(c, &p->topic)) != 0)
		return rc;
	if (p->qos > 0 && (rc = decode_pid(c, &p->packet_id)) != 0)
		return rc;
	if ((rc = decode_props(d, c, MQTT_TBIT(MQTT_PUBLISH), &p->props)) != 0)
		return rc;
	if (p->topic.len == 0) {
		if (d->version != MQTT_V5 || !mqtt_props_has(&p->props, MQTT_PROP_TOPIC_ALIAS))
			return -MQTT_E_TOPIC_EMPTY;
	} else if ((rc = mqtt_topic_name_valid(p->topic.s, p->topic.len)) != 0) {
		return rc;
	}
	if (d->role == MQTT_ROLE_SERVER && p->props.n_sub_ids > 0)
		return -MQTT_E_SUB_ID_FROM_CLIENT;
	mqtt_cur_rest(c, &p->payload_at, &p->payload);
	p->payload_len = p->payload_at.len;
	return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP: 5.0 may leave out the reason (0) and the properties. */
static int
decode_ack(struct mqtt_decoder *d, struct mqtt_cur *c, enum mqtt_type type, struct mqtt_ack *a)
{
	int rc;

	memset(a, 0, sizeof(*a));
	if ((rc = decode_pid(c, &a->packet_id)) != 0)
		return rc;
	if (d->version != MQTT_V5 || c->left == 0)
		return 0;
	if ((rc = mqtt_cur_u8(c, &a->reason)) != 0)
		return rc;
	if (!mqtt_reason_valid(d->version, type, a->reason))
		return -MQTT_E_REASON_INVALID;
	return c->left == 0 ? 0 : decode_props(d, c, MQTT_TBIT(type), &a->props);
}

static int
sub_options(uint8_t version, uint8_t o, struct mqtt_subscription *s)
{
	if (o & (version == MQTT_V5 ? 0xC0 : 0xFC))
		return -MQTT_E_SUB_OPTS_RESERVED;
	s->qos = o & 3;
	s->no_local = o & 4;
	s->retain_as_published = o & 8;
	s->retain_handling = (o >> 4) & 3;
	return 0;
}

/* Rules on one subscription, shared with the SUBSCRIBE encoder. */
int
mqtt_sub_check(uint8_t version, const struct mqtt_subscription *s)
{
	struct mqtt_str group, inner;
	int rc;

	if (version != MQTT_V5 && (s->no_local || s->retain_as_published || s->retain_handling))
		return -MQTT_E_SUB_OPTS_RESERVED;
	if (s->qos > 2)
		return -MQTT_E_SUB_QOS_INVALID;
	if (s->retain_handling > 2)
		return -MQTT_E_RETAIN_HANDLING;
	if ((rc = mqtt_topic_filter_valid(s->filter.s, s->filter.len)) != 0)
		return rc;
	if (version == MQTT_V5 && s->no_local &&
	    mqtt_topic_share_parse(s->filter.s, s->filter.len, &group, &inner) == 1)
		return -MQTT_E_NO_LOCAL_SHARED;
	return 0;
}

/* Walk the SUBSCRIBE payload (contiguous): count and check, or fill out[]. */
static int
walk_subs(uint8_t version, const uint8_t *blk, uint32_t len, struct mqtt_scratch *sc,
    struct mqtt_subscription *out, uint32_t *n)
{
	struct mqtt_iov one = { blk, len };
	struct mqtt_cur c;
	int rc;

	mqtt_cur_init(&c, &one, 1, sc);
	c.left = len;
	for (*n = 0; c.left > 0; (*n)++) {
		struct mqtt_subscription s = { 0 };
		uint8_t o;

		if ((rc = mqtt_cur_str(&c, &s.filter)) != 0 || (rc = mqtt_cur_u8(&c, &o)) != 0 ||
		    (rc = sub_options(version, o, &s)) != 0 ||
		    (rc = mqtt_sub_check(version, &s)) != 0)
			return rc;
		if (out != NULL)
			out[*n] = s;
	}
	return 0;
}

static int
decode_subscribe(struct mqtt_decoder *d, struct mqtt_cur *c, struct mqtt_subscribe *s)
{
	struct mqtt_subscription *arr;
	const uint8_t *blk;
	uint32_t len, n;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = decode_pid(c, &s->packet_id)) != 0 ||
	    (rc = decode_props(d, c, MQTT_TBIT(MQTT_SUBSCRIBE), &s->props)) != 0)
		return rc;
	len = c->left;
	if ((rc = mqtt_cur_bytes(c, len, &blk)) != 0 ||
	    (rc = walk_subs(d->version, blk, len, c->sc, NULL, &n)) != 0)
		return rc;
	if (n == 0)
		return -MQTT_E_SUBSCRIBE_EMPTY;
	if (n > UINT16_MAX || (arr = mqtt_scratch_alloc(c->sc, n * sizeof(*arr))) == NULL)
		return -MQTT_E_SCRATCH_FULL;
	walk_subs(d->version, blk, len, c->sc, arr, &n);
	s->subs = arr;
	s->n_subs = (uint16_t)n;
	return 0;
}

static int
walk_filters(
    const uint8_t *blk, uint32_t len, struct mqtt_scratch *sc, struct mqtt_str *out, uint32_t *n)
{
	struct mqtt_iov one = { blk, len };
	struct mqtt_cur c;
	int rc;

	mqtt_cur_init(&c, &one, 1, sc);
	c.left = len;
	for (*n = 0; c.left > 0; (*n)++) {
		struct mqtt_str f;

		if ((rc = mqtt_cur_str(&c, &f)) != 0 ||
		    (rc = mqtt_topic_filter_valid(f.s, f.len)) != 0)
			return rc;
		if (out != NULL)
			out[*n] = f;
	}
	return 0;
}

static int
decode_unsubscribe(struct mqtt_decoder *d, struct mqtt_cur *c, struct mqtt_unsubscribe *u)
{
	struct mqtt_str *arr;
	const uint8_t *blk;
	uint32_t len, n;
	int rc;

	memset(u, 0, sizeof(*u));
	if ((rc = decode_pid(c, &u->packet_id)) != 0 ||
	    (rc = decode_props(d, c, MQTT_TBIT(MQTT_UNSUBSCRIBE), &u->props)) != 0)
		return rc;
	len = c->left;
	if ((rc = mqtt_cur_bytes(c, len, &blk)) != 0 ||
	    (rc = walk_filters(blk, len, c->sc, NULL, &n)) != 0)
		return rc;
	if (n == 0)
		return -MQTT_E_UNSUBSCRIBE_EMPTY;
	if (n > UINT16_MAX || (arr = mqtt_scratch_alloc(c->sc, n * sizeof(*arr))) == NULL)
		return -MQTT_E_SCRATCH_FULL;
	walk_filters(blk, len, c->sc, arr, &n);
	u->filters = arr;
	u->n_filters = (uint16_t)n;
	return 0;
}

/* SUBACK, and UNSUBACK (reason codes only in 5.0). */
static int
decode_suback(
    struct mqtt_decoder *d, struct mqtt_cur *c, enum mqtt_type type, struct mqtt_suback *s)
{
	const uint8_t *blk;
	uint32_t len;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = decode_pid(c, &s->packet_id)) != 0 ||
	    (rc = decode_props(d, c, MQTT_TBIT(type), &s->props)) != 0)
		return rc;
	if (type == MQTT_UNSUBACK && d->version != MQTT_V5)
		return 0;
	len = c->left;
	if (len == 0)
		return -MQTT_E_ACK_EMPTY;
	if (len > UINT16_MAX)
		return -MQTT_E_SCRATCH_FULL;
	if ((rc = mqtt_cur_bytes(c, len, &blk)) != 0)
		return rc;
	for (uint32_t i = 0; i < len; i++)
		if (!mqtt_reason_valid(d->version, type, blk[i]))
			return -MQTT_E_REASON_INVALID;
	s->reasons = blk;
	s->n_reasons = (uint16_t)len;
	return 0;
}

/* DISCONNECT and AUTH: in 5.0 an empty body means reason 0 without properties. */
static int
decode_disconnect(
    struct mqtt_decoder *d, struct mqtt_cur *c, enum mqtt_type type, struct mqtt_disconnect *x)
{
	int rc;

	memset(x, 0, sizeof(*x));
	if (d->version != MQTT_V5 || c->left == 0)
		return 0;
	if ((rc = mqtt_cur_u8(c, &x->reason)) != 0)
		return rc;
	if (!mqtt_reason_valid(d->version, type, x->reason))
		return -MQTT_E_REASON_INVALID;
	return c->left == 0 ? 0 : decode_props(d, c, MQTT_TBIT(type), &x->props);
}

static int
decode_body(
    struct mqtt_decoder *d, struct mqtt_cur *c, const struct fixed_hdr *fh, struct mqtt_packet *pkt)
{
	switch (pkt->type) {
	case MQTT_CONNECT:
		return decode_connect(d, c, fh, &pkt->connect);
	case MQTT_CONNACK:
		return decode_connack(d, c, &pkt->connack);
	case MQTT_PUBLISH:
		return decode_publish(d, c, pkt->flags, &pkt->publish);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return decode_ack(d, c, pkt->type, &pkt->ack);
	case MQTT_SUBSCRIBE:
		return decode_subscribe(d, c, &pkt->subscribe);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return decode_suback(d, c, pkt->type, &pkt->suback);
	case MQTT_UNSUBSCRIBE:
		return decode_unsubscribe(d, c, &pkt->unsubscribe);
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		return decode_disconnect(d, c, pkt->type, &pkt->disconnect);
	default:
		return 0; /* PINGREQ, PINGRESP: no body */
	}
}

/* Type, direction, version and flag rules of the fixed header. */
static int
check_fixed(const struct mqtt_decoder *d, const struct fixed_hdr *fh)
{
	unsigned type = fh->b0 >> 4, flags = fh->b0 & 0x0F;
	uint8_t dir;

	if (type == 0 || (type == MQTT_AUTH && d->version == MQTT_V311))
		return -MQTT_E_TYPE_RESERVED;
	if (d->version == 0) {
		if (d->role != MQTT_ROLE_SERVER)
			return -MQTT_E_BAD_ARG;
		if (type != MQTT_CONNECT)
			return -MQTT_E_NOT_CONNECTED;
	}
	dir = d->version == MQTT_V5 ? type_tab[type].dir_v5 : type_tab[type].dir_v311;
	if (!(dir & (d->role == MQTT_ROLE_SERVER ? C2S : S2C)))
		return -MQTT_E_WRONG_DIRECTION;
	if (type_tab[type].flags != ANY_FLAGS && flags != type_tab[type].flags)
		return -MQTT_E_FLAGS_RESERVED;
	if (d->version == MQTT_V5 && fh->nonminimal)
		return -MQTT_E_RLEN_NONMINIMAL;
	return 0;
}

static void
scratch_init(struct mqtt_scratch *sc, const struct mqtt_decoder *d)
{
	size_t pad = (8 - ((uintptr_t)d->scratch & 7)) & 7;

	sc->base = d->scratch + pad;
	sc->front = 0;
	sc->back = d->scratch_len > pad ? (uint32_t)((d->scratch_len - pad) & ~7u) : 0;
}

int
mqtt_decode(
    struct mqtt_decoder *d, const struct mqtt_iov *iov, size_t niov, struct mqtt_packet *pkt)
{
	struct mqtt_scratch sc;
	struct fixed_hdr fh;
	struct mqtt_cur c;
	uint8_t h[5];
	size_t avail;
	uint32_t total;
	uint8_t version = d->version;
	int rc = mqtt_peek(iov, niov, d->max_packet_size, &total);

	if (rc <= 0)
		return rc;
	parse_fixed(h, gather(iov, niov, h, &avail), &fh);
	if ((rc = check_fixed(d, &fh)) != 0)
		return rc;
	pkt->type = (enum mqtt_type)(fh.b0 >> 4);
	pkt->flags = fh.b0 & 0x0F;
	pkt->len = total;
	scratch_init(&sc, d);
	mqtt_cur_init(&c, iov, niov, &sc);
	c.left = total;
	mqtt_cur_skip(&c, fh.hdr_len);
	rc = decode_body(d, &c, &fh, pkt);
	if (rc == 0 && c.left != 0)
		rc = -MQTT_E_TRAILING;
	if (rc != 0) {
		d->version = version; /* a rejected CONNECT does not set the version */
		return rc;
	}
	return (int)total;
}

int
mqtt_decode_buf(struct mqtt_decoder *d, const uint8_t *buf, size_t len, struct mqtt_packet *pkt)
{
	struct mqtt_iov one = { buf, len };

	return mqtt_decode(d, &one, 1, pkt);
}
