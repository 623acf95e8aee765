/*
 * pg_sink.c - the PostgreSQL participant's sink (tpc/sink.h): prepare() records the
 * txid in tpc_applied and issues PREPARE TRANSACTION on the transaction's own
 * connection; commit() issues COMMIT PREPARED; abort() rolls the open block or the
 * prepared transaction back; forget() deletes tpc_applied rows (D9).
 *
 * Threads (tpc/sink.h): prepare() and abort() run on the participant's loop thread and
 * use the transaction's connection or pg->loop_conn; commit() and forget() run on its
 * sink-writer thread and use pg->writer_conn. A lent connection is never touched here:
 * prepare() refuses it, abort() leaves the rollback to tpc_pg_release().
 *
 * "Already applied" is checked, never assumed: a COMMIT PREPARED that finds no such
 * global id succeeds only when tpc_applied holds it (written inside the prepared
 * transaction, so it is there exactly when the commit happened).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

#define SQLSTATE_UNDEFINED_OBJECT "42704" /* no prepared transaction with that gid */

/* Refuse with PostgreSQL's words; roll the block back so the connection is reusable. */
static int refuse(PGconn *c, char *reason, size_t len, const char *what, const char *msg)
{
	char line[256];

	pg_one_line(line, sizeof(line), msg);
	snprintf(reason, len, "PostgreSQL: %s%s", what, line);
	if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
		PQclear(PQexec(c, "ROLLBACK"));
	return TPC_EREFUSED;
}

/* On the transaction's connection: the tpc_applied row, then PREPARE TRANSACTION. */
static int prepare_on(struct tpc_pg *pg, PGconn *c, tpc_txid txid, char *reason, size_t len)
{
	char gid[PG_GID_MAX], txt[24], sql[PG_GID_MAX + 32], err[512];
	const char *params[2] = { gid, txt };

	if (PQstatus(c) != CONNECTION_OK)
		return refuse(c, reason, len, "connection lost: ", PQerrorMessage(c));
	if (PQtransactionStatus(c) == PQTRANS_INERROR)
		return refuse(c, reason, len, "a statement failed: ", PQerrorMessage(c));
	if (PQtransactionStatus(c) != PQTRANS_INTRANS)
		return refuse(c, reason, len, "", "the transaction block was ended by the service");
	pg_gid(pg, txid, gid);
	snprintf(txt, sizeof(txt), "%llu", (unsigned long long)txid);
	if (pg_run(c, "INSERT INTO tpc_applied (gid, txid) VALUES ($1, $2)", 2, params,
		   PGRES_COMMAND_OK, err, sizeof(err), NULL))
		return refuse(c, reason, len, "", err);
	snprintf(sql, sizeof(sql), "PREPARE TRANSACTION '%s'", gid);
	PGresult *r = PQexec(c, sql);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK &&
		 !strcmp(PQcmdStatus(r), "PREPARE TRANSACTION");
	if (!ok)
		snprintf(err, sizeof(err), "%s",
			 r && PQresultStatus(r) != PGRES_COMMAND_OK ? PQresultErrorMessage(r)
								     : "the transaction was rolled back");
	PQclear(r);
	return ok ? 0 : refuse(c, reason, len, "", err);
}

static int sink_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t len)
{
	struct tpc_pg *pg = self;

	pthread_mutex_lock(&pg->mu);
	struct pg_txn *t = u64map_get(&pg->txns, txn->txid);
	int usable = t && t->state == PGT_OPEN && !t->lent && !t->aborted;
	int lent = t && t->lent;
	if (usable) /* a late tpc_pg_txn() for it now fails instead of sharing t->c */
		t->state = PGT_PREPARING;
	pthread_mutex_unlock(&pg->mu);
	if (!usable) {
		snprintf(reason, len, lent ? "the service still holds the PostgreSQL connection"
					   : "no open PostgreSQL transaction for this txid");
		return TPC_EREFUSED;
	}
	/* PREPARING, and abort() runs on this thread: nobody else uses t->c now. */
	int rc = prepare_on(pg, t->c, txn->txid, reason, len);
	pthread_mutex_lock(&pg->mu);
	pg_pool_put_locked(pg, t->c);
	t->c = NULL;
	t->state = rc ? PGT_REFUSED : PGT_PREPARED;
	if (rc)
		pg->stats.refused++;
	else
		pg->stats.prepared++;
	pthread_mutex_unlock(&pg->mu);
	if (rc)
		pg_logf(pg, TPC_LOG_LEVEL_INFO, "txid %llu: NO vote: %s",
			(unsigned long long)txn->txid, reason);
	return rc;
}

int pg_finish_prepared(struct tpc_pg *pg, PGconn *c, const char *gid, int commit,
		       int *already, char *err, size_t errlen)
{
	char sql[PG_GID_MAX + 32], state[6];
	const char *params[1] = { gid };

	*already = 0;
	snprintf(sql, sizeof(sql), "%s PREPARED '%s'", commit ? "COMMIT" : "ROLLBACK", gid);
	if (!pg_run(c, sql, 0, NULL, PGRES_COMMAND_OK, err, errlen, state))
		return 0;
	if (strcmp(state, SQLSTATE_UNDEFINED_OBJECT))
		return -EIO;
	PGresult *r = PQexecParams(c, "SELECT 1 FROM tpc_applied WHERE gid = $1", 1, NULL,
				   params, NULL, NULL, 0);
	int st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int found = st == PGRES_TUPLES_OK && PQntuples(r) > 0;
	if (st != PGRES_TUPLES_OK)
		snprintf(err, errlen, "checking tpc_applied: %s", PQerrorMessage(c));
	PQclear(r);
	if (st != PGRES_TUPLES_OK)
		return -EIO;
	*already = found;
	if (commit && !found) {
		snprintf(err, errlen, "%s is neither prepared nor applied in PostgreSQL", gid);
		return -ENOENT;
	}
	if (!commit && found) /* nothing to undo; say so, it contradicts the decision */
		snprintf(err, errlen, "%s was committed in PostgreSQL", gid);
	return 0;
}

