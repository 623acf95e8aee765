/*
 * test_tpcctl.c - tpcctl against a real tpc-coordinator with its admin API on a free
 * port: status, txn list/show of a transaction held in PREPARING by a silent
 * participant, a refused then forced operator commit and the audit entry it leaves, an
 * operator abort, the token, exit codes (0, 1, 2, 3), and -o json output that parses.
 *
 * tpcctl's HTTP response parser (tools/tpcctl/http.c) is compiled in and fed one byte
 * at a time first, with no process at all.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cmd_run.h"
#include "coord_harness.h"
#include "http.h"

/* ---- the response parser, byte at a time ----------------------------------------- */

/* Feed @p resp one byte at a time: incomplete until the last byte (or EOF), then 1. */
static void parse_bytewise(const char *resp, int until_eof, int want_status, const char *want)
{
	size_t len = strlen(resp);
	struct ctl_http_resp r;

	for (size_t i = 0; i < len; i++) {
		int rc = ctl_http_parse(resp, i, 0, &r);
		if (rc != 0)
			fail_msg("complete after %zu of %zu bytes (rc %d)", i, len, rc);
	}
	assert_int_equal(ctl_http_parse(resp, len, until_eof, &r), 1);
	assert_int_equal(r.status, want_status);
	assert_string_equal(r.body, want);
	assert_int_equal(r.body_len, strlen(want));
	ctl_http_resp_free(&r);
}

static void test_http_parser_takes_one_byte_at_a_time(void **state)
{
	parse_bytewise("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		       "Content-Length: 11\r\n\r\n{\"a\": true}", 0, 200, "{\"a\": true}");
	parse_bytewise("HTTP/1.1 404 Not Found\r\ncontent-length:2\r\n\r\n{}", 0, 404, "{}");
	parse_bytewise("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "4\r\n{\"a\"\r\nA;ext=1\r\n: [1, 2]}\n\r\n0\r\n\r\n", 0, 200,
		       "{\"a\": [1, 2]}\n");
	parse_bytewise("HTTP/1.0 200 OK\r\n\r\nto the end", 1, 200, "to the end");
	parse_bytewise("HTTP/1.1 204 No Content\r\n\r\n", 0, 204, "");
}

static void test_http_parser_rejects_what_is_not_http(void **state)
{
	struct ctl_http_resp r;

	assert_int_equal(ctl_http_parse("SSH-2.0-OpenSSH\r\n\r\n", 19, 0, &r), -EPROTO);
	assert_int_equal(ctl_http_parse("HTTP/1.1 2x0 OK\r\n\r\n", 19, 0, &r), -EPROTO);
	/* Cut short: fine while more may come, an error once the peer closed. */
	const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}";
	assert_int_equal(ctl_http_parse(cut, strlen(cut), 0, &r), 0);
	assert_int_equal(ctl_http_parse(cut, strlen(cut), 1, &r), -EPROTO);
	const char *bad_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
	assert_int_equal(ctl_http_parse(bad_chunk, strlen(bad_chunk), 0, &r), -EPROTO);
	assert_int_equal(ctl_http_parse("HTTP/1.1 200", 12, 1, &r), -EPROTO);
}

/* ---- the fixture: a cluster with the admin API on a free port -------------------- */

struct fixture {
	struct cluster *c;
	char admin[64];
	struct cmd_result r;     /* the last tpcctl run */
};

static int fx_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	void *cs = NULL;

	assert_non_null(f);
	cluster_setup(&cs);
	f->c = cs;
	snprintf(f->admin, sizeof(f->admin), "127.0.0.1:%d", tpc_free_port());
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *f = *state;
	void *cs = f->c;

	cluster_teardown(&cs);
	free(f);
	return 0;
}

/* Start the coordinator with its admin API, plus extra options (NULL-terminated). */
static void start(struct fixture *f, const char *extra)
{
	coord_start(f->c, NULL, "--admin", f->admin, "--prepare-timeout", "60s",
		    "--txn-timeout", "120s", extra ? "--admin-token-file" : NULL, extra, NULL);
	int port = atoi(strrchr(f->admin, ':') + 1);
	assert_int_equal(tpc_wait_port("127.0.0.1", port, WAIT_MS), 0);
}

