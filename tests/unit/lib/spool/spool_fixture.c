/* spool_fixture.c: see spool_fixture.h. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "spool_fixture.h"

int
spool_fx_mkdtemp(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "/tmp/%s.XXXXXX", name);
	return mkdtemp(dir) ? 0 : -1;
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

int
spool_fx_rmtree(const char *dir)
{
	return nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t
append(struct spool *sp, enum spool_class cls, uint8_t qos, const char *payload)
{
	struct spool_rec_in in = { .cls = cls,
		.qos = qos,
		.topic = "plant/t",
		.topic_len = 7,
		.payload = payload,
		.payload_len = (uint32_t)strlen(payload) };
	uint64_t seq = 0;

	assert_int_equal(spool_append(sp, &in, &seq), 0);
	return seq;
}

uint64_t
counter(struct spool *sp, enum spool_counter c)
{
	uint64_t v[SPOOL_C_N];

	spool_counters(sp, v);
	return v[c];
}
