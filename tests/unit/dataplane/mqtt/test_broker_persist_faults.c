/*
 * Unit tests for the broker's state journal (dataplane/mqtt/persist.c) when things go wrong:
 * a state directory that cannot be created or locked, files that are not what they should
 * be (corrupt, from a newer version, of the wrong kind, older than the snapshot), journals
 * written by hand with records of every kind (whole, cut short inside their body, for
 * sessions that no longer exist, of an unknown type), writes that fail on a real file-size
 * limit (RLIMIT_FSIZE: the kernel's EFBIG, partial writes included), compactions that fail
 * at either of their two renames, and a compaction whose file work runs on the syncer thread
 * (held at each of its syncs, killed there, failing). Each test checks what a client sees
 * after a restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "broker_fixture.h"
#include "crc32c.h"
#include "broker_int.h" /* broker_persist_fail_next */

static char dir[64];

static void
path_of(char *p, size_t cap, const char *name)
{
	snprintf(p, cap, "%s/%s", dir, name);
}

static void
rm_entry(const char *name)
{
	char p[160];

	path_of(p, sizeof(p), name);
	if (unlink(p) != 0)
		rmdir(p);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/egw-bfault-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	static const char *const names[] = { "broker-0.journal", "broker-0.snap", "broker-0.tmp",
		"broker-0.journal.next", "broker-0.journal/x", "broker-0.snap/x", "file" };

	(void)state;
	for (size_t i = sizeof(names) / sizeof(names[0]); i-- > 0;)
		rm_entry(names[i]);
	rm_entry("broker-0.journal");
	rmdir(dir);
	return 0;
}

static struct fx *
fx_on(void)
{
	struct fx *x = fx_new(NULL);

	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	return x;
}

static uint32_t
sessions_of(struct fx *x)
{
	struct broker_gauges g;

	broker_gauges_get(x->b, &g);
	return g.sessions;
}

/* A directory where a file of the state should be (with an entry, so no rename replaces it). */
static void
dir_at(const char *name)
{
	char p[160];

	path_of(p, sizeof(p), name);
	unlink(p);
	assert_int_equal(mkdir(p, 0700), 0);
	path_of(p, sizeof(p), name);
	strcat(p, "/x");
	close(open(p, O_WRONLY | O_CREAT, 0600));
}

static void
undir_at(const char *name)
{
	char p[160];

	path_of(p, sizeof(p), name);
	strcat(p, "/x");
	assert_int_equal(unlink(p), 0);
	path_of(p, sizeof(p), name);
	assert_int_equal(rmdir(p), 0);
}

/* ---- the file format, written by hand (persist.c's header comment, docs/broker.md) ---- */
struct w {
	uint8_t b[8192];
	size_t n;
};

static void
put(struct w *w, const void *p, size_t n)
{
	assert_true(w->n + n <= sizeof(w->b));
	memcpy(w->b + w->n, p, n);
	w->n += n;
}
static void
u8(struct w *w, uint8_t v)
{
	put(w, &v, 1);
}
static void
u16(struct w *w, uint16_t v)
{
	put(w, &v, 2);
}
static void
u32(struct w *w, uint32_t v)
{
	put(w, &v, 4);
}
static void
u64(struct w *w, uint64_t v)
{
	put(w, &v, 8);
}
static void
str(struct w *w, const char *s)
{
	u16(w, (uint16_t)strlen(s));
	put(w, s, strlen(s));
}

static void
file_hdr(struct w *w, uint32_t version, uint32_t kind, uint64_t gen)
{
	uint8_t h[32] = { 0 };
	uint32_t crc;

	memcpy(h, "EGWBSTA1", 8);
	memcpy(h + 8, &version, 4);
	memcpy(h + 12, &kind, 4);
	memcpy(h + 16, &gen, 8);
	crc = crc32c(h, 28, 0);
	memcpy(h + 28, &crc, 4);
	put(w, h, 32);
}

enum {
	R_RETAIN = 1,
	R_RETAIN_DEL,
	R_SESS,
	R_SESS_DEL,
	R_RXQ2,
	R_MSG,
	R_MSG_STATE,
	R_MSG_DEL,
	R_WILL,
	R_WILL_DEL
};

static size_t
rec_begin(struct w *w, uint8_t type)
{
	size_t at = w->n;
	uint8_t h[12] = { 0 };

	h[8] = type;
	put(w, h, 12);
	return at;
}

static void
rec_end(struct w *w, size_t at)
{
	uint32_t len = (uint32_t)(w->n - at - 12), crc;

	memcpy(w->b + at + 4, &len, 4);
	crc = crc32c(w->b + at + 4, w->n - at - 4, 0);
	memcpy(w->b + at, &crc, 4);
}

/* A message as the journal keeps it: qos, retain, expiry left, pfi (0xff: none), topic,
 * payload, content type, response topic, correlation, user properties, subscription ids. */
static void
msg(struct w *w, uint8_t qos, const char *topic, const char *payload, uint64_t expiry_ms,
    uint16_t n_user, uint16_t n_ids)
{
	u8(w, qos);
	u8(w, 1);
	u64(w, expiry_ms);
	u8(w, 1);
	str(w, topic);
	u32(w, (uint32_t)strlen(payload));
	put(w, payload, strlen(payload));
	str(w, "text/plain");
	str(w, "reply/here");
	str(w, "corr");
	u16(w, n_user);
	for (uint16_t i = 0; i < n_user && i < 2; i++) {
		str(w, "k");
		str(w, "v");
	}
	u16(w, n_ids);
	for (uint16_t i = 0; i < n_ids && i < 2; i++)
		u32(w, 7);
}

static void
write_state_file(const char *name, const struct w *w)
{
	char p[160];
	int fd;

	path_of(p, sizeof(p), name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, w->b, w->n), (ssize_t)w->n);
	close(fd);
}

/* A new subscriber's view of the retained message on topic: its payload, "" when none. */
static void
retained(struct fx *x, int i, const char *topic, char *out, size_t cap, struct mqtt_publish *got)
{
	struct mqtt_packet p;

	fx_connect(x, i, MQTT_V5, "look", true, 60, NULL);
	fx_subscribe(x, i, topic, 1);
	out[0] = '\0';
	if (fx_next(x, i, &p)) {
		assert_int_equal(p.type, MQTT_PUBLISH);
		snprintf(out, cap, "%.*s", (int)p.publish.payload_len, p.publish.payload);
		if (got != NULL)
			*got = p.publish;
	}
	fx_expect_none(x, i);
	fx_close(x, i);
}

/* ---- the state directory ---- */

