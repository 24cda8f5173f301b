/* test_agent_config.c: the agent section's parser (agent/agent_config.c): its metrics key, and
 * devices disabled (not strict) or errors (strict) for bad and missing profiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_config.h"

static int
parse(const char *metrics, struct agent_config *cfg, char *err, size_t errlen)
{
	char text[2048];

	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  uplink: jsonl\n"
	    "%s"
	    "  buses:\n"
	    "    - {name: b, type: tcp, host: 127.0.0.1, devices: [{name: d, unit_id: 1, "
	    "profile: eastron-sdm120}]}\n",
	    PROFILES_DIR, metrics);
	return agent_config_parse_string("gw.yaml", text, strlen(text), cfg, err, errlen);
}

static void
test_metrics_absent(void **state)
{
	struct agent_config c;
	char err[1024];

	(void)state;
	assert_int_equal(parse("", &c, err, sizeof(err)), 0);
	assert_string_equal(c.metrics_listen, "");
	agent_config_free(&c);
}

static void
test_metrics_good(void **state)
{
	struct agent_config c;
	char err[1024];

	(void)state;
	assert_int_equal(parse("  metrics: {listen: 127.0.0.1:9880}\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.metrics_listen, "127.0.0.1:9880");
	assert_string_equal(c.dataplane_telemetry, "/var/run/dpdk/edgegw/dpdk_telemetry.v2");
	agent_config_free(&c);
	assert_int_equal(parse("  metrics: {listen: \"[::1]:80\", dataplane_telemetry: "
			       "/var/run/dpdk/x/dpdk_telemetry.v2}\n",
			     &c, err, sizeof(err)),
	    0);
	assert_string_equal(c.dataplane_telemetry, "/var/run/dpdk/x/dpdk_telemetry.v2");
	agent_config_free(&c);
}

static void
test_metrics_bad(void **state)
{
	static const struct {
		const char *yaml, *err;
	} bad[] = {
		{ "  metrics: {listen: 9880}\n", "gw.yaml:4:21: listen '9880'" },
		{ "  metrics: {listen: 'localhost:9880'}\n",
		    "gw.yaml:4:21: listen 'localhost:9880'" },
		{ "  metrics: {listen: '127.0.0.1:99999'}\n", "gw.yaml:4:21: listen" },
		{ "  metrics: {listen: '127.0.0.1:'}\n", "gw.yaml:4:21: listen" },
		{ "  metrics: {listen: '[::1:80'}\n", "gw.yaml:4:21: listen" },
		{ "  metrics: {dataplane_telemetry: /x}\n", "gw.yaml:4:12: missing 'listen'" },
		{ "  metrics: {listen: '127.0.0.1:1', port: 3}\n", "gw.yaml:4:" },
		{ "  metrics: {listen: '127.0.0.1:1', dataplane_telemetry: x.sock}\n",
		    "dataplane_telemetry: an absolute path" },
		{ "  metrics: yes\n", "'metrics' must be a mapping" },
	};
	struct agent_config c;
	char err[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i].yaml, &c, err, sizeof(err)), -EINVAL);
		if (strstr(err, bad[i].err) == NULL)
			fail_msg("case %zu: got '%s', want '%s'", i, err, bad[i].err);
	}
}

static void
test_listen_parse(void **state)
{
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(agent_listen_parse("0.0.0.0:9880", &ss), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(agent_listen_parse("[::]:9880", &ss), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(agent_listen_parse(":9880", &ss), -EINVAL);
	assert_int_equal(agent_listen_parse("1.2.3.4:0", &ss), -EINVAL);
	assert_int_equal(agent_listen_parse("1.2.3.4:08", &ss), -EINVAL);
}

/* A profiles folder in /tmp with one good profile and two bad ones, removed by the caller. */
static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
make_profiles(char *dir)
{
	strcpy(dir, "/tmp/test_agent_config.XXXXXX");
	assert_non_null(mkdtemp(dir));
	write_file(dir, "good.yaml", "points:\n  - {name: x, function: holding, address: 0}\n");
	/* YAML that does not parse: named by its file */
	write_file(dir, "broken.yaml", "points:\n  - {name: x, function: holding\n");
	/* a bad register map, named by its name: key */
	write_file(dir, "map.yaml",
	    "name: overlap\npoints:\n  - {name: x, function: holding, address: 0, type: f32}\n"
	    "  - {name: y, function: holding, address: 1}\n");
}

