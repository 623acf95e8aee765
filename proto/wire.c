/*
 * wire.c - Envelope packing, frame reading over evbuffers, and field validation.
 *
 * Reading peeks at the evbuffer's contiguous chunks and feeds them to the pure frame
 * decoder (frame.c), so a frame that lies within one chunk is handed to the caller in
 * place; only frames split across chunks are copied once.
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

int tpc_wire_send(struct evbuffer *out, const Tpc__Envelope *env, uint32_t max_frame)
{
	size_t len = protobuf_c_message_get_packed_size(&env->base);
	struct evbuffer_iovec v;

	if (len == 0 || len > max_frame)
		return -EMSGSIZE;
	if (evbuffer_reserve_space(out, (ev_ssize_t)(len + TPC_FRAME_HEADER_SIZE), &v, 1) < 1)
		return -ENOMEM;
	uint8_t *p = v.iov_base;
	tpc_frame_put_header(p, (uint32_t)len);
	protobuf_c_message_pack(&env->base, p + TPC_FRAME_HEADER_SIZE);
	v.iov_len = len + TPC_FRAME_HEADER_SIZE;
	if (evbuffer_commit_space(out, &v, 1) < 0)
		return -ENOMEM;
	return 0;
}

/* One write of what @p out holds: through TLS on a TLS bufferevent, else to the socket.
 * Returns like write(); -1 with errno EAGAIN when TLS wants to read or write first. */
static int write_some(struct bufferevent *bev, struct evbuffer *out, evutil_socket_t fd)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	struct evbuffer_iovec v;
	int n;

	if (!ssl)
		return evbuffer_write(out, fd);
	if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
		return 0;
	n = SSL_write(ssl, v.iov_base, v.iov_len > INT32_MAX ? INT32_MAX : (int)v.iov_len);
	if (n > 0) {
		evbuffer_drain(out, (size_t)n);
		return n;
	}
	int e = SSL_get_error(ssl, n);
	errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EIO;
	return -1;
}

void tpc_wire_flush_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);
	struct timespec start, now;

	/* Only a socket bufferevent freezes its output's start; a TLS one drains its output
	 * itself and must find it unfrozen. */
	int frozen = bufferevent_openssl_get_ssl(bev) == NULL;

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (frozen)
		evbuffer_unfreeze(out, 1);
	while (evbuffer_get_length(out) > 0) {
		int n = write_some(bev, out, fd);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, 100);
		} else if (n <= 0) {
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= 1)
			break;
	}
	if (frozen)
		evbuffer_freeze(out, 1);
}

long tpc_wire_pack(const Tpc__Envelope *env, uint8_t *buf, size_t cap)
{
	size_t len = protobuf_c_message_get_packed_size(&env->base);

	if (len == 0 || len + TPC_FRAME_HEADER_SIZE > cap || len > UINT32_MAX)
		return -EMSGSIZE;
	tpc_frame_put_header(buf, (uint32_t)len);
	protobuf_c_message_pack(&env->base, buf + TPC_FRAME_HEADER_SIZE);
	return (long)(len + TPC_FRAME_HEADER_SIZE);
}

int tpc_wire_read(struct evbuffer *in, struct tpc_frame_decoder *dec, tpc_wire_frame_cb cb,
		  void *arg)
{
	for (;;) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return 0;
		size_t used = 0;
		const uint8_t *frame = NULL;
		uint32_t flen = 0;
		int rc = tpc_frame_feed(dec, v.iov_base, v.iov_len, &used, &frame, &flen);
		if (rc < 0)
			return rc;
		if (rc == TPC_FRAME_READY) {
			/* The frame may point into the chunk: call back before draining it. */
			int stop = cb(arg, frame, flen);
			if (stop == TPC_WIRE_PAUSE)
				evbuffer_drain(in, used);
			if (stop)
				return stop; /* else the callback may have freed the buffer */
		}
		evbuffer_drain(in, used);
	}
}

