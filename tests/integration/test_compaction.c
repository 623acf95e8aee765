/*
 * test_compaction.c - the coordinator's log stops growing under sustained load once
 * compaction runs: decision tombstones of acknowledged transactions and expired
 * transaction keys are swept (log_store.c, COORD_REC_SWEEP), and LMDB reuses the freed
 * pages, so DATA/data.mdb after the second half of the load is no larger than after
 * the first half.
 *
 * The load is keyed empty transactions: each Commit logs a COMMIT record and a key
 * record, completes at once (no participant to wait for) and leaves a tombstone. With
 * --outcome-retention and --key-retention of 200 ms and --sweep-interval 200 ms, what
 * the log holds is bounded by about a second of load, however long the load runs.
 * The counts are read straight from the LMDB environment (read-only, as a second
 * process may), so the test depends on nothing but the log's layout (log_store.h).
 *
 * A control run with long retention shows the same load does grow the file, so the
 * bound is the sweep's doing and not an artefact of a small load.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "coord_harness.h"

#define BATCH 250          /* transactions in flight at once on one connection */
#define HALF_BATCHES 40    /* 10,000 transactions per half */
#define RATE 5000          /* transactions per second at most: each half lasts >= 2 s,
			      about ten sweep intervals, so it is load sustained over
			      many passes, not one burst between two */
/* The second half may end up this much larger: what is live at any moment swings
 * between one and two sweep intervals' worth of load, and LMDB's free list takes a few
 * pages of its own. Without compaction the second half adds ~90% (the control test). */
#define TOLERANCE_PCT 40 /* the control grows by ~90%: still told apart under a loaded machine */
#define TOLERANCE_BYTES (64 * 1024)

struct log_counts {
	uint64_t decisions, keys;
	uint64_t file_bytes;
};

static void read_counts(struct cluster *c, struct log_counts *lc)
{
	char path[PATH_MAX + 64];
	struct stat st;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_stat ms;

	snprintf(path, sizeof(path), "%s/data.mdb", c->data);
	assert_int_equal(stat(path, &st), 0);
	lc->file_bytes = (uint64_t)st.st_size;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, c->data, MDB_RDONLY | MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "decisions", 0, &dbi), 0);
	assert_int_equal(mdb_stat(txn, dbi, &ms), 0);
	lc->decisions = ms.ms_entries;
	assert_int_equal(mdb_dbi_open(txn, "keys", 0, &dbi), 0);
	assert_int_equal(mdb_stat(txn, dbi, &ms), 0);
	lc->keys = ms.ms_entries;
	mdb_txn_abort(txn); /* no snapshot held: the writer may reuse every freed page */
	mdb_env_close(env);
}

static void send_begin(tpc_wc *wc, const char *key, uint64_t rid)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT;
	Tpc__Begin b = TPC__BEGIN__INIT;

	b.txn_key = (char *)key;
	req.body_case = TPC__ENVELOPE__BODY_BEGIN;
	req.begin = &b;
	req.request_id = rid;
	assert_int_equal(tpc_wc_send(wc, &req), 0);
}

static void send_commit(tpc_wc *wc, uint64_t txid, uint64_t rid)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT;
	Tpc__Commit cm = TPC__COMMIT__INIT;

	cm.txid = txid;
	req.body_case = TPC__ENVELOPE__BODY_COMMIT;
	req.commit = &cm;
	req.request_id = rid;
	assert_int_equal(tpc_wc_send(wc, &req), 0);
}

/* One batch: BATCH Begins with fresh keys, then their BATCH Commits, all pipelined. */
static void run_batch(tpc_wc *wc, int phase, int batch)
{
	uint64_t txids[BATCH];
	char key[64];

	for (int i = 0; i < BATCH; i++) {
		snprintf(key, sizeof(key), "order-%d-%d-%d", phase, batch, i);
		send_begin(wc, key, tpc_wc_next_request_id(wc));
	}
	for (int i = 0; i < BATCH; i++) {
		Tpc__Envelope *e = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_BEGIN_REPLY, WAIT_MS);
		if (!e)
			fail_msg("no BeginReply: %s", tpc_wc_errmsg(wc));
		assert_int_equal(e->begin_reply->result, TPC__BEGIN_RESULT__BEGIN_STARTED);
		txids[i] = e->begin_reply->txid;
		tpc__envelope__free_unpacked(e, NULL);
	}
	for (int i = 0; i < BATCH; i++)
		send_commit(wc, txids[i], tpc_wc_next_request_id(wc));
	for (int i = 0; i < BATCH; i++) {
		Tpc__Envelope *e = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_OUTCOME, WAIT_MS);
		if (!e)
			fail_msg("no Outcome: %s", tpc_wc_errmsg(wc));
		assert_int_equal(e->outcome->outcome, TPC__OUTCOME_KIND__OUTCOME_COMMITTED);
		tpc__envelope__free_unpacked(e, NULL);
	}
}

