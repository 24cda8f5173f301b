/*
 * test_tcp_pmtu.c: path MTU discovery (RFC 1191) from ICMP "fragmentation needed" to TCP's
 * MSS: icmp.c is compiled in, so each message goes through icmp_input as the NIC would hand
 * it over. What must change nothing (RFC 5927): a quoted header that is too short or not
 * ours, a flow that does not exist or is still in its handshake, a sequence number not in
 * flight, an MTU below 68 (RFC 791) or no smaller than what the flow already uses; 68..575
 * is taken as 576. What must: the MSS of the flow (less the timestamp option it carries), the
 * segments in flight go again, and the destination's path MTU (pmtu.c) lowers every other
 * flow to it, new ones at their handshake, until it expires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "icmp.h"
#include "pmtu.h"
#include "tcp_harness.h"
#include "tcp_types.h"

#define ACK RTE_TCP_ACK_FLAG
#define SYN RTE_TCP_SYN_FLAG

static struct tcp_config cfg;
static uint8_t buf[4 * 1460];

static int
teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

/* What the ICMP message quotes; quote() fills the usual: our segment to the peer. */
struct quote {
	uint8_t ihl_words; /* the quoted IPv4 header's length field */
	uint8_t proto;
	uint32_t src_be;
	uint16_t sport, dport; /* host order */
	uint32_t seq;
	unsigned len; /* ICMP message bytes (8 + quoted) */
};

static struct quote
quote(uint16_t port, uint32_t seq)
{
	return (struct quote){ .ihl_words = 5,
		.proto = IPPROTO_TCP,
		.src_be = H_OUR_IP,
		.sport = H_PORT,
		.dport = port,
		.seq = seq,
		.len = 8 + 20 + 8 };
}

/* An ICMP "fragmentation needed" with next-hop MTU mtu, quoting q, through lc's icmp_input. */
static void
frag_needed_on(struct dp_lcore *lc, const struct quote *q, uint16_t mtu)
{
	uint8_t b[20 + 8 + 60 + 8] = { 0 };
	struct rte_ipv4_hdr *in = (struct rte_ipv4_hdr *)(b + 28);
	unsigned ihl = q->ihl_words * 4u;
	uint16_t sport = rte_cpu_to_be_16(q->sport), dport = rte_cpu_to_be_16(q->dport), ck;
	uint32_t seq_be = rte_cpu_to_be_32(q->seq);
	struct rte_mbuf *m = rte_pktmbuf_alloc(h_lc.pool);

	assert_true(q->len <= sizeof(b) - 20);
	b[0] = 0x45;
	b[9] = IPPROTO_ICMP;
	b[20] = 3; /* destination unreachable */
	b[21] = 4; /* fragmentation needed */
	b[26] = (uint8_t)(mtu >> 8);
	b[27] = (uint8_t)mtu;
	in->version_ihl = (uint8_t)(0x40 | q->ihl_words);
	in->next_proto_id = q->proto;
	in->src_addr = q->src_be;
	in->dst_addr = H_PEER_IP;
	if (ihl >= 20 && 28 + ihl + 8 <= sizeof(b)) {
		memcpy(b + 28 + ihl, &sport, 2);
		memcpy(b + 28 + ihl + 2, &dport, 2);
		memcpy(b + 28 + ihl + 4, &seq_be, 4);
	}
	ck = (uint16_t)~rte_raw_cksum(b + 20, q->len);
	memcpy(b + 22, &ck, 2);
	assert_non_null(m);
	memcpy(rte_pktmbuf_append(m, (uint16_t)(20 + q->len)), b, 20 + q->len);
	rte_pktmbuf_adj(m, 20);
	m->l3_len = 20;
	icmp_input(lc, m);
}

static void
frag_needed(const struct quote *q, uint16_t mtu)
{
	frag_needed_on(&h_lc, q, mtu);
}

/* A flow with three full segments in flight. */
static struct tcp_conn *
flow_in_flight(struct h_peer *p, uint16_t port, bool ts)
{
	struct tcp_conn *c = h_establish(p, port, ts);

	assert_int_equal(tcp_write(c, buf, 3 * 1460), 3 * 1460);
	h_flush();
	assert_int_equal(h_cap[0].len, ts ? 1448 : 1460);
	h_clear();
	return c;
}

