/*
 * sim_transport_kernel.c: the kernel-socket transport: non-blocking TCP sockets, one epoll per
 * worker thread (level-triggered; the session code asks for SIM_EV_OUT only while it has bytes
 * waiting, so a writable socket does not spin the loop).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sim_transport.h"

static int
kt_open(struct sim_transport *t)
{
	t->fd = epoll_create1(EPOLL_CLOEXEC);
	return t->fd < 0 ? -errno : 0;
}

static void
kt_destroy(struct sim_transport *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static uint32_t
to_epoll(uint32_t ev)
{
	return ((ev & SIM_EV_IN) ? EPOLLIN | EPOLLRDHUP : 0) | ((ev & SIM_EV_OUT) ? EPOLLOUT : 0);
}

static int
kt_connect(struct sim_transport *t, const struct sockaddr_in *src, const struct sockaddr_in *dst,
    void *ctx)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = ctx };
	int fd, one = 1, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src != NULL && src->sin_addr.s_addr != 0) {
		/* The port is chosen at connect() per 4-tuple, so many sessions share one address. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) < 0) {
			close(fd);
			return -EADDRNOTAVAIL;
		}
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	if (epoll_ctl(t->fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int
kt_connect_result(struct sim_transport *t, int h)
{
	int err = 0;
	socklen_t len = sizeof(err);

	(void)t;
	if (getsockopt(h, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static ssize_t
kt_send(struct sim_transport *t, int h, const void *buf, size_t len)
{
	ssize_t n = send(h, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)t;
	return n < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : n;
}

static ssize_t
kt_recv(struct sim_transport *t, int h, void *buf, size_t len)
{
	ssize_t n = recv(h, buf, len, MSG_DONTWAIT);

	(void)t;
	return n < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : n;
}

static int
kt_want(struct sim_transport *t, int h, uint32_t events, void *ctx)
{
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = ctx };

	return epoll_ctl(t->fd, EPOLL_CTL_MOD, h, &ev) < 0 ? -errno : 0;
}

static void
kt_close(struct sim_transport *t, int h)
{
	(void)t;
	close(h); /* also leaves the epoll set */
}

static int
kt_poll(struct sim_transport *t, struct sim_event *out, int max, int timeout_ms)
{
	struct epoll_event ev[256];
	int n;

	if (max > 256)
		max = 256;
	n = epoll_wait(t->fd, ev, max, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		out[i].ctx = ev[i].data.ptr;
		out[i].events = ((ev[i].events & (EPOLLIN | EPOLLRDHUP)) ? SIM_EV_IN : 0) |
		    ((ev[i].events & EPOLLOUT) ? SIM_EV_OUT : 0) |
		    ((ev[i].events & (EPOLLERR | EPOLLHUP)) ? SIM_EV_ERR : 0);
	}
	return n;
}

const struct sim_transport_ops sim_transport_kernel = {
	.name = "kernel",
	.open = kt_open,
	.destroy = kt_destroy,
	.connect = kt_connect,
	.connect_result = kt_connect_result,
	.send = kt_send,
	.recv = kt_recv,
	.want = kt_want,
	.close = kt_close,
	.poll = kt_poll,
};
