/*
 * test_mqttc_faults.c: the cloud MQTT client (agent/uplink/mqttc.c) against a scripted broker
 * (fake_broker.c) that misbehaves: CONNACK refused with each kind of reason, CONNACK properties
 * that limit the client, a connection reset mid-packet, garbage, packets out of order, acks with
 * failure reasons or for ids not in flight, a QoS 2 exchange cut by two reconnects, oversized
 * downlink messages, a send into a reset connection, store hooks that fail. Each test checks
 * what the broker received, the client's state and counters, and (where it matters) the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_broker.h"
#include "log_capture.h"
#include "log.h"

/* ---- connecting ---- */

/* Each kind of refusal is counted and backed off from; a refusal for credentials waits the
 * longest, one for anything else starts the series from its shortest delay. */
static void
test_connack_refusals(void **state)
{
	static const struct {
		uint8_t version, reason;
		bool auth;
	} cases[] = {
		{ MQTT_V5, 0x80, false }, /* unspecified */
		{ MQTT_V5, 0x88, false }, /* server unavailable */
		{ MQTT_V5, 0x86, true },  /* bad user name or password */
		{ MQTT_V311, 3, false },  /* server unavailable */
		{ MQTT_V311, 4, true },   /* bad user name or password */
		{ MQTT_V311, 5, true },   /* not authorized */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (i > 0) {
			fb_fini(&B);
			fb_init(&B, &C);
		}
		C.version = cases[i].version;
		fb_start_client(&B, &C);
		fb_accept(&B);
		expect(MQTT_CONNECT);
		fb_connack(&B, cases[i].reason, false, 0);
		assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
		assert_int_equal(cnt()[UPLINK_C_connack_refused], 1);
		assert_int_equal(cnt()[UPLINK_C_connects], 0);
		/* attempt 1 waits at most reconnect_min; after credentials, far longer (seed 42) */
		fb_tick(&B, C.reconnect_min_ms);
		assert_int_equal(cnt()[UPLINK_C_connect_attempts], cases[i].auth ? 1 : 2);
	}
}

/* One warning per series of failed attempts with the same cause, another when it changes; the
 * repeats go to the debug level. */
static void
test_failure_logged_once_per_cause(void **state)
{
	enum log_level lvl = log_get_level();

	(void)state;
	log_set_level(LOG_LVL_DEBUG);
	log_capture_begin();
	fb_start_client(&B, &C);
	for (int i = 0; i < 3; i++) {
		if (i == 0) {
			fb_accept(&B);
			expect(MQTT_CONNECT);
		} else {
			next_attempt();
		}
		fb_connack(&B, 0x88, false, 0);
	}
	next_attempt();
	fb_tick(&B, C.connect_timeout_ms + 1); /* no CONNACK: another cause */
	assert_int_equal(cnt()[UPLINK_C_connack_refused], 3);
	assert_int_equal(cnt()[UPLINK_C_connect_timeouts], 1);
	log_set_level(lvl);
	assert_int_equal(log_capture_count("[warn] mqtt: cannot connect", NULL), 2);
}

static void
test_packet_before_connack(void **state)
{
	(void)state;
	fb_start_client(&B, &C);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	fb_ack(&B, MQTT_PUBACK, 1, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors], 1);
	assert_int_equal(cnt()[UPLINK_C_disconnects], 0); /* it never was up */
}

static void
test_second_connack_drops(void **state)
{
	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_connack(&B, 0, false, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors], 1);
	assert_int_equal(cnt()[UPLINK_C_disconnects], 1);
}

/* CONNECT carries the credentials; no Session Expiry property when it is 0. */
static void
test_connect_credentials(void **state)
{
	struct fb_pkt p;

	(void)state;
	snprintf(C.username, sizeof(C.username), "gw");
	snprintf(C.password, sizeof(C.password), "secret");
	C.session_expiry_s = 0;
	fb_start_client(&B, &C);
	fb_accept(&B);
	p = expect(MQTT_CONNECT);
	assert_true(p.has_username);
	assert_true(p.has_password);
	assert_int_equal(p.session_expiry, 0);
}

