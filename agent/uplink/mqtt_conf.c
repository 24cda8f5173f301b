/*
 * mqtt_conf.c: the "mqtt:" section of the agent's config (see mqtt_conf.h, docs/uplink.md).
 * Every key has a default; the checks that span keys (backoff bounds, certificate and key,
 * verification without a CA) are reported at the key that is wrong, as file:line:col. Every
 * error of the section is reported, not the first (a check that follows from a key that did
 * not parse is skipped).
 */
#include <string.h>

#include "mqtt_codec.h"
#include "mqtt_conf.h"

static const char *const versions[] = { "5", "3.1.1", NULL };
static const char *const qos_names[] = { "0", "1", "2", "keep", NULL };

static int
copy_str(conf_node map, const char *key, char *dst, size_t dstlen)
{
	const char *s = NULL;

	if (conf_get_str(map, key, dst, &s))
		return -1;
	if (strlen(s) >= dstlen)
		return conf_error(
		    conf_get(map, key), "'%s' is too long (at most %zu bytes)", key, dstlen - 1);
	memmove(dst, s, strlen(s) + 1);
	return 0;
}

void
uplink_mqtt_conf_defaults(struct uplink_mqtt_conf *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->host, "127.0.0.1");
	strcpy(c->client_id, "edgegw-agent");
	c->port = 1883;
	c->version = MQTT_V5;
	c->qos = UPLINK_QOS_KEEP;
	c->keepalive_s = 60; /* carrier NATs forget idle flows after a few minutes */
	c->session_expiry_s = 7 * 86400;
	c->window = 32;
	c->max_queue = 100000;
	c->reconnect_min_ms = 1000;
	c->reconnect_max_ms = 120000;
	c->connect_timeout_ms = 30000;
	c->address_timeout_ms = 5000;
	c->tls.verify = true;
	c->tls.resume = true;
}

static int
parse_tls(conf_node t, struct uplink_tls_conf *tc)
{
	static const char *const keys[] = { "ca", "cert", "key", "verify", "server_name", "resume",
		"psk_identity", "psk_file", NULL };

	int bad = 0, bad_files = 0, bad_verify;

	tc->enabled = conf_present(t);
	if (!tc->enabled)
		return 0;
	if (!conf_is_map(t))
		return conf_error(t, "'tls' must be a mapping (ca, cert, key, verify, ...)");
	bad |= conf_check_keys(t, keys);
	bad_files |= copy_str(t, "ca", tc->ca, sizeof(tc->ca));
	bad_files |= copy_str(t, "cert", tc->cert, sizeof(tc->cert));
	bad_files |= copy_str(t, "key", tc->key, sizeof(tc->key));
	bad |= copy_str(t, "server_name", tc->server_name, sizeof(tc->server_name));
	bad_files |= copy_str(t, "psk_identity", tc->psk_identity, sizeof(tc->psk_identity));
	bad_files |= copy_str(t, "psk_file", tc->psk_file, sizeof(tc->psk_file));
	bad_verify = conf_get_bool(t, "verify", true, &tc->verify);
	bad |= conf_get_bool(t, "resume", true, &tc->resume);
	if (bad_files || bad_verify)
		return -1;
	if (tc->cert[0] && !tc->key[0])
		bad |= conf_error(conf_get(t, "cert"), "tls.cert needs tls.key");
	if (tc->key[0] && !tc->cert[0])
		bad |= conf_error(conf_get(t, "key"), "tls.key needs tls.cert");
	if (tc->psk_identity[0] && !tc->psk_file[0])
		bad |=
		    conf_error(conf_get(t, "psk_identity"), "tls.psk_identity needs tls.psk_file");
	if (tc->psk_file[0] && !tc->psk_identity[0])
		bad |= conf_error(conf_get(t, "psk_file"), "tls.psk_file needs tls.psk_identity");
	/* a PSK authenticates the server too: without a CA only PSK cipher suites are offered */
	if (tc->verify && !tc->ca[0] && !tc->psk_file[0])
		bad |= conf_error(t,
		    "tls needs 'ca' to verify the server, or a pre-shared key (psk_identity and "
		    "psk_file), or an explicit 'verify: false', logged at every connect");
	return bad;
}

