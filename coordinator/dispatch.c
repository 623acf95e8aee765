/*
 * dispatch.c - requests into the state machine: one handler per Envelope body.
 *
 * Handlers check who may send what (a Hello first; Join, Vote and Ack only from a
 * participant connection, and only for the name and incarnation it said Hello with;
 * a participant's Hello itself goes to identity.c, rule D8), look the
 * transaction up, and hand an event to coord_step(). Who may decide is the machine's
 * rule (txn.c: Commit and Abort only from the owner); a Join's transaction token is
 * checked here (token.c) before the machine sees the Join. Questions about transactions
 * that are not in memory are answered here by presumed abort (D5): COMMITTED only if
 * the log holds a COMMIT record or its completed tombstone; to a client, FORGOTTEN for a
 * txid with no record at or below the log's forget horizon (its outcome was swept: never
 * guess ABORTED there); ABORTED otherwise.
 *
 * A participant asking about (or voting on) a txid with no record is told ABORTED even
 * below the horizon, and that is no guess: a COMMIT record stays until every participant
 * that voted YES acked it (D4), and a participant acks only once its apply is durable
 * (D3). So a participant with no record to find either never voted YES for a committed
 * transaction, or already applied it and only its lazy record drop was lost, in which case
 * the abort it hears discards nothing the sink holds. FORGOTTEN there would leave it in
 * doubt for ever.
 */
#include "server_int.h"
#include "broken.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E(name) TPC__ERROR_CODE__ERR_##name

static struct coord_txn *find_txn(struct coord_server *s, uint64_t txid)
{
	return u64map_get(&s->txns, txid);
}

/* enum coord_lookup: committed, presumed aborted, or forgotten. A read error is logged
 * and taken as "unknown" by the caller through a negative value. */
static int logged_commit(struct coord_server *s, uint64_t txid)
{
	int rc = s->store.ops->lookup_txid(s->store.self, txid);
	if (rc < 0)
		tpc_logf(&s->log, TPC_LOG_ERROR, "log lookup of txid %llu failed: %d",
			 (unsigned long long)txid, rc);
	return rc;
}

static int on_hello(struct conn *c, uint64_t req, const Tpc__Hello *h)
{
	if (c->role != CONN_NEW) {
		coord_conn_fail(c, E(PROTOCOL), "hello sent twice");
		return 1;
	}
	if (h->protocol_version != TPC_PROTOCOL_VERSION) {
		coord_conn_fail(c, E(VERSION), "unsupported protocol version (this coordinator speaks " TPC_PROTOCOL_VERSION_STR ")");
		return 1;
	}
	if (h->role == TPC__ROLE__ROLE_PARTICIPANT) /* identity.c: binding, incarnations */
		return coord_identity_hello(c, req, h);
	c->role = CONN_CLIENT;
	coord_conn_send_hello_reply(c, req);
	return 0;
}

static void reply_begin_token(struct conn *c, uint64_t req, uint64_t txid,
			      Tpc__BeginResult result, uint64_t fenced, const uint8_t *token)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__BeginReply r = TPC__BEGIN_REPLY__INIT;

	r.txid = txid;
	r.result = result;
	r.fenced_txid = fenced;
	if (token)
		r.txn_token = (ProtobufCBinaryData){ TPC_TXN_TOKEN_LEN, (uint8_t *)token };
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_BEGIN_REPLY;
	env.begin_reply = &r;
	coord_conn_send(c, &env);
}

/* A Begin answered without starting a transaction: no token. */
static void reply_begin(struct conn *c, uint64_t req, uint64_t txid, Tpc__BeginResult result,
			uint64_t fenced)
{
	reply_begin_token(c, req, txid, result, fenced, NULL);
}

/*
 * A key whose transaction is still open: fence it if nothing was decided yet, or say
 * where it stands. @return 1 if the Begin was answered, 0 to start a new transaction.
 */
