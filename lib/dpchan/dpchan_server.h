/*
 * dpchan_server.h: the agent's end of the channel, the dataplane's lcores connect to it (one
 * connection each). Records go to a sink (the uplink's store, through agent/dpchan_link.c; a
 * fake in the unit tests) that gives each one a token (the spool's sequence number); the sink says later
 * which tokens became durable (dpchan_server_durable), and the server answers the lcore that
 * sent them with DURABLE ranges of its refs.
 *
 * Per lcore (a stream: boot id and lcore of its HELLO) the server keeps, across reconnects of
 * that lcore, the highest ref taken and the refs awaiting durability: a record the dataplane
 * sends again after a reconnect is not taken twice (answered when durable, or at once when it
 * already is). A new boot id for an lcore starts a new stream. Across a restart of the agent
 * the sink says which records it already holds (dpchan_server_known).
 *
 * Non-blocking: everything runs from dpchan_server_run(), which the agent's loop calls when
 * dpchan_server_fd() is readable (an epoll fd of the server's own sockets) and on its tick.
 * While the sink is full a connection is not read (the dataplane's socket buffer fills, then its
 * pending bound: its broker stops reading the publishers), and retried at every run.
 */
#ifndef EDGEGW_DPCHAN_SERVER_H
#define EDGEGW_DPCHAN_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "dpchan.h"

struct dpchan_server;
struct dpchan_q2_io;

struct dpchan_server_config {
	const char *path;        /* NULL: DPCHAN_DEFAULT_PATH; a stale socket there is replaced */
	uint32_t max_streams;    /* lcores (0: 64) */
	uint32_t max_inflight;   /* refs awaiting durability per lcore (0: 65536) */
	const char *q2_path;     /* the QoS 2 origins' file (NULL: kept in memory only) */
	uint32_t max_q2_origins; /* QoS 2 origins held until released (0: 65536) */
	/* The origin file's writes (dpchan_q2.h), for tests that inject faults; NULL: POSIX */
	const struct dpchan_q2_io *q2_io;
	void *q2_io_ctx;
};

struct dpchan_sink_ops {
	/* Take r (from the lcore of from): 0 with *token (increasing over all records taken)
	 * once it is in the store (answered when dpchan_server_durable covers the token); 1:
	 * taken with nothing to wait for (answered durable now: no rule sends it up, or a store
	 * without a spool); -ENOBUFS: full, not taken, offered again later; any other < 0:
	 * refused for good (answered failed). r->ref 0 (best effort): no answer either way. */
	int (*submit)(void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r,
	    uint64_t *token);
};

/* Listening at cfg->path, or NULL with errno set. */
struct dpchan_server *dpchan_server_new(
    const struct dpchan_server_config *cfg, const struct dpchan_sink_ops *ops, void *arg);
void dpchan_server_free(struct dpchan_server *s);
int dpchan_server_fd(const struct dpchan_server *s);
/*
 * A record the sink already holds from before the agent restarted (found in its spool, with
 * the boot id, lcore and ref it came with): when that lcore sends it again (it was never told
 * it is durable), it is answered durable at once and not given to the sink a second time.
 * Call before the lcores connect; 0 or -ENOMEM. 24 bytes each, forgotten as they can no longer
 * come: those of an lcore below the first ref it sends after its hello (it resends from its
 * oldest), and all of them when an lcore says hello with another boot id (the dataplane
 * restarted).
 */
int dpchan_server_known(struct dpchan_server *s, uint64_t boot_id, uint32_t lcore, uint64_t ref);
/* The same for a QoS 2 record (the sensor's QoS): its origin is also held until the dataplane
 * releases it (dpchan_q2.h), written to the origin file at the next run. */
int dpchan_server_known_q2(struct dpchan_server *s, uint64_t boot_id, uint32_t lcore, uint64_t ref);
/* Accept, read, take, answer: whatever is ready (never blocks). */
void dpchan_server_run(struct dpchan_server *s);
/* The sink's answer: every token of first..last is durable (status 0) or failed (< 0). */
void dpchan_server_durable(struct dpchan_server *s, uint64_t first, uint64_t last, int status);
/* A downlink publish to the dataplane (to one lcore, the same while it stays connected: the
 * broker shares it with the others);
 * 0, -ENOTCONN when no lcore is connected, -EAGAIN when its socket is full. r->ref != 0: the
 * lcore answers with a DOWN_ACK once its broker took it (dpchan_server_set_down_ack); a record
 * not answered when a connection ends (DPCHAN_C_DISCONNECTS moves) must be sent again: the
 * dataplane answers one it took already without delivering it twice. */
int dpchan_server_down(struct dpchan_server *s, const struct dpchan_rec *r);
/* The DOWN_ACK answers: refs first..last taken (status 1: delivered to a subscriber, 0: none
 * subscribed) or refused for good (< 0). */
typedef void (*dpchan_down_ack_fn)(void *arg, uint64_t first, uint64_t last, int status);
void dpchan_server_set_down_ack(struct dpchan_server *s, dpchan_down_ack_fn fn, void *arg);
/* Lcores connected now. */
uint32_t dpchan_server_connected(const struct dpchan_server *s);
/* The highest DOWN ref the newest start of the dataplane took, as its HELLOs said (0: none):
 * a ref at or below it is answered as taken before, without being delivered. */
uint64_t dpchan_server_down_seen(const struct dpchan_server *s);
uint64_t dpchan_server_counter(const struct dpchan_server *s, enum dpchan_counter k);

#endif
