/*
 * dpchan_link.h: the agent's end of the dataplane channel (lib/dpchan's server) on the agent's
 * loop: the lcores' connections are accepted and read there, their records go to a sink (the
 * uplink's store: store_submit() behind struct dpchan_sink_ops), and the sink's durability
 * reports (dpchan_link_durable, the shape of store_on_durable()'s callback) go back to the lcore
 * that sent each record as DURABLE. The socket path is `dataplane.channel.path` of the same
 * gateway config (both programs read that one section, lib/dpchan/dpchan_conf.h).
 */
#ifndef EDGEGW_AGENT_DPCHAN_LINK_H
#define EDGEGW_AGENT_DPCHAN_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "dpchan_conf.h"
#include "dpchan_server.h"

struct agent_loop;
struct dpchan_link;

/* `dataplane.channel` of the gateway config at path (the rest of the file is not checked here);
 * 0, or -1 with "file:line:col: reason" in err. */
int dpchan_link_load_conf(const char *path, struct dpchan_conf *out, char *err, size_t errlen);
/* Listen at c->path and serve on loop: 0, or a negative errno. q2_path: the file of the QoS 2
 * origins held until the dataplane releases them (lib/dpchan/dpchan_q2.h; NULL: in memory). The
 * link lives until dpchan_link_close(), once the loop has stopped for good (its tick stays
 * registered). */
int dpchan_link_open(struct dpchan_link **out, struct agent_loop *loop, const struct dpchan_conf *c,
    const char *q2_path, const struct dpchan_sink_ops *sink, void *sink_arg);
/* The sink's report for its tokens first..last (status 0 durable, < 0 failed); arg is the link. */
void dpchan_link_durable(void *arg, uint64_t first, uint64_t last, int status);
void dpchan_link_close(struct dpchan_link *l);

/* dpchan_link_open() with the uplink's store as the sink (dpchan_store.c): records go in with
 * store_submit_from() under their local topic, their (boot id, lcore, ref) kept with them in the
 * spool (a QoS 2 record that a restarted dataplane sends again under the origin of its first
 * copy: under that origin); store_on_durable() reports go back. The records the store recovered
 * at open are made known to the server (dpchan_server_known, dpchan_server_known_q2 for QoS 2
 * ones): after a SIGKILL of the agent, what an lcore sends again is stored once. The QoS 2
 * origins are held in DPCHAN_Q2_FILE of the spool's directory until the dataplane releases
 * them. Open it right after store_open, before the loop runs. */
#define DPCHAN_Q2_FILE "dpchan-qos2.origins"
struct store;
int dpchan_link_open_store(struct dpchan_link **out, struct agent_loop *loop,
    const struct dpchan_conf *c, struct store *st);
struct dpchan_server *dpchan_link_server(struct dpchan_link *l);

#endif