static int begin_key_live(struct conn *c, uint64_t req, struct coord_txn *t, uint64_t *fenced)
{
	struct coord_event ev = { .type = EV_FENCE };

	if (t->state == TXN_COMMITTING && t->dropping == DROP_NONE) {
		reply_begin(c, req, t->txid, TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED, 0);
		return 1;
	}
	uint64_t txid = t->txid;
	if (coord_step_rc(c->srv, t, &ev) != 0) {
		reply_begin(c, req, txid, TPC__BEGIN_RESULT__BEGIN_PENDING, 0);
		return 1;
	}
	tpc_logf(&c->srv->log, TPC_LOG_INFO, "txid %llu fenced by a new Begin with its key",
		 (unsigned long long)txid);
	*fenced = txid;
	return 0;
}

static int begin_check_key(struct conn *c, uint64_t req, const char *key, size_t len,
			   uint64_t *fenced)
{
	struct coord_server *s = c->srv;
	uint64_t txid;
	struct coord_key_info info;

	if (strmap_get(&s->live_keys, key, len, &txid)) {
		struct coord_txn *t = find_txn(s, txid);
		if (t)
			return begin_key_live(c, req, t, fenced);
	}
	int rc = s->store.ops->lookup_key(s->store.self, key, len, &info);
	if (rc < 0) {
		coord_conn_send_error(c, req, E(UNAVAILABLE), "cannot read the transaction key log", 0);
		return 1;
	}
	if (rc == 1 && info.committed &&
	    info.wall_ms + s->cfg.key_retention_ms > tpc_wall_ms()) {
		reply_begin(c, req, info.txid, TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED, 0);
		return 1;
	}
	return 0;
}

static int begin_limits(struct conn *c, uint64_t req, const Tpc__Begin *b)
{
	struct coord_server *s = c->srv;

	if (s->txns.n >= s->cfg.max_open_txns) {
		coord_conn_send_error(c, req, E(LIMIT), "open transaction limit reached", 0);
		return 1;
	}
	if (c->open_txns >= s->cfg.max_txns_per_conn) {
		coord_conn_send_error(c, req, E(LIMIT),
				      "this connection holds too many open transactions", 0);
		return 1;
	}
	if (b->timeout_ms > s->cfg.max_txn_timeout_ms) {
		char msg[128];
		snprintf(msg, sizeof(msg), "timeout_ms %u is longer than this coordinator's "
			 "max-txn-timeout (%ums)", b->timeout_ms, s->cfg.max_txn_timeout_ms);
		coord_conn_send_error(c, req, E(INVALID), msg, 0);
		return 1;
	}
	if (b->txn_key && strlen(b->txn_key) > s->cfg.max_key_len) {
		coord_conn_send_error(c, req, E(INVALID), "transaction key too long", 0);
		return 1;
	}
	return 0;
}

static struct coord_txn *begin_new(struct conn *c, const Tpc__Begin *b)
{
	struct coord_server *s = c->srv;
	struct coord_txn *t = malloc(sizeof(*t));
	uint8_t token[TPC_TXN_TOKEN_LEN];
	uint64_t txid = t && coord_token_new(s, token) == 0 ? coord_next_txid(s) : 0;
	uint32_t timeout = b->timeout_ms ? b->timeout_ms : s->cfg.txn_timeout_ms;

	if (!txid) {
		free(t);
		return NULL;
	}
	coord_txn_init(t, txid, c->id, tpc_now_ms(), timeout);
	memcpy(t->token, token, sizeof(t->token));
	if (b->txn_key && b->txn_key[0]) {
		t->key = strdup(b->txn_key);
		if (!t->key || strmap_put(&s->live_keys, t->key, strlen(t->key), txid)) {
			free(t->key);
			free(t);
			return NULL;
		}
	}
	if (u64map_put(&s->txns, txid, t)) {
		if (t->key)
			strmap_del_if(&s->live_keys, t->key, strlen(t->key), txid);
		free(t->key);
		free(t);
		return NULL;
	}
	c->open_txns++;
	s->stats.begun++;
	coord_arm(s, t);
	return t;
}

