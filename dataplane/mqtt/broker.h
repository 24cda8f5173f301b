/*
 * broker.h: the MQTT broker core (3.1.1 and 5.0) that runs on each dataplane worker lcore.
 *
 * Transport-agnostic: the dataplane TCP (dataplane/svc/mqtt_tcp.c) or the kernel
 * socket test harness (tests/integration/mqtt/broker_kernel_harness.c) open a connection, feed
 * it the bytes they received and call back nothing else; the broker answers through the ops
 * table. No DPDK and no locks here: one struct broker belongs to one thread. Packets are
 * decoded with lib/mqtt. Design, limits and counters: docs/broker.md.
 */
#ifndef EDGEGW_BROKER_H
#define EDGEGW_BROKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter_kind.h"
#include "mqtt_codec.h"

struct broker;
struct broker_conn;

/* What a session at its queue limit (max_queue) does with one more QoS 1/2 message while its
 * client is connected (docs/broker.md). QoS 0 is dropped at the limit whatever this says. */
enum broker_queue_full {
	BROKER_QUEUE_HOLD,        /* queue it, and stop reading from the publisher until the
				   * subscriber drains (TCP backpressure): nothing acknowledged is
				   * lost; a subscriber that makes no progress for stall_timeout_ms
				   * is disconnected (0x97) */
	BROKER_QUEUE_DROP_OLDEST, /* drop the oldest queued message, counted */
	BROKER_QUEUE_DROP_NEW,    /* drop this one, counted */
};

/* Everything a remote peer can make us keep is bounded here; every bound hit is counted. */
struct broker_config {
	uint32_t max_conns;    /* open connections (CONNECTing included) */
	uint32_t max_sessions; /* sessions, live or persisted */
	uint32_t max_subs_per_session;
	uint16_t max_filter_levels;  /* levels of a topic filter (and depth of a match) */
	uint32_t max_queue;          /* messages queued per session (offline or blocked) */
	uint16_t max_inflight;       /* outgoing QoS 1/2 unacknowledged per session */
	uint16_t receive_max;        /* incoming QoS 2 awaiting PUBREL (our Receive Maximum) */
	uint32_t max_packet_size;    /* bytes, whole packet */
	uint32_t max_retained;       /* retained messages */
	uint64_t max_retained_bytes; /* their payload bytes */
	uint16_t keepalive_max_s; /* larger (or 0) asks are lowered in 5.0, as Server Keep Alive */
	uint16_t topic_alias_max; /* inbound aliases a 5.0 client may use */
	uint16_t topic_alias_out_max; /* aliases we assign on deliveries, at most what the client
					 * allows (its Topic Alias Maximum); 0: never */
	uint32_t
	    session_expiry_max_s; /* cap on what a client asks; 3.1.1 persistent sessions get it */
	uint32_t connect_timeout_ms;      /* from open to CONNECT */
	uint32_t sys_interval_ms;         /* $SYS/broker/... publication period, 0: never */
	uint16_t client_id_max;           /* bytes */
	uint32_t xlcore_claim_timeout_ms; /* several lcores: how long a resuming CONNECT waits
					   * for the others to send its session (0: 1000) */
	uint32_t stall_timeout_ms;        /* queue_full hold: a subscriber over its queue limit that
				    * sends nothing for this long is disconnected (0: 30000) */
	uint8_t queue_full;               /* enum broker_queue_full */
	uint32_t state_sync_ms;           /* state across restarts: the longest a change waits
					   * for its fdatasync (0: 1000) */
	char state_dir[256]; /* where that state lives (broker_persist_open); "": nowhere. The
			      * library leaves it empty; the config's default is
			      * BROKER_STATE_DIR_DEFAULT */
};
#define BROKER_STATE_DIR_DEFAULT "/var/lib/edgegw/broker"

void broker_config_defaults(struct broker_config *cfg);
/* 0 when every field is within the range the config parser accepts, else -EINVAL with the
 * offending field and why in err (for programs that fill the struct themselves). */
