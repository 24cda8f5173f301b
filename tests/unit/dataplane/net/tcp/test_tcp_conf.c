/*
 * test_tcp_conf.c: the TCP's config section (dataplane/net/tcp/tcp_conf.c, `dataplane.tcp`
 * in docs/config.md): every key read into struct tcp_config, each bad value an error at its
 * line naming the key, the field then left at its default (nothing half-parsed), and the two
 * rules across keys (a window scale that cannot advertise rcvbuf, rto_min above rto_max).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tcp_cc.h"
#include "tcp_conf.h"

/* Parse "tcp:" out of text into t (from the defaults); the number of errors, the first in err. */
static unsigned
parse(const char *text, struct tcp_config *t, char *err, size_t errlen)
{
	struct conf_doc *doc;
	unsigned n;

	err[0] = '\0';
	tcp_config_defaults(t);
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, errlen), 0);
	tcp_config_parse(conf_get(conf_root(doc), "tcp"), t);
	n = conf_error_count(doc);
	if (n > 0)
		snprintf(err, errlen, "%s", conf_first_error(doc));
	conf_free(doc);
	return n;
}

static void
test_absent_keeps_defaults(void **state)
{
	struct tcp_config t, d;
	char err[256];

	(void)state;
	assert_int_equal(parse("other: 1\n", &t, err, sizeof(err)), 0);
	tcp_config_defaults(&d);
	/* the one value computed: the smallest scale that advertises a 64k buffer */
	assert_int_equal(t.wscale, 1);
	d.wscale = 1;
	assert_memory_equal(&t, &d, sizeof(t));
}

static void
test_every_key(void **state)
{
	static const char text[] = "tcp:\n"
				   "  max_flows: 1000\n"
				   "  max_half_open: 50\n"
				   "  rcvbuf: 1M\n"
				   "  sndbuf: 256k\n"
				   "  mss: 1400\n"
				   "  wscale: 6\n"
				   "  timestamps: false\n"
				   "  rto_min: 50ms\n"
				   "  rto_max: 30s\n"
				   "  rto_initial: 2s\n"
				   "  delack: 10ms\n"
				   "  time_wait: 5s\n"
				   "  syn_retries: 3\n"
				   "  data_retries: 7\n"
				   "  keepalive: true\n"
				   "  keepalive_idle: 60s\n"
				   "  keepalive_interval: 5s\n"
				   "  keepalive_probes: 4\n"
				   "  challenge_ack_per_s: 20\n"
				   "  congestion_control: newreno\n";
	struct tcp_config t;
	char err[256];

	(void)state;
	assert_int_equal(parse(text, &t, err, sizeof(err)), 0);
	assert_int_equal(t.max_flows, 1000);
	assert_int_equal(t.max_half_open, 50);
	assert_int_equal(t.rcvbuf_bytes, 1u << 20);
	assert_int_equal(t.sndbuf_bytes, 256u << 10);
	assert_int_equal(t.mss, 1400);
	assert_int_equal(t.wscale, 6);
	assert_false(t.timestamps);
	assert_int_equal(t.rto_min_ms, 50);
	assert_int_equal(t.rto_max_ms, 30000);
	assert_int_equal(t.rto_initial_ms, 2000);
	assert_int_equal(t.delack_ms, 10);
	assert_int_equal(t.time_wait_ms, 5000);
	assert_int_equal(t.syn_retries, 3);
	assert_int_equal(t.data_retries, 7);
	assert_true(t.keepalive);
	assert_int_equal(t.keepalive_idle_ms, 60000);
	assert_int_equal(t.keepalive_intvl_ms, 5000);
	assert_int_equal(t.keepalive_probes, 4);
	assert_int_equal(t.challenge_ack_per_s, 20);
	assert_int_equal(t.cc, TCP_CC_NEWRENO);
}

/* The window scale: computed from rcvbuf when absent (the smallest that covers it), and a set
 * one too small for rcvbuf is an error at the wscale line (no silently smaller window). */
