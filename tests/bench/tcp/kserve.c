/*
 * kserve: the Linux kernel's side of the TCP benchmark (and the lab's kernel stand-in for the
 * dataplane): TCP echo and discard on one epoll loop, like the dataplane's services, so
 * tests/bench/tcp/run can compare the two stacks serving the same thing.
 *
 *   kserve [-a ADDR] [-e ECHO_PORT] [-d DISCARD_PORT]   (defaults 0.0.0.0, 7, 9)
 *
 * Echo writes back what it reads; when the peer's window is full it stops reading that
 * connection until the backlog drains, so a fast sender cannot make it buffer without bound.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define KS_BUF 65536

struct ks_conn {
	int fd;
	int echo;          /* 1: echo, 0: discard */
	uint32_t off, len; /* pending echo bytes in buf */
	char buf[KS_BUF];
};

static volatile sig_atomic_t ks_stop;

static void
ks_on_signal(int sig)
{
	(void)sig;
	ks_stop = 1;
}

static int
ks_listen(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, one = 1;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "kserve: bad address %s\n", addr);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4096) < 0) {
		int err = errno;

		fprintf(stderr, "kserve: %s:%d: %s\n", addr, port, strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

static void
ks_close(struct ks_conn *c)
{
	close(c->fd);
	free(c);
}

static void
ks_accept(int ep, int lfd, int echo)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct ks_conn *c;

		if (fd < 0)
			return;
		c = malloc(sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->echo = echo;
		c->off = c->len = 0;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			ks_close(c);
	}
}

/* Flush pending echo bytes; returns 1 when all sent, 0 when blocked, -1 on error. */
static int
ks_flush(struct ks_conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		c->off += (uint32_t)n;
	}
	c->off = c->len = 0;
	return 1;
}

static void
ks_event(int ep, struct ks_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	int fl = 1;

	if (c->len)
		fl = ks_flush(c);
	while (fl == 1 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t n = recv(c->fd, c->buf, KS_BUF, 0);

		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			ks_close(c); /* epoll forgets a closed fd */
			return;
		}
		if (n < 0)
			break;
		if (c->echo) {
			c->len = (uint32_t)n;
			fl = ks_flush(c);
		}
	}
	if (fl < 0) {
		ks_close(c);
		return;
	}
	ev.events = fl == 0 ? EPOLLOUT : EPOLLIN;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

int
main(int argc, char **argv)
{
	const char *addr = "0.0.0.0";
	int eport = 7, dport = 9, c, ep, lfd[2];
	struct epoll_event ev, evs[256];
	static int tag[2] = { 1, 0 };

	while ((c = getopt(argc, argv, "a:e:d:")) != -1) {
		switch (c) {
		case 'a':
			addr = optarg;
			break;
		case 'e':
			eport = atoi(optarg);
			break;
		case 'd':
			dport = atoi(optarg);
			break;
		default:
			fprintf(
			    stderr, "usage: kserve [-a ADDR] [-e ECHO_PORT] [-d DISCARD_PORT]\n");
			return 2;
		}
	}
	signal(SIGTERM, ks_on_signal);
	signal(SIGINT, ks_on_signal);
	ep = epoll_create1(EPOLL_CLOEXEC);
	lfd[0] = ks_listen(addr, eport);
	lfd[1] = ks_listen(addr, dport);
	if (ep < 0 || lfd[0] < 0 || lfd[1] < 0)
		return 1;
	for (c = 0; c < 2; c++) {
		ev.events = EPOLLIN;
		ev.data.ptr = &tag[c];
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd[c], &ev);
	}
	while (!ks_stop) {
		int n = epoll_wait(ep, evs, 256, 500), i;

		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &tag[0] || evs[i].data.ptr == &tag[1])
				ks_accept(ep, lfd[evs[i].data.ptr == &tag[0] ? 0 : 1],
				    *(int *)evs[i].data.ptr);
			else
				ks_event(ep, evs[i].data.ptr, evs[i].events);
		}
	}
	return 0;
}
