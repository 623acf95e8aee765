/*
 * admin_page.c - one page of an admin list view: the `cap` smallest items of a walk
 * (txids of open transactions, participants by name), picked in one pass with a bounded
 * max-heap, so a page costs O(n log cap) comparisons and the view builds only `cap`
 * JSON objects, however many items there are (docs/admin-api.md, "Pages").
 *
 * Owns struct admin_page (admin_int.h). Items are uint64_t values ordered by the
 * caller's cmp; nothing here knows what they stand for.
 */
#include "admin_int.h"

#include <errno.h>
#include <stdlib.h>

int admin_page_init(struct admin_page *p, size_t cap, admin_page_cmp cmp, const void *arg)
{
	p->v = calloc(cap ? cap : 1, sizeof(*p->v));
	p->n = 0;
	p->cap = cap;
	p->more = 0;
	p->cmp = cmp;
	p->arg = arg;
	return p->v ? 0 : -ENOMEM;
}

void admin_page_free(struct admin_page *p)
{
	free(p->v);
	p->v = NULL;
	p->n = p->cap = 0;
}

static int less(const struct admin_page *p, uint64_t a, uint64_t b)
{
	return p->cmp(p->arg, a, b) < 0;
}

static void swap(uint64_t *a, uint64_t *b)
{
	uint64_t t = *a;

	*a = *b;
	*b = t;
}

/* Max-heap: v[0] is the largest item kept. */
static void sift_down(struct admin_page *p, size_t i, size_t n)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, top = i;
		if (l < n && less(p, p->v[top], p->v[l]))
			top = l;
		if (r < n && less(p, p->v[top], p->v[r]))
			top = r;
		if (top == i)
			return;
		swap(&p->v[i], &p->v[top]);
		i = top;
	}
}

static void sift_up(struct admin_page *p, size_t i)
{
	while (i > 0 && less(p, p->v[(i - 1) / 2], p->v[i])) {
		swap(&p->v[i], &p->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
}

void admin_page_offer(struct admin_page *p, uint64_t item)
{
	if (p->n < p->cap) {
		p->v[p->n] = item;
		sift_up(p, p->n++);
		return;
	}
	p->more = 1; /* an item falls off this page: there is a next one */
	if (p->cap == 0 || !less(p, item, p->v[0]))
		return;
	p->v[0] = item;
	sift_down(p, 0, p->n);
}

void admin_page_sort(struct admin_page *p)
{
	/* Heapsort in place: the largest goes last, ascending order results. */
	for (size_t n = p->n; n > 1; n--) {
		swap(&p->v[0], &p->v[n - 1]);
		sift_down(p, 0, n - 1);
	}
}
