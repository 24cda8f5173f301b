/*
 * broker_int.h: types and functions shared by the broker core's files (not for other modules:
 * they use broker.h). Data flow of one PUBLISH: read_handle.c (bytes, decode, dispatch) ->
 * handle_publish.c (acks) -> publish.c (retained, routing, the other lcores) -> subs.c
 * (matching) -> session.c (deliver, queue, inflight) -> send_publish.c and send.c (through
 * the transport ops). Connections are conn.c's, time timer.c's, $SYS sys_tree.c's, the
 * instance itself broker.c's; the cross-lcore files share xlcore_int.h.
 */
#ifndef EDGEGW_BROKER_INT_H
#define EDGEGW_BROKER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/queue.h>

#include "broker.h"
#include "mqtt_codec.h"
#include "mqtt_topic_tree.h"

/* A message: topic, payload and pass-through properties copied once into one block, shared
 * by reference by every queue and inflight slot that holds it (fan-out copies nothing). */
struct broker_msg {
	uint32_t refcnt;
	uint8_t xkind; /* XK_PUBLISH (0): see xlcore_int.h */
	uint8_t qos;
	bool retain;
	uint64_t expiry_ms; /* absolute, 0: none */
	uint64_t origin;    /* publishing session's id (no local), 0: the broker */
	struct mqtt_str topic;
	const uint8_t *payload;
	uint32_t payload_len;
	uint32_t size; /* bytes allocated */
	/* 5.0 properties passed through to subscribers */
	uint8_t pfi;
	bool has_pfi;
	/* A copy for one session matching through several subscriptions with identifiers: all
	 * of them go in its one PUBLISH (5.0 3.3.4), stored at the end of the block. */
	uint16_t n_sub_ids;
	uint16_t xfrom; /* the instance it was published on (xlcore.c: retained order) */
	uint64_t xseq;  /* its number in xfrom's outbox (xlcore.c), 0: not in one */
	struct mqtt_str content_type, response_topic, correlation;
	struct mqtt_user_prop *user;
	uint16_t n_user;
};

struct broker_msg *
broker_msg_new(struct broker *b, struct mqtt_str topic, const struct mqtt_iov *payload,
    size_t n_payload, const struct mqtt_props *props, uint64_t now_ms);
static inline const uint32_t *
broker_msg_sub_ids(const struct broker_msg *m)
{
	return (const uint32_t *)((const char *)m + m->size - (size_t)m->n_sub_ids * 4u);
}
/* A copy of m carrying these Subscription Identifiers (NULL: out of memory, counted). */
struct broker_msg *broker_msg_with_sub_ids(
    struct broker *b, const struct broker_msg *m, const uint32_t *ids, uint16_t n);
/* Fault injection for the unit tests: the next n message allocations fail (0: none). */
extern unsigned broker_msg_fail_next;
void broker_msg_ref(struct broker_msg *m);
void broker_msg_unref(struct broker_msg *m);
/* Give back this thread's cached message blocks (at broker_destroy). */
void broker_msg_cache_drain(void);
bool broker_msg_expired(const struct broker_msg *m, uint64_t now_ms);

/* ---- topic tree (lib/mqtt's trie, subs.c) ---- */
struct broker_session;

/* One shared subscription group, entered in the trie once: a match picks one member. With
 * several instances, the group's owner instance (a hash of its filter) alone picks, among the
 * instances that have members, and the chosen one picks its member (xlcore.c). */
struct share_group {
	struct share_group *next;
	char *filter; /* "$share/{group}/{filter}" */
	uint16_t filter_len;
	bool count_dirty;           /* not owner: our member count did not reach the owner (out of
			   * memory), posted again at the next tick; kept until it did */
	struct broker_sub *members; /* local ones, linked by next_in_group */
	uint32_t n_members;
	uint32_t rr;      /* round robin position among local members */
	uint32_t *remote; /* owner only: members on each other instance */
	uint32_t n_remote;
	uint32_t rr_inst; /* owner only: round robin position among instances */
};

struct broker_sub {
	struct broker_sub *next_in_sess, *next_in_group;
	struct broker_session *s;
	struct share_group *group; /* NULL: ordinary subscription */
	char *filter;              /* as subscribed, "$share/..." included */
	uint16_t filter_len;
	uint32_t sub_id; /* 5.0 subscription identifier, 0: none */
	uint8_t qos;
	bool no_local, rap; /* rap: retain as published */
};

typedef void (*broker_subs_visit_fn)(struct broker_sub *sub, void *arg);

