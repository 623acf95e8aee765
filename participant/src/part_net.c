/*
 * part_net.c - the participant's connection to the coordinator: connect, Hello,
 * reconnect with backoff, and the coordinator's messages into the state machine
 * (part_exec.c). The frames the machine's actions send are part_send.c's.
 *
 * D8: the Hello names the state folder's participant id, this process's incarnation
 * and the txids it holds PREPARED (so the coordinator spares them when it aborts what
 * an older incarnation joined); a Join carries the incarnation. ERR_IDENTITY (the name
 * is bound to another folder, or a newer incarnation exists) is fatal: no reconnects,
 * every waiting and later stage call fails with TPC_EIDENTITY, the host is told.
 *
 * Epochs (D7): an epoch in a HelloReply, Prepare or Decision more than max_epoch_jump
 * above the highest seen is refused, logged and never remembered (part_epoch_check): a
 * HelloReply with one drops the connection (and reconnects with backoff), a Prepare or
 * Decision with one is ignored. A Join carries the transaction token of its first write.
 *
 * TLS (cfg.tls_*): the connection is a client-side TLS bufferevent; its CONNECTED event
 * comes after the handshake, so the Hello (and everything after it) only ever goes to
 * a coordinator whose certificate chains to tls_ca and names the host dialled
 * (common/tls.h). A failed handshake is a connection error: logged with OpenSSL's
 * reason, kept in errmsg, and retried with the usual backoff.
 */
#include "part_int.h"
#include "wire_err.h"
#include "broken.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "tls.h"

#define HELLO_TIMEOUT_MS 5000 /* a Hello or its reply lost: give up on the connection */
#define HELLO_MAX_PREPARED 4096 /* txids listed in a Hello (the coordinator may be told fewer) */
#define UNREACH_WARN_MS 30000 /* while unreachable, the WARN line comes again this often */

static void schedule_reconnect(struct tpc_participant *p);

/* The txids whose PREPARED record is durable here (at most HELLO_MAX_PREPARED). */
static uint64_t *prepared_txids(struct tpc_participant *p, size_t *k)
{
	uint64_t *ids = malloc((p->txns.n ? p->txns.n : 1) * sizeof(*ids));
	struct u64map_iter it;

	*k = 0;
	if (!ids)
		return NULL;
	for (struct ptxn *t = u64map_iter_first(&it, &p->txns); t && *k < HELLO_MAX_PREPARED;
	     t = u64map_iter_next(&it))
		if (t->m.state == PS_PREPARED || t->m.state == PS_APPLYING)
			ids[(*k)++] = t->m.txid;
	u64map_iter_end(&it);
	return ids;
}

static void send_hello(struct tpc_participant *p)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;
	size_t n;
	uint64_t *ids = prepared_txids(p, &n);

	h.role = TPC__ROLE__ROLE_PARTICIPANT;
	h.name = p->name;
	h.protocol_version = TPC_PROTOCOL_VERSION;
	h.participant_id = (ProtobufCBinaryData){ PART_ID_LEN, p->id };
	h.incarnation = p->incarnation;
	h.n_prepared_txids = ids ? n : 0;
	h.prepared_txids = ids;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	tpc_wire_send(bufferevent_get_output(p->bev), &env, p->cfg.max_frame);
	free(ids);
}

static void step_txid(struct tpc_participant *p, uint64_t txid, const struct part_event *ev)
{
	struct ptxn *t = u64map_get(&p->txns, txid);
	if (t)
		part_step(p, t, ev);
}

/* ---- fail fast while the coordinator cannot be reached ----
 *
 * down_since_ms is set when the participant starts without a connection and when one
 * is lost; unreach_ev fires unreachable_timeout_ms later. From then on a stage call for
 * a new txid fails with TPC_EUNREACHABLE (participant.c), the ones waiting to send
 * their Join fail with it now, and a WARN line comes at most every UNREACH_WARN_MS. */

