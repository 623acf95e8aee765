/*
 * test_participant.c - libtpc's participant end to end, embedded in the example service:
 * one real tpc-coordinator and two tpc-kv services, A and B, on 127.0.0.1 with ports
 * chosen free at run time and data in a fresh temporary folder. The test is the client:
 * Begin at the coordinator, KvPut to A and B with the txid (tpc-kv answers only once
 * its Join is acknowledged), then Commit or Abort. What the services applied is read
 * back with `tpc-kv --dump` and `tpc-kv --prepared`, as an operator would.
 *
 * Covered: a commit lands once everywhere; a client Abort and a NO vote land nowhere;
 * kill -9 of B at three places of the crash table (PREPARED durable but no vote, YES
 * sent, applied but not acked) ends with both sides holding the same data, applied
 * once; a coordinator restart between transactions (D7: new epoch, the services
 * reconnect by themselves); staged writes that never see a Prepare expire, the service
 * votes NO at once and refuses later writes for that txid (D8); one state folder serves
 * one process, and its participant id stays while its incarnation rises (D8); the
 * sink's applied table does not grow with transactions (D9).
 *
 * Nothing sleeps for a fixed time: every wait polls a condition against a deadline
 * (WAIT_MS). Faults are armed in one child only, through its environment. The cluster
 * (coord_harness.c) kills every process and removes the folder in teardown.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "kv_harness.h"
#include "tpc/sink_lmdb.h"
#include "wire.h"

#define POLL_MS 20     /* between two looks at a condition; never a wait in itself */
#define OUT_CAP 65536  /* --dump / --prepared output */

enum { A, B, NKV };

struct fx {
	struct cluster *c;
	struct kv_svc kv[NKV];
	const char *coord;  /* where the services connect; NULL: the cluster's coordinator */
};

/* ---- fixture -------------------------------------------------------------------- */

static int setup(void **state)
{
	void *inner = NULL;
	struct fx *f;

	cluster_setup(&inner);
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->c = inner;
	for (int i = 0; i < NKV; i++) {
		char name[2] = { (char)('A' + i), 0 };
		kv_svc_init(&f->kv[i], f->c, name, name);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	void *inner = f->c;

	for (int i = 0; i < NKV; i++)
		kv_svc_close_conn(&f->kv[i]);
	free(f);
	return cluster_teardown(&inner);
}

/* ---- small helpers -------------------------------------------------------------- */

static void pause_poll(void)
{
	poll(NULL, 0, POLL_MS);
}

static int file_has(const char *path, const char *text)
{
	FILE *fp = fopen(path, "r");
	char line[2048];
	int found = 0;

	if (!fp)
		return 0;
	while (!found && fgets(line, sizeof(line), fp))
		found = strstr(line, text) != NULL;
	fclose(fp);
	return found;
}

/* Wait until the file holds @p text (a log line written with one write()). */
static void wait_file_has(const char *path, const char *text)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (!file_has(path, text)) {
		if (now_ms() >= deadline)
			fail_msg("%s never got \"%s\"", path, text);
		pause_poll();
	}
}

/* ---- the services --------------------------------------------------------------- */

/*
 * Start service @p i on its port and data folder with the extra options (NULL-
 * terminated), with TPC_FAULTS=@p faults in its environment only when not NULL, and
 * wait until it serves. The same port and folder are used again on a restart.
 */
