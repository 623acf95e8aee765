/*
 * test_coord_log.c - the coordinator's LMDB log (coordinator/log_store.c): what
 * survives a reopen, COMMIT/COMPLETE/SWEEP semantics, load order, corrupt records,
 * unknown formats, and all-or-nothing batches.
 *
 * Each test gets a fresh mkdtemp folder under /tmp, removed afterwards. Raw LMDB access
 * (to plant corrupt records) happens only while the store is closed.
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

#include <cmocka.h>
#include <lmdb.h>

#include "log_store.h"
#include "proc.h"

struct fix {
	char dir[PATH_MAX];
	struct coord_log log;
	int open;
};

/* ------------------------------------------------------------------ helpers */

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tpc_tmpdir_make(f->dir, sizeof(f->dir)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (f->open)
		f->log.ops->close(f->log.self);
	tpc_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void open_log(struct fix *f)
{
	char err[256] = "";
	int rc = coord_log_lmdb_open(&f->log, f->dir, 0, err, sizeof(err));

	if (rc)
		fail_msg("open %s: %d %s", f->dir, rc, err);
	f->open = 1;
}

static void close_log(struct fix *f)
{
	f->log.ops->close(f->log.self);
	f->open = 0;
}

static void reopen(struct fix *f)
{
	close_log(f);
	open_log(f);
}

static struct coord_rec commit_rec(uint64_t txid, uint64_t wall, const char *key,
				   const char *const *parts, uint32_t nparts)
{
	struct coord_rec r = { .type = COORD_REC_COMMIT, .txid = txid, .wall_ms = wall,
			       .key = key, .key_len = key ? strlen(key) : 0,
			       .nparts = nparts, .parts = parts };
	return r;
}

static struct coord_rec complete_rec(uint64_t txid, uint64_t wall)
{
	struct coord_rec r = { .type = COORD_REC_COMPLETE, .txid = txid, .wall_ms = wall };
	return r;
}

static struct coord_rec sweep_rec(uint64_t outcome_before, uint64_t keys_before,
				  uint32_t limit)
{
	struct coord_rec r = { .type = COORD_REC_SWEEP,
			       .sweep_outcome_before_ms = outcome_before,
			       .sweep_keys_before_ms = keys_before, .sweep_limit = limit };
	return r;
}

/* Link recs[0..n) through item.next and write them as one batch. */
static int write_recs(struct fix *f, struct coord_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		recs[i].item.next = i + 1 < n ? &recs[i + 1].item : NULL;
	return f->log.ops->write_batch(f->log.self, recs, n);
}

static void write_one(struct fix *f, struct coord_rec r)
{
	assert_int_equal(write_recs(f, &r, 1), 0);
}

static const char *const AB[] = { "alpha", "beta" };

/* Decisions seen by load_decisions, copied out. */
struct seen {
	size_t n;
	uint64_t txid[2048];
	uint64_t wall[2048];
	uint32_t nparts[2048];
	char *parts[2048][4];
	int stop_after; /* return 7 after this many (0: never) */
};

static int collect(void *arg, const struct coord_decision *d)
{
	struct seen *s = arg;

	assert_true(s->n < 2048);
	s->txid[s->n] = d->txid;
	s->wall[s->n] = d->wall_ms;
	s->nparts[s->n] = d->nparts;
	for (uint32_t i = 0; i < d->nparts && i < 4; i++)
		s->parts[s->n][i] = strdup(d->parts[i]);
	s->n++;
	return s->stop_after && s->n == (size_t)s->stop_after ? 7 : 0;
}

static void seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		for (uint32_t j = 0; j < s->nparts[i] && j < 4; j++)
			free(s->parts[i][j]);
	free(s);
}

static struct seen *load(struct fix *f, int *rc)
{
	struct seen *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	*rc = f->log.ops->load_decisions(f->log.self, collect, s);
	return s;
}

