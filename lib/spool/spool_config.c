/*
 * spool_config.c: the spool's section of the gateway config, parsed with lib/conf (every error
 * recorded as file:line:col, none stops the others) into a struct spool_config that is checked
 * whole. The program that owns a spool calls it on its `spool:` mapping; keys and defaults are
 * in docs/spool.md.
 */
#include "spool.h"

static const char *const spool_keys[] = { "dir", "max_bytes", "segment_bytes", "commit_max_wait_us",
	"commit_bytes", "buffer_bytes", "disk_full_retry", "classes", NULL };
static const char *const spool_class_keys[] = { "max_age", "drop_when_full", NULL };
static const char *const spool_class_names[] = { "alarm", "normal", "bulk", NULL };

static int
parse_class(conf_node n, struct spool_class_policy *p)
{
	if (!conf_present(n))
		return 0;
	int rc = conf_check_keys(n, spool_class_keys);
	/* up to a year; 0: no age bound */
	if (conf_get_duration_ms(
		n, "max_age", p->max_age_ms, 0, 366ull * 86400 * 1000, &p->max_age_ms) < 0)
		rc = -1;
	if (conf_get_bool(n, "drop_when_full", p->drop_when_full, &p->drop_when_full) < 0)
		rc = -1;
	return rc;
}

int
spool_config_parse(conf_node map, struct spool_config *cfg)
{
	spool_config_defaults(cfg);
	if (!conf_present(map))
		return 0;
	int rc = conf_check_keys(map, spool_keys);
	uint64_t v;
	if (conf_get_str(map, "dir", cfg->dir, &cfg->dir) < 0)
		rc = -1;
	if (conf_get_size_bytes(
		map, "max_bytes", cfg->max_bytes, 1u << 20, 1ull << 44, &cfg->max_bytes) < 0)
		rc = -1;
	if (conf_get_size_bytes(map, "segment_bytes", 0, 64u << 10, 1u << 30, &cfg->segment_bytes) <
	    0)
		rc = -1;
	if (conf_get_u32(map, "commit_max_wait_us", cfg->commit_max_wait_us, 1, 1000000,
		&cfg->commit_max_wait_us) < 0)
		rc = -1;
	if (conf_get_size_bytes(map, "commit_bytes", cfg->commit_bytes, 4096, 64u << 20, &v) == 0)
		cfg->commit_bytes = (uint32_t)v;
	else
		rc = -1;
	if (conf_get_size_bytes(map, "buffer_bytes", 0, 4096, 1u << 30, &v) == 0)
		cfg->buffer_bytes = (uint32_t)v;
	else
		rc = -1;
	if (conf_get_duration_ms(map, "disk_full_retry", cfg->disk_full_retry_ms, 1, 3600000, &v) ==
	    0)
		cfg->disk_full_retry_ms = (uint32_t)v;
	else
		rc = -1;
	conf_node classes = conf_get(map, "classes");
	if (conf_present(classes)) {
		if (conf_check_keys(classes, spool_class_names) < 0)
			rc = -1;
		for (unsigned c = 0; c < SPOOL_CLASS_N; c++)
			if (parse_class(conf_get(classes, spool_class_names[c]), &cfg->policy[c]) <
			    0)
				rc = -1;
	}
	if (rc)
		return -1;
	/* the struct whole */
	if (cfg->segment_bytes && cfg->segment_bytes > cfg->max_bytes / 4)
		rc = conf_error(conf_get(map, "segment_bytes"),
		    "segment_bytes must be at most a quarter of max_bytes "
		    "(whole segments are what the bound drops)");
	if (cfg->buffer_bytes && cfg->buffer_bytes < cfg->commit_bytes)
		rc = conf_error(
		    conf_get(map, "buffer_bytes"), "buffer_bytes must be at least commit_bytes");
	if (cfg->dir[0] != '/')
		rc = conf_error(conf_get(map, "dir"), "dir must be an absolute path");
	return rc ? -1 : 0;
}
