/*
 * tpc_kv.c - tpc-kv, an example service that embeds a tpc participant.
 *
 * It serves Put(txid, key, value) and Get(key) over tpc's framing. A Put stages the
 * write in the embedded participant (libtpc), which joins the transaction at the
 * coordinator; the reply goes out only once the join is acknowledged, so the
 * initiator's Commit cannot miss this service. Committed writes land in an LMDB sink
 * (DATA/sink); the participant's PREPARED log lives in DATA/state.
 *
 * A client may open its connection with a Hello (answered with a HelloReply; not
 * required): the protocol's Hello rules, docs/protocol.md.
 *
 * A Put carries the transaction's token (KvPut.txn_token, from the client's BeginReply)
 * to the participant, which sends it in its Join and refuses a later Put for the txid
 * with another token (TPC_EDENIED -> ERR_DENIED). --require-txn-token refuses a Put
 * without one here, before anything is staged.
 *
 * TLS (common/tls.h): with a certificate, both its own listener and its participant's
 * connection to the coordinator use mutual TLS with the same three files: a client of
 * tpc-kv must present a certificate signed by --tls-ca, and the certificate's CN must
 * be --name (the coordinator refuses the participant's Hello otherwise).
 *
 *   tpc-kv --name NAME --listen HOST:PORT --coordinator HOST:PORT[,HOST:PORT...] --data DIR
 *          [--tls-cert FILE --tls-key FILE --tls-ca FILE] [--tls required|off]
 *   tpc-kv --dump --data DIR        every applied key: key<TAB>value<TAB>txid
 *   tpc-kv --prepared --data DIR    prepared (in-doubt) transactions
 *   tpc-kv put|get ...              a client of a running tpc-kv (kv_cli.c)
 *
 * Limits against clients that do not play along: at most --max-conns connections
 * (more are told ERR_LIMIT and closed; the open-file limit is raised to fit at start);
 * a connection idle for --idle-timeout with no Put waiting, or whose frame is not
 * complete --frame-timeout after its first byte, is closed by a reaper timer; reading
 * stops while a client's unsent replies exceed --max-output, checked after each request
 * (until half are taken, then the requests already read are answered first; no
 * progress for frame-timeout closes it); accept errors (EMFILE) disable the listener
 * for a doubling delay, logged at most once a second.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "kv_metrics.h"
#include "tpc/libevent.h"
#include "tpc/participant.h"
#include "tpc/sink_file.h"
#include "tpc/sink_lmdb.h"
#include "cli.h"
#include "kv_cli.h"
#include "kvserve.h"
#include "tls.h"
#include "util.h"
#include "wire.h"

#define MAX_REFUSE 16
#define KV_FD_RESERVE 64          /* files beside connections: sink, state, coordinator */
#define KV_TRIM_KEEP (64u << 10)  /* decoder buffer kept between frames */
#define KV_ACCEPT_DELAY_MAX_MS 1000

struct kv_opts {
	const char *name, *listen, *coordinator, *data;
	const char *refuse[MAX_REFUSE]; /* test-only: keys whose transactions vote NO */
	int nrefuse;
	int file_sink;                  /* --sink file: the append-only file sink */
	uint32_t group_commit;
	uint32_t txn_timeout_ms;
	uint32_t unreachable_timeout_ms; /* 0: libtpc's default */
	const char *metrics;            /* --metrics HOST:PORT: Prometheus /metrics (kv_metrics.c) */
	uint32_t max_conns;             /* default 1024 */
	uint32_t idle_timeout_ms;       /* default 10m; 0: never */
	uint32_t frame_timeout_ms;      /* default 30s */
	uint64_t max_output;            /* default 4M */
	int dump, prepared;
	int require_token;              /* --require-txn-token: a Put must carry the token */
	struct tpc_tls_files tls;       /* --tls-cert, --tls-key, --tls-ca */
	int tls_mode;                   /* 0: required once a file is given; 1 off; 2 required */
	const char *faults;             /* --faults, else TPC_FAULTS (test only) */
	enum tpc_log_level log_level;   /* --log-level, default info */
	const char *stats_file;         /* --stats-file: counters written on SIGUSR1 */
	int inline_sync;                /* --inline-sync: lone PREPARED writes on the loop */
};

struct kv_server;

struct kv_conn {
	uint64_t id;
	struct kv_server *srv;
	struct bufferevent *bev;
	struct tpc_frame_decoder dec;
	uint32_t puts_waiting;          /* Puts whose stage callback has not come */
	int closing, throttled;
	uint64_t last_read_ms;          /* idle timeout */
	uint64_t frame_since_ms;        /* first byte of the unfinished frame; 0: none */
	uint64_t frames;                /* whole frames read (a Hello must be the first) */
};

struct kv_server {
	struct kv_opts opts;
	struct tpc_logger log;
	struct event_base *base;
	struct evconnlistener *listener;
	SSL_CTX *tls;                /* TLS on: the listener's context */
	sigset_t sigmask;            /* the signal mask before start-up held the stop signals */
	struct event *sig_term, *sig_int;
	struct event *sig_usr1;      /* --stats-file: write the counters */
	uint64_t stats_written;      /* how many times (the file's generation) */
	struct event *reaper;        /* idle and frame timeouts */
	struct event *accept_retry;  /* re-enables the listener after an accept error */
	uint32_t accept_delay_ms;
	uint64_t accept_logged_ms, accept_quiet;
	tpc_participant *part;
	struct kv_metrics *metrics;  /* --metrics; NULL: off */
	tpc_sink *sink;              /* owned by part; used here for Get */
	struct tpc_arena arena;      /* unpacked requests, one frame at a time */
	struct kv_conn **conns;
	uint32_t nconns, conns_cap;
	uint64_t next_conn_id;
	int exit_code;               /* set when the participant stopped for good */
};

/* A Put waiting for its stage callback; finds its connection by id (it may be gone). */
struct put_req {
	struct kv_server *srv;
	uint64_t conn_id;
	uint64_t request_id;
};

