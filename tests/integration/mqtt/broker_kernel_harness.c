/*
 * broker_kernel_harness.c: a TEST TOOL, not the product. It runs the broker core (broker_lib)
 * over kernel TCP sockets with one epoll loop, so real MQTT clients (mosquitto_pub/sub, paho)
 * can be pointed at the broker logic before and beside the dataplane. The product path is the
 * DPDK dataplane's own TCP (dataplane/svc/mqtt_tcp.c). See docs/broker.md.
 *
 * usage: broker_kernel_harness [-a ADDR] [-p PORT] [-s SYS_INTERVAL_MS] [-q MAX_QUEUE]
 * PORT 0 picks a free port. Prints "listening ADDR PORT" once ready; SIGTERM/SIGINT stop it
 * and print the non-zero counters to stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"

#define OUT_CAP  (4u << 20) /* per connection: what send_space offers */
#define IN_CHUNK 65536u

struct hconn {
	int fd;
	struct broker_conn *bc; /* NULL once the broker closed it */
	uint8_t *in, *out;
	size_t in_len, in_cap, out_len, out_cap;
	bool closing;
	bool woken; /* the broker takes its held input again (input_ready) */
	struct hconn *next_closing, *next_woken;
	struct hconn *next, *prev; /* all connections, for the shutdown */
};

static struct hconn *closing_list, *all_conns, *woken_list;
static int epfd;
static volatile sig_atomic_t stop;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Input the broker holds back is not read from the socket either: the client's TCP window
 * closes, as on the dataplane. */
static void
watch(struct hconn *h)
{
	bool held = h->bc != NULL && broker_conn_held(h->bc);
	struct epoll_event ev = { .events = (held ? 0 : EPOLLIN) | (h->out_len > 0 ? EPOLLOUT : 0),
		.data.ptr = h };

	epoll_ctl(epfd, EPOLL_CTL_MOD, h->fd, &ev);
}

/* Write what is buffered; false on a socket error. */
static bool
flush_out(struct hconn *h)
{
	while (h->out_len > 0) {
		ssize_t n = write(h->fd, h->out, h->out_len);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		memmove(h->out, h->out + n, h->out_len - (size_t)n);
		h->out_len -= (size_t)n;
	}
	return true;
}

static int
op_send(void *ctx, const struct mqtt_iov *iov, size_t n)
{
	struct hconn *h = ctx;
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += iov[i].len;
	if (h->out_len + total > OUT_CAP)
		return -1;
	if (h->out_len + total > h->out_cap) {
		size_t cap =
		    h->out_cap * 2 > h->out_len + total ? h->out_cap * 2 : h->out_len + total;
		uint8_t *p = realloc(h->out, cap);

		if (p == NULL)
			return -1;
		h->out = p;
		h->out_cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(h->out + h->out_len, iov[i].base, iov[i].len);
		h->out_len += iov[i].len;
	}
	if (!flush_out(h))
		return -1;
	watch(h);
	return 0;
}

static size_t
op_send_space(void *ctx)
{
	struct hconn *h = ctx;

	return OUT_CAP - h->out_len;
}

static void
op_close(void *ctx, uint8_t reason)
{
	struct hconn *h = ctx;

	(void)reason;
	h->bc = NULL;
	if (!h->closing) {
		h->closing = true;
		h->next_closing = closing_list;
		closing_list = h;
	}
}

static void
op_input_ready(void *ctx)
{
	struct hconn *h = ctx;

	if (h->woken)
		return;
	h->woken = true;
	h->next_woken = woken_list;
	woken_list = h;
}

static const struct broker_transport_ops harness_ops = {
	.send = op_send,
	.send_space = op_send_space,
	.close = op_close,
	.input_ready = op_input_ready,
};

static void
hconn_free(struct hconn *h)
{
	flush_out(h); /* best effort: a DISCONNECT or CONNACK with a reason goes first */
	for (struct hconn **pp = &woken_list; h->woken && *pp != NULL; pp = &(*pp)->next_woken)
		if (*pp == h) {
			*pp = h->next_woken;
			break;
		}
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		all_conns = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	close(h->fd);
	free(h->in);
	free(h->out);
	free(h);
}

static void on_readable(struct hconn *h);

/* Connections whose held input the broker takes again: what waits is passed, then the socket
 * is read again. */
static void
wake_poll(void)
{
	while (woken_list != NULL) {
		struct hconn *h = woken_list;

		woken_list = h->next_woken;
		h->woken = false;
		if (!h->closing && h->bc != NULL)
			on_readable(h);
	}
}

