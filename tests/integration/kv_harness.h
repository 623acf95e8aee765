/*
 * kv_harness.h - tpc-kv services as real processes next to a coord_harness cluster:
 * start one (name, free port, data folder, extra options, faults in its environment
 * only), send it KvPut as a client would, read what it applied with `tpc-kv --dump`,
 * and look at its stderr log.
 *
 * Every process is started in the cluster's process set, so cluster_teardown() kills
 * it and removes its folder whatever the test did. Waits have deadlines (WAIT_MS).
 * The binary is TPC_KV_BIN (a compile definition of the test that uses this).
 */
#ifndef TPC_TESTS_KV_HARNESS_H
#define TPC_TESTS_KV_HARNESS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "coord_harness.h"

struct kv_svc {
	tpc_proc *proc;         /* the current process; NULL before the first start */
	tpc_wc *wc;             /* the test's connection to it; NULL until a put */
	char name[32];
	int port;
	char hostport[64];
	char data[PATH_MAX + 32];
	char log[PATH_MAX + 32]; /* stderr of every process started for it, appended */
	const char *coordinator; /* where it connects; NULL (kv_svc_init): the cluster's */
};

/**
 * Name a service, give it a free port and the folders CLUSTER_DIR/@p leaf (data) and
 * CLUSTER_DIR/@p leaf.log (stderr). Starts nothing.
 */
void kv_svc_init(struct kv_svc *k, struct cluster *c, const char *name, const char *leaf);

/**
 * Start it (`--name --listen --coordinator --data` and @p extra, NULL-terminated, may be
 * NULL), with TPC_FAULTS=@p faults in its environment when not NULL. Does not wait:
 * for a process that is expected to refuse to run.
 */
void kv_svc_spawn(struct kv_svc *k, struct cluster *c, const char *faults,
		  const char *const extra[]);

/** kv_svc_spawn, then wait until it accepts connections on its port. */
void kv_svc_start(struct kv_svc *k, struct cluster *c, const char *faults,
		  const char *const extra[]);

/** A new connection to it, with WAIT_MS as the handle's timeout (fails the test if it
 *  cannot connect); the caller frees it. */
tpc_wc *kv_svc_connect(const struct kv_svc *k);

/** Forget the test's connection to it (after it died or before a restart). */
void kv_svc_close_conn(struct kv_svc *k);

/**
 * KvPut(txid, key, value) and wait for the answer. @return 0 (a KvPutReply for the
 * txid), TPC_WC_EREPLY (an Error reply: code and message in tpc_wc_error_code() /
 * tpc_wc_errmsg() of k->wc), or another tpc_wc code (timeout, connection lost).
 */
int kv_svc_put_rc(struct kv_svc *k, uint64_t txid, const char *key, const char *value);

/** kv_svc_put_rc carrying KvPut.txn_token (@p token_len bytes of @p token; 0: none). */
int kv_svc_put_token_rc(struct kv_svc *k, uint64_t txid, const uint8_t *token,
			size_t token_len, const char *key, const char *value);

/** kv_svc_put_rc that fails the test unless the put is acknowledged. */
void kv_svc_put(struct kv_svc *k, uint64_t txid, const char *key, const char *value);

/** `tpc-kv CMD --data DATA` (read-only: --dump, --prepared; the service may run or
 *  not) into @p out; fails the test unless it exits 0. */
void kv_svc_cmd(const struct kv_svc *k, const char *cmd, char *out, size_t cap);

/** `tpc-kv --dump --data DATA` into @p out (fails the test if it cannot run). */
void kv_svc_dump(const struct kv_svc *k, char *out, size_t cap);

/** Applied lines (key<TAB>value<TAB>txid) whose txid is @p txid, copied to @p lines
 *  (";"-separated, may be NULL). @return how many. */
int kv_svc_applied_in(const struct kv_svc *k, uint64_t txid, char *lines, size_t cap);

/** Wait until key=value is applied in txid @p txid (fails the test after WAIT_MS). */
void kv_svc_wait_applied(const struct kv_svc *k, const char *key, const char *value,
			 uint64_t txid);

/** How many lines of its stderr log hold @p text (and, when not NULL, @p also). */
int kv_svc_log_count(const struct kv_svc *k, const char *text, const char *also);

#endif