static struct kv_conn *conn_by_id(struct kv_server *s, uint64_t id)
{
	for (uint32_t i = 0; i < s->nconns; i++)
		if (s->conns[i]->id == id)
			return s->conns[i];
	return NULL;
}

static void send_env(struct kv_conn *c, Tpc__Envelope *env)
{
	tpc_wire_send(bufferevent_get_output(c->bev), env, TPC_FRAME_DEFAULT_MAX);
}

static void send_error(struct kv_conn *c, uint64_t req, Tpc__ErrorCode code, const char *msg,
		       uint64_t txid)
{
	kv_send_error(bufferevent_get_output(c->bev), req, code, msg, txid);
}

static void on_staged(void *arg, int err, tpc_txid txid)
{
	struct put_req *pr = arg;
	struct kv_conn *c = conn_by_id(pr->srv, pr->conn_id);

	if (c && c->puts_waiting)
		c->puts_waiting--;
	if (c && err) {
		send_error(c, pr->request_id, kv_wire_code(err), tpc_strerror(err), txid);
	} else if (c) {
		Tpc__Envelope env = TPC__ENVELOPE__INIT;
		Tpc__KvPutReply r = TPC__KV_PUT_REPLY__INIT;
		r.txid = txid;
		env.request_id = pr->request_id;
		env.body_case = TPC__ENVELOPE__BODY_KV_PUT_REPLY;
		env.kv_put_reply = &r;
		send_env(c, &env);
	}
	free(pr);
}

/* A Put's token: none, or TPC_TXN_TOKEN_LEN bytes. @return 0, or an Error was sent. */
static int put_token_refused(struct kv_conn *c, uint64_t req, const Tpc__KvPut *m)
{
	if (m->txn_token.len == 0 && c->srv->opts.require_token) {
		send_error(c, req, TPC__ERROR_CODE__ERR_DENIED,
			   "this service requires the transaction's token with every Put "
			   "(--require-txn-token)", m->txid);
		return 1;
	}
	if (m->txn_token.len != 0 && m->txn_token.len != TPC_TXN_TOKEN_LEN) {
		send_error(c, req, TPC__ERROR_CODE__ERR_DENIED,
			   "a transaction token is 16 bytes", m->txid);
		return 1;
	}
	return 0;
}

static void on_put(struct kv_conn *c, uint64_t req, const Tpc__KvPut *m)
{
	if (put_token_refused(c, req, m))
		return;
	struct put_req *pr = malloc(sizeof(*pr));

	if (!pr) {
		send_error(c, req, TPC__ERROR_CODE__ERR_UNAVAILABLE, "out of memory", m->txid);
		return;
	}
	*pr = (struct put_req){ c->srv, c->id, req };
	c->puts_waiting++;
	int rc = tpc_participant_stage_token(c->srv->part, m->txid,
					     m->txn_token.len ? m->txn_token.data : NULL,
					     m->txn_token.len, m->key.data, m->key.len,
					     m->value.data, m->value.len, on_staged, pr);
	if (rc) {
		c->puts_waiting--;
		send_error(c, req, kv_wire_code(rc), rc == TPC_EUNREACHABLE
			   ? tpc_participant_errmsg(c->srv->part) : tpc_strerror(rc), m->txid);
		free(pr);
	}
}

static void on_get(struct kv_conn *c, uint64_t req, const Tpc__KvGet *m)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__KvGetReply r = TPC__KV_GET_REPLY__INIT;
	void *val = NULL;
	size_t len = 0;
	tpc_txid txid = 0;
	if (c->srv->opts.file_sink) {
		send_error(c, req, TPC__ERROR_CODE__ERR_UNAVAILABLE,
			   "get is served with the lmdb sink only", 0);
		return;
	}
	int rc = tpc_sink_lmdb_get(c->srv->sink, m->key.data, m->key.len, &val, &len, &txid);

	if (rc < 0) {
		send_error(c, req, TPC__ERROR_CODE__ERR_UNAVAILABLE, tpc_strerror(rc), 0);
		return;
	}
	r.found = rc == 1;
	r.value.data = val;
	r.value.len = len;
	r.txid = txid;
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_KV_GET_REPLY;
	env.kv_get_reply = &r;
	send_env(c, &env);
	free(val);
}

static void conn_free(struct kv_conn *c)
{
	struct kv_server *s = c->srv;

	for (uint32_t i = 0; i < s->nconns; i++)
		if (s->conns[i] == c) {
			s->conns[i] = s->conns[--s->nconns];
			break;
		}
	bufferevent_free(c->bev);
	tpc_frame_decoder_free(&c->dec);
	free(c);
}

/*
 * A client may open with a Hello, as on the coordinator (docs/protocol.md); tpc-kv does
 * not require one. It must be the first message, from a client, in protocol version 2,
 * and is answered with a HelloReply (coordinator_id and epoch 0: this is not a
 * coordinator). @return 1 to close the connection once the Error is written.
 */
