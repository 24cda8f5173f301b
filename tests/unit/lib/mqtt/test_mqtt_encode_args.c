/*
 * test_mqtt_encode_args.c: what the encoder (lib/mqtt/mqtt_encode.c) refuses to write. Each
 * packet that breaks a rule of the specification comes back with that rule's error and not a
 * byte written; a buffer too small gets the size it needs and nothing else. The encoder is
 * what the broker, the agent's client and the simulator write with: a refusal here is a
 * malformed packet that never reaches a peer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_codec.h"
#include "mqtt_topic.h"

static uint8_t buf[256];

static void
fresh(void)
{
	memset(buf, 0xaa, sizeof(buf));
}

static void
untouched(void)
{
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != 0xaa)
			fail_msg("byte %zu written by a refused encode", i);
}

#define REFUSED(call, err)                                                                     \
	do {                                                                                   \
		int rc_;                                                                       \
		fresh();                                                                       \
		rc_ = (call);                                                                  \
		if (rc_ != -(err))                                                             \
			fail_msg("%s: %d (%s), want %s", #call, rc_, mqtt_err_str(rc_), #err); \
		untouched();                                                                   \
	} while (0)

static const struct mqtt_str bad_utf8 = { "a\xff", 2 };

static struct mqtt_connect
connect_ok(uint8_t version)
{
	return (struct mqtt_connect){ .version = version,
		.clean_start = true,
		.keepalive_s = 30,
		.client_id = MQTT_STR("c1") };
}

static void
test_connect_refusals(void **state)
{
	struct mqtt_connect c;
	int utf8_err = mqtt_utf8_check((const uint8_t *)bad_utf8.s, bad_utf8.len);
	int wild_err = mqtt_topic_name_valid("a/#", 3);

	(void)state;
	assert_true(utf8_err < 0 && wild_err < 0);
	c = connect_ok(5);
	assert_true(mqtt_encode_connect(buf, sizeof(buf), &c) > 0);
	c = connect_ok(3);
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_BAD_ARG);
	c = connect_ok(MQTT_V311);
	mqtt_props_set_u32(&c.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 60);
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_PROP_NOT_ALLOWED);
	c = connect_ok(MQTT_V5);
	c.client_id = bad_utf8;
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), -utf8_err);
	c = connect_ok(MQTT_V311);
	c.client_id = (struct mqtt_str){ "", 0 };
	c.clean_start = false;
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_CLIENT_ID_EMPTY);
	c.version = MQTT_V5; /* 5.0 lets the server assign one to a resumed session */
	assert_true(mqtt_encode_connect(buf, sizeof(buf), &c) > 0);
	c = connect_ok(MQTT_V311);
	c.has_password = true;
	c.password = MQTT_STR("pw");
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_PASSWORD_NO_USER);
	c = connect_ok(MQTT_V5);
	c.has_username = true;
	c.username = bad_utf8;
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), -utf8_err);
	c = connect_ok(MQTT_V5);
	c.has_will = true;
	c.will.topic = MQTT_STR("w");
	c.will.qos = 3;
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_WILL_QOS);
	c.will.qos = 1;
	mqtt_props_set_u32(&c.will.props, MQTT_PROP_TOPIC_ALIAS, 1); /* not a will property */
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_PROP_NOT_ALLOWED);
	c.will.props = (struct mqtt_props){ 0 };
	c.will.topic = MQTT_STR("a/#");
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), -wild_err);
	c.will.topic = MQTT_STR("w");
	assert_true(mqtt_encode_connect(buf, sizeof(buf), &c) > 0);
}

