/*
 * timer.c: a broker's time: connection deadlines in a timer wheel (keepalive at 1.5x, the
 * connect timeout), and broker_tick, which runs them, then a slice of the connections and
 * sessions (queued message expiry, will delay, session expiry, claim timeouts), $SYS
 * (sys_tree.c), the cross-lcore retries and the state journal's tick.
 */
#include <stdint.h>

#include "broker_int.h"

/*
 * Connection deadlines in a timer wheel, so keepalive (1.5x) and the connect timeout are
 * enforced at the first tick past them whatever the number of connections: a tick runs only
 * the slots whose time has come. A packet does not touch the wheel (it only moves last_rx_ms
 * on): when a connection's slot comes, its deadline is computed again and it is killed or
 * placed where it now belongs. A connection is killed at the first broker_tick with now at or
 * past its deadline (the dataplane ticks every 50 ms).
 */
static uint64_t
conn_deadline(const struct broker_conn *c)
{
	if (c->state == CONN_NEW)
		return c->opened_ms + c->b->cfg.connect_timeout_ms;
	if ((c->state == CONN_ACTIVE || c->state == CONN_CLAIMING) && c->keepalive_s != 0)
		return c->last_rx_ms + (uint64_t)c->keepalive_s * 1500u;
	return UINT64_MAX; /* none: dying, or keepalive 0 */
}

static void
wheel_add(struct broker *b, struct broker_conn *c, uint64_t at)
{
	uint64_t d = at > b->wheel_ms ? (at - b->wheel_ms) / BROKER_WHEEL_MS : 0;
	uint32_t i;

	if (d >= BROKER_WHEEL_SLOTS)
		d = BROKER_WHEEL_SLOTS - 1;
	i = (uint32_t)((b->wheel_ms / BROKER_WHEEL_MS + d) % BROKER_WHEEL_SLOTS);
	c->wslot = (uint16_t)i;
	c->wprev = NULL;
	c->wnext = b->wheel[i];
	if (c->wnext != NULL)
		c->wnext->wprev = c;
	b->wheel[i] = c;
}

void
broker_wheel_del(struct broker *b, struct broker_conn *c)
{
	if (c->wslot == BROKER_WHEEL_NONE)
		return;
	if (c->wprev != NULL)
		c->wprev->wnext = c->wnext;
	else
		b->wheel[c->wslot] = c->wnext;
	if (c->wnext != NULL)
		c->wnext->wprev = c->wprev;
	c->wnext = c->wprev = NULL;
	c->wslot = BROKER_WHEEL_NONE;
}

void
broker_conn_timer_arm(struct broker_conn *c)
{
	uint64_t at = conn_deadline(c);

	broker_wheel_del(c->b, c);
	if (at != UINT64_MAX)
		wheel_add(c->b, c, at);
}

/* A connection's slot came: killed when its deadline passed, else placed again. */
static void
conn_timer_fire(struct broker *b, struct broker_conn *c)
{
	uint64_t at = conn_deadline(c);

	if (at == UINT64_MAX)
		return;
	if (b->now_ms < at || c->state == CONN_CLAIMING) /* claiming: once its CONNACK went */
		wheel_add(b, c, b->now_ms < at ? at : b->now_ms + BROKER_WHEEL_MS);
	else if (c->state == CONN_NEW)
		broker_conn_kill(c, MQTT_RC_MAXIMUM_CONNECT_TIME, BROKER_C_CONNECT_TIMEOUT);
	else
		broker_conn_kill(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, BROKER_C_KEEPALIVE_TIMEOUT);
}

/* Run the slot list l (taken out of the wheel whole: conn_timer_fire may put some back in
 * the same slot, nothing else touches the wheel meanwhile). */
static void
wheel_fire_list(struct broker *b, struct broker_conn *l)
{
	while (l != NULL) {
		struct broker_conn *c = l;

		l = c->wnext;
		c->wnext = c->wprev = NULL;
		c->wslot = BROKER_WHEEL_NONE;
		conn_timer_fire(b, c);
	}
}

/* The slots from wheel_ms to now: each whole slot is run and left behind; the one now falls
 * in is run (what is due goes) and stays. After a long pause (a whole turn), every slot is
 * run once, from now. */
