/*
 * wireclient.c - the blocking tpc test client (see wireclient.h).
 *
 * Owns: the socket, a receive buffer that is always fully fed to the frame decoder
 * before the next read() (so a frame pointer into it stays valid until it is unpacked),
 * and the FIFO of Envelopes set aside while a call waited for its own reply.
 * Invariant: every wait computes its poll() timeout from one absolute deadline.
 * With TLS (tpc_wc_connect_tls), every byte goes through the handle's SSL (blocking
 * socket; bytes OpenSSL already holds are read before poll() is asked).
 */
#include "wireclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tls.h"
#include "util.h"
#include "wire.h"

#define WC_RBUF_SIZE 65536
#define WC_SEND_TIMEOUT_S 10

struct wc_node {
	struct wc_node *next;
	Tpc__Envelope *env;
};

struct tpc_wc {
	int fd;
	int timeout_ms;
	uint64_t next_id;
	struct tpc_frame_decoder dec;
	uint8_t *rbuf;
	size_t rstart, rend;
	struct wc_node *qhead, *qtail;
	size_t nq;
	int last_rc;
	Tpc__ErrorCode err_code;
	char errmsg[512];
	char unsolicited[256]; /* last Error with request_id 0, for EOF explanations */
	SSL *ssl;              /* TLS: all I/O goes through it; NULL: plain socket */
};

static int set_err(tpc_wc *wc, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int set_err(tpc_wc *wc, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(wc->errmsg, sizeof(wc->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

const char *tpc_wc_strerror(int rc)
{
	if (rc == 0)
		return "ok";
	if (rc == TPC_WC_EREPLY)
		return "error reply";
	if (rc == -ETIMEDOUT)
		return "timed out";
	if (rc == -ECONNRESET)
		return "connection closed";
	return strerror(-rc);
}

const char *tpc_wc_error_name(Tpc__ErrorCode code)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&tpc__error_code__descriptor, (int)code);
	return v ? v->name : "ERR_UNKNOWN";
}

/* ---- handle lifetime ---------------------------------------------------------- */

tpc_wc *tpc_wc_from_fd(int fd)
{
	tpc_wc *wc = calloc(1, sizeof(*wc));
	if (!wc)
		goto out_close;
	wc->rbuf = malloc(WC_RBUF_SIZE);
	if (!wc->rbuf)
		goto out_free;
	wc->fd = fd;
	wc->timeout_ms = TPC_WC_DEFAULT_TIMEOUT_MS;
	wc->next_id = 1;
	tpc_frame_decoder_init(&wc->dec, TPC_FRAME_DEFAULT_MAX);

	struct timeval tv = { .tv_sec = WC_SEND_TIMEOUT_S };
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return wc;

out_free:
	free(wc);
out_close:
	close(fd);
	return NULL;
}

tpc_wc *tpc_wc_accept(int lfd, int timeout_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd;

	if (poll(&p, 1, timeout_ms) != 1)
		return NULL;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return fd < 0 ? NULL : tpc_wc_from_fd(fd);
}

void tpc_wc_free(tpc_wc *wc)
{
	if (!wc)
		return;
	while (wc->qhead) {
		struct wc_node *n = wc->qhead;
		wc->qhead = n->next;
		tpc__envelope__free_unpacked(n->env, NULL);
		free(n);
	}
	SSL_free(wc->ssl);
	if (wc->fd >= 0)
		close(wc->fd);
	tpc_frame_decoder_free(&wc->dec);
	free(wc->rbuf);
	free(wc);
}

int tpc_wc_fd(const tpc_wc *wc) { return wc->fd; }
const char *tpc_wc_errmsg(const tpc_wc *wc) { return wc->errmsg; }
Tpc__ErrorCode tpc_wc_error_code(const tpc_wc *wc) { return wc->err_code; }
int tpc_wc_last_rc(const tpc_wc *wc) { return wc->last_rc; }
size_t tpc_wc_queued(const tpc_wc *wc) { return wc->nq; }
uint64_t tpc_wc_next_request_id(tpc_wc *wc) { return wc->next_id++; }

void tpc_wc_set_timeout(tpc_wc *wc, int timeout_ms)
{
	if (timeout_ms > 0)
		wc->timeout_ms = timeout_ms;
}

/* ---- connecting --------------------------------------------------------------- */

static void put_err(char *err, size_t errlen, const char *what, int e)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, strerror(e));
}

/* Wait for a non-blocking connect to finish; 0 or -errno. */
static int finish_connect(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR); /* a signal restarts the full wait; fine for tests */
	if (n == 0)
		return -ETIMEDOUT;
	if (n < 0)
		return -errno;
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return -soerr;
}

