/*
 * server.h - the coordinator server: configuration, start-up (log open, epoch bump,
 * recovery), the libevent loop, and shutdown.
 */
#ifndef TPC_COORD_SERVER_H
#define TPC_COORD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct coord_cmdline;

struct coord_config {
	const char *listen;          /* HOST:PORT */
	const char *data_dir;        /* LMDB environment folder */
	uint64_t id;                 /* coordinator id; 0: keep the log's (1 for a new log) */
	uint32_t max_frame;          /* bytes */
	uint32_t txn_timeout_ms;
	uint32_t prepare_timeout_ms;
	uint32_t max_conns;          /* checked against RLIMIT_NOFILE at start */
	/* Limits on what one peer may hold (conn.c): a connection that has not said Hello
	 * within hello_timeout_ms, a client idle (no bytes, no open transaction) for
	 * idle_timeout_ms (0: never), a frame not completed within frame_timeout_ms of its
	 * first byte, or a throttled peer that reads none of its replies for as long, is
	 * closed; reading stops while a peer's unsent output exceeds max_output bytes;
	 * partial frames across all connections may hold max_partial_bytes. */
	uint32_t hello_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t frame_timeout_ms;
	uint64_t max_output;
	uint64_t max_partial_bytes;
	uint32_t max_txn_timeout_ms; /* a Begin asking for more is refused (ERR_INVALID) */
	uint32_t max_part_names;     /* participant names known at once (bound or live) */
	uint32_t max_open_txns;      /* whole server */
	uint32_t max_txns_per_conn;  /* open transactions one client connection may hold */
	uint32_t max_parts;          /* participants per transaction */
	uint32_t max_key_len;
	uint32_t retry_initial_ms;
	uint32_t retry_max_ms;
	uint64_t outcome_retention_ms; /* completed COMMIT tombstones kept for StatusQuery */
	uint64_t key_retention_ms;     /* client transaction keys kept */
	uint64_t audit_retention_ms;   /* operator audit entries kept (0: for ever) */
	uint32_t group_commit_max;   /* records per log batch; 1 turns group commit off */
	uint64_t map_size;           /* LMDB map size */
	/* The log in etcd instead (docs/ha.md): coordinators of one group elect a leader. */
	const char *log_kind;        /* "lmdb" (default) or "etcd" */
	const char *etcd_endpoints;  /* http://HOST:PORT,... */
	const char *group;           /* the group's name: keys under /tpc/<group>/ */
	uint32_t lease_ms;           /* the leader lease */
	const char *advertise;       /* the address a standby names (default: listen) */
	enum tpc_log_level log_level;
	/* Admin API (docs/admin-api.md) */
	const char *admin;           /* HOST:PORT, or "off"; default 127.0.0.1:7401 */
	int admin_explicit;          /* given by the operator: failing to bind stops the start
					(the default address only logs a warning and goes on) */
	const char *admin_token_file; /* bearer token for mutating calls, or NULL */
	uint64_t stuck_after_ms;     /* COMMITTING longer than this is "stuck" (default 30s) */
	int allow_fault_injection;   /* POST/GET /v1/faults */
	int inline_sync;             /* force a lone log write on the loop (batch_writer_set_inline) */
	int require_txn_token;       /* a Join must carry its transaction's token (default off) */
	/* Mutual TLS on the protocol port and the admin listener (common/tls.h); the files
	 * are read again on every SIGHUP (new connections get the new certificate). */
	const char *tls_cert, *tls_key, *tls_ca;
	int tls_mode;                /* enum coord_tls_mode */
	/* Running it (config.h): compaction pace, and where SIGHUP re-reads the config. */
	uint32_t sweep_interval_ms;  /* log compaction pass every this long (default 10s) */
	uint32_t sweep_limit;        /* entries one pass deletes per database (default 10000) */
	struct coord_cmdline *cmdline; /* --config file and options; NULL: SIGHUP only logs */
};

/** --tls: AUTO (the default) is REQUIRED once --tls-cert is given, else OFF. */
enum coord_tls_mode { COORD_TLS_AUTO = 0, COORD_TLS_OFF, COORD_TLS_REQUIRED };

/** @brief Whether @p cfg serves TLS (--tls required, or a certificate and not off). */
int coord_config_tls_on(const struct coord_config *cfg);

/** File descriptors kept beside max_conns (log, listeners, admin clients, the loop). */
#define COORD_FD_RESERVE 64

/**
 * @brief Make RLIMIT_NOFILE allow @p max_conns connections plus COORD_FD_RESERVE:
 *        raise the soft limit (up to the hard limit) when it is lower.
 * @return 0, or -EMFILE when the hard limit is too low (or the raise failed), with a
 *         message naming both numbers in @p err.
 */
int coord_fd_limit_fit(uint32_t max_conns, char *err, size_t errlen);

struct coord_server;

/**
 * @brief Open the log, bump the epoch (D7), load undelivered decisions, bind the
 *        listener. Nothing is served before this returns.
 * @return the server, or NULL with a message already logged.
 */
struct coord_server *coord_server_new(const struct coord_config *cfg);

/** @brief Run until SIGTERM/SIGINT. @return 0 on a clean stop. */
int coord_server_run(struct coord_server *s);

/** @brief Stop accepting, finish log writes, close connections and the log, free. */
void coord_server_free(struct coord_server *s);

#endif