/* Refused with the reason, and nothing half open: the broker runs on without state. */
static void
test_open_refused(void **state)
{
	struct fx *x = fx_new(NULL);
	char p[400];

	(void)state;
	assert_int_equal(broker_persist_open(x->b, NULL, 0, 0, x->now), -EINVAL);
	assert_int_equal(broker_persist_open(x->b, "", 0, 0, x->now), -EINVAL);
	memset(p, 'a', sizeof(p) - 1);
	p[0] = '/';
	p[sizeof(p) - 1] = '\0';
	assert_int_equal(broker_persist_open(x->b, p, 0, 0, x->now), -ENAMETOOLONG);
	/* a regular file where the directory, or one of its parents, should be */
	path_of(p, sizeof(p), "file");
	close(open(p, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(broker_persist_open(x->b, p, 0, 0, x->now), -ENOTDIR);
	strcat(p, "/state");
	assert_int_equal(broker_persist_open(x->b, p, 0, 0, x->now), -ENOTDIR);
	strcat(p, "/deeper");
	assert_int_equal(broker_persist_open(x->b, p, 0, 0, x->now), -ENOTDIR);
	/* open once: a second open on the same broker is refused */
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -EINVAL);
	broker_persist_close(x->b);
	broker_persist_close(x->b); /* closed already: nothing */
	fx_connect(x, 0, MQTT_V311, "c", true, 60, NULL);
	fx_publish(x, 0, "t", "no state", 1, 1, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_free(x);
}

/* A parent directory that does not exist yet is made (mkdir -p: /var/lib/edgegw on a fresh
 * box), and the state is found there again. */
static void
test_open_makes_parents(void **state)
{
	char sub[160], got[32];
	struct fx *x = fx_new(NULL);

	(void)state;
	snprintf(sub, sizeof(sub), "%s/file/deeper", dir);
	assert_int_equal(broker_persist_open(x->b, sub, 0, 0, x->now), 0);
	fx_connect(x, 0, MQTT_V311, "c", true, 60, NULL);
	fx_publish(x, 0, "t", "deep", 0, 0, true);
	fx_free(x);
	x = fx_new(NULL);
	assert_int_equal(broker_persist_open(x->b, sub, 0, 0, x->now), 0);
	retained(x, 1, "t", got, sizeof(got), NULL);
	assert_string_equal(got, "deep");
	fx_free(x);
	{
		char p[200];

		snprintf(p, sizeof(p), "%s/broker-0.journal", sub);
		unlink(p);
		snprintf(p, sizeof(p), "%s/broker-0.snap", sub);
		unlink(p);
		rmdir(sub);
		snprintf(p, sizeof(p), "%s/file", dir);
		rmdir(p);
	}
}

/* The journal's name taken by a directory: it cannot be opened to lock it, nor replaced by
 * the new journal: the open fails with the reason (the snapshot it wrote first is valid:
 * once the directory is gone the state is there). */
static void
test_journal_path_unusable(void **state)
{
	struct fx *x = fx_on();
	char got[32];

	(void)state;
	fx_connect(x, 0, MQTT_V311, "c", true, 60, NULL);
	fx_publish(x, 0, "t", "kept", 0, 0, true);
	fx_free(x);
	x = fx_new(NULL);
	/* the snapshot of the first open holds nothing: the message is in the journal only */
	{
		struct fx *y = fx_on();

		fx_free(y); /* folded into the snapshot at this open */
	}
	dir_at("broker-0.journal");
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -EISDIR);
	undir_at("broker-0.journal");
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 0);
	retained(x, 1, "t", got, sizeof(got), NULL);
	assert_string_equal(got, "kept");
	fx_free(x);
}

/* The snapshot's name taken by a directory: not a snapshot (counted), and the open fails
 * when it cannot put the new one in its place; the temporary file's name taken: likewise. */
static void
test_snapshot_path_unusable(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	dir_at("broker-0.snap");
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -EISDIR);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 1);
	undir_at("broker-0.snap");
	dir_at("broker-0.tmp");
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -EISDIR);
	undir_at("broker-0.tmp");
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	fx_free(x);
}

/* ---- files that are not what they should be ---- */

/* A snapshot of garbage, of the wrong kind or with a bad header checksum is ignored (counted)
 * and the journal is replayed; a journal with a bad header is ignored (counted). */
static void
test_corrupt_headers(void **state)
{
	struct w *w = calloc(1, sizeof(*w));
	struct fx *x;
	char got[32];

	(void)state;
	/* a journal of generation 0 with one retained message */
	file_hdr(w, 1, 1, 0);
	{
		size_t at = rec_begin(w, R_RETAIN);

		msg(w, 0, "t", "from journal", 0, 0, 0);
		rec_end(w, at);
	}
	write_state_file("broker-0.journal", w);
	/* snapshots that are not: garbage, a journal's kind, a damaged header */
	for (int k = 0; k < 3; k++) {
		struct w *s = calloc(1, sizeof(*s));

		if (k == 0)
			put(s, "not a snapshot at all, but long enough to be read", 48);
		else
			file_hdr(s, 1, k == 1 ? 1 : 2, 5);
		if (k == 2)
			s->b[20] ^= 1;
		write_state_file("broker-0.snap", s);
		free(s);
		write_state_file("broker-0.journal", w);
		x = fx_new(NULL);
		assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 1);
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_RECOVERED), 1);
		retained(x, 1, "t", got, sizeof(got), NULL);
		assert_string_equal(got, "from journal");
		fx_free(x);
	}
	/* a journal whose header is damaged, next to a good snapshot: the journal is ignored */
	w->b[3] ^= 0x20;
	write_state_file("broker-0.journal", w);
	x = fx_new(NULL);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 1);
	retained(x, 1, "t", got, sizeof(got), NULL);
	assert_string_equal(got, "from journal"); /* from the snapshot the last open wrote */
	fx_free(x);
	/* an empty journal (created by the lock, never written): not counted */
	rm_entry("broker-0.snap");
	w->n = 0;
	write_state_file("broker-0.journal", w);
	x = fx_new(NULL);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 0);
	retained(x, 1, "t", got, sizeof(got), NULL);
	assert_string_equal(got, "");
	fx_free(x);
	free(w);
}

/* State written by a newer version is left untouched and the open refused; a journal older
 * than the snapshot (its compaction finished) is not replayed over it. */
static void
test_newer_version_and_old_journal(void **state)
{
	struct w *w = calloc(1, sizeof(*w)), *j = calloc(1, sizeof(*j));
	struct fx *x;
	struct stat st;
	char p[160], got[32];

	(void)state;
	file_hdr(w, 2, 2, 1);
	write_state_file("broker-0.snap", w);
	x = fx_new(NULL);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -EPROTONOSUPPORT);
	path_of(p, sizeof(p), "broker-0.snap");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 32); /* not replaced */
	rm_entry("broker-0.snap");
	file_hdr(j, 2, 1, 1);
	write_state_file("broker-0.journal", j);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -EPROTONOSUPPORT);
	fx_free(x);

	/* snapshot of generation 3 holds "new"; the journal of generation 2 says "old" */
	w->n = 0;
	file_hdr(w, 1, 2, 3);
	{
		size_t at = rec_begin(w, R_RETAIN);

		msg(w, 0, "t", "new", 0, 0, 0);
		rec_end(w, at);
	}
	write_state_file("broker-0.snap", w);
	j->n = 0;
	file_hdr(j, 1, 1, 2);
	{
		size_t at = rec_begin(j, R_RETAIN);

		msg(j, 0, "t", "old", 0, 0, 0);
		rec_end(j, at);
	}
	write_state_file("broker-0.journal", j);
	x = fx_on();
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_RECOVERED), 1);
	retained(x, 1, "t", got, sizeof(got), NULL);
	assert_string_equal(got, "new");
	fx_free(x);
	free(w);
	free(j);
}

/* ---- records of every kind, written by hand ---- */