static void arm_unreachable(struct tpc_participant *p, uint32_t after_ms)
{
	struct timeval tv = { after_ms / 1000, (after_ms % 1000) * 1000 };

	if (p->unreach_ev)
		evtimer_add(p->unreach_ev, &tv);
}

/* No connection from now on (start, or the connection was lost). */
static void went_down(struct tpc_participant *p)
{
	if (p->down_since_ms)
		return;
	p->down_since_ms = tpc_now_ms();
	arm_unreachable(p, p->cfg.unreachable_timeout_ms);
}

static void on_unreachable(evutil_socket_t fd, short what, void *arg)
{
	struct tpc_participant *p = arg;
	uint64_t down = tpc_now_ms() - p->down_since_ms;

	(void)fd;
	(void)what;
	if (!p->down_since_ms || p->stopping || p->fatal)
		return;
	part_logf(p, TPC_LOG_WARN, "the coordinator at %s has been unreachable for %llu ms (%s); "
		  "new transactions fail with TPC_EUNREACHABLE until it answers", p->coordinator,
		  (unsigned long long)down, p->net_err[0] ? p->net_err : "no connection");
	if (!p->unreachable) {
		p->unreachable = 1;
		part_fail_all_stages(p, TPC_EUNREACHABLE); /* Joins waiting for a connection */
	}
	arm_unreachable(p, UNREACH_WARN_MS);
}

/* The coordinator answered a Hello. */
static void came_up(struct tpc_participant *p)
{
	if (p->unreachable)
		part_logf(p, TPC_LOG_INFO, "the coordinator at %s answers again after %llu ms",
			  coord_addrs_current(&p->addrs),
			  (unsigned long long)(tpc_now_ms() - p->down_since_ms));
	p->unreachable = 0;
	p->down_since_ms = 0;
	p->net_err[0] = '\0';
	if (p->unreach_ev)
		evtimer_del(p->unreach_ev);
}

/* An epoch too far above the highest seen: refuse it, say so, remember nothing. */
static int epoch_jumped(struct tpc_participant *p, uint64_t epoch, const char *what,
			uint64_t txid)
{
	if (part_epoch_check(epoch, p->highest_epoch, p->tcfg.max_epoch_jump) != PART_EPOCH_JUMP)
		return 0;
	char txn[40] = "";

	if (txid)
		snprintf(txn, sizeof(txn), " for txid %llu", (unsigned long long)txid);
	p->stats.epoch_jump_rejected++;
	part_set_err(p, "refused a %s%s with coordinator epoch %llu: more than %llu above the "
		     "highest seen (%llu)", what, txn, (unsigned long long)epoch,
		     (unsigned long long)p->tcfg.max_epoch_jump,
		     (unsigned long long)p->highest_epoch);
	part_logf(p, TPC_LOG_ERROR, "%s; not remembered (a fake or misconfigured coordinator?)",
		  p->errmsg);
	return 1;
}

/* @return -1 to drop the connection (an epoch refused), else 0 */
static int on_hello_reply(struct tpc_participant *p, const Tpc__HelloReply *r)
{
	struct part_event up = { .type = PEV_CONN_UP };

	if (epoch_jumped(p, r->epoch, "HelloReply", 0))
		return -1;
	p->connected = 1;
	p->stats.connected = 1;
	coord_addrs_ok(&p->addrs);
	evtimer_del(p->hello_ev);
	came_up(p);
	if (r->epoch > p->highest_epoch)
		p->highest_epoch = r->epoch;
	part_logf(p, TPC_LOG_INFO, "connected to the coordinator (epoch %llu) at %s",
		  (unsigned long long)r->epoch, coord_addrs_current(&p->addrs));
	part_step_all(p, &up); /* recovered and prepared transactions ask now */
	return 0;
}

