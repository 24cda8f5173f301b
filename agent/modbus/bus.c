/*
 * bus.c: the per-bus poller thread. One transaction at a time: it picks the device with the
 * earliest deadline (scheduler.c), runs that device's planned reads (planner.c) with timeouts
 * and retries, decodes the points (decode.c), decides what to publish (report.c) and queues the
 * messages for the main loop. Write jobs from the main loop go first. Between transactions it
 * keeps the silence the transport asks for (transport.h: the RTU 3.5 characters, since
 * libmodbus does not). Nothing here depends on whether the bus is RTU or TCP.
 */
#include <errno.h>
#include <modbus/modbus.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "bus.h"
#include "clock.h"
#include "decode.h"
#include "learnt.h"
#include "planner.h"
#include "report.h"
#include "scheduler.h"
#include "transport.h"
#include "log.h"

#define BUS_MAX_JOBS       64
#define BUS_DRAIN_QUIET_MS 30   /* silence that ends a drain after an error */
#define BUS_REOPEN_MIN_MS  500  /* first retry of a port that does not open */
#define BUS_RATES_MAX      8    /* poll rates per device (its interval, and points' own) */
#define BUS_PROBE_FIRST    16   /* polls before a learnt fact is first tried again */
#define BUS_PROBE_MAX      1024 /* the period doubles each time a probe confirms, up to this */

struct bus_dev {
	const struct agent_device_conf *conf;
	const struct mb_profile *prof;
	struct mb_plan plan;
	struct mb_point_state *st;
	char (*topics)[MB_TOPIC_OUT_MAX];
	bool *fresh; /* point read (or failed with an exception) this poll */
	struct agent_dev_stats stats;
	uint64_t backoff_ms; /* mirrors the scheduler for the stats reader (atomic) */
	uint32_t failing;
	bool answered;           /* something came back from it during this poll, good or bad */
	struct mb_learnt learnt; /* holes and read limits it taught us (learnt.h) */
	struct mb_learning lg;   /* suspects of this poll */
	uint64_t profile_hash;
	bool replan;          /* learnt something this poll: plan again after it */
	char state_path[512]; /* "" when the state is not kept */
	/* Poll rates: class 0 is the device's interval, the others points' own (interval: or
	 * group:). A poll reads the classes due then, planned together (plan_mask). */
	uint64_t rate_ms[BUS_RATES_MAX], rate_due_ms[BUS_RATES_MAX], poll_ms;
	size_t nrates;
	uint8_t *pt_rate;
	bool *due;
	uint32_t plan_mask;
	/* Probes: what was learnt can stop being true (a firmware update fills a hole, lifts a read
	 * limit, adds a table), and a limit learnt by halving is only a lower bound. Every
	 * probe_every polls one learnt fact is tried again (probe_begin); a probe that confirms
	 * it doubles the period, one that changes something starts it over. */
	uint32_t probe_every, probe_in;
	unsigned probe_next;      /* round robin over the facts */
	bool probing;             /* this poll's plan is a probe's */
	bool learnt_changed;      /* this poll changed d->learnt */
	uint16_t refused_len[2];  /* shortest read refused with exception 3: registers, bits */
	uint16_t probe_ok_len[2]; /* longest read over the learnt limit that worked (a probe) */
	unsigned wrong_unit_poll, other_bad_poll; /* bad answers of this poll, by kind */
	int exc_said; /* the exception (other than 1 to 3, which teach) its reads were said to
		       * get; 0 once a read works again (exc_told) */
};

struct write_job {
	STAILQ_ENTRY(write_job) link;
	size_t dev, point;
	uint64_t seq; /* its command spool record (0: in memory only) */
	struct mb_write_req req;
	struct mb_write_op op;
};

struct mb_bus {
	const struct agent_bus_conf *c;
	struct agent_msgq *q;
	char resp_topic[MB_TOPIC_MAX];
	struct mb_transport tr;
	struct bus_dev *devs;
	size_t ndevs;
	struct mb_sched sched;
	uint64_t last_io_us;
	pthread_t thr;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	STAILQ_HEAD(, write_job) jobs;
	size_t njobs;
	uint64_t started_us, busy_us, connect_errors;
	/* Bus fault: the port does not open (missing, unplugged) or the server is unreachable.
	 * Its devices are not charged with it; the bus retries the open on its own backoff. */
	bool fault;
	uint64_t faults, fault_since_ms, reopen_at_ms, reopen_backoff_ms;
	uint16_t regs[MODBUS_MAX_READ_REGISTERS];
	uint8_t bits[MODBUS_MAX_READ_BITS];
};

enum xfer {
	XFER_OK = 0,
	XFER_EXCEPTION,
	XFER_BAD,  /* the device answered, but every answer was bad (CRC, garbage, wrong unit) */
	XFER_COMM, /* no answer after the retries */
	XFER_BUS   /* the bus itself is down: nobody's fault on it */
};

/* What a device poll found. */
enum poll_result {
	POLL_OK = 0,
	POLL_NOISY,      /* it answers, with errors: not backed off as dead */
	POLL_DEAD,       /* not a single answer */
	POLL_WRONG_UNIT, /* every answer came from another unit id: backed off, nothing learnt */
	POLL_BUS         /* the bus is down */
};

/* What a failed attempt was. */
enum fail_class {
	FAIL_TIMEOUT = 0,
	FAIL_ANSWER, /* something answered: bad CRC, garbage, wrong unit */
	FAIL_LINK
};

/* One Modbus request: the function and its buffers. */
struct io {
	enum {
		IO_READ_BITS,
		IO_READ_INPUT_BITS,
		IO_READ_REGS,
		IO_READ_INPUT_REGS,
		IO_WRITE_BIT,
		IO_WRITE_REG,
		IO_WRITE_REGS,
		IO_WRITE_BITS,
		IO_MASK_WRITE
	} kind;
	uint16_t addr, count;
	uint16_t *regs;
	uint8_t *bits;
	int value;
	uint16_t and_mask, or_mask;
};

/* ---- connection ---- */

static void
bus_disconnect(struct mb_bus *b)
{
	mb_transport_close(&b->tr);
}

/* Enter the fault state once: one log line per fault, not one per device or per retry. */
static void
bus_fault(struct mb_bus *b, int rc)
{
	uint64_t now = clock_mono_ms();

	b->reopen_backoff_ms = b->fault ? b->reopen_backoff_ms * 2 : BUS_REOPEN_MIN_MS;
	if (b->reopen_backoff_ms > b->c->max_backoff_ms)
		b->reopen_backoff_ms = b->c->max_backoff_ms;
	b->reopen_at_ms = now + b->reopen_backoff_ms;
	if (b->fault)
		return;
	b->fault_since_ms = now;
	__atomic_fetch_add(&b->faults, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&b->fault, true, __ATOMIC_RELAXED);
	/* libmodbus gives up a TCP connect at the response timeout, leaving EINPROGRESS. */
	log_warnx("bus %s: fault: cannot open %s: %s; its %zu devices wait, retrying up to every "
		  "%llu ms",
	    b->c->name, mb_transport_where(&b->tr),
	    rc == -EINPROGRESS ? "connect timed out" : modbus_strerror(-rc), b->ndevs,
	    (unsigned long long)b->c->max_backoff_ms);
}

