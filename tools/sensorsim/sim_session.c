/*
 * sim_session.c: one simulated MQTT client: TCP connect, CONNECT/CONNACK, optional SUBSCRIBE,
 * then paced publishes with the full QoS 1/2 flows as publisher (PUBACK; PUBREC/PUBREL/PUBCOMP)
 * and as receiver (PUBACK; PUBREC, PUBREL awaited, PUBCOMP), PINGREQ when idle. Packets are
 * built with the shared codec (lib/mqtt) into the session's output buffer and sent in batches;
 * input is decoded in place. The payload carries CLOCK_MONOTONIC ns, session id and sequence
 * number, so a delivery gives its publish-to-delivery latency.
 *
 * QoS 0 has no ack, and socket buffers on loopback hold hundreds of MB: counting what was written
 * would measure the kernel, not the broker. A broker handles a connection's packets in order, so a
 * PINGRESP says every earlier publish was taken in. A PINGREQ follows every --window QoS 0
 * publishes, at most SIM_PINGS_MAX are outstanding (a credit window for QoS 0), and a PINGRESP
 * acknowledges the QoS 0 publishes before its PINGREQ. When publishing ends each publisher sends
 * one more (the barrier): the last barrier answer ends the ingest time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define ACK_ROOM 32u /* the largest ack we write in answer to one packet */

uint64_t
sim_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const struct sim_opts *
opts(const struct sim_worker *w)
{
	return w->run->o;
}

static bool
wants_subscription(const struct sim_worker *w, const struct sim_session *s)
{
	return opts(w)->sub_filter[0] != '\0' && (s->subscriber || opts(w)->subscribers == 0);
}

int
sim_session_alloc(struct sim_worker *w, struct sim_session *s, uint32_t id)
{
	const struct sim_run *r = w->run;
	size_t fl = opts(w)->window * sizeof(*s->fl);
	uint8_t *mem;

	memset(s, 0, sizeof(*s));
	s->id = id;
	s->h = -1;
	s->subscriber = id >= opts(w)->sessions;
	mem = malloc((size_t)r->in_cap + r->out_cap + fl);
	if (mem == NULL)
		return -ENOMEM;
	s->fl = (struct sim_inflight *)mem;
	s->in = mem + fl;
	s->out = s->in + r->in_cap;
	return 0;
}

void
sim_session_free(struct sim_session *s)
{
	free(s->fl);
	free(s->rx_q2);
	s->fl = NULL;
	s->rx_q2 = NULL;
}

/* Drop the connection; what was in flight is lost. err < 0: not an error (stop). */
static void
sess_kill(struct sim_worker *w, struct sim_session *s, int err)
{
	if (s->state == SS_DEAD || s->state == SS_IDLE)
		return;
	if (err >= 0) {
		SIM_INC(w->st.err[err]);
		SIM_INC(w->st.dead);
		if (s->state != SS_READY) {
			SIM_INC(w->st.connect_failed);
			w->handshakes--;
		} else {
			SIM_SUB(w->st.ready, 1);
			if (!s->subscriber)
				SIM_SUB(w->st.ready_pub, 1);
		}
	}
	SIM_ADD(w->st.err[SIM_ERR_UNACKED], s->n_fl);
	SIM_SUB(w->st.inflight, s->n_fl);
	s->n_fl = 0;
	for (; s->n_ping > 0;
	     s->n_ping--, s->ping_head = (uint8_t)((s->ping_head + 1) % SIM_PINGS_MAX))
		if (s->ping[s->ping_head].barrier)
			SIM_SUB(w->st.inflight, 1);
	SIM_ADD(w->st.q0_unconfirmed, s->q0_unconfirmed);
	s->q0_unconfirmed = 0;
	if (s->h >= 0)
		w->tr.ops->close(&w->tr, s->h);
	s->h = -1;
	s->state = SS_DEAD;
}

static uint32_t
out_room(const struct sim_worker *w, const struct sim_session *s)
{
	return w->run->out_cap - s->out_len;
}