static void
remove_profiles(const char *dir)
{
	char path[256];

	for (const char *const *n =
		 (const char *const[]){ "good.yaml", "broken.yaml", "map.yaml", NULL };
	     *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		unlink(path);
	}
	rmdir(dir);
}

static int
parse_profiles(const char *dir, bool strict, struct agent_config *cfg, char *err, size_t errlen)
{
	char text[2048];

	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  uplink: jsonl\n"
	    "  buses:\n"
	    "    - name: b1\n"
	    "      type: tcp\n"
	    "      host: 127.0.0.1\n"
	    "      devices:\n"
	    "        - {name: ok, unit_id: 1, profile: good}\n"
	    "        - {name: syn, unit_id: 2, profile: broken}\n"
	    "        - {name: gone, unit_id: 3, profile: nosuch}\n"
	    "    - name: b2\n"
	    "      type: tcp\n"
	    "      host: 127.0.0.1\n"
	    "      devices: [{name: ovl, unit_id: 1, profile: overlap}]\n",
	    dir);
	return agent_config_parse_string_mode(
	    "gw.yaml", text, strlen(text), strict, cfg, err, errlen);
}

static void
test_bad_profile_disables_its_devices(void **state)
{
	struct agent_config c;
	char dir[64], err[4096];

	(void)state;
	make_profiles(dir);
	assert_int_equal(parse_profiles(dir, false, &c, err, sizeof(err)), 0);
	assert_int_equal(c.profiles.n, 1);
	assert_int_equal(c.profiles.nbad, 2);
	assert_int_equal(c.ndisabled, 3);
	assert_int_equal(c.buses[0].ndevs, 1);
	assert_string_equal(c.buses[0].devs[0].name, "ok");
	assert_non_null(c.buses[0].devs[0].profile);
	assert_int_equal(c.buses[0].noff, 2);
	assert_string_equal(c.buses[0].off[0].name, "syn");
	assert_null(c.buses[0].off[0].profile);
	/* the reason names the profile's own file:line:col */
	assert_non_null(strstr(c.buses[0].off[0].disabled, "profile 'broken' does not load: "));
	assert_non_null(strstr(c.buses[0].off[0].disabled, "broken.yaml:3:"));
	assert_string_equal(c.buses[0].off[1].name, "gone");
	assert_non_null(strstr(c.buses[0].off[1].disabled, "no profile named 'nosuch'"));
	assert_int_equal(c.buses[1].ndevs, 0);
	assert_int_equal(c.buses[1].noff, 1);
	assert_non_null(strstr(c.buses[1].off[0].disabled, "map.yaml:4:"));
	assert_non_null(strstr(c.buses[1].off[0].disabled, "overlaps point 'x'"));
	agent_config_free(&c);
	remove_profiles(dir);
}

/* A topic template that fits with the profile check's short stand-ins but not with the
 * config's real names: refused at load with the device's line (a reload then changes nothing).
 * It was taken, and the bus failed to start: at a reload, with the old buses already stopped,
 * the agent stopped with exit 0. */
