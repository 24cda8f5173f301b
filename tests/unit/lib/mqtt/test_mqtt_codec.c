/*
 * test_mqtt_codec.c: round trips of every MQTT packet type in 3.1.1 and 5.0 (encode, decode,
 * re-encode to the same bytes, check the fields), decoding across segment boundaries (every
 * split into 2 and 3 segments, the payload pointing into the input), "need more bytes" on every
 * prefix, and the PUBLISH header encoder for zero-copy sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_codec.h"

#define MAXPKT 32

static uint8_t scratch[8192];
static uint8_t wire[4096];

static const struct mqtt_user_prop users[] = {
	{ MQTT_STR("site"), MQTT_STR("plant-7") },
	{ MQTT_STR("site"), MQTT_STR("") }, /* repeats are allowed, empty values too */
};
static const uint32_t sub_ids[] = { 1, 268435455 };
static const struct mqtt_subscription subs5[] = {
	{ MQTT_STR("a/+/c"), 1, false, false, 0 },
	{ MQTT_STR("#"), 2, true, true, 2 },
	{ MQTT_STR("$share/g/x/#"), 0, false, false, 1 },
};
static const struct mqtt_subscription subs311[] = {
	{ MQTT_STR("a/+/c"), 1, false, false, 0 },
	{ MQTT_STR("#"), 2, false, false, 0 },
};
static const struct mqtt_str filters[] = { MQTT_STR("a/+/c"), MQTT_STR("#") };
static const uint8_t suback5[] = { 1, 2, 0x8F };
static const uint8_t suback311[] = { 1, 2, 0x80 };
static const uint8_t unsuback5[] = { 0, 0x11 };

struct tcase {
	struct mqtt_packet pkt;
	enum mqtt_role role; /* who decodes it */
};

static void
connect_full(uint8_t v, struct tcase *t)
{
	struct mqtt_connect *c = &t->pkt.connect;

	t->pkt.type = MQTT_CONNECT;
	t->role = MQTT_ROLE_SERVER;
	c->version = v;
	c->clean_start = true;
	c->keepalive_s = 30;
	c->client_id = MQTT_STR("sensor-1");
	c->has_will = c->has_username = c->has_password = true;
	c->will.topic = MQTT_STR("dev/1/status");
	c->will.payload = MQTT_STR("offline");
	c->will.qos = 1;
	c->will.retain = true;
	c->username = MQTT_STR("user");
	c->password = (struct mqtt_str){ "pa\0ss", 5 }; /* binary: a zero byte is fine */
	if (v != MQTT_V5)
		return;
	mqtt_props_set_u32(&c->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 3600);
	mqtt_props_set_u32(&c->props, MQTT_PROP_RECEIVE_MAXIMUM, 10);
	mqtt_props_set_u32(&c->props, MQTT_PROP_MAXIMUM_PACKET_SIZE, 65536);
	mqtt_props_set_u32(&c->props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 8);
	mqtt_props_set_u32(&c->props, MQTT_PROP_REQUEST_PROBLEM_INFORMATION, 1);
	mqtt_props_set_u32(&c->props, MQTT_PROP_REQUEST_RESPONSE_INFORMATION, 0);
	mqtt_props_set_str(&c->props, MQTT_PROP_AUTHENTICATION_METHOD, MQTT_STR("SCRAM-SHA-1"));
	mqtt_props_set_str(&c->props, MQTT_PROP_AUTHENTICATION_DATA, MQTT_STR("\x01\x02"));
	c->props.user = users;
	c->props.n_user = 2;
	mqtt_props_set_u32(&c->will.props, MQTT_PROP_WILL_DELAY_INTERVAL, 5);
	mqtt_props_set_u32(&c->will.props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 1);
	mqtt_props_set_u32(&c->will.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 99);
	mqtt_props_set_str(&c->will.props, MQTT_PROP_CONTENT_TYPE, MQTT_STR("text/plain"));
	mqtt_props_set_str(&c->will.props, MQTT_PROP_RESPONSE_TOPIC, MQTT_STR("r/t"));
	mqtt_props_set_str(&c->will.props, MQTT_PROP_CORRELATION_DATA, MQTT_STR("id-1"));
	c->will.props.user = users;
	c->will.props.n_user = 1;
}

