/* broker_fixture.c: the fake transport and packet helpers of the broker unit tests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

static uint32_t fx_rand_state = 1;

void
fx_seed(uint32_t seed)
{
	fx_rand_state = seed != 0 ? seed : 1;
}

static uint32_t
fx_rand(void)
{
	uint32_t v = fx_rand_state; /* xorshift32 */

	v ^= v << 13;
	v ^= v >> 17;
	v ^= v << 5;
	return fx_rand_state = v;
}

static size_t fake_space(void *ctx);

static int
fake_send(void *ctx, const struct mqtt_iov *iov, size_t n)
{
	struct fake *f = ctx;
	size_t total = 0;

	assert_non_null(f->c); /* never a send on a connection the broker closed */
	for (size_t i = 0; i < n; i++)
		total += iov[i].len;
	if (f->fail_next > 0) {
		f->fail_next--;
		return -ENOBUFS;
	}
	if (total > fake_space(f) || (f->fail_pct > 0 && fx_rand() % 100 < f->fail_pct))
		return -ENOBUFS;
	f->space -= total;
	for (size_t i = 0; i < n; i++) {
		assert_true(f->len + iov[i].len <= FX_OUT);
		memcpy(f->out + f->len, iov[i].base, iov[i].len);
		f->len += iov[i].len;
	}
	return 0;
}

static size_t
fake_space(void *ctx)
{
	struct fake *f = ctx;

	return f->space < FX_OUT - f->len ? f->space : FX_OUT - f->len;
}

static void
fake_close(void *ctx, uint8_t reason)
{
	struct fake *f = ctx;

	f->closed = true;
	f->close_reason = reason;
	f->c = NULL;
}

static void
fake_input_ready(void *ctx)
{
	((struct fake *)ctx)->wake = true;
}

static const struct broker_transport_ops fake_ops = {
	.send = fake_send,
	.send_space = fake_space,
	.close = fake_close,
	.input_ready = fake_input_ready,
};

struct fx *
fx_new(const struct broker_config *cfg)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	if (cfg != NULL) {
		x->cfg = *cfg;
	} else {
		broker_config_defaults(&x->cfg);
		x->cfg.sys_interval_ms = 0;
	}
	x->now = 1000000;
	x->b = broker_create(&x->cfg, &fake_ops, x->now);
	assert_non_null(x->b);
	return x;
}

void
fx_free(struct fx *x)
{
	broker_destroy(x->b);
	free(x);
}

void
fx_open(struct fx *x, int i, uint8_t version)
{
	struct fake *f = &x->f[i];

	memset(f, 0, sizeof(*f));
	f->space = FX_OUT;
	f->version = version;
	mqtt_decoder_init(&f->dec, MQTT_ROLE_CLIENT, version, 0, f->scratch, sizeof(f->scratch));
	f->c = broker_conn_open(x->b, f, x->now);
	assert_non_null(f->c);
}

/* Like a transport: what the broker does not use now stays, to be passed again first. With no
 * held CONNACK every test packet is whole, so then everything must be used. */
int
fx_feed(struct fx *x, int i, const void *buf, size_t len)
{
	struct fake *f = &x->f[i];
	struct mqtt_iov seg[2] = { { f->in, f->in_len }, { buf, len } };
	size_t used = 0, total = f->in_len + len;
	int rc;

	assert_non_null(f->c);
	rc = broker_conn_input(
	    f->c, f->in_len > 0 ? seg : seg + 1, f->in_len > 0 ? 2 : 1, &used, x->now);
	if (rc < 0)
		return rc;
	assert_true(total - used <= sizeof(f->in));
	if (used < f->in_len) {
		memmove(f->in, f->in + used, f->in_len - used);
		f->in_len -= used;
		used = 0;
	} else {
		used -= f->in_len;
		f->in_len = 0;
	}
	memcpy(f->in + f->in_len, (const uint8_t *)buf + used, len - used);
	f->in_len += len - used;
	return rc;
}

int
fx_refeed(struct fx *x, int i)
{
	struct fake *f = &x->f[i];
	uint8_t copy[sizeof(f->in)];
	size_t n = f->in_len;

	f->wake = false;
	if (f->c == NULL || n == 0)
		return 0;
	memcpy(copy, f->in, n);
	f->in_len = 0;
	return fx_feed(x, i, copy, n);
}

