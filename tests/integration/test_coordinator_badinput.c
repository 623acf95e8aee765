/*
 * test_coordinator_badinput.c - untrusted bytes and misbehaving peers against a real
 * tpc-coordinator: oversized, empty and undecodable frames, messages out of order or
 * from the wrong role, votes and acks from a connection that did not join, and the
 * connection and open-transaction limits. Each offender gets a clear Error; only its
 * own connection closes (where the protocol says so) and everyone else is served.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "frame.h"
#include "wire.h"

/* Begin, let participants 0..n-1 join, and return the txid (not committed yet). */
static uint64_t begin_joined(struct cluster *c, tpc_wc *wc, int n)
{
	uint64_t txid = client_begin(wc, NULL);

	for (int i = 0; i < n; i++)
		part_join(c, i, txid);
	return txid;
}

static void commit_and_expect_applied(struct cluster *c, tpc_wc *wc, uint64_t txid, int n)
{
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	for (int i = 0; i < n; i++) {
		part_expect(c, i, "applied %llu", (unsigned long long)txid);
		part_expect(c, i, "acked %llu", (unsigned long long)txid);
		assert_int_equal(part_state_count(c, i, 'C', txid), 1);
	}
}

static void send_header(tpc_wc *wc, uint32_t len)
{
	uint8_t hdr[TPC_FRAME_HEADER_SIZE];

	tpc_frame_put_header(hdr, len);
	assert_int_equal(tpc_wc_send_raw(wc, hdr, sizeof(hdr)), 0);
}

static void send_env(tpc_wc *wc, Tpc__Envelope *env)
{
	env->request_id = tpc_wc_next_request_id(wc);
	assert_int_equal(tpc_wc_send(wc, env), 0);
}

/* Request/reply that must be answered with an Error of @p code (connection stays). */
static void call_expect_error(tpc_wc *wc, Tpc__Envelope *env, Tpc__ErrorCode code)
{
	Tpc__Envelope *rep = NULL;
	int rc = tpc_wc_call(wc, env, &rep);

	if (rep)
		tpc__envelope__free_unpacked(rep, NULL);
	if (rc != TPC_WC_EREPLY)
		fail_msg("expected an Error %s, got %s", tpc_wc_error_name(code), tpc_wc_strerror(rc));
	if (tpc_wc_error_code(wc) != code)
		fail_msg("expected an Error %s, got %s", tpc_wc_error_name(code), tpc_wc_errmsg(wc));
}