static void
connack(uint8_t v, struct tcase *t, bool ok)
{
	struct mqtt_connack *c = &t->pkt.connack;

	t->pkt.type = MQTT_CONNACK;
	t->role = MQTT_ROLE_CLIENT;
	c->session_present = ok;
	c->reason = ok ? 0 : v == MQTT_V5 ? MQTT_RC_BAD_USERNAME_OR_PASSWORD : 4;
	if (v != MQTT_V5)
		return;
	mqtt_props_set_str(&c->props, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER, MQTT_STR("auto-1"));
	mqtt_props_set_u32(&c->props, MQTT_PROP_SERVER_KEEP_ALIVE, 120);
	mqtt_props_set_u32(&c->props, MQTT_PROP_MAXIMUM_QOS, 1);
	mqtt_props_set_u32(&c->props, MQTT_PROP_RETAIN_AVAILABLE, 0);
	mqtt_props_set_u32(&c->props, MQTT_PROP_WILDCARD_SUB_AVAILABLE, 1);
	mqtt_props_set_u32(&c->props, MQTT_PROP_SUB_ID_AVAILABLE, 1);
	mqtt_props_set_u32(&c->props, MQTT_PROP_SHARED_SUB_AVAILABLE, 0);
	mqtt_props_set_str(&c->props, MQTT_PROP_RESPONSE_INFORMATION, MQTT_STR("resp/"));
	mqtt_props_set_str(&c->props, MQTT_PROP_SERVER_REFERENCE, MQTT_STR("other:1883"));
	mqtt_props_set_str(&c->props, MQTT_PROP_REASON_STRING, MQTT_STR("welcome"));
}

static void
publish(uint8_t v, struct tcase *t, uint8_t qos, bool to_client)
{
	struct mqtt_publish *p = &t->pkt.publish;

	t->pkt.type = MQTT_PUBLISH;
	t->role = to_client ? MQTT_ROLE_CLIENT : MQTT_ROLE_SERVER;
	p->qos = qos;
	p->dup = qos == 1;
	p->retain = qos == 0;
	p->topic = MQTT_STR("plant/7/line/2/temp");
	p->packet_id = qos ? (qos == 2 ? 65535 : 10) : 0;
	p->payload = (const uint8_t *)"{\"t\":21.5}";
	p->payload_len = qos == 2 ? 0 : 10;
	if (v != MQTT_V5 || qos == 0)
		return;
	mqtt_props_set_u32(&p->props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 1);
	mqtt_props_set_u32(&p->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 60);
	mqtt_props_set_u32(&p->props, MQTT_PROP_TOPIC_ALIAS, 3);
	mqtt_props_set_str(&p->props, MQTT_PROP_RESPONSE_TOPIC, MQTT_STR("reply/7"));
	mqtt_props_set_str(&p->props, MQTT_PROP_CORRELATION_DATA, MQTT_STR("\xff\x00"));
	mqtt_props_set_str(&p->props, MQTT_PROP_CONTENT_TYPE, MQTT_STR("application/json"));
	p->props.user = users;
	p->props.n_user = 2;
	if (to_client) {
		p->props.sub_ids = sub_ids;
		p->props.n_sub_ids = 2;
	}
}

static void
ack(uint8_t v, struct tcase *t, enum mqtt_type type, uint16_t pid, uint8_t reason)
{
	t->pkt.type = type;
	t->role = type == MQTT_PUBREC ? MQTT_ROLE_SERVER : MQTT_ROLE_CLIENT;
	t->pkt.ack.packet_id = pid;
	if (v != MQTT_V5)
		return;
	t->pkt.ack.reason = reason;
	if (type == MQTT_PUBREC)
		mqtt_props_set_str(&t->pkt.ack.props, MQTT_PROP_REASON_STRING, MQTT_STR("busy"));
}

static void
subscribe(uint8_t v, struct tcase *t)
{
	struct mqtt_subscribe *s = &t->pkt.subscribe;

	t->pkt.type = MQTT_SUBSCRIBE;
	t->role = MQTT_ROLE_SERVER;
	s->packet_id = 5;
	s->subs = v == MQTT_V5 ? subs5 : subs311;
	s->n_subs = v == MQTT_V5 ? 3 : 2;
	if (v == MQTT_V5) {
		s->props.sub_ids = sub_ids;
		s->props.n_sub_ids = 1;
		s->props.user = users;
		s->props.n_user = 1;
	}
}

