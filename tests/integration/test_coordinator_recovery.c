/*
 * test_coordinator_recovery.c - kill -9 of tpc-coordinator at the places the crash
 * table in docs/design.md ("After a crash") names, a restart on the same port and data
 * folder, and what clients and participants learn afterwards.
 *
 * The crash after the COMMIT record is durable and before anybody heard it is made
 * deterministic by the coordinator's fault point coord.decision.after_log (TPC_FAULTS):
 * it raises SIGKILL right after the record's batch is synced.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "coord_harness.h"

static void expect_coord_killed(struct cluster *c)
{
	int st = -1;

	assert_int_equal(tpc_proc_wait_exit(c->coord, WAIT_MS, &st), 0);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
		tpc_proc_dump(c->coord);
		fail_msg("the coordinator ended with wait status 0x%x, not SIGKILL", st);
	}
}

/*
 * Crash table row 2 (and the client side of a lost reply): the decision is durable,
 * nobody heard it. On restart the participants get Decision(COMMIT) when they say
 * Hello, the client asks and hears COMMITTED, and its key answers ALREADY_COMMITTED.
 */
static void test_crash_after_decision_is_logged_commits_on_restart(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_outcome o;
	struct tpc_wc_begin b;
	uint64_t epoch1[2], epoch2 = 0;

	coord_start(c, "coord.decision.after_log=crash", NULL);
	coord_log_has(c, "fault injection armed");
	for (int i = 0; i < 2; i++)
		epoch1[i] = part_start(c, i, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, "payment-5", 2);
	/* The coordinator dies while the client waits: the outcome is unknown to it. */
	int rc = tpc_wc_commit(wc, txid, &o);
	if (rc != -ECONNRESET)
		fail_msg("commit: expected the connection to drop, got %s (%s)",
			 tpc_wc_strerror(rc), tpc_wc_errmsg(wc));
	expect_coord_killed(c);
	coord_log_has(c, "fault coord.decision.after_log fired: crash");
	for (int i = 0; i < 2; i++) {
		part_expect(c, i, "voted %llu YES", (unsigned long long)txid);
		part_expect(c, i, "disconnected");
		part_expect_none(c, i, "applied ");
		part_expect_none(c, i, "discarded ");
		assert_int_equal(part_state_count(c, i, 'P', txid), 1);
		assert_int_equal(part_state_count(c, i, 'C', txid), 0);
	}

	coord_restart(c);
	for (int i = 0; i < 2; i++) {
		uint64_t e = part_wait_ready(c, i);
		assert_true(e > epoch1[i]); /* D7: every start bumps the epoch */
		part_expect(c, i, "applied %llu", (unsigned long long)txid);
		part_expect(c, i, "acked %llu", (unsigned long long)txid);
		part_expect_none(c, i, "stale-epoch ");
		part_expect_none(c, i, "conflict ");
	}
	coord_log_has(c, "recovered 1 undelivered commit decision(s)");
	client_close(c, wc);
	wc = client_open(c, &epoch2);
	assert_int_equal(epoch2, c->parts[0].epoch);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	/* Re-sending Begin with the key learns the outcome instead of starting again. */
	assert_int_equal(tpc_wc_begin(wc, "payment-5", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED);
	assert_int_equal(b.txid, txid);
	/* Re-sending the Commit hears COMMITTED too. */
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	for (int i = 0; i < 2; i++) {
		part_cmd(c, i, "query %llu", (unsigned long long)txid);
		part_expect(c, i, "status %llu COMMITTED", (unsigned long long)txid);
		assert_int_equal(part_state_count(c, i, 'C', txid), 1);
	}
	/* The new incarnation serves new work: a txid of the new epoch commits. */
	uint64_t next = client_begin(wc, NULL);
	assert_true(next > txid);
	part_join(c, 0, next);
	client_commit_expect(wc, next, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 0, "applied %llu", (unsigned long long)next);
}

/*
 * Crash table row 1: the coordinator dies while still collecting votes. The
 * transaction is gone; a participant that asks hears ABORTED, the prepared one
 * resolves to discarded, a late Join or Commit gets an error or ABORTED.
 */
static void test_crash_before_decision_aborts_on_restart(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_begin b;
	uint64_t epoch1[2];

	coord_start(c, NULL, NULL); /* default prepare timeout (10 s): nothing aborts first */
	for (int i = 0; i < 2; i++)
		epoch1[i] = part_start(c, i, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, "transfer-6", 2);
	part_set_vote(c, 1, txid, "silent");
	client_send_commit(wc, txid);
	part_expect(c, 0, "voted %llu YES", (unsigned long long)txid);
	part_expect(c, 1, "silent %llu", (unsigned long long)txid);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_PENDING);
	coord_kill9(c);
	assert_null(tpc_wc_recv(wc, WAIT_MS)); /* the Commit's Outcome never comes */
	assert_int_equal(tpc_wc_last_rc(wc), -ECONNRESET);
	for (int i = 0; i < 2; i++)
		part_expect(c, i, "disconnected");
	assert_int_equal(part_state_count(c, 0, 'P', txid), 1);
	assert_int_equal(part_state_count(c, 1, 'P', txid), 0);

	coord_restart(c);
	for (int i = 0; i < 2; i++)
		assert_true(part_wait_ready(c, i) > epoch1[i]);
	coord_log_has(c, "recovered 0 undelivered commit decision(s)");
	/* The prepared participant asks on its own (it has a P line) and discards. */
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	assert_int_equal(part_state_count(c, 0, 'A', txid), 1);
	/* The other one asks when told to. */
	part_cmd(c, 1, "query %llu", (unsigned long long)txid);
	part_expect(c, 1, "status %llu ABORTED", (unsigned long long)txid);
	/* A late Join is refused. */
	part_cmd(c, 1, "join %llu", (unsigned long long)txid);
	const char *line = tpc_proc_wait_line(c->parts[1].proc, "join-error ", WAIT_MS);
	assert_non_null(line);
	assert_non_null(strstr(line, "ERR_NOT_FOUND"));
	/* The client asks and hears ABORTED; a late Commit hears ABORTED too. */
	client_close(c, wc);
	wc = client_open(c, NULL);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_ABORTED);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	/* The key never committed: a Begin with it starts a new transaction. */
	assert_int_equal(tpc_wc_begin(wc, "transfer-6", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_STARTED);
	assert_int_equal(b.fenced_txid, 0);
	assert_true(b.txid != txid);
	for (int i = 0; i < 2; i++) {
		part_expect_none(c, i, "applied ");
		assert_int_equal(part_state_count(c, i, 'C', txid), 0);
	}
}

