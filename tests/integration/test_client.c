/*
 * test_client.c - libtpc's client API (tpc/client.h) against a real tpc-coordinator and
 * tpc-testpart participants, started as processes on free ports with fresh data folders:
 * blocking and asynchronous begin/commit/abort/status, pipelining, transaction keys and
 * fencing, a connection lost mid-commit, request timeouts, freeing with requests in
 * flight, and argument checking.
 *
 * Nothing sleeps for a fixed time: loops run until a condition holds or a deadline
 * passes. Every test's processes, sockets and folders go in teardown.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proc.h"
#include "tpc/client.h"
#include "tpc/libevent.h"
#include "util.h"
#include "wire.h"
#include "wireclient.h"

#define WAIT_MS 10000
#define NPIPE 200

struct fixture {
	tpc_procs *procs;
	char dir[PATH_MAX];
	char data[PATH_MAX + 32];
	char log[PATH_MAX + 32];
	char hostport[64];
	int port;
	int lfd;                 /* a listener that never answers, or -1 */
	int fillers[2];          /* connections filling lfd's accept queue, or -1 */
	tpc_proc *coord;
	tpc_client *client;      /* freed in teardown */
	struct event_base *base; /* for asynchronous tests; created on demand */
	struct event *tick;      /* keeps EVLOOP_ONCE from blocking past a deadline */
};

/* ---- fixture ---------------------------------------------------------------------- */

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->lfd = fx->fillers[0] = fx->fillers[1] = -1;
	fx->procs = tpc_procs_new();
	assert_non_null(fx->procs);
	assert_int_equal(tpc_tmpdir_make(fx->dir, sizeof(fx->dir)), 0);
	snprintf(fx->data, sizeof(fx->data), "%s/coord", fx->dir);
	snprintf(fx->log, sizeof(fx->log), "%s/stderr.log", fx->dir);
	fx->port = tpc_free_port();
	assert_true(fx->port > 0);
	snprintf(fx->hostport, sizeof(fx->hostport), "127.0.0.1:%d", fx->port);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	tpc_client_free(fx->client);
	if (fx->tick)
		event_free(fx->tick);
	if (fx->base)
		event_base_free(fx->base);
	tpc_procs_free(fx->procs);
	for (int i = 0; i < 2; i++)
		if (fx->fillers[i] >= 0)
			close(fx->fillers[i]);
	if (fx->lfd >= 0)
		close(fx->lfd);
	assert_int_equal(tpc_tmpdir_release(fx->dir), 0);
	free(fx);
	return 0;
}

/* The coordinator binary: the build's, unless TPC_COORDINATOR_BIN names another. */
static char *coordinator_bin(void)
{
	char *bin = getenv("TPC_COORDINATOR_BIN");
	return bin && bin[0] ? bin : TPC_COORDINATOR_BIN;
}

/* Start (or restart) the coordinator on the fixture's port and data folder. */
static void start_coordinator(struct fixture *fx)
{
	char *argv[] = { coordinator_bin(), "--listen", fx->hostport, "--data", fx->data,
			 "--log-level", "warn", NULL };

	fx->coord = tpc_proc_spawn(fx->procs, argv, fx->log);
	assert_non_null(fx->coord);
	assert_int_equal(tpc_wait_port("127.0.0.1", fx->port, WAIT_MS), 0);
}

