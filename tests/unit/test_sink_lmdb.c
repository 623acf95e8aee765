/*
 * test_sink_lmdb.c - the LMDB sink (participant/src/sink_lmdb.c) through its public
 * API, plus the tpc_sink handle (sink.c) and the error names (common.c).
 *
 * Each test gets a fresh temporary folder (struct tpc_tmpdir, removed in teardown); the
 * sink lives in its path, a "sink" subfolder that tpc_sink_lmdb_open creates. The
 * read-only helpers (dump, applied_count) are only called while no handle is open in this process, or from a
 * test where the open handle lives in a forked child: LMDB forbids opening one
 * environment twice in the same process. Nothing sleeps: the child and the test
 * hand over through pipes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <lmdb.h>

#include "proc.h"
#include "tpc/sink_lmdb.h"

#define MAX_DUMP 64

struct dumped {
	size_t n;
	char key[MAX_DUMP][32];
	char value[MAX_DUMP][32];
	tpc_txid txid[MAX_DUMP];
	int stop_after; /* 0: never stop */
};

/* ------------------------------------------------------------------ helpers */

static int setup(void **state)
{
	*state = tpc_tmpdir_new("sink");
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	tpc_tmpdir_free(*state);
	return 0;
}

static tpc_sink *open_sink(const struct tpc_tmpdir *f)
{
	int err = 1;
	tpc_sink *s = tpc_sink_lmdb_open(f->path, 0, &err);

	assert_non_null(s);
	assert_int_equal(err, 0);
	return s;
}

static tpc_write wr(const char *key, const char *value)
{
	tpc_write w = { key, strlen(key), value, strlen(value) };

	return w;
}

static void commit_one(tpc_sink *s, tpc_txid txid, const tpc_write *w, size_t n)
{
	tpc_sink_txn t = { txid, w, n };

	assert_int_equal(tpc_sink_commit(s, &t, 1), 0);
}

/* Assert that @p key holds @p value, written by @p txid. */
static void expect_stored(tpc_sink *s, const char *key, const char *value, tpc_txid txid)
{
	void *v = NULL;
	size_t len = 0;
	tpc_txid got = 0;

	assert_int_equal(tpc_sink_lmdb_get(s, key, strlen(key), &v, &len, &got), 1);
	assert_int_equal(len, strlen(value));
	assert_memory_equal(v, value, len);
	assert_int_equal(got, txid);
	free(v);
}

static void expect_absent(tpc_sink *s, const char *key)
{
	void *v = (void *)1;
	size_t len = 1;

	assert_int_equal(tpc_sink_lmdb_get(s, key, strlen(key), &v, &len, NULL), 0);
	assert_null(v);
	assert_int_equal(len, 0);
}

static uint64_t applied_count(const struct tpc_tmpdir *f)
{
	uint64_t n = 12345;

	assert_int_equal(tpc_sink_lmdb_applied_count(f->path, &n), 0);
	return n;
}

static int collect(void *arg, const void *key, size_t key_len, const void *value,
		   size_t value_len, tpc_txid txid)
{
	struct dumped *d = arg;

	assert_true(d->n < MAX_DUMP);
	assert_true(key_len < sizeof(d->key[0]) && value_len < sizeof(d->value[0]));
	memcpy(d->key[d->n], key, key_len);
	d->key[d->n][key_len] = '\0';
	memcpy(d->value[d->n], value, value_len);
	d->value[d->n][value_len] = '\0';
	d->txid[d->n] = txid;
	d->n++;
	return d->stop_after && d->n == (size_t)d->stop_after ? 77 : 0;
}

/* ------------------------------------------------------------------- commit */

static void test_lmdb_commit_then_get_returns_value_and_txid(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	tpc_write w[] = { wr("alpha", "1"), wr("beta", ""), wr("gamma", "three") };
	void *v;
	size_t len;

	assert_int_equal(tpc_sink_applied(s, 42), 0);
	commit_one(s, 42, w, 3);
	expect_stored(s, "alpha", "1", 42);
	expect_stored(s, "beta", "", 42); /* a zero-length value is a value */
	expect_stored(s, "gamma", "three", 42);
	expect_absent(s, "delta");
	assert_int_equal(tpc_sink_applied(s, 42), 1);
	assert_int_equal(tpc_sink_lmdb_get(s, "", 0, &v, &len, NULL), -EINVAL);
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 1);
}

