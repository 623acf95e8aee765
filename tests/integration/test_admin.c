/*
 * test_admin.c - the coordinator's admin HTTP API (docs/admin-api.md) against a real
 * tpc-coordinator with tpc-testpart participants: status, list and show, a stuck
 * COMMITTING transaction, heuristic decisions with their audit trail, the bearer token,
 * bad requests, /metrics through promtool, /livez and /readyz, runtime fault arming.
 *
 * Every coordinator gets --admin on a port chosen free at run time; every wait polls
 * against a deadline (WAIT_MS), nothing sleeps a fixed time. HTTP goes through the tiny
 * blocking client in tests/support/httpc.c, JSON through jansson.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "admin_harness.h"
#include "coord_harness.h"
#include "httpc.h"


/* The admin endpoint of the coordinator under test, and the token to send (or NULL). */
struct adm {
	struct cluster *c;
	int port;
	char addr[64];
	const char *token;
};

static void adm_init(struct adm *a, struct cluster *c)
{
	memset(a, 0, sizeof(*a));
	a->c = c;
	a->port = tpc_free_port();
	assert_true(a->port > 0);
	snprintf(a->addr, sizeof(a->addr), "127.0.0.1:%d", a->port);
}

/* Where most tests start: the coordinator with its admin API (and option @p copt =
 * @p cval; NULL: none), p0, p1 (started with @p p1opt @p p1val) and a client. */
static tpc_wc *admin_two_parts(struct adm *a, struct cluster *c, const char *copt,
			       const char *cval, const char *p1opt, const char *p1val)
{
	adm_init(a, c);
	coord_start(c, NULL, "--admin", a->addr, copt, cval, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, p1opt, p1val, NULL);
	return client_open(c, NULL);
}

/* One request; fails the test unless the status is @p want. Returns the response. */
static void http(struct adm *a, const char *method, const char *path, const char *body,
		 int want, struct httpc_resp *r)
{
	char auth[256];
	const char *headers[2] = { NULL, NULL };

	if (a->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", a->token);
		headers[0] = auth;
	}
	int rc = httpc_request("127.0.0.1", a->port, method, path, headers, body, WAIT_MS, r);
	if (rc != 0)
		fail_msg("%s %s: %s", method, path, strerror(-rc));
	if (r->status != want)
		fail_msg("%s %s: status %d, expected %d; body: %s", method, path, r->status, want,
			 r->body);
}

/* A request whose JSON body is returned (the caller decrefs). */
static json_t *http_json(struct adm *a, const char *method, const char *path, const char *body,
			 int want)
{
	struct httpc_resp r;
	json_error_t err;

	http(a, method, path, body, want, &r);
	if (strncmp(r.content_type, "application/json", 16) != 0)
		fail_msg("%s %s: Content-Type \"%s\"", method, path, r.content_type);
	json_t *j = json_loads(r.body, 0, &err);
	if (!j || !json_is_object(j))
		fail_msg("%s %s: not a JSON object: %s", method, path, r.body);
	httpc_resp_free(&r);
	return j;
}

/* An error reply: status @p want and a non-empty "error" message. */
static json_t *http_error(struct adm *a, const char *method, const char *path,
			  const char *body, int want)
{
	json_t *j = http_json(a, method, path, body, want);
	const char *msg = json_string_value(json_object_get(j, "error"));

	if (!msg || !msg[0])
		fail_msg("%s %s: %d without an \"error\" message", method, path, want);
	return j;
}

static void http_error_only(struct adm *a, const char *method, const char *path,
			    const char *body, int want)
{
	json_decref(http_error(a, method, path, body, want));
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s)
		fail_msg("no string \"%s\" in the reply", key);
	return s;
}

static long long jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("no integer \"%s\" in the reply", key);
	return json_integer_value(v);
}

static void txn_path(char *buf, size_t len, uint64_t txid, const char *action)
{
	snprintf(buf, len, "/v1/transactions/%llu%s%s", (unsigned long long)txid,
		 action ? "/" : "", action ? action : "");
}

static json_t *get_txn(struct adm *a, uint64_t txid, int want)
{
	char path[96];

	txn_path(path, sizeof(path), txid, NULL);
	return http_json(a, "GET", path, NULL, want);
}

/* The participant named @p name in a TXN object. */
static json_t *txn_part(json_t *txn, const char *name)
{
	json_t *parts = json_object_get(txn, "participants");
	size_t i;
	json_t *p;

	json_array_foreach(parts, i, p)
		if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
			return p;
	fail_msg("no participant %s in the transaction", name);
	return NULL;
}

static void pause_ms(int ms)
{
	poll(NULL, 0, ms); /* between polls of a condition, never instead of one */
}

/* Poll GET /v1/transactions/{txid} until it is gone; return the 404's "status". */
static void wait_txn_gone(struct adm *a, uint64_t txid, const char *want_status)
{
	char path[96];
	uint64_t deadline = now_ms() + WAIT_MS;
	struct httpc_resp r;

	txn_path(path, sizeof(path), txid, NULL);
	for (;;) {
		assert_int_equal(httpc_request("127.0.0.1", a->port, "GET", path, NULL, NULL, WAIT_MS,
					       &r), 0);
		int status = r.status;
		httpc_resp_free(&r);
		if (status == 404)
			break;
		if (now_ms() > deadline)
			fail_msg("transaction %llu still open after %d ms", (unsigned long long)txid,
				 WAIT_MS);
		pause_ms(20);
	}
	json_t *j = get_txn(a, txid, 404);
	assert_string_equal(jstr(j, "status"), want_status);
	json_decref(j);
}

/* Begin, let participants 0..n-1 join, commit, and wait until the coordinator has every
 * ack (the transaction is gone from memory). */
static uint64_t commit_through(struct adm *a, struct cluster *c, tpc_wc *wc, int n)
{
	uint64_t txid = client_begin(wc, NULL);

	for (int i = 0; i < n; i++)
		part_join(c, i, txid);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	for (int i = 0; i < n; i++)
		part_expect(c, i, "acked %llu", (unsigned long long)txid);
	wait_txn_gone(a, txid, "COMMITTED");
	return txid;
}