/*
 * Crash table row 3: the coordinator dies after some acks. p1 dies after applying and
 * before acking; p0 acked. After the restarts both get the decision again and ack it
 * as a duplicate: nobody applies twice.
 */
static void test_crash_after_some_acks_redelivers_without_double_apply(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, "--crash-at", "after-apply", NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 0, "acked %llu", (unsigned long long)txid);
	part_expect(c, 1, "crash after-apply %llu", (unsigned long long)txid);
	assert_int_equal(tpc_proc_wait_exit(c->parts[1].proc, WAIT_MS, NULL), 0);
	/* p0's Ack is read before its query: the coordinator holds it when this answers. */
	part_cmd(c, 0, "query %llu", (unsigned long long)txid);
	part_expect(c, 0, "status %llu COMMITTED", (unsigned long long)txid);
	coord_kill9(c);
	part_expect(c, 0, "disconnected");

	coord_restart(c);
	coord_log_has(c, "recovered 1 undelivered commit decision(s)");
	part_wait_ready(c, 0);
	part_expect(c, 0, "duplicate %llu", (unsigned long long)txid);
	part_expect(c, 0, "acked %llu", (unsigned long long)txid);
	part_start(c, 1, NULL); /* same name and state file */
	part_expect(c, 1, "duplicate %llu", (unsigned long long)txid);
	part_expect(c, 1, "acked %llu", (unsigned long long)txid);
	for (int i = 0; i < 2; i++)
		assert_int_equal(part_state_count(c, i, 'C', txid), 1);
	client_close(c, wc);
	wc = client_open(c, NULL);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
}

