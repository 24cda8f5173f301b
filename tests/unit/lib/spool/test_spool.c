/*
 * test_spool.c: lib/spool. Append, read, ack and release; acks and QoS 2 phases across a
 * restart; group-commit ordering; recovery after a write torn at every byte of the last record
 * and of a segment header; corrupt records, headers and segments in the middle; ENOSPC, short
 * writes and a failing fdatasync through the fault-injecting ops table; the drop policy's order
 * and the age bound on a hand-moved clock; a child process SIGKILLed while appending, after
 * which every record it was told is durable is there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "spool_fixture.h"
#include "spool_internal.h"

/* ---- fault injection ---- */
struct faults {
	int pwrite_fail_at; /* the Nth pwrite from now fails (1 = the next) */
	int pwrite_errno;
	size_t pwrite_short; /* ... after writing this many bytes */
	bool pwrite_fail_all;
	int sync_fail_at;
	bool ftruncate_fails;
	bool real_sync; /* off: syncs are counted, not done (truncation stands in for a crash) */
	int npwrite, nsync;
	sem_t *hold_sync;     /* not NULL: each fdatasync waits for a post first (the flusher's) */
	volatile int in_sync; /* a held fdatasync is waiting */
};

static ssize_t
f_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	struct faults *f = ctx;
	f->npwrite++;
	if (f->pwrite_fail_all || (f->pwrite_fail_at && f->npwrite == f->pwrite_fail_at)) {
		if (f->pwrite_short && f->pwrite_short < len) {
			ssize_t n = pwrite(fd, buf, f->pwrite_short, off);
			f->pwrite_short = 0;
			return n; /* short; the retry of the rest fails */
		}
		errno = f->pwrite_errno ? f->pwrite_errno : EIO;
		return -1;
	}
	return spool_io_posix.pwrite(NULL, fd, buf, len, off);
}

static int
f_fdatasync(void *ctx, int fd)
{
	struct faults *f = ctx;
	if (f->hold_sync != NULL) {
		__atomic_store_n(&f->in_sync, 1, __ATOMIC_RELEASE);
		while (sem_wait(f->hold_sync) != 0)
			;
		__atomic_store_n(&f->in_sync, 0, __ATOMIC_RELEASE);
	}
	f->nsync++;
	if (f->sync_fail_at && f->nsync == f->sync_fail_at) {
		errno = EIO;
		return -1;
	}
	return f->real_sync ? spool_io_posix.fdatasync(NULL, fd) : 0;
}

static int
f_fsync_dir(void *ctx, const char *d)
{
	struct faults *f = ctx;
	return f->real_sync ? spool_io_posix.fsync_dir(NULL, d) : 0;
}

static int
f_ftruncate(void *ctx, int fd, off_t len)
{
	struct faults *f = ctx;
	if (f->ftruncate_fails) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.ftruncate(NULL, fd, len);
}

static struct spool_io_ops fault_ops;
static struct faults F;

/* ---- helpers ---- */
static char dir[256];
static uint64_t clock_ms = 1000000;
static uint64_t
fake_now(void *arg)
{
	(void)arg;
	return clock_ms;
}

static int
setup(void **state)
{
	(void)state;
	assert_int_equal(spool_fx_mkdtemp(dir, sizeof(dir), "test_spool"), 0);
	memset(&F, 0, sizeof(F));
	fault_ops = spool_io_posix;
	fault_ops.pwrite = f_pwrite;
	fault_ops.fdatasync = f_fdatasync;
	fault_ops.ftruncate = f_ftruncate;
	fault_ops.fsync_dir = f_fsync_dir;
	clock_ms = 1000000;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	spool_fx_rmtree(dir);
	return 0;
}

static void
base_cfg(struct spool_config *c)
{
	spool_config_defaults(c);
	c->dir = dir;
	c->io = &fault_ops;
	c->io_ctx = &F;
	c->now_ms = fake_now;
	c->commit_bytes = 8u << 10;
}

static struct spool *
open_ok(const struct spool_config *c)
{
	struct spool *sp = NULL;
	assert_int_equal(spool_open(c, &sp), 0);
	return sp;
}

/* Reads every deliverable record; returns how many, their seqs in out. */
static size_t
drain(struct spool *sp, uint64_t *out, size_t max)
{
	char buf[4096];
	struct spool_rec r;
	size_t n = 0;
	while (spool_read_next(sp, &r, buf, sizeof(buf)) == 1) {
		if (n < max)
			out[n] = r.seq;
		n++;
	}
	return n;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir ending in suffix, sorted; returns how many (at most max). */
static size_t
list_files(const char *suffix, char names[][128], size_t max)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	char *ptrs[256];
	static char store[256][128];
	size_t n = 0;
	struct dirent *de;
	size_t sl = strlen(suffix);
	while ((de = readdir(d)) && n < 256) {
		size_t l = strlen(de->d_name);
		if (l >= sl && l < 128 && !strcmp(de->d_name + l - sl, suffix)) {
			strcpy(store[n], de->d_name);
			ptrs[n] = store[n];
			n++;
		}
	}
	closedir(d);
	qsort(ptrs, n, sizeof(ptrs[0]), name_cmp);
	for (size_t i = 0; i < n && i < max; i++)
		strcpy(names[i], ptrs[i]);
	return n;
}

static size_t
count_files(const char *suffix)
{
	return list_files(suffix, NULL, 0);
}

static void
seg_path(unsigned idx, char *out, size_t len)
{
	/* the idx-th segment file in name order */
	char names[64][128];
	assert_true(list_files(".seg", names, 64) > idx);
	snprintf(out, len, "%s/%s", dir, names[idx]);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*len + 1);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void
spit(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	fclose(f);
}

static size_t
seg_records(const uint8_t *b, size_t len)
{
	size_t n = 0;
	for (size_t off = sizeof(struct spool_file_hdr); off + sizeof(struct spool_rec_hdr) <= len;
	     n++) {
		struct spool_rec_hdr h;
		memcpy(&h, b + off, sizeof(h));
		off += sizeof(h) + h.topic_len + h.payload_len;
	}
	return n;
}

/* ---- tests ---- */

