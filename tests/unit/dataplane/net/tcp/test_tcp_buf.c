/*
 * test_tcp_buf: the send queue's byte copies (tcp_mq_copy_out) against a flat copy of what
 * was queued, at many offsets, between appends (chains, tiny payloads copied into the tail's
 * room, tcp_mq_write) and drops from the front (whole mbufs, part of one, all of it): the
 * read cursor that spares the walk from the head must never return other bytes than the
 * walk would (issue 16, cost per segment).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <rte_mbuf.h>

#include "tcp_harness.h"
#include "tcp_types.h"

#define REF_MAX (1u << 20)

static uint8_t ref[REF_MAX]; /* the queue's bytes, ref[ref_head..ref_tail) */
static uint32_t ref_head, ref_tail;
static uint8_t next_byte = 1;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void
fill(uint8_t *p, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		p[i] = next_byte;
		ref[ref_tail++] = next_byte;
		next_byte = (uint8_t)(next_byte * 7 + 13);
	}
}

/* A chain of 1-3 mbufs of random sizes (some tiny, which go into the tail's room). */
static void
append_chain(struct tcp_lcore *tl, struct tcp_mq *q)
{
	struct rte_mbuf *m = NULL, *last = NULL;
	unsigned n = 1 + rnd(3);

	for (unsigned i = 0; i < n; i++) {
		struct rte_mbuf *s = rte_pktmbuf_alloc(h_lc.pool);
		uint32_t len = rnd(4) == 0 ? 1 + rnd(16) : 1 + rnd(1800);

		assert_non_null(s);
		fill((uint8_t *)rte_pktmbuf_append(s, (uint16_t)len), len);
		if (m == NULL) {
			m = s;
		} else {
			last->next = s;
			m->nb_segs++;
			m->pkt_len += len;
		}
		last = s;
	}
	tcp_mq_append(tl, q, TCP_Q_SND, m);
}

static void
write_flat(struct tcp_lcore *tl, struct tcp_mq *q)
{
	static uint8_t buf[6000];
	uint32_t len = 1 + rnd(sizeof(buf));
	uint32_t tail0 = ref_tail;

	fill(buf, len);
	assert_int_equal(tcp_mq_write(tl, q, TCP_Q_SND, buf, len), len);
	assert_int_equal(ref_tail - tail0, len);
}

static void
check_at(struct tcp_lcore *tl, struct tcp_mq *q, uint32_t off, uint32_t len)
{
	static uint8_t out[4096];

	assert_int_equal(q->bytes, ref_tail - ref_head);
	memset(out, 0, len);
	assert_int_equal(tcp_mq_copy_out(tl, q, off, len, out), 0);
	assert_memory_equal(out, ref + ref_head + off, len);
}

static void
drop(struct tcp_lcore *tl, struct tcp_mq *q, uint32_t n)
{
	tcp_mq_drop_front(tl, q, TCP_Q_SND, n);
	ref_head += n;
}

/* As a sender: segments from where the last one ended, then some from the front. */
static void
send_round(struct tcp_lcore *tl, struct tcp_mq *q, uint32_t *sent)
{
	uint32_t bytes = ref_tail - ref_head;

	while (*sent < bytes) {
		uint32_t len = RTE_MIN(1 + rnd(1460), bytes - *sent);

		check_at(tl, q, *sent, len);
		*sent += len;
	}
	for (unsigned k = 0; k < 8 && bytes > 0; k++) { /* retransmissions, SACK holes */
		uint32_t off = rnd(bytes);

		check_at(tl, q, off, RTE_MIN(1 + rnd(1460), bytes - off));
	}
}

static void
test_copy_out_after_drops_and_appends(void **state)
{
	struct tcp_config cfg;
	struct tcp_mq q;
	struct tcp_lcore *tl;
	uint32_t sent = 0;
	uint8_t out[8];

	(void)state;
	tcp_config_defaults(&cfg);
	h_setup(&cfg);
	tl = h_lc.tcp;
	memset(&q, 0, sizeof(q));
	for (unsigned round = 0; round < 3000; round++) {
		uint32_t bytes, n;

		switch (rnd(3)) {
		case 0:
			append_chain(tl, &q);
			break;
		case 1:
			write_flat(tl, &q);
			break;
		default:
			break;
		}
		if (ref_tail - ref_head > 200000)
			drop(tl, &q, ref_tail - ref_head); /* everything acknowledged */
		send_round(tl, &q, &sent);
		bytes = ref_tail - ref_head;
		switch (rnd(4)) {
		case 0: /* the front mbuf whole: the next one becomes the head */
			n = q.head != NULL ? RTE_MIN((uint32_t)q.head->data_len, bytes) : 0;
			break;
		case 1: /* part of what was sent */
			n = rnd(bytes + 1);
			break;
		case 2: /* everything sent */
			n = bytes;
			break;
		default:
			n = 0;
			break;
		}
		drop(tl, &q, n);
		sent = sent > n ? sent - n : 0;
		/* sometimes the front right after a drop (go-back-N after an RTO); else the next
		 * copy continues from the cursor as it was left before the drop */
		if (q.bytes > 0 && rnd(4) == 0)
			check_at(tl, &q, 0, RTE_MIN(q.bytes, 100u));
		if (ref_head > REF_MAX / 2) { /* keep the reference in its buffer */
			memmove(ref, ref + ref_head, ref_tail - ref_head);
			ref_tail -= ref_head;
			ref_head = 0;
		}
	}
	assert_int_equal(tcp_mq_copy_out(tl, &q, q.bytes, 1, out), -1);
	tcp_mq_free(tl, &q, TCP_Q_SND);
	assert_int_equal(tcp_mq_copy_out(tl, &q, 0, 1, out), -1);
	h_teardown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_out_after_drops_and_appends),
	};

	if (h_eal_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
