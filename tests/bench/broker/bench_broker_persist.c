/*
 * bench_broker_persist: the cost of the broker's state across restarts (persist.c) on its fast
 * path, one thread, no network: a publisher sends QoS 1 PUBLISHes (64-byte payload) through the
 * broker core to one subscriber that PUBACKs each, with no state directory, with one and a clean
 * session subscriber (nothing to journal), and with one and a persistent subscriber (each
 * message journaled when sent and when acknowledged, one write() per broker call that changed
 * something). Packets come BURST to an input call, as a dataplane rx burst hands them over.
 * Then the same with two instances (two lcores' brokers, still one thread): the publisher on
 * one, the subscriber on the other, the messages crossing through a ring of RING entries
 * taken a burst at a time as a worker loop does (the publishing instance's outbox, the
 * receiving one's journal). Prints msgs/s and journal syncs; never fails on time.
 *   ninja -C build tests/bench/broker/bench_broker_persist
 *   build/tests/bench/broker/bench_broker_persist [DIR] [MESSAGES] [ONLY: 1..6, one line]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "mqtt_codec.h"

#define BURST 32 /* packets per input call, as a dataplane rx burst hands them over */

struct bconn {
	struct broker_conn *c;
	uint16_t pids[BURST]; /* of the PUBLISHes sent to it in this burst */
	unsigned n_pids;
};

static int
b_send(void *ctx, const struct mqtt_iov *iov, size_t n)
{
	struct bconn *k = ctx;
	const uint8_t *h = iov[0].base;
	size_t at = 1;

	(void)n;
	if ((h[0] >> 4) != MQTT_PUBLISH || ((h[0] >> 1) & 3) == 0)
		return 0;
	while (h[at] & 0x80) /* remaining length */
		at++;
	at++;
	at += 2 + ((size_t)h[at] << 8 | h[at + 1]); /* topic */
	if (k->n_pids < BURST)
		k->pids[k->n_pids++] = (uint16_t)(h[at] << 8 | h[at + 1]);
	return 0;
}

static size_t
b_space(void *ctx)
{
	(void)ctx;
	return 1 << 20;
}

static void
b_close(void *ctx, uint8_t reason)
{
	(void)ctx;
	(void)reason;
}

