/*
 * dpchan_client.c: the dataplane's end of the channel (dpchan_client.h). Records wait in a
 * byte ring (the arena), already in wire format, so a batch is one sendmsg() of iovecs that
 * point into it: no copy past the one at submit. They leave the ring in order, once each is
 * durable (or failed, or a QoS 0 record sent); one that completes out of order waits for
 * those before it.
 */
#include "dpchan_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define ENT_LEN         24u
#define BATCH_IOV       64u   /* records per frame at most (and iovecs per sendmsg) */
#define FRAMES_PER_POLL 4u    /* frames sent, and received, per poll at most */
#define RX_IDLE_MS      10u   /* nothing awaits an answer: read this often */
#define RELEASE_QUEUE   4096u /* QoS 2 origin releases waiting to be sent */
#define DOWN_ACKS_MAX   64u   /* DOWN_ACK ranges gathered before they are sent */

/* A record in the arena: this header, then the record's wire bytes (rec_len), padded to 8. */
struct ent {
	uint32_t size; /* bytes of the whole entry; 0: the rest of the arena is unused, wrap */
	uint32_t rec_len;
	uint64_t ref;
	uint8_t done; /* durable, failed, or a QoS 0 record sent */
	uint8_t sent; /* sent at least once (counts resends) */
	uint8_t pad[6];
};
_Static_assert(sizeof(struct ent) == ENT_LEN, "arena entry header");

struct dpchan_client {
	struct dpchan_client_config cfg;
	const struct dpchan_client_ops *ops;
	void *arg;
	int fd;
	bool connected;
	bool want_ready;    /* a submit was refused: tell ops->ready when it would succeed */
	uint32_t want_size; /* the entry size it needed */
	uint64_t next_try_ms;
	uint64_t next_rx_ms; /* nothing awaits an answer: the next read */
	uint32_t backoff_ms;
	uint64_t connected_ms; /* when the connection began */
	uint32_t quick_ends;   /* connections in a row that ended at once (disconnect) */
	uint8_t *arena;
	uint32_t cap;
	uint32_t head, tail; /* oldest entry; where the next one goes (equal only when empty) */
	uint32_t send_off;   /* the first entry not sent on this connection */
	uint32_t n_recs, n_unsent, used;
	uint8_t *rx;               /* one received frame */
	struct dpchan_origin *rel; /* releases not sent yet (RELEASE_QUEUE), allocated on use */
	uint32_t n_rel;
	struct dpchan_origin *held; /* what this start holds of earlier ones (dpchan_client_held) */
	uint32_t n_held, held_lcores;
	uint32_t held_off;   /* listed on this connection so far */
	bool held_due;       /* HELD_END not sent on this connection yet */
	uint64_t down_own;   /* the highest DOWN ref taken, when cfg.down_seen is NULL */
	uint64_t *down_seen; /* cfg.down_seen or &down_own */
	struct dpchan_range acks[DOWN_ACKS_MAX]; /* DOWN records taken, not answered yet */
	uint32_t n_acks;
	uint64_t cnt[DPCHAN_C_COUNT];
};

static inline struct ent *
ent_at(const struct dpchan_client *c, uint32_t off)
{
	return (struct ent *)(void *)(c->arena + off);
}

/* Where the entry at off really is: at 0 when off marks the unused end of the arena. */
static uint32_t
norm(const struct dpchan_client *c, uint32_t off)
{
	if (off != c->tail && (c->cap - off < ENT_LEN || ent_at(c, off)->size == 0))
		return 0;
	return off;
}

static uint32_t
next_off(const struct dpchan_client *c, uint32_t off)
{
	return norm(c, off + ent_at(c, off)->size);
}

/* Room for an entry of n bytes; its offset, or -1. */
static int64_t
arena_alloc(struct dpchan_client *c, uint32_t n)
{
	uint32_t off;

	if (c->n_recs == 0)
		c->head = c->tail = c->send_off = 0;
	if (c->tail >= c->head) { /* used: [head, tail) */
		if (c->cap - c->tail >= n) {
			off = c->tail;
		} else if (c->head > n) { /* strictly: tail == head means empty */
			if (c->cap - c->tail >= ENT_LEN)
				ent_at(c, c->tail)->size = 0;
			c->used += c->cap - c->tail;
			off = 0;
		} else {
			return -1;
		}
	} else if (c->head - c->tail > n) { /* used: [head, cap) and [0, tail) */
		off = c->tail;
	} else {
		return -1;
	}
	c->tail = off + n;
	c->used += n;
	return off;
}