static int
bus_connect(struct mb_bus *b)
{
	int rc;

	if (b->tr.connected)
		return 0;
	rc = mb_transport_connect(&b->tr);
	if (rc != 0) {
		__atomic_fetch_add(&b->connect_errors, 1, __ATOMIC_RELAXED);
		if (b->tr.ops->open_fault(-rc))
			bus_fault(b, rc);
		return -EIO;
	}
	if (b->fault)
		log_warnx("bus %s: %s open again after %llu ms", b->c->name,
		    mb_transport_where(&b->tr),
		    (unsigned long long)(clock_mono_ms() - b->fault_since_ms));
	else
		log_info("bus %s: connected to %s", b->c->name, mb_transport_where(&b->tr));
	__atomic_store_n(&b->fault, false, __ATOMIC_RELAXED);
	return 0;
}

/* ---- one transaction ---- */

/* The silence before a request to d: the transport's frame gap, or the device's (else the
 * bus's) pause_between_requests when that is longer (devices that need more than 3.5
 * characters to turn around). */
static uint64_t
gap_before_us(const struct mb_bus *b, const struct bus_dev *d)
{
	uint64_t pause_us = (d->conf->pause_ms ? d->conf->pause_ms : b->c->pause_ms) * 1000u;

	return pause_us > b->tr.gap_us ? pause_us : b->tr.gap_us;
}

static void
frame_gap_wait(struct mb_bus *b, const struct bus_dev *d)
{
	uint64_t gap = gap_before_us(b, d), now = clock_mono_us(), until = b->last_io_us + gap;
	struct timespec ts;

	if (gap == 0 || now >= until)
		return;
	ts.tv_sec = (time_t)((until - now) / 1000000u);
	ts.tv_nsec = (long)((until - now) % 1000000u) * 1000;
	nanosleep(&ts, NULL);
}

static int
io_do(modbus_t *ctx, const struct io *op)
{
	switch (op->kind) {
	case IO_READ_BITS:
		return modbus_read_bits(ctx, op->addr, op->count, op->bits);
	case IO_READ_INPUT_BITS:
		return modbus_read_input_bits(ctx, op->addr, op->count, op->bits);
	case IO_READ_REGS:
		return modbus_read_registers(ctx, op->addr, op->count, op->regs);
	case IO_READ_INPUT_REGS:
		return modbus_read_input_registers(ctx, op->addr, op->count, op->regs);
	case IO_WRITE_BIT:
		return modbus_write_bit(ctx, op->addr, op->value);
	case IO_WRITE_REG:
		return modbus_write_register(ctx, op->addr, op->regs[0]);
	case IO_WRITE_REGS:
		return modbus_write_registers(ctx, op->addr, op->count, op->regs);
	case IO_WRITE_BITS:
		return modbus_write_bits(ctx, op->addr, op->count, op->bits);
	case IO_MASK_WRITE:
		return modbus_mask_write_register(ctx, op->addr, op->and_mask, op->or_mask);
	}
	return -1;
}

static void
count_exception(struct bus_dev *d, int code)
{
	enum agent_dev_counter c;

	switch (code) {
	case MODBUS_EXCEPTION_ILLEGAL_FUNCTION:
		c = AGENT_DC_exc_illegal_function;
		break;
	case MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS:
		c = AGENT_DC_exc_illegal_address;
		break;
	case MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE:
		c = AGENT_DC_exc_illegal_value;
		break;
	case MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE:
		c = AGENT_DC_exc_device_failure;
		break;
	case MODBUS_EXCEPTION_ACKNOWLEDGE:
	case MODBUS_EXCEPTION_SLAVE_OR_SERVER_BUSY:
		c = AGENT_DC_exc_busy;
		break;
	default:
		c = AGENT_DC_exc_other;
		break;
	}
	agent_stat_add(&d->stats, AGENT_DC_exceptions, 1);
	agent_stat_add(&d->stats, c, 1);
}

/* A read answered with an exception that teaches nothing (4 device failure, 5 acknowledge,
 * 6 busy, 8, 10, 11: the points go stale): said once per device until a read works again
 * (exc 0), counted each time (count_exception). */
static void
exc_told(struct mb_bus *b, struct bus_dev *d, const struct mb_block *blk, int exc)
{
	if (exc == d->exc_said)
		return;
	if (exc == 0)
		log_warnx("bus %s: device %s: reads answer again", b->c->name, d->conf->name);
	else
		log_warnx("bus %s: device %s: %s %u+%u answered with exception %d (%s): its points "
			  "are stale until a read works (said once)",
		    b->c->name, d->conf->name, mb_func_names[blk->func], blk->start, blk->count,
		    exc, modbus_strerror(MODBUS_ENOBASE + exc));
	d->exc_said = exc;
}

/*
 * After a failed attempt, wait for the line to fall quiet and drop what arrives: the rest of a
 * garbled frame, or an answer that comes after its timeout. RTU frames carry no transaction
 * id, so a late answer left in the buffer would pass for the answer to the next request and
 * every answer after it would be one off. Bounded by the device's timeout.
 */
static void
bus_drain(struct mb_bus *b, const struct bus_dev *d)
{
	mb_transport_drain(
	    &b->tr, b->tr.gap_us / 1000u * 4 + BUS_DRAIN_QUIET_MS, (uint32_t)d->conf->timeout_ms);
	b->last_io_us = clock_mono_us();
}

/* A failed attempt that is not an exception: count it by what it was, and get the line clean
 * for the next. A bad CRC or a wrong unit id is an answer, not a silence. */
static enum fail_class
count_comm_error(struct mb_bus *b, struct bus_dev *d, int err)
{
	enum fail_class fc = FAIL_ANSWER;

	if (b->tr.ops->classify(err) == MB_LINK_LOST) {
		agent_stat_add(&d->stats, AGENT_DC_link_errors, 1);
		bus_disconnect(b);
		return FAIL_LINK;
	}
	if (err == ETIMEDOUT) {
		agent_stat_add(&d->stats, AGENT_DC_timeouts, 1);
		fc = FAIL_TIMEOUT;
	} else if (err == EMBBADCRC) {
		agent_stat_add(&d->stats, AGENT_DC_crc_errors, 1);
	} else if (err == EMBBADSLAVE) {
		agent_stat_add(&d->stats, AGENT_DC_wrong_unit, 1);
		agent_stat_add(&d->stats, AGENT_DC_bad_frames, 1);
		d->wrong_unit_poll++;
	} else {
		agent_stat_add(&d->stats, AGENT_DC_garbage, 1);
		agent_stat_add(&d->stats, AGENT_DC_bad_frames, 1);
		d->other_bad_poll++;
	}
	if (err == EMBBADCRC)
		d->other_bad_poll++;
	if (fc == FAIL_ANSWER)
		d->answered = true;
	bus_drain(b, d);
	LOG_RATELIMITED(LOG_LVL_DEBUG, 10, "bus %s: device %s: %s", b->c->name, d->conf->name,
	    modbus_strerror(err));
	return fc;
}

/*
 * One request with retries. *retries is the timeout budget of the whole device poll, not of
 * this request: a device that stays silent gives up its turn after that many retries, so one
 * dead device holds the bus for at most (1 + retries) timeouts per poll. Bad answers (CRC,
 * garbage, wrong unit) cost a frame, not a timeout: each request may repeat retries times
 * after them without touching the poll's budget, so a noisy device keeps its values.
 */