/* Send what is buffered; returns 0 (maybe partly sent) or -1 when the session died. */
static int
sess_flush(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	while (s->out_off < s->out_len) {
		ssize_t n =
		    w->tr.ops->send(&w->tr, s->h, s->out + s->out_off, s->out_len - s->out_off);

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			sess_kill(w, s, SIM_ERR_SOCKET);
			return -1;
		}
		s->out_off += (uint32_t)n;
		s->last_tx_ns = now;
	}
	if (s->out_off == s->out_len) {
		s->out_off = s->out_len = 0;
	} else if (s->out_off > 0 && out_room(w, s) < w->run->out_cap / 2) {
		memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
	}
	return 0;
}

/* Append one encoded packet; the encoders return the needed size when it does not fit. */
static int
out_put(struct sim_worker *w, struct sim_session *s, int n)
{
	if (n < 0)
		return n;
	if ((uint32_t)n > out_room(w, s))
		return -ENOSPC;
	s->out_len += (uint32_t)n;
	return 0;
}

static int
send_ack(struct sim_worker *w, struct sim_session *s, enum mqtt_type t, uint16_t pid)
{
	struct mqtt_ack a = { .packet_id = pid };

	return out_put(
	    w, s, mqtt_encode_ack(s->out + s->out_len, out_room(w, s), opts(w)->version, t, &a));
}

static int
send_connect(struct sim_worker *w, struct sim_session *s)
{
	char id[64];
	struct mqtt_connect c = { .version = opts(w)->version,
		.clean_start = opts(w)->clean,
		.keepalive_s = opts(w)->keepalive_s };
	int n = snprintf(id, sizeof(id), "%s%u", opts(w)->client_prefix, s->id);

	c.client_id.s = id;
	c.client_id.len = (uint16_t)n;
	if (opts(w)->version == MQTT_V5)
		mqtt_props_set_u32(&c.props, MQTT_PROP_RECEIVE_MAXIMUM, SIM_RECEIVE_MAX);
	return out_put(w, s, mqtt_encode_connect(s->out + s->out_len, out_room(w, s), &c));
}

static int
send_subscribe(struct sim_worker *w, struct sim_session *s)
{
	char filter[SIM_MAX_TOPIC + 16];
	struct mqtt_subscription sub = { .qos = opts(w)->sub_qos };
	struct mqtt_subscribe m = { .packet_id = 1, .subs = &sub, .n_subs = 1 };
	int n = sim_topic_expand(opts(w)->sub_filter, s->id, 0, filter, sizeof(filter));

	if (n < 0)
		return n;
	sub.filter.s = filter;
	sub.filter.len = (uint16_t)n;
	return out_put(
	    w, s, mqtt_encode_subscribe(s->out + s->out_len, out_room(w, s), opts(w)->version, &m));
}

static void
sess_ready(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	s->state = SS_READY;
	w->handshakes--;
	SIM_INC(w->st.ready);
	if (!s->subscriber)
		SIM_INC(w->st.ready_pub);
	/* what a late scan owes is kept up to 4 events, or 4 ms of them at a high rate (the scan
	 * comes every 1 ms while paced, a little later under load: with 4 events a session paced
	 * at 4,000/s got about 2,000/s) */
	sim_pace_init(&s->pace, opts(w)->rate, SIM_PACE_BURST(opts(w)->rate), now);
	if (s->pace.interval_ns > 1) {
		/* sensors are not synchronized: each starts at its own phase of the interval, or
		 * a large crowd sends its first publishes as one burst when publishing starts */
		w->rng = w->rng * 1103515245u + 12345u;
		s->pace.next_ns += s->pace.interval_ns / 65536 * ((w->rng >> 8) & 0xffff);
	}
}