/* A tpc-testpart named @p name; extra arguments end with NULL. Waits until it is ready. */
static tpc_proc *start_part(struct fixture *fx, const char *name, ...)
{
	char state[PATH_MAX + 64];
	char *argv[16] = { TPC_TESTPART_BIN, "--coordinator", fx->hostport, "--name",
			   (char *)name, "--state", state };
	int n = 7;
	va_list ap;

	snprintf(state, sizeof(state), "%s/%s.state", fx->dir, name);
	va_start(ap, name);
	while (n < 15 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	tpc_proc *p = tpc_proc_spawn(fx->procs, argv, fx->log);
	assert_non_null(p);
	assert_non_null(tpc_proc_wait_line(p, "ready ", WAIT_MS));
	return p;
}

static void expect_line(tpc_proc *p, const char *fmt, uint64_t txid)
{
	char want[128];

	snprintf(want, sizeof(want), fmt, txid);
	if (!tpc_proc_wait_line(p, want, WAIT_MS))
		fail_msg("no line \"%s\"", want);
}

/* A client for the fixture's coordinator; request_timeout_ms 0 keeps the default. */
static tpc_client *new_client(struct fixture *fx, uint32_t request_timeout_ms)
{
	tpc_client_config cfg;
	int err = 0;

	tpc_client_config_init(&cfg);
	cfg.coordinator = fx->hostport;
	cfg.name = "test-client";
	cfg.connect_timeout_ms = 2000;
	cfg.request_timeout_ms = request_timeout_ms ? request_timeout_ms : WAIT_MS;
	tpc_client *c = tpc_client_new(&cfg, &err);
	assert_non_null(c);
	assert_int_equal(err, 0);
	return c;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

/* The caller's loop for asynchronous tests, with a 20 ms tick. */
static struct event_base *test_base(struct fixture *fx)
{
	struct timeval tv = { 0, 20 * 1000 };

	if (fx->base)
		return fx->base;
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->tick = event_new(fx->base, -1, EV_PERSIST, on_tick, NULL);
	assert_non_null(fx->tick);
	assert_int_equal(event_add(fx->tick, &tv), 0);
	return fx->base;
}

/* Run the loop until *count reaches @p want or the deadline passes. */
static void run_until(struct fixture *fx, const int *count, int want)
{
	uint64_t deadline = tpc_now_ms() + WAIT_MS;

	while (*count < want && tpc_now_ms() < deadline)
		event_base_loop(fx->base, EVLOOP_ONCE);
	if (*count < want)
		fail_msg("only %d of %d callbacks ran within %d ms", *count, want, WAIT_MS);
}

/* Begin without a key and check it started. */
static tpc_txid begin_ok(tpc_client *c, const char *key)
{
	tpc_txid txid = 0;
	tpc_begin_result res = TPC_BEGIN_PENDING;

	assert_int_equal(tpc_client_begin(c, key, 0, &txid, &res), 0);
	assert_int_equal(res, TPC_BEGIN_STARTED);
	assert_true(txid != 0);
	return txid;
}

static void expect_commit(tpc_client *c, tpc_txid txid, tpc_outcome want)
{
	tpc_outcome o = TPC_OUTCOME_UNKNOWN;
	char reason[128];

	assert_int_equal(tpc_client_commit(c, txid, &o, reason, sizeof(reason)), 0);
	if (o != want)
		fail_msg("txid %" PRIu64 ": commit gave %s (%s), expected %s", txid,
			 tpc_outcome_str(o), reason, tpc_outcome_str(want));
}

static void expect_status(tpc_client *c, tpc_txid txid, tpc_status want)
{
	tpc_status st = TPC_STATUS_PENDING;

	assert_int_equal(tpc_client_status(c, txid, &st), 0);
	if (st != want)
		fail_msg("txid %" PRIu64 ": status %s, expected %s", txid, tpc_status_str(st),
			 tpc_status_str(want));
}

/* A listening socket on 127.0.0.1 that nobody accepts from: connects succeed, no reply. */
static void use_silent_listener(struct fixture *fx)
{
	fx->lfd = tpc_listen_loopback(16, &fx->port);
	assert_true(fx->lfd >= 0);
	snprintf(fx->hostport, sizeof(fx->hostport), "127.0.0.1:%d", fx->port);
}

/* ---- callbacks that record what they were given --------------------------------------- */

struct rec {
	int calls;
	int err;
	tpc_txid txid;
	tpc_begin_result begin;
	tpc_outcome outcome;
	tpc_status status;
	char reason[128];
	int *done; /* incremented on every call */
};

static void rec_begin(void *arg, int err, tpc_txid txid, tpc_begin_result result)
{
	struct rec *r = arg;
	r->calls++;
	r->err = err;
	r->txid = txid;
	r->begin = result;
	(*r->done)++;
}

static void rec_outcome(void *arg, int err, tpc_txid txid, tpc_outcome outcome, const char *reason)
{
	struct rec *r = arg;
	r->calls++;
	r->err = err;
	r->txid = txid;
	r->outcome = outcome;
	snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "(null)");
	(*r->done)++;
}

static void rec_status(void *arg, int err, tpc_txid txid, tpc_status status)
{
	struct rec *r = arg;
	r->calls++;
	r->err = err;
	r->txid = txid;
	r->status = status;
	(*r->done)++;
}

/* ---- blocking --------------------------------------------------------------------- */

static void test_blocking_commit_abort_and_status_without_participants(void **state)
{
	struct fixture *fx = *state;

	start_coordinator(fx);
	tpc_client *c = fx->client = new_client(fx, 0);

	tpc_txid t1 = begin_ok(c, NULL);
	expect_commit(c, t1, TPC_OUTCOME_COMMITTED);
	assert_int_equal(tpc_client_inflight(c), 0);

	tpc_txid t2 = begin_ok(c, NULL);
	assert_true(t2 != t1);
	tpc_outcome o = TPC_OUTCOME_UNKNOWN;
	assert_int_equal(tpc_client_abort(c, t2, "changed my mind", &o), 0);
	assert_int_equal(o, TPC_OUTCOME_ABORTED);
	expect_status(c, t2, TPC_STATUS_ABORTED);

	/* A keyed commit is logged, so its status is COMMITTED afterwards. */
	tpc_txid t3 = begin_ok(c, "order-1");
	expect_commit(c, t3, TPC_OUTCOME_COMMITTED);
	expect_status(c, t3, TPC_STATUS_COMMITTED);

	/* Presumed abort: a txid the coordinator never saw. */
	expect_status(c, 0x7fff0000ull, TPC_STATUS_ABORTED);
	/* Committing it: the coordinator has nothing, so it answers ABORTED. */
	expect_commit(c, 0x7fff0001ull, TPC_OUTCOME_ABORTED);

	/* An open transaction's status is PENDING. */
	tpc_txid t4 = begin_ok(c, NULL);
	expect_status(c, t4, TPC_STATUS_PENDING);
	expect_commit(c, t4, TPC_OUTCOME_COMMITTED);
}

static void test_blocking_commit_with_a_participant_applies(void **state)
{
	struct fixture *fx = *state;

	start_coordinator(fx);
	tpc_proc *p = start_part(fx, "p1", NULL);
	tpc_client *c = fx->client = new_client(fx, 0);

	tpc_txid txid = begin_ok(c, NULL);
	assert_int_equal(tpc_proc_writef(p, "join %" PRIu64, txid), 0);
	expect_line(p, "joined %" PRIu64, txid);
	expect_commit(c, txid, TPC_OUTCOME_COMMITTED);
	expect_line(p, "applied %" PRIu64, txid);
	expect_status(c, txid, TPC_STATUS_COMMITTED);

	/* A NO vote aborts, with the coordinator's reason. */
	txid = begin_ok(c, NULL);
	assert_int_equal(tpc_proc_writef(p, "vote %" PRIu64 " no", txid), 0);
	expect_line(p, "vote-set %" PRIu64, txid);
	assert_int_equal(tpc_proc_writef(p, "join %" PRIu64, txid), 0);
	expect_line(p, "joined %" PRIu64, txid);
	tpc_outcome o = TPC_OUTCOME_UNKNOWN;
	char reason[128] = "unset";
	assert_int_equal(tpc_client_commit(c, txid, &o, reason, sizeof(reason)), 0);
	assert_int_equal(o, TPC_OUTCOME_ABORTED);
	assert_non_null(strstr(reason, "NO"));
}

static void test_begin_with_key_reports_commit_and_fences_open_txn(void **state)
{
	struct fixture *fx = *state;
	tpc_txid again = 0;
	tpc_begin_result res = TPC_BEGIN_STARTED;

	start_coordinator(fx);
	tpc_client *c = fx->client = new_client(fx, 0);

	tpc_txid t1 = begin_ok(c, "K");
	expect_commit(c, t1, TPC_OUTCOME_COMMITTED);
	assert_int_equal(tpc_client_begin(c, "K", 0, &again, &res), 0);
	assert_int_equal(res, TPC_BEGIN_ALREADY_COMMITTED);
	assert_int_equal(again, t1);

	tpc_txid t2 = begin_ok(c, "K2");
	tpc_txid t3 = begin_ok(c, "K2"); /* fences t2 */
	assert_true(t3 != t2);
	tpc_outcome o = TPC_OUTCOME_UNKNOWN;
	char reason[128];
	assert_int_equal(tpc_client_commit(c, t2, &o, reason, sizeof(reason)), 0);
	assert_int_equal(o, TPC_OUTCOME_ABORTED);
	expect_commit(c, t3, TPC_OUTCOME_COMMITTED);
	assert_int_equal(tpc_client_begin(c, "K2", 0, &again, &res), 0);
	assert_int_equal(res, TPC_BEGIN_ALREADY_COMMITTED);
	assert_int_equal(again, t3);
}

struct commit_thread {
	tpc_client *c;
	tpc_txid txid;
	int rc;
	tpc_outcome outcome;
	char reason[128];
};

static void *commit_main(void *arg)
{
	struct commit_thread *ct = arg;

	ct->rc = tpc_client_commit(ct->c, ct->txid, &ct->outcome, ct->reason, sizeof(ct->reason));
	return NULL;
}

static void test_blocking_commit_lost_with_the_coordinator_is_unknown(void **state)
{
	struct fixture *fx = *state;
	struct commit_thread ct = { .rc = 1, .outcome = TPC_OUTCOME_COMMITTED };
	pthread_t th;

	start_coordinator(fx);
	tpc_proc *p = start_part(fx, "p1", "--vote", "silent", NULL);
	tpc_client *c = fx->client = new_client(fx, 0);
	tpc_txid txid = begin_ok(c, NULL);
	assert_int_equal(tpc_proc_writef(p, "join %" PRIu64, txid), 0);
	expect_line(p, "joined %" PRIu64, txid);

	/* The commit hangs in PREPARING (the participant never votes); kill the coordinator. */
	ct.c = c;
	ct.txid = txid;
	assert_int_equal(pthread_create(&th, NULL, commit_main, &ct), 0);
	expect_line(p, "silent %" PRIu64, txid);
	assert_int_equal(tpc_proc_kill9(fx->coord), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(ct.rc, TPC_ECLOSED);
	assert_int_equal(ct.outcome, TPC_OUTCOME_UNKNOWN);
	assert_true(tpc_client_errmsg(c)[0] != '\0');

	/* No decision was logged: after a restart the same handle reconnects and hears ABORTED. */
	start_coordinator(fx);
	expect_status(c, txid, TPC_STATUS_ABORTED);
	expect_commit(c, begin_ok(c, NULL), TPC_OUTCOME_COMMITTED);
}

static void test_blocking_connect_refused_then_reconnects(void **state)
{
	struct fixture *fx = *state;
	tpc_txid txid = 1;
	tpc_outcome o = TPC_OUTCOME_COMMITTED;

	tpc_client *c = fx->client = new_client(fx, 0); /* nothing listens yet */
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), TPC_EUNREACHABLE);
	assert_int_equal(txid, 0);
	assert_non_null(strstr(tpc_client_errmsg(c), "cannot connect"));
	assert_non_null(strstr(tpc_client_errmsg(c), "refused"));
	assert_int_equal(tpc_client_commit(c, 5, &o, NULL, 0), TPC_EUNREACHABLE);
	assert_int_equal(o, TPC_OUTCOME_UNKNOWN);

	start_coordinator(fx);
	expect_commit(c, begin_ok(c, NULL), TPC_OUTCOME_COMMITTED);
}

