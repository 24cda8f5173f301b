/*
 * test_agent_main.c: edgegw-agent whole, in one process: agent/main.c (its main() renamed
 * agent_main), the loop, the stats file, the /metrics and /stats endpoints, the JSON-lines
 * uplink with its command FIFO, over the fake Modbus line (modbus/fake_modbus.c). The agent
 * runs in a thread; the test writes commands to the FIFO, sends the signals the agent handles
 * (SIGUSR1, SIGHUP with a good and a bad config, SIGTERM) and waits for their effects in the
 * output file, the stats file and the endpoints, never for a fixed time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "fake_modbus.h"
#include "main_fixture.h"

int agent_main(int argc, char **argv);

static char dir[256], cfg[300], out[300], fifo[300], stats[300], errlog[300];
static int port;

/* a generous deadline: it only turns a hang into a failure */
#define DEADLINE_MS 20000

/* Does the agent's log (its stderr, errlog) hold needle yet? */
static bool
log_has(const char *needle)
{
	return file_has(errlog, needle);
}

static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0), p;

	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	p = ntohs(sa.sin_port);
	close(s);
	return p;
}

/* One HTTP/1.0 request to the agent's endpoint; the whole answer (headers and body). */
static char *
http(const char *method, const char *url)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_STREAM, 0);
	char req[256], buf[4096];
	char *body = NULL;
	size_t len = 0;
	FILE *m;
	ssize_t n;

	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (s >= 0)
			close(s);
		return NULL;
	}
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method, url);
	if (write(s, req, (size_t)n) != n) {
		close(s);
		return NULL;
	}
	m = open_memstream(&body, &len);
	while ((n = read(s, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, m);
	fclose(m);
	close(s);
	return body;
}

/* edgegw_agent_metrics_http_errors_total as /metrics says it; 0 when it does not answer. */
static unsigned long long
http_errors(void)
{
	static const char key[] = "\nedgegw_agent_metrics_http_errors_total ";
	char *b = http("GET", "/metrics"), *at = b != NULL ? strstr(b, key) : NULL;
	unsigned long long n = at != NULL ? strtoull(at + sizeof(key) - 1, NULL, 10) : 0;

	free(b);
	return n;
}

static void
send_cmd(const char *line)
{
	int fd = open(fifo, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	close(fd);
}

/* The command responses written so far, as an object by id; NULL when none. */
static json_t *
responses(void)
{
	char *text = slurp(out), *save = NULL;
	json_t *r = json_object();

	if (text == NULL)
		return r;
	for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(l, 0, NULL), *p;

		if (j == NULL)
			continue;
		p = json_object_get(j, "payload");
		if (strcmp(json_string_value(json_object_get(j, "topic")), "site/cmd/response") ==
		    0)
			json_object_set(r, json_string_value(json_object_get(p, "id")), p);
		json_decref(j);
	}
	free(text);
	return r;
}

/* How many readings of device/point were written to the output file. */
static int
readings(const char *device, const char *point)
{
	char *text = slurp(out), *save = NULL;
	int n = 0;

	if (text == NULL)
		return 0;
	for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(l, 0, NULL), *p;

		if (j == NULL)
			continue;
		p = json_object_get(j, "payload");
		n += json_is_object(p) && json_string_value(json_object_get(p, "device")) != NULL &&
		    json_string_value(json_object_get(p, "point")) != NULL &&
		    strcmp(json_string_value(json_object_get(p, "device")), device) == 0 &&
		    strcmp(json_string_value(json_object_get(p, "point")), point) == 0;
		json_decref(j);
	}
	free(text);
	return n;
}

/* The stats file, parsed (NULL: not written yet). */
static json_t *
stats_json(void)
{
	return json_load_file(stats, 0, NULL);
}

static json_t *
stats_dev(json_t *st, const char *bus, const char *dev)
{
	json_t *b, *d;
	size_t i, j;

	json_array_foreach(json_object_get(st, "buses"), i, b)
	{
		if (strcmp(json_string_value(json_object_get(b, "name")), bus) != 0)
			continue;
		json_array_foreach(json_object_get(b, "devices"), j, d)
		{
			if (strcmp(json_string_value(json_object_get(d, "name")), dev) == 0)
				return d;
		}
	}
	return NULL;
}

static uint64_t
stat_u(json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

static const char bus_rtu1[] = "    - name: rtu1\n"
			       "      type: rtu\n"
			       "      device: /dev/fake-rtu1\n"
			       "      baud: 38400\n"
			       "      rs485: {mode: off}\n"
			       "      devices:\n"
			       "        - {name: w1, unit_id: 1, profile: writes, interval: 100ms, "
			       "timeout: 100ms, retries: 0}\n";

static void
write_config(const char *extra_bus, const char *log_level)
{
	char text[4096];

	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  topic_prefix: site\n"
	    "  state_dir: %s/state\n"
	    "  log_level: %s\n"
	    "  uplink: jsonl\n"
	    "  jsonl: {path: %s, commands: %s}\n"
	    "  commands: {topic: site/cmd}\n"
	    "  stats: {file: %s, interval: 100ms}\n"
	    "  metrics: {listen: '127.0.0.1:%d', dataplane_telemetry: %s/no-dataplane.sock}\n"
	    "  buses:\n%s%s",
	    PROFILES_DIR, dir, log_level, out, fifo, stats, port, dir, bus_rtu1, extra_bus);
	write_file(cfg, text);
}

static int
run_main(int argc, char **argv)
{
	optind = 0; /* getopt starts over for each run of main in this process */
	return agent_main(argc, argv);
}

static void *
agent_thread(void *arg)
{
	char *argv[] = { "edgegw-agent", "-c", cfg, NULL };

	(void)arg;
	return (void *)(intptr_t)run_main(3, argv);
}

/* What a test changes around the agent's run: its signals blocked before its thread starts (its
 * loop reads them from a signalfd; a thread started later inherits the mask), its stderr to
 * errlog (truncated); release_signals_and_log puts both back. */
struct held {
	sigset_t set;
	int saved_stderr;
};

