/*
 * msg.c: refcounted messages. A PUBLISH's topic, payload (gathered from the input segments)
 * and the 5.0 properties a subscriber must see are copied once into one block; deliveries,
 * queues, inflight slots and the retained store hold references, so fan-out copies nothing.
 *
 * Small messages (a sensor reading: header, topic, a few bytes) come from fixed blocks kept on a
 * per-thread free list, so the fast path does not pay malloc and free per PUBLISH (they were a
 * fifth of the worker's cycles at QoS 0). A block freed on another lcore (the last reference
 * dropped there) joins that lcore's list: blocks are interchangeable. The list is bounded and
 * given back by broker_msg_cache_drain(). Under AddressSanitizer it is off, so a use after the
 * last unref is still caught.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

#define MSG_BLOCK     256u  /* bytes: a message this size or smaller takes a block */
#define MSG_CACHE_MAX 8192u /* blocks kept per thread (2 MiB) */

#if defined(__SANITIZE_ADDRESS__)
#define MSG_CACHE 0
#else
#define MSG_CACHE 1
#endif

struct msg_block {
	struct msg_block *next;
};
static __thread struct msg_block *cache_head;
static __thread uint32_t cache_n;

unsigned broker_msg_fail_next;

static void *
msg_alloc(size_t size)
{
	struct msg_block *blk;

	if (broker_msg_fail_next > 0) {
		broker_msg_fail_next--;
		return NULL;
	}

	if (!MSG_CACHE || size > MSG_BLOCK)
		return malloc(size);
	if ((blk = cache_head) != NULL) {
		cache_head = blk->next;
		cache_n--;
		return blk;
	}
	return malloc(MSG_BLOCK);
}

static void
msg_free(struct broker_msg *m)
{
	struct msg_block *blk = (struct msg_block *)m;

	if (!MSG_CACHE || m->size > MSG_BLOCK || cache_n >= MSG_CACHE_MAX) {
		free(m);
		return;
	}
	blk->next = cache_head;
	cache_head = blk;
	cache_n++;
}

void
broker_msg_cache_drain(void)
{
	struct msg_block *blk;

	while ((blk = cache_head) != NULL) {
		cache_head = blk->next;
		free(blk);
	}
	cache_n = 0;
}


static size_t
props_bytes(const struct mqtt_props *p, uint16_t *n_user)
{
	size_t n = 0;

	*n_user = 0;
	if (p == NULL)
		return 0;
	if (mqtt_props_has(p, MQTT_PROP_CONTENT_TYPE))
		n += p->v[MQTT_PROP_CONTENT_TYPE].s.len;
	if (mqtt_props_has(p, MQTT_PROP_RESPONSE_TOPIC))
		n += p->v[MQTT_PROP_RESPONSE_TOPIC].s.len;
	if (mqtt_props_has(p, MQTT_PROP_CORRELATION_DATA))
		n += p->v[MQTT_PROP_CORRELATION_DATA].s.len;
	for (uint16_t i = 0; i < p->n_user; i++)
		n += p->user[i].key.len + p->user[i].val.len;
	*n_user = p->n_user;
	return n + (size_t)p->n_user * sizeof(struct mqtt_user_prop);
}

static struct mqtt_str
copy_str(char **at, struct mqtt_str s)
{
	struct mqtt_str out = { *at, s.len };

	if (s.len > 0)
		memcpy(*at, s.s, s.len);
	*at += s.len;
	return out;
}

static void
copy_props(struct broker_msg *m, char **at, const struct mqtt_props *p, uint64_t now_ms)
{
	static const struct mqtt_str none = { "", 0 };

	m->content_type = m->response_topic = m->correlation = none;
	if (p == NULL)
		return;
	if (mqtt_props_has(p, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR)) {
		m->has_pfi = true;
		m->pfi = (uint8_t)p->v[MQTT_PROP_PAYLOAD_FORMAT_INDICATOR].u;
	}
	if (mqtt_props_has(p, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL))
		m->expiry_ms = now_ms + (uint64_t)p->v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u * 1000u;
	if (mqtt_props_has(p, MQTT_PROP_CONTENT_TYPE))
		m->content_type = copy_str(at, p->v[MQTT_PROP_CONTENT_TYPE].s);
	if (mqtt_props_has(p, MQTT_PROP_RESPONSE_TOPIC))
		m->response_topic = copy_str(at, p->v[MQTT_PROP_RESPONSE_TOPIC].s);
	if (mqtt_props_has(p, MQTT_PROP_CORRELATION_DATA))
		m->correlation = copy_str(at, p->v[MQTT_PROP_CORRELATION_DATA].s);
	for (uint16_t i = 0; i < p->n_user; i++) {
		m->user[i].key = copy_str(at, p->user[i].key);
		m->user[i].val = copy_str(at, p->user[i].val);
	}
}

