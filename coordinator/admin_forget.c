/*
 * admin_forget.c - POST /v1/participants/{name}/forget (docs/admin-api.md): an operator
 * removes a participant name's binding to its participant id (rule D8), for a
 * participant whose state folder is really lost, so a new folder may take the name.
 *
 * Steps, all on the loop thread:
 *   1. refuse (409) while that participant is connected or while an open transaction
 *      still names it (identity.c says which), 404 when the name is not bound;
 *   2. mark the name "forgetting" (a Hello under it is asked to retry meanwhile) and
 *      write the audit entry (COORD_REC_AUDIT with no txid) through the batch writer:
 *      nothing changes before it is on disk;
 *   3. then the UNBIND record; once it is durable the binding goes from memory too and
 *      the operator hears 200.
 * It speaks no HTTP: admin.c parses the request and words the answer (admin_int.h).
 * Owns struct forget_op and the records embedded in it (their done() is this file's).
 */
#include "admin_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct forget_op {
	struct coord_rec rec;       /* must be first: AUDIT, then UNBIND */
	struct coord_admin *a;
	admin_answer_fn answer;
	void *arg;                  /* the answer's */
	uint32_t peer;
	char *name;
	char *text;                 /* the audit entry (JSON) */
	char id_hex[2 * COORD_PARTICIPANT_ID_LEN + 1];
};

static void op_free(struct forget_op *op)
{
	free(op->name);
	free(op->text);
	free(op);
}

static void op_reply_error(struct forget_op *op, enum admin_code code, const char *why)
{
	struct admin_result r = { .participant = op->name, .audit_id = op->rec.audit_id };

	admin_result_fail(&r, code, "%s", why);
	op->answer(op->arg, &r);
	op_free(op);
}

/* The peer with this name, without registering it; 0 when unknown. */
static uint32_t find_peer(struct coord_server *s, const char *name)
{
	for (uint32_t i = 0; i < s->npeers; i++)
		if (s->peers[i].name && strcmp(s->peers[i].name, name) == 0)
			return i + 1;
	return 0;
}

static char *audit_text(struct forget_op *op, const struct peer *p,
			const struct admin_args *args)
{
	char at[40], bound[40];
	json_t *e;
	char *text;

	tpc_format_wall_ms(op->rec.wall_ms, at, sizeof(at));
	tpc_format_wall_ms(p->bound_wall_ms, bound, sizeof(bound));
	e = json_pack("{s:I, s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
		      (json_int_t)op->rec.audit_id, "at", at, "operator", args->operator, "peer",
		      args->from, "action", "forget-participant", "participant", op->name,
		      "participant_id", op->id_hex, "bound_at", bound, "reason", args->reason);
	text = e ? json_dumps(e, JSON_COMPACT) : NULL;
	json_decref(e);
	return text;
}

static void forget_logged(struct coord_server *s, struct coord_rec *r, int status);

static struct forget_op *op_new(struct coord_admin *a, uint32_t peer,
				const struct admin_args *args)
{
	struct peer *p = coord_peer(a->srv, peer);
	struct forget_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->a = a;
	op->peer = peer;
	op->name = strdup(p->name);
	coord_participant_id_hex(p->pid, op->id_hex);
	op->rec.type = COORD_REC_AUDIT;
	op->rec.txid = 0; /* about a participant, not a transaction */
	op->rec.wall_ms = tpc_wall_ms();
	op->rec.owner = op;
	op->rec.done = forget_logged;
	op->rec.audit_id = a->next_audit_id++;
	op->text = op->name ? audit_text(op, p, args) : NULL;
	if (!op->text) {
		op_free(op);
		return NULL;
	}
	op->rec.text = op->text;
	op->rec.text_len = strlen(op->text);
	return op;
}

void admin_forget_participant(struct coord_admin *a, const char *name,
			      const struct admin_args *args, admin_answer_fn answer, void *arg)
{
	struct coord_server *s = a->srv;
	struct admin_result r = { 0 };
	uint32_t peer = find_peer(s, name);
	struct forget_op *op;

	if (!peer) {
		admin_result_fail(&r, ADMIN_NOT_FOUND, "no participant named \"%s\" is known", name);
		goto refused;
	}
	r.code = coord_identity_forget_blocker(s, peer, r.why, sizeof(r.why));
	if (r.code) {
		r.participant = name;
		goto refused;
	}
	op = op_new(a, peer, args);
	if (!op) {
		admin_result_fail(&r, ADMIN_FAILED, "out of memory");
		goto refused;
	}
	op->answer = answer;
	op->arg = arg;
	coord_peer(s, peer)->forgetting = 1;
	tpc_logf(&s->log, TPC_LOG_INFO, "operator call: %s", op->text);
	batch_writer_submit(s->writer, &op->rec.item); /* carried out once it is durable */
	return;
refused:
	answer(arg, &r);
}

/* The audit entry is durable: look again, then write the UNBIND. */
static void audit_done(struct forget_op *op, int status)
{
	struct coord_server *s = op->a->srv;
	struct peer *p = coord_peer(s, op->peer);
	char why[512];
	int code;

	p->forgetting = 0;
	if (status < 0) {
		op_reply_error(op, ADMIN_FAILED, "the audit entry could not be written; nothing was changed");
		return;
	}
	if (s->stopping) {
		op_reply_error(op, ADMIN_UNAVAILABLE, "shutting down: the audit entry was written but the "
			       "binding was not removed");
		return;
	}
	code = coord_identity_forget_blocker(s, op->peer, why, sizeof(why));
	if (code) {
		op_reply_error(op, (enum admin_code)code, why);
		return;
	}
	p->forgetting = 1;
	memset(&op->rec.item, 0, sizeof(op->rec.item));
	op->rec.type = COORD_REC_UNBIND;
	op->rec.name = op->name;
	op->rec.name_len = strlen(op->name);
	op->rec.batch_n = 0;
	batch_writer_submit(s->writer, &op->rec.item);
}

static void unbind_done(struct forget_op *op, int status)
{
	struct coord_server *s = op->a->srv;

	coord_peer(s, op->peer)->forgetting = 0;
	if (status < 0) {
		op_reply_error(op, ADMIN_FAILED, "the binding could not be removed from the log; nothing "
			       "was changed (the audit entry records the attempt)");
		return;
	}
	coord_identity_unbound(s, op->peer);
	tpc_logf(&s->log, TPC_LOG_WARN, "participant name %s forgotten by an operator (it was "
		 "bound to id %s; audit entry %" PRIu64 "): the next state folder to say Hello "
		 "under it takes it", op->name, op->id_hex, op->rec.audit_id);
	struct admin_result r = { .participant = op->name, .forgotten_id = op->id_hex,
				  .audit_id = op->rec.audit_id };
	op->answer(op->arg, &r);
	op_free(op);
}

static void forget_logged(struct coord_server *s, struct coord_rec *r, int status)
{
	struct forget_op *op = r->owner;

	(void)s;
	if (r->type == COORD_REC_AUDIT)
		audit_done(op, status);
	else
		unbind_done(op, status);
}
