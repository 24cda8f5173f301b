/*
 * test_bus.c: the bus thread (agent/modbus/bus.c) and its write path over a fake line
 * (fake_modbus.h) that fails on demand: polls of every table, retries after silences and bad
 * answers, exceptions by code, a lost port, a port that does not open, a dead device backed
 * off and probed, learning holes and read limits from exceptions 2 and 3, lateness, and every
 * way of writing (FC5/6/15/16/22, read-modify-write) with their failures. The thread runs as
 * the agent runs it; the tests wait for its counters (never for time) and stop it before
 * asserting exact counts.
 */
#include <errno.h>
#include <modbus/modbus.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bus.h"
#include "clock.h"
#include "fake_modbus.h"
#include "log.h"
#include "log_capture.h"

#define WAIT_MS  20000 /* only turns a hang into a failure */
#define ONCE_MS  3600000
#define MSGS_MAX 1024
#define UNIT_A   7
#define UNIT_B   8

static const char *const counter_names[] = {
#define AGENT_DEV_COUNTER(n, k, d) #n,
#include "stats.def"
#undef AGENT_DEV_COUNTER
};

static struct {
	struct agent_bus_conf bus;
	struct agent_device_conf devs[3];
	struct mb_profile prof[3];
	size_t nprof;
	struct agent_msgq q;
	struct mb_bus *b;
	char *msgs[MSGS_MAX]; /* "topic payload" */
	size_t nmsgs;
} R;

static const struct mb_profile *
profile(const char *yaml)
{
	struct mb_profile *p = &R.prof[R.nprof++];
	char err[256];

	if (mb_profile_parse("fake.yaml", yaml, strlen(yaml), p, err, sizeof(err)) != 0)
		fail_msg("profile: %s", err);
	return p;
}

static struct agent_device_conf *
device(const char *name, uint8_t unit, const struct mb_profile *p, uint64_t interval_ms,
    uint32_t retries)
{
	struct agent_device_conf *d = &R.devs[R.bus.ndevs++];

	*d = (struct agent_device_conf){ .unit_id = unit,
		.interval_ms = interval_ms,
		.timeout_ms = 100,
		.retries = retries,
		.profile = p };
	snprintf(d->name, sizeof(d->name), "%s", name);
	return d;
}

static int
setup(void **state)
{
	(void)state;
	memset(&R, 0, sizeof(R));
	fake_reset();
	snprintf(R.bus.name, sizeof(R.bus.name), "b1");
	R.bus.kind = AGENT_BUS_RTU;
	snprintf(R.bus.device, sizeof(R.bus.device), "/dev/fake-rs485");
	R.bus.line = (struct rs485_line){ 115200, 'N', 8, 1 };
	R.bus.turnaround_ms = 1;
	R.bus.max_backoff_ms = 200;
	R.bus.devs = R.devs;
	return agent_msgq_init(&R.q, MSGS_MAX);
}

static int
teardown(void **state)
{
	(void)state;
	mb_bus_destroy(R.b);
	agent_msgq_destroy(&R.q);
	for (size_t i = 0; i < R.nprof; i++)
		mb_profile_free(&R.prof[i]);
	for (size_t i = 0; i < R.nmsgs; i++)
		free(R.msgs[i]);
	return 0;
}

static void
start(void)
{
	assert_int_equal(mb_bus_create(&R.b, &R.bus, "site", "resp", &R.q), 0);
	assert_int_equal(mb_bus_start(R.b), 0);
}

static uint64_t
st(size_t dev, enum agent_dev_counter c)
{
	return agent_stat_get(mb_bus_dev_stats_ro(R.b, dev), c);
}

static void
nap(void)
{
	usleep(1000);
}

static void
deadline_check(uint64_t until, const char *what)
{
	if (clock_mono_ms() > until)
		fail_msg("waited %d ms for %s", WAIT_MS, what);
}

/* Wait until the counter reaches n (the event, not a time). */
static void
wait_stat(size_t dev, enum agent_dev_counter c, uint64_t n)
{
	uint64_t until = clock_mono_ms() + WAIT_MS;

	while (st(dev, c) < n) {
		deadline_check(until, counter_names[c]);
		nap();
	}
}

static void
collect(void)
{
	struct agent_msg_list l;
	struct agent_msg *m;

	agent_msgq_take_all(&R.q, &l);
	while ((m = STAILQ_FIRST(&l)) != NULL) {
		STAILQ_REMOVE_HEAD(&l, link);
		if (R.nmsgs < MSGS_MAX &&
		    asprintf(&R.msgs[R.nmsgs], "%s %.*s", m->topic, (int)m->len, m->payload) > 0)
			R.nmsgs++;
		free(m);
	}
}

/* The last message whose text has both needles, or NULL. */
static const char *
find_msg(const char *a, const char *b)
{
	collect();
	for (size_t i = R.nmsgs; i-- > 0;)
		if (strstr(R.msgs[i], a) && (b == NULL || strstr(R.msgs[i], b)))
			return R.msgs[i];
	return NULL;
}

static size_t
count_msgs(const char *a)
{
	size_t n = 0;

	collect();
	for (size_t i = 0; i < R.nmsgs; i++)
		n += strstr(R.msgs[i], a) != NULL;
	return n;
}

/* Wait for a message with both needles (published at the end of a poll, after its counters). */
static const char *
wait_msg(const char *a, const char *b)
{
	uint64_t until = clock_mono_ms() + WAIT_MS;
	const char *m;

	while ((m = find_msg(a, b)) == NULL) {
		deadline_check(until, a);
		nap();
	}
	return m;
}

/* The response to write id. */
static const char *
wait_response(const char *id)
{
	char needle[96];
	uint64_t until = clock_mono_ms() + WAIT_MS;
	const char *m;

	snprintf(needle, sizeof(needle), "\"id\":\"%s\"", id);
	while ((m = find_msg("resp {", needle)) == NULL) {
		deadline_check(until, needle);
		nap();
	}
	return m;
}

static bool
logged(uint8_t unit, uint8_t fc, uint16_t addr)
{
	static struct fake_req log[4096];
	size_t n = fake_log(log, 4096);

	for (size_t i = 0; i < n && i < 4096; i++)
		if (log[i].unit == unit && log[i].fc == fc && log[i].addr == addr)
			return true;
	return false;
}

