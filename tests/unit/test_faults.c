/*
 * test_faults.c - named fault points (common/faults.c): the spec grammar (what arms,
 * what is refused with a message), when an armed point fires (every hit, the Nth hit,
 * a seeded percentage), what each action does (fail returns -EIO, delay sleeps, crash
 * kills the process as kill -9 would: checked in a child), and that clearing disarms
 * while the counters stay.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "faults.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void arm_ok(struct tpc_faults *f, const char *spec)
{
	char err[256] = "";
	int rc = tpc_faults_arm(f, spec, err, sizeof(err));
	if (rc)
		fail_msg("arming \"%s\": %d %s", spec, rc, err);
}

static void test_every_point_name_looks_up_to_itself(void **state)
{
	(void)state;
	for (int p = 0; p < TPC_FP_COUNT; p++) {
		const char *name = tpc_fault_name((enum tpc_fault_point)p);
		assert_non_null(name);
		assert_int_equal(tpc_fault_lookup(name), p);
	}
	assert_null(tpc_fault_name(TPC_FP_COUNT));
	assert_int_equal(tpc_fault_lookup("part.prepare"), -1);
	assert_int_equal(tpc_fault_lookup(""), -1);
}

static void test_unarmed_points_and_a_null_set_never_fire(void **state)
{
	(void)state;
	struct tpc_faults f;

	tpc_faults_init(&f, "test");
	assert_int_equal(f.armed, 0);
	for (int p = 0; p < TPC_FP_COUNT; p++)
		assert_int_equal(tpc_fault(&f, (enum tpc_fault_point)p), 0);
	assert_int_equal(tpc_fault(NULL, TPC_FP_LOG_SYNC), 0);
	arm_ok(&f, NULL);
	arm_ok(&f, "");
	assert_int_equal(f.armed, 0);
	tpc_faults_destroy(&f);
}

static void test_fail_fires_on_every_hit_of_its_point_only(void **state)
{
	(void)state;
	struct tpc_faults f;

	tpc_faults_init(&f, "test");
	arm_ok(&f, "log.sync=fail");
	assert_int_equal(f.armed, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(tpc_fault(&f, TPC_FP_LOG_SYNC), -EIO);
	assert_int_equal(tpc_fault(&f, TPC_FP_PART_PREPARE_AFTER_LOG), 0);
	assert_int_equal(f.pt[TPC_FP_LOG_SYNC].hits, 3);
	assert_int_equal(f.pt[TPC_FP_LOG_SYNC].fired, 3);
	tpc_faults_destroy(&f);
}

static void test_fail_at_n_fires_on_the_nth_hit_only(void **state)
{
	(void)state;
	struct tpc_faults f;

	tpc_faults_init(&f, "test");
	arm_ok(&f, "part.commit.before_apply=fail@3");
	for (int hit = 1; hit <= 6; hit++)
		assert_int_equal(tpc_fault(&f, TPC_FP_PART_COMMIT_BEFORE_APPLY),
				 hit == 3 ? -EIO : 0);
	assert_int_equal(f.pt[TPC_FP_PART_COMMIT_BEFORE_APPLY].hits, 6);
	assert_int_equal(f.pt[TPC_FP_PART_COMMIT_BEFORE_APPLY].fired, 1);
	tpc_faults_destroy(&f);
}

static int count_fired(uint64_t seed, const char *spec, int hits)
{
	struct tpc_faults f;
	int fired = 0;

	tpc_faults_init(&f, "test");
	f.rng = seed * 0x9e3779b97f4a7c15ULL | 1;
	arm_ok(&f, spec);
	for (int i = 0; i < hits; i++)
		fired += tpc_fault(&f, TPC_FP_LOG_SYNC) == -EIO;
	tpc_faults_destroy(&f);
	return fired;
}

static void test_fail_percent_fires_about_that_often_and_replays_under_one_seed(void **state)
{
	(void)state;
	int a = count_fired(7, "log.sync=fail%30", 2000);
	assert_in_range(a, 450, 750);
	assert_int_equal(count_fired(7, "log.sync=fail%30", 2000), a);
	assert_int_equal(count_fired(7, "log.sync=fail%100", 50), 50);
}

static void test_delay_sleeps_then_goes_on(void **state)
{
	(void)state;
	struct tpc_faults f;

	tpc_faults_init(&f, "test");
	arm_ok(&f, "coord.end.before_log=delay:30");
	uint64_t t0 = now_ms();
	assert_int_equal(tpc_fault(&f, TPC_FP_COORD_END_BEFORE_LOG), 0);
	assert_true(now_ms() - t0 >= 30);
	assert_int_equal(f.pt[TPC_FP_COORD_END_BEFORE_LOG].fired, 1);
	tpc_faults_destroy(&f);
}

static void test_crash_kills_the_process_as_kill_9_would(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tpc_faults f;
		tpc_faults_init(&f, "test-child");
		if (tpc_faults_arm(&f, "part.vote.after_send=crash@2", NULL, 0))
			_exit(2);
		tpc_fault(&f, TPC_FP_PART_VOTE_AFTER_SEND); /* the first hit goes on */
		tpc_fault(&f, TPC_FP_PART_VOTE_AFTER_SEND);
		_exit(0); /* not reached */
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
}

