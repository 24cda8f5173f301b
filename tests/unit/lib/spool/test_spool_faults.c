/*
 * test_spool_faults.c: lib/spool's error paths through its I/O ops table and a failing
 * allocator (fail_alloc.h). Opening runs out of memory at each of its allocations in turn:
 * refused with -ENOMEM, nothing on disk changed, and the open that then succeeds finds every
 * record and acknowledgement. Reading meets an EIO on a record's header or body, or a record
 * changed on disk: that record is skipped and counted, the next one given. A group commit that
 * runs out of memory, or whose write returns 0 (no progress), fails its records and nothing
 * else. The ack log's compaction (past 4 MiB) fails at each of its steps: counted, the old log
 * still holds the truth after a crash; then it succeeds and the log is small again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fail_alloc.h"
#include "spool_fixture.h"
#include "spool_internal.h"

/* ---- I/O that fails on demand: the nth call of a kind from now (1: the next) ---- */
struct faults {
	int open_at, pread_at, pwrite_at, sync_at, rename_at;
	int err;          /* errno of the failure (0: EIO) */
	bool pwrite_zero; /* the failing pwrite returns 0 instead of -1 */
	int nopen, npread, npwrite, nsync, nrename;
	uint64_t writes; /* pwrites that went through */
};
static struct faults F;
static struct spool_io_ops fault_ops;

static bool
hit(int *n, int at)
{
	if (at && ++*n == at) {
		errno = F.err ? F.err : EIO;
		return true;
	}
	return false;
}

static int
f_open(void *ctx, const char *path, int flags, mode_t mode)
{
	(void)ctx;
	return hit(&F.nopen, F.open_at) ? -1 : spool_io_posix.open(NULL, path, flags, mode);
}

static ssize_t
f_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	(void)ctx;
	return hit(&F.npread, F.pread_at) ? -1 : spool_io_posix.pread(NULL, fd, buf, len, off);
}

static ssize_t
f_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	if (hit(&F.npwrite, F.pwrite_at))
		return F.pwrite_zero ? 0 : -1;
	F.writes++;
	return spool_io_posix.pwrite(NULL, fd, buf, len, off);
}

static int
f_fdatasync(void *ctx, int fd)
{
	(void)ctx, (void)fd;
	return hit(&F.nsync, F.sync_at) ? -1 : 0; /* no crash here: syncs are not needed */
}

static int
f_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	return hit(&F.nrename, F.rename_at) ? -1 : spool_io_posix.rename(NULL, from, to);
}

static int
f_fsync_dir(void *ctx, const char *d)
{
	(void)ctx, (void)d;
	return 0;
}

/* Arm one kind of failure: the nth call of it from now. */
static void
arm(int *at, int n)
{
	memset(&F, 0, sizeof(F));
	*at = n;
}

/* ---- helpers ---- */
static char dir[256];

static int
setup(void **state)
{
	(void)state;
	assert_int_equal(spool_fx_mkdtemp(dir, sizeof(dir), "test_spool_faults"), 0);
	memset(&F, 0, sizeof(F));
	fault_ops = spool_io_posix;
	fault_ops.open = f_open;
	fault_ops.pread = f_pread;
	fault_ops.pwrite = f_pwrite;
	fault_ops.fdatasync = f_fdatasync;
	fault_ops.rename = f_rename;
	fault_ops.fsync_dir = f_fsync_dir;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	fail_alloc_nth(0);
	spool_fx_rmtree(dir);
	return 0;
}

static void
base_cfg(struct spool_config *c)
{
	spool_config_defaults(c);
	c->dir = dir;
	c->io = &fault_ops;
	c->segment_bytes = 4096;
	c->commit_bytes = 8u << 10;
}

