/*
 * Unit tests of lib/dpchan: the codec refuses every malformed frame whole with its reason; the
 * client and the server, over a real SOCK_SEQPACKET socket, carry records up and DURABLE ranges
 * back, survive the agent being absent or restarting (every record not yet durable is sent
 * again, under its ref), do not take a resent record twice, pause while the sink is full, and
 * bound what the dataplane keeps.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "crc32c.h"
#include "dpchan_client.h"
#include "dpchan_q2.h"
#include "dpchan_server.h"

/* ---- codec ---- */

static int
count_rec(void *arg, const struct dpchan_rec *r)
{
	(void)r;
	++*(int *)arg;
	return 0;
}

static size_t
pub_frame(uint8_t *buf, size_t cap, const struct dpchan_rec *v, uint32_t n)
{
	size_t off = DPCHAN_HDR_LEN;

	dpchan_put_header(buf, DPCHAN_PUB, n);
	for (uint32_t i = 0; i < n; i++) {
		int len = dpchan_put_rec(buf + off, cap - off, false, &v[i]);

		assert_true(len > 0);
		off += (size_t)len;
	}
	return off;
}

static void
test_codec_roundtrip(void **state)
{
	struct dpchan_rec v[2] = {
		{ .ref = 7,
		    .qos = 1,
		    .topic = "plant/a",
		    .topic_len = 7,
		    .payload = (const uint8_t *)"x",
		    .payload_len = 1 },
		{ .ref = 0, .qos = 0, .retain = true, .topic = "b", .topic_len = 1 },
	};
	uint8_t buf[256];
	size_t len = pub_frame(buf, sizeof(buf), v, 2);
	int n = 0;
	struct dpchan_hello h = { 0x1122334455667788ull, 3, 1, 0x8877665544332211ull }, h2;

	(void)state;
	assert_int_equal(dpchan_decode_recs(buf, len, DPCHAN_PUB, count_rec, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(dpchan_encode_hello(buf, sizeof(buf), &h), 32);
	assert_int_equal(dpchan_decode_hello(buf, 32, &h2), 0);
	assert_true(h2.boot_id == h.boot_id && h2.lcore == 3 && h2.down_seen == h.down_seen);
}

static int
check_origin_rec(void *arg, const struct dpchan_rec *r)
{
	assert_true(r->has_origin);
	assert_true(r->origin.boot_id == 0xa1b2c3d4e5f60718ull && r->origin.lcore == 9 &&
	    r->origin.ref == 123456789012ull);
	assert_int_equal(r->ref, 4);
	assert_int_equal(r->topic_len, 7);
	assert_memory_equal(r->topic, "plant/q", 7);
	assert_int_equal(r->payload_len, 2);
	assert_memory_equal(r->payload, "m1", 2);
	++*(int *)arg;
	return 0;
}

static void
count_origin(void *arg, const struct dpchan_origin *o)
{
	assert_true(o->ref != 0);
	++*(int *)arg;
}

/* A PUB record with the origin of its first copy, and RELEASE frames: each field back as it
 * went, and each malformation refused whole. */
static void
test_codec_origin_release(void **state)
{
	struct dpchan_rec r = { .ref = 4,
		.qos = 2,
		.topic = "plant/q",
		.topic_len = 7,
		.payload = (const uint8_t *)"m1",
		.payload_len = 2,
		.has_origin = true,
		.origin = { 0xa1b2c3d4e5f60718ull, 123456789012ull, 9 } };
	struct dpchan_origin rel[2] = { { 1, 2, 3 }, { 4, 5, 6 } };
	uint8_t buf[256], bad[256];
	size_t len = pub_frame(buf, sizeof(buf), &r, 1);
	int n = 0, rl;

	(void)state;
	assert_int_equal(len, DPCHAN_HDR_LEN + DPCHAN_PUB_HDR_LEN + DPCHAN_ORIGIN_LEN + 7 + 2);
	assert_int_equal(dpchan_decode_recs(buf, len, DPCHAN_PUB, check_origin_rec, &n), 0);
	assert_int_equal(n, 1);
	/* an origin on a QoS 1 record, or cut short, or on a DOWN record */
	memcpy(bad, buf, len);
	bad[DPCHAN_HDR_LEN + 8] = 1;
	assert_int_equal(dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_FIELD);
	assert_int_equal(dpchan_decode_recs(buf, DPCHAN_HDR_LEN + DPCHAN_PUB_HDR_LEN + 10,
			     DPCHAN_PUB, count_rec, &n),
	    -DPCHAN_E_TRUNCATED);
	r.qos = 1;
	assert_int_equal(dpchan_put_rec(bad, sizeof(bad), false, &r), -EINVAL);
	r.qos = 2;
	assert_int_equal(dpchan_put_rec(bad + DPCHAN_HDR_LEN, sizeof(bad), true, &r), 16 + 7 + 2);
	bad[DPCHAN_HDR_LEN + 9] =
	    DPCHAN_REC_ORIGIN; /* flags after the ref: DOWN records carry none */
	dpchan_put_header(bad, DPCHAN_DOWN, 1);
	assert_int_equal(dpchan_decode_recs(bad, DPCHAN_HDR_LEN + 25, DPCHAN_DOWN, count_rec, &n),
	    -DPCHAN_E_FIELD);
	assert_int_equal(n, 1);

	rl = dpchan_encode_release(buf, sizeof(buf), rel, 2);
	assert_int_equal(rl, DPCHAN_HDR_LEN + 2 * DPCHAN_ORIGIN_LEN);
	n = 0;
	assert_int_equal(dpchan_decode_release(buf, (size_t)rl, count_origin, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(
	    dpchan_decode_release(buf, (size_t)rl - 1, count_origin, &n), -DPCHAN_E_TRUNCATED);
	assert_int_equal(
	    dpchan_decode_release(buf, (size_t)rl + 1, count_origin, &n), -DPCHAN_E_TRAILING);
	memset(buf + DPCHAN_HDR_LEN + DPCHAN_ORIGIN_LEN + 12, 0, 8); /* the second's ref 0 */
	assert_int_equal(dpchan_decode_release(buf, (size_t)rl, count_origin, &n), -DPCHAN_E_FIELD);
	assert_int_equal(n, 2); /* refused whole: the first was not handed on either */
	assert_int_equal(dpchan_decode_release(buf, (size_t)rl, count_origin, &n), -DPCHAN_E_FIELD);
	assert_int_equal(dpchan_encode_release(buf, 10, rel, 2), -E2BIG);
}

/* HELD frames (the RELEASE layout, their own type) and HELD_END: back as they went, and each
 * malformation refused with its reason. */
static void
test_codec_held(void **state)
{
	struct dpchan_origin v[3] = { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } };
	uint8_t buf[256];
	uint32_t lcores = 0;
	int n = 0, len;

	(void)state;
	len = dpchan_encode_held(buf, sizeof(buf), v, 3);
	assert_int_equal(len, DPCHAN_HDR_LEN + 3 * DPCHAN_ORIGIN_LEN);
	assert_int_equal(buf[0], DPCHAN_HELD);
	assert_int_equal(dpchan_decode_held(buf, (size_t)len, count_origin, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(dpchan_decode_release(buf, (size_t)len, count_origin, &n), -DPCHAN_E_TYPE);
	assert_int_equal(
	    dpchan_decode_held(buf, (size_t)len - 1, count_origin, &n), -DPCHAN_E_TRUNCATED);
	assert_int_equal(dpchan_encode_held(buf, 20, v, 3), -E2BIG);

	len = dpchan_encode_held_end(buf, sizeof(buf), 4);
	assert_int_equal(len, DPCHAN_HDR_LEN + DPCHAN_HELD_END_LEN);
	assert_int_equal(dpchan_decode_held_end(buf, (size_t)len, &lcores), 0);
	assert_int_equal(lcores, 4);
	assert_int_equal(
	    dpchan_decode_held_end(buf, (size_t)len - 1, &lcores), -DPCHAN_E_TRUNCATED);
	buf[len] = 0;
	assert_int_equal(dpchan_decode_held_end(buf, (size_t)len + 1, &lcores), -DPCHAN_E_TRAILING);
	buf[DPCHAN_HDR_LEN + 4] = 1; /* the zero field */
	assert_int_equal(dpchan_decode_held_end(buf, (size_t)len, &lcores), -DPCHAN_E_FIELD);
	buf[DPCHAN_HDR_LEN + 4] = 0;
	buf[4] = 2; /* count 2 */
	assert_int_equal(dpchan_decode_held_end(buf, (size_t)len, &lcores), -DPCHAN_E_FIELD);
	buf[4] = 1;
	memset(buf + DPCHAN_HDR_LEN, 0, 4); /* no lcores */
	assert_int_equal(dpchan_decode_held_end(buf, (size_t)len, &lcores), -DPCHAN_E_FIELD);
	assert_int_equal(dpchan_encode_held_end(buf, sizeof(buf), 0), -EINVAL);
	assert_int_equal(dpchan_encode_held_end(buf, 15, 1), -E2BIG);
	assert_int_equal(dpchan_decode_held(buf, (size_t)len, count_origin, &n), -DPCHAN_E_TYPE);
	assert_int_equal(lcores, 4);
}

/* The agent's QoS 2 origins: held once durable, forgotten when failed or released, read back
 * from the file at open (a torn tail cut, a newer version refused), bounded. */
static void
test_q2_origins(void **state)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 };
	char dir[] = "/tmp/dpchan-q2-XXXXXX", path[64], cmd[96];
	struct dpchan_origin a = { 0xa1, 1, 3 }, b = { 0xa1, 2, 3 }, c = { 0xb2, 1, 3 };
	struct dpchan_q2 *q;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q2", dir);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	dpchan_q2_taken(q, &a, 10);
	dpchan_q2_taken(q, &b, 11);
	dpchan_q2_taken(q, &c, 12);
	assert_int_equal(dpchan_q2_state(q, &a), DPCHAN_Q2_WAITING);
	dpchan_q2_settle(q, 10, 10, 0);
	dpchan_q2_settle(q, 11, 11, -EIO); /* never stored: a resend is taken anew */
	dpchan_q2_settle(q, 12, 12, 0);
	assert_int_equal(dpchan_q2_sync(q), 0);
	assert_int_equal(dpchan_q2_state(q, &a), DPCHAN_Q2_HELD);
	assert_int_equal(dpchan_q2_state(q, &b), DPCHAN_Q2_NONE);
	assert_true(dpchan_q2_release(q, &c));
	assert_false(dpchan_q2_release(q, &c));
	assert_int_equal(cnt[DPCHAN_C_Q2_ORIGINS], 1);
	dpchan_q2_close(q);

	/* read back (and a torn record at the end: cut, what came before kept) */
	assert_non_null(f = fopen(path, "a"));
	fputs("torn", f);
	fclose(f);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(dpchan_q2_state(q, &a), DPCHAN_Q2_HELD);
	assert_int_equal(dpchan_q2_state(q, &c), DPCHAN_Q2_NONE);
	assert_int_equal(cnt[DPCHAN_C_Q2_TORN], 1);
	assert_int_equal(cnt[DPCHAN_C_Q2_RECOVERED], 1);
	dpchan_q2_close(q);

	/* bounded: the oldest goes, counted */
	assert_non_null(q = dpchan_q2_open(path, 1024, cnt, NULL, NULL));
	for (uint64_t i = 1; i <= 1030; i++) {
		struct dpchan_origin o = { 0xc3, i, 1 };

		dpchan_q2_held(q, &o);
	}
	assert_int_equal(dpchan_q2_count(q), 1024);
	assert_int_equal(cnt[DPCHAN_C_Q2_EVICTED], 7); /* a, then 1..6 */
	assert_int_equal(dpchan_q2_state(q, &a), DPCHAN_Q2_NONE);
	assert_int_equal(dpchan_q2_state(q, &(struct dpchan_origin){ 0xc3, 7, 1 }), DPCHAN_Q2_HELD);
	assert_int_equal(dpchan_q2_sync(q), 0);
	dpchan_q2_close(q);
	assert_non_null(q = dpchan_q2_open(path, 1024, cnt, NULL, NULL));
	assert_int_equal(dpchan_q2_count(q), 1024);
	dpchan_q2_close(q);

	/* a file from a newer version is refused, left as it is */
	assert_non_null(f = fopen(path, "r+"));
	{
		uint8_t h[16];
		uint32_t v = 2, crc;

		assert_int_equal(fread(h, 1, 16, f), 16);
		memcpy(h + 8, &v, 4);
		crc = crc32c(h, 12, 0); /* of the first 12 bytes */
		memcpy(h + 12, &crc, 4);
		rewind(f);
		assert_int_equal(fwrite(h, 1, 16, f), 16);
	}
	fclose(f);
	errno = 0;
	assert_null(dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(errno, EPROTONOSUPPORT);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void
sum_range(void *arg, const struct dpchan_range *r)
{
	int64_t *sum = arg;

	*sum += (int64_t)(r->last - r->first + 1) * 1000 + r->status;
}

/* Version 2: a DOWN record carries its ref; DOWN_ACK answers ranges of them with the broker's
 * result (1 delivered, 0 no subscriber, < 0 refused), a status DURABLE does not allow. Another
 * type (RELEASE) is not taken for a DURABLE. */
static void
test_codec_down_v2(void **state)
{
	struct dpchan_rec r = { .ref = 0x0102030405060708ull,
		.qos = 2,
		.topic = "cmd/x",
		.topic_len = 5,
		.payload = (const uint8_t *)"on",
		.payload_len = 2 };
	struct dpchan_range v[3] = { { 1, 3, 1 }, { 4, 4, 0 }, { 5, 6, -12 } };
	uint8_t buf[256];
	int64_t sum = 0;
	int len;

	(void)state;
	dpchan_put_header(buf, DPCHAN_DOWN, 1);
	len = dpchan_put_rec(buf + DPCHAN_HDR_LEN, sizeof(buf) - DPCHAN_HDR_LEN, true, &r);
	assert_int_equal(len, 16 + 5 + 2);
	assert_int_equal(buf[1], 4);    /* DPCHAN_VERSION */
	assert_int_equal(buf[8], 0x08); /* the ref first, little-endian */
	len = dpchan_encode_down_ack(buf, sizeof(buf), v, 3);
	assert_int_equal(len, 8 + 3 * 20);
	assert_int_equal(buf[0], DPCHAN_DOWN_ACK);
	assert_int_equal(dpchan_decode_down_ack(buf, (size_t)len, sum_range, &sum), 0);
	assert_int_equal(sum, 3001 + 1000 + 2000 - 12);
	assert_int_equal(dpchan_decode_durable(buf, (size_t)len, sum_range, &sum), -DPCHAN_E_TYPE);
	v[0].status = 2; /* no such result */
	len = dpchan_encode_down_ack(buf, sizeof(buf), v, 1);
	assert_int_equal(
	    dpchan_decode_down_ack(buf, (size_t)len, sum_range, &sum), -DPCHAN_E_FIELD);
	v[0].status = 1; /* a DURABLE says 0 or < 0 only */
	len = dpchan_encode_durable(buf, sizeof(buf), v, 1);
	assert_int_equal(dpchan_decode_durable(buf, (size_t)len, sum_range, &sum), -DPCHAN_E_FIELD);
	buf[0] = DPCHAN_RELEASE;
	assert_int_equal(dpchan_decode_durable(buf, (size_t)len, sum_range, &sum), -DPCHAN_E_TYPE);
	buf[0] = DPCHAN_DURABLE;
	buf[1] = 1; /* a version 1 peer */
	assert_int_equal(
	    dpchan_decode_durable(buf, (size_t)len, sum_range, &sum), -DPCHAN_E_VERSION);
}

/* Each malformation, alone, refused with its reason, and fn never sees a record of the frame. */
static void
test_codec_malformed(void **state)
{
	struct dpchan_rec v = { .ref = 1,
		.qos = 1,
		.topic = "t/1",
		.topic_len = 3,
		.payload = (const uint8_t *)"abc",
		.payload_len = 3 };
	uint8_t buf[256], bad[256];
	size_t len = pub_frame(buf, sizeof(buf), &v, 1);
	struct dpchan_range r = { 5, 4, 0 };
	int n = 0;

	(void)state;
	assert_int_equal(dpchan_decode_recs(buf, 4, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_SHORT);
	memcpy(bad, buf, len);
	bad[1] = 9;
	assert_int_equal(
	    dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_VERSION);
	memcpy(bad, buf, len);
	bad[0] = 77;
	assert_int_equal(dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_TYPE);
	assert_int_equal(dpchan_decode_recs(buf, len, DPCHAN_DOWN, count_rec, &n), -DPCHAN_E_TYPE);
	assert_int_equal(
	    dpchan_decode_recs(buf, len - 1, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_TRUNCATED);
	memcpy(bad, buf, len);
	bad[8 + 10] = 0xFF; /* topic_len past the frame */
	assert_int_equal(
	    dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_TRUNCATED);
	memcpy(bad, buf, len);
	bad[8 + 12] = 0xFF, bad[8 + 15] = 0xFF; /* payload_len near 4 GiB */
	assert_int_equal(
	    dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_TRUNCATED);
	memcpy(bad, buf, len);
	bad[4] = 2; /* counts two records, holds one */
	assert_int_equal(
	    dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_TRUNCATED);
	memcpy(bad, buf, len);
	bad[len] = 0;
	assert_int_equal(
	    dpchan_decode_recs(bad, len + 1, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_TRAILING);
	memcpy(bad, buf, len);
	bad[8 + 8] = 3; /* qos 3 */
	assert_int_equal(dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_FIELD);
	memcpy(bad, buf, len);
	bad[8 + 9] = 2; /* unknown flag */
	assert_int_equal(dpchan_decode_recs(bad, len, DPCHAN_PUB, count_rec, &n), -DPCHAN_E_FIELD);
	assert_int_equal(dpchan_decode_recs(buf, DPCHAN_FRAME_MAX + 1, DPCHAN_PUB, count_rec, &n),
	    -DPCHAN_E_TOO_LARGE);
	assert_int_equal(n, 0);
	assert_true(dpchan_encode_durable(bad, sizeof(bad), &r, 1) > 0);
	assert_int_equal(dpchan_decode_durable(bad, 28, NULL, NULL), -DPCHAN_E_FIELD);
	assert_int_equal(dpchan_decode_durable(bad, 27, NULL, NULL), -DPCHAN_E_TRUNCATED);
	assert_int_equal(dpchan_decode_hello(bad, 28, &(struct dpchan_hello){ 0 }), -DPCHAN_E_TYPE);
	assert_string_equal(dpchan_strerror(-DPCHAN_E_TRAILING), "bytes after the last record");
}

/* ---- both ends ---- */

struct sink {
	uint64_t next_token;
	uint32_t room; /* records it takes before -ENOBUFS */
	int fail;      /* < 0: refuse every record with it */
	uint64_t refs[256];
	uint32_t n;
};

static int
sink_submit(void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *token)
{
	struct sink *k = arg;

	(void)from;
	if (k->room == 0)
		return -ENOBUFS;
	if (k->fail < 0)
		return k->fail;
	k->room--;
	k->refs[k->n++ % 256] = r->ref;
	*token = ++k->next_token;
	return 0;
}

static const struct dpchan_sink_ops sink_ops = { .submit = sink_submit };

struct dp {
	struct dpchan_client *c;
	uint64_t ok, failed; /* refs reported */
	int ready;
	int down; /* downlink publishes received */
};

static void
dp_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct dp *d = arg;

	if (status == 0)
		d->ok += last - first + 1;
	else
		d->failed += last - first + 1;
}

static void
dp_ready(void *arg)
{
	((struct dp *)arg)->ready++;
}

static int
dp_down(void *arg, const struct dpchan_rec *r)
{
	assert_int_equal(r->topic_len, 9);
	assert_memory_equal(r->topic, "cmd/plant", 9);
	assert_int_equal(r->qos, 1);
	((struct dp *)arg)->down++;
	return 1;
}

static const struct dpchan_client_ops dp_ops = {
	.durable = dp_durable, .ready = dp_ready, .down = dp_down
};

struct env {
	char dir[64], path[96];
	struct sink sink;
	struct dpchan_server *s;
	struct dp d;
	uint64_t now;
};

static void
env_server(struct env *e)
{
	struct dpchan_server_config sc = { .path = e->path };

	e->s = dpchan_server_new(&sc, &sink_ops, &e->sink);
	assert_non_null(e->s);
}

static struct env *
env_new(uint32_t pending_bytes, bool server)
{
	struct env *e = calloc(1, sizeof(*e));
	struct dpchan_client_config cc = {
		.boot_id = 42, .lcore = 1, .pending_bytes = pending_bytes
	};

	strcpy(e->dir, "/tmp/dpchan-test-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/dpchan.sock", e->dir);
	cc.path = e->path;
	e->sink.room = 1000;
	if (server)
		env_server(e);
	e->d.c = dpchan_client_new(&cc, &dp_ops, &e->d);
	assert_non_null(e->d.c);
	return e;
}

static void
env_free(struct env *e)
{
	dpchan_client_free(e->d.c);
	dpchan_server_free(e->s);
	rmdir(e->dir);
	free(e);
}

/* A few rounds of both loops (each side's sends are read by the other's next round). */
static void
pump(struct env *e)
{
	for (int i = 0; i < 4; i++) {
		e->now += 10;
		dpchan_client_poll(e->d.c, e->now);
		if (e->s != NULL)
			dpchan_server_run(e->s);
	}
}

static int
submit(struct env *e, uint64_t ref, uint8_t qos)
{
	struct dpchan_rec r = { .ref = ref,
		.qos = qos,
		.topic = "plant/x",
		.topic_len = 7,
		.payload = (const uint8_t *)"0123456789",
		.payload_len = 10 };

	return dpchan_client_submit(e->d.c, &r);
}

static void
test_up_and_durable(void **state)
{
	struct env *e = env_new(0, true);

	(void)state;
	assert_int_equal(submit(e, 1, 1), -ENOTCONN); /* not connected before the first poll */
	pump(e);
	assert_true(dpchan_client_connected(e->d.c));
	assert_int_equal(dpchan_server_connected(e->s), 1);
	for (uint64_t r = 1; r <= 3; r++)
		assert_int_equal(submit(e, r, 1), 0);
	assert_int_equal(submit(e, 0, 0), 0); /* best effort: done once sent */
	pump(e);
	assert_int_equal(e->sink.n, 4);
	assert_int_equal(
	    dpchan_client_counter(e->d.c, DPCHAN_C_FRAMES_TX), 2); /* HELLO, one batch */
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 4);  /* records leave in order */
	dpchan_server_durable(e->s, 1, 2, 0);                      /* tokens 1, 2: refs 1, 2 */
	dpchan_server_durable(e->s, 4, 4, -EIO); /* token 3 was ref 3; token 4 the QoS 0 one */
	pump(e);
	assert_int_equal(e->d.ok, 2);
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 2);
	dpchan_server_durable(e->s, 3, 3, -EIO);
	pump(e);
	assert_int_equal(e->d.failed, 1);
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 0);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_DURABLE_FAIL), 1);
	/* a downlink publish reaches the lcore */
	assert_int_equal(dpchan_server_down(e->s,
			     &(struct dpchan_rec){ .qos = 1,
				 .topic = "cmd/plant",
				 .topic_len = 9,
				 .payload = (const uint8_t *)"on",
				 .payload_len = 2 }),
	    0);
	pump(e);
	assert_int_equal(e->d.down, 1);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_DOWN_RX), 1);
	env_free(e);
}

