/*
 * common.c - names for libtpc's shared vocabulary (tpc/common.h): error codes,
 * outcomes, statuses, and the library version.
 *
 * Owns no state. Every function returns a pointer to a string literal (or to glibc's
 * or LMDB's static tables), so all of them are thread-safe: strerror() is never
 * called, because its buffer may be shared and overwritten by other threads.
 *
 * Error space (tpc/common.h): 0 success; -errno for system errors; LMDB's own codes
 * (MDB_KEYEXIST .. MDB_LAST_ERRCODE, already negative) as the LMDB sink passes them
 * through; the TPC_E* band below -1000 for tpc's own conditions.
 */
#include "wire_err.h"
#include "tpc/common.h"

#include "errname.h"

#ifndef TPC_VERSION
#error "TPC_VERSION must be defined by the build (CMake: PROJECT_VERSION)"
#endif

/* tpc's own band; NULL for a code that is not one of them. */
static const char *tpc_code_str(int code)
{
	switch (code) {
	case TPC_EPROTO: return "protocol error: the peer sent an undecodable or unexpected frame";
	case TPC_ENOTFOUND: return "no such open transaction at the coordinator";
	case TPC_ENOTACTIVE: return "the transaction no longer accepts this request";
	case TPC_ELIMIT: return "a configured limit was reached";
	case TPC_ENOTPART: return "the participant did not join this transaction";
	case TPC_EUNAVAIL: return "the coordinator cannot serve this now";
	case TPC_EVERSION: return "protocol versions do not match";
	case TPC_EINVALMSG: return "a required message field was missing";
	case TPC_ECLOSED: return "the connection closed before the reply arrived";
	case TPC_EREFUSED: return "the sink refused the transaction at prepare (vote NO)";
	case TPC_ESTALE: return "message from an older coordinator epoch";
	case TPC_ECORRUPT: return "a stored record could not be decoded";
	case TPC_ESTATE: return "the call is not allowed in the handle's current state";
	case TPC_EEXPIRED: return "the transaction's staged writes expired here; it aborts";
	case TPC_EIDENTITY:
		return "the coordinator refused this participant's identity (its name is bound to "
		       "another state folder)";
	case TPC_ELOCKED: return "the state folder is in use by another process";
	case TPC_ETLS:
		return "TLS failed: an unusable certificate file, or a failed handshake (a peer "
		       "certificate not trusted or not for this host, or a peer without TLS)";
	case TPC_EINCARNATION:
		return "the transaction was joined by an earlier incarnation of this participant; "
		       "it aborts";
	case TPC_EDENIED:
		return "not allowed: the transaction belongs to another connection, or its token is "
		       "missing or does not match";
	case TPC_EEPOCH:
		return "a coordinator epoch too far above the highest seen (refused, not "
		       "remembered)";
	case TPC_EUNREACHABLE:
		return "the coordinator is unreachable (nothing was done; try again later)";
	}
	return NULL;
}

const char *tpc_strerror(int code)
{
	const char *s = code < 0 ? tpc_code_str(code) : NULL;

	return s ? s : tpc_errname(code); /* 0, -errno and LMDB's codes: common/errname.c */
}

const char *tpc_outcome_str(tpc_outcome o)
{
	switch (o) {
	case TPC_OUTCOME_UNKNOWN: return "UNKNOWN";
	case TPC_OUTCOME_COMMITTED: return "COMMITTED";
	case TPC_OUTCOME_ABORTED: return "ABORTED";
	case TPC_OUTCOME_FORGOTTEN: return "FORGOTTEN";
	}
	return "INVALID";
}

const char *tpc_status_str(tpc_status s)
{
	switch (s) {
	case TPC_STATUS_PENDING: return "PENDING";
	case TPC_STATUS_COMMITTED: return "COMMITTED";
	case TPC_STATUS_ABORTED: return "ABORTED";
	case TPC_STATUS_FORGOTTEN: return "FORGOTTEN";
	}
	return "INVALID";
}

const char *tpc_version(void)
{
	return TPC_VERSION;
}

int tpc_error_from_wire(Tpc__ErrorCode code)
{
	switch (code) {
	case TPC__ERROR_CODE__ERR_NOT_FOUND: return TPC_ENOTFOUND;
	case TPC__ERROR_CODE__ERR_NOT_ACTIVE: return TPC_ENOTACTIVE;
	case TPC__ERROR_CODE__ERR_LIMIT: return TPC_ELIMIT;
	case TPC__ERROR_CODE__ERR_NOT_PARTICIPANT: return TPC_ENOTPART;
	case TPC__ERROR_CODE__ERR_UNAVAILABLE: return TPC_EUNAVAIL;
	case TPC__ERROR_CODE__ERR_VERSION: return TPC_EVERSION;
	case TPC__ERROR_CODE__ERR_INVALID: return TPC_EINVALMSG;
	case TPC__ERROR_CODE__ERR_IDENTITY: return TPC_EIDENTITY;
	case TPC__ERROR_CODE__ERR_INCARNATION: return TPC_EINCARNATION;
	case TPC__ERROR_CODE__ERR_DENIED: return TPC_EDENIED;
	case TPC__ERROR_CODE__ERR_NOT_LEADER: return TPC_EUNAVAIL; /* a standby of the group */
	default: return TPC_EPROTO; /* ERR_BAD_FRAME, ERR_PROTOCOL, unknown codes */
	}
}