static void
test_topic_too_long_with_real_names(void **state)
{
	char dir[64], text[2048], err[2048], n47[48], prefix[128];
	struct agent_config c;

	(void)state;
	memset(n47, 'n', 47);
	n47[47] = '\0';
	memset(prefix, 'p', 127);
	prefix[127] = '\0';
	strcpy(dir, "/tmp/test_agent_config.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(text, sizeof(text),
	    "name: %s\npoints:\n  - {name: %s, function: holding, address: 0, topic: "
	    "'{prefix}/{bus}/{device}/{profile}/{point}/{unit_id}'}\n",
	    n47, n47);
	write_file(dir, "good.yaml", text);
	for (int i = 0; i < 2; i++) {
		snprintf(text, sizeof(text),
		    "agent:\n  profiles_dir: %s\n  uplink: jsonl\n  topic_prefix: %s\n  buses:\n"
		    "    - name: %s\n      type: tcp\n      host: 127.0.0.1\n      devices:\n"
		    "        - {name: %s, unit_id: 247, profile: %s}\n",
		    dir, i == 0 ? "edgegw" : prefix, n47, n47, n47);
		err[0] = '\0';
		if (i == 0) { /* 202 bytes: taken */
			assert_int_equal(agent_config_parse_string(
					     "gw.yaml", text, strlen(text), &c, err, sizeof(err)),
			    0);
			agent_config_free(&c);
			continue;
		}
		assert_int_not_equal(
		    agent_config_parse_string("gw.yaml", text, strlen(text), &c, err, sizeof(err)),
		    0);
		assert_non_null(strstr(err, "gw.yaml:10:11: device 'nnn"));
		assert_non_null(strstr(err, "is longer than 319 bytes"));
	}
	snprintf(text, sizeof(text), "%s/good.yaml", dir);
	unlink(text);
	rmdir(dir);
}

static void
test_bad_profile_strict(void **state)
{
	struct agent_config c;
	char dir[64], err[4096];

	(void)state;
	make_profiles(dir);
	assert_int_equal(parse_profiles(dir, true, &c, err, sizeof(err)), -EINVAL);
	/* every bad file, each with its own file:line */
	if (strstr(err, "broken.yaml:3:") == NULL || strstr(err, "map.yaml:4:") == NULL)
		fail_msg("strict: %s", err);
	agent_config_free(&c);
	/* the plain call is strict */
	{
		char text[512];

		snprintf(text, sizeof(text),
		    "agent:\n  profiles_dir: %s\n  uplink: jsonl\n  buses:\n"
		    "    - {name: b, type: tcp, host: h, devices: [{name: d, unit_id: 1, profile: "
		    "good}]}\n",
		    dir);
		assert_int_equal(
		    agent_config_parse_string("gw.yaml", text, strlen(text), &c, err, sizeof(err)),
		    -EINVAL);
		agent_config_free(&c);
	}
	remove_profiles(dir);
}

static void
test_missing_profile_strict(void **state)
{
	static const char text[] = "agent:\n  profiles_dir: " PROFILES_DIR "\n  uplink: jsonl\n"
				   "  buses:\n    - {name: b, type: tcp, host: h, devices: "
				   "[{name: d, unit_id: 1, profile: nosuch}]}\n";
	struct agent_config c;
	char err[1024];

	(void)state;
	assert_int_equal(
	    agent_config_parse_string("gw.yaml", text, strlen(text), &c, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "gw.yaml:5:"));
	assert_non_null(strstr(err, "no profile named 'nosuch'"));
	assert_int_equal(agent_config_parse_string_mode(
			     "gw.yaml", text, strlen(text), false, &c, err, sizeof(err)),
	    0);
	assert_int_equal(c.ndisabled, 1);
	agent_config_free(&c);
}