static void test_lmdb_same_txid_twice_applies_once(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	tpc_write first[] = { wr("k", "v1") };
	tpc_write second[] = { wr("k", "CHANGED"), wr("extra", "x") };

	commit_one(s, 7, first, 1);
	commit_one(s, 7, first, 1);
	commit_one(s, 7, second, 2); /* different values, same txid: still a no-op */
	expect_stored(s, "k", "v1", 7);
	expect_absent(s, "extra");
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 1);
}

static void test_lmdb_several_txns_in_one_commit_call(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	tpc_write a[] = { wr("a", "1") }, b[] = { wr("b", "2"), wr("a", "overwritten") };
	tpc_sink_txn t[] = { { 10, a, 1 }, { 11, b, 2 }, { 12, NULL, 0 } };

	assert_int_equal(tpc_sink_commit(s, t, 3), 0);
	expect_stored(s, "a", "overwritten", 11); /* later txns of a batch win */
	expect_stored(s, "b", "2", 11);
	assert_int_equal(tpc_sink_applied(s, 10), 1);
	assert_int_equal(tpc_sink_applied(s, 11), 1);
	assert_int_equal(tpc_sink_applied(s, 12), 1); /* no writes, still remembered */
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 3);
}

static void test_lmdb_batch_with_applied_txid_applies_only_new_ones(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	tpc_write old[] = { wr("a", "old") };
	tpc_write again[] = { wr("a", "again"), wr("b", "again") };
	tpc_write fresh[] = { wr("c", "fresh") };
	tpc_sink_txn t[] = { { 1, again, 2 }, { 2, fresh, 1 } };

	commit_one(s, 1, old, 1);
	assert_int_equal(tpc_sink_commit(s, t, 2), 0);
	expect_stored(s, "a", "old", 1);
	expect_absent(s, "b");
	expect_stored(s, "c", "fresh", 2);
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 2);
}

static void test_lmdb_txid_repeated_within_one_call_applies_first(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	tpc_write one[] = { wr("d", "first") }, two[] = { wr("d", "second") };
	tpc_sink_txn t[] = { { 3, one, 1 }, { 3, two, 1 } };

	assert_int_equal(tpc_sink_commit(s, t, 2), 0);
	expect_stored(s, "d", "first", 3);
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 1);
}

static void test_lmdb_failed_commit_applies_nothing(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	char big[600];
	tpc_write ok[] = { wr("fine", "1") };
	tpc_write bad[] = { { big, sizeof(big), "x", 1 } };
	tpc_sink_txn t[] = { { 5, ok, 1 }, { 6, bad, 1 } };

	memset(big, 'k', sizeof(big));
	assert_true(tpc_sink_commit(s, t, 2) < 0);
	expect_absent(s, "fine");
	assert_int_equal(tpc_sink_applied(s, 5), 0);
	assert_int_equal(tpc_sink_applied(s, 6), 0);
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 0);
}

static void test_lmdb_map_full_fails_whole_commit_with_named_code(void **state)
{
	struct tpc_tmpdir *f = *state;
	int err;
	tpc_sink *s = tpc_sink_lmdb_open(f->path, 256 * 1024, &err);
	size_t big_len = 1024 * 1024;
	char *big = calloc(1, big_len);
	tpc_write w[] = { { "big", 3, big, big_len } };
	tpc_sink_txn t = { 9, w, 1 };
	int rc;

	assert_non_null(s);
	assert_non_null(big);
	rc = tpc_sink_commit(s, &t, 1);
	assert_int_equal(rc, MDB_MAP_FULL);
	assert_non_null(strstr(tpc_strerror(rc), "MDB_MAP_FULL"));
	assert_int_equal(tpc_sink_applied(s, 9), 0);
	free(big);
	tpc_sink_free(s);
}

/* ------------------------------------------------------------------ prepare */

