/*
 * sys_tree.c: the broker's own statistics under $SYS, published retained every sys_interval_ms
 * (broker_sys_tick): each instance's figures, and with several lcores their sum through a
 * shared board (broker_sys_board_new).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

/*
 * $SYS: the figures an instance publishes, in board order: the named ones, then every counter
 * (only the drop, limit, bad-input and error kinds are published, and only when not zero).
 */
enum sys_fig {
	SYS_CLIENTS,
	SYS_SESSIONS,
	SYS_SUBS,
	SYS_PUB_RX,
	SYS_PUB_TX,
	SYS_BYTES_RX,
	SYS_COUNTERS, /* then BROKER_C_COUNT counters */
	SYS_FIGS = SYS_COUNTERS + BROKER_C_COUNT
};

static const char *const sys_names[SYS_COUNTERS] = {
	[SYS_CLIENTS] = "clients/connected",
	[SYS_SESSIONS] = "sessions/count",
	[SYS_SUBS] = "subscriptions/count",
	[SYS_PUB_RX] = "messages/received",
	[SYS_PUB_TX] = "messages/sent",
	[SYS_BYTES_RX] = "bytes/received",
};

struct sys_slot {
	uint64_t v[SYS_FIGS];
} __attribute__((aligned(64)));

struct broker_sys_board {
	uint32_t n;
	struct sys_slot slot[];
};

struct broker_sys_board *
broker_sys_board_new(uint32_t n)
{
	struct broker_sys_board *board;

	if (n == 0 ||
	    posix_memalign(
		(void **)&board, 64, sizeof(*board) + (size_t)n * sizeof(struct sys_slot)) != 0)
		return NULL;
	memset(board, 0, sizeof(*board) + (size_t)n * sizeof(struct sys_slot));
	board->n = n;
	return board;
}

void
broker_sys_board_free(struct broker_sys_board *board)
{
	free(board);
}

void
broker_sys_attach(struct broker *b, struct broker_sys_board *board, uint32_t self)
{
	if (board != NULL && self < board->n) {
		b->sys_board = board;
		b->sys_self = self;
	}
}

static bool
sys_published(enum sys_fig f)
{
	enum broker_counter c;

	if (f < SYS_COUNTERS)
		return true;
	c = (enum broker_counter)(f - SYS_COUNTERS);
	return broker_counter_kind(c) != COUNTER_KIND_INFO &&
	    broker_counter_kind(c) != COUNTER_KIND_GAUGE;
}

/* Retained on every instance: a client sees the latest whichever lcore it landed on. */
static void
sys_publish(struct broker *b, bool own, const char *name, uint64_t val)
{
	char num[24], topic[128];
	struct mqtt_iov pl = { (const uint8_t *)num, 0 };
	struct mqtt_str t = { topic, 0 };
	struct broker_msg *m;
	bool matched;

	if (own)
		t.len = (uint16_t)snprintf(topic, sizeof(topic), "$SYS/broker/lcore/%u/%s",
		    b->sys_board != NULL ? b->sys_self : b->xself, name);
	else
		t.len = (uint16_t)snprintf(topic, sizeof(topic), "$SYS/broker/%s", name);
	pl.len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, val);
	if ((m = broker_msg_new(b, t, &pl, 1, NULL, b->now_ms)) == NULL)
		return;
	m->retain = true;
	broker_publish(b, m, &matched); /* to the other instances too */
	broker_msg_unref(m);
	broker_count(b, BROKER_C_SYS_PUBLISHED);
}

static void
sys_publish_figs(struct broker *b, bool own, const uint64_t *v)
{
	char name[80];

	for (int f = 0; f < SYS_FIGS; f++) {
		if (!sys_published((enum sys_fig)f))
			continue;
		if (f < SYS_COUNTERS) {
			sys_publish(b, own, sys_names[f], v[f]);
		} else if (v[f] != 0) {
			snprintf(name, sizeof(name), "counters/%s",
			    broker_counter_name((enum broker_counter)(f - SYS_COUNTERS)));
			sys_publish(b, own, name, v[f]);
		}
	}
}

void
broker_sys_tick(struct broker *b)
{
	struct broker_sys_board *board = b->sys_board;
	uint64_t v[SYS_FIGS], sum[SYS_FIGS];
	bool several = b->xn > 1 || (board != NULL && board->n > 1);

	if (b->cfg.sys_interval_ms == 0 || b->now_ms < b->next_sys_ms)
		return;
	b->next_sys_ms = b->now_ms + b->cfg.sys_interval_ms;
	v[SYS_CLIENTS] = b->n_conns;
	v[SYS_SESSIONS] = b->n_sessions;
	v[SYS_SUBS] = b->n_subs;
	v[SYS_PUB_RX] = b->cnt[BROKER_C_PUB_RX];
	v[SYS_PUB_TX] = b->cnt[BROKER_C_PUB_TX];
	v[SYS_BYTES_RX] = b->cnt[BROKER_C_BYTES_RX];
	memcpy(&v[SYS_COUNTERS], b->cnt, sizeof(b->cnt));
	/* the same everywhere: uptime, and retained messages (every instance holds them all) */
	if (!several || (board != NULL && b->sys_self == 0)) {
		sys_publish(b, false, "uptime", (b->now_ms - b->started_ms) / 1000);
		sys_publish(b, false, "retained messages/count", broker_retain_count(b));
	}
	if (!several) {
		sys_publish_figs(b, false, v);
		return;
	}
	sys_publish(b, true, "uptime", (b->now_ms - b->started_ms) / 1000);
	sys_publish_figs(b, true, v);
	if (board == NULL)
		return;
	for (int f = 0; f < SYS_FIGS; f++)
		__atomic_store_n(&board->slot[b->sys_self].v[f], v[f], __ATOMIC_RELAXED);
	if (b->sys_self != 0)
		return;
	/* the others' figures are those of their last interval: at most one interval old */
	memset(sum, 0, sizeof(sum));
	for (uint32_t i = 0; i < board->n; i++)
		for (int f = 0; f < SYS_FIGS; f++)
			sum[f] += __atomic_load_n(&board->slot[i].v[f], __ATOMIC_RELAXED);
	sys_publish_figs(b, false, sum);
}
