/*
 * pg_part.c - the PostgreSQL participant's handle (tpc/pg.h): create and free, the
 * connection pool, lending a connection bound to a txid (tpc_pg_txn(), which joins the
 * transaction through the participant stub by staging one marker write), stats and
 * errors. The sink (pg_sink.c) and the orphan scanner (pg_scan.c) do the two-phase
 * commit itself.
 *
 * Invariant: a txid has at most one entry in pg->txns, and while it is OPEN its
 * connection is out of the pool; it goes back at PREPARE TRANSACTION, at a NO vote or
 * at an abort (rolled back first).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_int.h"

#define PG_MARKER_KEY "pg"

static const char *const create_sql =
	"CREATE TABLE IF NOT EXISTS tpc_applied ("
	" gid text PRIMARY KEY,"
	" txid numeric(20) NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now())";

void pg_logf(struct tpc_pg *pg, int level, const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	if (!pg->cfg.part.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pg->cfg.part.log(pg->cfg.part.log_arg, level, buf);
}

void pg_set_err(struct tpc_pg *pg, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&pg->mu);
	va_start(ap, fmt);
	vsnprintf(pg->errmsg, sizeof(pg->errmsg), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&pg->mu);
}

void pg_one_line(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	if (src && (!strncmp(src, "ERROR:  ", 8) || !strncmp(src, "FATAL:  ", 8)))
		src += 8;
	for (; src && *src && *src != '\n' && i + 1 < cap; src++)
		dst[i++] = (*src == '\n' || *src == '\r') ? ' ' : *src;
	while (i && dst[i - 1] == ' ')
		i--;
	if (cap)
		dst[i] = '\0';
}

PGconn *pg_connect(struct tpc_pg *pg, char *err, size_t errlen)
{
	PGconn *c = PQconnectdb(pg->conninfo);

	if (c && PQstatus(c) == CONNECTION_OK)
		return c;
	pg_one_line(err, errlen, c ? PQerrorMessage(c) : "out of memory");
	PQfinish(c);
	return NULL;
}

int pg_ensure(struct tpc_pg *pg, PGconn **c)
{
	char err[256];

	if (*c && PQstatus(*c) == CONNECTION_OK)
		return 0;
	if (*c) {
		PQreset(*c);
		if (PQstatus(*c) == CONNECTION_OK)
			return 0;
		PQfinish(*c);
	}
	*c = pg_connect(pg, err, sizeof(err));
	if (*c)
		return 0;
	pg_set_err(pg, "cannot connect to PostgreSQL: %s", err);
	return -ECONNREFUSED;
}

int pg_run(PGconn *c, const char *sql, int nparams, const char *const *params,
	   ExecStatusType want, char *err, size_t errlen, char state[6])
{
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc = 0;

	if (state)
		state[0] = '\0';
	if (!r || PQresultStatus(r) != want) {
		const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		pg_one_line(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
		if (err && errlen && !err[0])
			pg_one_line(err, errlen, PQerrorMessage(c));
		if (state && st)
			snprintf(state, 6, "%.5s", st);
		rc = -EIO;
	}
	PQclear(r);
	return rc;
}

void pg_gid(const struct tpc_pg *pg, tpc_txid txid, char gid[PG_GID_MAX])
{
	snprintf(gid, PG_GID_MAX, "%s%llu", pg->prefix, (unsigned long long)txid);
}

void pg_pool_put_locked(struct tpc_pg *pg, PGconn *c)
{
	if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE) {
		PQfinish(c);
		pg->nmade--;
	} else {
		pg->idle[pg->nidle++] = c;
	}
	pthread_cond_signal(&pg->pool_cv);
}

void tpc_pg_config_init(tpc_pg_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	tpc_participant_config_init(&cfg->part);
	cfg->pool_size = 8;
	cfg->pool_wait_ms = 5000;
	cfg->scan_interval_ms = 10000;
	cfg->unresolved_after_ms = 60000;
}

static int copy_cfg(struct tpc_pg *pg, const tpc_pg_config *cfg)
{
	pg->cfg = *cfg;
	if (!pg->cfg.pool_size)
		pg->cfg.pool_size = 8;
	if (!pg->cfg.pool_wait_ms)
		pg->cfg.pool_wait_ms = 5000;
	if (!pg->cfg.scan_interval_ms)
		pg->cfg.scan_interval_ms = 10000;
	if (!pg->cfg.unresolved_after_ms)
		pg->cfg.unresolved_after_ms = 60000;
	pg->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
	pg->idle = calloc(pg->cfg.pool_size, sizeof(*pg->idle));
	if (!pg->conninfo || !pg->idle)
		return -ENOMEM;
	return 0;
}

/* Check two-phase commit is on and make tpc_applied; on loop_conn. */
static int setup_db(struct tpc_pg *pg)
{
	char err[256];
	PGresult *r = PQexec(pg->loop_conn, "SHOW max_prepared_transactions");
	int n = (r && PQresultStatus(r) == PGRES_TUPLES_OK) ? atoi(PQgetvalue(r, 0, 0)) : -1;

	PQclear(r);
	if (n == 0) {
		pg_logf(pg, TPC_LOG_LEVEL_ERROR, "PostgreSQL has max_prepared_transactions = 0: "
			"two-phase commit is off (set it above 0 and restart PostgreSQL)");
		return -ENOTSUP;
	}
	if (pg_run(pg->loop_conn, create_sql, 0, NULL, PGRES_COMMAND_OK, err, sizeof(err), NULL) &&
	    pg_run(pg->loop_conn, create_sql, 0, NULL, PGRES_COMMAND_OK, err, sizeof(err), NULL)) {
		pg_logf(pg, TPC_LOG_LEVEL_ERROR, "cannot make table tpc_applied: %s", err);
		return -EIO;
	}
	return 0;
}

