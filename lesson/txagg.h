/*
 * txagg.h - the exactly-once engine shared by the financial close and the exactly-once
 * page-view counter: read the event log from the committed position, and commit each
 * batch as ONE tpc transaction across two tpc-kv participants, the ledger (the
 * aggregate) and the offset store (the position), so both move together or not at all.
 *
 * Per batch starting at position P:
 *  1. Read "pos" from both participants and wait until they agree (a commit reaches
 *     the participants after the initiator hears COMMITTED; reading before that would
 *     read a stale total, and writing on top of it would lose an update).
 *  2. Begin with the deterministic transaction key "<ns>/<P>". At most one transaction
 *     per key commits, and a Begin under the key of a committed one answers
 *     ALREADY_COMMITTED: a restarted aggregator learns the outcome of its predecessor's
 *     last batch instead of counting it twice; an open one under the key is fenced.
 *  3. Read the current aggregate for the keys the batch touches (and, with dedupe, the
 *     event ids already counted), stage the new absolute values and the new position
 *     at both participants, commit.
 * Ledger keys written by the engine: "pos", and with dedupe "seen/<event id>". Offset
 * store keys: "pos", "origin" (where the sink's history starts) and "batch/<from>" =
 * "<to>" (the committed batches, which is what replay walks).
 *
 * Replay: on a fresh pair of participants, start from any offset (cfg.from); over an
 * existing pair, a start before the committed position walks the committed batches
 * and re-begins each under its key, which must answer ALREADY_COMMITTED: nothing is
 * written twice.
 */
#ifndef LESSON_TXAGG_H
#define LESSON_TXAGG_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "kvconn.h"

struct tpc_logger;
struct txagg;

/** Owned key/value ops (Puts or Gets) for kvconn_exec. */
struct kvbatch {
	struct kv_op *ops;
	size_t n, cap;
};

/** @brief Add a Put of @p key = printf(fmt, ...). @return 0 or -ENOMEM. */
int kvb_put(struct kvbatch *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/** @brief Add a Get of @p key. @return 0 or -ENOMEM. */
int kvb_get(struct kvbatch *b, const char *key);
/** @brief Free every op (keys, values, results) and empty the batch. */
void kvb_reset(struct kvbatch *b);
/** @brief kvb_reset, and free the batch's array too. */
void kvb_free(struct kvbatch *b);

/**
 * Turns a batch's events into ledger Puts (absolute values). It may read the ledger's
 * committed state with txagg_ledger_read(); the engine adds "pos" (and "seen/") itself.
 * @return 0, or a negative code (the batch is aborted and retried).
 */
typedef int (*txagg_plan_fn)(void *self, struct txagg *ta, const struct lesson_event *ev,
			     size_t n, uint64_t to, struct kvbatch *puts);

struct txagg_cfg {
	const char *coordinator;   /* HOST:PORT */
	const char *ledger;        /* tpc-kv HOST:PORT */
	const char *offsets;       /* tpc-kv HOST:PORT */
	const char *log_dir;       /* the event log */
	const char *ns;            /* transaction key namespace */
	uint32_t batch;            /* events per batch */
	int dedupe;                /* count each event id once ("seen/" keys in the ledger) */
	int from_set;
	uint64_t from;             /* replay start / origin of a fresh sink */
	const char *progress;      /* file the committed position is written to, or NULL */
	uint32_t timeout_ms;       /* per request */
	const struct tpc_logger *log;
	txagg_plan_fn plan;
	void *plan_self;
};

struct txagg_stats {
	uint64_t position;         /* final committed position */
	uint64_t batches;          /* committed by this run */
	uint64_t resolved;         /* found committed by an earlier run (ALREADY_COMMITTED) */
	uint64_t confirmed;        /* replay over the sink: batches confirmed by key */
	uint64_t aborted, retries, events, dups_skipped;
};

/** @brief Run until the end of the log. @return 0, or a negative code (fatal). */
int txagg_run(const struct txagg_cfg *cfg, struct txagg_stats *st);

/** @brief Read ledger keys (the ops must be Gets). For plans. @return 0 or negative. */
int txagg_ledger_read(struct txagg *ta, struct kvbatch *gets);

/** @brief Get "PREFIX/KEY" for every key of @p keys (in its order) into @p gets and read
 *  them from the ledger. For plans that keep running totals. @return 0 or negative. */
int txagg_ledger_read_keys(struct txagg *ta, const struct tally *keys, const char *prefix,
			   struct kvbatch *gets);

#endif
