/*
 * test_mqtt_interop.c: byte streams written by other implementations (paho-mqtt client,
 * mosquitto broker; see interop_captures.h) decode packet by packet, in one buffer and cut into
 * TCP-like segments; each decoded packet re-encodes to exactly the bytes the other implementation
 * wrote (golden bytes: our encoder against paho's and mosquitto's), and that decodes again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_codec.h"
#include "interop_captures.h"
#include "interop_captures2.h"

struct stream {
	const char *name;
	const uint8_t *bytes;
	size_t len;
	enum mqtt_role role; /* who decodes it */
	uint8_t version;     /* 0: the stream starts with CONNECT */
	const char *types;   /* expected packet types, one letter each (see type_letter) */
};

/* C=CONNECT c=CONNACK P=PUBLISH a=PUBACK r=PUBREC l=PUBREL m=PUBCOMP S=SUBSCRIBE s=SUBACK
 * U=UNSUBSCRIBE u=UNSUBACK I=PINGREQ i=PINGRESP D=DISCONNECT A=AUTH */
static char
type_letter(enum mqtt_type t)
{
	static const char letters[16] = "?CcParlmSsUuIiDA";

	return letters[t & 15];
}

static const struct stream streams[] = {
	{ "paho 5.0 client", c2s5_bin, sizeof(c2s5_bin), MQTT_ROLE_SERVER, 0, "CSPPaaPlramUD" },
	{ "mosquitto 5.0 broker", s2c5_bin, sizeof(s2c5_bin), MQTT_ROLE_CLIENT, MQTT_V5,
	    "csPPPParPPmlu" },
	{ "paho 3.1.1 client", c2s4_bin, sizeof(c2s4_bin), MQTT_ROLE_SERVER, 0, "CSaaPPaPlrmUD" },
	{ "mosquitto 3.1.1 broker", s2c4_bin, sizeof(s2c4_bin), MQTT_ROLE_CLIENT, MQTT_V311,
	    "csPPPParPmlu" },
	/* interop_captures2.h, written by capture-interop */
	{ "paho 5.0 ping", ping_c2s5_bin, sizeof(ping_c2s5_bin), MQTT_ROLE_SERVER, 0, "CID" },
	{ "mosquitto 5.0 ping", ping_s2c5_bin, sizeof(ping_s2c5_bin), MQTT_ROLE_CLIENT, MQTT_V5,
	    "ci" },
	{ "paho 3.1.1 ping", ping_c2s4_bin, sizeof(ping_c2s4_bin), MQTT_ROLE_SERVER, 0, "CID" },
	{ "mosquitto 3.1.1 ping", ping_s2c4_bin, sizeof(ping_s2c4_bin), MQTT_ROLE_CLIENT, MQTT_V311,
	    "ci" },
	{ "paho 5.0 auth method", auth_c2s5_bin, sizeof(auth_c2s5_bin), MQTT_ROLE_SERVER, 0, "C" },
	{ "mosquitto 5.0 bad auth method", auth_s2c5_bin, sizeof(auth_s2c5_bin), MQTT_ROLE_CLIENT,
	    MQTT_V5, "c" },
};

static uint8_t scratch[8192];
static unsigned exact, reordered; /* packets re-encoded to the captured bytes, or reordered */