/* The broker's limits in CONNACK: Server Keep Alive, Maximum QoS, Maximum Packet Size. */
static void
test_connack_limits(void **state)
{
	struct mqtt_connack ca = { 0 };
	struct fb_pkt p;
	char big[200];
	uint8_t buf[64];
	int n;

	(void)state;
	fb_start_client(&B, &C);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	mqtt_props_set_u32(&ca.props, MQTT_PROP_SERVER_KEEP_ALIVE, 2);
	mqtt_props_set_u32(&ca.props, MQTT_PROP_MAXIMUM_QOS, 1);
	mqtt_props_set_u32(&ca.props, MQTT_PROP_MAXIMUM_PACKET_SIZE, 100);
	n = mqtt_encode_connack(buf, sizeof(buf), MQTT_V5, &ca);
	fb_send(&B, buf, (size_t)n, false);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	expect(MQTT_SUBSCRIBE);
	publish("site/q2", 2, 1);
	p = expect(MQTT_PUBLISH);
	assert_int_equal(p.qos, 1); /* capped at the broker's Maximum QoS */
	assert_int_equal(cnt()[UPLINK_C_qos_downgraded], 1);
	assert_int_equal(cnt()[UPLINK_C_pub_qos1], 1);
	memset(big, 'x', sizeof(big));
	assert_int_equal(mqttc_publish(B.c, "site/big", big, sizeof(big), 1, false, 2), 0);
	assert_int_equal(cnt()[UPLINK_C_dropped_invalid], 1);
	assert_int_equal(B.ev[B.nev - 1].kind, 'a'); /* released to the store, refused */
	assert_int_equal(B.ev[B.nev - 1].ref, 2);
	assert_int_equal(B.ev[B.nev - 1].st, 0x95);
	fb_ack(&B, MQTT_PUBACK, p.packet_id, 0);
	fb_tick(&B, 2000); /* the broker's keepalive, not ours (10 s) */
	expect(MQTT_PINGREQ);
}

/* The configured QoS replaces the message's own. */
static void
test_qos_by_config(void **state)
{
	struct fb_pkt p;

	(void)state;
	C.qos = 1;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/a", 0, 1);
	p = expect(MQTT_PUBLISH);
	assert_int_equal(p.qos, 1);
	assert_int_equal(cnt()[UPLINK_C_qos_downgraded], 0);
}

/* ---- a broker that goes away or talks nonsense ---- */

/* A PUBLISH cut by a reset: the partial packet is forgotten, the next connection starts
 * clean and the message sent whole then is delivered once. */
static void
test_reset_mid_packet(void **state)
{
	struct mqtt_publish pub = { .qos = 1,
		.topic = { "site/cmd", 8 },
		.packet_id = 3,
		.payload = (const uint8_t *)"{}",
		.payload_len = 2 };
	uint8_t buf[64];
	int n;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	n = mqtt_encode_publish(buf, sizeof(buf), MQTT_V5, &pub);
	fb_send(&B, buf, 5, false);
	fb_reset(&B);
	for (int i = 0; i < 5; i++)
		fb_drive(&B, 5);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_recv_fail], 1);
	assert_int_equal(cnt()[UPLINK_C_disconnects], 1);
	assert_int_equal(fb_count(&B, 'm'), 0);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, true);
	fb_send(&B, buf, (size_t)n, false);
	assert_int_equal(expect(MQTT_PUBACK).packet_id, 3);
	assert_int_equal(fb_count(&B, 'm'), 1);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors], 0);
}

static void
test_garbage_drops(void **state)
{
	static const uint8_t junk[] = { 0x00, 0x00 }; /* packet type 0 is reserved */

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_send(&B, junk, sizeof(junk), false);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors], 1);
	/* and it reconnects */
	next_attempt();
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 2);
}

