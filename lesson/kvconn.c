/*
 * kvconn.c - the pipelined blocking tpc-kv client (see kvconn.h).
 *
 * One exec: pack every request into one buffer (request ids base..base+n-1), write it
 * with poll() against a deadline, then read and decode frames until every id has its
 * reply. Any transport error or timeout closes the socket, so a late reply can never
 * be taken for the answer to a later request.
 */
#include "kvconn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "tpc/common.h"
#include "util.h"
#include "wire.h"

int kvconn_init(struct kvconn *c, const char *hostport, uint32_t timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = timeout_ms ? timeout_ms : 5000;
	c->next_id = 1;
	if (tpc_parse_hostport(hostport, &c->addr, &c->addrlen, c->err, sizeof(c->err)))
		return -EINVAL;
	return 0;
}

static void kv_disconnect(struct kvconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	tpc_frame_decoder_free(&c->dec);
}

void kvconn_free(struct kvconn *c)
{
	kv_disconnect(c);
	free(c->out);
	c->out = NULL;
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	uint64_t now = tpc_now_ms();
	struct pollfd p = { .fd = fd, .events = events };

	if (now >= deadline)
		return -ETIMEDOUT;
	int rc = poll(&p, 1, (int)(deadline - now));
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	return rc == 0 ? -ETIMEDOUT : 0;
}

static int kv_connect(struct kvconn *c, uint64_t deadline)
{
	int one = 1, err = 0;
	socklen_t len = sizeof(err);

	c->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&c->addr, c->addrlen) && errno != EINPROGRESS) {
		err = -errno;
		goto out_close;
	}
	if ((err = wait_fd(c->fd, POLLOUT, deadline)))
		goto out_close;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		err = err ? -err : -errno;
		goto out_close;
	}
	tpc_frame_decoder_init(&c->dec, TPC_FRAME_DEFAULT_MAX);
	return 0;
out_close:
	close(c->fd);
	c->fd = -1;
	return err;
}

static long pack_op(const struct kv_op *op, uint64_t id, uint64_t txid, uint8_t *buf, size_t cap)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__KvPut put = TPC__KV_PUT__INIT;
	Tpc__KvGet get = TPC__KV_GET__INIT;

	env.request_id = id;
	if (op->kind == KV_PUT) {
		put.txid = txid;
		put.key = (ProtobufCBinaryData){ op->key_len, (uint8_t *)op->key };
		put.value = (ProtobufCBinaryData){ op->val_len, (uint8_t *)op->val };
		env.body_case = TPC__ENVELOPE__BODY_KV_PUT;
		env.kv_put = &put;
	} else {
		get.key = (ProtobufCBinaryData){ op->key_len, (uint8_t *)op->key };
		env.body_case = TPC__ENVELOPE__BODY_KV_GET;
		env.kv_get = &get;
	}
	return tpc_wire_pack(&env, buf, cap);
}

/* Pack every op into c->out; the total length, or a negative code. */
static long pack_all(struct kvconn *c, uint64_t base, uint64_t txid, const struct kv_op *ops,
		     size_t n)
{
	size_t need = 0, len = 0;

	for (size_t i = 0; i < n; i++)
		need += ops[i].key_len + ops[i].val_len + 64;
	if (need > c->out_cap) {
		uint8_t *nb = realloc(c->out, need);
		if (!nb)
			return -ENOMEM;
		c->out = nb;
		c->out_cap = need;
	}
	for (size_t i = 0; i < n; i++) {
		long w = pack_op(&ops[i], base + i, txid, c->out + len, c->out_cap - len);
		if (w < 0)
			return w;
		len += (size_t)w;
	}
	return (long)len;
}

