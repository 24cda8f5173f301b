/*
 * mqtt_cursor.c: reading a packet from a list of segments (an mbuf chain's data, or one flat
 * buffer) and writing one into a buffer that may be too small. Only fields that straddle a
 * segment boundary are copied, into the decoder's bounded scratch buffer.
 */
#include <string.h>

#include "mqtt_internal.h"

/* Skip exhausted and empty segments so c->seg/off names the next byte. */
static void
cur_settle(struct mqtt_cur *c)
{
	while (c->seg < c->niov && c->off >= c->iov[c->seg].len) {
		c->seg++;
		c->off = 0;
	}
}

void
mqtt_cur_init(struct mqtt_cur *c, const struct mqtt_iov *iov, size_t niov, struct mqtt_scratch *sc)
{
	c->iov = iov;
	c->niov = niov;
	c->seg = 0;
	c->off = 0;
	c->left = 0;
	c->sc = sc;
	cur_settle(c);
}

void *
mqtt_scratch_alloc(struct mqtt_scratch *sc, size_t size)
{
	uint32_t need = (uint32_t)((size + 7) & ~(size_t)7);

	if (size > UINT32_MAX / 2 || sc->back - sc->front < need)
		return NULL;
	sc->back = (sc->back - need) & ~7u;
	if (sc->back < sc->front)
		return NULL;
	return sc->base + sc->back;
}

int
mqtt_cur_bytes(struct mqtt_cur *c, uint32_t len, const uint8_t **out)
{
	uint8_t *dst;
	uint32_t done = 0;

	if (len > c->left)
		return -MQTT_E_TRUNCATED;
	c->left -= len;
	cur_settle(c);
	if (len == 0) {
		*out = (const uint8_t *)"";
		return 0;
	}
	if (c->iov[c->seg].len - c->off >= len) {
		*out = c->iov[c->seg].base + c->off;
		c->off += len;
		return 0;
	}
	if (c->sc->back - c->sc->front < len)
		return -MQTT_E_SCRATCH_FULL;
	dst = c->sc->base + c->sc->front;
	c->sc->front += len;
	while (done < len) {
		size_t n = c->iov[c->seg].len - c->off;

		if (n > len - done)
			n = len - done;
		memcpy(dst + done, c->iov[c->seg].base + c->off, n);
		done += (uint32_t)n;
		c->off += n;
		cur_settle(c);
	}
	*out = dst;
	return 0;
}

int
mqtt_cur_u8(struct mqtt_cur *c, uint8_t *out)
{
	if (c->left < 1)
		return -MQTT_E_TRUNCATED;
	c->left--;
	cur_settle(c);
	*out = c->iov[c->seg].base[c->off++];
	return 0;
}

int
mqtt_cur_u16(struct mqtt_cur *c, uint16_t *out)
{
	uint8_t hi, lo;
	int rc;

	if ((rc = mqtt_cur_u8(c, &hi)) != 0 || (rc = mqtt_cur_u8(c, &lo)) != 0)
		return rc;
	*out = (uint16_t)(hi << 8 | lo);
	return 0;
}

int
mqtt_cur_u32(struct mqtt_cur *c, uint32_t *out)
{
	uint16_t hi, lo;
	int rc;

	if ((rc = mqtt_cur_u16(c, &hi)) != 0 || (rc = mqtt_cur_u16(c, &lo)) != 0)
		return rc;
	*out = (uint32_t)hi << 16 | lo;
	return 0;
}

/* Variable Byte Integer inside a packet: at most 4 bytes, in the fewest bytes (5.0 1.5.5). */
int
mqtt_cur_vbi(struct mqtt_cur *c, uint32_t *out)
{
	uint32_t v = 0;
	uint8_t b;
	int rc;

	for (int i = 0; i < 4; i++) {
		if ((rc = mqtt_cur_u8(c, &b)) != 0)
			return rc;
		v |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0)
				return -MQTT_E_VBI_NONMINIMAL;
			*out = v;
			return 0;
		}
	}
	return -MQTT_E_VBI_TOO_LONG;
}

int
mqtt_cur_bin(struct mqtt_cur *c, struct mqtt_str *out)
{
	const uint8_t *p;
	uint16_t len;
	int rc;

	if ((rc = mqtt_cur_u16(c, &len)) != 0 || (rc = mqtt_cur_bytes(c, len, &p)) != 0)
		return rc;
	out->s = (const char *)p;
	out->len = len;
	return 0;
}

int
mqtt_cur_str(struct mqtt_cur *c, struct mqtt_str *out)
{
	int rc = mqtt_cur_bin(c, out);

	return rc != 0 ? rc : mqtt_utf8_check((const uint8_t *)out->s, out->len);
}

void
mqtt_wr_bytes(struct mqtt_wr *w, const void *p, size_t len)
{
	if (w->pos <= w->cap && len <= w->cap - w->pos && len > 0)
		memcpy(w->buf + w->pos, p, len);
	w->pos += len;
}

void
mqtt_wr_u8(struct mqtt_wr *w, uint8_t v)
{
	mqtt_wr_bytes(w, &v, 1);
}

void
mqtt_wr_u16(struct mqtt_wr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	mqtt_wr_bytes(w, b, 2);
}

void
mqtt_wr_u32(struct mqtt_wr *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	mqtt_wr_bytes(w, b, 4);
}

void
mqtt_wr_vbi(struct mqtt_wr *w, uint32_t v)
{
	do {
		uint8_t b = v & 0x7F;

		v >>= 7;
		mqtt_wr_u8(w, v ? (uint8_t)(b | 0x80) : b);
	} while (v);
}

void
mqtt_wr_str(struct mqtt_wr *w, struct mqtt_str s)
{
	mqtt_wr_u16(w, s.len);
	mqtt_wr_bytes(w, s.s, s.len);
}

size_t
mqtt_vbi_size(uint32_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* The rest of the packet (a PUBLISH payload) as a position, and as a pointer when contiguous;
 * consumed without copying. */
void
mqtt_cur_rest(struct mqtt_cur *c, struct mqtt_span *span, const uint8_t **flat)
{
	cur_settle(c);
	span->seg = (uint32_t)c->seg;
	span->off = (uint32_t)c->off;
	span->len = c->left;
	if (c->left == 0)
		*flat = (const uint8_t *)"";
	else if (c->iov[c->seg].len - c->off >= c->left)
		*flat = c->iov[c->seg].base + c->off;
	else
		*flat = NULL;
	c->left = 0;
}

size_t
mqtt_span_slices(const struct mqtt_iov *iov, size_t niov, const struct mqtt_span *span,
    struct mqtt_iov *out, size_t max)
{
	size_t n = 0, seg = span->seg, off = span->off;
	uint32_t left = span->len;

	while (left > 0 && seg < niov) {
		size_t take = iov[seg].len - off;

		if (take > left)
			take = left;
		if (take > 0) {
			if (n < max) {
				out[n].base = iov[seg].base + off;
				out[n].len = take;
			}
			n++;
			left -= (uint32_t)take;
		}
		seg++;
		off = 0;
	}
	return n;
}

/* Step over len bytes (the fixed header) without copying them. */
int
mqtt_cur_skip(struct mqtt_cur *c, uint32_t len)
{
	if (len > c->left)
		return -MQTT_E_TRUNCATED;
	c->left -= len;
	while (len > 0) {
		size_t n;

		cur_settle(c);
		n = c->iov[c->seg].len - c->off;
		if (n > len)
			n = len;
		c->off += n;
		len -= (uint32_t)n;
	}
	return 0;
}