static enum xfer
transact(struct mb_bus *b, struct bus_dev *d, const struct io *op, unsigned *retries, int *exc)
{
	uint32_t to = (uint32_t)d->conf->timeout_ms;
	unsigned bad = 0;

	for (unsigned t = 0;; t++) {
		uint64_t t0, t1;
		int rc, err;

		if (bus_connect(b) != 0)
			return b->fault ? XFER_BUS : XFER_COMM;
		frame_gap_wait(b, d);
		mb_transport_prepare(&b->tr, d->conf->unit_id, to);
		t0 = clock_mono_us();
		rc = io_do(b->tr.ctx, op);
		err = errno;
		t1 = clock_mono_us();
		b->last_io_us = t1;
		__atomic_fetch_add(&b->busy_us, t1 - t0, __ATOMIC_RELAXED);
		agent_stat_add(&d->stats, AGENT_DC_busy_us, t1 - t0);
		agent_stat_add(&d->stats, AGENT_DC_requests, 1);
		if (t > 0)
			agent_stat_add(&d->stats, AGENT_DC_retries, 1);
		if (rc >= 0) {
			agent_stat_add(&d->stats, AGENT_DC_responses, 1);
			d->answered = true;
			return XFER_OK;
		}
		if (err > MODBUS_ENOBASE && err <= EMBXGTAR) {
			*exc = err - MODBUS_ENOBASE;
			d->answered = true;
			count_exception(d, *exc);
			return XFER_EXCEPTION;
		}
		if (count_comm_error(b, d, err) == FAIL_ANSWER) {
			if (bad++ < d->conf->retries)
				continue;
			return XFER_BAD;
		}
		if (*retries == 0)
			return bad ? XFER_BAD : XFER_COMM;
		(*retries)--;
	}
}

/* ---- planning ---- */

/* What a probe plans with instead of what was learnt (dev_plan). */
struct dev_probe {
	uint16_t max_len[2]; /* read limits, registers and bits (0: the learnt ones) */
	long skip_hole;      /* a learnt hole read through (-1: none) */
	uint8_t add_funcs;   /* unsupported tables read anyway (bit per enum mb_func) */
};

/* The device's plan from its profile, its declared holes and what it taught us (pr: a
 * probe's changes to that, or NULL). */
static int
dev_plan(struct mb_bus *b, struct bus_dev *d, struct mb_plan *out, const struct dev_probe *pr)
{
	const struct mb_profile *p = d->prof;
	struct mb_holes all = { 0 };
	struct mb_plan_limits lim = { p->max_read_regs, p->max_read_bits, p->max_gap, { 0 }, NULL,
		0 };
	uint16_t lr = pr && pr->max_len[0] ? pr->max_len[0] : d->learnt.max_regs;
	uint16_t lb = pr && pr->max_len[1] ? pr->max_len[1] : d->learnt.max_bits;
	uint8_t no_func = (uint8_t)(d->learnt.no_func & ~(pr ? pr->add_funcs : 0u));
	int rc = 0;

	if (lr && lr < lim.max_regs)
		lim.max_regs = lr;
	if (lb && lb < lim.max_bits)
		lim.max_bits = lb;
	for (size_t i = 0; rc >= 0 && i < p->nholes; i++)
		rc = mb_holes_add(&all, p->holes[i].func, p->holes[i].start, p->holes[i].count);
	for (size_t i = 0; rc >= 0 && i < d->learnt.holes.n; i++)
		if (pr == NULL || (long)i != pr->skip_hole)
			rc = mb_holes_add(&all, d->learnt.holes.v[i].func,
			    d->learnt.holes.v[i].start, d->learnt.holes.v[i].count);
	lim.holes = all.v;
	lim.nholes = all.n;
	b->tr.ops->cost(b->c, &lim.cost);
	for (size_t i = 0; i < p->npoints; i++)
		d->due[i] = ((d->plan_mask >> d->pt_rate[i]) & 1u) &&
		    !(no_func & (1u << p->points[i].func));
	if (rc >= 0)
		rc = mb_plan_build_subset(out, p->points, p->npoints, d->due, &lim);
	mb_holes_free(&all);
	return rc < 0 ? rc : 0;
}

/* After a poll that learnt something: plan again and keep what was learnt. quiet: after a
 * probe that learnt nothing (back to the plan it interrupted: not a replan). */
static void
dev_replan(struct mb_bus *b, struct bus_dev *d, bool quiet)
{
	struct mb_plan np;
	size_t was = d->plan.nblocks;
	int rc;

	d->replan = false;
	if (dev_plan(b, d, &np, NULL) != 0)
		return; /* out of memory: keep the split plan */
	mb_plan_free(&d->plan);
	d->plan = np;
	if (quiet)
		return;
	agent_stat_add(&d->stats, AGENT_DC_replans, 1);
	log_info("bus %s: device %s: planned again with %zu learnt holes: %zu reads (%zu while "
		 "learning)",
	    b->c->name, d->conf->name, d->learnt.holes.n, d->plan.nblocks, was);
	if (d->state_path[0] &&
	    (rc = mb_learnt_save(d->state_path, d->profile_hash, &d->learnt)) != 0)
		LOG_RATELIMITED(LOG_LVL_WARN, 300, "bus %s: device %s: cannot keep %s: %s",
		    b->c->name, d->conf->name, d->state_path, strerror(-rc));
}

/* ---- polling ---- */

static void
block_io(struct mb_bus *b, const struct mb_block *blk, struct io *op)
{
	static const int kinds[] = { IO_READ_BITS, IO_READ_INPUT_BITS, IO_READ_REGS,
		IO_READ_INPUT_REGS };

	*op = (struct io){ .kind = kinds[blk->func],
		.addr = blk->start,
		.count = blk->count,
		.regs = b->regs,
		.bits = b->bits };
}

static void
block_decode(struct mb_bus *b, struct bus_dev *d, const struct mb_block *blk, uint64_t wall)
{
	for (uint32_t k = blk->first; k < blk->first + blk->npts; k++) {
		size_t pi = d->plan.idx[k];
		const struct mb_point *p = &d->prof->points[pi];
		struct mb_value v;

		if (mb_func_is_bits(p->func))
			mb_decode_bit(p, b->bits[p->address - blk->start], &v);
		else
			mb_decode_regs(p, &b->regs[p->address - blk->start], &v);
		mb_report_value(&d->st[pi], &v, wall);
		d->fresh[pi] = true;
	}
}

static void
block_fail(struct bus_dev *d, const struct mb_block *blk, enum mb_quality q)
{
	for (uint32_t k = blk->first; k < blk->first + blk->npts; k++) {
		mb_report_fail(&d->st[d->plan.idx[k]], q);
		d->fresh[d->plan.idx[k]] = true;
	}
}

/*
 * Exception 2 (illegal data address) or 3 (illegal data value: a read too long for it) to a
 * coalesced read: the planner bisects the block (read both halves now) and learns the hole or
 * the device's read limit (mb_plan_learn); the plan is made again after the poll.
 */
