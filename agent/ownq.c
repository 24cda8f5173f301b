/*
 * ownq.c: cloud messages waiting for their spool commit before they are acknowledged (ownq.h).
 */
#include "ownq.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

int
ownq_open(struct ownq *q, struct agent_loop *loop, agent_fd_fn on_wake, void *arg)
{
	int rc;

	memset(q, 0, sizeof(*q));
	q->loop = loop;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return -errno;
	if ((rc = agent_loop_add_fd(loop, q->efd, EPOLLIN, on_wake, arg)) != 0) {
		close(q->efd);
		q->efd = -1;
		return rc;
	}
	return 0;
}

void
ownq_close(struct ownq *q)
{
	if (q->efd < 0)
		return;
	agent_loop_del_fd(q->loop, q->efd);
	close(q->efd);
	q->efd = -1;
	q->n = 0;
}

void
ownq_on_commit(void *arg, uint64_t commit_no, int status)
{
	struct ownq *q = arg;
	uint64_t one = 1;

	(void)commit_no;
	(void)status;
	if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "ownq: eventfd: %s", strerror(errno));
}

void
ownq_clear(struct ownq *q)
{
	uint64_t n;

	if (read(q->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "ownq: eventfd: %s", strerror(errno));
}

void
ownq_committed(struct ownq *q)
{
	if (q->on_commit != NULL)
		q->on_commit(q->on_commit_arg);
}

bool
ownq_push(struct ownq *q, const struct ownq_item *it)
{
	if (q->efd < 0 || q->n == OWNQ_MAX)
		return false;
	q->it[(q->head + q->n++) % OWNQ_MAX] = *it;
	return true;
}

struct ownq_item *
ownq_find_id(struct ownq *q, uint16_t packet_id)
{
	for (uint32_t i = 0; i < q->n && packet_id != 0; i++) {
		struct ownq_item *it = &q->it[(q->head + i) % OWNQ_MAX];

		if (it->packet_id == packet_id)
			return it;
	}
	return NULL;
}

void
ownq_forget_ids(struct ownq *q)
{
	for (uint32_t i = 0; i < q->n; i++)
		q->it[(q->head + i) % OWNQ_MAX].packet_id = 0;
}

int
ownq_next(struct ownq *q, struct spool *sp, struct ownq_item *out)
{
	int st;

	if (q->n == 0 || (st = spool_seq_status(sp, q->it[q->head].seq)) == 0)
		return 0;
	*out = q->it[q->head];
	q->head = (q->head + 1) % OWNQ_MAX;
	q->n--;
	return st;
}
