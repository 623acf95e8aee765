/*
 * test_authz.c - who may do what (issue 11), with real processes: one tpc-coordinator
 * and one tpc-kv service on 127.0.0.1, ports chosen free at run time, data in a fresh
 * temporary folder; the test plays the clients, a thief, and a fake coordinator.
 *
 * Covered: Commit and Abort of another connection's txid are refused (ERR_DENIED) and
 * the transaction is untouched, so its owner still commits; a KvPut into a victim's
 * txid without the transaction's token, or with a wrong one, is refused (by tpc-kv, by
 * the coordinator's Join check, or by the participant's own token check) and the
 * victim's transaction commits with only the victim's writes; a coordinator with
 * --require-txn-token refuses a Join without a token even from a service that does not
 * require one; a fake coordinator answering HelloReply with epoch 2^62 on the real
 * coordinator's address is refused and does not lock the real one out: the service
 * reconnects to it and commits. tpc-kv answers a client's Hello (optional there) and
 * refuses a participant's, another protocol version's and a late one, closing.
 *
 * Nothing sleeps for a fixed time: every wait polls a condition against WAIT_MS. The
 * cluster (coord_harness.c) kills every process and removes the folder in teardown.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "kv_harness.h"
#include "wire.h"

#define POLL_MS 20 /* between two looks at a condition */
#define TOKEN_LEN 16

struct fx {
	struct cluster *c;
	struct kv_svc kv;
	struct kv_svc thief; /* the same service, reached on the thief's own connection */
};

static int setup(void **state)
{
	void *inner = NULL;
	struct fx *f;

	cluster_setup(&inner);
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->c = inner;
	kv_svc_init(&f->kv, f->c, "kv-a", "a");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	void *inner = f->c;

	kv_svc_close_conn(&f->kv);
	kv_svc_close_conn(&f->thief);
	free(f);
	return cluster_teardown(&inner);
}

/* The service, on the thief's own connection (same process, same port). */
static struct kv_svc *thief_of(struct fx *f)
{
	f->thief = f->kv;
	f->thief.wc = NULL;
	return &f->thief;
}

static void kv_wait_log(const struct kv_svc *k, const char *text)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (kv_svc_log_count(k, text, NULL) == 0) {
		if (now_ms() >= deadline)
			fail_msg("tpc-kv %s never logged \"%s\"", k->name, text);
		poll(NULL, 0, POLL_MS);
	}
}

static struct tpc_wc_begin begin_with_token(tpc_wc *wc)
{
	struct tpc_wc_begin b;

	assert_int_equal(tpc_wc_begin(wc, NULL, 0, &b), 0);
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_STARTED);
	assert_int_equal(b.token_len, TOKEN_LEN);
	return b;
}

/* A put that must be refused with ERR_DENIED. */
static void put_denied(struct kv_svc *k, uint64_t txid, const uint8_t *token, size_t len,
		       const char *key)
{
	int rc = kv_svc_put_token_rc(k, txid, token, len, key, "stolen");

	if (rc != TPC_WC_EREPLY)
		fail_msg("a put of %s into txid %llu with %s token was not refused (%s)", key,
			 (unsigned long long)txid, len ? "a wrong" : "no", tpc_wc_strerror(rc));
	if (tpc_wc_error_code(k->wc) != TPC__ERROR_CODE__ERR_DENIED)
		fail_msg("a put of %s was refused with code %d (%s), not ERR_DENIED", key,
			 (int)tpc_wc_error_code(k->wc), tpc_wc_errmsg(k->wc));
}

/* Only the victim's write is in its transaction, applied once. */
static void expect_only_victims_write(struct fx *f, uint64_t txid)
{
	char lines[512];

	kv_svc_wait_applied(&f->kv, "mine", "1", txid);
	int n = kv_svc_applied_in(&f->kv, txid, lines, sizeof(lines));
	if (n != 1)
		fail_msg("txid %llu applied %d line(s), not only the victim's: %s",
			 (unsigned long long)txid, n, lines);
}

/* ---- Commit and Abort: the owner's only ------------------------------------------- */

