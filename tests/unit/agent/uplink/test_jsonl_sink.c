/*
 * test_jsonl_sink.c: the JSON-lines uplink (agent/uplink/jsonl_sink.c). Every line it writes
 * must parse as JSON with the message's topic, QoS, retain flag and payload (inlined when it is
 * JSON, a string otherwise); what cannot be written is refused and counted (a topic that is not
 * UTF-8, a full disk); commands come line by line from a FIFO, long lines dropped whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "loop.h"
#include "uplink.h"

static char dir[64], out_path[96];
static struct agent_loop *L;

static struct {
	char payload[8][64];
	int n;
	uint64_t acked[8];
	int nacked;
} got;

static int
on_cmd(void *arg, const char *topic, const uint8_t *p, size_t len, uint8_t qos, bool retain,
    uint16_t packet_id, uint64_t token)
{
	(void)packet_id, (void)token;
	(void)arg;
	(void)qos;
	(void)retain;
	assert_string_equal(topic, "site/cmd");
	assert_true(got.n < 8);
	snprintf(got.payload[got.n++], sizeof(got.payload[0]), "%.*s", (int)len, (const char *)p);
	return 0;
}

static void
on_acked(void *arg, uint64_t ref, uint8_t reason)
{
	(void)arg;
	assert_int_equal(reason, 0);
	got.acked[got.nacked++] = ref;
}

static int
setup(void **state)
{
	(void)state;
	memset(&got, 0, sizeof(got));
	snprintf(dir, sizeof(dir), "/tmp/test_jsonl.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(out_path, sizeof(out_path), "%s/out.jsonl", dir);
	assert_int_equal(agent_loop_create(&L, 10), 0);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[96];

	(void)state;
	agent_loop_destroy(L);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static struct uplink *
sink(const char *path, const char *cmd_path)
{
	struct uplink *u;

	assert_int_equal(uplink_jsonl_create(&u, L, path, cmd_path, "site/cmd", on_cmd, NULL), 0);
	return u;
}

/* Line i of the output, parsed (the test fails when it is not JSON). */
static json_t *
line(int i)
{
	char buf[4096];
	json_error_t e;
	json_t *j = NULL;
	FILE *f = fopen(out_path, "r");

	assert_non_null(f);
	for (int k = 0; k <= i; k++)
		assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	j = json_loads(buf, JSON_ALLOW_NUL, &e);
	if (j == NULL)
		fail_msg("line %d is not JSON (%s): %s", i, e.text, buf);
	return j;
}

static void
test_lines_are_json(void **state)
{
	static const char odd[] = "say \"hi\"\\\n\x01 end";
	struct uplink *u;
	json_t *j;

	(void)state;
	u = sink(out_path, NULL);
	assert_int_equal(uplink_send(u, "a/b", "{\"v\": 1}", 8, 1, false, 0), 0);
	assert_int_equal(uplink_send(u, "a/c", odd, sizeof(odd) - 1, 0, true, 0), 0);
	assert_int_equal(uplink_send(u, "a/d", "{\"v\":\n1}", 8, 0, false, 0), 0);
	assert_int_equal(uplink_send(u, "a/e", "{not json}", 10, 0, false, 0), 0);
	assert_int_equal(uplink_send(u, "a/f", "", 0, 2, false, 0), 0);

	j = line(0);
	assert_string_equal(json_string_value(json_object_get(j, "topic")), "a/b");
	assert_int_equal(json_integer_value(json_object_get(j, "qos")), 1);
	assert_true(json_is_false(json_object_get(j, "retain")));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "payload"), "v")), 1);
	json_decref(j);
	j = line(1); /* not JSON: a string, escaped */
	assert_true(json_is_true(json_object_get(j, "retain")));
	assert_string_equal(json_string_value(json_object_get(j, "payload")), odd);
	json_decref(j);
	j = line(2); /* JSON over two lines: quoted, one line still */
	assert_string_equal(json_string_value(json_object_get(j, "payload")), "{\"v\":\n1}");
	json_decref(j);
	j = line(3); /* braces around something that is not JSON: quoted too */
	assert_string_equal(json_string_value(json_object_get(j, "payload")), "{not json}");
	json_decref(j);
	j = line(4);
	assert_string_equal(json_string_value(json_object_get(j, "payload")), "");
	json_decref(j);
	uplink_destroy(u);
}

/* A payload that is not valid UTF-8 (a stray continuation byte, a cut sequence, an overlong
 * form, a surrogate) cannot be a JSON string: it goes in base64, said by "payload_encoding",
 * and decodes to the same bytes. Valid UTF-8, U+0000 included, stays a plain string. */