static int on_begin(struct conn *c, uint64_t req, const Tpc__Begin *b)
{
	uint64_t fenced = 0;
	const char *key = b->txn_key;

	if (c->role != CONN_CLIENT) {
		coord_conn_send_error(c, req, E(PROTOCOL), "begin is for client connections", 0);
		return 0;
	}
	if (c->srv->stopping) {
		coord_conn_send_error(c, req, E(UNAVAILABLE), "coordinator is shutting down", 0);
		return 0;
	}
	/* A key first: a retried Begin whose work committed is answered even at a limit. */
	if (key && key[0] && strlen(key) <= c->srv->cfg.max_key_len &&
	    begin_check_key(c, req, key, strlen(key), &fenced))
		return 0;
	if (begin_limits(c, req, b))
		return 0;
	struct coord_txn *t = begin_new(c, b);
	if (!t) {
		coord_conn_send_error(c, req, E(UNAVAILABLE),
				      "cannot start a transaction (out of memory or randomness)", 0);
		return 0;
	}
	reply_begin_token(c, req, t->txid, TPC__BEGIN_RESULT__BEGIN_STARTED, fenced, t->token);
	return 0;
}

/* BROKEN (test binaries only, broken.h): a Join or vote from another incarnation is
 * taken as if from the one that joined (the behaviour before rule D8). */
static void broken_accept_rejoin(struct coord_txn *t, struct coord_event *ev)
{
	struct coord_txn_part *p = coord_txn_find_part(t, ev->peer);

	if (p && tpc_broken("coord.accept_rejoin"))
		ev->inc = p->incarnation;
}

static int require_participant(struct conn *c, uint64_t req, uint64_t txid)
{
	if (c->role == CONN_PARTICIPANT && c->peer)
		return 0;
	coord_conn_send_error(c, req, E(PROTOCOL),
			      "only a participant connection may send this", txid);
	return 1;
}

static int on_join(struct conn *c, uint64_t req, const Tpc__Join *j)
{
	struct coord_server *s = c->srv;

	if (require_participant(c, req, j->txid))
		return 0;
	if (strcmp(j->participant, coord_peer(s, c->peer)->name) != 0) {
		coord_conn_send_error(c, req, E(PROTOCOL),
				      "join names a participant other than this connection's", j->txid);
		return 0;
	}
	if (j->incarnation != c->incarnation) {
		coord_conn_send_error(c, req, E(INCARNATION),
				      "join names another incarnation than this connection's Hello",
				      j->txid);
		return 0;
	}
	struct coord_txn *t = find_txn(s, j->txid);
	if (!t) {
		coord_conn_send_error(c, req, E(NOT_FOUND),
				      "no such open transaction (unknown, or already decided)", j->txid);
		return 0;
	}
	const char *why;
	if (!coord_token_check(s, t, j->txn_token.data, j->txn_token.len, &why)) {
		tpc_logf(&s->log, TPC_LOG_WARN, "txid %llu: refused a Join from %s: %s",
			 (unsigned long long)j->txid, coord_peer(s, c->peer)->name, why);
		coord_conn_send_error(c, req, E(DENIED), why, j->txid);
		return 0;
	}
	struct coord_event ev = { .type = EV_JOIN, .peer = c->peer, .conn = c->id, .req = req,
				  .inc = c->incarnation };
	broken_accept_rejoin(t, &ev);
	coord_step(s, t, &ev);
	return 0;
}

static void reply_outcome(struct conn *c, uint64_t req, uint64_t txid, Tpc__OutcomeKind k,
			  const char *reason)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Outcome o = TPC__OUTCOME__INIT;

	o.txid = txid;
	o.outcome = k;
	o.reason = (char *)reason;
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_OUTCOME;
	env.outcome = &o;
	coord_conn_send(c, &env);
}

