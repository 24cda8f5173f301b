/*
 * fuzz_spool_recover.c: libFuzzer harness of the spool's recovery (lib/spool): what a disk
 * that was cut, corrupted or tampered with hands spool_open. The input is a script that builds
 * a spool directory: segments of any stream, named in agreement with their header or not, the
 * header good or bad; records whose CRC-32C is made right (so the scan gets past it with any
 * sequence number, class and QoS, flags and lengths) or left wrong; raw bytes, cuts and flipped
 * bytes; ack-log entries of any type, stream, range and packet id with a good CRC or not;
 * stray files. Then the spool is opened, drained (some records acknowledged, QoS 2 phases
 * marked, the pending QoS 2 records read by sequence number), rewound and drained again, given
 * new records, committed, closed, and opened a second time.
 *
 * Checks: nothing crashes or leaks (ASan, LSan); every record given fits the lengths it says; a
 * drain ends, and gives no record twice; after the rewind no acknowledged record comes back;
 * a spool that opened once opens again after its own clean close, and then gives back every
 * new QoS 1/2 record that was reported durable and none that was acknowledged.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "spool.h"
#include "spool_internal.h"

#define NFILES   6
#define FILE_MAX 8192
#define GIVEN    512
#define NEW_RECS 9 /* every class at every QoS */

/* A broken promise: say which, then stop (libFuzzer keeps the input). */
static void __attribute__((noreturn)) fail(const char *why)
{
	fuzz_broken("fuzz_spool_recover", why);
}

struct mfile {
	char name[SPOOL_NAME_MAX];
	uint8_t buf[FILE_MAX];
	size_t len;
	unsigned stream;
};

static struct mfile files[NFILES];
static unsigned nfiles;
static uint8_t acks[FILE_MAX];
static size_t acks_len;
static bool acks_hdr_bad;
/* the sequence numbers the script wrote records under, with their stream: one written in two
 * streams is ambiguous (spool_ack names a record by its number alone), and not checked */
static uint64_t wrote_seq[1024];
static uint8_t wrote_stream[1024];
static unsigned nwrote;

static void
put(struct mfile *f, const void *p, size_t n)
{
	if (n > sizeof(f->buf) - f->len)
		n = sizeof(f->buf) - f->len;
	memcpy(f->buf + f->len, p, n);
	f->len += n;
}

static const char *
stream_prefix(unsigned s, char *out, size_t len)
{
	snprintf(out, len, "%s-q%c-", spool_class_name(spool_stream_class(s)),
	    spool_stream_qos0(s) ? '0' : '1');
	return out;
}

/* A new segment: stream, first sequence number in its name, header as written or spoiled. */
static void
op_segment(struct rd *r, uint64_t *seq)
{
	uint8_t b = u8(r), faults = u8(r);
	struct spool_file_hdr h = { .version = SPOOL_FORMAT_VERSION, .hdr_len = sizeof(h) };
	struct mfile *f;
	char pre[32];
	uint64_t first;

	if (nfiles == NFILES)
		return;
	f = &files[nfiles];
	f->stream = b % SPOOL_STREAMS;
	first = (b & 0x40) ? u8(r) : *seq + 1;
	snprintf(f->name, sizeof(f->name), "%s%020llu.seg",
	    stream_prefix(f->stream, pre, sizeof(pre)), (unsigned long long)first);
	for (unsigned i = 0; i < nfiles; i++)
		if (strcmp(files[i].name, f->name) == 0)
			return; /* one name, one file */
	f->len = 0;
	nfiles++;
	memcpy(h.magic, SPOOL_SEG_MAGIC, 8);
	h.stream = (uint8_t)((faults & 1) ? faults >> 4 : f->stream);
	h.first_seq = (faults & 2) ? first + 1 : first;
	if (faults == 0xff)
		h.version = SPOOL_FORMAT_VERSION + 1; /* a newer writer: the open must refuse */
	h.crc = spool_file_hdr_crc(&h);
	if (faults & 4)
		h.crc ^= 1;
	put(f, &h, (faults & 8) ? 16 : sizeof(h));
}

