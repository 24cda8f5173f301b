/*
 * decode.c: register images to typed values and back. Registers arrive from libmodbus as host
 * uint16_t holding the wire's big-endian pair; we lay them out as the byte string the device
 * meant (after undoing its byte and word order) and read that big-endian.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

/* Registers to the big-endian byte string, undoing word order then byte order. */
static void
regs_to_bytes(const struct mb_point *p, const uint16_t *regs, uint16_t n, uint8_t *b)
{
	for (uint16_t i = 0; i < n; i++) {
		uint16_t r = regs[p->word_swap ? n - 1 - i : i];

		b[2 * i] = p->byte_swap ? (uint8_t)r : (uint8_t)(r >> 8);
		b[2 * i + 1] = p->byte_swap ? (uint8_t)(r >> 8) : (uint8_t)r;
	}
}

static void
bytes_to_regs(const struct mb_point *p, const uint8_t *b, uint16_t n, uint16_t *regs)
{
	for (uint16_t i = 0; i < n; i++) {
		uint16_t r = p->byte_swap ? (uint16_t)(b[2 * i] | b[2 * i + 1] << 8)
					  : (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);

		regs[p->word_swap ? n - 1 - i : i] = r;
	}
}

static uint64_t
be_uint(const uint8_t *b, unsigned nbytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < nbytes; i++)
		v = v << 8 | b[i];
	return v;
}

static void
set_int(const struct mb_point *p, struct mb_value *v, bool is_unsigned, uint64_t u, int64_t s)
{
	v->kind = MB_V_NUM;
	v->is_unsigned = is_unsigned;
	v->uval = u;
	v->ival = s;
	v->num = (is_unsigned ? (double)u : (double)s) * p->scale + p->offset;
	v->exact = p->scale == 1.0 && p->offset == 0.0;
}

static void
set_float(const struct mb_point *p, struct mb_value *v, double raw)
{
	v->kind = MB_V_NUM;
	v->exact = false;
	v->num = raw * p->scale + p->offset;
}

static void
decode_string(const struct mb_point *p, const uint8_t *b, struct mb_value *v)
{
	size_t n = 2u * p->count, len = 0;

	v->kind = MB_V_STR;
	for (size_t i = 0; i < n && b[i] != '\0'; i++)
		v->str[len++] = (b[i] >= 0x20 && b[i] < 0x7f) ? (char)b[i] : '?';
	while (len > 0 && v->str[len - 1] == ' ')
		len--;
	v->str[len] = '\0';
}

void
mb_decode_regs(const struct mb_point *p, const uint16_t *regs, struct mb_value *v)
{
	uint8_t b[2 * MB_STR_REGS_MAX];
	uint64_t u;
	float f;
	double d;

	memset(v, 0, sizeof(*v));
	regs_to_bytes(p, regs, p->count, b);
	u = be_uint(b, 2u * p->count > 8 ? 8 : 2u * p->count);
	switch (p->type) {
	case MB_T_BOOL:
		set_int(p, v, true, regs[0] != 0, 0);
		v->exact = true;
		break;
	case MB_T_BIT:
		set_int(p, v, true, (regs[0] >> p->bit) & 1u, 0);
		v->exact = true;
		break;
	case MB_T_U16:
	case MB_T_U32:
	case MB_T_U64:
		set_int(p, v, true, u, 0);
		break;
	case MB_T_I16:
		set_int(p, v, false, 0, (int16_t)u);
		break;
	case MB_T_I32:
		set_int(p, v, false, 0, (int32_t)u);
		break;
	case MB_T_I64:
		set_int(p, v, false, 0, (int64_t)u);
		break;
	case MB_T_F32: {
		uint32_t w = (uint32_t)u;
		memcpy(&f, &w, 4);
		set_float(p, v, f);
		break;
	}
	case MB_T_F64:
		memcpy(&d, &u, 8);
		set_float(p, v, d);
		break;
	case MB_T_STRING:
		decode_string(p, b, v);
		break;
	default:
		break;
	}
}

void
mb_decode_bit(const struct mb_point *p, uint8_t bit, struct mb_value *v)
{
	memset(v, 0, sizeof(*v));
	set_int(p, v, true, bit != 0, 0);
	v->num = bit != 0;
	v->exact = true;
}

static int
int_range(enum mb_type t, double *lo, double *hi)
{
	switch (t) {
	case MB_T_BOOL:
	case MB_T_BIT:
		*lo = 0;
		*hi = 1;
		return 0;
	case MB_T_U16:
		*lo = 0;
		*hi = 65535.0;
		return 0;
	case MB_T_I16:
		*lo = -32768.0;
		*hi = 32767.0;
		return 0;
	case MB_T_U32:
		*lo = 0;
		*hi = 4294967295.0;
		return 0;
	case MB_T_I32:
		*lo = -2147483648.0;
		*hi = 2147483647.0;
		return 0;
	/* 2^64 and 2^63 are exact doubles; the bounds exclude them. */
	case MB_T_U64:
		*lo = 0;
		*hi = 18446744073709549568.0;
		return 0;
	case MB_T_I64:
		*lo = -9223372036854775808.0;
		*hi = 9223372036854774784.0;
		return 0;
	default:
		return -1;
	}
}

