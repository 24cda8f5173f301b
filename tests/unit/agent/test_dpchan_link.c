/*
 * Unit test of the agent's end of the dataplane channel on the agent's real loop
 * (agent/dpchan_link.c): an lcore's client connects, its records reach the sink, the sink's
 * durability report goes back as DURABLE; and the socket path is read from dataplane.channel.
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

#include "dpchan_client.h"
#include "dpchan_link.h"
#include "loop.h"

struct world {
	struct agent_loop *loop;
	struct dpchan_link *link;
	struct dpchan_client *c;
	uint64_t token, taken, durable_ok;
	int ticks, submitted;
};

static int
sink_submit(void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *tok)
{
	struct world *w = arg;

	assert_int_equal(from->lcore, 5);
	assert_int_equal(r->topic_len, 7);
	w->taken++;
	*tok = ++w->token;
	return 0;
}

static const struct dpchan_sink_ops sink = { .submit = sink_submit };

static void
on_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct world *w = arg;

	if (status == 0)
		w->durable_ok += last - first + 1;
}

static void
on_ready(void *arg)
{
	(void)arg;
}

static const struct dpchan_client_ops client_ops = { .durable = on_durable, .ready = on_ready };

/* The lcore's side, driven from the loop's tick; the store's report once it took three. */
static void
tick(void *arg, uint64_t now_ms)
{
	struct world *w = arg;
	struct dpchan_rec r = { .qos = 1,
		.topic = "plant/x",
		.topic_len = 7,
		.payload = (const uint8_t *)"1",
		.payload_len = 1 };

	dpchan_client_poll(w->c, now_ms);
	while (dpchan_client_connected(w->c) && w->submitted < 3) {
		r.ref = (uint64_t)++w->submitted;
		assert_int_equal(dpchan_client_submit(w->c, &r), 0);
	}
	if (w->taken == 3 && w->durable_ok == 0)
		dpchan_link_durable(w->link, 1, 3, 0);
	if (w->durable_ok == 3 || ++w->ticks > 500)
		agent_loop_stop(w->loop);
}

static void
test_link_on_loop(void **state)
{
	struct world w = { 0 };
	char dir[] = "/tmp/dpchan-link-XXXXXX", cfg[96], err[256];
	struct dpchan_conf c;
	struct dpchan_client_config cc = { .lcore = 5, .boot_id = 1 };
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(cfg, sizeof(cfg), "%s/gateway.yaml", dir);
	assert_non_null(f = fopen(cfg, "w"));
	fprintf(f, "dataplane:\n  channel: {path: %s/dp.sock}\nagent: {}\n", dir);
	fclose(f);
	assert_int_equal(dpchan_link_load_conf(cfg, &c, err, sizeof(err)), 0);
	assert_true(c.enabled);
	cc.path = c.path;
	assert_int_equal(agent_loop_create(&w.loop, 10), 0);
	assert_int_equal(dpchan_link_open(&w.link, w.loop, &c, NULL, &sink, &w), 0);
	assert_non_null(w.c = dpchan_client_new(&cc, &client_ops, &w));
	assert_int_equal(agent_loop_add_tick(w.loop, tick, &w), 0);
	assert_int_equal(agent_loop_run(w.loop), 0);
	assert_int_equal(w.taken, 3);
	assert_int_equal(w.durable_ok, 3);
	assert_int_equal(dpchan_server_connected(dpchan_link_server(w.link)), 1);
	dpchan_client_free(w.c);
	dpchan_link_close(w.link);
	agent_loop_destroy(w.loop);
	/* a bad section is refused with its place */
	assert_non_null(f = fopen(cfg, "w"));
	fprintf(f, "dataplane:\n  channel: {max_pending: 0}\n");
	fclose(f);
	assert_int_equal(dpchan_link_load_conf(cfg, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "gateway.yaml:2:"));
	unlink(cfg);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_link_on_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
