/*
 * test_bench.c - tpc-bench end to end, kept short: with --spawn it starts its own
 * tpc-coordinator and two tpc-kv services, runs 300 measured transactions from 4
 * clients, prints one JSON object holding every figure, stops the services and removes
 * its run folder. Also: --calibrate adds the fsync and round-trip figures and the
 * ratios; --memtest reports the coordinator's bytes per open transaction; nonsense
 * option combinations exit 2 before anything starts.
 *
 * The JSON is checked field by field with a small scanner (the object is flat apart
 * from named sections), not with a JSON library, so the test needs nothing extra.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "proc.h"

#define RUN_MS 120000
#define OUT_CAP 65536

struct fx {
	char dir[PATH_MAX];
	char out[OUT_CAP];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || tpc_tmpdir_make(f->dir, sizeof(f->dir)))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tpc_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* Run tpc-bench with @p args (NULL-terminated) plus --dir; return its exit code. */
static int bench(struct fx *f, ...)
{
	char *argv[32] = { TPC_BENCH_BIN, "--dir", f->dir };
	int n = 3, status = 0;
	va_list ap;

	va_start(ap, f);
	while (n < 31 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	int rc = tpc_run_capture(argv, f->out, sizeof(f->out), RUN_MS, &status);
	assert_int_equal(rc, 0);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The number after "key": inside the object that follows "section": (NULL: anywhere). */
static double field(const char *json, const char *section, const char *key)
{
	char pat[96];
	const char *from = json, *at;

	if (section) {
		snprintf(pat, sizeof(pat), "\"%s\":", section);
		from = strstr(json, pat);
		if (!from)
			fail_msg("no section \"%s\" in: %s", section, json);
	}
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	at = strstr(from, pat);
	if (!at)
		fail_msg("no field \"%s\" (section %s) in: %s", key, section ? section : "-", json);
	char *end;
	double v = strtod(at + strlen(pat), &end);
	if (end == at + strlen(pat))
		fail_msg("field \"%s\" is not a number in: %s", key, json);
	return v;
}

static int count_run_folders(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strncmp(e->d_name, "tpc-bench-", 10) == 0;
	closedir(d);
	return n;
}

static void test_bench_spawn_json_reports_every_figure(void **state)
{
	struct fx *f = *state;
	const char *j = f->out;

	assert_int_equal(bench(f, "--spawn", "--clients", "4", "--participants", "2", "--txns",
			       "300", "--json", NULL), 0);
	assert_true(j[0] == '{' && strchr(j, '}'));
	assert_non_null(strstr(j, "\"tool\":\"tpc-bench\""));
	assert_int_equal((int)field(j, "params", "clients"), 4);
	assert_int_equal((int)field(j, "params", "participants"), 2);
	assert_int_equal((int)field(j, "params", "txns"), 300);
	double committed = field(j, "results", "committed");
	double settled = committed + field(j, "results", "aborted") + field(j, "results", "errors");
	assert_int_equal((int)settled, 300);
	assert_true(committed >= 290);
	assert_true(field(j, "results", "throughput") > 0);
	assert_true(field(j, "results", "window_s") > 0);
	double p50 = field(j, "latency_us", "p50"), p90 = field(j, "latency_us", "p90");
	double p99 = field(j, "latency_us", "p99"), p999 = field(j, "latency_us", "p999");
	double max = field(j, "latency_us", "max");
	assert_true(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max);
	assert_true(field(j, "cpu", "us_per_txn") > 0);
	assert_non_null(strstr(j, "\"name\":\"coordinator\""));
	assert_non_null(strstr(j, "\"name\":\"kv1\""));
	assert_non_null(strstr(j, "\"name\":\"kv2\""));
	assert_non_null(strstr(j, "\"name\":\"tpc-bench\""));
	assert_non_null(strstr(j, "\"machine\":{"));
	assert_int_equal(count_run_folders(f->dir), 0); /* stopped and removed */
}

static void test_bench_calibrate_reports_ratios_to_fsync(void **state)
{
	struct fx *f = *state;
	const char *j = f->out;

	assert_int_equal(bench(f, "--spawn", "--calibrate", "--calibrate-time", "200ms",
			       "--clients", "2", "--participants", "1", "--txns", "50",
			       "--warmup", "0", "--json", NULL), 0);
	assert_true(field(j, "fsync", "ops_per_s") > 0);
	assert_true(field(j, "fsync", "mean_us") > 0);
	assert_true(field(j, "rtt", "mean_us") > 0);
	assert_true(field(j, "ratios", "throughput_per_fsync_rate") > 0);
	assert_true(field(j, "ratios", "p50_per_fsync_time") > 0);
	assert_int_equal(count_run_folders(f->dir), 0);
}

static void test_bench_memtest_reports_bytes_per_open_txn(void **state)
{
	struct fx *f = *state;
	const char *j = f->out;

	assert_int_equal(bench(f, "--spawn", "--memtest", "2000", "--participants", "0",
			       "--json", NULL), 0);
	assert_int_equal((int)field(j, "memtest", "open_txns"), 2000);
	assert_int_equal((int)field(j, "memtest", "failed"), 0);
	assert_true(field(j, "memtest", "rss_after_kib") > 0);
	assert_non_null(strstr(j, "\"bytes_per_txn\":"));
}

static void test_bench_rejects_conflicting_options(void **state)
{
	struct fx *f = *state;

	assert_int_equal(bench(f, "--spawn", "--coordinator", "127.0.0.1:1", NULL), 2);
	assert_int_equal(bench(f, "--spawn", "--txns", "10", "--duration", "1s", NULL), 2);
	assert_int_equal(bench(f, "--coordinator", "127.0.0.1:1", "--participants", "2", NULL), 2);
	assert_int_equal(bench(f, "--spawn", "--clients", "0", NULL), 2);
	assert_int_equal(count_run_folders(f->dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bench_spawn_json_reports_every_figure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bench_calibrate_reports_ratios_to_fsync, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bench_memtest_reports_bytes_per_open_txn, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bench_rejects_conflicting_options, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
