/*
 * tpc/common.h - what every libtpc header shares: the error space, outcomes, txids.
 *
 * Error space: 0 is success; failures are negative. -errno values (-ENOMEM, -EINVAL,
 * -ETIMEDOUT, ...) keep their meaning; tpc's own conditions use the TPC_E* band below
 * -1000. tpc_strerror() names any of them.
 */
#ifndef TPC_COMMON_H
#define TPC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(TPC_STATIC_BUILD)
#define TPC_API __attribute__((visibility("default")))
#else
#define TPC_API
#endif

/** A transaction id, allocated by the coordinator; never 0. */
typedef uint64_t tpc_txid;

enum {
	TPC_EPROTO = -1001,      /**< the peer broke the protocol or sent an undecodable frame */
	TPC_ENOTFOUND = -1002,   /**< no such open transaction at the coordinator */
	TPC_ENOTACTIVE = -1003,  /**< the transaction no longer accepts this request */
	TPC_ELIMIT = -1004,      /**< a configured limit was reached */
	TPC_ENOTPART = -1005,    /**< a vote or ack from a participant that did not join */
	TPC_EUNAVAIL = -1006,    /**< the coordinator cannot serve this now */
	TPC_EVERSION = -1007,    /**< protocol versions do not match */
	TPC_EINVALMSG = -1008,   /**< a required field was missing */
	TPC_ECLOSED = -1009,     /**< the connection closed before the reply arrived */
	TPC_EREFUSED = -1010,    /**< a sink refused the transaction at prepare (vote NO) */
	TPC_ESTALE = -1011,      /**< a message from an older coordinator epoch (rule D7) */
	TPC_ECORRUPT = -1012,    /**< a stored record could not be decoded */
	TPC_ESTATE = -1013,      /**< the call is not allowed in the handle's current state */
	TPC_EEXPIRED = -1014,    /**< the transaction's staged writes expired here: it aborts */
	TPC_EIDENTITY = -1015,   /**< the coordinator refused this participant's identity (the
				      name is bound to another state folder): stop, do not retry */
	TPC_ELOCKED = -1016,     /**< the state folder is in use by another process */
	TPC_EINCARNATION = -1017, /**< joined by an earlier incarnation of this participant (one
				       that restarted and lost its staged writes): it aborts */
	TPC_EDENIED = -1018,     /**< not allowed for this sender: a Commit or Abort of a
				      transaction begun on another connection, or a write or
				      Join without the transaction's token where one is required,
				      or with a token that does not match. Nothing changed */
	TPC_EEPOCH = -1019,      /**< a coordinator epoch too far above the highest seen
				      (max_epoch_jump): refused, not remembered */
	TPC_ETLS = -1020,        /**< TLS failed: a certificate file is unusable, or the
				      handshake did (the peer's certificate is not signed by
				      tls_ca or not for the host dialled, or the peer speaks no
				      TLS); the handle's errmsg says which */
	TPC_EUNREACHABLE = -1021, /**< the coordinator cannot be reached: a participant found
				       no connection for its unreachable_timeout_ms, or a
				       client's connect failed (refused, unreachable, or not
				       within connect_timeout_ms); the handle's errmsg says why.
				       Nothing was done; try again later */
};

/** Length of a transaction token (tpc_client_begin_token(), tpc_participant_stage_token()). */
#define TPC_TXN_TOKEN_LEN 16

/** Outcome of a transaction as its client learns it. */
typedef enum tpc_outcome {
	TPC_OUTCOME_UNKNOWN = 0,   /**< not known: connection lost mid-commit; ask with status */
	TPC_OUTCOME_COMMITTED = 1,
	TPC_OUTCOME_ABORTED = 2,
	TPC_OUTCOME_FORGOTTEN = 3, /**< decided long ago and forgotten (past the coordinator's
				        outcome retention): neither outcome may be assumed */
} tpc_outcome;

/** Status a coordinator reports for a transaction. */
typedef enum tpc_status {
	TPC_STATUS_PENDING = 0,    /**< still open or deciding */
	TPC_STATUS_COMMITTED = 1,
	TPC_STATUS_ABORTED = 2,    /**< aborted, or unknown to the coordinator (presumed abort) */
	TPC_STATUS_FORGOTTEN = 3,  /**< decided long ago and forgotten: neither may be assumed */
} tpc_status;

/**
 * @brief Name an error code.
 * @param code 0, a negative errno value, or a TPC_E* code
 * @return a static string; never NULL
 */
TPC_API const char *tpc_strerror(int code);

/** @brief Name an outcome ("COMMITTED", "ABORTED", "UNKNOWN", "FORGOTTEN"). */
TPC_API const char *tpc_outcome_str(tpc_outcome o);

/** @brief Name a status ("PENDING", "COMMITTED", "ABORTED", "FORGOTTEN"). */
TPC_API const char *tpc_status_str(tpc_status s);

/** @brief The library version, "MAJOR.MINOR.PATCH". */
TPC_API const char *tpc_version(void);

#ifdef __cplusplus
}
#endif

#endif
