/*
 * sim_opts.h: the simulator's options and the parsers for their values (QoS mix, address ranges,
 * topic templates). Pure functions, unit tested in test_sim_opts.c.
 */
#ifndef EDGEGW_SIM_OPTS_H
#define EDGEGW_SIM_OPTS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_BIND    1024u
#define SIM_MAX_THREADS 64u
#define SIM_MAX_TOPIC   256u
#define SIM_PAYLOAD_MIN 16u /* monotonic ns (8) + session (4) + sequence (4) */
#define SIM_PAYLOAD_MAX (1u << 20)
#define SIM_MAX_WINDOW  1024u

enum sim_transport_kind {
	SIM_TR_KERNEL = 0,
	SIM_TR_MEMIF
};

struct sim_opts {
	uint8_t transport;      /* enum sim_transport_kind */
	char memif_socket[108]; /* memif: the dataplane's control socket (it is the server) */
	struct in_addr local;   /* memif: our address on the link */
	uint8_t local_plen;
	int cpu; /* memif: the core for the EAL lcore (-1: first allowed) */
	char host[64];
	uint16_t port;
	struct in_addr bind[SIM_MAX_BIND]; /* source addresses, sessions round-robin over them */
	uint32_t n_bind;
	uint32_t sessions;    /* publishing sessions */
	uint32_t subscribers; /* dedicated subscriber sessions (besides the publishers) */
	uint32_t threads;
	double connect_rate;       /* connects per second, all threads; 0: unlimited */
	double rate;               /* publishes per second per session; 0: as fast as possible */
	bool no_publish;           /* connect and stay idle (memory per idle session) */
	uint32_t qos_weight[3];    /* QoS mix, relative weights */
	uint32_t payload;          /* bytes, >= SIM_PAYLOAD_MIN for latency */
	char topic[SIM_MAX_TOPIC]; /* template: {session}, {n} */
	uint32_t n_lo, n_hi;       /* range of {n} */
	char sub_filter[SIM_MAX_TOPIC]; /* template ({session}); empty: no subscriptions */
	uint8_t sub_qos;
	uint8_t version; /* MQTT_V311 or MQTT_V5 */
	bool clean;
	uint16_t keepalive_s;
	uint32_t window;   /* max QoS 1/2 publishes in flight per session */
	double duration_s; /* 0: until count */
	uint64_t count;    /* total publishes; 0: until duration */
	double drain_s;    /* wait for acks and deliveries after the last publish */
	double connect_timeout_s;
	char client_prefix[32];
	bool json;
	bool quiet;
};

void sim_opts_defaults(struct sim_opts *o);
/* Fill o from argv; returns 0, 1 for --help (printed), or -EINVAL with the reason on stderr. */
int sim_opts_parse(struct sim_opts *o, int argc, char **argv);
void sim_opts_usage(const char *prog);

/* "0:50,1:40,2:10" or "1" -> weights[3]. */
int sim_parse_qos_mix(const char *s, uint32_t w[3]);
/* "198.18.0.2" or "198.18.0.2-198.18.0.20" -> addresses (at most max); returns how many or -EINVAL. */
int sim_parse_bind(const char *s, struct in_addr *out, uint32_t max);
/* "lo-hi" or "n" */
int sim_parse_range(const char *s, uint32_t *lo, uint32_t *hi);
/* Check a template: only {session} and {n} placeholders, balanced braces. */
int sim_topic_check(const char *tmpl);
/* Expand a template into out (cap bytes); returns the length or -ENOSPC. */
int sim_topic_expand(const char *tmpl, uint32_t session, uint32_t n, char *out, size_t cap);
/* Pick a QoS from the weights with r uniform in [0, sum). */
uint8_t sim_qos_pick(const uint32_t w[3], uint32_t r);

#endif