static void
test_append_read_ack_release(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	c.segment_bytes = 512;
	struct spool *sp = open_ok(&c);
	uint64_t b1 = append(sp, SPOOL_BULK, 1, "bulk-1");
	uint64_t a1 = append(sp, SPOOL_ALARM, 1, "alarm-1");
	uint64_t n0 = append(sp, SPOOL_NORMAL, 0, "normal-q0");
	uint64_t n1 = append(sp, SPOOL_NORMAL, 1, "normal-q1");
	assert_true(b1 < a1 && a1 < n0 && n0 < n1);
	/* nothing is delivered before it is durable */
	struct spool_rec r;
	char buf[256];
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 0);
	assert_int_equal(spool_seq_status(sp, n1), 0);
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_durable_seq(sp), n1);
	assert_int_equal(spool_seq_status(sp, b1), 1);
	/* alarm first, then normal in sequence order across QoS 0 and 1, then bulk */
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, a1);
	assert_int_equal(r.cls, SPOOL_ALARM);
	assert_memory_equal(r.topic, "plant/t", 7);
	assert_int_equal(r.payload_len, 7);
	assert_memory_equal(r.payload, "alarm-1", 7);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, n0);
	assert_int_equal(r.qos, 0);
	/* a buffer too small: told the size, the record stays next */
	assert_int_equal(spool_read_next(sp, &r, buf, 4), -ENOBUFS);
	assert_int_equal(r.payload_len, 9);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, n1);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, b1);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 0);
	/* rewind gives the unacknowledged ones again */
	assert_int_equal(spool_ack(sp, a1), 0);
	assert_int_equal(spool_ack(sp, a1), -ENOENT);
	spool_rewind(sp);
	uint64_t seqs[8];
	assert_int_equal(drain(sp, seqs, 8), 3);
	assert_int_equal(seqs[0], n0);
	/* fill segments past segment_bytes, ack everything: the files go */
	for (int i = 0; i < 40; i++)
		append(sp, SPOOL_NORMAL, 1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	assert_int_equal(spool_commit(sp), 0);
	assert_true(count_files(".seg") >= 2);
	spool_rewind(sp);
	struct spool_rec rr;
	while (spool_read_next(sp, &rr, buf, sizeof(buf)) == 1)
		assert_int_equal(spool_ack(sp, rr.seq), 0);
	assert_int_equal(spool_commit(sp), 0);
	assert_true(counter(sp, SPOOL_C_segments_released) >= 2);
	assert_int_equal(counter(sp, SPOOL_C_records_live), 0);
	assert_int_equal(counter(sp, SPOOL_C_acked), 44);
	spool_close(sp);
	/* only the tails that still take appends may remain, with nothing to deliver */
	sp = open_ok(&c);
	assert_int_equal(drain(sp, seqs, 8), 0);
	/* sequence numbers are never reused */
	assert_true(append(sp, SPOOL_BULK, 1, "after") > n1 + 40);
	spool_close(sp);
}

/* The live read (spool_read_live) gives a class's records from a sequence number on, the
 * oldest-first read steps over what it gave (and the other way round), mixing QoS 0 and 1
 * streams in sequence order; a segment released under the live cursor is survived; the records
 * with a QoS 2 phase are found wherever they are (spool_q2_pending) and given by number
 * (spool_read_seq); spool_rewind gives everything again. */
