/*
 * coord_addrs.h - a list of coordinator addresses ("h1:7400,h2:7400") and which one to
 * try next: the leader a standby named (Error.leader of ERR_NOT_LEADER), else the next
 * of the list, with a bounded, jittered backoff once every address was tried since the
 * last one that worked. libtpc's client and participant share it.
 *
 * Pure: no I/O and no clock; the caller connects to coord_addrs_current() and reports
 * what happened (coord_addrs_ok / _failed / _not_leader), each report returning how
 * long to wait before the next attempt.
 */
#ifndef TPC_COORD_ADDRS_H
#define TPC_COORD_ADDRS_H

#include <stddef.h>
#include <stdint.h>

#define COORD_ADDRS_MAX 16    /* addresses in one list */
#define COORD_ADDR_LEN 256    /* "HOST:PORT" with its NUL */

struct coord_addrs {
	char list[COORD_ADDRS_MAX][COORD_ADDR_LEN];
	size_t n;
	char hint[COORD_ADDR_LEN]; /* the leader a standby named, when not in the list */
	size_t cur;                /* the list entry in use (when !on_hint) */
	int on_hint;               /* hint is in use */
	unsigned tried;            /* attempts that did not work since the last that did */
	uint32_t backoff_ms;       /* the last backoff (0: none yet) */
	uint32_t min_ms, max_ms;   /* backoff bounds */
	uint64_t rng;              /* xorshift state for the jitter */
};

/**
 * @brief Parse a comma-separated list of "HOST:PORT" (spaces around commas allowed).
 * @param seed any value that differs between processes (the jitter's seed)
 * @return 0, or -EINVAL with a reason in @p err
 */
int coord_addrs_parse(struct coord_addrs *a, const char *s, uint32_t min_ms, uint32_t max_ms,
		      uint64_t seed, char *err, size_t errlen);

/** @brief The address to connect to now. */
const char *coord_addrs_current(const struct coord_addrs *a);

/** @brief The current address answered as the leader: stay on it, reset the backoff. */
void coord_addrs_ok(struct coord_addrs *a);

/** @brief The current address did not work: move to the next. @return ms to wait. */
uint32_t coord_addrs_failed(struct coord_addrs *a);

/**
 * @brief The current address is a standby naming @p leader ("" or NULL: none known):
 *        go there when it is another address, else to the next. @return ms to wait.
 */
uint32_t coord_addrs_not_leader(struct coord_addrs *a, const char *leader);

/** @brief 1 when there is somewhere else to try than the current address. */
int coord_addrs_has_other(const struct coord_addrs *a);

#endif
