/*
 * maps.c - hash maps and the deadline heap (see maps.h).
 *
 * Both maps keep their load factor at or below 1/2 and delete by backward shift, so
 * lookups never walk past an empty slot and no tombstones accumulate under churn.
 */
#include "maps.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a, then mixed */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return mix64(h);
}

/* ---- u64map ---- */

void u64map_init(struct u64map *m)
{
	memset(m, 0, sizeof(*m));
}

void u64map_free(struct u64map *m)
{
	free(m->slots);
	u64map_init(m);
}

static size_t u64_find(const struct u64map *m, uint64_t key)
{
	size_t mask = m->cap - 1, i = mix64(key) & mask;
	while (m->slots[i].key && m->slots[i].key != key)
		i = (i + 1) & mask;
	return i;
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	size_t i = u64_find(m, key);
	return m->slots[i].key ? m->slots[i].val : NULL;
}

static int u64_grow(struct u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	struct u64map_slot *old = m->slots;
	size_t ocap = m->cap;

	m->slots = calloc(ncap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key)
			m->slots[u64_find(m, old[i].key)] = old[i];
	free(old);
	return 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *val)
{
	if ((m->n + 1) * 2 > m->cap && u64_grow(m))
		return -ENOMEM;
	size_t i = u64_find(m, key);
	if (!m->slots[i].key) {
		m->slots[i].key = key;
		m->n++;
	}
	m->slots[i].val = val;
	return 0;
}

void *u64map_del(struct u64map *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1, i = u64_find(m, key);
	if (!m->slots[i].key)
		return NULL;
	void *val = m->slots[i].val;
	/* Backward shift: pull later entries of the probe run into the hole. */
	for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = mix64(m->slots[j].key) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].val = NULL;
	m->n--;
	return val;
}

uint64_t *u64map_keys(const struct u64map *m, size_t *n)
{
	uint64_t *keys = malloc((m->n ? m->n : 1) * sizeof(*keys));
	size_t k = 0;

	if (!keys) {
		*n = 0;
		return NULL;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			keys[k++] = m->slots[i].key;
	*n = k;
	return keys;
}

void *u64map_iter_first(struct u64map_iter *it, const struct u64map *m)
{
	*it = (struct u64map_iter){ .m = m };
	it->keys = u64map_keys(m, &it->n);
	it->nomem = !it->keys;
	return u64map_iter_next(it);
}

void *u64map_iter_next(struct u64map_iter *it)
{
	while (it->keys && it->i < it->n) {
		uint64_t key = it->keys[it->i++];
		void *val = u64map_get(it->m, key);
		if (val) {
			it->key = key;
			return val;
		}
	}
	return NULL;
}

void u64map_iter_end(struct u64map_iter *it)
{
	free(it->keys);
	it->keys = NULL;
	it->n = it->i = 0;
}

/* ---- strmap ---- */

void strmap_init(struct strmap *m)
{
	memset(m, 0, sizeof(*m));
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	strmap_init(m);
}

static size_t str_find(const struct strmap *m, const char *key, size_t len, uint64_t h)
{
	size_t mask = m->cap - 1, i = h & mask;
	while (m->slots[i].key &&
	       !(m->slots[i].hash == h && m->slots[i].len == len &&
		 memcmp(m->slots[i].key, key, len) == 0))
		i = (i + 1) & mask;
	return i;
}

int strmap_get(const struct strmap *m, const char *key, size_t len, uint64_t *val)
{
	if (!m->cap)
		return 0;
	size_t i = str_find(m, key, len, hash_bytes(key, len));
	if (!m->slots[i].key)
		return 0;
	*val = m->slots[i].val;
	return 1;
}

static int str_grow(struct strmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64, ocap = m->cap;
	struct strmap_slot *old = m->slots;

	m->slots = calloc(ncap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key)
			m->slots[str_find(m, old[i].key, old[i].len, old[i].hash)] = old[i];
	free(old);
	return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t len, uint64_t val)
{
	if ((m->n + 1) * 2 > m->cap && str_grow(m))
		return -ENOMEM;
	uint64_t h = hash_bytes(key, len);
	size_t i = str_find(m, key, len, h);
	if (!m->slots[i].key) {
		char *copy = malloc(len + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, key, len);
		copy[len] = '\0';
		m->slots[i].key = copy;
		m->slots[i].len = len;
		m->slots[i].hash = h;
		m->n++;
	}
	m->slots[i].val = val;
	return 0;
}

int strmap_del_if(struct strmap *m, const char *key, size_t len, uint64_t val)
{
	if (!m->cap)
		return 0;
	size_t mask = m->cap - 1, i = str_find(m, key, len, hash_bytes(key, len));
	if (!m->slots[i].key || m->slots[i].val != val)
		return 0;
	free(m->slots[i].key);
	for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	memset(&m->slots[i], 0, sizeof(m->slots[i]));
	m->n--;
	return 1;
}

/* ---- deadline heap ---- */

void deadline_heap_init(struct deadline_heap *h)
{
	memset(h, 0, sizeof(*h));
}

void deadline_heap_free(struct deadline_heap *h)
{
	free(h->v);
	deadline_heap_init(h);
}

static int earlier(const struct deadline *a, const struct deadline *b)
{
	return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->txid < b->txid);
}

int deadline_heap_push(struct deadline_heap *h, uint64_t at_ms, uint64_t txid)
{
	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 256;
		struct deadline *nv = realloc(h->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		h->v = nv;
		h->cap = ncap;
	}
	size_t i = h->n++;
	struct deadline d = { at_ms, txid };
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!earlier(&d, &h->v[parent]))
			break;
		h->v[i] = h->v[parent];
		i = parent;
	}
	h->v[i] = d;
	return 0;
}

int deadline_heap_peek(const struct deadline_heap *h, struct deadline *out)
{
	if (!h->n)
		return 0;
	*out = h->v[0];
	return 1;
}

void deadline_heap_pop(struct deadline_heap *h)
{
	if (!h->n)
		return;
	struct deadline last = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && earlier(&h->v[c + 1], &h->v[c]))
			c++;
		if (!earlier(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
}