static void assert_loaded_txids(struct fix *f, const uint64_t *want, size_t n)
{
	int rc;
	struct seen *s = load(f, &rc);

	assert_int_equal(rc, 0);
	assert_int_equal(s->n, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(s->txid[i], want[i]);
	seen_free(s);
}

static uint64_t count(struct fix *f, int which)
{
	uint64_t d = 0, k = 0, bytes = 0;

	assert_int_equal(f->log.ops->stats(f->log.self, &d, &k, &bytes), 0);
	assert_true(bytes > 0);
	return which ? k : d;
}

/* Put one raw key/value into a named database; the store must be closed. */
static void raw_put(struct fix *f, const char *db, const void *key, size_t klen,
		    const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* -------------------------------------------------------------------- tests */

static void test_log_reopen_keeps_meta_and_decisions(void **state)
{
	struct fix *f = *state;
	uint64_t id = 99, epoch = 99;

	open_log(f);
	assert_int_equal(f->log.ops->read_meta(f->log.self, &id, &epoch), 0);
	assert_int_equal(id, 0);
	assert_int_equal(epoch, 0);
	assert_int_equal(f->log.ops->write_meta(f->log.self, 0x1122334455667788ull, 7), 0);
	write_one(f, commit_rec(5, 1234, NULL, AB, 2));
	reopen(f);

	assert_int_equal(f->log.ops->read_meta(f->log.self, &id, &epoch), 0);
	assert_int_equal(id, 0x1122334455667788ull);
	assert_int_equal(epoch, 7);
	int rc;
	struct seen *s = load(f, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(s->n, 1);
	assert_int_equal(s->txid[0], 5);
	assert_int_equal(s->wall[0], 1234);
	assert_int_equal(s->nparts[0], 2);
	assert_string_equal(s->parts[0][0], "alpha");
	assert_string_equal(s->parts[0][1], "beta");
	seen_free(s);

	/* A new epoch overwrites the old one. */
	assert_int_equal(f->log.ops->write_meta(f->log.self, 0x1122334455667788ull, 8), 0);
	reopen(f);
	assert_int_equal(f->log.ops->read_meta(f->log.self, &id, &epoch), 0);
	assert_int_equal(epoch, 8);
}

static void test_log_commit_with_key_creates_key_record(void **state)
{
	struct fix *f = *state;
	struct coord_key_info info = { 0 };

	open_log(f);
	write_one(f, commit_rec(10, 5000, "order-17", AB, 2));
	write_one(f, commit_rec(11, 6000, NULL, AB, 1));

	assert_int_equal(f->log.ops->lookup_key(f->log.self, "order-17", 8, &info), 1);
	assert_int_equal(info.txid, 10);
	assert_int_equal(info.wall_ms, 5000);
	assert_int_equal(info.committed, 1);
	assert_int_equal(f->log.ops->lookup_key(f->log.self, "order-18", 8, &info), 0);
	assert_int_equal(f->log.ops->lookup_key(f->log.self, "order-1", 7, &info), 0);
	assert_int_equal(f->log.ops->lookup_key(f->log.self, NULL, 0, &info), -EINVAL);
	assert_int_equal(count(f, 1), 1);
	assert_int_equal(count(f, 0), 2);

	reopen(f);
	assert_int_equal(f->log.ops->lookup_key(f->log.self, "order-17", 8, &info), 1);
	assert_int_equal(info.txid, 10);
}

static void test_log_complete_turns_decision_into_tombstone(void **state)
{
	static const uint64_t live[] = { 2 };
	struct fix *f = *state;

	open_log(f);
	write_one(f, commit_rec(1, 100, NULL, AB, 2));
	write_one(f, commit_rec(2, 100, NULL, AB, 2));
	write_one(f, complete_rec(1, 200));
	write_one(f, complete_rec(99, 200)); /* no record: skipped, not created */

	assert_loaded_txids(f, live, 1);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 1), 1);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 2), 1);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 3), 0);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 99), 0);
	reopen(f);
	assert_loaded_txids(f, live, 1);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 1), 1);
}

