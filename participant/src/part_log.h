/*
 * part_log.h - the participant stub's own durable state, in one LMDB environment in
 * its state folder, and the folder's lock and identity. The writes blob a PREPARED
 * record carries is part_blob.h's.
 *
 *   prepared  txid (u64 big-endian) -> { format u8 = 2, wall_ms u64, epoch u64,
 *                                        incarnation u64 (the one that joined), writes blob }
 *   meta      "highest_epoch"  -> u64 (rule D7 survives restarts)
 *             "participant_id" -> 16 random bytes, made at the folder's first open (D8)
 *             "incarnation"    -> u64, incremented and synced at every open (D8)
 *   lock      a plain file beside the LMDB files: flock(LOCK_EX) while a process has the
 *             log open, holding that process's pid (a second opener gets TPC_ELOCKED)
 *
 * Records written before the incarnation was kept (format 1: wall_ms first, so the
 * first byte is 0) are listed by part_log_list_dir() but refused by part_log_load():
 * the incarnation that joined them is unknown, so they cannot be voted on again.
 * */
#ifndef TPC_PART_LOG_H
#define TPC_PART_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "tpc/participant.h"
#include "tpc/sink.h"

struct part_log;

#define PART_ID_LEN 16

/** One PREPARED record: put by part_log_write(), passed back by the walkers. */
struct part_log_put {
	uint64_t txid;
	uint64_t wall_ms;
	uint64_t epoch;
	uint64_t incarnation;         /* the incarnation that joined the transaction */
	const uint8_t *blob;
	size_t blob_len;
	int format;                   /* walkers only: 1 old (no incarnation), 2 current */
};

/**
 * @brief Lock the state folder @p dir (creating it), open its LMDB, sync it, and make
 *        this open a new incarnation (durably) of the folder's participant id (made on
 *        the first open).
 * @return 0; TPC_ELOCKED when another process holds the folder (@p err names its pid);
 *         or another negative code with @p err saying why
 */
int part_log_open(struct part_log **out, const char *dir, uint64_t map_size, char *err,
		  size_t errlen);
/** @brief Close the log and release the folder's lock. NULL is a no-op. */
void part_log_close(struct part_log *l);

/** @brief The folder's participant id and this open's incarnation. */
void part_log_identity(const struct part_log *l, uint8_t id[PART_ID_LEN],
		       uint64_t *incarnation);

/**
 * @brief One LMDB transaction: put @p puts, delete @p dels (missing is fine), store
 *        @p highest_epoch if it is above the stored one. Its data is fdatasync'd; it is
 *        durable once the next part_log_write() or part_log_sync() returned 0 (D6).
 * @return 0 (every earlier write is durable now) or a negative code (nothing written)
 */
int part_log_write(struct part_log *l, const struct part_log_put *puts, size_t nputs,
		   const uint64_t *dels, size_t ndels, uint64_t highest_epoch);

/** @brief mdb_env_sync(env, 1): every write so far is durable. @return 0 or < 0. */
int part_log_sync(struct part_log *l);

/** @brief The stored highest epoch (0 for a new log). */
int part_log_read_epoch(struct part_log *l, uint64_t *epoch);

typedef int (*part_log_load_fn)(void *arg, const struct part_log_put *rec);

/** @brief Call @p fn for every PREPARED record in txid order.
 *  @return 0, TPC_EVERSION for a record in the old format (see above), or an error */
int part_log_load(struct part_log *l, part_log_load_fn fn, void *arg);

/*
 * The participant reaches its log through this table (like the coordinator's
 * coord_log_ops), so a test can put a failing or crashing log under it;
 * part_log_lmdb_open() gives the LMDB one above.
 */
struct part_log_ops {
	/** part_log_write(): one synced transaction of puts, drops and the epoch. */
	int (*write)(void *self, const struct part_log_put *puts, size_t nputs,
		     const uint64_t *dels, size_t ndels, uint64_t highest_epoch);
	/** part_log_read_epoch(). */
	int (*read_epoch)(void *self, uint64_t *epoch);
	/** part_log_load(): every PREPARED record in txid order. */
	int (*load)(void *self, part_log_load_fn fn, void *arg);
	/** part_log_identity(): the folder's participant id and this open's incarnation. */
	void (*identity)(const void *self, uint8_t id[PART_ID_LEN], uint64_t *incarnation);
	/** part_log_close(). */
	void (*close)(void *self);
	/** Device syncs so far (each commit's fdatasync, each sync). Optional (NULL: not
	 *  counted). Any thread. */
	uint64_t (*syncs)(void *self);
	/** part_log_sync(). Optional (NULL: write() alone is durable). */
	int (*sync)(void *self);
};

struct part_store {
	const struct part_log_ops *ops; /* NULL: no log open */
	void *self;
};

/** @brief part_log_open() as a store. @return as part_log_open(). */
int part_log_lmdb_open(struct part_store *out, const char *dir, uint64_t map_size,
		       char *err, size_t errlen);

/** @brief List the PREPARED records of the state folder @p dir, read-only. */
int part_log_list_dir(const char *dir, tpc_prepared_info **out, size_t *n);

#endif
