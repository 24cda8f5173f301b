/* fake_broker.c: see fake_broker.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_broker.h"

static int
h_watch(void *arg, int fd, uint32_t events, bool add)
{
	struct fb *b = arg;

	(void)add;
	b->watched_fd = fd;
	b->watched_ev = events;
	return 0;
}

static void
h_unwatch(void *arg, int fd)
{
	struct fb *b = arg;

	if (b->watched_fd == fd)
		b->watched_fd = -1;
}

static struct fb_event *
h_event(struct fb *b, int kind, uint64_t ref)
{
	struct fb_event *e = &b->ev[b->nev < 255 ? b->nev++ : 255];

	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ref = ref;
	return e;
}

static int
h_message(void *arg, const char *topic, const uint8_t *payload, size_t len, uint8_t qos,
    bool retain, uint16_t packet_id, uint64_t token)
{
	struct fb_event *e = h_event(arg, 'm', len);

	(void)retain;
	e->st = qos;
	e->packet_id = packet_id;
	e->ref = token; /* for mqttc_owned() when message_rc is MQTTC_OWN_LATER */
	snprintf(e->topic, sizeof(e->topic), "%s", topic);
	e->topic_len = strlen(topic);
	if (((struct fb *)arg)->on_message != NULL)
		return ((struct fb *)arg)->on_message(arg, qos, packet_id, token, payload, len);
	return ((struct fb *)arg)->message_rc;
}

static int
h_released(void *arg, uint16_t packet_id)
{
	struct fb *b = arg;

	if (packet_id != 0) /* 0: a new session, nothing kept (not an event the tests count) */
		h_event(b, 'r', 0)->packet_id = packet_id;
	else
		b->sessions_lost++;
	if (b->on_released != NULL)
		return b->on_released(b, packet_id);
	return b->released_rc;
}

static int
h_persist(void *arg, uint64_t ref, uint16_t id, enum mqttc_msg_state st)
{
	struct fb *b = arg;
	struct fb_event *e = h_event(b, 'p', ref);

	e->packet_id = id;
	e->st = (int)st;
	return b->fail_persist ? -EIO : 0;
}

/* The commit ends at the next fb_drive (as the store's does from the loop), unless the test
 * holds it (hold_sync: a slow disk) and ends it with fb_sync_done(). */
static int
h_persist_sync(void *arg)
{
	struct fb *b = arg;

	h_event(b, 's', 0);
	b->sync_pending = true;
	return 0;
}

static void
h_acked(void *arg, uint64_t ref, uint8_t reason)
{
	h_event(arg, 'a', ref)->st = reason;
}

static uint64_t
h_now(void *arg)
{
	return ((struct fb *)arg)->now;
}

void
fb_init(struct fb *b, struct uplink_mqtt_conf *conf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(b, 0, sizeof(*b));
	b->sfd = b->watched_fd = -1;
	b->now = 1000000;
	b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(b->lfd >= 0);
	assert_int_equal(bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(b->lfd, 4), 0);
	assert_int_equal(getsockname(b->lfd, (struct sockaddr *)&sa, &sl), 0);
	b->port = ntohs(sa.sin_port);
	uplink_mqtt_conf_defaults(conf);
	conf->port = b->port;
	snprintf(conf->client_id, sizeof(conf->client_id), "edge1");
	snprintf(conf->cmd_topic, sizeof(conf->cmd_topic), "site/cmd");
	conf->keepalive_s = 10;
}

void
fb_start_client(struct fb *b, const struct uplink_mqtt_conf *conf)
{
	struct mqttc_hooks h = { .arg = b,
		.watch = h_watch,
		.unwatch = h_unwatch,
		.message = h_message,
		.released = h_released,
		.persist = h_persist,
		.persist_sync = h_persist_sync,
		.acked = h_acked,
		.now_ms = h_now,
		.lookup = b->lookup };
	char err[128];

	b->version = conf->version;
	assert_int_equal(mqttc_create(&b->c, conf, &h, err, sizeof(err)), 0);
	mqttc_seed(b->c, 42);
}

void
fb_fini(struct fb *b)
{
	mqttc_destroy(b->c);
	if (b->sfd >= 0)
		close(b->sfd);
	close(b->lfd);
}

void
fb_sync_done(struct fb *b)
{
	if (!b->sync_pending)
		return;
	b->sync_pending = false;
	mqttc_persist_synced(b->c, b->fail_sync ? -EIO : 0);
}

