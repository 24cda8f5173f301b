/*
 * fake_broker.h: a scripted MQTT broker for the uplink client's unit tests, on loopback TCP in
 * the test's own thread. The test drives both sides in turn: fb_drive() lets the client handle
 * what its fd has, fb_recv() reads one packet on the broker side (driving the client while it
 * waits), fb_send_*() write packets, whole or one byte at a time. Time is the test's (fb->now).
 */
#ifndef EDGEGW_TEST_FAKE_BROKER_H
#define EDGEGW_TEST_FAKE_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "mqtt_codec.h"
#include "mqttc.h"

struct fb_pkt {
	enum mqtt_type type;
	uint8_t qos, version, reason;
	bool dup, clean_start, has_username, has_password;
	uint16_t packet_id, keepalive_s;
	uint32_t session_expiry; /* 5.0 CONNECT property, 0 when absent */
	char topic[256];         /* PUBLISH topic, (UN)SUBSCRIBE's first filter */
	uint16_t n_filters;      /* (UN)SUBSCRIBE */
	char filter2[256];       /* SUBSCRIBE's second filter, and its QoS */
	uint8_t filter2_qos;
	uint32_t payload_len;
};

struct fb_event {
	int kind; /* 'p' persist, 's' persist_sync, 'a' acked, 'm' message, 'r' released */
	uint64_t ref;
	uint16_t packet_id;
	int st;           /* persist: enum mqttc_msg_state; acked: reason; message: QoS */
	char topic[128];  /* its start */
	size_t topic_len; /* message: the whole topic's */
};

struct fb {
	int lfd, sfd; /* listener, accepted connection */
	uint16_t port;
	uint8_t version;
	struct mqttc *c;
	int watched_fd;
	uint32_t watched_ev;
	uint64_t now;
	uint8_t buf[1 << 20];
	size_t blen;
	struct fb_event ev[256];
	int nev;
	bool fail_persist;
	bool fail_sync;    /* the commit persist_sync() starts fails */
	bool hold_sync;    /* that commit does not end until fb_sync_done() (a slow disk) */
	bool sync_pending; /* persist_sync() started a commit that has not ended */
	int message_rc;    /* what the message hook returns (0: the gateway owns it) */
	int released_rc;   /* what the released hook returns (0: forgotten) */
	int sessions_lost; /* released hook calls with id 0 (the broker lost the session) */
	/* optional, in place of message_rc and released_rc (the fuzz harness's model of the
	 * downlink's answers): called after the event is recorded, sessions_lost already counted */
	int (*on_message)(struct fb *b, uint8_t qos, uint16_t packet_id, uint64_t token,
	    const uint8_t *payload, size_t len);
	int (*on_released)(struct fb *b, uint16_t packet_id);
	uplink_lookup_fn lookup; /* the client's name lookup (NULL: getaddrinfo) */
};

void fb_init(struct fb *b, struct uplink_mqtt_conf *conf);
void fb_start_client(struct fb *b, const struct uplink_mqtt_conf *conf);
void fb_fini(struct fb *b);
/* Let the client handle its fd for up to ms milliseconds of real time (one poll). */
void fb_drive(struct fb *b, int ms);
/* End the commit persist_sync() started (fb_drive does unless hold_sync). */
void fb_sync_done(struct fb *b);
void fb_tick(struct fb *b, uint64_t advance_ms);
/* Accept the client's connection (ticks it until it connects). */
void fb_accept(struct fb *b);
/* One packet from the client; false when none came within ~2 s or the client closed. */
bool fb_recv(struct fb *b, struct fb_pkt *p);
/* Expect nothing from the client for a short while. */
bool fb_quiet(struct fb *b);
void fb_send(struct fb *b, const uint8_t *buf, size_t len, bool bytewise);
void fb_connack(struct fb *b, uint8_t reason, bool session_present, uint16_t receive_max);
void fb_ack(struct fb *b, enum mqtt_type type, uint16_t id, uint8_t reason);
void fb_publish(
    struct fb *b, const char *topic, const char *payload, uint8_t qos, uint16_t id, bool dup);
void fb_close(struct fb *b);
/* Reset the connection (RST, SO_LINGER 0) without letting the client see it yet. */
void fb_reset(struct fb *b);
/* Send len bytes in pieces, letting the client read between them (more than the socket
 * buffers hold). */
void fb_send_big(struct fb *b, const uint8_t *buf, size_t len);
/* Run the client through CONNECT/CONNACK (and the SUBSCRIBE, acknowledged). */
void fb_connect(struct fb *b, bool session_present);
int fb_count(const struct fb *b, int kind);

/*
 * The fixture test_mqttc.c and test_mqttc_faults.c share, under the short names their tests
 * use: one broker B and the client's config C, made afresh (fb_init) by setup and released
 * (fb_fini) by teardown around each test.
 */
extern struct fb B;
extern struct uplink_mqtt_conf C;
int setup(void **state);
int teardown(void **state);
/* The client's counters (enum uplink_counter). */
const uint64_t *cnt(void);
/* The client publishes a one-byte payload ("v"); must be accepted. */
void publish(const char *topic, uint8_t qos, uint64_t ref);
/* The client's next packet is of this type; returns it. */
struct fb_pkt expect(enum mqtt_type type);
/* The next attempt (after the longest backoff) up to the CONNECT. */
void next_attempt(void);

#endif