/* Enter sub (its filter) in the trie; 0, -ENOMEM or -E2BIG (too many levels). */
int broker_subs_insert(struct broker *b, struct broker_sub *sub);
void broker_subs_remove(struct broker *b, struct broker_sub *sub);
/* Every ordinary subscription matching m's topic, and one member per matching shared group
 * (with several instances: only on the group's owner, which may hand it to another instance). */
void broker_subs_match(struct broker *b, struct broker_msg *m, broker_subs_visit_fn fn, void *arg);
/* Cross-lcore shared groups (xlcore.c calls these; subs.c calls the broker_xlcore_group_* ones).
 * Owner: instance from now has count members in the group. */
void broker_subs_group_remote(
    struct broker *b, const char *filter, size_t len, uint32_t from, uint32_t count);
/* A delivery for the group: from the owner (one local member gets it; none left: it goes
 * back to the owner), or, on the owner, one sent back by from (which has no member now: the
 * owner picks again). hops: how many times it crossed already. */
void broker_subs_group_deliver(struct broker *b, const char *filter, size_t len,
    struct broker_msg *m, uint32_t from, uint8_t hops);
/* Owner: a member of g here leaves with its session for instance to; count it there at
 * once (that instance's own count, after it restored the session, replaces the guess). */
void broker_subs_group_moved(struct broker *b, struct share_group *g, uint32_t to);
/* Post our member counts that did not reach their owner (broker_xlcore_tick). */
void broker_subs_group_counts_retry(struct broker *b);
bool broker_xlcore_group_owner(const struct broker *b, const char *filter, size_t len);
/* Tell the owner how many members g has here now; false when it could not be posted. */
bool broker_xlcore_group_member(struct broker *b, const struct share_group *g);
/* A delivery for the group filter to instance dst (the owner's pick, or back to the owner). */
void broker_xlcore_group_deliver(struct broker *b, uint32_t dst, const char *filter, size_t len,
    struct broker_msg *m, uint8_t hops);
/* A delivery for the group filter, with no member here, back to the group's owner. */
void broker_xlcore_group_bounce(
    struct broker *b, const char *filter, size_t len, struct broker_msg *m, uint8_t hops);
/* One delivery to one subscription (No Local, min QoS, Retain As Published). */
void broker_deliver_sub(struct broker_sub *sub, struct broker_msg *m);

/* ---- sessions ---- */
enum slot_state {
	SLOT_FREE,
	SLOT_WAIT_PUBACK,
	SLOT_WAIT_PUBREC,
	SLOT_WAIT_PUBCOMP
};

struct out_slot {
	struct broker_msg *msg; /* NULL once PUBREC came (only the PUBREL remains) */
	uint16_t pid;
	uint8_t qos, state;
	bool retain, need_send; /* need_send: (re)send when the connection can take it */
	uint32_t sub_id;
	uint32_t seq; /* send order: redelivery keeps it (spec 4.6) */
	uint32_t did; /* its entry in the state journal (persist.c), 0: none */
};

/* A message waiting in a session's queue (sys/queue.h STAILQ: the session's head is in its
 * block, which never moves: allocated once in broker_session_create, never copied or
 * reallocated; a session that goes to another lcore or comes back from the state journal is
 * a new block whose queue is built again entry by entry). */
struct qent {
	STAILQ_ENTRY(qent) next;
	struct broker_msg *msg;
	uint8_t qos;
	bool retain;
	uint32_t sub_id;
	uint32_t did; /* its entry in the state journal (persist.c), 0: none */
};

/* What few sessions need, kept out of the session's block and allocated on use: the will
 * (stored at CONNECT, pending after the connection ends with a Will Delay), and an open claim
 * of the session on the other lcores with the CONNACK it holds (xlcore_session.c). Freed when
 * neither is left (broker_session_cold_put). */
struct session_cold {
	struct broker_msg *will;
	uint8_t *connack;    /* the CONNACK to send when the claim ends, present 0 */
	uint64_t will_at_ms; /* pending delayed will, 0: none */
	uint64_t claim_deadline_ms;
	uint32_t will_delay_s;
	uint32_t will_expiry_s; /* its Message Expiry Interval, from publication (will_expires) */
	uint32_t claim_pending; /* answers still to come: the CONNACK waits for them */
	uint16_t connack_len;
	bool claim_found; /* one of them brought the session */
	bool will_expires;
	bool will_journaled; /* the pending delayed will is in the state journal (persist.c) */
	uint16_t n_rx_up, rx_up_cap;
	struct broker_rx_up *rx_up; /* incoming QoS 2 ids sent up, with their origin (uplink.c) */
};