static void kv_start(struct fx *f, int i, const char *faults, ...)
{
	const char *extra[16];
	int n = 0;
	va_list ap;

	va_start(ap, faults);
	while (n < 15 && (extra[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	extra[n] = NULL;
	f->kv[i].coordinator = f->coord;
	kv_svc_start(&f->kv[i], f->c, faults, extra);
}

static void kv_close_conn(struct fx *f, int i)
{
	kv_svc_close_conn(&f->kv[i]);
}

/* Service @p i killed itself at an armed fault point: expect death by SIGKILL. */
static void kv_expect_crash(struct fx *f, int i, const char *point)
{
	struct kv_svc *k = &f->kv[i];
	char fired[128];
	int st = 0;

	if (tpc_proc_wait_exit(k->proc, WAIT_MS, &st) != 0) {
		tpc_proc_dump(k->proc);
		fail_msg("tpc-kv %s did not crash at %s", k->name, point);
	}
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail_msg("tpc-kv %s ended with wait status 0x%x, not SIGKILL", k->name, st);
	snprintf(fired, sizeof(fired), "fault %s fired: crash", point);
	assert_true(file_has(k->log, fired));
	kv_close_conn(f, i);
}

/* KvPut(txid, key, value) to service @p i; returns once the service answered. */
static int kv_put_rc(struct fx *f, int i, uint64_t txid, const char *key, const char *value)
{
	return kv_svc_put_rc(&f->kv[i], txid, key, value);
}

static void kv_put(struct fx *f, int i, uint64_t txid, const char *key, const char *value)
{
	kv_svc_put(&f->kv[i], txid, key, value);
}

struct dump {
	int lines;  /* applied keys */
	int key;    /* lines for the key */
	int exact;  /* lines reading exactly key<TAB>value<TAB>txid */
};

static struct dump kv_dump(struct fx *f, int i, const char *key, const char *value,
			   uint64_t txid)
{
	static char out[OUT_CAP];
	char want[256], key_tab[128];
	struct dump d = { 0 };

	kv_svc_cmd(&f->kv[i], "--dump", out, sizeof(out));
	snprintf(want, sizeof(want), "%s\t%s\t%llu", key, value, (unsigned long long)txid);
	snprintf(key_tab, sizeof(key_tab), "%s\t", key);
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		d.lines++;
		d.key += strncmp(line, key_tab, strlen(key_tab)) == 0;
		d.exact += strcmp(line, want) == 0;
	}
	return d;
}

/* Wait until service @p i has applied key=value in txid; then it must be there once. */
static void wait_applied(struct fx *f, int i, const char *key, const char *value,
			 uint64_t txid)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	struct dump d;

	while ((d = kv_dump(f, i, key, value, txid)).exact == 0) {
		if (now_ms() >= deadline)
			fail_msg("tpc-kv %s never applied %s=%s in txid %llu (%d line(s) for the "
				 "key)", f->kv[i].name, key, value, (unsigned long long)txid, d.key);
		pause_poll();
	}
	assert_int_equal(d.exact, 1);
	assert_int_equal(d.key, 1);
}

static void expect_key_absent(struct fx *f, int i, const char *key)
{
	struct dump d = kv_dump(f, i, key, "", 0);

	if (d.key != 0)
		fail_msg("tpc-kv %s holds %s, which no commit wrote", f->kv[i].name, key);
}

/* Prepared transactions of service @p i; *has set if txid is among them. */
static int kv_prepared(struct fx *f, int i, uint64_t txid, int *has)
{
	static char out[OUT_CAP];
	char want[32];
	int n = -1;

	kv_svc_cmd(&f->kv[i], "--prepared", out, sizeof(out));
	snprintf(want, sizeof(want), "%llu ", (unsigned long long)txid);
	if (has)
		*has = 0;
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (n++ < 0) {
			assert_true(strncmp(line, "TXID", 4) == 0); /* the header */
			continue;
		}
		if (has && strncmp(line, want, strlen(want)) == 0)
			*has = 1;
	}
	assert_true(n >= 0);
	return n;
}

static void wait_prepared_empty(struct fx *f, int i)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	int n;

	while ((n = kv_prepared(f, i, 0, NULL)) != 0) {
		if (now_ms() >= deadline)
			fail_msg("tpc-kv %s still has %d prepared transaction(s)", f->kv[i].name, n);
		pause_poll();
	}
}

static uint64_t kv_applied_count(struct fx *f, int i)
{
	char dir[PATH_MAX + 64];
	uint64_t n = 0;

	snprintf(dir, sizeof(dir), "%s/sink", f->kv[i].data);
	int rc = tpc_sink_lmdb_applied_count(dir, &n);
	if (rc != 0)
		fail_msg("applied count of %s: %d", dir, rc);
	return n;
}

/* ---- tests ---------------------------------------------------------------------- */

static void start_cluster(struct fx *f)
{
	coord_start(f->c, NULL, NULL);
	kv_start(f, A, NULL, NULL);
	kv_start(f, B, NULL, NULL);
}

static void test_commit_applies_the_writes_on_both_services(void **state)
{
	struct fx *f = *state;

	start_cluster(f);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "order-1", "debit");
	kv_put(f, B, txid, "order-1", "credit");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	/* The decision reaches the services after the client heard it: poll. */
	wait_applied(f, A, "order-1", "debit", txid);
	wait_applied(f, B, "order-1", "credit", txid);
	for (int i = 0; i < NKV; i++) {
		wait_prepared_empty(f, i);
		assert_int_equal(kv_dump(f, i, "order-1", "", 0).lines, 1);
		assert_int_equal(kv_applied_count(f, i), 1);
	}
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
}

/* After a transaction that must leave nothing, commit a marker through both services:
 * once the marker is applied everywhere, nothing of the first is pending anywhere. */
static void commit_marker(struct fx *f, tpc_wc *wc, const char *key)
{
	uint64_t txid = client_begin(wc, NULL);

	kv_put(f, A, txid, key, "m");
	kv_put(f, B, txid, key, "m");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	wait_applied(f, A, key, "m", txid);
	wait_applied(f, B, key, "m", txid);
}

