/*
 * mqtt_client.c: the agent's MQTT 3.1.1 client, non-blocking, driven by the agent's event loop,
 * on the shared codec (lib/mqtt). States: IDLE (waiting to reconnect) -> CONNECTING (TCP
 * connect in progress) -> WAIT_CONNACK -> UP. Messages wait in a bounded queue while the broker
 * is away; QoS 1 messages stay in flight until PUBACKed and are resent (DUP) after a reconnect.
 * The command topic is subscribed with QoS 1 on every connect (persistent session, so commands
 * sent while we were away are delivered). Reconnects back off from 500 ms to 30 s with jitter.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "loop.h"
#include "mqtt_codec.h"
#include "uplink.h"
#include "log.h"

#define MC_WINDOW             64           /* QoS 1 messages in flight */
#define MC_OBUF_HIGH          (256 * 1024) /* stop encoding more while this much waits for the socket */
#define MC_IBUF_MAX           (256 * 1024) /* largest packet we accept from the broker */
#define MC_BACKOFF_MIN_MS     500
#define MC_BACKOFF_MAX_MS     30000
#define MC_CONNECT_TIMEOUT_MS 10000

enum mc_state {
	MC_IDLE = 0,
	MC_CONNECTING,
	MC_WAIT_CONNACK,
	MC_UP
};

struct mc_msg {
	struct mc_msg *next;
	uint8_t qos;
	bool retain, dup;
	uint16_t packet_id;
	uint16_t topic_len;
	uint32_t len;
	char *topic;
	uint8_t payload[];
};

struct mc_list {
	struct mc_msg *head, *tail;
	size_t n;
};

struct mqtt_client {
	struct uplink up;
	struct agent_loop *loop;
	char host[128], port[8], client_id[64], cmd_topic[256];
	uint16_t keepalive_s;
	size_t max_queue;
	enum mc_state state;
	int fd;
	uint64_t state_since_ms, next_connect_ms, last_tx_ms, last_rx_ms, backoff_ms;
	bool ping_out;
	uint16_t next_id;
	struct mc_list pending, inflight;
	uint8_t *obuf;
	size_t olen, ocap, ooff;
	uint8_t *ibuf;
	size_t ilen, icap;
	uint64_t discard; /* bytes of an oversized PUBLISH still to drop */
	uint8_t scratch[4096];
	struct uplink_stats st;
};

/* ---- queues ---- */

static void
list_push(struct mc_list *l, struct mc_msg *m)
{
	m->next = NULL;
	if (l->tail != NULL)
		l->tail->next = m;
	else
		l->head = m;
	l->tail = m;
	l->n++;
}

static struct mc_msg *
list_pop(struct mc_list *l)
{
	struct mc_msg *m = l->head;

	if (m != NULL) {
		l->head = m->next;
		if (l->head == NULL)
			l->tail = NULL;
		l->n--;
	}
	return m;
}

static void
list_free(struct mc_list *l)
{
	struct mc_msg *m;

	while ((m = list_pop(l)) != NULL)
		free(m);
}

/* Under backlog QoS 0 goes first: the oldest QoS 0 message waiting is dropped. */
static bool
drop_oldest_qos0(struct mc_list *l)
{
	struct mc_msg **pp = &l->head, *prev = NULL;

	for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		struct mc_msg *m = *pp;

		if (m->qos != 0)
			continue;
		*pp = m->next;
		if (l->tail == m)
			l->tail = prev;
		l->n--;
		free(m);
		return true;
	}
	return false;
}

/* ---- output ---- */

static int
obuf_reserve(struct mqtt_client *c, size_t need)
{
	uint8_t *nb;
	size_t cap;

	if (c->ooff > 0 && c->ooff == c->olen)
		c->ooff = c->olen = 0;
	if (c->olen + need <= c->ocap)
		return 0;
	if (c->ooff > 0) {
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
		if (c->olen + need <= c->ocap)
			return 0;
	}
	cap = c->ocap ? c->ocap : 4096;
	while (cap < c->olen + need)
		cap *= 2;
	nb = realloc(c->obuf, cap);
	if (nb == NULL)
		return -ENOMEM;
	c->obuf = nb;
	c->ocap = cap;
	return 0;
}

