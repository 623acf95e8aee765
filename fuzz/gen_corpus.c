/*
 * gen_corpus.c - writes the seed corpus of the fuzz harnesses (fuzz/corpus/<harness>/):
 * valid frames of every Envelope type (one frame per file, and one stream of them all)
 * for fuzz_frame, and happy-path and abort-path event programs for the two state
 * machine harnesses, and connection scripts for fuzz_coord_dispatch (a commit with
 * automatic or hand-sent votes and acks, a NO vote, a read-only commit, an abort, every
 * body a coordinator refuses, garbage, and requests it must deny), in the byte layout
 * their LLVMFuzzerTestOneInput decodes.
 *
 * Usage: gen_corpus DIR   (DIR/fuzz_frame, DIR/fuzz_coord_txn, DIR/fuzz_part_txn and
 *                          DIR/fuzz_coord_dispatch exist)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

struct buf {
	uint8_t b[8192];
	size_t n;
};

static void put(struct buf *b, int n, ...);

#include <stdarg.h>
static void put(struct buf *b, int n, ...)
{
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n && b->n < sizeof(b->b); i++)
		b->b[b->n++] = (uint8_t)va_arg(ap, int);
	va_end(ap);
}

static int save(const char *dir, const char *sub, const char *name, const struct buf *b)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b->b, 1, b->n, f) != b->n) {
		perror(path);
		if (f)
			fclose(f);
		return -1;
	}
	return fclose(f);
}

/* ---- fuzz_frame: [max choice 6 = 1 MiB][chunk seed][frames...] ---- */

static int add_frame(struct buf *b, Tpc__Envelope *env)
{
	long n = tpc_wire_pack(env, b->b + b->n, sizeof(b->b) - b->n);

	if (n < 0)
		return -1;
	b->n += (size_t)n;
	return 0;
}

static int frames(const char *dir)
{
	static uint8_t pid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	static uint64_t prepared[] = { 5, 6 };
	Tpc__Hello hello = TPC__HELLO__INIT;
	Tpc__Begin begin = TPC__BEGIN__INIT;
	Tpc__Join join = TPC__JOIN__INIT;
	Tpc__Commit commit = TPC__COMMIT__INIT;
	Tpc__Vote vote = TPC__VOTE__INIT;
	Tpc__Ack ack = TPC__ACK__INIT;
	Tpc__StatusQuery sq = TPC__STATUS_QUERY__INIT;
	Tpc__Decision dec = TPC__DECISION__INIT;
	Tpc__Prepare prep = TPC__PREPARE__INIT;
	Tpc__Abort abrt = TPC__ABORT__INIT;
	Tpc__KvPut put_ = TPC__KV_PUT__INIT;
	Tpc__KvGet get = TPC__KV_GET__INIT;
	Tpc__Envelope envs[12];
	struct buf all = { .n = 0 };
	char name[32];

	hello.role = TPC__ROLE__ROLE_PARTICIPANT;
	hello.name = "alpha";
	hello.protocol_version = TPC_PROTOCOL_VERSION;
	hello.participant_id = (ProtobufCBinaryData){ sizeof(pid), pid };
	hello.incarnation = 1;
	hello.n_prepared_txids = 2;
	hello.prepared_txids = prepared;
	begin.timeout_ms = 5000;
	begin.txn_key = "order-1";
	join.txid = 7, join.participant = "alpha", join.incarnation = 1;
	commit.txid = 7;
	vote.txid = 7, vote.vote = TPC__VOTE_KIND__VOTE_YES, vote.incarnation = 1;
	ack.txid = 7;
	sq.txid = 7;
	dec.txid = 7, dec.decision = TPC__DECISION_KIND__DECISION_COMMIT, dec.epoch = 3;
	prep.txid = 7, prep.epoch = 3;
	abrt.txid = 7, abrt.reason = "client changed its mind";
	put_.txid = 7, put_.key = (ProtobufCBinaryData){ 1, (uint8_t *)"k" };
	put_.value = (ProtobufCBinaryData){ 1, (uint8_t *)"v" };
	get.key = put_.key;
	for (int i = 0; i < 12; i++) {
		tpc__envelope__init(&envs[i]);
		envs[i].request_id = (uint64_t)i + 1;
	}
	envs[0].body_case = TPC__ENVELOPE__BODY_HELLO, envs[0].hello = &hello;
	envs[1].body_case = TPC__ENVELOPE__BODY_BEGIN, envs[1].begin = &begin;
	envs[2].body_case = TPC__ENVELOPE__BODY_JOIN, envs[2].join = &join;
	envs[3].body_case = TPC__ENVELOPE__BODY_COMMIT, envs[3].commit = &commit;
	envs[4].body_case = TPC__ENVELOPE__BODY_VOTE, envs[4].vote = &vote;
	envs[5].body_case = TPC__ENVELOPE__BODY_ACK, envs[5].ack = &ack;
	envs[6].body_case = TPC__ENVELOPE__BODY_STATUS_QUERY, envs[6].status_query = &sq;
	envs[7].body_case = TPC__ENVELOPE__BODY_DECISION, envs[7].decision = &dec;
	envs[8].body_case = TPC__ENVELOPE__BODY_PREPARE, envs[8].prepare = &prep;
	envs[9].body_case = TPC__ENVELOPE__BODY_ABORT, envs[9].abort = &abrt;
	envs[10].body_case = TPC__ENVELOPE__BODY_KV_PUT, envs[10].kv_put = &put_;
	envs[11].body_case = TPC__ENVELOPE__BODY_KV_GET, envs[11].kv_get = &get;
	put(&all, 2, 6, 0);
	for (int i = 0; i < 12; i++) {
		struct buf one = { .n = 0 };
		put(&one, 2, 6, i);
		if (add_frame(&one, &envs[i]) || add_frame(&all, &envs[i]))
			return -1;
		snprintf(name, sizeof(name), "%s.bin", tpc_wire_body_name(envs[i].body_case));
		if (save(dir, "fuzz_frame", name, &one))
			return -1;
	}
	return save(dir, "fuzz_frame", "stream.bin", &all);
}

