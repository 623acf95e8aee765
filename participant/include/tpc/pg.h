/*
 * tpc/pg.h - a PostgreSQL database as a tpc participant, through PostgreSQL's own
 * two-phase commit.
 *
 * The service runs its SQL on a connection the participant lends it, inside an open
 * transaction block bound to a txid (tpc_pg_txn()); the first call joins the
 * transaction at the coordinator. The service does nothing else. On Prepare the
 * participant records the txid in its own table (tpc_applied) in that same transaction,
 * then issues PREPARE TRANSACTION 'tpc_<participant id>_<txid>': PostgreSQL's WAL then
 * holds the prepared work durably. On the decision it issues COMMIT PREPARED or
 * ROLLBACK PREPARED. Built into libtpc when libpq is found (TPC_HAVE_PG).
 *
 * Durability promises:
 *  - D2: a YES vote is sent only after PREPARE TRANSACTION succeeded and the
 *    participant's own PREPARED record is on disk (tpc/participant.h). A failure at
 *    prepare (a constraint checked at commit, a serialization failure, a statement of
 *    the service that failed, a lost connection) is a NO vote carrying PostgreSQL's
 *    message.
 *  - D3: the decision is acked only after COMMIT PREPARED returned. A COMMIT whose
 *    prepared transaction is gone is taken as applied only when tpc_applied holds its
 *    global id (the row was written in the prepared transaction itself); otherwise the
 *    commit is retried and logged, never assumed.
 *  - D8: the global id names the participant id of the state folder, so two
 *    participants sharing a database never touch each other's prepared transactions.
 *  - D9: rows of tpc_applied are deleted once the participant will never commit that
 *    txid again (the sink's forget()).
 *
 * Orphans: at start and every scan_interval_ms a scanner thread lists
 * pg_prepared_xacts with this participant's prefix. One that this process is not
 * handling and its state folder does not hold (a crash between PREPARE TRANSACTION and
 * the PREPARED record, or a decision applied to the folder but not to the database) is
 * resolved through the coordinator (tpc_participant_query_status(), on the
 * participant's own connection, so presumed abort answers ABORTED even below the
 * coordinator's forget horizon): COMMITTED commits it, ABORTED rolls it back. One whose
 * outcome cannot be learned (the coordinator cannot be reached, or answers PENDING for
 * longer than unresolved_after_ms) is never guessed: it is logged at WARN and listed by
 * tpc_pg_list_unresolved() with its age and the locks it holds.
 *
 * Threads: the participant runs on its own background thread (tpc_participant_start()).
 * tpc_pg_txn(), tpc_pg_release() and the inspection calls may be called from any
 * thread; a lent connection belongs to the caller until tpc_pg_release().
 */
#ifndef TPC_PG_H
#define TPC_PG_H

#include <libpq-fe.h>

#include "tpc/participant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tpc_pg tpc_pg;

/** Settings of a PostgreSQL participant. Zero fields mean their defaults. */
typedef struct tpc_pg_config {
	tpc_participant_config part;  /**< the participant: coordinator, name, state_dir, log */
	const char *conninfo;         /**< libpq connection string ("" or NULL: PG* variables) */
	uint32_t pool_size;           /**< connections lent to transactions (default 8) */
	uint32_t pool_wait_ms;        /**< how long tpc_pg_txn() waits for a free connection
					   (default 5000) */
	uint32_t scan_interval_ms;    /**< period of the orphan scan (default 10000) */
	uint32_t unresolved_after_ms; /**< a prepared transaction still PENDING at the
					   coordinator after this long is reported (default
					   60000) */
} tpc_pg_config;

/** @brief Fill @p cfg with defaults (tpc_participant_config_init() for cfg->part). */
TPC_API void tpc_pg_config_init(tpc_pg_config *cfg);

/**
 * @brief Connect to PostgreSQL, make the tpc_applied table if missing, create and start
 *        the participant (its own thread) and the orphan scanner.
 * @param cfg copied (strings too)
 * @param[out] err on failure a negative code: -ECONNREFUSED when PostgreSQL cannot be
 *        reached, -ENOTSUP when its max_prepared_transactions is 0, -EIO for another
 *        PostgreSQL error, or any code of tpc_participant_new()/start(); the reason
 *        goes to cfg->part.log at ERROR level
 * @return the handle, or NULL
 */
TPC_API tpc_pg *tpc_pg_new(const tpc_pg_config *cfg, int *err);