static bool
learn(struct mb_bus *b, struct bus_dev *d, size_t bi, int exc)
{
	struct mb_block old = d->plan.blocks[bi];
	size_t nh = d->learnt.holes.n;
	unsigned k = mb_func_is_bits(old.func);
	int r;

	if (exc == MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE &&
	    (d->refused_len[k] == 0 || old.count < d->refused_len[k]))
		d->refused_len[k] = old.count; /* the limit lies below: what a probe needs */
	r = mb_plan_learn(&d->plan, d->prof->points, bi, exc, &d->lg, &d->learnt.holes,
	    &d->learnt.max_regs, &d->learnt.max_bits);

	if (r <= 0)
		return false;
	d->replan = true;
	if (r & (MB_LEARNT_HOLE | MB_LEARNT_LIMIT))
		d->learnt_changed = true;
	if (r & MB_LEARNT_SPLIT)
		agent_stat_add(&d->stats, AGENT_DC_block_splits, 1);
	if (r & MB_LEARNT_HOLE) {
		agent_stat_add(&d->stats, AGENT_DC_holes_learnt, 1);
		log_warnx(
		    "bus %s: device %s: a %s read of %u at %u refused (exception 2): learnt a "
		    "hole (%zu known)%s",
		    b->c->name, d->conf->name, mb_func_names[old.func], old.count, old.start,
		    d->learnt.holes.n, nh == d->learnt.holes.n ? ", merged" : "");
	}
	if (r & MB_LEARNT_LIMIT) {
		agent_stat_add(&d->stats, AGENT_DC_limits_learnt, 1);
		log_warnx(
		    "bus %s: device %s: a %s read of %u refused (exception 3): reading at most "
		    "%u from now on",
		    b->c->name, d->conf->name, mb_func_names[old.func], old.count,
		    mb_func_is_bits(old.func) ? d->learnt.max_bits : d->learnt.max_regs);
	}
	return (r & MB_LEARNT_SPLIT) != 0;
}

/*
 * Exception 1 (illegal function) to a read: the device does not serve that table at all (a
 * meter without coils, a gateway that knows only FC3). Learnt (kept in the state file,
 * forgotten with a profile change), said once, and the table's points are left out of the plan
 * from the next poll on instead of being asked for, and refused, at every poll.
 */
/* Every point of table func goes `unsupported` (published with that quality). */
static size_t
mark_unsupported(struct bus_dev *d, enum mb_func func)
{
	size_t n = 0;

	for (size_t i = 0; i < d->prof->npoints; i++)
		if (d->prof->points[i].func == func) {
			mb_report_fail(&d->st[i], MB_Q_UNSUPPORTED);
			d->fresh[i] = true;
			n++;
		}
	return n;
}

static void
learn_no_func(struct mb_bus *b, struct bus_dev *d, const struct mb_block *blk)
{
	size_t n;

	if (d->learnt.no_func & (1u << blk->func))
		return; /* a probe that confirmed it */
	d->learnt.no_func |= (uint8_t)(1u << blk->func);
	d->replan = true;
	d->learnt_changed = true;
	n = mark_unsupported(d, blk->func);
	agent_stat_add(&d->stats, AGENT_DC_functions_unsupported, 1);
	log_warnx("bus %s: device %s: %s reads refused with exception 1 (illegal function): the "
		  "device does not serve that table; its %zu point(s) are 'unsupported' and not "
		  "read (learnt; tried again rarely; forgotten when the profile changes)",
	    b->c->name, d->conf->name, mb_func_names[blk->func], n);
}

/* A probe read a table learnt unsupported (a firmware update added it): read it again. */
static void
func_served(struct mb_bus *b, struct bus_dev *d, const struct mb_block *blk)
{
	if (!(d->learnt.no_func & (1u << blk->func)))
		return;
	d->learnt.no_func &= (uint8_t) ~(1u << blk->func);
	d->replan = true;
	d->learnt_changed = true;
	agent_stat_add(&d->stats, AGENT_DC_functions_forgotten, 1);
	log_warnx("bus %s: device %s: %s reads answer again: its points are read again", b->c->name,
	    d->conf->name, mb_func_names[blk->func]);
}

/* A read over a learnt hole worked (a refused point answers again after a firmware update):
 * forget the hole and plan again. */
static void
hole_filled(struct mb_bus *b, struct bus_dev *d, const struct mb_block *blk)
{
	size_t n;

	if (!mb_holes_hit(d->learnt.holes.v, d->learnt.holes.n, blk->func, blk->start,
		(uint32_t)blk->start + blk->count))
		return;
	n = mb_holes_forget(&d->learnt.holes, blk->func, blk->start, blk->count);
	agent_stat_add(&d->stats, AGENT_DC_holes_forgotten, n);
	d->replan = true;
	d->learnt_changed = true;
	log_warnx("bus %s: device %s: %s %u+%u answers again: forgot %zu learnt hole%s", b->c->name,
	    d->conf->name, mb_func_names[blk->func], blk->start, blk->count, n, n > 1 ? "s" : "");
}

/* End of a poll: a suspect gap whose two halves both read fine is a hole. */
static void
learn_finish(struct mb_bus *b, struct bus_dev *d)
{
	int n = mb_learning_finish(&d->lg, &d->learnt.holes);

	if (n <= 0)
		return;
	agent_stat_add(&d->stats, AGENT_DC_holes_learnt, (uint64_t)n);
	d->replan = true;
	d->learnt_changed = true;
	log_warnx("bus %s: device %s: learnt %d hole%s from illegal-address answers (%zu known)",
	    b->c->name, d->conf->name, n, n > 1 ? "s" : "", d->learnt.holes.n);
}

/* ---- probes: trying what was learnt again ---- */

/* Learnt facts a probe can try: the two read limits, the tables, the holes. */
static size_t
probe_facts(const struct bus_dev *d)
{
	return 2 + MB_FN_COUNT + d->learnt.holes.n;
}

/* A learnt hole that a profile point lies in is read (alone) every poll already. */
static bool
hole_has_point(const struct bus_dev *d, const struct mb_hole *h)
{
	for (size_t i = 0; i < d->prof->npoints; i++) {
		const struct mb_point *p = &d->prof->points[i];

		if (mb_holes_hit(h, 1, p->func, p->address, (uint32_t)p->address + p->count))
			return true;
	}
	return false;
}

/* The probe of fact k in *pr; false when there is nothing to try there. A limit is tried
 * half way between the longest read known to work and the shortest refused (binary search:
 * it stops when they meet). */
static bool
probe_for(const struct bus_dev *d, size_t k, struct dev_probe *pr)
{
	*pr = (struct dev_probe){ { 0, 0 }, -1, 0 };
	if (k < 2) {
		uint16_t good = k ? d->learnt.max_bits : d->learnt.max_regs;
		uint16_t top = k ? d->prof->max_read_bits : d->prof->max_read_regs;
		uint32_t bad = d->refused_len[k] ? d->refused_len[k] : (uint32_t)top + 1;

		if (good == 0 || (uint32_t)good + 1 >= bad)
			return false;
		pr->max_len[k] = (uint16_t)((good + bad) / 2);
		return true;
	}
	k -= 2;
	if (k < MB_FN_COUNT) {
		pr->add_funcs = (uint8_t)(1u << k);
		return (d->learnt.no_func & pr->add_funcs) != 0;
	}
	k -= MB_FN_COUNT;
	pr->skip_hole = (long)k;
	return !hole_has_point(d, &d->learnt.holes.v[k]);
}

/* Does the probe's plan try the fact at all (a read longer than the limit, a read of the
 * table, a read through the hole)? Not when no due point needs it. */
static bool
probe_tries(const struct bus_dev *d, const struct mb_plan *pl, const struct dev_probe *pr)
{
	for (size_t i = 0; i < pl->nblocks; i++) {
		const struct mb_block *blk = &pl->blocks[i];
		unsigned k = mb_func_is_bits(blk->func);
		uint16_t good = k ? d->learnt.max_bits : d->learnt.max_regs;

		if ((pr->max_len[k] && blk->count > good) || (pr->add_funcs & (1u << blk->func)))
			return true;
		if (pr->skip_hole >= 0 &&
		    mb_holes_hit(&d->learnt.holes.v[pr->skip_hole], 1, blk->func, blk->start,
			(uint32_t)blk->start + blk->count))
			return true;
	}
	return false;
}