/* Poll until participant @p name of @p txid is in @p state (the participant prints its
 * vote before the coordinator has read it). */
static void wait_part_state(struct adm *a, uint64_t txid, const char *name, const char *state)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		json_t *t = get_txn(a, txid, 200);
		int ok = strcmp(jstr(txn_part(t, name), "state"), state) == 0;
		json_decref(t);
		if (ok)
			return;
		if (now_ms() > deadline)
			fail_msg("participant %s of %llu never became %s", name,
				 (unsigned long long)txid, state);
		pause_ms(20);
	}
}

/* Poll until participant @p name of @p txid is (or is not) connected. */
static void wait_part_connected(struct adm *a, uint64_t txid, const char *name, int want)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		json_t *t = get_txn(a, txid, 200);
		int ok = json_is_true(json_object_get(txn_part(t, name), "connected")) == want;
		json_decref(t);
		if (ok)
			return;
		if (now_ms() > deadline)
			fail_msg("participant %s of %llu: connected never became %d", name,
				 (unsigned long long)txid, want);
		pause_ms(20);
	}
}

/* p0 votes YES, p1 stays silent: the transaction stays PREPARING. */
static uint64_t preparing_with_silent_p1(struct adm *a, struct cluster *c, tpc_wc *wc)
{
	uint64_t txid = client_preparing_txn(c, wc);

	wait_part_state(a, txid, "p0", "yes");
	return txid;
}

/* ---- status, health, metrics ------------------------------------------------------- */

static void test_status_health_and_metrics(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	struct httpc_resp r;

	adm_init(&a, c);
	coord_start(c, NULL, "--admin", a.addr, NULL);
	http(&a, "GET", "/livez", NULL, 200, &r);
	assert_string_equal(r.body, "ok\n");
	httpc_resp_free(&r);
	http(&a, "GET", "/readyz", NULL, 200, &r);
	assert_string_equal(r.body, "ready\n");
	httpc_resp_free(&r);

	part_start(c, 0, NULL);
	tpc_wc *wc = client_open(c, NULL);
	commit_through(&a, c, wc, 1);

	json_t *s = http_json(&a, "GET", "/v1/status", NULL, 200);
	assert_int_equal(jint(s, "epoch"), 1);
	assert_int_equal(jint(s, "coordinator_id"), 1);
	assert_true(json_is_true(json_object_get(s, "ready")));
	assert_string_equal(jstr(s, "listen"), c->hostport);
	assert_non_null(strstr(jstr(s, "started_at"), "Z"));
	assert_int_equal(jint(s, "stuck_after_ms"), 30000);
	assert_int_equal(jint(s, "committed"), 1);
	assert_int_equal(jint(s, "open_transactions"), 0);
	assert_int_equal(jint(json_object_get(s, "by_state"), "COMMITTING"), 0);
	assert_int_equal(jint(json_object_get(s, "participants"), "known"), 1);
	assert_int_equal(jint(json_object_get(s, "participants"), "connected"), 1);
	assert_true(jint(json_object_get(s, "log"), "batches") >= 1);
	json_decref(s);

	http(&a, "GET", "/metrics", NULL, 200, &r);
	assert_non_null(strstr(r.content_type, "text/plain"));
	assert_non_null(strstr(r.body, "\ntpc_transactions_total{outcome=\"committed\"} 1\n"));
	assert_non_null(strstr(r.body, "\ntpc_connections{role=\"participant\"} 1\n"));
	assert_non_null(strstr(r.body, "\ntpc_prepare_duration_seconds_count 1\n"));
	assert_non_null(strstr(r.body, "\ntpc_decision_force_seconds_count 1\n"));
	assert_non_null(strstr(r.body, "\ntpc_commit_delivery_seconds_count 1\n"));
	assert_non_null(strstr(r.body, "\ntpc_epoch 1\n"));
	promtool_check_metrics(c->dir, "metrics.txt", r.body);
	httpc_resp_free(&r);
}

/* ---- list and show ------------------------------------------------------------------ */

static void test_list_show_and_abort_a_preparing_transaction(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	char path[96];

	tpc_wc *wc = admin_two_parts(&a, c, NULL, NULL, "--vote", "silent");
	uint64_t txid = preparing_with_silent_p1(&a, c, wc);

	json_t *l = http_json(&a, "GET", "/v1/transactions", NULL, 200);
	assert_int_equal((long long)json_array_size(json_object_get(l, "transactions")), 1);
	json_t *t = json_array_get(json_object_get(l, "transactions"), 0);
	assert_int_equal(strtoull(jstr(t, "txid"), NULL, 10), txid);
	assert_string_equal(jstr(t, "state"), "PREPARING");
	assert_true(json_is_false(json_object_get(t, "stuck")));
	assert_true(json_is_null(json_object_get(t, "decided_ms")));
	assert_true(jint(t, "age_ms") >= 0);
	assert_string_equal(jstr(txn_part(t, "p0"), "state"), "yes");
	assert_string_equal(jstr(txn_part(t, "p1"), "state"), "joined");
	assert_true(json_is_true(json_object_get(txn_part(t, "p1"), "connected")));
	json_decref(l);

	l = http_json(&a, "GET", "/v1/transactions?state=PREPARING&limit=5", NULL, 200);
	assert_int_equal((long long)json_array_size(json_object_get(l, "transactions")), 1);
	json_decref(l);
	l = http_json(&a, "GET", "/v1/transactions?state=COMMITTING", NULL, 200);
	assert_int_equal((long long)json_array_size(json_object_get(l, "transactions")), 0);
	json_decref(l);
	l = http_json(&a, "GET", "/v1/transactions?older-than=1h", NULL, 200);
	assert_int_equal((long long)json_array_size(json_object_get(l, "transactions")), 0);
	assert_int_equal(json_array_size(json_object_get(l, "transactions")), 0);
	json_decref(l);

	t = get_txn(&a, txid, 200);
	assert_string_equal(jstr(t, "state"), "PREPARING");
	json_decref(t);

	json_t *ps = http_json(&a, "GET", "/v1/participants", NULL, 200);
	json_t *parr = json_object_get(ps, "participants");
	assert_int_equal(json_array_size(parr), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *p = json_array_get(parr, i);
		assert_true(json_is_true(json_object_get(p, "connected")));
		assert_non_null(strstr(jstr(p, "address"), "127.0.0.1:"));
		assert_non_null(strstr(jstr(p, "last_seen_at"), "Z"));
		assert_int_equal(jint(p, "connects"), 1);
		assert_int_equal(jint(p, "decisions_outstanding"), 0);
	}
	json_decref(ps);

	/* An operator abort of a PREPARING transaction takes effect at once. */
	txn_path(path, sizeof(path), txid, "abort");
	json_t *d = http_json(&a, "POST", path, "{\"reason\":\"p1 hangs\"}", 200);
	assert_string_equal(jstr(d, "decision"), "ABORT");
	assert_string_equal(jstr(d, "overrode"), "none");
	assert_int_equal(jint(d, "audit_id"), 1);
	json_decref(d);
	client_expect_outcome(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	part_expect(c, 0, "discarded %llu", (unsigned long long)txid);
	part_expect(c, 1, "discarded %llu", (unsigned long long)txid);
	wait_txn_gone(&a, txid, "ABORTED");
}

/* ---- stuck ----------------------------------------------------------------------------- */

static void wait_stuck(struct adm *a, uint64_t txid)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		json_t *l = http_json(a, "GET", "/v1/transactions?state=stuck", NULL, 200);
		long long total = (long long)json_array_size(json_object_get(l, "transactions"));
		json_decref(l);
		if (total == 1)
			return;
		if (now_ms() > deadline)
			fail_msg("transaction %llu never listed as stuck", (unsigned long long)txid);
		pause_ms(20);
	}
}

