/*
 * test_pg.c - the PostgreSQL participant (tpc/pg.h) against a real PostgreSQL 15 and a
 * real tpc-coordinator. One throwaway cluster (scripts/pg-harness.sh) serves the file,
 * a fresh database each test; the service is examples/pg-ledger (its own initiator:
 * what it prints is what its client was told), run as a real process so it can be
 * killed at the fault points of the crash table.
 *
 * Covered: a commit lands once and tpc_applied shrinks back (D9); a failed statement
 * aborts with PostgreSQL's message at the client; a constraint checked at PREPARE
 * TRANSACTION is a NO vote with PostgreSQL's message; kill -9 after PREPARE TRANSACTION
 * before the vote (an orphan the scanner rolls back through the coordinator), after the
 * vote (committed after the restart), after COMMIT PREPARED before the ack (found in
 * tpc_applied, applied once); PostgreSQL crashed (pg_ctl stop -m immediate) under load
 * and restarted. After each, the ledger holds exactly what the coordinator decided
 * (what clients were told, or would be told when they ask), money is conserved, and no
 * prepared transaction is left.
 *
 * Skipped, with a message, only when PostgreSQL is not installed. Every wait polls
 * against a deadline.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "admin_harness.h"
#include "cmd_run.h"
#include "util.h"
#include "coord_harness.h"
#include "pg_harness.h"

#define PG_WAIT_MS 60000
#define ACCOUNTS 10
#define BALANCE 1000

struct group {
	struct pg_cluster pg;
	char dir[PATH_MAX];
	int absent;
};

struct fx {
	struct cluster *c;
	struct group *g;
	char db[32];
	char conninfo[PATH_MAX + 64];
	char state[PATH_MAX + 32];
	char log[PATH_MAX + 32];
	char prefix[64];
	tpc_proc *svc;
	PGconn *sql;
	int admin_port;         /* the coordinator's admin API */
};

static int group_setup(void **state)
{
	struct group *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	assert_int_equal(tpc_tmpdir_make(g->dir, sizeof(g->dir)), 0);
	char run[PATH_MAX + 8];
	snprintf(run, sizeof(run), "%s/pg", g->dir);
	g->absent = pg_cluster_start(&g->pg, run) == 77;
	*state = g;
	return 0;
}

static int group_teardown(void **state)
{
	struct group *g = *state;

	pg_cluster_stop(&g->pg, "fast");
	tpc_tmpdir_release(g->dir);
	free(g);
	return 0;
}

static int setup(void **state)
{
	struct group *g = *state;
	void *inner = NULL;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(g);
	assert_non_null(f);
	f->g = g;
	*state = f;
	if (g->absent)
		return 0;
	cluster_setup(&inner);
	f->c = inner;
	pg_new_db(&g->pg, f->db, sizeof(f->db));
	pg_conninfo(&g->pg, f->db, f->conninfo, sizeof(f->conninfo));
	snprintf(f->state, sizeof(f->state), "%s/state", f->c->dir);
	snprintf(f->log, sizeof(f->log), "%s/ledger.log", f->c->dir);
	f->sql = pg_open(&g->pg, f->db);
	char admin[32];
	f->admin_port = tpc_free_port();
	assert_true(f->admin_port > 0);
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", f->admin_port);
	coord_start(f->c, NULL, "--admin", admin, NULL);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	void *inner = f->c;

	*state = f->g;
	PQfinish(f->sql);
	free(f);
	return inner ? cluster_teardown(&inner) : 0;
}

#define SKIP_IF_ABSENT(f) \
	do { \
		if ((f)->g->absent) \
			skip(); \
	} while (0)

/* ---- the service ----------------------------------------------------------------- */

static void ledger_start(struct fx *f, const char *faults)
{
	char *argv[18] = { TPC_PG_LEDGER_BIN, "-c", f->c->hostport, "-s", f->state,
			   "-d", f->conninfo, "-i", "200", "-a", "10", "-b", "1000", "-u", "1",
			   NULL };

	if (faults) {
		argv[15] = "-f";
		argv[16] = (char *)faults;
	}
	f->svc = tpc_proc_spawn(f->c->procs, argv, f->log);
	assert_non_null(f->svc);
	const char *l = tpc_proc_wait_line(f->svc, "ready ", PG_WAIT_MS);
	assert_non_null(l);
	snprintf(f->prefix, sizeof(f->prefix), "%s", l + 6);
}