/* An incoming QoS 2 id awaiting PUBREL whose message went up to the agent under o (uplink.c):
 * until confirmed (the agent said durable), a resend of it after a restart goes up again under
 * o; at PUBREL, o is released. */
struct broker_rx_up {
	struct broker_uplink_origin o;
	uint16_t pid;
	bool confirmed;
};

struct broker_session {
	/* pointers, then 64-bit, 32-bit and 16-bit fields: no padding holes (an idle session
	 * costs this struct and its client id, in one block). All sessions are reached through
	 * the client id hash (broker_tick walks its buckets). */
	struct broker_session *hnext; /* client id hash chain */
	struct broker *b;
	struct broker_conn *conn; /* NULL while offline */
	struct broker_sub *subs;
	struct out_slot *inflight; /* cfg.max_inflight slots, while any is in use */
	STAILQ_HEAD(, qent) queue; /* STAILQ_INIT in broker_session_create */
	uint16_t *rx_qos2;         /* incoming QoS 2 ids awaiting PUBREL, while any */
	struct session_cold *cold; /* will, open claim: NULL when neither */
	uint64_t id;
	uint64_t expire_at_ms;  /* while offline, 0: not set */
	uint32_t claim_seq;     /* the last claim this session made (xlcore_session.c), 0: none */
	uint32_t claim_pub_seq; /* b->pub_seq (low 32 bits) when it went out */
	uint32_t route_gen;     /* b->route_gen of the last message matched (broker_route) */
	uint32_t n_subs;
	uint32_t next_seq;
	uint32_t qlen;
	uint32_t expiry_s;
	uint32_t n_up;          /* uplink ring entries holding it (QoS 2 PUBLISHes, uplink.c) */
	uint64_t over_since_ms; /* queue_full hold: over max_queue since (or since the last
				 * progress), publishers held on it; 0: not over */
	uint32_t next_did;      /* the last journal entry id given to a message of it (persist.c) */
	uint16_t id_len;
	uint16_t n_inflight, next_pid;
	uint16_t n_rx_qos2, rx_qos2_cap;
	bool persisted;   /* in the state journal (persist.c): a restart finds it again */
	char client_id[]; /* id_len bytes and a NUL, in the same block */
};

/* The session's cold part, allocated if need be (NULL: out of memory, counted). */
struct session_cold *broker_session_cold_get(struct broker_session *s);
/* Free the cold part if nothing is left in it. */
void broker_session_cold_put(struct broker_session *s);
static inline struct broker_msg *
session_will(const struct broker_session *s)
{
	return s->cold != NULL ? s->cold->will : NULL;
}
static inline uint64_t
session_will_at(const struct broker_session *s)
{
	return s->cold != NULL ? s->cold->will_at_ms : 0;
}
static inline uint32_t
session_claim_pending(const struct broker_session *s)
{
	return s->cold != NULL ? s->cold->claim_pending : 0;
}

struct broker_session *broker_session_find(struct broker *b, const char *id, size_t len);
struct broker_session *broker_session_create(struct broker *b, const char *id, size_t len);
void broker_session_destroy(struct broker_session *s);
/* Deliver one message to a session at qos (already min'ed): send, queue or drop (counted). */
void broker_session_deliver(
    struct broker_session *s, struct broker_msg *m, uint8_t qos, bool retain, uint32_t sub_id);
/* Send what waits: inflight marked need_send first, then the queue. */
void broker_session_drain(struct broker_session *s);
/* A reconnect: every inflight slot is sent again (PUBLISH with DUP, or PUBREL). */
void broker_session_resume(struct broker_session *s);
struct out_slot *broker_session_slot(struct broker_session *s, uint16_t pid);
void broker_session_slot_free(struct broker_session *s, struct out_slot *slot);
/* The connection went away: will, expiry. */
void broker_session_offline(struct broker_session *s, bool send_will, uint64_t now_ms);
void broker_session_tick(struct broker_session *s, uint64_t now_ms);
void broker_session_unsubscribe_all(struct broker_session *s);
/* A subscription from a moved session; the new one, NULL when it existed or was refused. */
struct broker_sub *broker_session_sub_merge(
    struct broker_session *s, const struct mqtt_subscription *o, uint32_t sub_id);
/* Put back an inflight slot that came from another lcore (same packet id and state, resent
 * with DUP or as PUBREL at resume); false when the window has no room. */
bool broker_session_slot_restore(struct broker_session *s, const struct out_slot *o);
/* Room in the table of incoming QoS 2 ids for one more, allocated or grown if need be (3.1.1
 * has no Receive Maximum: it grows up to every packet id); false (counted) out of memory. */