/* Half the load, paced to RATE; returns the log as it stands right after it. */
static void run_half(struct cluster *c, tpc_wc *wc, int phase, struct log_counts *after)
{
	uint64_t start = now_ms();

	for (int b = 0; b < HALF_BATCHES; b++) {
		uint64_t due = start + (uint64_t)b * BATCH * 1000 / RATE, now = now_ms();
		if (due > now)
			usleep((useconds_t)(due - now) * 1000); /* pacing the load, not a wait */
		run_batch(wc, phase, b);
	}
	read_counts(c, after);
	print_message("half %d: %d txns in %llu ms; data.mdb %llu bytes, %llu decisions, "
		      "%llu keys\n", phase, BATCH * HALF_BATCHES,
		      (unsigned long long)(now_ms() - start),
		      (unsigned long long)after->file_bytes, (unsigned long long)after->decisions,
		      (unsigned long long)after->keys);
}

static void wait_swept(struct cluster *c, struct log_counts *lc)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	do {
		read_counts(c, lc);
		if (lc->decisions == 0 && lc->keys == 0)
			return;
		usleep(20 * 1000);
	} while (now_ms() < deadline);
	fail_msg("the sweep left %llu decisions and %llu keys",
		 (unsigned long long)lc->decisions, (unsigned long long)lc->keys);
}

static void test_log_file_stops_growing_under_sustained_load(void **state)
{
	struct cluster *c = *state;
	struct log_counts first, second, swept;

	coord_start(c, NULL, "--outcome-retention", "200ms", "--key-retention", "200ms",
		    "--sweep-interval", "200ms", "--admin", "off", NULL);
	tpc_wc *wc = client_open(c, NULL);
	run_half(c, wc, 1, &first);
	run_half(c, wc, 2, &second);
	assert_true(second.file_bytes <=
		    first.file_bytes + first.file_bytes * TOLERANCE_PCT / 100 + TOLERANCE_BYTES);
	/* Far fewer live records than were written: the sweep kept up during the load. */
	assert_true(second.keys < BATCH * HALF_BATCHES);
	wait_swept(c, &swept);
	/* The last passes copy-on-write the pages they delete from (decisions, keys and
	 * the key index): a few pages more at most, never the load's growth again. */
	if (swept.file_bytes > second.file_bytes + TOLERANCE_BYTES)
		fail_msg("data.mdb grew from %llu to %llu bytes while the sweep emptied it",
			 (unsigned long long)second.file_bytes,
			 (unsigned long long)swept.file_bytes);
	coord_term_clean(c);
}

/*
 * A burst of passes (each stopping at a tiny --sweep-limit) must not slow the sweep that
 * follows: the periodic pass still comes every interval. (Starting the next pass by
 * activating the periodic timer by hand once pushed its next firing one interval further
 * per pass, so after a burst of 25 passes nothing was swept for 25 intervals.)
 */
static void test_sweep_keeps_its_interval_after_a_burst_of_passes(void **state)
{
	struct cluster *c = *state;
	struct log_counts lc;

	coord_start(c, NULL, "--outcome-retention", "10ms", "--key-retention", "10ms",
		    "--sweep-interval", "500ms", "--sweep-limit", "10", "--admin", "off", NULL);
	tpc_wc *wc = client_open(c, NULL);
	run_batch(wc, 1, 0); /* 250 tombstones and keys: a burst of 25+ passes */
	wait_swept(c, &lc);
	run_batch(wc, 2, 0);
	uint64_t start = now_ms(), deadline = start + 3000; /* six intervals */
	do {
		read_counts(c, &lc);
		if (lc.decisions == 0 && lc.keys == 0)
			break;
		usleep(20 * 1000);
	} while (now_ms() < deadline);
	if (lc.decisions || lc.keys)
		fail_msg("3 s after the second batch the sweep left %llu decisions and %llu keys",
			 (unsigned long long)lc.decisions, (unsigned long long)lc.keys);
	coord_term_clean(c);
}

