/*
 * test_dpchan_faults.c: lib/dpchan's error paths, with peers that misbehave and an allocator
 * that fails on demand (fail_alloc.h). The server: a socket path it cannot use, out of memory
 * at every allocation of its start, of a connection and of a stream; a hand-made lcore that
 * sends a frame of more records than one answer frame holds, a frame of another type, a frame
 * over the limit, the same lcore twice; many ranges answered at once; downlink publishes with
 * no lcore, too large, or into a full socket; known records of several dataplane starts; a
 * durable report of QoS 2 records with no memory to keep it while its origins sync; each
 * malformed control frame; HELD lists of an earlier start; answers to an lcore that does not
 * read; a connection freed earlier in the same run. The
 * client: out of memory at start, a hand-made agent that sends garbage, a PUB, a DOWN with no
 * handler, then closes; an arena that wraps around.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <cmocka.h>

#include "dpchan_client.h"
#include "dpchan_conf.h"
#include "dpchan_q2.h"
#include "dpchan_server.h"
#include "fail_alloc.h"

/* ---- a sink that takes, answers now, or refuses ---- */
struct sink {
	uint64_t next_token;
	int mode; /* 0: taken (token); 1: taken, answered now; < 0: refused with it */
	uint32_t n;
};

static int
sink_submit(void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *token)
{
	struct sink *k = arg;

	(void)from, (void)r;
	if (k->mode < 0)
		return k->mode;
	k->n++;
	*token = ++k->next_token;
	return k->mode;
}

static const struct dpchan_sink_ops sink_ops = { .submit = sink_submit };

struct env {
	char dir[64], path[96];
	struct sink sink;
	struct dpchan_server *s;
};

static struct env *
env_new(const struct dpchan_server_config *cfg)
{
	struct env *e = calloc(1, sizeof(*e));
	struct dpchan_server_config sc = { 0 };

	assert_non_null(e);
	strcpy(e->dir, "/tmp/dpchan-faults-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/dpchan.sock", e->dir);
	if (cfg != NULL)
		sc = *cfg;
	sc.path = e->path;
	e->s = dpchan_server_new(&sc, &sink_ops, &e->sink);
	assert_non_null(e->s);
	return e;
}

static void
env_free(struct env *e)
{
	char q2[128];

	dpchan_server_free(e->s);
	snprintf(q2, sizeof(q2), "%s/q2", e->dir); /* env_new_q2's origin file */
	unlink(q2);
	unlink(e->path);
	rmdir(e->dir);
	free(e);
}

/* ---- a hand-made lcore ---- */
static int
peer_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

	strcpy(sa.sun_path, path);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int
peer_hello(struct env *e, uint64_t boot_id, uint32_t lcore)
{
	struct dpchan_hello h = { boot_id, lcore, DPCHAN_VERSION };
	uint8_t buf[DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN];
	int fd = peer_connect(e->path);
	int len = dpchan_encode_hello(buf, sizeof(buf), &h);

	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	dpchan_server_run(e->s); /* accepted */
	dpchan_server_run(e->s); /* its hello read */
	return fd;
}

/* A PUB frame of refs first..first+n-1 (0: best effort records) at QoS qos. */
static void
peer_pub_qos(int fd, uint64_t first, uint32_t n, uint8_t qos)
{
	static uint8_t buf[DPCHAN_FRAME_MAX];
	size_t off = DPCHAN_HDR_LEN;

	dpchan_put_header(buf, DPCHAN_PUB, n);
	for (uint32_t i = 0; i < n; i++) {
		struct dpchan_rec r = { .ref = first ? first + i : 0,
			.qos = qos,
			.topic = "plant/p",
			.topic_len = 7,
			.payload = (const uint8_t *)"v",
			.payload_len = 1 };
		int len = dpchan_put_rec(buf + off, sizeof(buf) - off, false, &r);

		assert_true(len > 0);
		off += (size_t)len;
	}
	assert_int_equal(send(fd, buf, off, 0), (ssize_t)off);
}

static void
peer_pub(int fd, uint64_t first, uint32_t n)
{
	peer_pub_qos(fd, first, n, 1);
}

/* What the server answered: refs reported durable and failed, in DURABLE frames. */
struct answers {
	uint64_t ok, failed, frames, ranges;
	int32_t last_status;
	uint8_t ok_ref[1024]; /* refs below 1024 answered durable */
};

static void
count_range(void *arg, const struct dpchan_range *r)
{
	struct answers *a = arg;

	a->ranges++;
	a->last_status = r->status;
	if (r->status == 0) {
		a->ok += r->last - r->first + 1;
		for (uint64_t ref = r->first; ref <= r->last && ref < 1024; ref++)
			a->ok_ref[ref] = 1;
	} else {
		a->failed += r->last - r->first + 1;
	}
}

static struct answers
peer_answers(int fd)
{
	static uint8_t buf[DPCHAN_FRAME_MAX];
	struct answers a = { 0 };
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		assert_int_equal(dpchan_decode_durable(buf, (size_t)n, count_range, &a), 0);
		a.frames++;
	}
	return a;
}

/* Whether the server closed the peer's connection (end of file, nothing else in between). */
static bool
peer_closed(int fd)
{
	uint8_t b[64];

	return recv(fd, b, sizeof(b), MSG_DONTWAIT) == 0;
}

/* ---- codec ---- */

static int
no_rec(void *arg, const struct dpchan_rec *r)
{
	(void)r;
	++*(int *)arg;
	return 0;
}

static void
no_range(void *arg, const struct dpchan_range *r)
{
	(void)r;
	++*(int *)arg;
}

/* Each malformed frame alone, refused whole with its reason (the callback never runs); an
 * encoder given too little room or a bad field refuses. */
static void
test_codec_refusals(void **state)
{
	uint8_t b[256];
	struct dpchan_hello h = { 1, 2, 3 };
	struct dpchan_range v[2] = { { 1, 2, 0 }, { 3, 3, -5 } };
	struct dpchan_rec r = { .ref = 1, .qos = 1, .topic = "t", .topic_len = 1 };
	int calls = 0, len;

	(void)state;
	/* header: reserved bytes, type out of range */
	dpchan_put_header(b, DPCHAN_PUB, 0);
	b[2] = 1;
	assert_int_equal(dpchan_decode_recs(b, 8, DPCHAN_PUB, no_rec, &calls), -DPCHAN_E_TYPE);
	dpchan_put_header(b, DPCHAN_DOWN + 1, 0);
	assert_int_equal(dpchan_decode_recs(b, 8, DPCHAN_PUB, no_rec, &calls), -DPCHAN_E_TYPE);
	/* hello */
	assert_int_equal(dpchan_encode_hello(b, 31, &h), -E2BIG);
	assert_int_equal(dpchan_encode_hello(b, sizeof(b), &h), 32);
	b[1] = 9;
	assert_int_equal(dpchan_decode_hello(b, 32, &h), -DPCHAN_E_VERSION);
	b[1] = DPCHAN_VERSION;
	assert_int_equal(dpchan_decode_hello(b, 24, &h), -DPCHAN_E_TRUNCATED); /* a version 3 one */
	assert_int_equal(dpchan_decode_hello(b, 33, &h), -DPCHAN_E_TRAILING);
	b[4] = 2; /* count 2 */
	assert_int_equal(dpchan_decode_hello(b, 32, &h), -DPCHAN_E_FIELD);
	b[0] = DPCHAN_PUB;
	assert_int_equal(dpchan_decode_hello(b, 32, &h), -DPCHAN_E_TYPE);
	/* records */
	r.qos = 3;
	assert_int_equal(dpchan_put_rec(b, sizeof(b), false, &r), -EINVAL);
	r.qos = 1;
	assert_int_equal(dpchan_put_rec(b, 16, false, &r), -E2BIG);
	dpchan_put_header(b, DPCHAN_PUB, 1);
	len = dpchan_put_rec(b + 8, sizeof(b) - 8, false, &r);
	assert_int_equal(len, 17);
	b[8 + 9] = 2; /* a flag bit that does not exist */
	assert_int_equal(
	    dpchan_decode_recs(b, 8 + (size_t)len, DPCHAN_PUB, no_rec, &calls), -DPCHAN_E_FIELD);
	b[8 + 9] = 1;
	assert_int_equal(dpchan_decode_recs(b, 8 + (size_t)len, DPCHAN_PUB, no_rec, &calls), 0);
	assert_int_equal(calls, 1);
	calls = 0;
	assert_int_equal(
	    dpchan_decode_recs(b, 8 + (size_t)len, DPCHAN_DOWN, no_rec, &calls), -DPCHAN_E_TYPE);
	dpchan_put_header(b, DPCHAN_HELLO, 1); /* a type that carries no records */
	assert_int_equal(
	    dpchan_decode_recs(b, 8 + (size_t)len, DPCHAN_HELLO, no_rec, &calls), -DPCHAN_E_TYPE);
	/* durable */
	assert_int_equal(dpchan_encode_durable(b, 47, v, 2), -E2BIG);
	assert_int_equal(dpchan_encode_durable(b, sizeof(b), v, 2), 48);
	assert_int_equal(dpchan_decode_durable(b, 47, no_range, &calls), -DPCHAN_E_TRUNCATED);
	assert_int_equal(dpchan_decode_durable(b, 49, no_range, &calls), -DPCHAN_E_TRAILING);
	b[8 + 20 + 16] = 1; /* second status > 0 */
	b[8 + 20 + 17] = b[8 + 20 + 18] = b[8 + 20 + 19] = 0;
	assert_int_equal(dpchan_decode_durable(b, 48, no_range, &calls), -DPCHAN_E_FIELD);
	assert_int_equal(dpchan_encode_durable(b, sizeof(b), v, 2), 48);
	b[8] = 0; /* first ref 0 */
	assert_int_equal(dpchan_decode_durable(b, 48, no_range, &calls), -DPCHAN_E_FIELD);
	b[8] = 3; /* first 3 > last 2 */
	assert_int_equal(dpchan_decode_durable(b, 48, no_range, &calls), -DPCHAN_E_FIELD);
	b[0] = DPCHAN_PUB;
	assert_int_equal(dpchan_decode_durable(b, 48, no_range, &calls), -DPCHAN_E_TYPE);
	assert_int_equal(calls, 0);
	assert_string_equal(dpchan_strerror(-999), "unknown error");
	assert_string_equal(dpchan_strerror(-DPCHAN_E_FIELD), "field out of range");
}

