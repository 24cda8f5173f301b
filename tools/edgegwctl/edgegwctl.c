/*
 * edgegwctl: the operator's view of a running gateway, and its config check and reload.
 *   edgegwctl [-c FILE] [-a HOST:PORT] [-t SOCKET] COMMAND
 * It reads the dataplane over its DPDK telemetry socket (lib/telemetry) and the agent over the
 * agent's HTTP endpoint (/stats, agent.metrics.listen); both addresses come from the gateway
 * config's agent.metrics section unless given. It holds no state and changes nothing but the
 * programs' config (reload), so it is safe to run at any time.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "tel_client.h"

#define CTL_TIMEOUT_MS 2000

struct ctl {
	const char *cfg_path;
	char agent_addr[128]; /* host:port of agent.metrics.listen */
	char tel_path[256];   /* the dataplane's telemetry socket */
	bool json;
};

/* agent.metrics.{listen,dataplane_telemetry} from the config, when it can be read. */
static void
ctl_read_config(struct ctl *c, bool need_agent, bool need_tel)
{
	struct conf_doc *doc;
	const char *s;
	char err[512];
	conf_node m;

	if (!need_agent && !need_tel)
		return;
	if (conf_load_file(c->cfg_path, &doc, err, sizeof(err)) != 0) {
		fprintf(stderr, "edgegwctl: %s (using the defaults)\n", err);
		return;
	}
	m = conf_get(conf_get(conf_root(doc), "agent"), "metrics");
	if (need_agent && conf_get_str(m, "listen", "", &s) == 0 && s[0])
		snprintf(c->agent_addr, sizeof(c->agent_addr), "%s", s);
	if (need_tel && conf_get_str(m, "dataplane_telemetry", "", &s) == 0 && s[0])
		snprintf(c->tel_path, sizeof(c->tel_path), "%s", s);
	conf_free(doc);
}

/* GET path from the agent: the body (malloc'd) or NULL with the reason on stderr. */
static char *
agent_get(const struct ctl *c, const char *path)
{
	char host[128], req[256], *port, *buf = NULL, *body;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	struct timeval tv = { CTL_TIMEOUT_MS / 1000, 0 };
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	snprintf(host, sizeof(host), "%s", c->agent_addr);
	port = strrchr(host, ':');
	if (port == NULL) {
		fprintf(stderr, "edgegwctl: agent address '%s': HOST:PORT\n", c->agent_addr);
		return NULL;
	}
	*port++ = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "edgegwctl: agent address '%s' not understood\n", c->agent_addr);
		return NULL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		fprintf(stderr,
		    "edgegwctl: agent at %s: %s (is it running, with agent.metrics set?)\n",
		    c->agent_addr, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	freeaddrinfo(ai);
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, c->agent_addr);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		goto fail;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (nb == NULL)
				goto fail;
			buf = nb;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0 || body == NULL) {
		fprintf(stderr, "edgegwctl: agent at %s: unexpected answer to %s\n", c->agent_addr,
		    path);
		free(buf);
		return NULL;
	}
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return buf;
fail:
	fprintf(stderr, "edgegwctl: agent at %s: %s\n", c->agent_addr, strerror(errno));
	close(fd);
	free(buf);
	return NULL;
}

static json_t *
agent_stats(const struct ctl *c)
{
	char *body = agent_get(c, "/stats");
	json_error_t je;
	json_t *j;

	if (body == NULL)
		return NULL;
	j = json_loads(body, 0, &je);
	if (j == NULL)
		fprintf(stderr, "edgegwctl: agent /stats: bad JSON: %s\n", je.text);
	free(body);
	return j;
}

/* The dataplane's replies to cmds (NULL where it failed); pid set; -1 when it is not there. */
static int
dp_query(
    const struct ctl *c, const char *const *cmds, json_t **out, size_t n, pid_t *pid, bool quiet)
{
	struct tel_conn t;
	char err[300];

	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	if (tel_open(&t, c->tel_path, CTL_TIMEOUT_MS, err, sizeof(err)) != 0) {
		if (!quiet)
			fprintf(stderr, "edgegwctl: dataplane: %s\n", err);
		return -1;
	}
	if (pid != NULL)
		*pid = t.pid;
	for (size_t i = 0; i < n; i++)
		out[i] = tel_query(&t, cmds[i], err, sizeof(err));
	tel_close(&t);
	return 0;
}

