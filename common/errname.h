/*
 * errname.h - names for the error codes every part of tpc shares: 0, -errno, and
 * LMDB's own MDB_* codes (negative, as tpc_lmdb_err() passes them on).
 *
 * libtpc's tpc_strerror() adds its TPC_E* band on top of this; the coordinator calls
 * this directly. Thread-safe: only static strings (never strerror()'s shared buffer).
 */
#ifndef TPC_COMMON_ERRNAME_H
#define TPC_COMMON_ERRNAME_H

/**
 * @brief Name an error code: "success" for 0, glibc's description for -errno, LMDB's
 *        for an MDB_* code.
 * @return a static string, never NULL ("unknown error" for any other code)
 */
const char *tpc_errname(int code);

#endif
