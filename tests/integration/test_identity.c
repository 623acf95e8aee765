/*
 * test_identity.c - a participant is one state folder, not a name (D8), tried from
 * outside with real processes: one tpc-coordinator (admin API on a free port) and
 * tpc-kv services kv-a and kv-b, the test being the client (Begin and Commit at the
 * coordinator, KvPut to the services). What the services applied is read back with
 * `tpc-kv --dump`; what the coordinator holds through its admin API.
 *
 * Covered (issue 10, scenarios 1 and 2):
 *  - a write sent to a participant after it restarted (kill -9) cannot re-join the
 *    transaction its lost incarnation joined: the write fails, the transaction aborts,
 *    no participant keeps any of it;
 *  - the same when the participant's staged writes expired locally (its --txn-timeout
 *    shorter than the transaction's);
 *  - a second process under a bound name (another --data) is refused and exits with a
 *    message naming the name and `tpcctl participant forget`; the real one is not
 *    disturbed (no reconnects) and still commits;
 *  - a second process on a folder in use exits 1 naming the holder's pid;
 *  - such a stranger never takes the decision of a transaction the real participant
 *    holds prepared: it stays outstanding until the real one comes back and applies it.
 *
 * A test collects what it finds wrong as it goes (struct findings) and fails once at the
 * end with all of it, so a failure says the whole story (e.g. "the put was taken, the
 * commit answered COMMITTED, kv-b lost its first write"). Nothing sleeps a fixed time:
 * each wait polls a condition against a deadline. The cluster (coord_harness.c) kills
 * every process and removes the folder in teardown.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include "admin_harness.h"
#include "coord_harness.h"
#include "httpc.h"
#include "kv_harness.h"
#include "wire.h"

#define POLL_MS 20             /* between two looks at a condition */
#define TXN_TIMEOUT_MS 60000   /* the transactions' own timeout: never reached here */

enum { A, B, S, NKV }; /* S: a second process, the "stranger" */

struct fx {
	struct cluster *c;
	struct kv_svc kv[NKV];
	int admin_port;
	char admin[64];
	long long connects_before; /* kv-a's connects when a stranger started */
	uint64_t held_txid;        /* the transaction kv-a holds prepared (stranger tests) */
};

