/*
 * pg_scan.c - the PostgreSQL participant's orphan scanner: at start and every
 * scan_interval_ms it lists pg_prepared_xacts with this participant's prefix and
 * resolves each one nobody else handles through the coordinator, so no prepared
 * transaction of this participant outlives its resolution.
 *
 * Who handles what (checked after the PostgreSQL snapshot is taken, so a transaction
 * finished meanwhile is at worst asked about and its COMMIT/ROLLBACK PREPARED finds
 * nothing to do): a txid in pg->txns belongs to this process's sink; a txid in the
 * participant's state folder is resolved by the participant itself (its decision
 * reaches the sink). The rest are orphans: asked with a status query on the
 * participant's own connection, committed on COMMITTED, rolled back on ABORTED (presumed
 * abort: the coordinator has no decision and the txid is not live), left alone and
 * reported on PENDING past unresolved_after_ms, FORGOTTEN, or an unreachable
 * coordinator. Nothing is guessed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_int.h"
#include "wire.h"

static const char *const list_sql =
	"SELECT x.gid,"
	" (extract(epoch FROM now() - x.prepared) * 1000)::bigint,"
	" (SELECT count(*) FROM pg_locks l WHERE l.pid IS NULL AND l.virtualtransaction ="
	"   (SELECT v.virtualtransaction FROM pg_locks v WHERE v.pid IS NULL"
	"     AND v.locktype = 'transactionid' AND v.transactionid = x.transaction LIMIT 1))"
	" FROM pg_prepared_xacts x"
	" WHERE x.database = current_database() AND starts_with(x.gid, $1)"
	" ORDER BY x.prepared";

struct scan_ctx {
	tpc_prepared_info *known; /* the state folder's prepared transactions */
	size_t nknown;
	tpc_pg_unresolved *unres;
	size_t nunres;
};

static int held_here(struct tpc_pg *pg, const struct scan_ctx *s, tpc_txid txid)
{
	pthread_mutex_lock(&pg->mu);
	int held = u64map_get(&pg->txns, txid) != NULL;
	pthread_mutex_unlock(&pg->mu);
	for (size_t i = 0; !held && i < s->nknown; i++)
		held = s->known[i].txid == txid;
	return held;
}

/* In the previous scan's list: it was logged then. */
static int was_unresolved(struct tpc_pg *pg, tpc_txid txid)
{
	int found = 0;

	pthread_mutex_lock(&pg->mu);
	for (size_t i = 0; !found && i < pg->nunres; i++)
		found = pg->unres[i].txid == txid;
	pthread_mutex_unlock(&pg->mu);
	return found;
}

static void report(struct tpc_pg *pg, struct scan_ctx *s, const char *gid, tpc_txid txid,
		   uint64_t age, uint32_t locks, tpc_status st, int err)
{
	tpc_pg_unresolved *v = realloc(s->unres, (s->nunres + 1) * sizeof(*v));

	if (!v)
		return;
	s->unres = v;
	v += s->nunres++;
	memset(v, 0, sizeof(*v));
	v->txid = txid;
	snprintf(v->gid, sizeof(v->gid), "%s", gid);
	v->age_ms = age;
	v->locks = locks;
	v->status = st;
	v->err = err;
	if (was_unresolved(pg, txid))
		return; /* logged when it first became unresolved */
	pg_logf(pg, TPC_LOG_LEVEL_WARN, "prepared transaction '%s' unresolved for %llu ms, "
		"holding %u locks: %s", gid, (unsigned long long)age, locks,
		err ? tpc_strerror(err) : tpc_status_str(st));
}

/* One orphan: ask, then commit, roll back or report. */
static void resolve(struct tpc_pg *pg, struct scan_ctx *s, const char *gid, tpc_txid txid,
		    uint64_t age, uint32_t locks)
{
	tpc_status st = TPC_STATUS_PENDING;
	char err[512];
	/* As the participant, on its own connection: ABORTED, not FORGOTTEN, below the
	 * coordinator's forget horizon. */
	int already, rc = tpc_participant_query_status(pg->p, txid, 5000, &st);

	if (rc || st == TPC_STATUS_FORGOTTEN ||
	    (st == TPC_STATUS_PENDING && age >= pg->cfg.unresolved_after_ms)) {
		report(pg, s, gid, txid, age, locks, st, rc);
		return;
	}
	if (st == TPC_STATUS_PENDING)
		return;
	int commit = st == TPC_STATUS_COMMITTED;
	rc = pg_finish_prepared(pg, pg->scan_conn, gid, commit, &already, err, sizeof(err));
	if (rc) {
		pg_logf(pg, TPC_LOG_LEVEL_WARN, "orphan '%s': %s PREPARED failed: %s", gid,
			commit ? "COMMIT" : "ROLLBACK", err);
		report(pg, s, gid, txid, age, locks, st, rc);
		return;
	}
	pg_logf(pg, TPC_LOG_LEVEL_INFO, "orphan '%s' %s (the coordinator says %s)", gid,
		commit ? "committed" : "rolled back", tpc_status_str(st));
	pthread_mutex_lock(&pg->mu);
	if (commit)
		pg->stats.orphans_committed++;
	else
		pg->stats.orphans_rolled_back++;
	pthread_mutex_unlock(&pg->mu);
}

