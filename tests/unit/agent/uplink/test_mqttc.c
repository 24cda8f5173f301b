/*
 * test_mqttc.c: the cloud MQTT client (agent/uplink/mqttc.c) against a scripted broker
 * (fake_broker.c) that fails on demand: CONNACK refused, silence, packets cut into single
 * bytes, a connection lost in the middle of a QoS 2 exchange, a session the broker lost.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_broker.h"

static void
test_connect_v5_session_and_qos1(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	assert_int_equal(p.version, MQTT_V5);
	assert_false(p.clean_start); /* the session survives reconnects */
	assert_int_equal(p.session_expiry, 7 * 86400);
	assert_int_equal(p.keepalive_s, 10);
	fb_connack(&B, 0, false, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	{ /* no Nagle: a PUBLISH never waits for the ACK of the one before it */
		int on = 0;
		socklen_t ol = sizeof(on);

		assert_int_equal(getsockopt(B.watched_fd, IPPROTO_TCP, TCP_NODELAY, &on, &ol), 0);
		assert_int_equal(on, 1);
	}
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	publish("site/a", 1, 11);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_int_equal(p.qos, 1);
	assert_false(p.dup);
	assert_string_equal(p.topic, "site/a");
	assert_int_equal(fb_count(&B, 'a'), 0);
	fb_ack(&B, MQTT_PUBACK, p.packet_id, 0);
	assert_int_equal(fb_count(&B, 'a'), 1);
	assert_int_equal(B.ev[B.nev - 1].ref, 11);
	assert_int_equal(cnt()[UPLINK_C_puback], 1);
	assert_int_equal(mqttc_inflight(B.c), 0);
}

static void
test_v311_by_config(void **state)
{
	struct fb_pkt p;

	(void)state;
	C.version = MQTT_V311;
	fb_start_client(&B, &C);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	assert_int_equal(p.version, MQTT_V311);
	assert_false(p.clean_start);
	fb_connack(&B, 0, false, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
}

static void
test_qos2_flow_and_persist_hooks(void **state)
{
	struct fb_pkt p;
	uint16_t id;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 7);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.qos, 2);
	id = p.packet_id;
	/* SENT recorded under the id, and made durable, before the PUBLISH left */
	assert_int_equal(B.ev[0].kind, 'p');
	assert_int_equal(B.ev[0].st, MQTTC_MSG_SENT);
	assert_int_equal(B.ev[0].packet_id, id);
	assert_int_equal(B.ev[1].kind, 's');
	fb_ack(&B, MQTT_PUBREC, id, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREL);
	assert_int_equal(p.packet_id, id);
	assert_int_equal(B.ev[2].st, MQTTC_MSG_RELEASED);
	assert_int_equal(B.ev[3].kind, 's');
	assert_int_equal(fb_count(&B, 'a'), 0);
	fb_ack(&B, MQTT_PUBCOMP, id, 0);
	assert_int_equal(B.ev[4].st, MQTTC_MSG_DONE);
	assert_int_equal(B.ev[5].kind, 'a');
	assert_int_equal(B.ev[5].ref, 7);
	assert_int_equal(fb_count(&B, 's'), 2); /* DONE needs no sync: nothing it announces */
	assert_int_equal(cnt()[UPLINK_C_pubcomp], 1);
}

/*
 * The commit that makes a QoS 2 step durable runs elsewhere and takes its time (hold_sync: a
 * slow disk): publish returns at once, what was encoded before the step (a QoS 1 PUBLISH) leaves,
 * the step's PUBLISH waits until the commit ends; a step made while a commit is in flight waits
 * for the next one; the PUBREL after PUBREC waits for its own; and when the connection is lost
 * with a step not durable, the next connection's bytes (the resumed PUBLISH) wait for it too.
 */
static void
test_qos2_waits_for_commit(void **state)
{
	struct fb_pkt p;
	uint16_t id;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.hold_sync = true;
	publish("site/q1", 1, 1);
	publish("site/q2", 2, 2);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_string_equal(p.topic, "site/q1");
	assert_true(fb_quiet(&B)); /* the QoS 2 PUBLISH waits for its commit */
	assert_true(B.sync_pending);
	assert_true(mqttc_held_bytes(B.c) > 0);
	publish("site/q2b", 2, 3); /* while the commit is in flight */
	assert_int_equal(fb_count(&B, 's'), 1);
	fb_sync_done(&B);
	assert_true(fb_recv(&B, &p));
	assert_string_equal(p.topic, "site/q2");
	id = p.packet_id;
	assert_true(fb_quiet(&B)); /* q2b needs the next commit, started now */
	assert_int_equal(fb_count(&B, 's'), 2);
	fb_sync_done(&B);
	assert_true(fb_recv(&B, &p));
	assert_string_equal(p.topic, "site/q2b");
	fb_ack(&B, MQTT_PUBREC, id, 0);
	assert_true(fb_quiet(&B)); /* PUBREL waits for RELEASED to be durable */
	fb_sync_done(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREL);
	assert_int_equal(p.packet_id, id);
	assert_int_equal(mqttc_held_bytes(B.c), 0);
	/* a step, then the connection goes before its commit ended */
	publish("site/q2c", 2, 4);
	assert_true(fb_quiet(&B));
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	assert_true(fb_quiet(&B)); /* not even CONNECT before the commit */
	fb_sync_done(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	for (int i = 0; i < 4; i++) { /* DUP of q1, PUBREL of q2, DUPs of q2b, q2c, in order */
		assert_true(fb_recv(&B, &p));
		assert_int_equal(p.type, i == 1 ? MQTT_PUBREL : MQTT_PUBLISH);
	}
	assert_string_equal(p.topic, "site/q2c");
	assert_true(p.dup);
	assert_int_equal(cnt()[UPLINK_C_persist_fail], 0);
	B.hold_sync = false;
}

static void
test_connack_refused_backs_off(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	fb_connack(&B, 0x87, false, 0); /* not authorized */
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_connack_refused], 1);
	assert_int_equal(cnt()[UPLINK_C_connects], 0);
	/* credentials do not fix themselves: the next attempt is not soon */
	fb_tick(&B, 999);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 1);
	fb_tick(&B, C.reconnect_max_ms);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 2);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
}

static void
test_broker_silence_detected(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_tick(&B, 10000);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PINGREQ);
	assert_int_equal(cnt()[UPLINK_C_pings], 1);
	fb_tick(&B, 4000);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	fb_tick(&B, 1001); /* 1.5 keepalives without a byte from the broker */
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_keepalive_timeouts], 1);
	assert_int_equal(cnt()[UPLINK_C_disconnects], 1);
}

static void
test_connack_timeout(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	fb_tick(&B, C.connect_timeout_ms + 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_connect_timeouts], 1);
}

static void
test_bytewise_input(void **state)
{
	struct fb_pkt p;
	struct mqtt_connack ca = { 0 };
	uint8_t buf[64];
	int n;

	(void)state;
	fb_start_client(&B, &C);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	n = mqtt_encode_connack(buf, sizeof(buf), MQTT_V5, &ca);
	fb_send(&B, buf, (size_t)n, true);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	assert_true(fb_recv(&B, &p)); /* SUBSCRIBE */
	publish("site/a", 1, 1);
	assert_true(fb_recv(&B, &p));
	n = mqtt_encode_ack(
	    buf, sizeof(buf), MQTT_V5, MQTT_PUBACK, &(struct mqtt_ack){ .packet_id = p.packet_id });
	fb_send(&B, buf, (size_t)n, true);
	assert_int_equal(cnt()[UPLINK_C_puback], 1);
}

/* A payload far larger than the socket buffer: the client writes it in pieces as the socket
 * drains (partial writes), and the broker gets it whole. */
static void
test_partial_writes(void **state)
{
	static char big[300000];
	struct fb_pkt p;
	int small = 4096;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	setsockopt(B.watched_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	memset(big, 'x', sizeof(big));
	assert_int_equal(mqttc_publish(B.c, "site/big", big, sizeof(big), 1, false, 5), 0);
	publish("site/after", 1, 6);
	assert_true(fb_recv(&B, &p));
	assert_string_equal(p.topic, "site/big");
	assert_int_equal(p.payload_len, sizeof(big));
	assert_true(cnt()[UPLINK_C_bytes_out] > sizeof(big));
	assert_true(fb_recv(&B, &p));
	assert_string_equal(p.topic, "site/after");
}

/* The connection dies after PUBREC: the reconnect (session present) resends the PUBREL, not
 * the PUBLISH, and the message completes once. */
static void
test_disconnect_mid_qos2_resends_pubrel(void **state)
{
	struct fb_pkt p;
	uint16_t id;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 9);
	assert_true(fb_recv(&B, &p));
	id = p.packet_id;
	fb_ack(&B, MQTT_PUBREC, id, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREL);
	fb_close(&B);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(mqttc_inflight(B.c), 1);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREL); /* not a second PUBLISH */
	assert_int_equal(p.packet_id, id);
	assert_int_equal(cnt()[UPLINK_C_pubrel_resent], 1);
	assert_int_equal(cnt()[UPLINK_C_resent_dup], 0);
	fb_ack(&B, MQTT_PUBCOMP, id, 0);
	assert_int_equal(fb_count(&B, 'a'), 1);
	assert_int_equal(cnt()[UPLINK_C_pub_qos2], 1);
}

/* The connection dies before PUBREC: the PUBLISH goes again with DUP and the same id. */
static void
test_disconnect_before_pubrec_resends_dup(void **state)
{
	struct fb_pkt p;
	uint16_t id;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 9);
	publish("site/q1", 1, 10);
	assert_true(fb_recv(&B, &p));
	id = p.packet_id;
	assert_true(fb_recv(&B, &p));
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	fb_connack(&B, 0, true, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_true(p.dup);
	assert_int_equal(p.packet_id, id);
	assert_string_equal(p.topic, "site/q2");
	assert_true(fb_recv(&B, &p));
	assert_true(p.dup);
	assert_string_equal(p.topic, "site/q1"); /* in their order */
	assert_int_equal(cnt()[UPLINK_C_resent_dup], 2);
}

/* The broker lost our session: unacknowledged messages go again as new ones; a QoS 2
 * message past PUBREC is the broker's and is not sent twice. */
static void
test_session_lost(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/q2", 2, 1);
	assert_true(fb_recv(&B, &p));
	fb_ack(&B, MQTT_PUBREC, p.packet_id, 0);
	assert_true(fb_recv(&B, &p)); /* PUBREL */
	publish("site/q1", 1, 2);
	assert_true(fb_recv(&B, &p));
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, false);
	assert_int_equal(cnt()[UPLINK_C_session_lost], 1);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_string_equal(p.topic, "site/q1");
	assert_false(p.dup);
	assert_true(fb_quiet(&B)); /* no PUBLISH of site/q2 */
	assert_int_equal(cnt()[UPLINK_C_resent_new], 1);
}

/* After a restart the store puts back a QoS 2 message past PUBREC: PUBREL, same id. */
static void
test_restore_after_restart(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	assert_int_equal(
	    mqttc_restore(B.c, "site/q2", "v", 1, 2, false, 77, 4321, MQTTC_MSG_RELEASED), 0);
	assert_int_equal(
	    mqttc_restore(B.c, "site/q2b", "v", 1, 2, false, 78, 4322, MQTTC_MSG_SENT), 0);
	assert_int_equal(mqttc_restore(B.c, "x", "v", 1, 2, false, 79, 4322, MQTTC_MSG_SENT),
	    -EINVAL); /* id in use */
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	fb_connack(&B, 0, true, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREL);
	assert_int_equal(p.packet_id, 4321);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_true(p.dup);
	assert_int_equal(p.packet_id, 4322);
	fb_ack(&B, MQTT_PUBCOMP, 4321, 0);
	assert_int_equal(B.ev[B.nev - 1].ref, 77);
	/* a new message does not reuse an id still in flight */
	assert_true(fb_recv(&B, &p)); /* SUBSCRIBE */
	assert_int_not_equal(p.packet_id, 4322);
}

static void
test_window_and_receive_maximum(void **state)
{
	struct fb_pkt p;
	uint16_t first;

	(void)state;
	C.window = 8;
	fb_start_client(&B, &C);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	fb_connack(&B, 0, false, 2);  /* the broker takes 2 at a time */
	assert_true(fb_recv(&B, &p)); /* SUBSCRIBE */
	for (int i = 0; i < 5; i++)
		publish("site/w", 1, (uint64_t)i);
	assert_true(fb_recv(&B, &p));
	first = p.packet_id;
	assert_true(fb_recv(&B, &p));
	assert_true(fb_quiet(&B));
	assert_int_equal(mqttc_inflight(B.c), 2);
	assert_int_equal(mqttc_queued(B.c), 3);
	fb_ack(&B, MQTT_PUBACK, first, 0);
	assert_true(fb_recv(&B, &p));
	assert_true(fb_quiet(&B));
}

static void
test_downlink_qos2_once(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_publish(&B, "site/cmd", "{}", 2, 5, false);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	fb_publish(&B, "site/cmd", "{}", 2, 5, true); /* our PUBREC was lost: the broker resends */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 1);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 1);
	fb_ack(&B, MQTT_PUBREL, 5, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBCOMP);
	fb_publish(&B, "site/cmd", "{}", 2, 5, false); /* the id is free again: a new message */
	assert_int_equal(fb_count(&B, 'm'), 2);
	fb_publish(&B, "site/cmd", "{}", 1, 6, false);
	assert_true(fb_recv(&B, &p)); /* PUBREC of the previous */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(fb_count(&B, 'm'), 3);
}

/* A QoS 1/2 downlink message is acknowledged only once the gateway owns it (the hook says 0):
 * one it cannot take gets no PUBACK/PUBREC (the broker sends it again after a reconnect). */
static void
test_downlink_acked_once_owned(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.message_rc = -ENOBUFS;
	fb_publish(&B, "site/cmd", "{}", 1, 7, false);
	fb_publish(&B, "site/cmd", "{}", 2, 8, false);
	assert_true(fb_quiet(&B)); /* neither PUBACK nor PUBREC */
	assert_int_equal(fb_count(&B, 'm'), 2);
	assert_int_equal(cnt()[UPLINK_C_downlink_not_owned], 2);
	B.message_rc = 0; /* sent again (as after a reconnect): taken now, and acknowledged */
	fb_publish(&B, "site/cmd", "{}", 2, 8, true);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(p.packet_id, 8);
	assert_int_equal(B.ev[B.nev - 1].st, 2); /* the hook saw the message's QoS */
	fb_publish(&B, "site/cmd", "{}", 1, 7, true);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 7);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 0);
	assert_int_equal(fb_count(&B, 'm'), 4);
}

/* A message the gateway could not take waits unanswered in the broker's inflight window, and
 * the broker sends it again only on a new connection: on a steady link it never came back (and
 * a window's worth of them stopped the downlink). The client reconnects 10 s after a refusal,
 * 20 s after the next while refusals go on, and the session's resend is taken then. */
static void
test_downlink_refused_asked_again(void **state)
{
	struct fb_pkt p;

	(void)state;
	C.keepalive_s = 0;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.message_rc = -ENOBUFS;
	fb_publish(&B, "site/cmd", "{}", 1, 7, false);
	fb_publish(&B, "site/cmd", "{}", 1, 8, false);
	assert_true(fb_quiet(&B));
	fb_tick(&B, 9999);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	fb_tick(&B, 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_downlink_redeliver], 1);
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, true);
	fb_publish(&B, "site/cmd", "{}", 1, 7, true); /* the session's resend: still refused */
	fb_tick(&B, 10000);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP); /* 20 s this time */
	B.message_rc = 0;
	fb_publish(&B, "site/cmd", "{}", 1, 8, true); /* taken: the wait is 10 s again */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 8);
	fb_tick(&B, 10000);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE); /* 7 is still refused */
	assert_int_equal(cnt()[UPLINK_C_downlink_redeliver], 2);
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, true);
	fb_publish(&B, "site/cmd", "{}", 1, 7, true);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 7);
	fb_tick(&B, 600000); /* nothing refused on this connection: it stays */
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	assert_int_equal(cnt()[UPLINK_C_downlink_redeliver], 2);
	assert_int_equal(cnt()[UPLINK_C_downlink_not_owned], 3);
}

/* A message owned later (the hook says MQTTC_OWN_LATER, then mqttc_owned) is acknowledged then,
 * and one owned at once after it waits for it (MQTT 4.6: acknowledgements in the order the
 * messages came); one refused later gets no answer (counted); one owned after its connection
 * ended sends nothing, and the broker's QoS 2 resend on the next is a duplicate, not delivered
 * again. */
static void
test_downlink_owned_later_in_order(void **state)
{
	struct fb_pkt p;
	uint64_t t7, t9;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "{}", 1, 7, false);
	t7 = B.ev[B.nev - 1].ref;
	B.message_rc = 0;
	fb_publish(&B, "site/cmd", "{}", 2, 8, false); /* owned now: its PUBREC waits behind 7 */
	fb_publish(&B, "site/cmd", "{}", 0, 0, false); /* QoS 0: nothing to answer */
	assert_true(fb_quiet(&B));
	assert_int_equal(mqttc_acks_waiting(B.c), 2);
	assert_int_equal(cnt()[UPLINK_C_downlink_acks_waiting], 2); /* the gauge */
	mqttc_owned(B.c, t7, 1, 0, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 7);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(p.packet_id, 8);
	assert_int_equal(mqttc_acks_waiting(B.c), 0);
	assert_int_equal(cnt()[UPLINK_C_downlink_acks_waiting], 0);
	mqttc_owned(B.c, t7, 1, 0, 0); /* answered already: nothing more */
	assert_true(fb_quiet(&B));

	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "{}", 1, 10, false);
	mqttc_owned(B.c, B.ev[B.nev - 1].ref, 1, 0, -EIO);
	assert_true(fb_quiet(&B));
	assert_int_equal(cnt()[UPLINK_C_downlink_not_owned], 1);
	assert_int_equal(mqttc_acks_waiting(B.c), 0);

	fb_publish(&B, "site/cmd", "{}", 2, 9, false);
	t9 = B.ev[B.nev - 1].ref;
	fb_close(&B); /* before the disk said: no PUBREC went */
	assert_int_equal(mqttc_acks_waiting(B.c), 0);
	mqttc_owned(B.c, t9, 2, 9, 0);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, true);
	assert_true(fb_quiet(&B));
	fb_publish(&B, "site/cmd", "{}", 2, 9, true); /* the broker's resend */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(p.packet_id, 9);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 1);
	assert_int_equal(fb_count(&B, 'm'), 5); /* 7, 8, the QoS 0, 10, 9 once */
}

/* A PUBREL whose id is forgotten on disk later (the hook says MQTTC_OWN_LATER) gets its PUBCOMP
 * only from mqttc_released(); one that could not be forgotten gets none (counted), and the id
 * stays taken: a resend of the message under it is still a duplicate. */
static void
test_downlink_released_later(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_publish(&B, "site/cmd", "{}", 2, 5, false);
	assert_true(fb_recv(&B, &p)); /* PUBREC */
	B.released_rc = MQTTC_OWN_LATER;
	fb_ack(&B, MQTT_PUBREL, 5, 0);
	assert_true(fb_quiet(&B)); /* no PUBCOMP yet */
	assert_int_equal(fb_count(&B, 'r'), 1);
	mqttc_released(B.c, 5, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBCOMP);
	assert_int_equal(p.packet_id, 5);
	fb_publish(&B, "site/cmd", "{}", 2, 5, false); /* the id is free: a new message */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(fb_count(&B, 'm'), 2);

	fb_ack(&B, MQTT_PUBREL, 5, 0);
	mqttc_released(B.c, 5, -EIO);
	assert_true(fb_quiet(&B));
	assert_int_equal(cnt()[UPLINK_C_downlink_release_fail], 1);
	fb_publish(&B, "site/cmd", "{}", 2, 5, true); /* still taken: answered, not delivered */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 2);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 1);
}

/* A PUBREL whose free waits for the disk, then the broker loses the session (session present
 * 0: every id released) and its new session's first QoS 2 message takes the same id. The old
 * PUBREL's late mqttc_released() owes the new session nothing: no PUBCOMP for an id the broker
 * did not release, and the new message's id stays taken (its resend is a duplicate). Before,
 * the late answer sent that PUBCOMP and forgot the new message's id: its resend was delivered
 * a second time. */
static void
test_downlink_released_after_session_lost(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_publish(&B, "site/cmd", "{}", 2, 5, false);
	assert_true(fb_recv(&B, &p)); /* PUBREC */
	B.released_rc = MQTTC_OWN_LATER;
	fb_ack(&B, MQTT_PUBREL, 5, 0);
	assert_true(fb_quiet(&B));
	B.released_rc = 0;
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, false); /* the session is gone */
	assert_true(fb_quiet(&B));
	fb_publish(&B, "site/cmd", "{}", 2, 5, false); /* a new message */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 2);
	mqttc_released(B.c, 5, 0); /* the old PUBREL's free reached the disk */
	assert_true(fb_quiet(&B));
	fb_publish(&B, "site/cmd", "{}", 2, 5, true); /* the new message's resend */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 2);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 1);
	fb_ack(&B, MQTT_PUBREL, 5, 0); /* its own PUBREL: PUBCOMP at once */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBCOMP);
	assert_int_equal(p.packet_id, 5);
}

/* A QoS 2 message owned after its connection ended and after the broker lost the session: its
 * id belongs to no session now, and the new session may have used and completed it. The late
 * mqttc_owned() does not take the id again: the new session's next message under it is
 * delivered, not answered as a duplicate. */
static void
test_downlink_owned_after_session_lost(void **state)
{
	struct fb_pkt p;
	uint64_t t5;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "{}", 2, 5, false);
	t5 = B.ev[B.nev - 1].ref;
	B.message_rc = 0;
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, false); /* the session is gone */
	assert_true(fb_quiet(&B));
	fb_publish(&B, "site/cmd", "{}", 2, 5, false); /* the new session's: delivered, done */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	fb_ack(&B, MQTT_PUBREL, 5, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBCOMP);
	assert_int_equal(fb_count(&B, 'm'), 2);
	mqttc_owned(B.c, t5, 2, 5, 0); /* the old message reached the disk */
	assert_true(fb_quiet(&B));
	fb_publish(&B, "site/cmd", "{}", 2, 5, false); /* the next new one */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 3);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 0);
}

/* A broker that sends a QoS 2 message again on the same connection while its PUBREC waits for
 * the disk (brokers with a retry interval do): a duplicate, not delivered again, and the one
 * answer (PUBREC) goes when the first is owned; the acknowledgements after it are not held
 * back. Before, the resend was delivered as a second message, whose answer the downlink gave
 * in the first's place (its token): the first's never came, and every later acknowledgement
 * on the connection waited behind it. */
static void
test_downlink_resent_on_same_connection(void **state)
{
	struct fb_pkt p;
	uint64_t t5;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "{}", 2, 5, false);
	t5 = B.ev[B.nev - 1].ref;
	fb_publish(&B, "site/cmd", "{}", 2, 5, true); /* the broker's retry */
	assert_true(fb_quiet(&B));
	assert_int_equal(fb_count(&B, 'm'), 1);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 1);
	B.message_rc = 0;
	fb_publish(&B, "site/cmd", "{}", 1, 6, false); /* owned at once: waits behind 5 */
	assert_true(fb_quiet(&B));
	mqttc_owned(B.c, t5, 2, 5, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(p.packet_id, 5);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 6);
	assert_true(fb_quiet(&B));
	assert_int_equal(mqttc_acks_waiting(B.c), 0);
}

/* A QoS 2 retry (DUP) that crossed our PUBREC, its answer queued behind a message still waiting
 * for the disk, then the broker's PUBREL and our PUBCOMP: the exchange is over. The retry's late
 * PUBREC marked the id as delivered again, so the broker's next message under it (its id free
 * since the PUBCOMP) was answered as a duplicate and never delivered; now a PUBREL drops the
 * answers still queued for its id (the broker had ours, or it would not have sent it).
 * fuzz_mqttc found it ("a new QoS 2 message taken for a duplicate"). */
static void
test_downlink_retry_answer_after_pubcomp(void **state)
{
	struct fb_pkt p;
	uint64_t t9;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_publish(&B, "site/cmd", "b", 2, 5, false);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(p.packet_id, 5);
	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "c", 2, 9, false); /* waits for the disk */
	t9 = B.ev[B.nev - 1].ref;
	fb_publish(&B, "site/cmd", "b", 2, 5, true); /* the retry, sent before our PUBREC came */
	assert_int_equal(fb_count(&B, 'm'), 2);
	fb_ack(&B, MQTT_PUBREL, 5, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBCOMP);
	assert_int_equal(p.packet_id, 5);
	mqttc_owned(B.c, t9, 2, 9, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(p.packet_id, 9);
	assert_true(fb_quiet(&B)); /* no PUBREC 5 after the PUBCOMP */
	B.message_rc = 0;
	fb_publish(&B, "site/cmd", "d", 2, 5, false); /* a new message under the free id */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 3); /* delivered */
	assert_int_equal(mqttc_acks_waiting(B.c), 0);
}

/* QoS 1 sent again on the same connection (a broker with a retry interval): one delivery and
 * one PUBACK. The broker takes the first PUBACK as freeing the id and may send a new message
 * under it at once; a second PUBACK (the retry's) would answer that one before the gateway owns
 * it, and a crash then loses it. Before, the retry was delivered again and answered again, both
 * while the first's answer waited and after it had gone out. */
static void
test_downlink_qos1_resent_on_same_connection(void **state)
{
	struct fb_pkt p;
	uint64_t t7;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "a", 1, 7, false);
	t7 = B.ev[B.nev - 1].ref;
	fb_publish(&B, "site/cmd", "a", 1, 7, true); /* the retry, before our PUBACK */
	assert_true(fb_quiet(&B));
	assert_int_equal(fb_count(&B, 'm'), 1);
	mqttc_owned(B.c, t7, 1, 0, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 7);
	assert_true(fb_quiet(&B));
	assert_int_equal(mqttc_acks_waiting(B.c), 0);

	B.message_rc = 0;
	fb_publish(&B, "site/cmd", "b", 1, 8, false); /* owned at once */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 8);
	fb_publish(&B, "site/cmd", "b", 1, 8, true); /* the retry crossed our PUBACK */
	assert_true(fb_quiet(&B));
	assert_int_equal(fb_count(&B, 'm'), 2);
	assert_int_equal(cnt()[UPLINK_C_downlink_dup_qos1], 2);

	/* the id is free again: a new message under it is delivered and answered */
	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "c", 1, 8, false);
	assert_int_equal(fb_count(&B, 'm'), 3);
	assert_true(fb_quiet(&B)); /* not before it is owned */
	mqttc_owned(B.c, B.ev[B.nev - 1].ref, 1, 0, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 8);

	/* after a reconnect a DUP is the session's resend: delivered and answered */
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_connect(&B, true);
	B.message_rc = 0;
	fb_publish(&B, "site/cmd", "c", 1, 8, true);
	assert_int_equal(fb_count(&B, 'm'), 4);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBACK);
	assert_int_equal(p.packet_id, 8);

	/* without DUP it is a new message, even under an id whose answer waits (a broker that
	 * reuses ids early): delivered, not taken for a resend and lost */
	B.message_rc = MQTTC_OWN_LATER;
	fb_publish(&B, "site/cmd", "d", 1, 9, false);
	t7 = B.ev[B.nev - 1].ref;
	fb_publish(&B, "site/cmd", "e", 1, 9, false);
	assert_int_equal(fb_count(&B, 'm'), 6);
	mqttc_owned(B.c, t7, 1, 0, 0);
	mqttc_owned(B.c, B.ev[B.nev - 1].ref, 1, 0, 0);
	for (int i = 0; i < 2; i++) {
		assert_true(fb_recv(&B, &p));
		assert_int_equal(p.type, MQTT_PUBACK);
		assert_int_equal(p.packet_id, 9);
	}
	assert_true(fb_quiet(&B));
}

/* Filters added with mqttc_subscribe_add() go in the same SUBSCRIBE, at their QoS. */
static void
test_downlink_filters_subscribed(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	assert_int_equal(mqttc_subscribe_add(B.c, "site/lab/cmd/plant/#", 2), 0);
	assert_int_equal(mqttc_subscribe_add(B.c, "site/lab/cmd/plant/#", 2), -EEXIST);
	assert_int_equal(mqttc_subscribe_add(B.c, "x", 3), -EINVAL);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	fb_connack(&B, 0, false, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.n_filters, 2);
	assert_string_equal(p.topic, "site/cmd");
	assert_string_equal(p.filter2, "site/lab/cmd/plant/#");
	assert_int_equal(p.filter2_qos, 2);
}

/* A filter added while connected (a reload's new downlink rule) is subscribed at once, alone;
 * the next connect subscribes every filter again. */
static void
test_filter_added_while_up(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	assert_int_equal(mqttc_subscribe_add(B.c, "site/lab/cmd/valve/#", 2), 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.n_filters, 1);
	assert_string_equal(p.topic, "site/lab/cmd/valve/#");
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.n_filters, 2);
	assert_string_equal(p.topic, "site/cmd");
	assert_string_equal(p.filter2, "site/lab/cmd/valve/#");
}

/* A filter removed while connected (a reload dropped its downlink rule) is unsubscribed at once
 * and not subscribed at the next connect. */
static void
test_filter_removed_while_up(void **state)
{
	struct fb_pkt p;
	uint8_t buf[64];
	struct mqtt_suback ua = { .n_reasons = 0 };
	uint8_t ok = 0;
	int n;

	(void)state;
	fb_start_client(&B, &C);
	assert_int_equal(mqttc_subscribe_add(B.c, "site/lab/cmd/plant/#", 2), 0);
	assert_int_equal(mqttc_subscribe_add(B.c, "site/lab/cmd/valve/#", 2), 0);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	fb_connack(&B, 0, false, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.n_filters, 3);
	assert_int_equal(mqttc_subscribe_remove(B.c, "site/lab/cmd/plant/#"), 0);
	assert_int_equal(mqttc_subscribe_remove(B.c, "site/lab/cmd/plant/#"), -ENOENT);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
	assert_int_equal(p.n_filters, 1);
	assert_string_equal(p.topic, "site/lab/cmd/plant/#");
	ua.packet_id = p.packet_id;
	ua.reasons = &ok;
	ua.n_reasons = B.version == MQTT_V5 ? 1 : 0;
	n = mqtt_encode_unsuback(buf, sizeof(buf), B.version, &ua);
	assert_true(n > 0);
	fb_send(&B, buf, (size_t)n, false);
	assert_int_equal(cnt()[UPLINK_C_unsubscribed], 1);
	assert_int_equal(cnt()[UPLINK_C_protocol_errors], 0);
	fb_close(&B);
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	fb_connack(&B, 0, true, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.n_filters, 2);
	assert_string_equal(p.topic, "site/cmd");
	assert_string_equal(p.filter2, "site/lab/cmd/valve/#");
}

/* Remember the QoS 2 ids the message hook was given, as the downlink keeps them on disk. */
static int
owned_ids(uint16_t *ids, int max)
{
	int n = 0;

	for (int i = 0; i < B.nev; i++)
		if (B.ev[i].kind == 'm' && B.ev[i].st == 2 && B.ev[i].packet_id != 0 && n < max)
			ids[n++] = B.ev[i].packet_id;
	for (int i = 0; i < B.nev; i++) /* and forget the released ones */
		for (int j = 0; B.ev[i].kind == 'r' && j < n; j++)
			if (B.ev[i].packet_id == ids[j])
				ids[j] = 0;
	return n;
}

/* Exactly once across an agent restart: a QoS 2 message delivered and answered PUBREC, the
 * agent killed before the PUBREL; the next agent puts back the ids the downlink kept, and the
 * broker's resend (DUP) is answered PUBREC, not delivered again; PUBREL frees the id where it is
 * kept (the released hook), and a failure to forget it there withholds PUBCOMP. */
static void
test_downlink_qos2_once_across_restart(void **state)
{
	struct fb_pkt p;
	uint16_t ids[8];
	int n;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	fb_publish(&B, "site/lab/cmd/plant/v", "{}", 2, 9, false);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 1);
	n = owned_ids(ids, 8);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 9);
	/* SIGKILL: the client goes with its memory; the next one starts from what was kept */
	fb_close(&B);
	mqttc_destroy(B.c);
	B.c = NULL;
	fb_start_client(&B, &C);
	for (int i = 0; i < n; i++)
		mqttc_restore_in(B.c, ids[i]);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	fb_connack(&B, 0, true, 0); /* the session is there: it resends the PUBLISH */
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	fb_publish(&B, "site/lab/cmd/plant/v", "{}", 2, 9, true);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 1); /* not delivered twice */
	assert_int_equal(cnt()[UPLINK_C_downlink_dup], 1);
	B.released_rc = -EIO; /* cannot forget it on disk: no PUBCOMP, the id stays taken */
	fb_ack(&B, MQTT_PUBREL, 9, 0);
	assert_true(fb_quiet(&B));
	assert_int_equal(cnt()[UPLINK_C_downlink_release_fail], 1);
	fb_publish(&B, "site/lab/cmd/plant/v", "{}", 2, 9, true);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBREC);
	assert_int_equal(fb_count(&B, 'm'), 1);
	B.released_rc = 0;
	fb_ack(&B, MQTT_PUBREL, 9, 0);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_PUBCOMP);
	assert_int_equal(owned_ids(ids, 8), 1);
	assert_int_equal(ids[0], 0); /* released where it was kept */
}

static void
test_refused_publish_is_released(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	fb_connect(&B, false);
	publish("site/denied", 1, 3);
	assert_true(fb_recv(&B, &p));
	fb_ack(&B, MQTT_PUBACK, p.packet_id, 0x87);
	assert_int_equal(cnt()[UPLINK_C_pub_refused], 1);
	assert_int_equal(B.ev[B.nev - 1].st, 0x87);
	assert_int_equal(mqttc_inflight(B.c), 0);
}

static void
test_connect_refused_counted(void **state)
{
	(void)state;
	close(B.lfd); /* nobody listens on the port any more */
	B.lfd = socket(AF_INET, SOCK_STREAM, 0);
	fb_start_client(&B, &C);
	fb_tick(&B, 0);
	for (int i = 0; i < 50 && mqttc_state(B.c) != MQTTC_IDLE; i++)
		fb_drive(&B, 10);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_connect_fail], 1);
}

static void
test_backoff_full_jitter(void **state)
{
	uint64_t d, prev = 0;
	bool differ = false;

	(void)state;
	C.reconnect_min_ms = 1000;
	C.reconnect_max_ms = 60000;
	fb_start_client(&B, &C);
	mqttc_seed(B.c, 7);
	for (int i = 0; i < 200; i++) {
		d = mqttc_backoff_next(B.c);
		assert_true(d >= 100 && d <= 1000); /* attempt 0: at most reconnect_min */
		differ |= i > 0 && d != prev;
		prev = d;
	}
	assert_true(differ);
}

static void
test_queue_full_drops_qos0_first(void **state)
{
	(void)state;
	C.max_queue = 3;
	fb_start_client(&B, &C);
	publish("a", 1, 1);
	publish("b", 0, 2);
	publish("c", 1, 3);
	publish("d", 1, 4); /* b goes */
	assert_int_equal(cnt()[UPLINK_C_dropped_full], 1);
	assert_int_equal(mqttc_publish(B.c, "e", "v", 1, 1, false, 5), -ENOBUFS);
	assert_int_equal(cnt()[UPLINK_C_dropped_full], 2);
	assert_int_equal(mqttc_queued(B.c), 3);
}

