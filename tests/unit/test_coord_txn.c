/*
 * test_coord_txn.c - unit tests of the coordinator's pure per-transaction state machine
 * (coordinator/txn.c).
 *
 * Every step goes through step(), which also checks the durability rules on what the
 * step emitted: no Decision(COMMIT) and no COMMITTED reply before the COMMIT record is
 * durable (D1, except a commit with nothing to make durable), no ACT_LOG_COMPLETE while
 * a YES voter has not acked (D4). A fake log with a countdown fails the Nth write, and a
 * seeded random driver checks the same invariants over many event orders.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "txn.h"

#define T0 1000u          /* time of Begin in most tests */
#define TXN_TIMEOUT 5000u /* ACTIVE longer than this aborts */
#define OWNER 11u         /* connection that began the transaction */
#define CLIENT2 22u       /* another client connection */
#define JOIN_CONN 33u     /* the participant's connection (join replies) */
#define STRANGER 999u     /* a peer that never joined */

static const struct coord_txn_config CFG = {
	.prepare_timeout_ms = 1000,
	.retry_initial_ms = 100,
	.retry_max_ms = 800,
	.log_retry_ms = 50,
	.max_parts = 8,
};

static uint32_t peer_id(unsigned i)
{
	return 100u + i;
}

/* ---- events ------------------------------------------------------------------------ */

static struct coord_event ev_join(uint32_t peer, uint64_t req)
{
	return (struct coord_event){ .type = EV_JOIN, .peer = peer, .conn = JOIN_CONN, .req = req };
}

static struct coord_event ev_commit(uint64_t conn, uint64_t req)
{
	return (struct coord_event){ .type = EV_COMMIT, .conn = conn, .req = req };
}

static struct coord_event ev_abort(uint64_t conn, uint64_t req)
{
	return (struct coord_event){ .type = EV_ABORT, .conn = conn, .req = req };
}

static struct coord_event ev_vote(uint32_t peer, int vote)
{
	return (struct coord_event){ .type = EV_VOTE, .peer = peer, .vote = vote };
}

static struct coord_event ev_join_inc(uint32_t peer, uint64_t req, uint64_t inc)
{
	struct coord_event ev = ev_join(peer, req);
	ev.inc = inc;
	return ev;
}

static struct coord_event ev_vote_inc(uint32_t peer, int vote, uint64_t inc)
{
	struct coord_event ev = ev_vote(peer, vote);
	ev.inc = inc;
	return ev;
}

static struct coord_event ev_restarted(uint32_t peer, uint64_t inc)
{
	return (struct coord_event){ .type = EV_PEER_RESTARTED, .peer = peer, .inc = inc };
}

static struct coord_event ev_logged(int status)
{
	return (struct coord_event){ .type = EV_LOGGED, .status = status };
}

static struct coord_event ev_ack(uint32_t peer)
{
	return (struct coord_event){ .type = EV_ACK, .peer = peer };
}

static struct coord_event ev_simple(enum coord_ev_type type, uint32_t peer)
{
	return (struct coord_event){ .type = type, .peer = peer };
}

static struct coord_event ev_client_gone(uint64_t conn)
{
	return (struct coord_event){ .type = EV_CLIENT_GONE, .conn = conn };
}

static struct coord_event ev_operator(int decision)
{
	return (struct coord_event){ .type = EV_OPERATOR, .decision = decision };
}

/* ---- looking at actions -------------------------------------------------------------- */

static size_t count_type(const struct coord_actions *out, enum coord_act_type type)
{
	size_t n = 0;
	for (size_t i = 0; i < out->n; i++)
		n += out->a[i].type == type;
	return n;
}

/* The nth (0-based) action of a type, or NULL. */
static const struct coord_action *find_nth(const struct coord_actions *out,
					   enum coord_act_type type, size_t nth)
{
	for (size_t i = 0; i < out->n; i++)
		if (out->a[i].type == type && nth-- == 0)
			return &out->a[i];
	return NULL;
}

static const struct coord_action *find_type(const struct coord_actions *out,
					    enum coord_act_type type)
{
	return find_nth(out, type, 0);
}

static size_t count_decisions(const struct coord_actions *out, int decision)
{
	size_t n = 0;
	for (size_t i = 0; i < out->n; i++)
		n += out->a[i].type == ACT_SEND_DECISION && out->a[i].decision == decision;
	return n;
}

static size_t count_decisions_to(const struct coord_actions *out, uint32_t peer, int decision)
{
	size_t n = 0;
	for (size_t i = 0; i < out->n; i++)
		n += out->a[i].type == ACT_SEND_DECISION && out->a[i].peer == peer &&
		     out->a[i].decision == decision;
	return n;
}

static size_t count_prepares_to(const struct coord_actions *out, uint32_t peer)
{
	size_t n = 0;
	for (size_t i = 0; i < out->n; i++)
		n += out->a[i].type == ACT_SEND_PREPARE && out->a[i].peer == peer;
	return n;
}

/* The outcome reply to (conn, req), or NULL. Fails if there are two. */
static const struct coord_action *outcome_for(const struct coord_actions *out, uint64_t conn,
					      uint64_t req)
{
	const struct coord_action *found = NULL;
	for (size_t i = 0; i < out->n; i++) {
		const struct coord_action *a = &out->a[i];
		if (a->type == ACT_REPLY_OUTCOME && a->conn == conn && a->req == req) {
			assert_null(found);
			found = a;
		}
	}
	return found;
}

static void assert_outcome(const struct coord_actions *out, uint64_t conn, uint64_t req,
			   int outcome)
{
	const struct coord_action *a = outcome_for(out, conn, req);
	assert_non_null(a);
	assert_int_equal(a->outcome, outcome);
	assert_non_null(a->reason);
}

static void assert_error_reply(const struct coord_actions *out, uint64_t conn, uint64_t req,
			       int err)
{
	assert_int_equal(count_type(out, ACT_REPLY_ERROR), 1);
	const struct coord_action *a = find_type(out, ACT_REPLY_ERROR);
	assert_int_equal(a->conn, conn);
	assert_int_equal(a->req, req);
	assert_int_equal(a->err, err);
	assert_non_null(a->reason);
	assert_true(strlen(a->reason) > 0);
}

static size_t count_part_state(const struct coord_txn *t, enum coord_part_state s)
{
	size_t n = 0;
	for (uint8_t i = 0; i < t->nparts; i++)
		n += t->parts[i].state == s;
	return n;
}

static uint8_t part_state(struct coord_txn *t, uint32_t peer)
{
	struct coord_txn_part *p = coord_txn_find_part(t, peer);
	assert_non_null(p);
	return p->state;
}

/*
 * D1 and D4 on one step's output. A Decision(COMMIT) or a COMMITTED reply may come only
 * from COMMITTING (the record is durable) or from the EV_LOGGED(ok) step; the only other
 * COMMITTED is a commit with nothing to make durable (no YES voter, no key).
 * ACT_LOG_COMPLETE only when no YES voter is left unacked.
 */
static void check_rules(const struct coord_txn *t, uint8_t before,
			const struct coord_event *ev, const struct coord_actions *out)
{
	int durable = before == TXN_COMMITTING ||
		      (before == TXN_LOGGING && ev->type == EV_LOGGED && ev->status >= 0);
	int nothing_to_log = count_part_state(t, PART_YES) == 0 &&
			     count_part_state(t, PART_ACKED) == 0 && t->key == NULL;

	for (size_t i = 0; i < out->n; i++) {
		const struct coord_action *a = &out->a[i];
		if (a->type == ACT_SEND_DECISION && a->decision == DECIDE_COMMIT)
			assert_true(durable);
		if (a->type == ACT_SEND_DECISION && a->decision == DECIDE_ABORT)
			assert_false(durable);
		if (a->type == ACT_REPLY_OUTCOME && a->outcome == OUTCOME_COMMITTED)
			assert_true(durable || nothing_to_log);
		if (a->type == ACT_REPLY_OUTCOME && a->outcome == OUTCOME_ABORTED)
			assert_false(durable);
		if (a->type == ACT_LOG_COMPLETE) {
			assert_true(durable);
			assert_int_equal(count_part_state(t, PART_YES), 0);
		}
		if (a->type == ACT_FORGET)
			assert_int_equal(t->state, TXN_DONE);
	}
}

/* One step with a fresh action list, checked against D1/D4. */
static int step_at(struct coord_txn *t, struct coord_event ev, uint64_t now,
		   struct coord_actions *out)
{
	uint8_t before = t->state;
	out->n = 0;
	int rc = coord_txn_step(t, &CFG, &ev, now, out);
	check_rules(t, before, &ev, out);
	return rc;
}

/* ---- fixtures ------------------------------------------------------------------------- */

/* A transaction in ACTIVE with peers peer_id(0..n-1) joined. */
static void make_active(struct coord_txn *t, unsigned n)
{
	struct coord_actions out;

	coord_txn_init(t, 42, OWNER, T0, TXN_TIMEOUT);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(step_at(t, ev_join(peer_id(i), i + 1), T0, &out), 0);
		assert_int_equal(count_type(&out, ACT_REPLY_JOIN), 1);
	}
	assert_int_equal(t->nparts, n);
	assert_int_equal(t->state, TXN_ACTIVE);
}

/* ... then the owner's Commit (req 7): PREPARING. */
static void make_preparing(struct coord_txn *t, unsigned n)
{
	struct coord_actions out;

	make_active(t, n);
	assert_int_equal(step_at(t, ev_commit(OWNER, 7), T0 + 10, &out), 0);
	assert_int_equal(t->state, TXN_PREPARING);
}

/* ... then every peer votes YES: LOGGING. */
static void make_logging(struct coord_txn *t, unsigned n)
{
	struct coord_actions out;

	make_preparing(t, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(step_at(t, ev_vote(peer_id(i), VOTE_YES), T0 + 20, &out), 0);
	assert_int_equal(t->state, TXN_LOGGING);
}

/* ... then the COMMIT record is durable at T0 + 30: COMMITTING. */
#define T_LOGGED (T0 + 30)
static void make_committing(struct coord_txn *t, unsigned n)
{
	struct coord_actions out;

	make_logging(t, n);
	assert_int_equal(step_at(t, ev_logged(0), T_LOGGED, &out), 0);
	assert_int_equal(t->state, TXN_COMMITTING);
}

/* ---- legal transitions ------------------------------------------------------------------ */

static void test_init_starts_active_with_no_participants(void **state)
{
	(void)state;
	struct coord_txn t;

	coord_txn_init(&t, 42, OWNER, T0, TXN_TIMEOUT);
	assert_int_equal(t.state, TXN_ACTIVE);
	assert_int_equal(t.txid, 42);
	assert_int_equal(t.owner, OWNER);
	assert_int_equal(t.nparts, 0);
	assert_int_equal(t.deadline_ms, T0 + TXN_TIMEOUT);
	assert_null(t.key);
	assert_int_equal(t.waiter, 0);
	coord_txn_release(&t);
}

static void test_join_in_active_adds_participant_and_replies(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	coord_txn_init(&t, 42, OWNER, T0, TXN_TIMEOUT);
	assert_int_equal(step_at(&t, ev_join(peer_id(0), 5), T0 + 1, &out), 0);
	assert_int_equal(out.n, 1);
	const struct coord_action *a = find_type(&out, ACT_REPLY_JOIN);
	assert_non_null(a);
	assert_int_equal(a->conn, JOIN_CONN);
	assert_int_equal(a->req, 5);
	assert_int_equal(a->peer, peer_id(0));
	assert_int_equal(t.state, TXN_ACTIVE);
	assert_int_equal(t.nparts, 1);
	assert_int_equal(part_state(&t, peer_id(0)), PART_JOINED);
	coord_txn_release(&t);
}

static void test_rejoin_in_active_is_idempotent(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_join(peer_id(1), 9), T0 + 2, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(find_type(&out, ACT_REPLY_JOIN)->req, 9);
	assert_int_equal(t.nparts, 2);
	assert_int_equal(t.state, TXN_ACTIVE);

	/* Committing still prepares each participant once. */
	assert_int_equal(step_at(&t, ev_commit(OWNER, 7), T0 + 3, &out), 0);
	assert_int_equal(count_prepares_to(&out, peer_id(0)), 1);
	assert_int_equal(count_prepares_to(&out, peer_id(1)), 1);
	assert_int_equal(out.n, 2);
	coord_txn_release(&t);
}

static void test_commit_sends_prepare_to_every_participant(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 3);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 7), T0 + 10, &out), 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(out.n, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(count_prepares_to(&out, peer_id(i)), 1);
	/* Nobody is told anything yet; the committer waits. */
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 0);
	assert_int_equal(t.waiter, OWNER);
	assert_int_equal(t.waiter_req, 7);
	assert_int_equal(t.prepare_deadline_ms, T0 + 10 + CFG.prepare_timeout_ms);
	coord_txn_release(&t);
}