/* Every counter has a name and a description an operator can read, no two alike; a number
 * that is not a counter has none. */
static void
test_counter_names(void **state)
{
	(void)state;
	for (int i = 0; i < DPCHAN_C_COUNT; i++) {
		assert_true(strlen(dpchan_counter_name((enum dpchan_counter)i)) > 1);
		assert_true(strlen(dpchan_counter_desc((enum dpchan_counter)i)) > 5);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(dpchan_counter_name((enum dpchan_counter)i),
			    dpchan_counter_name((enum dpchan_counter)j));
	}
	assert_string_equal(dpchan_counter_name(DPCHAN_C_COUNT), "?");
	assert_string_equal(dpchan_counter_desc(DPCHAN_C_COUNT), "?");
	assert_int_equal(dpchan_counter_kind(DPCHAN_C_COUNT), COUNTER_KIND_INFO);
}

/* ---- server ---- */

/* A path it cannot listen at is refused with its errno, and what is there is left alone. */
static void
test_server_bad_paths(void **state)
{
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[200], longp[200];
	struct dpchan_server_config sc = { .path = path };
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	sc.path = longp;
	errno = 0;
	assert_null(dpchan_server_new(&sc, &sink_ops, NULL));
	assert_int_equal(errno, ENAMETOOLONG);

	snprintf(path, sizeof(path), "%s/no-such-dir/s.sock", dir);
	sc.path = path;
	assert_null(dpchan_server_new(&sc, &sink_ops, NULL));
	assert_int_equal(errno, ENOENT);

	/* a socket left by an agent that died: replaced */
	snprintf(path, sizeof(path), "%s/stale.sock", dir);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int sfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		struct dpchan_server *s;

		strcpy(sa.sun_path, path);
		assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(sfd);
		s = dpchan_server_new(&sc, &sink_ops, NULL);
		assert_non_null(s);
		dpchan_server_free(s);
		assert_int_equal(lstat(path, &st), -1); /* and removed with it */
	}

	/* a file that is not a socket: not ours, not removed */
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_null(dpchan_server_new(&sc, &sink_ops, NULL));
	assert_int_equal(errno, EADDRINUSE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4);
	unlink(path);
	rmdir(dir);
}

/* Out of memory at each allocation of the start in turn: NULL with ENOMEM, nothing left
 * listening, nothing leaked (ASan); then it starts. */
static void
test_server_new_out_of_memory(void **state)
{
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[100];
	struct dpchan_server_config sc = { .path = path };
	struct dpchan_server *s = NULL;
	uint64_t k;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	for (k = 1; k < 10 && s == NULL; k++) {
		struct stat st;

		fail_alloc_nth(k);
		s = dpchan_server_new(&sc, &sink_ops, NULL);
		if (s == NULL) {
			assert_int_equal(errno, ENOMEM);
			assert_int_equal(fail_alloc_failed(), 1);
			assert_int_equal(lstat(path, &st), -1);
		}
	}
	fail_alloc_nth(0);
	assert_non_null(s);
	assert_true(k >= 3); /* the server and its streams */
	dpchan_server_free(s);
	rmdir(dir);
}

/* Out of memory for a new connection (its state, its receive buffer) or for the stream of its
 * hello: the lcore is refused (counted) and closed, the server goes on. */
static void
test_server_conn_out_of_memory(void **state)
{
	struct env *e = env_new(NULL);
	int fd;

	(void)state;
	for (uint64_t k = 1; k <= 2; k++) {
		fd = peer_connect(e->path);
		fail_alloc_nth(k);
		dpchan_server_run(e->s);
		assert_int_equal(fail_alloc_failed(), 1);
		fail_alloc_nth(0);
		assert_true(peer_closed(fd));
		assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_LIMIT_STREAMS), k);
		close(fd);
	}
	fd = peer_connect(e->path);
	dpchan_server_run(e->s); /* accepted */
	{
		struct dpchan_hello h = { 5, 1, DPCHAN_VERSION };
		uint8_t buf[DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN];
		int len = dpchan_encode_hello(buf, sizeof(buf), &h);

		assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	}
	fail_alloc_nth(1); /* the stream's ring of refs awaiting durability */
	dpchan_server_run(e->s);
	assert_int_equal(fail_alloc_failed(), 1);
	fail_alloc_nth(0);
	assert_true(peer_closed(fd));
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_LIMIT_STREAMS), 3);
	assert_int_equal(dpchan_server_connected(e->s), 0);
	close(fd);
	fd = peer_hello(e, 5, 1); /* with memory again: taken */
	assert_int_equal(dpchan_server_connected(e->s), 1);
	close(fd);
	env_free(e);
}

/* A frame of 100 records (more than one answer frame's 64 ranges): each one answered, whether
 * the sink answers at once, the ref is a duplicate, or the sink refuses it. */
static void
test_server_answers_over_64(void **state)
{
	struct env *e = env_new(NULL);
	int fd = peer_hello(e, 9, 3);
	struct answers a;

	(void)state;
	e->sink.mode = 1; /* taken, nothing to wait for */
	peer_pub(fd, 1, 100);
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.ok, 100);
	assert_int_equal(a.failed, 0);
	assert_int_equal(a.frames, 2);
	assert_int_equal(e->sink.n, 100);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DURABLE_TX), 100);

	peer_pub(fd, 1, 100); /* again: duplicates, answered again, not taken again */
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.ok, 100);
	assert_int_equal(a.frames, 2);
	assert_int_equal(e->sink.n, 100);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RECS_DUP), 100);

	e->sink.mode = -EIO; /* refused for good: answered failed */
	peer_pub(fd, 101, 100);
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.ok, 0);
	assert_int_equal(a.failed, 100);
	assert_int_equal(a.last_status, -EIO);
	assert_int_equal(a.frames, 2);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_SINK_FAIL), 100);

	peer_pub(fd, 101, 100); /* sent again (its answers lost): failed again, never durable */
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.ok, 0);
	assert_int_equal(a.failed, 100);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_SINK_FAIL), 100);

	e->sink.mode = 0; /* best effort records: taken, never answered */
	peer_pub(fd, 0, 3);
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.frames, 0);
	assert_int_equal(e->sink.n, 103);
	close(fd);
	env_free(e);
}

/* The same lcore connects again: the newer connection wins, the older is closed. A frame of
 * a type the agent does not receive, and one over DPCHAN_FRAME_MAX, close their connection. */
static void
test_server_replaced_and_bad_frames(void **state)
{
	struct env *e = env_new(NULL);
	int a = peer_hello(e, 1, 4), b = peer_hello(e, 1, 4);
	uint8_t hdr[DPCHAN_HDR_LEN];
	static uint8_t big[DPCHAN_FRAME_MAX + 64];
	int sz = (int)sizeof(big);

	(void)state;
	assert_true(peer_closed(a));
	assert_int_equal(dpchan_server_connected(e->s), 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_CONNECTS), 2);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DISCONNECTS), 1);
	close(a);

	dpchan_put_header(hdr, DPCHAN_DURABLE, 0);
	assert_int_equal(send(b, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	dpchan_server_run(e->s);
	assert_true(peer_closed(b));
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_BAD_FRAME), 1);
	close(b);

	b = peer_hello(e, 1, 4);
	assert_int_equal(setsockopt(b, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	dpchan_put_header(big, DPCHAN_PUB, 1);
	assert_int_equal(send(b, big, sizeof(big), 0), (ssize_t)sizeof(big));
	dpchan_server_run(e->s);
	assert_true(peer_closed(b));
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_BAD_FRAME), 2);
	assert_int_equal(dpchan_server_connected(e->s), 0);
	assert_int_equal(e->sink.n, 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_COUNT), 0); /* not a counter */
	close(b);
	env_free(e);
}

/* 600 refs awaiting durability, settled out of order with alternating outcomes while the
 * oldest stays pending, then the oldest: 600 ranges at once, more than one answer frame
 * holds, each ref answered with its own outcome. */
static void
test_server_many_ranges(void **state)
{
	struct env *e = env_new(NULL);
	int fd = peer_hello(e, 2, 0);
	struct answers a;

	(void)state;
	for (uint64_t r = 1; r <= 600; r += 100)
		peer_pub(fd, r, 100);
	dpchan_server_run(e->s);
	assert_int_equal(e->sink.n, 600);
	for (uint64_t t = 2; t <= 600; t++)
		dpchan_server_durable(e->s, t, t, t % 2 ? -EIO : 0);
	a = peer_answers(fd);
	assert_int_equal(a.frames, 0);        /* all wait behind ref 1 */
	dpchan_server_durable(e->s, 1, 1, 1); /* > 0 counts as durable */
	a = peer_answers(fd);
	assert_int_equal(a.ok, 301); /* 1 and the even ones */
	assert_int_equal(a.failed, 299);
	assert_int_equal(a.ranges, 599); /* 1 and 2 in one */
	assert_true(a.frames >= 2);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DURABLE_TX), 599); /* ranges */
	/* all sent again (the answers lost): none that failed is answered durable now */
	for (uint64_t r = 1; r <= 600; r += 100)
		peer_pub(fd, r, 100);
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.ok + a.failed, 600);
	for (uint64_t r = 3; r <= 600; r += 2)
		if (a.ok_ref[r])
			fail_msg("ref %llu failed, answered durable when sent again",
			    (unsigned long long)r);
	assert_int_equal(e->sink.n, 600);
	close(fd);
	env_free(e);
}

/* Downlink: no lcore (-ENOTCONN), a record too large for a frame, an lcore that does not read
 * (-EAGAIN once its socket is full). */