/* ---- fuzz_coord_txn: see its next_event() for the layout ---- */

enum { C_JOIN, C_COMMIT, C_ABORT, C_VOTE, C_LOGGED, C_ACK, C_TICK };

static void cev(struct buf *b, int type, int peer, int extra)
{
	put(b, 2, 10, 1);                     /* 10 ms later */
	put(b, 5, peer - 1, 0, 0, 1, 0);      /* peer, inc 1, conn 1, req 1, rand */
	put(b, 1, type);
	if (type == C_VOTE || type == C_LOGGED)
		put(b, 1, extra);
}

static int coord(const char *dir)
{
	struct buf commit = { .n = 0 }, no = { .n = 0 };

	put(&commit, 5, 50, 10, 3, 1, 100); /* cfg; fresh txn, timeout */
	cev(&commit, C_JOIN, 1, 0);
	cev(&commit, C_JOIN, 2, 0);
	cev(&commit, C_COMMIT, 1, 0);
	cev(&commit, C_VOTE, 1, 1);
	cev(&commit, C_VOTE, 2, 1);
	cev(&commit, C_LOGGED, 1, 0);
	cev(&commit, C_ACK, 1, 0);
	cev(&commit, C_ACK, 2, 0);
	put(&no, 5, 50, 10, 3, 1, 100);
	cev(&no, C_JOIN, 1, 0);
	cev(&no, C_JOIN, 2, 0);
	cev(&no, C_COMMIT, 1, 0);
	cev(&no, C_VOTE, 1, 1);
	cev(&no, C_VOTE, 2, 0);
	return save(dir, "fuzz_coord_txn", "commit.bin", &commit) ||
	       save(dir, "fuzz_coord_txn", "vote_no.bin", &no);
}

/* ---- fuzz_part_txn: see its next_event() for the layout ---- */

enum { P_STAGE, P_JOIN_OK, P_JOIN_FAILED, P_PREPARE, P_LOGGED, P_DECISION, P_APPLIED };

