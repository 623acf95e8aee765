/*
 * batch_writer.c - group commit: a writer thread that turns queued items into batches
 * for one durable store, and hands the written batches back to the event-loop thread.
 *
 *   loop thread                    writer thread
 *   submit() -> queue ----------->  take <= max_batch items (all queued so far)
 *                                   write_batch() without the lock
 *                                   item->status = result
 *   on_wake() <- eventfd <------    append batch to the done queue, poke eventfd
 *   done() per item, in order
 *
 * Owns: the submission queue, the done queue, the writer thread, the eventfd and its
 * libevent event. Invariants:
 *   - items leave in submission order: the queue is FIFO, one writer thread takes
 *     prefixes of it, batches enter the done queue in the order they were written, and
 *     the loop thread delivers the done queue front to back;
 *   - an item reaches done() only after write_batch() returned for its batch;
 *   - queue, done queue, busy, stop and stats are guarded by mu; pending and the
 *     delivery list belong to the loop thread alone (submit, done, flush, free all run
 *     there), so they need no lock;
 *   - the writer calls write_batch() and writes the eventfd without holding mu;
 *   - a batch of several items whose write fails is written again item by item, so one
 *     bad item fails alone: each item's status is its own write's result;
 *   - with a sync function (batch_writer_set_sync: a store whose commit leaves its last
 *     batch durable only once a later fdatasync ran, e.g. LMDB with MDB_NOMETASYNC), a
 *     written batch is held back, not done, until the next batch's write succeeded
 *     (which synced it) or sync() returned; the writer syncs at once when nothing else
 *     is queued, so a batch is never held while the writer waits;
 *   - inline mode (batch_writer_set_inline): items submitted during one loop turn are
 *     collected (loop thread only) and, at the end of the turn, a lone submission (an
 *     item or one chain) that finds the writer idle with nothing queued or undelivered
 *     is written (and synced) by the loop thread itself, its done() run right away;
 *     anything else goes to the writer.
 *     busy is held around the inline write, so the store never sees two writers.
 */
#include "batch_writer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/eventfd.h>

#include <event2/event.h>

#include "util.h"

/* A singly-linked FIFO of items, linked through bw_item.next. */
struct bw_list {
	struct bw_item *head;
	struct bw_item *tail;
};

struct batch_writer {
	bw_write_fn write_batch;
	bw_sync_fn sync;         /* NULL: write_batch() alone makes a batch durable (mu) */
	bw_done_fn done;
	void *ctx;
	size_t max_batch;

	pthread_mutex_t mu;
	pthread_cond_t work_cv;  /* writer waits: queue empty and not stopping */
	pthread_cond_t idle_cv;  /* flush waits: queue non-empty or writer busy */
	struct bw_list queue;    /* submitted, not yet taken by the writer (mu) */
	struct bw_list done_q;   /* written, not yet taken by the loop (mu) */
	int busy;                /* writer is inside a batch (mu) */
	int stop;                /* writer should exit once the queue is empty (mu) */
	struct bw_stats stats;   /* (mu) */

	struct bw_list deliver;  /* taken by the loop, done() not yet run (loop thread) */
	struct bw_list collect;  /* inline mode: submitted this loop turn (loop thread) */
	size_t ncollect;         /* ... its items, and how many submit calls brought them */
	size_t ncalls;
	int inline_ok;           /* batch_writer_set_inline (loop thread) */
	struct event *turn_end;  /* inline mode: runs after this turn's callbacks */
	size_t pending;          /* submitted, done() not yet run (loop thread) */

	int efd;
	struct event *ev;
	pthread_t thread;
};

/* ------------------------------------------------------------------ lists */

static void list_append(struct bw_list *l, struct bw_item *head, struct bw_item *tail)
{
	tail->next = NULL;
	if (l->tail)
		l->tail->next = head;
	else
		l->head = head;
	l->tail = tail;
}

/* Detach up to @p max items from the front of @p l; returns how many, and the ends. */
static size_t list_take(struct bw_list *l, size_t max, struct bw_item **head,
			struct bw_item **tail)
{
	struct bw_item *last = l->head;
	size_t n = 1;

