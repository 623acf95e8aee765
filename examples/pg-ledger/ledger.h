/*
 * ledger.h - what pg_ledger.c (the service and its commands) and ledger_bench.c (its
 * bench command) share.
 */
#ifndef PG_LEDGER_H
#define PG_LEDGER_H

#include <stddef.h>

#include <tpc/client.h>
#include <tpc/pg.h>

struct ledger {
	tpc_pg *pg;
	tpc_client *client;     /* the command loop's */
	const char *conninfo;
	const char *coordinator;
	int accounts;
};

/* The transfer's statements on @p c; @p err is "" or PostgreSQL's message. */
void ledger_run_sql(PGconn *c, tpc_txid txid, int from, int to, long long amount, char *err,
		    size_t errlen);

/* One transfer through tpc with client @p cl. @return 'c', 'a' or 'u' (see pg_ledger.c). */
int ledger_transfer(struct ledger *l, tpc_client *cl, int from, int to, long long amount,
		    tpc_txid *txid, char *msg, size_t msglen);

/* The bench command: prints one "bench ..." line. */
void ledger_bench(struct ledger *l, int seconds, int threads, int direct);

#endif