static void on_prepare(struct tpc_participant *p, const Tpc__Prepare *m)
{
	struct ptxn *t = u64map_get(&p->txns, m->txid);
	char reason[256]; /* the sink's, for the NO vote: lives through the step */
	struct part_event ev = { .type = PEV_PREPARE, .epoch = m->epoch, .reason = reason };

	if (epoch_jumped(p, m->epoch, "Prepare", m->txid))
		return;
	if (!t) {
		/* Lost (a restart before PREPARED was durable), expired, or never staged. */
		if (m->epoch >= p->highest_epoch)
			part_send_vote(p, m->txid, 0, "unknown transaction at this participant",
				       p->incarnation);
		return;
	}
	reason[0] = '\0';
	if (t->m.state == PS_ACTIVE && m->epoch >= p->highest_epoch)
		ev.sink_ok = part_sink_prepare(p, t, reason, sizeof(reason));
	part_step(p, t, &ev);
}

static void on_decision(struct tpc_participant *p, const Tpc__Decision *m)
{
	struct ptxn *t = u64map_get(&p->txns, m->txid);
	int commit = m->decision == TPC__DECISION_KIND__DECISION_COMMIT;
	struct part_event ev = { .type = PEV_DECISION, .epoch = m->epoch, .commit = commit };

	if (epoch_jumped(p, m->epoch, "Decision", m->txid))
		return;
	if (t) {
		if (commit && tpc_broken("part.ack_before_apply") && t->m.state == PS_PREPARED)
			part_send_ack(p, m->txid); /* BROKEN (test binaries only): ack first */
		part_step(p, t, &ev);
		return;
	}
	if (m->epoch < p->highest_epoch) {
		p->stats.stale_epoch_rejected++;
		return;
	}
	if (commit) {
		/* No PREPARED record: the coordinator cannot have decided COMMIT without our
		 * YES, so this commit was applied and its record dropped. Ack it again. */
		p->stats.duplicate_commits++;
		part_send_ack(p, m->txid);
	}
}

static void on_status_reply(struct tpc_participant *p, const Tpc__StatusReply *m)
{
	struct part_event ev = { .type = PEV_STATUS };

	if (!u64map_get(&p->txns, m->txid) && part_ask_reply(p, m->txid, m->status))
		return; /* asked by tpc_participant_query_status() */
	switch (m->status) {
	case TPC__TXN_STATUS__STATUS_COMMITTED: ev.status = PART_STATUS_COMMITTED; break;
	case TPC__TXN_STATUS__STATUS_ABORTED: ev.status = PART_STATUS_ABORTED; break;
	case TPC__TXN_STATUS__STATUS_FORGOTTEN: ev.status = PART_STATUS_FORGOTTEN; break;
	default: ev.status = PART_STATUS_PENDING; break;
	}
	step_txid(p, m->txid, &ev);
}

/* The coordinator refused who we are: stop for good and tell the host. */
static void on_identity_refused(struct tpc_participant *p, const char *msg)
{
	part_set_err(p, "the coordinator refused participant \"%s\": %s", p->name, msg);
	__atomic_store_n(&p->fatal, TPC_EIDENTITY, __ATOMIC_RELEASE);
	p->stats.connected = 0;
	part_logf(p, TPC_LOG_ERROR, "%s; not reconnecting", p->errmsg);
	part_fail_all_stages(p, TPC_EIDENTITY);
	if (p->cfg.on_fatal)
		p->cfg.on_fatal(p, TPC_EIDENTITY, p->errmsg, p->cfg.fatal_arg);
}

/* A standby of the coordinator's group: go to the leader it names, or to the next. */
static void on_not_leader(struct tpc_participant *p, const Tpc__Error *e)
{
	const char *leader = e->leader ? e->leader : "";
	char was[COORD_ADDR_LEN];

	snprintf(was, sizeof(was), "%s", coord_addrs_current(&p->addrs));
	snprintf(p->net_err, sizeof(p->net_err), "%s is a standby (the leader: %s)", was,
		 *leader ? leader : "not known");
	p->redirect_delay_ms = coord_addrs_not_leader(&p->addrs, leader);
	p->redirected = 1;
	part_logf(p, TPC_LOG_INFO, "the coordinator at %s is not the leader (%s); trying %s",
		  was, *leader ? leader : "no leader known", coord_addrs_current(&p->addrs));
}