static int on_hello(struct kv_conn *c, uint64_t req, const Tpc__Hello *h)
{
	Tpc__ErrorCode code = TPC__ERROR_CODE__ERR_PROTOCOL;
	const char *why = NULL;

	if (c->frames > 1)
		why = "hello must be the first message on a connection";
	else if (h->role != TPC__ROLE__ROLE_CLIENT)
		why = "tpc-kv takes client connections only (participants say hello to the "
		      "coordinator)";
	else if (h->protocol_version != TPC_PROTOCOL_VERSION) {
		code = TPC__ERROR_CODE__ERR_VERSION;
		why = "unsupported protocol version (tpc-kv speaks " TPC_PROTOCOL_VERSION_STR ")";
	}
	if (why) {
		send_error(c, req, code, why, 0);
		return 1;
	}
	kv_send_hello_reply(bufferevent_get_output(c->bev), req);
	return 0;
}

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct kv_conn *c = arg;
	const char *why = "cannot decode the envelope";
	Tpc__Envelope *env = tpc_wire_unpack(&c->srv->arena, body, len);

	c->frame_since_ms = 0; /* a whole frame */
	c->frames++;
	if (!env || tpc_wire_validate(env, &why)) {
		send_error(c, 0, TPC__ERROR_CODE__ERR_BAD_FRAME, why, 0);
		return 1;
	}
	if (env->body_case == TPC__ENVELOPE__BODY_HELLO)
		return on_hello(c, env->request_id, env->hello);
	if (env->body_case == TPC__ENVELOPE__BODY_KV_PUT)
		on_put(c, env->request_id, env->kv_put);
	else if (env->body_case == TPC__ENVELOPE__BODY_KV_GET)
		on_get(c, env->request_id, env->kv_get);
	else
		send_error(c, env->request_id, TPC__ERROR_CODE__ERR_PROTOCOL,
			   "tpc-kv serves hello, kv_put and kv_get only", 0);
	/* Over --max-output: no further request of this read is answered until it drains
	 * (a read holds many small gets, each of which may answer a large value). */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > c->srv->opts.max_output)
		return TPC_WIRE_PAUSE;
	return 0; /* env lives in the arena until the next frame */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct kv_conn *c = arg;
	char why[320];

	if ((what & BEV_EVENT_ERROR) && tpc_tls_is_tls(bev)) {
		tpc_tls_describe_error(bev, "TLS connection failed", why, sizeof(why));
		tpc_logf(&c->srv->log, TPC_LOG_WARN, "a client connection failed: %s", why);
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_free(c); /* a timeout: a write that made no progress (throttled, linger) */
}

static void on_flushed(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(arg);
}

/* After a bad frame or a timeout: stop reading, close once the Error is written (or
 * after 2 s without progress, for a client that does not read). */
static void close_after_flush(struct kv_conn *c)
{
	struct timeval linger = { 2, 0 };

	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, &linger);
	bufferevent_setcb(c->bev, NULL, on_flushed, on_event, c);
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void on_read(struct bufferevent *bev, void *arg);

/* Backpressure: the output drained to half of --max-output; read again. */
static void on_drained(struct bufferevent *bev, void *arg)
{
	struct kv_conn *c = arg;

	if (c->closing ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > c->srv->opts.max_output / 2)
		return;
	c->throttled = 0;
	c->last_read_ms = tpc_now_ms();
	tpc_wire_resume(bev, on_read, on_event, c);
	if (evbuffer_get_length(bufferevent_get_input(bev))) /* requests left when it paused */
		on_read(bev, c);
}

static void throttle(struct kv_conn *c)
{
	c->throttled = 1;
	tpc_wire_throttle(c->bev, c->srv->opts.max_output / 2, c->srv->opts.frame_timeout_ms,
			  on_read, on_drained, on_event, c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct kv_conn *c = arg;

	c->last_read_ms = tpc_now_ms();
	int rc = tpc_wire_read(bufferevent_get_input(bev), &c->dec, on_frame, c);

	if (rc < 0)
		send_error(c, 0, TPC__ERROR_CODE__ERR_BAD_FRAME, "bad frame", 0);
	if (rc != 0 && rc != TPC_WIRE_PAUSE) {
		close_after_flush(c);
		return;
	}
	tpc_frame_decoder_trim(&c->dec, KV_TRIM_KEEP);
	if (!tpc_frame_decoder_pending(&c->dec))
		c->frame_since_ms = 0;
	else if (!c->frame_since_ms)
		c->frame_since_ms = c->last_read_ms;
	if (evbuffer_get_length(bufferevent_get_output(bev)) > c->srv->opts.max_output)
		throttle(c);
}

/* Why @p c must go now (idle, or a frame too slow), or NULL. */
static const char *overdue(const struct kv_conn *c, const struct kv_opts *o, uint64_t now)
{
	if (c->closing || c->throttled)
		return NULL;
	if (c->frame_since_ms && now - c->frame_since_ms >= o->frame_timeout_ms)
		return "a frame was not completed within the frame timeout (--frame-timeout)";
	if (o->idle_timeout_ms && !c->puts_waiting && now - c->last_read_ms >= o->idle_timeout_ms)
		return "idle longer than the idle timeout (--idle-timeout)";
	return NULL;
}

static uint64_t reap_period_ms(const struct kv_opts *o)
{
	uint64_t p = o->frame_timeout_ms;

	if (o->idle_timeout_ms && o->idle_timeout_ms < p)
		p = o->idle_timeout_ms;
	p /= 4;
	return p < 20 ? 20 : p > 1000 ? 1000 : p;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct kv_server *s = arg;
	uint64_t now = tpc_now_ms();
	struct timeval tv = tpc_ms_tv(reap_period_ms(&s->opts));

	for (uint32_t i = 0; i < s->nconns; i++) {
		struct kv_conn *c = s->conns[i];
		const char *why = overdue(c, &s->opts, now);
		if (!why)
			continue;
		tpc_logf(&s->log, TPC_LOG_INFO, "closing a connection: %s", why);
		send_error(c, 0, TPC__ERROR_CODE__ERR_LIMIT, why, 0);
		close_after_flush(c); /* frees later, from the loop: the array stays put */
	}
	evtimer_add(s->reaper, &tv);
}

/* Log at most once a second, with the count of what was not logged in between. */
static void log_limited(struct kv_server *s, const char *what)
{
	uint64_t now = tpc_now_ms();

	if (s->accept_logged_ms && now - s->accept_logged_ms < 1000) {
		s->accept_quiet++;
		return;
	}
	tpc_logf(&s->log, TPC_LOG_WARN, "%s (and %llu more like it in the last second)", what,
		 (unsigned long long)s->accept_quiet);
	s->accept_logged_ms = now;
	s->accept_quiet = 0;
}

/* Over --max-conns: tell the client why (one small non-blocking write), then close. */
static void refuse(struct kv_server *s, evutil_socket_t fd)
{
	uint8_t buf[128];
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Error err = TPC__ERROR__INIT;

	err.code = TPC__ERROR_CODE__ERR_LIMIT;
	err.message = "connection limit reached";
	env.body_case = TPC__ENVELOPE__BODY_ERROR;
	env.error = &err;
	long n = tpc_wire_pack(&env, buf, sizeof(buf));
	if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		(void)0; /* best effort */
	log_limited(s, "refused a connection: connection limit (--max-conns) reached");
	evutil_closesocket(fd);
}

/* A plain bufferevent, or a server-side TLS one; owns (and on failure closes) @p fd. */
static struct bufferevent *new_bev(struct kv_server *s, evutil_socket_t fd)
{
	struct bufferevent *bev =
		s->tls ? tpc_tls_bev_new(s->base, fd, tpc_tls_server_ssl(s->tls), 1)
		       : bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (!bev)
		evutil_closesocket(fd);
	return bev;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct kv_server *s = arg;
	struct kv_conn *c;
	int one = 1;

	s->accept_delay_ms = 0;
	if (s->nconns >= s->opts.max_conns) {
		refuse(s, fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || (s->nconns == s->conns_cap && !(s->conns = realloc(s->conns,
			(s->conns_cap = s->conns_cap ? s->conns_cap * 2 : 16) * sizeof(*s->conns))))) {
		free(c);
		evutil_closesocket(fd);
		return;
	}
	c->bev = new_bev(s, fd);
	if (!c->bev) {
		free(c);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = s;
	c->id = ++s->next_conn_id;
	c->last_read_ms = tpc_now_ms();
	tpc_frame_decoder_init(&c->dec, TPC_FRAME_DEFAULT_MAX);
	s->conns[s->nconns++] = c;
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct kv_server *s = arg;

	evconnlistener_enable(s->listener);
}

/* EMFILE and friends: stop accepting for a doubling delay instead of spinning. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct kv_server *s = arg;
	char what[160];
	struct timeval tv;

	s->accept_delay_ms = !s->accept_delay_ms ? 10
			     : s->accept_delay_ms * 2 > KV_ACCEPT_DELAY_MAX_MS ? KV_ACCEPT_DELAY_MAX_MS
			     : s->accept_delay_ms * 2;
	snprintf(what, sizeof(what), "accept: %s; not accepting for %ums",
		 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), s->accept_delay_ms);
	log_limited(s, what);
	evconnlistener_disable(l);
	tv = tpc_ms_tv(s->accept_delay_ms);
	evtimer_add(s->accept_retry, &tv);
}

/* Make RLIMIT_NOFILE fit --max-conns: raise the soft limit, or refuse to start. */
static int fit_fd_limit(struct kv_server *s)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)s->opts.max_conns + KV_FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "--max-conns %u needs %llu open files, but the "
			 "open-file limit is %llu (hard limit %llu): raise it (ulimit -n) or lower "
			 "--max-conns", s->opts.max_conns, (unsigned long long)need,
			 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
		return -EMFILE;
	}
	rl.rlim_cur = need;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct kv_server *s = arg;
	tpc_logf(&s->log, TPC_LOG_INFO, "stopping");
	event_base_loopbreak(s->base);
}