static void
subacks(uint8_t v, struct tcase *t)
{
	t[0].pkt.type = MQTT_SUBACK;
	t[0].role = MQTT_ROLE_CLIENT;
	t[0].pkt.suback.packet_id = 5;
	t[0].pkt.suback.reasons = v == MQTT_V5 ? suback5 : suback311;
	t[0].pkt.suback.n_reasons = 3;
	t[1].pkt.type = MQTT_UNSUBSCRIBE;
	t[1].role = MQTT_ROLE_SERVER;
	t[1].pkt.unsubscribe.packet_id = 6;
	t[1].pkt.unsubscribe.filters = filters;
	t[1].pkt.unsubscribe.n_filters = 2;
	t[2].pkt.type = MQTT_UNSUBACK;
	t[2].role = MQTT_ROLE_CLIENT;
	t[2].pkt.suback.packet_id = 6;
	if (v == MQTT_V5) {
		t[2].pkt.suback.reasons = unsuback5;
		t[2].pkt.suback.n_reasons = 2;
		mqtt_props_set_str(&t[2].pkt.suback.props, MQTT_PROP_REASON_STRING, MQTT_STR("ok"));
	}
}

/* All packet types that exist in version v; returns how many. */
static size_t
build_all(uint8_t v, struct tcase *t)
{
	size_t n = 0;

	memset(t, 0, MAXPKT * sizeof(*t));
	connect_full(v, &t[n++]);
	t[n].pkt.type = MQTT_CONNECT;
	t[n].role = MQTT_ROLE_SERVER;
	t[n].pkt.connect.version = v;
	t[n++].pkt.connect.clean_start = true;
	connack(v, &t[n++], true);
	connack(v, &t[n++], false);
	publish(v, &t[n++], 0, false);
	publish(v, &t[n++], 1, false);
	publish(v, &t[n++], 1, true);
	publish(v, &t[n++], 2, true);
	ack(v, &t[n++], MQTT_PUBACK, 1, 0);
	ack(v, &t[n++], MQTT_PUBREC, 2, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	ack(v, &t[n++], MQTT_PUBREL, 3, 0);
	ack(v, &t[n++], MQTT_PUBCOMP, 4, MQTT_RC_PACKET_ID_NOT_FOUND);
	subscribe(v, &t[n++]);
	subacks(v, &t[n]);
	n += 3;
	t[n].pkt.type = MQTT_PINGREQ;
	t[n++].role = MQTT_ROLE_SERVER;
	t[n].pkt.type = MQTT_PINGRESP;
	t[n++].role = MQTT_ROLE_CLIENT;
	t[n].pkt.type = MQTT_DISCONNECT;
	t[n++].role = MQTT_ROLE_SERVER;
	if (v == MQTT_V5) {
		t[n].pkt.type = MQTT_DISCONNECT;
		t[n].role = MQTT_ROLE_CLIENT;
		t[n].pkt.disconnect.reason = MQTT_RC_SESSION_TAKEN_OVER;
		mqtt_props_set_str(
		    &t[n].pkt.disconnect.props, MQTT_PROP_REASON_STRING, MQTT_STR("bye"));
		mqtt_props_set_str(
		    &t[n++].pkt.disconnect.props, MQTT_PROP_SERVER_REFERENCE, MQTT_STR("b:1"));
		t[n].pkt.type = MQTT_AUTH;
		t[n].role = MQTT_ROLE_SERVER;
		t[n].pkt.disconnect.reason = MQTT_RC_CONTINUE_AUTHENTICATION;
		mqtt_props_set_str(&t[n].pkt.disconnect.props, MQTT_PROP_AUTHENTICATION_METHOD,
		    MQTT_STR("SCRAM-SHA-1"));
		mqtt_props_set_str(
		    &t[n++].pkt.disconnect.props, MQTT_PROP_AUTHENTICATION_DATA, MQTT_STR("nonce"));
	}
	return n;
}

static void
decoder_for(struct mqtt_decoder *d, uint8_t v, const struct tcase *t)
{
	uint8_t dv = t->pkt.type == MQTT_CONNECT ? 0 : v;

	mqtt_decoder_init(d, t->role, dv, 0, scratch, sizeof(scratch));
}

/* Encode t into wire; returns the length. */
static int
encode_case(uint8_t v, const struct tcase *t)
{
	int n = mqtt_encode(wire, sizeof(wire), v, &t->pkt);

	if (n <= 0)
		fail_msg(
		    "encode %s v%u: %d (%s)", mqtt_type_name(t->pkt.type), v, n, mqtt_err_str(n));
	assert_true((size_t)n <= sizeof(wire));
	/* Too small a buffer: the same length comes back so the caller can retry. */
	assert_int_equal(mqtt_encode(NULL, 0, v, &t->pkt), n);
	assert_int_equal(mqtt_encode(wire + n, (size_t)n - 1, v, &t->pkt), n);
	return n;
}

/* Decoded *out must encode back to exactly the bytes it came from. */
static void
assert_reencodes(uint8_t v, const struct mqtt_packet *out, const uint8_t *orig, int n)
{
	uint8_t again[4096];
	int m = mqtt_encode(again, sizeof(again), v, out);

	assert_int_equal(m, n);
	assert_memory_equal(again, orig, (size_t)n);
}

static void
roundtrip_version(uint8_t v)
{
	static struct tcase t[MAXPKT];
	size_t count = build_all(v, t);

	for (size_t i = 0; i < count; i++) {
		struct mqtt_decoder d;
		struct mqtt_packet out;
		int n = encode_case(v, &t[i]);
		int rc;

		decoder_for(&d, v, &t[i]);
		rc = mqtt_decode_buf(&d, wire, (size_t)n, &out);
		if (rc != n)
			fail_msg("decode %s v%u (#%zu): %d (%s)", mqtt_type_name(t[i].pkt.type), v,
			    i, rc, mqtt_err_str(rc));
		assert_int_equal(out.type, t[i].pkt.type);
		assert_int_equal(out.len, n);
		assert_reencodes(v, &out, wire, n);
		if (out.type == MQTT_CONNECT)
			assert_int_equal(d.version, v);
	}
}

static void
test_roundtrip_v311(void **state)
{
	(void)state;
	roundtrip_version(MQTT_V311);
}

static void
test_roundtrip_v5(void **state)
{
	(void)state;
	roundtrip_version(MQTT_V5);
}

/* Field by field on the richest packets, so a symmetric encode/decode bug cannot hide. */
static void
test_fields_v5(void **state)
{
	static struct tcase t[MAXPKT];
	struct mqtt_decoder d;
	struct mqtt_packet out;
	const struct mqtt_connect *c = &out.connect;
	const struct mqtt_publish *p = &out.publish;
	int n;

	(void)state;
	build_all(MQTT_V5, t);
	n = encode_case(MQTT_V5, &t[0]);
	decoder_for(&d, MQTT_V5, &t[0]);
	assert_int_equal(mqtt_decode_buf(&d, wire, (size_t)n, &out), n);
	assert_int_equal(c->version, 5);
	assert_true(c->clean_start && c->has_will && c->has_username && c->has_password);
	assert_int_equal(c->keepalive_s, 30);
	assert_memory_equal(c->client_id.s, "sensor-1", 8);
	assert_memory_equal(c->password.s, "pa\0ss", 5);
	assert_int_equal(c->will.qos, 1);
	assert_true(c->will.retain);
	assert_memory_equal(c->will.payload.s, "offline", 7);
	assert_int_equal(c->props.v[MQTT_PROP_SESSION_EXPIRY_INTERVAL].u, 3600);
	assert_int_equal(c->props.v[MQTT_PROP_MAXIMUM_PACKET_SIZE].u, 65536);
	assert_int_equal(c->props.n_user, 2);
	assert_memory_equal(c->props.user[0].val.s, "plant-7", 7);
	assert_int_equal(c->props.user[1].val.len, 0);
	assert_int_equal(c->will.props.v[MQTT_PROP_WILL_DELAY_INTERVAL].u, 5);
	assert_true(mqtt_props_has(&c->will.props, MQTT_PROP_CORRELATION_DATA));
	assert_false(mqtt_props_has(&c->will.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL));

	n = encode_case(MQTT_V5, &t[6]); /* QoS 1 PUBLISH to a client, two subscription ids */
	decoder_for(&d, MQTT_V5, &t[6]);
	assert_int_equal(mqtt_decode_buf(&d, wire, (size_t)n, &out), n);
	assert_int_equal(p->qos, 1);
	assert_true(p->dup);
	assert_false(p->retain);
	assert_int_equal(p->packet_id, 10);
	assert_int_equal(p->props.n_sub_ids, 2);
	assert_int_equal(p->props.sub_ids[1], 268435455);
	assert_int_equal(p->props.v[MQTT_PROP_TOPIC_ALIAS].u, 3);
	assert_int_equal(p->payload_len, 10);
	/* Zero copy: the payload is the last 10 bytes of the wire buffer itself. */
	assert_ptr_equal(p->payload, wire + n - 10);
	assert_int_equal(p->payload_at.seg, 0);
	assert_int_equal(p->payload_at.off, n - 10);

	n = encode_case(MQTT_V5, &t[12]); /* SUBSCRIBE */
	decoder_for(&d, MQTT_V5, &t[12]);
	assert_int_equal(mqtt_decode_buf(&d, wire, (size_t)n, &out), n);
	assert_int_equal(out.subscribe.n_subs, 3);
	assert_true(out.subscribe.subs[1].no_local && out.subscribe.subs[1].retain_as_published);
	assert_int_equal(out.subscribe.subs[1].retain_handling, 2);
	assert_int_equal(out.subscribe.subs[1].qos, 2);
	assert_int_equal(out.subscribe.props.sub_ids[0], 1);
}

/* Exact bytes of well-known packets, against the spec's examples. */
static void
test_known_bytes(void **state)
{
	static const uint8_t ping[] = { 0xC0, 0x00 };
	static const uint8_t puback311[] = { 0x40, 0x02, 0x12, 0x34 };
	static const uint8_t pubrel5[] = { 0x62, 0x02, 0x00, 0x07 };
	static const uint8_t disc5[] = { 0xE0, 0x00 };
	static const uint8_t conn311[] = { 0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0,
		1, 'c' };
	struct mqtt_ack a = { .packet_id = 0x1234 };
	struct mqtt_connect c = {
		.version = 4, .clean_start = true, .keepalive_s = 60, .client_id = MQTT_STR("c")
	};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(mqtt_encode_pingreq(buf, sizeof(buf)), 2);
	assert_memory_equal(buf, ping, 2);
	assert_int_equal(mqtt_encode_ack(buf, sizeof(buf), 4, MQTT_PUBACK, &a), 4);
	assert_memory_equal(buf, puback311, 4);
	a.packet_id = 7;
	assert_int_equal(mqtt_encode_ack(buf, sizeof(buf), 5, MQTT_PUBREL, &a), 4);
	assert_memory_equal(buf, pubrel5, 4);
	assert_int_equal(mqtt_encode_disconnect(buf, sizeof(buf), 5, NULL), 2);
	assert_memory_equal(buf, disc5, 2);
	assert_int_equal(mqtt_encode_connect(buf, sizeof(buf), &c), (int)sizeof(conn311));
	assert_memory_equal(buf, conn311, sizeof(conn311));
}

static bool
inside_some_segment(const struct mqtt_iov *iov, size_t k, const struct mqtt_iov *sl)
{
	for (size_t i = 0; i < k; i++)
		if (sl->base >= iov[i].base && sl->base + sl->len <= iov[i].base + iov[i].len)
			return true;
	return false;
}

/*
 * The payload as slices of the input (no copy), in order, with the right bytes. When it spans
 * segments, point the packet at a flat copy so that it can be encoded again.
 */
static void
check_payload_slices(
    const struct mqtt_iov *iov, size_t k, const struct tcase *t, struct mqtt_publish *p)
{
	static uint8_t flat[4096];
	struct mqtt_iov sl[3];
	size_t ns = mqtt_span_slices(iov, k, &p->payload_at, sl, 3);
	size_t got = 0;

	assert_true(ns <= k);
	for (size_t i = 0; i < ns; i++) {
		assert_true(inside_some_segment(iov, k, &sl[i]));
		assert_memory_equal(sl[i].base, t->pkt.publish.payload + got, sl[i].len);
		memcpy(flat + got, sl[i].base, sl[i].len);
		got += sl[i].len;
	}
	assert_int_equal(got, t->pkt.publish.payload_len);
	assert_int_equal(p->payload_len, got);
	if (ns == 1)
		assert_ptr_equal(p->payload, sl[0].base);
	if (ns > 1) {
		assert_null(p->payload);
		p->payload = flat;
	}
}

/* Copy wire[0..n) into k separately allocated segments cut at cuts[]; decode; check. */
static void
decode_split(uint8_t v, const struct tcase *t, int n, const size_t *cuts, size_t k)
{
	struct mqtt_iov iov[3];
	uint8_t *seg[3];
	struct mqtt_decoder d;
	struct mqtt_packet out;
	size_t start = 0;
	int rc;

	for (size_t i = 0; i < k; i++) {
		size_t end = i + 1 < k ? cuts[i] : (size_t)n;

		seg[i] = malloc(end - start + 1); /* +1: malloc(0) may be NULL */
		assert_non_null(seg[i]);
		memcpy(seg[i], wire + start, end - start);
		iov[i].base = seg[i];
		iov[i].len = end - start;
		start = end;
	}
	decoder_for(&d, v, t);
	rc = mqtt_decode(&d, iov, k, &out);
	if (rc != n)
		fail_msg("%s split at %zu/%zu: %d (%s)", mqtt_type_name(t->pkt.type), cuts[0],
		    k > 2 ? cuts[1] : 0, rc, mqtt_err_str(rc));
	if (out.type == MQTT_PUBLISH)
		check_payload_slices(iov, k, t, &out.publish);
	assert_reencodes(v, &out, wire, n);
	for (size_t i = 0; i < k; i++)
		free(seg[i]);
}

static void
split_version(uint8_t v)
{
	static struct tcase t[MAXPKT];
	size_t count = build_all(v, t);

	for (size_t i = 0; i < count; i++) {
		int n = encode_case(v, &t[i]);

		for (size_t a = 1; a < (size_t)n; a++) {
			size_t cuts2[1] = { a };

			decode_split(v, &t[i], n, cuts2, 2);
			for (size_t b = a; b < (size_t)n; b++) {
				size_t cuts3[2] = { a, b };

				decode_split(v, &t[i], n, cuts3, 3);
			}
		}
	}
}

static void
test_split_v311(void **state)
{
	(void)state;
	split_version(MQTT_V311);
}

static void
test_split_v5(void **state)
{
	(void)state;
	split_version(MQTT_V5);
}

/* Every proper prefix needs more bytes; peek knows the total once the header is in. */
static void
test_need_more(void **state)
{
	static struct tcase t[MAXPKT];
	size_t count = build_all(MQTT_V5, t);

	(void)state;
	for (size_t i = 0; i < count; i++) {
		int n = encode_case(MQTT_V5, &t[i]);

		for (int k = 0; k < n; k++) {
			struct mqtt_iov one = { wire, (size_t)k };
			struct mqtt_decoder d;
			struct mqtt_packet out;
			uint32_t len;
			int hdr = 1 + (n - 1 > 128 ? 2 : 1);

			decoder_for(&d, MQTT_V5, &t[i]);
			assert_int_equal(mqtt_decode(&d, &one, 1, &out), 0);
			assert_int_equal(mqtt_peek(&one, 1, 0, &len), 0);
			assert_int_equal(len, k >= hdr ? (uint32_t)n : 0);
		}
	}
}

/* Two packets back to back: decode returns the first's length and leaves the second. */
static void
test_back_to_back(void **state)
{
	uint8_t buf[16];
	struct mqtt_decoder d;
	struct mqtt_packet out;
	struct mqtt_ack a = { .packet_id = 9 };
	int n1, n2;

	(void)state;
	n1 = mqtt_encode_ack(buf, sizeof(buf), 4, MQTT_PUBACK, &a);
	n2 = mqtt_encode_pingresp(buf + n1, sizeof(buf) - (size_t)n1);
	mqtt_decoder_init(&d, MQTT_ROLE_CLIENT, 4, 0, scratch, sizeof(scratch));
	assert_int_equal(mqtt_decode_buf(&d, buf, (size_t)(n1 + n2), &out), n1);
	assert_int_equal(out.type, MQTT_PUBACK);
	assert_int_equal(out.ack.packet_id, 9);
	assert_int_equal(mqtt_decode_buf(&d, buf + n1, (size_t)n2, &out), n2);
	assert_int_equal(out.type, MQTT_PINGRESP);
}

/*
 * Broker fan-out: the header encoder writes only headers; header + payload sent as two pieces
 * decode like the whole packet. A big payload over mbuf-sized segments comes back as slices.
 */
static void
test_publish_header_zero_copy(void **state)
{
	static uint8_t payload[3000];
	static uint8_t whole[3100];
	uint8_t hdr[64];
	struct mqtt_publish p = { .qos = 1,
		.packet_id = 77,
		.topic = MQTT_STR("a/b"),
		.payload = payload,
		.payload_len = sizeof(payload) };
	struct mqtt_iov iov[8], sl[8];
	struct mqtt_decoder d;
	struct mqtt_packet out;
	size_t nseg = 0, ns;
	int h, n;

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	h = mqtt_encode_publish_header(hdr, sizeof(hdr), 5, &p);
	n = mqtt_encode_publish(whole, sizeof(whole), 5, &p);
	assert_int_equal(h + (int)sizeof(payload), n);
	assert_memory_equal(hdr, whole, (size_t)h);
	/* Header from hdr, payload from where it lives, in 512-byte pieces. */
	iov[nseg++] = (struct mqtt_iov){ hdr, (size_t)h };
	for (size_t off = 0; off < sizeof(payload); off += 512)
		iov[nseg++] = (struct mqtt_iov){ payload + off,
			sizeof(payload) - off < 512 ? sizeof(payload) - off : 512 };
	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, 5, 0, scratch, sizeof(scratch));
	assert_int_equal(mqtt_decode(&d, iov, nseg, &out), n);
	assert_null(out.publish.payload);
	assert_int_equal(out.publish.payload_at.seg, 1);
	assert_int_equal(out.publish.payload_at.off, 0);
	ns = mqtt_span_slices(iov, nseg, &out.publish.payload_at, sl, 8);
	assert_int_equal(ns, 6);
	assert_ptr_equal(sl[0].base, payload);
	assert_ptr_equal(sl[5].base, payload + 2560);
	assert_int_equal(sl[5].len, 3000 - 2560);
	/* Too few slots: the count still says how many are needed. */
	assert_int_equal(mqtt_span_slices(iov, nseg, &out.publish.payload_at, sl, 2), 6);
	/* Maximum packet size applies to the whole packet, payload included. */
	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, 5, 2048, scratch, sizeof(scratch));
	assert_int_equal(mqtt_decode(&d, iov, nseg, &out), -MQTT_E_PACKET_TOO_LARGE);
}