static void test_request_times_out_when_nobody_answers(void **state)
{
	struct fixture *fx = *state;
	tpc_txid txid = 1;
	tpc_outcome o = TPC_OUTCOME_COMMITTED;
	tpc_status st = TPC_STATUS_COMMITTED;

	use_silent_listener(fx);
	tpc_client *c = fx->client = new_client(fx, 300);
	uint64_t t0 = tpc_now_ms();
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), -ETIMEDOUT);
	uint64_t took = tpc_now_ms() - t0;
	assert_true(took >= 290 && took < 5000);
	assert_int_equal(txid, 0);
	assert_non_null(strstr(tpc_client_errmsg(c), "300 ms"));
	assert_int_equal(tpc_client_commit(c, 9, &o, NULL, 0), -ETIMEDOUT);
	assert_int_equal(o, TPC_OUTCOME_UNKNOWN);
	assert_int_equal(tpc_client_status(c, 9, &st), -ETIMEDOUT);
	assert_int_equal(tpc_client_inflight(c), 0);
}

/*
 * A listener whose accept queue is full: Linux drops further SYNs, so a connect to it
 * neither succeeds nor fails until the client gives up.
 */
static void use_full_listener(struct fixture *fx)
{
	int *fillers = fx->fillers;

	use_silent_listener(fx);
	assert_int_equal(listen(fx->lfd, 0), 0); /* room for one queued connection */
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)fx->port) };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(fillers[i] >= 0);
		int rc = connect(fillers[i], (struct sockaddr *)&sa, sizeof(sa));
		assert_true(rc == 0 || errno == EINPROGRESS);
	}
}