/* Issue 18: every error of a file is reported, each with file:line:col, not just the first. */
static void
test_every_error_reported(void **state)
{
	static const char text[] =
	    "agent:\n"                                       /* 1 */
	    "  profiles_dir: " PROFILES_DIR "\n"             /* 2 */
	    "  uplink: jsonl\n"                              /* 3 */
	    "  log_level: loud\n"                            /* 4 */
	    "  colour: red\n"                                /* 5 */
	    "  metrics: {listen: 9880}\n"                    /* 6 */
	    "  stats: {interval: 1ms}\n"                     /* 7 */
	    "  buses:\n"                                     /* 8 */
	    "    - name: r\n"                                /* 9 */
	    "      type: rtu\n"                              /* 10 */
	    "      device: /dev/null\n"                      /* 11 */
	    "      baud: 12345\n"                            /* 12 */
	    "      devices:\n"                               /* 13 */
	    "        - {name: a, profile: eastron-sdm120}\n" /* 14: no unit_id */
	    "        - {name: b, unit_id: 1, profile: eastron-sdm120, interval: 1ms}\n" /* 15 */
	    "        - {name: b, unit_id: 2, profile: nosuch}\n" /* 16: twice, and no profile */
	    "    - name: t\n"                                    /* 17 */
	    "      type: tcp\n"                                  /* 18 */
	    "      host: h\n"                                    /* 19 */
	    "      port: 70000\n"                                /* 20 */
	    "      devices: [{name: c, unit_id: 1, profile: eastron-sdm120, retries: 99}]\n"; /* 21 */
	static const char *const want[] = {
		"gw.yaml:4:14: ",  /* log_level */
		"gw.yaml:5:3: ",   /* unknown key */
		"gw.yaml:6:21: ",  /* listen */
		"gw.yaml:7:21: ",  /* stats interval */
		"gw.yaml:12:13: ", /* baud */
		"gw.yaml:14:11: ", /* unit_id missing */
		"gw.yaml:15:68: ", /* interval */
		"gw.yaml:16:11: ", /* duplicate name b */
		"gw.yaml:16:42: ", /* profile nosuch */
		"gw.yaml:20:13: ", /* port */
		"gw.yaml:21:73: ", /* retries */
	};
	struct agent_config c;
	char err[4096];
	size_t lines = 0;

	(void)state;
	assert_int_equal(
	    agent_config_parse_string("gw.yaml", text, strlen(text), &c, err, sizeof(err)),
	    -EINVAL);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(err, want[i]) == NULL)
			fail_msg("no '%s' in:\n%s", want[i], err);
	for (const char *p = err; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	if (lines + 1 != sizeof(want) / sizeof(want[0]))
		fail_msg(
		    "%zu errors, want %zu:\n%s", lines + 1, sizeof(want) / sizeof(want[0]), err);
}

/* Issue 18: a device whose failing poll ((1 + retries) x timeout) outlasts its own interval, or
 * another device's on its bus, is a warning at its file:line:col, not an error; a device
 * within every interval and a disabled one are not. */
static void
test_slow_device_warns(void **state)
{
	static const char text[] =
	    "agent:\n"                           /* 1 */
	    "  profiles_dir: " PROFILES_DIR "\n" /* 2 */
	    "  uplink: jsonl\n"                  /* 3 */
	    "  buses:\n"                         /* 4 */
	    "    - name: t\n"                    /* 5 */
	    "      type: tcp\n"                  /* 6 */
	    "      host: h\n"                    /* 7 */
	    "      devices:\n"                   /* 8 */
	    "        - {name: fast, unit_id: 1, profile: eastron-sdm120, interval: 1s, "
	    "timeout: 300ms, retries: 2}\n" /* 9: 900 ms, fine */
	    "        - {name: late, unit_id: 2, profile: eastron-sdm120, interval: 1s, "
	    "timeout: 400ms, retries: 2}\n" /* 10: 1200 ms > its own 1 s */
	    "        - {name: slow, unit_id: 3, profile: eastron-sdm120, interval: 10s, "
	    "timeout: 600ms, retries: 1}\n" /* 11: 1200 ms > fast's 1 s */
	    "        - {name: off, unit_id: 4, profile: nosuch, interval: 1s, timeout: 5s}\n";
	struct agent_config c;
	char err[1024];
	size_t lines = 0;

	(void)state;
	assert_int_equal(agent_config_parse_string_mode(
			     "gw.yaml", text, strlen(text), false, &c, err, sizeof(err)),
	    0);
	if (strstr(c.warnings, "gw.yaml:10:11: device 'late': ") == NULL ||
	    strstr(c.warnings, "longer than its interval (1000 ms)") == NULL ||
	    strstr(c.warnings, "gw.yaml:11:11: device 'slow': ") == NULL ||
	    strstr(c.warnings, "interval of device 'fast' (1000 ms)") == NULL)
		fail_msg("warnings:\n%s", c.warnings);
	for (const char *p = c.warnings; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 1); /* two warnings: not fast, not off */
	agent_config_free(&c);
}

