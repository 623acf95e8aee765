/*
 * test_wire.c - Envelopes on the wire (proto/wire.c): send and pack refuse a frame over
 * the maximum before writing anything, what is sent reads back frame by frame even one
 * byte at a time, a callback can stop the reading (its value returned), an oversized announced length is an
 * error, the unpack arena survives bodies larger than its block, validate refuses each
 * missing or overlong field by name, and the names used in logs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "wire.h"

/* ---- helpers ------------------------------------------------------------------ */

struct got {
	uint64_t txids[16];
	int n;
	int stop_after; /* 0: never stop */
	struct tpc_arena arena;
};

static int on_frame(void *arg, const uint8_t *body, uint32_t len)
{
	struct got *g = arg;
	Tpc__Envelope *env = tpc_wire_unpack(&g->arena, body, len);

	assert_non_null(env);
	assert_int_equal(env->body_case, TPC__ENVELOPE__BODY_ACK);
	assert_true(g->n < 16);
	g->txids[g->n++] = env->ack->txid;
	return g->stop_after && g->n == g->stop_after ? 7 : 0;
}

static void ack_env(Tpc__Envelope *env, Tpc__Ack *ack, uint64_t txid)
{
	tpc__envelope__init(env);
	tpc__ack__init(ack);
	ack->txid = txid;
	env->body_case = TPC__ENVELOPE__BODY_ACK;
	env->ack = ack;
}

/* ---- send, pack, read ----------------------------------------------------------- */

static void test_sent_frames_read_back_in_order_one_byte_at_a_time(void **state)
{
	(void)state;
	struct evbuffer *wire = evbuffer_new(), *in = evbuffer_new();
	struct tpc_frame_decoder dec;
	struct got g = { 0 };
	Tpc__Envelope env;
	Tpc__Ack ack;

	tpc_arena_init(&g.arena, 256);
	tpc_frame_decoder_init(&dec, TPC_FRAME_DEFAULT_MAX);
	for (uint64_t t = 1; t <= 5; t++) {
		ack_env(&env, &ack, t * 1000003);
		assert_int_equal(tpc_wire_send(wire, &env, TPC_FRAME_DEFAULT_MAX), 0);
	}
	uint8_t byte;
	while (evbuffer_remove(wire, &byte, 1) == 1) {
		evbuffer_add(in, &byte, 1);
		assert_int_equal(tpc_wire_read(in, &dec, on_frame, &g), 0);
	}
	assert_int_equal(g.n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(g.txids[i], (uint64_t)(i + 1) * 1000003);
	assert_int_equal(evbuffer_get_length(in), 0);
	tpc_frame_decoder_free(&dec);
	tpc_arena_free(&g.arena);
	evbuffer_free(wire);
	evbuffer_free(in);
}

static void test_a_callback_that_stops_ends_the_read_with_its_value(void **state)
{
	(void)state;
	struct evbuffer *in = evbuffer_new();
	struct tpc_frame_decoder dec;
	struct got g = { .stop_after = 1 };
	Tpc__Envelope env;
	Tpc__Ack ack;

	tpc_arena_init(&g.arena, 256);
	tpc_frame_decoder_init(&dec, TPC_FRAME_DEFAULT_MAX);
	ack_env(&env, &ack, 1);
	assert_int_equal(tpc_wire_send(in, &env, TPC_FRAME_DEFAULT_MAX), 0);
	ack_env(&env, &ack, 2);
	assert_int_equal(tpc_wire_send(in, &env, TPC_FRAME_DEFAULT_MAX), 0);
	/* The caller stops because the connection is gone: nothing after the frame is
	 * read, and the buffer is left alone (it may be freed already). */
	assert_int_equal(tpc_wire_read(in, &dec, on_frame, &g), 7);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.txids[0], 1);
	tpc_frame_decoder_free(&dec);
	tpc_arena_free(&g.arena);
	evbuffer_free(in);
}