static void test_connect_times_out(void **state)
{
	struct fixture *fx = *state;
	tpc_client_config cfg;
	int err = 0;
	tpc_txid txid = 1;

	use_full_listener(fx);
	tpc_client_config_init(&cfg);
	cfg.coordinator = fx->hostport;
	cfg.connect_timeout_ms = 200;
	cfg.request_timeout_ms = WAIT_MS;
	tpc_client *c = fx->client = tpc_client_new(&cfg, &err);
	assert_non_null(c);
	uint64_t t0 = tpc_now_ms();
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), TPC_EUNREACHABLE);
	uint64_t took = tpc_now_ms() - t0;
	assert_true(took >= 190 && took < 5000);
	assert_non_null(strstr(tpc_client_errmsg(c), "cannot connect"));
	assert_int_equal(tpc_client_inflight(c), 0);
}

/* Zero means the default (tpc/client.h): a config of zeros but the address works (read
 * as "none", its zero max_frame would refuse every reply and its zero timeouts would
 * fail every request at once). */
static void test_a_config_of_zeros_means_the_defaults(void **state)
{
	struct fixture *fx = *state;
	tpc_client_config cfg;
	int err = 0;

	start_coordinator(fx);
	memset(&cfg, 0, sizeof(cfg));
	cfg.coordinator = fx->hostport;
	tpc_client *c = fx->client = tpc_client_new(&cfg, &err);
	assert_non_null(c);
	assert_int_equal(err, 0);
	tpc_txid t = begin_ok(c, NULL);
	expect_commit(c, t, TPC_OUTCOME_COMMITTED);
}