static void check_stuck_views(struct adm *a, uint64_t txid)
{
	struct httpc_resp r;
	json_t *t = get_txn(a, txid, 200);

	assert_string_equal(jstr(t, "state"), "COMMITTING");
	assert_true(json_is_true(json_object_get(t, "stuck")));
	assert_true(jint(t, "decided_ms") >= 200);
	assert_true(jint(t, "attempts") >= 1);
	assert_true(json_is_integer(json_object_get(t, "next_retry_ms")));
	assert_non_null(strstr(jstr(t, "last_error"), "participant p1 not connected ("));
	assert_string_equal(jstr(txn_part(t, "p0"), "state"), "acked");
	assert_string_equal(jstr(txn_part(t, "p1"), "state"), "yes");
	assert_true(json_is_false(json_object_get(txn_part(t, "p1"), "connected")));
	json_decref(t);

	json_t *s = http_json(a, "GET", "/v1/status", NULL, 200);
	assert_int_equal(jint(s, "stuck"), 1);
	assert_int_equal(jint(s, "in_doubt"), 1);
	assert_true(jint(s, "oldest_in_doubt_ms") >= 200);
	assert_int_equal(jint(s, "stuck_after_ms"), 200);
	json_decref(s);

	http(a, "GET", "/metrics", NULL, 200, &r);
	assert_non_null(strstr(r.body, "\ntpc_stuck_transactions 1\n"));
	assert_non_null(strstr(r.body, "\ntpc_in_doubt 1\n"));
	httpc_resp_free(&r);
}

static void test_stuck_committing_transaction_is_flagged_and_guarded(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	char path[96];

	tpc_wc *wc = admin_two_parts(&a, c, "--stuck-after", "200ms", "--crash-at",
				     "after-vote");
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 0, "acked %llu", (unsigned long long)txid);
	part_expect(c, 1, "crash after-vote %llu", (unsigned long long)txid);
	wait_part_state(&a, txid, "p0", "acked");
	wait_part_connected(&a, txid, "p1", 0);

	wait_stuck(&a, txid);
	check_stuck_views(&a, txid);
	coord_log_has(c, "stuck");

	json_t *p = http_json(&a, "GET", "/v1/participants", NULL, 200);
	json_t *p1 = json_array_get(json_object_get(p, "participants"), 1);
	assert_string_equal(jstr(p1, "name"), "p1");
	assert_true(json_is_false(json_object_get(p1, "connected")));
	assert_int_equal(jint(p1, "decisions_outstanding"), 1);
	json_decref(p);

	/* The COMMIT is durable: no abort without force; a commit is a no-op. */
	txn_path(path, sizeof(path), txid, "abort");
	json_t *e = http_error(&a, "POST", path, "{\"reason\":\"give up\"}", 409);
	assert_string_equal(jstr(e, "state"), "COMMITTING");
	json_decref(e);
	txn_path(path, sizeof(path), txid, "commit");
	json_t *d = http_json(&a, "POST", path, "{\"reason\":\"make sure\"}", 200);
	assert_string_equal(jstr(d, "already"), "COMMITTED");
	json_decref(d);
	txn_path(path, sizeof(path), txid, "retry");
	d = http_json(&a, "POST", path, NULL, 200);
	assert_int_equal(json_array_size(json_object_get(d, "resent_to")), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "not_connected"), 0)),
			    "p1");
	json_decref(d);

	/* p1 comes back: it learns COMMITTED, applies, and the transaction completes. */
	part_start(c, 1, NULL);
	part_expect(c, 1, "applied %llu", (unsigned long long)txid);
	wait_txn_gone(&a, txid, "COMMITTED");
}

/* A forced abort of a COMMITTING transaction: the COMMIT record is dropped (so the
 * decision is gone after a restart too, and its key is free again), the participant that
 * had not acked hears ABORTED, and the audit entry names the COMMIT it overrode. */
