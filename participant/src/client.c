/*
 * client.c - libtpc's initiator API (tpc/client.h, tpc_client_attach in tpc/libevent.h):
 * one connection to the coordinator, made on the first request and again on the first
 * request after it dropped, with any number of requests pipelined over it.
 *
 * Owns: a copy of the configuration, the connection (a bufferevent and its frame
 * decoder), the table of requests sent and not yet answered, one timer, and in blocking
 * mode a private event_base.
 *
 *   request life:  submit --(frame queued on the connection)--> pending
 *                  pending --reply with its request_id---------> done (cb runs)
 *                  pending --request_timeout_ms passed---------> done (-ETIMEDOUT)
 *                  pending --its connection dropped------------> done (TPC_ECLOSED, or the
 *                                                                 code of an Error the
 *                                                                 coordinator sent first)
 *                  pending --its connect failed / timed out----> done (TPC_EUNREACHABLE)
 *                  pending --tpc_client_free-------------------> done (TPC_ECLOSED)
 *   A Commit or Abort that fails gets TPC_OUTCOME_UNKNOWN; reasons and messages live on
 *   the handle (tpc_client_errmsg) and, for outcome callbacks, in the reason argument.
 *
 * Invariants:
 *  - every queued request's callback runs exactly once, and a request whose submit call
 *    returned an error never runs its callback;
 *  - the pending list is in submit order, which is also deadline order (one timeout for
 *    every request), so the timer only looks at its head; each request remembers the
 *    connection generation it was written to, so failing a dropped connection's requests
 *    leaves alone the ones its callbacks submitted on the next connection;
 *  - Hello is the first frame of every connection: it is queued before the connect starts;
 *  - user callbacks may call any function of the client, tpc_client_free included: the
 *    memory is released when the outermost callback frame returns (depth counter).
 *
 * Modes: detached until the first blocking call (private base: MODE_BLOCKING) or
 * tpc_client_attach (the caller's base: MODE_ATTACHED); the mode never changes after.
 * The library never runs an attached base; in blocking mode it runs its own base with
 * EVLOOP_ONCE until the request completes.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <event2/bufferevent_ssl.h>

#include "coord_addrs.h"
#include "tls.h"
#include "wire_err.h"
#include "frame.h"
#include "list.h"
#include "maps.h"
#include "tpc/client.h"
#include "tpc/libevent.h"
#include "util.h"
#include "wire.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define DEFAULT_REQUEST_TIMEOUT_MS 30000u
#define RETRY_MIN_MS 50          /* backoff between addresses (coord_addrs.h) */
#define RETRY_MAX_MS 500
#define ATTEMPT_MIN_MS 200       /* a connect attempt's own deadline, with a list */

enum client_mode { MODE_NONE, MODE_ATTACHED, MODE_BLOCKING };

enum req_kind { REQ_BEGIN, REQ_COMMIT, REQ_ABORT, REQ_STATUS };

/* The callback of a request; which member is set follows its kind. */
union creq_cb {
	tpc_begin_cb begin;
	tpc_begin_token_cb begin_token; /* a Begin with with_token set */
	tpc_outcome_cb outcome;
	tpc_status_cb status;
};

/* One request sent and not answered yet. */
struct creq {
	struct list_node link;    /* first: the pending list, in submit (= deadline) order */
	uint64_t id;              /* request_id on the wire; key in c->reqs */
	uint64_t gen;             /* connection generation it was written to; 0: not sent
				     (waiting for the next address to be tried) */
	uint64_t deadline_ms;
	uint64_t txid;            /* 0 for a Begin */
	enum req_kind kind;
	int with_token;           /* a Begin whose callback also takes the token */
	char *key;                /* Begin: its key (owned), to send it again elsewhere */
	char *reason;             /* Abort: its reason (owned) */
	uint32_t timeout_ms;      /* Begin */
	union creq_cb cb;
	void *arg;
};

/* What a reply carries to a callback. */
struct creply {
	uint64_t txid;
	tpc_begin_result begin;
	const uint8_t *token;     /* Begin: TPC_TXN_TOKEN_LEN bytes, or NULL */
	tpc_outcome outcome;
	tpc_status status;
	const char *reason;
};

struct tpc_client {
	tpc_client_config cfg;
	char *coordinator, *name;    /* owned copies behind cfg's strings */
	char *tls_cert, *tls_key, *tls_ca;
	SSL_CTX *tls;                /* made at the first connection when TLS files are set */
	struct coord_addrs addrs;    /* cfg.coordinator's list, the leader hint, the backoff */
	struct sockaddr_storage addr; /* coord_addrs_current(), resolved at each connect */
	socklen_t addrlen;
	uint64_t down_since_ms;      /* no address worked since (0: the last one did) */
	uint64_t retry_at_ms;        /* the next address is tried then (0: not waiting) */
	int not_leader;              /* the connection's coordinator said ERR_NOT_LEADER */
	char leader_hint[COORD_ADDR_LEN]; /* ... naming this leader ("" none) */

	enum client_mode mode;
	struct event_base *base;     /* the caller's (attached) or ours (blocking) */
	struct event *timer;         /* request deadlines and the connect deadline */
	uint64_t timer_at_ms;        /* when the timer is due; 0: not armed */

	struct bufferevent *bev;     /* NULL: no connection */
	struct tpc_frame_decoder dec;
	uint64_t gen;                /* incremented for every new connection */
	int connecting;              /* connect not completed yet */
	uint64_t connect_started_ms, connect_deadline_ms;
	int conn_err;                /* an Error the coordinator sent before closing */

	uint64_t next_id;
	uint64_t hello_id;           /* request_id of the current connection's Hello */
	struct u64map reqs;          /* request_id -> struct creq * */
	struct list pending;         /* struct creq, oldest (= earliest deadline) first */