static int send_all(struct kvconn *c, size_t len, uint64_t deadline)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = send(c->fd, c->out + done, len - done, MSG_NOSIGNAL);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		int rc = wait_fd(c->fd, POLLOUT, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

static int code_of(Tpc__ErrorCode code)
{
	switch (code) {
	case TPC__ERROR_CODE__ERR_NOT_FOUND: return TPC_ENOTFOUND;
	case TPC__ERROR_CODE__ERR_NOT_ACTIVE: return TPC_ENOTACTIVE;
	case TPC__ERROR_CODE__ERR_LIMIT: return TPC_ELIMIT;
	case TPC__ERROR_CODE__ERR_INVALID: return -EINVAL;
	default: return TPC_EUNAVAIL;
	}
}

/* Fill the op a reply answers; 1 if it was one of ours, 0 if not, negative on OOM. */
static int take_reply(const Tpc__Envelope *env, uint64_t base, struct kv_op *ops, size_t n)
{
	if (env->request_id < base || env->request_id >= base + n)
		return 0;
	struct kv_op *op = &ops[env->request_id - base];
	if (env->body_case == TPC__ENVELOPE__BODY_ERROR) {
		op->err = code_of(env->error->code);
	} else if (env->body_case == TPC__ENVELOPE__BODY_KV_GET_REPLY && op->kind == KV_GET) {
		const Tpc__KvGetReply *r = env->kv_get_reply;
		op->found = r->found;
		op->txid = r->txid;
		op->value = malloc(r->value.len + 1);
		if (!op->value)
			return -ENOMEM;
		if (r->value.len)
			memcpy(op->value, r->value.data, r->value.len);
		op->value[r->value.len] = 0;
		op->value_len = r->value.len;
	} else if (env->body_case != TPC__ENVELOPE__BODY_KV_PUT_REPLY || op->kind != KV_PUT) {
		op->err = TPC_EPROTO;
	}
	return 1;
}

/* Decode every frame in [in, in+len); adds answered replies to *got. */
static int feed(struct kvconn *c, const uint8_t *in, size_t len, uint64_t base, struct kv_op *ops,
		size_t n, size_t *got)
{
	while (len) {
		size_t used = 0;
		const uint8_t *frame;
		uint32_t flen;
		int st = tpc_frame_feed(&c->dec, in, len, &used, &frame, &flen);
		if (st < 0)
			return TPC_EPROTO;
		in += used;
		len -= used;
		if (st != TPC_FRAME_READY)
			continue;
		Tpc__Envelope *env = tpc__envelope__unpack(NULL, flen, frame);
		if (!env)
			return TPC_EPROTO;
		int rc = take_reply(env, base, ops, n);
		tpc__envelope__free_unpacked(env, NULL);
		if (rc < 0)
			return rc;
		*got += (size_t)rc;
	}
	return 0;
}

static int recv_all(struct kvconn *c, uint64_t base, struct kv_op *ops, size_t n,
		    uint64_t deadline)
{
	uint8_t buf[64 << 10];
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
		if (r == 0)
			return TPC_ECLOSED;
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -errno;
			int rc = wait_fd(c->fd, POLLIN, deadline);
			if (rc)
				return rc;
			continue;
		}
		int rc = feed(c, buf, (size_t)r, base, ops, n, &got);
		if (rc)
			return rc;
	}
	return 0;
}

int kvconn_exec(struct kvconn *c, uint64_t txid, struct kv_op *ops, size_t n)
{
	uint64_t deadline = tpc_now_ms() + c->timeout_ms, base = c->next_id;
	int rc = 0;

	if (n == 0)
		return 0;
	kv_ops_clear(ops, n);
	c->next_id += n;
	if (c->fd < 0 && (rc = kv_connect(c, deadline)))
		return rc;
	long len = pack_all(c, base, txid, ops, n);
	if (len < 0)
		rc = (int)len;
	if (!rc)
		rc = send_all(c, (size_t)len, deadline);
	if (!rc)
		rc = recv_all(c, base, ops, n, deadline);
	if (rc) {
		snprintf(c->err, sizeof(c->err), "%s", tpc_strerror(rc));
		kv_disconnect(c);
		kv_ops_clear(ops, n);
	}
	return rc;
}

void kv_ops_clear(struct kv_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ops[i].value);
		ops[i].value = NULL;
		ops[i].value_len = 0;
		ops[i].err = ops[i].found = 0;
		ops[i].txid = 0;
	}
}
