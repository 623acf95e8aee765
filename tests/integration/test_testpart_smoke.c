/*
 * test_testpart_smoke.c - checks the test support itself, without a real coordinator:
 * the process harness (proc.h), tpc-testpart's lifecycle and state file, tpc-testpart's
 * protocol behaviour against a fake coordinator played by this test through a wire
 * client wrapped around an accepted socket, and the wire client's request/reply
 * matching against a scripted server thread.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc.h"
#include "wire.h"
#include "wireclient.h"

#define WAIT_MS 10000

struct fixture {
	tpc_procs *procs;
	char dir[PATH_MAX];
	char state[PATH_MAX + 32];
	char log[PATH_MAX + 32];
	char hostport[64];
	int lfd; /* the fake coordinator's listening socket, or -1 */
	tpc_wc *wc; /* the current connection to or from the test, freed in teardown */
	uint64_t hello_inc;       /* the last Hello's incarnation */
	size_t hello_nprepared;   /* ... and how many txids it listed as PREPARED */
};

/* ---- fixture and helpers ------------------------------------------------------ */

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->lfd = -1;
	fx->procs = tpc_procs_new();
	assert_non_null(fx->procs);
	assert_int_equal(tpc_tmpdir_make(fx->dir, sizeof(fx->dir)), 0);
	snprintf(fx->state, sizeof(fx->state), "%s/part.state", fx->dir);
	snprintf(fx->log, sizeof(fx->log), "%s/part.log", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	tpc_wc_free(fx->wc);
	tpc_procs_free(fx->procs);
	if (fx->lfd >= 0)
		close(fx->lfd);
	assert_int_equal(tpc_tmpdir_release(fx->dir), 0);
	free(fx);
	return 0;
}

/* Point the participant at a port where nothing listens. */
static void use_dead_port(struct fixture *fx)
{
	int port = tpc_free_port();

	assert_true(port > 0);
	snprintf(fx->hostport, sizeof(fx->hostport), "127.0.0.1:%d", port);
}

/* Play the coordinator: listen on a port of our own. */
static void use_fake_coordinator(struct fixture *fx)
{
	int port = 0;

	fx->lfd = tpc_listen_loopback(8, &port);
	assert_true(fx->lfd >= 0);
	snprintf(fx->hostport, sizeof(fx->hostport), "127.0.0.1:%d", port);
}