/* Quoted headers that are cut short, not TCP, or not from us: counted as ICMP messages,
 * never taken to TCP (the flow's MSS stays, nothing is sent). */
static void
test_malformed_quotes_ignored(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct quote q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = flow_in_flight(&p, 43001, false);
	q = quote(43001, p.iss + 1);
	q.len = 8 + 16; /* not even a whole IPv4 header */
	frag_needed(&q, 1000);
	q = quote(43001, p.iss + 1);
	q.ihl_words = 4; /* a header length below 20 */
	frag_needed(&q, 1000);
	q = quote(43001, p.iss + 1);
	q.ihl_words = 15; /* 60 bytes of header, the 8 TCP bytes after them missing */
	q.len = 8 + 60 + 4;
	frag_needed(&q, 1000);
	q = quote(43001, p.iss + 1);
	q.proto = IPPROTO_UDP;
	frag_needed(&q, 1000);
	q = quote(43001, p.iss + 1);
	q.src_be = H_PEER_IP; /* a packet we never sent */
	frag_needed(&q, 1000);
	assert_int_equal(h_lc.cnt.v[DPC_icmp_FRAG_NEEDED], 5);
	assert_int_equal(H_CNT(PMTU_IGNORED) + H_CNT(PMTU_REDUCED), 0);
	assert_int_equal(c->mss, 1460);
	h_flush();
	assert_int_equal(h_ncap, 0);
	/* a quoted header with options is read past them */
	q = quote(43001, p.iss + 1);
	q.ihl_words = 6;
	q.len = 8 + 24 + 8;
	frag_needed(&q, 1000);
	assert_int_equal(H_CNT(PMTU_REDUCED), 1);
	assert_int_equal(c->mss, 960);
}

/* What tcp_pmtu_update must refuse (each counted PMTU_IGNORED, the MSS unchanged): no such
 * flow, a flow in its handshake, an MTU below 576 (RFC 1191's floor), one no smaller than the
 * flow's, a sequence number not in flight (RFC 5927: a blind attacker guesses). */
static void
test_pmtu_refusals(void **state)
{
	struct h_peer p;
	struct tcp_conn *c, *a;
	struct quote q;
	uint8_t opts[4] = { 2, 4, 0x05, 0xb4 };
	struct h_seg syn = {
		.flags = SYN, .seq = 5, .win = 65535, .opts = opts, .optlen = 4, .sport = 43003
	};
	uint64_t ign = 0;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = flow_in_flight(&p, 43002, false);
	q = quote(43999, p.iss + 1); /* no flow on that port */
	frag_needed(&q, 1000);
	assert_int_equal(H_CNT(PMTU_IGNORED), ++ign);
	h_input(&syn); /* SYN_RECEIVED: its SYN-ACK is in flight */
	assert_int_equal(h_ncap, 1);
	q = quote(43003, h_cap[0].seq);
	frag_needed(&q, 1000);
	assert_int_equal(H_CNT(PMTU_IGNORED), ++ign);
	h_clear();
	assert_int_equal(tcp_connect(&h_lc, 0, H_PEER_IP, 80, &h_ops, &h_app, &a), 0);
	q = quote(80, h_cap[0].seq); /* SYN_SENT */
	q.sport = rte_be_to_cpu_16(a->key.lport);
	frag_needed(&q, 1000);
	assert_int_equal(H_CNT(PMTU_IGNORED), ++ign);
	assert_int_equal(a->state, TCP_ST_SYN_SENT);
	q = quote(43002, p.iss + 1);
	frag_needed(&q, 67); /* below RFC 791's 68: implausible */
	frag_needed(&q, 0);  /* a router from before RFC 1191 */
	assert_int_equal(H_CNT(PMTU_BAD_MTU), 2);
	assert_int_equal(H_CNT(PMTU_IGNORED), ign);
	frag_needed(&q, 1500); /* MSS 1460: what the flow uses already */
	assert_int_equal(H_CNT(PMTU_IGNORED), ++ign);
	frag_needed(&q, 9000);
	assert_int_equal(H_CNT(PMTU_IGNORED), ++ign);
	q.seq = p.iss; /* below SND.UNA: acknowledged long ago */
	frag_needed(&q, 1000);
	assert_int_equal(H_CNT(PMTU_IGNORED), ++ign);
	assert_int_equal(H_CNT(PMTU_REDUCED), 0);
	assert_int_equal(c->mss, 1460);
	assert_int_equal(pmtu_entry_count(&h_lc), 0); /* nothing refused was learnt */
	/* 68..575 is taken as 576, the floor (as Linux's min_pmtu), and counted */
	q.seq = p.iss + 1 + 1460;
	frag_needed(&q, 68);
	assert_int_equal(H_CNT(PMTU_CLAMPED), 1);
	assert_int_equal(H_CNT(PMTU_REDUCED), 1);
	assert_int_equal(c->mss, 536);
	assert_int_equal(pmtu_get(&h_lc, H_PEER_IP), 576);
}

