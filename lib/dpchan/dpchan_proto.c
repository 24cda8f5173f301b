/*
 * dpchan_proto.c: encode and decode the channel's frames (dpchan_proto.h). Decoding checks
 * every length against the frame before anything is handed on; nothing here allocates.
 */
#include "dpchan_proto.h"

#include <errno.h>
#include <string.h>

static const char *const err_names[] = {
	[0] = "ok",
	[DPCHAN_E_SHORT] = "frame shorter than its header",
	[DPCHAN_E_VERSION] = "unsupported version",
	[DPCHAN_E_TYPE] = "unexpected frame type",
	[DPCHAN_E_TRUNCATED] = "record runs past the end of the frame",
	[DPCHAN_E_TRAILING] = "bytes after the last record",
	[DPCHAN_E_FIELD] = "field out of range",
	[DPCHAN_E_TOO_LARGE] = "frame over DPCHAN_FRAME_MAX",
};

const char *
dpchan_strerror(int err)
{
	unsigned e = (unsigned)(err < 0 ? -err : err);

	return e < sizeof(err_names) / sizeof(err_names[0]) ? err_names[e] : "unknown error";
}

static inline void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static inline void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t
get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static inline uint64_t
get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

void
dpchan_put_header(uint8_t *buf, uint8_t type, uint32_t count)
{
	buf[0] = type;
	buf[1] = DPCHAN_VERSION;
	put16(buf + 2, 0);
	put32(buf + 4, count);
}

static bool
type_known(uint8_t t)
{
	switch (t) {
	case DPCHAN_HELLO:
	case DPCHAN_PUB:
	case DPCHAN_DURABLE:
	case DPCHAN_DOWN:
	case DPCHAN_RELEASE:
	case DPCHAN_DOWN_ACK:
	case DPCHAN_HELD:
	case DPCHAN_HELD_END:
		return true;
	default:
		return false;
	}
}

int
dpchan_frame_header(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *count)
{
	if (len > DPCHAN_FRAME_MAX)
		return -DPCHAN_E_TOO_LARGE;
	if (len < DPCHAN_HDR_LEN)
		return -DPCHAN_E_SHORT;
	if (buf[1] != DPCHAN_VERSION)
		return -DPCHAN_E_VERSION;
	if (!type_known(buf[0]) || get16(buf + 2) != 0)
		return -DPCHAN_E_TYPE;
	*type = buf[0];
	*count = get32(buf + 4);
	return 0;
}

int
dpchan_encode_hello(uint8_t *buf, size_t cap, const struct dpchan_hello *h)
{
	if (cap < DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN)
		return -E2BIG;
	dpchan_put_header(buf, DPCHAN_HELLO, 1);
	put64(buf + 8, h->boot_id);
	put32(buf + 16, h->lcore);
	put32(buf + 20, h->sw_version);
	put64(buf + 24, h->down_seen);
	return (int)(DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN);
}

int
dpchan_decode_hello(const uint8_t *buf, size_t len, struct dpchan_hello *h)
{
	uint8_t type;
	uint32_t count;
	int rc = dpchan_frame_header(buf, len, &type, &count);

	if (rc != 0)
		return rc;
	if (type != DPCHAN_HELLO)
		return -DPCHAN_E_TYPE;
	if (count != 1 || len < DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN)
		return len < DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN ? -DPCHAN_E_TRUNCATED
							       : -DPCHAN_E_FIELD;
	if (len > DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN)
		return -DPCHAN_E_TRAILING;
	h->boot_id = get64(buf + 8);
	h->lcore = get32(buf + 16);
	h->sw_version = get32(buf + 20);
	h->down_seen = get64(buf + 24);
	return 0;
}

static void
put_origin(uint8_t *p, const struct dpchan_origin *o)
{
	put64(p, o->boot_id);
	put32(p + 8, o->lcore);
	put64(p + 12, o->ref);
}

static void
get_origin(const uint8_t *p, struct dpchan_origin *o)
{
	o->boot_id = get64(p);
	o->lcore = get32(p + 8);
	o->ref = get64(p + 12);
}

int
dpchan_put_rec(uint8_t *buf, size_t cap, bool down, const struct dpchan_rec *r)
{
	bool orig = !down && r->has_origin;
	size_t hl =
	    (down ? DPCHAN_DOWN_HDR_LEN : DPCHAN_PUB_HDR_LEN) + (orig ? DPCHAN_ORIGIN_LEN : 0);
	size_t size = dpchan_rec_len(down, r);
	uint8_t *p = buf;

	if (r->qos > 2 || (orig && (r->qos != 2 || r->ref == 0)))
		return -EINVAL;
	if (size > cap || size > DPCHAN_FRAME_MAX - DPCHAN_HDR_LEN)
		return -E2BIG;
	put64(p, r->ref);
	p += 8;
	p[0] = r->qos;
	p[1] = (uint8_t)((r->retain ? DPCHAN_REC_RETAIN : 0) | (orig ? DPCHAN_REC_ORIGIN : 0));
	put16(p + 2, r->topic_len);
	put32(p + 4, r->payload_len);
	if (orig)
		put_origin(p + 8, &r->origin);
	memcpy(buf + hl, r->topic, r->topic_len);
	if (r->payload_len > 0)
		memcpy(buf + hl + r->topic_len, r->payload, r->payload_len);
	return (int)size;
}