static int refuse_bad(void *arg, const tpc_write *w)
{
	int *calls = arg;

	(*calls)++;
	return w->key_len >= 3 && memcmp(w->key, "bad", 3) == 0;
}

static void test_lmdb_refuse_callback_votes_no_with_reason(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	int calls = 0;
	char reason[128];
	tpc_write good[] = { wr("good", "1") };
	tpc_write bad[] = { wr("good", "1"), { "bad\n\x01key", 8, "v", 1 } };
	tpc_sink_txn tg = { 1, good, 1 }, tb = { 2, bad, 2 };

	tpc_sink_lmdb_set_refuse(s, refuse_bad, &calls);
	assert_int_equal(tpc_sink_prepare(s, &tg, reason, sizeof(reason)), 0);
	assert_int_equal(tpc_sink_prepare(s, &tb, reason, sizeof(reason)), TPC_EREFUSED);
	assert_true(calls >= 2);
	assert_non_null(strstr(reason, "bad\\x0a\\x01key")); /* names the key, printable */
	for (const char *p = reason; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	assert_non_null(strstr(tpc_strerror(TPC_EREFUSED), "refused"));

	tpc_sink_lmdb_set_refuse(s, NULL, NULL);
	tpc_sink_abort(s, 1); /* frees "good" (held by the prepared txid 1) */
	assert_int_equal(tpc_sink_prepare(s, &tb, reason, sizeof(reason)), 0);
	tpc_sink_free(s);
}

/* Isolation (tpc/sink_lmdb.h): a key held by a prepared, undecided transaction refuses
 * another's prepare, naming the key and the holder; the holder's commit or abort frees
 * it; the holder itself may be prepared again. */
static void test_lmdb_prepare_refuses_a_key_held_by_another_prepared_txn(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	char reason[256] = "";
	tpc_write a[] = { wr("acct:1", "10"), wr("acct:2", "20") };
	tpc_write b[] = { wr("other", "x"), wr("acct:2", "25") };
	tpc_write c[] = { wr("acct:1", "11") };
	tpc_sink_txn t1 = { 1, a, 2 }, t2 = { 2, b, 2 }, t3 = { 3, c, 1 };

	assert_int_equal(tpc_sink_prepare(s, &t1, reason, sizeof(reason)), 0);
	assert_int_equal(tpc_sink_prepare(s, &t1, reason, sizeof(reason)), 0); /* its own */
	assert_int_equal(tpc_sink_prepare(s, &t2, reason, sizeof(reason)), TPC_EREFUSED);
	assert_string_equal(reason, "key \"acct:2\" is held by prepared transaction 1, not yet "
				    "decided");
	/* a refused prepare holds nothing: "other" stays free */
	tpc_write o[] = { wr("other", "y") };
	tpc_sink_txn t4 = { 4, o, 1 };
	assert_int_equal(tpc_sink_prepare(s, &t4, reason, sizeof(reason)), 0);
	tpc_sink_abort(s, 4);

	/* txid 1 commits: its keys are free again */
	assert_int_equal(tpc_sink_commit(s, &t1, 1), 0);
	assert_int_equal(tpc_sink_prepare(s, &t2, reason, sizeof(reason)), 0);
	/* txid 2 aborts: acct:2 is free; acct:1 was never its */
	assert_int_equal(tpc_sink_prepare(s, &t3, reason, sizeof(reason)), 0);
	tpc_write d[] = { wr("acct:2", "26") };
	tpc_sink_txn t5 = { 5, d, 1 };
	assert_int_equal(tpc_sink_prepare(s, &t5, reason, sizeof(reason)), TPC_EREFUSED);
	tpc_sink_abort(s, 2);
	assert_int_equal(tpc_sink_prepare(s, &t5, reason, sizeof(reason)), 0);
	tpc_sink_free(s); /* still held by 3 and 5: freed with the sink */
}

/* committing() (the COMMIT decision reached the participant) frees the keys at once: the
 * next transaction on the same key prepares, and its commit comes after. */
static void test_lmdb_committing_frees_the_keys_before_the_commit(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	char reason[256];
	tpc_write a[] = { wr("counter", "1") }, b[] = { wr("counter", "2") };
	tpc_sink_txn t1 = { 1, a, 1 }, t2 = { 2, b, 1 };

	assert_int_equal(tpc_sink_prepare(s, &t1, reason, sizeof(reason)), 0);
	assert_int_equal(tpc_sink_prepare(s, &t2, reason, sizeof(reason)), TPC_EREFUSED);
	tpc_sink_committing(s, 1);
	assert_int_equal(tpc_sink_prepare(s, &t2, reason, sizeof(reason)), 0);
	tpc_sink_txn both[] = { t1, t2 };
	assert_int_equal(tpc_sink_commit(s, both, 2), 0);
	void *v = NULL;
	size_t len = 0;
	tpc_txid by = 0;
	assert_int_equal(tpc_sink_lmdb_get(s, "counter", 7, &v, &len, &by), 1);
	assert_int_equal(by, 2);
	free(v);
	tpc_sink_free(s);
}

/* A failed commit decides nothing: the keys stay held until the retry succeeds. */
static void test_lmdb_failed_commit_keeps_the_keys_held(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	char reason[256];
	tpc_write a[] = { wr("k", "1") };
	tpc_write bad[] = { { "", 0, "v", 1 } }; /* commit() refuses an empty key */
	tpc_sink_txn t1 = { 1, a, 1 }, t2 = { 2, a, 1 }, tb[] = { { 1, a, 1 }, { 9, bad, 1 } };

	assert_int_equal(tpc_sink_prepare(s, &t1, reason, sizeof(reason)), 0);
	assert_true(tpc_sink_commit(s, tb, 2) < 0);
	assert_int_equal(tpc_sink_prepare(s, &t2, reason, sizeof(reason)), TPC_EREFUSED);
	assert_int_equal(tpc_sink_commit(s, &t1, 1), 0);
	assert_int_equal(tpc_sink_prepare(s, &t2, reason, sizeof(reason)), 0);
	tpc_sink_free(s);
}

static void test_lmdb_prepare_refuses_oversized_or_empty_key(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	char key[512], reason[128];
	tpc_write w = { key, sizeof(key), "v", 1 };
	tpc_sink_txn t = { 1, &w, 1 };

	memset(key, 'k', sizeof(key));
	assert_int_equal(tpc_sink_prepare(s, &t, reason, sizeof(reason)), TPC_EREFUSED);
	assert_non_null(strstr(reason, "512"));
	w.key_len = 511;
	assert_int_equal(tpc_sink_prepare(s, &t, reason, sizeof(reason)), 0);
	assert_int_equal(tpc_sink_commit(s, &t, 1), 0); /* a prepared 511-byte key commits */
	w.key_len = 0;
	assert_int_equal(tpc_sink_prepare(s, &t, reason, sizeof(reason)), TPC_EREFUSED);
	w.key_len = 1;
	w.value_len = (16u << 20) + 1;
	assert_int_equal(tpc_sink_prepare(s, &t, reason, sizeof(reason)), TPC_EREFUSED);
	/* the reason buffer may be absent */
	assert_int_equal(tpc_sink_prepare(s, &t, NULL, 0), TPC_EREFUSED);
	tpc_sink_free(s);
}

/* ----------------------------------------------------------- forget (D9) */

/* The participant's order: commit txid i, then (once its record drop is durable) forget
 * it, so the forget rides with commit i + 1. The table stops growing; the data stays. */
static void test_lmdb_forget_rides_with_the_next_commit_and_the_table_stops_growing(
	void **state)
{
	struct tpc_tmpdir *f = *state;
	enum { N = 3000 };
	tpc_sink *s = open_sink(f);
	char key[16], val[16];

	for (tpc_txid id = 1; id <= N; id++) {
		snprintf(key, sizeof(key), "k%llu", (unsigned long long)(id % 10));
		snprintf(val, sizeof(val), "v%llu", (unsigned long long)id);
		commit_one(s, id, (tpc_write[]){ wr(key, val) }, 1);
		if (id > 1)
			assert_int_equal(tpc_sink_applied(s, id - 1), 0); /* went with this commit */
		assert_int_equal(tpc_sink_applied(s, id), 1);
		tpc_sink_forget(s, &id, 1);
		assert_int_equal(tpc_sink_applied(s, id), 1); /* held, not written on its own */
	}
	expect_stored(s, "k0", "v3000", 3000);
	expect_stored(s, "k9", "v2999", 2999);
	tpc_sink_free(s); /* close writes what is still held */
	assert_int_equal(applied_count(f), 0);
}

static void test_lmdb_forget_keeps_the_data_and_unknown_txids_are_fine(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	tpc_txid ids[] = { 1, 2, 999 }; /* 999 was never applied */

	commit_one(s, 1, (tpc_write[]){ wr("a", "1") }, 1);
	commit_one(s, 2, (tpc_write[]){ wr("b", "2") }, 1);
	tpc_sink_forget(s, ids, 3);
	commit_one(s, 3, (tpc_write[]){ wr("c", "3") }, 1);
	assert_int_equal(tpc_sink_applied(s, 1), 0);
	assert_int_equal(tpc_sink_applied(s, 2), 0);
	assert_int_equal(tpc_sink_applied(s, 3), 1);
	expect_stored(s, "a", "1", 1);
	expect_stored(s, "b", "2", 2);
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 1);
}

