/*
 * test_coordinator_identity.c - rule D8 against a real tpc-coordinator, with wire-level
 * participants (tests/support/wireclient.c) so each test says exactly which participant
 * id and incarnation speaks: a second state folder under a bound name is refused and the
 * real participant keeps its connection (also after a coordinator restart); a new
 * incarnation aborts what the old one joined and did not vote on, and a later Join for
 * it is refused; a YES re-sent by a restarted participant naming the joined incarnation
 * still counts, one naming another incarnation aborts the transaction; an older
 * incarnation than the newest seen is refused.
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
#include "wireclient.h"

/* A wire-level participant: name, id and incarnation. */
static tpc_wc *peer_hello(struct cluster *c, const char *name, uint8_t idbyte, uint64_t inc,
			  const uint64_t *prepared, size_t nprepared)
{
	struct tpc_wc_identity id;
	tpc_wc *wc = client_open_raw(c);
	int rc;

	memset(&id, 0, sizeof(id));
	memset(id.participant_id, idbyte, sizeof(id.participant_id));
	id.incarnation = inc;
	id.prepared_txids = prepared;
	id.n_prepared = nprepared;
	rc = tpc_wc_hello_participant(wc, name, &id, NULL);
	if (rc)
		fail_msg("hello as %s (incarnation %llu): %s", name, (unsigned long long)inc,
			 tpc_wc_errmsg(wc));
	return wc;
}

/* The same, expecting an Error @p code to the Hello and the connection closed. */
static void peer_hello_refused(struct cluster *c, const char *name, uint8_t idbyte,
			       uint64_t inc, Tpc__ErrorCode code, const char *says)
{
	struct tpc_wc_identity id;
	tpc_wc *wc = client_open_raw(c);

	memset(&id, 0, sizeof(id));
	memset(id.participant_id, idbyte, sizeof(id.participant_id));
	id.incarnation = inc;
	assert_int_equal(tpc_wc_hello_participant(wc, name, &id, NULL), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(wc), code);
	if (says && !strstr(tpc_wc_errmsg(wc), says))
		fail_msg("the refusal \"%s\" does not say \"%s\"", tpc_wc_errmsg(wc), says);
	assert_null(tpc_wc_recv(wc, WAIT_MS));
	assert_int_equal(tpc_wc_last_rc(wc), -ECONNRESET);
	client_close(c, wc);
}

/* Join @p txid as @p inc: 0 on a JoinReply, else the Error's code. */
static int peer_join(tpc_wc *wc, const char *name, uint64_t txid, uint64_t inc)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT, *rep = NULL;
	Tpc__Join j = TPC__JOIN__INIT;
	int rc;

	j.txid = txid;
	j.participant = (char *)name;
	j.incarnation = inc;
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &j;
	rc = tpc_wc_call(wc, &env, &rep);
	if (rep) {
		assert_int_equal(rep->body_case, TPC__ENVELOPE__BODY_JOIN_REPLY);
		tpc__envelope__free_unpacked(rep, NULL);
	}
	if (rc == TPC_WC_EREPLY)
		return (int)tpc_wc_error_code(wc);
	assert_int_equal(rc, 0);
	return 0;
}

static void peer_vote(tpc_wc *wc, uint64_t txid, Tpc__VoteKind v, uint64_t inc)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote vote = TPC__VOTE__INIT;

	vote.txid = txid;
	vote.vote = v;
	vote.incarnation = inc;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &vote;
	env.request_id = tpc_wc_next_request_id(wc);
	assert_int_equal(tpc_wc_send(wc, &env), 0);
}

static void peer_ack(tpc_wc *wc, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Ack ack = TPC__ACK__INIT;

	ack.txid = txid;
	env.body_case = TPC__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	assert_int_equal(tpc_wc_send(wc, &env), 0);
}

static void peer_expect_prepare(tpc_wc *wc, uint64_t txid)
{
	Tpc__Envelope *e = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_PREPARE, WAIT_MS);

	if (!e)
		fail_msg("no Prepare for %llu: %s", (unsigned long long)txid, tpc_wc_errmsg(wc));
	assert_int_equal(e->prepare->txid, txid);
	tpc__envelope__free_unpacked(e, NULL);
}

static void peer_ack(tpc_wc *wc, uint64_t txid);

/* The Decision for @p txid; a COMMIT redelivered for an earlier txid (its completion
 * was not durable before a coordinator restart) is acked as already applied. */