/* What a test found wrong, in order; the test fails with all of it at the end. */
struct findings {
	char text[4096];
	size_t len;
	int n;
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
	kv_svc_init(&f->kv[A], f->c, "kv-a", "a");
	kv_svc_init(&f->kv[B], f->c, "kv-b", "b");
	kv_svc_init(&f->kv[S], f->c, "kv-a", "stranger");
	f->admin_port = tpc_free_port();
	assert_true(f->admin_port > 0);
	snprintf(f->admin, sizeof(f->admin), "127.0.0.1:%d", f->admin_port);
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

/* ---- findings ------------------------------------------------------------------- */

static void finding(struct findings *fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void finding(struct findings *fd, const char *fmt, ...)
{
	va_list ap;

	if (fd->len + 8 >= sizeof(fd->text))
		return;
	fd->len += (size_t)snprintf(fd->text + fd->len, sizeof(fd->text) - fd->len, "  %d. ",
				    ++fd->n);
	va_start(ap, fmt);
	int k = vsnprintf(fd->text + fd->len, sizeof(fd->text) - fd->len, fmt, ap);
	va_end(ap);
	fd->len = k < 0 ? fd->len : fd->len + (size_t)k;
	if (fd->len + 1 < sizeof(fd->text))
		fd->text[fd->len++] = '\n';
	if (fd->len >= sizeof(fd->text))
		fd->len = sizeof(fd->text) - 1;
	fd->text[fd->len] = '\0';
}

static void findings_check(const struct findings *fd)
{
	if (fd->n)
		fail_msg("%d thing(s) went wrong:\n%s", fd->n, fd->text);
}

/* ---- the coordinator and its admin API ------------------------------------------- */

static void start_coordinator(struct fx *f)
{
	coord_start(f->c, NULL, "--admin", f->admin, "--txn-timeout", "120s", NULL);
	if (tpc_wait_port("127.0.0.1", f->admin_port, WAIT_MS) != 0)
		fail_msg("the admin API did not listen on %s", f->admin);
}

/* GET @p path: the JSON body (the caller decrefs) and *status. */
static json_t *admin_get(struct fx *f, const char *path, int *status)
{
	return admin_get_json(f->admin_port, path, status);
}

/* One row of GET /v1/participants. */
struct peer_view {
	int found, connected;
	long long connects, outstanding;
};

static struct peer_view peer_view(struct fx *f, const char *name)
{
	struct peer_view v = { 0 };
	int status = 0;
	json_t *j = admin_get(f, "/v1/participants", &status), *row;
	size_t i;

	assert_int_equal(status, 200);
	json_array_foreach(json_object_get(j, "participants"), i, row) {
		const char *n = json_string_value(json_object_get(row, "name"));
		if (!n || strcmp(n, name) != 0)
			continue;
		v.found = 1;
		v.connected = json_is_true(json_object_get(row, "connected"));
		v.connects = json_integer_value(json_object_get(row, "connects"));
		v.outstanding = json_integer_value(json_object_get(row, "decisions_outstanding"));
	}
	json_decref(j);
	return v;
}

/* Wait until @p name is connected and has connected at least @p connects times. */
static void wait_peer_connected(struct fx *f, const char *name, long long connects)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	struct peer_view v;

	while (!(v = peer_view(f, name)).connected || v.connects < connects) {
		if (now_ms() >= deadline)
			fail_msg("%s never connected (connects %lld, waited for %lld)", name,
				 v.connects, connects);
		poll(NULL, 0, POLL_MS);
	}
}

static void wait_peer_disconnected(struct fx *f, const char *name)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (peer_view(f, name).connected) {
		if (now_ms() >= deadline)
			fail_msg("the coordinator still shows %s connected", name);
		poll(NULL, 0, POLL_MS);
	}
}

/*
 * GET /v1/transactions/TXID: the HTTP status (404: no open transaction), its state and
 * the state of participant @p name in it ("" when absent).
 */
static int txn_view(struct fx *f, uint64_t txid, const char *name, char *state, size_t slen,
		    char *pstate, size_t plen)
{
	char path[64];
	int status = 0;
	json_t *row;
	size_t i;

	snprintf(path, sizeof(path), "/v1/transactions/%llu", (unsigned long long)txid);
	json_t *j = admin_get(f, path, &status);
	const char *st = json_string_value(json_object_get(j, "state"));
	snprintf(state, slen, "%s", status == 200 && st ? st : "");
	snprintf(pstate, plen, "%s", "");
	json_array_foreach(json_object_get(j, "participants"), i, row) {
		const char *n = json_string_value(json_object_get(row, "name"));
		const char *ps = json_string_value(json_object_get(row, "state"));
		if (n && ps && strcmp(n, name) == 0)
			snprintf(pstate, plen, "%s", ps);
	}
	json_decref(j);
	return status;
}

/* ---- the client's side ---------------------------------------------------------- */

/* Begin with a timeout far longer than any wait here. */
static uint64_t begin_long(tpc_wc *wc)
{
	struct tpc_wc_begin b;
	int rc = tpc_wc_begin(wc, NULL, TXN_TIMEOUT_MS, &b);

	if (rc != 0)
		fail_msg("begin: %s (%s)", tpc_wc_strerror(rc), tpc_wc_errmsg(wc));
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_STARTED);
	return b.txid;
}

/* The put must be refused with an Error reply; a timeout or lost connection fails. */
static void expect_put_refused(struct findings *fd, struct kv_svc *k, uint64_t txid,
			       const char *key, const char *when)
{
	int rc = kv_svc_put_rc(k, txid, key, "late");

	if (rc == 0)
		finding(fd, "KvPut %s to %s %s was acknowledged: it joined txid %llu again", key,
			k->name, when, (unsigned long long)txid);
	else if (rc != TPC_WC_EREPLY)
		fail_msg("KvPut %s to %s %s: %s (%s), expected an Error reply", key, k->name, when,
			 tpc_wc_strerror(rc), tpc_wc_errmsg(k->wc));
}

