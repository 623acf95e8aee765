/*
 * txn.c - the coordinator's per-transaction state machine (see txn.h).
 *
 *            Join*                      all votes in, some YES        EV_LOGGED ok
 *   Begin -> ACTIVE --Commit--> PREPARING ----------------------> LOGGING --------> COMMITTING
 *              |                  |   ^ votes                     |  ^ EV_LOGGED      |
 *              |                  |   |                           |  | failed: retry  | acks
 *              | timeout, Abort,  | NO, timeout, Abort,           +--+ (client hears  v
 *              | client gone, NO, | participant lost,                   UNKNOWN)   DONE (record
 *              | fenced,          | participant restarted                          completed)
 *              | restarted        v
 *              +-----------> ABORTING --(ABORT sent to the prepared and joined)--> DONE
 *
 *   Operator (EV_OPERATOR, heuristic, docs/admin-api.md): abort = the abort arrow from
 *   ACTIVE/PREPARING; commit from PREPARING once every vote is in (or forced, and from
 *   ACTIVE only forced) = the "all votes in" arrow, participants that have not voted
 *   being sent ABORT and left out (state NO); a forced abort of COMMITTING goes to DONE
 *   in two steps: EV_OPERATOR marks it (dropping = DROP_WRITING: no resends, acks are
 *   counted but complete nothing) while the server deletes the COMMIT record; then
 *   EV_DROPPED says how that went:
 *
 *     COMMITTING --EV_OPERATOR(abort, force)--> COMMITTING, DROP_WRITING
 *       EV_DROPPED ok, a YES voter unacked  -> DONE (ABORT to the unacked; nothing logged)
 *       EV_DROPPED ok, every YES voter acked meanwhile (it committed everywhere)
 *                                           -> DROP_RESTORING: ACT_LOG_COMMIT writes the
 *                                              record and key again; EV_LOGGED ok -> DONE
 *                                              through ACT_LOG_COMPLETE (the tombstone)
 *       EV_DROPPED failed                   -> COMMITTING as before (resends resume)
 *
 *   LOGGING -> ABORTING: the store refused the COMMIT record itself (EV_LOGGED -EINVAL,
 *   checked before anything is written, so nothing of it is durable): it never can be.
 *
 *   Incarnations (D8): each participant slot keeps the incarnation that joined. A Join or
 *   Vote naming another incarnation is refused (COORD_ERR_INCARNATION) and, from ACTIVE
 *   or PREPARING, takes the abort arrow ("restarted"); so does EV_PEER_RESTARTED for a
 *   participant that joined with an older incarnation and has not voted. A slot whose
 *   incarnation is 0 (a decision recovered from the log) is not checked.
 *
 *   Who may decide: EV_COMMIT and EV_ABORT are taken only from the owner (the connection
 *   that began the transaction); from any other connection they are refused with
 *   COORD_ERR_DENIED and change nothing. A recovered transaction (owner 0) is already
 *   COMMITTING: anyone's Commit or Abort only hears what the log would say (it decides
 *   nothing); the operator's EV_OPERATOR is the only way to change it.
 *
 *   Commit with no participants, or with only READ_ONLY voters, and no client key:
 *   PREPARING/ACTIVE -> DONE directly (nothing to make durable). With a key, the
 *   transaction goes through LOGGING so the key's outcome is durable.
 *
 * Rules kept here:
 *  - D1: Decision(COMMIT) and the client's COMMITTED come only from the EV_LOGGED(ok)
 *    transition; nothing before it can emit them.
 *  - D4: ACT_LOG_COMPLETE (the coordinator forgetting) only once every YES voter acked.
 *  - Presumed abort: aborting logs nothing and forgets at once.
 *  - A vote or ack counts only from a participant of this transaction, and a Join or vote
 *    only from the incarnation that joined: a transaction whose joined incarnation is gone
 *    can never commit (D8).
 *  - Retry delays (decision resends, COMMIT log retries) grow by a jitter drawn from the
 *    event's rand (jitter_pct of the delay), so transactions do not retry in lock-step.
 * coord_txn_set_state() asserts that every transition is one of the arrows above.
 */
#include "txn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[TXN_NSTATES] = {
	[TXN_ACTIVE] = "ACTIVE",	 [TXN_PREPARING] = "PREPARING",
	[TXN_LOGGING] = "LOGGING",	 [TXN_COMMITTING] = "COMMITTING",
	[TXN_ABORTING] = "ABORTING", [TXN_DONE] = "DONE",
};

