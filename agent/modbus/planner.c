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
	/* Never through a hole; a point that is itself a hole is read alone. */
	if (mb_holes_hit(
		lim->holes, lim->nholes, b->func, b->start, (uint32_t)b->start + new_count))
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
	return mb_plan_build_subset(plan, pts, n, NULL, lim);
}

int
mb_plan_build_subset(struct mb_plan *plan, const struct mb_point *pts, size_t n,
    const bool *include, const struct mb_plan_limits *lim)
{
	struct mb_block *cur = NULL;
	size_t m = 0;

	memset(plan, 0, sizeof(*plan));
	if (n == 0)
		return 0;
	plan->idx = calloc(n, sizeof(*plan->idx));
	plan->blocks = calloc(n, sizeof(*plan->blocks)); /* at most one block per point */
	if (plan->idx == NULL || plan->blocks == NULL) {
		mb_plan_free(plan);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (include == NULL || include[i])
			plan->idx[m++] = (uint32_t)i;
	plan->npoints = m;
	sort_points(pts, plan->idx, m);
	for (size_t i = 0; i < m; i++) {
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

/* The widest gap between consecutive register groups of block bi: the split goes after
 * point k (plan->idx index), returned; -1 when the block is one group. */
static long
widest_gap(const struct mb_plan *plan, const struct mb_point *pts, const struct mb_block *b,
    struct mb_hole *gap)
{
	uint32_t end = 0;
	long at = -1, mid = (long)b->first + (long)b->npts / 2;

	*gap = (struct mb_hole){ b->func, 0, 0 };
	for (uint32_t k = b->first; k < b->first + b->npts; k++) {
		const struct mb_point *p = &pts[plan->idx[k]];

		if (k > b->first && p->address >= end &&
		    (at < 0 || p->address - end > gap->count ||
			(p->address - end == gap->count && labs((long)k - mid) < labs(at - mid)))) {
			at = (long)k;
			*gap = (struct mb_hole){ b->func, (uint16_t)end,
				(uint16_t)(p->address - end) };
		}
		if ((uint32_t)p->address + p->count > end)
			end = (uint32_t)p->address + p->count;
	}
	return at;
}

static struct mb_block
sub_block(const struct mb_plan *plan, const struct mb_point *pts, uint32_t first, uint32_t n)
{
	const struct mb_point *p0 = &pts[plan->idx[first]];
	struct mb_block b = { p0->func, p0->address, p0->count, first, 1, 1 };

	for (uint32_t k = first + 1; k < first + n; k++)
		block_add(&b, &pts[plan->idx[k]]);
	return b;
}

int
mb_plan_bisect(struct mb_plan *plan, const struct mb_point *pts, size_t bi, struct mb_hole *gap)
{
	struct mb_block old, *nb;
	long at;

	if (bi >= plan->nblocks)
		return -EINVAL;
	old = plan->blocks[bi];
	at = widest_gap(plan, pts, &old, gap);
	if (at < 0)
		return -EINVAL;
	nb = realloc(plan->blocks, (plan->nblocks + 1) * sizeof(*nb));
	if (nb == NULL)
		return -ENOMEM;
	plan->blocks = nb;
	memmove(&nb[bi + 2], &nb[bi + 1], (plan->nblocks - bi - 1) * sizeof(*nb));
	nb[bi] = sub_block(plan, pts, old.first, (uint32_t)at - old.first);
	nb[bi + 1] = sub_block(plan, pts, (uint32_t)at, old.first + old.npts - (uint32_t)at);
	plan->nblocks++;
	return 2;
}

static int
range_push(struct mb_hole **v, size_t *n, size_t *cap, size_t sz, const void *item)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		void *nv = realloc(*v, c * sz);

		if (nv == NULL)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	memcpy((char *)*v + *n * sz, item, sz);
	(*n)++;
	return 0;
}

int
mb_plan_learn(struct mb_plan *plan, const struct mb_point *pts, size_t bi, int exc,
    struct mb_learning *lg, struct mb_holes *holes, uint16_t *max_regs, uint16_t *max_bits)
{
	struct mb_block old;
	struct mb_suspect s;
	uint16_t *lim;
	int rc;

	if (bi >= plan->nblocks || (exc != 2 && exc != 3))
		return 0;
	old = plan->blocks[bi];
	rc = mb_plan_bisect(plan, pts, bi, &s.gap);
	if (rc == -ENOMEM)
		return rc;
	if (rc != 2) { /* one register group */
		if (exc != 2)
			return 0;
		rc = mb_holes_add(holes, old.func, old.start, old.count);
		return rc < 0 ? rc : rc == 1 ? MB_LEARNT_HOLE : 0;
	}
	if (exc == 3) {
		/* Halve, unless this read was already over the learnt limit (a half of a split
		 * made before the limit was learnt): then it is only split. */
		lim = mb_func_is_bits(old.func) ? max_bits : max_regs;
		if (*lim != 0 && old.count > *lim)
			return MB_LEARNT_SPLIT;
		*lim = (uint16_t)((old.count + 1) / 2);
		return MB_LEARNT_SPLIT | MB_LEARNT_LIMIT;
	}
	if (s.gap.count == 0)
		return MB_LEARNT_SPLIT; /* the halves touch: one of the points is refused */
	s.left = (struct mb_hole){ old.func, plan->blocks[bi].start, plan->blocks[bi].count };
	s.right =
	    (struct mb_hole){ old.func, plan->blocks[bi + 1].start, plan->blocks[bi + 1].count };
	rc = range_push((struct mb_hole **)&lg->sus, &lg->nsus, &lg->capsus, sizeof(s), &s);
	return rc < 0 ? rc : MB_LEARNT_SPLIT;
}

int
mb_learning_read_ok(struct mb_learning *lg, const struct mb_block *b)
{
	struct mb_hole r = { b->func, b->start, b->count };

	if (lg->nsus == 0)
		return 0;
	return range_push(&lg->ok, &lg->nok, &lg->capok, sizeof(r), &r);
}

static bool
read_ok(const struct mb_learning *lg, const struct mb_hole *r)
{
	for (size_t i = 0; i < lg->nok; i++)
		if (lg->ok[i].func == r->func && lg->ok[i].start == r->start &&
		    lg->ok[i].count == r->count)
			return true;
	return false;
}

int
mb_learning_finish(struct mb_learning *lg, struct mb_holes *holes)
{
	int n = 0, rc = 0;

	for (size_t i = 0; i < lg->nsus && rc >= 0; i++) {
		const struct mb_suspect *s = &lg->sus[i];

		if (!read_ok(lg, &s->left) || !read_ok(lg, &s->right))
			continue;
		rc = mb_holes_add(holes, s->gap.func, s->gap.start, s->gap.count);
		n += rc == 1;
	}
	lg->nsus = 0;
	lg->nok = 0;
	return rc < 0 ? rc : n;
}

void
mb_learning_free(struct mb_learning *lg)
{
	free(lg->sus);
	free(lg->ok);
	memset(lg, 0, sizeof(*lg));
}

bool
mb_holes_hit(const struct mb_hole *v, size_t n, enum mb_func f, uint32_t start, uint32_t end)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].func == f && start < (uint32_t)v[i].start + v[i].count && v[i].start < end)
			return true;
	return false;
}

