/*
 * bench_planner.c: bus time of a realistic site under three ways of polling it.
 *   - one request per point (what a naive poller does);
 *   - the agent's planner (agent/modbus/planner.c), with each profile's read limits;
 *   - the lower bound: each device table's registers read back to back in full 125-register
 *     requests with no gap bytes, as if the map were contiguous (RTU frame timing).
 * The site: 32 devices of four kinds (energy meters, temperature controllers, PLC I/O, drives),
 * 40 points each, mixed intervals. Layouts come from a fixed seed so runs compare.
 * Then the hole-aware case (issue 17): an 8-unit site (two of each kind) where three devices
 * refuse reads over some of the gaps in their maps (exception 2), polled with no hand tuning
 * (max_gap as the cost model says). Bus time per full scan at 9,600 baud:
 *   - before: a read over a hole is split into one request per point for good;
 *   - learning: each scan bisects refused reads and learns holes (planner.c mb_plan_learn),
 *     then plans again; printed scan by scan until nothing is refused;
 *   - the minimum: the plan made knowing every hole.
 * Prints a table; it never passes or fails on time.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "planner.h"

#define NDEV 32
#define NPTS 40

struct kind {
	const char *name;
	uint16_t max_regs;
	int32_t max_gap;
	uint64_t interval_ms;
};

static const struct kind kinds[4] = {
	{ "energy meter", 40, 0, 5000 },     /* SDM630-like: f32 inputs, rejects gap reads */
	{ "temperature ctl", 16, -1, 1000 }, /* Eurotherm-like: i16 holding, short reads */
	{ "PLC I/O", 125, -1, 1000 },        /* coils, discrete inputs, a few registers */
	{ "VFD drive", 125, -1, 10000 },     /* two register clusters */
};

static uint32_t seed = 12345;

static uint32_t
rnd(uint32_t n)
{
	seed = seed * 1103515245u + 12345u;
	return (seed >> 8) % n;
}

static struct mb_point
mk(enum mb_func f, uint16_t addr, enum mb_type t)
{
	struct mb_point p;

	memset(&p, 0, sizeof(p));
	p.func = f;
	p.type = t;
	p.address = addr;
	p.count = mb_type_regs(t);
	p.scale = 1;
	return p;
}

static void
make_device(int kind, struct mb_point *p)
{
	uint16_t a = 0;

	for (int i = 0; i < NPTS; i++) {
		switch (kind) {
		case 0: /* f32 every 2 registers with occasional holes of 2..12 */
			p[i] = mk(MB_FN_INPUT, a, MB_T_F32);
			a += 2 + (rnd(4) == 0 ? 2 * (1 + rnd(6)) : 0);
			break;
		case 1: /* mostly consecutive i16, a few far parameters */
			p[i] = mk(MB_FN_HOLDING,
			    (uint16_t)(i < 30 ? 1 + i + (i > 10) * 2 : 200 + 7 * i), MB_T_I16);
			break;
		case 2: /* 16 coils, 16 discrete inputs scattered over 256, 8 registers */
			if (i < 16)
				p[i] = mk(MB_FN_COIL, (uint16_t)(i * 16 + rnd(16)), MB_T_BOOL);
			else if (i < 32)
				p[i] = mk(
				    MB_FN_DISCRETE, (uint16_t)((i - 16) * 16 + rnd(16)), MB_T_BOOL);
			else
				p[i] = mk(MB_FN_HOLDING, (uint16_t)(100 + (i - 32) * 3), MB_T_U16);
			break;
		default: /* status cluster 0..30, parameters 1000..1400 sparse */
			p[i] = i < 20 ? mk(MB_FN_HOLDING, (uint16_t)i, MB_T_U16)
				      : mk(MB_FN_HOLDING,
					    (uint16_t)(1000 + (i - 20) * 20 + rnd(10)), MB_T_U32);
			break;
		}
	}
}

/* Lower bound: per table, the points' registers (or bits) in as few full requests as possible. */
static void
lower_bound(const struct mb_point *p, const struct mb_cost *c, double *us, unsigned *reqs)
{
	unsigned need[MB_FN_COUNT] = { 0 };

	for (int i = 0; i < NPTS; i++)
		need[p[i].func] += p[i].count;
	for (int f = 0; f < MB_FN_COUNT; f++) {
		unsigned per = mb_func_is_bits((enum mb_func)f) ? 2000 : 125;

		while (need[f] > 0) {
			unsigned n = need[f] < per ? need[f] : per;

			*us += mb_cost_read_us(c, (enum mb_func)f, (uint16_t)n);
			(*reqs)++;
			need[f] -= n;
		}
	}
}

struct totals {
	unsigned kind_reqs[4]; /* planner requests per device, by kind */
	unsigned reqs[3];
	double cycle_us[3]; /* one poll of every device */
	double load[3];     /* bus busy fraction at the devices' intervals */
	double plan_ns;
};