static void peer_expect_decision(tpc_wc *wc, uint64_t txid, Tpc__DecisionKind d)
{
	Tpc__Envelope *e;

	for (;;) {
		e = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_DECISION, WAIT_MS);
		if (!e)
			fail_msg("no Decision for %llu: %s", (unsigned long long)txid,
				 tpc_wc_errmsg(wc));
		if (e->decision->txid == txid)
			break;
		assert_true(e->decision->txid < txid);
		peer_ack(wc, e->decision->txid);
		tpc__envelope__free_unpacked(e, NULL);
	}
	assert_int_equal(e->decision->decision, d);
	tpc__envelope__free_unpacked(e, NULL);
}

/* An Error with @p code for @p txid arrives on @p wc (unsolicited, e.g. for a Vote). */
static void peer_expect_error(tpc_wc *wc, uint64_t txid, Tpc__ErrorCode code)
{
	Tpc__Envelope *e = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_ERROR, WAIT_MS);

	if (!e)
		fail_msg("no Error for %llu: %s", (unsigned long long)txid, tpc_wc_errmsg(wc));
	assert_int_equal(e->error->code, code);
	assert_int_equal(e->error->txid, txid);
	tpc__envelope__free_unpacked(e, NULL);
}

/* A full commit through one wire-level participant. */
static void commit_through(tpc_wc *client, tpc_wc *peer, const char *name, uint64_t inc)
{
	uint64_t txid = client_begin(client, NULL);

	assert_int_equal(peer_join(peer, name, txid, inc), 0);
	client_send_commit(client, txid);
	peer_expect_prepare(peer, txid);
	peer_vote(peer, txid, TPC__VOTE_KIND__VOTE_YES, inc);
	client_expect_outcome(client, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	peer_expect_decision(peer, txid, TPC__DECISION_KIND__DECISION_COMMIT);
	peer_ack(peer, txid);
}

static void test_second_id_under_a_bound_name_is_refused_and_the_real_one_stays(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, NULL);
	tpc_wc *real = peer_hello(c, "pa", 0xa1, 1, NULL, 0);
	tpc_wc *client = client_open(c, NULL);

	/* Another state folder under the same name: refused, told what to do, closed. */
	peer_hello_refused(c, "pa", 0xb2, 1, TPC__ERROR_CODE__ERR_IDENTITY,
			   "tpcctl participant forget pa");
	coord_log_has(c, "refused participant pa");
	/* The real participant's connection was not touched: it still commits. */
	commit_through(client, real, "pa", 1);
	peer_hello_refused(c, "pa", 0xb2, 7, TPC__ERROR_CODE__ERR_IDENTITY, NULL);
	commit_through(client, real, "pa", 1);

	/* The binding is durable: after a coordinator restart the stranger is still
	 * refused and the real one (a new incarnation) is welcome. */
	coord_kill9(c);
	coord_restart(c);
	peer_hello_refused(c, "pa", 0xb2, 1, TPC__ERROR_CODE__ERR_IDENTITY, NULL);
	tpc_wc *again = peer_hello(c, "pa", 0xa1, 2, NULL, 0);
	tpc_wc *client2 = client_open(c, NULL);
	commit_through(client2, again, "pa", 2);
}