	while (n < max && last->next) {
		last = last->next;
		n++;
	}
	*head = l->head;
	*tail = last;
	l->head = last->next;
	if (!l->head)
		l->tail = NULL;
	last->next = NULL;
	return n;
}

static struct bw_item *list_pop(struct bw_list *l)
{
	struct bw_item *it = l->head;

	if (it) {
		l->head = it->next;
		if (!l->head)
			l->tail = NULL;
	}
	return it;
}

/* ----------------------------------------------------------- writer thread */

static void poke_loop(struct batch_writer *w)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
	while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* The batch failed: write each item on its own (one bad record must not fail the rest). */
static void write_each(struct batch_writer *w, struct bw_item *head)
{
	for (struct bw_item *it = head, *next; it; it = next) {
		next = it->next;
		it->next = NULL; /* a batch of one */
		it->status = w->write_batch(w->ctx, it, 1);
		it->next = next;
	}
}

/* A written batch on its way to the done queue. */
struct bw_batch {
	struct bw_item *head, *tail;
	size_t n;
	uint64_t write_ns;
};

/* Write @p b; set each item's status. @return 0 when the whole batch was written at
 * once, else non-zero (it failed, or was split and written item by item). */
static int write_one_batch(struct batch_writer *w, struct bw_batch *b)
{
	uint64_t t0 = tpc_now_ns();
	int rc = w->write_batch(w->ctx, b->head, b->n);

	if (rc < 0 && b->n > 1) {
		write_each(w, b->head);
	} else {
		for (struct bw_item *it = b->head; it; it = it->next)
			it->status = rc;
	}
	b->write_ns = tpc_now_ns() - t0;
	return rc < 0 ? rc : 0;
}

/* Hand @p b to the loop; a failed @p sync_rc fails every item written well. The writer
 * is idle afterwards unless @p more (it still holds a batch). */
static void release(struct batch_writer *w, struct bw_batch *b, int sync_rc, int more)
{
	for (struct bw_item *it = b->head; it; it = it->next)
		if (it->status == 0)
			it->status = sync_rc;
	pthread_mutex_lock(&w->mu);
	list_append(&w->done_q, b->head, b->tail);
	w->stats.batches++;
	w->stats.items += b->n;
	if (b->n > w->stats.max_batch)
		w->stats.max_batch = b->n;
	w->stats.write_ns_total += b->write_ns;
	w->busy = more;
	if (!w->queue.head && !more)
		pthread_cond_broadcast(&w->idle_cv);
	pthread_mutex_unlock(&w->mu);
}

static int queue_empty(struct batch_writer *w)
{
	pthread_mutex_lock(&w->mu);
	int empty = w->queue.head == NULL;
	pthread_mutex_unlock(&w->mu);
	return empty;
}

/* Write @p b; with a sync function, release the batch @p held before it (the write
 * synced it) and hold @p b in turn while more is queued. @return 1 if @p b is held. */
static int write_and_release(struct batch_writer *w, bw_sync_fn sync, struct bw_batch *held,
			     struct bw_batch *b)
{
	int rc = write_one_batch(w, b);

	if (held->head) /* a failed write may not have synced it: sync on purpose */
		release(w, held, rc == 0 ? 0 : sync(w->ctx), 1);
	if (!sync) {
		release(w, b, 0, 0);
		return 0;
	}
	if (rc == 0 && !queue_empty(w))
		return 1;
	release(w, b, sync(w->ctx), 0);
	return 0;
}

static void *writer_main(void *arg)
{
	struct batch_writer *w = arg;
	struct bw_batch held = { 0 }, b;
	bw_sync_fn sync;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->queue.head && !w->stop)
			pthread_cond_wait(&w->work_cv, &w->mu);
		if (!w->queue.head)
			break; /* stopping, and nothing left to write */
		b.n = list_take(&w->queue, w->max_batch, &b.head, &b.tail);
		w->busy = 1;
		sync = w->sync;
		pthread_mutex_unlock(&w->mu);

		if (write_and_release(w, sync, &held, &b))
			held = b;
		else
			held.head = NULL;
		poke_loop(w);

		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ------------------------------------------------------------- loop thread */

