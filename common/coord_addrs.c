/*
 * coord_addrs.c - which coordinator address to try next (coord_addrs.h): the list, the
 * leader hint, and the backoff. Within the first round after a success (every address
 * tried once) the next attempt is immediate; after that each attempt waits a doubling
 * delay between min_ms and max_ms, jittered to [d/2, d] so that many processes that
 * lost the same leader do not reconnect in step.
 */
#include "coord_addrs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static size_t trim_copy(char *dst, size_t cap, const char *s, size_t len)
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len >= cap)
		return cap; /* too long */
	memcpy(dst, s, len);
	dst[len] = '\0';
	return len;
}

int coord_addrs_parse(struct coord_addrs *a, const char *s, uint32_t min_ms, uint32_t max_ms,
		      uint64_t seed, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	a->min_ms = min_ms ? min_ms : 1;
	a->max_ms = max_ms < a->min_ms ? a->min_ms : max_ms;
	a->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
	for (const char *p = s ? s : ""; ; ) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (a->n == COORD_ADDRS_MAX) {
			snprintf(err, errlen, "more than %d coordinator addresses", COORD_ADDRS_MAX);
			return -EINVAL;
		}
		size_t got = trim_copy(a->list[a->n], COORD_ADDR_LEN, p, len);
		if (got == 0 || got == COORD_ADDR_LEN || !strchr(a->list[a->n], ':')) {
			snprintf(err, errlen, "bad coordinator address in \"%s\" (want HOST:PORT"
				 "[,HOST:PORT...])", s ? s : "");
			return -EINVAL;
		}
		a->n++;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

const char *coord_addrs_current(const struct coord_addrs *a)
{
	return a->on_hint ? a->hint : a->list[a->cur];
}

void coord_addrs_ok(struct coord_addrs *a)
{
	a->tried = 0;
	a->backoff_ms = 0;
}

static uint32_t next_delay(struct coord_addrs *a)
{
	a->tried++;
	if (a->tried < a->n + 1)
		return 0; /* the first round after a success: try everything at once */
	a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : a->min_ms;
	if (a->backoff_ms > a->max_ms)
		a->backoff_ms = a->max_ms;
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 7;
	a->rng ^= a->rng << 17;
	uint32_t half = a->backoff_ms / 2;
	return half + (uint32_t)(a->rng % (a->backoff_ms - half + 1));
}

uint32_t coord_addrs_failed(struct coord_addrs *a)
{
	if (a->on_hint)
		a->on_hint = 0; /* the named leader failed: back to the list, where we were */
	else
		a->cur = (a->cur + 1) % a->n;
	return next_delay(a);
}

uint32_t coord_addrs_not_leader(struct coord_addrs *a, const char *leader)
{
	if (!leader || !*leader || strlen(leader) >= COORD_ADDR_LEN ||
	    !strcmp(leader, coord_addrs_current(a)))
		return coord_addrs_failed(a);
	if (!a->on_hint)
		a->cur = (a->cur + 1) % a->n; /* where to go should the leader fail */
	a->on_hint = 1;
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->list[i], leader)) {
			a->cur = i;
			a->on_hint = 0;
		}
	if (a->on_hint)
		memcpy(a->hint, leader, strlen(leader) + 1);
	return next_delay(a);
}

int coord_addrs_has_other(const struct coord_addrs *a)
{
	return a->n > 1 || a->on_hint;
}
