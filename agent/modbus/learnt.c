/*
 * learnt.c: the per-device state file (learnt.h). Text, one fact a line:
 *   profile <hash>
 *   max_regs <n>
 *   hole <table> <start> <count>
 *   no_function <table>
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "learnt.h"

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ull;
	return h;
}

uint64_t
mb_profile_hash(const struct mb_profile *p)
{
	uint64_t h = 14695981039346656037ull;

	h = fnv(h, p->name, strlen(p->name));
	h = fnv(h, &p->max_read_regs, sizeof(p->max_read_regs));
	h = fnv(h, &p->max_read_bits, sizeof(p->max_read_bits));
	for (size_t i = 0; i < p->npoints; i++) {
		uint32_t v[3] = { p->points[i].func, p->points[i].address, p->points[i].count };

		h = fnv(h, v, sizeof(v));
	}
	for (size_t i = 0; i < p->nholes; i++) {
		uint32_t v[3] = { p->holes[i].func, p->holes[i].start, p->holes[i].count };

		h = fnv(h, v, sizeof(v));
	}
	return h;
}

int
mb_learnt_path(char *buf, size_t len, const char *state_dir, const char *bus, const char *device)
{
	int n = snprintf(buf, len, "%s/modbus/%s.%s.state", state_dir, bus, device);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int
parse_line(const char *line, uint64_t want, struct mb_learnt *l)
{
	char tab[16];
	unsigned long long h;
	unsigned a, b;

	if (sscanf(line, "profile %llx", &h) == 1)
		return h == want ? 0 : -ENOENT;
	if (sscanf(line, "max_regs %u", &a) == 1 && a >= 1 && a <= 125) {
		l->max_regs = (uint16_t)a;
		return 0;
	}
	if (sscanf(line, "max_bits %u", &a) == 1 && a >= 1 && a <= 2000) {
		l->max_bits = (uint16_t)a;
		return 0;
	}
	if (sscanf(line, "no_function %15s", tab) == 1) {
		for (int f = 0; f < MB_FN_COUNT; f++)
			if (strcmp(tab, mb_func_names[f]) == 0) {
				l->no_func |= (uint8_t)(1u << f);
				return 0;
			}
		return -EINVAL;
	}
	if (sscanf(line, "hole %15s %u %u", tab, &a, &b) == 3 && b >= 1 && a + b <= 65536) {
		for (int f = 0; f < MB_FN_COUNT; f++)
			if (strcmp(tab, mb_func_names[f]) == 0)
				return mb_holes_add(
					   &l->holes, (enum mb_func)f, (uint16_t)a, (uint16_t)b) < 0
				    ? -ENOMEM
				    : 0;
	}
	return -EINVAL;
}

int
mb_learnt_load(const char *path, uint64_t profile_hash, struct mb_learnt *l)
{
	FILE *f = fopen(path, "r");
	char line[128];
	int rc = 0;
	bool ours = false;

	memset(l, 0, sizeof(*l));
	if (f == NULL)
		return -ENOENT;
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		rc = parse_line(line, profile_hash, l);
		if (rc == 0 && strncmp(line, "profile ", 8) == 0)
			ours = true;
		if (rc == 0 && !ours)
			rc = -EINVAL; /* the profile line comes first */
	}
	fclose(f);
	if (rc != 0)
		mb_learnt_free(l);
	return rc;
}

int
mb_learnt_save(const char *path, uint64_t profile_hash, const struct mb_learnt *l)
{
	char tmp[600], dir[512];
	const char *slash = strrchr(path, '/');
	FILE *f;
	int rc = 0;

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	/* <state_dir>/modbus, and <state_dir> when it is not there (systemd makes it) */
	if (mkdir(dir, 0755) != 0 && errno == ENOENT && strrchr(dir, '/') != NULL) {
		char *up = strrchr(dir, '/');

		*up = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			return -errno;
		*up = '/';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			return -errno;
	} else if (errno != EEXIST && access(dir, W_OK) != 0) {
		return -errno;
	}
	f = fopen(tmp, "w");
	if (f == NULL)
		return -errno;
	fprintf(f, "# edgegw-agent: what the Modbus poller learnt about this device\n");
	fprintf(f, "profile %016llx\n", (unsigned long long)profile_hash);
	if (l->max_regs)
		fprintf(f, "max_regs %u\n", l->max_regs);
	if (l->max_bits)
		fprintf(f, "max_bits %u\n", l->max_bits);
	for (size_t i = 0; i < l->holes.n; i++)
		fprintf(f, "hole %s %u %u\n", mb_func_names[l->holes.v[i].func],
		    l->holes.v[i].start, l->holes.v[i].count);
	for (int fn = 0; fn < MB_FN_COUNT; fn++)
		if (l->no_func & (1u << fn))
			fprintf(f, "no_function %s\n", mb_func_names[fn]);
	if (fflush(f) != 0 || ferror(f))
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		remove(tmp);
	return rc;
}

void
mb_learnt_free(struct mb_learnt *l)
{
	mb_holes_free(&l->holes);
	l->max_regs = l->max_bits = 0;
	l->no_func = 0;
}