/* Run done() for everything written so far, in order. done() may free the item. */
static void deliver_done(struct batch_writer *w)
{
	struct bw_item *it;

	pthread_mutex_lock(&w->mu);
	if (w->done_q.head) {
		list_append(&w->deliver, w->done_q.head, w->done_q.tail);
		w->done_q.head = w->done_q.tail = NULL;
	}
	pthread_mutex_unlock(&w->mu);

	/* Popping from w->deliver (not a local list) keeps the order even when a done()
	 * callback re-enters batch_writer_flush(). */
	while ((it = list_pop(&w->deliver)) != NULL) {
		w->pending--;
		w->done(w->ctx, it, it->status);
	}
}

static void drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	drain_eventfd((int)fd);
	deliver_done(arg);
}

/* Inline mode: the loop thread writes one submission itself when the writer is idle
 * with nothing queued or undelivered. @return 1 if it did (done() ran). */
static int write_inline(struct batch_writer *w, struct bw_item *head, struct bw_item *tail,
			size_t n)
{
	struct bw_batch b = { .head = head, .tail = tail, .n = n };
	bw_sync_fn sync;

	pthread_mutex_lock(&w->mu);
	int idle = !w->busy && !w->queue.head && !w->done_q.head && !w->deliver.head;
	if (idle)
		w->busy = 1;
	sync = w->sync;
	pthread_mutex_unlock(&w->mu);
	if (!idle)
		return 0;
	int rc = write_one_batch(w, &b);
	release(w, &b, sync ? sync(w->ctx) : 0, 0);
	(void)rc;
	deliver_done(w);
	return 1;
}

/* The end of a loop turn in inline mode: write a lone submission (one item, or one
 * chain such as a record and its key) inline, else hand the turn's items to the
 * writer. */
static void on_turn_end(evutil_socket_t fd, short what, void *arg)
{
	struct batch_writer *w = arg;
	struct bw_item *head = w->collect.head, *tail = w->collect.tail;
	size_t n = w->ncollect, calls = w->ncalls;

	(void)fd;
	(void)what;
	if (!head)
		return;
	w->collect.head = w->collect.tail = NULL;
	w->ncollect = w->ncalls = 0;
	if (calls == 1 && write_inline(w, head, tail, n))
		return;
	pthread_mutex_lock(&w->mu);
	list_append(&w->queue, head, tail);
	pthread_cond_signal(&w->work_cv);
	pthread_mutex_unlock(&w->mu);
}

/* Inline mode: collect; the turn-end event decides. */
static void collect(struct batch_writer *w, struct bw_item *head, struct bw_item *tail,
		    size_t n)
{
	list_append(&w->collect, head, tail);
	w->ncollect += n;
	w->ncalls++;
	event_active(w->turn_end, EV_TIMEOUT, 0);
}

/* Hand over what inline mode collected but has not decided on yet (flush, free). */
static void hand_over_collected(struct batch_writer *w)
{
	if (w->collect.head) {
		pthread_mutex_lock(&w->mu);
		list_append(&w->queue, w->collect.head, w->collect.tail);
		pthread_cond_signal(&w->work_cv);
		pthread_mutex_unlock(&w->mu);
		w->collect.head = w->collect.tail = NULL;
		w->ncollect = w->ncalls = 0;
	}
}

void batch_writer_submit(struct batch_writer *w, struct bw_item *item)
{
	item->next = NULL;
	item->status = 0;
	w->pending++;
	if (w->inline_ok) {
		collect(w, item, item, 1);
		return;
	}

	pthread_mutex_lock(&w->mu);
	list_append(&w->queue, item, item);
	pthread_cond_signal(&w->work_cv);
	pthread_mutex_unlock(&w->mu);
}

