/*
 * fake_modbus.c: the fake Modbus line (fake_modbus.h). The bus thread calls these; the test
 * thread sets them up, so everything is under one mutex. Only what bus.c and transport.c call
 * on a bus is replaced: creating and freeing a context, the timeouts and modbus_strerror stay
 * libmodbus's own.
 */
#include <errno.h>
#include <modbus/modbus.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "fake_modbus.h"

#define FAKE_LOG_MAX    4096
#define FAKE_SCRIPT_MAX 64
#define FAKE_HOLES_MAX  16

struct step {
	uint8_t unit;
	enum fake_fault f;
	int exc;
};

static struct {
	pthread_mutex_t lock;
	uint16_t map[MB_FN_COUNT][FAKE_MAP_SIZE];
	bool frozen[MB_FN_COUNT][FAKE_MAP_SIZE];
	bool dead[256];
	bool other[256]; /* answers as another unit id */
	uint32_t delay_us[256];
	int open_err;
	uint16_t max_read;
	int exc_all;     /* every read gets this exception */
	uint8_t no_func; /* bit per table: its reads get exception 1 */
	struct mb_hole holes[FAKE_HOLES_MAX];
	size_t nholes;
	struct step script[FAKE_SCRIPT_MAX];
	size_t nscript;
	struct fake_req log[FAKE_LOG_MAX];
	size_t nlog;
	unsigned connects;
	uint8_t unit;
} F = { .lock = PTHREAD_MUTEX_INITIALIZER };

void
fake_reset(void)
{
	pthread_mutex_lock(&F.lock);
	memset(F.map, 0, sizeof(F.map));
	memset(F.frozen, 0, sizeof(F.frozen));
	memset(F.dead, 0, sizeof(F.dead));
	memset(F.other, 0, sizeof(F.other));
	memset(F.delay_us, 0, sizeof(F.delay_us));
	F.open_err = 0;
	F.max_read = 0;
	F.exc_all = 0;
	F.no_func = 0;
	F.nholes = F.nscript = F.nlog = 0;
	F.connects = 0;
	F.unit = 0;
	pthread_mutex_unlock(&F.lock);
}

void
fake_script(uint8_t unit, enum fake_fault f, int exc, unsigned times)
{
	pthread_mutex_lock(&F.lock);
	for (unsigned i = 0; i < times && F.nscript < FAKE_SCRIPT_MAX; i++)
		F.script[F.nscript++] = (struct step){ unit, f, exc };
	pthread_mutex_unlock(&F.lock);
}

void
fake_set_dead(uint8_t unit, bool dead)
{
	pthread_mutex_lock(&F.lock);
	F.dead[unit] = dead;
	pthread_mutex_unlock(&F.lock);
}

void
fake_set_answer_as_other(uint8_t unit, bool other)
{
	pthread_mutex_lock(&F.lock);
	F.other[unit] = other;
	pthread_mutex_unlock(&F.lock);
}

void
fake_set_open_error(int err)
{
	pthread_mutex_lock(&F.lock);
	F.open_err = err;
	pthread_mutex_unlock(&F.lock);
}

void
fake_add_hole(enum mb_func func, uint16_t addr, uint16_t count)
{
	pthread_mutex_lock(&F.lock);
	if (F.nholes < FAKE_HOLES_MAX)
		F.holes[F.nholes++] = (struct mb_hole){ func, addr, count };
	pthread_mutex_unlock(&F.lock);
}

void
fake_set_no_function(enum mb_func func, bool refused)
{
	pthread_mutex_lock(&F.lock);
	if (refused)
		F.no_func |= (uint8_t)(1u << func);
	else
		F.no_func &= (uint8_t) ~(1u << func);
	pthread_mutex_unlock(&F.lock);
}

void
fake_clear_holes(void)
{
	pthread_mutex_lock(&F.lock);
	F.nholes = 0;
	pthread_mutex_unlock(&F.lock);
}

void
fake_set_exception_all(int exc)
{
	pthread_mutex_lock(&F.lock);
	F.exc_all = exc;
	pthread_mutex_unlock(&F.lock);
}

void
fake_set_max_read(uint16_t n)
{
	pthread_mutex_lock(&F.lock);
	F.max_read = n;
	pthread_mutex_unlock(&F.lock);
}

void
fake_set_delay_us(uint8_t unit, uint32_t us)
{
	pthread_mutex_lock(&F.lock);
	if (unit == 0)
		for (size_t i = 0; i < 256; i++)
			F.delay_us[i] = us;
	else
		F.delay_us[unit] = us;
	pthread_mutex_unlock(&F.lock);
}