static const struct broker_transport_ops ops = { b_send, b_space, b_close, NULL };

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What one configuration measured: msgs/s by the wall clock and by this process's CPU
 * time (steadier on a shared box: time the thread waited for a core is not in it; what the
 * journal's write() and fdatasync() cost in the kernel is), and the journal's syncs and
 * compactions, and the longest tick (the lcore's stall: a compaction's serialization, and its
 * syncs when they ran on the lcore). */
struct result {
	double wall, cpu;
	uint64_t syncs, compactions;
	double tick_max_ms;
};

static double now_s(void);

/* A tick, timed into r->tick_max_ms. */
static void
tick_timed(struct broker *b, struct result *r, uint64_t now)
{
	double t = now_s(), d;

	broker_tick(b, now);
	d = (now_s() - t) * 1e3;
	if (d > r->tick_max_ms)
		r->tick_max_ms = d;
}

static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
feed_raw(struct broker_conn *c, const uint8_t *buf, size_t len)
{
	struct mqtt_iov seg = { buf, len };
	size_t used;

	if (broker_conn_input(c, &seg, 1, &used, now_ms()) != 0 || used != len) {
		fprintf(stderr, "bench: input refused\n");
		exit(1);
	}
}

static void
feed(struct broker_conn *c, const struct mqtt_packet *p)
{
	uint8_t buf[512];
	int len = mqtt_encode(buf, sizeof(buf), MQTT_V311, p);

	if (len <= 0)
		exit(1);
	feed_raw(c, buf, (size_t)len);
}

static void
connect_as(struct broker_conn *c, const char *id, bool clean)
{
	struct mqtt_packet p = { .type = MQTT_CONNECT };

	p.connect.version = MQTT_V311;
	p.connect.client_id = (struct mqtt_str){ id, (uint16_t)strlen(id) };
	p.connect.clean_start = clean;
	p.connect.keepalive_s = 0;
	feed(c, &p);
}

/* msgs/s for one configuration */
static struct result
run(const char *dir, bool persistent_sub, unsigned n)
{
	struct broker_config cfg;
	struct broker *b;
	struct bconn pub = { 0 }, sub = { 0 };
	struct mqtt_subscription s = { .filter = { "plant/#", 7 }, .qos = 1 };
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE }, a = { .type = MQTT_PUBACK };
	static const char payload[64] = "21.5 degC ............................................";
	double t0, c0;
	struct result r = { 0 };

	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	b = broker_create(&cfg, &ops, now_ms());
	if (dir != NULL && broker_persist_open(b, dir, 0, 0, now_ms()) != 0) {
		fprintf(stderr, "bench: cannot open %s\n", dir);
		exit(1);
	}
	pub.c = broker_conn_open(b, &pub, now_ms());
	sub.c = broker_conn_open(b, &sub, now_ms());
	connect_as(pub.c, "pub", true);
	connect_as(sub.c, persistent_sub ? "sub-persistent" : "sub-clean", !persistent_sub);
	p.subscribe.packet_id = 1;
	p.subscribe.subs = &s;
	p.subscribe.n_subs = 1;
	feed(sub.c, &p);
	p = (struct mqtt_packet){ .type = MQTT_PUBLISH };
	p.publish.topic = (struct mqtt_str){ "plant/line1/temp", 16 };
	p.publish.payload = (const uint8_t *)payload;
	p.publish.payload_len = sizeof(payload);
	p.publish.qos = 1;
	t0 = now_s();
	c0 = cpu_s();
	for (unsigned i = 0; i < n; i += BURST) {
		uint8_t in[BURST * 128], acks[BURST * 8];
		size_t len = 0, alen = 0;

		for (unsigned k = 0; k < BURST; k++) {
			p.publish.packet_id = (uint16_t)((i + k) % 65535 + 1);
			len += (size_t)mqtt_encode(in + len, sizeof(in) - len, MQTT_V311, &p);
		}
		sub.n_pids = 0;
		feed_raw(pub.c, in, len);
		for (unsigned k = 0; k < sub.n_pids; k++) {
			a.ack.packet_id = sub.pids[k];
			alen +=
			    (size_t)mqtt_encode(acks + alen, sizeof(acks) - alen, MQTT_V311, &a);
		}
		feed_raw(sub.c, acks, alen);
		if (i % 1024 == 0)
			tick_timed(b, &r, now_ms());
	}
	r.wall = n / (now_s() - t0);
	r.cpu = n / (cpu_s() - c0);
	r.syncs = broker_counter_get(b, BROKER_C_PERSIST_SYNC);
	r.compactions = broker_counter_get(b, BROKER_C_PERSIST_COMPACTED);
	if (broker_counter_get(b, BROKER_C_ACK_UNKNOWN) != 0)
		fprintf(stderr, "bench: acks went astray\n");
	broker_destroy(b);
	return r;
}

/* Two instances: rings of RING entries, each taken whole by its instance (a worker loop). */
#define RING 1024

struct ring {
	struct broker_xmsg *m[RING];
	unsigned n;
};

static struct ring rings[2];

static bool
ring_post(void *xctx, uint32_t dst, struct broker_xmsg *m)
{
	(void)xctx;
	if (rings[dst].n == RING)
		return false;
	rings[dst].m[rings[dst].n++] = m;
	return true;
}

static const struct broker_xlcore_ops xops = { ring_post };

static void
ring_take(struct broker *b[2])
{
	for (int d = 0; d < 2; d++) {
		unsigned n = rings[d].n;

		rings[d].n = 0;
		for (unsigned i = 0; i < n; i++)
			broker_xlcore_input(b[d], rings[d].m[i], now_ms());
		broker_xlcore_retry(b[d], now_ms());
	}
}