static void test_client_abort_applies_nothing(void **state)
{
	struct fx *f = *state;
	struct tpc_wc_outcome o;

	start_cluster(f);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "cancelled", "a");
	kv_put(f, B, txid, "cancelled", "b");
	assert_int_equal(tpc_wc_abort(wc, txid, "changed my mind", &o), 0);
	assert_int_equal(o.txid, txid);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_ABORTED);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_ABORTED);
	/* A late put in it may be taken (A has not heard the ABORT yet) or refused (its
	 * Join fails); either way it never lands. A late Commit hears ABORTED. */
	(void)kv_put_rc(f, A, txid, "late", "x");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	commit_marker(f, wc, "marker");
	for (int i = 0; i < NKV; i++) {
		expect_key_absent(f, i, "cancelled");
		expect_key_absent(f, i, "late");
		assert_int_equal(kv_dump(f, i, "marker", "", 0).lines, 1);
		wait_prepared_empty(f, i);
	}
}

static void test_no_vote_aborts_on_every_service(void **state)
{
	struct fx *f = *state;
	char reason[256];

	coord_start(f->c, NULL, NULL);
	kv_start(f, A, NULL, NULL);
	kv_start(f, B, NULL, "--refuse-key", "bad", NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "good", "1");
	kv_put(f, B, txid, "bad", "2");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	if (!strstr(reason, "NO"))
		fail_msg("abort reason \"%s\" does not name the NO vote", reason);
	/* A voted YES and made PREPARED durable; the ABORT makes it drop the record. */
	wait_prepared_empty(f, A);
	wait_prepared_empty(f, B);
	commit_marker(f, wc, "marker");
	for (int i = 0; i < NKV; i++) {
		expect_key_absent(f, i, "good");
		expect_key_absent(f, i, "bad");
		assert_int_equal(kv_applied_count(f, i), 1); /* the marker only */
	}
}

/*
 * Crash table: a participant dies after PREPARED is durable, before it voted. The
 * coordinator aborts (lost before voting); B finds the record on restart, asks, hears
 * ABORTED and discards it. A, which voted YES, drops its record on the ABORT.
 */
static void test_kill_after_prepared_log_before_vote_aborts(void **state)
{
	struct fx *f = *state;
	char reason[256];
	int has = 0;

	coord_start(f->c, NULL, NULL);
	kv_start(f, A, NULL, NULL);
	kv_start(f, B, "part.prepare.after_log=crash", NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "crash-a", "1");
	kv_put(f, B, txid, "crash-a", "2");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	if (!strstr(reason, "disconnected"))
		fail_msg("abort reason \"%s\" does not name the lost participant", reason);
	kv_expect_crash(f, B, "part.prepare.after_log");
	/* D2: the record B forced before dying is there, holding the write. */
	assert_int_equal(kv_prepared(f, B, txid, &has), 1);
	assert_true(has);
	wait_prepared_empty(f, A);

	kv_start(f, B, NULL, NULL);
	wait_prepared_empty(f, B);
	assert_true(file_has(f->kv[B].log, "recovered 1 prepared transaction(s)"));
	for (int i = 0; i < NKV; i++) {
		struct dump d = kv_dump(f, i, "crash-a", "", 0);
		assert_int_equal(d.lines, 0);
		assert_int_equal(kv_applied_count(f, i), 0);
	}
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_ABORTED);
}

/*
 * Crash table: a participant dies right after its YES left. Both YES votes are in, so
 * the client hears COMMITTED; B restarts, finds its record, gets the decision (on
 * Hello, or by asking) and applies.
 */
static void test_kill_after_yes_vote_applies_after_restart(void **state)
{
	struct fx *f = *state;
	int has = 0;

	coord_start(f->c, NULL, NULL);
	kv_start(f, A, NULL, NULL);
	kv_start(f, B, "part.vote.after_send=crash", NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "crash-b", "1");
	kv_put(f, B, txid, "crash-b", "2");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	kv_expect_crash(f, B, "part.vote.after_send");
	wait_applied(f, A, "crash-b", "1", txid);
	/* B is down, prepared, and has applied nothing. */
	assert_int_equal(kv_prepared(f, B, txid, &has), 1);
	assert_true(has);
	assert_int_equal(kv_dump(f, B, "crash-b", "", 0).lines, 0);

	kv_start(f, B, NULL, NULL);
	wait_applied(f, B, "crash-b", "2", txid);
	wait_prepared_empty(f, B);
	wait_prepared_empty(f, A);
	for (int i = 0; i < NKV; i++) {
		assert_int_equal(kv_dump(f, i, "crash-b", "", 0).lines, 1);
		assert_int_equal(kv_applied_count(f, i), 1);
	}
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
}

/*
 * The current coordinator incarnation's log says "recovered N undelivered commit
 * decision(s)": return N.
 */
static int coord_recovered(struct cluster *c)
{
	FILE *fp = fopen(c->coord_log, "r");
	char line[1024];
	int n = -1;

	assert_non_null(fp);
	while (n < 0 && fgets(line, sizeof(line), fp)) {
		const char *s = strstr(line, "recovered ");
		if (s && strstr(s, "undelivered commit decision"))
			n = atoi(s + strlen("recovered "));
	}
	fclose(fp);
	if (n < 0)
		fail_msg("%s has no recovery line", c->coord_log);
	return n;
}