/* Each kind of record for a session that is not there (it ended, or its record was lost) is
 * ignored; so are records cut short inside their body (whole by their checksum), records of
 * a type from a newer version, and messages with more user properties or subscription ids
 * than a packet allows. The records after them still apply, and nothing is counted torn. */
static void
test_records_for_nobody_and_malformed(void **state)
{
	struct w *w = calloc(1, sizeof(*w));
	struct fx *x;
	uint32_t n = 0;
	size_t at;
	char got[32];

	(void)state;
	file_hdr(w, 1, 1, 0);
	/* for a session that does not exist */
	at = rec_begin(w, R_SESS_DEL), str(w, "ghost"), rec_end(w, at), n++;
	at = rec_begin(w, R_WILL_DEL), str(w, "ghost"), rec_end(w, at), n++;
	at = rec_begin(w, R_RXQ2), str(w, "ghost"), u16(w, 5), u8(w, 1), rec_end(w, at), n++;
	at = rec_begin(w, R_MSG), str(w, "ghost"), u32(w, 1), u16(w, 1), u8(w, 1), u8(w, 1);
	u8(w, 0), u32(w, 0), msg(w, 1, "t/g", "lost", 0, 0, 0), rec_end(w, at), n++;
	at = rec_begin(w, R_MSG_STATE), str(w, "ghost"), u32(w, 1), u16(w, 1), u8(w, 2);
	rec_end(w, at), n++;
	at = rec_begin(w, R_MSG_DEL), str(w, "ghost"), u32(w, 1), rec_end(w, at), n++;
	at = rec_begin(w, R_WILL), str(w, "ghost"), u64(w, 1000), u32(w, 5), u32(w, 0), u8(w, 0);
	msg(w, 1, "will/g", "w", 0, 0, 0), rec_end(w, at), n++;
	/* cut short inside the body: each kind */
	for (uint8_t t = R_RETAIN; t <= R_WILL_DEL; t++) {
		at = rec_begin(w, t);
		u8(w, 9); /* one byte: too short for anything */
		rec_end(w, at), n++;
	}
	at = rec_begin(w, R_SESS), str(w, "half"), u32(w, 600), u32(w, 3), str(w, "a/#");
	rec_end(w, at), n++; /* says 3 subscriptions, holds part of one */
	/* a type from a newer version */
	at = rec_begin(w, 77), u32(w, 1234), rec_end(w, at), n++;
	/* too many user properties; too many subscription ids */
	at = rec_begin(w, R_RETAIN), msg(w, 0, "t/u", "u", 0, 65, 0), rec_end(w, at), n++;
	at = rec_begin(w, R_RETAIN), msg(w, 0, "t/i", "i", 0, 0, 65), rec_end(w, at), n++;
	/* messages too malformed to keep, for a session that exists ("half", above) */
	at = rec_begin(w, R_MSG), str(w, "half"), u32(w, 1), u16(w, 1), u8(w, 1), u8(w, 1);
	u8(w, 0), u32(w, 0), msg(w, 1, "t/m", "m", 0, 65, 0), rec_end(w, at), n++;
	at = rec_begin(w, R_WILL), str(w, "half"), u64(w, 1000), u32(w, 5), u32(w, 0), u8(w, 0);
	msg(w, 1, "will/h", "w", 0, 0, 65), rec_end(w, at), n++;
	/* a good one after all of that */
	at = rec_begin(w, R_RETAIN), msg(w, 0, "t/ok", "ok", 0, 0, 0), rec_end(w, at), n++;
	write_state_file("broker-0.journal", w);

	x = fx_on();
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_RECOVERED), n);
	/* "half" is a session (its expiry came whole) with no subscription; "ghost" is not */
	assert_int_equal(sessions_of(x), 1);
	retained(x, 1, "t/#", got, sizeof(got), NULL);
	assert_string_equal(got, "ok");
	fx_tick(x, 10000);
	assert_int_equal(fx_count(x, BROKER_C_WILL_PUBLISHED), 0);
	assert_true(fx_connect(x, 2, MQTT_V5, "half", false, 60, NULL));
	fx_expect_none(x, 2);
	assert_false(fx_connect(x, 3, MQTT_V5, "ghost", false, 60, NULL));
	fx_free(x);
	free(w);
}

/* A record longer than any record can be (64 MiB) ends the replay there, counted torn. */
static void
test_record_too_long(void **state)
{
	struct w *w = calloc(1, sizeof(*w));
	struct fx *x;
	size_t at;
	uint32_t big = MQTT_MAX_PACKET_SIZE + (1u << 20) + 1; /* over P_REC_MAX */
	char got[32];

	(void)state;
	file_hdr(w, 1, 1, 0);
	at = rec_begin(w, R_RETAIN), msg(w, 0, "a", "before", 0, 0, 0), rec_end(w, at);
	at = rec_begin(w, R_RETAIN), msg(w, 0, "b", "after", 0, 0, 0), rec_end(w, at);
	memcpy(w->b + at + 4, &big, 4);
	write_state_file("broker-0.journal", w);
	x = fx_on();
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 1);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_RECOVERED), 1);
	retained(x, 1, "a", got, sizeof(got), NULL);
	assert_string_equal(got, "before");
	retained(x, 2, "b", got, sizeof(got), NULL);
	assert_string_equal(got, "");
	fx_free(x);
	free(w);
}

/* A hand-written session with every kind of record (as the broker writes them): its
 * subscriptions with their options, a message in flight (DUP, same id), one past PUBREC
 * (PUBREL owed), one queued, one acknowledged (deleted), an incoming QoS 2 id added then
 * released and another kept, and a pending will cancelled then set again; a retained
 * message set then deleted, one with properties, a message expiry and subscription ids. */