/* The names in dir and their sizes, as one string ("name:size name:size ..."), sorted. */
static char *
listing(void)
{
	static char out[8192];
	char names[128][256];
	size_t n = 0, off = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL && n < 128)
		if (de->d_name[0] != '.')
			snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char p[512];
		struct stat st;

		assert_true(snprintf(p, sizeof(p), "%s/%s", dir, names[i]) < (int)sizeof(p));
		assert_int_equal(stat(p, &st), 0);
		off += (size_t)snprintf(
		    out + off, sizeof(out) - off, "%s:%lld ", names[i], (long long)st.st_size);
	}
	return out;
}

/* ---- opening out of memory ---- */

/* A spool of several segments per class, some records acknowledged, one with a QoS 2 phase.
 * Opening it fails at each of its allocations in turn: -ENOMEM, the directory as it was;
 * the open that succeeds gives every record not acknowledged, in order, with its phase. */
static void
test_open_out_of_memory(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	char payload[200], before[8192];
	uint64_t want[200], got[200];
	size_t n_want = 0, n_got = 0;
	uint64_t k, q2_seq = 0, n_allocs, failed = 0;
	struct spool_rec r;
	char buf[512];
	int rc = -1;

	(void)state;
	base_cfg(&c);
	assert_int_equal(spool_open(&c, &sp), 0);
	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < 120; i++) {
		uint64_t seq = append(sp, (enum spool_class)(i % SPOOL_CLASS_N), 1, payload);

		if (i % 5 == 0) {
			assert_int_equal(spool_commit(sp), 0);
			assert_int_equal(spool_ack(sp, seq), 0);
		} else if (i == 61) {
			q2_seq = seq;
		}
	}
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_q2_mark(sp, q2_seq, SPOOL_Q2_RELEASED, 77), 0);
	assert_int_equal(spool_commit(sp), 0);
	while (spool_read_next(sp, &r, buf, sizeof(buf)) == 1)
		want[n_want++] = r.seq;
	assert_int_equal(n_want, 96);
	spool_close(sp);
	snprintf(before, sizeof(before), "%s", listing());
	assert_non_null(strstr(before, ".seg"));

	fail_alloc_nth(UINT64_MAX); /* counts, fails none */
	assert_int_equal(spool_open(&c, &sp), 0);
	n_allocs = fail_alloc_seen();
	fail_alloc_nth(0);
	spool_close(sp);
	assert_true(n_allocs > 20); /* buffers, segments, their indexes, the ack log */
	for (k = 1; k <= n_allocs; k++) {
		sp = NULL;
		fail_alloc_nth(k);
		rc = spool_open(&c, &sp);
		fail_alloc_nth(0);
		assert_int_equal(fail_alloc_failed(), 1);
		if (rc != 0) {
			assert_int_equal(rc, -ENOMEM);
			assert_null(sp);
			assert_string_equal(listing(), before); /* nothing removed or set aside */
			failed++;
			continue;
		}
		/* an allocation it can do without (an index sized up front): all there */
		n_got = 0;
		while (spool_read_next(sp, &r, buf, sizeof(buf)) == 1) {
			if (r.seq == q2_seq) {
				assert_int_equal(r.q2_state, SPOOL_Q2_RELEASED);
				assert_int_equal(r.q2_packet_id, 77);
			}
			got[n_got++] = r.seq;
		}
		assert_int_equal(n_got, n_want);
		assert_memory_equal(got, want, n_want * sizeof(want[0]));
		assert_int_equal(counter(sp, SPOOL_C_corrupt_segments), 0);
		spool_close(sp);
		snprintf(before, sizeof(before), "%s", listing());
	}
	assert_true(failed > 20);
}

/* ---- reading ---- */

/* An EIO reading a record's header, then another's body, and a record changed on disk after
 * its commit: each skipped and counted, the next one given; the age of the oldest record
 * cannot be told while its header cannot be read. */