/* The agent is absent at first, then restarts with records taken and not yet durable: the
 * client retries with backoff, and sends every record again under its ref. */
static void
test_agent_absent_and_restart(void **state)
{
	struct env *e = env_new(0, false);

	(void)state;
	pump(e);
	assert_false(dpchan_client_connected(e->d.c));
	assert_true(dpchan_client_counter(e->d.c, DPCHAN_C_CONNECT_FAIL) >= 1);
	assert_int_equal(submit(e, 1, 1), -ENOTCONN);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_REFUSED_DOWN), 1);
	env_server(e);
	for (int i = 0; i < 20 && !dpchan_client_connected(e->d.c); i++)
		pump(e);
	assert_true(dpchan_client_connected(e->d.c));
	assert_true(e->d.ready >= 1); /* the refused submit may go now */
	assert_int_equal(submit(e, 1, 1), 0);
	assert_int_equal(submit(e, 2, 2), 0);
	pump(e);
	assert_int_equal(e->sink.n, 2);
	dpchan_server_free(e->s); /* the agent dies before either is durable */
	e->s = NULL;
	pump(e);
	assert_false(dpchan_client_connected(e->d.c));
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 2);
	e->sink = (struct sink){ .room = 1000 };
	env_server(e);
	for (int i = 0; i < 20 && e->sink.n < 2; i++)
		pump(e);
	assert_int_equal(e->sink.n, 2);
	assert_int_equal(e->sink.refs[0], 1);
	assert_int_equal(e->sink.refs[1], 2);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_RECS_RESENT), 2);
	dpchan_server_durable(e->s, 1, 2, 0);
	pump(e);
	assert_int_equal(e->d.ok, 2);
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 0);
	env_free(e);
}