static void test_log_sweep_removes_old_tombstones_and_keys_but_not_live_commits(void **state)
{
	static const uint64_t live[] = { 5, 6 };
	static const char *const keys[] = { "k1", "k2", "k3", "k4", "k5", "k6" };
	struct fix *f = *state;
	struct coord_key_info info;

	open_log(f);
	for (uint64_t t = 1; t <= 6; t++)
		write_one(f, commit_rec(t, t <= 3 || t == 5 ? 1000 : 5000, keys[t - 1], AB, 2));
	for (uint64_t t = 1; t <= 3; t++)
		write_one(f, complete_rec(t, 1500));
	write_one(f, complete_rec(4, 5500));
	write_one(f, sweep_rec(2000, 2000, 100));

	for (uint64_t t = 1; t <= 3; t++) /* swept: below the forget horizon now */
		assert_int_equal(f->log.ops->lookup_txid(f->log.self, t), COORD_LOOKUP_FORGOTTEN);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 4), 1); /* young tombstone */
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 5), 1); /* old but live */
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 6), 1);
	assert_loaded_txids(f, live, 2);
	assert_int_equal(count(f, 0), 3);

	for (int i = 0; i < 6; i++) {
		int want = (i + 1 <= 3 || i + 1 == 5) ? 0 : 1;
		assert_int_equal(f->log.ops->lookup_key(f->log.self, keys[i], 2, &info), want);
	}
	assert_int_equal(count(f, 1), 2);
}

static struct coord_rec sweep_pass(struct fix *f, uint64_t before, uint32_t limit)
{
	struct coord_rec r = sweep_rec(before, before, limit);

	assert_int_equal(write_recs(f, &r, 1), 0);
	return r;
}

/* Each pass starts at the oldest entry, deletes at most its limit, and says whether it
 * stopped at the limit; repeating while it does removes every old entry, also when
 * there are many more than one pass's limit and live decisions stand in front. */
static void test_log_sweep_passes_start_at_the_oldest_and_repeat_until_done(void **state)
{
	enum { LIVE = 20, OLD = 50, YOUNG = 5 };
	struct fix *f = *state;
	struct coord_rec recs[LIVE + OLD + YOUNG];
	char keys[LIVE + OLD + YOUNG][8];
	size_t n = 0;

	open_log(f);
	/* LIVE undelivered COMMITs first, then OLD old tombstones (with keys), then YOUNG. */
	for (uint64_t t = 1; t <= LIVE + OLD + YOUNG; t++) {
		snprintf(keys[t - 1], sizeof(keys[0]), "k%02u", (unsigned)t);
		recs[n++] = commit_rec(t, t <= LIVE + OLD ? 10 : 5000, keys[t - 1], AB, 1);
	}
	assert_int_equal(write_recs(f, recs, n), 0);
	n = 0;
	for (uint64_t t = LIVE + 1; t <= LIVE + OLD + YOUNG; t++)
		recs[n++] = complete_rec(t, t <= LIVE + OLD ? 10 : 5000);
	assert_int_equal(write_recs(f, recs, n), 0);

	struct coord_rec r = sweep_pass(f, 100, 0); /* limit 0: nothing */
	assert_int_equal(r.sweep_deleted, 0);
	assert_int_equal(count(f, 0), LIVE + OLD + YOUNG);

	int passes = 0;
	do {
		r = sweep_pass(f, 100, 7);
		assert_true(r.sweep_deleted <= 2 * 7); /* per database */
		assert_true(++passes < 20);
	} while (r.sweep_more);
	assert_true(passes >= OLD / 7);
	assert_int_equal(count(f, 0), LIVE + YOUNG);
	assert_int_equal(count(f, 1), YOUNG); /* the live decisions' keys were old too */
	for (uint64_t t = 1; t <= LIVE; t++)
		assert_int_equal(f->log.ops->lookup_txid(f->log.self, t), COORD_LOOKUP_COMMITTED);
	for (uint64_t t = LIVE + 1; t <= LIVE + OLD; t++)
		assert_int_equal(f->log.ops->lookup_txid(f->log.self, t), COORD_LOOKUP_FORGOTTEN);
	/* A pass over what is left deletes nothing and asks for no more. */
	r = sweep_pass(f, 100, 7);
	assert_int_equal(r.sweep_deleted, 0);
	assert_false(r.sweep_more);
}