/* A name goes through the resolver thread (the loop watches its pipe) and the attempt goes on
 * with the answer. ("localhost" may come back as ::1 first, where the scripted broker does not
 * listen: the test checks the lookup, not the connection.) */
static void
test_name_resolved_off_the_loop(void **state)
{
	(void)state;
	snprintf(C.host, sizeof(C.host), "localhost");
	fb_start_client(&B, &C);
	fb_tick(&B, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_RESOLVING);
	for (int i = 0; i < 500 && mqttc_state(B.c) == MQTTC_RESOLVING; i++)
		fb_drive(&B, 10);
	assert_int_not_equal(mqttc_state(B.c), MQTTC_RESOLVING);
	assert_int_equal(cnt()[UPLINK_C_resolve_fail], 0);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 1);
}

/* SO_BINDTODEVICE: an interface that does not exist fails the attempt (counted); the
 * loopback interface reaches the loopback broker. */
static void
test_bind_interface(void **state)
{
	struct fb_pkt p;

	(void)state;
	snprintf(C.bind_interface, sizeof(C.bind_interface), "egwnosuch0");
	fb_start_client(&B, &C);
	fb_tick(&B, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_socket_fail], 1);
	mqttc_destroy(B.c);
	snprintf(C.bind_interface, sizeof(C.bind_interface), "lo");
	fb_start_client(&B, &C);
	fb_accept(&B);
	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
}

/* A "TLS server" that answers the ClientHello with garbage, and one that never answers. */
static void
test_tls_garbage_and_stall(void **state)
{
	static const char junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	struct pollfd q;
	char hello[2048];

	(void)state;
	C.tls.enabled = true;
	C.tls.verify = false;
	fb_start_client(&B, &C);
	fb_accept(&B);
	for (int i = 0; i < 100 && mqttc_state(B.c) != MQTTC_TLS; i++)
		fb_drive(&B, 10);
	assert_int_equal(mqttc_state(B.c), MQTTC_TLS);
	q = (struct pollfd){ .fd = B.sfd, .events = POLLIN };
	assert_int_equal(poll(&q, 1, 2000), 1);
	assert_true(recv(B.sfd, hello, sizeof(hello), 0) > 0);
	assert_int_equal(hello[0], 0x16); /* a TLS handshake record: the ClientHello */
	fb_send(&B, (const uint8_t *)junk, sizeof(junk) - 1, false);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_tls_fail], 1);
	/* the next attempt gets no answer at all: given up after connect_timeout */
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	for (int i = 0; i < 100 && mqttc_state(B.c) != MQTTC_TLS; i++)
		fb_drive(&B, 10);
	fb_tick(&B, C.connect_timeout_ms + 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_connect_timeouts], 1);
	assert_int_equal(cnt()[UPLINK_C_tls_full] + cnt()[UPLINK_C_connects], 0);
}

/* QoS 2 messages queued while the link was down leave in one batch after one persist_sync. */
static void
test_persist_sync_batched(void **state)
{
	struct fb_pkt p;

	(void)state;
	fb_start_client(&B, &C);
	for (int i = 0; i < 5; i++)
		publish("site/q2", 2, (uint64_t)i);
	fb_connect(&B, false);
	for (int i = 0; i < 5; i++) {
		assert_true(fb_recv(&B, &p));
		assert_int_equal(p.type, MQTT_PUBLISH);
	}
	assert_int_equal(fb_count(&B, 'p'), 5);
	assert_int_equal(fb_count(&B, 's'), 1);
	assert_int_equal(B.ev[5].kind, 's'); /* after the five marks */
}

/* ---- a host with several addresses (resolve.h): the next one when TCP to one fails ---- */

static struct uplink_addrs lookup_answer; /* what the test's "DNS" answers */

static int
lookup_fake(const char *host, const char *port, struct uplink_addrs *out)
{
	(void)host;
	(void)port;
	*out = lookup_answer;
	return 0;
}

/* 127.0.0.x:port as the i-th address of the answer. */
static void
answer_addr(uint32_t i, uint8_t x, uint16_t port)
{
	struct sockaddr_in *sa = (struct sockaddr_in *)&lookup_answer.a[i].ss;

	memset(&lookup_answer.a[i], 0, sizeof(lookup_answer.a[i]));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	sa->sin_addr.s_addr = htonl(0x7f000000u | x);
	lookup_answer.a[i].len = sizeof(*sa);
	lookup_answer.a[i].family = AF_INET;
	if (lookup_answer.n < i + 1)
		lookup_answer.n = i + 1;
}

/* Drive the client until the resolver thread's answer is taken. */
static void
resolved(void)
{
	for (int i = 0; i < 500 && mqttc_state(B.c) == MQTTC_RESOLVING; i++)
		fb_drive(&B, 10);
	assert_int_not_equal(mqttc_state(B.c), MQTTC_RESOLVING);
}

static void
start_named(void)
{
	snprintf(C.host, sizeof(C.host), "cloud.test");
	B.lookup = lookup_fake;
	fb_start_client(&B, &C);
	fb_tick(&B, 0);
	resolved();
}

/* The first address refuses (nothing listens on 127.0.0.2): the same attempt goes on to the
 * second at once, no backoff; the next attempt starts at the address that worked. */
static void
test_next_address_after_refused(void **state)
{
	(void)state;
	memset(&lookup_answer, 0, sizeof(lookup_answer));
	answer_addr(0, 2, B.port); /* the broker listens on 127.0.0.1 only */
	answer_addr(1, 1, B.port);
	start_named();
	fb_accept(&B);
	expect(MQTT_CONNECT);
	fb_connack(&B, 0, false, 0);
	assert_int_equal(mqttc_state(B.c), MQTTC_UP);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 1);
	assert_int_equal(cnt()[UPLINK_C_connect_fail], 1);
	assert_int_equal(cnt()[UPLINK_C_addr_next], 1);
	assert_int_equal(cnt()[UPLINK_C_connects], 1);
	/* lost; the next attempt goes to 127.0.0.1 first: no second refusal */
	fb_close(&B);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	fb_tick(&B, C.reconnect_max_ms);
	resolved();
	fb_accept(&B);
	expect(MQTT_CONNECT);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 2);
	assert_int_equal(cnt()[UPLINK_C_connect_fail], 1);
	assert_int_equal(cnt()[UPLINK_C_addr_next], 1);
}

