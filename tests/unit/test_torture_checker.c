/*
 * test_torture_checker.c - the torture checker (tools/torture/checker.c) on synthetic
 * histories: a clean history reports nothing; each kind of violation is reported with
 * its txid. Also the outcomes-file format round trip and the schedule's determinism.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "checker.h"
#include "records.h"
#include "schedule.h"

/* ---- building histories ---- */

static struct tt_rec intent(uint64_t txid, uint64_t seq, enum tt_kind kind, enum tt_plan plan)
{
	struct tt_rec r;

	memset(&r, 0, sizeof(r));
	r.type = TT_REC_INTENT;
	r.txid = txid;
	r.client = 1;
	r.seq = seq;
	r.kind = (uint8_t)kind;
	r.plan = (uint8_t)plan;
	return r;
}

static void add_w(struct tt_rec *r, unsigned part, const char *key, const char *value)
{
	struct tt_write *w = &r->w[r->nwrites++];
	w->part = (uint8_t)part;
	snprintf(w->key, sizeof(w->key), "%s", key);
	snprintf(w->value, sizeof(w->value), "%s", value);
}

/* A transfer of 40 from kv1 to kv2 under txid, seq. */
static struct tt_rec transfer(uint64_t txid, uint64_t seq)
{
	struct tt_rec r = intent(txid, seq, TT_KIND_TRANSFER, TT_PLAN_COMMIT);
	char k[48];

	snprintf(k, sizeof(k), "x/1/%llu/from", (unsigned long long)seq);
	add_w(&r, 0, k, "-40");
	snprintf(k, sizeof(k), "x/1/%llu/to", (unsigned long long)seq);
	add_w(&r, 1, k, "+40");
	return r;
}

static void rec(struct tt_checker *ck, enum tt_rec_type type, uint64_t txid, enum tt_outcome o)
{
	struct tt_rec r;

	memset(&r, 0, sizeof(r));
	r.type = type;
	r.txid = txid;
	r.outcome = (uint8_t)o;
	assert_int_equal(tt_checker_add_rec(ck, 1, &r), 0);
}

/* The client's whole story: intent, commit-sent, outcome (TT_OUT_NONE: none). */
static void told(struct tt_checker *ck, const struct tt_rec *in, int commit_sent,
		 enum tt_outcome o)
{
	rec(ck, TT_REC_BEGIN, in->txid, TT_OUT_NONE);
	assert_int_equal(tt_checker_add_rec(ck, 1, in), 0);
	if (commit_sent)
		rec(ck, TT_REC_COMMIT_SENT, in->txid, TT_OUT_NONE);
	if (o != TT_OUT_NONE)
		rec(ck, TT_REC_OUTCOME, in->txid, o);
}

static void sink(struct tt_checker *ck, const struct tt_rec *in, unsigned w)
{
	const struct tt_write *x = &in->w[w];
	assert_int_equal(tt_checker_add_sink(ck, x->part, in->txid, x->key, strlen(x->key),
					     x->value, strlen(x->value)), 0);
}

static void sink_all(struct tt_checker *ck, const struct tt_rec *in)
{
	for (unsigned i = 0; i < in->nwrites; i++)
		sink(ck, in, i);
}

static size_t total(const struct tt_checker *ck)
{
	size_t n = 0;
	for (int k = 0; k < TT_V_COUNT; k++)
		n += tt_checker_count_kind(ck, (enum tt_violation_kind)k);
	return n;
}

/* Exactly one violation, of kind @p k, about @p txid. */
static void assert_only(const struct tt_checker *ck, enum tt_violation_kind k, uint64_t txid)
{
	size_t n;
	const struct tt_violation *v = tt_checker_violations(ck, &n);

	if (total(ck) != 1 || n != 1 || v[0].kind != k || v[0].txid != txid) {
		for (size_t i = 0; i < n; i++)
			print_message("violation %s txid %llu: %s\n", tt_violation_name(v[i].kind),
				      (unsigned long long)v[i].txid, v[i].detail);
		fail_msg("expected exactly one %s violation for txid %llu", tt_violation_name(k),
			 (unsigned long long)txid);
	}
}

