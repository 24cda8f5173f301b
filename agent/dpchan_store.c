/*
 * dpchan_store.c: the store (agent/uplink/store.h) as the dataplane channel's sink: each sensor
 * record the dataplane's lcores send is submitted under its local topic, and the store's
 * durability reports go back to them (dpchan_link_attach_store).
 */
#include <errno.h>
#include <string.h>

#include "dpchan_link.h"
#include "log.h"
#include "store.h"

static int
store_sink_submit(
    void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *token)
{
	static char topic[UINT16_MAX + 1]; /* the loop's thread only */
	uint64_t seq = 0;
	int rc;

	(void)from;
	memcpy(topic, r->topic, r->topic_len);
	topic[r->topic_len] = '\0';
	rc = store_submit(arg, topic, r->payload, r->payload_len, r->qos, r->retain, &seq);
	if (rc == -ENOENT) /* no rule sends it up (the dataplane read other rules): nothing kept */
		return 1;
	if (rc != 0)
		return rc; /* -ENOBUFS: the connection pauses; other: answered failed */
	if (seq == 0)      /* a store without a spool: nothing will be reported durable */
		return 1;
	*token = seq;
	return 0;
}

static const struct dpchan_sink_ops store_sink = { .submit = store_sink_submit };

int
dpchan_link_open_store(struct dpchan_link **out, struct agent_loop *loop,
    const struct dpchan_conf *c, struct store *st)
{
	int rc = dpchan_link_open(out, loop, c, &store_sink, st);

	if (rc == 0 && (rc = store_on_durable(st, dpchan_link_durable, *out)) != 0) {
		dpchan_link_close(*out);
		*out = NULL;
	}
	return rc;
}
