/*
 * main.c: edgegw-agent. Loads and checks the agent's config, builds the buses and the uplink,
 * runs the event loop until SIGINT/SIGTERM, and stops in order: buses first (no new messages),
 * then what is queued goes to the uplink, then the uplink closes. SIGHUP reloads the config
 * (checked whole first), SIGUSR1 logs the stats. Under systemd (Type=notify): READY once
 * started, the watchdog pinged from the loop's tick, RELOADING/STOPPING around those.
 * A device whose profile is bad or missing is disabled (logged, counted, listed in the stats)
 * and the others run; --strict (and --check) make that an error instead.
 *   edgegw-agent [-c FILE] [--check] [--strict] [-v]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <systemd/sd-daemon.h>

#include "agent.h"
#include "cmdspool.h"
#include "downlink.h"
#include "dpchan_link.h"
#include "clock.h"
#include "metrics.h"
#include "stats.h"
#include "log.h"

static void
respond_reject(struct agent *a, const struct mb_write_req *req, const char *why)
{
	char msg[MB_WRITE_RESPONSE_MAX];
	int n;

	a->cmd_rejected++;
	LOG_RATELIMITED(LOG_LVL_WARN, 10, "command rejected: %s", why);
	n = mb_write_response(msg, sizeof(msg), req, false, why, NULL);
	if (n > 0 && a->cfg.cmd_response_topic[0])
		uplink_submit(a->up, a->cfg.cmd_response_topic, msg, (size_t)n, 1, false);
}

static struct mb_bus *
find_device(struct agent *a, const char *name, size_t *dev)
{
	for (size_t i = 0; i < a->nbuses; i++) {
		int d = mb_bus_find_device(a->buses[i], name);

		if (d >= 0) {
			*dev = (size_t)d;
			return a->buses[i];
		}
	}
	return NULL;
}

/* A parsed write command to its device's bus: 0 queued (its response carries seq), 1 refused
 * with a response. */
static int
write_submit(struct agent *a, const struct mb_write_req *req, uint64_t seq)
{
	struct mb_write_op op;
	const struct mb_point *p;
	struct mb_bus *b;
	char err[256];
	size_t dev, pi;

	b = find_device(a, req->device, &dev);
	if (b == NULL) {
		snprintf(err, sizeof(err), "no device named '%s'", req->device);
		respond_reject(a, req, err);
		return 1;
	}
	p = mb_profile_point(mb_bus_device_profile(b, dev), req->point, &pi);
	if (p == NULL) {
		snprintf(
		    err, sizeof(err), "device '%s' has no point '%s'", req->device, req->point);
	} else if (mb_write_prepare_req(p, req, &op, err, sizeof(err)) == 0) {
		if (mb_bus_submit_write(b, dev, pi, req, &op, seq) == 0)
			return 0;
		/* refused with a response (a spooled one is then released): the cloud has its
		 * answer now, rather than a write that may come much later than it meant */
		snprintf(err, sizeof(err), "too many writes waiting for this bus");
	}
	agent_stat_add(mb_bus_dev_stats(b, dev), AGENT_DC_writes_rejected, 1);
	respond_reject(a, req, err);
	return 1;
}

/* A JSON write command for a Modbus device (seq: its command spool record, 0: in memory only):
 * 0 queued for its bus (its response carries seq), 1 refused with a response. */
static int
modbus_command(struct agent *a, const uint8_t *payload, size_t len, uint64_t seq)
{
	struct mb_write_req req;
	char err[256];

	if (mb_write_parse((const char *)payload, len, &req, err, sizeof(err)) != 0) {
		respond_reject(a, &req, err);
		return 1;
	}
	return write_submit(a, &req, seq);
}

static int
run_spooled(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
	return modbus_command(arg, payload, len, seq);
}

/*
 * A message from the cloud: the command topic goes to the Modbus write path (a QoS 1/2 command
 * is acknowledged once it is on disk in the command spool, its QoS 2 packet id with it, and
 * released from there once its bus answered or it was refused with a response: cmdspool.h; a
 * QoS 0 one is queued for its bus in memory), a topic of the downlink rules to the dataplane's
 * broker (downlink.h: acknowledged once on disk in the downlink spool). Anything else was not
 * asked for: acknowledged and ignored.
 */
