/*
 * ledger_bench.c - pg-ledger's bench command: THREADS closed-loop clients move 1 between
 * random accounts for SECONDS, either through tpc (begin, the SQL on the connection
 * tpc_pg_txn() lends, commit through the coordinator: PREPARE TRANSACTION and COMMIT
 * PREPARED underneath) or as the same statements in a plain PostgreSQL transaction
 * (BEGIN ... COMMIT on a connection of the thread's own), so the two can be compared on
 * one machine in one run. Prints the count, throughput and p50/p99 latency; CPU is
 * measured from outside (scripts/bench-pg.sh).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"

#define LAT_MAX 1000000

struct worker {
	struct ledger *l;
	int id, direct;
	uint64_t until_ns;
	unsigned seed;
	uint64_t *lat;
	size_t n;
	uint64_t committed, aborted;
	pthread_t th;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same statements as a plain PostgreSQL transaction. @return 'c' or 'a'. */
static int direct_transfer(PGconn *c, tpc_txid id, int from, int to)
{
	char err[512];
	PGresult *r = PQexec(c, "BEGIN");

	PQclear(r);
	ledger_run_sql(c, id, from, to, 1, err, sizeof(err));
	r = PQexec(c, err[0] ? "ROLLBACK" : "COMMIT");
	int ok = !err[0] && PQresultStatus(r) == PGRES_COMMAND_OK &&
		 !strcmp(PQcmdStatus(r), "COMMIT");
	PQclear(r);
	return ok ? 'c' : 'a';
}

static void *work(void *arg)
{
	struct worker *w = arg;
	tpc_client_config cc;
	tpc_client *cl = NULL;
	PGconn *c = NULL;
	char msg[512];
	int err, n = w->l->accounts;
	uint64_t seq = 0;

	tpc_client_config_init(&cc);
	cc.coordinator = w->l->coordinator;
	if (w->direct)
		c = PQconnectdb(w->l->conninfo);
	else
		cl = tpc_client_new(&cc, &err);
	while ((w->direct ? PQstatus(c) == CONNECTION_OK : cl != NULL) && mono_ns() < w->until_ns &&
	       w->n < LAT_MAX) {
		int from = 1 + (int)(rand_r(&w->seed) % (unsigned)n);
		int to = 1 + (from + (int)(rand_r(&w->seed) % (unsigned)(n - 1))) % n;
		tpc_txid txid = (1ull << 62) + ((uint64_t)w->id << 40) + ++seq;
		uint64_t t0 = mono_ns();
		int k = w->direct ? direct_transfer(c, txid, from, to)
				  : ledger_transfer(w->l, cl, from, to, 1, &txid, msg, sizeof(msg));
		w->lat[w->n++] = mono_ns() - t0;
		w->committed += k == 'c';
		w->aborted += k != 'c';
	}
	PQfinish(c);
	tpc_client_free(cl);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(struct worker *w, int threads, int seconds, int direct, uint64_t ns)
{
	size_t total = 0, k = 0;
	uint64_t committed = 0, aborted = 0;

	for (int i = 0; i < threads; i++)
		total += w[i].n;
	uint64_t *all = malloc((total ? total : 1) * sizeof(*all));
	for (int i = 0; all && i < threads; i++) {
		memcpy(all + k, w[i].lat, w[i].n * sizeof(*all));
		k += w[i].n;
		committed += w[i].committed;
		aborted += w[i].aborted;
	}
	if (all)
		qsort(all, total, sizeof(*all), cmp_u64);
	double p50 = all && total ? all[total / 2] / 1e6 : 0;
	double p99 = all && total ? all[total * 99 / 100] / 1e6 : 0;
	printf("bench mode=%s threads=%d seconds=%d committed=%llu aborted=%llu tps=%.1f "
	       "p50_ms=%.3f p99_ms=%.3f\n", direct ? "postgres" : "tpc", threads, seconds,
	       (unsigned long long)committed, (unsigned long long)aborted,
	       committed / (ns / 1e9), p50, p99);
	free(all);
}

void ledger_bench(struct ledger *l, int seconds, int threads, int direct)
{
	struct worker *w = calloc((size_t)threads, sizeof(*w));
	uint64_t start = mono_ns();
	int started = 0;

	for (int i = 0; w && l->accounts > 1 && i < threads; i++, started++) {
		w[i] = (struct worker){ .l = l, .id = i + 1, .direct = direct,
					.until_ns = start + (uint64_t)seconds * 1000000000u,
					.seed = (unsigned)(start + (uint64_t)i) };
		w[i].lat = malloc(LAT_MAX * sizeof(*w[i].lat));
		if (!w[i].lat || pthread_create(&w[i].th, NULL, work, &w[i])) {
			free(w[i].lat);
			break;
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(w[i].th, NULL);
	if (w && started)
		report(w, started, seconds, direct, mono_ns() - start);
	else
		printf("bench error: cannot start (needs 2 accounts or more, and memory)\n");
	for (int i = 0; w && i < started; i++)
		free(w[i].lat);
	free(w);
}
