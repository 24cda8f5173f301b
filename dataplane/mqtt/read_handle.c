/*
 * read_handle.c: a connection's input: the loop that decodes whole packets across segment
 * boundaries (lib/mqtt) while nothing holds it back, a decoding error mapped to its counter
 * and reason, and each packet handed to its handler (handle_*.c) by type.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "broker_int.h"

/* The input segments from byte off on, in b->iov (grown when a chain is longer than before). */
static size_t
segs_from(struct broker *b, const struct mqtt_iov *segs, size_t n, size_t off)
{
	size_t k = 0;

	if (n > b->iov_cap) {
		struct mqtt_iov *v = realloc(b->iov, n * sizeof(*v));

		if (v == NULL)
			return 0;
		b->iov = v;
		b->iov_cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		if (off >= segs[i].len) {
			off -= segs[i].len;
			continue;
		}
		b->iov[k++] = (struct mqtt_iov){ segs[i].base + off, segs[i].len - off };
		off = 0;
	}
	return k;
}

static enum broker_counter
err_counter(int err)
{
	switch (err < 0 ? -err : err) {
	case MQTT_E_RLEN_TOO_LONG:
		return BROKER_C_BAD_RLEN;
	case MQTT_E_PACKET_TOO_LARGE:
	case MQTT_E_SCRATCH_FULL:
		return BROKER_C_BAD_OVERSIZED;
	case MQTT_E_UTF8_MALFORMED:
	case MQTT_E_UTF8_SURROGATE:
	case MQTT_E_UTF8_NUL:
		return BROKER_C_BAD_UTF8;
	case MQTT_E_TOPIC_NAME_INVALID:
		return BROKER_C_BAD_TOPIC_WILDCARD;
	case MQTT_E_FILTER_INVALID:
	case MQTT_E_SHARE_INVALID:
		return BROKER_C_BAD_FILTER;
	case MQTT_E_SUBSCRIBE_EMPTY:
	case MQTT_E_UNSUBSCRIBE_EMPTY:
		return BROKER_C_BAD_SUBSCRIBE_EMPTY;
	case MQTT_E_TRUNCATED:
	case MQTT_E_TRAILING:
	case MQTT_E_PROP_LENGTH:
		return BROKER_C_BAD_TRUNCATED;
	case MQTT_E_NOT_CONNECTED:
		return BROKER_C_BAD_NOT_CONNECT;
	case MQTT_E_PROTOCOL_NAME:
	case MQTT_E_PROTOCOL_LEVEL:
		return BROKER_C_BAD_PROTOCOL_VERSION;
	case MQTT_E_CLIENT_ID_EMPTY:
		return BROKER_C_BAD_CLIENT_ID;
	case MQTT_E_TOPIC_ALIAS_ZERO:
		return BROKER_C_BAD_TOPIC_ALIAS;
	case MQTT_E_PACKET_ID_ZERO:
	case MQTT_E_WRONG_DIRECTION:
	case MQTT_E_PROP_DUPLICATE:
	case MQTT_E_PROP_VALUE:
		return BROKER_C_BAD_PROTOCOL;
	default:
		return BROKER_C_BAD_MALFORMED;
	}
}

static void
decode_failed(struct broker_conn *c, const struct mqtt_iov *segs, size_t n, int err)
{
	if (c->state == CONN_NEW) {
		broker_handle_connect_error(c, segs, n, err);
		broker_conn_kill(c, mqtt_err_reason(err), err_counter(err));
	} else {
		broker_conn_kill(c, mqtt_err_reason(err), err_counter(err));
	}
}

static void
dispatch(
    struct broker_conn *c, const struct mqtt_packet *pkt, const struct mqtt_iov *segs, size_t n)
{
	uint8_t buf[4];