/* A record in the newest segment, its CRC right unless the script says otherwise. */
static void
op_record(struct rd *r, uint64_t *seq)
{
	uint8_t how = u8(r), cq = u8(r), body[24 + 48];
	struct spool_rec_hdr h = { .magic = SPOOL_REC_MAGIC };
	struct mfile *f;
	unsigned s;

	if (nfiles == 0)
		return;
	f = &files[nfiles - 1];
	s = f->stream;
	*seq += how & 3; /* 0: the same number again */
	if (how & 0x80)  /* a number of its own: small, or at the top of the range */
		h.seq = (how & 0x20) ? UINT64_MAX - u8(r) : u8(r);
	else
		h.seq = *seq;
	h.time_ms = (uint64_t)u8(r) * 3600 * 1000;
	h.topic_len = (uint16_t)(u8(r) % 24);
	h.payload_len = u8(r) % 48;
	h.flags = u8(r);
	h.cls_qos = (how & 4)
	    ? cq
	    : (uint8_t)(spool_stream_class(s) << 4 | (spool_stream_qos0(s) ? 0 : 1 + (cq & 1)));
	memset(body, cq, sizeof(body));
	h.crc = spool_rec_crc(&h, body);
	if (how & 8)
		h.crc ^= 0x10;
	if (how & 0x10)
		h.magic ^= 0x100;
	put(f, &h, sizeof(h));
	put(f, body, (size_t)h.topic_len + h.payload_len);
	if (nwrote < 1024) {
		wrote_seq[nwrote] = h.seq;
		wrote_stream[nwrote++] = (uint8_t)s;
	}
}

static bool
ambiguous(uint64_t seq)
{
	int stream = -1;

	for (unsigned i = 0; i < nwrote; i++) {
		if (wrote_seq[i] != seq)
			continue;
		if (stream >= 0 && stream != wrote_stream[i])
			return true;
		stream = wrote_stream[i];
	}
	return nwrote == 1024;
}

/* An ack log entry (the header first, good or bad, with the first one). */
static void
op_ack(struct rd *r)
{
	uint8_t how = u8(r);
	struct spool_ack_ent e = { .type = (uint8_t)(how % 6), .stream = (uint8_t)(u8(r) % 8) };

	if (acks_len == 0) {
		struct spool_file_hdr h = { .version = SPOOL_FORMAT_VERSION, .hdr_len = sizeof(h) };

		memcpy(h.magic, SPOOL_ACK_MAGIC, 8);
		if (how == 0xff)
			h.version = SPOOL_FORMAT_VERSION + 1;
		h.crc = spool_file_hdr_crc(&h);
		acks_hdr_bad = (how & 0xc0) == 0xc0 && how != 0xff;
		if (acks_hdr_bad)
			h.crc ^= 1;
		memcpy(acks, &h, sizeof(h));
		acks_len = sizeof(h);
	}
	e.pid = u16(r);
	e.lo = u8(r);
	e.hi = (how & 0x20) ? UINT64_MAX - u8(r) : e.lo + u8(r) % 16;
	e.crc = spool_ack_crc(&e);
	if (how & 0x10)
		e.crc ^= 4;
	if (acks_len + sizeof(e) <= sizeof(acks)) {
		memcpy(acks + acks_len, &e, sizeof(e));
		acks_len += sizeof(e);
	}
}

static void
build(struct rd *r)
{
	uint64_t seq = 0;

	nfiles = 0;
	acks_len = 0;
	nwrote = 0;
	while (r->n > 0) {
		uint8_t op = u8(r);
		struct mfile *f = nfiles ? &files[nfiles - 1] : NULL;

		switch (op % 7) {
		case 0:
			op_segment(r, &seq);
			break;
		case 1:
		case 2:
			op_record(r, &seq);
			break;
		case 3: /* raw bytes */
			if (f != NULL)
				for (unsigned n = u8(r) % 48; n > 0 && r->n > 0; n--) {
					uint8_t b = u8(r);
					put(f, &b, 1);
				}
			break;
		case 4: /* cut the end */
			if (f != NULL) {
				size_t n = u8(r) % 48;
				f->len = f->len > n ? f->len - n : 0;
			}
			break;
		case 5: /* flip a byte */
			if (f != NULL && f->len > 0) {
				size_t at = u16(r) % f->len;
				f->buf[at] ^= (uint8_t)(u8(r) | 1);
			}
			break;
		default:
			op_ack(r);
			break;
		}
	}
}

