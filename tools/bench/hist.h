/*
 * hist.h - a log-linear latency histogram in the manner of HdrHistogram.
 *
 * Values (nanoseconds, or any unsigned 64-bit unit) below 256 get one bucket each;
 * above that, every power of two is split into 128 linear sub-buckets, so any value is
 * kept within 1/128 (0.8 %) of itself whatever its magnitude, in a fixed array of
 * counters: recording is O(1), no samples are stored, and histograms merge by adding
 * counters. Values past the top (2^44, about 4.9 hours in ns) count in the last bucket;
 * min, max, count and sum are kept exactly.
 *
 * A histogram is plain memory owned by its caller; it is not thread-safe (give each
 * thread its own and merge them).
 */
#ifndef TPC_BENCH_HIST_H
#define TPC_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 8                              /* 256 sub-buckets, half per octave */
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
#define HIST_SUB_HALF (HIST_SUB_COUNT / 2)
#define HIST_TOP_BIT 44                              /* values >= 2^44 share the last bucket */
#define HIST_BUCKETS (HIST_SUB_COUNT + (HIST_TOP_BIT - HIST_SUB_BITS) * HIST_SUB_HALF)

struct hist {
	uint64_t counts[HIST_BUCKETS];
	uint64_t count, sum, min, max;
};

/** @brief Empty @p h. */
void hist_init(struct hist *h);

/** @brief Count one value. */
void hist_record(struct hist *h, uint64_t v);

/** @brief Add every count of @p from into @p into. */
void hist_merge(struct hist *into, const struct hist *from);

/**
 * @brief The value at percentile @p pct (0..100]: the highest value equivalent to the
 *        bucket holding the ceil(pct% * count)-th smallest sample, capped at the exact max.
 * @return 0 for an empty histogram.
 */
uint64_t hist_percentile(const struct hist *h, double pct);

/** @brief The exact mean, or 0 when empty. */
double hist_mean(const struct hist *h);

/** @brief The bucket index of @p v, and the lowest and highest values of a bucket. */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_low(unsigned idx);
uint64_t hist_bucket_high(unsigned idx);

#endif