/* Start tpc-testpart named "p1"; extra arguments end with NULL. */
static tpc_proc *spawn_part(struct fixture *fx, ...)
{
	char *argv[16] = { TPC_TESTPART_BIN, "--coordinator", fx->hostport, "--name", "p1",
			   "--state", fx->state };
	int n = 7;
	va_list ap;

	va_start(ap, fx);
	while (n < 15 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	tpc_proc *p = tpc_proc_spawn(fx->procs, argv, fx->log);
	assert_non_null(p);
	return p;
}

static void expect_line(tpc_proc *p, const char *line)
{
	const char *got = tpc_proc_wait_line(p, line, WAIT_MS);

	assert_non_null(got);
	assert_string_equal(got, line);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void assert_file(const char *path, const char *want)
{
	char buf[4096] = { 0 };
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

/* Close the test's current connection (the peer sees EOF). */
static void close_wc(struct fixture *fx)
{
	tpc_wc_free(fx->wc);
	fx->wc = NULL;
}

static tpc_wc *accept_part(struct fixture *fx)
{
	tpc_wc *wc = tpc_wc_accept(fx->lfd, WAIT_MS);

	assert_non_null(wc);
	close_wc(fx);
	fx->wc = wc;
	return wc;
}

static Tpc__Envelope *expect_body(tpc_wc *wc, Tpc__Envelope__BodyCase body)
{
	Tpc__Envelope *e = tpc_wc_recv(wc, WAIT_MS);

	if (!e)
		fail_msg("expected %s: %s", tpc_wire_body_name(body), tpc_wc_errmsg(wc));
	assert_int_equal(e->body_case, body);
	return e;
}

/* Accept the participant, check its Hello, answer with @p epoch. */
static tpc_wc *fake_handshake(struct fixture *fx, tpc_proc *p, uint64_t epoch)
{
	tpc_wc *wc = accept_part(fx);
	Tpc__Envelope *e = expect_body(wc, TPC__ENVELOPE__BODY_HELLO);
	Tpc__Envelope rep = TPC__ENVELOPE__INIT;
	Tpc__HelloReply hr = TPC__HELLO_REPLY__INIT;
	char line[64];

	struct tpc_wc_identity id;

	assert_int_equal(e->hello->role, TPC__ROLE__ROLE_PARTICIPANT);
	assert_string_equal(e->hello->name, "p1");
	assert_int_equal(e->hello->protocol_version, TPC_PROTOCOL_VERSION);
	/* D8: the participant id (derived from the name by default) and an incarnation. */
	tpc_wc_default_identity("p1", &id);
	assert_int_equal(e->hello->participant_id.len, 16);
	assert_memory_equal(e->hello->participant_id.data, id.participant_id, 16);
	assert_true(e->hello->incarnation >= 1);
	fx->hello_inc = e->hello->incarnation;
	fx->hello_nprepared = e->hello->n_prepared_txids;
	hr.epoch = epoch;
	hr.protocol_version = TPC_PROTOCOL_VERSION;
	rep.request_id = e->request_id;
	rep.body_case = TPC__ENVELOPE__BODY_HELLO_REPLY;
	rep.hello_reply = &hr;
	tpc__envelope__free_unpacked(e, NULL);
	assert_int_equal(tpc_wc_send(wc, &rep), 0);
	snprintf(line, sizeof(line), "ready %llu", (unsigned long long)epoch);
	expect_line(p, line);
	return wc;
}

static void send_prepare(tpc_wc *wc, uint64_t txid, uint64_t epoch)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Prepare m = TPC__PREPARE__INIT;

	m.txid = txid;
	m.epoch = epoch;
	env.body_case = TPC__ENVELOPE__BODY_PREPARE;
	env.prepare = &m;
	assert_int_equal(tpc_wc_send(wc, &env), 0);
}

static void send_decision(tpc_wc *wc, uint64_t txid, Tpc__DecisionKind d, uint64_t epoch)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Decision m = TPC__DECISION__INIT;

	m.txid = txid;
	m.decision = d;
	m.epoch = epoch;
	env.body_case = TPC__ENVELOPE__BODY_DECISION;
	env.decision = &m;
	assert_int_equal(tpc_wc_send(wc, &env), 0);
}

/* A Vote for @p txid; @return the incarnation it names. */
static uint64_t expect_vote(tpc_wc *wc, uint64_t txid, Tpc__VoteKind v)
{
	Tpc__Envelope *e = expect_body(wc, TPC__ENVELOPE__BODY_VOTE);
	uint64_t inc = e->vote->incarnation;

	assert_int_equal(e->vote->txid, txid);
	assert_int_equal(e->vote->vote, v);
	tpc__envelope__free_unpacked(e, NULL);
	return inc;
}

static void expect_ack(tpc_wc *wc, uint64_t txid)
{
	Tpc__Envelope *e = expect_body(wc, TPC__ENVELOPE__BODY_ACK);

	assert_int_equal(e->ack->txid, txid);
	tpc__envelope__free_unpacked(e, NULL);
}

/* The participant sends Join for txid; answer JoinReply (or an Error if err != 0). */
static void fake_join(tpc_wc *wc, tpc_proc *p, uint64_t txid, Tpc__ErrorCode err)
{
	Tpc__Envelope rep = TPC__ENVELOPE__INIT;
	Tpc__JoinReply jr = TPC__JOIN_REPLY__INIT;
	Tpc__Error er = TPC__ERROR__INIT;

	assert_int_equal(tpc_proc_writef(p, "join %llu", (unsigned long long)txid), 0);
	Tpc__Envelope *e = expect_body(wc, TPC__ENVELOPE__BODY_JOIN);
	assert_int_equal(e->join->txid, txid);
	assert_string_equal(e->join->participant, "p1");
	rep.request_id = e->request_id;
	tpc__envelope__free_unpacked(e, NULL);
	if (err) {
		er.code = err;
		er.message = "no such transaction";
		er.txid = txid;
		rep.body_case = TPC__ENVELOPE__BODY_ERROR;
		rep.error = &er;
	} else {
		jr.txid = txid;
		rep.body_case = TPC__ENVELOPE__BODY_JOIN_REPLY;
		rep.join_reply = &jr;
	}
	assert_int_equal(tpc_wc_send(wc, &rep), 0);
}

/* @p txid joins (fake_join), is prepared, and p votes @p v: in its log and on the wire. */
static void fake_join_prepare_vote(tpc_wc *wc, tpc_proc *p, uint64_t txid, Tpc__VoteKind v)
{
	const char *word = v == TPC__VOTE_KIND__VOTE_YES ? "YES"
			   : v == TPC__VOTE_KIND__VOTE_NO ? "NO" : "READ_ONLY";

	char line[64];

	snprintf(line, sizeof(line), "voted %llu %s", (unsigned long long)txid, word);
	fake_join(wc, p, txid, 0);
	send_prepare(wc, txid, 1);
	expect_line(p, line);
	expect_vote(wc, txid, v);
}

/* The participant sends StatusQuery for txid; answer with st. */
static void fake_status(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus st)
{
	Tpc__Envelope rep = TPC__ENVELOPE__INIT;
	Tpc__StatusReply sr = TPC__STATUS_REPLY__INIT;
	Tpc__Envelope *e = expect_body(wc, TPC__ENVELOPE__BODY_STATUS_QUERY);

	assert_int_equal(e->status_query->txid, txid);
	rep.request_id = e->request_id;
	tpc__envelope__free_unpacked(e, NULL);
	sr.txid = txid;
	sr.status = st;
	rep.body_case = TPC__ENVELOPE__BODY_STATUS_REPLY;
	rep.status_reply = &sr;
	assert_int_equal(tpc_wc_send(wc, &rep), 0);
}

static void expect_exit(tpc_proc *p, int code)
{
	int st = -1;

	assert_int_equal(tpc_proc_wait_exit(p, WAIT_MS, &st), 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), code);
}

