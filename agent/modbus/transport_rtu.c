/*
 * transport_rtu.c: Modbus RTU on a serial line (RS-485, or a pty in tests). Keeps the
 * 3.5-character silence between frames (libmodbus does not) and applies RS-485 mode.
 */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "log.h"
#include "transport.h"

#define PTY_SLAVE_MAJOR_FIRST 136 /* Unix98 pty slaves, /dev/pts/N: majors 136 to 143 */
#define PTY_SLAVE_MAJOR_LAST  143

#define RTU_BYTE_TIMEOUT_MS   50 /* silence inside an RTU answer that ends it */

static modbus_t *
rtu_ctx_new(const struct agent_bus_conf *c)
{
	return modbus_new_rtu(
	    c->device, (int)c->line.baud, c->line.parity, c->line.data_bits, c->line.stop_bits);
}

static bool
is_pty(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISCHR(st.st_mode) &&
	    major(st.st_rdev) >= PTY_SLAVE_MAJOR_FIRST && major(st.st_rdev) <= PTY_SLAVE_MAJOR_LAST;
}

/*
 * A pseudo-terminal (socat's pair in the lab and the tests, a virtual serial port) carries no
 * parity: the kernel drops PARENB from its termios. glibc's tcsetattr() reports that as EINVAL
 * when nothing else changed, and nothing else does when the line is left as the agent set it,
 * which is what an agent killed without a clean close leaves (libmodbus restores the old
 * settings only in modbus_close): the restarted agent could never open the port again. So on
 * a pty the line is opened without parity, said once; the frame timing keeps the configured
 * character length.
 */
static int
rtu_before_open(struct mb_transport *t)
{
	const struct agent_bus_conf *c = t->c;
	modbus_t *ctx;

	if (t->pty || c->line.parity == 'N' || !is_pty(c->device))
		return 0;
	ctx =
	    modbus_new_rtu(c->device, (int)c->line.baud, 'N', c->line.data_bits, c->line.stop_bits);
	if (ctx == NULL)
		return -errno;
	modbus_free(t->ctx);
	t->ctx = ctx;
	t->pty = true;
	log_info("bus %s: %s is a pseudo-terminal, which carries no parity: opened without it "
		 "(parity %s in the config)",
	    c->name, c->device, c->line.parity == 'E' ? "even" : "odd");
	return 0;
}

static int
rtu_setup(struct mb_transport *t)
{
	return rs485_mode_apply(modbus_get_socket(t->ctx), t->c->device, &t->c->rs485) < 0 ? -EIO
											   : 0;
}

static uint32_t
rtu_gap_us(const struct agent_bus_conf *c)
{
	return rs485_frame_gap_us(&c->line);
}

/* On RTU the bytes of a frame come back to back, so a short silence ends a frame cut short
 * instead of libmodbus's 500 ms default. */
static uint32_t
rtu_byte_timeout_us(uint32_t timeout_ms)
{
	(void)timeout_ms;
	return RTU_BYTE_TIMEOUT_MS * 1000u;
}

static void
rtu_cost(const struct agent_bus_conf *c, struct mb_cost *out)
{
	mb_cost_rtu(
	    out, c->line.baud, rs485_bits_per_char(&c->line), (double)c->turnaround_ms * 1000.0);
}

/* A port that went away (USB adapter unplugged) reads as EIO, ENXIO or ENODEV. */
static enum mb_link_err
rtu_classify(int err)
{
	switch (err) {
	case EBADF:
	case ENXIO:
	case ENODEV:
	case EIO:
		return MB_LINK_LOST;
	default:
		return MB_LINK_DEVICE;
	}
}

static bool
rtu_open_fault(int err)
{
	(void)err;
	return true; /* a serial port that does not open is the bus's fault, whatever the errno */
}

static const char *
rtu_where(const struct agent_bus_conf *c)
{
	return c->device;
}

const struct mb_transport_ops mb_transport_rtu = {
	.name = "rtu",
	.ctx_new = rtu_ctx_new,
	.before_open = rtu_before_open,
	.setup = rtu_setup,
	.gap_us = rtu_gap_us,
	.byte_timeout_us = rtu_byte_timeout_us,
	.cost = rtu_cost,
	.classify = rtu_classify,
	.where = rtu_where,
	.open_fault = rtu_open_fault,
};