static int has_kind(const struct tt_checker *ck, enum tt_violation_kind k, uint64_t txid)
{
	size_t n;
	const struct tt_violation *v = tt_checker_violations(ck, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == k && v[i].txid == txid)
			return 1;
	return 0;
}

/* ---- a clean history ---- */

static void test_checker_reports_nothing_for_a_clean_history(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec c = transfer(101, 1), a = transfer(102, 2), u1 = transfer(103, 3);
	struct tt_rec u2 = transfer(104, 4), dead = transfer(105, 5);
	struct tt_rec planned = transfer(106, 6);
	struct tt_rec no = intent(107, 7, TT_KIND_REFUSE, TT_PLAN_COMMIT);
	struct tt_rec w = intent(108, 8, TT_KIND_WRITE, TT_PLAN_COMMIT);
	struct tt_rec res = transfer(109, 9);

	planned.plan = TT_PLAN_ABORT;
	add_w(&no, 2, "refuse-me", "1/7");
	add_w(&w, 2, "w/1/8", "v8");
	told(ck, &c, 1, TT_OUT_COMMITTED);
	told(ck, &a, 1, TT_OUT_ABORTED);
	told(ck, &u1, 1, TT_OUT_UNKNOWN);        /* unknown, applied everywhere: fine */
	told(ck, &u2, 1, TT_OUT_UNKNOWN);        /* unknown, applied nowhere: fine */
	told(ck, &dead, 0, TT_OUT_NONE);         /* the client died before deciding */
	told(ck, &planned, 0, TT_OUT_NONE);
	rec(ck, TT_REC_ABORT_SENT, planned.txid, TT_OUT_NONE);
	rec(ck, TT_REC_OUTCOME, planned.txid, TT_OUT_ABORTED);
	told(ck, &no, 1, TT_OUT_ABORTED);
	told(ck, &w, 1, TT_OUT_COMMITTED);
	told(ck, &res, 1, TT_OUT_UNKNOWN);
	rec(ck, TT_REC_RESOLVED, res.txid, TT_OUT_COMMITTED);
	sink_all(ck, &c);
	sink_all(ck, &u1);
	sink_all(ck, &w);
	sink_all(ck, &res);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_int_equal(total(ck), 0);
	const struct tt_counts *n = tt_checker_counts(ck);
	assert_int_equal(n->txns, 9);
	assert_int_equal(n->committed, 3);
	assert_int_equal(n->aborted, 3);
	assert_int_equal(n->unknown, 3);
	assert_int_equal(n->unknown_applied, 1);
	assert_int_equal(n->resolved, 1);
	assert_int_equal(n->transfer_sum, 0);
	tt_checker_free(ck);
}

/* ---- each violation kind ---- */

static void test_checker_reports_a_partial_transaction(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(201, 1);
	struct tt_rec other = transfer(202, 2);

	told(ck, &t, 1, TT_OUT_UNKNOWN);
	told(ck, &other, 1, TT_OUT_UNKNOWN);
	sink(ck, &t, 0);                          /* the debit landed, the credit did not */
	sink(ck, &other, 1);                      /* balance the sum: only atomicity breaks */
	tt_checker_run(ck);
	assert_true(has_kind(ck, TT_V_PARTIAL, 201));
	assert_true(has_kind(ck, TT_V_PARTIAL, 202));
	assert_int_equal(tt_checker_count_kind(ck, TT_V_PARTIAL), 2);
	assert_int_equal(tt_checker_count_kind(ck, TT_V_CONSERVATION), 0);
	tt_checker_free(ck);
}

static void test_checker_reports_part_of_a_participants_writes(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = intent(211, 1, TT_KIND_WRITE, TT_PLAN_COMMIT);

	add_w(&t, 0, "w/1/1", "v1");
	add_w(&t, 0, "w/1/1b", "v1");
	told(ck, &t, 1, TT_OUT_UNKNOWN);
	sink(ck, &t, 0);
	tt_checker_run(ck);
	assert_only(ck, TT_V_PARTIAL, 211);
	tt_checker_free(ck);
}

static void test_checker_reports_a_lost_commit(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(301, 1);

	told(ck, &t, 1, TT_OUT_COMMITTED);
	tt_checker_run(ck);
	assert_only(ck, TT_V_COMMIT_LOST, 301);
	tt_checker_free(ck);
}