bool broker_session_rx_qos2_room(struct broker_session *s);
/* Remember an incoming QoS 2 packet id awaiting PUBREL; false when full or out of memory. */
bool broker_session_rx_qos2_add(struct broker_session *s, uint16_t pid);
/* Every lcore answered the claim of s (or it timed out): send the held CONNACK (session
 * present when one was here or came), resend what is owed, take input again. */
void broker_connect_claim_done(struct broker_session *s);

/* ---- connections ---- */
/* CONN_CLAIMING: CONNECT accepted, its CONNACK held (in the session's cold part) until the other lcores answer the session
 * claim (xlcore_session.c); no input is read and nothing is sent meanwhile. */
enum conn_state {
	CONN_NEW,
	CONN_CLAIMING,
	CONN_ACTIVE,
	CONN_DYING
};

/* Why a connection's input is held back (bits of conn->hold; docs/broker.md, backpressure):
 * nothing more is decoded until every reason is gone, and the transport leaves the bytes in
 * its receive buffer (the TCP window closes on the client). */
enum conn_hold {
	HOLD_ACK_ROOM = 1u << 0,  /* its next answer does not fit its send buffer: writable */
	HOLD_SUB_QUEUE = 1u << 1, /* a session it published to is over max_queue (held_on) */
	HOLD_XLCORE = 1u << 2,    /* a message of its waits for another lcore's queue */
	HOLD_UPLINK = 1u << 3,    /* a durable-rule PUBLISH and the uplink cannot take it now
				   * (channel down or pending bound): broker_uplink_ready */
};

struct broker_conn {
	/* pointers, the decoder, then smaller fields: no padding holes (one per connection) */
	struct broker_conn *next, *prev;   /* live list, then the dying list */
	struct broker_conn *hnext, *hprev; /* b->held: while hold != 0 */
	struct broker_session *held_on;    /* HOLD_SUB_QUEUE: the session over its limit */
	struct broker_conn *wnext, *wprev; /* timer wheel slot (keepalive, connect timeout) */
	struct broker *b;
	void *ctx;
	struct broker_session *s;
	struct mqtt_str *aliases; /* topic aliases: cfg.topic_alias_max inbound, then
					     * alias_out_max outbound (broker_alias_table()) */
	struct mqtt_decoder dec;
	uint64_t opened_ms, last_rx_ms;
	uint64_t owed_since_ms; /* an owed ack (n_owed) last went out, or began to wait (0: none) */
	uint32_t client_max_packet;
	uint16_t keepalive_s;
	uint16_t client_recv_max;
	uint16_t alias_out_max;  /* aliases we may assign (5.0: min(client's, config)) */
	uint16_t alias_out_next; /* the next one to (re)assign, round robin */
	uint16_t wslot;          /* timer wheel slot, BROKER_WHEEL_NONE: in none */
	uint8_t state;           /* enum conn_state */
	uint8_t close_reason;
	uint8_t version;
	uint8_t hold;              /* enum conn_hold bits */
	bool transport_gone : 1;   /* the transport closed it: no ops->close */
	bool send_failed : 1;      /* a send failed: nothing more is sent (ops->close follows) */
	bool clean_disconnect : 1; /* DISCONNECT without will */
	uint32_t n_uplink;         /* its PUBLISHes awaiting durability (uplink.c) */
	uint32_t n_owed;           /* of them durable, their acks waiting for send room */
};

/* Hold back a connection's input for reason (counted), or let go of reason: when no reason is
 * left, the transport is told to pass its input again (input_ready). */
void broker_conn_hold(struct broker_conn *c, enum conn_hold reason);
void broker_conn_release(struct broker_conn *c, enum conn_hold reason);
/* Every connection held with reason (and, for HOLD_SUB_QUEUE, on session on; NULL: any). */
void broker_release_all(struct broker *b, enum conn_hold reason, const struct broker_session *on);

/* The connection's alias table, allocated on first use (NULL: out of memory, counted). */
struct mqtt_str *broker_alias_table(struct broker_conn *c);

/* Send-buffer bytes an answer (ack, PINGRESP) needs: deliveries leave this much free. */
#define BROKER_ANSWER_ROOM 16u

/* Send one packet made of slices; false (and the connection is killed) on a transport error. */
bool broker_conn_send(struct broker_conn *c, const struct mqtt_iov *iov, size_t n);
bool broker_conn_send_buf(struct broker_conn *c, const uint8_t *buf, int len);
size_t broker_conn_send_space(struct broker_conn *c);
/* End a connection: 5.0 DISCONNECT with reason when >= 0x80 and connected, counted under cnt
 * (BROKER_C_COUNT: none); closed and freed when the current broker call returns. */