/* A flow with timestamps carries 12 option bytes in every segment: its MSS from an MTU is
 * 40 + 12 below it, so the segments it sends again fit the path. */
static void
test_pmtu_with_timestamps(void **state)
{
	struct h_peer p;
	struct tcp_conn *c;
	struct quote q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	c = flow_in_flight(&p, 43004, true);
	q = quote(43004, p.iss + 1);
	frag_needed(&q, 1000);
	assert_int_equal(H_CNT(PMTU_REDUCED), 1);
	assert_int_equal(c->mss, 1000 - 40 - 12);
	h_flush();
	assert_true(h_ncap >= 4);
	assert_int_equal(h_cap[0].seq, p.iss + 1);
	for (unsigned i = 0; i < h_ncap; i++) {
		assert_true(h_cap[i].has_ts);
		assert_true(20 + 20 + h_cap[i].optlen + h_cap[i].len <= 1000);
	}
}


/* Segments c sends for len bytes written now: every one within mss, and at least one of it. */
static void
sends_within(struct tcp_conn *c, uint32_t len, uint32_t mss)
{
	h_clear();
	assert_int_equal(tcp_write(c, buf, len), (int)len);
	h_flush();
	assert_true(h_ncap >= 1);
	for (unsigned i = 0; i < h_ncap; i++)
		assert_true(h_cap[i].len <= mss);
	assert_int_equal(h_cap[0].len, RTE_MIN(len, mss));
}

/* One validated message lowers every flow to the destination (RFC 1191 6.3): one open before
 * it at its next send, one opened after it at its handshake; with timestamps, 12 bytes less. */
static void
test_pmtu_every_flow_to_destination(void **state)
{
	struct h_peer a, b, d, e;
	struct tcp_conn *ca, *cb, *cd, *ce;
	struct quote q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	ca = flow_in_flight(&a, 43010, false);
	cb = h_establish(&b, 43011, false);
	q = quote(43010, a.iss + 1);
	frag_needed(&q, 1000);
	assert_int_equal(H_CNT(PMTU_REDUCED), 1);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_LEARNED], 1);
	assert_int_equal(pmtu_entry_count(&h_lc), 1);
	assert_int_equal(ca->mss, 960);
	h_flush();
	h_clear();
	sends_within(cb, 2 * 1460, 960); /* the flow open before: at its next send */
	assert_int_equal(cb->mss, 960);
	cd = h_establish(&d, 43012, false); /* one opened after: at its handshake */
	assert_int_equal(cd->mss, 960);
	sends_within(cd, 1460, 960);
	ce = h_establish(&e, 43013, true);
	assert_int_equal(ce->mss, 1000 - 40 - 12);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_APPLIED], 3);
	/* a second message for another flow, lower still: the entry follows, nothing grows */
	q = quote(43011, cb->snd_una);
	frag_needed(&q, 800);
	assert_int_equal(pmtu_get(&h_lc, H_PEER_IP), 800);
	assert_int_equal(cb->mss, 760);
	q = quote(43012, cd->snd_una);
	frag_needed(&q, 1000); /* stale: the path is known smaller */
	assert_int_equal(pmtu_get(&h_lc, H_PEER_IP), 800);
	assert_int_equal(cd->mss, 960);
}

/* Two workers: RSS hashes an ICMP message by its own addresses, so "fragmentation needed" for
 * a flow of one lcore may land on the other. That one, owning no such flow, passes it on
 * (FRAG_SHARED); the owner takes it at its next poll as if it had received it (the flow's MSS
 * drops, the destination is learnt). One quoting no flow anywhere changes nothing; one for the
 * owner's flow received by the owner is not passed on; a full inbox drops, counted. Before,
 * the other lcore counted it ignored and the flow kept sending segments too big for the path. */