int tpc_wc_connect(const char *hostport, int timeout_ms, tpc_wc **out, char *err,
		   size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = -1, rc;

	*out = NULL;
	rc = tpc_parse_hostport(hostport, &ss, &sslen, err, errlen);
	if (rc < 0)
		return rc;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		put_err(err, errlen, "socket", -rc);
		return rc;
	}
	rc = connect(fd, (struct sockaddr *)&ss, sslen) == 0 ? 0 : -errno;
	if (rc == -EINPROGRESS)
		rc = finish_connect(fd, timeout_ms);
	if (rc < 0) {
		put_err(err, errlen, hostport, -rc);
		goto out_close;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		rc = -errno;
		put_err(err, errlen, "fcntl", -rc);
		goto out_close;
	}
	*out = tpc_wc_from_fd(fd);
	if (!*out) {
		put_err(err, errlen, "tpc_wc_from_fd", ENOMEM);
		return -ENOMEM;
	}
	return 0;

out_close:
	close(fd);
	return rc;
}

int tpc_wc_connect_tls(const char *hostport, int timeout_ms, const struct tpc_tls_files *f,
		       tpc_wc **out, char *err, size_t errlen)
{
	SSL_CTX *ctx = tpc_tls_ctx_new(TPC_TLS_CLIENT, f, err, errlen);
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int rc;

	*out = NULL;
	if (!ctx)
		return -EINVAL;
	rc = tpc_wc_connect(hostport, timeout_ms, out, err, errlen);
	if (rc == 0) {
		(*out)->ssl = tpc_tls_client_ssl(ctx, hostport, err, errlen);
		rc = (*out)->ssl ? 0 : -EINVAL;
	}
	SSL_CTX_free(ctx); /* the SSL keeps its own reference */
	if (rc)
		goto out_fail;
	(void)setsockopt((*out)->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	SSL_set_fd((*out)->ssl, (*out)->fd);
	if (SSL_connect((*out)->ssl) != 1) {
		long vr = SSL_get_verify_result((*out)->ssl);
		char why[256] = "";
		ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
		ERR_clear_error();
		if (err)
			snprintf(err, errlen, "TLS handshake with %s failed: %s", hostport,
				 vr != X509_V_OK ? X509_verify_cert_error_string(vr) : why);
		rc = -EPROTO;
		goto out_fail;
	}
	tv = (struct timeval){ 0, 0 };
	(void)setsockopt((*out)->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return 0;
out_fail:
	tpc_wc_free(*out);
	*out = NULL;
	return rc;
}

/* ---- sending ------------------------------------------------------------------ */

int tpc_wc_send_raw(tpc_wc *wc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = wc->ssl ? SSL_write(wc->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len))
				    : send(wc->fd, p, len, MSG_NOSIGNAL);
		if (wc->ssl && n <= 0) {
			ERR_clear_error();
			return set_err(wc, -EPIPE, "TLS write failed");
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return set_err(wc, -ETIMEDOUT, "send: peer is not reading");
		if (n < 0)
			return set_err(wc, -errno, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tpc_wc_send(tpc_wc *wc, const Tpc__Envelope *env)
{
	size_t cap = protobuf_c_message_get_packed_size(&env->base) + TPC_FRAME_HEADER_SIZE;
	uint8_t *buf = malloc(cap);
	int rc;

	if (!buf)
		return set_err(wc, -ENOMEM, "out of memory");
	long n = tpc_wire_pack(env, buf, cap);
	if (n < 0) {
		rc = set_err(wc, (int)n, "cannot pack %s", tpc_wire_body_name(env->body_case));
		goto out_free;
	}
	rc = tpc_wc_send_raw(wc, buf, (size_t)n);
out_free:
	free(buf);
	return rc;
}

/* ---- receiving ---------------------------------------------------------------- */

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = tpc_now_ms();
	if (now >= deadline)
		return 0;
	uint64_t left = deadline - now;
	return left > 3600000 ? 3600000 : (int)left;
}

/* Decode one frame from buffered bytes. 1: *env set; 0: need more; <0: error. */
static int decode_buffered(tpc_wc *wc, Tpc__Envelope **env)
{
	while (wc->rstart < wc->rend) {
		size_t used = 0;
		const uint8_t *frame = NULL;
		uint32_t flen = 0;
		int rc = tpc_frame_feed(&wc->dec, wc->rbuf + wc->rstart, wc->rend - wc->rstart,
					&used, &frame, &flen);
		wc->rstart += used;
		if (rc < 0)
			return set_err(wc, -EPROTO, "bad frame (decoder status %d)", rc);
		if (rc == TPC_FRAME_READY) {
			*env = tpc__envelope__unpack(NULL, flen, frame);
			if (!*env)
				return set_err(wc, -EPROTO, "undecodable Envelope (%u bytes)",
					       flen);
			return 1;
		}
	}
	wc->rstart = wc->rend = 0;
	return 0;
}

/* One SSL_read into the (empty) buffer; the socket is readable or OpenSSL has bytes. */
static int fill_tls(tpc_wc *wc)
{
	int got = SSL_read(wc->ssl, wc->rbuf, WC_RBUF_SIZE);

	if (got <= 0) {
		int e = SSL_get_error(wc->ssl, got);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		return set_err(wc, -ECONNRESET, "connection closed by peer (TLS)");
	}
	wc->rstart = 0;
	wc->rend = (size_t)got;
	return 0;
}

/* Wait for readability and read once into the (empty) buffer. 0 or <0. */
static int fill_buffer(tpc_wc *wc, uint64_t deadline)
{
	struct pollfd p = { .fd = wc->fd, .events = POLLIN };
	int n = wc->ssl && SSL_pending(wc->ssl) > 0 ? 1 : poll(&p, 1, remaining_ms(deadline));

	if (n < 0 && errno == EINTR)
		return 0;
	if (n < 0)
		return set_err(wc, -errno, "poll: %s", strerror(errno));
	if (n == 0)
		return set_err(wc, -ETIMEDOUT, "no message before the deadline");
	if (wc->ssl)
		return fill_tls(wc);
	ssize_t got = read(wc->fd, wc->rbuf, WC_RBUF_SIZE);
	if (got < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (got < 0)
		return set_err(wc, -errno, "read: %s", strerror(errno));
	if (got == 0)
		return set_err(wc, -ECONNRESET, "connection closed by peer");
	wc->rstart = 0;
	wc->rend = (size_t)got;
	return 0;
}

/* Next Envelope from the socket only (the queue is the callers' business). */
static int recv_socket(tpc_wc *wc, uint64_t deadline, Tpc__Envelope **env)
{
	*env = NULL;
	for (;;) {
		int rc = decode_buffered(wc, env);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		rc = fill_buffer(wc, deadline);
		if (rc < 0)
			return rc;
	}
}

static int enqueue(tpc_wc *wc, Tpc__Envelope *env)
{
	struct wc_node *n = malloc(sizeof(*n));
	if (!n) {
		tpc__envelope__free_unpacked(env, NULL);
		return set_err(wc, -ENOMEM, "out of memory");
	}
	n->next = NULL;
	n->env = env;
	if (wc->qtail)
		wc->qtail->next = n;
	else
		wc->qhead = n;
	wc->qtail = n;
	wc->nq++;
	return 0;
}

/* Remove and return the first queued Envelope for which match() holds, or NULL. */
static Tpc__Envelope *dequeue_match(tpc_wc *wc, int (*match)(const Tpc__Envelope *, uint64_t),
				    uint64_t key)
{
	struct wc_node **pp = &wc->qhead, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->next) {
		struct wc_node *n = *pp;
		if (!match(n->env, key))
			continue;
		*pp = n->next;
		if (wc->qtail == n)
			wc->qtail = prev;
		wc->nq--;
		Tpc__Envelope *env = n->env;
		free(n);
		return env;
	}
	return NULL;
}

static int match_any(const Tpc__Envelope *e, uint64_t key) { return 1; }
static int match_body(const Tpc__Envelope *e, uint64_t key) { return e->body_case == key; }
static int match_request(const Tpc__Envelope *e, uint64_t key) { return e->request_id == key; }

static void note_unsolicited(tpc_wc *wc, const Tpc__Envelope *e)
{
	if (e->body_case != TPC__ENVELOPE__BODY_ERROR || e->request_id != 0 || !e->error)
		return;
	snprintf(wc->unsolicited, sizeof(wc->unsolicited), "%s: %s",
		 tpc_wc_error_name(e->error->code), e->error->message ? e->error->message : "");
}

/* Wait for the first Envelope matching (match, key); queue every other one. */
static int recv_matching(tpc_wc *wc, int (*match)(const Tpc__Envelope *, uint64_t),
			 uint64_t key, int timeout_ms, Tpc__Envelope **out)
{
	uint64_t deadline = tpc_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	int rc;

	*out = dequeue_match(wc, match, key);
	if (*out)
		return 0;
	for (;;) {
		Tpc__Envelope *env;
		rc = recv_socket(wc, deadline, &env);
		if (rc < 0)
			break;
		if (match(env, key)) {
			*out = env;
			return 0;
		}
		note_unsolicited(wc, env);
		rc = enqueue(wc, env);
		if (rc < 0)
			break;
	}
	if (rc == -ECONNRESET && wc->unsolicited[0])
		set_err(wc, rc, "connection closed by peer (after error %s)", wc->unsolicited);
	return rc;
}

Tpc__Envelope *tpc_wc_recv(tpc_wc *wc, int timeout_ms)
{
	Tpc__Envelope *env = NULL;

	wc->last_rc = recv_matching(wc, match_any, 0, timeout_ms, &env);
	return env;
}

Tpc__Envelope *tpc_wc_recv_body(tpc_wc *wc, Tpc__Envelope__BodyCase body, int timeout_ms)
{
	Tpc__Envelope *env = NULL;

	wc->last_rc = recv_matching(wc, match_body, (uint64_t)body, timeout_ms, &env);
	return env;
}

/* ---- request / reply ---------------------------------------------------------- */

static int take_error(tpc_wc *wc, Tpc__Envelope *reply)
{
	const Tpc__Error *e = reply->error;

	wc->err_code = e ? e->code : TPC__ERROR_CODE__ERR_NONE;
	set_err(wc, TPC_WC_EREPLY, "%s: %s", tpc_wc_error_name(wc->err_code),
		e && e->message ? e->message : "");
	tpc__envelope__free_unpacked(reply, NULL);
	return TPC_WC_EREPLY;
}

int tpc_wc_call(tpc_wc *wc, Tpc__Envelope *req, Tpc__Envelope **reply)
{
	int rc;

	*reply = NULL;
	wc->err_code = TPC__ERROR_CODE__ERR_NONE;
	wc->unsolicited[0] = '\0';
	req->request_id = tpc_wc_next_request_id(wc);
	rc = tpc_wc_send(wc, req);
	if (rc < 0)
		return rc;
	rc = recv_matching(wc, match_request, req->request_id, wc->timeout_ms, reply);
	if (rc < 0)
		return rc;
	if ((*reply)->body_case == TPC__ENVELOPE__BODY_ERROR) {
		rc = take_error(wc, *reply);
		*reply = NULL;
	}
	return rc;
}

/* Call, then insist that the reply has body @p want (or its sub-message is missing). */
static int call_expect(tpc_wc *wc, Tpc__Envelope *req, Tpc__Envelope__BodyCase want,
		       Tpc__Envelope **reply)
{
	int rc = tpc_wc_call(wc, req, reply);

	if (rc < 0)
		return rc;
	if ((*reply)->body_case == want)
		return 0;
	set_err(wc, -EPROTO, "expected %s, got %s", tpc_wire_body_name(want),
		tpc_wire_body_name((*reply)->body_case));
	tpc__envelope__free_unpacked(*reply, NULL);
	*reply = NULL;
	return -EPROTO;
}

void tpc_wc_default_identity(const char *name, struct tpc_wc_identity *id)
{
	uint64_t h1 = 14695981039346656037ull, h2 = 0x9E3779B97F4A7C15ull;

	memset(id, 0, sizeof(*id));
	for (const char *p = name ? name : ""; *p; p++) { /* FNV-1a, twice over */
		h1 = (h1 ^ (uint8_t)*p) * 1099511628211ull;
		h2 = (h2 ^ (uint8_t)*p) * 1099511628211ull;
	}
	for (int i = 0; i < 8; i++) {
		id->participant_id[i] = (uint8_t)(h1 >> (8 * i));
		id->participant_id[8 + i] = (uint8_t)(h2 >> (8 * i));
	}
	id->incarnation = 1;
}

int tpc_wc_parse_participant_id(const char *hex, uint8_t out[16])
{
	if (!hex || strlen(hex) != 32)
		return -1;
	for (int i = 0; i < 32; i++) {
		char ch = hex[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0'
			: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
			: ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
		if (v < 0)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] << 4) | v : v);
	}
	return 0;
}

static int hello_as(tpc_wc *wc, Tpc__Role role, const char *name,
		    const struct tpc_wc_identity *id, uint64_t *epoch)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT, *rep;
	Tpc__Hello h = TPC__HELLO__INIT;

	h.role = role;
	h.name = (char *)(name ? name : "");
	h.protocol_version = TPC_PROTOCOL_VERSION;
	if (id) {
		h.participant_id.data = (uint8_t *)id->participant_id;
		h.participant_id.len = sizeof(id->participant_id);
		h.incarnation = id->incarnation;
		h.prepared_txids = (uint64_t *)id->prepared_txids;
		h.n_prepared_txids = id->n_prepared;
	}
	req.body_case = TPC__ENVELOPE__BODY_HELLO;
	req.hello = &h;
	int rc = call_expect(wc, &req, TPC__ENVELOPE__BODY_HELLO_REPLY, &rep);
	if (rc < 0)
		return rc;
	if (epoch)
		*epoch = rep->hello_reply ? rep->hello_reply->epoch : 0;
	tpc__envelope__free_unpacked(rep, NULL);
	return 0;
}

