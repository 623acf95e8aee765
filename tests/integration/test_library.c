/*
 * test_library.c - libtpc as a service adopting it meets it (issue 14, the library),
 * with a real tpc-coordinator (admin API on a free port) and the library in processes:
 * examples/embed, tpc-kv, and the test itself as the initiator.
 *
 * Covered:
 *  - examples/embed drains its participant before it exits: the coordinator is left
 *    with no open transaction (before tpc_participant_drain() it kept one, waiting for
 *    the example's Ack, on every run).
 *  - with the coordinator down, a participant fails fast: tpc-kv answers a Put with an
 *    Error naming the unreachable coordinator within about --unreachable-timeout (not
 *    the 60 s transaction timeout) and logs one WARN line for it, not one per Put;
 *    in the library, tpc_participant_stage_wait() returns TPC_EUNREACHABLE and works
 *    again once the coordinator is up.
 *  - a sink's NO vote reaches the client with the participant's name and the sink's own
 *    words (Outcome.reason, tpc_client_last_outcome()), the admin API (GET of the
 *    aborted txid) and the coordinator's log line; `tpcctl txn abort` reaches the
 *    client as "aborted by operator".
 *  - tpc-kv --metrics: the participant's stats as Prometheus text (prepared count and
 *    oldest age while a transaction is held prepared, applies, votes by kind, the
 *    coordinator connection), accepted by `promtool check metrics`.
 *
 * Nothing sleeps a fixed time: each wait polls a condition against a deadline. The
 * cluster (coord_harness.c) kills every process and removes the folder in teardown.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "admin_harness.h"
#include "coord_harness.h"
#include "httpc.h"
#include "kv_harness.h"
#include "tpc/client.h"
#include "tpc/participant.h"
#include "tpc/sink_lmdb.h"

#define POLL_MS 20

/* A test's view of the cluster (the cmocka state, coord_harness.c) and the admin API. */
struct fx {
	struct cluster *c;
	int admin_port;
	char admin[64];
};

static struct fx fx_new(void **state)
{
	struct fx f = { .c = *state, .admin_port = tpc_free_port() };

	assert_true(f.admin_port > 0);
	snprintf(f.admin, sizeof(f.admin), "127.0.0.1:%d", f.admin_port);
	return f;
}

static void start_coordinator(struct fx *f)
{
	coord_start(f->c, NULL, "--admin", f->admin, "--txn-timeout", "120s", NULL);
	if (tpc_wait_port("127.0.0.1", f->admin_port, WAIT_MS) != 0)
		fail_msg("the admin API did not listen on %s", f->admin);
}

/* The coordinator's count of open transactions. */
static long long open_txns(struct fx *f)
{
	int status;
	json_t *j = admin_get_json(f->admin_port, "/v1/transactions", &status);
	long long n = json_integer_value(json_object_get(j, "open"));

	assert_int_equal(status, 200);
	json_decref(j);
	return n;
}

/* ---- 1. drain ---------------------------------------------------------------------- */

static void test_embed_example_leaves_no_open_transaction(void **state)
{
	struct fx fx = fx_new(state), *f = &fx;
	char data[PATH_MAX + 16], out[512];
	int status = -1;

	start_coordinator(f);
	snprintf(data, sizeof(data), "%s/embed", f->c->dir);
	char *argv[] = { TPC_EMBED_BIN, f->c->hostport, data, NULL };
	for (int run = 0; run < 2; run++) {
		assert_int_equal(tpc_run_capture(argv, out, sizeof(out), WAIT_MS, &status), 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(out, "COMMITTED"))
			fail_msg("run %d: embed exited %d: %s", run, status, out);
		/* The Ack left before the example exited: the coordinator completes the
		 * transaction once it reads it. Without the drain it never does. */
		uint64_t deadline = now_ms() + WAIT_MS;
		long long n;
		while ((n = open_txns(f)) != 0) {
			if (now_ms() >= deadline)
				fail_msg("run %d: the coordinator still has %lld open transaction(s) "
					 "after embed exited", run, n);
			poll(NULL, 0, POLL_MS);
		}
	}
}

