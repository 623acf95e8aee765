/*
 * sink_held.h - the keys of prepared, undecided transactions, for a sink that refuses
 * a prepare whose keys another such transaction holds (the LMDB sink does).
 *
 * A transaction claims its keys at prepare (all or none: one key held by another
 * transaction refuses the whole claim, telling which key and who holds it) and
 * releases them once decided (the sink's committing(), abort(), or commit()). The table
 * has its own lock: a sink's prepare() and abort() run on the participant's loop
 * thread, its commit() on the sink writer (tpc/sink.h), and they may overlap.
 *
 * Only what this process prepared is held: a transaction recovered as PREPARED after
 * a restart is committed without a prepare, so its keys are not held meanwhile.
 */
#ifndef TPC_SINK_HELD_H
#define TPC_SINK_HELD_H

#include <pthread.h>
#include <stddef.h>

#include "maps.h"
#include "tpc/sink.h"

struct sink_held {
	pthread_mutex_t mu;
	struct strmap keys; /* key bytes -> the txid holding it */
	struct u64map txns; /* txid -> struct held_txn * (its keys, to release) */
};

void sink_held_init(struct sink_held *h);
void sink_held_free(struct sink_held *h);

/**
 * @brief Claim every key of @p txn for its txid (what it held before is given up first).
 * @param[out] at,holder on TPC_EREFUSED: the write whose key is held, and its holder
 * @return 0; TPC_EREFUSED when another transaction holds a key (nothing is claimed);
 *         -ENOMEM (nothing is claimed)
 */
int sink_held_claim(struct sink_held *h, const tpc_sink_txn *txn, size_t *at,
		    tpc_txid *holder);

/** @brief Release what @p txid holds (nothing held: nothing happens). */
void sink_held_release(struct sink_held *h, tpc_txid txid);

#endif