static void
test_server_down_refusals(void **state)
{
	struct env *e = env_new(NULL);
	static uint8_t big[DPCHAN_FRAME_MAX];
	struct dpchan_rec r = {
		.qos = 1, .topic = "cmd/x", .topic_len = 5, .payload = big, .payload_len = 1000
	};
	int fd, rc = 0, sent = 0;

	(void)state;
	assert_int_equal(dpchan_server_down(e->s, &r), -ENOTCONN);
	fd = peer_hello(e, 3, 0);
	r.payload_len = sizeof(big);
	assert_true(dpchan_server_down(e->s, &r) < 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DOWN_TX), 0);
	r.payload_len = 1000;
	for (int i = 0; i < 100000 && rc == 0; i++)
		if ((rc = dpchan_server_down(e->s, &r)) == 0)
			sent++;
	assert_int_equal(rc, -EAGAIN);
	assert_true(sent > 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DOWN_TX), (uint64_t)sent);
	close(fd); /* gone before the server noticed: the send fails with its errno */
	rc = dpchan_server_down(e->s, &r);
	assert_true(rc == -ECONNRESET || rc == -EPIPE);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DOWN_TX), (uint64_t)sent);
	env_free(e);
}

/* Records the sink held before the agent restarted, of two dataplane starts and two lcores
 * (more than the first 1024 slots): those of the lcore's start are answered durable at once
 * and not taken again; out of memory to remember one more is -ENOMEM; a hello from another
 * start forgets the others' (a third start: all of them), and its refs go to the sink. */
static void
test_server_known(void **state)
{
	struct env *e = env_new(NULL);
	struct answers a;
	int fd, fd2;

	(void)state;
	for (uint64_t r = 1; r <= 600; r++) {
		assert_int_equal(dpchan_server_known(e->s, 10, 1, r), 0);
		assert_int_equal(dpchan_server_known(e->s, 20, 0, r), 0);
		assert_int_equal(dpchan_server_known(e->s, 20, 1, r), 0);
	}
	fail_alloc_nth(1); /* the next time the table grows (at 2048) */
	for (uint64_t r = 1; r < 1000; r++)
		if (dpchan_server_known(e->s, 10, 2, r) != 0)
			break;
	assert_int_equal(fail_alloc_failed(), 1);
	fail_alloc_nth(0);

	fd = peer_hello(e, 20, 1); /* boot 10's are forgotten */
	peer_pub(fd, 1, 100);      /* all known: answered at once, none given to the sink */
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.ok, 100);
	assert_int_equal(e->sink.n, 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RECS_KNOWN), 100);

	fd2 = peer_hello(e, 20, 0); /* its first ref is its oldest: the known below it go */
	peer_pub(fd2, 500, 1);
	peer_pub(fd2, 600, 2); /* 600 known, 601 not */
	dpchan_server_run(e->s);
	a = peer_answers(fd2);
	assert_int_equal(a.ok, 2);
	assert_int_equal(e->sink.n, 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RECS_KNOWN), 102);
	close(fd2);
	close(fd);
	dpchan_server_run(e->s);

	fd = peer_hello(e, 30, 1); /* a third start: nothing known is left */
	peer_pub(fd, 1, 1);
	dpchan_server_run(e->s);
	assert_int_equal(e->sink.n, 2);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RECS_KNOWN), 102);
	close(fd);
	env_free(e);
}

/* Sends a frame of type with count in its header and body (len bytes) after it. */
static void
peer_frame(int fd, uint8_t type, uint32_t count, const void *body, size_t len)
{
	uint8_t buf[256];

	assert_true(len <= sizeof(buf) - DPCHAN_HDR_LEN);
	dpchan_put_header(buf, type, count);
	if (len > 0)
		memcpy(buf + DPCHAN_HDR_LEN, body, len);
	assert_int_equal(send(fd, buf, DPCHAN_HDR_LEN + len, 0), (ssize_t)(DPCHAN_HDR_LEN + len));
}

/*
 * Each frame the agent receives, malformed (its header counts a body it lacks, or a field is
 * out of range), alone on its connection: a first frame that is no good HELLO, a RELEASE, HELD,
 * HELD_END, DOWN_ACK or PUB. Each closes its connection (counted BAD_FRAME), nothing reaches
 * the sink, and an lcore already connected goes on. A good DOWN_ACK with no handler set is
 * counted and nothing else.
 */
static void
test_server_malformed_frames(void **state)
{
	static const struct {
		uint8_t type;
		uint32_t count;
		uint8_t body[24];
		size_t len;
	} bad[] = {
		{ DPCHAN_HELLO, 1, { 0 }, 4 },     /* the first frame: a HELLO cut short */
		{ DPCHAN_RELEASE, 1, { 0 }, 0 },   /* counts an origin it lacks */
		{ DPCHAN_HELD, 1, { 0 }, 20 },     /* an origin of ref 0 */
		{ DPCHAN_HELD_END, 1, { 0 }, 8 },  /* 0 lcores */
		{ DPCHAN_DOWN_ACK, 2, { 0 }, 20 }, /* counts two ranges, holds one */
		{ DPCHAN_PUB, 1, { 0 }, 16 },      /* a record of no topic */
		{ DPCHAN_PUB, 2, { 0 }, 0 },       /* counts records it lacks */
	};
	struct env *e = env_new(NULL);
	struct dpchan_range ack = { 1, 1, 1 };
	uint8_t buf[64];
	int good = peer_hello(e, 6, 0), fd, len;
	struct answers a;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i].type == DPCHAN_HELLO) {
			fd = peer_connect(e->path);
			dpchan_server_run(e->s); /* accepted */
		} else {
			fd = peer_hello(e, 6, 1 + (uint32_t)i);
		}
		peer_frame(fd, bad[i].type, bad[i].count, bad[i].body, bad[i].len);
		dpchan_server_run(e->s);
		if (!peer_closed(fd))
			fail_msg("bad frame %zu (type %u): its connection is open", i, bad[i].type);
		assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_BAD_FRAME), i + 1);
		close(fd);
	}
	assert_int_equal(e->sink.n, 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_RELEASE_RX), 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_HELD_RX), 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DOWN_ACK_RX), 0);

	len = dpchan_encode_down_ack(buf, sizeof(buf), &ack, 1);
	assert_int_equal(send(good, buf, (size_t)len, 0), len);
	e->sink.mode = 1;
	peer_pub(good, 1, 1);
	dpchan_server_run(e->s);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DOWN_ACK_RX), 1);
	a = peer_answers(good);
	assert_int_equal(a.ok, 1);
	assert_int_equal(dpchan_server_connected(e->s), 1);
	close(good);
	env_free(e);
}

/* An origin frame (RELEASE, HELD) of one origin. */
static void
peer_origin(int fd, uint8_t type, const struct dpchan_origin *o)
{
	uint8_t buf[DPCHAN_HDR_LEN + DPCHAN_ORIGIN_LEN];
	int len = type == DPCHAN_HELD ? dpchan_encode_held(buf, sizeof(buf), o, 1)
				      : dpchan_encode_release(buf, sizeof(buf), o, 1);

	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
}

static void
peer_held_end(int fd, uint32_t lcores)
{
	uint8_t buf[DPCHAN_HDR_LEN + DPCHAN_HELD_END_LEN];
	int len = dpchan_encode_held_end(buf, sizeof(buf), lcores);

	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
}

/*
 * An lcore of an earlier start of the dataplane still connected while the newest start's lcores
 * list the QoS 2 origins they hold: what the old one lists does not count. Its HELD does not
 * keep an origin from the sweep, and its HELD_END (saying 2 lcores) does not hold the sweep back
 * once the newest start's one lcore has listed its own. Before the sweep, the origin is held (a
 * resend under it is answered durable, not stored again).
 */
static void
test_server_old_start_lists_ignored(void **state)
{
	struct env *e = env_new(NULL);
	struct dpchan_origin o = { 1, 1, 0 };
	int old = peer_hello(e, 1, 0), cur;
	struct answers a;

	(void)state;
	peer_pub_qos(old, 1, 1, 2);
	dpchan_server_run(e->s);
	dpchan_server_durable(e->s, 1, 1, 0); /* origin (1, 0, 1) held */
	a = peer_answers(old);
	assert_int_equal(a.ok, 1);

	cur = peer_hello(e, 2, 1); /* the newest start: its resync begins */
	peer_origin(old, DPCHAN_HELD, &o);
	peer_held_end(old, 2);
	dpchan_server_run(e->s);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_HELD_RX), 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_SWEPT), 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_ORIGINS), 1);
	assert_int_equal(dpchan_server_connected(e->s), 2); /* not a bad frame */

	peer_held_end(cur, 1); /* it holds none: the old start's origin is forgotten */
	dpchan_server_run(e->s);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_SWEPT), 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_Q2_ORIGINS), 0);
	close(old);
	close(cur);
	env_free(e);
}

/*
 * An lcore that does not read its answers: once its socket buffer is full the server closes its
 * connection (SEND_FAIL) rather than drop answers on an open one; the answers it never got
 * come when it connects again and sends those records again (not taken twice).
 */
static void
test_server_answers_to_a_full_socket(void **state)
{
	struct env *e = env_new(NULL);
	int fd = peer_hello(e, 8, 2);
	uint64_t n = 0, sent;
	struct answers a;

	(void)state;
	for (uint64_t r = 1; r <= 6000; r += 100) { /* taken as sent: the peer's buffer is finite */
		peer_pub(fd, r, 100);
		dpchan_server_run(e->s);
	}
	assert_int_equal(e->sink.n, 6000);
	/* one answer frame per report, until the socket is full */
	while (n < 6000 && dpchan_server_counter(e->s, DPCHAN_C_SEND_FAIL) == 0) {
		n++;
		dpchan_server_durable(e->s, n, n, 0);
	}
	assert_true(n < 6000);
	assert_int_equal(dpchan_server_connected(e->s), 0);
	dpchan_server_durable(e->s, n + 1, 6000, 0); /* not connected: answered when resent */
	sent = dpchan_server_counter(e->s, DPCHAN_C_DURABLE_TX);
	assert_int_equal(sent, n - 1);
	a = peer_answers(fd); /* what got through, in order, then the end */
	assert_int_equal(a.ok, n - 1);
	assert_true(a.ok_ref[1] && a.ok_ref[n - 1 < 1023 ? n - 1 : 1023]);
	assert_true(peer_closed(fd));
	close(fd);

	fd = peer_hello(e, 8, 2);
	memset(&a, 0, sizeof(a));
	for (uint64_t r = n; r <= 6000; r += 64) {
		struct answers b;

		peer_pub(fd, r, (uint32_t)(r + 64 <= 6001 ? 64 : 6001 - r));
		dpchan_server_run(e->s);
		b = peer_answers(fd);
		a.ok += b.ok;
		a.failed += b.failed;
	}
	assert_int_equal(a.ok, 6001 - n);
	assert_int_equal(a.failed, 0);
	assert_int_equal(e->sink.n, 6000);
	close(fd);
	env_free(e);
}