/* The forget horizon: raised to the highest swept tombstone, durable across a reopen; a
 * txid at or below it with no record is FORGOTTEN, one above it (never issued) NONE. */
static void test_log_forget_horizon_survives_reopen_and_answers_lookups(void **state)
{
	struct fix *f = *state;

	open_log(f);
	write_one(f, commit_rec(10, 10, NULL, AB, 2));
	write_one(f, complete_rec(10, 10));
	write_one(f, commit_rec(20, 10, NULL, AB, 2)); /* live: stays */
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 5), COORD_LOOKUP_NONE);
	sweep_pass(f, 100, 100);
	reopen(f);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 5), COORD_LOOKUP_FORGOTTEN);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 10), COORD_LOOKUP_FORGOTTEN);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 11), COORD_LOOKUP_NONE);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 20), COORD_LOOKUP_COMMITTED);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 1ull << 41), COORD_LOOKUP_NONE);

	/* No outcome retention: a COMPLETE that forgets outright raises it too. */
	struct coord_rec c = complete_rec(20, 20);
	c.forget = 1;
	write_one(f, c);
	reopen(f);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 20), COORD_LOOKUP_FORGOTTEN);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 21), COORD_LOOKUP_NONE);
	/* A failed batch leaves it where it was. */
	struct coord_rec bad[2] = { commit_rec(30, 10, NULL, AB, 2), complete_rec(30, 10) };
	bad[1].forget = 1;
	struct coord_rec audit = { .type = COORD_REC_AUDIT }; /* invalid: fails the batch */
	struct coord_rec three[3] = { bad[0], bad[1], audit };
	assert_int_equal(write_recs(f, three, 3), -EINVAL);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 30), COORD_LOOKUP_NONE);
}

static struct coord_rec audit_rec(uint64_t id, const char *text)
{
	struct coord_rec r = { .type = COORD_REC_AUDIT, .audit_id = id, .text = text,
			       .text_len = strlen(text) };
	return r;
}

static int count_audit_cb(void *arg, uint64_t id, const char *text, size_t len)
{
	(void)id, (void)text, (void)len;
	++*(int *)arg;
	return 0;
}

/* Audit entries go oldest first once their "at" time is past the retention. */
static void test_log_sweep_drops_audit_entries_past_their_retention(void **state)
{
	struct fix *f = *state;
	int n = 0;

	open_log(f);
	write_one(f, audit_rec(1, "{\"id\":1,\"at\":\"2020-01-01T00:00:00.000Z\",\"x\":1}"));
	write_one(f, audit_rec(2, "{\"id\":2,\"at\":\"2020-01-02T00:00:00.500Z\"}"));
	write_one(f, audit_rec(3, "{\"id\":3,\"at\":\"2030-01-01T00:00:00.000Z\"}"));
	struct coord_rec r = sweep_rec(0, 0, 100);
	r.sweep_audit_before_ms = 1577923200500ull; /* 2020-01-02T00:00:00.500Z: not before */
	write_one(f, r);
	assert_int_equal(f->log.ops->audit_list(f->log.self, 0, 10, count_audit_cb, &n), 0);
	assert_int_equal(n, 2);
	r.sweep_audit_before_ms = 1577923200501ull;
	write_one(f, r);
	n = 0;
	assert_int_equal(f->log.ops->audit_list(f->log.self, 0, 10, count_audit_cb, &n), 0);
	assert_int_equal(n, 1);
}