/* The same lcore reconnects to a live agent (same boot id): what it sends again is not taken
 * twice; what is durable already is answered at once, the rest when it becomes durable. */
static void
test_reconnect_no_double_take(void **state)
{
	struct env *e = env_new(0, true);
	struct dpchan_client_config cc = { .path = e->path, .boot_id = 42, .lcore = 1 };

	(void)state;
	pump(e);
	assert_int_equal(submit(e, 1, 1), 0);
	assert_int_equal(submit(e, 2, 1), 0);
	pump(e);
	dpchan_server_durable(e->s, 1, 1, 0);
	dpchan_client_free(e->d.c); /* its answer is lost with the connection */
	e->d = (struct dp){ 0 };
	e->d.c = dpchan_client_new(&cc, &dp_ops, &e->d);
	pump(e);
	assert_int_equal(submit(e, 1, 1), 0); /* the broker's records, sent again */
	assert_int_equal(submit(e, 2, 1), 0);
	pump(e);
	assert_int_equal(e->sink.n, 2); /* not taken again */
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RECS_DUP), 2);
	assert_int_equal(e->d.ok, 1); /* ref 1 was durable already */
	dpchan_server_durable(e->s, 2, 2, 0);
	pump(e);
	assert_int_equal(e->d.ok, 2);
	env_free(e);
}