static void test_checker_reports_a_resolved_commit_that_is_missing(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(302, 1);

	told(ck, &t, 1, TT_OUT_UNKNOWN);
	rec(ck, TT_REC_RESOLVED, t.txid, TT_OUT_COMMITTED);
	tt_checker_run(ck);
	assert_only(ck, TT_V_COMMIT_LOST, 302);
	tt_checker_free(ck);
}

static void test_checker_reports_an_applied_abort(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(401, 1);

	told(ck, &t, 1, TT_OUT_ABORTED);
	sink_all(ck, &t);
	tt_checker_run(ck);
	assert_only(ck, TT_V_ABORT_APPLIED, 401);
	tt_checker_free(ck);
}

static void test_checker_does_not_trust_resolved_aborts_without_retention(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 0);
	struct tt_rec t = transfer(402, 1);

	/* With --outcome-retention 0 a forgotten commit answers ABORTED: not a violation. */
	told(ck, &t, 1, TT_OUT_UNKNOWN);
	rec(ck, TT_REC_RESOLVED, t.txid, TT_OUT_ABORTED);
	sink_all(ck, &t);
	tt_checker_run(ck);
	assert_int_equal(total(ck), 0);
	assert_int_equal(tt_checker_counts(ck)->unknown, 1);
	tt_checker_free(ck);
}

static void test_checker_takes_a_by_key_answer_as_told(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec lost = transfer(451, 1), applied = transfer(452, 2), fine = transfer(453, 3);

	told(ck, &lost, 1, TT_OUT_UNKNOWN);
	rec(ck, TT_REC_BY_KEY, lost.txid, TT_OUT_COMMITTED);      /* yet in no sink */
	told(ck, &applied, 1, TT_OUT_UNKNOWN);
	rec(ck, TT_REC_BY_KEY, applied.txid, TT_OUT_ABORTED);     /* yet applied */
	told(ck, &fine, 1, TT_OUT_UNKNOWN);
	rec(ck, TT_REC_BY_KEY, fine.txid, TT_OUT_COMMITTED);
	sink_all(ck, &applied);
	sink_all(ck, &fine);
	tt_checker_run(ck);
	assert_true(has_kind(ck, TT_V_COMMIT_LOST, 451));
	assert_true(has_kind(ck, TT_V_ABORT_APPLIED, 452));
	assert_int_equal(total(ck), 2);
	assert_int_equal(tt_checker_counts(ck)->by_key, 3);
	tt_checker_free(ck);
}

static void test_checker_reports_a_commit_nobody_asked_for(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(501, 1);

	told(ck, &t, 0, TT_OUT_NONE);
	sink_all(ck, &t);
	tt_checker_run(ck);
	assert_only(ck, TT_V_UNREQUESTED, 501);
	tt_checker_free(ck);
}

static void test_checker_reports_an_overruled_no_vote(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = intent(601, 1, TT_KIND_REFUSE, TT_PLAN_COMMIT);

	add_w(&t, 0, "w/1/1", "v1");
	add_w(&t, 2, "refuse-me", "1/1");
	told(ck, &t, 1, TT_OUT_UNKNOWN);
	sink_all(ck, &t);
	tt_checker_run(ck);
	assert_only(ck, TT_V_REFUSED_APPLIED, 601);
	tt_checker_free(ck);
}

static void test_checker_reports_a_write_applied_twice(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(701, 1);
	struct tt_rec other = transfer(702, 2);

	told(ck, &t, 1, TT_OUT_COMMITTED);
	told(ck, &other, 1, TT_OUT_COMMITTED);
	sink_all(ck, &t);
	sink_all(ck, &t);                         /* the whole transaction again */
	sink_all(ck, &other);
	tt_checker_run(ck);
	assert_int_equal(tt_checker_count_kind(ck, TT_V_DUPLICATE), 2);
	assert_true(has_kind(ck, TT_V_DUPLICATE, 701));
	assert_int_equal(total(ck), 2);           /* both legs twice: still sums to 0 */
	tt_checker_free(ck);
}