/* Encode one packet with an encoder that reports the size it needs when cap is too small. */
#define MC_ENCODE(c, call_with_buf_cap)                           \
	({                                                        \
		int n_ = 0;                                       \
		for (int try_ = 0; try_ < 2; try_++) {            \
			uint8_t *buf = (c)->obuf + (c)->olen;     \
			size_t cap = (c)->ocap - (c)->olen;       \
			n_ = (call_with_buf_cap);                 \
			if (n_ < 0 || (size_t)n_ <= cap)          \
				break;                            \
			if (obuf_reserve((c), (size_t)n_) != 0) { \
				n_ = -ENOMEM;                     \
				break;                            \
			}                                         \
		}                                                 \
		if (n_ > 0)                                       \
			(c)->olen += (size_t)n_;                  \
		n_;                                               \
	})

static void mc_drop_connection(struct mqtt_client *c, const char *why);

static void
mc_flush(struct mqtt_client *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = send(c->fd, c->obuf + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			mc_drop_connection(c, strerror(errno));
			return;
		}
		c->ooff += (size_t)n;
		c->last_tx_ms = clock_mono_ms();
	}
	if (c->ooff == c->olen)
		c->ooff = c->olen = 0;
	agent_loop_mod_fd(c->loop, c->fd, EPOLLIN | (c->olen ? EPOLLOUT : 0));
}

static int
mc_encode_publish(struct mqtt_client *c, struct mc_msg *m)
{
	struct mqtt_publish p = { .qos = m->qos,
		.dup = m->dup,
		.retain = m->retain,
		.topic = { m->topic, m->topic_len },
		.packet_id = m->packet_id,
		.payload = m->payload,
		.payload_len = m->len };

	return MC_ENCODE(c, mqtt_encode_publish(buf, cap, MQTT_V311, &p));
}

static uint16_t
mc_packet_id(struct mqtt_client *c)
{
	if (++c->next_id == 0)
		c->next_id = 1;
	return c->next_id;
}

/* Move what the window and the output buffer allow from pending onto the wire. */
static void
mc_pump(struct mqtt_client *c)
{
	struct mc_msg *m;

	if (c->state != MC_UP)
		return;
	while (c->pending.head != NULL && c->olen - c->ooff < MC_OBUF_HIGH) {
		if (c->pending.head->qos > 0 && c->inflight.n >= MC_WINDOW)
			break;
		m = list_pop(&c->pending);
		if (m->qos > 0 && !m->dup)
			m->packet_id = mc_packet_id(c);
		if (mc_encode_publish(c, m) < 0) {
			LOG_RATELIMITED(
			    LOG_LVL_WARN, 10, "mqtt: cannot encode a PUBLISH to %s", m->topic);
			c->st.dropped++;
			free(m);
			continue;
		}
		c->st.sent++;
		c->st.resent += m->dup;
		if (m->qos > 0)
			list_push(&c->inflight, m);
		else
			free(m);
	}
	mc_flush(c);
}

/* ---- connection ---- */

static void
mc_set_state(struct mqtt_client *c, enum mc_state s)
{
	c->state = s;
	c->state_since_ms = clock_mono_ms();
}

static void
mc_schedule_reconnect(struct mqtt_client *c)
{
	uint64_t jitter;

	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : MC_BACKOFF_MIN_MS;
	if (c->backoff_ms > MC_BACKOFF_MAX_MS)
		c->backoff_ms = MC_BACKOFF_MAX_MS;
	jitter = (uint64_t)rand() % (c->backoff_ms / 4 + 1);
	c->next_connect_ms = clock_mono_ms() + c->backoff_ms - c->backoff_ms / 8 + jitter;
}

