/*
 * conn.c: a broker's connections: opened by the transport, input held back and let go
 * (backpressure), ended (broker_conn_kill) and closed and freed at the end of the broker call
 * (broker_reap), the transport's writable and closed events. Input is read_handle.c's,
 * sends are send.c's, deadlines timer.c's.
 */
#include <stdint.h>
#include <stdlib.h>

#include "broker_int.h"

/* Its memory (broker_reap, broker_destroy): the transport is done with it. */
void
broker_conn_free(struct broker_conn *c)
{
	if (c->aliases != NULL)
		for (uint32_t i = 0; i < (uint32_t)c->b->cfg.topic_alias_max + c->alias_out_max;
		     i++)
			free((void *)c->aliases[i].s);
	free(c->aliases);
	free(c);
}

static void
list_del(struct broker_conn **head, struct broker_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void
list_add(struct broker_conn **head, struct broker_conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head != NULL)
		(*head)->prev = c;
	*head = c;
}

struct broker_conn *
broker_conn_open(struct broker *b, void *transport_ctx, uint64_t now_ms)
{
	struct broker_conn *c;

	b->now_ms = now_ms;
	if (b->n_conns >= b->cfg.max_conns) {
		broker_count(b, BROKER_C_LIMIT_CONNS);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return NULL;
	}
	c->b = b;
	c->ctx = transport_ctx;
	c->opened_ms = c->last_rx_ms = now_ms;
	c->client_recv_max = UINT16_MAX;
	c->wslot = BROKER_WHEEL_NONE;
	mqtt_decoder_init(
	    &c->dec, MQTT_ROLE_SERVER, 0, b->cfg.max_packet_size, b->scratch, b->scratch_len);
	list_add(&b->conns, c);
	b->n_conns++;
	broker_conn_timer_arm(c);
	broker_count(b, BROKER_C_CONN_OPENED);
	return c;
}

bool
broker_conn_alive(const struct broker_conn *c)
{
	return c->state != CONN_DYING;
}

static void
held_del(struct broker_conn *c)
{
	if (c->hprev != NULL)
		c->hprev->hnext = c->hnext;
	else
		c->b->held = c->hnext;
	if (c->hnext != NULL)
		c->hnext->hprev = c->hprev;
	c->hnext = c->hprev = NULL;
	c->b->n_held--;
}

void
broker_conn_hold(struct broker_conn *c, enum conn_hold reason)
{
	struct broker *b = c->b;

	if (!broker_conn_alive(c) || (c->hold & reason) != 0)
		return;
	broker_count(b,
	    reason == HOLD_ACK_ROOM        ? BROKER_C_HOLD_ACK_ROOM
		: reason == HOLD_SUB_QUEUE ? BROKER_C_HOLD_SUB_QUEUE
		: reason == HOLD_UPLINK    ? BROKER_C_HOLD_UPLINK
					   : BROKER_C_HOLD_XLCORE);
	if (c->hold == 0) {
		c->hprev = NULL;
		c->hnext = b->held;
		if (b->held != NULL)
			b->held->hprev = c;
		b->held = c;
		b->n_held++;
	}
	c->hold |= (uint8_t)reason;
}

void
broker_conn_release(struct broker_conn *c, enum conn_hold reason)
{
	if ((c->hold & reason) == 0)
		return;
	c->hold &= (uint8_t)~reason;
	if (reason == HOLD_SUB_QUEUE)
		c->held_on = NULL;
	if (c->hold != 0)
		return;
	held_del(c);
	/* the current input call goes on by itself; others are passed again by the transport */
	if (c != c->b->cur_in && broker_conn_alive(c) && c->state != CONN_CLAIMING &&
	    c->b->ops->input_ready != NULL)
		c->b->ops->input_ready(c->ctx);
}

void
broker_release_all(struct broker *b, enum conn_hold reason, const struct broker_session *on)
{
	struct broker_conn *c = b->held, *next;

	for (; c != NULL; c = next) {
		next = c->hnext; /* broker_conn_release unlinks c */
		if ((c->hold & reason) != 0 && (on == NULL || c->held_on == on))
			broker_conn_release(c, reason);
	}
}

