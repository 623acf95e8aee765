/*
 * part_txn.c - the participant stub's per-transaction state machine (see part_txn.h).
 *
 *   stage    JoinReply         Prepare, sink yes     logged ok         COMMIT
 *   -----> JOINING ---> ACTIVE ------------------> LOGGING -------> PREPARED -------> APPLYING
 *            |            |  \ Prepare, sink no      | logged failed   |  ^ StatusQuery  | applied ok
 *            | join error |   \-> vote NO, DONE      v                 |  | with backoff | (ack)
 *            | conn down  | ABORT               vote NO, DONE   ABORT  |  | (PENDING:    v
 *            v            v                                            v  |  vote again;  DONE
 *          DONE         DONE (discard)                               DONE    FORGOTTEN:
 *            |            |                                                  log, keep asking)
 *            +-----+------+ expiry (no Prepare within txn_timeout): discard, vote NO
 *                  v
 *               EXPIRED --- ABORT, or StatusQuery answered, or the vote refused, or
 *                  |        tombstone_ms passed ---> DONE
 *                  +-- stage: TPC_EEXPIRED; Prepare: NO; reconnect: NO again, ask
 *
 * Rules kept here:
 *  - D2: the YES vote leaves only on PEV_LOGGED ok; a PREPARED transaction never
 *    decides alone: it only moves on a COMMIT/ABORT decision or status answer.
 *  - D3: the Ack leaves only on PEV_APPLIED ok.
 *  - D7: a Prepare or Decision with an epoch below the highest seen is rejected; so is
 *    one more than max_epoch_jump above it (once one was seen), and the highest seen
 *    is then left as it was: a forged epoch is never remembered.
 *  - A transaction joined with a token takes only writes carrying the same token (and
 *    one joined without takes only writes without): TPC_EDENIED, compared in constant
 *    time.
 *  - D8: staged writes that expired are gone, so this incarnation can never vote YES
 *    on that transaction: it says NO at once and keeps a tombstone so that a later
 *    write for the txid fails instead of joining again with only part of the writes.
 *  - A PREPARED transaction told FORGOTTEN stays in doubt: it never guesses.
 *  - A COMMIT for a transaction the participant does not know is acked by the caller
 *    without applying (it can only mean: already applied), which is outside this
 *    machine; an unknown transaction's Prepare gets NO, also outside.
 */
#include "part_txn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tpc/common.h"
#include "util.h"

#define BIT(s) (1u << (s))
static const unsigned legal[PS_NSTATES] = {
	[PS_JOINING] = BIT(PS_ACTIVE) | BIT(PS_EXPIRED) | BIT(PS_DONE),
	[PS_ACTIVE] = BIT(PS_LOGGING) | BIT(PS_EXPIRED) | BIT(PS_DONE),
	[PS_LOGGING] = BIT(PS_PREPARED) | BIT(PS_DONE),
	[PS_PREPARED] = BIT(PS_APPLYING) | BIT(PS_DONE),
	[PS_APPLYING] = BIT(PS_DONE),
	[PS_EXPIRED] = BIT(PS_DONE),
	[PS_DONE] = 0,
};

const char *part_state_str(enum part_state s)
{
	static const char *const names[PS_NSTATES] = {
		"JOINING", "ACTIVE", "LOGGING", "PREPARED", "APPLYING", "EXPIRED", "DONE",
	};
	return s < PS_NSTATES ? names[s] : "?";
}

/* An illegal transition is a bug that could break atomicity: stop, even in release. */
static void set_state(struct part_txn *t, enum part_state to)
{
	if (t->state >= PS_NSTATES || !(legal[t->state] & BIT(to)))
		abort();
	t->state = (uint8_t)to;
}