/* The agent restarted and its sink already holds refs 1, 2 and 4 of this lcore (found in its
 * spool: dpchan_server_known), ref 3 not (it never reached the disk): the lcore sends 1..4 again;
 * 1, 2, 4 are answered durable at once without reaching the sink, 3 is taken. Known refs of
 * another boot id are forgotten at the hello. */
static void
test_known_after_agent_restart(void **state)
{
	struct env *e = env_new(0, false);

	(void)state;
	pump(e);
	assert_false(dpchan_client_connected(e->d.c));
	env_server(e);
	for (uint64_t r = 1; r <= 4; r++)
		if (r != 3)
			assert_int_equal(dpchan_server_known(e->s, 42, 1, r), 0);
	assert_int_equal(dpchan_server_known(e->s, 41, 1, 3), 0); /* an older dataplane start */
	assert_int_equal(dpchan_server_known(e->s, 42, 2, 3), 0); /* another lcore */
	for (int i = 0; i < 20 && !dpchan_client_connected(e->d.c); i++)
		pump(e);
	for (uint64_t r = 1; r <= 4; r++)
		assert_int_equal(submit(e, r, 2), 0);
	pump(e);
	assert_int_equal(e->sink.n, 1);
	assert_int_equal(e->sink.refs[0], 3);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RECS_KNOWN), 3);
	assert_int_equal(e->d.ok, 3);
	dpchan_server_durable(e->s, 1, 1, 0); /* token 1: ref 3 */
	pump(e);
	assert_int_equal(e->d.ok, 4);
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 0);
	env_free(e);
}

