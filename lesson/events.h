/*
 * events.h - the lesson's events: their text encoding in the event log, the seeded
 * generator of payments and page views, UTC time helpers, and a small tally (key ->
 * count, amount) that every aggregator and report shares.
 *
 * Encoding (one record payload, space separated, no spaces inside fields):
 *   P EVENT_ID TIME MERCHANT AMOUNT_MINOR CURRENCY     a payment
 *   V EVENT_ID TIME PAGE USER                         a page view
 * TIME is ISO-8601 UTC with milliseconds ("2026-11-23T10:11:12.345Z"); a payment's
 * day is its first ten characters. The generator is a pure function of (seed, i):
 * event i is the same every time, which is what lets a crashed order service or a
 * test recompute it.
 */
#ifndef LESSON_EVENTS_H
#define LESSON_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct lesson_event {
	char kind;          /* 'P' payment, 'V' page view */
	char eid[40];
	char time[32];
	uint64_t time_ms;
	char group[40];     /* merchant, or page */
	char user[24];      /* page views */
	int64_t amount;     /* payments, minor units */
	char currency[4];
};

/** @brief Parse a payload. @return 0, or -EINVAL when it is not an event. */
int lesson_event_parse(const void *data, size_t len, struct lesson_event *ev);

/** @brief Encode @p ev. @return its length (< cap), or -EMSGSIZE. */
int lesson_event_format(const struct lesson_event *ev, char *buf, size_t cap);

/** @brief The close's aggregation key of a payment: "DAY/MERCHANT/CURRENCY". */
void lesson_close_key(const struct lesson_event *ev, char *out, size_t cap);

/** What to generate. */
struct lesson_gen {
	char kind;          /* 'P' or 'V' */
	const char *eid_prefix; /* "pay", "pv", "order", ... */
	uint64_t seed;
	uint64_t count;     /* events spread evenly over [start_ms, start_ms + span_ms) */
	uint64_t start_ms, span_ms;
};

/** @brief Event @p i of the stream (0 <= i), a pure function of @p g and @p i. */
void lesson_gen_event(const struct lesson_gen *g, uint64_t i, struct lesson_event *ev);

/** @brief splitmix64: advance *state and return the next value. */
uint64_t lesson_rng_next(uint64_t *state);

/** @brief Format @p ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (cap >= 25). */
void lesson_time_format(uint64_t ms, char *out, size_t cap);

/**
 * @brief Parse "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.mmm]][Z]" (UTC), or a plain
 *        number of milliseconds since the epoch.
 * @return 0 or -EINVAL
 */
int lesson_time_parse(const char *s, uint64_t *ms);

/* ---- tally: key -> (count, amount) ---- */

struct tally_entry {
	char key[96];
	int64_t count;
	int64_t amount;
};

struct tally {
	struct tally_entry *v;
	size_t n, cap;
	size_t sorted;      /* v[0..sorted) is sorted with unique keys */
};

/** @brief Add (count, amount) under @p key. @return 0 or -ENOMEM / -ENAMETOOLONG. */
int tally_add(struct tally *t, const char *key, int64_t count, int64_t amount);

/** @brief Sort and merge equal keys (call before tally_find and before reading v). */
void tally_finish(struct tally *t);

/** @brief The entry for @p key after tally_finish(), or NULL. */
struct tally_entry *tally_find(struct tally *t, const char *key);

void tally_free(struct tally *t);

#endif