static void
test_live_read(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	struct spool *sp = open_ok(&c);
	char buf[4096];
	struct spool_rec r;
	uint64_t s[10], got[16];
	for (int i = 0; i < 10; i++)
		s[i] = append(sp, SPOOL_NORMAL, i == 7 ? 0 : 1, "r");
	assert_int_equal(spool_commit(sp), 0);
	/* live from s[6]: 6, 7 (QoS 0 stream), 8, 9 in order */
	for (int i = 6; i < 10; i++) {
		assert_int_equal(spool_read_live(sp, SPOOL_NORMAL, s[6], &r, buf, sizeof(buf)), 1);
		assert_int_equal(r.seq, s[i]);
	}
	assert_int_equal(spool_read_live(sp, SPOOL_NORMAL, s[6], &r, buf, sizeof(buf)), 0);
	assert_int_equal(spool_read_live(sp, SPOOL_ALARM, 0, &r, buf, sizeof(buf)), 0);
	/* the oldest-first read: 0..5, not the live ones again */
	assert_int_equal(drain(sp, got, 16), 6);
	assert_int_equal(got[5], s[5]);
	/* a record appended now is live and given once */
	uint64_t n = append(sp, SPOOL_NORMAL, 1, "new");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_read_live(sp, SPOOL_NORMAL, s[6], &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, n);
	assert_int_equal(drain(sp, got, 16), 0);
	/* QoS 2 phases of records given: found again only after a rewind */
	assert_int_equal(spool_q2_mark(sp, s[2], SPOOL_Q2_PUBLISHED, 7), 0);
	assert_int_equal(spool_q2_mark(sp, s[8], SPOOL_Q2_RELEASED, 8), 0);
	assert_int_equal(spool_q2_pending(sp, got, 16), 0);
	spool_rewind(sp);
	assert_int_equal(spool_q2_pending(sp, got, 1), 2);
	assert_int_equal(got[0], s[2]);
	assert_int_equal(spool_q2_pending(sp, got, 16), 2);
	assert_int_equal(got[1], s[8]);
	assert_int_equal(spool_read_seq(sp, s[8], &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.q2_state, SPOOL_Q2_RELEASED);
	assert_int_equal(r.q2_packet_id, 8);
	assert_int_equal(spool_read_seq(sp, s[8], &r, buf, sizeof(buf)), -ENOENT); /* given */
	assert_int_equal(spool_read_seq(sp, 999999, &r, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(spool_read_seq(sp, s[2], &r, buf, 2), -ENOBUFS); /* stays */
	assert_int_equal(spool_q2_pending(sp, got, 16), 1);
	/* everything else once more, in order; s[8] not again */
	assert_int_equal(drain(sp, got, 16), 10);
	assert_int_equal(got[0], s[0]);
	assert_int_equal(got[8], s[9]);
	/* all acknowledged and released under the live cursor: it is placed again */
	for (int i = 0; i < 10; i++)
		assert_int_equal(spool_ack(sp, s[i]), 0);
	assert_int_equal(spool_ack(sp, n), 0);
	clock_ms += 20000; /* an idle tail is sealed, then released */
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_commit(sp), 0);
	assert_true(counter(sp, SPOOL_C_segments_released) >= 1);
	uint64_t m = append(sp, SPOOL_NORMAL, 1, "after");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_read_live(sp, SPOOL_NORMAL, s[6], &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, m);
	assert_int_equal(spool_read_live(sp, SPOOL_NORMAL, 0, &r, buf, sizeof(buf)), 0);
	assert_int_equal(drain(sp, got, 16), 0);
	spool_close(sp);
}

/* The age of the backlog: the append time of the oldest record not yet acknowledged, across
 * streams; 0 when everything is acknowledged. */
static void
test_oldest_unacked(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	struct spool *sp = open_ok(&c);
	uint64_t t;
	assert_int_equal(spool_oldest_ms(sp, &t), 0);
	assert_int_equal(t, 0);
	uint64_t n1 = append(sp, SPOOL_NORMAL, 1, "first");
	clock_ms += 5000;
	uint64_t b1 = append(sp, SPOOL_BULK, 1, "second");
	clock_ms += 5000;
	uint64_t n2 = append(sp, SPOOL_NORMAL, 1, "third");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_oldest_ms(sp, &t), 0);
	assert_int_equal(t, 1000000);
	assert_int_equal(spool_ack(sp, n1), 0);
	assert_int_equal(spool_oldest_ms(sp, &t), 0);
	assert_int_equal(t, 1005000); /* the bulk record, in another stream */
	assert_int_equal(spool_ack(sp, b1), 0);
	assert_int_equal(spool_oldest_ms(sp, &t), 0);
	assert_int_equal(t, 1010000);
	assert_int_equal(spool_ack(sp, n2), 0);
	assert_int_equal(spool_oldest_ms(sp, &t), 0);
	assert_int_equal(t, 0);
	spool_close(sp);
}

static void
test_acks_and_q2_survive_restart(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	struct spool *sp = open_ok(&c);
	uint64_t s[6];
	for (int i = 0; i < 6; i++)
		s[i] = append(sp, SPOOL_NORMAL, 2, "q2");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_ack(sp, s[0]), 0);
	assert_int_equal(spool_ack(sp, s[1]), 0);
	assert_int_equal(spool_ack(sp, s[3]), 0);
	assert_int_equal(spool_q2_mark(sp, s[2], SPOOL_Q2_PUBLISHED, 77), 0);
	assert_int_equal(spool_q2_mark(sp, s[4], SPOOL_Q2_PUBLISHED, 78), 0);
	assert_int_equal(spool_q2_mark(sp, s[4], SPOOL_Q2_RELEASED, 78), 0);
	assert_int_equal(spool_commit(sp), 0);
	/* an ack not yet committed may come back (at least once) */
	assert_int_equal(spool_ack(sp, s[5]), 0);
	spool_abandon(sp);

	sp = open_ok(&c);
	struct spool_rec r;
	char buf[64];
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, s[2]);
	assert_int_equal(r.q2_state, SPOOL_Q2_PUBLISHED);
	assert_int_equal(r.q2_packet_id, 77);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, s[4]);
	assert_int_equal(r.q2_state, SPOOL_Q2_RELEASED);
	assert_int_equal(r.q2_packet_id, 78);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, s[5]);
	assert_int_equal(r.q2_state, SPOOL_Q2_NONE);
	assert_int_equal(spool_read_next(sp, &r, buf, sizeof(buf)), 0);
	/* the ack log compacts to the same state */
	assert_int_equal(spool_acklog_compact(sp), 0);
	spool_close(sp);
	sp = open_ok(&c);
	uint64_t got[8];
	assert_int_equal(drain(sp, got, 8), 3);
	assert_int_equal(got[0], s[2]);
	assert_int_equal(got[1], s[4]);
	assert_true(append(sp, SPOOL_BULK, 1, "x") > s[5]);
	spool_close(sp);
}

struct durable_log {
	uint64_t lo[64], hi[64];
	int st[64];
	int n;
};

static void
on_durable(void *arg, uint64_t lo, uint64_t hi, int status)
{
	struct durable_log *d = arg;
	d->lo[d->n] = lo;
	d->hi[d->n] = hi;
	d->st[d->n] = status;
	d->n++;
}

static void
test_group_commit_order(void **state)
{
	(void)state;
	struct durable_log d = { 0 };
	struct spool_config c;
	base_cfg(&c);
	c.on_durable = on_durable;
	c.on_durable_arg = &d;
	struct spool *sp = open_ok(&c);
	uint64_t last = 0;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 100; i++)
			last = append(sp, (enum spool_class)(i % 3), (uint8_t)(i % 3), "gc");
		int syncs = F.nsync;
		assert_int_equal(spool_commit(sp), 0);
		/* one fdatasync per stream written, plus the directory when segments were created */
		assert_true(F.nsync - syncs <= SPOOL_STREAMS);
		assert_int_equal(spool_durable_seq(sp), last);
	}
	/* ranges are contiguous, increasing, and settle every record exactly once */
	assert_int_equal(d.n, 3);
	assert_int_equal(d.lo[0], 1);
	for (int i = 0; i < d.n; i++) {
		assert_int_equal(d.st[i], 0);
		assert_int_equal(d.hi[i] - d.lo[i] + 1, 100);
		if (i)
			assert_int_equal(d.lo[i], d.hi[i - 1] + 1);
	}
	assert_int_equal(counter(sp, SPOOL_C_commits), 3);
	/* the flusher commits on its own within the bounded wait, and waiters wake */
	assert_int_equal(spool_start_flusher(sp), 0);
	uint64_t s = append(sp, SPOOL_ALARM, 1, "flushed");
	assert_int_equal(spool_wait_durable(sp, s, 10000), 1);
	spool_close(sp);
}

struct ranges {
	uint64_t next_lo, settled;
	int bad;
};

static void
on_range(void *arg, uint64_t lo, uint64_t hi, int status)
{
	struct ranges *r = arg;
	if (lo != r->next_lo || hi < lo || status)
		r->bad++;
	r->next_lo = hi + 1;
	r->settled += hi - lo + 1;
}

static void *
producer(void *arg)
{
	struct spool *sp = arg;
	char pl[48];
	for (int i = 0; i < 5000; i++) {
		snprintf(pl, sizeof(pl), "producer record %d", i);
		struct spool_rec_in in = { .cls = (enum spool_class)(i % 3),
			.qos = (uint8_t)(i % 3),
			.topic = "t",
			.topic_len = 1,
			.payload = pl,
			.payload_len = (uint32_t)strlen(pl) };
		while (spool_append(sp, &in, NULL) == -ENOBUFS)
			sched_yield();
	}
	return NULL;
}