/* What a reload keeps: a bus is the same when nothing it polls with changed. */
static void
test_bus_same(void **state)
{
	static const char *const bus2[] = {
		"devices: [{name: c, unit_id: 2, profile: eastron-sdm120}]",
		"devices: [{name: c, unit_id: 2, profile: eastron-sdm120, interval: 2s}]",
		"devices: [{name: c, unit_id: 3, profile: eastron-sdm120}]",
		"devices: [{name: c, unit_id: 2, profile: eastron-sdm630}]",
		"port: 503, devices: [{name: c, unit_id: 2, profile: eastron-sdm120}]",
	};
	struct agent_config a, b;
	char text[1024], err[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bus2) / sizeof(bus2[0]); i++) {
		struct agent_config *c = i == 0 ? &a : &b;

		snprintf(text, sizeof(text),
		    "agent:\n  profiles_dir: " PROFILES_DIR "\n  uplink: jsonl\n  buses:\n"
		    "    - {name: b1, type: tcp, host: h, devices: [{name: d, unit_id: 1, "
		    "profile: eastron-sdm120}]}\n"
		    "    - {name: b2, type: tcp, host: h, %s}\n",
		    bus2[i]);
		assert_int_equal(
		    agent_config_parse_string("gw.yaml", text, strlen(text), c, err, sizeof(err)),
		    0);
		if (i == 0)
			continue;
		/* b1 did not change in any of them (its profile is another load of the same file) */
		assert_true(agent_bus_conf_same(&a.buses[0], &b.buses[0]));
		assert_false(agent_bus_conf_same(&a.buses[1], &b.buses[1]));
		agent_config_free(&b);
	}
	assert_true(agent_bus_conf_same(&a.buses[1], &a.buses[1]));
	agent_config_free(&a);
}

/* Every field of a bus and of its devices counts: a change to any one of them makes the bus
 * "not the same" (a reload restarts its poller), and the copy of an unchanged one is the same. */
