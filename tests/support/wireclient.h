/*
 * wireclient.h - a blocking TCP client for the tpc wire protocol, for tests and tools.
 *
 * It owns one socket, a receive buffer with the pure frame decoder (proto/frame.h), a
 * request_id counter and a FIFO of Envelopes that arrived while a request/reply call
 * was waiting for something else. Every wait is bounded by a deadline (poll()); nothing
 * here sleeps. Not thread-safe: one handle, one thread.
 *
 * Error space: 0 on success, a negative code on failure: -errno (-ETIMEDOUT on a
 * deadline, -ECONNRESET on EOF, -EPROTO on a bad frame or unexpected reply) or
 * TPC_WC_EREPLY when the peer answered with a tpc.Error (see tpc_wc_error_code()).
 * The last failure's explanation is in tpc_wc_errmsg().
 */
#ifndef TPC_TESTS_WIRECLIENT_H
#define TPC_TESTS_WIRECLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "tpc.pb-c.h"

/** The peer answered a request with a tpc.Error; code and message are on the handle. */
#define TPC_WC_EREPLY (-20001)

/** Default deadline for the request/reply calls, in ms (tpc_wc_set_timeout changes it). */
#define TPC_WC_DEFAULT_TIMEOUT_MS 5000

typedef struct tpc_wc tpc_wc;

/** Fields of a BeginReply. */
struct tpc_wc_begin {
	uint64_t txid;
	Tpc__BeginResult result;
	uint64_t fenced_txid;
	uint8_t token[16];      /* txn_token (the first token_len bytes) */
	size_t token_len;       /* 0: none sent; else as sent, at most 16 kept */
};

/** Fields of an Outcome (reply to Commit and Abort). */
struct tpc_wc_outcome {
	uint64_t txid;
	Tpc__OutcomeKind outcome;
	char reason[256]; /* truncated copy; "" when none */
};

/**
 * @brief Connect to "HOST:PORT" within @p timeout_ms.
 * @param[out] out the new handle on success; NULL on failure
 * @param err buffer for a reason on failure (may be NULL), size @p errlen
 * @return 0, -EINVAL (bad address), -ETIMEDOUT, or -errno from socket()/connect().
 */
int tpc_wc_connect(const char *hostport, int timeout_ms, tpc_wc **out, char *err,
		   size_t errlen);

struct tpc_tls_files;

/**
 * @brief tpc_wc_connect, then a mutual TLS handshake (common/tls.h: our certificate
 *        from @p f, the server's checked against f->ca and the host of @p hostport).
 *        Everything the handle sends and receives afterwards goes through TLS.
 * @return 0; -EINVAL (a TLS file is unusable: @p err says why), -EPROTO (the handshake
 *         failed: @p err has OpenSSL's reason), or what tpc_wc_connect returns.
 */
int tpc_wc_connect_tls(const char *hostport, int timeout_ms, const struct tpc_tls_files *f,
		       tpc_wc **out, char *err, size_t errlen);

/**
 * @brief Wrap an already connected stream socket (e.g. one a fake server accepted).
 * @return the handle, which now owns @p fd, or NULL on out-of-memory (fd is then closed).
 */
tpc_wc *tpc_wc_from_fd(int fd);

/**
 * @brief Wait up to @p timeout_ms for a connection on the listening socket @p lfd, accept
 *        it and wrap it (tpc_wc_from_fd): a fake server's side of a test.
 * @return the handle, or NULL on timeout, accept failure or out-of-memory.
 */
tpc_wc *tpc_wc_accept(int lfd, int timeout_ms);

/** @brief Close the socket, free queued Envelopes and the handle. NULL is allowed. */
void tpc_wc_free(tpc_wc *wc);

/** @brief The socket, for tests that want to shutdown() or poll it themselves. */
int tpc_wc_fd(const tpc_wc *wc);

/** @brief Set the deadline used by the request/reply calls (ms, > 0). */
void tpc_wc_set_timeout(tpc_wc *wc, int timeout_ms);

/** @brief Explanation of the last failure ("" if none); valid until the next call. */
const char *tpc_wc_errmsg(const tpc_wc *wc);

/** @brief Code of the last tpc.Error reply (TPC__ERROR_CODE__ERR_NONE if none). */
Tpc__ErrorCode tpc_wc_error_code(const tpc_wc *wc);

/** @brief Name of an error code ("ERR_NOT_FOUND"), or "ERR_<number>" if unknown. */
const char *tpc_wc_error_name(Tpc__ErrorCode code);

/** @brief A fresh request_id (1, 2, 3, ...) for requests a test builds itself. */
uint64_t tpc_wc_next_request_id(tpc_wc *wc);

