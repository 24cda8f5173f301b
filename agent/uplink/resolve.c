/*
 * resolve.c: see resolve.h. The thread owns its request and the pipe's write end; the answer
 * (under PIPE_BUF, so one atomic write) is the only thing the two sides share. A client that
 * gives up closes the read end, and the thread's late write fails harmlessly (EPIPE: the
 * thread blocks SIGPIPE).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resolve.h"

struct rs_req {
	char host[128], port[8];
	int wfd;
};

struct rs_answer {
	int rc; /* 0 or a getaddrinfo error */
	struct uplink_addr a;
};

static int
lookup(const char *host, const char *port, int flags, struct uplink_addr *a)
{
	struct addrinfo hints = {
		.ai_flags = flags, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM
	};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);

	if (rc != 0)
		return rc;
	memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
	a->len = ai->ai_addrlen;
	a->family = ai->ai_family;
	freeaddrinfo(ai);
	return 0;
}

int
uplink_resolve_numeric(const char *host, const char *port, struct uplink_addr *a)
{
	return lookup(host, port, AI_NUMERICHOST | AI_NUMERICSERV, a) == 0 ? 0 : -EAGAIN;
}

static void *
rs_thread(void *arg)
{
	struct rs_req *r = arg;
	struct rs_answer ans = { 0 };
	sigset_t all;

	/* MSG_NOSIGNAL does not exist for pipes: block SIGPIPE in this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* AI_ADDRCONFIG: no IPv6 answer on a modem link that has no IPv6 address. It ignores
	 * loopback, so a box with nothing else configured gets no answer at all: ask again. */
	ans.rc = lookup(r->host, r->port, AI_NUMERICSERV | AI_ADDRCONFIG, &ans.a);
	if (ans.rc != 0)
		ans.rc = lookup(r->host, r->port, AI_NUMERICSERV, &ans.a);
	if (write(r->wfd, &ans, sizeof(ans)) != (ssize_t)sizeof(ans))
		(void)0; /* the client gave up: nobody waits for this answer */
	close(r->wfd);
	free(r);
	return NULL;
}

int
uplink_resolve_start(const char *host, const char *port, int *fd)
{
	struct rs_req *r = calloc(1, sizeof(*r));
	pthread_attr_t at;
	pthread_t th;
	int p[2], rc;

	if (r == NULL)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC) != 0) {
		free(r);
		return -errno;
	}
	snprintf(r->host, sizeof(r->host), "%s", host);
	snprintf(r->port, sizeof(r->port), "%s", port);
	r->wfd = p[1];
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &at, rs_thread, r);
	pthread_attr_destroy(&at);
	if (rc != 0) {
		close(p[0]);
		close(p[1]);
		free(r);
		return -rc;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	*fd = p[0];
	return 0;
}

int
uplink_resolve_finish(int fd, struct uplink_addr *a, char *err, size_t errlen)
{
	struct rs_answer ans;
	ssize_t n = read(fd, &ans, sizeof(ans));

	close(fd);
	if (n != (ssize_t)sizeof(ans)) {
		snprintf(err, errlen, "resolver thread gave no answer");
		return -1;
	}
	if (ans.rc != 0) {
		snprintf(err, errlen, "%s", gai_strerror(ans.rc));
		return -1;
	}
	*a = ans.a;
	return 0;
}
