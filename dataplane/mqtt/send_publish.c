/*
 * send_publish.c: a PUBLISH to a connection (broker_conn_send_publish): its 5.0 properties (what is
 * left of the Message Expiry, Subscription Identifiers), the outbound topic aliases, the
 * client's Maximum Packet Size, and room left for answers (BROKER_ANSWER_ROOM).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

struct mqtt_str *
broker_alias_table(struct broker_conn *c)
{
	size_t n = (size_t)c->b->cfg.topic_alias_max + c->alias_out_max;

	if (c->aliases == NULL && n > 0 && (c->aliases = calloc(n, sizeof(*c->aliases))) == NULL)
		broker_count(c->b, BROKER_C_NOMEM);
	return c->aliases;
}

/*
 * Outbound topic alias (5.0, when the client allows some): a topic sent before on this
 * connection goes as its alias with an empty topic; another one takes the next alias round
 * robin and goes in full with it. *fresh: the alias is (re)bound by this packet, to be
 * remembered only once the packet is sent. 0: no alias.
 */
static uint16_t
alias_out(struct broker_conn *c, struct mqtt_str topic, bool *fresh)
{
	struct mqtt_str *t;

	*fresh = false;
	if (c->alias_out_max == 0 || topic.len == 0 || (t = broker_alias_table(c)) == NULL)
		return 0;
	t += c->b->cfg.topic_alias_max;
	for (uint16_t i = 0; i < c->alias_out_max; i++)
		if (t[i].len == topic.len && memcmp(t[i].s, topic.s, topic.len) == 0)
			return (uint16_t)(i + 1);
	*fresh = true;
	return (uint16_t)(c->alias_out_next + 1);
}

/* The PUBLISH that bound alias a to topic went out: the client knows it from now on. */
static void
alias_out_sent(struct broker_conn *c, uint16_t a, struct mqtt_str topic)
{
	struct mqtt_str *e = &c->aliases[c->b->cfg.topic_alias_max + a - 1];
	char *copy = malloc(topic.len);

	free((void *)e->s);
	*e = (struct mqtt_str){ NULL, 0 };
	if (copy == NULL) { /* the client has it, we forget it: the topic goes in full again */
		broker_count(c->b, BROKER_C_NOMEM);
	} else {
		memcpy(copy, topic.s, topic.len);
		*e = (struct mqtt_str){ copy, topic.len };
	}
	c->alias_out_next = (uint16_t)((c->alias_out_next + 1) % c->alias_out_max);
}

static void
publish_props(const struct broker_conn *c, const struct broker_msg *m, const uint32_t *sub_id,
    struct mqtt_props *p)
{
	memset(p, 0, sizeof(*p));
	if (c->version != MQTT_V5)
		return;
	if (m->has_pfi)
		mqtt_props_set_u32(p, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, m->pfi);
	if (m->expiry_ms != 0) /* what is left of it, rounded up (expired ones are not sent) */
		mqtt_props_set_u32(p, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
		    m->expiry_ms > c->b->now_ms
			? (uint32_t)((m->expiry_ms - c->b->now_ms + 999) / 1000)
			: 1);
	if (m->content_type.len > 0)
		mqtt_props_set_str(p, MQTT_PROP_CONTENT_TYPE, m->content_type);
	if (m->response_topic.len > 0)
		mqtt_props_set_str(p, MQTT_PROP_RESPONSE_TOPIC, m->response_topic);
	if (m->correlation.len > 0)
		mqtt_props_set_str(p, MQTT_PROP_CORRELATION_DATA, m->correlation);
	p->user = m->user;
	p->n_user = m->n_user;
	if (m->n_sub_ids > 0) { /* one copy for several subscriptions: all their ids */
		p->sub_ids = broker_msg_sub_ids(m);
		p->n_sub_ids = m->n_sub_ids;
	} else if (*sub_id != 0) {
		p->sub_ids = sub_id;
		p->n_sub_ids = 1;
	}
}

int
broker_conn_send_publish(struct broker_conn *c, const struct broker_msg *m, uint8_t qos,
    uint16_t pid, bool dup, bool retain, uint32_t sub_id)
{
	struct mqtt_publish p = { .qos = qos,
		.dup = dup,
		.retain = retain,
		.topic = m->topic,
		.packet_id = pid,
		.payload_len = m->payload_len };
	uint8_t stack[512], *hdr = stack;
	struct mqtt_iov iov[2];
	uint16_t alias;
	bool fresh;
	int len;

	if (!broker_conn_alive(c))
		return -1;
	if (broker_msg_expired(m, c->b->now_ms)) { /* [MQTT-3.3.2-5]: first sends and resends */
		broker_count(c->b, BROKER_C_MSG_EXPIRED);
		return -1;
	}
	publish_props(c, m, &sub_id, &p.props);
	if ((alias = alias_out(c, m->topic, &fresh)) != 0) {
		mqtt_props_set_u32(&p.props, MQTT_PROP_TOPIC_ALIAS, alias);
		if (!fresh)
			p.topic = (struct mqtt_str){ "", 0 };
	}
	len = mqtt_encode_publish_header(stack, sizeof(stack), c->version, &p);
	if (len < 0)
		return -1;
	if ((uint64_t)len + m->payload_len > c->client_max_packet && c->client_max_packet != 0) {
		broker_count(c->b, BROKER_C_LIMIT_CLIENT_PACKET_SIZE);
		return -1;
	}
	if (broker_conn_send_space(c) < (size_t)len + m->payload_len + BROKER_ANSWER_ROOM)
		return 0;
	if ((size_t)len > sizeof(stack)) {
		if ((hdr = malloc((size_t)len)) == NULL) {
			broker_count(c->b, BROKER_C_NOMEM);
			return 0;
		}
		mqtt_encode_publish_header(hdr, (size_t)len, c->version, &p);
	}
	iov[0] = (struct mqtt_iov){ hdr, (size_t)len };
	iov[1] = (struct mqtt_iov){ m->payload, m->payload_len };
	len = broker_conn_send(c, iov, m->payload_len > 0 ? 2 : 1) ? 1 : -1;
	if (hdr != stack)
		free(hdr);
	if (len > 0)
		broker_count(c->b, BROKER_C_PUB_TX);
	if (len > 0 && fresh)
		alias_out_sent(c, alias, m->topic);
	return len;
}