static void
run(uint32_t baud, struct totals *t, struct mb_point dev[NDEV][NPTS])
{
	memset(t, 0, sizeof(*t));
	for (int d = 0; d < NDEV; d++) {
		const struct kind *k = &kinds[d % 4];
		struct mb_plan_limits lim = { k->max_regs, 2000, k->max_gap, { 0 } };
		struct mb_plan plan;
		struct timespec a, b;
		double naive = 0, planned, lb = 0;
		unsigned lbr = 0;

		mb_cost_rtu(&lim.cost, baud, 11, 0);
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int r = 0; r < 100; r++) {
			mb_plan_build(&plan, dev[d], NPTS, &lim);
			if (r < 99)
				mb_plan_free(&plan);
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		t->plan_ns += ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 100.0;
		for (int i = 0; i < NPTS; i++)
			naive += mb_cost_read_us(&lim.cost, dev[d][i].func, dev[d][i].count);
		planned = mb_plan_cost_us(&plan, &lim.cost);
		lower_bound(dev[d], &lim.cost, &lb, &lbr);
		t->reqs[0] += NPTS;
		t->reqs[1] += (unsigned)plan.nblocks;
		t->kind_reqs[d % 4] = (unsigned)plan.nblocks;
		t->reqs[2] += lbr;
		t->cycle_us[0] += naive;
		t->cycle_us[1] += planned;
		t->cycle_us[2] += lb;
		t->load[0] += naive / (k->interval_ms * 1000.0);
		t->load[1] += planned / (k->interval_ms * 1000.0);
		t->load[2] += lb / (k->interval_ms * 1000.0);
		mb_plan_free(&plan);
	}
}

/* ---- hole-aware case ---- */

#define NSITE   8
#define MAXHOLE 64

struct site_dev {
	struct mb_point p[NPTS];
	struct mb_hole holes[MAXHOLE];
	size_t nholes;
	struct mb_plan_limits lim;
};

/* Devices 0, 3 and 4 refuse reads over about half of the gaps between their points. */
static void
make_site(struct site_dev *s, uint32_t baud)
{
	for (int d = 0; d < NSITE; d++) {
		const struct kind *k = &kinds[d % 4];
		struct site_dev *x = &s[d];

		memset(x, 0, sizeof(*x));
		make_device(d % 4, x->p);
		x->lim = (struct mb_plan_limits){ k->max_regs, 2000, -1, { 0 }, NULL, 0 };
		mb_cost_rtu(&x->lim.cost, baud, 11, 0);
		if (d != 0 && d != 3 && d != 4)
			continue;
		for (int i = 1; i < NPTS && x->nholes < MAXHOLE; i++) {
			const struct mb_point *a = &x->p[i - 1], *b = &x->p[i];
			uint32_t end = (uint32_t)a->address + a->count;

			if (a->func == b->func && b->address > end && rnd(2) == 0)
				x->holes[x->nholes++] = (struct mb_hole){ a->func, (uint16_t)end,
					(uint16_t)(b->address - end) };
		}
	}
}

static bool
refused(const struct site_dev *x, const struct mb_block *b)
{
	return mb_holes_hit(x->holes, x->nholes, b->func, b->start, (uint32_t)b->start + b->count);
}

/* An exception answer: request 8 characters, answer 5. */
static double
exc_cost_us(const struct mb_cost *c)
{
	return 13.0 * c->char_us + 2.0 * c->gap_us + c->turnaround_us;
}

/* One scan as bus.c runs it: refused reads are bisected (and retried at once). */
static double
learn_scan(struct site_dev *x, struct mb_plan *plan, struct mb_holes *h, int *nexc)
{
	struct mb_learning lg = { 0 };
	uint16_t mr = 0, mbits = 0;
	double us = 0;

	for (size_t bi = 0; bi < plan->nblocks; bi++) {
		if (!refused(x, &plan->blocks[bi])) {
			us += mb_cost_read_us(
			    &x->lim.cost, plan->blocks[bi].func, plan->blocks[bi].count);
			mb_learning_read_ok(&lg, &plan->blocks[bi]);
			continue;
		}
		us += exc_cost_us(&x->lim.cost);
		(*nexc)++;
		if (mb_plan_learn(plan, x->p, bi, 2, &lg, h, &mr, &mbits) & MB_LEARNT_SPLIT)
			bi--;
	}
	mb_learning_finish(&lg, h);
	mb_learning_free(&lg);
	return us;
}

/* Before: the first scan splits a refused read into one request per point, for good. */
static double
old_steady_us(struct site_dev *x, unsigned *reqs)
{
	struct mb_plan plan;
	double us;

	mb_plan_build(&plan, x->p, NPTS, &x->lim);
	for (size_t bi = 0; bi < plan.nblocks; bi++)
		if (refused(x, &plan.blocks[bi]))
			bi += (size_t)mb_plan_split(&plan, x->p, bi) - 1;
	us = mb_plan_cost_us(&plan, &x->lim.cost);
	*reqs += (unsigned)plan.nblocks;
	mb_plan_free(&plan);
	return us;
}