static int open_conns(struct tpc_pg *pg)
{
	char err[256];

	pg->loop_conn = pg_connect(pg, err, sizeof(err));
	if (pg->loop_conn)
		pg->writer_conn = pg_connect(pg, err, sizeof(err));
	if (pg->writer_conn)
		pg->scan_conn = pg_connect(pg, err, sizeof(err));
	if (!pg->scan_conn) {
		pg_logf(pg, TPC_LOG_LEVEL_ERROR, "cannot connect to PostgreSQL: %s", err);
		return -ECONNREFUSED;
	}
	return setup_db(pg);
}

/* The participant, its identity's prefix, started on its own thread. */
static int open_participant(struct tpc_pg *pg)
{
	char id[33];
	int rc;
	tpc_sink *sink = pg_sink_new(pg);

	if (!sink)
		return -ENOMEM;
	pg->p = tpc_participant_new(&pg->cfg.part, sink, &rc);
	if (!pg->p)
		return rc;
	tpc_participant_identity(pg->p, id, NULL);
	snprintf(pg->prefix, sizeof(pg->prefix), "tpc_%s_", id);
	rc = tpc_participant_start(pg->p);
	if (rc)
		pg_logf(pg, TPC_LOG_LEVEL_ERROR, "cannot start the participant: %s",
			tpc_participant_errmsg(pg->p));
	return rc;
}

tpc_pg *tpc_pg_new(const tpc_pg_config *cfg, int *err)
{
	struct tpc_pg *pg = calloc(1, sizeof(*pg));
	int rc = pg ? 0 : -ENOMEM;

	if (pg) {
		pthread_mutex_init(&pg->mu, NULL);
		pthread_mutex_init(&pg->scan_mu, NULL);
		pthread_cond_init(&pg->pool_cv, NULL);
		pthread_cond_init(&pg->scan_cv, NULL);
		u64map_init(&pg->txns);
		rc = copy_cfg(pg, cfg);
	}
	if (!rc)
		rc = open_conns(pg);
	if (!rc)
		rc = open_participant(pg);
	if (!rc)
		rc = pg_scan_start(pg);
	if (rc) {
		tpc_pg_free(pg);
		pg = NULL;
	}
	if (err)
		*err = rc;
	return pg;
}