static void
test_read_errors_skip(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct spool_rec r;
	char buf[512], path[512];
	uint64_t s[5], oldest = 0;
	int fd;

	(void)state;
	base_cfg(&c);
	assert_int_equal(spool_open(&c, &sp), 0);
	for (int i = 0; i < 5; i++)
		s[i] = append(sp, SPOOL_NORMAL, 1, "reading-0123456789");
	assert_int_equal(spool_commit(sp), 0);

	arm(&F.pread_at, 1);
	assert_int_equal(spool_oldest_ms(sp, &oldest), -EIO);
	arm(&F.pread_at, 0);
	assert_int_equal(spool_oldest_ms(sp, &oldest), 0);
	assert_true(oldest > 0);

	arm(&F.pread_at, 1); /* s[0]'s header */
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, s[1]);
	assert_int_equal(counter(sp, SPOOL_C_read_errors), 1);
	arm(&F.pread_at, 2); /* s[2]'s body */
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, s[3]);
	assert_memory_equal(r.payload, "reading-0123456789", 18);
	assert_int_equal(counter(sp, SPOOL_C_read_errors), 2);

	/* s[4]'s last payload byte changed on disk: its checksum fails */
	{
		DIR *d = opendir(dir);
		struct dirent *de;
		struct stat st;

		while ((de = readdir(d)) != NULL && strstr(de->d_name, ".seg") == NULL)
			;
		assert_non_null(de);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		closedir(d);
		fd = open(path, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(pwrite(fd, "X", 1, st.st_size - 1), 1);
		close(fd);
	}
	arm(&F.pread_at, 0);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 0);
	assert_int_equal(counter(sp, SPOOL_C_read_errors), 3);
	assert_int_equal(counter(sp, SPOOL_C_delivered), 2);
	assert_int_equal(spool_ack(sp, s[1]), 0);
	assert_int_equal(spool_ack(sp, s[3]), 0);
	assert_int_equal(spool_ack(sp, s[0]), -ENOENT); /* skipped: gone, not acknowledgeable */
	spool_close(sp);
}

/* ---- committing ---- */

struct settled {
	uint64_t ok, failed;
	int last_err;
};

static void
on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct settled *s = arg;

	if (status == 0) {
		s->ok += last - first + 1;
	} else {
		s->failed += last - first + 1;
		s->last_err = status;
	}
}

/* A commit that runs out of memory (a new segment, its index) or whose write makes no
 * progress (returns 0) fails the records it held (reported, never durable), and the next
 * commit works; after a restart only the durable ones are there. */
static void
test_commit_failures(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct settled st = { 0 };
	struct spool_rec r;
	char buf[512];
	uint64_t a, b, d, n = 0;
	int rc = 0;

	(void)state;
	base_cfg(&c);
	c.on_durable = on_durable;
	c.on_durable_arg = &st;
	assert_int_equal(spool_open(&c, &sp), 0);

	a = append(sp, SPOOL_ALARM, 1, "first");
	fail_alloc_from(1); /* every allocation of this commit fails */
	rc = spool_commit(sp);
	fail_alloc_nth(0);
	assert_int_equal(rc, -ENOMEM);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.last_err, -ENOMEM);
	assert_true(spool_seq_status(sp, a) < 0);
	assert_false(spool_rec_kept(sp, a));

	b = append(sp, SPOOL_ALARM, 1, "second");
	F.pwrite_zero = true;
	F.pwrite_at = 1;
	rc = spool_commit(sp);
	assert_int_equal(rc, -EIO);
	assert_int_equal(st.failed, 2);
	assert_int_equal(counter(sp, SPOOL_C_write_errors), 1);
	assert_true(spool_seq_status(sp, b) < 0);

	memset(&F, 0, sizeof(F));
	d = append(sp, SPOOL_ALARM, 1, "third");
	assert_int_equal(spool_wait_durable(sp, d, 1000), 1); /* no flusher: commits itself */
	assert_int_equal(st.ok, 1);
	spool_close(sp);

	sp = NULL;
	assert_int_equal(spool_open(&c, &sp), 0);
	while (spool_read_next(sp, &r, buf, sizeof(buf)) == 1) {
		assert_int_equal(r.seq, d);
		n++;
	}
	assert_int_equal(n, 1);
	spool_close(sp);
}

