/*
 * fuzz_mqttc.c: libFuzzer harness of the agent's cloud MQTT client (agent/uplink/mqttc.c)
 * against a cloud broker that answers anything: the unit tests' scripted broker on loopback TCP
 * (tests/unit/agent/uplink/fake_broker.c) plays it from a script of records: CONNACK (any
 * reason, session present or not, a receive maximum), acknowledgements of every kind for the
 * ids the client has in flight or for any id, with any reason, PUBLISH on the command topic or
 * elsewhere at any QoS (DUP or not), raw bytes, a close or a reset and the client's next
 * connection; between them the gateway side publishes at each QoS, its store's commits end or
 * fail, downlink messages are owned or not, and time moves. The client runs 3.1.1 or 5.0 (the
 * input's first byte).
 *
 * Checks: nothing crashes or leaks (ASan, LSan); every packet the client sends decodes (server
 * role); a PUBLISH it sends at QoS 1 or 2 carries a packet id, and it never has more in flight
 * than its window. And QoS 2 downlink exactly once, against a model of the broker's session
 * (an epoch per session the client saw lost): a PUBCOMP answers a PUBREL the client took in
 * this session, and a QoS 2 PUBLISH is taken for a duplicate (PUBREC, not delivered) only when
 * the client delivered or owned that id in this session and has not completed it since. The
 * message and released hooks answer as the agent's downlink does (owned now, later or not; a
 * resend while the first waits takes its place; a lost session takes the waiting ones' ids),
 * and the late answers (mqttc_owned, mqttc_released) come in any order, also after the session
 * was lost, sometimes with the old id; once every message owned later was answered, no
 * acknowledgement waits (an answer given in another's place would hold every later one back).
 * QoS 1 downlink against the broker's view (Q1): each PUBACK answers the message the broker
 * holds under its id, one the gateway owned, and only once (a second would answer the broker's
 * next message under the id before the gateway owns it).
 * Uplink: each message the gateway publishes carries its
 * number; a QoS 2 message whose PUBREC the client took (it answered PUBREL) is never sent again
 * as a PUBLISH: resumed, it gets PUBREL; after a lost session it counts as delivered.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fuzz_input.h"
#include "fake_broker.h"
#include "log.h"

#define IDS 16

/* A broken promise: say which, then stop (libFuzzer keeps the input). */
static void __attribute__((noreturn)) broken(const char *why)
{
	fuzz_broken("fuzz_mqttc", why);
}

static struct fb b;
static struct uplink_mqtt_conf conf;
static uint8_t in[1 << 16];
static size_t in_len;
static uint16_t ids[IDS]; /* packet ids the client used lately (PUBLISH, PUBREL, SUBSCRIBE) */
static unsigned nids;

/* The QoS 2 downlink model, per packet id, stamped with the session (epoch + 1, 0: none). */
static struct {
	int held[65536]; /* the client may take a PUBLISH of it for a duplicate */
	int rec[65536];  /* the client sent PUBREC for it and no PUBCOMP since */
	int bad[65536];  /* the script sent PUBREL for it before any PUBREC (no broker does):
			  * the client may hold the id as it will, unchecked in that session */
	int owed[65536]; /* the client took a PUBREL of it (a PUBCOMP may answer) */
	bool raw;        /* raw bytes went on this connection: what they held is not the model's */
} M;

#define EPOCH (b.sessions_lost + 1)

/* Uplink QoS 2, by the gateway's message number (its payload, "r<n>"): which message each
 * packet id carries in this session, and the messages the broker took (PUBREL answered). */
#define REFS 512
static struct {
	uint16_t ref_of[65536]; /* 0: none (refs start at 1) */
	bool taken[REFS];
	int epoch; /* of ref_of */
} U;

static uint64_t last_ref; /* the gateway's last message number (this input's) */

/* Downlink QoS 1, as the broker sees it: the message it holds under each id (a number, carried
 * in the payload as "q<n>", 0: none), whether the gateway owned it (any delivery of it) and
 * whether its PUBACK came. A PUBLISH without DUP is a new message, one with DUP a resend of the
 * one held; a script that sends otherwise (a new message under an id in use, a resend of
 * none, anything before the CONNACK) is not a broker the model knows: that id goes unchecked
 * in that session, that connection's ids all. */