	int depth;                   /* nested callback frames running right now */
	int freeing;                 /* tpc_client_free was called */
	char errmsg[256];
	tpc_client_outcome last;     /* the last Outcome received (tpc_client_last_outcome) */
};

/* ---- small helpers ---------------------------------------------------------------- */

static int set_err(struct tpc_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Keep a message on the handle and pass @p code through. */
static int set_err(struct tpc_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

static const char *cur_addr(const struct tpc_client *c)
{
	return coord_addrs_current(&c->addrs);
}

static const char *kind_name(enum req_kind k)
{
	switch (k) {
	case REQ_BEGIN: return "begin";
	case REQ_COMMIT: return "commit";
	case REQ_ABORT: return "abort";
	case REQ_STATUS: return "status";
	}
	return "request";
}

/* ---- the pending list ----------------------------------------------------------------- */

/* The oldest pending request (the earliest deadline), or NULL. */
static struct creq *oldest(const struct tpc_client *c)
{
	return (struct creq *)c->pending.head;
}

/* ---- the timer ------------------------------------------------------------------------ */

/* Aim the timer at the earliest of the head request's deadline and the connect deadline. */
static void arm_timer(struct tpc_client *c)
{
	struct creq *head = oldest(c);
	uint64_t at = head ? head->deadline_ms : 0;

	if (c->connecting && c->bev && (!at || c->connect_deadline_ms < at))
		at = c->connect_deadline_ms;
	if (c->retry_at_ms && (!at || c->retry_at_ms < at))
		at = c->retry_at_ms;
	if (!c->timer)
		return;
	if (!at) {
		/* Nothing to wait for: leave no event behind in the caller's loop. */
		evtimer_del(c->timer);
		c->timer_at_ms = 0;
		return;
	}
	if (c->timer_at_ms && c->timer_at_ms <= at)
		return; /* fires earlier already; it re-aims itself then */
	uint64_t now = tpc_now_ms();
	uint64_t delay = at > now ? at - now : 0;
	struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
	if (evtimer_add(c->timer, &tv) == 0)
		c->timer_at_ms = at;
}

/* ---- completing requests -------------------------------------------------------------- */

/* Take @p r off the books and run its callback once; frees @p r. */
static void finish(struct tpc_client *c, struct creq *r, int err, const struct creply *rep)
{
	const char *reason = rep && rep->reason ? rep->reason : NULL;
	uint64_t txid = rep && rep->txid ? rep->txid : r->txid;
	char msg[sizeof(c->errmsg)];

	if (!reason) {
		/* A failure's reason is the handle's message, copied: the callback may
		 * overwrite the handle's. */
		memcpy(msg, err ? c->errmsg : "", err ? sizeof(msg) : 1);
		reason = msg;
	}
	list_unlink(&c->pending, &r->link);
	u64map_del(&c->reqs, r->id);
	c->depth++;
	switch (r->kind) {
	case REQ_BEGIN:
		if (r->with_token)
			r->cb.begin_token(r->arg, err, err ? 0 : txid,
					  err ? TPC_BEGIN_STARTED : rep->begin,
					  err ? NULL : rep->token);
		else
			r->cb.begin(r->arg, err, err ? 0 : txid,
				    err ? TPC_BEGIN_STARTED : rep->begin);
		break;
	case REQ_COMMIT:
	case REQ_ABORT:
		r->cb.outcome(r->arg, err, r->txid, err ? TPC_OUTCOME_UNKNOWN : rep->outcome,
			      reason);
		break;
	case REQ_STATUS:
		r->cb.status(r->arg, err, r->txid, err ? TPC_STATUS_PENDING : rep->status);
		break;
	}
	c->depth--;
	free(r->key);
	free(r->reason);
	free(r);
}

/*
 * Fail every pending request written to a connection of generation <= @p gen, oldest
 * first, with @p err and the handle's current message as the reason. Callbacks may
 * submit new requests (a newer generation, at the tail): those stay.
 */
static void fail_pending(struct tpc_client *c, uint64_t gen, int err)
{
	char reason[sizeof(c->errmsg)];
	struct creq *r;

	memcpy(reason, c->errmsg, sizeof(reason)); /* callbacks may overwrite errmsg */
	while ((r = oldest(c)) && r->gen <= gen) {
		struct creply rep = { .reason = reason };
		finish(c, r, err, &rep);
	}
}

/* Release everything; the client must be out of every callback frame. */
static void client_release(struct tpc_client *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	tpc_frame_decoder_free(&c->dec);
	if (c->timer)
		event_free(c->timer);
	if (c->mode == MODE_BLOCKING && c->base)
		event_base_free(c->base);
	u64map_free(&c->reqs);
	free(c->coordinator);
	free(c->name);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	SSL_CTX_free(c->tls);
	free(c);
}

/* End a libevent callback frame. @return 1 if the client was released: stop touching it. */
static int leave(struct tpc_client *c)
{
	if (--c->depth == 0 && c->freeing) {
		client_release(c);
		return 1;
	}
	return 0;
}

/* ---- the connection ------------------------------------------------------------------- */

/*
 * Close the connection and fail what was written to it with @p err (a Commit's outcome
 * is then UNKNOWN). The message, already on the handle, becomes the callbacks' reason.
 */
static void drop_connection(struct tpc_client *c, int err)
{
	uint64_t gen = c->gen;

	if (!c->bev)
		return;
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->connecting = 0;
	tpc_frame_decoder_free(&c->dec);
	if (c->conn_err)
		err = c->conn_err; /* the coordinator said why before closing */
	c->conn_err = 0;
	fail_pending(c, gen, err);
	if (!c->freeing)
		arm_timer(c);
}

static int send_env(struct tpc_client *c, Tpc__Envelope *env)
{
	int rc = tpc_wire_send(bufferevent_get_output(c->bev), env, c->cfg.max_frame);

	if (rc)
		return set_err(c, rc, "cannot send %s: %s", tpc_wire_body_name(env->body_case),
			       tpc_strerror(rc));
	return 0;
}

static void send_hello(struct tpc_client *c)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;

	h.role = TPC__ROLE__ROLE_CLIENT;
	h.name = c->name ? c->name : "";
	h.protocol_version = TPC_PROTOCOL_VERSION;
	env.request_id = c->hello_id = ++c->next_id;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(c, &env); /* a few bytes into an empty buffer: fails only without memory */
}

static void on_begin_reply(struct tpc_client *c, struct creq *r, const Tpc__BeginReply *m)
{
	struct creply rep = { .txid = m->txid };

	switch (m->result) {
	case TPC__BEGIN_RESULT__BEGIN_STARTED: rep.begin = TPC_BEGIN_STARTED; break;
	case TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED: rep.begin = TPC_BEGIN_ALREADY_COMMITTED; break;
	case TPC__BEGIN_RESULT__BEGIN_PENDING: rep.begin = TPC_BEGIN_PENDING; break;
	default:
		set_err(c, 0, "coordinator sent an unknown begin result %d", (int)m->result);
		finish(c, r, TPC_EPROTO, NULL);
		return;
	}
	if (m->txid == 0) {
		set_err(c, 0, "coordinator answered begin without a txid");
		finish(c, r, TPC_EPROTO, NULL);
		return;
	}
	if (m->txn_token.len != 0 && m->txn_token.len != TPC_TXN_TOKEN_LEN) {
		set_err(c, 0, "coordinator sent a transaction token of %zu bytes",
			m->txn_token.len);
		finish(c, r, TPC_EPROTO, NULL);
		return;
	}
	if (rep.begin == TPC_BEGIN_STARTED && m->txn_token.len)
		rep.token = m->txn_token.data; /* older coordinators send none */
	finish(c, r, 0, &rep);
}

/* Keep every field of an Outcome for tpc_client_last_outcome(). */
static void keep_outcome(struct tpc_client *c, const Tpc__Outcome *m, tpc_outcome o)
{
	tpc_client_outcome *l = &c->last;

	l->txid = m->txid;
	l->outcome = o;
	snprintf(l->reason, sizeof(l->reason), "%s", m->reason ? m->reason : "");
	snprintf(l->participant, sizeof(l->participant), "%s",
		 m->abort_participant ? m->abort_participant : "");
	snprintf(l->participant_reason, sizeof(l->participant_reason), "%s",
		 m->abort_reason ? m->abort_reason : "");
}

int tpc_client_last_outcome(const tpc_client *c, tpc_client_outcome *out)
{
	if (!c || !out)
		return -EINVAL;
	*out = c->last;
	return c->last.txid ? 0 : -ENOENT;
}

static void on_outcome(struct tpc_client *c, struct creq *r, const Tpc__Outcome *m)
{
	struct creply rep = { .reason = m->reason };

	switch (m->outcome) {
	case TPC__OUTCOME_KIND__OUTCOME_COMMITTED: rep.outcome = TPC_OUTCOME_COMMITTED; break;
	case TPC__OUTCOME_KIND__OUTCOME_ABORTED: rep.outcome = TPC_OUTCOME_ABORTED; break;
	case TPC__OUTCOME_KIND__OUTCOME_FORGOTTEN: rep.outcome = TPC_OUTCOME_FORGOTTEN; break;
	default: rep.outcome = TPC_OUTCOME_UNKNOWN; break; /* the coordinator does not know */
	}
	keep_outcome(c, m, rep.outcome);
	finish(c, r, 0, &rep);
}

static void on_status_reply(struct tpc_client *c, struct creq *r, const Tpc__StatusReply *m)
{
	struct creply rep = { 0 };

	switch (m->status) {
	case TPC__TXN_STATUS__STATUS_PENDING: rep.status = TPC_STATUS_PENDING; break;
	case TPC__TXN_STATUS__STATUS_COMMITTED: rep.status = TPC_STATUS_COMMITTED; break;
	case TPC__TXN_STATUS__STATUS_ABORTED: rep.status = TPC_STATUS_ABORTED; break;
	case TPC__TXN_STATUS__STATUS_FORGOTTEN: rep.status = TPC_STATUS_FORGOTTEN; break;
	default:
		set_err(c, 0, "coordinator sent an unknown status %d", (int)m->status);
		finish(c, r, TPC_EPROTO, NULL);
		return;
	}
	finish(c, r, 0, &rep);
}

static void on_error(struct tpc_client *c, uint64_t request_id, struct creq *r,
		     const Tpc__Error *m)
{
	const char *msg = m->message && m->message[0] ? m->message : "error without a message";
	int err = tpc_error_from_wire(m->code);

	if (!r && request_id && request_id != c->hello_id)
		return; /* the answer to a request that timed out */
	set_err(c, 0, "%s", msg);
	if (m->code == TPC__ERROR_CODE__ERR_NOT_LEADER) {
		/* A standby: it served nothing on this connection; on_frame moves on. */
		c->not_leader = 1;
		c->conn_err = err;
		snprintf(c->leader_hint, sizeof(c->leader_hint), "%s", m->leader ? m->leader : "");
		return;
	}
	if (!r) {
		/* About the connection itself: the coordinator is closing it. */
		c->conn_err = err;
		return;
	}
	struct creply rep = { .reason = msg };
	finish(c, r, err, &rep);
}

/* A reply whose body does not answer the request it names. */
static void on_mismatch(struct tpc_client *c, struct creq *r, Tpc__Envelope__BodyCase body)
{
	set_err(c, 0, "coordinator answered %s with %s", kind_name(r->kind),
		tpc_wire_body_name(body));
	finish(c, r, TPC_EPROTO, NULL);
}

static void dispatch(struct tpc_client *c, const Tpc__Envelope *env)
{
	struct creq *r = env->request_id ? u64map_get(&c->reqs, env->request_id) : NULL;
	Tpc__Envelope__BodyCase body = env->body_case;

	if (body == TPC__ENVELOPE__BODY_ERROR) {
		on_error(c, env->request_id, r, env->error);
		return;
	}
	if (body == TPC__ENVELOPE__BODY_HELLO_REPLY) {
		coord_addrs_ok(&c->addrs); /* the leader (or a coordinator without a group) */
		c->down_since_ms = 0;
		return;
	}
	if (!r)
		return; /* the answer to a request that timed out */
	if (body == TPC__ENVELOPE__BODY_BEGIN_REPLY && r->kind == REQ_BEGIN)
		on_begin_reply(c, r, env->begin_reply);
	else if (body == TPC__ENVELOPE__BODY_OUTCOME &&
		 (r->kind == REQ_COMMIT || r->kind == REQ_ABORT))
		on_outcome(c, r, env->outcome);
	else if (body == TPC__ENVELOPE__BODY_STATUS_REPLY && r->kind == REQ_STATUS)
		on_status_reply(c, r, env->status_reply);
	else
		on_mismatch(c, r, body);
}

static void undelivered(struct tpc_client *c, int err, int not_leader);

/* One frame. 0: go on; 1: stop (the connection or the client went away); 2: bad input. */
static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct tpc_client *c = arg;
	uint64_t gen = c->gen;
	const char *why = NULL;
	Tpc__Envelope *env = tpc__envelope__unpack(NULL, len, body);

	if (!env) {
		set_err(c, 0, "coordinator sent an undecodable frame");
		return 2;
	}
	if (tpc_wire_validate(env, &why)) {
		set_err(c, 0, "coordinator sent an invalid %s: %s",
			tpc_wire_body_name(env->body_case), why);
		tpc__envelope__free_unpacked(env, NULL);
		return 2;
	}
	dispatch(c, env);
	tpc__envelope__free_unpacked(env, NULL);
	if (c->not_leader && !c->freeing && c->bev && c->gen == gen) {
		undelivered(c, c->conn_err, 1);
		return 1;
	}
	return c->freeing || !c->bev || c->gen != gen ? 1 : 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct tpc_client *c = arg;

	c->depth++;
	int rc = tpc_wire_read(bufferevent_get_input(bev), &c->dec, on_frame, c);
	if (rc == 2 || (rc < 0 && rc != -ENOMEM)) {
		if (rc < 0)
			set_err(c, 0, "coordinator sent a bad frame (%s)",
				rc == TPC_FRAME_ERR_TOO_BIG ? "larger than max_frame" : "empty");
		drop_connection(c, TPC_EPROTO);
	} else if (rc == -ENOMEM) {
		set_err(c, 0, "out of memory reading from the coordinator");
		drop_connection(c, -ENOMEM);
	}
	if (!c->freeing)
		arm_timer(c); /* disarms it once nothing is pending */
	leave(c);
}