/* ---- 2. fail fast while the coordinator is unreachable ----------------------------- */

static void test_kv_put_fails_fast_while_the_coordinator_is_down(void **state)
{
	struct fx fx = fx_new(state), *f = &fx;
	struct kv_svc kv;
	const char *const extra[] = { "--unreachable-timeout", "300ms", NULL };

	kv_svc_init(&kv, f->c, "kv-down", "kv-down"); /* the coordinator was never started */
	kv_svc_start(&kv, f->c, NULL, extra);
	for (uint64_t txid = 1; txid <= 3; txid++) {
		uint64_t t0 = now_ms();
		int rc = kv_svc_put_rc(&kv, txid, "k", "v");
		uint64_t took = now_ms() - t0;
		if (rc != TPC_WC_EREPLY)
			fail_msg("put %llu: %d (%s), expected an Error", (unsigned long long)txid, rc,
				 tpc_wc_errmsg(kv.wc));
		assert_int_equal(tpc_wc_error_code(kv.wc), TPC__ERROR_CODE__ERR_UNAVAILABLE);
		if (!strstr(tpc_wc_errmsg(kv.wc), "unreachable"))
			fail_msg("put %llu: the Error does not say the coordinator is unreachable: %s",
				 (unsigned long long)txid, tpc_wc_errmsg(kv.wc));
		if (took > 5000)
			fail_msg("put %llu took %llu ms to fail", (unsigned long long)txid,
				 (unsigned long long)took);
	}
	/* once when it started, not once per Put (the next line is 30 s later) */
	assert_int_equal(kv_svc_log_count(&kv, "has been unreachable", NULL), 1);
	kv_svc_close_conn(&kv);
}

struct lib_part {
	tpc_participant *p;
	char state[PATH_MAX + 16], sink[PATH_MAX + 16];
};

static void lib_part_start(struct fx *f, struct lib_part *lp, const char *name,
			   uint32_t unreachable_ms)
{
	tpc_participant_config cfg;
	int err = 0;

	snprintf(lp->state, sizeof(lp->state), "%s/%s-state", f->c->dir, name);
	snprintf(lp->sink, sizeof(lp->sink), "%s/%s-sink", f->c->dir, name);
	tpc_sink *sink = tpc_sink_lmdb_open(lp->sink, 0, &err);
	assert_non_null(sink);
	tpc_participant_config_init(&cfg);
	cfg.coordinator = f->c->hostport;
	cfg.name = name;
	cfg.state_dir = lp->state;
	cfg.unreachable_timeout_ms = unreachable_ms;
	lp->p = tpc_participant_new(&cfg, sink, &err);
	assert_non_null(lp->p);
	assert_int_equal(tpc_participant_start(lp->p), 0);
}

static void lib_part_wait_connected(struct lib_part *lp)
{
	tpc_participant_stats st;
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		tpc_participant_get_stats(lp->p, &st);
		if (st.connected)
			return;
		if (now_ms() >= deadline)
			fail_msg("the participant did not connect: %s", tpc_participant_errmsg(lp->p));
		poll(NULL, 0, POLL_MS);
	}
}

