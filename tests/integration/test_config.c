/*
 * test_config.c - tpc-coordinator's config file (--config, INI), its precedence under
 * the command line, --check-config, and SIGHUP reloads, against the real binary.
 *
 * The transaction timeout is the observable: a transaction begun and never committed
 * is aborted when it runs out, and a StatusQuery then says ABORTED instead of PENDING.
 * A short timeout shows up within a second; the default (60 s) would not within the
 * test's deadline, so "ABORTED soon" proves which value is in force.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmd_run.h"
#include "coord_harness.h"

/* Write @p text to DIR/@p name (replacing it); the path goes to @p path. */
static void write_file(struct cluster *c, const char *name, const char *text, char *path,
		       size_t len)
{
	char tmp[PATH_MAX + 64];
	FILE *f;

	snprintf(path, len, "%s/%s", c->dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0); /* a reload never sees half a file */
}

/* Run tpc-coordinator with these arguments (NULL-terminated) to completion. */
static struct cmd_result *run_coord(struct cluster *c, ...)
{
	struct cmd_result *r = calloc(1, sizeof(*r));
	char *argv[24] = { TPC_COORDINATOR_BIN };
	int n = 1;
	va_list ap;

	assert_non_null(r);
	va_start(ap, c);
	while (n < 23 && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(cmd_run(c->dir, argv, NULL, WAIT_MS, r), 0);
	return r;
}

static void expect_has(const char *what, const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("%s has no \"%s\":\n%s", what, want, text);
}

static void status_of(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus *st)
{
	int rc = tpc_wc_status(wc, txid, st);

	if (rc)
		fail_msg("status %llu: %s", (unsigned long long)txid, tpc_wc_strerror(rc));
}

/* Poll StatusQuery until @p txid is ABORTED (its timeout ran out); the time it took. */
static uint64_t wait_aborted(tpc_wc *wc, uint64_t txid)
{
	uint64_t start = now_ms(), deadline = start + WAIT_MS;
	Tpc__TxnStatus st = TPC__TXN_STATUS__STATUS_PENDING;

	while (now_ms() < deadline) {
		status_of(wc, txid, &st);
		if (st == TPC__TXN_STATUS__STATUS_ABORTED)
			return now_ms() - start;
		assert_int_equal(st, TPC__TXN_STATUS__STATUS_PENDING);
		usleep(20 * 1000);
	}
	fail_msg("txn %llu was not aborted by its timeout within %d ms", (unsigned long long)txid,
		 WAIT_MS);
	return 0;
}

static void expect_pending(tpc_wc *wc, uint64_t txid)
{
	Tpc__TxnStatus st;

	status_of(wc, txid, &st);
	assert_int_equal(st, TPC__TXN_STATUS__STATUS_PENDING);
}

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ---- the file, and the command line over it -------------------------------------- */

static void test_config_file_is_applied(void **state)
{
	struct cluster *c = *state;
	char conf[PATH_MAX + 32];

	write_file(c, "coord.conf",
		   "# the transaction timeout is what this test observes\n"
		   "[coordinator]\n"
		   "txn-timeout = 250ms   ; short\n"
		   "log-level = debug\n"
		   "admin = off\n",
		   conf, sizeof(conf));
	coord_start(c, NULL, "--config", conf, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	wait_aborted(wc, txid);
	coord_log_has(c, "DEBUG"); /* log-level = debug took effect too */
}

static void test_command_line_overrides_the_file(void **state)
{
	struct cluster *c = *state;
	char conf[PATH_MAX + 32];

	write_file(c, "coord.conf",
		   "txn-timeout = 60s\nprepare-timeout = 7s\nadmin = off\nmax-conns = 100\n", conf,
		   sizeof(conf));
	/* What --check-config says the running server would use... */
	struct cmd_result *r = run_coord(c, "--data", c->data, "--txn-timeout", "250ms",
					 "--config", conf, "--prepare-timeout", "9s",
					 "--check-config", NULL);
	assert_int_equal(r->code, 0);
	expect_has("--check-config output", r->out, "\ntxn-timeout = 250ms\n");
	expect_has("--check-config output", r->out, "\nprepare-timeout = 9s\n");
	expect_has("--check-config output", r->out, "\nmax-conns = 100\n"); /* the file's */
	free(r);
	/* ...and what the running server does: the command line's 250 ms, not the file's 60 s. */
	coord_start(c, NULL, "--config", conf, "--txn-timeout", "250ms", NULL);
	tpc_wc *wc = client_open(c, NULL);
	wait_aborted(wc, client_begin(wc, NULL));
}

/* ---- bad files -------------------------------------------------------------------- */

struct bad_case {
	const char *text;
	const char *message; /* after "FILE:" */
};

static void test_bad_file_is_rejected_with_file_and_line(void **state)
{
	static const struct bad_case cases[] = {
		{ "# comment\nlisten = 127.0.0.1:7400\ntxn-timout = 5s\n",
		  ":3: unknown key 'txn-timout'" },
		{ "\ntxn-timeout = soon\n", ":2: txn-timeout = soon: expected a duration" },
		{ "max-participants = 65\n", ":1: max-participants = 65: expected a number from 1 to 64" },
		{ "log-level = loud\n", ":1: log-level = loud: expected debug, info, warn or error" },
		{ "txn-timeout = 5s\n[coordinator]\ntxn-timeout = 6s\n",
		  ":3: txn-timeout is set twice (first on line 1)" },
		{ "[participant]\nname = x\n", ":2: unknown section [participant]" },
		{ "txn-timeout 5s\n", ":1: expected 'key = value'" },
		{ "config = /etc/other.conf\n", ":1: unknown key 'config'" },
		{ "allow-fault-injection = perhaps\n", ":1: allow-fault-injection = perhaps: expected true or false" },
	};
	struct cluster *c = *state;
	char conf[PATH_MAX + 32], want[PATH_MAX + 160];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(c, "bad.conf", cases[i].text, conf, sizeof(conf));
		snprintf(want, sizeof(want), "%s%s", conf, cases[i].message);
		struct cmd_result *r = run_coord(c, "--config", conf, "--data", c->data,
						 "--check-config", NULL);
		assert_int_equal(r->code, 2);
		expect_has("stderr", r->err, want);
		free(r);
		/* Starting for real fails the same way, before anything is opened. */
		r = run_coord(c, "--config", conf, "--data", c->data, "--admin", "off", NULL);
		assert_int_equal(r->code, 2);
		expect_has("stderr", r->err, want);
		assert_false(exists(c->data));
		free(r);
	}
}

static void test_bad_command_line_value_names_the_option(void **state)
{
	struct cluster *c = *state;
	struct cmd_result *r = run_coord(c, "--data", c->data, "--txn-timeout", "0", "--check-config",
					 NULL);

	assert_int_equal(r->code, 2);
	expect_has("stderr", r->err, "--txn-timeout 0: expected a duration");
	free(r);
	r = run_coord(c, "--config", "/nonexistent/tpc.conf", "--data", c->data, "--check-config",
		      NULL);
	assert_int_equal(r->code, 2);
	expect_has("stderr", r->err, "cannot read the config file /nonexistent/tpc.conf");
	free(r);
}

/* ---- --check-config ----------------------------------------------------------------- */

static void test_check_config_validates_without_opening_the_log(void **state)
{
	struct cluster *c = *state;
	char conf[PATH_MAX + 32], line[PATH_MAX + 160];

	snprintf(line, sizeof(line), "data = %s\nlisten = 127.0.0.1:7999\nsweep-interval = 200ms\n",
		 c->data);
	write_file(c, "ok.conf", line, conf, sizeof(conf));
	struct cmd_result *r = run_coord(c, "--config", conf, "--check-config", NULL);
	assert_int_equal(r->code, 0);
	expect_has("stdout", r->out, "the configuration is valid");
	expect_has("stdout", r->out, "\nsweep-interval = 200ms\n");
	expect_has("stdout", r->out, "\nlisten = 127.0.0.1:7999\n");
	assert_false(exists(c->data)); /* the log folder was not created, let alone opened */
	free(r);

	/* The dump is itself a valid config file. */
	char dumped[PATH_MAX + 32];
	r = run_coord(c, "--config", conf, "--check-config", NULL);
	write_file(c, "dumped.conf", r->out, dumped, sizeof(dumped));
	free(r);
	r = run_coord(c, "--config", dumped, "--check-config", NULL);
	assert_int_equal(r->code, 0);
	free(r);

	r = run_coord(c, "--check-config", NULL);
	assert_int_equal(r->code, 2);
	expect_has("stderr", r->err, "no data folder");
	free(r);
	r = run_coord(c, "--data", c->data, "--listen", "127.0.0.1:notaport", "--check-config", NULL);
	assert_int_equal(r->code, 2);
	expect_has("stderr", r->err, "listen 127.0.0.1:notaport");
	free(r);
}

/* The admin API off loopback needs a token: without one the coordinator does not start
 * (nor does --check-config pass); with one it does. */
static void test_non_loopback_admin_without_a_token_refuses_to_start(void **state)
{
	struct cluster *c = *state;
	char addr[64], token[PATH_MAX + 32];

	snprintf(addr, sizeof(addr), "0.0.0.0:%d", tpc_free_port());
	struct cmd_result *r = run_coord(c, "--data", c->data, "--admin", addr, NULL);
	assert_int_equal(r->code, 2);
	expect_has("stderr", r->err, "is not a loopback address: give admin-token-file");
	assert_false(exists(c->data)); /* refused before the log was opened */
	free(r);
	r = run_coord(c, "--data", c->data, "--admin", addr, "--check-config", NULL);
	assert_int_equal(r->code, 2);
	free(r);
	write_file(c, "admin.token", "t0ken\n", token, sizeof(token));
	r = run_coord(c, "--data", c->data, "--admin", addr, "--admin-token-file", token,
		      "--check-config", NULL);
	assert_int_equal(r->code, 0);
	free(r);
}

#define VALUE_LINE_MAX (PATH_MAX + 96)

/* The options --check-config lists (every option of the table that a config file may
 * set), with their defaults: "key = value" lines, or "# key =" for those without one. */
static struct cmd_result *default_dump(struct cluster *c)
{
	struct cmd_result *r = run_coord(c, "--data", c->data, "--check-config", NULL);