static void test_partial_yes_votes_wait_for_the_rest(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 3);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out), 0);
	assert_int_equal(step_at(&t, ev_vote(peer_id(2), VOTE_YES), T0 + 21, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(part_state(&t, peer_id(0)), PART_YES);
	assert_int_equal(part_state(&t, peer_id(1)), PART_JOINED);
	coord_txn_release(&t);
}

/* D1: the last YES queues the COMMIT record and does nothing else. */
static void test_all_yes_emits_only_log_commit(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 3);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	step_at(&t, ev_vote(peer_id(1), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_vote(peer_id(2), VOTE_YES), T0 + 25, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.a[0].type, ACT_LOG_COMMIT);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 0);
	assert_int_equal(t.decided_ms, T0 + 25);
	assert_int_equal(count_part_state(&t, PART_YES), 3);
	coord_txn_release(&t);
}

static void test_logged_ok_replies_committed_and_sends_commit_to_every_yes_voter(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 3);
	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED, &out), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	assert_int_equal(count_decisions(&out, DECIDE_COMMIT), 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(count_decisions_to(&out, peer_id(i), DECIDE_COMMIT), 1);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 0);
	assert_int_equal(count_type(&out, ACT_FORGET), 0);
	assert_int_equal(out.n, 4);
	assert_int_equal(t.waiter, 0);
	assert_int_equal(t.attempts, 1);
	assert_int_equal(t.retry_at_ms, T_LOGGED + CFG.retry_initial_ms);
	coord_txn_release(&t);
}

/* D4: the record is completed and the transaction forgotten only after the last ack. */
static void test_completion_only_after_last_ack(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 3);
	assert_int_equal(step_at(&t, ev_ack(peer_id(1)), T_LOGGED + 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(part_state(&t, peer_id(1)), PART_ACKED);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 2, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);

	assert_int_equal(step_at(&t, ev_ack(peer_id(2)), T_LOGGED + 3, &out), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.a[0].type, ACT_LOG_COMPLETE);
	assert_int_equal(out.a[1].type, ACT_FORGET);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(coord_txn_next_deadline(&t), 0);
	coord_txn_release(&t);
}

static void test_duplicate_ack_is_harmless(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 2);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 1, &out), 0);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 2, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(part_state(&t, peer_id(1)), PART_YES);

	assert_int_equal(step_at(&t, ev_ack(peer_id(1)), T_LOGGED + 3, &out), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);

	/* A late duplicate after completion changes nothing and completes nothing again. */
	assert_int_equal(step_at(&t, ev_ack(peer_id(1)), T_LOGGED + 4, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);
}

static void test_single_participant_happy_path_end_to_end(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	coord_txn_init(&t, 7, OWNER, T0, TXN_TIMEOUT);
	assert_int_equal(step_at(&t, ev_join(peer_id(0), 1), T0, &out), 0);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 2), T0 + 1, &out), 0);
	assert_int_equal(count_prepares_to(&out, peer_id(0)), 1);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 2, &out), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);
	assert_int_equal(step_at(&t, ev_logged(0), T0 + 3, &out), 0);
	assert_outcome(&out, OWNER, 2, OUTCOME_COMMITTED);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T0 + 4, &out), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(t.abort_reason, ABORT_NONE);
	coord_txn_release(&t);
}

/* ---- abort paths ---------------------------------------------------------------------- */

/* What every abort step emits: ABORTED to the waiter (if any), FORGET, nothing logged. */
static void assert_aborted_cleanly(const struct coord_txn *t, const struct coord_actions *out,
				   enum coord_abort_reason why)
{
	assert_int_equal(t->state, TXN_DONE);
	assert_int_equal(t->abort_reason, why);
	assert_int_equal(count_type(out, ACT_FORGET), 1);
	assert_int_equal(out->a[out->n - 1].type, ACT_FORGET);
	assert_int_equal(count_type(out, ACT_LOG_COMMIT), 0);
	assert_int_equal(count_type(out, ACT_LOG_COMPLETE), 0);
	assert_int_equal(count_decisions(out, DECIDE_COMMIT), 0);
	assert_int_equal(count_type(out, ACT_SEND_PREPARE), 0);
	assert_int_equal(coord_txn_next_deadline(t), 0);
}

static void test_no_vote_aborts_and_sends_abort_to_others_but_not_the_no_voter(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 3);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_NO), T0 + 21, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_VOTE_NO);
	assert_int_equal(t.no_voter, peer_id(1));
	/* The YES voter (prepared) and the unvoted peer hear ABORT; the NO voter does not. */
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(2), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_ABORT), 0);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	assert_int_equal(out.n, 4);
	assert_int_equal(t.decided_ms, T0 + 21);
	coord_txn_release(&t);
}

static void test_no_vote_in_active_aborts_before_prepare(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_NO), T0 + 5, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_VOTE_NO);
	assert_int_equal(t.no_voter, peer_id(0));
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 0);
	/* Nobody is waiting in ACTIVE: no outcome reply. */
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 0);

	/* The client's Commit afterwards finds no transaction. */
	assert_int_equal(step_at(&t, ev_commit(OWNER, 8), T0 + 6, &out), COORD_ERR_NOT_FOUND);
	assert_error_reply(&out, OWNER, 8, COORD_ERR_NOT_FOUND);
	coord_txn_release(&t);
}

static void test_prepare_timeout_aborts_on_tick(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	uint64_t deadline;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	deadline = coord_txn_next_deadline(&t);
	assert_int_equal(deadline, T0 + 10 + CFG.prepare_timeout_ms);

	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), deadline - 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);

	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), deadline, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_PREPARE_TIMEOUT);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_ABORT), 1);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	coord_txn_release(&t);
}

static void test_txn_timeout_in_active_aborts_on_tick(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(coord_txn_next_deadline(&t), T0 + TXN_TIMEOUT);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0 + TXN_TIMEOUT - 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_ACTIVE);

	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0 + TXN_TIMEOUT + 3, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_TXN_TIMEOUT);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 2);
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 0);
	coord_txn_release(&t);
}

/* A Commit taken before the timeout tick wins; the ACTIVE deadline no longer applies. */
static void test_commit_before_txn_timeout_tick_wins_the_race(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 1);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 7), T0 + TXN_TIMEOUT + 5, &out), 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0 + TXN_TIMEOUT + 6, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);
}

static void test_client_abort_in_active_aborts_and_tells_the_aborter(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 3), T0 + 5, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_CLIENT);
	assert_outcome(&out, OWNER, 3, OUTCOME_ABORTED);
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_ABORT), 1);
	coord_txn_release(&t);
}

static void test_client_abort_in_preparing_tells_aborter_and_pending_committer(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(1), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 4), T0 + 21, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_CLIENT);
	assert_outcome(&out, OWNER, 4, OUTCOME_ABORTED);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 2);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_ABORT), 1);
	assert_int_equal(t.waiter, 0);
	coord_txn_release(&t);
}

static void test_peer_down_before_voting_aborts_in_preparing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 3);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_DOWN, peer_id(1)), T0 + 21, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_PART_LOST);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(2), DECIDE_ABORT), 1);
	coord_txn_release(&t);
}

/* A prepared participant that drops keeps its vote: D2, it will ask again. */
static void test_peer_down_after_voting_yes_does_not_abort(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_DOWN, peer_id(0)), T0 + 21, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(part_state(&t, peer_id(0)), PART_YES);

	/* A stranger going down changes nothing either. */
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_DOWN, STRANGER), T0 + 22, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);
}

static void test_peer_down_in_active_does_not_abort(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_DOWN, peer_id(0)), T0 + 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_ACTIVE);
	coord_txn_release(&t);
}

static void test_client_gone_aborts_active_when_it_is_the_owner(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_client_gone(OWNER), T0 + 5, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_CLIENT_GONE);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 2);
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 0);
	coord_txn_release(&t);
}

static void test_client_gone_of_another_connection_changes_nothing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_client_gone(CLIENT2), T0 + 5, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_ACTIVE);
	assert_int_equal(t.abort_reason, ABORT_NONE);
	coord_txn_release(&t);
}

/* Once the Commit is under way the owner leaving does not abort; its reply is dropped. */
static void test_client_gone_in_preparing_drops_the_waiter_but_commits(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 1);
	assert_int_equal(step_at(&t, ev_client_gone(OWNER), T0 + 15, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(t.waiter, 0);

	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED, &out), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 0);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	coord_txn_release(&t);
}

static void test_fence_aborts_active(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_simple(EV_FENCE, 0), T0 + 5, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_FENCED);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 2);
	coord_txn_release(&t);
}

static void test_fence_is_refused_while_preparing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	assert_int_equal(step_at(&t, ev_simple(EV_FENCE, 0), T0 + 15, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(t.waiter, OWNER);

	/* ... and after the decision. */
	coord_txn_release(&t);
	make_committing(&t, 1);
	assert_int_equal(step_at(&t, ev_simple(EV_FENCE, 0), T_LOGGED + 1, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

static void test_operator_abort_in_active_and_preparing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_ABORT), T0 + 5, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_OPERATOR);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 2);
	coord_txn_release(&t);

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_ABORT), T0 + 21, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_OPERATOR);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 2);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	coord_txn_release(&t);
}

static void test_operator_cannot_abort_once_the_decision_is_being_logged(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 2);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_ABORT), T0 + 25, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_LOGGING);
	coord_txn_release(&t);

	make_committing(&t, 2);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_ABORT), T_LOGGED + 1, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

static void test_operator_commit_is_refused(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_COMMIT), T0 + 21, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);
}

/* ---- heuristic decisions (admin API): forced commit, forced abort of COMMITTING ------------ */

static struct coord_event ev_operator_forced(int decision)
{
	return (struct coord_event){ .type = EV_OPERATOR, .decision = decision, .force = 1 };
}

static void test_forced_operator_commit_leaves_out_the_unvoted_and_logs(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_operator_forced(DECIDE_COMMIT), T0 + 21, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions(&out, DECIDE_COMMIT), 0);
	assert_int_equal(part_state(&t, peer_id(1)), PART_NO);
	/* D1 as ever: the COMMIT goes out only once the record is durable, to p0 only. */
	assert_int_equal(step_at(&t, ev_logged(0), T0 + 30, &out), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	assert_int_equal(count_decisions(&out, DECIDE_COMMIT), 1);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	coord_txn_release(&t);
}

