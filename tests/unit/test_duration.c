/*
 * test_duration.c - common/duration.c: the one duration parser of every command line,
 * config file and admin query. A duration always carries a unit; "0" is the only bare
 * number; fractions are exact to the millisecond; errors name the option.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "duration.h"

static uint64_t ms_of(const char *s)
{
	uint64_t v = 12345;

	assert_int_equal(tpc_parse_duration_ms(s, &v), 0);
	return v;
}

static void refused(const char *s)
{
	uint64_t v = 777;

	assert_int_equal(tpc_parse_duration_ms(s, &v), -EINVAL);
	assert_int_equal(v, 777); /* left alone */
}

static void test_duration_reads_every_unit(void **state)
{
	assert_int_equal(ms_of("250ms"), 250);
	assert_int_equal(ms_of("10s"), 10000);
	assert_int_equal(ms_of("2m"), 120000);
	assert_int_equal(ms_of("1h"), 3600000);
	assert_int_equal(ms_of("0ms"), 0);
}

static void test_duration_refuses_a_bare_number_but_zero(void **state)
{
	refused("60");
	refused("1");
	refused("1.5");
	assert_int_equal(ms_of("0"), 0);
}

static void test_duration_reads_fractions_exactly(void **state)
{
	assert_int_equal(ms_of("1.5s"), 1500);
	assert_int_equal(ms_of("0.25s"), 250);
	assert_int_equal(ms_of("1.5m"), 90000);
	assert_int_equal(ms_of("0.001s"), 1);
	assert_int_equal(ms_of("2.50h"), 9000000);
	refused("0.0005s"); /* finer than a millisecond */
	refused("1.5ms");
}

static void test_duration_refuses_junk_and_overflow(void **state)
{
	static const char *const bad[] = { "", "s", "ms", ".5s", "1.s", "-1s", "+1s", " 1s",
					   "1s ", "1 s", "1S", "1sec", "1d", "1e3ms", "1.2.3s",
					   "99999999999999999999ms", "9999999999999999h" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(bad[i]);
	refused(NULL);
}

static void test_duration_error_names_the_option_and_shows_the_fix(void **state)
{
	char err[200];
	uint64_t v;

	assert_int_equal(tpc_parse_duration_opt("--timeout", "10", 1, 3600000, &v, err,
						sizeof(err)), -EINVAL);
	assert_string_equal(err, "--timeout 10: a duration needs a unit: 10ms, 10s, 10m or 10h");
	assert_int_equal(tpc_parse_duration_opt("txn-timeout", "2h", 1, 3600000, &v, err,
						sizeof(err)), -EINVAL);
	assert_string_equal(err, "txn-timeout 2h: expected a duration such as 500ms, 1.5s, 2m "
				 "or 1h, from 1ms to 1h");
	assert_int_equal(tpc_parse_duration_opt("--x", "soon", 0, UINT64_MAX, &v, err,
						sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at least 0"));
	assert_int_equal(tpc_parse_duration_opt("--x", "1.5s", 1, 3600000, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 1500);
}

static void test_duration_formats_the_way_it_parses(void **state)
{
	static const uint64_t ms[] = { 0, 1, 999, 1000, 1500, 60000, 90000, 3600000, 7200001 };
	char buf[32];

	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		tpc_format_duration(ms[i], buf, sizeof(buf));
		assert_int_equal(ms_of(buf), ms[i]);
	}
	tpc_format_duration(90000, buf, sizeof(buf));
	assert_string_equal(buf, "90s");
	tpc_format_duration(3600000, buf, sizeof(buf));
	assert_string_equal(buf, "1h");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_reads_every_unit),
		cmocka_unit_test(test_duration_refuses_a_bare_number_but_zero),
		cmocka_unit_test(test_duration_reads_fractions_exactly),
		cmocka_unit_test(test_duration_refuses_junk_and_overflow),
		cmocka_unit_test(test_duration_error_names_the_option_and_shows_the_fix),
		cmocka_unit_test(test_duration_formats_the_way_it_parses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
