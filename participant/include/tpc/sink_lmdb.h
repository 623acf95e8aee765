/*
 * tpc/sink_lmdb.h - the LMDB key-value sink: applies a transaction's writes and records
 * its txid in the same LMDB transaction, so a commit is exactly-once by construction.
 *
 * Layout of the sink's LMDB environment (its own folder):
 *   "data"    key -> value record: { u64 txid that wrote it (big-endian), value bytes }
 *   "applied" txid (u64 big-endian) -> applied wall time (u64 ms)
 * Commits are normal synced LMDB commits (rule D6).
 *
 * Isolation: prepare() refuses (the participant votes NO with the reason) a transaction
 * writing a key that another transaction holds: one this sink prepared (prepare()
 * returned 0) and that is not decided yet: neither its committing() (the coordinator's
 * COMMIT reached the participant; its commit() is queued before any later one) nor its
 * abort() came. The reason reads: key "K" is held by prepared transaction N, not yet
 * decided. Keys are held in memory: after a restart, a transaction recovered as
 * PREPARED holds none until it is decided. See tpc/participant.h, "Isolation".
 *
 * Threads: the participant calls prepare(), abort() and committing() on its loop thread
 * and commit() on its sink writer thread; the sink's key table is locked. tpc_sink_lmdb_get() may be
 * called from any thread, at any time between tpc_sink_lmdb_open() and the sink's free
 * (tpc_participant_free()), also while the writer thread commits: each call is one
 * LMDB read transaction (the environment is opened with MDB_NOTLS), which sees the last
 * durable commit and never blocks the writer nor is blocked by it. Several threads may
 * call it at once. tpc_sink_lmdb_set_refuse() is not synchronised: call it before the
 * participant is started or attached.
 */
#ifndef TPC_SINK_LMDB_H
#define TPC_SINK_LMDB_H

#include "tpc/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Called by tpc_sink_lmdb_refuse_fn to decide whether a write is refused at prepare. */
typedef int (*tpc_sink_lmdb_refuse_fn)(void *arg, const tpc_write *w);

/**
 * @brief Open (creating if needed) an LMDB sink in directory @p dir.
 * @param dir a folder for the sink alone: not the participant's state_dir, which holds
 *        an LMDB environment of its own (LMDB forbids opening one environment twice in
 *        a process); e.g. "SERVICE/data" beside a state_dir of "SERVICE/tpc"
 * @param map_size LMDB map size in bytes; 0 for the default (1 GiB)
 * @param[out] err on failure, a negative code
 * @return the sink, or NULL
 */
TPC_API tpc_sink *tpc_sink_lmdb_open(const char *dir, size_t map_size, int *err);

/**
 * @brief Make prepare() refuse (vote NO) a transaction when @p fn returns non-zero
 *        for any of its writes. For tests and demos; NULL turns it off.
 */
TPC_API void tpc_sink_lmdb_set_refuse(tpc_sink *sink, tpc_sink_lmdb_refuse_fn fn, void *arg);

/**
 * @brief Read one key from an LMDB sink.
 * @param[out] value a malloc'd copy the caller frees (NULL when not found)
 * @param[out] txid the transaction that wrote it
 * @return 1 found, 0 not found, negative on error
 */
TPC_API int tpc_sink_lmdb_get(tpc_sink *sink, const void *key, size_t key_len, void **value,
			      size_t *value_len, tpc_txid *txid);

/** Callback for tpc_sink_lmdb_dump(); return non-zero to stop. */
typedef int (*tpc_sink_lmdb_dump_fn)(void *arg, const void *key, size_t key_len,
				     const void *value, size_t value_len, tpc_txid txid);

/**
 * @brief Walk every key of the LMDB sink in folder @p dir, read-only, in key order.
 *        Works while no process has the sink open, and while another process does.
 *        Never call it in a process that has this sink open (LMDB forbids opening one
 *        environment twice in a process); there, use tpc_sink_lmdb_get().
 * @return 0, the callback's non-zero value, or a negative error
 */
TPC_API int tpc_sink_lmdb_dump(const char *dir, tpc_sink_lmdb_dump_fn fn, void *arg);

/** @brief Count of applied txids recorded by the sink in @p dir (read-only; the same
 *         one-process rule as tpc_sink_lmdb_dump()). */
TPC_API int tpc_sink_lmdb_applied_count(const char *dir, uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif
