/* fake_uplink.c: see fake_uplink.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fake_uplink.h"

static int
fu_send(struct uplink *u, const char *topic, const void *p, size_t len, uint8_t qos, bool retain,
    uint64_t ref)
{
	struct fake_up *f = (struct fake_up *)u;
	struct fu_given *g;

	if (f->send_rc != 0)
		return f->send_rc;
	assert_true(f->n < FU_MAX);
	g = &f->g[f->n++];
	memset(g, 0, sizeof(*g));
	snprintf(g->topic, sizeof(g->topic), "%s", topic);
	snprintf(g->payload, sizeof(g->payload), "%.*s", (int)len, (const char *)p);
	g->qos = qos;
	g->retain = retain;
	g->ref = ref;
	f->outstanding++;
	return 0;
}

static int
fu_restore(struct uplink *u, const char *topic, const void *p, size_t len, uint8_t qos, bool retain,
    uint64_t ref, uint16_t packet_id, enum uplink_phase ph)
{
	struct fake_up *f = (struct fake_up *)u;

	if (f->restore_rc != 0)
		return f->restore_rc;
	assert_int_equal(fu_send(u, topic, p, len, qos, retain, ref), 0);
	f->g[f->n - 1].packet_id = packet_id;
	f->g[f->n - 1].phase = (int)ph;
	return 0;
}

static size_t
fu_backlog(const struct uplink *u)
{
	return ((const struct fake_up *)u)->outstanding;
}

static void
fu_stats(const struct uplink *u, struct uplink_stats *out)
{
	(void)u;
	memset(out, 0, sizeof(*out));
}

static void
fu_destroy(struct uplink *u)
{
	(void)u;
}

static const struct uplink_ops fu_ops = { .name = "fake",
	.send = fu_send,
	.restore = fu_restore,
	.backlog = fu_backlog,
	.stats = fu_stats,
	.destroy = fu_destroy };

static const struct uplink_ops fu_ops_norestore = { .name = "fake",
	.send = fu_send,
	.backlog = fu_backlog,
	.stats = fu_stats,
	.destroy = fu_destroy };

void
fu_init(struct fake_up *f, bool with_restore)
{
	memset(f, 0, sizeof(*f));
	f->up.ops = with_restore ? &fu_ops : &fu_ops_norestore;
}

void
fu_ack(struct fake_up *f, size_t i, uint8_t reason)
{
	assert_false(f->g[i].done);
	f->g[i].done = true;
	f->outstanding--;
	f->up.dlv.acked(f->up.dlv.arg, f->g[i].ref, reason);
}
