/*
 * planner.c: greedy coalescing over points sorted by address. A point joins the open block when
 * the merged read fits the limits and costs less than the open block and a separate read of the
 * point; otherwise it opens a new block. With the costs linear in bytes this is optimal for a
 * single table, and keeps the plan stable when the profile does not change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "planner.h"

double
mb_cost_read_us(const struct mb_cost *c, enum mb_func f, uint16_t count)
{
	/* Request: unit, function, address(2), count(2), CRC(2). Response: unit, function,
	 * byte count, data, CRC(2). Each frame is followed by a 3.5-character silence. */
	unsigned data = mb_func_is_bits(f) ? (count + 7u) / 8u : 2u * count;
	double chars = 8.0 + 5.0 + data;

	return chars * c->char_us + 2.0 * c->gap_us + c->turnaround_us;
}

void
mb_cost_rtu(struct mb_cost *c, uint32_t baud, unsigned bits_per_char, double turnaround_us)
{
	c->char_us = baud ? (double)bits_per_char * 1e6 / baud : 0.0;
	c->gap_us = baud > 19200 ? 1750.0 : 3.5 * c->char_us;
	c->turnaround_us = turnaround_us;
}

static bool
point_before(const struct mb_point *pts, uint32_t a, uint32_t b)
{
	const struct mb_point *x = &pts[a], *y = &pts[b];

	if (x->func != y->func)
		return x->func < y->func;
	if (x->address != y->address)
		return x->address < y->address;
	return a < b;
}

/* Insertion sort: profiles hold tens to hundreds of points, and it needs no global context. */
static void
sort_points(const struct mb_point *pts, uint32_t *idx, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint32_t v = idx[i];
		size_t j = i;

		for (; j > 0 && point_before(pts, v, idx[j - 1]); j--)
			idx[j] = idx[j - 1];
		idx[j] = v;
	}
}

static bool
can_join(const struct mb_block *b, const struct mb_point *p, const struct mb_plan_limits *lim)
{
	uint32_t end = (uint32_t)b->start + b->count;
	uint32_t pend = (uint32_t)p->address + p->count;
	uint32_t new_count = (pend > end ? pend : end) - b->start;
	uint16_t limit = mb_func_is_bits(b->func) ? lim->max_bits : lim->max_regs;
	int32_t gap = (int32_t)p->address - (int32_t)end;

	if (p->func != b->func || new_count > limit)
		return false;
	if (gap <= 0)
		return true;
	if (lim->max_gap >= 0 && gap > lim->max_gap)
		return false;
	return mb_cost_read_us(&lim->cost, b->func, (uint16_t)new_count) <
	    mb_cost_read_us(&lim->cost, b->func, b->count) +
	    mb_cost_read_us(&lim->cost, p->func, p->count);
}

static void
block_add(struct mb_block *b, const struct mb_point *p)
{
	uint32_t end = (uint32_t)b->start + b->count, pend = (uint32_t)p->address + p->count;

	if (pend > end)
		b->count = (uint16_t)(pend - b->start);
	b->npts++;
}

int
mb_plan_build(
    struct mb_plan *plan, const struct mb_point *pts, size_t n, const struct mb_plan_limits *lim)
{
	struct mb_block *cur = NULL;

	memset(plan, 0, sizeof(*plan));
	if (n == 0)
		return 0;
	plan->idx = calloc(n, sizeof(*plan->idx));
	plan->blocks = calloc(n, sizeof(*plan->blocks)); /* at most one block per point */
	if (plan->idx == NULL || plan->blocks == NULL) {
		mb_plan_free(plan);
		return -ENOMEM;
	}
	plan->npoints = n;
	for (size_t i = 0; i < n; i++)
		plan->idx[i] = (uint32_t)i;
	sort_points(pts, plan->idx, n);
	for (size_t i = 0; i < n; i++) {
		const struct mb_point *p = &pts[plan->idx[i]];

		if (cur != NULL && can_join(cur, p, lim)) {
			block_add(cur, p);
			continue;
		}
		cur = &plan->blocks[plan->nblocks++];
		*cur = (struct mb_block){ .func = p->func,
			.start = p->address,
			.count = p->count,
			.first = (uint32_t)i,
			.npts = 1 };
	}
	return 0;
}

int
mb_plan_split(struct mb_plan *plan, const struct mb_point *pts, size_t bi)
{
	struct mb_block old, sub[256];
	size_t nsub = 0;
	struct mb_block *nb;

	if (bi >= plan->nblocks)
		return -EINVAL;
	old = plan->blocks[bi];
	if (old.npts <= 1 || old.npts > 256)
		return -EINVAL;
	for (uint32_t k = old.first; k < old.first + old.npts; k++) {
		const struct mb_point *p = &pts[plan->idx[k]];
		struct mb_block *last = nsub ? &sub[nsub - 1] : NULL;

		/* Points sharing registers (flags of one status word) stay one read. */
		if (last != NULL && p->address < (uint32_t)last->start + last->count) {
			block_add(last, p);
			continue;
		}
		sub[nsub++] = (struct mb_block){ .func = p->func,
			.start = p->address,
			.count = p->count,
			.first = k,
			.npts = 1,
			.split = 1 };
	}
	if (nsub <= 1)
		return -EINVAL;
	nb = realloc(plan->blocks, (plan->nblocks + nsub - 1) * sizeof(*nb));
	if (nb == NULL)
		return -ENOMEM;
	plan->blocks = nb;
	memmove(&nb[bi + nsub], &nb[bi + 1], (plan->nblocks - bi - 1) * sizeof(*nb));
	memcpy(&nb[bi], sub, nsub * sizeof(*nb));
	plan->nblocks += nsub - 1;
	return (int)nsub;
}

double
mb_plan_cost_us(const struct mb_plan *plan, const struct mb_cost *c)
{
	double t = 0;

	for (size_t i = 0; i < plan->nblocks; i++)
		t += mb_cost_read_us(c, plan->blocks[i].func, plan->blocks[i].count);
	return t;
}

void
mb_plan_free(struct mb_plan *plan)
{
	free(plan->idx);
	free(plan->blocks);
	memset(plan, 0, sizeof(*plan));
}