static void
hold_signals_and_log(struct held *h)
{
	int errfd;

	sigemptyset(&h->set);
	sigaddset(&h->set, SIGHUP);
	sigaddset(&h->set, SIGUSR1);
	sigaddset(&h->set, SIGTERM);
	sigaddset(&h->set, SIGINT);
	sigaddset(&h->set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &h->set, NULL);
	fflush(stderr);
	h->saved_stderr = dup(2);
	errfd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(errfd >= 0);
	dup2(errfd, 2);
	close(errfd);
}

static void
release_signals_and_log(struct held *h)
{
	fflush(stderr);
	dup2(h->saved_stderr, 2);
	close(h->saved_stderr);
	pthread_sigmask(SIG_UNBLOCK, &h->set, NULL);
}

/* SIGTERM: the agent in thread th stops in order and returns 0. */
static void
agent_stop(pthread_t th)
{
	void *rc;

	kill(getpid(), SIGTERM);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, 0);
}

/* Waits until pred() holds, re-checking every 20 ms; false at the deadline. */
#define WAIT_FOR(pred)                                     \
	({                                                 \
		uint64_t end_ = now_ms() + DEADLINE_MS;    \
		bool ok_;                                  \
		while (!(ok_ = (pred)) && now_ms() < end_) \
			pause_ms(20);                      \
		ok_;                                       \
	})

static bool
has_response(const char *id)
{
	json_t *r = responses();
	bool ok = json_object_get(r, id) != NULL;

	json_decref(r);
	return ok;
}

static const char *
resp_field(json_t *r, const char *id, const char *k)
{
	return json_string_value(json_object_get(json_object_get(r, id), k));
}

static bool
stats_has(const char *bus, const char *dev, const char *counter, uint64_t want)
{
	json_t *st = stats_json();
	json_t *d = st != NULL ? stats_dev(st, bus, dev) : NULL;
	bool ok = d != NULL && stat_u(d, counter) == want;

	json_decref(st);
	return ok;
}

static bool
stats_nbuses(size_t want)
{
	json_t *st = stats_json();
	bool ok = st != NULL && json_array_size(json_object_get(st, "buses")) == want;

	json_decref(st);
	return ok;
}

static bool
body_has(const char *method, const char *url, const char *what)
{
	char *b = http(method, url);
	bool ok = b != NULL && strstr(b, what) != NULL;

	free(b);
	return ok;
}

/*
 * A run of the agent: readings published, every way a command is refused (each counted where
 * it belongs: a command for no device only in commands_rejected, one a device refuses also in
 * that device's writes_rejected), a write that succeeds, the endpoints, SIGUSR1's log, a reload
 * that adds a bus, a bad reload that changes nothing, and SIGTERM's orderly stop with its last
 * stats file.
 */
static void
test_agent_run(void **state)
{
	pthread_t th;
	struct held held;
	json_t *r, *st;
	char *body, *log;

	(void)state;
	fake_reset();
	fake_set(MB_FN_HOLDING, 40, 215); /* setpoint 21.5 */
	write_config("", "info");
	hold_signals_and_log(&held);

	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(readings("w1", "setpoint") > 0));

	send_cmd("this is not json\n");
	send_cmd("{\"id\":\"nodev\",\"device\":\"nope\",\"point\":\"pump\",\"value\":true}\n");
	send_cmd("{\"id\":\"nopoint\",\"device\":\"w1\",\"point\":\"nope\",\"value\":true}\n");
	send_cmd("{\"id\":\"ro\",\"device\":\"w1\",\"point\":\"alarm_a\",\"value\":true}\n");
	send_cmd("{\"id\":\"range\",\"device\":\"w1\",\"point\":\"setpoint\",\"value\":99999}\n");
	send_cmd("{\"id\":\"ok\",\"device\":\"w1\",\"point\":\"setpoint\",\"value\":23.5}\n");
	assert_true(WAIT_FOR(has_response("nodev") && has_response("nopoint") &&
	    has_response("ro") && has_response("range") && has_response("ok")));
	r = responses();
	assert_string_equal(resp_field(r, "nodev", "status"), "error");
	assert_string_equal(resp_field(r, "nodev", "reason"), "no device named 'nope'");
	assert_string_equal(resp_field(r, "nopoint", "status"), "error");
	assert_string_equal(resp_field(r, "nopoint", "reason"), "device 'w1' has no point 'nope'");
	assert_string_equal(resp_field(r, "ro", "status"), "error");
	assert_string_equal(resp_field(r, "range", "status"), "error");
	assert_string_equal(resp_field(r, "ok", "status"), "ok");
	json_decref(r);
	assert_int_equal(fake_get(MB_FN_HOLDING, 40), 235);

	/* three refusals reached w1 (writes_rejected), five were refused before a bus */
	assert_true(WAIT_FOR(stats_has("rtu1", "w1", "writes_rejected", 3)));
	assert_true(WAIT_FOR(stats_has("rtu1", "w1", "writes", 1)));
	st = stats_json();
	assert_int_equal(stat_u(st, "commands_rejected"), 5);
	assert_int_equal(stat_u(json_object_get(st, "uplink"), "commands"), 6);
	assert_true(json_is_true(json_object_get(json_object_get(st, "uplink"), "connected")));
	json_decref(st);

	/* the endpoints: the same counters, the dataplane down, the refusals */
	assert_true(WAIT_FOR(body_has("GET", "/metrics",
	    "edgegw_agent_device_writes_rejected_total{bus=\"rtu1\",device=\"w1\"")));
	body = http("GET", "/metrics");
	assert_non_null(body);
	assert_non_null(strstr(body, "\r\n\r\n"));
	assert_non_null(strstr(body, "edgegw_agent_commands_rejected_total 5\n"));
	assert_non_null(strstr(body, "edgegw_dataplane_up 0\n"));
	assert_non_null(strstr(body, "edgegw_agent_bus_connected{bus=\"rtu1\"} 1\n"));
	free(body);
	assert_true(body_has("GET", "/stats", "\"commands_rejected\":5,"));
	assert_true(body_has("GET", "/nothing", "404"));
	assert_true(body_has("POST", "/metrics", "405"));
	{ /* one host holds at most half the slots; the HTTP server's errors counted, logged once */
		struct sockaddr_in sa = { .sin_family = AF_INET,
			.sin_port = htons((uint16_t)port),
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int s[5];
		char x[8];

		for (int i = 0; i < 5; i++) {
			s[i] = socket(AF_INET, SOCK_STREAM, 0);
			assert_int_equal(connect(s[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		}
		assert_true(WAIT_FOR(recv(s[4], x, sizeof(x), MSG_DONTWAIT) == 0)); /* refused */
		for (int i = 0; i < 5; i++)
			close(s[i]);
		/* (refused too until the server has seen those four go) */
		assert_true(WAIT_FOR(http_errors() >= 1));
	}

	/* SIGUSR1: one line per bus and per device in the log */
	kill(getpid(), SIGUSR1);
	assert_true(WAIT_FOR(log_has("stats: device rtu1/w1 ok polls")));

	/* SIGHUP with a second bus: rtu1 keeps running (its counters stay), rtu2 starts */
	write_config("    - name: rtu2\n"
		     "      type: rtu\n"
		     "      device: /dev/fake-rtu2\n"
		     "      rs485: {mode: off}\n"
		     "      devices:\n"
		     "        - {name: w2, unit_id: 2, profile: writes, interval: 100ms}\n",
	    "debug");
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(stats_nbuses(2)));
	assert_true(WAIT_FOR(readings("w2", "setpoint") > 0));
	assert_true(stats_has("rtu1", "w1", "writes_rejected", 3));

	/* a bad config changes nothing */
	write_file(cfg, "agent:\n  buses: 7\n");
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(log_has("the running config stays")));
	assert_true(stats_nbuses(2));
	/* back to one bus: rtu2 stops, rtu1 is kept */
	write_config("", "info");
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(stats_nbuses(1)));
	/* other uplink rules: applied live (the store and the downlink take the new set) */
	write_config("", "info");
	{
		FILE *f = fopen(cfg, "a");

		assert_non_null(f);
		fputs("uplink: {site: elsewhere}\n", f);
		fclose(f);
	}
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(log_has("reload: uplink rules applied (1 rules, 0 downlink)")));
	/* the spool's settings: opened once, named as needing a restart */
	write_config("", "info");
	{
		FILE *f = fopen(cfg, "a");

		assert_non_null(f);
		fputs("uplink: {site: elsewhere, spool: {max_bytes: 2m}}\n", f);
		fclose(f);
	}
	kill(getpid(), SIGHUP);
	assert_true(
	    WAIT_FOR(log_has("reload: uplink.spool changed; it applies at the next restart")));

	agent_stop(th);
	release_signals_and_log(&held);
	log = slurp(errlog);
	assert_non_null(strstr(log, "reload: 2 buses"));
	assert_non_null(strstr(log, "1 kept running, 0 restarted, 1 started, 0 stopped"));
	assert_non_null(strstr(log, "0 restarted, 0 started, 1 stopped"));
	assert_non_null(strstr(log, "stopped"));
	free(log);
	/* the last stats file is written at the stop */
	assert_true(stats_has("rtu1", "w1", "writes_rejected", 3));
}

