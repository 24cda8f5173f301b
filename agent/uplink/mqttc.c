/*
 * mqttc.c: the cloud MQTT client (see mqttc.h). States: IDLE (backoff) -> RESOLVING (a name,
 * on resolve.c's thread) -> CONNECTING (TCP) -> TLS (handshake, tls.c) -> WAIT_CONNACK -> UP.
 * Any failure goes back to IDLE through mc_drop(), which counts it, logs it once per series of
 * attempts and schedules the next attempt with exponential backoff and full jitter.
 *
 * Delivery: pending (not sent) and inflight (sent, not complete) lists (sys/queue.h TAILQs:
 * an acknowledgement takes its message out of the middle), both in submission
 * order. A reconnect that finds the session (session present 1) resends inflight in order:
 * PUBLISH with DUP for those not acknowledged, PUBREL for QoS 2 messages past PUBREC. One that
 * does not (the broker lost it) sends them again as new messages, except QoS 2 messages past
 * PUBREC: the broker took those, and sending them again could deliver them twice.
 *
 * QoS 2 steps are made durable before the bytes that announce them leave (persist, then
 * persist_sync), without blocking: each step's bytes start a hold in the output buffer, the
 * socket gets what lies before the first hold, and mqttc_persist_synced() lifts the holds the
 * finished commit covers. At most two holds: one for the commit in flight, one for the steps
 * made since (the next commit takes all of them).
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "mqtt_codec.h"
#include "mqttc.h"
#include "resolve.h"
#include "tls.h"
#include "log.h"

#define MC_OBUF_HIGH     (256 * 1024) /* stop encoding more while this much waits for the socket */
#define MC_IBUF_MAX      (256 * 1024) /* largest packet we accept from the broker */
#define MC_RECV_MAX      64           /* QoS 1/2 downlink messages the broker may have in flight */
#define MC_STABLE_MS     60000        /* a connection up this long resets the backoff */
#define MC_BACKOFF_MIN   100          /* ms: full jitter may draw 0; never spin */
#define MC_SUBS_MAX      32           /* filters besides the command topic (mqttc_subscribe_add) */
#define MC_ACK_TIMEOUT   60000  /* ms: a message the broker took, unanswered, reconnects after */
#define MC_DEFER_MIN     1000   /* ms: a message refused for now goes again after (doubling) */
#define MC_DEFER_MAX     300000 /* ms: at most */
#define MC_REDELIVER_MIN 10000  /* ms: a refused downlink message asked for again after */
#define MC_REDELIVER_MAX 300000 /* ms: the longest wait while refusals go on */
#define MC_ACKQ \
	256 /* downlink acknowledgements held in order (> MC_RECV_MAX; 3.1.1: more refused) */

struct mc_msg {
	TAILQ_ENTRY(mc_msg) link;
	uint64_t ref;
	uint8_t qos, state;      /* enum mqttc_msg_state */
	bool retain, dup, again; /* again: sent before, to a session the broker lost */
	uint16_t packet_id;
	uint16_t topic_len;
	uint32_t len;
	uint64_t sent_ms;  /* its PUBLISH or PUBREL last sent (0: not on this connection yet) */
	uint64_t retry_at; /* refused for now (mc_defer): sent again from then on */
	uint8_t deferred;  /* times refused for now so far */
	char *topic;
	uint8_t payload[];
};

/* A list of messages in submission order, and its length (the window and the queue limit
 * read it at every submission). */
struct mc_list {
	TAILQ_HEAD(, mc_msg) q;
	size_t n;
};

/* A downlink QoS 1/2 message's acknowledgement, in arrival order (MQTT 4.6). */
enum mc_ack_st {
	MC_ACK_WAIT = 0, /* message() said MQTTC_OWN_LATER: mqttc_owned() decides */
	MC_ACK_SEND,     /* owned: PUBACK or PUBREC when its turn comes */
	MC_ACK_NONE,     /* not owned: no answer */
	MC_ACK_OVER,     /* a QoS 2 duplicate's PUBREC, its exchange over since: no answer */
};

struct mc_ack_in {
	uint64_t token;
	uint16_t id;
	uint8_t qos;
	uint8_t st; /* enum mc_ack_st */
};

/* Output from obuf offset off on waits until marks number need are durable. */
struct mc_hold {
	size_t off;
	uint64_t need;
};

struct mqttc {
	struct uplink_mqtt_conf cf;
	struct mqttc_hooks h;
	char port[8];
	enum mqttc_state state;
	int fd, rfd, watched_fd;
	uint32_t watched_ev;
	struct uplink_tls_ctx *tlsx;
	struct uplink_tls *tls;
	uint64_t state_since_ms, up_since_ms, next_connect_ms, last_tx_ms, last_rx_ms;
	uint64_t hs_in0, hs_out0, rng;
	uint32_t attempt;
	struct uplink_addrs addrs; /* the host's addresses of this attempt */
	uint32_t addr_first;       /* the one tried first: the last that worked, if still there */
	uint32_t addr_tried;       /* addresses of addrs tried so far in this attempt */
	struct uplink_addr good;   /* the address of the last connection up (family 0: none) */
	uint16_t keepalive_s, window, next_id, sub_id;
	uint16_t sub_first;  /* the first filter of the SUBSCRIBE awaiting its SUBACK (sub_id) */
	uint16_t sub_unsent; /* filters from here on not subscribed on this connection yet */
	uint16_t unsub_ids[MC_SUBS_MAX + 1]; /* UNSUBSCRIBEs awaiting their UNSUBACK (0: none) */
	uint8_t max_qos;
	uint32_t max_packet;
	bool ping_out;
	bool sync_busy;          /* a persist_sync() commit is in flight */
	uint64_t marks;          /* persist() steps that announce bytes, so far */
	uint64_t sync_target;    /* the marks the commit in flight covers */
	uint64_t durable_marks;  /* the marks known durable */
	struct mc_hold holds[2]; /* oldest first */
	unsigned nholds;
	char last_why[300];
	int last_why_c; /* counter of the last failure logged, -1 none */
	struct mc_list pending, inflight;
	struct mc_list later;           /* refused for now, by retry_at (mc_defer) */
	struct mc_ack_in acks[MC_ACKQ]; /* this connection's, oldest at ack_head */
	uint32_t ack_head, ack_n;
	uint64_t next_token;   /* message()'s tokens: never reused, so an old one finds nothing */
	uint64_t lost_upto;    /* tokens up to this one came in a session the broker lost since */
	uint64_t redeliver_at; /* reconnect then: downlink messages refused on this connection */
	uint32_t redeliver_ms; /* the wait for the next refusal (doubles while refusals go on) */
	uint64_t ack_check_ms; /* the last look for a message the broker leaves unanswered */
	struct mqtt_subscription subs[MC_SUBS_MAX + 1]; /* [0] the command topic, if any */
	size_t n_subs;
	uint8_t *obuf, *ibuf;
	size_t olen, ocap, ooff, ilen, icap;
	uint64_t discard; /* bytes of an oversized PUBLISH still to drop */
	uint64_t cnt[UPLINK_C_COUNT];
	uint8_t ids_out[65536 / 8];  /* packet ids in use (PUBLISH, SUBSCRIBE) */
	uint8_t ids_in[65536 / 8];   /* QoS 2 downlink ids delivered, PUBREL not yet received */
	uint8_t ids_rel[65536 / 8];  /* their PUBREL came, its answer is mqttc_released()'s */
	uint8_t q1_acked[65536 / 8]; /* QoS 1 downlink ids PUBACKed on this connection */
	uint8_t scratch[4096];
	char topic[65536]; /* a downlink message's topic name, NUL-terminated for the hook */
};

static void mc_drop(struct mqttc *c, enum uplink_counter why_c, const char *why);
static void mc_tcp_fail(struct mqttc *c, enum uplink_counter why_c, const char *why);
static void mc_forget_in(struct mqttc *c);

/* ---- small helpers ---- */

/* obuf's bytes moved delta towards its start: the holds with them. */
static void
mc_holds_shift(struct mqttc *c, size_t delta)
{
	for (unsigned i = 0; i < c->nholds; i++)
		c->holds[i].off -= delta;
}

/* Where the socket's share of obuf ends: the first hold, or everything. */
static size_t
mc_out_limit(const struct mqttc *c)
{
	return c->nholds > 0 ? c->holds[0].off : c->olen;
}

static uint64_t
mc_now(const struct mqttc *c)
{
	return c->h.now_ms != NULL ? c->h.now_ms(c->h.arg) : clock_mono_ms();
}

static bool
bit_get(const uint8_t *b, uint16_t i)
{
	return (b[i >> 3] >> (i & 7)) & 1;
}

static void
bit_set(uint8_t *b, uint16_t i, bool v)
{
	if (v)
		b[i >> 3] |= (uint8_t)(1u << (i & 7));
	else
		b[i >> 3] &= (uint8_t) ~(1u << (i & 7));
}

static uint16_t
mc_alloc_id(struct mqttc *c)
{
	for (unsigned n = 0; n < 65535; n++) {
		if (++c->next_id == 0)
			c->next_id = 1;
		if (!bit_get(c->ids_out, c->next_id)) {
			bit_set(c->ids_out, c->next_id, true);
			return c->next_id;
		}
	}
	return 0; /* cannot happen: the window is far below 65535 */
}

static void
list_init(struct mc_list *l)
{
	TAILQ_INIT(&l->q);
	l->n = 0;
}

static void
list_push(struct mc_list *l, struct mc_msg *m)
{
	TAILQ_INSERT_TAIL(&l->q, m, link);
	l->n++;
}

static struct mc_msg *
list_unlink(struct mc_list *l, struct mc_msg *m)
{
	TAILQ_REMOVE(&l->q, m, link);
	l->n--;
	return m;
}

