/*
 * conn.c - the coordinator's connections: accepting (within the connection limit),
 * reading frames through the pure decoder, unpacking and checking each Envelope,
 * sending replies, and closing.
 *
 * Untrusted input: a frame longer than max_frame, an Envelope that does not unpack,
 * or one missing required fields gets an Error and closes that connection only, after
 * the Error is flushed. Connection ids carry a generation, so a reply addressed to a
 * connection that closed and whose slot was reused goes nowhere.
 *
 * Limits that hold against a peer that does not play along (server.h lists the
 * options): a reaper timer closes a connection with no Hello after hello-timeout, a
 * client idle with nothing open after idle-timeout, and one whose frame is not complete
 * frame-timeout after its first byte (a slowloris); a peer whose unsent output exceeds
 * max-output is not read from until it drains to half of that (a peer that never reads
 * is closed when its output makes no progress for frame-timeout); the bytes partial
 * frames hold over all connections are bounded by max-partial-bytes. Accept errors
 * (EMFILE, ENFILE) disable the listener for a growing delay, logged once a second.
 *
 * TLS (--tls-cert and friends, common/tls.h): every accepted connection is wrapped in
 * a server-side TLS bufferevent; nothing is read from it before the handshake, in
 * which the peer must present a certificate signed by --tls-ca. A peer that fails the
 * handshake (plaintext, no certificate, another CA) is closed without an answer. The
 * verified certificate's CN is kept on the connection (conn.cn) for identity.c.
 */
#include "server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#define E(name) TPC__ERROR_CODE__ERR_##name
#define TRIM_KEEP (64u << 10)    /* decoder buffer kept between frames */
#define REAP_MIN_MS 20
#define REAP_MAX_MS 1000
#define ACCEPT_DELAY_MIN_MS 10
#define ACCEPT_DELAY_MAX_MS 1000
#define LOG_EVERY_MS 1000

static void conn_free(struct conn *c);
static void on_read(struct bufferevent *bev, void *arg);

struct conn *coord_conn_get(struct coord_server *s, uint64_t id)
{
	uint32_t slot = (uint32_t)id;
	if (!id || slot >= s->conns_cap || !s->conns[slot] || s->conns[slot]->id != id)
		return NULL;
	return s->conns[slot];
}

void coord_conn_send(struct conn *c, const Tpc__Envelope *env)
{
	if (c->closing)
		return;
	int rc = tpc_wire_send(bufferevent_get_output(c->bev), env, c->srv->cfg.max_frame);
	if (rc)
		tpc_logf(&c->srv->log, TPC_LOG_WARN, "%s: cannot send %s: %s", c->addr,
			 tpc_wire_body_name(env->body_case), strerror(-rc));
}

void coord_conn_flush(struct conn *c)
{
	if (c && !c->closing)
		tpc_wire_flush_now(c->bev);
}

void coord_conn_send_error(struct conn *c, uint64_t req, int code, const char *msg,
			   uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Error err = TPC__ERROR__INIT;
	char leader[256];

	err.code = (Tpc__ErrorCode)code;
	err.message = (char *)msg;
	err.txid = txid;
	if (code == TPC__ERROR_CODE__ERR_NOT_LEADER) /* ha.c: where to go instead */
		err.leader = (char *)coord_ha_leader(c->srv, leader, sizeof(leader));
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_ERROR;
	env.error = &err;
	coord_conn_send(c, &env);
}

static void on_event(struct bufferevent *bev, short what, void *arg);

static void on_discard(struct bufferevent *bev, void *arg)
{
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

/*
 * The Error is written: half-close and read (and discard) until the peer closes, so
 * the close does not turn into a reset that could destroy the Error before the peer
 * reads it. The read timeout bounds how long a silent peer holds the slot.
 */
static void on_flushed(struct bufferevent *bev, void *arg)
{
	struct timeval linger = { 2, 0 };

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	shutdown(bufferevent_getfd(bev), SHUT_WR);
	bufferevent_setcb(bev, on_discard, NULL, on_event, arg);
	bufferevent_set_timeouts(bev, &linger, NULL);
	bufferevent_enable(bev, EV_READ);
}


void coord_conn_send_hello_reply(struct conn *c, uint64_t req)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__HelloReply r = TPC__HELLO_REPLY__INIT;

	r.coordinator_id = c->srv->id;
	r.epoch = c->srv->epoch;
	r.protocol_version = TPC_PROTOCOL_VERSION;
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &r;
	coord_conn_send(c, &env);
}

