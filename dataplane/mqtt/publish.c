/*
 * publish.c: a message published on this instance (by a client, a will or $SYS): stored if
 * retained, routed to the sessions here (subs.c), kept for replay while a session claim is
 * open, and posted to the other lcores' instances (xlcore.c), which do the same for theirs.
 */
#include <stdbool.h>
#include <stdint.h>

#include "xlcore_int.h"

/* Kept while a claim is open: see struct broker. The oldest goes when the ring is full. */
static void
replay_keep(struct broker *b, struct broker_msg *m)
{
	struct broker_msg **slot = &b->replay[b->pub_seq++ % BROKER_REPLAY];

	broker_msg_unref(*slot);
	broker_msg_ref(m);
	*slot = m;
}

void
broker_publish(struct broker *b, struct broker_msg *m, bool *matched)
{
	m->xfrom = (uint16_t)b->xself;
	if (m->retain)
		broker_retain_set(b, m);
	broker_route(b, m, matched);
	if (b->xops != NULL && b->now_ms < b->replay_until_ms)
		replay_keep(b, m);
	if (b->xops != NULL) {
		broker_msg_ref(m);
		broker_xlcore_post_all(b, (struct xhdr *)m, BROKER_C_XLCORE_TX, m);
		*matched = true; /* subscribers elsewhere are not known here */
	}
}