#define Q1MAX 4096
static struct {
	uint32_t cur[65536];
	int epoch[65536]; /* the session cur is of */
	int bad[65536];   /* the session in which the script broke a broker's rules for the id */
	bool bad_conn;    /* this connection's PUBLISHes came before it was up */
	bool owned[Q1MAX], acked[Q1MAX];
	uint32_t n;
} Q1;

static uint32_t
q1_of(const uint8_t *pl, size_t len)
{
	uint32_t n = 0;

	if (pl == NULL || len < 6 || pl[0] != 'q')
		return 0;
	for (size_t i = 1; i < 6; i++)
		n = n * 10 + (uint32_t)(pl[i] - '0');
	return n < Q1MAX ? n : 0;
}

static unsigned
pub_ref(const struct mqtt_publish *p)
{
	unsigned ref = 0;

	if (p->payload == NULL || p->payload_len < 2 || p->payload_len > 6 || p->payload[0] != 'r')
		return 0;
	for (uint32_t i = 1; i < p->payload_len; i++)
		ref = ref * 10 + (unsigned)(p->payload[i] - '0');
	return ref < REFS ? ref : 0;
}

/* Messages the hook answered MQTTC_OWN_LATER, waiting for mqttc_owned (the downlink's ownq),
 * and PUBRELs it answered so, waiting for mqttc_released (the agent's q2rel). */
#define PEND 64
static struct {
	uint64_t token;
	uint16_t id, old_id; /* id: 0 once the session was lost (ownq_forget_ids); old_id kept */
	uint8_t qos;
	int epoch;
	uint32_t q1; /* QoS 1: the broker's message (Q1), 0 unknown */
} po[PEND];
static unsigned npo;
static uint16_t pr[PEND];
static unsigned npr;

static int
on_message(struct fb *fb, uint8_t qos, uint16_t id, uint64_t token, const uint8_t *pl, size_t len)
{
	int rc = fb->message_rc;
	uint32_t q1 = qos == 1 ? q1_of(pl, len) : 0;

	if (qos == 2 && id != 0) {
		for (unsigned i = 0; i < npo; i++)
			if (po[i].id == id) { /* a resend while the first waits: takes its place */
				po[i].token = token;
				M.held[id] = EPOCH;
				return MQTTC_OWN_LATER;
			}
		if (rc >= 0)
			M.held[id] = EPOCH;
	}
	if (rc == MQTTC_OWN_LATER && qos > 0 && npo < PEND)
		po[npo++] =
		    (typeof(po[0])){ token, qos == 2 ? id : 0, qos == 2 ? id : 0, qos, EPOCH, q1 };
	else if (rc == MQTTC_OWN_LATER)
		rc = -ENOBUFS; /* the harness keeps no more: not owned */
	if (rc == 0)
		Q1.owned[q1] = true;
	return rc;
}

static int
on_released(struct fb *fb, uint16_t id)
{
	if (id == 0) { /* the session is gone: so are the waiting messages' ids */
		for (unsigned i = 0; i < npo; i++)
			po[i].id = 0;
		return 0;
	}
	M.owed[id] = EPOCH;
	if (fb->released_rc == MQTTC_OWN_LATER && npr < PEND)
		pr[npr++] = id;
	else if (fb->released_rc == MQTTC_OWN_LATER)
		return -EIO;
	return fb->released_rc;
}

static void
note_id(uint16_t id)
{
	ids[nids++ % IDS] = id;
}