static void test_checker_reports_data_no_client_sent(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(801, 1);

	told(ck, &t, 1, TT_OUT_COMMITTED);
	sink_all(ck, &t);
	assert_int_equal(tt_checker_add_sink(ck, 2, 999, "w/9/9", 5, "v9", 2), 0); /* no txid */
	assert_int_equal(tt_checker_add_sink(ck, 2, 801, "x/1/1/to", 8, "+40", 3), 0); /* wrong kv */
	assert_int_equal(tt_checker_add_sink(ck, 0, 801, "w/1/1", 5, "v1", 2), 0); /* wrong key */
	tt_checker_run(ck);
	assert_int_equal(tt_checker_count_kind(ck, TT_V_FOREIGN), 3);
	assert_true(has_kind(ck, TT_V_FOREIGN, 999));
	assert_int_equal(tt_checker_count_kind(ck, TT_V_CONSERVATION), 1); /* +40 extra */
	assert_int_equal(total(ck), 4);
	tt_checker_free(ck);
}

static void test_checker_reports_a_changed_value(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = intent(811, 1, TT_KIND_WRITE, TT_PLAN_COMMIT);

	add_w(&t, 1, "w/1/1", "v1");
	told(ck, &t, 1, TT_OUT_COMMITTED);
	assert_int_equal(tt_checker_add_sink(ck, 1, 811, "w/1/1", 5, "v2", 2), 0);
	tt_checker_run(ck);
	assert_true(has_kind(ck, TT_V_FOREIGN, 811));
	assert_true(has_kind(ck, TT_V_COMMIT_LOST, 811));
	tt_checker_free(ck);
}

static void test_checker_reports_broken_conservation(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(901, 1);

	/* Atomicity holds per write key here, but a stray transfer value does not add up. */
	told(ck, &t, 1, TT_OUT_COMMITTED);
	sink_all(ck, &t);
	assert_int_equal(tt_checker_add_sink(ck, 0, 77, "x/5/5/from", 10, "-3", 2), 0);
	tt_checker_run(ck);
	assert_int_equal(tt_checker_count_kind(ck, TT_V_CONSERVATION), 1);
	assert_int_equal(tt_checker_counts(ck)->transfer_sum, -3);
	tt_checker_free(ck);
}

static void test_checker_reports_conflicting_outcomes(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec t = transfer(1001, 1);

	told(ck, &t, 1, TT_OUT_ABORTED);
	rec(ck, TT_REC_RESOLVED, t.txid, TT_OUT_COMMITTED);
	tt_checker_run(ck);
	assert_true(has_kind(ck, TT_V_CONFLICT, 1001));
	tt_checker_free(ck);
}

static void test_checker_reports_a_reused_txid(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec a = transfer(1101, 1), b = transfer(1101, 2);

	told(ck, &a, 1, TT_OUT_ABORTED);
	b.client = 2;
	assert_int_equal(tt_checker_add_rec(ck, 2, &b), 0);
	tt_checker_run(ck);
	assert_only(ck, TT_V_TXID_REUSED, 1101);
	tt_checker_free(ck);
}

static void test_checker_reports_what_healing_left(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);

	tt_checker_add_prepared(ck, 1, 1201);
	tt_checker_add_unacked(ck, 1202);
	tt_checker_add_slow_recovery(ck, 12000, 10000);
	tt_checker_add_death(ck, "kv2", "killed by signal 6");
	tt_checker_run(ck);
	assert_int_equal(tt_checker_count_kind(ck, TT_V_DIED), 1);
	assert_true(has_kind(ck, TT_V_LEFT_PREPARED, 1201));
	assert_true(has_kind(ck, TT_V_UNACKED, 1202));
	assert_int_equal(tt_checker_count_kind(ck, TT_V_SLOW_RECOVERY), 1);
	tt_checker_free(ck);
}

/* ---- staged writes, operator decisions, strangers ---- */

/* A staged transfer of 40: kv1 -40, kv2 +25 (stage 1) and +15 (stage 2). */
static struct tt_rec staged_transfer(uint64_t txid, uint64_t seq)
{
	struct tt_rec r = intent(txid, seq, TT_KIND_TRANSFER, TT_PLAN_COMMIT);

	r.staged = 1;
	add_w(&r, 0, "x/1/9/from", "-40");
	add_w(&r, 1, "x/1/9/to", "+25");
	add_w(&r, 1, "x/1/9/to.s2", "+15");
	return r;
}