/*
 * A reload that restarts a bus (its config changed) while writes wait in its queue (each of
 * the device's answers takes 700 ms, so a poll holds the line): the writes run on the bus that
 * replaces it, in order, each answered ok, and the log says how many were carried over. Before,
 * each one still queued was answered "not written: the agent stopped or reloaded its config"
 * (a QoS 1/2 command the gateway had acknowledged, released unwritten).
 */
static void
test_agent_reload_carries_writes(void **state)
{
	static const char changed[] =
	    "    - name: rtu1\n"
	    "      type: rtu\n"
	    "      device: /dev/fake-rtu1\n"
	    "      baud: 19200\n"
	    "      rs485: {mode: off}\n"
	    "      devices:\n"
	    "        - {name: w1, unit_id: 1, profile: writes, interval: 100ms, "
	    "timeout: 2s, retries: 0}\n";
	char text[4096], *log;
	pthread_t th;
	struct held held;
	json_t *r, *st;
	int n = 0;

	(void)state;
	fake_reset();
	fake_set(MB_FN_HOLDING, 40, 215);
	write_config("", "info");
	unlink(stats); /* an earlier test's counts */
	hold_signals_and_log(&held);
	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(readings("w1", "setpoint") > 0));
	fake_set_delay_us(0, 700000);
	send_cmd("{\"id\":\"c1\",\"device\":\"w1\",\"point\":\"setpoint\",\"value\":22.5}\n");
	send_cmd("{\"id\":\"c2\",\"device\":\"w1\",\"point\":\"setpoint\",\"value\":23.5}\n");
	for (int i = 0; i < 400 && n < 2; i++) { /* both taken by the agent (queued for rtu1) */
		if ((st = stats_json()) != NULL) {
			n = (int)stat_u(json_object_get(st, "uplink"), "commands");
			json_decref(st);
		}
		usleep(5000);
	}
	assert_int_equal(n, 2);
	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  topic_prefix: site\n"
	    "  state_dir: %s/state\n"
	    "  log_level: info\n"
	    "  uplink: jsonl\n"
	    "  jsonl: {path: %s, commands: %s}\n"
	    "  commands: {topic: site/cmd}\n"
	    "  stats: {file: %s, interval: 100ms}\n"
	    "  metrics: {listen: '127.0.0.1:%d', dataplane_telemetry: %s/no-dataplane.sock}\n"
	    "  buses:\n%s",
	    PROFILES_DIR, dir, out, fifo, stats, port, dir, changed);
	write_file(cfg, text);
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(log_has("queued writes of the restarted buses carried over")));
	fake_set_delay_us(0, 0);
	assert_true(WAIT_FOR(has_response("c1") && has_response("c2")));
	r = responses();
	assert_string_equal(resp_field(r, "c1", "status"), "ok");
	assert_string_equal(resp_field(r, "c2", "status"), "ok");
	json_decref(r);
	assert_int_equal(fake_get(MB_FN_HOLDING, 40), 235); /* c2 last, as sent */
	agent_stop(th);
	release_signals_and_log(&held);
	log = slurp(errlog);
	assert_null(strstr(log, "not written"));
	assert_non_null(strstr(log, "1 restarted"));
	free(log);
}

