/*
 * lazy_queue.h - unforced records ride the next forced batch.
 *
 * A record that need not be durable at once (the coordinator's COMPLETE, the
 * participant's record drop: if one is lost, the work is redone after a restart, and
 * redoing it is harmless) waits here on the loop thread instead of costing a sync of its
 * own. lazy_queue_submit_with() hands the waiting records to the batch writer chained in
 * front of a forced record, so they share its sync; with nothing forced to ride on they
 * go on their own flush_ms after the first one started waiting, or at once when max
 * are waiting. Loop thread only; items are intrusive (struct bw_item, batch_writer.h).
 */
#ifndef TPC_COMMON_LAZY_QUEUE_H
#define TPC_COMMON_LAZY_QUEUE_H

#include <stddef.h>

#include "batch_writer.h"

struct event;
struct event_base;

struct lazy_queue {
	struct batch_writer *writer;
	struct event *timer;          /* NULL until lazy_queue_init() */
	struct bw_item *head, *tail;  /* waiting, oldest first, linked through next */
	size_t n, max;
	unsigned flush_ms;
	void (*on_timer)(void *ctx);  /* optional: more to do when the timer fires */
	void *ctx;
};

/**
 * @brief Start an empty queue in front of @p w (the queue may be zeroed before).
 * @param flush_ms how long the first waiting record may wait; @param max how many may.
 * @param on_timer NULL, or called (with @p ctx) each time the timer fires, after the
 *        waiting records were handed over.
 * @return 0, or -ENOMEM.
 */
int lazy_queue_init(struct lazy_queue *q, struct event_base *base, struct batch_writer *w,
		    unsigned flush_ms, size_t max, void (*on_timer)(void *ctx), void *ctx);

/** @brief Let @p item wait for the next forced record (or the timer, or max). */
void lazy_queue_add(struct lazy_queue *q, struct bw_item *item);

/** @brief Submit the waiting records followed by @p then (forced; or NULL) as one chain. */
void lazy_queue_submit_with(struct lazy_queue *q, struct bw_item *then);

/** @brief Submit the waiting records on their own. */
void lazy_queue_flush(struct lazy_queue *q);

/** @brief Start the timer if it is not running (for a caller's on_timer work). */
void lazy_queue_arm(struct lazy_queue *q);

/**
 * @brief Free the timer and the records still waiting (added after the last flush,
 *        e.g. while the writer was being freed): @p free_item on each, or free().
 */
void lazy_queue_free(struct lazy_queue *q, void (*free_item)(struct bw_item *));

#endif
