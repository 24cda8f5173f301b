/*
 * fake_modbus.h: a fake Modbus line under agent/modbus/bus.c, for unit tests. fake_modbus.c
 * defines the libmodbus calls that bus.c and transport.c make on a bus (connect, close, flush,
 * set_slave and the nine reads and writes): the test executable's definitions win over the
 * shared library's, so the poller runs unchanged over a register map held here, and every
 * failure libmodbus can report comes on demand: a silence (timeout), an exception, a bad CRC,
 * an answer from another unit, a short or garbled frame, a lost port, a port that does not
 * open. The register map is shared by every unit id; a unit can be made dead (never answers).
 */
#ifndef EDGEGW_TEST_FAKE_MODBUS_H
#define EDGEGW_TEST_FAKE_MODBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

#define FAKE_MAP_SIZE 1024

enum fake_fault {
	FAKE_OK = 0,
	FAKE_TIMEOUT,    /* ETIMEDOUT: no answer */
	FAKE_CRC,        /* EMBBADCRC */
	FAKE_WRONG_UNIT, /* EMBBADSLAVE: another unit answered */
	FAKE_SHORT,      /* EMBBADDATA: a short or garbled answer */
	FAKE_LINK,       /* EIO: the port went away */
	FAKE_EXCEPTION   /* an exception answer, code given with it */
};

/* One request as it reached the line. fc: the Modbus function code (1..6, 15, 16, 22). */
struct fake_req {
	uint8_t unit, fc;
	uint16_t addr, count;
	uint16_t value; /* first register or coil written; FC22: the OR mask */
};

void fake_reset(void);
/* The next `times` requests to unit fail so (exc: the exception code for FAKE_EXCEPTION). */
void fake_script(uint8_t unit, enum fake_fault f, int exc, unsigned times);
/* Every request to unit times out while dead. */
void fake_set_dead(uint8_t unit, bool dead);
/* modbus_connect fails with err (ENOENT: port missing) while non-zero. */
void fake_set_open_error(int err);
/* Reads that cover [addr, addr + count) of table func get exception 2. */
void fake_add_hole(enum mb_func func, uint16_t addr, uint16_t count);
void fake_clear_holes(void);
/* Reads of table func get exception 1 (illegal function) while refused. */
void fake_set_no_function(enum mb_func func, bool refused);
/* Every request to unit is answered by another unit id (EMBBADSLAVE) while set. */
void fake_set_answer_as_other(uint8_t unit, bool other);
/* Every read gets exception exc while set (0: none). */
void fake_set_exception_all(int exc);
/* Register reads longer than n get exception 3 (0: no limit). */
void fake_set_max_read(uint16_t n);
/* Each request takes this long on the line (unit 0: every unit). */
void fake_set_delay_us(uint8_t unit, uint32_t us);
void fake_set(enum mb_func func, uint16_t addr, uint16_t value);
uint16_t fake_get(enum mb_func func, uint16_t addr);
/* Writes to this address are acknowledged and ignored (a read-back then differs). */
void fake_set_frozen(enum mb_func func, uint16_t addr, bool frozen);
/* Requests seen so far (copied to out, up to max); returns how many there were. */
size_t fake_log(struct fake_req *out, size_t max);
unsigned fake_connects(void);

#endif
