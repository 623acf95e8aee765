/*
 * part_send.c - the frames a participant's machine sends the coordinator (Join, Vote,
 * Ack, StatusQuery, OrphanReport), on the connection part_net.c keeps (p->bev). Below part_exec.c,
 * which calls these for the machine's PACT_SEND_* actions; calls nothing above it.
 *
 * Request ids: Join and StatusQuery use the txid as request id, so replies (and
 * errors) find their transaction without a table of outstanding requests.
 * Not connected: nothing is sent; the machine resends what matters after reconnecting.
 */
#include "part_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

static void send_env(struct tpc_participant *p, const Tpc__Envelope *env)
{
	if (!p->bev || !p->connected)
		return; /* the state machine resends what matters after reconnecting */
	int rc = tpc_wire_send(bufferevent_get_output(p->bev), env, p->cfg.max_frame);
	if (rc)
		part_set_err(p, "cannot send %s: %s", tpc_wire_body_name(env->body_case),
			     tpc_strerror(rc));
}

void part_send_join(struct tpc_participant *p, const struct ptxn *t)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Join j = TPC__JOIN__INIT;

	j.txid = t->m.txid;
	j.participant = p->name;
	j.incarnation = p->incarnation;
	if (t->m.has_token)
		j.txn_token = (ProtobufCBinaryData){ sizeof(t->m.token), (uint8_t *)t->m.token };
	env.request_id = t->m.txid;
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &j;
	send_env(p, &env);
}

void part_send_vote(struct tpc_participant *p, uint64_t txid, int yes, const char *reason,
		    uint64_t incarnation)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote v = TPC__VOTE__INIT;

	v.txid = txid;
	v.vote = yes ? TPC__VOTE_KIND__VOTE_YES : TPC__VOTE_KIND__VOTE_NO;
	v.reason = (char *)(reason ? reason : "");
	v.incarnation = incarnation;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &v;
	send_env(p, &env);
	if (yes && p->faults.armed && p->bev && p->connected) {
		/* Put the vote on the wire before the fault point can crash the process. */
		tpc_wire_flush_now(p->bev);
		tpc_fault(&p->faults, TPC_FP_PART_VOTE_AFTER_SEND);
	}
}

void part_send_ack(struct tpc_participant *p, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Ack a = TPC__ACK__INIT;

	a.txid = txid;
	env.body_case = TPC__ENVELOPE__BODY_ACK;
	env.ack = &a;
	send_env(p, &env);
}

void part_send_status_query(struct tpc_participant *p, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__StatusQuery q = TPC__STATUS_QUERY__INIT;

	q.txid = txid;
	env.request_id = txid;
	env.body_case = TPC__ENVELOPE__BODY_STATUS_QUERY;
	env.status_query = &q;
	send_env(p, &env);
}

void part_send_orphan_report(struct tpc_participant *p, Tpc__OrphanReport *rep)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;

	env.body_case = TPC__ENVELOPE__BODY_ORPHAN_REPORT;
	env.orphan_report = rep;
	send_env(p, &env);
}