static void test_stage_wait_fails_with_eunreachable_then_works_again(void **state)
{
	struct fx fx = fx_new(state), *f = &fx;
	struct lib_part lp;

	lib_part_start(f, &lp, "lib-down", 200);
	uint64_t t0 = now_ms();
	int rc = tpc_participant_stage_wait(lp.p, 7, "k", 1, "v", 1);
	uint64_t took = now_ms() - t0;
	if (rc != TPC_EUNREACHABLE)
		fail_msg("stage_wait: %s (%s)", tpc_strerror(rc), tpc_participant_errmsg(lp.p));
	assert_true(took < 5000);
	/* once it has been unreachable that long, a new txid fails at once */
	t0 = now_ms();
	assert_int_equal(tpc_participant_stage_wait(lp.p, 8, "k", 1, "v", 1), TPC_EUNREACHABLE);
	assert_true(now_ms() - t0 < 1000);
	assert_non_null(strstr(tpc_participant_errmsg(lp.p), "unreachable"));
	assert_string_not_equal(tpc_strerror(TPC_EUNREACHABLE), tpc_strerror(-ETIMEDOUT));

	start_coordinator(f);
	lib_part_wait_connected(&lp);
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	assert_int_equal(tpc_participant_stage_wait(lp.p, txid, "k", 1, "v", 1), 0);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	assert_int_equal(tpc_participant_drain(lp.p, WAIT_MS, NULL), 0);
	tpc_participant_free(lp.p);
}

/* ---- 3. a NO vote's reason, and the operator's abort, reach the client -------------- */

/* A ledger that takes no negative amounts: prepare() refuses them in its own words. */
static int ledger_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t len)
{
	(void)self;
	for (size_t i = 0; i < txn->nwrites; i++)
		if (txn->writes[i].value_len && *(const char *)txn->writes[i].value == '-') {
			snprintf(reason, len, "negative amount");
			return TPC_EREFUSED;
		}
	return 0;
}

static int ledger_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	(void)self;
	(void)txns;
	(void)n;
	return 0;
}

static const tpc_sink_ops ledger_ops = { .prepare = ledger_prepare, .commit = ledger_commit };

static tpc_participant *ledger_start(struct fx *f)
{
	tpc_participant_config cfg;
	char state[PATH_MAX + 16];
	int err = 0;

	snprintf(state, sizeof(state), "%s/ledger-state", f->c->dir);
	tpc_participant_config_init(&cfg);
	cfg.coordinator = f->c->hostport;
	cfg.name = "ledger";
	cfg.state_dir = state;
	tpc_participant *p = tpc_participant_new(&cfg, tpc_sink_new(&ledger_ops, NULL), &err);
	assert_non_null(p);
	assert_int_equal(tpc_participant_start(p), 0);
	return p;
}

static tpc_client *client_new(struct fx *f)
{
	tpc_client_config cfg;
	int err = 0;

	tpc_client_config_init(&cfg);
	cfg.coordinator = f->c->hostport;
	tpc_client *c = tpc_client_new(&cfg, &err);
	assert_non_null(c);
	return c;
}

/* GET the aborted txid: 404, with why. */
static void expect_admin_abort(struct fx *f, tpc_txid txid, const char *reason,
			       const char *participant, const char *participant_reason)
{
	char path[64];
	int status;

	snprintf(path, sizeof(path), "/v1/transactions/%llu", (unsigned long long)txid);
	json_t *j = admin_get_json(f->admin_port, path, &status);
	assert_int_equal(status, 404);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ABORTED");
	assert_string_equal(json_string_value(json_object_get(j, "reason")), reason);
	if (participant) {
		assert_string_equal(json_string_value(json_object_get(j, "abort_participant")),
				    participant);
		assert_string_equal(json_string_value(json_object_get(j, "abort_reason")),
				    participant_reason);
	} else {
		assert_true(json_is_null(json_object_get(j, "abort_participant")));
	}
	json_decref(j);
}

