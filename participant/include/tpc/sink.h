/*
 * tpc/sink.h - where a participant's data finally lands.
 *
 * A participant stages key/value writes per transaction; at Prepare it asks its sink
 * whether it could apply them (the sink may refuse: the participant votes NO); once
 * the coordinator decides COMMIT it hands them to the sink's commit().
 *
 * What a sink must guarantee for exactly-once to hold:
 *  1. commit() is durable when it returns 0: after a crash, the writes are there.
 *  2. commit() is idempotent per txid: committing a txid that was already applied
 *     changes nothing and returns 0. The usual way is to record the txid in the same
 *     atomic, durable step as the data (the LMDB sink does this in one LMDB
 *     transaction; the file sink keeps the txid on every line it appends).
 *  3. commit() is atomic per txid: after a crash, a transaction's writes are either
 *     all applied, or none are (and the txid is not recorded as applied).
 *  4. prepare() returning 0 is a promise that commit() of those writes will succeed
 *     later; a sink that cannot promise must refuse at prepare, not fail at commit.
 *     (A commit() failure makes the participant retry it; the transaction stays
 *     prepared until it succeeds, so a sink that breaks this promise blocks progress,
 *     never atomicity.)
 * The participant does the rest: it makes its PREPARED record durable before voting
 * YES (D2), calls commit() again after a crash until it succeeds, and acks the
 * decision only after commit() returned 0 (D3).
 *
 * Bounded state (rule D9): what a sink keeps to make commit() idempotent grows with
 * every transaction. The participant tells it, through the optional forget(), when a
 * txid can never be committed again: once the participant's PREPARED record of that
 * txid is durably gone, a repeated COMMIT is acknowledged without reaching the sink
 * (it can only mean "already applied"), so the sink may drop its memory of the txid.
 *
 * Threads, and exactly what may overlap. The participant calls a sink from two threads:
 *  - its event-loop thread: prepare(), abort() and committing();
 *  - its sink-writer thread: commit() and forget() (forget() also from
 *    tpc_participant_free(), once that thread has stopped).
 * The participant never calls applied() (it is for the service and tools), nor
 * destroy() before every other call returned. Calls from one side never overlap, so
 * at most two run at once: one prepare(), abort() or committing() with one commit() or
 * forget().
 * Those two never concern the same txid:
 *  - prepare(T) has returned before the first commit() holding T starts, and what it
 *    wrote is visible to that commit() (the writes are handed over through the
 *    writer's locked queue). A T recovered from the state log after a restart is
 *    committed with no prepare() in this process.
 *  - abort(T) and commit() of T exclude each other: a T passed to commit() is never
 *    aborted, an aborted T is never committed. committing(T) comes before the first
 *    commit() holding T is queued, never for an aborted T. abort(T) may come with no prepare()
 *    (the transaction ended before its Prepare, or its writes expired).
 *  - forget(T) comes only after a commit() holding T returned 0; T is not prepared
 *    or aborted again.
 * So a sink whose prepare() or abort() shares state with commit() or forget() (a
 * reservation table, a counter, a connection) must lock that state itself; state kept
 * per txid needs no lock. The file sink shares none (its prepare() only checks the
 * writes); the LMDB sink shares the table of keys its prepared transactions hold, under
 * a lock of its own. tests/integration/test_participant_inproc.c holds a sink that
 * fails on any overlap this paragraph forbids, under parallel load.
 *
 * Wrapping: a sink may wrap another (its ops call the inner handle through
 * tpc_sink_prepare(), tpc_sink_commit(), ...: to refuse some writes, to count, to
 * forward somewhere else); it forwards every optional op the inner sink may need
 * (abort(), forget(), committing(): the LMDB sink frees held keys in abort() and
 * committing()). The library knows only the handle it was given: the
 * participant frees that one (tpc_sink_free(), which calls its destroy()) and never
 * the inner one. So a wrapper that owns its inner sink frees it in its own destroy()
 * (tpc_sink_free(inner)); one that does not, leaves that to its caller, after
 * tpc_participant_free(). The shipped sinks wrap nothing.
 */
#ifndef TPC_SINK_H
#define TPC_SINK_H

#include "tpc/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One staged write. A zero-length value is a valid value, not a delete. */
typedef struct tpc_write {
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
} tpc_write;

/** A transaction's writes as a sink sees them; valid only during the call. */
typedef struct tpc_sink_txn {
	tpc_txid txid;
	const tpc_write *writes;
	size_t nwrites;
} tpc_sink_txn;

