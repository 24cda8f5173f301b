/*
 * tcpload: TCP load generator for tests/bench/tcp/run. One epoll loop, many connections.
 *
 *   tcpload MODE -H ADDR [-p PORT] [-c CONNS] [-t SECONDS] [-s MSG_BYTES]
 *     rr    CONNS connections, each with one MSG_BYTES message outstanding to echo: round trips/s
 *     bulk  CONNS connections writing as fast as they can (to discard): MB/s
 *     crr   CONNS slots, each looping connect, one echo, close: connections/s
 *     idle  open CONNS connections, one echo each so the server holds them established, print
 *           "ready", hold them SECONDS (or until SIGUSR1), then close them
 *
 * Prints one line of key=value results on stdout; errors go to stderr with the errno.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum tl_mode {
	TL_RR,
	TL_BULK,
	TL_CRR,
	TL_IDLE
};
enum tl_state {
	TL_CONNECTING,
	TL_SENDING,
	TL_READING,
	TL_DONE
};

struct tl_conn {
	int fd;
	enum tl_state state;
	uint32_t done; /* bytes sent or received of the current message */
};

struct tl_run {
	enum tl_mode mode;
	struct sockaddr_in dst;
	int conns, msg;
	double secs;
	int ep;
	struct tl_conn *c;
	uint64_t ops, bytes, errors;
	char buf[65536];
};

static volatile sig_atomic_t tl_release;

static void
tl_on_usr1(int sig)
{
	(void)sig;
	tl_release = 1;
}

static double
tl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
tl_watch(struct tl_run *r, int i, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.u32 = (uint32_t)i };

	epoll_ctl(r->ep, op, r->c[i].fd, &ev);
}

static int
tl_connect(struct tl_run *r, int i)
{
	struct tl_conn *c = &r->c[i];
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "tcpload: socket: %s\n", strerror(errno));
		return -errno;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&r->dst, sizeof(r->dst)) < 0 &&
	    errno != EINPROGRESS) {
		fprintf(stderr, "tcpload: connect: %s\n", strerror(errno));
		close(c->fd);
		return -errno;
	}
	c->state = TL_CONNECTING;
	c->done = 0;
	tl_watch(r, i, EPOLLOUT, EPOLL_CTL_ADD);
	return 0;
}

static void
tl_fail(struct tl_run *r, int i)
{
	r->errors++;
	close(r->c[i].fd);
	r->c[i].state = TL_DONE;
	if (r->mode == TL_CRR && tl_connect(r, i) < 0)
		r->c[i].state = TL_DONE;
}

/* Message complete on connection i: start the next one, or (crr) close and reconnect. */
static void
tl_next(struct tl_run *r, int i)
{
	struct tl_conn *c = &r->c[i];

	r->ops++;
	c->done = 0;
	if (r->mode == TL_CRR) {
		close(c->fd);
		if (tl_connect(r, i) < 0)
			c->state = TL_DONE;
		return;
	}
	if (r->mode == TL_IDLE) {
		c->state = TL_DONE;
		tl_watch(r, i, 0, EPOLL_CTL_MOD);
		return;
	}
	c->state = TL_SENDING;
	tl_watch(r, i, EPOLLOUT, EPOLL_CTL_MOD);
}

static void
tl_send(struct tl_run *r, int i)
{
	struct tl_conn *c = &r->c[i];
	size_t want = r->mode == TL_BULK ? sizeof(r->buf) : (size_t)r->msg - c->done;
	ssize_t n = send(c->fd, r->buf, want, MSG_NOSIGNAL);

	if (n < 0) {
		if (errno != EAGAIN)
			tl_fail(r, i);
		return;
	}
	r->bytes += (uint64_t)n;
	if (r->mode == TL_BULK)
		return;
	c->done += (uint32_t)n;
	if (c->done == (uint32_t)r->msg) {
		c->done = 0;
		c->state = TL_READING;
		tl_watch(r, i, EPOLLIN, EPOLL_CTL_MOD);
	}
}

static void
tl_recv(struct tl_run *r, int i)
{
	struct tl_conn *c = &r->c[i];
	ssize_t n = recv(c->fd, r->buf, (size_t)r->msg - c->done, 0);

	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			tl_fail(r, i);
		return;
	}
	c->done += (uint32_t)n;
	if (c->done == (uint32_t)r->msg)
		tl_next(r, i);
}

static void
tl_event(struct tl_run *r, int i, uint32_t events)
{
	struct tl_conn *c = &r->c[i];
	int err = 0;
	socklen_t len = sizeof(err);

	if (c->state == TL_CONNECTING) {
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & EPOLLERR)) {
			fprintf(stderr, "tcpload: connect: %s\n", strerror(err ? err : EIO));
			tl_fail(r, i);
			return;
		}
		c->state = TL_SENDING;
	}
	if (c->state == TL_SENDING && (events & EPOLLOUT))
		tl_send(r, i);
	else if (c->state == TL_READING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		tl_recv(r, i);
}

