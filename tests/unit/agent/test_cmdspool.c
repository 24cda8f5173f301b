/*
 * Unit test of the command spool (agent/cmdspool.c): a Modbus command from the cloud with QoS
 * 1/2 is acknowledged only once it is on disk in <spool>/commands and released only once its
 * bus answered. The agent's death is a cmdspool_abandon (nothing buffered is written, nothing
 * more is run) and a reopen of the same directory: what was acknowledged and not answered runs
 * again (cmd_replayed), what was answered does not, and a QoS 2 packet id is held (the MQTT
 * client answers the cloud's resend PUBREC without delivering it) exactly when its command is
 * on disk, at every point a crash can come between the spool record and the id. A spool whose
 * fdatasync fails does not own the command: not acknowledged, not run, counted. The bus is a
 * callback that records what it was handed and queues it (0) or refuses it (1).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmdspool.h"
#include "downlink_q2.h"
#include "loop.h"
#include "spool.h"
#include "store.h"
#include "uplink.h"

struct bus {
	char got[16][64]; /* the payloads handed over, in order */
	uint64_t seq[16];
	int n;
	int answer; /* what the hand-over returns: 0 queued, 1 refused with a response */
};

static int
bus_exec(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
	struct bus *b = arg;

	if (b->n < 16) {
		snprintf(b->got[b->n], sizeof(b->got[0]), "%.*s", (int)len, payload);
		b->seq[b->n++] = seq;
	}
	return b->answer;
}

static int
no_cmd(void *arg, const char *topic, const uint8_t *payload, size_t len, uint8_t qos, bool retain,
    uint16_t packet_id, uint64_t token)
{
	(void)arg, (void)topic, (void)payload, (void)len, (void)qos, (void)retain, (void)packet_id;
	(void)token;
	return 0;
}

/* The spool's I/O with a switch that makes fdatasync fail (EIO), and one that holds the
 * flusher's (a commit that stalls; the loop's own syncs, of the QoS 2 ids, go on). */
static bool sync_fails;
static atomic_bool sync_stalls;
static pthread_t loop_thread;

static int
io_fdatasync(void *ctx, int fd)
{
	while (atomic_load(&sync_stalls) && !pthread_equal(pthread_self(), loop_thread))
		usleep(1000);
	if (sync_fails) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.fdatasync(ctx, fd);
}

struct env {
	char dir[64], text[256];
	struct conf_doc *doc;
	struct store_conf *sc;
	struct spool_config base;
	struct spool_io_ops io;
	struct agent_loop *loop;
	struct uplink *up;
	struct store *st;
	struct cmdspool *c;
	struct bus bus;
};

static uint64_t
count(struct env *e, enum store_counter c)
{
	struct store_stats s;

	store_get_stats(e->st, &s);
	return s.c[c];
}

static int
accept_cmd(struct env *e, const char *payload, uint8_t qos, uint16_t id)
{
	return cmdspool_accept(e->c, (const uint8_t *)payload, strlen(payload), qos, id, 0);
}

static int
accept_tok(struct env *e, const char *payload, uint8_t qos, uint16_t id, uint64_t token)
{
	return cmdspool_accept(e->c, (const uint8_t *)payload, strlen(payload), qos, id, token);
}

/* The agent starts: the command spool opened on the same directory, the bus fresh. */
static void
start(struct env *e)
{
	memset(&e->bus, 0, sizeof(e->bus));
	assert_int_equal(cmdspool_open(&e->c, NULL, &e->base, e->st, bus_exec, &e->bus), 0);
}

/* SIGKILL: nothing more is written or run. */
static void
crash(struct env *e)
{
	cmdspool_abandon(e->c);
	e->c = NULL;
}

static void
collect_id(void *arg, uint16_t id)
{
	uint16_t *ids = arg;

	ids[ids[0]++ + 1] = id;
}

/* The QoS 2 ids the MQTT client is given back (answered PUBREC, not delivered): first in ids[1] */
static uint16_t
held_ids(struct env *e, uint16_t ids[8])
{
	memset(ids, 0, 8 * sizeof(ids[0]));
	cmdspool_q2_each(e->c, collect_id, ids);
	return ids[0];
}

