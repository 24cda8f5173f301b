/*
 * test_sim_session.c: one simulated session against a scripted broker, through a fake transport
 * (the ops table's other use): CONNECT and CONNACK, the QoS 2 publisher flow, QoS 0 credit and
 * PINGRESP acks, QoS 2 receiver with a duplicate id, unknown acks, and a bad packet. And every
 * way a broker or the network fails a session, each counted under its own kind: a connect
 * refused or unbound, a broker silent past the connect timeout or the keepalive, CONNACK and
 * SUBACK refused, acks with a failure reason, DISCONNECT, the connection closed or reset, a
 * delivery too short for the timestamp, no memory for the QoS 2 receive table (fail_alloc.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "fail_alloc.h"
#include "sim.h"

static uint8_t sent[1 << 16], script[4096];
static size_t sent_len, script_len;
/* the scripted network: what connect, its result, send and recv return instead */
static int connect_rc, connect_result_rc, send_rc, recv_rc;
static bool peer_closed; /* recv: end of file once the script is read */

static int
ft_open(struct sim_transport *t)
{
	t->fd = 0;
	return 0;
}
static void
ft_destroy(struct sim_transport *t)
{
	(void)t;
}
static int
ft_connect(
    struct sim_transport *t, const struct sockaddr_in *s, const struct sockaddr_in *d, void *c)
{
	(void)t;
	(void)s;
	(void)d;
	(void)c;
	return connect_rc != 0 ? connect_rc : 7;
}
static int
ft_connect_result(struct sim_transport *t, int h)
{
	(void)t;
	(void)h;
	return connect_result_rc;
}
static ssize_t
ft_send(struct sim_transport *t, int h, const void *b, size_t n)
{
	(void)t;
	(void)h;
	if (send_rc != 0)
		return send_rc;
	memcpy(sent + sent_len, b, n);
	sent_len += n;
	return (ssize_t)n;
}
static ssize_t
ft_recv(struct sim_transport *t, int h, void *b, size_t n)
{
	(void)t;
	(void)h;
	if (recv_rc != 0)
		return recv_rc;
	if (script_len == 0)
		return peer_closed ? 0 : -EAGAIN;
	n = n < script_len ? n : script_len;
	memcpy(b, script, n);
	memmove(script, script + n, script_len - n);
	script_len -= n;
	return (ssize_t)n;
}
static int
ft_want(struct sim_transport *t, int h, uint32_t e, void *c)
{
	(void)t;
	(void)h;
	(void)e;
	(void)c;
	return 0;
}
static void
ft_close(struct sim_transport *t, int h)
{
	(void)t;
	(void)h;
}
static int
ft_poll(struct sim_transport *t, struct sim_event *e, int m, int ms)
{
	(void)t;
	(void)e;
	(void)m;
	(void)ms;
	return 0;
}
static const struct sim_transport_ops fake_ops = {
	"fake",
	ft_open,
	ft_destroy,
	ft_connect,
	ft_connect_result,
	ft_send,
	ft_recv,
	ft_want,
	ft_close,
	ft_poll,
};

static struct sim_opts o;
static struct sim_run run;
static struct sim_worker w;
static struct sim_session s;
static uint8_t fill[64];

/* What the broker would decode from the bytes sent so far; consumes them. */
static enum mqtt_type
next_sent(struct mqtt_packet *p)
{
	static uint8_t scratch[1024];
	struct mqtt_decoder d;
	int n;

	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, o.version, 0, scratch, sizeof(scratch));
	n = mqtt_decode_buf(&d, sent, sent_len, p);
	assert_true(n > 0);
	memmove(sent, sent + n, sent_len - (size_t)n);
	sent_len -= (size_t)n;
	return p->type;
}

static void
feed(const uint8_t *b, size_t n, uint64_t now)
{
	memcpy(script + script_len, b, n);
	script_len += n;
	sim_session_event(&w, &s, SIM_EV_IN, now);
}