	assert_int_equal(r->code, 0);
	return r;
}

/* The next option key in a dump (or a config file), from @p *at on: its name in @p key
 * and its value (NULL: none) in @p value. 0 at the end. */
static int next_key(char **at, char *key, size_t keylen, const char **value)
{
	char *line;

	while ((line = strsep(at, "\n")) != NULL) {
		const char *k = line[0] == '#' && line[1] == ' ' ? line + 2 : line;
		size_t n = strspn(k, "abcdefghijklmnopqrstuvwxyz-");
		if (n == 0 || n >= keylen || strncmp(k + n, " =", 2) != 0)
			continue;
		memcpy(key, k, n);
		key[n] = '\0';
		*value = line[0] == '#' || k[n + 2] != ' ' ? NULL : k + n + 3;
		return 1;
	}
	return 0;
}

/* packaging/coordinator.conf is valid, documents every key there is, and names no other. */
static void test_sample_config_documents_every_key(void **state)
{
	struct cluster *c = *state;
	char *sample = NULL, *save = NULL, want[160];
	size_t cap = 0;
	FILE *f = fopen(TPC_SAMPLE_CONF, "r");

	assert_non_null(f);
	assert_true(getdelim(&sample, &cap, '\0', f) > 0);
	fclose(f);
	char token[PATH_MAX + 32];

	/* The sample names /etc/tpc/admin.token, which the unit makes on first start. */
	write_file(c, "admin.token", "t0ken\n", token, sizeof(token));
	struct cmd_result *r = run_coord(c, "--config", TPC_SAMPLE_CONF, "--admin-token-file", token,
					 "--check-config", NULL);
	assert_int_equal(r->code, 0);
	for (char *line = strtok_r(r->out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' && line[1] == ' ' && strstr(line, "configuration is valid"))
			continue;
		const char *key = line[0] == '#' ? line + 2 : line;
		size_t n = strcspn(key, " ");
		snprintf(want, sizeof(want), "\n%.*s = ", (int)n, key);
		if (!strstr(sample, want)) {
			snprintf(want, sizeof(want), "\n# %.*s = ", (int)n, key);
			if (!strstr(sample, want))
				fail_msg("%s does not document '%.*s'", TPC_SAMPLE_CONF, (int)n, key);
		}
	}
	free(r);

	/* ...and names no key the coordinator does not have, commented-out ones included. */
	struct cmd_result *dump = default_dump(c);
	char *at = sample, key[64], want_key[80];
	const char *value;
	while (next_key(&at, key, sizeof(key), &value)) {
		snprintf(want, sizeof(want), "\n%s = ", key);
		snprintf(want_key, sizeof(want_key), "\n# %s =", key);
		if (!strstr(dump->out, want) && !strstr(dump->out, want_key))
			fail_msg("%s names '%s', which is not an option", TPC_SAMPLE_CONF, key);
	}
	free(dump);
	free(sample);
}

/* --help's entry for --@p key, from its option line to the next option line, on one
 * line. */
static char *help_entry(const char *help, const char *key, char *buf, size_t len)
{
	char want[96];
	const char *p, *end;

	snprintf(want, sizeof(want), "--%s ", key);
	p = strstr(help, want);
	while (p && !(p[-1] == ' ' && (p[-2] == ' ' || p[-2] == ',')))
		p = strstr(p + 1, want); /* the option line, not a mention in prose */
	if (!p) {
		snprintf(want, sizeof(want), "--%s\n", key);
		p = strstr(help, want);
	}
	if (!p)
		fail_msg("--help does not list --%s:\n%s", key, help);
	end = p + strcspn(p, "\n");
	while (strncmp(end, "\n                               ", 32) == 0)
		end += 1 + strcspn(end + 1, "\n"); /* continuation lines */
	size_t n = 0; /* the text with its line breaks and indents as single spaces */
	for (; p < end && n + 1 < len; p++)
		if (*p != ' ' && *p != '\n')
			buf[n++] = *p;
		else if (n && buf[n - 1] != ' ')
			buf[n++] = ' ';
	buf[n] = '\0';
	return buf;
}

/* Every option of the table is in --help, with the default the server really uses. */
static void test_help_lists_every_option_with_its_default(void **state)
{
	struct cluster *c = *state;
	struct cmd_result *dump = default_dump(c), *help = run_coord(c, "--help", NULL);
	char *at = dump->out, key[64], entry[1024], want[160];
	const char *value;
	int n = 0;

	assert_int_equal(help->code, 0);
	while (next_key(&at, key, sizeof(key), &value)) {
		help_entry(help->out, key, entry, sizeof(entry));
		n++;
		if (!value || strcmp(key, "data") == 0)
			continue; /* no default (data: the test's own folder) */
		snprintf(want, sizeof(want), "default %s", value);
		if (strcmp(key, "tls") == 0) /* its default depends on tls-cert */
			snprintf(want, sizeof(want), "else %s", value);
		if (!strstr(entry, want))
			fail_msg("--help's --%s does not say \"%s\":\n%s", key, want, entry);
	}
	assert_true(n >= 30);
	free(dump);
	free(help);
}

/* The sample says its values are the defaults (but data and admin-token-file): the
 * configuration it makes is the one built from the table alone. */
static void test_sample_config_values_are_the_defaults(void **state)
{
	struct cluster *c = *state;
	char token[PATH_MAX + 32], key[64], want[VALUE_LINE_MAX];
	const char *value;

	write_file(c, "admin.token", "t0ken\n", token, sizeof(token));
	struct cmd_result *r = run_coord(c, "--config", TPC_SAMPLE_CONF, "--admin-token-file", token,
					 "--data", c->data, "--check-config", NULL);
	struct cmd_result *dump = default_dump(c);
	char *at = r->out;

	assert_int_equal(r->code, 0);
	while (next_key(&at, key, sizeof(key), &value)) {
		if (strcmp(key, "admin-token-file") == 0)
			continue;
		snprintf(want, sizeof(want), value ? "\n%s = %s\n" : "\n# %s =\n", key, value);
		if (!strstr(dump->out, want))
			fail_msg("%s sets %s = %s, not the default:\n%s", TPC_SAMPLE_CONF, key,
				 value ? value : "", dump->out);
	}
	free(dump);
	free(r);
}

/* ---- SIGHUP ------------------------------------------------------------------------ */

static void sighup(struct cluster *c)
{
	assert_int_equal(kill(tpc_proc_pid(c->coord), SIGHUP), 0);
}

static void test_sighup_changes_the_txn_timeout(void **state)
{
	struct cluster *c = *state;
	char conf[PATH_MAX + 32];

	write_file(c, "coord.conf", "txn-timeout = 60s\nadmin = off\n", conf, sizeof(conf));
	coord_start(c, NULL, "--config", conf, NULL);
	tpc_wc *wc = client_open(c, NULL);
	uint64_t before = client_begin(wc, NULL); /* begun under the 60 s timeout */

	write_file(c, "coord.conf",
		   "txn-timeout = 300ms\nadmin = off\ngroup-commit = 16\nlog-level = debug\n", conf,
		   sizeof(conf));
	sighup(c);
	coord_wait_log(c, "SIGHUP: reloaded");
	coord_log_has(c, "txn-timeout 1m -> 300ms");
	coord_log_has(c, "log-level info -> debug");
	coord_log_has(c, "needs a restart: group-commit 4096 -> 16");

	uint64_t after = client_begin(wc, NULL);
	uint64_t took = wait_aborted(wc, after);
	assert_true(took < 5000);
	expect_pending(wc, before); /* a reload does not shorten transactions already begun */
}

static void test_sighup_with_a_bad_file_keeps_running(void **state)
{
	struct cluster *c = *state;
	char conf[PATH_MAX + 32], want[PATH_MAX + 64];

	write_file(c, "coord.conf", "txn-timeout = 300ms\nadmin = off\n", conf, sizeof(conf));
	coord_start(c, NULL, "--config", conf, NULL);
	write_file(c, "coord.conf", "txn-timeout = 60s\nadmin = off\nbogus = 1\n", conf,
		   sizeof(conf));
	sighup(c);
	snprintf(want, sizeof(want), "SIGHUP: %s:3: unknown key 'bogus'", conf);
	coord_wait_log(c, want);
	coord_log_has(c, "keeping the running configuration");
	assert_true(tpc_proc_alive(c->coord));

	/* Still serving, still with the 300 ms timeout (the bad file's 60 s was not half-applied). */
	tpc_wc *wc = client_open(c, NULL);
	assert_true(wait_aborted(wc, client_begin(wc, NULL)) < 5000);

	/* Fixed, the next SIGHUP goes through. */
	write_file(c, "coord.conf", "txn-timeout = 400ms\nadmin = off\n", conf, sizeof(conf));
	sighup(c);
	coord_wait_log(c, "txn-timeout 300ms -> 400ms");
	coord_term_clean(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_file_is_applied, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_command_line_overrides_the_file, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_bad_file_is_rejected_with_file_and_line,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_bad_command_line_value_names_the_option,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_non_loopback_admin_without_a_token_refuses_to_start,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_check_config_validates_without_opening_the_log,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_sample_config_documents_every_key,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_help_lists_every_option_with_its_default,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_sample_config_values_are_the_defaults,
						cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_sighup_changes_the_txn_timeout, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_sighup_with_a_bad_file_keeps_running,
						cluster_setup, cluster_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