/* legal[from] is a bit set of the states it may move to. */
#define BIT(s) (1u << (s))
static const unsigned legal[TXN_NSTATES] = {
	[TXN_ACTIVE] = BIT(TXN_PREPARING) | BIT(TXN_LOGGING) | BIT(TXN_ABORTING) | BIT(TXN_DONE),
	[TXN_PREPARING] = BIT(TXN_LOGGING) | BIT(TXN_ABORTING) | BIT(TXN_DONE),
	[TXN_LOGGING] = BIT(TXN_COMMITTING) | BIT(TXN_ABORTING), /* refused record (-EINVAL) */
	[TXN_COMMITTING] = BIT(TXN_DONE), /* all acked; or an operator's forced abort */
	[TXN_ABORTING] = BIT(TXN_DONE),
	[TXN_DONE] = 0,
};

const char *coord_txn_state_str(enum coord_txn_state s)
{
	return s < TXN_NSTATES ? state_names[s] : "?";
}

const char *coord_part_state_str(enum coord_part_state s)
{
	switch (s) {
	case PART_JOINED: return "joined";
	case PART_YES: return "yes";
	case PART_NO: return "no";
	case PART_READ_ONLY: return "read-only";
	case PART_ACKED: return "acked";
	}
	return "?";
}

const char *coord_abort_reason_str(enum coord_abort_reason r)
{
	switch (r) {
	case ABORT_NONE: return "";
	case ABORT_VOTE_NO: return "a participant voted NO";
	case ABORT_CLIENT: return "aborted by the client";
	case ABORT_TXN_TIMEOUT: return "transaction timeout";
	case ABORT_PREPARE_TIMEOUT: return "prepare timeout: a participant did not vote in time";
	case ABORT_PART_LOST: return "a participant disconnected before voting";
	case ABORT_CLIENT_GONE: return "the client disconnected before committing";
	case ABORT_FENCED: return "fenced by a newer Begin with the same transaction key";
	case ABORT_OPERATOR: return "aborted by operator";
	case ABORT_PART_RESTARTED: return "a participant restarted and lost its staged writes";
	case ABORT_UNLOGGABLE:
		return "the decision record cannot be written (a name or key the log refuses)";
	}
	return "aborted";
}

/* An illegal transition is a bug that could break atomicity: stop, even in release. */
static void set_state(struct coord_txn *t, enum coord_txn_state to)
{
	if (t->state >= TXN_NSTATES || !(legal[t->state] & BIT(to)))
		abort();
	t->state = (uint8_t)to;
}

/* A step that emits more than COORD_MAX_ACTIONS is a bug; writing past the array would
 * be worse than stopping, so the bound holds in release builds too (not an assert). */
