/*
 * writes.c: parse and check write commands, encode the value per the profile (see writes.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "decode.h"
#include "json.h"
#include "writes.h"

static int
copy_field(const struct json_flat *o, const char *key, char *dst, size_t dstlen, bool required,
    char *err, size_t errlen)
{
	const struct json_field *f = json_flat_get(o, key);

	if (f == NULL) {
		if (!required)
			return 0;
		snprintf(err, errlen, "missing \"%s\"", key);
		return -EINVAL;
	}
	if (f->kind != JSON_STR || strlen(f->str) >= dstlen || f->str[0] == '\0') {
		snprintf(err, errlen, "\"%s\" must be a non-empty string of less than %zu bytes",
		    key, dstlen);
		return -EINVAL;
	}
	memcpy(dst, f->str, strlen(f->str) + 1);
	return 0;
}

int
mb_write_parse(const char *payload, size_t len, struct mb_write_req *req, char *err, size_t errlen)
{
	struct json_flat o;
	const struct json_field *v;

	memset(req, 0, sizeof(*req));
	if (json_flat_parse(payload, len, &o, err, errlen) != 0)
		return -EINVAL;
	if (copy_field(&o, "id", req->id, sizeof(req->id), false, err, errlen) ||
	    copy_field(&o, "device", req->device, sizeof(req->device), true, err, errlen) ||
	    copy_field(&o, "point", req->point, sizeof(req->point), true, err, errlen))
		return -EINVAL;
	v = json_flat_get(&o, "value");
	if (v == NULL || (v->kind != JSON_NUM && v->kind != JSON_BOOL)) {
		snprintf(err, errlen, "\"value\" must be a number or true/false");
		return -EINVAL;
	}
	req->value = v->num;
	return 0;
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
	if (p->func == MB_FN_COIL || p->type == MB_T_BOOL) {
		if (value != 0.0 && value != 1.0) {
			snprintf(err, errlen, "value %g is not a boolean (0/1, false/true)", value);
			return -ERANGE;
		}
		op->coil = value != 0.0;
		op->regs[0] = op->coil;
		return 0;
	}
	return mb_encode_regs(p, value, op->regs, err, errlen);
}

int
mb_write_response(char *buf, size_t len, const struct mb_write_req *req, bool ok,
    const char *reason, const char *value_json)
{
	char id[160], dev[128], pt[128], why[400] = "";
	int n;

	if (json_escape(req->id, id, sizeof(id)) < 0 ||
	    json_escape(req->device, dev, sizeof(dev)) < 0 ||
	    json_escape(req->point, pt, sizeof(pt)) < 0)
		return -ENOSPC;
	if (reason != NULL) {
		memcpy(why, ",\"reason\":", 10);
		if (json_escape(reason, why + 10, sizeof(why) - 10) < 0)
			return -ENOSPC;
	}
	n = snprintf(buf, len, "{\"id\":%s,\"device\":%s,\"point\":%s,\"status\":\"%s\"%s%s%s}", id,
	    dev, pt, ok ? "ok" : "error", why, value_json ? ",\"value\":" : "",
	    value_json ? value_json : "");
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}