void
fake_set(enum mb_func func, uint16_t addr, uint16_t value)
{
	pthread_mutex_lock(&F.lock);
	F.map[func][addr % FAKE_MAP_SIZE] = value;
	pthread_mutex_unlock(&F.lock);
}

uint16_t
fake_get(enum mb_func func, uint16_t addr)
{
	uint16_t v;

	pthread_mutex_lock(&F.lock);
	v = F.map[func][addr % FAKE_MAP_SIZE];
	pthread_mutex_unlock(&F.lock);
	return v;
}

void
fake_set_frozen(enum mb_func func, uint16_t addr, bool frozen)
{
	pthread_mutex_lock(&F.lock);
	F.frozen[func][addr % FAKE_MAP_SIZE] = frozen;
	pthread_mutex_unlock(&F.lock);
}

size_t
fake_log(struct fake_req *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&F.lock);
	n = F.nlog;
	if (out != NULL)
		memcpy(out, F.log, (n < max ? n : max) * sizeof(*out));
	pthread_mutex_unlock(&F.lock);
	return n;
}

unsigned
fake_connects(void)
{
	unsigned n;

	pthread_mutex_lock(&F.lock);
	n = F.connects;
	pthread_mutex_unlock(&F.lock);
	return n;
}

/* ---- the line ---- */

/* The scripted fault for this request, if any (the first step for this unit). */
static int
take_step(uint8_t unit, struct step *out)
{
	for (size_t i = 0; i < F.nscript; i++) {
		if (F.script[i].unit != unit)
			continue;
		*out = F.script[i];
		memmove(&F.script[i], &F.script[i + 1], (F.nscript - i - 1) * sizeof(F.script[0]));
		F.nscript--;
		return 1;
	}
	return 0;
}

static int
fault_errno(const struct step *s)
{
	switch (s->f) {
	case FAKE_TIMEOUT:
		return ETIMEDOUT;
	case FAKE_CRC:
		return EMBBADCRC;
	case FAKE_WRONG_UNIT:
		return EMBBADSLAVE;
	case FAKE_SHORT:
		return EMBBADDATA;
	case FAKE_LINK:
		return EIO;
	case FAKE_EXCEPTION:
		return MODBUS_ENOBASE + s->exc;
	case FAKE_OK:
		break;
	}
	return 0;
}

static bool
in_hole(enum mb_func func, uint16_t addr, uint16_t count)
{
	for (size_t i = 0; i < F.nholes; i++)
		if (F.holes[i].func == func && addr < F.holes[i].start + F.holes[i].count &&
		    F.holes[i].start < addr + count)
			return true;
	return false;
}

static void
delay(uint32_t us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	if (us)
		nanosleep(&ts, NULL);
}

/*
 * Everything up to the data: log the request, take its time, then its fault. Returns 0 to go
 * on (with the lock held), else -1 with errno set (lock released).
 */
static int
begin(uint8_t fc, uint16_t addr, uint16_t count, uint16_t value)
{
	struct step s;
	uint8_t unit;
	uint32_t us;
	int err = 0;

	pthread_mutex_lock(&F.lock);
	unit = F.unit;
	us = F.delay_us[unit];
	if (F.nlog < FAKE_LOG_MAX)
		F.log[F.nlog] = (struct fake_req){ unit, fc, addr, count, value };
	F.nlog++;
	pthread_mutex_unlock(&F.lock);
	delay(us);
	pthread_mutex_lock(&F.lock);
	if (F.dead[unit])
		err = ETIMEDOUT;
	else if (F.other[unit])
		err = EMBBADSLAVE;
	else if (take_step(unit, &s))
		err = fault_errno(&s);
	if (err) {
		pthread_mutex_unlock(&F.lock);
		errno = err;
		return -1;
	}
	return 0;
}

static int
read_table(enum mb_func func, uint8_t fc, int addr, int nb, uint16_t *regs, uint8_t *bits)
{
	if (begin(fc, (uint16_t)addr, (uint16_t)nb, 0) != 0)
		return -1;
	if (F.no_func & (1u << func)) {
		pthread_mutex_unlock(&F.lock);
		errno = MODBUS_ENOBASE + MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
		return -1;
	}
	if (F.exc_all) {
		errno = MODBUS_ENOBASE + F.exc_all;
		pthread_mutex_unlock(&F.lock);
		return -1;
	}
	if (in_hole(func, (uint16_t)addr, (uint16_t)nb) ||
	    (!mb_func_is_bits(func) && F.max_read && nb > F.max_read) ||
	    addr + nb > FAKE_MAP_SIZE) {
		int exc = in_hole(func, (uint16_t)addr, (uint16_t)nb)
		    ? MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS
		    : MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;

		pthread_mutex_unlock(&F.lock);
		errno = MODBUS_ENOBASE + exc;
		return -1;
	}
	for (int i = 0; i < nb; i++) {
		if (bits != NULL)
			bits[i] = F.map[func][addr + i] != 0;
		else
			regs[i] = F.map[func][addr + i];
	}
	pthread_mutex_unlock(&F.lock);
	return nb;
}