/* Run tpcctl with @p env (see cmd_run) and arguments; returns the exit code. */
static int ctl_env(struct fixture *f, const char *const env[], va_list ap)
{
	char *argv[32] = { TPCCTL_BIN };
	int n = 1;

	while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	argv[n] = NULL;
	assert_int_equal(cmd_run(f->c->dir, argv, env, WAIT_MS, &f->r), 0);
	return f->r.code;
}

static const char *const clean_env[] = { "TPC_ADMIN", "TPC_ADMIN_TOKEN_FILE", "USER=tester",
					 NULL };

/* TPC_TEST_VERBOSE=1: print each run, for reading tpcctl's output as an operator would. */
static void show(const struct fixture *f, char *const argv[])
{
	if (!getenv("TPC_TEST_VERBOSE"))
		return;
	fputs("$ tpcctl", stderr);
	for (int i = 1; argv[i]; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\n%s%s[exit %d]\n\n", f->r.out, f->r.err, f->r.code);
}

/* tpcctl --admin ADDR ARGS... with a clean environment. */
static int ctl(struct fixture *f, ...)
{
	char *argv[32] = { TPCCTL_BIN, "--admin", f->admin };
	int n = 3, rc;
	va_list ap;

	va_start(ap, f);
	while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	rc = cmd_run(f->c->dir, argv, clean_env, WAIT_MS, &f->r);
	assert_int_equal(rc, 0);
	show(f, argv);
	return f->r.code;
}

/* tpcctl ARGS... with @p env instead (no --admin added). */
static int ctl_with_env(struct fixture *f, const char *const env[], ...)
{
	va_list ap;
	int rc;

	va_start(ap, env);
	rc = ctl_env(f, env, ap);
	va_end(ap);
	return rc;
}

static void out_has(struct fixture *f, const char *want)
{
	if (!strstr(f->r.out, want))
		fail_msg("tpcctl's stdout has no \"%s\":\n%s\n(stderr: %s)", want, f->r.out,
			 f->r.err);
}

static void err_has(struct fixture *f, const char *want)
{
	if (!strstr(f->r.err, want))
		fail_msg("tpcctl's stderr has no \"%s\":\n%s", want, f->r.err);
}

static void expect_code(struct fixture *f, int code, int want)
{
	if (code != want)
		fail_msg("tpcctl exited %d, expected %d\nstdout: %s\nstderr: %s", code, want,
			 f->r.out, f->r.err);
}

static json_t *out_json(struct fixture *f)
{
	json_error_t err;
	json_t *j = json_loads(f->r.out, 0, &err);

	if (!j)
		fail_msg("tpcctl -o json printed no JSON (%s):\n%s", err.text, f->r.out);
	return j;
}

/*
 * The coordinator, p0, p1 and a transaction held in PREPARING: p0 votes YES, p1 is
 * silent (its vote never comes, and the prepare timeout is a minute away). The
 * client's Commit (on *@p wc) is left waiting; @p id gets the txid in decimal.
 */
static uint64_t start_preparing(struct fixture *f, char id[32], tpc_wc **wc)
{
	start(f, NULL);
	part_start(f->c, 0, NULL);
	part_start(f->c, 1, "--vote", "silent", NULL);
	*wc = client_open(f->c, NULL);
	uint64_t txid = client_preparing_txn(f->c, *wc);
	snprintf(id, 32, "%llu", (unsigned long long)txid);
	return txid;
}

/* ---- reading ---------------------------------------------------------------------- */

static void test_status_list_and_show_a_preparing_txn(void **state)
{
	struct fixture *f = *state;
	char id[32];
	tpc_wc *wc;

	start_preparing(f, id, &wc);

	expect_code(f, ctl(f, "status", NULL), 0);
	out_has(f, "coordinator");
	out_has(f, "PREPARING 1");
	out_has(f, "2 connected of 2 known");

	expect_code(f, ctl(f, "txn", "list", NULL), 0);
	out_has(f, "TXID");
	out_has(f, id);
	out_has(f, "PREPARING");
	out_has(f, "p0=yes");
	out_has(f, "p1=joined");
	out_has(f, "1 of 1 open transaction(s)");

	expect_code(f, ctl(f, "txn", "list", "--state", "committing", NULL), 0);
	out_has(f, "0 of 1 open transaction(s)");

	expect_code(f, ctl(f, "txn", "show", id, NULL), 0);
	out_has(f, "PREPARING");
	out_has(f, "PARTICIPANT");
	out_has(f, "p1 ");

	expect_code(f, ctl(f, "participants", NULL), 0);
	out_has(f, "p0 ");
	out_has(f, "p1 ");
	out_has(f, "CONNECTED");
}

static void test_json_output_parses(void **state)
{
	struct fixture *f = *state;
	char id[32];
	tpc_wc *wc;

	start_preparing(f, id, &wc);

	/* -o json anywhere on the line. */
	expect_code(f, ctl(f, "txn", "list", "--state", "PREPARING", "-o", "json", NULL), 0);
	json_t *j = out_json(f);
	json_t *t0 = json_array_get(json_object_get(j, "transactions"), 0);
	assert_non_null(t0);
	assert_string_equal(json_string_value(json_object_get(t0, "txid")), id);
	json_decref(j);

	expect_code(f, ctl(f, "-o", "json", "status", NULL), 0);
	j = out_json(f);
	assert_true(json_integer_value(json_object_get(j, "epoch")) >= 1);
	json_decref(j);

	expect_code(f, ctl(f, "--output=json", "txn", "show", id, NULL), 0);
	j = out_json(f);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "PREPARING");
	json_decref(j);

	expect_code(f, ctl(f, "-o", "json", "participants", NULL), 0);
	j = out_json(f);
	assert_int_equal(json_array_size(json_object_get(j, "participants")), 2);
	json_decref(j);
}