static void
mc_drop_connection(struct mqtt_client *c, const char *why)
{
	struct mc_list back = { 0 };
	struct mc_msg *m;

	if (c->fd >= 0) {
		agent_loop_del_fd(c->loop, c->fd);
		close(c->fd);
		c->fd = -1;
	}
	if (c->state == MC_UP) {
		c->st.disconnects++;
		log_warnx("mqtt: connection to %s:%s lost: %s", c->host, c->port, why);
	} else {
		LOG_RATELIMITED(
		    LOG_LVL_WARN, 30, "mqtt: cannot connect to %s:%s: %s", c->host, c->port, why);
	}
	/* Unacknowledged QoS 1 messages go back in front, marked DUP, in their order. */
	while ((m = list_pop(&c->inflight)) != NULL) {
		m->dup = true;
		list_push(&back, m);
	}
	if (back.head != NULL) {
		back.tail->next = c->pending.head;
		if (c->pending.tail == NULL)
			c->pending.tail = back.tail;
		c->pending.head = back.head;
		c->pending.n += back.n;
	}
	c->olen = c->ooff = c->ilen = 0;
	c->discard = 0;
	c->ping_out = false;
	mc_set_state(c, MC_IDLE);
	mc_schedule_reconnect(c);
}

static void mc_on_io(void *arg, uint32_t events);

static int
mc_send_connect(struct mqtt_client *c)
{
	struct mqtt_connect cn = { .version = MQTT_V311,
		.clean_start = false,
		.keepalive_s = c->keepalive_s,
		.client_id = { c->client_id, (uint16_t)strlen(c->client_id) } };

	if (MC_ENCODE(c, mqtt_encode_connect(buf, cap, &cn)) < 0)
		return -EINVAL;
	mc_set_state(c, MC_WAIT_CONNACK);
	mc_flush(c);
	return 0;
}

static void
mc_start_connect(struct mqtt_client *c)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int rc;

	/* Numeric addresses resolve without blocking; names are looked up (configs use addresses). */
	rc = getaddrinfo(c->host, c->port, &hints, &ai);
	if (rc != 0) {
		mc_drop_connection(c, gai_strerror(rc));
		return;
	}
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 ||
	    (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) ||
	    agent_loop_add_fd(c->loop, c->fd, EPOLLOUT | EPOLLIN, mc_on_io, c) < 0) {
		int err = errno;

		freeaddrinfo(ai);
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		mc_drop_connection(c, strerror(err));
		return;
	}
	freeaddrinfo(ai);
	mc_set_state(c, MC_CONNECTING);
	c->last_rx_ms = clock_mono_ms();
}

static void
mc_subscribe(struct mqtt_client *c)
{
	struct mqtt_subscription s = { .filter = { c->cmd_topic, (uint16_t)strlen(c->cmd_topic) },
		.qos = 1 };
	struct mqtt_subscribe sub = { .packet_id = mc_packet_id(c), .subs = &s, .n_subs = 1 };

	if (c->cmd_topic[0] && MC_ENCODE(c, mqtt_encode_subscribe(buf, cap, MQTT_V311, &sub)) < 0)
		log_err("mqtt: cannot encode SUBSCRIBE to %s", c->cmd_topic);
}

/* ---- input ---- */

static void
mc_on_connack(struct mqtt_client *c, const struct mqtt_connack *ca)
{
	if (c->state != MC_WAIT_CONNACK)
		return mc_drop_connection(c, "unexpected CONNACK");
	if (ca->reason != 0) {
		char why[64];

		snprintf(
		    why, sizeof(why), "broker refused the connection (return code %u)", ca->reason);
		return mc_drop_connection(c, why);
	}
	mc_set_state(c, MC_UP);
	c->st.connects++;
	c->backoff_ms = 0;
	log_info("mqtt: connected to %s:%s as %s (%zu messages waiting)", c->host, c->port,
	    c->client_id, c->pending.n);
	mc_subscribe(c);
	mc_pump(c);
}

static void
mc_on_puback(struct mqtt_client *c, uint16_t id)
{
	struct mc_msg **pp = &c->inflight.head, *prev = NULL;

	for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		struct mc_msg *m = *pp;

		if (m->packet_id != id)
			continue;
		*pp = m->next;
		if (c->inflight.tail == m)
			c->inflight.tail = prev;
		c->inflight.n--;
		free(m);
		c->st.acked++;
		mc_pump(c);
		return;
	}
	LOG_RATELIMITED(LOG_LVL_WARN, 10, "mqtt: PUBACK for unknown packet id %u", id);
}

