/*
 * Unit test of the agent's downlink (agent/downlink.c): cloud messages mapped by the lab's rule
 * (site/lab/cmd/plant/# -> cmd/plant/#) reach an lcore's dpchan client (the fake dataplane: a
 * real client whose broker is a callback) as DOWN records, QoS capped by max_qos. A QoS 1/2
 * message is owned once on disk in the downlink spool and released only when the lcore answers
 * (DOWN_ACK); one the dataplane did not answer before it died goes to the next lcore, one it
 * answered after the agent died is not delivered twice; QoS 2 packet ids are kept on disk until
 * their PUBREL; without a spool a QoS 1 message is not owned and a QoS 0 one is lost; every
 * drop counted (the store's down_* counters, the client's DOWN_NO_SUBSCRIBER and DOWN_REFUSED).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "crc32c.h"
#include "downlink.h"
#include "dpchan_client.h"
#include "loop.h"
#include "store.h"
#include "uplink.h"

struct lcore {
	struct dpchan_client *c;
	char got[16][64];       /* topic:payload:qos of each DOWN, in order */
	uint32_t topic_len[16]; /* and its whole topic's length */
	int n, answer; /* what the broker says: 1 delivered, 0 no subscriber, < 0 refused */
	uint64_t now;
};

static int
lc_down(void *arg, const struct dpchan_rec *r)
{
	struct lcore *l = arg;

	if (l->n < 16)
		l->topic_len[l->n] = r->topic_len;
	if (l->n < 16)
		snprintf(l->got[l->n++], sizeof(l->got[0]), "%.*s:%.*s:%u", r->topic_len, r->topic,
		    (int)r->payload_len, r->payload, r->qos);
	return l->answer;
}

static void
lc_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	(void)arg, (void)first, (void)last, (void)status;
}

static void
lc_ready(void *arg)
{
	(void)arg;
}

static const struct dpchan_client_ops lc_ops = {
	.durable = lc_durable, .ready = lc_ready, .down = lc_down
};

static int
sink_submit(void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *tok)
{
	(void)arg, (void)from, (void)r, (void)tok;
	return 1;
}

static const struct dpchan_sink_ops sink = { .submit = sink_submit };

static int
no_cmd(void *arg, const char *topic, const uint8_t *payload, size_t len, uint8_t qos, bool retain,
    uint16_t packet_id, uint64_t token)
{
	(void)packet_id, (void)token;
	(void)arg, (void)topic, (void)payload, (void)len, (void)qos, (void)retain;
	return 0;
}

struct env {
	char dir[64], sock[96], text[512];
	struct conf_doc *doc;
	struct store_conf *sc;
	struct agent_loop *loop;
	struct uplink *up;
	struct store *st;
	struct dpchan_server *srv;
	struct lcore lc;
};

static void
lc_connect_boot(struct env *e, uint64_t boot_id)
{
	struct dpchan_client_config cc = { .path = e->sock, .lcore = 1, .boot_id = boot_id };

	memset(&e->lc, 0, sizeof(e->lc));
	e->lc.answer = 1;
	e->lc.now = 1000;
	assert_non_null(e->lc.c = dpchan_client_new(&cc, &lc_ops, &e->lc));
	for (int i = 0; i < 200 && dpchan_server_connected(e->srv) == 0; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 10);
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	assert_int_equal(dpchan_server_connected(e->srv), 1);
}

static void
lc_connect(struct env *e)
{
	lc_connect_boot(e, 7);
}

/* The fake dataplane reads what the agent sent and answers; the agent reads the answers and
 * sends what is next (the loop's tick): until the lcore holds want records and nothing is in
 * flight. */
static void
pump(struct env *e, struct downlink *d, int want)
{
	for (int i = 0; i < 300; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 100);
		dpchan_server_run(e->srv);
		if (d != NULL)
			downlink_replay(d);
		if (e->lc.n >= want &&
		    dpchan_server_counter(e->srv, DPCHAN_C_DOWN_ACK_RX) >=
			dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_ACK_TX) &&
		    i > 2)
			break;
		usleep(1000);
	}
	assert_int_equal(e->lc.n, want);
}

static void
lc_read(struct env *e, int want)
{
	pump(e, NULL, want);
}

static uint64_t
count(struct env *e, enum store_counter c)
{
	struct store_stats s;

	store_get_stats(e->st, &s);
	return s.c[c];
}

static int
deliver_id(struct downlink *d, const char *topic, const char *payload, uint8_t qos, uint16_t id)
{
	return downlink_deliver(
	    d, topic, (const uint8_t *)payload, strlen(payload), qos, false, id, 0);
}

static int
deliver(struct downlink *d, const char *topic, const char *payload, uint8_t qos)
{
	return deliver_id(d, topic, payload, qos, 0);
}

static int
setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct dpchan_server_config scfg = { 0 };
	char err[256];

	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/egw-downlink-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->sock, sizeof(e->sock), "%s/dp.sock", e->dir);
	snprintf(e->text, sizeof(e->text),
	    "uplink:\n  site: lab\n  rules: []\n  downlink:\n"
	    "    - {match: \"site/{site}/cmd/plant/#\", strip: \"site/{site}/\", max_qos: 1}\n"
	    "    - {match: \"site/{site}/all/#\", strip: \"site/{site}/all/\"}\n"
	    "  spool: {dir: %s/spool}\n",
	    e->dir);
	assert_int_equal(
	    conf_load_string("t.yaml", e->text, strlen(e->text), &e->doc, err, sizeof(err)), 0);
	assert_int_equal(store_conf_parse(conf_get(conf_root(e->doc), "uplink"), &e->sc), 0);
	assert_int_equal(agent_loop_create(&e->loop, 10), 0);
	assert_int_equal(uplink_jsonl_create(&e->up, e->loop, "/dev/null", NULL, "", no_cmd, e), 0);
	assert_int_equal(store_open(&e->st, e->sc, false, e->up, 0), 0);
	scfg.path = e->sock;
	assert_non_null(e->srv = dpchan_server_new(&scfg, &sink, e));
	*state = e;
	return 0;
}

