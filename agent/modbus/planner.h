/*
 * planner.h: the coalescing read planner. Given a device's points, it finds the few requests
 * that read them all: points of one table are merged into a block while the block stays within
 * the request limits and reading through the gap costs less bus time than a request of its own.
 * The cost model is the RTU frame timing at the bus's line speed (or a fixed round trip for TCP).
 */
#ifndef EDGEGW_MB_PLANNER_H
#define EDGEGW_MB_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"

/* Bus time model. char_us = 0 models Modbus TCP: every request costs turnaround_us only. */
struct mb_cost {
	double char_us;       /* one character on the line (11 bits at the baud rate) */
	double gap_us;        /* inter-frame silence (3.5 characters, 1750 us above 19,200 baud) */
	double turnaround_us; /* device think time, or TCP round trip */
};

/* Holes (struct mb_hole, profile.h) declared in the profile and learnt from the device. */
struct mb_holes {
	struct mb_hole *v;
	size_t n, cap;
};

struct mb_plan_limits {
	uint16_t max_regs; /* per read: 1..125 */
	uint16_t max_bits; /* per read: 1..2000 */
	int32_t max_gap;   /* unread registers/bits read through at most; -1: cost decides */
	struct mb_cost cost;
	const struct mb_hole *holes; /* none may be read through */
	size_t nholes;
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
/* The same over the points with include[i] set (the points due in this poll). */
int mb_plan_build_subset(struct mb_plan *plan, const struct mb_point *pts, size_t n,
    const bool *include, const struct mb_plan_limits *lim);
/* Replace block bi by one block per register group of its points (no read-through). */
int mb_plan_split(struct mb_plan *plan, const struct mb_point *pts, size_t bi);
/*
 * Bisect block bi around a suspected hole: split it in two at its widest unread gap (where
 * holes are in real register maps), so each half is read on its own. The gap goes to *gap
 * (count 0 when the halves touch: then a point itself is refused). Returns 2, or -EINVAL when
 * the block is one register group and cannot be split.
 */
int
mb_plan_bisect(struct mb_plan *plan, const struct mb_point *pts, size_t bi, struct mb_hole *gap);
/*
 * Learning from exception answers during one poll. On exception 2 a block is bisected at its
 * widest gap; the gap is only a suspect until both halves read fine (then the refusal can only
 * have come from the gap, and it is learnt as a hole). A block of one register group that
 * gets exception 2 is a hole itself. On exception 3 the read length is halved and learnt.
 */
struct mb_suspect {
	struct mb_hole gap, left, right;
};
struct mb_learning {
	struct mb_suspect *sus;
	size_t nsus, capsus;
	struct mb_hole *ok; /* reads that succeeded while suspects were open */
	size_t nok, capok;
};

/* What one exception answer taught (mb_plan_learn): bits. */
enum {
	MB_LEARNT_SPLIT = 1, /* block bisected: read both halves now */
	MB_LEARNT_HOLE = 2,  /* a new hole in *holes */
	MB_LEARNT_LIMIT = 4  /* a lower read limit in *max_regs or *max_bits */
};
/* Exception exc (2 or 3) to block bi. *max_regs / *max_bits: the learnt limits (0: none).
 * Returns MB_LEARNT_ bits, 0 when it could not split (the points stay stale), or -ENOMEM. */
int mb_plan_learn(struct mb_plan *plan, const struct mb_point *pts, size_t bi, int exc,
    struct mb_learning *lg, struct mb_holes *holes, uint16_t *max_regs, uint16_t *max_bits);
/* A read that succeeded (block b) during the poll. */
int mb_learning_read_ok(struct mb_learning *lg, const struct mb_block *b);
/* End of the poll: suspects whose halves both read fine become holes. Returns the number of
 * new holes, or -ENOMEM; the learning starts over. */
int mb_learning_finish(struct mb_learning *lg, struct mb_holes *holes);
void mb_learning_free(struct mb_learning *lg);

double mb_plan_cost_us(const struct mb_plan *plan, const struct mb_cost *c);
void mb_plan_free(struct mb_plan *plan);

/* Add a hole, merged with those it touches; 1 when it covers something new, 0 when it was
 * known, -ENOMEM. */
int mb_holes_add(struct mb_holes *h, enum mb_func f, uint16_t start, uint16_t count);
/* Does [start, end) of table f touch a hole? */
bool mb_holes_hit(const struct mb_hole *v, size_t n, enum mb_func f, uint32_t start, uint32_t end);
/* Drop the holes that touch [start, start + count) of table f (that range just read fine: a
 * firmware update filled it). Returns how many were dropped. */
size_t mb_holes_forget(struct mb_holes *h, enum mb_func f, uint16_t start, uint16_t count);
void mb_holes_free(struct mb_holes *h);

#endif
