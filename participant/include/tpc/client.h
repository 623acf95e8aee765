/*
 * tpc/client.h - the initiator's API: begin, commit, abort and ask about transactions.
 *
 * One tpc_client holds one connection to the coordinator and pipelines any number of
 * requests over it. Two ways to use it:
 *  - asynchronous: attach it to your libevent loop (tpc/libevent.h) and pass callbacks;
 *    callbacks run on that loop's thread;
 *  - blocking: call the functions without _async from one thread; the client runs a
 *    private loop until the reply arrives. A client is one or the other: blocking calls
 *    on an attached client return TPC_ESTATE.
 *
 * If the connection drops while a Commit is in flight, its callback gets
 * TPC_OUTCOME_UNKNOWN: the transaction may have committed. Resolve it with
 * tpc_client_status(), or by calling begin again with the same transaction key
 * (which reports an earlier commit instead of starting new work). The client
 * reconnects by itself on the next request; a failed connect (refused, unreachable, or
 * not done within connect_timeout_ms) completes the request with TPC_EUNREACHABLE at
 * once, tpc_client_errmsg() naming the socket's reason: nothing was sent.
 *
 * Transaction token: a Begin that starts a transaction also returns its token,
 * TPC_TXN_TOKEN_LEN random bytes (tpc_client_begin_token(), _async). It proves to a
 * service that the caller holds the transaction: pass it, with the txid, to every
 * service the transaction writes to (tpc-kv: KvPut.txn_token), which hands it to its
 * participant (tpc_participant_stage_token()). A coordinator started with
 * --require-txn-token refuses a participant's Join without it. Treat it as a secret
 * for the transaction's lifetime. Commit and Abort are taken only on the connection
 * (the tpc_client) that began the transaction; another client gets TPC_EDENIED.
 *
 * Signals: in blocking mode the library keeps SIGPIPE away from the calling thread for
 * the duration of a call. An attached client writes from the application's loop, so the
 * application must ignore SIGPIPE itself (signal(SIGPIPE, SIG_IGN)), as every libevent
 * program writing to sockets must. A client is used by one thread at a time.
 */
#ifndef TPC_CLIENT_H
#define TPC_CLIENT_H

#include "tpc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tpc_client tpc_client;

/**
 * A client's settings. Fill it with tpc_client_config_init(), then set what differs.
 *
 * One rule for zero, as in tpc_participant_config: a numeric field left 0 means its
 * documented default, never "no timeout" or "no limit". A NULL pointer means "not
 * given" (no name, no TLS).
 */
typedef struct tpc_client_config {
	/**
	 * "HOST:PORT" of the coordinator (required), or the coordinators of one group
	 * ("h1:7400,h2:7400", up to 16; docs/ha.md). With a list the client connects to
	 * one at a time; when a connect fails, or a standby answers ERR_NOT_LEADER (it
	 * served nothing), the requests waiting on that connection are sent again to the
	 * leader the standby named, else to the next address: at once while some address
	 * was not tried yet, then after a doubling, jittered wait (50 ms to 0.5 s). Each
	 * connect attempt has connect_timeout_ms divided by the number of addresses (at
	 * least 200 ms); the requests fail with TPC_EUNREACHABLE (or TPC_EUNAVAIL: only a
	 * standby answered) once no address worked for connect_timeout_ms. A request
	 * written to a leader that then went away still fails (TPC_ECLOSED; a Commit's
	 * outcome UNKNOWN): it may have been served. With one address and no leader named,
	 * a failed connect fails the requests at once, as before.
	 */
	const char *coordinator;
	const char *name;             /**< a label for the coordinator's logs (optional) */
	uint32_t connect_timeout_ms;  /**< a connect not done in time fails the request with
					   TPC_EUNREACHABLE; default 5000 */
	uint32_t request_timeout_ms;  /**< a reply not received in time fails with -ETIMEDOUT
					   (a Commit: TPC_OUTCOME_UNKNOWN); default 30000 */
	uint32_t max_frame;           /**< largest frame sent or accepted (default 1 MiB) */
	/**
	 * Mutual TLS to the coordinator (PEM files; all three, or all NULL for plaintext).
	 * The certificate's subject CN is this client's identity at the coordinator. The
	 * coordinator's certificate must be signed by tls_ca and be for the host in
	 * @p coordinator (a DNS SAN, or the CN without one, for a host name; an IP SAN for
	 * an IP address). The files are read when the first connection is made: a
	 * missing, unreadable or mismatched file fails that request with TPC_ETLS, and a
	 * failed handshake fails the requests on that connection with TPC_ETLS; in both
	 * cases tpc_client_errmsg() says why. The library initialises OpenSSL itself.
	 */
	const char *tls_cert;         /**< this client's certificate */
	const char *tls_key;          /**< its private key */
	const char *tls_ca;           /**< CA the coordinator's certificate must chain to */
} tpc_client_config;

