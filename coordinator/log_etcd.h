/*
 * log_etcd.h - the coordinator's log kept in etcd (a Raft-replicated store), behind
 * struct coord_log_ops, with leadership of a coordinator group (docs/ha.md).
 *
 * Keys, all under /tpc/<group>/ (values are JSON or text, readable with etcdctl):
 *   meta/id, meta/epoch        decimal text: the coordinator id and epoch (D7)
 *   meta/forget_horizon        decimal text: the highest txid whose completed outcome
 *                              was deleted (COORD_LOOKUP_FORGOTTEN at or below it)
 *   d/<txid, 16 hex digits>    {"wall":MS,"parts":["a","b"]}   a COMMIT decision
 *                              {"completed":MS}                 its tombstone
 *   k/<client key bytes>       {"txid":N,"wall":MS}            the key's committed txn
 *   i/<txid, 16 hex digits>    the client key bytes (the sweep's way to old keys)
 *   a/<audit id, 16 hex>       the audit entry's JSON text
 *   p/<participant name>       {"id":"<32 hex digits>","wall":MS}   a binding (D8)
 *   leader                     the leader's advertised address, attached to its lease
 *
 * Leadership and fencing: coord_log_etcd_campaign() creates the leader key with the
 * store's lease (only when no key exists); the key's create revision is the fence.
 * Every write is one etcd transaction that compares the leader key's create revision
 * with the fence, so once the lease expired (or was revoked) and another coordinator
 * created the key, a write of the old leader fails (-ESTALE) and changes nothing. A
 * thread keeps the lease alive (every third of the lease) and clears "leader" when it
 * is gone. Writes without leadership are refused (-ESTALE).
 *
 * Durability: write_batch returns 0 only after etcd acknowledged every transaction of
 * the batch (etcd acknowledges once a quorum has it in its log). A batch larger than
 * etcd's limits (128 operations, 1.5 MiB per request) is split between records, never
 * inside one: a COMMIT and its key records always share a transaction (D1), and every
 * transaction that deletes a forgotten decision also raises the forget horizon.
 */
#ifndef TPC_COORD_LOG_ETCD_H
#define TPC_COORD_LOG_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "log_store.h"

struct coord_etcd_opts {
	const char *endpoints;   /* http://host:port,... */
	const char *group;       /* [A-Za-z0-9_.-]{1,64} */
	uint32_t lease_ms;       /* the leader lease (whole seconds, at least 2 s) */
	const char *advertise;   /* what the leader key says: the address clients use */
	uint32_t timeout_ms;     /* one request on one endpoint (0: 5 s) */
};

/**
 * @brief Open the group's log in etcd: checks that an endpoint answers and grants the
 *        store's lease (kept alive from now on). Not the leader yet.
 * @return 0, or <0 with @p err set.
 */
int coord_log_etcd_open(struct coord_log *log, const struct coord_etcd_opts *o, char *err,
			size_t errlen);

/**
 * @brief Try to become the group's leader. 1: leader now (or already); 0: another is
 *        (its address in @p leader, when given); <0: error. With @p wait_ms > 0, waits
 *        up to that long (watching the leader key) for the leader to go, and tries again.
 */
int coord_log_etcd_campaign(struct coord_log *log, uint32_t wait_ms, char *leader,
			    size_t leader_len);

/** @brief Have @p fn called (on the lease thread or the writer thread) when
 *  leadership is lost, and when etcd says the store's lease is gone (a standby's too:
 *  it can never lead then, campaign returns -ENOLINK); set it before campaigning. */
void coord_log_etcd_on_lost(struct coord_log *log, void (*fn)(void *arg), void *arg);

/** @brief Why leadership was lost (a constant string), once it was. */
const char *coord_log_etcd_lost_why(const struct coord_log *log);

/** @brief 1 while this store is the leader: the fence not lost, and the last answered
 *  keepalive recent enough (3/4 of the lease) that etcd cannot have let another take
 *  over, even when this process was stopped meanwhile; else 0. */
int coord_log_etcd_is_leader(const struct coord_log *log);

/** @brief The leader's advertised address now ("" when there is none): 0, or <0. */
int coord_log_etcd_leader(struct coord_log *log, char *leader, size_t leader_len);

#endif