static void test_send_and_pack_refuse_a_frame_over_the_limit_and_write_nothing(void **state)
{
	(void)state;
	struct evbuffer *out = evbuffer_new();
	Tpc__Envelope env;
	Tpc__Abort ab;
	char reason[200];
	uint8_t buf[64];

	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	tpc__envelope__init(&env);
	tpc__abort__init(&ab);
	ab.txid = 9;
	ab.reason = reason;
	env.body_case = TPC__ENVELOPE__BODY_ABORT;
	env.abort = &ab;
	assert_int_equal(tpc_wire_send(out, &env, 100), -EMSGSIZE);
	assert_int_equal(evbuffer_get_length(out), 0);
	assert_int_equal(tpc_wire_pack(&env, buf, sizeof(buf)), -EMSGSIZE);
	ab.reason = "short";
	long n = tpc_wire_pack(&env, buf, sizeof(buf));
	assert_true(n > (long)TPC_FRAME_HEADER_SIZE);
	assert_int_equal(tpc_frame_get_header(buf), (uint32_t)n - TPC_FRAME_HEADER_SIZE);
	assert_int_equal(tpc_wire_send(out, &env, 100), 0);
	assert_int_equal(evbuffer_get_length(out), (size_t)n);
	evbuffer_free(out);
}

static void test_read_reports_an_announced_length_over_the_maximum(void **state)
{
	(void)state;
	struct evbuffer *in = evbuffer_new();
	struct tpc_frame_decoder dec;
	struct got g = { 0 };
	uint8_t hdr[TPC_FRAME_HEADER_SIZE];

	tpc_arena_init(&g.arena, 256);
	tpc_frame_decoder_init(&dec, 1024);
	tpc_frame_put_header(hdr, 1025);
	evbuffer_add(in, hdr, sizeof(hdr));
	assert_int_equal(tpc_wire_read(in, &dec, on_frame, &g), TPC_FRAME_ERR_TOO_BIG);
	assert_int_equal(g.n, 0);
	tpc_frame_decoder_free(&dec);
	tpc_arena_free(&g.arena);
	evbuffer_free(in);
}

/* ---- unpack arena ----------------------------------------------------------------- */

static void test_unpack_fits_bodies_larger_than_the_arena_and_refuses_garbage(void **state)
{
	(void)state;
	struct tpc_arena a;
	Tpc__Envelope env;
	Tpc__Hello h;
	uint64_t ids[300];
	static uint8_t buf[8192];

	tpc_arena_init(&a, 64); /* far smaller than the message: the malloc fallback */
	tpc__envelope__init(&env);
	tpc__hello__init(&h);
	for (int i = 0; i < 300; i++)
		ids[i] = (uint64_t)i + 1;
	h.role = TPC__ROLE__ROLE_PARTICIPANT;
	h.name = "orders";
	h.prepared_txids = ids;
	h.n_prepared_txids = 300;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	long n = tpc_wire_pack(&env, buf, sizeof(buf));
	assert_true(n > 0);
	for (int round = 0; round < 3; round++) { /* each unpack releases the previous one */
		Tpc__Envelope *e = tpc_wire_unpack(&a, buf + TPC_FRAME_HEADER_SIZE,
						   (size_t)n - TPC_FRAME_HEADER_SIZE);
		assert_non_null(e);
		assert_int_equal(e->hello->n_prepared_txids, 300);
		assert_int_equal(e->hello->prepared_txids[299], 300);
		assert_string_equal(e->hello->name, "orders");
	}
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	assert_null(tpc_wire_unpack(&a, garbage, sizeof(garbage)));
	tpc_arena_free(&a);
}

/* ---- validate ------------------------------------------------------------------------ */

static void expect_invalid(const Tpc__Envelope *env, const char *why_has)
{
	const char *why = NULL;
	assert_int_equal(tpc_wire_validate(env, &why), -EINVAL);
	assert_non_null(why);
	if (!strstr(why, why_has))
		fail_msg("why \"%s\" does not name \"%s\"", why, why_has);
}

static void expect_valid(const Tpc__Envelope *env)
{
	const char *why = NULL;
	if (tpc_wire_validate(env, &why))
		fail_msg("refused: %s", why);
}

