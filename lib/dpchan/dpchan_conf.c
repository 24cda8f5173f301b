/* dpchan_conf.c: `dataplane.channel`, read by both programs (dpchan_conf.h). */
#include "dpchan_conf.h"

#include <string.h>

#include "dpchan_proto.h"

void
dpchan_conf_defaults(struct dpchan_conf *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->path, DPCHAN_DEFAULT_PATH);
	c->pending_bytes = 4u << 20;
	c->max_pending = 16384;
	c->reconnect_max_ms = 1000;
	c->max_qos2_origins = 65536;
}

void
dpchan_conf_parse(conf_node n, struct dpchan_conf *c)
{
	static const char *const keys[] = { "enabled", "path", "pending_bytes", "max_pending",
		"reconnect_max", "max_qos2_origins", NULL };
	const char *path = NULL;
	uint64_t v;

	dpchan_conf_defaults(c);
	if (!conf_present(n))
		return;
	conf_check_keys(n, keys);
	conf_get_bool(n, "enabled", true, &c->enabled);
	if (conf_get_str(n, "path", DPCHAN_DEFAULT_PATH, &path) == 0 && path != NULL) {
		if (strlen(path) >= sizeof(c->path) || path[0] == '\0')
			conf_error(conf_get(n, "path"), "a socket path of 1 to %zu bytes",
			    sizeof(c->path) - 1);
		else
			strcpy(c->path, path);
	}
	if (conf_get_size_bytes(n, "pending_bytes", 4u << 20, 256u << 10, 1u << 30, &v) == 0)
		c->pending_bytes = (uint32_t)v;
	conf_get_u32(n, "max_pending", 16384, 16, 1u << 24, &c->max_pending);
	if (conf_get_duration_ms(n, "reconnect_max", 1000, 100, 600000, &v) == 0)
		c->reconnect_max_ms = (uint32_t)v;
	conf_get_u32(n, "max_qos2_origins", 65536, 1024, 1u << 24, &c->max_qos2_origins);
}