static void test_log_sweep_deletes_exactly_the_old_entries_across_pages(void **state)
{
	enum { N = 3000 };
	struct fix *f = *state;
	struct coord_rec *recs = calloc(2 * N, sizeof(*recs));
	char (*keys)[16] = calloc(N, sizeof(*keys));
	struct coord_key_info info;
	size_t n = 0;

	assert_non_null(recs);
	assert_non_null(keys);
	/* Every even txid completed long ago, every odd one live; keys alternate in age. */
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%05d", i);
		recs[n++] = commit_rec((uint64_t)i, i % 2 ? 5000 : 10, keys[i], AB, 2);
	}
	for (int i = 0; i < N; i += 2)
		recs[n++] = complete_rec((uint64_t)i, 20);
	open_log(f);
	assert_int_equal(write_recs(f, recs, n), 0);
	write_one(f, sweep_rec(100, 100, 100000));

	assert_int_equal(count(f, 0), N / 2);
	assert_int_equal(count(f, 1), N / 2);
	for (int i = 0; i < N; i++) {
		assert_int_equal(f->log.ops->lookup_txid(f->log.self, (uint64_t)i),
				 i % 2 ? COORD_LOOKUP_COMMITTED : COORD_LOOKUP_FORGOTTEN);
		assert_int_equal(f->log.ops->lookup_key(f->log.self, keys[i], 6, &info), i % 2);
	}
	free(keys);
	free(recs);
}

static void test_log_decisions_load_in_txid_order(void **state)
{
	static const uint64_t order[] = { 1, 255, 256, 65536, 1ull << 40, UINT64_MAX - 1 };
	static const int write_order[] = { 3, 0, 5, 2, 4, 1 };
	struct fix *f = *state;

	open_log(f);
	for (int i = 0; i < 6; i++)
		write_one(f, commit_rec(order[write_order[i]], 1, NULL, AB, 2));
	assert_loaded_txids(f, order, 6);
	reopen(f);
	assert_loaded_txids(f, order, 6);
}

static void test_log_participants_are_byte_identical_after_reopen(void **state)
{
	struct fix *f = *state;
	char *longname = malloc(4001);
	const char *parts[4];
	int rc;

	assert_non_null(longname);
	for (int i = 0; i < 4000; i++)
		longname[i] = (char)('a' + i % 26);
	longname[4000] = '\0';
	parts[0] = "payments-db";
	parts[1] = "";
	parts[2] = "caf\xc3\xa9 ledger \x01\xff";
	parts[3] = longname;

	open_log(f);
	write_one(f, commit_rec(42, 77, "k", parts, 4));
	reopen(f);
	struct seen *s = load(f, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(s->n, 1);
	assert_int_equal(s->nparts[0], 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(strlen(s->parts[0][i]), strlen(parts[i]));
		assert_memory_equal(s->parts[0][i], parts[i], strlen(parts[i]));
	}
	seen_free(s);
	free(longname);
}

static void test_log_load_stops_when_the_callback_says_so(void **state)
{
	struct fix *f = *state;
	struct seen *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	open_log(f);
	for (uint64_t t = 1; t <= 5; t++)
		write_one(f, commit_rec(t, 1, NULL, AB, 1));
	s->stop_after = 2;
	assert_int_equal(f->log.ops->load_decisions(f->log.self, collect, s), 7);
	assert_int_equal(s->n, 2);
	seen_free(s);
}

static void test_log_corrupt_decision_makes_load_fail(void **state)
{
	static const unsigned char bad[][13] = {
		{ 7, 0, 0, 0, 0, 0, 0, 0, 1 },                 /* unknown type */
		{ 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0 },            /* COMMIT header cut short */
		{ 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0, 0, 0 },   /* nparts, but no names */
	};
	static const size_t bad_len[] = { 9, 11, 13 };
	struct fix *f = *state;
	unsigned char key[8];

	be64(key, 2);
	open_log(f);
	write_one(f, commit_rec(1, 1, NULL, AB, 2));
	close_log(f);
	for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
		int rc;

		raw_put(f, "decisions", key, 8, bad[i], bad_len[i]);
		open_log(f);
		struct seen *s = load(f, &rc);
		assert_int_equal(rc, -EBADMSG);
		seen_free(s);
		assert_int_equal(f->log.ops->lookup_txid(f->log.self, 2), -EBADMSG);
		assert_int_equal(f->log.ops->lookup_txid(f->log.self, 1), 1);
		close_log(f);
	}
}

