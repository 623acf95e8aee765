/*
 * actions.c - carrying out what the state machine returns: frames to participants and
 * clients, records to the log writer, timers, and freeing forgotten transactions.
 *
 * D1 is kept by construction: ACT_SEND_DECISION(COMMIT) and a COMMITTED reply only
 * come out of coord_txn_step() for EV_LOGGED with status 0, and coord_log_done() feeds
 * EV_LOGGED only after the batch holding the COMMIT record was committed and synced.
 */
#include "server_int.h"
#include "broken.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define E(name) TPC__ERROR_CODE__ERR_##name

static struct conn *peer_conn(struct coord_server *s, uint32_t peer)
{
	struct peer *p = coord_peer(s, peer);
	return p ? coord_conn_get(s, p->conn) : NULL;
}

/* The admin API's last_error: what could not be done, for whom (enum coord_txn_err). */
static void set_txn_error(struct coord_txn *t, uint8_t kind, uint32_t peer, int status)
{
	t->err_kind = kind;
	t->err_peer = peer;
	t->err_status = status;
}

static void send_prepare(struct coord_server *s, struct coord_txn *t, uint32_t peer)
{
	struct conn *c = peer_conn(s, peer);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Prepare p = TPC__PREPARE__INIT;

	if (!c) {
		set_txn_error(t, TXN_ERR_PREPARE_NOT_SENT, peer, 0);
		return; /* sent again when it says Hello (EV_PEER_UP) */
	}
	if (t->err_kind && t->err_peer == peer) /* it reached that participant after all */
		set_txn_error(t, TXN_ERR_NONE, 0, 0);
	p.txid = t->txid;
	p.epoch = s->epoch;
	env.body_case = TPC__ENVELOPE__BODY_PREPARE;
	env.prepare = &p;
	coord_conn_send(c, &env);
	s->stats.prepares_sent++;
}

static void send_decision(struct coord_server *s, struct coord_txn *t, uint32_t peer,
			  int decision)
{
	struct conn *c = peer_conn(s, peer);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Decision d = TPC__DECISION__INIT;

	if (!c) {
		set_txn_error(t, TXN_ERR_DECISION_NOT_SENT, peer, 0);
		return; /* COMMIT: resent on Hello; ABORT: it asks and hears ABORTED (D5) */
	}
	if (t->err_kind && t->err_peer == peer)
		set_txn_error(t, TXN_ERR_NONE, 0, 0);
	d.txid = t->txid;
	d.decision = decision == DECIDE_COMMIT ? TPC__DECISION_KIND__DECISION_COMMIT
					       : TPC__DECISION_KIND__DECISION_ABORT;
	d.epoch = s->epoch;
	env.body_case = TPC__ENVELOPE__BODY_DECISION;
	env.decision = &d;
	coord_conn_send(c, &env);
	s->stats.decisions_sent++;
	if (t->owner == 0 && s->faults.armed) { /* a decision recovered from the log */
		coord_conn_flush(c);
		tpc_fault(&s->faults, TPC_FP_COORD_RECOVERY_RESEND);
	}
	if (t->attempts > 1)
		s->stats.decision_resends++;
}

static void reply_outcome(struct coord_server *s, struct coord_txn *t,
			  const struct coord_action *a)
{
	struct conn *c = coord_conn_get(s, a->conn);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Outcome o = TPC__OUTCOME__INIT;

	switch (a->outcome) {
	case OUTCOME_COMMITTED: s->stats.committed++; break;
	case OUTCOME_ABORTED: s->stats.aborted++; break;
	default: s->stats.unknown++; break;
	}
	if (!c)
		return; /* the client left; it asks with StatusQuery or its key */
	char text[512];
	o.txid = t->txid;
	o.outcome = (Tpc__OutcomeKind)a->outcome;
	o.reason = (char *)(a->reason ? a->reason : "");
	if (a->outcome == OUTCOME_ABORTED && t->abort_reason) {
		o.reason = (char *)coord_abort_text(s, t, text, sizeof(text));
		if (t->abort_reason == ABORT_VOTE_NO) {
			struct peer *p = coord_peer(s, t->no_voter);
			o.abort_participant = p ? p->name : (char *)"";
			o.abort_reason = t->no_reason ? t->no_reason : (char *)"";
		}
	}
	env.request_id = a->req;
	env.body_case = TPC__ENVELOPE__BODY_OUTCOME;
	env.outcome = &o;
	coord_conn_send(c, &env);
}

