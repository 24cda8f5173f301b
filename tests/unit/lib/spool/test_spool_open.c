/*
 * test_spool_open.c: lib/spool's refusals at the door. Opening: a config with every field left
 * to its default works, a second opener of the same directory gets -EBUSY, a directory that
 * cannot be made or named fails with its errno. Appending: each malformed record is refused
 * with -EINVAL or -EMSGSIZE, counted as refused_invalid, and takes no sequence number. The
 * names operators see for counters and classes, in range and out of it.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "spool.h"
#include "spool_fixture.h"
#include "spool_internal.h"

static char dir[256];

static int
setup(void **state)
{
	(void)state;
	return spool_fx_mkdtemp(dir, sizeof(dir), "test_spool_open");
}

static int
teardown(void **state)
{
	(void)state;
	return spool_fx_rmtree(dir);
}

/* A record of one byte each of topic ("t") and payload ("p"). */
static struct spool_rec_in
rec_tp(enum spool_class cls, uint8_t qos)
{
	return (struct spool_rec_in){ .cls = cls,
		.qos = qos,
		.topic = "t",
		.topic_len = 1,
		.payload = "p",
		.payload_len = 1 };
}

/* The defaults, in this test's directory. */
static void
cfg_dir(struct spool_config *c)
{
	spool_config_defaults(c);
	c->dir = dir;
}

/* Only the directory given: every other field takes its default, and records go round. */
static void
test_defaults_fill_a_bare_config(void **state)
{
	struct spool_config c = { .dir = dir };
	struct spool *sp = NULL;
	struct spool_rec_in in = rec_tp(SPOOL_BULK, 1);
	struct spool_rec rec;
	char buf[64];
	uint64_t seq = 0;

	(void)state;
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_read(sp, SPOOL_BULK, &rec, buf, sizeof(buf)), 1);
	assert_int_equal(rec.seq, 1);
	spool_close(sp);
	/* a huge segment size is cut to what 32-bit record offsets reach, and still opens */
	c.segment_bytes = 4ull << 30;
	c.max_bytes = 1ull << 20;
	assert_int_equal(spool_open(&c, &sp), 0);
	spool_close(sp);
}

static void
test_second_opener_is_refused(void **state)
{
	struct spool_config c;
	struct spool *a = NULL, *b = NULL;

	(void)state;
	cfg_dir(&c);
	assert_int_equal(spool_open(&c, &a), 0);
	assert_int_equal(spool_open(&c, &b), -EBUSY);
	assert_null(b);
	spool_close(a);
	assert_int_equal(spool_open(&c, &b), 0); /* the lock went with the first */
	spool_abandon(b);
}

static void
test_directory_that_cannot_be(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	char file[300], under[320], longdir[5000];
	FILE *f;

	(void)state;
	spool_config_defaults(&c);
	snprintf(file, sizeof(file), "%s/a-file", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(under, sizeof(under), "%s/spool", file);
	c.dir = under;
	assert_int_equal(spool_open(&c, &sp), -ENOTDIR);
	assert_null(sp);
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	c.dir = longdir;
	assert_int_equal(spool_open(&c, &sp), -ENAMETOOLONG);
	assert_null(sp);
}

static void
test_malformed_records_refused(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	static char big[(16u << 20) + 1];
	struct spool_rec_in ok = rec_tp(SPOOL_NORMAL, 1);
	struct spool_rec_in in;
	uint64_t seq = 0;

	(void)state;
	cfg_dir(&c);
	c.commit_bytes = 4096;
	c.buffer_bytes = 8192;
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_append(sp, NULL, &seq), -EINVAL);
	in = ok;
	in.cls = SPOOL_CLASS_N;
	assert_int_equal(spool_append(sp, &in, &seq), -EINVAL);
	in = ok;
	in.qos = 3;
	assert_int_equal(spool_append(sp, &in, &seq), -EINVAL);
	in = ok;
	in.topic = NULL;
	assert_int_equal(spool_append(sp, &in, &seq), -EINVAL);
	in = ok;
	in.payload = NULL;
	assert_int_equal(spool_append(sp, &in, &seq), -EINVAL);
	in = ok;
	in.payload = big;
	in.payload_len = sizeof(big);
	assert_int_equal(spool_append(sp, &in, &seq), -EMSGSIZE);
	in.payload_len = 8192; /* within the record limit, beyond this spool's commit buffer */
	assert_int_equal(spool_append(sp, &in, &seq), -EMSGSIZE);
	assert_int_equal(counter(sp, SPOOL_C_refused_invalid), 7);
	assert_int_equal(seq, 0);
	/* a record with neither topic nor payload is a record */
	in = (struct spool_rec_in){ .cls = SPOOL_ALARM, .qos = 0 };
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(spool_append(sp, &ok, &seq), 0);
	assert_int_equal(seq, 2);
	spool_close(sp);
}

static void
touch(const char *name)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
}

/* Files that are not segments are left alone; a segment written by a newer format makes the
 * open fail and is not touched. */
static void
test_recovery_skips_strangers_refuses_newer(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct spool_rec_in in = rec_tp(SPOOL_NORMAL, 1);
	struct spool_file_hdr h;
	char seg[64], p[512];
	uint64_t seq;
	FILE *f;

	(void)state;
	cfg_dir(&c);
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	spool_close(sp);
	touch("README");
	touch("normal-q1-123.seg");                      /* too short */
	touch("normal-q1-0000000000000000000x.seg");     /* not digits */
	touch("normal-q1-00000000000000000001.segment"); /* not .seg */
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	assert_int_equal(seq, 2); /* the record of before is there, the strangers did nothing */
	spool_close(sp);
	snprintf(p, sizeof(p), "%s/README", dir);
	assert_int_equal(access(p, F_OK), 0);

	spool_seg_name(seg, sizeof(seg), spool_stream_of(SPOOL_NORMAL, 1), 1);
	snprintf(p, sizeof(p), "%s/%s", dir, seg);
	f = fopen(p, "r+");
	assert_non_null(f);
	assert_int_equal(fread(&h, sizeof(h), 1, f), 1);
	assert_memory_equal(h.magic, SPOOL_SEG_MAGIC, 8);
	h.version = SPOOL_FORMAT_VERSION + 1;
	h.crc = spool_file_hdr_crc(&h);
	rewind(f);
	assert_int_equal(fwrite(&h, sizeof(h), 1, f), 1);
	fclose(f);
	sp = NULL;
	assert_int_equal(spool_open(&c, &sp), -EPROTONOSUPPORT);
	assert_null(sp);
	assert_int_equal(access(p, F_OK), 0); /* left as it was, for the newer version */
}

/* The ack log as the spool finds it: each case below starts from one acknowledged record. */
static struct {
	bool open, pread, ftruncate;
} fail;

static int
f_open(void *ctx, const char *path, int flags, mode_t mode)
{
	size_t n = strlen(path);

	if (fail.open && n >= 8 && strcmp(path + n - 8, "acks.log") == 0) {
		errno = EACCES;
		return -1;
	}
	return spool_io_posix.open(ctx, path, flags, mode);
}

static ssize_t
f_pread(void *ctx, int fd, void *b, size_t len, off_t off)
{
	if (fail.pread) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.pread(ctx, fd, b, len, off);
}

static int
f_ftruncate(void *ctx, int fd, off_t len)
{
	if (fail.ftruncate) {
		errno = EROFS;
		return -1;
	}
	return spool_io_posix.ftruncate(ctx, fd, len);
}

static struct spool_io_ops failing_ops;

static void
acked_record(struct spool_config *c)
{
	struct spool_rec_in in = rec_tp(SPOOL_NORMAL, 1);
	struct spool *sp = NULL;
	struct spool_rec rec;
	char buf[64];
	uint64_t seq;

	failing_ops = spool_io_posix;
	failing_ops.open = f_open;
	failing_ops.pread = f_pread;
	failing_ops.ftruncate = f_ftruncate;
	memset(&fail, 0, sizeof(fail));
	cfg_dir(c);
	c->io = &failing_ops;
	assert_int_equal(spool_open(c, &sp), 0);
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_read(sp, SPOOL_NORMAL, &rec, buf, sizeof(buf)), 1);
	assert_int_equal(spool_ack(sp, seq), 0);
	spool_close(sp);
}

/* How many records a reopened spool gives again. */
static int
given_again(const struct spool_config *c, struct spool **out)
{
	struct spool_rec rec;
	char buf[64];
	int n = 0;

	assert_int_equal(spool_open(c, out), 0);
	while (spool_read(*out, SPOOL_NORMAL, &rec, buf, sizeof(buf)) == 1)
		n++;
	return n;
}

static void
ack_log_path(char *p, size_t len)
{
	snprintf(p, len, "%s/acks.log", dir);
}

static void
test_ack_log_damage(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	char p[512];
	FILE *f;

	(void)state;
	acked_record(&c);
	assert_int_equal(given_again(&c, &sp), 0); /* the ack was kept */
	spool_close(sp);

	/* a torn tail is cut and counted; an entry with a bad checksum is skipped and counted */
	ack_log_path(p, sizeof(p));
	f = fopen(p, "a");
	assert_non_null(f);
	fputs("xyz", f);
	fclose(f);
	assert_int_equal(given_again(&c, &sp), 0);
	assert_int_equal(counter(sp, SPOOL_C_torn_bytes), 3);
	spool_close(sp);
	f = fopen(p, "r+");
	assert_non_null(f);
	assert_int_equal(fseek(f, -1, SEEK_END), 0); /* the last entry: the ack */
	fputc(0x5a, f);
	fclose(f);
	assert_int_equal(given_again(&c, &sp), 1); /* its ack lost: at least once */
	assert_int_equal(counter(sp, SPOOL_C_corrupt_records), 1);
	spool_close(sp);
}

/* Entries whose CRC checks out but that this code could not have written (found by
 * tests/fuzz/spool): a range up to 2^64 - 1 acknowledged every record appended after it at the
 * next open (next_seq could not move past it: its top + 1 wrapped to 0), so a durable QoS 1
 * record was lost over a clean close; a backwards range, a stream that does not exist, a QoS 2
 * phase that does not, a type that does not. Each is skipped and counted as corrupt. */
static void
test_ack_log_forged_entries(void **state)
{
	const struct spool_ack_ent forged[] = {
		{ .type = SPOOL_ACK_RANGE,
		    .stream = spool_stream_of(SPOOL_NORMAL, 1),
		    .lo = 0,
		    .hi = UINT64_MAX },
		{ .type = SPOOL_ACK_VOID, .lo = 1, .hi = SPOOL_SEQ_LIMIT },
		{ .type = SPOOL_ACK_RANGE, .stream = 0, .lo = 9, .hi = 3 },
		{ .type = SPOOL_ACK_RANGE, .stream = SPOOL_STREAMS, .lo = 1, .hi = 1 },
		{ .type = SPOOL_ACK_Q2, .lo = 1, .hi = SPOOL_Q2_RELEASED + 1 },
		{ .type = SPOOL_ACK_FLOOR, .lo = UINT64_MAX },
		{ .type = 9, .lo = 1, .hi = 1 },
	};
	struct spool_rec_in in = rec_tp(SPOOL_NORMAL, 1);
	struct spool_config c;
	struct spool *sp = NULL;
	char p[512];
	uint64_t seq;
	FILE *f;

	(void)state;
	acked_record(&c);
	ack_log_path(p, sizeof(p));
	f = fopen(p, "a");
	assert_non_null(f);
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		struct spool_ack_ent e = forged[i];

		e.crc = spool_ack_crc(&e);
		assert_int_equal(fwrite(&e, sizeof(e), 1, f), 1);
	}
	fclose(f);
	assert_int_equal(given_again(&c, &sp), 0); /* the real ack still holds */
	assert_int_equal(counter(sp, SPOOL_C_corrupt_records), 7);
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	assert_int_equal(seq, 2); /* no forged number moved the next one */
	assert_int_equal(spool_commit(sp), 0);
	spool_close(sp);
	assert_int_equal(given_again(&c, &sp), 1); /* the new record, not taken as acknowledged */
	spool_close(sp);
}

/* A segment whose name says more than its records hold (a file renamed, damage; found by
 * tests/fuzz/spool): recovery keeps the next number above every segment's name, so no new
 * segment takes that name. Before, a new segment was created over it (O_TRUNC): the three
 * records in it were lost, durable and never sent. */
static void
test_segment_named_above_its_records(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct spool_rec rec;
	char from[512], to[512], buf[64];
	int n = 0;

	(void)state;
	cfg_dir(&c);
	assert_int_equal(spool_open(&c, &sp), 0);
	for (int i = 0; i < 3; i++)
		append(sp, SPOOL_BULK, 1, "old"); /* 1, 2, 3 */
	assert_int_equal(spool_commit(sp), 0);
	spool_close(sp);
	snprintf(from, sizeof(from), "%s/bulk-q1-00000000000000000001.seg", dir);
	snprintf(to, sizeof(to), "%s/bulk-q1-00000000000000000005.seg", dir);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(spool_open(&c, &sp), 0);
	append(sp, SPOOL_NORMAL, 1, "pad"); /* 6 (4 before) */
	append(sp, SPOOL_BULK, 1, "new");   /* 7 (5 before: that name) */
	assert_int_equal(spool_commit(sp), 0);
	spool_close(sp);
	assert_int_equal(spool_open(&c, &sp), 0);
	while (spool_read(sp, SPOOL_BULK, &rec, buf, sizeof(buf)) == 1)
		n++;
	assert_int_equal(n, 4); /* the three old ones and the new one */
	spool_close(sp);
}

static void
test_ack_log_bad_header_and_newer(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct spool_file_hdr h;
	char p[512];
	FILE *f;

	(void)state;
	acked_record(&c);
	ack_log_path(p, sizeof(p));
	f = fopen(p, "r+");
	assert_non_null(f);
	assert_int_equal(fread(&h, sizeof(h), 1, f), 1);
	assert_memory_equal(h.magic, SPOOL_ACK_MAGIC, 8);
	h.version = SPOOL_FORMAT_VERSION + 1;
	h.crc = spool_file_hdr_crc(&h);
	rewind(f);
	assert_int_equal(fwrite(&h, sizeof(h), 1, f), 1);
	fclose(f);
	sp = NULL;
	assert_int_equal(spool_open(&c, &sp), -EPROTONOSUPPORT);
	assert_null(sp);
	/* a header that is not one: the acks are lost, the log starts again, records come back */
	f = fopen(p, "r+");
	assert_non_null(f);
	fputs("garbage!", f);
	fclose(f);
	assert_int_equal(given_again(&c, &sp), 1);
	spool_close(sp);
	assert_int_equal(given_again(&c, &sp), 1); /* the fresh log holds no ack for it */
	spool_close(sp);
}

static void
test_ack_log_io_errors(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	char p[512];
	FILE *f;

	(void)state;
	acked_record(&c);
	fail.open = true;
	assert_int_equal(spool_open(&c, &sp), -EACCES);
	fail.open = false;
	fail.pread = true;
	assert_int_equal(spool_open(&c, &sp), -EIO);
	fail.pread = false;
	ack_log_path(p, sizeof(p));
	f = fopen(p, "a");
	assert_non_null(f);
	fputs("xyz", f);
	fclose(f);
	fail.ftruncate = true; /* the torn tail cannot be cut */
	assert_int_equal(spool_open(&c, &sp), -EROFS);
	unlink(p);
	f = fopen(p, "w"); /* an empty log: written fresh, which fails too */
	fclose(f);
	assert_int_equal(spool_open(&c, &sp), -EROFS);
	fail.ftruncate = false;
	assert_int_equal(spool_open(&c, &sp), 0);
	spool_close(sp);
}