static int
teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	if (e->lc.c != NULL)
		dpchan_client_free(e->lc.c);
	dpchan_server_free(e->srv);
	uplink_destroy(e->up);
	store_close(e->st);
	store_conf_free(e->sc);
	conf_free(e->doc);
	agent_loop_destroy(e->loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

static void
test_mapped_to_the_dataplane(void **state)
{
	struct env *e = *state;
	const struct rules *r = store_rules(e->st);
	struct downlink *d;
	static uint8_t big[DPCHAN_FRAME_MAX];
	char longt[4000];

	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	lc_connect(e);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/valve1", "open", 1), 0);
	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/valve2", "close", 2, 3), 0); /* max 1 */
	pump(e, d, 2);
	assert_int_equal(count(e, STORE_C_down_spooled), 2); /* on disk before acknowledged */
	assert_int_equal(count(e, STORE_C_down_taken), 2);   /* and released once answered */
	e->lc.answer = 0; /* no sensor subscribed: delivered to none, counted, not a drop */
	assert_int_equal(deliver(d, "site/lab/cmd/plant/x", "q0", 0), 0);
	lc_read(e, 3);
	e->lc.answer = -EINVAL; /* the broker refused it */
	assert_int_equal(deliver(d, "site/lab/cmd/plant/y", "bad", 0), 0);
	lc_read(e, 4);
	assert_string_equal(e->lc.got[0], "cmd/plant/valve1:open:1");
	assert_string_equal(e->lc.got[1], "cmd/plant/valve2:close:1");
	assert_string_equal(e->lc.got[2], "cmd/plant/x:q0:0");
	assert_int_equal(count(e, STORE_C_down_to_dataplane), 2); /* QoS 0: live */
	assert_int_equal(count(e, STORE_C_down_replayed), 2);
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_RX), 4);
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_NO_SUBSCRIBER), 1);
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_REFUSED), 1);
	e->lc.answer = 0; /* a spooled one no sensor takes: taken all the same, counted */
	assert_int_equal(deliver(d, "site/lab/cmd/plant/z", "q1", 1), 0);
	pump(e, d, 5);
	assert_int_equal(count(e, STORE_C_down_no_subscriber), 1);
	e->lc.answer = -ENOMEM; /* refused for good: released, counted as a drop */
	assert_int_equal(deliver(d, "site/lab/cmd/plant/w", "q1", 1), 0);
	pump(e, d, 6);
	assert_int_equal(count(e, STORE_C_down_refused), 1);
	assert_int_equal(count(e, STORE_C_down_taken), 3);
	/* a long topic is a topic (the local one was cut at 255 bytes: owned and dropped) */
	memset(longt, 'a', sizeof(longt));
	memcpy(longt, "site/lab/cmd/plant/", 19);
	longt[sizeof(longt) - 1] = '\0';
	e->lc.answer = 1;
	assert_int_equal(deliver(d, longt, "z", 1), 0);
	pump(e, d, 7);
	assert_int_equal(e->lc.topic_len[6], sizeof(longt) - 1 - strlen("site/lab/"));
	assert_memory_equal(e->lc.got[6], "cmd/plant/aaa", 13);
	assert_int_equal(count(e, STORE_C_down_taken), 4);
	/* no rule: not the downlink's; too large, or no valid local topic: owned and dropped */
	assert_int_equal(deliver(d, "site/other/cmd/plant/x", "z", 1), -ENOENT);
	assert_int_equal(
	    downlink_deliver(d, "site/lab/cmd/plant/big", big, sizeof(big), 1, false, 0, 0), 0);
	assert_int_equal(count(e, STORE_C_down_too_large), 1);
	assert_int_equal(deliver(d, "site/lab/all/", "z", 1), 0); /* nothing left: no topic */
	assert_int_equal(count(e, STORE_C_down_bad_topic), 1);
	assert_int_equal(count(e, STORE_C_down_received), 9);
	downlink_close(d);
}

/* While no lcore is connected a message is owned once on disk, and handed over in order when
 * one connects, also by the next agent (a restart). */
static void
test_spooled_while_the_channel_is_down(void **state)
{
	struct env *e = *state;
	const struct rules *r = store_rules(e->st);
	struct downlink *d;

	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/b", "2", 2), 0);
	assert_int_equal(count(e, STORE_C_down_spooled), 2);
	downlink_close(d); /* the agent stops (or dies: the records are on disk already) */
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/c", "3", 1), 0); /* after a and b */
	assert_int_equal(count(e, STORE_C_down_spooled), 3);
	lc_connect(e);
	downlink_replay(d);                                              /* the loop's tick */
	assert_int_equal(deliver(d, "site/lab/cmd/plant/d", "4", 1), 0); /* live again */
	pump(e, d, 4);
	assert_string_equal(e->lc.got[0], "cmd/plant/a:1:1");
	assert_string_equal(e->lc.got[1], "cmd/plant/b:2:1");
	assert_string_equal(e->lc.got[2], "cmd/plant/c:3:1");
	assert_string_equal(e->lc.got[3], "cmd/plant/d:4:1");
	assert_int_equal(count(e, STORE_C_down_replayed), 4);
	assert_int_equal(count(e, STORE_C_down_taken), 4);
	/* answered and released: the next agent has nothing to hand over again */
	downlink_close(d);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	pump(e, d, 4);
	downlink_close(d);
}

/* The dataplane dies with a DOWN record unread in its socket: the agent had it on disk, keeps it
 * until an answer, and sends it to the next dataplane's lcore. (Before DOWN_ACK the record was
 * released once written into the socket, and lost with it.) */