static void
submit(size_t dev, const char *point, double value, const char *id)
{
	const struct mb_profile *p = mb_bus_device_profile(R.b, dev);
	struct mb_write_req req = { .value = value };
	struct mb_write_op op;
	char err[128];
	size_t pi;
	const struct mb_point *pt = mb_profile_point(p, point, &pi);

	assert_non_null(pt);
	snprintf(req.id, sizeof(req.id), "%s", id);
	snprintf(req.device, sizeof(req.device), "%s", R.devs[dev].name);
	snprintf(req.point, sizeof(req.point), "%s", point);
	if (mb_write_prepare_req(pt, &req, &op, err, sizeof(err)) != 0)
		fail_msg("prepare %s: %s", point, err);
	assert_int_equal(mb_bus_submit_write(R.b, dev, pi, &req, &op, 0), 0);
}

static const char *const every_table = "name: tables\n"
				       "points:\n"
				       "  - {name: c0, function: coil, address: 0}\n"
				       "  - {name: d0, function: discrete, address: 0}\n"
				       "  - {name: h0, function: holding, address: 0, type: u16}\n"
				       "  - {name: h1, function: holding, address: 1, type: i16, "
				       "scale: 0.1}\n"
				       "  - {name: i10, function: input, address: 10, type: u32}\n";

/* One poll reads each table with its function, decodes and publishes every point. */
static void
test_poll_reads_every_table(void **state)
{
	(void)state;
	device("dev", UNIT_A, profile(every_table), ONCE_MS, 1);
	fake_set(MB_FN_COIL, 0, 1);
	fake_set(MB_FN_HOLDING, 0, 1234);
	fake_set(MB_FN_HOLDING, 1, (uint16_t)-215);
	fake_set(MB_FN_INPUT, 10, 1);
	fake_set(MB_FN_INPUT, 11, 2);
	fake_set_delay_us(0, 1000);
	start();
	wait_stat(0, AGENT_DC_published, 5);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_polls), 1);
	assert_int_equal(st(0, AGENT_DC_requests), 4);
	assert_int_equal(st(0, AGENT_DC_responses), 4);
	assert_int_equal(st(0, AGENT_DC_retries), 0);
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
	assert_true(st(0, AGENT_DC_busy_us) >= 4000); /* each request took 1 ms on the line */
	assert_int_equal(fake_connects(), 1);
	for (uint8_t fc = 1; fc <= 4; fc++)
		assert_true(logged(UNIT_A, fc, fc == 4 ? 10 : 0));
	assert_non_null(find_msg("/h1 ", "\"value\":-21.5,"));
	assert_non_null(find_msg("/h0 ", "\"value\":1234,"));
	assert_non_null(find_msg("/i10 ", "\"value\":65538,"));
	assert_non_null(find_msg("/c0 ", "\"value\":true,"));
	assert_non_null(find_msg("/d0 ", "\"quality\":\"good\""));
}

static const char *const two_regs = "name: two\n"
				    "points:\n"
				    "  - {name: a, function: holding, address: 0, type: u16}\n"
				    "  - {name: b, function: holding, address: 1, type: u16}\n";

/* A silence costs the poll's retry budget; bad answers (CRC, wrong unit) are repeated on
 * their own budget; the fourth try answers and the poll succeeds. */
static void
test_retries_after_silence_and_bad_answers(void **state)
{
	(void)state;
	device("dev", UNIT_A, profile(two_regs), ONCE_MS, 2);
	fake_set(MB_FN_HOLDING, 1, 77);
	fake_script(UNIT_A, FAKE_TIMEOUT, 0, 1);
	fake_script(UNIT_A, FAKE_CRC, 0, 1);
	fake_script(UNIT_A, FAKE_WRONG_UNIT, 0, 1);
	start();
	wait_stat(0, AGENT_DC_published, 2);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_requests), 4);
	assert_int_equal(st(0, AGENT_DC_retries), 3);
	assert_int_equal(st(0, AGENT_DC_responses), 1);
	assert_int_equal(st(0, AGENT_DC_timeouts), 1);
	assert_int_equal(st(0, AGENT_DC_crc_errors), 1);
	assert_int_equal(st(0, AGENT_DC_wrong_unit), 1);
	assert_int_equal(st(0, AGENT_DC_bad_frames), 1);
	assert_int_equal(st(0, AGENT_DC_garbage), 0);
	assert_int_equal(st(0, AGENT_DC_noisy_polls), 0);
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
	assert_non_null(find_msg("/b ", "\"value\":77,"));
}

static const char *const apart = "name: apart\n"
				 "max_gap: 0\n"
				 "points:\n"
				 "  - {name: a, function: holding, address: 0, type: u16}\n"
				 "  - {name: b, function: holding, address: 100, type: u16}\n";

/* Only bad answers to a read: that block fails alone, the device is noisy, not dead. */
static void
test_noisy_device_keeps_its_other_values(void **state)
{
	(void)state;
	device("dev", UNIT_A, profile(apart), ONCE_MS, 2);
	fake_set(MB_FN_HOLDING, 100, 5);
	fake_script(UNIT_A, FAKE_CRC, 0, 1);
	fake_script(UNIT_A, FAKE_SHORT, 0, 2);
	start();
	wait_stat(0, AGENT_DC_published, 2);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_requests), 4);
	assert_int_equal(st(0, AGENT_DC_crc_errors), 1);
	assert_int_equal(st(0, AGENT_DC_garbage), 2);
	assert_int_equal(st(0, AGENT_DC_bad_frames), 2);
	assert_int_equal(st(0, AGENT_DC_timeouts), 0);
	assert_int_equal(st(0, AGENT_DC_noisy_polls), 1);
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
	assert_non_null(find_msg("/a ", "\"quality\":\"comm-failure\""));
	assert_non_null(find_msg("/b ", "\"value\":5,"));
	assert_false(find_msg("/a ", "\"quality\":\"good\""));
}

/* The port went away (EIO): counted, closed, opened again and the request repeated. */
static void
test_lost_port_is_reopened(void **state)
{
	(void)state;
	device("dev", UNIT_A, profile(two_regs), ONCE_MS, 1);
	fake_script(UNIT_A, FAKE_LINK, 0, 1);
	start();
	wait_stat(0, AGENT_DC_published, 2);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_link_errors), 1);
	assert_int_equal(st(0, AGENT_DC_requests), 2);
	assert_int_equal(st(0, AGENT_DC_responses), 1);
	assert_int_equal(fake_connects(), 2);
	assert_non_null(find_msg("/a ", "\"quality\":\"good\""));
}

