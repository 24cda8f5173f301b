/*
 * bus.h: one Modbus bus (an RTU serial line, or a Modbus TCP server with its unit ids) and the
 * thread that polls it. libmodbus blocks, so each bus gets its own thread; the main loop only
 * ever hands it write jobs and takes its messages from the agent_msgq.
 */
#ifndef EDGEGW_MB_BUS_H
#define EDGEGW_MB_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_config.h"
#include "msgq.h"
#include "stats.h"
#include "writes.h"

struct mb_bus;

/* prefix: agent.topic_prefix; resp_topic: where write responses go. */
int mb_bus_create(struct mb_bus **out, const struct agent_bus_conf *c, const char *prefix,
    const char *resp_topic, struct agent_msgq *q);
int mb_bus_start(struct mb_bus *b);
void mb_bus_stop(struct mb_bus *b); /* joins the thread */
void mb_bus_destroy(struct mb_bus *b);
/* After mb_bus_stop: the writes still queued are handed to fn in order and removed, not
 * answered (a reload runs them on the bus that replaces this one). Their number. */
size_t mb_bus_take_writes(struct mb_bus *b,
    void (*fn)(void *arg, const struct mb_write_req *req, uint64_t seq), void *arg);

/* Device lookup for commands: index or -1. */
int mb_bus_find_device(const struct mb_bus *b, const char *name);
const struct mb_profile *mb_bus_device_profile(const struct mb_bus *b, size_t dev);
/* Queue a checked write (runs before the next poll); -ENOBUFS when too many wait. seq: its
 * command spool record (agent/cmdspool.h), 0 for none: its response then carries seq
 * (agent_msgq_push_cmd, also when there is no response topic), for the loop to release it. */
int mb_bus_submit_write(struct mb_bus *b, size_t dev, size_t point, const struct mb_write_req *req,
    const struct mb_write_op *op, uint64_t seq);
struct agent_dev_stats *mb_bus_dev_stats(struct mb_bus *b, size_t dev);

/* For the stats dump. */
struct mb_bus_info {
	const char *name;
	uint64_t uptime_us, busy_us, connect_errors;
	uint64_t faults; /* times the bus went down (port missing, server unreachable) */
	size_t ndevs;
	bool connected;
	bool fault; /* down now: its devices wait and are not charged with it */
};
void mb_bus_info(const struct mb_bus *b, struct mb_bus_info *out);
struct mb_bus_dev_info {
	const char *name;
	unsigned unit_id;
	uint64_t interval_ms, backoff_ms;
	bool failing;
	size_t nblocks;
};
void mb_bus_dev_info(const struct mb_bus *b, size_t dev, struct mb_bus_dev_info *out);
const struct agent_dev_stats *mb_bus_dev_stats_ro(const struct mb_bus *b, size_t dev);

#endif
