/*
 * lazy_queue.c - unforced records wait for the next forced batch (see lazy_queue.h).
 * Owns the waiting chain and its timer; the records belong to the caller until they are
 * submitted, then to the batch writer until its done() runs.
 */
#include "lazy_queue.h"

#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct lazy_queue *q = arg;

	(void)fd;
	(void)what;
	lazy_queue_flush(q);
	if (q->on_timer)
		q->on_timer(q->ctx);
}

int lazy_queue_init(struct lazy_queue *q, struct event_base *base, struct batch_writer *w,
		    unsigned flush_ms, size_t max, void (*on_timer_fn)(void *ctx), void *ctx)
{
	*q = (struct lazy_queue){ .writer = w, .max = max ? max : 1, .flush_ms = flush_ms,
				  .on_timer = on_timer_fn, .ctx = ctx };
	q->timer = evtimer_new(base, on_timer, q);
	return q->timer ? 0 : -ENOMEM;
}

void lazy_queue_arm(struct lazy_queue *q)
{
	if (q->timer && !evtimer_pending(q->timer, NULL)) {
		struct timeval tv = { (time_t)(q->flush_ms / 1000),
				      (suseconds_t)(q->flush_ms % 1000) * 1000 };
		evtimer_add(q->timer, &tv);
	}
}

void lazy_queue_add(struct lazy_queue *q, struct bw_item *item)
{
	item->next = NULL;
	if (q->tail)
		q->tail->next = item;
	else
		q->head = item;
	q->tail = item;
	if (++q->n >= q->max && q->writer) /* before init: they wait */
		lazy_queue_flush(q);
	else
		lazy_queue_arm(q);
}

/* The writer never wakes between the links of a chain, so the waiting records share
 * the forced record's sync instead of costing one of their own first. */
void lazy_queue_submit_with(struct lazy_queue *q, struct bw_item *then)
{
	struct bw_item *head = q->head;

	if (then)
		then->next = NULL;
	if (q->tail)
		q->tail->next = then;
	else
		head = then;
	q->head = q->tail = NULL;
	q->n = 0;
	if (head)
		batch_writer_submit_chain(q->writer, head);
}

void lazy_queue_flush(struct lazy_queue *q)
{
	lazy_queue_submit_with(q, NULL);
}

void lazy_queue_free(struct lazy_queue *q, void (*free_item)(struct bw_item *))
{
	struct bw_item *it = q->head;

	while (it) {
		struct bw_item *next = it->next;
		if (free_item)
			free_item(it);
		else
			free(it);
		it = next;
	}
	q->head = q->tail = NULL;
	q->n = 0;
	if (q->timer)
		event_free(q->timer);
	q->timer = NULL;
}