/* A record appended while the flusher is committing the ones before it is committed within
 * commit_max_wait_us of its append, not at the flusher's idle wake-up (100 ms). Under a steady
 * stream of records (a QoS 1 sensor's messages) every record landed in a commit in flight, so
 * the next commit waited for that timeout: durable PUBACKs took 50 ms at the median at 1,000
 * messages/s (tests/bench/durable, paced rows), where QoS 2 (which asks for its commits) took
 * 2 ms. */
static void
test_append_during_commit(void **state)
{
	(void)state;
	struct spool_config c;
	sem_t hold;
	uint64_t s1, s2, t0, waited_ms;
	base_cfg(&c);
	c.commit_max_wait_us = 1000;
	struct spool *sp = open_ok(&c);
	assert_int_equal(sem_init(&hold, 0, 0), 0);
	assert_int_equal(spool_start_flusher(sp), 0);
	F.hold_sync = &hold;
	s1 = append(sp, SPOOL_NORMAL, 1, "first");
	for (int i = 0; i < 2000 && !__atomic_load_n(&F.in_sync, __ATOMIC_ACQUIRE); i++)
		usleep(1000); /* the flusher is in the commit of s1, held in its fdatasync */
	assert_true(__atomic_load_n(&F.in_sync, __ATOMIC_ACQUIRE));
	s2 = append(sp, SPOOL_NORMAL, 1, "during the commit");
	F.hold_sync = NULL; /* the next commit's syncs go through */
	assert_int_equal(sem_post(&hold), 0);
	assert_int_equal(spool_wait_durable(sp, s1, 10000), 1);
	t0 = spool_mono_ns();
	assert_int_equal(spool_wait_durable(sp, s2, 10000), 1);
	waited_ms = (spool_mono_ns() - t0) / 1000000;
	if (waited_ms >= 60) /* 1 ms and a commit, or the 100 ms idle timeout */
		fail_msg("the record appended during a commit waited %llu ms for its own",
		    (unsigned long long)waited_ms);
	spool_close(sp);
	sem_destroy(&hold);
}

/* A record that finds the spool idle for commit_max_wait_us (here 1 s) is committed at once: it
 * has nobody to wait for (a sensor reporting every few seconds got every PUBACK a whole
 * commit_max_wait_us late). One right behind a commit still waits to batch: the flusher's
 * one-second pass takes it, not an immediate commit. */
static void
test_idle_commits_at_once(void **state)
{
	(void)state;
	struct spool_config c;
	uint64_t a, b, t0, ms;
	base_cfg(&c);
	c.commit_max_wait_us = 1000000;
	struct spool *sp = open_ok(&c);
	assert_int_equal(spool_start_flusher(sp), 0);
	usleep(20000); /* the flusher waits */
	t0 = spool_mono_ns();
	a = append(sp, SPOOL_NORMAL, 1, "after idle");
	assert_int_equal(spool_wait_durable(sp, a, 500), 1);
	ms = (spool_mono_ns() - t0) / 1000000;
	if (ms >= 500)
		fail_msg("a record after idle waited %llu ms", (unsigned long long)ms);
	b = append(sp, SPOOL_NORMAL, 1, "right behind");
	assert_int_equal(spool_wait_durable(sp, b, 300), 0); /* batching: still waiting */
	assert_int_equal(spool_wait_durable(sp, b, 3000), 1);
	/* after batches (here one of 20 records: the moving average of records per commit above
	 * 1.5), the next record waits for company even after a pause: under a closed loop the
	 * next ones come a round trip later */
	for (int i = 0; i < 20; i++)
		b = append(sp, SPOOL_NORMAL, 1, "batch");
	assert_int_equal(spool_wait_durable(sp, b, 3000), 1);
	usleep(1100000); /* idle longer than commit_max_wait_us */
	b = append(sp, SPOOL_NORMAL, 1, "after a batch");
	assert_int_equal(spool_wait_durable(sp, b, 300), 0);
	assert_int_equal(spool_wait_durable(sp, b, 3000), 1);
	spool_close(sp);
}

/* A record appended during a commit is older than that commit's end: it does not count as one
 * that found the spool idle, and waits to batch (an unsigned difference once made every such
 * record commit at once, so under load every commit followed the last with a handful). */
