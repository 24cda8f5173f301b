/*
 * resolve.c: see resolve.h. The thread owns its request and the pipe's write end; the answer
 * (under PIPE_BUF, so one atomic write) is the only thing the two sides share. A client that
 * gives up closes the read end, and the thread's late write fails harmlessly (EPIPE: the
 * thread blocks SIGPIPE).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resolve.h"

struct rs_req {
	char host[128], port[8];
	uplink_lookup_fn fn;
	int wfd;
};

struct rs_answer {
	int rc; /* 0 or a getaddrinfo error */
	struct uplink_addrs a;
};

_Static_assert(sizeof(struct rs_answer) <= PIPE_BUF, "the answer must be one atomic write");

/* Every address of the answer, in its order, each once (up to UPLINK_ADDRS_MAX). */
static int
lookup(const char *host, const char *port, int flags, struct uplink_addrs *out)
{
	struct addrinfo hints = {
		.ai_flags = flags, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM
	};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);

	if (rc != 0)
		return rc;
	out->n = 0;
	for (const struct addrinfo *p = ai; p != NULL && out->n < UPLINK_ADDRS_MAX;
	     p = p->ai_next) {
		struct uplink_addr *a = &out->a[out->n];
		uint32_t i = 0;

		if (p->ai_addrlen > sizeof(a->ss))
			continue;
		memset(a, 0, sizeof(*a));
		memcpy(&a->ss, p->ai_addr, p->ai_addrlen);
		a->len = p->ai_addrlen;
		a->family = p->ai_family;
		while (i < out->n && !uplink_addr_eq(&out->a[i], a))
			i++;
		if (i == out->n) /* not a repeat: kept */
			out->n++;
	}
	freeaddrinfo(ai);
	return out->n > 0 ? 0 : EAI_NONAME;
}

/* The thread's lookup when the client gives none. AI_ADDRCONFIG: no IPv6 answer on a modem
 * link that has no IPv6 address. It ignores loopback, so a box with nothing else configured
 * gets no answer at all: ask again without it. */
static int
lookup_system(const char *host, const char *port, struct uplink_addrs *out)
{
	int rc = lookup(host, port, AI_NUMERICSERV | AI_ADDRCONFIG, out);

	return rc == 0 ? 0 : lookup(host, port, AI_NUMERICSERV, out);
}

int
uplink_resolve_numeric(const char *host, const char *port, struct uplink_addrs *a)
{
	return lookup(host, port, AI_NUMERICHOST | AI_NUMERICSERV, a) == 0 ? 0 : -EAGAIN;
}

void
uplink_addrs_interleave(struct uplink_addrs *a)
{
	struct uplink_addrs out = { .n = 0 };
	bool used[UPLINK_ADDRS_MAX] = { false };
	int want = a->n > 0 ? a->a[0].family : 0;

	while (out.n < a->n) {
		uint32_t i = 0, j;

		while (i < a->n && (used[i] || a->a[i].family != want))
			i++;
		if (i == a->n) /* none of that family left: the first one not used */
			for (i = 0; used[i]; i++)
				;
		used[i] = true;
		out.a[out.n++] = a->a[i];
		/* the next one of another family, if any is left */
		for (j = 0; j < a->n && (used[j] || a->a[j].family == a->a[i].family); j++)
			;
		want = j < a->n ? a->a[j].family : a->a[i].family;
	}
	*a = out;
}

bool
uplink_addr_eq(const struct uplink_addr *a, const struct uplink_addr *b)
{
	return a->family == b->family && a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

const char *
uplink_addr_str(const struct uplink_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
	}
	return buf;
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
	ans.rc = r->fn(r->host, r->port, &ans.a);
	if (ans.rc == 0 && (ans.a.n == 0 || ans.a.n > UPLINK_ADDRS_MAX))
		ans.rc = EAI_FAIL;
	if (write(r->wfd, &ans, sizeof(ans)) != (ssize_t)sizeof(ans))
		(void)0; /* the client gave up: nobody waits for this answer */
	close(r->wfd);
	free(r);
	return NULL;
}

int
uplink_resolve_start(const char *host, const char *port, uplink_lookup_fn fn, int *fd)
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
	r->fn = fn != NULL ? fn : lookup_system;
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
uplink_resolve_finish(int fd, struct uplink_addrs *a, char *err, size_t errlen)
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