static void
mc_on_publish(struct mqtt_client *c, const struct mqtt_publish *p)
{
	char topic[256];
	struct mqtt_ack ack = { .packet_id = p->packet_id };

	if (p->qos == 1)
		MC_ENCODE(c, mqtt_encode_ack(buf, cap, MQTT_V311, MQTT_PUBACK, &ack));
	else if (p->qos == 2) /* we subscribe with QoS 1; answer a broker that upgrades anyway */
		MC_ENCODE(c, mqtt_encode_ack(buf, cap, MQTT_V311, MQTT_PUBREC, &ack));
	if (p->topic.len >= sizeof(topic)) {
		LOG_RATELIMITED(
		    LOG_LVL_WARN, 10, "mqtt: command topic too long (%u bytes)", p->topic.len);
		return;
	}
	memcpy(topic, p->topic.s, p->topic.len);
	topic[p->topic.len] = '\0';
	c->st.commands++;
	c->up.cmd_fn(c->up.cmd_arg, topic, p->payload, p->payload_len);
}

static void
mc_on_packet(struct mqtt_client *c, const struct mqtt_packet *pkt)
{
	struct mqtt_ack ack;

	switch (pkt->type) {
	case MQTT_CONNACK:
		mc_on_connack(c, &pkt->connack);
		break;
	case MQTT_PUBACK:
		mc_on_puback(c, pkt->ack.packet_id);
		break;
	case MQTT_PUBLISH:
		mc_on_publish(c, &pkt->publish);
		break;
	case MQTT_PUBREL:
		ack = (struct mqtt_ack){ .packet_id = pkt->ack.packet_id };
		MC_ENCODE(c, mqtt_encode_ack(buf, cap, MQTT_V311, MQTT_PUBCOMP, &ack));
		break;
	case MQTT_SUBACK:
		if (pkt->suback.n_reasons > 0 && pkt->suback.reasons[0] >= 0x80)
			log_err("mqtt: broker refused the subscription to %s", c->cmd_topic);
		break;
	case MQTT_PINGRESP:
		c->ping_out = false;
		break;
	default:
		LOG_RATELIMITED(LOG_LVL_WARN, 10, "mqtt: unexpected %s from the broker",
		    mqtt_type_name(pkt->type));
	}
}

/*
 * A PUBLISH larger than we take (a runaway or hostile command) is acknowledged and dropped as
 * its bytes arrive: closing the connection instead would have a persistent session deliver it
 * again at every reconnect. Returns 1 when skipped, 0 when its header is not all here yet.
 */
static int
mc_skip_oversized(struct mqtt_client *c, size_t off)
{
	const uint8_t *p = c->ibuf + off;
	size_t have = c->ilen - off, i = 1, need;
	uint32_t rlen = 0, total;
	uint8_t qos = (p[0] >> 1) & 3;
	struct mqtt_ack ack = { 0 };

	for (; i < 5 && i < have; i++) {
		rlen |= (uint32_t)(p[i] & 0x7F) << (7 * (i - 1));
		if (!(p[i] & 0x80))
			break;
	}
	if (i >= have)
		return 0;
	total = (uint32_t)(i + 1) + rlen;
	need = i + 1 + 2;
	if (have < need)
		return 0;
	need += ((size_t)p[i + 1] << 8 | p[i + 2]) + (qos ? 2 : 0);
	if (have < need)
		return 0;
	ack.packet_id = qos ? (uint16_t)(p[need - 2] << 8 | p[need - 1]) : 0;
	if (qos == 1)
		MC_ENCODE(c, mqtt_encode_ack(buf, cap, MQTT_V311, MQTT_PUBACK, &ack));
	else if (qos == 2)
		MC_ENCODE(c, mqtt_encode_ack(buf, cap, MQTT_V311, MQTT_PUBREC, &ack));
	c->st.dropped++;
	LOG_RATELIMITED(LOG_LVL_WARN, 10,
	    "mqtt: dropped a %u-byte PUBLISH from the broker (limit %u)", total, MC_IBUF_MAX);
	c->discard = total - have;
	c->ilen = off;
	return 1;
}