int
fx_send(struct fx *x, int i, const struct mqtt_packet *p)
{
	uint8_t buf[4096];
	int len = mqtt_encode(buf, sizeof(buf), x->f[i].version, p);

	assert_true(len > 0 && (size_t)len <= sizeof(buf));
	return fx_feed(x, i, buf, (size_t)len);
}

bool
fx_next(struct fx *x, int i, struct mqtt_packet *p)
{
	struct fake *f = &x->f[i];
	int rc;

	if (f->rd >= f->len)
		return false;
	rc = mqtt_decode_buf(&f->dec, f->out + f->rd, f->len - f->rd, p);
	assert_true(rc > 0);
	f->rd += (size_t)rc;
	return true;
}

void
fx_connect_start(struct fx *x, int i, uint8_t version, const char *id, bool clean,
    uint16_t keepalive_s, const struct mqtt_props *props)
{
	struct mqtt_packet p = { .type = MQTT_CONNECT };

	fx_open(x, i, version);
	p.connect.version = version;
	p.connect.clean_start = clean;
	p.connect.keepalive_s = keepalive_s;
	p.connect.client_id = (struct mqtt_str){ id, (uint16_t)strlen(id) };
	if (props != NULL)
		p.connect.props = *props;
	assert_int_equal(fx_send(x, i, &p), 0);
}

bool
fx_connack(struct fx *x, int i)
{
	struct mqtt_packet r;

	assert_true(fx_next(x, i, &r));
	assert_int_equal(r.type, MQTT_CONNACK);
	assert_int_equal(r.connack.reason, 0);
	return r.connack.session_present;
}

bool
fx_connect(struct fx *x, int i, uint8_t version, const char *id, bool clean, uint16_t keepalive_s,
    const struct mqtt_props *props)
{
	fx_connect_start(x, i, version, id, clean, keepalive_s, props);
	return fx_connack(x, i);
}

int
fx_connect_will_send(struct fx *x, int i, const struct fx_will *w)
{
	struct mqtt_packet p = { .type = MQTT_CONNECT };
	const char *topic = w->topic != NULL ? w->topic : "will/t";

	fx_open(x, i, MQTT_V5);
	p.connect.version = MQTT_V5;
	p.connect.clean_start = w->clean;
	p.connect.keepalive_s = w->keepalive_s;
	p.connect.client_id = (struct mqtt_str){ w->id, (uint16_t)strlen(w->id) };
	p.connect.has_will = true;
	p.connect.will.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.connect.will.payload = MQTT_STR("gone");
	p.connect.will.qos = 1;
	if (w->delay_s > 0)
		mqtt_props_set_u32(
		    &p.connect.will.props, MQTT_PROP_WILL_DELAY_INTERVAL, w->delay_s);
	if (w->msg_expiry_s > 0)
		mqtt_props_set_u32(
		    &p.connect.will.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, w->msg_expiry_s);
	if (w->expiry_s > 0)
		mqtt_props_set_u32(
		    &p.connect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, w->expiry_s);
	return fx_send(x, i, &p);
}

int
fx_connect_will(
    struct fx *x, int i, const char *id, bool clean, uint32_t will_delay_s, uint32_t expiry_s)
{
	struct fx_will w = { .id = id,
		.clean = clean,
		.delay_s = will_delay_s,
		.expiry_s = expiry_s,
		.keepalive_s = 60 };
	struct mqtt_packet r;

	if (fx_connect_will_send(x, i, &w) != 0 || !fx_next(x, i, &r) || r.type != MQTT_CONNACK)
		return -1;
	return r.connack.reason;
}

void
fx_subscribe(struct fx *x, int i, const char *filter, uint8_t opts)
{
	struct mqtt_subscription s = { .filter = { filter, (uint16_t)strlen(filter) },
		.qos = opts & 3,
		.no_local = opts & 4,
		.retain_as_published = opts & 8,
		.retain_handling = (opts >> 4) & 3 };
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE };
	struct mqtt_packet r;

	p.subscribe.packet_id = 77;
	p.subscribe.subs = &s;
	p.subscribe.n_subs = 1;
	assert_int_equal(fx_send(x, i, &p), 0);
	assert_true(fx_next(x, i, &r));
	assert_int_equal(r.type, MQTT_SUBACK);
	assert_int_equal(r.suback.packet_id, 77);
	assert_int_equal(r.suback.reasons[0], opts & 3);
}

void
fx_publish(struct fx *x, int i, const char *topic, const char *payload, uint8_t qos, uint16_t pid,
    bool retain)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)payload;
	p.publish.payload_len = (uint32_t)strlen(payload);
	p.publish.qos = qos;
	p.publish.packet_id = pid;
	p.publish.retain = retain;
	assert_int_equal(fx_send(x, i, &p), 0);
}