/* ---- deciding --------------------------------------------------------------------- */

static void test_forced_commit_is_delivered_and_audited(void **state)
{
	struct fixture *f = *state;
	const char *reason = "p1 lost its disk; p0's side must close today";
	char id[32];
	tpc_wc *wc;

	uint64_t txid = start_preparing(f, id, &wc);

	/* p1 has not voted: refused, and tpcctl says what --force would override. */
	expect_code(f, ctl(f, "txn", "commit", id, "--reason", reason, NULL), 1);
	err_has(f, "refused");
	err_has(f, "state: PREPARING");
	err_has(f, "--force");

	expect_code(f, ctl(f, "txn", "commit", id, "--reason", reason, "--force", "--operator",
			   "alice", NULL), 0);
	out_has(f, "COMMIT recorded");
	part_expect(f->c, 0, "applied %llu", (unsigned long long)txid); /* pushed at once */

	expect_code(f, ctl(f, "audit", NULL), 0);
	out_has(f, "alice");
	out_has(f, "commit");
	out_has(f, id);
	out_has(f, reason);
	out_has(f, "PREPARING");

	expect_code(f, ctl(f, "audit", "-o", "json", "--limit", "1", NULL), 0);
	json_t *j = out_json(f);
	json_t *e = json_array_get(json_object_get(j, "entries"), 0);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "reason")), reason);
	assert_string_equal(json_string_value(json_object_get(e, "operator")), "alice");
	assert_string_equal(json_string_value(json_object_get(e, "txid")), id);
	assert_true(json_is_true(json_object_get(e, "forced")));
	json_decref(j);
}

static void test_operator_abort_of_a_preparing_txn(void **state)
{
	struct fixture *f = *state;
	char id[32];
	tpc_wc *wc;

	uint64_t txid = start_preparing(f, id, &wc);

	expect_code(f, ctl(f, "txn", "abort", id, "--reason", "p1 is gone for good", NULL), 0);
	out_has(f, "ABORT recorded");
	client_expect_outcome(wc, txid, TPC__OUTCOME_KIND__OUTCOME_ABORTED, NULL, 0);
	expect_code(f, ctl(f, "txn", "show", id, NULL), 3); /* not open any more */
	err_has(f, "ABORTED");
	expect_code(f, ctl(f, "audit", NULL), 0);
	out_has(f, "tester"); /* the login name, when no --operator */
	out_has(f, "p1 is gone for good");
}

/* ---- exit codes and messages ------------------------------------------------------ */

