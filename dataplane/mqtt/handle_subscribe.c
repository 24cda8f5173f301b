/*
 * handle_subscribe.c: SUBSCRIBE and UNSUBSCRIBE. A filter already held by the session is
 * replaced (its options updated); shared subscriptions ($share/group/filter) join their group;
 * retained messages follow the SUBACK per the 5.0 Retain Handling option (never for shared).
 * The codec has checked every filter, option and the non-empty list already.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

static struct broker_sub *
sub_find(struct broker_session *s, struct mqtt_str f, struct broker_sub ***link)
{
	struct broker_sub **pp;

	for (pp = &s->subs; *pp != NULL; pp = &(*pp)->next_in_sess)
		if ((*pp)->filter_len == f.len && memcmp((*pp)->filter, f.s, f.len) == 0)
			break;
	if (link != NULL)
		*link = pp;
	return *pp;
}

static void
sub_set_opts(struct broker_sub *sub, const struct mqtt_subscription *o, uint32_t sub_id)
{
	sub->qos = o->qos;
	sub->no_local = o->no_local;
	sub->rap = o->retain_as_published;
	sub->sub_id = sub_id;
}

static struct broker_sub *
sub_new(struct broker_session *s, const struct mqtt_subscription *o, uint32_t sub_id)
{
	struct broker *b = s->b;
	struct broker_sub *sub = calloc(1, sizeof(*sub));
	int rc;

	if (sub == NULL || (sub->filter = malloc(o->filter.len)) == NULL) {
		free(sub);
		broker_count(b, BROKER_C_NOMEM);
		return NULL;
	}
	memcpy(sub->filter, o->filter.s, o->filter.len);
	sub->filter_len = o->filter.len;
	sub->s = s;
	sub_set_opts(sub, o, sub_id);
	if ((rc = broker_subs_insert(b, sub)) != 0) {
		free(sub->filter);
		free(sub);
		broker_count(b, rc == -E2BIG ? BROKER_C_LIMIT_FILTER_LEVELS : BROKER_C_NOMEM);
		return NULL;
	}
	sub->next_in_sess = s->subs;
	s->subs = sub;
	s->n_subs++;
	b->n_subs++;
	return sub;
}

/* A subscription moved here with its session from another lcore: added unless the session
 * already has that filter (what the client subscribed to since wins). */
struct broker_sub *
broker_session_sub_merge(
    struct broker_session *s, const struct mqtt_subscription *o, uint32_t sub_id)
{
	if (sub_find(s, o->filter, NULL) != NULL)
		return NULL;
	if (s->n_subs >= s->b->cfg.max_subs_per_session) {
		broker_count(s->b, BROKER_C_LIMIT_SUBS);
		return NULL;
	}
	return sub_new(s, o, sub_id);
}

/* One filter: the SUBACK reason code; *sub set when retained messages should follow. */
static uint8_t
subscribe_one(struct broker_session *s, const struct mqtt_subscription *o, uint32_t sub_id,
    uint8_t version, struct broker_sub **send_retained)
{
	struct broker_sub *sub = sub_find(s, o->filter, NULL);
	bool existed = sub != NULL;

	*send_retained = NULL;
	if (sub != NULL) {
		sub_set_opts(sub, o, sub_id);
	} else if (s->n_subs >= s->b->cfg.max_subs_per_session) {
		broker_count(s->b, BROKER_C_LIMIT_SUBS);
		return version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
	} else if ((sub = sub_new(s, o, sub_id)) == NULL) {
		return version == MQTT_V5 ? MQTT_RC_IMPLEMENTATION_SPECIFIC : 0x80;
	}
	if (sub->group == NULL &&
	    (o->retain_handling == 0 || (o->retain_handling == 1 && !existed)))
		*send_retained = sub;
	return o->qos;
}

void
broker_handle_subscribe(struct broker_conn *c, const struct mqtt_subscribe *req)
{
	struct broker_session *s = c->s;
	uint16_t n = req->n_subs;
	uint8_t *rc = malloc(n);
	struct broker_sub **ret = calloc(n, sizeof(*ret));
	struct mqtt_suback ack = { .packet_id = req->packet_id, .reasons = rc, .n_reasons = n };
	uint32_t sub_id = 0;
	uint8_t *buf = NULL;
	int len;

	if (rc == NULL || ret == NULL)
		goto nomem;
	if (c->version == MQTT_V5 && req->props.n_sub_ids > 0)
		sub_id = req->props.sub_ids[0];
	for (uint16_t i = 0; i < n; i++)
		rc[i] = subscribe_one(s, &req->subs[i], sub_id, c->version, &ret[i]);
	broker_persist_session(s);
	len = mqtt_encode_suback(NULL, 0, c->version, &ack);
	if (len <= 0 || (buf = malloc((size_t)len)) == NULL)
		goto nomem;
	mqtt_encode_suback(buf, (size_t)len, c->version, &ack);
	broker_conn_send_buf(c, buf, len);
	for (uint16_t i = 0; i < n; i++) /* retained messages after the SUBACK */
		if (ret[i] != NULL)
			broker_retain_deliver(c->b, ret[i]);
	free(buf);
	free(rc);
	free(ret);
	return;
nomem:
	free(rc);
	free(ret);
	broker_conn_kill(c, MQTT_RC_IMPLEMENTATION_SPECIFIC, BROKER_C_NOMEM);
}

void
broker_handle_unsubscribe(struct broker_conn *c, const struct mqtt_unsubscribe *req)
{
	struct broker_session *s = c->s;
	uint8_t *rc = malloc(req->n_filters), *buf = NULL;
	struct mqtt_suback ack = {
		.packet_id = req->packet_id, .reasons = rc, .n_reasons = req->n_filters
	};
	int len;

	if (rc == NULL) {
		broker_conn_kill(c, MQTT_RC_IMPLEMENTATION_SPECIFIC, BROKER_C_NOMEM);
		return;
	}
	for (uint16_t i = 0; i < req->n_filters; i++) {
		struct broker_sub **link, *sub = sub_find(s, req->filters[i], &link);

		rc[i] = sub != NULL ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
		if (sub == NULL)
			continue;
		*link = sub->next_in_sess;
		broker_subs_remove(c->b, sub);
		free(sub->filter);
		free(sub);
		s->n_subs--;
		c->b->n_subs--;
	}
	broker_persist_session(s);
	if (c->version != MQTT_V5)
		ack.n_reasons = 0; /* 3.1.1 UNSUBACK carries no reason codes */
	len = mqtt_encode_unsuback(NULL, 0, c->version, &ack);
	if (len > 0 && (buf = malloc((size_t)len)) != NULL) {
		mqtt_encode_unsuback(buf, (size_t)len, c->version, &ack);
		broker_conn_send_buf(c, buf, len);
	}
	free(buf);
	free(rc);
}
