/*
 * test_batch_writer.c - group commit (common/batch_writer.c): order, batching, the
 * max_batch cap, failing writes, flush without the loop, and free with items pending.
 *
 * The fake store's write_batch runs on the writer thread: it only records (under its
 * own mutex) and may block on the first call until the test releases it; every
 * assertion runs on the test's thread. Nothing sleeps for a fixed time: waits are on
 * condition variables or loop iterations, each bounded by a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <event2/event.h>

#include "batch_writer.h"
#include "util.h"

#define MAX_ITEMS 512
#define DEADLINE_MS 10000

struct titem {
	struct bw_item item; /* first */
	int id;
	int call;            /* which write_batch call carried it (writer thread) */
	int heap;            /* free it in done() */
};

struct fake {
	struct event_base *base;
	struct batch_writer *w;

	pthread_mutex_t mu;  /* guards everything the writer thread touches below */
	pthread_cond_t cv;
	int calls;
	size_t sizes[MAX_ITEMS];
	int fail_call;       /* 1-based write_batch call that fails with -EIO; 0: none */
	int block_first;     /* the first call waits until released */
	int entered;
	int released;
	int bad_list;        /* the writer saw a list that did not match n */
	int reject_id;       /* a batch holding the item with this id fails -EINVAL ... */
	int reject;          /* ... when this is set */
	int syncs;           /* fake_sync calls */
	int loop_calls;      /* write_batch calls made on the loop thread (inline mode) */
	pthread_t loop;
	int sync_rc;         /* what fake_sync returns */

	/* loop thread only */
	size_t ndone;
	int done_id[MAX_ITEMS];
	int done_status[MAX_ITEMS];
	int done_call[MAX_ITEMS];
	int done_syncs[MAX_ITEMS];  /* syncs, and write calls, made before its done() */
	int done_calls[MAX_ITEMS];
	int resubmit_below;  /* done() of an item with id < this submits id + 1000 */
	struct titem extra[MAX_ITEMS];
};

/* ------------------------------------------------------------- fake store */