/* Every probe_every polls: this poll reads with one learnt fact left out (the next one, round
 * robin, that changes the plan). */
static void
probe_begin(struct mb_bus *b, struct bus_dev *d)
{
	size_t n = probe_facts(d);

	if (d->probe_in > 1) {
		d->probe_in--;
		return;
	}
	d->probe_in = d->probe_every;
	for (size_t i = 0; i < n; i++) {
		size_t k = (d->probe_next + i) % n;
		struct dev_probe pr;
		struct mb_plan np;

		if (!probe_for(d, k, &pr) || dev_plan(b, d, &np, &pr) != 0)
			continue;
		if (!probe_tries(d, &np, &pr)) {
			mb_plan_free(&np);
			continue;
		}
		mb_plan_free(&d->plan);
		d->plan = np;
		d->probing = true;
		d->probe_next = (unsigned)(k + 1);
		d->probe_ok_len[0] = d->probe_ok_len[1] = 0;
		agent_stat_add(&d->stats, AGENT_DC_probes, 1);
		LOG_RATELIMITED(LOG_LVL_DEBUG, 10, "bus %s: device %s: probe: %zu reads",
		    b->c->name, d->conf->name, d->plan.nblocks);
		return;
	}
}

/* A read of a probe worked: a table learnt unsupported answers, a read over the limit. */
static void
probe_read_ok(struct mb_bus *b, struct bus_dev *d, const struct mb_block *blk)
{
	unsigned k = mb_func_is_bits(blk->func);
	uint16_t good = k ? d->learnt.max_bits : d->learnt.max_regs;

	func_served(b, d, blk);
	if (good && blk->count > good && blk->count > d->probe_ok_len[k])
		d->probe_ok_len[k] = blk->count;
}

/* After a probe: raise the limits that longer reads proved too low; then the device's own
 * plan again. A probe that changed nothing makes the next one twice as far away. */
static void
probe_end(struct mb_bus *b, struct bus_dev *d)
{
	d->probing = false;
	for (unsigned k = 0; k < 2; k++) {
		uint16_t *lim = k ? &d->learnt.max_bits : &d->learnt.max_regs;
		uint16_t top = k ? d->prof->max_read_bits : d->prof->max_read_regs, was = *lim;

		if (d->probe_ok_len[k] <= *lim)
			continue;
		*lim = d->probe_ok_len[k] >= top ? 0 : d->probe_ok_len[k];
		d->learnt_changed = true;
		agent_stat_add(&d->stats, AGENT_DC_limits_raised, 1);
		log_warnx("bus %s: device %s: a %s read of %u worked: read limit raised from %u to "
			  "%u%s",
		    b->c->name, d->conf->name, k ? "bit" : "register", d->probe_ok_len[k], was,
		    *lim ? *lim : top, *lim ? "" : " (the profile's)");
	}
	if (d->learnt_changed) {
		d->replan = true;
		return;
	}
	d->probe_every = d->probe_every * 2 > BUS_PROBE_MAX ? BUS_PROBE_MAX : d->probe_every * 2;
	d->probe_in = d->probe_every;
	dev_replan(b, d, true);
}

static void
fail_unread(struct bus_dev *d, enum mb_quality q)
{
	for (size_t k = 0; k < d->plan.npoints; k++)
		if (!d->fresh[d->plan.idx[k]])
			mb_report_fail(&d->st[d->plan.idx[k]], q);
}

/*
 * The poll rates due now, and what is due within half the shortest one (read now rather than
 * in a poll of its own a moment later): the planner coalesces them into one set of reads.
 */
static void
rates_due(struct mb_bus *b, struct bus_dev *d, uint64_t now_ms)
{
	uint32_t mask = 0;
	struct mb_plan np;

	for (size_t r = 0; r < d->nrates; r++)
		if (d->rate_due_ms[r] <= now_ms + d->poll_ms / 2)
			mask |= 1u << r;
	if (mask == 0)
		mask = 1; /* polled early (a recovered device): its own interval */
	if (mask == d->plan_mask)
		return;
	d->plan_mask = mask;
	if (dev_plan(b, d, &np, NULL) == 0) {
		mb_plan_free(&d->plan);
		d->plan = np;
	}
}

static void
rates_done(struct bus_dev *d, uint64_t now_ms)
{
	for (size_t r = 0; r < d->nrates; r++) {
		if (!((d->plan_mask >> r) & 1u))
			continue;
		d->rate_due_ms[r] += d->rate_ms[r];
		if (d->rate_due_ms[r] <= now_ms)
			d->rate_due_ms[r] = now_ms + d->rate_ms[r];
	}
}

/* Poll every block of a device. A block whose answers were all bad fails alone; a silence
 * after the retries ends the poll (the device is dead, or it went quiet mid-poll). */
static enum poll_result
poll_device(struct mb_bus *b, struct bus_dev *d, bool probe)
{
	unsigned retries = probe ? 0 : d->conf->retries;
	bool noisy = false, heard = false;

	memset(d->fresh, 0, d->prof->npoints * sizeof(*d->fresh));
	d->answered = false;
	d->wrong_unit_poll = d->other_bad_poll = 0;
	for (size_t bi = 0; bi < d->plan.nblocks && !__atomic_load_n(&b->stop, __ATOMIC_RELAXED);
	     bi++) {
		const struct mb_block *blk = &d->plan.blocks[bi];
		struct io op;
		int exc = 0;

		block_io(b, blk, &op);
		switch (transact(b, d, &op, &retries, &exc)) {
		case XFER_OK:
			heard = true;
			if (d->exc_said != 0)
				exc_told(b, d, blk, 0);
			block_decode(b, d, blk, clock_wall_ms());
			mb_learning_read_ok(&d->lg, blk);
			hole_filled(b, d, blk);
			if (d->probing)
				probe_read_ok(b, d, blk);
			break;
		case XFER_EXCEPTION:
			heard = true;
			if (exc == MODBUS_EXCEPTION_ILLEGAL_FUNCTION && blk->func < MB_FN_COUNT)
				learn_no_func(b, d, blk);
			if ((exc == MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS ||
				exc == MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE) &&
			    learn(b, d, bi, exc)) {
				bi--; /* read the first of the new blocks now */
				break;
			}
			if (exc > MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE)
				exc_told(b, d, blk, exc);
			block_fail(d, blk,
			    exc == MODBUS_EXCEPTION_ILLEGAL_FUNCTION ? MB_Q_UNSUPPORTED
								     : MB_Q_STALE);
			break;
		case XFER_BAD:
			if (!heard && d->other_bad_poll == 0) {
				/* Nothing but answers from another unit id: not this device
				 * answering badly, and nothing to learn from. One read's worth
				 * of frames per poll, then backed off like a silent device. */
				fail_unread(d, MB_Q_COMM_FAILURE);
				return POLL_WRONG_UNIT;
			}
			block_fail(d, blk, MB_Q_COMM_FAILURE);
			noisy = true;
			break;
		case XFER_COMM:
			fail_unread(d, MB_Q_COMM_FAILURE);
			return d->answered ? POLL_NOISY : POLL_DEAD;
		case XFER_BUS:
			fail_unread(d, MB_Q_COMM_FAILURE);
			return POLL_BUS;
		}
		if (probe && d->answered) { /* it answered the probe: the rest is a normal poll */
			probe = false;
			retries = d->conf->retries;
		}
	}
	return noisy ? POLL_NOISY : POLL_OK;
}

