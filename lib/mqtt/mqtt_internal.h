/*
 * mqtt_internal.h: what the codec's files share and nobody else calls: the segmented read
 * cursor, the counting writer, the property block codec and the per-type tables.
 */
#ifndef EDGEGW_MQTT_INTERNAL_H
#define EDGEGW_MQTT_INTERNAL_H

#include "mqtt_codec.h"

#define MQTT_TBIT(t)  (1u << (t))
#define MQTT_WILL_BIT 1u /* bit 0: the will properties of CONNECT (type 0 is reserved) */

/* Scratch: straddling fields are copied at the front, decoded arrays taken from the back. */
struct mqtt_scratch {
	uint8_t *base;
	uint32_t front, back;
};

/* Read position in a segmented packet; left counts the bytes left in the packet. */
struct mqtt_cur {
	const struct mqtt_iov *iov;
	size_t niov;
	size_t seg;
	size_t off;
	uint32_t left;
	struct mqtt_scratch *sc;
};

void
mqtt_cur_init(struct mqtt_cur *c, const struct mqtt_iov *iov, size_t niov, struct mqtt_scratch *sc);
int mqtt_cur_u8(struct mqtt_cur *c, uint8_t *out);
int mqtt_cur_u16(struct mqtt_cur *c, uint16_t *out);
int mqtt_cur_u32(struct mqtt_cur *c, uint32_t *out);
int mqtt_cur_vbi(struct mqtt_cur *c, uint32_t *out);
/* len contiguous bytes: a pointer into the input, or a copy in scratch when they straddle. */
int mqtt_cur_bytes(struct mqtt_cur *c, uint32_t len, const uint8_t **out);
int mqtt_cur_bin(struct mqtt_cur *c, struct mqtt_str *out); /* 2-byte length + bytes */
int mqtt_cur_str(struct mqtt_cur *c, struct mqtt_str *out); /* same, UTF-8 checked */
void *mqtt_scratch_alloc(struct mqtt_scratch *sc, size_t size);
void mqtt_cur_rest(struct mqtt_cur *c, struct mqtt_span *span, const uint8_t **flat);
int mqtt_cur_skip(struct mqtt_cur *c, uint32_t len);

/* Writer that counts past the end of buf so one pass gives the length needed. */
struct mqtt_wr {
	uint8_t *buf;
	size_t cap;
	size_t pos;
};

void mqtt_wr_u8(struct mqtt_wr *w, uint8_t v);
void mqtt_wr_u16(struct mqtt_wr *w, uint16_t v);
void mqtt_wr_u32(struct mqtt_wr *w, uint32_t v);
void mqtt_wr_vbi(struct mqtt_wr *w, uint32_t v);
void mqtt_wr_bytes(struct mqtt_wr *w, const void *p, size_t len);
void mqtt_wr_str(struct mqtt_wr *w, struct mqtt_str s);
size_t mqtt_vbi_size(uint32_t v);

/*
 * Property block: decode (length + properties) for packet type bit `where` (MQTT_TBIT(type) or
 * MQTT_WILL_BIT), validating ids, types, ranges, duplicates; encode the same.
 */
int mqtt_props_decode(struct mqtt_cur *c, uint32_t where, struct mqtt_props *p);
int mqtt_props_check(const struct mqtt_props *p, uint32_t where);
size_t mqtt_props_size(const struct mqtt_props *p); /* property block without its length */
void mqtt_props_write(struct mqtt_wr *w, const struct mqtt_props *p);

/* Rules on one subscription (options and filter), for decode and encode. */
int mqtt_sub_check(uint8_t version, const struct mqtt_subscription *s);

#endif