/*
 * Crash table: a participant dies after its PREPARED record is durable and its YES is
 * sent. The coordinator commits without it and delivers the decision when it returns.
 */
static void test_participant_crash_after_vote_gets_decision_on_reconnect(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, "--crash-at", "after-vote", NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 1, "crash after-vote %llu", (unsigned long long)txid);
	assert_int_equal(tpc_proc_wait_exit(c->parts[1].proc, WAIT_MS, NULL), 0);
	part_expect(c, 0, "applied %llu", (unsigned long long)txid);
	part_expect(c, 0, "acked %llu", (unsigned long long)txid);
	assert_int_equal(part_state_count(c, 1, 'P', txid), 1);
	assert_int_equal(part_state_count(c, 1, 'C', txid), 0);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);

	part_start(c, 1, NULL); /* same name and state file */
	part_expect(c, 1, "applied %llu", (unsigned long long)txid);
	part_expect(c, 1, "acked %llu", (unsigned long long)txid);
	part_cmd(c, 1, "query %llu", (unsigned long long)txid);
	part_expect(c, 1, "status %llu COMMITTED", (unsigned long long)txid);
	for (int i = 0; i < 2; i++)
		assert_int_equal(part_state_count(c, i, 'C', txid), 1);
}

/*
 * Crash table: a participant dies after its PREPARED record is durable, before it
 * voted. The coordinator aborts (a participant lost before voting); the participant
 * finds its record on restart, asks, and discards.
 */
static void test_participant_crash_before_vote_aborts(void **state)
{
	struct cluster *c = *state;
	char reason[256];

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, "--crash-at", "after-prepare-log", NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	if (!strstr(reason, "disconnected"))
		fail_msg("abort reason \"%s\" does not name the lost participant", reason);
	part_expect(c, 1, "crash after-prepare-log %llu", (unsigned long long)txid);
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	assert_int_equal(part_state_count(c, 1, 'P', txid), 1);

	part_start(c, 1, NULL);
	part_expect(c, 1, "discarded %llu", (unsigned long long)txid);
	for (int i = 0; i < 2; i++) {
		part_expect_none(c, i, "applied ");
		assert_int_equal(part_state_count(c, i, 'C', txid), 0);
	}
	assert_int_equal(part_state_count(c, 1, 'A', txid), 1);
}

/* A mistyped TPC_FAULTS must not leave a run without its fault: the start fails. */
static void test_unknown_fault_point_refuses_to_start(void **state)
{
	struct cluster *c = *state;
	char log[PATH_MAX + 32];
	char *argv[] = { TPC_COORDINATOR_BIN, "--listen", c->hostport, "--data", c->data, NULL };
	int st = -1;

	snprintf(log, sizeof(log), "%s/bad-faults.log", c->dir);
	assert_int_equal(setenv("TPC_FAULTS", "coord.decision.after_lgo=crash", 1), 0);
	tpc_proc *p = tpc_proc_spawn(c->procs, argv, log);
	unsetenv("TPC_FAULTS");
	assert_non_null(p);
	assert_int_equal(tpc_proc_wait_exit(p, WAIT_MS, &st), 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	FILE *f = fopen(log, "r");
	char line[512];
	int found = 0;
	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "unknown fault point") != NULL;
	fclose(f);
	assert_true(found);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_after_decision_is_logged_commits_on_restart,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_decision_aborts_on_restart,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_crash_after_some_acks_redelivers_without_double_apply, cluster_setup,
			cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_participant_crash_after_vote_gets_decision_on_reconnect, cluster_setup,
			cluster_teardown),
		cmocka_unit_test_setup_teardown(test_participant_crash_before_vote_aborts,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_fault_point_refuses_to_start,
						cluster_setup, cluster_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