static void
test_resent_when_the_dataplane_dies_before_taking(void **state)
{
	struct env *e = *state;
	struct downlink *d;

	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	lc_connect(e);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0);
	assert_int_equal(count(e, STORE_C_down_replayed), 1); /* in the lcore's socket */
	dpchan_client_free(e->lc.c);                          /* SIGKILL: never read */
	e->lc.c = NULL;
	for (int i = 0; i < 100 && dpchan_server_connected(e->srv) > 0; i++) {
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	downlink_replay(d);
	lc_connect_boot(e, 8); /* the restarted dataplane */
	pump(e, d, 1);
	assert_string_equal(e->lc.got[0], "cmd/plant/a:1:1");
	assert_int_equal(count(e, STORE_C_down_resent), 1);
	assert_int_equal(count(e, STORE_C_down_taken), 1);
	downlink_close(d);
	/* released: the next agent has nothing to send */
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	pump(e, d, 1);
	downlink_close(d);
}

/* The agent dies after the dataplane took a record and before its answer was read: the next
 * agent sends it again from the spool, and the dataplane answers without delivering it twice. */
static void
test_not_twice_when_the_agent_dies_before_the_answer(void **state)
{
	struct env *e = *state;
	struct dpchan_server_config scfg = { .path = e->sock };
	struct downlink *d;

	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	lc_connect(e);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0);
	for (int i = 0; i < 200 && dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_ACK_TX) == 0; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 100); /* delivered and answered */
		usleep(1000);
	}
	assert_int_equal(e->lc.n, 1);
	downlink_close(d); /* the agent dies before it reads the answer */
	dpchan_server_free(e->srv);
	assert_non_null(e->srv = dpchan_server_new(&scfg, &sink, e));
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	for (int i = 0; i < 300 && dpchan_server_connected(e->srv) == 0; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 1000); /* the lcore reconnects */
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	pump(e, d, 1);
	assert_int_equal(e->lc.n, 1); /* not twice */
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_DUP), 1);
	assert_int_equal(count(e, STORE_C_down_replayed), 2);
	assert_int_equal(count(e, STORE_C_down_taken), 1);
	downlink_close(d);
}

/* Two lcores of one dataplane (their dedup shared): DOWN records keep going to the lcore they
 * went to while it stays connected, so one never takes a newer record while the other still
 * holds an older one unread (which the shared dedup would then take as sent before, and drop).
 * Before, each record went to the first connected lcore in slot order: here lcore 1, back
 * after a disconnect, took b while lcore 2 still held a, and a was lost. */
static void
test_one_lcore_at_a_time(void **state)
{
	struct env *e = *state;
	struct downlink *d;
	uint64_t seen = 0;
	struct lcore two = { .answer = 1, .now = 1000 };
	struct dpchan_client_config c1 = {
		.path = e->sock, .lcore = 1, .boot_id = 7, .down_seen = &seen
	};
	struct dpchan_client_config c2 = {
		.path = e->sock, .lcore = 2, .boot_id = 7, .down_seen = &seen
	};

	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	memset(&e->lc, 0, sizeof(e->lc));
	e->lc.answer = 1;
	e->lc.now = 1000;
	assert_non_null(e->lc.c = dpchan_client_new(&c1, &lc_ops, &e->lc));
	assert_non_null(two.c = dpchan_client_new(&c2, &lc_ops, &two));
	for (int i = 0; i < 200 && dpchan_server_connected(e->srv) < 2; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 10);
		if (i > 5) /* lcore 1 first: the first slot */
			dpchan_client_poll(two.c, two.now += 10);
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	assert_int_equal(dpchan_server_connected(e->srv), 2);
	dpchan_client_free(e->lc.c); /* lcore 1's connection ends (its stream stays) */
	for (int i = 0; i < 100 && dpchan_server_connected(e->srv) > 1; i++) {
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0); /* to lcore 2, unread */
	assert_non_null(e->lc.c = dpchan_client_new(&c1, &lc_ops, &e->lc));
	for (int i = 0; i < 200 && dpchan_server_connected(e->srv) < 2; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 10);
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	assert_int_equal(dpchan_server_connected(e->srv), 2);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/b", "2", 1), 0);
	for (int i = 0; i < 300 && e->lc.n + two.n < 2; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 100); /* lcore 1 reads first */
		dpchan_client_poll(two.c, two.now += 100);
		dpchan_server_run(e->srv);
		downlink_replay(d);
		usleep(1000);
	}
	assert_int_equal(e->lc.n, 0);
	assert_int_equal(two.n, 2);
	assert_string_equal(two.got[0], "cmd/plant/a:1:1");
	assert_string_equal(two.got[1], "cmd/plant/b:2:1");
	dpchan_client_free(two.c);
	downlink_close(d);
}

static void
collect(void *arg, uint16_t id)
{
	uint16_t *ids = arg;

	if (ids[0] < 8)
		ids[++ids[0]] = id;
}

/* ids[0]: how many; ids[1..]: the ids the downlink keeps for the MQTT client. */
static void
kept_ids(struct downlink *d, uint16_t ids[9])
{
	memset(ids, 0, 9 * sizeof(*ids));
	downlink_q2_each(d, collect, ids);
}

/* Entry id of dir's q2-ids file as downlink_q2.c writes it (v 0: all zero). */
static void
q2_entry(uint8_t b[16], uint16_t id, uint64_t v)
{
	uint8_t k[10];

	memset(b, 0, 16);
	for (int i = 0; i < 2; i++)
		k[i] = (uint8_t)(id >> (8 * i));
	for (int i = 0; i < 8; i++)
		b[i] = k[2 + i] = (uint8_t)(v >> (8 * i));
	if (v != 0)
		for (int i = 0; i < 4; i++)
			b[8 + i] = (uint8_t)(crc32c(k, sizeof(k), 0) >> (8 * i));
}

/* n bytes at off of the downlink's q2-ids file (created when absent). */
static void
q2_poke(struct env *e, long off, const void *b, size_t n)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/spool/downlink/q2-ids", e->dir);
	assert_non_null(f = fopen(path, "r+b") ?: fopen(path, "w+b"));
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	assert_int_equal(fwrite(b, 1, n, f), n);
	fclose(f);
}

/* QoS 2 from the cloud: the packet id is kept on disk with the message until its PUBREL, across
 * agent restarts; one a crash left before its message reached the spool is freed at open. */
