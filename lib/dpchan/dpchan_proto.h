/*
 * dpchan_proto.h: the wire format of the channel between the dataplane's worker lcores and the
 * agent (docs/architecture.md, "dataplane to agent channel"). One frame is one Unix
 * SOCK_SEQPACKET message: the kernel keeps message boundaries, so there is no stream framing
 * to resynchronise and a short read cannot happen. All integers are little-endian.
 *
 *   frame header (8 bytes): u8 type, u8 version (DPCHAN_VERSION), u16 zero, u32 count
 *   HELLO    (dataplane -> agent, first frame of a connection, count 1):
 *            u64 boot_id (random per dataplane start), u32 lcore, u32 software version
 *   PUB      (dataplane -> agent, count records):
 *            u64 ref, u8 qos, u8 flags (bit 0 retain, bit 1 origin), u16 topic_len,
 *            u32 payload_len, [origin: u64 boot_id, u32 lcore, u64 ref,] topic, payload.
 *            ref 0: best effort, no DURABLE expected; else increasing per (boot_id, lcore),
 *            the same ref when a record is sent again after a reconnect. The origin (QoS 2
 *            only, ref != 0): the record was first sent by an earlier start of the dataplane
 *            under that (boot id, lcore, ref), and its sensor sent it again after that start
 *            died; the agent stores it under the origin, so it never stores it twice
 *            (docs/architecture.md, "QoS 2 across a restart of the dataplane")
 *   DURABLE  (agent -> dataplane, count ranges): u64 first, u64 last, i32 status
 *            (0: every record of the range is durable; < 0: -errno, it is not and never will be)
 *   RELEASE  (dataplane -> agent, count origins): u64 boot_id, u32 lcore, u64 ref: the
 *            sensor's QoS 2 exchange of the record first sent under that origin is complete
 *            (PUBREL taken): the agent may forget the origin
 *   DOWN     (agent -> dataplane, count records): the PUB record's layout (u64 ref, u8 qos,
 *            u8 flags, u16 topic_len, u32 payload_len, topic, payload): a cloud message for the
 *            broker's subscribers. ref 0: best effort (QoS 0 handed over live), no answer; else
 *            increasing (the downlink spool's sequence number above a base drawn when that
 *            spool was created), the same when it is sent again (after a disconnect, or by
 *            the next agent): answered by a DOWN_ACK once the broker took it
 *   DOWN_ACK (dataplane -> agent, count ranges): u64 first, u64 last, i32 status: the broker
 *            took every DOWN record of the range (status 1: a subscription matched, 0: none did;
 *            a retained one is stored either way), or refused it for good (< 0: -errno)
 *   HELD     (dataplane -> agent, count origins, after the HELLO of each connection): the
 *            RELEASE layout: origins of earlier starts of the dataplane that this lcore's broker
 *            held when this start began (incoming QoS 2 ids awaiting PUBREL, journaled)
 *   HELD_END (dataplane -> agent, count 1, after the last HELD): u32 lcores (how many lcores
 *            this start runs, >= 1), u32 zero. Once every lcore of the start has sent it, the
 *            agent forgets the origins of earlier starts none of them listed: their RELEASE was
 *            lost (docs/architecture.md, "QoS 2 across a restart of the dataplane")
 *
 * The decoder checks every length against the frame before reading: a malformed frame is
 * refused whole (DPCHAN_E_*), and the receiver closes that connection and counts it.
 */
#ifndef EDGEGW_DPCHAN_PROTO_H
#define EDGEGW_DPCHAN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DPCHAN_VERSION \
	4 /* 2: PUB origins, RELEASE; DOWN records carry a ref, DOWN_ACK;
			   * 3: HELD, HELD_END; 4: HELLO says the highest DOWN ref taken */
#define DPCHAN_HDR_LEN      8u
#define DPCHAN_PUB_HDR_LEN  16u /* a PUB record before its topic and payload */
#define DPCHAN_DOWN_HDR_LEN 16u /* the same layout as PUB's since version 2 */
#define DPCHAN_RANGE_LEN    20u
#define DPCHAN_HELLO_LEN    24u
#define DPCHAN_ORIGIN_LEN   20u /* an origin in a PUB record or a RELEASE or HELD frame */
#define DPCHAN_HELD_END_LEN 8u
#define DPCHAN_REC_RETAIN   0x01u
#define DPCHAN_REC_ORIGIN   0x02u /* PUB only */
/* The largest frame either side sends or accepts: a batch of records, or one record whose
 * topic and payload fit (the broker refuses to carry a larger one: see dpchan_client.h). Under
 * the kernel's default socket buffer (net.core.wmem_default, 208 KiB) so one frame always fits
 * an empty buffer. */
#define DPCHAN_FRAME_MAX    (128u * 1024u)
#define DPCHAN_DEFAULT_PATH "/run/edgegw/dpchan.sock"

enum dpchan_type {
	DPCHAN_HELLO = 1,
	DPCHAN_PUB = 2,
	DPCHAN_DURABLE = 3,
	DPCHAN_DOWN = 4,
	DPCHAN_RELEASE = 5,
	DPCHAN_DOWN_ACK = 6,
	DPCHAN_HELD = 7,
	DPCHAN_HELD_END = 8,
};
#define DPCHAN_TYPE_MAX DPCHAN_HELD_END

