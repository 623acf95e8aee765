/*
 * test_lazy_queue.c - unforced records ride the next forced batch (common/lazy_queue.c):
 * they reach the store in the forced record's write, in order; with nothing forced they
 * go on their own when the timer fires or when max are waiting; those still waiting at
 * free are handed to the caller's free function.
 *
 * The store's write_batch runs on the writer thread and only records under a mutex;
 * every assertion runs on the test's thread after batch_writer_flush().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>

#include <cmocka.h>

#include <event2/event.h>

#include "batch_writer.h"
#include "lazy_queue.h"
#include "util.h"

#define MAXREC 64

struct rec {
	struct bw_item item; /* first */
	int id;
};

struct store {
	pthread_mutex_t mu;
	int ids[MAXREC];     /* every record written, in order */
	int call_of[MAXREC]; /* which write_batch call carried it */
	int n, calls;
	int timer_calls;     /* on_timer ran (loop thread) */
	int freed;
};

static int write_batch(void *ctx, struct bw_item *head, size_t n)
{
	struct store *st = ctx;

	pthread_mutex_lock(&st->mu);
	st->calls++;
	for (struct bw_item *it = head; it && n--; it = it->next) {
		st->ids[st->n] = ((struct rec *)it)->id;
		st->call_of[st->n++] = st->calls;
	}
	pthread_mutex_unlock(&st->mu);
	return 0;
}

static void done(void *ctx, struct bw_item *item, int status)
{
	(void)ctx;
	assert_int_equal(status, 0);
	free(item);
}

static struct rec *rec(int id)
{
	struct rec *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->id = id;
	return r;
}

static void on_timer(void *ctx)
{
	((struct store *)ctx)->timer_calls++;
}

struct fixture {
	struct event_base *base;
	struct batch_writer *w;
	struct store st;
	struct lazy_queue q;
};

static struct fixture *setup(unsigned flush_ms, size_t max)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	pthread_mutex_init(&f->st.mu, NULL);
	f->base = event_base_new();
	f->w = batch_writer_new(f->base, write_batch, done, &f->st, 1000);
	assert_non_null(f->w);
	assert_int_equal(lazy_queue_init(&f->q, f->base, f->w, flush_ms, max, on_timer, &f->st),
			 0);
	return f;
}

static struct store *freeing; /* count_free's counter (the test's thread only) */

static void count_free(struct bw_item *it)
{
	freeing->freed++;
	free(it);
}

static void teardown(struct fixture *f)
{
	batch_writer_free(f->w);
	freeing = &f->st;
	lazy_queue_free(&f->q, count_free);
	event_base_free(f->base);
	pthread_mutex_destroy(&f->st.mu);
	free(f);
}

static void test_waiting_records_ride_the_forced_one_in_one_write(void **state)
{
	(void)state;
	struct fixture *f = setup(60000, 100);

	for (int i = 1; i <= 3; i++)
		lazy_queue_add(&f->q, &rec(i)->item);
	batch_writer_flush(f->w);
	assert_int_equal(f->st.n, 0); /* they wait */
	lazy_queue_submit_with(&f->q, &rec(10)->item);
	batch_writer_flush(f->w);
	assert_int_equal(f->st.n, 4);
	assert_int_equal(f->st.calls, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(f->st.ids[i], i + 1);
	assert_int_equal(f->st.ids[3], 10); /* the forced record last */
	assert_int_equal(f->q.n, 0);
	teardown(f);
}

static void test_a_forced_record_with_none_waiting_goes_alone(void **state)
{
	(void)state;
	struct fixture *f = setup(60000, 100);

	lazy_queue_submit_with(&f->q, &rec(7)->item);
	batch_writer_flush(f->w);
	assert_int_equal(f->st.n, 1);
	assert_int_equal(f->st.ids[0], 7);
	lazy_queue_flush(&f->q); /* nothing waiting: nothing written */
	batch_writer_flush(f->w);
	assert_int_equal(f->st.calls, 1);
	teardown(f);
}

static void test_the_timer_sends_them_on_their_own(void **state)
{
	(void)state;
	struct fixture *f = setup(5, 100);
	uint64_t deadline = tpc_now_ms() + 10000;

	lazy_queue_add(&f->q, &rec(1)->item);
	lazy_queue_add(&f->q, &rec(2)->item);
	while (f->st.timer_calls == 0 && tpc_now_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(f->st.timer_calls, 1);
	assert_int_equal(f->q.n, 0);
	batch_writer_flush(f->w);
	assert_int_equal(f->st.n, 2);
	assert_int_equal(f->st.ids[0], 1);
	assert_int_equal(f->st.ids[1], 2);
	teardown(f);
}

static void test_max_waiting_go_at_once(void **state)
{
	(void)state;
	struct fixture *f = setup(60000, 3);

	lazy_queue_add(&f->q, &rec(1)->item);
	lazy_queue_add(&f->q, &rec(2)->item);
	assert_int_equal(f->q.n, 2);
	lazy_queue_add(&f->q, &rec(3)->item);
	assert_int_equal(f->q.n, 0);
	batch_writer_flush(f->w);
	assert_int_equal(f->st.n, 3);
	teardown(f);
}

static void test_free_hands_the_waiting_ones_back(void **state)
{
	(void)state;
	struct fixture *f = setup(60000, 100);
	struct store *st = &f->st;
	int freed;

	lazy_queue_add(&f->q, &rec(1)->item);
	lazy_queue_add(&f->q, &rec(2)->item);
	batch_writer_free(f->w);
	f->w = NULL;
	freeing = st;
	lazy_queue_free(&f->q, count_free);
	freed = st->freed;
	assert_int_equal(freed, 2);
	assert_int_equal(st->n, 0);
	lazy_queue_free(&f->q, count_free); /* twice is harmless */
	event_base_free(f->base);
	pthread_mutex_destroy(&st->mu);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waiting_records_ride_the_forced_one_in_one_write),
		cmocka_unit_test(test_a_forced_record_with_none_waiting_goes_alone),
		cmocka_unit_test(test_the_timer_sends_them_on_their_own),
		cmocka_unit_test(test_max_waiting_go_at_once),
		cmocka_unit_test(test_free_hands_the_waiting_ones_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
