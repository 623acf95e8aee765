/*
 * pg-ledger: a service that moves money between accounts kept in PostgreSQL, as a tpc
 * participant (tpc/pg.h). It is also its own initiator: each transfer begins a
 * transaction at the coordinator, runs its SQL on the connection the participant lends
 * for that txid, and commits through the coordinator, which drives PostgreSQL's
 * PREPARE TRANSACTION / COMMIT PREPARED. Commands come on stdin, one per line:
 *
 *   transfer FROM TO AMOUNT   prints "committed TXID", "aborted TXID REASON" or
 *                             "unknown TXID" (the outcome could not be learned)
 *   load N ACCOUNTS           N transfers of 1 between random accounts 1..ACCOUNTS,
 *                             one outcome line each, then "load-done"
 *   scan                      one orphan scan now: "scan UNRESOLVED"
 *   stats                     "stats begun=.. prepared=.. ..."
 *   bench SECONDS THREADS DIRECT  THREADS closed-loop clients move 1 between random
 *                             accounts for SECONDS: through tpc (DIRECT 0) or as plain
 *                             PostgreSQL transactions (DIRECT 1); prints "bench ..."
 *                             with the count, throughput and p50/p99 latency
 *   unresolved                "unresolved N", then one line per prepared transaction
 *                             whose outcome could not be learned:
 *                             "orphan GID age_ms=.. locks=.. status=.. error=.."
 *
 * Tables (made if missing): accounts(id, balance >= 0) and transfers(txid, from_id,
 * to_id, amount), whose account references are checked at commit (deferred), so a
 * transfer to an account that does not exist is refused at PREPARE TRANSACTION: the
 * participant votes NO with PostgreSQL's message.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"

static const char *const schema_sql =
	"CREATE TABLE IF NOT EXISTS accounts ("
	" id integer PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));"
	"CREATE TABLE IF NOT EXISTS transfers ("
	" txid numeric(20) PRIMARY KEY,"
	" from_id integer NOT NULL REFERENCES accounts DEFERRABLE INITIALLY DEFERRED,"
	" to_id integer NOT NULL REFERENCES accounts DEFERRABLE INITIALLY DEFERRED,"
	" amount bigint NOT NULL CHECK (amount > 0))";


static void log_line(void *arg, int level, const char *msg)
{
	(void)arg;
	static const char *const names[] = { "debug", "info", "warn", "error" };
	if (level >= TPC_LOG_LEVEL_INFO)
		fprintf(stderr, "pg-ledger: %s: %s\n", names[level & 3], msg);
}

/* The transfer's statements on @p c; @p err is "" or PostgreSQL's message. */
void ledger_run_sql(PGconn *c, tpc_txid txid, int from, int to, long long amount, char *err,
		    size_t errlen)
{
	char t[24], f[16], d[16], a[24];
	const char *p2[2] = { a, f }, *p2b[2] = { a, d }, *p4[4] = { t, f, d, a };
	const char *sql[3] = { "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
			       "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
			       "INSERT INTO transfers VALUES ($1, $2, $3, $4)" };
	const char *const *params[3] = { p2, p2b, p4 };
	int np[3] = { 2, 2, 4 };

	snprintf(t, sizeof(t), "%llu", (unsigned long long)txid);
	snprintf(f, sizeof(f), "%d", from);
	snprintf(d, sizeof(d), "%d", to);
	snprintf(a, sizeof(a), "%lld", amount);
	err[0] = '\0';
	for (int i = 0; i < 3 && !err[0]; i++) {
		PGresult *r = PQexecParams(c, sql[i], np[i], NULL, params[i], NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			snprintf(err, errlen, "%s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
						      ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
						      : PQerrorMessage(c));
		PQclear(r);
	}
}

/* An aborted commit: who voted NO and its own words (PostgreSQL's message), when the
 * coordinator's Outcome names them; else the coordinator's reason already in @p msg. */
static void abort_reason(const tpc_client *cl, char *msg, size_t msglen)
{
	tpc_client_outcome o;

	if (tpc_client_last_outcome(cl, &o) == 0 && o.participant[0])
		snprintf(msg, msglen, "participant \"%s\" voted NO: %s", o.participant,
			 o.participant_reason);
}

/* One transfer: begin, the SQL on the lent connection, commit (or abort on an error).
 * @return 'c' committed, 'a' aborted (why in @p msg), 'u' unknown. */
int ledger_transfer(struct ledger *l, tpc_client *cl, int from, int to, long long amount,
		    tpc_txid *txid, char *msg, size_t msglen)
{
	tpc_outcome out = TPC_OUTCOME_UNKNOWN;
	int rc = tpc_client_begin(cl, NULL, 0, txid, NULL);
	PGconn *c = rc ? NULL : tpc_pg_txn(l->pg, *txid, &rc);

	msg[0] = '\0';
	if (!c) {
		snprintf(msg, msglen, "%s %s", tpc_strerror(rc), tpc_pg_errmsg(l->pg));
		if (*txid)
			tpc_client_abort(cl, *txid, tpc_strerror(rc), &out);
		return 'a';
	}
	ledger_run_sql(c, *txid, from, to, amount, msg, msglen);
	tpc_pg_release(l->pg, *txid);
	if (msg[0]) {
		tpc_client_abort(cl, *txid, msg, &out);
		return 'a';
	}
	rc = tpc_client_commit(cl, *txid, &out, msg, msglen);
	if (!rc && out == TPC_OUTCOME_COMMITTED)
		return 'c';
	if (!rc && out == TPC_OUTCOME_ABORTED) {
		abort_reason(cl, msg, msglen);
		return 'a';
	}
	snprintf(msg, msglen, "%s", tpc_strerror(rc));
	return 'u';
}

static void transfer(struct ledger *l, int from, int to, long long amount)
{
	char msg[512];
	tpc_txid txid = 0;
	int k = ledger_transfer(l, l->client, from, to, amount, &txid, msg, sizeof(msg));

	printf("%s %llu%s%s\n", k == 'c' ? "committed" : k == 'a' ? "aborted" : "unknown",
	       (unsigned long long)txid, msg[0] ? " " : "", msg);
}

static void print_stats(struct ledger *l)
{
	tpc_pg_stats s;

	tpc_pg_get_stats(l->pg, &s);
	printf("stats begun=%llu prepared=%llu refused=%llu committed=%llu "
	       "already_applied=%llu rolled_back=%llu orphans_committed=%llu "
	       "orphans_rolled_back=%llu unresolved=%llu\n",
	       (unsigned long long)s.begun, (unsigned long long)s.prepared,
	       (unsigned long long)s.refused, (unsigned long long)s.committed,
	       (unsigned long long)s.already_applied, (unsigned long long)s.rolled_back,
	       (unsigned long long)s.orphans_committed, (unsigned long long)s.orphans_rolled_back,
	       (unsigned long long)s.unresolved);
}

static void print_unresolved(struct ledger *l)
{
	tpc_pg_unresolved *v;
	size_t n;

	if (tpc_pg_list_unresolved(l->pg, &v, &n))
		n = 0;
	printf("unresolved %zu\n", n);
	for (size_t i = 0; i < n; i++)
		printf("orphan %s age_ms=%llu locks=%u status=%s error=%s\n", v[i].gid,
		       (unsigned long long)v[i].age_ms, v[i].locks, tpc_status_str(v[i].status),
		       v[i].err ? tpc_strerror(v[i].err) : "none");
	free(v);
}

static void command(struct ledger *l, char *line)
{
	int from, to, n;
	long long amount;

	if (sscanf(line, "transfer %d %d %lld", &from, &to, &amount) == 3) {
		transfer(l, from, to, amount);
	} else if (sscanf(line, "load %d %d", &n, &to) == 2 && to > 1) {
		for (int i = 0; i < n; i++) {
			from = 1 + rand() % to;
			transfer(l, from, 1 + (from + rand() % (to - 1)) % to, 1);
		}
		printf("load-done\n");
	} else if (!strncmp(line, "scan", 4)) {
		printf("scan %d\n", tpc_pg_scan(l->pg));
	} else if (sscanf(line, "bench %d %d %d", &n, &to, &from) == 3 && n > 0 && to > 0) {
		ledger_bench(l, n, to, from);
	} else if (!strncmp(line, "unresolved", 10)) {
		print_unresolved(l);
	} else if (!strncmp(line, "stats", 5)) {
		print_stats(l);
	} else {
		printf("error unknown command\n");
	}
	fflush(stdout);
}

static int make_schema(const char *conninfo, int accounts, long long balance)
{
	char sql[256];
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, schema_sql) : NULL;
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	/* Only into an empty table: rows a prepared transaction holds would block it. */
	snprintf(sql, sizeof(sql), "INSERT INTO accounts SELECT g, %lld FROM generate_series(1, "
		 "%d) g WHERE NOT EXISTS (SELECT 1 FROM accounts)", balance, accounts);
	r = ok ? PQexec(c, sql) : NULL;
	ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "pg-ledger: cannot make the tables: %s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pg-ledger --coordinator HOST:PORT --state DIR [options]\n"
		"  -c, --coordinator HOST:PORT  the coordinator\n"
		"  -s, --state DIR              the participant's state folder\n"
		"  -n, --name NAME              participant name (default pg-ledger)\n"
		"  -d, --conninfo STR           libpq connection string (default: PG* variables)\n"
		"  -a, --accounts N             accounts made at start (default 10)\n"
		"  -b, --balance B              their opening balance (default 1000)\n"
		"  -i, --scan-ms MS             orphan scan period (default 10000)\n"
		"  -u, --unresolved-ms MS       report an orphan still pending after MS (60000)\n"
		"  -f, --faults SPEC            fault points (testing; docs/failure-injection.md)\n"
		"  -h, --help\n"
		"Reads commands on stdin: transfer FROM TO AMOUNT | load N ACCOUNTS | scan | stats |\n"
		"unresolved | bench SECONDS THREADS DIRECT\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "coordinator", 1, 0, 'c' }, { "state", 1, 0, 's' }, { "name", 1, 0, 'n' },
		{ "conninfo", 1, 0, 'd' }, { "accounts", 1, 0, 'a' }, { "balance", 1, 0, 'b' },
		{ "scan-ms", 1, 0, 'i' }, { "unresolved-ms", 1, 0, 'u' },
		{ "faults", 1, 0, 'f' }, { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct ledger l = { .accounts = 10 };
	tpc_pg_config cfg;
	int o, err = 0;
	long long balance = 1000;
	char line[256];

	tpc_pg_config_init(&cfg);
	cfg.part.name = "pg-ledger";
	cfg.part.log = log_line;
	while ((o = getopt_long(argc, argv, "c:s:n:d:a:b:i:u:f:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cfg.part.coordinator = optarg; break;
		case 's': cfg.part.state_dir = optarg; break;
		case 'n': cfg.part.name = optarg; break;
		case 'd': cfg.conninfo = optarg; break;
		case 'a': l.accounts = atoi(optarg); break;
		case 'b': balance = atoll(optarg); break;
		case 'i': cfg.scan_interval_ms = (uint32_t)atoi(optarg); break;
		case 'u': cfg.unresolved_after_ms = (uint32_t)atoi(optarg); break;
		case 'f': cfg.part.faults = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!cfg.part.coordinator || !cfg.part.state_dir) {
		usage(stderr);
		return 2;
	}
	l.conninfo = cfg.conninfo ? cfg.conninfo : "";
	l.coordinator = cfg.part.coordinator;
	if (make_schema(l.conninfo, l.accounts, balance))
		return 1;
	l.pg = tpc_pg_new(&cfg, &err);
	tpc_client_config cc;
	tpc_client_config_init(&cc);
	cc.coordinator = cfg.part.coordinator;
	l.client = l.pg ? tpc_client_new(&cc, &err) : NULL;
	if (!l.client) {
		fprintf(stderr, "pg-ledger: cannot start: %s\n", tpc_strerror(err));
		tpc_pg_free(l.pg);
		return 1;
	}
	printf("ready %s\n", tpc_pg_gid_prefix(l.pg));
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin))
		command(&l, line);
	tpc_client_free(l.client);
	tpc_pg_free(l.pg);
	return 0;
}