/* A full sink pauses the connection (nothing lost, nothing taken twice); the client's arena
 * fills and refuses (-ENOBUFS, counted) until durable answers make room, then says ready. */
static void
test_sink_full_and_bound(void **state)
{
	struct env *e = env_new(4096, true);
	int taken = 0, rc;

	(void)state;
	pump(e);
	e->sink.room = 2;
	for (uint64_t r = 1; (rc = submit(e, r, 1)) == 0; r++)
		taken++;
	assert_int_equal(rc, -ENOBUFS);
	assert_true(taken > 10 && taken < 100);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_LIMIT_PENDING), 1);
	pump(e);
	assert_int_equal(e->sink.n, 2);
	assert_true(dpchan_server_counter(e->s, DPCHAN_C_SINK_FULL) >= 1);
	e->sink.room = 1000;
	pump(e);
	assert_int_equal(e->sink.n, (uint32_t)taken);
	e->d.ready = 0;
	dpchan_server_durable(e->s, 1, (uint64_t)taken, 0);
	pump(e);
	assert_int_equal(e->d.ok, (uint64_t)taken);
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 0);
	assert_int_equal(e->d.ready, 1);
	/* wraps around the arena: many more rounds of fill and drain */
	for (uint64_t r = (uint64_t)taken + 1; r < (uint64_t)taken * 10; r++) {
		assert_int_equal(submit(e, r, 1), 0);
		pump(e);
		dpchan_server_durable(e->s, e->sink.next_token, e->sink.next_token, 0);
	}
	pump(e);
	assert_int_equal(dpchan_client_pending(e->d.c, NULL), 0);
	env_free(e);
}

/* A peer that sends garbage, or a PUB before its HELLO, is closed and counted; the others go on. */
static void
test_server_bad_frames(void **state)
{
	struct env *e = env_new(0, true);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t junk[16] = { 2, 1, 0, 0, 5, 0, 0, 0 };

	(void)state;
	strcpy(sa.sun_path, e->path);
	for (int k = 0; k < 2; k++) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		char b;

		assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(send(fd, junk, k == 0 ? sizeof(junk) : 3, 0), k == 0 ? 16 : 3);
		pump(e);
		assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), 0); /* closed by the server */
		close(fd);
	}
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_BAD_FRAME), 2);
	assert_int_equal(submit(e, 1, 1), 0);
	pump(e);
	assert_int_equal(e->sink.n, 1);
	e->sink.fail = -EIO; /* a record the store refuses is answered failed */
	assert_int_equal(submit(e, 2, 1), 0);
	pump(e);
	assert_int_equal(e->d.failed, 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_SINK_FAIL), 1);
	{ /* its answer lost with the connection, sent again: failed again, never durable */
		struct dpchan_client_config cc = { .path = e->path, .boot_id = 42, .lcore = 1 };

		dpchan_client_free(e->d.c);
		e->d = (struct dp){ 0 };
		e->d.c = dpchan_client_new(&cc, &dp_ops, &e->d);
		pump(e);
		assert_int_equal(submit(e, 2, 1), 0);
		pump(e);
		assert_int_equal(e->d.failed, 1);
		assert_int_equal(e->d.ok, 0);
		assert_int_equal(
		    dpchan_server_counter(e->s, DPCHAN_C_SINK_FAIL), 1); /* not again */
	}
	env_free(e);
}

static void
env_server_cfg(struct env *e, uint32_t max_streams, uint32_t max_inflight)
{
	struct dpchan_server_config sc = {
		.path = e->path, .max_streams = max_streams, .max_inflight = max_inflight
	};

	dpchan_server_free(e->s);
	e->s = dpchan_server_new(&sc, &sink_ops, &e->sink);
	assert_non_null(e->s);
}

/* The server's bounds: refs awaiting durability per lcore (the connection pauses until some are
 * answered), lcores (one more is refused and counted). */