/* Decode one packet from iov; re-encode it: the same bytes as captured, which decode again. */
static int
decode_one(struct mqtt_decoder *d, const struct mqtt_iov *iov, size_t niov, struct mqtt_packet *pkt)
{
	static uint8_t flat[4096], again[4096], orig[4096], scratch2[8192];
	struct mqtt_decoder d2;
	struct mqtt_packet p2;
	int rc = mqtt_decode(d, iov, niov, pkt), n;

	if (rc <= 0)
		return rc;
	if (pkt->type == MQTT_PUBLISH && pkt->publish.payload == NULL) {
		struct mqtt_iov sl[1024];
		size_t ns = mqtt_span_slices(iov, niov, &pkt->publish.payload_at, sl, 1024),
		       off = 0;

		assert_true(ns <= 1024);
		for (size_t i = 0; i < ns; i++) {
			memcpy(flat + off, sl[i].base, sl[i].len);
			off += sl[i].len;
		}
		pkt->publish.payload = flat;
	}
	n = mqtt_encode(again, sizeof(again), d->version, pkt);
	assert_true(n > 0);
	/* the packet as captured: the first rc bytes of the segments */
	assert_true((size_t)rc <= sizeof(orig));
	for (size_t i = 0, off = 0; i < niov && off < (size_t)rc; i++) {
		size_t k = iov[i].len < (size_t)rc - off ? iov[i].len : (size_t)rc - off;

		memcpy(orig + off, iov[i].base, k);
		off += k;
	}
	if (n != rc || memcmp(again, orig, (size_t)rc) != 0) {
		/* 5.0 fixes no order for properties (mosquitto writes Topic Alias Maximum before
		 * Receive Maximum, we write them by id): the bytes that differ must be one run
		 * holding the same bytes in another order. 3.1.1 has no properties: exact. */
		int first = -1, last = -1;
		unsigned hist[256] = { 0 };

		if (n != rc)
			fail_msg("%s re-encoded is %d bytes, captured %d",
			    mqtt_type_name(pkt->type), n, rc);
		for (int i = 0; i < rc; i++)
			if (again[i] != orig[i]) {
				last = i;
				first = first < 0 ? i : first;
			}
		for (int i = first; i <= last; i++) {
			hist[again[i]]++;
			hist[orig[i]]--;
		}
		for (int i = 0; i < 256; i++)
			if (hist[i] != 0 || d->version != MQTT_V5)
				fail_msg(
				    "%s re-encoded differs from the capture at bytes %d-%d of %d "
				    "(ours 0x%02x, captured 0x%02x)",
				    mqtt_type_name(pkt->type), first, last, rc, again[first],
				    orig[first]);
		reordered++;
	}
	exact += n == rc && memcmp(again, orig, (size_t)rc) == 0;
	mqtt_decoder_init(&d2, d->role, pkt->type == MQTT_CONNECT ? 0 : d->version, 0, scratch2,
	    sizeof(scratch2));
	assert_int_equal(mqtt_decode_buf(&d2, again, (size_t)n, &p2), n);
	assert_int_equal(p2.type, pkt->type);
	return rc;
}

/* Cut the stream into seg-byte segments (0: one buffer) and decode it all. */
static void
decode_stream(const struct stream *s, size_t seg)
{
	struct mqtt_iov iov[2048];
	struct mqtt_decoder d;
	char got[64];
	size_t off = 0, np = 0;

	mqtt_decoder_init(&d, s->role, s->version, 0, scratch, sizeof(scratch));
	while (off < s->len) {
		struct mqtt_packet pkt;
		size_t niov = 0;
		int rc;

		for (size_t o = off; o < s->len && niov < 2048; o += seg ? seg : s->len)
			iov[niov++] = (struct mqtt_iov){ s->bytes + o,
				seg && s->len - o > seg ? seg : s->len - o };
		rc = decode_one(&d, iov, niov, &pkt);
		if (rc <= 0)
			fail_msg("%s, %zu-byte segments: %d (%s) at %zu", s->name, seg, rc,
			    mqtt_err_str(rc), off);
		assert_true(np < sizeof(got) - 1);
		got[np++] = type_letter(pkt.type);
		off += (size_t)rc;
	}
	got[np] = '\0';
	assert_string_equal(got, s->types);
}

static void
test_captured_streams(void **state)
{
	static const size_t segs[] = { 0, 1460, 536, 7, 1 };

	(void)state;
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
		for (size_t k = 0; k < sizeof(segs) / sizeof(segs[0]); k++)
			decode_stream(&streams[i], segs[k]);
	/* 63 packets, 5 cuts; only mosquitto's two 5.0 CONNACKs with properties and 3 PUBLISHes
	 * with several come in another order: every other packet is byte for byte the capture */
	print_message("golden: %u packets re-encoded exactly, %u with properties reordered\n",
	    exact, reordered);
	assert_int_equal(exact + reordered, 5 * 63);
	assert_int_equal(reordered, 5 * 8);
}

/* What the captures carry, field by field: paho's 5.0 CONNECT and mosquitto's first PUBLISH. */
static void
test_captured_fields(void **state)
{
	struct mqtt_decoder d;
	struct mqtt_packet pkt;
	const struct mqtt_connect *c = &pkt.connect;
	int n;

	(void)state;
	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, 0, 0, scratch, sizeof(scratch));
	assert_true(mqtt_decode_buf(&d, c2s5_bin, sizeof(c2s5_bin), &pkt) > 0);
	assert_int_equal(c->version, 5);
	assert_int_equal(c->keepalive_s, 30);
	assert_memory_equal(c->client_id.s, "interop-5", 9);
	assert_true(c->has_will && c->will.retain);
	assert_int_equal(c->will.qos, 1);
	assert_int_equal(c->will.props.v[MQTT_PROP_WILL_DELAY_INTERVAL].u, 5);
	assert_int_equal(c->props.v[MQTT_PROP_SESSION_EXPIRY_INTERVAL].u, 60);
	assert_int_equal(c->props.v[MQTT_PROP_RECEIVE_MAXIMUM].u, 20);
	assert_int_equal(c->props.n_user, 2);
	assert_memory_equal(c->props.user[1].val.s, "two", 3);
	assert_memory_equal(c->password.s, "secret", 6);

	mqtt_decoder_init(&d, MQTT_ROLE_CLIENT, MQTT_V5, 0, scratch, sizeof(scratch));
	n = mqtt_decode_buf(&d, s2c5_bin, sizeof(s2c5_bin), &pkt); /* CONNACK */
	assert_true(n > 0);
	n += mqtt_decode_buf(&d, s2c5_bin + n, sizeof(s2c5_bin) - (size_t)n, &pkt); /* SUBACK */
	assert_int_equal(pkt.suback.n_reasons, 2);
	assert_true(mqtt_decode_buf(&d, s2c5_bin + n, sizeof(s2c5_bin) - (size_t)n, &pkt) > 0);
	assert_int_equal(pkt.type, MQTT_PUBLISH);
	assert_int_equal(pkt.publish.props.n_sub_ids, 1);
	assert_int_equal(pkt.publish.props.sub_ids[0], 7);
	assert_int_equal(pkt.publish.props.v[MQTT_PROP_PAYLOAD_FORMAT_INDICATOR].u, 1);
	assert_memory_equal(pkt.publish.props.v[MQTT_PROP_RESPONSE_TOPIC].s.s, "egw/reply", 9);
	assert_int_equal(mqtt_payload_utf8_check(&(struct mqtt_iov){ s2c5_bin, sizeof(s2c5_bin) },
			     1, &pkt.publish.payload_at),
	    0);
}

/* The captured extended authentication: paho's method and data, mosquitto's refusal (it has
 * no extended authentication without a plugin). */
static void
test_captured_auth(void **state)
{
	struct mqtt_decoder d;
	struct mqtt_packet pkt;

	(void)state;
	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, 0, 0, scratch, sizeof(scratch));
	assert_int_equal(mqtt_decode_buf(&d, auth_c2s5_bin, sizeof(auth_c2s5_bin), &pkt),
	    (int)sizeof(auth_c2s5_bin));
	assert_int_equal(pkt.type, MQTT_CONNECT);
	assert_int_equal(pkt.connect.props.v[MQTT_PROP_AUTHENTICATION_METHOD].s.len, 11);
	assert_memory_equal(
	    pkt.connect.props.v[MQTT_PROP_AUTHENTICATION_METHOD].s.s, "SCRAM-SHA-1", 11);
	assert_int_equal(pkt.connect.props.v[MQTT_PROP_AUTHENTICATION_DATA].s.len, 36);
	mqtt_decoder_init(&d, MQTT_ROLE_CLIENT, MQTT_V5, 0, scratch, sizeof(scratch));
	assert_int_equal(mqtt_decode_buf(&d, auth_s2c5_bin, sizeof(auth_s2c5_bin), &pkt),
	    (int)sizeof(auth_s2c5_bin));
	assert_int_equal(pkt.type, MQTT_CONNACK);
	assert_int_equal(pkt.connack.reason, 0x8c);
}