int tpc_wc_hello(tpc_wc *wc, Tpc__Role role, const char *name, uint64_t *epoch)
{
	struct tpc_wc_identity id;

	if (role != TPC__ROLE__ROLE_PARTICIPANT)
		return hello_as(wc, role, name, NULL, epoch);
	tpc_wc_default_identity(name, &id);
	return hello_as(wc, role, name, &id, epoch);
}

int tpc_wc_hello_participant(tpc_wc *wc, const char *name, const struct tpc_wc_identity *id,
			     uint64_t *epoch)
{
	return hello_as(wc, TPC__ROLE__ROLE_PARTICIPANT, name, id, epoch);
}

int tpc_wc_begin(tpc_wc *wc, const char *key, uint32_t timeout_ms, struct tpc_wc_begin *out)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT, *rep;
	Tpc__Begin b = TPC__BEGIN__INIT;

	b.timeout_ms = timeout_ms;
	b.txn_key = (char *)(key ? key : "");
	req.body_case = TPC__ENVELOPE__BODY_BEGIN;
	req.begin = &b;
	int rc = call_expect(wc, &req, TPC__ENVELOPE__BODY_BEGIN_REPLY, &rep);
	if (rc < 0)
		return rc;
	const Tpc__BeginReply *r = rep->begin_reply;
	out->txid = r ? r->txid : 0;
	out->result = r ? r->result : TPC__BEGIN_RESULT__BEGIN_STARTED;
	out->fenced_txid = r ? r->fenced_txid : 0;
	out->token_len = r ? r->txn_token.len : 0;
	memset(out->token, 0, sizeof(out->token));
	if (out->token_len)
		memcpy(out->token, r->txn_token.data,
		       out->token_len < sizeof(out->token) ? out->token_len : sizeof(out->token));
	tpc__envelope__free_unpacked(rep, NULL);
	return 0;
}