/*
 * Crash table: a participant dies after its sink applied, before the Ack (and before
 * the PREPARED record went). On restart the decision comes again; the sink sees the
 * txid applied and changes nothing; the record goes; the Ack reaches the coordinator.
 */
static void test_kill_after_apply_before_ack_applies_once(void **state)
{
	struct fx *f = *state;
	struct dump d;
	int has = 0;

	coord_start(f->c, NULL, NULL);
	kv_start(f, A, NULL, NULL);
	kv_start(f, B, "part.commit.after_apply=crash", NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "crash-c", "1");
	kv_put(f, B, txid, "crash-c", "2");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	kv_expect_crash(f, B, "part.commit.after_apply");
	/* B died between the sink's apply and dropping its record: both are there. */
	d = kv_dump(f, B, "crash-c", "2", txid);
	assert_int_equal(d.exact, 1);
	assert_int_equal(kv_prepared(f, B, txid, &has), 1);
	assert_true(has);
	assert_int_equal(kv_applied_count(f, B), 1);

	kv_start(f, B, NULL, NULL);
	wait_prepared_empty(f, B);
	wait_applied(f, A, "crash-c", "1", txid);
	wait_prepared_empty(f, A);
	for (int i = 0; i < NKV; i++) {
		d = kv_dump(f, i, "crash-c", "", 0);
		assert_int_equal(d.lines, 1);
		assert_int_equal(d.key, 1);
		assert_int_equal(kv_applied_count(f, i), 1);
	}
	assert_int_equal(kv_dump(f, B, "crash-c", "2", txid).exact, 1);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);

	/*
	 * The coordinator got B's Ack: restarted, it has no undelivered decision. B's Ack
	 * left before its record drop was seen above, but may still be in flight when the
	 * coordinator stops; a restart that still finds the decision resends it, B acks it
	 * as already applied, and the next restart must find nothing.
	 */
	client_close(f->c, wc);
	uint64_t deadline = now_ms() + WAIT_MS, epoch = 0;
	for (;;) {
		char seen[96];
		coord_term_clean(f->c);
		coord_restart(f->c);
		wc = client_open(f->c, &epoch);
		if (coord_recovered(f->c) == 0)
			break;
		if (now_ms() >= deadline)
			fail_msg("the coordinator still holds the decision for txid %llu",
				 (unsigned long long)txid);
		snprintf(seen, sizeof(seen), "connected to the coordinator (epoch %llu)",
			 (unsigned long long)epoch);
		wait_file_has(f->kv[B].log, seen); /* B gets the decision again, acks it */
		client_close(f->c, wc);
	}
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	for (int i = 0; i < NKV; i++)
		assert_int_equal(kv_applied_count(f, i), 1);
}

/*
 * D7: the coordinator restarts (SIGTERM, same data and port) between two committed
 * transactions. The services reconnect by themselves, see the new epoch, and the
 * second transaction commits too.
 */
