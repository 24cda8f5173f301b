/*
 * test_mqtt_validate.c: one test row per validation rule of the MQTT codec's decoder (and the
 * valid neighbours of each rule), plus a check that every error code in mqtt_error.def is
 * exercised by some row or by a named test below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_codec.h"
#include "mqtt_topic.h"

#define SRV    MQTT_ROLE_SERVER
#define CLI    MQTT_ROLE_CLIENT
#define B(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
#define OK     0
#define E(x)   (-MQTT_E_##x)
#define RAW    0xFFFF /* b0 value: body is the whole packet */

struct vcase {
	const char *what;
	enum mqtt_role role;
	uint8_t version;
	uint16_t b0;
	const uint8_t *body;
	size_t blen;
	int expect;   /* OK: decodes; else -MQTT_E_x */
	uint32_t max; /* maximum packet size, 0: none */
};

/* Common CONNECT prefixes: protocol name "MQTT". */
#define MQTT_NAME 0, 4, 'M', 'Q', 'T', 'T'

static const struct vcase cases[] = {
	/* fixed header */
	{ "rlen with a 5th byte", SRV, 4, RAW, B(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F),
	    E(RLEN_TOO_LONG), 0 },
	{ "rlen in 4 bytes, 3.1.1", SRV, 4, RAW, B(0xC0, 0x80, 0x80, 0x80, 0x00), OK, 0 },
	{ "rlen non-minimal 5.0", SRV, 5, RAW, B(0xC0, 0x80, 0x00), E(RLEN_NONMINIMAL), 0 },
	{ "rlen non-minimal 3.1.1 ok", SRV, 4, RAW, B(0xC0, 0x80, 0x00), OK, 0 },
	{ "rlen non-minimal CONNECT 5.0", SRV, 0, RAW,
	    B(0x10, 0x8E, 0x00, MQTT_NAME, 5, 2, 0, 60, 0, 0, 1, 'c'), E(RLEN_NONMINIMAL), 0 },
	{ "packet too large", SRV, 4, 0x30, B(0, 1, 'a', 1, 2, 3, 4, 5, 6, 7, 8, 9),
	    E(PACKET_TOO_LARGE), 8 },
	{ "packet at the limit", SRV, 4, 0x30, B(0, 1, 'a', 1, 2, 3), OK, 8 },
	{ "type 0", SRV, 4, RAW, B(0x00, 0x00), E(TYPE_RESERVED), 0 },
	{ "AUTH in 3.1.1", SRV, 4, RAW, B(0xF0, 0x00), E(TYPE_RESERVED), 0 },
	{ "AUTH in 5.0", SRV, 5, RAW, B(0xF0, 0x00), OK, 0 },
	{ "PINGREQ before CONNECT", SRV, 0, RAW, B(0xC0, 0x00), E(NOT_CONNECTED), 0 },
	{ "CONNACK to a server", SRV, 5, 0x20, B(0, 0, 0), E(WRONG_DIRECTION), 0 },
	{ "SUBSCRIBE to a client", CLI, 4, 0x82, B(0, 1, 0, 1, 'a', 0), E(WRONG_DIRECTION), 0 },
	{ "DISCONNECT to a 3.1.1 client", CLI, 4, RAW, B(0xE0, 0x00), E(WRONG_DIRECTION), 0 },
	{ "DISCONNECT to a 5.0 client", CLI, 5, RAW, B(0xE0, 0x00), OK, 0 },
	{ "SUBSCRIBE flags 0000", SRV, 4, 0x80, B(0, 1, 0, 1, 'a', 0), E(FLAGS_RESERVED), 0 },
	{ "UNSUBSCRIBE flags 0000", SRV, 4, 0xA0, B(0, 1, 0, 1, 'a'), E(FLAGS_RESERVED), 0 },
	{ "PUBREL flags 0000", SRV, 4, 0x60, B(0, 1), E(FLAGS_RESERVED), 0 },
	{ "PUBREL flags 0010", SRV, 4, 0x62, B(0, 1), OK, 0 },
	{ "PUBACK flags 0010", SRV, 4, 0x42, B(0, 1), E(FLAGS_RESERVED), 0 },
	{ "PINGREQ flags 0001", SRV, 4, RAW, B(0xC1, 0x00), E(FLAGS_RESERVED), 0 },
	/* PUBLISH */
	{ "PUBLISH QoS 3", SRV, 4, 0x36, B(0, 1, 'a', 0, 1), E(QOS_INVALID), 0 },
	{ "PUBLISH DUP on QoS 0", SRV, 4, 0x38, B(0, 1, 'a'), E(DUP_QOS0), 0 },
	{ "PUBLISH DUP on QoS 1", SRV, 4, 0x3A, B(0, 1, 'a', 0, 1), OK, 0 },
	{ "topic runs past the packet", SRV, 4, 0x30, B(0, 5, 'a'), E(TRUNCATED), 0 },
	{ "packet id missing", SRV, 4, 0x32, B(0, 1, 'a', 0), E(TRUNCATED), 0 },
	{ "PINGREQ with a body", SRV, 4, RAW, B(0xC0, 0x01, 0x00), E(TRAILING), 0 },
	{ "3.1.1 PUBACK with a reason", SRV, 4, 0x40, B(0, 1, 0), E(TRAILING), 0 },
	{ "overlong UTF-8 (C0 80)", SRV, 4, 0x30, B(0, 2, 0xC0, 0x80), E(UTF8_MALFORMED), 0 },
	{ "invalid UTF-8 byte FF", SRV, 4, 0x30, B(0, 1, 0xFF), E(UTF8_MALFORMED), 0 },
	{ "cut UTF-8 sequence", SRV, 4, 0x30, B(0, 2, 'a', 0xE2), E(UTF8_MALFORMED), 0 },
	{ "stray continuation byte", SRV, 4, 0x30, B(0, 2, 'a', 0x80), E(UTF8_MALFORMED), 0 },
	{ "above U+10FFFF", SRV, 4, 0x30, B(0, 4, 0xF4, 0x90, 0x80, 0x80), E(UTF8_MALFORMED), 0 },
	{ "U+10FFFF ok", SRV, 4, 0x30, B(0, 4, 0xF4, 0x8F, 0xBF, 0xBF), OK, 0 },
	{ "surrogate U+D800", SRV, 4, 0x30, B(0, 3, 0xED, 0xA0, 0x80), E(UTF8_SURROGATE), 0 },
	{ "U+0000 in topic", SRV, 4, 0x30, B(0, 3, 'a', 0, 'b'), E(UTF8_NUL), 0 },
	{ "U+FFFF allowed", SRV, 4, 0x30, B(0, 3, 0xEF, 0xBF, 0xBF), OK, 0 },
	{ "control char U+0001 allowed", SRV, 4, 0x30, B(0, 1, 0x01), OK, 0 },
	{ "PUBLISH QoS 1 packet id 0", SRV, 4, 0x32, B(0, 1, 'a', 0, 0), E(PACKET_ID_ZERO), 0 },
	{ "PUBACK packet id 0", SRV, 4, 0x40, B(0, 0), E(PACKET_ID_ZERO), 0 },
	{ "SUBSCRIBE packet id 0", SRV, 4, 0x82, B(0, 0, 0, 1, 'a', 0), E(PACKET_ID_ZERO), 0 },
	{ "UNSUBACK packet id 0", CLI, 4, 0xB0, B(0, 0), E(PACKET_ID_ZERO), 0 },
	{ "empty topic 3.1.1", SRV, 4, 0x30, B(0, 0), E(TOPIC_EMPTY), 0 },
	{ "empty topic 5.0 no alias", SRV, 5, 0x30, B(0, 0, 0), E(TOPIC_EMPTY), 0 },
	{ "empty topic 5.0 with alias", SRV, 5, 0x30, B(0, 0, 3, 0x23, 0, 1), OK, 0 },
	{ "'+' in topic name", SRV, 4, 0x30, B(0, 3, 'a', '/', '+'), E(TOPIC_NAME_INVALID), 0 },
	{ "'#' in topic name", SRV, 4, 0x30, B(0, 1, '#'), E(TOPIC_NAME_INVALID), 0 },
	/* properties */
	{ "unknown property 0x04", SRV, 5, 0x30, B(0, 1, 'a', 2, 0x04, 0), E(PROP_UNKNOWN), 0 },
	{ "2-byte property id", SRV, 5, 0x30, B(0, 1, 'a', 3, 0x81, 0x01, 1), E(PROP_UNKNOWN), 0 },
	{ "session expiry in PUBLISH", SRV, 5, 0x30, B(0, 1, 'a', 5, 0x11, 0, 0, 0, 1),
	    E(PROP_NOT_ALLOWED), 0 },
	{ "will delay in CONNECT props", SRV, 0, 0x10,
	    B(MQTT_NAME, 5, 2, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 1, 'c'), E(PROP_NOT_ALLOWED), 0 },
	{ "two content types", SRV, 5, 0x30, B(0, 1, 'a', 8, 0x03, 0, 1, 'x', 0x03, 0, 1, 'y'),
	    E(PROP_DUPLICATE), 0 },
	{ "two user properties ok", SRV, 5, 0x30,
	    B(0, 1, 'a', 14, 0x26, 0, 1, 'k', 0, 1, 'v', 0x26, 0, 1, 'k', 0, 1, 'w'), OK, 0 },
	{ "two sub ids in SUBSCRIBE", SRV, 5, 0x82, B(0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0),
	    E(PROP_DUPLICATE), 0 },
	{ "two sub ids in PUBLISH to client", CLI, 5, 0x30, B(0, 1, 'a', 4, 0x0B, 1, 0x0B, 2), OK,
	    0 },
	{ "sub id from a client", SRV, 5, 0x30, B(0, 1, 'a', 2, 0x0B, 1), E(SUB_ID_FROM_CLIENT),
	    0 },
	{ "sub id 0", CLI, 5, 0x30, B(0, 1, 'a', 2, 0x0B, 0), E(PROP_VALUE), 0 },
	{ "payload format 2", SRV, 5, 0x30, B(0, 1, 'a', 2, 0x01, 2), E(PROP_VALUE), 0 },
	{ "response topic with wildcard", SRV, 5, 0x30, B(0, 1, 'a', 4, 0x08, 0, 1, '#'),
	    E(PROP_VALUE), 0 },
	{ "receive maximum 0", SRV, 0, 0x10, B(MQTT_NAME, 5, 2, 0, 60, 3, 0x21, 0, 0, 0, 1, 'c'),
	    E(PROP_VALUE), 0 },
	{ "property length past packet", SRV, 5, 0x30, B(0, 1, 'a', 9, 0x01, 1), E(PROP_LENGTH),
	    0 },
	{ "property value past block", SRV, 5, 0x30, B(0, 1, 'a', 2, 0x02, 0), E(PROP_LENGTH), 0 },
	{ "property length non-minimal", SRV, 5, 0x30, B(0, 1, 'a', 0x80, 0x00), E(VBI_NONMINIMAL),
	    0 },
	{ "sub id 5 bytes", CLI, 5, 0x30, B(0, 1, 'a', 6, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01),
	    E(VBI_TOO_LONG), 0 },
	{ "auth data without method", SRV, 0, 0x10,
	    B(MQTT_NAME, 5, 2, 0, 60, 4, 0x16, 0, 1, 'x', 0, 1, 'c'), E(AUTH_DATA_NO_METHOD), 0 },
	{ "topic alias 0", SRV, 5, 0x30, B(0, 1, 'a', 3, 0x23, 0, 0), E(TOPIC_ALIAS_ZERO), 0 },
	{ "bad UTF-8 in user property", SRV, 5, 0x30, B(0, 1, 'a', 7, 0x26, 0, 1, 0xFF, 0, 1, 'v'),
	    E(UTF8_MALFORMED), 0 },
	/* SUBSCRIBE, UNSUBSCRIBE, acks */
	{ "filter a/#/b", SRV, 4, 0x82, B(0, 1, 0, 5, 'a', '/', '#', '/', 'b', 0),
	    E(FILTER_INVALID), 0 },
	{ "filter a+", SRV, 4, 0x82, B(0, 1, 0, 2, 'a', '+', 0), E(FILTER_INVALID), 0 },
	{ "filter empty", SRV, 4, 0x82, B(0, 1, 0, 0, 0), E(FILTER_INVALID), 0 },
	{ "unsubscribe filter #a", SRV, 4, 0xA2, B(0, 1, 0, 2, '#', 'a'), E(FILTER_INVALID), 0 },
	{ "filter +/a/# ok", SRV, 4, 0x82, B(0, 1, 0, 5, '+', '/', 'a', '/', '#', 1), OK, 0 },
	{ "share without filter", SRV, 5, 0x82,
	    B(0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', 'r', 'p', 0),
	    E(SHARE_INVALID), 0 },
	{ "share empty group", SRV, 5, 0x82,
	    B(0, 1, 0, 0, 9, '$', 's', 'h', 'a', 'r', 'e', '/', '/', 'a', 0), E(SHARE_INVALID), 0 },
	{ "share wildcard group", SRV, 5, 0x82,
	    B(0, 1, 0, 0, 11, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '+', '/', 'a', 0),
	    E(SHARE_INVALID), 0 },
	{ "share ok", SRV, 5, 0x82,
	    B(0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', 1), OK, 0 },
	{ "share with no local", SRV, 5, 0x82,
	    B(0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', 0x04),
	    E(NO_LOCAL_SHARED), 0 },
	{ "SUBSCRIBE without filters", SRV, 4, 0x82, B(0, 1), E(SUBSCRIBE_EMPTY), 0 },
	{ "SUBSCRIBE 5.0 without filters", SRV, 5, 0x82, B(0, 1, 0), E(SUBSCRIBE_EMPTY), 0 },
	{ "UNSUBSCRIBE without filters", SRV, 4, 0xA2, B(0, 1), E(UNSUBSCRIBE_EMPTY), 0 },
	{ "SUBACK without codes", CLI, 4, 0x90, B(0, 1), E(ACK_EMPTY), 0 },
	{ "UNSUBACK 5.0 without codes", CLI, 5, 0xB0, B(0, 1, 0), E(ACK_EMPTY), 0 },
	{ "3.1.1 sub options bit 2", SRV, 4, 0x82, B(0, 1, 0, 1, 'a', 0x04), E(SUB_OPTS_RESERVED),
	    0 },
	{ "5.0 sub options bit 6", SRV, 5, 0x82, B(0, 1, 0, 0, 1, 'a', 0x40), E(SUB_OPTS_RESERVED),
	    0 },
	{ "sub QoS 3", SRV, 4, 0x82, B(0, 1, 0, 1, 'a', 3), E(SUB_QOS_INVALID), 0 },
	{ "retain handling 3", SRV, 5, 0x82, B(0, 1, 0, 0, 1, 'a', 0x30), E(RETAIN_HANDLING), 0 },
	{ "PUBACK reason 0x04", SRV, 5, 0x40, B(0, 1, 0x04), E(REASON_INVALID), 0 },
	{ "PUBACK reason 0x10 short", SRV, 5, 0x40, B(0, 1, 0x10), OK, 0 },
	{ "PUBACK 5.0 short form", SRV, 5, 0x40, B(0, 1), OK, 0 },
	{ "SUBACK code 3", CLI, 5, 0x90, B(0, 1, 0, 3), E(REASON_INVALID), 0 },
	{ "3.1.1 SUBACK code 0x87", CLI, 4, 0x90, B(0, 1, 0x87), E(REASON_INVALID), 0 },
	{ "3.1.1 CONNACK code 6", CLI, 4, 0x20, B(0, 6), E(REASON_INVALID), 0 },
	{ "DISCONNECT reason 0x10", SRV, 5, 0xE0, B(0x10), E(REASON_INVALID), 0 },
	{ "CONNACK flags 0x02", CLI, 4, 0x20, B(2, 0), E(CONNACK_FLAGS), 0 },
	{ "session present on failure", CLI, 5, 0x20, B(1, 0x80, 0), E(SESSION_PRESENT), 0 },
	/* CONNECT */
	{ "CONNECT 5.0 ok", SRV, 0, 0x10, B(MQTT_NAME, 5, 2, 0, 60, 0, 0, 1, 'c'), OK, 0 },
	{ "CONNECT 3.1.1 ok", SRV, 0, 0x10, B(MQTT_NAME, 4, 2, 0, 60, 0, 1, 'c'), OK, 0 },
	{ "protocol name MQTX", SRV, 0, 0x10, B(0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 1, 'c'),
	    E(PROTOCOL_NAME), 0 },
	{ "protocol level 6", SRV, 0, 0x10, B(MQTT_NAME, 6, 2, 0, 60, 0, 1, 'c'), E(PROTOCOL_LEVEL),
	    0 },
	{ "MQTT 3.1 (MQIsdp)", SRV, 0, 0x10,
	    B(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 1, 'c'), E(PROTOCOL_LEVEL), 0 },
	{ "CONNECT reserved flag", SRV, 0, 0x10, B(MQTT_NAME, 4, 3, 0, 60, 0, 1, 'c'),
	    E(CONNECT_RESERVED), 0 },
	{ "will QoS without will", SRV, 0, 0x10, B(MQTT_NAME, 4, 0x0A, 0, 60, 0, 1, 'c'),
	    E(WILL_FLAGS), 0 },
	{ "will retain without will", SRV, 0, 0x10, B(MQTT_NAME, 4, 0x22, 0, 60, 0, 1, 'c'),
	    E(WILL_FLAGS), 0 },
	{ "will QoS 3", SRV, 0, 0x10, B(MQTT_NAME, 4, 0x1E, 0, 60, 0, 1, 'c', 0, 1, 't', 0, 0),
	    E(WILL_QOS), 0 },
	{ "will topic with wildcard", SRV, 0, 0x10,
	    B(MQTT_NAME, 4, 0x06, 0, 60, 0, 1, 'c', 0, 1, '#', 0, 0), E(TOPIC_NAME_INVALID), 0 },
	{ "will ok", SRV, 0, 0x10, B(MQTT_NAME, 4, 0x2E, 0, 60, 0, 1, 'c', 0, 1, 't', 0, 1, 'x'),
	    OK, 0 },
	{ "password without user 3.1.1", SRV, 0, 0x10,
	    B(MQTT_NAME, 4, 0x42, 0, 60, 0, 1, 'c', 0, 1, 'p'), E(PASSWORD_NO_USER), 0 },
	{ "password without user 5.0 ok", SRV, 0, 0x10,
	    B(MQTT_NAME, 5, 0x42, 0, 60, 0, 0, 1, 'c', 0, 1, 'p'), OK, 0 },
	{ "empty client id, clean 0, 3.1.1", SRV, 0, 0x10, B(MQTT_NAME, 4, 0, 0, 60, 0, 0),
	    E(CLIENT_ID_EMPTY), 0 },
	{ "empty client id, clean 1, 3.1.1", SRV, 0, 0x10, B(MQTT_NAME, 4, 2, 0, 60, 0, 0), OK, 0 },
	{ "empty client id, clean 0, 5.0", SRV, 0, 0x10, B(MQTT_NAME, 5, 0, 0, 60, 0, 0, 0), OK,
	    0 },
	{ "password missing", SRV, 0, 0x10, B(MQTT_NAME, 4, 0xC2, 0, 60, 0, 1, 'c', 0, 1, 'u'),
	    E(TRUNCATED), 0 },
	{ "client id with U+0000", SRV, 0, 0x10, B(MQTT_NAME, 4, 2, 0, 60, 0, 1, 0), E(UTF8_NUL),
	    0 },
};

static uint8_t scratch[4096];

static int
run_case(const struct vcase *c)
{
	uint8_t buf[256];
	size_t n = 0;
	struct mqtt_decoder d;
	struct mqtt_packet pkt;

	if (c->b0 == RAW) {
		memcpy(buf, c->body, c->blen);
		n = c->blen;
	} else {
		buf[n++] = (uint8_t)c->b0;
		buf[n++] = (uint8_t)c->blen; /* all bodies here are < 128 bytes */
		memcpy(buf + n, c->body, c->blen);
		n += c->blen;
	}
	mqtt_decoder_init(&d, c->role, c->version, c->max, scratch, sizeof(scratch));
	return mqtt_decode_buf(&d, buf, n, &pkt);
}

static void
test_rule_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = run_case(&cases[i]);

		if (cases[i].expect == OK ? rc <= 0 : rc != cases[i].expect)
			fail_msg("case '%s': got %d (%s), want %d (%s)", cases[i].what, rc,
			    rc < 0 ? mqtt_err_str(rc) : "ok", cases[i].expect,
			    mqtt_err_str(cases[i].expect));
	}
}

/* Rules a test below got back from the codec (RULE_SEEN), besides the table's rows. */
static bool seen[MQTT_E_COUNT];

/* assert_int_equal(rc, -err), and err counted as tested: no rule is marked by hand. */
#define RULE_SEEN(rc, err)                      \
	do {                                    \
		assert_int_equal((rc), -(err)); \
		seen[(err)] = true;             \
	} while (0)

/* Every rule has a row above, or came back in a test of its own below (runs last). */
static void
test_every_rule_covered(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		seen[-cases[i].expect] = true;
	for (int e = 1; e < MQTT_E_COUNT; e++)
		if (!seen[e])
			fail_msg("no test for rule %d (%s)", e, mqtt_err_str(e));
}

static void
test_reason_for_each_rule(void **state)
{
	(void)state;
	assert_int_equal(mqtt_err_reason(-MQTT_E_RLEN_TOO_LONG), MQTT_RC_MALFORMED_PACKET);
	assert_int_equal(mqtt_err_reason(-MQTT_E_PACKET_ID_ZERO), MQTT_RC_PROTOCOL_ERROR);
	assert_int_equal(mqtt_err_reason(-MQTT_E_PACKET_TOO_LARGE), MQTT_RC_PACKET_TOO_LARGE);
	assert_int_equal(mqtt_err_reason(-MQTT_E_TOPIC_NAME_INVALID), MQTT_RC_TOPIC_NAME_INVALID);
	assert_int_equal(mqtt_err_reason(-MQTT_E_FILTER_INVALID), MQTT_RC_TOPIC_FILTER_INVALID);
	assert_int_equal(mqtt_err_reason(-MQTT_E_TOPIC_ALIAS_ZERO), MQTT_RC_TOPIC_ALIAS_INVALID);
	assert_int_equal(mqtt_err_connack_v311(-MQTT_E_PROTOCOL_LEVEL), 1);
	assert_int_equal(mqtt_err_connack_v311(-MQTT_E_CLIENT_ID_EMPTY), 2);
	assert_int_equal(mqtt_err_connack_v311(-MQTT_E_UTF8_NUL), -1);
	/* Every rule's reason is one a DISCONNECT or CONNACK may carry. */
	for (int e = 1; e < MQTT_E_COUNT; e++) {
		uint8_t rc = mqtt_err_reason(e);

		assert_true(mqtt_reason_valid(MQTT_V5, MQTT_DISCONNECT, rc) ||
		    mqtt_reason_valid(MQTT_V5, MQTT_CONNACK, rc));
		assert_non_null(mqtt_err_str(e));
	}
	assert_string_equal(mqtt_reason_name(0x00, MQTT_DISCONNECT), "Normal disconnection");
	assert_string_equal(mqtt_reason_name(0x00, MQTT_SUBACK), "Granted QoS 0");
	assert_string_equal(mqtt_reason_name(0x97, 0), "Quota exceeded");
	assert_string_equal(mqtt_prop_name(MQTT_PROP_TOPIC_ALIAS), "TOPIC_ALIAS");
	assert_string_equal(mqtt_prop_name(0x04), "UNKNOWN");
}

/* A topic straddling two segments needs scratch; with too little, a clear error. */
static void
test_scratch_full(void **state)
{
	static const uint8_t a[] = { 0x30, 0x07, 0x00, 0x05, 'a', 'b' };
	static const uint8_t b[] = { 'c', 'd', 'e' };
	struct mqtt_iov iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	uint8_t small[4], big[16];
	struct mqtt_decoder d;
	struct mqtt_packet pkt;

	(void)state;
	mqtt_decoder_init(&d, SRV, 4, 0, small, sizeof(small));
	RULE_SEEN(mqtt_decode(&d, iov, 2, &pkt), MQTT_E_SCRATCH_FULL);
	mqtt_decoder_init(&d, SRV, 4, 0, big, sizeof(big));
	assert_int_equal(mqtt_decode(&d, iov, 2, &pkt), 9);
	assert_int_equal(pkt.publish.topic.len, 5);
	assert_memory_equal(pkt.publish.topic.s, "abcde", 5);
}

static void
test_client_needs_version(void **state)
{
	static const uint8_t p[] = { 0xD0, 0x00 };
	struct mqtt_decoder d;
	struct mqtt_packet pkt;

	(void)state;
	mqtt_decoder_init(&d, CLI, 0, 0, scratch, sizeof(scratch));
	RULE_SEEN(mqtt_decode_buf(&d, p, sizeof(p), &pkt), MQTT_E_BAD_ARG);
}

/* Encoders refuse what the decoder would reject. */
static void
test_encoder_rejects(void **state)
{
	uint8_t buf[64];
	struct mqtt_publish p = { .topic = MQTT_STR("a/+"), .qos = 0 };
	struct mqtt_subscription sub = { .filter = MQTT_STR("a/#/b") };
	struct mqtt_subscribe s = { .packet_id = 1, .subs = &sub, .n_subs = 1 };
	struct mqtt_ack a = { .packet_id = 0 };
	struct mqtt_connect c = { .version = 3 };
	static char longname[70000];

	(void)state;
	assert_int_equal(mqtt_encode_publish(buf, sizeof(buf), 4, &p), -MQTT_E_TOPIC_NAME_INVALID);
	p.topic = MQTT_STR("a");
	p.qos = 3;
	assert_int_equal(mqtt_encode_publish(buf, sizeof(buf), 4, &p), -MQTT_E_QOS_INVALID);
	p.qos = 1;
	assert_int_equal(mqtt_encode_publish(buf, sizeof(buf), 4, &p), -MQTT_E_PACKET_ID_ZERO);
	p.packet_id = 7;
	mqtt_props_set_u32(&p.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 5);
	assert_int_equal(mqtt_encode_publish(buf, sizeof(buf), 4, &p), -MQTT_E_PROP_NOT_ALLOWED);
	assert_true(mqtt_encode_publish(buf, sizeof(buf), 5, &p) > 0);
	mqtt_props_set_u32(&p.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 5);
	assert_int_equal(mqtt_encode_publish(buf, sizeof(buf), 5, &p), -MQTT_E_PROP_NOT_ALLOWED);
	assert_int_equal(mqtt_encode_subscribe(buf, sizeof(buf), 4, &s), -MQTT_E_FILTER_INVALID);
	s.n_subs = 0;
	assert_int_equal(mqtt_encode_subscribe(buf, sizeof(buf), 4, &s), -MQTT_E_SUBSCRIBE_EMPTY);
	assert_int_equal(
	    mqtt_encode_ack(buf, sizeof(buf), 4, MQTT_PUBACK, &a), -MQTT_E_PACKET_ID_ZERO);
	a.packet_id = 1;
	assert_int_equal(mqtt_encode_ack(buf, sizeof(buf), 4, MQTT_SUBACK, &a), -MQTT_E_BAD_ARG);
	RULE_SEEN(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_BAD_ARG);
	memset(longname, 'a', sizeof(longname));
	RULE_SEEN(mqtt_topic_name_valid(longname, sizeof(longname)), MQTT_E_FIELD_TOO_LONG);
}

static int
payload_check(const char *bytes, size_t len, size_t cut)
{
	struct mqtt_iov iov[2] = { { (const uint8_t *)bytes, cut },
		{ (const uint8_t *)bytes + cut, len - cut } };
	struct mqtt_span span = { 0, 0, (uint32_t)len };

	return mqtt_payload_utf8_check(iov, 2, &span);
}

/* Payload format indicator 1: well-formed UTF-8 across segments; NUL allowed in a payload. */
/* A byte-by-byte reference for the string rules (RFC 3629, no surrogates, no U+0000). */
static int
utf8_ref(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t b = s[i];
		size_t n = b < 0x80      ? 1
		    : (b & 0xE0) == 0xC0 ? 2
		    : (b & 0xF0) == 0xE0 ? 3
		    : (b & 0xF8) == 0xF0 ? 4
					 : 0;
		uint32_t cp = n == 1 ? b
		    : n == 2         ? (b & 0x1Fu)
		    : n == 3         ? (b & 0x0Fu)
				     : (b & 0x07u);
		static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };

		if (n == 0 || n > len - i)
			return -MQTT_E_UTF8_MALFORMED;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return -MQTT_E_UTF8_MALFORMED;
			cp = cp << 6 | (s[i + k] & 0x3Fu);
		}
		if (cp < min[n] || cp > 0x10FFFF)
			return -MQTT_E_UTF8_MALFORMED;
		if (cp >= 0xD800 && cp <= 0xDFFF)
			return -MQTT_E_UTF8_SURROGATE;
		if (cp == 0)
			return -MQTT_E_UTF8_NUL;
		i += n;
	}
	return 0;
}