static int
write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	if (n > 0 && write(fd, p, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static uint64_t now_ms = 40ull * 86400 * 1000; /* past the newest record's time, days later */

static uint64_t
clock_fn(void *arg)
{
	(void)arg;
	return now_ms;
}

static volatile uint32_t sink;

static void
recovered(void *arg, uint64_t seq, uint8_t flags, const uint8_t *payload, uint32_t len)
{
	(void)arg;
	(void)seq;
	(void)flags;
	for (uint32_t i = 0; i < len; i++)
		sink += payload[i]; /* ASan: the payload is all there */
}

static void
touch(const struct spool_rec *rec, const uint8_t *buf, size_t cap)
{
	if ((size_t)rec->topic_len + rec->payload_len > cap ||
	    (rec->topic_len > 0 &&
		((const uint8_t *)rec->topic < buf ||
		    (const uint8_t *)rec->topic + rec->topic_len > buf + cap)) ||
	    (rec->payload_len > 0 &&
		(rec->payload < buf || rec->payload + rec->payload_len > buf + cap)))
		fail("a record that does not fit what it says");
	for (uint16_t i = 0; i < rec->topic_len; i++)
		sink += (uint8_t)rec->topic[i];
	for (uint32_t i = 0; i < rec->payload_len; i++)
		sink += rec->payload[i];
}

struct given {
	uint64_t seq[GIVEN];
	uint8_t cls[GIVEN];
	unsigned n;
};

static bool
was_given(const struct given *g, uint64_t seq, uint8_t cls)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->seq[i] == seq && g->cls[i] == cls)
			return true;
	return false;
}

static unsigned
seq_count(const struct given *g, uint64_t seq)
{
	unsigned k = 0;

	for (unsigned i = 0; i < g->n; i++)
		k += g->seq[i] == seq;
	return k;
}

/* Everything the spool gives until it has nothing (bounded: more than it holds is a bug). */
static void
drain(struct spool *sp, struct given *g, uint64_t bound, bool ack)
{
	static uint8_t buf[1 << 16];
	struct spool_rec rec;
	int rc;

	g->n = 0;
	while ((rc = spool_read_next(sp, &rec, buf, sizeof(buf))) == 1) {
		uint8_t cls = (uint8_t)(rec.cls << 1 | (rec.qos == 0));

		touch(&rec, buf, sizeof(buf));
		if (was_given(g, rec.seq, cls) || g->n >= bound || g->n == GIVEN)
			fail("given twice before a rewind, or more than was there");
		g->seq[g->n] = rec.seq;
		g->cls[g->n++] = cls;
		if (!ack)
			continue;
		if (g->n % 3 == 1)
			spool_ack(sp, rec.seq);
		else if (rec.qos == 2 && g->n % 3 == 2)
			spool_q2_mark(sp, rec.seq, SPOOL_Q2_PUBLISHED, (uint16_t)g->n);
	}
	if (rc != 0 && rc != -ENOBUFS)
		fail("a read failed");
}

