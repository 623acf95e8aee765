/*
 * identity.c - who a participant is (rule D8): each name bound durably to one
 * participant id (one state folder), and the newest incarnation of it seen since this
 * coordinator started.
 *
 * A participant's Hello goes through here (dispatch.c hands it over):
 *   1. the fields are checked: name 1..COORD_MAX_PART_NAME bytes, participant_id 16
 *      bytes, incarnation >= 1 (ERR_INVALID otherwise); with TLS the name must equal
 *      the CN of the connection's verified certificate (ERR_IDENTITY otherwise: a
 *      certificate speaks for one participant name only), checked before the name is
 *      looked at, so the real participant's connection is not touched;
 *   2. a name bound to another id is refused with ERR_IDENTITY, and only that connection
 *      closes: the real participant's connection is not touched;
 *   3. a name not bound yet: a BIND record is queued and the connection waits
 *      (CONN_BINDING, not a participant yet); the HelloReply goes out only once the
 *      binding is durable (bind_logged);
 *   4. the incarnation: older than the newest seen -> ERR_IDENTITY (a process that was
 *      replaced); equal -> a plain reconnect; newer -> the old connection is replaced and
 *      every open transaction the older incarnation joined and did not vote on aborts
 *      (EV_PEER_RESTARTED), except the txids the Hello lists as held PREPARED.
 * The newest incarnation lives in memory only: transactions that could be joined
 * (ACTIVE, PREPARING) do not survive a coordinator restart, and a recovered decision's
 * participants are not checked (their slots hold incarnation 0).
 *
 * Also the server side of an operator's forget (admin_forget.c): whether a name may be
 * unbound now, and the in-memory change once its UNBIND record is durable.
 */
#include "server_int.h"
#include "broken.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E(name) TPC__ERROR_CODE__ERR_##name
#define MAX_PREPARED_READ 4096 /* Hello.prepared_txids looked at (the stub sends <= 4096) */

/* A BIND record and the connection whose HelloReply waits for it. */
struct bind_op {
	struct coord_rec rec;  /* must be first: coord_log_done() hands it back */
	uint64_t conn;
	uint64_t req;
	uint32_t peer;
	char *name;
};