static void
test_q2_ids_kept_across_restarts(void **state)
{
	struct env *e = *state;
	const struct rules *r = store_rules(e->st);
	struct downlink *d;
	uint16_t ids[9];
	uint8_t pending[16];

	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/a", "1", 2, 7), 0);
	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/b", "2", 2, 9), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 7);
	assert_int_equal(ids[2], 9);
	downlink_close(d);
	q2_entry(pending, 11, (1ull << 62) | 999); /* PENDING, a record the spool never got */
	q2_poke(e, 11 * 16, pending, sizeof(pending));
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 2); /* 7 and 9 kept, 11 freed */
	assert_int_equal(ids[1], 7);
	assert_int_equal(ids[2], 9);
	assert_int_equal(count(e, STORE_C_down_q2_corrupt), 0);
	assert_int_equal(downlink_q2_release(d, 7, NULL), 0); /* PUBREL */
	downlink_close(d);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 9);
	assert_int_equal(downlink_q2_release(d, 0, NULL), 0); /* the cloud lost the session */
	kept_ids(d, ids);
	assert_int_equal(ids[0], 0);
	downlink_close(d);
}

/* An entry whose checksum fails (a bit flipped on disk) is freed and counted, not read as what
 * its bits say: OWNED by mistake, the cloud's next message under that id would be answered
 * PUBREC and never delivered. The header too: rewritten, its entries read on their own. */
static void
test_q2_ids_checked(void **state)
{
	struct env *e = *state;
	const struct rules *r = store_rules(e->st);
	struct downlink *d;
	uint16_t ids[9];
	uint8_t ent[16], flip = 0x10;

	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/a", "1", 2, 7), 0);
	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/b", "2", 2, 9), 0);
	downlink_close(d);
	q2_poke(e, 9 * 16 + 2, &flip, 1);    /* 9's value: a bit of its sequence */
	q2_entry(ent, 12, (2ull << 62) | 1); /* OWNED, 12's, written in 13's place */
	q2_poke(e, 13 * 16, ent, sizeof(ent));
	q2_poke(e, 15 * 16 + 12, "x", 1); /* a free entry with garbage after */
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1); /* 7 */
	assert_int_equal(ids[1], 7);
	assert_int_equal(count(e, STORE_C_down_q2_corrupt), 3);
	downlink_close(d);
	q2_poke(e, 8,
	    "\x02\0\0\0"
	    "abcd",
	    8); /* version 2, the header's CRC wrong */
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1);
	assert_int_equal(count(e, STORE_C_down_q2_corrupt), 4);
	downlink_close(d);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(count(e, STORE_C_down_q2_corrupt), 4); /* all rewritten: none since */
	downlink_close(d);
}

/* The first version's file (8-byte entries, no header, no checksum) is converted at open, what it
 * held kept; a newer version's file is refused and left as it is (the downlink does not open,
 * nor the agent: a clear error, as the spool's for its newer segments), and so is a file that is
 * not one. */
static void
test_q2_ids_versions(void **state)
{
	struct env *e = *state;
	const struct rules *r = store_rules(e->st);
	struct downlink *d;
	uint16_t ids[9];
	uint8_t v1[8], hdr[16];
	char path[128];

	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	downlink_close(d); /* the spool directory made */
	snprintf(path, sizeof(path), "%s/spool/downlink/q2-ids", e->dir);
	assert_int_equal(truncate(path, 0), 0);
	for (int i = 0; i < 8; i++)
		v1[i] = (uint8_t)(((2ull << 62) | 5) >> (8 * i)); /* OWNED, record 5 */
	q2_poke(e, 300 * 8, v1, 8);
	q2_poke(e, 65535 * 8, v1, 8);
	for (int i = 0; i < 8; i++)
		v1[i] = (uint8_t)(((1ull << 62) | 999) >> (8 * i)); /* PENDING, no such record */
	q2_poke(e, 4 * 8, v1, 8);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 300);
	assert_int_equal(ids[2], 65535);
	downlink_close(d);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids); /* converted: the same read again, as version 2 */
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[2], 65535);
	assert_int_equal(count(e, STORE_C_down_q2_corrupt), 0);
	downlink_close(d);
	memcpy(hdr, "edgegwQ2\x03\0\0\0", 12); /* version 3 */
	for (int i = 0; i < 4; i++)
		hdr[12 + i] = (uint8_t)(crc32c(hdr, 12, 0) >> (8 * i));
	q2_poke(e, 0, hdr, sizeof(hdr));
	assert_int_equal(
	    downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), -EPROTONOSUPPORT);
	q2_poke(e, 0, "not ours", 8);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), -EPROTO);
	/* a new file whose header's write was cut short: made again (it holds no entry yet) */
	assert_int_equal(truncate(path, 0), 0);
	q2_poke(e, 0, "edgegw", 6);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 0);
	downlink_close(d);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	downlink_close(d);
}

/* Without a spool and without a channel: a QoS 1/2 message is not owned (the uplink does not
 * acknowledge it; the cloud sends it again), a QoS 0 one is lost; both counted. */
static void
test_not_owned_without_spool_or_channel(void **state)
{
	struct env *e = *state;
	struct downlink *d;

	assert_int_equal(downlink_open(&d, e->loop, store_rules(e->st), e->srv, NULL, e->st), 0);
	assert_true(deliver(d, "site/lab/cmd/plant/a", "1", 1) < 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "0", 0), 0);
	assert_int_equal(count(e, STORE_C_down_not_owned), 1);
	assert_int_equal(count(e, STORE_C_down_lost), 1);
	downlink_close(d);
}

/* The dataplane remembers the highest ref it took across its restarts (journaled with the
 * message); a downlink spool removed by hand restarts its sequence numbers at 1, but its refs
 * start above a new base, so its records are taken as new, not as ones sent before. With the
 * sequence number as the ref, the next message was answered as taken (DOWN_DUP) and lost. */
