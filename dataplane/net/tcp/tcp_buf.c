/*
 * tcp_buf.c: the byte queues of a connection, kept as mbuf chains so memory follows the data
 * in flight, not the number of connections: the send queue (from SND.UNA), the receive queue
 * (in order, not yet taken by the app) and the bounded out-of-order list (separate packets,
 * sorted by sequence, linked through an mbuf dynamic field, merged when the hole fills).
 * Small payloads are copied into the tail mbuf's free room, so a peer sending one byte per
 * segment holds one mbuf per ~2 KiB, not one per byte. tcp_mq_copy_out (every segment sent)
 * starts from a read cursor, not from the head, so a long send queue is not walked from its
 * start for every segment: the cursor lives in the head mbuf's dynamic field (the one the
 * out-of-order list links by, free on queued data), so the TCB does not grow.
 */
#include <string.h>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "dp.h"
#include "tcp_seq.h"
#include "tcp_types.h"

struct ooo_meta {
	struct rte_mbuf *next;
	uint32_t seq;
	uint32_t stamp; /* arrival order (tl->ooo_stamp): the SACK blocks go newest first */
};

static inline struct ooo_meta *
ooo_meta(const struct tcp_conn *c, struct rte_mbuf *m)
{
	return RTE_MBUF_DYNFIELD(m, tcb_tl(c)->ooo_dynoff, struct ooo_meta *);
}

/*
 * A queue's read cursor, in the same dynamic field of its head mbuf (valid while that mbuf is
 * the head): cur is an mbuf of the queue (NULL: none) whose first byte is cur_off bytes from
 * the queue's front. Appends leave it valid; drops from the front move it or clear it.
 */
struct mq_cursor {
	struct rte_mbuf *cur;
	uint32_t cur_off;
	uint32_t unused;
};
_Static_assert(sizeof(struct mq_cursor) == sizeof(struct ooo_meta), "one dynamic field");

static inline struct mq_cursor *
mq_cursor(const struct tcp_lcore *tl, const struct tcp_mq *q)
{
	return RTE_MBUF_DYNFIELD(q->head, tl->ooo_dynoff, struct mq_cursor *);
}

/* The queue's head changed from old_head (or it was empty): carry the cursor over, less the
 * dropped bytes, or clear it when its mbuf went. */
static void
mq_cursor_moved(
    const struct tcp_lcore *tl, struct tcp_mq *q, struct mq_cursor cur, uint32_t dropped)
{
	if (q->head == NULL)
		return;
	if (cur.cur != NULL)
		cur.cur_off = cur.cur_off >= dropped ? cur.cur_off - dropped : 0;
	*mq_cursor(tl, q) = cur;
}

static void
q_account(struct tcp_lcore *tl, int qi, int64_t segs, int64_t bytes)
{
	tl->q_mbufs[qi] += (uint64_t)segs;
	tl->q_bytes[qi] += (uint64_t)bytes;
}

/* Free the leading n bytes of a packet chain (n < pkt_len); returns the new head. */
struct rte_mbuf *
tcp_pkt_adj(struct rte_mbuf *m, uint32_t n)
{
	struct rte_mbuf *s;

	while (m != NULL && n >= m->data_len) {
		struct rte_mbuf *next = m->next;

		n -= m->data_len;
		m->next = NULL;
		m->nb_segs = 1;
		rte_pktmbuf_free_seg(m);
		m = next;
	}
	if (m == NULL)
		return NULL;
	m->data_off += n;
	m->data_len -= n;
	m->pkt_len = 0;
	m->nb_segs = 0;
	for (s = m; s != NULL; s = s->next) {
		m->pkt_len += s->data_len;
		m->nb_segs++;
	}
	return m;
}

/* Keep the first keep bytes of a packet chain (keep > 0), freeing the rest. */
void
tcp_pkt_keep(struct rte_mbuf *m, uint32_t keep)
{
	struct rte_mbuf *s = m;
	uint16_t segs = 1;

	while (keep > s->data_len) {
		keep -= s->data_len;
		s = s->next;
		segs++;
	}
	s->data_len = (uint16_t)keep;
	if (s->next != NULL) {
		rte_pktmbuf_free(s->next);
		s->next = NULL;
	}
	m->nb_segs = segs;
	m->pkt_len = 0;
	for (s = m; s != NULL; s = s->next)
		m->pkt_len += s->data_len;
}