/*
 * The connect failed: nothing was delivered. Requests fail with TPC_EUNREACHABLE, the
 * errmsg naming the socket's error (connection refused, ...) when libevent left one.
 */
static int connect_failed(struct tpc_client *c, int sockerr)
{
	int usable = sockerr > 0 && sockerr != EAGAIN && sockerr != EINPROGRESS &&
		     sockerr != EINTR;
	char why[320];

	if (c->bev && tpc_tls_is_tls(c->bev)) { /* TCP or TLS: OpenSSL's reason says which */
		tpc_tls_describe_error(c->bev, "", why, sizeof(why));
		if (why[0] || !usable)
			return set_err(c, TPC_ETLS, "TLS with the coordinator at %s failed: %s",
				       cur_addr(c), why[0] ? why : "the handshake did not "
				       "complete (does the coordinator speak TLS?)");
	}

	set_err(c, 0, "cannot connect to the coordinator at %s: %s", cur_addr(c),
		usable ? evutil_socket_error_to_string(sockerr) : "connection failed");
	return TPC_EUNREACHABLE; /* errmsg keeps the socket's reason */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct tpc_client *c = arg;
	int sockerr = EVUTIL_SOCKET_ERROR();

	c->depth++;
	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->connecting = 0;
		arm_timer(c);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		int err = TPC_ECLOSED;
		if (c->conn_err)
			; /* keep the reason the coordinator gave in its Error */
		else if (c->connecting) {
			undelivered(c, connect_failed(c, sockerr), 0);
			leave(c);
			return;
		} else if (what & BEV_EVENT_EOF)
			set_err(c, 0, "the coordinator at %s closed the connection", cur_addr(c));
		else
			set_err(c, 0, "connection to the coordinator at %s lost: %s", cur_addr(c),
				sockerr > 0 ? evutil_socket_error_to_string(sockerr) : "error");
		drop_connection(c, err);
	}
	leave(c);
}

