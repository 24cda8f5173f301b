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
	XK_RETAIN = 6
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
	struct broker_msg *msg;
	char filter[];
};

/* The bucket of a topic's or filter's first level (the interest summary's). */
uint32_t broker_xlcore_bucket(const char *s, size_t len);
/* Post x (one reference, which this call gives away) to dst behind what already waits for it.
 * 1: posted; 0: kept until there is room (keep), the publisher being read held; -1: dropped,
 * counted. */
int broker_xlcore_post(struct broker *b, uint32_t dst, struct xhdr *x, bool keep);
/* Post x (one reference, given away) to every other instance, or (m set) those that may want
 * m; returns to how many it went (or waits to go). */
uint32_t broker_xlcore_post_all(
    struct broker *b, struct xhdr *x, enum broker_counter sent, const struct broker_msg *m);
/* xlcore_session.c: a claim from another instance; an answer to a claim made here, or a
 * session moved unasked. */
void broker_xlcore_claim_input(struct broker *b, const struct xclaim *c);
void broker_xlcore_session_answer(struct broker *b, const struct xsession *x);

#endif