static void
test_bus_same_field_by_field(void **state)
{
	static const struct mb_profile prof = { .name = "p" }; /* compared by mb_profile_same */
	struct agent_device_conf d0 = { .name = "d",
		.unit_id = 1,
		.interval_ms = 1000,
		.timeout_ms = 500,
		.retries = 2,
		.pause_ms = 0,
		.profile = &prof };
	struct agent_bus_conf a = { .name = "b",
		.kind = AGENT_BUS_RTU,
		.device = "/dev/ttyS0",
		.line = { 9600, 'N', 8, 1 },
		.host = "h",
		.port = 502,
		.turnaround_ms = 10,
		.max_backoff_ms = 60000,
		.pause_ms = 5,
		.state_dir = "/var/lib/x",
		.ndevs = 1 };
	struct agent_device_conf db;
	struct agent_bus_conf b;
	int changed = 0;

	(void)state;
	a.devs = &d0;
#define CHANGE(stmt)                                            \
	do {                                                    \
		b = a;                                          \
		db = d0;                                        \
		b.devs = &db;                                   \
		assert_true(agent_bus_conf_same(&a, &b));       \
		stmt;                                           \
		if (agent_bus_conf_same(&a, &b))                \
			fail_msg("'%s' went unnoticed", #stmt); \
		changed++;                                      \
	} while (0)
	CHANGE(b.name[0] = 'c');
	CHANGE(b.kind = AGENT_BUS_TCP);
	CHANGE(b.device[5] = 'X');
	CHANGE(b.line.baud = 19200);
	CHANGE(b.line.parity = 'E');
	CHANGE(b.line.data_bits = 7);
	CHANGE(b.line.stop_bits = 2);
	CHANGE(b.rs485.want = RS485_MODE_ON);
	CHANGE(b.rs485.rts_delay_before_us = 1);
	CHANGE(b.rs485.rts_delay_after_us = 1);
	CHANGE(b.rs485.rts_on_send_low = true);
	CHANGE(b.host[0] = 'g');
	CHANGE(b.port = 503);
	CHANGE(b.turnaround_ms = 11);
	CHANGE(b.max_backoff_ms = 1);
	CHANGE(b.pause_ms = 6);
	CHANGE(b.state_dir[1] = 'x');
	CHANGE(b.ndevs = 0);
	CHANGE(db.name[0] = 'e');
	CHANGE(db.unit_id = 2);
	CHANGE(db.interval_ms = 2000);
	CHANGE(db.timeout_ms = 600);
	CHANGE(db.retries = 3);
	CHANGE(db.pause_ms = 1);
#undef CHANGE
	assert_int_equal(changed, 24);
}

static void
test_profile_same(void **state)
{
	static const char base[] =
	    "name: p\npoints:\n  - {name: x, function: holding, address: 0}\n";
	static const char comment[] = "# c\nname: p\ndescription: d\npoints:\n\n"
				      "  - {name: x, function: holding, address: 0}\n";
	static const char other[] =
	    "name: p\npoints:\n  - {name: x, function: holding, address: 1}\n";
	static const char hole[] =
	    "name: p\npoints:\n  - {name: x, function: holding, address: 0}\n"
	    "holes: [{function: holding, address: 5}]\n";
	struct mb_profile p0, p1;
	char err[512];

	(void)state;
	assert_int_equal(mb_profile_parse("a.yaml", base, strlen(base), &p0, err, sizeof(err)), 0);
	assert_int_equal(
	    mb_profile_parse("b.yaml", comment, strlen(comment), &p1, err, sizeof(err)), 0);
	assert_true(mb_profile_same(&p0, &p1));
	mb_profile_free(&p1);
	assert_int_equal(
	    mb_profile_parse("b.yaml", other, strlen(other), &p1, err, sizeof(err)), 0);
	assert_false(mb_profile_same(&p0, &p1));
	mb_profile_free(&p1);
	assert_int_equal(mb_profile_parse("b.yaml", hole, strlen(hole), &p1, err, sizeof(err)), 0);
	assert_false(mb_profile_same(&p0, &p1));
	mb_profile_free(&p1);
	mb_profile_free(&p0);
}

/* Whole configs that are wrong in one place each: refused, with the error at that place. */
static void
test_config_errors(void **state)
{
#define BUS                                                                            \
	"    - {name: b, type: tcp, host: 127.0.0.1, devices: [{name: d, unit_id: 1, " \
	"profile: eastron-sdm120}]}\n"
	static const struct {
		const char *agent; /* lines after "agent:\n  profiles_dir: ...\n" */
		const char *err;
	} bad[] = {
		{ "  uplink: jsonl\n  buses:\n    - 7\n", "a bus must be a mapping" },
		{ "  uplink: jsonl\n  buses:\n    - {name: 'b b', type: tcp, host: h, devices: "
		  "[{name: d, unit_id: 1, profile: eastron-sdm120}]}\n",
		    "bus name 'b b'" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: tcp, host: h}\n",
		    "bus 'b' needs a non-empty 'devices' list" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: tcp, host: h, devices: []}\n",
		    "gw.yaml:5:46: bus 'b' needs a non-empty 'devices' list" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: tcp, host: h, devices: [7]}\n",
		    "a device must be a mapping" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: tcp, host: h, devices: [{name: "
		  "'d d', unit_id: 1, profile: eastron-sdm120}]}\n",
		    "device name 'd d'" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: tcp, host: h, devices: [{name: "
		  "d, profile: eastron-sdm120}]}\n",
		    "device 'd' needs a 'unit_id'" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: rtu, device: /dev/x, devices: "
		  "[{name: d, unit_id: 0, profile: eastron-sdm120}]}\n",
		    "gw.yaml:5:73: unit_id 0: RTU devices are 1..247" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: rtu, device: /dev/x, devices: "
		  "[{name: d, unit_id: 248, profile: eastron-sdm120}]}\n",
		    "unit_id 248: RTU devices are 1..247" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: rtu, device: /dev/x, baud: "
		  "1234, "
		  "devices: [{name: d, unit_id: 1, profile: eastron-sdm120}]}\n",
		    "baud 1234 is not a standard rate" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: tcp, host: h, devices: [{name: "
		  "d, unit_id: 1, profile: eastron-sdm120}, {name: d, unit_id: 2, profile: "
		  "eastron-sdm120}]}\n",
		    "duplicate device name 'd'" },
		{ "  uplink: jsonl\n  buses:\n    - {name: b, type: rtu, device: /dev/x, devices: "
		  "[{name: d, unit_id: 3, profile: eastron-sdm120}, {name: e, unit_id: 3, profile: "
		  "eastron-sdm120}]}\n",
		    "unit_id 3 is used twice on bus 'b'" },
		{ "  uplink: jsonl\n  buses:\n" BUS BUS, "gw.yaml:6:7: duplicate bus name 'b'" },
		{ "  uplink: jsonl\n  commands: {topic: 'a/+/c'}\n  buses:\n" BUS,
		    "the command topic must not hold wildcards" },
		{ "  uplink: jsonl\n  topic_prefix: 'a/#'\n  buses:\n" BUS,
		    "topic_prefix must not hold" },
		{ "  uplink: jsonl\n  metrics: 7\n  buses:\n" BUS, "'metrics' must be a mapping" },
		{ "  uplink: jsonl\n  buses: 7\n", "needs a non-empty 'buses' list" },
		{ "  uplink: jsonl\n  buses: []\n", "needs a non-empty 'buses' list" },
		{ "  uplink: pigeon\n  buses:\n" BUS, "not one of" },
		{ "  uplink: mqtt\n  buses:\n" BUS, "uplink mqtt needs an 'mqtt' section" },
		{ "  uplink: jsonl\n  commands: {topic: a, colour: red}\n  buses:\n" BUS,
		    "gw.yaml:4:24: unknown key 'colour'" },
		{ "  uplink: jsonl\n  stats: {interval: 1ms}\n  buses:\n" BUS,
		    "gw.yaml:4:21: duration 1ms is out of range" },
	};
	char text[4096], err[2048];
	struct agent_config c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "agent:\n  profiles_dir: %s\n%s", PROFILES_DIR,
		    bad[i].agent);
		err[0] = '\0';
		if (agent_config_parse_string(
			"gw.yaml", text, strlen(text), &c, err, sizeof(err)) == 0) {
			agent_config_free(&c);
			fail_msg("case %zu accepted", i);
		}
		if (strstr(err, bad[i].err) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, bad[i].err);
	}
#undef BUS
}

/* The file around the section: not a mapping, no agent section, an agent that is not a
 * mapping, a profiles_dir that is missing, empty, not a folder, or holds no profile. */
static void
test_document_errors(void **state)
{
	static const struct {
		const char *text, *err;
	} bad[] = {
		{ "- 1\n- 2\n", "the gateway config must be a mapping" },
		{ "dataplane: {}\n", "no 'agent' section" },
		{ "agent: 7\n", "'agent' must be a mapping" },
		{ "agent:\n  uplink: jsonl\n  buses: []\n", "missing 'profiles_dir'" },
		/* found by tests/fuzz/config: an empty one read the config's own folder */
		{ "agent:\n  profiles_dir:\n  uplink: jsonl\n  buses: []\n",
		    "gw.yaml:2:16: empty 'profiles_dir'" },
		{ "agent:\n  profiles_dir: /nonexistent/profiles\n  uplink: jsonl\n  buses: []\n",
		    "gw.yaml:2:17: profiles_dir /nonexistent/profiles: No such file" },
		{ "agent:\n  profiles_dir: /\n  uplink: jsonl\n  buses: []\n",
		    "no *.yaml profiles in /" },
		{ "agent: {\n", "gw.yaml:" },
	};
	char err[2048];
	struct agent_config c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (agent_config_parse_string(
			"gw.yaml", bad[i].text, strlen(bad[i].text), &c, err, sizeof(err)) == 0) {
			agent_config_free(&c);
			fail_msg("case %zu accepted", i);
		}
		if (strstr(err, bad[i].err) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, bad[i].err);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_absent),
		cmocka_unit_test(test_metrics_good),
		cmocka_unit_test(test_metrics_bad),
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_bad_profile_disables_its_devices),
		cmocka_unit_test(test_bad_profile_strict),
		cmocka_unit_test(test_topic_too_long_with_real_names),
		cmocka_unit_test(test_missing_profile_strict),
		cmocka_unit_test(test_every_error_reported),
		cmocka_unit_test(test_slow_device_warns),
		cmocka_unit_test(test_bus_same),
		cmocka_unit_test(test_bus_same_field_by_field),
		cmocka_unit_test(test_profile_same),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_document_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