static void pev(struct buf *b, int type, int arg)
{
	put(b, 2, 10, 1);   /* 10 ms later */
	put(b, 2, 0, type); /* epoch 1 */
	if (type == P_PREPARE || type == P_LOGGED || type == P_DECISION || type == P_APPLIED)
		put(b, 1, arg);
}

static int part(const char *dir)
{
	struct buf commit = { .n = 0 }, abort_ = { .n = 0 };

	put(&commit, 3, 50, 1, 1); /* cfg, highest epoch 1, fresh txn */
	pev(&commit, P_JOIN_OK, 0);
	pev(&commit, P_STAGE, 0);
	pev(&commit, P_PREPARE, 1);
	pev(&commit, P_LOGGED, 1);
	pev(&commit, P_DECISION, 1);
	pev(&commit, P_APPLIED, 1);
	put(&abort_, 3, 50, 1, 1);
	pev(&abort_, P_JOIN_OK, 0);
	pev(&abort_, P_PREPARE, 1);
	pev(&abort_, P_LOGGED, 1);
	pev(&abort_, P_DECISION, 0);
	return save(dir, "fuzz_part_txn", "commit.bin", &commit) ||
	       save(dir, "fuzz_part_txn", "abort.bin", &abort_);
}

/* ---- fuzz_coord_dispatch: see its step() for the layout ---- */

enum { D_HELLO_CLIENT, D_HELLO_PART, D_BEGIN, D_JOIN, D_COMMIT, D_ABORT, D_VOTE, D_ACK,
       D_STATUS, D_OTHER, D_GARBAGE, D_BAD_FRAME, D_PARTIAL, D_RECONNECT, D_CLOSE,
       D_WAIT };
enum { AUTO_YES = 1, AUTO_NO = 2, AUTO_READ_ONLY = 3, AUTO_ACK = 4 };

/* [connections - 2][flags]; conn 0 a client, conns 1.. participants p0.. */
static void script_start(struct buf *b, int nconns, int flags)
{
	put(b, 2, nconns - 2, flags);
	put(b, 4, 0, D_HELLO_CLIENT, 0, 0);
	for (int i = 1; i < nconns; i++)
		put(b, 6, i, D_HELLO_PART, i - 1, 0, 1, 0); /* own id, incarnation base + 1 */
}

/* Begin on conn 0 ([timeout 2 s][key]), every participant joins the first txid the
 * replies named (the Begin's) with its token. */
static void script_begin_join(struct buf *b, int nconns, int key)
{
	put(b, 4, 0, D_BEGIN, 2, key);
	for (int i = 1; i < nconns; i++)
		put(b, 6, i, D_JOIN, 0, 0, 0, 0);
}

static int dispatch_commits(const char *dir)
{
	struct buf a = { .n = 0 }, two = { .n = 0 }, hand = { .n = 0 }, no = { .n = 0 },
		   ro = { .n = 0 };

	script_start(&a, 2, AUTO_YES | AUTO_ACK);
	script_begin_join(&a, 2, 0);
	put(&a, 6, 0, D_COMMIT, 0, 0, D_STATUS, 0);
	script_start(&two, 3, AUTO_YES | AUTO_ACK);
	script_begin_join(&two, 3, 1); /* key k1 */
	put(&two, 6, 0, D_COMMIT, 0, 0, D_STATUS, 0);
	script_start(&hand, 2, 0);
	script_begin_join(&hand, 2, 2); /* key k2 */
	put(&hand, 3, 0, D_COMMIT, 0);
	put(&hand, 5, 1, D_VOTE, 0, 1, 0); /* YES */
	put(&hand, 9, 1, D_ACK, 0, 1, D_STATUS, 0, 0, D_STATUS, 0);
	script_start(&no, 3, AUTO_NO | AUTO_ACK);
	script_begin_join(&no, 3, 0);
	put(&no, 6, 0, D_COMMIT, 0, 0, D_STATUS, 0);
	script_start(&ro, 2, AUTO_READ_ONLY);
	script_begin_join(&ro, 2, 0);
	put(&ro, 6, 0, D_COMMIT, 0, 0, D_STATUS, 0);
	return save(dir, "fuzz_coord_dispatch", "commit.bin", &a) ||
	       save(dir, "fuzz_coord_dispatch", "commit_two_key.bin", &two) ||
	       save(dir, "fuzz_coord_dispatch", "commit_by_hand.bin", &hand) ||
	       save(dir, "fuzz_coord_dispatch", "vote_no.bin", &no) ||
	       save(dir, "fuzz_coord_dispatch", "read_only.bin", &ro);
}