static void test_validate_refuses_missing_bodies_txids_and_names(void **state)
{
	(void)state;
	Tpc__Envelope env;
	Tpc__Join join;
	Tpc__Hello h;
	Tpc__Commit c;

	tpc__envelope__init(&env);
	expect_invalid(&env, "no body");
	env.body_case = TPC__ENVELOPE__BODY_BEGIN;
	expect_invalid(&env, "begin body missing");
	env.body_case = TPC__ENVELOPE__BODY_COMMIT;
	expect_invalid(&env, "txid");
	tpc__commit__init(&c);
	env.commit = &c;
	expect_invalid(&env, "txid");
	c.txid = 1;
	expect_valid(&env);

	tpc__hello__init(&h);
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	expect_invalid(&env, "hello.role");
	h.role = TPC__ROLE__ROLE_CLIENT;
	expect_valid(&env); /* a client needs no name */
	h.role = TPC__ROLE__ROLE_PARTICIPANT;
	expect_invalid(&env, "hello.name is required");
	h.name = "A";
	expect_valid(&env);

	tpc__join__init(&join);
	env.body_case = TPC__ENVELOPE__BODY_JOIN;
	env.join = &join;
	join.txid = 5;
	expect_invalid(&env, "join.participant is required");
	join.participant = "A";
	expect_valid(&env);
}

static void test_validate_refuses_strings_one_byte_over_their_limit(void **state)
{
	(void)state;
	static char name[TPC_WIRE_MAX_NAME + 2], key[TPC_WIRE_MAX_KEY + 2],
		reason[TPC_WIRE_MAX_REASON + 2];
	Tpc__Envelope env;
	Tpc__Hello h;
	Tpc__Begin b;
	Tpc__Vote v;

	memset(name, 'n', TPC_WIRE_MAX_NAME);
	memset(key, 'k', TPC_WIRE_MAX_KEY);
	memset(reason, 'r', TPC_WIRE_MAX_REASON);
	tpc__envelope__init(&env);

	tpc__hello__init(&h);
	h.role = TPC__ROLE__ROLE_PARTICIPANT;
	h.name = name;
	env.body_case = TPC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	expect_valid(&env);
	name[TPC_WIRE_MAX_NAME] = 'n';
	expect_invalid(&env, "hello.name is longer");

	tpc__begin__init(&b);
	b.txn_key = key;
	env.body_case = TPC__ENVELOPE__BODY_BEGIN;
	env.begin = &b;
	expect_valid(&env);
	key[TPC_WIRE_MAX_KEY] = 'k';
	expect_invalid(&env, "begin.txn_key is longer");

	tpc__vote__init(&v);
	v.txid = 3;
	v.reason = reason;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &v;
	expect_valid(&env);
	reason[TPC_WIRE_MAX_REASON] = 'r';
	expect_invalid(&env, "vote.reason is longer");
	reason[TPC_WIRE_MAX_REASON] = '\0';
	v.vote = (Tpc__VoteKind)7;
	expect_invalid(&env, "not a known vote");
}

static void test_validate_refuses_unknown_decisions_and_empty_kv_keys(void **state)
{
	(void)state;
	Tpc__Envelope env;
	Tpc__Decision d;
	Tpc__KvPut put;

	tpc__envelope__init(&env);
	tpc__decision__init(&d);
	d.txid = 4;
	d.decision = TPC__DECISION_KIND__DECISION_COMMIT;
	env.body_case = TPC__ENVELOPE__BODY_DECISION;
	env.decision = &d;
	expect_valid(&env);
	d.decision = (Tpc__DecisionKind)2;
	expect_invalid(&env, "not a known decision");

	tpc__kv_put__init(&put);
	put.txid = 4;
	env.body_case = TPC__ENVELOPE__BODY_KV_PUT;
	env.kv_put = &put;
	expect_invalid(&env, "kv_put.key is required");
	put.key.data = (uint8_t *)"k";
	put.key.len = 1;
	expect_valid(&env);
}