static void
reap_closing(void)
{
	while (closing_list != NULL) {
		struct hconn *h = closing_list;

		closing_list = h->next_closing;
		hconn_free(h);
	}
}

static void
on_accept(struct broker *b, int lfd)
{
	int fd, one = 1;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct hconn *h = calloc(1, sizeof(*h));
		struct epoll_event ev = { .events = EPOLLIN };

		if (h == NULL) {
			close(fd);
			continue;
		}
		h->next = all_conns;
		if (all_conns != NULL)
			all_conns->prev = h;
		all_conns = h;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		h->fd = fd;
		ev.data.ptr = h;
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
		if ((h->bc = broker_conn_open(b, h, now_ms())) == NULL)
			op_close(h, 0);
	}
}

/* Pass what waits; false when the broker closed the connection. */
static bool
feed(struct hconn *h)
{
	struct mqtt_iov seg = { h->in, h->in_len };
	size_t used;

	if (h->in_len == 0)
		return true;
	if (broker_conn_input(h->bc, &seg, 1, &used, now_ms()) < 0)
		return false;
	memmove(h->in, h->in + used, h->in_len - used);
	h->in_len -= used;
	return true;
}

static void
on_readable(struct hconn *h)
{
	if (!feed(h))
		return;
	while (!broker_conn_held(h->bc)) {
		ssize_t n;

		if (h->in_cap - h->in_len < IN_CHUNK) {
			uint8_t *p = realloc(h->in, h->in_cap + IN_CHUNK);

			if (p == NULL)
				break;
			h->in = p;
			h->in_cap += IN_CHUNK;
		}
		n = read(h->fd, h->in + h->in_len, h->in_cap - h->in_len);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			broker_conn_closed(h->bc, now_ms());
			op_close(h, 0);
			return;
		}
		if (n < 0)
			break;
		h->in_len += (size_t)n;
		if (!feed(h))
			return; /* the broker closed it */
	}
	watch(h);
}

static void
on_event(struct hconn *h, uint32_t events)
{
	if (h->closing)
		return;
	if (events & EPOLLOUT) {
		if (!flush_out(h)) {
			broker_conn_closed(h->bc, now_ms());
			op_close(h, 0);
			return;
		}
		watch(h);
		if (h->out_len == 0)
			broker_conn_writable(h->bc, now_ms());
	}
	if (!h->closing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		on_readable(h);
}

static int
listen_on(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		close(fd);
		return -1;
	}
	printf("listening %s %u\n", addr, ntohs(sa.sin_port));
	fflush(stdout);
	return fd;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
print_counters(const struct broker *b)
{
	for (int i = 0; i < BROKER_C_COUNT; i++)
		if (broker_counter_get(b, (enum broker_counter)i) != 0)
			fprintf(stderr, "%s %llu\n", broker_counter_name((enum broker_counter)i),
			    (unsigned long long)broker_counter_get(b, (enum broker_counter)i));
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[64], lev = { .events = EPOLLIN };
	struct broker_config cfg;
	const char *addr = "127.0.0.1";
	struct broker *b;
	int opt, port = 1883, lfd;

	broker_config_defaults(&cfg);
	while ((opt = getopt(argc, argv, "a:p:s:q:")) != -1) {
		if (opt == 'a')
			addr = optarg;
		else if (opt == 'p')
			port = atoi(optarg);
		else if (opt == 's')
			cfg.sys_interval_ms = (uint32_t)atoi(optarg);
		else if (opt == 'q')
			cfg.max_queue = (uint32_t)atoi(optarg);
		else
			return fprintf(stderr,
				   "usage: %s [-a addr] [-p port] [-s sys_ms] [-q max_queue]\n",
				   argv[0]),
			       2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if ((b = broker_create(&cfg, &harness_ops, now_ms())) == NULL ||
	    (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || (lfd = listen_on(addr, port)) < 0) {
		fprintf(stderr, "broker_kernel_harness: cannot start on %s:%d: %s\n", addr, port,
		    strerror(errno));
		return 1;
	}
	lev.data.ptr = NULL;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
	while (!stop) {
		int n = epoll_wait(epfd, evs, 64, 100);

		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				on_accept(b, lfd);
			else
				on_event(evs[i].data.ptr, evs[i].events);
		}
		reap_closing(); /* after the batch: a later event may name a closed connection */
		broker_tick(b, now_ms());
		reap_closing();
		wake_poll();
		reap_closing();
	}
	print_counters(b);
	broker_destroy(b);
	while (all_conns != NULL) /* the broker is gone: only the sockets are left */
		hconn_free(all_conns);
	return 0;
}