static struct mc_msg *
list_pop(struct mc_list *l)
{
	struct mc_msg *m = TAILQ_FIRST(&l->q);

	return m != NULL ? list_unlink(l, m) : NULL;
}

/* Moves all of from in front of l, in order; from is left empty. */
static void
list_prepend(struct mc_list *l, struct mc_list *from)
{
	TAILQ_CONCAT(&from->q, &l->q, link);
	TAILQ_CONCAT(&l->q, &from->q, link);
	l->n += from->n;
	from->n = 0;
}

static void
list_free(struct mc_list *l)
{
	struct mc_msg *m;

	while ((m = list_pop(l)) != NULL)
		free(m);
}

/* Under backlog QoS 0 goes first: the oldest QoS 0 message waiting is dropped. */
static bool
drop_oldest_qos0(struct mqttc *c)
{
	struct mc_msg *m;

	TAILQ_FOREACH (m, &c->pending.q, link) {
		if (m->qos != 0)
			continue;
		free(list_unlink(&c->pending, m));
		c->cnt[UPLINK_C_dropped_full]++;
		return true;
	}
	return false;
}

static void
mc_set_state(struct mqttc *c, enum mqttc_state s)
{
	c->state = s;
	c->state_since_ms = mc_now(c);
}

/* ---- watching the one fd ---- */

static void
mc_watch(struct mqttc *c, int fd, uint32_t ev)
{
	if (c->watched_fd == fd && c->watched_ev == ev)
		return;
	if (c->watched_fd >= 0 && c->watched_fd != fd)
		c->h.unwatch(c->h.arg, c->watched_fd);
	if (c->h.watch(c->h.arg, fd, ev, c->watched_fd != fd) != 0)
		log_err("mqtt: cannot watch fd %d", fd);
	c->watched_fd = fd;
	c->watched_ev = ev;
}

static void
mc_unwatch(struct mqttc *c)
{
	if (c->watched_fd >= 0)
		c->h.unwatch(c->h.arg, c->watched_fd);
	c->watched_fd = -1;
	c->watched_ev = 0;
}

/* ---- bytes on the link (plain or TLS) ---- */

static ssize_t
link_send(struct mqttc *c, const uint8_t *buf, size_t len)
{
	ssize_t n;

	if (c->tls != NULL)
		return uplink_tls_write(c->tls, buf, len);
	n = send(c->fd, buf, len, MSG_NOSIGNAL);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? -EAGAIN : -errno;
	c->cnt[UPLINK_C_bytes_out] += (uint64_t)n;
	return n;
}

static ssize_t
link_recv(struct mqttc *c, uint8_t *buf, size_t len)
{
	ssize_t n;

	if (c->tls != NULL)
		return uplink_tls_read(c->tls, buf, len);
	n = recv(c->fd, buf, len, 0);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? -EAGAIN : -errno;
	c->cnt[UPLINK_C_bytes_in] += (uint64_t)n;
	return n;
}

static const char *
link_err(const struct mqttc *c, ssize_t rc)
{
	return c->tls != NULL ? uplink_tls_error(c->tls) : strerror((int)-rc);
}

/* ---- output ---- */

static int
obuf_reserve(struct mqttc *c, size_t need)
{
	uint8_t *nb;
	size_t cap;

	if (c->ooff > 0 && c->ooff == c->olen) {
		mc_holds_shift(c, c->ooff);
		c->ooff = c->olen = 0;
	}
	if (c->olen + need <= c->ocap)
		return 0;
	if (c->ooff > 0 && c->tls == NULL) {
		/* (not under TLS: a write mbedTLS must repeat keeps its address) */
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		mc_holds_shift(c, c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
		if (c->olen + need <= c->ocap)
			return 0;
	}
	cap = c->ocap ? c->ocap : 4096;
	while (cap < c->olen + need)
		cap *= 2;
	nb = realloc(c->obuf, cap);
	if (nb == NULL)
		return -ENOMEM;
	c->obuf = nb;
	c->ocap = cap;
	return 0;
}

/* Encode one packet with an encoder that reports the size it needs when cap is too small. */
#define MC_ENCODE(c, call_with_buf_cap)                           \
	({                                                        \
		int n_ = 0;                                       \
		for (int try_ = 0; try_ < 2; try_++) {            \
			uint8_t *buf = (c)->obuf + (c)->olen;     \
			size_t cap = (c)->ocap - (c)->olen;       \
			n_ = (call_with_buf_cap);                 \
			if (n_ < 0 || (size_t)n_ <= cap)          \
				break;                            \
			if (obuf_reserve((c), (size_t)n_) != 0) { \
				n_ = -ENOMEM;                     \
				break;                            \
			}                                         \
		}                                                 \
		if (n_ > 0)                                       \
			(c)->olen += (size_t)n_;                  \
		n_;                                               \
	})

static void
mc_want(struct mqttc *c)
{
	bool out = mc_out_limit(c) > c->ooff || (c->tls != NULL && uplink_tls_wants_write(c->tls));

	mc_watch(c, c->fd, EPOLLIN | (out ? EPOLLOUT : 0));
}

/* The marks up to durable_marks are durable (or failed, counted): lift the holds they cover. */
static void
mc_holds_release(struct mqttc *c)
{
	while (c->nholds > 0 && c->holds[0].need <= c->durable_marks) {
		c->holds[0] = c->holds[1];
		c->nholds--;
	}
}

static void
mc_sync_end(struct mqttc *c, int status)
{
	c->sync_busy = false;
	c->durable_marks = c->sync_target;
	if (status < 0) {
		c->cnt[UPLINK_C_persist_fail]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "mqtt: QoS 2 state not made durable");
	}
	mc_holds_release(c);
}

/* One commit for every mark so far, when held bytes wait and none is in flight. */
static void
mc_sync_start(struct mqttc *c)
{
	int rc;

	if (c->nholds == 0 || c->sync_busy)
		return;
	c->sync_busy = true;
	c->sync_target = c->marks;
	if ((rc = c->h.persist_sync(c->h.arg)) != 0)
		mc_sync_end(c, rc > 0 ? 0 : rc);
}

/* A step the bytes encoded from here on announce: they wait for a commit that covers it. */
static void
mc_hold_here(struct mqttc *c)
{
	struct mc_hold *last = c->nholds > 0 ? &c->holds[c->nholds - 1] : NULL;

	c->marks++;
	if (c->h.persist_sync == NULL)
		return;
	if (last != NULL && (!c->sync_busy || last->need > c->sync_target || c->nholds == 2))
		last->need = c->marks; /* not asked for yet: the next commit takes this one too */
	else
		c->holds[c->nholds++] = (struct mc_hold){ c->olen, c->marks };
}

/* Write what the socket may take; false when the connection was dropped. The QoS 2 steps held
 * bytes announce are made durable first (one commit for the whole batch, off the loop). */
static bool
mc_flush(struct mqttc *c)
{
	mc_sync_start(c);
	while (c->ooff < mc_out_limit(c)) {
		ssize_t n = link_send(c, c->obuf + c->ooff, mc_out_limit(c) - c->ooff);

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			char why[200];

			snprintf(why, sizeof(why), "send: %s", link_err(c, n));
			mc_drop(c, UPLINK_C_send_fail, why);
			return false;
		}
		c->ooff += (size_t)n;
		c->last_tx_ms = mc_now(c);
	}
	if (c->ooff == c->olen) {
		mc_holds_shift(c, c->ooff);
		c->ooff = c->olen = 0;
	}
	mc_want(c);
	return true;
}

static void
mc_send_ack(struct mqttc *c, enum mqtt_type type, uint16_t id, uint8_t reason)
{
	struct mqtt_ack a = { .packet_id = id, .reason = reason };

	if (MC_ENCODE(c, mqtt_encode_ack(buf, cap, c->cf.version, type, &a)) < 0)
		log_err("mqtt: cannot encode %s", mqtt_type_name(type));
}

static int
mc_encode_publish(struct mqttc *c, const struct mc_msg *m)
{
	struct mqtt_publish p = { .qos = m->qos,
		.dup = m->dup,
		.retain = m->retain,
		.topic = { m->topic, m->topic_len },
		.packet_id = m->packet_id,
		.payload = m->payload,
		.payload_len = m->len };

	return MC_ENCODE(c, mqtt_encode_publish(buf, cap, c->cf.version, &p));
}

static void
mc_persist(struct mqttc *c, const struct mc_msg *m, enum mqttc_msg_state st)
{
	if (m->qos != 2 || c->h.persist == NULL)
		return;
	if (st != MQTTC_MSG_DONE)
		mc_hold_here(c);
	if (c->h.persist(c->h.arg, m->ref, m->packet_id, st) != 0) {
		c->cnt[UPLINK_C_persist_fail]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "mqtt: QoS 2 state of message %llu not stored",
		    (unsigned long long)m->ref);
	}
}

static void
mc_done(struct mqttc *c, struct mc_msg *m, uint8_t reason)
{
	if (m->packet_id != 0) /* also one sent at QoS 0 now that held an id (mc_defer) */
		bit_set(c->ids_out, m->packet_id, false);
	mc_persist(c, m, MQTTC_MSG_DONE);
	if (c->h.acked != NULL)
		c->h.acked(c->h.arg, m->ref, reason);
	free(m);
}

/* The QoS a message leaves with: the configured one, capped by the broker's Maximum QoS. */
static uint8_t
mc_eff_qos(const struct mqttc *c, const struct mc_msg *m)
{
	uint8_t q = c->cf.qos != UPLINK_QOS_KEEP ? c->cf.qos : m->qos;

	return q > c->max_qos ? c->max_qos : q;
}

static void
mc_fix_qos(struct mqttc *c, struct mc_msg *m)
{
	uint8_t q = c->cf.qos != UPLINK_QOS_KEEP ? c->cf.qos : m->qos;

	if (q > c->max_qos)
		c->cnt[UPLINK_C_qos_downgraded]++;
	m->qos = mc_eff_qos(c, m);
}

