/*
 * cmdspool.c: the command topic's spool (cmdspool.h). Order for a QoS 1/2 command:
 * spool_append (seq) -> [QoS 2: downlink_ids_pending(id, seq), fdatasync] -> the record durable
 * (spool_wait_durable) -> [QoS 2: downlink_ids_own, fdatasync] -> acknowledged -> run (its bus)
 * -> answered -> spool_ack, committed. A command that could not be kept is released unrun (its
 * id freed first), so the cloud's resend is the one copy that runs.
 */
#include "cmdspool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "downlink_q2.h"
#include "log.h"
#include "store.h"

#define CMD_WAIT_DURABLE_MS 2000 /* longest the loop waits for a command's fdatasync */
#define CMD_BUF_MIN         4096

struct cmdspool {
	struct spool *sp;
	struct downlink_ids *q2;
	struct store *st;
	cmdspool_exec_fn exec;
	void *arg;
	uint64_t live_from; /* the first record this agent appended (0: none yet): those below are
			     * what a previous agent left */
	uint8_t *buf;       /* a record's payload while it is handed over */
	size_t buf_len;
	char dir[600];
};

int
cmdspool_open(struct cmdspool **out, const struct spool_config *base, struct store *st,
    cmdspool_exec_fn exec, void *arg)
{
	struct cmdspool *c = calloc(1, sizeof(*c));
	struct spool_config sc = *base;
	int rc;

	if (c == NULL || (c->buf = malloc(CMD_BUF_MIN)) == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->buf_len = CMD_BUF_MIN;
	c->st = st;
	c->exec = exec;
	c->arg = arg;
	if (snprintf(c->dir, sizeof(c->dir), "%s/commands",
		base->dir ? base->dir : SPOOL_DEFAULT_DIR) >= (int)sizeof(c->dir)) {
		cmdspool_close(c);
		return -ENAMETOOLONG;
	}
	sc.dir = c->dir;
	sc.max_bytes = (base->max_bytes ? base->max_bytes : (1ull << 30)) / 64;
	if (sc.max_bytes < (1u << 20))
		sc.max_bytes = 1u << 20;
	sc.segment_bytes = 0;
	/* a command is never dropped nor expired: it is released once answered */
	memset(sc.policy, 0, sizeof(sc.policy));
	sc.policy_set = true;
	sc.on_durable = NULL;
	sc.on_committed = NULL;
	sc.recover_flags = 0;
	sc.on_recovered = NULL;
	rc = mkdir(c->dir, 0700) != 0 && errno != EEXIST ? -errno : 0;
	if (rc != 0 || (rc = spool_open(&sc, &c->sp)) != 0 ||
	    (rc = spool_start_flusher(c->sp)) != 0 ||
	    (rc = downlink_ids_open(&c->q2, c->dir, c->sp, base->io, base->io_ctx)) != 0) {
		log_err("commands: spool %s: %s", c->dir, strerror(-rc));
		cmdspool_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* A command appended (seq) that cannot be kept: its id freed, then the record released, so
 * that neither runs nor dedupes the cloud's resend. */
static void
drop(struct cmdspool *c, uint64_t seq, uint16_t packet_id, bool q2_pending)
{
	int rc = 0;

	if (q2_pending && (rc = downlink_ids_release(c->q2, packet_id)) != 0)
		store_count(c->st, STORE_C_down_q2_fail, 1);
	if (rc == 0 && spool_ack(c->sp, seq) == 0)
		spool_commit_request(c->sp);
}

int
cmdspool_accept(
    struct cmdspool *c, const uint8_t *payload, size_t len, uint8_t qos, uint16_t packet_id)
{
	struct spool_rec_in in = {
		.cls = SPOOL_NORMAL, .qos = qos, .payload = payload, .payload_len = (uint32_t)len
	};
	bool q2 = qos == 2 && packet_id != 0;
	uint64_t seq;
	int rc;

	if (len > SPOOL_PAYLOAD_MAX) {
		rc = -EMSGSIZE;
		goto fail;
	}
	if ((rc = spool_append(c->sp, &in, &seq)) != 0)
		goto fail;
	if (c->live_from == 0)
		c->live_from = seq;
	if (q2 && (rc = downlink_ids_pending(c->q2, packet_id, seq)) != 0) {
		store_count(c->st, STORE_C_down_q2_fail, 1);
		drop(c, seq, packet_id, true);
		goto fail;
	}
	rc = spool_wait_durable(c->sp, seq, CMD_WAIT_DURABLE_MS);
	if (rc != 1) {
		rc = rc == 0 ? -ETIMEDOUT : rc;
		drop(c, seq, packet_id, q2);
		goto fail;
	}
	if (q2 &&
	    ((rc = downlink_ids_own(c->q2, packet_id)) != 0 ||
		(rc = downlink_ids_sync(c->q2)) != 0)) {
		store_count(c->st, STORE_C_down_q2_fail, 1);
		drop(c, seq, packet_id, true);
		goto fail;
	}
	store_count(c->st, STORE_C_cmd_spooled, 1);
	return 0;
fail:
	store_count(c->st, STORE_C_cmd_not_owned, 1);
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "commands: a QoS %u command could not be kept in %s (%s): not acknowledged (the cloud "
	    "sends it again)",
	    qos, c->dir, strerror(-rc));
	return rc;
}

/* The next durable record not handed over yet into rec (its payload in c->buf): 1, 0 none,
 * < 0 a read error. */
static int
next_rec(struct cmdspool *c, struct spool_rec *rec)
{
	int rc = spool_read_next(c->sp, rec, c->buf, c->buf_len);

	if (rc == -ENOBUFS) {
		size_t need = (size_t)rec->topic_len + rec->payload_len;
		uint8_t *nb = realloc(c->buf, need);

		if (nb == NULL)
			return -ENOMEM;
		c->buf = nb;
		c->buf_len = need;
		rc = spool_read_next(c->sp, rec, c->buf, c->buf_len);
	}
	return rc;
}

void
cmdspool_run(struct cmdspool *c)
{
	struct spool_rec rec;
	bool released = false;
	int rc;

	while ((rc = next_rec(c, &rec)) == 1) {
		if (c->live_from == 0 || rec.seq < c->live_from) {
			store_count(c->st, STORE_C_cmd_replayed, 1);
			log_info("commands: running command %llu again: the agent stopped before "
				 "its bus answered",
			    (unsigned long long)rec.seq);
		}
		if (c->exec(c->arg, rec.seq, rec.payload, rec.payload_len) != 0) {
			store_count(c->st, STORE_C_cmd_released, 1);
			released |= spool_ack(c->sp, rec.seq) == 0;
		}
	}
	if (rc < 0)
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "commands: spool read: %s", strerror(-rc));
	if (released)
		spool_commit_request(c->sp);
}

void
cmdspool_done(struct cmdspool *c, uint64_t seq)
{
	if (spool_ack(c->sp, seq) != 0)
		return;
	store_count(c->st, STORE_C_cmd_released, 1);
	spool_commit_request(c->sp);
}

int
cmdspool_q2_release(struct cmdspool *c, uint16_t packet_id)
{
	int rc = downlink_ids_release(c->q2, packet_id);

	if (rc != 0) {
		store_count(c->st, STORE_C_down_q2_fail, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "commands: cannot free QoS 2 packet id %u in %s/q2-ids (%s): PUBCOMP withheld",
		    packet_id, c->dir, strerror(-rc));
	}
	return rc;
}

void
cmdspool_q2_each(struct cmdspool *c, void (*fn)(void *arg, uint16_t packet_id), void *arg)
{
	downlink_ids_each(c->q2, fn, arg);
}

void
cmdspool_close(struct cmdspool *c)
{
	if (c == NULL)
		return;
	downlink_ids_close(c->q2);
	spool_close(c->sp);
	free(c->buf);
	free(c);
}

void
cmdspool_abandon(struct cmdspool *c)
{
	if (c == NULL)
		return;
	downlink_ids_close(c->q2); /* its writes are in the page cache: a SIGKILL keeps them */
	spool_abandon(c->sp);
	free(c->buf);
	free(c);
}