/*
 * The same for an answer that goes at once (a sink that answers now, a duplicate, a record the
 * spool held already): the socket full of DOWN frames, the connection is closed, and the
 * record sent again on the next one is answered. The answer was dropped on the open connection
 * (SEND_FAIL only): the lcore waited for it for good, and every record after it with it.
 */
static void
test_server_answer_now_to_a_full_socket(void **state)
{
	static uint8_t pl[4000];
	struct dpchan_rec d = {
		.topic = "cmd/x", .topic_len = 5, .payload = pl, .payload_len = sizeof(pl)
	};
	struct env *e = env_new(NULL);
	int fd = peer_hello(e, 8, 2), downs = 0;
	struct answers a;

	(void)state;
	e->sink.mode = 1;
	dpchan_server_run(e->s);
	while (dpchan_server_down(e->s, &d) == 0) /* the lcore does not read meanwhile */
		downs++;
	assert_true(downs > 0);
	peer_pub(fd, 1, 1);
	dpchan_server_run(e->s);
	assert_int_equal(e->sink.n, 1);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_SEND_FAIL), 1);
	assert_int_equal(dpchan_server_connected(e->s), 0);
	close(fd);

	fd = peer_hello(e, 8, 2);
	peer_pub(fd, 1, 1);
	dpchan_server_run(e->s);
	a = peer_answers(fd);
	assert_int_equal(a.ok, 1);
	assert_int_equal(e->sink.n, 1); /* answered, not taken twice */
	close(fd);
	env_free(e);
}

/* An lcore that goes while its connection is paused (the sink full) is seen gone: not counted
 * connected, not chosen for the downlink, and the loop not woken for it again. The hangup
 * was reported on every wait and never read (a paused connection is not read): the agent's
 * loop spun, and DOWN records went to it (EPIPE) though another lcore was live. */
static void
test_server_paused_peer_gone(void **state)
{
	static const uint8_t pl[8] = "x";
	struct dpchan_rec d = {
		.topic = "cmd/x", .topic_len = 5, .payload = pl, .payload_len = sizeof(pl)
	};
	struct env *e = env_new(NULL);
	int fd = peer_hello(e, 8, 2);
	struct epoll_event ev;

	(void)state;
	e->sink.mode = -ENOBUFS;
	peer_pub(fd, 1, 1);
	dpchan_server_run(e->s);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_SINK_FULL), 1);
	assert_int_equal(dpchan_server_connected(e->s), 1);
	close(fd);
	dpchan_server_run(e->s);
	assert_int_equal(dpchan_server_connected(e->s), 0);
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DISCONNECTS), 1);
	assert_int_equal(
	    epoll_wait(dpchan_server_fd(e->s), &ev, 1, 0), 0); /* nothing to wake for */
	fd = peer_hello(e, 8, 3);                              /* another lcore */
	dpchan_server_run(e->s);
	assert_int_equal(dpchan_server_down(e->s, &d), 0);
	close(fd);
	env_free(e);
}

/* Two connections ready in one run: the second lcore's HELLO replaces the first's connection
 * (the same lcore), whose PUB is ready after it in the same batch: that event is skipped, the
 * connection freed by then is not read. (ASan sees the use after free otherwise.) */
static void
test_server_closed_in_the_same_run(void **state)
{
	struct env *e = env_new(NULL);
	struct dpchan_hello h = { 3, 5, DPCHAN_VERSION };
	uint8_t buf[DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN];
	int a = peer_hello(e, 3, 5), b = peer_connect(e->path);
	int len = dpchan_encode_hello(buf, sizeof(buf), &h);

	(void)state;
	dpchan_server_run(e->s); /* b accepted */
	assert_int_equal(send(b, buf, (size_t)len, 0), len);
	peer_pub(a, 1, 1);
	dpchan_server_run(e->s);
	{ /* closed with its PUB unread: the kernel says ECONNRESET */
		uint8_t x[64];
		ssize_t n = recv(a, x, sizeof(x), MSG_DONTWAIT);

		assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	}
	assert_int_equal(dpchan_server_connected(e->s), 1);
	assert_int_equal(e->sink.n, 0); /* a's record was not taken */
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_BAD_FRAME), 0);
	close(a);
	close(b);
	env_free(e);
}

/* ---- dataplane.channel ---- */

static struct conf_doc *
conf_text(const char *text, struct dpchan_conf *c)
{
	struct conf_doc *doc = NULL;
	char err[128];

	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	dpchan_conf_parse(conf_get(conf_root(doc), "channel"), c);
	return doc;
}

/* A section's values taken; an empty or too long socket path and a backoff out of range
 * refused at their place, the default kept. */
static void
test_channel_conf(void **state)
{
	struct dpchan_conf c;
	struct conf_doc *doc;
	char text[300];

	(void)state;
	doc = conf_text("channel: {path: /run/x.sock, pending_bytes: 1MiB, max_pending: 64, "
			"reconnect_max: 2s}\n",
	    &c);
	assert_int_equal(conf_error_count(doc), 0);
	assert_true(c.enabled);
	assert_string_equal(c.path, "/run/x.sock");
	assert_int_equal(c.pending_bytes, 1u << 20);
	assert_int_equal(c.max_pending, 64);
	assert_int_equal(c.reconnect_max_ms, 2000);
	conf_free(doc);

	doc = conf_text("channel: {path: \"\", reconnect_max: 50ms}\n", &c);
	assert_int_equal(conf_error_count(doc), 2);
	assert_non_null(strstr(conf_errors(doc), "t.yaml:1:17: a socket path of 1 to 107 bytes"));
	assert_string_equal(c.path, DPCHAN_DEFAULT_PATH);
	assert_int_equal(c.reconnect_max_ms, 1000);
	conf_free(doc);

	memset(text, 0, sizeof(text));
	strcpy(text, "channel: {path: /");
	memset(text + strlen(text), 'p', 120);
	strcat(text, "}\n");
	doc = conf_text(text, &c);
	assert_int_equal(conf_error_count(doc), 1);
	assert_non_null(strstr(conf_errors(doc), "a socket path of 1 to 107 bytes"));
	assert_string_equal(c.path, DPCHAN_DEFAULT_PATH);
	conf_free(doc);
}

/* ---- client ---- */

struct dp {
	uint64_t ok, failed;
	int ready;
	int down; /* downlink publishes delivered */
};

static void
dp_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct dp *d = arg;

	if (status == 0)
		d->ok += last - first + 1;
	else
		d->failed += last - first + 1;
}

static void
dp_ready(void *arg)
{
	((struct dp *)arg)->ready++;
}

static const struct dpchan_client_ops dp_ops = { .durable = dp_durable, .ready = dp_ready };

/* Out of memory at each allocation of its start, or a path too long: NULL. */
static void
test_client_new_refusals(void **state)
{
	char longp[200];
	struct dpchan_client_config cc = { .path = "/tmp/x.sock", .boot_id = 1 };
	struct dpchan_client *c = NULL;
	uint64_t k;

	(void)state;
	for (k = 1; k < 10 && c == NULL; k++) {
		fail_alloc_nth(k);
		c = dpchan_client_new(&cc, &dp_ops, NULL);
		assert_true(c != NULL || fail_alloc_failed() == 1);
	}
	fail_alloc_nth(0);
	assert_non_null(c);
	assert_true(k >= 4); /* the client, its arena, its receive buffer */
	dpchan_client_free(c);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	cc.path = longp;
	assert_null(dpchan_client_new(&cc, &dp_ops, NULL));
}

/* A hand-made agent: listens, accepts the client's connection. */
static int
agent_accept(int lfd)
{
	uint8_t b[64];
	int fd = accept(lfd, NULL, NULL);

	assert_true(fd >= 0);
	assert_int_equal(recv(fd, b, sizeof(b), 0), DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN);
	return fd;
}

/* What an agent must not send, each alone: a frame that is not one (too short), a PUB (the
 * agent's type), a DOWN while the lcore has no downlink handler (refused, counted, the
 * connection stays); the agent closing. Each bad frame ends the connection (counted), and the
 * client connects again after its backoff (doubling, as each connection ended at once) and
 * sends its records again. */
static void
test_client_bad_agent(void **state)
{
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[100];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dpchan_client_config cc = {
		.path = path, .boot_id = 1, .lcore = 2, .reconnect_min_ms = 50
	};
	struct dp d = { 0 };
	struct dpchan_client *c;
	uint8_t buf[256];
	uint64_t now = 1000;
	int lfd, fd, len;
	struct dpchan_rec r = { .ref = 1,
		.qos = 1,
		.topic = "plant/t",
		.topic_len = 7,
		.payload = (const uint8_t *)"x",
		.payload_len = 1 };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.sock", dir);
	strcpy(sa.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	c = dpchan_client_new(&cc, &dp_ops, &d);
	assert_non_null(c);

	dpchan_client_poll(c, now);
	assert_true(dpchan_client_connected(c));
	fd = agent_accept(lfd);
	/* a DOWN with no handler: refused, counted, not fatal */
	dpchan_put_header(buf, DPCHAN_DOWN, 1);
	len = dpchan_put_rec(buf + DPCHAN_HDR_LEN, sizeof(buf) - DPCHAN_HDR_LEN, true, &r);
	assert_int_equal(send(fd, buf, DPCHAN_HDR_LEN + (size_t)len, 0), DPCHAN_HDR_LEN + len);
	dpchan_client_poll(c, now += 20);
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DOWN_RX), 1);
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DOWN_REFUSED), 1);
	assert_true(dpchan_client_connected(c));
	/* answered all the same (refused for good: the agent releases it) */
	len = (int)recv(fd, buf, sizeof(buf), 0);
	assert_int_equal(len, DPCHAN_HDR_LEN + DPCHAN_RANGE_LEN);
	assert_int_equal(buf[0], DPCHAN_DOWN_ACK);
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DOWN_ACK_TX), 1);

	for (int k = 0; k < 3; k++) {
		uint8_t pub[DPCHAN_HDR_LEN + 64];
		size_t n;

		assert_int_equal(dpchan_client_submit(c, &r), 0);
		dpchan_client_poll(c, now += 1); /* sent */
		assert_true(recv(fd, buf, sizeof(buf), 0) > 0);
		if (k == 0) {
			n = 3; /* shorter than a header */
			memset(pub, 0, sizeof(pub));
		} else if (k == 1) {
			dpchan_put_header(pub, DPCHAN_PUB, 1);
			n = DPCHAN_HDR_LEN +
			    (size_t)dpchan_put_rec(pub + DPCHAN_HDR_LEN, 64, false, &r);
		} else {
			n = 0; /* the agent closes */
		}
		if (n > 0)
			assert_int_equal(send(fd, pub, n, 0), (ssize_t)n);
		close(fd);
		dpchan_client_poll(c, now += 1);
		assert_false(dpchan_client_connected(c));
		assert_int_equal(dpchan_client_counter(c, DPCHAN_C_BAD_FRAME), k < 2 ? k + 1 : 2);
		assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DISCONNECTS), (uint64_t)k + 1);
		dpchan_client_poll(c, now += 10); /* within the backoff: not yet */
		assert_false(dpchan_client_connected(c));
		dpchan_client_poll(c, now += 100u << k); /* each ended at once: it doubles */
		assert_true(dpchan_client_connected(c));
		fd = agent_accept(lfd);
		dpchan_client_poll(c, now += 1); /* the record not answered goes again */
		assert_true(recv(fd, buf, sizeof(buf), 0) > 0);
		assert_int_equal(dpchan_client_pending(c, NULL), (uint32_t)k + 1);
	}
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_RECS_RESENT), 1 + 2 + 3);
	assert_int_equal(d.ok + d.failed, 0);
	close(fd);
	dpchan_client_free(c);
	close(lfd);
	unlink(path);
	rmdir(dir);
}