static void
hole_case(uint32_t baud)
{
	static struct site_dev site[NSITE];
	struct mb_plan plan[NSITE];
	struct mb_holes h[NSITE];
	double old = 0, min = 0, last = 0;
	unsigned old_reqs = 0, min_reqs = 0, reqs = 0, nh = 0;

	seed = 777;
	make_site(site, baud);
	for (int d = 0; d < NSITE; d++) {
		struct mb_plan_limits best = site[d].lim;
		struct mb_plan ideal;

		best.holes = site[d].holes;
		best.nholes = site[d].nholes;
		nh += (unsigned)site[d].nholes;
		mb_plan_build(&ideal, site[d].p, NPTS, &best);
		min += mb_plan_cost_us(&ideal, &best.cost);
		min_reqs += (unsigned)ideal.nblocks;
		mb_plan_free(&ideal);
		old += old_steady_us(&site[d], &old_reqs);
		memset(&h[d], 0, sizeof(h[d]));
		mb_plan_build(&plan[d], site[d].p, NPTS, &site[d].lim);
	}
	printf("hole-aware planning: %d units (two of each kind), %u holes in 3 of them, %u baud, "
	       "no max_gap\n",
	    NSITE, nh, baud);
	printf("  %-34s %10s %14s %10s\n", "", "requests", "bus ms/scan", "x minimum");
	printf("  %-34s %10u %14.1f %9.2fx\n", "before (split per point for good)", old_reqs,
	    old / 1000.0, old / min);
	for (int scan = 1; scan <= 6; scan++) {
		int nexc = 0;
		double us = 0;
		char label[64];

		reqs = 0;
		for (int d = 0; d < NSITE; d++) {
			struct mb_plan_limits l = site[d].lim;

			us += learn_scan(&site[d], &plan[d], &h[d], &nexc);
			reqs += (unsigned)plan[d].nblocks;
			l.holes = h[d].v;
			l.nholes = h[d].n;
			mb_plan_free(&plan[d]);
			mb_plan_build(&plan[d], site[d].p, NPTS, &l);
		}
		snprintf(label, sizeof(label), "learning: scan %d (%d refused)", scan, nexc);
		printf("  %-34s %10u %14.1f %9.2fx\n", label, reqs + (unsigned)nexc, us / 1000.0,
		    us / min);
		last = us;
		if (nexc == 0)
			break;
	}
	printf("  %-34s %10u %14.1f %9.2fx\n", "minimum (every hole known)", min_reqs, min / 1000.0,
	    1.0);
	printf("  after learning: %.2fx the minimum (before: %.2fx)\n\n", last / min, old / min);
	for (int d = 0; d < NSITE; d++) {
		mb_plan_free(&plan[d]);
		mb_holes_free(&h[d]);
	}
}

int
main(void)
{
	static struct mb_point dev[NDEV][NPTS];
	static const uint32_t bauds[] = { 9600, 115200 };
	static const char *const how[] = { "one request per point", "planner (coalesced)",
		"lower bound (RTU timing)" };

	for (int d = 0; d < NDEV; d++)
		make_device(d % 4, dev[d]);
	printf("site: %d devices x %d points (8 each of: energy meter 5 s, temperature controller "
	       "1 s, "
	       "PLC I/O 1 s, drive 10 s), 8E1 (11 bits/char), turnaround 0\n\n",
	    NDEV, NPTS);
	for (size_t b = 0; b < sizeof(bauds) / sizeof(bauds[0]); b++) {
		struct totals t;

		run(bauds[b], &t, dev);
		printf("%u baud\n", bauds[b]);
		printf("  %-26s %14s %16s %18s\n", "", "requests/cycle", "bus ms/cycle",
		    "bus load at intervals");
		for (int k = 0; k < 3; k++)
			printf("  %-26s %14u %16.1f %17.1f%%\n", how[k], t.reqs[k],
			    t.cycle_us[k] / 1000.0, 100.0 * t.load[k]);
		printf(
		    "  planner vs per-point: %.1fx fewer requests, %.1fx less bus time; planner is "
		    "%.0f%% above the lower bound; planning takes %.1f us per device\n",
		    (double)t.reqs[0] / t.reqs[1], t.cycle_us[0] / t.cycle_us[1],
		    100.0 * (t.cycle_us[1] / t.cycle_us[2] - 1.0), t.plan_ns / NDEV / 1000.0);
		printf("  planner requests per device:");
		for (int k = 0; k < 4; k++)
			printf(" %s %u (max %u regs%s)%s", kinds[k].name, t.kind_reqs[k],
			    kinds[k].max_regs, kinds[k].max_gap == 0 ? ", no gap reads" : "",
			    k < 3 ? "," : "\n\n");
	}
	hole_case(9600);
	return 0;
}
