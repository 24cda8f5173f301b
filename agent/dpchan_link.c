/*
 * dpchan_link.c: lib/dpchan's server on the agent's loop (dpchan_link.h): one fd (the server's
 * epoll set) watched by the loop, and a run on every tick so that a connection paused while the
 * store was full is read again once it has room.
 */
#include "dpchan_link.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "conf.h"
#include "log.h"
#include "loop.h"

struct dpchan_link {
	struct dpchan_server *s;
	struct agent_loop *loop;
};

int
dpchan_link_load_conf(const char *path, struct dpchan_conf *out, char *err, size_t errlen)
{
	struct conf_doc *doc;
	int rc = 0;

	dpchan_conf_defaults(out);
	if (conf_load_file(path, &doc, err, errlen) != 0)
		return -1;
	dpchan_conf_parse(conf_get(conf_get(conf_root(doc), "dataplane"), "channel"), out);
	if (conf_first_error(doc) != NULL) {
		conf_format_errors(doc, err, errlen);
		rc = -1;
	}
	conf_free(doc);
	return rc;
}

static void
on_ready(void *arg, uint32_t events)
{
	(void)events;
	dpchan_server_run(((struct dpchan_link *)arg)->s);
}

static void
on_tick(void *arg, uint64_t now_ms)
{
	struct dpchan_link *l = arg;

	(void)now_ms;
	if (l->s != NULL)
		dpchan_server_run(l->s);
}

int
dpchan_link_open(struct dpchan_link **out, struct agent_loop *loop, const struct dpchan_conf *c,
    const char *q2_path, const struct dpchan_sink_ops *sink, void *sink_arg)
{
	struct dpchan_server_config sc = {
		.path = c->path, .q2_path = q2_path, .max_q2_origins = c->max_qos2_origins
	};
	struct dpchan_link *l = calloc(1, sizeof(*l));
	int rc;

	if (l == NULL)
		return -ENOMEM;
	if ((l->s = dpchan_server_new(&sc, sink, sink_arg)) == NULL) {
		rc = -errno;
		log_err("dpchan: cannot listen at %s: %m", c->path);
		free(l);
		return rc;
	}
	l->loop = loop;
	if ((rc = agent_loop_add_fd(loop, dpchan_server_fd(l->s), EPOLLIN, on_ready, l)) != 0 ||
	    (rc = agent_loop_add_tick(loop, on_tick, l)) != 0) {
		dpchan_server_free(l->s);
		free(l);
		return rc;
	}
	log_info("dpchan: listening for the dataplane's lcores at %s", c->path);
	*out = l;
	return 0;
}

void
dpchan_link_durable(void *arg, uint64_t first, uint64_t last, int status)
{
	struct dpchan_link *l = arg;

	if (l->s != NULL)
		dpchan_server_durable(l->s, first, last, status);
}

void
dpchan_link_close(struct dpchan_link *l)
{
	if (l == NULL)
		return;
	agent_loop_del_fd(l->loop, dpchan_server_fd(l->s));
	dpchan_server_free(l->s);
	free(l); /* the loop's tick still names it: the loop does not run again (dpchan_link.h) */
}

struct dpchan_server *
dpchan_link_server(struct dpchan_link *l)
{
	return l->s;
}
