/*
 * retain.c: retained messages, one per topic name: set or replaced by a retained PUBLISH,
 * cleared by one with an empty payload, sent to new subscriptions whose filter matches.
 * Bounded by max_retained (count) and max_retained_bytes (payload); refusals are counted.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "mqtt_topic.h"

#define RETAIN_HASH 1024u

struct retained {
	struct retained *next;
	struct broker_msg *msg;
};

struct retain_store {
	struct retained *bucket[RETAIN_HASH];
	uint32_t count;
	uint64_t bytes;
};

struct retain_store *
broker_retain_create(void)
{
	return calloc(1, sizeof(struct retain_store));
}

void
broker_retain_destroy(struct retain_store *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < RETAIN_HASH; i++)
		while (r->bucket[i] != NULL) {
			struct retained *e = r->bucket[i];

			r->bucket[i] = e->next;
			broker_msg_unref(e->msg);
			free(e);
		}
	free(r);
}

static struct retained **
slot_of(struct retain_store *r, struct mqtt_str topic)
{
	uint32_t h = 2166136261u;
	struct retained **pp;

	for (uint16_t i = 0; i < topic.len; i++)
		h = (h ^ (uint8_t)topic.s[i]) * 16777619u;
	for (pp = &r->bucket[h % RETAIN_HASH]; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->msg->topic.len == topic.len &&
		    memcmp((*pp)->msg->topic.s, topic.s, topic.len) == 0)
			break;
	return pp;
}

static void
drop(struct retain_store *r, struct retained **pp)
{
	struct retained *e = *pp;

	*pp = e->next;
	r->count--;
	r->bytes -= e->msg->payload_len;
	broker_msg_unref(e->msg);
	free(e);
}

void
broker_retain_set(struct broker *b, struct broker_msg *m)
{
	struct retain_store *r = b->retained;
	struct retained **pp = slot_of(r, m->topic), *e;

	if (*pp != NULL) {
		drop(r, pp);
		if (m->payload_len != 0) /* replaced: journaled as a set below, or cleared */
			broker_persist_retain(b, m, false);
	}
	if (m->payload_len == 0) {
		broker_persist_retain(b, m, false);
		broker_count(b, BROKER_C_RETAIN_CLEARED);
		return;
	}
	if (r->count >= b->cfg.max_retained ||
	    r->bytes + m->payload_len > b->cfg.max_retained_bytes) {
		broker_count(b, BROKER_C_LIMIT_RETAINED);
		return;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return;
	}
	broker_persist_retain(b, m, true);
	broker_msg_ref(m);
	e->msg = m;
	e->next = *pp;
	*pp = e;
	r->count++;
	r->bytes += m->payload_len;
	broker_count(b, BROKER_C_RETAIN_SET);
}

/* Linear in the retained count (bounded by max_retained); only at subscribe time. Expired
 * messages met on the way are dropped. */
void
broker_retain_deliver(struct broker *b, struct broker_sub *sub)
{
	struct retain_store *r = b->retained;

	for (uint32_t i = 0; i < RETAIN_HASH; i++)
		for (struct retained **pp = &r->bucket[i]; *pp != NULL;) {
			struct broker_msg *m = (*pp)->msg;

			if (broker_msg_expired(m, b->now_ms)) {
				drop(r, pp);
				broker_count(b, BROKER_C_MSG_EXPIRED);
				continue;
			}
			if (mqtt_topic_match(
				sub->filter, sub->filter_len, m->topic.s, m->topic.len))
				broker_session_deliver(sub->s, m,
				    m->qos < sub->qos ? m->qos : sub->qos, true, sub->sub_id);
			pp = &(*pp)->next;
		}
}

uint32_t
broker_retain_count(const struct broker *b)
{
	return b->retained->count;
}

void
broker_retain_walk(struct broker *b, void (*fn)(void *arg, const struct broker_msg *m), void *arg)
{
	for (uint32_t i = 0; i < RETAIN_HASH; i++)
		for (struct retained *e = b->retained->bucket[i]; e != NULL; e = e->next)
			fn(arg, e->msg);
}

bool
broker_retain_has(struct broker *b, struct mqtt_str topic)
{
	return *slot_of(b->retained, topic) != NULL;
}
