/*
 * records.h - the torture clients' outcomes files: one text line per thing a client did
 * or was told, appended and flushed per record, so a client killed with SIGKILL leaves
 * every record it finished (a torn last line is skipped on reading).
 *
 *   begin TXID
 *   intent TXID KIND PLAN C/SEQ PART:KEY=VALUE [PART:KEY=VALUE ...]
 *   commit-sent TXID
 *   abort-sent TXID WHY
 *   outcome TXID COMMITTED|ABORTED|UNKNOWN
 *   by-key TXID COMMITTED|ABORTED
 *   resolved TXID COMMITTED|ABORTED|PENDING
 *   put-ok TXID I
 *   operator TXID commit|abort force|plain RESULT OVERRODE
 *
 * KIND is transfer, write or refuse; PLAN is commit or abort (the client aborts on
 * purpose); C/SEQ names the transaction (client number / its sequence number); PART is a
 * participant name kvN (1-based). Transfer writes use keys x/C/SEQ/from, x/C/SEQ/to and
 * x/C/SEQ/to2 whose signed values sum to 0; `write` uses w/C/SEQ; `refuse` adds the key
 * refuse-me on the refusing participant. A transaction begun with a client transaction
 * key whose Commit ended UNKNOWN is settled by beginning again with the same key:
 * `by-key TXID COMMITTED` when the coordinator reports that key's commit as TXID,
 * `by-key TXID ABORTED` when it starts a new transaction instead (the old one can no
 * longer commit). `resolved` lines are appended by the runner after healing, from
 * status queries about outcomes the client never learnt.
 *
 * An intent may carry the word `staged` after C/SEQ: its writes to one participant are
 * sent one after another, in stages (the Nth write listed for a participant is its stage
 * N), a stage only once every write of the previous stage was acknowledged, with pauses
 * in between. Transfer legs split over stages use keys x/C/SEQ/LEG.sN (N >= 2) for the
 * later parts; the values of every leg still sum to 0. `put-ok TXID I` says the Put of
 * the intent's write number I (0-based) was acknowledged: staged and joined.
 *
 * `operator` lines are written by the runner (outcomes/operator.txt) for each heuristic
 * decision it asked of the coordinator's admin API: RESULT is accepted (200), refused
 * (any other answer: nothing changed), unreachable (no connection: nothing sent) or
 * uncertain (sent, no answer, or a 5xx); OVERRODE is the answer's "overrode" (none,
 * COMMIT, ABORT) or - when there is none.
 *
 * begin and intent are written together in one write(), before any Put is sent: a sink
 * can only hold what an intent line announced.
 */
#ifndef TPC_TORTURE_RECORDS_H
#define TPC_TORTURE_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#define TT_MAX_PARTS 8
#define TT_MAX_WRITES 6
#define TT_KEY_MAX 48
#define TT_VAL_MAX 24
#define TT_REFUSE_KEY "refuse-me"

enum tt_rec_type {
	TT_REC_BEGIN,
	TT_REC_INTENT,
	TT_REC_COMMIT_SENT,
	TT_REC_ABORT_SENT,
	TT_REC_OUTCOME,
	TT_REC_RESOLVED,
	TT_REC_BY_KEY,
	TT_REC_PUT_OK,
	TT_REC_OPERATOR,
};

enum tt_outcome { TT_OUT_NONE = 0, TT_OUT_COMMITTED, TT_OUT_ABORTED, TT_OUT_UNKNOWN, TT_OUT_PENDING };
enum tt_kind { TT_KIND_TRANSFER, TT_KIND_WRITE, TT_KIND_REFUSE };
enum tt_plan { TT_PLAN_COMMIT, TT_PLAN_ABORT };

struct tt_write {
	uint8_t part;            /* 0-based participant index */
	char key[TT_KEY_MAX];
	char value[TT_VAL_MAX];
};

struct tt_rec {
	enum tt_rec_type type;
	uint64_t txid;
	/* intent */
	uint8_t kind, plan, nwrites;
	uint32_t client;
	uint64_t seq;
	struct tt_write w[TT_MAX_WRITES];
	uint8_t staged;          /* the writes went out in stages */
	/* outcome, resolved, by-key; operator: COMMITTED for commit, ABORTED for abort */
	uint8_t outcome;
	/* abort-sent: why; operator: the result (accepted, refused, unreachable, uncertain) */
	char why[24];
	/* put-ok */
	uint8_t index;
	/* operator */
	uint8_t force;
	char overrode[12];       /* none, COMMIT, ABORT, or - */
};

/**
 * @brief Format @p r as one line with its newline.
 * @return the line's length, or -ENOSPC if @p cap is too small.
 */
int tt_rec_format(const struct tt_rec *r, char *buf, size_t cap);

/**
 * @brief Parse one line (with or without its newline).
 * @return 0, or -EINVAL for a line that is not a record (a torn line, say).
 */
int tt_rec_parse(const char *line, struct tt_rec *out);

/** Called for each record of a file; return non-zero to stop. */
typedef int (*tt_rec_fn)(void *arg, const struct tt_rec *r);

/**
 * @brief Read every well-formed record of an outcomes file, in order.
 * @param[out] bad if not NULL, how many lines did not parse
 * @return 0, the callback's non-zero value, or -errno (a missing file is -ENOENT)
 */
int tt_rec_read_file(const char *path, tt_rec_fn fn, void *arg, uint64_t *bad);

const char *tt_outcome_name(enum tt_outcome o);
const char *tt_kind_name(enum tt_kind k);

#endif
