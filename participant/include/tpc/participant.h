/*
 * tpc/participant.h - take part in tpc transactions from inside a service.
 *
 * A participant wraps a sink (tpc/sink.h). The service stages writes for a txid that
 * its caller got from the initiator; the participant joins that transaction at the
 * coordinator on the first write, answers Prepare by making a PREPARED record durable
 * in its own LMDB (in state_dir) and voting, and on COMMIT hands the writes to the
 * sink, acknowledging only once the sink made them durable. After a crash it finds
 * its prepared transactions and asks the coordinator how each ended.
 *
 * Durability promises:
 *  - D2: a YES vote is sent only after the PREPARED record, holding every staged
 *    write, is on disk. A prepared transaction is never decided by the participant:
 *    it waits for the coordinator (asking with StatusQuery, with backoff).
 *  - D3: the decision is acked only after the sink's commit() returned (durable), and
 *    a COMMIT delivered twice is applied once (the sink is idempotent per txid).
 *  - D7: a Prepare or Decision from an older coordinator epoch than the highest seen
 *    is rejected; the highest epoch is kept durably. An epoch (in a HelloReply, Prepare
 *    or Decision) more than max_epoch_jump above the highest seen is refused and logged,
 *    never remembered: a fake coordinator's absurd epoch cannot lock out the real one
 *    (a HelloReply with one closes the connection; it reconnects with backoff). The
 *    first epoch ever seen is taken as it is.
 *
 * Identity (D8): a participant is its state folder, not its name.
 *  - The folder is locked (flock on "<state_dir>/lock", which holds the holder's pid)
 *    from tpc_participant_new() to tpc_participant_free(): a second participant on the
 *    same folder, in this process or another, fails with TPC_ELOCKED, its message
 *    naming the holder's pid.
 *  - At the folder's first start a random 16-byte participant id is made and kept in
 *    it; every tpc_participant_new() is a new incarnation (a counter kept in the
 *    folder, made durable before anything is sent). The Hello names the id, the
 *    incarnation and the transactions the folder holds PREPARED; the coordinator binds
 *    the name to the id on first sight.
 *  - Staged writes live in memory until PREPARED, so a transaction this process joined
 *    dies with it: the coordinator aborts what an older incarnation joined and did not
 *    prepare, and refuses Joins and votes for it from a later one (a stage call then
 *    fails with TPC_EINCARNATION or TPC_ENOTFOUND). A reconnect of the same process
 *    keeps its incarnation and loses nothing.
 *  - If the coordinator refuses the identity (the name is bound to another folder, or
 *    a newer incarnation of this folder exists: TPC_EIDENTITY) the participant stops
 *    for good: no reconnects, an ERROR log line, every waiting and later stage call
 *    fails with TPC_EIDENTITY, tpc_participant_fatal() returns it and the optional
 *    on_fatal callback runs. Fix the cause (another process uses the name; or, if the
 *    original folder is lost for good, `tpcctl participant forget NAME`) and restart.
 *
 * Expiry: staged writes with no Prepare within txn_timeout_ms are discarded and the
 * participant votes NO at once (again after a reconnect), so the transaction aborts.
 * It keeps a small tombstone for the txid until the coordinator's answer (or, at
 * worst, a bounded time): a later stage call for it fails with TPC_EEXPIRED instead of
 * joining again with only part of the writes.
 *
 * A prepared transaction whose outcome the coordinator has forgotten (answered
 * FORGOTTEN, past its outcome retention) stays prepared: the participant logs an ERROR
 * once and keeps asking; it never guesses.
 *
 * Two ways to run: attach to the service's libevent loop (tpc/libevent.h; then call
 * everything from that loop's thread), or tpc_participant_start() to run on a
 * background thread of its own (then tpc_participant_stage_wait() may be called from
 * any thread).
 *
 * Signals: the participant writes to the coordinator's socket from its loop thread, and
 * a write to a connection the peer reset raises SIGPIPE in the writing thread. Started
 * (tpc_participant_start()), its own thread blocks SIGPIPE, so the host need do
 * nothing. Attached, the writes happen on the host's loop thread: the host must ignore
 * SIGPIPE (signal(SIGPIPE, SIG_IGN)), as every libevent program writing to sockets must.
 * The library's writer threads block every signal.
 *
 * Isolation: tpc gives atomicity (all participants apply a transaction, or none does)
 * and exactly-once application; it is not a lock manager. Staged writes are private to
 * their transaction until it commits, and nothing stops two open transactions from
 * staging writes to the same key: each is applied when its own COMMIT arrives, so of
 * two committed transactions writing one key, the one applied last wins. A sink may
 * refuse at prepare (a NO vote, so that transaction aborts) what it cannot allow. The
 * LMDB sink (tpc/sink_lmdb.h) refuses a prepare whose keys are held by another
 * transaction it has prepared and that is not decided yet, with a reason naming the
 * key, so two transactions writing one key never both stand prepared there: the first
 * to prepare goes on, the later one aborts and may be retried. A transaction is decided
 * here once the coordinator's decision reached the participant, so a client that
 * commits one transaction and then writes the same key in the next is never refused:
 * the commits are applied in that order. Reads
 * (tpc_sink_lmdb_get()) see committed data only, never staged or prepared writes.
 */