static void test_coordinator_restart_services_reconnect(void **state)
{
	struct fx *f = *state;
	uint64_t epoch1 = 0, epoch2 = 0;
	char seen[96];

	start_cluster(f);
	tpc_wc *wc = client_open(f->c, &epoch1);
	uint64_t t1 = client_begin(wc, NULL);
	kv_put(f, A, t1, "first", "1");
	kv_put(f, B, t1, "first", "1");
	client_commit_expect(wc, t1, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	wait_applied(f, A, "first", "1", t1);
	wait_applied(f, B, "first", "1", t1);

	client_close(f->c, wc);
	coord_term_clean(f->c);
	coord_restart(f->c);
	wc = client_open(f->c, &epoch2);
	assert_true(epoch2 > epoch1);
	uint64_t t2 = client_begin(wc, NULL);
	assert_true(t2 != t1);
	/* A put waits (within its deadline) for its service's reconnect and Join. */
	kv_put(f, A, t2, "second", "2");
	kv_put(f, B, t2, "second", "2");
	client_commit_expect(wc, t2, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	snprintf(seen, sizeof(seen), "connected to the coordinator (epoch %llu)",
		 (unsigned long long)epoch2);
	for (int i = 0; i < NKV; i++) {
		wait_applied(f, i, "second", "2", t2);
		assert_int_equal(kv_dump(f, i, "first", "1", t1).exact, 1);
		assert_true(kv_applied_count(f, i) <= 2); /* t1's entry may be forgotten (D9) */
		assert_true(file_has(f->kv[i].log, seen));
		wait_prepared_empty(f, i);
	}
}

/* Poll the coordinator until @p txid has status @p want. */
static void wait_status(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus want)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	Tpc__TxnStatus st = TPC__TXN_STATUS__STATUS_PENDING;

	for (;;) {
		int rc = tpc_wc_status(wc, txid, &st);
		if (rc != 0)
			fail_msg("status %llu: %s", (unsigned long long)txid, tpc_wc_strerror(rc));
		if (st == want)
			return;
		if (now_ms() >= deadline)
			fail_msg("status %llu stayed %s, never %s", (unsigned long long)txid,
				 tpc_wire_status_name(st), tpc_wire_status_name(want));
		pause_poll();
	}
}

/*
 * D8: staged writes that never get a Prepare expire at the service. A votes NO at once,
 * so the coordinator aborts without waiting for the Commit; a later write for that txid
 * fails at A ("expired") instead of joining again with only the later write; the late
 * Commit is told ABORTED; nothing lands anywhere.
 */
static void test_staged_writes_expire_vote_no_at_once_and_later_writes_fail(void **state)
{
	struct fx *f = *state;
	char expired[96];

	coord_start(f->c, NULL, NULL);
	kv_start(f, A, NULL, "--txn-timeout", "300ms", NULL);
	kv_start(f, B, NULL, NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "stale", "1");
	kv_put(f, B, txid, "stale", "2");
	snprintf(expired, sizeof(expired), "txid %llu: staged writes expired",
		 (unsigned long long)txid);
	wait_file_has(f->kv[A].log, expired);
	wait_status(wc, txid, TPC__TXN_STATUS__STATUS_ABORTED); /* told at once, by NO */
	int rc = kv_put_rc(f, A, txid, "again", "3");
	if (rc == 0)
		fail_msg("a write after the expiry was accepted: it would join again");
	if (!strstr(tpc_wc_errmsg(f->kv[A].wc), "expired"))
		fail_msg("the refused write says \"%s\", not that the writes expired",
			 tpc_wc_errmsg(f->kv[A].wc));
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	wait_prepared_empty(f, B);
	wait_prepared_empty(f, A);
	for (int i = 0; i < NKV; i++) {
		expect_key_absent(f, i, "stale");
		expect_key_absent(f, i, "again");
		assert_int_equal(kv_applied_count(f, i), 0);
	}
}

/*
 * D8: one state folder serves one process. A second tpc-kv on A's --data (another
 * name, another port) exits 1 at once with a message naming the holder's pid; A goes
 * on serving.
 */
static void test_second_process_on_a_state_folder_exits_naming_the_holder(void **state)
{
	struct fx *f = *state;
	char port[64], log[PATH_MAX + 48], want[64];
	int st = 0;

	start_cluster(f);
	snprintf(port, sizeof(port), "127.0.0.1:%d", tpc_free_port());
	snprintf(log, sizeof(log), "%s/second.log", f->c->dir);
	char *argv[] = { TPC_KV_BIN, "--name", "other", "--listen", port, "--coordinator",
			 f->c->hostport, "--data", f->kv[A].data, NULL };
	tpc_proc *second = tpc_proc_spawn(f->c->procs, argv, log);
	assert_non_null(second);
	if (tpc_proc_wait_exit(second, WAIT_MS, &st) != 0)
		fail_msg("a second tpc-kv on %s kept running", f->kv[A].data);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	snprintf(want, sizeof(want), "in use by another process (pid %ld)",
		 (long)tpc_proc_pid(f->kv[A].proc));
	if (!file_has(log, want)) {
		tpc_proc_dump(second);
		fail_msg("the second tpc-kv did not say \"%s\"", want);
	}
	tpc_wc *wc = client_open(f->c, NULL); /* A is unharmed */
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "still", "here");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	wait_applied(f, A, "still", "here", txid);
}

/* The id and incarnation service @p i logged at its start number @p nth (1-based). */
static void kv_identity(struct fx *f, int i, int nth, char id[40], uint64_t *inc)
{
	FILE *fp = fopen(f->kv[i].log, "r");
	char line[2048], want[64];
	int seen = 0;

	assert_non_null(fp);
	snprintf(want, sizeof(want), "participant %s: id ", f->kv[i].name);
	while (seen < nth && fgets(line, sizeof(line), fp)) {
		char *at = strstr(line, want);
		unsigned long long n = 0;
		if (!at || sscanf(at + strlen(want), "%32[0-9a-f], incarnation %llu", id, &n) != 2)
			continue;
		*inc = n;
		seen++;
	}
	fclose(fp);
	if (seen < nth)
		fail_msg("%s logged its identity %d time(s), not %d", f->kv[i].log, seen, nth);
	assert_int_equal(strlen(id), 32);
}

/*
 * D8: the participant id lives in the state folder and survives restarts (kill -9 and a
 * clean stop alike); every start is a new, higher incarnation.
 */