/* Send one command; return the first line starting with @p want (valid until next). */
static const char *ledger_ask(struct fx *f, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *ledger_ask(struct fx *f, const char *want, const char *fmt, ...)
{
	char cmd[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(tpc_proc_write_line(f->svc, cmd), 0);
	const char *l = tpc_proc_wait_line(f->svc, want, PG_WAIT_MS);
	if (!l)
		fail_msg("no \"%s\" line after \"%s\"", want, cmd);
	return l;
}

static int log_has(const struct fx *f, const char *text)
{
	FILE *fp = fopen(f->log, "r");
	char line[4096];
	int found = 0;

	while (fp && !found && fgets(line, sizeof(line), fp))
		found = strstr(line, text) != NULL;
	if (fp)
		fclose(fp);
	return found;
}

/* ---- what PostgreSQL holds -------------------------------------------------------- */

static long long prepared_count(struct fx *f)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_prepared_xacts WHERE "
		 "starts_with(gid, '%s')", f->prefix);
	return pg_scalar(f->sql, sql);
}

static void wait_prepared(struct fx *f, long long want)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_prepared_xacts WHERE "
		 "starts_with(gid, '%s')", f->prefix);
	pg_wait_scalar(f->sql, sql, want, PG_WAIT_MS);
}

/* The txid of this participant's only prepared transaction. */
static uint64_t prepared_txid(struct fx *f)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT substr(gid, %zu)::numeric FROM pg_prepared_xacts "
		 "WHERE starts_with(gid, '%s')", strlen(f->prefix) + 1, f->prefix);
	return (uint64_t)pg_scalar(f->sql, sql);
}

static long long transfers_of(struct fx *f, uint64_t txid)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM transfers WHERE txid = %llu",
		 (unsigned long long)txid);
	return pg_scalar(f->sql, sql);
}

/* Money is conserved and every balance is its opening one moved by the transfers. */
static void assert_ledger_consistent(struct fx *f)
{
	assert_int_equal(pg_scalar(f->sql, "SELECT sum(balance) FROM accounts"),
			 (long long)ACCOUNTS * BALANCE);
	assert_int_equal(pg_scalar(f->sql,
		"SELECT count(*) FROM accounts a WHERE a.balance <> 1000"
		" - coalesce((SELECT sum(amount) FROM transfers WHERE from_id = a.id), 0)"
		" + coalesce((SELECT sum(amount) FROM transfers WHERE to_id = a.id), 0)"), 0);
}

static void assert_status(struct fx *f, uint64_t txid, Tpc__TxnStatus want)
{
	tpc_wc *wc = client_open(f->c, NULL);

	client_status_expect(wc, txid, want);
}

/* An aborted transfer left nothing: no row, nothing prepared, the coordinator agrees. */
static void assert_left_nothing(struct fx *f, uint64_t txid)
{
	assert_int_equal(transfers_of(f, txid), 0);
	assert_int_equal(prepared_count(f), 0);
	assert_status(f, txid, TPC__TXN_STATUS__STATUS_ABORTED);
	assert_ledger_consistent(f);
}