/* One pending message onto the wire; false when it had to be dropped. */
static bool
mc_send_one(struct mqttc *c, struct mc_msg *m)
{
	size_t need = (size_t)m->len + m->topic_len + 16;

	mc_fix_qos(c, m);
	if (c->max_packet != 0 && need > c->max_packet) {
		c->cnt[UPLINK_C_dropped_invalid]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "mqtt: a %zu-byte message to %s is over the broker's maximum packet size %u",
		    need, m->topic, c->max_packet);
		mc_done(c, m, MQTT_RC_PACKET_TOO_LARGE);
		return false;
	}
	if (m->qos > 0 && m->packet_id == 0)
		m->packet_id = mc_alloc_id(c);
	mc_persist(c, m, MQTTC_MSG_SENT);
	if (mc_encode_publish(c, m) < 0) {
		c->cnt[UPLINK_C_dropped_invalid]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "mqtt: cannot encode a PUBLISH to %s", m->topic);
		mc_done(c, m, MQTT_RC_UNSPECIFIED_ERROR);
		return false;
	}
	if (m->again)
		c->cnt[UPLINK_C_resent_new]++;
	else
		c->cnt[m->qos == 0    ? UPLINK_C_pub_qos0
			: m->qos == 1 ? UPLINK_C_pub_qos1
				      : UPLINK_C_pub_qos2]++;
	return true;
}

/* Move what the window and the output buffer allow from pending onto the wire. */
static void
mc_pump(struct mqttc *c)
{
	struct mc_msg *m;

	if (c->state != MQTTC_UP)
		return;
	while ((m = TAILQ_FIRST(&c->pending.q)) != NULL && c->olen - c->ooff < MC_OBUF_HIGH) {
		if (mc_eff_qos(c, m) > 0 && c->inflight.n >= c->window)
			break;
		m = list_pop(&c->pending);
		if (!mc_send_one(c, m))
			continue;
		if (m->qos == 0) {
			mc_done(c, m, 0);
			continue;
		}
		m->state = MQTTC_MSG_SENT;
		m->sent_ms = mc_now(c);
		list_push(&c->inflight, m);
	}
	mc_flush(c);
}

/* ---- connection ---- */

uint64_t
mqttc_backoff_next(struct mqttc *c)
{
	uint64_t cap = c->cf.reconnect_min_ms, d;

	for (uint32_t i = 0; i < c->attempt && cap < c->cf.reconnect_max_ms; i++)
		cap *= 2;
	if (cap > c->cf.reconnect_max_ms)
		cap = c->cf.reconnect_max_ms;
	/* xorshift64*: jitter only, no need for a good generator */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	d = (c->rng * 0x2545F4914F6CDD1Dull) % (cap + 1);
	return d < MC_BACKOFF_MIN ? MC_BACKOFF_MIN : d;
}

/* Close whatever is open (socket, TLS, resolver pipe); session state stays. */
static void
mc_close(struct mqttc *c)
{
	mc_unwatch(c);
	if (c->tls != NULL) {
		uplink_tls_close(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->rfd >= 0)
		close(c->rfd);
	c->fd = c->rfd = -1;
	if (c->sub_id) {
		bit_set(c->ids_out, c->sub_id, false);
		c->sub_id = 0;
	}
	for (unsigned i = 0; i < MC_SUBS_MAX + 1; i++) /* the next connect does not subscribe it */
		if (c->unsub_ids[i] != 0) {
			bit_set(c->ids_out, c->unsub_ids[i], false);
			c->unsub_ids[i] = 0;
		}
	c->olen = c->ooff = c->ilen = 0;
	c->discard = 0;
	c->ping_out = false;
	c->ack_head = c->ack_n = 0; /* unanswered: the broker sends them again */
	c->redeliver_at = 0;        /* on the next connection, as it does */
	memset(c->q1_acked, 0, sizeof(c->q1_acked));
	c->cnt[UPLINK_C_downlink_acks_waiting] = 0;
	/* what the next connection sends first (a resumed PUBREL, a DUP) may announce steps not
	 * durable yet: all of it waits for them */
	c->nholds = 0;
	if (c->marks > c->durable_marks && c->h.persist_sync != NULL)
		c->holds[c->nholds++] = (struct mc_hold){ 0, c->marks };
}

/*
 * Log a failed attempt once per series: the first, and when the reason changes.
 * The reason is the failure's counter where it has one (tls_fail, connect_fail,
 * ...): the library's text for one cause varies from try to try (a server that
 * refuses a client without a certificate shows as a fatal alert, or as a send
 * failure when it closed first).
 */
static void
mc_log_fail(struct mqttc *c, enum uplink_counter why_c, const char *why)
{
	bool same =
	    why_c < UPLINK_C_COUNT ? (int)why_c == c->last_why_c : strcmp(why, c->last_why) == 0;

	if (c->attempt > 0 && same) {
		log_debug("mqtt: attempt %u to %s:%s failed: %s", c->attempt + 1, c->cf.host,
		    c->port, why);
		return;
	}
	snprintf(c->last_why, sizeof(c->last_why), "%s", why);
	c->last_why_c = why_c < UPLINK_C_COUNT ? (int)why_c : -1;
	log_warnx("mqtt: cannot connect to %s:%s: %s (retrying with backoff; logged again when "
		  "the reason changes)",
	    c->cf.host, c->port, why);
}

static void
mc_drop(struct mqttc *c, enum uplink_counter why_c, const char *why)
{
	uint64_t now = mc_now(c), d;
	struct mc_msg *m;

	if (why_c < UPLINK_C_COUNT)
		c->cnt[why_c]++;
	if (c->state == MQTTC_UP) {
		c->cnt[UPLINK_C_disconnects]++;
		log_warnx("mqtt: connection to %s:%s lost: %s (%zu in flight, %zu waiting)",
		    c->cf.host, c->port, why, c->inflight.n, c->pending.n);
		if (now - c->up_since_ms >= MC_STABLE_MS)
			c->attempt = 0;
		c->last_why[0] = '\0';
		c->last_why_c = -1;
	} else if (c->state != MQTTC_IDLE) {
		mc_log_fail(c, why_c, why);
	}
	mc_close(c);
	TAILQ_FOREACH (m, &c->inflight.q, link)
		m->dup = m->state == MQTTC_MSG_SENT;
	mc_set_state(c, MQTTC_IDLE);
	d = mqttc_backoff_next(c);
	c->attempt++;
	c->next_connect_ms = now + d;
}

static int
mc_send_connect(struct mqttc *c)
{
	struct mqtt_connect cn = { .version = c->cf.version,
		.clean_start = false,
		.keepalive_s = c->cf.keepalive_s,
		.client_id = { c->cf.client_id, (uint16_t)strlen(c->cf.client_id) } };

	if (c->cf.username[0]) {
		cn.has_username = true;
		cn.username = (struct mqtt_str){ c->cf.username, (uint16_t)strlen(c->cf.username) };
	}
	if (c->cf.password[0]) {
		cn.has_password = true;
		cn.password = (struct mqtt_str){ c->cf.password, (uint16_t)strlen(c->cf.password) };
	}
	if (c->cf.version == MQTT_V5) {
		if (c->cf.session_expiry_s)
			mqtt_props_set_u32(
			    &cn.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, c->cf.session_expiry_s);
		mqtt_props_set_u32(&cn.props, MQTT_PROP_RECEIVE_MAXIMUM, MC_RECV_MAX);
		mqtt_props_set_u32(&cn.props, MQTT_PROP_MAXIMUM_PACKET_SIZE, MC_IBUF_MAX);
	}
	if (MC_ENCODE(c, mqtt_encode_connect(buf, cap, &cn)) < 0)
		return -EINVAL;
	mc_set_state(c, MQTTC_WAIT_CONNACK);
	c->last_rx_ms = mc_now(c);
	mc_flush(c);
	return 0;
}

static void
mc_tls_step(struct mqttc *c)
{
	int rc = uplink_tls_handshake(c->tls);
	uint64_t in, out;
	char why[200];

	if (rc == -EAGAIN) {
		mc_watch(c, c->fd, uplink_tls_wants_write(c->tls) ? EPOLLOUT : EPOLLIN);
		return;
	}
	if (rc != 0) {
		snprintf(why, sizeof(why), "TLS: %s%s",
		    rc == -EACCES ? "server certificate refused: " : "", uplink_tls_error(c->tls));
		return mc_drop(
		    c, rc == -EACCES ? UPLINK_C_tls_verify_fail : UPLINK_C_tls_fail, why);
	}
	in = c->cnt[UPLINK_C_bytes_in] - c->hs_in0;
	out = c->cnt[UPLINK_C_bytes_out] - c->hs_out0;
	c->cnt[UPLINK_C_tls_hs_bytes_in] += in;
	c->cnt[UPLINK_C_tls_hs_bytes_out] += out;
	c->cnt[uplink_tls_resumed(c->tls) ? UPLINK_C_tls_resumed : UPLINK_C_tls_full]++;
	log_info("mqtt: %s handshake with %s (%s): %llu bytes out, %llu in",
	    uplink_tls_resumed(c->tls) ? "resumed" : "full", c->cf.host, uplink_tls_version(c->tls),
	    (unsigned long long)out, (unsigned long long)in);
	if (mc_send_connect(c) != 0)
		mc_drop(c, UPLINK_C_protocol_errors, "cannot encode CONNECT");
}

static void
mc_on_connected(struct mqttc *c)
{
	int err = 0;
	socklen_t el = sizeof(err);
	char why[160];

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
		snprintf(why, sizeof(why), "connect: %s", strerror(err ? err : errno));
		return mc_tcp_fail(c, UPLINK_C_connect_fail, why);
	}
	if (c->tlsx == NULL) {
		if (mc_send_connect(c) != 0)
			mc_drop(c, UPLINK_C_protocol_errors, "cannot encode CONNECT");
		return;
	}
	if (!c->cf.tls.verify) /* at every connect, by design */
		log_warnx("mqtt: TLS to %s WITHOUT certificate verification (tls.verify: false)",
		    c->cf.host);
	c->tls = uplink_tls_open(
	    c->tlsx, c->fd, &c->cnt[UPLINK_C_bytes_in], &c->cnt[UPLINK_C_bytes_out]);
	if (c->tls == NULL)
		return mc_drop(c, UPLINK_C_tls_fail, "TLS: cannot set up the connection");
	c->hs_in0 = c->cnt[UPLINK_C_bytes_in];
	c->hs_out0 = c->cnt[UPLINK_C_bytes_out];
	mc_set_state(c, MQTTC_TLS);
	mc_tls_step(c);
}