static const char *const six_apart = "name: six\n"
				     "max_gap: 0\n"
				     "points:\n"
				     "  - {name: p0, function: holding, address: 0, type: u16}\n"
				     "  - {name: p1, function: holding, address: 20, type: u16}\n"
				     "  - {name: p2, function: holding, address: 40, type: u16}\n"
				     "  - {name: p3, function: holding, address: 60, type: u16}\n"
				     "  - {name: p4, function: holding, address: 80, type: u16}\n"
				     "  - {name: p5, function: holding, address: 100, type: u16}\n";

/* Each exception code has its counter; the refused points go stale (unsupported after
 * exception 1), the poll is not failed. */
static void
test_exceptions_by_code(void **state)
{
	static const int codes[] = { 1, 4, 5, 6, 8, 11 };

	(void)state;
	device("dev", UNIT_A, profile(six_apart), ONCE_MS, 1);
	for (size_t i = 0; i < 6; i++)
		fake_script(UNIT_A, FAKE_EXCEPTION, codes[i], 1);
	start();
	wait_stat(0, AGENT_DC_published, 6);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_requests), 6);
	assert_int_equal(st(0, AGENT_DC_exceptions), 6);
	assert_int_equal(st(0, AGENT_DC_exc_illegal_function), 1);
	assert_int_equal(st(0, AGENT_DC_exc_device_failure), 1);
	assert_int_equal(st(0, AGENT_DC_exc_busy), 2);
	assert_int_equal(st(0, AGENT_DC_exc_other), 2);
	assert_int_equal(st(0, AGENT_DC_exc_illegal_address), 0);
	assert_int_equal(st(0, AGENT_DC_retries), 0);
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
	/* exception 1: the table is not served; the others: the points could not be read */
	assert_int_equal(count_msgs("\"quality\":\"stale\""), 5);
	assert_non_null(find_msg("/p0 ", "\"quality\":\"unsupported\""));
}

/* A device that answers every read with exception 4 (device failure): counted each time,
 * said once, and said again when its reads work (before, exceptions other than 1 to 3 were
 * counted and never logged at any level). */
static void
test_exception_said_once(void **state)
{
	(void)state;
	device("dev", UNIT_A, profile(two_regs), 10, 1);
	fake_set_exception_all(MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
	log_set_level(LOG_LVL_WARN);
	log_capture_begin();
	start();
	wait_stat(0, AGENT_DC_exc_device_failure, 10);
	fake_set_exception_all(0);
	wait_stat(0, AGENT_DC_responses, 2);
	mb_bus_stop(R.b);
	log_set_level(LOG_LVL_ERR);
	assert_int_equal(log_capture_count("answered with exception 4", "device dev"), 1);
	assert_int_equal(log_capture_count("reads answer again", "device dev"), 1);
}

/* A fresh state directory (dir is a mkdtemp template) for the bus under test. */
static void
state_dir_make(char *dir)
{
	assert_non_null(mkdtemp(dir));
	snprintf(R.bus.state_dir, sizeof(R.bus.state_dir), "%s", dir);
}

/* The state file of device "dev" on bus b1 under dir holds the line needle. */
static void
assert_state_file_has(const char *dir, const char *needle)
{
	char path[600], text[256] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/modbus/b1.dev.state", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	assert_non_null(strstr(text, needle));
}

/* Removes what state_dir_make made and the bus wrote there. */
static void
state_dir_remove(const char *dir)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/modbus/b1.dev.state", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/modbus", dir);
	rmdir(path);
	rmdir(dir);
}

/* A device that serves only some tables (here no coils: exception 1 to FC1): learnt at the
 * first refusal, said once, kept in the state file, and the coil is not asked for again; the
 * other tables go on being read. */
static void
test_learns_an_unsupported_function(void **state)
{
	char dir[] = "/tmp/test_bus.XXXXXX";
	struct fake_req log[256];
	size_t n, fc1 = 0;

	(void)state;
	state_dir_make(dir);
	device("dev", UNIT_A, profile(every_table), 20, 1);
	fake_set_no_function(MB_FN_COIL, true);
	fake_set(MB_FN_HOLDING, 0, 7);
	start();
	/* several polls after the refusal */
	wait_stat(0, AGENT_DC_polls, 6);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_exc_illegal_function), 1);
	assert_int_equal(st(0, AGENT_DC_functions_unsupported), 1);
	assert_int_equal(st(0, AGENT_DC_replans), 1);
	n = fake_log(log, 256);
	for (size_t i = 0; i < n && i < 256; i++)
		fc1 += log[i].fc == 1;
	assert_int_equal(fc1, 1); /* asked once, never again */
	assert_true(logged(UNIT_A, 3, 0) && logged(UNIT_A, 2, 0) && logged(UNIT_A, 4, 10));
	assert_non_null(find_msg("/h0 ", "\"value\":7,"));
	assert_state_file_has(dir, "no_function coil");
	/* a restart reads the state: the coil is not asked for at all */
	mb_bus_destroy(R.b);
	R.b = NULL;
	fake_reset();
	fake_set(MB_FN_HOLDING, 0, 8);
	start();
	wait_stat(0, AGENT_DC_polls, 2);
	mb_bus_stop(R.b);
	assert_false(logged(UNIT_A, 1, 0));
	assert_int_equal(st(0, AGENT_DC_exc_illegal_function), 0);
	state_dir_remove(dir);
}

static const char *const four_together =
    "name: four\n"
    "points:\n"
    "  - {name: a, function: holding, address: 0, type: u16}\n"
    "  - {name: b, function: holding, address: 1, type: u16}\n"
    "  - {name: c, function: holding, address: 2, type: u16}\n"
    "  - {name: d, function: holding, address: 3, type: u16}\n";

/* Requests made so far. */
static uint64_t
reqs(void)
{
	return st(0, AGENT_DC_requests);
}

/* Exception 2 to every read (a device that refuses the whole map): the planner bisects down
 * to single points, learns each as a hole, and then stays put: every later poll makes the
 * same requests, with no more splits or replans (no thrashing), and the points report stale. */
static void
test_refused_everywhere_converges(void **state)
{
	uint64_t r1, r2, splits, replans;

	(void)state;
	device("dev", UNIT_A, profile(four_together), 20, 1);
	fake_add_hole(MB_FN_HOLDING, 0, 4);
	start();
	wait_stat(0, AGENT_DC_polls, 8);
	splits = st(0, AGENT_DC_block_splits);
	replans = st(0, AGENT_DC_replans);
	r1 = reqs();
	wait_stat(0, AGENT_DC_polls, 12);
	mb_bus_stop(R.b);
	r2 = reqs();
	assert_true(st(0, AGENT_DC_holes_learnt) >= 1);
	assert_int_equal(st(0, AGENT_DC_block_splits), splits);
	assert_int_equal(st(0, AGENT_DC_replans), replans);
	/* a steady poll: each point alone, so 4 requests per poll (one poll may be in progress
	 * at either reading) */
	assert_true(r2 - r1 >= 3 * 4 && r2 - r1 <= 5 * 4);
	assert_int_equal(count_msgs("\"quality\":\"good\""), 0);
}

