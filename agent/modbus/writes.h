/*
 * writes.h: write commands. A command arrives as a flat JSON object
 *   {"id": "42", "device": "tc1", "point": "setpoint", "value": 21.5}
 * and is checked against the device's profile (point exists, is writable, value in range and
 * representable) before it reaches the bus; the bus thread writes it, reads it back and the
 * agent answers on the response topic. How it is written (enum mb_write_how): FC05 or FC15
 * for a coil, FC06 or FC16 for one register (profile write_single), FC16 for several and for
 * strings ("value" is then a JSON string), and a bit of a register by read-modify-write
 * (FC03 then FC06/FC16) or FC22 mask write (profile bit_write: mask).
 */
#ifndef EDGEGW_MB_WRITES_H
#define EDGEGW_MB_WRITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

struct mb_write_req {
	char id[64];
	char device[MB_NAME_MAX];
	char point[MB_NAME_MAX];
	double value;
	bool is_str; /* "value" was a string: str */
	char str[2 * MB_STR_REGS_MAX + 1];
};

enum mb_write_how {
	MB_WR_COIL = 0, /* FC05 */
	MB_WR_COILS,    /* FC15 */
	MB_WR_REG,      /* FC06 */
	MB_WR_REGS,     /* FC16 */
	MB_WR_MASK,     /* FC22: (reg AND and_mask) OR (or_mask AND NOT and_mask) */
	MB_WR_RMW       /* FC03, then the register with the bit changed, FC06 or FC16 */
};

/* A prepared write: what goes on the wire. */
struct mb_write_op {
	enum mb_func func; /* MB_FN_COIL or MB_FN_HOLDING */
	uint16_t address, count;
	uint16_t regs[MB_STR_REGS_MAX];
	bool coil;
	enum mb_write_how how;
	uint16_t and_mask, or_mask; /* bit points */
	bool rmw_multiple;          /* MB_WR_RMW: write the register back with FC16 */
};

int
mb_write_parse(const char *payload, size_t len, struct mb_write_req *req, char *err, size_t errlen);
int mb_write_prepare(
    const struct mb_point *p, double value, struct mb_write_op *op, char *err, size_t errlen);
/* The same for a parsed command: numbers and strings. */
int mb_write_prepare_req(const struct mb_point *p, const struct mb_write_req *req,
    struct mb_write_op *op, char *err, size_t errlen);
/* Room for any response: id, device, point and a reason of up to 255 bytes, each character
 * possibly escaped to six ("\u0001"), a value of up to 159 bytes, the keys and punctuation. A
 * 1 KiB buffer did not hold a command's control characters escaped: no response at all. */
#define MB_WRITE_RESPONSE_MAX \
	(6 * (sizeof(((struct mb_write_req *)0)->id) + 2 * MB_NAME_MAX + 256) + 160 + 128)

/* Response: {"id","device","point","status":"ok"|"error","reason"?,"value"?}; value_json may
 * be NULL. Returns length or -ENOSPC. */
int mb_write_response(char *buf, size_t len, const struct mb_write_req *req, bool ok,
    const char *reason, const char *value_json);

#endif
