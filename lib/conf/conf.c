/* conf.c: YAML loading and typed accessors with file:line errors; see conf.h. */
#include "conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct conf_doc {
	yaml_document_t ydoc;
	char *file;
	char first_error[512];
	unsigned nerrors;
	char *errors; /* every error recorded, one per line (up to CONF_MAX_ERRORS) */
	size_t errors_len;
};

/* Errors kept in full; later ones are only counted (a file with more has bigger problems). */
#define CONF_MAX_ERRORS 32

static yaml_node_t *
node_of(conf_node n)
{
	if (n.doc == NULL || n.id == 0)
		return NULL;
	return yaml_document_get_node(&n.doc->ydoc, n.id);
}

static int verror(conf_node at, const char *fmt, va_list ap);
static void
error_at(struct conf_doc *doc, int id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
error_at(struct conf_doc *doc, int id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror((conf_node){ doc, id }, fmt, ap);
	va_end(ap);
}

/*
 * YAML leaves duplicate keys to the application, and a first-wins lookup would silently
 * ignore the second one: every duplicate is an error naming both lines.
 */
static void
check_duplicates(struct conf_doc *doc)
{
	yaml_node_t *n;

	for (n = doc->ydoc.nodes.start; n < doc->ydoc.nodes.top; n++) {
		yaml_node_pair_t *a, *b;

		if (n->type != YAML_MAPPING_NODE)
			continue;
		for (a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
			yaml_node_t *ka = yaml_document_get_node(&doc->ydoc, a->key);

			if (ka == NULL || ka->type != YAML_SCALAR_NODE)
				continue;
			for (b = n->data.mapping.pairs.start; b < a; b++) {
				yaml_node_t *kb = yaml_document_get_node(&doc->ydoc, b->key);

				if (kb != NULL && kb->type == YAML_SCALAR_NODE &&
				    strcmp((const char *)ka->data.scalar.value,
					(const char *)kb->data.scalar.value) == 0) {
					error_at(doc, a->key,
					    "duplicate key '%s' (first at line %zu): remove one",
					    (const char *)ka->data.scalar.value,
					    kb->start_mark.line + 1);
					break;
				}
			}
		}
	}
}

static int
load(yaml_parser_t *p, const char *name, struct conf_doc **out, char *err, size_t errlen)
{
	struct conf_doc *doc = calloc(1, sizeof(*doc));

	if (doc == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	if (!yaml_parser_load(p, &doc->ydoc)) {
		snprintf(err, errlen, "%s:%zu:%zu: %s%s%s", name, p->problem_mark.line + 1,
		    p->problem_mark.column + 1, p->problem ? p->problem : "parse error",
		    p->context ? " " : "", p->context ? p->context : "");
		free(doc);
		return -1;
	}
	if (yaml_document_get_root_node(&doc->ydoc) == NULL) {
		snprintf(err, errlen, "%s:1:1: empty document", name);
		yaml_document_delete(&doc->ydoc);
		free(doc);
		return -1;
	}
	doc->file = strdup(name);
	check_duplicates(doc);
	*out = doc;
	return 0;
}

int
conf_load_file(const char *path, struct conf_doc **out, char *err, size_t errlen)
{
	yaml_parser_t p;
	FILE *f = fopen(path, "rb");
	int rc;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	rc = load(&p, path, out, err, errlen);
	yaml_parser_delete(&p);
	fclose(f);
	return rc;
}

int
conf_load_string(
    const char *name, const char *text, size_t len, struct conf_doc **out, char *err, size_t errlen)
{
	yaml_parser_t p;
	int rc;

	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	rc = load(&p, name, out, err, errlen);
	yaml_parser_delete(&p);
	return rc;
}

void
conf_free(struct conf_doc *doc)
{
	if (doc == NULL)
		return;
	yaml_document_delete(&doc->ydoc);
	free(doc->file);
	free(doc->errors);
	free(doc);
}

conf_node
conf_root(struct conf_doc *doc)
{
	yaml_node_t *r = yaml_document_get_root_node(&doc->ydoc);

	return (conf_node){ doc, r ? (int)(r - doc->ydoc.nodes.start) + 1 : 0 };
}

const char *
conf_file(const struct conf_doc *doc)
{
	return doc->file;
}
const char *
conf_first_error(const struct conf_doc *doc)
{
	return doc->nerrors ? doc->first_error : NULL;
}
unsigned
conf_error_count(const struct conf_doc *doc)
{
	return doc->nerrors;
}
const char *
conf_errors(const struct conf_doc *doc)
{
	if (doc->nerrors == 0)
		return NULL;
	/* the list could not grow (out of memory) at the first error: that one is kept apart */
	return doc->errors != NULL ? doc->errors : doc->first_error;
}

int
conf_format_errors(const struct conf_doc *doc, char *buf, size_t len)
{
	int n;

	if (doc->nerrors == 0)
		return snprintf(buf, len, "no error");
	if (doc->nerrors > CONF_MAX_ERRORS)
		n = snprintf(buf, len, "%s\n(%u more errors not shown)", conf_errors(doc),
		    doc->nerrors - CONF_MAX_ERRORS);
	else
		n = snprintf(buf, len, "%s", conf_errors(doc));
	/* Cut at the last whole line when the caller's buffer is short. */
	if (n > 0 && (size_t)n >= len && len > 1) {
		char *nl = strrchr(buf, '\n');

		if (nl != NULL)
			snprintf(nl, len - (size_t)(nl - buf), "\n(more errors not shown)");
	}
	return n;
}

unsigned
conf_line(conf_node n)
{
	yaml_node_t *y = node_of(n);

	return y ? (unsigned)y->start_mark.line + 1 : 0;
}

int
conf_where(conf_node n, char *buf, size_t len)
{
	yaml_node_t *y = node_of(n);
	const char *file = n.doc && n.doc->file ? n.doc->file : "(config)";

	return snprintf(buf, len, "%s:%zu:%zu", file, y ? y->start_mark.line + 1 : 1,
	    y ? y->start_mark.column + 1 : 1);
}

static int
verror(conf_node at, const char *fmt, va_list ap)
{
	struct conf_doc *doc = at.doc;
	int n;

	char line[sizeof(doc->first_error)];
	size_t l;
	char *e;

	if (doc == NULL)
		return -1;
	if (doc->nerrors++ >= CONF_MAX_ERRORS)
		return -1;
	n = conf_where(at, line, sizeof(line));
	if (n > 0 && (size_t)n + 2 < sizeof(line)) {
		memcpy(line + n, ": ", 3);
		vsnprintf(line + n + 2, sizeof(line) - (size_t)n - 2, fmt, ap);
	}
	if (doc->nerrors == 1)
		memcpy(doc->first_error, line, sizeof(line));
	l = strlen(line);
	e = realloc(doc->errors, doc->errors_len + l + 2);
	if (e == NULL)
		return -1;
	if (doc->errors_len)
		e[doc->errors_len++] = '\n';
	memcpy(e + doc->errors_len, line, l + 1);
	doc->errors = e;
	doc->errors_len += l;
	return -1;
}

int
conf_error(conf_node at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(at, fmt, ap);
	va_end(ap);
	return -1;
}

bool
conf_is_map(conf_node n)
{
	yaml_node_t *y = node_of(n);
	return y && y->type == YAML_MAPPING_NODE;
}
bool
conf_is_seq(conf_node n)
{
	yaml_node_t *y = node_of(n);
	return y && y->type == YAML_SEQUENCE_NODE;
}
bool
conf_is_scalar(conf_node n)
{
	yaml_node_t *y = node_of(n);
	return y && y->type == YAML_SCALAR_NODE;
}

static const char *
scalar(conf_node n)
{
	yaml_node_t *y = node_of(n);

	return (y && y->type == YAML_SCALAR_NODE) ? (const char *)y->data.scalar.value : NULL;
}

conf_node
conf_get(conf_node map, const char *key)
{
	yaml_node_t *y = node_of(map);
	yaml_node_pair_t *p;

	if (y == NULL)
		return (conf_node){ map.doc, 0 };
	if (y->type != YAML_MAPPING_NODE) {
		conf_error(map, "expected a mapping (looking for '%s')", key);
		return (conf_node){ map.doc, 0 };
	}
	for (p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++) {
		const char *k = scalar((conf_node){ map.doc, p->key });

		if (k != NULL && strcmp(k, key) == 0)
			return (conf_node){ map.doc, p->value };
	}
	return (conf_node){ map.doc, 0 };
}

size_t
conf_map_len(conf_node map)
{
	yaml_node_t *y = node_of(map);

	if (y == NULL || y->type != YAML_MAPPING_NODE)
		return 0;
	return (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start);
}

const char *
conf_map_key(conf_node map, size_t i)
{
	yaml_node_t *y = node_of(map);

	if (i >= conf_map_len(map))
		return NULL;
	return scalar((conf_node){ map.doc, y->data.mapping.pairs.start[i].key });
}

conf_node
conf_map_val(conf_node map, size_t i)
{
	yaml_node_t *y = node_of(map);

	if (i >= conf_map_len(map))
		return (conf_node){ map.doc, 0 };
	return (conf_node){ map.doc, y->data.mapping.pairs.start[i].value };
}

int
conf_check_keys(conf_node map, const char *const *allowed)
{
	yaml_node_t *y = node_of(map);
	int rc = 0;

	if (y == NULL)
		return 0;
	if (y->type != YAML_MAPPING_NODE)
		return conf_error(map, "expected a mapping");
	for (size_t i = 0; i < conf_map_len(map); i++) {
		const char *k = conf_map_key(map, i);
		const char *const *a;

		for (a = allowed; *a != NULL; a++)
			if (k != NULL && strcmp(*a, k) == 0)
				break;
		if (*a == NULL) {
			conf_node kn = { map.doc, y->data.mapping.pairs.start[i].key };

			rc = conf_error(kn, "unknown key '%s'", k ? k : "(non-scalar)");
		}
	}
	return rc;
}

size_t
conf_seq_len(conf_node seq)
{
	yaml_node_t *y = node_of(seq);

	if (y == NULL || y->type != YAML_SEQUENCE_NODE)
		return 0;
	return (size_t)(y->data.sequence.items.top - y->data.sequence.items.start);
}

conf_node
conf_seq_at(conf_node seq, size_t i)
{
	yaml_node_t *y = node_of(seq);

	if (i >= conf_seq_len(seq))
		return (conf_node){ seq.doc, 0 };
	return (conf_node){ seq.doc, y->data.sequence.items.start[i] };
}

int
conf_str(conf_node n, const char **out)
{
	const char *s = scalar(n);

	if (s == NULL)
		return conf_error(n, "expected a string");
	*out = s;
	return 0;
}

/* Parses an unsigned number with an optional suffix from units[] (multipliers). */
static int
parse_scaled(
    const char *s, const char *const *units, const uint64_t *mult, uint64_t bare, uint64_t *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0 || v < 0 || !isfinite(v))
		return -1;
	while (*end == ' ')
		end++;
	if (*end == '\0') {
		v *= (double)bare;
	} else {
		unsigned i;

		for (i = 0; units[i] != NULL; i++)
			if (strcmp(end, units[i]) == 0)
				break;
		if (units[i] == NULL)
			return -1;
		v *= (double)mult[i];
	}
	if (v > 1.8e19)
		return -1;
	*out = (uint64_t)(v + 0.5);
	return 0;
}

/*
 * Decimal, or hexadecimal with 0x. A leading zero is refused: strtoull and YAML 1.1 would read
 * "010" as octal 8, which no one writing a port or a register count means.
 */
static int
int_base(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		return 16;
	if (s[0] == '0' && s[1] != '\0')
		return -1;
	return 10;
}

int
conf_u64(conf_node n, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *s = scalar(n);
	char *end;
	unsigned long long v;

	if (s == NULL)
		return conf_error(n, "expected an unsigned integer");
	if (int_base(s) < 0) {
		const char *t = s + strspn(s, "0");

		return conf_error(n, "'%s' has a leading zero (octal is not accepted): write %s", s,
		    *t ? t : "0");
	}
	errno = 0;
	v = strtoull(s, &end, int_base(s));
	if (*s == '-' || end == s || *end != '\0' || errno != 0)
		return conf_error(n, "'%s' is not an unsigned integer", s);
	if (v < min || v > max)
		return conf_error(
		    n, "%llu is out of range [%" PRIu64 ", %" PRIu64 "]", v, min, max);
	*out = v;
	return 0;
}

int
conf_i64(conf_node n, int64_t min, int64_t max, int64_t *out)
{
	const char *s = scalar(n);
	char *end;
	long long v;

	if (s == NULL)
		return conf_error(n, "expected an integer");
	if (int_base(s) < 0)
		return conf_error(n, "'%s' has a leading zero (octal is not accepted)", s);
	errno = 0;
	v = strtoll(s, &end, int_base(s));
	if (end == s || *end != '\0' || errno != 0)
		return conf_error(n, "'%s' is not an integer", s);
	if (v < min || v > max)
		return conf_error(
		    n, "%lld is out of range [%" PRId64 ", %" PRId64 "]", v, min, max);
	*out = v;
	return 0;
}

int
conf_double(conf_node n, double *out)
{
	const char *s = scalar(n);
	char *end;
	double v;

	if (s == NULL)
		return conf_error(n, "expected a number");
	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
		return conf_error(n, "'%s' is not a number", s);
	*out = v;
	return 0;
}

int
conf_bool(conf_node n, bool *out)
{
	static const char *const t[] = { "true", "yes", "on", "1", NULL };
	static const char *const f[] = { "false", "no", "off", "0", NULL };
	const char *s = scalar(n);

	if (s != NULL) {
		for (unsigned i = 0; t[i]; i++)
			if (strcmp(s, t[i]) == 0) {
				*out = true;
				return 0;
			}
		for (unsigned i = 0; f[i]; i++)
			if (strcmp(s, f[i]) == 0) {
				*out = false;
				return 0;
			}
	}
	return conf_error(n, "expected true or false");
}

int
conf_ipv4(conf_node n, uint32_t *out_be)
{
	const char *s = scalar(n);
	struct in_addr a;

	if (s == NULL || inet_pton(AF_INET, s, &a) != 1)
		return conf_error(n, "'%s' is not an IPv4 address", s ? s : "");
	*out_be = a.s_addr;
	return 0;
}

int
conf_ipv4_prefix(conf_node n, uint32_t *addr_be, uint8_t *len)
{
	const char *s = scalar(n);
	char buf[64], *slash, *end;
	struct in_addr a;
	unsigned long l;

	if (s == NULL || strlen(s) >= sizeof(buf))
		return conf_error(n, "expected an IPv4 prefix (a.b.c.d/len)");
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash == NULL)
		return conf_error(n, "'%s' has no /length", s);
	*slash++ = '\0';
	l = strtoul(slash, &end, 10);
	if (inet_pton(AF_INET, buf, &a) != 1 || *slash == '\0' || *end != '\0' || l > 32)
		return conf_error(n, "'%s' is not an IPv4 prefix", s);
	*addr_be = a.s_addr;
	*len = (uint8_t)l;
	return 0;
}

