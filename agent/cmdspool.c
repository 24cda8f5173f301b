/*
 * cmdspool.c: the command topic's spool (cmdspool.h). Order for a QoS 1/2 command:
 * [QoS 2: downlink_ids_pending(id, the next seq), written] -> spool_append (seq) -> the flusher's
 * commit (the ids synced first: before_commit) -> the record durable (ownq, or
 * spool_wait_durable) -> [QoS 2: downlink_ids_own, written] -> acknowledged -> run (its bus) ->
 * answered -> spool_ack, committed (the ids synced first). A command that could not be kept is released unrun (its
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
#include "ownq.h"
#include "store.h"

#define CMD_WAIT_DURABLE_MS 2000 /* longest the loop waits for a command's fdatasync */
#define CMD_BUF_MIN         4096
#define CMD_CANCEL_MAX      64 /* one per wait that timed out (2 s each) while the disk stalls */

struct cmdspool {
	struct spool *sp;
	struct ownq own; /* QoS 1/2 commands acknowledged once their record is durable (efd -1: the
			  * loop waits for the disk instead) */
	cmdspool_owned_fn owned_fn;
	void *owned_arg;
	struct downlink_ids *q2;
	struct store *st;
	cmdspool_exec_fn exec;
	void *arg;
	uint64_t live_from; /* the first record this agent appended (0: none yet): those below are
			     * what a previous agent left */
	uint8_t *buf;       /* a record's payload while it is handed over */
	size_t buf_len;
	/* records dropped while on their way to the disk (drop: spool_ack has nothing to
	 * release yet), ascending: passed over unrun and released when they come up */
	uint64_t cancel[CMD_CANCEL_MAX];
	unsigned n_cancel;
	char dir[600];
};

static void
on_wake(void *arg, uint32_t events)
{
	struct cmdspool *c = arg;

	(void)events;
	ownq_clear(&c->own);
	cmdspool_run(c);
	ownq_committed(&c->own);
}

int
cmdspool_open(struct cmdspool **out, struct agent_loop *loop, const struct spool_config *base,
    struct store *st, cmdspool_exec_fn exec, void *arg)
{
	struct cmdspool *c = calloc(1, sizeof(*c));
	struct spool_config sc = *base;
	int rc;