/* An agent that takes the connection and closes it at once (max_streams reached here; a
 * version it refuses) is tried again with backoff, as a failed connect: the client reset its
 * backoff at every connect and came back every 100 ms, three log lines a cycle on both ends
 * (84 connections in 10 s in the review's probe). */
static void
test_client_backs_off_connections_ended_at_once(void **state)
{
	struct dpchan_server_config sc = { .max_streams = 1, .max_inflight = 16 };
	struct env *e = env_new(&sc);
	struct dpchan_client_config c0 = { .path = e->path, .boot_id = 7, .lcore = 0 }, c1 = c0;
	struct dp d = { 0 };
	struct dpchan_client *a, *b;
	uint64_t now = 1000;

	(void)state;
	c1.lcore = 1;
	a = dpchan_client_new(&c0, &dp_ops, &d);
	b = dpchan_client_new(&c1, &dp_ops, &d);
	assert_non_null(a);
	assert_non_null(b);
	for (int i = 0; i < 1000; i++) { /* 10 s of 10 ms polls */
		now += 10;
		dpchan_client_poll(a, now);
		dpchan_client_poll(b, now);
		dpchan_server_run(e->s);
	}
	assert_true(dpchan_client_connected(a));
	assert_int_equal(dpchan_client_counter(a, DPCHAN_C_CONNECTS), 1);
	/* 100, 200, 400, 800 ms, then every second (reconnect_max) */
	assert_true(dpchan_client_counter(b, DPCHAN_C_CONNECTS) <= 16);
	assert_true(dpchan_client_counter(b, DPCHAN_C_CONNECTS) >= 8);
	dpchan_client_free(a);
	dpchan_client_free(b);
	env_free(e);
}

static int
dp_down_count(void *arg, const struct dpchan_rec *r)
{
	(void)r;
	((struct dp *)arg)->down++;
	return 1;
}

static const struct dpchan_client_ops dp_down_ops = {
	.durable = dp_durable, .ready = dp_ready, .down = dp_down_count
};

/* A DOWN frame of n records, refs 2, 4, ..., 2 n (apart: one answer range each). */
static void
agent_down(int fd, uint32_t n)
{
	static uint8_t buf[DPCHAN_FRAME_MAX];
	size_t off = DPCHAN_HDR_LEN;

	dpchan_put_header(buf, DPCHAN_DOWN, n);
	for (uint32_t i = 0; i < n; i++) {
		struct dpchan_rec r = { .ref = 2 * (i + 1),
			.qos = 1,
			.topic = "cmd/p",
			.topic_len = 5,
			.payload = (const uint8_t *)"on",
			.payload_len = 2 };
		int len = dpchan_put_rec(buf + off, sizeof(buf) - off, true, &r);

		assert_true(len > 0);
		off += (size_t)len;
	}
	assert_int_equal(send(fd, buf, off, 0), (ssize_t)off);
}

static void
count_acks(void *arg, const struct dpchan_range *r)
{
	assert_int_equal(r->first, r->last);
	++*(uint64_t *)arg;
}

static void
count_origins(void *arg, const struct dpchan_origin *o)
{
	assert_int_equal(o->ref, 8);
	++*(uint64_t *)arg;
}

/* The agent sends 65 DOWN records (more answers than one DOWN_ACK frame holds) and closes
 * before reading any answer: the lcore's broker takes each once; the answer frame due after
 * the 64th cannot be sent (counted DOWN_ACK_FAIL), the connection ends. The agent, which heard
 * nothing, sends all 65 again after the reconnect: each is answered, none delivered twice
 * (DOWN_DUP). Then a release finds no memory for the release queue. */
static void
test_client_down_ack_to_a_closed_agent(void **state)
{
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[100];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dpchan_client_config cc = {
		.path = path, .boot_id = 1, .lcore = 2, .reconnect_min_ms = 50
	};
	static uint8_t buf[DPCHAN_FRAME_MAX];
	uint64_t now = 1000, acks = 0;
	struct dp d = { 0 };
	struct dpchan_client *c;
	int lfd, fd;
	ssize_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.sock", dir);
	strcpy(sa.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_non_null(c = dpchan_client_new(&cc, &dp_down_ops, &d));
	dpchan_client_poll(c, now);
	fd = agent_accept(lfd);
	agent_down(fd, 65);
	close(fd); /* the agent goes away without reading */
	dpchan_client_poll(c, now += 20);
	assert_int_equal(d.down, 65); /* each taken by the broker */
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DOWN_ACK_FAIL), 1);
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DOWN_ACK_TX), 0);
	assert_false(dpchan_client_connected(c));

	dpchan_client_poll(c, now += 100);
	assert_true(dpchan_client_connected(c));
	fd = agent_accept(lfd);
	agent_down(fd, 65); /* the agent's next start sends them again */
	dpchan_client_poll(c, now += 20);
	assert_int_equal(d.down, 65); /* not twice */
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DOWN_DUP), 65);
	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		assert_int_equal(dpchan_decode_down_ack(buf, (size_t)n, count_acks, &acks), 0);
	assert_int_equal(acks, 65); /* each answered: the agent releases them */
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_DOWN_ACK_TX), 65);
	assert_true(dpchan_client_connected(c));

	/* a QoS 2 release with no memory for the release queue: dropped (counted); the next
	 * one goes */
	fail_alloc_nth(1);
	assert_int_equal(dpchan_client_release(c, &(struct dpchan_origin){ 1, 7, 2 }), -ENOMEM);
	fail_alloc_nth(0);
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_RELEASE_DROP), 1);
	assert_int_equal(dpchan_client_release(c, &(struct dpchan_origin){ 1, 8, 2 }), 0);
	dpchan_client_poll(c, now += 20);
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	assert_true(n > 0);
	acks = 0;
	assert_int_equal(dpchan_decode_release(buf, (size_t)n, count_origins, &acks), 0);
	assert_int_equal(acks, 1);
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_RELEASE_TX), 1);
	close(fd);
	dpchan_client_free(c);
	close(lfd);
	unlink(path);
	rmdir(dir);
}

/* A small arena used as a ring: records answered from the front make room that new ones take
 * at the start again (wrap), refused while full (counted, ready told when room comes back);
 * every record answered once, none lost or doubled across the wrap. */
static void
test_client_arena_wraps(void **state)
{
	struct env *e = env_new(NULL);
	struct dpchan_client_config cc = {
		.path = e->path, .boot_id = 77, .lcore = 1, .pending_bytes = 1000
	};
	struct dp d = { 0 };
	struct dpchan_client *c = dpchan_client_new(&cc, &dp_ops, &d);
	uint64_t now = 1, next_ref = 1, answered = 0;
	uint8_t payload[40] = { 0 };
	struct dpchan_rec r = { .qos = 1, .topic = "plant/w", .topic_len = 7, .payload = payload };
	int refused = 0;

	(void)state;
	assert_non_null(c);
	for (int i = 0; i < 4; i++) {
		dpchan_client_poll(c, now += 20);
		dpchan_server_run(e->s);
	}
	d.ready = 0;
	for (int round = 0; round < 100; round++) {
		/* fill until refused; sizes vary so that the end of the arena is left unused */
		for (;;) {
			r.ref = next_ref;
			r.payload_len = (uint32_t)(next_ref * 7 % 41);
			if (dpchan_client_submit(c, &r) != 0) {
				refused++;
				break;
			}
			next_ref++;
		}
		for (int i = 0; i < 3; i++) {
			dpchan_client_poll(c, now += 1);
			dpchan_server_run(e->s);
		}
		/* answer the oldest third of what the sink holds */
		if (e->sink.next_token > answered) {
			uint64_t to = answered + (e->sink.next_token - answered + 2) / 3;

			dpchan_server_durable(e->s, answered + 1, to, 0);
			answered = to;
		}
		for (int i = 0; i < 3; i++) {
			dpchan_client_poll(c, now += 1);
			dpchan_server_run(e->s);
		}
	}
	dpchan_server_durable(e->s, 1, e->sink.next_token, 0);
	for (int i = 0; i < 20 && dpchan_client_pending(c, NULL) > 0; i++) {
		dpchan_client_poll(c, now += 1);
		dpchan_server_run(e->s);
		dpchan_server_durable(e->s, 1, e->sink.next_token, 0);
	}
	assert_int_equal(dpchan_client_pending(c, NULL), 0);
	assert_int_equal(d.ok, next_ref - 1);
	assert_int_equal(e->sink.n, next_ref - 1); /* none taken twice */
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_LIMIT_PENDING), (uint64_t)refused);
	assert_true(d.ready >= 99);
	assert_true(next_ref > 300); /* many times round a 1000-byte arena */
	dpchan_client_free(c);
	env_free(e);
}

