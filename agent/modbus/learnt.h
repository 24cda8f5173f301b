/*
 * learnt.h: what the poller learnt about one device (holes in its register map, the longest
 * read it takes, the tables it does not serve at all), kept across restarts in <state_dir>/modbus/<bus>.<device>.state and
 * forgotten when the device's profile changes (the file carries a hash of the profile).
 */
#ifndef EDGEGW_MB_LEARNT_H
#define EDGEGW_MB_LEARNT_H

#include <stddef.h>
#include <stdint.h>

#include "planner.h"
#include "profile.h"

struct mb_learnt {
	struct mb_holes holes; /* learnt (the profile's declared ones are not in here) */
	uint16_t max_regs;     /* learnt read limit; 0: none learnt */
	uint16_t max_bits;
	uint8_t no_func; /* bit per enum mb_func: the device answers its reads with exception 1
			  * (illegal function): that table's points are not read */
};

/* A hash of what the plan depends on: points' tables, addresses, sizes; limits; holes. */
uint64_t mb_profile_hash(const struct mb_profile *p);
/* Path of the state file, or -ENAMETOOLONG. */
int
mb_learnt_path(char *buf, size_t len, const char *state_dir, const char *bus, const char *device);
/* 0 and *l filled; -ENOENT when there is none or it was for another profile (it is then
 * ignored); -EINVAL when it does not parse. */
int mb_learnt_load(const char *path, uint64_t profile_hash, struct mb_learnt *l);
/* Written whole (temporary file, rename); creates <state_dir>/modbus. 0 or -errno. */
int mb_learnt_save(const char *path, uint64_t profile_hash, const struct mb_learnt *l);
void mb_learnt_free(struct mb_learnt *l);

#endif
