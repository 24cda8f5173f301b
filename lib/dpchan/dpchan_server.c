/*
 * dpchan_server.c: the agent's end of the channel (dpchan_server.h). An epoll set of its own
 * (the listening socket and one connection per lcore) so the agent's loop sees one fd; the
 * streams (per lcore: refs awaiting durability, in token order) outlive their connections.
 */
#include "dpchan_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dpchan_q2.h"
#include "log.h"

#define MAX_CONNS          256u
#define STREAM_FAILED_KEPT 64u
#define RANGES_PER_MSG     ((DPCHAN_FRAME_MAX - DPCHAN_HDR_LEN) / DPCHAN_RANGE_LEN)

struct waiting {
	uint64_t token, ref;
	int32_t status; /* 1: waiting */
};

struct stream {
	struct dpchan_hello id;
	bool used;
	struct sconn *conn; /* NULL while that lcore is not connected */
	uint64_t max_ref;   /* highest ref taken */
	bool known_trimmed; /* the known refs below its first record since the hello are gone */
	bool held_end;      /* it listed the origins it holds (HELD_END) in this start */
	struct waiting *w;  /* ring of max_inflight: refs taken, awaiting durability (in ref
			     * order; answered ones leave from the front) */
	uint32_t w_head, w_len;
	/* The last runs of refs answered failed: a record sent again whose answer was lost with
	 * its connection is answered failed again, never durable. A ref at or below failed_lost
	 * (the highest of the runs no longer kept) may have failed: answered failed too. */
	struct {
		uint64_t first, last;
	} failed[STREAM_FAILED_KEPT];
	uint32_t n_failed;
	uint64_t failed_lost;
};

struct sconn {
	int fd;
	bool hello, paused;
	struct stream *st;
	uint8_t *rx;
	size_t rx_len;    /* a PUB frame not taken whole (the sink was full), else 0 */
	uint32_t rx_done; /* its records taken so far */
};

/* A record the sink held before the agent restarted (dpchan_server_known). */
struct known {
	uint64_t boot_id, ref;
	uint32_t lcore;
};

struct dpchan_server {
	struct dpchan_server_config cfg;
	const struct dpchan_sink_ops *ops;
	void *arg;
	int lfd, efd;
	bool bound; /* path is our socket (not a file that was there) */
	char path[108];
	struct sconn *conns[MAX_CONNS];
	struct stream *streams;
	struct known *known; /* sorted by (boot_id, lcore, ref) once known_sorted */
	size_t n_known, cap_known;
	bool known_sorted;
	struct dpchan_q2 *q2; /* QoS 2 origins held until released (dpchan_q2.h) */
	/* The resync of the QoS 2 origins with the dataplane's newest start (dpchan_proto.h, HELD) */
	uint64_t rs_boot;   /* that start's boot id (0: no hello yet) */
	uint32_t rs_lcores; /* its lcores, as its HELD_END frames say */
	bool rs_swept;      /* the origins none of them listed are forgotten */
	uint64_t rs_old[8]; /* the starts it superseded, newest last: their HELLOs are refused */
	uint32_t rs_old_n;
	uint64_t down_seen; /* the highest DOWN ref that start says it took (its HELLOs) */
	/* Durable reports that carried QoS 2 records, waiting for their origins' sync on the
	 * origin file's thread (dpchan_q2_sync_begin), in the order they came */
	struct q2_wait {
		uint64_t first, last, gen;
		int status;
	} * q2w;
	uint32_t q2w_head, q2w_len, q2w_cap;
	dpchan_down_ack_fn down_ack;
	void *down_ack_arg;
	struct stream *down_st; /* the lcore DOWN records go to, kept while it stays connected */
	uint64_t cnt[DPCHAN_C_COUNT];
};

/* The epoll mark of the origin file's sync thread (dpchan_q2_event_fd); NULL marks the listener,
 * anything else a connection. */
static char q2_mark;

