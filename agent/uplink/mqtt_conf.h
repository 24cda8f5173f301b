/*
 * mqtt_conf.h: the agent's "mqtt:" section (the cloud link): where, who, how (version, QoS,
 * keepalive, session expiry, reconnect backoff, network interface) and TLS. This module owns
 * the section: uplink_mqtt_conf_parse() reads it with lib/conf (file:line errors), fills the
 * defaults and checks it whole. See docs/uplink.md for every key.
 */
#ifndef EDGEGW_UPLINK_MQTT_CONF_H
#define EDGEGW_UPLINK_MQTT_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

#define UPLINK_QOS_KEEP 0xFF /* qos: keep: each message goes up with its own QoS */

struct uplink_tls_conf {
	bool enabled;           /* a "tls:" section is present */
	bool verify;            /* server certificate and host name (default true) */
	bool resume;            /* TLS session resumption (tickets or session id, default true) */
	char ca[256];           /* PEM file of trusted CAs */
	char cert[256];         /* client certificate (PEM), optional */
	char key[256];          /* its key (PEM), required with cert */
	char server_name[128];  /* SNI and the name checked; default: host */
	char psk_identity[128]; /* TLS-PSK: the identity sent, with psk_file (both or neither) */
	char psk_file[256];     /* the key, in hex (16 to 32 bytes), mode 0600 */
};

struct uplink_mqtt_conf {
	char host[128];
	uint16_t port;
	char client_id[64];
	char username[64];
	char password[128];
	uint8_t version;           /* MQTT_V5 (default) or MQTT_V311 */
	uint8_t qos;               /* 0..2, or UPLINK_QOS_KEEP */
	uint16_t keepalive_s;      /* 0: none */
	uint32_t session_expiry_s; /* 5.0; 3.1.1 sessions are kept by the broker's own rule */
	uint16_t window;           /* QoS 1 and 2 messages in flight (the broker may ask fewer) */
	uint32_t max_queue;        /* messages held in memory while the link is down */
	uint64_t reconnect_min_ms, reconnect_max_ms, connect_timeout_ms;
	uint64_t address_timeout_ms; /* TCP to one address while the host has more to try */
	char bind_interface[16];     /* SO_BINDTODEVICE, "" = any route */
	char cmd_topic[256]; /* subscribed (QoS 2) on every connect; "" none. Set by the agent */
	struct uplink_tls_conf tls;
};

/* Fill c from the "mqtt" mapping m (absent: all defaults). 0, or -1 with errors recorded in
 * m's document. */
int uplink_mqtt_conf_parse(conf_node m, struct uplink_mqtt_conf *c);
void uplink_mqtt_conf_defaults(struct uplink_mqtt_conf *c);

#endif
