/*
 * hist.c - the log-linear histogram of hist.h.
 *
 * Layout: indexes 0..255 hold the values 0..255 exactly. Past that, a value v whose
 * highest set bit is b (b >= 8) is shifted right by s = b - 7, leaving a mantissa m in
 * [128, 255]; its index is 256 + (s - 1) * 128 + (m - 128). A bucket therefore spans
 * [m << s, ((m + 1) << s) - 1]: the width is at most 1/128 of the values it holds.
 */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB_COUNT)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	if (msb >= HIST_TOP_BIT)
		return HIST_BUCKETS - 1;
	unsigned shift = msb - (HIST_SUB_BITS - 1);
	unsigned mant = (unsigned)(v >> shift);
	return HIST_SUB_COUNT + (shift - 1) * HIST_SUB_HALF + (mant - HIST_SUB_HALF);
}

uint64_t hist_bucket_low(unsigned idx)
{
	if (idx < HIST_SUB_COUNT)
		return idx;
	unsigned k = idx - HIST_SUB_COUNT;
	unsigned shift = k / HIST_SUB_HALF + 1;
	uint64_t mant = k % HIST_SUB_HALF + HIST_SUB_HALF;
	return mant << shift;
}

uint64_t hist_bucket_high(unsigned idx)
{
	if (idx < HIST_SUB_COUNT)
		return idx;
	if (idx >= HIST_BUCKETS - 1)
		return UINT64_MAX;
	unsigned k = idx - HIST_SUB_COUNT;
	unsigned shift = k / HIST_SUB_HALF + 1;
	uint64_t mant = k % HIST_SUB_HALF + HIST_SUB_HALF;
	return ((mant + 1) << shift) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
	h->counts[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->counts[i] += from->counts[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t hist_percentile(const struct hist *h, double pct)
{
	if (!h->count)
		return 0;
	if (pct > 100.0)
		pct = 100.0;
	double want = pct / 100.0 * (double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want || rank == 0)
		rank++;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t hi = hist_bucket_high(i);
			return hi < h->max ? hi : h->max;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