static void
test_during_commit_not_idle(void **state)
{
	(void)state;
	struct spool_config c;
	sem_t hold;
	uint64_t a, b;
	base_cfg(&c);
	c.commit_max_wait_us = 1000000;
	struct spool *sp = open_ok(&c);
	assert_int_equal(sem_init(&hold, 0, 0), 0);
	assert_int_equal(spool_start_flusher(sp), 0);
	F.hold_sync = &hold;
	a = append(sp, SPOOL_NORMAL, 1, "after idle"); /* at once, held in its fdatasync */
	for (int i = 0; i < 2000 && !__atomic_load_n(&F.in_sync, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	assert_true(__atomic_load_n(&F.in_sync, __ATOMIC_ACQUIRE));
	b = append(sp, SPOOL_NORMAL, 1, "during the commit");
	F.hold_sync = NULL;
	assert_int_equal(sem_post(&hold), 0);
	assert_int_equal(spool_wait_durable(sp, a, 3000), 1);
	assert_int_equal(spool_wait_durable(sp, b, 300), 0); /* waits for company */
	assert_int_equal(spool_wait_durable(sp, b, 3000), 1);
	spool_close(sp);
	sem_destroy(&hold);
}

/* Four producer threads and the flusher at once: every record settled once, in contiguous
 * ranges, and delivered in sequence order per class. */
static void
test_concurrent_producers(void **state)
{
	(void)state;
	struct ranges r = { .next_lo = 1 };
	struct spool_config c;
	base_cfg(&c);
	c.commit_max_wait_us = 100;
	c.on_durable = on_range;
	c.on_durable_arg = &r;
	struct spool *sp = open_ok(&c);
	assert_int_equal(spool_start_flusher(sp), 0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, producer, sp), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(spool_wait_durable(sp, 20000, 20000), 1);
	assert_int_equal(spool_durable_seq(sp), 20000);
	for (unsigned cls = 0; cls < SPOOL_CLASS_N; cls++) {
		struct spool_rec rec;
		char buf[128];
		uint64_t prev = 0, n = 0;
		while (spool_read(sp, (enum spool_class)cls, &rec, buf, sizeof(buf)) == 1) {
			assert_true(rec.seq > prev);
			assert_int_equal(rec.cls, cls);
			prev = rec.seq;
			n++;
		}
		assert_int_equal(n, cls == SPOOL_BULK ? 4 * 1666 : 4 * 1667);
	}
	spool_close(sp); /* the flusher's last callback has returned */
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.settled, 20000);
}

/* Builds a spool holding 3 records in one segment; returns the segment's bytes and the offset
 * where the last record starts. */
static uint8_t *
three_records(const struct spool_config *c, char *path, size_t plen, size_t *len, size_t *last_off)
{
	struct spool *sp = open_ok(c);
	append(sp, SPOOL_NORMAL, 1, "first record");
	append(sp, SPOOL_NORMAL, 1, "second record");
	assert_int_equal(spool_commit(sp), 0);
	append(sp, SPOOL_NORMAL, 1, "the third and last record");
	assert_int_equal(spool_commit(sp), 0);
	spool_close(sp);
	seg_path(0, path, plen);
	uint8_t *b = slurp(path, len);
	*last_off = *len - (sizeof(struct spool_rec_hdr) + 7 + strlen("the third and last record"));
	return b;
}

static void
test_torn_last_record_every_byte(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	char path[512];
	size_t len, last;
	uint8_t *orig = three_records(&c, path, sizeof(path), &len, &last);
	for (size_t cut = last; cut < len; cut++) {
		spit(path, orig, cut);
		struct spool *sp = open_ok(&c);
		assert_int_equal(counter(sp, SPOOL_C_recovered_records), 2);
		assert_int_equal(counter(sp, SPOOL_C_torn_bytes), cut - last);
		assert_int_equal(counter(sp, SPOOL_C_corrupt_records), 0);
		uint64_t seqs[4];
		assert_int_equal(drain(sp, seqs, 4), 2);
		/* appends continue right after the last intact record */
		uint64_t s = append(sp, SPOOL_NORMAL, 1, "again");
		assert_true(s >= 3);
		assert_int_equal(spool_commit(sp), 0);
		spool_close(sp);
		sp = open_ok(&c);
		assert_int_equal(counter(sp, SPOOL_C_torn_bytes), 0);
		assert_int_equal(drain(sp, seqs, 4), 3);
		assert_int_equal(seqs[2], s);
		spool_close(sp);
		/* back to the two-record prefix for the next cut (drop the appended one) */
		char p2[512];
		seg_path(0, p2, sizeof(p2));
		assert_string_equal(p2, path);
	}
	free(orig);
}

static void
test_torn_segment_header_every_byte(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	char path[512];
	size_t len, last;
	uint8_t *orig = three_records(&c, path, sizeof(path), &len, &last);
	size_t first_end = sizeof(struct spool_file_hdr) + sizeof(struct spool_rec_hdr) + 7 +
	    strlen("first record");
	/* a crash during the segment's first write: header and first record torn anywhere */
	for (size_t cut = 0; cut < first_end; cut++) {
		spit(path, orig, cut);
		struct spool *sp = open_ok(&c);
		assert_int_equal(counter(sp, SPOOL_C_recovered_records), 0);
		assert_int_equal(counter(sp, SPOOL_C_torn_bytes), cut);
		assert_int_equal(counter(sp, SPOOL_C_corrupt_segments), 0);
		assert_int_equal(count_files(".seg"), 0);
		uint64_t s = append(sp, SPOOL_NORMAL, 1, "fresh");
		assert_int_equal(spool_commit(sp), 0);
		spool_close(sp);
		sp = open_ok(&c);
		uint64_t seqs[2];
		assert_int_equal(drain(sp, seqs, 2), 1);
		assert_int_equal(seqs[0], s);
		spool_close(sp);
		char p2[512];
		seg_path(0, p2, sizeof(p2));
		unlink(p2);
	}
	free(orig);
}

static void
test_torn_ack_log_every_byte(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	struct spool *sp = open_ok(&c);
	uint64_t s[4];
	for (int i = 0; i < 4; i++)
		s[i] = append(sp, SPOOL_NORMAL, 1, "acked or not");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_ack(sp, s[0]), 0);
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_ack(sp, s[2]), 0);
	assert_int_equal(spool_commit(sp), 0);
	spool_abandon(sp);
	char path[512];
	snprintf(path, sizeof(path), "%s/acks.log", dir);
	size_t len;
	uint8_t *orig = slurp(path, &len);
	size_t last = len - sizeof(struct spool_ack_ent);
	for (size_t cut = last; cut <= len; cut++) {
		spit(path, orig, cut);
		sp = open_ok(&c);
		assert_int_equal(counter(sp, SPOOL_C_torn_bytes), cut == len ? 0 : cut - last);
		uint64_t got[4];
		/* the torn entry's ack is lost (at least once: given again), the earlier one holds */
		assert_int_equal(drain(sp, got, 4), cut == len ? 2 : 3);
		assert_int_equal(got[0], s[1]);
		spool_abandon(sp);
	}
	free(orig);
}

static void
test_corrupt_segment_in_the_middle(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	c.segment_bytes = 400;
	struct spool *sp = open_ok(&c);
	uint64_t seqs[200];
	for (int i = 0; i < 60; i++) {
		char p[64];
		snprintf(p, sizeof(p), "record number %03d with some padding", i);
		append(sp, SPOOL_BULK, 1, p);
		assert_int_equal(spool_commit(sp), 0);
	}
	spool_close(sp);
	size_t nseg = count_files(".seg");
	assert_true(nseg >= 8);
	/* segment 2: one flipped byte in a record's payload; segment 4: a smashed header; segment
	 * 6: nothing but garbage */
	char p[512];
	size_t len;
	seg_path(2, p, sizeof(p));
	uint8_t *b = slurp(p, &len);
	b[32 + 40] ^= 0x55;
	spit(p, b, len);
	free(b);
	seg_path(4, p, sizeof(p));
	b = slurp(p, &len);
	memset(b, 0xee, 16);
	spit(p, b, len);
	free(b);
	seg_path(6, p, sizeof(p));
	b = slurp(p, &len);
	size_t lost6 = seg_records(b, len);
	memset(b, 0xa5, len);
	spit(p, b, len);
	free(b);
	sp = open_ok(&c);
	assert_int_equal(counter(sp, SPOOL_C_corrupt_records), 1);
	assert_int_equal(counter(sp, SPOOL_C_corrupt_segments), 2);
	assert_int_equal(count_files(".bad"), 1);
	size_t got = drain(sp, seqs, 200);
	/* everything but the flipped record and the garbage segment's records */
	assert_true(lost6 >= 1);
	assert_int_equal(got, 60 - 1 - lost6);
	for (size_t i = 1; i < got; i++)
		assert_true(seqs[i] > seqs[i - 1]);
	spool_close(sp);
}