#ifndef TPC_PARTICIPANT_H
#define TPC_PARTICIPANT_H

#include "tpc/common.h"
#include "tpc/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tpc_participant tpc_participant;

/** Log levels passed to a tpc_log_fn. */
enum { TPC_LOG_LEVEL_DEBUG = 0, TPC_LOG_LEVEL_INFO = 1, TPC_LOG_LEVEL_WARN = 2,
       TPC_LOG_LEVEL_ERROR = 3 };

/** Receives the participant's log lines (one event each, no newline). */
typedef void (*tpc_log_fn)(void *arg, int level, const char *msg);

/**
 * Told once that the participant stopped for good (today only @p code TPC_EIDENTITY:
 * the coordinator refused its identity). Runs on the loop thread; @p msg says why and
 * is valid during the call. Must not free the participant.
 */
typedef void (*tpc_fatal_fn)(tpc_participant *p, int code, const char *msg, void *arg);

/**
 * A participant's settings. Fill it with tpc_participant_config_init(), then set what
 * differs.
 *
 * One rule for zero: a numeric field left 0 means its documented default (so a
 * zero-initialised struct with coordinator, name and state_dir set is a working
 * configuration, the same as tpc_participant_config_init()'s). Zero never means
 * "none", "off" or "unlimited"; where a setting can be turned off, the off value is
 * explicit and non-zero (group_commit_max = 1). A NULL pointer means "not given":
 * no log callback, no TLS.
 */