static struct coord_action *emit(struct coord_actions *out, enum coord_act_type type)
{
	if (out->n >= COORD_MAX_ACTIONS)
		abort();
	struct coord_action *a = &out->a[out->n++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	return a;
}

static void emit_send_prepare(struct coord_actions *out, uint32_t peer)
{
	emit(out, ACT_SEND_PREPARE)->peer = peer;
}

static void emit_send_decision(struct coord_actions *out, uint32_t peer, int decision)
{
	struct coord_action *a = emit(out, ACT_SEND_DECISION);
	a->peer = peer;
	a->decision = decision;
}

static void emit_outcome(struct coord_actions *out, uint64_t conn, uint64_t req, int outcome,
			 const char *reason)
{
	struct coord_action *a = emit(out, ACT_REPLY_OUTCOME);
	a->conn = conn;
	a->req = req;
	a->outcome = outcome;
	a->reason = reason;
}

static int refuse(struct coord_actions *out, const struct coord_event *ev, int err,
		  const char *reason)
{
	if (ev->conn) {
		struct coord_action *a = emit(out, ACT_REPLY_ERROR);
		a->conn = ev->conn;
		a->req = ev->req;
		a->err = err;
		a->reason = reason;
	}
	return err;
}

/* Tell the waiting Commit/Abort requester, once. */
static void reply_waiter(struct coord_txn *t, struct coord_actions *out, int outcome,
			 const char *reason)
{
	if (!t->waiter)
		return;
	emit_outcome(out, t->waiter, t->waiter_req, outcome, reason);
	t->waiter = 0;
	t->waiter_req = 0;
}

static void forget(struct coord_txn *t, struct coord_actions *out)
{
	set_state(t, TXN_DONE);
	t->retry_at_ms = 0;
	emit(out, ACT_FORGET);
}

void coord_txn_init(struct coord_txn *t, uint64_t txid, uint64_t owner, uint64_t now_ms,
		    uint32_t timeout_ms)
{
	memset(t, 0, sizeof(*t));
	t->txid = txid;
	t->owner = owner;
	t->begun_ms = now_ms;
	t->deadline_ms = now_ms + timeout_ms;
	t->state = TXN_ACTIVE;
}

void coord_txn_init_recovered(struct coord_txn *t, uint64_t txid, uint64_t now_ms)
{
	memset(t, 0, sizeof(*t));
	t->txid = txid;
	t->begun_ms = now_ms;
	t->decided_ms = now_ms;
	t->state = TXN_COMMITTING;
	t->retry_at_ms = now_ms; /* deliver at the first tick; on_tick starts the backoff */
}

int coord_txn_add_part(struct coord_txn *t, uint32_t peer, uint8_t state, uint32_t max_parts)
{
	if (max_parts == 0 || max_parts > COORD_TXN_MAX_PARTS)
		max_parts = COORD_TXN_MAX_PARTS;
	if (t->nparts >= max_parts)
		return -ENOSPC;
	if (t->nparts == t->cap) {
		uint8_t ncap = t->cap ? (uint8_t)(t->cap * 2) : 2;
		if (ncap > COORD_TXN_MAX_PARTS)
			ncap = COORD_TXN_MAX_PARTS;
		struct coord_txn_part *np = realloc(t->parts, ncap * sizeof(*np));
		if (!np)
			return -ENOMEM;
		t->parts = np;
		t->cap = ncap;
	}
	t->parts[t->nparts].peer = peer;
	t->parts[t->nparts].state = state;
	t->parts[t->nparts].incarnation = 0;
	t->nparts++;
	return 0;
}

void coord_txn_release(struct coord_txn *t)
{
	free(t->parts);
	t->parts = NULL;
	t->nparts = t->cap = 0;
}

struct coord_txn_part *coord_txn_find_part(struct coord_txn *t, uint32_t peer)
{
	for (uint8_t i = 0; i < t->nparts; i++)
		if (t->parts[i].peer == peer)
			return &t->parts[i];
	return NULL;
}

static size_t count_parts(const struct coord_txn *t, enum coord_part_state s)
{
	size_t n = 0;
	for (uint8_t i = 0; i < t->nparts; i++)
		n += t->parts[i].state == s;
	return n;
}

/* @p delay_ms plus up to cfg->jitter_pct percent of it, drawn from the event's rand. */
static uint64_t jittered(const struct coord_txn_config *cfg, uint32_t delay_ms, uint32_t rand)
{
	uint64_t span = (uint64_t)delay_ms * cfg->jitter_pct / 100;

	return delay_ms + (span ? rand % (span + 1) : 0);
}

uint64_t coord_txn_next_deadline(const struct coord_txn *t)
{
	switch (t->state) {
	case TXN_ACTIVE: return t->deadline_ms;
	case TXN_PREPARING: return t->prepare_deadline_ms;
	case TXN_LOGGING:
	case TXN_COMMITTING: return t->retry_at_ms;
	default: return 0;
	}
}

/*
 * Abort: tell every participant that may hold state for the transaction (joined and
 * not yet voted, or prepared), tell the requester, forget. Nothing is logged.
 */
static void do_abort(struct coord_txn *t, struct coord_actions *out,
		     enum coord_abort_reason why, uint64_t now_ms)
{
	set_state(t, TXN_ABORTING);
	t->abort_reason = (uint8_t)why;
	t->decided_ms = now_ms;
	for (uint8_t i = 0; i < t->nparts; i++) {
		uint8_t s = t->parts[i].state;
		if (s == PART_JOINED || s == PART_YES)
			emit_send_decision(out, t->parts[i].peer, DECIDE_ABORT);
	}
	reply_waiter(t, out, OUTCOME_ABORTED, coord_abort_reason_str(why));
	forget(t, out);
}

/* Queue the COMMIT record; the decision takes effect only when it is durable (D1). */
static void start_logging(struct coord_txn *t, struct coord_actions *out, uint64_t now_ms)
{
	set_state(t, TXN_LOGGING);
	t->decided_ms = now_ms;
	t->retry_at_ms = 0;
	emit(out, ACT_LOG_COMMIT);
}

/* Every participant voted: commit if any voted YES or a key must be recorded. */
static void all_voted(struct coord_txn *t, struct coord_actions *out, uint64_t now_ms)
{
	if (count_parts(t, PART_YES) == 0 && !t->key) {
		t->decided_ms = now_ms;
		reply_waiter(t, out, OUTCOME_COMMITTED, "read-only");
		forget(t, out);
		return;
	}
	start_logging(t, out, now_ms);
}

static void send_commit_to_unacked(struct coord_txn *t, struct coord_actions *out)
{
	for (uint8_t i = 0; i < t->nparts; i++)
		if (t->parts[i].state == PART_YES)
			emit_send_decision(out, t->parts[i].peer, DECIDE_COMMIT);
}

static void maybe_complete(struct coord_txn *t, struct coord_actions *out)
{
	if (count_parts(t, PART_YES) != 0)
		return;
	emit(out, ACT_LOG_COMPLETE);
	forget(t, out);
}

/* The joined incarnation is not the one speaking: it lost its staged writes (D8). */
static int other_incarnation(const struct coord_txn_part *p, uint64_t inc)
{
	return p->incarnation != 0 && inc != p->incarnation;
}

/* A Join or vote from another incarnation: refused, and the transaction can never
 * commit, so it aborts while it still can. */
static int refuse_incarnation(struct coord_txn *t, const struct coord_event *ev,
			      uint64_t now_ms, struct coord_actions *out)
{
	int rc = refuse(out, ev, COORD_ERR_INCARNATION,
			"joined by another incarnation of this participant; the transaction "
			"aborts");

	if (t->state == TXN_ACTIVE || t->state == TXN_PREPARING)
		do_abort(t, out, ABORT_PART_RESTARTED, now_ms);
	return rc;
}

static int on_join(struct coord_txn *t, const struct coord_txn_config *cfg,
		   const struct coord_event *ev, uint64_t now_ms, struct coord_actions *out)
{
	struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);