/* Send an Error, then close once it is written; reads stop now. */
void coord_conn_fail(struct conn *c, int code, const char *msg)
{
	coord_conn_fail_req(c, 0, code, msg);
}

void coord_conn_fail_req(struct conn *c, uint64_t req, int code, const char *msg)
{
	struct timeval linger = { 2, 0 };

	if (c->closing)
		return;
	tpc_logf(&c->srv->log, TPC_LOG_WARN, "%s: closing connection: %s", c->addr, msg);
	coord_conn_send_error(c, req, code, msg, 0);
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, &linger); /* a peer that never reads */
	bufferevent_setcb(c->bev, NULL, on_flushed, on_event, c);
	/* Never free here: callers up the stack still hold c. The write callback frees it,
	 * deferred to the loop even when there is nothing left to write. */
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct conn *c = arg;
	const char *why = NULL;
	Tpc__Envelope *env = tpc_wire_unpack(&c->srv->arena, body, len);

	if (!env) {
		c->srv->stats.bad_frames++;
		coord_conn_fail(c, TPC__ERROR_CODE__ERR_BAD_FRAME, "cannot decode the envelope");
		return 1;
	}
	if (tpc_wire_validate(env, &why)) {
		c->srv->stats.bad_frames++;
		coord_conn_fail_req(c, env->request_id, E(INVALID), why); /* answers it */
		return 1;
	}
	c->frame_since_ms = 0; /* a whole frame: the next one is timed from its first byte */
	int stop = c->srv->on_frame(c, env); /* env lives in the arena until the next frame */
	return stop || c->closing;
}

/* ---- backpressure and partial frames ---- */

/* The output drained to half of max-output (the write low watermark): read again. */
static void on_drained(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing || !c->throttled ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > c->srv->cfg.max_output / 2)
		return;
	c->throttled = 0;
	c->last_read_ms = tpc_now_ms(); /* the wait was ours, not the peer's idleness */
	tpc_wire_resume(bev, on_read, on_event, c);
}

/* Stop reading until the peer takes its replies; no progress for frame-timeout: close. */
static void throttle(struct conn *c)
{
	c->throttled = 1;
	tpc_wire_throttle(c->bev, c->srv->cfg.max_output / 2, c->srv->cfg.frame_timeout_ms,
			  on_read, on_drained, on_event, c);
}

/* Count the decoder's buffer in the server's partial-frame total. */
static void account_held(struct conn *c)
{
	c->srv->partial_bytes -= c->held;
	c->held = c->dec.buf_cap;
	c->srv->partial_bytes += c->held;
}