static void reconnect_now(struct tpc_client *c);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tpc_client *c = arg;
	uint64_t now = tpc_now_ms();
	struct creq *r;

	c->depth++;
	c->timer_at_ms = 0;
	if (c->bev && c->connecting && c->connect_deadline_ms <= now) {
		set_err(c, 0, "cannot connect to the coordinator at %s within %u ms",
			cur_addr(c), (unsigned)(c->connect_deadline_ms - c->connect_started_ms));
		undelivered(c, TPC_EUNREACHABLE, 0);
	}
	if (!c->freeing && !c->bev && c->retry_at_ms && c->retry_at_ms <= now)
		reconnect_now(c);
	while (!c->freeing && (r = oldest(c)) && r->deadline_ms <= now) {
		set_err(c, 0, "no reply to %s within %u ms", kind_name(r->kind),
			(unsigned)c->cfg.request_timeout_ms);
		struct creply rep = { .reason = "request timed out" };
		finish(c, r, -ETIMEDOUT, &rep);
	}
	if (!c->freeing)
		arm_timer(c);
	leave(c);
}

/* A plain socket bufferevent, or a client-side TLS one (the context made on first use). */
static int new_bev(struct tpc_client *c)
{
	struct tpc_tls_files f = { c->tls_cert, c->tls_key, c->tls_ca };
	SSL *ssl;

	if (!tpc_tls_files_given(&f)) {
		c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
		return c->bev ? 0 : set_err(c, -ENOMEM, "cannot create a connection");
	}
	if (!c->tls && !(c->tls = tpc_tls_ctx_new(TPC_TLS_CLIENT, &f, c->errmsg,
						  sizeof(c->errmsg))))
		return TPC_ETLS;
	ssl = tpc_tls_client_ssl(c->tls, cur_addr(c), c->errmsg, sizeof(c->errmsg));
	if (!ssl)
		return TPC_ETLS;
	c->bev = tpc_tls_bev_new(c->base, -1, ssl, 0);
	if (!c->bev)
		return set_err(c, -ENOMEM, "cannot create a connection");
	return 0;
}