void broker_conn_kill(struct broker_conn *c, uint8_t reason, enum broker_counter cnt);
bool broker_conn_alive(const struct broker_conn *c);
/* PUBLISH to a connection; 1 sent, 0 no room now, -1 dropped (too large or dead). */
int broker_conn_send_publish(struct broker_conn *c, const struct broker_msg *m, uint8_t qos,
    uint16_t pid, bool dup, bool retain, uint32_t sub_id);
bool broker_conn_send_ack(struct broker_conn *c, enum mqtt_type type, uint16_t pid, uint8_t reason);

/* ---- handlers ---- */
void broker_handle_connect(struct broker_conn *c, const struct mqtt_connect *k);
void
broker_handle_connect_error(struct broker_conn *c, const struct mqtt_iov *segs, size_t n, int err);
void broker_handle_disconnect(struct broker_conn *c, const struct mqtt_disconnect *d);
void broker_handle_publish(
    struct broker_conn *c, const struct mqtt_packet *pkt, const struct mqtt_iov *segs, size_t n);
void broker_handle_ack(struct broker_conn *c, enum mqtt_type type, const struct mqtt_ack *a);
void broker_handle_subscribe(struct broker_conn *c, const struct mqtt_subscribe *sub);
void broker_handle_unsubscribe(struct broker_conn *c, const struct mqtt_unsubscribe *u);

/* A trie entry (subscription, or share group by its inner filter) was added (+1) or removed
 * (-1) here: the interest summary the other instances use to skip posting changes. */
void broker_xlcore_interest(struct broker *b, const char *filter, size_t len, int delta);
/* A session over its queue limit went under it, offline or away: publishers held on it go. */
void broker_session_over_end(struct broker_session *s);

/* Announcements that could not be posted are tried again (broker_tick). */
void broker_xlcore_tick(struct broker *b);
void broker_xlcore_fini(struct broker *b);
/* Post what waited for this call's journal to be written (broker_reap, after the flush). */
void broker_xlcore_stage_drain(struct broker *b);

/* Route a message to every matching subscription here (origin for no local). */
void broker_route(struct broker *b, struct broker_msg *m, bool *matched);
/* A CONNECT accepted here: other instances end their connection with that client id; with
 * s (clean start 0, no session here) they answer, moving the session if they hold it, and
 * the number of answers to wait for is returned (0: none, the CONNACK can go now). */
uint32_t broker_xlcore_claim(struct broker *b, const char *id, size_t len, bool clean_start,
    uint64_t at_ms, struct broker_session *s);
/* The claim of s timed out (counted): go on as if no other lcore had its session. */
void broker_xlcore_claim_timeout(struct broker_session *s);
/* Publish: store if retained, route here, post to the other lcores' instances. *matched is
 * true when a local subscription matched or the message went to other instances. */
void broker_publish(struct broker *b, struct broker_msg *m, bool *matched);

/* ---- store and forward (uplink.c) ---- */
struct broker_uplink;
/* Before a PUBLISH is taken: false when it goes up durably and the uplink cannot take it now
 * (the input is held, HOLD_UPLINK, and the packet left unconsumed). */
bool broker_uplink_admit(struct broker_conn *c, const struct mqtt_packet *pkt);
enum uplink_verdict {
	UPLINK_ACK_NOW,  /* not deferred: acknowledge as usual */
	UPLINK_DEFERRED, /* the ack goes when the message is durable */
	UPLINK_KILLED,   /* refused: the connection is closed unacknowledged */
};
/* After local delivery of m from c: hand it to the uplink if the rules say so. */
enum uplink_verdict broker_uplink_publish(
    struct broker_conn *c, const struct broker_msg *m, uint16_t pid, uint8_t reason);
/* A QoS 2 resend whose first copy still awaits durability (its PUBREC goes then, on c). */
bool broker_uplink_qos2_pending(struct broker_conn *c, uint16_t pid);
/* A QoS 1 PUBLISH of c with this id waits for durability (its PUBACK not sent yet). */
bool broker_uplink_qos1_pending(struct broker_conn *c, uint16_t pid);
/* c's owed acks have had no room for stall_timeout: it stopped reading (uplink.c). */
bool broker_uplink_owed_stalled(struct broker_conn *c, uint64_t now_ms);
/* A QoS 2 resend (DUP) of an id awaiting PUBREL whose message went up under an origin the agent
 * has not confirmed (a restart came between): m goes up again under that origin, its PUBREC
 * waits for durability (UPLINK_DEFERRED); UPLINK_ACK_NOW when nothing is to go up again. */
