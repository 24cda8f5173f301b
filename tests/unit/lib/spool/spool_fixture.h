/*
 * spool_fixture.h: what lib/spool's unit tests (test_spool.c, test_spool_faults.c,
 * test_spool_open.c) share: a fresh spool directory under /tmp and its removal, one record
 * appended on a fixed topic, a counter read. append and counter keep the short names the
 * tests call them by.
 */
#ifndef EDGEGW_TEST_SPOOL_FIXTURE_H
#define EDGEGW_TEST_SPOOL_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

/* Make a fresh directory /tmp/<name>.XXXXXX, its path into dir (len bytes); 0 or -1. */
int spool_fx_mkdtemp(char *dir, size_t len, const char *name);
/* Remove dir and everything under it; nftw's answer. */
int spool_fx_rmtree(const char *dir);
/* Append one record (topic "plant/t", this payload); asserts it was taken; its seq. */
uint64_t append(struct spool *sp, enum spool_class cls, uint8_t qos, const char *payload);
/* One of the spool's counters. */
uint64_t counter(struct spool *sp, enum spool_counter c);

#endif