static void test_no_vote_reason_reaches_client_admin_api_and_log(void **state)
{
	struct fx fx = fx_new(state), *f = &fx;
	tpc_txid txid = 0;
	tpc_outcome o = TPC_OUTCOME_UNKNOWN;
	tpc_client_outcome info;
	char reason[256], line[128];
	const char *want = "participant \"ledger\" voted NO: negative amount";

	start_coordinator(f);
	tpc_participant *p = ledger_start(f);
	tpc_client *c = client_new(f);
	assert_int_equal(tpc_client_last_outcome(c, &info), -ENOENT);
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), 0);
	assert_int_equal(tpc_participant_stage_wait(p, txid, "acct:7", 6, "-50", 3), 0);
	assert_int_equal(tpc_client_commit(c, txid, &o, reason, sizeof(reason)), 0);
	assert_int_equal(o, TPC_OUTCOME_ABORTED);
	assert_string_equal(reason, want);
	assert_int_equal(tpc_client_last_outcome(c, &info), 0);
	assert_int_equal(info.txid, txid);
	assert_int_equal(info.outcome, TPC_OUTCOME_ABORTED);
	assert_string_equal(info.reason, want);
	assert_string_equal(info.participant, "ledger");
	assert_string_equal(info.participant_reason, "negative amount");

	/* asked again after the abort: the same answer, from memory */
	assert_int_equal(tpc_client_commit(c, txid, &o, reason, sizeof(reason)), 0);
	assert_int_equal(o, TPC_OUTCOME_ABORTED);
	assert_string_equal(reason, want);
	expect_admin_abort(f, txid, want, "ledger", "negative amount");
	snprintf(line, sizeof(line), "txid %llu aborted: %s", (unsigned long long)txid, want);
	coord_wait_log(f->c, line);

	/* a positive amount still commits */
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), 0);
	assert_int_equal(tpc_participant_stage_wait(p, txid, "acct:7", 6, "50", 2), 0);
	assert_int_equal(tpc_client_commit(c, txid, &o, NULL, 0), 0);
	assert_int_equal(o, TPC_OUTCOME_COMMITTED);
	size_t in_doubt = 99;
	assert_int_equal(tpc_participant_drain(p, WAIT_MS, &in_doubt), 0);
	assert_int_equal(in_doubt, 0);
	/* drained: no new transactions */
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), 0);
	assert_int_equal(tpc_participant_stage_wait(p, txid, "acct:7", 6, "1", 1), TPC_ESTATE);
	assert_non_null(strstr(tpc_participant_errmsg(p), "draining"));
	tpc_client_free(c);
	tpc_participant_free(p);
}

static void test_operator_abort_tells_the_client(void **state)
{
	struct fx fx = fx_new(state), *f = &fx;
	tpc_txid txid = 0;
	tpc_outcome o = TPC_OUTCOME_UNKNOWN;
	char reason[256], id[32], out[2048];
	int status = -1;

	start_coordinator(f);
	tpc_participant *p = ledger_start(f);
	tpc_client *c = client_new(f);
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), 0);
	assert_int_equal(tpc_participant_stage_wait(p, txid, "acct:8", 6, "5", 1), 0);
	snprintf(id, sizeof(id), "%llu", (unsigned long long)txid);
	char *argv[] = { TPCCTL_BIN, "--admin", f->admin, "txn", "abort", id, "--reason",
			 "suspected fraud", NULL };
	assert_int_equal(tpc_run_capture(argv, out, sizeof(out), WAIT_MS, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("tpcctl txn abort exited %d: %s", status, out);

	assert_int_equal(tpc_client_commit(c, txid, &o, reason, sizeof(reason)), 0);
	assert_int_equal(o, TPC_OUTCOME_ABORTED);
	assert_string_equal(reason, "aborted by operator");
	expect_admin_abort(f, txid, "aborted by operator", NULL, NULL);
	tpc_client_free(c);
	tpc_participant_free(p);
}

/* ---- 5. tpc-kv --metrics ---------------------------------------------------------- */

/* GET /metrics: the body (malloc'd). */
static char *scrape(int port)
{
	struct httpc_resp r;
	int rc = httpc_request("127.0.0.1", port, "GET", "/metrics", NULL, NULL, WAIT_MS, &r);

	if (rc != 0)
		fail_msg("GET /metrics: %s", strerror(-rc));
	if (r.status != 200)
		fail_msg("GET /metrics: status %d: %s", r.status, r.body);
	char *body = strdup(r.body);
	httpc_resp_free(&r);
	assert_non_null(body);
	return body;
}

/* The value of the sample line that starts with @p series followed by a space; -1 if
 * there is none. */
static double sample(const char *text, const char *series)
{
	size_t len = strlen(series);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, len) == 0 && l[len] == ' ')
			return strtod(l + len + 1, NULL);
	return -1;
}

