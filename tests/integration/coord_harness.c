/*
 * coord_harness.c - the coordinator test cluster (see coord_harness.h).
 *
 * Owns the temporary folder, the process set and the client handles of one test.
 * Invariant: everything a test starts is registered here before the test can fail,
 * so cluster_teardown() can always clean up.
 */
#include "coord_harness.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "util.h"
#include "wire.h"

uint64_t now_ms(void)
{
	return tpc_now_ms();
}

int cluster_setup(void **state)
{
	struct cluster *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	unsetenv("TPC_FAULTS"); /* only coord_start() arms faults, and only for one child */
	c->procs = tpc_procs_new();
	assert_non_null(c->procs);
	assert_int_equal(tpc_tmpdir_make(c->dir, sizeof(c->dir)), 0);
	snprintf(c->data, sizeof(c->data), "%s/coord", c->dir);
	c->port = tpc_free_port();
	assert_true(c->port > 0);
	snprintf(c->hostport, sizeof(c->hostport), "127.0.0.1:%d", c->port);
	*state = c;
	return 0;
}

int cluster_teardown(void **state)
{
	struct cluster *c = *state;

	for (int i = 0; i < CLUSTER_MAX_CLIENTS; i++)
		tpc_wc_free(c->clients[i]);
	tpc_procs_free(c->procs);
	for (int i = 0; i < c->ncoord_args; i++)
		free(c->coord_args[i]);
	assert_int_equal(tpc_tmpdir_release(c->dir), 0);
	free(c);
	return 0;
}

/* ---- coordinator ----------------------------------------------------------------- */

static void coord_spawn(struct cluster *c, const char *faults)
{
	char *argv[8 + CLUSTER_MAX_ARGS] = { TPC_COORDINATOR_BIN, "--listen", c->hostport,
					     "--data", c->data };
	int n = 5;

	for (int i = 0; i < c->ncoord_args; i++)
		argv[n++] = c->coord_args[i];
	argv[n] = NULL;
	/* One stderr log per start, so a test can read what this incarnation said. */
	snprintf(c->coord_log, sizeof(c->coord_log), "%s/coord-%d.log", c->dir, ++c->coord_starts);
	if (faults)
		assert_int_equal(setenv("TPC_FAULTS", faults, 1), 0);
	c->coord = tpc_proc_spawn(c->procs, argv, c->coord_log);
	if (faults)
		unsetenv("TPC_FAULTS"); /* the child has exec'ed: its environment is its own */
	assert_non_null(c->coord);
	if (tpc_wait_port("127.0.0.1", c->port, WAIT_MS) != 0) {
		tpc_proc_dump(c->coord);
		fail_msg("the coordinator did not listen on %s within %d ms", c->hostport, WAIT_MS);
	}
}

void coord_start(struct cluster *c, const char *faults, ...)
{
	va_list ap;
	const char *a;

	va_start(ap, faults);
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(c->ncoord_args < CLUSTER_MAX_ARGS);
		c->coord_args[c->ncoord_args] = strdup(a);
		assert_non_null(c->coord_args[c->ncoord_args]);
		c->ncoord_args++;
	}
	va_end(ap);
	coord_spawn(c, faults);
}

void coord_restart(struct cluster *c)
{
	assert_false(tpc_proc_alive(c->coord));
	coord_spawn(c, NULL);
}

void coord_kill9(struct cluster *c)
{
	assert_int_equal(tpc_proc_kill9(c->coord), 0);
}

void coord_term_clean(struct cluster *c)
{
	int st = -1;

	if (tpc_proc_term(c->coord, WAIT_MS, &st) != 0) {
		tpc_proc_dump(c->coord);
		fail_msg("the coordinator did not stop within %d ms of SIGTERM", WAIT_MS);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		tpc_proc_dump(c->coord);
		fail_msg("the coordinator stopped with wait status 0x%x, not exit 0", st);
	}
}

/* Whether a line of the current coordinator incarnation's log holds @p text. */
static int coord_log_contains(struct cluster *c, const char *text)
{
	FILE *f = fopen(c->coord_log, "r");
	char line[2048];
	int found = 0;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

void coord_log_has(struct cluster *c, const char *text)
{
	if (!coord_log_contains(c, text)) {
		tpc_proc_dump(c->coord);
		fail_msg("the coordinator log has no \"%s\"", text);
	}
}

void coord_wait_log(struct cluster *c, const char *text)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (now_ms() < deadline) {
		if (coord_log_contains(c, text))
			return;
		usleep(10 * 1000);
	}
	coord_log_has(c, text); /* fails, with the log */
}

/* ---- participants ---------------------------------------------------------------- */

uint64_t part_wait_ready(struct cluster *c, int i)
{
	struct cluster_part *p = &c->parts[i];
	const char *line = tpc_proc_wait_line(p->proc, "ready ", WAIT_MS);
	unsigned long long epoch = 0;

	if (!line)
		fail_msg("participant %s never said ready", p->name);
	assert_int_equal(sscanf(line, "ready %llu", &epoch), 1);
	p->epoch = epoch;
	return epoch;
}

uint64_t part_start(struct cluster *c, int i, ...)
{
	struct cluster_part *p = &c->parts[i];
	char *argv[8 + CLUSTER_MAX_ARGS] = { TPC_TESTPART_BIN, "--coordinator", c->hostport,
					     "--name", p->name, "--state", p->state };
	int n = 7;
	va_list ap;

	assert_true(i >= 0 && i < CLUSTER_MAX_PARTS);
	snprintf(p->name, sizeof(p->name), "p%d", i);
	snprintf(p->state, sizeof(p->state), "%s/p%d.state", c->dir, i);
	snprintf(p->log, sizeof(p->log), "%s/p%d.log", c->dir, i);
	va_start(ap, i);
	while (n < 7 + CLUSTER_MAX_ARGS && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	p->proc = tpc_proc_spawn(c->procs, argv, p->log);
	assert_non_null(p->proc);
	return part_wait_ready(c, i);
}

void part_cmd(struct cluster *c, int i, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	assert_int_equal(tpc_proc_write_line(c->parts[i].proc, line), 0);
}

void part_expect(struct cluster *c, int i, const char *fmt, ...)
{
	char want[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	/* The prefix is the whole line plus nothing: compare exactly after the match. */
	for (;;) {
		const char *got = tpc_proc_wait_line(c->parts[i].proc, want, WAIT_MS);
		if (!got)
			fail_msg("participant %s: no line \"%s\"", c->parts[i].name, want);
		if (strcmp(got, want) == 0)
			return;
		/* e.g. "acked 12" matched "acked 123": keep looking */
	}
}

void part_expect_none(struct cluster *c, int i, const char *fmt, ...)
{
	char prefix[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	const char *got = tpc_proc_take_line(c->parts[i].proc, prefix);
	if (got) {
		tpc_proc_dump(c->parts[i].proc);
		fail_msg("participant %s printed \"%s\"", c->parts[i].name, got);
	}
}

void part_join(struct cluster *c, int i, uint64_t txid)
{
	part_cmd(c, i, "join %llu", (unsigned long long)txid);
	part_expect(c, i, "joined %llu", (unsigned long long)txid);
}

void part_set_vote(struct cluster *c, int i, uint64_t txid, const char *vote)
{
	part_cmd(c, i, "vote %llu %s", (unsigned long long)txid, vote);
	part_expect(c, i, "vote-set %llu %s", (unsigned long long)txid, vote);
}

int part_state_count(struct cluster *c, int i, char kind, uint64_t txid)
{
	FILE *f = fopen(c->parts[i].state, "r");
	char want[48], line[128];
	int n = 0;

	if (!f)
		return 0;
	/* "K TXID", or "K TXID INC" (a P line names the incarnation that joined) */
	int len = snprintf(want, sizeof(want), "%c %llu", kind, (unsigned long long)txid);
	while (fgets(line, sizeof(line), f))
		n += strncmp(line, want, (size_t)len) == 0 &&
		     (line[len] == '\n' || line[len] == ' ');
	fclose(f);
	return n;
}

/* ---- clients --------------------------------------------------------------------- */

static void client_register(struct cluster *c, tpc_wc *wc)
{
	for (int i = 0; i < CLUSTER_MAX_CLIENTS; i++) {
		if (!c->clients[i]) {
			c->clients[i] = wc;
			return;
		}
	}
	tpc_wc_free(wc);
	fail_msg("too many clients for the harness");
}

tpc_wc *client_open_raw(struct cluster *c)
{
	tpc_wc *wc = NULL;
	char err[160];
	int rc = tpc_wc_connect(c->hostport, WAIT_MS, &wc, err, sizeof(err));

	if (rc != 0)
		fail_msg("connect %s: %s", c->hostport, err);
	client_register(c, wc);
	tpc_wc_set_timeout(wc, WAIT_MS);
	return wc;
}

tpc_wc *client_open(struct cluster *c, uint64_t *epoch)
{
	tpc_wc *wc = client_open_raw(c);
	uint64_t e = 0;
	int rc = tpc_wc_hello(wc, TPC__ROLE__ROLE_CLIENT, "test-client", &e);

	if (rc != 0)
		fail_msg("client hello: %s (%s)", tpc_wc_strerror(rc), tpc_wc_errmsg(wc));
	if (epoch)
		*epoch = e;
	return wc;
}

void client_close(struct cluster *c, tpc_wc *wc)
{
	for (int i = 0; i < CLUSTER_MAX_CLIENTS; i++)
		if (c->clients[i] == wc)
			c->clients[i] = NULL;
	tpc_wc_free(wc);
}

uint64_t client_begin(tpc_wc *wc, const char *key)
{
	struct tpc_wc_begin b;
	int rc = tpc_wc_begin(wc, key, 0, &b);

	if (rc != 0)
		fail_msg("begin: %s (%s)", tpc_wc_strerror(rc), tpc_wc_errmsg(wc));
	assert_int_equal(b.result, TPC__BEGIN_RESULT__BEGIN_STARTED);
	assert_int_equal(b.fenced_txid, 0);
	assert_true(b.txid != 0);
	return b.txid;
}

uint64_t client_begin_joined(struct cluster *c, tpc_wc *wc, const char *key, int nparts)
{
	uint64_t txid = client_begin(wc, key);

	for (int i = 0; i < nparts; i++)
		part_join(c, i, txid);
	return txid;
}

static const char *outcome_name(Tpc__OutcomeKind k)
{
	return tpc_wire_outcome_name(k);
}

void client_commit_expect(tpc_wc *wc, uint64_t txid, Tpc__OutcomeKind want, char *reason,
			  size_t reason_len)
{
	struct tpc_wc_outcome o;
	int rc = tpc_wc_commit(wc, txid, &o);

	if (rc != 0)
		fail_msg("commit %llu: %s (%s)", (unsigned long long)txid, tpc_wc_strerror(rc),
			 tpc_wc_errmsg(wc));
	if (o.outcome != want)
		fail_msg("commit %llu: %s (%s), expected %s", (unsigned long long)txid,
			 outcome_name(o.outcome), o.reason, outcome_name(want));
	assert_int_equal(o.txid, txid);
	if (reason)
		snprintf(reason, reason_len, "%s", o.reason);
}

uint64_t client_preparing_txn(struct cluster *c, tpc_wc *wc)
{
	uint64_t txid = client_begin_joined(c, wc, NULL, 2);

	client_send_commit(wc, txid);
	part_expect(c, 0, "voted %llu YES", (unsigned long long)txid);
	part_expect(c, 1, "silent %llu", (unsigned long long)txid);
	return txid;
}

void client_send_commit(tpc_wc *wc, uint64_t txid)
{
	Tpc__Envelope req = TPC__ENVELOPE__INIT;
	Tpc__Commit cm = TPC__COMMIT__INIT;

	cm.txid = txid;
	req.body_case = TPC__ENVELOPE__BODY_COMMIT;
	req.commit = &cm;
	req.request_id = tpc_wc_next_request_id(wc);
	assert_int_equal(tpc_wc_send(wc, &req), 0);
}

void client_expect_outcome(tpc_wc *wc, uint64_t txid, Tpc__OutcomeKind want, char *reason,
			   size_t reason_len)
{
	Tpc__Envelope *e = tpc_wc_recv_body(wc, TPC__ENVELOPE__BODY_OUTCOME, WAIT_MS);

	if (!e)
		fail_msg("no Outcome for %llu: %s", (unsigned long long)txid, tpc_wc_errmsg(wc));
	const Tpc__Outcome *o = e->outcome;
	Tpc__OutcomeKind got = o ? o->outcome : TPC__OUTCOME_KIND__OUTCOME_UNKNOWN;
	uint64_t got_txid = o ? o->txid : 0;
	if (reason)
		snprintf(reason, reason_len, "%s", o && o->reason ? o->reason : "");
	tpc__envelope__free_unpacked(e, NULL);
	assert_int_equal(got_txid, txid);
	if (got != want)
		fail_msg("outcome of %llu: %s, expected %s", (unsigned long long)txid,
			 outcome_name(got), outcome_name(want));
}

void client_status_expect(tpc_wc *wc, uint64_t txid, Tpc__TxnStatus want)
{
	Tpc__TxnStatus st;
	int rc = tpc_wc_status(wc, txid, &st);

	if (rc != 0)
		fail_msg("status %llu: %s (%s)", (unsigned long long)txid, tpc_wc_strerror(rc),
			 tpc_wc_errmsg(wc));
	if (st != want)
		fail_msg("status %llu: %s, expected %s", (unsigned long long)txid,
			 tpc_wire_status_name(st), tpc_wire_status_name(want));
}

void client_expect_error(tpc_wc *wc, Tpc__ErrorCode code, int then_eof)
{
	Tpc__Envelope *e = tpc_wc_recv(wc, WAIT_MS);

	if (!e)
		fail_msg("expected an Error %s: %s", tpc_wc_error_name(code), tpc_wc_errmsg(wc));
	if (e->body_case != TPC__ENVELOPE__BODY_ERROR || !e->error) {
		Tpc__Envelope__BodyCase b = e->body_case;
		tpc__envelope__free_unpacked(e, NULL);
		fail_msg("expected an Error %s, got %s", tpc_wc_error_name(code),
			 tpc_wire_body_name(b));
	}
	Tpc__ErrorCode got = e->error->code;
	tpc__envelope__free_unpacked(e, NULL);
	if (got != code)
		fail_msg("expected Error %s, got %s", tpc_wc_error_name(code), tpc_wc_error_name(got));
	if (!then_eof)
		return;
	e = tpc_wc_recv(wc, WAIT_MS);
	if (e) {
		Tpc__Envelope__BodyCase b = e->body_case;
		tpc__envelope__free_unpacked(e, NULL);
		fail_msg("expected the connection to close, got %s", tpc_wire_body_name(b));
	}
	assert_int_equal(tpc_wc_last_rc(wc), -ECONNRESET);
}