static void drop_entry(struct tpc_pg *pg, tpc_txid txid)
{
	struct pg_txn *t = u64map_del(&pg->txns, txid);

	if (t && t->c)
		pg_pool_put_locked(pg, t->c);
	free(t);
}

static int sink_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	struct tpc_pg *pg = self;
	char gid[PG_GID_MAX], err[512] = "";
	int already, rc = pg_ensure(pg, &pg->writer_conn);

	for (size_t i = 0; !rc && i < n; i++) {
		pg_gid(pg, txns[i].txid, gid);
		rc = pg_finish_prepared(pg, pg->writer_conn, gid, 1, &already, err, sizeof(err));
		if (rc) {
			pg_logf(pg, TPC_LOG_LEVEL_ERROR, "COMMIT PREPARED '%s' failed (retried): %s",
				gid, err);
			break;
		}
		pthread_mutex_lock(&pg->mu);
		drop_entry(pg, txns[i].txid);
		if (already)
			pg->stats.already_applied++;
		else
			pg->stats.committed++;
		pthread_mutex_unlock(&pg->mu);
	}
	return rc;
}

/* A prepared (or, after a restart, perhaps prepared) transaction rolled back. */
static void rollback_prepared(struct tpc_pg *pg, tpc_txid txid)
{
	char gid[PG_GID_MAX], err[512];
	int already, rc = pg_ensure(pg, &pg->loop_conn);

	pg_gid(pg, txid, gid);
	if (rc)
		snprintf(err, sizeof(err), "%s", tpc_pg_errmsg(pg));
	else
		rc = pg_finish_prepared(pg, pg->loop_conn, gid, 0, &already, err, sizeof(err));
	if (rc) {
		pg_logf(pg, TPC_LOG_LEVEL_WARN, "ROLLBACK PREPARED '%s' failed (the orphan scan "
			"retries it): %s", gid, err);
		return;
	}
	if (already)
		pg_logf(pg, TPC_LOG_LEVEL_ERROR, "abort of txid %llu: %s",
			(unsigned long long)txid, err);
}

static void sink_abort(void *self, tpc_txid txid)
{
	struct tpc_pg *pg = self;

	pthread_mutex_lock(&pg->mu);
	struct pg_txn *t = u64map_get(&pg->txns, txid);
	int state = t ? t->state : -1;
	if (t && t->state == PGT_OPEN && t->lent) {
		t->aborted = 1; /* the service still runs statements: tpc_pg_release() */
		pthread_mutex_unlock(&pg->mu);
		return;
	}
	PGconn *c = t ? t->c : NULL;
	if (t) {
		t->c = NULL;
		drop_entry(pg, txid);
	}
	if (state == PGT_OPEN || state == PGT_PREPARED)
		pg->stats.rolled_back++;
	pthread_mutex_unlock(&pg->mu);
	if (c) {
		PQclear(PQexec(c, "ROLLBACK"));
		pthread_mutex_lock(&pg->mu);
		pg_pool_put_locked(pg, c);
		pthread_mutex_unlock(&pg->mu);
	} else if (state != PGT_REFUSED) {
		rollback_prepared(pg, txid);
	}
}

/* D9: the participant will never commit these again; their rows may go. */
static void sink_forget(void *self, const tpc_txid *txids, size_t n)
{
	struct tpc_pg *pg = self;
	size_t cap = n * PG_GID_MAX + 3, off = 0;
	char *arr = malloc(cap), gid[PG_GID_MAX], err[256];

	if (!arr || pg_ensure(pg, &pg->writer_conn)) {
		free(arr);
		return;
	}
	arr[off++] = '{';
	for (size_t i = 0; i < n; i++) {
		pg_gid(pg, txids[i], gid);
		off += (size_t)snprintf(arr + off, cap - off, "%s%s", i ? "," : "", gid);
	}
	snprintf(arr + off, cap - off, "}");
	const char *params[1] = { arr };
	if (pg_run(pg->writer_conn, "DELETE FROM tpc_applied WHERE gid = ANY ($1::text[])", 1,
		   params, PGRES_COMMAND_OK, err, sizeof(err), NULL))
		pg_logf(pg, TPC_LOG_LEVEL_WARN, "cannot delete %zu tpc_applied rows (left "
			"behind): %s", n, err);
	free(arr);
}

static const tpc_sink_ops pg_sink_ops = {
	.prepare = sink_prepare,
	.commit = sink_commit,
	.abort = sink_abort,
	.forget = sink_forget,
};

tpc_sink *pg_sink_new(struct tpc_pg *pg)
{
	return tpc_sink_new(&pg_sink_ops, pg);
}
