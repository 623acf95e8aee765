/*
 * coord_harness.h - a cluster for coordinator integration tests: one real
 * tpc-coordinator, a few tpc-testpart participants and blocking wire clients, all on
 * 127.0.0.1 with a port chosen free at run time and data in a fresh temporary folder.
 *
 * A test gets a struct cluster from cluster_setup() (its cmocka setup) and everything
 * it started is killed, freed and removed by cluster_teardown(), also when an assert
 * fails half-way. Every wait has a deadline (WAIT_MS); nothing sleeps a fixed time.
 * Helpers fail the current test (cmocka) instead of returning errors.
 *
 * TPC_KEEP_TMP=1 keeps the folder (coordinator and participant stderr logs, state files).
 */
#ifndef TPC_TESTS_COORD_HARNESS_H
#define TPC_TESTS_COORD_HARNESS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "proc.h"
#include "tpc.pb-c.h"
#include "wireclient.h"

/* Generous: the binaries run under AddressSanitizer; the normal path is far quicker. */
#define WAIT_MS 10000

#define CLUSTER_MAX_PARTS 4
#define CLUSTER_MAX_CLIENTS 8
#define CLUSTER_MAX_ARGS 16

struct cluster_part {
	tpc_proc *proc;
	char name[16];
	char state[PATH_MAX + 32];
	char log[PATH_MAX + 32];
	uint64_t epoch; /* from its last "ready EPOCH" line */
};

struct cluster {
	tpc_procs *procs;
	char dir[PATH_MAX];
	char data[PATH_MAX + 32];
	char coord_log[PATH_MAX + 32]; /* stderr of the current coordinator incarnation */
	int coord_starts;
	char hostport[64];
	int port;
	tpc_proc *coord;
	char *coord_args[CLUSTER_MAX_ARGS]; /* extra options, kept for restarts (owned) */
	int ncoord_args;
	struct cluster_part parts[CLUSTER_MAX_PARTS];
	tpc_wc *clients[CLUSTER_MAX_CLIENTS];
};

/** cmocka setup/teardown: a fresh folder and process set / kill, free, remove. */
int cluster_setup(void **state);
int cluster_teardown(void **state);

/**
 * Start the coordinator with extra options (NULL-terminated list, kept for restarts),
 * with TPC_FAULTS=@p faults in its environment when @p faults is not NULL, and wait
 * until it accepts connections.
 */
void coord_start(struct cluster *c, const char *faults, ...) __attribute__((sentinel));

/** Start it again on the same port and data folder with the same options, no faults. */
void coord_restart(struct cluster *c);

/** SIGKILL the coordinator and reap it. */
void coord_kill9(struct cluster *c);

/** SIGTERM the coordinator and check it exits with status 0 within WAIT_MS. */
void coord_term_clean(struct cluster *c);

/** Assert the current coordinator incarnation's stderr log holds @p text somewhere. */
void coord_log_has(struct cluster *c, const char *text);

/** Poll that log until it holds @p text; fail (as coord_log_has) after WAIT_MS. */
void coord_wait_log(struct cluster *c, const char *text);

/** Start participant @p i (named "p<i>", extra options NULL-terminated) and wait for
 *  its "ready EPOCH" line. @return the epoch. */
uint64_t part_start(struct cluster *c, int i, ...) __attribute__((sentinel));

/** Wait for participant @p i's next "ready EPOCH" line (after a reconnect). */
uint64_t part_wait_ready(struct cluster *c, int i);

/** Send a stdin command line to participant @p i (printf-style). */
void part_cmd(struct cluster *c, int i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Wait for participant @p i to print exactly the line (printf-style). */
void part_expect(struct cluster *c, int i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Assert participant @p i has printed no line starting with the prefix (so far). */
void part_expect_none(struct cluster *c, int i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** "join TXID" on participant @p i, then wait for "joined TXID". */
void part_join(struct cluster *c, int i, uint64_t txid);

/** "vote TXID VOTE" (yes, no, silent, readonly) on participant @p i, then wait for
 *  "vote-set TXID VOTE". */
void part_set_vote(struct cluster *c, int i, uint64_t txid, const char *vote);

/** How many lines of participant @p i's state file read "KIND TXID". */
int part_state_count(struct cluster *c, int i, char kind, uint64_t txid);

/** Connect a client and say Hello. @return the handle (freed by teardown). @p epoch may be NULL. */
tpc_wc *client_open(struct cluster *c, uint64_t *epoch);

/** Connect without Hello (for bad-input tests). */
tpc_wc *client_open_raw(struct cluster *c);

/** Close a client early (teardown will not touch it again). */
void client_close(struct cluster *c, tpc_wc *wc);

/** Begin (key may be NULL) and expect BEGIN_STARTED. @return the txid. */
uint64_t client_begin(tpc_wc *wc, const char *key);

/** client_begin, then part_join for participants 0 .. @p nparts - 1. @return the txid. */
uint64_t client_begin_joined(struct cluster *c, tpc_wc *wc, const char *key, int nparts);

/**
 * A transaction held in PREPARING: begin, p0 and p1 join, the Commit is sent (its
 * Outcome left waiting); p0 votes YES, p1 (started with --vote silent) never votes.
 * @return the txid.
 */
uint64_t client_preparing_txn(struct cluster *c, tpc_wc *wc);

/** Commit and expect outcome @p want; @p reason (may be NULL) receives the reason. */
void client_commit_expect(tpc_wc *wc, uint64_t txid, Tpc__OutcomeKind want, char *reason,
			  size_t reason_len);

/** Send a Commit without waiting for its Outcome. */
void client_send_commit(tpc_wc *wc, uint64_t txid);

/** Wait for the Outcome of a Commit sent with client_send_commit(); @p reason as above. */
void client_expect_outcome(tpc_wc *wc, uint64_t txid, Tpc__OutcomeKind want, char *reason,
			   size_t reason_len);

/** StatusQuery and expect @p want. */
void client_status_expect(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus want);

/** Receive the next Envelope and expect an Error with @p code; then, if @p then_eof,
 *  expect the connection to close. */
void client_expect_error(tpc_wc *wc, Tpc__ErrorCode code, int then_eof);

/** Milliseconds on the monotonic clock. */
uint64_t now_ms(void);

#endif
