/*
 * test_mqtt_tcp.c: the broker on the dataplane's TCP (dataplane/svc/mqtt_tcp.c) driven by a
 * peer that crafts TCP segments (tests/unit/dataplane/net/tcp/tcp_harness.c stands in for IPv4
 * and the mbuf allocator): MQTT packets whole, cut across segments and several in one segment,
 * the broker's answers read back from the segments TCP sent; an error close that lingers
 * until the peer's FIN, a peer that resets, a send buffer too small for an answer, and the
 * worker's poll (keepalive through the broker's tick), PUBACKs that do not fit and a FIN that arrives
 * while the input is held, the connection limit, input after the service stopped. Every test
 * ends with every mbuf back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <rte_tcp.h>

#include "broker.h"
#include "svc.h"
#include "tcp_harness.h"

#define ACK     RTE_TCP_ACK_FLAG
#define PSH_ACK (RTE_TCP_PSH_FLAG | RTE_TCP_ACK_FLAG)
#define FIN_ACK (RTE_TCP_FIN_FLAG | RTE_TCP_ACK_FLAG)
#define RST     RTE_TCP_RST_FLAG

/* What the broker sent the peer, in order (payload bytes of our segments). */
static uint8_t rx[64 * 1024];
static size_t rxlen;
static bool got_fin, got_rst;

/* Take what TCP sent to p since the last call: payloads in sequence, FIN and RST noted; the
 * peer's next segment acknowledges all of it. Segments to other peers stay captured. */
static void
take(struct h_peer *p)
{
	unsigned keep = 0;

	h_flush();
	for (unsigned i = 0; i < h_ncap; i++) {
		const struct h_out *o = &h_cap[i];

		if (o->dport != p->port) {
			h_cap[keep++] = *o;
			continue;
		}
		if (o->flags & RTE_TCP_RST_FLAG)
			got_rst = true;
		if (o->len > 0 && o->seq == p->rcv_nxt) {
			assert_true(rxlen + o->len <= sizeof(rx));
			memcpy(rx + rxlen, o->data, o->len);
			rxlen += o->len;
			p->rcv_nxt += o->len;
		}
		if ((o->flags & RTE_TCP_FIN_FLAG) && o->seq + o->len == p->rcv_nxt) {
			got_fin = true;
			p->rcv_nxt++;
		}
	}
	h_ncap = keep;
}

/* The peer sends data (acking what it has read) and reads the answer. */
static void
say(struct h_peer *p, const void *data, uint32_t len)
{
	h_send(p, PSH_ACK, data, len);
	take(p);
}

/* The answer so far equals want; then forgotten. */
static void
expect(const uint8_t *want, size_t len)
{
	assert_int_equal(rxlen, len);
	assert_memory_equal(rx, want, len);
	rxlen = 0;
}

