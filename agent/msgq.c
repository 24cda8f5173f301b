/*
 * msgq.c: the bus-to-loop message queue (see msgq.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "msgq.h"

int
agent_msgq_init(struct agent_msgq *q, size_t max)
{
	memset(q, 0, sizeof(*q));
	STAILQ_INIT(&q->list);
	q->max = max;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return -errno;
	pthread_mutex_init(&q->lock, NULL);
	return 0;
}

void
agent_msgq_destroy(struct agent_msgq *q)
{
	struct agent_msg_list l;
	struct agent_msg *m;

	agent_msgq_take_all(q, &l);
	while ((m = STAILQ_FIRST(&l)) != NULL) {
		STAILQ_REMOVE_HEAD(&l, link);
		free(m);
	}
	if (q->efd >= 0)
		close(q->efd);
	q->efd = -1;
	pthread_mutex_destroy(&q->lock);
}

static int
push(struct agent_msgq *q, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t cmd_seq)
{
	size_t tlen = strlen(topic);
	struct agent_msg *m;
	uint64_t one = 1;
	bool was_empty;

	pthread_mutex_lock(&q->lock);
	if (q->len >= q->max && cmd_seq == 0) {
		q->dropped++;
		pthread_mutex_unlock(&q->lock);
		return -ENOBUFS;
	}
	pthread_mutex_unlock(&q->lock);
	m = malloc(sizeof(*m) + len + 1 + tlen + 1);
	if (m == NULL)
		return -ENOMEM;
	m->qos = qos;
	m->retain = retain;
	m->cmd_seq = cmd_seq;
	m->len = len;
	memcpy(m->payload, payload, len);
	m->payload[len] = '\0';
	m->topic = m->payload + len + 1;
	memcpy(m->topic, topic, tlen + 1);
	pthread_mutex_lock(&q->lock);
	was_empty = STAILQ_EMPTY(&q->list);
	STAILQ_INSERT_TAIL(&q->list, m, link);
	q->len++;
	pthread_mutex_unlock(&q->lock);
	if (was_empty && write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

int
agent_msgq_push(struct agent_msgq *q, const char *topic, const void *payload, size_t len,
    uint8_t qos, bool retain)
{
	return push(q, topic, payload, len, qos, retain, 0);
}

int
agent_msgq_push_cmd(
    struct agent_msgq *q, const char *topic, const void *payload, size_t len, uint64_t cmd_seq)
{
	return push(q, topic, payload, len, 1, false, cmd_seq);
}

void
agent_msgq_take_all(struct agent_msgq *q, struct agent_msg_list *out)
{
	uint64_t v;

	STAILQ_INIT(out);
	pthread_mutex_lock(&q->lock);
	STAILQ_CONCAT(out, &q->list);
	q->len = 0;
	/* Drain the eventfd under the lock so a push after this sees an empty queue and signals. */
	if (read(q->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was signalled; nothing else can fail on an eventfd we own */
	}
	pthread_mutex_unlock(&q->lock);
}