static void test_operator_commit_in_active_needs_force(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_COMMIT), T0 + 5, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_ACTIVE);
	/* Forced: nobody voted, so nobody commits; both are told ABORT; nothing to log. */
	assert_int_equal(step_at(&t, ev_operator_forced(DECIDE_COMMIT), T0 + 6, &out), 0);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 2);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 0);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	coord_txn_release(&t);
}

static void test_operator_commit_in_committing_is_a_no_op(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 2);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_COMMIT), T_LOGGED + 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

/* coord_txn_operator_check() is the rule EV_OPERATOR follows: in every state, for each
 * decision with and without force, a refusal by the check is a refusal by the step, and
 * an acceptance is a step that applies (the admin API plans from the check). */
static void test_operator_check_agrees_with_the_step(void **state)
{
	(void)state;
	void (*make[])(struct coord_txn *, unsigned) = { make_active, make_preparing,
							 make_logging, make_committing };
	static const uint64_t at[] = { T0 + 5, T0 + 21, T0 + 25, T_LOGGED + 1 };

	for (size_t m = 0; m < sizeof(make) / sizeof(make[0]); m++)
		for (int d = 0; d < 2; d++)
			for (int force = 0; force < 2; force++) {
				struct coord_txn t;
				struct coord_actions out;
				struct coord_op_check c;
				int decision = d ? DECIDE_COMMIT : DECIDE_ABORT;
				struct coord_event ev = { .type = EV_OPERATOR,
							  .decision = decision, .force = force };

				make[m](&t, 2);
				int rc = coord_txn_operator_check(&t, decision, force, &c);
				assert_true(rc == 0 || rc == COORD_ERR_NOT_ACTIVE);
				if (rc)
					assert_non_null(c.why);
				assert_int_equal(step_at(&t, ev, at[m], &out), rc);
				coord_txn_release(&t);
			}
}

static void test_operator_check_plans(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_op_check c;

	make_preparing(&t, 2);
	assert_int_equal(coord_txn_operator_check(&t, DECIDE_COMMIT, 0, &c),
			 COORD_ERR_NOT_ACTIVE); /* nobody voted yet */
	assert_int_equal(coord_txn_operator_check(&t, DECIDE_COMMIT, 1, &c), 0);
	assert_int_equal(c.plan, COORD_OP_STEP);
	assert_string_equal(c.overrode, "none");
	coord_txn_release(&t);

	make_logging(&t, 2);
	assert_int_equal(coord_txn_operator_check(&t, DECIDE_ABORT, 1, &c),
			 COORD_ERR_NOT_ACTIVE);
	assert_non_null(strstr(c.why, "durable"));
	coord_txn_release(&t);

	make_committing(&t, 2);
	assert_int_equal(coord_txn_operator_check(&t, DECIDE_COMMIT, 0, &c), 0);
	assert_int_equal(c.plan, COORD_OP_NOOP);
	assert_string_equal(c.already, "COMMITTED");
	assert_int_equal(coord_txn_operator_check(&t, DECIDE_ABORT, 0, &c),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(coord_txn_operator_check(&t, DECIDE_ABORT, 1, &c), 0);
	assert_int_equal(c.plan, COORD_OP_DROP);
	assert_string_equal(c.overrode, "COMMIT");
	coord_txn_release(&t);
}

static struct coord_event ev_dropped(int status)
{
	return (struct coord_event){ .type = EV_DROPPED, .status = status };
}

/* A forced abort of COMMITTING is two steps: EV_OPERATOR marks it while the server
 * deletes the COMMIT record, EV_DROPPED (the record is gone) tells the unacknowledged
 * ABORT and forgets. check_rules() would rightly call an ABORT from COMMITTING a D1
 * breach, so EV_DROPPED is taken directly. */
static void test_forced_operator_abort_of_committing_tells_the_unacked_and_forgets(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out = { 0 };
	struct coord_event dropped = ev_dropped(0);

	make_committing(&t, 2);
	step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 1, &out);
	assert_int_equal(step_at(&t, ev_operator_forced(DECIDE_ABORT), T_LOGGED + 2, &out), 0);
	assert_int_equal(out.n, 0); /* nothing until the DROP is durable */
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(t.dropping, DROP_WRITING);
	out.n = 0;
	assert_int_equal(coord_txn_step(&t, &CFG, &dropped, T_LOGGED + 3, &out), 0);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(t.abort_reason, ABORT_OPERATOR);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_ABORT), 1);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 1);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 0);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	coord_txn_release(&t);
}

/* While the DROP is written: no resend on a tick, a reconnect or a repeated YES. */
static void test_committing_marked_for_drop_resends_nothing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 2);
	assert_int_equal(step_at(&t, ev_operator_forced(DECIDE_ABORT), T_LOGGED + 1, &out), 0);
	assert_int_equal(coord_txn_next_deadline(&t), 0);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T_LOGGED + 10000, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(1)), T_LOGGED + 2, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_YES), T_LOGGED + 3, &out), 0);
	assert_int_equal(out.n, 0);
	/* A second override, or a commit, waits for this one. */
	assert_int_equal(step_at(&t, ev_operator_forced(DECIDE_ABORT), T_LOGGED + 4, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_int_equal(step_at(&t, ev_operator(DECIDE_COMMIT), T_LOGGED + 4, &out),
			 COORD_ERR_NOT_ACTIVE);
	/* A client asking hears UNKNOWN, not COMMITTED, while the answer may still change. */
	assert_int_equal(step_at(&t, ev_commit(OWNER, 9), T_LOGGED + 5, &out), 0);
	assert_outcome(&out, OWNER, 9, OUTCOME_UNKNOWN);
	coord_txn_release(&t);
}

/* Scenario: the last ack arrives while the DROP is written. It completes nothing then;
 * once the DROP is durable the machine writes the COMMIT record (and key) again, and
 * only when that is durable completes (the tombstone) and forgets. */
static void test_last_ack_racing_a_drop_restores_the_commit_record(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	struct coord_event dropped = ev_dropped(0);

	make_committing(&t, 2);
	step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 1, &out);
	assert_int_equal(step_at(&t, ev_operator_forced(DECIDE_ABORT), T_LOGGED + 2, &out), 0);
	assert_int_equal(step_at(&t, ev_ack(peer_id(1)), T_LOGGED + 3, &out), 0);
	assert_int_equal(out.n, 0); /* no completion while the DROP is in flight */
	assert_int_equal(part_state(&t, peer_id(1)), PART_ACKED);
	assert_int_equal(t.state, TXN_COMMITTING);

	out.n = 0;
	assert_int_equal(coord_txn_step(&t, &CFG, &dropped, T_LOGGED + 4, &out), 0);
	assert_int_equal(out.n, 1);
	assert_non_null(find_type(&out, ACT_LOG_COMMIT));
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(t.dropping, DROP_RESTORING);

	/* The rewrite fails once: it is retried after log_retry_ms, nothing else happens. */
	assert_int_equal(step_at(&t, ev_logged(-EIO), T_LOGGED + 5, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(coord_txn_next_deadline(&t), T_LOGGED + 5 + CFG.log_retry_ms);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T_LOGGED + 5 + CFG.log_retry_ms, &out),
			 0);
	assert_int_equal(out.n, 1);
	assert_non_null(find_type(&out, ACT_LOG_COMMIT));

	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED + 100, &out), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(t.abort_reason, ABORT_NONE);
	coord_txn_release(&t);
}

/* Found by fuzz/fuzz_coord_txn: after a DROP raced the last ack, the COMMIT record is
 * gone until it is written again; a client asking then must hear UNKNOWN, not COMMITTED
 * (a crash before the rewrite would leave no record: D1). COMMITTED once it is durable. */
static void test_client_hears_unknown_while_the_commit_record_is_restored(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	struct coord_event dropped = ev_dropped(0);

	make_committing(&t, 1);
	assert_int_equal(step_at(&t, ev_operator_forced(DECIDE_ABORT), T_LOGGED + 1, &out), 0);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 2, &out), 0);
	out.n = 0;
	assert_int_equal(coord_txn_step(&t, &CFG, &dropped, T_LOGGED + 3, &out), 0);
	assert_int_equal(t.dropping, DROP_RESTORING);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 9), T_LOGGED + 4, &out), 0);
	assert_outcome(&out, OWNER, 9, OUTCOME_UNKNOWN);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 10), T_LOGGED + 5, &out), 0);
	assert_outcome(&out, OWNER, 10, OUTCOME_UNKNOWN);
	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED + 6, &out), 0);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);
}

/* A DROP that failed leaves the COMMIT in force: resends resume, and acks that came
 * meanwhile complete it. */
static void test_failed_drop_resumes_delivery_and_completion(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	struct coord_event failed = ev_dropped(-EIO);

	make_committing(&t, 2);
	step_at(&t, ev_operator_forced(DECIDE_ABORT), T_LOGGED + 1, &out);
	assert_int_equal(step_at(&t, failed, T_LOGGED + 2, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.dropping, DROP_NONE);
	assert_int_equal(coord_txn_next_deadline(&t), T_LOGGED + 2);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T_LOGGED + 2, &out), 0);
	assert_int_equal(count_decisions(&out, DECIDE_COMMIT), 2);

	/* Both acks during a second DROP that fails: completion at EV_DROPPED. */
	step_at(&t, ev_operator_forced(DECIDE_ABORT), T_LOGGED + 3, &out);
	step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 4, &out);
	step_at(&t, ev_ack(peer_id(1)), T_LOGGED + 4, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, failed, T_LOGGED + 5, &out), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);
}

/* A stray EV_DROPPED (no drop marked) is refused and changes nothing. */
static void test_dropped_without_a_marked_drop_is_refused(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 1);
	assert_int_equal(step_at(&t, ev_dropped(0), T_LOGGED + 1, &out), COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

/* Retry delays take a jitter from the event (jitter_pct of the delay at most). */
static void test_retry_delays_are_jittered_by_the_events_rand(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	struct coord_txn_config cfg = CFG;
	struct coord_event logged = ev_logged(0), tick = ev_simple(EV_TICK, 0);
	struct coord_event failed = ev_logged(-EIO);

	cfg.jitter_pct = 50; /* retry_initial 100: up to 50 more */
	make_logging(&t, 1);
	failed.rand = 1000 + 7; /* 1007 % (25 + 1) = 19 of log_retry 50 */
	out.n = 0;
	assert_int_equal(coord_txn_step(&t, &cfg, &failed, T_LOGGED, &out), 0);
	assert_int_equal(t.retry_at_ms, T_LOGGED + 50 + 1007 % 26);
	logged.rand = 77; /* 77 % 51 = 26 */
	out.n = 0;
	assert_int_equal(coord_txn_step(&t, &cfg, &logged, T_LOGGED + 100, &out), 0);
	assert_int_equal(t.retry_at_ms, T_LOGGED + 100 + 100 + 26);
	tick.rand = UINT32_MAX; /* next delay 200: at most 100 more */
	uint64_t at = t.retry_at_ms;
	out.n = 0;
	assert_int_equal(coord_txn_step(&t, &cfg, &tick, at, &out), 0);
	assert_true(t.retry_at_ms >= at + 200 && t.retry_at_ms <= at + 300);
	assert_int_equal(t.retry_at_ms, at + 200 + UINT32_MAX % 101);
	coord_txn_release(&t);
}

static void test_recovered_txn_naming_nobody_completes_on_its_first_tick(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	coord_txn_init_recovered(&t, 42, T0);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0, &out), 0);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	coord_txn_release(&t);
}