static struct dp_lcore other; /* a worker with no TCP flows */

static void
test_pmtu_from_another_lcore(void **state)
{
	struct dp_lcore *both[2] = { &h_lc, &other };
	struct tcp_conn *ca;
	struct h_peer a;
	struct quote q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	memset(&other, 0, sizeof(other));
	other.lcore_id = h_lc.lcore_id + 7;
	other.pool = h_lc.pool;
	other.ip_be = H_OUR_IP;
	other.tsc_hz = h_lc.tsc_hz;
	assert_int_equal(icmp_lcores_link(both, 2), 0);
	ca = flow_in_flight(&a, 43020, false);
	q = quote(43020, a.iss + 1);
	frag_needed_on(&other, &q, 1000);
	assert_int_equal(other.cnt.v[DPC_icmp_FRAG_SHARED], 1);
	assert_int_equal(other.cnt.v[DPC_tcp_PMTU_IGNORED], 0);
	assert_int_equal(ca->mss, 1460); /* not yet: the owner has not polled */
	icmp_poll(&h_lc);
	assert_int_equal(H_CNT(PMTU_REDUCED), 1);
	assert_int_equal(ca->mss, 960);
	assert_int_equal(pmtu_get(&h_lc, H_PEER_IP), 1000);
	icmp_poll(&other); /* nothing for it */

	/* no such flow on either: passed on, then nothing */
	q = quote(49999, a.iss + 1);
	frag_needed_on(&other, &q, 900);
	icmp_poll(&h_lc);
	assert_int_equal(H_CNT(PMTU_REDUCED), 1);
	assert_int_equal(H_CNT(PMTU_IGNORED), 0);
	assert_int_equal(pmtu_get(&h_lc, H_PEER_IP), 1000);

	/* received by the owner: taken there, not passed on */
	q = quote(43020, ca->snd_una);
	frag_needed(&q, 800);
	assert_int_equal(ca->mss, 760);
	assert_int_equal(h_lc.cnt.v[DPC_icmp_FRAG_SHARED], 0);

	/* the owner does not poll: its inbox fills, the rest is dropped and counted */
	for (int i = 0; i < 300; i++)
		frag_needed_on(&other, &q, 700);
	assert_true(other.cnt.v[DPC_icmp_FRAG_SHARE_DROP] >= 300 - 256);
	icmp_poll(&h_lc);
	assert_int_equal(ca->mss, 660);
	icmp_lcores_unlink(both, 2);
	assert_null(h_lc.icmp);
}

/* A refused message teaches the destination nothing: a new flow starts at the full MSS. */
static void
test_pmtu_refused_learns_nothing(void **state)
{
	struct h_peer a, b;
	struct tcp_conn *cb;
	struct quote q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	flow_in_flight(&a, 43020, false);
	q = quote(43020, a.iss + 1 + 3 * 1460); /* SND.MAX: not in flight (RFC 5927 4.1) */
	frag_needed(&q, 600);
	q = quote(43020, a.iss - 100000); /* far behind */
	frag_needed(&q, 600);
	q = quote(43029, a.iss + 1); /* no such flow */
	frag_needed(&q, 600);
	q = quote(43020, a.iss + 1);
	frag_needed(&q, 40); /* implausible */
	assert_int_equal(H_CNT(PMTU_IGNORED), 3);
	assert_int_equal(H_CNT(PMTU_BAD_MTU), 1);
	assert_int_equal(pmtu_entry_count(&h_lc), 0);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_LEARNED], 0);
	cb = h_establish(&b, 43021, false);
	assert_int_equal(cb->mss, 1460);
	sends_within(cb, 1460, 1460);
}

/* RFC 1191 6.3: the estimate ages out 10 minutes after its last decrease (pmtu.timeout); a
 * flow opened then tries the full MSS again, and so does one lowered before, at its next
 * output (test_pmtu_raised_at_expiry). */