static void test_lmdb_failed_commit_keeps_the_held_forgets_for_the_next(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	char big[600];
	tpc_txid one = 1;
	tpc_sink_txn bad = { 2, (tpc_write[]){ { big, sizeof(big), "x", 1 } }, 1 };

	memset(big, 'k', sizeof(big));
	commit_one(s, 1, (tpc_write[]){ wr("a", "1") }, 1);
	tpc_sink_forget(s, &one, 1);
	assert_true(tpc_sink_commit(s, &bad, 1) < 0); /* nothing of it, forgets included */
	assert_int_equal(tpc_sink_applied(s, 1), 1);
	commit_one(s, 3, (tpc_write[]){ wr("c", "3") }, 1);
	assert_int_equal(tpc_sink_applied(s, 1), 0);
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 1);
}

/* With no commit coming, the held forgets are written on their own once many wait. */
static void test_lmdb_many_forgets_without_commits_are_written_on_their_own(void **state)
{
	struct tpc_tmpdir *f = *state;
	enum { N = 10000, BATCH = 1000 };
	static tpc_sink_txn t[BATCH];
	static tpc_txid ids[N];
	tpc_write w = wr("k", "v");
	tpc_sink *s = open_sink(f);

	for (size_t b = 0; b < N / BATCH; b++) {
		for (size_t i = 0; i < BATCH; i++)
			t[i] = (tpc_sink_txn){ 1 + b * BATCH + i, &w, 1 };
		assert_int_equal(tpc_sink_commit(s, t, BATCH), 0);
	}
	for (size_t i = 0; i < N; i++)
		ids[i] = 1 + i;
	tpc_sink_forget(s, ids, N);
	assert_int_equal(tpc_sink_applied(s, 1), 0); /* written: the holder was full */
	assert_int_equal(tpc_sink_applied(s, N), 1); /* the last ones are still held */
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 0);
}