static void test_log_commit_with_inconsistent_names_is_corrupt(void **state)
{
	/* type 1, wall 1, nparts 1, one name: length says 5, bytes hold 3 / hold a NUL /
	 * leave a trailing byte. */
	static const unsigned char bad[][21] = {
		{ 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 5, 'a', 'b', 'c' },
		{ 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 3, 'a', 0, 'c' },
		{ 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 3, 'a', 'b', 'c', 'x' },
	};
	static const size_t bad_len[] = { 18, 18, 19 };
	struct fix *f = *state;
	unsigned char key[8], shortkey[3] = { 0, 0, 9 };

	be64(key, 3);
	open_log(f);
	close_log(f);
	for (size_t i = 0; i < 3; i++) {
		int rc;

		raw_put(f, "decisions", key, 8, bad[i], bad_len[i]);
		open_log(f);
		struct seen *s = load(f, &rc);
		assert_int_equal(rc, -EBADMSG);
		assert_int_equal(s->n, 0);
		seen_free(s);
		close_log(f);
	}
	/* A key that is not a u64 txid. */
	raw_put(f, "decisions", key, 8, "\x02\0\0\0\0\0\0\0\x01", 9);
	raw_put(f, "decisions", shortkey, 3, "\x02\0\0\0\0\0\0\0\x01", 9);
	open_log(f);
	int rc;
	struct seen *s = load(f, &rc);
	assert_int_equal(rc, -EBADMSG);
	seen_free(s);
}

static void test_log_open_refuses_an_unknown_format(void **state)
{
	static const unsigned char fmt2[4] = { 0, 0, 0, 2 };
	struct fix *f = *state;
	char err[256] = "";

	open_log(f);
	close_log(f);
	raw_put(f, "meta", "format", 6, fmt2, sizeof(fmt2));
	assert_int_equal(coord_log_lmdb_open(&f->log, f->dir, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "unsupported log format 2"));

	raw_put(f, "meta", "format", 6, "\x01", 1);
	err[0] = '\0';
	assert_int_equal(coord_log_lmdb_open(&f->log, f->dir, 0, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "format"));
}

static void test_log_many_records_in_one_batch_are_visible_after_reopen(void **state)
{
	enum { N = 1500 };
	struct fix *f = *state;
	struct coord_rec *recs = calloc(N + 100, sizeof(*recs));
	char (*keys)[16] = calloc(N, sizeof(*keys));
	struct coord_key_info info;
	int rc;

	assert_non_null(recs);
	assert_non_null(keys);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%05d", i);
		recs[i] = commit_rec((uint64_t)i + 1, 1000 + (uint64_t)i, keys[i], AB, 2);
	}
	for (int i = 0; i < 100; i++) /* complete the first 100 in the same txn */
		recs[N + i] = complete_rec((uint64_t)i + 1, 9999);
	open_log(f);
	assert_int_equal(write_recs(f, recs, N + 100), 0);
	reopen(f);

	struct seen *s = load(f, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(s->n, N - 100);
	for (size_t i = 0; i < s->n; i++) {
		assert_int_equal(s->txid[i], i + 101);
		assert_int_equal(s->wall[i], 1000 + i + 100);
	}
	seen_free(s);
	for (int i = 0; i < N; i++) {
		assert_int_equal(f->log.ops->lookup_key(f->log.self, keys[i], 9, &info), 1);
		assert_int_equal(info.txid, (uint64_t)i + 1);
	}
	assert_int_equal(count(f, 0), N);
	assert_int_equal(count(f, 1), N);
	free(keys);
	free(recs);
}

