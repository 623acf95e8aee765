/*
 * test_deadline_timer.c - per-transaction deadlines on one timer
 * (common/deadline_timer.c): due entries fire in deadline order and only once; an entry
 * whose transaction moved to another deadline, or is gone, is skipped; a fire may arm
 * again; and, attached to a loop, the event fires by itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <event2/event.h>

#include "deadline_timer.h"
#include "util.h"

#define NTX 8

struct owner {
	uint64_t armed[NTX + 1]; /* per txid 1..NTX */
	int gone[NTX + 1];
	uint64_t fired[32];
	int nfired;
	struct deadline_timer *dt;
	uint64_t rearm_at;       /* fire(): arm the same txid again at this time */
};

static uint64_t *armed(void *ctx, uint64_t txid)
{
	struct owner *o = ctx;

	return o->gone[txid] ? NULL : &o->armed[txid];
}

static void fire(void *ctx, uint64_t txid)
{
	struct owner *o = ctx;

	assert_int_equal(o->armed[txid], 0); /* zeroed before the fire */
	o->fired[o->nfired++] = txid;
	if (o->rearm_at) {
		uint64_t at = o->rearm_at;
		o->rearm_at = 0;
		assert_int_equal(deadline_timer_set(o->dt, txid, at, &o->armed[txid]), 0);
	}
}

static void start(struct deadline_timer *dt, struct owner *o)
{
	*o = (struct owner){ .dt = dt };
	deadline_timer_init(dt, armed, fire, o);
}

static void set(struct deadline_timer *dt, struct owner *o, uint64_t txid, uint64_t at)
{
	assert_int_equal(deadline_timer_set(dt, txid, at, &o->armed[txid]), 0);
}

static void test_due_entries_fire_in_deadline_order_once(void **state)
{
	(void)state;
	struct deadline_timer dt;
	struct owner o;

	start(&dt, &o);
	set(&dt, &o, 1, 300);
	set(&dt, &o, 2, 100);
	set(&dt, &o, 3, 200);
	set(&dt, &o, 4, 900);
	deadline_timer_run(&dt, 300);
	assert_int_equal(o.nfired, 3);
	assert_int_equal(o.fired[0], 2);
	assert_int_equal(o.fired[1], 3);
	assert_int_equal(o.fired[2], 1);
	deadline_timer_run(&dt, 300);
	assert_int_equal(o.nfired, 3); /* once */
	deadline_timer_run(&dt, 1000);
	assert_int_equal(o.nfired, 4);
	assert_int_equal(o.fired[3], 4);
	deadline_timer_free(&dt);
}

static void test_moved_and_gone_transactions_are_skipped(void **state)
{
	(void)state;
	struct deadline_timer dt;
	struct owner o;

	start(&dt, &o);
	set(&dt, &o, 1, 100);
	set(&dt, &o, 1, 500); /* moved on: the 100 entry is stale */
	set(&dt, &o, 2, 100);
	o.gone[2] = 1;
	deadline_timer_run(&dt, 200);
	assert_int_equal(o.nfired, 0);
	assert_int_equal(o.armed[1], 500);
	deadline_timer_run(&dt, 500);
	assert_int_equal(o.nfired, 1);
	assert_int_equal(o.fired[0], 1);
	deadline_timer_free(&dt);
}

static void test_set_with_no_or_the_same_deadline_does_nothing(void **state)
{
	(void)state;
	struct deadline_timer dt;
	struct owner o;

	start(&dt, &o);
	set(&dt, &o, 1, 0);
	assert_int_equal(dt.heap.n, 0);
	set(&dt, &o, 1, 100);
	set(&dt, &o, 1, 100);
	assert_int_equal(dt.heap.n, 1);
	deadline_timer_free(&dt);
}

static void test_a_fire_may_arm_again(void **state)
{
	(void)state;
	struct deadline_timer dt;
	struct owner o;

	start(&dt, &o);
	set(&dt, &o, 1, 100);
	o.rearm_at = 150; /* due within the same run: fires again now */
	deadline_timer_run(&dt, 200);
	assert_int_equal(o.nfired, 2);
	o.rearm_at = 900;
	set(&dt, &o, 2, 300);
	deadline_timer_run(&dt, 300);
	assert_int_equal(o.nfired, 3);
	assert_int_equal(o.armed[2], 900);
	deadline_timer_free(&dt);
}

static void test_attached_the_event_fires_by_itself(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct deadline_timer dt;
	struct owner o;
	uint64_t deadline = tpc_now_ms() + 10000;

	start(&dt, &o);
	set(&dt, &o, 1, tpc_now_ms() + 5); /* set before attaching: aimed at attach */
	assert_int_equal(deadline_timer_attach(&dt, base), 0);
	set(&dt, &o, 2, tpc_now_ms() + 10);
	while (o.nfired < 2 && tpc_now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(o.nfired, 2);
	assert_int_equal(o.fired[0], 1);
	assert_int_equal(o.fired[1], 2);
	deadline_timer_free(&dt);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due_entries_fire_in_deadline_order_once),
		cmocka_unit_test(test_moved_and_gone_transactions_are_skipped),
		cmocka_unit_test(test_set_with_no_or_the_same_deadline_does_nothing),
		cmocka_unit_test(test_a_fire_may_arm_again),
		cmocka_unit_test(test_attached_the_event_fires_by_itself),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
