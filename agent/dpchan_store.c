/*
 * dpchan_store.c: the store (agent/uplink/store.h) as the dataplane channel's sink: each sensor
 * record the dataplane's lcores send is submitted under its local topic with its origin (boot
 * id, lcore, ref), and the store's durability reports go back to them. At open, the origins
 * the store found in its spool seed the server's known records: exactly once across a SIGKILL
 * of the agent (docs/uplink.md, "Store and forward"). A QoS 2 record a restarted dataplane sends
 * again under the origin of its first copy is stored under that origin; the QoS 2 origins the
 * server holds until released live next to the spool (DPCHAN_Q2_FILE).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dpchan_link.h"
#include "log.h"
#include "store.h"

static int
store_sink_submit(
    void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *token)
{
	static char topic[UINT16_MAX + 1]; /* the loop's thread only */
	/* a QoS 2 record sent again by a later start of the dataplane: under its first origin */
	struct store_origin o = { .producer = r->has_origin ? r->origin.boot_id : from->boot_id,
		.lane = r->has_origin ? r->origin.lcore : from->lcore,
		.ref = r->has_origin ? r->origin.ref : r->ref };
	uint64_t seq = 0;
	int rc;

	memcpy(topic, r->topic, r->topic_len);
	topic[r->topic_len] = '\0';
	/* a record the lcore awaits an answer for keeps its origin in the spool: if the agent dies
	 * before the answer leaves, the lcore sends it again and is answered from the spool */
	rc = store_submit_from(arg, topic, r->payload, r->payload_len, r->qos, r->retain,
	    r->ref != 0 ? &o : NULL, &seq);
	if (rc == -ENOENT && r->ref != 0) {
		/* The dataplane defers its publisher's ack under a rule neither this agent's rules
		 * nor the set its last reload replaced has (the dataplane reloaded a new rule
		 * before the agent did): answered failed, so that it is not acknowledged and lost;
		 * the publisher is closed and sends it again, taken once the agent has the rule. */
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "dpchan: %s: the dataplane sends it up durably but no uplink rule of the agent "
		    "matches it (reload the agent too): refused, the sensor sends it again",
		    topic);
		return -ENOENT;
	}
	if (rc == -ENOENT) /* best effort, no rule sends it up: nothing kept */
		return 1;
	if (rc != 0)
		return rc; /* -ENOBUFS: the connection pauses; other: answered failed */
	if (seq == 0)      /* a store without a spool: nothing will be reported durable */
		return 1;
	*token = seq;
	return 0;
}

static const struct dpchan_sink_ops store_sink = { .submit = store_sink_submit };

struct seed_ctx {
	struct dpchan_server *s;
	size_t failed;
};

/* A QoS 2 record the cloud has not acknowledged may have been made durable without its origin
 * being written to the origin file (the agent died between the spool's commit and its report):
 * held from now. One the cloud acknowledged was sent after its origin was written: the origin
 * file says whether the dataplane has released it since. */
static void
seed_one(void *arg, const struct store_origin *o, bool qos2, bool acked)
{
	struct seed_ctx *c = arg;
	int rc = qos2 && !acked ? dpchan_server_known_q2(c->s, o->producer, o->lane, o->ref)
				: dpchan_server_known(c->s, o->producer, o->lane, o->ref);

	if (rc != 0)
		c->failed++;
}

int
dpchan_link_open_store(struct dpchan_link **out, struct agent_loop *loop,
    const struct dpchan_conf *c, struct store *st)
{
	const char *dir = store_spool_dir(st);
	char q2_path[600];
	struct seed_ctx seed = { 0 };
	size_t n;
	int rc;

	if (dir != NULL)
		snprintf(q2_path, sizeof(q2_path), "%s/%s", dir, DPCHAN_Q2_FILE);
	rc = dpchan_link_open(out, loop, c, dir != NULL ? q2_path : NULL, &store_sink, st);

	if (rc == 0 && (rc = store_on_durable(st, dpchan_link_durable, *out)) != 0) {
		dpchan_link_close(*out);
		*out = NULL;
		return rc;
	}
	if (rc != 0)
		return rc;
	/* the dataplane's records already in the spool: sent again, they are not stored twice */
	seed.s = dpchan_link_server(*out);
	n = store_recovered_origins(st, seed_one, &seed);
	if (n > 0)
		log_info("dpchan: %zu records of the dataplane found in the spool (not stored "
			 "again when resent)%s",
		    n, seed.failed ? "; out of memory for some" : "");
	return 0;
}
