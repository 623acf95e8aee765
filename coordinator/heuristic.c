/*
 * heuristic.c - operator decisions on transactions (POST .../commit and .../abort, with
 * the semantics table of docs/admin-api.md), their durable audit trail, retry, and
 * GET /v1/audit.
 *
 * A decision goes through these steps, all on the loop thread:
 *   1. check the body and the transaction's state; refuse (409) what would contradict a
 *      durable decision unless forced;
 *   2. write the audit entry (COORD_REC_AUDIT) through the batch writer, synced like every
 *      batch: nothing changes before it is on disk;
 *   3. in its completion, look again (the transaction may have moved on meanwhile) and
 *      carry the decision out:
 *        ACTIVE/PREPARING    EV_OPERATOR into the state machine: an abort takes effect at
 *                            once; a commit takes the normal COMMIT logging path (D1), and
 *                            the answer waits until that record is durable;
 *        COMMITTING, forced  EV_OPERATOR marks the transaction (the machine stops resending
 *        abort               and completing it), COORD_REC_DROP deletes the COMMIT record,
 *                            and only once that is durable does EV_DROPPED send the ABORTs
 *                            and forget it (a crash in between leaves the COMMIT in force,
 *                            whole). If the last ack arrived meanwhile, it committed
 *                            everywhere: the machine writes the COMMIT record and key again
 *                            and the operator hears 409 (COMMITTED) once that is durable;
 *        not in memory,      a COMMIT record with no participants, then its COMPLETED
 *        forced commit       tombstone: participants that ask hear COMMITTED (for the
 *                            outcome retention);
 *        no-op ("already")   nothing;
 *   4. answer (done, or why it was not carried out) through admin.c's answer function.
 * It speaks no HTTP: admin.c parses the request and words the answer (admin_int.h).
 * Owns struct admin_op and the records embedded in it (their done() is this file's).
 *
 * Also what a participant asking about a transaction is told (heuristic_logged_status())
 * and retry.
 */
#include "admin_int.h"
#include "errname.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op_plan { PLAN_NOOP = COORD_OP_NOOP, PLAN_STEP = COORD_OP_STEP, PLAN_DROP = COORD_OP_DROP,
	       PLAN_COMMIT_UNKNOWN };

struct admin_op {
	struct coord_rec rec;       /* AUDIT, then DROP (owner = this op) */
	struct admin_op *next;      /* in a->waiting while a COMMIT record is being written */
	struct coord_admin *a;
	admin_answer_fn answer;
	void *arg;                  /* the answer's */
	uint64_t txid;
	int decision;               /* enum coord_decision_kind */
	int force;
	enum op_plan plan;
	const char *overrode;       /* "none", "COMMIT" or "ABORT" */
	const char *already;        /* a no-op: "COMMITTED" or "ABORTED"; else NULL */
	char *text;                 /* the audit entry (JSON) */
	char *key;                  /* DROP: the transaction's client key, or NULL */
};

/* What the state allows: a plan, or a refusal with its reason. */
struct verdict {
	enum admin_code code;       /* ADMIN_OK: accepted */
	enum op_plan plan;
	const char *state_before;
	const char *overrode;
	const char *already;
	const char *why;
};

static const char *decision_name(int decision)
{
	return decision == DECIDE_COMMIT ? "COMMIT" : "ABORT";
}

static void op_free(struct admin_op *op)
{
	free(op->text);
	free(op->key);
	free(op);
}

static void op_reply_error(struct admin_op *op, enum admin_code code, const char *fmt,
			   const char *detail)
{
	struct admin_result r = { .txid = op->txid, .audit_id = op->rec.audit_id };

	r.code = code;
	snprintf(r.why, sizeof(r.why), fmt, detail);
	op->answer(op->arg, &r);
	op_free(op);
}

static void op_reply_done(struct admin_op *op)
{
	struct coord_server *s = op->a->srv;
	struct admin_result r = { .txid = op->txid, .decision = decision_name(op->decision),
				  .overrode = op->overrode, .audit_id = op->rec.audit_id,
				  .already = op->already };

	if (!op->already)
		tpc_logf(&s->log, TPC_LOG_WARN,
			 "heuristic %s of txid %" PRIu64 " carried out (overrode %s; audit entry %"
			 PRIu64 ")", decision_name(op->decision), op->txid, op->overrode,
			 op->rec.audit_id);
	op->answer(op->arg, &r);
	op_free(op);
}

