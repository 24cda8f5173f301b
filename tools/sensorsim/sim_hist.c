/*
 * sim_hist.c: log-linear histogram, see sim_hist.h. Index math: for v >= 128 with its highest set
 * bit at e, shift = e - 6 keeps the top 7 bits (64..127), which pick one of 64 buckets in the
 * power of two (v >> shift) belongs to.
 */
#include <string.h>

#include "sim_hist.h"

void
sim_hist_init(struct sim_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint32_t
sim_hist_index(uint64_t v)
{
	uint32_t e, shift;

	if (v < SIM_HIST_SUB)
		return (uint32_t)v;
	e = 63u - (uint32_t)__builtin_clzll(v);
	shift = e - 6u;
	if (shift > SIM_HIST_MAX_SHIFT)
		return SIM_HIST_BUCKETS - 1;
	return SIM_HIST_SUB + (shift - 1u) * SIM_HIST_HALF +
	    (uint32_t)((v >> shift) - SIM_HIST_HALF);
}

uint64_t
sim_hist_bucket_high(uint32_t idx)
{
	uint32_t k, shift;
	uint64_t top;

	if (idx < SIM_HIST_SUB)
		return idx;
	k = idx - SIM_HIST_SUB;
	shift = k / SIM_HIST_HALF + 1u;
	top = k % SIM_HIST_HALF + SIM_HIST_HALF;
	return ((top + 1u) << shift) - 1u;
}

void
sim_hist_record(struct sim_hist *h, uint64_t v)
{
	uint32_t idx = sim_hist_index(v);

	if (idx == SIM_HIST_BUCKETS - 1 && v > sim_hist_bucket_high(idx))
		h->overflow++;
	h->bucket[idx]++;
	h->count++;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void
sim_hist_merge(struct sim_hist *dst, const struct sim_hist *src)
{
	for (uint32_t i = 0; i < SIM_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->overflow += src->overflow;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
sim_hist_quantile(const struct sim_hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->count == 0)
		return 0;
	if (q <= 0)
		return h->min;
	want = (uint64_t)(q * (double)h->count + 0.999999);
	if (want == 0)
		want = 1;
	if (want > h->count)
		want = h->count;
	for (uint32_t i = 0; i < SIM_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want) {
			uint64_t hi = sim_hist_bucket_high(i);

			return hi < h->max ? hi : h->max;
		}
	}
	return h->max;
}
