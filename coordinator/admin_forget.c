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
 * Owns struct forget_op and the records embedded in it (coord_log_done() hands AUDIT
 * records with txid 0 and UNBIND records here).
 */
#include "admin_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#define MAX_REASON 1024
#define MAX_OPERATOR 128

struct forget_op {
	struct coord_rec rec;       /* must be first: AUDIT, then UNBIND */
	struct coord_admin *a;
	struct evhttp_request *req;
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

static void op_reply_error(struct forget_op *op, int code, const char *why)
{
	admin_reply_error(op->req, code,
			  json_pack("{s:s, s:I}", "participant", op->name, "audit_id",
				    (json_int_t)op->rec.audit_id),
			  "%s", why);
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

/* reason (required) and operator (optional) from the body; 400 (replied) when bad. */
static int parse_body(struct evhttp_request *req, json_t *body, const char **reason,
		      const char **operator)
{
	const char *key;
	json_t *v;

	*reason = *operator = NULL;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "reason") == 0 && json_is_string(v) && json_string_length(v) &&
		    json_string_length(v) <= MAX_REASON)
			*reason = json_string_value(v);
		else if (strcmp(key, "operator") == 0 && json_is_string(v) &&
			 json_string_length(v) <= MAX_OPERATOR)
			*operator = json_string_value(v);
		else if (strcmp(key, "operator") != 0 || !json_is_null(v)) {
			admin_reply_error(req, 400, NULL, "bad field \"%s\" (reason: a string of 1 to "
					  "%d bytes, operator: a string)", key, MAX_REASON);
			return -EINVAL;
		}
	}
	if (!*reason) {
		admin_reply_error(req, 400, NULL, "the body needs {\"reason\": \"...\"}");
		return -EINVAL;
	}
	return 0;
}

static char *audit_text(struct forget_op *op, const struct peer *p, const char *reason,
			const char *operator)
{
	char at[40], bound[40], from[80];
	json_t *e;
	char *text;

	admin_format_time(op->rec.wall_ms, at, sizeof(at));
	admin_format_time(p->bound_wall_ms, bound, sizeof(bound));
	admin_peer_addr(op->req, from, sizeof(from));
	e = json_pack("{s:I, s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
		      (json_int_t)op->rec.audit_id, "at", at, "operator", operator, "peer", from,
		      "action", "forget-participant", "participant", op->name, "participant_id",
		      op->id_hex, "bound_at", bound, "reason", reason);
	text = e ? json_dumps(e, JSON_COMPACT) : NULL;
	json_decref(e);
	return text;
}

static struct forget_op *op_new(struct coord_admin *a, struct evhttp_request *req,
				uint32_t peer, const char *reason, const char *operator)
{
	struct peer *p = coord_peer(a->srv, peer);
	struct forget_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->a = a;
	op->req = req;
	op->peer = peer;
	op->name = strdup(p->name);
	coord_participant_id_hex(p->pid, op->id_hex);
	op->rec.type = COORD_REC_AUDIT;
	op->rec.txid = 0; /* about a participant, not a transaction */
	op->rec.wall_ms = tpc_wall_ms();
	op->rec.owner = op;
	op->rec.audit_id = a->next_audit_id++;
	op->text = op->name ? audit_text(op, p, reason, operator) : NULL;
	if (!op->text) {
		op_free(op);
		return NULL;
	}
	op->rec.text = op->text;
	op->rec.text_len = strlen(op->text);
	return op;
}

void admin_forget_participant(struct coord_admin *a, struct evhttp_request *req,
			      const char *raw_name, json_t *body)
{
	struct coord_server *s = a->srv;
	char *name = evhttp_uridecode(raw_name, 0, NULL);
	const char *reason, *operator;
	char why[512];
	uint32_t peer = name ? find_peer(s, name) : 0;
	struct forget_op *op;
	int code;

	if (!body) {
		admin_reply_error(req, 400, NULL, "the body needs {\"reason\": \"...\"}");
		goto out;
	}
	if (parse_body(req, body, &reason, &operator))
		goto out;
	if (!peer) {
		admin_reply_error(req, 404, NULL, "no participant named \"%s\" is known",
				  name ? name : raw_name);
		goto out;
	}
	code = coord_identity_forget_blocker(s, peer, why, sizeof(why));
	if (code) {
		admin_reply_error(req, code, json_pack("{s:s}", "participant", name), "%s", why);
		goto out;
	}
	op = op_new(a, req, peer, reason, operator);
	if (!op) {
		admin_reply_error(req, 500, NULL, "out of memory");
		goto out;
	}
	coord_peer(s, peer)->forgetting = 1;
	tpc_logf(&s->log, TPC_LOG_INFO, "operator call: %s", op->text);
	batch_writer_submit(s->writer, &op->rec.item); /* carried out once it is durable */
out:
	free(name);
	json_decref(body);
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
		op_reply_error(op, 500, "the audit entry could not be written; nothing was changed");
		return;
	}
	if (s->stopping) {
		op_reply_error(op, 503, "shutting down: the audit entry was written but the "
			       "binding was not removed");
		return;
	}
	code = coord_identity_forget_blocker(s, op->peer, why, sizeof(why));
	if (code) {
		op_reply_error(op, code, why);
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
		op_reply_error(op, 500, "the binding could not be removed from the log; nothing "
			       "was changed (the audit entry records the attempt)");
		return;
	}
	coord_identity_unbound(s, op->peer);
	tpc_logf(&s->log, TPC_LOG_WARN, "participant name %s forgotten by an operator (it was "
		 "bound to id %s; audit entry %" PRIu64 "): the next state folder to say Hello "
		 "under it takes it", op->name, op->id_hex, op->rec.audit_id);
	admin_reply_json(op->req, 200,
			 json_pack("{s:s, s:s, s:I}", "participant", op->name,
				   "forgotten_participant_id", op->id_hex, "audit_id",
				   (json_int_t)op->rec.audit_id));
	op_free(op);
}

void coord_forget_logged(struct coord_server *s, struct coord_rec *r, int status)
{
	struct forget_op *op = r->owner;

	(void)s;
	if (r->type == COORD_REC_AUDIT)
		audit_done(op, status);
	else
		unbind_done(op, status);
}