static struct part_action *emit(struct part_actions *out, enum part_act_type type)
{
	if (out->n >= PART_MAX_ACTIONS)
		abort();
	struct part_action *a = &out->a[out->n++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	return a;
}

static void emit_vote(struct part_actions *out, int yes, const char *reason)
{
	struct part_action *a = emit(out, PACT_SEND_VOTE);
	a->vote = yes;
	a->reason = reason;
}

static void emit_complete(struct part_actions *out, int err)
{
	emit(out, PACT_COMPLETE_STAGES)->err = err;
}

void part_txn_init(struct part_txn *t, uint64_t txid, uint64_t now_ms,
		   const struct part_txn_config *cfg)
{
	memset(t, 0, sizeof(*t));
	t->txid = txid;
	t->created_ms = now_ms;
	t->expires_ms = now_ms + cfg->txn_timeout_ms;
	t->state = PS_JOINING;
}

void part_txn_init_recovered(struct part_txn *t, uint64_t txid, uint64_t now_ms,
			     uint64_t prepared_wall_ms)
{
	memset(t, 0, sizeof(*t));
	t->txid = txid;
	t->created_ms = now_ms;
	t->prepared_wall_ms = prepared_wall_ms;
	t->state = PS_PREPARED;
	t->recovered = 1;
	t->query_at_ms = now_ms; /* ask as soon as connected */
}

uint64_t part_txn_next_deadline(const struct part_txn *t)
{
	switch (t->state) {
	case PS_JOINING:
	case PS_ACTIVE: return t->expires_ms;
	case PS_PREPARED: return t->query_at_ms;
	case PS_APPLYING: return t->apply_failed ? t->query_at_ms : 0;
	case PS_EXPIRED:
		return t->query_at_ms && t->query_at_ms < t->expires_ms ? t->query_at_ms
									 : t->expires_ms;
	default: return 0;
	}
}

enum part_epoch_verdict part_epoch_check(uint64_t epoch, uint64_t highest, uint64_t max_jump)
{
	if (!max_jump)
		max_jump = PART_DEFAULT_MAX_EPOCH_JUMP;
	if (epoch < highest)
		return PART_EPOCH_STALE;
	if (highest && epoch - highest > max_jump)
		return PART_EPOCH_JUMP;
	return PART_EPOCH_OK;
}

void part_txn_set_token(struct part_txn *t, const uint8_t *token)
{
	t->has_token = token != NULL;
	if (token)
		memcpy(t->token, token, sizeof(t->token));
	else
		memset(t->token, 0, sizeof(t->token));
}

/* Returns 1 if the message is from an older coordinator incarnation, or its epoch jumped
 * too far (and rejects it); else raises the highest epoch seen. */
static int stale(const struct part_txn_config *cfg, uint64_t epoch, uint64_t *highest,
		 struct part_actions *out)
{
	switch (part_epoch_check(epoch, *highest, cfg->max_epoch_jump)) {
	case PART_EPOCH_STALE:
		emit(out, PACT_REJECT_STALE);
		return 1;
	case PART_EPOCH_JUMP:
		emit(out, PACT_REJECT_JUMP)->err = TPC_EEPOCH;
		return 1;
	default:
		*highest = epoch;
		return 0;
	}
}

static void discard(struct part_txn *t, struct part_actions *out)
{
	emit(out, PACT_DISCARD);
	set_state(t, PS_DONE);
}

static void schedule_query(struct part_txn *t, const struct part_txn_config *cfg,
			   uint64_t now_ms)
{
	if (!t->query_delay_ms)
		t->query_delay_ms = cfg->query_initial_ms;
	else if (t->query_delay_ms < cfg->query_max_ms)
		t->query_delay_ms = t->query_delay_ms * 2 > cfg->query_max_ms
					    ? cfg->query_max_ms : t->query_delay_ms * 2;
	t->query_at_ms = now_ms + t->query_delay_ms;
}

static void start_apply(struct part_txn *t, struct part_actions *out)
{
	set_state(t, PS_APPLYING);
	t->apply_failed = 0;
	emit(out, PACT_APPLY);
}

/* The first write made the transaction: keep its token; connected, the Join goes out
 * now, else at PEV_CONN_UP (on_conn). */
static int on_begin(struct part_txn *t, const struct part_event *ev, struct part_actions *out)
{
	if (t->state != PS_JOINING || t->join_sent)
		return TPC_ENOTACTIVE;
	part_txn_set_token(t, ev->token);
	if (ev->connected) {
		t->join_sent = 1;
		emit(out, PACT_SEND_JOIN);
	}
	return 0;
}

static int on_stage(struct part_txn *t, const struct part_event *ev)
{
	if (t->state == PS_EXPIRED)
		return TPC_EEXPIRED;
	if (t->state != PS_JOINING && t->state != PS_ACTIVE)
		return TPC_ENOTACTIVE;
	if (t->has_token != (ev->token != NULL))
		return TPC_EDENIED;
	if (t->has_token && !tpc_secret_equal(t->token, ev->token, sizeof(t->token)))
		return TPC_EDENIED;
	return 0;
}

/* The staged writes expired: they are gone, so this transaction can never get our YES
 * (D8). Say NO now if the coordinator may hold our Join, and keep a tombstone. */
static void expire(struct part_txn *t, const struct part_txn_config *cfg, uint64_t now_ms,
		   struct part_actions *out)
{
	if (t->state == PS_JOINING)
		emit_complete(out, TPC_EEXPIRED);
	t->tell_no = t->state == PS_ACTIVE || t->join_sent;
	emit(out, PACT_DISCARD);
	set_state(t, PS_EXPIRED);
	if (t->tell_no)
		emit_vote(out, 0, PART_EXPIRED_REASON);
	t->expires_ms = now_ms + cfg->tombstone_ms;
	t->query_delay_ms = 0;
	schedule_query(t, cfg, now_ms);
}

static int on_join_reply(struct part_txn *t, const struct part_event *ev,
			 struct part_actions *out)
{
	if (t->state != PS_JOINING)
		return 0;
	if (ev->type == PEV_JOIN_OK) {
		set_state(t, PS_ACTIVE);
		emit_complete(out, 0);
		return 0;
	}
	emit_complete(out, ev->err ? ev->err : TPC_ENOTACTIVE);
	discard(t, out);
	return 0;
}

static int on_prepare(struct part_txn *t, const struct part_txn_config *cfg,
		      const struct part_event *ev, uint64_t *highest, struct part_actions *out)
{
	if (stale(cfg, ev->epoch, highest, out))
		return 0;
	switch (t->state) {
	case PS_JOINING: /* Prepare before our JoinReply: cannot be ours to vote on yet */
		emit_complete(out, TPC_ENOTACTIVE);
		emit_vote(out, 0, "prepare arrived before the join was acknowledged");
		discard(t, out);
		return 0;
	case PS_ACTIVE:
		if (ev->sink_ok < 0) {
			emit_vote(out, 0, ev->reason && ev->reason[0]
						  ? ev->reason : "the sink refused the transaction");
			discard(t, out);
			return 0;
		}
		set_state(t, PS_LOGGING);
		emit(out, PACT_LOG_PREPARED);
		return 0;
	case PS_PREPARED:
		emit_vote(out, 1, NULL); /* a repeated Prepare: our YES is durable */
		return 0;
	case PS_EXPIRED:
		emit_vote(out, 0, PART_EXPIRED_REASON);
		return 0;
	default:
		return 0; /* LOGGING: the vote follows the log; APPLYING: decided already */
	}
}

static int on_logged(struct part_txn *t, const struct part_txn_config *cfg,
		     const struct part_event *ev, uint64_t now_ms, struct part_actions *out)
{
	if (t->state != PS_LOGGING)
		return 0;
	if (ev->status < 0) {
		/* Not known to be durable: we must not vote YES. NO is always safe. */
		emit_vote(out, 0, "the participant could not make its PREPARED record durable");
		discard(t, out);
		return 0;
	}
	set_state(t, PS_PREPARED);
	emit_vote(out, 1, NULL);
	schedule_query(t, cfg, now_ms);
	return 0;
}

static int on_decision(struct part_txn *t, const struct part_txn_config *cfg,
		       const struct part_event *ev, uint64_t *highest, struct part_actions *out)
{
	if (stale(cfg, ev->epoch, highest, out))
		return 0;
	if (!ev->commit) {
		if (t->state == PS_APPLYING)
			return 0; /* cannot happen for one decision; never undo a commit */
		if (t->state == PS_DONE)
			return 0; /* finished already (a repeated ABORT): DONE -> DONE is illegal */
		if (t->state == PS_EXPIRED) {
			set_state(t, PS_DONE); /* the writes went already; the tombstone goes */
			return 0;
		}
		if (t->state == PS_JOINING)
			emit_complete(out, TPC_ENOTACTIVE);
		discard(t, out);
		return 0;
	}
	if (t->state == PS_PREPARED)
		start_apply(t, out);
	/* COMMIT while ACTIVE/LOGGING/EXPIRED cannot come from a coordinator keeping D1/D2: this
	 * participant has not voted YES in any incarnation. Ignore it. */
	return 0;
}

static int on_applied(struct part_txn *t, const struct part_txn_config *cfg,
		      const struct part_event *ev, uint64_t now_ms, struct part_actions *out)
{
	if (t->state != PS_APPLYING)
		return 0;
	if (ev->status < 0) {
		/* Still prepared; the record stays, the sink apply is retried (never acked). */
		t->apply_failed = 1;
		t->query_at_ms = now_ms + cfg->apply_retry_ms;
		return 0;
	}
	emit(out, PACT_SEND_ACK);
	set_state(t, PS_DONE);
	return 0;
}

/* PREPARED: ask again after the current backoff (a first answer starts it). */
static void keep_asking(struct part_txn *t, const struct part_txn_config *cfg, uint64_t now_ms)
{
	/* The tick that sent the query doubled the delay already; doubling again here would
	 * grow the backoff fourfold per round. Only a first answer (the query came from
	 * CONN_UP, nothing scheduled yet) starts the backoff. */
	if (t->query_delay_ms)
		t->query_at_ms = now_ms + t->query_delay_ms;
	else
		schedule_query(t, cfg, now_ms);
}

/* EXPIRED: any final answer ends the tombstone (a later Join would be refused by the
 * coordinator); PENDING: our NO may not have arrived, say it again. */
static int on_status_expired(struct part_txn *t, const struct part_event *ev,
			     struct part_actions *out)
{
	if (ev->status == PART_STATUS_PENDING) {
		if (t->tell_no)
			emit_vote(out, 0, PART_EXPIRED_REASON);
		return 0;
	}
	set_state(t, PS_DONE);
	return 0;
}

static int on_status(struct part_txn *t, const struct part_txn_config *cfg,
		     const struct part_event *ev, uint64_t now_ms, struct part_actions *out)
{
	if (t->state == PS_EXPIRED)
		return on_status_expired(t, ev, out);
	if (t->state != PS_PREPARED)
		return 0;
	switch (ev->status) {
	case PART_STATUS_COMMITTED: start_apply(t, out); break;
	case PART_STATUS_ABORTED: discard(t, out); break;
	case PART_STATUS_FORGOTTEN:                  /* never guess, keep asking */
		if (!t->forgotten) {
			t->forgotten = 1;
			emit(out, PACT_REPORT_FORGOTTEN);
		}
		keep_asking(t, cfg, now_ms);
		break;
	default:                                     /* PENDING: it still waits for votes */
		emit_vote(out, 1, NULL);
		keep_asking(t, cfg, now_ms);
		break;
	}
	return 0;
}

/* An Error for our vote: the coordinator no longer has the transaction (or never had
 * our Join), so an EXPIRED tombstone has nothing left to tell it. */
static int on_refused(struct part_txn *t, const struct part_event *ev)
{
	if (t->state != PS_EXPIRED)
		return 0;
	if (ev->err == TPC_ENOTFOUND || ev->err == TPC_ENOTACTIVE || ev->err == TPC_ENOTPART ||
	    ev->err == TPC_EINCARNATION)
		set_state(t, PS_DONE);
	return 0;
}

static int on_tick(struct part_txn *t, const struct part_txn_config *cfg, uint64_t now_ms,
		   struct part_actions *out)
{
	switch (t->state) {
	case PS_JOINING:
	case PS_ACTIVE:
		if (now_ms >= t->expires_ms)
			expire(t, cfg, now_ms, out);
		break;
	case PS_EXPIRED:
		if (now_ms >= t->expires_ms) {
			set_state(t, PS_DONE); /* bounded at worst (D9) */
		} else if (t->query_at_ms && now_ms >= t->query_at_ms) {
			t->queries++;
			emit(out, PACT_SEND_STATUS_QUERY);
			schedule_query(t, cfg, now_ms);
		}
		break;
	case PS_PREPARED:
		if (t->query_at_ms && now_ms >= t->query_at_ms) {
			t->queries++;
			emit(out, PACT_SEND_STATUS_QUERY);
			schedule_query(t, cfg, now_ms);
		}
		break;
	case PS_APPLYING:
		if (t->apply_failed && now_ms >= t->query_at_ms) {
			t->apply_failed = 0;
			emit(out, PACT_APPLY);
		}
		break;
	default:
		break;
	}
	return 0;
}

static int on_conn(struct part_txn *t, const struct part_event *ev, uint64_t now_ms,
		   struct part_actions *out)
{
	if (ev->type == PEV_CONN_DOWN) {
		/* A Join whose reply is lost: fail it. If the coordinator took it, its
		 * Prepare finds nothing here and gets NO. A Join not sent yet waits. */
		if (t->state == PS_JOINING && t->join_sent) {
			emit_complete(out, TPC_ECLOSED);
			discard(t, out);
		}
		return 0;
	}
	if (t->state == PS_JOINING && !t->join_sent) { /* staged while disconnected */
		t->join_sent = 1;
		emit(out, PACT_SEND_JOIN);
	}
	if (t->state == PS_EXPIRED && t->tell_no) /* the NO may have been lost */
		emit_vote(out, 0, PART_EXPIRED_REASON);
	if (t->state == PS_PREPARED || t->state == PS_EXPIRED) {
		/* ask now: the decision may have been lost */
		t->queries++;
		emit(out, PACT_SEND_STATUS_QUERY);
	}
	return 0;
}

int part_txn_step(struct part_txn *t, const struct part_txn_config *cfg,
		  const struct part_event *ev, uint64_t now_ms, uint64_t *highest_epoch,
		  struct part_actions *out)
{
	switch (ev->type) {
	case PEV_BEGIN: return on_begin(t, ev, out);
	case PEV_STAGE: return on_stage(t, ev);
	case PEV_JOIN_OK:
	case PEV_JOIN_FAILED: return on_join_reply(t, ev, out);
	case PEV_PREPARE: return on_prepare(t, cfg, ev, highest_epoch, out);
	case PEV_LOGGED: return on_logged(t, cfg, ev, now_ms, out);
	case PEV_DECISION: return on_decision(t, cfg, ev, highest_epoch, out);
	case PEV_APPLIED: return on_applied(t, cfg, ev, now_ms, out);
	case PEV_STATUS: return on_status(t, cfg, ev, now_ms, out);
	case PEV_REFUSED: return on_refused(t, ev);
	case PEV_TICK: return on_tick(t, cfg, now_ms, out);
	case PEV_CONN_UP:
	case PEV_CONN_DOWN: return on_conn(t, ev, now_ms, out);
	}
	return TPC_EPROTO;
}
