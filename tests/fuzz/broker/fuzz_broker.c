/*
 * fuzz_broker.c: libFuzzer harness of the broker core (dataplane/mqtt) as a whole: two
 * instances joined by small bounded queues (the dataplane's rings), clients on both driven by
 * a script of records: open, CONNECT (3.1.1 or 5.0, a few client ids so that takeovers and
 * resumes across instances happen), PUBLISH at each QoS, SUBSCRIBE, UNSUBSCRIBE, acks, PINGREQ,
 * DISCONNECT, raw bytes, abrupt closes, clock steps, ring pumps, send buffers that fill and
 * sends that fail on demand or at random. The fake transport checks the contract: the broker
 * never sends to or names a connection after closing it, the connection gauge matches the
 * connections open, and after teardown everything is freed (ASan/LSan).
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "mqtt_codec.h"

#define NINST 2
#define NCONN 6
#define QCAP  4
#define OUT   8192

struct fconn {
	struct broker_conn *c; /* NULL: not open */
	uint8_t version;
	size_t space;   /* send buffer room */
	size_t out_len; /* bytes sent into it (not kept: the fuzzer checks the contract only) */
	uint8_t fail_pct, fail_next;
	bool peer_closing; /* in broker_conn_closed: no ops->close may come for it */
	uint8_t in[4096];  /* bytes the broker left unconsumed */
	size_t in_len;
	bool wake;
};

static struct fconn conns[NINST][NCONN];
static struct broker *brokers[NINST];
static struct broker_xmsg *ring[NINST][QCAP];
static unsigned ring_n[NINST];
static uint64_t now;
static uint32_t rnd = 1;

static uint32_t
rand32(void)
{
	rnd ^= rnd << 13;
	rnd ^= rnd >> 17;
	rnd ^= rnd << 5;
	return rnd;
}

static int
op_send(void *ctx, const struct mqtt_iov *iov, size_t n)
{
	struct fconn *f = ctx;
	size_t total = 0;

	if (f->c == NULL)
		abort(); /* a send to a connection the broker closed */
	for (size_t i = 0; i < n; i++)
		total += iov[i].len;
	if (f->fail_next > 0) {
		f->fail_next--;
		return -ENOBUFS;
	}
	if (total > f->space || (f->fail_pct > 0 && rand32() % 100 < f->fail_pct))
		return -ENOBUFS;
	f->space -= total;
	f->out_len += total;
	return 0;
}

static size_t
op_space(void *ctx)
{
	struct fconn *f = ctx;

	if (f->c == NULL)
		abort();
	return f->space;
}

static void
op_close(void *ctx, uint8_t reason)
{
	struct fconn *f = ctx;

	(void)reason;
	if (f->c == NULL || f->peer_closing)
		abort(); /* closed twice, or after the transport said it was gone */
	f->c = NULL;
	f->in_len = 0;
	f->wake = false;
}

static void
op_input_ready(void *ctx)
{
	((struct fconn *)ctx)->wake = true;
}

static const struct broker_transport_ops ops = {
	.send = op_send,
	.send_space = op_space,
	.close = op_close,
	.input_ready = op_input_ready,
};

static bool
x_post(void *xctx, uint32_t dst, struct broker_xmsg *m)
{
	(void)xctx;
	if (dst >= NINST || ring_n[dst] == QCAP)
		return false;
	ring[dst][ring_n[dst]++] = m;
	return true;
}

static const struct broker_xlcore_ops xops = { .post = x_post };

struct cursor {
	const uint8_t *p;
	size_t n;
};

static uint8_t
u8(struct cursor *cu)
{
	uint8_t v = cu->n > 0 ? *cu->p : 0;

	if (cu->n > 0) {
		cu->p++;
		cu->n--;
	}
	return v;
}

static void
peer_close(struct fconn *f)
{
	f->peer_closing = true;
	broker_conn_closed(f->c, now);
	f->peer_closing = false;
	f->c = NULL;
	f->in_len = 0;
}