static void
log_noisy(struct mb_bus *b, struct bus_dev *d)
{
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "bus %s: device %s (unit %u) answers, with errors: %llu bad CRC, %llu wrong unit, %llu "
	    "garbage, %llu timeouts so far",
	    b->c->name, d->conf->name, d->conf->unit_id,
	    (unsigned long long)agent_stat_get(&d->stats, AGENT_DC_crc_errors),
	    (unsigned long long)agent_stat_get(&d->stats, AGENT_DC_wrong_unit),
	    (unsigned long long)agent_stat_get(&d->stats, AGENT_DC_garbage),
	    (unsigned long long)agent_stat_get(&d->stats, AGENT_DC_timeouts));
}

static void
publish_point(struct mb_bus *b, struct bus_dev *d, size_t pi, uint64_t mono)
{
	const struct mb_point *p = &d->prof->points[pi];
	char msg[1024];
	int n;

	if (!mb_report_due(p, &d->st[pi], mono))
		return;
	n = mb_report_format(p, &d->st[pi], d->conf->name, msg, sizeof(msg));
	if (n < 0)
		return;
	if (agent_msgq_push(b->q, d->topics[pi], msg, (size_t)n, p->qos, false) == 0)
		agent_stat_add(&d->stats, AGENT_DC_published, 1);
	mb_report_mark(&d->st[pi], mono);
}

static void
publish_device(struct mb_bus *b, struct bus_dev *d)
{
	uint64_t mono = clock_mono_ms();

	for (size_t i = 0; i < d->prof->npoints; i++)
		publish_point(b, d, i, mono);
}

static void
poll_one(struct mb_bus *b, size_t di, uint64_t now_ms)
{
	struct bus_dev *d = &b->devs[di];
	bool was_failing = mb_sched_dead(&b->sched, di), ok;
	enum poll_result r;
	uint64_t late;

	agent_stat_add(&d->stats, AGENT_DC_polls, 1);
	if (d->nrates > 1)
		rates_due(b, d, clock_mono_ms());
	d->learnt_changed = false;
	if (!was_failing)
		probe_begin(b, d);
	r = poll_device(b, d, was_failing);
	if (d->nrates > 1 && r != POLL_BUS && r != POLL_DEAD && r != POLL_WRONG_UNIT)
		rates_done(d, clock_mono_ms());
	learn_finish(b, d);
	if (d->probing)
		probe_end(b, d);
	if (d->learnt_changed) /* learning again: the next probe comes soon */
		d->probe_every = d->probe_in = BUS_PROBE_FIRST;
	if (d->replan)
		dev_replan(b, d, false);
	if (r == POLL_BUS) { /* not this device's fault: no backoff, no failure of its own */
		agent_stat_add(&d->stats, AGENT_DC_bus_fault_polls, 1);
		mb_sched_done(&b->sched, di, !was_failing, now_ms, clock_mono_ms());
		publish_device(b, d);
		return;
	}
	ok = r != POLL_DEAD && r != POLL_WRONG_UNIT;
	late = mb_sched_done(&b->sched, di, ok, now_ms, clock_mono_ms());
	agent_stat_add(&d->stats, AGENT_DC_lateness_ms_sum, late);
	agent_stat_max(&d->stats, AGENT_DC_lateness_ms_max, late);
	if (late >= d->conf->interval_ms && !was_failing)
		agent_stat_add(&d->stats, AGENT_DC_late_polls, 1);
	if (r == POLL_DEAD)
		agent_stat_add(&d->stats, AGENT_DC_poll_failures, 1);
	if (r == POLL_WRONG_UNIT)
		agent_stat_add(&d->stats, AGENT_DC_wrong_unit_polls, 1);
	if (r == POLL_NOISY) {
		agent_stat_add(&d->stats, AGENT_DC_noisy_polls, 1);
		log_noisy(b, d);
	}
	if (ok != !was_failing)
		log_warnx("bus %s: device %s (unit %u) %s", b->c->name, d->conf->name,
		    d->conf->unit_id,
		    ok                         ? "answers again"
			: r == POLL_WRONG_UNIT ? "answers only as another unit id (is its unit_id "
						 "right?); backing off"
					       : "does not answer; backing off");
	__atomic_store_n(&d->failing, !ok, __ATOMIC_RELAXED);
	__atomic_store_n(&d->backoff_ms, b->sched.devs[di].backoff_ms, __ATOMIC_RELAXED);
	publish_device(b, d);
}

/* ---- writes ---- */

static void
respond(struct mb_bus *b, const struct write_job *j, bool ok, const char *reason, const char *val)
{
	char msg[MB_WRITE_RESPONSE_MAX];
	int n = mb_write_response(msg, sizeof(msg), &j->req, ok, reason, val);
	bool send = n > 0 && b->resp_topic[0];

	/* a spooled command is released by the loop once its response is submitted: it goes with
	 * one, or with none to send */
	if (j->seq != 0)
		agent_msgq_push_cmd(
		    b->q, send ? b->resp_topic : "", msg, send ? (size_t)n : 0, j->seq);
	else if (send)
		agent_msgq_push(b->q, b->resp_topic, msg, (size_t)n, 1, false);
}

/* The write request for a job (a bit point's read-modify-write: the write after the read). */
static void
write_io(const struct write_job *j, struct io *op, uint16_t *regs, uint8_t *bits)
{
	static const int kinds[] = { [MB_WR_COIL] = IO_WRITE_BIT,
		[MB_WR_COILS] = IO_WRITE_BITS,
		[MB_WR_REG] = IO_WRITE_REG,
		[MB_WR_REGS] = IO_WRITE_REGS,
		[MB_WR_MASK] = IO_MASK_WRITE,
		[MB_WR_RMW] = IO_WRITE_REG };

	memcpy(regs, j->op.regs, sizeof(j->op.regs));
	bits[0] = j->op.coil;
	*op = (struct io){ .kind = kinds[j->op.how],
		.addr = j->op.address,
		.count = j->op.count,
		.regs = regs,
		.bits = bits,
		.value = j->op.coil,
		.and_mask = j->op.and_mask,
		.or_mask = j->op.or_mask };
	if (j->op.how == MB_WR_RMW && j->op.rmw_multiple)
		op->kind = IO_WRITE_REGS;
}

/* A bit point by read-modify-write: read its register and set or clear the bit in it. Another
 * writer between the read and the write is lost: FC22 (bit_write: mask) has no such window. */
static enum xfer
rmw_read(struct mb_bus *b, struct bus_dev *d, struct write_job *j, uint16_t *reg, int *exc)
{
	struct io rd = { .kind = IO_READ_REGS, .addr = j->op.address, .count = 1, .regs = reg };
	unsigned retries = d->conf->retries;
	enum xfer x = transact(b, d, &rd, &retries, exc);

	if (x == XFER_OK)
		*reg = (uint16_t)((*reg & j->op.and_mask) | j->op.or_mask);
	return x;
}

