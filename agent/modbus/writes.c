/*
 * writes.c: parse and check write commands, encode the value per the profile (see writes.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "decode.h"
#include "writes.h"

/* A string member of o into dst: 0, or -EINVAL with the reason when it is missing (and
 * required), not a string, empty or too long. */
static int
copy_field(
    json_t *o, const char *key, char *dst, size_t dstlen, bool required, char *err, size_t errlen)
{
	json_t *f = json_object_get(o, key);

	if (f == NULL) {
		if (!required)
			return 0;
		snprintf(err, errlen, "missing \"%s\"", key);
		return -EINVAL;
	}
	if (!json_is_string(f) || json_string_length(f) >= dstlen || json_string_length(f) == 0 ||
	    memchr(json_string_value(f), '\0', json_string_length(f)) != NULL) {
		snprintf(err, errlen, "\"%s\" must be a non-empty string of less than %zu bytes",
		    key, dstlen);
		return -EINVAL;
	}
	memcpy(dst, json_string_value(f), json_string_length(f) + 1);
	return 0;
}

int
mb_write_parse(const char *payload, size_t len, struct mb_write_req *req, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o, *v;
	int rc = -EINVAL;

	memset(req, 0, sizeof(*req));
	o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		snprintf(err, errlen, "bad JSON at byte %d: %s", jerr.position, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "a command is a JSON object");
		goto out;
	}
	if (copy_field(o, "id", req->id, sizeof(req->id), false, err, errlen) ||
	    copy_field(o, "device", req->device, sizeof(req->device), true, err, errlen) ||
	    copy_field(o, "point", req->point, sizeof(req->point), true, err, errlen))
		goto out;
	v = json_object_get(o, "value");
	if (json_is_string(v)) {
		if (json_string_length(v) >= sizeof(req->str) ||
		    memchr(json_string_value(v), '\0', json_string_length(v)) != NULL) {
			snprintf(err, errlen, "\"value\": a string of at most %zu characters",
			    sizeof(req->str) - 1);
			goto out;
		}
		memcpy(req->str, json_string_value(v), json_string_length(v) + 1);
		req->is_str = true;
	} else if (json_is_integer(v)) {
		/* a double holds every integer up to 2^53 and only some beyond: one it would round
		 * is refused, not written as another value and read back "ok" */
		json_int_t iv = json_integer_value(v);
		double d = (double)iv;

		if (d >= 9223372036854775808.0 || (json_int_t)d != iv) {
			snprintf(err, errlen,
			    "\"value\" %lld cannot be written exactly (integers beyond 2^53 must "
			    "be "
			    "representable as a double)",
			    (long long)iv);
			goto out;
		}
		req->value = d;
	} else if (json_is_number(v))
		req->value = json_number_value(v);
	else if (json_is_boolean(v))
		req->value = json_is_true(v) ? 1.0 : 0.0;
	else {
		snprintf(err, errlen, "\"value\" must be a number, true/false or a string");
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int
mb_write_prepare(
    const struct mb_point *p, double value, struct mb_write_op *op, char *err, size_t errlen)
{
	memset(op, 0, sizeof(*op));
	if (!p->writable) {
		snprintf(err, errlen, "point '%s' is read-only", p->name);
		return -EPERM;
	}
	op->func = p->func;
	op->address = p->address;
	op->count = p->count;
	if (p->type == MB_T_STRING) {
		snprintf(
		    err, errlen, "point '%s' is a string: \"value\" must be a string", p->name);
		return -EINVAL;
	}
	if (p->func == MB_FN_COIL || p->type == MB_T_BOOL || p->type == MB_T_BIT) {
		if (value != 0.0 && value != 1.0) {
			snprintf(err, errlen, "value %g is not a boolean (0/1, false/true)", value);
			return -ERANGE;
		}
		op->coil = value != 0.0;
		op->regs[0] = op->coil;
		if (p->type == MB_T_BIT) {
			op->and_mask = (uint16_t) ~(1u << p->bit);
			op->or_mask = (uint16_t)((op->coil ? 1u : 0u) << p->bit);
			op->how = p->mask_write ? MB_WR_MASK : MB_WR_RMW;
			op->rmw_multiple = p->write_multiple;
		} else if (p->func == MB_FN_COIL) {
			op->how = p->write_multiple ? MB_WR_COILS : MB_WR_COIL;
		} else {
			op->how = p->write_multiple ? MB_WR_REGS : MB_WR_REG;
		}
		return 0;
	}
	op->how = p->count == 1 && !p->write_multiple ? MB_WR_REG : MB_WR_REGS;
	return mb_encode_regs(p, value, op->regs, err, errlen);
}

int
mb_write_prepare_req(const struct mb_point *p, const struct mb_write_req *req,
    struct mb_write_op *op, char *err, size_t errlen)
{
	if (!req->is_str)
		return mb_write_prepare(p, req->value, op, err, errlen);
	memset(op, 0, sizeof(*op));
	if (!p->writable) {
		snprintf(err, errlen, "point '%s' is read-only", p->name);
		return -EPERM;
	}
	if (p->type != MB_T_STRING) {
		snprintf(
		    err, errlen, "point '%s' is not a string: \"value\" must be a number", p->name);
		return -EINVAL;
	}
	op->func = p->func;
	op->address = p->address;
	op->count = p->count;
	op->how = MB_WR_REGS;
	return mb_encode_string(p, req->str, op->regs, err, errlen);
}

int
mb_write_response(char *buf, size_t len, const struct mb_write_req *req, bool ok,
    const char *reason, const char *value_json)
{
	size_t n = 0, vn = value_json != NULL ? strlen(value_json) : 0;
	json_t *o;

	o = json_pack("{s:s, s:s, s:s, s:s}", "id", req->id, "device", req->device, "point",
	    req->point, "status", ok ? "ok" : "error");
	if (o == NULL)
		return -EINVAL; /* a field that is not UTF-8 */
	if (reason == NULL || json_object_set_new(o, "reason", json_string(reason)) == 0)
		n = json_dumpb(o, buf, len, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (n == 0)
		return -EINVAL;
	/* value_json is already JSON (mb_value_json): spliced in as written, before the '}' */
	if (vn > 0) {
		if (n + vn + 9 > len)
			return -ENOSPC;
		n--;
		memcpy(buf + n, ",\"value\":", 9);
		memcpy(buf + n + 9, value_json, vn);
		n += 9 + vn;
		buf[n++] = '}';
	}
	if (n >= len)
		return -ENOSPC;
	buf[n] = '\0';
	return (int)n;
}