struct dpchan_server *
dpchan_server_new(
    const struct dpchan_server_config *cfg, const struct dpchan_sink_ops *ops, void *arg)
{
	struct dpchan_server *s = calloc(1, sizeof(*s));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	struct epoll_event q2_ev = { .events = EPOLLIN, .data.ptr = &q2_mark };
	struct stat st;
	int err;

	if (s == NULL)
		return NULL;
	s->cfg = *cfg;
	s->ops = ops;
	s->arg = arg;
	s->lfd = s->efd = -1;
	if (s->cfg.path == NULL)
		s->cfg.path = DPCHAN_DEFAULT_PATH;
	if (s->cfg.max_streams == 0)
		s->cfg.max_streams = 64;
	if (s->cfg.max_inflight == 0)
		s->cfg.max_inflight = 65536;
	if (strlen(s->cfg.path) >= sizeof(sa.sun_path)) {
		free(s);
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(s->path, s->cfg.path);
	strcpy(sa.sun_path, s->path);
	s->cfg.path = s->path;
	if ((s->streams = calloc(s->cfg.max_streams, sizeof(*s->streams))) == NULL) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	if ((s->q2 = dpchan_q2_open(
		 cfg->q2_path, cfg->max_q2_origins, s->cnt, cfg->q2_io, cfg->q2_io_ctx)) == NULL) {
		err = errno;
		free(s->streams);
		free(s);
		errno = err;
		return NULL;
	}
	/* a socket left by an agent that died is replaced; anything else there is not ours */
	if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(s->path);
	s->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd >= 0 && bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		s->bound = true; /* the path is ours from now: removed with the server */
	if (!s->bound || listen(s->lfd, 64) != 0 || (s->efd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(s->efd, EPOLL_CTL_ADD, s->lfd, &ev) != 0 ||
	    (dpchan_q2_event_fd(s->q2) >= 0 &&
		epoll_ctl(s->efd, EPOLL_CTL_ADD, dpchan_q2_event_fd(s->q2), &q2_ev) != 0)) {
		err = errno;
		dpchan_server_free(s);
		errno = err;
		return NULL;
	}
	return s;
}

static void
stream_drop(struct stream *st)
{
	free(st->w);
	*st = (struct stream){ 0 };
}

static void
conn_close(struct dpchan_server *s, struct sconn *c, const char *why)
{
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	if (why != NULL)
		log_warnx("dpchan: lcore %d: connection closed (%s)",
		    c->st ? (int)c->st->id.lcore : -1, why);
	if (c->st != NULL)
		c->st->conn = NULL;
	s->cnt[DPCHAN_C_DISCONNECTS]++;
	close(c->fd); /* leaves the epoll set with it */
	free(c->rx);
	free(c);
}

void
dpchan_server_free(struct dpchan_server *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (s->conns[i] != NULL)
			conn_close(s, s->conns[i], NULL);
	for (uint32_t i = 0; s->streams != NULL && i < s->cfg.max_streams; i++)
		stream_drop(&s->streams[i]);
	free(s->streams);
	free(s->known);
	free(s->q2w); /* unanswered: each lcore sends those records again to the next agent */
	dpchan_q2_close(s->q2);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->bound)
		unlink(s->path);
	if (s->efd >= 0)
		close(s->efd);
	free(s);
}

int
dpchan_server_fd(const struct dpchan_server *s)
{
	return s->efd;
}

static void
watch(struct dpchan_server *s, struct sconn *c, bool in)
{
	struct epoll_event ev = { .events = in ? EPOLLIN : 0, .data.ptr = c };

	epoll_ctl(s->efd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
accept_all(struct dpchan_server *s)
{
	int fd;

	while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct sconn *c = calloc(1, sizeof(*c));
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		unsigned i = 0;

		while (i < MAX_CONNS && s->conns[i] != NULL)
			i++;
		if (c == NULL || i == MAX_CONNS || (c->rx = malloc(DPCHAN_FRAME_MAX)) == NULL ||
		    epoll_ctl(s->efd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			s->cnt[DPCHAN_C_LIMIT_STREAMS]++;
			if (c != NULL)
				free(c->rx);
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		s->conns[i] = c;
	}
}

int
dpchan_server_known(struct dpchan_server *s, uint64_t boot_id, uint32_t lcore, uint64_t ref)
{
	if (s->n_known == s->cap_known) {
		size_t cap = s->cap_known ? s->cap_known * 2 : 1024;
		struct known *k = realloc(s->known, cap * sizeof(*k));

		if (k == NULL)
			return -ENOMEM;
		s->known = k;
		s->cap_known = cap;
	}
	s->known[s->n_known++] = (struct known){ boot_id, ref, lcore };
	s->known_sorted = false;
	return 0;
}

int
dpchan_server_known_q2(struct dpchan_server *s, uint64_t boot_id, uint32_t lcore, uint64_t ref)
{
	struct dpchan_origin o = { boot_id, ref, lcore };

	dpchan_q2_held(s->q2, &o);
	return dpchan_server_known(s, boot_id, lcore, ref);
}

static int
known_cmp(const void *a, const void *b)
{
	const struct known *x = a, *y = b;

	if (x->boot_id != y->boot_id)
		return x->boot_id < y->boot_id ? -1 : 1;
	if (x->lcore != y->lcore)
		return x->lcore < y->lcore ? -1 : 1;
	return x->ref < y->ref ? -1 : x->ref > y->ref;
}

static bool
known_has(struct dpchan_server *s, const struct dpchan_hello *id, uint64_t ref)
{
	struct known key = { id->boot_id, ref, id->lcore };

	if (s->n_known == 0)
		return false;
	if (!s->known_sorted) {
		qsort(s->known, s->n_known, sizeof(*s->known), known_cmp);
		s->known_sorted = true;
	}
	return bsearch(&key, s->known, s->n_known, sizeof(*s->known), known_cmp) != NULL;
}

/* The first record an lcore sends after its hello is the oldest it holds (it sends in ref
 * order, from the oldest not answered): the known refs of that lcore below it never come again. */
static void
known_trim(struct dpchan_server *s, const struct dpchan_hello *id, uint64_t first)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_known; i++) {
		const struct known *k = &s->known[i];

		if (k->boot_id != id->boot_id || k->lcore != id->lcore || k->ref >= first)
			s->known[n++] = *k;
	}
	s->n_known = n;
}

/* A hello from another dataplane start: the records known from the old one never come again. */
static void
known_forget_others(struct dpchan_server *s, uint64_t boot_id)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_known; i++)
		if (s->known[i].boot_id == boot_id)
			s->known[n++] = s->known[i];
	s->n_known = n;
	if (n == 0) {
		free(s->known);
		s->known = NULL;
		s->cap_known = 0;
	}
}