	if (c->state == CONN_NEW && pkt->type != MQTT_CONNECT) {
		broker_conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_NOT_CONNECT);
		return;
	}
	switch (pkt->type) {
	case MQTT_CONNECT:
		if (c->state != CONN_NEW)
			broker_conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_SECOND_CONNECT);
		else
			broker_handle_connect(c, &pkt->connect);
		broker_conn_timer_arm(c); /* keepalive from now on, no more connect timeout */
		break;
	case MQTT_PUBLISH:
		broker_handle_publish(c, pkt, segs, n);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		broker_handle_ack(c, pkt->type, &pkt->ack);
		break;
	case MQTT_SUBSCRIBE:
		broker_handle_subscribe(c, &pkt->subscribe);
		break;
	case MQTT_UNSUBSCRIBE:
		broker_handle_unsubscribe(c, &pkt->unsubscribe);
		break;
	case MQTT_PINGREQ:
		broker_conn_send_buf(c, buf, mqtt_encode_pingresp(buf, sizeof(buf)));
		break;
	case MQTT_DISCONNECT:
		broker_handle_disconnect(c, &pkt->disconnect);
		break;
	default: /* AUTH: no enhanced authentication was negotiated at CONNECT */
		broker_conn_kill(c, MQTT_RC_PROTOCOL_ERROR, BROKER_C_BAD_PROTOCOL);
		break;
	}
}

/* Bytes an answer to pkt may take (0: it has none): an ack is at most 6 bytes here, a SUBACK
 * or UNSUBACK one more per filter. Deliveries leave BROKER_ANSWER_ROOM free
 * (broker_conn_send_publish) so that the answer to a PUBLISH routed to its own publisher still
 * fits. */
static size_t
answer_room(const struct mqtt_packet *pkt)
{
	switch (pkt->type) {
	case MQTT_PUBLISH:
		return pkt->publish.qos > 0 ? BROKER_ANSWER_ROOM : 0;
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PINGREQ:
		return BROKER_ANSWER_ROOM;
	case MQTT_SUBSCRIBE:
		return BROKER_ANSWER_ROOM + pkt->subscribe.n_subs;
	case MQTT_UNSUBSCRIBE:
		return BROKER_ANSWER_ROOM + pkt->unsubscribe.n_filters;
	default:
		return 0;
	}
}

/* The input loop: whole packets, while nothing holds the connection's input. A packet whose
 * answer does not fit the send buffer is left unconsumed (decoding has no side effect) and the
 * input is held until the transport says it has room (broker_conn_writable): an acknowledgement
 * is never lost on an open connection. */
static void
input_loop(struct broker_conn *c, const struct mqtt_iov *segs, size_t n, size_t *consumed)
{
	struct broker *b = c->b;
	struct mqtt_packet pkt;

	while (broker_conn_alive(c) && c->state != CONN_CLAIMING && c->hold == 0) {
		size_t k = segs_from(b, segs, n, *consumed);
		int rc;

		if (k == 0 && n > b->iov_cap) { /* no memory for the list: it cannot be read */
			broker_conn_kill(c, MQTT_RC_IMPLEMENTATION_SPECIFIC, BROKER_C_NOMEM);
			break;
		}
		if (k == 0)
			break;
		rc = mqtt_decode(&c->dec, b->iov, k, &pkt);
		if (rc == 0)
			break;
		if (rc < 0) {
			decode_failed(c, b->iov, k, rc);
			break;
		}
		if (c->state == CONN_ACTIVE && broker_conn_send_space(c) < answer_room(&pkt)) {
			broker_conn_hold(c, HOLD_ACK_ROOM);
			break;
		}
		if (!broker_uplink_admit(
			c, &pkt)) /* held (HOLD_UPLINK), the packet left unconsumed */
			break;
		*consumed += (size_t)rc;
		c->last_rx_ms = b->now_ms;
		broker_count(b, BROKER_C_PKT_RX);
		b->cnt[BROKER_C_BYTES_RX] += (uint64_t)rc;
		dispatch(c, &pkt, b->iov, k);
	}
}

int
broker_conn_input(
    struct broker_conn *c, const struct mqtt_iov *segs, size_t n, size_t *consumed, uint64_t now_ms)
{
	struct broker *b = c->b;
	int rc;

	b->now_ms = now_ms;
	*consumed = 0;
	if (b->n_xpend > 0)
		broker_xlcore_retry(b, now_ms);
	if ((c->hold & HOLD_ACK_ROOM) != 0 && broker_conn_send_space(c) >= BROKER_ANSWER_ROOM)
		broker_conn_release(
		    c, HOLD_ACK_ROOM); /* tried again below; held again if still short */
	/* A CONNACK held for a session claim, or input held back: what follows stays with the
	 * transport (input_ready says when to pass it again). */
	b->cur_in = c;
	input_loop(c, segs, n, consumed);
	b->cur_in = NULL;
	rc = broker_conn_alive(c) ? 0 : -EPIPE;
	if (rc == 0 && c->s != NULL)
		broker_session_drain(c->s);
	broker_reap(b);
	return rc;
}