static void test_forced_abort_of_a_committing_transaction_drops_the_decision(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	char path[96];

	tpc_wc *wc = admin_two_parts(&a, c, NULL, NULL, "--crash-at", "after-vote");
	uint64_t txid = client_begin_joined(c, wc, "close-2026-11-26", 2);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 0, "acked %llu", (unsigned long long)txid);
	part_expect(c, 1, "crash after-vote %llu", (unsigned long long)txid);
	wait_part_state(&a, txid, "p0", "acked");

	txn_path(path, sizeof(path), txid, "abort");
	json_t *d = http_json(&a, "POST", path, "{\"reason\":\"p1 is gone for good\",\"force\":true}",
			      200);
	assert_string_equal(jstr(d, "decision"), "ABORT");
	assert_string_equal(jstr(d, "overrode"), "COMMIT");
	json_decref(d);
	wait_txn_gone(&a, txid, "ABORTED");
	json_t *l = http_json(&a, "GET", "/v1/audit", NULL, 200);
	json_t *e = json_array_get(json_object_get(l, "entries"), 0);
	assert_string_equal(jstr(e, "state_before"), "COMMITTING");
	assert_string_equal(jstr(e, "overrode"), "COMMIT");
	json_decref(l);

	/* The key is free again: a new Begin with it starts a new transaction. */
	uint64_t again = client_begin(wc, "close-2026-11-26");
	assert_true(again > txid);
	/* After a restart nothing is recovered, and p1 learns ABORTED. */
	coord_term_clean(c);
	coord_restart(c);
	json_t *s = http_json(&a, "GET", "/v1/status", NULL, 200);
	assert_int_equal(jint(s, "in_doubt"), 0);
	json_decref(s);
	part_start(c, 1, NULL);
	part_expect(c, 1, "discarded %llu", (unsigned long long)txid);
	part_expect_none(c, 1, "applied ");
}

/* ---- a forced abort racing the last ack (scenario 3) ------------------------------------ */

/* A participant the test speaks for over the wire, so it decides when its Ack goes. */
static tpc_wc *wire_part(struct cluster *c, const char *name)
{
	tpc_wc *wp = client_open_raw(c);

	assert_int_equal(tpc_wc_hello(wp, TPC__ROLE__ROLE_PARTICIPANT, name, NULL), 0);
	return wp;
}

static void wire_call(tpc_wc *wp, Tpc__Envelope *env, Tpc__Envelope__BodyCase want)
{
	Tpc__Envelope *rep = NULL;
	int rc = tpc_wc_call(wp, env, &rep);

	if (rc != 0)
		fail_msg("wire call: %s (%s)", tpc_wc_strerror(rc), tpc_wc_errmsg(wp));
	assert_int_equal(rep->body_case, want);
	tpc__envelope__free_unpacked(rep, NULL);
}

static void wire_join(tpc_wc *wp, const char *name, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Join j = TPC__JOIN__INIT;

	j.txid = txid;
	j.participant = (char *)name;
	j.incarnation = 1; /* tpc_wc_hello's default identity */
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &j;
	wire_call(wp, &env, TPC__ENVELOPE__BODY_JOIN_REPLY);
}

/* Wait for the next frame of kind @p body for @p txid (Prepare or Decision). */
static Tpc__Envelope *wire_expect(tpc_wc *wp, Tpc__Envelope__BodyCase body, uint64_t txid)
{
	Tpc__Envelope *env = tpc_wc_recv_body(wp, body, WAIT_MS);

	if (!env)
		fail_msg("participant: no frame %d: %s", (int)body, tpc_wc_errmsg(wp));
	uint64_t got = body == TPC__ENVELOPE__BODY_PREPARE ? env->prepare->txid
							   : env->decision->txid;
	assert_int_equal(got, txid);
	return env;
}

static void wire_send_vote_yes(tpc_wc *wp, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote v = TPC__VOTE__INIT;

	v.txid = txid;
	v.vote = TPC__VOTE_KIND__VOTE_YES;
	v.incarnation = 1; /* the one that joined */
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &v;
	assert_int_equal(tpc_wc_send(wp, &env), 0);
}

static void wire_send_ack(tpc_wc *wp, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Ack a = TPC__ACK__INIT;

	a.txid = txid;
	env.body_case = TPC__ENVELOPE__BODY_ACK;
	env.ack = &a;
	assert_int_equal(tpc_wc_send(wp, &env), 0);
}

/* One HTTP request on a thread of its own, for a call the test must not wait on. */
struct bg_http {
	pthread_t thread;
	int port;
	char path[96];
	const char *body;
	int rc;
	struct httpc_resp resp;
};

static void *bg_http_main(void *arg)
{
	struct bg_http *b = arg;

	b->rc = httpc_request("127.0.0.1", b->port, "POST", b->path, NULL, b->body, 4 * WAIT_MS,
			      &b->resp);
	return NULL;
}

/* Poll GET /v1/audit until it lists @p n entries (the last one is durable). */
static void wait_audit_entries(struct adm *a, size_t n)
{
	uint64_t deadline = now_ms() + 2 * WAIT_MS;

	for (;;) {
		json_t *l = http_json(a, "GET", "/v1/audit", NULL, 200);
		size_t have = json_array_size(json_object_get(l, "entries"));
		json_decref(l);
		if (have >= n)
			return;
		if (now_ms() > deadline)
			fail_msg("the audit log never held %zu entries", n);
		pause_ms(10);
	}
}

/* Scenario 3 of issue 10: the operator forces an abort of a COMMITTING transaction and
 * its last participant acks while the DROP record is being written (log.sync delayed to
 * widen the window). Every participant applied the COMMIT, so the operator must hear
 * 409 with the truth, and the transaction must stay COMMITTED, for StatusQuery and for
 * its key, also after a restart. */