	if (p && other_incarnation(p, ev->inc))
		return refuse_incarnation(t, ev, now_ms, out);
	if (t->state != TXN_ACTIVE)
		return refuse(out, ev, COORD_ERR_NOT_ACTIVE,
			      "the transaction is no longer accepting participants");
	if (!p) {
		int rc = coord_txn_add_part(t, ev->peer, PART_JOINED, cfg->max_parts);
		if (rc == -ENOSPC)
			return refuse(out, ev, COORD_ERR_LIMIT, "too many participants");
		if (rc)
			return refuse(out, ev, COORD_ERR_UNAVAILABLE, "out of memory");
		t->parts[t->nparts - 1].incarnation = ev->inc;
	}
	struct coord_action *a = emit(out, ACT_REPLY_JOIN);
	a->conn = ev->conn;
	a->req = ev->req;
	a->peer = ev->peer;
	return 0;
}

#define DROP_PENDING "an operator is overriding the COMMIT; ask again"

/* Commit and Abort come from the owner; of a recovered transaction (no owner, already
 * COMMITTING) they only ask. Anything else is refused and changes nothing. */
static int refuse_not_owner(const struct coord_txn *t, const struct coord_event *ev,
			    struct coord_actions *out)
{
	if (t->owner ? ev->conn == t->owner : t->state == TXN_COMMITTING)
		return 0;
	return refuse(out, ev, COORD_ERR_DENIED,
		      t->owner ? "the transaction was begun on another connection; only that "
				 "connection may commit or abort it"
			       : "the transaction was recovered from the log; only the "
				 "coordinator or an operator decides it");
}

