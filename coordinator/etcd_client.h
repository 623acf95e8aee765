/*
 * etcd_client.h - a small blocking client for etcd's v3 API through its JSON gateway
 * (POST /v3/kv/range, /v3/kv/txn, /v3/lease/..., /v3/watch), used by the etcd log
 * (log_etcd.c). Keys and values travel base64-encoded; 64-bit numbers come back as
 * JSON strings.
 *
 * A client owns a private event_base and one HTTP connection (libevent's evhttp) to
 * the endpoint in use; a call runs that base until the reply is in, so a call blocks
 * its thread. Calls on one client are serialised by its mutex: a client may be shared
 * by threads, but a thread that must not wait for another's call takes its own client.
 * When an endpoint does not answer (connection refused, reset, timed out) the call is
 * sent to the next endpoint of the list, each endpoint tried once per call; etcd's own
 * errors (an HTTP status other than 200) are not retried.
 *
 * Error space: 0 on success; -ETIMEDOUT or -ECONNREFUSED when no endpoint answered;
 * -EPROTO for a reply that is not the expected JSON or an error reply from etcd (the
 * message is kept: etcd_client_err()); -ENOMEM; -EINVAL for a bad endpoint list.
 */
#ifndef TPC_COORD_ETCD_CLIENT_H
#define TPC_COORD_ETCD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct etcd_client;

/**
 * @brief A client for the comma-separated @p endpoints (http://host:port,...).
 * @param timeout_ms how long one request may take on one endpoint.
 */
int etcd_client_new(struct etcd_client **out, const char *endpoints, uint32_t timeout_ms,
		    char *err, size_t errlen);
void etcd_client_free(struct etcd_client *c);

/** The last error's text (valid until the next call on the client). */
const char *etcd_client_err(const struct etcd_client *c);

/** The endpoint the last call was answered by ("http://host:port"). */
const char *etcd_client_endpoint(const struct etcd_client *c);

/**
 * @brief POST @p body (taken: freed by the call) to @p path; *reply gets the parsed JSON
 *        reply (the caller's to json_decref) on success.
 */
int etcd_call(struct etcd_client *c, const char *path, json_t *body, json_t **reply);

/**
 * @brief Wait until @p key is deleted (or its lease expires) at a revision after
 *        @p after_rev, through a watch; 0 then, -ETIMEDOUT after @p timeout_ms, or an
 *        error.
 */
int etcd_watch_delete(struct etcd_client *c, const void *key, size_t key_len,
		      int64_t after_rev, uint32_t timeout_ms);

/* ---- JSON pieces of the gateway's messages ---- */

/** A base64 JSON string of @p len bytes (NULL on allocation failure). */
json_t *etcd_b64(const void *p, size_t len);

/** Decode a base64 JSON string: *out malloc'ed (NUL-terminated, not counted in *len). */
int etcd_unb64(const json_t *s, unsigned char **out, size_t *len);

/** An int64 field given as a JSON string or number; 0 when absent. */
int64_t etcd_int(const json_t *obj, const char *field);

/** RequestOp JSON: put (lease 0: none), delete one key, range [key, end) (end NULL: the
 *  key alone) of at most limit keys (0: all). */
json_t *etcd_op_put(const void *k, size_t klen, const void *v, size_t vlen, int64_t lease);
json_t *etcd_op_del(const void *k, size_t klen);
json_t *etcd_range_req(const void *k, size_t klen, const void *end, size_t endlen,
		       int64_t limit); /* the RangeRequest itself, for /v3/kv/range */
json_t *etcd_op_range(const void *k, size_t klen, const void *end, size_t endlen,
		      int64_t limit);

/** The key after every key that starts with @p prefix (the prefix's range end) in
 *  @p out, which has room for @p len bytes; its length. */
size_t etcd_prefix_end(const char *prefix, size_t len, char *out);

#endif
