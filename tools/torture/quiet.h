/*
 * quiet.h - is everything settled? Read-only looks at the logs of running processes:
 * the coordinator's undelivered COMMIT decisions and each participant's prepared
 * transactions. Both read LMDB environments read-only (a reader slot in their lock
 * file), which LMDB allows while the owner writes.
 */
#ifndef TPC_TORTURE_QUIET_H
#define TPC_TORTURE_QUIET_H

#include <stddef.h>
#include <stdint.h>

/**
 * @brief COMMIT decisions in the coordinator's log (folder @p dir) that are not yet
 *        COMPLETED, i.e. not acknowledged by every participant.
 * @param txids receives up to @p cap of them; *n gets the full count
 * @return 0, or a negative errno / LMDB code (a log not yet created counts as empty)
 */
int tt_coord_unacked(const char *dir, uint64_t *txids, size_t cap, size_t *n);

/**
 * @brief Prepared transactions in a participant's state folder.
 * @return 0 or a negative code (a folder not yet created counts as empty)
 */
int tt_part_prepared(const char *state_dir, uint64_t *txids, size_t cap, size_t *n);

#endif