static void
store(enum mb_func func, int addr, uint16_t v)
{
	if (addr < FAKE_MAP_SIZE && !F.frozen[func][addr])
		F.map[func][addr] = v;
}

int
modbus_connect(modbus_t *ctx)
{
	int err;

	(void)ctx;
	pthread_mutex_lock(&F.lock);
	F.connects++;
	err = F.open_err;
	pthread_mutex_unlock(&F.lock);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

void
modbus_close(modbus_t *ctx)
{
	(void)ctx;
}

int
modbus_flush(modbus_t *ctx)
{
	(void)ctx;
	return 0;
}

int
modbus_set_slave(modbus_t *ctx, int slave)
{
	(void)ctx;
	pthread_mutex_lock(&F.lock);
	F.unit = (uint8_t)slave;
	pthread_mutex_unlock(&F.lock);
	return 0;
}

int
modbus_read_bits(modbus_t *ctx, int addr, int nb, uint8_t *dest)
{
	(void)ctx;
	return read_table(MB_FN_COIL, 1, addr, nb, NULL, dest);
}

int
modbus_read_input_bits(modbus_t *ctx, int addr, int nb, uint8_t *dest)
{
	(void)ctx;
	return read_table(MB_FN_DISCRETE, 2, addr, nb, NULL, dest);
}

int
modbus_read_registers(modbus_t *ctx, int addr, int nb, uint16_t *dest)
{
	(void)ctx;
	return read_table(MB_FN_HOLDING, 3, addr, nb, dest, NULL);
}

int
modbus_read_input_registers(modbus_t *ctx, int addr, int nb, uint16_t *dest)
{
	(void)ctx;
	return read_table(MB_FN_INPUT, 4, addr, nb, dest, NULL);
}

int
modbus_write_bit(modbus_t *ctx, int addr, int status)
{
	(void)ctx;
	if (begin(5, (uint16_t)addr, 1, (uint16_t)(status != 0)) != 0)
		return -1;
	store(MB_FN_COIL, addr, status != 0);
	pthread_mutex_unlock(&F.lock);
	return 1;
}

int
modbus_write_register(modbus_t *ctx, int addr, const uint16_t value)
{
	(void)ctx;
	if (begin(6, (uint16_t)addr, 1, value) != 0)
		return -1;
	store(MB_FN_HOLDING, addr, value);
	pthread_mutex_unlock(&F.lock);
	return 1;
}

int
modbus_write_bits(modbus_t *ctx, int addr, int nb, const uint8_t *data)
{
	(void)ctx;
	if (begin(15, (uint16_t)addr, (uint16_t)nb, data[0]) != 0)
		return -1;
	for (int i = 0; i < nb; i++)
		store(MB_FN_COIL, addr + i, data[i] != 0);
	pthread_mutex_unlock(&F.lock);
	return nb;
}

int
modbus_write_registers(modbus_t *ctx, int addr, int nb, const uint16_t *data)
{
	(void)ctx;
	if (begin(16, (uint16_t)addr, (uint16_t)nb, data[0]) != 0)
		return -1;
	for (int i = 0; i < nb; i++)
		store(MB_FN_HOLDING, addr + i, data[i]);
	pthread_mutex_unlock(&F.lock);
	return nb;
}

/* FC22: (current AND and_mask) OR (or_mask AND NOT and_mask), as the spec says. */
int
modbus_mask_write_register(modbus_t *ctx, int addr, uint16_t and_mask, uint16_t or_mask)
{
	(void)ctx;
	if (begin(22, (uint16_t)addr, 1, or_mask) != 0)
		return -1;
	if (addr < FAKE_MAP_SIZE)
		store(MB_FN_HOLDING, addr,
		    (uint16_t)((F.map[MB_FN_HOLDING][addr] & and_mask) | (or_mask & ~and_mask)));
	pthread_mutex_unlock(&F.lock);
	return 1;
}