/* --stats-file: the participant's counters, Prometheus text, replaced atomically. */
static int write_stats(struct kv_server *s)
{
	char tmp[PATH_MAX];
	tpc_participant_stats st;
	FILE *f;

	tpc_participant_get_stats(s->part, &st);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", s->opts.stats_file) >= sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "tpc_kv_stats_generation %llu\n", (unsigned long long)++s->stats_written);
	fprintf(f, "tpc_participant_committed_total %llu\n", (unsigned long long)st.committed);
	fprintf(f, "tpc_participant_prepared_total %llu\n", (unsigned long long)st.prepared);
	fprintf(f, "tpc_participant_log_batches_total %llu\n", (unsigned long long)st.log_batches);
	fprintf(f, "tpc_participant_log_syncs_total %llu\n", (unsigned long long)st.log_syncs);
	fprintf(f, "tpc_participant_sink_syncs_total %llu\n", (unsigned long long)st.sink_syncs);
	if (fclose(f) != 0 || rename(tmp, s->opts.stats_file) != 0) {
		int rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static void on_stats_signal(evutil_socket_t sig, short what, void *arg)
{
	struct kv_server *s = arg;
	int rc = write_stats(s);

	(void)sig;
	(void)what;
	if (rc)
		tpc_logf(&s->log, TPC_LOG_WARN, "--stats-file %s: %s", s->opts.stats_file,
			 strerror(-rc));
}

/*
 * Test-only NO votes: a sink wrapped around the real one that refuses, at prepare, any
 * transaction writing one of the --refuse-key keys, and passes everything else through.
 */
struct refusing_sink {
	const struct kv_opts *opts;
	tpc_sink *inner;
};

static int refusing_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t len)
{
	struct refusing_sink *rs = self;
	for (size_t w = 0; w < txn->nwrites; w++)
		for (int i = 0; i < rs->opts->nrefuse; i++) {
			const char *k = rs->opts->refuse[i];
			if (strlen(k) == txn->writes[w].key_len &&
			    !memcmp(k, txn->writes[w].key, txn->writes[w].key_len)) {
				snprintf(reason, len, "key %s is refused (--refuse-key)", k);
				return TPC_EREFUSED;
			}
		}
	return tpc_sink_prepare(rs->inner, txn, reason, len);
}

static int refusing_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	return tpc_sink_commit(((struct refusing_sink *)self)->inner, txns, n);
}

static int refusing_applied(void *self, tpc_txid txid)
{
	return tpc_sink_applied(((struct refusing_sink *)self)->inner, txid);
}

static void refusing_abort(void *self, tpc_txid txid)
{
	tpc_sink_abort(((struct refusing_sink *)self)->inner, txid);
}

static void refusing_forget(void *self, const tpc_txid *txids, size_t n)
{
	tpc_sink_forget(((struct refusing_sink *)self)->inner, txids, n);
}