void
fx_ack(struct fx *x, int i, enum mqtt_type type, uint16_t pid)
{
	struct mqtt_packet p = { .type = type };

	p.ack.packet_id = pid;
	assert_int_equal(fx_send(x, i, &p), 0);
}

struct mqtt_publish
fx_expect_publish(struct fx *x, int i, const char *topic, const char *payload, uint8_t qos)
{
	struct mqtt_packet p;

	assert_true(fx_next(x, i, &p));
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_int_equal(p.publish.topic.len, strlen(topic));
	assert_memory_equal(p.publish.topic.s, topic, strlen(topic));
	assert_int_equal(p.publish.payload_len, strlen(payload));
	assert_memory_equal(p.publish.payload, payload, strlen(payload));
	assert_int_equal(p.publish.qos, qos);
	return p.publish;
}

void
fx_expect_type(struct fx *x, int i, enum mqtt_type type, uint8_t reason)
{
	struct mqtt_packet p;

	assert_true(fx_next(x, i, &p));
	assert_int_equal(p.type, type);
	if (type == MQTT_DISCONNECT)
		assert_int_equal(p.disconnect.reason, reason);
	else if (type == MQTT_CONNACK)
		assert_int_equal(p.connack.reason, reason);
	else if (type >= MQTT_PUBACK && type <= MQTT_PUBCOMP)
		assert_int_equal(p.ack.reason, reason);
}

void
fx_expect_none(struct fx *x, int i)
{
	assert_int_equal(x->f[i].rd, x->f[i].len);
}

void
fx_expect_bytes(struct fx *x, int i, const uint8_t *want, size_t len)
{
	struct fake *f = &x->f[i];

	assert_true(f->len - f->rd >= len);
	assert_memory_equal(f->out + f->rd, want, len);
	f->rd += len;
}

void
fx_close(struct fx *x, int i)
{
	broker_conn_closed(x->f[i].c, x->now);
	x->f[i].c = NULL;
	x->f[i].closed = true;
}

void
fx_read_all(struct fx *x, int i)
{
	struct fake *f = &x->f[i];

	if (f->rd == f->len) /* nothing unread: the buffer starts again (packets read are gone) */
		f->rd = f->len = 0;
	f->space = FX_OUT;
	if (f->c != NULL)
		broker_conn_writable(f->c, x->now);
}

void
fx_tick(struct fx *x, uint64_t advance_ms)
{
	x->now += advance_ms;
	broker_tick(x->b, x->now);
	broker_persist_settle(x->b); /* a compaction the tick started is done when it returns */
}

uint64_t
fx_count(struct fx *x, enum broker_counter c)
{
	return broker_counter_get(x->b, c);
}

static bool
fx_xq_post(void *xctx, uint32_t dst, struct broker_xmsg *m)
{
	struct fx_xq *q = xctx;

	if (q->n[dst] == q->cap)
		return false;
	q->m[dst][q->n[dst]++] = m;
	return true;
}

static const struct broker_xlcore_ops fx_xq_ops = { .post = fx_xq_post };

void
fx_xq_pair(struct fx_xq *q, struct fx *x[2], int cap, const struct broker_config *cfg)
{
	assert_true(cap > 0 && cap <= FX_RING_MAX);
	memset(q, 0, sizeof(*q));
	q->cap = cap;
	for (uint32_t i = 0; i < 2; i++) {
		x[i] = fx_new(cfg);
		broker_xlcore_attach(x[i]->b, i, 2, &fx_xq_ops, q);
	}
}

void
fx_xq_pump(struct fx_xq *q, struct fx *x[2])
{
	for (int d = 0; d < 2; d++) {
		for (int i = 0; i < q->n[d]; i++)
			broker_xlcore_input(x[d]->b, q->m[d][i], x[d]->now);
		q->n[d] = 0;
	}
	for (int d = 0; d < 2; d++) {
		broker_xlcore_retry(x[d]->b, x[d]->now);
		for (int i = 0; i < FX_CONNS; i++)
			if (x[d]->f[i].wake)
				fx_refeed(x[d], i);
	}
}

void
fx_xq_free(struct fx_xq *q, struct fx *x[2])
{
	for (int d = 0; d < 2; d++)
		for (int i = 0; i < q->n[d]; i++)
			broker_xmsg_free(q->m[d][i]);
	fx_free(x[0]);
	fx_free(x[1]);
}
