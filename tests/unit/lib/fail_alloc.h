/*
 * fail_alloc.h: a failing allocator for the unit tests of lib/. A test linked with the
 * fail_alloc dependency (tests/unit/lib/meson.build) has every malloc, calloc, realloc and strdup
 * of its own link (lib's static libraries and the test itself, not libc's or cmocka's) go through
 * fail_alloc.c, which passes them on until told to fail one: the Nth from now, with NULL and
 * errno ENOMEM, as a real allocator that runs out does.
 */
#ifndef EDGEGW_TEST_FAIL_ALLOC_H
#define EDGEGW_TEST_FAIL_ALLOC_H

#include <stdint.h>

/* The nth allocation from now fails (1: the next one); 0 disarms. Only that one: the ones
 * after it succeed again. */
void fail_alloc_nth(uint64_t n);
/* Every allocation from the nth on fails, until fail_alloc_nth(0). */
void fail_alloc_from(uint64_t n);
/* Allocations seen since the last fail_alloc_nth/fail_alloc_from that armed it, and how many
 * failed (disarming keeps both). */
uint64_t fail_alloc_seen(void);
uint64_t fail_alloc_failed(void);

#endif