int
conf_duration_ms(conf_node n, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char *const units[] = { "us", "ms", "s", "m", "h", "d", NULL };
	static const uint64_t mult_us[] = { 1, 1000, 1000000, 60000000, 3600000000ULL,
		86400000000ULL };
	const char *s = scalar(n);
	uint64_t us;

	if (s == NULL || parse_scaled(s, units, mult_us, 1000, &us) != 0)
		return conf_error(n, "'%s' is not a duration (e.g. 250ms, 5s, 2m, 1h)", s ? s : "");
	us = (us + 500) / 1000;
	if (us < min || us > max)
		return conf_error(
		    n, "duration %s is out of range [%" PRIu64 "ms, %" PRIu64 "ms]", s, min, max);
	*out = us;
	return 0;
}

int
conf_size_bytes(conf_node n, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char *const units[] = { "k", "K", "KiB", "m", "M", "MiB", "g", "G", "GiB",
		NULL };
	static const uint64_t mult[] = { 1ULL << 10, 1ULL << 10, 1ULL << 10, 1ULL << 20, 1ULL << 20,
		1ULL << 20, 1ULL << 30, 1ULL << 30, 1ULL << 30 };
	const char *s = scalar(n);
	uint64_t v;

	if (s == NULL || parse_scaled(s, units, mult, 1, &v) != 0)
		return conf_error(n, "'%s' is not a size (e.g. 4096, 64k, 16M, 1G)", s ? s : "");
	if (v < min || v > max)
		return conf_error(
		    n, "size %s is out of range [%" PRIu64 ", %" PRIu64 "] bytes", s, min, max);
	*out = v;
	return 0;
}

