/*
 * writes.h: write commands. A command arrives as a flat JSON object
 *   {"id": "42", "device": "tc1", "point": "setpoint", "value": 21.5}
 * and is checked against the device's profile (point exists, is writable, value in range and
 * representable) before it reaches the bus; the bus thread writes it (FC05 coil, FC06 one
 * register, FC16 several), reads it back and the agent answers on the response topic.
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
};

/* A prepared write: what goes on the wire. */
struct mb_write_op {
	enum mb_func func; /* MB_FN_COIL or MB_FN_HOLDING */
	uint16_t address, count;
	uint16_t regs[4];
	bool coil;
};

int
mb_write_parse(const char *payload, size_t len, struct mb_write_req *req, char *err, size_t errlen);
int mb_write_prepare(
    const struct mb_point *p, double value, struct mb_write_op *op, char *err, size_t errlen);
/* Response: {"id","device","point","status":"ok"|"error","reason"?,"value"?}; value_json may
 * be NULL. Returns length or -ENOSPC. */
int mb_write_response(char *buf, size_t len, const struct mb_write_req *req, bool ok,
    const char *reason, const char *value_json);

#endif
