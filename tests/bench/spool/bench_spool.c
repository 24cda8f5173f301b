/*
 * bench_spool.c: the spool's durable throughput and recovery time (lib/spool). For 100-byte and
 * 1 KB records: records/s and MB/s made durable with group commit (the flusher thread, one
 * fdatasync per commit) against an fdatasync per record; then the time spool_open takes to
 * recover a spool of 1 million 100-byte records. Prints numbers; never fails on time.
 *   build/tests/bench/spool/bench_spool [DIR] [RECORDS]   (DIR default /var/tmp/edgegw-bench-spool)
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "spool.h"

static const char *dir = "/var/tmp/edgegw-bench-spool";

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void
wipe(void)
{
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static struct spool *
open_spool(void)
{
	struct spool_config c;
	spool_config_defaults(&c);
	c.dir = dir;
	c.max_bytes = 4ull << 30;
	struct spool *sp;
	int rc = spool_open(&c, &sp);
	if (rc) {
		fprintf(stderr, "bench_spool: cannot open %s: %s\n", dir, strerror(-rc));
		exit(1);
	}
	return sp;
}

static void
append_one(struct spool *sp, const void *pl, uint32_t len, uint64_t i, uint64_t *seq)
{
	struct spool_rec_in in = { .cls = SPOOL_NORMAL,
		.qos = 1,
		.topic = "plant/line1/t",
		.topic_len = 13,
		.payload = pl,
		.payload_len = len };
	(void)i;
	while (spool_append(sp, &in, seq) == -ENOBUFS)
		sched_yield();
}

static void
group_commit(uint32_t len, uint64_t n)
{
	wipe();
	struct spool *sp = open_spool();
	spool_start_flusher(sp);
	char *pl = calloc(1, len);
	uint64_t seq = 0;
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++)
		append_one(sp, pl, len, i, &seq);
	while (spool_wait_durable(sp, seq, 1000) == 0)
		;
	double dt = now_s() - t0;
	uint64_t c[SPOOL_C_N];
	spool_counters(sp, c);
	printf("%-6u B  group commit     %9.0f records/s  %7.1f MB/s durable  %6" PRIu64
	       " commits  %7.0f fdatasync/s  "
	       "%5.0f records/commit\n",
	    len, (double)n / dt, (double)c[SPOOL_C_durable_bytes] / dt / 1e6, c[SPOOL_C_commits],
	    (double)c[SPOOL_C_fdatasyncs] / dt,
	    (double)n / (double)(c[SPOOL_C_commits] ? c[SPOOL_C_commits] : 1));
	spool_close(sp);
	free(pl);
}

struct prod {
	struct spool *sp;
	uint32_t len;
	uint64_t n, last;
};

static void *
producer(void *arg)
{
	struct prod *p = arg;
	char *pl = calloc(1, p->len);
	for (uint64_t i = 0; i < p->n; i++)
		append_one(p->sp, pl, p->len, i, &p->last);
	free(pl);
	return NULL;
}

/* Several producer threads on one spool (the broker's lcores): the append lock is shared. */
static void
group_commit_threads(uint32_t len, uint64_t n, unsigned threads)
{
	wipe();
	struct spool *sp = open_spool();
	spool_start_flusher(sp);
	struct prod p[16];
	pthread_t t[16];
	double t0 = now_s();
	for (unsigned i = 0; i < threads; i++) {
		p[i] = (struct prod){ .sp = sp, .len = len, .n = n / threads };
		pthread_create(&t[i], NULL, producer, &p[i]);
	}
	uint64_t last = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		last = p[i].last > last ? p[i].last : last;
	}
	while (spool_wait_durable(sp, last, 1000) == 0)
		;
	double dt = now_s() - t0;
	uint64_t c[SPOOL_C_N];
	spool_counters(sp, c);
	printf("%-6u B  group commit, %u producers %7.0f records/s  %7.1f MB/s durable  %6" PRIu64
	       " commits\n",
	    len, threads, (double)c[SPOOL_C_durable_records] / dt,
	    (double)c[SPOOL_C_durable_bytes] / dt / 1e6, c[SPOOL_C_commits]);
	spool_close(sp);
}

static void
sync_each(uint32_t len, double budget_s)
{
	wipe();
	struct spool *sp = open_spool();
	char *pl = calloc(1, len);
	uint64_t seq, n = 0;
	double t0 = now_s(), dt;
	do {
		append_one(sp, pl, len, n, &seq);
		spool_commit(sp);
		n++;
	} while ((dt = now_s() - t0) < budget_s);
	uint64_t c[SPOOL_C_N];
	spool_counters(sp, c);
	printf("%-6u B  fdatasync/record %9.0f records/s  %7.1f MB/s durable  %6" PRIu64
	       " commits  %7.0f fdatasync/s\n",
	    len, (double)n / dt, (double)c[SPOOL_C_durable_bytes] / dt / 1e6, c[SPOOL_C_commits],
	    (double)c[SPOOL_C_fdatasyncs] / dt);
	spool_close(sp);
	free(pl);
}

static void
recovery(uint64_t n)
{
	wipe();
	struct spool *sp = open_spool();
	spool_start_flusher(sp);
	char pl[100] = { 0 };
	uint64_t seq = 0;
	for (uint64_t i = 0; i < n; i++)
		append_one(sp, pl, sizeof(pl), i, &seq);
	spool_close(sp);
	/* best of three opens: the page cache holds the segments after the first */
	double dt = 1e9;
	for (int i = 0; i < 3; i++) {
		double t0 = now_s();
		sp = open_spool();
		double t = now_s() - t0;
		dt = t < dt ? t : dt;
		if (i < 2)
			spool_abandon(sp);
	}
	uint64_t c[SPOOL_C_N];
	spool_counters(sp, c);
	printf("recovery  %" PRIu64 " records of 100 B in %" PRIu64
	       " segments (%.0f MB): %.3f s (%.1f M records/s, best of 3 opens)\n",
	    c[SPOOL_C_recovered_records], c[SPOOL_C_recovered_segments],
	    (double)c[SPOOL_C_bytes_used] / 1e6, dt,
	    (double)c[SPOOL_C_recovered_records] / dt / 1e6);
	spool_close(sp);
}

int
main(int argc, char **argv)
{
	log_init("bench_spool", LOG_LVL_WARN);
	if (argc > 1)
		dir = argv[1];
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	printf("spool bench in %s (the flusher; commit after 1 ms or 256 KiB, max_bytes 4 GiB, "
	       "segments of "
	       "64 MiB)\n",
	    dir);
	group_commit(100, n);
	group_commit_threads(100, n, 4);
	sync_each(100, 2.0);
	group_commit(1024, n / 5);
	sync_each(1024, 2.0);
	recovery(n);
	wipe();
	return 0;
}