static int on_commit(struct coord_txn *t, const struct coord_txn_config *cfg,
		     const struct coord_event *ev, uint64_t now_ms, struct coord_actions *out)
{
	switch (t->state) {
	case TXN_ACTIVE:
		t->waiter = ev->conn;
		t->waiter_req = ev->req;
		if (t->nparts == 0) {
			all_voted(t, out, now_ms);
			return 0;
		}
		set_state(t, TXN_PREPARING);
		t->prepare_deadline_ms = now_ms + cfg->prepare_timeout_ms;
		for (uint8_t i = 0; i < t->nparts; i++)
			emit_send_prepare(out, t->parts[i].peer);
		return 0;
	case TXN_PREPARING:
	case TXN_LOGGING:
		if (t->waiter)
			return refuse(out, ev, COORD_ERR_NOT_ACTIVE,
				      "commit already in progress; ask its status");
		t->waiter = ev->conn;
		t->waiter_req = ev->req;
		return 0;
	case TXN_COMMITTING:
		/* While a DROP is written, or the COMMIT record written again after one, no
		 * COMMIT record is known durable: nobody may hear COMMITTED (D1). */
		if (t->dropping != DROP_NONE)
			emit_outcome(out, ev->conn, ev->req, OUTCOME_UNKNOWN, DROP_PENDING);
		else
			emit_outcome(out, ev->conn, ev->req, OUTCOME_COMMITTED, "");
		return 0;
	default:
		return refuse(out, ev, COORD_ERR_NOT_FOUND, "no such transaction");
	}
}

static int on_abort(struct coord_txn *t, const struct coord_event *ev, uint64_t now_ms,
		    struct coord_actions *out)
{
	switch (t->state) {
	case TXN_ACTIVE:
	case TXN_PREPARING:
		emit_outcome(out, ev->conn, ev->req, OUTCOME_ABORTED,
			     coord_abort_reason_str(ABORT_CLIENT));
		do_abort(t, out, ABORT_CLIENT, now_ms);
		return 0;
	case TXN_LOGGING:
		return refuse(out, ev, COORD_ERR_NOT_ACTIVE,
			      "the commit decision is being made durable; ask its status");
	case TXN_COMMITTING:
		if (t->dropping != DROP_NONE) /* as in on_commit */
			emit_outcome(out, ev->conn, ev->req, OUTCOME_UNKNOWN, DROP_PENDING);
		else
			emit_outcome(out, ev->conn, ev->req, OUTCOME_COMMITTED,
				     "already committed; cannot abort");
		return 0;
	default:
		return refuse(out, ev, COORD_ERR_NOT_FOUND, "no such transaction");
	}
}

static int on_vote_preparing(struct coord_txn *t, struct coord_txn_part *p,
			     const struct coord_event *ev, uint64_t now_ms,
			     struct coord_actions *out)
{
	static const uint8_t as_part[] = { [VOTE_NO] = PART_NO, [VOTE_YES] = PART_YES,
					   [VOTE_READ_ONLY] = PART_READ_ONLY };

	if (p->state != PART_JOINED)
		return p->state == as_part[ev->vote] ? 0 : COORD_ERR_PROTOCOL;
	p->state = as_part[ev->vote];
	if (ev->vote == VOTE_NO) {
		t->no_voter = p->peer;
		do_abort(t, out, ABORT_VOTE_NO, now_ms);
		return 0;
	}
	if (count_parts(t, PART_JOINED) == 0)
		all_voted(t, out, now_ms);
	return 0;
}

static int on_vote(struct coord_txn *t, const struct coord_event *ev, uint64_t now_ms,
		   struct coord_actions *out)
{
	struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);

	if (!p)
		return COORD_ERR_NOT_PARTICIPANT;
	if (ev->vote < VOTE_NO || ev->vote > VOTE_READ_ONLY)
		return COORD_ERR_PROTOCOL;
	if (other_incarnation(p, ev->inc))
		return refuse_incarnation(t, ev, now_ms, out);
	switch (t->state) {
	case TXN_ACTIVE:
		if (ev->vote != VOTE_NO)
			return COORD_ERR_PROTOCOL; /* YES before Prepare */
		p->state = PART_NO;
		t->no_voter = p->peer;
		do_abort(t, out, ABORT_VOTE_NO, now_ms);
		return 0;
	case TXN_PREPARING:
		return on_vote_preparing(t, p, ev, now_ms, out);
	case TXN_LOGGING:
	case TXN_COMMITTING:
		/* Every vote is in: a repeat changes nothing, a different vote is refused. */
		if (ev->vote == VOTE_YES ? p->state != PART_YES && p->state != PART_ACKED
					 : p->state != PART_READ_ONLY)
			return COORD_ERR_PROTOCOL;
		/* A prepared participant asking again: give it the decision again. */
		if (t->state == TXN_COMMITTING && ev->vote == VOTE_YES && !t->dropping)
			emit_send_decision(out, p->peer, DECIDE_COMMIT);
		return 0;
	default:
		return 0; /* aborted: a late vote changes nothing */
	}
}

