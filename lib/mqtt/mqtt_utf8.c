/*
 * mqtt_utf8.c: the UTF-8 rules of MQTT strings (spec 1.5.4): well-formed UTF-8 (RFC 3629: no
 * overlong forms, nothing above U+10FFFF), no surrogates, no U+0000. Non-characters such as
 * U+FFFF and control characters are allowed: the spec says receivers MUST NOT reject them.
 */
#include <string.h>

#include "mqtt_codec.h"

/* Length of the sequence led by b, its minimum code point, and the lead's payload bits. */
static int
utf8_lead(uint8_t b, uint32_t *cp, uint32_t *min)
{
	if (b < 0x80) {
		*cp = b;
		*min = 0;
		return 1;
	}
	if ((b & 0xE0) == 0xC0) {
		*cp = b & 0x1F;
		*min = 0x80;
		return 2;
	}
	if ((b & 0xF0) == 0xE0) {
		*cp = b & 0x0F;
		*min = 0x800;
		return 3;
	}
	if ((b & 0xF8) == 0xF0) {
		*cp = b & 0x07;
		*min = 0x10000;
		return 4;
	}
	return -1;
}

int
mqtt_utf8_check(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t cp, min;
		int n;

		if (len - i >= 8) {
			/* the common case, a topic in ASCII: 8 bytes at a time, none 0 or >= 0x80
			 * (b - 1 borrows only from a 0 byte, and sets the high bit for 0 and >= 0x81) */
			uint64_t v;

			memcpy(&v, s + i, 8);
			if (((v | (v - 0x0101010101010101ull)) & 0x8080808080808080ull) == 0) {
				i += 8;
				continue;
			}
		}
		n = utf8_lead(s[i], &cp, &min);

		if (n < 0 || (size_t)n > len - i)
			return -MQTT_E_UTF8_MALFORMED;
		for (int k = 1; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return -MQTT_E_UTF8_MALFORMED;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF)
			return -MQTT_E_UTF8_MALFORMED;
		if (cp >= 0xD800 && cp <= 0xDFFF)
			return -MQTT_E_UTF8_SURROGATE;
		if (cp == 0)
			return -MQTT_E_UTF8_NUL;
		i += (size_t)n;
	}
	return 0;
}

/*
 * Payload with payload format indicator 1 (spec 3.3.2.3.2): "UTF-8 Encoded Character Data",
 * i.e. well-formed UTF-8 per RFC 3629, U+0000 allowed (the no-NUL rule is for UTF-8 strings).
 * Validated byte by byte so that characters may straddle segments.
 */
struct utf8_stream {
	uint32_t cp, min;
	int need;
};

static int
utf8_feed(struct utf8_stream *st, const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (st->need == 0) {
			int n = utf8_lead(s[i], &st->cp, &st->min);

			if (n < 0)
				return -MQTT_E_PAYLOAD_FORMAT;
			st->need = n - 1;
		} else {
			if ((s[i] & 0xC0) != 0x80)
				return -MQTT_E_PAYLOAD_FORMAT;
			st->cp = (st->cp << 6) | (s[i] & 0x3F);
			st->need--;
		}
		if (st->need == 0 &&
		    (st->cp < st->min || st->cp > 0x10FFFF ||
			(st->cp >= 0xD800 && st->cp <= 0xDFFF)))
			return -MQTT_E_PAYLOAD_FORMAT;
	}
	return 0;
}

int
mqtt_payload_utf8_check(const struct mqtt_iov *iov, size_t niov, const struct mqtt_span *span)
{
	struct utf8_stream st = { 0, 0, 0 };
	size_t seg = span->seg, off = span->off;
	uint32_t left = span->len;
	int rc;

	while (left > 0 && seg < niov) {
		size_t n = iov[seg].len - off;

		if (n > left)
			n = left;
		if ((rc = utf8_feed(&st, iov[seg].base + off, n)) != 0)
			return rc;
		left -= (uint32_t)n;
		seg++;
		off = 0;
	}
	return left == 0 && st.need == 0 ? 0 : -MQTT_E_PAYLOAD_FORMAT;
}
