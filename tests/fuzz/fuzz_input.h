/*
 * fuzz_input.h: what the script-driven harnesses share: the input read a byte at a time (zeros
 * once it is used up, so every script ends), a broken promise reported and aborted on (libFuzzer
 * keeps the input). A harness that makes a file's checksums right uses lib/util's crc32c.
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
	uint16_t lo = u8(r); /* first: the order of two calls in one expression is not C's */

	return (uint16_t)(lo | u8(r) << 8);
}

/* what: the harness's name; why: the promise broken */
static inline void __attribute__((noreturn)) fuzz_broken(const char *what, const char *why)
{
	fprintf(stderr, "%s: %s\n", what, why);
	abort();
}

#endif