/* The stream of this HELLO: the lcore's, continued when the boot id is the same. */
static struct stream *
stream_of(struct dpchan_server *s, const struct dpchan_hello *h)
{
	struct stream *free_st = NULL;

	for (uint32_t i = 0; i < s->cfg.max_streams; i++) {
		struct stream *st = &s->streams[i];

		if (st->used && st->id.lcore == h->lcore) {
			if (st->id.boot_id == h->boot_id)
				return st;
			/* the dataplane restarted: its old refs mean nothing now, and a connection
			 * of the old start left open is not this stream's any more */
			if (st->conn != NULL)
				conn_close(s, st->conn, "a newer start of the dataplane connected");
			stream_drop(st);
			free_st = st;
			break;
		}
		if (!st->used && free_st == NULL)
			free_st = st;
	}
	if (free_st == NULL)
		return NULL;
	if ((free_st->w = calloc(s->cfg.max_inflight, sizeof(*free_st->w))) == NULL)
		return NULL;
	free_st->used = true;
	free_st->id = *h;
	return free_st;
}

static bool
send_frame(struct dpchan_server *s, struct sconn *c, const uint8_t *buf, size_t len)
{
	if (send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len) {
		s->cnt[DPCHAN_C_FRAMES_TX]++;
		return true;
	}
	/* the dataplane does not read: it resends after reconnecting and is answered then */
	s->cnt[DPCHAN_C_SEND_FAIL]++;
	return false;
}

struct take_ctx {
	struct dpchan_server *s;
	struct sconn *c;
	uint32_t i;
	struct dpchan_range now[64]; /* answers that go at once (failed, or already durable) */
	uint32_t n_now;
	bool send_failed; /* some did not fit the socket: the connection is closed (take_frame) */
};

static void
flush_now(struct take_ctx *t)
{
	uint8_t buf[DPCHAN_HDR_LEN + 64 * DPCHAN_RANGE_LEN];
	int len = dpchan_encode_durable(buf, sizeof(buf), t->now, t->n_now);

	if (t->n_now > 0 && len > 0) {
		if (send_frame(t->s, t->c, buf, (size_t)len))
			t->s->cnt[DPCHAN_C_DURABLE_TX] += t->n_now;
		else
			t->send_failed = true;
	}
	t->n_now = 0;
}

