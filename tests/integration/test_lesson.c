/*
 * test_lesson.c - a short `make lesson` (lesson/, docs/exactly-once.md) with the real
 * programs: the financial close through tpc stays exact across kill -9 of the
 * aggregator, both participants and the coordinator plus tpc fault points; replay into
 * a fresh sink matches, replay over the live sink changes nothing, "as of offset X"
 * matches the source; the effectively-once and exactly-once page-view counters are
 * exact under kills, and the at-least-once one over-counts (at least by the producer's
 * retries); the outbox loses nothing and its relay's duplicates are absorbed.
 *
 * Every truth here is computed by this file from `lesson-log dump` (or the order
 * store's dump), with its own parsing: nothing of the lesson's code decides whether
 * the lesson's code is right. The tests share one folder and run in order (the replay
 * tests reuse the close's cluster).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "proc.h"

#define OUT_CAP (4u << 20)
#define PAYMENTS "4000"
#define PAGEVIEWS "2500"

struct lesson {
	char dir[PATH_MAX];
	char payments[PATH_MAX], pageviews[PATH_MAX];
	char *out;          /* OUT_CAP bytes of captured stdout */
	char paths[8][PATH_MAX]; /* path_in's results, used in turn */
	int next_path;
};

/* ---- running the programs ---- */

/* Run argv (NULL-terminated) and capture stdout into L->out; assert exit 0. */
static void run_ok(struct lesson *L, const char *const *argv, int timeout_ms)
{
	int status = 0;
	int rc = tpc_run_capture((char *const *)argv, L->out, OUT_CAP, timeout_ms, &status);

	if (rc || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "command failed (rc %d, status %d):", rc, status);
		for (int i = 0; argv[i]; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, "\n%s\n", L->out);
		fail();
	}
}

/* out = A/B (asserting it fits). */
static void join(char *out, size_t cap, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	assert_true(la + 1 + lb < cap);
	memmove(out, a, la);
	out[la] = '/';
	memcpy(out + la + 1, b, lb + 1);
}

/* L->dir/NAME, valid for the next seven calls. */
static char *path_in(struct lesson *L, const char *name)
{
	char *p = L->paths[L->next_path++ % 8];
	join(p, PATH_MAX, L->dir, name);
	return p;
}

/* The value of key=VALUE on the line starting with @p prefix in L->out. */
static uint64_t result_field(const struct lesson *L, const char *prefix, const char *key)
{
	char pat[64];
	const char *line = strstr(L->out, prefix);

	assert_non_null(line);
	snprintf(pat, sizeof(pat), " %s=", key);
	const char *eol = strchr(line, '\n'), *p = strstr(line, pat);
	assert_non_null(p);
	assert_true(!eol || p < eol);
	return strtoull(p + strlen(pat), NULL, 10);
}

static void lesson_run(struct lesson *L, const char *const *args)
{
	const char *argv[48] = { LESSON_RUN_BIN };
	int n = 1;

	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n++] = "--bin";
	argv[n++] = TPC_BUILD_DIR;
	argv[n++] = "--seed";
	argv[n++] = "11";
	argv[n++] = "--timeout";
	argv[n++] = "200";
	argv[n] = NULL;
	run_ok(L, argv, 240000);
	assert_non_null(strstr(L->out, "result "));
}

/* ---- a small sorted table: key -> (count, amount) ---- */

struct row {
	char key[96];
	long long count, amount;
};

struct table {
	struct row v[1024];
	int n;
};

static struct table *table_new(void)
{
	struct table *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	return t;
}

static struct row *table_at(struct table *t, const char *key)
{
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].key, key))
			return &t->v[i];
	assert_true(t->n < 1024);
	struct row *r = &t->v[t->n++];
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->count = r->amount = 0;
	return r;
}

static void assert_tables_equal(struct table *a, struct table *b, int check_amounts)
{
	long long ca = 0, cb = 0;

	for (int i = 0; i < a->n; i++)
		ca += a->v[i].count;
	for (int i = 0; i < b->n; i++)
		cb += b->v[i].count;
	if (ca != cb)
		fprintf(stderr, "totals differ: %lld against %lld\n", ca, cb);
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		struct row *r = table_at(b, a->v[i].key);
		if (r->count != a->v[i].count || (check_amounts && r->amount != a->v[i].amount))
			fprintf(stderr, "%s: %lld/%lld against %lld/%lld\n", r->key, a->v[i].count,
				a->v[i].amount, r->count, r->amount);
		assert_int_equal(r->count, a->v[i].count);
		if (check_amounts)
			assert_int_equal(r->amount, a->v[i].amount);
	}
}

