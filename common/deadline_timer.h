/*
 * deadline_timer.h - one libevent timer over a heap of per-transaction deadlines.
 *
 * The owner keeps, per transaction, the deadline it last armed (an armed_ms field);
 * deadline_timer_set() pushes (deadline, txid) and aims the one timer at the earliest
 * deadline. When it fires, every due entry whose txid still exists and whose armed_ms is
 * still that deadline is fired once (armed_ms is zeroed first); the others are stale (the
 * transaction moved on or is gone) and are skipped. Loop thread only.
 */
#ifndef TPC_COMMON_DEADLINE_TIMER_H
#define TPC_COMMON_DEADLINE_TIMER_H

#include <stdint.h>

#include "maps.h"

struct event;
struct event_base;

/** The owner's armed_ms for @p txid, or NULL when the transaction is gone. */
typedef uint64_t *(*deadline_armed_fn)(void *ctx, uint64_t txid);
/** A transaction's deadline came: step it (it may free the transaction). */
typedef void (*deadline_fire_fn)(void *ctx, uint64_t txid);

struct deadline_timer {
	struct deadline_heap heap;
	struct event *ev;   /* NULL until deadline_timer_attach() */
	uint64_t at_ms;     /* when ev is due; 0: not armed */
	deadline_armed_fn armed;
	deadline_fire_fn fire;
	void *ctx;
};

/** @brief An empty timer with no event yet: deadlines may be set before attaching. */
void deadline_timer_init(struct deadline_timer *dt, deadline_armed_fn armed,
			 deadline_fire_fn fire, void *ctx);

/** @brief Create the event on @p base and aim it at the earliest deadline. @return 0 or -ENOMEM. */
int deadline_timer_attach(struct deadline_timer *dt, struct event_base *base);

/**
 * @brief Arm @p txid for @p at_ms: nothing when @p at_ms is 0 or already *@p armed_ms;
 *        else *@p armed_ms = @p at_ms (older entries for the txid become stale).
 * @return 0, or -ENOMEM (nothing changed).
 */
int deadline_timer_set(struct deadline_timer *dt, uint64_t txid, uint64_t at_ms,
		       uint64_t *armed_ms);

/** @brief Fire every entry due at @p now_ms, then aim the timer at the next (the event does this). */
void deadline_timer_run(struct deadline_timer *dt, uint64_t now_ms);

/** @brief Free the event and the heap. */
void deadline_timer_free(struct deadline_timer *dt);

#endif
