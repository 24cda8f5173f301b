/*
 * agent_config.c: parse and validate the "agent:" section (see agent_config.h and docs/agent.md).
 * Profiles are loaded from profiles_dir (relative paths are taken from the config file's folder)
 * before the buses, so a device naming an unknown profile is an error at its own line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_config.h"
#include "conf.h"
#include "mqtt_conf.h"
#include "report.h"
#include "store.h"

static const char *const bus_kinds[] = { "rtu", "tcp", NULL };
static const char *const parities[] = { "none", "even", "odd", NULL };
static const char *const rs485_modes[] = { "off", "auto", "on", NULL };
static const char *const uplinks[] = { "mqtt", "jsonl", NULL };

static int
copy_opt(conf_node map, const char *key, const char *def, char *dst, size_t dstlen)
{
	const char *s = NULL;

	if (conf_get_str(map, key, def, &s))
		return -1;
	if (strlen(s) >= dstlen)
		return conf_error(
		    conf_get(map, key), "'%s' is too long (at most %zu bytes)", key, dstlen - 1);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int
copy_req(conf_node map, const char *key, char *dst, size_t dstlen)
{
	if (!conf_present(conf_get(map, key)))
		return conf_error(map, "missing '%s'", key);
	return copy_opt(map, key, "", dst, dstlen);
}

/* The first line of a bad profile's errors, for the device's reason. */
static void
first_line(char *dst, size_t dstlen, const char *src)
{
	size_t n = strcspn(src, "\n");

	snprintf(dst, dstlen, "%.*s", (int)n, src);
}

/* Strict: a missing profile is an error (a bad one already is, from load_profiles). Otherwise
 * the device is disabled with the reason. */
static int
resolve_profile(
    conf_node dn, const struct agent_config *cfg, const char *name, struct agent_device_conf *d)
{
	const struct mb_profile_bad *bad = mb_profile_find_bad(&cfg->profiles, name);
	char why[400];

	snprintf(d->profile_name, sizeof(d->profile_name), "%s", name);
	d->profile = bad ? NULL : mb_profile_find(&cfg->profiles, name);
	if (d->profile != NULL || (bad != NULL && cfg->strict) || cfg->profiles_unread)
		return 0;
	if (bad == NULL && cfg->strict)
		return conf_error(conf_get(dn, "profile"), "no profile named '%s' in %s", name,
		    cfg->profiles_dir);
	if (bad != NULL) {
		first_line(why, sizeof(why), bad->error);
		snprintf(
		    d->disabled, sizeof(d->disabled), "profile '%s' does not load: %s", name, why);
	} else {
		snprintf(d->disabled, sizeof(d->disabled), "no profile named '%s' in %.300s", name,
		    cfg->profiles_dir);
	}
	return 0;
}

static int
parse_device(conf_node dn, struct agent_config *cfg, struct agent_device_conf *d)
{
	static const char *const keys[] = { "name", "unit_id", "profile", "interval", "timeout",
		"retries", "pause_between_requests", NULL };
	char profile[MB_NAME_MAX];
	uint32_t unit = 0;

	int bad = 0, bad_profile;

	if (!conf_is_map(dn))
		return conf_error(dn, "a device must be a mapping");
	bad |= conf_check_keys(dn, keys);
	if (copy_req(dn, "name", d->name, sizeof(d->name)) == 0 && !mb_name_valid(d->name))
		bad |= conf_error(conf_get(dn, "name"),
		    "device name '%s': use letters, digits, _ . : -", d->name);
	bad_profile = copy_req(dn, "profile", profile, sizeof(profile));
	bad |= bad_profile;
	if (!conf_present(conf_get(dn, "unit_id")))
		bad |= conf_error(dn, "device '%s' needs a 'unit_id'", d->name);
	else if (conf_get_u32(dn, "unit_id", 1, 0, 255, &unit) == 0)
		d->unit_id = (uint8_t)unit;
	else
		bad = -1;
	bad |= conf_get_duration_ms(dn, "interval", 1000, 10, 86400000ull, &d->interval_ms);
	bad |= conf_get_duration_ms(dn, "timeout", 500, 10, 60000, &d->timeout_ms);
	bad |= conf_get_u32(dn, "retries", 2, 0, 10, &d->retries);
	bad |= conf_get_duration_ms(dn, "pause_between_requests", 0, 0, 10000, &d->pause_ms);
	if (!bad_profile)
		bad |= resolve_profile(dn, cfg, profile, d);
	return bad;
}