/* ---- truths, from the source ---- */

/* Payments with offsets in [from, to) of `lesson-log dump` -> day/merchant/currency. */
static void truth_close(struct lesson *L, const char *log, uint64_t from, uint64_t to,
			struct table *t)
{
	const char *argv[] = { LESSON_LOG_BIN, "dump", "--log", log, NULL };

	run_ok(L, argv, 60000);
	t->n = 0;
	for (char *line = strtok(L->out, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long long off, ts;
		char eid[64], time[40], merchant[64], cur[8], key[96];
		long long amount;
		assert_int_equal(sscanf(line, "%llu\t%llu\tP %63s %39s %63s %lld %7s", &off, &ts, eid,
					time, merchant, &amount, cur), 7);
		if (off < from || off >= to)
			continue;
		snprintf(key, sizeof(key), "%.10s,%s,%s", time, merchant, cur);
		struct row *r = table_at(t, key);
		r->count++;
		r->amount += amount;
	}
}

struct seen {
	char eid[64], group[64];
};

static int cmp_seen(const void *a, const void *b)
{
	return strcmp(((const struct seen *)a)->eid, ((const struct seen *)b)->eid);
}

/* One count per distinct event id, per group (4th payload field). Returns the records. */
static int truth_distinct(struct lesson *L, const char *log, struct table *t)
{
	const char *argv[] = { LESSON_LOG_BIN, "dump", "--log", log, NULL };
	struct seen *v = calloc(20000, sizeof(*v));
	int n = 0;

	assert_non_null(v);
	run_ok(L, argv, 60000);
	for (char *line = strtok(L->out, "\n"); line; line = strtok(NULL, "\n")) {
		assert_true(n < 20000);
		assert_int_equal(sscanf(line, "%*u\t%*u\t%*c %63s %*s %63s", v[n].eid, v[n].group), 2);
		n++;
	}
	qsort(v, (size_t)n, sizeof(*v), cmp_seen);
	t->n = 0;
	for (int i = 0; i < n; i++)
		if (i == 0 || strcmp(v[i].eid, v[i - 1].eid))
			table_at(t, v[i].group)->count++;
	free(v);
	return n;
}

/* ---- reports ---- */

static void parse_close_csv(char *csv, struct table *t)
{
	t->n = 0;
	for (char *line = strtok(csv, "\n"); line; line = strtok(NULL, "\n")) {
		char day[16], merchant[64], cur[8], key[96];
		long long c, a;
		if (!strncmp(line, "day,", 4))
			continue;
		assert_int_equal(sscanf(line, "%15[^,],%63[^,],%7[^,],%lld,%lld", day, merchant, cur,
					&c, &a), 5);
		snprintf(key, sizeof(key), "%s,%s,%s", day, merchant, cur);
		struct row *r = table_at(t, key);
		r->count = c;
		r->amount = a;
	}
}

static void close_report(struct lesson *L, const char *work, struct table *t)
{
	char data[PATH_MAX];
	join(data, sizeof(data), work, "ledger");
	const char *argv[] = { LESSON_CLOSE_BIN, "report", "--ledger-data", data, NULL };
	run_ok(L, argv, 30000);
	parse_close_csv(L->out, t);
}

static void counts_report(struct lesson *L, const char *opt, const char *dir, struct table *t)
{
	const char *argv[] = { LESSON_PAGEVIEWS_BIN, "report", opt, dir, NULL };

	run_ok(L, argv, 30000);
	t->n = 0;
	for (char *line = strtok(L->out, "\n"); line; line = strtok(NULL, "\n")) {
		char group[64];
		long long c;
		if (!strncmp(line, "group,", 6))
			continue;
		assert_int_equal(sscanf(line, "%63[^,],%lld", group, &c), 2);
		table_at(t, group)->count = c;
	}
}

static char *kv_dump(struct lesson *L, const char *data)
{
	const char *argv[] = { TPC_KV_BIN, "--dump", "--data", data, NULL };
	run_ok(L, argv, 30000);
	char *copy = strdup(L->out);
	assert_non_null(copy);
	return copy;
}

/* ---- set-up ---- */

static int group_setup(void **state)
{
	struct lesson *L = calloc(1, sizeof(*L));

	assert_non_null(L);
	L->out = malloc(OUT_CAP);
	assert_non_null(L->out);
	assert_int_equal(tpc_tmpdir_make(L->dir, sizeof(L->dir)), 0);
	join(L->payments, sizeof(L->payments), L->dir, "payments");
	join(L->pageviews, sizeof(L->pageviews), L->dir, "pageviews");
	const char *gp[] = { LESSON_LOG_BIN, "gen", "--log", L->payments, "--kind", "payments",
			     "--count", PAYMENTS, "--seed", "3", NULL };
	const char *gv[] = { LESSON_LOG_BIN, "gen", "--log", L->pageviews, "--kind", "pageviews",
			     "--count", PAGEVIEWS, "--seed", "3", "--dup-pct", "3", NULL };
	run_ok(L, gp, 30000);
	run_ok(L, gv, 30000);
	*state = L;
	return 0;
}

static int group_teardown(void **state)
{
	struct lesson *L = *state;

	tpc_tmpdir_remove(L->dir);
	free(L->out);
	free(L);
	return 0;
}

/* ---- the tests ---- */

static void test_close_is_exact_after_kills_of_every_process(void **state)
{
	struct lesson *L = *state;
	struct table *truth = table_new(), *report = table_new();
	const char *args[] = { "close", "--work", path_in(L, "close"), "--log", L->payments,
			       "--batch", "100", "--kills", "12", "--fault-pct", "2", NULL };

	lesson_run(L, args);
	assert_true(result_field(L, "result ", "kills") >= 10);
	assert_true(result_field(L, "result ", "kills_consumer") >= 1);
	assert_true(result_field(L, "result ", "kills_ledger") >= 1);
	assert_true(result_field(L, "result ", "kills_offsets") >= 1);
	assert_true(result_field(L, "result ", "kills_coordinator") >= 1);
	assert_int_equal(result_field(L, "result ", "position"), 4000);
	truth_close(L, L->payments, 0, UINT64_MAX, truth);
	close_report(L, path_in(L, "close"), report);
	assert_tables_equal(truth, report, 1);
	free(truth);
	free(report);
}

static void test_close_replay_into_a_fresh_sink_matches_the_live_close(void **state)
{
	struct lesson *L = *state;
	struct table *live = table_new(), *replay = table_new();
	const char *args[] = { "close", "--work", path_in(L, "close-replay"), "--log", L->payments,
			       "--batch", "150", "--from-time", "2026-11-23", NULL };

	lesson_run(L, args);
	close_report(L, path_in(L, "close"), live);
	close_report(L, path_in(L, "close-replay"), replay);
	assert_tables_equal(live, replay, 1);
	free(live);
	free(replay);
}

static void test_close_replay_over_the_live_sink_changes_nothing(void **state)
{
	struct lesson *L = *state;
	char ledger[PATH_MAX], offsets[PATH_MAX];
	const char *args[] = { "close", "--work", path_in(L, "close"), "--log", L->payments,
			       "--batch", "100", "--from", "0", NULL };

	join(ledger, sizeof(ledger), path_in(L, "close"), "ledger");
	join(offsets, sizeof(offsets), path_in(L, "close"), "offsets");
	char *l0 = kv_dump(L, ledger), *o0 = kv_dump(L, offsets);
	lesson_run(L, args);
	assert_int_equal(result_field(L, "job ", "batches"), 0);
	assert_true(result_field(L, "job ", "confirmed") >= 40);
	char *l1 = kv_dump(L, ledger), *o1 = kv_dump(L, offsets);
	assert_string_equal(l0, l1);
	assert_string_equal(o0, o1);
	free(l0);
	free(o0);
	free(l1);
	free(o1);
}

static void test_close_as_of_an_offset_matches_the_source(void **state)
{
	struct lesson *L = *state;
	struct table *truth = table_new(), *asof = table_new();
	char ledger[PATH_MAX], offsets[PATH_MAX];

	join(ledger, sizeof(ledger), path_in(L, "close"), "ledger");
	join(offsets, sizeof(offsets), path_in(L, "close"), "offsets");
	const char *argv[] = { LESSON_CLOSE_BIN, "asof", "--ledger-data", ledger, "--offsets-data",
			       offsets, "--log", L->payments, "--offset", "1111", NULL };
	run_ok(L, argv, 30000);
	parse_close_csv(L->out, asof);
	truth_close(L, L->payments, 0, 1111, truth);
	assert_tables_equal(truth, asof, 1);
	free(truth);
	free(asof);
}

static void page_views_exact(struct lesson *L, const char *mode, const char *kills,
			     const char *fault)
{
	struct table *truth = table_new(), *got = table_new();
	char work[PATH_MAX], data[PATH_MAX];
	int xo = !strcmp(mode, "exactly-once");

	char name[64];
	snprintf(name, sizeof(name), "pv-%s", mode);
	join(work, sizeof(work), L->dir, name);
	const char *args[] = { "pageviews", "--mode", mode, "--work", work, "--log", L->pageviews,
			       "--batch", "100", "--kills", kills, "--fault-pct", fault, NULL };
	lesson_run(L, args);
	assert_true(result_field(L, "result ", "kills") >= 2);
	truth_distinct(L, L->pageviews, truth);
	join(data, sizeof(data), work, xo ? "ledger" : "store");
	counts_report(L, xo ? "--ledger-data" : "--store", data, got);
	assert_tables_equal(truth, got, 0);
	free(truth);
	free(got);
}

static void test_effectively_once_page_views_are_exact_after_kills(void **state)
{
	page_views_exact(*state, "effectively-once", "5", "0");
}

static void test_exactly_once_page_views_are_exact_after_kills(void **state)
{
	page_views_exact(*state, "exactly-once", "4", "2");
}

static void test_at_least_once_page_views_over_count_by_at_least_the_retries(void **state)
{
	struct lesson *L = *state;
	struct table *truth = table_new(), *got = table_new();
	const char *args[] = { "pageviews", "--mode", "at-least-once", "--work", path_in(L, "pv-alo"),
			       "--log", L->pageviews, "--batch", "100", "--kills", "5", NULL };
	long long t = 0, g = 0;

	lesson_run(L, args);
	int records = truth_distinct(L, L->pageviews, truth);
	char store[PATH_MAX];
	join(store, sizeof(store), path_in(L, "pv-alo"), "store");
	counts_report(L, "--store", store, got);
	for (int i = 0; i < truth->n; i++)
		t += truth->v[i].count;
	for (int i = 0; i < got->n; i++)
		g += got->v[i].count;
	assert_true(records > t);          /* the source has producer retries */
	assert_true(g >= records);         /* every record counted, some more than once */
	free(truth);
	free(got);
}

static void test_outbox_loses_nothing_and_its_duplicates_are_absorbed(void **state)
{
	struct lesson *L = *state;
	struct table *truth = table_new(), *got = table_new();
	char log[PATH_MAX], db[PATH_MAX], store[PATH_MAX];
	const char *args[] = { "outbox", "--mode", "outbox", "--work", path_in(L, "outbox"),
			       "--orders", "300", "--crash-pct", "3", "--kills", "2", NULL };

	lesson_run(L, args);
	join(log, sizeof(log), path_in(L, "outbox"), "log");
	join(db, sizeof(db), path_in(L, "outbox"), "db");
	const char *consume[] = { "pageviews", "--mode", "effectively-once", "--work",
				  path_in(L, "outbox-consumer"), "--log", log, NULL };
	lesson_run(L, consume);
	const char *dump[] = { LESSON_OUTBOX_BIN, "dump", "--db", db, NULL };
	run_ok(L, dump, 30000);
	int orders = 0;
	for (char *line = strtok(L->out, "\n"); line; line = strtok(NULL, "\n"), orders++) {
		char merchant[64];
		assert_int_equal(sscanf(line, "P %*s %*s %63s", merchant), 1);
		table_at(truth, merchant)->count++;
	}
	assert_int_equal(orders, 300);
	join(store, sizeof(store), path_in(L, "outbox-consumer"), "store");
	counts_report(L, "--store", store, got);
	assert_tables_equal(truth, got, 0);
	free(truth);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_is_exact_after_kills_of_every_process),
		cmocka_unit_test(test_close_replay_into_a_fresh_sink_matches_the_live_close),
		cmocka_unit_test(test_close_replay_over_the_live_sink_changes_nothing),
		cmocka_unit_test(test_close_as_of_an_offset_matches_the_source),
		cmocka_unit_test(test_effectively_once_page_views_are_exact_after_kills),
		cmocka_unit_test(test_exactly_once_page_views_are_exact_after_kills),
		cmocka_unit_test(test_at_least_once_page_views_over_count_by_at_least_the_retries),
		cmocka_unit_test(test_outbox_loses_nothing_and_its_duplicates_are_absorbed),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
