/*
 * batch_writer.h - group commit: one writer thread per durable store.
 *
 * Callers on the event-loop thread submit items; the writer thread takes everything
 * queued while its previous batch was being forced, hands the whole batch to the
 * store's write_batch() (one synced transaction), and then passes the batch back to
 * the loop thread, where done() runs for every item with its status: the batch's, or,
 * when a batch of several fails, the item's own from writing it again alone (so one bad
 * item fails by itself and the others still become durable). Nothing
 * is reported done before write_batch() returned for it, so a caller that sends or
 * replies only from done() never acts on a record that is not yet durable.
 *
 * Items are intrusive (embed struct bw_item in your record); the writer never
 * allocates per item. The loop is woken through an eventfd, so this works whether or
 * not the application enabled libevent's threading support.
 */
#ifndef TPC_COMMON_BATCH_WRITER_H
#define TPC_COMMON_BATCH_WRITER_H

#include <stddef.h>

struct event_base;

struct bw_item {
	struct bw_item *next;
	int status; /* set by the writer: write_batch()'s result for its batch (or for the
		     * item alone, after a failed batch was split) */
};

/**
 * Writes items head..(n items, linked by next) as one durable unit.
 * Runs on the writer thread. @return 0 or a negative errno-style code.
 */
typedef int (*bw_write_fn)(void *ctx, struct bw_item *head, size_t n);

/**
 * Makes every batch written so far durable (e.g. mdb_env_sync(env, 1)). Runs on the
 * writer thread. @return 0 or a negative errno-style code.
 */
typedef int (*bw_sync_fn)(void *ctx);

/** Runs on the loop thread once per item, in submission order, after its batch. */
typedef void (*bw_done_fn)(void *ctx, struct bw_item *item, int status);

struct bw_stats {
	unsigned long long batches;
	unsigned long long items;
	unsigned long long max_batch;
	unsigned long long write_ns_total; /* time spent inside write_batch */
};

struct batch_writer;

/**
 * @brief Create a writer and start its thread.
 * @param max_batch largest number of items per batch; 1 turns group commit off.
 * @return the writer, or NULL with errno set.
 */
struct batch_writer *batch_writer_new(struct event_base *base, bw_write_fn write_batch,
				      bw_done_fn done, void *ctx, size_t max_batch);

/** @brief Queue one item; it must stay valid until done() ran for it. */
void batch_writer_submit(struct batch_writer *w, struct bw_item *item);

/**
 * @brief Queue items already linked through next (NULL-terminated) at once, so the
 *        writer never wakes between them: they share a batch unless it is full.
 */
void batch_writer_submit_chain(struct batch_writer *w, struct bw_item *head);

/** @brief Items submitted and not yet passed to done(). Loop thread only. */
size_t batch_writer_pending(const struct batch_writer *w);

/**
 * @brief Block the caller until every submitted item is written, then run done() for
 *        each. For shutdown and tests; the loop thread is the caller.
 */
void batch_writer_flush(struct batch_writer *w);

/**
 * @brief For a store whose write_batch() leaves its batch durable only after a later
 *        sync (LMDB opened with MDB_NOMETASYNC: the meta page naming the batch is synced
 *        by the next commit's fdatasync): a batch is passed to done() only after the
 *        next batch's write_batch() returned 0 — which must have synced every earlier
 *        batch — or after @p sync returned (called at once when nothing else is queued,
 *        and when a later write fails). A failed sync fails the batch's items. Call it
 *        before the first submit.
 */
void batch_writer_set_sync(struct batch_writer *w, bw_sync_fn sync);

/**
 * @brief Inline mode, for low load: items submitted during one turn of @p base's loop
 *        are collected; at the end of the turn a lone submission (one item, or one
 *        chain of batch_writer_submit_chain), when the writer is idle with
 *        nothing queued or undelivered, is written (and synced) by the loop thread
 *        itself and its done() runs at once — no hand-off to the writer thread and back.
 *        Otherwise the turn's items go to the writer as usual. write_batch() and sync()
 *        then also run on the loop thread, never concurrently with the writer's. Call it
 *        before the first submit. @return 0 or -ENOMEM.
 */
int batch_writer_set_inline(struct batch_writer *w, struct event_base *base);

/** @brief Copy the counters (any thread). */
void batch_writer_stats(struct batch_writer *w, struct bw_stats *out);

/** @brief Flush, stop the thread, and free the writer. NULL is a no-op. */
void batch_writer_free(struct batch_writer *w);

#endif
