/*
 * planner.h: the coalescing read planner. Given a device's points, it finds the few requests
 * that read them all: points of one table are merged into a block while the block stays within
 * the request limits and reading through the gap costs less bus time than a request of its own.
 * The cost model is the RTU frame timing at the bus's line speed (or a fixed round trip for TCP).
 */
#ifndef EDGEGW_MB_PLANNER_H
#define EDGEGW_MB_PLANNER_H

#include <stddef.h>
#include <stdint.h>

#include "profile.h"

/* Bus time model. char_us = 0 models Modbus TCP: every request costs turnaround_us only. */
struct mb_cost {
	double char_us;       /* one character on the line (11 bits at the baud rate) */
	double gap_us;        /* inter-frame silence (3.5 characters, 1750 us above 19,200 baud) */
	double turnaround_us; /* device think time, or TCP round trip */
};

struct mb_plan_limits {
	uint16_t max_regs; /* per read: 1..125 */
	uint16_t max_bits; /* per read: 1..2000 */
	int32_t max_gap;   /* unread registers/bits read through at most; -1: cost decides */
	struct mb_cost cost;
};

struct mb_block {
	enum mb_func func;
	uint16_t start, count; /* registers (or bits) read */
	uint32_t first, npts;  /* points: plan->idx[first .. first + npts) */
	uint8_t split;         /* 1 once split by an illegal-address answer */
};

struct mb_plan {
	uint32_t *idx; /* point indices sorted by (table, address) */
	size_t npoints;
	struct mb_block *blocks;
	size_t nblocks;
};

/* One read transaction's bus time (request, response, both gaps, turnaround), microseconds. */
double mb_cost_read_us(const struct mb_cost *c, enum mb_func f, uint16_t count);
/* RTU cost model from line settings (bits_per_char: 11 for 8E1/8N2/8O1, 10 for 8N1). */
void mb_cost_rtu(struct mb_cost *c, uint32_t baud, unsigned bits_per_char, double turnaround_us);

int mb_plan_build(
    struct mb_plan *plan, const struct mb_point *pts, size_t n, const struct mb_plan_limits *lim);
/* Replace block bi by one block per register group of its points (no read-through). */
int mb_plan_split(struct mb_plan *plan, const struct mb_point *pts, size_t bi);
double mb_plan_cost_us(const struct mb_plan *plan, const struct mb_cost *c);
void mb_plan_free(struct mb_plan *plan);

#endif