static int scan_rows(struct tpc_pg *pg, struct scan_ctx *s)
{
	const char *params[1] = { pg->prefix };
	PGresult *r = PQexecParams(pg->scan_conn, list_sql, 1, NULL, params, NULL, NULL, 0);

	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_set_err(pg, "listing pg_prepared_xacts: %s", PQerrorMessage(pg->scan_conn));
		PQclear(r);
		return -EIO;
	}
	/* The folder's list after the snapshot: see the file's header. */
	tpc_participant_list_prepared(pg->p, &s->known, &s->nknown);
	size_t plen = strlen(pg->prefix);
	for (int i = 0; i < PQntuples(r); i++) {
		const char *gid = PQgetvalue(r, i, 0);
		tpc_txid txid = strtoull(gid + plen, NULL, 10);
		if (!txid || held_here(pg, s, txid))
			continue;
		resolve(pg, s, gid, txid, strtoull(PQgetvalue(r, i, 1), NULL, 10),
			(uint32_t)strtoul(PQgetvalue(r, i, 2), NULL, 10));
	}
	PQclear(r);
	return 0;
}

/* Tell the coordinator (its admin API lists them): when there are some, or to clear
 * the last report. Not connected: the next scan tries again. */
static void send_unresolved(struct tpc_pg *pg, const tpc_pg_unresolved *v, size_t n,
			    size_t before)
{
	tpc_orphan o[TPC_WIRE_MAX_ORPHANS];
	char why[TPC_WIRE_MAX_ORPHANS][96];

	if (!n && !before)
		return;
	n = n < TPC_WIRE_MAX_ORPHANS ? n : TPC_WIRE_MAX_ORPHANS;
	for (size_t i = 0; i < n; i++) {
		snprintf(why[i], sizeof(why[i]), v[i].err ? "the coordinator could not be asked: %s"
			 : "the coordinator says %s", v[i].err ? tpc_strerror(v[i].err)
			 : tpc_status_str(v[i].status));
		o[i] = (tpc_orphan){ v[i].txid, v[i].gid, v[i].age_ms, v[i].locks, why[i] };
	}
	int rc = tpc_participant_report_orphans(pg->p, o, n);
	if (rc)
		pg_logf(pg, TPC_LOG_LEVEL_DEBUG, "orphans not reported to the coordinator: %s",
			tpc_strerror(rc));
}

int tpc_pg_scan(tpc_pg *pg)
{
	struct scan_ctx s = { 0 };

	pthread_mutex_lock(&pg->scan_mu);
	int rc = pg_ensure(pg, &pg->scan_conn);
	if (!rc)
		rc = scan_rows(pg, &s);
	pthread_mutex_unlock(&pg->scan_mu);
	free(s.known);
	if (rc) {
		free(s.unres);
		return rc;
	}
	pthread_mutex_lock(&pg->mu);
	size_t before = pg->nunres;
	pthread_mutex_unlock(&pg->mu);
	send_unresolved(pg, s.unres, s.nunres, before);
	pthread_mutex_lock(&pg->mu);
	free(pg->unres);
	pg->unres = s.unres;
	pg->nunres = s.nunres;
	pg->stats.scans++;
	pg->stats.unresolved = s.nunres;
	pthread_mutex_unlock(&pg->mu);
	return (int)s.nunres;
}

int tpc_pg_list_unresolved(tpc_pg *pg, tpc_pg_unresolved **out, size_t *n)
{
	int rc = 0;

	pthread_mutex_lock(&pg->mu);
	*n = pg->nunres;
	*out = NULL;
	if (pg->nunres) {
		*out = malloc(pg->nunres * sizeof(**out));
		if (*out)
			memcpy(*out, pg->unres, pg->nunres * sizeof(**out));
		else {
			*n = 0;
			rc = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&pg->mu);
	return rc;
}

static void *scan_main(void *arg)
{
	struct tpc_pg *pg = arg;
	struct timespec until;

	pthread_mutex_lock(&pg->mu);
	while (!pg->scan_stop) {
		pthread_mutex_unlock(&pg->mu);
		int rc = tpc_pg_scan(pg);
		if (rc < 0)
			pg_logf(pg, TPC_LOG_LEVEL_WARN, "orphan scan failed: %s", tpc_strerror(rc));
		part_deadline(&until, pg->cfg.scan_interval_ms);
		pthread_mutex_lock(&pg->mu);
		while (!pg->scan_stop &&
		       pthread_cond_timedwait(&pg->scan_cv, &pg->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&pg->mu);
	return NULL;
}

int pg_scan_start(struct tpc_pg *pg)
{
	int rc = pthread_create(&pg->scan_thread, NULL, scan_main, pg);

	if (rc)
		return -rc;
	pg->scan_running = 1;
	return 0;
}

void pg_scan_stop(struct tpc_pg *pg)
{
	if (!pg->scan_running)
		return;
	pthread_mutex_lock(&pg->mu);
	pg->scan_stop = 1;
	pthread_cond_signal(&pg->scan_cv);
	pthread_mutex_unlock(&pg->mu);
	pthread_join(pg->scan_thread, NULL);
	pg->scan_running = 0;
}