/* One record at off; its size, or -DPCHAN_E_*. */
static int
rec_parse(const uint8_t *buf, size_t len, size_t off, bool down, struct dpchan_rec *r)
{
	size_t hl = down ? DPCHAN_DOWN_HDR_LEN : DPCHAN_PUB_HDR_LEN;
	uint8_t allowed = down ? DPCHAN_REC_RETAIN : DPCHAN_REC_RETAIN | DPCHAN_REC_ORIGIN;
	const uint8_t *p = buf + off;
	size_t size;

	if (len - off < hl)
		return -DPCHAN_E_TRUNCATED;
	r->ref = get64(p);
	p += 8;
	r->qos = p[0];
	r->retain = (p[1] & DPCHAN_REC_RETAIN) != 0;
	r->has_origin = (p[1] & DPCHAN_REC_ORIGIN) != 0;
	r->topic_len = get16(p + 2);
	r->payload_len = get32(p + 4);
	if (r->qos > 2 || (p[1] & ~allowed) != 0 || r->topic_len == 0 ||
	    (r->has_origin && (r->qos != 2 || r->ref == 0)))
		return -DPCHAN_E_FIELD;
	if (r->has_origin) {
		if (len - off < hl + DPCHAN_ORIGIN_LEN)
			return -DPCHAN_E_TRUNCATED;
		get_origin(p + 8, &r->origin);
		hl += DPCHAN_ORIGIN_LEN;
	}
	size = hl + (size_t)r->topic_len + r->payload_len;
	if (len - off < size) /* len <= DPCHAN_FRAME_MAX: no overflow */
		return -DPCHAN_E_TRUNCATED;
	r->topic = (const char *)buf + off + hl;
	r->payload = buf + off + hl + r->topic_len;
	return (int)size;
}

int
dpchan_decode_recs(const uint8_t *buf, size_t len, uint8_t want, dpchan_rec_fn fn, void *arg)
{
	bool down = want == DPCHAN_DOWN;
	struct dpchan_rec r;
	uint8_t type;
	uint32_t count;
	size_t off = DPCHAN_HDR_LEN;
	int rc = dpchan_frame_header(buf, len, &type, &count);

	if (rc != 0)
		return rc;
	if (type != want || (want != DPCHAN_PUB && want != DPCHAN_DOWN))
		return -DPCHAN_E_TYPE;
	for (uint32_t i = 0; i < count; i++) { /* check the whole frame first */
		if ((rc = rec_parse(buf, len, off, down, &r)) < 0)
			return rc;
		off += (size_t)rc;
	}
	if (off != len)
		return -DPCHAN_E_TRAILING;
	off = DPCHAN_HDR_LEN;
	for (uint32_t i = 0; i < count; i++) {
		off += (size_t)rec_parse(buf, len, off, down, &r);
		if ((rc = fn(arg, &r)) != 0)
			return rc;
	}
	return 0;
}

static int
encode_ranges(uint8_t *buf, size_t cap, uint8_t type, const struct dpchan_range *v, uint32_t n)
{
	size_t size = DPCHAN_HDR_LEN + (size_t)n * DPCHAN_RANGE_LEN;

	if (size > cap || size > DPCHAN_FRAME_MAX)
		return -E2BIG;
	dpchan_put_header(buf, type, n);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *p = buf + DPCHAN_HDR_LEN + (size_t)i * DPCHAN_RANGE_LEN;

		put64(p, v[i].first);
		put64(p + 8, v[i].last);
		put32(p + 16, (uint32_t)v[i].status);
	}
	return (int)size;
}

/* DURABLE or DOWN_ACK (max_status: the largest status the type allows). */
static int
decode_ranges(
    const uint8_t *buf, size_t len, uint8_t want, int32_t max_status, dpchan_range_fn fn, void *arg)
{
	uint8_t type;
	uint32_t count;
	int rc = dpchan_frame_header(buf, len, &type, &count);

	if (rc != 0)
		return rc;
	if (type != want)
		return -DPCHAN_E_TYPE;
	if ((len - DPCHAN_HDR_LEN) / DPCHAN_RANGE_LEN < count)
		return -DPCHAN_E_TRUNCATED;
	if (len != DPCHAN_HDR_LEN + (size_t)count * DPCHAN_RANGE_LEN)
		return -DPCHAN_E_TRAILING;
	for (uint32_t i = 0; i < count; i++) { /* checked whole first */
		const uint8_t *p = buf + DPCHAN_HDR_LEN + (size_t)i * DPCHAN_RANGE_LEN;

		if (get64(p) > get64(p + 8) || get64(p) == 0 || (int32_t)get32(p + 16) > max_status)
			return -DPCHAN_E_FIELD;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *p = buf + DPCHAN_HDR_LEN + (size_t)i * DPCHAN_RANGE_LEN;
		struct dpchan_range r = { get64(p), get64(p + 8), (int32_t)get32(p + 16) };

		fn(arg, &r);
	}
	return 0;
}