static uint64_t txid_of(const char *line)
{
	const char *sp = strchr(line, ' ');

	assert_non_null(sp);
	return strtoull(sp + 1, NULL, 10);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_pg_commit_lands_once_and_applied_table_shrinks(void **state)
{
	struct fx *f = *state;

	SKIP_IF_ABSENT(f);
	ledger_start(f, NULL);
	uint64_t txid = txid_of(ledger_ask(f, "committed ", "transfer 1 2 10"));
	/* COMMITTED is told once the decision is durable; COMMIT PREPARED follows it. */
	wait_prepared(f, 0);
	assert_int_equal(transfers_of(f, txid), 1);
	assert_int_equal(pg_scalar(f->sql, "SELECT balance FROM accounts WHERE id = 1"), 990);
	assert_int_equal(pg_scalar(f->sql, "SELECT balance FROM accounts WHERE id = 2"), 1010);
	assert_int_equal(prepared_count(f), 0);
	/* D9: the row that made "already applied" checkable goes once it cannot matter. */
	pg_wait_scalar(f->sql, "SELECT count(*) FROM tpc_applied", 0, PG_WAIT_MS);
	assert_status(f, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	assert_ledger_consistent(f);
}

static void test_pg_failed_statement_aborts_with_its_message(void **state)
{
	struct fx *f = *state;

	SKIP_IF_ABSENT(f);
	ledger_start(f, NULL);
	const char *l = ledger_ask(f, "aborted ", "transfer 1 2 5000");
	assert_non_null(strstr(l, "violates check constraint \"accounts_balance_check\""));
	assert_left_nothing(f, txid_of(l));
}

static void test_pg_constraint_at_prepare_is_a_no_vote_with_postgres_message(void **state)
{
	struct fx *f = *state;

	SKIP_IF_ABSENT(f);
	ledger_start(f, NULL);
	const char *l = ledger_ask(f, "aborted ", "transfer 1 99 5");
	uint64_t txid = txid_of(l);
	assert_non_null(strstr(l, "voted NO"));
	/* The client's Outcome names the participant and carries PostgreSQL's own words. */
	assert_non_null(strstr(l, "participant \"pg-ledger\" voted NO: PostgreSQL: insert or "
				  "update on table \"transfers\" violates foreign key constraint "
				  "\"transfers_to_id_fkey\""));
	/* The deferred foreign key fails PREPARE TRANSACTION; the vote says so. */
	assert_true(log_has(f, "NO vote: PostgreSQL: insert or update on table \"transfers\" "
			       "violates foreign key constraint \"transfers_to_id_fkey\""));
	assert_left_nothing(f, txid);
}

/* Kill the service at @p point during one transfer; restart it; wait for healing. */
static uint64_t kill_during_transfer(struct fx *f, const char *point, int prepared_after)
{
	int st;

	ledger_start(f, point);
	assert_int_equal(tpc_proc_write_line(f->svc, "transfer 3 4 7"), 0);
	assert_int_equal(tpc_proc_wait_exit(f->svc, PG_WAIT_MS, &st), 0);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(prepared_count(f), prepared_after);
	uint64_t txid = prepared_after ? prepared_txid(f) :
		(uint64_t)pg_scalar(f->sql, "SELECT coalesce(max(txid), 0) FROM transfers");
	ledger_start(f, NULL);
	wait_prepared(f, 0);
	return txid;
}

static void test_pg_kill_after_prepare_before_vote_rolls_the_orphan_back(void **state)
{
	struct fx *f = *state;

	SKIP_IF_ABSENT(f);
	uint64_t txid = kill_during_transfer(f, "part.prepare.before_log=crash", 1);
	assert_non_null(strstr(ledger_ask(f, "stats ", "stats"), "orphans_rolled_back=1"));
	assert_left_nothing(f, txid);
}

static void test_pg_kill_after_vote_commits_after_restart(void **state)
{
	struct fx *f = *state;

	SKIP_IF_ABSENT(f);
	uint64_t txid = kill_during_transfer(f, "part.vote.after_send=crash", 1);
	assert_status(f, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	assert_int_equal(transfers_of(f, txid), 1);
	assert_ledger_consistent(f);
}

static void test_pg_kill_after_commit_prepared_before_ack_applies_once(void **state)
{
	struct fx *f = *state;

	SKIP_IF_ABSENT(f);
	uint64_t txid = kill_during_transfer(f, "part.commit.after_apply=crash", 0);
	assert_true(txid > 0);
	assert_int_equal(transfers_of(f, txid), 1);
	/* The decision comes again; tpc_applied shows it applied; it is acked. */
	for (int i = 0; i < 3000; i++) {
		const char *l = ledger_ask(f, "stats ", "stats");
		if (strstr(l, "already_applied=1"))
			break;
		assert_int_equal(tpc_proc_wait_exit(f->svc, 20, NULL), -ETIMEDOUT);
	}
	assert_non_null(strstr(ledger_ask(f, "stats ", "stats"), "already_applied=1"));
	assert_status(f, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	assert_ledger_consistent(f);
}

/* An orphan whose outcome cannot be learned (the coordinator is down) is reported with
 * its age and locks, and left prepared; once the coordinator is back it is resolved. */
static void test_pg_orphan_without_coordinator_is_reported_not_guessed(void **state)
{
	struct fx *f = *state;
	int st;

	SKIP_IF_ABSENT(f);
	ledger_start(f, "part.prepare.before_log=crash");
	assert_int_equal(tpc_proc_write_line(f->svc, "transfer 5 6 9"), 0);
	assert_int_equal(tpc_proc_wait_exit(f->svc, PG_WAIT_MS, &st), 0);
	assert_int_equal(prepared_count(f), 1);
	uint64_t txid = prepared_txid(f);
	coord_kill9(f->c);
	ledger_start(f, NULL);
	ledger_ask(f, "scan ", "scan");
	const char *l = ledger_ask(f, "unresolved ", "unresolved");
	assert_string_equal(l, "unresolved 1");
	l = ledger_ask(f, "orphan ", "unresolved");
	char gid[96];
	snprintf(gid, sizeof(gid), "orphan %s%llu ", f->prefix, (unsigned long long)txid);
	assert_memory_equal(l, gid, strlen(gid));
	assert_non_null(strstr(l, "locks="));
	assert_null(strstr(l, "locks=0 "));
	assert_null(strstr(l, "error=none"));
	assert_int_equal(prepared_count(f), 1); /* never guessed */
	coord_restart(f->c);
	wait_prepared(f, 0);
	assert_left_nothing(f, txid);
}

/* Make a prepared transaction named like this participant's for @p txid by hand, as a
 * crash between PREPARE TRANSACTION and the PREPARED record would leave it. */
static void make_orphan(struct fx *f, uint64_t txid, int from, int to)
{
	char sql[320];
	PGconn *c = pg_open(&f->g->pg, f->db);

	snprintf(sql, sizeof(sql), "BEGIN; INSERT INTO transfers VALUES (%llu, %d, %d, 3); "
		 "UPDATE accounts SET balance = balance - 3 WHERE id = %d; UPDATE accounts SET "
		 "balance = balance + 3 WHERE id = %d; PREPARE TRANSACTION '%s%llu'",
		 (unsigned long long)txid, from, to, from, to, f->prefix,
		 (unsigned long long)txid);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* The orphans the coordinator's admin API lists for participant pg-ledger, once there
 * are @p want of them (polled: the report follows each scan). The caller decrefs. */
static json_t *admin_orphans(struct fx *f, size_t want)
{
	uint64_t deadline = tpc_now_ms() + PG_WAIT_MS;

	for (;;) {
		int status = 0;
		json_t *all = admin_get_json(f->admin_port, "/v1/participants", &status), *p;
		size_t i;
		assert_int_equal(status, 200);
		json_array_foreach(json_object_get(all, "participants"), i, p) {
			json_t *o = json_object_get(p, "orphans");
			if (!strcmp(json_string_value(json_object_get(p, "name")), "pg-ledger") &&
			    json_array_size(o) == want) {
				json_incref(o);
				json_decref(all);
				return o;
			}
		}
		json_decref(all);
		if (tpc_now_ms() > deadline)
			fail_msg("the admin API never listed %zu orphan(s) of pg-ledger", want);
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL); /* a poll step */
	}
}

/* An orphan whose transaction is still open at the coordinator is reported as PENDING
 * (past unresolved_after_ms, 1 ms here) and left alone; once the coordinator decides,
 * the scanner applies that decision: COMMITTED commits it, ABORTED rolls it back. */
static void test_pg_pending_orphan_waits_for_the_decision(void **state)
{
	struct fx *f = *state;
	struct tpc_wc_outcome o;

	SKIP_IF_ABSENT(f);
	ledger_start(f, NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t keep = client_begin(wc, "orphan-commit"); /* a key: its commit is logged */
	uint64_t drop = client_begin(wc, NULL);
	make_orphan(f, keep, 7, 8); /* accounts apart: the first holds its rows' locks */
	make_orphan(f, drop, 9, 10);
	ledger_ask(f, "scan ", "scan");
	assert_string_equal(ledger_ask(f, "unresolved ", "unresolved"), "unresolved 2");
	const char *l = ledger_ask(f, "orphan ", "unresolved");
	assert_non_null(strstr(l, "status=PENDING error=none"));
	assert_int_equal(prepared_count(f), 2); /* never guessed */
	/* The coordinator's admin API lists both, with their global id, age and locks. */
	json_t *orphans = admin_orphans(f, 2), *e;
	size_t i;
	int seen_keep = 0;
	json_array_foreach(orphans, i, e) {
		uint64_t txid = (uint64_t)json_integer_value(json_object_get(e, "txid"));
		char gid[96];
		snprintf(gid, sizeof(gid), "%s%llu", f->prefix, (unsigned long long)txid);
		assert_true(txid == keep || txid == drop);
		seen_keep += txid == keep;
		assert_string_equal(json_string_value(json_object_get(e, "gid")), gid);
		assert_true(json_integer_value(json_object_get(e, "age_ms")) >= 0);
		assert_true(json_integer_value(json_object_get(e, "locks")) > 0);
		assert_non_null(strstr(json_string_value(json_object_get(e, "reason")), "PENDING"));
	}
	assert_int_equal(seen_keep, 1);
	json_decref(orphans);
	/* tpcctl shows them too: one row each, with the participant and the global id. */
	char admin[32], gid[96];
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", f->admin_port);
	char *argv[] = { TPCCTL_BIN, "--admin", admin, "participant", "orphans", NULL };
	struct cmd_result *r = malloc(sizeof(*r));
	assert_non_null(r);
	assert_int_equal(cmd_run(f->c->dir, argv, NULL, PG_WAIT_MS, r), 0);
	assert_int_equal(r->code, 0);
	snprintf(gid, sizeof(gid), "%s%llu", f->prefix, (unsigned long long)keep);
	assert_non_null(strstr(r->out, "pg-ledger"));
	assert_non_null(strstr(r->out, gid));
	assert_non_null(strstr(r->out, "the coordinator says PENDING"));
	free(r);
	assert_int_equal(tpc_wc_commit(wc, keep, &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_COMMITTED);
	assert_int_equal(tpc_wc_abort(wc, drop, "test", &o), 0);
	wait_prepared(f, 0);
	assert_int_equal(transfers_of(f, keep), 1);
	assert_int_equal(transfers_of(f, drop), 0);
	json_decref(admin_orphans(f, 0)); /* resolved: the next report clears the list */
	assert_non_null(strstr(ledger_ask(f, "stats ", "stats"),
			       "orphans_committed=1 orphans_rolled_back=1"));
	assert_ledger_consistent(f);
}

/* Count outcome lines of a load run: committed, aborted, unknown (txids kept). */
struct outcomes {
	uint64_t txid[512];
	char kind[512];
	int n;
};

static void read_load(struct fx *f, struct outcomes *o, int total)
{
	while (o->n < total) {
		const char *l = tpc_proc_wait_line(f->svc, "", PG_WAIT_MS);
		assert_non_null(l);
		if (!strncmp(l, "load-done", 9))
			break;
		if (strncmp(l, "committed ", 10) && strncmp(l, "aborted ", 8) &&
		    strncmp(l, "unknown ", 8))
			continue;
		o->kind[o->n] = l[0];
		o->txid[o->n++] = txid_of(l);
	}
}

static void test_pg_crash_of_postgres_under_load_heals(void **state)
{
	struct fx *f = *state;
	struct outcomes o = { 0 };

	SKIP_IF_ABSENT(f);
	ledger_start(f, NULL);
	assert_int_equal(tpc_proc_write_line(f->svc, "load 400 10"), 0);
	assert_non_null(tpc_proc_wait_line(f->svc, "committed ", PG_WAIT_MS));
	PQfinish(f->sql);
	f->sql = NULL;
	pg_cluster_stop(&f->g->pg, "immediate");
	assert_int_equal(pg_cluster_start(&f->g->pg, f->g->pg.dir), 0);
	f->sql = pg_open(&f->g->pg, f->db);
	read_load(f, &o, 399);
	wait_prepared(f, 0);
	int committed = 0, aborted = 0;
	for (int i = 0; i < o.n; i++) {
		long long have = transfers_of(f, o.txid[i]);
		if (o.kind[i] == 'c')
			assert_int_equal(have, 1);
		else if (o.kind[i] == 'a')
			assert_int_equal(have, 0);
		else /* unknown to the client: the coordinator's answer decides */
			assert_status(f, o.txid[i], have ? TPC__TXN_STATUS__STATUS_COMMITTED
							 : TPC__TXN_STATUS__STATUS_ABORTED);
		committed += o.kind[i] == 'c';
		aborted += o.kind[i] == 'a';
	}
	print_message("load: %d committed, %d aborted, %d unknown to the client\n", committed,
		      aborted, o.n - committed - aborted);
	assert_true(committed >= 1);
	assert_ledger_consistent(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pg_commit_lands_once_and_applied_table_shrinks,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_failed_statement_aborts_with_its_message,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_pg_constraint_at_prepare_is_a_no_vote_with_postgres_message, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_pg_kill_after_prepare_before_vote_rolls_the_orphan_back, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_pg_kill_after_vote_commits_after_restart,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_pg_kill_after_commit_prepared_before_ack_applies_once, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_pg_orphan_without_coordinator_is_reported_not_guessed, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_pg_pending_orphan_waits_for_the_decision,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_crash_of_postgres_under_load_heals, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
