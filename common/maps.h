/*
 * maps.h - in-memory indexes: u64 -> pointer (open transactions by
 * txid) and string -> u64 (live client transaction keys -> txid), both open addressing
 * with linear probing and backward-shift deletion (no tombstones), a walk over a u64map
 * that tolerates changes (u64map_iter), and a min-heap of (deadline, txid) for timers,
 * whose stale entries deadline_timer.c skips.
 */
#ifndef TPC_COMMON_MAPS_H
#define TPC_COMMON_MAPS_H

#include <stddef.h>
#include <stdint.h>

struct u64map_slot {
	uint64_t key; /* 0 marks an empty slot: txid 0 is never used */
	void *val;
};

struct u64map {
	struct u64map_slot *slots;
	size_t cap; /* power of two */
	size_t n;
};

void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m);
void *u64map_get(const struct u64map *m, uint64_t key);
/** @return 0, or -ENOMEM. Replaces an existing value. key must be non-zero. */
int u64map_put(struct u64map *m, uint64_t key, void *val);
/** @return the removed value, or NULL. */
void *u64map_del(struct u64map *m, uint64_t key);
/** Copy every key into a new array (caller frees) so callers may mutate while walking. */
uint64_t *u64map_keys(const struct u64map *m, size_t *n);

/*
 * A walk over a snapshot of the keys, each looked up again when its turn comes: the
 * caller may put, delete (the current entry or any other) while walking. An entry
 * deleted before its turn is skipped; one put after the start is not visited.
 *
 *	struct u64map_iter it;
 *	for (t = u64map_iter_first(&it, &s->txns); t; t = u64map_iter_next(&it))
 *		...;
 *	u64map_iter_end(&it);
 */
struct u64map_iter {
	const struct u64map *m;
	uint64_t *keys;
	size_t n, i;
	uint64_t key; /* the current entry's key */
	int nomem;    /* the snapshot could not be taken: nothing was visited */
};

/** @return the first live value (NULL: none, or out of memory: it->nomem). */
void *u64map_iter_first(struct u64map_iter *it, const struct u64map *m);
/** @return the next value still in the map, or NULL at the end. */
void *u64map_iter_next(struct u64map_iter *it);
/** Free the snapshot (also after a break). */
void u64map_iter_end(struct u64map_iter *it);

struct strmap_slot {
	char *key; /* owned copy; NULL marks an empty slot */
	size_t len;
	uint64_t hash;
	uint64_t val;
};

struct strmap {
	struct strmap_slot *slots;
	size_t cap;
	size_t n;
};

void strmap_init(struct strmap *m);
void strmap_free(struct strmap *m);
/** @return 1 and *val if found, else 0. */
int strmap_get(const struct strmap *m, const char *key, size_t len, uint64_t *val);
/** @return 0 or -ENOMEM. The map copies the key. */
int strmap_put(struct strmap *m, const char *key, size_t len, uint64_t val);
/** Remove the key if it maps to @p val. @return 1 if removed. */
int strmap_del_if(struct strmap *m, const char *key, size_t len, uint64_t val);

struct deadline {
	uint64_t at_ms;
	uint64_t txid;
};

struct deadline_heap {
	struct deadline *v;
	size_t n, cap;
};

void deadline_heap_init(struct deadline_heap *h);
void deadline_heap_free(struct deadline_heap *h);
int deadline_heap_push(struct deadline_heap *h, uint64_t at_ms, uint64_t txid);
/** @return 1 and the earliest entry in *out without removing it, or 0 if empty. */
int deadline_heap_peek(const struct deadline_heap *h, struct deadline *out);
void deadline_heap_pop(struct deadline_heap *h);

#endif