/* Read the point back; true when it holds what was written. */
static bool
read_back(struct mb_bus *b, struct bus_dev *d, const struct write_job *j, int *exc, bool *same)
{
	const struct mb_point *p = &d->prof->points[j->point];
	struct io op = { .kind = p->func == MB_FN_COIL ? IO_READ_BITS : IO_READ_REGS,
		.addr = p->address,
		.count = p->count,
		.regs = b->regs,
		.bits = b->bits };
	unsigned retries = d->conf->retries;

	if (transact(b, d, &op, &retries, exc) != XFER_OK)
		return false;
	if (p->func == MB_FN_COIL)
		*same = (b->bits[0] != 0) == j->op.coil;
	else if (p->type == MB_T_BIT)
		*same = ((b->regs[0] >> p->bit) & 1u) == (j->op.coil ? 1u : 0u);
	else
		*same = memcmp(b->regs, j->op.regs, p->count * sizeof(uint16_t)) == 0;
	return true;
}

static void
run_write(struct mb_bus *b, struct write_job *j)
{
	struct bus_dev *d = &b->devs[j->dev];
	const struct mb_point *p = &d->prof->points[j->point];
	uint16_t regs[MB_STR_REGS_MAX];
	uint8_t bits[1];
	struct io op;
	struct mb_value v;
	char val[160], why[200];
	unsigned retries;
	int exc = 0;
	bool same = false;
	enum xfer x = XFER_OK;

	agent_stat_add(&d->stats, AGENT_DC_writes, 1);
	write_io(j, &op, regs, bits);
	if (j->op.how == MB_WR_RMW)
		x = rmw_read(b, d, j, &regs[0], &exc);
	/* a device whose last poll failed gets one try, as its polls do (mb_sched_dead): each
	 * retry of a write to a silent device is another timeout with the bus held */
	retries = mb_sched_dead(&b->sched, j->dev) ? 0 : d->conf->retries;
	if (x == XFER_OK)
		x = transact(b, d, &op, &retries, &exc);
	if (x != XFER_OK) {
		snprintf(why, sizeof(why), "write failed: %s",
		    exc                 ? modbus_strerror(MODBUS_ENOBASE + exc)
			: x == XFER_BUS ? "the bus is down"
					: "no answer");
		agent_stat_add(&d->stats, AGENT_DC_writes_failed, 1);
		respond(b, j, false, why, NULL);
		return;
	}
	if (!read_back(b, d, j, &exc, &same)) {
		agent_stat_add(&d->stats, AGENT_DC_writes_failed, 1);
		respond(b, j, false, "written, but the read-back failed", NULL);
		return;
	}
	if (p->func == MB_FN_COIL)
		mb_decode_bit(p, b->bits[0], &v);
	else
		mb_decode_regs(p, b->regs, &v);
	mb_report_value(&d->st[j->point], &v, clock_wall_ms());
	mb_value_json(p, &v, val, sizeof(val));
	if (!same)
		agent_stat_add(&d->stats, AGENT_DC_writes_failed, 1);
	respond(b, j, same, same ? NULL : "read-back differs from the value written", val);
	publish_point(b, d, j->point, clock_mono_ms());
}

/* ---- thread ---- */

static struct write_job *
take_job(struct mb_bus *b)
{
	struct write_job *j = STAILQ_FIRST(&b->jobs);

	if (j != NULL) {
		STAILQ_REMOVE_HEAD(&b->jobs, link);
		b->njobs--;
	}
	return j;
}

static void
wait_until(struct mb_bus *b, uint64_t wait_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(wait_ms / 1000);
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (!b->stop && STAILQ_EMPTY(&b->jobs))
		pthread_cond_timedwait(&b->cond, &b->lock, &ts);
}

