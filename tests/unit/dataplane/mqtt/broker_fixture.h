/*
 * broker_fixture.h: a fake transport for the broker core's unit tests. Each fake connection
 * records what the broker sends; tests feed encoded packets in and decode what came out with
 * the codec in client role, so every check is on real wire bytes.
 */
#ifndef EDGEGW_TEST_BROKER_FIXTURE_H
#define EDGEGW_TEST_BROKER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "mqtt_codec.h"

#define FX_CONNS 8
#define FX_OUT   (256 * 1024)

struct fake {
	struct broker_conn *c; /* NULL once closed (by either side) */
	uint8_t out[FX_OUT];
	size_t len, rd;     /* bytes sent by the broker, bytes the test has read */
	size_t space;       /* the send buffer's room: send_space answers it, a send uses it up (the
			 * test gives it back with fx_read_all or by setting it), and a send
			 * larger than it fails (-ENOBUFS), as the dataplane's TCP does */
	uint32_t fail_pct;  /* sends that fail at random, in percent (fx_seed seeds them) */
	uint32_t fail_next; /* the next this many sends fail */
	bool closed;
	uint8_t close_reason;
	uint8_t version;
	uint8_t scratch[8192];
	struct mqtt_decoder dec;
	uint8_t in[8192]; /* bytes fed that the broker left unconsumed (held CONNACK) */
	size_t in_len;
	bool wake; /* the broker called input_ready: fx_refeed passes in[] again */
};

struct fx {
	struct broker *b;
	struct broker_config cfg;
	uint64_t now;
	struct fake f[FX_CONNS];
};

/* Seed of the fake transports' random send failures (fail_pct). */
void fx_seed(uint32_t seed);
/* The client read everything sent so far: the send buffer is empty again (space back to
 * FX_OUT), and the broker is told (broker_conn_writable). */
void fx_read_all(struct fx *x, int i);
/* A broker with cfg (NULL: defaults, $SYS off). */
struct fx *fx_new(const struct broker_config *cfg);
void fx_free(struct fx *x);
void fx_open(struct fx *x, int i, uint8_t version);
/* Feed bytes; returns broker_conn_input's result. */
int fx_feed(struct fx *x, int i, const void *buf, size_t len);
/* Encode and feed. */
int fx_send(struct fx *x, int i, const struct mqtt_packet *p);
/* Pass again what the broker left unconsumed (after input_ready); returns its result. */
int fx_refeed(struct fx *x, int i);
/* Open and CONNECT without reading the answer (it may be held: several instances). */
void fx_connect_start(struct fx *x, int i, uint8_t version, const char *id, bool clean,
    uint16_t keepalive_s, const struct mqtt_props *props);
/* The next packet is a CONNACK with reason 0; returns its session present flag. */
bool fx_connack(struct fx *x, int i);
/* Open and CONNECT; returns the CONNACK's session present flag (asserts reason 0). */
bool fx_connect(struct fx *x, int i, uint8_t version, const char *id, bool clean,
    uint16_t keepalive_s, const struct mqtt_props *props);
/* A 5.0 CONNECT with a will: QoS 1 "gone" on topic (NULL: will/t), keepalive as given (0:
 * none); the will's delay and message expiry and the session's expiry as given (0: the property
 * left out). */
struct fx_will {
	const char *id, *topic;
	bool clean;
	uint32_t delay_s, expiry_s, msg_expiry_s;
	uint16_t keepalive_s;
};
/* Open and send it; fx_send's result (the answer is not read). */
int fx_connect_will_send(struct fx *x, int i, const struct fx_will *w);
/* Open, send it (keepalive 60) and read the CONNACK: its reason, -1 when none came. No
 * assertion, so that a fuzz harness calls it too. */
int fx_connect_will(
    struct fx *x, int i, const char *id, bool clean, uint32_t will_delay_s, uint32_t expiry_s);
void fx_subscribe(struct fx *x, int i, const char *filter, uint8_t opts);
void fx_publish(struct fx *x, int i, const char *topic, const char *payload, uint8_t qos,
    uint16_t pid, bool retain);
void fx_ack(struct fx *x, int i, enum mqtt_type type, uint16_t pid);
/* Next packet the broker sent to i; false when none. */
bool fx_next(struct fx *x, int i, struct mqtt_packet *p);
/* Asserts the next packet is a PUBLISH with this topic and payload at qos; returns it. */
struct mqtt_publish
fx_expect_publish(struct fx *x, int i, const char *topic, const char *payload, uint8_t qos);
void fx_expect_type(struct fx *x, int i, enum mqtt_type type, uint8_t reason);
void fx_expect_none(struct fx *x, int i);
/* The raw bytes of the next packet equal want. */
void fx_expect_bytes(struct fx *x, int i, const uint8_t *want, size_t len);
void fx_close(struct fx *x, int i); /* abrupt, by the transport */
void fx_tick(struct fx *x, uint64_t advance_ms);
uint64_t fx_count(struct fx *x, enum broker_counter c);

/* Two broker instances joined by bounded queues standing in for the dataplane's rte_rings
 * (one per destination instance, cap entries each, at most FX_RING_MAX). */
#define FX_RING_MAX 64

struct fx_xq {
	struct broker_xmsg *m[2][FX_RING_MAX];
	int n[2];
	int cap;
};

/* Two instances (cfg NULL: defaults, $SYS off) attached through q, queues of cap entries. */
void fx_xq_pair(struct fx_xq *q, struct fx *x[2], int cap, const struct broker_config *cfg);
/* The dataplane's worker loop once on each instance: take its queue, retry what waits for
 * room in the other's (broker_xlcore_retry), then pass again the input of the connections
 * the broker takes input from again (input_ready). */
void fx_xq_pump(struct fx_xq *q, struct fx *x[2]);
/* Shutdown: what is still queued is freed, then the instances. */
void fx_xq_free(struct fx_xq *q, struct fx *x[2]);

#endif
