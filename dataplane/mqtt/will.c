/*
 * will.c: the will message. Stored with the session at CONNECT, dropped on a clean DISCONNECT,
 * published when the connection ends otherwise (keepalive, protocol error, transport loss,
 * takeover, DISCONNECT 0x04), after the 5.0 Will Delay Interval when the session outlives it
 * (a reconnect to the session before then cancels it: handle_connect.c).
 */
#include "broker_int.h"

void
broker_will_clear(struct broker_session *s)
{
	struct session_cold *k = s->cold;

	if (k == NULL)
		return;
	broker_persist_will(s, false);
	broker_msg_unref(k->will);
	k->will = NULL;
	k->will_at_ms = 0;
	broker_session_cold_put(s);
}

void
broker_will_store(struct broker_session *s, const struct mqtt_connect *k, uint64_t now_ms)
{
	const struct mqtt_will *w = &k->will;
	struct mqtt_iov pl = { (const uint8_t *)w->payload.s, w->payload.len };
	struct session_cold *cold;
	struct broker_msg *m;

	broker_will_clear(s);
	if (!k->has_will)
		return;
	if ((m = broker_msg_new(s->b, w->topic, &pl, 1, &w->props, now_ms)) == NULL)
		return;
	if ((cold = broker_session_cold_get(s)) == NULL) {
		broker_msg_unref(m);
		return;
	}
	m->qos = w->qos;
	m->retain = w->retain;
	cold->will = m;
	/* Message Expiry counts from the will's publication, not from this CONNECT (5.0
	 * 3.1.3.2.4): the message carries none until broker_will_publish sets it. */
	cold->will_expires = mqtt_props_has(&w->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
	cold->will_expiry_s =
	    cold->will_expires ? w->props.v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u : 0;
	m->expiry_ms = 0;
	cold->will_delay_s = mqtt_props_has(&w->props, MQTT_PROP_WILL_DELAY_INTERVAL)
	    ? w->props.v[MQTT_PROP_WILL_DELAY_INTERVAL].u
	    : 0;
}

void
broker_will_publish(struct broker_session *s)
{
	struct broker_msg *m = session_will(s);
	bool matched;

	if (m == NULL)
		return;
	broker_persist_will(s, false);
	if (s->cold->will_expires)
		m->expiry_ms = s->b->now_ms + (uint64_t)s->cold->will_expiry_s * 1000u;
	s->cold->will = NULL;
	s->cold->will_at_ms = 0;
	broker_session_cold_put(s);
	m->origin = s->id;
	broker_count(s->b, BROKER_C_WILL_PUBLISHED);
	broker_publish(s->b, m, &matched);
	broker_msg_unref(m);
}