/* A well-formed packet the client has no use for is counted, the connection stays. */
static void
test_unexpected_packet_kept_up(void **state)
{
	struct mqtt_suback ua = {
		.packet_id = 9, .n_reasons = 1, .reasons = (const uint8_t *)"\0"
	};
	uint8_t buf[64];
	int n;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	n = mqtt_encode_unsuback(buf, sizeof(buf), MQTT_V5, &ua);
	fb_send(&B, buf, (size_t)n, false);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors], 1);
	publish("site/a", 1, 1);
	expect(MQTT_PUBLISH);
}

static void
test_server_disconnect(void **state)
{
	struct mqtt_disconnect d = { .reason = 0x8B }; /* server shutting down */
	uint8_t buf[64];
	int n;

	(void)state;
	log_capture_begin();
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	n = mqtt_encode_disconnect(buf, sizeof(buf), MQTT_V5, &d);
	fb_send(&B, buf, (size_t)n, false);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_server_disconnects], 1);
	assert_int_equal(cnt()[UPLINK_C_disconnects], 1);
	assert_int_equal(log_capture_count(
			     "lost: DISCONNECT from the broker: Server shutting down (0x8b)", NULL),
	    1);
}

/* A PINGRESP is what keeps a quiet connection up; the next PINGREQ goes a keepalive later. */
static void
test_pingresp_keeps_alive(void **state)
{
	static const uint8_t pingresp[] = { 0xD0, 0x00 };

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_tick(&B, 10000);
	expect(MQTT_PINGREQ);
	fb_send(&B, pingresp, sizeof(pingresp), false);
	fb_tick(&B, 5001); /* 1.5 keepalives since the CONNACK, not since the PINGRESP */
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	fb_tick(&B, 5000);
	expect(MQTT_PINGREQ);
	assert_int_equal(cnt()[UPLINK_C_pings], 2);
	assert_int_equal(cnt()[UPLINK_C_keepalive_timeouts], 0);
}

/* No keepalive (0): no PINGREQ, however long the silence. */
static void
test_keepalive_off(void **state)
{
	(void)state;
	C.keepalive_s = 0;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_tick(&B, 3600 * 1000);
	assert_true(fb_quiet(&B));
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	assert_int_equal(cnt()[UPLINK_C_pings], 0);
}

/* A broker that took a message (every byte: its TCP acknowledged them) and answers nothing for
 * it, a stall keepalive cannot see: 60 s later the client reconnects and the session resends it
 * (DUP, same id); before, it held its window slot until something else ended the connection.
 * Not while bytes are still on their way: a message larger than the socket buffers that the
 * broker does not read stays unanswered as long as it takes (a slow link). */
static void
test_unanswered_message_reconnects(void **state)
{
	static char big[12 << 20]; /* more than loopback TCP buffers hold (4 + 6 MiB by default) */
	struct fb_pkt p, q;

	(void)state;
	C.keepalive_s = 0;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/a", 1, 1);
	p = expect(MQTT_PUBLISH);
	fb_drive(&B, 100); /* the broker's delayed ACK (TCP): real time, not the test's clock */
	fb_tick(&B, 59000);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	fb_tick(&B, 1000);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_ack_timeouts], 1);
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	q = expect(MQTT_PUBLISH);
	assert_true(q.dup);
	assert_int_equal(q.packet_id, p.packet_id);
	fb_ack(&B, MQTT_PUBACK, q.packet_id, 0);
	assert_int_equal(mqttc_inflight(B.c), 0);

	memset(big, 'x', sizeof(big));
	assert_int_equal(mqttc_publish(B.c, "site/big", big, sizeof(big), 1, false, 2), 0);
	fb_drive(&B, 10);
	fb_tick(&B, 61000);
	fb_tick(&B, 61000);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP); /* bytes unread by the broker: waits */
	assert_int_equal(cnt()[UPLINK_C_ack_timeouts], 1);
}

/* The broker reset the connection and the client sends before it has read: the send fails,
 * the message stays in flight and goes again (DUP, same id) to the resumed session. */