void
sim_session_start(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	const struct sim_opts *o = opts(w);
	struct sockaddr_in src = { .sin_family = AF_INET };
	int h;

	if (o->n_bind > 0)
		src.sin_addr = o->bind[s->id % o->n_bind];
	s->start_ns = s->last_tx_ns = now;
	s->window = o->window;
	s->next_pid = 1;
	s->state = SS_TCP;
	w->handshakes++;
	SIM_INC(w->st.started);
	h = w->tr.ops->connect(&w->tr, &src, &w->run->dst, s);
	if (h < 0) {
		sess_kill(w, s, h == -EADDRNOTAVAIL ? SIM_ERR_BIND : SIM_ERR_TCP_CONNECT);
		return;
	}
	s->h = h;
	s->want = SIM_EV_OUT;
}

static struct sim_inflight *
fl_find(struct sim_session *s, uint16_t pid, uint8_t qos, uint8_t stage)
{
	for (uint32_t i = 0; i < s->n_fl; i++)
		if (s->fl[i].pid == pid && s->fl[i].qos == qos && s->fl[i].stage == stage)
			return &s->fl[i];
	return NULL;
}

static void
fl_remove(struct sim_worker *w, struct sim_session *s, struct sim_inflight *f)
{
	*f = s->fl[--s->n_fl];
	SIM_SUB(w->st.inflight, 1);
}

static uint16_t
pid_next(struct sim_session *s)
{
	for (;;) {
		uint16_t pid = s->next_pid++;

		if (s->next_pid == 0)
			s->next_pid = 1;
		uint32_t i;

		for (i = 0; i < s->n_fl && s->fl[i].pid != pid; i++)
			;
		if (pid != 0 && i == s->n_fl)
			return pid;
	}
}

static uint8_t
pick_qos(struct sim_worker *w)
{
	w->rng = w->rng * 1103515245u + 12345u;
	return sim_qos_pick(opts(w)->qos_weight, (w->rng >> 8) % w->run->qos_sum);
}

/* Encode one PUBLISH (qos s->next_qos) at the end of the output buffer. */
static int
put_publish(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	const struct sim_opts *o = opts(w);
	char topic[SIM_MAX_TOPIC + 32];
	struct mqtt_publish p = { .qos = s->next_qos };
	uint32_t n = o->n_lo + s->n_next % (o->n_hi - o->n_lo + 1);
	int tl = sim_topic_expand(o->topic, s->id, n, topic, sizeof(topic)), hl;
	uint8_t *pl;

	if (tl < 0)
		return tl;
	p.topic.s = topic;
	p.topic.len = (uint16_t)tl;
	p.payload_len = o->payload;
	if (p.qos > 0)
		p.packet_id = pid_next(s);
	hl = mqtt_encode_publish_header(s->out + s->out_len, out_room(w, s), o->version, &p);
	if (hl < 0)
		return hl;
	if ((uint32_t)hl + o->payload > out_room(w, s))
		return -ENOSPC;
	pl = s->out + s->out_len + hl;
	if (o->payload >= SIM_PAYLOAD_MIN) {
		memcpy(pl, &now, 8);
		memcpy(pl + 8, &s->id, 4);
		memcpy(pl + 12, &s->seq, 4);
		memcpy(pl + 16, w->run->fill, o->payload - 16);
	} else {
		memcpy(pl, w->run->fill, o->payload);
	}
	s->out_len += (uint32_t)hl + o->payload;
	s->seq++;
	s->n_next++;
	SIM_INC(w->st.published[p.qos]);
	if (p.qos == 0) {
		s->q0_open++;
		s->q0_unconfirmed++;
	} else {
		s->fl[s->n_fl++] =
		    (struct sim_inflight){ .pid = p.packet_id, .qos = p.qos, .sent_ns = now };
		SIM_INC(w->st.inflight);
	}
	return 0;
}

static bool
can_publish(const struct sim_worker *w, const struct sim_session *s)
{
	return s->state == SS_READY && !s->subscriber && !opts(w)->no_publish &&
	    __atomic_load_n(&w->run->phase, __ATOMIC_RELAXED) == SIM_PH_RUN && w->budget > 0;
}