static int
mc_socket(struct mqttc *c, int family)
{
	int one = 1;

	c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	/* no Nagle: the client writes whole batches already (mc_flush), and a PUBLISH held for the
	 * ACK of the last one waits out the broker's delayed ACK (40 ms) */
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		return -errno;
	if (c->cf.bind_interface[0] &&
	    setsockopt(c->fd, SOL_SOCKET, SO_BINDTODEVICE, c->cf.bind_interface,
		(socklen_t)strlen(c->cf.bind_interface)) != 0)
		return -errno;
	return 0;
}

static void mc_connect_addr(struct mqttc *c, const struct uplink_addr *a);

/* The index in addrs of the address this attempt is on. */
static uint32_t
mc_addr_i(const struct mqttc *c)
{
	return (c->addr_first + c->addr_tried - 1) % c->addrs.n;
}

/* How long TCP to the current address may take: address_timeout while the host has other
 * addresses left to try (a dead path, often IPv6 behind a carrier, costs that and not the
 * whole connect_timeout), connect_timeout for the last (or only) one. */
static uint64_t
mc_addr_timeout(const struct mqttc *c)
{
	if (c->addr_tried < c->addrs.n && c->cf.address_timeout_ms < c->cf.connect_timeout_ms)
		return c->cf.address_timeout_ms;
	return c->cf.connect_timeout_ms;
}

static const struct uplink_addr *
mc_addr(const struct mqttc *c)
{
	return &c->addrs.a[mc_addr_i(c)];
}

/*
 * A TCP connect to the host's current address failed (refused, unreachable, no answer in
 * connect_timeout): counted under why_c, then the next address at once while one is left
 * (addr_next), as a browser or curl does; after the last one, the attempt fails (mc_drop,
 * backoff). Failures after TCP is up (TLS, CONNACK) are the server's, not the address's:
 * those go to mc_drop directly.
 */
static void
mc_tcp_fail(struct mqttc *c, enum uplink_counter why_c, const char *why)
{
	char addr[64], all[360];

	uplink_addr_str(mc_addr(c), addr, sizeof(addr));
	if (c->addr_tried < c->addrs.n) {
		c->cnt[why_c]++;
		c->cnt[UPLINK_C_addr_next]++;
		log_debug("mqtt: %s (%s): %s; trying its next address (%u of %u)", c->cf.host, addr,
		    why, c->addr_tried + 1, c->addrs.n);
		mc_close(c);
		c->addr_tried++;
		return mc_connect_addr(c, mc_addr(c));
	}
	if (c->addrs.n > 1)
		snprintf(all, sizeof(all), "%s (%s; each of its %u addresses failed)", why, addr,
		    c->addrs.n);
	else
		snprintf(all, sizeof(all), "%s (%s)", why, addr);
	mc_drop(c, why_c, all);
}

