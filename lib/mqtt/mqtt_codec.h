/*
 * mqtt_codec.h: MQTT 3.1.1 and 5.0 packet codec shared by the dataplane broker (decodes from the
 * segments of an mbuf chain), the agent's cloud client and the sensor simulator (flat buffers).
 *
 * Decoding works over an array of segments (struct mqtt_iov) and never copies a PUBLISH payload:
 * it is returned as a position in the input (and as a pointer when it lies in one segment).
 * Header fields that straddle segments are copied into a caller-given scratch buffer, which also
 * holds the arrays a packet decodes into (user properties, subscriptions). Decoded structs are the
 * same ones the encoders take, so a packet round-trips through them.
 *
 * Errors are negative enum mqtt_err values (-MQTT_E_x), one per rule of the specification;
 * mqtt_err_reason() gives the 5.0 reason code to send for it. See docs/mqtt-codec.md.
 * Neighbours: mqtt_topic.h (topic name/filter rules), mqtt_topic_tree.h (subscription trie).
 */
#ifndef EDGEGW_MQTT_CODEC_H
#define EDGEGW_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTT_V311              4 /* protocol level of 3.1.1 */
#define MQTT_V5                5
#define MQTT_MAX_REMAINING_LEN 268435455u
#define MQTT_MAX_PACKET_SIZE   (MQTT_MAX_REMAINING_LEN + 5u)
#define MQTT_MAX_STRING        65535u

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK,
	MQTT_PUBLISH,
	MQTT_PUBACK,
	MQTT_PUBREC,
	MQTT_PUBREL,
	MQTT_PUBCOMP,
	MQTT_SUBSCRIBE,
	MQTT_SUBACK,
	MQTT_UNSUBSCRIBE,
	MQTT_UNSUBACK,
	MQTT_PINGREQ,
	MQTT_PINGRESP,
	MQTT_DISCONNECT,
	MQTT_AUTH,
};

enum mqtt_err {
	MQTT_E_OK = 0,
#define MQTT_ERR(name, rc, text) MQTT_E_##name,
#include "mqtt_error.def"
#undef MQTT_ERR
	MQTT_E_COUNT
};

enum mqtt_reason {
#define MQTT_RC(name, val, text, mask) MQTT_RC_##name = (val),
#include "mqtt_reason.def"
#undef MQTT_RC
};

enum mqtt_prop_id {
#define MQTT_PROP(name, id, type, min, max, allow, repeat) MQTT_PROP_##name = (id),
#include "mqtt_props.def"
#undef MQTT_PROP
	MQTT_PROP_ID_LIMIT = 0x2B /* one past the highest identifier */
};

enum mqtt_prop_type {
	MQTT_PT_BYTE,
	MQTT_PT_U16,
	MQTT_PT_U32,
	MQTT_PT_VBI,
	MQTT_PT_STR,
	MQTT_PT_BIN,
	MQTT_PT_PAIR
};

/* A length-counted string or binary field; not NUL-terminated. */
struct mqtt_str {
	const char *s;
	uint16_t len;
};

#define MQTT_STR(lit) ((struct mqtt_str){ (lit), (uint16_t)(sizeof(lit) - 1) })

struct mqtt_user_prop {
	struct mqtt_str key;
	struct mqtt_str val;
};

/*
 * 5.0 properties of one packet (or of a will). present has bit n set for property id n; scalars
 * and single strings live in v[id]. User properties and subscription identifiers (the only ones
 * that may repeat) are arrays; v[MQTT_PROP_SUBSCRIPTION_IDENTIFIER] is not used.
 * Ignored (must be empty) in 3.1.1.
 */
struct mqtt_props {
	uint64_t present;
	union {
		uint32_t u;
		struct mqtt_str s;
	} v[MQTT_PROP_ID_LIMIT];
	const struct mqtt_user_prop *user;
	uint16_t n_user;
	const uint32_t *sub_ids;
	uint16_t n_sub_ids;
};

static inline bool
mqtt_props_has(const struct mqtt_props *p, enum mqtt_prop_id id)
{
	return (p->present >> id) & 1;
}
void mqtt_props_set_u32(struct mqtt_props *p, enum mqtt_prop_id id, uint32_t val);
void mqtt_props_set_str(struct mqtt_props *p, enum mqtt_prop_id id, struct mqtt_str val);
bool mqtt_props_empty(const struct mqtt_props *p);

