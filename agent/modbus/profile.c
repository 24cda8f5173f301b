/*
 * profile.c: reads device profiles (register maps) with lib/conf and validates them whole:
 * types fit their table, points stay inside the 16-bit address space, no two points overlap
 * (bits of one register excepted), write limits make sense. Errors carry file:line:col.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "profile.h"
#include "report.h"

const char *const mb_func_names[] = { "coil", "discrete", "holding", "input", NULL };
const char *const mb_type_names[] = { "bool", "u16", "i16", "u32", "i32", "u64", "i64", "f32",
	"f64", "string", "bit", NULL };
static const char *const order_names[] = { "big", "little", NULL };
const char *const mb_addressing_names[] = { "zero", "one", "modicon", NULL };

bool
mb_name_valid(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == ':' ||
			*s == '-'))
			return false;
	return true;
}

uint16_t
mb_type_regs(enum mb_type t)
{
	switch (t) {
	case MB_T_U32:
	case MB_T_I32:
	case MB_T_F32:
		return 2;
	case MB_T_U64:
	case MB_T_I64:
	case MB_T_F64:
		return 4;
	default:
		return 1;
	}
}

bool
mb_func_is_bits(enum mb_func f)
{
	return f == MB_FN_COIL || f == MB_FN_DISCRETE;
}

/* Profile-level defaults a point inherits. */
struct point_defaults {
	int byte_order, word_order;
	uint32_t qos;
	double deadband;
	uint64_t heartbeat_ms;
	const char *topic;
	int addressing; /* enum mb_addressing */
	int write_single, bit_write;
	conf_node groups; /* groups: {name: interval}: a poll rate shared by points */
};

#define MB_INTERVAL_MIN_MS 10
#define MB_INTERVAL_MAX_MS 86400000ull

/* interval: (its own) or group: (a name from the profile's groups:), or neither (0). */
static int
parse_point_interval(conf_node pn, const struct point_defaults *d, struct mb_point *pt)
{
	const char *g = NULL;

	if (conf_present(conf_get(pn, "interval")) && conf_present(conf_get(pn, "group")))
		return conf_error(
		    conf_get(pn, "group"), "a point has an interval or a group, not both");
	if (conf_get_duration_ms(
		pn, "interval", 0, MB_INTERVAL_MIN_MS, MB_INTERVAL_MAX_MS, &pt->interval_ms) ||
	    conf_get_str(pn, "group", NULL, &g))
		return -1;
	if (g == NULL)
		return 0;
	if (!conf_present(d->groups) || !conf_present(conf_get(d->groups, g)))
		return conf_error(
		    conf_get(pn, "group"), "no group '%s' in the profile's groups", g);
	return conf_duration_ms(
	    conf_get(d->groups, g), MB_INTERVAL_MIN_MS, MB_INTERVAL_MAX_MS, &pt->interval_ms);
}
static const char *const write_single_names[] = { "single", "multiple", NULL };
static const char *const bit_write_names[] = { "read_modify_write", "mask", NULL };

/*
 * An address as the profile writes it into the protocol address (0..65535). zero: as is;
 * one: 1-based (register 1 is address 0); modicon: "40001"-style references, the table in the
 * leading digit (0 coil, 1 discrete, 3 input, 4 holding), 5 digits (40001..49999) or 6
 * (400001..465536). *func: the table of a modicon reference (-1 otherwise).
 */
static int
to_pdu(conf_node at, int addressing, uint32_t raw, int *func, uint16_t *out)
{
	static const int tables[10] = { MB_FN_COIL, MB_FN_DISCRETE, -1, MB_FN_INPUT, MB_FN_HOLDING,
		-1, -1, -1, -1, -1 };
	uint32_t lead, off;

	*func = -1;
	if (addressing == MB_ADDR_ZERO) {
		if (raw > 65535)
			return conf_error(at, "address %u is out of range (0..65535)", raw);
		*out = (uint16_t)raw;
		return 0;
	}
	if (addressing == MB_ADDR_ONE) {
		if (raw < 1 || raw > 65536)
			return conf_error(
			    at, "address %u is out of range (1-based: 1..65536)", raw);
		*out = (uint16_t)(raw - 1);
		return 0;
	}
	lead = raw >= 100000 ? raw / 100000 : raw / 10000;
	off = raw >= 100000 ? raw % 100000 : raw % 10000;
	if (lead > 9 || tables[lead] < 0 || off < 1 || off > 65536)
		return conf_error(at,
		    "reference %u is not a Modicon reference (0xxxx coil, 1xxxx discrete, 3xxxx "
		    "input, 4xxxx holding; 5 or 6 digits, from 1)",
		    raw);
	*func = tables[lead];
	*out = (uint16_t)(off - 1);
	return 0;
}