	if (c == NULL || (c->buf = malloc(CMD_BUF_MIN)) == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->own.efd = -1;
	if (loop != NULL && (rc = ownq_open(&c->own, loop, on_wake, c)) != 0) {
		free(c->buf);
		free(c);
		return rc;
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
	/* every commit: also one that synced an id's free */
	sc.on_committed = c->own.efd >= 0 ? ownq_on_commit : NULL;
	sc.on_committed_arg = &c->own;
	sc.before_commit = downlink_ids_before_commit;
	sc.before_commit_arg = &c->q2;
	sc.recover_flags = 0;
	sc.on_recovered = NULL;
	rc = mkdir(c->dir, 0700) != 0 && errno != EEXIST ? -errno : 0;
	/* the flusher starts once the ids are open: its commits sync them (before_commit) */
	if (rc != 0 || (rc = spool_open(&sc, &c->sp)) != 0 ||
	    (rc = downlink_ids_open(&c->q2, c->dir, c->sp, base->io, base->io_ctx)) != 0 ||
	    (rc = spool_start_flusher(c->sp)) != 0) {
		log_err("commands: spool %s: %s", c->dir, strerror(-rc));
		cmdspool_close(c);
		return rc;
	}
	store_count(c->st, STORE_C_down_q2_corrupt, downlink_ids_corrupt(c->q2));
	*out = c;
	return 0;
}

/* Record seq, on its way to the disk, is not to run once there (cancel_take). With the list
 * full (the disk stalled for minutes) the loop waits for the record's fate instead. */
static void
cancel_add(struct cmdspool *c, uint64_t seq)
{
	int st;

	if (c->n_cancel < CMD_CANCEL_MAX) {
		c->cancel[c->n_cancel++] = seq;
		return;
	}
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "commands: %u commands not acknowledged still wait for the disk in %s: waiting for "
	    "command %llu's write to end before going on",
	    CMD_CANCEL_MAX, c->dir, (unsigned long long)seq);
	while ((st = spool_wait_durable(c->sp, seq, CMD_WAIT_DURABLE_MS)) == 0)
		;
	if (st == 1 && spool_ack(c->sp, seq) == 0)
		spool_commit_request(c->sp);
}

/* Whether record seq (read in ascending order) was cancelled; those below it never became
 * durable (their commit failed) and are forgotten. */
static bool
cancel_take(struct cmdspool *c, uint64_t seq)
{
	unsigned i = 0;
	bool hit;

	while (i < c->n_cancel && c->cancel[i] < seq)
		i++;
	hit = i < c->n_cancel && c->cancel[i] == seq;
	if (hit)
		i++;
	memmove(c->cancel, c->cancel + i, (c->n_cancel - i) * sizeof(*c->cancel));
	c->n_cancel -= i;
	return hit;
}

/* A command appended (seq) that cannot be kept: its id freed, then the record released, so
 * that neither runs nor dedupes the cloud's resend. A record still on its way to the disk (the
 * wait for it timed out) has nothing to release yet: it is cancelled, and released unrun when
 * it comes up. It ran, though the cloud never had its PUBACK/PUBREC and resent it: a QoS 2
 * command, its id freed, ran twice. */
static void
drop(struct cmdspool *c, uint64_t seq, uint16_t packet_id, bool q2_pending)
{
	int rc = 0;

	if (q2_pending && (rc = downlink_ids_release(c->q2, packet_id)) != 0)
		store_count(c->st, STORE_C_down_q2_fail, 1);
	if (rc != 0)
		return;
	if (spool_ack(c->sp, seq) == 0)
		spool_commit_request(c->sp);
	else if (spool_seq_status(c->sp, seq) == 0) /* not settled: it may yet be durable */
		cancel_add(c, seq);
}

static int
not_owned(struct cmdspool *c, uint8_t qos, int rc)
{
	store_count(c->st, STORE_C_cmd_not_owned, 1);
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "commands: a QoS %u command could not be kept in %s (%s): not acknowledged (the cloud "
	    "sends it again)",
	    qos, c->dir, strerror(-rc));
	return rc;
}

/* Record seq is durable: its QoS 2 id owned (on disk) with it. 0 owned, or < 0 not (dropped). */
static int
durable(struct cmdspool *c, uint64_t seq, uint8_t qos, uint16_t packet_id, bool q2)
{
	int rc;

	if (q2 && (rc = downlink_ids_own(c->q2, packet_id)) != 0) { /* synced before a release */
		store_count(c->st, STORE_C_down_q2_fail, 1);
		drop(c, seq, packet_id, true);
		return not_owned(c, qos, rc);
	}
	store_count(c->st, STORE_C_cmd_spooled, 1);
	return 0;
}

void
cmdspool_set_owned(struct cmdspool *c, cmdspool_owned_fn fn, void *arg)
{
	c->owned_fn = fn;
	c->owned_arg = arg;
}

void
cmdspool_set_on_commit(struct cmdspool *c, void (*fn)(void *arg), void *arg)
{
	c->own.on_commit = fn;
	c->own.on_commit_arg = arg;
}