static void
test_enospc_refuses_and_keeps(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	c.disk_full_retry_ms = 600000;
	struct durable_log d = { 0 };
	c.on_durable = on_durable;
	c.on_durable_arg = &d;
	struct spool *sp = open_ok(&c);
	uint64_t ok = append(sp, SPOOL_NORMAL, 1, "kept");
	assert_int_equal(spool_commit(sp), 0);
	/* the disk fills during the next commit, half-way through a write */
	F.pwrite_fail_all = true;
	F.pwrite_errno = ENOSPC;
	F.pwrite_short = 10;
	uint64_t lost = append(sp, SPOOL_NORMAL, 1, "this one does not fit");
	assert_int_equal(spool_last_failed_seq(sp), 0);
	assert_int_equal(spool_commit(sp), -ENOSPC);
	assert_int_equal(spool_last_failed_seq(sp), lost);
	assert_int_equal(spool_seq_status(sp, lost), -ENOSPC);
	assert_int_equal(spool_seq_status(sp, ok), 1);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.st[1], -ENOSPC);
	assert_int_equal(counter(sp, SPOOL_C_enospc), 1);
	assert_int_equal(counter(sp, SPOOL_C_failed_records), 1);
	/* refused while full: the producer holds its sender */
	struct spool_rec_in in = { .cls = SPOOL_ALARM, .qos = 1, .payload = "x", .payload_len = 1 };
	assert_int_equal(spool_append(sp, &in, NULL), -ENOBUFS);
	assert_int_equal(counter(sp, SPOOL_C_refused_disk_full), 1);
	/* what was there is still delivered; the failed record never is */
	uint64_t seqs[4];
	assert_int_equal(drain(sp, seqs, 4), 1);
	assert_int_equal(seqs[0], ok);
	/* freeing space (the consumer releases a segment) lifts the refusal */
	F.pwrite_fail_all = false;
	assert_int_equal(spool_ack(sp, ok), 0);
	struct spool_seg *g = sp->st[spool_stream_of(SPOOL_NORMAL, 1)].tail;
	g->sealed = true; /* as a full segment would be */
	assert_int_equal(spool_commit(sp), 0);
	uint64_t after = append(sp, SPOOL_ALARM, 1, "after");
	assert_int_equal(spool_commit(sp), 0);
	spool_close(sp);
	/* after a restart: no trace of the failed record, the later one is there */
	sp = open_ok(&c);
	assert_int_equal(counter(sp, SPOOL_C_torn_bytes), 0);
	assert_int_equal(drain(sp, seqs, 4), 1);
	assert_int_equal(seqs[0], after);
	spool_close(sp);
}

static void
test_fdatasync_failure(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	struct spool *sp = open_ok(&c);
	uint64_t a = append(sp, SPOOL_NORMAL, 1, "durable");
	assert_int_equal(spool_commit(sp), 0);
	/* EIO from fdatasync, and the file cannot even be cut back: the records stay in the file
	 * but a VOID entry keeps them from ever being delivered */
	F.sync_fail_at = F.nsync + 1;
	F.ftruncate_fails = true;
	uint64_t b = append(sp, SPOOL_NORMAL, 1, "not durable");
	assert_int_equal(spool_commit(sp), -EIO);
	F.ftruncate_fails = false;
	assert_int_equal(spool_seq_status(sp, b), -EIO);
	assert_int_equal(counter(sp, SPOOL_C_sync_errors), 1);
	/* the next commit works, in a new segment */
	uint64_t c2 = append(sp, SPOOL_NORMAL, 1, "later");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_seq_status(sp, c2), 1);
	assert_int_equal(count_files(".seg"), 2);
	uint64_t seqs[4];
	assert_int_equal(drain(sp, seqs, 4), 2);
	spool_close(sp);
	sp = open_ok(&c);
	assert_int_equal(drain(sp, seqs, 4), 2);
	assert_int_equal(seqs[0], a);
	assert_int_equal(seqs[1], c2);
	spool_close(sp);
}

/* What on_recovered reports at open: the records with a flag asked for, with their payload. */
struct recovered {
	uint64_t seq[8];
	char payload[8][16];
	unsigned n;
};

static void
on_recovered(void *arg, uint64_t seq, uint8_t flags, const uint8_t *p, uint32_t len)
{
	struct recovered *r = arg;
	assert_true(flags & 0x02);
	assert_true(r->n < 8 && len < 16);
	r->seq[r->n] = seq;
	memcpy(r->payload[r->n], p, len);
	r->payload[r->n++][len] = '\0';
}

static uint64_t
append_flags(struct spool *sp, uint8_t flags, const char *payload)
{
	struct spool_rec_in in = { .cls = SPOOL_NORMAL,
		.qos = 2,
		.flags = flags,
		.topic = "plant/t",
		.topic_len = 7,
		.payload = payload,
		.payload_len = (uint32_t)strlen(payload) };
	uint64_t seq = 0;
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	return seq;
}

/* A producer learns at open which of its records the spool holds (agent/dpchan_store.c: the
 * dataplane's refs): every intact record with its flag is reported; spool_rec_kept() then says
 * which count: an acknowledged one does, one whose commit failed (VOID) does not. */