enum uplink_verdict
broker_uplink_qos2_resend(struct broker_conn *c, const struct broker_msg *m, uint16_t pid);
/* The id's origin, NULL when it has none. */
struct broker_rx_up *broker_uplink_rx_find(const struct broker_session *s, uint16_t pid);
/* Keep o with pid (replay, a session moving in, a submit); false when out of memory (counted). */
bool broker_uplink_rx_add(
    struct broker_session *s, uint16_t pid, const struct broker_uplink_origin *o, bool confirmed);
/* pid leaves the table of ids awaiting PUBREL: its origin is forgotten, and released to the
 * agent when release is true (PUBREL taken, the session ended) and an uplink is attached. */
void broker_uplink_rx_done(struct broker_session *s, uint16_t pid, bool release);
/* The session's exchanges end with it (expired, or a clean session closed): every origin is
 * released. */
void broker_uplink_session_end(struct broker_session *s);
/* Acks that did not fit c's send buffer, now that it has room. */
void broker_uplink_flush_owed(struct broker_conn *c);
/* ack (PUBCOMP, or a resend's PUBREC) for pid, whose message went up durable, after the
 * journal write jseq (its release, or its origin) is on disk: true when deferred (sent by
 * broker_uplink_sync_poll, in order with the connection's other deferred acks); false: send it
 * now (synced already, nothing to wait for, or no room in the uplink's ring: broker_uplink_admit
 * holds such a packet while the ring is full, so that does not happen). */
bool broker_uplink_defer_ack(struct broker_conn *c, uint8_t ack, uint16_t pid, uint64_t jseq);
/* c or s goes away: entries forget it. */
void broker_uplink_conn_gone(struct broker_conn *c);
void broker_uplink_session_gone(struct broker_session *s);
/* Frees the uplink without a word to its connections: broker_destroy, whose connections are
 * freed already (broker_uplink_detach is for a running broker). */
void broker_uplink_free(struct broker *b);

/* ---- retained ---- */
struct retain_store;
struct retain_store *broker_retain_create(void);
void broker_retain_destroy(struct retain_store *r);
/* Store, replace, or clear (empty payload). */
void broker_retain_set(struct broker *b, struct broker_msg *m);
/* Send retained messages matching filter to s (subscribe time). */
void broker_retain_deliver(struct broker *b, struct broker_sub *sub);
uint32_t broker_retain_count(const struct broker *b);
/* Every retained message (broker_admin.c), and whether topic has one. */
void
broker_retain_walk(struct broker *b, void (*fn)(void *arg, const struct broker_msg *m), void *arg);
bool broker_retain_has(struct broker *b, struct mqtt_str topic);

/* A topic of the broker's own statistics ("$SYS" or "$SYS/..."): clients may not publish there. */
static inline bool
topic_is_sys(struct mqtt_str t)
{
	return t.len >= 4 && memcmp(t.s, "$SYS", 4) == 0 && (t.len == 4 || t.s[4] == '/');
}

/* ---- state across restarts (persist.c) ----
 * Hooks called where the state a restart must find changes; each is a no-op without a state
 * directory (b->persist NULL) or for a session that is not persistent. What they journal is
 * written to the page cache at the end of the broker call (broker_reap: broker_persist_flush). */
struct broker_persist;
void broker_persist_retain(struct broker *b, const struct broker_msg *m, bool set);
/* The session's expiry or subscriptions changed (a session that became persistent, or that
 * comes with messages from another instance, is written whole: broker_persist_session_image). */
void broker_persist_session(struct broker_session *s);
void broker_persist_session_image(struct broker_session *s);
/* The session went offline: when it ends (its expiry), as a wall-clock deadline. */
void broker_persist_session_off(struct broker_session *s);
void broker_persist_session_gone(struct broker_session *s);
/* pid awaits PUBREL (add) or was released; the journal write that will hold it, 0: none. */
uint64_t broker_persist_rx_qos2(struct broker_session *s, uint16_t pid, bool add);
/* pid awaits PUBREL and its message went up under o (confirmed: the agent said durable).
 * Returns the journal write that will hold it (broker_persist_synced), 0 when not journaled. */
