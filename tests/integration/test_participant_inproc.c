/*
 * test_participant_inproc.c - libtpc's participant inside this test process, against a
 * real tpc-coordinator: the promises of its public headers that only show from inside.
 *
 *  - tpc/sink.h's threading contract: two participants whose sinks record every call's
 *    entry and exit with atomics, driven by several client threads at once (commits,
 *    client aborts, sink refusals), fail the test on any overlap the contract forbids
 *    (two calls on one side at once; a prepare or abort while a commit of the same
 *    txid runs; commit before prepare returned; abort after commit; forget before
 *    commit).
 *  - fault injection is armed only by tpc_participant_config.faults: TPC_FAULTS in this
 *    process's environment is ignored, the config field arms a point, and a fired
 *    fault is logged through cfg.log only, never on stderr.
 *  - a state log that fails: the participant reaches part_log through its ops table
 *    (part_log.h), and this binary wraps part_log_lmdb_open() (-Wl,--wrap) to put a
 *    table under it whose write() fails the writes a test chooses. A failed PREPARED
 *    write is a NO vote (rule D2): the transaction aborts, the sink never commits it,
 *    nothing stays prepared, the error reaches cfg.log, and the next write succeeds.
 *    A failed drop of an applied transaction's record is written again, and the sink
 *    is told to forget that txid only once a drop of it is durable (rule D9's order).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "part_log.h"
#include "tpc/client.h"
#include "tpc/participant.h"
#include "tpc/sink.h"

/* ---- a sink that checks tpc/sink.h's threading contract ------------------------- */

#define MAXW 256   /* txids of one commit() published for the overlap check */
#define TAB 16384  /* per-txid bookkeeping (open addressing) */

enum { T_NONE, T_PREPARING, T_PREPARED, T_REFUSED, T_ABORTED, T_COMMITTED, T_FORGOTTEN };

struct csink {
	atomic_int loop_in, writer_in;               /* calls in flight per side */
	_Atomic uint64_t loop_txid;                  /* txid of the prepare/abort running */
	_Atomic uint64_t writer_txids[MAXW];         /* txids of the commit running */
	atomic_int violations, overlaps;             /* overlaps: the allowed kind, seen */
	atomic_int committed, forgotten;             /* distinct txids */
	pthread_mutex_t mu;                          /* tab and first */
	struct { uint64_t txid; int state; } tab[TAB];
	char first[256];                             /* the first violation */
};