static void expect_killed(tpc_proc *p)
{
	int st = -1;

	assert_int_equal(tpc_proc_wait_exit(p, WAIT_MS, &st), 0);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
}

/* ---- harness and lifecycle ---------------------------------------------------- */

static void test_testpart_says_disconnected_and_quits(void **state)
{
	struct fixture *fx = *state;

	use_dead_port(fx);
	tpc_proc *p = spawn_part(fx, NULL);
	expect_line(p, "disconnected");
	assert_int_equal(tpc_proc_write_line(p, "join 5"), 0);
	expect_line(p, "join-error 5 ERR_UNAVAILABLE not connected");
	assert_int_equal(tpc_proc_write_line(p, "frobnicate 7"), 0);
	expect_line(p, "bad-command frobnicate 7");
	assert_int_equal(tpc_proc_write_line(p, "quit"), 0);
	expect_exit(p, 0);
	assert_false(tpc_proc_alive(p));
	assert_int_equal(tpc_proc_write_line(p, "quit"), -EPIPE);
}

static void test_testpart_exits_on_stdin_eof(void **state)
{
	struct fixture *fx = *state;

	use_dead_port(fx);
	tpc_proc *p = spawn_part(fx, NULL);
	expect_line(p, "disconnected");
	tpc_proc_close_stdin(p);
	expect_exit(p, 0);
}

static void test_testpart_help_and_bad_usage(void **state)
{
	struct fixture *fx = *state;
	char *help[] = { TPC_TESTPART_BIN, "--help", NULL };
	char *bad[] = { TPC_TESTPART_BIN, "--vote", "maybe", NULL };

	tpc_proc *p = tpc_proc_spawn(fx->procs, help, fx->log);
	assert_non_null(p);
	assert_non_null(tpc_proc_wait_line(p, "usage: tpc-testpart", WAIT_MS));
	expect_exit(p, 0);
	p = tpc_proc_spawn(fx->procs, bad, fx->log);
	assert_non_null(p);
	expect_exit(p, 2);
}

static void test_harness_kill9_and_term(void **state)
{
	struct fixture *fx = *state;
	int st = -1;

	use_dead_port(fx);
	tpc_proc *a = spawn_part(fx, NULL);
	tpc_proc *b = spawn_part(fx, NULL);
	expect_line(a, "disconnected");
	expect_line(b, "disconnected");
	assert_int_equal(tpc_proc_kill9(a), 0);
	assert_false(tpc_proc_alive(a));
	assert_int_equal(tpc_proc_term(b, WAIT_MS, &st), 0);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGTERM);
	/* a child that does not exit: the wait times out and leaves it running */
	tpc_proc *c = spawn_part(fx, NULL);
	expect_line(c, "disconnected");
	assert_int_equal(tpc_proc_wait_exit(c, 50, &st), -ETIMEDOUT);
	assert_true(tpc_proc_alive(c));
	/* teardown kills it */
}