/* msgs/s with the publisher on instance 0 and the subscriber on instance 1 */
static struct result
run2(const char *dir, bool persistent_sub, unsigned n)
{
	struct broker_config cfg;
	struct broker *b[2];
	struct bconn pub = { 0 }, sub = { 0 };
	struct mqtt_subscription s = { .filter = { "plant/#", 7 }, .qos = 1 };
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE }, a = { .type = MQTT_PUBACK };
	static const char payload[64] = "21.5 degC ............................................";
	double t0, c0;
	struct result r = { 0 };

	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	memset(rings, 0, sizeof(rings));
	for (uint32_t i = 0; i < 2; i++) {
		b[i] = broker_create(&cfg, &ops, now_ms());
		broker_xlcore_attach(b[i], i, 2, &xops, NULL);
	}
	for (uint32_t i = 0; i < 2 && dir != NULL; i++)
		if (broker_persist_open(b[i], dir, i, 0, now_ms()) != 0) {
			fprintf(stderr, "bench: cannot open %s\n", dir);
			exit(1);
		}
	pub.c = broker_conn_open(b[0], &pub, now_ms());
	sub.c = broker_conn_open(b[1], &sub, now_ms());
	connect_as(pub.c, "pub", true);
	connect_as(sub.c, persistent_sub ? "sub-persistent" : "sub-clean", !persistent_sub);
	for (int i = 0; i < 4; i++)
		ring_take(b); /* the claims and their answers */
	p.subscribe.packet_id = 1;
	p.subscribe.subs = &s;
	p.subscribe.n_subs = 1;
	feed(sub.c, &p);
	for (int i = 0; i < 4; i++)
		ring_take(b); /* the interest summary */
	p = (struct mqtt_packet){ .type = MQTT_PUBLISH };
	p.publish.topic = (struct mqtt_str){ "plant/line1/temp", 16 };
	p.publish.payload = (const uint8_t *)payload;
	p.publish.payload_len = sizeof(payload);
	p.publish.qos = 1;
	t0 = now_s();
	c0 = cpu_s();
	for (unsigned i = 0; i < n; i += BURST) {
		uint8_t in[BURST * 128], acks[BURST * 8];
		size_t len = 0, alen = 0;

		for (unsigned k = 0; k < BURST; k++) {
			p.publish.packet_id = (uint16_t)((i + k) % 65535 + 1);
			len += (size_t)mqtt_encode(in + len, sizeof(in) - len, MQTT_V311, &p);
		}
		sub.n_pids = 0;
		feed_raw(pub.c, in, len);
		ring_take(b);
		for (unsigned k = 0; k < sub.n_pids; k++) {
			a.ack.packet_id = sub.pids[k];
			alen +=
			    (size_t)mqtt_encode(acks + alen, sizeof(acks) - alen, MQTT_V311, &a);
		}
		feed_raw(sub.c, acks, alen);
		if (i % 1024 == 0) {
			tick_timed(b[0], &r, now_ms());
			tick_timed(b[1], &r, now_ms());
		}
	}
	r.wall = n / (now_s() - t0);
	r.cpu = n / (cpu_s() - c0);
	r.syncs = broker_counter_get(b[0], BROKER_C_PERSIST_SYNC) +
	    broker_counter_get(b[1], BROKER_C_PERSIST_SYNC);
	r.compactions = broker_counter_get(b[0], BROKER_C_PERSIST_COMPACTED) +
	    broker_counter_get(b[1], BROKER_C_PERSIST_COMPACTED);
	if (broker_counter_get(b[1], BROKER_C_ACK_UNKNOWN) != 0 ||
	    broker_counter_get(b[1], BROKER_C_XLCORE_RX) < n)
		fprintf(stderr, "bench: messages or acks went astray\n");
	for (int d = 0; d < 2; d++)
		for (unsigned i = 0; i < rings[d].n; i++)
			broker_xmsg_free(rings[d].m[i]);
	broker_destroy(b[0]);
	broker_destroy(b[1]);
	return r;
}

static void
print(const char *what, struct result r)
{
	printf("%-40s %9.0f msgs/s  %9.0f msgs/cpu-s  fdatasyncs %llu  compactions %llu  "
	       "longest tick %.2f ms\n",
	    what, r.wall, r.cpu, (unsigned long long)r.syncs, (unsigned long long)r.compactions,
	    r.tick_max_ms);
}

int
main(int argc, char **argv)
{
	char tmpl[] = "/tmp/egw-bench-bstate-XXXXXX";
	const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
	unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 300000;
	unsigned only = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 0; /* 1..6: that one */
	char two[512];

	if (dir == NULL)
		return 1;
	printf("QoS 1, 64 B payload, one publisher, one subscriber PUBACKing, bursts of %u, %u "
	       "messages, %s\n",
	    BURST, n, dir);
	snprintf(two, sizeof(two), "%s/two-lcores", dir); /* its own files 0 and 1 */
	if (only == 0 || only == 1)
		print("no state directory", run(NULL, true, n));
	if (only == 0 || only == 2)
		print("state directory, clean session subscriber", run(dir, false, n));
	if (only == 0 || only == 3)
		print("state directory, persistent subscriber", run(dir, true, n));
	if (only == 0 || only == 4)
		print("two lcores, no state directory", run2(NULL, true, n));
	if (only == 0 || only == 5)
		print("two lcores, state dir, clean subscriber", run2(two, false, n));
	if (only == 0 || only == 6)
		print("two lcores, state dir, persistent sub", run2(two, true, n));
	return 0;
}