static void
mc_connect_addr(struct mqttc *c, const struct uplink_addr *a)
{
	char why[160];
	int rc = mc_socket(c, a->family);

	if (rc != 0) {
		snprintf(why, sizeof(why), "socket%s%s: %s", c->cf.bind_interface[0] ? " on " : "",
		    c->cf.bind_interface, strerror(-rc));
		return mc_drop(c, UPLINK_C_socket_fail, why);
	}
	mc_set_state(c, MQTTC_CONNECTING);
	if (connect(c->fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		return mc_tcp_fail(c, UPLINK_C_connect_fail, why);
	}
	mc_watch(c, c->fd, EPOLLOUT);
}

/* The host's addresses are known: the one that worked last first (a dead address at the head
 * of the answer costs one timeout, not one per attempt), then the others in their order. */
static void
mc_on_addrs(struct mqttc *c)
{
	uplink_addrs_interleave(&c->addrs);
	c->addr_first = 0;
	for (uint32_t i = 0; c->good.family != 0 && i < c->addrs.n; i++)
		if (uplink_addr_eq(&c->addrs.a[i], &c->good))
			c->addr_first = i;
	c->addr_tried = 1;
	mc_connect_addr(c, mc_addr(c));
}

static void
mc_start(struct mqttc *c)
{
	int rc;

	c->cnt[UPLINK_C_connect_attempts]++;
	mc_set_state(c, MQTTC_RESOLVING);
	if (uplink_resolve_numeric(c->cf.host, c->port, &c->addrs) == 0)
		return mc_on_addrs(c);
	rc = uplink_resolve_start(c->cf.host, c->port, c->h.lookup, &c->rfd);
	if (rc != 0)
		return mc_drop(c, UPLINK_C_resolve_fail, "cannot start the resolver thread");
	mc_watch(c, c->rfd, EPOLLIN);
}

static void
mc_on_resolved(struct mqttc *c)
{
	char err[128], why[300];
	int fd = c->rfd;

	mc_unwatch(c);
	c->rfd = -1;
	if (uplink_resolve_finish(fd, &c->addrs, err, sizeof(err)) != 0) {
		snprintf(why, sizeof(why), "resolve %s: %s", c->cf.host, err);
		return mc_drop(c, UPLINK_C_resolve_fail, why);
	}
	mc_on_addrs(c);
}

/* One SUBSCRIBE for the filters from first on (all of them at every connect: the session may
 * be new; those added while up, when they come: a reload's new downlink rules). */
static void
mc_subscribe_from(struct mqttc *c, uint16_t first)
{
	struct mqtt_subscribe sub = { .subs = c->subs + first,
		.n_subs = (uint16_t)(c->n_subs - first) };

	c->sub_unsent = (uint16_t)c->n_subs;
	if (first >= c->n_subs)
		return;
	sub.packet_id = c->sub_id = mc_alloc_id(c);
	c->sub_first = first;
	if (MC_ENCODE(c, mqtt_encode_subscribe(buf, cap, c->cf.version, &sub)) < 0)
		log_err("mqtt: cannot encode SUBSCRIBE (%zu filters)", c->n_subs - first);
}

static void
mc_subscribe(struct mqttc *c)
{
	mc_subscribe_from(c, 0);
}

/* Filters added while connected: subscribed now, or after the SUBACK awaited. */
static void
mc_subscribe_new(struct mqttc *c)
{
	if (c->state == MQTTC_UP && c->sub_id == 0 && c->sub_unsent < c->n_subs)
		mc_subscribe_from(c, c->sub_unsent);
}

int
mqttc_subscribe_add(struct mqttc *c, const char *filter, uint8_t qos)
{
	size_t len = strlen(filter);
	char *f;

	if (c->n_subs == MC_SUBS_MAX + 1)
		return -ENOSPC;
	if (len == 0 || len > UINT16_MAX || qos > 2)
		return -EINVAL;
	for (size_t i = 0; i < c->n_subs; i++)
		if (c->subs[i].filter.len == len && memcmp(c->subs[i].filter.s, filter, len) == 0)
			return -EEXIST;
	if ((f = malloc(len + 1)) == NULL)
		return -ENOMEM;
	memcpy(f, filter, len + 1);
	c->subs[c->n_subs++] =
	    (struct mqtt_subscription){ .filter = { f, (uint16_t)len }, .qos = qos };
	if (c->state == MQTTC_UP) { /* outside the loop's input: its bytes leave now */
		mc_subscribe_new(c);
		mc_flush(c);
	}
	return 0;
}

static void
mc_unsubscribe(struct mqttc *c, const struct mqtt_str *filter)
{
	struct mqtt_unsubscribe u = { .filters = filter, .n_filters = 1 };
	unsigned i = 0;

	while (i < MC_SUBS_MAX + 1 && c->unsub_ids[i] != 0)
		i++;
	if (i == MC_SUBS_MAX + 1) /* cannot happen: one per filter removed */
		return;
	u.packet_id = c->unsub_ids[i] = mc_alloc_id(c);
	if (MC_ENCODE(c, mqtt_encode_unsubscribe(buf, cap, c->cf.version, &u)) < 0) {
		log_err("mqtt: cannot encode UNSUBSCRIBE %.*s", (int)filter->len, filter->s);
		bit_set(c->ids_out, c->unsub_ids[i], false);
		c->unsub_ids[i] = 0;
		return;
	}
	c->cnt[UPLINK_C_unsubscribed]++;
}

int
mqttc_subscribe_remove(struct mqttc *c, const char *filter)
{
	size_t len = strlen(filter), i = 0;
	struct mqtt_str f;

	while (i < c->n_subs &&
	    (c->subs[i].filter.len != len || memcmp(c->subs[i].filter.s, filter, len) != 0))
		i++;
	if (i == c->n_subs)
		return -ENOENT;
	f = c->subs[i].filter;
	memmove(&c->subs[i], &c->subs[i + 1], (c->n_subs - i - 1) * sizeof(c->subs[0]));
	c->n_subs--;
	/* the SUBSCRIBE in flight names filters by position: its SUBACK is read against the list
	 * less this one (a reason for the removed filter is dropped by the bound there) */
	if (i < c->sub_unsent)
		c->sub_unsent--;
	if (i < c->sub_first)
		c->sub_first--;
	if (c->state == MQTTC_UP) { /* outside the loop's input: its bytes leave now */
		mc_unsubscribe(c, &f);
		mc_flush(c);
	}
	free((char *)f.s);
	return 0;
}

static void
mc_on_unsuback(struct mqttc *c, const struct mqtt_suback *s)
{
	for (unsigned i = 0; i < MC_SUBS_MAX + 1; i++) {
		if (c->unsub_ids[i] != s->packet_id || s->packet_id == 0)
			continue;
		bit_set(c->ids_out, s->packet_id, false);
		c->unsub_ids[i] = 0;
		for (uint16_t r = 0; r < s->n_reasons; r++)
			if (s->reasons[r] >= 0x80) {
				c->cnt[UPLINK_C_unsuback_refused]++;
				log_err("mqtt: the broker refused an UNSUBSCRIBE (0x%02x)",
				    s->reasons[r]);
			}
		return;
	}
	c->cnt[UPLINK_C_protocol_errors]++; /* none awaited under that id */
	LOG_RATELIMITED(
	    LOG_LVL_WARN, 60, "mqtt: UNSUBACK for packet id %u not awaited", s->packet_id);
}

/* ---- session resumption ---- */

/* Session present: everything in flight again, in order (MQTT-4.4.0-1). */
static void
mc_resend(struct mqttc *c)
{
	struct mc_msg *m;

	TAILQ_FOREACH (m, &c->inflight.q, link) {
		m->sent_ms = mc_now(c);
		if (m->state == MQTTC_MSG_RELEASED) {
			mc_send_ack(c, MQTT_PUBREL, m->packet_id, 0);
			c->cnt[UPLINK_C_pubrel_resent]++;
		} else if (mc_encode_publish(c, m) >= 0) {
			c->cnt[UPLINK_C_resent_dup]++;
		}
	}
}

/* No session on the broker: what it never acknowledged goes again as new messages; QoS 2
 * messages past PUBREC are the broker's already (it may have delivered them). */
static void
mc_session_lost(struct mqttc *c)
{
	struct mc_list back;
	struct mc_msg *m;
	size_t released = 0;

	list_init(&back);
	c->cnt[UPLINK_C_session_lost]++;
	while ((m = list_pop(&c->inflight)) != NULL) {
		if (m->state == MQTTC_MSG_RELEASED) {
			released++;
			mc_done(c, m, 0);
			continue;
		}
		bit_set(c->ids_out, m->packet_id, false);
		m->packet_id = 0;
		m->dup = false;
		m->again = true;
		m->state = MQTTC_MSG_QUEUED;
		list_push(&back, m);
	}
	log_warnx("mqtt: the broker lost our session: %zu messages sent again, %zu QoS 2 "
		  "messages past PUBREC taken as delivered",
	    back.n, released);
	list_prepend(&c->pending, &back);
}

/* ---- input ---- */

static void
mc_connack_props(struct mqttc *c, const struct mqtt_props *p)
{
	c->keepalive_s = c->cf.keepalive_s;
	c->window = c->cf.window;
	c->max_qos = 2;
	c->max_packet = 0;
	if (c->cf.version != MQTT_V5)
		return;
	if (mqtt_props_has(p, MQTT_PROP_RECEIVE_MAXIMUM) &&
	    p->v[MQTT_PROP_RECEIVE_MAXIMUM].u < c->window)
		c->window = (uint16_t)p->v[MQTT_PROP_RECEIVE_MAXIMUM].u;
	if (mqtt_props_has(p, MQTT_PROP_SERVER_KEEP_ALIVE))
		c->keepalive_s = (uint16_t)p->v[MQTT_PROP_SERVER_KEEP_ALIVE].u;
	if (mqtt_props_has(p, MQTT_PROP_MAXIMUM_QOS))
		c->max_qos = (uint8_t)p->v[MQTT_PROP_MAXIMUM_QOS].u;
	if (mqtt_props_has(p, MQTT_PROP_MAXIMUM_PACKET_SIZE))
		c->max_packet = p->v[MQTT_PROP_MAXIMUM_PACKET_SIZE].u;
}

static void
mc_on_connack(struct mqttc *c, const struct mqtt_connack *ca)
{
	char why[128];
	bool auth;

	if (c->state != MQTTC_WAIT_CONNACK)
		return mc_drop(c, UPLINK_C_protocol_errors, "unexpected CONNACK");
	if (ca->reason != 0) {
		auth = c->cf.version == MQTT_V5 ? (ca->reason == 0x86 || ca->reason == 0x87)
						: (ca->reason == 4 || ca->reason == 5);
		snprintf(why, sizeof(why), "the broker refused: %s (0x%02x)",
		    c->cf.version == MQTT_V5 ? mqtt_reason_name(ca->reason, MQTT_CONNACK)
					     : "3.1.1 return code",
		    ca->reason);
		if (auth) /* credentials do not fix themselves: wait the longest */
			c->attempt = 31;
		return mc_drop(c, UPLINK_C_connack_refused, why);
	}
	mc_connack_props(c, &ca->props);
	mc_set_state(c, MQTTC_UP);
	c->up_since_ms = c->state_since_ms;
	c->cnt[UPLINK_C_connects]++;
	c->good = *mc_addr(c);
	if (c->addr_tried > 1) { /* once per connection: the host has an address that fails */
		char addr[64];

		log_info("mqtt: %s reached at %s, its address %u of %u, after %u that failed (see "
			 "connect_fail, connect_timeouts)",
		    c->cf.host, uplink_addr_str(&c->good, addr, sizeof(addr)), mc_addr_i(c) + 1,
		    c->addrs.n, c->addr_tried - 1);
	}
	log_info("mqtt: connected to %s:%s as %s (MQTT %s, session %s; %zu in flight, %zu "
		 "waiting)",
	    c->cf.host, c->port, c->cf.client_id, c->cf.version == MQTT_V5 ? "5.0" : "3.1.1",
	    ca->session_present ? "resumed" : "new", c->inflight.n, c->pending.n);
	if (ca->session_present) {
		c->cnt[UPLINK_C_session_present]++;
		mc_resend(c);
	} else {
		mc_forget_in(c);
		if (c->inflight.n > 0)
			mc_session_lost(c);
	}
	mc_subscribe(c);
	mc_pump(c);
}

/* The in-flight message with this id, or NULL. */
static struct mc_msg *
mc_find(struct mqttc *c, uint16_t id)
{
	struct mc_msg *m;

	TAILQ_FOREACH (m, &c->inflight.q, link)
		if (m->packet_id == id)
			return m;
	return NULL;
}

/*
 * A 5.0 PUBACK/PUBREC with a failure reason that may pass: 0x97 (quota exceeded: a rate or a
 * plan's limit) and the unspecific 0x80 and 0x83 (a broker or plugin in trouble). The broker
 * freed the id and has not delivered the message; dropping it would break what the gateway
 * promised the sensor, so it goes again later as a new message (its id kept), MC_DEFER_MIN after
 * the first refusal, doubling up to MC_DEFER_MAX, until the broker takes it or refuses it for
 * good; the spool's own bounds (bytes, age) still apply to it, counted there. The other
 * reasons (not authorized, topic or payload invalid, ...) will not change: released.
 */
static bool
mc_defer(struct mqttc *c, struct mc_msg *m, enum mqtt_type type, uint8_t reason)
{
	uint64_t d = MC_DEFER_MIN;
	struct mc_msg *at;

	if (reason != MQTT_RC_UNSPECIFIED_ERROR && reason != MQTT_RC_IMPLEMENTATION_SPECIFIC &&
	    reason != MQTT_RC_QUOTA_EXCEEDED)
		return false;
	for (unsigned i = 0; i < m->deferred && d < MC_DEFER_MAX; i++)
		d *= 2;
	d = d < MC_DEFER_MAX ? d : MC_DEFER_MAX;
	m->deferred += m->deferred < 255;
	c->cnt[UPLINK_C_pub_deferred]++;
	LOG_RATELIMITED(LOG_LVL_WARN, 60,
	    "mqtt: the broker refused a message to %s for now: %s; sent again in %llu s", m->topic,
	    mqtt_reason_name(reason, type), (unsigned long long)d / 1000);
	list_unlink(&c->inflight, m);
	/* its id stays its own: the broker freed it, and it is what a QoS 2 message's mark in the
	 * spool names until it goes again (given to another meanwhile, a restart would resume both
	 * under it, and the broker would take this one for the other's duplicate) */
	m->dup = false;
	m->state = MQTTC_MSG_QUEUED;
	m->sent_ms = 0;
	m->retry_at = mc_now(c) + d;
	TAILQ_FOREACH (at, &c->later.q, link) /* by retry_at */
		if (at->retry_at > m->retry_at)
			break;
	if (at != NULL)
		TAILQ_INSERT_BEFORE(at, m, link);
	else
		TAILQ_INSERT_TAIL(&c->later.q, m, link);
	c->later.n++;
	return true;
}

/* The messages refused for now whose time came go back ahead of the queue (they are older). */
static void
mc_later_due(struct mqttc *c, uint64_t now)
{
	struct mc_list due;
	struct mc_msg *m;

	list_init(&due);
	while ((m = TAILQ_FIRST(&c->later.q)) != NULL && m->retry_at <= now)
		list_push(&due, list_pop(&c->later));
	if (due.n == 0)
		return;
	list_prepend(&c->pending, &due);
	mc_pump(c);
}

static void
mc_on_ack(struct mqttc *c, enum mqtt_type type, const struct mqtt_ack *a)
{
	struct mc_msg *m = mc_find(c, a->packet_id);
	bool refused = a->reason >= 0x80;

	if (type == MQTT_PUBREC && m != NULL && m->qos == 2 && !refused) {
		if (m->state == MQTTC_MSG_SENT) {
			mc_persist(c, m, MQTTC_MSG_RELEASED);
			m->state = MQTTC_MSG_RELEASED;
		}
		m->sent_ms = mc_now(c); /* its PUBCOMP is what is awaited now */
		return mc_send_ack(c, MQTT_PUBREL, m->packet_id, 0);
	}
	if (m == NULL || (type == MQTT_PUBACK) != (m->qos == 1) ||
	    (type == MQTT_PUBCOMP) != (m->state == MQTTC_MSG_RELEASED)) {
		c->cnt[UPLINK_C_ack_unknown]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "mqtt: %s for packet id %u not in flight",
		    mqtt_type_name(type), a->packet_id);
		if (type == MQTT_PUBREC) /* let the broker finish its side */
			mc_send_ack(
			    c, MQTT_PUBREL, a->packet_id, c->cf.version == MQTT_V5 ? 0x92 : 0);
		return;
	}
	if (refused && mc_defer(c, m, type, a->reason))
		return mc_pump(c);
	if (refused) {
		c->cnt[UPLINK_C_pub_refused]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "mqtt: the broker refused a message to %s: %s",
		    m->topic, mqtt_reason_name(a->reason, type));
	} else {
		c->cnt[type == MQTT_PUBACK ? UPLINK_C_puback : UPLINK_C_pubcomp]++;
	}
	mc_done(c, list_unlink(&c->inflight, m), a->reason);
	mc_pump(c);
}