static void test_log_batch_is_all_or_nothing(void **state)
{
	struct fix *f = *state;
	char longkey[600];
	struct coord_rec recs[3];
	const char *nullpart[] = { "a", NULL };

	memset(longkey, 'x', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	open_log(f);
	recs[0] = commit_rec(1, 1, "fine", AB, 2);
	recs[1] = commit_rec(2, 1, longkey, AB, 2); /* longer than LMDB's key limit */
	assert_int_equal(write_recs(f, recs, 2), -EINVAL);
	recs[1] = commit_rec(2, 1, NULL, nullpart, 2);
	assert_int_equal(write_recs(f, recs, 2), -EINVAL);
	recs[1] = commit_rec(2, 1, NULL, AB, 2);
	recs[1].type = (enum coord_rec_type)9;
	assert_int_equal(write_recs(f, recs, 2), -EINVAL);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 1), 0);
	assert_int_equal(count(f, 0), 0);
	assert_int_equal(count(f, 1), 0);
	assert_int_equal(write_recs(f, recs, 0), 0);
}

static void test_log_map_full_fails_the_batch_and_later_batches_succeed(void **state)
{
	enum { N = 2000 };
	struct fix *f = *state;
	struct coord_rec *recs = calloc(N, sizeof(*recs));
	char err[256] = "";
	static char name[2000];
	const char *parts[] = { name };

	assert_non_null(recs);
	memset(name, 'p', sizeof(name) - 1);
	assert_int_equal(coord_log_lmdb_open(&f->log, f->dir, 1 << 20, err, sizeof(err)), 0);
	f->open = 1;
	for (int i = 0; i < N; i++) /* ~4 MB of records into a 1 MiB map */
		recs[i] = commit_rec((uint64_t)i + 1, 1, NULL, parts, 1);
	assert_int_equal(write_recs(f, recs, N), MDB_MAP_FULL);
	assert_int_equal(count(f, 0), 0);
	assert_int_equal(write_recs(f, recs, 10), 0);
	assert_int_equal(count(f, 0), 10);
	free(recs);
}

static void test_log_open_refuses_a_log_already_open(void **state)
{
	struct fix *f = *state;
	struct coord_log second;
	char err[256] = "";

	open_log(f);
	assert_int_equal(coord_log_lmdb_open(&second, f->dir, 0, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "in use"));
}

static void test_log_open_creates_missing_directories_private(void **state)
{
	struct fix *f = *state;
	char base[PATH_MAX];
	struct stat st;

	strcpy(base, f->dir);
	assert_true(snprintf(f->dir, sizeof(f->dir), "%s/a/b", base) < (int)sizeof(f->dir));
	open_log(f);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	close_log(f);
	strcpy(f->dir, base); /* teardown removes the whole tree */
}


/* ---- participant name bindings (D8) ---- */

static struct coord_rec bind_rec(const char *name, unsigned char idbyte, uint64_t wall)
{
	struct coord_rec r = { .type = COORD_REC_BIND, .name = name,
			       .name_len = strlen(name), .wall_ms = wall };
	memset(r.participant_id, idbyte, sizeof(r.participant_id));
	return r;
}

static struct coord_rec unbind_rec(const char *name)
{
	struct coord_rec r = { .type = COORD_REC_UNBIND, .name = name, .name_len = strlen(name) };
	return r;
}

static void assert_bound(struct fix *f, const char *name, unsigned char idbyte, uint64_t wall)
{
	struct coord_binding b;
	unsigned char want[COORD_PARTICIPANT_ID_LEN];

	memset(want, idbyte, sizeof(want));
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, name, strlen(name), &b), 1);
	assert_memory_equal(b.participant_id, want, sizeof(want));
	assert_int_equal(b.wall_ms, wall);
}

static void test_log_binding_survives_a_reopen_and_unbind_removes_it(void **state)
{
	struct fix *f = *state;
	struct coord_binding b;

	open_log(f);
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, "alpha", 5, &b), 0);
	write_one(f, bind_rec("alpha", 0xa1, 111));
	assert_bound(f, "alpha", 0xa1, 111);
	reopen(f);
	assert_bound(f, "alpha", 0xa1, 111);
	write_one(f, unbind_rec("alpha"));
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, "alpha", 5, &b), 0);
	reopen(f);
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, "alpha", 5, &b), 0);
	/* Forgetting a name that is not bound changes nothing and does not fail the batch. */
	write_one(f, unbind_rec("alpha"));
	/* Bound again, to another folder, after the operator forgot it. */
	write_one(f, bind_rec("alpha", 0xb2, 222));
	assert_bound(f, "alpha", 0xb2, 222);
}

