/*
 * lmdb_err.h - one error space for LMDB callers: LMDB returns errno values positive
 * and its own MDB_* codes negative; tpc wants every failure negative.
 */
#ifndef TPC_COMMON_LMDB_ERR_H
#define TPC_COMMON_LMDB_ERR_H

static inline int tpc_lmdb_err(int rc)
{
	return rc > 0 ? -rc : rc;
}

#endif