static void expect_commit_aborted(struct findings *fd, tpc_wc *wc, uint64_t txid)
{
	struct tpc_wc_outcome o;
	int rc = tpc_wc_commit(wc, txid, &o);

	if (rc != 0)
		fail_msg("commit %llu: %s (%s)", (unsigned long long)txid, tpc_wc_strerror(rc),
			 tpc_wc_errmsg(wc));
	assert_int_equal(o.txid, txid);
	if (o.outcome != TPC__OUTCOME_KIND__OUTCOME_ABORTED)
		finding(fd, "Commit of txid %llu answered %s (%s), expected ABORTED",
			(unsigned long long)txid, tpc_wire_outcome_name(o.outcome), o.reason);
}

/*
 * Commit a marker through kv-a and kv-b and wait until both applied it: a service
 * handles the decisions of one coordinator connection in order, so whatever an earlier
 * transaction left to apply is applied by then.
 */
static void commit_through_both(struct fx *f, tpc_wc *wc, const char *key)
{
	uint64_t txid = begin_long(wc);

	kv_svc_put(&f->kv[A], txid, key, "m");
	kv_svc_put(&f->kv[B], txid, key, "m");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	kv_svc_wait_applied(&f->kv[A], key, "m", txid);
	kv_svc_wait_applied(&f->kv[B], key, "m", txid);
}

static void expect_nothing_applied(struct findings *fd, struct fx *f, int i, uint64_t txid)
{
	char lines[1024];
	int n = kv_svc_applied_in(&f->kv[i], txid, lines, sizeof(lines));

	if (n)
		finding(fd, "%s applied %d write(s) of txid %llu: %s", f->kv[i].name, n,
			(unsigned long long)txid, lines);
}

/* A transaction that landed at kv-a must hold the write kv-b acknowledged first. */
static void expect_no_write_lost(struct findings *fd, struct fx *f, uint64_t txid,
				 const char *b_first)
{
	char lines[1024], key_tab[64];

	if (!kv_svc_applied_in(&f->kv[A], txid, NULL, 0))
		return;
	kv_svc_applied_in(&f->kv[B], txid, lines, sizeof(lines));
	snprintf(key_tab, sizeof(key_tab), "%s\t", b_first);
	if (!strstr(lines, key_tab))
		finding(fd, "txid %llu landed in part: kv-a applied it, kv-b lost the write %s "
			"it had acknowledged", (unsigned long long)txid, b_first);
}

/* ---- processes ------------------------------------------------------------------ */

/* Whether the log of @p k has the decimal @p n with no digit either side. */
static int log_has_number(const struct kv_svc *k, long long n)
{
	FILE *fp = fopen(k->log, "r");
	char line[4096], num[32];
	int found = 0;

	if (!fp)
		return 0;
	snprintf(num, sizeof(num), "%lld", n);
	while (!found && fgets(line, sizeof(line), fp))
		for (const char *s = line; !found && (s = strstr(s, num)); s++)
			found = (s == line || s[-1] < '0' || s[-1] > '9') &&
				(s[strlen(num)] < '0' || s[strlen(num)] > '9');
	fclose(fp);
	return found;
}

/*
 * Wait for process @p k to exit by itself, until the deadline or until @p give_up says
 * waiting is pointless (it returns non-zero). @return 1 with *st set if it exited; 0 if
 * it was still running (it is then killed).
 */
static int wait_exit_or(struct fx *f, struct kv_svc *k, int (*give_up)(struct fx *f),
			int *st)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		if (tpc_proc_wait_exit(k->proc, POLL_MS * 5, st) == 0)
			return 1;
		if (now_ms() >= deadline || (give_up && give_up(f)))
			break;
	}
	tpc_proc_kill9(k->proc);
	return 0;
}

