/*
 * kvclient.h - an asynchronous client for tpc-kv's Put and Get, on a libevent loop.
 * Used by the demo, the benchmark, the torture runner and `tpc-kv put|get`. Requests pipeline over one
 * connection; when it drops, every pending request completes with TPC_ECLOSED and the
 * next request reconnects.
 */
#ifndef TPC_TOOLS_KVCLIENT_H
#define TPC_TOOLS_KVCLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct kvc;
struct tpc_tls_files;

/** @param err 0 once the write is staged and joined; else a negative tpc code. */
typedef void (*kvc_put_cb)(void *arg, int err, uint64_t txid);

struct Tpc__KvGetReply;

/**
 * @param err 0 and @p reply (found, value, the txid that wrote it; valid during the
 *        call only), or a negative tpc code and NULL.
 */
typedef void (*kvc_get_cb)(void *arg, int err, const struct Tpc__KvGetReply *reply);

/** @brief A client for the tpc-kv at @p hostport. @return NULL on a bad address. */
struct kvc *kvc_new(struct event_base *base, const char *hostport, uint32_t timeout_ms);

/**
 * @brief Talk TLS to tpc-kv from the next connection on: @p f's certificate (tpc-kv
 *        requires one), tpc-kv's checked against f->ca and the host of its address
 *        (common/tls.h). @p f NULL or empty: plaintext. The files are read now.
 * @return 0, or -EINVAL with why in @p err (a missing, unreadable or mismatched file).
 */
int kvc_set_tls(struct kvc *c, const struct tpc_tls_files *f, char *err, size_t errlen);

/** @brief Stage key=value in @p txid. @return 0 (cb runs once) or a negative code. */
int kvc_put(struct kvc *c, uint64_t txid, const void *key, size_t klen, const void *val,
	    size_t vlen, kvc_put_cb cb, void *arg);

/**
 * @brief Stage key=value in @p txid with the transaction's token (16 bytes, from the
 *        coordinator's BeginReply; NULL: none, as kvc_put()). tpc-kv hands it to its
 *        participant's Join; with --require-txn-token it refuses a Put without one.
 * @return 0 (cb runs once) or a negative code
 */
int kvc_put_token(struct kvc *c, uint64_t txid, const uint8_t *token, const void *key,
		  size_t klen, const void *val, size_t vlen, kvc_put_cb cb, void *arg);

/** @brief Read @p key's committed value. @return 0 (cb runs once) or a negative code. */
int kvc_get(struct kvc *c, const void *key, size_t klen, kvc_get_cb cb, void *arg);

/** @brief Requests sent and not yet answered. */
size_t kvc_inflight(const struct kvc *c);

/** @brief Fail pending requests with TPC_ECLOSED and free. */
void kvc_free(struct kvc *c);

#endif