static void
feed_ack(enum mqtt_type t, uint16_t pid)
{
	uint8_t b[16];
	struct mqtt_ack a = { .packet_id = pid };

	feed(b, (size_t)mqtt_encode_ack(b, sizeof(b), o.version, t, &a), 1000);
}

static int
setup(void **st, uint32_t qos_w0, uint32_t qos_w2)
{
	(void)st;
	sim_opts_defaults(&o);
	o.sessions = 1;
	o.rate = 0;
	o.window = 4;
	o.qos_weight[0] = qos_w0;
	o.qos_weight[2] = qos_w2;
	memset(&run, 0, sizeof(run));
	run.o = &o;
	run.qos_sum = qos_w0 + qos_w2;
	run.in_cap = 4096;
	run.out_cap = 4096;
	run.fill = fill;
	memset(&w, 0, sizeof(w));
	w.run = &run;
	w.tr.ops = &fake_ops;
	w.budget = UINT64_MAX;
	mqtt_decoder_init(
	    &w.dec, MQTT_ROLE_CLIENT, o.version, run.in_cap, w.scratch, sizeof(w.scratch));
	sim_hist_init(&w.hist);
	sent_len = script_len = 0;
	connect_rc = connect_result_rc = send_rc = recv_rc = 0;
	peer_closed = false;
	assert_int_equal(sim_session_alloc(&w, &s, 0), 0);
	return 0;
}

static int
setup_q2(void **st)
{
	return setup(st, 0, 1);
}
static int
setup_q0(void **st)
{
	return setup(st, 1, 0);
}

static int
teardown(void **st)
{
	(void)st;
	sim_session_free(&s);
	return 0;
}

/* TCP up, CONNECT out, CONNACK in: ready. */
static void
connect_ready(void)
{
	static const uint8_t connack[] = { 0x20, 2, 0, 0 }, connack5[] = { 0x20, 3, 0, 0, 0 };
	struct mqtt_packet p;

	sim_session_start(&w, &s, 1000);
	sim_session_event(&w, &s, SIM_EV_OUT, 1000);
	assert_int_equal(next_sent(&p), MQTT_CONNECT);
	assert_int_equal(p.connect.keepalive_s, 60);
	if (o.version == MQTT_V5)
		feed(connack5, sizeof(connack5), 1000);
	else
		feed(connack, sizeof(connack), 1000);
	assert_int_equal(s.state, SS_READY);
	assert_int_equal(w.st.ready, 1);
}

static void
test_qos2_publisher_flow(void **st)
{
	struct mqtt_packet p;
	uint16_t pid;

	(void)st;
	connect_ready();
	run.phase = SIM_PH_RUN;
	sim_session_tick(&w, &s, 2000, false);
	assert_int_equal(w.st.published[2], 4); /* the window */
	assert_int_equal(next_sent(&p), MQTT_PUBLISH);
	assert_int_equal(p.publish.qos, 2);
	assert_int_equal(p.publish.payload_len, 16);
	pid = p.publish.packet_id;
	feed_ack(MQTT_PUBCOMP, pid); /* before PUBREC: not in that stage */
	assert_int_equal(w.st.err[SIM_ERR_ACK_UNKNOWN_ID], 1);
	feed_ack(MQTT_PUBREC, pid);
	for (int i = 0; i < 3; i++)
		assert_int_equal(next_sent(&p), MQTT_PUBLISH);
	assert_int_equal(next_sent(&p), MQTT_PUBREL);
	assert_int_equal(p.ack.packet_id, pid);
	assert_int_equal(w.st.acked[2], 0);
	feed_ack(MQTT_PUBCOMP, pid);
	assert_int_equal(w.st.acked[2], 1);
	assert_int_equal(w.st.published[2], 5); /* the window opened again */
	assert_int_equal(w.st.inflight, 4);
	sim_session_stop(&w, &s);
	assert_int_equal(w.st.err[SIM_ERR_UNACKED], 4);
}