/*
 * A degraded start: a profile that does not load (its device is disabled, listed with the
 * reason in /stats and /metrics, the log line joins the profile's errors on one line), a bus
 * whose every device is disabled (not started), a stats file that cannot be written (logged,
 * the agent runs on), and command lines the JSON-lines uplink trims, skips or drops.
 */
static void
test_agent_degraded(void **state)
{
	char pdir[300], path[400], text[4096], *body, *log, big[5000];
	pthread_t th;
	struct held held;

	(void)state;
	fake_reset();
	snprintf(pdir, sizeof(pdir), "%s/profiles", dir);
	mkdir(pdir, 0700);
	snprintf(path, sizeof(path), "%s/good.yaml", pdir);
	write_file(path,
	    "name: good\npoints:\n  - {name: sp, function: holding, address: 0, "
	    "writable: true}\n");
	snprintf(path, sizeof(path), "%s/broken.yaml", pdir);
	write_file(path,
	    "name: broken\npoints:\n  - {name: a, function: holding}\n"
	    "  - {name: b, address: 1}\n");
	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  state_dir: %s/state\n"
	    "  uplink: jsonl\n"
	    "  jsonl: {path: %s, commands: %s}\n"
	    "  commands: {topic: site/cmd}\n"
	    "  stats: {file: %s/no-such-dir/stats.json, interval: 100ms}\n"
	    "  metrics: {listen: '127.0.0.1:%d'}\n"
	    "  buses:\n"
	    "    - name: rtu1\n"
	    "      type: rtu\n"
	    "      device: /dev/fake-rtu1\n"
	    "      rs485: {mode: off}\n"
	    "      devices:\n"
	    "        - {name: g, unit_id: 1, profile: good, interval: 100ms}\n"
	    "        - {name: off1, unit_id: 2, profile: broken}\n"
	    "    - name: rtu3\n"
	    "      type: rtu\n"
	    "      device: /dev/fake-rtu3\n"
	    "      devices:\n"
	    "        - {name: off3, unit_id: 3, profile: broken}\n",
	    pdir, dir, out, fifo, dir, port);
	write_file(cfg, text);
	hold_signals_and_log(&held);
	assert_true(truncate(out, 0) == 0 || errno == ENOENT);

	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(readings("g", "sp") > 0));
	/* blank lines are skipped, "\r" and trailing blanks trimmed, a line over 4 KiB dropped */
	memset(big, 'x', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	send_cmd("\n   \n");
	send_cmd(big);
	send_cmd("{\"id\":\"t\",\"device\":\"g\",\"point\":\"sp\",\"value\":7}  \r\n");
	send_cmd("{\"id\":\"off\",\"device\":\"off1\",\"point\":\"a\",\"value\":7}\n");
	assert_true(WAIT_FOR(has_response("t") && has_response("off")));
	assert_int_equal(fake_get(MB_FN_HOLDING, 0), 7);
	{
		json_t *r = responses();

		assert_string_equal(resp_field(r, "t", "status"), "ok");
		/* a disabled device takes no command */
		assert_string_equal(resp_field(r, "off", "reason"), "no device named 'off1'");
		assert_int_equal(json_object_size(r), 2); /* nothing for the blank or long lines */
		json_decref(r);
	}
	/* the uplink's figures in /stats are the loop's copy of its last tick */
	assert_true(WAIT_FOR(body_has("GET", "/stats", "\"commands\":2}")));
	body = http("GET", "/stats");
	assert_non_null(body);
	assert_non_null(strstr(body, "\"devices_disabled\":2,"));
	assert_non_null(strstr(body,
	    "{\"bus\":\"rtu1\",\"name\":\"off1\",\"unit_id\":2,"
	    "\"profile\":\"broken\",\"state\":\"disabled: "));
	free(body);
	assert_true(body_has("GET", "/metrics",
	    "edgegw_agent_device_disabled{bus=\"rtu3\",device=\"off3\",profile=\"broken\"} 1\n"));
	assert_true(body_has("GET", "/metrics", "edgegw_agent_devices_disabled 2\n"));
	assert_true(WAIT_FOR(log_has("no-such-dir/stats.json: No such file or directory")));

	agent_stop(th);
	release_signals_and_log(&held);
	log = slurp(errlog);
	assert_non_null(strstr(log, "bus rtu3: every device on it is disabled; not started"));
	assert_non_null(strstr(log, "profile 'broken' does not load, its devices are disabled: "));
	assert_non_null(strstr(log, "needs an 'address'; "));
	assert_non_null(strstr(log, "command line too long, dropped"));
	assert_non_null(strstr(log, "started: 1 buses, 2 devices disabled"));
	free(log);
}

/* --- a broker for the mqtt uplink: loopback, its own thread, just enough MQTT 3.1.1 --- */
struct mini_broker {
	int lfd, port;
	bool stop;
	int connects, subscribes, publishes, responses;
	/* q2_cmd: at each SUBSCRIBE a QoS 2 write command (id 7; DUP from the second on) instead of
	 * the bad one; the agent's PUBRECs are counted and ignored (lost) until q2_release, then
	 * answered PUBREL */
	bool q2_cmd, q2_release;
	int q2_sent, pubrecs, pubcomps;
	struct timespec pubrel_at, pubcomp_at; /* the last PUBREL sent, the last PUBCOMP read */
	/* qos1_cmds (NULL-terminated): at the first SUBSCRIBE, these QoS 1 commands (ids 1, 2, ..)
	 * instead of the bad one; the agent's PUBACKs are counted */
	const char *const *qos1_cmds;
	int pubacks;
	char client_id[64];
	char last_response[512];
	char all_responses[2048]; /* every response, one a line */
	pthread_mutex_t mu;
};