static long long
jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void
print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	putchar('\n');
}

static int
cmd_status(const struct ctl *c)
{
	static const char *const cmds[] = { "/edgegw/status", "/edgegw/mem" };
	json_t *dp[2], *ag, *all = json_object();
	pid_t pid = 0;
	bool dp_up = dp_query(c, cmds, dp, 2, &pid, true) == 0 && dp[0] != NULL;
	int rc = 0;

	ag = agent_stats(c);
	if (c->json) {
		json_object_set_new(all, "dataplane",
		    dp_up ? json_pack("{s:i,s:O}", "pid", (json_int_t)pid, "status", dp[0])
			  : json_null());
		json_object_set(all, "agent", ag ? ag : json_null());
		print_json(all);
	} else {
		if (dp_up)
			printf(
			    "dataplane: running (pid %d), up %llds, %lld worker(s), link %s %lld "
			    "Mb/s, %lld TCP flows, %lld ARP entries, %lld MQTT sessions\n",
			    (int)pid, jint(dp[0], "uptime_s"), jint(dp[0], "workers"),
			    jint(dp[0], "link_up") ? "up" : "DOWN", jint(dp[0], "link_speed_mbps"),
			    jint(dp[0], "tcp_flows"), jint(dp[0], "arp_entries"),
			    jint(dp[1], "mqtt_sessions"));
		else
			printf("dataplane: not answering on %s\n", c->tel_path);
		if (ag != NULL) {
			json_t *up = json_object_get(ag, "uplink"), *b;
			size_t i, nb = json_array_size(json_object_get(ag, "buses")), conn = 0;

			json_array_foreach(json_object_get(ag, "buses"), i, b) conn +=
			    json_is_true(json_object_get(b, "connected"));
			printf("agent: running (pid %lld), up %llds, %zu of %zu bus(es) connected, "
			       "uplink %s, %lld queued",
			    jint(ag, "pid"), jint(ag, "uptime_ms") / 1000, conn, nb,
			    json_is_true(json_object_get(up, "connected")) ? "connected"
									   : "DISCONNECTED",
			    jint(up, "queued"));
			if (jint(ag, "devices_disabled") > 0) /* a bad or missing profile */
				printf(", %lld device(s) DISABLED (edgegwctl devices)",
				    jint(ag, "devices_disabled"));
			putchar('\n');
		} else {
			printf("agent: not answering on %s\n", c->agent_addr);
		}
	}
	rc = dp_up && ag != NULL ? 0 : 1;
	for (int i = 0; i < 2; i++)
		json_decref(dp[i]);
	json_decref(ag);
	json_decref(all);
	return rc;
}

/* A table of the non-zero counters of dict, with their kinds (zero ones with --all). */
static void
print_counters(const char *title, json_t *dict, json_t *kinds, bool all)
{
	const char *key;
	json_t *v;

	printf("%s\n", title);
	json_object_foreach(dict, key, v)
	{
		const char *k = json_string_value(json_object_get(kinds, key));

		if (all || json_integer_value(v) != 0)
			printf("  %-34s %14lld  %s\n", key, (long long)json_integer_value(v),
			    k && strcmp(k, "info") != 0 ? k : "");
	}
}