static void put_ok(struct tt_checker *ck, uint64_t txid, uint8_t index)
{
	struct tt_rec r;

	memset(&r, 0, sizeof(r));
	r.type = TT_REC_PUT_OK;
	r.txid = txid;
	r.index = index;
	assert_int_equal(tt_checker_add_rec(ck, 1, &r), 0);
}

static void operator(struct tt_checker *ck, uint64_t txid, int commit, int force,
		     const char *result, const char *overrode)
{
	struct tt_rec r;

	memset(&r, 0, sizeof(r));
	r.type = TT_REC_OPERATOR;
	r.txid = txid;
	r.outcome = commit ? TT_OUT_COMMITTED : TT_OUT_ABORTED;
	r.force = (uint8_t)force;
	snprintf(r.why, sizeof(r.why), "%s", result);
	snprintf(r.overrode, sizeof(r.overrode), "%s", overrode);
	assert_int_equal(tt_checker_add_rec(ck, 0, &r), 0);
}

static void test_checker_reports_a_first_stage_lost_at_a_participant(void **state)
{
	/* kv2 restarted between the stages: its first write is gone, the second committed
	 * with kv1's, and the client was told COMMITTED. */
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec in = staged_transfer(1301, 9);

	told(ck, &in, 1, TT_OUT_COMMITTED);
	for (uint8_t i = 0; i < 3; i++)
		put_ok(ck, in.txid, i);
	sink(ck, &in, 0);
	sink(ck, &in, 2);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_true(has_kind(ck, TT_V_LOST_WRITE, 1301));
	assert_true(has_kind(ck, TT_V_PARTIAL, 1301));
	assert_true(has_kind(ck, TT_V_COMMIT_LOST, 1301));
	assert_int_equal(tt_checker_count_kind(ck, TT_V_CONSERVATION), 1);
	size_t n;
	const struct tt_violation *v = tt_checker_violations(ck, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == TT_V_LOST_WRITE) {
			assert_int_equal(v[i].part, 1);
			assert_non_null(strstr(v[i].detail, "x/1/9/to=+25 (stage 1)"));
		}
	tt_checker_free(ck);
}

static void test_checker_takes_a_staged_transaction_applied_whole_as_clean(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec in = staged_transfer(1302, 9), ab = staged_transfer(1303, 10);

	told(ck, &in, 1, TT_OUT_COMMITTED);
	for (uint8_t i = 0; i < 3; i++)
		put_ok(ck, in.txid, i);
	told(ck, &ab, 1, TT_OUT_ABORTED); /* a later stage failed: nothing anywhere */
	put_ok(ck, ab.txid, 0);
	put_ok(ck, ab.txid, 1);
	sink_all(ck, &in);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_int_equal(total(ck), 0);
	assert_int_equal(tt_checker_counts(ck)->staged, 2);
	tt_checker_free(ck);
}

static void test_checker_reports_a_lost_write_the_client_was_never_told_about(void **state)
{
	/* The outcome stayed UNKNOWN, and kv2 holds only the second stage: the loss is
	 * reported even without an outcome. */
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec in = staged_transfer(1304, 9);

	told(ck, &in, 1, TT_OUT_UNKNOWN);
	for (uint8_t i = 0; i < 3; i++)
		put_ok(ck, in.txid, i);
	sink(ck, &in, 0);
	sink(ck, &in, 2);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_true(has_kind(ck, TT_V_LOST_WRITE, 1304));
	assert_true(has_kind(ck, TT_V_PARTIAL, 1304));
	tt_checker_free(ck);
}

static void test_checker_excludes_forced_operator_decisions_from_atomicity(void **state)
{
	/* A forced commit of kv1's half, and a forced abort that overrode a COMMIT after
	 * kv2 applied: both partial on purpose, neither a violation. */
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec fc = transfer(1401, 1), fa = transfer(1402, 2);

	told(ck, &fc, 0, TT_OUT_NONE);
	operator(ck, fc.txid, 1, 1, "accepted", "none");
	told(ck, &fa, 1, TT_OUT_COMMITTED);
	operator(ck, fa.txid, 0, 1, "accepted", "COMMIT");
	sink(ck, &fc, 0);
	sink(ck, &fa, 1);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_int_equal(total(ck), 0);
	assert_int_equal(tt_checker_counts(ck)->operator_decided, 2);
	assert_int_equal(tt_checker_counts(ck)->operator_calls, 2);
	tt_checker_free(ck);
}