/* QoS 1/2: the in-flight window; QoS 0: room under the PINGREQ credit (see top). */
static bool
window_open(const struct sim_session *s)
{
	if (s->next_qos > 0)
		return s->n_fl < s->window;
	return s->q0_open < s->window || s->n_ping < SIM_PINGS_MAX;
}

/* Queue a PINGREQ covering the QoS 0 publishes since the last one; -1 when none can go now. */
static int
send_ping(struct sim_worker *w, struct sim_session *s, bool barrier, uint64_t now)
{
	uint32_t slot = (s->ping_head + s->n_ping) % SIM_PINGS_MAX;

	if (s->n_ping == SIM_PINGS_MAX || out_room(w, s) < 2)
		return -1;
	s->out_len += (uint32_t)mqtt_encode_pingreq(s->out + s->out_len, 2);
	s->ping[slot].q0 = s->q0_open;
	s->ping[slot].barrier = barrier;
	s->ping[slot].sent_ns = now;
	s->q0_open = 0;
	s->n_ping++;
	SIM_INC(w->st.pings);
	if (barrier) {
		SIM_INC(w->st.barriers);
		SIM_INC(w->st.inflight);
	}
	return 0;
}

static void
on_pingresp(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	uint32_t slot = s->ping_head;

	if (s->n_ping == 0) {
		sess_kill(w, s, SIM_ERR_UNEXPECTED);
		return;
	}
	s->ping_head = (uint8_t)((s->ping_head + 1) % SIM_PINGS_MAX);
	s->n_ping--;
	SIM_ADD(w->st.acked[0], s->ping[slot].q0);
	s->q0_unconfirmed -= s->ping[slot].q0;
	if (s->ping[slot].barrier) {
		SIM_INC(w->st.barriers_acked);
		SIM_SUB(w->st.inflight, 1);
		if (now > w->st.barrier_last_ns)
			__atomic_store_n(&w->st.barrier_last_ns, now, __ATOMIC_RELAXED);
	}
}

/* After the publishing phase: one barrier PINGREQ per publisher that published (see top). */
static void
sess_barrier(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	if (s->barrier_sent || s->state != SS_READY || s->seq == 0 ||
	    __atomic_load_n(&w->run->phase, __ATOMIC_RELAXED) != SIM_PH_DRAIN)
		return;
	if (send_ping(w, s, true, now) == 0) {
		s->barrier_sent = true;
		sess_flush(w, s, now);
	}
}

/* Publish what pacing, the window and the buffer allow (at most 64 at a time), then send. */
static void
sess_publish(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	uint32_t room = 64 + opts(w)->payload + SIM_MAX_TOPIC;

	for (int i = 0; i < 64 && can_publish(w, s); i++) {
		if (!window_open(s))
			break;
		if (out_room(w, s) < room || sim_pace_wait_ns(&s->pace, now) > 0)
			break;
		if (s->next_qos == 0 && s->q0_open >= s->window && send_ping(w, s, false, now) < 0)
			break;
		sim_pace_take(&s->pace, now);
		if (put_publish(w, s, now) < 0)
			break;
		s->next_qos = pick_qos(w);
		if (--w->budget == 0)
			__atomic_store_n(&w->done_publishing, true, __ATOMIC_RELAXED);
	}
	sess_flush(w, s, now);
}

static void
on_connack(struct sim_worker *w, struct sim_session *s, const struct mqtt_connack *c, uint64_t now)
{
	if (s->state != SS_CONNACK) {
		sess_kill(w, s, SIM_ERR_UNEXPECTED);
		return;
	}
	if (c->reason != 0) {
		sess_kill(w, s, SIM_ERR_CONNACK_REFUSED);
		return;
	}
	SIM_INC(w->st.connects);
	if (mqtt_props_has(&c->props, MQTT_PROP_RECEIVE_MAXIMUM) &&
	    c->props.v[MQTT_PROP_RECEIVE_MAXIMUM].u < s->window)
		s->window = c->props.v[MQTT_PROP_RECEIVE_MAXIMUM].u;
	s->next_qos = pick_qos(w);
	if (wants_subscription(w, s)) {
		s->state = SS_SUBACK;
		if (send_subscribe(w, s) < 0)
			sess_kill(w, s, SIM_ERR_NO_MEMORY);
		return;
	}
	sess_ready(w, s, now);
}