static void test_participant_id_persists_and_incarnation_rises_across_restarts(void **state)
{
	struct fx *f = *state;
	char id1[40], id2[40], id3[40];
	uint64_t inc1 = 0, inc2 = 0, inc3 = 0;
	int st;

	start_cluster(f);
	wait_file_has(f->kv[A].log, "incarnation 1");
	kv_identity(f, A, 1, id1, &inc1);
	assert_int_equal(inc1, 1);
	assert_int_equal(tpc_proc_kill9(f->kv[A].proc), 0);
	kv_close_conn(f, A);
	kv_start(f, A, NULL, NULL);
	wait_file_has(f->kv[A].log, "incarnation 2");
	kv_identity(f, A, 2, id2, &inc2);
	assert_int_equal(tpc_proc_term(f->kv[A].proc, WAIT_MS, &st), 0);
	kv_close_conn(f, A);
	kv_start(f, A, NULL, NULL);
	wait_file_has(f->kv[A].log, "incarnation 3");
	kv_identity(f, A, 3, id3, &inc3);
	assert_string_equal(id1, id2);
	assert_string_equal(id1, id3);
	assert_int_equal(inc2, 2);
	assert_int_equal(inc3, 3);
	char idb[40];
	uint64_t incb = 0;
	kv_identity(f, B, 1, idb, &incb); /* another folder, another participant */
	assert_string_not_equal(id1, idb);
	/* still one participant to the coordinator: a transaction commits on both */
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_put(f, A, txid, "k", "v");
	kv_put(f, B, txid, "k", "v");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	wait_applied(f, A, "k", "v", txid);
}

/*
 * D9: the LMDB sink's applied table is pruned once each PREPARED record's drop is
 * durable: after many commits it holds a handful of entries, not one per transaction.
 * And the COMMIT delivered again for a transaction whose entry went (the coordinator
 * died after every ack, before its completion was logged) applies nothing twice: the
 * participant, holding no record, acks it without reaching the sink.
 */