/* A fresh mini broker listening on a loopback port of the kernel's choice (mb->port). */
static void
mb_listen(struct mini_broker *mb)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(mb, 0, sizeof(*mb));
	pthread_mutex_init(&mb->mu, NULL);
	mb->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(mb->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(mb->lfd, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(listen(mb->lfd, 4), 0);
	mb->port = ntohs(sa.sin_port);
}

static bool
read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* One packet: its first byte and body (len bytes). */
static bool
read_packet(int fd, uint8_t *type, uint8_t *body, size_t cap, size_t *len)
{
	uint8_t b;
	size_t n = 0;
	unsigned shift = 0;

	if (!read_full(fd, type, 1))
		return false;
	do {
		if (!read_full(fd, &b, 1) || shift > 21)
			return false;
		n |= (size_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	if (n > cap)
		return false;
	*len = n;
	return read_full(fd, body, n);
}

static void
write_all(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		return; /* the agent went: the test sees it in its counts */
}

static void
serve(struct mini_broker *mb, int fd)
{
	static uint8_t body[1 << 16];
	uint8_t type;
	size_t len;
	bool sent_cmd = false;

	while (!__atomic_load_n(&mb->stop, __ATOMIC_ACQUIRE) &&
	    read_packet(fd, &type, body, sizeof(body), &len)) {
		pthread_mutex_lock(&mb->mu);
		switch (type >> 4) {
		case 1: { /* CONNECT: protocol name, level, flags, keepalive, client id */
			size_t pl = (size_t)(body[0] << 8 | body[1]), off = 2 + pl + 4;
			size_t il = (size_t)(body[off] << 8 | body[off + 1]);

			snprintf(
			    mb->client_id, sizeof(mb->client_id), "%.*s", (int)il, body + off + 2);
			mb->connects++;
			/* q2_cmd: the session (and the QoS 2 exchange) resumed from the second */
			write_all(
			    fd, (const uint8_t[]){ 0x20, 2, mb->q2_cmd && mb->connects > 1, 0 }, 4);
			break;
		}
		case 8: { /* SUBSCRIBE: grant what was asked */
			uint8_t ack[64] = { 0x90, 2, body[0], body[1] };
			size_t off = 2;

			while (off + 2 < len && ack[1] < 60) {
				off += 2 + (size_t)(body[off] << 8 | body[off + 1]);
				ack[2 + ack[1]++] = body[off++] & 3;
			}
			write_all(fd, ack, 2 + (size_t)ack[1]);
			mb->subscribes++;
			if (mb->q2_cmd) {
				static const char cmd[] =
				    "{\"id\":\"q2\",\"device\":\"w1\",\"point\":"
				    "\"setpoint\",\"value\":23.5}";
				uint8_t pub[128] = { (uint8_t)(mb->q2_sent > 0 ? 0x3c : 0x34),
					(uint8_t)(2 + 8 + 2 + sizeof(cmd) - 1), 0, 8 };

				memcpy(pub + 4, "site/cmd", 8);
				pub[12] = 0;
				pub[13] = 7;
				memcpy(pub + 14, cmd, sizeof(cmd) - 1);
				write_all(fd, pub, 14 + sizeof(cmd) - 1);
				mb->q2_sent++;
				sent_cmd = true;
			}
			for (int i = 0; mb->qos1_cmds != NULL && !sent_cmd && mb->qos1_cmds[i];
			     i++) {
				size_t cl = strlen(mb->qos1_cmds[i]);
				uint8_t pub[256] = { 0x32, (uint8_t)(2 + 8 + 2 + cl), 0, 8 };

				assert_true(cl < 200);
				memcpy(pub + 4, "site/cmd", 8);
				pub[12] = 0;
				pub[13] = (uint8_t)(i + 1);
				memcpy(pub + 14, mb->qos1_cmds[i], cl);
				write_all(fd, pub, 14 + cl);
				if (mb->qos1_cmds[i + 1] == NULL)
					sent_cmd = true;
			}
			if (!sent_cmd) { /* a command for a point w1 does not have */
				static const char cmd[] =
				    "{\"id\":\"m1\",\"device\":\"w1\",\"point\":"
				    "\"nope\",\"value\":1}";
				uint8_t pub[128] = { 0x30, (uint8_t)(2 + 8 + sizeof(cmd) - 1), 0,
					8 };

				memcpy(pub + 4, "site/cmd", 8);
				memcpy(pub + 12, cmd, sizeof(cmd) - 1);
				write_all(fd, pub, 12 + sizeof(cmd) - 1);
				sent_cmd = true;
			}
			break;
		}
		case 3: { /* PUBLISH: topic, id when QoS > 0, payload */
			uint8_t qos = (type >> 1) & 3;
			size_t tl = (size_t)(body[0] << 8 | body[1]), off = 2 + tl;
			uint8_t id[2] = { 0, 0 };

			if (qos > 0) {
				id[0] = body[off];
				id[1] = body[off + 1];
				off += 2;
			}
			mb->publishes++;
			if (tl == 17 && memcmp(body + 2, "site/cmd/response", 17) == 0) {
				mb->responses++;
				snprintf(mb->last_response, sizeof(mb->last_response), "%.*s",
				    (int)(len - off), body + off);
				snprintf(mb->all_responses + strlen(mb->all_responses),
				    sizeof(mb->all_responses) - strlen(mb->all_responses), "%s\n",
				    mb->last_response);
			}
			if (qos == 1)
				write_all(fd, (const uint8_t[]){ 0x40, 2, id[0], id[1] }, 4);
			else if (qos == 2)
				write_all(fd, (const uint8_t[]){ 0x50, 2, id[0], id[1] }, 4);
			break;
		}
		case 4: /* PUBACK of a QoS 1 command */
			mb->pubacks++;
			break;
		case 6: /* PUBREL */
			write_all(fd, (const uint8_t[]){ 0x70, 2, body[0], body[1] }, 4);
			break;
		case 5: /* PUBREC of the QoS 2 command */
			mb->pubrecs++;
			if (mb->q2_release) {
				clock_gettime(CLOCK_MONOTONIC, &mb->pubrel_at);
				write_all(fd, (const uint8_t[]){ 0x62, 2, body[0], body[1] }, 4);
			}
			break;
		case 7: /* PUBCOMP */
			clock_gettime(CLOCK_MONOTONIC, &mb->pubcomp_at);
			mb->pubcomps++;
			break;
		case 12: /* PINGREQ */
			write_all(fd, (const uint8_t[]){ 0xd0, 0 }, 2);
			break;
		default:
			break;
		}
		pthread_mutex_unlock(&mb->mu);
		if ((type >> 4) == 14) /* DISCONNECT */
			break;
	}
	close(fd);
}

static void *
broker_thread(void *arg)
{
	struct mini_broker *mb = arg;

	while (!__atomic_load_n(&mb->stop, __ATOMIC_ACQUIRE)) {
		int fd = accept(mb->lfd, NULL, NULL);

		if (fd < 0)
			break;
		serve(mb, fd);
	}
	return NULL;
}

static bool
broker_has(struct mini_broker *mb, int *field, int min)
{
	bool ok;

	pthread_mutex_lock(&mb->mu);
	ok = *field >= min;
	pthread_mutex_unlock(&mb->mu);
	return ok;
}

/*
 * The mqtt uplink: the agent connects to the broker with its client id, subscribes to its
 * command topic, publishes its readings through the spool, answers a command that came over
 * MQTT, and /stats, /metrics and SIGUSR1's dump show the link's and the spool's counters.
 */
static void
test_agent_mqtt_uplink(void **state)
{
	static struct mini_broker mb;
	pthread_t th, bt;
	char text[4096];
	struct held held;

	(void)state;
	mb_listen(&mb);
	fake_reset();
	fake_set(MB_FN_HOLDING, 40, 215);
	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  topic_prefix: site\n"
	    "  state_dir: %s/state\n"
	    "  uplink: mqtt\n"
	    "  mqtt: {host: 127.0.0.1, port: %d, client_id: t-agent, keepalive: 5s, version: "
	    "'3.1.1'}\n"
	    "  commands: {topic: site/cmd}\n"
	    "  metrics: {listen: '127.0.0.1:%d', dataplane_telemetry: %s/no-dataplane.sock}\n"
	    "  buses:\n%s"
	    "uplink:\n"
	    "  spool: {dir: %s/spool}\n",
	    PROFILES_DIR, dir, mb.port, port, dir, bus_rtu1, dir);
	write_file(cfg, text);
	hold_signals_and_log(&held);

	assert_int_equal(pthread_create(&bt, NULL, broker_thread, &mb), 0);
	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(broker_has(&mb, &mb.responses, 1)));
	assert_true(WAIT_FOR(broker_has(&mb, &mb.publishes, 6)));
	pthread_mutex_lock(&mb.mu);
	assert_string_equal(mb.client_id, "t-agent");
	assert_int_equal(mb.connects, 1);
	assert_int_equal(mb.subscribes, 1);
	assert_non_null(strstr(mb.last_response, "\"reason\":\"device 'w1' has no point 'nope'\""));
	pthread_mutex_unlock(&mb.mu);
	/* the endpoints read the loop's copy of its last tick */
	assert_true(WAIT_FOR(body_has("GET", "/metrics", "edgegw_agent_uplink_connected 1\n")));
	assert_true(WAIT_FOR(body_has("GET", "/stats", "\"uplink\":{\"connected\":true")));
	assert_true(body_has("GET", "/stats", "\"link\":{"));
	assert_true(body_has("GET", "/stats", "\"spool\":{"));
	assert_true(body_has("GET", "/metrics", "edgegw_agent_spool_"));
	assert_true(body_has("GET", "/metrics", "edgegw_agent_uplink_link_"));
	kill(getpid(), SIGUSR1);
	assert_true(WAIT_FOR(log_has("stats: uplink up queued")));

	agent_stop(th);
	__atomic_store_n(&mb.stop, true, __ATOMIC_RELEASE);
	shutdown(mb.lfd, SHUT_RDWR);
	close(mb.lfd);
	assert_int_equal(pthread_join(bt, NULL), 0);
	release_signals_and_log(&held);
}

/* Requests of function fc at addr (any: -1) seen on the fake line so far. */
static int
line_count(uint8_t fc, int addr)
{
	static struct fake_req log[4096];
	size_t n = fake_log(log, 4096);
	int k = 0;

	for (size_t i = 0; i < n && i < 4096; i++)
		k += log[i].fc == fc && (addr < 0 || log[i].addr == addr);
	return k;
}

/*
 * A QoS 2 command through an agent restart between its write and its PUBCOMP: the cloud never
 * saw the PUBREC (the agent stopped first), so it sends the PUBLISH again with DUP to the next
 * agent. That agent finds the packet id on disk (<spool>/commands/q2-ids): PUBREC, no second
 * write; PUBREL frees it and PUBCOMP completes. The device sees one write. With the ids in
 * memory only, the resend wrote it again.
 */
static void
test_agent_q2_command_restart(void **state)
{
	static struct mini_broker mb;
	pthread_t th, bt;
	char text[4096];
	struct held held;
	int reads, seen[3];

	(void)state;
	mb_listen(&mb);
	mb.q2_cmd = true;
	fake_reset();
	fake_set(MB_FN_HOLDING, 40, 215);
	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  topic_prefix: site\n"
	    "  state_dir: %s/state\n"
	    "  uplink: mqtt\n"
	    "  mqtt: {host: 127.0.0.1, port: %d, client_id: t-q2, keepalive: 5s, version: "
	    "'3.1.1'}\n"
	    "  commands: {topic: site/cmd}\n"
	    "  metrics: {listen: '127.0.0.1:%d', dataplane_telemetry: %s/no-dataplane.sock}\n"
	    "  buses:\n%s"
	    "uplink:\n"
	    "  spool: {dir: %s/spool-q2}\n",
	    PROFILES_DIR, dir, mb.port, port, dir, bus_rtu1, dir);
	write_file(cfg, text);
	hold_signals_and_log(&held);
	assert_int_equal(pthread_create(&bt, NULL, broker_thread, &mb), 0);

	/* the first agent writes the setpoint (FC16 at 40), answers PUBREC: lost */
	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(broker_has(&mb, &mb.responses, 1)));
	assert_true(WAIT_FOR(broker_has(&mb, &mb.pubrecs, 1)));
	assert_int_equal(line_count(16, 40), 1);
	agent_stop(th);

	/* the next agent gets the PUBLISH again, with DUP */
	pthread_mutex_lock(&mb.mu);
	mb.q2_release = true;
	pthread_mutex_unlock(&mb.mu);
	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(broker_has(&mb, &mb.pubcomps, 1)));
	/* a write queued for the bus goes before the next poll: two more polls */
	reads = line_count(3, -1);
	assert_true(WAIT_FOR(line_count(3, -1) >= reads + 2));
	assert_int_equal(line_count(16, 40), 1); /* the device saw one write */
	pthread_mutex_lock(&mb.mu);
	memcpy(seen, (int[]){ mb.q2_sent, mb.pubrecs, mb.responses }, sizeof(seen));
	pthread_mutex_unlock(&mb.mu);
	assert_int_equal(seen[0], 2);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 1); /* no second response: no second write */
	/* the free's commit wakes the agent's loop: PUBCOMP after an fdatasync, not a tick (up to
	 * 100 ms before); printed, not checked (a loaded box's disk sets it) */
	pthread_mutex_lock(&mb.mu);
	print_message("PUBREL to PUBCOMP: %.2f ms\n",
	    (double)(mb.pubcomp_at.tv_sec - mb.pubrel_at.tv_sec) * 1e3 +
		(double)(mb.pubcomp_at.tv_nsec - mb.pubrel_at.tv_nsec) / 1e6);
	pthread_mutex_unlock(&mb.mu);

	agent_stop(th);
	__atomic_store_n(&mb.stop, true, __ATOMIC_RELEASE);
	shutdown(mb.lfd, SHUT_RDWR);
	close(mb.lfd);
	assert_int_equal(pthread_join(bt, NULL), 0);
	release_signals_and_log(&held);
}