struct dpchan_client *
dpchan_client_new(
    const struct dpchan_client_config *cfg, const struct dpchan_client_ops *ops, void *arg)
{
	struct dpchan_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->cfg = *cfg;
	if (c->cfg.path == NULL)
		c->cfg.path = DPCHAN_DEFAULT_PATH;
	if (c->cfg.pending_bytes == 0)
		c->cfg.pending_bytes = 4u << 20;
	if (c->cfg.reconnect_min_ms == 0)
		c->cfg.reconnect_min_ms = 100;
	if (c->cfg.reconnect_max_ms < c->cfg.reconnect_min_ms)
		c->cfg.reconnect_max_ms =
		    c->cfg.reconnect_min_ms > 1000 ? c->cfg.reconnect_min_ms : 1000;
	c->ops = ops;
	c->arg = arg;
	c->fd = -1;
	c->down_seen = cfg->down_seen != NULL ? cfg->down_seen : &c->down_own;
	c->backoff_ms = c->cfg.reconnect_min_ms;
	c->cap = (c->cfg.pending_bytes + 7u) & ~7u;
	c->arena = malloc(c->cap);
	c->rx = malloc(DPCHAN_FRAME_MAX);
	if (c->arena == NULL || c->rx == NULL ||
	    strlen(c->cfg.path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		dpchan_client_free(c);
		return NULL;
	}
	return c;
}

void
dpchan_client_free(struct dpchan_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->arena);
	free(c->rx);
	free(c->rel);
	free(c->held);
	free(c);
}

static uint32_t
ent_size(size_t rec_len)
{
	return (uint32_t)((ENT_LEN + rec_len + 7u) & ~(size_t)7u);
}

static bool
fits(const struct dpchan_client *c, uint32_t n)
{
	if (c->n_recs == 0)
		return n <= c->cap;
	if (c->tail >= c->head)
		return c->cap - c->tail >= n || c->head > n;
	return c->head - c->tail > n;
}

int
dpchan_client_room(const struct dpchan_client *c, size_t topic_len, size_t payload_len)
{
	if (topic_len == 0 || topic_len > UINT16_MAX ||
	    DPCHAN_HDR_LEN + dpchan_rec_size(false, topic_len, payload_len) > DPCHAN_FRAME_MAX)
		return -EMSGSIZE;
	if (!c->connected)
		return -ENOTCONN;
	return fits(c, ent_size(dpchan_rec_size(false, topic_len, payload_len))) ? 0 : -ENOBUFS;
}

int
dpchan_client_submit(struct dpchan_client *c, const struct dpchan_rec *r)
{
	size_t extra = r->has_origin ? DPCHAN_ORIGIN_LEN : 0;
	int rc = dpchan_client_room(c, r->topic_len, r->payload_len + extra);
	uint32_t n = ent_size(dpchan_rec_len(false, r));
	int64_t off;
	struct ent *e;

	if (rc == 0 && (off = arena_alloc(c, n)) < 0)
		rc = -ENOBUFS;
	if (rc != 0) {
		c->cnt[rc == -EMSGSIZE    ? DPCHAN_C_TOO_LARGE
			: rc == -ENOTCONN ? DPCHAN_C_REFUSED_DOWN
					  : DPCHAN_C_LIMIT_PENDING]++;
		if (rc != -EMSGSIZE) {
			c->want_ready = true;
			c->want_size = n;
		}
		return rc;
	}
	e = ent_at(c, (uint32_t)off);
	*e = (struct ent){ .size = n, .ref = r->ref };
	e->rec_len = (uint32_t)dpchan_put_rec((uint8_t *)(e + 1), n - ENT_LEN, false, r);
	c->cnt[DPCHAN_C_RECS_ORIGIN_TX] += r->has_origin;
	if (c->n_unsent == 0)
		c->send_off = (uint32_t)off;
	c->n_recs++;
	c->n_unsent++;
	return 0;
}

