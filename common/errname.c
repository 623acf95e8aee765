/*
 * errname.c - tpc_errname() (see errname.h). Owns no state.
 */
#include "errname.h"

#include <string.h>

#include <lmdb.h>

const char *tpc_errname(int code)
{
	const char *s;

	if (code == 0)
		return "success";
	if (code > 0)
		return "invalid error code (positive)";
	/* mdb_strerror() returns static strings for its own range only. */
	if (code >= MDB_KEYEXIST && code <= MDB_LAST_ERRCODE)
		return mdb_strerror(code);
	if (code > -1000) {
		s = strerrordesc_np(-code); /* glibc >= 2.32: static, thread-safe */
		if (s)
			return s;
	}
	return "unknown error";
}
