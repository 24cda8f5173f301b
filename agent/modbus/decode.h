/*
 * decode.h: a point's registers (or bits) to a value, and a value back to registers for writes.
 * Byte and word order follow the profile: big/big is ABCD, word_order little is CDAB,
 * byte_order little is BADC, both little is DCBA. Engineering value = raw * scale + offset.
 */
#ifndef EDGEGW_MB_DECODE_H
#define EDGEGW_MB_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

enum mb_vkind {
	MB_V_NUM = 0,
	MB_V_STR
};

struct mb_value {
	enum mb_vkind kind;
	double num; /* engineering value */
	bool exact; /* integer type read with scale 1, offset 0: print ival/uval */
	bool is_unsigned;
	int64_t ival;
	uint64_t uval;
	char str[2 * MB_STR_REGS_MAX + 1];
};

/* regs: the point's own registers (regs[0] is at point->address). */
void mb_decode_regs(const struct mb_point *p, const uint16_t *regs, struct mb_value *out);
/* bits: libmodbus's one byte per bit, bits[0] is at point->address. */
void mb_decode_bit(const struct mb_point *p, uint8_t bit, struct mb_value *out);

/*
 * Engineering value to registers for a write (count = p->count). Checks min/max and that the
 * raw value fits the type; -ERANGE / -EINVAL with the reason in err.
 */
int
mb_encode_regs(const struct mb_point *p, double value, uint16_t *regs, char *err, size_t errlen);

/* A string to a string point's registers (NUL-padded); -ERANGE when it is too long or not
 * printable ASCII. */
int
mb_encode_string(const struct mb_point *p, const char *s, uint16_t *regs, char *err, size_t errlen);

/* Two values equal within deadband? (strings: exact). */
bool mb_value_within(const struct mb_value *a, const struct mb_value *b, double deadband);

/* Print the value as JSON (number, true/false for bool points, or a quoted string). */
int mb_value_json(const struct mb_point *p, const struct mb_value *v, char *buf, size_t len);

#endif