static void *
bus_main(void *arg)
{
	struct mb_bus *b = arg;
	bool wrote = false;

	pthread_mutex_lock(&b->lock);
	while (!b->stop) {
		struct write_job *j;
		uint64_t now = clock_mono_ms(), wait = 0;
		bool down = b->fault && now < b->reopen_at_ms;
		int di = down ? -1 : mb_sched_next(&b->sched, now, &wait);

		/* Writes go ahead of polls, but a poll that is due goes between two writes: a
		 * stream of commands to a device that does not answer (each write a timeout)
		 * stopped the polling of every device on the bus for as long as it lasted. */
		if (!(wrote && di >= 0) && (j = take_job(b)) != NULL) {
			wrote = true;
			pthread_mutex_unlock(&b->lock);
			run_write(b, j);
			free(j);
			pthread_mutex_lock(&b->lock);
			continue;
		}
		wrote = false;
		if (down) {
			wait_until(b, b->reopen_at_ms - now);
			continue;
		}
		if (di < 0) {
			wait_until(b, wait);
			continue;
		}
		pthread_mutex_unlock(&b->lock);
		poll_one(b, (size_t)di, now);
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* ---- setup ---- */

static void
dev_load_learnt(struct mb_bus *b, struct bus_dev *d)
{
	int rc;

	d->profile_hash = mb_profile_hash(d->prof);
	if (b->c->state_dir[0] == '\0' ||
	    mb_learnt_path(d->state_path, sizeof(d->state_path), b->c->state_dir, b->c->name,
		d->conf->name) != 0) {
		d->state_path[0] = '\0';
		return;
	}
	rc = mb_learnt_load(d->state_path, d->profile_hash, &d->learnt);
	if (rc == 0)
		log_info("bus %s: device %s: %zu holes%s learnt before (%s)", b->c->name,
		    d->conf->name, d->learnt.holes.n, d->learnt.max_regs ? " and a read limit" : "",
		    d->state_path);
	else if (rc != -ENOENT)
		log_warnx("bus %s: device %s: %s does not parse; learning again", b->c->name,
		    d->conf->name, d->state_path);
}

/* Class 0: the device's interval; one class per other interval its points have. */
static int
dev_rates(struct mb_bus *b, struct bus_dev *d)
{
	const struct mb_profile *p = d->prof;
	uint64_t now = clock_mono_ms();

	d->rate_ms[0] = d->conf->interval_ms;
	d->nrates = 1;
	for (size_t i = 0; i < p->npoints; i++) {
		uint64_t iv = p->points[i].interval_ms ? p->points[i].interval_ms : d->rate_ms[0];
		size_t r = 0;

		while (r < d->nrates && d->rate_ms[r] != iv)
			r++;
		if (r == d->nrates) {
			if (r == BUS_RATES_MAX) {
				log_err("bus %s: device %s: more than %d poll rates", b->c->name,
				    d->conf->name, BUS_RATES_MAX);
				return -EINVAL;
			}
			d->rate_ms[d->nrates++] = iv;
		}
		d->pt_rate[i] = (uint8_t)r;
	}
	d->poll_ms = d->rate_ms[0];
	for (size_t r = 0; r < d->nrates; r++) {
		d->rate_due_ms[r] = now;
		if (d->rate_ms[r] < d->poll_ms)
			d->poll_ms = d->rate_ms[r];
	}
	d->plan_mask = (1u << d->nrates) - 1u; /* the first poll reads everything */
	return 0;
}

static int
dev_init(
    struct mb_bus *b, struct bus_dev *d, const struct agent_device_conf *dc, const char *prefix)
{
	const struct mb_profile *p = dc->profile;

	d->conf = dc;
	d->prof = p;
	dev_load_learnt(b, d);
	d->st = calloc(p->npoints, sizeof(*d->st));
	d->topics = calloc(p->npoints, sizeof(*d->topics));
	d->fresh = calloc(p->npoints, sizeof(*d->fresh));
	d->due = calloc(p->npoints, sizeof(*d->due));
	d->pt_rate = calloc(p->npoints, sizeof(*d->pt_rate));
	if (d->st == NULL || d->topics == NULL || d->fresh == NULL || d->due == NULL ||
	    d->pt_rate == NULL)
		return -ENOMEM;
	if (dev_rates(b, d) != 0)
		return -EINVAL;
	if (dev_plan(b, d, &d->plan, NULL) != 0)
		return -ENOMEM;
	d->probe_every = d->probe_in = BUS_PROBE_FIRST;
	for (int f = 0; f < MB_FN_COUNT; f++)
		if (d->learnt.no_func & (1u << f))
			mark_unsupported(d, (enum mb_func)f);
	for (size_t i = 0; i < p->npoints; i++) {
		struct mb_topic_vars v = { prefix, b->c->name, dc->name, p->points[i].name, p->name,
			dc->unit_id };

		if (mb_topic_expand(p->points[i].topic, &v, d->topics[i], sizeof(d->topics[i])) <
		    0) {
			log_err("bus %s: device %s: point %s: bad topic template '%s'", b->c->name,
			    dc->name, p->points[i].name, p->points[i].topic);
			return -EINVAL;
		}
	}
	log_info("bus %s: device %s (unit %u, profile %s): %zu points in %zu reads every %llu ms",
	    b->c->name, dc->name, dc->unit_id, p->name, p->npoints, d->plan.nblocks,
	    (unsigned long long)dc->interval_ms);
	return 0;
}

/* The thread waits for deadlines on the monotonic clock, like the scheduler. */
static void
bus_sync_init(struct mb_bus *b)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
}

int
mb_bus_create(struct mb_bus **out, const struct agent_bus_conf *c, const char *prefix,
    const char *resp_topic, struct agent_msgq *q)
{
	struct mb_bus *b = calloc(1, sizeof(*b));
	uint64_t *iv = calloc(c->ndevs, sizeof(*iv));
	int rc = b && iv ? 0 : -ENOMEM;

	if (rc == 0) {
		b->c = c;
		b->q = q;
		snprintf(b->resp_topic, sizeof(b->resp_topic), "%s", resp_topic ? resp_topic : "");
		bus_sync_init(b);
		STAILQ_INIT(&b->jobs);
		b->ndevs = c->ndevs;
		b->devs = calloc(c->ndevs, sizeof(*b->devs));
		rc = b->devs ? mb_transport_init(&b->tr, c) : -ENOMEM;
	}
	for (size_t i = 0; rc == 0 && i < c->ndevs; i++) {
		rc = dev_init(b, &b->devs[i], &c->devs[i], prefix);
		iv[i] = b->devs[i].poll_ms;
	}
	if (rc == 0)
		rc = mb_sched_init(&b->sched, c->ndevs, iv, c->max_backoff_ms, clock_mono_ms());
	free(iv);
	if (rc != 0) {
		mb_bus_destroy(b);
		return rc;
	}
	*out = b;
	return 0;
}

int
mb_bus_start(struct mb_bus *b)
{
	int rc;

	b->started_us = clock_mono_us();
	rc = pthread_create(&b->thr, NULL, bus_main, b);
	if (rc != 0)
		return -rc;
	b->running = true;
	return 0;
}

void
mb_bus_stop(struct mb_bus *b)
{
	if (!b->running)
		return;
	pthread_mutex_lock(&b->lock);
	__atomic_store_n(&b->stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thr, NULL);
	b->running = false;
}

size_t
mb_bus_take_writes(struct mb_bus *b,
    void (*fn)(void *arg, const struct mb_write_req *req, uint64_t seq), void *arg)
{
	struct write_job *j;
	size_t n = 0;

	while ((j = take_job(b)) != NULL) { /* the thread has stopped: no lock to take */
		fn(arg, &j->req, j->seq);
		free(j);
		n++;
	}
	return n;
}

void
mb_bus_destroy(struct mb_bus *b)
{
	struct write_job *j;

	if (b == NULL)
		return;
	mb_bus_stop(b);
	while ((j = take_job(b)) != NULL) {
		respond(b, j, false, "not written: the agent stopped or reloaded its config", NULL);
		free(j);
	}
	for (size_t i = 0; b->devs != NULL && i < b->ndevs; i++) {
		mb_plan_free(&b->devs[i].plan);
		mb_learnt_free(&b->devs[i].learnt);
		mb_learning_free(&b->devs[i].lg);
		free(b->devs[i].st);
		free(b->devs[i].topics);
		free(b->devs[i].fresh);
		free(b->devs[i].due);
		free(b->devs[i].pt_rate);
	}
	free(b->devs);
	mb_sched_free(&b->sched);
	mb_transport_fini(&b->tr);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}

int
mb_bus_find_device(const struct mb_bus *b, const char *name)
{
	for (size_t i = 0; i < b->ndevs; i++)
		if (strcmp(b->devs[i].conf->name, name) == 0)
			return (int)i;
	return -1;
}

const struct mb_profile *
mb_bus_device_profile(const struct mb_bus *b, size_t dev)
{
	return b->devs[dev].prof;
}

int
mb_bus_submit_write(struct mb_bus *b, size_t dev, size_t point, const struct mb_write_req *req,
    const struct mb_write_op *op, uint64_t seq)
{
	struct write_job *j;

	pthread_mutex_lock(&b->lock);
	if (b->njobs >= BUS_MAX_JOBS) {
		pthread_mutex_unlock(&b->lock);
		return -ENOBUFS;
	}
	pthread_mutex_unlock(&b->lock);
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	*j = (struct write_job){ .dev = dev, .point = point, .seq = seq, .req = *req, .op = *op };
	pthread_mutex_lock(&b->lock);
	STAILQ_INSERT_TAIL(&b->jobs, j, link);
	b->njobs++;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

struct agent_dev_stats *
mb_bus_dev_stats(struct mb_bus *b, size_t dev)
{
	return &b->devs[dev].stats;
}

const struct agent_dev_stats *
mb_bus_dev_stats_ro(const struct mb_bus *b, size_t dev)
{
	return &b->devs[dev].stats;
}

void
mb_bus_info(const struct mb_bus *b, struct mb_bus_info *out)
{
	out->name = b->c->name;
	out->uptime_us = b->started_us ? clock_mono_us() - b->started_us : 0;
	out->busy_us = __atomic_load_n(&b->busy_us, __ATOMIC_RELAXED);
	out->connect_errors = __atomic_load_n(&b->connect_errors, __ATOMIC_RELAXED);
	out->connected = __atomic_load_n(&b->tr.connected, __ATOMIC_RELAXED);
	out->fault = __atomic_load_n(&b->fault, __ATOMIC_RELAXED);
	out->faults = __atomic_load_n(&b->faults, __ATOMIC_RELAXED);
	out->ndevs = b->ndevs;
}

void
mb_bus_dev_info(const struct mb_bus *b, size_t dev, struct mb_bus_dev_info *out)
{
	const struct bus_dev *d = &b->devs[dev];

	out->name = d->conf->name;
	out->unit_id = d->conf->unit_id;
	out->interval_ms = d->conf->interval_ms;
	out->backoff_ms = __atomic_load_n(&d->backoff_ms, __ATOMIC_RELAXED);
	out->failing = __atomic_load_n(&d->failing, __ATOMIC_RELAXED);
	out->nblocks = d->plan.nblocks; /* changes only by splits; a torn read is harmless */
}