/* Entries that are done leave from the front; room that came back is announced. */
static void
pop_front(struct dpchan_client *c)
{
	while (c->n_recs > 0 && ent_at(c, c->head)->done) {
		uint32_t size = ent_at(c, c->head)->size;
		uint32_t nh = next_off(c, c->head);

		if (c->n_unsent == c->n_recs) { /* the head was not sent on this connection */
			c->send_off = nh;
			c->n_unsent--;
		}
		c->used -= nh < c->head ? c->cap - c->head : size;
		c->head = nh;
		c->n_recs--;
	}
	if (c->n_recs == 0) {
		c->head = c->tail = c->send_off = 0;
		c->used = 0;
	}
	if (c->want_ready && c->connected && fits(c, c->want_size) && c->ops->ready != NULL) {
		c->want_ready = false;
		c->ops->ready(c->arg);
	}
}

/* A connection shorter than this ended "at once": the agent refuses this lcore (its version,
 * max_streams) or something it sends; the next try backs off as for a failed connect. */
#define DPCHAN_STABLE_MS 5000u

/* The next try waits twice as long, up to reconnect_max_ms. */
static void
backoff_double(struct dpchan_client *c)
{
	c->backoff_ms = c->backoff_ms * 2 > c->cfg.reconnect_max_ms ? c->cfg.reconnect_max_ms
								    : c->backoff_ms * 2;
}

static void
disconnect(struct dpchan_client *c, uint64_t now_ms, const char *why)
{
	bool quick = now_ms - c->connected_ms < DPCHAN_STABLE_MS;

	if (c->fd < 0)
		return;
	/* a series of connections that end at once is said once (then counted: DISCONNECTS),
	 * not three lines a cycle on both ends */
	if (!quick || c->quick_ends == 0)
		log_warnx("dpchan: lcore %u: connection to %s ended (%s); %u records wait to be "
			  "sent again%s",
		    c->cfg.lcore, c->cfg.path, why, c->n_recs,
		    quick ? " (it ended at once: retrying with backoff, said once)" : "");
	close(c->fd);
	c->fd = -1;
	c->connected = false;
	c->n_acks = 0; /* unanswered: the agent sends those records again, found taken then */
	c->cnt[DPCHAN_C_DISCONNECTS]++;
	c->send_off = c->head;
	c->n_unsent = c->n_recs;
	if (quick) { /* reconnecting at the shortest delay each time was a storm */
		c->quick_ends++;
		c->next_try_ms = now_ms + c->backoff_ms;
		backoff_double(c);
		return;
	}
	c->quick_ends = 0;
	c->next_try_ms = now_ms + c->cfg.reconnect_min_ms;
	c->backoff_ms = c->cfg.reconnect_min_ms;
}

static void
try_connect(struct dpchan_client *c, uint64_t now_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dpchan_hello h = { c->cfg.boot_id, c->cfg.lcore, DPCHAN_VERSION,
		__atomic_load_n(c->down_seen, __ATOMIC_ACQUIRE) };
	uint8_t buf[DPCHAN_HDR_LEN + DPCHAN_HELLO_LEN];
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int len = dpchan_encode_hello(buf, sizeof(buf), &h);

	strcpy(sa.sun_path, c->cfg.path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    send(fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) != len) {
		if (c->cnt[DPCHAN_C_CONNECT_FAIL]++ == 0 ||
		    c->backoff_ms == c->cfg.reconnect_max_ms / 2)
			log_warnx("dpchan: lcore %u: cannot reach the agent at %s: %m (retrying, "
				  "every %u ms at most)",
			    c->cfg.lcore, c->cfg.path, c->cfg.reconnect_max_ms);
		if (fd >= 0)
			close(fd);
		c->next_try_ms = now_ms + c->backoff_ms;
		backoff_double(c);
		return;
	}
	c->fd = fd;
	c->connected = true;
	c->held_off = 0;
	c->held_due = c->held_lcores > 0; /* a new agent may hold origins no lcore holds */
	c->connected_ms = now_ms;
	if (c->quick_ends == 0) /* the backoff of connections that end at once stays */
		c->backoff_ms = c->cfg.reconnect_min_ms;
	c->cnt[DPCHAN_C_CONNECTS]++;
	c->cnt[DPCHAN_C_FRAMES_TX]++;
	if (c->quick_ends == 0)
		log_info(
		    "dpchan: lcore %u: connected to the agent at %s (%u records to send again)",
		    c->cfg.lcore, c->cfg.path, c->n_recs);
	c->want_ready = true; /* whatever was refused meanwhile may go now (pop_front) */
}

