/*
 * sink_held.c - the keys of prepared, undecided transactions (sink_held.h): who holds
 * which key, claimed all or none at prepare, released once decided.
 */
#include "sink_held.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct held_txn {
	size_t n;
	tpc_write keys[]; /* key and key_len only; each key an owned copy */
};

void sink_held_init(struct sink_held *h)
{
	pthread_mutex_init(&h->mu, NULL);
	strmap_init(&h->keys);
	u64map_init(&h->txns);
}

static void held_txn_free(struct held_txn *t)
{
	for (size_t i = 0; t && i < t->n; i++)
		free((void *)t->keys[i].key);
	free(t);
}

void sink_held_free(struct sink_held *h)
{
	struct u64map_iter it;

	for (struct held_txn *t = u64map_iter_first(&it, &h->txns); t; t = u64map_iter_next(&it))
		held_txn_free(t);
	u64map_iter_end(&it);
	u64map_free(&h->txns);
	strmap_free(&h->keys);
	pthread_mutex_destroy(&h->mu);
}

/* Another transaction holding one of @p txn's keys: TPC_EREFUSED, with which write
 * and who holds it. Locked. */
static int held_by_other(struct sink_held *h, const tpc_sink_txn *txn, size_t *at,
			 tpc_txid *holder)
{
	for (size_t i = 0; i < txn->nwrites; i++) {
		const tpc_write *w = &txn->writes[i];
		uint64_t by;
		if (!strmap_get(&h->keys, w->key, w->key_len, &by) || by == txn->txid)
			continue;
		*at = i;
		*holder = by;
		return TPC_EREFUSED;
	}
	return 0;
}

/* Drop @p t's keys from the table and free it. Locked. */
static void unclaim(struct sink_held *h, tpc_txid txid, struct held_txn *t)
{
	for (size_t i = 0; i < t->n; i++)
		strmap_del_if(&h->keys, t->keys[i].key, t->keys[i].key_len, txid);
	held_txn_free(t);
}

/* Put @p txn's keys in the table as @p t (keys it holds already are skipped). Locked. */
static int claim_all(struct sink_held *h, const tpc_sink_txn *txn, struct held_txn *t)
{
	uint64_t holder;

	for (size_t i = 0; i < txn->nwrites; i++) {
		const tpc_write *w = &txn->writes[i];
		if (strmap_get(&h->keys, w->key, w->key_len, &holder))
			continue; /* ours: a key written twice, or claimed by an earlier call */
		char *copy = malloc(w->key_len ? w->key_len : 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, w->key, w->key_len);
		t->keys[t->n++] = (tpc_write){ .key = copy, .key_len = w->key_len };
		if (strmap_put(&h->keys, copy, w->key_len, txn->txid))
			return -ENOMEM;
	}
	return u64map_put(&h->txns, txn->txid, t);
}

int sink_held_claim(struct sink_held *h, const tpc_sink_txn *txn, size_t *at,
		    tpc_txid *holder)
{
	struct held_txn *t = calloc(1, sizeof(*t) + txn->nwrites * sizeof(t->keys[0]));
	int rc;

	if (!t)
		return -ENOMEM;
	pthread_mutex_lock(&h->mu);
	struct held_txn *old = u64map_del(&h->txns, txn->txid);
	if (old) /* prepared again: it holds this call's keys from now on */
		unclaim(h, txn->txid, old);
	rc = held_by_other(h, txn, at, holder);
	if (!rc && (rc = claim_all(h, txn, t)) != 0)
		unclaim(h, txn->txid, t); /* frees t */
	pthread_mutex_unlock(&h->mu);
	if (rc == TPC_EREFUSED)
		held_txn_free(t);
	return rc;
}

void sink_held_release(struct sink_held *h, tpc_txid txid)
{
	pthread_mutex_lock(&h->mu);
	struct held_txn *t = u64map_del(&h->txns, txid);
	if (t)
		unclaim(h, txid, t);
	pthread_mutex_unlock(&h->mu);
}