/* The lowest fd a new descriptor gets now. */
static int
lowest_free_fd(void)
{
	int fd = dup(0);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/* With no descriptor left for its socket, or for its epoll set, the server does not start
 * (EMFILE) and leaves nothing at its path; the client counts a failed attempt and tries again
 * after its backoff, and connects once descriptors are back. */
static void
test_out_of_descriptors(void **state)
{
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[100];
	struct dpchan_server_config sc = { .path = path };
	struct dpchan_client_config cc = { .path = path, .boot_id = 1, .reconnect_min_ms = 10 };
	struct dpchan_client *c;
	struct dpchan_server *s;
	struct dp d = { 0 };
	struct rlimit old, low;
	struct stat st;
	int free_fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	free_fd = lowest_free_fd();
	for (int extra = 0; extra < 2; extra++) { /* none; one (the socket, not the epoll set) */
		low = old;
		low.rlim_cur = (rlim_t)(free_fd + extra);
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
		errno = 0;
		s = dpchan_server_new(&sc, &sink_ops, NULL);
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
		assert_null(s);
		assert_int_equal(errno, EMFILE);
		assert_int_equal(lstat(path, &st), -1); /* not left bound */
	}
	s = dpchan_server_new(&sc, &sink_ops, NULL);
	assert_non_null(s);
	c = dpchan_client_new(&cc, &dp_ops, &d);
	assert_non_null(c);
	low = old;
	low.rlim_cur = (rlim_t)lowest_free_fd();
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	dpchan_client_poll(c, 1000);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_false(dpchan_client_connected(c));
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_CONNECT_FAIL), 1);
	dpchan_client_poll(c, 1005); /* within the backoff */
	assert_int_equal(dpchan_client_counter(c, DPCHAN_C_CONNECT_FAIL), 1);
	dpchan_client_poll(c, 1010);
	assert_true(dpchan_client_connected(c));
	assert_int_equal(d.ready, 1); /* told that submit may succeed now */
	dpchan_client_free(c);
	dpchan_server_free(s);
	rmdir(dir);
}

/* No agent: attempts back off from reconnect_min_ms, doubling up to reconnect_max_ms. */
static void
test_client_backoff(void **state)
{
	struct dpchan_client_config cc = { .path = "/tmp/dpchan-faults-no-such.sock",
		.boot_id = 1,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 400 };
	struct dp d = { 0 };
	struct dpchan_client *c = dpchan_client_new(&cc, &dp_ops, &d);
	/* poll times and the attempts counted by then: at 0, 100, 300, 700, 1100, 1500 */
	static const uint64_t at[] = { 0, 99, 100, 299, 300, 699, 700, 1099, 1100, 1499, 1500 };
	static const uint64_t want[] = { 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6 };

	(void)state;
	assert_non_null(c);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		dpchan_client_poll(c, at[i]);
		if (dpchan_client_counter(c, DPCHAN_C_CONNECT_FAIL) != want[i])
			fail_msg("at %llu ms: %llu attempts, want %llu", (unsigned long long)at[i],
			    (unsigned long long)dpchan_client_counter(c, DPCHAN_C_CONNECT_FAIL),
			    (unsigned long long)want[i]);
	}
	assert_false(dpchan_client_connected(c));
	dpchan_client_free(c);
}

/* ---- the QoS 2 origin file's I/O, failing on demand ---- */
struct q2_faults {
	int fail_writes;  /* the next writes that fail (ENOSPC); -1: every one */
	bool short_write; /* the next one writes half its bytes (ENOSPC then) */
	int fail_syncs;   /* the next fdatasyncs that fail (EIO) */
	int fail_opens;   /* the next opens that fail (EACCES) */
	long read_ok;     /* > 0: bytes read back at open before every read fails (EIO) */
	unsigned reads;
	unsigned writes, syncs;
	sem_t *hold; /* not NULL: each fdatasync waits for a post first (the sync thread's) */
};

static int
qf_open(void *ctx, const char *path, int flags, mode_t mode)
{
	struct q2_faults *f = ctx;

	if (f->fail_opens > 0) {
		f->fail_opens--;
		errno = EACCES;
		return -1;
	}
	return open(path, flags, mode);
}

static ssize_t
qf_read(void *ctx, int fd, void *buf, size_t len)
{
	struct q2_faults *f = ctx;
	ssize_t n;

	f->reads++;
	if (f->read_ok == 0)
		return read(fd, buf, len);
	if (f->read_ok < 0) {
		errno = EIO;
		return -1;
	}
	if ((n = read(fd, buf, len < (size_t)f->read_ok ? len : (size_t)f->read_ok)) > 0)
		f->read_ok = f->read_ok - n > 0 ? f->read_ok - n : -1;
	return n;
}

static ssize_t
qf_write(void *ctx, int fd, const void *buf, size_t len)
{
	struct q2_faults *f = ctx;

	f->writes++;
	if (f->short_write) {
		f->short_write = false;
		return write(fd, buf, len / 2);
	}
	if (f->fail_writes != 0) {
		if (f->fail_writes > 0)
			f->fail_writes--;
		errno = ENOSPC;
		return -1;
	}
	return write(fd, buf, len);
}

static int
qf_fdatasync(void *ctx, int fd)
{
	struct q2_faults *f = ctx;

	if (f->hold != NULL)
		while (sem_wait(f->hold) != 0)
			;
	f->syncs++;
	if (f->fail_syncs > 0) {
		f->fail_syncs--;
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static int
qf_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	return rename(from, to);
}

static const struct dpchan_q2_io q2_faulty = {
	.open = qf_open,
	.read = qf_read,
	.write = qf_write,
	.fdatasync = qf_fdatasync,
	.rename = qf_rename,
};

static struct dpchan_origin
q2_o(uint64_t ref)
{
	return (struct dpchan_origin){ 0xd4, ref, 2 };
}

/* Origin ref settled durable under token ref (taken first). */
static void
q2_durable(struct dpchan_q2 *q, uint64_t ref)
{
	struct dpchan_origin o = q2_o(ref);

	dpchan_q2_taken(q, &o, ref);
	dpchan_q2_settle(q, ref, ref, 0);
}

/* The origin file's writes and syncs failing (counted Q2_IO_FAIL): the origins stay held in
 * memory, and the file is written again whole at the next sync that can, so that after a
 * restart every origin held is read back, none hidden behind a torn record. Before, an origin
 * whose write failed was missing from the file for good (the next sync said 0), and the half
 * record of a short write hid every origin written after it. */
static void
test_q2_file_faults(void **state)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 };
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[64], cmd[96];
	struct q2_faults f = { 0 };
	struct dpchan_origin o;
	struct dpchan_q2 *q;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q2", dir);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, &q2_faulty, &f));
	assert_true(f.writes == 1 && f.syncs == 1); /* the new file: header, synced */

	/* 1's write fails: held all the same; the next sync writes the file whole */
	f.fail_writes = 1;
	q2_durable(q, 1);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 1);
	o = q2_o(1);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_HELD);
	assert_int_equal(dpchan_q2_sync(q), 0);

	/* 2's write is short (a torn record), and the disk stays full for a while: each sync
	 * tries the whole file again, fails (counted), says so */
	f.short_write = true;
	q2_durable(q, 2);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 2);
	f.fail_writes = -1;
	assert_int_equal(dpchan_q2_sync(q), -ENOSPC);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 3);
	q2_durable(q, 3); /* its append fails too */
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 4);
	assert_int_equal(dpchan_q2_sync(q), -ENOSPC);
	o = q2_o(3);
	assert_true(dpchan_q2_release(q, &o)); /* the dataplane is done with 3 meanwhile */
	f.fail_writes = 0;                     /* room again */
	q2_durable(q, 4);
	q2_durable(q, 5);
	assert_int_equal(dpchan_q2_sync(q), 0);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 6); /* and 3's release: not again */

	/* an fdatasync fails: said, and the file is written whole at the next sync */
	q2_durable(q, 6);
	f.fail_syncs = 1;
	assert_int_equal(dpchan_q2_sync(q), -EIO);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 7);
	assert_int_equal(dpchan_q2_sync(q), 0);
	q2_durable(q, 7); /* appended to the rewritten file */
	assert_int_equal(dpchan_q2_sync(q), 0);
	dpchan_q2_close(q);

	/* the agent starts again: every origin held is read back, nothing torn */
	memset(cnt, 0, sizeof(cnt));
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(cnt[DPCHAN_C_Q2_TORN], 0);
	assert_int_equal(dpchan_q2_count(q), 6);
	for (uint64_t ref = 1; ref <= 7; ref++) {
		o = q2_o(ref);
		if (dpchan_q2_state(q, &o) != (ref == 3 ? DPCHAN_Q2_NONE : DPCHAN_Q2_HELD))
			fail_msg("origin %llu: state %d after the restart", (unsigned long long)ref,
			    (int)dpchan_q2_state(q, &o));
	}
	dpchan_q2_close(q);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * The origin file read back at open fails part way (EIO after 100,000 bytes of a 160,016-byte
 * file): the agent does not start on it (EIO, said), and the file stays as it was: the origins
 * after the failure are unread, not torn, and written anew without them they would be lost (a
 * QoS 2 message of theirs sent twice). With the disk readable again every one is back. The
 * file is read in a few large reads, not one record at a time.
 */
static void
test_q2_read_fails_at_open(void **state)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 };
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[64], cmd[96];
	struct q2_faults f = { 0 };
	struct dpchan_origin o;
	struct dpchan_q2 *q;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q2", dir);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	for (uint64_t ref = 1; ref <= 5000; ref++)
		q2_durable(q, ref);
	assert_int_equal(dpchan_q2_sync(q), 0);
	dpchan_q2_close(q);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + 5000 * 32);

	f.read_ok = 100000;
	errno = 0;
	assert_null(dpchan_q2_open(path, 0, cnt, &q2_faulty, &f));
	assert_int_equal(errno, EIO);
	assert_true(f.reads >= 2 && f.reads <= 8); /* 32-byte records, 64 KiB a read */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + 5000 * 32); /* not written anew */
	assert_int_equal(cnt[DPCHAN_C_Q2_TORN], 0);

	f.read_ok = 0;
	f.reads = 0;
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, &q2_faulty, &f));
	assert_int_equal(dpchan_q2_count(q), 5000);
	assert_true(f.reads <= 6);
	for (uint64_t ref = 1; ref <= 5000; ref++) {
		o = q2_o(ref);
		if (dpchan_q2_state(q, &o) != DPCHAN_Q2_HELD)
			fail_msg("origin %llu not held after the restart", (unsigned long long)ref);
	}
	dpchan_q2_close(q);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void *