static void
test_wscale(void **state)
{
	struct tcp_config t;
	char err[256];

	(void)state;
	assert_int_equal(parse("tcp:\n  rcvbuf: 4M\n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.wscale, 7); /* 65535 << 6 < 4M <= 65535 << 7 */
	assert_int_equal(parse("tcp:\n  rcvbuf: 64M\n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.wscale, 11);
	assert_int_equal(parse("tcp:\n  rcvbuf: 32k\n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.wscale, 0);
	assert_int_equal(parse("tcp:\n  rcvbuf: 4M\n  wscale: 3\n", &t, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "t.yaml:3"));
	assert_non_null(strstr(err, "wscale 3 cannot advertise rcvbuf"));
	assert_int_equal(parse("tcp:\n  rcvbuf: 4M\n  wscale: 14\n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.wscale, 14); /* larger than needed: allowed */
	assert_int_equal(parse("tcp:\n  wscale: 15\n", &t, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "t.yaml:2"));
	assert_int_equal(t.wscale, 1); /* the computed one stays */
}

static void
test_rto_min_above_max(void **state)
{
	struct tcp_config t;
	char err[256];

	(void)state;
	assert_int_equal(parse("tcp:\n  rto_min: 2s\n  rto_max: 1s\n", &t, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "t.yaml:2"));
	assert_non_null(strstr(err, "rto_min is above rto_max"));
}

/* Each key with a value out of range (or of the wrong kind): one error at its line, and the
 * field keeps its default. */
static void
test_bad_values(void **state)
{
	static const struct {
		const char *line;
		size_t off, size;
	} bad[] = {
#define F(field) offsetof(struct tcp_config, field), sizeof(((struct tcp_config *)0)->field)
		{ "max_flows: 8", F(max_flows) },
		{ "max_half_open: 0", F(max_half_open) },
		{ "rcvbuf: 1k", F(rcvbuf_bytes) },
		{ "sndbuf: 128M", F(sndbuf_bytes) },
		{ "mss: 100", F(mss) },
		{ "timestamps: maybe", F(timestamps) },
		{ "rto_min: 0ms", F(rto_min_ms) },
		{ "rto_max: 11m", F(rto_max_ms) },
		{ "rto_initial: 5ms", F(rto_initial_ms) },
		{ "delack: 1s", F(delack_ms) },
		{ "time_wait: 10ms", F(time_wait_ms) },
		{ "syn_retries: 17", F(syn_retries) },
		{ "data_retries: 0", F(data_retries) },
		{ "keepalive: 2", F(keepalive) },
		{ "keepalive_idle: 10ms", F(keepalive_idle_ms) },
		{ "keepalive_interval: 2h", F(keepalive_intvl_ms) },
		{ "keepalive_probes: 101", F(keepalive_probes) },
		{ "challenge_ack_per_s: 0", F(challenge_ack_per_s) },
		{ "congestion_control: bbr", F(cc) },
		{ "no_such_key: 1", 0, 0 },
#undef F
	};
	struct tcp_config t, d;
	char text[128], err[256];

	(void)state;
	tcp_config_defaults(&d);
	d.wscale = 1;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char key[32];

		snprintf(text, sizeof(text), "tcp:\n  %s\n", bad[i].line);
		assert_int_equal(parse(text, &t, err, sizeof(err)), 1);
		assert_non_null(strstr(err, "t.yaml:2"));
		snprintf(key, sizeof(key), "%.*s", (int)strcspn(bad[i].line, ":"), bad[i].line);
		if (bad[i].size > 0) {
			if (memcmp((char *)&t + bad[i].off, (char *)&d + bad[i].off, bad[i].size) !=
			    0)
				fail_msg("'%s' changed the field", bad[i].line);
		} else {
			assert_non_null(strstr(err, key));
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent_keeps_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_wscale),
		cmocka_unit_test(test_rto_min_above_max),
		cmocka_unit_test(test_bad_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