/* ABORTED for a txid not in memory: why, when it aborted lately (aborts.h). */
static void reply_aborted(struct conn *c, uint64_t req, uint64_t txid)
{
	const struct coord_abort_rec *r = coord_aborts_get(c->srv->aborts, txid);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Outcome o = TPC__OUTCOME__INIT;

	o.txid = txid;
	o.outcome = TPC__OUTCOME_KIND__OUTCOME_ABORTED;
	o.reason = r && r->reason ? r->reason
				  : (char *)"no such transaction: unknown or aborted (presumed abort)";
	if (r && r->participant)
		o.abort_participant = r->participant;
	if (r && r->detail)
		o.abort_reason = r->detail;
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_OUTCOME;
	env.outcome = &o;
	coord_conn_send(c, &env);
}

/* Commit or Abort for a transaction not in memory: the log, or presumed abort. */
static void outcome_from_log(struct conn *c, uint64_t req, uint64_t txid)
{
	int rc = logged_commit(c->srv, txid);

	if (rc < 0)
		reply_outcome(c, req, txid, TPC__OUTCOME_KIND__OUTCOME_UNKNOWN,
			      "cannot read the decision log; ask again");
	else if (rc == COORD_LOOKUP_COMMITTED)
		reply_outcome(c, req, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, "");
	else if (rc == COORD_LOOKUP_FORGOTTEN)
		reply_outcome(c, req, txid, TPC__OUTCOME_KIND__OUTCOME_FORGOTTEN,
			      "no record: its outcome is older than the coordinator's outcome "
			      "retention and was forgotten");
	else
		reply_aborted(c, req, txid);
}

static int on_commit_or_abort(struct conn *c, uint64_t req, uint64_t txid,
			      enum coord_ev_type type)
{
	if (c->role != CONN_CLIENT) {
		coord_conn_send_error(c, req, E(PROTOCOL), "commit and abort are for clients", txid);
		return 0;
	}
	struct coord_txn *t = find_txn(c->srv, txid);
	if (!t) {
		outcome_from_log(c, req, txid);
		return 0;
	}
	struct coord_event ev = { .type = type, .conn = c->id, .req = req };
	uint64_t owner = t->owner;
	if (coord_step_rc(c->srv, t, &ev) == COORD_ERR_DENIED) /* txn.c: the owner's only */
		tpc_logf(&c->srv->log, TPC_LOG_WARN,
			 "txid %llu: refused %s from connection %llu (begun on %llu)",
			 (unsigned long long)txid, type == EV_COMMIT ? "a Commit" : "an Abort",
			 (unsigned long long)c->id, (unsigned long long)owner);
	return 0;
}

static void send_decision_to(struct conn *c, uint64_t txid, int commit)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Decision d = TPC__DECISION__INIT;

	d.txid = txid;
	d.decision = commit ? TPC__DECISION_KIND__DECISION_COMMIT : TPC__DECISION_KIND__DECISION_ABORT;
	d.epoch = c->srv->epoch;
	env.body_case = TPC__ENVELOPE__BODY_DECISION;
	env.decision = &d;
	coord_conn_send(c, &env);
}

/* A NO vote: keep its reason for the client's Outcome, the log line and the admin API,
 * which the step that aborts says (actions.c). @return 1 if this vote's reason was kept. */
static int note_no_vote(struct coord_txn *t, const Tpc__Vote *v)
{
	if (t->no_reason || !v->reason || !v->reason[0])
		return 0;
	t->no_reason = strdup(v->reason); /* out of memory: told without the detail */
	return t->no_reason != NULL;
}

/* After the step: a NO that did not abort (refused, or too late) keeps no reason. */
static void drop_unused_reason(struct coord_server *s, uint64_t txid, uint32_t peer)
{
	struct coord_txn *t = find_txn(s, txid);

	if (t && t->no_reason && (t->abort_reason != ABORT_VOTE_NO || t->no_voter != peer)) {
		free(t->no_reason);
		t->no_reason = NULL;
	}
}