int broker_config_check(const struct broker_config *cfg, char *err, size_t errlen);
/* Its ranges are the config parser's (broker_conf.c, broker_conf.h): one table for both. */

/* What the broker asks of the transport. ctx is the transport's per-connection context. */
struct broker_transport_ops {
	/* Queue n slices as one piece of the stream; 0, or < 0 when the connection is dead. */
	int (*send)(void *ctx, const struct mqtt_iov *iov, size_t n);
	/* Bytes send() accepts now without blocking. */
	size_t (*send_space)(void *ctx);
	/* Close after what was sent. The broker has forgotten ctx: no call for it follows, and
	 * the transport must not pass this connection to the broker again. reason is the MQTT 5.0
	 * reason code (0 for a normal close). */
	void (*close)(void *ctx, uint8_t reason);
	/* Optional (several lcores). A connection whose CONNACK waited for its session from
	 * another lcore takes input again: what the transport holds for it (bytes the broker
	 * left unconsumed meanwhile) must be passed to broker_conn_input() after the current
	 * broker call returns, not from inside this callback. Without it, they are passed with
	 * the next bytes received. */
	void (*input_ready)(void *ctx);
};

/* Counters, one line each in broker_counters.def. */
enum broker_counter {
#define BROKER_C(name, kind, desc) BROKER_C_##name,
#include "broker_counters.def"
#undef BROKER_C
	BROKER_C_COUNT
};

struct broker *broker_create(
    const struct broker_config *cfg, const struct broker_transport_ops *ops, uint64_t now_ms);
void broker_destroy(struct broker *b);

/* A new transport connection; NULL (counted) when max_conns is reached: close it then. */
struct broker_conn *broker_conn_open(struct broker *b, void *transport_ctx, uint64_t now_ms);
/*
 * Bytes received, as segments. Whole packets are handled; *consumed tells how many bytes were
 * used: the transport keeps the rest and passes it again, with more, next time. Returns 0, or
 * < 0 when the broker closed the connection (ops->close was called; forget conn).
 */
int broker_conn_input(struct broker_conn *conn, const struct mqtt_iov *segs, size_t n,
    size_t *consumed, uint64_t now_ms);
/* True while the broker does not read the connection's input: its CONNACK waits for its
 * session from another lcore, or its input is held back (its acknowledgements do not fit its
 * send buffer, a subscriber it feeds is at its queue limit, or another lcore's queue is full).
 * input_ready says when it reads again; a FIN seen meanwhile should wait until then. */
bool broker_conn_held(const struct broker_conn *conn);
/* The transport has room again (after send_space was short): queued messages go out, and
 * input held for lack of room to acknowledge it is read again (input_ready). */
void broker_conn_writable(struct broker_conn *conn, uint64_t now_ms);
/* The peer closed or the connection broke: an abrupt close (the will is published). */
void broker_conn_closed(struct broker_conn *conn, uint64_t now_ms);

/*
 * $SYS across instances: a board with one slot per instance. Each instance writes its own
 * figures into its slot at every $SYS interval (plain relaxed stores, no lock); instance 0 sums
 * the slots and publishes the totals under Mosquitto's names ($SYS/broker/clients/connected, ...),
 * while each instance still publishes its own under $SYS/broker/lcore/<n>/. Without a board (one
 * instance, or tests) an instance publishes its own figures: under Mosquitto's names when alone.
 */
struct broker_sys_board;

struct broker_sys_board *broker_sys_board_new(uint32_t n);
void broker_sys_board_free(struct broker_sys_board *board);
/* Attach before the first tick; the board outlives every instance attached to it. */
void broker_sys_attach(struct broker *b, struct broker_sys_board *board, uint32_t self);

/*
 * The operator's view (edgegwctl over DPDK telemetry; broker_admin.c), on the instance's own
 * lcore. Listings call fn with one line per entry (at most max, after skipping skip, in a walk
 * that is stable while nothing changes) and return how many entries there are in all:
 * sessions "ID online|offline vVERSION subs= queued= inflight= expiry_s=", subscriptions
 * "ID FILTER qos=N [no_local] [rap]", retained "TOPIC qos=N bytes=N".
 */