static int
on_command(void *arg, const char *topic, const uint8_t *payload, size_t len, uint8_t qos,
    bool retain, uint16_t packet_id, uint64_t token)
{
	struct agent *a = arg;
	int rc;

	if (a->cfg.cmd_topic[0] && strcmp(topic, a->cfg.cmd_topic) == 0) {
		if (a->cmds == NULL || qos == 0) {
			modbus_command(a, payload, len, 0);
			return 0;
		}
		if ((rc = cmdspool_accept(a->cmds, payload, len, qos, packet_id, token)) < 0)
			return rc;
		if (rc == CMDSPOOL_OWN_LATER)
			return UPLINK_OWN_LATER; /* answered and run once on disk (cloud_owned) */
		cmdspool_run(a->cmds);
		return 0;
	}
	if (a->down != NULL &&
	    (rc = downlink_deliver(a->down, topic, payload, len, qos, retain, packet_id, token)) !=
		-ENOENT)
		return rc == DOWNLINK_OWN_LATER ? UPLINK_OWN_LATER : rc;
	return 0;
}

static void
on_messages(void *arg, uint32_t events)
{
	struct agent *a = arg;
	struct agent_msg_list l;
	struct agent_msg *m;

	(void)events;
	uint64_t seq;
	int rc;

	agent_msgq_take_all(&a->q, &l);
	while ((m = STAILQ_FIRST(&l)) != NULL) {
		STAILQ_REMOVE_HEAD(&l, link);
		/* command responses answer now or never: in memory (a spooled command is released
		 * once its response is submitted); readings through the store */
		if (m->cmd_seq != 0) {
			if (m->topic[0])
				uplink_submit(a->up, m->topic, m->payload, m->len, m->qos, false);
			if (a->cmds != NULL)
				cmdspool_done(a->cmds, m->cmd_seq);
		} else if (a->cfg.cmd_response_topic[0] &&
		    strcmp(m->topic, a->cfg.cmd_response_topic) == 0)
			uplink_submit(a->up, m->topic, m->payload, m->len, m->qos, m->retain);
		else if ((rc = store_submit(a->store, m->topic, m->payload, m->len, m->qos,
			      m->retain, &seq)) != 0 &&
		    rc != -ENOENT)
			LOG_RATELIMITED(LOG_LVL_WARN, 60, "store: reading on %s not stored: %s",
			    m->topic, strerror(-rc));
		free(m);
	}
}