typedef struct tpc_participant_config {
	/**
	 * "HOST:PORT" (required), or the coordinators of one group ("h1:7400,h2:7400", up
	 * to 16; docs/ha.md). The participant connects to one at a time; on a failed
	 * connect, a lost connection or a standby's ERR_NOT_LEADER it goes to the leader
	 * the standby named (Error.leader), else to the next address: at once while some
	 * address was not tried since the last that worked, then after a doubling,
	 * jittered wait (50 ms to 0.5 s). Each address is resolved when it is tried (every
	 * one must resolve in tpc_participant_new()). unreachable_timeout_ms counts from
	 * the moment the participant had no working connection, whichever addresses it
	 * tries meanwhile.
	 */
	const char *coordinator;
	const char *name;             /**< participant name, unique per coordinator (required) */
	const char *state_dir;        /**< folder for the PREPARED log (LMDB), created if missing
					   (required); not the sink's folder */
	uint32_t txn_timeout_ms;      /**< staged writes with no Prepare expire (default 60000) */
	uint32_t max_open_txns;       /**< transactions with staged writes (default 100000) */
	uint64_t max_staged_bytes;    /**< bytes staged across transactions (default 256 MiB) */
	uint32_t group_commit_max;    /**< records per forced write; 1 turns group commit off
					   (default 4096) */
	uint32_t max_frame;           /**< largest frame sent or accepted (default 1 MiB) */
	uint64_t map_size;            /**< LMDB map size for state_dir (default 1 GiB) */
	uint64_t max_epoch_jump;      /**< refuse a coordinator epoch more than this above the
					   highest seen (default 1000000) */
	tpc_log_fn log;               /**< where log lines go; NULL: nowhere (the default) */
	void *log_arg;                /**< passed to @p log */
	tpc_fatal_fn on_fatal;        /**< told when the participant stops for good; NULL */
	void *fatal_arg;              /**< passed to @p on_fatal */
	/**
	 * Mutual TLS to the coordinator (PEM files; all three, or all NULL for plaintext).
	 * tls_cert's subject CN must equal @p name: the coordinator refuses a Hello whose
	 * name is not its certificate's CN. The coordinator's certificate must be signed
	 * by tls_ca and be for the host in @p coordinator: a DNS SAN (or the CN when it
	 * has no DNS SAN) matching a host name, an IP SAN equal to an IP address. A failed
	 * handshake is a connection error (logged with OpenSSL's reason, kept in errmsg);
	 * the participant keeps reconnecting with backoff, and nothing is sent before the
	 * handshake succeeds. The files are read once, in tpc_participant_new(); the
	 * library initialises OpenSSL itself.
	 */
	const char *tls_cert;         /**< this participant's certificate (CN = name) */
	const char *tls_key;          /**< its private key */
	const char *tls_ca;           /**< CA the coordinator's certificate must chain to */
	/**
	 * TESTING AID, never for production: fault points to arm, in the syntax of the
	 * coordinator's TPC_FAULTS ("POINT=ACTION[,...][,seed=N]", e.g.
	 * "part.commit.after_apply=crash"; see docs/failure-injection.md). An armed point
	 * may SIGKILL this process, sleep on the loop or a writer thread, or fail an I/O.
	 * NULL (the default): none. libtpc never reads TPC_FAULTS from the environment;
	 * a host that wants it passes the value here (tpc-kv's --faults does). Parsed in
	 * tpc_participant_new() (a bad spec fails it with -EINVAL); not kept. A fired
	 * fault is logged only through @p log, at WARN, possibly from a writer thread.
	 */
	const char *faults;
	/**
	 * Fail fast while the coordinator cannot be reached: once the participant has had
	 * no connection (none yet, or the last one lost) for this long, a stage call for a
	 * new txid fails at once with TPC_EUNREACHABLE, and stage calls waiting to send
	 * their Join fail with it too, instead of waiting for txn_timeout_ms. A WARN line
	 * says so when it starts and every 30 s while it lasts; an INFO line when the
	 * coordinator answers again (then stage calls work again). Default 5000.
	 */
	uint32_t unreachable_timeout_ms;
	/**
	 * Non-zero: at low load, a lone PREPARED record is written and synced on the event
	 * loop's thread itself instead of being handed to the log writer thread and back
	 * (batch_writer_set_inline): one client's transaction waits for less, but the loop
	 * (in attach mode, the application's own loop) is blocked for that disk sync, and
	 * a stalled disk stalls it. Default 0: every forced write on the writer thread.
	 */
	int inline_sync;
} tpc_participant_config;

/** @brief Fill @p cfg with the defaults above (coordinator, name, state_dir unset): the
 *         same values a zero field stands for. */
TPC_API void tpc_participant_config_init(tpc_participant_config *cfg);