/*
 * Start a connection to the current address (Hello queued, connect started). A connect
 * attempt has connect_timeout_ms; with a list, its share of it (at least ATTEMPT_MIN_MS),
 * so that one address that swallows packets leaves time for the others.
 */
static int start_connection(struct tpc_client *c)
{
	char why[256];
	uint32_t attempt = c->cfg.connect_timeout_ms;
	int rc;

	if (tpc_parse_hostport(cur_addr(c), &c->addr, &c->addrlen, why, sizeof(why)))
		return set_err(c, TPC_EUNREACHABLE, "coordinator address %s: %s", cur_addr(c), why);
	rc = new_bev(c);
	if (rc)
		return rc;
	c->gen++;
	c->conn_err = 0;
	c->not_leader = 0;
	tpc_frame_decoder_init(&c->dec, c->cfg.max_frame);
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	send_hello(c); /* first on the wire, flushed once connected */
	c->connecting = 1;
	if (c->addrs.n > 1) {
		attempt /= (uint32_t)c->addrs.n;
		attempt = attempt < ATTEMPT_MIN_MS ? ATTEMPT_MIN_MS : attempt;
	}
	c->connect_started_ms = tpc_now_ms();
	c->connect_deadline_ms = c->connect_started_ms + attempt;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr, (int)c->addrlen) < 0) {
		int err = connect_failed(c, EVUTIL_SOCKET_ERROR());
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->connecting = 0;
		tpc_frame_decoder_free(&c->dec);
		return err;
	}
	arm_timer(c);
	return 0;
}

static void fill_env(Tpc__Envelope *env, const struct creq *r, Tpc__Begin *b, Tpc__Commit *cm,
		     Tpc__Abort *ab, Tpc__StatusQuery *q)
{
	switch (r->kind) {
	case REQ_BEGIN:
		b->timeout_ms = r->timeout_ms;
		b->txn_key = r->key ? r->key : "";
		env->body_case = TPC__ENVELOPE__BODY_BEGIN;
		env->begin = b;
		break;
	case REQ_COMMIT:
		cm->txid = r->txid;
		env->body_case = TPC__ENVELOPE__BODY_COMMIT;
		env->commit = cm;
		break;
	case REQ_ABORT:
		ab->txid = r->txid;
		ab->reason = r->reason ? r->reason : "";
		env->body_case = TPC__ENVELOPE__BODY_ABORT;
		env->abort = ab;
		break;
	case REQ_STATUS:
		q->txid = r->txid;
		env->body_case = TPC__ENVELOPE__BODY_STATUS_QUERY;
		env->status_query = q;
		break;
	}
}

/* Write @p r on the current connection. */
static int send_req(struct tpc_client *c, struct creq *r)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Begin b = TPC__BEGIN__INIT;
	Tpc__Commit cm = TPC__COMMIT__INIT;
	Tpc__Abort ab = TPC__ABORT__INIT;
	Tpc__StatusQuery q = TPC__STATUS_QUERY__INIT;

	env.request_id = r->id;
	fill_env(&env, r, &b, &cm, &ab, &q);
	r->gen = c->gen;
	return send_env(c, &env);
}

/*
 * The connection ended having delivered nothing: its connect failed, or a standby
 * refused it (@p not_leader; a standby serves no request). Its requests wait for the next
 * address (the leader named, else the next of the list) after the backoff, or fail with
 * @p err when there is no other address or no address worked for connect_timeout_ms.
 */
static void undelivered(struct tpc_client *c, int err, int not_leader)
{
	uint64_t gen = c->gen, now = tpc_now_ms();
	uint32_t delay;

	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		tpc_frame_decoder_free(&c->dec);
	}
	c->connecting = 0;
	c->conn_err = 0;
	c->not_leader = 0;
	delay = not_leader ? coord_addrs_not_leader(&c->addrs, c->leader_hint)
			   : coord_addrs_failed(&c->addrs);
	if (!c->down_since_ms)
		c->down_since_ms = now;
	if (!coord_addrs_has_other(&c->addrs) ||
	    now + delay >= c->down_since_ms + c->cfg.connect_timeout_ms) {
		c->down_since_ms = 0;
		c->retry_at_ms = 0;
		fail_pending(c, gen, err);
		if (!c->freeing)
			arm_timer(c);
		return;
	}
	for (struct creq *r = oldest(c); r; r = (struct creq *)r->link.next)
		r->gen = 0; /* not delivered: sent again on the next connection */
	c->retry_at_ms = now + delay;
	arm_timer(c);
}

