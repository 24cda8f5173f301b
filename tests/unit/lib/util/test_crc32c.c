/*
 * test_crc32c.c: lib/util's CRC-32C, which every file the gateway writes carries. The standard
 * check value, continuation in pieces, and agreement with the bitwise definition (reflected
 * polynomial 0x82F63B78, initial and final inversion) at every length up to 300 and every
 * alignment up to 16: ISA-L's code takes different paths by length and alignment, and the
 * spool's, journal's and QoS 2 origins' files written by earlier versions hold this CRC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crc32c.h"

static uint32_t
crc32c_bitwise(const uint8_t *p, size_t n)
{
	uint32_t c = ~0u;

	while (n-- > 0) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static void
test_check_value(void **state)
{
	(void)state;
	assert_int_equal(crc32c("123456789", 9, 0), 0xe3069283u);
	assert_int_equal(crc32c("", 0, 0), 0);
	assert_int_equal(crc32c("", 0, 0x12345678u), 0x12345678u); /* nothing more: unchanged */
	/* continued in two pieces: the same */
	assert_int_equal(crc32c("56789", 5, crc32c("1234", 4, 0)), 0xe3069283u);
}

static void
test_as_defined(void **state)
{
	uint8_t buf[320];
	uint32_t x = 0x9e3779b9u;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (size_t off = 0; off < 16; off++)
		for (size_t n = 0; off + n <= 300; n++) {
			uint32_t want = crc32c_bitwise(buf + off, n);

			assert_int_equal(crc32c(buf + off, n, 0), want);
			/* split anywhere: the same */
			assert_int_equal(
			    crc32c(buf + off + n / 3, n - n / 3, crc32c(buf + off, n / 3, 0)),
			    want);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_as_defined),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