/* ----------------------------------------------------------- reopen, dump */

static void test_lmdb_reopen_keeps_data_and_applied_set(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	tpc_write w[] = { wr("x", "1"), wr("y", "2") };
	struct stat st;

	commit_one(s, 100, w, 2);
	tpc_sink_free(s);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	s = open_sink(f);
	expect_stored(s, "x", "1", 100);
	expect_stored(s, "y", "2", 100);
	assert_int_equal(tpc_sink_applied(s, 100), 1);
	commit_one(s, 100, (tpc_write[]){ wr("x", "later") }, 1);
	expect_stored(s, "x", "1", 100);
	tpc_sink_free(s);
}

static void test_lmdb_dump_walks_keys_in_order_with_txids(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);
	struct dumped d = { 0 };

	commit_one(s, 2, (tpc_write[]){ wr("m", "2"), wr("b", "2") }, 2);
	commit_one(s, 3, (tpc_write[]){ wr("z", "3"), wr("a", "3"), wr("m", "3m") }, 3);
	tpc_sink_free(s);

	assert_int_equal(tpc_sink_lmdb_dump(f->path, collect, &d), 0);
	assert_int_equal(d.n, 4);
	assert_string_equal(d.key[0], "a");
	assert_string_equal(d.key[1], "b");
	assert_string_equal(d.key[2], "m");
	assert_string_equal(d.key[3], "z");
	assert_int_equal(d.txid[0], 3);
	assert_int_equal(d.txid[1], 2);
	assert_int_equal(d.txid[2], 3);
	assert_string_equal(d.value[2], "3m");

	memset(&d, 0, sizeof(d));
	d.stop_after = 2;
	assert_int_equal(tpc_sink_lmdb_dump(f->path, collect, &d), 77);
	assert_int_equal(d.n, 2);
}