static int
parse_rtu(conf_node bn, struct agent_bus_conf *b)
{
	conf_node rs = conf_get(bn, "rs485");
	static const char *const rs_keys[] = { "mode", "rts_delay_before_us", "rts_delay_after_us",
		"rts_on_send_low", NULL };
	uint32_t baud = 0, data = 8, stop = 1;
	int parity = 0, mode = 1;
	char err[128];

	int bad = copy_req(bn, "device", b->device, sizeof(b->device)), line_bad = 0;

	line_bad |= conf_get_u32(bn, "baud", 9600, 1, 4000000, &baud);
	line_bad |= conf_get_enum(bn, "parity", 1, parities, &parity);
	line_bad |= conf_get_u32(bn, "data_bits", 8, 7, 8, &data);
	line_bad |= conf_get_u32(bn, "stop_bits", 1, 1, 2, &stop);
	b->line = (struct rs485_line){ baud, "NEO"[parity], (uint8_t)data, (uint8_t)stop };
	if (!line_bad && rs485_line_check(&b->line, err, sizeof(err)))
		line_bad =
		    conf_error(conf_present(conf_get(bn, "baud")) ? conf_get(bn, "baud") : bn,
			"bus '%s': %s", b->name, err);
	bad |= line_bad;
	if (conf_present(rs)) {
		bad |= conf_check_keys(rs, rs_keys);
		bad |= conf_get_enum(rs, "mode", 1, rs485_modes, &mode);
		bad |= conf_get_u32(
		    rs, "rts_delay_before_us", 0, 0, 1000000, &b->rs485.rts_delay_before_us);
		bad |= conf_get_u32(
		    rs, "rts_delay_after_us", 0, 0, 1000000, &b->rs485.rts_delay_after_us);
		bad |= conf_get_bool(rs, "rts_on_send_low", false, &b->rs485.rts_on_send_low);
	}
	b->rs485.want = (enum rs485_mode_want)mode;
	return bad;
}

static int
parse_tcp(conf_node bn, struct agent_bus_conf *b)
{
	uint32_t port = 502;

	int bad = copy_req(bn, "host", b->host, sizeof(b->host));

	bad |= conf_get_u32(bn, "port", 502, 1, 65535, &port);
	b->port = (uint16_t)port;
	return bad;
}

/* A warning at a node: one "file:line:col: ..." line of cfg->warnings (the agent logs them). */
static void __attribute__((format(printf, 3, 4)))
config_warn(struct agent_config *cfg, conf_node at, const char *fmt, ...)
{
	size_t n = strlen(cfg->warnings);
	va_list ap;
	int w;

	if (n + 1 >= sizeof(cfg->warnings))
		return;
	if (n > 0)
		cfg->warnings[n++] = '\n';
	w = conf_where(at, cfg->warnings + n, sizeof(cfg->warnings) - n);
	if (w < 0 || n + (size_t)w + 2 >= sizeof(cfg->warnings))
		return;
	n += (size_t)w;
	memcpy(cfg->warnings + n, ": ", 3);
	va_start(ap, fmt);
	vsnprintf(cfg->warnings + n + 2, sizeof(cfg->warnings) - n - 2, fmt, ap);
	va_end(ap);
}

/*
 * A device that does not answer holds the bus for (1 + retries) x timeout per poll (its
 * timeout budget, see bus.c's transact()). Longer than its own interval, its polls cannot
 * keep time; longer than another device's interval, that device's polls are late whenever
 * this one fails. A warning, not an error: a device that answers finishes far sooner, and a
 * slow poll is late, not lost.
 */