/*
 * A QoS 2 command acknowledged (PUBREC) and then the agent stops before its bus wrote it: the
 * line is slow (a poll in progress holds the write back). The command is on disk in the command
 * spool (<spool>/commands), its packet id with it; the next agent runs it again from there
 * (cmd_replayed) and answers the cloud's resend (DUP) PUBREC without running it a second time:
 * the device sees one write, the cloud one response. With the command in memory only, the first
 * agent's stop lost it and the resend was answered from the id on disk: never written.
 */
static void
test_agent_q2_command_stopped_before_write(void **state)
{
	static struct mini_broker mb;
	pthread_t th, bt;
	char text[4096];
	struct held held;
	int reads, seen[3];

	(void)state;
	mb_listen(&mb);
	mb.q2_cmd = true;
	fake_reset();
	fake_set(MB_FN_HOLDING, 40, 215);
	fake_set_delay_us(0, 700000); /* a poll's request holds the write back */
	snprintf(text, sizeof(text),
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  topic_prefix: site\n"
	    "  state_dir: %s/state\n"
	    "  uplink: mqtt\n"
	    "  mqtt: {host: 127.0.0.1, port: %d, client_id: t-q2s, keepalive: 5s, version: "
	    "'3.1.1'}\n"
	    "  commands: {topic: site/cmd}\n"
	    "  metrics: {listen: '127.0.0.1:%d', dataplane_telemetry: %s/no-dataplane.sock}\n"
	    "  buses:\n%s"
	    "uplink:\n"
	    "  spool: {dir: %s/spool-q2s}\n",
	    PROFILES_DIR, dir, mb.port, port, dir, bus_rtu1, dir);
	write_file(cfg, text);
	hold_signals_and_log(&held);
	assert_int_equal(pthread_create(&bt, NULL, broker_thread, &mb), 0);

	/* the first agent acknowledges the command and stops before its bus gets to it */
	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(broker_has(&mb, &mb.pubrecs, 1)));
	agent_stop(th);
	assert_int_equal(line_count(16, 40), 0);

	/* the next agent runs it from the spool; the resend (DUP) is answered, not run */
	fake_set_delay_us(0, 0);
	pthread_mutex_lock(&mb.mu);
	mb.q2_release = true;
	pthread_mutex_unlock(&mb.mu);
	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(broker_has(&mb, &mb.pubcomps, 1)));
	assert_true(WAIT_FOR(broker_has(&mb, &mb.responses, 1)));
	assert_true(WAIT_FOR(body_has(
	    "GET", "/metrics", "edgegw_agent_store_cmd_replayed_total{class=\"info\"} 1")));
	reads = line_count(3, -1);
	assert_true(WAIT_FOR(line_count(3, -1) >= reads + 2));
	assert_int_equal(line_count(16, 40), 1); /* the device saw one write */
	assert_int_equal(fake_get(MB_FN_HOLDING, 40), 235);
	pthread_mutex_lock(&mb.mu);
	memcpy(seen, (int[]){ mb.q2_sent, mb.pubrecs, mb.responses }, sizeof(seen));
	assert_non_null(strstr(mb.last_response, "\"status\":\"ok\""));
	pthread_mutex_unlock(&mb.mu);
	assert_int_equal(seen[0], 2);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 1);

	agent_stop(th);
	__atomic_store_n(&mb.stop, true, __ATOMIC_RELEASE);
	shutdown(mb.lfd, SHUT_RDWR);
	close(mb.lfd);
	assert_int_equal(pthread_join(bt, NULL), 0);
	release_signals_and_log(&held);
}

