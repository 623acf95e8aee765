/*
 * checker.h - the torture checker: from what every client did and was told (records.h)
 * and what every participant's sink holds, find every broken guarantee, per txid.
 *
 * Pure: it takes parsed records and sink lines, and returns violations and counts. No
 * files, no processes, no clock; the runner reads the files and feeds it, and a unit
 * test feeds it synthetic histories.
 *
 * Invariants checked (see docs/design.md, "What the torture checker proves"):
 *   partial          atomicity: the txid's writes are in some intended sinks, not all
 *                    (or only some of its writes are in one sink)
 *   commit-lost      the client was told COMMITTED; an intended sink lacks the writes
 *   abort-applied    the client was told ABORTED; a sink holds the writes
 *   unrequested      a sink holds writes of a transaction whose client never asked to
 *                    commit it (it aborted, or died before deciding)
 *   refused-applied  a transaction one participant voted NO on committed somewhere,
 *                    or its client was told COMMITTED
 *   lost-write       a write whose Put was acknowledged to the client is missing from
 *                    its sink while another write of the same txid is there (a
 *                    participant lost the first stages of a transaction, D8)
 *   duplicate        a sink holds the same write twice (applied twice)
 *   foreign          a sink holds a write no client sent: unknown txid, key, value or
 *                    participant
 *   conservation     the transfer amounts in all sinks do not sum to 0
 *   conflict         the client was told COMMITTED and ABORTED for the same txid
 *   txid-reused      two transactions were given the same txid
 *   left-prepared    a participant was still prepared after healing (runner-fed)
 *   unacked          the coordinator still held a decision after healing (runner-fed)
 *   slow-recovery    healing did not reach quiet within the bound (runner-fed)
 *   died             a process died on its own other than at a fault point: a crash
 *                    signal (abort, segfault, sanitizer) or a failing exit (runner-fed)
 *   stranger         a process started under an existing participant's name with
 *                    another folder, or on a running participant's folder, was not
 *                    refused as it must be, or left data in its sink (runner-fed)
 *
 * UNKNOWN outcomes that no status query resolved are allowed; they must still be
 * atomic (all or nothing).
 *
 * Operator decisions (`operator` records): a forced heuristic decision may break
 * atomicity on purpose, so a txid with an accepted forced commit, an accepted forced
 * abort that overrode a COMMIT, or a forced call whose result is uncertain is
 * "operator-decided": it is excluded from the atomicity, outcome and conservation
 * checks (and counted), but still checked for lost-write, duplicate and foreign writes,
 * which no decision can excuse. Every other operator call (refused, unreachable, not
 * forced, or a forced abort that overrode nothing) must have changed nothing the
 * protocol would not have done, so its txid is checked like any other.
 */
#ifndef TPC_TORTURE_CHECKER_H
#define TPC_TORTURE_CHECKER_H

#include <stddef.h>
#include <stdint.h>

#include "records.h"

enum tt_violation_kind {
	TT_V_PARTIAL,
	TT_V_COMMIT_LOST,
	TT_V_ABORT_APPLIED,
	TT_V_UNREQUESTED,
	TT_V_REFUSED_APPLIED,
	TT_V_LOST_WRITE,
	TT_V_DUPLICATE,
	TT_V_FOREIGN,
	TT_V_CONSERVATION,
	TT_V_CONFLICT,
	TT_V_TXID_REUSED,
	TT_V_LEFT_PREPARED,
	TT_V_UNACKED,
	TT_V_SLOW_RECOVERY,
	TT_V_DIED,
	TT_V_STRANGER,
	TT_V_COUNT
};

struct tt_violation {
	enum tt_violation_kind kind;
	uint64_t txid;           /* 0 when the violation is not about one txid */
	int part;                /* 0-based participant, or -1 */
	char detail[160];
};

/** What the history held, by final outcome. */
struct tt_counts {
	uint64_t txns;              /* transactions with an intent */
	uint64_t committed;         /* told or resolved COMMITTED */
	uint64_t aborted;           /* told or resolved ABORTED */
	uint64_t unknown;           /* never resolved */
	uint64_t unknown_applied;   /* of those, applied everywhere */
	uint64_t resolved;          /* learnt by a status query after healing */
	uint64_t by_key;            /* settled by beginning again with the same key */
	uint64_t never_requested;   /* the client never asked to commit (abort or death) */
	uint64_t client_aborts;     /* planned aborts */
	uint64_t refused;           /* transactions with a NO-voting write */
	uint64_t staged;            /* transactions whose writes went out in stages */
	uint64_t operator_calls;    /* heuristic decisions asked (operator records) */
	uint64_t operator_accepted; /* of those, accepted */
	uint64_t operator_decided;  /* txids excluded as operator-decided (forced) */
	uint64_t sink_writes;       /* write lines read from all sinks */
	int64_t transfer_sum;       /* sum of every transfer value in all sinks */
	uint64_t bad_lines;         /* records that did not parse (torn tails) */
};

struct tt_checker;

/**
 * @brief A checker for @p nparts participants.
 * @param trust_resolved_abort 0 when the coordinator forgets completed commits at once
 *        (--outcome-retention 0): a status query's ABORTED may then mean "forgotten",
 *        so it is treated as unknown
 * @return the checker, or NULL without memory
 */
struct tt_checker *tt_checker_new(unsigned nparts, int trust_resolved_abort);
void tt_checker_free(struct tt_checker *ck);

/** @brief Add one record of client @p client's outcomes file. @return 0 or -ENOMEM. */
int tt_checker_add_rec(struct tt_checker *ck, unsigned client, const struct tt_rec *r);

/** @brief Count unparseable lines (reported, not a violation). */
void tt_checker_add_bad_lines(struct tt_checker *ck, uint64_t n);

/**
 * @brief Add one write line read from participant @p part's sink.
 * @return 0 or -ENOMEM. The strings are copied.
 */
int tt_checker_add_sink(struct tt_checker *ck, unsigned part, uint64_t txid, const char *key,
			size_t klen, const char *value, size_t vlen);

/** @brief Participant @p part still held txid prepared when healing had to be done. */
int tt_checker_add_prepared(struct tt_checker *ck, unsigned part, uint64_t txid);
/** @brief The coordinator still held an unacknowledged decision for txid. */
int tt_checker_add_unacked(struct tt_checker *ck, uint64_t txid);
/** @brief Healing took @p ms, more than @p bound_ms. */
int tt_checker_add_slow_recovery(struct tt_checker *ck, uint64_t ms, uint64_t bound_ms);

/** @brief Process @p name died on its own, @p how (e.g. "killed by signal 6"). */
int tt_checker_add_death(struct tt_checker *ck, const char *name, const char *how);

/** @brief A stranger process was not refused as it must be: @p detail says how. */
int tt_checker_add_stranger(struct tt_checker *ck, int part, const char *detail);

/** @brief Check everything added. Call once, after every add. @return 0 or -ENOMEM. */
int tt_checker_run(struct tt_checker *ck);

/** @brief The violations found (valid until tt_checker_free). */
const struct tt_violation *tt_checker_violations(const struct tt_checker *ck, size_t *n);
/** @brief The violations found of one kind. */
size_t tt_checker_count_kind(const struct tt_checker *ck, enum tt_violation_kind k);
const struct tt_counts *tt_checker_counts(const struct tt_checker *ck);

/** @brief "partial", "commit-lost", ... */
const char *tt_violation_name(enum tt_violation_kind k);

#endif