static void
test_server_bounds(void **state)
{
	struct env *e = env_new(0, false);
	struct dpchan_client_config cc = { .path = e->path, .boot_id = 7, .lcore = 2 };
	struct dp d2 = { 0 };

	(void)state;
	env_server_cfg(e, 1, 2);
	pump(e);
	for (uint64_t r = 1; r <= 4; r++)
		assert_int_equal(submit(e, r, 1), 0);
	pump(e);
	assert_int_equal(e->sink.n, 2);
	assert_true(dpchan_server_counter(e->s, DPCHAN_C_LIMIT_INFLIGHT) >= 1);
	dpchan_server_durable(e->s, 1, 2, 0);
	pump(e);
	assert_int_equal(e->sink.n, 4);
	d2.c = dpchan_client_new(&cc, &dp_ops, &d2); /* a second lcore: over max_streams */
	for (int i = 0; i < 4; i++) {
		dpchan_client_poll(d2.c, e->now + (uint64_t)i * 10);
		dpchan_server_run(e->s);
	}
	assert_true(dpchan_server_counter(e->s, DPCHAN_C_LIMIT_STREAMS) >= 1);
	assert_int_equal(dpchan_server_connected(e->s), 1);
	dpchan_client_free(d2.c);
	/* a record that never fits a frame */
	{
		static uint8_t big[DPCHAN_FRAME_MAX];
		struct dpchan_rec r = { .ref = 9,
			.qos = 1,
			.topic = "t",
			.topic_len = 1,
			.payload = big,
			.payload_len = sizeof(big) };

		assert_int_equal(dpchan_client_submit(e->d.c, &r), -EMSGSIZE);
		assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_TOO_LARGE), 1);
	}
	env_free(e);
}

/* Neither end blocks on a peer that does not read: the lcore's sends wait for room (counted)
 * while the agent's store is full; the agent closes an lcore whose socket is full of answers
 * (counted), and that lcore, reconnected, is answered for what it sends again. */
static void
test_peer_not_reading(void **state)
{
	struct env *e = env_new(8u << 20, true);
	static uint8_t kb[1024];
	struct dpchan_rec r = { .qos = 1,
		.topic = "plant/x",
		.topic_len = 7,
		.payload = kb,
		.payload_len = sizeof(kb) };
	uint64_t n = 1000;

	(void)state;
	pump(e);
	e->sink.room = 0; /* the store is full: the agent stops reading */
	for (uint64_t ref = 1; ref <= n; ref++) {
		r.ref = ref;
		assert_int_equal(dpchan_client_submit(e->d.c, &r), 0);
	}
	pump(e);
	assert_true(dpchan_client_counter(e->d.c, DPCHAN_C_SEND_AGAIN) >= 1);
	e->sink.room = 100000;
	for (int i = 0; i < 200 && e->sink.n < n; i++) {
		dpchan_server_run(e->s);
		dpchan_client_poll(e->d.c, e->now += 10);
	}
	assert_int_equal(e->sink.n, n);
	/* the lcore stops reading; one answer per ref fills its socket: the agent closes it */
	for (uint64_t t = 1; t <= n && dpchan_server_connected(e->s) == 1; t++)
		dpchan_server_durable(e->s, t, t, 0);
	assert_true(dpchan_server_counter(e->s, DPCHAN_C_SEND_FAIL) >= 1);
	pump(e); /* reconnected: what it sends again is not taken twice */
	dpchan_server_durable(e->s, 1, n, 0); /* the rest becomes durable */
	for (int i = 0; i < 400 && e->d.ok < n; i++)
		pump(e);
	assert_int_equal(e->d.ok, n);   /* answered, late or at the resend */
	assert_int_equal(e->sink.n, n); /* none taken twice */
	env_free(e);
}

static int
submit_q2(struct env *e, uint64_t ref, const struct dpchan_origin *origin)
{
	struct dpchan_rec r = { .ref = ref,
		.qos = 2,
		.topic = "plant/q",
		.topic_len = 7,
		.payload = (const uint8_t *)"m",
		.payload_len = 1 };

	if (origin != NULL) {
		r.has_origin = true;
		r.origin = *origin;
	}
	return dpchan_client_submit(e->d.c, &r);
}

/* QoS 2 through the server, after a SIGKILL of the dataplane: its next start forwards its
 * sensor's resends under the origins of their first copies while those are still being made
 * durable. Each resend waits (Q2_WAIT, counted once; the connection paused): one whose first
 * copy became durable is answered durable and not stored again, one whose first copy failed is
 * stored now. The sensor's PUBRELs release the origins; a release of an origin the agent does
 * not hold (evicted, or never stored) is counted and harmless; releases beyond the client's
 * queue while the agent is away are refused and counted, the queue sent whole at the next
 * connect. */
static void
test_q2_resend_waits_for_its_first_copy(void **state)
{
	struct env *e = env_new(0, true);
	struct dpchan_client_config cc = { .path = e->path, .boot_id = 43, .lcore = 1 };
	struct dpchan_origin o1 = { 42, 1, 1 }, o2 = { 42, 2, 1 }, gone = { 42, 99, 1 };
	int rc = 0;

	(void)state;
	pump(e);
	assert_int_equal(submit_q2(e, 1, NULL), 0); /* the first start: origin (42, 1, lcore 1) */
	assert_int_equal(submit_q2(e, 2, NULL), 0);
	pump(e);
	assert_int_equal(e->sink.n, 2);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_ORIGINS), 2);
	dpchan_client_free(e->d.c); /* SIGKILL before either was durable */
	e->d = (struct dp){ 0 };
	assert_non_null(e->d.c = dpchan_client_new(&cc, &dp_ops, &e->d));
	pump(e);
	assert_int_equal(submit_q2(e, 1, &o1), 0); /* the sensor's resends, first copies' origins */
	assert_int_equal(submit_q2(e, 2, &o2), 0);
	for (int i = 0; i < 3; i++)
		pump(e);
	assert_int_equal(e->sink.n, 2); /* not stored again, not answered */
	assert_int_equal(e->d.ok + e->d.failed, 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_WAIT), 1);
	dpchan_server_durable(e->s, 1, 1, 0);    /* the first copy of 1 is on disk */
	dpchan_server_durable(e->s, 2, 2, -EIO); /* that of 2 never got there */
	pump(e);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_HELD), 1);
	assert_int_equal(e->d.ok, 1); /* 1: answered durable, stored once */
	assert_int_equal(e->sink.n, 3);
	assert_int_equal(e->sink.refs[2], 2); /* 2: stored now */
	dpchan_server_durable(e->s, 3, 3, 0);
	pump(e);
	assert_int_equal(e->d.ok, 2);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_WAIT), 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_ORIGINS), 2);

	/* the PUBRELs: o1 and o2 (stored under the origin it came with), then one never held */
	assert_int_equal(dpchan_client_release(e->d.c, &o1), 0);
	assert_int_equal(dpchan_client_release(e->d.c, &o2), 0);
	assert_int_equal(dpchan_client_release(e->d.c, &gone), 0);
	pump(e);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RELEASE_RX), 3);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RELEASE_UNKNOWN), 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_ORIGINS), 0);
	/* a resend of 1 now is a new message (its exchange is complete): stored */
	assert_int_equal(submit_q2(e, 3, &o1), 0);
	pump(e);
	assert_int_equal(e->sink.n, 4);

	/* the agent away: the release queue fills (4096), the next is refused and counted */
	dpchan_server_free(e->s);
	e->s = NULL;
	pump(e);
	assert_false(dpchan_client_connected(e->d.c));
	for (uint64_t ref = 1000; ref < 1000 + 4096 && rc == 0; ref++)
		rc = dpchan_client_release(e->d.c, &(struct dpchan_origin){ 43, ref, 1 });
	assert_int_equal(rc, 0);
	assert_int_equal(dpchan_client_release(e->d.c, &gone), -ENOBUFS);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_RELEASE_DROP), 1);
	e->sink = (struct sink){ .room = 1000 };
	env_server(e);
	for (int i = 0; i < 50 && dpchan_server_counter(e->s, DPCHAN_C_RELEASE_RX) == 0; i++)
		pump(e);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RELEASE_RX), 4096);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_RELEASE_TX), 3 + 4096);
	assert_int_equal(dpchan_client_release(e->d.c, &gone), 0); /* room again */
	env_free(e);
}

