/* test_mqtt_conf.c: the agent's "mqtt:" section (agent/uplink/mqtt_conf.c): defaults, every
 * key, and errors at the right file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mqtt_codec.h"
#include "mqtt_conf.h"

/* Parse "mqtt:" out of text; 0 or -1 with the first error in err. */
static int
parse(const char *text, struct uplink_mqtt_conf *c, char *err, size_t errlen)
{
	struct conf_doc *doc;
	int rc;

	err[0] = '\0';
	if (conf_load_string("t.yaml", text, strlen(text), &doc, err, errlen) != 0)
		return -2;
	rc = uplink_mqtt_conf_parse(conf_get(conf_root(doc), "mqtt"), c);
	if (rc != 0 || conf_error_count(doc) != 0) {
		snprintf(err, errlen, "%s", conf_first_error(doc));
		rc = -1;
	}
	conf_free(doc);
	return rc;
}

static void
test_defaults(void **state)
{
	struct uplink_mqtt_conf c;
	char err[256];

	(void)state;
	assert_int_equal(parse("x: 1\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.host, "127.0.0.1");
	assert_int_equal(c.port, 1883);
	assert_int_equal(c.version, MQTT_V5);
	assert_int_equal(c.qos, UPLINK_QOS_KEEP);
	assert_int_equal(c.keepalive_s, 60);
	assert_false(c.tls.enabled);
	assert_true(c.reconnect_min_ms <= c.reconnect_max_ms);
}

static void
test_every_key(void **state)
{
	static const char text[] = "mqtt:\n"
				   "  host: cloud.example\n"
				   "  client_id: plant1\n"
				   "  username: u\n"
				   "  password: p\n"
				   "  version: 3.1.1\n"
				   "  qos: 1\n"
				   "  keepalive: 45s\n"
				   "  session_expiry: 1h\n"
				   "  window: 16\n"
				   "  max_queue: 5000\n"
				   "  reconnect_min: 500ms\n"
				   "  reconnect_max: 5m\n"
				   "  connect_timeout: 20s\n"
				   "  address_timeout: 2s\n"
				   "  bind_interface: wwan0\n"
				   "  tls: {ca: /etc/ca.pem, cert: /etc/c.pem, key: /etc/k.pem, "
				   "server_name: broker.example, resume: false}\n";
	struct uplink_mqtt_conf c;
	char err[256];

	(void)state;
	assert_int_equal(parse(text, &c, err, sizeof(err)), 0);
	assert_string_equal(c.host, "cloud.example");
	assert_int_equal(c.port, 8883); /* the TLS default */
	assert_int_equal(c.version, MQTT_V311);
	assert_int_equal(c.qos, 1);
	assert_int_equal(c.keepalive_s, 45);
	assert_int_equal(c.session_expiry_s, 3600);
	assert_int_equal(c.window, 16);
	assert_int_equal(c.max_queue, 5000);
	assert_int_equal(c.reconnect_min_ms, 500);
	assert_int_equal(c.reconnect_max_ms, 300000);
	assert_int_equal(c.connect_timeout_ms, 20000);
	assert_int_equal(c.address_timeout_ms, 2000);
	assert_string_equal(c.bind_interface, "wwan0");
	assert_true(c.tls.enabled);
	assert_true(c.tls.verify);
	assert_false(c.tls.resume);
	assert_string_equal(c.tls.ca, "/etc/ca.pem");
	assert_string_equal(c.tls.server_name, "broker.example");
}

/* A config the section refuses, and how its error starts. */
struct refusal {
	const char *text, *want;
};

/* Each text is refused (-1), its error starting with what the case wants. */
static void
refused_each(const struct refusal *cases, size_t n)
{
	struct uplink_mqtt_conf c;
	char err[256];

	for (size_t i = 0; i < n; i++) {
		int rc = parse(cases[i].text, &c, err, sizeof(err));

		if (rc != -1 || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg(
			    "case %zu: rc %d, got '%s', want '%s...'", i, rc, err, cases[i].want);
	}
}

static void
test_errors_name_the_line(void **state)
{
	static const struct refusal cases[] = {
		{ "mqtt:\n  colour: red\n", "t.yaml:2:3: unknown key 'colour'" },
		{ "mqtt:\n  version: 4\n", "t.yaml:2:12:" },
		{ "mqtt:\n  qos: 3\n", "t.yaml:2:8:" },
		{ "mqtt:\n  port: 0\n", "t.yaml:2:9:" },
		{ "mqtt:\n  keepalive: 2s\n", "t.yaml:2:14: keepalive is whole seconds" },
		{ "mqtt:\n  reconnect_min: 10s\n  reconnect_max: 1s\n",
		    "t.yaml:3:18: reconnect_max (1000 ms) is below reconnect_min" },
		{ "mqtt:\n  tls: {ca: a.pem, cert: c.pem}\n",
		    "t.yaml:2:26: tls.cert needs tls.key" },
		{ "mqtt:\n  tls: {ca: a.pem, key: k.pem}\n",
		    "t.yaml:2:25: tls.key needs tls.cert" },
		{ "mqtt:\n  tls: {verify: true}\n", "t.yaml:2:8: tls needs 'ca'" },
		{ "mqtt:\n  tls: {psk_identity: site}\n",
		    "t.yaml:2:23: tls.psk_identity needs tls.psk_file" },
		{ "mqtt:\n  tls: {psk_file: /etc/k.psk}\n",
		    "t.yaml:2:19: tls.psk_file needs tls.psk_identity" },
		{ "mqtt:\n  bind_interface: averyveryverylongname\n",
		    "t.yaml:2:19: 'bind_interface' is too long" },
		{ "mqtt:\n  client_id: ''\n", "t.yaml:2:14: client_id must not be empty" },
		{ "mqtt:\n  window: 0\n", "t.yaml:2:11:" },
	};

	(void)state;
	refused_each(cases, sizeof(cases) / sizeof(cases[0]));
}

/* More refusals, one key wrong each. */
static void
test_more_errors(void **state)
{
	static const struct refusal cases[] = {
		{ "mqtt: 7\n", "t.yaml:1:7: 'mqtt' must be a mapping" },
		{ "mqtt:\n  tls: 7\n", "t.yaml:2:8: 'tls' must be a mapping" },
		{ "mqtt:\n  tls: {ca: a.pem, verify: maybe}\n",
		    "t.yaml:2:28: expected true or false" },
		{ "mqtt:\n  tls: {ca: [a]}\n", "t.yaml:2:13:" },
		{ "mqtt:\n  tls: {ca: a.pem, colour: red}\n", "t.yaml:2:20: unknown key 'colour'" },
		{ "mqtt:\n  host: ''\n", "t.yaml:2:9: host must not be empty" },
		{ "mqtt:\n  version: '3.1.1'\n  password: secret\n",
		    "t.yaml:3:13: 3.1.1 sends a password only with a username" },
		{ "mqtt:\n  keepalive: 1500ms\n", "t.yaml:2:14: keepalive is whole seconds" },
		{ "mqtt:\n  reconnect_min: 1ms\n", "t.yaml:2:18:" },
		{ "mqtt:\n  connect_timeout: 1ms\n", "t.yaml:2:20:" },
		{ "mqtt:\n  address_timeout: 1ms\n", "t.yaml:2:20:" },
		{ "mqtt:\n  max_queue: 0\n", "t.yaml:2:14:" },
		{ "mqtt:\n  session_expiry: forever\n", "t.yaml:2:19:" },
	};
	struct uplink_mqtt_conf c;
	char err[256];

	(void)state;
	refused_each(cases, sizeof(cases) / sizeof(cases[0]));
	/* 5.0 sends a password without a user name */
	assert_int_equal(parse("mqtt:\n  password: secret\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.password, "secret");
}

/* Every error of the section, not the first (issue 18). */
static void
test_every_error_reported(void **state)
{
	static const char text[] = "mqtt:\n"
				   "  colour: red\n"
				   "  version: 4\n"
				   "  port: 0\n"
				   "  keepalive: 2s\n"
				   "  window: 0\n"
				   "  client_id: ''\n"
				   "  tls: {ca: a.pem, cert: c.pem}\n";
	static const char *const want[] = { "t.yaml:2:3: unknown key 'colour'",
		"t.yaml:3:12:", "t.yaml:4:9:", "t.yaml:5:14: keepalive is whole seconds",
		"t.yaml:6:11:", "t.yaml:7:14: client_id must not be empty",
		"t.yaml:8:26: tls.cert needs tls.key" };
	struct uplink_mqtt_conf c;
	struct conf_doc *doc;
	char err[256];

	(void)state;
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	assert_int_equal(uplink_mqtt_conf_parse(conf_get(conf_root(doc), "mqtt"), &c), -1);
	assert_int_equal(conf_error_count(doc), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(conf_errors(doc), want[i]) == NULL)
			fail_msg("no '%s' in:\n%s", want[i], conf_errors(doc));
	conf_free(doc);
}

static void
test_verify_off_is_explicit(void **state)
{
	struct uplink_mqtt_conf c;
	char err[256];

	(void)state;
	assert_int_equal(parse("mqtt:\n  tls: {verify: false}\n", &c, err, sizeof(err)), 0);
	assert_true(c.tls.enabled);
	assert_false(c.tls.verify);
	/* a pre-shared key verifies the server without a CA */
	assert_int_equal(
	    parse("mqtt:\n  tls: {psk_identity: site-1, psk_file: /etc/edgegw/k.psk}\n", &c, err,
		sizeof(err)),
	    0);
	assert_true(c.tls.verify);
	assert_string_equal(c.tls.psk_identity, "site-1");
	assert_string_equal(c.tls.psk_file, "/etc/edgegw/k.psk");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_more_errors),
		cmocka_unit_test(test_verify_off_is_explicit),
		cmocka_unit_test(test_every_error_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