/* Every frame read so far was handled: time the unfinished one, bound memory. */
static void after_read(struct conn *c)
{
	struct coord_server *s = c->srv;
	uint32_t pending = tpc_frame_decoder_pending(&c->dec);

	tpc_frame_decoder_trim(&c->dec, TRIM_KEEP);
	if (!pending)
		c->frame_since_ms = 0;
	else if (!c->frame_since_ms)
		c->frame_since_ms = c->last_read_ms;
	account_held(c);
	if (pending && s->partial_bytes > s->cfg.max_partial_bytes) {
		coord_conn_fail(c, E(LIMIT), "the coordinator holds too many bytes of partial "
				"frames (max-partial-bytes); send whole frames");
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > s->cfg.max_output)
		throttle(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	c->last_read_ms = tpc_now_ms();
	int rc = tpc_wire_read(bufferevent_get_input(bev), &c->dec, on_frame, c);

	if (rc == TPC_FRAME_ERR_TOO_BIG) {
		c->srv->stats.bad_frames++;
		coord_conn_fail(c, TPC__ERROR_CODE__ERR_BAD_FRAME,
				"frame larger than the maximum frame size");
	} else if (rc == TPC_FRAME_ERR_EMPTY) {
		c->srv->stats.bad_frames++;
		coord_conn_fail(c, TPC__ERROR_CODE__ERR_BAD_FRAME, "empty frame");
	} else if (rc == -ENOMEM) {
		coord_conn_fail(c, TPC__ERROR_CODE__ERR_UNAVAILABLE, "out of memory");
	} else if (rc == 0 && !c->closing) {
		after_read(c);
	}
}

/* The TLS handshake is done: remember who the peer's certificate says it is. */
static void on_tls_connected(struct conn *c)
{
	int rc = tpc_tls_peer_cn(c->bev, c->cn, sizeof(c->cn));

	if (rc) {
		c->cn[0] = '\0';
		coord_conn_fail(c, TPC__ERROR_CODE__ERR_IDENTITY,
				"the client certificate has no usable subject CN");
		return;
	}
	tpc_logf(&c->srv->log, TPC_LOG_DEBUG, "%s: TLS peer \"%s\"", c->addr, c->cn);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char why[320];

	if (what & BEV_EVENT_CONNECTED) {
		on_tls_connected(c);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		if ((what & BEV_EVENT_ERROR) && tpc_tls_is_tls(bev) && !c->cn[0]) {
			tpc_tls_describe_error(bev, "TLS handshake failed (the peer hung up, or sent "
					       "no certificate)", why, sizeof(why));
			tpc_logf(&c->srv->log, TPC_LOG_WARN, "%s: refused: %s", c->addr, why);
		} else if (what & BEV_EVENT_ERROR) {
			tpc_logf(&c->srv->log, TPC_LOG_DEBUG, "%s: %s", c->addr,
				 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		}
		conn_free(c);
	}
}

static int slot_alloc(struct coord_server *s)
{
	for (uint32_t i = 1; i < s->conns_cap; i++) /* slot 0 unused: id 0 means none */
		if (!s->conns[i])
			return (int)i;
	uint32_t ncap = s->conns_cap ? s->conns_cap * 2 : 64;
	struct conn **nc = realloc(s->conns, ncap * sizeof(*nc));
	if (!nc)
		return -1;
	s->conns = nc;
	uint32_t *ng = realloc(s->conn_gen, ncap * sizeof(*ng));
	if (!ng)
		return -1;
	s->conn_gen = ng;
	for (uint32_t i = s->conns_cap; i < ncap; i++) {
		s->conns[i] = NULL;
		s->conn_gen[i] = 0;
	}
	uint32_t first = s->conns_cap ? s->conns_cap : 1;
	s->conns_cap = ncap;
	return (int)first;
}

static void format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, len, "%s:%u", host, port);
}

/* A plain socket bufferevent, or with TLS on a server-side TLS one (owns @p fd). */
static struct bufferevent *new_bev(struct coord_server *s, evutil_socket_t fd)
{
	if (!s->tls)
		return bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	return tpc_tls_bev_new(s->base, fd, tpc_tls_server_ssl(s->tls), 1);
}

static struct conn *conn_new(struct coord_server *s, evutil_socket_t fd,
			     const struct sockaddr *sa)
{
	int slot = slot_alloc(s);
	struct conn *c = slot < 0 ? NULL : calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->bev = new_bev(s, fd);
	if (!c->bev) {
		free(c);
		return NULL;
	}
	c->srv = s;
	c->accepted_ms = c->last_read_ms = tpc_now_ms();
	c->id = (uint64_t)++s->conn_gen[slot] << 32 | (uint32_t)slot;
	s->conns[slot] = c;
	s->nconns++;
	tpc_frame_decoder_init(&c->dec, s->cfg.max_frame);
	format_addr(sa, c->addr, sizeof(c->addr));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
}

static void conn_free(struct conn *c)
{
	struct coord_server *s = c->srv;

	s->on_closed(s, c);
	s->conns[(uint32_t)c->id] = NULL;
	s->nconns--;
	s->partial_bytes -= c->held;
	bufferevent_free(c->bev);
	tpc_frame_decoder_free(&c->dec);
	free(c);
}