static void test_harness_spawn_reports_exec_failure(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { "/nonexistent/tpc-nothing", NULL };

	errno = 0;
	assert_null(tpc_proc_spawn(fx->procs, argv, fx->log));
	assert_int_equal(errno, ENOENT);
}

static void test_harness_wait_port_and_backlog(void **state)
{
	struct fixture *fx = *state;
	int port = tpc_free_port();

	assert_int_equal(tpc_wait_port("127.0.0.1", port, 50), -ETIMEDOUT);
	int lfd = tpc_listen_loopback(8, &port);
	assert_true(lfd >= 0);
	assert_int_equal(tpc_wait_port("127.0.0.1", port, WAIT_MS), 0);
	close(lfd);
	/* lines that did not match stay in the backlog for later waits */
	use_fake_coordinator(fx);
	tpc_proc *p = spawn_part(fx, NULL);
	fake_handshake(fx, p, 1);
	assert_int_equal(tpc_proc_write_line(p, "vote 3 no"), 0);
	assert_int_equal(tpc_proc_write_line(p, "vote 4 silent"), 0);
	expect_line(p, "vote-set 4 silent");
	assert_non_null(tpc_proc_take_line(p, "vote-set 3 no"));
	assert_null(tpc_proc_take_line(p, "vote-set 3"));
	assert_null(tpc_proc_wait_line(p, "never", 30));
	assert_int_equal(errno, ETIMEDOUT);
	close_wc(fx);
}

static void test_testpart_cuts_torn_state_line(void **state)
{
	struct fixture *fx = *state;

	write_file(fx->state, "P 5\nC 5\nP 7\nC 7");
	use_dead_port(fx);
	tpc_proc *p = spawn_part(fx, NULL);
	expect_line(p, "disconnected");
	assert_int_equal(tpc_proc_write_line(p, "quit"), 0);
	expect_exit(p, 0);
	assert_file(fx->state, "P 5\nC 5\nP 7\nI 1\n");
}

/* ---- against a fake coordinator ----------------------------------------------- */

static void test_testpart_prepares_applies_and_acks(void **state)
{
	struct fixture *fx = *state;

	use_fake_coordinator(fx);
	tpc_proc *p = spawn_part(fx, NULL);
	tpc_wc *wc = fake_handshake(fx, p, 3);
	fake_join(wc, p, 7, 0);
	expect_line(p, "joined 7");
	send_prepare(wc, 7, 3);
	expect_line(p, "prepare 7");
	expect_line(p, "voted 7 YES");
	expect_vote(wc, 7, TPC__VOTE_KIND__VOTE_YES);
	assert_file(fx->state, "I 1\nP 7 1\n");
	send_decision(wc, 7, TPC__DECISION_KIND__DECISION_COMMIT, 3);
	expect_line(p, "applied 7");
	expect_line(p, "acked 7");
	expect_ack(wc, 7);
	send_decision(wc, 7, TPC__DECISION_KIND__DECISION_COMMIT, 3);
	expect_line(p, "duplicate 7");
	expect_line(p, "acked 7");
	expect_ack(wc, 7);
	send_decision(wc, 99, TPC__DECISION_KIND__DECISION_COMMIT, 3);
	expect_line(p, "duplicate 99"); /* no prepared record: already applied */
	expect_ack(wc, 99);
	assert_file(fx->state, "I 1\nP 7 1\nC 7\n");
	close_wc(fx);
}

static void test_testpart_votes_as_told(void **state)
{
	struct fixture *fx = *state;

	use_fake_coordinator(fx);
	tpc_proc *p = spawn_part(fx, "--vote", "no", NULL);
	tpc_wc *wc = fake_handshake(fx, p, 1);
	fake_join_prepare_vote(wc, p, 2, TPC__VOTE_KIND__VOTE_NO);
	assert_int_equal(tpc_proc_write_line(p, "vote 3 readonly"), 0);
	expect_line(p, "vote-set 3 readonly");
	fake_join_prepare_vote(wc, p, 3, TPC__VOTE_KIND__VOTE_READ_ONLY);
	assert_int_equal(tpc_proc_write_line(p, "vote 4 silent"), 0);
	expect_line(p, "vote-set 4 silent");
	send_prepare(wc, 4, 1);
	expect_line(p, "silent 4");
	assert_int_equal(tpc_proc_write_line(p, "vote 5 yes"), 0);
	expect_line(p, "vote-set 5 yes");
	send_prepare(wc, 5, 1); /* never joined: its staged writes cannot exist */
	expect_line(p, "voted 5 NO");
	expect_vote(wc, 5, TPC__VOTE_KIND__VOTE_NO);
	send_decision(wc, 2, TPC__DECISION_KIND__DECISION_ABORT, 1);
	expect_line(p, "discarded 2");
	assert_file(fx->state, "I 1\nA 2\n");
	close_wc(fx);
}