/* The backoff passed: connect to the current address and send what waits. */
static void reconnect_now(struct tpc_client *c)
{
	int rc;

	c->retry_at_ms = 0;
	rc = start_connection(c);
	if (rc) {
		undelivered(c, rc, 0);
		return;
	}
	for (struct creq *r = oldest(c); r; r = (struct creq *)r->link.next)
		if (r->gen == 0 && send_req(c, r) != 0)
			break; /* out of memory: the request times out */
}

/* ---- submitting requests -------------------------------------------------------------- */

struct submit {
	enum req_kind kind;
	uint64_t txid;
	const char *key;        /* Begin */
	uint32_t timeout_ms;    /* Begin */
	const char *reason;     /* Abort */
	int with_token;         /* Begin: cb.begin_token */
	union creq_cb cb;
	void *arg;
};

static struct creq *new_req(struct tpc_client *c, const struct submit *s)
{
	struct creq *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->kind = s->kind;
	r->with_token = s->with_token;
	r->txid = s->txid;
	r->timeout_ms = s->timeout_ms;
	r->cb = s->cb;
	r->arg = s->arg;
	if ((s->key && !(r->key = strdup(s->key))) ||
	    (s->reason && !(r->reason = strdup(s->reason)))) {
		free(r->key);
		free(r);
		return NULL;
	}
	r->id = ++c->next_id;
	r->deadline_ms = tpc_now_ms() + c->cfg.request_timeout_ms;
	return r;
}

/*
 * Queue one request: on the connection (made now when there is none), or, while the
 * next address waits for its backoff, unsent until then. Arguments are checked by the
 * caller.
 */
static int submit(struct tpc_client *c, const struct submit *s)
{
	struct creq *r;
	int rc;

	int failed = 0;

	if (c->freeing)
		return set_err(c, TPC_ESTATE, "the client is being freed");
	if (!c->bev && !c->retry_at_ms) {
		rc = start_connection(c);
		if (rc && !coord_addrs_has_other(&c->addrs))
			return rc; /* one address: its error now, as always */
		failed = rc; /* else the request waits for the next address */
	}
	r = new_req(c, s);
	if (!r || u64map_put(&c->reqs, r->id, r)) {
		if (r)
			free(r->key), free(r->reason), free(r);
		return set_err(c, -ENOMEM, "out of memory");
	}
	rc = c->bev ? send_req(c, r) : 0;
	if (rc) {
		u64map_del(&c->reqs, r->id);
		free(r->key), free(r->reason), free(r);
		return rc;
	}
	list_append(&c->pending, &r->link);
	if (failed)
		undelivered(c, failed, 0);
	else
		arm_timer(c);
	return 0;
}

static int check_async(struct tpc_client *c, uint64_t txid, int need_txid, int have_cb)
{
	if (!c)
		return -EINVAL;
	if (!have_cb)
		return set_err(c, -EINVAL, "a callback is required");
	if (need_txid && txid == 0)
		return set_err(c, -EINVAL, "txid 0 names no transaction");
	if (c->mode != MODE_ATTACHED)
		return set_err(c, TPC_ESTATE, "asynchronous calls need tpc_client_attach() first");
	return 0;
}

/* ---- public: lifecycle ---------------------------------------------------------------- */

/* The documented defaults (tpc/client.h): what tpc_client_config_init() gives and what
 * a zero field stands for. */
static const tpc_client_config client_defaults = {
	.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS,
	.request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS,
	.max_frame = TPC_FRAME_DEFAULT_MAX,
};

void tpc_client_config_init(tpc_client_config *cfg)
{
	if (cfg)
		*cfg = client_defaults;
}

/* Zero means the default, for every numeric field. */
static void config_resolve(tpc_client_config *cfg)
{
	if (!cfg->connect_timeout_ms)
		cfg->connect_timeout_ms = client_defaults.connect_timeout_ms;
	if (!cfg->request_timeout_ms)
		cfg->request_timeout_ms = client_defaults.request_timeout_ms;
	if (!cfg->max_frame)
		cfg->max_frame = client_defaults.max_frame;
}

/* A copy of @p s in @p *out (NULL stays NULL). 0, or -ENOMEM. */
static int dup_opt(char **out, const char *s)
{
	*out = s ? strdup(s) : NULL;
	return s && !*out ? -ENOMEM : 0;
}

/* cfg.coordinator: one "HOST:PORT" or a list; each must resolve now, to a port not 0. */
static int parse_coordinators(struct tpc_client *c, char *why, size_t whylen)
{
	uint64_t seed = tpc_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)c;

	if (coord_addrs_parse(&c->addrs, c->coordinator, RETRY_MIN_MS, RETRY_MAX_MS, seed, why,
			      whylen))
		return -EINVAL;
	for (size_t i = 0; i < c->addrs.n; i++) {
		c->addrlen = sizeof(c->addr);
		if (tpc_parse_hostport(c->addrs.list[i], &c->addr, &c->addrlen, why, whylen))
			return -EINVAL;
		if ((c->addr.ss_family == AF_INET &&
		     ((struct sockaddr_in *)&c->addr)->sin_port == 0) ||
		    (c->addr.ss_family == AF_INET6 &&
		     ((struct sockaddr_in6 *)&c->addr)->sin6_port == 0)) {
			snprintf(why, whylen, "%s: port 0 cannot be connected to", c->addrs.list[i]);
			return -EINVAL;
		}
	}
	return 0;
}