/*
 * A reload restarts a bus while spooled (QoS 1) commands wait in its queue, and the new config
 * refuses them: their device is gone (w1), or its new profile lacks their point (w2's serial).
 * Each carried command is answered with its reason and released from the command spool
 * (cmd_released), as a refusal before a bus is: left there, the next agent would run it again
 * (cmd_replayed) on a device the config no longer has. The line is slow (the first poll's
 * request takes 1.5 s) so that both commands still wait when the reload stops the bus.
 */
static void
test_agent_reload_refuses_carried_spooled_writes(void **state)
{
	static const char *const cmds[] = {
		"{\"id\":\"gone\",\"device\":\"w1\",\"point\":\"setpoint\",\"value\":22.5}",
		"{\"id\":\"nopt\",\"device\":\"w2\",\"point\":\"serial\",\"value\":\"ab\"}", NULL
	};
	static const char two_devs[] =
	    "    - name: rtu1\n"
	    "      type: rtu\n"
	    "      device: /dev/fake-rtu1\n"
	    "      rs485: {mode: off}\n"
	    "      devices:\n"
	    "        - {name: w1, unit_id: 1, profile: writes, interval: 100ms}\n"
	    "        - {name: w2, unit_id: 2, profile: writes, interval: 100ms}\n";
	static const char w2_only[] =
	    "    - name: rtu1\n"
	    "      type: rtu\n"
	    "      device: /dev/fake-rtu1\n"
	    "      rs485: {mode: off}\n"
	    "      devices:\n"
	    "        - {name: w2, unit_id: 2, profile: writes_mask, interval: 100ms}\n";
	static const char fmt[] =
	    "agent:\n"
	    "  profiles_dir: %s\n"
	    "  topic_prefix: site\n"
	    "  state_dir: %s/state\n"
	    "  uplink: mqtt\n"
	    "  mqtt: {host: 127.0.0.1, port: %d, client_id: t-carry, keepalive: 5s, version: "
	    "'3.1.1'}\n"
	    "  commands: {topic: site/cmd}\n"
	    "  metrics: {listen: '127.0.0.1:%d', dataplane_telemetry: %s/no-dataplane.sock}\n"
	    "  buses:\n%s"
	    "uplink:\n"
	    "  spool: {dir: %s/spool-carry}\n";
	static struct mini_broker mb;
	pthread_t th, bt;
	char text[4096], *log;
	struct held held;

	(void)state;
	mb_listen(&mb);
	mb.qos1_cmds = cmds;
	fake_reset();
	fake_set_delay_us(0, 1500000); /* the first poll holds the line while the commands come */
	snprintf(text, sizeof(text), fmt, PROFILES_DIR, dir, mb.port, port, dir, two_devs, dir);
	write_file(cfg, text);
	hold_signals_and_log(&held);
	assert_int_equal(pthread_create(&bt, NULL, broker_thread, &mb), 0);
	assert_int_equal(pthread_create(&th, NULL, agent_thread, NULL), 0);
	assert_true(WAIT_FOR(broker_has(&mb, &mb.pubacks, 2))); /* spooled, queued for rtu1 */

	snprintf(text, sizeof(text), fmt, PROFILES_DIR, dir, mb.port, port, dir, w2_only, dir);
	write_file(cfg, text);
	kill(getpid(), SIGHUP);
	fake_set_delay_us(0, 0); /* the request in flight keeps its 1.5 s; the next bus's do not */
	assert_true(
	    WAIT_FOR(log_has("2 queued writes of the restarted buses carried over (2 refused)")));
	assert_true(WAIT_FOR(broker_has(&mb, &mb.responses, 2)));
	pthread_mutex_lock(&mb.mu);
	assert_non_null(strstr(mb.all_responses, "\"id\":\"gone\""));
	assert_non_null(strstr(mb.all_responses, "\"reason\":\"no device named 'w1'\""));
	assert_non_null(strstr(mb.all_responses, "\"id\":\"nopt\""));
	assert_non_null(
	    strstr(mb.all_responses, "\"reason\":\"device 'w2' has no point 'serial'\""));
	pthread_mutex_unlock(&mb.mu);
	assert_true(WAIT_FOR(body_has(
	    "GET", "/metrics", "edgegw_agent_store_cmd_released_total{class=\"info\"} 2\n")));
	assert_int_equal(line_count(16, -1) + line_count(15, -1), 0); /* nothing written */

	agent_stop(th);
	__atomic_store_n(&mb.stop, true, __ATOMIC_RELEASE);
	shutdown(mb.lfd, SHUT_RDWR);
	close(mb.lfd);
	assert_int_equal(pthread_join(bt, NULL), 0);
	release_signals_and_log(&held);
	log = slurp(errlog);
	assert_null(strstr(log, "not written"));
	free(log);
}