/* Empty segments anywhere (a drained mbuf, an empty ring half) are skipped. */
static void
test_empty_segments(void **state)
{
	struct mqtt_publish p = {
		.topic = MQTT_STR("t"), .payload = (const uint8_t *)"xyz", .payload_len = 3
	};
	uint8_t buf[32];
	struct mqtt_decoder d;
	struct mqtt_packet out;
	uint32_t len;
	int n;

	(void)state;
	n = mqtt_encode_publish(buf, sizeof(buf), 4, &p);
	assert_int_equal(n, 8);
	{
		struct mqtt_iov iov[6] = { { NULL, 0 }, { buf, 1 }, { NULL, 0 }, { buf + 1, 4 },
			{ buf + 5, 0 }, { buf + 5, 3 } };

		assert_int_equal(mqtt_peek(iov, 6, 0, &len), 1);
		assert_int_equal(len, 8);
		mqtt_decoder_init(&d, MQTT_ROLE_CLIENT, 4, 0, scratch, sizeof(scratch));
		assert_int_equal(mqtt_decode(&d, iov, 6, &out), 8);
		assert_ptr_equal(out.publish.payload, buf + 5);
		assert_int_equal(out.publish.payload_at.seg, 5);
		/* Only empty segments, or none: need more. */
		assert_int_equal(mqtt_decode(&d, iov, 1, &out), 0);
		assert_int_equal(mqtt_decode(&d, NULL, 0, &out), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_v311),
		cmocka_unit_test(test_roundtrip_v5),
		cmocka_unit_test(test_fields_v5),
		cmocka_unit_test(test_known_bytes),
		cmocka_unit_test(test_split_v311),
		cmocka_unit_test(test_split_v5),
		cmocka_unit_test(test_need_more),
		cmocka_unit_test(test_back_to_back),
		cmocka_unit_test(test_publish_header_zero_copy),
		cmocka_unit_test(test_empty_segments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
