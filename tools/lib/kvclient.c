/*
 * kvclient.c - asynchronous tpc-kv client (see kvclient.h).
 *
 * Pending requests sit in a FIFO list with their deadline; replies are matched by
 * request id (tpc-kv answers each connection in order, but matching by id keeps the
 * client right even if that ever changes). With kvc_set_tls, each connection is a
 * client-side TLS bufferevent (common/tls.h); a failed handshake drops it like any
 * other connection error (pending requests fail with TPC_ECLOSED).
 */
#include "kvclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "list.h"
#include "tls.h"
#include "tpc/common.h"
#include "util.h"
#include "wire.h"

struct kv_req {
	struct list_node link; /* first: the pending list, oldest first */
	uint64_t id, txid, deadline_ms;
	kvc_put_cb cb;
	kvc_get_cb get_cb;          /* a Get: answered through this one instead */
	void *arg;
};

struct kvc {
	struct event_base *base;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct bufferevent *bev;
	struct tpc_frame_decoder dec;
	struct event *timer;
	struct list pending;        /* struct kv_req */
	uint64_t next_id;
	uint32_t timeout_ms;
	SSL_CTX *tls;               /* kvc_set_tls: TLS from the next connection on */
	char hostport[256];         /* for the TLS host check */
};

static struct kv_req *oldest(const struct kvc *c)
{
	return (struct kv_req *)c->pending.head;
}

static void fail_all(struct kvc *c, int err)
{
	struct kv_req *r;

	while ((r = oldest(c))) {
		list_unlink(&c->pending, &r->link);
		if (r->get_cb)
			r->get_cb(r->arg, err, NULL);
		else
			r->cb(r->arg, err, r->txid);
		free(r);
	}
}

static void drop(struct kvc *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	tpc_frame_decoder_free(&c->dec);
	fail_all(c, TPC_ECLOSED);
}

static struct kv_req *take(struct kvc *c, uint64_t id)
{
	for (struct list_node *x = c->pending.head; x; x = x->next) {
		struct kv_req *r = (struct kv_req *)x;
		if (r->id == id) {
			list_unlink(&c->pending, x);
			return r;
		}
	}
	return NULL;
}

static int error_code(const Tpc__Error *e)
{
	switch (e->code) {
	case TPC__ERROR_CODE__ERR_NOT_FOUND: return TPC_ENOTFOUND;
	case TPC__ERROR_CODE__ERR_NOT_ACTIVE: return TPC_ENOTACTIVE;
	case TPC__ERROR_CODE__ERR_LIMIT: return TPC_ELIMIT;
	default: return TPC_EUNAVAIL;
	}
}

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct kvc *c = arg;
	Tpc__Envelope *env = tpc__envelope__unpack(NULL, len, body);

	if (!env)
		return -1;
	struct kv_req *r = take(c, env->request_id);
	if (r) {
		int err = 0, want = r->get_cb ? TPC__ENVELOPE__BODY_KV_GET_REPLY
					      : TPC__ENVELOPE__BODY_KV_PUT_REPLY;
		if (env->body_case == TPC__ENVELOPE__BODY_ERROR)
			err = error_code(env->error);
		else if ((int)env->body_case != want)
			err = TPC_EPROTO;
		if (r->get_cb)
			r->get_cb(r->arg, err, err ? NULL : env->kv_get_reply);
		else
			r->cb(r->arg, err, r->txid);
		free(r);
	}
	tpc__envelope__free_unpacked(env, NULL);
	return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct kvc *c = arg;
	if (tpc_wire_read(bufferevent_get_input(bev), &c->dec, on_frame, c) != 0)
		drop(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		drop(arg);
	else if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct kvc *c = arg;
	uint64_t now = tpc_now_ms();

	/* A request past its deadline: the connection is presumed stuck; drop it. */
	if (oldest(c) && oldest(c)->deadline_ms <= now) {
		drop(c);
		return;
	}
	struct timeval tv = { 0, 100000 };
	evtimer_add(c->timer, &tv);
}

static struct bufferevent *new_bev(struct kvc *c)
{
	char err[256];

	if (!c->tls)
		return bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	return tpc_tls_bev_new(c->base, -1, tpc_tls_client_ssl(c->tls, c->hostport, err,
							       sizeof(err)), 0);
}