static void
warn_slow_devices(struct agent_config *cfg, conf_node devs, const struct agent_bus_conf *b)
{
	const struct agent_device_conf *f = NULL; /* the running device polled most often */

	for (size_t i = 0; i < b->ndevs; i++)
		if (b->devs[i].disabled[0] == '\0' &&
		    (f == NULL || b->devs[i].interval_ms < f->interval_ms))
			f = &b->devs[i];
	for (size_t i = 0; f != NULL && i < b->ndevs; i++) {
		const struct agent_device_conf *d = &b->devs[i];
		unsigned long long worst = (1ull + d->retries) * d->timeout_ms;
		conf_node dn = conf_seq_at(devs, i);

		if (d->disabled[0] != '\0' || worst <= f->interval_ms)
			continue;
		if (worst > d->interval_ms)
			config_warn(cfg, dn,
			    "device '%s': a poll it does not answer takes (1 + retries %u) x "
			    "timeout "
			    "%llu ms = %llu ms, longer than its interval (%llu ms): its polls "
			    "cannot "
			    "keep time when it fails; shorten timeout or retries, or lengthen "
			    "interval",
			    d->name, d->retries, (unsigned long long)d->timeout_ms, worst,
			    (unsigned long long)d->interval_ms);
		else
			config_warn(cfg, dn,
			    "device '%s': a poll it does not answer holds bus '%s' for (1 + "
			    "retries "
			    "%u) x timeout %llu ms = %llu ms, longer than the interval of device "
			    "'%s' "
			    "(%llu ms): that device's polls are late when this one fails",
			    d->name, b->name, d->retries, (unsigned long long)d->timeout_ms, worst,
			    f->name, (unsigned long long)f->interval_ms);
	}
}

/* Every point's topic expands within MB_TOPIC_OUT_MAX with this device's real names (the
 * profile checked its templates with short stand-ins): a topic too long for the bus made it
 * fail to start, and a reload, the old buses already stopped, left the agent without them. */
static int
check_topics(conf_node dn, const struct agent_config *cfg, const struct agent_bus_conf *b,
    const struct agent_device_conf *d)
{
	char out[MB_TOPIC_OUT_MAX];

	for (size_t i = 0; d->profile != NULL && i < d->profile->npoints; i++) {
		const struct mb_point *p = &d->profile->points[i];
		struct mb_topic_vars v = { cfg->topic_prefix, b->name, d->name, p->name,
			d->profile->name, d->unit_id };

		if (mb_topic_expand(p->topic, &v, out, sizeof(out)) < 0)
			return conf_error(dn,
			    "device '%s': the topic of point '%s' ('%s', profile '%s') is longer "
			    "than "
			    "%zu bytes with this bus, device and topic_prefix",
			    d->name, p->name, p->topic, d->profile->name, sizeof(out) - 1);
	}
	return 0;
}

static int
parse_bus(conf_node bn, struct agent_config *cfg, struct agent_bus_conf *b)
{
	static const char *const keys[] = { "name", "type", "device", "baud", "parity", "data_bits",
		"stop_bits", "rs485", "host", "port", "turnaround", "max_backoff",
		"pause_between_requests", "devices", NULL };
	conf_node devs;
	int kind = 0, bad = 0, bad_kind;

	if (!conf_is_map(bn))
		return conf_error(bn, "a bus must be a mapping");
	bad |= conf_check_keys(bn, keys);
	if (copy_req(bn, "name", b->name, sizeof(b->name)) == 0 && !mb_name_valid(b->name))
		bad |= conf_error(
		    conf_get(bn, "name"), "bus name '%s': use letters, digits, _ . : -", b->name);
	bad_kind = conf_get_enum(bn, "type", 0, bus_kinds, &kind);
	bad |= bad_kind;
	bad |= conf_get_duration_ms(
	    bn, "turnaround", kind == AGENT_BUS_TCP ? 1 : 5, 0, 10000, &b->turnaround_ms);
	bad |= conf_get_duration_ms(bn, "max_backoff", 30000, 100, 3600000, &b->max_backoff_ms);
	bad |= conf_get_duration_ms(bn, "pause_between_requests", 0, 0, 10000, &b->pause_ms);
	memcpy(b->state_dir, cfg->state_dir, sizeof(b->state_dir));
	b->kind = (enum agent_bus_kind)kind;
	/* An unknown type has no transport keys to check. */
	if (!bad_kind)
		bad |= b->kind == AGENT_BUS_RTU ? parse_rtu(bn, b) : parse_tcp(bn, b);
	devs = conf_get(bn, "devices");
	if (!conf_is_seq(devs) || conf_seq_len(devs) == 0)
		return conf_error(conf_present(devs) ? devs : bn,
		    "bus '%s' needs a non-empty 'devices' list", b->name);
	b->ndevs = conf_seq_len(devs);
	b->devs = calloc(b->ndevs, sizeof(*b->devs));
	if (b->devs == NULL)
		return conf_error(bn, "out of memory");
	for (size_t i = 0; i < b->ndevs; i++) {
		int dbad = parse_device(conf_seq_at(devs, i), cfg, &b->devs[i]);

		if (!dbad)
			dbad = check_topics(conf_seq_at(devs, i), cfg, b, &b->devs[i]);
		bad |= dbad;
		/* On a serial line 0 is broadcast (nobody answers) and 248..255 are reserved. */
		if (!bad_kind && b->kind == AGENT_BUS_RTU &&
		    conf_present(conf_get(conf_seq_at(devs, i), "unit_id")) &&
		    (b->devs[i].unit_id == 0 || b->devs[i].unit_id > 247))
			bad |= conf_error(conf_get(conf_seq_at(devs, i), "unit_id"),
			    "unit_id %u: RTU devices are 1..247", b->devs[i].unit_id);
	}
	if (!bad)
		warn_slow_devices(cfg, devs, b);
	return bad;
}

