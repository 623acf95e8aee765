/*
 * test_coord_addrs.c - which coordinator address libtpc tries next (common/coord_addrs.c):
 * the list in order, the leader a standby names (in the list or not), back to the list
 * when that leader fails, no wait in the first round after a success, then a doubling
 * jittered wait within its bounds, and bad lists refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "coord_addrs.h"

static void parse_ok(struct coord_addrs *a, const char *s)
{
	char err[256];
	assert_int_equal(coord_addrs_parse(a, s, 50, 1000, 42, err, sizeof(err)), 0);
}

static void a_list_is_parsed_in_order_with_spaces_trimmed(void **state)
{
	struct coord_addrs a;
	(void)state;
	parse_ok(&a, "h1:1, h2:2 ,h3:3");
	assert_int_equal(a.n, 3);
	assert_string_equal(a.list[1], "h2:2");
	assert_string_equal(coord_addrs_current(&a), "h1:1");
	assert_true(coord_addrs_has_other(&a));
	parse_ok(&a, "127.0.0.1:7400");
	assert_false(coord_addrs_has_other(&a));
}

static void bad_lists_are_refused_with_a_reason(void **state)
{
	struct coord_addrs a;
	char err[256] = "";
	(void)state;
	assert_int_not_equal(coord_addrs_parse(&a, "h1:1,,h2:2", 50, 1000, 1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "HOST:PORT"));
	assert_int_not_equal(coord_addrs_parse(&a, "", 50, 1000, 1, err, sizeof(err)), 0);
	assert_int_not_equal(coord_addrs_parse(&a, "nocolon", 50, 1000, 1, err, sizeof(err)), 0);
}

static void failures_walk_the_list_at_once_then_back_off_within_bounds(void **state)
{
	struct coord_addrs a;
	uint32_t prev_cap = 0;
	(void)state;
	parse_ok(&a, "h1:1,h2:2");
	assert_int_equal(coord_addrs_failed(&a), 0);
	assert_string_equal(coord_addrs_current(&a), "h2:2");
	assert_int_equal(coord_addrs_failed(&a), 0); /* every address once, no wait */
	assert_string_equal(coord_addrs_current(&a), "h1:1");
	for (int i = 0; i < 10; i++) {
		uint32_t d = coord_addrs_failed(&a);
		assert_true(d >= a.backoff_ms / 2 && d <= a.backoff_ms);
		assert_true(a.backoff_ms >= prev_cap && a.backoff_ms <= 1000);
		prev_cap = a.backoff_ms;
	}
	assert_int_equal(a.backoff_ms, 1000);
	coord_addrs_ok(&a);
	assert_int_equal(coord_addrs_failed(&a), 0); /* a success starts a new round */
}

static void a_named_leader_outside_the_list_is_tried_then_the_list_again(void **state)
{
	struct coord_addrs a;
	(void)state;
	parse_ok(&a, "h1:1,h2:2,h3:3");
	coord_addrs_not_leader(&a, "leader:9");
	assert_string_equal(coord_addrs_current(&a), "leader:9");
	coord_addrs_ok(&a);
	assert_string_equal(coord_addrs_current(&a), "leader:9"); /* stays while it works */
	coord_addrs_failed(&a);
	assert_string_equal(coord_addrs_current(&a), "h2:2"); /* after the standby that named it */
}

static void a_named_leader_in_the_list_is_used_by_its_entry(void **state)
{
	struct coord_addrs a;
	(void)state;
	parse_ok(&a, "h1:1,h2:2,h3:3");
	coord_addrs_not_leader(&a, "h3:3");
	assert_string_equal(coord_addrs_current(&a), "h3:3");
	assert_false(a.on_hint);
	coord_addrs_not_leader(&a, "h3:3"); /* names itself: no use, go on */
	assert_string_equal(coord_addrs_current(&a), "h1:1");
	coord_addrs_not_leader(&a, ""); /* no leader known: the next */
	assert_string_equal(coord_addrs_current(&a), "h2:2");
}

static void a_single_address_gains_another_only_through_a_hint(void **state)
{
	struct coord_addrs a;
	(void)state;
	parse_ok(&a, "standby:1");
	coord_addrs_not_leader(&a, "leader:2");
	assert_true(coord_addrs_has_other(&a));
	assert_string_equal(coord_addrs_current(&a), "leader:2");
	coord_addrs_failed(&a);
	assert_false(coord_addrs_has_other(&a));
	assert_string_equal(coord_addrs_current(&a), "standby:1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_list_is_parsed_in_order_with_spaces_trimmed),
		cmocka_unit_test(bad_lists_are_refused_with_a_reason),
		cmocka_unit_test(failures_walk_the_list_at_once_then_back_off_within_bounds),
		cmocka_unit_test(a_named_leader_outside_the_list_is_tried_then_the_list_again),
		cmocka_unit_test(a_named_leader_in_the_list_is_used_by_its_entry),
		cmocka_unit_test(a_single_address_gains_another_only_through_a_hint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