static void
stream_failed(struct stream *st, uint64_t ref)
{
	uint32_t i = st->n_failed % STREAM_FAILED_KEPT;

	if (st->n_failed > 0) {
		uint32_t prev = (st->n_failed - 1) % STREAM_FAILED_KEPT;

		if (st->failed[prev].last + 1 == ref) { /* the run goes on */
			st->failed[prev].last = ref;
			return;
		}
	}
	if (st->n_failed >= STREAM_FAILED_KEPT && st->failed[i].last > st->failed_lost)
		st->failed_lost = st->failed[i].last;
	st->failed[i].first = st->failed[i].last = ref;
	st->n_failed++;
}

/* A ref taken before (ref <= max_ref), sent again: 1 while it awaits durability (answered
 * then), else its answer: 0 durable, < 0 failed. Binary search: the ring is in ref order. */
static int
stream_answer(const struct stream *st, uint64_t ref, uint32_t max)
{
	uint32_t lo = 0, hi = st->w_len;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct waiting *w = &st->w[(st->w_head + mid) % max];

		if (w->ref == ref)
			return w->status;
		if (w->ref < ref)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint32_t i = 0; i < STREAM_FAILED_KEPT && i < st->n_failed; i++)
		if (st->failed[i].first <= ref && ref <= st->failed[i].last)
			return -EIO;
	if (ref <= st->failed_lost)
		return -EIO; /* it may be one that failed: never say durable unsure */
	return 0;            /* answered durable, and gone from the ring */
}

/* One record: 0 taken (or known), 1 stop here (sink full or too many waiting). */
static int
take_one(void *arg, const struct dpchan_rec *r)
{
	struct take_ctx *t = arg;
	struct dpchan_server *s = t->s;
	struct stream *st = t->c->st;
	uint32_t max = s->cfg.max_inflight;
	struct dpchan_origin o = { 0 };
	uint64_t token;
	int rc;

	if (t->i++ < t->c->rx_done)
		return 0; /* taken before the sink filled up */
	if (r->ref != 0 && r->ref <= st->max_ref) {
		s->cnt[DPCHAN_C_RECS_DUP]++;
		if ((rc = stream_answer(st, r->ref, max)) != 1) { /* answered: say so again */
			if (t->n_now == 64)
				flush_now(t);
			t->now[t->n_now++] = (struct dpchan_range){ r->ref, r->ref, rc };
		}
		t->c->rx_done++;
		return 0;
	}
	if (r->ref != 0 && !st->known_trimmed) {
		st->known_trimmed = true;
		if (s->n_known > 0)
			known_trim(s, &st->id, r->ref);
	}
	if (r->ref != 0 && known_has(s, &st->id, r->ref)) {
		/* the sink made it durable before the agent restarted, and the answer was lost */
		s->cnt[DPCHAN_C_RECS_KNOWN]++;
		st->max_ref = r->ref;
		if (t->n_now == 64)
			flush_now(t);
		t->now[t->n_now++] = (struct dpchan_range){ r->ref, r->ref, 0 };
		t->c->rx_done++;
		return 0;
	}
	if (r->ref != 0 && r->qos == 2) {
		/* its first copy may be held already: sent by an earlier start of the dataplane
		 * (the origin in the record), or taken on this stream before the agent restarted
		 * and released from the spool since */
		o = r->has_origin ? r->origin
				  : (struct dpchan_origin){ st->id.boot_id, r->ref, st->id.lcore };
		switch (dpchan_q2_state(s->q2, &o)) {
		case DPCHAN_Q2_HELD:
			s->cnt[DPCHAN_C_Q2_HELD]++;
			s->cnt[DPCHAN_C_RECS_ORIGIN] += r->has_origin;
			st->max_ref = r->ref;
			if (t->n_now == 64)
				flush_now(t);
			t->now[t->n_now++] = (struct dpchan_range){ r->ref, r->ref, 0 };
			t->c->rx_done++;
			return 0;
		case DPCHAN_Q2_WAITING: /* answered once that copy is: taken again then */
			if (!t->c->paused)
				s->cnt[DPCHAN_C_Q2_WAIT]++;
			return 1;
		case DPCHAN_Q2_NONE:
			break;
		}
	}
	if (r->ref != 0 && st->w_len == max) {
		s->cnt[DPCHAN_C_LIMIT_INFLIGHT]++;
		return 1;
	}
	rc = s->ops->submit(s->arg, &st->id, r, &token);
	if (rc == -ENOBUFS) {
		s->cnt[DPCHAN_C_SINK_FULL]++;
		return 1;
	}
	s->cnt[DPCHAN_C_RECS_RX]++;
	t->c->rx_done++;
	if (r->ref == 0)
		return 0;
	st->max_ref = r->ref;
	if (rc > 0) { /* taken, nothing to wait for: answered now */
		if (t->n_now == 64)
			flush_now(t);
		t->now[t->n_now++] = (struct dpchan_range){ r->ref, r->ref, 0 };
		return 0;
	}
	if (rc < 0) {
		s->cnt[DPCHAN_C_SINK_FAIL]++;
		stream_failed(st, r->ref);
		if (t->n_now == 64)
			flush_now(t);
		t->now[t->n_now++] = (struct dpchan_range){ r->ref, r->ref, rc };
		return 0;
	}
	st->w[(st->w_head + st->w_len++) % max] = (struct waiting){ token, r->ref, 1 };
	s->cnt[DPCHAN_C_RECS_ORIGIN] += r->has_origin;
	if (r->qos == 2)
		dpchan_q2_taken(s->q2, &o, token);
	return 0;
}