struct bindings_seen {
	size_t n;
	char names[8][32];
	unsigned char first_byte[8];
};

static int collect_binding(void *arg, const char *name, size_t len, const struct coord_binding *b)
{
	struct bindings_seen *s = arg;

	assert_true(s->n < 8 && len < 32);
	memcpy(s->names[s->n], name, len);
	s->names[s->n][len] = '\0';
	s->first_byte[s->n++] = b->participant_id[0];
	return 0;
}

static void test_log_bindings_load_in_name_order_with_commits_in_the_same_batch(void **state)
{
	struct fix *f = *state;
	struct coord_rec recs[3];
	struct bindings_seen seen = { 0 };

	open_log(f);
	recs[0] = bind_rec("gamma", 3, 1);
	recs[1] = commit_rec(5, 1, NULL, AB, 2);
	recs[2] = bind_rec("beta", 2, 1);
	assert_int_equal(write_recs(f, recs, 3), 0);
	reopen(f);
	assert_int_equal(f->log.ops->load_participants(f->log.self, collect_binding, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.names[0], "beta");
	assert_int_equal(seen.first_byte[0], 2);
	assert_string_equal(seen.names[1], "gamma");
	assert_int_equal(seen.first_byte[1], 3);
	assert_int_equal(f->log.ops->lookup_txid(f->log.self, 5), 1);
}

static void test_log_bad_binding_records_are_refused_and_corrupt_ones_reported(void **state)
{
	struct fix *f = *state;
	struct coord_rec r = bind_rec("x", 1, 1);
	struct coord_binding b;
	struct bindings_seen seen = { 0 };
	char longname[600];

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	open_log(f);
	r.name_len = 0;
	assert_int_equal(write_recs(f, &r, 1), -EINVAL);
	r = bind_rec(longname, 1, 1); /* beyond LMDB's key limit */
	assert_int_equal(write_recs(f, &r, 1), -EINVAL);
	r = unbind_rec("x");
	r.name = NULL;
	assert_int_equal(write_recs(f, &r, 1), -EINVAL);
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, "", 0, &b), -EINVAL);
	close_log(f);
	raw_put(f, "participants", "short", 5, "abc", 3);
	open_log(f);
	assert_int_equal(f->log.ops->lookup_participant(f->log.self, "short", 5, &b), -EBADMSG);
	assert_int_equal(f->log.ops->load_participants(f->log.self, collect_binding, &seen),
			 -EBADMSG);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_log_reopen_keeps_meta_and_decisions),
		T(test_log_commit_with_key_creates_key_record),
		T(test_log_complete_turns_decision_into_tombstone),
		T(test_log_sweep_removes_old_tombstones_and_keys_but_not_live_commits),
		T(test_log_sweep_passes_start_at_the_oldest_and_repeat_until_done),
		T(test_log_forget_horizon_survives_reopen_and_answers_lookups),
		T(test_log_sweep_drops_audit_entries_past_their_retention),
		T(test_log_sweep_deletes_exactly_the_old_entries_across_pages),
		T(test_log_decisions_load_in_txid_order),
		T(test_log_participants_are_byte_identical_after_reopen),
		T(test_log_load_stops_when_the_callback_says_so),
		T(test_log_corrupt_decision_makes_load_fail),
		T(test_log_commit_with_inconsistent_names_is_corrupt),
		T(test_log_open_refuses_an_unknown_format),
		T(test_log_many_records_in_one_batch_are_visible_after_reopen),
		T(test_log_batch_is_all_or_nothing),
		T(test_log_map_full_fails_the_batch_and_later_batches_succeed),
		T(test_log_open_refuses_a_log_already_open),
		T(test_log_open_creates_missing_directories_private),
		T(test_log_binding_survives_a_reopen_and_unbind_removes_it),
		T(test_log_bindings_load_in_name_order_with_commits_in_the_same_batch),
		T(test_log_bad_binding_records_are_refused_and_corrupt_ones_reported),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