static bool
tail_writable(const struct rte_mbuf *t)
{
	return t != NULL && RTE_MBUF_DIRECT(t) && rte_mbuf_refcnt_read(t) == 1;
}

/* Copy a packet chain's bytes to dst. */
static void
pkt_copy(const struct rte_mbuf *m, uint8_t *dst)
{
	for (; m != NULL; m = m->next) {
		memcpy(dst, rte_pktmbuf_mtod(m, const uint8_t *), m->data_len);
		dst += m->data_len;
	}
}

/* Append a packet chain (ownership passes); tiny payloads are copied into the tail's room. */
void
tcp_mq_append(struct tcp_lcore *tl, struct tcp_mq *q, int qi, struct rte_mbuf *m)
{
	uint32_t len = m->pkt_len;
	struct rte_mbuf *s, *next;
	bool was_empty = q->head == NULL;

	if (len == 0) {
		rte_pktmbuf_free(m);
		return;
	}
	if (tail_writable(q->tail) && rte_pktmbuf_tailroom(q->tail) >= len) {
		pkt_copy(m, rte_pktmbuf_mtod_offset(q->tail, uint8_t *, q->tail->data_len));
		q->tail->data_len += (uint16_t)len;
		q->bytes += len;
		q_account(tl, qi, 0, len);
		rte_pktmbuf_free(m);
		return;
	}
	for (s = m; s != NULL; s = next) {
		next = s->next;
		s->next = NULL;
		s->nb_segs = 1;
		if (s->data_len == 0) {
			rte_pktmbuf_free_seg(s);
			continue;
		}
		if (q->tail == NULL)
			q->head = s;
		else
			q->tail->next = s;
		q->tail = s;
		q->nsegs++;
		q_account(tl, qi, 1, 0);
	}
	if (was_empty)
		mq_cursor_moved(tl, q, (struct mq_cursor){ 0 }, 0);
	q->bytes += len;
	q_account(tl, qi, 0, len);
}

/* Drop n bytes from the front of the queue (acknowledged data). */
void
tcp_mq_drop_front(struct tcp_lcore *tl, struct tcp_mq *q, int qi, uint32_t n)
{
	struct rte_mbuf *old_head = q->head;
	struct mq_cursor cur = { 0 };
	uint32_t dropped;

	if (n > q->bytes)
		n = q->bytes;
	if (n == 0)
		return;
	cur = *mq_cursor(tl, q);
	dropped = n;
	q->bytes -= n;
	q_account(tl, qi, 0, -(int64_t)n);
	while (n > 0) {
		struct rte_mbuf *s = q->head;

		if (s->data_len > n) {
			s->data_off += n;
			s->data_len -= n;
			break;
		}
		n -= s->data_len;
		q->head = s->next;
		if (s == cur.cur)
			cur.cur = NULL;
		s->next = NULL;
		s->nb_segs = 1;
		rte_pktmbuf_free_seg(s);
		q->nsegs--;
		q_account(tl, qi, -1, 0);
	}
	/* empty segments left at the head (n hit a boundary) go too */
	while (q->head != NULL && q->head->data_len == 0 && q->head != q->tail) {
		struct rte_mbuf *s = q->head;

		q->head = s->next;
		if (s == cur.cur)
			cur.cur = NULL;
		s->next = NULL;
		rte_pktmbuf_free_seg(s);
		q->nsegs--;
		q_account(tl, qi, -1, 0);
	}
	if (q->head == NULL)
		q->tail = NULL;
	else if (q->head != old_head || cur.cur != NULL)
		mq_cursor_moved(tl, q, cur, dropped);
}

void
tcp_mq_free(struct tcp_lcore *tl, struct tcp_mq *q, int qi)
{
	struct rte_mbuf *s = q->head, *next;

	for (; s != NULL; s = next) {
		next = s->next;
		s->next = NULL;
		s->nb_segs = 1;
		rte_pktmbuf_free_seg(s);
	}
	q_account(tl, qi, -(int64_t)q->nsegs, -(int64_t)q->bytes);
	memset(q, 0, sizeof(*q));
}