/* What the client sent: read without waiting, every packet decoded and checked. */
static void
take(void)
{
	static uint8_t scratch[1 << 16];
	ssize_t n;

	if (b.sfd < 0)
		return;
	while (in_len < sizeof(in) &&
	    (n = recv(b.sfd, in + in_len, sizeof(in) - in_len, MSG_DONTWAIT)) > 0)
		in_len += (size_t)n;
	if (U.epoch != EPOCH) { /* a lost session: the client numbers its messages again */
		memset(U.ref_of, 0, sizeof(U.ref_of));
		U.epoch = EPOCH;
	}
	for (;;) {
		struct mqtt_decoder d;
		struct mqtt_packet k;
		int rc;

		mqtt_decoder_init(&d, MQTT_ROLE_SERVER, conf.version, 0, scratch, sizeof(scratch));
		rc = mqtt_decode_buf(&d, in, in_len, &k);
		if (rc < 0)
			broken("the client sent a packet that does not decode");
		if (rc == 0)
			break;
		if (k.type == MQTT_PUBLISH && k.publish.qos > 0) {
			if (k.publish.packet_id == 0)
				broken("a QoS 1/2 PUBLISH without a packet id");
			note_id(k.publish.packet_id);
			if (k.publish.qos == 2) {
				unsigned ref = pub_ref(&k.publish);

				if (ref != 0 && U.taken[ref])
					broken("a QoS 2 message the broker took (PUBREL answered) "
					       "sent again");
				U.ref_of[k.publish.packet_id] = (uint16_t)ref;
			}
		} else if (k.type == MQTT_PUBREC) {
			/* the client marks the id taken as it queues this (ids_in), after any
			 * PUBCOMP for it seen before: a message under the id taken since, whose
			 * delivery (the hook) came before this harness read that PUBCOMP, which
			 * clears held below, is held again here */
			M.rec[k.ack.packet_id] = EPOCH;
			M.held[k.ack.packet_id] = EPOCH;
		} else if (k.type == MQTT_PUBREL) {
			note_id(k.ack.packet_id);
			if (k.ack.reason == 0) /* not 0x92: the id was in flight */
				U.taken[U.ref_of[k.ack.packet_id]] = true;
		} else if (k.type == MQTT_PUBACK) {
			uint16_t id = k.ack.packet_id;
			uint32_t q1 = Q1.epoch[id] == EPOCH ? Q1.cur[id] : 0;

			if (!M.raw && !Q1.bad_conn && Q1.bad[id] != EPOCH && Q1.n + 1 < Q1MAX) {
				if (q1 == 0)
					broken(
					    "a PUBACK for an id the broker holds no message under");
				if (!Q1.owned[q1])
					broken("a PUBACK before the gateway owned the message");
				if (Q1.acked[q1])
					broken(
					    "a second PUBACK for one message: the broker takes it "
					    "for the next message under the id");
			}
			Q1.acked[q1] = true;
		} else if (k.type == MQTT_PUBCOMP) {
			if (M.owed[k.ack.packet_id] != EPOCH)
				broken("a PUBCOMP for a PUBREL the client did not take in this "
				       "session");
			M.held[k.ack.packet_id] = 0;
			M.rec[k.ack.packet_id] = 0;
		} else if (k.type == MQTT_SUBSCRIBE) {
			note_id(k.subscribe.packet_id);
		} else if (k.type == MQTT_UNSUBSCRIBE) {
			note_id(k.unsubscribe.packet_id);
		}
		memmove(in, in + rc, in_len - (size_t)rc);
		in_len -= (size_t)rc;
	}
	if (in_len == sizeof(in))
		in_len = 0; /* a packet larger than this harness reads: not decoded */
}

static void
drive(void)
{
	for (int i = 0; i < 4; i++) {
		fb_drive(&b, 0);
		take();
	}
	if (mqttc_inflight(b.c) > conf.window)
		broken("more in flight than the window");
	/* every message owned later was answered: nothing may still wait for an answer */
	if (npo == 0 && mqttc_acks_waiting(b.c) > 0)
		broken("acknowledgements wait for an answer that will never come");
}