/* The 8-bytes-at-a-time ASCII path agrees with the reference wherever a bad byte falls. */
static void
test_utf8_fast_path(void **state)
{
	static const uint8_t alphabet[] = { 'a', 'a', 'a', 'a', 0x7f, 0x01, 0x00, 0x80, 0xc3, 0xa9,
		0xed, 0xa0, 0xf4, 0x90, 0xff, 0xe2, 0x82, 0xac };
	uint8_t buf[40];
	uint32_t seed = 12345;
	(void)state;

	for (int round = 0; round < 200000; round++) {
		size_t len = round % (sizeof(buf) + 1);

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			/* mostly ASCII, so the fast path runs and the odd byte lands anywhere */
			buf[i] = (seed >> 16) % 8 ? 'a' + (seed >> 20) % 26
						  : alphabet[(seed >> 8) % sizeof(alphabet)];
		}
		assert_int_equal(mqtt_utf8_check(buf, len), utf8_ref(buf, len));
	}
	assert_int_equal(mqtt_utf8_check((const uint8_t *)"sensors/line-1/temperature", 26), 0);
	assert_int_equal(
	    mqtt_utf8_check((const uint8_t *)"sensors/\0ine-1/temp", 20), -MQTT_E_UTF8_NUL);
	assert_int_equal(mqtt_utf8_check((const uint8_t *)"sensors/line-1/temp\xc3", 20),
	    -MQTT_E_UTF8_MALFORMED);
}