/* Detach up to max bytes from the front as a packet chain for the app. Whole segments when
 * they fit; a first segment larger than max is split by copying (one mbuf). */
struct rte_mbuf *
tcp_mq_take(struct tcp_lcore *tl, struct tcp_mq *q, int qi, uint32_t max)
{
	struct rte_mbuf *head = q->head, *last = NULL, *s;
	uint32_t total = 0;
	uint16_t segs = 0;

	if (head == NULL || max == 0)
		return NULL;
	if (head->data_len > max) {
		struct rte_mbuf *m = dp_alloc(tl->lc);

		if (m == NULL || rte_pktmbuf_tailroom(m) < max) {
			rte_pktmbuf_free(m);
			DP_INC(tl->lc, tcp, MBUF_FAIL);
			return NULL;
		}
		memcpy(rte_pktmbuf_append(m, (uint16_t)max), rte_pktmbuf_mtod(head, void *), max);
		tcp_mq_drop_front(tl, q, qi, max);
		return m;
	}
	for (s = head; s != NULL && total + s->data_len <= max && segs < UINT16_MAX; s = s->next) {
		total += s->data_len;
		segs++;
		last = s;
	}
	q->head = last->next;
	last->next = NULL;
	if (q->head == NULL)
		q->tail = NULL;
	mq_cursor_moved(tl, q, (struct mq_cursor){ 0 }, 0);
	q->bytes -= total;
	q->nsegs -= segs;
	q_account(tl, qi, -(int64_t)segs, -(int64_t)total);
	head->pkt_len = total;
	head->nb_segs = segs;
	return head;
}

/*
 * Copy len bytes starting off bytes into the queue; -1 if the queue is shorter. The walk
 * starts at the read cursor when it lies at or before off (a send continues where the last
 * one ended), else at the head (a retransmission from the front); the cursor is left on the
 * mbuf holding the last byte copied.
 */
int
tcp_mq_copy_out(
    const struct tcp_lcore *tl, struct tcp_mq *q, uint32_t off, uint32_t len, uint8_t *dst)
{
	struct rte_mbuf *s = q->head;
	struct mq_cursor *cur;
	uint32_t base = 0; /* offset of s's first byte in the queue */

	if ((uint64_t)off + len > q->bytes)
		return -1;
	if (len == 0)
		return 0;
	cur = mq_cursor(tl, q);
	if (cur->cur != NULL && cur->cur_off <= off) {
		s = cur->cur;
		base = cur->cur_off;
	}
	while (s != NULL && off - base >= s->data_len) {
		base += s->data_len;
		s = s->next;
	}
	off -= base;
	while (s != NULL) {
		uint32_t n = RTE_MIN(len, (uint32_t)s->data_len - off);

		memcpy(dst, rte_pktmbuf_mtod_offset(s, const uint8_t *, off), n);
		dst += n;
		len -= n;
		if (len == 0)
			break;
		off = 0;
		base += s->data_len;
		s = s->next;
	}
	if (s == NULL)
		return -1; /* the chain is shorter than its count (a bug): say so */
	cur->cur = s;
	cur->cur_off = base;
	return 0;
}

/* Copy a flat buffer onto the queue: the tail's room first, then fresh mbufs. */
uint32_t
tcp_mq_write(struct tcp_lcore *tl, struct tcp_mq *q, int qi, const uint8_t *buf, uint32_t len)
{
	uint32_t done = 0;

	while (done < len) {
		struct rte_mbuf *t = q->tail;
		uint32_t room, n;

		if (!tail_writable(t) || rte_pktmbuf_tailroom(t) == 0) {
			t = dp_alloc(tl->lc);
			if (t == NULL) {
				DP_INC(tl->lc, tcp, MBUF_FAIL);
				break;
			}
			t->next = NULL;
			if (q->tail == NULL) {
				q->head = t;
				mq_cursor_moved(tl, q, (struct mq_cursor){ 0 }, 0);
			} else {
				q->tail->next = t;
			}
			q->tail = t;
			q->nsegs++;
			q_account(tl, qi, 1, 0);
		}
		room = rte_pktmbuf_tailroom(t);
		n = RTE_MIN(room, len - done);
		memcpy(rte_pktmbuf_mtod_offset(t, uint8_t *, t->data_len), buf + done, n);
		t->data_len += (uint16_t)n;
		done += n;
	}
	q->bytes += done;
	q_account(tl, qi, 0, done);
	return done;
}