static void test_oversized_frame_closes_only_that_connection(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_begin b;
	char key[600];

	coord_start(c, NULL, "--max-frame", "1024", NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *good = client_open(c, NULL);
	uint64_t txid = begin_joined(c, good, 2);

	/* Announced length over --max-frame: Error ERR_BAD_FRAME, then that connection closes. */
	tpc_wc *bad = client_open(c, NULL);
	send_header(bad, 1025);
	client_expect_error(bad, TPC__ERROR_CODE__ERR_BAD_FRAME, 1);
	/* The same before any Hello, and with a huge length (nothing is allocated for it). */
	tpc_wc *huge = client_open_raw(c);
	send_header(huge, 0xffffffffu);
	client_expect_error(huge, TPC__ERROR_CODE__ERR_BAD_FRAME, 1);
	/* A frame within the limit is fine; a key over the key limit is refused politely. */
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(tpc_wc_begin(good, key, 0, &b), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(good), TPC__ERROR_CODE__ERR_INVALID);

	/* The connection open at the same time still completes its commit. */
	commit_and_expect_applied(c, good, txid, 2);
	coord_log_has(c, "frame larger than the maximum frame size");
}

static void test_undecodable_frames_get_bad_frame_and_close(void **state)
{
	struct cluster *c = *state;
	static const uint8_t garbage[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t no_body[2] = { 0x08, 0x05 }; /* request_id 5, nothing else */

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	tpc_wc *good = client_open(c, NULL);
	uint64_t txid = begin_joined(c, good, 1);

	/* Bytes that do not decode as an Envelope, before and after Hello. */
	tpc_wc *g1 = client_open_raw(c);
	send_header(g1, sizeof(garbage));
	assert_int_equal(tpc_wc_send_raw(g1, garbage, sizeof(garbage)), 0);
	client_expect_error(g1, TPC__ERROR_CODE__ERR_BAD_FRAME, 1);
	tpc_wc *g2 = client_open(c, NULL);
	send_header(g2, sizeof(garbage));
	assert_int_equal(tpc_wc_send_raw(g2, garbage, sizeof(garbage)), 0);
	client_expect_error(g2, TPC__ERROR_CODE__ERR_BAD_FRAME, 1);
	/* An empty frame. */
	tpc_wc *g3 = client_open(c, NULL);
	send_header(g3, 0);
	client_expect_error(g3, TPC__ERROR_CODE__ERR_BAD_FRAME, 1);
	/* Decodes, but misses what its body requires: no body at all; a Commit of txid 0. */
	tpc_wc *g4 = client_open(c, NULL);
	send_header(g4, sizeof(no_body));
	assert_int_equal(tpc_wc_send_raw(g4, no_body, sizeof(no_body)), 0);
	client_expect_error(g4, TPC__ERROR_CODE__ERR_INVALID, 1);
	tpc_wc *g5 = client_open(c, NULL);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Commit cm = TPC__COMMIT__INIT;
	env.body_case = TPC__ENVELOPE__BODY_COMMIT;
	env.commit = &cm;
	send_env(g5, &env);
	client_expect_error(g5, TPC__ERROR_CODE__ERR_INVALID, 1);
	/* A frame split into single bytes is still one frame (a Hello that succeeds). */
	tpc_wc *slow = client_open_raw(c);
	uint8_t buf[128];
	Tpc__Envelope hello = TPC__ENVELOPE__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;
	h.role = TPC__ROLE__ROLE_CLIENT;
	h.name = "slow";
	h.protocol_version = TPC_PROTOCOL_VERSION;
	hello.request_id = 77;
	hello.body_case = TPC__ENVELOPE__BODY_HELLO;
	hello.hello = &h;
	long n = tpc_wire_pack(&hello, buf, sizeof(buf));
	assert_true(n > 0);
	for (long i = 0; i < n; i++)
		assert_int_equal(tpc_wc_send_raw(slow, buf + i, 1), 0);
	Tpc__Envelope *rep = tpc_wc_recv(slow, WAIT_MS);
	assert_non_null(rep);
	assert_int_equal(rep->body_case, TPC__ENVELOPE__BODY_HELLO_REPLY);
	assert_int_equal(rep->request_id, 77);
	tpc__envelope__free_unpacked(rep, NULL);

	commit_and_expect_applied(c, good, txid, 1);
}

static void test_messages_out_of_place_are_protocol_errors(void **state)
{
	struct cluster *c = *state;
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Begin bg = TPC__BEGIN__INIT;
	Tpc__StatusQuery sq = TPC__STATUS_QUERY__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;
	Tpc__Join j = TPC__JOIN__INIT;
	uint64_t epoch = 0;

	coord_start(c, NULL, NULL);
	/* A frame before Hello: ERR_PROTOCOL, and the connection closes. */
	tpc_wc *a = client_open_raw(c);
	env.body_case = TPC__ENVELOPE__BODY_BEGIN;
	env.begin = &bg;
	send_env(a, &env);
	client_expect_error(a, TPC__ERROR_CODE__ERR_PROTOCOL, 1);
	tpc_wc *b = client_open_raw(c);
	sq.txid = 12345;
	env.body_case = TPC__ENVELOPE__BODY_STATUS_QUERY;
	env.status_query = &sq;
	send_env(b, &env);
	client_expect_error(b, TPC__ERROR_CODE__ERR_PROTOCOL, 1);
	/* An unsupported protocol version. */
	tpc_wc *v = client_open_raw(c);
	h.role = TPC__ROLE__ROLE_CLIENT;
	h.protocol_version = 99;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(v, &env);
	client_expect_error(v, TPC__ERROR_CODE__ERR_VERSION, 1);
	/* Hello twice. */
	tpc_wc *twice = client_open(c, NULL);
	h.protocol_version = TPC_PROTOCOL_VERSION;
	send_env(twice, &env);
	client_expect_error(twice, TPC__ERROR_CODE__ERR_PROTOCOL, 1);
	/* A participant's message on a client connection, and the other way round: an
	 * Error for that request, and the connection stays usable. */
	tpc_wc *cl = client_open(c, &epoch);
	uint64_t txid = client_begin(cl, NULL);
	j.txid = txid;
	j.participant = "p9";
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &j;
	call_expect_error(cl, &env, TPC__ERROR_CODE__ERR_PROTOCOL);
	tpc_wc *pc = client_open_raw(c);
	assert_int_equal(tpc_wc_hello(pc, TPC__ROLE__ROLE_PARTICIPANT, "p9", NULL), 0);
	env.body_case = TPC__ENVELOPE__BODY_BEGIN;
	env.begin = &bg;
	call_expect_error(pc, &env, TPC__ERROR_CODE__ERR_PROTOCOL);
	/* A participant joining under another name than its Hello's. */
	j.participant = "somebody-else";
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &j;
	call_expect_error(pc, &env, TPC__ERROR_CODE__ERR_PROTOCOL);
	/* Joining as another incarnation than the connection's Hello (tpc_wc_hello says 1). */
	j.participant = "p9";
	j.incarnation = 2;
	call_expect_error(pc, &env, TPC__ERROR_CODE__ERR_INCARNATION);
	/* Joining a transaction that does not exist. */
	j.incarnation = 1;
	j.txid = epoch << 40 | 0xffffff;
	call_expect_error(pc, &env, TPC__ERROR_CODE__ERR_NOT_FOUND);
	client_commit_expect(cl, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
}

/* Hello as a participant with @p id; expect ERR_INVALID and the connection closed. */
static void hello_expect_invalid(struct cluster *c, const char *name,
				 const struct tpc_wc_identity *id, size_t id_len)
{
	tpc_wc *wc = client_open_raw(c);
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Hello h = TPC__HELLO__INIT;

	h.role = TPC__ROLE__ROLE_PARTICIPANT;
	h.name = (char *)name;
	h.protocol_version = TPC_PROTOCOL_VERSION;
	h.participant_id.data = (uint8_t *)id->participant_id;
	h.participant_id.len = id_len;
	h.incarnation = id->incarnation;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(wc, &env);
	client_expect_error(wc, TPC__ERROR_CODE__ERR_INVALID, 1);
}

static void test_participant_hello_needs_an_identity_and_a_sane_name(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_identity id;
	char name[300];

	coord_start(c, NULL, NULL);
	tpc_wc_default_identity("p-id", &id);
	hello_expect_invalid(c, "p-id", &id, 0);   /* no participant id (a v1 stub) */
	hello_expect_invalid(c, "p-id", &id, 15);  /* not 16 bytes */
	id.incarnation = 0;
	hello_expect_invalid(c, "p-id", &id, 16);  /* incarnation 0 */
	id.incarnation = 1;
	memset(name, 'n', sizeof(name));
	name[256] = '\0';
	hello_expect_invalid(c, name, &id, 16);    /* a name over 255 bytes */
	name[255] = '\0';
	tpc_wc *ok = client_open_raw(c);
	assert_int_equal(tpc_wc_hello_participant(ok, name, &id, NULL), 0);
	coord_log_has(c, "hello.name is longer than 255 bytes"); /* checked with the frame */
}

static void test_vote_and_ack_from_non_participant_are_refused(void **state)
{
	struct cluster *c = *state;
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote vt = TPC__VOTE__INIT;
	Tpc__Ack ak = TPC__ACK__INIT;

	coord_start(c, NULL, NULL);
	part_start(c, 0, NULL);
	part_start(c, 1, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = begin_joined(c, wc, 2);
	tpc_wc *intruder = client_open_raw(c);
	assert_int_equal(tpc_wc_hello(intruder, TPC__ROLE__ROLE_PARTICIPANT, "intruder", NULL), 0);
	/* A NO from a connection that did not join must not abort the transaction. */
	vt.txid = txid;
	vt.vote = TPC__VOTE_KIND__VOTE_NO;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &vt;
	call_expect_error(intruder, &env, TPC__ERROR_CODE__ERR_NOT_PARTICIPANT);
	vt.vote = TPC__VOTE_KIND__VOTE_YES;
	call_expect_error(intruder, &env, TPC__ERROR_CODE__ERR_NOT_PARTICIPANT);
	ak.txid = txid;
	env.body_case = TPC__ENVELOPE__BODY_ACK;
	env.ack = &ak;
	call_expect_error(intruder, &env, TPC__ERROR_CODE__ERR_NOT_PARTICIPANT);
	/* A client connection may not vote at all. */
	vt.vote = TPC__VOTE_KIND__VOTE_NO;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &vt;
	call_expect_error(wc, &env, TPC__ERROR_CODE__ERR_PROTOCOL);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_PENDING);

	commit_and_expect_applied(c, wc, txid, 2);
	part_expect_none(c, 0, "discarded ");
	part_expect_none(c, 1, "discarded ");
}

static void test_connection_limit_refuses_the_extra_connection(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, "--max-conns", "2", NULL);
	tpc_wc *a = client_open(c, NULL);
	tpc_wc *b = client_open(c, NULL);
	tpc_wc *x = client_open_raw(c);
	client_expect_error(x, TPC__ERROR_CODE__ERR_LIMIT, 1);
	client_close(c, x);
	coord_log_has(c, "connection limit reached");
	/* The two within the limit are served. */
	uint64_t t = client_begin(b, NULL);
	client_commit_expect(b, t, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	/* Once one leaves, a new connection is accepted (poll until the close is seen). */
	client_close(c, a);
	uint64_t deadline = now_ms() + WAIT_MS;
	for (;;) {
		tpc_wc *n = client_open_raw(c);
		uint64_t epoch = 0;
		int rc = tpc_wc_hello(n, TPC__ROLE__ROLE_CLIENT, "late", &epoch);
		if (rc == 0)
			break;
		client_close(c, n);
		if (now_ms() >= deadline)
			fail_msg("no connection accepted after one closed: %s", tpc_wc_strerror(rc));
		poll(NULL, 0, 10);
	}
}

static void test_open_transaction_limit_refuses_begin(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_begin b;
	struct tpc_wc_outcome o;

	coord_start(c, NULL, "--max-open-txns", "2", NULL);
	tpc_wc *wc = client_open(c, NULL);
	tpc_wc *other = client_open(c, NULL);
	uint64_t t1 = client_begin(wc, NULL);
	uint64_t t2 = client_begin(other, "key-2");
	assert_int_equal(tpc_wc_begin(wc, NULL, 0, &b), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(wc), TPC__ERROR_CODE__ERR_LIMIT);
	assert_int_equal(tpc_wc_begin(other, "key-3", 0, &b), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(other), TPC__ERROR_CODE__ERR_LIMIT);
	/* The open ones are unharmed; finishing one makes room again. */
	client_status_expect(wc, t1, TPC__TXN_STATUS__STATUS_PENDING);
	assert_int_equal(tpc_wc_abort(wc, t1, NULL, &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_ABORTED);
	uint64_t t3 = client_begin(wc, NULL);
	client_commit_expect(other, t2, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	client_commit_expect(wc, t3, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_oversized_frame_closes_only_that_connection,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_undecodable_frames_get_bad_frame_and_close,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_messages_out_of_place_are_protocol_errors,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_vote_and_ack_from_non_participant_are_refused,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_participant_hello_needs_an_identity_and_a_sane_name,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit_refuses_the_extra_connection,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_open_transaction_limit_refuses_begin,
						cluster_setup, cluster_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
