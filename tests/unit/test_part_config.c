/*
 * test_part_config.c - the participant config's one rule for zero (tpc/participant.h):
 * a numeric field left 0 means its documented default, never "none"; the off value of
 * group commit is the explicit 1. part_config_resolve() is what tpc_participant_new()
 * applies to the caller's config.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "part_int.h"
#include "proc.h"
#include "tpc/sink_file.h"

static void test_config_init_gives_the_documented_defaults(void **state)
{
	tpc_participant_config cfg;

	(void)state;
	tpc_participant_config_init(&cfg);
	assert_int_equal(cfg.txn_timeout_ms, 60000);
	assert_int_equal(cfg.max_open_txns, 100000);
	assert_int_equal(cfg.max_staged_bytes, 256ull << 20);
	assert_int_equal(cfg.group_commit_max, 4096);
	assert_int_equal(cfg.max_frame, 1u << 20);
	assert_int_equal(cfg.map_size, 1ull << 30);
	assert_int_equal(cfg.max_epoch_jump, 1000000);
	assert_int_equal(cfg.unreachable_timeout_ms, 5000);
	assert_null(cfg.coordinator);
	assert_null(cfg.log);
	assert_null(cfg.tls_cert);
}

static void test_every_zero_field_means_its_default(void **state)
{
	tpc_participant_config zero, defaults;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	tpc_participant_config_init(&defaults);
	part_config_resolve(&zero);
	assert_memory_equal(&zero, &defaults, sizeof(zero));
}

static void test_values_given_are_kept_and_group_commit_off_is_one(void **state)
{
	tpc_participant_config cfg;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.txn_timeout_ms = 7;
	cfg.max_open_txns = 1;
	cfg.max_staged_bytes = 2;
	cfg.group_commit_max = 1; /* off */
	cfg.max_frame = 64;
	cfg.map_size = 1u << 20;
	cfg.max_epoch_jump = 3;
	cfg.unreachable_timeout_ms = 9;
	tpc_participant_config kept = cfg;
	part_config_resolve(&cfg);
	assert_memory_equal(&cfg, &kept, sizeof(cfg));
}

/* A zero-initialised config with only the required fields set opens a participant. */
static void test_new_accepts_a_config_of_zeros(void **state)
{
	struct tpc_tmpdir *d = tpc_tmpdir_new("zerocfg");
	char sink_path[PATH_MAX + 8], state_dir[PATH_MAX + 8];
	tpc_participant_config cfg;
	tpc_participant_stats st;
	int err = 0;

	(void)state;
	assert_non_null(d);
	snprintf(sink_path, sizeof(sink_path), "%s/sink", d->root);
	snprintf(state_dir, sizeof(state_dir), "%s/state", d->root);
	tpc_sink *sink = tpc_sink_file_open(sink_path, &err, NULL);
	assert_non_null(sink);
	memset(&cfg, 0, sizeof(cfg));
	cfg.coordinator = "127.0.0.1:1";
	cfg.name = "zero";
	cfg.state_dir = state_dir;
	tpc_participant *p = tpc_participant_new(&cfg, sink, &err);
	assert_non_null(p);
	assert_int_equal(err, 0);
	tpc_participant_get_stats(p, &st);
	assert_int_equal(st.connected, 0);
	tpc_participant_free(p);
	tpc_tmpdir_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_init_gives_the_documented_defaults),
		cmocka_unit_test(test_every_zero_field_means_its_default),
		cmocka_unit_test(test_values_given_are_kept_and_group_commit_off_is_one),
		cmocka_unit_test(test_new_accepts_a_config_of_zeros),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