static void violation(struct csink *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->mu);
	if (!s->first[0]) {
		va_start(ap, fmt);
		vsnprintf(s->first, sizeof(s->first), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add(&s->violations, 1);
}

/* Under s->mu: the txid's slot (added as T_NONE). */
static int *state_of(struct csink *s, uint64_t txid)
{
	size_t i = (size_t)(txid * 0x9e3779b97f4a7c15ULL >> 50) % TAB;

	while (s->tab[i].txid && s->tab[i].txid != txid)
		i = (i + 1) % TAB;
	s->tab[i].txid = txid;
	return &s->tab[i].state;
}

/* Move @p txid from a state in @p from_mask to @p to; a violation otherwise. */
static void move(struct csink *s, uint64_t txid, unsigned from_mask, int to, const char *what)
{
	pthread_mutex_lock(&s->mu);
	int *st = state_of(s, txid);
	int was = *st;
	if (from_mask & (1u << was))
		*st = to;
	pthread_mutex_unlock(&s->mu);
	if (!(from_mask & (1u << was)))
		violation(s, "%s of txid %llu in state %d", what, (unsigned long long)txid, was);
	else if (to == T_COMMITTED && was != T_COMMITTED)
		atomic_fetch_add(&s->committed, 1);
	else if (to == T_FORGOTTEN)
		atomic_fetch_add(&s->forgotten, 1);
}

static void spin_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

/* The loop side (prepare, abort): never two at once, never a txid a commit holds. */
static void enter_loop(struct csink *s, uint64_t txid)
{
	if (atomic_fetch_add(&s->loop_in, 1) != 0)
		violation(s, "two prepare/abort calls at once (txid %llu)", (unsigned long long)txid);
	atomic_store(&s->loop_txid, txid);
	if (atomic_load(&s->writer_in))
		atomic_fetch_add(&s->overlaps, 1);
	for (int i = 0; i < MAXW; i++)
		if (atomic_load(&s->writer_txids[i]) == txid)
			violation(s, "prepare/abort of txid %llu while a commit of it runs",
				  (unsigned long long)txid);
}

static void leave_loop(struct csink *s)
{
	atomic_store(&s->loop_txid, 0);
	atomic_fetch_sub(&s->loop_in, 1);
}

/* The writer side (commit, forget). */
static void enter_writer(struct csink *s, const char *what)
{
	if (atomic_fetch_add(&s->writer_in, 1) != 0)
		violation(s, "two commit/forget calls at once (%s)", what);
	if (atomic_load(&s->loop_in))
		atomic_fetch_add(&s->overlaps, 1);
}

static void leave_writer(struct csink *s)
{
	for (int i = 0; i < MAXW; i++)
		atomic_store(&s->writer_txids[i], 0);
	atomic_fetch_sub(&s->writer_in, 1);
}

static int cs_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t reason_len)
{
	struct csink *s = self;
	int refuse = txn->nwrites > 0 && txn->writes[0].key_len >= 6 &&
		     memcmp(txn->writes[0].key, "refuse", 6) == 0;

	enter_loop(s, txn->txid);
	move(s, txn->txid, 1u << T_NONE, T_PREPARING, "prepare");
	spin_us(100);
	move(s, txn->txid, 1u << T_PREPARING, refuse ? T_REFUSED : T_PREPARED, "prepare");
	leave_loop(s);
	if (refuse)
		snprintf(reason, reason_len, "refused by the test");
	return refuse ? TPC_EREFUSED : 0;
}

static void cs_abort(void *self, tpc_txid txid)
{
	struct csink *s = self;

	enter_loop(s, txid);
	move(s, txid, 1u << T_NONE | 1u << T_PREPARED | 1u << T_REFUSED, T_ABORTED, "abort");
	leave_loop(s);
}

static int cs_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	struct csink *s = self;

	enter_writer(s, "commit");
	for (size_t i = 0; i < n && i < MAXW; i++)
		atomic_store(&s->writer_txids[i], txns[i].txid);
	uint64_t lt = atomic_load(&s->loop_txid);
	for (size_t i = 0; lt && i < n; i++)
		if (txns[i].txid == lt)
			violation(s, "commit of txid %llu while a prepare/abort of it runs",
				  (unsigned long long)lt);
	for (size_t i = 0; i < n; i++)
		move(s, txns[i].txid, 1u << T_PREPARED | 1u << T_COMMITTED, T_COMMITTED,
		     "commit");
	spin_us(1000); /* a slow fsync: prepares keep coming meanwhile */
	leave_writer(s);
	return 0;
}

static void cs_forget(void *self, const tpc_txid *txids, size_t n)
{
	struct csink *s = self;

	enter_writer(s, "forget");
	for (size_t i = 0; i < n; i++)
		move(s, txids[i], 1u << T_COMMITTED, T_FORGOTTEN, "forget");
	spin_us(100);
	leave_writer(s);
}

static const tpc_sink_ops csink_ops = {
	.prepare = cs_prepare, .commit = cs_commit, .abort = cs_abort, .forget = cs_forget,
};

/* ---- fixture: a coordinator, and in-process participants ------------------------ */

struct logbuf {
	pthread_mutex_t mu;
	char text[8192];
};

static void on_log(void *arg, int level, const char *msg)
{
	struct logbuf *lb = arg;

	if (!lb)
		return;
	pthread_mutex_lock(&lb->mu);
	size_t len = strlen(lb->text);
	snprintf(lb->text + len, sizeof(lb->text) - len, "%d %s\n", level, msg);
	pthread_mutex_unlock(&lb->mu);
}

