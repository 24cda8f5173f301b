/*
 * mqtt_utf8.c: the UTF-8 rules of MQTT strings (spec 1.5.4): well-formed UTF-8 (RFC 3629: no
 * overlong forms, nothing above U+10FFFF), no surrogates, no U+0000. Non-characters such as
 * U+FFFF and control characters are allowed: the spec says receivers MUST NOT reject them.
 */
#include "mqtt_codec.h"

/* Length of the sequence led by b, its minimum code point, and the lead's payload bits. */
static int utf8_lead(uint8_t b, uint32_t *cp, uint32_t *min)
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

int mqtt_utf8_check(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t cp, min;
		int n = utf8_lead(s[i], &cp, &min);

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