static void
test_qos0_credit_and_barrier(void **st)
{
	static const uint8_t pingresp[] = { 0xD0, 0 };
	struct mqtt_packet p;
	int pubs = 0, pings = 0;

	(void)st;
	connect_ready();
	run.phase = SIM_PH_RUN;
	sim_session_tick(&w, &s, 2000, false);
	/* window 4: a PINGREQ after every 4 QoS 0 publishes, at most 4 outstanding */
	assert_int_equal(w.st.published[0], 4 * SIM_PINGS_MAX + 4);
	while (sent_len > 0)
		next_sent(&p) == MQTT_PINGREQ ? pings++ : pubs++;
	assert_int_equal(pings, SIM_PINGS_MAX);
	assert_int_equal(pubs, 20);
	assert_int_equal(w.st.acked[0], 0);
	feed(pingresp, sizeof(pingresp), 3000);
	assert_int_equal(w.st.acked[0], 4);
	assert_int_equal(w.st.published[0], 24); /* the credit came back: 1 more ping, 4 more */
	run.phase = SIM_PH_DRAIN;
	sim_session_tick(&w, &s, 3500, false);
	assert_int_equal(w.st.barriers, 0); /* no PINGREQ slot free yet */
	feed(pingresp, sizeof(pingresp), 3600);
	sim_session_tick(&w, &s, 4000, false); /* the barrier: one more PINGREQ */
	assert_int_equal(w.st.barriers, 1);
	assert_int_equal(w.st.published[0], 24); /* nothing new while draining */
	for (int i = 0; i < 4; i++)
		feed(pingresp, sizeof(pingresp), 5000);
	assert_int_equal(w.st.barriers_acked, 1);
	assert_int_equal(w.st.acked[0], w.st.published[0]);
	assert_int_equal(w.st.barrier_last_ns, 5000);
	assert_int_equal(w.st.inflight, 0);
	feed(pingresp, sizeof(pingresp), 6000); /* none outstanding */
	assert_int_equal(w.st.err[SIM_ERR_UNEXPECTED], 1);
	assert_int_equal(s.state, SS_DEAD);
}

static void
test_qos2_receiver_duplicate(void **st)
{
	uint8_t b[128];
	uint64_t stamp = 500;
	struct mqtt_publish pub = { .qos = 2,
		.topic = MQTT_STR("site/1/sensor/0"),
		.packet_id = 9,
		.payload = b + 100,
		.payload_len = 16 };
	struct mqtt_packet p;
	int n;

	(void)st;
	memset(b + 100, 0, 16);
	memcpy(b + 100, &stamp, 8);
	connect_ready();
	n = mqtt_encode_publish(b, 100, o.version, &pub);
	feed(b, (size_t)n, 1500);
	feed(b, (size_t)n, 1600); /* same id before PUBREL: a duplicate */
	assert_int_equal(w.st.delivered[2], 1);
	assert_int_equal(w.st.dup_qos2, 1);
	assert_int_equal(w.hist.count, 1);
	assert_int_equal(w.hist.max, 1000);
	assert_int_equal(next_sent(&p), MQTT_PUBREC);
	assert_int_equal(next_sent(&p), MQTT_PUBREC);
	feed_ack(MQTT_PUBREL, 9);
	assert_int_equal(next_sent(&p), MQTT_PUBCOMP);
	assert_int_equal(p.ack.packet_id, 9);
	feed(b, (size_t)n, 1700); /* after PUBREL: a new message */
	assert_int_equal(w.st.delivered[2], 2);
}

static void
test_bad_packet_kills(void **st)
{
	static const uint8_t bad[] = { 0x10, 2, 0, 0 }; /* CONNECT from a broker */

	(void)st;
	connect_ready();
	feed(bad, sizeof(bad), 2000);
	assert_int_equal(s.state, SS_DEAD);
	assert_int_equal(w.st.err[SIM_ERR_DECODE] + w.st.err[SIM_ERR_UNEXPECTED], 1);
	assert_int_equal(w.st.dead, 1);
	assert_int_equal(w.st.ready, 0);
}