static int log_has(struct logbuf *lb, const char *text)
{
	pthread_mutex_lock(&lb->mu);
	int has = strstr(lb->text, text) != NULL;
	pthread_mutex_unlock(&lb->mu);
	return has;
}

static tpc_participant *part_new(struct cluster *c, const char *name, tpc_sink *sink,
				 const char *faults, struct logbuf *lb, int *err)
{
	char dir[PATH_MAX + 64];
	tpc_participant_config cfg;

	snprintf(dir, sizeof(dir), "%s/%s", c->dir, name);
	tpc_participant_config_init(&cfg);
	cfg.coordinator = c->hostport;
	cfg.name = name;
	cfg.state_dir = dir;
	cfg.group_commit_max = 32;
	cfg.faults = faults;
	cfg.log = on_log;
	cfg.log_arg = lb;
	tpc_participant *p = tpc_participant_new(&cfg, sink, err);
	if (p)
		assert_int_equal(tpc_participant_start(p), 0);
	return p;
}

static tpc_client *client_new(struct cluster *c)
{
	tpc_client_config cfg;
	int err = 0;

	tpc_client_config_init(&cfg);
	cfg.coordinator = c->hostport;
	tpc_client *cl = tpc_client_new(&cfg, &err);
	assert_non_null(cl);
	return cl;
}

/* One transaction over @p np participants, each staging @p key; then commit, or abort
 * when @p abort. @return the outcome. */
static tpc_outcome run_txn(tpc_client *cl, tpc_participant **ps, int np, const char *key,
			   int abort)
{
	tpc_txid txid = 0;
	tpc_outcome out = TPC_OUTCOME_UNKNOWN;
	char reason[128];

	if (tpc_client_begin(cl, NULL, 0, &txid, NULL))
		return TPC_OUTCOME_UNKNOWN;
	for (int i = 0; i < np; i++)
		if (tpc_participant_stage_wait(ps[i], txid, key, strlen(key), "v", 1))
			return TPC_OUTCOME_UNKNOWN;
	if (abort ? tpc_client_abort(cl, txid, "test", &out)
		  : tpc_client_commit(cl, txid, &out, reason, sizeof(reason)))
		return TPC_OUTCOME_UNKNOWN;
	return out;
}

static void wait_until(atomic_int *v, int want)
{
	uint64_t until = now_ms() + WAIT_MS;

	while (atomic_load(v) < want && now_ms() < until)
		spin_us(5000);
	assert_int_equal(atomic_load(v), want);
}

/* ---- the sink threading contract under load ------------------------------------- */

#define NTHREADS 6
#define TXNS_PER_THREAD 40

struct load {
	struct cluster *c;
	tpc_participant *ps[2];
	int id;
	int committed, aborted, failed;
};

static void *load_thread(void *arg)
{
	struct load *l = arg;
	tpc_client *cl = client_new(l->c);
	char key[64];

	for (int i = 0; i < TXNS_PER_THREAD; i++) {
		int refuse = i % 7 == 3, abort = i % 5 == 1;
		snprintf(key, sizeof(key), "%s-%d-%d", refuse ? "refuse" : "k", l->id, i);
		tpc_outcome want = refuse || abort ? TPC_OUTCOME_ABORTED : TPC_OUTCOME_COMMITTED;
		tpc_outcome got = run_txn(cl, l->ps, 2, key, abort);
		if (got != want)
			l->failed++;
		else if (got == TPC_OUTCOME_COMMITTED)
			l->committed++;
		else
			l->aborted++;
	}
	tpc_client_free(cl);
	return NULL;
}

