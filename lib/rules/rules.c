/*
 * rules.c: the `uplink:` section's rules (rules.h): parsed with lib/conf, every error recorded
 * as file:line:col and none stopping the others; matching with lib/mqtt's filter rules; the
 * cloud topic rendered from the rule's template.
 */
#include "rules.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"
#include "rules_internal.h"

static const char *const uplink_keys[] = { "site", "rules", "downlink", "spool", "drain", NULL };
static const char *const rule_keys[] = { "match", "topic", "qos", "class", "durable", NULL };
static const char *const qos_names[] = { "0", "1", "2", "keep", NULL };
static const char *const class_names[] = { "alarm", "normal", "bulk", NULL };

const char *
rules_class_name(enum rules_class cls)
{
	return cls < RULES_CLASS_N ? class_names[cls] : "?";
}

/* Literal text, {site} and {topic}; wildcards are not allowed in the literal part. */
int
rules_check_template(conf_node at, const char *t, bool have_site)
{
	for (const char *p = t; *p; p++) {
		if (*p == '+' || *p == '#')
			return conf_error(at, "topic template must not hold '+' or '#'");
		if (*p == '}')
			return conf_error(at, "topic template: '}' without '{'");
		if (*p != '{')
			continue;
		if (strncmp(p, "{topic}", 7) == 0) {
			p += 6;
		} else if (strncmp(p, "{site}", 6) == 0) {
			if (!have_site)
				return conf_error(
				    at, "topic template uses {site} but uplink.site is not set");
			p += 5;
		} else {
			return conf_error(at,
			    "topic template: unknown placeholder at '%.20s' "
			    "(known: {site}, {topic})",
			    p);
		}
	}
	if (t[0] == '\0')
		return conf_error(at, "topic template must not be empty");
	return 0;
}

char *
rules_dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

static int
parse_rule(conf_node n, const struct rules *r, struct rule *ru)
{
	const char *match = NULL, *tmpl = "{topic}";
	int qos = 3, cls = RULES_NORMAL, rc;

	if (!conf_is_map(n))
		return conf_error(
		    n, "a rule must be a mapping (match, topic, qos, class, durable)");
	rc = conf_check_keys(n, rule_keys);
	ru->line = conf_line(n);
	if (!conf_present(conf_get(n, "match")))
		rc = conf_error(n, "a rule needs 'match' (an MQTT topic filter)");
	else if (conf_get_str(n, "match", NULL, &match) < 0)
		rc = -1;
	else if (mqtt_topic_filter_valid(match, strlen(match)) != 0 ||
	    strncmp(match, "$share/", 7) == 0)
		rc = conf_error(conf_get(n, "match"),
		    "match '%s' is not a valid MQTT topic filter ('+' a whole level, '#' the last)",
		    match);
	if (conf_get_str(n, "topic", tmpl, &tmpl) < 0 ||
	    rules_check_template(conf_get(n, "topic"), tmpl, r->site[0] != '\0') < 0)
		rc = -1;
	if (conf_get_enum(n, "qos", 3, qos_names, &qos) < 0 ||
	    conf_get_enum(n, "class", RULES_NORMAL, class_names, &cls) < 0 ||
	    conf_get_bool(n, "durable", true, &ru->durable) < 0)
		rc = -1;
	if (rc != 0)
		return -1;
	ru->qos = qos == 3 ? RULES_QOS_KEEP : (uint8_t)qos;
	ru->cls = (enum rules_class)cls;
	ru->match = rules_dup_str(match);
	ru->topic = rules_dup_str(tmpl);
	ru->match_len = strlen(match);
	if (ru->match == NULL || ru->topic == NULL) { /* not counted in r->n: freed here */
		free((char *)ru->match);
		free((char *)ru->topic);
		ru->match = ru->topic = NULL;
		return conf_error(n, "out of memory");
	}
	return 0;
}

static int
set_default(struct rules *r)
{
	r->v = calloc(1, sizeof(*r->v));
	if (r->v == NULL)
		return -1;
	r->n = 1;
	r->v[0] = (struct rule){ .match = rules_dup_str("#"),
		.match_len = 1,
		.topic = rules_dup_str("{topic}"),
		.qos = RULES_QOS_KEEP,
		.cls = RULES_NORMAL,
		.durable = true };
	return r->v[0].match != NULL && r->v[0].topic != NULL ? 0 : -1;
}