static void
test_send_into_reset_connection(void **state)
{
	struct fb_pkt p, q;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/a", 1, 1);
	p = expect(MQTT_PUBLISH);
	fb_reset(&B);
	publish("site/b", 1, 2);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_send_fail], 1);
	assert_int_equal(mqttc_inflight(B.c), 2);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	q = expect(MQTT_PUBLISH);
	assert_true(q.dup);
	assert_int_equal(q.packet_id, p.packet_id);
	q = expect(MQTT_PUBLISH);
	assert_true(q.dup);
	assert_string_equal(q.topic, "site/b");
	assert_int_equal(cnt()[UPLINK_C_resent_dup], 2);
}

/* A connection up for a minute resets the backoff: after it is lost the next attempt comes
 * within reconnect_min, however many attempts failed before it. */
static void
test_stable_connection_resets_backoff(void **state)
{
	(void)state;
	C.keepalive_s = 0;
	fb_start_client(&B, &C);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	for (int i = 0; i < 4; i++) {
		fb_connack(&B, 0x88, false, 0);
		next_attempt();
	}
	fb_connack(&B, 0, false, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	expect(MQTT_SUBSCRIBE); /* read: a close with unread bytes would be a reset */
	fb_tick(&B, 60000);
	fb_close(&B);
	assert_int_equal(cnt()[UPLINK_C_peer_closed], 1);
	fb_tick(&B, C.reconnect_min_ms);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 6);
}

static void
test_disconnect_by_owner(void **state)
{
	(void)state;
	fb_start_client(&B, &C);
	mqttc_disconnect(B.c, "idle: nothing to drop"); /* nothing open: nothing happens */
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 0);
	fb_connect(&B, false);
	mqttc_disconnect(B.c, "operator");
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_disconnects], 1);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors] + cnt()[UPLINK_C_peer_closed], 0);
}

/* Closing the client while up says DISCONNECT (the session stays on the broker). */
static void
test_destroy_says_disconnect(void **state)
{
	(void)state;
	C.window = 1;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/a", 1, 1);
	publish("site/b", 1, 2); /* waits behind the window */
	expect(MQTT_PUBLISH);
	log_capture_begin();
	mqttc_destroy(B.c);
	B.c = NULL;
	B.watched_fd = -1; /* closed with the client */
	assert_int_equal(log_capture_count("2 messages not delivered at exit", NULL), 1);
	expect(MQTT_DISCONNECT);
}

/* ---- acknowledgements ---- */

static void
test_pubrec_with_failure_reason(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 4);
	p = expect(MQTT_PUBLISH);
	fb_ack(&B, MQTT_PUBREC, p.packet_id, 0x87); /* not authorized: for good */
	assert_true(fb_quiet(&B));                  /* no PUBREL for a refused message */
	assert_int_equal(cnt()[UPLINK_C_pub_refused], 1);
	assert_int_equal(mqttc_inflight(B.c), 0);
	assert_int_equal(B.ev[B.nev - 2].st, MQTTC_MSG_DONE);
	assert_int_equal(B.ev[B.nev - 1].kind, 'a');
	assert_int_equal(B.ev[B.nev - 1].st, 0x87);
}

/* A refusal that may pass (quota exceeded, the unspecific 0x80 and 0x83): the message is not
 * released (the gateway promised it) but sent again later as a new message: 1 s after the
 * first refusal, 2 s after the second, until the broker takes it. Before, it was released
 * (acked with the reason) and dropped. Other messages go meanwhile. */