post_later(void *arg)
{
	usleep(50000);
	sem_post(arg);
	return NULL;
}

/* Wait for the sync thread's eventfd (bounded). */
static bool
q2_wait_synced(struct dpchan_q2 *q, uint64_t gen)
{
	struct pollfd p = { .fd = dpchan_q2_event_fd(q), .events = POLLIN };

	for (int i = 0; i < 200; i++) {
		if (dpchan_q2_synced(q) >= gen)
			return true;
		(void)poll(&p, 1, 10);
	}
	return dpchan_q2_synced(q) >= gen;
}

/* The origin file's fdatasync off the caller's loop (dpchan_q2_sync_begin): the caller gets a
 * generation at once while the sync runs on the file's thread; the eventfd says when it ended,
 * or the caller waits for it (dpchan_q2_sync_wait).
 * Nothing written since the last: nothing to wait for. A sync that fails on the thread is
 * counted when its end is read, and the next begin writes the file whole, here (synced by the
 * rewrite itself: nothing to wait for). The origins end up in the file across a restart. */
static void
test_q2_sync_thread(void **state)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 }, gen = 0, gen2 = 0;
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[64], cmd[96];
	struct q2_faults f = { 0 };
	struct dpchan_origin o;
	struct dpchan_q2 *q;
	sem_t hold;

	(void)state;
	assert_int_equal(sem_init(&hold, 0, 0), 0);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q2", dir);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, &q2_faulty, &f));
	assert_true(dpchan_q2_event_fd(q) >= 0);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 0); /* nothing written */
	assert_int_equal(gen, 0);

	f.hold = &hold; /* the thread's fdatasync waits until posted */
	q2_durable(q, 1);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 1);
	assert_true(gen >= 1);
	q2_durable(q, 2); /* while the first sync is held: a second one, after it */
	assert_int_equal(dpchan_q2_sync_begin(q, &gen2), 1);
	assert_true(gen2 > gen);
	usleep(20000);
	assert_true(dpchan_q2_synced(q) < gen); /* held: not ended */
	sem_post(&hold);
	assert_true(q2_wait_synced(q, gen));
	sem_post(&hold);
	assert_true(q2_wait_synced(q, gen2));
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 0);

	/* waited for on the caller's thread (the server without memory to keep a report) */
	q2_durable(q, 5);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 1);
	{
		pthread_t poster;

		assert_int_equal(pthread_create(&poster, NULL, post_later, &hold), 0);
		dpchan_q2_sync_wait(q, gen); /* returns once the held sync ended */
		assert_true(dpchan_q2_synced(q) >= gen);
		assert_int_equal(pthread_join(poster, NULL), 0);
	}
	f.hold = NULL;

	/* a sync that fails on the thread: counted when read; the next begin rewrites, here */
	f.fail_syncs = 1;
	q2_durable(q, 3);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 1);
	assert_true(q2_wait_synced(q, gen));
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 1);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 0);
	assert_int_equal(gen, 0);
	o = q2_o(3);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_HELD);
	q2_durable(q, 4);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 1);
	dpchan_q2_close(q); /* waits for the thread */

	memset(cnt, 0, sizeof(cnt));
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(dpchan_q2_count(q), 5);
	assert_int_equal(cnt[DPCHAN_C_Q2_TORN], 0);
	dpchan_q2_close(q);
	sem_destroy(&hold);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* A write of the origin file fails while the thread's sync of an earlier report is still in
 * flight: the next begin rewrites the file whole at once, waiting for that sync (the report
 * about to be answered has its origin on disk); it did not wait and skipped the rewrite, and
 * the report was answered with its origin missing from the file. */
static void
test_q2_rewrite_while_syncing(void **state)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 }, gen = 0;
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[64], cmd[96];
	struct q2_faults f = { 0 };
	struct dpchan_q2 *q;
	pthread_t poster;
	struct stat st;
	sem_t hold;

	(void)state;
	assert_int_equal(sem_init(&hold, 0, 0), 0);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q2", dir);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, &q2_faulty, &f));
	f.hold = &hold;
	q2_durable(q, 1);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 1); /* the thread waits in fdatasync */
	usleep(20000);
	f.hold = NULL; /* the rewrite's own fdatasync, on this thread, does not wait */
	f.fail_writes = 1;
	q2_durable(q, 2); /* its write fails: a rewrite is due */
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 1);
	assert_int_equal(pthread_create(&poster, NULL, post_later, &hold), 0);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 0); /* rewritten here, after the sync */
	assert_int_equal(pthread_join(poster, NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + 2 * 32); /* both origins, now (not at close) */
	dpchan_q2_close(q);
	memset(cnt, 0, sizeof(cnt));
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(dpchan_q2_count(q), 2);
	dpchan_q2_close(q);
	sem_destroy(&hold);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * The origins' table through the paths a dataplane takes rarely: an origin released while its
 * record awaits durability (never written, so no release is written either) and taken again
 * under a newer token: the older token's report finds a stale place in the waiting ring and
 * leaves the origin waiting (held only once its own record is durable). The sweep of a resync
 * without memory to gather what it forgets: counted, nothing forgotten, done at the next one.
 * The file: a rewrite whose open fails (counted, tried again at the next sync), and a file grown
 * with releases to over 2 n + 4096 records is compacted at the next sync, off or on the thread.
 */
static void
test_q2_stale_waiting_sweep_and_compaction(void **state)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 }, gen = 0;
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[64], cmd[96];
	struct q2_faults f = { 0 };
	struct dpchan_origin o = q2_o(1), other;
	struct dpchan_q2 *q;
	struct stat st;
	unsigned writes;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q2", dir);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, &q2_faulty, &f));

	dpchan_q2_taken(q, &o, 5);
	writes = f.writes;
	assert_true(dpchan_q2_release(q, &o)); /* the dataplane is done with it meanwhile */
	assert_int_equal(f.writes, writes);    /* never written: nothing to release on disk */
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_NONE);
	dpchan_q2_taken(q, &o, 9); /* its sensor sent it again: taken anew */
	dpchan_q2_settle(q, 5, 5, 0);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_WAITING); /* 9 is not durable yet */
	assert_int_equal(f.writes, writes);
	dpchan_q2_settle(q, 9, 9, 0);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_HELD);
	assert_int_equal(f.writes, writes + 1);

	/* a resync of start 0xe5 that lists none of 0xd4's: out of memory to sweep, then not */
	dpchan_q2_resync(q);
	fail_alloc_nth(1);
	assert_int_equal(dpchan_q2_sweep(q, 0xe5), 0);
	fail_alloc_nth(0);
	assert_int_equal(fail_alloc_failed(), 1);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 1);
	assert_int_equal(cnt[DPCHAN_C_Q2_SWEPT], 0);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_HELD); /* kept until the next */
	assert_int_equal(dpchan_q2_sweep(q, 0xe5), 1);
	assert_int_equal(cnt[DPCHAN_C_Q2_SWEPT], 1);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_NONE);

	/* a write fails (a rewrite is due), and so does the rewrite's open; the next one is done */
	f.fail_writes = 1;
	q2_durable(q, 2);
	f.fail_opens = 1;
	assert_int_equal(dpchan_q2_sync(q), -EACCES);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 3);
	assert_int_equal(dpchan_q2_sync(q), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + 32); /* 2 alone */

	/* 2100 origins held and released: the file holds 4200 records for one origin; the next
	 * sync writes it anew with that one, here and not on the thread (nothing to wait for) */
	for (uint64_t ref = 100; ref < 2200; ref++) {
		q2_durable(q, ref);
		other = q2_o(ref);
		assert_true(dpchan_q2_release(q, &other));
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + 32 + 4200 * 32);
	assert_int_equal(dpchan_q2_sync_begin(q, &gen), 0);
	assert_int_equal(gen, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16 + 32);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 3);
	dpchan_q2_close(q);
	memset(cnt, 0, sizeof(cnt));
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(dpchan_q2_count(q), 1);
	o = q2_o(2);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_HELD);
	dpchan_q2_close(q);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Posts sem n times, one every 30 ms (a thread's fdatasyncs held until then). */
struct poster {
	sem_t *sem;
	int n;
};

static void *
post_n(void *arg)
{
	struct poster *p = arg;

	for (int i = 0; i < p->n; i++) {
		usleep(30000);
		sem_post(p->sem);
	}
	return NULL;
}

/* A server whose origin file (<dir>/q2) writes through f. */
static struct env *
env_new_q2(struct q2_faults *f)
{
	struct env *e = calloc(1, sizeof(*e));
	char q2[128];
	struct dpchan_server_config sc = { .q2_io = &q2_faulty, .q2_io_ctx = f };

	assert_non_null(e);
	strcpy(e->dir, "/tmp/dpchan-faults-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/dpchan.sock", e->dir);
	snprintf(q2, sizeof(q2), "%s/q2", e->dir);
	sc.path = e->path;
	sc.q2_path = q2;
	e->s = dpchan_server_new(&sc, &sink_ops, &e->sink);
	assert_non_null(e->s);
	return e;
}

/* The origins held in e's origin file (read back as the next agent would). */
static uint32_t
env_q2_on_disk(struct env *e)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 };
	char q2[128];
	struct dpchan_q2 *q;
	uint32_t n;

	snprintf(q2, sizeof(q2), "%s/q2", e->dir);
	assert_non_null(q = dpchan_q2_open(q2, 0, cnt, NULL, NULL));
	n = dpchan_q2_count(q);
	dpchan_q2_close(q);
	return n;
}