static void test_forced_abort_racing_the_last_ack_leaves_it_committed(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	struct bg_http bg = { 0 };

	adm_init(&a, c);
	coord_start(c, NULL, "--admin", a.addr, "--allow-fault-injection", NULL);
	tpc_wc *wp = wire_part(c, "w0");
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin(wc, "close-race");
	wire_join(wp, "w0", txid);
	client_send_commit(wc, txid);
	tpc__envelope__free_unpacked(wire_expect(wp, TPC__ENVELOPE__BODY_PREPARE, txid), NULL);
	wire_send_vote_yes(wp, txid);
	client_expect_outcome(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	Tpc__Envelope *d = wire_expect(wp, TPC__ENVELOPE__BODY_DECISION, txid);
	assert_int_equal(d->decision->decision, TPC__DECISION_KIND__DECISION_COMMIT);
	tpc__envelope__free_unpacked(d, NULL);

	/* Every log write now takes 1.5 s: the audit entry's, then the DROP's. */
	json_decref(http_json(&a, "POST", "/v1/faults", "{\"spec\":\"log.sync=delay:1500\"}",
			      200));
	bg.port = a.port;
	txn_path(bg.path, sizeof(bg.path), txid, "abort");
	bg.body = "{\"reason\":\"w0 is gone for good\",\"force\":true}";
	assert_int_equal(pthread_create(&bg.thread, NULL, bg_http_main, &bg), 0);
	/* The audit entry is durable: the DROP is submitted next, on the loop. One more
	 * round trip through that loop, then the last ack lands while the DROP is written. */
	wait_audit_entries(&a, 1);
	json_decref(get_txn(&a, txid, 200));
	wire_send_ack(wp, txid);
	pthread_join(bg.thread, NULL);
	assert_int_equal(bg.rc, 0);
	json_decref(http_json(&a, "POST", "/v1/faults", "{\"spec\":\"\"}", 200));

	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	struct tpc_wc_begin b;
	assert_int_equal(tpc_wc_begin(wc, "close-race", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED);
	assert_int_equal(b.txid, txid);
	if (bg.resp.status != 409 || !strstr(bg.resp.body, "committed everywhere"))
		fail_msg("the operator was told %d: %s", bg.resp.status, bg.resp.body);
	httpc_resp_free(&bg.resp);
	wait_txn_gone(&a, txid, "COMMITTED");

	/* Durable: the same answers from a restarted coordinator. */
	coord_term_clean(c);
	coord_restart(c);
	tpc_wc *wc2 = client_open(c, NULL);
	client_status_expect(wc2, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	assert_int_equal(tpc_wc_begin(wc2, "close-race", 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_ALREADY_COMMITTED);
}

/* ---- heuristic commit and the audit trail ------------------------------------------------ */

static void check_audit_entry(json_t *e, uint64_t txid)
{
	assert_int_equal(jint(e, "id"), 1);
	assert_string_equal(jstr(e, "action"), "commit");
	assert_int_equal(strtoull(jstr(e, "txid"), NULL, 10), txid);
	assert_string_equal(jstr(e, "operator"), "alice");
	assert_string_equal(jstr(e, "reason"), "p1 lost its disk");
	assert_true(json_is_true(json_object_get(e, "forced")));
	assert_string_equal(jstr(e, "state_before"), "PREPARING");
	assert_string_equal(jstr(e, "overrode"), "none");
	assert_non_null(strstr(jstr(e, "peer"), "127.0.0.1:"));
	assert_non_null(strstr(jstr(e, "at"), "Z"));
}

static void test_forced_commit_is_audited_and_delivered(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	char path[96];

	tpc_wc *wc = admin_two_parts(&a, c, NULL, NULL, "--vote", "silent");
	uint64_t txid = preparing_with_silent_p1(&a, c, wc);

	txn_path(path, sizeof(path), txid, "commit");
	http_error_only(&a, "POST", path, "{\"reason\":\"p1 lost its disk\"}", 409);
	json_t *d = http_json(&a, "POST", path, "{\"reason\":\"p1 lost its disk\",\"force\":true,"
			      "\"operator\":\"alice\"}", 200);
	assert_string_equal(jstr(d, "decision"), "COMMIT");
	assert_string_equal(jstr(d, "overrode"), "none");
	assert_int_equal(jint(d, "audit_id"), 1);
	json_decref(d);

	/* Delivered: the client hears COMMITTED, p0 applies it, p1 (no vote) is told ABORT. */
	client_expect_outcome(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	part_expect(c, 0, "applied %llu", (unsigned long long)txid);
	part_expect(c, 0, "acked %llu", (unsigned long long)txid);
	part_expect(c, 1, "discarded %llu", (unsigned long long)txid);
	wait_txn_gone(&a, txid, "COMMITTED");

	json_t *l = http_json(&a, "GET", "/v1/audit", NULL, 200);
	assert_int_equal(json_array_size(json_object_get(l, "entries")), 1);
	check_audit_entry(json_array_get(json_object_get(l, "entries"), 0), txid);
	json_decref(l);

	/* The audit log is durable: it survives a restart, and ids go on from there. */
	coord_term_clean(c);
	coord_restart(c);
	txn_path(path, sizeof(path), (1ull << 40) | 999, "abort"); /* epoch 1: never begun */
	d = http_json(&a, "POST", path, "{\"reason\":\"cleanup\"}", 200);
	assert_string_equal(jstr(d, "already"), "ABORTED");
	assert_int_equal(jint(d, "audit_id"), 2);
	json_decref(d);
	l = http_json(&a, "GET", "/v1/audit?limit=10", NULL, 200);
	json_t *entries = json_object_get(l, "entries");
	assert_int_equal(json_array_size(entries), 2);
	assert_int_equal(jint(json_array_get(entries, 0), "id"), 2); /* newest first */
	check_audit_entry(json_array_get(entries, 1), txid);
	json_decref(l);
}


/* ---- participant identity: the binding and forgetting it ------------------------------ */

static void id_hex(const char *name, uint8_t idbyte, char out[33])
{
	struct tpc_wc_identity id;

	if (name)
		tpc_wc_default_identity(name, &id);
	else
		memset(id.participant_id, idbyte, sizeof(id.participant_id));
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id.participant_id[i]);
}

/* The /v1/participants entry for @p name (the caller decrefs @p list). */
static json_t *participant(struct adm *a, const char *name, json_t **list)
{
	*list = http_json(a, "GET", "/v1/participants", NULL, 200);
	json_t *arr = json_object_get(*list, "participants"), *p;
	size_t i;

	json_array_foreach(arr, i, p)
		if (strcmp(jstr(p, "name"), name) == 0)
			return p;
	fail_msg("participant %s not listed", name);
	return NULL;
}

static void wait_disconnected(struct adm *a, const char *name)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	json_t *l;

	for (;;) {
		/* json_is_true() evaluates its argument twice: call participant() once */
		json_t *up = json_object_get(participant(a, name, &l), "connected");
		if (!json_is_true(up))
			break;
		json_decref(l);
		if (now_ms() > deadline)
			fail_msg("%s still connected after %d ms", name, WAIT_MS);
		pause_ms(20);
	}
	json_decref(l);
}

static void test_participant_binding_is_listed_and_forgotten_with_an_audit_entry(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	char hex[33];
	json_t *l, *p;
	const char *forget = "/v1/participants/p0/forget";
	const char *body = "{\"reason\":\"p0's disk died\",\"operator\":\"alice\"}";

	adm_init(&a, c);
	coord_start(c, NULL, "--admin", a.addr, NULL);
	part_start(c, 0, NULL);
	p = participant(&a, "p0", &l);
	id_hex("p0", 0, hex);
	assert_string_equal(jstr(p, "participant_id"), hex);
	assert_non_null(strstr(jstr(p, "bound_at"), "Z"));
	assert_int_equal(jint(p, "incarnation"), 1);
	json_decref(l);

	/* Refused while it is connected, without a reason, for a name nobody knows. */
	json_t *e = http_error(&a, "POST", forget, body, 409);
	assert_non_null(strstr(jstr(e, "error"), "connected"));
	json_decref(e);
	http_error_only(&a, "POST", forget, "{}", 400);
	http_error_only(&a, "POST", "/v1/participants/nobody/forget", body, 404);
	http_error_only(&a, "GET", forget, NULL, 405);

	/* ... and while an open transaction still names it, even once it is gone. */
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin_joined(c, wc, NULL, 1);
	assert_int_equal(tpc_proc_kill9(c->parts[0].proc), 0);
	wait_disconnected(&a, "p0");
	e = http_error(&a, "POST", forget, body, 409);
	assert_non_null(strstr(jstr(e, "error"), "open transaction"));
	json_decref(e);
	struct tpc_wc_outcome o;
	assert_int_equal(tpc_wc_abort(wc, txid, "p0 is gone", &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_ABORTED);

	json_t *d = http_json(&a, "POST", forget, body, 200);
	assert_string_equal(jstr(d, "participant"), "p0");
	assert_string_equal(jstr(d, "forgotten_participant_id"), hex);
	assert_int_equal(jint(d, "audit_id"), 1);
	json_decref(d);
	/* Nothing refers to the name any more: it is no longer listed (its memory is freed). */
	l = http_json(&a, "GET", "/v1/participants", NULL, 200);
	assert_int_equal(json_array_size(json_object_get(l, "participants")), 0);
	json_decref(l);
	l = http_json(&a, "GET", "/v1/audit", NULL, 200);
	e = json_array_get(json_object_get(l, "entries"), 0);
	assert_string_equal(jstr(e, "action"), "forget-participant");
	assert_string_equal(jstr(e, "participant"), "p0");
	assert_string_equal(jstr(e, "participant_id"), hex);
	assert_string_equal(jstr(e, "operator"), "alice");
	json_decref(l);
	coord_wait_log(c, "participant name p0 forgotten by an operator");

	/* Another state folder may take the name now, and that binding is durable. */
	struct tpc_wc_identity id;
	memset(&id, 0, sizeof(id));
	memset(id.participant_id, 0xee, sizeof(id.participant_id));
	id.incarnation = 1;
	tpc_wc *stranger = client_open_raw(c);
	assert_int_equal(tpc_wc_hello_participant(stranger, "p0", &id, NULL), 0);
	coord_term_clean(c);
	coord_restart(c);
	p = participant(&a, "p0", &l);
	id_hex(NULL, 0xee, hex);
	assert_string_equal(jstr(p, "participant_id"), hex);
	json_decref(l);
	http_error_only(&a, "POST", "/v1/participants/p0/forget", "{\"reason\":\"x\",\"bad\":1}",
			400);
}

/* ---- authentication ------------------------------------------------------------------ */

static void write_token(const char *file, const char *text)
{
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(file, 0600), 0);
}

/* Repeat a request until it gets status @p want (something changes asynchronously). */
static void wait_status(struct adm *a, const char *method, const char *path, const char *body,
			int want)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	char auth[256];
	const char *headers[2] = { auth, NULL };
	struct httpc_resp r;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", a->token);
	for (;;) {
		assert_int_equal(httpc_request("127.0.0.1", a->port, method, path, headers, body,
					       WAIT_MS, &r), 0);
		int status = r.status;
		httpc_resp_free(&r);
		if (status == want)
			return;
		if (now_ms() > deadline)
			fail_msg("%s %s: still %d after %d ms, expected %d", method, path, status,
				 WAIT_MS, want);
		pause_ms(20);
	}
}

static void test_token_is_required_for_every_request_but_health(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	char file[PATH_MAX + 32], path[96];

	adm_init(&a, c);
	snprintf(file, sizeof(file), "%s/admin.token", c->dir);
	write_token(file, "  s3cret-token \n");
	coord_start(c, NULL, "--admin", a.addr, "--admin-token-file", file, NULL);

	txn_path(path, sizeof(path), (1ull << 40) | 5, "abort");
	http_error_only(&a, "POST", path, "{\"reason\":\"x\"}", 401);
	a.token = "s3cret-tokem";
	http_error_only(&a, "POST", path, "{\"reason\":\"x\"}", 401);
	a.token = "s3cret-token-longer";
	http_error_only(&a, "POST", path, "{\"reason\":\"x\"}", 401);
	a.token = "s3cret-token"; /* past the token: the txid was never issued, so 404 */
	json_t *d = http_error(&a, "POST", path, "{\"reason\":\"x\"}", 404);
	assert_non_null(strstr(jstr(d, "error"), "never issued"));
	json_decref(d);
	json_decref(http_json(&a, "GET", "/v1/status", NULL, 200));
	/* With a token file, reads need it too; only the health probes do not. */
	a.token = NULL;
	http_error_only(&a, "GET", "/v1/status", NULL, 401);
	http_error_only(&a, "GET", "/v1/transactions", NULL, 401);
	http_error_only(&a, "GET", "/v1/participants", NULL, 401);
	http_error_only(&a, "GET", "/v1/audit", NULL, 401);
	http_error_only(&a, "GET", "/no-such-route", NULL, 401);
	struct httpc_resp r;
	http(&a, "GET", "/metrics", NULL, 401, &r);
	httpc_resp_free(&r);
	http(&a, "GET", "/livez", NULL, 200, &r);
	httpc_resp_free(&r);
	http(&a, "GET", "/readyz", NULL, 200, &r);
	httpc_resp_free(&r);
	a.token = "s3cret-tokem";
	http_error_only(&a, "GET", "/v1/status", NULL, 401);

	/* A new token in the file takes over on SIGHUP; the old one stops working. */
	write_token(file, "rotated-token\n");
	assert_int_equal(kill(tpc_proc_pid(c->coord), SIGHUP), 0);
	a.token = "rotated-token";
	wait_status(&a, "POST", path, "{\"reason\":\"x\"}", 404); /* past the token */
	a.token = "s3cret-token";
	http_error_only(&a, "POST", path, "{\"reason\":\"x\"}", 401);
}

/* ---- pages ------------------------------------------------------------------------------ */

#define HARD_MAX_PAGE 1000

/* Follow "next" from @p first (a path with a query, the cursor parameter last-appended)
 * and return every entry's @p key, in order, as one JSON array (the caller decrefs). */
static json_t *follow_pages(struct adm *a, const char *first, const char *field,
			    const char *cursor, const char *key)
{
	json_t *all = json_array();
	char path[256];

	snprintf(path, sizeof(path), "%s", first);
	for (int pages = 0;; pages++) {
		json_t *p = http_json(a, "GET", path, NULL, 200), *e;
		json_t *next = json_object_get(p, "next");
		size_t i;

		assert_true(pages < 10000);
		json_array_foreach(json_object_get(p, field), i, e)
			json_array_append(all, json_object_get(e, key));
		if (!next) {
			json_decref(p);
			return all;
		}
		if (json_is_string(next))
			snprintf(path, sizeof(path), "%s&%s=%s", first, cursor,
				 json_string_value(next));
		else
			snprintf(path, sizeof(path), "%s&%s=%lld", first, cursor,
				 (long long)json_integer_value(next));
		json_decref(p);
	}
}

static void test_lists_come_in_pages_that_cover_everything_once(void **state)
{
	struct cluster *c = *state;
	struct adm a;
	enum { N = HARD_MAX_PAGE + 37 };
	char path[96];

	adm_init(&a, c);
	coord_start(c, NULL, "--admin", a.addr, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t *txids = calloc(N, sizeof(*txids));
	assert_non_null(txids);
	for (int i = 0; i < N; i++)
		txids[i] = client_begin(wc, NULL);

	/* A huge limit gets one page of the hard maximum, oldest first, and a cursor. */
	json_t *p = http_json(&a, "GET", "/v1/transactions?limit=1000000", NULL, 200);
	assert_int_equal(json_array_size(json_object_get(p, "transactions")), HARD_MAX_PAGE);
	assert_int_equal(jint(p, "open"), N);
	assert_string_equal(jstr(p, "next"),
			    jstr(json_array_get(json_object_get(p, "transactions"),
						HARD_MAX_PAGE - 1), "txid"));
	json_decref(p);

	/* Following the cursors lists every transaction exactly once, in txid order. */
	json_t *all = follow_pages(&a, "/v1/transactions?limit=7", "transactions", "after", "txid");
	assert_int_equal(json_array_size(all), N);
	for (int i = 0; i < N; i++)
		assert_int_equal(strtoull(json_string_value(json_array_get(all, (size_t)i)), NULL,
					  10), txids[i]);
	json_decref(all);
	all = follow_pages(&a, "/v1/transactions?state=ACTIVE", "transactions", "after", "txid");
	assert_int_equal(json_array_size(all), N);
	json_decref(all);
	http_error_only(&a, "GET", "/v1/transactions?after=x", NULL, 400);

	/* Participants by name, and the audit log newest first, the same way. */
	tpc_wc *wp[3] = { wire_part(c, "pc"), wire_part(c, "pa"), wire_part(c, "pb") };
	all = follow_pages(&a, "/v1/participants?limit=2", "participants", "after", "name");
	assert_int_equal(json_array_size(all), 3);
	assert_string_equal(json_string_value(json_array_get(all, 0)), "pa");
	assert_string_equal(json_string_value(json_array_get(all, 2)), "pc");
	json_decref(all);
	for (int i = 0; i < 5; i++) {
		txn_path(path, sizeof(path), txids[i], "abort");
		json_decref(http_json(&a, "POST", path, "{\"reason\":\"page test\"}", 200));
	}
	all = follow_pages(&a, "/v1/audit?limit=2", "entries", "before", "id");
	assert_int_equal(json_array_size(all), 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(json_integer_value(json_array_get(all, i)), 5 - (json_int_t)i);
	json_decref(all);
	http_error_only(&a, "GET", "/v1/audit?before=0", NULL, 400);
	(void)wp; /* connected until the teardown: the names stay known */
	free(txids);
}

/* ---- bad requests --------------------------------------------------------------------- */

static void test_bad_requests_get_a_4xx_with_a_message(void **state)
{
	struct cluster *c = *state;
	struct adm a;

	adm_init(&a, c);
	coord_start(c, NULL, "--admin", a.addr, NULL);
	http_error_only(&a, "GET", "/v1/transactions/abc", NULL, 400);
	http_error_only(&a, "GET", "/v1/transactions/0", NULL, 400);
	http_error_only(&a, "GET", "/v1/transactions/-5", NULL, 400);
	http_error_only(&a, "GET", "/v1/transactions/18446744073709551616", NULL, 400);
	http_error_only(&a, "GET", "/nope", NULL, 404);
	http_error_only(&a, "GET", "/v1/transactions/5/bogus", NULL, 404);
	http_error_only(&a, "DELETE", "/v1/status", NULL, 405);
	http_error_only(&a, "GET", "/v1/transactions/5/commit", NULL, 405);
	http_error_only(&a, "POST", "/v1/status", "{}", 405);
	http_error_only(&a, "POST", "/v1/transactions/5/commit", "{bad", 400);
	http_error_only(&a, "POST", "/v1/transactions/5/commit", "[1]", 400);
	http_error_only(&a, "POST", "/v1/transactions/5/commit", NULL, 400);
	http_error_only(&a, "POST", "/v1/transactions/5/commit", "{}", 400);
	http_error_only(&a, "POST", "/v1/transactions/5/commit", "{\"reason\":\"\"}", 400);
	http_error_only(&a, "POST", "/v1/transactions/5/commit", "{\"reason\":5}", 400);
	http_error_only(&a, "POST", "/v1/transactions/5/abort",
			"{\"reason\":\"x\",\"force\":\"yes\"}", 400);
	http_error_only(&a, "POST", "/v1/transactions/5/abort", "{\"reason\":\"x\",\"froce\":true}",
			400);
	http_error_only(&a, "GET", "/v1/transactions?state=FOO", NULL, 400);
	http_error_only(&a, "GET", "/v1/transactions?older-than=soon", NULL, 400);
	http_error_only(&a, "GET", "/v1/transactions?limit=0", NULL, 400);
	http_error_only(&a, "GET", "/v1/transactions?after=0", NULL, 400);
	http_error_only(&a, "GET", "/v1/participants?bogus=1", NULL, 400);
	http_error_only(&a, "GET", "/v1/transactions?bogus=1", NULL, 400);
	http_error_only(&a, "GET", "/v1/audit?limit=x", NULL, 400);
	/* Not found: what a participant asking would be told. */
	json_t *e = http_error(&a, "GET", "/v1/transactions/12345", NULL, 404);
	assert_string_equal(jstr(e, "status"), "ABORTED");
	assert_string_equal(jstr(e, "txid"), "12345");
	json_decref(e);
	http_error_only(&a, "POST", "/v1/transactions/12345/retry", NULL, 404);
	/* A txid never issued: not found, for commit (forced or not) and abort alike, and
	 * nothing is written to the audit log. */
	e = http_error(&a, "POST", "/v1/transactions/12345/commit",
		       "{\"reason\":\"x\",\"force\":true}", 404);
	assert_non_null(strstr(jstr(e, "error"), "never issued"));
	json_decref(e);
	http_error_only(&a, "POST", "/v1/transactions/12345/commit", "{\"reason\":\"x\"}", 404);
	http_error_only(&a, "POST", "/v1/transactions/12345/abort", "{\"reason\":\"x\"}", 404);
	e = http_json(&a, "GET", "/v1/audit", NULL, 200);
	assert_int_equal(json_array_size(json_object_get(e, "entries")), 0);
	json_decref(e);
	/* Fault arming does not exist without --allow-fault-injection. */
	http_error_only(&a, "GET", "/v1/faults", NULL, 404);
	http_error_only(&a, "POST", "/v1/faults", "{\"spec\":\"log.sync=fail\"}", 404);
	/* ... and the server is still fine. */
	json_decref(http_json(&a, "GET", "/v1/status", NULL, 200));
}

/* ---- runtime fault arming -------------------------------------------------------------- */

static json_t *fault_point(json_t *list, const char *name)
{
	size_t i;
	json_t *p;

	json_array_foreach(json_object_get(list, "faults"), i, p)
		if (strcmp(jstr(p, "point"), name) == 0)
			return p;
	fail_msg("no fault point %s listed", name);
	return NULL;
}

static void test_runtime_fault_arming_with_the_flag(void **state)
{
	struct cluster *c = *state;
	struct adm a;

	adm_init(&a, c);
	coord_start(c, NULL, "--admin", a.addr, "--allow-fault-injection", NULL);
	json_t *l = http_json(&a, "GET", "/v1/faults", NULL, 200);
	assert_true(json_is_false(json_object_get(l, "armed")));
	assert_true(json_is_null(json_object_get(fault_point(l, "log.sync"), "action")));
	json_decref(l);

	l = http_json(&a, "POST", "/v1/faults", "{\"spec\":\"log.sync=delay:1\"}", 200);
	assert_true(json_is_true(json_object_get(l, "armed")));
	assert_string_equal(jstr(fault_point(l, "log.sync"), "action"), "delay:1");
	json_decref(l);
	part_start(c, 0, NULL);
	tpc_wc *wc = client_open(c, NULL);
	commit_through(&a, c, wc, 1); /* the COMMIT record's batch hits log.sync */
	l = http_json(&a, "GET", "/v1/faults", NULL, 200);
	assert_true(jint(fault_point(l, "log.sync"), "hits") >= 1);
	assert_true(jint(fault_point(l, "log.sync"), "fired") >= 1);
	json_decref(l);
	coord_log_has(c, "fault injection armed at run time");

	http_error_only(&a, "POST", "/v1/faults", "{\"spec\":\"log.snyc=crash\"}", 400);
	http_error_only(&a, "POST", "/v1/faults", "{\"spec\":5}", 400);
	l = http_json(&a, "POST", "/v1/faults", "{\"spec\":\"\"}", 200);
	assert_true(json_is_false(json_object_get(l, "armed")));
	json_decref(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_health_and_metrics, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_list_show_and_abort_a_preparing_transaction,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_stuck_committing_transaction_is_flagged_and_guarded,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_forced_abort_of_a_committing_transaction_drops_the_decision, cluster_setup,
			cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_participant_binding_is_listed_and_forgotten_with_an_audit_entry,
			cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_forced_abort_racing_the_last_ack_leaves_it_committed,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_forced_commit_is_audited_and_delivered,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_token_is_required_for_every_request_but_health,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_lists_come_in_pages_that_cover_everything_once,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests_get_a_4xx_with_a_message,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_runtime_fault_arming_with_the_flag,
						cluster_setup, cluster_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