static int
encode_origins(uint8_t *buf, size_t cap, uint8_t type, const struct dpchan_origin *v, uint32_t n)
{
	size_t size = DPCHAN_HDR_LEN + (size_t)n * DPCHAN_ORIGIN_LEN;

	if (size > cap || size > DPCHAN_FRAME_MAX)
		return -E2BIG;
	dpchan_put_header(buf, type, n);
	for (uint32_t i = 0; i < n; i++)
		put_origin(buf + DPCHAN_HDR_LEN + (size_t)i * DPCHAN_ORIGIN_LEN, &v[i]);
	return (int)size;
}

static int
decode_origins(const uint8_t *buf, size_t len, uint8_t want, dpchan_origin_fn fn, void *arg)
{
	uint8_t type;
	uint32_t count;
	int rc = dpchan_frame_header(buf, len, &type, &count);

	if (rc != 0)
		return rc;
	if (type != want)
		return -DPCHAN_E_TYPE;
	if ((len - DPCHAN_HDR_LEN) / DPCHAN_ORIGIN_LEN < count)
		return -DPCHAN_E_TRUNCATED;
	if (len != DPCHAN_HDR_LEN + (size_t)count * DPCHAN_ORIGIN_LEN)
		return -DPCHAN_E_TRAILING;
	for (uint32_t i = 0; i < count; i++) { /* checked whole first */
		struct dpchan_origin o;

		get_origin(buf + DPCHAN_HDR_LEN + (size_t)i * DPCHAN_ORIGIN_LEN, &o);
		if (o.ref == 0)
			return -DPCHAN_E_FIELD;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct dpchan_origin o;

		get_origin(buf + DPCHAN_HDR_LEN + (size_t)i * DPCHAN_ORIGIN_LEN, &o);
		fn(arg, &o);
	}
	return 0;
}

int
dpchan_encode_release(uint8_t *buf, size_t cap, const struct dpchan_origin *v, uint32_t n)
{
	return encode_origins(buf, cap, DPCHAN_RELEASE, v, n);
}

int
dpchan_decode_release(const uint8_t *buf, size_t len, dpchan_origin_fn fn, void *arg)
{
	return decode_origins(buf, len, DPCHAN_RELEASE, fn, arg);
}

int
dpchan_encode_held(uint8_t *buf, size_t cap, const struct dpchan_origin *v, uint32_t n)
{
	return encode_origins(buf, cap, DPCHAN_HELD, v, n);
}

int
dpchan_decode_held(const uint8_t *buf, size_t len, dpchan_origin_fn fn, void *arg)
{
	return decode_origins(buf, len, DPCHAN_HELD, fn, arg);
}

int
dpchan_encode_held_end(uint8_t *buf, size_t cap, uint32_t lcores)
{
	if (cap < DPCHAN_HDR_LEN + DPCHAN_HELD_END_LEN)
		return -E2BIG;
	if (lcores == 0)
		return -EINVAL;
	dpchan_put_header(buf, DPCHAN_HELD_END, 1);
	put32(buf + DPCHAN_HDR_LEN, lcores);
	put32(buf + DPCHAN_HDR_LEN + 4, 0);
	return (int)(DPCHAN_HDR_LEN + DPCHAN_HELD_END_LEN);
}

int
dpchan_decode_held_end(const uint8_t *buf, size_t len, uint32_t *lcores)
{
	uint8_t type;
	uint32_t count;
	int rc = dpchan_frame_header(buf, len, &type, &count);

	if (rc != 0)
		return rc;
	if (type != DPCHAN_HELD_END)
		return -DPCHAN_E_TYPE;
	if (len < DPCHAN_HDR_LEN + DPCHAN_HELD_END_LEN)
		return -DPCHAN_E_TRUNCATED;
	if (len > DPCHAN_HDR_LEN + DPCHAN_HELD_END_LEN)
		return -DPCHAN_E_TRAILING;
	if (count != 1 || get32(buf + DPCHAN_HDR_LEN) == 0 || get32(buf + DPCHAN_HDR_LEN + 4) != 0)
		return -DPCHAN_E_FIELD;
	*lcores = get32(buf + DPCHAN_HDR_LEN);
	return 0;
}

int
dpchan_encode_durable(uint8_t *buf, size_t cap, const struct dpchan_range *v, uint32_t n)
{
	return encode_ranges(buf, cap, DPCHAN_DURABLE, v, n);
}

int
dpchan_decode_durable(const uint8_t *buf, size_t len, dpchan_range_fn fn, void *arg)
{
	return decode_ranges(buf, len, DPCHAN_DURABLE, 0, fn, arg);
}

int
dpchan_encode_down_ack(uint8_t *buf, size_t cap, const struct dpchan_range *v, uint32_t n)
{
	return encode_ranges(buf, cap, DPCHAN_DOWN_ACK, v, n);
}

int
dpchan_decode_down_ack(const uint8_t *buf, size_t len, dpchan_range_fn fn, void *arg)
{
	return decode_ranges(buf, len, DPCHAN_DOWN_ACK, 1, fn, arg);
}