/* Every address refuses: each is tried once, then the attempt fails into the backoff. */
static void
test_every_address_refused(void **state)
{
	(void)state;
	memset(&lookup_answer, 0, sizeof(lookup_answer));
	answer_addr(0, 2, B.port);
	answer_addr(1, 3, B.port);
	answer_addr(2, 4, B.port);
	start_named();
	for (int i = 0; i < 50 && mqttc_state(B.c) != MQTTC_IDLE; i++)
		fb_drive(&B, 10);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 1);
	assert_int_equal(cnt()[UPLINK_C_connect_fail], 3);
	assert_int_equal(cnt()[UPLINK_C_addr_next], 2);
	assert_int_equal(cnt()[UPLINK_C_connects], 0);
}

/* A socket listening on 127.0.0.1 that nobody accepts from: a connect to it never reaches the
 * client's CONNECT stage (the fake broker is elsewhere). Its port in *port. */
static int
silent_listener(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001u) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The first address never completes the handshake (the test does not let the client see it
 * connected): given up after address_timeout, as the host has another address, and the next
 * one reached; the last address has the whole connect_timeout. */
static void
test_next_address_after_timeout(void **state)
{
	uint16_t port;
	int silent = silent_listener(&port);

	(void)state;
	assert_true(C.address_timeout_ms < C.connect_timeout_ms);
	memset(&lookup_answer, 0, sizeof(lookup_answer));
	answer_addr(0, 1, port);
	answer_addr(1, 1, B.port);
	start_named();
	assert_int_equal(mqttc_state(B.c), MQTTC_CONNECTING);
	fb_tick(&B, C.address_timeout_ms - 1);
	assert_int_equal(cnt()[UPLINK_C_connect_timeouts], 0);
	fb_tick(&B, 2);
	assert_int_equal(cnt()[UPLINK_C_connect_timeouts], 1);
	assert_int_equal(cnt()[UPLINK_C_addr_next], 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_CONNECTING);
	fb_accept(&B);
	expect(MQTT_CONNECT);
	assert_int_equal(cnt()[UPLINK_C_connect_attempts], 1);
	close(silent);
}

/* The last (here the only other) address that does not answer keeps the whole connect_timeout:
 * address_timeout is for moving on, not for giving up. */
static void
test_last_address_keeps_connect_timeout(void **state)
{
	uint16_t port;
	int silent = silent_listener(&port);

	(void)state;
	memset(&lookup_answer, 0, sizeof(lookup_answer));
	answer_addr(0, 2, B.port); /* refused at once */
	answer_addr(1, 1, port);
	start_named();
	for (int i = 0; i < 50 && cnt()[UPLINK_C_addr_next] == 0; i++)
		fb_drive(&B, 10);
	assert_int_equal(cnt()[UPLINK_C_connect_fail], 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_CONNECTING);
	fb_tick(&B, C.address_timeout_ms + 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_CONNECTING);
	assert_int_equal(cnt()[UPLINK_C_connect_timeouts], 0);
	fb_tick(&B, C.connect_timeout_ms);
	assert_int_equal(cnt()[UPLINK_C_connect_timeouts], 1);
	assert_int_equal(mqttc_state(B.c), MQTTC_IDLE);
	close(silent);
}

static struct uplink_addr
fam_addr(int family, uint8_t last)
{
	struct uplink_addr a = { .family = family };

	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr.s6_addr[0] = 0x20;
		s6->sin6_addr.s6_addr[15] = last;
		a.len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(0xc6120000u | last);
		a.len = sizeof(*s4);
	}
	return a;
}

/* RFC 8305 4: the answer's families alternate, the first's first, each family's order kept;
 * one family alone, or nothing, is left as it is. */
static void
test_addresses_interleaved(void **state)
{
	static const struct {
		const char *in, *out; /* 6 or 4 per address, numbered by family */
	} cases[] = {
		{ "666444", "646464" },
		{ "446", "464" },
		{ "6444", "6444" },
		{ "4466", "4646" },
		{ "666", "666" },
		{ "4", "4" },
		{ "", "" },
	};

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct uplink_addrs a = { .n = 0 };
		uint8_t n4 = 0, n6 = 0;
		char got[UPLINK_ADDRS_MAX + 1] = "";

		for (const char *p = cases[k].in; *p; p++)
			a.a[a.n++] = *p == '6' ? fam_addr(AF_INET6, ++n6) : fam_addr(AF_INET, ++n4);
		uplink_addrs_interleave(&a);
		n4 = n6 = 0;
		for (uint32_t i = 0; i < a.n; i++) {
			struct uplink_addr want = a.a[i].family == AF_INET6
			    ? fam_addr(AF_INET6, ++n6)
			    : fam_addr(AF_INET, ++n4);

			got[i] = a.a[i].family == AF_INET6 ? '6' : '4';
			assert_true(uplink_addr_eq(&a.a[i], &want)); /* its family's order kept */
		}
		assert_string_equal(got, cases[k].out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connect_v5_session_and_qos1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v311_by_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_flow_and_persist_hooks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_waits_for_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connack_refused_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broker_silence_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connack_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bytewise_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_disconnect_mid_qos2_resends_pubrel, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_disconnect_before_pubrec_resends_dup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_and_receive_maximum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downlink_qos2_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_downlink_owned_later_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downlink_released_later, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_downlink_released_after_session_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_downlink_owned_after_session_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_downlink_resent_on_same_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_downlink_retry_answer_after_pubcomp, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_downlink_qos1_resent_on_same_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downlink_acked_once_owned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downlink_refused_asked_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downlink_filters_subscribed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter_removed_while_up, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_downlink_qos2_once_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter_added_while_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_publish_is_released, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_full_jitter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_full_drops_qos0_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_resolved_off_the_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_interface, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_garbage_and_stall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_sync_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_address_after_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_address_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_address_after_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_last_address_keeps_connect_timeout, setup, teardown),
		cmocka_unit_test(test_addresses_interleaved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
