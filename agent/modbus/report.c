/*
 * report.c: the publish decision and the message format for one point (see report.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "report.h"

const char *const mb_quality_names[] = { "good", "stale", "comm-failure", "unsupported", NULL };

void
mb_report_value(struct mb_point_state *st, const struct mb_value *v, uint64_t wall_ms)
{
	st->cur = *v;
	st->have_value = true;
	st->quality = MB_Q_GOOD;
	st->have_quality = true;
	st->read_wall_ms = wall_ms;
}

void
mb_report_fail(struct mb_point_state *st, enum mb_quality q)
{
	st->quality = q;
	st->have_quality = true;
}

bool
mb_report_due(const struct mb_point *p, const struct mb_point_state *st, uint64_t mono_ms)
{
	if (!st->have_quality)
		return false;
	if (!st->published || st->quality != st->pub_quality)
		return true;
	if (p->heartbeat_ms && mono_ms - st->pub_mono_ms >= p->heartbeat_ms)
		return true;
	if (st->quality != MB_Q_GOOD || !st->have_value)
		return false;
	return !mb_value_within(&st->cur, &st->pub, p->deadband);
}

void
mb_report_mark(struct mb_point_state *st, uint64_t mono_ms)
{
	st->published = true;
	st->pub = st->cur;
	st->pub_quality = st->quality;
	st->pub_mono_ms = mono_ms;
}

static void
iso_time(uint64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

int
mb_report_format(const struct mb_point *p, const struct mb_point_state *st, const char *device,
    char *buf, size_t len)
{
	char val[2 * MB_STR_REGS_MAX * 2 + 8] = "null", ts[80] = "";
	int n;

	if (st->have_value)
		mb_value_json(p, &st->cur, val, sizeof(val));
	if (st->read_wall_ms)
		iso_time(st->read_wall_ms, ts, sizeof(ts));
	n = snprintf(buf, len,
	    "{\"device\":\"%s\",\"point\":\"%s\",\"value\":%s,\"unit\":\"%s\","
	    "\"quality\":\"%s\",\"ts\":%s%s%s,\"ts_ms\":%llu}",
	    device, p->name, val, p->unit, mb_quality_names[st->quality],
	    st->read_wall_ms ? "\"" : "", st->read_wall_ms ? ts : "null",
	    st->read_wall_ms ? "\"" : "", (unsigned long long)st->read_wall_ms);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

static const char *
topic_var(const char *name, size_t n, const struct mb_topic_vars *v, char *num, size_t numlen)
{
	static const char *const names[] = { "prefix", "bus", "device", "point", "profile",
		"unit_id" };
	const char *vals[] = { v->prefix, v->bus, v->device, v->point, v->profile, num };

	snprintf(num, numlen, "%u", v->unit_id);
	for (size_t i = 0; i < 6; i++)
		if (strlen(names[i]) == n && strncmp(names[i], name, n) == 0)
			return vals[i] ? vals[i] : "";
	return NULL;
}

int
mb_topic_expand(const char *tmpl, const struct mb_topic_vars *v, char *out, size_t outlen)
{
	size_t o = 0;
	char num[16];

	while (*tmpl) {
		const char *val, *close;
		size_t vl;

		if (*tmpl != '{') {
			if (o + 1 >= outlen)
				return -ENOSPC;
			out[o++] = *tmpl++;
			continue;
		}
		close = strchr(tmpl, '}');
		if (close == NULL ||
		    (val = topic_var(tmpl + 1, (size_t)(close - tmpl - 1), v, num, sizeof(num))) ==
			NULL)
			return -EINVAL;
		vl = strlen(val);
		if (o + vl >= outlen)
			return -ENOSPC;
		memcpy(out + o, val, vl);
		o += vl;
		tmpl = close + 1;
	}
	out[o] = '\0';
	return (int)o;
}