static void test_checker_checks_refused_and_plain_operator_decisions_as_usual(void **state)
{
	/* A refused forced abort, an unreachable forced commit, a plain abort and a forced
	 * abort that overrode nothing must have changed nothing: a partial is reported. */
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec a = transfer(1501, 1), b = transfer(1502, 2), c = transfer(1503, 3),
		      d = transfer(1504, 4);

	told(ck, &a, 1, TT_OUT_COMMITTED);
	operator(ck, a.txid, 0, 1, "refused", "-");
	told(ck, &b, 1, TT_OUT_UNKNOWN);
	operator(ck, b.txid, 1, 1, "unreachable", "-");
	told(ck, &c, 1, TT_OUT_ABORTED);
	operator(ck, c.txid, 0, 0, "accepted", "none");
	told(ck, &d, 1, TT_OUT_ABORTED);
	operator(ck, d.txid, 0, 1, "accepted", "none");
	sink(ck, &a, 0);
	sink(ck, &b, 1);
	sink(ck, &c, 0);
	sink(ck, &d, 1);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_true(has_kind(ck, TT_V_PARTIAL, 1501));
	assert_true(has_kind(ck, TT_V_PARTIAL, 1502));
	assert_true(has_kind(ck, TT_V_PARTIAL, 1503));
	assert_true(has_kind(ck, TT_V_PARTIAL, 1504));
	assert_int_equal(tt_checker_counts(ck)->operator_decided, 0);
	tt_checker_free(ck);
}

static void test_checker_still_reports_a_lost_write_of_an_operator_decided_txid(void **state)
{
	/* No heuristic decision lets a participant commit half of its own writes. */
	struct tt_checker *ck = tt_checker_new(3, 1);
	struct tt_rec in = staged_transfer(1601, 9);

	told(ck, &in, 1, TT_OUT_COMMITTED);
	for (uint8_t i = 0; i < 3; i++)
		put_ok(ck, in.txid, i);
	operator(ck, in.txid, 1, 1, "uncertain", "-");
	sink(ck, &in, 2);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_only(ck, TT_V_LOST_WRITE, 1601);
	tt_checker_free(ck);
}

static void test_checker_reports_a_stranger(void **state)
{
	struct tt_checker *ck = tt_checker_new(3, 1);

	assert_int_equal(tt_checker_add_stranger(ck, 1, "stranger1: still running"), 0);
	assert_int_equal(tt_checker_run(ck), 0);
	assert_only(ck, TT_V_STRANGER, 0);
	tt_checker_free(ck);
}

/* ---- the record format ---- */

static void test_records_round_trip(void **state)
{
	struct tt_rec in = transfer(123456789, 42), out;
	char line[512];

	in.client = 3;
	add_w(&in, 2, "x/3/42/to2", "+7");
	assert_true(tt_rec_format(&in, line, sizeof(line)) > 0);
	assert_string_equal(line, "intent 123456789 transfer commit 3/42 kv1:x/1/42/from=-40 "
				  "kv2:x/1/42/to=+40 kv3:x/3/42/to2=+7\n");
	assert_int_equal(tt_rec_parse(line, &out), 0);
	assert_int_equal(out.txid, 123456789);
	assert_int_equal(out.client, 3);
	assert_int_equal(out.seq, 42);
	assert_int_equal(out.nwrites, 3);
	assert_int_equal(out.w[2].part, 2);
	assert_string_equal(out.w[2].key, "x/3/42/to2");
	assert_string_equal(out.w[2].value, "+7");
	assert_int_equal(tt_rec_parse("outcome 5 COMMITTED\n", &out), 0);
	assert_int_equal(out.outcome, TT_OUT_COMMITTED);
	assert_int_equal(tt_rec_parse("by-key 6 ABORTED\n", &out), 0);
	assert_int_equal(out.type, TT_REC_BY_KEY);
	assert_int_equal(out.outcome, TT_OUT_ABORTED);
}