static void test_exit_codes(void **state)
{
	struct fixture *f = *state;
	char refused[64];

	start(f, NULL);
	expect_code(f, ctl(f, "txn", "show", "123456789", NULL), 3);
	err_has(f, "not open");
	expect_code(f, ctl(f, "txn", "retry", "123456789", NULL), 3);

	expect_code(f, ctl(f, "txn", "show", NULL), 2);
	expect_code(f, ctl(f, "txn", "show", "12x", NULL), 2);
	expect_code(f, ctl(f, "txn", "frobnicate", "1", NULL), 2);
	expect_code(f, ctl(f, "nonsense", NULL), 2);
	expect_code(f, ctl(f, "txn", "commit", "5", NULL), 2);
	err_has(f, "--reason");
	expect_code(f, ctl(f, "txn", "list", "--state", "DONE", NULL), 2);
	expect_code(f, ctl(f, "txn", "list", "--older-than", "soon", NULL), 2);
	expect_code(f, ctl(f, "txn", "list", "--force", NULL), 2);
	expect_code(f, ctl(f, "status", "-o", "yaml", NULL), 2);
	expect_code(f, ctl(f, NULL), 2);

	expect_code(f, ctl(f, "--help", NULL), 0);
	out_has(f, "txn commit ID --reason TEXT");
	expect_code(f, ctl(f, "txn", "abort", "--help", NULL), 0);
	out_has(f, "--force");
	expect_code(f, ctl(f, "help", "txn", NULL), 0);
	out_has(f, "txn retry ID");

	/* Nobody listening: exit 1 and a message that says where it looked. */
	snprintf(refused, sizeof(refused), "127.0.0.1:%d", tpc_free_port());
	expect_code(f, ctl(f, "--admin", refused, "status", NULL), 1);
	err_has(f, "Connection refused");
	err_has(f, refused);
}


/* ---- participants: the bound id, and forgetting it ---------------------------------- */

static void wait_ctl_disconnected(struct fixture *f, const char *name)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		expect_code(f, ctl(f, "-o", "json", "participant", "list", NULL), 0);
		json_t *j = out_json(f), *p;
		size_t i;
		int up = 0;
		json_array_foreach(json_object_get(j, "participants"), i, p) {
			json_t *conn = json_object_get(p, "connected");
			if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
				up = json_is_true(conn);
		}
		json_decref(j);
		if (!up)
			return;
		if (now_ms() > deadline)
			fail_msg("%s still connected after %d ms", name, WAIT_MS);
		poll(NULL, 0, 20);
	}
}

static void test_participant_list_shows_the_id_and_forget_unbinds_it(void **state)
{
	struct fixture *f = *state;
	struct tpc_wc_identity id;
	char hex[33];

	start(f, NULL);
	part_start(f->c, 0, NULL);
	tpc_wc_default_identity("p0", &id);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", id.participant_id[i]);

	expect_code(f, ctl(f, "participant", "list", NULL), 0);
	out_has(f, "PARTICIPANT-ID");
	out_has(f, "INCARNATION");
	out_has(f, hex);

	expect_code(f, ctl(f, "participant", "forget", "p0", NULL), 2);
	err_has(f, "--reason");
	expect_code(f, ctl(f, "participant", "forget", NULL), 2);
	expect_code(f, ctl(f, "participant", "forget", "p0", "--reason", "x", NULL), 1);
	err_has(f, "connected");
	expect_code(f, ctl(f, "participant", "forget", "nobody", "--reason", "x", NULL), 3);

	assert_int_equal(tpc_proc_kill9(f->c->parts[0].proc), 0);
	wait_ctl_disconnected(f, "p0");
	expect_code(f, ctl(f, "participant", "forget", "p0", "--reason", "its disk died", NULL),
		    0);
	out_has(f, "forgotten");
	out_has(f, hex);
	expect_code(f, ctl(f, "participant", "list", NULL), 0);
	if (strstr(f->r.out, "p0 ")) /* its name was freed with its binding */
		fail_msg("p0 is still listed after the forget:\n%s", f->r.out);
	expect_code(f, ctl(f, "audit", NULL), 0);
	out_has(f, "forget-participant");
	out_has(f, "its disk died");

	expect_code(f, ctl(f, "participant", "forget", "--help", NULL), 0);
	out_has(f, "state folder");
	expect_code(f, ctl(f, "help", "participant", NULL), 0);
	out_has(f, "participant forget NAME");
}

/* ---- the token, and the environment ----------------------------------------------- */

