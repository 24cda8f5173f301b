/*
 * rs485.c: line checks, RTU timing, and TIOCSRS485 (see rs485.h).
 */
#include <errno.h>
#include <linux/serial.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "rs485.h"
#include "log.h"

static bool
baud_supported(uint32_t b)
{
	static const uint32_t ok[] = { 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400,
		460800, 921600 };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (ok[i] == b)
			return true;
	return false;
}

int
rs485_line_check(const struct rs485_line *l, char *err, size_t errlen)
{
	if (!baud_supported(l->baud)) {
		snprintf(err, errlen, "baud %u is not a standard rate (1200 .. 921600)", l->baud);
		return -EINVAL;
	}
	if (l->parity != 'N' && l->parity != 'E' && l->parity != 'O') {
		snprintf(err, errlen, "parity must be none, even or odd");
		return -EINVAL;
	}
	if (l->data_bits != 7 && l->data_bits != 8) {
		snprintf(err, errlen, "data_bits must be 7 or 8");
		return -EINVAL;
	}
	if (l->stop_bits != 1 && l->stop_bits != 2) {
		snprintf(err, errlen, "stop_bits must be 1 or 2");
		return -EINVAL;
	}
	return 0;
}

unsigned
rs485_bits_per_char(const struct rs485_line *l)
{
	return 1u + l->data_bits + (l->parity != 'N') + l->stop_bits;
}

double
rs485_char_us(const struct rs485_line *l)
{
	return l->baud ? rs485_bits_per_char(l) * 1e6 / l->baud : 0.0;
}

uint32_t
rs485_frame_gap_us(const struct rs485_line *l)
{
	if (l->baud > 19200)
		return 1750;
	return (uint32_t)(3.5 * rs485_char_us(l) + 0.5);
}

int
rs485_mode_apply(int fd, const char *path, const struct rs485_mode *m)
{
	struct serial_rs485 rs;

	if (m->want == RS485_MODE_OFF)
		return 1;
	memset(&rs, 0, sizeof(rs));
	rs.flags = SER_RS485_ENABLED |
	    (m->rts_on_send_low ? SER_RS485_RTS_AFTER_SEND : SER_RS485_RTS_ON_SEND);
	/* The kernel takes the delays in milliseconds. */
	rs.delay_rts_before_send = (m->rts_delay_before_us + 999) / 1000;
	rs.delay_rts_after_send = (m->rts_delay_after_us + 999) / 1000;
	if (ioctl(fd, TIOCSRS485, &rs) == 0) {
		log_info("rs485: %s: RS-485 mode on (RTS delays %u/%u ms)", path,
		    rs.delay_rts_before_send, rs.delay_rts_after_send);
		return 0;
	}
	if (m->want == RS485_MODE_AUTO && (errno == ENOTTY || errno == EINVAL)) {
		log_info("rs485: %s: port has no RS-485 mode (%s); assuming the adapter switches "
			 "direction itself",
		    path, strerror(errno));
		return 1;
	}
	log_err("rs485: %s: cannot enable RS-485 mode: %s", path, strerror(errno));
	return -errno;
}