/* ---- read-only voters and empty transactions ------------------------------------------- */

static void test_read_only_voters_are_left_out_of_phase_two(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 3);
	step_at(&t, ev_vote(peer_id(0), VOTE_READ_ONLY), T0 + 20, &out);
	step_at(&t, ev_vote(peer_id(1), VOTE_YES), T0 + 20, &out);
	assert_int_equal(out.n, 0);
	step_at(&t, ev_vote(peer_id(2), VOTE_READ_ONLY), T0 + 20, &out);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);

	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED, &out), 0);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_COMMIT), 1);

	/* Resends skip them too. */
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), t.retry_at_ms, &out), 0);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_COMMIT), 1);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T_LOGGED + 1, &out), 0);
	assert_int_equal(out.n, 0);

	/* The single YES voter's ack completes it: read-only voters are not awaited. */
	assert_int_equal(step_at(&t, ev_ack(peer_id(1)), T_LOGGED + 300, &out), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);
}

static void test_all_read_only_without_key_commits_with_nothing_logged(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_READ_ONLY), T0 + 20, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_READ_ONLY), T0 + 21, &out), 0);
	assert_int_equal(t.state, TXN_DONE);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 0);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(out.n, 2);
	coord_txn_release(&t);
}

static void test_all_read_only_with_key_goes_through_log_commit(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	char key[] = "order-17";

	make_active(&t, 2);
	t.key = key;
	step_at(&t, ev_commit(OWNER, 7), T0 + 10, &out);
	step_at(&t, ev_vote(peer_id(0), VOTE_READ_ONLY), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_READ_ONLY), T0 + 21, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.a[0].type, ACT_LOG_COMMIT);

	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED, &out), 0);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);
}

static void test_commit_with_no_participants_and_no_key_commits_at_once(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	coord_txn_init(&t, 42, OWNER, T0, TXN_TIMEOUT);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 7), T0 + 1, &out), 0);
	assert_int_equal(t.state, TXN_DONE);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 0);
	assert_int_equal(count_type(&out, ACT_SEND_PREPARE), 0);
	assert_int_equal(out.n, 2);
	coord_txn_release(&t);
}

static void test_commit_with_no_participants_and_a_key_logs_first(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	char key[] = "k";

	coord_txn_init(&t, 42, OWNER, T0, TXN_TIMEOUT);
	t.key = key;
	assert_int_equal(step_at(&t, ev_commit(OWNER, 7), T0 + 1, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.a[0].type, ACT_LOG_COMMIT);

	assert_int_equal(step_at(&t, ev_logged(0), T0 + 2, &out), 0);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(count_type(&out, ACT_FORGET), 1);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);
}

/* ---- duplicate, late and wrong messages -------------------------------------------------- */

static void test_repeated_yes_in_preparing_changes_nothing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 21, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(part_state(&t, peer_id(1)), PART_JOINED);

	/* Still waits for the other vote, then logs once. */
	step_at(&t, ev_vote(peer_id(1), VOTE_YES), T0 + 22, &out);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);
	coord_txn_release(&t);
}

static void test_repeated_yes_in_logging_changes_nothing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 2);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_YES), T0 + 25, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(part_state(&t, peer_id(1)), PART_YES);
	coord_txn_release(&t);
}

static void test_yes_in_committing_resends_commit_to_that_peer(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 2);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_YES), T_LOGGED + 5, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_COMMIT), 1);
	assert_int_equal(part_state(&t, peer_id(1)), PART_YES);

	/* Even after it acked (it lost the decision after applying it): tell it again. */
	step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 6, &out);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_YES), T_LOGGED + 7, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	assert_int_equal(part_state(&t, peer_id(0)), PART_ACKED);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

static void test_changed_vote_in_preparing_is_a_protocol_error(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 3);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_NO), T0 + 21, &out),
			 COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(part_state(&t, peer_id(0)), PART_YES);

	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_READ_ONLY), T0 + 22, &out),
			 COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(part_state(&t, peer_id(0)), PART_YES);

	step_at(&t, ev_vote(peer_id(1), VOTE_READ_ONLY), T0 + 23, &out);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_YES), T0 + 24, &out),
			 COORD_ERR_PROTOCOL);
	assert_int_equal(part_state(&t, peer_id(1)), PART_READ_ONLY);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);
}

/* A prepared participant cannot take its YES back once the decision is being made. */
static void test_changed_vote_after_all_voted_is_a_protocol_error(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 2);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_NO), T0 + 25, &out),
			 COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(part_state(&t, peer_id(0)), PART_YES);

	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED, &out), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_NO), T_LOGGED + 1, &out),
			 COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(part_state(&t, peer_id(1)), PART_YES);
	coord_txn_release(&t);
}

static void test_vote_with_unknown_value_is_a_protocol_error(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 1);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), 3), T0 + 20, &out), COORD_ERR_PROTOCOL);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), -1), T0 + 20, &out), COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(part_state(&t, peer_id(0)), PART_JOINED);
	coord_txn_release(&t);
}

static void test_vote_from_a_peer_that_never_joined_is_refused(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 1);
	/* Not even a NO from a stranger may abort the transaction. */
	assert_int_equal(step_at(&t, ev_vote(STRANGER, VOTE_NO), T0 + 20, &out),
			 COORD_ERR_NOT_PARTICIPANT);
	assert_int_equal(step_at(&t, ev_vote(STRANGER, VOTE_YES), T0 + 20, &out),
			 COORD_ERR_NOT_PARTICIPANT);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(t.nparts, 1);
	assert_null(coord_txn_find_part(&t, STRANGER));
	coord_txn_release(&t);

	make_active(&t, 1);
	assert_int_equal(step_at(&t, ev_vote(STRANGER, VOTE_NO), T0 + 20, &out),
			 COORD_ERR_NOT_PARTICIPANT);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_ACTIVE);
	coord_txn_release(&t);
}

static void test_ack_from_a_peer_that_never_joined_is_refused(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 1);
	assert_int_equal(step_at(&t, ev_ack(STRANGER), T_LOGGED + 1, &out),
			 COORD_ERR_NOT_PARTICIPANT);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(part_state(&t, peer_id(0)), PART_YES);
	coord_txn_release(&t);
}

static void test_ack_before_the_decision_is_a_protocol_error(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 1);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T0 + 25, &out), COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(part_state(&t, peer_id(0)), PART_YES);
	assert_int_equal(t.state, TXN_LOGGING);
	coord_txn_release(&t);

	make_preparing(&t, 1);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T0 + 15, &out), COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);
}

static void test_join_after_commit_started_is_refused_not_active(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 1);
	assert_int_equal(step_at(&t, ev_join(peer_id(5), 77), T0 + 15, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_error_reply(&out, JOIN_CONN, 77, COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 1);
	assert_int_equal(t.nparts, 1);
	assert_null(coord_txn_find_part(&t, peer_id(5)));
	coord_txn_release(&t);

	/* Also a re-join by an existing participant, and in COMMITTING. */
	make_committing(&t, 1);
	assert_int_equal(step_at(&t, ev_join(peer_id(0), 78), T_LOGGED + 1, &out),
			 COORD_ERR_NOT_ACTIVE);
	assert_error_reply(&out, JOIN_CONN, 78, COORD_ERR_NOT_ACTIVE);
	assert_int_equal(count_type(&out, ACT_REPLY_JOIN), 0);
	coord_txn_release(&t);
}

static void test_second_commit_while_preparing_is_refused(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 8), T0 + 15, &out), COORD_ERR_NOT_ACTIVE);
	assert_error_reply(&out, OWNER, 8, COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_type(&out, ACT_SEND_PREPARE), 0);
	assert_int_equal(t.waiter, OWNER);
	assert_int_equal(t.waiter_req, 7);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);
}

static void test_commit_in_committing_replies_committed(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 2);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 8), T_LOGGED + 1, &out), 0);
	assert_int_equal(out.n, 1);
	assert_outcome(&out, OWNER, 8, OUTCOME_COMMITTED);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

static void test_abort_in_committing_is_told_committed(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 2);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 9), T_LOGGED + 1, &out), 0);
	assert_int_equal(out.n, 1);
	assert_outcome(&out, OWNER, 9, OUTCOME_COMMITTED);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

static void test_abort_in_logging_is_refused(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 2);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 9), T0 + 25, &out), COORD_ERR_NOT_ACTIVE);
	assert_error_reply(&out, OWNER, 9, COORD_ERR_NOT_ACTIVE);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(t.waiter, OWNER); /* the Commit still waits for its answer */

	/* The commit then completes normally. */
	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED, &out), 0);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	coord_txn_release(&t);
}

static void test_yes_vote_in_active_is_refused(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 5, &out),
			 COORD_ERR_PROTOCOL);
	assert_int_equal(step_at(&t, ev_vote(peer_id(1), VOTE_READ_ONLY), T0 + 5, &out),
			 COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_ACTIVE);
	assert_int_equal(part_state(&t, peer_id(0)), PART_JOINED);
	assert_int_equal(part_state(&t, peer_id(1)), PART_JOINED);
	coord_txn_release(&t);
}

static void test_commit_or_abort_after_abort_finds_no_transaction(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 1);
	step_at(&t, ev_abort(OWNER, 3), T0 + 5, &out);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 4), T0 + 6, &out), COORD_ERR_NOT_FOUND);
	assert_error_reply(&out, OWNER, 4, COORD_ERR_NOT_FOUND);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 5), T0 + 6, &out), COORD_ERR_NOT_FOUND);
	assert_error_reply(&out, OWNER, 5, COORD_ERR_NOT_FOUND);
	/* Late events on a forgotten transaction emit nothing. */
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0 + 100000, &out), 0);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T0 + 7, &out), 0);
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 7, &out), 0);
	assert_int_equal(out.n, 0);
	coord_txn_release(&t);
}

static void test_unknown_event_type_is_a_protocol_error(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out = { .n = 0 };
	struct coord_event ev = { .type = (enum coord_ev_type)99 };

	make_active(&t, 1);
	assert_int_equal(coord_txn_step(&t, &CFG, &ev, T0, &out), COORD_ERR_PROTOCOL);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_ACTIVE);
	coord_txn_release(&t);
}

/* ---- a failing log ---------------------------------------------------------------------- */

static void test_failed_log_write_tells_client_unknown_and_sends_nothing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 2);
	assert_int_equal(step_at(&t, ev_logged(-EIO), T_LOGGED, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(out.n, 1);
	assert_outcome(&out, OWNER, 7, OUTCOME_UNKNOWN);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(t.log_failures, 1);
	assert_int_equal(t.waiter, 0);
	assert_int_equal(coord_txn_next_deadline(&t), T_LOGGED + CFG.log_retry_ms);
	coord_txn_release(&t);
}

/* A record the store refuses (-EINVAL: validated before anything is written) can never
 * become durable: the transaction aborts instead of retrying for ever. */
static void test_log_write_refused_as_invalid_aborts(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 2);
	assert_int_equal(step_at(&t, ev_logged(-EINVAL), T_LOGGED, &out), 0);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(t.abort_reason, ABORT_UNLOGGABLE);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), 2);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 0);
	coord_txn_release(&t);
}

