/*
 * test_torture.c - tpc-torture end to end: a short seeded torture run of the real
 * binaries passes with zero violations, in-doubt transactions settle soon after a long
 * partition heals, and each deliberately broken build (common/broken.h) is caught by
 * the checker.
 *
 * The clean run uses the whole default schedule: staged transactions with participant
 * bounces between their stages, kv1's short staged-write expiry, strangers and operator
 * decisions.
 *
 * Each test runs `tpc-torture run` as a process in a fresh temporary folder with fixed
 * seeds and reads its report from stdout. Budget: about 25 s for the clean run, 35 s for
 * the long partition, about 13 s per broken variant (9 s for the re-join one). The re-join
 * run retries a later stage's Put until the bounced participant is back, so every
 * bounce between two stages is a re-join the broken coordinator accepts.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "proc.h"
#include "util.h"

#define OUT_CAP (256 * 1024)
#define RUN_TIMEOUT_MS 120000

struct run {
	char dir[PATH_MAX];
	char *out;
	int status;
};

static int setup(void **state)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r || !(r->out = malloc(OUT_CAP)) || tpc_tmpdir_make(r->dir, sizeof(r->dir)))
		return -1;
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct run *r = *state;

	tpc_tmpdir_remove(r->dir);
	free(r->out);
	free(r);
	return 0;
}

/* Run tpc-torture with the common options plus @p extra (NULL-terminated). */
static void torture(struct run *r, const char *const *extra)
{
	const char *argv[48] = { TPC_TORTURE_BIN, "run", "--workdir", r->dir, "--quiet",
				 "--proxy-bin", TPC_FAULTPROXY_BIN };
	size_t n = 7;

	for (size_t i = 0; extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	int rc = tpc_run_capture((char *const *)argv, r->out, OUT_CAP, RUN_TIMEOUT_MS, &r->status);
	if (rc)
		fail_msg("tpc-torture did not run to the end: %d", rc);
	printf("%s", r->out); /* the report, for the test log */
}

static int exit_code(const struct run *r)
{
	return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

static unsigned long long figure(const struct run *r, const char *label)
{
	const char *at = strstr(r->out, label);
	return at ? strtoull(at + strlen(label), NULL, 10) : 0;
}

static void test_torture_run_of_the_real_binaries_has_no_violation(void **state)
{
	struct run *r = *state;
	const char *const extra[] = { "--seed", "4242", "--duration", "20s", "--round", "10s",
				      "--clients", "3", "--coordinator-bin", TPC_COORDINATOR_BIN,
				      "--kv-bin", TPC_KV_BIN, NULL };

	torture(r, extra);
	assert_int_equal(exit_code(r), 0);
	assert_non_null(strstr(r->out, "violations:           0\n"));
	assert_true(figure(r, "transactions checked: ") > 500);
	assert_non_null(strstr(r->out, "seed:                 4242"));
	assert_non_null(strstr(r->out, "2 checkpoint(s)"));
	assert_true(figure(r, "sent in stages ") > 50);
}

static void test_torture_settles_in_doubt_transactions_soon_after_a_long_partition(void **state)
{
	struct run *r = *state;
	/* kv2 is cut off for the last 15 s with many transactions prepared; after the heal
	 * they must settle within the 10 s bound (their StatusQuery backoff is capped). */
	const char *const extra[] = { "--seed", "51", "--duration", "30s",
				      "--faults-profile", "partitions",
				      "--coordinator-bin", TPC_COORDINATOR_BIN, "--kv-bin", TPC_KV_BIN,
				      NULL };

	torture(r, extra);
	assert_int_equal(exit_code(r), 0);
	assert_non_null(strstr(r->out, "violations:           0\n"));
}

/* Run a broken variant with --expect-violation: 1 when it exited 0 (violation found). */
static int run_broken(struct run *r, const char *broken, const char *seed,
		      const char *duration, const char *coord, const char *kv)
{
	const char *const extra[] = { "--broken", broken, "--expect-violation", "--seed", seed,
				      "--duration", duration, "--clients", "2",
				      "--coordinator-bin", coord, "--kv-bin", kv, NULL };

	torture(r, extra);
	return exit_code(r) == 0;
}

/* The last run must have reported a @p kind violation. */
static void expect_reported(struct run *r, const char *kind)
{
	char want[64];

	assert_int_equal(exit_code(r), 0);
	assert_non_null(strstr(r->out, "OK: the checker caught the violation"));
	assert_non_null(strstr(r->out, "replay with: tpc-torture run --seed "));
	snprintf(want, sizeof(want), "\n  %s: ", kind);
	if (!strstr(r->out, want))
		fail_msg("the report names no '%s' violation", kind);
}

/* A broken variant must be reported: --expect-violation exits 0 only then. */
static void expect_caught_within(struct run *r, const char *broken, const char *seed,
				 const char *duration, const char *coord, const char *kv,
				 const char *kind)
{
	run_broken(r, broken, seed, duration, coord, kv);
	expect_reported(r, kind);
}

static void expect_caught(struct run *r, const char *broken, const char *seed,
			  const char *coord, const char *kv, const char *kind)
{
	expect_caught_within(r, broken, seed, "10s", coord, kv, kind);
}

static void test_torture_catches_commit_sent_before_the_decision_is_logged(void **state)
{
	/* COMMIT reaches one participant, the coordinator dies before forcing it: after a
	 * restart the others hear presumed ABORT, so the transaction is partial. */
	expect_caught(*state, "coord.commit_before_log", "7001", TPC_COORDINATOR_BROKEN_BIN,
		      TPC_KV_BIN, "partial");
}

static void test_torture_catches_an_ack_before_the_apply(void **state)
{
	/* The participant acks, crashes before applying; the coordinator (no outcome
	 * retention) forgot the commit, so the restarted participant drops it. */
	expect_caught(*state, "part.ack_before_apply", "7002", TPC_COORDINATOR_BIN,
		      TPC_KV_BROKEN_BIN, "partial");
}

static void test_torture_catches_a_sink_that_applies_twice(void **state)
{
	/* A crash after the apply, before the PREPARED record is dropped: the decision
	 * comes again and a sink without deduplication writes the transaction twice. */
	expect_caught(*state, "sink.no_dedup", "7003", TPC_COORDINATOR_BIN, TPC_KV_BROKEN_BIN,
		      "duplicate");
}

static void test_torture_catches_a_rejoin_from_a_new_incarnation(void **state)
{
	/* Participants bounced between the stages of staged transactions; the coordinator
	 * accepts the restarted participant's Join of a transaction its old incarnation
	 * joined, so the first stages are lost while the rest commits (breaks D8). Every
	 * bounce between two stages is such a re-join (the run retries a later stage's Put);
	 * a machine so loaded that no staged transaction saw one gets another seed while
	 * the budget lasts. */
	static const char *const seeds[] = { "7004", "7005", "7006" };
	struct run *r = *state;
	uint64_t deadline = tpc_now_ms() + 60000;

	for (size_t i = 0; !run_broken(r, "coord.accept_rejoin", seeds[i], "10s",
				       TPC_COORDINATOR_BROKEN_BIN, TPC_KV_BIN); i++) {
		if (i + 1 == sizeof(seeds) / sizeof(seeds[0]) || tpc_now_ms() >= deadline)
			break;
		printf("no violation with seed %s: another run\n", seeds[i]);
	}
	expect_reported(r, "lost-write");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_torture_run_of_the_real_binaries_has_no_violation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_torture_settles_in_doubt_transactions_soon_after_a_long_partition, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_torture_catches_commit_sent_before_the_decision_is_logged, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_torture_catches_an_ack_before_the_apply, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torture_catches_a_sink_that_applies_twice,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_torture_catches_a_rejoin_from_a_new_incarnation,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
