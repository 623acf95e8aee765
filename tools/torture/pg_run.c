/*
 * pg_run.c - the PostgreSQL side of `tpc-torture run --pg`: the throwaway cluster
 * (scripts/pg-harness.sh in DIR/pg), its crashes in the schedule (`pg_ctl stop -m
 * immediate` and a restart, drawn from the seed), and the read-only looks the
 * checkpoints and the checker take at it: the prepared transactions of
 * pg_prepared_xacts, and tt_writes, the PostgreSQL participant's sink
 * (pg_service.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "torture.h"
#include "tpc/common.h"
#include "util.h"

#ifdef TPC_HAVE_PG
#include <libpq-fe.h>

#define PG_CRASH_MIN_MS 15000 /* the runner waits for each restart (a few s) */
#define PG_CRASH_MAX_MS 40000

/* Run `pg-harness.sh VERB DIR [ARG]`; its stdout lines go to @p out (may be NULL). */
static int harness(struct tt_runner *r, const char *verb, const char *arg, char *out,
		   size_t cap)
{
	char cmd[3 * PATH_MAX];
	char line[512];
	FILE *fp;

	snprintf(cmd, sizeof(cmd), "'%s' %s '%s/pg' %s 2>>'%s/logs/postgresql.log'",
		 r->o.pg_harness, verb, r->dir, arg ? arg : "", r->dir);
	if (out && cap)
		out[0] = '\0';
	if (!(fp = popen(cmd, "r")))
		return -errno;
	while (fgets(line, sizeof(line), fp))
		if (out && strlen(out) + strlen(line) < cap)
			strcat(out, line);
	int st = pclose(fp);
	return st == 0 ? 0 : -EIO;
}

/* "NAME=VALUE" of the harness's output. */
static void env_value(const char *out, const char *name, char *v, size_t cap)
{
	const char *p = out;
	size_t n = strlen(name);

	v[0] = '\0';
	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, n) && p[n] == '=') {
			snprintf(v, cap, "%.*s", (int)strcspn(p + n + 1, "\n"), p + n + 1);
			return;
		}
}

int tt_pg_start(struct tt_runner *r)
{
	char out[2048], host[1024], port[16], user[64], db[64];
	int rc = harness(r, "start", NULL, out, sizeof(out));

	if (rc) {
		fprintf(stderr, "tpc-torture: cannot start PostgreSQL with %s (see %s/logs/"
			"postgresql.log)\n", r->o.pg_harness, r->dir);
		return rc;
	}
	env_value(out, "PGHOST", host, sizeof(host));
	env_value(out, "PGPORT", port, sizeof(port));
	env_value(out, "PGUSER", user, sizeof(user));
	env_value(out, "PGDATABASE", db, sizeof(db));
	snprintf(r->pg_conninfo, sizeof(r->pg_conninfo), "host=%s port=%s user=%s dbname=%s",
		 host, port, user, db);
	r->pg_rng = r->o.seed ^ 0x7067ULL;
	/* the first one early, so that even a short run has one */
	r->pg_next_crash_ms = tt_rand_range(&r->pg_rng, 5000, PG_CRASH_MIN_MS);
	return 0;
}

void tt_pg_stop(struct tt_runner *r)
{
	if (r->pg_conninfo[0])
		harness(r, "stop", "fast", NULL, 0);
}

/* The schedule's PostgreSQL crash: stop -m immediate, down for 0.2 to 2 s, start. */
void tt_pg_poll(struct tt_runner *r)
{
	uint64_t now = tt_elapsed(r);

	if (!r->o.pg || !r->pg_conninfo[0] || now < r->pg_next_crash_ms ||
	    now >= r->o.duration_ms || r->o.profile == TT_PROFILE_NONE)
		return;
	uint64_t down = tt_rand_range(&r->pg_rng, 200, 2000);
	r->pg_next_crash_ms = now + tt_rand_range(&r->pg_rng, PG_CRASH_MIN_MS, PG_CRASH_MAX_MS);
	tt_slog(r, "postgresql: pg_ctl stop -m immediate (down %" PRIu64 " ms)", down);
	r->pg_crashes++;
	if (harness(r, "stop", "immediate", NULL, 0))
		tt_slog(r, "postgresql: the immediate stop failed");
	tt_sleep_ms(down);
	int rc = harness(r, "start", NULL, NULL, 0);
	tt_slog(r, "postgresql: %s", rc ? "RESTART FAILED" : "restarted");
	r->pg_restart_failures += rc != 0;
}

static PGresult *query(struct tt_runner *r, PGconn **c, const char *sql)
{
	*c = PQconnectdb(r->pg_conninfo);
	if (PQstatus(*c) != CONNECTION_OK)
		return NULL;
	PGresult *res = PQexec(*c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return NULL;
	}
	return res;
}

int tt_pg_prepared(struct tt_runner *r, uint64_t *txids, size_t cap, size_t *n)
{
	PGconn *c;
	/* gid: tpc_<participant id>_<txid> (tpc/pg.h) */
	PGresult *res = query(r, &c, "SELECT gid FROM pg_prepared_xacts ORDER BY gid");

	*n = 0;
	if (!res) {
		PQfinish(c);
		return -EIO;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *us = strrchr(PQgetvalue(res, i, 0), '_');
		if (*n < cap)
			txids[*n] = us ? strtoull(us + 1, NULL, 10) : 0;
		(*n)++;
	}
	PQclear(res);
	PQfinish(c);
	return 0;
}

static uint64_t be64(const char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

int tt_pg_feed(struct tt_runner *r, struct tt_checker *ck, unsigned part)
{
	PGconn *c = PQconnectdb(r->pg_conninfo);
	/* binary results: the int8 big-endian, the byteas as they were written */
	PGresult *res = PQstatus(c) == CONNECTION_OK
		? PQexecParams(c, "SELECT txid, key, value FROM tt_writes ORDER BY txid", 0, NULL,
			       NULL, NULL, NULL, 1) : NULL;
	int rc = res && PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -EIO;

	if (rc)
		fprintf(stderr, "tpc-torture: cannot read tt_writes: %s\n", PQerrorMessage(c));
	for (int i = 0; !rc && i < PQntuples(res); i++)
		rc = tt_checker_add_sink(ck, part, be64(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1),
					 (size_t)PQgetlength(res, i, 1), PQgetvalue(res, i, 2),
					 (size_t)PQgetlength(res, i, 2));
	PQclear(res);
	PQfinish(c);
	return rc;
}

#else /* !TPC_HAVE_PG: run --pg is refused at parse time */

int tt_pg_start(struct tt_runner *r)
{
	(void)r;
	return -ENOTSUP;
}
void tt_pg_stop(struct tt_runner *r) { (void)r; }
void tt_pg_poll(struct tt_runner *r) { (void)r; }
int tt_pg_prepared(struct tt_runner *r, uint64_t *txids, size_t cap, size_t *n)
{
	(void)r, (void)txids, (void)cap;
	*n = 0;
	return -ENOTSUP;
}
int tt_pg_feed(struct tt_runner *r, struct tt_checker *ck, unsigned part)
{
	(void)r, (void)ck, (void)part;
	return -ENOTSUP;
}

#endif