static void test_sink_never_sees_calls_the_contract_forbids_under_parallel_load(void **state)
{
	struct cluster *c = *state;
	struct csink *cs[2];
	struct load loads[NTHREADS];
	pthread_t th[NTHREADS];
	tpc_participant *ps[2];
	int err = 0, committed = 0;

	coord_start(c, NULL, NULL);
	for (int i = 0; i < 2; i++) {
		cs[i] = calloc(1, sizeof(*cs[i]));
		assert_non_null(cs[i]);
		pthread_mutex_init(&cs[i]->mu, NULL);
		ps[i] = part_new(c, i ? "p1" : "p0", tpc_sink_new(&csink_ops, cs[i]), NULL, NULL,
				 &err);
		assert_non_null(ps[i]);
	}
	for (int t = 0; t < NTHREADS; t++) {
		loads[t] = (struct load){ .c = c, .ps = { ps[0], ps[1] }, .id = t };
		assert_int_equal(pthread_create(&th[t], NULL, load_thread, &loads[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(loads[t].failed, 0);
		committed += loads[t].committed;
	}
	for (int i = 0; i < 2; i++) {
		wait_until(&cs[i]->committed, committed);
		wait_until(&cs[i]->forgotten, committed); /* the forget path ran too (D9) */
	}
	for (int i = 0; i < 2; i++) {
		tpc_participant_free(ps[i]);
		if (cs[i]->violations)
			fail_msg("sink %d: %d violation(s), the first: %s", i,
				 atomic_load(&cs[i]->violations), cs[i]->first);
		print_message("sink %d: %d commits, %d allowed overlaps of prepare/abort with "
			      "commit/forget\n", i, atomic_load(&cs[i]->committed),
			      atomic_load(&cs[i]->overlaps));
	}
	/* The test saw the two threads run at once; else it proved nothing. */
	assert_true(atomic_load(&cs[0]->overlaps) + atomic_load(&cs[1]->overlaps) > 0);
	for (int i = 0; i < 2; i++) {
		pthread_mutex_destroy(&cs[i]->mu);
		free(cs[i]);
	}
}

/* ---- fault injection: only through the config field ----------------------------- */

static int yes_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t len)
{
	return 0;
}

static int yes_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	return 0;
}

static const tpc_sink_ops yes_ops = { .prepare = yes_prepare, .commit = yes_commit };

#define PREPARE_FAIL "part.prepare.before_log=fail"

static void test_participant_without_faults_config_ignores_TPC_FAULTS(void **state)
{
	struct cluster *c = *state;
	struct logbuf lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	int err = 0;

	coord_start(c, NULL, NULL); /* before the variable is set: the child never sees it */
	assert_int_equal(setenv("TPC_FAULTS", PREPARE_FAIL, 1), 0);
	tpc_participant *p = part_new(c, "p0", tpc_sink_new(&yes_ops, NULL), NULL, &lb, &err);
	unsetenv("TPC_FAULTS");
	assert_non_null(p);
	tpc_client *cl = client_new(c);
	assert_int_equal(run_txn(cl, &p, 1, "k", 0), TPC_OUTCOME_COMMITTED);
	tpc_client_free(cl);
	tpc_participant_free(p);
	assert_false(log_has(&lb, "fired"));
	assert_false(log_has(&lb, "fault injection armed"));
}

/* The config field arms the point: the PREPARED record "fails", the vote is NO; the
 * fired line reaches cfg.log, and nothing reaches stderr. */
static void test_faults_config_arms_a_point_and_logs_only_through_cfg_log(void **state)
{
	struct cluster *c = *state;
	struct logbuf lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	char errpath[PATH_MAX + 32], text[4096] = "";
	int err = 0;

	coord_start(c, NULL, NULL);
	snprintf(errpath, sizeof(errpath), "%s/stderr", c->dir);
	int fd = open(errpath, O_CREAT | O_RDWR | O_TRUNC, 0600), saved = dup(2);
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	tpc_participant *p = part_new(c, "p0", tpc_sink_new(&yes_ops, NULL), PREPARE_FAIL, &lb,
				      &err);
	tpc_client *cl = client_new(c);
	tpc_outcome out = p ? run_txn(cl, &p, 1, "k", 0) : TPC_OUTCOME_UNKNOWN;
	tpc_client_free(cl);
	tpc_participant_free(p);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_non_null(p);
	assert_int_equal(out, TPC_OUTCOME_ABORTED);
	assert_true(log_has(&lb, "fault part.prepare.before_log fired: fail"));
	assert_true(pread(fd, text, sizeof(text) - 1, 0) >= 0);
	close(fd);
	assert_null(strstr(text, "fired"));
}

static void test_bad_faults_spec_fails_new_with_einval(void **state)
{
	struct cluster *c = *state;
	struct logbuf lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	int err = 0;

	tpc_participant *p = part_new(c, "p0", tpc_sink_new(&yes_ops, NULL), "no.such.point=crash",
				      &lb, &err);
	assert_null(p);
	assert_int_equal(err, -EINVAL);
	assert_true(log_has(&lb, "unknown fault point 'no.such.point'"));
}

/* ---- a state log that fails chosen writes -------------------------------------- */

/* The wrapper below has no argument to carry a context: one failing log per process. */
static struct {
	const struct part_log_ops *real;
	struct part_log_ops ops;
	atomic_int fail_prepared;   /* fail this many more writes that put a PREPARED record */
	atomic_int fail_drops;      /* fail this many more writes that only drop records */
	atomic_int failed;          /* writes failed so far */
	_Atomic uint64_t dropped[64]; /* txids whose drop is durable (the first 64) */
	atomic_int ndropped;
} flaky;

static int flaky_fails(size_t nputs, size_t ndels)
{
	atomic_int *budget = nputs ? &flaky.fail_prepared : ndels ? &flaky.fail_drops : NULL;

	if (!budget || atomic_fetch_sub(budget, 1) <= 0)
		return 0;
	atomic_fetch_add(&flaky.failed, 1);
	return 1;
}

static int drop_is_durable(uint64_t txid)
{
	int n = atomic_load(&flaky.ndropped);

	for (int i = 0; i < n && i < 64; i++)
		if (atomic_load(&flaky.dropped[i]) == txid)
			return 1;
	return 0;
}

static int flaky_write(void *self, const struct part_log_put *puts, size_t nputs,
		       const uint64_t *dels, size_t ndels, uint64_t highest_epoch)
{
	if (flaky_fails(nputs, ndels))
		return -EIO; /* nothing written, as part_log_write() promises on failure */
	int rc = flaky.real->write(self, puts, nputs, dels, ndels, highest_epoch);
	for (size_t i = 0; rc == 0 && i < ndels; i++) {
		int at = atomic_fetch_add(&flaky.ndropped, 1);
		if (at < 64)
			atomic_store(&flaky.dropped[at], dels[i]);
	}
	return rc;
}

int __real_part_log_lmdb_open(struct part_store *out, const char *dir, uint64_t map_size,
			      char *err, size_t errlen);

int __wrap_part_log_lmdb_open(struct part_store *out, const char *dir, uint64_t map_size,
			      char *err, size_t errlen)
{
	int rc = __real_part_log_lmdb_open(out, dir, map_size, err, errlen);

	if (rc == 0) {
		flaky.real = out->ops;
		flaky.ops = *out->ops;
		flaky.ops.write = flaky_write;
		out->ops = &flaky.ops;
	}
	return rc;
}

struct counting_sink {
	atomic_int prepared, committed, aborted, forgotten;
	atomic_int early_forgets;   /* forget() of a txid whose drop was not durable yet */
};

static int count_prepare(void *self, const tpc_sink_txn *txn, char *reason, size_t len)
{
	atomic_fetch_add(&((struct counting_sink *)self)->prepared, 1);
	return 0;
}

static int count_commit(void *self, const tpc_sink_txn *txns, size_t n)
{
	atomic_fetch_add(&((struct counting_sink *)self)->committed, (int)n);
	return 0;
}

static void count_abort(void *self, tpc_txid txid)
{
	atomic_fetch_add(&((struct counting_sink *)self)->aborted, 1);
}

static void count_forget(void *self, const tpc_txid *txids, size_t n)
{
	struct counting_sink *cs = self;

	for (size_t i = 0; i < n; i++)
		if (!drop_is_durable(txids[i]))
			atomic_fetch_add(&cs->early_forgets, 1);
	atomic_fetch_add(&cs->forgotten, (int)n);
}

static const tpc_sink_ops counting_ops = { .prepare = count_prepare,
					   .commit = count_commit,
					   .abort = count_abort,
					   .forget = count_forget };

static void flaky_arm(int fail_prepared, int fail_drops)
{
	atomic_store(&flaky.fail_prepared, fail_prepared);
	atomic_store(&flaky.fail_drops, fail_drops);
	atomic_store(&flaky.failed, 0);
	atomic_store(&flaky.ndropped, 0);
}

/* The coordinator and participant p0 on a flaky log (flaky_arm() with the two budgets)
 * with a counting sink. */
static tpc_participant *flaky_part(struct cluster *c, struct counting_sink *cs,
				   struct logbuf *lb, int fail_prepared, int fail_drops)
{
	int err = 0;

	coord_start(c, NULL, NULL);
	flaky_arm(fail_prepared, fail_drops);
	tpc_participant *p = part_new(c, "p0", tpc_sink_new(&counting_ops, cs), NULL, lb, &err);
	assert_non_null(p);
	return p;
}

/* Nothing is left prepared in @p p. */
static void expect_none_prepared(tpc_participant *p)
{
	tpc_prepared_info *prepared = NULL;
	size_t n = 99;

	assert_int_equal(tpc_participant_list_prepared(p, &prepared, &n), 0);
	assert_int_equal(n, 0);
	free(prepared);
}

static void test_failed_prepared_write_votes_no_and_commits_nothing(void **state)
{
	struct cluster *c = *state;
	struct logbuf lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct counting_sink cs = { 0 };
	tpc_participant_stats st;
	tpc_participant *p = flaky_part(c, &cs, &lb, 1, 0);
	tpc_client *cl = client_new(c);

	assert_int_equal(run_txn(cl, &p, 1, "k1", 0), TPC_OUTCOME_ABORTED);
	assert_int_equal(atomic_load(&flaky.failed), 1);
	wait_until(&cs.aborted, 1);
	assert_int_equal(atomic_load(&cs.committed), 0);
	expect_none_prepared(p);
	tpc_participant_get_stats(p, &st);
	assert_int_equal(st.voted_no, 1);
	assert_int_equal(st.prepared, 0);
	assert_true(log_has(&lb, "state log write failed"));

	/* The failure was one write's: the next transaction prepares and commits. */
	assert_int_equal(run_txn(cl, &p, 1, "k2", 0), TPC_OUTCOME_COMMITTED);
	wait_until(&cs.committed, 1);
	assert_int_equal(atomic_load(&cs.prepared), 2);
	tpc_client_free(cl);
	tpc_participant_free(p);
}

static void test_failed_drop_is_written_again_before_the_sink_forgets(void **state)
{
	struct cluster *c = *state;
	struct logbuf lb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct counting_sink cs = { 0 };
	tpc_participant *p = flaky_part(c, &cs, &lb, 0, 1);
	tpc_client *cl = client_new(c);

	assert_int_equal(run_txn(cl, &p, 1, "k1", 0), TPC_OUTCOME_COMMITTED);
	wait_until(&cs.forgotten, 1); /* the drop was retried, then the forget went out */
	assert_int_equal(atomic_load(&flaky.failed), 1);
	assert_int_equal(atomic_load(&cs.early_forgets), 0);
	assert_int_equal(atomic_load(&cs.committed), 1);
	assert_true(log_has(&lb, "state log write failed"));
	expect_none_prepared(p);
	tpc_client_free(cl);
	tpc_participant_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_sink_never_sees_calls_the_contract_forbids_under_parallel_load,
			cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_participant_without_faults_config_ignores_TPC_FAULTS, cluster_setup,
			cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_faults_config_arms_a_point_and_logs_only_through_cfg_log,
			cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_bad_faults_spec_fails_new_with_einval,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_prepared_write_votes_no_and_commits_nothing, cluster_setup,
			cluster_teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_drop_is_written_again_before_the_sink_forgets, cluster_setup,
			cluster_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
