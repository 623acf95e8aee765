/*
 * kvconn.h - a small blocking client for tpc-kv (tools/kv/tpc_kv.c) that pipelines:
 * a batch of Put and Get requests goes out in one write, and the replies are matched
 * back by request id. The aggregators use it to stage a batch's writes in a
 * transaction and to read committed state, one round trip per batch.
 *
 * Error space: 0, or -errno / a TPC_E* code. A transport failure closes the
 * connection (the next call reconnects); a per-request failure (for example the
 * transaction is no longer open at the coordinator) is reported in that op's err.
 */
#ifndef LESSON_KVCONN_H
#define LESSON_KVCONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "frame.h"

enum kv_op_kind { KV_PUT, KV_GET };

struct kv_op {
	enum kv_op_kind kind;
	const void *key;
	size_t key_len;
	const void *val;      /* KV_PUT */
	size_t val_len;
	/* results */
	int err;              /* 0, or the error the service answered with */
	int found;            /* KV_GET */
	char *value;          /* KV_GET: malloc'd, NUL-terminated copy; free with kv_ops_clear */
	size_t value_len;
	uint64_t txid;        /* KV_GET: the transaction that wrote the value */
};

struct kvconn {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int fd;
	uint32_t timeout_ms;
	struct tpc_frame_decoder dec;
	uint64_t next_id;
	uint8_t *out;
	size_t out_cap;
	char err[160];
};

/** @brief Set up a client for tpc-kv at HOST:PORT; connects lazily. @return 0 or -EINVAL. */
int kvconn_init(struct kvconn *c, const char *hostport, uint32_t timeout_ms);

/** @brief Close the connection and free buffers. */
void kvconn_free(struct kvconn *c);

/**
 * @brief Send every op (Puts carry @p txid) and wait for all replies.
 * @return 0 when every reply arrived (check each op's err), or a negative code when
 *         the connection failed or timed out (then the ops' results are not set).
 */
int kvconn_exec(struct kvconn *c, uint64_t txid, struct kv_op *ops, size_t n);

/** @brief Free the values Gets returned and reset results. */
void kv_ops_clear(struct kv_op *ops, size_t n);

#endif