static void *arena_alloc(void *data, size_t size)
{
	struct tpc_arena *a = data;
	size_t need = (size + 15) & ~(size_t)15;

	if (a->buf && a->cap - a->used >= need) {
		void *p = a->buf + a->used;
		a->used += need;
		return p;
	}
	if (a->nbig == a->big_cap) {
		size_t ncap = a->big_cap ? a->big_cap * 2 : 8;
		void **nb = realloc(a->big, ncap * sizeof(*nb));
		if (!nb)
			return NULL;
		a->big = nb;
		a->big_cap = ncap;
	}
	void *p = malloc(size ? size : 1);
	if (p)
		a->big[a->nbig++] = p;
	return p;
}

static void arena_free_noop(void *data, void *ptr)
{
	(void)data;
	(void)ptr; /* released all at once by the next reset */
}

void tpc_arena_init(struct tpc_arena *a, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->alloc.alloc = arena_alloc;
	a->alloc.free = arena_free_noop;
	a->alloc.allocator_data = a;
	a->buf = malloc(cap);
	a->cap = a->buf ? cap : 0;
}

static void arena_reset(struct tpc_arena *a)
{
	for (size_t i = 0; i < a->nbig; i++)
		free(a->big[i]);
	a->nbig = 0;
	a->used = 0;
}

void tpc_arena_free(struct tpc_arena *a)
{
	arena_reset(a);
	free(a->big);
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

Tpc__Envelope *tpc_wire_unpack(struct tpc_arena *a, const uint8_t *body, size_t len)
{
	arena_reset(a);
	return tpc__envelope__unpack(&a->alloc, len, body);
}

static int need(int cond, const char *msg, const char **why)
{
	if (cond)
		return 0;
	*why = msg;
	return -EINVAL;
}

#define NEED_TXID(m) need((m) != NULL && (m)->txid != 0, "txid is required", why)

/* A string field no longer than @p max bytes (NULL counts as empty). */
static int short_str(const char *s, size_t max)
{
	return !s || strnlen(s, max + 1) <= max;
}

static int validate_hello(const Tpc__Hello *h, const char **why)
{
	if (!h)
		return need(0, "hello body missing", why);
	if (h->role != TPC__ROLE__ROLE_CLIENT && h->role != TPC__ROLE__ROLE_PARTICIPANT)
		return need(0, "hello.role must be client or participant", why);
	if (!short_str(h->name, TPC_WIRE_MAX_NAME))
		return need(0, "hello.name is longer than " TPC_WIRE_MAX_NAME_STR " bytes", why);
	if (h->role == TPC__ROLE__ROLE_PARTICIPANT)
		return need(h->name && h->name[0], "hello.name is required for a participant",
			    why);
	return 0;
}

static int validate_orphans(const Tpc__OrphanReport *r, const char **why)
{
	if (!r)
		return need(0, "orphan_report body missing", why);
	if (r->n_orphans > TPC_WIRE_MAX_ORPHANS)
		return need(0, "orphan_report lists more than " TPC_WIRE_MAX_ORPHANS_STR
			    " orphans", why);
	for (size_t i = 0; i < r->n_orphans; i++) {
		const Tpc__Orphan *o = r->orphans[i];
		if (NEED_TXID(o))
			return -EINVAL;
		if (!short_str(o->gid, TPC_WIRE_MAX_NAME) ||
		    !short_str(o->reason, TPC_WIRE_MAX_REASON))
			return need(0, "orphan.gid or orphan.reason is too long", why);
	}
	return 0;
}

int tpc_wire_validate(const Tpc__Envelope *env, const char **why)
{
	switch (env->body_case) {
	case TPC__ENVELOPE__BODY_HELLO:
		return validate_hello(env->hello, why);
	case TPC__ENVELOPE__BODY_BEGIN:
		if (need(env->begin != NULL, "begin body missing", why))
			return -EINVAL;
		return need(short_str(env->begin->txn_key, TPC_WIRE_MAX_KEY),
			    "begin.txn_key is longer than " TPC_WIRE_MAX_KEY_STR " bytes", why);
	case TPC__ENVELOPE__BODY_JOIN:
		if (NEED_TXID(env->join))
			return -EINVAL;
		if (need(short_str(env->join->participant, TPC_WIRE_MAX_NAME),
			 "join.participant is longer than " TPC_WIRE_MAX_NAME_STR " bytes", why))
			return -EINVAL;
		return need(env->join->participant && env->join->participant[0],
			    "join.participant is required", why);
	case TPC__ENVELOPE__BODY_COMMIT:
		return NEED_TXID(env->commit);
	case TPC__ENVELOPE__BODY_ABORT:
		if (NEED_TXID(env->abort))
			return -EINVAL;
		return need(short_str(env->abort->reason, TPC_WIRE_MAX_REASON),
			    "abort.reason is longer than " TPC_WIRE_MAX_REASON_STR " bytes", why);
	case TPC__ENVELOPE__BODY_VOTE:
		if (NEED_TXID(env->vote))
			return -EINVAL;
		if (need(short_str(env->vote->reason, TPC_WIRE_MAX_REASON),
			 "vote.reason is longer than " TPC_WIRE_MAX_REASON_STR " bytes", why))
			return -EINVAL;
		return need(env->vote->vote <= TPC__VOTE_KIND__VOTE_READ_ONLY,
			    "vote.vote is not a known vote", why);
	case TPC__ENVELOPE__BODY_ACK:
		return NEED_TXID(env->ack);
	case TPC__ENVELOPE__BODY_STATUS_QUERY:
		return NEED_TXID(env->status_query);
	case TPC__ENVELOPE__BODY_PREPARE:
		return NEED_TXID(env->prepare);
	case TPC__ENVELOPE__BODY_DECISION:
		if (NEED_TXID(env->decision))
			return -EINVAL;
		return need(env->decision->decision <= TPC__DECISION_KIND__DECISION_COMMIT,
			    "decision.decision is not a known decision", why);
	case TPC__ENVELOPE__BODY_STATUS_REPLY:
		return NEED_TXID(env->status_reply);
	case TPC__ENVELOPE__BODY_ORPHAN_REPORT:
		return validate_orphans(env->orphan_report, why);
	case TPC__ENVELOPE__BODY_KV_PUT:
		if (NEED_TXID(env->kv_put))
			return -EINVAL;
		return need(env->kv_put->key.len > 0, "kv_put.key is required", why);
	case TPC__ENVELOPE__BODY_KV_GET:
		return need(env->kv_get && env->kv_get->key.len > 0, "kv_get.key is required",
			    why);
	case TPC__ENVELOPE__BODY__NOT_SET:
		return need(0, "envelope has no body", why);
	default:
		/* Replies and errors carry nothing that must be checked beyond presence. */
		return 0;
	}
}

const char *tpc_wire_body_name(Tpc__Envelope__BodyCase c)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field(&tpc__envelope__descriptor, (unsigned)c);
	return f ? f->name : "none";
}