/* One frame of what is not sent yet; false when nothing more can go now. */
static bool
send_batch(struct dpchan_client *c, uint64_t now_ms)
{
	struct iovec iov[BATCH_IOV + 1];
	uint8_t hdr[DPCHAN_HDR_LEN];
	struct msghdr mh = { .msg_iov = iov };
	uint32_t o = c->send_off, k = 0, count = 0, resent = 0;
	size_t bytes = DPCHAN_HDR_LEN;
	ssize_t n;

	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	for (; k < c->n_unsent && count < BATCH_IOV; k++, o = next_off(c, o)) {
		struct ent *e = ent_at(c, o);

		if (e->done) /* completed while we were away: not again */
			continue;
		if (bytes + e->rec_len > DPCHAN_FRAME_MAX)
			break;
		iov[++count] = (struct iovec){ e + 1, e->rec_len };
		bytes += e->rec_len;
		resent += e->sent;
	}
	if (count > 0) {
		dpchan_put_header(hdr, DPCHAN_PUB, count);
		mh.msg_iovlen = count + 1;
		n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			c->cnt[DPCHAN_C_SEND_AGAIN]++;
			return false;
		}
		if (n < 0) {
			c->cnt[DPCHAN_C_SEND_FAIL]++;
			disconnect(c, now_ms, strerror(errno));
			return false;
		}
		c->cnt[DPCHAN_C_FRAMES_TX]++;
		c->cnt[DPCHAN_C_RECS_TX] += count;
		c->cnt[DPCHAN_C_RECS_RESENT] += resent;
	}
	for (uint32_t i = 0, p = c->send_off; i < k; i++, p = next_off(c, p)) {
		struct ent *e = ent_at(c, p);

		e->sent = 1;
		if (e->ref == 0)
			e->done = 1; /* best effort: gone once sent */
	}
	c->send_off = o;
	c->n_unsent -= k;
	pop_front(c);
	return c->n_unsent > 0;
}

int
dpchan_client_release(struct dpchan_client *c, const struct dpchan_origin *o)
{
	if (c->rel == NULL && (c->rel = malloc(RELEASE_QUEUE * sizeof(*c->rel))) == NULL) {
		c->cnt[DPCHAN_C_RELEASE_DROP]++;
		return -ENOMEM;
	}
	if (c->n_rel == RELEASE_QUEUE) {
		if (c->cnt[DPCHAN_C_RELEASE_DROP]++ == 0)
			log_warnx("dpchan: lcore %u: %u QoS 2 origin releases wait for the agent: "
				  "more are dropped (the agent forgets them at the next start, or "
				  "at its bound)",
			    c->cfg.lcore, RELEASE_QUEUE);
		return -ENOBUFS;
	}
	c->rel[c->n_rel++] = *o;
	return 0;
}

/* Frames of origins (RELEASE, HELD) are built here, RELEASE_QUEUE origins at most. */
static _Thread_local uint8_t origin_buf[DPCHAN_HDR_LEN + RELEASE_QUEUE * DPCHAN_ORIGIN_LEN];

/* One frame; false when it did not go (the socket full: try again later; or failed: the
 * connection closed). */
static bool
send_one(struct dpchan_client *c, const uint8_t *buf, size_t len, uint64_t now_ms)
{
	ssize_t n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
		c->cnt[DPCHAN_C_SEND_AGAIN]++;
		return false;
	}
	if (n < 0) {
		c->cnt[DPCHAN_C_SEND_FAIL]++;
		disconnect(c, now_ms, strerror(errno));
		return false;
	}
	c->cnt[DPCHAN_C_FRAMES_TX]++;
	return true;
}

/* The releases waiting, in one frame (RELEASE_QUEUE < DPCHAN_RELEASE_MAX). */
static void
send_releases(struct dpchan_client *c, uint64_t now_ms)
{
	int len = dpchan_encode_release(origin_buf, sizeof(origin_buf), c->rel, c->n_rel);

	if (len < 0 || !send_one(c, origin_buf, (size_t)len, now_ms))
		return;
	c->cnt[DPCHAN_C_RELEASE_TX] += c->n_rel;
	c->n_rel = 0;
}

int
dpchan_client_held(
    struct dpchan_client *c, const struct dpchan_origin *v, uint32_t n, uint32_t lcores)
{
	struct dpchan_origin *copy = NULL;