static void
copy_str(char *dst, size_t dstlen, const char *src)
{
	snprintf(dst, dstlen, "%s", src ? src : "");
}

static int
parse_point_type(conf_node pn, struct mb_point *pt, int ref_fn)
{
	int fn = ref_fn, ty = 0;
	uint32_t len = 0, bit = 0;
	int rc = 0;

	if (ref_fn < 0 || conf_present(conf_get(pn, "function")))
		rc |= conf_enum(conf_get(pn, "function"), mb_func_names, &fn);
	if (!conf_present(conf_get(pn, "type")))
		ty = mb_func_is_bits((enum mb_func)fn) ? MB_T_BOOL : MB_T_U16;
	else
		rc |= conf_enum(conf_get(pn, "type"), mb_type_names, &ty);
	if (rc)
		return -1;
	pt->func = (enum mb_func)fn;
	pt->type = (enum mb_type)ty;
	if (mb_func_is_bits(pt->func) && pt->type != MB_T_BOOL)
		return conf_error(conf_get(pn, "type"), "a %s point must be of type bool, not %s",
		    mb_func_names[fn], mb_type_names[ty]);
	pt->count = mb_type_regs(pt->type);
	if (pt->type == MB_T_STRING) {
		if (conf_get_u32(pn, "length", 0, 1, MB_STR_REGS_MAX, &len) || len == 0)
			return conf_error(pn, "a string point needs 'length' (registers, 1..%d)",
			    MB_STR_REGS_MAX);
		pt->count = (uint16_t)len;
	} else if (conf_present(conf_get(pn, "length"))) {
		return conf_error(conf_get(pn, "length"), "'length' is only for string points");
	}
	if (pt->type == MB_T_BIT) {
		if (!conf_present(conf_get(pn, "bit")))
			return conf_error(pn, "a bit point needs 'bit' (0..15)");
		if (conf_get_u32(pn, "bit", 0, 0, 15, &bit))
			return -1;
		pt->bit = (uint8_t)bit;
	} else if (conf_present(conf_get(pn, "bit"))) {
		return conf_error(conf_get(pn, "bit"), "'bit' is only for bit points");
	}
	return 0;
}

static int
parse_point_limits(conf_node pn, struct mb_point *pt)
{
	bool writable = false;

	if (conf_get_bool(pn, "writable", false, &writable))
		return -1;
	if (writable && (pt->func == MB_FN_DISCRETE || pt->func == MB_FN_INPUT))
		return conf_error(
		    conf_get(pn, "writable"), "%s points are read-only", mb_func_names[pt->func]);
	pt->writable = writable;
	pt->has_min = conf_present(conf_get(pn, "min"));
	pt->has_max = conf_present(conf_get(pn, "max"));
	if ((pt->has_min && conf_double(conf_get(pn, "min"), &pt->min)) ||
	    (pt->has_max && conf_double(conf_get(pn, "max"), &pt->max)))
		return -1;
	if (pt->has_min && pt->has_max && pt->min > pt->max)
		return conf_error(conf_get(pn, "min"), "min %g is above max %g", pt->min, pt->max);
	return 0;
}

/* A template must expand: only known {variables}, and not too long with long names. */
static int
check_topic(conf_node at, const char *tmpl)
{
	struct mb_topic_vars v = { "prefix", "bus", "device", "point", "profile", 255 };
	char out[MB_TOPIC_OUT_MAX];

	if (mb_topic_expand(tmpl, &v, out, sizeof(out)) < 0 || strpbrk(tmpl, "+#") != NULL)
		return conf_error(at,
		    "topic '%s' is not a valid template (variables: {prefix} {bus} "
		    "{device} {point} {profile} {unit_id}; no + or #)",
		    tmpl);
	return 0;
}