uint64_t broker_persist_rx_qos2_up(struct broker_session *s, const struct broker_rx_up *e);
/* The journal write that will hold everything s journaled so far (0: s is not journaled). */
uint64_t broker_persist_session_seq(const struct broker_session *s);
/* Every journal write up to wseq is on disk (fdatasync ended), or there is no journal to wait
 * for (none, or one that cannot be written: logged and counted). */
bool broker_persist_synced(const struct broker *b, uint64_t wseq);
/* The last journal write known on disk (0: none, or no journal). */
uint64_t broker_persist_synced_seq(const struct broker *b);
/* Sync the journal now, not at the next state_sync (on the syncer thread; asked again at the
 * next call while it is busy): something waits for broker_persist_synced. */
void broker_persist_sync_kick(struct broker *b);
/* A delayed will became pending (set), or was published or cancelled. */
void broker_persist_will(struct broker_session *s, bool set);
/* A QoS 1/2 delivery kept by a persistent session (queued: pid 0, state SLOT_FREE); its
 * journal id, 0 when not journaled. */
uint32_t broker_persist_msg_add(struct broker_session *s, const struct broker_msg *m, uint8_t qos,
    bool retain, uint32_t sub_id, uint16_t pid, uint8_t state);
/* Sent with pid (state SLOT_WAIT_*), or gone (state SLOT_FREE). */
void broker_persist_msg_state(struct broker_session *s, uint32_t did, uint16_t pid, uint8_t state);
/* b->down_ref, after what the call journaled so far (broker_down_publish). */
void broker_persist_down_ref(struct broker *b);
void broker_persist_flush(struct broker *b);
void broker_persist_tick(struct broker *b, uint64_t now_ms);
/* Fault injection for the unit tests: the next n journal or snapshot writes fail (EIO). */
extern unsigned broker_persist_fail_next;
/* Recovery (session.c): put back a journaled delivery, or change its state. */
void broker_persist_replay_entry(struct broker_session *s, struct broker_msg *m, uint32_t did,
    uint16_t pid, uint8_t state, uint8_t qos, bool retain, uint32_t sub_id);
/* A delivery as the broker keeps one: QoS 1 or 2, queued (SLOT_FREE, no packet id) or sent
 * with a packet id, waiting for the acknowledgement of its QoS. */
bool broker_delivery_ok(uint8_t qos, uint8_t state, uint16_t pid);
/* false: a step no delivery takes (its QoS waits for another acknowledgement, or the message
 * was let go), nothing changed */
bool
broker_persist_replay_state(struct broker_session *s, uint32_t did, uint16_t pid, uint8_t state);

/* ---- will ---- */
void broker_will_store(struct broker_session *s, const struct mqtt_connect *k, uint64_t now_ms);
void broker_will_publish(struct broker_session *s);
void broker_will_clear(struct broker_session *s);

/* ---- the broker ---- */
/* Timer wheel of connection deadlines (keepalive at 1.5x, connect timeout): slots of
 * BROKER_WHEEL_MS, BROKER_WHEEL_SLOTS of them (a 65 s horizon; a later deadline waits in the
 * last slot and is placed again when it comes round). */
#define BROKER_WHEEL_MS      16u
#define BROKER_WHEEL_SLOTS   4096u
#define BROKER_WHEEL_NONE    0xFFFFu
#define BROKER_SESS_HASH_MIN 1024u      /* client id buckets at first, doubled when */
#define BROKER_SESS_HASH_MAX (1u << 24) /* sessions outnumber them, up to this */
#define BROKER_REPLAY        256u       /* local publishes kept while a session claim is open */
#define XL_BUCKETS           64u /* interest summary: first topic level hashed; the last bucket */
#define XL_WILD              (XL_BUCKETS - 1) /* is for filters whose first level is a wildcard */

/* What this instance knows of another one's interest (xlcore.c). */
struct xpeer {
	uint64_t mask;     /* buckets it announced (all until its first announcement) */
	uint64_t pending;  /* buckets of sessions moved to it that it has not confirmed yet */
	uint32_t moved_to; /* sessions this instance sent it */
	uint32_t got_from; /* sessions it sent this instance (echoed in announcements) */
	uint32_t n_xpend;  /* posts to it waiting for room (b->xpend_head): later ones queue
			    * behind them, in order */
	bool xblocked;     /* broker_xlcore_retry: one of them still did not fit */
	/* Outbox (state across restarts, xlcore.c): the QoS 1/2 messages this instance posted
	 * are journaled here until the destination says it journaled them. */
	uint64_t xout_acked;  /* it journaled ours up to this number (XK_XACK) */
	uint64_t xin_seq;     /* the last of its outbox numbers taken here */
	uint64_t xin_written; /* ... and in our journal (P_XIN): told in XK_XACK */
	uint64_t xin_told;    /* the last number told it */
};