	if (lcores == 0)
		return -EINVAL;
	if (n > 0 && (copy = malloc((size_t)n * sizeof(*copy))) == NULL)
		return -ENOMEM;
	if (n > 0)
		memcpy(copy, v, (size_t)n * sizeof(*copy));
	free(c->held);
	c->held = copy;
	c->n_held = n;
	c->held_lcores = lcores;
	c->held_off = 0;
	c->held_due = c->fd >= 0;
	return 0;
}

/* After each connect: the origins this start holds of earlier ones (HELD frames), then
 * HELD_END; what the socket cannot take now goes at the next poll. */
static void
send_held(struct dpchan_client *c, uint64_t now_ms)
{
	int len;

	while (c->held_off < c->n_held) {
		uint32_t n = c->n_held - c->held_off;

		if (n > RELEASE_QUEUE)
			n = RELEASE_QUEUE;
		len = dpchan_encode_held(origin_buf, sizeof(origin_buf), c->held + c->held_off, n);
		if (len < 0 || !send_one(c, origin_buf, (size_t)len, now_ms))
			return;
		c->cnt[DPCHAN_C_HELD_TX] += n;
		c->held_off += n;
	}
	len = dpchan_encode_held_end(origin_buf, sizeof(origin_buf), c->held_lcores);
	if (len > 0 && send_one(c, origin_buf, (size_t)len, now_ms))
		c->held_due = false;
}

static void
on_range(void *arg, const struct dpchan_range *r)
{
	struct dpchan_client *c = arg;

	/* every record, sent on this connection or not: a durable answer may come for one that
	 * the agent took on the connection before */
	for (uint32_t i = 0, o = c->head; i < c->n_recs; i++, o = next_off(c, o)) {
		struct ent *e = ent_at(c, o);

		if (e->ref > r->last)
			break;
		if (e->ref >= r->first && e->ref != 0 && !e->done) {
			e->done = 1;
			c->cnt[r->status == 0 ? DPCHAN_C_DURABLE_OK : DPCHAN_C_DURABLE_FAIL]++;
		}
	}
	c->ops->durable(c->arg, r->first, r->last, r->status);
}