static void test_testpart_ignores_stale_epochs_and_reports_errors(void **state)
{
	struct fixture *fx = *state;

	use_fake_coordinator(fx);
	tpc_proc *p = spawn_part(fx, NULL);
	tpc_wc *wc = fake_handshake(fx, p, 5);
	fake_join(wc, p, 8, TPC__ERROR_CODE__ERR_NOT_FOUND);
	expect_line(p, "join-error 8 ERR_NOT_FOUND no such transaction");
	send_decision(wc, 9, TPC__DECISION_KIND__DECISION_COMMIT, 4);
	expect_line(p, "stale-epoch 9 4");
	send_prepare(wc, 9, 4);
	expect_line(p, "stale-epoch 9 4");
	assert_int_equal(tpc_proc_write_line(p, "query 9"), 0);
	fake_status(wc, 9, TPC__TXN_STATUS__STATUS_ABORTED);
	expect_line(p, "status 9 ABORTED");
	assert_null(tpc_proc_take_line(p, "prepare 9"));
	/* the coordinator goes away: one "disconnected", then a reconnect to a new epoch */
	close_wc(fx);
	expect_line(p, "disconnected");
	wc = fake_handshake(fx, p, 6);
	assert_null(tpc_proc_take_line(p, "disconnected"));
	close_wc(fx);
}

static void test_testpart_recovers_prepared_txids(void **state)
{
	struct fixture *fx = *state;

	write_file(fx->state, "P 5\nP 8\nC 8\n");
	use_fake_coordinator(fx);
	tpc_proc *p = spawn_part(fx, NULL);
	tpc_wc *wc = fake_handshake(fx, p, 2);
	assert_int_equal(fx->hello_nprepared, 1); /* 5: prepared, not decided */
	fake_status(wc, 5, TPC__TXN_STATUS__STATUS_PENDING);
	expect_line(p, "revoted 5");
	expect_vote(wc, 5, TPC__VOTE_KIND__VOTE_YES);
	close_wc(fx);
	expect_line(p, "disconnected");
	wc = fake_handshake(fx, p, 2);
	fake_status(wc, 5, TPC__TXN_STATUS__STATUS_COMMITTED);
	expect_line(p, "applied 5");
	assert_int_equal(tpc_proc_write_line(p, "quit"), 0);
	expect_exit(p, 0);
	assert_file(fx->state, "P 5\nP 8\nC 8\nI 1\nC 5\n");
	close_wc(fx);
}

static void test_testpart_crashes_after_prepare_log(void **state)
{
	struct fixture *fx = *state;

	use_fake_coordinator(fx);
	tpc_proc *p = spawn_part(fx, "--crash-at", "after-prepare-log", "--crash-txid", "4",
				 NULL);
	tpc_wc *wc = fake_handshake(fx, p, 1);
	fake_join_prepare_vote(wc, p, 3, TPC__VOTE_KIND__VOTE_YES);
	fake_join(wc, p, 4, 0);
	send_prepare(wc, 4, 1);
	expect_line(p, "crash after-prepare-log 4");
	expect_killed(p);
	assert_file(fx->state, "I 1\nP 3 1\nP 4 1\n");
	close_wc(fx);
}

