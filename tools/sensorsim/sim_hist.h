/*
 * sim_hist.h: log-linear latency histogram (HdrHistogram-like) for the sensor simulator.
 * Values are unsigned 64-bit (nanoseconds here). Below 128 each value has its own bucket; above,
 * every power of two is cut into 64 buckets, so a reported value is within 1/64 (1.6%) of the
 * recorded one. Fixed size (no allocation), one per worker thread, merged for the report.
 */
#ifndef EDGEGW_SIM_HIST_H
#define EDGEGW_SIM_HIST_H

#include <stdint.h>

#define SIM_HIST_SUB       128u /* exact values below this */
#define SIM_HIST_HALF      64u  /* buckets per power of two above it */
#define SIM_HIST_MAX_SHIFT 40u  /* top: (128 << 40) ns, about 39 hours */
#define SIM_HIST_BUCKETS   (SIM_HIST_SUB + SIM_HIST_MAX_SHIFT * SIM_HIST_HALF)

struct sim_hist {
	uint64_t count;
	uint64_t min, max; /* exact */
	uint64_t overflow; /* values beyond the top bucket (counted in the top one too) */
	uint64_t bucket[SIM_HIST_BUCKETS];
};

void sim_hist_init(struct sim_hist *h);
void sim_hist_record(struct sim_hist *h, uint64_t v);
void sim_hist_merge(struct sim_hist *dst, const struct sim_hist *src);
/* Value at quantile q (0..1): the upper edge of the bucket holding it, capped at max. 0 if empty. */
uint64_t sim_hist_quantile(const struct sim_hist *h, double q);
/* Bucket index of v and the highest value that bucket holds (exposed for tests). */
uint32_t sim_hist_index(uint64_t v);
uint64_t sim_hist_bucket_high(uint32_t idx);

#endif
