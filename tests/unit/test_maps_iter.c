/*
 * test_maps_iter.c - the u64map walk (common/maps.h u64map_iter_*): every live entry
 * once, and deleting or adding entries while walking (the reason it exists: a step
 * may free its transaction, or others).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "maps.h"

#define N 100

static void fill(struct u64map *m, uintptr_t *vals)
{
	u64map_init(m);
	for (uint64_t k = 1; k <= N; k++) {
		vals[k] = k;
		assert_int_equal(u64map_put(m, k, &vals[k]), 0);
	}
}

static void test_iter_visits_every_entry_once(void **state)
{
	(void)state;
	struct u64map m;
	uintptr_t vals[N + 1];
	int seen[N + 1] = { 0 };
	struct u64map_iter it;
	size_t count = 0;

	fill(&m, vals);
	for (uintptr_t *v = u64map_iter_first(&it, &m); v; v = u64map_iter_next(&it)) {
		assert_int_equal(*v, it.key);
		seen[it.key]++;
		count++;
	}
	u64map_iter_end(&it);
	assert_false(it.nomem);
	assert_int_equal(count, N);
	for (int k = 1; k <= N; k++)
		assert_int_equal(seen[k], 1);
	u64map_free(&m);
}

static void test_iter_of_an_empty_map_visits_nothing(void **state)
{
	(void)state;
	struct u64map m;
	struct u64map_iter it;

	u64map_init(&m);
	assert_null(u64map_iter_first(&it, &m));
	assert_false(it.nomem);
	u64map_iter_end(&it);
	u64map_iter_end(&it); /* twice is harmless */
	u64map_free(&m);
}

/* Each visit deletes itself and the entry after it: the deleted ones are skipped. */
static void test_iter_tolerates_deleting_current_and_others(void **state)
{
	(void)state;
	struct u64map m;
	uintptr_t vals[N + 1];
	int seen[N + 1] = { 0 };
	struct u64map_iter it;

	fill(&m, vals);
	for (uintptr_t *v = u64map_iter_first(&it, &m); v; v = u64map_iter_next(&it)) {
		uint64_t k = it.key;
		assert_non_null(u64map_get(&m, k));
		seen[k]++;
		u64map_del(&m, k);
		u64map_del(&m, k % N + 1);
	}
	u64map_iter_end(&it);
	for (int k = 1; k <= N; k++)
		assert_true(seen[k] <= 1);
	assert_int_equal(m.n, 0);
	u64map_free(&m);
}

/* Entries put while walking (and the growth they cause) are not visited. */
static void test_iter_skips_entries_put_while_walking(void **state)
{
	(void)state;
	struct u64map m;
	uintptr_t vals[N + 1], extra = 7;
	struct u64map_iter it;
	size_t count = 0;

	fill(&m, vals);
	for (uintptr_t *v = u64map_iter_first(&it, &m); v; v = u64map_iter_next(&it)) {
		assert_true(it.key <= N);
		assert_int_equal(u64map_put(&m, it.key + 1000, &extra), 0);
		count++;
	}
	u64map_iter_end(&it);
	assert_int_equal(count, N);
	assert_int_equal(m.n, 2 * N);
	u64map_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iter_visits_every_entry_once),
		cmocka_unit_test(test_iter_of_an_empty_map_visits_nothing),
		cmocka_unit_test(test_iter_tolerates_deleting_current_and_others),
		cmocka_unit_test(test_iter_skips_entries_put_while_walking),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