static void test_records_round_trip_stages_acks_and_operator_calls(void **state)
{
	struct tt_rec in = staged_transfer(77, 9), out;
	struct tt_rec op = { .type = TT_REC_OPERATOR, .txid = 78, .outcome = TT_OUT_ABORTED,
			     .force = 1, .why = "accepted", .overrode = "COMMIT" };
	char line[512];

	assert_true(tt_rec_format(&in, line, sizeof(line)) > 0);
	assert_string_equal(line, "intent 77 transfer commit 1/9 staged kv1:x/1/9/from=-40 "
				  "kv2:x/1/9/to=+25 kv2:x/1/9/to.s2=+15\n");
	assert_int_equal(tt_rec_parse(line, &out), 0);
	assert_int_equal(out.staged, 1);
	assert_int_equal(out.nwrites, 3);
	assert_int_equal(tt_rec_parse("put-ok 77 2\n", &out), 0);
	assert_int_equal(out.type, TT_REC_PUT_OK);
	assert_int_equal(out.index, 2);
	assert_true(tt_rec_format(&op, line, sizeof(line)) > 0);
	assert_string_equal(line, "operator 78 abort force accepted COMMIT\n");
	assert_int_equal(tt_rec_parse(line, &out), 0);
	assert_int_equal(out.type, TT_REC_OPERATOR);
	assert_int_equal(out.outcome, TT_OUT_ABORTED);
	assert_int_equal(out.force, 1);
	assert_string_equal(out.why, "accepted");
	assert_string_equal(out.overrode, "COMMIT");
	assert_int_not_equal(tt_rec_parse("put-ok 77 9\n", &out), 0);
	assert_int_not_equal(tt_rec_parse("operator 78 abort maybe accepted -\n", &out), 0);
}

static void test_records_reject_torn_and_malformed_lines(void **state)
{
	struct tt_rec out;

	assert_int_not_equal(tt_rec_parse("intent 12 transfer commit 1/1 kv1:x/1/1/fr", &out), 0);
	assert_int_not_equal(tt_rec_parse("outcome 5 COMMIT", &out), 0);
	assert_int_not_equal(tt_rec_parse("outcome 0 COMMITTED", &out), 0);
	assert_int_not_equal(tt_rec_parse("begin", &out), 0);
	assert_int_not_equal(tt_rec_parse("intent 3 transfer commit 1/1 kv9:k=v", &out), 0);
	assert_int_not_equal(tt_rec_parse("", &out), 0);
}

/* ---- the schedule ---- */

static void test_schedule_is_a_function_of_the_seed(void **state)
{
	struct tt_sched_config cfg = { .seed = 77, .duration_ms = 60000, .round_ms = 20000,
				       .nparts = 3, .nclients = 4, .proxies = 1 };
	struct tt_schedule a, b, c;

	assert_int_equal(tt_schedule_build(&cfg, &a), 0);
	assert_int_equal(tt_schedule_build(&cfg, &b), 0);
	cfg.seed = 78;
	assert_int_equal(tt_schedule_build(&cfg, &c), 0);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.v, b.v, a.n * sizeof(*a.v));
	assert_true(a.n != c.n || memcmp(a.v, c.v, a.n * sizeof(*a.v)) != 0);
	size_t checkpoints = 0;
	for (size_t i = 0; i < a.n; i++) {
		checkpoints += a.v[i].act == TT_ACT_CHECKPOINT;
		if (i)
			assert_true(a.v[i].at_ms >= a.v[i - 1].at_ms);
	}
	assert_int_equal(checkpoints, 3);
	assert_int_equal(a.v[a.n - 1].act, TT_ACT_CHECKPOINT);
	tt_schedule_free(&a);
	tt_schedule_free(&b);
	tt_schedule_free(&c);
}

static void test_schedule_ends_every_round_with_its_checkpoint(void **state)
{
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct tt_sched_config cfg = { .seed = seed, .duration_ms = 30000,
					       .round_ms = 10000, .nparts = 3, .nclients = 2,
					       .proxies = 1 };
		struct tt_schedule s;
		uint64_t round_end = 10000;

		assert_int_equal(tt_schedule_build(&cfg, &s), 0);
		assert_int_equal(s.v[s.n - 1].act, TT_ACT_CHECKPOINT);
		for (size_t i = 0; i < s.n; i++) {
			if (s.v[i].act == TT_ACT_CHECKPOINT) {
				assert_int_equal(s.v[i].at_ms, round_end);
				round_end += 10000;
			} else {
				assert_true(s.v[i].at_ms < round_end);
			}
		}
		tt_schedule_free(&s);
	}
}

