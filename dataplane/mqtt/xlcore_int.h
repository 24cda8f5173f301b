/*
 * xlcore_int.h: the messages that cross between a group's broker instances (one per lcore),
 * shared by the cross-lcore files alone: xlcore.c (posting, the kinds' lifetimes, interest
 * summaries, share groups, retained order, the input side), xlcore_session.c (client id
 * claims and sessions moving between lcores) and publish.c (a PUBLISH posted to the others).
 * Every one is immutable once posted and shared by reference: the reference count is the
 * only thing two lcores touch, atomically.
 */
#ifndef EDGEGW_XLCORE_INT_H
#define EDGEGW_XLCORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "broker_int.h"

enum {
	XK_PUBLISH = 0,
	XK_CLAIM = 1,
	XK_SESSION = 2,
	XK_MEMBER = 3,
	XK_DELIVER = 4,
	XK_INTEREST = 5,
	XK_RETAIN = 6,
	XK_XACK = 7
};

/* Every cross-lcore object starts like this (struct broker_msg does too). */
struct xhdr {
	uint32_t refcnt;
	uint8_t xkind;
};

struct xclaim {
	uint32_t refcnt;
	uint8_t xkind;
	bool clean_start;
	bool answer; /* every instance answers (XK_SESSION, found or not) */
	uint16_t id_len;
	uint32_t from; /* the claiming instance */
	uint64_t at_ms;
	uint32_t seq; /* the claimer's number for it, echoed in the answer */
	char id[];
};

struct xsub {
	const char *filter;
	uint16_t len;
	uint8_t qos;
	bool no_local, rap;
	uint32_t sub_id;
};

struct xqent {
	struct broker_msg *msg; /* a reference */
	uint8_t qos;
	bool retain;
	uint32_t sub_id;
};

/* One block: this header, the arrays, then the client id and the filters. found false: the
 * answer "no session here" (nothing else but the id). seq 0: a session moved unasked (the
 * claimer had one already, the client was told present 1 there). */
struct xsession {
	uint32_t refcnt;
	uint8_t xkind;
	bool found;
	uint16_t id_len;
	uint16_t n_slots, n_rx, n_rx_up;
	uint32_t n_subs, n_msgs;
	uint32_t seq;
	uint32_t from;
	const char *id;
	struct xsub *subs;
	struct out_slot *slots;     /* inflight, in send order; msg NULL: only the PUBREL left */
	struct xqent *msgs;         /* the queue */
	struct broker_rx_up *rx_up; /* the origins of those that went up (uplink.c) */
	uint16_t *rx;               /* incoming QoS 2 ids awaiting PUBREL */
};

/* An instance's interest summary: the buckets (first topic level) of its trie entries, and
 * for each instance how many sessions it has received from it (so that one can stop adding
 * the buckets of the sessions it sent: they are in mask from then on). */
struct xinterest {
	uint32_t refcnt;
	uint8_t xkind;
	uint32_t from;
	uint64_t mask;
	uint32_t got[]; /* xn entries */
};

/* A retained message stored on the topic's owner instance, for the others to store in the
 * owner's order (not routed again: the PUBLISH itself was). Posted to every other instance,
 * the last one frees it. */
struct xretain {
	uint32_t refcnt;
	uint8_t xkind;
	struct broker_msg *msg;
};

/* A share group's member count on instance from (to the owner: the count itself, not a
 * change, so one lost is made good by the next), or a message for the group (msg set: to the
 * chosen instance, or back to the owner when that one's members left). */
struct xgroup {
	uint32_t refcnt;
	uint8_t xkind;
	uint8_t hops; /* XK_DELIVER: how many times it crossed already */
	uint16_t len;
	uint32_t from;
	uint32_t count; /* XK_MEMBER: members on from */
	uint64_t xseq;  /* XK_DELIVER: its number in from's outbox, 0: not in one */
	struct broker_msg *msg;
	char filter[];
};

/*
 * State across restarts (persist.c) for what crosses lcores: a QoS 1/2 message posted to
 * another instance is in its ring (memory) until that one has routed and journaled it, while
 * its publisher may have had its PUBACK or PUBREC already. So the posting instance keeps it
 * in its outbox, journaled in the same write as the rest of the call (before any ack leaves,
 * and before the post itself: xstage), numbered (xseq, increasing per instance, so each
 * destination sees its part in order), until the destination tells it (XK_XACK, at its tick)
 * that its own journal holds every number up to some xseq (P_XIN records). At a start each
 * instance posts again what its outbox has beyond what its destinations acknowledged; a
 * destination routes only the numbers past the last one it journaled (no second copy).
 */
struct xack {
	uint32_t refcnt;
	uint8_t xkind;
	uint32_t from;
	uint64_t seq; /* from journaled every number of the destination's outbox up to this */
};

/* An outbox entry: a message posted (XK_PUBLISH) or a share group delivery (XK_DELIVER,
 * with its filter and hops) to the instances in mask. */
struct xout {
	struct xout *next;
	uint64_t seq, mask;
	struct broker_msg *msg; /* a reference */
	uint8_t kind, hops;
	uint16_t flen;
	char filter[];
};

/* A post waiting for the call's journal write (broker_xlcore_stage_drain). */
struct xstage {
	struct xhdr *x;
	struct broker_conn *by; /* held if it does not fit (the connection being read) */
	uint32_t dst;
	uint16_t sent; /* the counter to count when it is posted, BROKER_C_COUNT: none */
	bool keep;
};

/* Add an outbox entry (the message referenced again); NULL: out of memory, counted. Called
 * by the posting side (journaled by it) and by the replay (not journaled). */
struct xout *broker_xlcore_outbox_add(struct broker *b, uint64_t seq, uint64_t mask, uint8_t kind,
    uint8_t hops, const char *filter, uint16_t flen, struct broker_msg *m);
/* Drop the entries every destination acknowledged (front first: they are in order). */
void broker_xlcore_outbox_prune(struct broker *b);
/* At a start: post again what the destinations had not acknowledged; how many posts. */
uint32_t broker_xlcore_outbox_resend(struct broker *b);
/* persist.c: the outbox entry journaled, an acknowledgement journaled; the numbers taken
 * here written to the journal now (the tick, before XK_XACK tells them). */
void broker_persist_xout(struct broker *b, const struct xout *o);
void broker_persist_xack(struct broker *b, uint32_t dst, uint64_t seq);
void broker_persist_xin_sync(struct broker *b);

/* The bucket of a topic's or filter's first level (the interest summary's). */
uint32_t broker_xlcore_bucket(const char *s, size_t len);
/* Post x (one reference, which this call gives away) to dst behind what already waits for it.
 * 1: posted (or staged: it goes once the call's journal is written, and is then counted as
 * sent, BROKER_C_COUNT: nothing); 0: kept until there is room (keep), the publisher being
 * read held; -1: dropped, counted. */
int broker_xlcore_post(
    struct broker *b, uint32_t dst, struct xhdr *x, bool keep, enum broker_counter sent);
/* Post x (one reference, given away) to every other instance, or (m set) those that may want
 * m; returns to how many it went (or waits to go). */
uint32_t broker_xlcore_post_all(
    struct broker *b, struct xhdr *x, enum broker_counter sent, const struct broker_msg *m);
/* xlcore_session.c: a claim from another instance; an answer to a claim made here, or a
 * session moved unasked. */
void broker_xlcore_claim_input(struct broker *b, const struct xclaim *c);
void broker_xlcore_session_answer(struct broker *b, const struct xsession *x);

#endif
