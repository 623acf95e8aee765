/*
 * events.c - event encoding, the seeded generator, UTC time helpers and the tally
 * (see events.h). Everything here is pure: no I/O, no clocks, no state outside the
 * caller's structures.
 */
#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Merchants with the currency they mostly settle in, and a weight (busy ones first). */
static const struct {
	const char *name, *currency;
	unsigned weight;
} merchants[] = {
	{ "acme-books", "EUR", 30 }, { "blue-bikes", "EUR", 22 }, { "cedar-cafe", "GBP", 18 },
	{ "delta-air", "USD", 15 },  { "echo-music", "USD", 12 }, { "fjord-fish", "EUR", 10 },
	{ "gala-shoes", "GBP", 8 },  { "helio-solar", "EUR", 6 }, { "iris-labs", "USD", 5 },
	{ "jade-tea", "GBP", 4 },    { "koi-garden", "EUR", 3 },  { "lumen-lamps", "USD", 2 },
};

static const char *const currencies[] = { "EUR", "USD", "GBP" };

static const char *const pages[] = {
	"/", "/pricing", "/docs", "/docs/install", "/docs/api", "/blog", "/blog/exactly-once",
	"/blog/outbox", "/about", "/careers", "/signup", "/login", "/dashboard", "/settings",
	"/help", "/status", "/changelog", "/contact", "/legal/terms", "/legal/privacy",
};

uint64_t lesson_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t pick_merchant(uint64_t r)
{
	unsigned total = 0, n = sizeof(merchants) / sizeof(merchants[0]);

	for (unsigned i = 0; i < n; i++)
		total += merchants[i].weight;
	unsigned x = (unsigned)(r % total);
	for (unsigned i = 0; i < n; i++) {
		if (x < merchants[i].weight)
			return i;
		x -= merchants[i].weight;
	}
	return 0;
}

/* Page popularity falls off like 1/(rank+1): pick by a skewed uniform. */
static size_t pick_page(uint64_t r)
{
	size_t n = sizeof(pages) / sizeof(pages[0]);
	double u = (double)(r >> 11) / (double)(1ull << 53);
	size_t i = (size_t)((double)n * u * u);
	return i < n ? i : n - 1;
}

static void gen_payment(uint64_t *rng, struct lesson_event *ev)
{
	size_t m = pick_merchant(lesson_rng_next(rng));
	uint64_t r = lesson_rng_next(rng);

	snprintf(ev->group, sizeof(ev->group), "%s", merchants[m].name);
	snprintf(ev->currency, sizeof(ev->currency), "%s",
		 r % 100 < 85 ? merchants[m].currency : currencies[(r >> 8) % 3]);
	ev->amount = 99 + (int64_t)(lesson_rng_next(rng) % 9901); /* 0.99 .. 99.99 */
	if (lesson_rng_next(rng) % 10 == 0)                      /* now and then a big one */
		ev->amount *= 1 + (int64_t)(lesson_rng_next(rng) % 40);
}

static void gen_pageview(uint64_t *rng, struct lesson_event *ev)
{
	snprintf(ev->group, sizeof(ev->group), "%s", pages[pick_page(lesson_rng_next(rng))]);
	snprintf(ev->user, sizeof(ev->user), "u%05u", (unsigned)(lesson_rng_next(rng) % 5000));
}

void lesson_gen_event(const struct lesson_gen *g, uint64_t i, struct lesson_event *ev)
{
	uint64_t rng = g->seed * 0x2545f4914f6cdd1dull ^ (i + 1) * 0x9e3779b97f4a7c15ull;
	uint64_t step = g->count ? g->span_ms / g->count : 1000;

	memset(ev, 0, sizeof(*ev));
	ev->kind = g->kind;
	snprintf(ev->eid, sizeof(ev->eid), "%s-%" PRIu64 "-%08" PRIu64, g->eid_prefix, g->seed, i);
	/* Even spacing with +-30 s of jitter: some events arrive late, out of time order. */
	int64_t jitter = (int64_t)(lesson_rng_next(&rng) % 60001) - 30000;
	int64_t t = (int64_t)(g->start_ms + i * step) + jitter;
	ev->time_ms = t < (int64_t)g->start_ms ? g->start_ms : (uint64_t)t;
	lesson_time_format(ev->time_ms, ev->time, sizeof(ev->time));
	if (g->kind == 'P')
		gen_payment(&rng, ev);
	else
		gen_pageview(&rng, ev);
}

/* ---- encoding ---- */