/* The COMMIT record written again after a DROP raced the last ack (DROP_RESTORING). */
static int on_restored(struct coord_txn *t, const struct coord_txn_config *cfg,
		       const struct coord_event *ev, uint64_t now_ms, struct coord_actions *out)
{
	if (ev->status < 0) {
		if (t->log_failures < UINT8_MAX)
			t->log_failures++;
		t->retry_at_ms = now_ms + jittered(cfg, cfg->log_retry_ms, ev->rand);
		return 0;
	}
	t->dropping = DROP_NONE;
	maybe_complete(t, out); /* every YES voter acked: the tombstone, then forget */
	return 0;
}

static int on_logged(struct coord_txn *t, const struct coord_txn_config *cfg,
		     const struct coord_event *ev, uint64_t now_ms, struct coord_actions *out)
{
	if (t->state == TXN_COMMITTING && t->dropping == DROP_RESTORING)
		return on_restored(t, cfg, ev, now_ms, out);
	if (t->state != TXN_LOGGING)
		return 0;
	if (ev->status == -EINVAL) {
		/* The store refused this record before writing anything (it failed alone: the
		 * batch writer retries a failed batch record by record): it can never become
		 * durable, and nothing of it is. Abort instead of retrying for ever. */
		do_abort(t, out, ABORT_UNLOGGABLE, now_ms);
		return 0;
	}
	if (ev->status < 0) {
		/* Not known to be durable, not known not to be: nobody may hear an outcome. */
		if (t->log_failures < UINT8_MAX)
			t->log_failures++;
		reply_waiter(t, out, OUTCOME_UNKNOWN,
			     "the decision log write failed; the coordinator retries it");
		t->retry_at_ms = now_ms + jittered(cfg, cfg->log_retry_ms, ev->rand);
		return 0;
	}
	set_state(t, TXN_COMMITTING);
	reply_waiter(t, out, OUTCOME_COMMITTED, "");
	send_commit_to_unacked(t, out);
	t->attempts = 1;
	t->retry_delay_ms = cfg->retry_initial_ms;
	t->retry_at_ms = now_ms + jittered(cfg, t->retry_delay_ms, ev->rand);
	maybe_complete(t, out);
	return 0;
}

static int on_ack(struct coord_txn *t, const struct coord_event *ev, struct coord_actions *out)
{
	struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);

	if (!p)
		return COORD_ERR_NOT_PARTICIPANT;
	if (t->state != TXN_COMMITTING)
		return t->state == TXN_DONE ? 0 : COORD_ERR_PROTOCOL;
	if (p->state == PART_YES)
		p->state = PART_ACKED;
	if (t->dropping == DROP_NONE) /* else EV_DROPPED decides (see the top) */
		maybe_complete(t, out);
	return 0;
}

static void on_tick(struct coord_txn *t, const struct coord_txn_config *cfg, uint64_t now_ms,
		    uint32_t rand, struct coord_actions *out)
{
	switch (t->state) {
	case TXN_ACTIVE:
		if (now_ms >= t->deadline_ms)
			do_abort(t, out, ABORT_TXN_TIMEOUT, now_ms);
		break;
	case TXN_PREPARING:
		if (now_ms >= t->prepare_deadline_ms)
			do_abort(t, out, ABORT_PREPARE_TIMEOUT, now_ms);
		break;
	case TXN_LOGGING:
		if (t->retry_at_ms && now_ms >= t->retry_at_ms) {
			t->retry_at_ms = 0;
			emit(out, ACT_LOG_COMMIT);
		}
		break;
	case TXN_COMMITTING:
		if (t->dropping == DROP_RESTORING && t->retry_at_ms && now_ms >= t->retry_at_ms) {
			t->retry_at_ms = 0;
			emit(out, ACT_LOG_COMMIT);
		} else if (t->dropping == DROP_NONE && t->retry_at_ms && now_ms >= t->retry_at_ms) {
			/* 0: a recovered transaction's first delivery starts the backoff */
			uint64_t next = t->retry_delay_ms ? 2 * (uint64_t)t->retry_delay_ms
							  : cfg->retry_initial_ms;
			send_commit_to_unacked(t, out);
			t->attempts++;
			t->retry_delay_ms = next > cfg->retry_max_ms ? cfg->retry_max_ms
								     : (uint32_t)next;
			t->retry_at_ms = now_ms + jittered(cfg, t->retry_delay_ms, rand);
			maybe_complete(t, out); /* a recovered record naming nobody */
		}
		break;
	default:
		break;
	}
}