static void test_bad_specs_are_refused_with_a_message(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"nope=fail",               /* unknown point */
		"log.sync",                /* no action */
		"log.sync=boom",           /* unknown action */
		"log.sync=fail@0",         /* the hits count from 1 */
		"log.sync=fail@",
		"log.sync=crash%101",
		"log.sync=fail%x",
		"log.sync=delay:",
		"log.sync=delay:abc",
		"log.sync=delay:600001",   /* ten minutes at most */
		"log.sync=failure",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tpc_faults f;
		char err[256] = "";
		tpc_faults_init(&f, "test");
		if (tpc_faults_arm(&f, bad[i], err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_true(err[0] != '\0');
		tpc_faults_destroy(&f);
	}
}

static void test_a_list_arms_each_point_and_clear_disarms_keeping_counters(void **state)
{
	(void)state;
	struct tpc_faults f;

	tpc_faults_init(&f, "test");
	arm_ok(&f, "log.sync=fail,coord.recovery.resend=fail@1");
	assert_int_equal(tpc_fault(&f, TPC_FP_LOG_SYNC), -EIO);
	assert_int_equal(tpc_fault(&f, TPC_FP_COORD_RECOVERY_RESEND), -EIO);
	tpc_faults_clear(&f);
	assert_int_equal(f.armed, 0);
	assert_int_equal(tpc_fault(&f, TPC_FP_LOG_SYNC), 0);
	assert_int_equal(f.pt[TPC_FP_LOG_SYNC].hits, 1);
	assert_int_equal(f.pt[TPC_FP_LOG_SYNC].fired, 1);
	/* Re-arming keeps the count: fail@2 now means the point's second hit ever. */
	arm_ok(&f, "log.sync=fail@2");
	assert_int_equal(tpc_fault(&f, TPC_FP_LOG_SYNC), -EIO);
	assert_int_equal(tpc_fault(&f, TPC_FP_LOG_SYNC), 0);
	tpc_faults_destroy(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_point_name_looks_up_to_itself),
		cmocka_unit_test(test_unarmed_points_and_a_null_set_never_fire),
		cmocka_unit_test(test_fail_fires_on_every_hit_of_its_point_only),
		cmocka_unit_test(test_fail_at_n_fires_on_the_nth_hit_only),
		cmocka_unit_test(test_fail_percent_fires_about_that_often_and_replays_under_one_seed),
		cmocka_unit_test(test_delay_sleeps_then_goes_on),
		cmocka_unit_test(test_crash_kills_the_process_as_kill_9_would),
		cmocka_unit_test(test_bad_specs_are_refused_with_a_message),
		cmocka_unit_test(test_a_list_arms_each_point_and_clear_disarms_keeping_counters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
