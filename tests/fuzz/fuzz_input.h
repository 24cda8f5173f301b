/*
 * fuzz_input.h: what the script-driven harnesses share: the input read a byte at a time (zeros
 * once it is used up, so every script ends), a broken promise reported and aborted on (libFuzzer
 * keeps the input), and CRC-32C (Castagnoli, bitwise) for the files whose checksums a harness
 * makes right.
 */
#ifndef EDGEGW_FUZZ_INPUT_H
#define EDGEGW_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct rd {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t
u8(struct rd *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static inline uint16_t
u16(struct rd *r)
{
	return (uint16_t)(u8(r) | u8(r) << 8);
}

/* what: the harness's name; why: the promise broken */
static inline void __attribute__((noreturn)) fuzz_broken(const char *what, const char *why)
{
	fprintf(stderr, "%s: %s\n", what, why);
	abort();
}

static inline uint32_t
fuzz_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = ~0u;

	while (n-- > 0) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

#endif
