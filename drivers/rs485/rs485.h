/*
 * rs485.h: serial line settings for a Modbus RTU bus and the RS-485 driver mode. libmodbus owns
 * the termios setup when it opens the port; this module validates the line settings first,
 * switches the port into RS-485 mode (TIOCSRS485, RTS around transmit with delays) where the
 * port supports it, and gives the RTU character and frame timing everyone else plans with.
 */
#ifndef EDGEGW_RS485_H
#define EDGEGW_RS485_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rs485_line {
	uint32_t baud;
	char parity;       /* 'N', 'E' or 'O' */
	uint8_t data_bits; /* 7 or 8 */
	uint8_t stop_bits; /* 1 or 2 */
};

enum rs485_mode_want {
	RS485_MODE_OFF = 0,
	RS485_MODE_AUTO,
	RS485_MODE_ON
};

struct rs485_mode {
	enum rs485_mode_want want; /* auto: use it when the port has it; on: fail without it */
	uint32_t rts_delay_before_us;
	uint32_t rts_delay_after_us;
	bool rts_on_send_low; /* RTS low while sending (some transceivers) */
};

/* 0, or -EINVAL with the reason in err. */
int rs485_line_check(const struct rs485_line *l, char *err, size_t errlen);
/* Bits on the wire per character: start + data + parity + stop. */
unsigned rs485_bits_per_char(const struct rs485_line *l);
/* One character's time and the 3.5-character inter-frame silence (1750 us above 19,200 baud). */
double rs485_char_us(const struct rs485_line *l);
uint32_t rs485_frame_gap_us(const struct rs485_line *l);

/*
 * Put the open port fd in RS-485 mode. Returns 0 when on, 1 when the port has no RS-485 mode and
 * want is auto (logged once: ptys and many USB adapters switch direction in hardware), or a
 * negative errno (-ENOTTY when want is on and the port cannot do it).
 */
int rs485_mode_apply(int fd, const char *path, const struct rs485_mode *m);

#endif
