/*
 * json.c: a strict reader for flat JSON objects and a string escaper (see json.h). Input comes
 * from the network, so every length is bounded and every byte is checked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct cur {
	const char *s, *end;
	char *err;
	size_t errlen;
	const char *start;
};

static int
fail(struct cur *c, const char *why)
{
	snprintf(c->err, c->errlen, "bad JSON at byte %zu: %s", (size_t)(c->s - c->start), why);
	return -EINVAL;
}

static void
skip_ws(struct cur *c)
{
	while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
		c->s++;
}

static int
parse_string(struct cur *c, char *out, size_t outlen)
{
	size_t o = 0;

	if (c->s >= c->end || *c->s != '"')
		return fail(c, "expected a string");
	c->s++;
	while (c->s < c->end && *c->s != '"') {
		char ch = *c->s++;

		if ((unsigned char)ch < 0x20)
			return fail(c, "control character in string");
		if (ch == '\\') {
			if (c->s >= c->end)
				return fail(c, "unterminated escape");
			ch = *c->s++;
			switch (ch) {
			case '"':
			case '\\':
			case '/':
				break;
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			default:
				return fail(c, "unsupported escape");
			}
		}
		if (o + 1 >= outlen)
			return fail(c, "string too long");
		out[o++] = ch;
	}
	if (c->s >= c->end)
		return fail(c, "unterminated string");
	c->s++;
	out[o] = '\0';
	return 0;
}

static int
parse_number(struct cur *c, double *out)
{
	char buf[64], *endp;
	size_t n = 0;

	while (c->s + n < c->end && n < sizeof(buf) - 1 && strchr("+-0123456789.eE", c->s[n]))
		n++;
	if (n == 0)
		return fail(c, "expected a value");
	memcpy(buf, c->s, n);
	buf[n] = '\0';
	*out = strtod(buf, &endp);
	if (*endp != '\0')
		return fail(c, "malformed number");
	c->s += n;
	return 0;
}

static int
match_word(struct cur *c, const char *w)
{
	size_t l = strlen(w);

	if ((size_t)(c->end - c->s) < l || memcmp(c->s, w, l) != 0)
		return 0;
	c->s += l;
	return 1;
}

static int
parse_value(struct cur *c, struct json_field *f)
{
	if (c->s >= c->end)
		return fail(c, "expected a value");
	if (*c->s == '"') {
		f->kind = JSON_STR;
		return parse_string(c, f->str, sizeof(f->str));
	}
	if (*c->s == '{' || *c->s == '[')
		return fail(c, "nested values are not accepted");
	if (match_word(c, "true") || match_word(c, "false")) {
		f->kind = JSON_BOOL;
		f->b = c->s[-1] == 'e' && c->s[-2] == 'u';
		f->num = f->b;
		return 0;
	}
	if (match_word(c, "null")) {
		f->kind = JSON_NULL;
		return 0;
	}
	f->kind = JSON_NUM;
	return parse_number(c, &f->num);
}

int
json_flat_parse(const char *s, size_t len, struct json_flat *out, char *err, size_t errlen)
{
	struct cur c = { s, s + len, err, errlen, s };

	memset(out, 0, sizeof(*out));
	skip_ws(&c);
	if (c.s >= c.end || *c.s++ != '{')
		return fail(&c, "expected an object");
	skip_ws(&c);
	if (c.s < c.end && *c.s == '}') {
		c.s++;
		goto done;
	}
	for (;;) {
		struct json_field *f;

		if (out->n == JSON_MAX_FIELDS)
			return fail(&c, "too many fields");
		f = &out->f[out->n++];
		skip_ws(&c);
		if (parse_string(&c, f->key, sizeof(f->key)))
			return -EINVAL;
		skip_ws(&c);
		if (c.s >= c.end || *c.s++ != ':')
			return fail(&c, "expected ':'");
		skip_ws(&c);
		if (parse_value(&c, f))
			return -EINVAL;
		skip_ws(&c);
		if (c.s < c.end && *c.s == ',') {
			c.s++;
			continue;
		}
		if (c.s < c.end && *c.s == '}') {
			c.s++;
			break;
		}
		return fail(&c, "expected ',' or '}'");
	}
done:
	skip_ws(&c);
	if (c.s != c.end)
		return fail(&c, "trailing bytes after the object");
	return 0;
}

const struct json_field *
json_flat_get(const struct json_flat *o, const char *key)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->f[i].key, key) == 0)
			return &o->f[i];
	return NULL;
}

int
json_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	if (len < 3)
		return -ENOSPC;
	buf[o++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (o + 8 >= len)
			return -ENOSPC;
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(buf + o, len - o, "\\u%04x", ch);
		} else {
			buf[o++] = (char)ch;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return (int)o;
}