static void
establish(struct h_peer *p, uint16_t port)
{
	uint8_t mss[4] = { 2, 4, 0x05, 0xb4 };
	struct h_seg s = {
		.flags = RTE_TCP_SYN_FLAG, .win = 65535, .opts = mss, .optlen = 4, .sport = port
	};

	memset(p, 0, sizeof(*p));
	p->port = port;
	p->isn = 1000u * port;
	s.seq = p->isn;
	h_clear();
	h_input(&s);
	assert_int_equal(h_ncap, 1);
	assert_int_equal(h_cap[0].flags, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
	p->iss = h_cap[0].seq;
	p->snd_nxt = p->isn + 1;
	p->rcv_nxt = p->iss + 1;
	h_clear();
	h_send(p, ACK, NULL, 0);
	rxlen = 0;
	got_fin = got_rst = false;
}

/* CONNECT 3.1.1, clean session, keepalive ka seconds, client id "c" + id */
static void
connect_311(struct h_peer *p, char id, uint8_t ka)
{
	const uint8_t connect[] = { 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, ka, 0, 1,
		(uint8_t)id };
	const uint8_t connack[] = { 0x20, 2, 0, 0 };

	say(p, connect, sizeof(connect));
	expect(connack, sizeof(connack));
}

/* Small limits, so that a slow subscriber fills its send buffer and queue quickly. */
static struct broker_config bcfg;
static struct dp_service_conf sc = { .enabled = true, .port = H_PORT, .opts = &bcfg };

/* One broker for the whole run (as on a worker); each test its own connections. */
static int
setup(void **state)
{
	struct tcp_config cfg;

	(void)state;
	tcp_config_defaults(&cfg);
	cfg.sndbuf_bytes = 4096;
	broker_config_defaults(&bcfg);
	bcfg.max_inflight = 2;
	bcfg.max_queue = 4;
	bcfg.max_conns = 16;
	h_setup(&cfg);
	/* the harness listens with its own test app: the broker takes the port instead */
	tcp_lcore_fini(&h_lc);
	assert_int_equal(tcp_lcore_init(&h_lc, &cfg), 0);
	assert_int_equal(dp_service_mqtt.init(&sc, 1), 0);
	assert_int_equal(dp_service_mqtt.listen(&h_lc, &sc), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dp_service_mqtt.fini(&h_lc);
	h_teardown();
	return 0;
}

/* A session in whole packets: subscribe, publish to itself at QoS 1 (PUBACK, then the message
 * with the broker's packet id), ping, disconnect (the broker closes: FIN). */
static void
test_session(void **state)
{
	const uint8_t sub[] = { 0x82, 8, 0, 1, 0, 3, 'a', '/', 'b', 1 };
	const uint8_t suback[] = { 0x90, 3, 0, 1, 1 };
	const uint8_t pub[] = { 0x32, 9, 0, 3, 'a', '/', 'b', 0, 7, 'h', 'i' };
	const uint8_t ping[] = { 0xc0, 0 }, pong[] = { 0xd0, 0 };
	const uint8_t disc[] = { 0xe0, 0 };
	struct h_peer p;

	(void)state;
	establish(&p, 40001);
	connect_311(&p, '1', 60);
	say(&p, sub, sizeof(sub));
	expect(suback, sizeof(suback));
	say(&p, pub, sizeof(pub));
	/* PUBACK for id 7 and the message back at QoS 1, in either order */
	assert_int_equal(rxlen, 4 + 11);
	{
		const uint8_t puback[] = { 0x40, 2, 0, 7 };
		const uint8_t *m = memcmp(rx, puback, 4) == 0 ? rx + 4 : rx;

		assert_true(memcmp(rx, puback, 4) == 0 || memcmp(rx + 11, puback, 4) == 0);
		assert_int_equal(m[0], 0x32);
		assert_memory_equal(m + 2, "\0\3a/b", 5);
		assert_memory_equal(m + 9, "hi", 2);
	}
	rxlen = 0;
	say(&p, ping, sizeof(ping));
	expect(pong, sizeof(pong));
	say(&p, disc, sizeof(disc));
	assert_true(got_fin);
	h_send(&p, FIN_ACK, NULL, 0);
	take(&p);
}

/* Packets cut anywhere across segments, and several in one segment: the unused tail of a
 * segment waits for the rest, whole packets in one segment are all answered. */
static void
test_segments_cut_and_joined(void **state)
{
	const uint8_t connect[] = { 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'x' };
	const uint8_t connack[] = { 0x20, 2, 0, 0 };
	const uint8_t three_pings[] = { 0xc0, 0, 0xc0, 0, 0xc0 };
	const uint8_t pongs[] = { 0xd0, 0, 0xd0, 0, 0xd0, 0 };
	struct h_peer p;

	(void)state;
	establish(&p, 40002);
	/* one byte, then the rest of the fixed header and part of the body, then the end */
	say(&p, connect, 1);
	assert_int_equal(rxlen, 0);
	say(&p, connect + 1, 6);
	assert_int_equal(rxlen, 0);
	say(&p, connect + 7, sizeof(connect) - 7);
	expect(connack, sizeof(connack));
	/* two and a half PINGREQs, then the last byte */
	say(&p, three_pings, sizeof(three_pings));
	expect(pongs, 4);
	say(&p, (const uint8_t[]){ 0 }, 1);
	expect(pongs, 2);
	h_send(&p, FIN_ACK, NULL, 0); /* the peer's FIN: the broker ends the session, FIN back */
	take(&p);
	assert_true(got_fin);
	h_send(&p, ACK, NULL, 0);
	take(&p);
}

/* A protocol error: the broker closes but reads on until the peer's FIN (a close with unread
 * data would reset before the peer read the end), dropping what comes meanwhile. */
static void
test_error_close_lingers(void **state)
{
	const uint8_t bad[] = { 0x30, 2, 0, 0 }; /* PUBLISH with an empty topic name */
	const uint8_t more[] = { 0xc0, 0, 0xc0, 0 };
	uint64_t closes = H_CNT(RST_SENT);
	struct h_peer p;

	(void)state;
	establish(&p, 40003);
	connect_311(&p, '3', 60);
	say(&p, bad, sizeof(bad));
	assert_true(got_fin);
	assert_int_equal(rxlen, 0); /* 3.1.1 has no DISCONNECT from the server */
	say(&p, more, sizeof(more));
	assert_int_equal(rxlen, 0); /* dropped, no answer, no reset */
	assert_false(got_rst);
	h_send(&p, FIN_ACK, NULL, 0);
	take(&p);
	assert_false(got_rst);
	assert_int_equal(H_CNT(RST_SENT), closes);
}

/* The peer resets mid-session: the broker's connection goes, and a new one with the same client
 * id starts clean. */
static void
test_peer_reset(void **state)
{
	struct h_peer p;

	(void)state;
	establish(&p, 40004);
	connect_311(&p, '4', 60);
	h_send(&p, RST, NULL, 0);
	take(&p);
	establish(&p, 40005);
	connect_311(&p, '4', 60);
	h_send(&p, FIN_ACK, NULL, 0);
	take(&p);
	assert_true(got_fin);
	h_send(&p, ACK, NULL, 0);
	take(&p);
}

/* The keepalive runs on the worker's poll (the broker's tick): one and a half keepalives of
 * silence and the broker closes the connection. */
static void
test_keepalive_through_poll(void **state)
{
	struct h_peer p;

	(void)state;
	establish(&p, 40006);
	connect_311(&p, '6', 1);
	for (int i = 0; i < 40 && !got_fin; i++) {
		h_advance_ms(50);
		dp_service_mqtt.poll(&h_lc);
		take(&p);
	}
	assert_true(got_fin);
	h_send(&p, FIN_ACK, NULL, 0);
	take(&p);
}

/* Consume whole packets of type `type` at the front of rx (others skipped): how many, and the
 * packet id and first payload byte of each PUBLISH (QoS 1, topic "t"). */
static unsigned
packets(uint8_t type, uint16_t *ids, uint8_t *marks, unsigned max)
{
	size_t off = 0;
	unsigned n = 0;

	while (off + 2 <= rxlen) {
		size_t len = 0, hdr = 1;
		unsigned shift = 0;

		do {
			if (off + hdr >= rxlen)
				goto out;
			len |= (size_t)(rx[off + hdr] & 0x7f) << shift;
			shift += 7;
		} while (rx[off + hdr++] & 0x80);
		if (off + hdr + len > rxlen)
			break;
		if ((rx[off] >> 4) == type && n < max) {
			const uint8_t *v = rx + off + hdr;

			if (type == 3) { /* topic length 1 ("t"), then the id, then the payload */
				ids[n] = (uint16_t)(v[3] << 8 | v[4]);
				marks[n] = v[5];
			} else {
				ids[n] = (uint16_t)(v[0] << 8 | v[1]);
			}
			n++;
		}
		off += hdr + len;
	}
out:
	memmove(rx, rx + off, rxlen - off);
	rxlen -= off;
	return n;
}

/* The flood tests: a subscriber b on "t" at QoS 1 and a publisher a, both connected. */
static void
flood_pair(struct h_peer *b, uint16_t bport, char bid, struct h_peer *a, uint16_t aport, char aid)
{
	const uint8_t sub[] = { 0x82, 6, 0, 1, 0, 1, 't', 1 };
	const uint8_t suback[] = { 0x90, 3, 0, 1, 1 };

	establish(b, bport);
	connect_311(b, bid, 60);
	say(b, sub, sizeof(sub));
	expect(suback, sizeof(suback));
	establish(a, aport);
	connect_311(a, aid, 60);
}

#define FLOOD_SZ 1000

/* The flood's PUBLISH number i (QoS 1, topic "t", packet id i + 1), FLOOD_SZ bytes of mark,
 * into pub (4 + 3 + 2 + FLOOD_SZ bytes); its length. */
static uint32_t
flood_publish(uint8_t *pub, unsigned i, uint8_t mark)
{
	size_t rl = 3 + 2 + FLOOD_SZ;

	pub[0] = 0x32;
	pub[1] = (uint8_t)(0x80 | (rl & 0x7f));
	pub[2] = (uint8_t)(rl >> 7);
	memcpy(pub + 3, "\0\1t", 3);
	pub[6] = 0;
	pub[7] = (uint8_t)(i + 1);
	memset(pub + 8, mark, FLOOD_SZ);
	return 3 + (uint32_t)rl;
}

/* The subscriber b reads what came and acknowledges each PUBLISH, its mark into got[*ngot++]
 * (max in all), then ACKs what it read. */
static void
flood_receive(struct h_peer *b, uint8_t *got, unsigned *ngot, unsigned max)
{
	uint16_t ids[64];
	uint8_t marks[64];
	unsigned k;

	take(b);
	k = packets(3, ids, marks, 64);
	for (unsigned j = 0; j < k; j++) {
		const uint8_t puback[] = { 0x40, 2, (uint8_t)(ids[j] >> 8), (uint8_t)ids[j] };

		assert_true(*ngot < max);
		got[(*ngot)++] = marks[j];
		h_send(b, PSH_ACK, puback, sizeof(puback));
	}
	h_send(b, ACK, NULL, 0);
}

/*
 * A subscriber that reads slowly: its send buffer fills (the broker's send fails for want of
 * space and the message waits), its queue reaches max_queue and the publisher is held (its
 * input left unread, no PUBACK), then the subscriber reads and acknowledges: the queue drains
 * (writable), the publisher's held input is read again (input_ready, the worker's poll), and
 * every message arrives once, in order, every PUBLISH acknowledged.
 */
static void
test_slow_subscriber(void **state)
{
	enum {
		N = 12
	};
	static uint8_t pub[4 + 3 + 2 + FLOOD_SZ];
	uint16_t acked[N];
	uint8_t marks[64], got[N];
	unsigned nacked = 0, ngot = 0;
	struct h_peer a, b;

	(void)state;
	flood_pair(&b, 40010, 'b', &a, 40011, 'a');
	for (unsigned i = 0; i < N; i++) {
		say(&a, pub, flood_publish(pub, i, (uint8_t)('A' + i)));
		nacked += packets(4, acked + nacked, marks, N - nacked);
	}
	/* held: not every PUBLISH was acknowledged while the subscriber did not read */
	assert_true(nacked < N);
	rxlen = 0;
	for (int round = 0; round < 200 && (ngot < N || nacked < N); round++) {
		flood_receive(&b, got, &ngot, N);
		dp_service_mqtt.poll(&h_lc);
		take(&a);
		nacked += packets(4, acked + nacked, marks, N - nacked);
		h_send(&a, ACK, NULL, 0);
		rxlen = 0;
	}
	assert_int_equal(ngot, N);
	assert_int_equal(nacked, N);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(got[i], 'A' + (int)i);
		assert_int_equal(acked[i], i + 1);
	}
	h_send(&a, FIN_ACK, NULL, 0);
	h_send(&b, FIN_ACK, NULL, 0);
	take(&a);
	take(&b);
	h_send(&a, ACK, NULL, 0);
	h_send(&b, ACK, NULL, 0);
	h_clear();
}

/* After an error close the broker reads and drops until the peer's FIN, but not forever: past
 * 1 MiB dropped it resets the connection. */
static void
test_linger_has_a_limit(void **state)
{
	const uint8_t bad[] = { 0x30, 2, 0, 0 };
	static uint8_t junk[1400];
	uint64_t rst = H_CNT(RST_SENT);
	struct h_peer p;

	(void)state;
	establish(&p, 40012);
	connect_311(&p, 'l', 60);
	say(&p, bad, sizeof(bad));
	assert_true(got_fin);
	for (int i = 0; i < 2000 && !got_rst; i++)
		say(&p, junk, sizeof(junk));
	assert_true(got_rst);
	assert_int_equal(H_CNT(RST_SENT), rst + 1);
	h_clear();
}

/* A QoS 1 PUBLISH to topic "t" with packet id id and a 1-byte payload, at buf; its length. */
static size_t
pub_qos1(uint8_t *buf, uint16_t id)
{
	const uint8_t pub[] = { 0x32, 6, 0, 1, 't', (uint8_t)(id >> 8), (uint8_t)id, 'x' };

	memcpy(buf, pub, sizeof(pub));
	return sizeof(pub);
}

/*
 * A publisher that does not read its PUBACKs: they fill its send buffer (4 KiB, never acked by
 * the peer), the broker stops reading its input (no answer would fit) instead of losing one or
 * writing half of one; once the peer acknowledges what it was sent, the held input is read again
 * (writable, input_ready, the worker's poll) and every PUBLISH is acknowledged once, in order.
 */
static void
test_unread_acks_hold_the_input(void **state)
{
	enum {
		N = 1400
	};
	static uint8_t seg[1400];
	uint16_t ids[N];
	uint8_t marks[N];
	unsigned sent = 0, acked = 0;
	struct h_peer p;

	(void)state;
	establish(&p, 40020);
	connect_311(&p, 'u', 60);
	/* 8-byte PUBLISHes, 175 to a segment; the peer's ACKs leave rcv_nxt where it was */
	while (sent < N) {
		size_t len = 0;

		while (len + 8 <= sizeof(seg) && sent < N)
			len += pub_qos1(seg + len, (uint16_t)(++sent));
		h_send(&p, PSH_ACK, seg, (uint32_t)len);
	}
	h_flush();
	for (int round = 0; round < 100 && acked < N; round++) {
		take(&p);
		acked += packets(4, ids + acked, marks, N - acked);
		h_send(&p, ACK, NULL, 0);
		dp_service_mqtt.poll(&h_lc);
		if (round == 0)
			assert_true(acked < N); /* held: 1400 PUBACKs do not fit 4 KiB */
	}
	assert_int_equal(acked, N);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(ids[i], i + 1);
	h_send(&p, FIN_ACK, NULL, 0);
	take(&p);
	assert_true(got_fin);
	h_send(&p, ACK, NULL, 0);
	h_clear();
}

/*
 * A publisher held by a slow subscriber sends its FIN: the FIN waits until the broker has read
 * what came before it (held), then the connection ends; every message sent before the FIN
 * reaches the subscriber.
 */
static void
test_fin_waits_for_held_input(void **state)
{
	enum {
		N = 12
	};
	static uint8_t pub[4 + 3 + 2 + FLOOD_SZ];
	uint8_t got[N];
	unsigned ngot = 0;
	struct h_peer a, b;

	(void)state;
	flood_pair(&b, 40021, 'B', &a, 40022, 'A');
	for (unsigned i = 0; i < N; i++)
		h_send(&a, PSH_ACK, pub, flood_publish(pub, i, (uint8_t)('a' + i)));
	h_send(&a, FIN_ACK, NULL, 0); /* while its input is held */
	take(&a);
	assert_false(got_fin); /* not yet: what came before the FIN is not read */
	rxlen = 0;
	for (int round = 0; round < 200 && (ngot < N || !got_fin); round++) {
		flood_receive(&b, got, &ngot, N);
		dp_service_mqtt.poll(&h_lc);
		take(&a);
		h_send(&a, ACK, NULL, 0);
	}
	assert_int_equal(ngot, N);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(got[i], 'a' + (int)i);
	assert_true(got_fin); /* the publisher's connection ended after its input */
	h_send(&b, FIN_ACK, NULL, 0);
	take(&b);
	h_send(&b, ACK, NULL, 0);
	h_clear();
}

/* The broker's connection limit (max_conns, here 16): one more is refused with a reset. */
static void
test_connection_limit(void **state)
{
	struct h_peer p[17];
	uint64_t refused = H_CNT(ACCEPT_REFUSED);

	(void)state;
	for (unsigned i = 0; i < 16; i++)
		establish(&p[i], (uint16_t)(40100 + i));
	assert_int_equal(H_CNT(ACCEPT_REFUSED), refused);
	establish(&p[16], 40116);
	take(&p[16]);
	assert_true(got_rst);
	assert_int_equal(H_CNT(ACCEPT_REFUSED), refused + 1);
	for (unsigned i = 0; i < 16; i++) {
		h_send(&p[i], RST, NULL, 0);
		take(&p[i]);
	}
	h_clear();
}

/* Last: the service stops (a worker's exit) while connections are open: what they send then is
 * dropped, and tcp_lcore_fini's aborts find no broker to tell. */
static void
test_input_after_stop(void **state)
{
	const uint8_t ping[] = { 0xc0, 0 };
	struct h_peer p;

	(void)state;
	establish(&p, 40030);
	connect_311(&p, 's', 60);
	dp_service_mqtt.fini(&h_lc);
	say(&p, ping, sizeof(ping));
	assert_int_equal(rxlen, 0);  /* no PINGRESP: the broker is gone */
	dp_service_mqtt.poll(&h_lc); /* nothing to do */
	h_clear();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_segments_cut_and_joined),
		cmocka_unit_test(test_error_close_lingers),
		cmocka_unit_test(test_peer_reset),
		cmocka_unit_test(test_keepalive_through_poll),
		cmocka_unit_test(test_slow_subscriber),
		cmocka_unit_test(test_linger_has_a_limit),
		cmocka_unit_test(test_unread_acks_hold_the_input),
		cmocka_unit_test(test_fin_waits_for_held_input),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_input_after_stop),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