static void describe_exit(char *buf, size_t len, int st)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "wait status 0x%x", st);
}

/* ---- scenario 1: a write after the participant lost its staged writes ----------- */

/*
 * Begin T; kv-a and kv-b each take a write for T; kv-b is killed (-9) and restarted on
 * the same folder and name, and reconnects. A second write for T sent to kv-b must fail:
 * the incarnation that joined T is gone with its staged write, so T can only abort.
 */
static void test_write_after_restart_cannot_rejoin_the_transaction(void **state)
{
	struct fx *f = *state;
	struct findings fd = { .n = 0 };

	start_coordinator(f);
	kv_svc_start(&f->kv[A], f->c, NULL, NULL);
	kv_svc_start(&f->kv[B], f->c, NULL, NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = begin_long(wc);
	kv_svc_put(&f->kv[A], txid, "rejoin-a1", "1");
	kv_svc_put(&f->kv[B], txid, "rejoin-b1", "1");

	assert_int_equal(tpc_proc_kill9(f->kv[B].proc), 0);
	kv_svc_close_conn(&f->kv[B]);
	kv_svc_start(&f->kv[B], f->c, NULL, NULL);
	wait_peer_connected(f, "kv-b", 2);

	expect_put_refused(&fd, &f->kv[B], txid, "rejoin-b2", "after its restart");
	expect_commit_aborted(&fd, wc, txid);
	commit_through_both(f, wc, "marker");
	expect_nothing_applied(&fd, f, A, txid);
	expect_nothing_applied(&fd, f, B, txid);
	expect_no_write_lost(&fd, f, txid, "rejoin-b1");
	findings_check(&fd);
}

/* Whether kv-b's log says txid's staged writes expired, or T is no longer ACTIVE. */
static int expired_at_b(struct fx *f, uint64_t txid)
{
	char a[48], b[48], st[32], pst[32];

	snprintf(a, sizeof(a), "txid %llu:", (unsigned long long)txid);
	snprintf(b, sizeof(b), "txid %llu ", (unsigned long long)txid);
	if (kv_svc_log_count(&f->kv[B], a, "expire") || kv_svc_log_count(&f->kv[B], b, "expire"))
		return 1;
	int status = txn_view(f, txid, "kv-b", st, sizeof(st), pst, sizeof(pst));
	return status == 404 || (status == 200 && strcmp(st, "ACTIVE") != 0);
}

/*
 * kv-b's staged writes expire after 1 s, T's after a minute. Once kv-b's write for T
 * expired, a second write for T sent to kv-b must fail (not join T again), and T aborts.
 */
static void test_write_after_local_expiry_cannot_rejoin_the_transaction(void **state)
{
	static const char *const short_expiry[] = { "--txn-timeout", "1s", NULL };
	struct fx *f = *state;
	struct findings fd = { .n = 0 };

	start_coordinator(f);
	kv_svc_start(&f->kv[A], f->c, NULL, NULL);
	kv_svc_start(&f->kv[B], f->c, NULL, short_expiry);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = begin_long(wc);
	kv_svc_put(&f->kv[A], txid, "expiry-a1", "1");
	kv_svc_put(&f->kv[B], txid, "expiry-b1", "1");

	uint64_t deadline = now_ms() + WAIT_MS;
	while (!expired_at_b(f, txid)) {
		if (now_ms() >= deadline)
			fail_msg("kv-b's write for txid %llu never expired", (unsigned long long)txid);
		poll(NULL, 0, POLL_MS);
	}
	expect_put_refused(&fd, &f->kv[B], txid, "expiry-b2", "after its staged write expired");
	expect_commit_aborted(&fd, wc, txid);
	commit_through_both(f, wc, "marker");
	expect_nothing_applied(&fd, f, A, txid);
	expect_nothing_applied(&fd, f, B, txid);
	expect_no_write_lost(&fd, f, txid, "expiry-b1");
	findings_check(&fd);
}

/* ---- scenario 2: a second process under a name or on a folder ------------------- */

/* The stranger made kv-a reconnect more than twice: flapping, no point waiting more. */
static int kv_a_flaps(struct fx *f)
{
	return peer_view(f, "kv-a").connects > f->connects_before + 2;
}

/* Commit one transaction through kv-a and kv-b: kv-a is still a working participant. */
static void expect_kv_a_still_commits(struct fx *f, tpc_wc *wc, const char *key)
{
	assert_true(tpc_proc_alive(f->kv[A].proc));
	commit_through_both(f, wc, key);
}

/*
 * kv-a runs and is bound at the coordinator. A second tpc-kv starts with the name kv-a
 * and another --data: it is refused and exits non-zero, saying what to do (`tpcctl
 * participant forget kv-a`); kv-a never loses its connection and still commits.
 */
static void test_second_process_under_a_bound_name_is_refused(void **state)
{
	struct fx *f = *state;
	struct findings fd = { .n = 0 };
	char how[48];
	int st = 0;

	start_coordinator(f);
	kv_svc_start(&f->kv[A], f->c, NULL, NULL);
	kv_svc_start(&f->kv[B], f->c, NULL, NULL);
	wait_peer_connected(f, "kv-a", 1);
	wait_peer_connected(f, "kv-b", 1);
	long long before = f->connects_before = peer_view(f, "kv-a").connects;

	kv_svc_spawn(&f->kv[S], f->c, NULL, NULL);
	if (!wait_exit_or(f, &f->kv[S], kv_a_flaps, &st)) {
		finding(&fd, "the second kv-a (another --data) kept running and connected %d "
			"time(s) under the name", kv_svc_log_count(&f->kv[S],
			"connected to the coordinator", NULL));
	} else {
		describe_exit(how, sizeof(how), st);
		if (!WIFEXITED(st) || WEXITSTATUS(st) == 0)
			finding(&fd, "the second kv-a ended with %s, expected a non-zero exit", how);
		if (!kv_svc_log_count(&f->kv[S], "forget", "kv-a"))
			finding(&fd, "the second kv-a's message names neither kv-a nor `tpcctl "
				"participant forget`");
	}
	struct peer_view v = peer_view(f, "kv-a");
	if (v.connects != before)
		finding(&fd, "kv-a connected %lld time(s) at the coordinator meanwhile",
			v.connects - before);
	int lost = kv_svc_log_count(&f->kv[A], "lost the coordinator connection", NULL);
	if (lost)
		finding(&fd, "kv-a lost its coordinator connection %d time(s)", lost);

	tpc_wc *wc = client_open(f->c, NULL);
	expect_kv_a_still_commits(f, wc, "after-stranger");
	findings_check(&fd);
}

/*
 * A second tpc-kv (any name) on kv-a's --data: it exits 1 with a message naming the pid
 * of the process that holds the folder; kv-a keeps serving.
 */
static void test_second_process_on_a_folder_in_use_exits_naming_the_holder(void **state)
{
	struct fx *f = *state;
	struct findings fd = { .n = 0 };
	struct kv_svc *second = &f->kv[S];
	char how[48];
	int st = 0;

	start_coordinator(f);
	kv_svc_start(&f->kv[A], f->c, NULL, NULL);
	kv_svc_start(&f->kv[B], f->c, NULL, NULL);
	wait_peer_connected(f, "kv-a", 1);
	snprintf(second->name, sizeof(second->name), "kv-a2");
	snprintf(second->data, sizeof(second->data), "%s", f->kv[A].data);

	kv_svc_spawn(second, f->c, NULL, NULL);
	long long holder = (long long)tpc_proc_pid(f->kv[A].proc);
	if (!wait_exit_or(f, second, NULL, &st)) {
		finding(&fd, "a second tpc-kv on kv-a's --data ran for %d ms and connected %d "
			"time(s): nothing locks the folder", WAIT_MS,
			kv_svc_log_count(second, "connected to the coordinator", NULL));
	} else {
		describe_exit(how, sizeof(how), st);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 1)
			finding(&fd, "the second tpc-kv ended with %s, expected exit 1", how);
		if (!log_has_number(second, holder))
			finding(&fd, "its message does not name the holder's pid %lld", holder);
	}
	tpc_wc *wc = client_open(f->c, NULL);
	expect_kv_a_still_commits(f, wc, "after-second");
	findings_check(&fd);
}