static void
ooo_unlink_account(struct tcp_conn *c, struct rte_mbuf *m)
{
	c->ooo_n--;
	q_account(tcb_tl(c), TCP_Q_OOO, -(int64_t)m->nb_segs, -(int64_t)m->pkt_len);
}

/* Append m's bytes to the held segment just before it, if its last mbuf has the room. */
static bool
ooo_merge(struct tcp_conn *c, struct rte_mbuf *prev, struct rte_mbuf *m)
{
	struct rte_mbuf *last = rte_pktmbuf_lastseg(prev);
	uint32_t len = m->pkt_len;

	if (!tail_writable(last) || rte_pktmbuf_tailroom(last) < len)
		return false;
	pkt_copy(m, rte_pktmbuf_mtod_offset(last, uint8_t *, last->data_len));
	last->data_len += (uint16_t)len;
	prev->pkt_len += len;
	ooo_meta(c, prev)->stamp = ++tcb_tl(c)->ooo_stamp;
	q_account(tcb_tl(c), TCP_Q_OOO, 0, len);
	DP_INC(tcb_tl(c)->lc, tcp, OOO_SEGS);
	rte_pktmbuf_free(m);
	return true;
}

void
tcp_dsack_note(struct tcp_conn *c, uint32_t l, uint32_t r)
{
	struct tcp_lcore *tl = tcb_tl(c);
	uint32_t ref = tcb_ref(tl, c);

	if (!(c->flags & TF_SACK_OK) || !SEQ_LT(l, r))
		return;
	tl->dsack[ref % TCP_DSACK_SLOTS].ref = ref;
	tl->dsack[ref % TCP_DSACK_SLOTS].l = l;
	tl->dsack[ref % TCP_DSACK_SLOTS].r = r;
	c->dsack = 1;
}

/*
 * Keep an out-of-order segment (payload only, pkt_len > 0, seq > RCV.NXT). Overlaps with
 * segments already held are trimmed off the new one; segments it covers whole are replaced;
 * one that continues the segment before it is copied onto its end when there is room.
 */
void
tcp_ooo_insert(struct tcp_conn *c, struct rte_mbuf *m, uint32_t seq)
{
	struct rte_mbuf **pp = &c->ooo, *prev = NULL;
	uint32_t end = seq + m->pkt_len;

	while (*pp != NULL && SEQ_LEQ(ooo_meta(c, *pp)->seq, seq)) {
		prev = *pp;
		pp = &ooo_meta(c, prev)->next;
	}
	if (prev != NULL) {
		uint32_t pend = ooo_meta(c, prev)->seq + prev->pkt_len;

		if (SEQ_GEQ(pend, end))
			goto dup;
		if (SEQ_GT(pend, seq)) {
			tcp_dsack_note(c, seq, pend);
			m = tcp_pkt_adj(m, pend - seq);
			seq = pend;
		}
	}
	while (*pp != NULL && SEQ_LT(ooo_meta(c, *pp)->seq, end)) {
		struct rte_mbuf *n = *pp;
		uint32_t nseq = ooo_meta(c, n)->seq;

		if (SEQ_LEQ(nseq + n->pkt_len, end)) { /* covered whole: the new one replaces it */
			*pp = ooo_meta(c, n)->next;
			ooo_unlink_account(c, n);
			rte_pktmbuf_free(n);
			continue;
		}
		tcp_pkt_keep(m, nseq - seq);
		end = nseq;
		break;
	}
	if (prev != NULL && ooo_meta(c, prev)->seq + prev->pkt_len == seq && ooo_merge(c, prev, m))
		return;
	if (c->ooo_n >= tcb_tl(c)->ooo_max_segs ||
	    tcb_tl(c)->q_mbufs[TCP_Q_OOO] + m->nb_segs > tcb_tl(c)->ooo_mbuf_cap) {
		DP_INC(tcb_tl(c)->lc, tcp, OOO_DROP);
		rte_pktmbuf_free(m);
		return;
	}
	ooo_meta(c, m)->seq = seq;
	ooo_meta(c, m)->stamp = ++tcb_tl(c)->ooo_stamp;
	ooo_meta(c, m)->next = *pp;
	*pp = m;
	c->ooo_n++;
	q_account(tcb_tl(c), TCP_Q_OOO, m->nb_segs, m->pkt_len);
	DP_INC(tcb_tl(c)->lc, tcp, OOO_SEGS);
	return;
dup:
	/* held already: its block is still the one this segment's ACK reports first, after
	 * the D-SACK block (RFC 2883 4: then the block that holds the duplicate) */
	ooo_meta(c, prev)->stamp = ++tcb_tl(c)->ooo_stamp;
	tcp_dsack_note(c, seq, end);
	DP_INC(tcb_tl(c)->lc, tcp, DUP_SEGS);
	rte_pktmbuf_free(m);
}

