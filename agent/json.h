/*
 * json.h: the little JSON the agent needs: escaping strings for the messages it writes, and
 * reading flat command objects ({"key": string|number|true|false|null, ...}) from the cloud.
 * Nested values are rejected: a command that needs them is a malformed command.
 */
#ifndef EDGEGW_AGENT_JSON_H
#define EDGEGW_AGENT_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum json_kind {
	JSON_STR,
	JSON_NUM,
	JSON_BOOL,
	JSON_NULL
};

struct json_field {
	char key[32];
	enum json_kind kind;
	char str[128];
	double num;
	bool b;
};

#define JSON_MAX_FIELDS 16

struct json_flat {
	struct json_field f[JSON_MAX_FIELDS];
	size_t n;
};

/* 0, or -EINVAL with the reason and byte offset in err. */
int json_flat_parse(const char *s, size_t len, struct json_flat *out, char *err, size_t errlen);
const struct json_field *json_flat_get(const struct json_flat *o, const char *key);
/* Escape s into buf as a JSON string with quotes; returns length or -ENOSPC. */
int json_escape(const char *s, char *buf, size_t len);

#endif