static void test_testpart_crashes_after_vote_and_after_apply(void **state)
{
	struct fixture *fx = *state;

	use_fake_coordinator(fx);
	tpc_proc *p = spawn_part(fx, "--crash-at", "after-vote", NULL);
	tpc_wc *wc = fake_handshake(fx, p, 1);
	fake_join(wc, p, 3, 0);
	send_prepare(wc, 3, 1);
	expect_line(p, "crash after-vote 3");
	expect_killed(p);
	expect_vote(wc, 3, TPC__VOTE_KIND__VOTE_YES); /* flushed before the crash */
	close_wc(fx);

	p = spawn_part(fx, "--crash-at", "after-apply", NULL);
	wc = fake_handshake(fx, p, 1);
	assert_int_equal(fx->hello_inc, 2); /* a new incarnation ... */
	assert_int_equal(fx->hello_nprepared, 1);
	fake_status(wc, 3, TPC__TXN_STATUS__STATUS_PENDING);
	expect_line(p, "revoted 3");
	/* ... whose YES names the incarnation that joined (D8) */
	assert_int_equal(expect_vote(wc, 3, TPC__VOTE_KIND__VOTE_YES), 1);
	send_decision(wc, 3, TPC__DECISION_KIND__DECISION_COMMIT, 1);
	expect_line(p, "crash after-apply 3");
	expect_killed(p);
	assert_file(fx->state, "I 1\nP 3 1\nI 2\nC 3\n");
	assert_null(tpc_wc_recv(wc, 200)); /* no Ack: it died first */
	assert_int_equal(tpc_wc_last_rc(wc), -ECONNRESET);
	close_wc(fx);
}

/* ---- wire client against a scripted server thread ----------------------------- */

struct script {
	int lfd;
	char failure[128]; /* empty if the server saw what it expected */
};

static void reply_to(tpc_wc *wc, Tpc__Envelope *rep, uint64_t request_id)
{
	rep->request_id = request_id;
	tpc_wc_send(wc, rep);
}

static int script_step(struct script *s, tpc_wc *wc, Tpc__Envelope__BodyCase want,
		       uint64_t *request_id)
{
	Tpc__Envelope *e = tpc_wc_recv(wc, WAIT_MS);

	if (!e || e->body_case != want) {
		snprintf(s->failure, sizeof(s->failure), "expected %s", tpc_wire_body_name(want));
		if (e)
			tpc__envelope__free_unpacked(e, NULL);
		return -1;
	}
	*request_id = e->request_id;
	tpc__envelope__free_unpacked(e, NULL);
	return 0;
}

static void script_serve(struct script *s, tpc_wc *wc)
{
	Tpc__Envelope rep = TPC__ENVELOPE__INIT;
	Tpc__HelloReply hr = TPC__HELLO_REPLY__INIT;
	Tpc__Prepare pr = TPC__PREPARE__INIT;
	Tpc__BeginReply br = TPC__BEGIN_REPLY__INIT;
	Tpc__Error er = TPC__ERROR__INIT;
	Tpc__StatusReply sr = TPC__STATUS_REPLY__INIT;
	uint64_t id;

	if (script_step(s, wc, TPC__ENVELOPE__BODY_HELLO, &id))
		return;
	pr.txid = 11;
	rep.body_case = TPC__ENVELOPE__BODY_PREPARE; /* unrelated: must be queued */
	rep.prepare = &pr;
	reply_to(wc, &rep, 0);
	hr.epoch = 42;
	rep.body_case = TPC__ENVELOPE__BODY_HELLO_REPLY;
	rep.hello_reply = &hr;
	reply_to(wc, &rep, id);
	if (script_step(s, wc, TPC__ENVELOPE__BODY_BEGIN, &id))
		return;
	br.txid = 76;
	rep.body_case = TPC__ENVELOPE__BODY_BEGIN_REPLY;
	rep.begin_reply = &br;
	reply_to(wc, &rep, id + 100); /* a reply to somebody else's request */
	br.txid = 77;
	reply_to(wc, &rep, id);
	if (script_step(s, wc, TPC__ENVELOPE__BODY_COMMIT, &id))
		return;
	er.code = TPC__ERROR_CODE__ERR_NOT_ACTIVE;
	er.message = "too late";
	rep.body_case = TPC__ENVELOPE__BODY_ERROR;
	rep.error = &er;
	reply_to(wc, &rep, id);
	if (script_step(s, wc, TPC__ENVELOPE__BODY_STATUS_QUERY, &id))
		return;
	sr.txid = 77;
	sr.status = TPC__TXN_STATUS__STATUS_COMMITTED;
	rep.body_case = TPC__ENVELOPE__BODY_STATUS_REPLY;
	rep.status_reply = &sr;
	reply_to(wc, &rep, id);
}

static void *script_thread(void *arg)
{
	struct script *s = arg;
	tpc_wc *wc = tpc_wc_accept(s->lfd, WAIT_MS);

	if (!wc) {
		snprintf(s->failure, sizeof(s->failure), "no connection");
		return NULL;
	}
	script_serve(s, wc);
	tpc_wc_free(wc); /* closes: the client then sees EOF */
	return NULL;
}