static void
on_suback(struct sim_worker *w, struct sim_session *s, const struct mqtt_suback *a, uint64_t now)
{
	if (s->state != SS_SUBACK || a->packet_id != 1 || a->n_reasons != 1) {
		sess_kill(w, s, SIM_ERR_UNEXPECTED);
		return;
	}
	if (a->reasons[0] >= 0x80) {
		sess_kill(w, s, SIM_ERR_SUBACK_REFUSED);
		return;
	}
	sess_ready(w, s, now);
}

/*
 * Incoming QoS 2 ids between PUBLISH and PUBREL, for exactly-once counting: a bitmap over the
 * 16-bit id space (8 KiB, allocated on the first QoS 2 delivery). A table bounded by our Receive
 * Maximum is not enough: brokers (Mosquitto 2.0) free the slot at our PUBREC, not at PUBCOMP, so
 * ids awaiting PUBREL are bounded only by the id space. Returns whether id was already set.
 */
static bool
rx_q2_test_set(struct sim_worker *w, struct sim_session *s, uint16_t id)
{
	uint64_t bit = 1ull << (id % 64);
	bool was;

	if (s->rx_q2 == NULL && (s->rx_q2 = calloc(65536 / 64, sizeof(uint64_t))) == NULL) {
		SIM_INC(w->st.err[SIM_ERR_NO_MEMORY]);
		return false;
	}
	was = (s->rx_q2[id / 64] & bit) != 0;
	s->rx_q2[id / 64] |= bit;
	return was;
}

static int
on_delivery(struct sim_worker *w, struct sim_session *s, const struct mqtt_publish *p, uint64_t now)
{
	bool count = true;
	bool stamped = p->payload_len >= SIM_PAYLOAD_MIN && p->payload != NULL;
	uint64_t t = 0;

	if (stamped)
		memcpy(&t, p->payload, 8);
	if (p->qos == 2 && rx_q2_test_set(w, s, p->packet_id)) {
		count = false; /* re-sent before our PUBREC arrived: exactly once */
		SIM_INC(w->st.dup_qos2);
	} else if (stamped && t < w->run->t0_ns) {
		/* published before this run began (the clock is CLOCK_MONOTONIC, one per host):
		 * an earlier run's publisher whose bytes the broker read late. Neither this run's
		 * delivery nor its latency (it would be the time between the runs). */
		count = false;
		SIM_INC(w->st.stale);
	}
	if (count) {
		SIM_INC(w->st.delivered[p->qos]);
		if (stamped)
			sim_hist_record(&w->hist, now >= t ? now - t : 0);
		else if (opts(w)->payload >= SIM_PAYLOAD_MIN)
			SIM_INC(w->st.err[SIM_ERR_PAYLOAD_SHORT]);
	}
	if (p->qos == 0)
		return 0;
	return send_ack(w, s, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id);
}

static void
on_pubrel(struct sim_worker *w, struct sim_session *s, const struct mqtt_ack *a)
{
	if (s->rx_q2 != NULL)
		s->rx_q2[a->packet_id / 64] &= ~(1ull << (a->packet_id % 64));
	if (a->reason >= 0x80)
		SIM_INC(w->st.err[SIM_ERR_ACK_REASON]);
	/* PUBCOMP whether or not we knew the id (MQTT-4.3.3: the sender may be repeating). */
	send_ack(w, s, MQTT_PUBCOMP, a->packet_id);
}