void
fb_drive(struct fb *b, int ms)
{
	struct pollfd p = { .fd = b->watched_fd, .events = 0 };

	if (!b->hold_sync)
		fb_sync_done(b);
	if (b->watched_fd < 0)
		return;
	p.events = (short)((b->watched_ev & EPOLLIN ? POLLIN : 0) |
	    (b->watched_ev & EPOLLOUT ? POLLOUT : 0));
	if (poll(&p, 1, ms) <= 0)
		return;
	mqttc_on_io(b->c,
	    (p.revents & POLLIN ? EPOLLIN : 0) | (p.revents & POLLOUT ? EPOLLOUT : 0) |
		(p.revents & POLLHUP ? EPOLLHUP : 0) | (p.revents & POLLERR ? EPOLLERR : 0));
}

void
fb_tick(struct fb *b, uint64_t advance_ms)
{
	b->now += advance_ms;
	mqttc_tick(b->c);
}

void
fb_accept(struct fb *b)
{
	struct pollfd p = { .fd = b->lfd, .events = POLLIN };
	int one = 1;

	if (b->sfd >= 0)
		close(b->sfd);
	b->blen = 0;
	for (int i = 0; i < 200 && poll(&p, 1, 0) == 0; i++) {
		fb_tick(b, 0);
		fb_drive(b, 10);
	}
	assert_int_equal(poll(&p, 1, 0), 1); /* the client connected: fail, not hang, if not */
	b->sfd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(b->sfd >= 0);
	/* bytes sent one at a time must leave one at a time (no Nagle wait for an ACK) */
	setsockopt(b->sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
fb_copy(struct fb_pkt *p, const struct mqtt_packet *k)
{
	memset(p, 0, sizeof(*p));
	p->type = k->type;
	switch (k->type) {
	case MQTT_CONNECT:
		p->version = k->connect.version;
		p->clean_start = k->connect.clean_start;
		p->keepalive_s = k->connect.keepalive_s;
		p->has_username = k->connect.has_username;
		p->has_password = k->connect.has_password;
		if (mqtt_props_has(&k->connect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL))
			p->session_expiry = k->connect.props.v[MQTT_PROP_SESSION_EXPIRY_INTERVAL].u;
		break;
	case MQTT_PUBLISH:
		p->qos = k->publish.qos;
		p->dup = k->publish.dup;
		p->packet_id = k->publish.packet_id;
		p->payload_len = k->publish.payload_len;
		memcpy(p->topic, k->publish.topic.s, k->publish.topic.len);
		break;
	case MQTT_SUBSCRIBE:
		p->packet_id = k->subscribe.packet_id;
		memcpy(p->topic, k->subscribe.subs[0].filter.s, k->subscribe.subs[0].filter.len);
		p->n_filters = k->subscribe.n_subs;
		if (k->subscribe.n_subs > 1) {
			memcpy(p->filter2, k->subscribe.subs[1].filter.s,
			    k->subscribe.subs[1].filter.len);
			p->filter2_qos = k->subscribe.subs[1].qos;
		}
		break;
	case MQTT_UNSUBSCRIBE:
		p->packet_id = k->unsubscribe.packet_id;
		memcpy(p->topic, k->unsubscribe.filters[0].s, k->unsubscribe.filters[0].len);
		p->n_filters = k->unsubscribe.n_filters;
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		p->packet_id = k->ack.packet_id;
		p->reason = k->ack.reason;
		break;
	default:
		break;
	}
}

static int
fb_decode(struct fb *b, struct fb_pkt *p)
{
	static uint8_t scratch[8192];
	struct mqtt_decoder d;
	struct mqtt_packet k;
	int rc;

	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, b->version, 0, scratch, sizeof(scratch));
	rc = mqtt_decode_buf(&d, b->buf, b->blen, &k);
	assert_true(rc >= 0);
	if (rc == 0)
		return 0;
	fb_copy(p, &k);
	memmove(b->buf, b->buf + rc, b->blen - (size_t)rc);
	b->blen -= (size_t)rc;
	return 1;
}

static bool
fb_recv_wait(struct fb *b, struct fb_pkt *p, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		struct pollfd q = { .fd = b->sfd, .events = POLLIN };
		ssize_t n;

		if (fb_decode(b, p))
			return true;
		fb_drive(b, 0);
		if (poll(&q, 1, 10) <= 0)
			continue;
		n = recv(b->sfd, b->buf + b->blen, sizeof(b->buf) - b->blen, 0);
		if (n <= 0)
			return false;
		b->blen += (size_t)n;
	}
	return fb_decode(b, p) == 1;
}

bool
fb_recv(struct fb *b, struct fb_pkt *p)
{
	return fb_recv_wait(b, p, 1000);
}

bool
fb_quiet(struct fb *b)
{
	struct fb_pkt p;

	return !fb_recv_wait(b, &p, 10);
}