static void
test_spool_removed_by_hand(void **state)
{
	struct env *e = *state;
	struct downlink *d;
	char cmd[200];

	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	lc_connect(e);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/b", "2", 1), 0);
	pump(e, d, 2);
	downlink_close(d);
	snprintf(cmd, sizeof(cmd), "rm -rf %s/spool/downlink", e->dir);
	assert_int_equal(system(cmd), 0);
	/* the same dataplane (its dedupe as journaled), a new downlink spool */
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/c", "3", 1), 0);
	pump(e, d, 3);
	assert_string_equal(e->lc.got[2], "cmd/plant/c:3:1");
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_DUP), 0);
	assert_int_equal(count(e, STORE_C_down_taken), 3); /* released on its answer */
	/* the next agent on that spool keeps its base: a resend is still answered, not taken */
	downlink_close(d);
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/d", "4", 1), 0);
	pump(e, d, 4);
	assert_string_equal(e->lc.got[3], "cmd/plant/d:4:1");
	assert_int_equal(count(e, STORE_C_down_taken), 4);
	downlink_close(d);
}

/* A downlink spool made while the clock was behind the one that drew the dataplane's last refs
 * (a box without a real-time clock, booting at its firmware's date): its base is below the
 * highest ref the dataplane took. The dataplane's HELLO says that ref; the base moves above it
 * (counted, written to ref-base), so the records are delivered, not answered as taken before
 * (DOWN_DUP) and lost. A dataplane whose highest ref is one of this spool's does not move it. */
static void
test_ref_base_behind_the_dataplane(void **state)
{
	struct env *e = *state;
	struct dpchan_client_config cc = { .path = e->sock, .lcore = 1, .boot_id = 11 };
	uint64_t seen = UINT64_C(1) << 62; /* far above any wall-clock base */
	struct downlink *d;

	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0); /* before any HELLO */
	memset(&e->lc, 0, sizeof(e->lc));
	e->lc.answer = 1;
	e->lc.now = 1000;
	cc.down_seen = &seen;
	assert_non_null(e->lc.c = dpchan_client_new(&cc, &lc_ops, &e->lc));
	pump(e, d, 1);
	assert_int_equal(dpchan_server_down_seen(e->srv), (UINT64_C(1) << 62));
	assert_string_equal(e->lc.got[0], "cmd/plant/a:1:1");
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_DUP), 0);
	assert_int_equal(count(e, STORE_C_down_rebased), 1);
	assert_int_equal(count(e, STORE_C_down_taken), 1);
	assert_true(seen > (UINT64_C(1) << 62)); /* it took the record under the new base */
	/* the next agent keeps the moved base (and the dataplane's highest ref is its own now) */
	downlink_close(d);
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/b", "2", 1), 0);
	pump(e, d, 2);
	assert_string_equal(e->lc.got[1], "cmd/plant/b:2:1");
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_DUP), 0);
	assert_int_equal(count(e, STORE_C_down_rebased), 1);
	downlink_close(d);
}

/* ---- the q2-ids file's writes failing on demand (through the spool's I/O table) ---- */
static struct {
	int q2_fd;      /* the q2-ids file's descriptor (-1: not open) */
	int skip, fail; /* its next pwrites: skip go through, then fail fail (EIO) */
} qf = { -1, 0, 0 };

static int
qf_open(void *ctx, const char *path, int flags, mode_t mode)
{
	int fd = spool_io_posix.open(ctx, path, flags, mode);
	size_t n = strlen(path);

	if (fd >= 0 && n >= 7 && strcmp(path + n - 7, "/q2-ids") == 0)
		qf.q2_fd = fd;
	return fd;
}

static ssize_t
qf_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	if (fd == qf.q2_fd && qf.skip > 0) {
		qf.skip--;
	} else if (fd == qf.q2_fd && qf.fail > 0) {
		qf.fail--;
		errno = EIO;
		return -1;
	}
	return spool_io_posix.pwrite(ctx, fd, buf, len, off);
}

/* Converting the first version's file fails at each of its steps (the new file's write, its
 * fdatasync, the rename, the directory's fsync): the open fails (the agent does not start), the
 * old file stays as it was and nothing is left beside it; the next open converts it. */
static int fail_step; /* 1 pwrite of q2-ids.new, 2 its fdatasync, 3 rename, 4 fsync_dir */

static ssize_t
cv_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	if (fail_step == 1 && len > 16) { /* the whole new file in one write */
		errno = ENOSPC;
		return -1;
	}
	return spool_io_posix.pwrite(ctx, fd, buf, len, off);
}

static int
cv_fdatasync(void *ctx, int fd)
{
	struct stat st;

	if (fail_step == 2 && fstat(fd, &st) == 0 && st.st_size > 65536 * 8) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.fdatasync(ctx, fd);
}

static int
cv_rename(void *ctx, const char *from, const char *to)
{
	if (fail_step == 3) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.rename(ctx, from, to);
}

static int
cv_fsync_dir(void *ctx, const char *dir)
{
	if (fail_step == 4) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.fsync_dir(ctx, dir);
}

static void
test_q2_ids_convert_fails(void **state)
{
	struct env *e = *state;
	const struct rules *r = store_rules(e->st);
	struct spool_config sc = e->sc->spool;
	struct spool_io_ops ops = spool_io_posix;
	struct downlink *d;
	uint16_t ids[9];
	uint8_t v1[8], head[8];
	char path[128], tmp[140];
	FILE *f;

	ops.pwrite = cv_pwrite;
	ops.fdatasync = cv_fdatasync;
	ops.rename = cv_rename;
	ops.fsync_dir = cv_fsync_dir;
	sc.io = &ops;
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	downlink_close(d);
	snprintf(path, sizeof(path), "%s/spool/downlink/q2-ids", e->dir);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	assert_int_equal(truncate(path, 0), 0);
	for (int i = 0; i < 8; i++)
		v1[i] = (uint8_t)(((2ull << 62) | 5) >> (8 * i)); /* OWNED */
	q2_poke(e, 300 * 8, v1, 8);
	for (fail_step = 1; fail_step <= 4; fail_step++) {
		assert_true(downlink_open(&d, e->loop, r, e->srv, &sc, e->st) < 0);
		assert_non_null(f = fopen(path, "rb"));
		assert_int_equal(fread(head, 1, 8, f), 8);
		fclose(f);
		if (fail_step < 4) { /* before the rename: the old file as it was, no new one */
			assert_memory_equal(head, (uint8_t[8]){ 0 }, 8);
			assert_int_equal(access(tmp, F_OK), -1);
		}
	}
	fail_step = 0;
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &sc, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 300);
	downlink_close(d);
}