tpc_client *tpc_client_new(const tpc_client_config *cfg, int *err)
{
	struct tpc_client *c = NULL;
	char why[256];
	int rc = -EINVAL;

	if (!cfg || !cfg->coordinator)
		goto out_fail;
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = -ENOMEM;
		goto out_fail;
	}
	u64map_init(&c->reqs);
	c->cfg = *cfg;
	c->coordinator = strdup(cfg->coordinator);
	c->name = cfg->name ? strdup(cfg->name) : NULL;
	if (!c->coordinator || (cfg->name && !c->name)) {
		rc = -ENOMEM;
		goto out_fail;
	}
	c->cfg.coordinator = c->coordinator;
	c->cfg.name = c->name;
	if (dup_opt(&c->tls_cert, cfg->tls_cert) || dup_opt(&c->tls_key, cfg->tls_key) ||
	    dup_opt(&c->tls_ca, cfg->tls_ca)) {
		rc = -ENOMEM;
		goto out_fail;
	}
	c->cfg.tls_cert = c->tls_cert;
	c->cfg.tls_key = c->tls_key;
	c->cfg.tls_ca = c->tls_ca;
	config_resolve(&c->cfg);
	if (parse_coordinators(c, why, sizeof(why))) {
		set_err(c, 0, "%s", why);
		goto out_fail;
	}
	return c;

out_fail:
	if (err)
		*err = rc;
	if (c)
		client_release(c);
	return NULL;
}

void tpc_client_free(tpc_client *c)
{
	if (!c || c->freeing)
		return;
	c->freeing = 1;
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->connecting = 0;
		tpc_frame_decoder_free(&c->dec);
	}
	set_err(c, 0, "the client was freed before the reply arrived");
	c->depth++;
	fail_pending(c, UINT64_MAX, TPC_ECLOSED);
	if (c->timer)
		evtimer_del(c->timer);
	leave(c); /* releases now, or when the callback that called us returns */
}

const char *tpc_client_errmsg(const tpc_client *c)
{
	return c ? c->errmsg : "";
}

size_t tpc_client_inflight(const tpc_client *c)
{
	return c ? c->pending.n : 0;
}

/* Give the client a base: the caller's, or a private one for blocking calls. */
static int use_base(struct tpc_client *c, struct event_base *base, enum client_mode mode)
{
	c->timer = evtimer_new(base, on_timer, c);
	if (!c->timer)
		return set_err(c, -ENOMEM, "cannot create the client's timer");
	c->base = base;
	c->mode = mode;
	return 0;
}

int tpc_client_attach(tpc_client *c, struct event_base *base)
{
	if (!c || !base)
		return -EINVAL;
	if (c->freeing)
		return set_err(c, TPC_ESTATE, "the client is being freed");
	if (c->mode == MODE_ATTACHED)
		return set_err(c, TPC_ESTATE, "the client is already attached to a loop");
	if (c->mode == MODE_BLOCKING)
		return set_err(c, TPC_ESTATE, "a client used with blocking calls cannot be attached");
	return use_base(c, base, MODE_ATTACHED);
}

/* ---- public: asynchronous ------------------------------------------------------------- */

int tpc_client_begin_async(tpc_client *c, const char *key, uint32_t timeout_ms, tpc_begin_cb cb,
			   void *arg)
{
	struct submit s = { .kind = REQ_BEGIN, .key = key, .timeout_ms = timeout_ms,
			    .cb.begin = cb, .arg = arg };
	int rc = check_async(c, 0, 0, cb != NULL);

	return rc ? rc : submit(c, &s);
}

int tpc_client_begin_token_async(tpc_client *c, const char *key, uint32_t timeout_ms,
				 tpc_begin_token_cb cb, void *arg)
{
	struct submit s = { .kind = REQ_BEGIN, .key = key, .timeout_ms = timeout_ms,
			    .with_token = 1, .cb.begin_token = cb, .arg = arg };
	int rc = check_async(c, 0, 0, cb != NULL);

	return rc ? rc : submit(c, &s);
}

int tpc_client_commit_async(tpc_client *c, tpc_txid txid, tpc_outcome_cb cb, void *arg)
{
	struct submit s = { .kind = REQ_COMMIT, .txid = txid, .cb.outcome = cb, .arg = arg };
	int rc = check_async(c, txid, 1, cb != NULL);

	return rc ? rc : submit(c, &s);
}

int tpc_client_abort_async(tpc_client *c, tpc_txid txid, const char *reason, tpc_outcome_cb cb,
			   void *arg)
{
	struct submit s = { .kind = REQ_ABORT, .txid = txid, .reason = reason,
			    .cb.outcome = cb, .arg = arg };
	int rc = check_async(c, txid, 1, cb != NULL);

	return rc ? rc : submit(c, &s);
}

int tpc_client_status_async(tpc_client *c, tpc_txid txid, tpc_status_cb cb, void *arg)
{
	struct submit s = { .kind = REQ_STATUS, .txid = txid, .cb.status = cb, .arg = arg };
	int rc = check_async(c, txid, 1, cb != NULL);

	return rc ? rc : submit(c, &s);
}

/* ---- public: blocking ----------------------------------------------------------------- */

/* Where a blocking call's internal callback leaves the answer. */
struct bwait {
	int done;
	int err;
	tpc_txid txid;
	tpc_begin_result begin;
	uint8_t token[TPC_TXN_TOKEN_LEN];
	size_t token_len;
	tpc_outcome outcome;
	tpc_status status;
	char *reason;
	size_t reason_len;
};

static void bw_begin(void *arg, int err, tpc_txid txid, tpc_begin_result result,
		     const uint8_t *token)
{
	struct bwait *w = arg;
	w->done = 1;
	w->err = err;
	w->txid = txid;
	w->begin = result;
	if (token) {
		memcpy(w->token, token, TPC_TXN_TOKEN_LEN);
		w->token_len = TPC_TXN_TOKEN_LEN;
	}
}

static void bw_outcome(void *arg, int err, tpc_txid txid, tpc_outcome outcome, const char *reason)
{
	struct bwait *w = arg;
	w->done = 1;
	w->err = err;
	w->txid = txid;
	w->outcome = outcome;
	if (w->reason && w->reason_len)
		snprintf(w->reason, w->reason_len, "%s", reason ? reason : "");
}