static int
setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char err[256];

	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/egw-cmdspool-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->text, sizeof(e->text),
	    "uplink:\n  site: lab\n  rules: []\n  spool: {dir: %s}\n", e->dir);
	assert_int_equal(
	    conf_load_string("t.yaml", e->text, strlen(e->text), &e->doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(e->doc), "uplink"), &e->sc), 0);
	assert_int_equal(agent_loop_create(&e->loop, 10), 0);
	assert_int_equal(uplink_jsonl_create(&e->up, e->loop, "/dev/null", NULL, "", no_cmd, e), 0);
	assert_int_equal(store_open(&e->st, e->sc, false, e->up, 0), 0);
	e->io = spool_io_posix;
	e->io.fdatasync = io_fdatasync;
	e->base = e->sc->spool;
	e->base.io = &e->io;
	sync_fails = false;
	*state = e;
	return 0;
}

static int
teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	cmdspool_close(e->c);
	uplink_destroy(e->up);
	store_close(e->st);
	store_conf_free(e->sc);
	conf_free(e->doc);
	agent_loop_destroy(e->loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

/*
 * Acknowledged, handed to the bus, and the agent dies before the bus answered: the next agent
 * runs it again (at least once); one it had acknowledged and not even handed over runs too.
 * Once answered (cmdspool_done) and committed, a command never runs again.
 */
static void
test_acknowledged_command_survives_a_crash(void **state)
{
	struct env *e = *state;

	start(e);
	assert_int_equal(accept_cmd(e, "{\"id\":\"a\"}", 1, 0), 0); /* PUBACK may go */
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 1);
	assert_string_equal(e->bus.got[0], "{\"id\":\"a\"}");
	assert_int_equal(accept_cmd(e, "{\"id\":\"b\"}", 1, 0), 0); /* not handed over yet */
	assert_int_equal(count(e, STORE_C_cmd_spooled), 2);
	crash(e);

	start(e);
	cmdspool_run(e->c); /* at start: what the dead agent left */
	assert_int_equal(e->bus.n, 2);
	assert_string_equal(e->bus.got[0], "{\"id\":\"a\"}");
	assert_string_equal(e->bus.got[1], "{\"id\":\"b\"}");
	assert_int_equal(count(e, STORE_C_cmd_replayed), 2);
	cmdspool_run(e->c); /* given once per agent */
	assert_int_equal(e->bus.n, 2);
	cmdspool_done(e->c, e->bus.seq[0]); /* "a" answered */
	assert_int_equal(count(e, STORE_C_cmd_released), 1);
	cmdspool_close(e->c); /* its release committed */
	e->c = NULL;

	start(e);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 1); /* only "b" */
	assert_string_equal(e->bus.got[0], "{\"id\":\"b\"}");
	cmdspool_done(e->c, e->bus.seq[0]);
	cmdspool_done(e->c, e->bus.seq[0]); /* twice: released once */
	assert_int_equal(count(e, STORE_C_cmd_released), 2);
	crash(e); /* the release's commit was asked for before: on disk or not, "b" is answered */

	/* a command refused at once (its bus queue full: a response went) is released then */
	start(e);
	cmdspool_run(e->c);
	assert_true(e->bus.n <= 1); /* "b" again only if its release had not reached the disk */
	if (e->bus.n == 1)
		cmdspool_done(e->c, e->bus.seq[0]);
	e->bus.answer = 1;
	assert_int_equal(accept_cmd(e, "{\"id\":\"full\"}", 1, 0), 0);
	cmdspool_run(e->c);
	assert_string_equal(e->bus.got[e->bus.n - 1], "{\"id\":\"full\"}");
	cmdspool_close(e->c);
	e->c = NULL;
	start(e);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 0);
}

/*
 * QoS 2: the packet id is held only with its command on disk. Accepted, then the agent dies
 * before the bus wrote it: the next agent holds the id (the cloud's resend, DUP, is answered
 * PUBREC and not delivered) and runs the command once, from the spool. PUBREL frees it.
 */