static void test_wireclient_matches_replies_and_queues_the_rest(void **state)
{
	struct fixture *fx = *state;
	struct script s = { .lfd = -1 };
	pthread_t th;
	tpc_wc *wc = NULL;
	char err[128];
	uint64_t epoch = 0;
	struct tpc_wc_begin b;
	struct tpc_wc_outcome o;
	Tpc__TxnStatus st;

	use_fake_coordinator(fx);
	s.lfd = fx->lfd;
	assert_int_equal(pthread_create(&th, NULL, script_thread, &s), 0);
	assert_int_equal(tpc_wc_connect(fx->hostport, WAIT_MS, &fx->wc, err, sizeof(err)), 0);
	wc = fx->wc;
	assert_int_equal(tpc_wc_hello(wc, TPC__ROLE__ROLE_CLIENT, "c1", &epoch), 0);
	assert_int_equal(epoch, 42);
	assert_int_equal(tpc_wc_queued(wc), 1);
	assert_int_equal(tpc_wc_begin(wc, "key-1", 0, &b), 0);
	assert_int_equal(b.txid, 77);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_STARTED);
	assert_int_equal(tpc_wc_commit(wc, 77, &o), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(wc), TPC__ERROR_CODE__ERR_NOT_ACTIVE);
	assert_string_equal(tpc_wc_errmsg(wc), "ERR_NOT_ACTIVE: too late");
	assert_int_equal(tpc_wc_status(wc, 77, &st), 0);
	assert_int_equal(st, TPC__TXN_STATUS__STATUS_COMMITTED);
	Tpc__Envelope *e = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_BEGIN_REPLY, 0);
	assert_non_null(e);
	assert_int_equal(e->begin_reply->txid, 76);
	tpc__envelope__free_unpacked(e, NULL);
	e = tpc_wc_recv(wc, 0);
	assert_non_null(e);
	assert_int_equal(e->body_case, TPC__ENVELOPE__BODY_PREPARE);
	tpc__envelope__free_unpacked(e, NULL);
	assert_null(tpc_wc_recv(wc, WAIT_MS));
	assert_int_equal(tpc_wc_last_rc(wc), -ECONNRESET);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_string_equal(s.failure, "");
}

static void test_wireclient_reports_refused_and_timeouts(void **state)
{
	struct fixture *fx = *state;
	tpc_wc *wc = NULL;
	char err[128];
	uint64_t epoch;

	use_dead_port(fx);
	assert_int_equal(tpc_wc_connect(fx->hostport, WAIT_MS, &wc, err, sizeof(err)),
			 -ECONNREFUSED);
	assert_null(wc);
	assert_int_equal(tpc_wc_connect("nonsense", WAIT_MS, &wc, err, sizeof(err)), -EINVAL);
	use_fake_coordinator(fx); /* listens, never answers */
	assert_int_equal(tpc_wc_connect(fx->hostport, WAIT_MS, &fx->wc, err, sizeof(err)), 0);
	wc = fx->wc;
	tpc_wc_set_timeout(wc, 50);
	assert_int_equal(tpc_wc_hello(wc, TPC__ROLE__ROLE_CLIENT, NULL, &epoch), -ETIMEDOUT);
	assert_int_equal(tpc_wc_send_raw(wc, "\xff\xff\xff\xff", 4), 0);
	assert_null(tpc_wc_recv(wc, 0));
	assert_int_equal(tpc_wc_last_rc(wc), -ETIMEDOUT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_testpart_says_disconnected_and_quits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_testpart_exits_on_stdin_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testpart_help_and_bad_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_harness_kill9_and_term, setup, teardown),
		cmocka_unit_test_setup_teardown(test_harness_spawn_reports_exec_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_harness_wait_port_and_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testpart_cuts_torn_state_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testpart_prepares_applies_and_acks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_testpart_votes_as_told, setup, teardown),
		cmocka_unit_test_setup_teardown(test_testpart_ignores_stale_epochs_and_reports_errors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_testpart_recovers_prepared_txids, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_testpart_crashes_after_prepare_log, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_testpart_crashes_after_vote_and_after_apply,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_wireclient_matches_replies_and_queues_the_rest,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_wireclient_reports_refused_and_timeouts, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