/* QoS 2 from the cloud while the q2-ids file cannot be written (counted down_q2_fail each
 * time): a message whose packet id could not be kept is owned all the same (it is on disk in
 * the spool: acknowledged, delivered once; not acknowledging it would have the cloud's resend
 * delivered a second time), only its id is not kept (an agent restart before its PUBREL may
 * deliver a resend twice, as down_q2_fail in store_stats.def says; one whose PENDING entry was written is owned
 * again at the next open). A PUBREL whose id cannot be freed on disk is refused (PUBCOMP
 * withheld, the id still kept) until the file can be written again. */
static void
test_q2_ids_write_fails(void **state)
{
	struct env *e = *state;
	struct spool_io_ops ops = spool_io_posix;
	struct downlink *d;
	uint16_t ids[9];

	ops.open = qf_open;
	ops.pwrite = qf_pwrite;
	e->sc->spool.io = &ops;
	qf.q2_fd = -1;
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	assert_true(qf.q2_fd >= 0);
	lc_connect(e);
	qf.fail = 1; /* the PENDING entry */
	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/a", "1", 2, 5), 0);
	assert_int_equal(count(e, STORE_C_down_q2_fail), 1);
	qf.skip = 1; /* PENDING written, OWNED not */
	qf.fail = 1;
	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/b", "2", 2, 6), 0);
	assert_int_equal(count(e, STORE_C_down_q2_fail), 2);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 0); /* neither id kept */
	pump(e, d, 2);               /* both delivered, once */
	assert_string_equal(e->lc.got[0], "cmd/plant/a:1:1");
	assert_string_equal(e->lc.got[1], "cmd/plant/b:2:1");
	assert_int_equal(count(e, STORE_C_down_spooled), 2);

	assert_int_equal(deliver_id(d, "site/lab/cmd/plant/c", "3", 2, 7), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1);
	qf.fail = 1;
	assert_int_equal(downlink_q2_release(d, 7, NULL), -EIO); /* PUBCOMP withheld */
	assert_int_equal(count(e, STORE_C_down_q2_fail), 3);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1); /* still kept: the cloud's next PUBREL frees it */
	assert_int_equal(ids[1], 7);
	assert_int_equal(downlink_q2_release(d, 7, NULL), 0);
	pump(e, d, 3);
	downlink_close(d);
	e->sc->spool.io = NULL;
	qf.q2_fd = -1;
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1); /* 7 freed on disk, 5 never written; 6's PENDING entry */
	assert_int_equal(ids[1], 6); /* made it owned at open: its record reached the spool */
	downlink_close(d);
}

/* ---- acknowledged off the loop: the spool's flusher says when (downlink_set_owned) ---- */
static struct {
	uint64_t token[8];
	uint16_t id[8];
	int rc[8];
	int n;
} owned;

static void
on_owned(void *arg, uint64_t token, uint8_t qos, uint16_t packet_id, int rc)
{
	(void)arg;
	(void)qos;
	assert_true(owned.n < 8);
	owned.token[owned.n] = token;
	owned.id[owned.n] = packet_id;
	owned.rc[owned.n++] = rc;
}

/* The loop's part (after the flusher's eventfd, or a tick): until want were said. */
static void
wait_owned(struct downlink *d, int want)
{
	for (int i = 0; i < 3000 && owned.n < want; i++) {
		downlink_replay(d);
		usleep(1000);
	}
	assert_int_equal(owned.n, want);
}

static bool syncs_fail; /* every fdatasync through the spool's table fails (EIO) */

/* Who syncs what, in which order: the loop (this test's thread) never; the q2-ids file before
 * any record that names it is written ('S' then 'W' in ev). */
static struct {
	pthread_t loop;
	int loop_syncs, n; /* the q2-ids file: qf.q2_fd (qf_open) */
	bool on;
	char ev[256];
} io_log;

static ssize_t
sf_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	if (io_log.on && fd != qf.q2_fd && io_log.n < 255)
		io_log.ev[io_log.n++] = 'W';
	return spool_io_posix.pwrite(ctx, fd, buf, len, off);
}

static int
sf_fdatasync(void *ctx, int fd)
{
	if (io_log.on && pthread_equal(pthread_self(), io_log.loop))
		io_log.loop_syncs++;
	if (io_log.on && fd == qf.q2_fd && io_log.n < 255)
		io_log.ev[io_log.n++] = 'S';
	if (syncs_fail) {
		errno = EIO;
		return -1;
	}
	return spool_io_posix.fdatasync(ctx, fd);
}

/* downlink_set_on_commit's hook, run by the loop: stops it once the freed id is durable (a tick
 * stops it after 3 s whatever happened: then the hook never saw it) */
static struct {
	struct downlink *d;
	struct agent_loop *loop;
	uint64_t need;
	int calls, ticks;
	bool armed, durable;
} cw;

static void
on_commit_seen(void *arg)
{
	(void)arg;
	cw.calls++;
	if (cw.armed && downlink_q2_durable(cw.d, cw.need)) {
		cw.durable = true;
		agent_loop_stop(cw.loop);
	}
}

static void
guard_tick(void *arg, uint64_t now_ms)
{
	(void)arg;
	(void)now_ms;
	if (cw.armed && ++cw.ticks > 300)
		agent_loop_stop(cw.loop);
}

static int
deliver_tok(struct downlink *d, const char *topic, const char *payload, uint8_t qos, uint16_t id,
    uint64_t token)
{
	return downlink_deliver(
	    d, topic, (const uint8_t *)payload, strlen(payload), qos, false, id, token);
}

/* With an owned_fn, a QoS 1/2 message is appended and the loop goes on: its acknowledgement is
 * said after the flusher's commit (never inside downlink_deliver), in order, with the token
 * it came with; a QoS 2 resend (a new connection's token) while it waits is not spooled twice
 * and takes the answer; a failed commit says not owned (counted). Without an owned_fn, the
 * loop waits for the commit as before. */