/* Whether the coordinator no longer holds the transaction kv-a holds prepared. */
static int held_txn_completed(struct fx *f)
{
	char st[32], pst[32];

	return txn_view(f, f->held_txid, "kv-a", st, sizeof(st), pst, sizeof(pst)) == 404;
}

/* kv-a (killed right after its YES vote left) holds T prepared; T is COMMITTING. */
static uint64_t commit_with_kv_a_down_prepared(struct fx *f, tpc_wc *wc)
{
	char st[32], pst[32];
	int ws = 0;

	kv_svc_start(&f->kv[A], f->c, "part.vote.after_send=crash", NULL);
	kv_svc_start(&f->kv[B], f->c, NULL, NULL);
	uint64_t txid = begin_long(wc);
	kv_svc_put(&f->kv[A], txid, "held", "a");
	kv_svc_put(&f->kv[B], txid, "held", "b");
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	if (tpc_proc_wait_exit(f->kv[A].proc, WAIT_MS, &ws) != 0 || !WIFSIGNALED(ws))
		fail_msg("kv-a did not crash at part.vote.after_send (wait status 0x%x)", ws);
	kv_svc_close_conn(&f->kv[A]);
	wait_peer_disconnected(f, "kv-a");
	assert_int_equal(txn_view(f, txid, "kv-a", st, sizeof(st), pst, sizeof(pst)), 200);
	assert_string_equal(st, "COMMITTING");
	assert_string_equal(pst, "yes");
	return txid;
}

