/*
 * test_maps.c - the in-memory indexes (common/maps.c): u64map (txid -> pointer), strmap
 * (client key -> txid) and the deadline heap, each checked against a plain model under a
 * seeded random mix of puts, gets and deletes (backward-shift deletion must keep every
 * other key reachable through growth), and the heap's order over random pushes and pops.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "maps.h"

static uint64_t rng = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- u64map ------------------------------------------------------------------ */

static void test_u64map_empty_map_finds_nothing_and_lists_no_keys(void **state)
{
	(void)state;
	struct u64map m;
	size_t n = 99;

	u64map_init(&m);
	assert_null(u64map_get(&m, 1));
	assert_null(u64map_del(&m, 1));
	uint64_t *keys = u64map_keys(&m, &n);
	assert_int_equal(n, 0);
	free(keys);
	u64map_free(&m);
}

static void test_u64map_put_replaces_and_del_returns_the_value(void **state)
{
	(void)state;
	struct u64map m;
	int a, b;

	u64map_init(&m);
	assert_int_equal(u64map_put(&m, 7, &a), 0);
	assert_int_equal(u64map_put(&m, 7, &b), 0);
	assert_int_equal(m.n, 1);
	assert_ptr_equal(u64map_get(&m, 7), &b);
	assert_ptr_equal(u64map_del(&m, 7), &b);
	assert_null(u64map_get(&m, 7));
	assert_int_equal(m.n, 0);
	u64map_free(&m);
}

/* Keys that collide (same low bits) exercise probing and backward-shift deletion. */
static void test_u64map_matches_a_model_under_random_puts_and_deletes(void **state)
{
	(void)state;
	enum { RANGE = 2048, STEPS = 40000 };
	static void *model[RANGE];
	struct u64map m;

	memset(model, 0, sizeof(model));
	u64map_init(&m);
	for (int i = 0; i < STEPS; i++) {
		uint64_t k = 1 + rnd() % (RANGE - 1);
		if (rnd() % 3) {
			void *v = (void *)(uintptr_t)(i + 1);
			assert_int_equal(u64map_put(&m, k, v), 0);
			model[k] = v;
		} else {
			assert_ptr_equal(u64map_del(&m, k), model[k]);
			model[k] = NULL;
		}
		if (i % 997 == 0) {
			size_t live = 0;
			for (uint64_t j = 1; j < RANGE; j++) {
				assert_ptr_equal(u64map_get(&m, j), model[j]);
				live += model[j] != NULL;
			}
			assert_int_equal(m.n, live);
		}
	}
	size_t n, live = 0;
	uint64_t *keys = u64map_keys(&m, &n);
	for (uint64_t j = 1; j < RANGE; j++)
		live += model[j] != NULL;
	assert_int_equal(n, live);
	for (size_t i = 0; i < n; i++)
		assert_non_null(model[keys[i]]);
	free(keys);
	u64map_free(&m);
}

static void test_u64map_keys_is_a_copy_the_caller_may_delete_through(void **state)
{
	(void)state;
	struct u64map m;
	size_t n;

	u64map_init(&m);
	for (uint64_t k = 1; k <= 100; k++)
		assert_int_equal(u64map_put(&m, k << 20, (void *)(uintptr_t)k), 0);
	uint64_t *keys = u64map_keys(&m, &n);
	assert_int_equal(n, 100);
	for (size_t i = 0; i < n; i++)
		assert_non_null(u64map_del(&m, keys[i]));
	assert_int_equal(m.n, 0);
	free(keys);
	u64map_free(&m);
}

/* ---- strmap ------------------------------------------------------------------ */

static void test_strmap_copies_keys_and_compares_by_length(void **state)
{
	(void)state;
	struct strmap m;
	char key[8] = "abc";
	uint64_t v = 0;

	strmap_init(&m);
	assert_int_equal(strmap_put(&m, key, 3, 42), 0);
	key[0] = 'x'; /* the map kept its own copy */
	assert_int_equal(strmap_get(&m, "abc", 3, &v), 1);
	assert_int_equal(v, 42);
	assert_int_equal(strmap_get(&m, "ab", 2, &v), 0);
	assert_int_equal(strmap_get(&m, "abc\0", 4, &v), 0); /* bytes, not C strings */
	assert_int_equal(strmap_put(&m, "a\0b", 3, 5), 0);
	assert_int_equal(strmap_get(&m, "a\0b", 3, &v), 1);
	assert_int_equal(v, 5);
	strmap_free(&m);
}