static int take_outcome(tpc_wc *wc, Tpc__Envelope *req, struct tpc_wc_outcome *out)
{
	Tpc__Envelope *rep;
	int rc = call_expect(wc, req, TPC__ENVELOPE__BODY_OUTCOME, &rep);

	if (rc < 0)
		return rc;
	const Tpc__Outcome *o = rep->outcome;
	out->txid = o ? o->txid : 0;
	out->outcome = o ? o->outcome : TPC__OUTCOME_KIND__OUTCOME_UNKNOWN;
	snprintf(out->reason, sizeof(out->reason), "%s", o && o->reason ? o->reason : "");
	tpc__envelope__free_unpacked(rep, NULL);
	return 0;
}

int tpc_wc_commit(tpc_wc *wc, uint64_t txid, struct tpc_wc_outcome *out)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT;
	Tpc__Commit c = TPC__COMMIT__INIT;

	c.txid = txid;
	req.body_case = TPC__ENVELOPE__BODY_COMMIT;
	req.commit = &c;
	return take_outcome(wc, &req, out);
}

int tpc_wc_abort(tpc_wc *wc, uint64_t txid, const char *reason, struct tpc_wc_outcome *out)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT;
	Tpc__Abort a = TPC__ABORT__INIT;

	a.txid = txid;
	a.reason = (char *)(reason ? reason : "");
	req.body_case = TPC__ENVELOPE__BODY_ABORT;
	req.abort = &a;
	return take_outcome(wc, &req, out);
}

int tpc_wc_status(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus *status)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT, *rep;
	Tpc__StatusQuery q = TPC__STATUS_QUERY__INIT;

	q.txid = txid;
	req.body_case = TPC__ENVELOPE__BODY_STATUS_QUERY;
	req.status_query = &q;
	int rc = call_expect(wc, &req, TPC__ENVELOPE__BODY_STATUS_REPLY, &rep);
	if (rc < 0)
		return rc;
	*status = rep->status_reply ? rep->status_reply->status : TPC__TXN_STATUS__STATUS_PENDING;
	tpc__envelope__free_unpacked(rep, NULL);
	return 0;
}
