/*
 * msgq.h: messages from the bus threads to the main loop. A bounded, mutex-protected FIFO with
 * an eventfd the loop polls; the bus thread never blocks on it (a full queue drops and counts).
 */
#ifndef EDGEGW_AGENT_MSGQ_H
#define EDGEGW_AGENT_MSGQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent_msg {
	struct agent_msg *next;
	uint8_t qos;
	bool retain;
	size_t len;
	char *topic;
	char payload[]; /* topic follows the payload */
};

struct agent_msgq {
	pthread_mutex_t lock;
	struct agent_msg *head, *tail;
	size_t len, max;
	uint64_t dropped;
	int efd; /* eventfd: readable while messages wait */
};

int agent_msgq_init(struct agent_msgq *q, size_t max);
void agent_msgq_destroy(struct agent_msgq *q);
/* Copy topic and payload into a new message; -ENOBUFS (counted) when full. */
int agent_msgq_push(struct agent_msgq *q, const char *topic, const void *payload, size_t len,
    uint8_t qos, bool retain);
/* Take every waiting message (a list, oldest first); caller frees each with free(). */
struct agent_msg *agent_msgq_take_all(struct agent_msgq *q);

#endif