/* Exception 4 (device failure) to every read: nothing to learn from it; the plan stays as it
 * is (one read per poll, no splits), every failure counted by its code. */
static void
test_device_failure_everywhere_steady(void **state)
{
	uint64_t r1, r2;

	(void)state;
	device("dev", UNIT_A, profile(four_together), 20, 1);
	fake_script(UNIT_A, FAKE_EXCEPTION, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE, 1000);
	start();
	wait_stat(0, AGENT_DC_polls, 3);
	r1 = reqs();
	wait_stat(0, AGENT_DC_polls, 9);
	mb_bus_stop(R.b);
	r2 = reqs();
	assert_true(r2 - r1 >= 5 && r2 - r1 <= 7); /* one request per poll */
	assert_int_equal(st(0, AGENT_DC_block_splits), 0);
	assert_int_equal(st(0, AGENT_DC_replans), 0);
	assert_int_equal(st(0, AGENT_DC_exc_device_failure), st(0, AGENT_DC_requests));
}

static const char *const gap_in_middle =
    "name: gap\n"
    "max_gap: 4\n"
    "points:\n"
    "  - {name: a, function: holding, address: 0, type: u16}\n"
    "  - {name: b, function: holding, address: 1, type: u16}\n"
    "  - {name: c, function: holding, address: 3, type: u16}\n"
    "  - {name: d, function: holding, address: 4, type: u16}\n";

/* Exception 2 to a read through an unmapped register: the read is bisected, both halves read
 * fine, so the gap is a hole; planned again around it and kept in the state directory. */
static void
test_learns_a_hole(void **state)
{
	char dir[] = "/tmp/test_bus.XXXXXX";
	struct mb_bus_dev_info di;

	(void)state;
	state_dir_make(dir);
	device("dev", UNIT_A, profile(gap_in_middle), ONCE_MS, 1);
	fake_add_hole(MB_FN_HOLDING, 2, 1);
	fake_set(MB_FN_HOLDING, 4, 44);
	assert_int_equal(mb_bus_create(&R.b, &R.bus, "site", "resp", &R.q), 0);
	mb_bus_dev_info(R.b, 0, &di);
	assert_int_equal(di.nblocks, 1); /* one read through the gap, until the device refuses */
	assert_int_equal(mb_bus_start(R.b), 0);
	wait_stat(0, AGENT_DC_published, 4);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_requests), 3);
	assert_int_equal(st(0, AGENT_DC_exc_illegal_address), 1);
	assert_int_equal(st(0, AGENT_DC_block_splits), 1);
	assert_int_equal(st(0, AGENT_DC_holes_learnt), 1);
	assert_int_equal(st(0, AGENT_DC_replans), 1);
	mb_bus_dev_info(R.b, 0, &di);
	assert_int_equal(di.nblocks, 2);
	assert_non_null(find_msg("/d ", "\"value\":44,"));
	assert_int_equal(count_msgs("\"quality\":\"good\""), 4);
	assert_state_file_has(dir, "hole holding 2 1");
	state_dir_remove(dir);
}

static const char *const refused_point =
    "name: refused\n"
    "points:\n"
    "  - {name: a, function: holding, address: 0, type: u16}\n"
    "  - {name: b, function: holding, address: 1, type: u16}\n"
    "  - {name: c, function: holding, address: 2, type: u16}\n";

/* A point the device refuses is a hole itself; when it answers again (a firmware update) the
 * hole is forgotten and the device planned again. */
static void
test_forgets_a_hole_that_answers_again(void **state)
{
	(void)state;
	device("dev", UNIT_A, profile(refused_point), 20, 1);
	fake_add_hole(MB_FN_HOLDING, 2, 1);
	fake_set(MB_FN_HOLDING, 2, 22);
	start();
	wait_stat(0, AGENT_DC_holes_learnt, 1);
	wait_stat(0, AGENT_DC_replans, 1);
	assert_int_equal(st(0, AGENT_DC_holes_forgotten), 0);
	fake_clear_holes();
	wait_stat(0, AGENT_DC_holes_forgotten, 1);
	wait_stat(0, AGENT_DC_replans, 2);
	wait_msg("/c ", "\"value\":22,");
}

static const char *const four_regs = "name: four\n"
				     "points:\n"
				     "  - {name: a, function: holding, address: 0, type: u16}\n"
				     "  - {name: b, function: holding, address: 1, type: u16}\n"
				     "  - {name: c, function: holding, address: 2, type: u16}\n"
				     "  - {name: d, function: holding, address: 3, type: u16}\n";

/* Exception 3 to a read of 4: the device takes at most 2 at a time; learnt, planned again. */
static void
test_learns_a_read_limit(void **state)
{
	struct mb_bus_dev_info di;

	(void)state;
	device("dev", UNIT_A, profile(four_regs), ONCE_MS, 1);
	fake_set_max_read(2);
	fake_set(MB_FN_HOLDING, 3, 33);
	start();
	wait_stat(0, AGENT_DC_published, 4);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_exc_illegal_value), 1);
	assert_int_equal(st(0, AGENT_DC_limits_learnt), 1);
	assert_int_equal(st(0, AGENT_DC_block_splits), 1);
	assert_int_equal(st(0, AGENT_DC_replans), 1);
	assert_int_equal(st(0, AGENT_DC_requests), 3);
	mb_bus_dev_info(R.b, 0, &di);
	assert_int_equal(di.nblocks, 2);
	assert_non_null(find_msg("/d ", "\"value\":33,"));
}

/* The state file of device "dev" on bus b1 under dir does not hold needle. */
static void
assert_state_file_lacks(const char *dir, const char *needle)
{
	char path[600], text[256] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/modbus/b1.dev.state", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	assert_null(strstr(text, needle));
}

/* Requests with function code fc made so far. */
static size_t
requests_fc(uint8_t fc)
{
	static struct fake_req log[4096];
	size_t n = fake_log(log, 4096), k = 0;

	for (size_t i = 0; i < n && i < 4096; i++)
		k += log[i].fc == fc;
	return k;
}