/*
 * A downlink message the gateway could not take gets no answer, and a broker sends a message
 * again only on a new connection (MQTT 5 forbids otherwise; 3.1.1 brokers mostly do the same):
 * on a steady link it would wait in the broker's inflight window for good, and with a window's
 * worth refused no downlink message would come at all. So the connection is made again a
 * while later (MC_REDELIVER_MIN, doubling up to MC_REDELIVER_MAX while refusals go on), and
 * the session's resend offers them again.
 */
static void
mc_refused(struct mqttc *c)
{
	c->cnt[UPLINK_C_downlink_not_owned]++;
	if (c->redeliver_at == 0)
		c->redeliver_at = mc_now(c) + c->redeliver_ms;
}

static void
mc_redeliver_check(struct mqttc *c, uint64_t now)
{
	char why[128];

	if (c->redeliver_at == 0 || now < c->redeliver_at)
		return;
	snprintf(why, sizeof(why),
	    "reconnecting so that the broker sends the downlink messages not taken again (%u s)",
	    c->redeliver_ms / 1000);
	c->redeliver_ms =
	    c->redeliver_ms * 2 < MC_REDELIVER_MAX ? c->redeliver_ms * 2 : MC_REDELIVER_MAX;
	mc_drop(c, UPLINK_C_downlink_redeliver, why);
}

/* The acknowledgements whose turn came: those owned answered, those refused passed over. */
static void
mc_acks_drain(struct mqttc *c)
{
	while (c->ack_n > 0) {
		struct mc_ack_in *a = &c->acks[c->ack_head];

		if (a->st == MC_ACK_WAIT)
			return;
		if (a->st == MC_ACK_NONE) {
			mc_refused(c);
		} else if (a->st == MC_ACK_OVER) {
			/* answered already: the broker sent PUBREL, we PUBCOMP */
		} else if (a->qos == 1) {
			c->redeliver_ms = MC_REDELIVER_MIN; /* taking messages again */
			bit_set(c->q1_acked, a->id, true);
			mc_send_ack(c, MQTT_PUBACK, a->id, 0);
		} else {
			c->redeliver_ms = MC_REDELIVER_MIN;
			bit_set(c->ids_in, a->id, true);
			mc_send_ack(c, MQTT_PUBREC, a->id, 0);
		}
		c->ack_head = (c->ack_head + 1) % MC_ACKQ;
		c->cnt[UPLINK_C_downlink_acks_waiting] = --c->ack_n;
	}
}

/* A QoS 1/2 message's answer (st), after those before it; 0, or -ENOBUFS when MC_ACKQ wait. */
static int
mc_ack_push(struct mqttc *c, uint8_t qos, uint16_t id, enum mc_ack_st st, uint64_t token)
{
	if (c->ack_n == MC_ACKQ)
		return -ENOBUFS;
	c->acks[(c->ack_head + c->ack_n++) % MC_ACKQ] =
	    (struct mc_ack_in){ .token = token, .id = id, .qos = qos, .st = (uint8_t)st };
	c->cnt[UPLINK_C_downlink_acks_waiting] = c->ack_n;
	mc_acks_drain(c);
	return 0;
}

/* A message of this QoS and id waits for its answer (PUBACK, PUBREC) on this connection (owned,
 * or to be said later; not one refused: a resend of that is offered again). */
static bool
mc_ack_waits(const struct mqttc *c, uint8_t qos, uint16_t id)
{
	for (uint32_t i = 0; i < c->ack_n; i++) {
		const struct mc_ack_in *a = &c->acks[(c->ack_head + i) % MC_ACKQ];

		if (a->qos == qos && a->id == id && a->st != MC_ACK_NONE && a->st != MC_ACK_OVER)
			return true;
	}
	return false;
}

/*
 * A message from the broker. QoS 1/2: acknowledged (PUBACK, PUBREC) only once the hook says the
 * gateway owns it, now or later (MQTTC_OWN_LATER, mqttc_owned), and after every earlier one;
 * when it does not (< 0) nothing is answered and the broker sends it again after the next
 * reconnect (the session keeps it). A QoS 2 duplicate whose PUBREC went out is answered again
 * and not delivered twice. A resend on the same connection (a broker's retry interval) is not
 * delivered again and gets one answer: the first's, or none when that went out already (QoS 1,
 * DUP). With MC_ACKQ answers waiting (a 3.1.1 broker, which has no receive maximum), a new one
 * is not delivered: the broker sends it again.
 */
static void
mc_on_publish(struct mqttc *c, const struct mqtt_publish *p)
{
	enum mc_ack_st st = MC_ACK_SEND;
	uint64_t token = ++c->next_token;
	int rc;

	if (p->qos > 0 && c->ack_n == MC_ACKQ) {
		mc_refused(c);
		LOG_RATELIMITED(LOG_LVL_WARN, 60,
		    "mqtt: %u downlink acknowledgements wait for the disk: a new message is not "
		    "taken (the broker sends it again)",
		    MC_ACKQ);
		return;
	}
	if ((p->qos == 2 || p->dup) && mc_ack_waits(c, p->qos, p->packet_id)) {
		/* sent again on this connection before our answer (a broker's retry; QoS 1 says so
		 * with DUP, QoS 2's id is taken until PUBREL): the first's answer is this one's,
		 * when it comes. A second PUBACK would reach a broker that took the first's as
		 * freeing the id, and may have sent a new message under it: that one would be
		 * acknowledged before the gateway owns it */
		c->cnt[p->qos == 1 ? UPLINK_C_downlink_dup_qos1 : UPLINK_C_downlink_dup]++;
		return;
	}
	if (p->qos == 1 && !p->dup) {
		bit_set(c->q1_acked, p->packet_id, false); /* a new message under the id */
	} else if (p->qos == 1 && bit_get(c->q1_acked, p->packet_id)) {
		/* a retry that crossed our PUBACK on this connection: the broker has it already,
		 * and a second would answer whatever it sends under the id next. (MQTT-4.3.2-2
		 * says to take it as new; a broker sends a new message with DUP 0, so only a retry
		 * is passed over, and a broker that lost our PUBACK sends it again after the next
		 * reconnect, when it is delivered and answered) */
		c->cnt[UPLINK_C_downlink_dup_qos1]++;
		return;
	}
	if (p->qos == 2 && bit_get(c->ids_in, p->packet_id)) {
		c->cnt[UPLINK_C_downlink_dup]++;
	} else {
		/* any topic name MQTT allows (65,535 bytes): the dataplane's broker takes them */
		memcpy(c->topic, p->topic.s, p->topic.len);
		c->topic[p->topic.len] = '\0';
		c->cnt[UPLINK_C_downlink]++;
		rc = c->h.message != NULL
		    ? c->h.message(c->h.arg, c->topic, p->payload, p->payload_len, p->qos,
			  p->retain, p->qos == 2 ? p->packet_id : 0, token)
		    : 0;
		if (rc < 0)
			st = MC_ACK_NONE;
		else if (rc == MQTTC_OWN_LATER && p->qos > 0)
			st = MC_ACK_WAIT;
	}
	if (p->qos > 0)
		mc_ack_push(c, p->qos, p->packet_id, st, token);
}

void
mqttc_owned(struct mqttc *c, uint64_t token, uint8_t qos, uint16_t packet_id, int rc)
{
	for (uint32_t i = 0; i < c->ack_n; i++) {
		struct mc_ack_in *a = &c->acks[(c->ack_head + i) % MC_ACKQ];

		if (a->token != token || a->st != MC_ACK_WAIT)
			continue;
		a->st = rc == 0 ? MC_ACK_SEND : MC_ACK_NONE;
		mc_acks_drain(c);
		mc_flush(c);
		return;
	}
	/* its connection is gone: the broker sends it again; owned, a QoS 2 resend is a dup. Not
	 * when its session is gone too: the id may be a new message's by then */
	if (rc == 0 && qos == 2 && packet_id != 0 && token > c->lost_upto)
		bit_set(c->ids_in, packet_id, true);
	else if (rc != 0)
		c->cnt[UPLINK_C_downlink_not_owned]++;
}

size_t
mqttc_acks_waiting(const struct mqttc *c)
{
	return c->ack_n;
}

/* PUBREL: the id is forgotten where it was kept before PUBCOMP says so; when it cannot be, no
 * PUBCOMP (the broker sends PUBREL again after the next reconnect) and the id stays taken. */