static void refusing_committing(void *self, tpc_txid txid)
{
	tpc_sink_committing(((struct refusing_sink *)self)->inner, txid);
}

static uint64_t refusing_syncs(void *self)
{
	return tpc_sink_syncs(((struct refusing_sink *)self)->inner);
}

static void refusing_destroy(void *self)
{
	tpc_sink_free(((struct refusing_sink *)self)->inner);
	free(self);
}

static const tpc_sink_ops refusing_ops = {
	.prepare = refusing_prepare,
	.commit = refusing_commit,
	.applied = refusing_applied,
	.destroy = refusing_destroy,
	.abort = refusing_abort,
	.forget = refusing_forget,
	.committing = refusing_committing,
	.syncs = refusing_syncs,
};

static tpc_sink *wrap_refusing(const struct kv_opts *opts, tpc_sink *inner)
{
	struct refusing_sink *rs = malloc(sizeof(*rs));
	tpc_sink *s = rs ? tpc_sink_new(&refusing_ops, rs) : NULL;

	if (!s) {
		free(rs);
		tpc_sink_free(inner);
		return NULL;
	}
	*rs = (struct refusing_sink){ opts, inner };
	return s;
}

static void on_part_log(void *arg, int level, const char *msg)
{
	struct kv_server *s = arg;
	tpc_logf(&s->log, (enum tpc_log_level)level, "participant: %s", msg);
}

/* The coordinator refused our identity: this process must not go on as NAME. */
static void on_part_fatal(tpc_participant *p, int code, const char *msg, void *arg)
{
	struct kv_server *s = arg;

	tpc_logf(&s->log, TPC_LOG_ERROR,
		 "stopping: %s. The name \"%s\" belongs to another state folder (or a newer "
		 "start of this one): if another tpc-kv runs as \"%s\", give this one another "
		 "--name; if that name's original --data folder is lost for good, run `tpcctl "
		 "participant forget %s` and restart",
		 msg, s->opts.name, s->opts.name, s->opts.name);
	s->exit_code = 1;
	event_base_loopbreak(s->base);
}

/* The pid written in the participant's state folder lock (see tpc/participant.h). */
static const char *lock_holder(const char *state_dir, char *out, size_t cap)
{
	char path[4200];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/lock", state_dir);
	snprintf(out, cap, "unknown");
	if ((fp = fopen(path, "r")) != NULL) {
		if (fgets(out, (int)cap, fp))
			out[strcspn(out, "\n")] = '\0';
		fclose(fp);
	}
	return out[0] ? out : "unknown";
}

/* --faults (or TPC_FAULTS), with TPC_FAULT_SEED as its seed: the library reads no
 * environment, so this service passes them on. NULL: none. */
static const char *fault_spec(const char *faults, char *buf, size_t cap)
{
	const char *seed = getenv("TPC_FAULT_SEED");

	if (!faults)
		faults = getenv("TPC_FAULTS");
	if (!faults || !*faults)
		return NULL;
	if (!seed || !*seed)
		return faults;
	snprintf(buf, cap, "%s,seed=%s", faults, seed);
	return buf;
}

static int open_participant(struct kv_server *s)
{
	char sink_dir[4096], state_dir[4096], holder[32];
	int err = 0;
	tpc_participant_config cfg;

	snprintf(sink_dir, sizeof(sink_dir), "%s/%s", s->opts.data,
		 s->opts.file_sink ? "sink.log" : "sink");
	snprintf(state_dir, sizeof(state_dir), "%s/state", s->opts.data);
	if (s->opts.file_sink) {
		uint64_t repaired = 0;
		s->sink = tpc_sink_file_open(sink_dir, &err, &repaired);
		if (s->sink && repaired)
			tpc_logf(&s->log, TPC_LOG_WARN, "repaired a torn tail of %llu bytes in %s",
				 (unsigned long long)repaired, sink_dir);
	} else {
		s->sink = tpc_sink_lmdb_open(sink_dir, 0, &err);
	}
	if (!s->sink && err == -EBUSY) { /* the file sink's own lock: who holds the folder? */
		tpc_logf(&s->log, TPC_LOG_ERROR, "the sink %s is in use by another process (pid %s); "
			 "one --data folder serves one process", sink_dir,
			 lock_holder(state_dir, holder, sizeof(holder)));
		return err;
	}
	if (!s->sink) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot open the sink in %s: %s", sink_dir,
			 tpc_strerror(err));
		return err;
	}
	tpc_sink *part_sink = s->sink; /* s->sink stays the real store, for Get */
	if (s->opts.nrefuse && !(part_sink = wrap_refusing(&s->opts, s->sink)))
		return -ENOMEM;
	tpc_participant_config_init(&cfg);
	cfg.coordinator = s->opts.coordinator;
	cfg.name = s->opts.name;
	cfg.state_dir = state_dir;
	cfg.log = on_part_log;
	cfg.log_arg = s;
	cfg.on_fatal = on_part_fatal;
	cfg.fatal_arg = s;
	if (s->opts.group_commit)
		cfg.group_commit_max = s->opts.group_commit;
	char faults[1024];
	cfg.faults = fault_spec(s->opts.faults, faults, sizeof(faults));
	if (s->opts.txn_timeout_ms)
		cfg.txn_timeout_ms = s->opts.txn_timeout_ms;
	cfg.unreachable_timeout_ms = s->opts.unreachable_timeout_ms; /* 0: the default */
	cfg.inline_sync = s->opts.inline_sync;
	if (s->tls) { /* the same files for the coordinator connection */
		cfg.tls_cert = s->opts.tls.cert;
		cfg.tls_key = s->opts.tls.key;
		cfg.tls_ca = s->opts.tls.ca;
	}
	s->part = tpc_participant_new(&cfg, part_sink, &err);
	if (!s->part) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot start the participant: %s",
			 tpc_strerror(err));
		return err;
	}
	return tpc_participant_attach(s->part, s->base);
}