static void on_peer_up(struct coord_txn *t, const struct coord_event *ev,
		       struct coord_actions *out)
{
	struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);

	if (!p)
		return;
	if (t->state == TXN_PREPARING && p->state == PART_JOINED)
		emit_send_prepare(out, p->peer);
	else if (t->state == TXN_COMMITTING && p->state == PART_YES && !t->dropping)
		emit_send_decision(out, p->peer, DECIDE_COMMIT);
}

static void on_peer_down(struct coord_txn *t, const struct coord_event *ev, uint64_t now_ms,
			 struct coord_actions *out)
{
	struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);

	if (p && t->state == TXN_PREPARING && p->state == PART_JOINED)
		do_abort(t, out, ABORT_PART_LOST, now_ms);
}

/* A newer incarnation said Hello: what the older one joined and did not vote on can
 * never commit (its staged writes are gone with it). The server skips the txids the new
 * incarnation holds PREPARED. */
static void on_peer_restarted(struct coord_txn *t, const struct coord_event *ev,
			      uint64_t now_ms, struct coord_actions *out)
{
	struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);

	if (!p || p->state != PART_JOINED || p->incarnation >= ev->inc)
		return;
	if (t->state == TXN_ACTIVE || t->state == TXN_PREPARING)
		do_abort(t, out, ABORT_PART_RESTARTED, now_ms);
}

static void on_client_gone(struct coord_txn *t, const struct coord_event *ev, uint64_t now_ms,
			   struct coord_actions *out)
{
	if (t->waiter == ev->conn) {
		t->waiter = 0;
		t->waiter_req = 0;
	}
	if (t->state == TXN_ACTIVE && t->owner == ev->conn)
		do_abort(t, out, ABORT_CLIENT_GONE, now_ms);
}

static int on_fence_or_operator(struct coord_txn *t, enum coord_abort_reason why,
				uint64_t now_ms, struct coord_actions *out)
{
	if (t->state != TXN_ACTIVE && t->state != TXN_PREPARING)
		return COORD_ERR_NOT_ACTIVE;
	if (why == ABORT_FENCED && t->state != TXN_ACTIVE)
		return COORD_ERR_NOT_ACTIVE; /* deciding: the new Begin must wait */
	do_abort(t, out, why, now_ms);
	return 0;
}

/* ---- heuristic decisions (EV_OPERATOR) ---- */

/* A forced commit leaves out participants that have not voted: they get ABORT. */
static void exclude_unvoted(struct coord_txn *t, struct coord_actions *out)
{
	for (uint8_t i = 0; i < t->nparts; i++) {
		if (t->parts[i].state != PART_JOINED)
			continue;
		t->parts[i].state = PART_NO;
		emit_send_decision(out, t->parts[i].peer, DECIDE_ABORT);
	}
}

static int op_accept(struct coord_op_check *out, enum coord_op_plan plan,
		     const char *overrode, const char *already)
{
	*out = (struct coord_op_check){ .plan = plan, .overrode = overrode, .already = already };
	return 0;
}

static int op_refuse(struct coord_op_check *out, const char *why)
{
	*out = (struct coord_op_check){ .plan = COORD_OP_NOOP, .overrode = "none", .why = why };
	return COORD_ERR_NOT_ACTIVE;
}

int coord_txn_operator_check(const struct coord_txn *t, int decision, int force,
			     struct coord_op_check *out)
{
	switch (t->state) {
	case TXN_ACTIVE:
	case TXN_PREPARING:
		if (decision == DECIDE_ABORT || force)
			return op_accept(out, COORD_OP_STEP, "none", NULL);
		if (t->state == TXN_ACTIVE)
			return op_refuse(out, "the participants have not prepared; \"force\": true "
					 "commits only those that voted (none yet) and aborts the rest");
		if (count_parts(t, PART_JOINED))
			return op_refuse(out, "not every participant has voted; \"force\": true "
					 "commits those that voted YES and sends ABORT to the rest");
		return op_accept(out, COORD_OP_STEP, "none", NULL);
	case TXN_LOGGING:
		return op_refuse(out, "the COMMIT decision is being made durable; retry");
	case TXN_COMMITTING:
		if (t->dropping)
			return op_refuse(out, "an operator's abort of this COMMIT is being written; "
					 "ask again");
		if (decision == DECIDE_COMMIT)
			return op_accept(out, COORD_OP_NOOP, "none", "COMMITTED");
		if (force)
			return op_accept(out, COORD_OP_DROP, "COMMIT", NULL);
		return op_refuse(out, "the COMMIT is durable and participants may have applied "
				 "it; \"force\": true sends ABORT to those that have not "
				 "acknowledged");
	default:
		return op_refuse(out, "the transaction is finishing; ask again");
	}
}