/* Log at most once a second; say how many were not logged in between. */
static void log_limited(struct coord_server *s, const char *what, const char *detail)
{
	uint64_t now = tpc_now_ms();

	if (s->accept_logged_ms && now - s->accept_logged_ms < LOG_EVERY_MS) {
		s->accept_quiet++;
		return;
	}
	if (s->accept_quiet)
		tpc_logf(&s->log, TPC_LOG_WARN, "%s: %s (and %llu more like it in the last "
			 "second)", what, detail, (unsigned long long)s->accept_quiet);
	else
		tpc_logf(&s->log, TPC_LOG_WARN, "%s: %s", what, detail);
	s->accept_logged_ms = now;
	s->accept_quiet = 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct coord_server *s = arg;

	s->accept_delay_ms = 0;
	if (s->stopping || s->nconns >= s->cfg.max_conns) {
		/* Tell the peer why before closing; a blocking write of one small frame. */
		uint8_t buf[256];
		Tpc__Envelope env = TPC__ENVELOPE__INIT;
		Tpc__Error err = TPC__ERROR__INIT;
		err.code = TPC__ERROR_CODE__ERR_LIMIT;
		err.message = s->stopping ? "coordinator is shutting down"
					  : "connection limit reached";
		env.body_case = TPC__ENVELOPE__BODY_ERROR;
		env.error = &err;
		long n = s->tls ? 0 : tpc_wire_pack(&env, buf, sizeof(buf)); /* TLS: no plaintext */
		if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			(void)0; /* best effort */
		s->stats.refused_conns++;
		log_limited(s, "refused a connection", err.message);
		evutil_closesocket(fd);
		return;
	}
	if (!conn_new(s, fd, sa)) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot set up a connection: out of memory");
		evutil_closesocket(fd);
	}
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct coord_server *s = arg;

	if (s->listener && !s->stopping)
		evconnlistener_enable(s->listener);
}

/*
 * EMFILE and friends: the pending connection stays in the backlog, so accepting again
 * at once would fail again at once (a spin). Stop listening for a delay that doubles
 * while errors go on (ACCEPT_DELAY_MIN_MS .. ACCEPT_DELAY_MAX_MS), then try again.
 */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct coord_server *s = arg;
	int err = EVUTIL_SOCKET_ERROR();
	char detail[160];
	struct timeval tv;

	s->stats.accept_errors++;
	s->accept_delay_ms = !s->accept_delay_ms ? ACCEPT_DELAY_MIN_MS
			     : s->accept_delay_ms * 2 > ACCEPT_DELAY_MAX_MS ? ACCEPT_DELAY_MAX_MS
			     : s->accept_delay_ms * 2;
	snprintf(detail, sizeof(detail), "%s; not accepting for %ums (open connections %u, "
		 "--max-conns %u)", evutil_socket_error_to_string(err), s->accept_delay_ms,
		 s->nconns, s->cfg.max_conns);
	log_limited(s, "accept", detail);
	evconnlistener_disable(l);
	tv = tpc_ms_tv(s->accept_delay_ms);
	evtimer_add(s->accept_retry, &tv);
}

/* ---- the reaper: hello, idle and frame timeouts ---- */

static uint64_t reap_period_ms(const struct coord_config *cfg)
{
	uint64_t p = cfg->hello_timeout_ms;

	if (cfg->frame_timeout_ms < p)
		p = cfg->frame_timeout_ms;
	if (cfg->idle_timeout_ms && cfg->idle_timeout_ms < p)
		p = cfg->idle_timeout_ms;
	p /= 4;
	return p < REAP_MIN_MS ? REAP_MIN_MS : p > REAP_MAX_MS ? REAP_MAX_MS : p;
}