/*
 * kv-a holds T prepared (killed after its YES); T is COMMITTING. A stranger started
 * under the name kv-a (another folder, no record of T) must not take T's COMMIT: the
 * coordinator still owes it to kv-a, which applies it when it comes back.
 */
static void test_stranger_never_takes_the_decision_of_a_prepared_participant(void **state)
{
	struct fx *f = *state;
	struct findings fd = { .n = 0 };
	char st[32], pst[32];
	int ws = 0;

	start_coordinator(f);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = f->held_txid = commit_with_kv_a_down_prepared(f, wc);

	kv_svc_spawn(&f->kv[S], f->c, NULL, NULL);
	if (!wait_exit_or(f, &f->kv[S], held_txn_completed, &ws))
		finding(&fd, "the stranger named kv-a was not refused (still running)");
	int status = txn_view(f, txid, "kv-a", st, sizeof(st), pst, sizeof(pst));
	if (status == 404)
		finding(&fd, "the coordinator completed txid %llu while kv-a still holds it "
			"prepared: the stranger's ack was taken for kv-a's",
			(unsigned long long)txid);
	else if (strcmp(st, "COMMITTING") != 0 || strcmp(pst, "yes") != 0)
		finding(&fd, "txid %llu is %s with kv-a %s, expected COMMITTING with kv-a yes",
			(unsigned long long)txid, st, pst);

	kv_svc_start(&f->kv[A], f->c, NULL, NULL);
	kv_svc_wait_applied(&f->kv[A], "held", "a", txid);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (!held_txn_completed(f)) {
		if (now_ms() >= deadline)
			fail_msg("txid %llu never completed after kv-a came back",
				 (unsigned long long)txid);
		poll(NULL, 0, POLL_MS);
	}
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	findings_check(&fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_write_after_restart_cannot_rejoin_the_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_write_after_local_expiry_cannot_rejoin_the_transaction, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_second_process_under_a_bound_name_is_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_second_process_on_a_folder_in_use_exits_naming_the_holder, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_stranger_never_takes_the_decision_of_a_prepared_participant, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
