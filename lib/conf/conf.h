/*
 * conf.h: the YAML config reader every edgegw program uses (libyaml's document API underneath).
 * A file is loaded whole into a node tree that keeps each node's line and column, so every
 * rejection names file:line:column and the reason. Programs parse the tree into their own
 * config struct, validate that struct whole, and only then swap it for the running one.
 *
 * Error handling: every accessor that fails records "file:line:col: reason" in the document
 * (the first 32 are kept, later ones counted) and returns -1, so a parser goes on and reports
 * every error at the end. Loading already records duplicate keys. Integers are decimal or 0x
 * hexadecimal; a leading zero is an error (never octal). conf_error() lets a program add its own semantic errors the same way.
 */
#ifndef EDGEGW_CONF_H
#define EDGEGW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf_doc;

/* A node of a loaded document; id 0 means "absent" (a missing key). Cheap to copy. */
typedef struct conf_node {
	struct conf_doc *doc;
	int id;
} conf_node;

int conf_load_file(const char *path, struct conf_doc **out, char *err, size_t errlen);
int conf_load_string(const char *name, const char *text, size_t len, struct conf_doc **out,
    char *err, size_t errlen);
void conf_free(struct conf_doc *doc);

conf_node conf_root(struct conf_doc *doc);
const char *conf_file(const struct conf_doc *doc);
/* First error recorded ("file:line:col: reason"), or NULL; count of all errors recorded. */
const char *conf_first_error(const struct conf_doc *doc);
unsigned conf_error_count(const struct conf_doc *doc);
/* Every error recorded, one "file:line:col: reason" per line (the first 32), or NULL. */
const char *conf_errors(const struct conf_doc *doc);
/* All errors into buf (cut at a whole line, with a note, when buf is short); snprintf's return. */
int conf_format_errors(const struct conf_doc *doc, char *buf, size_t len);
int conf_error(conf_node at, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
unsigned conf_line(conf_node n);
/* "file:line:col" of a node, as errors name it (for a program's own warnings); snprintf's return. */
int conf_where(conf_node n, char *buf, size_t len);

static inline bool
conf_present(conf_node n)
{
	return n.id != 0;
}
bool conf_is_map(conf_node n);
bool conf_is_seq(conf_node n);
bool conf_is_scalar(conf_node n);

/* Maps. conf_get on a non-map records an error and returns absent. */
conf_node conf_get(conf_node map, const char *key);
size_t conf_map_len(conf_node map);
const char *conf_map_key(conf_node map, size_t i);
conf_node conf_map_val(conf_node map, size_t i);
/* Records an error for each key not in allowed (NULL-terminated); returns -1 if any. */
int conf_check_keys(conf_node map, const char *const *allowed);

/* Sequences. */
size_t conf_seq_len(conf_node seq);
conf_node conf_seq_at(conf_node seq, size_t i);

/* Scalars: return 0 or -1 (error recorded, *out untouched). */
int conf_str(conf_node n, const char **out);
int conf_u64(conf_node n, uint64_t min, uint64_t max, uint64_t *out);
int conf_u32(conf_node n, uint32_t min, uint32_t max, uint32_t *out);
int conf_i64(conf_node n, int64_t min, int64_t max, int64_t *out);
int conf_double(conf_node n, double *out);
int conf_bool(conf_node n, bool *out);
int conf_ipv4(conf_node n, uint32_t *out_be);                       /* dotted quad, network order */
int conf_ipv4_prefix(conf_node n, uint32_t *addr_be, uint8_t *len); /* a.b.c.d/len */
int conf_duration_ms(
    conf_node n, uint64_t min, uint64_t max, uint64_t *out); /* 250ms, 5s, 2m, 1h, bare = ms */
int conf_size_bytes(conf_node n, uint64_t min, uint64_t max, uint64_t *out); /* 512, 64k, 16M, 1G */
/* Index of the scalar's value in names (NULL-terminated), or -1 with an error listing them. */
int conf_enum(conf_node n, const char *const *names, int *out);

/* Optional keys: absent leaves *out at def and returns 0. */
int conf_get_str(conf_node map, const char *key, const char *def, const char **out);
int conf_get_u64(
    conf_node map, const char *key, uint64_t def, uint64_t min, uint64_t max, uint64_t *out);
int conf_get_u32(
    conf_node map, const char *key, uint32_t def, uint32_t min, uint32_t max, uint32_t *out);
int conf_get_bool(conf_node map, const char *key, bool def, bool *out);
int conf_get_double(conf_node map, const char *key, double def, double *out);
int conf_get_duration_ms(
    conf_node map, const char *key, uint64_t def, uint64_t min, uint64_t max, uint64_t *out);
int conf_get_size_bytes(
    conf_node map, const char *key, uint64_t def, uint64_t min, uint64_t max, uint64_t *out);
int conf_get_enum(conf_node map, const char *key, int def, const char *const *names, int *out);

#endif
