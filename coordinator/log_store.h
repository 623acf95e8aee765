/*
 * log_store.h - the coordinator's durable log, kept in one LMDB environment.
 *
 * Databases inside the environment:
 *   meta       "coordinator_id" -> u64, "epoch" -> u64, "format" -> u32
 *   decisions  txid (u64 big-endian, so keys append in order) -> decision record:
 *                COMMIT: decided wall time, participant names (those that voted YES)
 *                COMPLETED: every participant acked; kept only so that a late
 *                StatusQuery still hears COMMITTED, until the outcome retention ends
 *   keys       client transaction key (bytes) -> { txid, COMMITTED, wall time }
 *   audit      audit id (u64 big-endian, 1, 2, ...) -> one operator action as JSON text
 *              (admin API heuristic decisions); swept after the audit retention
 *   participants  participant name (bytes) -> { participant_id (16 bytes), bound wall time }:
 *              the one state folder allowed to use that name (rule D8); written before
 *              the participant hears its HelloReply, removed only by an operator
 *   key_index  txid -> client key: the sweep's way to the oldest keys first
 *   meta       also "forget_horizon" -> u64: the highest txid whose completed outcome the
 *              log has deleted (COORD_LOOKUP_FORGOTTEN below it)
 *
 * Durability: every write goes through write_batch(), one LMDB write transaction
 * committed with mdb_txn_commit, its data fdatasync'd; the environment has
 * MDB_NOMETASYNC, so a batch is durable once the next commit or the sync op ran (rule
 * D6; never MDB_NOSYNC). A COMMIT record and its key record land in the same transaction (D1).
 *
 * The store is reached through struct coord_log_ops, so tests can put a failing or
 * crashing store under the coordinator. coord_log_lmdb_open() opens the real one.
 */
#ifndef TPC_COORD_LOG_STORE_H
#define TPC_COORD_LOG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "batch_writer.h"

enum coord_rec_type {
	COORD_REC_COMMIT = 1,    /* force: the decision, its participants, its key */
	COORD_REC_COMPLETE = 2,  /* all acked: shrink the record to a COMPLETED tombstone */
	COORD_REC_SWEEP = 3,     /* compaction: drop tombstones and keys older than cutoffs */
	COORD_REC_AUDIT = 4,     /* an operator action (audit_id, text): forced like the rest */
	COORD_REC_DROP = 5,      /* an overridden COMMIT: delete the decision record (and the
				  * key record, when key is set and still names this txid) */
	COORD_REC_BIND = 6,      /* bind name -> participant_id (forced before the HelloReply) */
	COORD_REC_UNBIND = 7,    /* forget a name's binding (an operator's, after its audit) */
};

/* Bytes of a participant id (tpc.proto Hello.participant_id). */
#define COORD_PARTICIPANT_ID_LEN 16

/** One log record; embedded bw_item makes it a batch_writer item. */
struct coord_server;

struct coord_rec {
	struct bw_item item;     /* must be first */
	enum coord_rec_type type;
	uint64_t txid;
	uint64_t wall_ms;        /* decision time (COMMIT), completion time (COMPLETE) */
	int forget;              /* COMPLETE: delete the record instead of keeping a tombstone */
	const char *key;         /* COMMIT: client transaction key or NULL; not owned */
	size_t key_len;
	uint32_t nparts;         /* COMMIT: participant names; not owned */
	const char *const *parts;
	uint64_t sweep_outcome_before_ms; /* SWEEP: drop tombstones completed before this */
	uint64_t sweep_keys_before_ms;    /* SWEEP: drop keys recorded before this */
	uint64_t sweep_audit_before_ms;   /* SWEEP: drop audit entries older (0: keep all) */
	uint32_t sweep_limit;             /* SWEEP: at most this many deletions per database
					   * per pass, each pass from the oldest entry */
	int sweep_more;                   /* SWEEP, set by the store: a database hit the
					   * limit with old entries left: run another pass */
	uint32_t sweep_deleted;           /* SWEEP, set by the store: entries deleted */
	uint64_t audit_id;       /* AUDIT: key in the audit database (non-zero, unused) */
	const char *text;        /* AUDIT: the entry (JSON); not owned */
	size_t text_len;
	const char *name;        /* BIND, UNBIND: the participant name; not owned */
	size_t name_len;
	unsigned char participant_id[COORD_PARTICIPANT_ID_LEN]; /* BIND */
	void *owner;             /* the caller's, untouched by the store */
	/* The caller's, untouched by the store: run on the loop thread once the record's
	 * batch is done (coord_log_done()); it owns the record from then on. NULL: the
	 * coordinator's own (COMMIT, COMPLETE), handled and freed by actions.c. */
	void (*done)(struct coord_server *s, struct coord_rec *r, int status);
	/* The caller's timing, untouched by the store: when the record was queued, and on
	 * the first record of each batch the batch's size and write time (set by the
	 * coordinator's write function on the writer thread, read after done()). */
	uint64_t queued_ns;
	uint64_t batch_ns;
	uint32_t batch_n;
};

