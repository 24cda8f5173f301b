/*
 * xlcore.c: publishing, and the cross-lcore part of it. A message is stored (retained) and
 * routed on the instance that received it, then posted to every other instance of the group,
 * which does the same for its own sessions. A message is immutable once published, so all
 * instances share the one copy by reference. Session takeover and shared subscription
 * balancing across instances are not done yet (docs/broker.md).
 */
#include "broker_int.h"

void broker_xlcore_attach(struct broker *b, uint32_t self, uint32_t n,
			  const struct broker_xlcore_ops *ops, void *xctx)
{
	b->xops = n > 1 ? ops : NULL;
	b->xctx = xctx;
	b->xself = self;
	b->xn = n;
	/* session ids (no local) stay unique across the group */
	b->next_session_id = (uint64_t)self << 48;
}

static void post_all(struct broker *b, struct broker_msg *m)
{
	for (uint32_t dst = 0; dst < b->xn; dst++) {
		if (dst == b->xself)
			continue;
		broker_msg_ref(m);
		if (b->xops->post(b->xctx, dst, (struct broker_xmsg *)m)) {
			broker_count(b, BROKER_C_XLCORE_TX);
		} else {
			broker_msg_unref(m);
			broker_count(b, BROKER_C_XLCORE_DROP);
		}
	}
}

void broker_publish(struct broker *b, struct broker_msg *m, bool *matched)
{
	if (m->retain)
		retain_set(b, m);
	broker_route(b, m, matched);
	if (b->xops != NULL) {
		post_all(b, m);
		*matched = true; /* subscribers elsewhere are not known here */
	}
}

void broker_xlcore_input(struct broker *b, struct broker_xmsg *x, uint64_t now_ms)
{
	struct broker_msg *m = (struct broker_msg *)x;
	bool matched;

	b->now_ms = now_ms;
	broker_count(b, BROKER_C_XLCORE_RX);
	if (m->retain)
		retain_set(b, m);
	broker_route(b, m, &matched);
	broker_msg_unref(m);
	broker_reap(b);
}

void broker_xmsg_free(struct broker_xmsg *x)
{
	broker_msg_unref((struct broker_msg *)x);
}
