/*
 * list.h - an intrusive doubly linked FIFO with a count: embed struct list_node as the
 * FIRST member of your record, so a node pointer is the record pointer. Used for the
 * pending requests of libtpc's client and of the tools' tpc-kv client.
 */
#ifndef TPC_COMMON_LIST_H
#define TPC_COMMON_LIST_H

#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

struct list {
	struct list_node *head, *tail;
	size_t n;
};

/** @brief Put @p x at the tail. */
static inline void list_append(struct list *l, struct list_node *x)
{
	x->prev = l->tail;
	x->next = NULL;
	if (l->tail)
		l->tail->next = x;
	else
		l->head = x;
	l->tail = x;
	l->n++;
}

/** @brief Take @p x (which is on @p l) out. */
static inline void list_unlink(struct list *l, struct list_node *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		l->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		l->tail = x->prev;
	x->prev = x->next = NULL;
	l->n--;
}

#endif