static void
test_every_record_kind(void **state)
{
	struct w *w = calloc(1, sizeof(*w));
	struct mqtt_props props = { 0 };
	struct mqtt_publish p;
	struct mqtt_packet r;
	struct fx *x;
	size_t at;
	char got[32];

	(void)state;
	file_hdr(w, 1, 1, 0);
	at = rec_begin(w, R_RETAIN), msg(w, 0, "gone", "x", 0, 0, 0), rec_end(w, at);
	at = rec_begin(w, R_RETAIN_DEL), str(w, "gone"), rec_end(w, at);
	at = rec_begin(w, R_RETAIN), msg(w, 1, "props", "p", 3600000, 2, 2), rec_end(w, at);
	at = rec_begin(w, R_SESS), str(w, "dev"), u32(w, 600), u32(w, 2);
	str(w, "cmd/#"), u8(w, 1), u8(w, 3), u32(w, 0);
	str(w, "other"), u8(w, 2), u8(w, 0), u32(w, 9), rec_end(w, at);
	/* did 1: in flight, waiting for PUBACK (state 1), pid 11 */
	at = rec_begin(w, R_MSG), str(w, "dev"), u32(w, 1), u16(w, 11), u8(w, 1), u8(w, 1);
	u8(w, 0), u32(w, 0), msg(w, 1, "cmd/a", "inflight", 0, 0, 0), rec_end(w, at);
	/* did 2: sent at QoS 2, then PUBREC came: only the PUBREL is owed (state 3) */
	at = rec_begin(w, R_MSG), str(w, "dev"), u32(w, 2), u16(w, 12), u8(w, 2), u8(w, 2);
	u8(w, 0), u32(w, 0), msg(w, 2, "cmd/b", "q2", 0, 0, 0), rec_end(w, at);
	at = rec_begin(w, R_MSG_STATE), str(w, "dev"), u32(w, 2), u16(w, 12), u8(w, 3);
	rec_end(w, at);
	/* did 3: acknowledged and deleted */
	at = rec_begin(w, R_MSG), str(w, "dev"), u32(w, 3), u16(w, 13), u8(w, 1), u8(w, 1);
	u8(w, 0), u32(w, 0), msg(w, 1, "cmd/c", "acked", 0, 0, 0), rec_end(w, at);
	at = rec_begin(w, R_MSG_DEL), str(w, "dev"), u32(w, 3), rec_end(w, at);
	/* did 4: queued, not sent yet (state 0) */
	at = rec_begin(w, R_MSG), str(w, "dev"), u32(w, 4), u16(w, 0), u8(w, 0), u8(w, 1);
	u8(w, 0), u32(w, 0), msg(w, 1, "cmd/d", "queued", 0, 0, 0), rec_end(w, at);
	/* incoming QoS 2: 21 added and released, 22 kept */
	at = rec_begin(w, R_RXQ2), str(w, "dev"), u16(w, 21), u8(w, 1), rec_end(w, at);
	at = rec_begin(w, R_RXQ2), str(w, "dev"), u16(w, 22), u8(w, 1), rec_end(w, at);
	at = rec_begin(w, R_RXQ2), str(w, "dev"), u16(w, 21), u8(w, 0), rec_end(w, at);
	at = rec_begin(w, R_RXQ2), str(w, "dev"), u16(w, 99), u8(w, 0), rec_end(w, at);
	/* a will, cancelled, then again: due 2 s after the restart */
	at = rec_begin(w, R_WILL), str(w, "dev"), u64(w, 0), u32(w, 5), u32(w, 0), u8(w, 0);
	msg(w, 1, "will/dev", "first", 0, 0, 0), rec_end(w, at);
	at = rec_begin(w, R_WILL_DEL), str(w, "dev"), rec_end(w, at);
	at = rec_begin(w, R_WILL), str(w, "dev"), u64(w, 2000), u32(w, 5), u32(w, 0), u8(w, 0);
	msg(w, 1, "will/dev", "second", 0, 0, 0), rec_end(w, at);
	write_state_file("broker-0.journal", w);

	x = fx_on();
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 0);
	retained(x, 1, "gone", got, sizeof(got), NULL);
	assert_string_equal(got, "");
	retained(x, 1, "props", got, sizeof(got), &p);
	assert_string_equal(got, "p");
	assert_true(mqtt_props_has(&p.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL));
	assert_int_equal(p.props.v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u, 3600);
	assert_int_equal(p.props.v[MQTT_PROP_PAYLOAD_FORMAT_INDICATOR].u, 1);
	assert_int_equal(p.props.n_user, 2);

	fx_connect(x, 2, MQTT_V311, "watch", true, 60, NULL);
	fx_subscribe(x, 2, "will/#", 1);
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	assert_true(fx_connect(x, 0, MQTT_V5, "dev", false, 60, &props)); /* present 1 */
	assert_true(fx_next(x, 0, &r)); /* in flight first: DUP, same id */
	assert_int_equal(r.type, MQTT_PUBLISH);
	assert_true(r.publish.dup);
	assert_int_equal(r.publish.packet_id, 11);
	assert_memory_equal(r.publish.payload, "inflight", 8);
	assert_true(fx_next(x, 0, &r)); /* the PUBREL owed */
	assert_int_equal(r.type, MQTT_PUBREL);
	assert_int_equal(r.ack.packet_id, 12);
	fx_expect_publish(x, 0, "cmd/d", "queued", 1);
	fx_expect_none(x, 0);
	/* 22 is awaiting PUBREL, 21 is not */
	fx_ack(x, 0, MQTT_PUBREL, 22);
	fx_expect_type(x, 0, MQTT_PUBCOMP, 0);
	fx_ack(x, 0, MQTT_PUBREL, 21);
	fx_expect_type(x, 0, MQTT_PUBCOMP, MQTT_RC_PACKET_ID_NOT_FOUND);
	/* its subscriptions: "other" carries subscription id 9 */
	fx_connect(x, 3, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 3, "other", "o", 1, 1, false);
	fx_expect_type(x, 3, MQTT_PUBACK, 0);
	p = fx_expect_publish(x, 0, "other", "o", 1);
	assert_int_equal(p.props.n_sub_ids, 1);
	assert_int_equal(p.props.sub_ids[0], 9);
	/* the will: the client is back, so it is not published */
	fx_tick(x, 3000);
	fx_expect_none(x, 2);
	fx_free(x);
	free(w);
}

/* The same session's will, left pending: published 2 s after the restart, not before. */
static void
test_replayed_will_due(void **state)
{
	struct w *w = calloc(1, sizeof(*w));
	struct fx *x;
	size_t at;

	(void)state;
	file_hdr(w, 1, 1, 0);
	at = rec_begin(w, R_SESS), str(w, "dev"), u32(w, 600), u32(w, 0), rec_end(w, at);
	at = rec_begin(w, R_WILL), str(w, "dev"), u64(w, 2000), u32(w, 5), u32(w, 30), u8(w, 1);
	msg(w, 1, "will/dev", "bye", 0, 0, 0), rec_end(w, at);
	write_state_file("broker-0.journal", w);
	x = fx_on();
	fx_connect(x, 2, MQTT_V5, "watch", true, 60, NULL);
	fx_subscribe(x, 2, "will/#", 1);
	fx_tick(x, 1000);
	fx_expect_none(x, 2);
	fx_tick(x, 1500);
	{
		struct mqtt_publish p = fx_expect_publish(x, 2, "will/dev", "bye", 1);

		/* its expiry counts from its publication */
		assert_int_equal(p.props.v[MQTT_PROP_MESSAGE_EXPIRY_INTERVAL].u, 30);
	}
	fx_free(x);
	free(w);
}

/* Queued and in-flight entries of a session, replayed in every order the journal can hold
 * them: queued ones deleted from the middle and the end of the queue, one sent from the queue
 * (into the window with its id), a state for an entry that is not there, a PUBREL owed with
 * no message, a deletion of nothing, and an entry whose packet id is taken already (queued:
 * it goes as a new message). The client sees exactly what is left, in order. */
