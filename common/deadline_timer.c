/*
 * deadline_timer.c - per-transaction deadlines on one libevent timer (see
 * deadline_timer.h). Owns the heap and the event; the transactions and their armed_ms
 * belong to the caller, reached through the armed() and fire() callbacks.
 */
#include "deadline_timer.h"

#include <errno.h>

#include <event2/event.h>

#include "util.h"

static void aim(struct deadline_timer *dt, uint64_t at_ms)
{
	if (!dt->ev || (dt->at_ms && dt->at_ms <= at_ms))
		return;
	uint64_t now = tpc_now_ms();
	uint64_t delay = at_ms > now ? at_ms - now : 0;
	struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
	dt->at_ms = at_ms;
	evtimer_add(dt->ev, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deadline_timer_run(arg, tpc_now_ms());
}

void deadline_timer_init(struct deadline_timer *dt, deadline_armed_fn armed,
			 deadline_fire_fn fire, void *ctx)
{
	*dt = (struct deadline_timer){ .armed = armed, .fire = fire, .ctx = ctx };
	deadline_heap_init(&dt->heap);
}

int deadline_timer_attach(struct deadline_timer *dt, struct event_base *base)
{
	struct deadline d;

	dt->ev = evtimer_new(base, on_timer, dt);
	if (!dt->ev)
		return -ENOMEM;
	if (deadline_heap_peek(&dt->heap, &d))
		aim(dt, d.at_ms);
	return 0;
}

int deadline_timer_set(struct deadline_timer *dt, uint64_t txid, uint64_t at_ms,
		       uint64_t *armed_ms)
{
	if (!at_ms || at_ms == *armed_ms)
		return 0;
	if (deadline_heap_push(&dt->heap, at_ms, txid))
		return -ENOMEM;
	*armed_ms = at_ms;
	aim(dt, at_ms);
	return 0;
}

void deadline_timer_run(struct deadline_timer *dt, uint64_t now_ms)
{
	struct deadline d;

	dt->at_ms = 0;
	while (deadline_heap_peek(&dt->heap, &d) && d.at_ms <= now_ms) {
		deadline_heap_pop(&dt->heap);
		uint64_t *armed = dt->armed(dt->ctx, d.txid);
		if (!armed || *armed != d.at_ms)
			continue; /* stale: the transaction moved on, or is gone */
		*armed = 0;
		dt->fire(dt->ctx, d.txid);
	}
	if (deadline_heap_peek(&dt->heap, &d))
		aim(dt, d.at_ms);
}

void deadline_timer_free(struct deadline_timer *dt)
{
	if (dt->ev)
		event_free(dt->ev);
	dt->ev = NULL;
	dt->at_ms = 0;
	deadline_heap_free(&dt->heap);
}