static void
mc_on_pubrel(struct mqttc *c, uint16_t id)
{
	int rc = c->h.released != NULL ? c->h.released(c->h.arg, id) : 0;

	/* a PUBREC still queued for the id answers a duplicate (a retry that crossed ours: the
	 * broker had ours, or it would not send PUBREL). Sent after our PUBCOMP it would mark the
	 * id delivered again, and the broker's next message under it, the id free for it, would be
	 * taken for a duplicate and never delivered */
	for (uint32_t i = 0; i < c->ack_n; i++) {
		struct mc_ack_in *a = &c->acks[(c->ack_head + i) % MC_ACKQ];

		if (a->qos == 2 && a->id == id && a->st == MC_ACK_SEND)
			a->st = MC_ACK_OVER;
	}

	bit_set(c->ids_rel, id, rc == MQTTC_OWN_LATER && id != 0);
	if (rc == MQTTC_OWN_LATER && id != 0)
		return; /* mqttc_released() answers */
	if (rc != 0) {
		c->cnt[UPLINK_C_downlink_release_fail]++;
		return;
	}
	bit_set(c->ids_in, id, false);
	mc_send_ack(c, MQTT_PUBCOMP, id, 0);
}

void
mqttc_released(struct mqttc *c, uint16_t packet_id, int rc)
{
	/* answered since (a PUBREL again after a reconnect), or its session is gone: the id may be
	 * a new session's message now, owed no PUBCOMP and not to be forgotten */
	if (!bit_get(c->ids_rel, packet_id))
		return;
	bit_set(c->ids_rel, packet_id, false);
	if (rc != 0) {
		c->cnt[UPLINK_C_downlink_release_fail]++;
		return;
	}
	bit_set(c->ids_in, packet_id, false);
	if (c->state == MQTTC_UP && c->fd >= 0) {
		mc_send_ack(c, MQTT_PUBCOMP, packet_id, 0);
		mc_flush(c);
	}
}

/* The broker has no session: the QoS 2 ids it sent are forgotten, here and where kept. */
static void
mc_forget_in(struct mqttc *c)
{
	memset(c->ids_in, 0, sizeof(c->ids_in));
	memset(c->ids_rel, 0, sizeof(c->ids_rel));
	c->lost_upto = c->next_token;
	if (c->h.released != NULL && c->h.released(c->h.arg, 0) != 0)
		c->cnt[UPLINK_C_downlink_release_fail]++;
}

void
mqttc_restore_in(struct mqttc *c, uint16_t packet_id)
{
	if (packet_id != 0)
		bit_set(c->ids_in, packet_id, true);
}

static void
mc_on_suback(struct mqttc *c, const struct mqtt_suback *s)
{
	if (s->packet_id != c->sub_id)
		return;
	bit_set(c->ids_out, c->sub_id, false);
	c->sub_id = 0;
	for (uint16_t i = 0; i < s->n_reasons && c->sub_first + i < c->n_subs; i++) {
		const struct mqtt_subscription *f = &c->subs[c->sub_first + i];

		if (s->reasons[i] < 0x80)
			continue;
		c->cnt[UPLINK_C_suback_refused]++;
		log_err("mqtt: the broker refused the subscription to %.*s (0x%02x)",
		    (int)f->filter.len, f->filter.s, s->reasons[i]);
	}
	mc_subscribe_new(c);
}

static void
mc_on_disconnect(struct mqttc *c, const struct mqtt_disconnect *d)
{
	char why[128];

	snprintf(why, sizeof(why), "DISCONNECT from the broker: %s (0x%02x)",
	    mqtt_reason_name(d->reason, MQTT_DISCONNECT), d->reason);
	mc_drop(c, UPLINK_C_server_disconnects, why);
}

static void
mc_on_packet(struct mqttc *c, const struct mqtt_packet *pkt)
{
	if (pkt->type != MQTT_CONNACK && c->state != MQTTC_UP)
		return mc_drop(c, UPLINK_C_protocol_errors, "packet before CONNACK");
	switch (pkt->type) {
	case MQTT_CONNACK:
		return mc_on_connack(c, &pkt->connack);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		return mc_on_ack(c, pkt->type, &pkt->ack);
	case MQTT_PUBLISH:
		return mc_on_publish(c, &pkt->publish);
	case MQTT_PUBREL:
		return mc_on_pubrel(c, pkt->ack.packet_id);
	case MQTT_SUBACK:
		return mc_on_suback(c, &pkt->suback);
	case MQTT_UNSUBACK:
		return mc_on_unsuback(c, &pkt->suback);
	case MQTT_PINGRESP:
		c->ping_out = false;
		return;
	case MQTT_DISCONNECT:
		return mc_on_disconnect(c, &pkt->disconnect);
	default:
		c->cnt[UPLINK_C_protocol_errors]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 60, "mqtt: unexpected %s from the broker",
		    mqtt_type_name(pkt->type));
	}
}

/*
 * A PUBLISH larger than we take (a runaway or hostile command) is acknowledged and dropped as
 * its bytes arrive: closing the connection instead would have a persistent session deliver it
 * again at every reconnect. Returns 1 when skipped, 0 when its header is not all here yet.
 */
static int
mc_skip_oversized(struct mqttc *c, size_t off)
{
	const uint8_t *p = c->ibuf + off;
	size_t have = c->ilen - off, i = 1, need;
	uint32_t rlen = 0, total;
	uint8_t qos = (p[0] >> 1) & 3;

	for (; i < 5 && i < have; i++) {
		rlen |= (uint32_t)(p[i] & 0x7F) << (7 * (i - 1));
		if (!(p[i] & 0x80))
			break;
	}
	if (i >= have)
		return 0;
	total = (uint32_t)(i + 1) + rlen;
	need = i + 1 + 2;
	if (have < need)
		return 0;
	need += ((size_t)p[i + 1] << 8 | p[i + 2]) + (qos ? 2 : 0);
	if (have < need)
		return 0;
	if (qos &&
	    mc_ack_push(c, qos, (uint16_t)(p[need - 2] << 8 | p[need - 1]), MC_ACK_SEND,
		++c->next_token) != 0)
		mc_refused(c);
	c->cnt[UPLINK_C_downlink_oversized]++;
	LOG_RATELIMITED(LOG_LVL_WARN, 10,
	    "mqtt: dropped a %u-byte PUBLISH from the broker (limit %u)", total, MC_IBUF_MAX);
	c->discard = total - have;
	c->ilen = off;
	return 1;
}

/* Decode and handle every whole packet in ibuf; false when the connection was dropped. */
static bool
mc_parse(struct mqttc *c)
{
	struct mqtt_decoder dec;
	struct mqtt_packet pkt;
	size_t off = 0;

	mqtt_decoder_init(
	    &dec, MQTT_ROLE_CLIENT, c->cf.version, MC_IBUF_MAX, c->scratch, sizeof(c->scratch));
	while (c->fd >= 0 && off < c->ilen) {
		int rc = mqtt_decode_buf(&dec, c->ibuf + off, c->ilen - off, &pkt);

		if (rc == 0)
			break;
		if (rc == -MQTT_E_PACKET_TOO_LARGE && (c->ibuf[off] >> 4) == MQTT_PUBLISH) {
			if (mc_skip_oversized(c, off) == 0 && c->ilen == c->icap) {
				mc_drop(c, UPLINK_C_protocol_errors, "PUBLISH header too large");
				return false;
			}
			break;
		}
		if (rc < 0) {
			mc_drop(c, UPLINK_C_protocol_errors, mqtt_err_str(rc));
			return false;
		}
		mc_on_packet(c, &pkt);
		off += (size_t)rc;
	}
	if (c->fd < 0)
		return false;
	memmove(c->ibuf, c->ibuf + off, c->ilen - off);
	c->ilen -= off;
	return true;
}

/* Room for one more read; false when the connection was dropped. */
static bool
mc_ibuf_room(struct mqttc *c)
{
	size_t cap = c->icap ? c->icap * 2 : 16384;
	uint8_t *nb;

	if (c->icap - c->ilen >= 4096)
		return true;
	nb = cap <= 2 * MC_IBUF_MAX ? realloc(c->ibuf, cap) : NULL;
	if (nb == NULL) {
		mc_drop(c, UPLINK_C_protocol_errors, "packet from the broker too large");
		return false;
	}
	c->ibuf = nb;
	c->icap = cap;
	return true;
}

/* Read until the socket (and the TLS layer) has nothing more. */
static void
mc_read(struct mqttc *c)
{
	for (;;) {
		ssize_t n;
		char why[200];

		if (!mc_ibuf_room(c))
			return;
		n = link_recv(c, c->ibuf + c->ilen, c->icap - c->ilen);
		if (n == -EAGAIN)
			break;
		if (n == 0)
			return mc_drop(c, UPLINK_C_peer_closed, "closed by the broker");
		if (n < 0) {
			snprintf(why, sizeof(why), "receive: %s", link_err(c, n));
			return mc_drop(c, c->tls ? UPLINK_C_tls_io_fail : UPLINK_C_recv_fail, why);
		}
		c->last_rx_ms = mc_now(c);
		if (c->discard > 0) {
			size_t drop = (size_t)n < c->discard ? (size_t)n : (size_t)c->discard;

			memmove(c->ibuf + c->ilen, c->ibuf + c->ilen + drop, (size_t)n - drop);
			c->discard -= drop;
			n -= (ssize_t)drop;
		}
		c->ilen += (size_t)n;
		if (!mc_parse(c))
			return;
	}
	mc_flush(c);
}

void
mqttc_on_io(struct mqttc *c, uint32_t events)
{
	switch (c->state) {
	case MQTTC_RESOLVING:
		return mc_on_resolved(c);
	case MQTTC_CONNECTING:
		return mc_on_connected(c);
	case MQTTC_TLS:
		return mc_tls_step(c);
	case MQTTC_WAIT_CONNACK:
	case MQTTC_UP:
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			mc_read(c);
		if (c->fd >= 0 && (events & EPOLLOUT))
			c->state == MQTTC_UP ? mc_pump(c) : (void)mc_flush(c);
		return;
	case MQTTC_IDLE:
		return;
	}
}