void batch_writer_submit_chain(struct batch_writer *w, struct bw_item *head)
{
	struct bw_item *tail = head;

	head->status = 0;
	w->pending++;
	while (tail->next) {
		tail = tail->next;
		tail->status = 0;
		w->pending++;
	}
	if (w->inline_ok) {
		size_t n = 1;
		for (struct bw_item *it = head; it != tail; it = it->next)
			n++;
		collect(w, head, tail, n);
		return;
	}
	pthread_mutex_lock(&w->mu);
	list_append(&w->queue, head, tail);
	pthread_cond_signal(&w->work_cv);
	pthread_mutex_unlock(&w->mu);
}

size_t batch_writer_pending(const struct batch_writer *w)
{
	return w->pending;
}

void batch_writer_flush(struct batch_writer *w)
{
	hand_over_collected(w);
	pthread_mutex_lock(&w->mu);
	while (w->queue.head || w->busy)
		pthread_cond_wait(&w->idle_cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	deliver_done(w);
}

int batch_writer_set_inline(struct batch_writer *w, struct event_base *base)
{
	w->turn_end = event_new(base, -1, 0, on_turn_end, w);
	if (!w->turn_end)
		return -ENOMEM;
	w->inline_ok = 1;
	return 0;
}

void batch_writer_set_sync(struct batch_writer *w, bw_sync_fn sync)
{
	pthread_mutex_lock(&w->mu);
	w->sync = sync;
	pthread_mutex_unlock(&w->mu);
}

void batch_writer_stats(struct batch_writer *w, struct bw_stats *out)
{
	pthread_mutex_lock(&w->mu);
	*out = w->stats;
	pthread_mutex_unlock(&w->mu);
}

/* --------------------------------------------------------- create / destroy */

/* Start the writer with every signal blocked, so signals go to the loop thread. */
static int start_thread(struct batch_writer *w)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		pthread_setname_np(w->thread, "tpc-logwriter");
	return rc;
}

static int init_sync(struct batch_writer *w)
{
	int rc = pthread_mutex_init(&w->mu, NULL);

	if (rc)
		return rc;
	rc = pthread_cond_init(&w->work_cv, NULL);
	if (rc)
		goto out_mutex;
	rc = pthread_cond_init(&w->idle_cv, NULL);
	if (rc)
		goto out_work_cv;
	return 0;

out_work_cv:
	pthread_cond_destroy(&w->work_cv);
out_mutex:
	pthread_mutex_destroy(&w->mu);
	return rc;
}

static void destroy_sync(struct batch_writer *w)
{
	pthread_cond_destroy(&w->idle_cv);
	pthread_cond_destroy(&w->work_cv);
	pthread_mutex_destroy(&w->mu);
}

struct batch_writer *batch_writer_new(struct event_base *base, bw_write_fn write_batch,
				      bw_done_fn done, void *ctx, size_t max_batch)
{
	struct batch_writer *w;
	int err;

	if (!base || !write_batch || !done || max_batch == 0) {
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->write_batch = write_batch;
	w->done = done;
	w->ctx = ctx;
	w->max_batch = max_batch;

	err = init_sync(w);
	if (err)
		goto out_free;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0) {
		err = errno;
		goto out_sync;
	}
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_wake, w);
	if (!w->ev || event_add(w->ev, NULL) < 0) {
		err = ENOMEM;
		goto out_event;
	}
	err = start_thread(w);
	if (err)
		goto out_event;
	return w;

out_event:
	if (w->ev)
		event_free(w->ev);
	close(w->efd);
out_sync:
	destroy_sync(w);
out_free:
	free(w);
	errno = err;
	return NULL;
}

void batch_writer_free(struct batch_writer *w)
{
	if (!w)
		return;
	batch_writer_flush(w);

	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->work_cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	deliver_done(w); /* nothing is left after the flush; cheap insurance */

	if (w->turn_end)
		event_free(w->turn_end);
	event_free(w->ev);
	close(w->efd);
	destroy_sync(w);
	free(w);
}