static int
parse_point(conf_node pn, const struct point_defaults *d, struct mb_point *pt)
{
	static const char *const keys[] = { "name", "function", "address", "type", "length", "bit",
		"byte_order", "word_order", "scale", "offset", "unit", "topic", "qos", "deadband",
		"heartbeat", "writable", "min", "max", "interval", "group", NULL };
	const char *name = NULL, *unit = NULL, *topic = NULL;
	uint32_t addr = 0, qos = 0;
	int bo = 0, wo = 0, ref_fn = -1;

	if (!conf_is_map(pn))
		return conf_error(pn, "a point must be a mapping");
	if (conf_check_keys(pn, keys))
		return -1;
	pt->line = conf_line(pn);
	if (!conf_present(conf_get(pn, "name")) || conf_get_str(pn, "name", NULL, &name))
		return conf_error(pn, "a point needs a 'name'");
	if (strlen(name) >= MB_NAME_MAX || !mb_name_valid(name))
		return conf_error(conf_get(pn, "name"),
		    "point name '%s': use at most %d letters, digits, _ . : -", name,
		    MB_NAME_MAX - 1);
	copy_str(pt->name, sizeof(pt->name), name);
	if (!conf_present(conf_get(pn, "address")))
		return conf_error(pn, "point '%s' needs an 'address'", name);
	if (conf_get_u32(pn, "address", 0, 0, 999999, &addr) ||
	    to_pdu(conf_get(pn, "address"), d->addressing, addr, &ref_fn, &pt->address))
		return -1;
	if (!conf_present(conf_get(pn, "function")) && ref_fn < 0)
		return conf_error(
		    pn, "point '%s' needs a 'function' (coil, discrete, holding, input)", name);
	if (parse_point_type(pn, pt, ref_fn))
		return -1;
	if (ref_fn >= 0 && (int)pt->func != ref_fn)
		return conf_error(conf_get(pn, "function"),
		    "point '%s': function %s does not match reference %u (%s)", name,
		    mb_func_names[pt->func], addr, mb_func_names[ref_fn]);
	addr = pt->address;
	if (addr + pt->count > 65536)
		return conf_error(conf_get(pn, "address"),
		    "point '%s' (%u registers at %u) runs past address 65535", name, pt->count,
		    addr);
	if (conf_get_enum(pn, "byte_order", d->byte_order, order_names, &bo) ||
	    conf_get_enum(pn, "word_order", d->word_order, order_names, &wo) ||
	    conf_get_double(pn, "scale", 1.0, &pt->scale) ||
	    conf_get_double(pn, "offset", 0.0, &pt->offset) ||
	    conf_get_str(pn, "unit", "", &unit) || conf_get_str(pn, "topic", d->topic, &topic) ||
	    conf_get_u32(pn, "qos", d->qos, 0, 1, &qos) ||
	    conf_get_double(pn, "deadband", d->deadband, &pt->deadband) ||
	    conf_get_duration_ms(
		pn, "heartbeat", d->heartbeat_ms, 0, 86400000ull, &pt->heartbeat_ms) ||
	    parse_point_limits(pn, pt) || parse_point_interval(pn, d, pt))
		return -1;
	if (pt->scale == 0.0)
		return conf_error(conf_get(pn, "scale"), "scale must not be 0");
	if (pt->deadband < 0)
		return conf_error(conf_get(pn, "deadband"), "deadband must not be negative");
	if (check_topic(conf_present(conf_get(pn, "topic")) ? conf_get(pn, "topic") : pn, topic) !=
	    0)
		return -1;
	for (const char *u = unit; *u; u++)
		if (*u == '"' || *u == '\\' || (unsigned char)*u < 0x20)
			return conf_error(conf_get(pn, "unit"),
			    "unit must not hold a quote, backslash or control character");
	if (strlen(unit) >= MB_UNIT_MAX || strlen(topic) >= MB_TOPIC_MAX)
		return conf_error(pn, "unit or topic of point '%s' is too long", name);
	pt->write_multiple = d->write_single == 1;
	pt->mask_write = d->bit_write == 1;
	pt->byte_swap = bo == 1;
	pt->word_swap = wo == 1;
	pt->qos = (uint8_t)qos;
	copy_str(pt->unit, sizeof(pt->unit), unit);
	copy_str(pt->topic, sizeof(pt->topic), topic);
	return 0;
}

