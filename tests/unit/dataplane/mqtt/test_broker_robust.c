/*
 * Robustness of the broker core against hostile input: valid packets mutated at random
 * (seeded, so a failure replays), and random bytes, fed in random segment splits. Nothing may
 * crash or leak (run under ASan), every connection that sent garbage is closed or still
 * consistent, and a bystander pair of sessions keeps exchanging messages throughout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

#define ROUNDS 3000

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

/* A valid CONNECT (5.0 or 3.1.1) followed by a few valid packets, as one byte string. */
static size_t
script(uint8_t *buf, size_t cap, uint8_t version)
{
	struct mqtt_subscription sub = { .filter = MQTT_STR("f/+/#"), .qos = 2 };
	struct mqtt_str unsub = MQTT_STR("f/+/#");
	struct mqtt_packet p[6];
	size_t len = 0;

	memset(p, 0, sizeof(p));
	p[0].type = MQTT_CONNECT;
	p[0].connect = (struct mqtt_connect){ .version = version,
		.clean_start = true,
		.keepalive_s = 30,
		.client_id = MQTT_STR("fz"),
		.has_will = true };
	p[0].connect.will.topic = MQTT_STR("w");
	p[0].connect.will.payload = MQTT_STR("x");
	p[1].type = MQTT_SUBSCRIBE;
	p[1].subscribe = (struct mqtt_subscribe){ .packet_id = 1, .subs = &sub, .n_subs = 1 };
	p[2].type = MQTT_PUBLISH;
	p[2].publish = (struct mqtt_publish){ .topic = MQTT_STR("f/a/b"),
		.qos = 2,
		.packet_id = 7,
		.retain = true,
		.payload = (const uint8_t *)"data",
		.payload_len = 4 };
	p[3].type = MQTT_PUBREL;
	p[3].ack.packet_id = 7;
	p[4].type = MQTT_UNSUBSCRIBE;
	p[4].unsubscribe =
	    (struct mqtt_unsubscribe){ .packet_id = 2, .filters = &unsub, .n_filters = 1 };
	p[5].type = MQTT_PINGREQ;
	for (int i = 0; i < 6; i++) {
		int n = mqtt_encode(buf + len, cap - len, version, &p[i]);

		assert_true(n > 0 && (size_t)n <= cap - len);
		len += (size_t)n;
	}
	return len;
}

static void
mutate(uint8_t *buf, size_t *len, size_t cap)
{
	int edits = 1 + (int)(rnd() % 4);

	for (int e = 0; e<edits && * len> 0; e++) {
		size_t at = rnd() % *len;

		switch (rnd() % 4) {
		case 0:
			buf[at] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1:
			buf[at] = (uint8_t)rnd();
			break;
		case 2:
			*len = at + 1;
			break; /* truncate */
		default:
			if (*len < cap) { /* insert a byte */
				memmove(buf + at + 1, buf + at, *len - at);
				buf[at] = (uint8_t)rnd();
				(*len)++;
			}
		}
	}
}

/* Feed in random segment splits, as the transport would: keep what was not consumed. */
static void
feed_split(struct fx *x, int i, const uint8_t *buf, size_t len)
{
	size_t off = 0, kept = 0;

	while (off < len && x->f[i].c != NULL) {
		size_t chunk = 1 + rnd() % 40, used;
		struct mqtt_iov segs[3];
		size_t n = 0, total, from = off - kept;

		if (chunk > len - off)
			chunk = len - off;
		total = kept + chunk;
		/* what was kept and the new chunk, cut into up to three segments */
		size_t cut1 = total > 1 ? rnd() % total : 0, cut2 = cut1 + (total - cut1) / 2;
		segs[n++] = (struct mqtt_iov){ buf + from, cut1 };
		segs[n++] = (struct mqtt_iov){ buf + from + cut1, cut2 - cut1 };
		segs[n++] = (struct mqtt_iov){ buf + from + cut2, total - cut2 };
		if (broker_conn_input(x->f[i].c, segs, n, &used, x->now) < 0) {
			x->f[i].c = NULL;
			break;
		}
		assert_true(used <= total);
		kept = total - used;
		off += chunk;
	}
}

static void
bystanders_work(struct fx *x, uint16_t pid)
{
	struct mqtt_packet p;

	fx_publish(x, 2, "ok", "fine", 1, pid, false);
	fx_expect_type(x, 2, MQTT_PUBACK, 0);
	/* the subscriber's stream may hold wills and retained messages from the fuzzed one */
	for (;;) {
		assert_true(fx_next(x, 0, &p));
		assert_int_equal(p.type, MQTT_PUBLISH);
		if (p.publish.qos == 1) /* acknowledged, or the inflight window fills */
			fx_ack(x, 0, MQTT_PUBACK, p.publish.packet_id);
		if (p.publish.topic.len == 2 && memcmp(p.publish.topic.s, "ok", 2) == 0)
			break;
	}
	fx_expect_none(x, 0);
	x->f[0].rd = x->f[0].len = 0; /* keep the fake's buffer from filling up */
	x->f[2].rd = x->f[2].len = 0;
}

static void
test_mutated_and_random(void **state)
{
	struct broker_config cfg;
	uint8_t buf[512];
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_packet_size = 300;
	x = fx_new(&cfg);
	fx_connect(x, 0, MQTT_V5, "sub", true, 0, NULL);
	fx_connect(x, 2, MQTT_V5, "pub", true, 0, NULL);
	fx_subscribe(x, 0, "#", 1);
	for (int r = 0; r < ROUNDS; r++) {
		uint8_t version = (r & 1) ? MQTT_V5 : MQTT_V311;
		size_t len;

		if (r % 10 == 9) {
			len = rnd() % sizeof(buf);
			for (size_t k = 0; k < len; k++)
				buf[k] = (uint8_t)rnd();
		} else {
			len = script(buf, sizeof(buf), version);
			mutate(buf, &len, sizeof(buf));
		}
		fx_open(x, 1, version);
		x->f[1].space = (r % 7 == 0) ? 0 : FX_OUT; /* sometimes a transport with no room */
		feed_split(x, 1, buf, len);
		if (x->f[1].c != NULL && !(r & 2))
			fx_tick(x, 60000); /* keepalive or connect timeout may end it */
		if (x->f[1].c != NULL && !x->f[1].closed)
			fx_close(x, 1); /* keepalive 0: the transport ends it */
		bystanders_work(x, (uint16_t)(1 + r % 60000));
	}
	for (int i = 0; i < BROKER_C_COUNT; i++) /* what the rounds exercised */
		if (broker_counter_get(x->b, (enum broker_counter)i) != 0)
			print_message("%s %llu\n", broker_counter_name((enum broker_counter)i),
			    (unsigned long long)broker_counter_get(x->b, (enum broker_counter)i));
	assert_int_equal(broker_counter_get(x->b, BROKER_C_CONN_OPENED),
	    broker_counter_get(x->b, BROKER_C_CONN_CLOSED) + 2);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutated_and_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