void coord_participant_id_hex(const unsigned char *id, char out[2 * COORD_PARTICIPANT_ID_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < COORD_PARTICIPANT_ID_LEN; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[2 * COORD_PARTICIPANT_ID_LEN] = '\0';
}

/* ---- start-up ---- */

static int load_one(void *arg, const char *name, size_t len, const struct coord_binding *b)
{
	struct coord_server *s = arg;
	char *copy = strndup(name, len);
	uint32_t id = copy && strlen(copy) == len ? coord_peer_intern(s, copy, UINT32_MAX) : 0;

	if (copy && strlen(copy) != len) {
		free(copy);
		return -EBADMSG; /* a name with a NUL byte: no Hello could have bound it */
	}
	free(copy);
	if (!id)
		return -ENOMEM;
	struct peer *p = coord_peer(s, id);
	memcpy(p->pid, b->participant_id, sizeof(p->pid));
	p->bound = PEER_BOUND;
	p->bound_wall_ms = b->wall_ms;
	return 0;
}

int coord_identity_load(struct coord_server *s)
{
	int rc = s->store.ops->load_participants(s->store.self, load_one, s);

	if (rc)
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot load the participant bindings: %d", rc);
	return rc;
}

/* ---- checks ---- */

static int check_hello(struct conn *c, uint64_t req, const Tpc__Hello *h)
{
	const char *why = NULL;

	if (!h->name || !h->name[0] || strlen(h->name) > COORD_MAX_PART_NAME)
		why = "a participant name must be 1 to " COORD_MAX_PART_NAME_STR " bytes";
	else if (h->participant_id.len != COORD_PARTICIPANT_ID_LEN)
		why = "Hello.participant_id must be the 16-byte id of the participant's state "
		      "folder (is the participant library older than protocol version 2?)";
	else if (h->incarnation == 0)
		why = "Hello.incarnation must be 1 or more";
	if (!why)
		return 0;
	coord_conn_fail_req(c, req, E(INVALID), why);
	return 1;
}

/* TLS: the Hello's name must be the certificate's CN. 1 if refused (closing). */
static int check_cn(struct conn *c, uint64_t req, const Tpc__Hello *h)
{
	char msg[3 * TPC_TLS_MAX_CN + 128];

	if (!c->srv->tls || strcmp(c->cn, h->name) == 0)
		return 0;
	snprintf(msg, sizeof(msg), "certificate CN %s may only speak for participant %s, "
		 "not \"%.255s\"", c->cn, c->cn, h->name);
	coord_conn_fail_req(c, req, E(IDENTITY), msg);
	return 1;
}

static void refuse_other_id(struct conn *c, uint64_t req, const struct peer *p,
			    const Tpc__Hello *h)
{
	char have[2 * COORD_PARTICIPANT_ID_LEN + 1], got[2 * COORD_PARTICIPANT_ID_LEN + 1];
	char msg[768];

	coord_participant_id_hex(p->pid, have);
	coord_participant_id_hex(h->participant_id.data, got);
	snprintf(msg, sizeof(msg),
		 "the name \"%s\" is bound to another participant (id %s; this process has id "
		 "%s, from another state folder). Start this process with its own state folder "
		 "and name, or, only if the folder of \"%s\" is really lost, run `tpcctl "
		 "participant forget %s` and start again",
		 p->name, have, got, p->name, p->name);
	tpc_logf(&c->srv->log, TPC_LOG_WARN, "%s: refused participant %s with id %s: bound to %s",
		 c->addr, p->name, got, have);
	coord_conn_fail_req(c, req, E(IDENTITY), msg);
}

static void refuse_older(struct conn *c, uint64_t req, const struct peer *p, uint64_t inc)
{
	char msg[512];

	snprintf(msg, sizeof(msg),
		 "participant \"%s\" incarnation %" PRIu64 " is older than incarnation %" PRIu64
		 " already connected from this state folder: this process was replaced; stop it",
		 p->name, inc, p->incarnation);
	coord_conn_fail_req(c, req, E(IDENTITY), msg);
}

/* ---- a newer incarnation ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * What the older incarnation joined and did not vote on can never commit: abort it,
 * except the txids the new one holds PREPARED (it votes them again, naming the joined
 * incarnation, D8).
 */
static void abort_restarted(struct coord_server *s, uint32_t peer, uint64_t inc,
			    const uint64_t *prepared, size_t nprepared)
{
	size_t np = nprepared < MAX_PREPARED_READ ? nprepared : MAX_PREPARED_READ;
	uint64_t *spared = np ? malloc(np * sizeof(*spared)) : NULL;
	struct u64map_iter it;
	struct coord_event ev = { .type = EV_PEER_RESTARTED, .peer = peer, .inc = inc };

	if (spared) {
		memcpy(spared, prepared, np * sizeof(*spared));
		qsort(spared, np, sizeof(*spared), cmp_u64);
	} else {
		np = 0; /* out of memory: spare nothing; a prepared one then aborts, safely */
	}
	for (struct coord_txn *t = u64map_iter_first(&it, &s->txns); t; t = u64map_iter_next(&it)) {
		if (!coord_txn_find_part(t, peer))
			continue;
		if (np && bsearch(&it.key, spared, np, sizeof(*spared), cmp_u64))
			continue;
		coord_step(s, t, &ev);
	}
	u64map_iter_end(&it);
	free(spared);
}

/* Close the connection an earlier Hello of this participant left (it is replaced). */
static void replace_old_conn(struct coord_server *s, struct conn *c, struct peer *p)
{
	struct conn *old = coord_conn_get(s, p->conn);

	if (old && old != c) {
		tpc_logf(&s->log, TPC_LOG_WARN,
			 "participant %s reconnected from %s; closing its older connection %s",
			 p->name, c->addr, old->addr);
		old->peer = 0; /* the new connection owns the name now */
		coord_conn_fail(old, E(PROTOCOL), "replaced by a newer connection of this participant");
	}
	p->conn = 0;
}

/*
 * The Hello of a bound participant: check the incarnation, take over the name, reply,
 * and resend what it lacks. @return 1 if the connection was closed.
 */
static int accept_participant(struct conn *c, uint64_t req, uint32_t peer, uint64_t inc,
			      const uint64_t *prepared, size_t nprepared)
{
	struct coord_server *s = c->srv;
	struct peer *p = coord_peer(s, peer);
	int newer = p->incarnation && inc > p->incarnation;

	if (inc < p->incarnation) {
		refuse_older(c, req, p, inc);
		return 1;
	}
	replace_old_conn(s, c, p);
	if (newer) {
		tpc_logf(&s->log, TPC_LOG_INFO, "participant %s restarted (incarnation %" PRIu64
			 " -> %" PRIu64 ")", p->name, p->incarnation, inc);
		if (!tpc_broken("coord.accept_rejoin"))
			abort_restarted(s, peer, inc, prepared, nprepared);
	}
	p = coord_peer(s, peer); /* steps do not move peers, but stay safe */
	p->incarnation = inc;
	c->role = CONN_PARTICIPANT;
	c->peer = peer;
	c->incarnation = inc;
	p->conn = c->id;
	p->connects++;
	p->last_seen_wall_ms = tpc_wall_ms();
	snprintf(p->addr, sizeof(p->addr), "%s", c->addr); /* for the admin API */
	tpc_logf(&s->log, TPC_LOG_INFO, "participant %s connected from %s (incarnation %" PRIu64
		 ")", p->name, c->addr, inc);
	coord_conn_send_hello_reply(c, req);
	coord_step_peer_all(s, peer, EV_PEER_UP); /* recovery: resend what it lacks */
	return 0;
}

/* ---- binding a name ---- */

static void bind_logged(struct coord_server *s, struct coord_rec *r, int status);

static int start_bind(struct conn *c, uint64_t req, uint32_t peer, const Tpc__Hello *h)
{
	struct coord_server *s = c->srv;
	struct peer *p = coord_peer(s, peer);
	struct bind_op *op = calloc(1, sizeof(*op));

	if (op)
		op->name = strdup(p->name);
	if (!op || !op->name) {
		free(op);
		coord_conn_fail_req(c, req, E(UNAVAILABLE), "out of memory");
		coord_peer_release(s, peer);
		return 1;
	}
	op->conn = c->id;
	op->req = req;
	op->peer = peer;
	op->rec.type = COORD_REC_BIND;
	op->rec.done = bind_logged;
	op->rec.name = op->name;
	op->rec.name_len = strlen(op->name);
	op->rec.wall_ms = tpc_wall_ms();
	memcpy(op->rec.participant_id, h->participant_id.data, COORD_PARTICIPANT_ID_LEN);
	if (p->bound == PEER_UNBOUND) {
		memcpy(p->pid, h->participant_id.data, sizeof(p->pid));
		p->bound = PEER_BINDING; /* another id is refused from now on */
	}
	p->binds_inflight++;
	c->role = CONN_BINDING;
	c->incarnation = h->incarnation;
	tpc_logf(&s->log, TPC_LOG_INFO, "binding participant name %s to %s's state folder",
		 p->name, c->addr);
	lazy_queue_submit_with(&s->lazy, &op->rec.item); /* forced; waiting COMPLETEs ride along */
	return 0;
}

static void bind_logged(struct coord_server *s, struct coord_rec *r, int status)
{
	struct bind_op *op = (struct bind_op *)r;
	struct peer *p = coord_peer(s, op->peer);
	struct conn *c = coord_conn_get(s, op->conn);
	uint32_t op_peer = op->peer;

	p->binds_inflight--;
	if (status == 0) {
		p->bound = PEER_BOUND;
		p->bound_wall_ms = r->wall_ms;
	} else if (p->bound == PEER_BINDING && p->binds_inflight == 0) {
		p->bound = PEER_UNBOUND;
	}
	if (c && c->role == CONN_BINDING && !c->closing && !s->stopping) {
		if (status == 0)
			accept_participant(c, op->req, op->peer, c->incarnation, NULL, 0);
		else
			coord_conn_fail_req(c, op->req, E(UNAVAILABLE),
					    "cannot record the participant's identity in the log; "
					    "retry");
	}
	free(op->name);
	free(op);
	if (status != 0)
		coord_peer_release(s, op_peer); /* the name was never bound: forget it */
}

int coord_identity_hello(struct conn *c, uint64_t req, const Tpc__Hello *h)
{
	struct coord_server *s = c->srv;
	uint32_t peer;
	struct peer *p;

	if (check_hello(c, req, h) || check_cn(c, req, h))
		return 1;
	peer = coord_peer_intern(s, h->name, s->cfg.max_part_names);
	if (!peer) {
		coord_conn_fail_req(c, req, E(LIMIT), "cannot register the participant: the "
				    "coordinator knows max-participant-names names already");
		return 1;
	}
	p = coord_peer(s, peer);
	if (p->forgetting) {
		coord_conn_fail_req(c, req, E(UNAVAILABLE), "an operator is removing this name's "
				    "binding right now; retry");
		return 1;
	}
	if (p->bound != PEER_UNBOUND &&
	    memcmp(p->pid, h->participant_id.data, COORD_PARTICIPANT_ID_LEN) != 0) {
		refuse_other_id(c, req, p, h);
		return 1;
	}
	if (p->bound != PEER_BOUND)
		return start_bind(c, req, peer, h);
	return accept_participant(c, req, peer, h->incarnation, h->prepared_txids,
				  h->n_prepared_txids);
}

/* ---- an operator's forget ---- */

int coord_identity_forget_blocker(struct coord_server *s, uint32_t peer, char *why,
				  size_t len)
{
	struct peer *p = coord_peer(s, peer);
	size_t open = 0;
	uint64_t first = 0;
	struct u64map_iter it;
	struct coord_txn *t;

	if (p->bound == PEER_UNBOUND) {
		snprintf(why, len, "participant %s is not bound to any participant id", p->name);
		return ADMIN_NOT_FOUND;
	}
	if (coord_conn_get(s, p->conn) || p->binds_inflight) {
		snprintf(why, len, "participant %s is connected (from %s): stop that process "
			 "first; forget is for a participant whose state folder is lost", p->name,
			 p->addr);
		return ADMIN_CONFLICT;
	}
	if (p->forgetting) {
		snprintf(why, len, "a forget of participant %s is already being written", p->name);
		return ADMIN_CONFLICT;
	}
	for (t = u64map_iter_first(&it, &s->txns); t; t = u64map_iter_next(&it))
		if (coord_txn_find_part(t, peer) && open++ == 0)
			first = t->txid;
	u64map_iter_end(&it);
	if (it.nomem) {
		snprintf(why, len, "out of memory");
		return ADMIN_FAILED;
	}
	if (open) {
		snprintf(why, len, "%zu open transaction(s) still name participant %s (txid %"
			 PRIu64 " first): resolve them first (tpcctl txn list, txn show, txn abort)",
			 open, p->name, first);
		return ADMIN_CONFLICT;
	}
	return 0;
}

void coord_identity_unbound(struct coord_server *s, uint32_t peer)
{
	struct peer *p = coord_peer(s, peer);

	memset(p->pid, 0, sizeof(p->pid));
	p->bound = PEER_UNBOUND;
	p->bound_wall_ms = 0;
	p->incarnation = 0;
	coord_peer_release(s, peer); /* unless still referred to; its caller holds no p */
}