static int
raw_to_bytes(const struct mb_point *p, double raw, uint8_t *b, char *err, size_t errlen)
{
	double lo, hi;
	uint64_t u;

	if (!isfinite(raw)) { /* (value - offset) / scale overflowed */
		snprintf(err, errlen, "raw value out of range (scale %g)", p->scale);
		return -ERANGE;
	}
	if (p->type == MB_T_F32) {
		float f = (float)raw;
		uint32_t w;

		if (isinf(f)) {
			snprintf(err, errlen, "value does not fit a 32-bit float");
			return -ERANGE;
		}
		memcpy(&w, &f, 4);
		u = w;
	} else if (p->type == MB_T_F64) {
		memcpy(&u, &raw, 8);
	} else {
		if (int_range(p->type, &lo, &hi) != 0)
			return -EINVAL;
		raw = nearbyint(raw);
		if (raw < lo || raw > hi) {
			snprintf(err, errlen, "raw value %.0f is outside the %s range [%.0f, %.0f]",
			    raw, mb_type_names[p->type], lo, hi);
			return -ERANGE;
		}
		u = raw < 0 ? (uint64_t)(int64_t)raw : (uint64_t)raw;
	}
	for (unsigned i = 0; i < 2u * p->count; i++)
		b[i] = (uint8_t)(u >> (8 * (2u * p->count - 1 - i)));
	return 0;
}

int
mb_encode_regs(const struct mb_point *p, double value, uint16_t *regs, char *err, size_t errlen)
{
	uint8_t b[8];
	double raw;
	int rc;

	if (!isfinite(value)) {
		snprintf(err, errlen, "value is not a finite number");
		return -EINVAL;
	}
	if ((p->has_min && value < p->min) || (p->has_max && value > p->max)) {
		snprintf(err, errlen, "value %g is outside [%g, %g]", value,
		    p->has_min ? p->min : -INFINITY, p->has_max ? p->max : INFINITY);
		return -ERANGE;
	}
	if (p->type == MB_T_STRING) {
		snprintf(err, errlen, "string points cannot be written");
		return -EINVAL;
	}
	if (p->type == MB_T_BIT) {
		snprintf(err, errlen, "bit-in-register points are written as the whole register");
		return -EINVAL;
	}
	raw = (value - p->offset) / p->scale;
	rc = raw_to_bytes(p, raw, b, err, errlen);
	if (rc == 0)
		bytes_to_regs(p, b, p->count, regs);
	return rc;
}

int
mb_encode_string(const struct mb_point *p, const char *s, uint16_t *regs, char *err, size_t errlen)
{
	uint8_t b[2 * MB_STR_REGS_MAX] = { 0 };
	size_t n = strlen(s);

	if (n > 2u * p->count) {
		snprintf(
		    err, errlen, "string of %zu characters does not fit %u registers", n, p->count);
		return -ERANGE;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) {
			snprintf(err, errlen, "strings are written as printable ASCII");
			return -EINVAL;
		}
		b[i] = (uint8_t)s[i];
	}
	bytes_to_regs(p, b, p->count, regs);
	return 0;
}

bool
mb_value_within(const struct mb_value *a, const struct mb_value *b, double deadband)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == MB_V_STR)
		return strcmp(a->str, b->str) == 0;
	if (a->exact && b->exact && deadband == 0)
		return a->is_unsigned ? a->uval == b->uval : a->ival == b->ival;
	if (isnan(a->num) || isnan(b->num))
		return isnan(a->num) && isnan(b->num);
	return fabs(a->num - b->num) <= deadband;
}

static int
json_str(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	if (len < 3)
		return -ENOSPC;
	buf[o++] = '"';
	for (; *s && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[o++] = '\\';
		buf[o++] = *s;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return (int)o;
}

/* The shortest text that reads back as the same number (as float for f32 points, so 21.3
 * prints as 21.3, not 21.2999992370605). A scaled value (raw * scale + offset) carries the
 * rounding of that product, not information: 1807 * 0.1 prints as 180.7, not
 * 180.70000000000002, by accepting a text within a few units in the last place. Exponent form
 * only for numbers too large or too small for plain digits (%g writes 10 at one digit as 1e+01). */
static int
shortest(char *buf, size_t len, double v, bool as_float, bool scaled)
{
	int n = 0;

	for (int prec = as_float ? 6 : (scaled ? 1 : 15); prec <= 17; prec++) {
		double back;

		n = snprintf(buf, len, "%.*g", prec, v);
		if (strchr(buf, 'e') != NULL && fabs(v) >= 1.0 && fabs(v) < 1e15 && prec < 17)
			continue;
		back = strtod(buf, NULL);
		if (as_float ? (float)back == (float)v
			     : back == v || (scaled && fabs(back - v) <= 4 * DBL_EPSILON * fabs(v)))
			break;
	}
	return n;
}

int
mb_value_json(const struct mb_point *p, const struct mb_value *v, char *buf, size_t len)
{
	if (v->kind == MB_V_STR)
		return json_str(v->str, buf, len);
	if (p->type == MB_T_BOOL || p->type == MB_T_BIT)
		return snprintf(buf, len, "%s", v->uval ? "true" : "false");
	if (v->exact)
		return v->is_unsigned ? snprintf(buf, len, "%llu", (unsigned long long)v->uval)
				      : snprintf(buf, len, "%lld", (long long)v->ival);
	if (!isfinite(v->num))
		return snprintf(buf, len, "null"); /* JSON has no NaN; quality says why */
	return shortest(buf, len, v->num,
	    p->type == MB_T_F32 && p->scale == 1.0 && p->offset == 0.0,
	    p->scale != 1.0 || p->offset != 0.0);
}
