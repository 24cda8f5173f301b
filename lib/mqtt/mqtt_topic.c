/*
 * mqtt_topic.c: topic names, topic filters, matching and shared subscriptions (spec 4.7, 4.8.2).
 * Works on length-counted strings (names from the wire are not NUL-terminated).
 */
#include <string.h>

#include "mqtt_topic.h"

#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

int
mqtt_topic_name_valid(const char *name, size_t len)
{
	int rc;

	if (len == 0)
		return -MQTT_E_TOPIC_EMPTY;
	if (len > MQTT_MAX_STRING)
		return -MQTT_E_FIELD_TOO_LONG;
	if (memchr(name, '+', len) || memchr(name, '#', len))
		return -MQTT_E_TOPIC_NAME_INVALID;
	rc = mqtt_utf8_check((const uint8_t *)name, len);
	return rc;
}

/* Wildcard placement: '+' fills a whole level, '#' fills the whole last level. */
static bool
filter_wildcards_ok(const char *f, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		bool level_start = i == 0 || f[i - 1] == '/';
		bool level_end = i + 1 == len || f[i + 1] == '/';

		if (f[i] == '+' && !(level_start && level_end))
			return false;
		if (f[i] == '#' && !(level_start && i + 1 == len))
			return false;
	}
	return true;
}

static int
plain_filter_valid(const char *filter, size_t len)
{
	if (len == 0)
		return -MQTT_E_FILTER_INVALID;
	if (len > MQTT_MAX_STRING)
		return -MQTT_E_FIELD_TOO_LONG;
	if (!filter_wildcards_ok(filter, len))
		return -MQTT_E_FILTER_INVALID;
	return mqtt_utf8_check((const uint8_t *)filter, len);
}

int
mqtt_topic_share_parse(
    const char *filter, size_t len, struct mqtt_str *group, struct mqtt_str *inner)
{
	const char *g, *slash;
	size_t glen;

	if (len < SHARE_PREFIX_LEN || memcmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return 0;
	g = filter + SHARE_PREFIX_LEN;
	slash = memchr(g, '/', len - SHARE_PREFIX_LEN);
	if (slash == NULL)
		return -MQTT_E_SHARE_INVALID;
	glen = (size_t)(slash - g);
	if (glen == 0 || memchr(g, '+', glen) || memchr(g, '#', glen))
		return -MQTT_E_SHARE_INVALID;
	group->s = g;
	group->len = (uint16_t)glen;
	inner->s = slash + 1;
	inner->len = (uint16_t)(len - SHARE_PREFIX_LEN - glen - 1);
	if (plain_filter_valid(inner->s, inner->len) != 0)
		return -MQTT_E_SHARE_INVALID;
	return 1;
}

int
mqtt_topic_filter_valid(const char *filter, size_t len)
{
	struct mqtt_str group, inner;
	int rc;

	if (len > MQTT_MAX_STRING)
		return -MQTT_E_FIELD_TOO_LONG;
	if ((rc = mqtt_utf8_check((const uint8_t *)filter, len)) != 0)
		return rc;
	/* A shared subscription's own rules come first: "$share/g+/a" is a bad share. */
	rc = mqtt_topic_share_parse(filter, len, &group, &inner);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	return plain_filter_valid(filter, len);
}

/*
 * Walk filter and name level by level. '#' matches the rest including the parent level itself
 * ("a/#" matches "a"); '+' matches exactly one level, possibly empty.
 */
bool
mqtt_topic_match(const char *filter, size_t flen, const char *name, size_t nlen)
{
	size_t fi = 0, ni = 0;

	if (nlen > 0 && name[0] == '$' && flen > 0 && (filter[0] == '+' || filter[0] == '#'))
		return false;
	for (;;) {
		if (fi < flen && filter[fi] == '#')
			return true;
		if (fi < flen && filter[fi] == '+') {
			fi++;
			while (ni < nlen && name[ni] != '/')
				ni++;
		} else {
			while (
			    fi < flen && ni < nlen && filter[fi] != '/' && filter[fi] == name[ni]) {
				fi++;
				ni++;
			}
			if ((fi < flen && filter[fi] != '/') || (ni < nlen && name[ni] != '/'))
				return false;
		}
		/* Both at a level end: '/' or the end of the string. */
		if (fi == flen && ni == nlen)
			return true;
		if (fi == flen)
			return false;
		if (ni == nlen) {
			/* "a/#" matches "a": the filter's rest must be exactly "/#". */
			return flen - fi == 2 && filter[fi + 1] == '#';
		}
		fi++;
		ni++;
	}
}
