/*
 * quiet.c - read-only looks at the coordinator's and the participants' logs (quiet.h).
 *
 * The coordinator's decisions database is read according to its log format 1
 * (coordinator/log_store.c): key = u64 big-endian txid, value = a COMMIT record
 * (first byte 1) or a COMPLETED tombstone (first byte 2). Only the type byte is read.
 */
#include "quiet.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "tpc/participant.h"

#define REC_COMMIT 1u

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int lmdb_rc(int rc)
{
	return rc > 0 ? -rc : rc;
}

static int scan_decisions(MDB_txn *txn, MDB_dbi dbi, uint64_t *txids, size_t cap, size_t *n)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	if (rc)
		return lmdb_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size < 1 || ((const unsigned char *)v.mv_data)[0] != REC_COMMIT)
			continue;
		if (*n < cap && k.mv_size == 8)
			txids[*n] = be64(k.mv_data);
		(*n)++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : lmdb_rc(rc);
}

int tt_coord_unacked(const char *dir, uint64_t *txids, size_t cap, size_t *n)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	struct stat st;
	int rc;

	*n = 0;
	if (stat(dir, &st))
		return 0;
	rc = mdb_env_create(&env);
	if (rc)
		return lmdb_rc(rc);
	rc = mdb_env_set_maxdbs(env, 8);
	if (!rc)
		rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600);
	if (!rc)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (!rc) {
		rc = mdb_dbi_open(txn, "decisions", 0, &dbi);
		if (!rc)
			rc = scan_decisions(txn, dbi, txids, cap, n);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	if (rc == MDB_NOTFOUND || rc == ENOENT)
		return 0; /* not created yet */
	return lmdb_rc(rc);
}

int tt_part_prepared(const char *state_dir, uint64_t *txids, size_t cap, size_t *n)
{
	tpc_prepared_info *v = NULL;
	size_t cnt = 0;
	struct stat st;

	*n = 0;
	if (stat(state_dir, &st))
		return 0;
	int rc = tpc_participant_list_prepared_dir(state_dir, &v, &cnt);
	if (rc)
		return rc;
	for (size_t i = 0; i < cnt && i < cap; i++)
		txids[i] = v[i].txid;
	*n = cnt;
	free(v);
	return 0;
}
