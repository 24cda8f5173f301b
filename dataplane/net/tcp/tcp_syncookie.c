/*
 * tcp_syncookie.c: SYN cookies, used once the lcore holds max_half_open half-open flows (or
 * no TCB is free): the SYN-ACK's ISS carries the state, and no TCB exists until a valid ACK
 * comes back. Layout of the 32-bit cookie:
 *   bits 31..27  time slot (now_ms >> 16, about 65 s) modulo 32
 *   bits 26..24  index of the MSS in mss_table (largest entry <= the peer's MSS)
 *   bits 23..0   jhash of (secret[4], 4-tuple, peer ISN, full slot, MSS index)
 * A cookie is valid in its slot and the next (65 to 131 s). The secret comes from rte_rand()
 * per lcore at init. jhash is not a cryptographic MAC: 24 bits against a blind attacker who
 * must also guess the secret; good enough to keep a SYN flood from costing memory.
 * A cookie connection has no window scaling and no timestamps (the cookie has no room).
 */
#include <rte_jhash.h>

#include "dp.h"
#include "tcp_types.h"

#define COOKIE_SLOT_SHIFT 16
#define COOKIE_HASH_MASK  0xffffffu

/* From the smallest MSS we send at all (a peer that said 100 gets no more than 64 bytes per
 * segment, never the 216 a smallest entry of 216 would give it) to Ethernet's. */
static const uint16_t mss_table[8] = { 64, 216, 536, 1024, 1200, 1360, 1440, 1460 };

static uint32_t
cookie_hash(const struct tcp_lcore *tl, const struct tcp_seg *s, uint32_t peer_isn, uint32_t slot,
    uint32_t mss_idx)
{
	uint32_t w[10] = {
		tl->cookie_secret[0],
		tl->cookie_secret[1],
		tl->cookie_secret[2],
		tl->cookie_secret[3],
		s->key.rip,
		s->key.lip,
		(uint32_t)s->key.rport << 16 | s->key.lport,
		peer_isn,
		slot,
		mss_idx,
	};

	return rte_jhash_32b(w, RTE_DIM(w), tl->cookie_secret[0] ^ slot) & COOKIE_HASH_MASK;
}

/* The ISS for a SYN (s->seq is the peer's ISN); *mss gets the MSS the cookie encodes. */
uint32_t
tcp_cookie_make(struct tcp_lcore *tl, const struct tcp_seg *s, uint16_t *mss)
{
	uint32_t slot = tl->now_ms >> COOKIE_SLOT_SHIFT;
	uint16_t peer = s->opt.has_mss ? s->opt.mss : 536;
	uint32_t idx = 0, i;

	for (i = 0; i < RTE_DIM(mss_table); i++)
		if (mss_table[i] <= peer)
			idx = i;
	*mss = mss_table[idx];
	tl->cookie_used = true;
	tl->cookie_last_ms = tl->now_ms;
	return (slot & 31) << 27 | idx << 24 | cookie_hash(tl, s, s->seq, slot, idx);
}

/* An ACK (s->ack = cookie + 1, s->seq = peer ISN + 1): 0 and *mss if it is ours and fresh. */
int
tcp_cookie_check(struct tcp_lcore *tl, const struct tcp_seg *s, uint16_t *mss)
{
	uint32_t cookie = s->ack - 1;
	uint32_t now_slot = tl->now_ms >> COOKIE_SLOT_SHIFT;
	uint32_t age = (now_slot - (cookie >> 27)) & 31;
	uint32_t idx = (cookie >> 24) & 7;

	if (age > 1)
		return -1;
	if (cookie_hash(tl, s, s->seq - 1, now_slot - age, idx) != (cookie & COOKIE_HASH_MASK))
		return -1;
	*mss = RTE_MIN(mss_table[idx], tl->cfg.mss);
	return 0;
}