/* The config's warnings (what loads but may not run as meant), one log line each. */
static void
log_config_warnings(const struct agent_config *c)
{
	for (const char *p = c->warnings; *p != '\0';) {
		size_t n = strcspn(p, "\n");

		log_warnx("config: %.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/* One line per bad profile file and per disabled device (the config keeps them all). */
static void
log_disabled(const struct agent_config *c)
{
	char line[1100];

	for (size_t i = 0; i < c->profiles.nbad; i++) {
		const struct mb_profile_bad *p = &c->profiles.bad[i];
		size_t n = 0;

		for (const char *s = p->error; *s && n + 3 < sizeof(line); s++) {
			if (*s == '\n') {
				line[n++] = ';';
				line[n++] = ' ';
			} else {
				line[n++] = *s;
			}
		}
		line[n] = '\0';
		log_err("profile '%s' does not load, its devices are disabled: %s", p->name, line);
	}
	for (size_t i = 0; i < c->nbuses; i++)
		for (size_t j = 0; j < c->buses[i].noff; j++)
			log_err("bus %s: device %s (unit %u) disabled: %s", c->buses[i].name,
			    c->buses[i].off[j].name, c->buses[i].off[j].unit_id,
			    c->buses[i].off[j].disabled);
}

/* What a reload did to the buses. */
struct bus_changes {
	size_t kept, restarted, added, removed;
};

static int
running_bus(const struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->nbuses; i++)
		if (a->buses[i] != NULL && strcmp(a->bus_conf[i]->name, name) == 0)
			return (int)i;
	return -1;
}

/* The writes queued on buses a reload stops, for the buses that replace them. */
struct carry {
	struct agent *a;
	struct {
		struct mb_write_req req;
		uint64_t seq;
	} * v;
	size_t n, cap;
};

static void
carry_add(void *arg, const struct mb_write_req *req, uint64_t seq)
{
	struct carry *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 8;
		void *v = realloc(c->v, cap * sizeof(*c->v));

		if (v == NULL) { /* answered, as a stop would (a spooled one released) */
			respond_reject(c->a, req, "not written: out of memory at a config reload");
			if (seq != 0 && c->a->cmds != NULL)
				cmdspool_done(c->a->cmds, seq);
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n].req = *req;
	c->v[c->n++].seq = seq;
}

/* On the running buses, in the order they were queued (a device gone, or a point its new
 * profile lacks: refused with a response, and a spooled one released). */
static void
carry_run(struct agent *a, struct carry *c)
{
	size_t refused = 0;

	for (size_t i = 0; i < c->n; i++)
		if (write_submit(a, &c->v[i].req, c->v[i].seq) != 0) {
			refused++;
			if (c->v[i].seq != 0 && a->cmds != NULL)
				cmdspool_done(a->cmds, c->v[i].seq);
		}
	if (c->n > 0)
		log_info("reload: %zu queued writes of the restarted buses carried over (%zu "
			 "refused)",
		    c->n, refused);
	free(c->v);
	*c = (struct carry){ .a = a };
}

/* The running buses that are not kept (changed or removed) stop; what they produced still goes
 * out. A stopped bus has let go of its port before its successor opens it. carry: the writes
 * still queued on them go there (a reload), else they are answered "not written" (a stop: a
 * spooled one stays in the command spool, for the next start). */
static void
buses_drop(struct agent *a, struct carry *carry)
{
	for (size_t i = 0; i < a->nbuses; i++)
		if (a->buses[i] != NULL)
			mb_bus_stop(a->buses[i]);
	if (a->store != NULL && a->q.efd >= 0)
		on_messages(a, 0);
	for (size_t i = 0; i < a->nbuses; i++) {
		if (carry != NULL && a->buses[i] != NULL)
			mb_bus_take_writes(a->buses[i], carry_add, carry);
		mb_bus_destroy(a->buses[i]);
	}
	free(a->buses);
	free(a->bus_conf);
	a->buses = NULL;
	a->bus_conf = NULL;
	a->nbuses = 0;
}

/*
 * Make the running buses those of nc: a bus whose config (devices and their profiles included)
 * and topic prefix did not change keeps running, with its learnt state, schedule and counters;
 * a changed one restarts, a removed one stops, a new one starts. A bus whose devices are all
 * disabled does not run.
 */
static int
buses_apply(struct agent *a, const struct agent_config *nc, struct bus_changes *ch)
{
	struct mb_bus **nb = calloc(nc->nbuses ? nc->nbuses : 1, sizeof(*nb));
	const struct agent_bus_conf **nbc = calloc(nc->nbuses ? nc->nbuses : 1, sizeof(*nbc));
	bool prefix_same = strcmp(a->cfg.topic_prefix, nc->topic_prefix) == 0;
	struct carry carry = { .a = a };
	size_t k = 0, n = 0;
	int rc = 0;

	if (nb == NULL || nbc == NULL) {
		free(nb);
		free(nbc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nc->nbuses; i++) {
		const struct agent_bus_conf *c = &nc->buses[i];
		int r = running_bus(a, c->name);

		if (c->ndevs == 0) {
			log_warnx("bus %s: every device on it is disabled; not started", c->name);
			continue;
		}
		if (r >= 0 && prefix_same && agent_bus_conf_same(a->bus_conf[r], c)) {
			nb[k] = a->buses[r];
			nbc[k++] = a->bus_conf[r];
			a->buses[r] = NULL;
			ch->kept++;
			continue;
		}
		*(r >= 0 ? &ch->restarted : &ch->added) += 1;
		nbc[k++] = c;
	}
	for (size_t i = 0; i < a->nbuses; i++) /* not kept: restarted, or gone */
		ch->removed += a->buses[i] != NULL;
	ch->removed -= ch->restarted;
	buses_drop(a, &carry);
	for (size_t i = 0; i < k; i++) {
		if (nb[i] == NULL && rc == 0) {
			rc = mb_bus_create(
			    &nb[i], nbc[i], nc->topic_prefix, nc->cmd_response_topic, &a->q);
			if (rc == 0 && (rc = mb_bus_start(nb[i])) != 0) {
				mb_bus_destroy(nb[i]);
				nb[i] = NULL;
			}
		}
		if (nb[i] != NULL) { /* the running ones, packed (a failed create leaves a gap) */
			nb[n] = nb[i];
			nbc[n++] = nbc[i];
		}
	}
	a->buses = nb;
	a->bus_conf = nbc;
	a->nbuses = n;
	carry_run(a, &carry);
	return rc;
}

static void
on_store(void *arg, uint32_t events)
{
	struct agent *a = arg;

	(void)events;
	store_process(a->store);
}

static int
buses_start(struct agent *a)
{
	struct bus_changes ch = { 0 };

	return buses_apply(a, &a->cfg, &ch);
}

static void
buses_stop(struct agent *a)
{
	buses_drop(a, NULL);
	for (size_t i = 0; i < a->nretired; i++) {
		agent_config_free(a->retired[i]);
		free(a->retired[i]);
	}
	free(a->retired);
	a->retired = NULL;
	a->nretired = 0;
}

static bool
config_in_use(const struct agent *a, const struct agent_config *c)
{
	for (size_t i = 0; i < a->nbuses; i++)
		if (a->bus_conf[i] >= c->buses && a->bus_conf[i] < c->buses + c->nbuses)
			return true;
	return false;
}

/* The running config becomes nc; the old one is kept while a bus it built still runs. */
static void
config_replace(struct agent *a, const struct agent_config *nc)
{
	struct agent_config *old = malloc(sizeof(*old));
	struct agent_config **v = realloc(a->retired, (a->nretired + 1) * sizeof(*v));
	size_t keep = 0;

	if (old == NULL || v == NULL) { /* cannot keep it: only safe when nothing uses it */
		free(old);
		if (v != NULL)
			a->retired = v;
		if (!config_in_use(a, &a->cfg))
			agent_config_free(&a->cfg);
		else
			log_err("reload: out of memory; a config's memory is leaked");
		a->cfg = *nc;
		return;
	}
	*old = a->cfg;
	a->retired = v;
	a->retired[a->nretired++] = old;
	a->cfg = *nc;
	for (size_t i = 0; i < a->nretired; i++) {
		if (config_in_use(a, a->retired[i])) {
			a->retired[keep++] = a->retired[i];
			continue;
		}
		agent_config_free(a->retired[i]);
		free(a->retired[i]);
	}
	a->nretired = keep;
}

/* The uplink is not rebuilt on reload (its queue and session would be lost): its settings and
 * the command topics keep their running values until a restart. */
static void
keep_uplink_settings(const struct agent_config *old, struct agent_config *nc)
{
	if (old->uplink == nc->uplink && strcmp(old->jsonl_path, nc->jsonl_path) == 0 &&
	    strcmp(old->jsonl_commands, nc->jsonl_commands) == 0 &&
	    memcmp(old->mqtt, nc->mqtt, sizeof(*nc->mqtt)) == 0 &&
	    strcmp(old->cmd_topic, nc->cmd_topic) == 0 &&
	    strcmp(old->cmd_response_topic, nc->cmd_response_topic) == 0)
		return;
	log_warnx("reload: uplink, mqtt, jsonl and commands settings changed; they apply at the "
		  "next restart");
	nc->uplink = old->uplink;
	memcpy(nc->jsonl_path, old->jsonl_path, sizeof(nc->jsonl_path));
	memcpy(nc->jsonl_commands, old->jsonl_commands, sizeof(nc->jsonl_commands));
	*nc->mqtt = *old->mqtt;
	memcpy(nc->cmd_topic, old->cmd_topic, sizeof(nc->cmd_topic));
	memcpy(nc->cmd_response_topic, old->cmd_response_topic, sizeof(nc->cmd_response_topic));
}

static int make_downlink(struct agent *a);

/* The spool's settings as written (its callbacks and I/O hooks are the store's, not the file's). */
static bool
spool_settings_equal(const struct store_conf *a, const struct store_conf *b)
{
	const struct spool_config *x = &a->spool, *y = &b->spool;

	for (int i = 0; i < SPOOL_CLASS_N; i++)
		if (x->policy[i].max_age_ms != y->policy[i].max_age_ms ||
		    x->policy[i].drop_when_full != y->policy[i].drop_when_full)
			return false;
	return strcmp(a->dir, b->dir) == 0 && a->spool_set == b->spool_set &&
	    x->max_bytes == y->max_bytes && x->segment_bytes == y->segment_bytes &&
	    x->commit_max_wait_us == y->commit_max_wait_us && x->commit_bytes == y->commit_bytes &&
	    x->buffer_bytes == y->buffer_bytes && x->disk_full_retry_ms == y->disk_full_retry_ms &&
	    x->policy_set == y->policy_set;
}

/*
 * `uplink:` on reload. The rules change live: the store takes the new set (the readings and the
 * dataplane's records submitted from then on go by it; the set it replaced still stores a
 * record the dataplane took under it), and so does the downlink, whose new filters are
 * subscribed at the cloud at once and whose removed ones unsubscribed at once (a message the
 * cloud sent before its UNSUBACK matches no rule: acknowledged and ignored). The spool is opened
 * once: its directory and settings apply at the next restart.
 */
static void
resubscribe(struct agent *a, char **old, size_t n_old, const struct rules *now)
{
	for (size_t i = 0; i < n_old; i++) {
		bool kept = old[i] == NULL; /* not copied: left subscribed */
		int rc;

		for (size_t j = 0; j < now->n_down && !kept; j++)
			kept = strcmp(old[i], now->down[j].match) == 0;
		if (!kept && (rc = uplink_unsubscribe(a->up, old[i])) != 0 && rc != -ENOENT)
			log_err("reload: uplink.downlink: cannot unsubscribe %s: %s", old[i],
			    strerror(-rc));
	}
	for (size_t i = 0; i < now->n_down; i++) {
		int rc = uplink_subscribe(a->up, now->down[i].match, 2);

		if (rc != 0 && rc != -EEXIST)
			log_err("reload: uplink.downlink: cannot subscribe %s: %s",
			    now->down[i].match, strerror(-rc));
	}
}

static void
apply_store_settings(struct agent *a, struct agent_config *nc)
{
	const struct rules *run = a->store != NULL ? store_rules(a->store) : NULL;
	char **old;
	size_t n_old;

	if (run == NULL || nc->store == NULL)
		return;
	if (!spool_settings_equal(a->cfg.store, nc->store))
		log_warnx("reload: uplink.spool changed; it applies at the next restart (the spool "
			  "stays in %s with its running settings)",
		    a->cfg.store->dir);
	if (rules_equal(run, nc->store->rules) || nc->store->rules == NULL)
		return;
	n_old = run->n_down; /* the running set's filters: the store frees it */
	old = calloc(n_old + 1, sizeof(*old));
	for (size_t i = 0; old != NULL && i < n_old; i++)
		old[i] = strdup(run->down[i].match);
	if (old == NULL)
		n_old = 0;
	store_set_rules(a->store, nc->store->rules);
	nc->store->rules = NULL; /* the store's now */
	if (a->down != NULL) {
		const struct rules *r = store_rules(a->store);

		downlink_set_rules(a->down, r);
		resubscribe(a, old, n_old, r);
	} else if (make_downlink(a) != 0) {
		log_err("reload: uplink.downlink: the downlink did not start; it starts at the "
			"next restart");
	}
	for (size_t i = 0; i < n_old; i++)
		free(old[i]);
	free(old);
	log_info("reload: uplink rules applied (%zu rules, %zu downlink)", store_rules(a->store)->n,
	    store_rules(a->store)->n_down);
}

/*
 * SIGHUP: load and check the config and its profiles whole; a bad one changes nothing. A good
 * one applies the log level, stats and topic settings, and the buses that changed: an
 * unchanged bus keeps polling (learnt state, schedule, counters), a changed one restarts
 * (polling state and counters start over; its points are published again on their first
 * read), a removed one stops, a new one starts.
 */
static void
agent_reload(struct agent *a)
{
	struct bus_changes ch = { 0 };
	struct agent_config nc;
	char err[4096];
	int rc;

	sd_notify(0, "RELOADING=1");
	if (agent_config_load_mode(a->cfg_path, a->strict, &nc, err, sizeof(err)) != 0) {
		log_err("reload: %s; the running config stays", err);
		sd_notify(0, "READY=1");
		return;
	}
	keep_uplink_settings(&a->cfg, &nc);
	apply_store_settings(a, &nc);
	agent_metrics_keep_settings(&a->cfg, &nc);
	log_config_warnings(&nc);
	log_disabled(&nc);
	pthread_mutex_lock(&a->stats_lock); /* a scrape never reads a bus being replaced */
	rc = buses_apply(a, &nc, &ch);
	config_replace(a, &nc);
	log_set_level(a->cfg.log_level);
	a->next_stats_ms = 0;
	pthread_mutex_unlock(&a->stats_lock);
	if (rc != 0) {
		log_err("reload: cannot start the buses; stopping (exit 1: restarted by the "
			"supervisor)");
		a->failed = true;
		agent_loop_stop(a->loop);
		return;
	}
	log_info("reload: %zu buses, %zu profiles from %s (%zu devices disabled); buses: %zu kept "
		 "running, %zu restarted, %zu started, %zu stopped",
	    a->nbuses, a->cfg.profiles.n, a->cfg_path, a->cfg.ndisabled, ch.kept, ch.restarted,
	    ch.added, ch.removed);
	sd_notify(0, "READY=1");
}

static void
on_signal(void *arg, int signo)
{
	struct agent *a = arg;

	switch (signo) {
	case SIGUSR1:
		agent_stats_log(a);
		break;
	case SIGHUP:
		agent_reload(a);
		break;
	case SIGPIPE:
		break;
	default:
		log_info("signal %d: stopping", signo);
		agent_loop_stop(a->loop);
	}
}

static void q2_releases(struct agent *a, uint64_t now_ms);

static void
on_tick(void *arg, uint64_t now_ms)
{
	struct agent *a = arg;
	int rc;

	/* the loop turns: the watchdog (WatchdogSec=) is pinged at half its period */
	if (a->watchdog_ms > 0 && now_ms >= a->next_watchdog_ms) {
		sd_notify(0, "WATCHDOG=1");
		a->next_watchdog_ms = now_ms + a->watchdog_ms / 2;
	}
	if (a->store != NULL)
		store_process(a->store); /* a report missed or a held record: at least each tick */
	if (a->nq2rel > 0)
		q2_releases(a, clock_mono_ms());
	agent_stats_snapshot(a);
	if (!a->cfg.stats_file[0] || now_ms < a->next_stats_ms)
		return;
	a->next_stats_ms = now_ms + a->cfg.stats_interval_ms;
	rc = agent_stats_write_file(a, a->cfg.stats_file);
	if (rc != 0)
		LOG_RATELIMITED(
		    LOG_LVL_WARN, 60, "stats: %s: %s", a->cfg.stats_file, strerror(-rc));
}

static int
make_uplink(struct agent *a)
{
	const struct agent_config *c = &a->cfg;

	if (c->uplink == AGENT_UPLINK_JSONL)
		return uplink_jsonl_create(
		    &a->up, a->loop, c->jsonl_path, c->jsonl_commands, c->cmd_topic, on_command, a);
	return uplink_mqtt_create(&a->up, a->loop, c->mqtt, on_command, a);
}

/* The store between the producers and the uplink: the spool with the mqtt uplink (or when
 * uplink.spool is written), straight through otherwise. uplink.drain.max_inflight records at
 * most are given to the client at once, and no more than half its queue, so command responses
 * always find room (a larger setting is lowered, said once at start). */
static int
make_store(struct agent *a)
{
	struct agent_config *c = &a->cfg;
	bool spool = c->uplink == AGENT_UPLINK_MQTT || c->store->spool_set;
	size_t inflight = c->store->max_inflight ? c->store->max_inflight : STORE_MAX_INFLIGHT_DEF;
	int rc;

	if (c->uplink == AGENT_UPLINK_MQTT && c->mqtt->max_queue / 2 < inflight) {
		size_t want = inflight;

		inflight = c->mqtt->max_queue / 2 ? c->mqtt->max_queue / 2 : 1;
		if (c->store->max_inflight_set)
			log_warnx("uplink.drain.max_inflight %zu is above half of mqtt max_queue "
				  "(%u): %zu in flight at most",
			    want, (unsigned)c->mqtt->max_queue, inflight);
	}
	if ((rc = store_open(&a->store, c->store, spool, a->up, inflight)) != 0)
		return rc;
	store_start(a->store);
	return agent_loop_add_fd(a->loop, store_event_fd(a->store), EPOLLIN, on_store, a);
}

/* The dataplane's end of store and forward: its lcores connect to dataplane.channel.path and
 * their sensor messages go into the store like the readings (agent/dpchan_link.h). */
static int
make_channel(struct agent *a)
{
	struct dpchan_conf c;
	char err[512];

	if (dpchan_link_load_conf(a->cfg_path, &c, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return -EINVAL;
	}
	if (!c.enabled)
		return 0;
	return dpchan_link_open_store(&a->chan, a->loop, &c, a->store);
}

/* The cloud's PUBREL (0: it lost the session): forgotten where it was kept, the downlink's
 * table or the command topic's; nonzero withholds PUBCOMP (the cloud sends PUBREL again). */
static int
on_q2_released(void *arg, uint16_t packet_id)
{
	struct agent *a = arg;
	struct q2_release r = { .id = packet_id, .since_ms = clock_mono_ms() };
	bool later = packet_id != 0 && a->nq2rel < sizeof(a->q2rel) / sizeof(a->q2rel[0]);
	int rc, crc = 0;

	for (uint32_t i = 0; later && i < a->nq2rel; i++)
		if (a->q2rel[i].id == packet_id)
			later =
			    false; /* a PUBREL again (a reconnect): that one answers, written again */
	rc = downlink_q2_release(a->down, packet_id, later ? &r.need_down : NULL);
	if (a->cmds != NULL)
		crc = cmdspool_q2_release(a->cmds, packet_id, later ? &r.need_cmd : NULL);
	if (rc != 0 || crc != 0)
		return rc != 0 ? rc : crc;
	if (!later ||
	    (downlink_q2_durable(a->down, r.need_down) &&
		(a->cmds == NULL || cmdspool_q2_durable(a->cmds, r.need_cmd))))
		return 0;
	a->q2rel[a->nq2rel++] = r; /* PUBCOMP once the spools' commits synced it (q2_releases) */
	return UPLINK_OWN_LATER;
}

/* The PUBRELs whose free is on disk now get their PUBCOMP (after each commit of the downlink's
 * or the command spool, on_spool_commit; and each tick); one the disk has not taken within 10 s
 * is given up (no PUBCOMP, counted: the cloud sends PUBREL again). */
static void
q2_releases(struct agent *a, uint64_t now_ms)
{
	for (uint32_t i = 0; i < a->nq2rel;) {
		struct q2_release *r = &a->q2rel[i];
		bool done = downlink_q2_durable(a->down, r->need_down) &&
		    (a->cmds == NULL || cmdspool_q2_durable(a->cmds, r->need_cmd));

		if (!done && now_ms - r->since_ms < 10000) {
			i++;
			continue;
		}
		uplink_released(a->up, r->id, done ? 0 : -ETIMEDOUT);
		*r = a->q2rel[--a->nq2rel];
	}
}

/* A commit of the downlink's or the command spool ended: the PUBCOMPs it made due go now, not
 * at the next tick (a QoS 2 id the cloud keeps until then holds one of its in-flight slots). */
static void
on_spool_commit(void *arg)
{
	struct agent *a = arg;

	if (a->nq2rel > 0)
		q2_releases(a, clock_mono_ms());
}

static void
restore_in(void *arg, uint16_t packet_id)
{
	uplink_restore_in(arg, packet_id);
}

/* A cloud message's record (downlink, command) reached the disk, or could not: its
 * acknowledgement may go. */
static void
cloud_owned(void *arg, uint64_t token, uint8_t qos, uint16_t packet_id, int rc)
{
	uplink_owned(arg, token, qos, packet_id, rc);
}

/* Cloud messages to the dataplane's broker (downlink.h): the rules' filters subscribed at every
 * connect of the uplink, the channel to send them on, and the spool next to the uplink's. */
static int
make_downlink(struct agent *a)
{
	const struct rules *r = store_rules(a->store);
	const struct store_conf *sc = a->cfg.store;
	bool spool = a->cfg.uplink == AGENT_UPLINK_MQTT || sc->spool_set;
	int rc;

	if (r == NULL || r->n_down == 0)
		return 0;
	if (a->chan == NULL || a->cfg.uplink != AGENT_UPLINK_MQTT) {
		log_warnx("uplink.downlink: %zu rules, but %s: not subscribed", r->n_down,
		    a->chan == NULL ? "no channel to the dataplane (dataplane.channel)"
				    : "the uplink is not mqtt");
		return 0;
	}
	if ((rc = downlink_open(&a->down, a->loop, r, dpchan_link_server(a->chan),
		 spool ? &sc->spool : NULL, a->store)) != 0)
		return rc;
	/* the QoS 2 ids whose PUBREL had not come: a resend is answered, not delivered again */
	a->up->q2in = (struct uplink_q2_in){ .arg = a, .released = on_q2_released };
	downlink_q2_each(a->down, restore_in, a->up);
	downlink_set_owned(
	    a->down, cloud_owned, a->up); /* acknowledged off the loop's disk waits */
	downlink_set_on_commit(a->down, on_spool_commit, a);
	for (size_t i = 0; i < r->n_down; i++)
		if ((rc = uplink_subscribe(a->up, r->down[i].match, 2)) != 0 && rc != -EEXIST) {
			log_err("uplink.downlink: cannot subscribe %s: %s", r->down[i].match,
			    strerror(-rc));
			return rc;
		}
	return 0;
}

/* The command spool (cmdspool.h), in <uplink spool>/commands, with its QoS 2 ids: those put back
 * into the MQTT client before its first connect. Only with the mqtt uplink (the one with QoS 1/2
 * commands and packet ids). */
static int
make_commands(struct agent *a)
{
	int rc;

	if (a->cfg.uplink != AGENT_UPLINK_MQTT)
		return 0;
	if ((rc = cmdspool_open(
		 &a->cmds, a->loop, &a->cfg.store->spool, a->store, run_spooled, a)) != 0)
		return rc;
	cmdspool_set_owned(
	    a->cmds, cloud_owned, a->up); /* acknowledged off the loop's disk waits */
	cmdspool_set_on_commit(a->cmds, on_spool_commit, a);
	a->up->q2in = (struct uplink_q2_in){ .arg = a, .released = on_q2_released };
	cmdspool_q2_each(a->cmds, restore_in, a->up);
	return 0;
}

static int
agent_start(struct agent *a)
{
	int rc;

	a->started_ms = clock_mono_ms();
	if ((rc = agent_loop_create(&a->loop, 100)) != 0 ||
	    (rc = agent_loop_set_signal_handler(a->loop, on_signal, a)) != 0 ||
	    (rc = agent_msgq_init(&a->q, 100000)) != 0 ||
	    (rc = agent_loop_add_fd(a->loop, a->q.efd, EPOLLIN, on_messages, a)) != 0 ||
	    (rc = agent_loop_add_tick(a->loop, on_tick, a)) != 0 || (rc = make_uplink(a)) != 0 ||
	    (rc = make_store(a)) != 0 || (rc = make_channel(a)) != 0 ||
	    (rc = make_downlink(a)) != 0 || (rc = make_commands(a)) != 0)
		return rc;
	if ((rc = buses_start(a)) != 0)
		return rc;
	if (a->cmds != NULL)
		cmdspool_run(a->cmds); /* what a previous agent left unanswered, to its bus again */
	return agent_metrics_start(a, &a->metrics);
}

static void
agent_stop(struct agent *a)
{
	agent_metrics_stop(a->metrics);
	a->metrics = NULL;
	for (size_t i = 0; i < a->nbuses; i++)
		mb_bus_stop(a->buses[i]);
	agent_stats_snapshot(a);
	if (a->cfg.stats_file[0] && a->loop != NULL)
		agent_stats_write_file(a, a->cfg.stats_file);
	buses_stop(a);
	uplink_destroy(a->up); /* what is in flight stays in the spool for the next start */
	downlink_close(a->down);
	a->down = NULL;
	cmdspool_close(a->cmds);
	a->cmds = NULL;
	if (a->store != NULL)
		agent_loop_del_fd(a->loop, store_event_fd(a->store));
	store_close(a->store); /* commits what the buses gave last */
	a->store = NULL;
	dpchan_link_close(a->chan); /* after the store's last reports: they answer the lcores */
	a->chan = NULL;
	if (a->q.efd > 0)
		agent_msgq_destroy(&a->q);
	agent_loop_destroy(a->loop);
	agent_config_free(&a->cfg);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: edgegw-agent [-c FILE] [--check] [--strict] [-v]\n"
	    "  -c, --config FILE  gateway config, its 'agent:' section (default " EDGEGW_CONFDIR
	    "/gateway.yaml)\n"
	    "      --check        validate the config and its profiles, then exit 0/1 (strict)\n"
	    "      --strict       a bad or missing profile is an error (exit 1), not a disabled\n"
	    "                     device; also on reload\n"
	    "  -v, --verbose      debug logging\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         this help\n"
	    "Signals: SIGTERM/SIGINT stop, SIGHUP reloads the config, SIGUSR1 logs the stats.\n"
	    "See edgegw-agent(8).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' }, { "strict", no_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 } };
	const char *path = EDGEGW_CONFDIR "/gateway.yaml";
	uint64_t wd_us = 0;
	bool check = false, verbose = false;
	struct agent a;
	char err[4096];
	int o, rc;

	memset(&a, 0, sizeof(a));
	a.q.efd = -1;
	pthread_mutex_init(&a.stats_lock, NULL);
	while ((o = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 's':
			a.strict = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'V':
			printf("edgegw-agent %s\n", EDGEGW_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	log_init("edgegw-agent", LOG_LVL_INFO);
	a.cfg_path = path;
	if (agent_config_load_mode(path, a.strict || check, &a.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "edgegw-agent: %s\n", err);
		return 1;
	}
	log_config_warnings(&a.cfg);
	if (check) {
		printf("%s: ok (%zu buses, %zu profiles)\n", path, a.cfg.nbuses, a.cfg.profiles.n);
		agent_config_free(&a.cfg);
		return 0;
	}
	log_set_level(verbose ? LOG_LVL_DEBUG : a.cfg.log_level);
	log_disabled(&a.cfg);
	if (sd_watchdog_enabled(0, &wd_us) > 0)
		a.watchdog_ms = wd_us / 1000;
	rc = agent_start(&a);
	if (rc == 0) {
		log_info("started: %zu buses, %zu devices disabled", a.nbuses, a.cfg.ndisabled);
		sd_notifyf(0, "READY=1\nSTATUS=%zu bus(es) polling", a.nbuses);
		rc = agent_loop_run(a.loop);
		sd_notify(0, "STOPPING=1");
	} else {
		log_err("cannot start: %s", strerror(-rc));
	}
	agent_stop(&a);
	log_info("stopped");
	return rc == 0 && !a.failed ? 0 : 1;
}
