/*
 * send.c: packets to a connection through the transport ops: one made of slices (broker_conn_send,
 * whose failure ends the connection), one buffer, an ack. PUBLISH is send_publish.c's.
 */
#include <stddef.h>
#include <stdint.h>

#include "broker_int.h"

size_t
broker_conn_send_space(struct broker_conn *c)
{
	return broker_conn_alive(c) ? c->b->ops->send_space(c->ctx) : 0;
}

/* A send that fails ends the connection, through broker_conn_kill like any other end: the transport
 * is told to close (it still points at the connection until then), and broker_conn_kill sends
 * nothing more on a connection whose send failed. */
bool
broker_conn_send(struct broker_conn *c, const struct mqtt_iov *iov, size_t n)
{
	if (!broker_conn_alive(c))
		return false;
	if (c->b->ops->send(c->ctx, iov, n) < 0) {
		broker_count(c->b, BROKER_C_SEND_FAIL);
		c->send_failed = true;
		broker_conn_kill(c, MQTT_RC_UNSPECIFIED_ERROR, BROKER_C_COUNT);
		return false;
	}
	broker_count(c->b, BROKER_C_PKT_TX);
	return true;
}

bool
broker_conn_send_buf(struct broker_conn *c, const uint8_t *buf, int len)
{
	struct mqtt_iov one = { buf, len > 0 ? (size_t)len : 0 };

	return len > 0 && broker_conn_send(c, &one, 1);
}

bool
broker_conn_send_ack(struct broker_conn *c, enum mqtt_type type, uint16_t pid, uint8_t reason)
{
	struct mqtt_ack a = { .packet_id = pid, .reason = c->version == MQTT_V5 ? reason : 0 };
	uint8_t buf[16];

	return broker_conn_send_buf(
	    c, buf, mqtt_encode_ack(buf, sizeof(buf), c->version, type, &a));
}