static int mkdir_p_data(const char *dir)
{
	int rc = tpc_mkdirs(dir);
	if (rc)
		fprintf(stderr, "tpc-kv: cannot create %s: %s\n", dir, strerror(-rc));
	return rc;
}

/* TLS on (--tls required, or a file given and not --tls off): the listener's context. */
static int open_tls(struct kv_server *s)
{
	char err[512];

	if (s->opts.tls_mode == 1 || (s->opts.tls_mode == 0 && !tpc_tls_files_given(&s->opts.tls)))
		return 0;
	s->tls = tpc_tls_ctx_new(TPC_TLS_SERVER, &s->opts.tls, err, sizeof(err));
	if (!s->tls) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "%s", err);
		return -EINVAL;
	}
	return 0;
}

/* --metrics HOST:PORT: libtpc's stats for Prometheus (kv_metrics.c). */
static int start_metrics(struct kv_server *s)
{
	char err[256];

	if (!s->opts.metrics)
		return 0;
	s->metrics = kv_metrics_start(s->base, s->opts.metrics, s->part, s->opts.name, err,
				      sizeof(err));
	if (!s->metrics)
		tpc_logf(&s->log, TPC_LOG_ERROR, "--metrics %s: %s", s->opts.metrics, err);
	return s->metrics ? 0 : -1;
}

static int serve(struct kv_server *s)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char err[256];

	if (tpc_parse_hostport(s->opts.listen, &ss, &sslen, err, sizeof(err))) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "--listen %s: %s", s->opts.listen, err);
		return 2;
	}
	if (fit_fd_limit(s))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	tpc_hold_stop_signals(&s->sigmask); /* a stop during start-up waits for the loop */
	tpc_arena_init(&s->arena, 16 * 1024);
	if (open_tls(s))
		return 2;
	s->base = event_base_new();
	if (!s->base || mkdir_p_data(s->opts.data) || open_participant(s) || start_metrics(s))
		return 1;
	s->listener = evconnlistener_new_bind(s->base, on_accept, s,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
					      (struct sockaddr *)&ss, (int)sslen);
	if (!s->listener) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot listen on %s: %s", s->opts.listen,
			 strerror(errno));
		return 1;
	}
	evconnlistener_set_error_cb(s->listener, on_accept_error);
	s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
	s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
	s->reaper = evtimer_new(s->base, on_reap, s);
	s->accept_retry = evtimer_new(s->base, on_accept_retry, s);
	if (!s->sig_term || !s->sig_int || !s->reaper || !s->accept_retry)
		return 1;
	event_add(s->sig_term, NULL);
	event_add(s->sig_int, NULL);
	if (s->opts.stats_file) {
		s->sig_usr1 = evsignal_new(s->base, SIGUSR1, on_stats_signal, s);
		if (!s->sig_usr1 || event_add(s->sig_usr1, NULL) || write_stats(s))
			return 1;
	}
	tpc_release_stop_signals(&s->sigmask);
	struct timeval reap = tpc_ms_tv(reap_period_ms(&s->opts));
	evtimer_add(s->reaper, &reap);
	tpc_logf(&s->log, TPC_LOG_INFO, "%s serving on %s, coordinator %s, TLS %s", s->opts.name,
		 s->opts.listen, s->opts.coordinator, s->tls ? "required" : "off");
	event_base_dispatch(s->base);
	return s->exit_code;
}

static void server_free(struct kv_server *s)
{
	while (s->nconns)
		conn_free(s->conns[0]);
	free(s->conns);
	if (s->listener)
		evconnlistener_free(s->listener);
	kv_metrics_free(s->metrics);
	tpc_participant_free(s->part); /* also frees the sink; pending puts get ECLOSED */
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->sig_usr1)
		event_free(s->sig_usr1);
	if (s->reaper)
		event_free(s->reaper);
	if (s->accept_retry)
		event_free(s->accept_retry);
	if (s->base)
		event_base_free(s->base);
	SSL_CTX_free(s->tls);
	tpc_arena_free(&s->arena);
}

/* ---- read-only commands ---- */

static void print_escaped(const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\t' || p[i] == '\n' || p[i] == '\\' || p[i] < 0x20 || p[i] >= 0x7f)
			printf("\\x%02x", p[i]);
		else
			putchar(p[i]);
	}
}

static int dump_one(void *arg, const void *key, size_t key_len, const void *value,
		    size_t value_len, tpc_txid txid)
{
	print_escaped(key, key_len);
	putchar('\t');
	print_escaped(value, value_len);
	printf("\t%llu\n", (unsigned long long)txid);
	return 0;
}

static int dump_file_line(void *arg, tpc_txid txid, uint64_t index, uint64_t count,
			  const void *key, size_t key_len, const void *value, size_t value_len)
{
	return dump_one(arg, key, key_len, value, value_len, txid);
}

static int cmd_dump(const char *data)
{
	char dir[4096];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/sink.log", data);
	if (stat(dir, &st) == 0) { /* the file sink: every applied line, in order */
		int rc = tpc_sink_file_dump(dir, dump_file_line, NULL);
		if (rc < 0)
			fprintf(stderr, "tpc-kv: cannot read %s: %s\n", dir, tpc_strerror(rc));
		return rc < 0;
	}
	snprintf(dir, sizeof(dir), "%s/sink", data);
	int rc = tpc_sink_lmdb_dump(dir, dump_one, NULL);
	if (rc < 0) {
		fprintf(stderr, "tpc-kv: cannot read %s: %s\n", dir, tpc_strerror(rc));
		return 1;
	}
	return 0;
}

static int cmd_prepared(const char *data)
{
	char dir[4096];
	tpc_prepared_info *v;
	size_t n;

	snprintf(dir, sizeof(dir), "%s/state", data);
	int rc = tpc_participant_list_prepared_dir(dir, &v, &n);
	if (rc < 0) {
		fprintf(stderr, "tpc-kv: cannot read %s: %s\n", dir, tpc_strerror(rc));
		return 1;
	}
	printf("%-22s %12s %10s %12s\n", "TXID", "AGE_MS", "RECORDS", "BYTES");
	for (size_t i = 0; i < n; i++)
		printf("%-22llu %12llu %10llu %12llu\n", (unsigned long long)v[i].txid,
		       (unsigned long long)v[i].age_ms, (unsigned long long)v[i].nrecords,
		       (unsigned long long)v[i].bytes);
	free(v);
	return 0;
}