static void
test_refused_for_now_sent_again(void **state)
{
	struct fb_pkt p, q;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 4);
	p = expect(MQTT_PUBLISH);
	fb_ack(&B, MQTT_PUBREC, p.packet_id, 0x97); /* quota exceeded */
	assert_true(fb_quiet(&B));
	assert_int_equal(cnt()[UPLINK_C_pub_deferred], 1);
	assert_int_equal(cnt()[UPLINK_C_pub_refused], 0);
	assert_int_equal(fb_count(&B, 'a'), 0); /* not released */
	assert_int_equal(mqttc_inflight(B.c), 0);
	assert_int_equal(mqttc_queued(B.c), 1);
	publish("site/q1", 1, 5); /* goes meanwhile */
	q = expect(MQTT_PUBLISH);
	assert_string_equal(q.topic, "site/q1");
	fb_ack(&B, MQTT_PUBACK, q.packet_id, 0);
	fb_tick(&B, 999);
	assert_true(fb_quiet(&B));
	fb_tick(&B, 1);
	q = expect(MQTT_PUBLISH); /* again, as a new message under its id (kept for it) */
	assert_string_equal(q.topic, "site/q2");
	assert_false(q.dup);
	assert_int_equal(q.packet_id, p.packet_id);
	fb_ack(&B, MQTT_PUBREC, q.packet_id, 0x80); /* unspecified: again, 2 s later */
	fb_tick(&B, 1999);
	assert_true(fb_quiet(&B));
	fb_tick(&B, 1);
	q = expect(MQTT_PUBLISH);
	assert_string_equal(q.topic, "site/q2");
	fb_ack(&B, MQTT_PUBREC, q.packet_id, 0);
	q = expect(MQTT_PUBREL);
	fb_ack(&B, MQTT_PUBCOMP, q.packet_id, 0);
	assert_int_equal(cnt()[UPLINK_C_pub_deferred], 2);
	assert_int_equal(cnt()[UPLINK_C_pub_refused], 0);
	assert_int_equal(B.ev[B.nev - 1].kind, 'a');
	assert_int_equal(B.ev[B.nev - 1].ref, 4);
	assert_int_equal(B.ev[B.nev - 1].st, 0);
	assert_int_equal(mqttc_queued(B.c) + mqttc_inflight(B.c), 0);
}

/* Acks that do not match what is in flight are counted and change nothing; a stray PUBREC
 * is answered with PUBREL "packet identifier not found" so the broker can finish. */
static void
test_acks_not_in_flight(void **state)
{
	struct fb_pkt p, q;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 1);
	p = expect(MQTT_PUBLISH);
	fb_ack(&B, MQTT_PUBACK, 999, 0);
	fb_ack(&B, MQTT_PUBACK, p.packet_id, 0);  /* PUBACK for a QoS 2 message */
	fb_ack(&B, MQTT_PUBCOMP, p.packet_id, 0); /* PUBCOMP before PUBREC */
	assert_true(fb_quiet(&B));
	assert_int_equal(cnt()[UPLINK_C_ack_unknown], 3);
	assert_int_equal(mqttc_inflight(B.c), 1);
	fb_ack(&B, MQTT_PUBREC, 998, 0);
	q = expect(MQTT_PUBREL);
	assert_int_equal(q.packet_id, 998);
	assert_int_equal(q.reason, 0x92);
	assert_int_equal(cnt()[UPLINK_C_ack_unknown], 4);
	/* the real one still completes */
	fb_ack(&B, MQTT_PUBREC, p.packet_id, 0);
	expect(MQTT_PUBREL);
	fb_ack(&B, MQTT_PUBCOMP, p.packet_id, 0);
	assert_int_equal(cnt()[UPLINK_C_pubcomp], 1);
	assert_int_equal(fb_count(&B, 'a'), 1);
}

/* A PUBREC repeated by the broker gets another PUBREL; the RELEASED step is recorded once. */
static void
test_pubrec_repeated(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 1);
	p = expect(MQTT_PUBLISH);
	fb_ack(&B, MQTT_PUBREC, p.packet_id, 0);
	expect(MQTT_PUBREL);
	fb_ack(&B, MQTT_PUBREC, p.packet_id, 0);
	expect(MQTT_PUBREL);
	assert_int_equal(fb_count(&B, 'p'), 2); /* SENT, RELEASED */
	assert_int_equal(cnt()[UPLINK_C_ack_unknown], 0);
}

/* One QoS 2 message through two lost connections: before PUBREC (PUBLISH again with DUP),
 * then after it (PUBREL again); the store hears each step once and the ack once. */
