/*
 * broken.h - deliberately broken behaviours, for proving that the torture checker
 * catches what it claims to. They exist only in the *-broken test binaries, built with
 * TPC_BROKEN_HOOKS; in every shipped binary tpc_broken() is the constant 0 and the
 * broken paths compile away.
 *
 *   TPC_BROKEN=coord.commit_before_log  the coordinator sends Decision(COMMIT) to the
 *                                       first participant before the decision is forced
 *                                       (breaks D1)
 *   TPC_BROKEN=part.ack_before_apply    the stub acks a COMMIT before its sink applied
 *                                       it (breaks D3)
 *   TPC_BROKEN=sink.no_dedup            the file sink applies a txid again when the
 *                                       decision comes again (breaks D3's idempotency)
 *   TPC_BROKEN=coord.accept_rejoin      the coordinator takes a Join or Vote from another
 *                                       incarnation as if from the one that joined, and a
 *                                       newer incarnation's Hello aborts nothing (breaks D8)
 */
#ifndef TPC_COMMON_BROKEN_H
#define TPC_COMMON_BROKEN_H

#ifdef TPC_BROKEN_HOOKS
#include <stdlib.h>
#include <string.h>
static inline int tpc_broken(const char *name)
{
	const char *b = getenv("TPC_BROKEN");
	return b && strstr(b, name) != NULL;
}
#else
#define tpc_broken(name) 0
#endif

#endif