/* Roll back and close what is still lent; prepared ones stay in PostgreSQL. */
static void drop_txns(struct tpc_pg *pg)
{
	struct u64map_iter it;

	for (struct pg_txn *t = u64map_iter_first(&it, &pg->txns); t; t = u64map_iter_next(&it)) {
		if (t->c)
			PQfinish(t->c); /* closing the session rolls the open block back */
		u64map_del(&pg->txns, t->txid);
		free(t);
	}
	u64map_iter_end(&it);
}

void tpc_pg_free(tpc_pg *pg)
{
	if (!pg)
		return;
	pg_scan_stop(pg);
	tpc_participant_free(pg->p); /* after this no sink call runs */
	drop_txns(pg);
	u64map_free(&pg->txns);
	for (size_t i = 0; i < pg->nidle; i++)
		PQfinish(pg->idle[i]);
	PQfinish(pg->loop_conn);
	PQfinish(pg->writer_conn);
	PQfinish(pg->scan_conn);
	free(pg->unres);
	free(pg->idle);
	free(pg->conninfo);
	pthread_cond_destroy(&pg->pool_cv);
	pthread_cond_destroy(&pg->scan_cv);
	pthread_mutex_destroy(&pg->scan_mu);
	pthread_mutex_destroy(&pg->mu);
	free(pg);
}

/* A pooled connection (made when the pool is not full), waiting up to pool_wait_ms. */
static PGconn *pool_get(struct tpc_pg *pg, int *err)
{
	struct timespec until;
	char msg[256];

	part_deadline(&until, pg->cfg.pool_wait_ms);
	pthread_mutex_lock(&pg->mu);
	while (!pg->nidle && pg->nmade >= pg->cfg.pool_size)
		if (pthread_cond_timedwait(&pg->pool_cv, &pg->mu, &until) == ETIMEDOUT)
			break;
	if (pg->nidle) {
		PGconn *c = pg->idle[--pg->nidle];
		pthread_mutex_unlock(&pg->mu);
		return c;
	}
	if (pg->nmade >= pg->cfg.pool_size) {
		pthread_mutex_unlock(&pg->mu);
		pg_set_err(pg, "no free PostgreSQL connection within %u ms (pool_size %u)",
			   pg->cfg.pool_wait_ms, pg->cfg.pool_size);
		*err = TPC_ELIMIT;
		return NULL;
	}
	pg->nmade++;
	pthread_mutex_unlock(&pg->mu);
	PGconn *c = pg_connect(pg, msg, sizeof(msg));
	if (!c) {
		pthread_mutex_lock(&pg->mu);
		pg->nmade--;
		pthread_mutex_unlock(&pg->mu);
		pg_set_err(pg, "cannot connect to PostgreSQL: %s", msg);
		*err = -ECONNREFUSED;
	}
	return c;
}

static void pool_put(struct tpc_pg *pg, PGconn *c)
{
	pthread_mutex_lock(&pg->mu);
	pg_pool_put_locked(pg, c);
	pthread_mutex_unlock(&pg->mu);
}

/* The existing entry of @p txid lent again, or NULL with *err set (0: none yet). */
static PGconn *lend_again(struct tpc_pg *pg, tpc_txid txid, int *err)
{
	PGconn *c = NULL;

	pthread_mutex_lock(&pg->mu);
	struct pg_txn *t = u64map_get(&pg->txns, txid);
	*err = 0;
	if (t && (t->state != PGT_OPEN || t->aborted))
		*err = TPC_ENOTACTIVE;
	else if (t && t->lent)
		*err = TPC_ESTATE;
	else if (t) {
		t->lent = 1;
		c = t->c;
	}
	pthread_mutex_unlock(&pg->mu);
	return c;
}

/* BEGIN; a pooled connection PostgreSQL closed (it restarted) is reset once. */
static int begin_block(PGconn *c, char *msg, size_t len)
{
	if (!pg_run(c, "BEGIN", 0, NULL, PGRES_COMMAND_OK, msg, len, NULL))
		return 0;
	if (PQstatus(c) == CONNECTION_OK)
		return -EIO;
	PQreset(c);
	if (PQstatus(c) != CONNECTION_OK)
		return -EIO;
	return pg_run(c, "BEGIN", 0, NULL, PGRES_COMMAND_OK, msg, len, NULL);
}