/**
 * @brief Stop the scanner and the participant, close every connection. Transactions
 *        lent and not prepared are rolled back; prepared ones stay prepared in
 *        PostgreSQL and are resolved at the next start. NULL is a no-op.
 */
TPC_API void tpc_pg_free(tpc_pg *pg);

/**
 * @brief The connection bound to @p txid, inside an open transaction block. The first
 *        call for a txid takes a connection from the pool, issues BEGIN and joins the
 *        transaction at the coordinator (returning once the join is acknowledged); a
 *        later call for the same txid, after tpc_pg_release(), gives the same
 *        connection back. Run only your own statements on it: no COMMIT, ROLLBACK or
 *        PREPARE. If one of them fails, the transaction votes NO at Prepare with that
 *        statement's message (or abort it with tpc_client_abort()).
 * @param[out] err 0, or: TPC_ELIMIT (no free connection within pool_wait_ms),
 *        TPC_ESTATE (the connection of @p txid is lent and not released),
 *        TPC_ENOTACTIVE (@p txid is already preparing or decided here), -EIO (BEGIN
 *        failed: tpc_pg_errmsg() has PostgreSQL's message), or any code of
 *        tpc_participant_stage_wait() (the join failed; nothing is kept)
 * @return the connection, owned by the participant and lent to the caller until
 *         tpc_pg_release(); NULL on failure
 */
TPC_API PGconn *tpc_pg_txn(tpc_pg *pg, tpc_txid txid, int *err);

/** @brief tpc_pg_txn() joining with the transaction's token (tpc/client.h). */
TPC_API PGconn *tpc_pg_txn_token(tpc_pg *pg, tpc_txid txid, const uint8_t *token,
				 size_t token_len, int *err);

/**
 * @brief Hand the connection of @p txid back: the service is done with it for now (call
 *        it before answering whoever will commit). Prepare refuses (votes NO) while the
 *        connection is lent. A transaction aborted while lent is rolled back here.
 */
TPC_API void tpc_pg_release(tpc_pg *pg, tpc_txid txid);

/** @brief The participant inside (identity, stats, prepared list). Not to be freed. */
TPC_API tpc_participant *tpc_pg_participant(tpc_pg *pg);

/**
 * @brief The global-id prefix of this participant's prepared transactions,
 *        "tpc_<32 hex digits>_", as listed in pg_prepared_xacts. Any thread.
 */
TPC_API const char *tpc_pg_gid_prefix(const tpc_pg *pg);

/** A prepared transaction of this participant whose outcome could not be learned. */
typedef struct tpc_pg_unresolved {
	tpc_txid txid;
	char gid[64];
	uint64_t age_ms;       /**< since PREPARE TRANSACTION (pg_prepared_xacts.prepared) */
	uint32_t locks;        /**< locks it holds (pg_locks) */
	tpc_status status;     /**< what the coordinator said (PENDING) when @p err is 0 */
	int err;               /**< 0, or why the coordinator could not be asked */
} tpc_pg_unresolved;

/**
 * @brief The unresolved prepared transactions of the last scan.
 * @param[out] out a malloc'd array the caller frees (NULL when *n is 0)
 * @return 0 or -ENOMEM. Any thread.
 */
TPC_API int tpc_pg_list_unresolved(tpc_pg *pg, tpc_pg_unresolved **out, size_t *n);

/** @brief Run one orphan scan now, on the caller's thread, and wait for it.
 *  @return the number left unresolved, or a negative code (-EIO: PostgreSQL failed). */
TPC_API int tpc_pg_scan(tpc_pg *pg);

/** Counters. */
typedef struct tpc_pg_stats {
	uint64_t begun;             /**< transactions given a connection */
	uint64_t prepared;          /**< PREPARE TRANSACTION succeeded */
	uint64_t refused;           /**< NO votes: prepare failed */
	uint64_t committed;         /**< COMMIT PREPARED succeeded */
	uint64_t already_applied;   /**< a COMMIT found the txid in tpc_applied */
	uint64_t rolled_back;       /**< ROLLBACK or ROLLBACK PREPARED */
	uint64_t orphans_committed; /**< by the scanner */
	uint64_t orphans_rolled_back;
	uint64_t scans;
	uint64_t unresolved;        /**< in the last scan */
} tpc_pg_stats;

/** @brief Copy the counters. Any thread. */
TPC_API void tpc_pg_get_stats(tpc_pg *pg, tpc_pg_stats *out);

/** @brief The last error message (never NULL). */
TPC_API const char *tpc_pg_errmsg(tpc_pg *pg);

#ifdef __cplusplus
}
#endif

#endif
