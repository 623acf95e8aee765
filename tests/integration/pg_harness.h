/*
 * pg_harness.h - a throwaway PostgreSQL cluster for integration tests, through
 * scripts/pg-harness.sh (initdb in a temporary folder as an unprivileged user, two-phase
 * commit on, a free port, the socket in that folder; readiness polled with a deadline),
 * and a few libpq helpers that fail the current cmocka test instead of returning errors.
 */
#ifndef TPC_TESTS_PG_HARNESS_H
#define TPC_TESTS_PG_HARNESS_H

#include <libpq-fe.h>
#include <limits.h>
#include <stddef.h>

struct pg_cluster {
	char dir[PATH_MAX];   /* the run folder: data/, the socket, postgres.log */
	int port;
	int running;
	int ndbs;             /* databases made by pg_new_db() */
};

/**
 * Start (making it the first time) the cluster in @p dir, which must not be the root of
 * a folder other users cannot enter. @return 0; 77 when PostgreSQL is not installed
 * (the reason is printed); fails the test on any other error.
 */
int pg_cluster_start(struct pg_cluster *pg, const char *dir);

/** Stop it: @p mode "fast", or "immediate" (a crash; the next start recovers). */
void pg_cluster_stop(struct pg_cluster *pg, const char *mode);

/** A libpq connection string for database @p db. */
void pg_conninfo(const struct pg_cluster *pg, const char *db, char *out, size_t cap);

/** A fresh database; its name goes to @p name (cap >= 16). */
void pg_new_db(struct pg_cluster *pg, char *name, size_t cap);

/** Connect to @p db (asserts). */
PGconn *pg_open(const struct pg_cluster *pg, const char *db);

/** The first column of the first row of @p sql as an integer (asserts one row). */
long long pg_scalar(PGconn *c, const char *sql);

/** Poll pg_scalar(@p sql) until it equals @p want; fail after @p timeout_ms. */
void pg_wait_scalar(PGconn *c, const char *sql, long long want, int timeout_ms);

#endif