/* ---- command line ---- */

static const char usage_text[] =
	"Usage: tpc-kv --name NAME --listen HOST:PORT --coordinator HOST:PORT --data DIR\n"
	"       tpc-kv --dump --data DIR\n"
	"       tpc-kv --prepared --data DIR\n"
	"       tpc-kv put|get ...     (a client of a running tpc-kv: tpc-kv put --help)\n"
	"\n"
	"An example key-value service that takes part in tpc transactions. Put(txid, key,\n"
	"value) stages a write in transaction txid; once the coordinator commits it, the\n"
	"write is applied exactly once to an LMDB store in DIR/sink.\n"
	"\n"
	"  -n, --name NAME            participant name, unique per coordinator\n"
	"  -l, --listen HOST:PORT     where to serve Put and Get\n"
	"  -C, --coordinator HOST:PORT[,HOST:PORT...]  the tpc coordinator, or the\n"
	"                             coordinators of one group (the leader is followed)\n"
	"  -d, --data DIR             data folder (DIR/sink, DIR/state), created if missing\n"
	"      --dump                 print every applied key as key<TAB>value<TAB>txid\n"
	"                             (read-only; works while the service is down)\n"
	"      --prepared             list prepared (in-doubt) transactions, read-only\n"
	"      --group-commit N       records per forced write; 1 turns group commit off\n"
	"      --txn-timeout DURATION staged writes without Prepare expire (default 60s)\n"
	"      --unreachable-timeout DURATION  with no coordinator connection this long,\n"
	"                             Puts of new transactions fail at once (default 5s)\n"
	"      --metrics HOST:PORT    serve the participant's stats for Prometheus on\n"
	"                             http://HOST:PORT/metrics (default: off)\n"
	"      --sink lmdb|file       where committed writes land: an LMDB store in\n"
	"                             DIR/sink (default) or an append-only file DIR/sink.log\n"
	"      --max-conns N          connection limit; more are told ERR_LIMIT and closed\n"
	"                             (default 1024; the open-file limit is raised to fit)\n"
	"      --idle-timeout DURATION  close a connection idle this long with no Put\n"
	"                             waiting (default 10m; 0: never)\n"
	"      --frame-timeout DURATION close a connection whose frame is not complete this\n"
	"                             long after its first byte, or whose replies make no\n"
	"                             progress this long while throttled (default 30s)\n"
	"      --max-output BYTES     stop reading from a client whose unsent replies exceed\n"
	"                             this, until half are taken (default 4M)\n"
	"      --require-txn-token    refuse a Put without its transaction's token (the\n"
	"                             client's BeginReply.txn_token; default off, for\n"
	"                             trusted setups: turn it on in an untrusted network,\n"
	"                             with the coordinator's --require-txn-token)\n"
	"      --tls-cert FILE        certificate (PEM; its CN must be NAME) for mutual TLS\n"
	"                             on the listener and to the coordinator\n"
	"      --tls-key FILE         its private key\n"
	"      --tls-ca FILE          CA that clients' and the coordinator's certificates\n"
	"                             must be signed by (clients must present one)\n"
	"      --tls required|off     default: required once --tls-cert is given\n"
	"      --inline-sync          at low load, sync a lone PREPARED record on the\n"
	"                             event loop instead of the writer thread (lower\n"
	"                             latency; a slow disk stalls the loop meanwhile)\n"
	"      --stats-file FILE      write the participant's counters (transactions, log\n"
	"                             batches, device syncs) to FILE at start and on each\n"
	"                             SIGUSR1, replacing it atomically (for tpc-bench)\n"
	"      --refuse-key KEY       TEST ONLY: vote NO on transactions writing KEY\n"
	"                             (repeatable, up to 16)\n"
	"      --faults POINT=ACTION[,...]  TEST ONLY: arm libtpc's fault points (see\n"
	"                             docs/failure-injection.md); default: $TPC_FAULTS,\n"
	"                             seeded by $TPC_FAULT_SEED\n"
	"      --log-level LEVEL      debug, info, warn or error (default info)\n"
	"  -h, --help                 show this help\n"
	"  -V, --version              show the version\n"
	"\n"
	"Bytes that are not printable, tab, newline and backslash print as \\xHH in --dump.\n"
	"With the file sink, --dump prints every applied line in file order (a write\n"
	"applied twice would show twice). Durations need a unit: ms, s, m or h (1.5s\n"
	"too; a bare number other than 0 is an error).\n";

enum { OPT_DUMP = 256, OPT_PREPARED, OPT_REFUSE, OPT_GROUP, OPT_TIMEOUT, OPT_SINK,
       OPT_MAX_CONNS, OPT_IDLE, OPT_FRAME, OPT_MAX_OUTPUT, OPT_REQUIRE_TOKEN,
       OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA, OPT_TLS, OPT_FAULTS, OPT_LOG_LEVEL,
       OPT_UNREACHABLE, OPT_METRICS, OPT_STATS_FILE, OPT_INLINE_SYNC };

static const struct option long_opts[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "listen", required_argument, NULL, 'l' },
	{ "coordinator", required_argument, NULL, 'C' },
	{ "data", required_argument, NULL, 'd' },
	{ "dump", no_argument, NULL, OPT_DUMP },
	{ "prepared", no_argument, NULL, OPT_PREPARED },
	{ "refuse-key", required_argument, NULL, OPT_REFUSE },
	{ "sink", required_argument, NULL, OPT_SINK },
	{ "group-commit", required_argument, NULL, OPT_GROUP },
	{ "txn-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "unreachable-timeout", required_argument, NULL, OPT_UNREACHABLE },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "frame-timeout", required_argument, NULL, OPT_FRAME },
	{ "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
	{ "require-txn-token", no_argument, NULL, OPT_REQUIRE_TOKEN },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls", required_argument, NULL, OPT_TLS },
	{ "faults", required_argument, NULL, OPT_FAULTS },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "stats-file", required_argument, NULL, OPT_STATS_FILE },
	{ "inline-sync", no_argument, NULL, OPT_INLINE_SYNC },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *msg)
{
	return tpc_usage_error("tpc-kv", "%s", msg);
}