static void
test_queue_records(void **state)
{
	struct w *w = calloc(1, sizeof(*w));
	struct mqtt_packet r;
	struct fx *x;
	size_t at;

	(void)state;
	file_hdr(w, 1, 1, 0);
	at = rec_begin(w, R_SESS), str(w, "q"), u32(w, 600), u32(w, 0), rec_end(w, at);
	for (uint32_t did = 1; did <= 3; did++) {
		const char *pl[] = { "", "a", "b", "c" };

		at = rec_begin(w, R_MSG), str(w, "q"), u32(w, did), u16(w, 0), u8(w, 0), u8(w, 1);
		u8(w, 0), u32(w, 0), msg(w, 1, "t", pl[did], 0, 0, 0), rec_end(w, at);
	}
	at = rec_begin(w, R_MSG_DEL), str(w, "q"), u32(w, 2), rec_end(w, at);        /* middle */
	at = rec_begin(w, R_MSG_DEL), str(w, "q"), u32(w, 3), rec_end(w, at);        /* the tail */
	at = rec_begin(w, R_MSG_DEL), str(w, "q"), u32(w, 77), rec_end(w, at);       /* nothing */
	at = rec_begin(w, R_MSG_STATE), str(w, "q"), u32(w, 1), u16(w, 5), u8(w, 1); /* sent */
	rec_end(w, at);
	at = rec_begin(w, R_MSG_STATE), str(w, "q"), u32(w, 9), u16(w, 0), u8(w, 1); /* nobody */
	rec_end(w, at);
	at = rec_begin(w, R_MSG_STATE), str(w, "q"), u32(w, 10), u16(w, 6), u8(w, 3); /* PUBREL */
	rec_end(w, at);
	at = rec_begin(w, R_MSG), str(w, "q"), u32(w, 11), u16(w, 5), u8(w, 1), u8(w, 1);
	u8(w, 0), u32(w, 0), msg(w, 1, "t", "d", 0, 0, 0), rec_end(w, at); /* id 5 is taken */
	write_state_file("broker-0.journal", w);

	x = fx_on();
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 0);
	assert_true(fx_connect(x, 0, MQTT_V311, "q", false, 60, NULL));
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.type, MQTT_PUBLISH);
	assert_true(r.publish.dup);
	assert_int_equal(r.publish.packet_id, 5);
	assert_memory_equal(r.publish.payload, "a", 1);
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.type, MQTT_PUBREL);
	assert_int_equal(r.ack.packet_id, 6);
	assert_true(fx_next(x, 0, &r));
	assert_int_equal(r.type, MQTT_PUBLISH);
	assert_false(r.publish.dup);
	assert_int_not_equal(r.publish.packet_id, 5);
	assert_memory_equal(r.publish.payload, "d", 1);
	fx_expect_none(x, 0);
	fx_free(x);
	free(w);
}

/* ---- snapshots of what is in flight ---- */

/* A retained message whose expiry passed before a snapshot was written is not back after a
 * restart (its expiry is kept as what was left of it, at least 1 ms). */
static void
test_expired_retained_not_back(void **state)
{
	struct fx *x = fx_on();
	struct mqtt_packet p = { .type = MQTT_PUBLISH };
	char got[32];

	(void)state;
	fx_connect(x, 0, MQTT_V5, "pub", true, 60, NULL);
	p.publish.topic = MQTT_STR("short");
	p.publish.payload = (const uint8_t *)"lived";
	p.publish.payload_len = 5;
	p.publish.retain = true;
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 1);
	assert_int_equal(fx_send(x, 0, &p), 0);
	fx_publish(x, 0, "long", "kept", 0, 0, true);
	fx_tick(x, 1);
	x->now += 2000;
	broker_persist_fail_next = 1; /* the next write fails: the state is written whole */
	fx_publish(x, 0, "other", "o", 1, 1, true);
	fx_expect_type(x, 0, MQTT_PUBACK, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_tick(x, 0);
	fx_free(x);
	x = fx_on();
	retained(x, 1, "short", got, sizeof(got), NULL);
	assert_string_equal(got, "");
	retained(x, 1, "long", got, sizeof(got), NULL);
	assert_string_equal(got, "kept");
	fx_free(x);
}

/* A snapshot taken while a session has several messages in flight (a window larger than the
 * 256 slots kept on the stack), a QoS 0 one queued and its will pending: after a restart the
 * in-flight ones come again in their order with DUP, the QoS 0 one is not kept, and the will
 * is published once its delay (counted from the restart) has passed. */
static void
test_snapshot_in_flight(void **state)
{
	struct broker_config cfg;
	struct mqtt_packet p = { .type = MQTT_CONNECT }, r;
	uint16_t ids[3];
	struct fx *x;

	(void)state;
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_inflight = 300;
	x = fx_new(&cfg);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	fx_open(x, 0, MQTT_V5);
	p.connect.version = MQTT_V5;
	p.connect.keepalive_s = 60;
	p.connect.client_id = MQTT_STR("dev");
	p.connect.has_will = true;
	p.connect.will.topic = MQTT_STR("will/dev");
	p.connect.will.payload = MQTT_STR("bye");
	p.connect.will.qos = 1;
	mqtt_props_set_u32(&p.connect.will.props, MQTT_PROP_WILL_DELAY_INTERVAL, 20);
	mqtt_props_set_u32(&p.connect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	assert_int_equal(fx_send(x, 0, &p), 0);
	assert_false(fx_connack(x, 0));
	fx_subscribe(x, 0, "t/#", 1);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	for (uint16_t i = 0; i < 3; i++) {
		char t[8];

		snprintf(t, sizeof(t), "t/%u", i);
		fx_publish(x, 1, t, "m", 1, (uint16_t)(i + 1), false);
		fx_expect_type(x, 1, MQTT_PUBACK, 0);
		ids[i] = fx_expect_publish(x, 0, t, "m", 1).packet_id;
	}
	fx_close(x, 0); /* the will waits 20 s */
	fx_publish(x, 1, "t/q0", "zero", 0, 0, false);
	broker_persist_fail_next = 1;
	fx_publish(x, 1, "t/x", "x", 1, 9, false); /* fails: the next tick snapshots */
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_tick(x, 1);
	fx_free(x);

	x = fx_new(&cfg);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	fx_connect(x, 2, MQTT_V311, "watch", true, 60, NULL);
	fx_subscribe(x, 2, "will/#", 1);
	fx_tick(x, 19000);
	fx_expect_none(x, 2);
	fx_tick(x, 2000);
	fx_expect_publish(x, 2, "will/dev", "bye", 1);
	assert_true(fx_connect(x, 0, MQTT_V5, "dev", false, 60, &p.connect.props));
	for (uint16_t i = 0; i < 3; i++) {
		assert_true(fx_next(x, 0, &r));
		assert_int_equal(r.type, MQTT_PUBLISH);
		assert_true(r.publish.dup);
		assert_int_equal(r.publish.packet_id, ids[i]);
	}
	fx_expect_publish(x, 0, "t/x", "x", 1);
	fx_expect_none(x, 0); /* not the QoS 0 one */
	fx_free(x);
}

/* Files that cannot be read at all (a symbolic link that loops): the open fails with the
 * reason and leaves them; the next open, once they are fixed, works. */
static void
test_unreadable_files(void **state)
{
	char p[160];

	(void)state;
	for (int k = 0; k < 2; k++) {
		const char *name = k == 0 ? "broker-0.snap" : "broker-0.journal";
		struct fx *x = fx_new(NULL);

		path_of(p, sizeof(p), name);
		assert_int_equal(symlink(name, p), 0);
		assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -ELOOP);
		assert_int_equal(unlink(p), 0);
		assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
		fx_free(x);
		rm_entry("broker-0.journal");
		rm_entry("broker-0.snap");
	}
}

/* The sync period given at open: a change waits at most that long for its fdatasync. */
static void
test_sync_period(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	assert_int_equal(broker_persist_open(x->b, dir, 0, 50, x->now), 0);
	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 0, "t", "v", 1, 1, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_tick(x, 40);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 0);
	fx_tick(x, 10);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 1);
	fx_tick(x, 100); /* nothing new: no sync */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 1);
	fx_free(x);
}