struct mqtt_will {
	struct mqtt_str topic;
	struct mqtt_str payload;
	uint8_t qos;
	bool retain;
	struct mqtt_props props;
};

struct mqtt_connect {
	uint8_t version;  /* MQTT_V311 or MQTT_V5 */
	bool clean_start; /* clean session in 3.1.1 */
	uint16_t keepalive_s;
	struct mqtt_str client_id;
	bool has_will, has_username, has_password;
	struct mqtt_will will;
	struct mqtt_str username;
	struct mqtt_str password; /* binary */
	struct mqtt_props props;
};

struct mqtt_connack {
	bool session_present;
	uint8_t reason; /* 3.1.1: connect return code 0..5 */
	struct mqtt_props props;
};

/* Where a decoded payload lies in the input: segment index, offset in it, length. */
struct mqtt_span {
	uint32_t seg;
	uint32_t off;
	uint32_t len;
};

struct mqtt_publish {
	uint8_t qos;
	bool dup, retain;
	struct mqtt_str topic;
	uint16_t packet_id; /* QoS 1 and 2 only */
	struct mqtt_props props;
	/*
	 * Encode: payload/payload_len. Decode: payload points into the input when the payload lies
	 * in one segment (always with a flat buffer), else NULL; payload_at locates it either way.
	 */
	const uint8_t *payload;
	uint32_t payload_len;
	struct mqtt_span payload_at;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
	uint16_t packet_id;
	uint8_t reason;
	struct mqtt_props props;
};

struct mqtt_subscription {
	struct mqtt_str filter;
	uint8_t qos;
	bool no_local, retain_as_published; /* 5.0 */
	uint8_t retain_handling;            /* 5.0: 0..2 */
};

struct mqtt_subscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	const struct mqtt_subscription *subs;
	uint16_t n_subs;
};

/* SUBACK and UNSUBACK (3.1.1 UNSUBACK carries no reason codes). */
struct mqtt_suback {
	uint16_t packet_id;
	struct mqtt_props props;
	const uint8_t *reasons;
	uint16_t n_reasons;
};

struct mqtt_unsubscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	const struct mqtt_str *filters;
	uint16_t n_filters;
};

/* DISCONNECT and AUTH. */
struct mqtt_disconnect {
	uint8_t reason;
	struct mqtt_props props;
};

struct mqtt_packet {
	enum mqtt_type type;
	uint8_t flags; /* low nibble of the fixed header */
	uint32_t len;  /* whole packet, fixed header included */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_ack ack;
		struct mqtt_subscribe subscribe;
		struct mqtt_suback suback; /* SUBACK, UNSUBACK */
		struct mqtt_unsubscribe unsubscribe;
		struct mqtt_disconnect disconnect; /* DISCONNECT, AUTH */
	};
};

/* ---- decoding ---- */

struct mqtt_iov {
	const uint8_t *base;
	size_t len;
};

enum mqtt_role {
	MQTT_ROLE_SERVER = 1, /* decodes what clients send: CONNECT, PUBLISH, SUBSCRIBE... */
	MQTT_ROLE_CLIENT,     /* decodes what servers send: CONNACK, PUBLISH, SUBACK... */
};

struct mqtt_decoder {     /* 24 bytes: one sits in every broker connection */
	uint8_t *scratch; /* straddling fields and decoded arrays; valid until next decode */
	uint32_t scratch_len;
	uint32_t max_packet_size; /* 0: the protocol maximum */
	uint8_t role;             /* enum mqtt_role */
	uint8_t version;          /* 0 until CONNECT (server); a decoded CONNECT sets it */
};

void mqtt_decoder_init(struct mqtt_decoder *d, enum mqtt_role role, uint8_t version,
    uint32_t max_packet_size, uint8_t *scratch, uint32_t scratch_len);

/*
 * Is a whole packet at the front of the input? Returns 1 (and *pkt_len) when it is, 0 when more
 * bytes are needed (*pkt_len is the total once the fixed header is complete, else 0), or
 * -MQTT_E_RLEN_TOO_LONG / -MQTT_E_PACKET_TOO_LARGE. max_packet_size 0 means the protocol maximum.
 */