static void reply_join(struct coord_server *s, struct coord_txn *t, const struct coord_action *a)
{
	struct conn *c = coord_conn_get(s, a->conn);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__JoinReply r = TPC__JOIN_REPLY__INIT;

	if (!c)
		return;
	r.txid = t->txid;
	env.request_id = a->req;
	env.body_case = TPC__ENVELOPE__BODY_JOIN_REPLY;
	env.join_reply = &r;
	coord_conn_send(c, &env);
}

static void reply_error(struct coord_server *s, struct coord_txn *t, const struct coord_action *a)
{
	struct conn *c = coord_conn_get(s, a->conn);
	if (c)
		coord_conn_send_error(c, a->req, a->err, a->reason, t->txid);
}

static struct coord_rec *rec_new(enum coord_rec_type type, uint64_t txid)
{
	struct coord_rec *r = calloc(1, sizeof(*r));
	if (r) {
		r->type = type;
		r->txid = txid;
		r->wall_ms = tpc_wall_ms();
	}
	return r;
}

/* The COMMIT record: participants that voted YES (the only ones phase two needs). */
static int log_commit(struct coord_server *s, struct coord_txn *t)
{
	struct coord_rec *r = rec_new(COORD_REC_COMMIT, t->txid);
	const char **names = calloc(t->nparts ? t->nparts : 1, sizeof(*names));

	if (!r || !names) {
		free(r);
		free(names);
		return -ENOMEM;
	}
	for (uint8_t i = 0; i < t->nparts; i++)
		if (t->parts[i].state == PART_YES)
			names[r->nparts++] = coord_peer(s, t->parts[i].peer)->name;
	r->parts = names;
	r->queued_ns = tpc_now_ns(); /* decision force time (metrics) */
	if (t->key) {
		/* The record owns a copy: the transaction could be freed at shutdown. */
		r->key = strdup(t->key);
		r->key_len = strlen(t->key);
		if (!r->key) {
			free(names);
			free(r);
			return -ENOMEM;
		}
	}
	lazy_queue_submit_with(&s->lazy, &r->item); /* waiting COMPLETEs share this sync */
	return 0;
}

/*
 * All acked: mark the record completed. Unforced (D4 needs no force here: if it is
 * lost, the decision is resent after a restart and acked again as already applied), so
 * it waits to share the next COMMIT's batch instead of costing a sync of its own.
 */
static void log_complete(struct coord_server *s, uint64_t txid)
{
	struct coord_rec *r = rec_new(COORD_REC_COMPLETE, txid);

	if (!r)
		return; /* the record stays; resent and acked again after a restart: safe */
	r->forget = s->cfg.outcome_retention_ms == 0;
	lazy_queue_add(&s->lazy, &r->item);
}

static void rec_free(struct coord_rec *r)
{
	free((void *)r->parts);
	free((void *)r->key);
	free(r);
}

/* Writer thread (the loop thread with --inline-sync). ctx is the server (the same ctx coord_log_done() gets); only the store,
 * fixed before the writer starts and closed after it stops, is read here. */
int coord_log_write(void *ctx, struct bw_item *head, size_t n)
{
	struct coord_server *s = ctx;
	struct coord_rec *first = (struct coord_rec *)head;
	uint64_t t0 = tpc_now_ns();
	int rc = tpc_fault(&s->faults, TPC_FP_LOG_SYNC); /* slow or failing fsync */

	rc = rc ? rc : s->store.ops->write_batch(s->store.self, first, n);
	/* Timing for the metrics, read by the loop thread in done() (metrics.c). */
	first->batch_n = (uint32_t)n;
	first->batch_ns = tpc_now_ns() - t0;
	return rc;
}

/* Writer thread: make every batch written so far durable (the store's sync op). */
int coord_log_sync(void *ctx)
{
	struct coord_server *s = ctx;

	return s->store.ops->sync(s->store.self);
}