static const char *const twelve_regs =
    "name: twelve\n"
    "points:\n"
    "  - {name: r0, function: holding, address: 0, type: u16}\n"
    "  - {name: r1, function: holding, address: 1, type: u16}\n"
    "  - {name: r2, function: holding, address: 2, type: u16}\n"
    "  - {name: r3, function: holding, address: 3, type: u16}\n"
    "  - {name: r4, function: holding, address: 4, type: u16}\n"
    "  - {name: r5, function: holding, address: 5, type: u16}\n"
    "  - {name: r6, function: holding, address: 6, type: u16}\n"
    "  - {name: r7, function: holding, address: 7, type: u16}\n"
    "  - {name: r8, function: holding, address: 8, type: u16}\n"
    "  - {name: r9, function: holding, address: 9, type: u16}\n"
    "  - {name: r10, function: holding, address: 10, type: u16}\n"
    "  - {name: r11, function: holding, address: 11, type: u16}\n";

/* A device that takes 9 registers a read: the read of 12 is refused, the halving learns 6, a
 * limit that is only a lower bound. Probes search between what worked and what was refused
 * (9 works: raised; 10 is refused) and stop there: the limit ends at the device's own, and
 * after that no read is refused again. */
static void
test_learnt_read_limit_probed_up(void **state)
{
	char dir[] = "/tmp/test_bus.XXXXXX";
	struct mb_bus_dev_info di;
	uint64_t refused, probes;

	(void)state;
	state_dir_make(dir);
	device("dev", UNIT_A, profile(twelve_regs), 5, 1);
	fake_set_max_read(9);
	fake_set(MB_FN_HOLDING, 11, 111);
	start();
	wait_stat(0, AGENT_DC_limits_raised, 1);
	/* the probe of 10 (refused) and, after it, one that finds nothing left to try */
	wait_stat(0, AGENT_DC_exc_illegal_value, 2);
	wait_stat(0, AGENT_DC_polls, 150);
	refused = st(0, AGENT_DC_exc_illegal_value);
	probes = st(0, AGENT_DC_probes);
	wait_stat(0, AGENT_DC_polls, 250);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_limits_learnt), 1);
	assert_int_equal(st(0, AGENT_DC_limits_raised), 1);
	assert_int_equal(refused, 2);
	assert_int_equal(st(0, AGENT_DC_exc_illegal_value), refused); /* converged */
	assert_int_equal(st(0, AGENT_DC_probes), probes);
	assert_int_equal(probes, 2);
	mb_bus_dev_info(R.b, 0, &di);
	assert_int_equal(di.nblocks, 2); /* 9 + 3 */
	assert_true(logged(UNIT_A, 3, 9));
	assert_state_file_has(dir, "max_regs 9\n");
	assert_non_null(find_msg("/r11 ", "\"value\":111,"));
	state_dir_remove(dir);
}

static const char *const pairs_apart = "name: pairs\n"
				       "points:\n"
				       "  - {name: a, function: holding, address: 0, type: u16}\n"
				       "  - {name: b, function: holding, address: 1, type: u16}\n"
				       "  - {name: c, function: holding, address: 3, type: u16}\n"
				       "  - {name: d, function: holding, address: 4, type: u16}\n"
				       "  - {name: e, function: holding, address: 6, type: u16}\n"
				       "  - {name: f, function: holding, address: 7, type: u16}\n";

/* A hole that moves (a firmware update): register 2 is a hole, then 2 reads fine and 5 is one.
 * The new hole is learnt from the refusal; the old one is never read by the plan, so a probe
 * reads through it: it answers, and it is forgotten. Then it stays put: no more replans, and
 * the probes of the hole that remains grow rarer. */
static void
test_moved_hole_learnt_and_old_forgotten(void **state)
{
	char dir[] = "/tmp/test_bus.XXXXXX";
	struct mb_bus_dev_info di;
	uint64_t replans, refused, probes;

	(void)state;
	state_dir_make(dir);
	device("dev", UNIT_A, profile(pairs_apart), 5, 1);
	fake_add_hole(MB_FN_HOLDING, 2, 1);
	fake_set(MB_FN_HOLDING, 7, 77);
	start();
	wait_stat(0, AGENT_DC_holes_learnt, 1);
	fake_clear_holes();
	fake_add_hole(MB_FN_HOLDING, 5, 1);
	wait_stat(0, AGENT_DC_holes_learnt, 2);
	wait_stat(0, AGENT_DC_holes_forgotten, 1);
	wait_stat(0, AGENT_DC_polls, st(0, AGENT_DC_polls) + 5);
	replans = st(0, AGENT_DC_replans);
	refused = st(0, AGENT_DC_exc_illegal_address);
	probes = st(0, AGENT_DC_probes);
	wait_stat(0, AGENT_DC_polls, st(0, AGENT_DC_polls) + 100);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_holes_learnt), 2);
	assert_int_equal(st(0, AGENT_DC_holes_forgotten), 1);
	assert_int_equal(st(0, AGENT_DC_replans), replans);
	/* 100 polls: probes of hole 5 at most after 16, 32, 64 polls (and 2 is not probed: it
	 * is gone); each costs at most two refused reads (the bisection may try 2 first) */
	assert_true(st(0, AGENT_DC_probes) - probes <= 3);
	assert_true(
	    st(0, AGENT_DC_exc_illegal_address) - refused <= 2 * (st(0, AGENT_DC_probes) - probes));
	mb_bus_dev_info(R.b, 0, &di);
	assert_int_equal(di.nblocks, 2); /* [0, 5) and [6, 8) */
	assert_state_file_has(dir, "hole holding 5 1\n");
	assert_state_file_lacks(dir, "hole holding 2");
	assert_non_null(find_msg("/f ", "\"value\":77,"));
	state_dir_remove(dir);
}

/* A table learnt unsupported is tried again by probes, rarer each time it is still refused
 * (not at every poll, not never); its points say "unsupported". When the device starts to
 * serve it (a firmware update) the next probe reads it, and it is read from then on. */