typedef void (*broker_line_fn)(void *arg, const char *line);
size_t
broker_admin_sessions(struct broker *b, size_t skip, size_t max, broker_line_fn fn, void *arg);
size_t
broker_admin_subscriptions(struct broker *b, size_t skip, size_t max, broker_line_fn fn, void *arg);
size_t
broker_admin_retained(struct broker *b, size_t skip, size_t max, broker_line_fn fn, void *arg);
/* Disconnect the client with this id (5.0: DISCONNECT 0x98 Administrative action; its will is
 * published as for any close the client did not ask for); purge: its session goes too (also
 * when offline). 1 when the session is on this instance, else 0. Counted ADMIN_KICK. */
int broker_admin_kick(struct broker *b, const char *id, size_t len, bool purge, uint64_t now_ms);
/* Clear topic's retained message as a client would (an empty retained PUBLISH from the broker,
 * which reaches its subscribers and every instance); 1 when there was one, 0 when not, -1 out of
 * memory. Call it on one instance only. Counted ADMIN_RETAINED_DELETED. */
int broker_admin_retained_delete(struct broker *b, const char *topic, size_t len, uint64_t now_ms);
/* Publish from the gateway itself (the operator, a cloud downlink): to this instance's
 * subscribers and every other instance's, at qos (each delivery at min(qos, subscription)),
 * retained if asked. 1 when a subscription matched, 0 when none, -EINVAL for a topic a client
 * could not publish to (wildcards, bad UTF-8, $SYS), -E2BIG over max_packet_size, -ENOMEM.
 * Call it on one instance only. Counted ADMIN_PUBLISHED. */
int broker_admin_publish(struct broker *b, const char *topic, size_t tlen, const void *payload,
    size_t plen, uint8_t qos, bool retain, uint64_t now_ms);
/* The same for a cloud message the agent passed down as DOWN record ref (its downlink spool's
 * sequence number, increasing; dpchan_proto.h): ref is journaled in the same write as what the
 * publish journaled, after it (a torn write loses the ref first: a duplicate, never a loss), so
 * that after a restart broker_down_ref() says it was taken. ref 0: not recorded. */
int broker_down_publish(struct broker *b, uint64_t ref, const char *topic, size_t tlen,
    const void *payload, size_t plen, uint8_t qos, bool retain, uint64_t now_ms);
/* The highest DOWN ref this instance took, recovered from its state directory at
 * broker_persist_open (0: none, or no state directory). */
uint64_t broker_down_ref(const struct broker *b);

/* Timers: keepalive, connect timeout, will delay, session and message expiry, $SYS. */
void broker_tick(struct broker *b, uint64_t now_ms);

/*
 * Cross-lcore fan-out (docs/broker.md). Each worker lcore runs its own struct broker; a message
 * published on one is posted to every other instance, which routes it to its own subscribers
 * (and stores it when retained). The dataplane backs post() with one rte_ring per instance
 * (multi-producer, single consumer) and calls broker_xlcore_input() for what it dequeues; the
 * library only needs the ops, so tests back them with plain arrays. No locks: the message's
 * reference count is the only thing touched from two lcores, atomically.
 */
struct broker_xmsg;

struct broker_xlcore_ops {
	/* Queue m for instance dst; false when its queue is full: the broker keeps m and tries
	 * again (broker_xlcore_retry), holding back the publishers meanwhile. */
	bool (*post)(void *xctx, uint32_t dst, struct broker_xmsg *m);
};

/* Join a group of n instances as number self (0..n-1). Before any connection is opened. */
void broker_xlcore_attach(
    struct broker *b, uint32_t self, uint32_t n, const struct broker_xlcore_ops *ops, void *xctx);
/* A message another instance posted here: stored if retained, delivered, released. */
void broker_xlcore_input(struct broker *b, struct broker_xmsg *m, uint64_t now_ms);
/* Post again what other instances' full queues refused; cheap when nothing waits. The
 * transport calls it every loop (broker_tick does too). */