int lesson_event_format(const struct lesson_event *ev, char *buf, size_t cap)
{
	int n;

	if (ev->kind == 'P')
		n = snprintf(buf, cap, "P %s %s %s %" PRId64 " %s", ev->eid, ev->time, ev->group,
			     ev->amount, ev->currency);
	else
		n = snprintf(buf, cap, "V %s %s %s %s", ev->eid, ev->time, ev->group, ev->user);
	return n < 0 || (size_t)n >= cap ? -EMSGSIZE : n;
}

/* Copy the next space-separated field of [*p, end) into out; 0 or -EINVAL. */
static int field(const char **p, const char *end, char *out, size_t cap)
{
	const char *s = *p;

	while (s < end && *s == ' ')
		s++;
	const char *e = s;
	while (e < end && *e != ' ')
		e++;
	if (e == s || (size_t)(e - s) >= cap)
		return -EINVAL;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = 0;
	*p = e;
	return 0;
}

int lesson_event_parse(const void *data, size_t len, struct lesson_event *ev)
{
	const char *p = data, *end = p + len;
	char kind[2], num[24];

	memset(ev, 0, sizeof(*ev));
	if (field(&p, end, kind, sizeof(kind)) || (kind[0] != 'P' && kind[0] != 'V') ||
	    field(&p, end, ev->eid, sizeof(ev->eid)) ||
	    field(&p, end, ev->time, sizeof(ev->time)) ||
	    lesson_time_parse(ev->time, &ev->time_ms) ||
	    field(&p, end, ev->group, sizeof(ev->group)))
		return -EINVAL;
	ev->kind = kind[0];
	if (ev->kind == 'V')
		return field(&p, end, ev->user, sizeof(ev->user));
	if (field(&p, end, num, sizeof(num)) || field(&p, end, ev->currency, sizeof(ev->currency)))
		return -EINVAL;
	char *stop;
	ev->amount = strtoll(num, &stop, 10);
	return *stop ? -EINVAL : 0;
}

void lesson_close_key(const struct lesson_event *ev, char *out, size_t cap)
{
	snprintf(out, cap, "%.10s/%s/%s", ev->time, ev->group, ev->currency);
}

/* ---- time ---- */

void lesson_time_format(uint64_t ms, char *out, size_t cap)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(ms % 1000));
}

int lesson_time_parse(const char *s, uint64_t *ms)
{
	struct tm tm = { 0 };
	unsigned frac = 0;
	int n = 0;
	char *stop;

	if (strchr(s, '-') == NULL) {
		unsigned long long v = strtoull(s, &stop, 10);
		if (!*s || *stop)
			return -EINVAL;
		*ms = v;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3)
		return -EINVAL;
	s += n;
	if (*s == 'T') {
		int m = 0;
		if (sscanf(s, "T%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &m) != 2)
			return -EINVAL;
		s += m;
		if (*s == ':' && sscanf(s, ":%2d%n", &tm.tm_sec, &m) == 1)
			s += m;
		if (*s == '.' && sscanf(s, ".%3u%n", &frac, &m) == 1)
			s += m;
		if (*s == 'Z')
			s++;
	}
	if (*s || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ms = (uint64_t)t * 1000 + frac;
	return 0;
}

/* ---- tally ---- */

int tally_add(struct tally *t, const char *key, int64_t count, int64_t amount)
{
	if (strlen(key) >= sizeof(t->v[0].key))
		return -ENAMETOOLONG;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct tally_entry *nv = realloc(t->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = cap;
	}
	struct tally_entry *e = &t->v[t->n++];
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->count = count;
	e->amount = amount;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct tally_entry *)a)->key, ((const struct tally_entry *)b)->key);
}

void tally_finish(struct tally *t)
{
	size_t out = 0;

	if (t->sorted == t->n)
		return;
	qsort(t->v, t->n, sizeof(t->v[0]), cmp_entry);
	for (size_t i = 0; i < t->n; i++) {
		if (out && strcmp(t->v[out - 1].key, t->v[i].key) == 0) {
			t->v[out - 1].count += t->v[i].count;
			t->v[out - 1].amount += t->v[i].amount;
		} else {
			t->v[out++] = t->v[i];
		}
	}
	t->n = t->sorted = out;
}

struct tally_entry *tally_find(struct tally *t, const char *key)
{
	struct tally_entry probe;

	snprintf(probe.key, sizeof(probe.key), "%s", key);
	return bsearch(&probe, t->v, t->sorted, sizeof(t->v[0]), cmp_entry);
}

void tally_free(struct tally *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}
