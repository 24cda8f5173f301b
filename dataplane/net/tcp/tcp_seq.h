/*
 * tcp_seq.h: TCP sequence number arithmetic, modulo 2^32 (RFC 793 section 3.3).
 * Comparisons take the signed 32-bit difference, so they stay right across wrap-around as
 * long as the two numbers are less than 2^31 apart, which windows (at most 2^30) guarantee.
 * The same rule serves RFC 7323 timestamps and the stack's millisecond clock.
 */
#ifndef EDGEGW_TCP_SEQ_H
#define EDGEGW_TCP_SEQ_H

#include <stdint.h>

#define SEQ_LT(a, b)  ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b)  ((int32_t)((uint32_t)(a) - (uint32_t)(b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) >= 0)

/* a <= x < b, modulo 2^32 (an empty range when a == b) */
#define SEQ_IN_RANGE(x, a, b) (SEQ_LEQ((a), (x)) && SEQ_LT((x), (b)))

static inline uint32_t
seq_max(uint32_t a, uint32_t b)
{
	return SEQ_GT(a, b) ? a : b;
}

static inline uint32_t
seq_min(uint32_t a, uint32_t b)
{
	return SEQ_LT(a, b) ? a : b;
}

#endif