/* Child: open the sink, commit txid 1, report "ready", commit txid 2 once told,
 * report again, wait for "bye". Exits 0 on success. Uses no cmocka asserts. */
static void child_holds_sink(const char *dir, int to_parent, int from_parent)
{
	int err;
	char c;
	tpc_sink *s = tpc_sink_lmdb_open(dir, 0, &err);
	tpc_write w1 = { "k1", 2, "v1", 2 }, w2 = { "k2", 2, "v2", 2 };
	tpc_sink_txn t1 = { 1, &w1, 1 }, t2 = { 2, &w2, 1 };

	if (!s || tpc_sink_commit(s, &t1, 1) != 0 || write(to_parent, "r", 1) != 1)
		_exit(1);
	if (read(from_parent, &c, 1) != 1 || tpc_sink_commit(s, &t2, 1) != 0 ||
	    write(to_parent, "r", 1) != 1)
		_exit(2);
	if (read(from_parent, &c, 1) != 1)
		_exit(3);
	tpc_sink_free(s);
	_exit(0);
}

static void test_lmdb_dump_works_while_another_process_has_it_open(void **state)
{
	struct tpc_tmpdir *f = *state;
	int up[2], down[2], status;
	struct dumped d = { 0 };
	uint64_t n = 0;
	char c;
	pid_t pid;

	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_holds_sink(f->path, up[1], down[0]);

	assert_int_equal(read(up[0], &c, 1), 1);
	assert_int_equal(tpc_sink_lmdb_dump(f->path, collect, &d), 0);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.key[0], "k1");
	assert_int_equal(tpc_sink_lmdb_applied_count(f->path, &n), 0);
	assert_int_equal(n, 1);

	assert_int_equal(write(down[1], "c", 1), 1); /* the writer goes on meanwhile */
	assert_int_equal(read(up[0], &c, 1), 1);
	memset(&d, 0, sizeof(d));
	assert_int_equal(tpc_sink_lmdb_dump(f->path, collect, &d), 0);
	assert_int_equal(d.n, 2);
	assert_string_equal(d.key[1], "k2");
	assert_int_equal(d.txid[1], 2);

	assert_int_equal(write(down[1], "q", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
}

static void test_lmdb_applied_count_counts_distinct_txids(void **state)
{
	struct tpc_tmpdir *f = *state;
	tpc_sink *s = open_sink(f);

	for (tpc_txid id = 1; id <= 25; id++)
		commit_one(s, id, (tpc_write[]){ wr("same-key", "v") }, 1);
	commit_one(s, 5, (tpc_write[]){ wr("other", "v") }, 1);
	tpc_sink_free(s);
	assert_int_equal(applied_count(f), 25);
}

static void test_lmdb_dump_of_missing_dir_is_enoent(void **state)
{
	struct tpc_tmpdir *f = *state;
	struct dumped d = { 0 };
	uint64_t n = 9;
	char lock[PATH_MAX + 48];

	assert_int_equal(tpc_sink_lmdb_dump(f->path, collect, &d), -ENOENT);
	assert_int_equal(tpc_sink_lmdb_applied_count(f->path, &n), -ENOENT);
	/* an existing but empty folder is not a sink either, and stays empty */
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(tpc_sink_lmdb_dump(f->path, collect, &d), -ENOENT);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", f->path);
	assert_int_equal(access(lock, F_OK), -1);
	assert_int_equal(d.n, 0);
	assert_non_null(strstr(tpc_strerror(-ENOENT), "No such file"));
}

/* ------------------------------------------------------- the sink handle */

static int noop_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t len)
{
	return 0;
}

