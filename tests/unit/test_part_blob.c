/*
 * test_part_blob.c - the staged-writes encoding (participant/src/part_blob.c): what is
 * added decodes back in order (empty keys and values too), the payload counts only key
 * and value bytes, and a blob cut short at any byte, with bytes left over, or claiming
 * more writes than it can hold is refused as TPC_ECORRUPT, never read past.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "part_blob.h"
#include "tpc/common.h"

static void add(struct part_blob *b, const char *k, const char *v)
{
	assert_int_equal(part_blob_add(b, k, strlen(k), v, strlen(v)), 0);
}

static void test_blob_decodes_back_what_was_added_in_order(void **state)
{
	(void)state;
	struct part_blob b = { 0 };
	tpc_write *w;
	size_t len, n;

	add(&b, "alpha", "1");
	add(&b, "", "empty key");
	add(&b, "empty value", "");
	const uint8_t *bytes = part_blob_bytes(&b, &len);
	assert_non_null(bytes);
	assert_int_equal(part_blob_decode(bytes, len, &w, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(b.count, 3);
	assert_int_equal(w[0].key_len, 5);
	assert_memory_equal(w[0].key, "alpha", 5);
	assert_memory_equal(w[0].value, "1", 1);
	assert_int_equal(w[1].key_len, 0);
	assert_int_equal(w[1].value_len, 9);
	assert_memory_equal(w[1].value, "empty key", 9);
	assert_int_equal(w[2].value_len, 0);
	free(w);
	assert_int_equal(part_blob_payload(&b), 5 + 1 + 9 + 11);
	part_blob_free(&b);
	assert_null(b.data);
}

static void test_empty_blob_is_a_count_of_zero(void **state)
{
	(void)state;
	struct part_blob b = { 0 };
	tpc_write *w;
	size_t len, n;

	const uint8_t *bytes = part_blob_bytes(&b, &len);
	assert_int_equal(len, 4);
	assert_int_equal(part_blob_decode(bytes, len, &w, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(part_blob_payload(&b), 0);
	free(w);
	part_blob_free(&b);
}

/* Every proper prefix is refused (fed one byte shorter at a time), on a copy of
 * exactly that length so ASan would see a read past it. */
static void test_blob_cut_short_anywhere_is_corrupt(void **state)
{
	(void)state;
	struct part_blob b = { 0 };
	tpc_write *w;
	size_t len, n;

	add(&b, "key", "value");
	add(&b, "k2", "v2");
	const uint8_t *bytes = part_blob_bytes(&b, &len);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, bytes, cut);
		assert_int_equal(part_blob_decode(copy, cut, &w, &n), TPC_ECORRUPT);
		assert_null(w);
		assert_int_equal(n, 0);
		free(copy);
	}
	part_blob_free(&b);
}

static void test_blob_with_bytes_left_over_is_corrupt(void **state)
{
	(void)state;
	struct part_blob b = { 0 };
	tpc_write *w;
	size_t len, n;

	add(&b, "key", "value");
	const uint8_t *bytes = part_blob_bytes(&b, &len);
	uint8_t *longer = calloc(1, len + 1);
	memcpy(longer, bytes, len);
	assert_int_equal(part_blob_decode(longer, len + 1, &w, &n), TPC_ECORRUPT);
	free(longer);
	part_blob_free(&b);
}

static void test_blob_claiming_more_writes_than_it_holds_is_corrupt(void **state)
{
	(void)state;
	uint8_t huge[12] = { 0xff, 0xff, 0xff, 0xff }; /* 4 billion writes in 8 bytes */
	uint8_t two[12] = { 0, 0, 0, 2 };              /* two empty writes need 16 bytes */
	tpc_write *w;
	size_t n;

	assert_int_equal(part_blob_decode(huge, sizeof(huge), &w, &n), TPC_ECORRUPT);
	assert_int_equal(part_blob_decode(two, sizeof(two), &w, &n), TPC_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_decodes_back_what_was_added_in_order),
		cmocka_unit_test(test_empty_blob_is_a_count_of_zero),
		cmocka_unit_test(test_blob_cut_short_anywhere_is_corrupt),
		cmocka_unit_test(test_blob_with_bytes_left_over_is_corrupt),
		cmocka_unit_test(test_blob_claiming_more_writes_than_it_holds_is_corrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