void
fb_send(struct fb *b, const uint8_t *buf, size_t len, bool bytewise)
{
	for (size_t off = 0; off < len;) {
		size_t n = bytewise ? 1 : len - off;

		assert_int_equal(send(b->sfd, buf + off, n, MSG_NOSIGNAL), (ssize_t)n);
		off += n;
		if (bytewise)
			fb_drive(b, 5);
	}
	for (int i = 0; i < 5; i++)
		fb_drive(b, 5);
}

void
fb_connack(struct fb *b, uint8_t reason, bool session_present, uint16_t receive_max)
{
	struct mqtt_connack ca = { .session_present = session_present, .reason = reason };
	uint8_t buf[64];
	int n;

	if (receive_max)
		mqtt_props_set_u32(&ca.props, MQTT_PROP_RECEIVE_MAXIMUM, receive_max);
	n = mqtt_encode_connack(buf, sizeof(buf), b->version, &ca);
	assert_true(n > 0);
	fb_send(b, buf, (size_t)n, false);
}

void
fb_ack(struct fb *b, enum mqtt_type type, uint16_t id, uint8_t reason)
{
	struct mqtt_ack a = { .packet_id = id, .reason = reason };
	uint8_t buf[64];
	int n = mqtt_encode_ack(buf, sizeof(buf), b->version, type, &a);

	assert_true(n > 0);
	fb_send(b, buf, (size_t)n, false);
}

void
fb_publish(struct fb *b, const char *topic, const char *payload, uint8_t qos, uint16_t id, bool dup)
{
	struct mqtt_publish p = { .qos = qos,
		.dup = dup,
		.topic = { topic, (uint16_t)strlen(topic) },
		.packet_id = id,
		.payload = (const uint8_t *)payload,
		.payload_len = (uint32_t)strlen(payload) };
	size_t cap = 64 + p.topic.len + p.payload_len;
	uint8_t *buf = malloc(cap);
	int n;

	assert_non_null(buf);
	n = mqtt_encode_publish(buf, cap, b->version, &p);
	assert_true(n > 0);
	fb_send(b, buf, (size_t)n, false);
	free(buf);
}

void
fb_close(struct fb *b)
{
	close(b->sfd);
	b->sfd = -1;
	b->blen = 0;
	for (int i = 0; i < 5; i++)
		fb_drive(b, 5);
}

void
fb_reset(struct fb *b)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(b->sfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(b->sfd);
	b->sfd = -1;
	b->blen = 0;
}

void
fb_send_big(struct fb *b, const uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = send(b->sfd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			n = 0;
		}
		off += (size_t)n;
		fb_drive(b, 10);
	}
	for (int i = 0; i < 5; i++)
		fb_drive(b, 5);
}

void
fb_connect(struct fb *b, bool session_present)
{
	struct fb_pkt p;
	uint8_t buf[64];
	struct mqtt_suback sa = { .n_reasons = 1, .reasons = (const uint8_t *)"\1" };
	int n;

	fb_accept(b);
	assert_true(fb_recv(b, &p));
	assert_int_equal(p.type, MQTT_CONNECT);
	fb_connack(b, 0, session_present, 0);
	assert_int_equal(mqttc_state(b->c), MQTTC_UP);
	/* The command topic is subscribed on every connect. */
	assert_true(fb_recv(b, &p));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_string_equal(p.topic, "site/cmd");
	sa.packet_id = p.packet_id;
	n = mqtt_encode_suback(buf, sizeof(buf), b->version, &sa);
	fb_send(b, buf, (size_t)n, false);
}

int
fb_count(const struct fb *b, int kind)
{
	int n = 0;

	for (int i = 0; i < b->nev; i++)
		n += b->ev[i].kind == kind;
	return n;
}

/* --- the fixture of test_mqttc.c and test_mqttc_faults.c --- */

struct fb B;
struct uplink_mqtt_conf C;

int
setup(void **state)
{
	(void)state;
	fb_init(&B, &C);
	return 0;
}

int
teardown(void **state)
{
	(void)state;
	fb_fini(&B);
	return 0;
}

const uint64_t *
cnt(void)
{
	return mqttc_counters(B.c);
}

void
publish(const char *topic, uint8_t qos, uint64_t ref)
{
	assert_int_equal(mqttc_publish(B.c, topic, "v", 1, qos, false, ref), 0);
}

struct fb_pkt
expect(enum mqtt_type type)
{
	struct fb_pkt p;

	assert_true(fb_recv(&B, &p));
	assert_int_equal(p.type, type);
	return p;
}

void
next_attempt(void)
{
	fb_tick(&B, C.reconnect_max_ms);
	fb_accept(&B);
	expect(MQTT_CONNECT);
}