/* Loop thread: a record's batch is on disk (status 0) or failed. */
void coord_log_done(void *ctx, struct bw_item *item, int status)
{
	struct coord_server *s = ctx;
	struct coord_rec *r = (struct coord_rec *)item;

	if (status < 0) {
		s->stats.log_failures++;
		tpc_logf(&s->log, TPC_LOG_ERROR, "log write failed (%d) for txid %llu", status,
			 (unsigned long long)r->txid);
	}
	/* A COMPLETE that failed would leave an acknowledged decision in the log until the
	 * next restart, listed as undelivered: write it again with the next batch. */
	if (r->type == COORD_REC_COMPLETE && status < 0 && !s->stopping)
		log_complete(s, r->txid);
	coord_metrics_on_record(s, r, status);
	if (r->done) { /* another module's record (identity, operator calls, sweeps) */
		r->done(s, r, status);
		return;
	}
	if (r->type == COORD_REC_COMMIT) {
		struct coord_txn *t = u64map_get(&s->txns, r->txid);
		struct coord_event ev = { .type = EV_LOGGED, .status = status };
		if (status == 0) /* durable; nobody has heard it yet */
			tpc_fault(&s->faults, TPC_FP_COORD_DECISION_AFTER_LOG);
		if (t && status < 0)
			set_txn_error(t, TXN_ERR_LOG_FAILED, 0, status);
		if (t)
			coord_step(s, t, &ev);
		if (s->commit_logged) /* an operator may wait on it (heuristic.c) */
			s->commit_logged(s, r->txid, status);
	}
	rec_free(r);
}

const char *coord_abort_text(struct coord_server *s, const struct coord_txn *t, char *buf,
			     size_t len)
{
	if (t->abort_reason != ABORT_VOTE_NO)
		return coord_abort_reason_str(t->abort_reason);
	struct peer *p = coord_peer(s, t->no_voter);
	snprintf(buf, len, "participant \"%s\" voted NO%s%s", p ? p->name : "?",
		 t->no_reason ? ": " : "", t->no_reason ? t->no_reason : "");
	return buf;
}

/* An aborted transaction is about to go: say why, and keep it for later askers. */
static void note_abort(struct coord_server *s, struct coord_txn *t)
{
	char text[512];
	const char *why = coord_abort_text(s, t, text, sizeof(text));
	struct peer *p = t->abort_reason == ABORT_VOTE_NO ? coord_peer(s, t->no_voter) : NULL;

	tpc_logf(&s->log, t->abort_reason == ABORT_VOTE_NO || t->abort_reason == ABORT_OPERATOR
				  ? TPC_LOG_INFO : TPC_LOG_DEBUG,
		 "txid %llu aborted: %s", (unsigned long long)t->txid, why);
	coord_aborts_add(s->aborts, t->txid, why, p ? p->name : NULL, p ? t->no_reason : NULL);
}

void coord_free_txn(struct coord_server *s, struct coord_txn *t)
{
	struct conn *owner = coord_conn_get(s, t->owner);

	if (owner && owner->open_txns)
		owner->open_txns--;
	if (t->key) {
		strmap_del_if(&s->live_keys, t->key, strlen(t->key), t->txid);
		free(t->key);
	}
	u64map_del(&s->txns, t->txid);
	free(t->no_reason);
	coord_txn_release(t);
	free(t);
}

/* Put the transaction's next deadline in the timer heap if it changed. */
void coord_arm(struct coord_server *s, struct coord_txn *t)
{
	if (deadline_timer_set(&s->deadlines, t->txid, coord_txn_next_deadline(t), &t->armed_ms))
		tpc_logf(&s->log, TPC_LOG_ERROR, "out of memory arming a timer");
}

/* BROKEN (test binaries only, broken.h): COMMIT leaves before the decision is forced. */
static void broken_commit_before_log(struct coord_server *s, struct coord_txn *t)
{
	for (uint8_t i = 0; i < t->nparts; i++) {
		if (t->parts[i].state != PART_YES)
			continue;
		send_decision(s, t, t->parts[i].peer, DECIDE_COMMIT);
		struct peer *p = coord_peer(s, t->parts[i].peer);
		coord_conn_flush(p ? coord_conn_get(s, p->conn) : NULL);
		return;
	}
}