static void write_token(const char *path, const char *text)
{
	FILE *t = fopen(path, "w");

	assert_non_null(t);
	fputs(text, t);
	assert_int_equal(fclose(t), 0);
	assert_int_equal(chmod(path, 0600), 0);
}

static void test_token_required_when_configured(void **state)
{
	struct fixture *f = *state;
	char token[PATH_MAX + 32], wrong[PATH_MAX + 32], env_admin[80], env_token[PATH_MAX + 64];

	snprintf(token, sizeof(token), "%s/admin.token", f->c->dir);
	snprintf(wrong, sizeof(wrong), "%s/wrong.token", f->c->dir);
	write_token(token, "  s3cret-token \n");
	write_token(wrong, "guess\n");
	start(f, token);

	/* With a token file, reads need the token too. */
	expect_code(f, ctl(f, "status", NULL), 1);
	err_has(f, "--token-file");
	expect_code(f, ctl(f, "--token-file", token, "status", NULL), 0);
	/* So does a change: none given, a wrong one, the right one. */
	expect_code(f, ctl(f, "txn", "abort", "777", "--reason", "cleanup", NULL), 1);
	err_has(f, "--token-file");
	expect_code(f, ctl(f, "--token-file", wrong, "txn", "abort", "777", "--reason", "cleanup",
			   NULL), 1);
	err_has(f, "refused the token");
	expect_code(f, ctl(f, "--token-file", token, "txn", "abort", "777", "--reason", "cleanup",
			   NULL), 3); /* past the token; 777 was never issued */
	err_has(f, "never issued");

	/* Rotated in place and reloaded (SIGHUP): the old token stops working at once. */
	write_token(wrong, "rotated-token\n");
	write_token(token, "rotated-token\n");
	assert_int_equal(kill(tpc_proc_pid(f->c->coord), SIGHUP), 0);
	coord_wait_log(f->c, "SIGHUP: reloaded");
	expect_code(f, ctl(f, "--token-file", token, "txn", "abort", "779", "--reason", "cleanup",
			   NULL), 3); /* past the token: never issued */
	write_token(wrong, "s3cret-token\n");
	expect_code(f, ctl(f, "--token-file", wrong, "txn", "abort", "780", "--reason", "cleanup",
			   NULL), 1);

	/* TPC_ADMIN and TPC_ADMIN_TOKEN_FILE stand in for --admin and --token-file. */
	snprintf(env_admin, sizeof(env_admin), "TPC_ADMIN=%s", f->admin);
	snprintf(env_token, sizeof(env_token), "TPC_ADMIN_TOKEN_FILE=%s", token);
	const char *const env[] = { env_admin, env_token, NULL };
	expect_code(f, ctl_with_env(f, env, "txn", "abort", "778", "--reason",
				    "cleanup", NULL), 3);
}

/* The server lists at most 1000 per page; tpcctl follows the cursor to list them all,
 * or as many as --limit says. */
static void test_txn_list_follows_the_pages(void **state)
{
	struct fixture *f = *state;
	enum { N = 1003 };

	start(f, NULL);
	tpc_wc *wc = client_open(f->c, NULL);
	for (int i = 0; i < N; i++)
		client_begin(wc, NULL);
	expect_code(f, ctl(f, "-o", "json", "txn", "list", NULL), 0);
	json_t *j = out_json(f);
	assert_int_equal(json_array_size(json_object_get(j, "transactions")), N);
	assert_null(json_object_get(j, "next"));
	json_decref(j);
	expect_code(f, ctl(f, "-o", "json", "txn", "list", "--limit", "1001", NULL), 0);
	j = out_json(f);
	assert_int_equal(json_array_size(json_object_get(j, "transactions")), 1001);
	json_decref(j);
	expect_code(f, ctl(f, "txn", "list", NULL), 0);
	out_has(f, "1003 of 1003 open transaction(s)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_parser_takes_one_byte_at_a_time),
		cmocka_unit_test(test_http_parser_rejects_what_is_not_http),
		cmocka_unit_test_setup_teardown(test_status_list_and_show_a_preparing_txn,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_json_output_parses, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_forced_commit_is_delivered_and_audited,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_operator_abort_of_a_preparing_txn, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_exit_codes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_participant_list_shows_the_id_and_forget_unbinds_it,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_token_required_when_configured, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_txn_list_follows_the_pages, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