/** What a Begin did. */
typedef enum tpc_begin_result {
	TPC_BEGIN_STARTED = 0,           /**< a new transaction started */
	TPC_BEGIN_ALREADY_COMMITTED = 1, /**< the key's last transaction committed: txid names it */
	TPC_BEGIN_PENDING = 2,           /**< the key's last transaction is deciding: ask again */
} tpc_begin_result;

/** @brief Fill @p cfg with defaults (coordinator still has to be set). */
TPC_API void tpc_client_config_init(tpc_client_config *cfg);

/**
 * @brief Create a client. No connection is made until the first request.
 * @param cfg copied, strings (the TLS file names too) included: the caller keeps
 *        ownership of its strings and may free them when this returns
 * @param[out] err on failure, a negative code (-EINVAL for a bad address)
 * @return the client, or NULL
 */
TPC_API tpc_client *tpc_client_new(const tpc_client_config *cfg, int *err);

/**
 * @brief Close the connection and free the client. Pending async callbacks run with
 *        TPC_ECLOSED (a pending Commit with TPC_OUTCOME_UNKNOWN) before it returns.
 *        NULL is a no-op.
 */
TPC_API void tpc_client_free(tpc_client *c);

/** @brief The last error message of this client (never NULL; "" when none). */
TPC_API const char *tpc_client_errmsg(const tpc_client *c);

/* ---- asynchronous ---- */

/** @param err 0, or why it failed (then txid is 0). */
typedef void (*tpc_begin_cb)(void *arg, int err, tpc_txid txid, tpc_begin_result result);
/**
 * @param token TPC_TXN_TOKEN_LEN bytes when @p result is TPC_BEGIN_STARTED, valid during
 *        the call only (copy it); NULL on failure, for the other results, or from a
 *        coordinator too old to make tokens
 */
typedef void (*tpc_begin_token_cb)(void *arg, int err, tpc_txid txid, tpc_begin_result result,
				   const uint8_t *token);
/** @param err 0 when @p outcome is the coordinator's answer; else outcome is UNKNOWN. */
typedef void (*tpc_outcome_cb)(void *arg, int err, tpc_txid txid, tpc_outcome outcome,
			       const char *reason);
typedef void (*tpc_status_cb)(void *arg, int err, tpc_txid txid, tpc_status status);

/**
 * @brief Start a transaction.
 * @param key client transaction key or NULL: at most one transaction per key commits
 *        (an open one under the same key is aborted: fenced)
 * @param timeout_ms transaction timeout; 0 for the coordinator's default
 * @return 0 if queued (cb will run exactly once), or a negative code (cb will not run)
 */
TPC_API int tpc_client_begin_async(tpc_client *c, const char *key, uint32_t timeout_ms,
				   tpc_begin_cb cb, void *arg);
/**
 * @brief Start a transaction and learn its token (see the header's note); otherwise as
 *        tpc_client_begin_async().
 * @return 0 if queued (cb will run exactly once), or a negative code (cb will not run)
 */
TPC_API int tpc_client_begin_token_async(tpc_client *c, const char *key, uint32_t timeout_ms,
					 tpc_begin_token_cb cb, void *arg);