/* Device j of bus i against every device before it. */
static int
check_device_names(conf_node buses, const struct agent_config *cfg, size_t i, size_t j)
{
	const struct agent_device_conf *d = &cfg->buses[i].devs[j];
	conf_node dn = conf_seq_at(conf_get(conf_seq_at(buses, i), "devices"), j);

	if (d->name[0] == '\0') /* its own error already says why */
		return 0;
	for (size_t bi = 0; bi <= i; bi++)
		for (size_t dj = 0; dj < (bi == i ? j : cfg->buses[bi].ndevs); dj++) {
			const struct agent_device_conf *o = &cfg->buses[bi].devs[dj];

			if (strcmp(o->name, d->name) == 0)
				return conf_error(dn, "duplicate device name '%s'", d->name);
			if (bi == i && o->unit_id == d->unit_id &&
			    cfg->buses[i].kind == AGENT_BUS_RTU)
				return conf_error(dn, "unit_id %u is used twice on bus '%s'",
				    d->unit_id, cfg->buses[i].name);
		}
	return 0;
}

/* Bus and device names are global (commands name a device, not a bus); unit ids are per RTU bus. */
static int
check_names(conf_node buses, struct agent_config *cfg)
{
	int bad = 0;

	for (size_t i = 0; i < cfg->nbuses; i++) {
		const struct agent_bus_conf *b = &cfg->buses[i];

		for (size_t k = 0; k < i && b->name[0]; k++)
			if (strcmp(cfg->buses[k].name, b->name) == 0) {
				bad |= conf_error(
				    conf_seq_at(buses, i), "duplicate bus name '%s'", b->name);
				break;
			}
		for (size_t j = 0; j < b->ndevs; j++)
			bad |= check_device_names(buses, cfg, i, j);
	}
	return bad;
}

/* The section belongs to the uplink (mqtt_conf.c): defaults, keys and checks are its own. */
static int
parse_mqtt(conf_node a, struct agent_config *cfg)
{
	conf_node m = conf_get(a, "mqtt");

	cfg->mqtt = calloc(1, sizeof(*cfg->mqtt));
	if (cfg->mqtt == NULL)
		return conf_error(a, "out of memory");
	if (cfg->uplink == AGENT_UPLINK_MQTT && !conf_present(m))
		return conf_error(
		    a, "uplink mqtt needs an 'mqtt' section (host, port, client_id, keepalive)");
	return uplink_mqtt_conf_parse(m, cfg->mqtt);
}

