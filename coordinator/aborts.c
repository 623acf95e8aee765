/*
 * aborts.c - why recent transactions aborted (aborts.h): a ring of the last
 * COORD_ABORTS_KEEP aborts with a txid index.
 */
#include "aborts.h"

#include <stdlib.h>
#include <string.h>

void coord_aborts_init(struct coord_aborts *a)
{
	memset(a->ring, 0, sizeof(a->ring));
	a->next = 0;
	u64map_init(&a->idx);
}

static void rec_clear(struct coord_aborts *a, struct coord_abort_rec *r)
{
	if (r->txid && u64map_get(&a->idx, r->txid) == r)
		u64map_del(&a->idx, r->txid);
	free(r->reason);
	free(r->participant);
	free(r->detail);
	memset(r, 0, sizeof(*r));
}

void coord_aborts_free(struct coord_aborts *a)
{
	for (size_t i = 0; i < COORD_ABORTS_KEEP; i++)
		rec_clear(a, &a->ring[i]);
	u64map_free(&a->idx);
}

static char *dup_or_null(const char *s, int *nomem)
{
	char *d = s && *s ? strdup(s) : NULL;

	if (s && *s && !d)
		*nomem = 1;
	return d;
}

void coord_aborts_add(struct coord_aborts *a, uint64_t txid, const char *reason,
		      const char *participant, const char *detail)
{
	struct coord_abort_rec *r = &a->ring[a->next];
	int nomem = 0;

	if (!txid)
		return;
	rec_clear(a, r); /* the oldest goes */
	a->next = (a->next + 1) % COORD_ABORTS_KEEP;
	r->reason = dup_or_null(reason, &nomem);
	r->participant = dup_or_null(participant, &nomem);
	r->detail = dup_or_null(detail, &nomem);
	r->txid = txid;
	if (nomem || u64map_put(&a->idx, txid, r))
		rec_clear(a, r);
}

const struct coord_abort_rec *coord_aborts_get(const struct coord_aborts *a, uint64_t txid)
{
	return txid ? u64map_get(&a->idx, txid) : NULL;
}