/* Marked dying before anything is sent, so that a DISCONNECT that cannot be sent (a full
 * buffer) does not come back here through broker_conn_send: a failed send never re-enters a
 * close. */
void
broker_conn_kill(struct broker_conn *c, uint8_t reason, enum broker_counter cnt)
{
	struct broker *b = c->b;
	bool disconnect = c->version == MQTT_V5 && c->state == CONN_ACTIVE && reason >= 0x80 &&
	    !c->transport_gone && !c->send_failed;

	if (!broker_conn_alive(c))
		return;
	if (cnt != BROKER_C_COUNT)
		broker_count(b, cnt);
	c->state = CONN_DYING;
	c->close_reason = reason;
	if (b->conn_cursor == c)
		b->conn_cursor = c->next;
	list_del(&b->conns, c);
	list_add(&b->dying, c);
	if (c->hold != 0) {
		c->hold = 0;
		c->held_on = NULL;
		held_del(c);
	}
	if (c->s != NULL && c->s->conn == c && c->s->over_since_ms != 0)
		broker_session_over_end(
		    c->s); /* its publishers go on (the session may be offline) */
	if (disconnect) {
		struct mqtt_disconnect d = { .reason = reason };
		uint8_t buf[8];
		struct mqtt_iov one = { buf, 0 };
		int len = mqtt_encode_disconnect(buf, sizeof(buf), MQTT_V5, &d);

		one.len = len > 0 ? (size_t)len : 0;
		if (len > 0 && b->ops->send_space(c->ctx) >= one.len &&
		    b->ops->send(c->ctx, &one, 1) == 0)
			broker_count(b, BROKER_C_PKT_TX);
	}
}

/* Closing happens here, at the end of each call into the broker, never in the middle of a
 * fan-out: a will published now may kill more connections, so loop until none is left. */
void
broker_reap(struct broker *b)
{
	/* The state this call changed goes to the page cache before the transport puts what the
	 * call sent on the wire (after the call returns: broker_persist_open). */
	if (b->persist != NULL) {
		broker_persist_flush(b);
		broker_xlcore_stage_drain(b); /* then the posts to other lcores (xlcore_int.h) */
	}
	while (b->dying != NULL) {
		struct broker_conn *c = b->dying;
		struct broker_session *s = c->s;

		list_del(&b->dying, c);
		broker_wheel_del(b, c);
		b->n_conns--;
		broker_count(b, BROKER_C_CONN_CLOSED);
		if (c->n_uplink > 0) /* its acks awaiting durability are not sent */
			broker_uplink_conn_gone(c);
		if (!c->transport_gone)
			b->ops->close(c->ctx, c->close_reason);
		if (s != NULL && s->conn == c) {
			if (!c->clean_disconnect)
				broker_count(b, BROKER_C_ABRUPT_CLOSE);
			broker_session_offline(s, !c->clean_disconnect, b->now_ms);
		}
		broker_conn_free(c);
		if (b->persist != NULL && b->dying == NULL) { /* what its will changed */
			broker_persist_flush(b);
			broker_xlcore_stage_drain(b);
		}
	}
}

bool
broker_conn_held(const struct broker_conn *c)
{
	return c->state == CONN_CLAIMING || c->hold != 0;
}

void
broker_conn_writable(struct broker_conn *c, uint64_t now_ms)
{
	c->b->now_ms = now_ms;
	if (c->n_owed > 0) /* durable messages' acks first: they were due before */
		broker_uplink_flush_owed(c);
	if (c->s != NULL)
		broker_session_drain(c->s);
	/* after the deliveries, which leave room for answers (broker_conn_send_publish) */
	if ((c->hold & HOLD_ACK_ROOM) != 0 && broker_conn_send_space(c) >= BROKER_ANSWER_ROOM)
		broker_conn_release(c, HOLD_ACK_ROOM);
	broker_reap(c->b);
}

void
broker_conn_closed(struct broker_conn *c, uint64_t now_ms)
{
	struct broker *b = c->b;

	b->now_ms = now_ms;
	c->transport_gone = true;
	broker_conn_kill(c, 0, BROKER_C_COUNT);
	broker_reap(b);
}