static void
test_connack_refusals(void **state)
{
	struct mqtt_connack a = { 0 };

	(void)state;
	REFUSED(mqtt_encode_connack(buf, sizeof(buf), 6, &a), MQTT_E_BAD_ARG);
	mqtt_props_set_u32(&a.props, MQTT_PROP_RECEIVE_MAXIMUM, 10);
	REFUSED(mqtt_encode_connack(buf, sizeof(buf), MQTT_V311, &a), MQTT_E_PROP_NOT_ALLOWED);
	a = (struct mqtt_connack){ .reason = 6 }; /* 3.1.1 return codes end at 5 */
	REFUSED(mqtt_encode_connack(buf, sizeof(buf), MQTT_V311, &a), MQTT_E_REASON_INVALID);
	a = (struct mqtt_connack){ .reason = 0x87, .session_present = true };
	REFUSED(mqtt_encode_connack(buf, sizeof(buf), MQTT_V5, &a), MQTT_E_SESSION_PRESENT);
	a.session_present = false;
	assert_int_equal(mqtt_encode_connack(buf, sizeof(buf), MQTT_V5, &a), 5);
}

static void
test_publish_refusals(void **state)
{
	struct mqtt_publish p = { .topic = MQTT_STR("t"), .qos = 3, .packet_id = 1 };
	int wild_err = mqtt_topic_name_valid("a/+", 3);

	(void)state;
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_QOS_INVALID);
	p = (struct mqtt_publish){ .topic = MQTT_STR("t"), .dup = true };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_DUP_QOS0);
	p = (struct mqtt_publish){ .topic = MQTT_STR("t"), .qos = 1 };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &p), MQTT_E_PACKET_ID_ZERO);
	REFUSED(mqtt_encode_publish_header(buf, sizeof(buf), MQTT_V311, &p), MQTT_E_PACKET_ID_ZERO);
	p = (struct mqtt_publish){ .topic = { "", 0 } };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &p), MQTT_E_TOPIC_EMPTY);
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_TOPIC_EMPTY);
	mqtt_props_set_u32(&p.props, MQTT_PROP_TOPIC_ALIAS, 3); /* 5.0: the alias names it */
	assert_int_equal(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), 8);
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &p), MQTT_E_PROP_NOT_ALLOWED);
	p = (struct mqtt_publish){ .topic = MQTT_STR("a/+") };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), -wild_err);
	p = (struct mqtt_publish){ .topic = MQTT_STR("t"), .payload = NULL, .payload_len = 4 };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_BAD_ARG);
	assert_int_equal(mqtt_encode_publish_header(buf, sizeof(buf), MQTT_V311, &p), 5);
	p.payload_len = MQTT_MAX_REMAINING_LEN + 1;
	REFUSED(
	    mqtt_encode_publish_header(buf, sizeof(buf), MQTT_V311, &p), MQTT_E_PACKET_TOO_LARGE);
	p.payload = buf;
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V311, &p), MQTT_E_PACKET_TOO_LARGE);
	/* the remaining length with the header would pass the limit, the payload alone not */
	p.payload_len = MQTT_MAX_REMAINING_LEN - 1;
	REFUSED(
	    mqtt_encode_publish_header(buf, sizeof(buf), MQTT_V311, &p), MQTT_E_PACKET_TOO_LARGE);
}

static void
test_ack_refusals(void **state)
{
	struct mqtt_ack a = { .packet_id = 1 };

	(void)state;
	REFUSED(mqtt_encode_ack(buf, sizeof(buf), MQTT_V5, MQTT_CONNACK, &a), MQTT_E_BAD_ARG);
	REFUSED(mqtt_encode_ack(buf, sizeof(buf), 0, MQTT_PUBACK, &a), MQTT_E_BAD_ARG);
	a.packet_id = 0;
	REFUSED(mqtt_encode_ack(buf, sizeof(buf), MQTT_V5, MQTT_PUBREC, &a), MQTT_E_PACKET_ID_ZERO);
	a = (struct mqtt_ack){ .packet_id = 1, .reason = 0x80 }; /* PUBREL takes 0 or 0x92 */
	REFUSED(mqtt_encode_ack(buf, sizeof(buf), MQTT_V5, MQTT_PUBREL, &a), MQTT_E_REASON_INVALID);
	mqtt_props_set_str(&a.props, MQTT_PROP_REASON_STRING, MQTT_STR("x"));
	REFUSED(
	    mqtt_encode_ack(buf, sizeof(buf), MQTT_V311, MQTT_PUBACK, &a), MQTT_E_PROP_NOT_ALLOWED);
	a.reason = 0x92;
	assert_int_equal(mqtt_encode_ack(buf, sizeof(buf), MQTT_V5, MQTT_PUBREL, &a), 10);
	assert_int_equal(buf[0], 0x62); /* PUBREL's fixed flags 0010 */
}

