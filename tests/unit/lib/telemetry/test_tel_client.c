/*
 * test_tel_client.c: lib/telemetry's client against a fake DPDK telemetry server (a
 * SOCK_SEQPACKET socket in a temporary folder, run by a thread from a script): the greeting and
 * its max_output_len, a query's value under its command's key, and each way it goes wrong: no
 * socket, a path too long, a server that closes, sends bad JSON, stays silent (the timeout
 * given at open; the connection then closed, out of step), answers null or under another key,
 * or has gone before the query.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "tel_client.h"

#define SILENT "<silent>" /* read the command, answer nothing, wait for the client to go */

static char dir[32], path[96];
static int lfd = -1;
static pthread_t thr;

struct script {
	const char *greeting; /* NULL: close at once */
	const char *replies[4];
};

/* One connection, played from the script: greet, then read a command and answer it. */
static void *
serve(void *arg)
{
	const struct script *s = arg;
	char cmd[256];
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (s->greeting != NULL && send(fd, s->greeting, strlen(s->greeting), 0) > 0) {
		for (size_t i = 0; i < 4 && s->replies[i] != NULL; i++) {
			if (recv(fd, cmd, sizeof(cmd), 0) <= 0)
				break;
			if (strcmp(s->replies[i], SILENT) == 0) {
				while (recv(fd, cmd, sizeof(cmd), 0) > 0)
					;
				break;
			}
			send(fd, s->replies[i], strlen(s->replies[i]), 0);
		}
	}
	close(fd);
	return NULL;
}

static void
serve_start(const struct script *s)
{
	assert_int_equal(pthread_create(&thr, NULL, serve, (void *)s), 0);
}

static void
serve_end(void)
{
	pthread_join(thr, NULL);
}

static int
setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_tel.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/dpdk_telemetry.v2", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	close(lfd);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void
test_socket_path(void **state)
{
	char p[128];

	(void)state;
	tel_socket_path("egw", p, sizeof(p));
	assert_string_equal(p, "/var/run/dpdk/egw/dpdk_telemetry.v2");
	tel_socket_path("", p, sizeof(p));
	assert_string_equal(p, "/var/run/dpdk/rte/dpdk_telemetry.v2");
	tel_socket_path(NULL, p, sizeof(p));
	assert_string_equal(p, "/var/run/dpdk/rte/dpdk_telemetry.v2");
}

static void
test_greeting_and_queries(void **state)
{
	static const struct script s = {
		"{\"version\":\"DPDK 22.11.5\",\"pid\":4242,\"max_output_len\":4096}",
		{ "{\"/ethdev/stats\":{\"ipackets\":7}}", "{\"/edgegw/nope\":null}",
		    "{\"/other\":1}", NULL },
	};
	struct tel_conn c;
	char err[256];
	json_t *v;

	(void)state;
	serve_start(&s);
	assert_int_equal(tel_open(&c, path, 2000, err, sizeof(err)), 0);
	assert_int_equal(c.pid, 4242);
	assert_int_equal(c.max_output_len, 4096);
	v = tel_query(&c, "/ethdev/stats,0", err, sizeof(err)); /* the key is the command */
	assert_non_null(v);
	assert_int_equal(json_integer_value(json_object_get(v, "ipackets")), 7);
	json_decref(v);
	assert_null(tel_query(&c, "/edgegw/nope", err, sizeof(err)));
	assert_string_equal(err, "/edgegw/nope: no such command on this dataplane");
	assert_null(tel_query(&c, "/edgegw/other", err, sizeof(err)));
	assert_string_equal(err, "/edgegw/other: no such command on this dataplane");
	/* the server has gone: the next query fails, however the socket reports it */
	serve_end();
	assert_null(tel_query(&c, "/ethdev/list", err, sizeof(err)));
	assert_true(strstr(err, "connection closed") || strstr(err, "/ethdev/list: "));
	tel_close(&c);
	assert_int_equal(c.fd, -1);
	assert_null(tel_query(&c, "/ethdev/list", err, sizeof(err)));
	assert_string_equal(err, "/ethdev/list: not connected");
	tel_close(&c); /* twice is harmless */
}

static void
test_greeting_without_limit_keeps_the_default(void **state)
{
	static const struct script s = { "{\"pid\":1}", { NULL } };
	struct tel_conn c;
	char err[256], longcmd[200];

	(void)state;
	serve_start(&s);
	assert_int_equal(tel_open(&c, path, 2000, err, sizeof(err)), 0);
	assert_int_equal(c.max_output_len, 16384);
	memset(longcmd, 'x', sizeof(longcmd) - 1);
	longcmd[sizeof(longcmd) - 1] = '\0';
	assert_null(tel_query(&c, longcmd, err, sizeof(err))); /* no key that long */
	assert_non_null(strstr(err, ": not connected"));
	tel_close(&c);
	serve_end();
}

static void
test_open_failures(void **state)
{
	static const struct script closes = { NULL, { NULL } }, garbage = { "not json", { NULL } };
	struct tel_conn c;
	char err[256], longpath[200], missing[160];

	(void)state;
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(tel_open(&c, longpath, 100, err, sizeof(err)), -ENAMETOOLONG);
	assert_non_null(strstr(err, ": path too long"));
	snprintf(missing, sizeof(missing), "%s/none", dir);
	assert_int_equal(tel_open(&c, missing, 100, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/none: No such file or directory"));
	assert_int_equal(c.fd, -1);

	serve_start(&closes);
	assert_int_equal(tel_open(&c, path, 2000, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "connection closed");
	assert_int_equal(c.fd, -1);
	serve_end();

	serve_start(&garbage);
	assert_int_equal(tel_open(&c, path, 2000, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "bad JSON: "));
	serve_end();
}

/* A dataplane that takes the command and never answers costs one timeout. */
static void
test_silent_server_times_out(void **state)
{
	static const struct script s = { "{\"pid\":2}", { SILENT, NULL } };
	struct tel_conn c;
	char err[256];

	(void)state;
	serve_start(&s);
	assert_int_equal(tel_open(&c, path, 100, err, sizeof(err)), 0);
	assert_null(tel_query(&c, "/ethdev/list", err, sizeof(err)));
	assert_string_equal(err, "no answer in time");
	/* out of step now (a late answer would be read as the next query's): closed, and the
	 * next query fails at once */
	assert_int_equal(c.fd, -1);
	assert_null(tel_query(&c, "/ethdev/stats,0", err, sizeof(err)));
	assert_string_equal(err, "/ethdev/stats,0: not connected");
	tel_close(&c);
	serve_end();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test_setup_teardown(test_greeting_and_queries, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_greeting_without_limit_keeps_the_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_server_times_out, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
