/* prom.c: the Prometheus text format writer (see prom.h). */
#include <stdint.h>
#include <string.h>

#include "prom.h"

static void
put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (quote && *s == '"')
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

void
prom_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	put_escaped(f, help && help[0] ? help : name, false);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

static void
put_labels(FILE *f, const char *name, const char *const *labels)
{
	fputs(name, f);
	if (labels == NULL || labels[0] == NULL)
		return;
	fputc('{', f);
	for (size_t i = 0; labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
		fprintf(f, "%s%s=\"", i ? "," : "", labels[i]);
		put_escaped(f, labels[i + 1], true);
		fputc('"', f);
	}
	fputc('}', f);
}

void
prom_sample(FILE *f, const char *name, const char *const *labels, double value)
{
	put_labels(f, name, labels);
	/* counters read as JSON numbers stay exact up to 2^53; times keep microseconds */
	if (value == (double)(long long)value && value < 9007199254740992.0 &&
	    value > -9007199254740992.0)
		fprintf(f, " %lld\n", (long long)value);
	else
		fprintf(f, " %.15g\n", value);
}

void
prom_sample_u64(FILE *f, const char *name, const char *const *labels, unsigned long long v)
{
	put_labels(f, name, labels);
	fprintf(f, " %llu\n", v);
}

/* Finds the unit token tok ("_us") as a whole word in s; returns its offset or -1. */
static long
find_token(const char *s, const char *tok)
{
	size_t n = strlen(tok);

	for (const char *p = strstr(s, tok); p != NULL; p = strstr(p + 1, tok))
		if (p[n] == '\0' || p[n] == '_')
			return p - s;
	return -1;
}

void
prom_name(char *out, size_t outlen, const char *prefix, const char *name, const char *suffix,
    double *scale)
{
	static const struct {
		const char *tok;
		double scale;
	} units[] = { { "_us", 1e-6 }, { "_ms", 1e-3 }, { "_s", 1.0 } };
	char low[128];
	size_t i, n;
	long at = -1;

	for (i = 0; name[i] && i < sizeof(low) - 1; i++) {
		char c = name[i];

		c = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
		low[i] = (char)((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_');
	}
	low[i] = '\0';
	/* "us" after "for" (NOT_FOR_US) is the word, not microseconds: said "this_host", before
	 * the units are looked for (it was exported as *_not_for_seconds_total, its count
	 * scaled by 1e-6; and promtool rejects "_us" in a name) */
	if ((at = find_token(low, "_for_us")) >= 0 && strlen(low) + 8 <= sizeof(low)) {
		char *w = low + at + 5;

		memmove(w + 9, w + 2, strlen(w + 2) + 1);
		memcpy(w, "this_host", 9);
	}
	at = -1;
	*scale = 1.0;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]) && at < 0; u++)
		if ((at = find_token(low, units[u].tok)) >= 0) {
			size_t tl = strlen(units[u].tok);

			memmove(low + at, low + at + tl, strlen(low + at + tl) + 1);
			*scale = units[u].scale;
		}
	n = strlen(low);
	if (at >= 0 && n > 4 && strcmp(low + n - 4, "_sum") == 0)
		low[n - 4] = '\0';
	snprintf(out, outlen, "%s%s%s%s", prefix, low, at >= 0 ? "_seconds" : "", suffix);
}