static void
test_qos2_across_two_reconnects(void **state)
{
	struct fb_pkt p;
	uint16_t id;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 5);
	id = expect(MQTT_PUBLISH).packet_id;
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	p = expect(MQTT_PUBLISH);
	assert_true(p.dup);
	assert_int_equal(p.packet_id, id);
	fb_ack(&B, MQTT_PUBREC, id, 0);
	expect(MQTT_SUBSCRIBE);
	expect(MQTT_PUBREL);
	fb_reset(&B);
	fb_drive(&B, 10);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	assert_int_equal(expect(MQTT_PUBREL).packet_id, id);
	fb_ack(&B, MQTT_PUBCOMP, id, 0);
	assert_int_equal(fb_count(&B, 'a'), 1);
	assert_int_equal(cnt()[UPLINK_C_resent_dup], 1);
	assert_int_equal(cnt()[UPLINK_C_pubrel_resent], 1);
	assert_int_equal(cnt()[UPLINK_C_pub_qos2], 1);
	assert_int_equal(fb_count(&B, 'p'), 3); /* SENT, RELEASED, DONE */
}

/* The store's hooks fail: counted, and the message still goes. */
static void
test_store_hooks_fail(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.fail_sync = true;
	publish("site/q2", 2, 1);
	p = expect(MQTT_PUBLISH);
	assert_int_equal(cnt()[UPLINK_C_persist_fail], 1);
	B.fail_sync = false;
	B.fail_persist = true;
	fb_ack(&B, MQTT_PUBREC, p.packet_id, 0);
	expect(MQTT_PUBREL);
	assert_int_equal(cnt()[UPLINK_C_persist_fail], 2);
}

/* ---- downlink ---- */

/* A topic name of any length MQTT allows (65,535 bytes) reaches the hook whole, and is answered
 * as any other: the client cut them at 255 bytes and acknowledged the message, dropped. */
static void
test_downlink_long_topic(void **state)
{
	static char topic[65536];

	(void)state;
	memset(topic, 'a', sizeof(topic) - 1);
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_publish(&B, topic, "{}", 1, 4, false);
	assert_int_equal(expect(MQTT_PUBACK).packet_id, 4);
	assert_int_equal(fb_count(&B, 'm'), 1);
	assert_int_equal(B.ev[0].topic_len, 65535);
	topic[300] = '\0';
	fb_publish(&B, topic, "{}", 2, 5, false);
	assert_int_equal(expect(MQTT_PUBREC).packet_id, 5);
	assert_int_equal(fb_count(&B, 'm'), 2);
	assert_int_equal(B.ev[1].topic_len, 300);
	assert_int_equal(cnt()[UPLINK_C_downlink_oversized], 0);
	assert_true(fb_quiet(&B));
}

/* A PUBLISH larger than the client takes (256 KiB) is acknowledged and dropped as its bytes
 * arrive, its header split over two reads; the connection stays and the next one arrives. */
static void
test_downlink_oversized_dropped(void **state)
{
	static uint8_t big[300100];
	size_t topic_len = 8, body = 2 + topic_len + 2 + 1 + 300000, n = 0;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	for (uint8_t qos = 1; qos <= 2; qos++) {
		n = 0;
		big[n++] = (uint8_t)(0x30 | qos << 1);
		for (size_t v = body; v > 0; v >>= 7)
			big[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
		big[n++] = 0;
		big[n++] = (uint8_t)topic_len;
		memcpy(big + n, "site/cmd", topic_len);
		n += topic_len;
		big[n++] = 0x12;
		big[n++] = 0x34;
		big[n++] = 0; /* no properties */
		memset(big + n, 'x', 300000);
		n += 300000;
		fb_send(&B, big, 6, false); /* the topic's length, not the id: not enough yet */
		assert_int_equal(cnt()[UPLINK_C_downlink_oversized], qos - 1);
		fb_send_big(&B, big + 6, n - 6);
		assert_int_equal(expect(qos == 1 ? MQTT_PUBACK : MQTT_PUBREC).packet_id, 0x1234);
		assert_int_equal(cnt()[UPLINK_C_downlink_oversized], qos);
		assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	}
	fb_publish(&B, "site/cmd", "{}", 1, 5, false);
	assert_int_equal(expect(MQTT_PUBACK).packet_id, 5);
	assert_int_equal(fb_count(&B, 'm'), 1);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors], 0);
}