static void
mc_keepalive(struct mqttc *c, uint64_t now)
{
	uint64_t ka = (uint64_t)c->keepalive_s * 1000;

	if (ka == 0)
		return;
	if (now - c->last_rx_ms > ka + ka / 2)
		return mc_drop(c, UPLINK_C_keepalive_timeouts, "keepalive: the broker went silent");
	/* Also when we send a lot but hear nothing (QoS 0 only): the PINGRESP is what tells a
	 * live broker from a dead one. */
	if (!c->ping_out && (now - c->last_tx_ms >= ka || now - c->last_rx_ms >= ka)) {
		if (MC_ENCODE(c, mqtt_encode_pingreq(buf, cap)) > 0) {
			c->ping_out = true;
			c->cnt[UPLINK_C_pings]++;
			mc_flush(c);
		}
	}
}

/*
 * The broker took every byte we sent (none left in our buffer, none its TCP has not
 * acknowledged) and a message sent MC_ACK_TIMEOUT ago still has no answer: a broker that stalls
 * while it answers PINGREQ, or drops a PUBLISH (some do when their table of QoS 2 messages
 * awaiting PUBREL is full), holds that message and its window slot for good, and keepalive never
 * notices. The session resends it on a new connection. While bytes are still on their way (a
 * slow or cut link) nothing is decided here: keepalive watches that.
 */
static void
mc_ack_timeout_check(struct mqttc *c, uint64_t now)
{
	struct mc_msg *m;
	char why[160];
	int outq = 0;

	if (c->inflight.n == 0 || c->olen != 0 || now - c->ack_check_ms < 1000)
		return;
	c->ack_check_ms = now;
	TAILQ_FOREACH (m, &c->inflight.q, link)
		if (m->sent_ms != 0 && now - m->sent_ms >= MC_ACK_TIMEOUT)
			break;
	if (m == NULL || ioctl(c->fd, SIOCOUTQ, &outq) != 0 || outq > 0)
		return;
	snprintf(why, sizeof(why),
	    "no %s for message %u (QoS %u) in %llu s though the broker took every byte",
	    m->state == MQTTC_MSG_RELEASED ? "PUBCOMP"
		: m->qos == 1              ? "PUBACK"
					   : "PUBREC",
	    m->packet_id, m->qos, (unsigned long long)(now - m->sent_ms) / 1000);
	mc_drop(c, UPLINK_C_ack_timeouts, why);
}

void
mqttc_tick(struct mqttc *c)
{
	uint64_t now = mc_now(c);

	switch (c->state) {
	case MQTTC_IDLE:
		if (now >= c->next_connect_ms)
			mc_start(c);
		break;
	case MQTTC_CONNECTING: /* each address has its own time */
		if (now - c->state_since_ms > mc_addr_timeout(c))
			mc_tcp_fail(c, UPLINK_C_connect_timeouts, "no connection in time");
		break;
	case MQTTC_RESOLVING:
	case MQTTC_TLS:
	case MQTTC_WAIT_CONNACK:
		if (now - c->state_since_ms > c->cf.connect_timeout_ms)
			mc_drop(c, UPLINK_C_connect_timeouts,
			    c->state == MQTTC_WAIT_CONNACK ? "no CONNACK in time"
				: c->state == MQTTC_TLS    ? "TLS handshake stalled"
							   : "no connection in time");
		break;
	case MQTTC_UP:
		mc_keepalive(c, now);
		if (c->state == MQTTC_UP)
			mc_redeliver_check(c, now);
		if (c->state == MQTTC_UP)
			mc_ack_timeout_check(c, now);
		if (c->state == MQTTC_UP)
			mc_later_due(c, now);
		break;
	}
}

void
mqttc_disconnect(struct mqttc *c, const char *why)
{
	if (c->state != MQTTC_IDLE)
		mc_drop(c, UPLINK_C_COUNT, why);
}

/* ---- messages in ---- */

static struct mc_msg *
mc_msg_new(
    const char *topic, const void *payload, size_t len, uint8_t qos, bool retain, uint64_t ref)
{
	size_t tl = strlen(topic);
	struct mc_msg *m;

	if (tl == 0 || tl > 65535 || len > 16 * 1024 * 1024 || qos > 2)
		return NULL;
	m = malloc(sizeof(*m) + len + tl + 1);
	if (m == NULL)
		return NULL;
	*m = (struct mc_msg){ .ref = ref,
		.qos = qos,
		.retain = retain,
		.topic_len = (uint16_t)tl,
		.len = (uint32_t)len };
	memcpy(m->payload, payload, len);
	m->topic = (char *)m->payload + len;
	memcpy(m->topic, topic, tl + 1);
	return m;
}

int
mqttc_publish(struct mqttc *c, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref)
{
	struct mc_msg *m;

	c->cnt[UPLINK_C_submitted]++;
	if (c->pending.n + c->inflight.n + c->later.n >= c->cf.max_queue && !drop_oldest_qos0(c)) {
		c->cnt[UPLINK_C_dropped_full]++;
		LOG_RATELIMITED(LOG_LVL_WARN, 10, "mqtt: queue full (%u), message to %s dropped",
		    c->cf.max_queue, topic);
		return -ENOBUFS;
	}
	m = mc_msg_new(topic, payload, len, qos, retain, ref);
	if (m == NULL) {
		c->cnt[UPLINK_C_dropped_invalid]++;
		return -EINVAL;
	}
	list_push(&c->pending, m);
	mc_pump(c);
	return 0;
}

int
mqttc_restore(struct mqttc *c, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref, uint16_t packet_id, enum mqttc_msg_state st)
{
	struct mc_msg *m;

	if (c->state != MQTTC_IDLE || qos == 0 || packet_id == 0 ||
	    bit_get(c->ids_out, packet_id) ||
	    (st != MQTTC_MSG_SENT && !(st == MQTTC_MSG_RELEASED && qos == 2)))
		return -EINVAL;
	m = mc_msg_new(topic, payload, len, qos, retain, ref);
	if (m == NULL)
		return -EINVAL;
	m->packet_id = packet_id;
	m->state = (uint8_t)st;
	m->dup = st == MQTTC_MSG_SENT;
	bit_set(c->ids_out, packet_id, true);
	list_push(&c->inflight, m);
	return 0;
}

/* ---- life ---- */

int
mqttc_create(struct mqttc **out, const struct uplink_mqtt_conf *conf,
    const struct mqttc_hooks *hooks, char *err, size_t errlen)
{
	struct mqttc *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	c->cf = *conf;
	c->h = *hooks;
	c->fd = c->rfd = c->watched_fd = -1;
	c->last_why_c = -1;
	c->redeliver_ms = MC_REDELIVER_MIN;
	list_init(&c->pending);
	list_init(&c->inflight);
	list_init(&c->later);
	c->rng = clock_mono_us() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
	snprintf(c->port, sizeof(c->port), "%u", conf->port);
	if (c->cf.window == 0)
		c->cf.window = 1;
	if (conf->tls.enabled &&
	    uplink_tls_ctx_create(&c->tlsx, &conf->tls, conf->host, err, errlen) != 0) {
		free(c);
		return -EINVAL;
	}
	if (obuf_reserve(c, 4096) != 0 ||
	    (c->cf.cmd_topic[0] && mqttc_subscribe_add(c, c->cf.cmd_topic, 2) != 0)) {
		mqttc_destroy(c);
		return -ENOMEM;
	}
	mc_set_state(c, MQTTC_IDLE);
	c->next_connect_ms = 0; /* connect on the first tick */
	*out = c;
	return 0;
}

void
mqttc_destroy(struct mqttc *c)
{
	if (c == NULL)
		return;
	if (c->state == MQTTC_UP && c->nholds == 0) {
		/* Best effort: a clean DISCONNECT (the session stays on the broker); not behind
		 * bytes that wait for a commit (they never leave: the session resends them). */
		if (MC_ENCODE(c, mqtt_encode_disconnect(buf, cap, c->cf.version, NULL)) > 0 &&
		    link_send(c, c->obuf + c->ooff, c->olen - c->ooff) < 0)
			log_debug("mqtt: DISCONNECT not sent");
	}
	mc_close(c);
	if (c->pending.n + c->inflight.n + c->later.n)
		log_warnx("mqtt: %zu messages not delivered at exit",
		    c->pending.n + c->inflight.n + c->later.n);
	list_free(&c->pending);
	list_free(&c->later);
	list_free(&c->inflight);
	uplink_tls_ctx_destroy(c->tlsx);
	for (size_t i = 0; i < c->n_subs; i++)
		free((char *)c->subs[i].filter.s);
	free(c->obuf);
	free(c->ibuf);
	free(c);
}

void
mqttc_seed(struct mqttc *c, uint64_t seed)
{
	c->rng = seed ? seed : 1;
}

void
mqttc_persist_synced(struct mqttc *c, int status)
{
	if (!c->sync_busy)
		return;
	mc_sync_end(c, status);
	if (c->fd >= 0 && (c->state == MQTTC_UP || c->state == MQTTC_WAIT_CONNACK))
		mc_flush(c); /* starts the next commit if bytes still wait */
	else
		mc_sync_start(c);
}

size_t
mqttc_held_bytes(const struct mqttc *c)
{
	return c->olen - mc_out_limit(c);
}

enum mqttc_state
mqttc_state(const struct mqttc *c)
{
	return c->state;
}

size_t
mqttc_queued(const struct mqttc *c)
{
	return c->pending.n + c->later.n;
}

size_t
mqttc_inflight(const struct mqttc *c)
{
	return c->inflight.n;
}

const uint64_t *
mqttc_counters(const struct mqttc *c)
{
	return c->cnt;
}