/* The control: nothing expires, so the same load grows the file by about as much again. */
static void test_log_file_grows_without_compaction(void **state)
{
	struct cluster *c = *state;
	struct log_counts first, second;

	coord_start(c, NULL, "--outcome-retention", "1h", "--key-retention", "1h",
		    "--sweep-interval", "200ms", "--admin", "off", NULL);
	tpc_wc *wc = client_open(c, NULL);
	run_half(c, wc, 1, &first);
	run_half(c, wc, 2, &second);
	assert_int_equal(second.keys, 2 * BATCH * HALF_BATCHES);
	assert_int_equal(second.decisions, 2 * BATCH * HALF_BATCHES);
	assert_true(second.file_bytes >
		    first.file_bytes + first.file_bytes * TOLERANCE_PCT / 100 + TOLERANCE_BYTES);
	coord_term_clean(c);
}

static void send_vote_yes(tpc_wc *wp, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Vote v = TPC__VOTE__INIT;

	v.txid = txid;
	v.vote = TPC__VOTE_KIND__VOTE_YES;
	env.body_case = TPC__ENVELOPE__BODY_VOTE;
	env.vote = &v;
	assert_int_equal(tpc_wc_send(wp, &env), 0);
}

/* Poll StatusQuery for @p txid until it answers @p want. */
static void wait_status(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus want)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	Tpc__TxnStatus st = TPC__TXN_STATUS__STATUS_PENDING;

	for (;;) {
		int rc = tpc_wc_status(wc, txid, &st);
		if (rc != 0)
			fail_msg("status: %s (%s)", tpc_wc_strerror(rc), tpc_wc_errmsg(wc));
		if (st == want)
			return;
		if (now_ms() > deadline)
			fail_msg("txid %llu: status %d, never %d", (unsigned long long)txid, (int)st,
				 (int)want);
		usleep(20 * 1000);
	}
}

/* A committed transaction whose tombstone the sweep removed is FORGOTTEN, never ABORTED
 * (the forget horizon, durable across a restart); a txid above the horizon that was
 * never issued is still presumed aborted. */
static void test_swept_commit_is_forgotten_not_aborted(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_outcome o;
	uint64_t epoch = 0;

	coord_start(c, NULL, "--outcome-retention", "50ms", "--sweep-interval", "50ms",
		    "--admin", "off", NULL);
	tpc_wc *wc = client_open(c, &epoch);
	uint64_t txid = client_begin(wc, "forget-me"); /* a key: the commit is logged */
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	client_status_expect(wc, txid, TPC__TXN_STATUS__STATUS_COMMITTED);
	wait_status(wc, txid, TPC__TXN_STATUS__STATUS_FORGOTTEN);
	assert_int_equal(tpc_wc_commit(wc, txid, &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_FORGOTTEN);
	assert_int_equal(tpc_wc_abort(wc, txid, "late", &o), 0);
	assert_int_equal(o.outcome, TPC__OUTCOME_KIND__OUTCOME_FORGOTTEN);
	/* Below the horizon, never issued (an aborted one would look the same): FORGOTTEN. */
	client_status_expect(wc, txid - 1, TPC__TXN_STATUS__STATUS_FORGOTTEN);
	/* Above it: presumed abort, as before. */
	client_status_expect(wc, txid + 1000, TPC__TXN_STATUS__STATUS_ABORTED);
	/* A participant asking about or voting on the forgotten txid hears ABORTED / ABORT:
	 * for participants presumed abort stays true below the horizon (a COMMIT record stays
	 * until every YES voter acked it, D4), and FORGOTTEN would leave one in doubt for
	 * ever. */
	tpc_wc *wp = client_open_raw(c);
	assert_int_equal(tpc_wc_hello(wp, TPC__ROLE__ROLE_PARTICIPANT, "w0", NULL), 0);
	client_status_expect(wp, txid, TPC__TXN_STATUS__STATUS_ABORTED);
	send_vote_yes(wp, txid);
	Tpc__Envelope *d = tpc_wc_recv_body(wp, TPC__ENVELOPE__BODY_DECISION, WAIT_MS);
	assert_non_null(d);
	assert_int_equal(d->decision->txid, txid);
	assert_int_equal(d->decision->decision, TPC__DECISION_KIND__DECISION_ABORT);
	tpc__envelope__free_unpacked(d, NULL);

	coord_term_clean(c);
	coord_restart(c);
	tpc_wc *wc2 = client_open(c, NULL);
	client_status_expect(wc2, txid, TPC__TXN_STATUS__STATUS_FORGOTTEN);
	client_status_expect(wc2, (epoch + 1) << 40 | 5, TPC__TXN_STATUS__STATUS_ABORTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_log_file_stops_growing_under_sustained_load,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_swept_commit_is_forgotten_not_aborted,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_sweep_keeps_its_interval_after_a_burst_of_passes,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_log_file_grows_without_compaction,
						cluster_setup, cluster_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