static int bad_value(const char *opt, const char *v, const char *what)
{
	return tpc_cli_bad_value("tpc-kv", opt, v, what);
}

/* --max-conns, --idle-timeout, --frame-timeout, --max-output */
static int parse_limit(struct kv_opts *o, int c, const char *v)
{
	uint64_t n;

	switch (c) {
	case OPT_MAX_CONNS:
		if (tpc_parse_size(v, &n) || n < 1 || n > 1u << 20)
			return bad_value("--max-conns", v, "a number from 1 to 1048576");
		o->max_conns = (uint32_t)n;
		return 0;
	case OPT_IDLE:
		if (tpc_cli_duration("tpc-kv", "--idle-timeout", v, 0, UINT32_MAX, &n))
			return 2;
		o->idle_timeout_ms = (uint32_t)n;
		return 0;
	case OPT_FRAME:
		if (tpc_cli_duration("tpc-kv", "--frame-timeout", v, 10, 3600000, &n))
			return 2;
		o->frame_timeout_ms = (uint32_t)n;
		return 0;
	case OPT_LOG_LEVEL:
		return tpc_cli_log_level("tpc-kv", "--log-level", v, &o->log_level);
	case OPT_MAX_OUTPUT:
		if (tpc_parse_size(v, &n) || n < TPC_FRAME_DEFAULT_MAX || n > 1ull << 32)
			return bad_value("--max-output", v, "a size from 1M to 4G");
		o->max_output = n;
		return 0;
	default: return 2;
	}
}

static int parse_opt(struct kv_opts *o, int c, const char *v)
{
	uint64_t n;

	switch (c) {
	case 'n': o->name = v; return 0;
	case 'l': o->listen = v; return 0;
	case 'C': o->coordinator = v; return 0;
	case 'd': o->data = v; return 0;
	case OPT_DUMP: o->dump = 1; return 0;
	case OPT_SINK:
		if (strcmp(v, "lmdb") && strcmp(v, "file"))
			return bad_value("--sink", v, "lmdb or file");
		o->file_sink = strcmp(v, "file") == 0;
		return 0;
	case OPT_PREPARED: o->prepared = 1; return 0;
	case OPT_FAULTS: o->faults = v; return 0;
	case OPT_METRICS: o->metrics = v; return 0;
	case OPT_STATS_FILE: o->stats_file = v; return 0;
	case OPT_INLINE_SYNC: o->inline_sync = 1; return 0;
	case OPT_REQUIRE_TOKEN: o->require_token = 1; return 0;
	case OPT_TLS_CERT: o->tls.cert = v; return 0;
	case OPT_TLS_KEY: o->tls.key = v; return 0;
	case OPT_TLS_CA: o->tls.ca = v; return 0;
	case OPT_TLS:
		if (strcmp(v, "required") && strcmp(v, "off"))
			return bad_value("--tls", v, "required or off");
		o->tls_mode = strcmp(v, "off") ? 2 : 1;
		return 0;
	case OPT_REFUSE:
		if (o->nrefuse == MAX_REFUSE)
			return usage_error("too many --refuse-key options");
		o->refuse[o->nrefuse++] = v;
		return 0;
	case OPT_GROUP:
		if (tpc_parse_size(v, &n) || n < 1 || n > 1u << 20)
			return bad_value("--group-commit", v, "a number from 1 to 1048576");
		o->group_commit = (uint32_t)n;
		return 0;
	case OPT_TIMEOUT:
		if (tpc_cli_duration("tpc-kv", "--txn-timeout", v, 1, UINT32_MAX, &n))
			return 2;
		o->txn_timeout_ms = (uint32_t)n;
		return 0;
	case OPT_UNREACHABLE:
		if (tpc_cli_duration("tpc-kv", "--unreachable-timeout", v, 1, UINT32_MAX, &n))
			return 2;
		o->unreachable_timeout_ms = (uint32_t)n;
		return 0;
	default: return parse_limit(o, c, v);
	}
}

int main(int argc, char **argv)
{
	struct kv_server s = { .opts = { .max_conns = 1024, .idle_timeout_ms = 10 * 60 * 1000,
					  .frame_timeout_ms = 30000, .max_output = 4u << 20,
					  .log_level = TPC_LOG_INFO } };
	int c;

	if (argc > 1 && (strcmp(argv[1], "put") == 0 || strcmp(argv[1], "get") == 0))
		return kv_cli_main(argc - 1, argv + 1);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":n:l:C:d:hV", long_opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			tpc_cli_exit_status(stdout, "stopped cleanly, or --dump/--prepared done",
					    "could not start, or could not read DIR");
			return 0;
		}
		if (c == 'V')
			return tpc_cli_version("tpc-kv");
		if (c == '?' || c == ':')
			return tpc_cli_getopt_error("tpc-kv", c, argv);
		if (parse_opt(&s.opts, c, optarg))
			return 2;
	}
	if (optind < argc)
		return tpc_usage_error("tpc-kv", "unexpected argument '%s'", argv[optind]);
	if (!s.opts.data)
		return usage_error("--data DIR is required");
	if (s.opts.dump)
		return cmd_dump(s.opts.data);
	if (s.opts.prepared)
		return cmd_prepared(s.opts.data);
	if (!s.opts.name || !s.opts.listen || !s.opts.coordinator)
		return usage_error("--name, --listen and --coordinator are required");
	s.log.prog = "tpc-kv";
	s.log.min = s.opts.log_level;
	int rc = serve(&s);
	server_free(&s);
	return rc;
}