/* BEGIN on a pooled connection and enter it as OPEN and lent. */
static PGconn *begin_new(struct tpc_pg *pg, tpc_txid txid, int *err)
{
	char msg[256];
	PGconn *c = pool_get(pg, err);
	struct pg_txn *t = c ? calloc(1, sizeof(*t)) : NULL;

	if (!c)
		return NULL;
	if (!t)
		*err = -ENOMEM;
	else if (begin_block(c, msg, sizeof(msg))) {
		pg_set_err(pg, "BEGIN failed: %s", msg);
		*err = -EIO;
	}
	pthread_mutex_lock(&pg->mu);
	if (!*err && u64map_get(&pg->txns, txid))
		*err = TPC_ESTATE; /* another thread began it meanwhile */
	if (!*err && u64map_put(&pg->txns, txid, t))
		*err = -ENOMEM;
	if (!*err) {
		*t = (struct pg_txn){ .txid = txid, .c = c, .state = PGT_OPEN, .lent = 1 };
		pg->stats.begun++;
	}
	pthread_mutex_unlock(&pg->mu);
	if (!*err)
		return c;
	free(t);
	if (PQtransactionStatus(c) != PQTRANS_IDLE)
		PQclear(PQexec(c, "ROLLBACK"));
	pool_put(pg, c);
	return NULL;
}

/* Undo begin_new() after a failed join. */
static void unbegin(struct tpc_pg *pg, tpc_txid txid)
{
	pthread_mutex_lock(&pg->mu);
	struct pg_txn *t = u64map_del(&pg->txns, txid);
	pthread_mutex_unlock(&pg->mu);
	if (!t)
		return;
	PQclear(PQexec(t->c, "ROLLBACK"));
	pool_put(pg, t->c);
	free(t);
}

PGconn *tpc_pg_txn_token(tpc_pg *pg, tpc_txid txid, const uint8_t *token, size_t token_len,
			 int *err)
{
	int rc;
	PGconn *c = lend_again(pg, txid, &rc);

	if (!c && !rc) {
		c = begin_new(pg, txid, &rc);
		if (c) {
			rc = tpc_participant_stage_token_wait(pg->p, txid, token, token_len,
							      PG_MARKER_KEY, 2, "", 0);
			if (rc) {
				pg_set_err(pg, "txid %llu: join failed: %s",
					   (unsigned long long)txid, tpc_strerror(rc));
				unbegin(pg, txid);
				c = NULL;
			}
		}
	}
	if (err)
		*err = rc;
	return c;
}

PGconn *tpc_pg_txn(tpc_pg *pg, tpc_txid txid, int *err)
{
	return tpc_pg_txn_token(pg, txid, NULL, 0, err);
}

void tpc_pg_release(tpc_pg *pg, tpc_txid txid)
{
	pthread_mutex_lock(&pg->mu);
	struct pg_txn *t = u64map_get(&pg->txns, txid);
	if (t)
		t->lent = 0;
	if (!t || !t->aborted) {
		pthread_mutex_unlock(&pg->mu);
		return;
	}
	u64map_del(&pg->txns, txid);
	pg->stats.rolled_back++;
	pthread_mutex_unlock(&pg->mu);
	PQclear(PQexec(t->c, "ROLLBACK"));
	pool_put(pg, t->c);
	free(t);
}

tpc_participant *tpc_pg_participant(tpc_pg *pg)
{
	return pg->p;
}

const char *tpc_pg_gid_prefix(const tpc_pg *pg)
{
	return pg->prefix;
}

void tpc_pg_get_stats(tpc_pg *pg, tpc_pg_stats *out)
{
	pthread_mutex_lock(&pg->mu);
	*out = pg->stats;
	pthread_mutex_unlock(&pg->mu);
}

const char *tpc_pg_errmsg(tpc_pg *pg)
{
	return pg->errmsg;
}