static void
send_raw(const void *p, size_t len)
{
	if (b.sfd >= 0)
		(void)send(b.sfd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	drive();
}

static void
send_pkt(const struct mqtt_packet *p)
{
	uint8_t buf[4096];
	int n = mqtt_encode(buf, sizeof(buf), conf.version, p);

	if (n > 0)
		send_raw(buf, (size_t)n);
}

/* The client's next connection, when it makes one now (past its backoff). */
static void
accept_next(void)
{
	struct pollfd p = { .fd = b.lfd, .events = POLLIN };
	int one = 1;

	if (b.sfd >= 0)
		return;
	fb_tick(&b, conf.reconnect_max_ms + 1);
	for (int i = 0; i < 20 && poll(&p, 1, 0) == 0; i++) {
		fb_tick(&b, 0);
		fb_drive(&b, 1);
	}
	if (poll(&p, 1, 0) != 1)
		return;
	b.sfd = accept4(b.lfd, NULL, NULL, SOCK_CLOEXEC);
	/* each packet reaches the client as it is sent, so that what the client does in the drive
	 * after it is that packet's: with Nagle, one sent behind a small one not yet acknowledged
	 * waited for the client's delayed ACK and arrived steps later, its effects (a duplicate
	 * counted) taken for a later packet's */
	if (b.sfd >= 0)
		setsockopt(b.sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	in_len = 0;
	M.raw = false;
	Q1.bad_conn = false;
	drive();
}

static void
drop(bool reset)
{
	struct linger l = { 1, 0 };

	if (b.sfd < 0)
		return;
	if (reset)
		setsockopt(b.sfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(b.sfd);
	b.sfd = -1;
	drive();
}

/* A QoS 1 PUBLISH the script sends: the broker's message it is (Q1), named in its payload. */
static void
q1_publish(struct mqtt_publish *p, uint8_t *pl)
{
	uint16_t id = p->packet_id;
	bool held = Q1.epoch[id] == EPOCH && Q1.cur[id] != 0 && !Q1.acked[Q1.cur[id]];
	uint32_t q1;

	if (mqttc_state(b.c) != MQTTC_UP)
		Q1.bad_conn = true;
	if (p->dup != held)
		Q1.bad[id] = EPOCH;
	if (!p->dup) {
		Q1.cur[id] = Q1.n + 1 < Q1MAX ? ++Q1.n : 0;
		Q1.epoch[id] = EPOCH;
	}
	q1 = Q1.epoch[id] == EPOCH ? Q1.cur[id] : 0;
	if (p->payload_len < 6)
		p->payload_len = 6;
	snprintf((char *)pl, 7, "q%05u", (unsigned)q1);
}

static void
step(struct rd *r)
{
	static const enum mqtt_type acks[] = { MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP,
		MQTT_SUBACK, MQTT_UNSUBACK, MQTT_PINGRESP, MQTT_CONNACK };
	static const char *const topics[] = { "site/cmd", "site/cmd/a/b", "elsewhere", "",
		"site/cmd/#" };
	uint8_t op = u8(r), a = u8(r);
	struct mqtt_packet p = { 0 };

	switch (op % 10) {
	case 0: /* CONNACK */
		p.type = MQTT_CONNACK;
		p.connack.reason = (a & 0x80) ? u8(r) : 0;
		p.connack.session_present = a & 1;
		if ((a & 2) && conf.version == MQTT_V5)
			mqtt_props_set_u32(&p.connack.props, MQTT_PROP_RECEIVE_MAXIMUM, u16(r));
		send_pkt(&p);
		break;
	case 1: /* an acknowledgement, for an id in flight or any */
		p.type = acks[a % 8];
		if (p.type == MQTT_CONNACK || p.type == MQTT_PINGRESP) {
			send_pkt(&p);
			break;
		}
		if (p.type == MQTT_SUBACK) {
			static uint8_t rc[2];

			rc[0] = u8(r) % 3;
			rc[1] = (a & 0x40) ? 0x80 : 1;
			p.suback.packet_id = (a & 0x20) ? u16(r) : ids[u8(r) % IDS];
			p.suback.reasons = rc;
			p.suback.n_reasons = 1 + (a >> 7);
			send_pkt(&p);
			break;
		}
		if (p.type == MQTT_UNSUBACK) {
			static uint8_t rc[1];

			p.suback.packet_id = (a & 0x20) ? u16(r) : ids[u8(r) % IDS];
			p.suback.reasons = rc;
			p.suback.n_reasons = 1;
			send_pkt(&p);
			break;
		}
		p.ack.packet_id = (a & 0x20) ? u16(r) : ids[u8(r) % IDS];
		p.ack.reason = (a & 0x40) ? u8(r) : 0;
		if (p.type == MQTT_PUBREL && M.rec[p.ack.packet_id] != EPOCH)
			M.bad[p.ack.packet_id] = EPOCH;
		send_pkt(&p);
		break;
	case 2: { /* a downlink PUBLISH */
		static uint8_t pl[300];
		uint64_t dups = mqttc_counters(b.c)[UPLINK_C_downlink_dup];
		int epoch = EPOCH;
		bool may_dup;

		p.type = MQTT_PUBLISH;
		p.publish.topic =
		    (struct mqtt_str){ topics[a % 5], (uint16_t)strlen(topics[a % 5]) };
		p.publish.qos = (a >> 3) % 3;
		p.publish.dup = a & 0x20;
		p.publish.retain = a & 0x40;
		p.publish.packet_id = p.publish.qos ? (uint16_t)(u8(r) % 8 + 1) : 0;
		p.publish.payload = pl;
		p.publish.payload_len = u8(r) + (a & 0x80 ? 44 : 0);
		may_dup = p.publish.qos == 2 && M.held[p.publish.packet_id] == EPOCH;
		if (p.publish.qos == 1)
			q1_publish(&p.publish, pl);
		send_pkt(&p);
		if (p.publish.qos == 2 && !may_dup && !M.raw && EPOCH == epoch &&
		    M.bad[p.publish.packet_id] != EPOCH &&
		    mqttc_counters(b.c)[UPLINK_C_downlink_dup] > dups)
			broken(
			    "a new QoS 2 message taken for a duplicate: PUBREC, never delivered");
		break;
	}
	case 3: { /* raw bytes */
		uint8_t raw[64];
		unsigned n = a % 64;

		for (unsigned i = 0; i < n; i++)
			raw[i] = u8(r);
		M.raw |= n > 0;
		send_raw(raw, n);
		break;
	}
	case 4: { /* the gateway publishes, its number in the payload */
		char pl[16];

		last_ref++;
		snprintf(
		    pl, sizeof(pl), "r%llu", (unsigned long long)(last_ref < REFS ? last_ref : 0));
		(void)mqttc_publish(
		    b.c, (a & 0x10) ? "up/t/" : "up/t", pl, strlen(pl), a % 3, a & 0x20, last_ref);
		drive();
		break;
	}
	case 5: /* time */
		fb_tick(&b, (uint64_t)a * 100);
		drive();
		break;
	case 6: /* the connection ends, closed or reset */
		drop(a & 1);
		break;
	case 7:
		accept_next();
		break;
	case 8: /* the store: commits end or fail; downlink messages owned now, later, or not */
		b.fail_sync = a & 1;
		b.hold_sync = a & 2;
		b.message_rc = (a & 0x0c) == 0x04 ? -EIO : (a & 0x0c) == 0x08 ? MQTTC_OWN_LATER : 0;
		b.released_rc = (a & 0x30) == 0x10 ? -EIO
		    : (a & 0x30) == 0x20           ? MQTTC_OWN_LATER
						   : 0;
		b.fail_persist = (a & 0xc0) == 0xc0;
		if (!b.hold_sync)
			fb_sync_done(&b);
		drive();
		break;
	default: /* a late answer, in any order: a message owned (or not), a PUBREL's free */
		if ((a & 2) && npr > 0) {
			unsigned i = (a >> 3) % npr;
			uint16_t id = pr[i];

			pr[i] = pr[--npr];
			mqttc_released(b.c, id, (a & 1) ? -EIO : 0);
		} else if (npo > 0) {
			unsigned i = (a >> 3) % npo;
			typeof(po[0]) w = po[i];
			/* the id as the downlink passes it (0 after the session was lost), or the
			 * old one: the client must not take it for a session that is gone */
			uint16_t id = (a & 4) ? w.old_id : w.id;

			memmove(po + i, po + i + 1, (npo - i - 1) * sizeof(po[0]));
			npo--;
			if (!(a & 1) && w.qos == 2 && id != 0 && w.epoch == EPOCH)
				M.held[id] = EPOCH;
			if (!(a & 1))
				Q1.owned[w.q1] = true;
			mqttc_owned(b.c, w.token, w.qos, id, (a & 1) ? -EIO : 0);
		}
		drive();
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size };
	uint8_t v;

	if (size < 1)
		return 0;
	log_set_level(LOG_LVL_ERR);
	v = u8(&r);
	fb_init(&b, &conf);
	b.on_message = on_message;
	b.on_released = on_released;
	memset(&M, 0, sizeof(M));
	memset(&U, 0, sizeof(U));
	memset(&Q1, 0, sizeof(Q1));
	npo = npr = 0;
	last_ref = 0;
	conf.version = (v & 1) ? MQTT_V5 : MQTT_V311;
	conf.window = (uint16_t)(v >> 1 & 7) + 1;
	fb_start_client(&b, &conf);
	nids = 0;
	in_len = 0;
	accept_next();
	for (int steps = 0; r.n > 0 && steps < 256; steps++)
		step(&r);
	if (getenv("FUZZ_MQTTC_TRACE") != NULL) { /* triage: where the script left the client */
		fprintf(stderr, "fuzz_mqttc: state %d, %zu queued, %zu in flight, %d events:",
		    (int)mqttc_state(b.c), mqttc_queued(b.c), mqttc_inflight(b.c), b.nev);
		for (int i = 0; i < b.nev; i++)
			fprintf(stderr, " %c", b.ev[i].kind);
		fprintf(stderr, "\n");
	}
	drop(false);
	fb_fini(&b);
	return 0;
}