/* PUBACK, PUBREC, PUBCOMP for our publishes. */
static void
on_ack(struct sim_worker *w, struct sim_session *s, enum mqtt_type t, const struct mqtt_ack *a,
    uint64_t now)
{
	uint8_t qos = t == MQTT_PUBACK ? 1 : 2, stage = t == MQTT_PUBCOMP ? 1 : 0;
	struct sim_inflight *f = fl_find(s, a->packet_id, qos, stage);

	if (f == NULL) {
		SIM_INC(w->st.err[SIM_ERR_ACK_UNKNOWN_ID]);
		return;
	}
	if (a->reason >= 0x80) {
		SIM_INC(w->st.err[SIM_ERR_ACK_REASON]);
		SIM_INC(w->st.err[SIM_ERR_UNACKED]);
		fl_remove(w, s, f);
		return;
	}
	if (t != MQTT_PUBCOMP) /* the broker took it: PUBACK, or PUBREC for QoS 2 */
		sim_hist_record(&w->ack_hist, now >= f->sent_ns ? now - f->sent_ns : 0);
	if (t == MQTT_PUBREC) {
		f->stage = 1;
		send_ack(w, s, MQTT_PUBREL, a->packet_id);
		return;
	}
	SIM_INC(w->st.acked[qos]);
	fl_remove(w, s, f);
}

/* One decoded packet from the broker. */
static void
on_packet(struct sim_worker *w, struct sim_session *s, struct mqtt_packet *p, uint64_t now)
{
	if (s->state == SS_CONNACK && p->type != MQTT_CONNACK) {
		sess_kill(w, s, SIM_ERR_UNEXPECTED); /* nothing but CONNACK comes first */
		return;
	}
	switch ((int)p->type) {
	case MQTT_CONNACK:
		on_connack(w, s, &p->connack, now);
		break;
	case MQTT_SUBACK:
		on_suback(w, s, &p->suback, now);
		break;
	case MQTT_PUBLISH:
		on_delivery(w, s, &p->publish, now);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		on_ack(w, s, p->type, &p->ack, now);
		break;
	case MQTT_PUBREL:
		on_pubrel(w, s, &p->ack);
		break;
	case MQTT_PINGRESP:
		on_pingresp(w, s, now);
		break;
	case MQTT_DISCONNECT:
		sess_kill(w, s, SIM_ERR_DISCONNECT_RX);
		break;
	default:
		sess_kill(w, s, SIM_ERR_UNEXPECTED);
		break;
	}
}

/* Decode whole packets from the input buffer while there is room for their answers. */
static void
sess_parse(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	uint32_t off = 0;

	while (s->state != SS_DEAD && out_room(w, s) >= ACK_ROOM) {
		struct mqtt_packet p;
		int n = mqtt_decode_buf(&w->dec, s->in + off, s->in_len - off, &p);

		if (n == 0)
			break;
		if (n < 0) {
			sess_kill(w, s,
			    n == -MQTT_E_PACKET_TOO_LARGE ? SIM_ERR_IN_OVERFLOW : SIM_ERR_DECODE);
			return;
		}
		on_packet(w, s, &p, now);
		off += (uint32_t)n;
	}
	if (s->state != SS_DEAD && off > 0) {
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
	}
}

static void
sess_read(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	for (int i = 0; i < 16 && s->state != SS_DEAD; i++) { /* bounded: others wait */
		uint32_t room = w->run->in_cap - s->in_len;
		ssize_t n;

		if (room == 0 || out_room(w, s) < ACK_ROOM)
			return; /* wait for the output to drain */
		n = w->tr.ops->recv(&w->tr, s->h, s->in + s->in_len, room);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			sess_kill(w, s, n == 0 ? SIM_ERR_PEER_CLOSED : SIM_ERR_SOCKET);
			return;
		}
		s->in_len += (uint32_t)n;
		sess_parse(w, s, now);
		if ((uint32_t)n < room)
			return;
	}
}

/* Ask the transport for what this session needs: input unless the output is backed up,
 * output while bytes wait or while an unpaced publisher could send more. */