static void
tl_loop(struct tl_run *r, double until)
{
	struct epoll_event evs[512];

	while (tl_now() < until && !tl_release) {
		int n = epoll_wait(r->ep, evs, 512, 50), k;

		for (k = 0; k < n; k++)
			tl_event(r, (int)evs[k].data.u32, evs[k].events);
	}
}

static int
tl_count_done(const struct tl_run *r)
{
	int i, n = 0;

	for (i = 0; i < r->conns; i++)
		n += r->c[i].state == TL_DONE;
	return n;
}

/* idle: establish everything (with one echo each), announce, hold, close. */
static int
tl_idle(struct tl_run *r)
{
	double t0 = tl_now(), deadline = t0 + 60;
	int i;

	for (i = 0; i < r->conns; i++)
		if (tl_connect(r, i) < 0)
			return 1;
	while (tl_count_done(r) < r->conns && tl_now() < deadline && r->errors == 0)
		tl_loop(r, tl_now() + 0.1);
	if (r->errors || tl_count_done(r) < r->conns) {
		fprintf(stderr, "tcpload: idle: %d of %d established, %llu errors\n",
		    tl_count_done(r), r->conns, (unsigned long long)r->errors);
		return 1;
	}
	printf("ready conns=%d setup_s=%.2f\n", r->conns, tl_now() - t0);
	fflush(stdout);
	deadline = tl_now() + r->secs;
	while (!tl_release && tl_now() < deadline)
		usleep(20000);
	for (i = 0; i < r->conns; i++)
		close(r->c[i].fd);
	printf("closed conns=%d\n", r->conns);
	return 0;
}

static int
tl_timed(struct tl_run *r)
{
	double t0, el;
	int i;

	for (i = 0; i < r->conns; i++)
		if (tl_connect(r, i) < 0)
			return 1;
	t0 = tl_now();
	tl_loop(r, t0 + r->secs);
	el = tl_now() - t0;
	if (r->mode == TL_BULK)
		printf("mode=bulk conns=%d secs=%.2f bytes=%llu mb_per_s=%.1f errors=%llu\n",
		    r->conns, el, (unsigned long long)r->bytes, (double)r->bytes / el / 1e6,
		    (unsigned long long)r->errors);
	else
		printf("mode=%s conns=%d secs=%.2f ops=%llu per_s=%.0f errors=%llu\n",
		    r->mode == TL_RR ? "rr" : "crr", r->conns, el, (unsigned long long)r->ops,
		    (double)r->ops / el, (unsigned long long)r->errors);
	for (i = 0; i < r->conns; i++)
		if (r->c[i].state != TL_DONE)
			close(r->c[i].fd);
	return 0;
}

static int
tl_parse_mode(const char *s, enum tl_mode *m)
{
	static const char *names[] = { "rr", "bulk", "crr", "idle" };
	int i;

	for (i = 0; i < 4; i++)
		if (!strcmp(s, names[i])) {
			*m = (enum tl_mode)i;
			return 0;
		}
	return -EINVAL;
}

int
main(int argc, char **argv)
{
	static struct tl_run r = { .conns = 1, .msg = 64, .secs = 5 };
	const char *host = NULL;
	int port = 7, o;

	if (argc < 2 || tl_parse_mode(argv[1], &r.mode) < 0) {
		fprintf(stderr,
		    "usage: tcpload rr|bulk|crr|idle -H ADDR [-p PORT] [-c CONNS] [-t SECONDS] [-s "
		    "MSG_BYTES]\n");
		return 2;
	}
	optind = 2;
	while ((o = getopt(argc, argv, "H:p:c:t:s:")) != -1) {
		switch (o) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			r.conns = atoi(optarg);
			break;
		case 't':
			r.secs = atof(optarg);
			break;
		case 's':
			r.msg = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	r.dst.sin_family = AF_INET;
	r.dst.sin_port = htons((uint16_t)port);
	if (host == NULL || inet_pton(AF_INET, host, &r.dst.sin_addr) != 1 || r.conns < 1 ||
	    r.msg < 1 || r.msg > (int)sizeof(r.buf)) {
		fprintf(stderr, "tcpload: need -H IPv4, -c >= 1, 1 <= -s <= %zu\n", sizeof(r.buf));
		return 2;
	}
	memset(r.buf, 'x', sizeof(r.buf));
	signal(SIGUSR1, tl_on_usr1);
	signal(SIGPIPE, SIG_IGN);
	r.c = calloc((size_t)r.conns, sizeof(*r.c));
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	if (r.c == NULL || r.ep < 0)
		return 1;
	return r.mode == TL_IDLE ? tl_idle(&r) : tl_timed(&r);
}