static void wait_for_commit(struct admin_op *op)
{
	op->next = op->a->waiting;
	op->a->waiting = op;
}

static struct admin_op *take_waiting(struct coord_admin *a, uint64_t txid)
{
	for (struct admin_op **pp = &a->waiting; *pp; pp = &(*pp)->next) {
		struct admin_op *op = *pp;
		if (op->txid == txid) {
			*pp = op->next;
			return op;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ deciding the plan */

static void plan_accept(struct verdict *v, enum op_plan plan, const char *overrode,
		   const char *already)
{
	v->code = ADMIN_OK;
	v->plan = plan;
	v->overrode = overrode;
	v->already = already;
}

static void plan_refuse(struct verdict *v, enum admin_code code, const char *why)
{
	v->code = code;
	v->why = why;
}

/* An open transaction: the machine's own rules (coord_txn_operator_check()). */
static void plan_open(const struct coord_txn *t, int decision, int force, struct verdict *v)
{
	struct coord_op_check c;

	v->state_before = coord_txn_state_str(t->state);
	if (coord_txn_operator_check(t, decision, force, &c))
		plan_refuse(v, ADMIN_CONFLICT, c.why);
	else
		plan_accept(v, (enum op_plan)c.plan, c.overrode, c.already);
}

/* A txid this coordinator never handed out: a later epoch, or beyond this one's count. */
static int never_begun(const struct coord_server *s, uint64_t txid)
{
	uint64_t epoch = COORD_TXID_EPOCH(txid);
	uint64_t seq = txid & ((1ull << COORD_TXID_SEQ_BITS) - 1);

	return epoch == 0 || epoch > s->epoch || (epoch == s->epoch && seq > s->next_seq);
}

static void plan_gone(struct coord_server *s, uint64_t txid, int decision, int force,
		      struct verdict *v)
{
	const char *st = heuristic_logged_status(s, txid);

	v->state_before = st;
	if (never_begun(s, txid)) /* first: nothing to decide, nothing to audit */
		plan_refuse(v, ADMIN_NOT_FOUND,
			"this coordinator never issued that transaction id");
	else if (!st)
		plan_refuse(v, ADMIN_UNAVAILABLE, "cannot read the decision log; ask again");
	else if (st[0] == 'F')
		plan_refuse(v, ADMIN_CONFLICT,
			"its outcome is older than the outcome retention and was "
			"forgotten: this coordinator no longer knows whether it committed");
	else if (decision == DECIDE_ABORT && st[0] == 'A')
		plan_accept(v, PLAN_NOOP, "none", "ABORTED");
	else if (decision == DECIDE_ABORT)
		plan_refuse(v, ADMIN_CONFLICT,
			"it committed and every participant acknowledged (applied) it; "
			"there is nothing left to abort");
	else if (st[0] == 'C')
		plan_accept(v, PLAN_NOOP, "none", "COMMITTED");
	else if (!force)
		plan_refuse(v, ADMIN_CONFLICT,
			"no such open transaction: it is presumed aborted (participants "
			"that ask are told ABORTED); \"force\": true records a COMMIT instead");
	else
		plan_accept(v, PLAN_COMMIT_UNKNOWN, "ABORT", NULL);
}

/* ------------------------------------------------------------ the audit entry */

static json_t *parts_snapshot(struct coord_server *s, const struct coord_txn *t)
{
	json_t *arr = json_array();

	for (uint8_t i = 0; t && arr && i < t->nparts; i++) {
		struct peer *p = coord_peer(s, t->parts[i].peer);
		json_array_append_new(arr, json_pack("{s:s, s:s}", "name", p ? p->name : "?",
						     "state",
						     coord_part_state_str(t->parts[i].state)));
	}
	return arr;
}

static char *audit_text(struct admin_op *op, const struct admin_args *args,
			const struct verdict *v, const struct coord_txn *t)
{
	struct coord_server *s = op->a->srv;
	char at[40], txid[24];
	json_t *e;
	char *text;

	tpc_format_wall_ms(op->rec.wall_ms, at, sizeof(at));
	snprintf(txid, sizeof(txid), "%" PRIu64, op->txid);
	e = json_pack("{s:I, s:s, s:s?, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:o}", "id",
		      (json_int_t)op->rec.audit_id, "at", at, "operator", args->operator, "peer",
		      args->from, "action", op->decision == DECIDE_COMMIT ? "commit" : "abort",
		      "txid", txid, "reason", args->reason, "forced", args->force,
		      "state_before", v->state_before, "overrode", v->overrode, "participants",
		      parts_snapshot(s, t));
	if (e && v->already)
		json_object_set_new(e, "already", json_string(v->already));
	text = e ? json_dumps(e, JSON_COMPACT) : NULL;
	json_decref(e);
	return text;
}

static void heuristic_logged(struct coord_server *s, struct coord_rec *r, int status);

static struct admin_op *op_new(struct coord_admin *a, uint64_t txid, int decision,
			       const struct verdict *v)
{
	struct admin_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->a = a;
	op->txid = txid;
	op->decision = decision;
	op->plan = v->plan;
	op->overrode = v->overrode;
	op->already = v->already;
	op->rec.type = COORD_REC_AUDIT;
	op->rec.txid = txid;
	op->rec.wall_ms = tpc_wall_ms();
	op->rec.owner = op;
	op->rec.done = heuristic_logged;
	return op;
}

static void refuse(admin_answer_fn answer, void *arg, uint64_t txid, const char *state,
		   enum admin_code code, const char *why)
{
	struct admin_result r = { .txid = txid, .state = state };

	admin_result_fail(&r, code, "%s", why);
	answer(arg, &r);
}

void heuristic_decide(struct coord_admin *a, uint64_t txid, int decision,
		      const struct admin_args *args, admin_answer_fn answer, void *arg)
{
	struct coord_server *s = a->srv;
	struct coord_txn *t = u64map_get(&s->txns, txid);
	struct verdict v = { 0 };
	struct admin_op *op;

	if (t)
		plan_open(t, decision, args->force, &v);
	else
		plan_gone(s, txid, decision, args->force, &v);
	if (v.code) {
		refuse(answer, arg, txid, v.state_before, v.code, v.why);
		return;
	}
	op = op_new(a, txid, decision, &v);
	if (op) {
		op->answer = answer;
		op->arg = arg;
		op->force = args->force;
		op->rec.audit_id = a->next_audit_id++;
		op->text = audit_text(op, args, &v, t);
	}
	if (!op || !op->text) {
		if (op)
			op_free(op);
		refuse(answer, arg, 0, NULL, ADMIN_FAILED, "out of memory");
		return;
	}
	op->rec.text = op->text;
	op->rec.text_len = strlen(op->text);
	tpc_logf(&s->log, TPC_LOG_INFO, "operator call: %s", op->text);
	batch_writer_submit(s->writer, &op->rec.item); /* carried out once it is durable */
}

/* ------------------------------------------------------------ carrying it out */

static void reply_moved_on(struct admin_op *op)
{
	const char *st = heuristic_logged_status(op->a->srv, op->txid);

	op_reply_error(op, ADMIN_CONFLICT,
		"the transaction finished while the audit entry was written "
		"(participants asking are told %s); nothing was changed",
		st ? st : "UNKNOWN");
}

static void carry_step(struct admin_op *op)
{
	struct coord_server *s = op->a->srv;
	struct coord_txn *t = u64map_get(&s->txns, op->txid);
	struct coord_event ev = { .type = EV_OPERATOR, .decision = op->decision,
				  .force = op->force };

	if (!t) {
		reply_moved_on(op);
		return;
	}
	if (coord_step_rc(s, t, &ev) != 0) {
		op_reply_error(op, ADMIN_CONFLICT,
			"refused: the transaction moved on to %s while the audit "
			"entry was written; nothing was changed",
			coord_txn_state_str(t->state));
		return;
	}
	t = u64map_get(&s->txns, op->txid); /* the step may have freed it */
	if (t && t->state == TXN_LOGGING) {
		wait_for_commit(op); /* answered when the COMMIT record is durable (D1) */
		return;
	}
	op_reply_done(op);
}

static void start_drop(struct admin_op *op)
{
	struct coord_server *s = op->a->srv;
	struct coord_txn *t = u64map_get(&s->txns, op->txid);
	struct coord_event ev = { .type = EV_OPERATOR, .decision = DECIDE_ABORT, .force = 1 };

	if (!t || t->state != TXN_COMMITTING) {
		reply_moved_on(op);
		return;
	}
	if (t->key && !(op->key = strdup(t->key))) {
		op_reply_error(op, ADMIN_FAILED, "%s; nothing was changed", "out of memory");
		return;
	}
	/* Marked while the DROP is written: no resends, and an ack completes nothing. */
	if (coord_step_rc(s, t, &ev) != 0) {
		op_reply_error(op, ADMIN_CONFLICT, "%s; nothing was changed",
			       "another operator's abort of this COMMIT is being written");
		return;
	}
	memset(&op->rec.item, 0, sizeof(op->rec.item));
	op->rec.type = COORD_REC_DROP;
	op->rec.key = op->key;
	op->rec.key_len = op->key ? strlen(op->key) : 0;
	op->rec.batch_n = 0;
	batch_writer_submit(s->writer, &op->rec.item);
}

/* The DROP record is done: the machine sends the ABORTs, or (the last ack came while it
 * was written) writes the COMMIT record again; the operator hears which. */
static void drop_done(struct admin_op *op, int status)
{
	struct coord_server *s = op->a->srv;
	struct coord_txn *t = u64map_get(&s->txns, op->txid);
	struct coord_event ev = { .type = EV_DROPPED, .status = status };

	if (!t || t->state != TXN_COMMITTING || t->dropping != DROP_WRITING) {
		op_reply_error(op, ADMIN_FAILED,
			"%s", "the transaction was not marked for the override "
			"(internal error); see GET /v1/transactions/{txid}");
		return;
	}
	coord_step(s, t, &ev);
	if (status < 0) {
		op_reply_error(op, ADMIN_FAILED,
			"the COMMIT record could not be dropped (%s); nothing was "
			"changed", tpc_errname(status));
		return;
	}
	t = u64map_get(&s->txns, op->txid);
	if (t && t->dropping == DROP_RESTORING) {
		wait_for_commit(op); /* answered when the record is durable again */
		return;
	}
	op_reply_done(op); /* ABORT to the unacknowledged; forgotten */
}

/* A DROP raced the last ack and the COMMIT record is written again: say so. */
static void reply_restored(struct admin_op *op, int status)
{
	if (status < 0) {
		op_reply_error(op, ADMIN_FAILED,
			"every participant acknowledged (applied) the COMMIT while "
			"the override was written; writing its record again failed (%s) and "
			"the coordinator retries it: nothing was aborted",
			tpc_errname(status));
		return;
	}
	op_reply_error(op, ADMIN_CONFLICT,
		"%s", "the transaction committed everywhere: every participant "
		"acknowledged (applied) the COMMIT while the override was being written; "
		"its decision stays COMMITTED and nothing was aborted");
}

static void start_commit_unknown(struct admin_op *op)
{
	struct coord_server *s = op->a->srv;
	struct coord_rec *r = calloc(1, sizeof(*r));

	if (!r) {
		op_reply_error(op, ADMIN_FAILED, "%s; nothing was changed", "out of memory");
		return;
	}
	r->type = COORD_REC_COMMIT; /* no participants: nobody to deliver to */
	r->txid = op->txid;
	r->wall_ms = tpc_wall_ms();
	wait_for_commit(op);
	batch_writer_submit(s->writer, &r->item); /* coord_log_done() frees it */
}

static void audit_done(struct admin_op *op, int status)
{
	if (status < 0) {
		op_reply_error(op, ADMIN_FAILED,
			"the audit entry could not be written (%s); nothing was "
			"changed", tpc_errname(status));
		return;
	}
	if (op->a->srv->stopping) {
		op_reply_error(op, ADMIN_UNAVAILABLE,
			"%s", "shutting down: the audit entry was written but the "
			"decision was not carried out");
		return;
	}
	switch (op->plan) {
	case PLAN_NOOP: op_reply_done(op); return;
	case PLAN_STEP: carry_step(op); return;
	case PLAN_DROP: start_drop(op); return;
	case PLAN_COMMIT_UNKNOWN: start_commit_unknown(op); return;
	}
}

static void heuristic_logged(struct coord_server *s, struct coord_rec *r, int status)
{
	struct admin_op *op = r->owner;

	if (r->type == COORD_REC_AUDIT)
		audit_done(op, status);
	else
		drop_done(op, status);
}

/* The COMMIT written for a forced commit of a forgotten txid: complete it at once. */
static void complete_unknown(struct coord_server *s, uint64_t txid)
{
	struct coord_rec *r = calloc(1, sizeof(*r));

	if (!r)
		return; /* the record stays COMMIT: after a restart it completes on its first tick */
	r->type = COORD_REC_COMPLETE;
	r->txid = txid;
	r->wall_ms = tpc_wall_ms();
	batch_writer_submit(s->writer, &r->item);
}

void heuristic_commit_logged(struct coord_server *s, uint64_t txid, int status)
{
	struct admin_op *op = s->admin ? take_waiting(s->admin, txid) : NULL;

	if (!op)
		return;
	if (op->plan == PLAN_DROP) {
		reply_restored(op, status);
		return;
	}
	if (status < 0) {
		op_reply_error(op, ADMIN_FAILED,
			"the COMMIT record write failed (%s); the coordinator "
			"retries it: see GET /v1/transactions/{txid}",
			tpc_errname(status));
		return;
	}
	if (op->plan == PLAN_COMMIT_UNKNOWN && !s->stopping)
		complete_unknown(s, txid);
	op_reply_done(op);
}

void heuristic_free_waiting(struct coord_admin *a)
{
	struct admin_op *op;

	while ((op = a->waiting) != NULL) {
		a->waiting = op->next;
		op_reply_error(op, ADMIN_UNAVAILABLE,
			"%s", "shutting down before the COMMIT record was written; "
			"ask again after the restart");
	}
}

/* ------------------------------------------------------------ retry */

void heuristic_retry(struct coord_admin *a, uint64_t txid, struct admin_result *r)
{
	struct coord_server *s = a->srv;
	struct coord_txn *t = u64map_get(&s->txns, txid);
	uint8_t want;

	r->txid = txid;
	if (!t) {
		r->status = heuristic_logged_status(s, txid);
		admin_result_fail(r, ADMIN_NOT_FOUND, "no open transaction %" PRIu64, txid);
		return;
	}
	if (t->state != TXN_COMMITTING && t->state != TXN_PREPARING) {
		r->state = coord_txn_state_str(t->state);
		admin_result_fail(r, ADMIN_CONFLICT, "nothing to resend in state %s", r->state);
		return;
	}
	r->resent = 1;
	want = t->state == TXN_COMMITTING ? PART_YES : PART_JOINED;
	for (uint8_t i = 0; i < t->nparts; i++) {
		if (t->parts[i].state != want)
			continue;
		struct peer *p = coord_peer(s, t->parts[i].peer);
		struct coord_event ev = { .type = EV_PEER_UP, .peer = t->parts[i].peer };
		const char *name = p ? p->name : "?";
		if (!p || !coord_conn_get(s, p->conn)) {
			r->not_connected[r->n_not_connected++] = name;
			continue;
		}
		r->resent_to[r->n_resent_to++] = name;
		coord_step(s, t, &ev); /* "it is here": the machine resends what it lacks */
	}
	if (t->state == TXN_COMMITTING && r->n_resent_to)
		t->attempts++;
}

/* ------------------------------------------------------------ the log */

const char *heuristic_logged_status(struct coord_server *s, uint64_t txid)
{
	int rc = s->store.ops->lookup_txid(s->store.self, txid);

	if (rc < 0)
		return NULL;
	return rc == COORD_LOOKUP_COMMITTED ? "COMMITTED"
	       : rc == COORD_LOOKUP_FORGOTTEN ? "FORGOTTEN" : "ABORTED";
}

/* ------------------------------------------------------------ the audit log */

static int last_id(void *arg, uint64_t id, const char *text, size_t len)
{
	*(uint64_t *)arg = id;
	return 0;
}

int heuristic_load(struct coord_admin *a)
{
	struct coord_server *s = a->srv;
	uint64_t last = 0;
	int rc = s->store.ops->audit_list(s->store.self, 0, 1, last_id, &last);

	a->next_audit_id = last + 1;
	return rc;
}
