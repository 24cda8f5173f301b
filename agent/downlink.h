/*
 * downlink.h: cloud messages into the dataplane's broker. The uplink subscribes every filter of
 * the `uplink.downlink` rules (lib/rules) at each connect; a message on one becomes a publish
 * on its local topic, sent to one of the dataplane's lcores as a DOWN record over the channel
 * (lib/dpchan; the broker fans it out across lcores to the subscribed sensors, each at
 * min(QoS, its subscription)).
 *
 * The promise (docs/architecture.md, "Downlink"): a QoS 1/2 message is acknowledged to the
 * cloud (PUBACK, PUBREC: downlink_deliver() returns 0, or owned_fn says so later) only once it
 * is on disk (the spool flusher's fdatasync, off the loop) in the downlink spool (`<uplink.spool.dir>/downlink`). The spool's records go to
 * one lcore in order as DOWN records carrying a ref (their sequence number above a base drawn
 * when the spool was created, so that refs keep growing past a spool removed by hand), and
 * each is released only when the dataplane answers (DOWN_ACK) that its broker took it:
 * delivered into its subscribers' queues (journaled where the broker persists state), stored
 * when retained, or matched by no subscription. What a connection did not answer before it
 * ended goes again, to the next lcore that connects, also after either process restarted; the
 * dataplane answers a record it took already without delivering it twice. QoS 2: the cloud's
 * packet id is kept on disk with the message (downlink_q2.h) until its PUBREL, so a resend
 * after an agent restart is answered and not delivered twice. QoS 0 goes live when nothing
 * waits before it (no answer awaited), else into the spool without waiting for the disk.
 * Without a spool a QoS 1/2 message is never owned. Every drop is counted in the store's
 * counters (down_*, store_stats.def).
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
/* A QoS 1/2 message downlink_deliver() answered DOWNLINK_OWN_LATER for (token: what it was
 * given) is on disk (rc 0: acknowledge it) or cannot be (rc < 0). Called on the loop, in the
 * order the messages came, never from inside downlink_deliver(). */
typedef void (*downlink_owned_fn)(
    void *arg, uint64_t token, uint8_t qos, uint16_t packet_id, int rc);
void downlink_set_owned(struct downlink *d, downlink_owned_fn fn, void *arg);
/* fn(arg) on the loop after each of the spool's commits (also one that only synced a QoS 2 id
 * freed by downlink_q2_release: downlink_q2_durable may now say yes). */
void downlink_set_on_commit(struct downlink *d, void (*fn)(void *arg), void *arg);
#define DOWNLINK_OWN_LATER 1
/* A message from the cloud (packet_id: its QoS 2 packet id, else 0; token: the uplink's name for
 * it): 0 owned (or dropped and counted: acknowledge it), DOWNLINK_OWN_LATER when a QoS 1/2
 * message waits for the spool's next commit (the owned_fn says; without one set, the loop
 * waits for that commit here), -ENOENT when no downlink rule matches its topic, another < 0
 * when the gateway could not take it. */
int downlink_deliver(struct downlink *d, const char *topic, const uint8_t *payload, size_t len,
    uint8_t qos, bool retain, uint16_t packet_id, uint64_t token);
/* The cloud's PUBREL for packet_id (0: the cloud lost the session, every id): forgotten on disk;
 * 0, or < 0 when it could not be (then PUBCOMP is withheld: the cloud sends PUBREL again). With
 * need (and an id), the loop does not wait: the id is freed and made durable by the spool's next
 * commit, requested now; PUBCOMP waits until downlink_q2_durable(need). */
int downlink_q2_release(struct downlink *d, uint16_t packet_id, uint64_t *need);
bool downlink_q2_durable(const struct downlink *d, uint64_t need);
/* Every QoS 2 packet id owned and not released (put back into the MQTT client at start). */
void downlink_q2_each(struct downlink *d, void (*fn)(void *arg, uint16_t packet_id), void *arg);
/* The messages waiting for the disk whose commit ended: owned_fn says (in order); then send what
 * the spool holds to the dataplane, while it takes it, and commit the releases its answers made.
 * Also after each of the spool's commits and on each tick. */
void downlink_replay(struct downlink *d);
/* After the uplink is gone; before the store and the channel close. */
void downlink_close(struct downlink *d);

#endif