static void
test_recovered_records(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	struct spool *sp = open_ok(&c);
	uint64_t a = append_flags(sp, 0x02, "a");
	uint64_t plain = append_flags(sp, 0x01, "plain");
	uint64_t b = append_flags(sp, 0x03, "b");
	assert_int_equal(spool_commit(sp), 0);
	/* a failed commit whose bytes stay in the file (it cannot be cut back) */
	F.sync_fail_at = F.nsync + 1;
	F.ftruncate_fails = true;
	uint64_t v = append_flags(sp, 0x02, "void");
	assert_int_equal(spool_commit(sp), -EIO);
	F.ftruncate_fails = false;
	uint64_t d = append_flags(sp, 0x02, "d");
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_ack(sp, a), 0);
	assert_int_equal(spool_commit(sp), 0);
	spool_abandon(sp);

	struct recovered r = { 0 };
	c.recover_flags = 0x02;
	c.on_recovered = on_recovered;
	c.on_recovered_arg = &r;
	sp = open_ok(&c);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.seq[0], a);
	assert_string_equal(r.payload[0], "a");
	assert_int_equal(r.seq[1], b);
	assert_int_equal(r.seq[2], v);
	assert_int_equal(r.seq[3], d);
	assert_string_equal(r.payload[3], "d");
	assert_true(spool_rec_kept(sp, a)); /* acknowledged, its segment still there */
	assert_true(spool_rec_kept(sp, plain));
	assert_true(spool_rec_kept(sp, b));
	assert_false(spool_rec_kept(sp, v)); /* VOID: never counted as held */
	assert_true(spool_rec_kept(sp, d));
	assert_false(spool_rec_kept(sp, d + 1));
	spool_close(sp);
}

static void
test_drop_policy_order(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	c.max_bytes = 8192;
	c.segment_bytes = 512;
	c.commit_bytes = 1024;
	c.policy[SPOOL_BULK].drop_when_full = true;
	c.policy[SPOOL_NORMAL].drop_when_full = false;
	c.policy[SPOOL_ALARM].drop_when_full = false;
	struct spool *sp = open_ok(&c);
	const char *pl =
	    "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 */
	/* about a third each: QoS 0 normal, bulk, alarm */
	for (int i = 0; i < 24; i++) {
		append(sp, SPOOL_NORMAL, 0, pl);
		append(sp, SPOOL_BULK, 1, pl);
		append(sp, SPOOL_ALARM, 1, pl);
		assert_int_equal(spool_commit(sp), 0);
	}
	assert_int_equal(counter(sp, SPOOL_C_dropped_qos0) + counter(sp, SPOOL_C_dropped_bulk), 0);
	/* alarms keep coming: QoS 0 goes first */
	struct spool_rec_in in = { .cls = SPOOL_ALARM,
		.qos = 1,
		.topic = "plant/t",
		.topic_len = 7,
		.payload = pl,
		.payload_len = 64 };
	int rc = 0, n = 0;
	while (counter(sp, SPOOL_C_dropped_bulk) == 0 && n < 1000) {
		rc = spool_append(sp, &in, NULL);
		assert_int_equal(rc, 0);
		assert_int_equal(spool_commit(sp), 0);
		n++;
		/* no bulk goes while there is a sealed QoS 0 segment */
		if (counter(sp, SPOOL_C_dropped_bulk) == 0)
			assert_int_equal(counter(sp, SPOOL_C_dropped_alarm), 0);
	}
	uint64_t q0 = counter(sp, SPOOL_C_dropped_qos0);
	assert_true(q0 > 0);
	/* then bulk, oldest first, until only unsealed tails are left; never an alarm */
	while ((rc = spool_append(sp, &in, NULL)) == 0)
		assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(rc, -ENOBUFS);
	assert_true(counter(sp, SPOOL_C_dropped_bulk) > 0);
	assert_int_equal(counter(sp, SPOOL_C_dropped_alarm), 0);
	assert_int_equal(counter(sp, SPOOL_C_dropped_normal), 0);
	assert_true(counter(sp, SPOOL_C_refused_full) >= 1);
	assert_true(counter(sp, SPOOL_C_bytes_used) <= c.max_bytes);
	/* a QoS 0 record never pushes out QoS 1 bulk */
	in.qos = 0;
	in.cls = SPOOL_BULK;
	assert_int_equal(spool_append(sp, &in, NULL), -ENOBUFS);
	/* the oldest alarm is still the first one delivered */
	struct spool_rec r;
	char buf[256];
	assert_int_equal(spool_read(sp, SPOOL_ALARM, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, 3);
	spool_close(sp);
}

static void
test_age_bound(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	c.segment_bytes = 256;
	c.policy[SPOOL_BULK].max_age_ms = 60000;
	c.policy[SPOOL_ALARM].max_age_ms = 0;
	struct spool *sp = open_ok(&c);
	for (int i = 0; i < 20; i++) {
		append(sp, SPOOL_BULK, 1, "old bulk reading, about forty bytes");
		append(sp, SPOOL_ALARM, 1, "old alarm");
		assert_int_equal(spool_commit(sp), 0);
	}
	clock_ms += 30000;
	uint64_t young = append(sp, SPOOL_BULK, 1, "young");
	assert_int_equal(spool_commit(sp), 0);
	clock_ms += 30000; /* the first ones are now 60 s old */
	assert_int_equal(spool_commit(sp), 0);
	assert_true(counter(sp, SPOOL_C_segments_dropped) >= 1);
	struct spool_rec r;
	char buf[256];
	int alarms = 0;
	while (spool_read(sp, SPOOL_ALARM, &r, buf, sizeof(buf)) == 1)
		alarms++;
	assert_int_equal(alarms, 20); /* no age bound on alarms */
	assert_int_equal(spool_read(sp, SPOOL_BULK, &r, buf, sizeof(buf)), 1);
	assert_int_equal(r.seq, young);
	assert_int_equal(spool_read(sp, SPOOL_BULK, &r, buf, sizeof(buf)), 0);
	assert_int_equal(counter(sp, SPOOL_C_expired), 20);
	/* a record in the tail (never dropped by the bound: the commit writes there) expires at
	 * delivery */
	append(sp, SPOOL_BULK, 1, "ages in the tail");
	assert_int_equal(spool_commit(sp), 0);
	clock_ms += 60000;
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_read(sp, SPOOL_BULK, &r, buf, sizeof(buf)), 0);
	assert_int_equal(counter(sp, SPOOL_C_expired), 21);
	spool_close(sp);
}