static void test_validate_refuses_orphan_reports_too_long_or_without_txids(void **state)
{
	(void)state;
	static char gid[TPC_WIRE_MAX_NAME + 2];
	static Tpc__Orphan items[TPC_WIRE_MAX_ORPHANS + 1];
	static Tpc__Orphan *ptrs[TPC_WIRE_MAX_ORPHANS + 1];
	Tpc__Envelope env;
	Tpc__OrphanReport rep;

	tpc__envelope__init(&env);
	env.body_case = TPC__ENVELOPE__BODY_ORPHAN_REPORT;
	expect_invalid(&env, "orphan_report body missing");
	tpc__orphan_report__init(&rep);
	env.orphan_report = &rep;
	expect_valid(&env); /* an empty report clears the last one */
	for (size_t i = 0; i <= TPC_WIRE_MAX_ORPHANS; i++) {
		tpc__orphan__init(&items[i]);
		items[i].txid = i + 1;
		ptrs[i] = &items[i];
	}
	rep.orphans = ptrs;
	rep.n_orphans = TPC_WIRE_MAX_ORPHANS;
	expect_valid(&env);
	rep.n_orphans = TPC_WIRE_MAX_ORPHANS + 1;
	expect_invalid(&env, "more than " TPC_WIRE_MAX_ORPHANS_STR " orphans");
	rep.n_orphans = 1;
	memset(gid, 'g', TPC_WIRE_MAX_NAME);
	items[0].gid = gid;
	expect_valid(&env);
	gid[TPC_WIRE_MAX_NAME] = 'g';
	expect_invalid(&env, "orphan.gid or orphan.reason is too long");
	gid[TPC_WIRE_MAX_NAME] = '\0';
	items[0].txid = 0;
	expect_invalid(&env, "txid");
}

/* ---- names ---------------------------------------------------------------------------- */

static void test_names_for_logs_cover_every_status_and_outcome(void **state)
{
	(void)state;
	assert_string_equal(tpc_wire_body_name(TPC__ENVELOPE__BODY_VOTE), "vote");
	assert_string_equal(tpc_wire_body_name(TPC__ENVELOPE__BODY__NOT_SET), "none");
	assert_string_equal(tpc_wire_status_name(TPC__TXN_STATUS__STATUS_PENDING), "PENDING");
	assert_string_equal(tpc_wire_status_name(TPC__TXN_STATUS__STATUS_COMMITTED),
			    "COMMITTED");
	assert_string_equal(tpc_wire_status_name(TPC__TXN_STATUS__STATUS_ABORTED), "ABORTED");
	assert_string_equal(tpc_wire_status_name(TPC__TXN_STATUS__STATUS_FORGOTTEN),
			    "FORGOTTEN");
	assert_string_equal(tpc_wire_outcome_name(TPC__OUTCOME_KIND__OUTCOME_UNKNOWN),
			    "UNKNOWN");
	assert_string_equal(tpc_wire_outcome_name(TPC__OUTCOME_KIND__OUTCOME_COMMITTED),
			    "COMMITTED");
	assert_string_equal(tpc_wire_outcome_name(TPC__OUTCOME_KIND__OUTCOME_ABORTED),
			    "ABORTED");
	assert_string_equal(tpc_wire_outcome_name(TPC__OUTCOME_KIND__OUTCOME_FORGOTTEN),
			    "FORGOTTEN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sent_frames_read_back_in_order_one_byte_at_a_time),
		cmocka_unit_test(test_a_callback_that_stops_ends_the_read_with_its_value),
		cmocka_unit_test(test_send_and_pack_refuse_a_frame_over_the_limit_and_write_nothing),
		cmocka_unit_test(test_read_reports_an_announced_length_over_the_maximum),
		cmocka_unit_test(test_unpack_fits_bodies_larger_than_the_arena_and_refuses_garbage),
		cmocka_unit_test(test_validate_refuses_missing_bodies_txids_and_names),
		cmocka_unit_test(test_validate_refuses_strings_one_byte_over_their_limit),
		cmocka_unit_test(test_validate_refuses_unknown_decisions_and_empty_kv_keys),
		cmocka_unit_test(test_validate_refuses_orphan_reports_too_long_or_without_txids),
		cmocka_unit_test(test_names_for_logs_cover_every_status_and_outcome),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
