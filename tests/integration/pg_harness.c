/*
 * pg_harness.c - the PostgreSQL cluster of integration tests (pg_harness.h): runs
 * scripts/pg-harness.sh (TPC_PG_HARNESS) and reads the port it chose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pg_harness.h"
#include "proc.h"

#define PG_START_MS 180000 /* initdb and the first start, on a loaded machine */

static int harness(char *const argv[], char *out, size_t cap)
{
	int st = -1;
	int rc = tpc_run_capture(argv, out, cap, PG_START_MS, &st);

	if (rc)
		return rc;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int pg_cluster_start(struct pg_cluster *pg, const char *dir)
{
	char out[1024];
	char *check[] = { "/bin/bash", TPC_PG_HARNESS, "check", NULL };
	char *start[] = { "/bin/bash", TPC_PG_HARNESS, "start", (char *)dir, NULL };

	if (harness(check, out, sizeof(out)) == 77) {
		fprintf(stderr, "PostgreSQL is not installed: skipped "
			"(scripts/install-deps.sh installs postgresql-15)\n");
		return 77;
	}
	if (pg->dir != dir) /* a restart passes pg->dir itself */
		snprintf(pg->dir, sizeof(pg->dir), "%s", dir);
	assert_int_equal(harness(start, out, sizeof(out)), 0);
	const char *p = strstr(out, "PGPORT=");
	assert_non_null(p);
	pg->port = atoi(p + 7);
	assert_true(pg->port > 0);
	pg->running = 1;
	return 0;
}

void pg_cluster_stop(struct pg_cluster *pg, const char *mode)
{
	char out[256];
	char *stop[] = { "/bin/bash", TPC_PG_HARNESS, "stop", pg->dir, (char *)mode, NULL };

	if (!pg->running)
		return;
	assert_int_equal(harness(stop, out, sizeof(out)), 0);
	pg->running = 0;
}

void pg_conninfo(const struct pg_cluster *pg, const char *db, char *out, size_t cap)
{
	snprintf(out, cap, "host=%s port=%d user=tpc dbname=%s", pg->dir, pg->port, db);
}

PGconn *pg_open(const struct pg_cluster *pg, const char *db)
{
	char ci[PATH_MAX + 64];

	pg_conninfo(pg, db, ci, sizeof(ci));
	PGconn *c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect to %s: %s", ci, PQerrorMessage(c));
	return c;
}

void pg_new_db(struct pg_cluster *pg, char *name, size_t cap)
{
	char sql[64];
	PGconn *c = pg_open(pg, "postgres");

	snprintf(name, cap, "t%d_%d", (int)getpid(), ++pg->ndbs);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

long long pg_scalar(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	long long v = PQgetisnull(r, 0, 0) ? 0 : atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_wait_scalar(PGconn *c, const char *sql, long long want, int timeout_ms)
{
	struct timespec ts = { 0, 20 * 1000000L };
	long long v = 0, until = mono_ms() + timeout_ms;

	for (;;) {
		if (PQstatus(c) != CONNECTION_OK)
			PQreset(c);
		v = pg_scalar(c, sql);
		if (v == want || mono_ms() > until)
			break;
		nanosleep(&ts, NULL);
	}
	if (v != want)
		fail_msg("%s gave %lld, not %lld, after %d ms", sql, v, want, timeout_ms);
}