static void
test_subscribe_refusals(void **state)
{
	const struct mqtt_subscription good = { .filter = MQTT_STR("a/#"), .qos = 1 },
				       bad = { .filter = MQTT_STR("a/#/b"), .qos = 1 };
	struct mqtt_subscribe s = { .packet_id = 0, .subs = &good, .n_subs = 1 };
	int filter_err = mqtt_topic_filter_valid("a/#/b", 5);

	(void)state;
	assert_true(filter_err < 0);
	REFUSED(mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V5, &s), MQTT_E_PACKET_ID_ZERO);
	s.packet_id = 1;
	REFUSED(mqtt_encode_subscribe(buf, sizeof(buf), 2, &s), MQTT_E_BAD_ARG);
	s.n_subs = 0;
	REFUSED(mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V5, &s), MQTT_E_SUBSCRIBE_EMPTY);
	s.subs = &bad;
	s.n_subs = 1;
	REFUSED(mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V311, &s), -filter_err);
	s.subs = &good;
	mqtt_props_set_str(&s.props, MQTT_PROP_REASON_STRING, MQTT_STR("x"));
	REFUSED(mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V311, &s), MQTT_E_PROP_NOT_ALLOWED);
}

static void
test_unsubscribe_refusals(void **state)
{
	const struct mqtt_str good = MQTT_STR("a/+"), bad = MQTT_STR("a+");
	struct mqtt_unsubscribe u = { .packet_id = 0, .filters = &good, .n_filters = 1 };
	int filter_err = mqtt_topic_filter_valid("a+", 2);

	(void)state;
	assert_true(filter_err < 0);
	REFUSED(mqtt_encode_unsubscribe(buf, sizeof(buf), MQTT_V5, &u), MQTT_E_PACKET_ID_ZERO);
	u.packet_id = 7;
	REFUSED(mqtt_encode_unsubscribe(buf, sizeof(buf), 4 + 2, &u), MQTT_E_BAD_ARG);
	u.n_filters = 0;
	REFUSED(mqtt_encode_unsubscribe(buf, sizeof(buf), MQTT_V5, &u), MQTT_E_UNSUBSCRIBE_EMPTY);
	u.filters = &bad;
	u.n_filters = 1;
	REFUSED(mqtt_encode_unsubscribe(buf, sizeof(buf), MQTT_V5, &u), -filter_err);
}

static void
test_suback_refusals(void **state)
{
	static const uint8_t granted[] = { 1 }, bogus[] = { 0x03 }, unsub_ok[] = { 0x11 };
	struct mqtt_suback s = { .packet_id = 0, .reasons = granted, .n_reasons = 1 };

	(void)state;
	REFUSED(mqtt_encode_suback(buf, sizeof(buf), MQTT_V5, &s), MQTT_E_PACKET_ID_ZERO);
	s.packet_id = 9;
	REFUSED(mqtt_encode_suback(buf, sizeof(buf), 1, &s), MQTT_E_BAD_ARG);
	s.n_reasons = 0;
	REFUSED(mqtt_encode_suback(buf, sizeof(buf), MQTT_V5, &s), MQTT_E_ACK_EMPTY);
	s.reasons = bogus; /* QoS 3 is no SUBACK code */
	s.n_reasons = 1;
	REFUSED(mqtt_encode_suback(buf, sizeof(buf), MQTT_V311, &s), MQTT_E_REASON_INVALID);
	/* 3.1.1 UNSUBACK has no reason codes at all: with one it is refused, without it is 4 bytes */
	s.reasons = unsub_ok;
	REFUSED(mqtt_encode_unsuback(buf, sizeof(buf), MQTT_V311, &s), MQTT_E_BAD_ARG);
	assert_int_equal(mqtt_encode_unsuback(buf, sizeof(buf), MQTT_V5, &s), 6);
	s.n_reasons = 0;
	assert_int_equal(mqtt_encode_unsuback(buf, sizeof(buf), MQTT_V311, &s), 4);
	REFUSED(mqtt_encode_unsuback(buf, sizeof(buf), MQTT_V5, &s), MQTT_E_ACK_EMPTY);
}

