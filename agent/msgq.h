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
#include <sys/queue.h>

struct agent_msg {
	STAILQ_ENTRY(agent_msg) link;
	uint8_t qos;
	bool retain;
	uint64_t cmd_seq; /* a command's response: its command spool record (0: none) */
	size_t len;
	char *topic;
	char payload[]; /* topic follows the payload */
};

STAILQ_HEAD(agent_msg_list, agent_msg);

struct agent_msgq {
	pthread_mutex_t lock;
	struct agent_msg_list list;
	size_t len, max;
	uint64_t dropped;
	int efd; /* eventfd: readable while messages wait */
};

int agent_msgq_init(struct agent_msgq *q, size_t max);
void agent_msgq_destroy(struct agent_msgq *q);
/* Copy topic and payload into a new message; -ENOBUFS (counted) when full. */
int agent_msgq_push(struct agent_msgq *q, const char *topic, const void *payload, size_t len,
    uint8_t qos, bool retain);
/* A spooled command's response (cmd_seq: its record, released once the loop submitted it; topic
 * "": none to send, the release only). Never dropped for the bound: a bus has few writes
 * waiting, and a lost one would leave its command to run again at the next start. */
int agent_msgq_push_cmd(
    struct agent_msgq *q, const char *topic, const void *payload, size_t len, uint64_t cmd_seq);
/* Move every waiting message into out (initialised here; oldest first); the caller takes
 * them off (STAILQ_FIRST, STAILQ_REMOVE_HEAD) and frees each with free(). */
void agent_msgq_take_all(struct agent_msgq *q, struct agent_msg_list *out);

#endif
