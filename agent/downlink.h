/*
 * downlink.h: cloud messages into the dataplane's broker. The uplink subscribes every filter of
 * the `uplink.downlink` rules (lib/rules) at each connect; a message on one becomes a publish
 * on its local topic, sent to one of the dataplane's lcores as a DOWN record over the channel
 * (lib/dpchan; the broker fans it out across lcores to the subscribed sensors, each at
 * min(QoS, its subscription)).
 *
 * The promise (docs/architecture.md, "Downlink"): downlink_deliver() returns 0 (the uplink then
 * acknowledges a QoS 1/2 message to the cloud: PUBACK, PUBREC) only once the gateway owns the
 * message: its DOWN frame is in the socket of a connected lcore, or it is on disk (fdatasync) in
 * the downlink spool (`<uplink.spool.dir>/downlink`) when the channel is down or full, replayed
 * in order when it is back. Otherwise it returns < 0 and the cloud sends it again after the next
 * reconnect. Every drop is counted in the store's counters (down_*, store_stats.def).
 */
#ifndef EDGEGW_AGENT_DOWNLINK_H
#define EDGEGW_AGENT_DOWNLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dpchan_server.h"
#include "rules.h"
#include "spool.h"

struct agent_loop;
struct store;
struct downlink;

/* Serve r's downlink rules over srv; spool_base (NULL: none) is the uplink spool's config: the
 * downlink spool lives in its directory's `downlink` folder, with a sixteenth of its bytes.
 * Counts in st's counters. 0 or a negative errno. Replays from the loop's tick. */
int downlink_open(struct downlink **out, struct agent_loop *loop, const struct rules *r,
    struct dpchan_server *srv, const struct spool_config *spool_base, struct store *st);
/* A reload's rules (the store's new set, store_set_rules): cloud messages arriving from now on go
 * by them. Messages already handed over or spooled are not looked at again. */
void downlink_set_rules(struct downlink *d, const struct rules *r);
/* A message from the cloud: 0 owned (or dropped and counted: acknowledge it), -ENOENT when no
 * downlink rule matches its topic, another < 0 when the gateway could not take it. */
int downlink_deliver(struct downlink *d, const char *topic, const uint8_t *payload, size_t len,
    uint8_t qos, bool retain);
/* Hand what the spool holds to the dataplane, while it takes it (also on each tick). */
void downlink_replay(struct downlink *d);
/* After the uplink is gone; before the store and the channel close. */
void downlink_close(struct downlink *d);

#endif