static void
test_owned_after_the_commit(void **state)
{
	struct env *e = *state;
	struct spool_io_ops ops = spool_io_posix;
	struct downlink *d;
	uint16_t ids[9];

	ops.open = qf_open;
	ops.pwrite = sf_pwrite;
	ops.fdatasync = sf_fdatasync;
	e->sc->spool.io = &ops;
	syncs_fail = false;
	memset(&owned, 0, sizeof(owned));
	qf.q2_fd = -1;
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	assert_true(qf.q2_fd >= 0);
	downlink_set_owned(d, on_owned, e);
	lc_connect(e);
	io_log.loop = pthread_self();
	io_log.n = io_log.loop_syncs = 0;
	memset(io_log.ev, 0, sizeof(io_log.ev));
	io_log.on = true;
	/* the QoS 2 one first: the first record the spool writes names its id, synced before it */
	assert_int_equal(deliver_tok(d, "site/lab/cmd/plant/b", "2", 2, 5, 12), DOWNLINK_OWN_LATER);
	assert_int_equal(deliver_tok(d, "site/lab/cmd/plant/b", "2", 2, 5, 13), DOWNLINK_OWN_LATER);
	assert_int_equal(deliver_tok(d, "site/lab/cmd/plant/a", "1", 1, 0, 11), DOWNLINK_OWN_LATER);
	assert_int_equal(owned.n, 0);
	assert_int_equal(count(e, STORE_C_down_spooled), 0);
	wait_owned(d, 2);
	io_log.on = false;
	assert_int_equal(io_log.loop_syncs, 0); /* the flusher's, all of them */
	assert_non_null(strchr(io_log.ev, 'W'));
	assert_true(
	    strchr(io_log.ev, 'S') != NULL && strchr(io_log.ev, 'S') < strchr(io_log.ev, 'W'));
	assert_int_equal(owned.token[0], 13); /* the resend's: its connection is the live one */
	assert_int_equal(owned.id[0], 5);
	assert_int_equal(owned.rc[0], 0);
	assert_int_equal(owned.token[1], 11);
	assert_int_equal(owned.rc[1], 0);
	assert_int_equal(owned.id[1], 0);
	assert_int_equal(count(e, STORE_C_down_spooled), 2);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 5);
	pump(e, d, 2); /* one record each */
	assert_string_equal(e->lc.got[0], "cmd/plant/b:2:1");
	assert_string_equal(e->lc.got[1], "cmd/plant/a:1:1");

	/* its PUBREL: the id freed and made durable by the flusher's commit, not by the loop; the
	 * commit wakes the loop, whose on_commit hook then finds it durable (the agent's PUBCOMP
	 * goes there, not at its next tick) */
	memset(&cw, 0, sizeof(cw));
	cw.d = d;
	cw.loop = e->loop;
	downlink_set_on_commit(d, on_commit_seen, NULL);
	assert_int_equal(agent_loop_add_tick(e->loop, guard_tick, NULL), 0);
	io_log.loop_syncs = 0;
	io_log.on = true;
	assert_int_equal(downlink_q2_release(d, 5, &cw.need), 0);
	cw.armed = true;
	assert_int_equal(agent_loop_run(e->loop), 0);
	io_log.on = false;
	assert_true(cw.durable);
	assert_true(downlink_q2_durable(d, cw.need));
	assert_int_equal(io_log.loop_syncs, 0);
	downlink_set_on_commit(d, NULL, NULL);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 0);

	downlink_set_owned(d, NULL, NULL); /* no way to say it later: owned before it returns */
	assert_int_equal(deliver_tok(d, "site/lab/cmd/plant/c", "3", 1, 0, 14), 0);
	assert_int_equal(count(e, STORE_C_down_spooled), 3);
	pump(e, d, 3);

	downlink_set_owned(d, on_owned, e);
	syncs_fail = true;
	assert_int_equal(deliver_tok(d, "site/lab/cmd/plant/d", "4", 1, 0, 15), DOWNLINK_OWN_LATER);
	wait_owned(d, 3);
	assert_int_equal(owned.token[2], 15);
	assert_int_equal(owned.rc[2], -EIO);
	assert_int_equal(count(e, STORE_C_down_not_owned), 1);
	assert_int_equal(count(e, STORE_C_down_spooled), 3);
	syncs_fail = false;
	downlink_close(d);
	e->sc->spool.io = NULL;
}

/*
 * The cloud loses the session (CONNACK session present 0: every QoS 2 id released) while a QoS 2
 * message of the old session waits for its commit. The new session starts its ids again, and
 * its first QoS 2 message takes the same id: it is a new message, not a resend of the waiting
 * one. It is spooled and delivered, and its id is the one kept until its PUBREL. The old
 * message is owned and delivered too, but its id is not kept (the session it belonged to is
 * gone). Before, the new message took the old one's place: it was acknowledged
 * and never delivered, and the old id was kept on disk as owned.
 */
static void
test_session_lost_while_waiting(void **state)
{
	struct env *e = *state;
	struct downlink *d;
	uint16_t ids[9];

	memset(&owned, 0, sizeof(owned));
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	downlink_set_owned(d, on_owned, e);
	lc_connect(e);
	assert_int_equal(
	    deliver_tok(d, "site/lab/cmd/plant/b", "old", 2, 5, 12), DOWNLINK_OWN_LATER);
	assert_int_equal(downlink_q2_release(d, 0, NULL), 0); /* session present 0 */
	assert_int_equal(
	    deliver_tok(d, "site/lab/cmd/plant/b", "new", 2, 5, 20), DOWNLINK_OWN_LATER);
	wait_owned(d, 2);
	assert_int_equal(owned.token[0], 12);
	assert_int_equal(owned.rc[0], 0);
	assert_int_equal(owned.id[0], 0); /* its id is the lost session's: not kept */
	assert_int_equal(owned.token[1], 20);
	assert_int_equal(owned.rc[1], 0);
	assert_int_equal(owned.id[1], 5);
	assert_int_equal(count(e, STORE_C_down_spooled), 2);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 5);
	pump(e, d, 2);
	assert_int_equal(e->lc.n, 2);
	assert_string_equal(e->lc.got[0], "cmd/plant/b:old:1");
	assert_string_equal(e->lc.got[1], "cmd/plant/b:new:1");

	/* the new message's PUBREL frees its id: none kept, also after a restart */
	assert_int_equal(downlink_q2_release(d, 5, NULL), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 0);
	downlink_close(d);
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	kept_ids(d, ids);
	assert_int_equal(ids[0], 0);
	downlink_close(d);
}