static int
parse_limits(conf_node m, struct uplink_mqtt_conf *c)
{
	uint32_t ka = 0, window = 32;
	uint64_t keepalive_ms = 60000, expiry_ms = 7 * 86400000ull;
	int bad = 0, bad_backoff = 0;

	if (conf_get_duration_ms(m, "keepalive", 60000, 0, 65535000, &keepalive_ms) == 0) {
		ka = (uint32_t)(keepalive_ms / 1000);
		if (keepalive_ms % 1000 || (ka > 0 && ka < 5))
			bad |= conf_error(conf_get(m, "keepalive"),
			    "keepalive is whole seconds, 0 (off) or 5s and more");
		c->keepalive_s = (uint16_t)ka;
	} else {
		bad = -1;
	}
	bad |= conf_get_duration_ms(
	    m, "session_expiry", 7 * 86400000ull, 0, 4294967295000ull, &expiry_ms);
	bad |= conf_get_u32(m, "window", 32, 1, 65000, &window);
	bad |= conf_get_u32(m, "max_queue", 100000, 1, 10000000, &c->max_queue);
	bad_backoff |=
	    conf_get_duration_ms(m, "reconnect_min", 1000, 10, 3600000, &c->reconnect_min_ms);
	bad_backoff |=
	    conf_get_duration_ms(m, "reconnect_max", 120000, 10, 86400000, &c->reconnect_max_ms);
	bad |= bad_backoff;
	bad |=
	    conf_get_duration_ms(m, "connect_timeout", 30000, 100, 600000, &c->connect_timeout_ms);
	bad |=
	    conf_get_duration_ms(m, "address_timeout", 5000, 100, 600000, &c->address_timeout_ms);
	c->session_expiry_s = (uint32_t)(expiry_ms / 1000);
	c->window = (uint16_t)window;
	if (!bad_backoff && c->reconnect_max_ms < c->reconnect_min_ms)
		bad |= conf_error(conf_get(m, "reconnect_max"),
		    "reconnect_max (%llu ms) is below reconnect_min (%llu ms)",
		    (unsigned long long)c->reconnect_max_ms,
		    (unsigned long long)c->reconnect_min_ms);
	return bad;
}

int
uplink_mqtt_conf_parse(conf_node m, struct uplink_mqtt_conf *c)
{
	static const char *const keys[] = { "host", "port", "client_id", "username", "password",
		"version", "qos", "keepalive", "session_expiry", "window", "max_queue",
		"reconnect_min", "reconnect_max", "connect_timeout", "address_timeout",
		"bind_interface", "tls", NULL };
	uint32_t port = 0;
	int version = 0, qos = 3, bad = 0, bad_host, bad_id, bad_auth = 0, bad_version;

	uplink_mqtt_conf_defaults(c);
	if (!conf_present(m))
		return 0;
	if (!conf_is_map(m))
		return conf_error(m, "'mqtt' must be a mapping");
	bad |= conf_check_keys(m, keys);
	bad_host = copy_str(m, "host", c->host, sizeof(c->host));
	bad_id = copy_str(m, "client_id", c->client_id, sizeof(c->client_id));
	bad_auth |= copy_str(m, "username", c->username, sizeof(c->username));
	bad_auth |= copy_str(m, "password", c->password, sizeof(c->password));
	bad |= copy_str(m, "bind_interface", c->bind_interface, sizeof(c->bind_interface));
	bad_version = conf_get_enum(m, "version", 0, versions, &version);
	bad |= conf_get_enum(m, "qos", 3, qos_names, &qos);
	bad |= parse_limits(m, c);
	bad |= parse_tls(conf_get(m, "tls"), &c->tls);
	c->version = version == 0 ? MQTT_V5 : MQTT_V311;
	c->qos = qos == 3 ? UPLINK_QOS_KEEP : (uint8_t)qos;
	if (conf_get_u32(m, "port", c->tls.enabled ? 8883 : 1883, 1, 65535, &port) == 0)
		c->port = (uint16_t)port;
	else
		bad = -1;
	if (!bad_host && !c->host[0])
		bad |= conf_error(conf_get(m, "host"), "host must not be empty");
	if (!bad_id && !c->client_id[0])
		bad |= conf_error(conf_get(m, "client_id"),
		    "client_id must not be empty (the session is found by it)");
	if (!bad_auth && !bad_version && c->password[0] && !c->username[0] &&
	    c->version == MQTT_V311)
		bad |= conf_error(
		    conf_get(m, "password"), "3.1.1 sends a password only with a username");
	return bad | bad_host | bad_id | bad_auth | bad_version;
}