/**
 * @brief Create a participant. Locks state_dir, opens it as a new incarnation (durable
 *        when this returns) and loads prepared transactions; makes no connection until
 *        attached or started.
 * @param cfg copied (strings too: the caller keeps ownership of its strings; the TLS
 *        files are read during this call)
 * @param sink the participant takes ownership and frees it in tpc_participant_free()
 * @param[out] err on failure, a negative code: TPC_ELOCKED when another participant
 *        holds state_dir; TPC_EVERSION when it holds PREPARED records of an older
 *        libtpc; TPC_ETLS when a TLS file is missing, unreadable or does not match
 *        (the reason goes to cfg->log); -errno, TPC_ECORRUPT, ...
 * @return the participant, or NULL (the sink is then freed too). On failure the reason
 *         (for TPC_ELOCKED: the holder's pid) goes to cfg->log at ERROR level.
 */
TPC_API tpc_participant *tpc_participant_new(const tpc_participant_config *cfg, tpc_sink *sink,
					     int *err);

/**
 * @brief Run the participant on a background thread with its own loop.
 * @return 0; TPC_ESTATE if already attached or started; or a negative code (-ENOMEM,
 *         -EAGAIN from thread creation, ...) with tpc_participant_errmsg() saying why.
 *         On failure nothing is kept: the participant may be started again.
 */
TPC_API int tpc_participant_start(tpc_participant *p);

/**
 * @brief Stop (joining the background thread if started), detach, close the state log,
 *        free the sink. Prepared transactions stay on disk and are resolved at the next
 *        start. NULL is a no-op.
 */
TPC_API void tpc_participant_free(tpc_participant *p);

/**
 * @brief Before tpc_participant_free(): stop taking new transactions and finish what
 *        is under way, waiting at most @p timeout_ms.
 *
 * From the first call on, a stage call for a txid this participant does not already
 * hold fails with TPC_ESTATE (writes to transactions it holds are still taken). The
 * participant keeps serving the coordinator: a transaction that is decided (its
 * Decision arrives) is applied to the sink and acknowledged, and the Ack is written to
 * the socket, so the coordinator does not keep the transaction open for a participant
 * that is gone. It returns once no transaction is left (EXPIRED tombstones aside), or
 * when @p timeout_ms ran out.
 *
 * What is left at the timeout is safe: a prepared transaction (YES given) stays on disk
 * and is resolved at the next start (tpc_participant_list_prepared() names them); a
 * transaction with staged writes and no Prepare is lost with the process and aborts
 * at the coordinator.
 *
 * Started (tpc_participant_start()): call from any thread but the loop's. Attached
 * (tpc/libevent.h): call from the loop's thread, outside the loop's callbacks; it runs
 * the host's loop (EVLOOP_ONCE) until done, so the host's other events run meanwhile.
 * @param timeout_ms how long to wait; 0 does not wait (it only stops new work and
 *        reports)
 * @param[out] in_doubt prepared transactions still waiting for their decision (may be
 *        NULL)
 * @return 0 when nothing is left; -ETIMEDOUT when something is (errmsg says what);
 *         TPC_ESTATE when neither started nor attached; -errno when the loop thread
 *         could not be woken
 */
TPC_API int tpc_participant_drain(tpc_participant *p, uint32_t timeout_ms, size_t *in_doubt);

/**
 * Completion of a staged write.
 * @param err 0 once the write is staged and the participant is a member of the
 *        transaction at the coordinator; else TPC_ENOTFOUND / TPC_ENOTACTIVE (the
 *        transaction is unknown or already deciding), TPC_EINCARNATION (joined by an
 *        earlier incarnation of this participant: it aborts), TPC_EEXPIRED (the
 *        staged writes expired while waiting), TPC_EDENIED (the coordinator refused
 *        the Join's transaction token, or the missing token where it requires one:
 *        nothing is kept), TPC_EUNREACHABLE (no connection to the coordinator for
 *        unreachable_timeout_ms: the Join was never sent, nothing is kept),
 *        TPC_EIDENTITY, TPC_ELIMIT, TPC_ECLOSED
 */
typedef void (*tpc_stage_cb)(void *arg, int err, tpc_txid txid);