static void
test_q2_resend_after_a_crash_runs_once(void **state)
{
	struct env *e = *state;
	uint16_t ids[8];

	start(e);
	assert_int_equal(held_ids(e, ids), 0);
	assert_int_equal(accept_cmd(e, "{\"id\":\"q2\"}", 2, 7), 0); /* PUBREC may go */
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 1);
	crash(e);

	start(e);
	assert_int_equal(held_ids(e, ids), 1); /* the resend is answered, not delivered */
	assert_int_equal(ids[1], 7);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 1); /* run once, from the spool */
	assert_string_equal(e->bus.got[0], "{\"id\":\"q2\"}");
	cmdspool_done(e->c, e->bus.seq[0]);
	assert_int_equal(cmdspool_q2_release(e->c, 7, NULL), 0); /* PUBREL */
	assert_int_equal(held_ids(e, ids), 0);
	crash(e);

	start(e);
	assert_int_equal(held_ids(e, ids), 0); /* freed on disk before PUBCOMP */
	cmdspool_run(e->c);
	assert_true(e->bus.n <= 1);
}

/*
 * The crash points between the record and its id, made by hand on the command spool's files
 * the way cmdspool_accept writes them: the id PENDING with a record that reached the disk is
 * held and the command runs; PENDING with a record that never did is freed and nothing runs
 * (the cloud's resend is then a new command, run once).
 */
static void
test_q2_crash_points(void **state)
{
	struct env *e = *state;
	struct spool_config sc = e->base;
	struct spool_rec_in in = { .cls = SPOOL_NORMAL, .qos = 2 };
	struct downlink_ids *q2;
	struct spool *sp;
	char dir[128];
	uint64_t s1, s2;
	uint16_t ids[8];

	snprintf(dir, sizeof(dir), "%s/commands", e->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	sc.dir = dir;
	assert_int_equal(spool_open(&sc, &sp), 0);
	assert_int_equal(downlink_ids_open(&q2, dir, sp, NULL, NULL), 0);
	in.payload = "{\"id\":\"durable\"}";
	in.payload_len = (uint32_t)strlen(in.payload);
	assert_int_equal(spool_append(sp, &in, &s1), 0);
	assert_int_equal(downlink_ids_pending(q2, 11, s1), 0);
	assert_int_equal(spool_commit(sp), 0); /* the record durable; killed before the id owned */
	in.payload = "{\"id\":\"lost\"}";
	in.payload_len = (uint32_t)strlen(in.payload);
	assert_int_equal(spool_append(sp, &in, &s2), 0);
	assert_int_equal(
	    downlink_ids_pending(q2, 12, s2), 0); /* killed before the record's commit */
	downlink_ids_close(q2);
	spool_abandon(sp);

	start(e);
	assert_int_equal(held_ids(e, ids), 1);
	assert_int_equal(ids[1], 11);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 1);
	assert_string_equal(e->bus.got[0], "{\"id\":\"durable\"}");
	assert_int_equal(count(e, STORE_C_cmd_replayed), 1);
}

/* The spool cannot make the command durable: not acknowledged (the cloud sends it again), not
 * run now nor after a restart, its QoS 2 id not held; counted. */
static void
test_not_durable_not_acknowledged(void **state)
{
	struct env *e = *state;
	uint16_t ids[8];

	start(e);
	sync_fails = true;
	assert_true(accept_cmd(e, "{\"id\":\"x1\"}", 1, 0) < 0);
	assert_true(accept_cmd(e, "{\"id\":\"x2\"}", 2, 9) < 0);
	assert_int_equal(count(e, STORE_C_cmd_not_owned), 2);
	assert_int_equal(count(e, STORE_C_cmd_spooled), 0);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 0);
	assert_int_equal(held_ids(e, ids), 0);
	crash(e);
	sync_fails = false;

	start(e);
	assert_int_equal(held_ids(e, ids), 0); /* the resend is delivered */
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 0);
	assert_int_equal(accept_cmd(e, "{\"id\":\"x2\"}", 2, 9), 0); /* the resend: run once */
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 1);
	assert_int_equal(held_ids(e, ids), 1);
}