/* MQTT 5 from now on (before connect_ready). */
static void
use_v5(void)
{
	o.version = MQTT_V5;
	mqtt_decoder_init(
	    &w.dec, MQTT_ROLE_CLIENT, o.version, run.in_cap, w.scratch, sizeof(w.scratch));
}

/* The session died of kind k, and of nothing else: counted once, not ready. */
static void
died_of(enum sim_err k)
{
	uint64_t total = 0;

	assert_int_equal(s.state, SS_DEAD);
	assert_int_equal(w.st.err[k], 1);
	for (int i = 0; i < SIM_ERR_COUNT; i++)
		total += w.st.err[i];
	assert_int_equal(total, 1);
	assert_int_equal(w.st.dead, 1);
	assert_int_equal(w.st.ready, 0);
}

/* The connect refused at once, or its source address unusable (--bind), or refused later
 * (the connect's result). */
static void
test_connect_refused(void **st)
{
	(void)st;
	connect_rc = -ECONNREFUSED;
	sim_session_start(&w, &s, 1000);
	died_of(SIM_ERR_TCP_CONNECT);
	teardown(st);
	setup_q2(st);
	connect_rc = -EADDRNOTAVAIL;
	sim_session_start(&w, &s, 1000);
	died_of(SIM_ERR_BIND);
	teardown(st);
	setup_q2(st);
	connect_result_rc = ECONNREFUSED;
	sim_session_start(&w, &s, 1000);
	sim_session_event(&w, &s, SIM_EV_ERR, 1000);
	died_of(SIM_ERR_TCP_CONNECT);
	assert_int_equal(sent_len, 0); /* no CONNECT on a failed connection */
}

/* A broker that takes the connection and never answers CONNECT: alive until the connect
 * timeout (checked by the slow tick), then dead of CONNECT_TIMEOUT. */
static void
test_connack_never_comes(void **st)
{
	struct mqtt_packet p;
	uint64_t t0 = 1000000000ull;

	(void)st;
	sim_session_start(&w, &s, t0);
	sim_session_event(&w, &s, SIM_EV_OUT, t0);
	assert_int_equal(next_sent(&p), MQTT_CONNECT);
	sim_session_tick(&w, &s, t0 + 9000000000ull, true);
	assert_int_equal(s.state, SS_CONNACK);
	sim_session_tick(&w, &s, t0 + 10500000000ull, true);
	died_of(SIM_ERR_CONNECT_TIMEOUT);
}

/* CONNACK with a refusal (3.1.1 return code 5, not authorized), and a SUBACK refusing the
 * subscription (0x80). */
static void
test_connack_and_suback_refused(void **st)
{
	static const uint8_t refused[] = { 0x20, 2, 0, 5 };
	static const uint8_t connack[] = { 0x20, 2, 0, 0 };
	static const uint8_t suback[] = { 0x90, 3, 0, 1, 0x80 };
	struct mqtt_packet p;

	(void)st;
	sim_session_start(&w, &s, 1000);
	sim_session_event(&w, &s, SIM_EV_OUT, 1000);
	feed(refused, sizeof(refused), 1000);
	died_of(SIM_ERR_CONNACK_REFUSED);
	teardown(st);
	setup_q2(st);
	strcpy(o.sub_filter, "site/{session}/cmd");
	sim_session_start(&w, &s, 1000);
	sim_session_event(&w, &s, SIM_EV_OUT, 1000);
	feed(connack, sizeof(connack), 1000);
	assert_int_equal(s.state, SS_SUBACK);
	assert_int_equal(next_sent(&p), MQTT_CONNECT);
	assert_int_equal(next_sent(&p), MQTT_SUBSCRIBE);
	feed(suback, sizeof(suback), 1000);
	died_of(SIM_ERR_SUBACK_REFUSED);
	assert_int_equal(w.st.connects, 1);
}