static void
run(const char *dir, uint8_t opts)
{
	static uint8_t buf[1 << 16];
	struct spool_config cfg;
	struct given first, again;
	struct spool *sp;
	uint64_t acked[GIVEN], newseq[NEW_RECS], c[SPOOL_C_N], q2[64];
	unsigned nacked = 0, nnew = 0;
	size_t nq2;
	int rc;

	spool_config_defaults(&cfg);
	cfg.dir = dir;
	cfg.now_ms = clock_fn;
	cfg.recover_flags = 0x80;
	cfg.on_recovered = recovered;
	cfg.commit_bytes = 4096; /* small buffers: fast runs, and appends that find them full */
	cfg.buffer_bytes = 512;
	if (opts & 1)
		cfg.max_bytes = 4096; /* below what is on disk: the bound drops at the commit */
	rc = spool_open(&cfg, &sp);
	if (rc < 0) {
		if (rc != -EPROTONOSUPPORT)
			fail("only a newer format refuses: the rest is recovered around");
		return;
	}
	spool_counters(sp, c);
	drain(sp, &first, c[SPOOL_C_recovered_records] + 1, true);
	nq2 = spool_q2_pending(sp, q2, 64);
	for (size_t i = 0; i < nq2 && i < 64; i++) {
		struct spool_rec rec;

		if (spool_read_seq(sp, q2[i], &rec, buf, sizeof(buf)) == 1)
			touch(&rec, buf, sizeof(buf));
	}
	for (unsigned i = 0; i < first.n; i += 3)
		if (spool_rec_acked(sp, first.seq[i]) && seq_count(&first, first.seq[i]) == 1 &&
		    !ambiguous(first.seq[i]))
			acked[nacked++] = first.seq[i];
	spool_rewind(sp);
	drain(sp, &again, c[SPOOL_C_recovered_records] + 1, false);
	for (unsigned i = 0; i < nacked; i++)
		if (seq_count(&again, acked[i]) > 0)
			fail("acknowledged, and given again");
	for (unsigned k = 0; k < NEW_RECS; k++) {
		struct spool_rec_in in = { .cls = (enum spool_class)(k % SPOOL_CLASS_N),
			.qos = (uint8_t)(k / SPOOL_CLASS_N),
			.flags = 0x40,
			.topic = "fz/new",
			.topic_len = 6,
			.payload = "new",
			.payload_len = 3 };
		uint64_t s;

		if (spool_append(sp, &in, &s) == 0 && in.qos > 0)
			newseq[nnew++] = s;
	}
	rc = spool_commit(sp);
	for (unsigned i = 0; i < nnew; i++)
		if (rc != 0 || spool_seq_status(sp, newseq[i]) != 1)
			newseq[i] = 0; /* not durable: nothing promised */
	spool_close(sp);

	cfg.on_recovered = NULL;
	if (spool_open(&cfg, &sp) != 0)
		fail("it opened, and closed cleanly: it must open again");
	spool_counters(sp, c);
	drain(sp, &again, c[SPOOL_C_recovered_records] + 1, false);
	for (unsigned i = 0; i < nacked; i++)
		if (seq_count(&again, acked[i]) > 0)
			fail("acknowledged and committed, and back after the open");
	for (unsigned i = 0; i < nnew; i++)
		if (newseq[i] != 0 && !(opts & 1) && seq_count(&again, newseq[i]) == 0)
			fail("durable QoS 1/2, lost over a clean close and open");
	spool_close(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const stray[] = { "alarm-q1-0000000000000000000x.seg", "acks.log.tmp",
		"normal-q0-00000000000000000001.seg.bad", "bulk-q2-00000000000000000001.seg" };
	char dir[] = "/dev/shm/fuzz_spool.XXXXXX", tdir[] = "/tmp/fuzz_spool.XXXXXX";
	struct rd r = { data, size };
	const char *d;
	uint8_t opts;

	if (size < 1)
		return 0;
	opts = u8(&r);
	build(&r);
	d = mkdtemp(dir);
	if (d == NULL && (d = mkdtemp(tdir)) == NULL)
		fail("no directory for the spool");
	for (unsigned i = 0; i < nfiles; i++)
		if (write_file(d, files[i].name, files[i].buf, files[i].len) < 0)
			fail("cannot write the spool's files");
	if (acks_len > 0 && write_file(d, SPOOL_ACK_FILE, acks, acks_len) < 0)
		fail("cannot write the ack log");
	if (opts & 2)
		write_file(d, stray[(opts >> 2) % 4], "x", 1);
	run(d, opts);
	nftw(d, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