/* Why a frame was refused (positive; functions return them negated). */
enum dpchan_err {
	DPCHAN_E_SHORT = 1, /* shorter than its header */
	DPCHAN_E_VERSION,   /* another version */
	DPCHAN_E_TYPE,      /* unknown type, or one this side does not receive */
	DPCHAN_E_TRUNCATED, /* a record or range runs past the end of the frame */
	DPCHAN_E_TRAILING,  /* bytes after the last record the header counts */
	DPCHAN_E_FIELD,     /* a field out of range (qos > 2, flags, range first > last, ...) */
	DPCHAN_E_TOO_LARGE, /* over DPCHAN_FRAME_MAX */
};
const char *dpchan_strerror(int err);

struct dpchan_hello {
	uint64_t boot_id;
	uint32_t lcore;
	uint32_t sw_version;
	uint64_t down_seen; /* the highest DOWN ref the dataplane took (as journaled), 0: none */
};

/* Where a record was first sent from: the dataplane's start (boot id), lcore and ref. */
struct dpchan_origin {
	uint64_t boot_id;
	uint64_t ref;
	uint32_t lcore;
};

/* A PUB or DOWN record; topic and payload point into the frame. */
struct dpchan_rec {
	uint64_t ref;
	uint8_t qos;
	bool retain;
	bool has_origin;             /* PUB only: origin below (DPCHAN_REC_ORIGIN) */
	struct dpchan_origin origin; /* the earlier start's, when has_origin */
	const char *topic;
	uint16_t topic_len;
	const uint8_t *payload;
	uint32_t payload_len;
};

struct dpchan_range {
	uint64_t first, last;
	int32_t status;
};

/* Frame header; 0 or -DPCHAN_E_* (type checked by the walkers below). */
int dpchan_frame_header(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *count);
void dpchan_put_header(uint8_t *buf, uint8_t type, uint32_t count);

int dpchan_encode_hello(uint8_t *buf, size_t cap, const struct dpchan_hello *h);
int dpchan_decode_hello(const uint8_t *buf, size_t len, struct dpchan_hello *h);

/* Bytes of one PUB (down false) or DOWN (down true) record. */
static inline size_t
dpchan_rec_size(bool down, size_t topic_len, size_t payload_len)
{
	return (down ? DPCHAN_DOWN_HDR_LEN : DPCHAN_PUB_HDR_LEN) + topic_len + payload_len;
}
/* Bytes of r on the wire (a PUB record with its origin, if any). */
static inline size_t
dpchan_rec_len(bool down, const struct dpchan_rec *r)
{
	return dpchan_rec_size(down, r->topic_len, r->payload_len) +
	    (!down && r->has_origin ? DPCHAN_ORIGIN_LEN : 0);
}
/* One record (no frame header) into buf; its size, or -E2BIG / -EINVAL (topic over 65535). */
int dpchan_put_rec(uint8_t *buf, size_t cap, bool down, const struct dpchan_rec *r);

/*
 * Walk a whole PUB or DOWN frame: every record is checked before fn sees the first (a frame is
 * taken or refused whole). fn returns 0 to go on, anything else to stop there (returned).
 */
typedef int (*dpchan_rec_fn)(void *arg, const struct dpchan_rec *r);
int dpchan_decode_recs(const uint8_t *buf, size_t len, uint8_t type, dpchan_rec_fn fn, void *arg);

int dpchan_encode_durable(uint8_t *buf, size_t cap, const struct dpchan_range *v, uint32_t n);
typedef void (*dpchan_range_fn)(void *arg, const struct dpchan_range *r);
int dpchan_decode_durable(const uint8_t *buf, size_t len, dpchan_range_fn fn, void *arg);
/* DOWN_ACK: the same ranges, status 1 allowed (delivered to a subscriber). */
int dpchan_encode_down_ack(uint8_t *buf, size_t cap, const struct dpchan_range *v, uint32_t n);
int dpchan_decode_down_ack(const uint8_t *buf, size_t len, dpchan_range_fn fn, void *arg);

/* RELEASE: n origins (at most DPCHAN_RELEASE_MAX a frame); the frame's size or -E2BIG. */
#define DPCHAN_RELEASE_MAX ((DPCHAN_FRAME_MAX - DPCHAN_HDR_LEN) / DPCHAN_ORIGIN_LEN)
int dpchan_encode_release(uint8_t *buf, size_t cap, const struct dpchan_origin *v, uint32_t n);
typedef void (*dpchan_origin_fn)(void *arg, const struct dpchan_origin *o);
int dpchan_decode_release(const uint8_t *buf, size_t len, dpchan_origin_fn fn, void *arg);
/* HELD: the same, another type. */
int dpchan_encode_held(uint8_t *buf, size_t cap, const struct dpchan_origin *v, uint32_t n);
int dpchan_decode_held(const uint8_t *buf, size_t len, dpchan_origin_fn fn, void *arg);
/* HELD_END: the number of lcores of the start (>= 1). */
int dpchan_encode_held_end(uint8_t *buf, size_t cap, uint32_t lcores);
int dpchan_decode_held_end(const uint8_t *buf, size_t len, uint32_t *lcores);

#endif