static void test_fault_rotation_arms_every_point(void **state)
{
	static const char *const points[] = {
		"coord.prepare.partial_send", "coord.decision.before_log",
		"coord.decision.after_log", "coord.commit.partial_send", "coord.end.before_log",
		"coord.recovery.resend", "part.prepare.before_log", "part.prepare.after_log",
		"part.vote.after_send", "part.commit.before_apply", "part.commit.after_apply",
		"log.sync",
	};
	struct tt_sched_config cfg = { .seed = 5, .duration_ms = 10000, .nparts = 3,
				       .nclients = 1, .proxies = 1 };
	struct tt_schedule s;
	int seen[sizeof(points) / sizeof(points[0])] = { 0 };
	char spec[512];

	assert_int_equal(tt_schedule_build(&cfg, &s), 0);
	for (int role = TT_ROLE_COORD; role <= TT_ROLE_PART; role++) {
		unsigned armed = 0;
		for (unsigned start = 0; start < 100; start++) {
			tt_schedule_faults(&s, (enum tt_role)role, 0, start, armed, spec, sizeof(spec));
			if (start == 0)
				assert_string_equal(spec, ""); /* the first start is clean */
			armed += spec[0] != '\0';
			for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++)
				seen[p] |= strstr(spec, points[p]) != NULL;
		}
	}
	for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++)
		if (!seen[p])
			fail_msg("fault point %s never armed", points[p]);
	tt_schedule_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_reports_nothing_for_a_clean_history),
		cmocka_unit_test(test_checker_reports_a_partial_transaction),
		cmocka_unit_test(test_checker_reports_part_of_a_participants_writes),
		cmocka_unit_test(test_checker_reports_a_lost_commit),
		cmocka_unit_test(test_checker_reports_a_resolved_commit_that_is_missing),
		cmocka_unit_test(test_checker_reports_an_applied_abort),
		cmocka_unit_test(test_checker_does_not_trust_resolved_aborts_without_retention),
		cmocka_unit_test(test_checker_takes_a_by_key_answer_as_told),
		cmocka_unit_test(test_checker_reports_a_commit_nobody_asked_for),
		cmocka_unit_test(test_checker_reports_an_overruled_no_vote),
		cmocka_unit_test(test_checker_reports_a_write_applied_twice),
		cmocka_unit_test(test_checker_reports_data_no_client_sent),
		cmocka_unit_test(test_checker_reports_a_changed_value),
		cmocka_unit_test(test_checker_reports_broken_conservation),
		cmocka_unit_test(test_checker_reports_conflicting_outcomes),
		cmocka_unit_test(test_checker_reports_a_reused_txid),
		cmocka_unit_test(test_checker_reports_what_healing_left),
		cmocka_unit_test(test_checker_reports_a_first_stage_lost_at_a_participant),
		cmocka_unit_test(test_checker_takes_a_staged_transaction_applied_whole_as_clean),
		cmocka_unit_test(test_checker_reports_a_lost_write_the_client_was_never_told_about),
		cmocka_unit_test(test_checker_excludes_forced_operator_decisions_from_atomicity),
		cmocka_unit_test(test_checker_checks_refused_and_plain_operator_decisions_as_usual),
		cmocka_unit_test(test_checker_still_reports_a_lost_write_of_an_operator_decided_txid),
		cmocka_unit_test(test_checker_reports_a_stranger),
		cmocka_unit_test(test_records_round_trip),
		cmocka_unit_test(test_records_round_trip_stages_acks_and_operator_calls),
		cmocka_unit_test(test_records_reject_torn_and_malformed_lines),
		cmocka_unit_test(test_schedule_is_a_function_of_the_seed),
		cmocka_unit_test(test_schedule_ends_every_round_with_its_checkpoint),
		cmocka_unit_test(test_fault_rotation_arms_every_point),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