static int dispatch_refused(const char *dir)
{
	struct buf ab = { .n = 0 }, bad = { .n = 0 }, deny = { .n = 0 }, late = { .n = 0 };

	script_start(&ab, 2, AUTO_YES);
	script_begin_join(&ab, 2, 0);
	put(&ab, 7, 0, D_ABORT, 0, 1, 0, D_STATUS, 0);
	put(&ab, 3, 1, D_STATUS, 0);
	script_start(&bad, 4, 0);
	for (int body = 0; body < 15; body++) /* every body a coordinator refuses */
		put(&bad, 6, 1, D_OTHER, body, 0, 1, D_RECONNECT);
	put(&bad, 8, 2, D_GARBAGE, 5, 1, 2, 3, 4, 5);
	put(&bad, 5, 3, D_BAD_FRAME, 0, 3, D_RECONNECT);
	put(&bad, 6, 3, D_BAD_FRAME, 1, 0, 3, D_RECONNECT);
	put(&bad, 9, 3, D_BAD_FRAME, 2, 2, 0xff, 0xff, 0xff, 3, D_RECONNECT);
	put(&bad, 3, 3, D_PARTIAL, 5);
	script_start(&deny, 3, AUTO_YES);
	deny.b[0] = 4 - 2; /* a fourth connection, another client */
	script_begin_join(&deny, 3, 0);
	put(&deny, 7, 3, D_HELLO_CLIENT, 0, 0, 3, D_COMMIT, 0); /* another client's Commit */
	put(&deny, 6, 2, D_JOIN, 0, 0, 0, 3);                   /* a wrong token */
	put(&deny, 6, 1, D_HELLO_PART, 0, 6, 1, 0);             /* p0 with another id */
	put(&deny, 6, 2, D_HELLO_PART, 0, 0, 0, 0);             /* incarnation 0 */
	put(&deny, 6, 0, D_COMMIT, 0, 0, D_STATUS, 0);
	/* p0 votes YES, p1 never does: the prepare timeout aborts; then a commit whose
	 * Decision is not acked and is resent while the harness waits. */
	script_start(&late, 3, 0);
	script_begin_join(&late, 3, 0);
	put(&late, 8, 0, D_COMMIT, 0, 1, D_VOTE, 0, 1, 0);
	put(&late, 6, 0, D_WAIT, 3, 0, D_WAIT, 2); /* 9 ms: past the prepare timeout */
	put(&late, 5, 0, D_STATUS, 0, 2, D_CLOSE);
	put(&late, 4, 0, D_BEGIN, 2, 0);
	put(&late, 6, 1, D_JOIN, 1, 0, 0, 0);
	put(&late, 8, 0, D_COMMIT, 1, 1, D_VOTE, 1, 1, 0);
	put(&late, 6, 0, D_WAIT, 0, 1, D_ACK, 1);
	if (save(dir, "fuzz_coord_dispatch", "timeouts.bin", &late))
		return -1;
	return save(dir, "fuzz_coord_dispatch", "abort.bin", &ab) ||
	       save(dir, "fuzz_coord_dispatch", "refused_bodies.bin", &bad) ||
	       save(dir, "fuzz_coord_dispatch", "denied.bin", &deny);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	return frames(argv[1]) || coord(argv[1]) || part(argv[1]) || dispatch_commits(argv[1]) ||
			       dispatch_refused(argv[1]) ? 1 : 0;
}