static int on_operator(struct coord_txn *t, const struct coord_event *ev, uint64_t now_ms,
		       struct coord_actions *out)
{
	struct coord_op_check c;
	int rc = coord_txn_operator_check(t, ev->decision, ev->force, &c);

	if (rc)
		return rc;
	switch (c.plan) {
	case COORD_OP_NOOP:
		return 0;
	case COORD_OP_DROP:
		t->dropping = DROP_WRITING; /* the server deletes the COMMIT record now */
		t->retry_at_ms = 0;
		return 0;
	case COORD_OP_STEP:
		if (ev->decision != DECIDE_COMMIT) {
			do_abort(t, out, ABORT_OPERATOR, now_ms);
			return 0;
		}
		exclude_unvoted(t, out);
		all_voted(t, out, now_ms); /* the normal COMMIT logging path (D1) */
		return 0;
	}
	return COORD_ERR_NOT_ACTIVE;
}

/* The DROP record of a forced abort is done (see the top of the file). */
static int on_dropped(struct coord_txn *t, const struct coord_event *ev, uint64_t now_ms,
		      struct coord_actions *out)
{
	if (t->state != TXN_COMMITTING || t->dropping != DROP_WRITING)
		return COORD_ERR_NOT_ACTIVE;
	if (ev->status < 0) { /* the COMMIT stands: carry on delivering it */
		t->dropping = DROP_NONE;
		t->retry_at_ms = now_ms;
		maybe_complete(t, out);
		return 0;
	}
	if (count_parts(t, PART_YES) == 0) { /* it committed everywhere: write it again */
		t->dropping = DROP_RESTORING;
		t->retry_at_ms = 0;
		emit(out, ACT_LOG_COMMIT);
		return 0;
	}
	for (uint8_t i = 0; i < t->nparts; i++)
		if (t->parts[i].state == PART_YES)
			emit_send_decision(out, t->parts[i].peer, DECIDE_ABORT);
	t->abort_reason = ABORT_OPERATOR;
	forget(t, out);
	return 0;
}

int coord_txn_step(struct coord_txn *t, const struct coord_txn_config *cfg,
		   const struct coord_event *ev, uint64_t now_ms, struct coord_actions *out)
{
	switch (ev->type) {
	case EV_JOIN: return on_join(t, cfg, ev, now_ms, out);
	case EV_COMMIT:
		if (refuse_not_owner(t, ev, out))
			return COORD_ERR_DENIED;
		return on_commit(t, cfg, ev, now_ms, out);
	case EV_ABORT:
		if (refuse_not_owner(t, ev, out))
			return COORD_ERR_DENIED;
		return on_abort(t, ev, now_ms, out);
	case EV_VOTE: return on_vote(t, ev, now_ms, out);
	case EV_LOGGED: return on_logged(t, cfg, ev, now_ms, out);
	case EV_ACK: return on_ack(t, ev, out);
	case EV_TICK: on_tick(t, cfg, now_ms, ev->rand, out); return 0;
	case EV_PEER_UP: on_peer_up(t, ev, out); return 0;
	case EV_PEER_DOWN: on_peer_down(t, ev, now_ms, out); return 0;
	case EV_CLIENT_GONE: on_client_gone(t, ev, now_ms, out); return 0;
	case EV_PEER_RESTARTED: on_peer_restarted(t, ev, now_ms, out); return 0;
	case EV_FENCE: return on_fence_or_operator(t, ABORT_FENCED, now_ms, out);
	case EV_OPERATOR: return on_operator(t, ev, now_ms, out);
	case EV_DROPPED: return on_dropped(t, ev, now_ms, out);
	}
	return COORD_ERR_PROTOCOL;
}