static int on_vote(struct conn *c, uint64_t req, const Tpc__Vote *v)
{
	struct coord_server *s = c->srv;

	if (require_participant(c, req, v->txid))
		return 0;
	struct coord_txn *t = find_txn(s, v->txid);
	if (!t) {
		/* Decided and forgotten, or never known: tell it what the log says. */
		int rc = logged_commit(s, v->txid); /* FORGOTTEN: ABORT (see the top) */
		if (rc >= 0 && v->vote != TPC__VOTE_KIND__VOTE_READ_ONLY)
			send_decision_to(c, v->txid, rc == COORD_LOOKUP_COMMITTED);
		return 0;
	}
	int kept = v->vote == TPC__VOTE_KIND__VOTE_NO && note_no_vote(t, v);
	struct coord_event ev = { .type = EV_VOTE, .peer = c->peer, .vote = (int)v->vote,
				  .inc = v->incarnation };
	broken_accept_rejoin(t, &ev);
	int rc = coord_step_rc(s, t, &ev); /* may free t */
	if (kept)
		drop_unused_reason(s, v->txid, c->peer);
	if (rc == COORD_ERR_NOT_PARTICIPANT)
		coord_conn_send_error(c, req, E(NOT_PARTICIPANT),
				      "vote from a participant that did not join", v->txid);
	else if (rc == COORD_ERR_INCARNATION)
		coord_conn_send_error(c, req, E(INCARNATION),
				      "the vote names another incarnation than the one that joined: "
				      "its staged writes are gone; the transaction aborts", v->txid);
	else if (rc)
		coord_conn_send_error(c, req, rc, "vote not accepted in this state", v->txid);
	return 0;
}

static int on_ack(struct conn *c, uint64_t req, const Tpc__Ack *a)
{
	if (require_participant(c, req, a->txid))
		return 0;
	struct coord_txn *t = find_txn(c->srv, a->txid);
	if (!t)
		return 0; /* a repeated ack after completion */
	struct coord_event ev = { .type = EV_ACK, .peer = c->peer };
	int rc = coord_step_rc(c->srv, t, &ev);
	if (rc == COORD_ERR_NOT_PARTICIPANT)
		coord_conn_send_error(c, req, E(NOT_PARTICIPANT),
				      "ack from a participant that did not join", a->txid);
	return 0;
}

/* OrphanReport: kept for the admin API; no reply. */
static int on_orphans(struct conn *c, uint64_t req, const Tpc__OrphanReport *r)
{
	if (require_participant(c, req, 0))
		return 0;
	uint32_t before = coord_peer(c->srv, c->peer)->norphans;

	if (coord_peer_set_orphans(c->srv, c->peer, r) == 0 && r->n_orphans &&
	    r->n_orphans != before) /* logged when the number changes, not every scan */
		tpc_logf(&c->srv->log, TPC_LOG_WARN, "participant %s reports %zu unresolved "
			 "prepared transaction(s) in its resource manager (GET /v1/participants)",
			 coord_peer(c->srv, c->peer)->name, r->n_orphans);
	return 0;
}

static Tpc__TxnStatus live_status(const struct coord_txn *t)
{
	switch (t->state) {
	case TXN_COMMITTING: /* while an operator's DROP is written, or the COMMIT record
			      * written again after one, no record is durable: nobody knows yet */
		return t->dropping != DROP_NONE ? TPC__TXN_STATUS__STATUS_PENDING
						: TPC__TXN_STATUS__STATUS_COMMITTED;
	case TXN_ABORTING:
	case TXN_DONE: return TPC__TXN_STATUS__STATUS_ABORTED;
	default: return TPC__TXN_STATUS__STATUS_PENDING;
	}
}