static void
test_disconnect_and_dispatch(void **state)
{
	struct mqtt_disconnect d = { .reason = 0x05 }; /* not a DISCONNECT reason */
	struct mqtt_packet pkt = { .type = MQTT_AUTH };

	(void)state;
	REFUSED(mqtt_encode_disconnect(buf, sizeof(buf), MQTT_V5, &d), MQTT_E_REASON_INVALID);
	d.reason = 0;
	mqtt_props_set_u32(&d.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 0);
	REFUSED(mqtt_encode_disconnect(buf, sizeof(buf), MQTT_V311, &d), MQTT_E_PROP_NOT_ALLOWED);
	REFUSED(mqtt_encode(buf, sizeof(buf), MQTT_V311, &pkt), MQTT_E_TYPE_RESERVED);
	pkt.type = 0;
	REFUSED(mqtt_encode(buf, sizeof(buf), MQTT_V5, &pkt), MQTT_E_TYPE_RESERVED);
	pkt.type = MQTT_PINGREQ;
	assert_int_equal(mqtt_encode(buf, sizeof(buf), MQTT_V5, &pkt), 2);
	assert_int_equal(buf[0], 0xc0);
}

/* Too small a buffer: the size needed comes back and nothing is written. */
static void
test_small_buffer_gets_the_size(void **state)
{
	struct mqtt_connect c = connect_ok(MQTT_V5);
	int need;

	(void)state;
	need = mqtt_encode_connect(NULL, 0, &c);
	assert_int_equal(need, 17); /* 2 + 10 variable header + 1 property length + 4 client id */
	fresh();
	assert_int_equal(mqtt_encode_connect(buf, (size_t)need - 1, &c), need);
	untouched();
	assert_int_equal(mqtt_encode_connect(buf, (size_t)need, &c), need);
	assert_int_equal(buf[0], 0x10);
	assert_int_equal(buf[1], need - 2);
}

/* Properties the encoder refuses to put on the wire, whichever packet carries them. */
static void
test_property_refusals(void **state)
{
	static const uint32_t two_ids[] = { 1, 2 }, zero_id[] = { 0 };
	static const struct mqtt_user_prop bad_key[] = { { { "k\xc0", 2 }, MQTT_STR("v") } },
					   bad_val[] = { { MQTT_STR("k"), { "\xed\xa0\x80", 3 } } };
	const struct mqtt_subscription sub = { .filter = MQTT_STR("a"), .qos = 0 };
	struct mqtt_publish p = { .topic = MQTT_STR("t") };
	struct mqtt_subscribe s = { .packet_id = 1, .subs = &sub, .n_subs = 1 };
	struct mqtt_connect c = connect_ok(MQTT_V5);

	(void)state;
	mqtt_props_set_u32(&p.props, (enum mqtt_prop_id)0x04, 1); /* no property has id 4 */
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_PROP_UNKNOWN);
	p.props = (struct mqtt_props){ .present = 1ull << 50 };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_PROP_UNKNOWN);
	p.props = (struct mqtt_props){ 0 };
	mqtt_props_set_u32(&p.props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 2);
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_PROP_VALUE);
	p.props = (struct mqtt_props){ .user = bad_key, .n_user = 1 };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p),
	    -mqtt_utf8_check((const uint8_t *)"k\xc0", 2));
	p.props = (struct mqtt_props){ .user = bad_val, .n_user = 1 };
	REFUSED(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p), MQTT_E_UTF8_SURROGATE);
	/* subscription identifiers: several on a PUBLISH, one on a SUBSCRIBE, none on CONNECT */
	p.props = (struct mqtt_props){ .sub_ids = two_ids, .n_sub_ids = 2 };
	assert_true(mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &p) > 0);
	s.props = p.props;
	REFUSED(mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V5, &s), MQTT_E_PROP_DUPLICATE);
	s.props = (struct mqtt_props){ .sub_ids = zero_id, .n_sub_ids = 1 };
	REFUSED(mqtt_encode_subscribe(buf, sizeof(buf), MQTT_V5, &s), MQTT_E_PROP_VALUE);
	c.props = (struct mqtt_props){ .sub_ids = two_ids, .n_sub_ids = 1 };
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_PROP_NOT_ALLOWED);
	c.props = (struct mqtt_props){ 0 };
	mqtt_props_set_str(&c.props, MQTT_PROP_AUTHENTICATION_DATA, MQTT_STR("xyz"));
	REFUSED(mqtt_encode_connect(buf, sizeof(buf), &c), MQTT_E_AUTH_DATA_NO_METHOD);
	mqtt_props_set_str(&c.props, MQTT_PROP_AUTHENTICATION_METHOD, MQTT_STR("SCRAM-SHA-1"));
	assert_true(mqtt_encode_connect(buf, sizeof(buf), &c) > 0);
	assert_string_equal(
	    mqtt_prop_name(MQTT_PROP_AUTHENTICATION_METHOD), "AUTHENTICATION_METHOD");
	assert_string_equal(mqtt_prop_name(0x04), "UNKNOWN");
	assert_string_equal(mqtt_prop_name(0xff), "UNKNOWN");
}