/** Called by audit_list() for each entry; a non-zero return stops the walk (and is returned). */
typedef int (*coord_audit_cb)(void *arg, uint64_t id, const char *text, size_t len);

/** A decision found in the log on start-up (COMMIT not yet COMPLETED). */
struct coord_decision {
	uint64_t txid;
	uint64_t wall_ms;
	uint32_t nparts;
	char **parts;            /* owned by the store's loader: valid during the callback */
};

struct coord_key_info {
	uint64_t txid;
	uint64_t wall_ms;
	int committed;           /* 1: the transaction under this key committed */
};

/** A participant name's binding (the participants database). */
struct coord_binding {
	unsigned char participant_id[COORD_PARTICIPANT_ID_LEN];
	uint64_t wall_ms;        /* when it was bound */
};

/** Called by load_participants() for each binding; non-zero stops the walk (returned).
 *  @p name is not NUL-terminated and valid during the call only. */
typedef int (*coord_binding_cb)(void *arg, const char *name, size_t name_len,
				const struct coord_binding *b);

/* What lookup_txid() found. */
enum coord_lookup {
	COORD_LOOKUP_NONE = 0,
	COORD_LOOKUP_COMMITTED = 1,
	COORD_LOOKUP_FORGOTTEN = 2,
};

struct coord_log_ops {
	/** Write records head.. (n, linked by item.next) in one synced transaction. */
	int (*write_batch)(void *self, struct coord_rec *head, size_t n);
	/** Read the meta: id and epoch (0/0 for a fresh log). */
	int (*read_meta)(void *self, uint64_t *id, uint64_t *epoch);
	/** Durably store id and epoch (synced). */
	int (*write_meta)(void *self, uint64_t id, uint64_t epoch);
	/** Call cb for each COMMIT record not COMPLETED, in txid order. */
	int (*load_decisions)(void *self, int (*cb)(void *arg, const struct coord_decision *d),
			      void *arg);
	/** Look up a txid: COORD_LOOKUP_COMMITTED (record or tombstone), COORD_LOOKUP_NONE
	 *  (no record, above the forget horizon: presumed abort), COORD_LOOKUP_FORGOTTEN (no
	 *  record, at or below the horizon: its outcome may have been swept), <0 error. */
	int (*lookup_txid)(void *self, uint64_t txid);
	/** Look up a key: 1 found (info filled), 0 absent, <0 error. */
	int (*lookup_key)(void *self, const char *key, size_t key_len,
			  struct coord_key_info *info);
	/** Sizes for metrics: records in decisions and keys, bytes used by the map. */
	int (*stats)(void *self, uint64_t *decisions, uint64_t *keys, uint64_t *map_bytes);
	/** Audit entries newest first, those with id < @p before (0: from the newest), at
	 *  most @p limit; the text passed to cb is valid during the call only. */
	int (*audit_list)(void *self, uint64_t before, uint32_t limit, coord_audit_cb cb,
			  void *arg);
	/** Look up a participant name's binding: 1 found (@p out filled), 0 none, <0 error. */
	int (*lookup_participant)(void *self, const char *name, size_t name_len,
				  struct coord_binding *out);
	/** Call cb for every binding, in name order (start-up). */
	int (*load_participants)(void *self, coord_binding_cb cb, void *arg);
	void (*close)(void *self);
	/** Device syncs asked of the disk since open. Any thread. */
	uint64_t (*syncs)(void *self);
	/** Make every batch written so far durable (write_batch leaves the last one
	 *  durable only once a later sync ran: rule D6, MDB_NOMETASYNC). Writer thread. */
	int (*sync)(void *self);
};

struct coord_log {
	const struct coord_log_ops *ops;
	void *self;
};

/**
 * @brief The rules every store checks a record against before writing its batch: the
 *        fields its type needs are set, and keys and names are at most @p max_key bytes.
 *        A store adds the limits of its own encoding. @return 0 or -EINVAL.
 */
int coord_rec_check(const struct coord_rec *r, size_t max_key);

/**
 * @brief Open (creating if needed) the LMDB log in directory @p dir.
 * @param map_size LMDB map size in bytes (0: default 1 GiB).
 * @return 0, or a negative errno / LMDB code; @p err receives a message.
 */
int coord_log_lmdb_open(struct coord_log *log, const char *dir, size_t map_size, char *err,
			size_t errlen);

#endif
