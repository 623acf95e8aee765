/*
 * actors.c - the schedule's actors beyond kills and links: strangers and the operator.
 *
 * A stranger is a tpc-kv that must be refused (D8): started under an existing
 * participant's name with a folder of its own (the coordinator has bound the name to
 * another participant id: it must exit non-zero, and its own sink must stay empty), or
 * on a running participant's own folder (the folder is locked: it must exit 1 with a
 * message naming the holder's pid). At most one runs at a time; it talks to the
 * coordinator directly, not through a proxy, and no client ever sends it a Put. A
 * stranger that breaks these rules is kept as a `stranger` violation for the checker.
 *
 * The operator asks the coordinator's admin API (as tpcctl does) for the open
 * transactions, picks one with the action's seeded draw, and asks for a heuristic
 * commit or abort, sometimes forced; every call and its result is appended to
 * outcomes/operator.txt (records.h) so the checker can tell operator-decided txids
 * from the rest.
 *
 * Owns nothing beyond the runner's fields named stranger*, op* and oplog.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "torture.h"
#include "tpc/common.h"
#include "tpc/sink_file.h"
#include "util.h"

#define STRANGER_NAME_MS 15000u   /* another folder: refused once it reaches the coordinator */
#define STRANGER_LOCK_MS 10000u   /* same folder: refused at start */
#define ADMIN_TIMEOUT_MS 5000
#define RESP_CAP (256 * 1024)

/* ---- strangers ---- */

static void stranger_bad(struct tt_runner *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void stranger_bad(struct tt_runner *r, const char *fmt, ...)
{
	struct tt_stranger *s = &r->stranger;
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tt_slog(r, "%s: NOT REFUSED AS IT MUST BE: %s", s->p.name, msg);
	if (r->nstranger_bad == TT_MAX_STRANGER_BAD)
		return;
	snprintf(r->stranger_bad[r->nstranger_bad], sizeof(r->stranger_bad[0]),
		 "%s (%s, started as kv%u %s): %s (see logs/%s.log)", s->p.name,
		 s->on_folder ? "same folder" : "another folder", s->part + 1,
		 s->on_folder ? "on its running folder" : "with a folder of its own", msg,
		 s->p.name);
	r->stranger_bad_part[r->nstranger_bad++] = (int)s->part;
}

static int count_line(void *arg, tpc_txid txid, uint64_t index, uint64_t count,
		      const void *key, size_t klen, const void *value, size_t vlen)
{
	(*(uint64_t *)arg)++;
	return 0;
}

/* Does the stranger's log name @p pid (as a whole number)? */
static int log_names_pid(const char *path, pid_t pid)
{
	FILE *f = fopen(path, "r");
	char line[1024], want[24];
	int found = 0;

	if (!f)
		return 0;
	snprintf(want, sizeof(want), "%ld", (long)pid);
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "=== tpc-torture:", 16) == 0)
			continue;
		for (const char *at = strstr(line, want); at && !found; at = strstr(at + 1, want))
			found = (at == line || at[-1] < '0' || at[-1] > '9') &&
				(at[strlen(want)] < '0' || at[strlen(want)] > '9');
	}
	fclose(f);
	return found;
}