static void execute(struct coord_server *s, struct coord_txn *t, const struct coord_action *a)
{
	switch (a->type) {
	case ACT_SEND_PREPARE: send_prepare(s, t, a->peer); break;
	case ACT_SEND_DECISION: send_decision(s, t, a->peer, a->decision); break;
	case ACT_LOG_COMMIT:
		if (tpc_broken("coord.commit_before_log"))
			broken_commit_before_log(s, t);
		if (tpc_fault(&s->faults, TPC_FP_COORD_DECISION_BEFORE_LOG) || log_commit(s, t)) {
			struct coord_event ev = { .type = EV_LOGGED, .status = -ENOMEM };
			coord_step(s, t, &ev); /* surfaces as UNKNOWN and a retry */
		}
		break;
	case ACT_LOG_COMPLETE:
		if (!tpc_fault(&s->faults, TPC_FP_COORD_END_BEFORE_LOG))
			log_complete(s, t->txid); /* skipped: the record stays, resent after a restart */
		break;
	case ACT_REPLY_JOIN: reply_join(s, t, a); break;
	case ACT_REPLY_OUTCOME: reply_outcome(s, t, a); break;
	case ACT_REPLY_ERROR: reply_error(s, t, a); break;
	case ACT_FORGET: break; /* handled after every action ran */
	}
}

static int is_commit_send(const struct coord_action *a)
{
	return a->type == ACT_SEND_DECISION && a->decision == DECIDE_COMMIT;
}

/*
 * coord.prepare.partial_send and coord.commit.partial_send fire after the first of
 * several Prepares (or COMMIT decisions) of one step is on the wire, before the rest.
 */
static void partial_send_faults(struct coord_server *s, struct coord_txn *t,
				const struct coord_actions *out, size_t i)
{
	const struct coord_action *a = &out->a[i];
	int first = 1, more = 0;

	if (a->type != ACT_SEND_PREPARE && !is_commit_send(a))
		return;
	for (size_t j = 0; j < out->n; j++) {
		int same = out->a[j].type == a->type && (a->type == ACT_SEND_PREPARE ||
							  is_commit_send(&out->a[j]));
		if (same && j < i)
			first = 0;
		if (same && j > i)
			more = 1;
	}
	if (!first || !more)
		return;
	struct peer *p = coord_peer(s, a->peer);
	coord_conn_flush(p ? coord_conn_get(s, p->conn) : NULL);
	tpc_fault(&s->faults, a->type == ACT_SEND_PREPARE ? TPC_FP_COORD_PREPARE_PARTIAL_SEND
							  : TPC_FP_COORD_COMMIT_PARTIAL_SEND);
}

/* xorshift64*: the retry jitter the machine takes as input (seeded at start). */
uint32_t coord_rand(struct coord_server *s)
{
	uint64_t x = s->rng ? s->rng : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x;
	return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}

int coord_step_rc(struct coord_server *s, struct coord_txn *t, const struct coord_event *ev_in)
{
	struct coord_actions out;
	struct coord_event e = *ev_in;
	const struct coord_event *ev = &e;
	uint8_t before = t->state;
	out.n = 0;
	e.rand = coord_rand(s);
	int rc = coord_txn_step(t, &s->tcfg, ev, tpc_now_ms(), &out);

	for (size_t i = 0; i < out.n; i++) {
		execute(s, t, &out.a[i]);
		if (s->faults.armed)
			partial_send_faults(s, t, &out, i);
	}
	coord_metrics_on_step(s, t, before);
	if (ev->type == EV_PEER_DOWN && t->state == TXN_COMMITTING) {
		struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);
		if (p && p->state == PART_YES) /* the COMMIT it was sent may be lost */
			set_txn_error(t, TXN_ERR_PEER_LOST, ev->peer, 0);
	}
	if (t->state == TXN_DONE) {
		if (t->abort_reason)
			note_abort(s, t);
		coord_free_txn(s, t);
	} else {
		coord_arm(s, t);
	}
	return rc;
}

void coord_step(struct coord_server *s, struct coord_txn *t, const struct coord_event *ev)
{
	(void)coord_step_rc(s, t, ev);
}

void coord_step_peer_all(struct coord_server *s, uint32_t peer, enum coord_ev_type type)
{
	struct u64map_iter it;
	struct coord_event ev = { .type = type, .peer = peer };

	for (struct coord_txn *t = u64map_iter_first(&it, &s->txns); t; t = u64map_iter_next(&it))
		if (coord_txn_find_part(t, peer))
			coord_step(s, t, &ev);
	u64map_iter_end(&it);
}
