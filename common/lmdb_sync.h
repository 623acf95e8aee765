/*
 * lmdb_sync.h - commits to an LMDB environment opened with MDB_NOMETASYNC (rule D6),
 * each counting the device syncs it asks for in the caller's counter.
 *
 * With MDB_NOMETASYNC a commit fdatasyncs its data and writes its meta page unsynced:
 * the batch it holds is durable once a later fdatasync ran. tpc_lmdb_commit()
 * returning 0 guarantees one ran after every EARLIER commit's meta page (a commit with
 * nothing to write skips LMDB's fdatasync, so it syncs on purpose); its own batch needs
 * the next commit or tpc_lmdb_sync(). tpc_lmdb_commit_durable() is both at once.
 */
#ifndef TPC_COMMON_LMDB_SYNC_H
#define TPC_COMMON_LMDB_SYNC_H

#include <stdatomic.h>
#include <stdint.h>

#include <lmdb.h>

/** @brief mdb_env_sync(env, 1): every commit so far is durable. @return 0 or < 0. */
int tpc_lmdb_sync(MDB_env *env, _Atomic uint64_t *syncs);

/** @brief Commit @p txn (freed either way); on 0 every earlier commit is durable. */
int tpc_lmdb_commit(MDB_env *env, MDB_txn *txn, _Atomic uint64_t *syncs);

/** @brief Commit @p txn and sync: durable on return, meta page included. */
int tpc_lmdb_commit_durable(MDB_env *env, MDB_txn *txn, _Atomic uint64_t *syncs);

#endif