/*
 * AUTH: neither paho 1.6 nor mosquitto 2.0 (without a plugin) writes one, so these bytes are
 * written by hand from the 5.0 specification's layout (section 3.15), one field a line, not by
 * our encoder. Each decodes in both roles and re-encodes to exactly these bytes.
 */
/* one field a line: */
/* clang-format off */
static const uint8_t auth_success[] = {
	0xf0, 0x00, /* AUTH, remaining length 0: reason 0x00 and no properties omitted (3.15.2.1) */
};
static const uint8_t auth_continue[] = {
	0xf0, 0x17,       /* AUTH, remaining length 23 */
	0x18,             /* reason: continue authentication */
	0x15,             /* property length 21 */
	0x15, 0x00, 0x0b, /* Authentication Method, 11 bytes */
	'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '1',
	0x16, 0x00, 0x04, /* Authentication Data, 4 bytes */
	0x01, 0x02, 0xfe, 0xff,
};
static const uint8_t auth_reauth[] = {
	0xf0, 0x1c,       /* AUTH, remaining length 28 */
	0x19,             /* reason: re-authenticate */
	0x1a,             /* property length 26 */
	0x15, 0x00, 0x05, /* Authentication Method, 5 bytes */
	'P', 'L', 'A', 'I', 'N',
	0x1f, 0x00, 0x0f, /* Reason String, 15 bytes */
	't', 'o', 'k', 'e', 'n', ' ', 'r', 'e', 'f', 'r', 'e', 's', 'h', 'e', 'd',
};
/* clang-format on */

static void
auth_golden(const uint8_t *bytes, size_t len, uint8_t reason, const char *method)
{
	static const enum mqtt_role roles[] = { MQTT_ROLE_SERVER, MQTT_ROLE_CLIENT };
	uint8_t again[64];

	for (size_t r = 0; r < 2; r++) {
		struct mqtt_decoder d;
		struct mqtt_packet pkt;

		mqtt_decoder_init(&d, roles[r], MQTT_V5, 0, scratch, sizeof(scratch));
		assert_int_equal(mqtt_decode_buf(&d, bytes, len, &pkt), (int)len);
		assert_int_equal(pkt.type, MQTT_AUTH);
		assert_int_equal(pkt.disconnect.reason, reason);
		if (method != NULL) {
			assert_int_equal(
			    pkt.disconnect.props.v[MQTT_PROP_AUTHENTICATION_METHOD].s.len,
			    strlen(method));
			assert_memory_equal(
			    pkt.disconnect.props.v[MQTT_PROP_AUTHENTICATION_METHOD].s.s, method,
			    strlen(method));
		}
		assert_int_equal(mqtt_encode(again, sizeof(again), MQTT_V5, &pkt), (int)len);
		assert_memory_equal(again, bytes, len);
	}
}

static void
test_auth_from_the_spec(void **state)
{
	(void)state;
	auth_golden(auth_success, sizeof(auth_success), 0x00, NULL);
	auth_golden(auth_continue, sizeof(auth_continue), 0x18, "SCRAM-SHA-1");
	auth_golden(auth_reauth, sizeof(auth_reauth), 0x19, "PLAIN");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_captured_streams),
		cmocka_unit_test(test_captured_fields),
		cmocka_unit_test(test_captured_auth),
		cmocka_unit_test(test_auth_from_the_spec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