int
mb_holes_add(struct mb_holes *h, enum mb_func f, uint16_t start, uint16_t count)
{
	uint32_t s = start, e = (uint32_t)start + count;
	size_t j = 0;

	if (count == 0)
		return 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].func == f && s >= h->v[i].start &&
		    e <= (uint32_t)h->v[i].start + h->v[i].count)
			return 0;
	/* Merge every hole that touches the new one into it. */
	for (size_t i = 0; i < h->n; i++) {
		const struct mb_hole *o = &h->v[i];
		uint32_t os = o->start, oe = (uint32_t)o->start + o->count;

		if (o->func == f && os <= e && s <= oe) {
			s = os < s ? os : s;
			e = oe > e ? oe : e;
			continue;
		}
		h->v[j++] = *o;
	}
	h->n = j;
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 8;
		struct mb_hole *v = realloc(h->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	if (e - s > 65535)
		e = s + 65535;
	h->v[h->n++] = (struct mb_hole){ f, (uint16_t)s, (uint16_t)(e - s) };
	return 1;
}

size_t
mb_holes_forget(struct mb_holes *h, enum mb_func f, uint16_t start, uint16_t count)
{
	size_t j = 0, n = h->n;

	for (size_t i = 0; i < h->n; i++)
		if (!mb_holes_hit(&h->v[i], 1, f, start, (uint32_t)start + count))
			h->v[j++] = h->v[i];
	h->n = j;
	return n - j;
}

void
mb_holes_free(struct mb_holes *h)
{
	free(h->v);
	memset(h, 0, sizeof(*h));
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
