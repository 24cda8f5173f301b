/*
 * mqtt_uplink.c: the broker's uplink ops backed by the lcore's dpchan client (mqtt_uplink.h).
 * The client never blocks: records are copied into its arena at submit and leave in one
 * sendmsg per poll; its answers come back through durable/ready on the same lcore.
 *
 * The rules: each uplink reads the set its own pointer names (u->rules). A new set is published
 * by the main lcore (rules_next, then rules_gen, release) and taken by each uplink at the top of
 * its poll (rules_gen, then rules_next, acquire), where none of its broker's calls runs; it then
 * says the generation it holds in its slot (taken_gen, release). The publisher waits until every
 * used slot holds its generation before it says the previous set may be freed. The slots are
 * static, so the publisher never reads an uplink that was freed meanwhile.
 */
#include "mqtt_uplink.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dpchan_client.h"
#include "log.h"
#include "rules.h"

#define MQTT_UPLINK_SLOTS 128 /* uplinks at once: one per worker lcore (RTE_MAX_LCORE) */

struct mqtt_uplink {
	struct broker *b;
	struct dpchan_client *c;
	uint64_t now_ms;
	const struct rules *rules; /* the set this lcore reads; taken at its poll */
	uint32_t gen;              /* the generation of rules */
	int slot;                  /* in slot_used/taken_gen, -1: none */
	uint32_t lcore;            /* its HELLO's */
};

static const struct rules *rules_next; /* the set published last */
static uint32_t rules_gen;             /* its generation */
static bool slot_used[MQTT_UPLINK_SLOTS];
static uint32_t taken_gen[MQTT_UPLINK_SLOTS]; /* the generation each uplink holds */
static struct dpchan_conf conf;               /* enabled false until configured */
static uint64_t boot_id;
/* TEST ONLY (tests/integration/lab/test_faults.py, qos2_window): EDGEGW_TEST_KILL_AT_DURABLE
 * names a file; while it exists, the next DURABLE answer an lcore reads makes the dataplane
 * SIGKILL itself before the broker sees it (the file is removed first: once). That is the
 * window between the agent's durable answer and the journaled PUBREC, hit on purpose. Unset
 * (always, outside that test): one pointer test per answer. */
static const char *test_kill_at_durable;
/* TEST ONLY (tests/unit/dataplane/svc/test_mqtt_uplink.c, down_kill): EDGEGW_TEST_KILL_AT_DOWN
 * names a file; while it exists, the next DOWN record a broker took (journaled, in the page
 * cache) makes the dataplane SIGKILL itself before its DOWN_ACK leaves (the file is removed
 * first: once). Unset: one pointer test per DOWN record. */
static const char *test_kill_at_down;
/* TEST ONLY (tests/integration/lab/test_faults.py, release_lost): EDGEGW_TEST_KILL_AT_RELEASE
 * names a file; while it exists, an lcore about to send QoS 2 origin releases (PUBRELs taken and
 * journaled) SIGKILLs the dataplane first (the file is removed first: once): releases lost, as
 * when a dataplane dies between the PUBREL and the send. Unset: one pointer test per poll. */
static const char *test_kill_at_release;
/* The highest downlink ref taken by any lcore (dpchan_client.h): the highest each instance
 * journaled (broker_down_ref) at its start, then every ref taken since. */
static uint64_t down_seen;

void
mqtt_uplink_configure(const struct dpchan_conf *c)
{
	struct timespec ts;

	conf = *c;
	test_kill_at_durable = getenv("EDGEGW_TEST_KILL_AT_DURABLE");
	test_kill_at_down = getenv("EDGEGW_TEST_KILL_AT_DOWN");
	test_kill_at_release = getenv("EDGEGW_TEST_KILL_AT_RELEASE");
	if (getrandom(&boot_id, sizeof(boot_id), GRND_NONBLOCK) != (ssize_t)sizeof(boot_id)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		boot_id = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
	}
}

bool
mqtt_uplink_enabled(void)
{
	return conf.enabled;
}

/* Has every started uplink taken generation g? */
static bool
all_taken(uint32_t g)
{
	for (unsigned i = 0; i < MQTT_UPLINK_SLOTS; i++)
		if (__atomic_load_n(&slot_used[i], __ATOMIC_ACQUIRE) &&
		    __atomic_load_n(&taken_gen[i], __ATOMIC_ACQUIRE) != g)
			return false;
	return true;
}

int
mqtt_uplink_set_rules(const struct rules *r, unsigned wait_ms)
{
	const struct timespec ms = { 0, 1000000 };
	uint32_t g = rules_gen + 1;

	__atomic_store_n(&rules_next, r, __ATOMIC_RELEASE);
	__atomic_store_n(&rules_gen, g, __ATOMIC_RELEASE);
	for (unsigned waited = 0; !all_taken(g); waited++) {
		if (waited >= wait_ms)
			return -ETIMEDOUT;
		nanosleep(&ms, NULL);
	}
	return 0;
}