/* Why @p c must go now, or NULL. A throttled peer is timed by its output instead. */
static const char *overdue(const struct conn *c, const struct coord_config *cfg,
			   uint64_t now)
{
	if (c->closing || c->throttled)
		return NULL;
	if (c->role == CONN_NEW && now - c->accepted_ms >= cfg->hello_timeout_ms)
		return "no Hello within the hello timeout (hello-timeout)";
	if (c->frame_since_ms && now - c->frame_since_ms >= cfg->frame_timeout_ms)
		return "a frame was not completed within the frame timeout (frame-timeout)";
	if (cfg->idle_timeout_ms && c->role == CONN_CLIENT && !c->open_txns &&
	    now - c->last_read_ms >= cfg->idle_timeout_ms)
		return "idle with no open transaction for longer than the idle timeout "
		       "(idle-timeout)";
	return NULL;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct coord_server *s = arg;
	uint64_t now = tpc_now_ms();
	struct timeval tv = tpc_ms_tv(reap_period_ms(&s->cfg)); /* options may have been reloaded */

	for (uint32_t i = 0; i < s->conns_cap; i++) {
		struct conn *c = s->conns[i];
		const char *why = c ? overdue(c, &s->cfg, now) : NULL;
		if (!why)
			continue;
		s->stats.timed_out_conns++;
		coord_conn_fail(c, E(LIMIT), why); /* logs; frees once the Error is written */
	}
	evtimer_add(s->reaper, &tv);
}

static struct tpc_tls_files tls_files(const struct coord_server *s)
{
	return (struct tpc_tls_files){ s->cfg.tls_cert, s->cfg.tls_key, s->cfg.tls_ca };
}

void coord_tls_reload(struct coord_server *s)
{
	struct tpc_tls_files f = tls_files(s);
	char err[512];

	if (!s->tls) { /* --tls is not a run-time option: off stays off */
		if (coord_config_tls_on(&s->cfg))
			tpc_logf(&s->log, TPC_LOG_WARN, "SIGHUP: TLS was off at start; turning it "
				 "on needs a restart");
		return;
	}
	if (tpc_tls_ctx_reload(&s->tls, TPC_TLS_SERVER, &f, err, sizeof(err)))
		tpc_logf(&s->log, TPC_LOG_ERROR, "SIGHUP: %s; keeping the TLS certificates in use",
			 err);
	else
		tpc_logf(&s->log, TPC_LOG_INFO, "SIGHUP: TLS certificate %s, CA %s loaded for new "
			 "connections", f.cert, f.ca);
}

int coord_tls_start(struct coord_server *s)
{
	struct tpc_tls_files f = tls_files(s);
	char err[512];

	if (!coord_config_tls_on(&s->cfg))
		return 0;
	s->tls = tpc_tls_ctx_new(TPC_TLS_SERVER, &f, err, sizeof(err));
	if (!s->tls) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "%s", err);
		return -EINVAL;
	}
	return 0;
}

int coord_listen(struct coord_server *s)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char err[256];

	if (tpc_parse_hostport(s->cfg.listen, &ss, &sslen, err, sizeof(err))) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "--listen %s: %s", s->cfg.listen, err);
		return -EINVAL;
	}
	s->listener = evconnlistener_new_bind(
		s->base, on_accept, s,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 512,
		(struct sockaddr *)&ss, (int)sslen);
	if (!s->listener) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot listen on %s: %s", s->cfg.listen,
			 strerror(errno));
		return -errno;
	}
	evconnlistener_set_error_cb(s->listener, on_accept_error);
	s->accept_retry = evtimer_new(s->base, on_accept_retry, s);
	s->reaper = evtimer_new(s->base, on_reap, s);
	if (!s->accept_retry || !s->reaper)
		return -ENOMEM;
	struct timeval tv = tpc_ms_tv(reap_period_ms(&s->cfg));
	evtimer_add(s->reaper, &tv);
	return 0;
}

void coord_conns_free_events(struct coord_server *s)
{
	if (s->reaper)
		event_free(s->reaper);
	if (s->accept_retry)
		event_free(s->accept_retry);
	s->reaper = s->accept_retry = NULL;
}

void coord_conns_close_all(struct coord_server *s)
{
	for (uint32_t i = 0; i < s->conns_cap; i++)
		if (s->conns[i])
			conn_free(s->conns[i]);
}
