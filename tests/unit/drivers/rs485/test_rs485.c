/* test_rs485.c: line checks, RTU timing and RS-485 mode on a port without it (drivers/rs485). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "rs485.h"

static void
test_line_check(void **state)
{
	struct rs485_line ok = { 9600, 'E', 8, 1 }, bad;
	char err[128];

	(void)state;
	assert_int_equal(rs485_line_check(&ok, err, sizeof(err)), 0);
	bad = ok;
	bad.baud = 12345;
	assert_int_equal(rs485_line_check(&bad, err, sizeof(err)), -EINVAL);
	bad = ok;
	bad.parity = 'X';
	assert_int_equal(rs485_line_check(&bad, err, sizeof(err)), -EINVAL);
	bad = ok;
	bad.data_bits = 5;
	assert_int_equal(rs485_line_check(&bad, err, sizeof(err)), -EINVAL);
	bad = ok;
	bad.stop_bits = 3;
	assert_int_equal(rs485_line_check(&bad, err, sizeof(err)), -EINVAL);
}

static void
test_timing(void **state)
{
	struct rs485_line l8e1 = { 9600, 'E', 8, 1 }, l8n1 = { 9600, 'N', 8, 1 },
			  fast = { 115200, 'N', 8, 2 };

	(void)state;
	assert_int_equal(rs485_bits_per_char(&l8e1), 11);
	assert_int_equal(rs485_bits_per_char(&l8n1), 10);
	assert_int_equal(rs485_bits_per_char(&fast), 11);
	/* 3.5 characters of 11 bits at 9600 baud: 4010 us; above 19200 the spec fixes 1750 us */
	assert_int_equal(rs485_frame_gap_us(&l8e1), 4010);
	assert_int_equal(rs485_frame_gap_us(&fast), 1750);
}

static void
test_mode_on_pty(void **state)
{
	struct rs485_mode m = { RS485_MODE_AUTO, 0, 0, false };
	int fd = posix_openpt(O_RDWR | O_NOCTTY);

	(void)state;
	if (fd < 0)
		skip();
	/* A pty has no RS-485 mode: auto carries on (1), on refuses (-ENOTTY), off does nothing. */
	assert_int_equal(rs485_mode_apply(fd, "pty", &m), 1);
	m.want = RS485_MODE_ON;
	assert_int_equal(rs485_mode_apply(fd, "pty", &m), -ENOTTY);
	m.want = RS485_MODE_OFF;
	assert_int_equal(rs485_mode_apply(fd, "pty", &m), 1);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_check),
		cmocka_unit_test(test_timing),
		cmocka_unit_test(test_mode_on_pty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