void broker_xlcore_retry(struct broker *b, uint64_t now_ms);
/* True while a session here is over its queue limit and holds back its publishers: stop
 * taking messages from other instances (their publishers are then held by their full queue
 * to this instance) until it is false again. */
bool broker_xlcore_paused(const struct broker *b);
/* Release a message without handling it (a queue drained at shutdown). */
void broker_xmsg_free(struct broker_xmsg *m);

/*
 * Store and forward (docs/broker.md). With an uplink attached, a client's PUBLISH that the
 * uplink rules send up is handed to it after local delivery; under a durable rule its PUBACK
 * (QoS 1) or PUBREC (QoS 2) is sent only once broker_uplink_durable() says so, and while the
 * uplink cannot take one more the publisher's input is held (HOLD_UPLINK). The dataplane backs
 * the ops with its lcore's channel to the agent (lib/dpchan); tests with a fake.
 */
enum broker_uplink_class {
	BROKER_UPLINK_NONE,        /* stays local */
	BROKER_UPLINK_BEST_EFFORT, /* sent up when the channel has room, acknowledged at once */
	BROKER_UPLINK_DURABLE,     /* QoS 1/2: acknowledged once durable (QoS 0: best effort) */
};

/* Where a durable QoS 2 message was first sent up from (the dataplane's channel: its start's
 * boot id, lcore and the ref): kept with the packet id awaiting PUBREL (journaled), so that a
 * sensor's resend after a restart goes up again under it and the agent does not store it twice
 * (docs/broker.md, "Store and forward"). */
struct broker_uplink_origin {
	uint64_t boot_id;
	uint64_t ref;
	uint32_t lcore;
};
/* The bytes an origin may add to a record (room() is asked for them on top of the payload). */
#define BROKER_UPLINK_ORIGIN_LEN 20u

struct broker_uplink_ops {
	/* Which way a client's PUBLISH on this topic at this QoS goes (the uplink rules). */
	enum broker_uplink_class (*wants)(void *uctx, const char *topic, size_t len, uint8_t qos);
	/* Would a record of this size be taken now: 0; -ENOTCONN or -ENOBUFS (the publisher is
	 * held until broker_uplink_ready); -EMSGSIZE: never (closed, 0x95). */
	int (*room)(void *uctx, size_t topic_len, size_t payload_len);
	/* Take a record: ref 0 best effort, else the ref broker_uplink_durable answers; as: NULL,
	 * or (QoS 2) the origin of the message's first copy, sent up before a restart; 0 or
	 * room's errors. */
	int (*submit)(void *uctx, uint64_t ref, const struct broker_uplink_origin *as, uint8_t qos,
	    bool retain, const char *topic, size_t topic_len, const uint8_t *payload,
	    size_t payload_len);
	/* Optional: the origin a record submitted now under ref has. Without it QoS 2 ids are
	 * journaled only once durable, and nothing is released. */
	void (*origin)(void *uctx, uint64_t ref, struct broker_uplink_origin *o);
	/* Optional: the sensor's QoS 2 exchange of the message first sent up under o is complete
	 * (PUBREL taken, or its session ended): the agent may forget o. */
	void (*release)(void *uctx, const struct broker_uplink_origin *o);
};

/* max_pending: durable messages awaiting their answer (rounded up to a power of 2); 0 or
 * -ENOMEM. Before any connection is opened. */
int broker_uplink_attach(
    struct broker *b, const struct broker_uplink_ops *ops, void *uctx, uint32_t max_pending);
void broker_uplink_detach(struct broker *b);
/* fn for the origin of each incoming QoS 2 id awaiting PUBREL here (every session's, journaled
 * or restored at start); their number. At start, what the agent is told this instance holds of
 * earlier starts (dpchan_client_held). */
uint32_t broker_uplink_held(
    struct broker *b, void (*fn)(void *arg, const struct broker_uplink_origin *o), void *arg);
/* The answer for refs first..last: 0 durable (acks go out), < 0 failed (not acknowledged:
 * the publisher is closed so that it sends the message again). */