static int
cmp_point_addr(const void *a, const void *b)
{
	const struct mb_point *const *x = a, *const *y = b;

	if ((*x)->func != (*y)->func)
		return (int)(*x)->func - (int)(*y)->func;
	return (int)(*x)->address - (int)(*y)->address;
}

/* Overlap is an error except two bit points in one register (a status word's flags). */
static int
check_overlaps(conf_node points, struct mb_profile *p)
{
	struct mb_point **s = calloc(p->npoints, sizeof(*s));
	int rc = 0;

	if (s == NULL)
		return conf_error(points, "out of memory");
	for (size_t i = 0; i < p->npoints; i++)
		s[i] = &p->points[i];
	qsort(s, p->npoints, sizeof(*s), cmp_point_addr);
	for (size_t i = 1; i < p->npoints && rc == 0; i++) {
		const struct mb_point *a = s[i - 1], *b = s[i];

		if (a->func != b->func || (uint32_t)a->address + a->count <= b->address)
			continue;
		if (a->type == MB_T_BIT && b->type == MB_T_BIT && a->address == b->address &&
		    a->bit != b->bit)
			continue;
		rc = conf_error(conf_seq_at(points, (size_t)(b - p->points)),
		    "point '%s' (%s %u) overlaps point '%s' (line %u)", b->name,
		    mb_func_names[b->func], b->address, a->name, a->line);
	}
	for (size_t i = 0; i < p->npoints && rc == 0; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->points[i].name, p->points[j].name) == 0) {
				rc = conf_error(conf_seq_at(points, i), "duplicate point name '%s'",
				    p->points[i].name);
				break;
			}
	free(s);
	return rc;
}

static int
parse_limits(conf_node root, struct mb_profile *p)
{
	uint32_t regs = 125, bits = 2000;
	int64_t gap = -1;

	if (conf_get_u32(root, "max_read_registers", 125, 1, 125, &regs) ||
	    conf_get_u32(root, "max_read_bits", 2000, 1, 2000, &bits))
		return -1;
	if (conf_present(conf_get(root, "max_gap")) &&
	    conf_i64(conf_get(root, "max_gap"), 0, 2000, &gap))
		return -1;
	p->max_read_regs = (uint16_t)regs;
	p->max_read_bits = (uint16_t)bits;
	p->max_gap = (int32_t)gap;
	return 0;
}

static int
parse_defaults(conf_node root, struct point_defaults *d)
{
	d->topic = "{prefix}/{device}/{point}";
	d->groups = conf_get(root, "groups");
	if (conf_present(d->groups) && !conf_is_map(d->groups))
		return conf_error(d->groups, "'groups' maps a name to an interval (fast: 200ms)");
	return conf_get_enum(root, "addressing", 0, mb_addressing_names, &d->addressing) ||
		conf_get_enum(root, "write_single", 0, write_single_names, &d->write_single) ||
		conf_get_enum(root, "bit_write", 0, bit_write_names, &d->bit_write) ||
		conf_get_enum(root, "byte_order", 0, order_names, &d->byte_order) ||
		conf_get_enum(root, "word_order", 0, order_names, &d->word_order) ||
		conf_get_u32(root, "qos", 0, 0, 1, &d->qos) ||
		conf_get_double(root, "deadband", 0.0, &d->deadband) ||
		conf_get_duration_ms(root, "heartbeat", 60000, 0, 86400000ull, &d->heartbeat_ms) ||
		conf_get_str(root, "topic", d->topic, &d->topic)
	    ? -1
	    : 0;
}

/* holes: [{function: holding, address: 20, count: 10}]: ranges the device does not serve; the
 * planner never reads through them. A point inside one is an error. */