static int fake_write(void *ctx, struct bw_item *head, size_t n)
{
	struct fake *f = ctx;
	struct bw_item *it = head;
	int call, rc;

	pthread_mutex_lock(&f->mu);
	call = ++f->calls;
	if (pthread_equal(pthread_self(), f->loop))
		f->loop_calls++;
	if (call <= MAX_ITEMS)
		f->sizes[call - 1] = n;
	rc = 0;
	for (size_t i = 0; i < n; i++, it = it->next) {
		if (!it) {
			f->bad_list = 1;
			break;
		}
		((struct titem *)it)->call = call;
		if (f->reject && ((struct titem *)it)->id == f->reject_id)
			rc = -EINVAL;
	}
	if (it)
		f->bad_list = 1; /* the batch must end after n items */
	if (f->block_first && call == 1) {
		f->entered = 1;
		pthread_cond_broadcast(&f->cv);
		while (!f->released)
			pthread_cond_wait(&f->cv, &f->mu);
	}
	if (call == f->fail_call)
		rc = -EIO;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static int fake_sync(void *ctx)
{
	struct fake *f = ctx;

	pthread_mutex_lock(&f->mu);
	f->syncs++;
	int rc = f->sync_rc;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static void fake_done(void *ctx, struct bw_item *item, int status)
{
	struct fake *f = ctx;
	struct titem *t = (struct titem *)item;

	assert_true(f->ndone < MAX_ITEMS);
	pthread_mutex_lock(&f->mu);
	f->done_syncs[f->ndone] = f->syncs;
	f->done_calls[f->ndone] = f->calls;
	pthread_mutex_unlock(&f->mu);
	f->done_id[f->ndone] = t->id;
	f->done_status[f->ndone] = status;
	f->done_call[f->ndone] = t->call;
	f->ndone++;
	if (t->id < f->resubmit_below) {
		struct titem *x = &f->extra[t->id];

		x->id = t->id + 1000;
		batch_writer_submit(f->w, &x->item);
	}
	if (t->heap) {
		memset(t, 0xa5, sizeof(*t)); /* a later read of the item would see junk */
		free(t);
	}
}

/* ------------------------------------------------------------------ helpers */

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->loop = pthread_self();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	batch_writer_free(f->w);
	event_base_free(f->base);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return 0;
}

static void start(struct fake *f, size_t max_batch)
{
	f->w = batch_writer_new(f->base, fake_write, fake_done, f, max_batch);
	assert_non_null(f->w);
}

static struct titem *new_item(int id)
{
	struct titem *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->id = id;
	t->heap = 1;
	return t;
}

static void submit_range(struct fake *f, int from, int to)
{
	for (int i = from; i < to; i++)
		batch_writer_submit(f->w, &new_item(i)->item);
}

static void noop_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until nothing is pending; a 10 ms tick bounds each iteration. */
static void run_until_idle(struct fake *f)
{
	struct event *tick = event_new(f->base, -1, EV_PERSIST, noop_cb, NULL);
	struct timeval tv = { 0, 10000 };
	uint64_t deadline = tpc_now_ms() + DEADLINE_MS;

	assert_non_null(tick);
	event_add(tick, &tv);
	while (batch_writer_pending(f->w) > 0 && tpc_now_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(tick);
	assert_int_equal(batch_writer_pending(f->w), 0);
}

/* Wait (bounded) until the writer is blocked inside its first write_batch. */
static void wait_entered(struct fake *f)
{
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += DEADLINE_MS / 1000;
	pthread_mutex_lock(&f->mu);
	while (!f->entered && rc == 0)
		rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	pthread_mutex_unlock(&f->mu);
	assert_int_equal(rc, 0);
}

static void release_first(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	f->released = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Block the writer in batch 1 (item 0), queue items 1..n, let it go. */
static void queue_behind_a_blocked_batch(struct fake *f, int n)
{
	f->block_first = 1;
	submit_range(f, 0, 1);
	wait_entered(f);
	submit_range(f, 1, n + 1);
	release_first(f);
}

static void assert_done_in_order(const struct fake *f, size_t n)
{
	assert_int_equal(f->ndone, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(f->done_id[i], (int)i);
}

/* The first @p n batch sizes are @p want; exactly @p n batches unless @p more_ok. */
static void assert_first_sizes(struct fake *f, const size_t *want, int n, int more_ok)
{
	pthread_mutex_lock(&f->mu);
	int calls = f->calls, bad = f->bad_list;
	size_t got[MAX_ITEMS];
	memcpy(got, f->sizes, sizeof(got));
	pthread_mutex_unlock(&f->mu);

	assert_int_equal(bad, 0);
	if (more_ok)
		assert_true(calls >= n);
	else
		assert_int_equal(calls, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(got[i], want[i]);
}

static void assert_sizes(struct fake *f, const size_t *want, int n)
{
	assert_first_sizes(f, want, n, 0);
}

/* -------------------------------------------------------------------- tests */

static void test_batch_writer_returns_items_in_submission_order_with_batch_status(void **state)
{
	struct fake *f = *state;
	struct bw_stats st;

	start(f, 16);
	submit_range(f, 0, 300);
	assert_int_equal(batch_writer_pending(f->w), 300);
	run_until_idle(f);

	assert_done_in_order(f, 300);
	for (size_t i = 0; i < 300; i++)
		assert_int_equal(f->done_status[i], 0);
	batch_writer_stats(f->w, &st);
	assert_int_equal(st.items, 300);
	assert_true(st.max_batch >= 1 && st.max_batch <= 16);
	pthread_mutex_lock(&f->mu);
	assert_int_equal(st.batches, (unsigned long long)f->calls);
	assert_int_equal(f->bad_list, 0);
	pthread_mutex_unlock(&f->mu);
}

static void test_batch_writer_batches_items_queued_during_a_write(void **state)
{
	static const size_t want[] = { 1, 10 };
	struct fake *f = *state;
	struct bw_stats st;

	start(f, 64);
	queue_behind_a_blocked_batch(f, 10);
	run_until_idle(f);

	assert_sizes(f, want, 2);
	assert_done_in_order(f, 11);
	for (size_t i = 0; i < 11; i++)
		assert_int_equal(f->done_call[i], i == 0 ? 1 : 2);
	batch_writer_stats(f->w, &st);
	assert_int_equal(st.batches, 2);
	assert_int_equal(st.items, 11);
	assert_int_equal(st.max_batch, 10);
	assert_true(st.write_ns_total > 0);
}

static void test_batch_writer_caps_batches_at_max_batch(void **state)
{
	static const size_t want[] = { 1, 4, 4, 2 };
	struct fake *f = *state;

	start(f, 4);
	queue_behind_a_blocked_batch(f, 10);
	run_until_idle(f);
	assert_sizes(f, want, 4);
	assert_done_in_order(f, 11);
}

static void test_batch_writer_with_max_batch_one_writes_one_item_per_batch(void **state)
{
	size_t want[21];
	struct fake *f = *state;
	struct bw_stats st;

	for (size_t i = 0; i < 21; i++)
		want[i] = 1;
	start(f, 1);
	queue_behind_a_blocked_batch(f, 20);
	run_until_idle(f);
	assert_sizes(f, want, 21);
	assert_done_in_order(f, 21);
	batch_writer_stats(f->w, &st);
	assert_int_equal(st.batches, 21);
	assert_int_equal(st.max_batch, 1);
}

/* A failed batch is written again item by item: a one-off failure costs nothing. */
static void test_batch_writer_failed_batch_is_retried_item_by_item(void **state)
{
	static const size_t want[] = { 1, 5, 1, 1, 1, 1, 1 };
	struct fake *f = *state;

	f->fail_call = 2;
	start(f, 64);
	queue_behind_a_blocked_batch(f, 5); /* batch 1: item 0; batch 2: items 1..5 */
	run_until_idle(f);
	submit_range(f, 6, 10);             /* later batches (the writer may split them) */
	run_until_idle(f);

	assert_first_sizes(f, want, 7, 1);
	assert_done_in_order(f, 10);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(f->done_status[i], 0);
	for (size_t i = 1; i <= 5; i++) /* each written alone: calls 3..7 */
		assert_int_equal(f->done_call[i], (int)i + 2);
}

/* A store that rejects one record: it fails alone, the others of its batch succeed. */
static void test_batch_writer_one_bad_record_fails_alone(void **state)
{
	struct fake *f = *state;

	f->reject = 1;
	f->reject_id = 3;
	start(f, 64);
	queue_behind_a_blocked_batch(f, 5); /* batch 2 holds items 1..5, 3 among them */
	run_until_idle(f);

	assert_done_in_order(f, 6);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(f->done_status[i], f->done_id[i] == 3 ? -EINVAL : 0);
	pthread_mutex_lock(&f->mu);
	assert_int_equal(f->calls, 7); /* 1, the batch of 5, then 5 alone */
	assert_int_equal(f->bad_list, 0);
	pthread_mutex_unlock(&f->mu);
}

static void test_batch_writer_flush_runs_done_without_the_loop(void **state)
{
	struct fake *f = *state;

	start(f, 8);
	submit_range(f, 0, 50);
	batch_writer_flush(f->w); /* the loop never runs before this returns */
	assert_int_equal(batch_writer_pending(f->w), 0);
	assert_done_in_order(f, 50);

	/* Wake-ups left in the eventfd find nothing more to deliver. */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->ndone, 50);

	/* Flushing with nothing queued returns at once. */
	batch_writer_flush(f->w);
	assert_int_equal(f->ndone, 50);
}

static void test_batch_writer_free_runs_done_for_pending_items(void **state)
{
	struct fake *f = *state;

	start(f, 8);
	submit_range(f, 0, 40);
	batch_writer_free(f->w); /* items are freed by done(): ASan checks nothing is left */
	f->w = NULL;
	assert_done_in_order(f, 40);
	for (size_t i = 0; i < 40; i++)
		assert_int_equal(f->done_status[i], 0);
}

static void test_batch_writer_accepts_submissions_from_done(void **state)
{
	struct fake *f = *state;

	start(f, 4);
	f->resubmit_below = 5;
	submit_range(f, 0, 5);
	run_until_idle(f);
	assert_int_equal(f->ndone, 10);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(f->done_id[i], (int)i);
	for (size_t i = 5; i < 10; i++)
		assert_int_equal(f->done_id[i], (int)(i - 5 + 1000));
}

static void test_batch_writer_new_rejects_bad_arguments(void **state)
{
	struct fake *f = *state;

	errno = 0;
	assert_null(batch_writer_new(f->base, fake_write, fake_done, f, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(batch_writer_new(NULL, fake_write, fake_done, f, 4));
	assert_int_equal(errno, EINVAL);
	batch_writer_free(NULL);
}

/* D6 with MDB_NOMETASYNC: nothing follows, so the writer syncs before done(). */
static void test_batch_writer_with_sync_an_idle_batch_is_done_after_a_sync(void **state)
{
	struct fake *f = *state;

	start(f, 16);
	batch_writer_set_sync(f->w, fake_sync);
	submit_range(f, 0, 1);
	run_until_idle(f);
	assert_done_in_order(f, 1);
	assert_int_equal(f->done_status[0], 0);
	assert_int_equal(f->done_syncs[0], 1);
	assert_int_equal(f->syncs, 1);
}

/* Under load a batch waits for the next batch's write (which synced it), not a sync. */
static void test_batch_writer_with_sync_a_batch_waits_for_the_next_write(void **state)
{
	struct fake *f = *state;
	const size_t want[] = { 1, 3 };

	start(f, 16);
	batch_writer_set_sync(f->w, fake_sync);
	queue_behind_a_blocked_batch(f, 3);
	run_until_idle(f);
	assert_sizes(f, want, 2);
	assert_done_in_order(f, 4);
	assert_int_equal(f->done_calls[0], 2); /* item 0: not before write 2 ... */
	assert_int_equal(f->syncs, 1);         /* ... which made it durable: one sync only, */
	for (int i = 0; i < 4; i++) {         /* for the last batch, when idle */
		assert_int_equal(f->done_status[i], 0);
		assert_true(i == 0 || f->done_syncs[i] == 1);
	}
}

static void test_batch_writer_with_sync_a_failed_sync_fails_the_batch(void **state)
{
	struct fake *f = *state;

	start(f, 16);
	batch_writer_set_sync(f->w, fake_sync);
	f->sync_rc = -EIO;
	submit_range(f, 0, 2);
	run_until_idle(f);
	assert_int_equal(f->ndone, 2);
	assert_int_equal(f->done_status[0], -EIO);
	assert_int_equal(f->done_status[1], -EIO);
}

/* A held batch whose follower fails is synced on purpose, not failed with it. */
static void test_batch_writer_with_sync_a_failed_next_write_syncs_the_held_batch(void **state)
{
	struct fake *f = *state;

	start(f, 16);
	batch_writer_set_sync(f->w, fake_sync);
	f->fail_call = 2;
	queue_behind_a_blocked_batch(f, 1);
	run_until_idle(f);
	assert_done_in_order(f, 2);
	assert_int_equal(f->done_status[0], 0);
	assert_true(f->done_syncs[0] >= 1);
	assert_int_equal(f->done_status[1], -EIO);
}

/* Low load: one submission in a loop turn is written by the loop thread itself. */
static void test_batch_writer_inline_writes_a_lone_submission_on_the_loop_thread(void **state)
{
	struct fake *f = *state;

	start(f, 16);
	batch_writer_set_sync(f->w, fake_sync);
	assert_int_equal(batch_writer_set_inline(f->w, f->base), 0);
	submit_range(f, 0, 1);
	run_until_idle(f);
	assert_done_in_order(f, 1);
	assert_int_equal(f->done_status[0], 0);
	assert_int_equal(f->loop_calls, 1);
	assert_int_equal(f->syncs, 1);
}

/* More than one submission in a turn is load: the writer thread takes them, in order. */
static void test_batch_writer_inline_hands_a_busy_turn_to_the_writer(void **state)
{
	struct fake *f = *state;

	start(f, 16);
	assert_int_equal(batch_writer_set_inline(f->w, f->base), 0);
	submit_range(f, 0, 5);
	run_until_idle(f);
	assert_done_in_order(f, 5);
	assert_int_equal(f->loop_calls, 0);
	batch_writer_flush(f->w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_batch_writer_returns_items_in_submission_order_with_batch_status),
		T(test_batch_writer_batches_items_queued_during_a_write),
		T(test_batch_writer_caps_batches_at_max_batch),
		T(test_batch_writer_with_max_batch_one_writes_one_item_per_batch),
		T(test_batch_writer_failed_batch_is_retried_item_by_item),
		T(test_batch_writer_one_bad_record_fails_alone),
		T(test_batch_writer_flush_runs_done_without_the_loop),
		T(test_batch_writer_free_runs_done_for_pending_items),
		T(test_batch_writer_accepts_submissions_from_done),
		T(test_batch_writer_new_rejects_bad_arguments),
		T(test_batch_writer_with_sync_an_idle_batch_is_done_after_a_sync),
		T(test_batch_writer_with_sync_a_batch_waits_for_the_next_write),
		T(test_batch_writer_with_sync_a_failed_sync_fails_the_batch),
		T(test_batch_writer_with_sync_a_failed_next_write_syncs_the_held_batch),
		T(test_batch_writer_inline_writes_a_lone_submission_on_the_loop_thread),
		T(test_batch_writer_inline_hands_a_busy_turn_to_the_writer),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