void
broker_uplink_durable(struct broker *b, uint64_t first, uint64_t last, int status, uint64_t now_ms);
/* The uplink may take records again (connected, or room came back): held publishers go on. */
void broker_uplink_ready(struct broker *b, uint64_t now_ms);
/* The PUBRECs that waited for the journal's fdatasync of their origin (durable QoS 2 of a
 * persistent session, with a state directory) go once it ended; asks for the sync again when
 * the syncer was busy. Cheap when none waits: the worker loop calls it at every iteration (and
 * broker_tick does). */
void broker_uplink_sync_poll(struct broker *b, uint64_t now_ms);
/* Durable messages awaiting their answer. */
uint32_t broker_uplink_pending(const struct broker *b);

/*
 * State across restarts (persist.c, docs/broker.md): retained messages, persistent sessions
 * (subscriptions, incoming QoS 2 ids awaiting PUBREL, queued and in-flight QoS 1/2 messages)
 * journaled in dir (created if need be) as broker-<instance>.journal and .snap, and recovered
 * from there now. Call it after broker_xlcore_attach and before any connection; instance
 * names the files (the worker's index). sync_ms: the longest a change waits for its
 * fdatasync (0: 1000). 0, or a negative errno (-EBUSY: another process has the directory,
 * -EPROTONOSUPPORT: written by a newer version; logged). broker_destroy closes it.
 * What a broker call changed is written (page cache) when the call returns, once for the
 * whole call: the promise that nothing a client was told is lost to a SIGKILL needs a
 * transport whose send() queues and transmits after the call (the dataplane's TCP does:
 * tcp_write queues, the lcore's loop flushes the connections after the burst).
 */
int broker_persist_open(
    struct broker *b, const char *dir, uint32_t instance, uint32_t sync_ms, uint64_t now_ms);
void broker_persist_close(struct broker *b);
/* The journal's periodic fdatasync and a compaction's file work (the snapshot written, synced
 * and renamed, the new journal synced and renamed) run on a thread of its own per instance (the
 * lcore hands it a dup of the journal, or the serialized snapshot, and goes on), started with
 * this (NULL: pthread_create). The dataplane
 * names DPDK's control-thread creation, so that it runs off the worker cores. Set before
 * broker_persist_open. */
typedef int (*broker_spawn_fn)(pthread_t *th, const char *name, void *(*fn)(void *), void *arg);
extern broker_spawn_fn broker_persist_spawn;
/* The fdatasync the syncer thread calls: its periodic syncs, and a compaction's syncs of the
 * journals and the snapshot (tests: a slow or failing one). */
extern int (*broker_persist_fdatasync)(int fd);
/* The wall clock (CLOCK_REALTIME, ms) the state's deadlines are written in (tests: time spent
 * down). */
extern uint64_t (*broker_persist_wall_ms)(void);
/* Wait for a compaction the syncer is writing, and take its result as the next tick would
 * (tests: a tick's compaction done before the tick returns). */
void broker_persist_settle(struct broker *b);

/* What the broker holds now (gauges, unlike the counters): records and the parts of sessions
 * that exist only while used. Read from another thread, each value is a plain load. */
struct broker_gauges {
	uint32_t conns, sessions, subscriptions;
	uint32_t windows;     /* sessions with their outgoing QoS 1/2 window allocated */
	uint32_t qos2_tables; /* sessions with a table of incoming QoS 2 ids */
	uint32_t cold;        /* sessions with a will or an open claim (their cold part) */
	uint32_t queued;      /* messages in sessions' queues */
	uint32_t held;        /* connections whose input is held back (backpressure) */
	uint32_t xpending;    /* messages waiting for room in another instance's queue */
	uint32_t xoutbox;     /* QoS 1/2 posts to other instances kept until they journaled them
			       * (state directory: docs/broker.md, "Messages that cross lcores") */
};
void broker_gauges_get(const struct broker *b, struct broker_gauges *g);

uint64_t broker_counter_get(const struct broker *b, enum broker_counter c);
const char *broker_counter_name(enum broker_counter c);
const char *broker_counter_desc(enum broker_counter c);
enum counter_kind broker_counter_kind(enum broker_counter c);

#endif