const char *tpc_wire_outcome_name(Tpc__OutcomeKind k)
{
	switch (k) {
	case TPC__OUTCOME_KIND__OUTCOME_COMMITTED: return "COMMITTED";
	case TPC__OUTCOME_KIND__OUTCOME_ABORTED: return "ABORTED";
	case TPC__OUTCOME_KIND__OUTCOME_FORGOTTEN: return "FORGOTTEN";
	default: return "UNKNOWN";
	}
}

const char *tpc_wire_status_name(Tpc__TxnStatus s)
{
	switch (s) {
	case TPC__TXN_STATUS__STATUS_COMMITTED: return "COMMITTED";
	case TPC__TXN_STATUS__STATUS_ABORTED: return "ABORTED";
	case TPC__TXN_STATUS__STATUS_FORGOTTEN: return "FORGOTTEN";
	default: return "PENDING";
	}
}

void tpc_wire_throttle(struct bufferevent *bev, size_t low, uint32_t timeout_ms,
		       tpc_bev_data_cb read, tpc_bev_data_cb drained, tpc_bev_event_cb event,
		       void *arg)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	bufferevent_disable(bev, EV_READ);
	bufferevent_setwatermark(bev, EV_WRITE, low, 0);
	bufferevent_setcb(bev, read, drained, event, arg);
	bufferevent_set_timeouts(bev, NULL, &tv);
}

void tpc_wire_resume(struct bufferevent *bev, tpc_bev_data_cb read, tpc_bev_event_cb event,
		     void *arg)
{
	bufferevent_setcb(bev, read, NULL, event, arg);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_enable(bev, EV_READ);
}
