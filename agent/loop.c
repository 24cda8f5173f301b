/*
 * loop.c: epoll + timerfd + signalfd (see loop.h). Handlers are kept in a small table keyed by
 * fd; the agent has a handful of descriptors, so a linear table is the simple, right choice.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "loop.h"
#include "log.h"

#define LOOP_MAX_FDS   64
#define LOOP_MAX_TICKS 16

struct loop_fd {
	int fd;
	agent_fd_fn fn;
	void *arg;
};

struct agent_loop {
	int epfd, tfd, sfd;
	bool stop;
	struct loop_fd fds[LOOP_MAX_FDS];
	struct {
		agent_tick_fn fn;
		void *arg;
	} ticks[LOOP_MAX_TICKS];
	size_t nticks;
	agent_signal_fn sig_fn;
	void *sig_arg;
};

static void
on_timer(void *arg, uint32_t events)
{
	struct agent_loop *l = arg;
	uint64_t n, now = clock_mono_ms();

	(void)events;
	if (read(l->tfd, &n, sizeof(n)) < 0)
		return;
	for (size_t i = 0; i < l->nticks; i++)
		l->ticks[i].fn(l->ticks[i].arg, now);
}

static void
on_signal(void *arg, uint32_t events)
{
	struct agent_loop *l = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(l->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (l->sig_fn != NULL)
			l->sig_fn(l->sig_arg, (int)si.ssi_signo);
}

int
agent_loop_create(struct agent_loop **out, unsigned tick_ms)
{
	struct agent_loop *l = calloc(1, sizeof(*l));
	struct itimerspec its = { { tick_ms / 1000, (tick_ms % 1000) * 1000000L },
		{ tick_ms / 1000, (tick_ms % 1000) * 1000000L } };

	if (l == NULL)
		return -ENOMEM;
	l->sfd = -1;
	for (size_t i = 0; i < LOOP_MAX_FDS; i++)
		l->fds[i].fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->epfd < 0 || l->tfd < 0 || timerfd_settime(l->tfd, 0, &its, NULL) < 0 ||
	    agent_loop_add_fd(l, l->tfd, EPOLLIN, on_timer, l) < 0) {
		int rc = -errno;

		agent_loop_destroy(l);
		return rc ? rc : -EIO;
	}
	*out = l;
	return 0;
}

void
agent_loop_destroy(struct agent_loop *l)
{
	if (l == NULL)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->tfd >= 0)
		close(l->tfd);
	if (l->sfd >= 0)
		close(l->sfd);
	free(l);
}

static struct loop_fd *
find_fd(struct agent_loop *l, int fd)
{
	for (size_t i = 0; i < LOOP_MAX_FDS; i++)
		if (l->fds[i].fd == fd)
			return &l->fds[i];
	return NULL;
}

int
agent_loop_add_fd(struct agent_loop *l, int fd, uint32_t events, agent_fd_fn fn, void *arg)
{
	struct loop_fd *slot = find_fd(l, -1);
	struct epoll_event ev = { .events = events };

	if (slot == NULL)
		return -ENOSPC;
	ev.data.ptr = slot;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	*slot = (struct loop_fd){ fd, fn, arg };
	return 0;
}

int
agent_loop_mod_fd(struct agent_loop *l, int fd, uint32_t events)
{
	struct loop_fd *slot = find_fd(l, fd);
	struct epoll_event ev = { .events = events };

	if (slot == NULL || fd < 0)
		return -ENOENT;
	ev.data.ptr = slot;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void
agent_loop_del_fd(struct agent_loop *l, int fd)
{
	struct loop_fd *slot = find_fd(l, fd);

	if (slot == NULL || fd < 0)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	slot->fd = -1;
	slot->fn = NULL;
}

int
agent_loop_add_tick(struct agent_loop *l, agent_tick_fn fn, void *arg)
{
	if (l->nticks == LOOP_MAX_TICKS)
		return -ENOSPC;
	l->ticks[l->nticks].fn = fn;
	l->ticks[l->nticks].arg = arg;
	l->nticks++;
	return 0;
}

int
agent_loop_set_signal_handler(struct agent_loop *l, agent_signal_fn fn, void *arg)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGPIPE); /* a dropped broker socket must not kill us */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -EINVAL;
	l->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (l->sfd < 0)
		return -errno;
	l->sig_fn = fn;
	l->sig_arg = arg;
	return agent_loop_add_fd(l, l->sfd, EPOLLIN, on_signal, l);
}

int
agent_loop_run(struct agent_loop *l)
{
	struct epoll_event evs[16];

	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, 16, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("loop: epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n && !l->stop; i++) {
			struct loop_fd *slot = evs[i].data.ptr;

			/* A handler may have removed this fd earlier in the batch. */
			if (slot->fd >= 0 && slot->fn != NULL)
				slot->fn(slot->arg, evs[i].events);
		}
	}
	return 0;
}

void
agent_loop_stop(struct agent_loop *l)
{
	l->stop = true;
}