/* The names a refusal is logged and answered with, in range and out of it. */
static void
test_names_of_refusals(void **state)
{
	(void)state;
	assert_string_equal(mqtt_type_name(MQTT_PINGREQ), "PINGREQ");
	assert_string_equal(mqtt_type_name((enum mqtt_type)16), "INVALID");
	assert_string_equal(mqtt_err_str(MQTT_E_WILL_QOS), mqtt_err_str(-MQTT_E_WILL_QOS));
	assert_string_equal(mqtt_err_str(-MQTT_E_COUNT), "unknown codec error");
	assert_int_equal(mqtt_err_reason(-MQTT_E_TOPIC_NAME_INVALID), 0x90);
	assert_int_equal(mqtt_err_reason(MQTT_E_PACKET_TOO_LARGE), 0x95);
	assert_int_equal(mqtt_err_reason(0), 0x80);
	assert_int_equal(mqtt_err_reason(-MQTT_E_COUNT), 0x80);
	assert_int_equal(mqtt_err_connack_v311(-MQTT_E_PROTOCOL_LEVEL), 1);
	assert_int_equal(mqtt_err_connack_v311(MQTT_E_CLIENT_ID_EMPTY), 2);
	assert_int_equal(mqtt_err_connack_v311(-MQTT_E_TRUNCATED), -1);
	/* 0x87: the same code everywhere; 0x8c asked for as a PUBACK reason: CONNACK's name */
	assert_string_equal(mqtt_reason_name(0x87, MQTT_PUBACK), "Not authorized");
	assert_string_equal(mqtt_reason_name(0x8c, MQTT_PUBACK), "Bad authentication method");
	assert_string_equal(mqtt_reason_name(0x04, 0), "Disconnect with Will Message");
	assert_string_equal(mqtt_reason_name(0xff, MQTT_CONNACK), "Unknown reason code");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_refusals),
		cmocka_unit_test(test_connack_refusals),
		cmocka_unit_test(test_publish_refusals),
		cmocka_unit_test(test_ack_refusals),
		cmocka_unit_test(test_subscribe_refusals),
		cmocka_unit_test(test_unsubscribe_refusals),
		cmocka_unit_test(test_suback_refusals),
		cmocka_unit_test(test_disconnect_and_dispatch),
		cmocka_unit_test(test_small_buffer_gets_the_size),
		cmocka_unit_test(test_property_refusals),
		cmocka_unit_test(test_names_of_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