static void
test_suback_refused(void **state)
{
	struct fb_pkt p;
	uint8_t buf[64];
	struct mqtt_suback sa = { .n_reasons = 1, .reasons = (const uint8_t *)"\x87" };
	int n;

	(void)state;
	log_capture_begin();
	fb_start_client(&B, &C);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	fb_connack(&B, 0, false, 0);
	p = expect(MQTT_SUBSCRIBE);
	sa.packet_id = (uint16_t)(p.packet_id + 1); /* not ours: ignored */
	n = mqtt_encode_suback(buf, sizeof(buf), MQTT_V5, &sa);
	fb_send(&B, buf, (size_t)n, false);
	assert_int_equal(cnt()[UPLINK_C_suback_refused], 0);
	sa.packet_id = p.packet_id;
	n = mqtt_encode_suback(buf, sizeof(buf), MQTT_V5, &sa);
	fb_send(&B, buf, (size_t)n, false);
	fb_send(&B, buf, (size_t)n, false); /* a repeat: the id is no longer ours */
	assert_int_equal(cnt()[UPLINK_C_suback_refused], 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	assert_int_equal(log_capture_count("refused the subscription to site/cmd (0x87)", NULL), 1);
}

/* ---- the API's refusals ---- */

static void
test_api_refusals(void **state)
{
	char f[16];

	(void)state;
	fb_start_client(&B, &C);
	assert_int_equal(mqttc_publish(B.c, "", "v", 1, 1, false, 1), -EINVAL);
	assert_int_equal(mqttc_publish(B.c, "a", "v", 1, 3, false, 1), -EINVAL);
	assert_int_equal(cnt()[UPLINK_C_dropped_invalid], 2);
	assert_int_equal(mqttc_restore(B.c, "a", "v", 1, 0, false, 1, 5, MQTTC_MSG_SENT), -EINVAL);
	assert_int_equal(mqttc_restore(B.c, "a", "v", 1, 1, false, 1, 0, MQTTC_MSG_SENT), -EINVAL);
	assert_int_equal(
	    mqttc_restore(B.c, "a", "v", 1, 1, false, 1, 5, MQTTC_MSG_RELEASED), -EINVAL);
	assert_int_equal(
	    mqttc_restore(B.c, "a", "v", 1, 2, false, 1, 5, MQTTC_MSG_QUEUED), -EINVAL);
	assert_int_equal(mqttc_restore(B.c, "", "v", 1, 2, false, 1, 5, MQTTC_MSG_SENT), -EINVAL);
	assert_int_equal(mqttc_inflight(B.c), 0);
	assert_int_equal(mqttc_subscribe_add(B.c, "", 1), -EINVAL);
	for (int i = 0; i < 32; i++) {
		snprintf(f, sizeof(f), "f/%d", i);
		assert_int_equal(mqttc_subscribe_add(B.c, f, 0), 0);
	}
	assert_int_equal(mqttc_subscribe_add(B.c, "f/x", 0), -ENOSPC);
	fb_connect(&B, false);
	/* restore only before the first connect */
	assert_int_equal(mqttc_restore(B.c, "a", "v", 1, 1, false, 1, 5, MQTTC_MSG_SENT), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connack_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failure_logged_once_per_cause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_packet_before_connack, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unanswered_message_reconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_for_now_sent_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_connack_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connack_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos_by_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_mid_packet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unexpected_packet_kept_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pingresp_keeps_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_into_reset_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stable_connection_resets_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_by_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_says_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pubrec_with_failure_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_not_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pubrec_repeated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_across_two_reconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_hooks_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downlink_long_topic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downlink_oversized_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suback_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