static void test_strmap_del_if_removes_only_the_named_value(void **state)
{
	(void)state;
	struct strmap m;
	uint64_t v = 0;

	strmap_init(&m);
	assert_int_equal(strmap_put(&m, "k", 1, 10), 0);
	assert_int_equal(strmap_del_if(&m, "k", 1, 11), 0); /* a later txn took the key */
	assert_int_equal(strmap_get(&m, "k", 1, &v), 1);
	assert_int_equal(v, 10);
	assert_int_equal(strmap_put(&m, "k", 1, 11), 0); /* replaces */
	assert_int_equal(m.n, 1);
	assert_int_equal(strmap_del_if(&m, "k", 1, 11), 1);
	assert_int_equal(strmap_get(&m, "k", 1, &v), 0);
	assert_int_equal(strmap_del_if(&m, "k", 1, 11), 0);
	assert_int_equal(m.n, 0);
	strmap_free(&m);
}

static void test_strmap_matches_a_model_under_random_puts_and_deletes(void **state)
{
	(void)state;
	enum { RANGE = 1500, STEPS = 30000 };
	static uint64_t model[RANGE]; /* 0: absent */
	struct strmap m;
	char key[32];

	memset(model, 0, sizeof(model));
	strmap_init(&m);
	for (int i = 0; i < STEPS; i++) {
		unsigned k = (unsigned)(rnd() % RANGE);
		int len = snprintf(key, sizeof(key), "key-%u", k);
		if (rnd() % 3) {
			assert_int_equal(strmap_put(&m, key, (size_t)len, (uint64_t)i + 1), 0);
			model[k] = (uint64_t)i + 1;
		} else {
			uint64_t want = model[k] ? model[k] : 1;
			assert_int_equal(strmap_del_if(&m, key, (size_t)len, want), model[k] != 0);
			model[k] = 0;
		}
		if (i % 1009 == 0) {
			size_t live = 0;
			for (unsigned j = 0; j < RANGE; j++) {
				uint64_t v = 0;
				len = snprintf(key, sizeof(key), "key-%u", j);
				assert_int_equal(strmap_get(&m, key, (size_t)len, &v), model[j] != 0);
				if (model[j])
					assert_int_equal(v, model[j]);
				live += model[j] != 0;
			}
			assert_int_equal(m.n, live);
		}
	}
	strmap_free(&m);
}

/* ---- deadline heap ----------------------------------------------------------- */

static void test_deadline_heap_pops_in_deadline_order(void **state)
{
	(void)state;
	enum { N = 5000 };
	struct deadline_heap h;
	struct deadline d;

	deadline_heap_init(&h);
	assert_int_equal(deadline_heap_peek(&h, &d), 0);
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(deadline_heap_push(&h, rnd() % 1000, i + 1), 0);
	uint64_t last = 0;
	for (int i = 0; i < N; i++) {
		assert_int_equal(deadline_heap_peek(&h, &d), 1);
		assert_true(d.at_ms >= last);
		assert_true(d.txid >= 1 && d.txid <= N);
		last = d.at_ms;
		deadline_heap_pop(&h);
	}
	assert_int_equal(deadline_heap_peek(&h, &d), 0);
	deadline_heap_free(&h);
}

static void test_deadline_heap_interleaved_pushes_keep_the_minimum_on_top(void **state)
{
	(void)state;
	struct deadline_heap h;
	struct deadline d;

	deadline_heap_init(&h);
	assert_int_equal(deadline_heap_push(&h, 50, 1), 0);
	assert_int_equal(deadline_heap_push(&h, 20, 2), 0);
	assert_int_equal(deadline_heap_peek(&h, &d), 1);
	assert_int_equal(d.txid, 2);
	deadline_heap_pop(&h);
	assert_int_equal(deadline_heap_push(&h, 10, 3), 0);
	assert_int_equal(deadline_heap_push(&h, 10, 3), 0); /* stale duplicates are allowed */
	assert_int_equal(deadline_heap_peek(&h, &d), 1);
	assert_int_equal(d.at_ms, 10);
	assert_int_equal(d.txid, 3);
	deadline_heap_pop(&h);
	deadline_heap_pop(&h);
	assert_int_equal(deadline_heap_peek(&h, &d), 1);
	assert_int_equal(d.txid, 1);
	deadline_heap_pop(&h);
	assert_int_equal(deadline_heap_peek(&h, &d), 0);
	deadline_heap_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64map_empty_map_finds_nothing_and_lists_no_keys),
		cmocka_unit_test(test_u64map_put_replaces_and_del_returns_the_value),
		cmocka_unit_test(test_u64map_matches_a_model_under_random_puts_and_deletes),
		cmocka_unit_test(test_u64map_keys_is_a_copy_the_caller_may_delete_through),
		cmocka_unit_test(test_strmap_copies_keys_and_compares_by_length),
		cmocka_unit_test(test_strmap_del_if_removes_only_the_named_value),
		cmocka_unit_test(test_strmap_matches_a_model_under_random_puts_and_deletes),
		cmocka_unit_test(test_deadline_heap_pops_in_deadline_order),
		cmocka_unit_test(test_deadline_heap_interleaved_pushes_keep_the_minimum_on_top),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