/* before_commit: what a producer wrote elsewhere (the agent's QoS 2 ids) made durable ahead of
 * the commit's records and acks. It runs once per commit that carries something, before any
 * record is written; when it fails, the commit's records fail (never durable, not there after a
 * restart) and its acks are not written: they go with the next commit, whose hook succeeds. */
struct hook {
	int calls, fail;
	uint64_t writes_seen; /* the spool's write count when the hook last ran */
};

static int
hook_fn(void *arg)
{
	struct hook *h = arg;

	h->calls++;
	h->writes_seen = F.writes;
	return h->fail;
}

static void
test_before_commit(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct settled st = { 0 };
	struct hook h = { 0 };
	struct spool_rec r;
	char buf[512];
	uint64_t a, b, n = 0, w0, w1;

	(void)state;
	base_cfg(&c);
	c.on_durable = on_durable;
	c.on_durable_arg = &st;
	c.before_commit = hook_fn;
	c.before_commit_arg = &h;
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_commit(sp), 0); /* nothing of its own: called all the same */
	assert_int_equal(h.calls, 1);
	h.calls = 0;

	a = append(sp, SPOOL_ALARM, 1, "first");
	assert_int_equal(spool_next_seq(sp), a + 1);
	w0 = F.writes;
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.writes_seen, w0); /* before the record was written */
	assert_true(F.writes > w0);
	assert_int_equal(spool_seq_status(sp, a), 1);

	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(spool_ack(sp, a), 0);
	b = append(sp, SPOOL_ALARM, 1, "second");
	h.fail = -EIO;
	w1 = F.writes;
	assert_int_equal(spool_commit(sp), -EIO);
	assert_int_equal(h.calls, 2);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.last_err, -EIO);
	assert_true(spool_seq_status(sp, b) < 0);
	assert_int_equal(counter(sp, SPOOL_C_sync_errors), 1);
	assert_int_equal(F.writes, w1); /* neither b nor a's release written */

	h.fail = 0;
	assert_int_equal(spool_commit(sp), 0); /* the release (and b's VOID): the hook first */
	assert_int_equal(h.calls, 3);
	assert_int_equal(h.writes_seen, w1);
	assert_true(F.writes > w1);
	spool_close(sp);

	sp = NULL;
	c.before_commit = NULL;
	assert_int_equal(spool_open(&c, &sp), 0);
	while (spool_read_next(sp, &r, buf, sizeof(buf)) == 1)
		n++;
	assert_int_equal(n, 0); /* a released, b never durable */
	spool_close(sp);
}

/* ---- the ack log's compaction ---- */

static uint64_t
file_size(const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(stat(p, &st), 0);
	return (uint64_t)st.st_size;
}

/* QoS 2 phase marks grow the ack log past 4 MiB: the commit after that compacts it. Each step
 * of the compaction fails in turn (its file cannot be made, written, synced, renamed): counted,
 * the commit itself succeeds, no temporary file stays, and after a crash the last phase of
 * each record is the one marked. Then it succeeds: the log is a few entries again, and says
 * the same. */