static int
parse_hole(conf_node hn, int addressing, struct mb_profile *p, struct mb_hole *h)
{
	static const char *const keys[] = { "function", "address", "count", NULL };
	uint32_t addr = 0, count = 0;
	uint16_t pdu = 0;
	int fn = 0, ref_fn = -1;

	if (!conf_is_map(hn))
		return conf_error(hn, "a hole is a mapping {function, address, count}");
	if (conf_check_keys(hn, keys) || conf_get_u32(hn, "address", 0, 0, 999999, &addr) ||
	    conf_get_u32(hn, "count", 1, 1, 65535, &count))
		return -1;
	if (!conf_present(conf_get(hn, "address")))
		return conf_error(hn, "a hole needs an 'address'");
	if (to_pdu(conf_get(hn, "address"), addressing, addr, &ref_fn, &pdu))
		return -1;
	fn = ref_fn;
	if (ref_fn < 0 && !conf_present(conf_get(hn, "function")))
		return conf_error(hn, "a hole needs a 'function' (coil, discrete, holding, input)");
	if ((ref_fn < 0 || conf_present(conf_get(hn, "function"))) &&
	    conf_enum(conf_get(hn, "function"), mb_func_names, &fn))
		return -1;
	addr = pdu;
	if (addr + count > 65536)
		return conf_error(conf_get(hn, "count"), "hole runs past address 65535");
	*h = (struct mb_hole){ (enum mb_func)fn, (uint16_t)addr, (uint16_t)count };
	for (size_t i = 0; i < p->npoints; i++) {
		const struct mb_point *pt = &p->points[i];

		if (pt->func == h->func && pt->address < addr + count &&
		    addr < (uint32_t)pt->address + pt->count)
			return conf_error(hn, "hole %s %u+%u covers point '%s' (line %u)",
			    mb_func_names[fn], addr, count, pt->name, pt->line);
	}
	return 0;
}

static int
parse_holes(conf_node root, int addressing, struct mb_profile *p)
{
	conf_node hs = conf_get(root, "holes");

	if (!conf_present(hs))
		return 0;
	if (!conf_is_seq(hs))
		return conf_error(hs, "'holes' is a list of {function, address, count}");
	p->nholes = conf_seq_len(hs);
	p->holes = calloc(p->nholes ? p->nholes : 1, sizeof(*p->holes));
	if (p->holes == NULL)
		return conf_error(hs, "out of memory");
	for (size_t i = 0; i < p->nholes; i++)
		if (parse_hole(conf_seq_at(hs, i), addressing, p, &p->holes[i]))
			return -1;
	return 0;
}

static int
parse_root(conf_node root, const char *fallback_name, struct mb_profile *p)
{
	static const char *const keys[] = { "name", "description", "vendor", "model",
		"max_read_registers", "max_read_bits", "max_gap", "byte_order", "word_order", "qos",
		"deadband", "heartbeat", "topic", "points", "holes", "addressing", "write_single",
		"bit_write", "groups", NULL };
	struct point_defaults d;
	conf_node points;
	const char *name = NULL;
	int bad = 0;

	if (!conf_is_map(root))
		return conf_error(root, "a profile must be a mapping");
	if (conf_check_keys(root, keys) || conf_get_str(root, "name", fallback_name, &name) ||
	    parse_limits(root, p) || parse_defaults(root, &d))
		return -1;
	if (strlen(name) >= MB_NAME_MAX || !mb_name_valid(name))
		return conf_error(
		    conf_present(conf_get(root, "name")) ? conf_get(root, "name") : root,
		    "profile name '%s': use at most %d letters, digits, _ . : -", name,
		    MB_NAME_MAX - 1);
	copy_str(p->name, sizeof(p->name), name);
	points = conf_get(root, "points");
	if (!conf_is_seq(points) || conf_seq_len(points) == 0)
		return conf_error(conf_present(points) ? points : root,
		    "a profile needs a non-empty 'points' list");
	p->npoints = conf_seq_len(points);
	p->points = calloc(p->npoints, sizeof(*p->points));
	if (p->points == NULL)
		return conf_error(root, "out of memory");
	/* Every point is parsed, so each bad one is reported (its first error); the checks across
	 * points need them all good. */
	for (size_t i = 0; i < p->npoints; i++)
		bad |= parse_point(conf_seq_at(points, i), &d, &p->points[i]);
	if (bad)
		return -1;
	return check_overlaps(points, p) || parse_holes(root, d.addressing, p) ? -1 : 0;
}

