/*
 * pg_int.h - the PostgreSQL participant's shared state (tpc/pg.h), split over
 * pg_part.c (handle, connection pool, lending), pg_sink.c (the sink: PREPARE
 * TRANSACTION, COMMIT/ROLLBACK PREPARED, tpc_applied) and pg_scan.c (the orphan
 * scanner).
 *
 * Locking: pg->mu guards the pool, the txid table, the stats, the unresolved list and
 * errmsg. It is never held across a PostgreSQL round trip on a lent connection nor
 * across a call into the participant (whose loop thread may be waiting for it).
 * Each thread has its own connection for its own statements: loop_conn (the sink's
 * prepare/abort side), writer_conn (commit/forget), scan_conn (the scanner).
 */
#ifndef TPC_PG_INT_H
#define TPC_PG_INT_H

#include <pthread.h>
#include <time.h>

#include "maps.h"
#include "tpc/pg.h"

#define PG_GID_MAX 64

enum pg_txn_state {
	PGT_OPEN,     /* BEGIN done; the service's statements run on c */
	PGT_PREPARING, /* the sink's prepare() uses c: nobody else may */
	PGT_PREPARED, /* PREPARE TRANSACTION done; c went back to the pool */
	PGT_REFUSED,  /* prepare failed (NO vote); rolled back */
};

struct pg_txn {
	tpc_txid txid;
	PGconn *c;      /* while OPEN */
	uint8_t state;  /* enum pg_txn_state */
	uint8_t lent;   /* the service holds c */
	uint8_t aborted; /* aborted while lent: tpc_pg_release() rolls back */
};

struct tpc_pg {
	tpc_pg_config cfg;
	char *conninfo;            /* owned copy */
	tpc_participant *p;
	char prefix[48];           /* "tpc_<id hex>_" */

	pthread_mutex_t mu;
	pthread_cond_t pool_cv;    /* a connection went back to the pool */
	PGconn **idle;
	size_t nidle, nmade;
	struct u64map txns;        /* txid -> struct pg_txn */
	tpc_pg_stats stats;
	tpc_pg_unresolved *unres;
	size_t nunres;
	char errmsg[512];

	PGconn *loop_conn, *writer_conn, *scan_conn;

	pthread_t scan_thread;
	int scan_running, scan_stop;
	pthread_cond_t scan_cv;
	pthread_mutex_t scan_mu;   /* one scan at a time; guards scan_conn */
};

/* pg_part.c */
void pg_logf(struct tpc_pg *pg, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pg_set_err(struct tpc_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* PostgreSQL's message, first line only, without its "ERROR:  " tag. */
void pg_one_line(char *dst, size_t cap, const char *src);
PGconn *pg_connect(struct tpc_pg *pg, char *err, size_t errlen);
/* A usable connection in *c: reset when it went bad. @return 0 or -ECONNREFUSED. */
int pg_ensure(struct tpc_pg *pg, PGconn **c);
/* Run one statement; 0 when it gave @p want, else -EIO with PostgreSQL's message
 * (one line) in @p err and its SQLSTATE in @p state (6 bytes, may be NULL). */
int pg_run(PGconn *c, const char *sql, int nparams, const char *const *params,
	   ExecStatusType want, char *err, size_t errlen, char state[6]);
/* part_ask.c: @p until = now (CLOCK_REALTIME) + @p ms, for pthread_cond_timedwait. */
void part_deadline(struct timespec *until, uint32_t ms);
void pg_gid(const struct tpc_pg *pg, tpc_txid txid, char gid[PG_GID_MAX]);
/* Give a connection back to the pool (closing it when bad); pg->mu held. */
void pg_pool_put_locked(struct tpc_pg *pg, PGconn *c);

/* pg_sink.c */
tpc_sink *pg_sink_new(struct tpc_pg *pg);
/* COMMIT or ROLLBACK PREPARED @p gid on @p c; a missing gid is checked in tpc_applied.
 * @return 0, or -EIO / -ENOENT with the reason in err. */
int pg_finish_prepared(struct tpc_pg *pg, PGconn *c, const char *gid, int commit,
		       int *already, char *err, size_t errlen);

/* pg_scan.c */
int pg_scan_start(struct tpc_pg *pg);
void pg_scan_stop(struct tpc_pg *pg);

#endif