static void
mc_read(struct mqtt_client *c)
{
	struct mqtt_decoder dec;
	struct mqtt_packet pkt;
	size_t off = 0;
	ssize_t n;

	if (c->icap - c->ilen < 4096) {
		size_t cap = c->icap ? c->icap * 2 : 16384;
		uint8_t *nb = cap <= 2 * MC_IBUF_MAX ? realloc(c->ibuf, cap) : NULL;

		if (nb == NULL)
			return mc_drop_connection(c, "packet from the broker too large");
		c->ibuf = nb;
		c->icap = cap;
	}
	n = recv(c->fd, c->ibuf + c->ilen, c->icap - c->ilen, 0);
	if (n == 0)
		return mc_drop_connection(c, "closed by the broker");
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? (void)0
							   : mc_drop_connection(c, strerror(errno));
	c->last_rx_ms = clock_mono_ms();
	if (c->discard > 0) {
		size_t drop = (size_t)n < c->discard ? (size_t)n : (size_t)c->discard;

		memmove(c->ibuf + c->ilen, c->ibuf + c->ilen + drop, (size_t)n - drop);
		c->discard -= drop;
		n -= (ssize_t)drop;
	}
	c->ilen += (size_t)n;
	mqtt_decoder_init(
	    &dec, MQTT_ROLE_CLIENT, MQTT_V311, MC_IBUF_MAX, c->scratch, sizeof(c->scratch));
	while (c->fd >= 0 && off < c->ilen) {
		int rc = mqtt_decode_buf(&dec, c->ibuf + off, c->ilen - off, &pkt);

		if (rc == 0)
			break;
		if (rc == -MQTT_E_PACKET_TOO_LARGE && (c->ibuf[off] >> 4) == MQTT_PUBLISH) {
			if (mc_skip_oversized(c, off) == 0 && c->ilen == c->icap)
				return mc_drop_connection(c, "PUBLISH header too large");
			break;
		}
		if (rc < 0)
			return mc_drop_connection(c, mqtt_err_str(rc));
		mc_on_packet(c, &pkt);
		off += (size_t)rc;
	}
	if (c->fd < 0)
		return;
	memmove(c->ibuf, c->ibuf + off, c->ilen - off);
	c->ilen -= off;
	mc_flush(c);
}

static void
mc_on_io(void *arg, uint32_t events)
{
	struct mqtt_client *c = arg;
	int err = 0;
	socklen_t el = sizeof(err);

	if (c->fd < 0)
		return;
	if (c->state == MC_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0)
			return mc_drop_connection(c, strerror(err ? err : errno));
		if (!(events & (EPOLLOUT | EPOLLIN)))
			return;
		if (mc_send_connect(c) != 0)
			mc_drop_connection(c, "cannot encode CONNECT");
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		mc_read(c);
	if (c->fd >= 0 && (events & EPOLLOUT))
		mc_pump(c);
}

static void
mc_tick(void *arg, uint64_t now)
{
	struct mqtt_client *c = arg;
	uint64_t ka = (uint64_t)c->keepalive_s * 1000;

	switch (c->state) {
	case MC_IDLE:
		if (now >= c->next_connect_ms)
			mc_start_connect(c);
		break;
	case MC_CONNECTING:
	case MC_WAIT_CONNACK:
		if (now - c->state_since_ms > MC_CONNECT_TIMEOUT_MS)
			mc_drop_connection(c, "no CONNACK in time");
		break;
	case MC_UP:
		if (ka && now - c->last_rx_ms > ka + ka / 2) {
			mc_drop_connection(c, "keepalive: the broker went silent");
		} else if (ka && !c->ping_out &&
		    (now - c->last_tx_ms >= ka || now - c->last_rx_ms >= ka)) {
			/* Also when we send a lot but hear nothing (QoS 0 only): the PINGRESP is
			 * what tells a live broker from a dead one. */
			MC_ENCODE(c, mqtt_encode_pingreq(buf, cap));
			c->ping_out = true;
			mc_flush(c);
		}
		break;
	}
}

/* ---- uplink ops ---- */

static int
mc_submit(
    struct uplink *u, const char *topic, const void *payload, size_t len, uint8_t qos, bool retain)
{
	struct mqtt_client *c = (struct mqtt_client *)u;
	size_t tl = strlen(topic);
	struct mc_msg *m;