/* Take what remains of the connection's current PUB frame (checked whole first): 0 all
 * taken, 1 paused (the sink is full: not read until it has room), 2 closed (answers that go
 * at once did not fit its socket: as send_ranges, the lcore sends those records again on its
 * next connection and is answered then; an open connection whose answers were dropped held
 * the records, and every one after them, for good), < 0 malformed. */
static int
take_frame(struct dpchan_server *s, struct sconn *c)
{
	struct take_ctx t = { .s = s, .c = c };
	int rc = dpchan_decode_recs(c->rx, c->rx_len, DPCHAN_PUB, take_one, &t);

	flush_now(&t);
	if (rc < 0)
		return rc;
	if (t.send_failed) {
		conn_close(s, c, "its socket buffer is full");
		return 2;
	}
	if (rc == 1) {
		if (!c->paused)
			watch(s, c, false);
		c->paused = true;
		return 1;
	}
	if (c->paused)
		watch(s, c, true);
	c->paused = false;
	c->rx_len = 0;
	c->rx_done = 0;
	return 0;
}

static void
on_release(void *arg, const struct dpchan_origin *o)
{
	struct dpchan_server *s = arg;

	s->cnt[DPCHAN_C_RELEASE_RX]++;
	if (!dpchan_q2_release(s->q2, o))
		s->cnt[DPCHAN_C_RELEASE_UNKNOWN]++;
}

static void
on_held_ignored(void *arg, const struct dpchan_origin *o)
{
	struct dpchan_server *s = arg;

	(void)o;
	s->cnt[DPCHAN_C_HELD_RX]++;
}

/* An origin the newest start of the dataplane still holds: kept at the sweep. */
static void
on_held(void *arg, const struct dpchan_origin *o)
{
	struct dpchan_server *s = arg;

	s->cnt[DPCHAN_C_HELD_RX]++;
	dpchan_q2_mark(s->q2, o);
}

static bool
superseded(const struct dpchan_server *s, uint64_t boot_id)
{
	for (uint32_t i = 0; i < s->rs_old_n; i++)
		if (s->rs_old[i] == boot_id)
			return true;
	return false;
}

/* The first HELLO of a start not seen before: the resync of the origins with it begins, and
 * the lists heard from the start before count no more. */
static void
resync_begin(struct dpchan_server *s, uint64_t boot_id)
{
	if (s->rs_boot != 0) {
		if (s->rs_old_n == sizeof(s->rs_old) / sizeof(s->rs_old[0])) {
			memmove(s->rs_old, s->rs_old + 1, sizeof(s->rs_old) - sizeof(s->rs_old[0]));
			s->rs_old_n--;
		}
		s->rs_old[s->rs_old_n++] = s->rs_boot;
	}
	s->rs_boot = boot_id;
	s->rs_lcores = 0;
	s->rs_swept = false;
	for (uint32_t i = 0; i < s->cfg.max_streams; i++)
		s->streams[i].held_end = false;
	dpchan_q2_resync(s->q2);
}

/* Every lcore of the newest start has listed what it holds: the origins of other starts none
 * listed lost their RELEASE (a connection that ended first, a full release queue, a dataplane
 * killed between the PUBREL and the send), and are forgotten. Once per start (and agent run). */