/* The periodic fdatasync runs on the syncer thread: a slow one (a gate the test holds shut)
 * never holds up the lcore's tick, nor the next publish and its PUBACK; while it lasts no second
 * one is started; one that fails is counted and logged at the next tick (PERSIST_FAIL). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open, in;
	int calls, fail_errno;
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, true, false, 0, 0 };

static int
gated_sync(int fd)
{
	(void)fd;
	pthread_mutex_lock(&gate.mu);
	gate.calls++;
	gate.in = true;
	pthread_cond_broadcast(&gate.cv);
	while (!gate.open)
		pthread_cond_wait(&gate.cv, &gate.mu);
	gate.in = false;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	if (gate.fail_errno != 0) {
		errno = gate.fail_errno;
		return -1;
	}
	return 0;
}

static void
gate_wait(bool in, int calls)
{
	pthread_mutex_lock(&gate.mu);
	while (gate.in != in || gate.calls < calls)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
}

static void
gate_set(bool open)
{
	pthread_mutex_lock(&gate.mu);
	gate.open = open;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

static void
test_sync_off_the_lcore(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	broker_persist_fdatasync = gated_sync;
	gate.calls = gate.fail_errno = 0;
	gate_set(false);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 50, x->now), 0);
	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 0, "t", "v", 1, 1, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_tick(x, 50); /* the sync starts on its thread and sticks at the gate */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 1);
	gate_wait(true, 1);
	fx_publish(x, 0, "t", "w", 1, 2, true); /* the lcore goes on meanwhile */
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_tick(x, 50); /* due again, the last one still running: not a second one */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 1);
	gate.fail_errno = EIO;
	gate_set(true);
	/* the failure is counted at the first tick after the syncer recorded it, and the change
	 * still waiting is handed over in that same tick */
	for (int i = 0; i < 2000 && fx_count(x, BROKER_C_PERSIST_FAIL) == 0; i++) {
		fx_tick(x, 1);
		usleep(1000);
	}
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 1);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 2);
	gate_wait(false, 2);
	gate.fail_errno = 0;
	fx_free(x); /* joins the syncer */
	broker_persist_fdatasync = fdatasync;
}

/* ---- writes that fail ---- */

static void
fsize_limit(rlim_t n)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = n;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static off_t
journal_size(void)
{
	char p[160];
	struct stat st;

	path_of(p, sizeof(p), "broker-0.journal");
	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* The disk refuses the journal's write part way (the kernel's file-size limit: a short
 * write, then EFBIG): counted and logged once, the partial record cut off, and the snapshot
 * at the next tick fails too (counted) until there is room; then the whole state is written
 * again and nothing the clients were told is lost after a restart. */
static void
test_write_refused_by_the_disk(void **state)
{
	struct fx *x = fx_on();
	struct mqtt_publish p;
	off_t before;
	char got[32];

	(void)state;
	signal(SIGXFSZ, SIG_IGN);
	fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_close(x, 0);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_tick(x, 1);
	before = journal_size();
	fsize_limit((rlim_t)before + 20); /* room for part of the next record */
	fx_publish(x, 1, "t", "m1", 1, 1, true);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_true(fx_count(x, BROKER_C_PERSIST_FAIL) >= 1);
	assert_int_equal(journal_size(), before); /* the partial record is gone */
	fx_publish(x, 1, "t", "m2", 1, 2, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	{
		uint64_t fails = fx_count(x, BROKER_C_PERSIST_FAIL),
			 compacted = fx_count(x, BROKER_C_PERSIST_COMPACTED);

		fx_tick(x, 10); /* the snapshot does not fit either */
		assert_true(fx_count(x, BROKER_C_PERSIST_FAIL) > fails);
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted);
		fsize_limit(RLIM_INFINITY);
		fx_tick(x, 10); /* room again: written whole */
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted + 1);
	}
	fx_free(x);

	x = fx_on();
	retained(x, 2, "t", got, sizeof(got), NULL);
	assert_string_equal(got, "m1");
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	p = fx_expect_publish(x, 0, "t", "m1", 1);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	p = fx_expect_publish(x, 0, "t", "m2", 1);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* The first open's snapshot cannot be written: the open fails and leaves the broker without
 * state (and usable). */
static void
test_open_snapshot_write_fails(void **state)
{
	struct fx *x = fx_new(NULL);

	(void)state;
	broker_persist_fail_next = 1;
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), -EIO);
	assert_int_equal(broker_persist_fail_next, 0);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	fx_free(x);
}

/* A compaction that fails at its second step (the new journal cannot take the old one's
 * name) leaves a snapshot newer than the journal: it is tried again at each tick until it
 * works, and then what changed meanwhile is found after a restart. */
static void
test_compaction_fails_halfway(void **state)
{
	struct fx *x = fx_on();
	char got[32];

	(void)state;
	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 0, "a", "1", 0, 0, true);
	fx_tick(x, 1);
	broker_persist_fail_next = 1;           /* this write fails: the next tick compacts */
	fx_publish(x, 0, "b", "2", 1, 1, true); /* QoS 1: written before its PUBACK */
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 1);
	dir_at("broker-0.journal"); /* from now on the journal's name is taken */
	{
		uint64_t compacted = fx_count(x, BROKER_C_PERSIST_COMPACTED);

		fx_tick(x, 1);
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted);
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 2);
		fx_publish(x, 0, "c", "3", 0, 0, true);
		fx_tick(x, 1);
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 3); /* tried again */
		undir_at("broker-0.journal");
		fx_tick(x, 1);
		assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted + 1);
	}
	fx_publish(x, 0, "d", "4", 0, 0, true);
	fx_free(x);
	x = fx_on();
	retained(x, 1, "a", got, sizeof(got), NULL);
	assert_string_equal(got, "1");
	retained(x, 1, "c", got, sizeof(got), NULL);
	assert_string_equal(got, "3");
	retained(x, 1, "d", got, sizeof(got), NULL);
	assert_string_equal(got, "4");
	fx_free(x);
}

/* A retained PUBLISH of n bytes of payload, QoS 1, fed whole (larger than fx_send takes). */
static void
publish_big(struct fx *x, int i, const char *topic, size_t n, uint16_t pid)
{
	static uint8_t payload[200 * 1024], buf[210 * 1024];
	struct mqtt_packet p = { .type = MQTT_PUBLISH };
	int len;

	assert_true(n <= sizeof(payload));
	memset(payload, 'b', n);
	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = payload;
	p.publish.payload_len = (uint32_t)n;
	p.publish.qos = 1;
	p.publish.packet_id = pid;
	p.publish.retain = true;
	len = mqtt_encode(buf, sizeof(buf), x->f[i].version, &p);
	assert_true(len > 0);
	assert_int_equal(fx_feed(x, i, buf, (size_t)len), 0);
	fx_expect_type(x, i, MQTT_PUBACK, 0);
	fx_read_all(x, i);
}

/* The same when the compaction was due to the journal's size: the snapshot is newer than the
 * journal it could not replace, so what the journal gets after is ignored at the next open
 * until a compaction works. It is tried again at the next tick (not once the journal has
 * doubled again), and the retained message published after the failure survives. */