static int
submit_q2_on(struct dpchan_client *c, uint64_t ref, const struct dpchan_origin *origin)
{
	struct dpchan_rec r = { .ref = ref,
		.qos = 2,
		.topic = "plant/q",
		.topic_len = 7,
		.payload = (const uint8_t *)"m",
		.payload_len = 1 };

	if (origin != NULL) {
		r.has_origin = true;
		r.origin = *origin;
	}
	return dpchan_client_submit(c, &r);
}

static void
pump2(struct env *e, struct dp *d2)
{
	for (int i = 0; i < 4; i++) {
		e->now += 10;
		dpchan_client_poll(e->d.c, e->now);
		dpchan_client_poll(d2->c, e->now);
		dpchan_server_run(e->s);
	}
}

#define SC(e, k) dpchan_server_counter((e)->s, DPCHAN_C_##k)

/* The dataplane restarted (boot 43, two lcores) after the RELEASE of one of its first start's
 * QoS 2 origins was lost (taken PUBREL, SIGKILL before the send). Each lcore of the new start
 * lists the origins of earlier starts it still holds (HELD), then HELD_END; once both have, the
 * agent forgets the unlisted one: counted Q2_SWEPT, written as a release (the agent's next run
 * does not read it back). One lcore's list alone forgets nothing; an origin listed before its
 * record reached the agent, and the new start's own origins, are kept. The agent restarting
 * hears the lists again and forgets nothing more. */
static void
test_q2_resync_forgets_lost_releases(void **state)
{
	struct env *e = env_new(0, false);
	char q2path[128];
	struct dpchan_server_config sc = { .path = e->path, .q2_path = q2path };
	struct dpchan_client_config c1 = { .path = e->path, .boot_id = 43, .lcore = 1 };
	struct dpchan_client_config c2 = { .path = e->path, .boot_id = 43, .lcore = 2 };
	struct dpchan_origin o[4] = { { 42, 1, 1 }, { 42, 2, 1 }, { 42, 3, 1 }, { 42, 9, 1 } };
	struct dpchan_origin held1[2] = { o[1], o[3] }, held2[1] = { o[2] };
	struct dp d2 = { 0 };

	(void)state;
	snprintf(q2path, sizeof(q2path), "%s/q2", e->dir);
	assert_non_null(e->s = dpchan_server_new(&sc, &sink_ops, &e->sink));
	pump(e);
	for (uint64_t ref = 1; ref <= 3; ref++) /* the first start: origins (42, 1..3, lcore 1) */
		assert_int_equal(submit_q2(e, ref, NULL), 0);
	pump(e);
	dpchan_server_durable(e->s, 1, 3, 0);
	/* answered once the origins' sync ended on the origin file's thread */
	for (int i = 0; i < 2000 && e->d.ok < 3; i++) {
		pump(e);
		usleep(1000);
	}
	assert_int_equal(e->d.ok, 3);
	assert_int_equal(SC(e, Q2_ORIGINS), 3);
	/* SIGKILL: o[0]'s PUBREL was taken, its RELEASE never left */
	dpchan_client_free(e->d.c);
	assert_non_null(e->d.c = dpchan_client_new(&c1, &dp_ops, &e->d));
	assert_int_equal(dpchan_client_held(e->d.c, held1, 2, 2), 0);
	assert_non_null(d2.c = dpchan_client_new(&c2, &dp_ops, &d2));
	assert_int_equal(dpchan_client_held(d2.c, held2, 1, 0), -EINVAL);
	pump(e); /* lcore 1 alone: its list heard, nothing forgotten */
	assert_int_equal(SC(e, HELD_RX), 2);
	assert_int_equal(dpchan_client_counter(e->d.c, DPCHAN_C_HELD_TX), 2);
	assert_int_equal(SC(e, Q2_ORIGINS), 3);
	/* o[3]'s sensor resends; its first copy never reached the agent: stored under it now */
	assert_int_equal(submit_q2(e, 1, &o[3]), 0);
	pump(e);
	assert_int_equal(SC(e, Q2_ORIGINS), 4);
	dpchan_server_durable(e->s, 4, 4, 0);
	pump(e);
	/* lcore 2 comes: one record of this start's own, then its list: o[0] is forgotten */
	assert_int_equal(dpchan_client_held(d2.c, held2, 1, 2), 0);
	assert_int_equal(submit_q2_on(d2.c, 1, NULL), -ENOTCONN);
	pump2(e, &d2);
	assert_int_equal(SC(e, Q2_SWEPT), 1);
	assert_int_equal(SC(e, Q2_ORIGINS), 3);
	assert_int_equal(submit_q2_on(d2.c, 1, NULL), 0);
	pump2(e, &d2);
	assert_int_equal(SC(e, Q2_ORIGINS), 4);
	assert_int_equal(SC(e, HELD_RX), 3);

	/* the agent restarts: the file read back has o[1..3] (not o[0], released), the lists
	 * come again, and nothing more is forgotten */
	dpchan_server_durable(e->s, 5, 5, 0);
	pump2(e, &d2);
	dpchan_server_free(e->s);
	assert_non_null(e->s = dpchan_server_new(&sc, &sink_ops, &e->sink));
	assert_int_equal(SC(e, Q2_RECOVERED), 4); /* o[1..3] and (43, 1, lcore 2) */
	for (int i = 0; i < 100 && SC(e, HELD_RX) < 3; i++)
		pump2(e, &d2);
	assert_int_equal(SC(e, HELD_RX), 3);
	assert_int_equal(SC(e, Q2_SWEPT), 0);
	assert_int_equal(SC(e, Q2_ORIGINS), 4);
	dpchan_client_free(d2.c);
	env_free(e);
	unlink(q2path);
}