struct broker_msg *
broker_msg_new(struct broker *b, struct mqtt_str topic, const struct mqtt_iov *payload,
    size_t n_payload, const struct mqtt_props *props, uint64_t now_ms)
{
	size_t plen = 0, size;
	uint16_t n_user;
	struct broker_msg *m;
	char *at;

	for (size_t i = 0; i < n_payload; i++)
		plen += payload[i].len;
	size = sizeof(*m) + props_bytes(props, &n_user) + topic.len + plen;
	if ((m = msg_alloc(size)) == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return NULL;
	}
	memset(m, 0, sizeof(*m)); /* the rest is written below */
	m->refcnt = 1;
	m->size = (uint32_t)size;
	at = (char *)(m + 1);
	m->user = (struct mqtt_user_prop *)at; /* first: keeps the array aligned */
	m->n_user = n_user;
	at += (size_t)n_user * sizeof(struct mqtt_user_prop);
	m->payload = (const uint8_t *)at;
	m->payload_len = (uint32_t)plen;
	for (size_t i = 0; i < n_payload; i++) {
		memcpy(at, payload[i].base, payload[i].len);
		at += payload[i].len;
	}
	m->topic = copy_str(&at, topic);
	copy_props(m, &at, props, now_ms);
	return m;
}

static struct mqtt_str
rebase(struct mqtt_str s, const struct broker_msg *from, struct broker_msg *to)
{
	uintptr_t at = (uintptr_t)s.s, lo = (uintptr_t)from;

	if (at >= lo && at < lo + from->size)
		s.s = (const char *)to + (at - lo);
	return s;
}

struct broker_msg *
broker_msg_with_sub_ids(
    struct broker *b, const struct broker_msg *m, const uint32_t *ids, uint16_t n)
{
	size_t base = ((size_t)m->size + 3) & ~(size_t)3, size = base + (size_t)n * sizeof(*ids);
	struct broker_msg *c = msg_alloc(size);

	if (c == NULL) {
		broker_count(b, BROKER_C_NOMEM);
		return NULL;
	}
	memcpy(c, m, m->size);
	c->refcnt = 1;
	c->size = (uint32_t)size;
	c->topic = rebase(m->topic, m, c);
	c->payload = (const uint8_t *)c + (m->payload - (const uint8_t *)m);
	c->content_type = rebase(m->content_type, m, c);
	c->response_topic = rebase(m->response_topic, m, c);
	c->correlation = rebase(m->correlation, m, c);
	c->user = (struct mqtt_user_prop *)((char *)c + ((char *)m->user - (const char *)m));
	for (uint16_t i = 0; i < c->n_user; i++) {
		c->user[i].key = rebase(m->user[i].key, m, c);
		c->user[i].val = rebase(m->user[i].val, m, c);
	}
	memcpy((char *)c + base, ids, (size_t)n * sizeof(*ids));
	c->n_sub_ids = n; /* broker_msg_sub_ids() finds them at the end */
	return c;
}

/* Atomic: a message posted to other lcores is held by several instances at once. */
void
broker_msg_ref(struct broker_msg *m)
{
	__atomic_add_fetch(&m->refcnt, 1, __ATOMIC_RELAXED);
}

void
broker_msg_unref(struct broker_msg *m)
{
	if (m != NULL && __atomic_sub_fetch(&m->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
		msg_free(m);
}

bool
broker_msg_expired(const struct broker_msg *m, uint64_t now_ms)
{
	return m->expiry_ms != 0 && now_ms >= m->expiry_ms;
}
