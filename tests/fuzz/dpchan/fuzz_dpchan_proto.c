/*
 * fuzz_dpchan_proto.c: libFuzzer harness of the dataplane channel's wire format
 * (lib/dpchan/dpchan_proto.c): any bytes as a frame, through the decoder of the type its header
 * names. A malformed frame must be refused whole (a -DPCHAN_E_* before any record reaches the
 * callback) and one that is taken must say again what it said: its records, ranges or origins
 * encoded afresh decode to the same ones.
 *
 * Checks: nothing crashes (ASan, UBSan); a refusal is one of the DPCHAN_E_* and came before the
 * first callback; a frame taken round-trips.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpchan_proto.h"

#define MAXN 8192

/* A broken promise: say which, then stop (libFuzzer keeps the input). */
static void __attribute__((noreturn)) broken(const char *why)
{
	fprintf(stderr, "fuzz_dpchan_proto: %s\n", why);
	abort();
}

static struct dpchan_rec recs[2][MAXN];
static struct dpchan_range ranges[2][MAXN];
static struct dpchan_origin origins[2][MAXN];
static unsigned n[2], pass;

static int
on_rec(void *arg, const struct dpchan_rec *r)
{
	(void)arg;
	if (n[pass] < MAXN)
		recs[pass][n[pass]] = *r;
	n[pass]++;
	return 0;
}

static void
on_range(void *arg, const struct dpchan_range *r)
{
	(void)arg;
	if (n[pass] < MAXN)
		ranges[pass][n[pass]] = *r;
	n[pass]++;
}

static void
on_origin(void *arg, const struct dpchan_origin *o)
{
	(void)arg;
	if (n[pass] < MAXN)
		origins[pass][n[pass]] = *o;
	n[pass]++;
}

/* field by field: the structs' padding is whatever the decoder's stack held */
static bool
origin_same(const struct dpchan_origin *a, const struct dpchan_origin *b)
{
	return a->boot_id == b->boot_id && a->ref == b->ref && a->lcore == b->lcore;
}

static bool
range_same(const struct dpchan_range *a, const struct dpchan_range *b)
{
	return a->first == b->first && a->last == b->last && a->status == b->status;
}

static bool
rec_same(const struct dpchan_rec *a, const struct dpchan_rec *b)
{
	return a->ref == b->ref && a->qos == b->qos && a->retain == b->retain &&
	    a->has_origin == b->has_origin &&
	    (!a->has_origin || origin_same(&a->origin, &b->origin)) &&
	    a->topic_len == b->topic_len && memcmp(a->topic, b->topic, a->topic_len) == 0 &&
	    a->payload_len == b->payload_len &&
	    (a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0);
}

/* One decode of buf as type; pass 0 is the input, pass 1 its encoding afresh. */
static int
decode(uint8_t type, const uint8_t *buf, size_t len)
{
	struct dpchan_hello h;
	uint32_t lcores;
	int rc;

	n[pass] = 0;
	switch (type) {
	case DPCHAN_HELLO:
		rc = dpchan_decode_hello(buf, len, &h);
		if (rc == 0)
			n[pass] = (unsigned)h.lcore; /* compared below through the re-encoding */
		return rc;
	case DPCHAN_PUB:
	case DPCHAN_DOWN:
		return dpchan_decode_recs(buf, len, type, on_rec, NULL);
	case DPCHAN_DURABLE:
		return dpchan_decode_durable(buf, len, on_range, NULL);
	case DPCHAN_DOWN_ACK:
		return dpchan_decode_down_ack(buf, len, on_range, NULL);
	case DPCHAN_RELEASE:
		return dpchan_decode_release(buf, len, on_origin, NULL);
	case DPCHAN_HELD:
		return dpchan_decode_held(buf, len, on_origin, NULL);
	case DPCHAN_HELD_END:
		rc = dpchan_decode_held_end(buf, len, &lcores);
		n[pass] = rc == 0 ? lcores : 0;
		return rc;
	default:
		return -DPCHAN_E_TYPE;
	}
}

/* The frame again from what was decoded. */
static int
encode(uint8_t type, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap)
{
	struct dpchan_hello h;
	uint32_t lcores;
	size_t len = DPCHAN_HDR_LEN;

	switch (type) {
	case DPCHAN_HELLO:
		if (dpchan_decode_hello(in, in_len, &h) != 0)
			broken("a HELLO taken once and refused the next time");
		return dpchan_encode_hello(out, cap, &h);
	case DPCHAN_PUB:
	case DPCHAN_DOWN:
		for (unsigned i = 0; i < n[0]; i++) {
			int w =
			    dpchan_put_rec(out + len, cap - len, type == DPCHAN_DOWN, &recs[0][i]);

			if (w < 0)
				return w;
			len += (size_t)w;
		}
		dpchan_put_header(out, type, n[0]);
		return (int)len;
	case DPCHAN_DURABLE:
		return dpchan_encode_durable(out, cap, ranges[0], n[0]);
	case DPCHAN_DOWN_ACK:
		return dpchan_encode_down_ack(out, cap, ranges[0], n[0]);
	case DPCHAN_RELEASE:
		return dpchan_encode_release(out, cap, origins[0], n[0]);
	case DPCHAN_HELD:
		return dpchan_encode_held(out, cap, origins[0], n[0]);
	default:
		if (dpchan_decode_held_end(in, in_len, &lcores) != 0)
			broken("a HELD_END taken once and refused the next time");
		return dpchan_encode_held_end(out, cap, lcores);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[DPCHAN_FRAME_MAX + 64];
	uint8_t type;
	uint32_t count;
	int rc, w;

	if (dpchan_frame_header(data, size, &type, &count) != 0)
		return 0;
	pass = 0;
	rc = decode(type, data, size);
	if (rc < 0) {
		if (-rc < DPCHAN_E_SHORT || -rc > DPCHAN_E_TOO_LARGE)
			broken("a refusal that is not a DPCHAN_E_*");
		if (n[0] != 0 && type != DPCHAN_HELLO && type != DPCHAN_HELD_END)
			broken("a frame refused after its callback saw a record");
		return 0;
	}
	if (n[0] > MAXN)
		return 0; /* more than this harness keeps: not compared */
	w = encode(type, data, size, out, sizeof(out));
	if (w < 0)
		broken("a frame taken whose contents do not encode again");
	pass = 1;
	if (decode(type, out, (size_t)w) != 0)
		broken("a frame encoded afresh is refused");
	if (n[1] != n[0])
		broken("a frame encoded afresh says a different count");
	for (unsigned i = 0; i < n[0]; i++) {
		bool same = true;

		if (type == DPCHAN_PUB || type == DPCHAN_DOWN)
			same = rec_same(&recs[0][i], &recs[1][i]);
		else if (type == DPCHAN_DURABLE || type == DPCHAN_DOWN_ACK)
			same = range_same(&ranges[0][i], &ranges[1][i]);
		else if (type == DPCHAN_RELEASE || type == DPCHAN_HELD)
			same = origin_same(&origins[0][i], &origins[1][i]);
		if (!same)
			broken("a frame encoded afresh says something else");
	}
	return 0;
}