/* --check, --version, --help and bad usage answer without starting anything. */
static void
test_agent_options(void **state)
{
	char *check[] = { "edgegw-agent", "--check", "-c", cfg, NULL };
	char *bad_cfg[] = { "edgegw-agent", "-c", "/nonexistent/gateway.yaml", NULL };
	char *version[] = { "edgegw-agent", "-V", NULL };
	char *extra[] = { "edgegw-agent", "-c", cfg, "extra", NULL };
	char *unknown[] = { "edgegw-agent", "--nope", NULL };
	char *help[] = { "edgegw-agent", "-h", NULL };

	(void)state;
	write_config("", "info");
	assert_int_equal(run_main(4, check), 0);
	assert_int_equal(run_main(3, bad_cfg), 1);
	assert_int_equal(run_main(2, version), 0);
	assert_int_equal(run_main(4, extra), 2);
	assert_int_equal(run_main(2, unknown), 2);
	assert_int_equal(run_main(2, help), 0);
	/* --check is strict: a device naming a profile that does not exist fails it */
	write_config("    - name: rtu2\n"
		     "      type: rtu\n"
		     "      device: /dev/fake-rtu2\n"
		     "      devices:\n"
		     "        - {name: w2, unit_id: 2, profile: no-such-profile}\n",
	    "info");
	assert_int_equal(run_main(4, check), 1);
}

/* A start that fails (the metrics address is taken) stops cleanly with exit 1. */
static void
test_agent_start_fails(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char *argv[] = { "edgegw-agent", "-c", cfg, NULL };
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	(void)state;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)port);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s, 1), 0);
	write_config("", "info");
	assert_int_equal(run_main(3, argv), 1);
	close(s);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/egw-agent-main-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cfg, sizeof(cfg), "%s/gateway.yaml", dir);
	snprintf(out, sizeof(out), "%s/out.jsonl", dir);
	snprintf(fifo, sizeof(fifo), "%s/cmd.fifo", dir);
	snprintf(stats, sizeof(stats), "%s/stats.json", dir);
	snprintf(errlog, sizeof(errlog), "%s/agent.log", dir);
	port = free_port();
	return mkfifo(fifo, 0600);
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return getenv("KEEP") ? 0 : system(cmd) == 0 ? 0 : -1; /* KEEP=1: look at it */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_options),
		cmocka_unit_test(test_agent_start_fails),
		cmocka_unit_test(test_agent_run),
		cmocka_unit_test(test_agent_reload_carries_writes),
		cmocka_unit_test(test_agent_reload_refuses_carried_spooled_writes),
		cmocka_unit_test(test_agent_degraded),
		cmocka_unit_test(test_agent_mqtt_uplink),
		cmocka_unit_test(test_agent_q2_command_restart),
		cmocka_unit_test(test_agent_q2_command_stopped_before_write),
	};

	if (getenv("TEST_FILTER") != NULL) /* one test: TEST_FILTER=test_agent_run */
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