static void
base_name(const char *path, char *out, size_t outlen)
{
	const char *b = strrchr(path, '/');
	char *dot;

	copy_str(out, outlen, b ? b + 1 : path);
	dot = strrchr(out, '.');
	if (dot != NULL)
		*dot = '\0';
}

static int
parse_doc(struct conf_doc *doc, const char *path, struct mb_profile *out, char *err, size_t errlen)
{
	char fallback[MB_NAME_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	base_name(path, fallback, sizeof(fallback));
	copy_str(out->path, sizeof(out->path), path);
	rc = parse_root(conf_root(doc), fallback, out);
	if (rc != 0 || conf_error_count(doc) != 0) {
		if (conf_error_count(doc) != 0)
			conf_format_errors(doc, err, errlen);
		else
			snprintf(err, errlen, "invalid profile");
		mb_profile_free(out);
		return -EINVAL;
	}
	return 0;
}

int
mb_profile_parse(const char *name, const char *text, size_t len, struct mb_profile *out, char *err,
    size_t errlen)
{
	struct conf_doc *doc;
	int rc;

	if (conf_load_string(name, text, len, &doc, err, errlen) != 0)
		return -EINVAL;
	rc = parse_doc(doc, name, out, err, errlen);
	conf_free(doc);
	return rc;
}

int
mb_profile_load(const char *path, struct mb_profile *out, char *err, size_t errlen)
{
	struct conf_doc *doc;
	int rc;

	if (conf_load_file(path, &doc, err, errlen) != 0)
		return -EINVAL;
	rc = parse_doc(doc, path, out, err, errlen);
	conf_free(doc);
	return rc;
}

void
mb_profile_free(struct mb_profile *p)
{
	free(p->points);
	free(p->holes);
	p->points = NULL;
	p->npoints = 0;
	p->holes = NULL;
	p->nholes = 0;
}

static bool
is_yaml_name(const char *n)
{
	size_t l = strlen(n);

	return n[0] != '.' &&
	    ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
		(l > 4 && strcmp(n + l - 4, ".yml") == 0));
}