static void test_failed_log_write_is_retried_after_log_retry_ms(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	uint64_t retry = T_LOGGED + CFG.log_retry_ms;

	make_logging(&t, 2);
	/* While the first write is in flight there is nothing to tick for. */
	assert_int_equal(coord_txn_next_deadline(&t), 0);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0 + 100000, &out), 0);
	assert_int_equal(out.n, 0);

	step_at(&t, ev_logged(-EIO), T_LOGGED, &out);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), retry - 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), retry, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.a[0].type, ACT_LOG_COMMIT);
	assert_int_equal(t.state, TXN_LOGGING);
	/* One retry per failure: the retried write is in flight. */
	assert_int_equal(coord_txn_next_deadline(&t), 0);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), retry + 1000, &out), 0);
	assert_int_equal(out.n, 0);

	/* Failing again arms another retry. */
	step_at(&t, ev_logged(-EIO), retry + 2000, &out);
	assert_int_equal(out.n, 0); /* the client was already told UNKNOWN */
	assert_int_equal(t.log_failures, 2);
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), retry + 2000 + CFG.log_retry_ms, &out),
			 0);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);
	coord_txn_release(&t);
}

static void test_retried_log_write_success_proceeds_to_committing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 2);
	step_at(&t, ev_logged(-EIO), T_LOGGED, &out);
	step_at(&t, ev_simple(EV_TICK, 0), T_LOGGED + CFG.log_retry_ms, &out);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);

	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED + 100, &out), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(count_decisions(&out, DECIDE_COMMIT), 2);
	/* The client already heard UNKNOWN; it hears nothing more unless it asks. */
	assert_int_equal(count_type(&out, ACT_REPLY_OUTCOME), 0);
	assert_int_equal(t.retry_at_ms, T_LOGGED + 100 + CFG.retry_initial_ms);

	assert_int_equal(step_at(&t, ev_commit(OWNER, 8), T_LOGGED + 101, &out), 0);
	assert_outcome(&out, OWNER, 8, OUTCOME_COMMITTED);
	coord_txn_release(&t);
}

/* A client that asks again after UNKNOWN waits for the retried write. */
static void test_commit_after_unknown_waits_for_the_retried_write(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_logging(&t, 1);
	step_at(&t, ev_logged(-EIO), T_LOGGED, &out);
	assert_int_equal(step_at(&t, ev_commit(OWNER, 8), T_LOGGED + 1, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.waiter, OWNER);
	assert_int_equal(t.waiter_req, 8);

	step_at(&t, ev_simple(EV_TICK, 0), T_LOGGED + CFG.log_retry_ms, &out);
	assert_int_equal(step_at(&t, ev_logged(0), T_LOGGED + 60, &out), 0);
	assert_outcome(&out, OWNER, 8, OUTCOME_COMMITTED);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	coord_txn_release(&t);
}

/* A log that fails writes fail_at .. fail_at + fail_count - 1 (1-based), commits the rest. */
struct fake_log {
	unsigned writes;
	unsigned fail_at;
	unsigned fail_count;
	uint64_t durable[16]; /* txids whose COMMIT record is on "disk" */
	unsigned ndurable;
};

static int fake_log_write(struct fake_log *log, uint64_t txid)
{
	unsigned n = ++log->writes;

	if (n >= log->fail_at && n < log->fail_at + log->fail_count)
		return -EIO;
	assert_true(log->ndurable < 16);
	log->durable[log->ndurable++] = txid;
	return 0;
}

static int fake_log_has(const struct fake_log *log, uint64_t txid)
{
	for (unsigned i = 0; i < log->ndurable; i++)
		if (log->durable[i] == txid)
			return 1;
	return 0;
}

#define NTXNS 5

struct client_view {
	int first_outcome;      /* what the client heard first: -1 nothing yet */
	int committed_heard;    /* told COMMITTED at some point */
	int log_commits_pending;
};

/* Carry out a step's LOG_COMMIT actions against the log, feeding EV_LOGGED back. */
static void run_log(struct coord_txn *t, struct fake_log *log, struct client_view *cv,
		    const struct coord_actions *out, uint64_t now);

static void note_replies(const struct coord_txn *t, struct fake_log *log, struct client_view *cv,
			 const struct coord_actions *out)
{
	for (size_t i = 0; i < out->n; i++) {
		const struct coord_action *a = &out->a[i];
		if (a->type != ACT_REPLY_OUTCOME)
			continue;
		/* Never ABORTED: every participant voted YES. */
		assert_int_not_equal(a->outcome, OUTCOME_ABORTED);
		if (cv->first_outcome < 0)
			cv->first_outcome = a->outcome;
		if (a->outcome == OUTCOME_COMMITTED) {
			/* D1: COMMITTED only once the record is durable. */
			assert_true(fake_log_has(log, t->txid));
			cv->committed_heard = 1;
		}
	}
}

static void run_log(struct coord_txn *t, struct fake_log *log, struct client_view *cv,
		    const struct coord_actions *out, uint64_t now)
{
	struct coord_actions next;

	note_replies(t, log, cv, out);
	for (size_t i = 0; i < out->n; i++) {
		if (out->a[i].type != ACT_LOG_COMMIT)
			continue;
		int status = fake_log_write(log, t->txid);
		assert_int_equal(step_at(t, ev_logged(status), now, &next), 0);
		if (status == 0)
			assert_int_equal(t->state, TXN_COMMITTING);
		else
			assert_int_equal(t->state, TXN_LOGGING);
		run_log(t, log, cv, &next, now);
	}
}

static void drive_txns_with_failing_log(unsigned fail_at, unsigned fail_count)
{
	struct coord_txn txns[NTXNS];
	struct client_view cv[NTXNS];
	struct fake_log log = { .fail_at = fail_at, .fail_count = fail_count };
	struct coord_actions out;
	uint64_t now = T0;

	for (unsigned k = 0; k < NTXNS; k++) {
		coord_txn_init(&txns[k], 100 + k, OWNER + k, now, TXN_TIMEOUT);
		cv[k] = (struct client_view){ .first_outcome = -1 };
		for (unsigned i = 0; i < 2; i++)
			step_at(&txns[k], ev_join(peer_id(i), i + 1), now, &out);
		step_at(&txns[k], ev_commit(OWNER + k, 7), now, &out);
		step_at(&txns[k], ev_vote(peer_id(0), VOTE_YES), now, &out);
		step_at(&txns[k], ev_vote(peer_id(1), VOTE_YES), now, &out);
		assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);
		run_log(&txns[k], &log, &cv[k], &out, now);
	}

	/* Tick until every transaction is durable (the log heals after fail_count). */
	for (unsigned round = 0; round < 4 * (fail_count + 1); round++) {
		now += CFG.log_retry_ms;
		for (unsigned k = 0; k < NTXNS; k++) {
			if (txns[k].state != TXN_LOGGING)
				continue;
			step_at(&txns[k], ev_simple(EV_TICK, 0), now, &out);
			run_log(&txns[k], &log, &cv[k], &out, now);
		}
	}

	for (unsigned k = 0; k < NTXNS; k++) {
		struct coord_txn *t = &txns[k];
		assert_int_equal(t->state, TXN_COMMITTING);
		assert_true(fake_log_has(&log, t->txid));
		/* Each client heard exactly one thing first: COMMITTED (its write went through
		 * the first time) or UNKNOWN (it failed), never a wrong outcome. */
		assert_true(cv[k].first_outcome == OUTCOME_COMMITTED ||
			    cv[k].first_outcome == OUTCOME_UNKNOWN);
		int failed_once = t->log_failures > 0;
		assert_int_equal(cv[k].first_outcome,
				 failed_once ? OUTCOME_UNKNOWN : OUTCOME_COMMITTED);
		/* A client told UNKNOWN that asks again hears the truth. */
		if (failed_once) {
			assert_false(cv[k].committed_heard);
			step_at(t, ev_commit(OWNER + k, 8), now, &out);
			note_replies(t, &log, &cv[k], &out);
			assert_outcome(&out, OWNER + k, 8, OUTCOME_COMMITTED);
		}
		/* Every YES voter then gets the decision and the record completes. */
		step_at(t, ev_ack(peer_id(0)), now, &out);
		step_at(t, ev_ack(peer_id(1)), now, &out);
		assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
		coord_txn_release(t);
	}
}

static void test_failing_the_nth_log_write_never_gives_a_wrong_outcome(void **state)
{
	(void)state;
	/* fail_at NTXNS + 1 with count 0 is the no-failure run. */
	for (unsigned fail_at = 1; fail_at <= NTXNS + 1; fail_at++) {
		drive_txns_with_failing_log(fail_at, 1);
		drive_txns_with_failing_log(fail_at, 3);
	}
	drive_txns_with_failing_log(1, 0);
}

/* ---- decision resend --------------------------------------------------------------------- */

static void test_tick_resends_commit_only_to_unacked_yes_voters(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 3);
	step_at(&t, ev_ack(peer_id(1)), T_LOGGED + 1, &out);

	/* Before retry_at: nothing. */
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), t.retry_at_ms - 1, &out), 0);
	assert_int_equal(out.n, 0);

	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), t.retry_at_ms, &out), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(2), DECIDE_COMMIT), 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_COMMIT), 0);
	assert_int_equal(t.attempts, 2);
	coord_txn_release(&t);
}

static void test_resend_backoff_doubles_and_is_capped(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	/* retry_initial 100, max 800: gaps 100 (first), then 200, 400, 800, 800, 800 */
	static const uint32_t gaps[] = { 100, 200, 400, 800, 800, 800 };
	uint64_t at = T_LOGGED;

	make_committing(&t, 1);
	for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
		at += gaps[i];
		assert_int_equal(coord_txn_next_deadline(&t), at);
		assert_int_equal(t.retry_at_ms, at);
		assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), at, &out), 0);
		assert_int_equal(out.n, 1);
		assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
		assert_int_equal(t.attempts, i + 2);
	}
	assert_int_equal(t.retry_delay_ms, CFG.retry_max_ms);
	coord_txn_release(&t);
}

/* The backoff is measured from when the tick ran, not from when it was due. */
static void test_late_tick_schedules_the_next_resend_from_now(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 1);
	uint64_t late = t.retry_at_ms + 1000;
	step_at(&t, ev_simple(EV_TICK, 0), late, &out);
	assert_int_equal(out.n, 1);
	assert_int_equal(t.retry_at_ms, late + 2 * CFG.retry_initial_ms);
	coord_txn_release(&t);
}

static void test_backoff_does_not_wrap_with_a_huge_cap(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	struct coord_txn_config cfg = CFG;
	struct coord_event tick = ev_simple(EV_TICK, 0);

	cfg.retry_initial_ms = 0x90000000u; /* doubling overflows 32 bits */
	cfg.retry_max_ms = UINT32_MAX;
	make_logging(&t, 1);
	out.n = 0;
	struct coord_event logged = ev_logged(0);
	assert_int_equal(coord_txn_step(&t, &cfg, &logged, T_LOGGED, &out), 0);
	assert_int_equal(t.retry_delay_ms, 0x90000000u);
	out.n = 0;
	assert_int_equal(coord_txn_step(&t, &cfg, &tick, t.retry_at_ms, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(t.retry_delay_ms, UINT32_MAX);
	coord_txn_release(&t);
}

static void test_peer_up_in_committing_resends_at_once_to_that_peer_only(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_committing(&t, 3);
	uint64_t retry_at = t.retry_at_ms;
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(2)), T_LOGGED + 1, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_decisions_to(&out, peer_id(2), DECIDE_COMMIT), 1);
	assert_int_equal(t.retry_at_ms, retry_at); /* the others' schedule is untouched */

	/* An acked peer coming back hears nothing; a stranger neither. */
	step_at(&t, ev_ack(peer_id(0)), T_LOGGED + 2, &out);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T_LOGGED + 3, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, STRANGER), T_LOGGED + 3, &out), 0);
	assert_int_equal(out.n, 0);
	coord_txn_release(&t);
}