/* MQTT 5 acks with a failure reason: a PUBREC refusing our QoS 2 publish (given up, counted
 * unacknowledged, its slot in the window free again), a PUBREL with one (answered PUBCOMP all
 * the same). The session lives on. */
static void
test_ack_with_failure_reason(void **st)
{
	struct mqtt_ack a = { .reason = 0x80 };
	struct mqtt_packet p;
	uint8_t b[16];
	uint16_t pid;

	(void)st;
	use_v5();
	connect_ready();
	run.phase = SIM_PH_RUN;
	sim_session_tick(&w, &s, 2000, false);
	assert_int_equal(next_sent(&p), MQTT_PUBLISH);
	pid = p.publish.packet_id;
	a.packet_id = pid;
	feed(b, (size_t)mqtt_encode_ack(b, sizeof(b), o.version, MQTT_PUBREC, &a), 3000);
	assert_int_equal(w.st.err[SIM_ERR_ACK_REASON], 1);
	assert_int_equal(w.st.err[SIM_ERR_UNACKED], 1);
	assert_int_equal(w.st.acked[2], 0);
	assert_int_equal(w.st.published[2], 5); /* its slot taken by the next */
	a.packet_id = 40;
	a.reason = 0x92; /* packet identifier not found */
	feed(b, (size_t)mqtt_encode_ack(b, sizeof(b), o.version, MQTT_PUBREL, &a), 3000);
	assert_int_equal(w.st.err[SIM_ERR_ACK_REASON], 2);
	while (sent_len > 0 && next_sent(&p) != MQTT_PUBCOMP)
		;
	assert_int_equal(p.type, MQTT_PUBCOMP);
	assert_int_equal(p.ack.packet_id, 40);
	assert_int_equal(s.state, SS_READY);
}

/* The broker says DISCONNECT (MQTT 5); closes the connection; resets it (recv fails); the send
 * fails. */
static void
test_broker_goes_away(void **st)
{
	static const uint8_t disconnect[] = { 0xE0, 0 };

	(void)st;
	use_v5();
	connect_ready();
	feed(disconnect, sizeof(disconnect), 2000);
	assert_int_equal(s.state, SS_DEAD);
	assert_int_equal(w.st.err[SIM_ERR_DISCONNECT_RX], 1);
	for (int k = 0; k < 3; k++) {
		teardown(st);
		setup_q2(st);
		connect_ready();
		run.phase = SIM_PH_RUN;
		if (k == 0) {
			peer_closed = true;
			sim_session_event(&w, &s, SIM_EV_IN, 2000);
		} else if (k == 1) {
			recv_rc = -ECONNRESET;
			sim_session_event(&w, &s, SIM_EV_IN, 2000);
		} else {
			send_rc = -EPIPE;
			sim_session_tick(&w, &s, 2000, false); /* publishes: the send fails */
		}
		assert_int_equal(s.state, SS_DEAD);
		assert_int_equal(w.st.err[k == 0 ? SIM_ERR_PEER_CLOSED : SIM_ERR_SOCKET], 1);
		if (k == 2)
			assert_int_equal(w.st.err[SIM_ERR_UNACKED], 4); /* the window, lost */
	}
}

/* Idle past three quarters of the keepalive: a PINGREQ; no PINGRESP within the keepalive:
 * dead of PING_TIMEOUT. */
static void
test_ping_timeout(void **st)
{
	struct mqtt_packet p;
	uint64_t ka = 60000000000ull;

	(void)st;
	connect_ready(); /* at 1000 ns, nothing to publish (not running) */
	sim_session_tick(&w, &s, 1000 + ka / 2, true);
	assert_int_equal(sent_len, 0);
	sim_session_tick(&w, &s, 1000 + ka / 4 * 3, true);
	assert_int_equal(next_sent(&p), MQTT_PINGREQ);
	sim_session_tick(&w, &s, 1000 + ka / 4 * 3 + ka - 1, true);
	assert_int_equal(s.state, SS_READY);
	sim_session_tick(&w, &s, 1000 + ka / 4 * 3 + ka + 1, true);
	assert_int_equal(s.state, SS_DEAD);
	assert_int_equal(w.st.err[SIM_ERR_PING_TIMEOUT], 1);
}