static void
test_unsupported_function_probed_rarely(void **state)
{
	size_t fc1;

	(void)state;
	device("dev", UNIT_A, profile(every_table), 5, 1);
	fake_set_no_function(MB_FN_COIL, true);
	fake_set(MB_FN_COIL, 0, 1);
	start();
	wait_stat(0, AGENT_DC_polls, 60);
	fc1 = requests_fc(1);
	assert_true(fc1 >= 2 && fc1 <= 1 + 60 / 16); /* the first poll, then the probes */
	assert_int_equal(st(0, AGENT_DC_functions_unsupported), 1);
	assert_int_equal(st(0, AGENT_DC_replans), 1);
	assert_non_null(find_msg("/c0 ", "\"quality\":\"unsupported\""));
	assert_null(find_msg("/c0 ", "\"quality\":\"stale\""));
	fake_set_no_function(MB_FN_COIL, false);
	wait_stat(0, AGENT_DC_functions_forgotten, 1);
	wait_msg("/c0 ", "\"value\":true,");
	wait_stat(0, AGENT_DC_polls, st(0, AGENT_DC_polls) + 3);
	fc1 = requests_fc(1);
	wait_stat(0, AGENT_DC_polls, st(0, AGENT_DC_polls) + 3);
	mb_bus_stop(R.b);
	assert_true(requests_fc(1) >= fc1 + 2); /* read every poll again */
	assert_int_equal(st(0, AGENT_DC_functions_unsupported), 1);
}

/* Exception 1 to every function: nothing is read after the first poll but the probes, one
 * read each, rarer each time (16, then 32, 64, 128 polls): bounded work, no thrashing. */
static void
test_every_function_refused_bounded(void **state)
{
	(void)state;
	device("dev", UNIT_A, profile(every_table), 2, 1);
	for (int f = 0; f < MB_FN_COUNT; f++)
		fake_set_no_function((enum mb_func)f, true);
	start();
	wait_stat(0, AGENT_DC_polls, 250);
	mb_bus_stop(R.b);
	assert_int_equal(st(0, AGENT_DC_functions_unsupported), 4);
	assert_int_equal(st(0, AGENT_DC_replans), 1);
	/* probes start at poll 17, 49, 113, 241: at most 4 in 250 polls, one read each */
	assert_true(st(0, AGENT_DC_probes) >= 3 && st(0, AGENT_DC_probes) <= 4);
	assert_int_equal(st(0, AGENT_DC_requests), 4 + st(0, AGENT_DC_probes));
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
	assert_int_equal(count_msgs("\"quality\":\"unsupported\""), 5);
	assert_int_equal(count_msgs("\"quality\":\"stale\""), 0);
}

/* Exception 3 to every read, even of one register: halved down to single reads (two limits
 * learnt, 4 then 2 then 1), and then still: one read per point per poll, and no limit probes
 * (a read of 1 was refused: there is nothing between what works and what is refused). */
static void
test_illegal_value_everywhere_converges(void **state)
{
	uint64_t r1, r2, splits;
	struct mb_bus_dev_info di;

	(void)state;
	device("dev", UNIT_A, profile(four_together), 5, 1);
	fake_set_exception_all(MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE);
	start();
	wait_stat(0, AGENT_DC_polls, 5);
	splits = st(0, AGENT_DC_block_splits);
	r1 = reqs();
	wait_stat(0, AGENT_DC_polls, 105);
	mb_bus_stop(R.b);
	r2 = reqs();
	assert_int_equal(st(0, AGENT_DC_limits_learnt), 2);
	assert_int_equal(st(0, AGENT_DC_replans), 1);
	assert_int_equal(st(0, AGENT_DC_block_splits), splits);
	assert_int_equal(st(0, AGENT_DC_probes), 0);
	assert_int_equal(st(0, AGENT_DC_limits_raised), 0);
	/* 100 polls of 4 single reads (a poll may be in progress at either reading) */
	assert_true(r2 - r1 >= 99 * 4 && r2 - r1 <= 101 * 4);
	mb_bus_dev_info(R.b, 0, &di);
	assert_int_equal(di.nblocks, 4);
	assert_int_equal(count_msgs("\"quality\":\"good\""), 0);
}

/* A device that answers only as another unit id: not its answers, so nothing is learnt from
 * them (no splits, no holes). Its poll ends after one read's answers (1 + retries frames, not
 * one read's worth per block), it is counted in its own class and backed off like a silent
 * device; the device beside it keeps its values; it is back when it answers as itself. */
static void
test_wrong_unit_answers_bounded(void **state)
{
	struct mb_bus_dev_info di;
	uint64_t polls, until;

	(void)state;
	device("dev", UNIT_A, profile(six_apart), 20, 2);
	device("alive", UNIT_B, profile(two_regs), 20, 1);
	fake_set_answer_as_other(UNIT_A, true);
	fake_set(MB_FN_HOLDING, 1, 12);
	start();
	wait_stat(0, AGENT_DC_wrong_unit_polls, 3);
	wait_stat(1, AGENT_DC_polls, 3);
	/* read in this order while it runs: the requests of a poll come before its count */
	polls = st(0, AGENT_DC_wrong_unit_polls);
	assert_true(st(0, AGENT_DC_requests) >= 3 * polls); /* one read, 1 + 2 retries */
	assert_true(st(0, AGENT_DC_requests) <= 3 * (polls + 1));
	mb_bus_dev_info(R.b, 0, &di);
	assert_true(di.failing);
	assert_true(di.backoff_ms > 20);
	assert_non_null(find_msg("/alive/b ", "\"value\":12,"));
	assert_non_null(find_msg("/dev/p0 ", "\"quality\":\"comm-failure\""));
	fake_set_answer_as_other(UNIT_A, false);
	until = clock_mono_ms() + WAIT_MS;
	do {
		deadline_check(until, "the device to answer as itself again");
		nap();
		mb_bus_dev_info(R.b, 0, &di);
	} while (di.failing);
	mb_bus_stop(R.b);
	assert_true(st(0, AGENT_DC_wrong_unit) <= 3 * st(0, AGENT_DC_wrong_unit_polls) + 2);
	assert_int_equal(st(0, AGENT_DC_timeouts), 0);
	assert_int_equal(st(0, AGENT_DC_block_splits), 0);
	assert_int_equal(st(0, AGENT_DC_holes_learnt), 0);
	assert_int_equal(st(0, AGENT_DC_replans), 0);
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
	assert_int_equal(st(1, AGENT_DC_poll_failures), 0);
	assert_int_equal(st(1, AGENT_DC_wrong_unit), 0);
}

/* A device that never answers fails its poll after the retries, is backed off and probed
 * with one try; the other device on the bus is polled meanwhile; it recovers when it answers. */