int kvc_set_tls(struct kvc *c, const struct tpc_tls_files *f, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (!tpc_tls_files_given(f))
		return 0;
	ctx = tpc_tls_ctx_new(TPC_TLS_CLIENT, f, err, errlen);
	if (!ctx)
		return -EINVAL;
	SSL_CTX_free(c->tls);
	c->tls = ctx;
	return 0;
}

static int ensure_connected(struct kvc *c)
{
	if (c->bev)
		return 0;
	c->bev = new_bev(c);
	if (!c->bev)
		return -ENOMEM;
	tpc_frame_decoder_init(&c->dec, TPC_FRAME_DEFAULT_MAX);
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr, (int)c->addrlen) < 0) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		return TPC_ECLOSED;
	}
	return 0;
}

struct kvc *kvc_new(struct event_base *base, const char *hostport, uint32_t timeout_ms)
{
	struct kvc *c = calloc(1, sizeof(*c));
	char err[128];

	if (!c)
		return NULL;
	if (tpc_parse_hostport(hostport, &c->addr, &c->addrlen, err, sizeof(err))) {
		free(c);
		return NULL;
	}
	c->base = base;
	snprintf(c->hostport, sizeof(c->hostport), "%s", hostport);
	c->timeout_ms = timeout_ms ? timeout_ms : 10000;
	c->timer = evtimer_new(base, on_timer, c);
	struct timeval tv = { 0, 100000 };
	if (!c->timer || evtimer_add(c->timer, &tv)) {
		kvc_free(c);
		return NULL;
	}
	return c;
}

/* Send @p env as request @p r (filled but for id and deadline); it owns @p r after. */
static int send_req(struct kvc *c, Tpc__Envelope *env, struct kv_req *r)
{
	int rc;

	env->request_id = ++c->next_id;
	rc = tpc_wire_send(bufferevent_get_output(c->bev), env, TPC_FRAME_DEFAULT_MAX);
	if (rc) {
		free(r);
		return rc;
	}
	r->id = env->request_id;
	r->deadline_ms = tpc_now_ms() + c->timeout_ms;
	list_append(&c->pending, &r->link);
	return 0;
}

int kvc_put(struct kvc *c, uint64_t txid, const void *key, size_t klen, const void *val,
	    size_t vlen, kvc_put_cb cb, void *arg)
{
	return kvc_put_token(c, txid, NULL, key, klen, val, vlen, cb, arg);
}

int kvc_put_token(struct kvc *c, uint64_t txid, const uint8_t *token, const void *key,
		  size_t klen, const void *val, size_t vlen, kvc_put_cb cb, void *arg)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__KvPut put = TPC__KV_PUT__INIT;
	struct kv_req *r = calloc(1, sizeof(*r));
	int rc = r ? ensure_connected(c) : -ENOMEM;

	if (rc) {
		free(r);
		return rc;
	}
	put.txid = txid;
	if (token)
		put.txn_token = (ProtobufCBinaryData){ TPC_TXN_TOKEN_LEN, (uint8_t *)token };
	put.key.data = (uint8_t *)key;
	put.key.len = klen;
	put.value.data = (uint8_t *)val;
	put.value.len = vlen;
	env.body_case = TPC__ENVELOPE__BODY_KV_PUT;
	env.kv_put = &put;
	*r = (struct kv_req){ .txid = txid, .cb = cb, .arg = arg };
	return send_req(c, &env, r);
}

int kvc_get(struct kvc *c, const void *key, size_t klen, kvc_get_cb cb, void *arg)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__KvGet get = TPC__KV_GET__INIT;
	struct kv_req *r = calloc(1, sizeof(*r));
	int rc = r ? ensure_connected(c) : -ENOMEM;

	if (rc) {
		free(r);
		return rc;
	}
	get.key = (ProtobufCBinaryData){ klen, (uint8_t *)key };
	env.body_case = TPC__ENVELOPE__BODY_KV_GET;
	env.kv_get = &get;
	*r = (struct kv_req){ .get_cb = cb, .arg = arg };
	return send_req(c, &env, r);
}

size_t kvc_inflight(const struct kvc *c)
{
	return c->pending.n;
}

void kvc_free(struct kvc *c)
{
	if (!c)
		return;
	drop(c);
	if (c->timer)
		event_free(c->timer);
	SSL_CTX_free(c->tls);
	free(c);
}