static int
parse_list(conf_node list, struct rules *r)
{
	int rc = 0;

	if (!conf_is_seq(list))
		return conf_error(list, "'rules' must be a list of mappings");
	if (conf_seq_len(list) > RULES_MAX)
		return conf_error(list, "more than %u rules", RULES_MAX);
	r->v = calloc(conf_seq_len(list) + 1, sizeof(*r->v));
	if (r->v == NULL)
		return conf_error(list, "out of memory");
	for (size_t i = 0; i < conf_seq_len(list); i++) {
		if (parse_rule(conf_seq_at(list, i), r, &r->v[r->n]) < 0)
			rc = -1;
		else
			r->n++;
	}
	return rc;
}

int
rules_parse(conf_node uplink, struct rules **out)
{
	struct rules *r = calloc(1, sizeof(*r));
	const char *site = "";
	int rc = 0;

	*out = NULL;
	if (r == NULL)
		return conf_present(uplink) ? conf_error(uplink, "out of memory") : -1;
	if (!conf_present(uplink)) {
		if (set_default(r) < 0)
			goto fail;
		*out = r;
		return 0;
	}
	if (!conf_is_map(uplink)) {
		conf_error(
		    uplink, "'uplink' must be a mapping (site, rules, downlink, spool, drain)");
		goto fail;
	}
	rc = conf_check_keys(uplink, uplink_keys);
	if (conf_get_str(uplink, "site", "", &site) < 0)
		rc = -1;
	else if (strlen(site) >= sizeof(r->site))
		rc = conf_error(
		    conf_get(uplink, "site"), "site is longer than %zu bytes", sizeof(r->site) - 1);
	else if (strpbrk(site, "+#") != NULL)
		rc = conf_error(conf_get(uplink, "site"), "site must not hold '+' or '#'");
	else
		strcpy(r->site, site);
	if (rc == 0 && !conf_present(conf_get(uplink, "rules"))) {
		if (set_default(r) < 0)
			rc = conf_error(uplink, "out of memory");
	} else if (rc == 0) {
		rc = parse_list(conf_get(uplink, "rules"), r);
	}
	if (conf_present(conf_get(uplink, "downlink")) &&
	    rules_down_parse(conf_get(uplink, "downlink"), r) != 0)
		rc = -1;
	if (rc == 0) {
		*out = r;
		return 0;
	}
fail:
	rules_free(r);
	return -1;
}

void
rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free((char *)r->v[i].match);
		free((char *)r->v[i].topic);
	}
	free(r->v);
	rules_down_free(r);
	free(r);
}

static bool
str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

bool
rules_equal(const struct rules *a, const struct rules *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (strcmp(a->site, b->site) != 0 || a->n != b->n || a->n_down != b->n_down)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct rule *x = &a->v[i], *y = &b->v[i];

		if (!str_eq(x->match, y->match) || !str_eq(x->topic, y->topic) ||
		    x->qos != y->qos || x->cls != y->cls || x->durable != y->durable)
			return false;
	}
	for (size_t i = 0; i < a->n_down; i++) {
		const struct down_rule *x = &a->down[i], *y = &b->down[i];

		if (!str_eq(x->match, y->match) || !str_eq(x->strip, y->strip) ||
		    !str_eq(x->topic, y->topic) || x->max_qos != y->max_qos)
			return false;
	}
	return true;
}

const struct rule *
rules_match(const struct rules *r, const char *topic, size_t len)
{
	for (size_t i = 0; i < r->n; i++)
		if (mqtt_topic_match(r->v[i].match, r->v[i].match_len, topic, len))
			return &r->v[i];
	return NULL;
}

static int
put(char *buf, size_t buflen, size_t *at, const char *s, size_t n)
{
	if (*at + n >= buflen || *at + n > 65535)
		return -ENAMETOOLONG;
	memcpy(buf + *at, s, n);
	*at += n;
	return 0;
}

int
rules_render_template(
    const char *site, const char *tmpl, const char *topic, size_t len, char *buf, size_t buflen)
{
	size_t at = 0;
	int rc = 0;

	if (buflen == 0)
		return -ENAMETOOLONG;
	for (const char *p = tmpl; *p && rc == 0; p++) {
		if (strncmp(p, "{topic}", 7) == 0) {
			rc = put(buf, buflen, &at, topic, len);
			p += 6;
		} else if (strncmp(p, "{site}", 6) == 0) {
			rc = put(buf, buflen, &at, site, strlen(site));
			p += 5;
		} else {
			rc = put(buf, buflen, &at, p, 1);
		}
	}
	if (rc != 0)
		return rc;
	buf[at] = '\0';
	if (mqtt_topic_name_valid(buf, at) != 0)
		return -EINVAL;
	return (int)at;
}

int
rules_render(const struct rules *r, const struct rule *rule, const char *topic, size_t len,
    char *buf, size_t buflen)
{
	return rules_render_template(r->site, rule->topic, topic, len, buf, buflen);
}