static void
test_pmtu_expiry(void **state)
{
	struct h_peer a, b, d;
	struct tcp_conn *ca, *cb, *cd;
	struct quote q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	ca = flow_in_flight(&a, 43030, false);
	q = quote(43030, a.iss + 1);
	frag_needed(&q, 1000);
	h_flush();
	a.rcv_nxt = a.iss + 1 + 3 * 1460; /* the peer has it all: nothing in flight */
	h_send(&a, ACK, NULL, 0);
	assert_int_equal(ca->snd_una, ca->snd_max);
	h_clear();
	h_advance_ms(600000 - 1);
	cb = h_establish(&b, 43031, false);
	assert_int_equal(cb->mss, 960);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_EXPIRED], 0);
	h_advance_ms(2);
	cd = h_establish(&d, 43032, false);
	assert_int_equal(cd->mss, 1460);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_EXPIRED], 1);
	assert_int_equal(pmtu_entry_count(&h_lc), 0);
	sends_within(cd, 1460, 1460);
	assert_int_equal(ca->mss, 1460); /* its output ran in that flush (the ACK queued it) */
}

/* The peer acknowledges everything c sent (a flow of h_open_sack or h_establish). */
static void
ack_all(struct h_peer *p, struct tcp_conn *c)
{
	p->rcv_nxt = c->snd_max;
	h_send(p, ACK, NULL, 0);
	assert_int_equal(c->snd_una, c->snd_max);
}

/* RFC 1191 7: when the estimate ages out, the flows it lowered try larger again at their next
 * send, each as far as its own handshake allowed: a peer that offered 1200 gets 1200 (not the
 * port's 1460), a flow with timestamps 1448 (counted pmtu RAISED). A flow the table could not
 * keep the estimate for (full) stays lowered for its life: no entry would expire to say when.
 * The stack before kept the lowered MSS until the flow closed. */
static void
test_pmtu_raised_at_expiry(void **state)
{
	struct h_peer a, b;
	struct tcp_conn *ca, *cb;
	struct quote q;
	(void)state;

	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	ca = h_open_sack(&a, 43040, 1200);
	assert_int_equal(ca->mss, 1200);
	cb = h_establish(&b, 43041, true);
	assert_int_equal(cb->mss, 1448);
	assert_int_equal(tcp_write(ca, buf, 3 * 1200), 3 * 1200);
	h_flush();
	q = quote(43040, ca->snd_una);
	frag_needed(&q, 1000);
	assert_int_equal(ca->mss, 960);
	h_flush();
	ack_all(&a, ca);
	sends_within(cb, 2 * 1448, 948); /* lowered by the entry at its next send */
	ack_all(&b, cb);
	h_advance_ms(600000 - 1);
	sends_within(ca, 1200, 960); /* the entry lives: still lowered */
	ack_all(&a, ca);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_RAISED], 0);
	h_advance_ms(2);
	sends_within(ca, 3 * 1200, 1200);
	assert_int_equal(ca->mss, 1200);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_EXPIRED], 1);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_RAISED], 1);
	sends_within(cb, 2 * 1448, 1448);
	assert_int_equal(cb->mss, 1448);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_RAISED], 2);

	/* a full table: the flow alone is lowered, and stays so */
	for (uint32_t i = 0; i < 16; i++)
		assert_int_equal(pmtu_learn(&h_lc, H_PEER_IP + ((i + 1) << 24), 1200), 0);
	q = quote(43040, ca->snd_una);
	frag_needed(&q, 1000);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_CACHE_FULL], 1);
	assert_int_equal(ca->mss, 960);
	h_flush();
	ack_all(&a, ca);
	h_advance_ms(600000 + 1);
	sends_within(ca, 1200, 960);
	assert_int_equal(h_lc.cnt.v[DPC_pmtu_RAISED], 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_malformed_quotes_ignored, teardown),
		cmocka_unit_test_teardown(test_pmtu_refusals, teardown),
		cmocka_unit_test_teardown(test_pmtu_with_timestamps, teardown),
		cmocka_unit_test_teardown(test_pmtu_every_flow_to_destination, teardown),
		cmocka_unit_test_teardown(test_pmtu_refused_learns_nothing, teardown),
		cmocka_unit_test_teardown(test_pmtu_from_another_lcore, teardown),
		cmocka_unit_test_teardown(test_pmtu_expiry, teardown),
		cmocka_unit_test_teardown(test_pmtu_raised_at_expiry, teardown),
	};

	if (h_eal_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