typedef struct tpc_sink_ops {
	/**
	 * @brief Check that the writes could be applied. Required.
	 * @param reason on refusal, a short message for the coordinator (NUL-terminated)
	 * @return 0 to vote YES; TPC_EREFUSED (or any negative code) to vote NO
	 */
	int (*prepare)(void *self, const tpc_sink_txn *txn, char *reason, size_t reason_len);
	/**
	 * @brief Apply @p n transactions durably, each idempotent per txid. Required.
	 *        Several transactions arrive in one call when group commit batches them;
	 *        a sink may apply them in one durable step.
	 * @return 0 when every one is durable; a negative code if none may be taken as
	 *         applied (the participant retries the whole call later)
	 */
	int (*commit)(void *self, const tpc_sink_txn *txns, size_t n);
	/** @brief Forget anything prepare() reserved for @p txid. Optional (NULL). */
	void (*abort)(void *self, tpc_txid txid);
	/** @brief 1 if @p txid was applied, 0 if not, negative on error. Optional (NULL). */
	int (*applied)(void *self, tpc_txid txid);
	/**
	 * @brief The participant will never commit @p txids again: the sink may drop what it
	 *        keeps to recognise them as applied. Optional (NULL: the sink keeps it).
	 *        Need not be durable, nor done at once: a sink may hold the txids and drop
	 *        them with its next commit() (the participant calls commit() soon after, or
	 *        not at all when idle). A forget lost in a crash only leaves entries behind.
	 *        Called only for txids a commit() call applied (returned 0 for).
	 * @param txids the caller keeps ownership; valid only during the call
	 */
	void (*forget)(void *self, const tpc_txid *txids, size_t n);
	/** @brief Release the sink's resources. Optional (NULL). */
	void (*destroy)(void *self);
	/**
	 * @brief The coordinator decided COMMIT for @p txid: its commit() follows, on the
	 *        sink writer, after the commit() of every transaction decided before it and
	 *        before that of any decided after. Optional (NULL). Loop thread, after
	 *        prepare(txid) returned 0 (or with no prepare() for a transaction recovered
	 *        after a restart); may come again for the same txid (a retried apply).
	 *        A sink that holds something for prepared transactions (keys, as the LMDB
	 *        sink does) may release it here: a prepare() that comes later is of a
	 *        transaction decided later, whose commit() comes after this one's.
	 */
	void (*committing)(void *self, tpc_txid txid);
} tpc_sink_ops;

typedef struct tpc_sink tpc_sink;

/**
 * @brief Wrap your own sink implementation.
 * @param ops the functions; the caller keeps ownership and must keep them alive
 * @param self passed to every function; destroy(self) runs in tpc_sink_free()
 * @return a sink handle, or NULL when out of memory
 */
TPC_API tpc_sink *tpc_sink_new(const tpc_sink_ops *ops, void *self);

/** @brief Destroy the sink (calls ops->destroy). NULL is a no-op. */
TPC_API void tpc_sink_free(tpc_sink *sink);

/* Calls through the handle, used by the participant, by wrapping sinks and by tests. */

/**
 * @brief Call the sink's prepare() (see tpc_sink_ops).
 * @return 0 (vote YES) or a negative code (vote NO); @p reason says why on refusal
 */
TPC_API int tpc_sink_prepare(tpc_sink *sink, const tpc_sink_txn *txn, char *reason,
			     size_t reason_len);
/**
 * @brief Call the sink's commit(): durable and idempotent per txid when it returns 0.
 * @param txns the caller keeps ownership; valid only during the call
 * @return 0, or a negative code (none of @p txns may be taken as applied)
 */
TPC_API int tpc_sink_commit(tpc_sink *sink, const tpc_sink_txn *txns, size_t n);
/** @brief Call the sink's abort() if it has one; otherwise nothing. */
TPC_API void tpc_sink_abort(tpc_sink *sink, tpc_txid txid);
/** @return 1 applied, 0 not applied, -ENOTSUP if the sink cannot tell, or an error. */
TPC_API int tpc_sink_applied(tpc_sink *sink, tpc_txid txid);
/** @brief Call the sink's forget() if it has one; otherwise nothing. */
TPC_API void tpc_sink_forget(tpc_sink *sink, const tpc_txid *txids, size_t n);
/** @brief Call the sink's committing() if it has one; otherwise nothing. */
TPC_API void tpc_sink_committing(tpc_sink *sink, tpc_txid txid);

#ifdef __cplusplus
}
#endif

#endif
