/*
 * aborts.h - why recent transactions aborted, in memory, for the people who ask later.
 *
 * Presumed abort (D5) logs nothing for an abort, and an aborted transaction is freed at
 * once; so a client whose Commit comes after the abort (an operator's, a timeout), and
 * an operator looking at the admin API, would only hear "unknown or aborted". This keeps
 * the last COORD_ABORTS_KEEP aborts: the sentence the client's Outcome.reason carries,
 * and, for a NO vote, the participant and its own reason (Outcome.abort_participant,
 * Outcome.abort_reason). Oldest first out; lost at a restart (then presumed abort
 * answers as before).
 */
#ifndef TPC_COORD_ABORTS_H
#define TPC_COORD_ABORTS_H

#include <stddef.h>
#include <stdint.h>

#include "maps.h"

#define COORD_ABORTS_KEEP 4096

struct coord_abort_rec {
	uint64_t txid;            /* 0: an empty slot */
	char *reason;             /* the sentence: `participant "p1" voted NO: ...` */
	char *participant;        /* the NO voter's name, or NULL */
	char *detail;             /* its Vote.reason, or NULL */
};

struct coord_aborts {
	struct coord_abort_rec ring[COORD_ABORTS_KEEP];
	size_t next;              /* the slot the next abort takes (the oldest) */
	struct u64map idx;        /* txid -> its struct coord_abort_rec * */
};

void coord_aborts_init(struct coord_aborts *a);
void coord_aborts_free(struct coord_aborts *a);

/** @brief Remember why @p txid aborted (the strings are copied; NULL: none). Out of
 *         memory: it is not remembered. */
void coord_aborts_add(struct coord_aborts *a, uint64_t txid, const char *reason,
		      const char *participant, const char *detail);

/** @return what is remembered of @p txid, or NULL. */
const struct coord_abort_rec *coord_aborts_get(const struct coord_aborts *a, uint64_t txid);

#endif