static void test_peer_up_in_preparing_resends_prepare_to_an_unvoted_peer(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing(&t, 2);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(1)), T0 + 21, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_prepares_to(&out, peer_id(1)), 1);

	/* A peer that already voted is not asked again. */
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T0 + 22, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);
}

static void test_peer_up_in_active_or_logging_sends_nothing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 1);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T0 + 1, &out), 0);
	assert_int_equal(out.n, 0);
	coord_txn_release(&t);

	make_logging(&t, 1);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T0 + 26, &out), 0);
	assert_int_equal(out.n, 0);
	coord_txn_release(&t);
}

/* ---- recovered transactions ---------------------------------------------------------------- */

static void make_recovered(struct coord_txn *t, unsigned n)
{
	coord_txn_init_recovered(t, 77, T0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(coord_txn_add_part(t, peer_id(i), PART_YES, CFG.max_parts), 0);
	assert_int_equal(t->state, TXN_COMMITTING);
	assert_int_equal(t->owner, 0);
	assert_int_equal(t->nparts, n);
}

static void test_recovered_txn_sends_commit_when_a_peer_comes_up(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_recovered(&t, 2);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(1)), T0 + 1, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_COMMIT), 1);
	assert_int_equal(step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T0 + 2, &out), 0);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	/* A participant asking with its YES again also hears COMMIT. */
	assert_int_equal(step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 3, &out), 0);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	coord_txn_release(&t);
}

static void test_recovered_txn_completes_after_every_ack(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_recovered(&t, 2);
	step_at(&t, ev_simple(EV_PEER_UP, peer_id(0)), T0 + 1, &out);
	step_at(&t, ev_simple(EV_PEER_UP, peer_id(1)), T0 + 1, &out);
	assert_int_equal(step_at(&t, ev_ack(peer_id(0)), T0 + 2, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, ev_ack(peer_id(1)), T0 + 3, &out), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.a[0].type, ACT_LOG_COMPLETE);
	assert_int_equal(out.a[1].type, ACT_FORGET);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);
}

/* A recovered decision is delivered by timer too, with the configured backoff, so a
 * Decision frame lost after the participant's Hello is sent again. */
static void test_recovered_txn_resends_commit_on_tick_with_backoff(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_recovered(&t, 2);
	uint64_t due = coord_txn_next_deadline(&t);
	assert_true(due != 0);
	assert_true(due <= T0);

	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0, &out), 0);
	assert_int_equal(count_decisions(&out, DECIDE_COMMIT), 2);
	assert_int_equal(t.retry_at_ms, T0 + CFG.retry_initial_ms);

	step_at(&t, ev_ack(peer_id(0)), T0 + 1, &out);
	/* No hot loop: nothing more until the backoff expires. */
	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0 + 1, &out), 0);
	assert_int_equal(out.n, 0);

	assert_int_equal(step_at(&t, ev_simple(EV_TICK, 0), T0 + CFG.retry_initial_ms, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(count_decisions_to(&out, peer_id(1), DECIDE_COMMIT), 1);
	assert_int_equal(t.retry_at_ms, T0 + 3 * CFG.retry_initial_ms);
	coord_txn_release(&t);
}

/* Only the connection that began a transaction decides it: another's Commit or Abort is
 * refused in every live state and leaves everything as it was; the owner still commits. */
static void test_commit_or_abort_from_another_connection_is_refused_and_changes_nothing(
	void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 2);
	assert_int_equal(step_at(&t, ev_commit(CLIENT2, 5), T0 + 1, &out), COORD_ERR_DENIED);
	assert_error_reply(&out, CLIENT2, 5, COORD_ERR_DENIED);
	assert_int_equal(out.n, 1);
	assert_int_equal(step_at(&t, ev_abort(CLIENT2, 6), T0 + 2, &out), COORD_ERR_DENIED);
	assert_error_reply(&out, CLIENT2, 6, COORD_ERR_DENIED);
	assert_int_equal(out.n, 1);
	assert_int_equal(t.state, TXN_ACTIVE);
	assert_int_equal(t.waiter, 0);
	assert_int_equal(t.abort_reason, ABORT_NONE);

	assert_int_equal(step_at(&t, ev_commit(OWNER, 7), T0 + 10, &out), 0);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(step_at(&t, ev_abort(CLIENT2, 8), T0 + 11, &out), COORD_ERR_DENIED);
	assert_int_equal(out.n, 1);
	assert_int_equal(t.state, TXN_PREPARING);
	assert_int_equal(t.waiter, OWNER);
	assert_int_equal(t.waiter_req, 7);

	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 12, &out);
	step_at(&t, ev_vote(peer_id(1), VOTE_YES), T0 + 13, &out);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(step_at(&t, ev_commit(CLIENT2, 9), T0 + 14, &out), COORD_ERR_DENIED);
	assert_int_equal(out.n, 1);
	assert_int_equal(step_at(&t, ev_logged(0), T0 + 15, &out), 0);
	assert_outcome(&out, OWNER, 7, OUTCOME_COMMITTED);
	assert_int_equal(step_at(&t, ev_abort(CLIENT2, 10), T0 + 16, &out), COORD_ERR_DENIED);
	assert_error_reply(&out, CLIENT2, 10, COORD_ERR_DENIED);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

/* A recovered transaction has no owner: a client only hears the outcome (it decides
 * nothing), and a Commit or Abort does not move it. */
static void test_recovered_txn_is_not_decided_by_any_client(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_recovered(&t, 1);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 3), T0 + 1, &out), 0);
	assert_outcome(&out, OWNER, 3, OUTCOME_COMMITTED);
	assert_int_equal(count_type(&out, ACT_SEND_DECISION), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(t.waiter, 0);
	coord_txn_release(&t);
}

static void test_recovered_txn_answers_clients_committed(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_recovered(&t, 1);
	assert_int_equal(step_at(&t, ev_commit(CLIENT2, 3), T0 + 1, &out), 0);
	assert_outcome(&out, CLIENT2, 3, OUTCOME_COMMITTED);
	assert_int_equal(step_at(&t, ev_abort(CLIENT2, 4), T0 + 1, &out), 0);
	assert_outcome(&out, CLIENT2, 4, OUTCOME_COMMITTED);
	/* A client connection closing does not disturb it (owner is 0). */
	assert_int_equal(step_at(&t, ev_client_gone(0), T0 + 2, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	coord_txn_release(&t);
}

/* ---- limits --------------------------------------------------------------------------- */

static void test_join_beyond_max_parts_is_refused_with_limit(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, CFG.max_parts);
	assert_int_equal(step_at(&t, ev_join(peer_id(CFG.max_parts), 50), T0 + 1, &out),
			 COORD_ERR_LIMIT);
	assert_error_reply(&out, JOIN_CONN, 50, COORD_ERR_LIMIT);
	assert_int_equal(count_type(&out, ACT_REPLY_JOIN), 0);
	assert_int_equal(t.nparts, CFG.max_parts);
	assert_int_equal(t.state, TXN_ACTIVE);

	/* A participant already in may still re-join at the limit. */
	assert_int_equal(step_at(&t, ev_join(peer_id(0), 51), T0 + 2, &out), 0);
	assert_int_equal(count_type(&out, ACT_REPLY_JOIN), 1);
	coord_txn_release(&t);
}

static void test_add_part_limits(void **state)
{
	(void)state;
	struct coord_txn t;

	coord_txn_init(&t, 1, OWNER, T0, TXN_TIMEOUT);
	assert_int_equal(coord_txn_add_part(&t, 1, PART_JOINED, 1), 0);
	assert_int_equal(coord_txn_add_part(&t, 2, PART_JOINED, 1), -ENOSPC);
	/* max_parts 0 or above the compile-time bound means COORD_TXN_MAX_PARTS. */
	for (uint32_t p = 2; p <= COORD_TXN_MAX_PARTS; p++)
		assert_int_equal(coord_txn_add_part(&t, p, PART_JOINED, 0), 0);
	assert_int_equal(t.nparts, COORD_TXN_MAX_PARTS);
	assert_int_equal(coord_txn_add_part(&t, 1000, PART_JOINED, 0), -ENOSPC);
	assert_int_equal(coord_txn_add_part(&t, 1000, PART_JOINED, 1000), -ENOSPC);
	for (uint32_t p = 1; p <= COORD_TXN_MAX_PARTS; p++) {
		assert_non_null(coord_txn_find_part(&t, p));
		assert_int_equal(coord_txn_find_part(&t, p)->peer, p);
	}
	coord_txn_release(&t);
	assert_null(t.parts);
	assert_int_equal(t.nparts, 0);
}

/* The largest transaction runs the whole protocol within one action list per step. */
static void test_largest_transaction_commits_and_completes(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;
	struct coord_txn_config cfg = CFG;

	cfg.max_parts = COORD_TXN_MAX_PARTS;
	coord_txn_init(&t, 5, OWNER, T0, TXN_TIMEOUT);
	for (uint32_t i = 0; i < COORD_TXN_MAX_PARTS; i++) {
		struct coord_event j = ev_join(peer_id(i), i);
		out.n = 0;
		assert_int_equal(coord_txn_step(&t, &cfg, &j, T0, &out), 0);
	}
	assert_int_equal(step_at(&t, ev_commit(OWNER, 1), T0, &out), 0);
	assert_int_equal(count_type(&out, ACT_SEND_PREPARE), COORD_TXN_MAX_PARTS);
	for (uint32_t i = 0; i < COORD_TXN_MAX_PARTS; i++)
		step_at(&t, ev_vote(peer_id(i), VOTE_YES), T0, &out);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);
	step_at(&t, ev_logged(0), T0 + 1, &out);
	assert_int_equal(count_decisions(&out, DECIDE_COMMIT), COORD_TXN_MAX_PARTS);
	for (uint32_t i = 0; i < COORD_TXN_MAX_PARTS; i++)
		step_at(&t, ev_ack(peer_id(i)), T0 + 2, &out);
	assert_int_equal(count_type(&out, ACT_LOG_COMPLETE), 1);
	assert_int_equal(t.state, TXN_DONE);
	coord_txn_release(&t);

	/* ... and aborts the same way. */
	coord_txn_init(&t, 6, OWNER, T0, TXN_TIMEOUT);
	for (uint32_t i = 0; i < COORD_TXN_MAX_PARTS; i++)
		assert_int_equal(coord_txn_add_part(&t, peer_id(i), PART_JOINED, 0), 0);
	assert_int_equal(step_at(&t, ev_abort(OWNER, 1), T0, &out), 0);
	assert_int_equal(count_decisions(&out, DECIDE_ABORT), COORD_TXN_MAX_PARTS);
	coord_txn_release(&t);
}

/* ---- deadlines and names ------------------------------------------------------------------ */

