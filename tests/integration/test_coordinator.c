/*
 * test_coordinator.c - tpc-coordinator as a real process, with tpc-testpart
 * participants and a blocking wire client: commits, the abort paths, transaction-key
 * fencing, StatusQuery semantics (D5) and a clean SIGTERM stop.
 *
 * Crash recovery is in test_coordinator_recovery.c, bad input in
 * test_coordinator_badinput.c; the shared cluster is coord_harness.h.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "coord_harness.h"

#define TXID_SEQ_BITS 40 /* coordinator/server_int.h: epoch above, sequence below */

/* Begin, let participants 0..n-1 join, commit, and check every participant applied
 * and acked exactly once. */
static uint64_t commit_with(struct cluster *c, tpc_wc *wc, int n, const char *key)
{
	uint64_t txid = client_begin(wc, key);

	for (int i = 0; i < n; i++)
		part_join(c, i, txid);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	for (int i = 0; i < n; i++) {
		part_expect(c, i, "prepare %llu", (unsigned long long)txid);
		part_expect(c, i, "voted %llu YES", (unsigned long long)txid);
		part_expect(c, i, "applied %llu", (unsigned long long)txid);
		part_expect(c, i, "acked %llu", (unsigned long long)txid);
	}
	for (int i = 0; i < n; i++) {
		assert_int_equal(part_state_count(c, i, 'P', txid), 1);
		assert_int_equal(part_state_count(c, i, 'C', txid), 1);
		assert_int_equal(part_state_count(c, i, 'A', txid), 0);
	}
	return txid;
}

static void test_commit_with_two_participants(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t t1 = commit_with(c, wc, 2, NULL);
	uint64_t t2 = commit_with(c, wc, 2, "order-2"); /* a keyed one through the same peers */
	assert_true(t2 > t1);
	client_status_expect(wc, t1, TPC__TXN_STATUS__STATUS_COMMITTED);
	client_status_expect(wc, t2, TPC__TXN_STATUS__STATUS_COMMITTED);
	for (int i = 0; i < 2; i++)
		part_expect_none(c, i, "conflict ");
}

static void test_commit_with_three_participants(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	for (int i = 0; i < 3; i++)
		part_start(c, i, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = commit_with(c, wc, 3, NULL);
	/* The participants' view agrees with the client's. */
	for (int i = 0; i < 3; i++) {
		part_cmd(c, i, "query %llu", (unsigned long long)txid);
		part_expect(c, i, "status %llu COMMITTED", (unsigned long long)txid);
	}
}

/* Nobody applied @p txid: no "applied" line, no C line, and the coordinator says ABORTED. */
static void expect_nobody_applied(struct cluster *c, int n, uint64_t txid)
{
	for (int i = 0; i < n; i++) {
		part_cmd(c, i, "query %llu", (unsigned long long)txid);
		part_expect(c, i, "status %llu ABORTED", (unsigned long long)txid);
		part_expect_none(c, i, "applied ");
		assert_int_equal(part_state_count(c, i, 'C', txid), 0);
	}
}

static void test_no_vote_aborts_and_nobody_applies(void **state)
{
	struct cluster *c = *state;
	char reason[256];

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	part_set_vote(c, 1, txid, "no");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	assert_non_null(strstr(reason, "NO"));
	part_expect(c, 1, "voted %llu NO", (unsigned long long)txid);
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	expect_nobody_applied(c, 2, txid);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_ABORTED);
	/* The next transaction through the same participants still commits. */
	commit_with(c, wc, 2, NULL);
}