static void on_error(struct tpc_participant *p, uint64_t req, const Tpc__Error *e)
{
	const char *msg = e->message ? e->message : "error";

	if (e->code == TPC__ERROR_CODE__ERR_IDENTITY) {
		on_identity_refused(p, msg);
		return;
	}
	if (e->code == TPC__ERROR_CODE__ERR_NOT_LEADER) {
		on_not_leader(p, e);
		return;
	}
	part_set_err(p, "coordinator: %s", msg);
	part_logf(p, TPC_LOG_WARN, "coordinator error for txid %llu: %s",
		 (unsigned long long)e->txid, msg);
	uint64_t txid = req ? req : e->txid;
	struct ptxn *t = txid ? u64map_get(&p->txns, txid) : NULL;
	struct part_event ev = { .type = t && t->m.state == PS_JOINING ? PEV_JOIN_FAILED
								      : PEV_REFUSED,
				 .err = tpc_error_from_wire(e->code) };
	if (t)
		part_step(p, t, &ev);
}

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct tpc_participant *p = arg;
	const char *why;
	Tpc__Envelope *env = tpc_wire_unpack(&p->arena, body, len);

	if (!env || tpc_wire_validate(env, &why)) {
		part_set_err(p, "undecodable message from the coordinator");
		return -1;
	}
	struct part_event ok = { .type = PEV_JOIN_OK };
	switch (env->body_case) {
	case TPC__ENVELOPE__BODY_HELLO_REPLY:
		if (on_hello_reply(p, env->hello_reply))
			return -1; /* on_read drops the connection; it reconnects later */
		break;
	case TPC__ENVELOPE__BODY_JOIN_REPLY: step_txid(p, env->join_reply->txid, &ok); break;
	case TPC__ENVELOPE__BODY_PREPARE: on_prepare(p, env->prepare); break;
	case TPC__ENVELOPE__BODY_DECISION: on_decision(p, env->decision); break;
	case TPC__ENVELOPE__BODY_STATUS_REPLY: on_status_reply(p, env->status_reply); break;
	case TPC__ENVELOPE__BODY_ERROR: on_error(p, env->request_id, env->error); break;
	default: break;
	}
	return p->fatal || p->redirected ? -1 : 0; /* env lives in the arena until the next frame */
}

static void drop_connection(struct tpc_participant *p)
{
	struct part_event down = { .type = PEV_CONN_DOWN };
	int was = p->connected;

	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	tpc_frame_decoder_free(&p->dec);
	evtimer_del(p->hello_ev);
	p->connected = 0;
	p->stats.connected = 0;
	if (was)
		part_logf(p, TPC_LOG_WARN, "lost the coordinator connection");
	if (!p->stopping)
		went_down(p);
	part_step_all(p, &down);
	if (!p->stopping && !p->fatal)
		schedule_reconnect(p);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct tpc_participant *p = arg;
	if (tpc_wire_read(bufferevent_get_input(bev), &p->dec, on_frame, p) != 0)
		drop_connection(p);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct tpc_participant *p = arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		send_hello(p);
		struct timeval tv = { HELLO_TIMEOUT_MS / 1000, 0 };
		evtimer_add(p->hello_ev, &tv);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && !p->connected) {
		int e = EVUTIL_SOCKET_ERROR();
		snprintf(p->net_err, sizeof(p->net_err), "connect: %s",
			 e > 0 ? evutil_socket_error_to_string(e) : "failed");
	} else if (what & BEV_EVENT_EOF && !p->connected) {
		snprintf(p->net_err, sizeof(p->net_err), "it closed the connection before "
			 "answering the Hello");
	}
	if ((what & BEV_EVENT_ERROR) && p->tls && !p->connected) {
		char why[320];
		tpc_tls_describe_error(bev, "handshake failed", why, sizeof(why));
		part_set_err(p, "TLS with the coordinator at %s failed: %s",
			     coord_addrs_current(&p->addrs), why);
		snprintf(p->net_err, sizeof(p->net_err), "TLS: %s", why);
		part_logf(p, TPC_LOG_WARN, "%s; retrying", p->errmsg);
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		drop_connection(p);
}