static int
cmd_stats(const struct ctl *c, bool all)
{
	static const char *const cmds[] = { "/edgegw/counters", "/edgegw/kinds", "/edgegw/broker",
		"/edgegw/broker_kinds", "/edgegw/status", "/edgegw/mem", "/edgegw/workers" };
	json_t *dp[7], *ag = agent_stats(c);
	bool dp_up = dp_query(c, cmds, dp, 7, NULL, false) == 0 && dp[0] != NULL;

	if (c->json) {
		json_t *o = json_object();

		if (dp_up)
			json_object_set_new(o, "dataplane",
			    json_pack("{s:O,s:O*,s:O*,s:O*,s:O*,s:O*,s:O*}", "counters", dp[0],
				"kinds", dp[1], "broker", dp[2], "broker_kinds", dp[3], "status",
				dp[4], "mem", dp[5], "workers", dp[6]));
		else
			json_object_set_new(o, "dataplane", json_null());
		json_object_set(o, "agent", ag ? ag : json_null());
		print_json(o);
		json_decref(o);
	} else {
		if (dp_up) {
			print_counters("dataplane counters (non-zero; kind when not info):", dp[0],
			    dp[1], all);
			if (dp[2] != NULL)
				print_counters("broker counters:", dp[2], dp[3], all);
		}
		if (ag != NULL) {
			json_t *up = json_object_get(ag, "uplink");
			const char *key;
			json_t *v;

			printf("agent: queue_dropped %lld, commands_rejected %lld\nuplink:",
			    jint(ag, "queue_dropped"), jint(ag, "commands_rejected"));
			json_object_foreach(up, key, v) printf(" %s %s", key,
			    json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no") : "");
			putchar('\n');
		}
	}
	for (int i = 0; i < 7; i++)
		json_decref(dp[i]);
	json_decref(ag);
	return dp_up && ag != NULL ? 0 : 1;
}

/* devices --json: every device as the table lists them, one object each with its bus: those
 * polled (their counters and state), then the disabled ones (their reason, "disabled": true). */
static int
print_devices_json(json_t *ag)
{
	json_t *all = json_array(), *b, *d;
	size_t i, j;

	json_array_foreach(json_object_get(ag, "buses"), i, b)
	    json_array_foreach(json_object_get(b, "devices"), j, d)
	{
		json_t *o = json_deep_copy(d);

		json_object_set(o, "bus", json_object_get(b, "name"));
		json_object_set_new(o, "disabled", json_false());
		json_array_append_new(all, o);
	}
	json_array_foreach(json_object_get(ag, "disabled_devices"), j, d)
	{
		json_t *o = json_deep_copy(d);

		json_object_set_new(o, "disabled", json_true());
		json_array_append_new(all, o);
	}
	print_json(all);
	json_decref(all);
	json_decref(ag);
	return 0;
}

static int
cmd_buses(const struct ctl *c, bool devices)
{
	json_t *ag = agent_stats(c), *b, *d;
	size_t i, j;

	if (ag == NULL)
		return 1;
	if (c->json && devices)
		return print_devices_json(ag);
	if (c->json) {
		print_json(json_object_get(ag, "buses"));
		json_decref(ag);
		return 0;
	}
	if (devices)
		printf("%-16s %-16s %4s %-8s %8s %9s %9s %8s %6s %6s %9s\n", "BUS", "DEVICE",
		    "UNIT", "STATE", "POLLS", "REQUESTS", "RESPONSES", "TIMEOUTS", "CRC", "EXC",
		    "PUBLISHED");
	else
		printf("%-16s %-9s %6s %9s %9s %8s %6s %6s %9s\n", "BUS", "CONNECTED", "BUSY%",
		    "REQUESTS", "RESPONSES", "TIMEOUTS", "CRC", "EXC", "LATE");
	json_array_foreach(json_object_get(ag, "buses"), i, b)
	{
		const char *bn = json_string_value(json_object_get(b, "name"));

		if (!devices) {
			printf("%-16s %-9s %6.1f %9lld %9lld %8lld %6lld %6lld %9lld\n", bn,
			    json_is_true(json_object_get(b, "connected")) ? "yes" : "no",
			    100.0 * json_number_value(json_object_get(b, "utilisation")),
			    jint(b, "requests"), jint(b, "responses"), jint(b, "timeouts"),
			    jint(b, "crc_errors"), jint(b, "exceptions"), jint(b, "late_polls"));
			continue;
		}
		json_array_foreach(json_object_get(b, "devices"), j, d)
		    printf("%-16s %-16s %4lld %-8s %8lld %9lld %9lld %8lld %6lld %6lld %9lld\n", bn,
			json_string_value(json_object_get(d, "name")), jint(d, "unit_id"),
			json_string_value(json_object_get(d, "state")), jint(d, "polls"),
			jint(d, "requests"), jint(d, "responses"), jint(d, "timeouts"),
			jint(d, "crc_errors"), jint(d, "exceptions"), jint(d, "published"));
	}
	/* Devices whose profile is bad or missing: not polled, their reason as the state. */
	if (devices)
		json_array_foreach(json_object_get(ag, "disabled_devices"), j, d)
		    printf("%-16s %-16s %4lld %s\n", json_string_value(json_object_get(d, "bus")),
			json_string_value(json_object_get(d, "name")), jint(d, "unit_id"),
			json_string_value(json_object_get(d, "state")));
	json_decref(ag);
	return 0;
}

/* The program next to this one (an installed bin/, or the build tree), else from PATH. */
static void
program_path(const char *name, const char *rel_build, char *out, size_t outlen)
{
	char self[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	snprintf(out, outlen, "%s", name);
	if (n <= 0)
		return;
	self[n] = '\0';
	snprintf(cand, sizeof(cand), "%s/%s", dirname(self), name);
	if (access(cand, X_OK) == 0) {
		snprintf(out, outlen, "%s", cand);
		return;
	}
	snprintf(cand, sizeof(cand), "%s/../../%s", self, rel_build); /* self is dirname'd */
	if (access(cand, X_OK) == 0)
		snprintf(out, outlen, "%s", cand);
}

static int
run_wait(const char *prog, char *const argv[])
{
	int st;
	pid_t p = fork();

	if (p < 0)
		return -1;
	if (p == 0) {
		execvp(prog, argv);
		fprintf(stderr, "edgegwctl: %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	if (waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Both programs' own --check: each parses and checks its section the way it will run it. */
static int
cmd_config_check(const char *file)
{
	static const struct {
		const char *name, *build;
	} progs[] = { { "edgegw-dataplane", "dataplane/edgegw-dataplane" },
		{ "edgegw-agent", "agent/edgegw-agent" } };
	int bad = 0;

	for (size_t i = 0; i < 2; i++) {
		char prog[PATH_MAX + 64];
		char *argv[] = { (char *)progs[i].name, "--check", "-c", (char *)file, NULL };
		int rc;

		program_path(progs[i].name, progs[i].build, prog, sizeof(prog));
		fflush(stdout);
		rc = run_wait(prog, argv);
		printf("%s: %s\n", progs[i].name, rc == 0 ? "ok" : "errors above");
		bad |= rc != 0;
	}
	return bad ? 1 : 0;
}

/* Does systemd run this unit? */
static bool
unit_active(const char *unit)
{
	char *isact[] = { "systemctl", "--quiet", "is-active", (char *)unit, NULL };

	return access("/run/systemd/system", F_OK) == 0 && run_wait("systemctl", isact) == 0;
}

static int
unit_reload(const char *unit)
{
	char *rel[] = { "systemctl", "reload", (char *)unit, NULL };
	int rc = run_wait("systemctl", rel);

	printf("%s: systemctl reload\n", unit);
	return rc != 0;
}

static int
reload_agent(const struct ctl *c)
{
	json_t *ag;
	pid_t pid;

	if (unit_active("edgegw-agent.service"))
		return unit_reload("edgegw-agent.service");
	if ((ag = agent_stats(c)) == NULL)
		return 1;
	pid = (pid_t)jint(ag, "pid");
	json_decref(ag);
	if (pid <= 0 || kill(pid, SIGHUP) != 0) {
		fprintf(stderr, "edgegwctl: agent pid %d: %s\n", (int)pid, strerror(errno));
		return 1;
	}
	printf("agent: SIGHUP sent (pid %d); see its log for what changed\n", (int)pid);
	return 0;
}

static int
reload_dataplane(const struct ctl *c)
{
	static const char *const cmds[] = { "/edgegw/status" };
	json_t *dp[1];
	pid_t pid = 0;

	if (unit_active("edgegw-dataplane.service"))
		return unit_reload("edgegw-dataplane.service");
	if (dp_query(c, cmds, dp, 1, &pid, false) != 0)
		return 1;
	json_decref(dp[0]);
	if (pid <= 0 || kill(pid, SIGHUP) != 0) {
		fprintf(stderr, "edgegwctl: dataplane pid %d: %s\n", (int)pid, strerror(errno));
		return 1;
	}
	printf("dataplane: SIGHUP sent (pid %d)\n", (int)pid);
	return 0;
}

/*
 * systemd's units when they run, else SIGHUP to the pids the programs report. The agent goes
 * first: an uplink rule a reload adds is then known to the agent before the dataplane sends
 * sensor messages up under it (docs/config.md, reload of `uplink:`).
 */
static int
cmd_reload(const struct ctl *c)
{
	int bad = reload_agent(c);

	return reload_dataplane(c) | bad;
}

/* sessions, subscriptions, retained: every page of the dataplane's listing, one line each. */
static int
cmd_list(const struct ctl *c, const char *what)
{
	json_t *all = json_array(), *r = NULL;
	long long total = 0, offset = 0;
	int rc = 0;

	for (;;) {
		char q[96];
		const char *cmds[1] = { q };
		json_t *lines, *v;
		size_t i;

		snprintf(q, sizeof(q), "/edgegw/%s,%lld", what, offset);
		if (dp_query(c, cmds, &r, 1, NULL, false) != 0 || r == NULL) {
			fprintf(stderr, "edgegwctl: the dataplane did not answer %s\n", q);
			rc = 1;
			break;
		}
		total = jint(r, "total");
		lines = json_object_get(r, "lines");
		json_array_foreach(lines, i, v) json_array_append(all, v);
		offset += (long long)json_array_size(lines);
		json_decref(r);
		r = NULL;
		if (json_array_size(lines) == 0 || offset >= total)
			break;
	}
	if (rc == 0 && c->json) {
		json_t *o = json_pack("{s:I,s:O}", "total", (json_int_t)total, what, all);

		print_json(o);
		json_decref(o);
	} else if (rc == 0) {
		json_t *v;
		size_t i;

		json_array_foreach(all, i, v) printf("%s\n", json_string_value(v));
		printf("(%lld %s)\n", total, what);
	}
	json_decref(all);
	return rc;
}

/* kick ID, kick --purge ID, retained delete TOPIC: 0 when it was there, 1 when not. */
static int
cmd_action(const struct ctl *c, const char *tel_cmd, const char *arg, const char *done,
    const char *missing)
{
	char q[1100];
	const char *cmds[1] = { q };
	json_t *r = NULL;
	long long found;

	if (snprintf(q, sizeof(q), "%s,%s", tel_cmd, arg) >= (int)sizeof(q) || strlen(arg) >= 128) {
		fprintf(stderr, "edgegwctl: '%s' is too long (127 bytes at most)\n", arg);
		return 2;
	}
	if (dp_query(c, cmds, &r, 1, NULL, false) != 0 || r == NULL) {
		fprintf(stderr, "edgegwctl: the dataplane did not answer %s\n", tel_cmd);
		return 1;
	}
	found = jint(r, "found");
	json_decref(r);
	printf("%s: %s\n", arg, found > 0 ? done : missing);
	return found > 0 ? 0 : 1;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* spool: the agent's store and forward backlog: depth, age of the oldest record, drops, and
 * how long the backlog takes to drain at the rate the cloud acknowledged over one second. */
static int
cmd_spool(const struct ctl *c)
{
	json_t *a, *b, *sa, *sb, *sp;
	double t0, t1, rate, live, oldest_age_s;
	long long oldest, acked0, acked1;
	struct timespec now;
	char eta[64];
	int rc = 0;

	t0 = mono_s();
	if ((a = agent_stats(c)) == NULL)
		return 1;
	usleep(1000 * 1000);
	t1 = mono_s();
	if ((b = agent_stats(c)) == NULL) {
		json_decref(a);
		return 1;
	}
	sa = json_object_get(a, "store");
	sb = json_object_get(b, "store");
	sp = json_object_get(sb, "spool");
	if (sp == NULL) {
		fprintf(stderr, "edgegwctl: the agent runs without a spool (uplink.spool)\n");
		rc = 1;
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	oldest = jint(sp, "oldest_ms");
	oldest_age_s = oldest
	    ? (double)((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - oldest) / 1000.0
	    : 0.0;
	acked0 = jint(sa, "acked");
	acked1 = jint(sb, "acked");
	rate = t1 > t0 && acked1 >= acked0 ? (double)(acked1 - acked0) / (t1 - t0) : 0;
	live = (double)jint(sp, "records_live");
	if (live == 0)
		snprintf(eta, sizeof(eta), "empty");
	else if (rate > 0)
		snprintf(eta, sizeof(eta), "about %.0f s at %.0f records/s", live / rate, rate);
	else
		snprintf(eta, sizeof(eta), "not draining (uplink %s)",
		    json_is_true(json_object_get(json_object_get(b, "uplink"), "connected"))
			? "connected, nothing acknowledged in 1 s"
			: "not connected");
	if (c->json) {
		json_t *o = json_pack("{s:I,s:I,s:I,s:f,s:f,s:O}", "records", (json_int_t)live,
		    "bytes", (json_int_t)jint(sp, "bytes_used"), "segments",
		    (json_int_t)jint(sp, "segments"), "oldest_age_s", oldest_age_s, "acked_per_s",
		    rate, "spool", sp);

		print_json(o);
		json_decref(o);
		goto out;
	}
	printf("spool: %.0f records not yet acknowledged by the cloud, %lld bytes in %lld "
	       "segment(s)\n",
	    live, jint(sp, "bytes_used"), jint(sp, "segments"));
	if (oldest)
		printf("oldest: %.1f s old\n", oldest_age_s);
	printf("drain: %s\n", eta);
	printf("dropped: QoS 0 %lld, bulk %lld, normal %lld, alarm %lld, expired %lld; refused "
	       "(full) %lld, (disk full) %lld; failed commits %lld records\n",
	    jint(sp, "dropped_qos0"), jint(sp, "dropped_bulk"), jint(sp, "dropped_normal"),
	    jint(sp, "dropped_alarm"), jint(sp, "expired"), jint(sp, "refused_full"),
	    jint(sp, "refused_disk_full"), jint(sp, "failed_records"));
out:
	json_decref(a);
	json_decref(b);
	return rc;
}

/* publish TOPIC MESSAGE: from the gateway to the sensors subscribed (0 when one matched). */
static int
cmd_publish(const struct ctl *c, const char *topic, const char *msg, unsigned qos, bool retain)
{
	char q[1024]; /* DPDK's telemetry reads a request of up to 1023 bytes */
	const char *cmds[1] = { q };
	json_t *r = NULL;
	int n;

	if (topic == NULL || msg == NULL)
		return 2;
	n = snprintf(q, sizeof(q), "/edgegw/publish,%u,%u,%zu,%s%s", qos, retain ? 1u : 0u,
	    strlen(topic), topic, msg);
	if (n < 0 || n >= (int)sizeof(q) || strlen(topic) >= 128) {
		fprintf(stderr,
		    "edgegwctl: too long: the topic (127 bytes at most) and the message must fit a "
		    "1023-byte telemetry request\n");
		return 2;
	}
	if (dp_query(c, cmds, &r, 1, NULL, false) != 0 || r == NULL) {
		fprintf(stderr,
		    "edgegwctl: the dataplane refused the publish (a topic with wildcards or in "
		    "$SYS, or no answer)\n");
		return 1;
	}
	printf("%s: published at QoS %u%s, %s\n", topic, qos, retain ? ", retained" : "",
	    jint(r, "matched") ? "delivered to the subscribers" : "no subscriber");
	json_decref(r);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: edgegwctl [options] COMMAND\n"
	    "  status               is each program running; uptime, link, flows, buses, uplink\n"
	    "  stats [--all]        the dataplane's, the broker's and the agent's counters\n"
	    "  buses, devices       the agent's Modbus buses and devices\n"
	    "  sessions             the broker's sessions (client id, online, version, queues)\n"
	    "  subscriptions        the broker's subscriptions (client id, filter, QoS)\n"
	    "  retained             the retained messages (topic, QoS, bytes)\n"
	    "  retained delete TOPIC  clear a retained message\n"
	    "  kick [--purge] ID    disconnect a client (--purge: and remove its session)\n"
	    "  publish [-q QOS] [-r] TOPIC MESSAGE  publish from the gateway to its sensors\n"
	    "  spool                the store and forward backlog: depth, age, drain estimate\n"
	    "  config check FILE    both programs' --check on FILE (file:line:col errors)\n"
	    "  reload               systemctl reload, or SIGHUP to both programs\n"
	    "  version              this program's version\n"
	    "options:\n"
	    "  -c, --config FILE    gateway config for the addresses (default " EDGEGW_CONFDIR
	    "/gateway.yaml)\n"
	    "  -a, --agent H:P      the agent's agent.metrics.listen (default 127.0.0.1:9880)\n"
	    "  -t, --telemetry PATH the dataplane's DPDK telemetry socket\n"
	    "  -j, --json           JSON instead of tables (status, stats, buses, devices)\n"
	    "Exit status: 0 ok, 1 a program did not answer or a check failed, 2 usage.\n"
	    "See edgegwctl(8).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
		{ "agent", required_argument, NULL, 'a' },
		{ "telemetry", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, 'A' }, { "help", no_argument, NULL, 'h' },
		{ "purge", no_argument, NULL, 'P' }, { "qos", required_argument, NULL, 'q' },
		{ "retain", no_argument, NULL, 'r' }, { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 } };
	struct ctl c = { .cfg_path = EDGEGW_CONFDIR "/gateway.yaml" };
	bool all = false, a_set = false, t_set = false, purge = false, retain = false;
	unsigned qos = 0;
	const char *cmd;
	int o;

	snprintf(c.agent_addr, sizeof(c.agent_addr), "127.0.0.1:9880");
	tel_socket_path("edgegw", c.tel_path, sizeof(c.tel_path));
	while ((o = getopt_long(argc, argv, "c:a:t:jhVq:r", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			c.cfg_path = optarg;
			break;
		case 'a':
			snprintf(c.agent_addr, sizeof(c.agent_addr), "%s", optarg);
			a_set = true;
			break;
		case 't':
			snprintf(c.tel_path, sizeof(c.tel_path), "%s", optarg);
			t_set = true;
			break;
		case 'j':
			c.json = true;
			break;
		case 'A':
			all = true;
			break;
		case 'P':
			purge = true;
			break;
		case 'q':
			if (strlen(optarg) != 1 || optarg[0] < '0' || optarg[0] > '2') {
				fprintf(stderr, "edgegwctl: --qos is 0, 1 or 2\n");
				return 2;
			}
			qos = (unsigned)(optarg[0] - '0');
			break;
		case 'r':
			retain = true;
			break;
		case 'V':
			printf("edgegwctl %s\n", EDGEGW_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "version") == 0) {
		printf("edgegwctl %s\n", EDGEGW_VERSION);
		return 0;
	}
	if (strcmp(cmd, "config") == 0) {
		if (optind + 3 != argc || strcmp(argv[optind + 1], "check") != 0) {
			usage(stderr);
			return 2;
		}
		return cmd_config_check(argv[optind + 2]);
	}
	if (strcmp(cmd, "publish") == 0 && optind + 3 == argc) {
		ctl_read_config(&c, !a_set, !t_set);
		return cmd_publish(&c, argv[optind + 1], argv[optind + 2], qos, retain);
	}
	if (strcmp(cmd, "kick") == 0 && optind + 2 == argc) {
		ctl_read_config(&c, !a_set, !t_set);
		return cmd_action(&c, purge ? "/edgegw/kick_purge" : "/edgegw/kick",
		    argv[optind + 1], purge ? "disconnected, session removed" : "disconnected",
		    "no such session");
	}
	if (strcmp(cmd, "retained") == 0 && optind + 3 == argc &&
	    strcmp(argv[optind + 1], "delete") == 0) {
		ctl_read_config(&c, !a_set, !t_set);
		return cmd_action(&c, "/edgegw/retained_delete", argv[optind + 2], "cleared",
		    "no retained message");
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	ctl_read_config(&c, !a_set, !t_set);
	if (strcmp(cmd, "sessions") == 0 || strcmp(cmd, "subscriptions") == 0 ||
	    strcmp(cmd, "retained") == 0)
		return cmd_list(&c, cmd);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(&c);
	if (strcmp(cmd, "stats") == 0)
		return cmd_stats(&c, all);
	if (strcmp(cmd, "buses") == 0 || strcmp(cmd, "devices") == 0)
		return cmd_buses(&c, strcmp(cmd, "devices") == 0);
	if (strcmp(cmd, "reload") == 0)
		return cmd_reload(&c);
	if (strcmp(cmd, "spool") == 0)
		return cmd_spool(&c);
	fprintf(stderr, "edgegwctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