/**
 * @brief Stage one write for @p txid. The first write of a txid joins the transaction;
 *        @p cb runs once the join is acknowledged (later writes complete at once), so
 *        the initiator's Commit cannot miss this participant. Joins without a
 *        transaction token: tpc_participant_stage_token() carries one. While the participant
 *        is not connected, the Join goes out once it is (the staged writes expire
 *        after txn_timeout_ms if that never happens). @p cb may run before this
 *        function returns. Loop thread only.
 * @param key,value copied by the participant
 * @return 0 if accepted (cb runs exactly once), or a negative code (cb does not run):
 *         TPC_EEXPIRED if this txid's staged writes expired here (the transaction
 *         aborts; it is never joined again), TPC_ENOTACTIVE if it is already
 *         deciding, TPC_EUNREACHABLE while the coordinator has been unreachable for
 *         unreachable_timeout_ms (a new txid only), TPC_ESTATE once draining (a new
 *         txid only), TPC_EIDENTITY after the identity was refused, TPC_ELIMIT, ...
 */
TPC_API int tpc_participant_stage(tpc_participant *p, tpc_txid txid, const void *key,
				  size_t key_len, const void *value, size_t value_len,
				  tpc_stage_cb cb, void *arg);

/**
 * @brief Blocking stage, for participants run with tpc_participant_start(); any thread.
 * @return 0, or the code the callback form would have passed, or -errno when the loop
 *         thread could not be woken (nothing was staged)
 */
TPC_API int tpc_participant_stage_wait(tpc_participant *p, tpc_txid txid, const void *key,
				       size_t key_len, const void *value, size_t value_len);

/**
 * @brief Stage one write with the transaction's token (tpc/client.h: the initiator's
 *        tpc_client_begin_token()), as the service's caller passed it. Otherwise as
 *        tpc_participant_stage().
 *
 * The first write of a txid joins with @p token in the Join, and the coordinator
 * checks it (a wrong one, or none at a coordinator with --require-txn-token: the stage
 * fails with TPC_EDENIED and nothing is kept). Every later write for the txid must
 * carry the same token, or none if the first had none; a mismatch is refused here,
 * without asking the coordinator, with TPC_EDENIED (compared in constant time), and the
 * transaction's writes so far are untouched.
 * @param token TPC_TXN_TOKEN_LEN bytes, or NULL (then @p token_len must be 0) for none
 * @return 0 if accepted (cb runs exactly once), or a negative code (cb does not run):
 *         TPC_EDENIED for a token that does not match the transaction's here, -EINVAL
 *         for a token of another length, or any code of tpc_participant_stage()
 */
TPC_API int tpc_participant_stage_token(tpc_participant *p, tpc_txid txid,
					const uint8_t *token, size_t token_len, const void *key,
					size_t key_len, const void *value, size_t value_len,
					tpc_stage_cb cb, void *arg);

/** @brief Blocking tpc_participant_stage_token(), as tpc_participant_stage_wait(). */
TPC_API int tpc_participant_stage_token_wait(tpc_participant *p, tpc_txid txid,
					     const uint8_t *token, size_t token_len,
					     const void *key, size_t key_len, const void *value,
					     size_t value_len);

/** A prepared transaction awaiting its decision. */
typedef struct tpc_prepared_info {
	tpc_txid txid;
	uint64_t age_ms;      /**< since the PREPARED record was written */
	uint64_t nrecords;    /**< staged writes it holds */
	uint64_t bytes;       /**< key and value bytes it holds */
	uint32_t queries;     /**< StatusQuery attempts since the last restart */
} tpc_prepared_info;

/**
 * @brief List prepared transactions (what an in-doubt transaction is blocking).
 * @param[out] out a malloc'd array the caller frees; NULL when *n is 0
 * @return 0 or a negative code. Loop thread, or any thread when started.
 */
TPC_API int tpc_participant_list_prepared(tpc_participant *p, tpc_prepared_info **out,
					  size_t *n);

/**
 * @brief List the prepared transactions recorded in a state folder, read-only, while
 *        the participant is running or not.
 */
TPC_API int tpc_participant_list_prepared_dir(const char *state_dir, tpc_prepared_info **out,
					      size_t *n);