/* Pump e's client, d2's and d3's (NULL: not there) until cond or 200 rounds. */
#define PUMP3_UNTIL(e, d2, d3, cond)                                   \
	do {                                                           \
		for (int i_ = 0; i_ < 200 && !(cond); i_++) {          \
			(e)->now += 10;                                \
			dpchan_client_poll((e)->d.c, (e)->now);        \
			if ((d2) != NULL)                              \
				dpchan_client_poll((d2)->c, (e)->now); \
			if ((d3) != NULL)                              \
				dpchan_client_poll((d3)->c, (e)->now); \
			dpchan_server_run((e)->s);                     \
			usleep(1000);                                  \
		}                                                      \
	} while (0)

/* A connection of an earlier start still open, or opening, while the newest start's lcores
 * are connected: when the new start's lcore 1 says HELLO, the old lcore 1's connection is
 * closed (it would otherwise detach the new stream when it ends, leaving the new lcore without
 * answers); a HELLO from the earlier start after that is refused, so it cannot start a
 * resync of its own whose left-over "listed" marks would let a later one sweep an origin that
 * only one lcore of the new start lists. */
static void
test_q2_resync_earlier_start_refused(void **state)
{
	struct env *e = env_new(0, true);
	struct dpchan_client_config a2 = { .path = e->path, .boot_id = 42, .lcore = 2 };
	struct dpchan_client_config b1 = { .path = e->path, .boot_id = 43, .lcore = 1 };
	struct dpchan_client_config b2 = { .path = e->path, .boot_id = 43, .lcore = 2 };
	struct dpchan_origin o = { 42, 1, 1 };
	struct dp old = e->d, nb2 = { 0 }, za = { 0 };
	uint64_t disc;

	(void)state;
	pump(e);
	assert_int_equal(submit_q2(e, 1, NULL), 0); /* the first start: origin (42, 1, lcore 1) */
	pump(e);
	dpchan_server_durable(e->s, 1, 1, 0);
	PUMP3_UNTIL(e, (struct dp *)NULL, (struct dp *)NULL, e->d.ok == 1);
	assert_int_equal(e->d.ok, 1);
	/* the new start's lcore 1 while the old lcore 1 is still connected: the old one goes */
	e->d = (struct dp){ 0 };
	assert_non_null(e->d.c = dpchan_client_new(&b1, &dp_ops, &e->d));
	assert_int_equal(dpchan_client_held(e->d.c, &o, 1, 2), 0); /* it holds o */
	assert_non_null(nb2.c = dpchan_client_new(&b2, &dp_ops, &nb2));
	assert_int_equal(dpchan_client_held(nb2.c, NULL, 0, 2), 0);
	PUMP3_UNTIL(
	    e, &nb2, (struct dp *)NULL, SC(e, HELD_RX) == 1 && dpchan_server_connected(e->s) == 2);
	dpchan_client_poll(old.c, e->now += 10);
	assert_false(dpchan_client_connected(old.c)); /* closed by the agent */
	dpchan_client_free(old.c);            /* and gone: the new lcore 1 keeps its stream */
	assert_int_equal(SC(e, Q2_SWEPT), 0); /* o listed by lcore 1 */
	assert_int_equal(SC(e, Q2_ORIGINS), 1);
	assert_int_equal(submit_q2(e, 1, NULL), 0);
	PUMP3_UNTIL(e, &nb2, (struct dp *)NULL, e->sink.n == 2);
	dpchan_server_durable(e->s, 2, 2, 0);
	PUMP3_UNTIL(e, &nb2, (struct dp *)NULL, e->d.ok == 1);
	assert_int_equal(e->d.ok, 1); /* answered: the stream kept its connection */

	/* an lcore of the earlier start comes back: refused */
	disc = SC(e, DISCONNECTS);
	assert_non_null(za.c = dpchan_client_new(&a2, &dp_ops, &za));
	assert_int_equal(dpchan_client_held(za.c, NULL, 0, 2), 0);
	PUMP3_UNTIL(e, &nb2, &za, SC(e, DISCONNECTS) > disc);
	assert_true(SC(e, DISCONNECTS) > disc);
	assert_int_equal(dpchan_server_connected(e->s), 2);
	dpchan_client_free(za.c);
	/* the new lcore 2 reconnects and lists (nothing) again: no second sweep forgets o */
	dpchan_client_free(nb2.c);
	nb2 = (struct dp){ 0 };
	assert_non_null(nb2.c = dpchan_client_new(&b2, &dp_ops, &nb2));
	assert_int_equal(dpchan_client_held(nb2.c, NULL, 0, 2), 0);
	PUMP3_UNTIL(e, &nb2, (struct dp *)NULL,
	    dpchan_server_connected(e->s) == 2 &&
		dpchan_client_counter(nb2.c, DPCHAN_C_FRAMES_TX) >= 2);
	PUMP3_UNTIL(e, &nb2, (struct dp *)NULL, false); /* a while: a sweep would come now */
	assert_int_equal(SC(e, Q2_SWEPT), 0);
	assert_int_equal(SC(e, Q2_ORIGINS), 2); /* o, and (43, 1, lcore 1) */
	dpchan_client_free(nb2.c);
	env_free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_roundtrip),
		cmocka_unit_test(test_codec_down_v2),
		cmocka_unit_test(test_codec_malformed),
		cmocka_unit_test(test_codec_origin_release),
		cmocka_unit_test(test_codec_held),
		cmocka_unit_test(test_q2_origins),
		cmocka_unit_test(test_up_and_durable),
		cmocka_unit_test(test_agent_absent_and_restart),
		cmocka_unit_test(test_reconnect_no_double_take),
		cmocka_unit_test(test_known_after_agent_restart),
		cmocka_unit_test(test_sink_full_and_bound),
		cmocka_unit_test(test_server_bad_frames),
		cmocka_unit_test(test_server_bounds),
		cmocka_unit_test(test_peer_not_reading),
		cmocka_unit_test(test_q2_resend_waits_for_its_first_copy),
		cmocka_unit_test(test_q2_resync_forgets_lost_releases),
		cmocka_unit_test(test_q2_resync_earlier_start_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