static void
test_dead_device_backed_off_and_recovers(void **state)
{
	const struct mb_profile *p = profile(two_regs);
	struct mb_bus_dev_info di;
	uint64_t until, polls, fails, timeouts;

	(void)state;
	device("dead", UNIT_A, p, 20, 1);
	device("alive", UNIT_B, p, 20, 1);
	fake_set_dead(UNIT_A, true);
	start();
	wait_stat(0, AGENT_DC_poll_failures, 3);
	wait_stat(1, AGENT_DC_polls, 3);
	mb_bus_dev_info(R.b, 0, &di);
	assert_true(di.failing);
	assert_true(di.backoff_ms > 20);
	/* read in this order while it runs: each count only grows */
	fails = st(0, AGENT_DC_poll_failures);
	timeouts = st(0, AGENT_DC_timeouts);
	polls = st(0, AGENT_DC_polls);
	/* the first poll tries 1 + retries times, each probe once */
	assert_true(timeouts >= 2 + (fails - 1));
	assert_true(timeouts <= 2 + (polls - 1));
	assert_int_equal(st(0, AGENT_DC_responses), 0);
	assert_int_equal(st(1, AGENT_DC_poll_failures), 0);
	assert_non_null(find_msg("/dead/a ", "\"quality\":\"comm-failure\""));
	fake_set_dead(UNIT_A, false);
	until = clock_mono_ms() + WAIT_MS;
	do {
		deadline_check(until, "the dead device to answer again");
		nap();
		mb_bus_dev_info(R.b, 0, &di);
	} while (di.failing);
	assert_true(st(0, AGENT_DC_responses) >= 1);
}

/* A device whose requests take 30 ms makes a 10 ms device late by at least its interval. */
static void
test_late_polls_counted(void **state)
{
	(void)state;
	device("slow", UNIT_A, profile(two_regs), ONCE_MS, 1);
	device("fast", UNIT_B, profile(two_regs), 10, 1);
	fake_set_delay_us(UNIT_A, 30000);
	start();
	wait_stat(1, AGENT_DC_late_polls, 1);
	mb_bus_stop(R.b);
	assert_true(st(1, AGENT_DC_lateness_ms_max) >= 10);
	assert_true(st(1, AGENT_DC_lateness_ms_sum) >= st(1, AGENT_DC_lateness_ms_max));
	assert_true(st(0, AGENT_DC_busy_us) >= 30000);
}

/* The port does not open: a bus fault, not the devices' failure; it opens later. */
static void
test_bus_fault_and_recovery(void **state)
{
	struct mb_bus_info bi;
	uint64_t until;

	(void)state;
	device("dev", UNIT_A, profile(two_regs), 20, 1);
	fake_set_open_error(ENOENT);
	start();
	wait_stat(0, AGENT_DC_bus_fault_polls, 1);
	mb_bus_info(R.b, &bi);
	assert_true(bi.fault);
	assert_false(bi.connected);
	assert_int_equal(bi.faults, 1);
	assert_true(bi.connect_errors >= 1);
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
	assert_int_equal(st(0, AGENT_DC_requests), 0);
	wait_msg("/a ", "\"quality\":\"comm-failure\""); /* published after the count */
	fake_set_open_error(0);
	wait_stat(0, AGENT_DC_responses, 1);
	until = clock_mono_ms() + WAIT_MS;
	do {
		deadline_check(until, "the bus to leave its fault");
		nap();
		mb_bus_info(R.b, &bi);
	} while (bi.fault);
	assert_true(bi.connected);
	assert_int_equal(bi.faults, 1);
	assert_int_equal(st(0, AGENT_DC_poll_failures), 0);
}

static const char *const writable =
    "name: w\n"
    "%s"
    "points:\n"
    "  - {name: run, function: coil, address: 0, writable: true}\n"
    "  - {name: sp, function: holding, address: 10, type: i16, "
    "scale: 0.1, writable: true, min: 0, max: 100}\n"
    "  - {name: total, function: holding, address: 20, type: u32, "
    "writable: true}\n"
    "  - {name: alarm, function: holding, address: 30, type: bit, bit: 3, "
    "writable: true}\n";

static const struct mb_profile *
writable_profile(const char *extra)
{
	char yaml[1024];

	snprintf(yaml, sizeof(yaml), writable, extra);
	return profile(yaml);
}

static void
assert_ok(const char *id, const char *value)
{
	const char *m = wait_response(id);

	if (!strstr(m, "\"status\":\"ok\"") || !strstr(m, value))
		fail_msg("write %s: %s", id, m);
}

static void
assert_error(const char *id, const char *reason)
{
	const char *m = wait_response(id);

	if (!strstr(m, "\"status\":\"error\"") || !strstr(m, reason))
		fail_msg("write %s: %s", id, m);
}

/* Every way of writing, each read back: FC5, FC6, FC16, read-modify-write with FC3 + FC6 on
 * one device; FC15, FC16 for one register and FC22 mask write on the other. */
static void
test_writes_every_function(void **state)
{
	(void)state;
	device("single", UNIT_A, writable_profile(""), ONCE_MS, 1);
	device("multi", UNIT_B, writable_profile("write_single: multiple\nbit_write: mask\n"),
	    ONCE_MS, 1);
	fake_set(MB_FN_HOLDING, 30, 0x0101);
	start();
	wait_stat(0, AGENT_DC_published, 4);
	wait_stat(1, AGENT_DC_published, 4);

	submit(0, "run", 1, "w1");
	assert_ok("w1", "\"value\":true");
	assert_true(logged(UNIT_A, 5, 0));
	submit(0, "sp", 21.5, "w2");
	assert_ok("w2", "\"value\":21.5");
	assert_true(logged(UNIT_A, 6, 10));
	assert_int_equal(fake_get(MB_FN_HOLDING, 10), 215);
	submit(0, "total", 70000, "w3");
	assert_ok("w3", "\"value\":70000");
	assert_true(logged(UNIT_A, 16, 20));
	assert_int_equal(fake_get(MB_FN_HOLDING, 20), 1);
	assert_int_equal(fake_get(MB_FN_HOLDING, 21), 70000 - 65536);
	submit(0, "alarm", 1, "w4");
	assert_ok("w4", "\"value\":true");
	assert_int_equal(fake_get(MB_FN_HOLDING, 30), 0x0109); /* the other bits kept */
	assert_true(logged(UNIT_A, 3, 30) && logged(UNIT_A, 6, 30));

	fake_set(MB_FN_COIL, 0, 1);
	submit(1, "run", 0, "w5");
	assert_ok("w5", "\"value\":false");
	assert_true(logged(UNIT_B, 15, 0));
	assert_int_equal(fake_get(MB_FN_COIL, 0), 0);
	submit(1, "sp", 3, "w6");
	assert_ok("w6", "\"value\":3");
	assert_true(logged(UNIT_B, 16, 10));
	submit(1, "alarm", 0, "w7");
	assert_ok("w7", "\"value\":false");
	assert_true(logged(UNIT_B, 22, 30));
	assert_int_equal(fake_get(MB_FN_HOLDING, 30), 0x0101);

	assert_int_equal(st(0, AGENT_DC_writes), 4);
	assert_int_equal(st(1, AGENT_DC_writes), 3);
	assert_int_equal(st(0, AGENT_DC_writes_failed) + st(1, AGENT_DC_writes_failed), 0);
	/* the value written is published at once */
	wait_msg("/single/sp ", "\"value\":21.5,"); /* published after the response */
}