int
cmdspool_accept(struct cmdspool *c, const uint8_t *payload, size_t len, uint8_t qos,
    uint16_t packet_id, uint64_t token)
{
	struct spool_rec_in in = {
		.cls = SPOOL_NORMAL, .qos = qos, .payload = payload, .payload_len = (uint32_t)len
	};
	bool q2 = qos == 2 && packet_id != 0;
	struct ownq_item *w = q2 ? ownq_find_id(&c->own, packet_id) : NULL;
	uint64_t seq = 0, next = 0;
	int rc;

	if (w != NULL) { /* the cloud's resend while the first waits (its connection is gone) */
		w->token = token;
		return CMDSPOOL_OWN_LATER;
	}
	if (len > SPOOL_PAYLOAD_MAX)
		return not_owned(c, qos, -EMSGSIZE);
	/* the id names its record before the record exists: the commit that makes the record
	 * durable syncs the id first (downlink_q2.h) */
	if (q2 &&
	    (rc = downlink_ids_pending(c->q2, packet_id, next = spool_next_seq(c->sp))) != 0) {
		store_count(c->st, STORE_C_down_q2_fail, 1);
		return not_owned(c, qos, rc);
	}
	rc = spool_append(c->sp, &in, &seq);
	if (rc == 0 && q2 && seq != next) { /* another producer appended in between: never */
		drop(c, seq, packet_id, false);
		rc = -EPROTO;
	}
	if (rc != 0) {
		if (q2 && downlink_ids_release(c->q2, packet_id) != 0)
			store_count(c->st, STORE_C_down_q2_fail, 1);
		return not_owned(c, qos, rc);
	}
	if (c->live_from == 0)
		c->live_from = seq;
	if (c->owned_fn != NULL &&
	    ownq_push(&c->own,
		&(struct ownq_item){
		    .seq = seq, .token = token, .packet_id = q2 ? packet_id : 0, .qos = qos }))
		return CMDSPOOL_OWN_LATER;
	rc = spool_wait_durable(c->sp, seq, CMD_WAIT_DURABLE_MS);
	if (rc != 1) {
		rc = rc == 0 ? -ETIMEDOUT : rc;
		drop(c, seq, packet_id, q2);
		return not_owned(c, qos, rc);
	}
	return durable(c, seq, qos, packet_id, q2);
}

/* The commands waiting for the disk whose commit ended, oldest first: owned or not, said. */
static void
settle(struct cmdspool *c)
{
	struct ownq_item w;
	int st, rc;

	while ((st = ownq_next(&c->own, c->sp, &w)) != 0) {
		if (st == 1) {
			rc = durable(c, w.seq, w.qos, w.packet_id, w.packet_id != 0);
		} else {
			drop(c, w.seq, w.packet_id, w.packet_id != 0);
			rc = not_owned(c, w.qos, st);
		}
		if (c->owned_fn != NULL)
			c->owned_fn(c->owned_arg, w.token, w.qos, w.packet_id, rc);
	}
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

	settle(c); /* a command is answered before it runs */
	while ((rc = next_rec(c, &rec)) == 1) {
		if (c->n_cancel > 0 && cancel_take(c, rec.seq)) {
			store_count(c->st, STORE_C_cmd_released, 1);
			released |= spool_ack(c->sp, rec.seq) == 0;
			continue;
		}
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
cmdspool_q2_release(struct cmdspool *c, uint16_t packet_id, uint64_t *need)
{
	int rc;

	if (need != NULL)
		*need = 0;
	if (packet_id == 0) /* the session is gone: so are the ids of what waits for the disk */
		ownq_forget_ids(&c->own);
	if ((rc = downlink_ids_pubrel(c->q2, c->sp, packet_id, need)) != 0) {
		store_count(c->st, STORE_C_down_q2_fail, 1);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "commands: cannot free QoS 2 packet id %u in %s/q2-ids (%s): PUBCOMP withheld",
		    packet_id, c->dir, strerror(-rc));
	}
	return rc;
}

bool
cmdspool_q2_durable(const struct cmdspool *c, uint64_t need)
{
	return c == NULL || downlink_ids_durable(c->q2, need);
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
	spool_close(c->sp); /* its last commit syncs the ids */
	downlink_ids_close(c->q2);
	ownq_close(&c->own);
	free(c->buf);
	free(c);
}

void
cmdspool_abandon(struct cmdspool *c)
{
	if (c == NULL)
		return;
	spool_abandon(c->sp);      /* the flusher stopped: nothing syncs the ids after this */
	downlink_ids_close(c->q2); /* its writes are in the page cache: a SIGKILL keeps them */
	ownq_close(&c->own);
	free(c->buf);
	free(c);
}