static void
test_size_compaction_fails_halfway(void **state)
{
	struct fx *x = fx_on();
	char got[32];

	(void)state;
	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	for (uint16_t i = 0; i < 22; i++) /* 4.4 MB of journal, one retained message */
		publish_big(x, 0, "big", 200 * 1024, (uint16_t)(i + 1));
	dir_at("broker-0.journal");
	fx_tick(x, 1); /* compaction: the snapshot is written, the new journal is not */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 1);
	undir_at("broker-0.journal");
	fx_publish(x, 0, "after", "kept", 1, 1, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_tick(x, 1);
	fx_tick(x, 1);
	fx_free(x);
	x = fx_on();
	retained(x, 1, "after", got, sizeof(got), NULL);
	assert_string_equal(got, "kept");
	fx_free(x);
}

/* ---- a compaction's file work on the syncer thread ---- */

/* The syncer's fdatasync, one call at a time: the n-th call waits until allowed >= n; the
 * fail_at-th fails (EIO). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int entered, allowed, fail_at;
} step = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };

static int
step_sync(int fd)
{
	int n;

	pthread_mutex_lock(&step.mu);
	n = ++step.entered;
	pthread_cond_broadcast(&step.cv);
	while (n > step.allowed)
		pthread_cond_wait(&step.cv, &step.mu);
	pthread_mutex_unlock(&step.mu);
	if (n == step.fail_at) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static void
step_reset(int allowed, int fail_at)
{
	pthread_mutex_lock(&step.mu);
	step.entered = 0;
	step.allowed = allowed;
	step.fail_at = fail_at;
	pthread_mutex_unlock(&step.mu);
}

static void
step_wait_entered(int n)
{
	pthread_mutex_lock(&step.mu);
	while (step.entered < n)
		pthread_cond_wait(&step.cv, &step.mu);
	pthread_mutex_unlock(&step.mu);
}

static void
step_allow(int n)
{
	pthread_mutex_lock(&step.mu);
	step.allowed = n;
	pthread_cond_broadcast(&step.cv);
	pthread_mutex_unlock(&step.mu);
}

/* The state directory as a SIGKILL now would leave it (the files' contents: the page cache),
 * copied to dir.<tag>. */
static void
crash_copy(char tag, char *out, size_t cap)
{
	char cmd[256];

	snprintf(out, cap, "%s.%c", dir, tag);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -a %s %s", out, dir, out);
	assert_int_equal(system(cmd), 0);
}

static void
rm_copy(const char *copy)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", copy);
	assert_int_equal(system(cmd), 0);
}

static bool
exists(const char *d, const char *name)
{
	char p[200];

	snprintf(p, sizeof(p), "%s/%s", d, name);
	return access(p, F_OK) == 0;
}

/* A broker on a copy: the retained payloads of "big" (its first 4 bytes), a1, a2 and a3. */
static void
recovered(const char *d, char got[4][32])
{
	struct fx *x = fx_new(NULL);

	assert_int_equal(broker_persist_open(x->b, d, 0, 0, x->now), 0);
	retained(x, 1, "big", got[0], 5, NULL);
	retained(x, 1, "a1", got[1], 32, NULL);
	retained(x, 1, "a2", got[2], 32, NULL);
	retained(x, 1, "a3", got[3], 32, NULL);
	fx_free(x);
}

/* 4.4 MB of journal (one retained message), no tick yet: the next tick compacts (its periodic
 * sync not due: state_sync is 1 s, the clock has not moved). */
static struct fx *
fx_before_compaction(void)
{
	struct fx *x = fx_on();

	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	for (uint16_t i = 0; i < 22; i++)
		publish_big(x, 0, "big", 200 * 1024, (uint16_t)(i + 1));
	return x;
}

/*
 * A compaction due to the journal's size runs its syncs and renames on the syncer thread: the
 * tick returns while the syncer is held at its first sync, and the lcore goes on appending
 * (PUBACKs) to the new journal under its `.next` name. A kill at each step leaves files the
 * next open reads whole: held at the old journal's sync (the snapshot not written: the old
 * journal, then `.next`), held at the new journal's sync (the snapshot renamed: the snapshot,
 * then `.next`); once it is done, `.next` is the journal. With the compaction's syncs on the
 * lcore, the tick itself waited for all three.
 */
static void
test_compaction_off_the_lcore(void **state)
{
	struct fx *x = fx_before_compaction();
	uint64_t compacted = fx_count(x, BROKER_C_PERSIST_COMPACTED);
	char a[120], b[120], got[4][32];

	(void)state;
	step_reset(0, 0);
	broker_persist_fdatasync = step_sync;
	broker_tick(x->b, x->now); /* returns: the syncer holds the first sync */
	step_wait_entered(1);
	assert_true(exists(dir, "broker-0.journal.next"));
	fx_publish(x, 0, "a1", "one", 1, 100, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	broker_tick(x->b, x->now += 10); /* the compaction still runs: no second one, no sync */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted);
	crash_copy('A', a, sizeof(a));
	step_allow(2); /* the snapshot's sync goes, the new journal's waits */
	step_wait_entered(3);
	fx_publish(x, 0, "a2", "two", 1, 101, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	crash_copy('B', b, sizeof(b));
	step_allow(100);
	broker_persist_settle(x->b);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted + 1);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 0);
	assert_false(exists(dir, "broker-0.journal.next"));
	fx_publish(x, 0, "a3", "three", 1, 102, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_free(x);
	broker_persist_fdatasync = fdatasync;

	recovered(a, got); /* the snapshot of before, the old journal, then .next */
	assert_string_equal(got[0], "bbbb");
	assert_string_equal(got[1], "one");
	recovered(b, got); /* the new snapshot (the old journal older: not read), then .next */
	assert_string_equal(got[0], "bbbb");
	assert_string_equal(got[1], "one");
	assert_string_equal(got[2], "two");
	recovered(dir, got);
	assert_string_equal(got[0], "bbbb");
	assert_string_equal(got[1], "one");
	assert_string_equal(got[2], "two");
	assert_string_equal(got[3], "three");
	assert_false(exists(a, "broker-0.journal.next")); /* the open compacted it away */
	rm_copy(a);
	rm_copy(b);
}

/*
 * A compaction keeps the journal's names for the deliveries it writes into its snapshot: the
 * lcore goes on journaling under them into `.next` while the syncer works, and a kill before the
 * snapshot's rename replays the old journal, then `.next`. A subscriber that took and settled
 * its queued messages meanwhile (QoS 1 PUBACK, QoS 2 through PUBCOMP) gets none of them again
 * after the restart. The compaction gave each delivery a new number, the old journal knew the
 * old ones, and every ack in `.next` matched nothing: both came back, the QoS 2 one as a new
 * message (DUP 0, its packet id free at the client): delivered twice.
 */