static int noop_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	return 0;
}

static void count_destroy(void *self)
{
	(*(int *)self)++;
}

static void test_sink_handle_without_applied_says_enotsup(void **state)
{
	static const tpc_sink_ops ops = { .prepare = noop_prepare, .commit = noop_commit,
					  .destroy = count_destroy };
	static const tpc_sink_ops no_commit = { .prepare = noop_prepare };
	int destroyed = 0;
	tpc_sink *s = tpc_sink_new(&ops, &destroyed);

	(void)state;
	assert_non_null(s);
	assert_int_equal(tpc_sink_applied(s, 1), -ENOTSUP);
	tpc_sink_abort(s, 1); /* optional: a no-op */
	tpc_sink_free(s);
	assert_int_equal(destroyed, 1);
	tpc_sink_free(NULL);
	assert_null(tpc_sink_new(&no_commit, NULL));
	assert_null(tpc_sink_new(NULL, NULL));
	/* an LMDB helper given another kind of sink refuses it */
	s = tpc_sink_new(&ops, &destroyed);
	assert_non_null(s);
	{
		void *v;
		size_t len;

		assert_int_equal(tpc_sink_lmdb_get(s, "k", 1, &v, &len, NULL), -EINVAL);
	}
	tpc_sink_free(s);
}

static void test_error_and_state_names(void **state)
{
	(void)state;
	assert_string_equal(tpc_strerror(0), "success");
	assert_non_null(strstr(tpc_strerror(-EINVAL), "Invalid argument"));
	assert_non_null(strstr(tpc_strerror(TPC_ESTALE), "epoch"));
	assert_non_null(tpc_strerror(-999999));
	assert_non_null(tpc_strerror(12));
	assert_string_equal(tpc_outcome_str(TPC_OUTCOME_COMMITTED), "COMMITTED");
	assert_string_equal(tpc_outcome_str(TPC_OUTCOME_UNKNOWN), "UNKNOWN");
	assert_string_equal(tpc_status_str(TPC_STATUS_PENDING), "PENDING");
	assert_string_equal(tpc_status_str(TPC_STATUS_ABORTED), "ABORTED");
	assert_int_equal(strchr(tpc_version(), '.') != NULL, 1);
	for (int c = TPC_ESTATE; c <= TPC_EPROTO; c++)
		assert_string_not_equal(tpc_strerror(c), "unknown error");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_lmdb_commit_then_get_returns_value_and_txid),
		T(test_lmdb_same_txid_twice_applies_once),
		T(test_lmdb_several_txns_in_one_commit_call),
		T(test_lmdb_batch_with_applied_txid_applies_only_new_ones),
		T(test_lmdb_txid_repeated_within_one_call_applies_first),
		T(test_lmdb_failed_commit_applies_nothing),
		T(test_lmdb_map_full_fails_whole_commit_with_named_code),
		T(test_lmdb_refuse_callback_votes_no_with_reason),
		T(test_lmdb_prepare_refuses_oversized_or_empty_key),
		T(test_lmdb_prepare_refuses_a_key_held_by_another_prepared_txn),
		T(test_lmdb_failed_commit_keeps_the_keys_held),
		T(test_lmdb_committing_frees_the_keys_before_the_commit),
		T(test_lmdb_forget_rides_with_the_next_commit_and_the_table_stops_growing),
		T(test_lmdb_forget_keeps_the_data_and_unknown_txids_are_fine),
		T(test_lmdb_failed_commit_keeps_the_held_forgets_for_the_next),
		T(test_lmdb_many_forgets_without_commits_are_written_on_their_own),
		T(test_lmdb_reopen_keeps_data_and_applied_set),
		T(test_lmdb_dump_walks_keys_in_order_with_txids),
		T(test_lmdb_dump_works_while_another_process_has_it_open),
		T(test_lmdb_applied_count_counts_distinct_txids),
		T(test_lmdb_dump_of_missing_dir_is_enoent),
		cmocka_unit_test(test_sink_handle_without_applied_says_enotsup),
		cmocka_unit_test(test_error_and_state_names),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