static void bw_status(void *arg, int err, tpc_txid txid, tpc_status status)
{
	struct bwait *w = arg;
	w->done = 1;
	w->err = err;
	w->txid = txid;
	w->status = status;
}

/* A blocking call is allowed unless the client is attached to a caller's loop. */
static int blocking_allowed(struct tpc_client *c)
{
	if (!c)
		return -EINVAL;
	if (c->mode == MODE_ATTACHED)
		return set_err(c, TPC_ESTATE,
			       "blocking calls are not allowed on a client attached to a loop");
	return 0;
}

/* Blocking mode: the private base, created on first use. */
static int blocking_base(struct tpc_client *c)
{
	if (c->mode == MODE_BLOCKING)
		return 0;
	struct event_base *base = event_base_new();
	if (!base)
		return set_err(c, -ENOMEM, "cannot create the client's event loop");
	int rc = use_base(c, base, MODE_BLOCKING);
	if (rc)
		event_base_free(base);
	return rc;
}

/*
 * SIGPIPE: libevent writes with write()/writev(), so a write to a connection the peer
 * reset raises SIGPIPE. While this thread runs the private loop it keeps SIGPIPE blocked
 * and then discards one raised meanwhile (the way libpq does), so the library never
 * kills the process nor changes signal state outside the call. An attached client's
 * writes happen in the caller's loop, which must ignore SIGPIPE itself.
 */
struct sigpipe_guard {
	sigset_t old;
	int blocked;
	int was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	g->blocked = pthread_sigmask(SIG_BLOCK, &set, &g->old) == 0;
	g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
	sigset_t set, pending;
	struct timespec zero = { 0, 0 };

	if (!g->blocked)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Submit and run the private loop until the callback ran. @return the request's err. */
static int run_blocking(struct tpc_client *c, const struct submit *s, struct bwait *w)
{
	struct sigpipe_guard g;
	int rc = blocking_base(c);

	if (!rc)
		rc = submit(c, s);
	if (rc)
		return rc;
	sigpipe_block(&g);
	while (!w->done) {
		if (event_base_loop(c->base, EVLOOP_ONCE) != 0 && !w->done) {
			/* Nothing left to wait on, or the loop broke: give up on everything. */
			set_err(c, 0, "the client's event loop failed");
			drop_connection(c, TPC_ECLOSED);
			fail_pending(c, UINT64_MAX, TPC_ECLOSED);
		}
	}
	sigpipe_restore(&g);
	return w->err;
}

int tpc_client_begin_token(tpc_client *c, const char *key, uint32_t timeout_ms,
			   tpc_txid *txid, tpc_begin_result *result,
			   uint8_t token[TPC_TXN_TOKEN_LEN], size_t *token_len)
{
	struct bwait w = { 0 };
	struct submit s = { .kind = REQ_BEGIN, .key = key, .timeout_ms = timeout_ms,
			    .with_token = 1, .cb.begin_token = bw_begin, .arg = &w };
	int rc = blocking_allowed(c);

	if (txid)
		*txid = 0;
	if (token_len)
		*token_len = 0;
	if (rc)
		return rc;
	if (!txid)
		return set_err(c, -EINVAL, "txid must not be NULL");
	rc = run_blocking(c, &s, &w);
	if (rc)
		return rc;
	*txid = w.txid;
	if (result)
		*result = w.begin;
	if (token)
		memcpy(token, w.token, TPC_TXN_TOKEN_LEN);
	if (token_len)
		*token_len = w.token_len;
	return 0;
}

int tpc_client_begin(tpc_client *c, const char *key, uint32_t timeout_ms, tpc_txid *txid,
		     tpc_begin_result *result)
{
	return tpc_client_begin_token(c, key, timeout_ms, txid, result, NULL, NULL);
}

/* Commit or Abort (@p s) in blocking form; *outcome is UNKNOWN unless an answer came. */
static int run_blocking_outcome(struct tpc_client *c, const struct submit *s, struct bwait *w,
				tpc_outcome *outcome)
{
	int rc = blocking_allowed(c);

	if (outcome)
		*outcome = TPC_OUTCOME_UNKNOWN;
	if (rc)
		return rc;
	if (!s->txid)
		return set_err(c, -EINVAL, "txid 0 names no transaction");
	rc = run_blocking(c, s, w);
	if (outcome)
		*outcome = w->outcome;
	return rc;
}

int tpc_client_commit(tpc_client *c, tpc_txid txid, tpc_outcome *outcome, char *reason,
		      size_t reason_len)
{
	struct bwait w = { .reason = reason, .reason_len = reason_len };
	struct submit s = { .kind = REQ_COMMIT, .txid = txid, .cb.outcome = bw_outcome, .arg = &w };

	if (reason && reason_len)
		reason[0] = '\0';
	return run_blocking_outcome(c, &s, &w, outcome);
}

int tpc_client_abort(tpc_client *c, tpc_txid txid, const char *why, tpc_outcome *outcome)
{
	struct bwait w = { 0 };
	struct submit s = { .kind = REQ_ABORT, .txid = txid, .reason = why,
			    .cb.outcome = bw_outcome, .arg = &w };

	return run_blocking_outcome(c, &s, &w, outcome);
}

int tpc_client_status(tpc_client *c, tpc_txid txid, tpc_status *status)
{
	struct bwait w = { 0 };
	struct submit s = { .kind = REQ_STATUS, .txid = txid, .cb.status = bw_status, .arg = &w };
	int rc = blocking_allowed(c);

	if (status)
		*status = TPC_STATUS_PENDING;
	if (rc)
		return rc;
	if (!txid || !status)
		return set_err(c, -EINVAL, !txid ? "txid 0 names no transaction"
						  : "status must not be NULL");
	rc = run_blocking(c, &s, &w);
	if (rc)
		return rc;
	*status = w.status;
	return 0;
}