/* RCV.NXT advanced: move the segments it reached onto the receive queue. */
void
tcp_ooo_drain(struct tcp_conn *c)
{
	struct rte_mbuf *m;

	while ((m = c->ooo) != NULL) {
		uint32_t seq = ooo_meta(c, m)->seq;

		if (SEQ_GT(seq, c->rcv_nxt))
			break;
		c->ooo = ooo_meta(c, m)->next;
		ooo_unlink_account(c, m);
		if (SEQ_LEQ(seq + m->pkt_len, c->rcv_nxt)) {
			rte_pktmbuf_free(m);
			continue;
		}
		if (seq != c->rcv_nxt)
			m = tcp_pkt_adj(m, c->rcv_nxt - seq);
		c->rcv_nxt += m->pkt_len;
		tcp_mq_append(tcb_tl(c), &c->rcvq, TCP_Q_RCV, m);
	}
}

void
tcp_ooo_free(struct tcp_conn *c)
{
	struct rte_mbuf *m;

	while ((m = c->ooo) != NULL) {
		c->ooo = ooo_meta(c, m)->next;
		ooo_unlink_account(c, m);
		rte_pktmbuf_free(m);
	}
}

/* Keep blk/stamp sorted by stamp, newest first, at most max entries. */
static unsigned
sack_keep(uint32_t (*blk)[2], uint32_t *stamp, unsigned n, unsigned max, uint32_t l, uint32_t r,
    uint32_t st)
{
	unsigned i = n < max ? n : max - 1;

	if (n == max && (int32_t)(st - stamp[max - 1]) <= 0)
		return n; /* older than every block kept */
	while (i > 0 && (int32_t)(st - stamp[i - 1]) > 0) {
		blk[i][0] = blk[i - 1][0];
		blk[i][1] = blk[i - 1][1];
		stamp[i] = stamp[i - 1];
		i--;
	}
	blk[i][0] = l;
	blk[i][1] = r;
	stamp[i] = st;
	return n < max ? n + 1 : n;
}

/*
 * The held ranges as SACK blocks [left, right), adjacent segments joined, the block with the
 * most recently received segment first and the others by recency (RFC 2018 section 4: with
 * more holes than blocks, the newest data is always reported).
 */
unsigned
tcp_ooo_sack_blocks(const struct tcp_conn *c, uint32_t (*blk)[2], unsigned max)
{
	uint32_t stamp[4], l = 0, r = 0, st = 0;
	unsigned n = 0;
	bool open = false;

	max = RTE_MIN(max, 4u);
	if (max == 0)
		return 0;
	for (struct rte_mbuf *m = c->ooo; m != NULL; m = ooo_meta(c, m)->next) {
		const struct ooo_meta *om = ooo_meta(c, m);

		if (open && r == om->seq) {
			r += m->pkt_len;
			if ((int32_t)(om->stamp - st) > 0)
				st = om->stamp;
			continue;
		}
		if (open)
			n = sack_keep(blk, stamp, n, max, l, r, st);
		l = om->seq;
		r = om->seq + m->pkt_len;
		st = om->stamp;
		open = true;
	}
	if (open)
		n = sack_keep(blk, stamp, n, max, l, r, st);
	return n;
}

uint32_t
tcp_ooo_bytes(const struct tcp_conn *c)
{
	uint32_t n = 0;

	for (struct rte_mbuf *m = c->ooo; m != NULL; m = ooo_meta(c, m)->next)
		n += m->pkt_len;
	return n;
}