static void
test_compaction_keeps_delivery_ids(void **state)
{
	struct fx *x = fx_on();
	struct mqtt_packet r;
	uint16_t pid[2];
	char a[120];

	(void)state;
	fx_connect(x, 1, MQTT_V311, "sub", false, 60, NULL);
	fx_subscribe(x, 1, "plant/#", 2);
	fx_close(x, 1);
	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 0, "plant/t", "m1", 1, 1, false);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_publish(x, 0, "plant/t", "m2", 2, 2, false);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	fx_ack(x, 0, MQTT_PUBREL, 2);
	fx_expect_type(x, 0, MQTT_PUBCOMP, 0);
	for (uint16_t i = 0; i < 22; i++) /* 4.4 MB of journal: the next tick compacts */
		publish_big(x, 0, "big", 200 * 1024, (uint16_t)(i + 10));
	step_reset(0, 0);
	broker_persist_fdatasync = step_sync;
	broker_tick(x->b, x->now); /* returns: the syncer holds the old journal's sync */
	step_wait_entered(1);
	assert_true(exists(dir, "broker-0.journal.next"));
	assert_true(fx_connect(x, 1, MQTT_V311, "sub", false, 60, NULL));
	for (int i = 0; i < 2; i++) {
		assert_true(fx_next(x, 1, &r));
		assert_int_equal(r.type, MQTT_PUBLISH);
		assert_int_equal(r.publish.qos, i + 1);
		pid[i] = r.publish.packet_id;
	}
	fx_ack(x, 1, MQTT_PUBACK, pid[0]);
	fx_ack(x, 1, MQTT_PUBREC, pid[1]);
	fx_expect_type(x, 1, MQTT_PUBREL, 0);
	fx_ack(x, 1, MQTT_PUBCOMP, pid[1]);
	fx_expect_none(x, 1);
	crash_copy('K', a, sizeof(a)); /* SIGKILL: the snapshot not renamed yet */
	step_allow(100);
	broker_persist_settle(x->b);
	fx_free(x);
	broker_persist_fdatasync = fdatasync;

	x = fx_new(NULL);
	assert_int_equal(broker_persist_open(x->b, a, 0, 0, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_BAD), 0);
	assert_true(fx_connect(x, 1, MQTT_V311, "sub", false, 60, NULL)); /* session present */
	fx_expect_none(x, 1); /* nothing delivered again */
	fx_free(x);
	rm_copy(a);
}

/* A message as large as max_packet_size lets in (here 80 MiB; MQTT allows 256 MiB) is one
 * record longer than 64 MiB: after a restart it is back in its subscriber's queue, and so is
 * what came after it. The reader took any record over 64 MiB for a torn tail: the replay
 * stopped there, and the open's compaction made the loss of it and of all after it final. */
static void
test_record_of_a_large_message(void **state)
{
	static const size_t big = 65u << 20;
	struct broker_config cfg;
	struct broker_gauges g;
	struct mqtt_packet p = { .type = MQTT_PUBLISH };
	uint8_t *pl = malloc(big), *buf = malloc(big + 64);
	struct fx *x;
	char a[120], got[32];
	int len;

	(void)state;
	assert_non_null(pl);
	assert_non_null(buf);
	broker_config_defaults(&cfg);
	cfg.sys_interval_ms = 0;
	cfg.max_packet_size = 80u << 20;
	x = fx_new(&cfg);
	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	fx_connect(x, 1, MQTT_V311, "sub", false, 60, NULL);
	fx_subscribe(x, 1, "q/#", 1);
	fx_close(x, 1);
	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	memset(pl, 'x', big);
	p.publish.topic = (struct mqtt_str){ "q/big", 5 };
	p.publish.payload = pl;
	p.publish.payload_len = (uint32_t)big;
	p.publish.qos = 1;
	p.publish.packet_id = 1;
	len = mqtt_encode(buf, big + 64, MQTT_V311, &p);
	assert_true(len > 0);
	assert_int_equal(fx_feed(x, 0, buf, (size_t)len), 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_publish(x, 0, "q/c", "after", 1, 2, false);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_publish(x, 0, "a1", "after", 1, 3, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	crash_copy('L', a, sizeof(a));
	fx_free(x);
	free(buf);
	free(pl);

	x = fx_new(&cfg);
	assert_int_equal(broker_persist_open(x->b, a, 0, 0, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 0);
	broker_gauges_get(x->b, &g);
	assert_int_equal(g.queued, 2);
	retained(x, 2, "a1", got, sizeof(got), NULL);
	assert_string_equal(got, "after");
	fx_free(x);
	rm_copy(a);
}

/* The syncer's compaction fails (the snapshot's fdatasync: EIO): counted and logged at the
 * tick that takes its result, the files stay readable (the old journal, then `.next`), and the
 * next tick writes the state whole on the lcore, `.next` removed. */
static void
test_compaction_off_the_lcore_fails(void **state)
{
	struct fx *x = fx_before_compaction();
	uint64_t compacted = fx_count(x, BROKER_C_PERSIST_COMPACTED);
	char a[120], got[4][32];

	(void)state;
	step_reset(100, 2);
	broker_persist_fdatasync = step_sync;
	fx_tick(x, 0); /* started, and its result taken (fx_tick settles) */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 1);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted);
	fx_publish(x, 0, "a1", "one", 1, 100, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	crash_copy('C', a, sizeof(a));
	assert_true(exists(a, "broker-0.journal.next"));
	fx_tick(x, 1); /* on the lcore now */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), compacted + 1);
	assert_false(exists(dir, "broker-0.journal.next"));
	fx_publish(x, 0, "a2", "two", 1, 101, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_free(x);
	broker_persist_fdatasync = fdatasync;

	recovered(a, got);
	assert_string_equal(got[0], "bbbb");
	assert_string_equal(got[1], "one");
	recovered(dir, got);
	assert_string_equal(got[1], "one");
	assert_string_equal(got[2], "two");
	rm_copy(a);
}

/* A power cut while the old journal's sync had not ended: its tail torn, `.next` on disk. The
 * `.next` journal continues what was lost, so it is not read (a torn record ends a replay; a
 * later file is after it too): the state is the old journal's up to its tear. */
static void
test_next_after_torn_journal(void **state)
{
	struct fx *x = fx_before_compaction();
	char a[120], p[200], got[4][32];
	struct stat st;

	(void)state;
	fx_publish(x, 0, "a3", "three", 1, 99, true); /* the old journal's last record */
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	step_reset(0, 0);
	broker_persist_fdatasync = step_sync;
	broker_tick(x->b, x->now);
	step_wait_entered(1);
	fx_publish(x, 0, "a1", "one", 1, 100, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	crash_copy('D', a, sizeof(a));
	step_allow(100);
	fx_free(x);
	broker_persist_fdatasync = fdatasync;

	snprintf(p, sizeof(p), "%s/broker-0.journal", a);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(truncate(p, st.st_size - 3), 0); /* a3's record cut short */
	x = fx_new(NULL);
	assert_int_equal(broker_persist_open(x->b, a, 0, 0, x->now), 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_TORN), 1);
	retained(x, 1, "big", got[0], 5, NULL);
	retained(x, 1, "a3", got[3], 32, NULL);
	retained(x, 1, "a1", got[1], 32, NULL);
	fx_free(x);
	assert_string_equal(got[0], "bbbb");
	assert_string_equal(got[3], "");
	assert_string_equal(got[1], "");
	rm_copy(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_makes_parents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_path_unusable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_path_unusable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_newer_version_and_old_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_records_for_nobody_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_of_a_large_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_record_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replayed_will_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_retained_not_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_period, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_off_the_lcore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_refused_by_the_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_snapshot_write_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_fails_halfway, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_size_compaction_fails_halfway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_off_the_lcore, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_compaction_keeps_delivery_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_compaction_off_the_lcore_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_after_torn_journal, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