/* At the top of the uplink's poll: the set published last, if it is new to this uplink. */
static void
rules_take(struct mqtt_uplink *u)
{
	uint32_t g = __atomic_load_n(&rules_gen, __ATOMIC_ACQUIRE);

	if (g == u->gen)
		return;
	u->rules = __atomic_load_n(&rules_next, __ATOMIC_ACQUIRE);
	u->gen = g;
	__atomic_store_n(&taken_gen[u->slot], g, __ATOMIC_RELEASE);
}

enum broker_uplink_class
mqtt_uplink_classify(const struct rules *r, const char *topic, size_t len, uint8_t qos)
{
	const struct rule *rule;

	if (r == NULL)
		return BROKER_UPLINK_DURABLE;
	if ((rule = rules_match(r, topic, len)) == NULL)
		return BROKER_UPLINK_NONE;
	return rule->durable && qos > 0 ? BROKER_UPLINK_DURABLE : BROKER_UPLINK_BEST_EFFORT;
}

enum broker_uplink_class
mqtt_uplink_wants(const struct mqtt_uplink *u, const char *topic, size_t len, uint8_t qos)
{
	return mqtt_uplink_classify(u->rules, topic, len, qos);
}

static enum broker_uplink_class
op_wants(void *uctx, const char *topic, size_t len, uint8_t qos)
{
	return mqtt_uplink_wants(uctx, topic, len, qos);
}

static int
op_room(void *uctx, size_t topic_len, size_t payload_len)
{
	struct mqtt_uplink *u = uctx;

	return dpchan_client_room(u->c, topic_len, payload_len);
}

_Static_assert(BROKER_UPLINK_ORIGIN_LEN == DPCHAN_ORIGIN_LEN, "an origin's bytes on the channel");

static int
op_submit(void *uctx, uint64_t ref, const struct broker_uplink_origin *as, uint8_t qos, bool retain,
    const char *topic, size_t topic_len, const uint8_t *payload, size_t payload_len)
{
	struct mqtt_uplink *u = uctx;
	struct dpchan_rec r = { .ref = ref,
		.qos = qos,
		.retain = retain,
		.topic = topic,
		.topic_len = (uint16_t)topic_len,
		.payload = payload,
		.payload_len = (uint32_t)payload_len };

	if (topic_len > UINT16_MAX || payload_len > UINT32_MAX)
		return -EMSGSIZE;
	if (as != NULL) { /* a QoS 2 resend after a restart: the agent stores it once */
		r.has_origin = true;
		r.origin = (struct dpchan_origin){ as->boot_id, as->ref, as->lcore };
	}
	return dpchan_client_submit(u->c, &r);
}

/* This start's boot id and this lcore's (the HELLO's), with the ref. */
static void
op_origin(void *uctx, uint64_t ref, struct broker_uplink_origin *o)
{
	struct mqtt_uplink *u = uctx;

	*o = (struct broker_uplink_origin){ boot_id, ref, u->lcore };
}

static void
op_release(void *uctx, const struct broker_uplink_origin *o)
{
	struct mqtt_uplink *u = uctx;
	struct dpchan_origin d = { o->boot_id, o->ref, o->lcore };

	dpchan_client_release(u->c, &d); /* refused: counted and logged there */
}

static const struct broker_uplink_ops uplink_ops = {
	.wants = op_wants,
	.room = op_room,
	.submit = op_submit,
	.origin = op_origin,
	.release = op_release,
};

static void
on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct mqtt_uplink *u = arg;

	if (test_kill_at_durable != NULL && unlink(test_kill_at_durable) == 0)
		raise(SIGKILL); /* TEST ONLY: see test_kill_at_durable */
	broker_uplink_durable(u->b, first, last, status, u->now_ms);
}

static void
on_ready(void *arg)
{
	struct mqtt_uplink *u = arg;

	broker_uplink_ready(u->b, u->now_ms);
}

/* A cloud message the agent passes down: published from the gateway itself, to this lcore's
 * subscribers and the other lcores' (the agent sends each to one lcore only). When this returns
 * the broker has it: queued for this lcore's subscribers and journaled with its ref
 * (broker_down_publish, broker_reap), posted to the other lcores' rings; the client then answers
 * the agent (DOWN_ACK), which releases it from its downlink spool. A restart between the two
 * finds the ref journaled: the agent's resend is answered, not delivered again. */
static int
on_down(void *arg, const struct dpchan_rec *r)
{
	struct mqtt_uplink *u = arg;
	int rc = broker_down_publish(u->b, r->ref, r->topic, r->topic_len, r->payload,
	    r->payload_len, r->qos, r->retain, u->now_ms);

	if (test_kill_at_down != NULL && r->ref != 0 && unlink(test_kill_at_down) == 0)
		raise(SIGKILL); /* TEST ONLY: see test_kill_at_down */
	return rc;
}

