/*
 * fail_alloc.c: the failing allocator of fail_alloc.h, through the linker's --wrap: calls to
 * malloc, calloc, realloc and strdup in the test's link come here (__wrap_*), the real ones are
 * __real_* (libc's, or the sanitizer's in build-asan). Counters are atomic: the spool's
 * flusher thread allocates too.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fail_alloc.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static uint64_t seen, failed, fail_at;
static bool fail_rest;

void
fail_alloc_nth(uint64_t n)
{
	if (n != 0) { /* disarming keeps the counts, for the test to read */
		__atomic_store_n(&seen, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&failed, 0, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&fail_rest, false, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fail_at, n, __ATOMIC_SEQ_CST);
}

void
fail_alloc_from(uint64_t n)
{
	fail_alloc_nth(n);
	__atomic_store_n(&fail_rest, n != 0, __ATOMIC_SEQ_CST);
}

uint64_t
fail_alloc_seen(void)
{
	return __atomic_load_n(&seen, __ATOMIC_SEQ_CST);
}

uint64_t
fail_alloc_failed(void)
{
	return __atomic_load_n(&failed, __ATOMIC_SEQ_CST);
}

/* Whether this allocation fails. */
static bool
fails(void)
{
	uint64_t k = __atomic_add_fetch(&seen, 1, __ATOMIC_SEQ_CST);
	uint64_t at = __atomic_load_n(&fail_at, __ATOMIC_SEQ_CST);

	if (at == 0 || k < at || (k > at && !__atomic_load_n(&fail_rest, __ATOMIC_SEQ_CST)))
		return false;
	__atomic_add_fetch(&failed, 1, __ATOMIC_SEQ_CST);
	errno = ENOMEM;
	return true;
}

void *
__wrap_malloc(size_t n)
{
	return fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t k, size_t n)
{
	return fails() ? NULL : __real_calloc(k, n);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return fails() ? NULL : __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	return fails() ? NULL : __real_strdup(s);
}