/* A plain socket bufferevent, or a client-side TLS one checking the coordinator. */
static struct bufferevent *new_bev(struct tpc_participant *p)
{
	SSL *ssl;

	if (!p->tls)
		return bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	ssl = tpc_tls_client_ssl(p->tls, coord_addrs_current(&p->addrs), p->errmsg,
				 sizeof(p->errmsg));
	if (!ssl)
		return NULL;
	return tpc_tls_bev_new(p->base, -1, ssl, 0);
}

static void do_connect(struct tpc_participant *p)
{
	char why[256];

	if (tpc_parse_hostport(coord_addrs_current(&p->addrs), &p->addr, &p->addrlen, why,
			       sizeof(why))) {
		snprintf(p->net_err, sizeof(p->net_err), "%s", why);
		schedule_reconnect(p);
		return;
	}
	p->bev = new_bev(p);
	if (!p->bev) {
		schedule_reconnect(p);
		return;
	}
	tpc_frame_decoder_init(&p->dec, p->cfg.max_frame);
	if (p->tls) { /* a server that never finishes the handshake must not hold us */
		struct timeval tv = { HELLO_TIMEOUT_MS / 1000, 0 };
		evtimer_add(p->hello_ev, &tv);
	}
	bufferevent_setcb(p->bev, on_read, NULL, on_event, p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&p->addr, (int)p->addrlen) < 0)
		drop_connection(p);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
	struct tpc_participant *p = arg;
	if (!p->stopping && !p->fatal && !p->bev) {
		p->stats.reconnects++;
		do_connect(p);
	}
}

static void on_hello_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct tpc_participant *p = arg;
	part_logf(p, TPC_LOG_WARN, "no answer to Hello (or no TLS handshake) within %d ms; "
		  "reconnecting", HELLO_TIMEOUT_MS);
	drop_connection(p);
}

/* The attempt on the current address ended: the next one (coord_addrs.h) after its delay. */
static void schedule_reconnect(struct tpc_participant *p)
{
	uint32_t ms = p->redirected ? p->redirect_delay_ms : coord_addrs_failed(&p->addrs);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	p->redirected = 0;
	evtimer_add(p->reconnect_ev, &tv);
}

int part_net_start(struct tpc_participant *p)
{
	p->reconnect_ev = evtimer_new(p->base, on_reconnect, p);
	p->hello_ev = evtimer_new(p->base, on_hello_timeout, p);
	p->unreach_ev = evtimer_new(p->base, on_unreachable, p);
	if (!p->reconnect_ev || !p->hello_ev || !p->unreach_ev)
		return -ENOMEM;
	p->down_since_ms = 0;
	went_down(p); /* until the first HelloReply */
	do_connect(p);
	return 0;
}

size_t part_net_unsent(struct tpc_participant *p)
{
	return p->bev ? evbuffer_get_length(bufferevent_get_output(p->bev)) : 0;
}

void part_net_stop(struct tpc_participant *p)
{
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	tpc_frame_decoder_free(&p->dec);
	p->connected = 0;
	if (p->reconnect_ev)
		event_free(p->reconnect_ev);
	if (p->hello_ev)
		event_free(p->hello_ev);
	if (p->unreach_ev)
		event_free(p->unreach_ev);
	p->reconnect_ev = p->hello_ev = p->unreach_ev = NULL;
	p->down_since_ms = 0;
	p->unreachable = 0;
}