int mqtt_peek(const struct mqtt_iov *iov, size_t niov, uint32_t max_packet_size, uint32_t *pkt_len);

/*
 * Decode the packet at the front of the input. Returns its length in bytes (> 0) when whole and
 * valid, 0 when more bytes are needed, or -MQTT_E_x (mqtt_err_reason() gives the reason code to
 * send). Nothing is consumed: the caller drops the returned bytes. Pointers in *pkt point into
 * the input or into the decoder's scratch. A client decoder must be given its version
 * (-MQTT_E_BAD_ARG otherwise).
 */
int mqtt_decode(
    struct mqtt_decoder *d, const struct mqtt_iov *iov, size_t niov, struct mqtt_packet *pkt);

/* Same over one flat buffer. */
int
mqtt_decode_buf(struct mqtt_decoder *d, const uint8_t *buf, size_t len, struct mqtt_packet *pkt);

/*
 * The payload of a decoded PUBLISH as up to max slices pointing into the input iov (zero copy).
 * Returns the number of slices needed (may exceed max: then only max were written).
 */
size_t mqtt_span_slices(const struct mqtt_iov *iov, size_t niov, const struct mqtt_span *span,
    struct mqtt_iov *out, size_t max);

/* ---- encoding ----
 * Each encoder writes one packet into buf and returns its length. When that is more than cap,
 * nothing useful is written: call again with a buffer of the returned size. Invalid input (a rule
 * the decoder would reject) gives -MQTT_E_x. version is MQTT_V311 or MQTT_V5.
 */
int mqtt_encode_connect(uint8_t *buf, size_t cap, const struct mqtt_connect *c);
int mqtt_encode_connack(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_connack *c);
int mqtt_encode_publish(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_publish *p);
/* Fixed and variable header only (remaining length counts payload_len): the caller sends the
 * payload from where it is. */
int
mqtt_encode_publish_header(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_publish *p);
/* type: MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL or MQTT_PUBCOMP. */
int mqtt_encode_ack(
    uint8_t *buf, size_t cap, uint8_t version, enum mqtt_type type, const struct mqtt_ack *a);
int
mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_subscribe *s);
int mqtt_encode_suback(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_suback *s);
int mqtt_encode_unsubscribe(
    uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_unsubscribe *u);
int mqtt_encode_unsuback(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_suback *s);
int mqtt_encode_pingreq(uint8_t *buf, size_t cap);
int mqtt_encode_pingresp(uint8_t *buf, size_t cap);
/* d may be NULL (reason 0, no properties). */
int
mqtt_encode_disconnect(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_disconnect *d);
int mqtt_encode_auth(uint8_t *buf, size_t cap, const struct mqtt_disconnect *a);
/* Any packet, by pkt->type (CONNECT takes its version from pkt->connect). */
int mqtt_encode(uint8_t *buf, size_t cap, uint8_t version, const struct mqtt_packet *pkt);

/* ---- names and rules shared with the topic code ---- */

const char *mqtt_type_name(enum mqtt_type type);
const char *mqtt_err_str(int err); /* err or -err */
uint8_t mqtt_err_reason(int err);  /* 5.0 reason code to send for err */
/* 3.1.1 CONNACK return code for a CONNECT decode error, or -1 when the spec says just close. */
int mqtt_err_connack_v311(int err);
/* Name of a reason code as carried by packet type (0: any meaning of the value). */
const char *mqtt_reason_name(uint8_t code, enum mqtt_type type);
bool mqtt_reason_valid(uint8_t version, enum mqtt_type type, uint8_t code);
const char *mqtt_prop_name(uint8_t id);

/* 0 when s is a valid MQTT UTF-8 string (well-formed, no surrogate, no U+0000), else -MQTT_E_x. */
int mqtt_utf8_check(const uint8_t *s, size_t len);

/*
 * For a PUBLISH (or will) with payload format indicator 1, which a receiver MAY check: 0 when the
 * payload at span is well-formed UTF-8 (U+0000 allowed), even with characters cut between
 * segments; else -MQTT_E_PAYLOAD_FORMAT (reason 0x99). Not called by mqtt_decode().
 */
int mqtt_payload_utf8_check(const struct mqtt_iov *iov, size_t niov, const struct mqtt_span *span);

#endif