static int
parse_sections(conf_node a, struct agent_config *cfg)
{
	static const char *const jsonl_keys[] = { "path", "commands", NULL };
	static const char *const cmd_keys[] = { "topic", "response_topic", NULL };
	static const char *const stats_keys[] = { "file", "interval", NULL };
	conf_node j = conf_get(a, "jsonl"), c = conf_get(a, "commands"), s = conf_get(a, "stats");
	int bad = 0;

	bad |= conf_check_keys(j, jsonl_keys);
	bad |= conf_check_keys(c, cmd_keys);
	bad |= conf_check_keys(s, stats_keys);
	bad |= copy_opt(j, "path", "-", cfg->jsonl_path, sizeof(cfg->jsonl_path));
	bad |= copy_opt(j, "commands", "", cfg->jsonl_commands, sizeof(cfg->jsonl_commands));
	bad |= copy_opt(c, "topic", "", cfg->cmd_topic, sizeof(cfg->cmd_topic));
	bad |= copy_opt(
	    c, "response_topic", "", cfg->cmd_response_topic, sizeof(cfg->cmd_response_topic));
	bad |= copy_opt(s, "file", "", cfg->stats_file, sizeof(cfg->stats_file));
	bad |= conf_get_duration_ms(s, "interval", 10000, 100, 3600000, &cfg->stats_interval_ms);
	if (cfg->cmd_topic[0] && strpbrk(cfg->cmd_topic, "+#") != NULL)
		bad |=
		    conf_error(conf_get(c, "topic"), "the command topic must not hold wildcards");
	if (cfg->cmd_topic[0] && !cfg->cmd_response_topic[0])
		snprintf(cfg->cmd_response_topic, sizeof(cfg->cmd_response_topic),
		    "%.170s/response", cfg->cmd_topic);
	return bad;
}

int
agent_listen_parse(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(s, ':');
	char host[64], *end;
	unsigned long port;
	size_t hlen;

	if (colon == NULL || colon == s || (hlen = (size_t)(colon - s)) >= sizeof(host))
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '1' || colon[1] > '9' || *end != '\0' || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[' && s[hlen - 1] == ']' && hlen > 2) {
		memcpy(host, s + 1, hlen - 2);
		host[hlen - 2] = '\0';
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &in4->sin_addr) == 1 ? 0 : -EINVAL;
}

/* agent.metrics: {listen: HOST:PORT, dataplane_telemetry: PATH}; absent: no /metrics. */
static int
parse_metrics(conf_node a, struct agent_config *cfg)
{
	static const char *const keys[] = { "listen", "dataplane_telemetry", NULL };
	conf_node m = conf_get(a, "metrics");
	struct sockaddr_storage ss;
	int bad;

	if (!conf_present(m))
		return 0;
	if (!conf_is_map(m))
		return conf_error(m, "'metrics' must be a mapping (listen, dataplane_telemetry)");
	bad = conf_check_keys(m, keys);
	if (copy_req(m, "listen", cfg->metrics_listen, sizeof(cfg->metrics_listen)) == 0 &&
	    agent_listen_parse(cfg->metrics_listen, &ss) != 0)
		bad |= conf_error(conf_get(m, "listen"),
		    "listen '%s': write an address and a port, 127.0.0.1:9880 or [::1]:9880",
		    cfg->metrics_listen);
	else if (!cfg->metrics_listen[0])
		bad = -1;
	if (copy_opt(m, "dataplane_telemetry", "/var/run/dpdk/edgegw/dpdk_telemetry.v2",
		cfg->dataplane_telemetry, sizeof(cfg->dataplane_telemetry)) == 0 &&
	    cfg->dataplane_telemetry[0] != '/')
		bad |= conf_error(conf_get(m, "dataplane_telemetry"),
		    "dataplane_telemetry: an absolute path (/var/run/dpdk/<file-prefix>/"
		    "dpdk_telemetry.v2)");
	return bad;
}

static int
load_profiles(conf_node a, const char *cfg_path, struct agent_config *cfg)
{
	char dir[512], tmp[512], err[2048];
	const char *pd = NULL;

	cfg->profiles_unread = true; /* until they are: devices' profiles are not looked up */
	if (!conf_present(conf_get(a, "profiles_dir")))
		return conf_error(a, "missing 'profiles_dir'");
	if (conf_get_str(a, "profiles_dir", "", &pd))
		return -1;
	if (pd[0] == '\0') /* "profiles_dir:" alone read the config's own folder */
		return conf_error(conf_get(a, "profiles_dir"), "empty 'profiles_dir'");
	snprintf(tmp, sizeof(tmp), "%s", cfg_path);
	if (pd[0] == '/')
		snprintf(dir, sizeof(dir), "%s", pd);
	else
		snprintf(dir, sizeof(dir), "%.200s/%.300s", dirname(tmp), pd);
	snprintf(cfg->profiles_dir, sizeof(cfg->profiles_dir), "%s", dir);
	if (mb_profile_dir_load_all(dir, &cfg->profiles, err, sizeof(err)) != 0)
		return conf_error(conf_get(a, "profiles_dir"), "%s", err);
	if (cfg->profiles.n == 0 && cfg->profiles.nbad == 0)
		return conf_error(conf_get(a, "profiles_dir"), "no *.yaml profiles in %s", dir);
	cfg->profiles_unread = false;
	if (cfg->strict && cfg->profiles.nbad != 0) {
		/* The profiles' own file:line are the useful ones; they lead the error text. */
		mb_profile_set_errors(&cfg->profiles, cfg->load_error, sizeof(cfg->load_error));
		return -1;
	}
	return 0;
}