/* ---- a hand-made lcore: reads DOWN records, answers what the test says ---- */
static int
raw_lcore(struct env *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dpchan_hello h = { 9, 1, DPCHAN_VERSION };
	uint8_t buf[DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN];
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	int len = dpchan_encode_hello(buf, sizeof(buf), &h);

	strcpy(sa.sun_path, e->sock);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	for (int i = 0; i < 100 && dpchan_server_connected(e->srv) == 0; i++) {
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	assert_int_equal(dpchan_server_connected(e->srv), 1);
	return fd;
}

static int
raw_ref(void *arg, const struct dpchan_rec *r)
{
	uint64_t *refs = arg;

	if (refs[0] < 8)
		refs[++refs[0]] = r->ref;
	return 0;
}

/* refs[0]: how many DOWN records the lcore read; refs[1..]: their refs. */
static void
raw_read(int fd, uint64_t refs[9])
{
	static uint8_t buf[DPCHAN_FRAME_MAX];
	ssize_t n;

	memset(refs, 0, 9 * sizeof(*refs));
	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		assert_int_equal(dpchan_decode_recs(buf, (size_t)n, DPCHAN_DOWN, raw_ref, refs), 0);
}

static void
raw_ack(struct env *e, int fd, uint64_t first, uint64_t last)
{
	struct dpchan_range r = { first, last, 1 };
	uint8_t buf[64];
	int len = dpchan_encode_down_ack(buf, sizeof(buf), &r, 1);

	assert_true(len > 0);
	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	dpchan_server_run(e->srv);
}

/* Answers for records released already (counted down_ack_dup): a second answer for one ref, and
 * one for a ref below this spool's base (from before it was made) release nothing else and do
 * not make the downlink forget what is still unanswered: when that lcore's connection ends, the
 * record it never answered goes to the next lcore, and the answered one does not go again. */
static void
test_answered_twice(void **state)
{
	struct env *e = *state;
	struct downlink *d;
	uint64_t refs[9];
	int fd;

	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	fd = raw_lcore(e);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/b", "2", 1), 0);
	raw_read(fd, refs);
	assert_int_equal(refs[0], 2);
	assert_int_equal(refs[2], refs[1] + 1);
	raw_ack(e, fd, refs[1], refs[1]); /* a taken */
	raw_ack(e, fd, refs[1], refs[1]); /* and answered again */
	raw_ack(e, fd, 5, 5);             /* not one of this spool's */
	assert_int_equal(count(e, STORE_C_down_taken), 1);
	assert_int_equal(count(e, STORE_C_down_ack_dup), 2);
	close(fd); /* the lcore dies with b unanswered */
	for (int i = 0; i < 100 && dpchan_server_connected(e->srv) > 0; i++) {
		dpchan_server_run(e->srv);
		usleep(1000);
	}
	downlink_replay(d);
	assert_int_equal(count(e, STORE_C_down_resent), 1);
	lc_connect_boot(e, 8);
	pump(e, d, 1);
	assert_string_equal(e->lc.got[0], "cmd/plant/b:2:1"); /* b again, a not */
	assert_int_equal(count(e, STORE_C_down_taken), 2);
	assert_int_equal(count(e, STORE_C_down_ack_dup), 2);
	downlink_close(d);
}

/* A record in the downlink spool over any DOWN frame (spooled by a build with a larger one):
 * it can never go; it is dropped (counted down_spool_fail) and the messages behind it go.
 * Before, every tick read it again and failed, and nothing behind it was ever delivered. */
static void
test_oversized_spooled_record(void **state)
{
	struct env *e = *state;
	static uint8_t big[DPCHAN_FRAME_MAX + 1];
	struct spool_config c;
	struct spool *sp;
	struct downlink *d;
	char path[128];
	uint64_t seq;
	struct spool_rec_in in = { .cls = SPOOL_NORMAL,
		.qos = 1,
		.topic = "cmd/plant/big",
		.topic_len = 13,
		.payload = big,
		.payload_len = sizeof(big) };

	snprintf(path, sizeof(path), "%s/spool/downlink", e->dir);
	spool_config_defaults(&c);
	c.dir = path;
	assert_int_equal(spool_open(&c, &sp), 0);
	assert_int_equal(spool_append(sp, &in, &seq), 0);
	assert_int_equal(spool_commit(sp), 0);
	spool_close(sp);
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	lc_connect(e);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/a", "1", 1), 0);
	pump(e, d, 1);
	assert_string_equal(e->lc.got[0], "cmd/plant/a:1:1");
	assert_int_equal(count(e, STORE_C_down_spool_fail), 1);
	downlink_close(d); /* released: not read again by the next agent */
	assert_int_equal(
	    downlink_open(&d, e->loop, store_rules(e->st), e->srv, &e->sc->spool, e->st), 0);
	pump(e, d, 1);
	assert_int_equal(count(e, STORE_C_down_spool_fail), 1);
	downlink_close(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mapped_to_the_dataplane, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_spooled_while_the_channel_is_down, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_owned_without_spool_or_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_resent_when_the_dataplane_dies_before_taking, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_twice_when_the_agent_dies_before_the_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_q2_ids_kept_across_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_q2_ids_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_q2_ids_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_q2_ids_convert_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_lcore_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_removed_by_hand, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_ref_base_behind_the_dataplane, setup, teardown),
		cmocka_unit_test_setup_teardown(test_q2_ids_write_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owned_after_the_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_lost_while_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answered_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_spooled_record, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