static void test_next_deadline_per_state(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active(&t, 1);
	assert_int_equal(coord_txn_next_deadline(&t), T0 + TXN_TIMEOUT);
	step_at(&t, ev_commit(OWNER, 7), T0 + 10, &out);
	assert_int_equal(coord_txn_next_deadline(&t), T0 + 10 + CFG.prepare_timeout_ms);
	step_at(&t, ev_vote(peer_id(0), VOTE_YES), T0 + 20, &out);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(coord_txn_next_deadline(&t), 0); /* waiting on the log writer */
	step_at(&t, ev_logged(-EIO), T0 + 30, &out);
	assert_int_equal(coord_txn_next_deadline(&t), T0 + 30 + CFG.log_retry_ms);
	step_at(&t, ev_simple(EV_TICK, 0), T0 + 30 + CFG.log_retry_ms, &out);
	step_at(&t, ev_logged(0), T0 + 90, &out);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(coord_txn_next_deadline(&t), T0 + 90 + CFG.retry_initial_ms);
	step_at(&t, ev_ack(peer_id(0)), T0 + 91, &out);
	assert_int_equal(t.state, TXN_DONE);
	assert_int_equal(coord_txn_next_deadline(&t), 0);
	coord_txn_release(&t);

	make_active(&t, 1);
	step_at(&t, ev_abort(OWNER, 1), T0 + 1, &out);
	assert_int_equal(coord_txn_next_deadline(&t), 0);
	coord_txn_release(&t);
}

static void test_names_cover_every_state_and_reason(void **state)
{
	(void)state;
	for (int s = TXN_ACTIVE; s < TXN_NSTATES; s++)
		assert_string_not_equal(coord_txn_state_str((enum coord_txn_state)s), "?");
	assert_string_equal(coord_txn_state_str(TXN_NSTATES), "?");
	assert_string_equal(coord_txn_state_str(TXN_COMMITTING), "COMMITTING");
	for (int s = PART_JOINED; s <= PART_ACKED; s++)
		assert_string_not_equal(coord_part_state_str((enum coord_part_state)s), "?");
	assert_string_equal(coord_abort_reason_str(ABORT_NONE), "");
	for (int r = ABORT_VOTE_NO; r <= ABORT_UNLOGGABLE; r++)
		assert_true(strlen(coord_abort_reason_str((enum coord_abort_reason)r)) > 0);
}


/* ---- incarnations (D8) --------------------------------------------------------------------- */

#define INC1 7u /* the incarnation that joins in these tests */
#define INC2 8u /* the same participant after a restart */

/* A transaction in ACTIVE with peers peer_id(0..n-1) joined as incarnation INC1. */
static void make_active_inc(struct coord_txn *t, unsigned n)
{
	struct coord_actions out;

	coord_txn_init(t, 42, OWNER, T0, TXN_TIMEOUT);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(step_at(t, ev_join_inc(peer_id(i), i + 1, INC1), T0, &out), 0);
}

static void make_preparing_inc(struct coord_txn *t, unsigned n)
{
	struct coord_actions out;

	make_active_inc(t, n);
	assert_int_equal(step_at(t, ev_commit(OWNER, 7), T0 + 10, &out), 0);
	assert_int_equal(t->state, TXN_PREPARING);
}

static void test_join_records_the_joining_incarnation(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active_inc(&t, 2);
	assert_int_equal(coord_txn_find_part(&t, peer_id(1))->incarnation, INC1);
	/* The same incarnation joining again is the idempotent re-join. */
	assert_int_equal(step_at(&t, ev_join_inc(peer_id(1), 9, INC1), T0 + 1, &out), 0);
	assert_int_equal(count_type(&out, ACT_REPLY_JOIN), 1);
	assert_int_equal(t.state, TXN_ACTIVE);
	coord_txn_release(&t);
}

static void test_join_from_another_incarnation_is_refused_and_aborts(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active_inc(&t, 2);
	assert_int_equal(step_at(&t, ev_join_inc(peer_id(1), 9, INC2), T0 + 1, &out),
			 COORD_ERR_INCARNATION);
	assert_error_reply(&out, JOIN_CONN, 9, COORD_ERR_INCARNATION);
	assert_int_equal(count_type(&out, ACT_REPLY_JOIN), 0);
	assert_aborted_cleanly(&t, &out, ABORT_PART_RESTARTED);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	coord_txn_release(&t);
}

static void test_join_from_another_incarnation_while_preparing_aborts(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing_inc(&t, 2);
	assert_int_equal(step_at(&t, ev_join_inc(peer_id(0), 9, INC2), T0 + 11, &out),
			 COORD_ERR_INCARNATION);
	assert_aborted_cleanly(&t, &out, ABORT_PART_RESTARTED);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	coord_txn_release(&t);
}

static void test_vote_from_another_incarnation_is_refused_and_aborts(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing_inc(&t, 2);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC1), T0 + 11, &out), 0);
	/* The other participant restarted and votes YES as its new incarnation: its
	 * staged writes are gone, the YES is refused and the transaction aborts. */
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(1), VOTE_YES, INC2), T0 + 12, &out),
			 COORD_ERR_INCARNATION);
	assert_aborted_cleanly(&t, &out, ABORT_PART_RESTARTED);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	coord_txn_release(&t);
}

static void test_vote_from_another_incarnation_in_active_aborts(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active_inc(&t, 2);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(1), VOTE_NO, INC2), T0 + 1, &out),
			 COORD_ERR_INCARNATION);
	assert_aborted_cleanly(&t, &out, ABORT_PART_RESTARTED);
	coord_txn_release(&t);
}

static void test_yes_naming_the_joined_incarnation_counts_after_a_restart(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing_inc(&t, 2);
	/* peer 1 prepared, restarted, and says Hello as INC2 listing the txid as PREPARED:
	 * the server does not step EV_PEER_RESTARTED for it; its YES names INC1. */
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC1), T0 + 11, &out), 0);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(1), VOTE_YES, INC1), T0 + 12, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 1);
	coord_txn_release(&t);
}

static void test_vote_from_another_incarnation_after_the_decision_changes_nothing(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing_inc(&t, 1);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC1), T0 + 11, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC2), T0 + 12, &out),
			 COORD_ERR_INCARNATION);
	assert_int_equal(t.state, TXN_LOGGING);
	assert_int_equal(out.n, 0);
	assert_int_equal(step_at(&t, ev_logged(0), T0 + 13, &out), 0);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC2), T0 + 14, &out),
			 COORD_ERR_INCARNATION);
	assert_int_equal(t.state, TXN_COMMITTING);
	assert_int_equal(out.n, 0);
	coord_txn_release(&t);
}

static void test_recovered_txn_does_not_check_the_vote_incarnation(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_recovered(&t, 1);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC2), T0 + 1, &out), 0);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_COMMIT), 1);
	coord_txn_release(&t);
}

static void test_no_vote_in_active_names_the_voter_of_its_incarnation(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	/* Staged writes expired at the participant: it says NO at once, as the joined
	 * incarnation, and the transaction aborts with it as the NO voter. */
	make_active_inc(&t, 2);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(1), VOTE_NO, INC1), T0 + 1, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_VOTE_NO);
	assert_int_equal(t.no_voter, peer_id(1));
	coord_txn_release(&t);
}

