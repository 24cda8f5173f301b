/*
 * rules_down.c: the `downlink:` list of the `uplink:` section (rules.h): which cloud topics the
 * agent subscribes and the local topic each becomes in the dataplane's broker (a prefix
 * stripped, a template applied), at most which QoS. Parsed with lib/conf like the uplink rules
 * (rules.c), every error at its file:line:col.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"
#include "rules_internal.h"

static const char *const down_keys[] = { "match", "strip", "topic", "max_qos", NULL };
static const char *const max_qos_names[] = { "0", "1", "2", NULL };

/* s with {site} filled in (malloc'd), or NULL with the error recorded at `at`. */
static char *
fill_site(conf_node at, const char *s, const struct rules *r)
{
	size_t n = 0, cap = strlen(s) + 1;
	char *out;

	for (const char *p = strstr(s, "{site}"); p != NULL; p = strstr(p + 6, "{site}"))
		cap += strlen(r->site);
	if ((out = malloc(cap)) == NULL) {
		conf_error(at, "out of memory");
		return NULL;
	}
	for (const char *p = s; *p; p++) {
		if (strncmp(p, "{site}", 6) == 0 && r->site[0] != '\0') {
			memcpy(out + n, r->site, strlen(r->site));
			n += strlen(r->site);
			p += 5;
		} else if (*p == '{' || *p == '}') {
			conf_error(at,
			    r->site[0] == '\0' && strncmp(p, "{site}", 6) == 0
				? "'%s' uses {site} but uplink.site is not set"
				: "'%s': the only placeholder here is {site}",
			    s);
			free(out);
			return NULL;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return out;
}

/* strip must be literal and a prefix of match: then every topic match accepts starts with it. */
static int
check_strip(conf_node at, const struct down_rule *d)
{
	if (strpbrk(d->strip, "+#") != NULL)
		return conf_error(at, "strip '%s' must not hold '+' or '#'", d->strip);
	if (strncmp(d->match, d->strip, d->strip_len) != 0)
		return conf_error(
		    at, "strip '%s' is not the start of match '%s'", d->strip, d->match);
	return 0;
}

static int
parse_down(conf_node n, const struct rules *r, struct down_rule *d)
{
	const char *match = NULL, *strip = "", *tmpl = "{topic}";
	int qos = 2, rc;

	if (!conf_is_map(n))
		return conf_error(
		    n, "a downlink rule must be a mapping (match, strip, topic, max_qos)");
	rc = conf_check_keys(n, down_keys);
	d->line = conf_line(n);
	if (!conf_present(conf_get(n, "match")))
		return conf_error(n, "a downlink rule needs 'match' (a filter on cloud topics)");
	if (conf_get_str(n, "match", NULL, &match) < 0 ||
	    conf_get_str(n, "strip", "", &strip) < 0 || conf_get_str(n, "topic", tmpl, &tmpl) < 0 ||
	    conf_get_enum(n, "max_qos", 2, max_qos_names, &qos) < 0 ||
	    rules_check_template(conf_get(n, "topic"), tmpl, r->site[0] != '\0') < 0)
		rc = -1;
	if (rc != 0)
		return -1;
	d->max_qos = (uint8_t)qos;
	if ((d->match = fill_site(conf_get(n, "match"), match, r)) == NULL ||
	    (d->strip = fill_site(conf_get(n, "strip"), strip, r)) == NULL ||
	    (d->topic = rules_dup_str(tmpl)) == NULL)
		return d->topic == NULL && d->strip != NULL ? conf_error(n, "out of memory") : -1;
	d->match_len = strlen(d->match);
	d->strip_len = strlen(d->strip);
	if (mqtt_topic_filter_valid(d->match, d->match_len) != 0 ||
	    strncmp(d->match, "$share/", 7) == 0)
		return conf_error(conf_get(n, "match"),
		    "match '%s' is not a valid MQTT topic filter ('+' a whole level, '#' the last)",
		    d->match);
	return check_strip(conf_present(conf_get(n, "strip")) ? conf_get(n, "strip") : n, d);
}

static void
down_rule_free(struct down_rule *d)
{
	free((char *)d->match);
	free((char *)d->strip);
	free((char *)d->topic);
}

int
rules_down_parse(conf_node list, struct rules *r)
{
	int rc = 0;

	if (!conf_is_seq(list))
		return conf_error(list, "'downlink' must be a list of mappings");
	if (conf_seq_len(list) > RULES_MAX)
		return conf_error(list, "more than %u downlink rules", RULES_MAX);
	r->down = calloc(conf_seq_len(list) + 1, sizeof(*r->down));
	if (r->down == NULL)
		return conf_error(list, "out of memory");
	for (size_t i = 0; i < conf_seq_len(list); i++) {
		struct down_rule *d = &r->down[r->n_down];

		if (parse_down(conf_seq_at(list, i), r, d) < 0) {
			down_rule_free(d);
			*d = (struct down_rule){ 0 };
			rc = -1;
		} else {
			r->n_down++;
		}
	}
	return rc;
}

void
rules_down_free(struct rules *r)
{
	for (size_t i = 0; i < r->n_down; i++)
		down_rule_free(&r->down[i]);
	free(r->down);
	r->down = NULL;
	r->n_down = 0;
}

const struct down_rule *
rules_down_match(const struct rules *r, const char *topic, size_t len)
{
	for (size_t i = 0; i < r->n_down; i++)
		if (mqtt_topic_match(r->down[i].match, r->down[i].match_len, topic, len))
			return &r->down[i];
	return NULL;
}

int
rules_down_render(const struct rules *r, const struct down_rule *d, const char *topic, size_t len,
    char *buf, size_t buflen)
{
	if (len < d->strip_len || memcmp(topic, d->strip, d->strip_len) != 0)
		return -EINVAL; /* not a topic the rule matched */
	return rules_render_template(
	    r->site, d->topic, topic + d->strip_len, len - d->strip_len, buf, buflen);
}