static void test_commit_and_abort_of_another_clients_txid_are_refused_and_the_owner_commits(
	void **state)
{
	struct fx *f = *state;
	struct tpc_wc_outcome o;

	coord_start(f->c, NULL, NULL);
	kv_svc_start(&f->kv, f->c, NULL, NULL);
	tpc_wc *victim = client_open(f->c, NULL);
	tpc_wc *thief = client_open(f->c, NULL);
	struct tpc_wc_begin b = begin_with_token(victim);
	struct tpc_wc_begin other = begin_with_token(victim);
	assert_memory_not_equal(b.token, other.token, TOKEN_LEN); /* made per transaction */
	assert_int_equal(kv_svc_put_token_rc(&f->kv, b.txid, b.token, TOKEN_LEN, "mine", "1"),
			 0);

	assert_int_equal(tpc_wc_commit(thief, b.txid, &o), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(thief), TPC__ERROR_CODE__ERR_DENIED);
	assert_int_equal(tpc_wc_abort(thief, b.txid, "mine now", &o), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(thief), TPC__ERROR_CODE__ERR_DENIED);
	client_status_expect(thief, b.txid, TPC__TXN_STATUS__STATUS_PENDING); /* untouched */
	coord_log_has(f->c, "refused a Commit from connection");
	coord_log_has(f->c, "refused an Abort from connection");

	client_commit_expect(victim, b.txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	expect_only_victims_write(f, b.txid);
	/* The other transaction is the victim's too: the thief cannot abort it either. */
	assert_int_equal(tpc_wc_abort(thief, other.txid, NULL, &o), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(thief), TPC__ERROR_CODE__ERR_DENIED);
	assert_int_equal(tpc_wc_abort(victim, other.txid, NULL, &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_ABORTED);
}

/* ---- the transaction token --------------------------------------------------------- */

/*
 * Coordinator and service both require the token. A thief's put into the victim's txid
 * without it is refused by tpc-kv; with a wrong one, before the victim joined, by the
 * coordinator (the service's Join carries it); after the victim joined, by the
 * participant itself. The victim's transaction commits with the victim's write only.
 */
static void test_kvput_without_or_with_a_wrong_token_is_refused_and_the_victim_commits_alone(
	void **state)
{
	struct fx *f = *state;
	const char *const kv_opts[] = { "--require-txn-token", NULL };
	uint8_t wrong[TOKEN_LEN];

	coord_start(f->c, NULL, "--require-txn-token", NULL);
	kv_svc_start(&f->kv, f->c, NULL, kv_opts);
	tpc_wc *victim = client_open(f->c, NULL);
	struct tpc_wc_begin b = begin_with_token(victim);
	struct kv_svc *thief = thief_of(f);
	memcpy(wrong, b.token, TOKEN_LEN);
	wrong[TOKEN_LEN - 1] ^= 0x5a;

	put_denied(thief, b.txid, NULL, 0, "stolen-1");        /* tpc-kv: no token */
	put_denied(thief, b.txid, wrong, TOKEN_LEN, "stolen-2"); /* coordinator: wrong one */
	coord_log_has(f->c, "refused a Join from kv-a");
	put_denied(thief, b.txid, b.token, 5, "stolen-3");      /* not a token at all */

	assert_int_equal(kv_svc_put_token_rc(&f->kv, b.txid, b.token, TOKEN_LEN, "mine", "1"),
			 0);
	put_denied(thief, b.txid, wrong, TOKEN_LEN, "stolen-4"); /* participant: not the one */
	put_denied(thief, b.txid, NULL, 0, "stolen-5");

	client_commit_expect(victim, b.txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	expect_only_victims_write(f, b.txid);
}

/* A coordinator with --require-txn-token refuses a Join without a token even when the
 * service does not require one; the victim, who has the token, commits. */
static void test_coordinator_requiring_tokens_refuses_a_join_without_one(void **state)
{
	struct fx *f = *state;

	coord_start(f->c, NULL, "--require-txn-token", NULL);
	kv_svc_start(&f->kv, f->c, NULL, NULL);
	tpc_wc *victim = client_open(f->c, NULL);
	struct tpc_wc_begin b = begin_with_token(victim);

	put_denied(thief_of(f), b.txid, NULL, 0, "stolen");
	coord_log_has(f->c, "requires the transaction's token in a Join");
	assert_int_equal(kv_svc_put_token_rc(&f->kv, b.txid, b.token, TOKEN_LEN, "mine", "1"),
			 0);
	client_commit_expect(victim, b.txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	expect_only_victims_write(f, b.txid);
}

/* ---- epochs: a fake coordinator ---------------------------------------------------- */

/* Listen on 127.0.0.1:@p port (the real coordinator's, now stopped). */
static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		fail_msg("cannot listen on the coordinator's port %d", port);
	return fd;
}

/* The fake takes the service's next connection and Hello, and answers HelloReply with
 * @p epoch. */
static void fake_hello(int lfd, uint64_t epoch)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__HelloReply r = TPC__HELLO_REPLY__INIT;
	tpc_wc *conn = tpc_wc_accept(lfd, WAIT_MS);

	if (!conn)
		fail_msg("the service did not connect to the fake coordinator");
	Tpc__Envelope *h = tpc_wc_recv_body(conn, TPC__ENVELOPE__BODY_HELLO, WAIT_MS);
	if (!h)
		fail_msg("no Hello at the fake coordinator: %s", tpc_wc_errmsg(conn));
	tpc__envelope__free_unpacked(h, NULL);
	r.epoch = epoch;
	r.protocol_version = TPC_PROTOCOL_VERSION;
	env.body_case = TPC__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &r;
	assert_int_equal(tpc_wc_send(conn, &env), 0);
	/* The service closes the connection: nothing more comes on it. */
	Tpc__Envelope *more = tpc_wc_recv_body(conn, TPC__ENVELOPE__BODY_JOIN, WAIT_MS);
	if (more) {
		tpc__envelope__free_unpacked(more, NULL);
		fail_msg("the service went on talking to a coordinator whose epoch it refused");
	}
	tpc_wc_free(conn);
}

static void test_fake_coordinator_epoch_2_62_does_not_lock_out_the_real_one(void **state)
{
	struct fx *f = *state;
	uint64_t epoch = 0;
	char seen[96];

	coord_start(f->c, NULL, NULL);
	kv_svc_start(&f->kv, f->c, NULL, NULL);
	client_close(f->c, client_open(f->c, &epoch));
	snprintf(seen, sizeof(seen), "connected to the coordinator (epoch %llu)",
		 (unsigned long long)epoch);
	kv_wait_log(&f->kv, seen);

	/* The real coordinator goes away; a fake one takes its address. */
	coord_term_clean(f->c);
	int lfd = listen_on(f->c->port);
	fake_hello(lfd, (uint64_t)1 << 62); /* returns once the service hung up */
	close(lfd);

	/* The real one comes back (epoch + 1): the service reconnects to it and commits. */
	coord_restart(f->c);
	tpc_wc *victim = client_open(f->c, &epoch);
	snprintf(seen, sizeof(seen), "connected to the coordinator (epoch %llu)",
		 (unsigned long long)epoch);
	kv_wait_log(&f->kv, seen);
	struct tpc_wc_begin b = begin_with_token(victim);
	assert_int_equal(kv_svc_put_token_rc(&f->kv, b.txid, b.token, TOKEN_LEN, "mine", "1"),
			 0);
	client_commit_expect(victim, b.txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	expect_only_victims_write(f, b.txid);
	assert_int_equal(kv_svc_log_count(&f->kv, "older coordinator epoch", NULL), 0);
	assert_int_equal(kv_svc_log_count(&f->kv, "refused a HelloReply with coordinator epoch "
					  "4611686018427387904", NULL), 1);
}

/* ---- Hello on tpc-kv (docs/protocol.md, "Hello") ----------------------------------- */

/* The connection was closed after the Error: the next read finds no more Envelopes. */
static void expect_closed(tpc_wc *wc)
{
	Tpc__Envelope *e = tpc_wc_recv(wc, WAIT_MS);

	if (e)
		fail_msg("the connection stayed open and sent a %s",
			 tpc_wire_body_name(e->body_case));
	assert_int_not_equal(tpc_wc_last_rc(wc), -ETIMEDOUT);
}

/* A Hello of @p role and @p version: @return as tpc_wc_call (the reply freed). */
static int hello_version(tpc_wc *wc, Tpc__Role role, uint32_t version)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT, *rep = NULL;
	Tpc__Hello h = TPC__HELLO__INIT;

	h.role = role;
	h.name = (char *)"a-label";
	h.protocol_version = version;
	req.body_case = TPC__ENVELOPE__BODY_HELLO;
	req.hello = &h;
	int rc = tpc_wc_call(wc, &req, &rep);
	if (rep)
		tpc__envelope__free_unpacked(rep, NULL);
	return rc;
}

/*
 * Every connection may start with a Hello, as on the coordinator: tpc-kv answers a
 * client's with a HelloReply (epoch 0: not a coordinator) and then serves it; a put
 * without one is served too. A participant's Hello, one in another protocol version, and
 * a Hello after the first message are refused with an Error and the connection closed.
 */
static void test_kv_answers_a_client_hello_and_refuses_a_late_or_foreign_one(void **state)
{
	struct fx *f = *state;
	uint64_t epoch = 99;

	coord_start(f->c, NULL, NULL);
	kv_svc_start(&f->kv, f->c, NULL, NULL);
	f->kv.wc = kv_svc_connect(&f->kv);
	assert_int_equal(tpc_wc_hello(f->kv.wc, TPC__ROLE__ROLE_CLIENT, "a-label", &epoch), 0);
	assert_int_equal(epoch, 0);
	tpc_wc *client = client_open(f->c, NULL);
	struct tpc_wc_begin b = begin_with_token(client);
	assert_int_equal(kv_svc_put_token_rc(&f->kv, b.txid, b.token, TOKEN_LEN, "hi", "1"), 0);
	struct kv_svc *plain = thief_of(f); /* a second connection, without a Hello */
	assert_int_equal(kv_svc_put_token_rc(plain, b.txid, b.token, TOKEN_LEN, "plain", "2"), 0);
	client_commit_expect(client, b.txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	kv_svc_wait_applied(&f->kv, "hi", "1", b.txid);
	kv_svc_wait_applied(&f->kv, "plain", "2", b.txid);

	static const struct { Tpc__Role role; uint32_t version; Tpc__ErrorCode code; } bad[] = {
		{ TPC__ROLE__ROLE_PARTICIPANT, TPC_PROTOCOL_VERSION, TPC__ERROR_CODE__ERR_PROTOCOL },
		{ TPC__ROLE__ROLE_CLIENT, TPC_PROTOCOL_VERSION + 1, TPC__ERROR_CODE__ERR_VERSION },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tpc_wc *wc = kv_svc_connect(&f->kv);
		assert_int_equal(hello_version(wc, bad[i].role, bad[i].version), TPC_WC_EREPLY);
		assert_int_equal(tpc_wc_error_code(wc), bad[i].code);
		expect_closed(wc);
		tpc_wc_free(wc);
	}
	/* the same client Hello, once the connection has been used: too late */
	assert_int_equal(tpc_wc_hello(plain->wc, TPC__ROLE__ROLE_CLIENT, NULL, &epoch),
			 TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(plain->wc), TPC__ERROR_CODE__ERR_PROTOCOL);
	expect_closed(plain->wc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_commit_and_abort_of_another_clients_txid_are_refused_and_the_owner_commits,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_kvput_without_or_with_a_wrong_token_is_refused_and_the_victim_commits_alone,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_coordinator_requiring_tokens_refuses_a_join_without_one, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_fake_coordinator_epoch_2_62_does_not_lock_out_the_real_one, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_kv_answers_a_client_hello_and_refuses_a_late_or_foreign_one, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