static void
test_newer_version_refused(void **state)
{
	(void)state;
	struct spool_config c;
	base_cfg(&c);
	struct spool *sp = open_ok(&c);
	append(sp, SPOOL_NORMAL, 1, "v1");
	assert_int_equal(spool_commit(sp), 0);
	/* a second opener is refused while the first holds the directory */
	struct spool *sp2 = NULL;
	assert_int_equal(spool_open(&c, &sp2), -EBUSY);
	spool_close(sp);
	char p[512];
	size_t len;
	seg_path(0, p, sizeof(p));
	uint8_t *b = slurp(p, &len);
	struct spool_file_hdr h;
	memcpy(&h, b, sizeof(h));
	h.version = 2;
	h.crc = spool_file_hdr_crc(&h);
	memcpy(b, &h, sizeof(h));
	spit(p, b, len);
	assert_int_equal(spool_open(&c, &sp), -EPROTONOSUPPORT);
	/* untouched */
	size_t len2;
	uint8_t *b2 = slurp(p, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(b, b2, len);
	free(b);
	free(b2);
}

/* A real full disk: a 256 KiB tmpfs over the test directory, in a child's own mount namespace
 * (root only; skipped otherwise). Fill it until a commit fails with ENOSPC: what was durable
 * stays and is delivered, the failed records never are, appends are refused, and releasing
 * delivered segments lets appends in again. Exit codes name the check that failed. */
static int
disk_full_child(void)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=256k") < 0)
		return 77;
	struct spool_config c;
	spool_config_defaults(&c);
	c.dir = dir;
	c.segment_bytes = 32u << 10;
	c.commit_bytes = 16u << 10;
	c.disk_full_retry_ms = 600000;
	struct spool *sp;
	if (spool_open(&c, &sp))
		return 10;
	char pl[1000];
	memset(pl, 'f', sizeof(pl));
	struct spool_rec_in in = { .cls = SPOOL_NORMAL,
		.qos = 1,
		.topic = "plant/f",
		.topic_len = 7,
		.payload = pl,
		.payload_len = sizeof(pl) };
	uint64_t durable = 0, seq = 0;
	int rc = 0;
	for (int i = 0; i < 1000 && rc == 0; i++) {
		if (spool_append(sp, &in, &seq))
			return 11;
		rc = spool_commit(sp);
		if (!rc)
			durable++;
	}
	if (rc != -ENOSPC || spool_seq_status(sp, seq) != -ENOSPC ||
	    spool_last_failed_seq(sp) != seq)
		return 12;
	if (spool_append(sp, &in, NULL) != -ENOBUFS)
		return 13;
	spool_close(sp);
	if (spool_open(&c, &sp))
		return 14;
	uint64_t v[SPOOL_C_N];
	spool_counters(sp, v);
	if (v[SPOOL_C_recovered_records] != durable || v[SPOOL_C_corrupt_records] ||
	    v[SPOOL_C_corrupt_segments])
		return 15;
	struct spool_rec r;
	static char buf[2048];
	uint64_t n = 0;
	while (spool_read_next(sp, &r, buf, sizeof(buf)) == 1) {
		if (r.payload_len != sizeof(pl) || memcmp(r.payload, pl, sizeof(pl)))
			return 16;
		spool_ack(sp, r.seq);
		n++;
	}
	if (n != durable)
		return 17;
	/* delivered and acknowledged: the sealed segments go, and there is room again */
	if (spool_commit(sp))
		return 18;
	if (spool_append(sp, &in, &seq) || spool_commit(sp) || spool_seq_status(sp, seq) != 1)
		return 19;
	spool_close(sp);
	return 0;
}

static void
test_real_disk_full(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(disk_full_child());
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws));
	if (WEXITSTATUS(ws) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(ws), 0);
}

static int pipe_fd = -1;
static void
child_durable(void *arg, uint64_t lo, uint64_t hi, int status)
{
	(void)arg, (void)lo;
	if (!status && write(pipe_fd, &hi, sizeof(hi)) != sizeof(hi))
		_exit(3);
}

static void
test_sigkill_mid_write(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		pipe_fd = p[1];
		struct spool_config c;
		spool_config_defaults(&c);
		c.dir = dir;
		c.commit_max_wait_us = 200;
		c.on_durable = child_durable;
		struct spool *sp;
		if (spool_open(&c, &sp) || spool_start_flusher(sp))
			_exit(2);
		char pl[200];
		memset(pl, 'k', sizeof(pl));
		for (uint64_t i = 0;; i++) {
			struct spool_rec_in in = { .cls = (enum spool_class)(i % 3),
				.qos = (uint8_t)(1 + i % 2),
				.topic = "plant/k",
				.topic_len = 7,
				.payload = pl,
				.payload_len = (uint32_t)(i % 200) };
			if (spool_append(sp, &in, NULL) == -ENOBUFS)
				sched_yield();
		}
	}
	close(p[1]);
	uint64_t hi = 0, v;
	/* wait until a good number of records were reported durable, then kill mid-stream */
	while (hi < 20000 && read(p[0], &v, sizeof(v)) == sizeof(v))
		hi = v;
	kill(pid, SIGKILL);
	int ws;
	waitpid(pid, &ws, 0);
	assert_true(WIFSIGNALED(ws));
	while (read(p[0], &v, sizeof(v)) == sizeof(v))
		hi = v > hi ? v : hi;
	close(p[0]);
	assert_true(hi >= 20000);

	struct spool_config c;
	base_cfg(&c);
	c.now_ms = NULL;
	struct spool *sp = open_ok(&c);
	/* every sequence number up to the last one reported durable is there, once, intact */
	static uint64_t seqs[1 << 21];
	size_t n = drain(sp, seqs, 1 << 21);
	assert_true(n >= hi);
	static uint8_t seen[1 << 21];
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n && i < (1 << 21); i++) {
		if (seqs[i] < (1 << 21)) {
			assert_int_equal(seen[seqs[i]], 0);
			seen[seqs[i]] = 1;
		}
	}
	for (uint64_t s = 1; s <= hi; s++)
		assert_int_equal(seen[s], 1);
	assert_int_equal(counter(sp, SPOOL_C_corrupt_records), 0);
	spool_close(sp);
}

int
main(void)
{
	log_init("test_spool", LOG_LVL_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_read_ack_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_commits_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_during_commit_not_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oldest_unacked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_and_q2_survive_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_producers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_during_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_record_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_torn_segment_header_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_ack_log_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_corrupt_segment_in_the_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_refuses_and_keeps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fdatasync_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovered_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_policy_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_age_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_mid_write, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