/* Scrape until @p series reads @p want (fails after WAIT_MS). @return the last body. */
static char *scrape_until(int port, const char *series, double want)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		char *text = scrape(port);
		if (sample(text, series) == want)
			return text;
		if (now_ms() >= deadline)
			fail_msg("%s never became %g:\n%s", series, want, text);
		free(text);
		poll(NULL, 0, POLL_MS);
	}
}

static void test_kv_metrics_export_libtpc_stats_for_prometheus(void **state)
{
	struct fx fx = fx_new(state), *f = &fx;
	struct kv_svc kv;
	char mhost[64], reason[128];
	int mport = tpc_free_port();

	assert_true(mport > 0);
	snprintf(mhost, sizeof(mhost), "127.0.0.1:%d", mport);
	const char *const extra[] = { "--metrics", mhost, "--refuse-key", "bad", NULL };
	start_coordinator(f);
	kv_svc_init(&kv, f->c, "kv-m", "kv-m");
	kv_svc_start(&kv, f->c, NULL, extra);
	free(scrape_until(mport, "tpc_participant_coordinator_connected", 1));

	/* one commit, one NO */
	tpc_wc *wc = client_open(f->c, NULL);
	uint64_t t1 = client_begin(wc, NULL);
	kv_svc_put(&kv, t1, "good", "1");
	client_commit_expect(wc, t1, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	uint64_t t2 = client_begin(wc, NULL);
	kv_svc_put(&kv, t2, "bad", "1");
	client_commit_expect(wc, t2, TPC__OUTCOME_KIND__OUTCOME_ABORTED, reason, sizeof(reason));
	assert_non_null(strstr(reason, "participant \"kv-m\" voted NO"));

	/* one held prepared: kv-m votes YES, the test participant p0 never votes */
	part_start(f->c, 0, NULL);
	uint64_t t3 = client_begin(wc, NULL);
	kv_svc_put(&kv, t3, "held", "1");
	part_join(f->c, 0, t3);
	part_set_vote(f->c, 0, t3, "silent");
	client_send_commit(wc, t3);

	char *text = scrape_until(mport, "tpc_participant_prepared", 1);
	assert_true(sample(text, "tpc_participant_oldest_prepared_age_seconds") >= 0);
	assert_true(sample(text, "tpc_participant_applies_total") == 1);
	assert_true(sample(text, "tpc_participant_votes_total{vote=\"yes\"}") == 2);
	assert_true(sample(text, "tpc_participant_votes_total{vote=\"no\"}") == 1);
	assert_true(sample(text, "tpc_participant_coordinator_connected") == 1);
	assert_true(sample(text, "tpc_participant_info{name=\"kv-m\"}") == 1);
	promtool_check_metrics(f->c->dir, "kv-metrics.txt", text);
	free(text);

	coord_kill9(f->c); /* the connection goes: the gauge says so */
	free(scrape_until(mport, "tpc_participant_coordinator_connected", 0));
	kv_svc_close_conn(&kv);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, cluster_setup, cluster_teardown)
	const struct CMUnitTest tests[] = {
		T(test_embed_example_leaves_no_open_transaction),
		T(test_kv_put_fails_fast_while_the_coordinator_is_down),
		T(test_stage_wait_fails_with_eunreachable_then_works_again),
		T(test_no_vote_reason_reaches_client_admin_api_and_log),
		T(test_operator_abort_tells_the_client),
		T(test_kv_metrics_export_libtpc_stats_for_prometheus),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