static void
test_payload_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t len;
		int rc;
	} rows[] = {
		{ "h\xc3\xa9llo \xf0\x9f\x98\x80", 11, 0 },
		{ "a\0b", 3, 0 },
		{ "\xef\xbf\xbf", 3, 0 },
		{ "\xed\xa0\x80", 3, -MQTT_E_PAYLOAD_FORMAT },
		{ "ab\xc3", 3, -MQTT_E_PAYLOAD_FORMAT },
		{ "\xc0\x80", 2, -MQTT_E_PAYLOAD_FORMAT },
		{ "\x80", 1, -MQTT_E_PAYLOAD_FORMAT },
		{ "\xf4\x90\x80\x80", 4, -MQTT_E_PAYLOAD_FORMAT },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		for (size_t cut = 0; cut <= rows[i].len; cut++)
			if (payload_check(rows[i].s, rows[i].len, cut) != rows[i].rc)
				fail_msg("row %zu cut %zu", i, cut);
			else if (rows[i].rc < 0)
				seen[-rows[i].rc] = true;
	assert_int_equal(mqtt_err_reason(-MQTT_E_PAYLOAD_FORMAT), MQTT_RC_PAYLOAD_FORMAT_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_table), cmocka_unit_test(test_reason_for_each_rule),
		cmocka_unit_test(test_scratch_full), cmocka_unit_test(test_client_needs_version),
		cmocka_unit_test(test_encoder_rejects), cmocka_unit_test(test_payload_utf8),
		cmocka_unit_test(test_utf8_fast_path),
		cmocka_unit_test(test_every_rule_covered), /* last: the others mark what they saw */
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