/*
 * The wait for a command's record times out (the disk stalls past 2 s): not acknowledged, its
 * QoS 2 id freed, and when the record reaches the disk after all it is released unrun, so the
 * cloud's resend is the one copy that runs. The record ran once durable, and the resend,
 * accepted under the freed id, ran again: a QoS 2 command run twice.
 */
static void
test_timed_out_wait_not_run(void **state)
{
	struct env *e = *state;
	uint16_t ids[8];
	int i;

	start(e);
	loop_thread = pthread_self();
	atomic_store(&sync_stalls, true);
	assert_int_equal(accept_cmd(e, "{\"id\":\"s1\"}", 2, 9), -ETIMEDOUT);
	assert_int_equal(count(e, STORE_C_cmd_not_owned), 1);
	assert_int_equal(held_ids(e, ids), 0);
	atomic_store(&sync_stalls, false);
	for (i = 0; i < 5000 && count(e, STORE_C_cmd_released) == 0; i++) {
		usleep(1000); /* the commit ends: the record durable, then passed over */
		cmdspool_run(e->c);
	}
	assert_int_equal(count(e, STORE_C_cmd_released), 1);
	assert_int_equal(e->bus.n, 0);
	assert_int_equal(accept_cmd(e, "{\"id\":\"s1\"}", 2, 9), 0); /* the resend */
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 1);
	assert_string_equal(e->bus.got[0], "{\"id\":\"s1\"}");
	assert_int_equal(held_ids(e, ids), 1);
}

/* ---- acknowledged off the loop (cmdspool_set_owned) ---- */
static struct {
	uint64_t token[8];
	uint16_t id[8];
	int rc[8];
	int n;
} said;

static void
on_owned(void *arg, uint64_t token, uint8_t qos, uint16_t packet_id, int rc)
{
	(void)arg;
	(void)qos;
	assert_true(said.n < 8);
	said.token[said.n] = token;
	said.id[said.n] = packet_id;
	said.rc[said.n++] = rc;
}

/* What the flusher's wake-up does on the loop (cmdspool_run), until want were said. */
static void
wait_said(struct env *e, int want)
{
	for (int i = 0; i < 3000 && said.n < want; i++) {
		cmdspool_run(e->c);
		usleep(1000);
	}
	assert_int_equal(said.n, want);
}

/* With the loop and an owned_fn, cmdspool_accept returns once the command is appended: it is
 * answered after the flusher's commit, in order, and runs only then; a QoS 2 resend while the
 * first waits is not spooled twice (answered under the resend's token); a failed commit is
 * answered not owned, and the command never runs, now or after a restart. */
static void
test_acknowledged_after_the_commit(void **state)
{
	struct env *e = *state;
	uint16_t ids[8];

	memset(&e->bus, 0, sizeof(e->bus));
	memset(&said, 0, sizeof(said));
	assert_int_equal(cmdspool_open(&e->c, e->loop, &e->base, e->st, bus_exec, &e->bus), 0);
	cmdspool_set_owned(e->c, on_owned, e);
	assert_int_equal(accept_tok(e, "{\"id\":\"a\"}", 1, 0, 21), CMDSPOOL_OWN_LATER);
	assert_int_equal(accept_tok(e, "{\"id\":\"b\"}", 2, 4, 22), CMDSPOOL_OWN_LATER);
	assert_int_equal(accept_tok(e, "{\"id\":\"b\"}", 2, 4, 23), CMDSPOOL_OWN_LATER);
	assert_int_equal(said.n, 0);
	wait_said(e, 2);
	assert_int_equal(said.token[0], 21);
	assert_int_equal(said.rc[0], 0);
	assert_int_equal(said.token[1], 23);
	assert_int_equal(said.id[1], 4);
	assert_int_equal(said.rc[1], 0);
	assert_int_equal(count(e, STORE_C_cmd_spooled), 2);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 2); /* each once */
	assert_string_equal(e->bus.got[0], "{\"id\":\"a\"}");
	assert_string_equal(e->bus.got[1], "{\"id\":\"b\"}");
	assert_int_equal(held_ids(e, ids), 1);
	assert_int_equal(ids[1], 4);

	sync_fails = true;
	assert_int_equal(accept_tok(e, "{\"id\":\"c\"}", 1, 0, 24), CMDSPOOL_OWN_LATER);
	wait_said(e, 3);
	assert_int_equal(said.token[2], 24);
	assert_int_equal(said.rc[2], -EIO);
	assert_int_equal(count(e, STORE_C_cmd_not_owned), 1);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 2);
	crash(e);
	sync_fails = false;
	start(e);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 2); /* a and b again (not answered by their bus), c never */
	assert_string_equal(e->bus.got[0], "{\"id\":\"a\"}");
	assert_string_equal(e->bus.got[1], "{\"id\":\"b\"}");
}