/* Not strict: each bus's disabled devices move from devs to off (after the name checks, which
 * see every device). */
static int
split_disabled(struct agent_config *cfg)
{
	for (size_t i = 0; i < cfg->nbuses; i++) {
		struct agent_bus_conf *b = &cfg->buses[i];
		size_t keep = 0;

		for (size_t j = 0; j < b->ndevs; j++)
			b->noff += b->devs[j].disabled[0] != '\0';
		if (b->noff == 0)
			continue;
		b->off = calloc(b->noff, sizeof(*b->off));
		if (b->off == NULL)
			return -ENOMEM;
		b->noff = 0;
		for (size_t j = 0; j < b->ndevs; j++) {
			if (b->devs[j].disabled[0] != '\0')
				b->off[b->noff++] = b->devs[j];
			else
				b->devs[keep++] = b->devs[j];
		}
		b->ndevs = keep;
		cfg->ndisabled += b->noff;
	}
	return 0;
}

static int
parse_agent(conf_node a, const char *cfg_path, struct agent_config *cfg)
{
	static const char *const keys[] = { "log_level", "profiles_dir", "topic_prefix", "uplink",
		"jsonl", "mqtt", "commands", "stats", "metrics", "buses", "state_dir", NULL };
	conf_node buses;
	int lvl = LOG_LVL_INFO, up = 0, bad = 0;

	if (!conf_is_map(a))
		return conf_error(a, "'agent' must be a mapping");
	/* Every part is parsed even when one before failed: all of a file's errors are reported. */
	bad |= conf_check_keys(a, keys);
	bad |= conf_get_enum(a, "log_level", LOG_LVL_INFO, log_level_names, &lvl);
	if (copy_opt(a, "topic_prefix", "edgegw", cfg->topic_prefix, sizeof(cfg->topic_prefix)) ==
		0 &&
	    strpbrk(cfg->topic_prefix, "+#\"\\") != NULL)
		bad |= conf_error(
		    conf_get(a, "topic_prefix"), "topic_prefix must not hold + # \" or \\");
	bad |= copy_opt(a, "state_dir", "/var/lib/edgegw", cfg->state_dir, sizeof(cfg->state_dir));
	bad |= conf_get_enum(a, "uplink", 0, uplinks, &up);
	cfg->log_level = (enum log_level)lvl;
	cfg->uplink = (enum agent_uplink_kind)up;
	bad |= parse_mqtt(a, cfg);
	bad |= parse_sections(a, cfg);
	bad |= parse_metrics(a, cfg);
	bad |= load_profiles(a, cfg_path, cfg);
	if (cfg->mqtt != NULL)
		snprintf(cfg->mqtt->cmd_topic, sizeof(cfg->mqtt->cmd_topic), "%s", cfg->cmd_topic);
	buses = conf_get(a, "buses");
	if (!conf_is_seq(buses) || conf_seq_len(buses) == 0)
		return conf_error(
		    conf_present(buses) ? buses : a, "'agent' needs a non-empty 'buses' list");
	cfg->nbuses = conf_seq_len(buses);
	cfg->buses = calloc(cfg->nbuses, sizeof(*cfg->buses));
	if (cfg->buses == NULL)
		return conf_error(a, "out of memory");
	for (size_t i = 0; i < cfg->nbuses; i++)
		bad |= parse_bus(conf_seq_at(buses, i), cfg, &cfg->buses[i]);
	bad |= check_names(buses, cfg);
	if (bad)
		return -1;
	return split_disabled(cfg) ? conf_error(a, "out of memory") : 0;
}

