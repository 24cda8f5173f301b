/* test_agent_config.c: the agent section's parser (agent/agent_config.c), its metrics key. */
#include <setjmp.h>
#include <stdarg.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_absent),
		cmocka_unit_test(test_metrics_good),
		cmocka_unit_test(test_metrics_bad),
		cmocka_unit_test(test_listen_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