	c->st.submitted++;
	if (tl == 0 || tl > 65535 || len > 16 * 1024 * 1024) {
		c->st.dropped++;
		return -EINVAL;
	}
	if (c->pending.n + c->inflight.n >= c->max_queue && !drop_oldest_qos0(&c->pending)) {
		c->st.dropped++;
		LOG_RATELIMITED(LOG_LVL_WARN, 10, "mqtt: queue full (%zu), message to %s dropped",
		    c->max_queue, topic);
		return -ENOBUFS;
	} else if (c->pending.n + c->inflight.n >= c->max_queue) {
		c->st.dropped++; /* the QoS 0 message dropped to make room */
	}
	m = malloc(sizeof(*m) + len + tl + 1);
	if (m == NULL) {
		c->st.dropped++;
		return -ENOMEM;
	}
	*m = (struct mc_msg){ .qos = qos > 1 ? 1 : qos,
		.retain = retain,
		.topic_len = (uint16_t)tl,
		.len = (uint32_t)len };
	memcpy(m->payload, payload, len);
	m->topic = (char *)m->payload + len;
	memcpy(m->topic, topic, tl + 1);
	list_push(&c->pending, m);
	mc_pump(c);
	return 0;
}

static void
mc_stats(const struct uplink *u, struct uplink_stats *out)
{
	const struct mqtt_client *c = (const struct mqtt_client *)u;

	*out = c->st;
	out->queued = c->pending.n + c->inflight.n;
	out->connected = c->state == MC_UP;
}

static void
mc_destroy(struct uplink *u)
{
	struct mqtt_client *c = (struct mqtt_client *)u;

	if (c->fd >= 0) {
		if (c->state == MC_UP) {
			/* Best effort: what the socket takes now, then a clean DISCONNECT. */
			mc_pump(c);
			MC_ENCODE(c, mqtt_encode_disconnect(buf, cap, MQTT_V311, NULL));
			if (c->olen > c->ooff &&
			    send(c->fd, c->obuf + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL) < 0)
				log_debug("mqtt: DISCONNECT not sent: %s", strerror(errno));
		}
		agent_loop_del_fd(c->loop, c->fd);
		close(c->fd);
	}
	if (c->pending.n + c->inflight.n)
		log_warnx("mqtt: %zu messages not delivered at exit", c->pending.n + c->inflight.n);
	list_free(&c->pending);
	list_free(&c->inflight);
	free(c->obuf);
	free(c->ibuf);
	free(c);
}

static const struct uplink_ops mqtt_ops = { "mqtt", mc_submit, mc_stats, mc_destroy };

int
uplink_mqtt_create(struct uplink **out, struct agent_loop *loop, const struct uplink_mqtt_conf *cf,
    uplink_cmd_fn fn, void *arg)
{
	struct mqtt_client *c = calloc(1, sizeof(*c));
	int rc;

	if (c == NULL)
		return -ENOMEM;
	c->up = (struct uplink){ &mqtt_ops, fn, arg };
	c->loop = loop;
	c->fd = -1;
	snprintf(c->host, sizeof(c->host), "%s", cf->host);
	snprintf(c->port, sizeof(c->port), "%u", cf->port);
	snprintf(c->client_id, sizeof(c->client_id), "%s", cf->client_id);
	snprintf(c->cmd_topic, sizeof(c->cmd_topic), "%s", cf->cmd_topic ? cf->cmd_topic : "");
	c->keepalive_s = cf->keepalive_s;
	c->max_queue = cf->max_queue ? cf->max_queue : 100000;
	if (obuf_reserve(c, 4096) != 0 || (rc = agent_loop_add_tick(loop, mc_tick, c)) != 0) {
		free(c->obuf);
		free(c);
		return -ENOMEM;
	}
	mc_set_state(c, MC_IDLE);
	c->next_connect_ms = 0; /* connect on the first tick */
	log_info("uplink: MQTT 3.1.1 to %s:%s as %s, commands on %s", c->host, c->port,
	    c->client_id, c->cmd_topic[0] ? c->cmd_topic : "(none)");
	*out = &c->up;
	return 0;
}