/* Send the DOWN_ACK ranges gathered; false when the connection was closed. */
static bool
flush_acks(struct dpchan_client *c, uint64_t now_ms)
{
	uint8_t buf[DPCHAN_HDR_LEN + DOWN_ACKS_MAX * DPCHAN_RANGE_LEN];
	int len;

	if (c->n_acks == 0 || c->fd < 0)
		return c->fd >= 0;
	len = dpchan_encode_down_ack(buf, sizeof(buf), c->acks, c->n_acks);
	if (len > 0 && send(c->fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) == len) {
		c->cnt[DPCHAN_C_FRAMES_TX]++;
		c->cnt[DPCHAN_C_DOWN_ACK_TX] += c->n_acks;
		c->n_acks = 0;
		return true;
	}
	if (len > 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
		return true; /* kept: sent at the next poll */
	c->cnt[DPCHAN_C_DOWN_ACK_FAIL]++;
	disconnect(c, now_ms, "cannot answer the agent's downlink records");
	return false;
}

/* Answer ref (status: 1 delivered, 0 no subscriber, < 0 refused); coalesced with the last. */
static void
ack_down(struct dpchan_client *c, uint64_t ref, int status, uint64_t now_ms)
{
	struct dpchan_range *last = c->n_acks > 0 ? &c->acks[c->n_acks - 1] : NULL;

	if (last != NULL && last->last + 1 == ref && last->status == status) {
		last->last = ref;
		return;
	}
	if (c->n_acks == DOWN_ACKS_MAX && !flush_acks(c, now_ms))
		return;
	if (c->n_acks == DOWN_ACKS_MAX) { /* the socket is full: the agent resends, found taken */
		c->cnt[DPCHAN_C_DOWN_ACK_FAIL]++;
		disconnect(c, now_ms, "its socket is full of downlink answers");
		return;
	}
	c->acks[c->n_acks++] = (struct dpchan_range){ ref, ref, status };
}

/* The highest DOWN ref taken, shared by the lcores of one dataplane (the agent sends each record
 * to one lcore, in ref order, and again from its oldest unanswered one after a disconnect): a
 * ref at or below it was taken before, by this lcore or another. */
static bool
down_seen_before(struct dpchan_client *c, uint64_t ref)
{
	uint64_t seen = __atomic_load_n(c->down_seen, __ATOMIC_ACQUIRE);

	while (ref > seen)
		if (__atomic_compare_exchange_n(
			c->down_seen, &seen, ref, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

struct down_ctx {
	struct dpchan_client *c;
	uint64_t now_ms;
};

static int
on_down(void *arg, const struct dpchan_rec *r)
{
	struct down_ctx *d = arg;
	struct dpchan_client *c = d->c;
	int rc;

	c->cnt[DPCHAN_C_DOWN_RX]++;
	if (r->ref != 0 && down_seen_before(c, r->ref)) {
		c->cnt[DPCHAN_C_DOWN_DUP]++;
		ack_down(c, r->ref, 0, d->now_ms);
		return c->fd >= 0 ? 0 : 1;
	}
	rc = c->ops->down != NULL ? c->ops->down(c->arg, r) : -ENOTSUP;
	if (rc == 0)
		c->cnt[DPCHAN_C_DOWN_NO_SUBSCRIBER]++;
	else if (rc < 0)
		c->cnt[DPCHAN_C_DOWN_REFUSED]++;
	if (r->ref != 0)
		ack_down(c, r->ref, rc > 0 ? 1 : rc, d->now_ms);
	return c->fd >= 0 ? 0 : 1;
}

static void
receive(struct dpchan_client *c, uint64_t now_ms)
{
	for (unsigned i = 0; i < FRAMES_PER_POLL * 4 && c->fd >= 0; i++) {
		ssize_t n = recv(c->fd, c->rx, DPCHAN_FRAME_MAX, MSG_DONTWAIT | MSG_TRUNC);
		uint8_t type;
		uint32_t count;
		int rc;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			disconnect(c, now_ms, n == 0 ? "the agent closed it" : strerror(errno));
			return;
		}
		c->cnt[DPCHAN_C_FRAMES_RX]++;
		rc = dpchan_frame_header(c->rx, (size_t)n, &type, &count);
		if (rc == 0 && type == DPCHAN_DURABLE)
			rc = dpchan_decode_durable(c->rx, (size_t)n, on_range, c);
		else if (rc == 0 && type == DPCHAN_DOWN)
			rc = dpchan_decode_recs(c->rx, (size_t)n, DPCHAN_DOWN, on_down,
			    &(struct down_ctx){ c, now_ms });
		else if (rc == 0)
			rc = -DPCHAN_E_TYPE;
		if (c->fd < 0)
			return; /* closed while answering */
		if (rc != 0) {
			c->cnt[DPCHAN_C_BAD_FRAME]++;
			disconnect(c, now_ms, dpchan_strerror(rc));
			return;
		}
		pop_front(c);
	}
}

void
dpchan_client_poll(struct dpchan_client *c, uint64_t now_ms)
{
	if (c->fd < 0 && now_ms >= c->next_try_ms)
		try_connect(c, now_ms);
	if (c->fd < 0)
		return;
	/* answers are read every iteration while records wait for them; otherwise (downlink
	 * publishes, the agent going away) every RX_IDLE_MS: no syscall per idle iteration */
	if (c->n_recs > 0 || now_ms >= c->next_rx_ms) {
		c->next_rx_ms = now_ms + RX_IDLE_MS;
		receive(c, now_ms);
	}
	if (c->fd >= 0 && c->n_acks > 0) /* what the broker took, once its calls ended */
		flush_acks(c, now_ms);
	if (c->fd >= 0 && c->held_due)
		send_held(c, now_ms);
	for (unsigned i = 0; i < FRAMES_PER_POLL && c->fd >= 0 && c->n_unsent > 0; i++)
		if (!send_batch(c, now_ms))
			break;
	if (c->fd >= 0 && c->n_rel > 0) /* after the records: a release follows its record */
		send_releases(c, now_ms);
	if (c->fd >= 0)
		pop_front(c); /* also tells ready after a (re)connect */
}

bool
dpchan_client_connected(const struct dpchan_client *c)
{
	return c->connected;
}

uint32_t
dpchan_client_pending(const struct dpchan_client *c, uint32_t *bytes)
{
	if (bytes != NULL)
		*bytes = c->used;
	return c->n_recs;
}

uint32_t
dpchan_client_releases(const struct dpchan_client *c)
{
	return c->n_rel;
}

uint64_t
dpchan_client_counter(const struct dpchan_client *c, enum dpchan_counter k)
{
	return (unsigned)k < DPCHAN_C_COUNT ? c->cnt[k] : 0;
}