/* Deliveries: one too short to carry the timestamp (counted, not timed); a QoS 2 one while
 * the receive table cannot be allocated (counted, delivered and answered all the same). */
static void
test_delivery_faults(void **st)
{
	uint8_t b[128], pl[16] = { 0 };
	struct mqtt_publish pub = {
		.qos = 0, .topic = MQTT_STR("site/1/sensor/0"), .payload = pl, .payload_len = 4
	};
	struct mqtt_packet p;
	int n;

	(void)st;
	connect_ready();
	n = mqtt_encode_publish(b, sizeof(b), o.version, &pub);
	feed(b, (size_t)n, 1500);
	assert_int_equal(w.st.delivered[0], 1);
	assert_int_equal(w.st.err[SIM_ERR_PAYLOAD_SHORT], 1);
	assert_int_equal(w.hist.count, 0);
	pub.qos = 2;
	pub.packet_id = 3;
	pub.payload_len = 16;
	n = mqtt_encode_publish(b, sizeof(b), o.version, &pub);
	fail_alloc_nth(1);
	feed(b, (size_t)n, 1600);
	fail_alloc_nth(0);
	assert_int_equal(fail_alloc_failed(), 1);
	assert_int_equal(w.st.err[SIM_ERR_NO_MEMORY], 1);
	assert_int_equal(w.st.delivered[2], 1);
	assert_int_equal(next_sent(&p), MQTT_PUBREC);
	assert_int_equal(p.ack.packet_id, 3);
	assert_int_equal(s.state, SS_READY);
}

/* A delivery stamped before this run began (an earlier run's publisher whose bytes the broker
 * read late): counted as stale, not as delivered, no latency; still acknowledged. One stamped
 * after the start counts as before. */
static void
test_stale_delivery(void **st)
{
	uint8_t b[128];
	uint64_t stamp = 500;
	struct mqtt_publish pub = { .qos = 1,
		.topic = MQTT_STR("site/1/sensor/0"),
		.packet_id = 4,
		.payload = b + 100,
		.payload_len = 16 };
	struct mqtt_packet p;
	int n;

	(void)st;
	run.t0_ns = 1000;
	memset(b + 100, 0, 16);
	memcpy(b + 100, &stamp, 8);
	connect_ready();
	n = mqtt_encode_publish(b, 100, o.version, &pub);
	feed(b, (size_t)n, 1500);
	assert_int_equal(w.st.stale, 1);
	assert_int_equal(w.st.delivered[1], 0);
	assert_int_equal(w.hist.count, 0);
	assert_int_equal(next_sent(&p), MQTT_PUBACK);
	assert_int_equal(p.ack.packet_id, 4);
	stamp = 1200;
	memcpy(b + 100, &stamp, 8);
	pub.packet_id = 5;
	n = mqtt_encode_publish(b, 100, o.version, &pub);
	feed(b, (size_t)n, 1500);
	assert_int_equal(w.st.stale, 1);
	assert_int_equal(w.st.delivered[1], 1);
	assert_int_equal(w.hist.count, 1);
	assert_int_equal(w.hist.max, 300);
	assert_int_equal(next_sent(&p), MQTT_PUBACK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_qos2_publisher_flow, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_qos0_credit_and_barrier, setup_q0, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_receiver_duplicate, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_bad_packet_kills, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_connack_never_comes, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(
		    test_connack_and_suback_refused, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_ack_with_failure_reason, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_broker_goes_away, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_ping_timeout, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_faults, setup_q2, teardown),
		cmocka_unit_test_setup_teardown(test_stale_delivery, setup_q2, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