/* A refused write, a value the device does not keep, a read-back that gets no answer, a
 * refused read of a read-modify-write, a dead device and a bus that went down: each answered
 * with its reason and counted. */
static void
test_write_failures(void **state)
{
	(void)state;
	device("dev", UNIT_A, writable_profile(""), ONCE_MS, 1);
	fake_set(MB_FN_HOLDING, 10, 100);
	start();
	wait_stat(0, AGENT_DC_published, 4);

	fake_script(UNIT_A, FAKE_EXCEPTION, MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE, 1);
	submit(0, "sp", 5, "f1");
	assert_error("f1", "write failed: Illegal data value");
	assert_int_equal(fake_get(MB_FN_HOLDING, 10), 100);

	fake_set_frozen(MB_FN_HOLDING, 10, true);
	submit(0, "sp", 7, "f2");
	assert_error("f2", "read-back differs from the value written");
	if (!strstr(wait_response("f2"), "\"value\":10"))
		fail_msg("f2: %s", wait_response("f2"));
	fake_set_frozen(MB_FN_HOLDING, 10, false);

	fake_script(UNIT_A, FAKE_OK, 0, 1);
	fake_script(UNIT_A, FAKE_TIMEOUT, 0, 2);
	submit(0, "sp", 8, "f3");
	assert_error("f3", "written, but the read-back failed");
	assert_int_equal(fake_get(MB_FN_HOLDING, 10), 80);

	fake_script(UNIT_A, FAKE_EXCEPTION, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS, 1);
	submit(0, "alarm", 1, "f4");
	assert_error("f4", "write failed: Illegal data address");
	assert_false(logged(UNIT_A, 6, 30));

	fake_set_dead(UNIT_A, true);
	submit(0, "run", 1, "f5");
	assert_error("f5", "write failed: no answer");
	fake_set_dead(UNIT_A, false);

	fake_script(UNIT_A, FAKE_LINK, 0, 1);
	fake_set_open_error(ENODEV);
	submit(0, "run", 1, "f6");
	assert_error("f6", "write failed: the bus is down");

	assert_int_equal(st(0, AGENT_DC_writes), 6);
	assert_int_equal(st(0, AGENT_DC_writes_failed), 6);
}

/* Commands to a device that does not answer leave the polling of the others going: a poll
 * that is due goes between two writes, and a write to a device already failing gets one try
 * (as its polls). Writes always went first, each with every retry: twelve commands held the
 * bus 3.6 s (3 x 100 ms each) and the other device was not polled once meanwhile. */
static void
test_writes_to_a_dead_device_leave_polls(void **state)
{
	char id[16];
	uint64_t polls, timeouts;

	(void)state;
	device("dead", UNIT_A, writable_profile(""), ONCE_MS, 2);
	device("alive", UNIT_B, profile(two_regs), 50, 2);
	fake_set_dead(UNIT_A, true);
	fake_set_delay_us(UNIT_A, 100000); /* a silence costs the 100 ms timeout */
	start();
	wait_stat(0, AGENT_DC_poll_failures, 1); /* failing: its writes get one try */
	wait_stat(1, AGENT_DC_polls, 2);
	polls = st(1, AGENT_DC_polls);
	timeouts = st(0, AGENT_DC_timeouts);
	for (int i = 0; i < 12; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		submit(0, "sp", i, id);
	}
	for (int i = 0; i < 12; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		assert_error(id, "write failed: no answer");
	}
	/* each write took 100 ms, the other device's interval is 50 ms: a poll after each */
	assert_true(st(1, AGENT_DC_polls) - polls >= 6);
	assert_int_equal(st(1, AGENT_DC_poll_failures), 0);
	assert_true(st(0, AGENT_DC_timeouts) - timeouts <= 12 + 2); /* its own probes aside */
}

/* Writes wait in a bounded queue; those still waiting when the bus goes are answered. */
static void
test_write_queue_is_bounded(void **state)
{
	struct mb_write_req req = { .value = 1 };
	struct mb_write_op op;
	char err[128];
	size_t pi, n = 0;
	int rc;
	const struct mb_point *pt;

	(void)state;
	device("dev", UNIT_A, writable_profile(""), ONCE_MS, 1);
	assert_int_equal(mb_bus_create(&R.b, &R.bus, "site", "resp", &R.q), 0);
	assert_int_equal(mb_bus_find_device(R.b, "dev"), 0);
	assert_int_equal(mb_bus_find_device(R.b, "nope"), -1);
	pt = mb_profile_point(mb_bus_device_profile(R.b, 0), "run", &pi);
	assert_int_equal(mb_write_prepare_req(pt, &req, &op, err, sizeof(err)), 0);
	while ((rc = mb_bus_submit_write(R.b, 0, pi, &req, &op, 0)) == 0)
		n++;
	assert_int_equal(rc, -ENOBUFS);
	assert_true(n >= 8);
	mb_bus_destroy(R.b);
	R.b = NULL;
	assert_int_equal(count_msgs("not written: the agent stopped"), n);
	assert_int_equal(fake_log(NULL, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_poll_reads_every_table, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_retries_after_silence_and_bad_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_noisy_device_keeps_its_other_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_port_is_reopened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exceptions_by_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exception_said_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_learns_a_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_learns_an_unsupported_function, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_everywhere_converges, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_device_failure_everywhere_steady, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_forgets_a_hole_that_answers_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_learns_a_read_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_learnt_read_limit_probed_up, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_moved_hole_learnt_and_old_forgotten, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unsupported_function_probed_rarely, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_every_function_refused_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_unit_answers_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_illegal_value_everywhere_converges, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_dead_device_backed_off_and_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_polls_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bus_fault_and_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_every_function, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_writes_to_a_dead_device_leave_polls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_queue_is_bounded, setup, teardown),
	};

	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
