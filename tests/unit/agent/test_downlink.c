/*
 * Unit test of the agent's downlink (agent/downlink.c): cloud messages mapped by the lab's rule
 * (site/lab/cmd/plant/# -> cmd/plant/#) reach an lcore's dpchan client as DOWN records, QoS
 * capped by max_qos. While no lcore is connected they are owned only once on disk in the
 * downlink spool, and handed over in order when one connects, also after the agent restarted;
 * without a spool a QoS 1 message is not owned (not acknowledged) and a QoS 0 one is lost;
 * every drop counted (the store's down_* counters, the client's DOWN_NO_SUBSCRIBER and
 * DOWN_REFUSED).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "downlink.h"
#include "dpchan_client.h"
#include "loop.h"
#include "store.h"
#include "uplink.h"

struct lcore {
	struct dpchan_client *c;
	char got[16][64]; /* topic:payload:qos of each DOWN, in order */
	int n, answer;    /* what the broker says: 1 delivered, 0 no subscriber, < 0 refused */
	uint64_t now;
};

static int
lc_down(void *arg, const struct dpchan_rec *r)
{
	struct lcore *l = arg;

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
no_cmd(void *arg, const char *topic, const uint8_t *payload, size_t len, uint8_t qos, bool retain)
{
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
lc_connect(struct env *e)
{
	struct dpchan_client_config cc = { .path = e->sock, .lcore = 1, .boot_id = 7 };

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

/* Let the client read what the server sent (it reads every few ms of its clock when idle). */
static void
lc_read(struct env *e, int want)
{
	for (int i = 0; i < 200 && e->lc.n < want; i++) {
		dpchan_client_poll(e->lc.c, e->lc.now += 100);
		usleep(1000);
	}
	assert_int_equal(e->lc.n, want);
}

static uint64_t
count(struct env *e, enum store_counter c)
{
	struct store_stats s;

	store_get_stats(e->st, &s);
	return s.c[c];
}

static int
deliver(struct downlink *d, const char *topic, const char *payload, uint8_t qos)
{
	return downlink_deliver(d, topic, (const uint8_t *)payload, strlen(payload), qos, false);
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
	char longt[400];

	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	lc_connect(e);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/valve1", "open", 1), 0);
	assert_int_equal(deliver(d, "site/lab/cmd/plant/valve2", "close", 2), 0); /* max_qos 1 */
	lc_read(e, 2);
	e->lc.answer = 0; /* no sensor subscribed: delivered to none, counted, not a drop */
	assert_int_equal(deliver(d, "site/lab/cmd/plant/x", "q0", 0), 0);
	lc_read(e, 3);
	e->lc.answer = -EINVAL; /* the broker refused it */
	assert_int_equal(deliver(d, "site/lab/cmd/plant/y", "bad", 0), 0);
	lc_read(e, 4);
	assert_string_equal(e->lc.got[0], "cmd/plant/valve1:open:1");
	assert_string_equal(e->lc.got[1], "cmd/plant/valve2:close:1");
	assert_string_equal(e->lc.got[2], "cmd/plant/x:q0:0");
	assert_int_equal(count(e, STORE_C_down_to_dataplane), 4);
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_RX), 4);
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_NO_SUBSCRIBER), 1);
	assert_int_equal(dpchan_client_counter(e->lc.c, DPCHAN_C_DOWN_REFUSED), 1);
	/* no rule: not the downlink's; too large, or no valid local topic: owned and dropped */
	assert_int_equal(deliver(d, "site/other/cmd/plant/x", "z", 1), -ENOENT);
	assert_int_equal(
	    downlink_deliver(d, "site/lab/cmd/plant/big", big, sizeof(big), 1, false), 0);
	assert_int_equal(count(e, STORE_C_down_too_large), 1);
	memset(longt, 'a', sizeof(longt));
	memcpy(longt, "site/lab/cmd/plant/", 19);
	longt[sizeof(longt) - 1] = '\0';
	assert_int_equal(deliver(d, longt, "z", 1), 0);
	assert_int_equal(count(e, STORE_C_down_bad_topic), 1);
	assert_int_equal(count(e, STORE_C_down_received), 6);
	assert_int_equal(count(e, STORE_C_down_spooled), 0);
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
	lc_read(e, 4);
	assert_string_equal(e->lc.got[0], "cmd/plant/a:1:1");
	assert_string_equal(e->lc.got[1], "cmd/plant/b:2:1");
	assert_string_equal(e->lc.got[2], "cmd/plant/c:3:1");
	assert_string_equal(e->lc.got[3], "cmd/plant/d:4:1");
	assert_int_equal(count(e, STORE_C_down_replayed), 3);
	assert_int_equal(count(e, STORE_C_down_to_dataplane), 1);
	/* handed over and released: the next agent has nothing to hand over again */
	downlink_close(d);
	assert_int_equal(downlink_open(&d, e->loop, r, e->srv, &e->sc->spool, e->st), 0);
	downlink_replay(d);
	dpchan_client_poll(e->lc.c, e->lc.now += 100);
	assert_int_equal(e->lc.n, 4);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mapped_to_the_dataplane, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_spooled_while_the_channel_is_down, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_owned_without_spool_or_channel, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