/** @brief Ask the coordinator to commit; cb gets the outcome (see the header's note).
 *         Only the client that began @p txid may: another gets err TPC_EDENIED (outcome
 *         UNKNOWN) and the transaction is untouched; so does Abort. */
TPC_API int tpc_client_commit_async(tpc_client *c, tpc_txid txid, tpc_outcome_cb cb, void *arg);
/** @brief Ask the coordinator to abort; cb gets the outcome (COMMITTED if it was too late). */
TPC_API int tpc_client_abort_async(tpc_client *c, tpc_txid txid, const char *reason,
				   tpc_outcome_cb cb, void *arg);
/** @brief Ask what became of a transaction: PENDING, COMMITTED, ABORTED, or FORGOTTEN
 *         (no record left, and older than the coordinator's --outcome-retention: it may
 *         have committed; never read it as aborted). */
TPC_API int tpc_client_status_async(tpc_client *c, tpc_txid txid, tpc_status_cb cb, void *arg);

/** @brief Requests sent and not yet answered. */
TPC_API size_t tpc_client_inflight(const tpc_client *c);

/* ---- blocking ---- */

/**
 * @brief Blocking begin.
 * @param[out] txid the new transaction, or the key's committed/pending one
 * @param[out] result what happened (may be NULL)
 * @return 0, or a negative code (TPC_ESTATE if the client is attached to a loop)
 */
TPC_API int tpc_client_begin(tpc_client *c, const char *key, uint32_t timeout_ms, tpc_txid *txid,
			     tpc_begin_result *result);
/**
 * @brief Blocking begin that also returns the transaction's token.
 * @param[out] token TPC_TXN_TOKEN_LEN bytes (may be NULL): the token when one came
 * @param[out] token_len TPC_TXN_TOKEN_LEN when a token came (a started transaction at a
 *        coordinator that makes tokens), else 0 (may be NULL)
 * @return as tpc_client_begin()
 */
TPC_API int tpc_client_begin_token(tpc_client *c, const char *key, uint32_t timeout_ms,
				   tpc_txid *txid, tpc_begin_result *result,
				   uint8_t token[TPC_TXN_TOKEN_LEN], size_t *token_len);
/**
 * @brief Blocking commit. Returns 0 with *outcome set when the coordinator answered;
 *        on a lost connection returns TPC_ECLOSED with *outcome = TPC_OUTCOME_UNKNOWN.
 *        COMMITTED means the decision is durable at the coordinator; the participants
 *        apply it after that, so a read from a participant's sink right after this
 *        returns may not show the writes yet.
 * @param reason buffer for the coordinator's reason (may be NULL)
 */
TPC_API int tpc_client_commit(tpc_client *c, tpc_txid txid, tpc_outcome *outcome, char *reason,
			      size_t reason_len);
/** @brief Blocking abort. */
TPC_API int tpc_client_abort(tpc_client *c, tpc_txid txid, const char *why, tpc_outcome *outcome);
/** @brief Blocking status. */
TPC_API int tpc_client_status(tpc_client *c, tpc_txid txid, tpc_status *status);

/** Everything the coordinator said in its last answer to a Commit or Abort. */
typedef struct tpc_client_outcome {
	tpc_txid txid;            /**< 0 when no Outcome came yet */
	tpc_outcome outcome;
	char reason[512];         /**< the coordinator's sentence (Outcome.reason): for an
				       abort, why: `participant "ledger" voted NO: negative
				       amount`, "aborted by operator", "transaction timeout", ... */
	char participant[256];    /**< aborted by a NO vote: that participant's name; else "" */
	char participant_reason[512]; /**< its own reason (e.g. its sink's refusal, "negative
					   amount"); else "" */
} tpc_client_outcome;

/**
 * @brief Read the last Outcome this client received (from a blocking or an async Commit
 *        or Abort; a call that failed without an Outcome does not change it). In an
 *        outcome callback it is that callback's. The strings are cut to their arrays.
 * @return 0, or -ENOENT when no Outcome came yet (then @p out is zeroed)
 */
TPC_API int tpc_client_last_outcome(const tpc_client *c, tpc_client_outcome *out);

#ifdef __cplusplus
}
#endif

#endif