/* The highest ref seen, raised to at least ref (another lcore may raise it meanwhile). */
static void
down_seen_raise(uint64_t ref)
{
	uint64_t seen = __atomic_load_n(&down_seen, __ATOMIC_ACQUIRE);

	while (ref > seen &&
	    !__atomic_compare_exchange_n(
		&down_seen, &seen, ref, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

static const struct dpchan_client_ops client_ops = {
	.durable = on_durable,
	.ready = on_ready,
	.down = on_down,
};

/* The origins of earlier starts this lcore's broker holds (broker_uplink_held). */
struct held_list {
	struct dpchan_origin *v;
	uint32_t n, cap;
	bool nomem;
};

static void
held_add(void *arg, const struct broker_uplink_origin *o)
{
	struct held_list *l = arg;

	if (l->nomem || o->boot_id == boot_id)
		return;
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? 2 * l->cap : 64;
		struct dpchan_origin *v = realloc(l->v, (size_t)cap * sizeof(*v));

		if (v == NULL) {
			l->nomem = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct dpchan_origin){ o->boot_id, o->ref, o->lcore };
}

/* Tell the agent, at each connect, which origins of earlier starts this start holds, so that
 * it forgets the others (their release was lost). Out of memory: nothing is listed, and the
 * agent forgets nothing that way (kept until evicted). */
static void
held_tell(struct mqtt_uplink *u, uint32_t n_lcores)
{
	struct held_list l = { 0 };

	broker_uplink_held(u->b, held_add, &l);
	if (l.nomem || dpchan_client_held(u->c, l.v, l.n, n_lcores) != 0)
		log_err("dpchan: lcore %u: out of memory for the list of QoS 2 origins held: the "
			"agent keeps those of earlier starts until its bound",
		    u->lcore);
	free(l.v);
}

struct mqtt_uplink *
mqtt_uplink_start(struct broker *b, uint32_t lcore, uint32_t n_lcores)
{
	const struct dpchan_conf *c = &conf;
	struct mqtt_uplink *u = calloc(1, sizeof(*u));
	struct dpchan_client_config cc = {
		.path = c->path,
		.boot_id = boot_id,
		.lcore = lcore,
		.pending_bytes = c->pending_bytes,
		.reconnect_max_ms = c->reconnect_max_ms,
		.down_seen = &down_seen,
	};

	if (u == NULL)
		return NULL;
	/* before any lcore polls (the workers start after every service listened): a ref another
	 * instance journaled before a restart is taken, whichever lcore the agent resends it to */
	down_seen_raise(broker_down_ref(b));
	u->b = b;
	u->slot = -1;
	u->lcore = lcore;
	for (int i = 0; i < MQTT_UPLINK_SLOTS && u->slot < 0; i++) {
		bool free_slot = false;

		if (__atomic_compare_exchange_n(
			&slot_used[i], &free_slot, true, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			u->slot = i;
	}
	if (u->slot < 0) {
		free(u);
		return NULL;
	}
	/* the set published last: a reload that races this start waits for the slot */
	u->gen = __atomic_load_n(&rules_gen, __ATOMIC_ACQUIRE);
	u->rules = __atomic_load_n(&rules_next, __ATOMIC_ACQUIRE);
	__atomic_store_n(&taken_gen[u->slot], u->gen, __ATOMIC_RELEASE);
	if ((u->c = dpchan_client_new(&cc, &client_ops, u)) == NULL ||
	    broker_uplink_attach(b, &uplink_ops, u, c->max_pending) != 0) {
		mqtt_uplink_stop(u);
		return NULL;
	}
	held_tell(u, n_lcores > 0 ? n_lcores : 1);
	return u;
}

void
mqtt_uplink_poll(struct mqtt_uplink *u, uint64_t now_ms)
{
	u->now_ms = now_ms;
	rules_take(u);
	if (test_kill_at_release != NULL && dpchan_client_releases(u->c) > 0 &&
	    unlink(test_kill_at_release) == 0)
		raise(SIGKILL); /* TEST ONLY: see test_kill_at_release */
	dpchan_client_poll(u->c, now_ms);
}

void
mqtt_uplink_stop(struct mqtt_uplink *u)
{
	if (u == NULL)
		return;
	if (u->b != NULL)
		broker_uplink_detach(u->b);
	dpchan_client_free(u->c);
	if (u->slot >= 0)
		__atomic_store_n(&slot_used[u->slot], false, __ATOMIC_RELEASE);
	free(u);
}

uint64_t
mqtt_uplink_counter(const struct mqtt_uplink *u, enum dpchan_counter k)
{
	return u != NULL ? dpchan_client_counter(u->c, k) : 0;
}