static void
sess_update_want(struct sim_worker *w, struct sim_session *s)
{
	uint32_t want = 0;

	if (s->state == SS_DEAD || s->state == SS_IDLE)
		return;
	if (s->state == SS_TCP) {
		want = SIM_EV_OUT;
	} else {
		if (out_room(w, s) >= ACK_ROOM)
			want |= SIM_EV_IN;
		if (s->out_len > s->out_off)
			want |= SIM_EV_OUT;
		else if (opts(w)->rate == 0 && can_publish(w, s) && window_open(s))
			want |= SIM_EV_OUT;
	}
	if (want != s->want && w->tr.ops->want(&w->tr, s->h, want, s) == 0)
		s->want = want;
}

static void
sess_connected(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	if (w->tr.ops->connect_result(&w->tr, s->h) != 0) {
		sess_kill(w, s, SIM_ERR_TCP_CONNECT);
		return;
	}
	s->state = SS_CONNACK;
	w->dec.version = opts(w)->version;
	if (send_connect(w, s) < 0) {
		sess_kill(w, s, SIM_ERR_NO_MEMORY);
		return;
	}
	sess_flush(w, s, now);
}

void
sim_session_event(struct sim_worker *w, struct sim_session *s, uint32_t ev, uint64_t now)
{
	if (s->state == SS_TCP) {
		if (ev & (SIM_EV_OUT | SIM_EV_ERR))
			sess_connected(w, s, now);
	} else if (s->state != SS_DEAD && s->state != SS_IDLE) {
		if (ev & (SIM_EV_IN | SIM_EV_ERR))
			sess_read(w, s, now);
		if (s->state != SS_DEAD && sess_flush(w, s, now) == 0)
			sess_parse(w, s, now); /* what waited for output room */
		if (s->state != SS_DEAD && sess_flush(w, s, now) == 0)
			sess_publish(w, s, now);
	}
	sess_update_want(w, s);
}

static void
sess_keepalive(struct sim_worker *w, struct sim_session *s, uint64_t now)
{
	uint64_t ka_ns = (uint64_t)opts(w)->keepalive_s * 1000000000ull;

	if (ka_ns == 0 || s->state < SS_SUBACK || s->state == SS_DEAD)
		return;
	if (s->n_ping > 0 && now - s->ping[s->ping_head].sent_ns > ka_ns) {
		sess_kill(w, s, SIM_ERR_PING_TIMEOUT);
	} else if (s->n_ping == 0 && now - s->last_tx_ns >= ka_ns / 4 * 3 &&
	    send_ping(w, s, false, now) == 0) {
		sess_flush(w, s, now);
	}
}

void
sim_session_tick(struct sim_worker *w, struct sim_session *s, uint64_t now, bool slow)
{
	if (s->state == SS_DEAD || s->state == SS_IDLE)
		return;
	if (slow) {
		if (s->state != SS_READY &&
		    now - s->start_ns > (uint64_t)(opts(w)->connect_timeout_s * 1e9)) {
			sess_kill(w, s, SIM_ERR_CONNECT_TIMEOUT);
			return;
		}
		sess_keepalive(w, s, now);
	}
	if (s->state == SS_READY && s->out_len == s->out_off)
		sess_publish(w, s, now);
	if (s->state == SS_READY)
		sess_barrier(w, s, now);
	sess_update_want(w, s);
}

void
sim_session_stop(struct sim_worker *w, struct sim_session *s)
{
	if (s->state == SS_READY) {
		int n = mqtt_encode_disconnect(
		    s->out + s->out_len, out_room(w, s), opts(w)->version, NULL);

		if (n > 0 && (uint32_t)n <= out_room(w, s))
			s->out_len += (uint32_t)n;
		sess_flush(w, s, sim_now_ns());
	}
	if (s->state != SS_DEAD && s->state != SS_READY && s->state != SS_IDLE)
		w->handshakes--;
	sess_kill(w, s, -1);
}