static void
resync_check(struct dpchan_server *s)
{
	uint32_t done = 0, n;

	if (s->rs_swept || s->rs_lcores == 0)
		return;
	for (uint32_t i = 0; i < s->cfg.max_streams; i++)
		done += s->streams[i].used && s->streams[i].held_end &&
		    s->streams[i].id.boot_id == s->rs_boot;
	if (done < s->rs_lcores)
		return;
	s->rs_swept = true;
	if ((n = dpchan_q2_sweep(s->q2, s->rs_boot)) > 0)
		log_info(
		    "dpchan: %u QoS 2 origins of earlier dataplane starts forgotten: no lcore of "
		    "this start (%u) holds them (their release was lost)",
		    n, s->rs_lcores);
}

static void
on_down_ack(void *arg, const struct dpchan_range *r)
{
	struct dpchan_server *s = arg;

	s->cnt[DPCHAN_C_DOWN_ACK_RX]++;
	if (s->down_ack != NULL)
		s->down_ack(s->down_ack_arg, r->first, r->last, r->status);
}

void
dpchan_server_set_down_ack(struct dpchan_server *s, dpchan_down_ack_fn fn, void *arg)
{
	s->down_ack = fn;
	s->down_ack_arg = arg;
}

/* One frame received on c; false when c was closed. */
static bool
frame_in(struct dpchan_server *s, struct sconn *c, size_t n)
{
	struct dpchan_hello h;
	uint8_t type;
	uint32_t count;
	int rc = dpchan_frame_header(c->rx, n, &type, &count);

	s->cnt[DPCHAN_C_FRAMES_RX]++;
	if (rc == 0 && !c->hello) {
		if ((rc = dpchan_decode_hello(c->rx, n, &h)) == 0) {
			if (superseded(s, h.boot_id)) { /* a start older than the one connected */
				conn_close(s, c, "from an earlier start of the dataplane");
				return false;
			}
			if (s->n_known > 0)
				known_forget_others(s, h.boot_id);
			if (h.boot_id != s->rs_boot) {
				resync_begin(s, h.boot_id);
				s->down_seen = h.down_seen; /* a start with fresh state says 0 */
			}
			if (h.down_seen > s->down_seen)
				s->down_seen = h.down_seen;
			if ((c->st = stream_of(s, &h)) == NULL) {
				s->cnt[DPCHAN_C_LIMIT_STREAMS]++;
				conn_close(s, c, "max_streams reached");
				return false;
			}
			if (c->st->conn != NULL) /* the same lcore again: the newer one wins */
				conn_close(s, c->st->conn, "replaced by a new connection");
			c->st->conn = c;
			c->st->known_trimmed = false;
			c->hello = true;
			s->cnt[DPCHAN_C_CONNECTS]++;
			log_info("dpchan: lcore %u connected (boot %016llx, %u refs await "
				 "durability)",
			    h.lcore, (unsigned long long)h.boot_id, c->st->w_len);
			return true;
		}
	} else if (rc == 0 && type == DPCHAN_RELEASE) {
		if ((rc = dpchan_decode_release(c->rx, n, on_release, s)) == 0)
			return true;
	} else if (rc == 0 && type == DPCHAN_HELD) {
		/* only the newest start's lists count (an older one's lcore may linger) */
		if (c->st->id.boot_id != s->rs_boot)
			rc = dpchan_decode_held(c->rx, n, on_held_ignored, s);
		else
			rc = dpchan_decode_held(c->rx, n, on_held, s);
		if (rc == 0)
			return true;
	} else if (rc == 0 && type == DPCHAN_HELD_END) {
		uint32_t lcores;

		if ((rc = dpchan_decode_held_end(c->rx, n, &lcores)) == 0) {
			if (c->st->id.boot_id == s->rs_boot) {
				c->st->held_end = true;
				if (lcores > s->rs_lcores)
					s->rs_lcores = lcores;
				resync_check(s);
			}
			return true;
		}
	} else if (rc == 0 && type == DPCHAN_DOWN_ACK) {
		if ((rc = dpchan_decode_down_ack(c->rx, n, on_down_ack, s)) == 0)
			return true;
	} else if (rc == 0 && type != DPCHAN_PUB) {
		rc = -DPCHAN_E_TYPE;
	} else if (rc == 0) {
		c->rx_len = n;
		c->rx_done = 0;
		if ((rc = take_frame(s, c)) == 2)
			return false; /* closed */
		if (rc >= 0)
			return true;
	}
	s->cnt[DPCHAN_C_BAD_FRAME]++;
	conn_close(s, c, dpchan_strerror(rc));
	return false;
}