/** Counters, for tests and metrics. */
typedef struct tpc_participant_stats {
	uint64_t joined, prepared, voted_no, committed, aborted, duplicate_commits;
	uint64_t stale_epoch_rejected, expired, recovered, status_queries, reconnects;
	uint64_t epoch_jump_rejected; /**< epochs refused as too far above the highest seen */
	uint64_t forgotten;           /**< prepared txns the coordinator answered FORGOTTEN */
	uint64_t log_batches, log_records;
	uint64_t highest_epoch;
	int connected;
	uint64_t log_syncs;  /**< device syncs of the PREPARED log (two per synced LMDB commit) */
	uint64_t sink_syncs; /**< device syncs of the sink's commits (0 if it does not count) */
} tpc_participant_stats;

/**
 * @brief Copy the counters. Loop thread, or any thread when started (all zero if the
 *        loop thread could not be woken).
 */
TPC_API void tpc_participant_get_stats(tpc_participant *p, tpc_participant_stats *out);

/** @brief The last error message (never NULL; "" when none). */
TPC_API const char *tpc_participant_errmsg(const tpc_participant *p);

/**
 * @brief The state folder's participant id and this participant's incarnation (D8).
 * @param[out] id_hex 32 lowercase hex digits and a NUL (may be NULL)
 * @param[out] incarnation >= 1, one more than the previous start on this folder (may
 *        be NULL)
 * @return 0, or -EINVAL. Any thread (both are fixed at tpc_participant_new()).
 */
TPC_API int tpc_participant_identity(const tpc_participant *p, char id_hex[33],
				     uint64_t *incarnation);

/**
 * @brief 0 while the participant can work; TPC_EIDENTITY once the coordinator refused
 *        its identity (it then stays stopped: see on_fatal). Any thread.
 */
TPC_API int tpc_participant_fatal(const tpc_participant *p);

/**
 * @brief Ask the coordinator, on this participant's own connection, how @p txid ended,
 *        for a transaction this participant holds no record of: an orphan a resource
 *        manager still holds prepared (tpc/pg.h's scanner). Asked as a participant, the
 *        coordinator answers ABORTED, not FORGOTTEN, for a txid with no decision record
 *        (presumed abort: a COMMIT record stays until every YES voter acked it, D4).
 *        Started mode only (tpc_participant_start()), from any thread but the loop's.
 * @param timeout_ms how long to wait for the answer (0: 5000)
 * @param[out] status PENDING, COMMITTED or ABORTED
 * @return 0; TPC_ECLOSED when not connected to the coordinator now; -ETIMEDOUT;
 *         TPC_ESTATE when not started; -EBUSY when that txid is being asked already;
 *         -EINVAL for txid 0
 */
TPC_API int tpc_participant_query_status(tpc_participant *p, tpc_txid txid,
					 uint32_t timeout_ms, tpc_status *status);

/** A prepared transaction of a resource manager whose outcome could not be learned. */
typedef struct tpc_orphan {
	tpc_txid txid;
	const char *gid;     /**< the resource manager's id (PostgreSQL's global id) */
	uint64_t age_ms;     /**< since it was prepared */
	uint32_t locks;      /**< locks it holds */
	const char *reason;  /**< why it is unresolved */
} tpc_orphan;

/**
 * @brief Tell the coordinator which prepared transactions of this participant's resource
 *        manager are unresolved (OrphanReport; the admin API lists them with their age
 *        and locks). Replaces the previous report; @p n 0 clears it. Not kept across
 *        reconnects: report again (tpc/pg.h's scanner does, every scan). Started mode,
 *        from any thread but the loop's.
 * @param v the first 64 are sent
 * @return 0 (sent); TPC_ECLOSED when not connected now; TPC_ESTATE when not started
 */
TPC_API int tpc_participant_report_orphans(tpc_participant *p, const tpc_orphan *v, size_t n);

#ifdef __cplusplus
}
#endif

#endif