static void
test_acklog_compaction_failures(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct spool_rec r;
	char buf[512];
	uint64_t s1, s2, errors = 0;
	int *steps[] = { &F.open_at, &F.pwrite_at, &F.pwrite_at, &F.sync_at, &F.rename_at };
	int nth[] = { 1, 1, 2, 1, 1 };
	uint16_t pid = 1;

	(void)state;
	base_cfg(&c);
	assert_int_equal(spool_open(&c, &sp), 0);
	s1 = append(sp, SPOOL_NORMAL, 1, "q2-one");
	s2 = append(sp, SPOOL_NORMAL, 1, "q2-two");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_ack(sp, s2), 0);
	for (int i = 0; i < 180000; i++)
		assert_int_equal(spool_q2_mark(sp, s1, SPOOL_Q2_PUBLISHED, pid++), 0);
	assert_int_equal(spool_commit(sp), 0); /* written; over 4 MiB: compacted now */
	assert_int_equal(counter(sp, SPOOL_C_acklog_compactions), 1);
	assert_true(file_size(SPOOL_ACK_FILE) < 4096);

	for (unsigned i = 0; i < sizeof(nth) / sizeof(nth[0]); i++) {
		uint64_t before;

		for (int j = 0; j < 180000; j++)
			assert_int_equal(spool_q2_mark(sp, s1, SPOOL_Q2_PUBLISHED, pid++), 0);
		/* the marks are written first (one pwrite, one sync), then the compaction */
		memset(&F, 0, sizeof(F));
		*steps[i] = nth[i] + (steps[i] == &F.pwrite_at || steps[i] == &F.sync_at);
		assert_int_equal(spool_commit(sp), 0);
		assert_int_equal(counter(sp, SPOOL_C_acklog_errors), ++errors);
		assert_int_equal(counter(sp, SPOOL_C_acklog_compactions), i == 0); /* before */
		before = file_size(SPOOL_ACK_FILE);
		assert_true(before > (4u << 20));
		{
			char p[512];
			struct stat st;

			snprintf(p, sizeof(p), "%s/%s.tmp", dir, SPOOL_ACK_FILE);
			assert_int_equal(stat(p, &st), -1);
		}
		spool_abandon(sp); /* a crash now: the uncompacted log is what there is */
		memset(&F, 0, sizeof(F));
		sp = NULL;
		assert_int_equal(spool_open(&c, &sp), 0);
		assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
		assert_int_equal(r.seq, s1);
		assert_int_equal(r.q2_state, SPOOL_Q2_PUBLISHED);
		assert_int_equal(r.q2_packet_id, (uint16_t)(pid - 1));
		assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 0); /* s2 acked */
		errors = 0;
	}
	for (int j = 0; j < 10; j++) /* the next commit compacts the big log it opened with */
		assert_int_equal(spool_q2_mark(sp, s1, SPOOL_Q2_RELEASED, pid), 0);
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(counter(sp, SPOOL_C_acklog_compactions), 1);
	assert_true(file_size(SPOOL_ACK_FILE) < 4096);
	spool_close(sp);
	sp = NULL;
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.q2_state, SPOOL_Q2_RELEASED);
	assert_int_equal(r.q2_packet_id, pid);
	spool_close(sp);
}

/* ---- opening refused ---- */

/* A directory that cannot be made (a file in its path) or locked (the lock is a directory):
 * refused with the reason, nothing made. Files whose names only look like segments (a class
 * prefix, a wrong length or a letter in the number) are not segments: left alone. */
static void
test_open_refusals(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	char sub[400], p[512];
	struct spool_rec r;
	char buf[128];
	int fd;

	(void)state;
	base_cfg(&c);
	snprintf(p, sizeof(p), "%s/file", dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(sub, sizeof(sub), "%s/file/a/spool", dir);
	c.dir = sub;
	assert_int_equal(spool_open(&c, &sp), -ENOTDIR);
	assert_null(sp);
	unlink(p);

	snprintf(sub, sizeof(sub), "%s/locked", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(p, sizeof(p), "%s/lock", sub);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(spool_open(&c, &sp), -EISDIR);
	assert_null(sp);
	rmdir(p);
	rmdir(sub);

	c.dir = dir;
	for (int i = 0; i < 3; i++) {
		static const char *const names[] = { "alarm-q1-0001.seg",
			"alarm-q1-0000000000000000000x.seg", "normal-q0-00000000000000000001.sex" };

		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		fd = open(p, O_CREAT | O_WRONLY, 0600);
		assert_int_equal(write(fd, "not a segment", 13), 13);
		close(fd);
	}
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(counter(sp, SPOOL_C_recovered_segments), 0);
	assert_int_equal(counter(sp, SPOOL_C_corrupt_segments), 0);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 0);
	spool_close(sp);
	snprintf(p, sizeof(p), "%s/alarm-q1-0001.seg", dir);
	assert_int_equal(access(p, F_OK), 0); /* not removed, not set aside */
	spool_close(NULL);
	spool_abandon(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_out_of_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_errors_skip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_before_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acklog_compaction_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