static void test_applied_table_stays_bounded_and_a_late_duplicate_commit_changes_nothing(
	void **state)
{
	struct fx *f = *state;
	enum { N = 60 };
	uint64_t last = 0;
	char v[16];
	int st = 0;

	coord_start(f->c, "coord.end.before_log=crash", NULL);
	kv_start(f, A, NULL, NULL);
	kv_start(f, B, NULL, NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t t1 = client_begin(wc, NULL);
	kv_put(f, A, t1, "first", "1");
	kv_put(f, B, t1, "first", "1");
	client_commit_expect(wc, t1, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	if (tpc_proc_wait_exit(f->c->coord, WAIT_MS, &st) != 0)
		fail_msg("the coordinator did not crash at coord.end.before_log");
	client_close(f->c, wc);
	for (int i = 0; i < NKV; i++) { /* applied, record dropped: the entry may go */
		wait_applied(f, i, "first", "1", t1);
		wait_prepared_empty(f, i);
	}
	coord_restart(f->c); /* sends t1's COMMIT again to both */
	assert_int_equal(coord_recovered(f->c), 1);
	wc = client_open(f->c, NULL);
	for (int n = 0; n < N; n++) {
		snprintf(v, sizeof(v), "%d", n);
		last = client_begin(wc, NULL);
		kv_put(f, A, last, "counter", v);
		kv_put(f, B, last, "counter", v);
		client_commit_expect(wc, last, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	}
	client_status_expect(wc, t1, TPC__TXN_STATUS__STATUS_COMMITTED);
	snprintf(v, sizeof(v), "%d", N - 1);
	for (int i = 0; i < NKV; i++) {
		wait_applied(f, i, "counter", v, last);
		wait_prepared_empty(f, i);
		struct dump d = kv_dump(f, i, "first", "1", t1);
		assert_int_equal(d.exact, 1); /* the duplicate changed nothing */
		assert_int_equal(d.key, 1);
		uint64_t n = kv_applied_count(f, i);
		if (n > N / 4)
			fail_msg("tpc-kv %s keeps %llu applied entries after %d commits",
				 f->kv[i].name, (unsigned long long)n, N + 1);
	}
}

/* ---- a fake coordinator: what the service says on the wire (D8) ------------------ */

struct fake_coord {
	int lfd;
	char hostport[64];
	tpc_wc *conn;      /* the service's current connection */
};

static void fake_listen(struct fx *f, struct fake_coord *fc)
{
	int port = 0;

	fc->lfd = tpc_listen_loopback(8, &port);
	assert_true(fc->lfd >= 0);
	snprintf(fc->hostport, sizeof(fc->hostport), "127.0.0.1:%d", port);
	fc->conn = NULL;
	f->coord = fc->hostport;
}

static void fake_close(struct fake_coord *fc)
{
	tpc_wc_free(fc->conn);
	fc->conn = NULL;
	close(fc->lfd);
}

static Tpc__Envelope *fake_expect(struct fake_coord *fc, Tpc__Envelope__BodyCase body)
{
	Tpc__Envelope *e = tpc_wc_recv_body(fc->conn, body, WAIT_MS);

	if (!e)
		fail_msg("the service never sent %s: %s", tpc_wire_body_name(body),
			 tpc_wc_errmsg(fc->conn));
	return e;
}

static void fake_send(struct fake_coord *fc, Tpc__Envelope *env)
{
	assert_int_equal(tpc_wc_send(fc->conn, env), 0);
}

/* Accept the service's next connection and take its Hello (the caller frees it). */
static Tpc__Envelope *fake_accept_hello(struct fake_coord *fc)
{
	tpc_wc_free(fc->conn);
	fc->conn = tpc_wc_accept(fc->lfd, WAIT_MS);
	if (!fc->conn)
		fail_msg("the service did not connect to the fake coordinator");
	Tpc__Envelope *e = fake_expect(fc, TPC__ENVELOPE__BODY_HELLO);
	assert_int_equal(e->hello->role, TPC__ROLE__ROLE_PARTICIPANT);
	assert_int_equal(e->hello->protocol_version, TPC_PROTOCOL_VERSION);
	assert_int_equal(e->hello->participant_id.len, 16);
	return e;
}

static void fake_hello_reply(struct fake_coord *fc)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__HelloReply r = TPC__HELLO_REPLY__INIT;

	r.epoch = 1;
	r.protocol_version = TPC_PROTOCOL_VERSION;
	env.body_case = TPC__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &r;
	fake_send(fc, &env);
}

/* KvPut to service @p i; the fake coordinator takes the Join (checking its incarnation)
 * and acknowledges it; then the put's reply comes. */
static void fake_put(struct fx *f, struct fake_coord *fc, int i, uint64_t txid,
		     const char *key, const char *value, uint64_t incarnation)
{
	struct kv_svc *k = &f->kv[i];
	Tpc__Envelope req = TPC__ENVELOPE__INIT, env = TPC__ENVELOPE__INIT;
	Tpc__KvPut put = TPC__KV_PUT__INIT;
	Tpc__JoinReply jr = TPC__JOIN_REPLY__INIT;
	char err[160];

	if (!k->wc && tpc_wc_connect(k->hostport, WAIT_MS, &k->wc, err, sizeof(err)) != 0)
		fail_msg("connect to tpc-kv %s: %s", k->name, err);
	put.txid = txid;
	put.key = (ProtobufCBinaryData){ strlen(key), (uint8_t *)key };
	put.value = (ProtobufCBinaryData){ strlen(value), (uint8_t *)value };
	req.request_id = tpc_wc_next_request_id(k->wc);
	req.body_case = TPC__ENVELOPE__BODY_KV_PUT;
	req.kv_put = &put;
	assert_int_equal(tpc_wc_send(k->wc, &req), 0);
	Tpc__Envelope *j = fake_expect(fc, TPC__ENVELOPE__BODY_JOIN);
	assert_int_equal(j->join->txid, txid);
	assert_string_equal(j->join->participant, k->name);
	assert_int_equal(j->join->incarnation, incarnation);
	jr.txid = txid;
	env.request_id = j->request_id;
	env.body_case = TPC__ENVELOPE__BODY_JOIN_REPLY;
	env.join_reply = &jr;
	fake_send(fc, &env);
	tpc__envelope__free_unpacked(j, NULL);
	Tpc__Envelope *r = tpc_wc_recv_body(k->wc, TPC__ENVELOPE__BODY_KV_PUT_REPLY, WAIT_MS);
	if (!r)
		fail_msg("no KvPutReply from %s: %s", k->name, tpc_wc_errmsg(k->wc));
	tpc__envelope__free_unpacked(r, NULL);
}

static void fake_expect_vote(struct fake_coord *fc, uint64_t txid, uint64_t incarnation)
{
	Tpc__Envelope *v = fake_expect(fc, TPC__ENVELOPE__BODY_VOTE);

	assert_int_equal(v->vote->txid, txid);
	assert_int_equal(v->vote->vote, TPC__VOTE_KIND__VOTE_YES);
	assert_int_equal(v->vote->incarnation, incarnation);
	tpc__envelope__free_unpacked(v, NULL);
}

/*
 * D8 on the wire: the Hello names the folder's participant id and the incarnation, a
 * Join the incarnation; after kill -9 the next Hello has the same id, the next
 * incarnation, and lists the txid held PREPARED; the YES re-sent from that record names
 * the incarnation that joined (1), while a new Join names the new one (2).
 */
static void test_hello_join_and_vote_carry_the_folder_identity_and_incarnations(void **state)
{
	struct fx *f = *state;
	struct fake_coord fc;
	uint8_t id[16];

	fake_listen(f, &fc);
	kv_start(f, A, NULL, NULL);
	Tpc__Envelope *h = fake_accept_hello(&fc);
	assert_string_equal(h->hello->name, "A");
	assert_int_equal(h->hello->incarnation, 1);
	assert_int_equal(h->hello->n_prepared_txids, 0);
	memcpy(id, h->hello->participant_id.data, sizeof(id));
	tpc__envelope__free_unpacked(h, NULL);
	fake_hello_reply(&fc);

	fake_put(f, &fc, A, 77, "held", "1", 1);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Prepare pr = TPC__PREPARE__INIT;
	pr.txid = 77;
	pr.epoch = 1;
	env.body_case = TPC__ENVELOPE__BODY_PREPARE;
	env.prepare = &pr;
	fake_send(&fc, &env);
	fake_expect_vote(&fc, 77, 1);

	assert_int_equal(tpc_proc_kill9(f->kv[A].proc), 0);
	kv_close_conn(f, A);
	kv_start(f, A, NULL, NULL);
	h = fake_accept_hello(&fc);
	assert_memory_equal(h->hello->participant_id.data, id, sizeof(id));
	assert_int_equal(h->hello->incarnation, 2);
	assert_int_equal(h->hello->n_prepared_txids, 1);
	assert_int_equal(h->hello->prepared_txids[0], 77);
	tpc__envelope__free_unpacked(h, NULL);
	fake_hello_reply(&fc);

	Tpc__Envelope *q = fake_expect(&fc, TPC__ENVELOPE__BODY_STATUS_QUERY);
	Tpc__StatusReply sr = TPC__STATUS_REPLY__INIT;
	sr.txid = 77;
	sr.status = TPC__TXN_STATUS__STATUS_PENDING;
	env = (Tpc__Envelope)TPC__ENVELOPE__INIT;
	env.request_id = q->request_id;
	env.body_case = TPC__ENVELOPE__BODY_STATUS_REPLY;
	env.status_reply = &sr;
	tpc__envelope__free_unpacked(q, NULL);
	fake_send(&fc, &env);
	fake_expect_vote(&fc, 77, 1); /* the record's incarnation, not the current one */

	fake_put(f, &fc, A, 78, "fresh", "2", 2); /* a live join: the current incarnation */
	Tpc__Decision d = TPC__DECISION__INIT;
	d.txid = 77;
	d.decision = TPC__DECISION_KIND__DECISION_COMMIT;
	d.epoch = 1;
	env = (Tpc__Envelope)TPC__ENVELOPE__INIT;
	env.body_case = TPC__ENVELOPE__BODY_DECISION;
	env.decision = &d;
	fake_send(&fc, &env);
	Tpc__Envelope *a = fake_expect(&fc, TPC__ENVELOPE__BODY_ACK);
	assert_int_equal(a->ack->txid, 77);
	tpc__envelope__free_unpacked(a, NULL);
	wait_applied(f, A, "held", "1", 77);
	fake_close(&fc);
}

/*
 * D8: the coordinator refuses the identity (the name is bound to another folder): the
 * service stops at once with exit 1 and a message that names the name and what to do,
 * and never connects again.
 */
static void test_identity_refused_stops_the_service_with_exit_1(void **state)
{
	struct fx *f = *state;
	struct fake_coord fc;
	int st = 0;

	fake_listen(f, &fc);
	kv_start(f, A, NULL, NULL);
	Tpc__Envelope *h = fake_accept_hello(&fc);
	tpc__envelope__free_unpacked(h, NULL);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Error e = TPC__ERROR__INIT;
	e.code = TPC__ERROR_CODE__ERR_IDENTITY;
	e.message = "participant name A is bound to another participant id";
	env.body_case = TPC__ENVELOPE__BODY_ERROR;
	env.error = &e;
	fake_send(&fc, &env);
	if (tpc_proc_wait_exit(f->kv[A].proc, WAIT_MS, &st) != 0)
		fail_msg("tpc-kv went on after its identity was refused");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_true(file_has(f->kv[A].log, "refused participant \"A\": participant name A "
					   "is bound to another participant id"));
	assert_true(file_has(f->kv[A].log, "tpcctl participant forget A"));
	tpc_wc *again = tpc_wc_accept(fc.lfd, 0);
	if (again) {
		tpc_wc_free(again);
		fail_msg("tpc-kv reconnected after ERR_IDENTITY");
	}
	kv_close_conn(f, A);
	fake_close(&fc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_applies_the_writes_on_both_services,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_abort_applies_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_vote_aborts_on_every_service, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_kill_after_prepared_log_before_vote_aborts,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_after_yes_vote_applies_after_restart,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_after_apply_before_ack_applies_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_coordinator_restart_services_reconnect,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_staged_writes_expire_vote_no_at_once_and_later_writes_fail, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_second_process_on_a_state_folder_exits_naming_the_holder, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_participant_id_persists_and_incarnation_rises_across_restarts, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_applied_table_stays_bounded_and_a_late_duplicate_commit_changes_nothing,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hello_join_and_vote_carry_the_folder_identity_and_incarnations, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_identity_refused_stops_the_service_with_exit_1,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