/* The cloud loses the session (every QoS 2 id released) while a QoS 2 command waits for its
 * commit; the new session's first QoS 2 command takes the same id. It is a new command, not a
 * resend: spooled and run, its id the one held. The old command runs too, its id not held
 * (test_session_lost_while_waiting in test_downlink.c is the downlink's). */
static void
test_session_lost_while_waiting(void **state)
{
	struct env *e = *state;
	uint16_t ids[8];

	memset(&e->bus, 0, sizeof(e->bus));
	memset(&said, 0, sizeof(said));
	assert_int_equal(cmdspool_open(&e->c, e->loop, &e->base, e->st, bus_exec, &e->bus), 0);
	cmdspool_set_owned(e->c, on_owned, e);
	assert_int_equal(accept_tok(e, "{\"id\":\"old\"}", 2, 4, 31), CMDSPOOL_OWN_LATER);
	assert_int_equal(cmdspool_q2_release(e->c, 0, NULL), 0); /* session present 0 */
	assert_int_equal(accept_tok(e, "{\"id\":\"new\"}", 2, 4, 32), CMDSPOOL_OWN_LATER);
	wait_said(e, 2);
	assert_int_equal(said.token[0], 31);
	assert_int_equal(said.id[0], 0);
	assert_int_equal(said.rc[0], 0);
	assert_int_equal(said.token[1], 32);
	assert_int_equal(said.id[1], 4);
	assert_int_equal(said.rc[1], 0);
	cmdspool_run(e->c);
	assert_int_equal(e->bus.n, 2);
	assert_string_equal(e->bus.got[0], "{\"id\":\"old\"}");
	assert_string_equal(e->bus.got[1], "{\"id\":\"new\"}");
	assert_int_equal(held_ids(e, ids), 1);
	assert_int_equal(ids[1], 4);

	/* the table alone: an id freed while its record waits is not owned by the record's commit
	 * (a caller that still had its id would hold it for the new session's message) */
	{
		struct downlink_ids *q2;
		char dir[128];

		snprintf(dir, sizeof(dir), "%s/ids", e->dir);
		assert_int_equal(mkdir(dir, 0700), 0);
		assert_int_equal(downlink_ids_open(&q2, dir, NULL, NULL, NULL), 0);
		assert_int_equal(downlink_ids_pending(q2, 9, 1), 0);
		assert_int_equal(downlink_ids_release(q2, 0), 0);
		assert_int_equal(downlink_ids_own(q2, 9), 0);
		assert_false(downlink_ids_held(q2, 9));
		assert_int_equal(downlink_ids_pending(q2, 9, 2), 0);
		assert_int_equal(downlink_ids_own(q2, 9), 0);
		assert_true(downlink_ids_held(q2, 9));
		downlink_ids_close(q2);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_acknowledged_command_survives_a_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_q2_resend_after_a_crash_runs_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_q2_crash_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_durable_not_acknowledged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timed_out_wait_not_run, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_acknowledged_after_the_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_lost_while_waiting, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
