/*
 * bench_q2_commit.c: what making the uplink's QoS 2 phases durable costs the agent's loop
 * (lib/spool as agent/uplink/store.c uses it), alternating, in one run: "on the loop" marks a
 * record's phase and runs spool_commit() on the calling thread (the loop waits for the
 * fdatasync: the old dlv_sync); "off the loop" marks it and calls spool_commit_request(), and the
 * flusher's on_committed report ends the wait (the loop is free meanwhile). Prints, per way, the
 * loop's time in the call (p50, p99) and the time until the phase is durable (p50, p99). Never
 * fails on time.
 *   build/tests/bench/spool/bench_q2_commit [DIR] [ROUNDS]   (DIR default /var/tmp/edgegw-bench-q2)
 */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "spool.h"

static const char *dir = "/var/tmp/edgegw-bench-q2";
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t committed;

static uint64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void
on_committed(void *arg, uint64_t no, int status)
{
	(void)arg, (void)status;
	pthread_mutex_lock(&mu);
	committed = no;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void
report(const char *name, uint64_t *loop, uint64_t *total, int n)
{
	qsort(loop, (size_t)n, sizeof(*loop), cmp_u64);
	qsort(total, (size_t)n, sizeof(*total), cmp_u64);
	printf(
	    "%-13s loop blocked p50 %6.1f us  p99 %7.1f us | phase durable p50 %6.1f us  p99 %7.1f "
	    "us\n",
	    name, (double)loop[n / 2], (double)loop[n * 99 / 100], (double)total[n / 2],
	    (double)total[n * 99 / 100]);
}

int
main(int argc, char **argv)
{
	int rounds = argc > 2 ? atoi(argv[2]) : 2000;
	struct spool_config c;
	struct spool *sp;
	uint64_t *seqs, *l_on, *t_on, *l_off, *t_off;
	struct spool_rec r;
	char buf[256];

	if (argc > 1)
		dir = argv[1];
	log_set_level(LOG_LVL_WARN);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	spool_config_defaults(&c);
	c.dir = dir;
	c.on_committed = on_committed;
	if (rounds < 10 || spool_open(&c, &sp) != 0 || spool_start_flusher(sp) != 0) {
		fprintf(stderr, "bench_q2_commit: cannot open a spool in %s\n", dir);
		return 1;
	}
	seqs = calloc((size_t)rounds, sizeof(*seqs));
	l_on = calloc((size_t)rounds, sizeof(*l_on));
	t_on = calloc((size_t)rounds, sizeof(*t_on));
	l_off = calloc((size_t)rounds, sizeof(*l_off));
	t_off = calloc((size_t)rounds, sizeof(*t_off));
	for (int i = 0; i < rounds; i++) {
		struct spool_rec_in in = { .cls = SPOOL_NORMAL,
			.qos = 2,
			.topic = "site/q2",
			.topic_len = 7,
			.payload = "reading",
			.payload_len = 7 };
		spool_append(sp, &in, &seqs[i]);
	}
	spool_commit(sp);
	while (spool_read_next(sp, &r, buf, sizeof(buf)) == 1)
		;
	for (int i = 0; i < rounds; i++) { /* alternate the two ways, round by round */
		uint64_t t0 = now_us(), t1, no;

		spool_q2_mark(sp, seqs[i], SPOOL_Q2_PUBLISHED, (uint16_t)(i % 65535 + 1));
		if (i % 2 == 0) {
			spool_commit(sp);
			t1 = now_us();
			l_on[i / 2] = t_on[i / 2] = t1 - t0;
			continue;
		}
		no = spool_commit_request(sp);
		t1 = now_us();
		pthread_mutex_lock(&mu);
		while (committed < no)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		l_off[i / 2] = t1 - t0;
		t_off[i / 2] = now_us() - t0;
	}
	printf("QoS 2 phase commits, %d rounds each, spool in %s\n", rounds / 2, dir);
	report("on the loop", l_on, t_on, rounds / 2);
	report("off the loop", l_off, t_off, rounds / 2);
	spool_close(sp);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(seqs), free(l_on), free(t_on), free(l_off), free(t_off);
	return 0;
}