/**
 * @brief Send one framed Envelope (blocking; a stuck peer fails it after the timeout).
 * @return 0, -EMSGSIZE, -ENOMEM, -EPIPE/-ECONNRESET, -EAGAIN (send timeout) or -errno.
 */
int tpc_wc_send(tpc_wc *wc, const Tpc__Envelope *env);

/** @brief Send arbitrary bytes as they are (for bad-input tests). @return 0 or -errno. */
int tpc_wc_send_raw(tpc_wc *wc, const void *buf, size_t len);

/**
 * @brief Receive the next Envelope: the oldest queued one, else the next from the socket.
 * @param timeout_ms deadline in ms (0: only what is already buffered or readable now)
 * @return an Envelope the caller frees with tpc__envelope__free_unpacked(env, NULL), or
 *         NULL on timeout (-ETIMEDOUT), EOF (-ECONNRESET), a bad frame or body (-EPROTO)
 *         or a read error; tpc_wc_last_rc() and tpc_wc_errmsg() say which.
 */
Tpc__Envelope *tpc_wc_recv(tpc_wc *wc, int timeout_ms);

/**
 * @brief Like tpc_wc_recv, but wait for the first Envelope whose body is @p body,
 *        queueing every other one for later tpc_wc_recv calls.
 */
Tpc__Envelope *tpc_wc_recv_body(tpc_wc *wc, Tpc__Envelope__BodyCase body, int timeout_ms);

/** @brief The result code of the last tpc_wc_recv / tpc_wc_recv_body (0 if it returned one). */
int tpc_wc_last_rc(const tpc_wc *wc);

/** @brief How many Envelopes are queued (received but not yet returned). */
size_t tpc_wc_queued(const tpc_wc *wc);

/**
 * @brief Request/reply: give @p req a fresh request_id, send it, and wait (the handle's
 *        timeout) for the Envelope with the same request_id, queueing unrelated ones.
 * @param req the request; its request_id field is overwritten
 * @param[out] reply the reply (caller frees it) when 0 is returned; NULL otherwise
 * @return 0; TPC_WC_EREPLY if the reply is a tpc.Error (code/message on the handle,
 *         *reply NULL); -ETIMEDOUT, -ECONNRESET, -EPROTO or -errno.
 */
int tpc_wc_call(tpc_wc *wc, Tpc__Envelope *req, Tpc__Envelope **reply);

/**
 * @brief Hello; on HelloReply return the coordinator's epoch. A participant's Hello
 *        carries tpc_wc_default_identity(name) (incarnation 1, nothing prepared).
 * @param name participant name or client label (may be NULL for a client)
 * @return as tpc_wc_call, or -EPROTO if the reply is not a HelloReply.
 */
int tpc_wc_hello(tpc_wc *wc, Tpc__Role role, const char *name, uint64_t *epoch);

/** What a participant's Hello says about who it is (rule D8, docs/design.md). */
struct tpc_wc_identity {
	uint8_t participant_id[16];
	uint64_t incarnation;            /* >= 1 */
	const uint64_t *prepared_txids;  /* txids held PREPARED; may be NULL */
	size_t n_prepared;
};

/**
 * @brief The identity test peers use by default: a participant id derived from @p name
 *        (the same name gives the same id, so a restarted test peer is the same
 *        participant), incarnation 1, nothing prepared.
 */
void tpc_wc_default_identity(const char *name, struct tpc_wc_identity *id);

/** @brief Parse 32 hex digits into a participant id. @return 0, or -1 if malformed. */
int tpc_wc_parse_participant_id(const char *hex, uint8_t out[16]);

/** @brief A participant's Hello as @p id says. @return as tpc_wc_hello. */
int tpc_wc_hello_participant(tpc_wc *wc, const char *name, const struct tpc_wc_identity *id,
			     uint64_t *epoch);

/** @brief Begin with an optional transaction key (NULL: none). @return as tpc_wc_hello. */
int tpc_wc_begin(tpc_wc *wc, const char *key, uint32_t timeout_ms, struct tpc_wc_begin *out);

/** @brief Commit @p txid and wait for its Outcome. @return as tpc_wc_hello. */
int tpc_wc_commit(tpc_wc *wc, uint64_t txid, struct tpc_wc_outcome *out);

/** @brief Abort @p txid (reason may be NULL) and wait for its Outcome. */
int tpc_wc_abort(tpc_wc *wc, uint64_t txid, const char *reason, struct tpc_wc_outcome *out);

/** @brief StatusQuery for @p txid. @return as tpc_wc_hello; *status set on 0. */
int tpc_wc_status(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus *status);

/** @brief Name of a tpc_wc result code ("timeout", "error reply", strerror(-rc)). */
const char *tpc_wc_strerror(int rc);

#endif
