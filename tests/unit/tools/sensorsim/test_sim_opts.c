/* test_sim_opts.c: the option value syntaxes (QoS mix, bind ranges, topic templates) and the
 * whole command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mqtt_codec.h"
#include "sim_opts.h"

static void
test_qos_mix(void **st)
{
	uint32_t w[3];
	int count[3] = { 0 };

	(void)st;
	assert_int_equal(sim_parse_qos_mix("0:50,1:40,2:10", w), 0);
	assert_int_equal(w[0], 50);
	assert_int_equal(w[1], 40);
	assert_int_equal(w[2], 10);
	for (uint32_t r = 0; r < 100; r++)
		count[sim_qos_pick(w, r)]++;
	assert_int_equal(count[0], 50);
	assert_int_equal(count[1], 40);
	assert_int_equal(count[2], 10);
	assert_int_equal(sim_parse_qos_mix("2", w), 0);
	assert_int_equal(sim_qos_pick(w, 0), 2);
	assert_int_equal(sim_parse_qos_mix("1:3", w), 0);
	assert_int_equal(sim_qos_pick(w, 2), 1);
	const char *bad[] = { "3", "", "0:", "0:x", "0:1,0:2", "3:1", "0:0", "0:1;1:1", "12" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sim_parse_qos_mix(bad[i], w), -EINVAL);
}

static void
test_bind(void **st)
{
	struct in_addr a[300];
	char s[32];

	(void)st;
	assert_int_equal(sim_parse_bind("198.18.0.2", a, 300), 1);
	assert_int_equal(sim_parse_bind("198.18.0.250-198.18.1.4", a, 300), 11);
	inet_ntop(AF_INET, &a[10], s, sizeof(s));
	assert_string_equal(s, "198.18.1.4");
	inet_ntop(AF_INET, &a[6], s, sizeof(s));
	assert_string_equal(s, "198.18.1.0");
	assert_int_equal(sim_parse_bind("198.18.0.9-198.18.0.2", a, 300), -EINVAL);
	assert_int_equal(sim_parse_bind("198.18.0.0-198.19.0.0", a, 300), -EINVAL); /* too many */
	assert_int_equal(sim_parse_bind("host", a, 300), -EINVAL);
}

static void
test_topic(void **st)
{
	char out[64];

	(void)st;
	assert_int_equal(sim_topic_check("site/{session}/sensor/{n}"), 0);
	assert_int_equal(sim_topic_expand("site/{session}/sensor/{n}", 42, 7, out, sizeof(out)),
	    (int)strlen("site/42/sensor/7"));
	assert_string_equal(out, "site/42/sensor/7");
	assert_int_equal(sim_topic_expand("{n}{n}", 0, 4294967295u, out, sizeof(out)), 20);
	assert_int_equal(sim_topic_expand("abcdefgh/{session}", 1234, 0, out, 12), -ENOSPC);
	assert_int_equal(sim_topic_check("a/{sess}"), -EINVAL);
	assert_int_equal(sim_topic_check("a/}"), -EINVAL);
	assert_int_equal(sim_topic_check(""), -EINVAL);
}

static void
test_command_line(void **st)
{
	static struct sim_opts o;
	char *argv[] = { "sim", "-H", "127.0.0.1", "-p", "1884", "-c", "200", "-S", "2", "-F",
		"site/#", "-q", "0:1,1:1,2:1", "-V", "5", "-r", "0", "-m", "1000", "-b",
		"198.18.0.2-198.18.0.3", "--bind", "198.18.0.9", "--json", "--no-clean", "-n",
		"3-5", NULL };
	char *bad[] = { "sim", "--port", "70000", NULL };
	char *extra[] = { "sim", "stray", NULL };

	(void)st;
	sim_opts_defaults(&o);
	assert_int_equal(sim_opts_parse(&o, (int)(sizeof(argv) / sizeof(argv[0])) - 1, argv), 0);
	assert_int_equal(o.port, 1884);
	assert_int_equal(o.sessions, 200);
	assert_int_equal(o.subscribers, 2);
	assert_string_equal(o.sub_filter, "site/#");
	assert_int_equal(o.version, MQTT_V5);
	assert_true(o.rate == 0);
	assert_int_equal(o.count, 1000);
	assert_int_equal(o.n_bind, 3);
	assert_true(o.json);
	assert_false(o.clean);
	assert_int_equal(o.n_lo, 3);
	assert_int_equal(o.n_hi, 5);
	sim_opts_defaults(&o);
	assert_int_equal(sim_opts_parse(&o, 3, bad), -EINVAL);
	sim_opts_defaults(&o);
	assert_int_equal(sim_opts_parse(&o, 2, extra), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qos_mix),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_topic),
		cmocka_unit_test(test_command_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