/* Wait (bounded) for the server's fd, then run it. */
static void
run_when_ready(struct env *e)
{
	struct pollfd p = { .fd = dpchan_server_fd(e->s), .events = POLLIN };

	assert_int_equal(poll(&p, 1, 2000), 1);
	dpchan_server_run(e->s);
}

/*
 * Durable reports of QoS 2 records wait for their origins' sync on the origin file's thread
 * (the thread's fdatasync is held here). With no memory to keep one more report, the server
 * waits for that sync on its own thread (dpchan_q2_sync_wait) before it answers: the report is
 * not dropped, not answered before its origins are on disk, and not answered ahead of the
 * reports queued before it (its refs wait behind theirs). Then, with memory, the queue of
 * waiting reports grows past 16 and keeps its order.
 */
static void
test_server_q2_report_without_memory(void **state)
{
	struct q2_faults f = { 0 };
	struct env *e = env_new_q2(&f);
	struct poster post = { 0 };
	pthread_t poster;
	struct answers a, b;
	unsigned syncs;
	sem_t hold;
	int fd;

	(void)state;
	assert_int_equal(sem_init(&hold, 0, 0), 0);
	fd = peer_hello(e, 0x51, 1);
	peer_pub_qos(fd, 1, 35, 2);
	dpchan_server_run(e->s);
	assert_int_equal(e->sink.n, 35); /* tokens 1..35 for refs 1..35 */

	f.hold = &hold;
	for (uint64_t t = 1; t <= 16; t++) /* each kept until its sync ended */
		dpchan_server_durable(e->s, t, t, 0);
	a = peer_answers(fd);
	assert_int_equal(a.frames, 0);
	syncs = f.syncs;
	post = (struct poster){ &hold, 2 }; /* the sync in flight, then the one of 17 */
	assert_int_equal(pthread_create(&poster, NULL, post_n, &post), 0);
	fail_alloc_nth(1); /* the queue of waiting reports cannot grow */
	dpchan_server_durable(e->s, 17, 17, 0);
	assert_int_equal(fail_alloc_failed(), 1);
	fail_alloc_nth(0);
	assert_true(f.syncs > syncs); /* returned once 17's origin was synced */
	a = peer_answers(fd);
	assert_int_equal(a.frames, 0); /* 17 waits behind 1..16, not answered ahead of them */
	assert_int_equal(pthread_join(poster, NULL), 0);
	run_when_ready(e); /* the thread's syncs ended: 1..16 answered, 17 with them */
	a = peer_answers(fd);
	assert_int_equal(a.ok, 17);
	assert_int_equal(a.failed, 0);
	assert_int_equal(a.ranges, 16); /* one per report; 17 with 16, its predecessor */
	assert_int_equal(dpchan_server_counter(e->s, DPCHAN_C_DURABLE_TX), 16); /* ranges */
	assert_int_equal(env_q2_on_disk(e), 17);

	/* 17 reports wait at once (20 failed: nothing to sync): the queue grows, in order */
	for (uint64_t t = 18; t <= 35; t++)
		dpchan_server_durable(e->s, t, t, t == 20 ? -EIO : 0);
	a = peer_answers(fd);
	assert_int_equal(a.frames, 0);
	post = (struct poster){ &hold, 3 };
	assert_int_equal(pthread_create(&poster, NULL, post_n, &post), 0);
	assert_int_equal(pthread_join(poster, NULL), 0);
	f.hold = NULL;
	for (int i = 0; i < 100 && a.ok + a.failed < 18; i++) {
		run_when_ready(e);
		b = peer_answers(fd);
		a.ok += b.ok;
		a.failed += b.failed;
		for (uint64_t r = 18; r <= 35; r++)
			a.ok_ref[r] |= b.ok_ref[r];
	}
	assert_int_equal(a.ok, 17);
	assert_int_equal(a.failed, 1);
	for (uint64_t r = 18; r <= 35; r++)
		if (a.ok_ref[r] != (r != 20))
			fail_msg("ref %llu answered %s", (unsigned long long)r,
			    a.ok_ref[r] ? "durable" : "failed");
	close(fd);
	env_free(e);
	sem_destroy(&hold);
}

static int
qf_rename_fails(void *ctx, const char *from, const char *to)
{
	(void)ctx, (void)from, (void)to;
	errno = EXDEV;
	return -1;
}

/* The origin file's edges: a file that is not one (its header torn or foreign) is counted and
 * written anew, empty; a path too long, a directory, or a rename that fails refuse the open
 * (NULL, errno said); no memory for the table: the origin is not kept (counted), and the
 * next one is once memory is back; no memory for a rewrite: sync says so, and closing with
 * a rewrite due makes one last try; one written and not synced is synced at close. An origin
 * held twice is written once; at most max origins await durability (one more is not kept,
 * counted). */
static void
test_q2_file_edges(void **state)
{
	uint64_t cnt[DPCHAN_C_COUNT] = { 0 };
	char dir[] = "/tmp/dpchan-faults-XXXXXX", path[64], longp[600], cmd[96];
	struct dpchan_q2_io bad_rename = q2_faulty;
	struct q2_faults f = { 0 };
	struct dpchan_origin o;
	struct dpchan_q2 *q;
	struct stat st;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q2", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("not an origin file", fp);
	fclose(fp);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(cnt[DPCHAN_C_Q2_TORN], 1);
	assert_int_equal(dpchan_q2_count(q), 0);
	dpchan_q2_close(q);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16); /* a header of ours now */

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	errno = 0;
	assert_null(dpchan_q2_open(longp, 0, cnt, NULL, NULL));
	assert_int_equal(errno, ENAMETOOLONG);
	errno = 0;
	assert_null(dpchan_q2_open(dir, 0, cnt, NULL, NULL)); /* a directory: not readable */
	assert_int_equal(errno, EISDIR);
	bad_rename.rename = qf_rename_fails;
	errno = 0;
	assert_null(dpchan_q2_open(path, 0, cnt, &bad_rename, &f));
	assert_int_equal(errno, EXDEV);

	/* no memory for the table at the first origin, none for a rewrite */
	assert_non_null(q = dpchan_q2_open(path, 4, cnt, &q2_faulty, &f));
	memset(cnt, 0, sizeof(cnt));
	fail_alloc_nth(1);
	q2_durable(q, 1);
	fail_alloc_nth(0);
	assert_int_equal(fail_alloc_failed(), 1);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 1);
	o = q2_o(1);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_NONE); /* a resend is stored anew */
	q2_durable(q, 2);
	o = q2_o(2);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_HELD);
	dpchan_q2_held(q, &o); /* found in the spool too: written once */
	f.writes = 0;
	f.short_write = true;
	q2_durable(q, 3); /* torn: a rewrite is due */
	fail_alloc_nth(1);
	assert_int_equal(dpchan_q2_sync(q), -ENOMEM);
	fail_alloc_nth(0);
	assert_int_equal(cnt[DPCHAN_C_Q2_IO_FAIL], 3);
	assert_int_equal(dpchan_q2_count(q), 2);
	assert_int_equal(f.writes, 1); /* 3's; 2 not written again */
	dpchan_q2_close(q);            /* the rewrite's last try, at close */
	memset(cnt, 0, sizeof(cnt));
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(cnt[DPCHAN_C_Q2_TORN], 0);
	assert_int_equal(dpchan_q2_count(q), 2);
	o = q2_o(3);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_HELD);
	/* one written and not synced when the agent stops: synced at close */
	q2_durable(q, 4);
	dpchan_q2_close(q);
	assert_non_null(q = dpchan_q2_open(path, 0, cnt, NULL, NULL));
	assert_int_equal(dpchan_q2_count(q), 3);
	dpchan_q2_close(q);

	/* in memory, max 2: two await durability, a third is not kept (counted) */
	memset(cnt, 0, sizeof(cnt));
	assert_non_null(q = dpchan_q2_open(NULL, 2, cnt, NULL, NULL));
	for (uint64_t ref = 10; ref < 13; ref++) {
		o = q2_o(ref);
		dpchan_q2_taken(q, &o, ref);
	}
	assert_int_equal(cnt[DPCHAN_C_Q2_EVICTED], 1);
	o = q2_o(12);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_NONE);
	o = q2_o(11);
	assert_int_equal(dpchan_q2_state(q, &o), DPCHAN_Q2_WAITING);
	dpchan_q2_settle(q, 10, 12, -EIO); /* never stored: forgotten */
	assert_int_equal(dpchan_q2_count(q), 0);
	assert_int_equal(dpchan_q2_sync(q), 0);
	dpchan_q2_close(q);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec_refusals),
		cmocka_unit_test(test_counter_names),
		cmocka_unit_test(test_server_bad_paths),
		cmocka_unit_test(test_server_new_out_of_memory),
		cmocka_unit_test(test_server_conn_out_of_memory),
		cmocka_unit_test(test_server_answers_over_64),
		cmocka_unit_test(test_server_replaced_and_bad_frames),
		cmocka_unit_test(test_server_many_ranges),
		cmocka_unit_test(test_server_down_refusals),
		cmocka_unit_test(test_server_known),
		cmocka_unit_test(test_server_malformed_frames),
		cmocka_unit_test(test_server_old_start_lists_ignored),
		cmocka_unit_test(test_server_answers_to_a_full_socket),
		cmocka_unit_test(test_server_answer_now_to_a_full_socket),
		cmocka_unit_test(test_server_paused_peer_gone),
		cmocka_unit_test(test_server_closed_in_the_same_run),
		cmocka_unit_test(test_out_of_descriptors),
		cmocka_unit_test(test_client_backoff),
		cmocka_unit_test(test_channel_conf),
		cmocka_unit_test(test_client_new_refusals),
		cmocka_unit_test(test_client_bad_agent),
		cmocka_unit_test(test_client_backs_off_connections_ended_at_once),
		cmocka_unit_test(test_client_arena_wraps),
		cmocka_unit_test(test_client_down_ack_to_a_closed_agent),
		cmocka_unit_test(test_q2_file_faults),
		cmocka_unit_test(test_q2_read_fails_at_open),
		cmocka_unit_test(test_q2_sync_thread),
		cmocka_unit_test(test_q2_rewrite_while_syncing),
		cmocka_unit_test(test_server_q2_report_without_memory),
		cmocka_unit_test(test_q2_stale_waiting_sweep_and_compaction),
		cmocka_unit_test(test_q2_file_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