static int
parse_doc(struct conf_doc *doc, const char *path, bool strict, struct agent_config *cfg, char *err,
    size_t errlen)
{
	conf_node root = conf_root(doc), a;
	int rc = -1;

	memset(cfg, 0, sizeof(*cfg));
	cfg->strict = strict;
	if (!conf_is_map(root))
		conf_error(root, "the gateway config must be a mapping");
	else if (!conf_present(a = conf_get(root, "agent")))
		conf_error(root, "no 'agent' section");
	else
		rc = parse_agent(a, path, cfg);
	if (conf_is_map(root) && store_conf_parse(conf_get(root, "uplink"), &cfg->store) != 0)
		rc = -1; /* the uplink: section (rules, spool) is the store's */
	if (rc != 0 || conf_error_count(doc) != 0) {
		/* The bad profiles' errors (strict) first, then the config's, one per line. */
		size_t n = (size_t)snprintf(err, errlen, "%s", cfg->load_error);

		if (n < errlen && conf_error_count(doc) != 0)
			conf_format_errors(doc, err + n + (n > 0), errlen - n - (n > 0));
		if (n > 0 && n + 1 < errlen && conf_error_count(doc) != 0)
			err[n] = '\n';
		if (err[0] == '\0')
			snprintf(err, errlen, "invalid config");
		agent_config_free(cfg);
		return -EINVAL;
	}
	return 0;
}

int
agent_config_load_mode(
    const char *path, bool strict, struct agent_config *cfg, char *err, size_t errlen)
{
	struct conf_doc *doc;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (conf_load_file(path, &doc, err, errlen) != 0)
		return -EINVAL;
	rc = parse_doc(doc, path, strict, cfg, err, errlen);
	conf_free(doc);
	return rc;
}

int
agent_config_parse_string_mode(const char *name, const char *text, size_t len, bool strict,
    struct agent_config *cfg, char *err, size_t errlen)
{
	struct conf_doc *doc;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (conf_load_string(name, text, len, &doc, err, errlen) != 0)
		return -EINVAL;
	rc = parse_doc(doc, name, strict, cfg, err, errlen);
	conf_free(doc);
	return rc;
}

int
agent_config_load(const char *path, struct agent_config *cfg, char *err, size_t errlen)
{
	return agent_config_load_mode(path, true, cfg, err, errlen);
}

int
agent_config_parse_string(const char *name, const char *text, size_t len, struct agent_config *cfg,
    char *err, size_t errlen)
{
	return agent_config_parse_string_mode(name, text, len, true, cfg, err, errlen);
}

static bool
device_same(const struct agent_device_conf *a, const struct agent_device_conf *b)
{
	return strcmp(a->name, b->name) == 0 && a->unit_id == b->unit_id &&
	    a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
	    a->retries == b->retries && a->pause_ms == b->pause_ms &&
	    mb_profile_same(a->profile, b->profile);
}

bool
agent_bus_conf_same(const struct agent_bus_conf *a, const struct agent_bus_conf *b)
{
	if (strcmp(a->name, b->name) != 0 || a->kind != b->kind ||
	    strcmp(a->device, b->device) != 0 || a->line.baud != b->line.baud ||
	    a->line.parity != b->line.parity || a->line.data_bits != b->line.data_bits ||
	    a->line.stop_bits != b->line.stop_bits || a->rs485.want != b->rs485.want ||
	    a->rs485.rts_delay_before_us != b->rs485.rts_delay_before_us ||
	    a->rs485.rts_delay_after_us != b->rs485.rts_delay_after_us ||
	    a->rs485.rts_on_send_low != b->rs485.rts_on_send_low || strcmp(a->host, b->host) != 0 ||
	    a->port != b->port || a->turnaround_ms != b->turnaround_ms ||
	    a->max_backoff_ms != b->max_backoff_ms || a->pause_ms != b->pause_ms ||
	    strcmp(a->state_dir, b->state_dir) != 0 || a->ndevs != b->ndevs)
		return false;
	for (size_t i = 0; i < a->ndevs; i++)
		if (!device_same(&a->devs[i], &b->devs[i]))
			return false;
	return true;
}

void
agent_config_free(struct agent_config *cfg)
{
	for (size_t i = 0; i < cfg->nbuses; i++) {
		free(cfg->buses[i].devs);
		free(cfg->buses[i].off);
	}
	free(cfg->buses);
	free(cfg->mqtt);
	cfg->mqtt = NULL;
	store_conf_free(cfg->store);
	cfg->store = NULL;
	cfg->buses = NULL;
	cfg->nbuses = 0;
	mb_profile_set_free(&cfg->profiles);
}