static void test_peer_restarted_aborts_what_the_older_incarnation_joined(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_active_inc(&t, 2);
	assert_int_equal(step_at(&t, ev_restarted(peer_id(1), INC2), T0 + 1, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_PART_RESTARTED);
	assert_int_equal(count_decisions_to(&out, peer_id(0), DECIDE_ABORT), 1);
	coord_txn_release(&t);

	make_preparing_inc(&t, 2);
	assert_int_equal(step_at(&t, ev_restarted(peer_id(0), INC2), T0 + 11, &out), 0);
	assert_aborted_cleanly(&t, &out, ABORT_PART_RESTARTED);
	assert_outcome(&out, OWNER, 7, OUTCOME_ABORTED);
	coord_txn_release(&t);
}

static void test_peer_restarted_spares_what_it_cannot_have_lost(void **state)
{
	(void)state;
	struct coord_txn t;
	struct coord_actions out;

	make_preparing_inc(&t, 2);
	/* Voted YES: the PREPARED record is durable, nothing was lost. */
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC1), T0 + 11, &out), 0);
	assert_int_equal(step_at(&t, ev_restarted(peer_id(0), INC2), T0 + 12, &out), 0);
	assert_int_equal(out.n, 0);
	/* The same incarnation (a plain reconnect), an older one, a stranger: nothing. */
	assert_int_equal(step_at(&t, ev_restarted(peer_id(1), INC1), T0 + 13, &out), 0);
	assert_int_equal(step_at(&t, ev_restarted(peer_id(1), INC1 - 1), T0 + 13, &out), 0);
	assert_int_equal(step_at(&t, ev_restarted(STRANGER, INC2), T0 + 13, &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(t.state, TXN_PREPARING);
	coord_txn_release(&t);

	/* After the decision: too late to abort, and nothing to abort for. */
	make_preparing_inc(&t, 1);
	assert_int_equal(step_at(&t, ev_vote_inc(peer_id(0), VOTE_YES, INC1), T0 + 11, &out), 0);
	assert_int_equal(step_at(&t, ev_restarted(peer_id(0), INC2), T0 + 12, &out), 0);
	assert_int_equal(t.state, TXN_LOGGING);
	coord_txn_release(&t);
}

/* ---- random event orders ------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/*
 * Feed one transaction random events (the log answers a LOG_COMMIT only while one is
 * outstanding, as the server's writer does) and check, besides step_at's D1/D4 checks:
 * no COMMIT to a peer that did not vote YES, no two outcomes that disagree, no request
 * answered twice, exactly one FORGET and nothing but refusals after it, and at most one
 * COMMIT write in flight. Participants restart (EV_PEER_RESTARTED) and Join or vote as
 * whichever incarnation: an event showing that a joined incarnation that had not voted is
 * gone, in ACTIVE or PREPARING, must leave the transaction aborted (D8), and a Join or
 * vote from another incarnation is always refused.
 */
static void run_random_txn(uint64_t seed)
{
	struct coord_txn t;
	struct coord_actions out;
	uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
	uint64_t now = T0;
	unsigned npeers = 1 + (unsigned)(rng_next(&rng) % 4);
	int write_in_flight = 0, durable = 0, forgotten = 0;
	int told_committed = 0, told_aborted = 0;
	uint64_t next_req = 100;
	uint64_t inc[8] = { 1, 1, 1, 1, 1, 1, 1, 1 }; /* each peer's newest incarnation */
	char key[] = "key";

	coord_txn_init(&t, seed, OWNER, now, TXN_TIMEOUT);
	if (rng_next(&rng) % 4 == 0)
		t.key = key;

	for (int i = 0; i < 60; i++) {
		struct coord_event ev;
		unsigned pi = (unsigned)(rng_next(&rng) % (npeers + 1));
		uint32_t peer = peer_id(pi);
		uint64_t conn = rng_next(&rng) % 2 ? OWNER : CLIENT2;
		struct coord_txn_part *jp = coord_txn_find_part(&t, peer);
		/* Mostly the incarnation that joined (a vote re-sent after a restart names it),
		 * sometimes the newest one. */
		uint64_t vinc = jp && rng_next(&rng) % 4 ? jp->incarnation : inc[pi];

		now += rng_next(&rng) % 400;
		switch (rng_next(&rng) % 12) {
		case 0: ev = ev_join_inc(peer, next_req++, inc[pi]); break;
		case 1: ev = ev_commit(conn, next_req++); break;
		case 2: ev = ev_abort(conn, next_req++); break;
		case 3:
		case 4: ev = ev_vote_inc(peer, (int)(rng_next(&rng) % 8 ? VOTE_YES
							    : rng_next(&rng) % 3), vinc); break;
		case 5:
			if (!write_in_flight)
				continue;
			ev = ev_logged(rng_next(&rng) % 3 ? 0 : -EIO);
			break;
		case 6: ev = ev_ack(peer); break;
		case 7:
		case 8: ev = ev_simple(EV_TICK, 0); break;
		case 9:
			if (rng_next(&rng) % 3 == 0) {
				ev = ev_restarted(peer, ++inc[pi]);
				break;
			}
			ev = ev_simple(rng_next(&rng) % 2 ? EV_PEER_UP : EV_PEER_DOWN, peer);
			break;
		case 10: ev = ev_client_gone(conn); break;
		default:
			ev = rng_next(&rng) % 2 ? ev_simple(EV_FENCE, 0)
						: ev_operator((int)(rng_next(&rng) % 2));
			break;
		}
		if (ev.type == EV_LOGGED) {
			write_in_flight = 0;
			if (ev.status == 0)
				durable = 1;
		}

		uint8_t before = t.state;
		int open = before == TXN_ACTIVE || before == TXN_PREPARING;
		int other_inc = jp && jp->incarnation && ev.inc != jp->incarnation &&
				((ev.type == EV_JOIN) || (ev.type == EV_VOTE && ev.vote >= VOTE_NO &&
							  ev.vote <= VOTE_READ_ONLY));
		int lost = open && jp && ((ev.type == EV_PEER_RESTARTED && jp->state == PART_JOINED &&
					  jp->incarnation < ev.inc) || other_inc);
		int rc = step_at(&t, ev, now, &out);
		if (other_inc)
			assert_int_equal(rc, COORD_ERR_INCARNATION);
		if (lost) {
			assert_int_equal(t.state, TXN_DONE);
			assert_int_equal(count_type(&out, ACT_LOG_COMMIT), 0);
		}
		for (size_t k = 0; k < out.n; k++) {
			const struct coord_action *a = &out.a[k];
			if (forgotten)
				assert_int_equal(a->type, ACT_REPLY_ERROR);
			switch (a->type) {
			case ACT_LOG_COMMIT:
				assert_false(write_in_flight);
				assert_false(durable);
				write_in_flight = 1;
				break;
			case ACT_SEND_DECISION:
				if (a->decision == DECIDE_COMMIT) {
					assert_true(durable);
					uint8_t ps = part_state(&t, a->peer);
					assert_true(ps == PART_YES || ps == PART_ACKED);
				}
				break;
			case ACT_REPLY_OUTCOME:
				if (a->outcome == OUTCOME_COMMITTED)
					told_committed = 1;
				if (a->outcome == OUTCOME_ABORTED)
					told_aborted = 1;
				break;
			case ACT_FORGET:
				assert_false(forgotten);
				forgotten = 1;
				break;
			default:
				break;
			}
		}
		assert_false(told_committed && told_aborted);
		if (durable)
			assert_true(t.state == TXN_COMMITTING || t.state == TXN_DONE);
		if (before == TXN_DONE)
			assert_int_equal(t.state, TXN_DONE);
		/* A step answers each request once. */
		if (ev.type == EV_COMMIT || ev.type == EV_ABORT || ev.type == EV_JOIN) {
			size_t replies = 0;
			for (size_t k = 0; k < out.n; k++)
				replies += out.a[k].conn == ev.conn && out.a[k].req == ev.req &&
					   (out.a[k].type == ACT_REPLY_OUTCOME ||
					    out.a[k].type == ACT_REPLY_ERROR ||
					    out.a[k].type == ACT_REPLY_JOIN);
			assert_true(replies <= 1);
		}
	}
	coord_txn_release(&t);
}

static void test_random_event_orders_keep_the_durability_rules(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 3000; seed++)
		run_random_txn(seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_starts_active_with_no_participants),
		cmocka_unit_test(
			test_commit_or_abort_from_another_connection_is_refused_and_changes_nothing),
		cmocka_unit_test(test_recovered_txn_is_not_decided_by_any_client),
		cmocka_unit_test(test_join_in_active_adds_participant_and_replies),
		cmocka_unit_test(test_rejoin_in_active_is_idempotent),
		cmocka_unit_test(test_commit_sends_prepare_to_every_participant),
		cmocka_unit_test(test_partial_yes_votes_wait_for_the_rest),
		cmocka_unit_test(test_all_yes_emits_only_log_commit),
		cmocka_unit_test(test_logged_ok_replies_committed_and_sends_commit_to_every_yes_voter),
		cmocka_unit_test(test_completion_only_after_last_ack),
		cmocka_unit_test(test_duplicate_ack_is_harmless),
		cmocka_unit_test(test_single_participant_happy_path_end_to_end),

		cmocka_unit_test(test_no_vote_aborts_and_sends_abort_to_others_but_not_the_no_voter),
		cmocka_unit_test(test_no_vote_in_active_aborts_before_prepare),
		cmocka_unit_test(test_prepare_timeout_aborts_on_tick),
		cmocka_unit_test(test_txn_timeout_in_active_aborts_on_tick),
		cmocka_unit_test(test_commit_before_txn_timeout_tick_wins_the_race),
		cmocka_unit_test(test_client_abort_in_active_aborts_and_tells_the_aborter),
		cmocka_unit_test(test_client_abort_in_preparing_tells_aborter_and_pending_committer),
		cmocka_unit_test(test_peer_down_before_voting_aborts_in_preparing),
		cmocka_unit_test(test_peer_down_after_voting_yes_does_not_abort),
		cmocka_unit_test(test_peer_down_in_active_does_not_abort),
		cmocka_unit_test(test_client_gone_aborts_active_when_it_is_the_owner),
		cmocka_unit_test(test_client_gone_of_another_connection_changes_nothing),
		cmocka_unit_test(test_client_gone_in_preparing_drops_the_waiter_but_commits),
		cmocka_unit_test(test_fence_aborts_active),
		cmocka_unit_test(test_fence_is_refused_while_preparing),
		cmocka_unit_test(test_operator_abort_in_active_and_preparing),
		cmocka_unit_test(test_operator_cannot_abort_once_the_decision_is_being_logged),
		cmocka_unit_test(test_operator_commit_is_refused),
		cmocka_unit_test(test_operator_check_agrees_with_the_step),
		cmocka_unit_test(test_operator_check_plans),
		cmocka_unit_test(test_forced_operator_commit_leaves_out_the_unvoted_and_logs),
		cmocka_unit_test(test_operator_commit_in_active_needs_force),
		cmocka_unit_test(test_operator_commit_in_committing_is_a_no_op),
		cmocka_unit_test(test_forced_operator_abort_of_committing_tells_the_unacked_and_forgets),
		cmocka_unit_test(test_committing_marked_for_drop_resends_nothing),
		cmocka_unit_test(test_last_ack_racing_a_drop_restores_the_commit_record),
		cmocka_unit_test(test_client_hears_unknown_while_the_commit_record_is_restored),
		cmocka_unit_test(test_failed_drop_resumes_delivery_and_completion),
		cmocka_unit_test(test_dropped_without_a_marked_drop_is_refused),
		cmocka_unit_test(test_retry_delays_are_jittered_by_the_events_rand),
		cmocka_unit_test(test_recovered_txn_naming_nobody_completes_on_its_first_tick),

		cmocka_unit_test(test_read_only_voters_are_left_out_of_phase_two),
		cmocka_unit_test(test_all_read_only_without_key_commits_with_nothing_logged),
		cmocka_unit_test(test_all_read_only_with_key_goes_through_log_commit),
		cmocka_unit_test(test_commit_with_no_participants_and_no_key_commits_at_once),
		cmocka_unit_test(test_commit_with_no_participants_and_a_key_logs_first),

		cmocka_unit_test(test_repeated_yes_in_preparing_changes_nothing),
		cmocka_unit_test(test_repeated_yes_in_logging_changes_nothing),
		cmocka_unit_test(test_yes_in_committing_resends_commit_to_that_peer),
		cmocka_unit_test(test_changed_vote_in_preparing_is_a_protocol_error),
		cmocka_unit_test(test_changed_vote_after_all_voted_is_a_protocol_error),
		cmocka_unit_test(test_vote_with_unknown_value_is_a_protocol_error),
		cmocka_unit_test(test_vote_from_a_peer_that_never_joined_is_refused),
		cmocka_unit_test(test_ack_from_a_peer_that_never_joined_is_refused),
		cmocka_unit_test(test_ack_before_the_decision_is_a_protocol_error),
		cmocka_unit_test(test_join_after_commit_started_is_refused_not_active),
		cmocka_unit_test(test_second_commit_while_preparing_is_refused),
		cmocka_unit_test(test_commit_in_committing_replies_committed),
		cmocka_unit_test(test_abort_in_committing_is_told_committed),
		cmocka_unit_test(test_abort_in_logging_is_refused),
		cmocka_unit_test(test_yes_vote_in_active_is_refused),
		cmocka_unit_test(test_commit_or_abort_after_abort_finds_no_transaction),
		cmocka_unit_test(test_unknown_event_type_is_a_protocol_error),

		cmocka_unit_test(test_failed_log_write_tells_client_unknown_and_sends_nothing),
		cmocka_unit_test(test_log_write_refused_as_invalid_aborts),
		cmocka_unit_test(test_failed_log_write_is_retried_after_log_retry_ms),
		cmocka_unit_test(test_retried_log_write_success_proceeds_to_committing),
		cmocka_unit_test(test_commit_after_unknown_waits_for_the_retried_write),
		cmocka_unit_test(test_failing_the_nth_log_write_never_gives_a_wrong_outcome),

		cmocka_unit_test(test_tick_resends_commit_only_to_unacked_yes_voters),
		cmocka_unit_test(test_resend_backoff_doubles_and_is_capped),
		cmocka_unit_test(test_late_tick_schedules_the_next_resend_from_now),
		cmocka_unit_test(test_backoff_does_not_wrap_with_a_huge_cap),
		cmocka_unit_test(test_peer_up_in_committing_resends_at_once_to_that_peer_only),
		cmocka_unit_test(test_peer_up_in_preparing_resends_prepare_to_an_unvoted_peer),
		cmocka_unit_test(test_peer_up_in_active_or_logging_sends_nothing),

		cmocka_unit_test(test_recovered_txn_sends_commit_when_a_peer_comes_up),
		cmocka_unit_test(test_recovered_txn_completes_after_every_ack),
		cmocka_unit_test(test_recovered_txn_resends_commit_on_tick_with_backoff),
		cmocka_unit_test(test_recovered_txn_answers_clients_committed),

		cmocka_unit_test(test_join_beyond_max_parts_is_refused_with_limit),
		cmocka_unit_test(test_add_part_limits),
		cmocka_unit_test(test_largest_transaction_commits_and_completes),

		cmocka_unit_test(test_next_deadline_per_state),
		cmocka_unit_test(test_names_cover_every_state_and_reason),
		cmocka_unit_test(test_join_records_the_joining_incarnation),
		cmocka_unit_test(test_join_from_another_incarnation_is_refused_and_aborts),
		cmocka_unit_test(test_join_from_another_incarnation_while_preparing_aborts),
		cmocka_unit_test(test_vote_from_another_incarnation_is_refused_and_aborts),
		cmocka_unit_test(test_vote_from_another_incarnation_in_active_aborts),
		cmocka_unit_test(test_yes_naming_the_joined_incarnation_counts_after_a_restart),
		cmocka_unit_test(test_vote_from_another_incarnation_after_the_decision_changes_nothing),
		cmocka_unit_test(test_recovered_txn_does_not_check_the_vote_incarnation),
		cmocka_unit_test(test_no_vote_in_active_names_the_voter_of_its_incarnation),
		cmocka_unit_test(test_peer_restarted_aborts_what_the_older_incarnation_joined),
		cmocka_unit_test(test_peer_restarted_spares_what_it_cannot_have_lost),
		cmocka_unit_test(test_random_event_orders_keep_the_durability_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