/* Read c's frames while it is not paused. */
static void
conn_input(struct dpchan_server *s, struct sconn *c)
{
	for (unsigned i = 0; i < 64 && !c->paused; i++) {
		ssize_t n = recv(c->fd, c->rx, DPCHAN_FRAME_MAX, MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(s, c, n == 0 ? NULL : strerror(errno));
			return;
		}
		if ((size_t)n > DPCHAN_FRAME_MAX) {
			s->cnt[DPCHAN_C_BAD_FRAME]++;
			conn_close(s, c, dpchan_strerror(-DPCHAN_E_TOO_LARGE));
			return;
		}
		if (!frame_in(s, c, (size_t)n))
			return;
	}
}

static void q2_synced(struct dpchan_server *s);

void
dpchan_server_run(struct dpchan_server *s)
{
	struct epoll_event ev[32];
	uint64_t gen;
	int n;

	/* origins held at start (dpchan_server_known_q2); a rewrite due after a failure */
	(void)dpchan_q2_sync_begin(s->q2, &gen);
	for (unsigned i = 0; i < MAX_CONNS; i++) { /* paused ones: room in the sink now? */
		struct sconn *c = s->conns[i];

		if (c != NULL && c->paused && take_frame(s, c) == 0)
			conn_input(s, c);
	}
	while ((n = epoll_wait(s->efd, ev, 32, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			struct sconn *c = ev[i].data.ptr;
			bool live = false;

			if (c == NULL) {
				accept_all(s);
				continue;
			}
			if ((void *)c == &q2_mark) {
				q2_synced(s);
				continue;
			}
			for (unsigned j = 0; j < MAX_CONNS && !live; j++) /* not closed meanwhile */
				live = s->conns[j] == c;
			if (live && c->paused && (ev[i].events & (EPOLLHUP | EPOLLERR)))
				/* its lcore went while it was paused (not read: epoll reports the
				 * hangup whatever it watches): it was counted connected, chosen for
				 * the downlink, and woke the loop for good */
				conn_close(s, c, NULL);
			else if (live)
				conn_input(s, c);
		}
		if (n < 32)
			break;
	}
}

/* Send the ranges gathered for st (to its connection, if it has one). */
static void
send_ranges(struct dpchan_server *s, struct stream *st, const struct dpchan_range *v, uint32_t n)
{
	static uint8_t buf[DPCHAN_HDR_LEN + RANGES_PER_MSG * DPCHAN_RANGE_LEN];
	int len;

	if (n == 0 || st->conn == NULL)
		return; /* not connected: the lcore sends them again, answered then */
	len = dpchan_encode_durable(buf, sizeof(buf), v, n);
	if (len > 0 && send_frame(s, st->conn, buf, (size_t)len))
		s->cnt[DPCHAN_C_DURABLE_TX] += n;
	else if (len > 0)
		conn_close(s, st->conn, "its socket buffer is full");
}

static void
stream_durable(
    struct dpchan_server *s, struct stream *st, uint64_t first, uint64_t last, int status)
{
	uint32_t max = s->cfg.max_inflight;
	struct dpchan_range v[256];
	uint32_t n = 0;

	for (uint32_t i = 0; i < st->w_len; i++) {
		struct waiting *w = &st->w[(st->w_head + i) % max];

		if (w->token > last)
			break;
		if (w->token >= first && w->status == 1)
			w->status = status;
	}
	while (st->w_len > 0 && st->w[st->w_head].status != 1) { /* in ref order */
		struct waiting *w = &st->w[st->w_head];

		if (w->status < 0)
			stream_failed(st, w->ref);
		if (n > 0 && v[n - 1].last + 1 == w->ref && v[n - 1].status == w->status) {
			v[n - 1].last = w->ref;
		} else {
			if (n == 256) {
				send_ranges(s, st, v, n);
				n = 0;
			}
			v[n++] = (struct dpchan_range){ w->ref, w->ref, w->status };
		}
		st->w_head = (st->w_head + 1) % max;
		st->w_len--;
	}
	send_ranges(s, st, v, n);
	/* a connection paused for max_inflight takes records again at the next run */
}

static void
durable_now(struct dpchan_server *s, uint64_t first, uint64_t last, int status)
{
	for (uint32_t i = 0; i < s->cfg.max_streams; i++)
		if (s->streams[i].used && s->streams[i].w_len > 0)
			stream_durable(s, &s->streams[i], first, last, status);
}

/* Room for one more report waiting for a sync; false: none (the caller syncs here). */
static bool
q2w_room(struct dpchan_server *s)
{
	uint32_t cap = s->q2w_cap ? 2 * s->q2w_cap : 16;
	struct q2_wait *v;

	if (s->q2w_len < s->q2w_cap)
		return true;
	if ((v = malloc((size_t)cap * sizeof(*v))) == NULL)
		return false;
	for (uint32_t i = 0; i < s->q2w_len; i++)
		v[i] = s->q2w[(s->q2w_head + i) % s->q2w_cap];
	free(s->q2w);
	s->q2w = v;
	s->q2w_cap = cap;
	s->q2w_head = 0;
	return true;
}

/* Syncs ended on the origin file's thread: the reports that waited for them are answered. */
static void
q2_synced(struct dpchan_server *s)
{
	uint64_t done = dpchan_q2_synced(s->q2);

	while (s->q2w_len > 0 && s->q2w[s->q2w_head].gen <= done) {
		struct q2_wait w = s->q2w[s->q2w_head];

		s->q2w_head = (s->q2w_head + 1) % s->q2w_cap;
		s->q2w_len--;
		durable_now(s, w.first, w.last, w.status);
	}
}

void
dpchan_server_durable(struct dpchan_server *s, uint64_t first, uint64_t last, int status)
{
	uint64_t gen;

	status = status > 0 ? 0 : status;
	/* the QoS 2 origins of these records are on disk before the dataplane hears of them: the
	 * records without one are answered now, those with one once the origin file's thread
	 * synced it (the loop does not wait for the disk) */
	dpchan_q2_settle(s->q2, first, last, status);
	if (dpchan_q2_sync_begin(s->q2, &gen) == 1) {
		if (q2w_room(s)) {
			s->q2w[(s->q2w_head + s->q2w_len++) % s->q2w_cap] =
			    (struct q2_wait){ first, last, gen, status };
			return;
		}
		dpchan_q2_sync_wait(s->q2, gen); /* no memory to keep the report: wait here */
	}
	durable_now(s, first, last, status);
}

/* The lcore for DOWN records: the one used last while it is connected, else the first that is.
 * Kept so that records go to one lcore in ref order: the dataplane's dedup (the highest ref
 * taken, shared by its lcores) would take a record another lcore still had unread for one it
 * took already. A new one is used only after the last one's connection ended, which the caller
 * sees (DISCONNECTS) and answers by sending again from its oldest unanswered record. */
static struct stream *
down_stream(struct dpchan_server *s)
{
	if (s->down_st != NULL && s->down_st->used && s->down_st->conn != NULL)
		return s->down_st;
	s->down_st = NULL;
	for (uint32_t i = 0; i < s->cfg.max_streams && s->down_st == NULL; i++)
		if (s->streams[i].used && s->streams[i].conn != NULL)
			s->down_st = &s->streams[i];
	return s->down_st;
}

int
dpchan_server_down(struct dpchan_server *s, const struct dpchan_rec *r)
{
	static uint8_t buf[DPCHAN_FRAME_MAX];
	struct stream *st = down_stream(s);
	int len;

	if (st == NULL)
		return -ENOTCONN;
	len = dpchan_put_rec(buf + DPCHAN_HDR_LEN, sizeof(buf) - DPCHAN_HDR_LEN, true, r);
	if (len < 0)
		return len;
	dpchan_put_header(buf, DPCHAN_DOWN, 1);
	if (send(st->conn->fd, buf, (size_t)len + DPCHAN_HDR_LEN, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	s->cnt[DPCHAN_C_FRAMES_TX]++;
	s->cnt[DPCHAN_C_DOWN_TX]++;
	return 0;
}

uint32_t
dpchan_server_connected(const struct dpchan_server *s)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->cfg.max_streams; i++)
		n += s->streams[i].used && s->streams[i].conn != NULL;
	return n;
}

uint64_t
dpchan_server_down_seen(const struct dpchan_server *s)
{
	return s->down_seen;
}

uint64_t
dpchan_server_counter(const struct dpchan_server *s, enum dpchan_counter k)
{
	return (unsigned)k < DPCHAN_C_COUNT ? s->cnt[k] : 0;
}