/* A consumer's mistakes: an unknown class, a sequence number never given or already acked, a
 * QoS 2 phase that does not exist. */
static void
test_consumer_refusals(void **state)
{
	struct spool_config c;
	struct spool *sp = NULL;
	struct spool_rec_in in = rec_tp(SPOOL_NORMAL, 2);
	struct spool_rec rec;
	char buf[64];
	uint64_t seq;

	(void)state;
	cfg_dir(&c);
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_read(sp, SPOOL_CLASS_N, &rec, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(spool_ack(sp, 1), -ENOENT);
	assert_int_equal(spool_q2_mark(sp, 1, SPOOL_Q2_PUBLISHED, 5), -ENOENT);
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	assert_int_equal(spool_commit(sp), 0);
	assert_int_equal(spool_q2_mark(sp, seq, (enum spool_q2_state)3, 5), -EINVAL);
	assert_int_equal(spool_q2_mark(sp, seq, SPOOL_Q2_PUBLISHED, 5), 0);
	assert_int_equal(spool_ack(sp, seq), 0);
	assert_int_equal(spool_ack(sp, seq), -ENOENT);
	assert_int_equal(spool_q2_mark(sp, seq, SPOOL_Q2_RELEASED, 5), -ENOENT);
	assert_int_equal(spool_ack(sp, seq + 100), -ENOENT);
	spool_close(sp);
}

/* The spool: section of the config: each bad value named at its line. */
static void
test_config_refusals(void **state)
{
	static const char *const bad[] = {
		"spool: {dir: [a]}",
		"spool: {max_bytes: 1k}",
		"spool: {segment_bytes: 2G}",
		"spool: {commit_max_wait_us: 0}",
		"spool: {commit_bytes: 1k}",
		"spool: {buffer_bytes: lots}",
		"spool: {disk_full_retry: 2h}",
		"spool: {classes: {alarm: {max_age: forever}}}",
		"spool: {classes: {bulk: {drop_when_full: sometimes}}}",
		"spool: {classes: {bulk: {colour: red}}}",
		"spool: {size: 1G}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf_doc *doc = NULL;
		struct spool_config c;
		char err[256];

		assert_int_equal(
		    conf_load_string("s.yaml", bad[i], strlen(bad[i]), &doc, err, sizeof(err)), 0);
		if (spool_config_parse(conf_get(conf_root(doc), "spool"), &c) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(conf_first_error(doc), "s.yaml:1:"));
		conf_free(doc);
	}
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(spool_counter_name(SPOOL_C_refused_invalid), "refused_invalid");
	assert_true(strlen(spool_counter_desc(SPOOL_C_refused_invalid)) > 10);
	assert_string_equal(spool_counter_name(SPOOL_C_N), "?");
	assert_string_equal(spool_counter_desc(SPOOL_C_N), "?");
	assert_int_equal(spool_counter_kind(SPOOL_C_N), SPOOL_COUNTER);
	assert_string_equal(spool_class_name(SPOOL_ALARM), "alarm");
	assert_string_equal(spool_class_name(SPOOL_BULK), "bulk");
	assert_string_equal(spool_class_name(SPOOL_CLASS_N), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults_fill_a_bare_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_opener_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_that_cannot_be, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_records_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_recovery_skips_strangers_refuses_newer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_log_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_log_forged_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_segment_named_above_its_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_log_bad_header_and_newer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_log_io_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_consumer_refusals, setup, teardown),
		cmocka_unit_test(test_config_refusals),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