static int
cmp_dirent(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
filter_yaml(const struct dirent *d)
{
	return is_yaml_name(d->d_name);
}

/* A file that does not load still has a name for the devices naming it: its name: key when the
 * YAML reads that far, else the file's name without .yaml (the parser's own default). */
static void
bad_profile_name(const char *path, char *out, size_t outlen)
{
	struct conf_doc *doc;
	const char *name = NULL;
	char err[64];

	base_name(path, out, outlen);
	if (conf_load_file(path, &doc, err, sizeof(err)) != 0)
		return;
	if (conf_is_map(conf_root(doc)) && conf_str(conf_get(conf_root(doc), "name"), &name) == 0 &&
	    mb_name_valid(name))
		copy_str(out, outlen, name);
	conf_free(doc);
}

static int
add_bad(struct mb_profile_set *set, const char *path, const char *name, const char *why)
{
	struct mb_profile_bad *v = realloc(set->bad, (set->nbad + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	set->bad = v;
	v = &set->bad[set->nbad++];
	memset(v, 0, sizeof(*v));
	copy_str(v->path, sizeof(v->path), path);
	if (name != NULL)
		copy_str(v->name, sizeof(v->name), name);
	else
		bad_profile_name(path, v->name, sizeof(v->name));
	copy_str(v->error, sizeof(v->error), why);
	return 0;
}

static int
add_profile(struct mb_profile_set *set, const char *path)
{
	struct mb_profile p, *v;
	const struct mb_profile *twin;
	char err[sizeof(set->bad->error)];

	if (mb_profile_load(path, &p, err, sizeof(err)) != 0)
		return add_bad(set, path, NULL, err);
	twin = mb_profile_find(set, p.name);
	if (twin != NULL) {
		snprintf(err, sizeof(err), "%s: profile name '%s' is used twice (also %s)", path,
		    p.name, twin->path);
		mb_profile_free(&p);
		return add_bad(set, path, twin->name, err);
	}
	v = realloc(set->v, (set->n + 1) * sizeof(*v));
	if (v == NULL) {
		mb_profile_free(&p);
		return -ENOMEM;
	}
	set->v = v;
	set->v[set->n++] = p;
	return 0;
}

int
mb_profile_dir_load_all(const char *dir, struct mb_profile_set *set, char *err, size_t errlen)
{
	struct dirent **names;
	int n, rc = 0;
	char path[512];

	memset(set, 0, sizeof(*set));
	n = scandir(dir, &names, filter_yaml, cmp_dirent);
	if (n < 0) {
		rc = -errno;
		snprintf(err, errlen, "profiles_dir %s: %s", dir, strerror(errno));
		return rc;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (rc == 0)
			rc = add_profile(set, path);
		free(names[i]);
	}
	free(names);
	if (rc != 0) {
		snprintf(err, errlen, "profiles_dir %s: %s", dir, strerror(-rc));
		mb_profile_set_free(set);
	}
	return rc;
}

int
mb_profile_set_errors(const struct mb_profile_set *set, char *buf, size_t len)
{
	size_t off = 0;

	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < set->nbad && off + 1 < len; i++) {
		int k = snprintf(buf + off, len - off, "%s%s", i ? "\n" : "", set->bad[i].error);

		if (k < 0)
			break;
		off += (size_t)k;
	}
	return (int)set->nbad;
}

int
mb_profile_dir_load(const char *dir, struct mb_profile_set *set, char *err, size_t errlen)
{
	int rc = mb_profile_dir_load_all(dir, set, err, errlen);

	if (rc != 0)
		return rc;
	if (set->nbad == 0)
		return 0;
	mb_profile_set_errors(set, err, errlen);
	mb_profile_set_free(set);
	return -EINVAL;
}

const struct mb_profile_bad *
mb_profile_find_bad(const struct mb_profile_set *set, const char *name)
{
	for (size_t i = 0; i < set->nbad; i++)
		if (strcmp(set->bad[i].name, name) == 0)
			return &set->bad[i];
	return NULL;
}

/* Points compared whole but for their line in the file (a comment added above changes no read). */
static bool
point_same(const struct mb_point *a, const struct mb_point *b)
{
	struct mb_point x = *a, y = *b;

	x.line = y.line = 0;
	return memcmp(&x, &y, sizeof(x)) == 0;
}

bool
mb_profile_same(const struct mb_profile *a, const struct mb_profile *b)
{
	if (strcmp(a->name, b->name) != 0 || a->max_read_regs != b->max_read_regs ||
	    a->max_read_bits != b->max_read_bits || a->max_gap != b->max_gap ||
	    a->npoints != b->npoints || a->nholes != b->nholes)
		return false;
	for (size_t i = 0; i < a->npoints; i++)
		if (!point_same(&a->points[i], &b->points[i]))
			return false;
	for (size_t i = 0; i < a->nholes; i++)
		if (a->holes[i].func != b->holes[i].func ||
		    a->holes[i].start != b->holes[i].start ||
		    a->holes[i].count != b->holes[i].count)
			return false;
	return true;
}

const struct mb_profile *
mb_profile_find(const struct mb_profile_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].name, name) == 0)
			return &set->v[i];
	return NULL;
}

const struct mb_point *
mb_profile_point(const struct mb_profile *p, const char *name, size_t *idx)
{
	for (size_t i = 0; i < p->npoints; i++)
		if (strcmp(p->points[i].name, name) == 0) {
			if (idx != NULL)
				*idx = i;
			return &p->points[i];
		}
	return NULL;
}

void
mb_profile_set_free(struct mb_profile_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		mb_profile_free(&set->v[i]);
	free(set->v);
	free(set->bad);
	set->v = NULL;
	set->n = 0;
	set->bad = NULL;
	set->nbad = 0;
}
