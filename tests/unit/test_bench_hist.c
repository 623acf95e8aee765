/*
 * test_bench_hist.c - tpc-bench's log-linear latency histogram (tools/bench/hist.c):
 * bucket boundaries are contiguous and tight, percentiles land within the stated
 * precision, the exact min/max/mean survive, merging equals recording everything once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hist.h"

static struct hist *new_hist(void)
{
	struct hist *h = malloc(sizeof(*h));
	assert_non_null(h);
	hist_init(h);
	return h;
}

static void test_hist_buckets_are_contiguous_and_within_one_128th(void **state)
{
	for (unsigned i = 0; i + 1 < HIST_BUCKETS; i++) {
		uint64_t lo = hist_bucket_low(i), hi = hist_bucket_high(i);
		assert_true(lo <= hi);
		assert_int_equal(hist_bucket_low(i + 1), hi + 1);
		assert_int_equal(hist_index(lo), i);
		assert_int_equal(hist_index(hi), i);
		if (lo >= HIST_SUB_COUNT)
			assert_true((hi - lo + 1) * 128 <= lo);
	}
	assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
}

static void test_hist_small_values_are_exact(void **state)
{
	struct hist *h = new_hist();

	for (uint64_t v = 1; v <= 100; v++)
		hist_record(h, v);
	assert_int_equal(hist_percentile(h, 50), 50);
	assert_int_equal(hist_percentile(h, 99), 99);
	assert_int_equal(hist_percentile(h, 100), 100);
	assert_int_equal(h->min, 1);
	free(h);
}

static void test_hist_percentiles_within_precision_on_a_wide_range(void **state)
{
	struct hist *h = new_hist();

	for (uint64_t v = 1; v <= 1000000; v++)
		hist_record(h, v * 1000); /* 1 us .. 1 s in ns */
	const double pcts[] = { 50, 90, 99, 99.9 };
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		double want = pcts[i] / 100.0 * 1e9;
		double got = (double)hist_percentile(h, pcts[i]);
		assert_true(got >= want * 0.99 && got <= want * 1.01);
	}
	assert_int_equal(hist_percentile(h, 100), 1000000000ull);
	assert_int_equal(h->max, 1000000000ull);
	assert_true(hist_mean(h) > 500000499.0 && hist_mean(h) < 500000501.0);
	free(h);
}

static void test_hist_merge_equals_recording_once(void **state)
{
	struct hist *a = new_hist(), *b = new_hist(), *all = new_hist();

	for (uint64_t v = 1; v < 50000; v += 7) {
		hist_record(v % 2 ? a : b, v * 13);
		hist_record(all, v * 13);
	}
	hist_merge(a, b);
	assert_int_equal(a->count, all->count);
	assert_int_equal(a->sum, all->sum);
	assert_int_equal(a->min, all->min);
	assert_int_equal(a->max, all->max);
	assert_int_equal(hist_percentile(a, 99.9), hist_percentile(all, 99.9));
	free(a);
	free(b);
	free(all);
}

static void test_hist_empty_reports_zero(void **state)
{
	struct hist *h = new_hist();

	assert_int_equal(hist_percentile(h, 50), 0);
	assert_true(hist_mean(h) == 0.0);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_buckets_are_contiguous_and_within_one_128th),
		cmocka_unit_test(test_hist_small_values_are_exact),
		cmocka_unit_test(test_hist_percentiles_within_precision_on_a_wide_range),
		cmocka_unit_test(test_hist_merge_equals_recording_once),
		cmocka_unit_test(test_hist_empty_reports_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