static int on_status(struct conn *c, uint64_t req, const Tpc__StatusQuery *q)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__StatusReply r = TPC__STATUS_REPLY__INIT;
	struct coord_txn *t = find_txn(c->srv, q->txid);

	if (c->role == CONN_NEW) {
		coord_conn_fail(c, E(PROTOCOL), "say hello first");
		return 1;
	}
	r.txid = q->txid;
	if (t) {
		r.status = live_status(t);
	} else {
		int rc = logged_commit(c->srv, q->txid);
		if (rc < 0) {
			coord_conn_send_error(c, req, E(UNAVAILABLE),
					      "cannot read the decision log; ask again", q->txid);
			return 0;
		}
		if (rc == COORD_LOOKUP_FORGOTTEN && c->role == CONN_PARTICIPANT)
			rc = COORD_LOOKUP_NONE; /* presumed abort holds for participants (top) */
		r.status = rc == COORD_LOOKUP_COMMITTED   ? TPC__TXN_STATUS__STATUS_COMMITTED
			   : rc == COORD_LOOKUP_FORGOTTEN ? TPC__TXN_STATUS__STATUS_FORGOTTEN
							  : TPC__TXN_STATUS__STATUS_ABORTED;
	}
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_STATUS_REPLY;
	env.status_reply = &r;
	coord_conn_send(c, &env);
	return 0;
}

int coord_dispatch(struct conn *c, const Tpc__Envelope *env)
{
	uint64_t req = env->request_id;

	if (c->srv->ha && !coord_ha_check(c->srv)) /* ha.c: a standby serves nothing */
		return coord_ha_refuse(c, req);
	if (c->role == CONN_PARTICIPANT && c->peer) /* last seen, for the admin API */
		coord_peer(c->srv, c->peer)->last_seen_wall_ms = tpc_wall_ms();
	if (c->role == CONN_BINDING) {
		coord_conn_fail(c, E(PROTOCOL), "wait for the HelloReply before sending more");
		return 1;
	}
	if (c->role == CONN_NEW && env->body_case != TPC__ENVELOPE__BODY_HELLO &&
	    env->body_case != TPC__ENVELOPE__BODY_STATUS_QUERY) {
		coord_conn_fail(c, E(PROTOCOL), "the first message must be hello");
		return 1;
	}
	switch (env->body_case) {
	case TPC__ENVELOPE__BODY_HELLO: return on_hello(c, req, env->hello);
	case TPC__ENVELOPE__BODY_BEGIN: return on_begin(c, req, env->begin);
	case TPC__ENVELOPE__BODY_JOIN: return on_join(c, req, env->join);
	case TPC__ENVELOPE__BODY_COMMIT:
		return on_commit_or_abort(c, req, env->commit->txid, EV_COMMIT);
	case TPC__ENVELOPE__BODY_ABORT:
		return on_commit_or_abort(c, req, env->abort->txid, EV_ABORT);
	case TPC__ENVELOPE__BODY_VOTE: return on_vote(c, req, env->vote);
	case TPC__ENVELOPE__BODY_ACK: return on_ack(c, req, env->ack);
	case TPC__ENVELOPE__BODY_STATUS_QUERY: return on_status(c, req, env->status_query);
	case TPC__ENVELOPE__BODY_ORPHAN_REPORT: return on_orphans(c, req, env->orphan_report);
	default:
		coord_conn_fail(c, E(PROTOCOL), "message not accepted by a coordinator");
		return 1;
	}
}

/* A connection went away: its participant is down, its client's open work aborts. */
void coord_on_conn_closed(struct coord_server *s, struct conn *c)
{
	if (c->role == CONN_PARTICIPANT && c->peer) {
		struct peer *p = coord_peer(s, c->peer);
		if (p->conn == c->id) {
			p->conn = 0;
			p->last_seen_wall_ms = tpc_wall_ms();
			tpc_logf(&s->log, TPC_LOG_INFO, "participant %s disconnected", p->name);
			coord_step_peer_all(s, c->peer, EV_PEER_DOWN);
		}
		return;
	}
	if (c->role != CONN_CLIENT || s->stopping)
		return;
	struct u64map_iter it;
	struct coord_event ev = { .type = EV_CLIENT_GONE, .conn = c->id };
	for (struct coord_txn *t = u64map_iter_first(&it, &s->txns); t; t = u64map_iter_next(&it))
		if (t->owner == c->id || t->waiter == c->id)
			coord_step(s, t, &ev);
	u64map_iter_end(&it);
}
