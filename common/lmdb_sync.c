/*
 * lmdb_sync.c - the commits of lmdb_sync.h. Owns no state: the environment and the
 * sync counter are the caller's.
 */
#include "lmdb_sync.h"

#include "lmdb_err.h"

int tpc_lmdb_sync(MDB_env *env, _Atomic uint64_t *syncs)
{
	atomic_fetch_add(syncs, 1);
	return tpc_lmdb_err(mdb_env_sync(env, 1));
}

int tpc_lmdb_commit(MDB_env *env, MDB_txn *txn, _Atomic uint64_t *syncs)
{
	size_t id = mdb_txn_id(txn);
	MDB_envinfo info;
	int rc = mdb_txn_commit(txn);

	if (rc)
		return tpc_lmdb_err(rc);
	atomic_fetch_add(syncs, 1);
	/* An empty commit leaves the last txn id before ours and ran no fdatasync. */
	rc = mdb_env_info(env, &info);
	return rc || info.me_last_txnid != id ? tpc_lmdb_sync(env, syncs) : 0;
}

int tpc_lmdb_commit_durable(MDB_env *env, MDB_txn *txn, _Atomic uint64_t *syncs)
{
	int rc = tpc_lmdb_commit(env, txn, syncs);

	return rc ? rc : tpc_lmdb_sync(env, syncs);
}