/* Pass bytes (after what was left unconsumed), as a transport does. */
static void
feed(struct fconn *f, const uint8_t *buf, size_t len)
{
	struct mqtt_iov seg[2] = { { f->in, f->in_len }, { buf, len } };
	size_t used = 0, total = f->in_len + len;

	if (f->c == NULL)
		return;
	if (broker_conn_input(
		f->c, f->in_len > 0 ? seg : seg + 1, f->in_len > 0 ? 2 : 1, &used, now) < 0) {
		if (f->c != NULL)
			abort(); /* closed by the broker, without ops->close */
		return;
	}
	if (total - used > sizeof(f->in)) { /* more than a transport keeps: it gives up */
		peer_close(f);
		f->in_len = 0;
		return;
	}
	uint8_t keep[sizeof(f->in)];
	size_t k = 0;

	for (size_t i = used; i < total; i++, k++)
		keep[k] = i < f->in_len ? f->in[i] : buf[i - f->in_len];
	memcpy(f->in, keep, k);
	f->in_len = k;
}

static void
send_pkt(struct fconn *f, const struct mqtt_packet *p)
{
	uint8_t buf[2048];
	int len;

	if (f->c == NULL)
		return;
	len = mqtt_encode(buf, sizeof(buf), f->version, p);
	if (len > 0 && (size_t)len <= sizeof(buf))
		feed(f, buf, (size_t)len);
}

static const char *const ids[] = { "a", "b", "c", "d" };
static const char *const topics[] = { "t", "t/1", "t/2", "u/x", "$SYS/x" };
static const char *const filters[] = { "t", "t/#", "+/1", "#", "$share/g/t/#", "u/+" };

static void
pump(unsigned d, unsigned max)
{
	unsigned n = ring_n[d] < max ? ring_n[d] : max;

	for (unsigned i = 0; i < n; i++)
		broker_xlcore_input(brokers[d], ring[d][i], now);
	memmove(ring[d], ring[d] + n, (ring_n[d] - n) * sizeof(ring[d][0]));
	ring_n[d] -= n;
}

static void
step(struct cursor *cu)
{
	uint8_t op = u8(cu), a = u8(cu);
	unsigned d = a & 1, i = (a >> 1) % NCONN;
	struct fconn *f = &conns[d][i];
	struct mqtt_packet p = { 0 };
	uint8_t payload[300];

	switch (op % 18) {
	case 0: /* open */
		if (f->c != NULL)
			break;
		memset(f, 0, sizeof(*f));
		f->version = (a & 0x80) ? MQTT_V5 : MQTT_V311;
		f->space = OUT;
		f->c = broker_conn_open(brokers[d], f, now);
		break;
	case 1: { /* CONNECT */
		uint8_t b = u8(cu);
		const char *id = ids[b % 4];

		p.type = MQTT_CONNECT;
		p.connect.version = f->version;
		p.connect.clean_start = (b & 4) != 0;
		p.connect.keepalive_s = (uint16_t)((b >> 3) & 3);
		p.connect.client_id = (struct mqtt_str){ id, 1 };
		if (f->version == MQTT_V5 && (b & 0x20))
			mqtt_props_set_u32(&p.connect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 60);
		if (f->version == MQTT_V5 && (b & 0x40))
			mqtt_props_set_u32(&p.connect.props, MQTT_PROP_RECEIVE_MAXIMUM, 2);
		if (b & 0x80) {
			p.connect.has_will = true;
			p.connect.will.topic = (struct mqtt_str){ "t/1", 3 };
			p.connect.will.payload = (struct mqtt_str){ "w", 1 };
			p.connect.will.qos = 1;
		}
		send_pkt(f, &p);
		break;
	}
	case 2:
	case 3: { /* PUBLISH */
		uint8_t b = u8(cu), len = u8(cu);

		memset(payload, 'p', sizeof(payload));
		p.type = MQTT_PUBLISH;
		p.publish.topic =
		    (struct mqtt_str){ topics[b % 5], (uint16_t)strlen(topics[b % 5]) };
		p.publish.qos = (uint8_t)((b >> 3) % 3);
		p.publish.retain = (b & 0x20) != 0;
		p.publish.packet_id = p.publish.qos ? (uint16_t)(1 + (u8(cu) & 7)) : 0;
		p.publish.payload = payload;
		p.publish.payload_len = (uint32_t)(b & 0x40 ? len : len % 8);
		send_pkt(f, &p);
		break;
	}
	case 4: { /* SUBSCRIBE */
		uint8_t b = u8(cu);
		struct mqtt_subscription s = { .filter = { filters[b % 6],
						   (uint16_t)strlen(filters[b % 6]) },
			.qos = (uint8_t)((b >> 3) % 3) };

		p.type = MQTT_SUBSCRIBE;
		p.subscribe.packet_id = 1;
		p.subscribe.subs = &s;
		p.subscribe.n_subs = 1;
		send_pkt(f, &p);
		break;
	}
	case 5: { /* UNSUBSCRIBE */
		uint8_t b = u8(cu);
		struct mqtt_str flt = { filters[b % 6], (uint16_t)strlen(filters[b % 6]) };

		p.type = MQTT_UNSUBSCRIBE;
		p.unsubscribe.packet_id = 2;
		p.unsubscribe.filters = &flt;
		p.unsubscribe.n_filters = 1;
		send_pkt(f, &p);
		break;
	}
	case 6: { /* PUBACK, PUBREC, PUBREL, PUBCOMP */
		uint8_t b = u8(cu);

		p.type = (enum mqtt_type)(MQTT_PUBACK + (b & 3));
		p.ack.packet_id = (uint16_t)(1 + ((b >> 2) & 31));
		send_pkt(f, &p);
		break;
	}
	case 7:
		p.type = MQTT_PINGREQ;
		send_pkt(f, &p);
		break;
	case 8:
		p.type = MQTT_DISCONNECT;
		p.disconnect.reason = u8(cu) & 1 ? 0x04 : 0;
		send_pkt(f, &p);
		break;
	case 9: /* abrupt close by the peer */
		if (f->c != NULL)
			peer_close(f);
		break;
	case 10: { /* raw bytes */
		uint8_t n = u8(cu), raw[256];

		for (unsigned k = 0; k < n; k++)
			raw[k] = u8(cu);
		feed(f, raw, n);
		break;
	}
	case 11: /* time goes by */
		now += (uint64_t)u8(cu) * 20;
		broker_tick(brokers[d], now);
		break;
	case 12:
		pump(d, 1 + (a >> 4));
		break;
	case 13: /* the send buffer fills or empties */
		if (f->c == NULL)
			break;
		f->space = (a & 0x80) ? OUT : u8(cu);
		broker_conn_writable(f->c, now);
		break;
	case 14: /* sends that fail */
		f->fail_pct = u8(cu) % 50;
		f->fail_next = u8(cu) & 3;
		break;
	case 15: /* the transport passes held input again */
		if (f->c != NULL && f->wake) {
			f->wake = false;
			feed(f, NULL, 0);
		}
		break;
	case 16:
		broker_xlcore_retry(brokers[d], now);
		break;
	default: /* the client reads: room comes back */
		if (f->c != NULL) {
			f->space = OUT;
			broker_conn_writable(f->c, now);
		}
		break;
	}
}

/* The connection gauge counts exactly the connections open. */
static void
check(void)
{
	for (unsigned d = 0; d < NINST; d++) {
		struct broker_gauges g;
		uint32_t open = 0;

		for (unsigned i = 0; i < NCONN; i++)
			open += conns[d][i].c != NULL;
		broker_gauges_get(brokers[d], &g);
		if (g.conns != open)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor cu = { data, size };
	struct broker_config cfg;

	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_queue = 3;
	cfg.max_inflight = 2;
	cfg.receive_max = 3;
	cfg.max_packet_size = 1024;
	cfg.stall_timeout_ms = 2000;
	cfg.queue_full = size > 0 ? data[0] % 3 : 0;
	now = 1000000;
	rnd = 1;
	memset(conns, 0, sizeof(conns));
	memset(ring_n, 0, sizeof(ring_n));
	for (unsigned d = 0; d < NINST; d++) {
		brokers[d] = broker_create(&cfg, &ops, now);
		if (brokers[d] == NULL)
			abort();
		broker_xlcore_attach(brokers[d], d, NINST, &xops, NULL);
	}
	while (cu.n > 0) {
		step(&cu);
		check();
	}
	for (unsigned d = 0; d < NINST; d++) { /* teardown: rings, then the instances */
		for (unsigned i = 0; i < ring_n[d]; i++)
			broker_xmsg_free(ring[d][i]);
		ring_n[d] = 0;
	}
	for (unsigned d = 0; d < NINST; d++)
		broker_destroy(brokers[d]);
	return 0;
}