static void test_prepare_timeout_aborts(void **state)
{
	struct cluster *c = *state;
	char reason[256];

	coord_start(c, NULL, "--prepare-timeout", "300ms", NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	part_set_vote(c, 1, txid, "silent");
	uint64_t t0 = now_ms();
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	uint64_t took = now_ms() - t0;
	if (!strstr(reason, "prepare timeout"))
		fail_msg("abort reason \"%s\" does not mention the prepare timeout", reason);
	assert_true(took >= 290); /* not before the timeout */
	part_expect(c, 1, "silent %llu", (unsigned long long)txid);
	part_expect(c, 0, "voted %llu YES", (unsigned long long)txid);
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	part_expect(c, 1, "discarded %llu", (unsigned long long)txid);
	expect_nobody_applied(c, 2, txid);
}

static void test_client_abort_discards_everywhere(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_outcome o;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	assert_int_equal(tpc_wc_abort(wc, txid, "changed my mind", &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_ABORTED);
	assert_int_equal(o.txid, txid);
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	part_expect(c, 1, "discarded %llu", (unsigned long long)txid);
	expect_nobody_applied(c, 2, txid);
	for (int i = 0; i < 2; i++)
		part_expect_none(c, i, "prepare ");
	/* A Commit after the Abort hears ABORTED (presumed abort), never a new decision. */
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	/* A late Join for it is refused. */
	part_cmd(c, 0, "join %llu", (unsigned long long)txid);
	assert_non_null(tpc_proc_wait_line(c->parts[0].proc, "join-error ", WAIT_MS));
}

static void test_participant_lost_before_voting_aborts(void **state)
{
	struct cluster *c = *state;
	char reason[256];

	coord_start(c, NULL, NULL); /* default prepare timeout (10 s): the loss decides */
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	part_set_vote(c, 1, txid, "silent");
	client_send_commit(wc, txid);
	part_expect(c, 1, "silent %llu", (unsigned long long)txid);
	assert_int_equal(tpc_proc_kill9(c->parts[1].proc), 0);
	client_expect_outcome(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	if (!strstr(reason, "disconnected"))
		fail_msg("abort reason \"%s\" does not name the lost participant", reason);
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	part_expect_none(c, 0, "applied ");
}

static void test_client_gone_aborts_open_transaction(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, "gone-1", 2);
	client_close(c, wc);
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	part_expect(c, 1, "discarded %llu", (unsigned long long)txid);
	wc = client_open(c, NULL);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_ABORTED);
	/* Its key is free again: the retry starts a new transaction, nothing fenced. */
	struct tpc_wc_begin b;
	assert_int_equal(tpc_wc_begin(wc, "gone-1", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_STARTED);
	assert_int_equal(b.fenced_txid, 0);
}

static void test_transaction_timeout_aborts(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_begin b;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	tpc_wc *wc = client_open(c, NULL);
	assert_int_equal(tpc_wc_begin(wc, NULL, 300, &b), 0); /* 300 ms to commit */
	part_join(c, 0, b.txid);
	part_expect(c, 0, "discarded %llu", (unsigned long long)b.txid);
	client_commit_expect(wc, b.txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	part_expect_none(c, 0, "prepare ");
}

static void test_read_only_participant_is_left_out_of_phase_two(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	part_set_vote(c, 1, txid, "readonly");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 1, "voted %llu READ_ONLY", (unsigned long long)txid);
	part_expect(c, 0, "applied %llu", (unsigned long long)txid);
	part_expect(c, 0, "acked %llu", (unsigned long long)txid);
	/* p0 answers its query after its Ack; p1's query after its vote. */
	for (int i = 0; i < 2; i++) {
		part_cmd(c, i, "query %llu", (unsigned long long)txid);
		part_expect(c, i, "status %llu COMMITTED", (unsigned long long)txid);
	}
	part_expect_none(c, 1, "applied ");
	part_expect_none(c, 1, "discarded ");
	part_expect_none(c, 1, "duplicate ");
	assert_int_equal(part_state_count(c, 1, 'P', txid), 0);
}

static void test_same_key_while_deciding_answers_pending_or_committed(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_begin b;
	struct tpc_wc_outcome o;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, "--crash-at", "after-apply", NULL);
	tpc_wc *wc = client_open(c, NULL);
	tpc_wc *other = client_open(c, NULL);
	/* PREPARING (p0 silent): a Begin with the key may not fence it; it hears PENDING. */
	uint64_t t1 = client_begin(wc, "acct-9");
	part_join(c, 0, t1);
	part_set_vote(c, 0, t1, "silent");
	client_send_commit(wc, t1);
	part_expect(c, 0, "silent %llu", (unsigned long long)t1);
	assert_int_equal(tpc_wc_begin(other, "acct-9", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_PENDING);
	assert_int_equal(b.txid, t1);
	assert_int_equal(b.fenced_txid, 0);
	/* The key does not make the other client its owner: only wc may abort it. */
	assert_int_equal(tpc_wc_abort(other, t1, NULL, &o), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(other), TPC__ERROR_CODE__ERR_DENIED);
	assert_int_equal(tpc_wc_abort(wc, t1, NULL, &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_ABORTED);
	client_expect_outcome(wc, t1, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	/* COMMITTING (p1 died before its Ack): the key answers ALREADY_COMMITTED. */
	uint64_t t2 = client_begin(wc, "acct-9");
	part_join(c, 1, t2);
	client_commit_expect(wc, t2, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 1, "crash after-apply %llu", (unsigned long long)t2);
	client_status_expect(other, t2, TPC__TXN_STATUS__STATUS_COMMITTED);
	assert_int_equal(tpc_wc_begin(other, "acct-9", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED);
	assert_int_equal(b.txid, t2);
	/* p1 comes back, gets the decision again and acks it without applying twice. */
	part_start(c, 1, NULL);
	part_expect(c, 1, "duplicate %llu", (unsigned long long)t2);
	part_expect(c, 1, "acked %llu", (unsigned long long)t2);
	assert_int_equal(part_state_count(c, 1, 'C', t2), 1);
}

static void test_same_key_fences_open_transaction(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_begin b;
	char reason[256];

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	tpc_wc *first = client_open(c, NULL);
	tpc_wc *second = client_open(c, NULL);
	uint64_t t1 = client_begin(first, "invoice-8");
	part_join(c, 0, t1);
	assert_int_equal(tpc_wc_begin(second, "invoice-8", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_STARTED);
	assert_int_equal(b.fenced_txid, t1);
	uint64_t t2 = b.txid;
	assert_true(t2 != t1);
	part_expect(c, 0, "discarded %llu", (unsigned long long)t1);
	client_commit_expect(first, t1, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	client_status_expect(first, t1, TPC__TXN_STATUS__STATUS_ABORTED);
	/* The fencing transaction goes on normally. */
	part_join(c, 0, t2);
	client_commit_expect(second, t2, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 0, "applied %llu", (unsigned long long)t2);
	part_expect(c, 0, "acked %llu", (unsigned long long)t2);
	assert_int_equal(part_state_count(c, 0, 'C', t1), 0);
	/* Its key now answers ALREADY_COMMITTED with its txid. */
	assert_int_equal(tpc_wc_begin(first, "invoice-8", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED);
	assert_int_equal(b.txid, t2);
}

static void test_status_query_follows_presumed_abort(void **state)
{
	struct cluster *c = *state;
	uint64_t epoch = 0;
	struct tpc_wc_outcome o;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, &epoch);
	assert_true(epoch >= 1);
	/* Unknown txid of the current epoch: no decision, not live -> ABORTED. */
	uint64_t unknown = epoch << TXID_SEQ_BITS | 0xfffffff;
	client_status_expect(wc, unknown, TPC__TXN_STATUS__STATUS_ABORTED);
	/* An open (ACTIVE) transaction -> PENDING. */
	uint64_t open = client_begin(wc, NULL);
	part_join(c, 0, open);
	client_status_expect(wc, open, TPC__TXN_STATUS__STATUS_PENDING);
	/* Still deciding (PREPARING, a participant silent) -> PENDING. */
	part_set_vote(c, 0, open, "silent");
	client_send_commit(wc, open); /* its Outcome comes later */
	part_expect(c, 0, "silent %llu", (unsigned long long)open);
	client_status_expect(wc, open, TPC__TXN_STATUS__STATUS_PENDING);
	tpc_wc *other = client_open(c, NULL);
	assert_int_equal(tpc_wc_abort(other, open, NULL, &o), TPC_WC_EREPLY); /* not its own */
	assert_int_equal(tpc_wc_error_code(other), TPC__ERROR_CODE__ERR_DENIED);
	client_status_expect(wc, open, TPC__TXN_STATUS__STATUS_PENDING);
	assert_int_equal(tpc_wc_abort(wc, open, NULL, &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_ABORTED);
	client_status_expect(wc, open, TPC__TXN_STATUS__STATUS_ABORTED);
	/* the pending Commit hears the abort too */
	client_expect_outcome(wc, open, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);

	/* Committed and acked by everyone -> COMMITTED, from the tombstone once forgotten. */
	uint64_t done = commit_with(c, wc, 2, NULL);
	client_status_expect(wc, done, TPC__TXN_STATUS__STATUS_COMMITTED);
	/* A query on the participant's connection is read after its Ack: once both
	 * answer, the coordinator has every Ack and has forgotten the transaction. */
	for (int i = 0; i < 2; i++) {
		part_cmd(c, i, "query %llu", (unsigned long long)done);
		part_expect(c, i, "status %llu COMMITTED", (unsigned long long)done);
	}
	coord_term_clean(c);
	coord_restart(c);
	coord_log_has(c, "recovered 0 undelivered commit decision(s)");
	client_close(c, wc);
	client_close(c, other);
	wc = client_open(c, NULL);
	client_status_expect(wc, done, TPC__TXN_STATUS__STATUS_COMMITTED);
	client_status_expect(wc, open, TPC__TXN_STATUS__STATUS_ABORTED);
}

static void test_sigterm_stops_cleanly(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	commit_with(c, wc, 2, "k-1");
	uint64_t open = client_begin(wc, "k-2"); /* left open across the stop */
	part_join(c, 0, open);
	uint64_t t0 = now_ms();
	coord_term_clean(c);
	assert_true(now_ms() - t0 < WAIT_MS);
	coord_log_has(c, "SIGTERM: stopping");
	coord_log_has(c, "stopped");
	for (int i = 0; i < 2; i++)
		part_expect(c, i, "disconnected");
	assert_null(tpc_wc_recv(wc, WAIT_MS));
	assert_int_equal(tpc_wc_last_rc(wc), -ECONNRESET);
	/* The open transaction was never decided: after a restart it is ABORTED. */
	coord_restart(c);
	part_wait_ready(c, 0);
	client_close(c, wc);
	wc = client_open(c, NULL);
	client_status_expect(wc, open, TPC__TXN_STATUS__STATUS_ABORTED);
	part_cmd(c, 0, "query %llu", (unsigned long long)open);
	part_expect(c, 0, "status %llu ABORTED", (unsigned long long)open);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_with_two_participants, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_commit_with_three_participants, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_no_vote_aborts_and_nobody_applies, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_prepare_timeout_aborts, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_client_abort_discards_everywhere, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_participant_lost_before_voting_aborts,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_aborts_open_transaction,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_transaction_timeout_aborts, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_read_only_participant_is_left_out_of_phase_two,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_same_key_fences_open_transaction, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_same_key_while_deciding_answers_pending_or_committed, cluster_setup,
			cluster_teardown),
		cmocka_unit_test_setup_teardown(test_status_query_follows_presumed_abort,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_stops_cleanly, cluster_setup,
						cluster_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