static void test_new_rejects_bad_addresses(void **state)
{
	static const char *const bad[] = { "", "nonsense", "127.0.0.1", "127.0.0.1:port",
					   "127.0.0.1:70000", "127.0.0.1:0", "::1:7000" };
	tpc_client_config cfg;
	int err;

	tpc_client_config_init(&cfg);
	assert_int_equal(cfg.connect_timeout_ms, 5000);
	assert_int_equal(cfg.request_timeout_ms, 30000);
	assert_int_equal(cfg.max_frame, 1u << 20);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.coordinator = bad[i];
		err = 0;
		if (tpc_client_new(&cfg, &err))
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_int_equal(err, -EINVAL);
	}
	cfg.coordinator = NULL;
	assert_null(tpc_client_new(&cfg, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(tpc_client_new(NULL, &err));
	assert_int_equal(err, -EINVAL);
	tpc_client_free(NULL);
	assert_string_equal(tpc_client_errmsg(NULL), "");
}

static void test_bad_arguments_and_modes(void **state)
{
	struct fixture *fx = *state;
	struct rec r = { 0 };
	int done = 0;
	tpc_outcome o;
	tpc_status st;

	r.done = &done;
	/* Nothing listens: none of these may get as far as connecting. */
	tpc_client *c = fx->client = new_client(fx, 0);
	assert_int_equal(tpc_client_commit(c, 0, &o, NULL, 0), -EINVAL);
	assert_true(tpc_client_errmsg(c)[0] != '\0');
	assert_int_equal(tpc_client_abort(c, 0, NULL, &o), -EINVAL);
	assert_int_equal(tpc_client_status(c, 0, &st), -EINVAL);
	assert_int_equal(tpc_client_status(c, 1, NULL), -EINVAL);
	assert_int_equal(tpc_client_begin(c, NULL, 0, NULL, NULL), -EINVAL);
	assert_int_equal(tpc_client_begin(NULL, NULL, 0, NULL, NULL), -EINVAL);

	/* Not attached: asynchronous calls are refused; arguments are checked first. */
	assert_int_equal(tpc_client_begin_async(c, NULL, 0, NULL, &r), -EINVAL);
	assert_int_equal(tpc_client_commit_async(c, 0, rec_outcome, &r), -EINVAL);
	assert_int_equal(tpc_client_begin_async(c, NULL, 0, rec_begin, &r), TPC_ESTATE);

	/* Attached: blocking calls are refused, a second attach too. */
	struct event_base *base = test_base(fx);
	assert_int_equal(tpc_client_attach(c, base), 0);
	assert_int_equal(tpc_client_attach(c, base), TPC_ESTATE);
	assert_int_equal(tpc_client_status(c, 1, &st), TPC_ESTATE);
	assert_int_equal(tpc_client_abort_async(c, 0, NULL, rec_outcome, &r), -EINVAL);
	assert_int_equal(tpc_client_status_async(c, 0, rec_status, &r), -EINVAL);
	assert_int_equal(tpc_client_status_async(c, 1, NULL, &r), -EINVAL);
	assert_int_equal(done, 0);

	/* Used in blocking mode: it cannot be attached afterwards. */
	tpc_client *b = new_client(fx, 0);
	assert_true(tpc_client_status(b, 1, &st) < 0); /* connection refused */
	assert_int_equal(tpc_client_attach(b, base), TPC_ESTATE);
	tpc_client_free(b);
}

/* ---- asynchronous ----------------------------------------------------------------- */

struct token_rec {
	int calls, err;
	tpc_txid txid;
	uint8_t token[TPC_TXN_TOKEN_LEN];
	int has_token;
};

static void rec_begin_token(void *arg, int err, tpc_txid txid, tpc_begin_result result,
			    const uint8_t *token)
{
	struct token_rec *r = arg;

	r->calls++;
	r->err = err;
	r->txid = txid;
	r->has_token = token != NULL;
	if (token)
		memcpy(r->token, token, sizeof(r->token));
}

/* Begin hands out each transaction's token (blocking and async); only the client that
 * began a transaction may commit or abort it: another gets TPC_EDENIED, nothing moves. */
static void test_begin_gives_a_token_and_only_the_beginner_commits(void **state)
{
	struct fixture *fx = *state;
	uint8_t t1[TPC_TXN_TOKEN_LEN], t2[TPC_TXN_TOKEN_LEN];
	size_t len1 = 0, len2 = 0;
	tpc_txid x1 = 0, x2 = 0;
	tpc_begin_result res = TPC_BEGIN_PENDING;
	tpc_outcome o = TPC_OUTCOME_COMMITTED;

	start_coordinator(fx);
	tpc_client *owner = fx->client = new_client(fx, 0);
	assert_int_equal(tpc_client_begin_token(owner, NULL, 0, &x1, &res, t1, &len1), 0);
	assert_int_equal(res, TPC_BEGIN_STARTED);
	assert_int_equal(len1, TPC_TXN_TOKEN_LEN);
	assert_int_equal(tpc_client_begin_token(owner, NULL, 0, &x2, NULL, t2, &len2), 0);
	assert_int_equal(len2, TPC_TXN_TOKEN_LEN);
	assert_memory_not_equal(t1, t2, TPC_TXN_TOKEN_LEN);

	tpc_client *thief = new_client(fx, 0);
	assert_int_equal(tpc_client_commit(thief, x1, &o, NULL, 0), TPC_EDENIED);
	assert_int_equal(o, TPC_OUTCOME_UNKNOWN);
	assert_int_equal(tpc_client_abort(thief, x1, "mine", &o), TPC_EDENIED);
	expect_status(thief, x1, TPC_STATUS_PENDING);
	tpc_client_free(thief);
	expect_commit(owner, x1, TPC_OUTCOME_COMMITTED);

	/* asynchronous, on a loop: the callback gets the token */
	tpc_client *c = new_client(fx, 0);
	int done = 0;
	struct token_rec r = { 0 };
	struct rec cm = { .done = &done };
	assert_int_equal(tpc_client_attach(c, test_base(fx)), 0);
	assert_int_equal(tpc_client_begin_token_async(c, "tok-key", 0, rec_begin_token, &r), 0);
	run_until(fx, &r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_true(r.has_token);
	assert_int_equal(tpc_client_commit_async(c, r.txid, rec_outcome, &cm), 0);
	run_until(fx, &done, 1);
	assert_int_equal(cm.outcome, TPC_OUTCOME_COMMITTED);
	/* the key's transaction committed: a Begin with it starts nothing and has no token */
	r = (struct token_rec){ 0 };
	assert_int_equal(tpc_client_begin_token_async(c, "tok-key", 0, rec_begin_token, &r), 0);
	run_until(fx, &r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_false(r.has_token);
	tpc_client_free(c);
}

static void test_async_pipelines_200_begins_then_200_commits(void **state)
{
	struct fixture *fx = *state;
	static struct rec begins[NPIPE], commits[NPIPE];
	int done = 0;

	memset(begins, 0, sizeof(begins));
	memset(commits, 0, sizeof(commits));
	start_coordinator(fx);
	tpc_client *c = fx->client = new_client(fx, 0);
	assert_int_equal(tpc_client_attach(c, test_base(fx)), 0);

	for (int i = 0; i < NPIPE; i++) {
		begins[i].done = &done;
		assert_int_equal(tpc_client_begin_async(c, NULL, 0, rec_begin, &begins[i]), 0);
	}
	assert_int_equal(tpc_client_inflight(c), NPIPE);
	run_until(fx, &done, NPIPE);
	for (int i = 0; i < NPIPE; i++) {
		assert_int_equal(begins[i].calls, 1);
		assert_int_equal(begins[i].err, 0);
		assert_int_equal(begins[i].begin, TPC_BEGIN_STARTED);
		assert_true(begins[i].txid != 0);
		for (int j = 0; j < i; j++)
			assert_true(begins[j].txid != begins[i].txid);
	}

	done = 0;
	for (int i = 0; i < NPIPE; i++) {
		commits[i].done = &done;
		assert_int_equal(tpc_client_commit_async(c, begins[i].txid, rec_outcome, &commits[i]),
				 0);
	}
	run_until(fx, &done, NPIPE);
	for (int i = 0; i < NPIPE; i++) {
		assert_int_equal(commits[i].calls, 1);
		assert_int_equal(commits[i].err, 0);
		assert_int_equal(commits[i].txid, begins[i].txid);
		assert_int_equal(commits[i].outcome, TPC_OUTCOME_COMMITTED);
	}
	assert_int_equal(tpc_client_inflight(c), 0);

	/* Nothing more arrives later. */
	done = 0;
	struct rec st = { .done = &done };
	assert_int_equal(tpc_client_status_async(c, begins[0].txid, rec_status, &st), 0);
	run_until(fx, &done, 1);
	assert_int_equal(st.err, 0);
	for (int i = 0; i < NPIPE; i++)
		assert_true(begins[i].calls == 1 && commits[i].calls == 1);
}

/*
 * The coordinator, participant p1 (--vote silent: a Commit waits for its vote) in *@p p,
 * and an attached client with one transaction begun (async, recorded in @p b, which
 * counts in *@p done) and joined by p1. @return the client (fx->client).
 */
static tpc_client *open_silent_txn(struct fixture *fx, int *done, struct rec *b, tpc_proc **p)
{
	start_coordinator(fx);
	*p = start_part(fx, "p1", "--vote", "silent", NULL);
	tpc_client *c = fx->client = new_client(fx, 0);
	assert_int_equal(tpc_client_attach(c, test_base(fx)), 0);
	assert_int_equal(tpc_client_begin_async(c, NULL, 0, rec_begin, b), 0);
	run_until(fx, done, 1);
	assert_int_equal(b->err, 0);
	assert_int_equal(tpc_proc_writef(*p, "join %" PRIu64, b->txid), 0);
	expect_line(*p, "joined %" PRIu64, b->txid);
	return c;
}

static void test_async_commit_lost_with_the_coordinator_is_unknown(void **state)
{
	struct fixture *fx = *state;
	int done = 0;
	struct rec b = { .done = &done }, cm = { .done = &done }, st = { .done = &done };

	tpc_proc *p;
	tpc_client *c = open_silent_txn(fx, &done, &b, &p);

	assert_int_equal(tpc_client_commit_async(c, b.txid, rec_outcome, &cm), 0);
	char want[64];
	snprintf(want, sizeof(want), "silent %" PRIu64, b.txid);
	uint64_t deadline = tpc_now_ms() + WAIT_MS;
	while (!tpc_proc_take_line(p, want) && tpc_now_ms() < deadline)
		event_base_loop(fx->base, EVLOOP_ONCE);
	assert_true(tpc_now_ms() < deadline);
	assert_int_equal(cm.calls, 0);
	assert_int_equal(tpc_proc_kill9(fx->coord), 0);
	run_until(fx, &done, 2);
	assert_int_equal(cm.calls, 1);
	assert_int_equal(cm.err, TPC_ECLOSED);
	assert_int_equal(cm.outcome, TPC_OUTCOME_UNKNOWN);
	assert_int_equal(cm.txid, b.txid);
	assert_true(cm.reason[0] != '\0');

	start_coordinator(fx);
	assert_int_equal(tpc_client_status_async(c, b.txid, rec_status, &st), 0);
	run_until(fx, &done, 3);
	assert_int_equal(st.err, 0);
	assert_int_equal(st.status, TPC_STATUS_ABORTED);
}

static void test_async_error_reply_maps_code_and_keeps_message(void **state)
{
	struct fixture *fx = *state;
	int done = 0;
	struct rec b = { .done = &done }, c1 = { .done = &done }, c2 = { .done = &done };
	struct rec ab = { .done = &done };

	tpc_proc *p;
	tpc_client *c = open_silent_txn(fx, &done, &b, &p);

	/* The first commit waits for the silent vote; a second one is refused. */
	assert_int_equal(tpc_client_commit_async(c, b.txid, rec_outcome, &c1), 0);
	assert_int_equal(tpc_client_commit_async(c, b.txid, rec_outcome, &c2), 0);
	run_until(fx, &done, 2);
	assert_int_equal(c1.calls, 0);
	assert_int_equal(c2.calls, 1);
	assert_int_equal(c2.err, TPC_ENOTACTIVE);
	assert_int_equal(c2.outcome, TPC_OUTCOME_UNKNOWN);
	assert_non_null(strstr(tpc_client_errmsg(c), "commit already in progress"));
	assert_non_null(strstr(c2.reason, "commit already in progress"));

	/* Abort while preparing: both the abort and the waiting commit hear ABORTED. */
	assert_int_equal(tpc_client_abort_async(c, b.txid, "test", rec_outcome, &ab), 0);
	run_until(fx, &done, 4);
	assert_int_equal(ab.err, 0);
	assert_int_equal(ab.outcome, TPC_OUTCOME_ABORTED);
	assert_int_equal(c1.calls, 1);
	assert_int_equal(c1.err, 0);
	assert_int_equal(c1.outcome, TPC_OUTCOME_ABORTED);
	assert_int_equal(c1.txid, b.txid);
}

static void test_free_completes_pending_requests_with_eclosed(void **state)
{
	struct fixture *fx = *state;
	int done = 0;
	struct rec b[3], cm = { .done = &done }, ab = { .done = &done }, st = { .done = &done };

	use_silent_listener(fx);
	tpc_client *c = new_client(fx, 0);
	assert_int_equal(tpc_client_attach(c, test_base(fx)), 0);
	for (int i = 0; i < 3; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].done = &done;
		assert_int_equal(tpc_client_begin_async(c, "k", 0, rec_begin, &b[i]), 0);
	}
	assert_int_equal(tpc_client_commit_async(c, 42, rec_outcome, &cm), 0);
	assert_int_equal(tpc_client_abort_async(c, 43, "why", rec_outcome, &ab), 0);
	assert_int_equal(tpc_client_status_async(c, 44, rec_status, &st), 0);
	/* Let it connect and send; no answer comes. */
	for (int i = 0; i < 5; i++)
		event_base_loop(fx->base, EVLOOP_ONCE);
	assert_int_equal(done, 0);
	assert_int_equal(tpc_client_inflight(c), 6);

	tpc_client_free(c);
	assert_int_equal(done, 6);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(b[i].calls, 1);
		assert_int_equal(b[i].err, TPC_ECLOSED);
		assert_int_equal(b[i].txid, 0);
	}
	assert_int_equal(cm.err, TPC_ECLOSED);
	assert_int_equal(cm.outcome, TPC_OUTCOME_UNKNOWN);
	assert_int_equal(cm.txid, 42);
	assert_int_equal(ab.err, TPC_ECLOSED);
	assert_int_equal(ab.outcome, TPC_OUTCOME_UNKNOWN);
	assert_int_equal(st.err, TPC_ECLOSED);
	assert_int_equal(st.txid, 44);
	/* The loop runs on without the client's events. */
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
}

/* Frees the client from inside its own callback (the first timeout). */
struct freer {
	tpc_client *c;
	int calls;
	int errs[4];
};

static void free_on_first(void *arg, int err, tpc_txid txid, tpc_status status)
{
	struct freer *f = arg;

	if (f->calls < 4)
		f->errs[f->calls] = err;
	if (f->calls++ == 0)
		tpc_client_free(f->c);
}

static void test_free_from_inside_a_callback(void **state)
{
	struct fixture *fx = *state;
	struct freer f = { 0 };

	use_silent_listener(fx);
	f.c = new_client(fx, 200);
	assert_int_equal(tpc_client_attach(f.c, test_base(fx)), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(tpc_client_status_async(f.c, 7, free_on_first, &f), 0);
	uint64_t deadline = tpc_now_ms() + WAIT_MS;
	while (f.calls < 3 && tpc_now_ms() < deadline)
		event_base_loop(fx->base, EVLOOP_ONCE);
	assert_int_equal(f.calls, 3);
	assert_int_equal(f.errs[0], -ETIMEDOUT);
	/* The others completed either by their own timeout or by the free, exactly once. */
	for (int i = 1; i < 3; i++)
		assert_true(f.errs[i] == TPC_ECLOSED || f.errs[i] == -ETIMEDOUT);
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	assert_int_equal(f.calls, 3);
}

/* ---- against a scripted fake coordinator ---------------------------------------- */

struct script {
	int lfd;
	char failure[160]; /* empty if the fake saw what it expected */
};

/* Receive one Envelope of body @p want; its request_id into *id. */
static int script_expect(struct script *s, tpc_wc *wc, Tpc__Envelope__BodyCase want,
			 uint64_t *id)
{
	Tpc__Envelope *e = tpc_wc_recv(wc, WAIT_MS);

	if (!e || e->body_case != want) {
		snprintf(s->failure, sizeof(s->failure), "expected %s, got %s",
			 tpc_wire_body_name(want), e ? tpc_wire_body_name(e->body_case) : "nothing");
		if (e)
			tpc__envelope__free_unpacked(e, NULL);
		return -1;
	}
	if (want == TPC__ENVELOPE__BODY_HELLO &&
	    (e->hello->role != TPC__ROLE__ROLE_CLIENT || strcmp(e->hello->name, "test-client") ||
	     e->hello->protocol_version != TPC_PROTOCOL_VERSION))
		snprintf(s->failure, sizeof(s->failure), "bad hello");
	*id = e->request_id;
	tpc__envelope__free_unpacked(e, NULL);
	return 0;
}

static void script_send(tpc_wc *wc, uint64_t id, Tpc__Envelope *env)
{
	env->request_id = id;
	tpc_wc_send(wc, env);
}

static void script_serve(struct script *s, tpc_wc *wc)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__HelloReply hr = TPC__HELLO_REPLY__INIT;
	Tpc__BeginReply br = TPC__BEGIN_REPLY__INIT;
	Tpc__StatusReply sr = TPC__STATUS_REPLY__INIT;
	Tpc__Outcome oc = TPC__OUTCOME__INIT;
	Tpc__Error er = TPC__ERROR__INIT;
	uint64_t id;

	if (script_expect(s, wc, TPC__ENVELOPE__BODY_HELLO, &id))
		return;
	env.body_case = TPC__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &hr;
	script_send(wc, id, &env);
	/* Begin: replies to nobody's request are ignored; a status reply is the wrong body. */
	if (script_expect(s, wc, TPC__ENVELOPE__BODY_BEGIN, &id))
		return;
	br.txid = 5;
	env.body_case = TPC__ENVELOPE__BODY_BEGIN_REPLY;
	env.begin_reply = &br;
	script_send(wc, id + 1000, &env);
	er.code = TPC__ERROR_CODE__ERR_NOT_FOUND;
	er.message = "for nobody";
	env.body_case = TPC__ENVELOPE__BODY_ERROR;
	env.error = &er;
	script_send(wc, id + 1000, &env);
	sr.txid = 5;
	env.body_case = TPC__ENVELOPE__BODY_STATUS_REPLY;
	env.status_reply = &sr;
	script_send(wc, id, &env);
	/* Commit: the coordinator itself does not know. */
	if (script_expect(s, wc, TPC__ENVELOPE__BODY_COMMIT, &id))
		return;
	oc.txid = 77;
	oc.outcome = TPC__OUTCOME_KIND__OUTCOME_UNKNOWN;
	oc.reason = "log write failed";
	env.body_case = TPC__ENVELOPE__BODY_OUTCOME;
	env.outcome = &oc;
	script_send(wc, id, &env);
	/* Status: an Error about the connection, then the connection closes. */
	if (script_expect(s, wc, TPC__ENVELOPE__BODY_STATUS_QUERY, &id))
		return;
	er.code = TPC__ERROR_CODE__ERR_LIMIT;
	er.message = "go away";
	env.body_case = TPC__ENVELOPE__BODY_ERROR;
	env.error = &er;
	script_send(wc, 0, &env);
}

static void *script_main(void *arg)
{
	struct script *s = arg;
	tpc_wc *wc = tpc_wc_accept(s->lfd, WAIT_MS);

	if (!wc) {
		snprintf(s->failure, sizeof(s->failure), "no connection");
		return NULL;
	}
	script_serve(s, wc);
	tpc_wc_free(wc); /* closes: the client sees EOF */
	return NULL;
}

static void test_fake_coordinator_odd_replies(void **state)
{
	struct fixture *fx = *state;
	struct script s = { .lfd = -1 };
	pthread_t th;
	tpc_txid txid = 1;
	tpc_outcome o = TPC_OUTCOME_COMMITTED;
	tpc_status st = TPC_STATUS_COMMITTED;
	char reason[64];

	use_silent_listener(fx);
	s.lfd = fx->lfd;
	assert_int_equal(pthread_create(&th, NULL, script_main, &s), 0);
	tpc_client *c = fx->client = new_client(fx, 0);
	assert_int_equal(tpc_client_begin(c, NULL, 0, &txid, NULL), TPC_EPROTO);
	assert_int_equal(txid, 0);
	assert_non_null(strstr(tpc_client_errmsg(c), "status_reply"));
	assert_int_equal(tpc_client_commit(c, 77, &o, reason, sizeof(reason)), 0);
	assert_int_equal(o, TPC_OUTCOME_UNKNOWN);
	assert_string_equal(reason, "log write failed");
	assert_int_equal(tpc_client_status(c, 77, &st), TPC_ELIMIT);
	assert_string_equal(tpc_client_errmsg(c), "go away");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_string_equal(s.failure, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_blocking_commit_abort_and_status_without_participants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_commit_with_a_participant_applies,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_begin_gives_a_token_and_only_the_beginner_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_begin_with_key_reports_commit_and_fences_open_txn, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_blocking_commit_lost_with_the_coordinator_is_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_connect_refused_then_reconnects,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_times_out_when_nobody_answers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_connect_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_config_of_zeros_means_the_defaults, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_new_rejects_bad_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments_and_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_pipelines_200_begins_then_200_commits,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_async_commit_lost_with_the_coordinator_is_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_error_reply_maps_code_and_keeps_message,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_completes_pending_requests_with_eclosed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_inside_a_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake_coordinator_odd_replies, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