static void
wheel_run(struct broker *b)
{
	if (b->now_ms - b->wheel_ms >= (uint64_t)BROKER_WHEEL_SLOTS * BROKER_WHEEL_MS) {
		struct broker_conn *all = NULL;

		for (uint32_t i = 0; i < BROKER_WHEEL_SLOTS; i++)
			while (b->wheel[i] != NULL) {
				struct broker_conn *c = b->wheel[i];

				broker_wheel_del(b, c);
				c->wnext = all;
				all = c;
			}
		b->wheel_ms = b->now_ms - b->now_ms % BROKER_WHEEL_MS;
		wheel_fire_list(b, all);
		return;
	}
	for (;;) {
		uint32_t i = (uint32_t)((b->wheel_ms / BROKER_WHEEL_MS) % BROKER_WHEEL_SLOTS);
		struct broker_conn *l = b->wheel[i];

		b->wheel[i] = NULL;
		wheel_fire_list(b, l);
		if (b->now_ms < b->wheel_ms + BROKER_WHEEL_MS)
			return;
		b->wheel_ms += BROKER_WHEEL_MS;
	}
}

/*
 * What is not a deadline, a slice per tick: a whole pass takes BROKER_SCAN_TICKS ticks (about a
 * second), so 100,000 sessions cost a worker ~1/20 of a pass per tick instead of stalling its
 * loop (and its rx ring) for the whole list every 50 ms. Connections: queued messages past
 * their expiry, room that came back (keepalive and the connect timeout are in the wheel);
 * sessions: will delay and expiry, in seconds (a second late is within them).
 */
#define BROKER_SCAN_TICKS 20u
#define BROKER_SCAN_MIN   64u

static void
conn_timers(struct broker *b)
{
	uint32_t budget = b->n_conns / BROKER_SCAN_TICKS + BROKER_SCAN_MIN;
	struct broker_conn *c = b->conn_cursor != NULL ? b->conn_cursor : b->conns, *next;

	for (; c != NULL && budget > 0; c = next, budget--) {
		next = c->next;
		if (c->state == CONN_ACTIVE && c->s != NULL && c->s->over_since_ms != 0 &&
		    b->now_ms - c->s->over_since_ms >= b->cfg.stall_timeout_ms)
			broker_conn_kill(c, MQTT_RC_QUOTA_EXCEEDED, BROKER_C_STALL_KILL);
		else if (c->state == CONN_ACTIVE && broker_uplink_owed_stalled(c, b->now_ms))
			broker_conn_kill(c, MQTT_RC_QUOTA_EXCEEDED, BROKER_C_ACK_STALL_KILL);
		else if (c->state == CONN_ACTIVE && c->s != NULL)
			broker_session_drain(c->s); /* message expiry, room that came back */
	}
	b->conn_cursor = c; /* NULL: the pass is over, the next starts at the head */
}

/* Sessions by client id hash bucket, whole buckets until the tick's budget of sessions is
 * spent (as for connections) or the pass is over: with few sessions a tick sees them all. */
static void
session_timers(struct broker *b, uint64_t now_ms)
{
	uint32_t budget = b->n_sessions / BROKER_SCAN_TICKS + BROKER_SCAN_MIN;

	for (uint32_t i = 0; i < b->sess_buckets && budget > 0; i++) {
		struct broker_session *s = b->sess_hash[b->sess_bucket];

		for (; s != NULL; s = b->sess_next, budget = budget > 0 ? budget - 1 : 0) {
			b->sess_next =
			    s->hnext; /* broker_session_tick may destroy s (and move this) */
			if (session_claim_pending(s) > 0 && now_ms >= s->cold->claim_deadline_ms)
				broker_xlcore_claim_timeout(
				    s); /* before broker_session_tick: it may destroy s */
			broker_session_tick(s, now_ms);
		}
		b->sess_next = NULL;
		b->sess_bucket = (b->sess_bucket + 1) & (b->sess_buckets - 1);
	}
}

void
broker_tick(struct broker *b, uint64_t now_ms)
{
	b->now_ms = now_ms;
	wheel_run(b);
	conn_timers(b);
	broker_reap(b);
	session_timers(b, now_ms);
	broker_sys_tick(b);
	if (b->xops != NULL)
		broker_xlcore_tick(b);
	broker_reap(b);
	if (b->persist != NULL) {
		broker_persist_tick(b, now_ms);
		broker_uplink_sync_poll(b, now_ms);
	}
}
