/*
 * broker_admin.c: the operator's view of one broker instance (edgegwctl sessions,
 * subscriptions, retained; kick; retained delete), over the dataplane's DPDK telemetry. Every
 * call runs on the instance's own lcore (svc/mqtt_tcp.c hands the request over), so nothing here
 * is shared. Listings are one line per entry (a telemetry string: RTE_TEL_MAX_STRING_LEN),
 * paged by skip and max; client ids and topics are printed with bytes outside printable ASCII,
 * spaces and backslashes as \xNN, cut with a "..." mark to keep a line within a telemetry
 * string.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker_int.h"
#include "mqtt_topic.h"

/* A client id's room in a line (a topic or filter gets more): a line stays within a telemetry
 * string (128 bytes). */
#define NAME_OUT 40

/* name as printable text, cut (with "...") to fit cap */
static void
printable(char *out, size_t cap, const char *s, size_t len)
{
	size_t o = 0, i;

	for (i = 0; i < len && o + 8 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch > ' ' && ch < 0x7f && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
	}
	if (i < len && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Calls fn for entries skip .. skip+max-1 of the walk; counts them all. */
struct pager {
	size_t skip, max, seen;
	broker_line_fn fn;
	void *arg;
};

static bool
pager_want(struct pager *p)
{
	return p->seen++ >= p->skip && p->seen - p->skip <= p->max;
}

size_t
broker_admin_sessions(struct broker *b, size_t skip, size_t max, broker_line_fn fn, void *arg)
{
	struct pager p = { skip, max, 0, fn, arg };
	char id[NAME_OUT], line[256];

	for (uint32_t i = 0; i < b->sess_buckets; i++)
		for (struct broker_session *s = b->sess_hash[i]; s != NULL; s = s->hnext) {
			const struct broker_conn *c = s->conn;

			if (!pager_want(&p))
				continue;
			printable(id, sizeof(id), s->client_id, s->id_len);
			snprintf(line, sizeof(line),
			    "%s %s v%s subs=%u queued=%u inflight=%u expiry_s=%u", id,
			    c != NULL ? "online" : "offline",
			    c == NULL                   ? "-"
				: c->version == MQTT_V5 ? "5"
							: "3.1.1",
			    s->n_subs, s->qlen, s->n_inflight, s->expiry_s);
			fn(arg, line);
		}
	return p.seen;
}

size_t
broker_admin_subscriptions(struct broker *b, size_t skip, size_t max, broker_line_fn fn, void *arg)
{
	struct pager p = { skip, max, 0, fn, arg };
	char id[NAME_OUT], filter[64];
	char line[256];

	for (uint32_t i = 0; i < b->sess_buckets; i++)
		for (struct broker_session *s = b->sess_hash[i]; s != NULL; s = s->hnext)
			for (struct broker_sub *sub = s->subs; sub != NULL;
			     sub = sub->next_in_sess) {
				if (!pager_want(&p))
					continue;
				printable(id, sizeof(id), s->client_id, s->id_len);
				printable(filter, sizeof(filter), sub->filter, sub->filter_len);
				snprintf(line, sizeof(line), "%s %s qos=%u%s%s", id, filter,
				    sub->qos, sub->no_local ? " no_local" : "",
				    sub->rap ? " rap" : "");
				fn(arg, line);
			}
	return p.seen;
}

struct retained_walk {
	struct pager p;
	char topic[100], line[256];
};

static void
retained_line(void *arg, const struct broker_msg *m)
{
	struct retained_walk *w = arg;

	if (!pager_want(&w->p))
		return;
	printable(w->topic, sizeof(w->topic), m->topic.s, m->topic.len);
	snprintf(w->line, sizeof(w->line), "%s qos=%u bytes=%u", w->topic, m->qos,
	    (unsigned)m->payload_len);
	w->p.fn(w->p.arg, w->line);
}

size_t
broker_admin_retained(struct broker *b, size_t skip, size_t max, broker_line_fn fn, void *arg)
{
	struct retained_walk w = { .p = { skip, max, 0, fn, arg } };

	broker_retain_walk(b, retained_line, &w);
	return w.p.seen;
}

int
broker_admin_kick(struct broker *b, const char *id, size_t len, bool purge, uint64_t now_ms)
{
	struct broker_session *s = broker_session_find(b, id, len);

	b->now_ms = now_ms;
	if (s == NULL)
		return 0;
	broker_count(b, BROKER_C_ADMIN_KICK);
	if (purge)
		s->expiry_s = 0; /* gone when it goes offline, now or at the reap below */
	if (s->conn != NULL) {
		broker_conn_kill(s->conn, MQTT_RC_ADMINISTRATIVE_ACTION, BROKER_C_COUNT);
	} else if (purge) {
		broker_will_clear(s);
		broker_session_destroy(s);
	}
	broker_reap(b);
	return 1;
}

int
broker_admin_retained_delete(struct broker *b, const char *topic, size_t len, uint64_t now_ms)
{
	struct mqtt_str t = { topic, (uint16_t)len };
	struct mqtt_iov empty = { (const uint8_t *)"", 0 };
	struct broker_msg *m;
	bool matched;
	int had = broker_retain_has(b, t);

	b->now_ms = now_ms;
	if (len == 0 || len > UINT16_MAX || !had)
		return had;
	/* as a client clears it: an empty retained PUBLISH, which every instance applies */
	if ((m = broker_msg_new(b, t, &empty, 1, NULL, now_ms)) == NULL)
		return -1;
	m->retain = true;
	broker_publish(b, m, &matched);
	broker_msg_unref(m);
	broker_count(b, BROKER_C_ADMIN_RETAINED_DELETED);
	broker_reap(b);
	return 1;
}

/* Route it; with down_ref, journal the ref after what routing journaled (one write: reap). */
static int
publish(struct broker *b, uint64_t down_ref, const char *topic, size_t tlen, const void *payload,
    size_t plen, uint8_t qos, bool retain, uint64_t now_ms)
{
	struct mqtt_str t = { topic, (uint16_t)tlen };
	struct mqtt_iov pl = { (const uint8_t *)payload, plen };
	struct broker_msg *m;
	bool matched;

	b->now_ms = now_ms;
	if (tlen == 0 || tlen > UINT16_MAX || qos > 2 || mqtt_topic_name_valid(topic, tlen) != 0 ||
	    topic_is_sys(t))
		return -EINVAL;
	if (plen > b->cfg.max_packet_size)
		return -E2BIG;
	if ((m = broker_msg_new(b, t, &pl, 1, NULL, now_ms)) == NULL)
		return -ENOMEM;
	m->qos = qos;
	m->retain = retain;
	broker_publish(b, m, &matched);
	broker_msg_unref(m);
	broker_count(b, BROKER_C_ADMIN_PUBLISHED);
	if (down_ref > b->down_ref) {
		b->down_ref = down_ref;
		broker_persist_down_ref(b);
	}
	broker_reap(b);
	return matched ? 1 : 0;
}

int
broker_admin_publish(struct broker *b, const char *topic, size_t tlen, const void *payload,
    size_t plen, uint8_t qos, bool retain, uint64_t now_ms)
{
	return publish(b, 0, topic, tlen, payload, plen, qos, retain, now_ms);
}

int
broker_down_publish(struct broker *b, uint64_t ref, const char *topic, size_t tlen,
    const void *payload, size_t plen, uint8_t qos, bool retain, uint64_t now_ms)
{
	return publish(b, ref, topic, tlen, payload, plen, qos, retain, now_ms);
}

uint64_t
broker_down_ref(const struct broker *b)
{
	return b->down_ref;
}