struct broker {
	struct broker_config cfg;
	const struct broker_transport_ops *ops;
	uint64_t now_ms, started_ms, next_sys_ms;
	uint64_t cnt[BROKER_C_COUNT];
	struct broker_conn *conns, *dying;
	struct broker_conn *held;   /* connections with input held back (hnext) */
	struct broker_conn *cur_in; /* the connection whose input is being handled: the one
				     * a full subscriber queue or xlcore queue holds back */
	uint32_t n_held, n_over;    /* held connections; sessions over max_queue (hold) */
	struct xpend *xpend_head, *xpend_tail; /* posts waiting for room, in order (xlcore.c) */
	uint32_t n_xpend;
	/* With a state directory, posts wait here until the call's journal is written
	 * (broker_reap): nothing leaves for another lcore before what it depends on. */
	struct xstage *xstage;
	uint32_t n_xstage, xstage_cap;
	struct xout *xout_head, *xout_tail; /* the outbox, by number (xlcore.c) */
	uint32_t n_xout;
	uint64_t xout_seq; /* the last outbox number given */
	uint64_t down_ref; /* the highest DOWN ref taken (broker_down_publish), journaled */
	uint32_t n_conns, n_sessions, n_subs;
	uint32_t n_windows, n_qos2_tables, n_cold, n_queued; /* broker_gauges */
	/* Connection deadlines: wheel_ms is the start of the first slot not run to its end. */
	struct broker_conn *wheel[BROKER_WHEEL_SLOTS];
	uint64_t wheel_ms;
	/* broker_tick visits connections and sessions a slice at a time (BROKER_SCAN_TICKS per
	 * pass) for what is not a deadline (a queue's expired messages, room that came back):
	 * where the last slice stopped; moved on when that entry goes away */
	struct broker_conn *conn_cursor;
	uint32_t sess_bucket;              /* sessions: the next hash bucket to visit */
	struct broker_session *sess_next;  /* the next session of the bucket being visited */
	struct broker_session **sess_hash; /* sess_buckets (a power of 2), keyed hash */
	uint32_t sess_buckets;
	uint64_t sess_key[2];
	uint64_t next_session_id, next_assigned_id;
	struct mqtt_topic_tree *tree;
	struct share_group *groups;
	struct retain_store *retained;
	uint8_t *scratch;
	uint32_t scratch_len;
	struct mqtt_iov *iov;                 /* input segments from the current offset */
	const struct broker_xlcore_ops *xops; /* NULL: a single instance */
	void *xctx;
	uint32_t xself, xn;
	uint32_t next_claim_seq;
	struct broker_sub **route_subs; /* broker_route: the matches of one message */
	uint32_t route_cap;
	uint32_t route_gen; /* messages routed: tells a session matched twice by one message */
	/* Messages published here while a claim is open (until replay_until_ms): the claimed
	 * session's subscriptions are not known here yet, and the other lcore no longer has
	 * them when these reach it, so they are matched again at restore (xlcore_session.c). */
	struct broker_msg *replay[BROKER_REPLAY];
	uint64_t pub_seq; /* messages kept in replay so far */
	uint64_t replay_until_ms;
	/* Interest summary: trie entries here by bucket, what was announced, the others' */
	uint32_t interest_cnt[XL_BUCKETS];
	uint64_t interest_mask;
	bool interest_dirty;                /* an announcement was not posted everywhere */
	struct xpeer *peers;                /* xn entries */
	struct broker_sys_board *sys_board; /* NULL: $SYS from this instance alone */
	uint32_t sys_self;
	size_t iov_cap;
	struct broker_uplink *up;       /* store and forward (uplink.c), NULL: none */
	struct broker_persist *persist; /* state across restarts (persist.c), NULL: none */
};

/* The connection's deadline changed (CONNECT accepted): placed in the timer wheel again. */
void broker_conn_timer_arm(struct broker_conn *c);

/* Close and free the connections killed during this call (end of every entry point). */
void broker_reap(struct broker *b);
/* A connection's memory (conn.c), once the transport is done with it. */
void broker_conn_free(struct broker_conn *c);
/* Out of the timer wheel (timer.c), when in it. */
void broker_wheel_del(struct broker *b, struct broker_conn *c);
/* $SYS statistics when their interval has come (sys_tree.c, from broker_tick). */
void broker_sys_tick(struct broker *b);

static inline void
broker_count(struct broker *b, enum broker_counter c)
{
	b->cnt[c]++;
}

#endif