/* The stranger exited with @p status: was it refused as it must be? */
static void stranger_judge(struct tt_runner *r, int status)
{
	struct tt_stranger *s = &r->stranger;
	char sink[PATH_MAX + 64];
	uint64_t lines = 0;
	int ok = 1;

	if (!WIFEXITED(status) || WEXITSTATUS(status) == 0 ||
	    (s->on_folder && WEXITSTATUS(status) != 1)) {
		stranger_bad(r, "%s %d, expected %s", WIFEXITED(status) ? "exited with status"
			     : "killed by signal", WIFEXITED(status) ? WEXITSTATUS(status)
			     : WTERMSIG(status), s->on_folder ? "exit status 1" : "a failing exit");
		ok = 0;
	}
	if (s->on_folder && !log_names_pid(s->p.log_path, s->holder)) {
		stranger_bad(r, "its message does not name the folder's holder, pid %ld",
			     (long)s->holder);
		ok = 0;
	}
	snprintf(sink, sizeof(sink), "%s/stranger%u/sink.log", r->dir, s->count);
	if (!s->on_folder && tpc_sink_file_dump(sink, count_line, &lines) == 0 && lines) {
		stranger_bad(r, "its sink holds %" PRIu64 " write(s)", lines);
		ok = 0;
	}
	r->st.strangers_refused[s->on_folder] += ok;
	tt_slog(r, "%s exited (%s %d)%s", s->p.name, WIFEXITED(status) ? "status" : "signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), ok ? ": refused" : "");
}

static int define_stranger(struct tt_runner *r, unsigned part, int on_folder)
{
	struct tt_stranger *s = &r->stranger;
	char name[16], listen[32], coord[32], data[PATH_MAX + 32], tls[3][PATH_MAX + 48];
	const char *argv[TT_MAX_ARGS] = { r->kv_bin, "--name", name, "--listen", listen,
		"--coordinator", coord, "--data", data, "--sink", "file", "--txn-timeout", "10s",
		NULL };
	size_t n = 13;
	int port = tt_free_port();

	if (port < 0)
		return port;
	s->count++;
	s->part = part;
	s->on_folder = on_folder;
	snprintf(name, sizeof(name), "kv%u", part + 1);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(coord, sizeof(coord), "127.0.0.1:%d", r->coord_port);
	if (on_folder)
		snprintf(data, sizeof(data), "%s/kv%u", r->dir, part + 1);
	else
		snprintf(data, sizeof(data), "%s/stranger%u", r->dir, s->count);
	snprintf(s->p.name, sizeof(s->p.name), "stranger%u", s->count);
	snprintf(s->p.log_path, sizeof(s->p.log_path), "%s/logs/stranger%u.log", r->dir, s->count);
	s->p.role = TT_ROLE_PART;
	s->p.index = part;
	/* With TLS the stranger holds the name's own certificate: only the binding of the
	 * name to its first state folder (D8) can refuse it. */
	tt_add_tls_args(r, name, argv, &n, tls);
	argv[n] = NULL;
	return tt_proc_set_argv(&s->p, argv);
}

void tt_stranger_start(struct tt_runner *r, unsigned part, int on_folder)
{
	struct tt_stranger *s = &r->stranger;
	const char *env[] = { "TPC_FAULTS=", "TPC_BROKEN=", NULL };
	const struct tt_proc *kv = &r->kv[part];

	if (s->p.pid) {
		tt_slog(r, "stranger for kv%u skipped: %s still running", part + 1, s->p.name);
		return;
	}
	if (on_folder && (!kv->pid || kv->faults[0])) {
		tt_slog(r, "stranger on kv%u's folder skipped: kv%u is %s", part + 1, part + 1,
			kv->pid ? "armed with faults (it could die meanwhile)" : "down");
		return;
	}
	if (define_stranger(r, part, on_folder))
		return;
	s->holder = kv->pid;
	tt_proc_note(&s->p, "=== tpc-torture: %s, a tpc-kv named kv%u %s, at %.3f s", s->p.name,
		     part + 1, on_folder ? "on kv's own running folder" : "with another folder",
		     tt_elapsed(r) / 1000.0);
	if (tt_proc_start(&s->p, env)) {
		tt_slog(r, "start %s FAILED", s->p.name);
		return;
	}
	r->st.strangers[on_folder]++;
	s->deadline_ms = tt_elapsed(r) + (on_folder ? STRANGER_LOCK_MS : STRANGER_NAME_MS);
	tt_slog(r, "start %s: kv%u's name, %s", s->p.name, part + 1,
		on_folder ? "on kv's running folder (must exit 1: locked)"
			  : "another folder (must be refused and exit)");
	if (on_folder) /* settle it now: the holder must not be killed meanwhile */
		tt_stranger_finish(r);
}

void tt_stranger_poll(struct tt_runner *r)
{
	struct tt_stranger *s = &r->stranger;
	int status;

	if (!s->p.pid)
		return;
	if (waitpid(s->p.pid, &status, WNOHANG) == s->p.pid) {
		s->p.pid = 0;
		stranger_judge(r, status);
	} else if (tt_elapsed(r) >= s->deadline_ms) {
		tt_proc_kill(&s->p);
		stranger_bad(r, "still running %.1f s after it started",
			     (s->on_folder ? STRANGER_LOCK_MS : STRANGER_NAME_MS) / 1000.0);
	}
}

void tt_stranger_finish(struct tt_runner *r)
{
	struct tt_stranger *s = &r->stranger;
	uint64_t now = tt_elapsed(r);
	int status;

	if (!s->p.pid)
		return;
	if (tt_proc_wait(&s->p, (int)(s->deadline_ms > now ? s->deadline_ms - now : 0),
			 &status) == 0)
		stranger_judge(r, status);
	else
		tt_stranger_poll(r); /* past the deadline: killed and reported */
}

/* ---- the operator ---- */

struct pick {
	char txid[24];
	int in_doubt;          /* PREPARING or COMMITTING */
};

/* The open transactions (at most @p cap). @return how many, or -1 if not reachable. */
static int list_open(struct tt_runner *r, struct pick *v, int cap, char *resp)
{
	int sent, status, n = 0;
	json_t *root, *arr, *e;
	size_t i;

	if (tt_http(r->admin_port, "GET", "/v1/transactions?limit=200", NULL, &sent, &status,
		    resp, RESP_CAP, ADMIN_TIMEOUT_MS) || status != 200)
		return -1;
	root = json_loads(resp, 0, NULL);
	arr = root ? json_object_get(root, "transactions") : NULL;
	json_array_foreach(arr, i, e) {
		const char *txid = json_string_value(json_object_get(e, "txid"));
		const char *state = json_string_value(json_object_get(e, "state"));
		if (!txid || !state || n == cap || strlen(txid) >= sizeof(v[0].txid))
			continue;
		snprintf(v[n].txid, sizeof(v[n].txid), "%s", txid);
		v[n++].in_doubt = !strcmp(state, "PREPARING") || !strcmp(state, "COMMITTING");
	}
	json_decref(root);
	return n;
}

/* Which one: an in-doubt transaction when the draw says so and there is one. */
static const struct pick *choose(const struct pick *v, int n, uint32_t draw)
{
	int doubt = 0;

	for (int i = 0; i < n; i++)
		doubt += v[i].in_doubt;
	if (doubt && (draw >> 24) % 4 != 0) {
		int k = (int)(draw % (uint32_t)doubt);
		for (int i = 0; i < n; i++)
			if (v[i].in_doubt && k-- == 0)
				return &v[i];
	}
	return &v[draw % (uint32_t)n];
}

/* Write the operator record; count it. */
static void op_record(struct tt_runner *r, uint64_t txid, int commit, int force,
		      const char *result, const char *overrode)
{
	struct tt_rec rec = { .type = TT_REC_OPERATOR, .txid = txid, .force = (uint8_t)force,
			      .outcome = commit ? TT_OUT_COMMITTED : TT_OUT_ABORTED };
	char line[256];

	snprintf(rec.why, sizeof(rec.why), "%s", result);
	snprintf(rec.overrode, sizeof(rec.overrode), "%s", overrode);
	if (r->oplog && tt_rec_format(&rec, line, sizeof(line)) > 0) {
		fputs(line, r->oplog);
		fflush(r->oplog);
	}
	r->st.op_calls++;
	r->st.op_forced += force;
	r->st.op_accepted += !strcmp(result, "accepted");
	r->st.op_refused += !strcmp(result, "refused");
	r->st.op_unreachable += !strcmp(result, "unreachable");
	r->st.op_uncertain += !strcmp(result, "uncertain");
	tt_slog(r, "operator: %s%s txid %" PRIu64 ": %s (overrode %s)", force ? "forced " : "",
		commit ? "commit" : "abort", txid, result, overrode);
}

/* Ask for the decision; classify the answer (records.h). */
static void decide(struct tt_runner *r, uint64_t txid, int commit, int force, char *resp)
{
	char path[96], overrode[12] = "-";
	const char *body = force ? "{\"reason\": \"tpc-torture operator\", \"force\": true, "
				   "\"operator\": \"tpc-torture\"}"
				 : "{\"reason\": \"tpc-torture operator\", \"force\": false, "
				   "\"operator\": \"tpc-torture\"}";
	int sent, status;

	snprintf(path, sizeof(path), "/v1/transactions/%" PRIu64 "/%s", txid,
		 commit ? "commit" : "abort");
	int rc = tt_http(r->admin_port, "POST", path, body, &sent, &status, resp, RESP_CAP,
			 ADMIN_TIMEOUT_MS);
	if (rc) {
		op_record(r, txid, commit, force, sent ? "uncertain" : "unreachable", "-");
		return;
	}
	if (status == 200) {
		json_t *root = json_loads(resp, 0, NULL);
		const char *o = json_string_value(json_object_get(root, "overrode"));
		if (o && strlen(o) < sizeof(overrode) && !strchr(o, ' '))
			snprintf(overrode, sizeof(overrode), "%s", o);
		json_decref(root);
	}
	/* 500: the audit entry or decision write failed, and it may be retried: uncertain. */
	op_record(r, txid, commit, force, status == 200 ? "accepted" : status >= 500 &&
		  status != 503 ? "uncertain" : "refused", overrode);
}

/* One call: pick with @p draw, decide commit or abort and --force with it too. */
static void operator_call(struct tt_runner *r, const struct pick *v, int n, uint32_t draw,
			 char *resp)
{
	const struct pick *p = choose(v, n, draw);
	uint64_t txid = strtoull(p->txid, NULL, 10);
	uint64_t r8 = tt_rand(&r->oprng);

	if (r8 % 8 == 0 && txid > 3) /* now and then one that has just finished */
		txid -= 1 + (r8 >> 8) % 3;
	decide(r, txid, (draw >> 8) % 100 >= 60, (draw >> 16) % 100 < 40, resp);
}

void tt_operator_act(struct tt_runner *r, uint32_t draw)
{
	struct pick v[200];
	char *resp = malloc(RESP_CAP);
	int n = resp ? list_open(r, v, 200, resp) : -1;
	uint64_t st = draw;

	if (n <= 0) {
		tt_slog(r, "operator: %s", n < 0 ? "admin API not reachable" : "nothing open");
		free(resp);
		return;
	}
	/* 1 to 4 decisions from one listing, as an operator clearing a backlog would */
	for (unsigned k = 1 + (unsigned)(draw >> 28) % 4; k > 0; k--)
		operator_call(r, v, n, k == 1 ? draw : (uint32_t)tt_rand(&st), resp);
	free(resp);
}