int
conf_enum(conf_node n, const char *const *names, int *out)
{
	const char *s = scalar(n);
	char list[256] = "";

	if (s != NULL)
		for (int i = 0; names[i] != NULL; i++)
			if (strcmp(s, names[i]) == 0) {
				*out = i;
				return 0;
			}
	for (int i = 0; names[i] != NULL; i++) {
		strncat(list, names[i], sizeof(list) - strlen(list) - 1);
		if (names[i + 1] != NULL)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
	}
	return conf_error(n, "'%s' is not one of: %s", s ? s : "", list);
}

#define GET_OPT(body)                     \
	conf_node v = conf_get(map, key); \
	if (!conf_present(v)) {           \
		*out = def;               \
		return 0;                 \
	}                                 \
	return body

int
conf_get_str(conf_node map, const char *key, const char *def, const char **out)
{
	GET_OPT(conf_str(v, out));
}
int
conf_get_u64(
    conf_node map, const char *key, uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
{
	GET_OPT(conf_u64(v, min, max, out));
}
int
conf_get_bool(conf_node map, const char *key, bool def, bool *out)
{
	GET_OPT(conf_bool(v, out));
}
int
conf_get_double(conf_node map, const char *key, double def, double *out)
{
	GET_OPT(conf_double(v, out));
}
int
conf_get_duration_ms(
    conf_node map, const char *key, uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
{
	GET_OPT(conf_duration_ms(v, min, max, out));
}
int
conf_get_size_bytes(
    conf_node map, const char *key, uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
{
	GET_OPT(conf_size_bytes(v, min, max, out));
}
int
conf_get_enum(conf_node map, const char *key, int def, const char *const *names, int *out)
{
	GET_OPT(conf_enum(v, names, out));
}

int
conf_u32(conf_node n, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (conf_u64(n, min, max, &v) != 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int
conf_get_u32(
    conf_node map, const char *key, uint32_t def, uint32_t min, uint32_t max, uint32_t *out)
{
	GET_OPT(conf_u32(v, min, max, out));
}