static void
test_payload_not_utf8_is_base64(void **state)
{
	static const struct {
		const char *bytes, *b64;
		size_t len;
	} bad[] = {
		{ "t\x80x", "dIB4", 3 },
		{ "caf\xc3", "Y2Fmww==", 4 },
		{ "\xc0\xaf", "wK8=", 2 },
		{ "\xed\xa0\x80", "7aCA", 3 },
		{ "\xff", "/w==", 1 },
	};
	static const char good[] = "caf\xc3\xa9 \xf0\x9f\x8c\xa1 \0end";
	struct uplink *u;
	json_t *j;
	size_t n = sizeof(bad) / sizeof(bad[0]);

	(void)state;
	u = sink(out_path, NULL);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(uplink_send(u, "a/bin", bad[i].bytes, bad[i].len, 0, false, 0), 0);
	assert_int_equal(uplink_send(u, "a/txt", good, sizeof(good) - 1, 0, false, 0), 0);
	for (size_t i = 0; i < n; i++) {
		j = line((int)i);
		assert_string_equal(json_string_value(json_object_get(j, "payload")), bad[i].b64);
		assert_string_equal(
		    json_string_value(json_object_get(j, "payload_encoding")), "base64");
		json_decref(j);
	}
	j = line((int)n);
	assert_int_equal(json_string_length(json_object_get(j, "payload")), sizeof(good) - 1);
	assert_memory_equal(
	    json_string_value(json_object_get(j, "payload")), good, sizeof(good) - 1);
	assert_null(json_object_get(j, "payload_encoding"));
	json_decref(j);
	uplink_destroy(u);
}

/* What cannot be written is refused, counted, and leaves no line. */
static void
test_refusals_counted(void **state)
{
	char topic[600];
	struct uplink_stats st;
	struct uplink *u;
	struct stat sb;

	(void)state;
	memset(topic, 't', sizeof(topic) - 1);
	topic[sizeof(topic) - 1] = '\0';
	u = sink(out_path, NULL);
	assert_int_equal(uplink_send(u, "a/\xff", "{}", 2, 0, false, 0), -EINVAL); /* not UTF-8 */
	assert_int_equal(uplink_send(u, topic, "{}", 2, 0, false, 0), -EINVAL);
	assert_int_equal(stat(out_path, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	uplink_get_stats(u, &st);
	assert_int_equal(st.submitted, 2);
	assert_int_equal(st.dropped, 2);
	assert_int_equal(st.sent, 0);
	assert_true(st.connected);
	uplink_destroy(u);

	u = sink("/dev/full", NULL);
	assert_int_equal(uplink_send(u, "a", "{}", 2, 1, false, 0), -EIO);
	uplink_get_stats(u, &st);
	assert_int_equal(st.dropped, 1);
	uplink_destroy(u);
}

/* The sink is the end of the line: a message with a ref is acknowledged once written. */
static void
test_written_is_acked(void **state)
{
	struct uplink_stats st;
	struct uplink *u;

	(void)state;
	u = sink(out_path, NULL);
	u->dlv.acked = on_acked;
	assert_int_equal(uplink_send(u, "a", "{}", 2, 1, false, 41), 0);
	assert_int_equal(uplink_send(u, "a", "{}", 2, 0, false, 0), 0); /* no ref: no report */
	assert_int_equal(got.nacked, 1);
	assert_int_equal(got.acked[0], 41);
	assert_int_equal(uplink_backlog(u), 0);
	uplink_get_stats(u, &st);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.acked, 1);
	uplink_destroy(u);
}

static void
test_open_errors(void **state)
{
	char p[128];
	struct uplink *u;
	int fd;

	(void)state;
	snprintf(p, sizeof(p), "%s/no/such/out", dir);
	assert_int_equal(uplink_jsonl_create(&u, L, p, NULL, "c", on_cmd, NULL), -ENOENT);
	snprintf(p, sizeof(p), "%s/nosuch.fifo", dir);
	assert_int_equal(uplink_jsonl_create(&u, L, out_path, p, "c", on_cmd, NULL), -ENOENT);
	/* a regular file cannot be watched (epoll): refused, not read once and forgotten */
	snprintf(p, sizeof(p), "%s/cmds.txt", dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(uplink_jsonl_create(&u, L, out_path, p, "c", on_cmd, NULL), -EINVAL);
	/* "-" and "": stdout */
	u = sink("-", NULL);
	uplink_destroy(u);
}

static void
stop_tick(void *arg, uint64_t now_ms)
{
	int *n = arg;

	(void)now_ms;
	if (++*n >= 3)
		agent_loop_stop(L);
}

/* Commands line by line: CR and trailing blanks trimmed, empty lines skipped, a line over
 * 4 KiB dropped whole (with the rest of it) and the next one taken. */
static void
test_commands_from_fifo(void **state)
{
	static char big[6000];
	char fifo[128];
	struct uplink_stats st;
	struct uplink *u;
	int wfd, ticks = 0;

	(void)state;
	snprintf(fifo, sizeof(fifo), "%s/cmd.fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	u = sink(out_path, fifo);
	wfd = open(fifo, O_WRONLY | O_NONBLOCK);
	assert_true(wfd >= 0);
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	assert_int_equal(write(wfd, "a\r\n\n  \nb \n", 10), 10);
	assert_int_equal(write(wfd, big, sizeof(big)), (ssize_t)sizeof(big));
	assert_int_equal(write(wfd, "c\n", 2), 2);
	close(wfd);
	assert_int_equal(agent_loop_add_tick(L, stop_tick, &ticks), 0);
	assert_int_equal(agent_loop_run(L), 0);
	assert_int_equal(got.n, 3);
	assert_string_equal(got.payload[0], "a");
	assert_string_equal(got.payload[1], "b");
	assert_string_equal(got.payload[2], "c");
	uplink_get_stats(u, &st);
	assert_int_equal(st.commands, 3);
	uplink_destroy(u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lines_are_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_payload_not_utf8_is_base64, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_is_acked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands_from_fifo, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