static void test_new_incarnation_aborts_what_the_old_one_joined_and_refuses_its_join(void **state)
{
	struct cluster *c = *state;
	uint64_t prepared[1];

	coord_start(c, NULL, NULL);
	tpc_wc *client = client_open(c, NULL);
	tpc_wc *old = peer_hello(c, "pa", 0xa1, 1, NULL, 0);
	tpc_wc *other = peer_hello(c, "pb", 0xb1, 1, NULL, 0);
	uint64_t t1 = client_begin(client, NULL);
	assert_int_equal(peer_join(old, "pa", t1, 1), 0);
	assert_int_equal(peer_join(other, "pb", t1, 1), 0);

	/* pa restarts: its staged writes for t1 are gone. The new incarnation replaces the
	 * old connection and t1 aborts at once (the other participant hears ABORT). */
	tpc_wc *fresh = peer_hello(c, "pa", 0xa1, 2, NULL, 0);
	assert_null(tpc_wc_recv_body(old, TPC__ENVELOPE__BODY_PREPARE, WAIT_MS));
	assert_int_equal(tpc_wc_last_rc(old), -ECONNRESET);
	peer_expect_decision(other, t1, TPC__DECISION_KIND__DECISION_ABORT);
	client_status_expect(client, t1, TPC__TXN_STATUS__STATUS_ABORTED);
	/* The caller sends a second write for t1 to the restarted participant: its Join is
	 * refused, and the client's Commit hears ABORTED, never COMMITTED. */
	assert_int_equal(peer_join(fresh, "pa", t1, 2), TPC__ERROR_CODE__ERR_NOT_FOUND);
	client_commit_expect(client, t1, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	coord_log_has(c, "participant pa restarted (incarnation 1 -> 2)");

	/* A txid the new incarnation says it holds PREPARED is spared; a Join for it from
	 * yet another incarnation is refused (ERR_INCARNATION) and aborts it. */
	uint64_t t2 = client_begin(client, NULL);
	assert_int_equal(peer_join(fresh, "pa", t2, 2), 0);
	prepared[0] = t2;
	tpc_wc *third = peer_hello(c, "pa", 0xa1, 3, prepared, 1);
	client_status_expect(client, t2, TPC__TXN_STATUS__STATUS_PENDING);
	assert_int_equal(peer_join(third, "pa", t2, 3), TPC__ERROR_CODE__ERR_INCARNATION);
	client_commit_expect(client, t2, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);

	/* A plain reconnect of the same incarnation loses nothing. */
	uint64_t t3 = client_begin(client, NULL);
	assert_int_equal(peer_join(third, "pa", t3, 3), 0);
	tpc_wc *reconnected = peer_hello(c, "pa", 0xa1, 3, NULL, 0);
	client_send_commit(client, t3);
	peer_expect_prepare(reconnected, t3);
	peer_vote(reconnected, t3, TPC__VOTE_KIND__VOTE_YES, 3);
	client_expect_outcome(client, t3, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);

	/* An older incarnation than the newest seen: a replaced process; refused. */
	peer_hello_refused(c, "pa", 0xa1, 2, TPC__ERROR_CODE__ERR_IDENTITY, "older");
}

static void test_yes_from_a_restarted_participant_naming_the_joined_incarnation_counts(
	void **state)
{
	struct cluster *c = *state;
	uint64_t prepared[1];

	coord_start(c, NULL, NULL);
	tpc_wc *client = client_open(c, NULL);
	tpc_wc *a = peer_hello(c, "pa", 0xa1, 1, NULL, 0);
	tpc_wc *b = peer_hello(c, "pb", 0xb1, 1, NULL, 0);
	uint64_t t1 = client_begin(client, NULL);
	assert_int_equal(peer_join(a, "pa", t1, 1), 0);
	assert_int_equal(peer_join(b, "pb", t1, 1), 0);
	client_send_commit(client, t1);
	peer_expect_prepare(a, t1);
	peer_expect_prepare(b, t1);
	peer_vote(b, t1, TPC__VOTE_KIND__VOTE_YES, 1);

	/* pa made its PREPARED record durable, then died before its vote left; its next
	 * incarnation says Hello before the old connection is seen to close, lists t1 as
	 * held PREPARED and votes YES naming incarnation 1, the one that joined. */
	prepared[0] = t1;
	tpc_wc *a2 = peer_hello(c, "pa", 0xa1, 2, prepared, 1);
	peer_expect_prepare(a2, t1); /* resent: it has not voted */
	peer_vote(a2, t1, TPC__VOTE_KIND__VOTE_YES, 1);
	client_expect_outcome(client, t1, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	peer_expect_decision(a2, t1, TPC__DECISION_KIND__DECISION_COMMIT);
	peer_expect_decision(b, t1, TPC__DECISION_KIND__DECISION_COMMIT);

	/* The same story with a YES naming the new incarnation: refused, and the
	 * transaction aborts (whatever joined is not what would vote). */
	uint64_t t2 = client_begin(client, NULL);
	assert_int_equal(peer_join(a2, "pa", t2, 2), 0);
	assert_int_equal(peer_join(b, "pb", t2, 1), 0);
	client_send_commit(client, t2);
	peer_expect_prepare(a2, t2);
	prepared[0] = t2;
	tpc_wc *a3 = peer_hello(c, "pa", 0xa1, 3, prepared, 1);
	peer_expect_prepare(a3, t2);
	peer_vote(a3, t2, TPC__VOTE_KIND__VOTE_YES, 3);
	peer_expect_error(a3, t2, TPC__ERROR_CODE__ERR_INCARNATION);
	client_expect_outcome(client, t2, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_second_id_under_a_bound_name_is_refused_and_the_real_one_stays,
			cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_new_incarnation_aborts_what_the_old_one_joined_and_refuses_its_join,
			cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_yes_from_a_restarted_participant_naming_the_joined_incarnation_counts,
			cluster_setup, cluster_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
