/*
 * collect.c - the end of a run: ask the coordinator about outcomes no client learnt,
 * feed the checker from the run folder (outcomes files, sinks, what the checkpoints
 * left), count the fault lines in the processes' logs, and print the report.
 *
 * Reads the run folder only, apart from the "resolved" lines it appends to the
 * outcomes files (so a kept folder holds the whole history).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "maps.h"
#include "torture.h"
#include "tpc/client.h"
#include "tpc/sink_file.h"
#include "util.h"

#define RESOLVE_MS 10000u     /* how long PENDING answers are asked again */
#define PER_KIND_SHOWN 10

void tt_out(struct tt_runner *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (r->report) {
		va_start(ap, fmt);
		vfprintf(r->report, fmt, ap);
		va_end(ap);
		fflush(r->report);
	}
}

/* ---- status queries after healing ---- */

struct open_txns {
	struct u64map state;       /* txid -> 1 open, 2 settled (as a pointer value) */
	uint64_t *open;
	size_t nopen;
};

static int note_rec(void *arg, const struct tt_rec *rec)
{
	struct open_txns *o = arg;
	uintptr_t cur = (uintptr_t)u64map_get(&o->state, rec->txid);
	int settled = ((rec->type == TT_REC_OUTCOME || rec->type == TT_REC_BY_KEY) &&
			rec->outcome != TT_OUT_UNKNOWN) ||
		      (rec->type == TT_REC_RESOLVED && rec->outcome != TT_OUT_PENDING);

	if (settled)
		return u64map_put(&o->state, rec->txid, (void *)(uintptr_t)2);
	if (rec->type == TT_REC_INTENT && cur == 0)
		return u64map_put(&o->state, rec->txid, (void *)(uintptr_t)1);
	return 0;
}

static int collect_open(struct open_txns *o)
{
	size_t n;
	uint64_t *keys = u64map_keys(&o->state, &n);

	if (!keys && n)
		return -ENOMEM;
	o->nopen = 0;
	for (size_t i = 0; i < n; i++)
		if ((uintptr_t)u64map_get(&o->state, keys[i]) == 1)
			keys[o->nopen++] = keys[i];
	o->open = keys;
	return 0;
}

/* Ask about each open txid until none is PENDING or time is up; append the answers. */
static void ask(struct tt_runner *r, tpc_client *cli, struct open_txns *o, FILE *out)
{
	uint64_t deadline = tpc_now_ms() + RESOLVE_MS;
	size_t left = o->nopen;

	while (left && tpc_now_ms() < deadline) {
		size_t keep = 0;
		for (size_t i = 0; i < left; i++) {
			tpc_status st = TPC_STATUS_PENDING;
			struct tt_rec rec = { .type = TT_REC_RESOLVED, .txid = o->open[i] };
			char line[128];
			if (tpc_client_status(cli, o->open[i], &st) || st == TPC_STATUS_PENDING) {
				o->open[keep++] = o->open[i];
				continue;
			}
			if (st == TPC_STATUS_FORGOTTEN)
				continue; /* no longer known: claims nothing (stays unresolved) */
			rec.outcome = st == TPC_STATUS_COMMITTED ? TT_OUT_COMMITTED : TT_OUT_ABORTED;
			if (tt_rec_format(&rec, line, sizeof(line)) > 0)
				fputs(line, out);
			r->resolved++;
		}
		left = keep;
		if (left)
			tt_sleep_ms(250);
	}
	r->still_pending += left;
	if (left)
		tt_slog(r, "%zu outcome(s) still PENDING after %u ms of status queries", left,
			RESOLVE_MS);
}

static int resolve_client(struct tt_runner *r, tpc_client *cli, unsigned i)
{
	char path[PATH_MAX + 32];
	struct open_txns o = { .open = NULL };
	int rc;

	snprintf(path, sizeof(path), "%s/outcomes/client%u.txt", r->dir, i + 1);
	u64map_init(&o.state);
	rc = tt_rec_read_file(path, note_rec, &o, NULL);
	if (rc == -ENOENT)
		rc = 0;
	if (!rc)
		rc = collect_open(&o);
	if (!rc && o.nopen) {
		FILE *out = fopen(path, "a");
		if (out) {
			ask(r, cli, &o, out);
			fclose(out);
		} else {
			rc = -errno;
		}
	}
	free(o.open);
	u64map_free(&o.state);
	return rc;
}

int tt_resolve_unknown(struct tt_runner *r)
{
	tpc_client_config cc;
	char addr[32];
	int err = 0, rc = 0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", r->coord_port);
	tpc_client_config_init(&cc);
	cc.coordinator = addr;
	cc.name = "tpc-torture-resolve";
	cc.request_timeout_ms = 3000;
	char tls[3][PATH_MAX + 48];
	if (r->o.tls_dir) { /* the clients' certificate */
		snprintf(tls[0], sizeof(tls[0]), "%s/client.crt", r->o.tls_dir);
		snprintf(tls[1], sizeof(tls[1]), "%s/client.key", r->o.tls_dir);
		snprintf(tls[2], sizeof(tls[2]), "%s/ca.crt", r->o.tls_dir);
		cc.tls_cert = tls[0];
		cc.tls_key = tls[1];
		cc.tls_ca = tls[2];
	}
	tpc_client *cli = tpc_client_new(&cc, &err);
	if (!cli)
		return err;
	for (unsigned i = 0; i < r->o.nclients && !rc; i++)
		rc = resolve_client(r, cli, i);
	tpc_client_free(cli);
	tt_slog(r, "resolved %" PRIu64 " outcome(s) by status queries", r->resolved);
	return rc;
}

/* ---- feeding the checker ---- */

struct feed {
	struct tt_checker *ck;
	unsigned who;
};

static int feed_rec(void *arg, const struct tt_rec *rec)
{
	struct feed *f = arg;
	return tt_checker_add_rec(f->ck, f->who, rec);
}

static int feed_sink(void *arg, tpc_txid txid, uint64_t index, uint64_t count, const void *key,
		     size_t klen, const void *value, size_t vlen)
{
	struct feed *f = arg;
	return tt_checker_add_sink(f->ck, f->who, txid, key, klen, value, vlen);
}

/* The operator's heuristic decisions (outcomes/operator.txt), after every client's. */
static int feed_operator(struct tt_runner *r, struct tt_checker *ck)
{
	char path[PATH_MAX + 32];
	struct feed f = { ck, 0 };
	uint64_t bad = 0;
	int rc;

	if (r->oplog)
		fflush(r->oplog);
	snprintf(path, sizeof(path), "%s/outcomes/operator.txt", r->dir);
	rc = tt_rec_read_file(path, feed_rec, &f, &bad);
	if (rc && rc != -ENOENT) {
		fprintf(stderr, "tpc-torture: cannot read %s: %s\n", path, tpc_strerror(rc));
		return rc;
	}
	tt_checker_add_bad_lines(ck, bad);
	return 0;
}

static int feed_outcomes(struct tt_runner *r, struct tt_checker *ck)
{
	for (unsigned i = 0; i < r->o.nclients; i++) {
		char path[PATH_MAX + 32];
		struct feed f = { ck, i + 1 };
		uint64_t bad = 0;
		snprintf(path, sizeof(path), "%s/outcomes/client%u.txt", r->dir, i + 1);
		int rc = tt_rec_read_file(path, feed_rec, &f, &bad);
		if (rc && rc != -ENOENT) {
			fprintf(stderr, "tpc-torture: cannot read %s: %s\n", path, tpc_strerror(rc));
			return rc;
		}
		tt_checker_add_bad_lines(ck, bad);
	}
	return feed_operator(r, ck);
}

static int feed_sinks(struct tt_runner *r, struct tt_checker *ck)
{
	for (unsigned i = 0; i < r->o.nparts; i++) {
		char path[PATH_MAX + 32];
		struct feed f = { ck, i };
		snprintf(path, sizeof(path), "%s/kv%u/sink.log", r->dir, i + 1);
		int rc = TT_IS_PG(r, i) ? tt_pg_feed(r, ck, i)
					: tpc_sink_file_dump(path, feed_sink, &f);
		if (rc && rc != -ENOENT) {
			fprintf(stderr, "tpc-torture: cannot read %s: %s\n", path, tpc_strerror(rc));
			return rc;
		}
	}
	return 0;
}

/* --pg, after the run: a prepared transaction PostgreSQL still holds is an orphan. */
static void feed_pg_orphans(struct tt_runner *r, struct tt_checker *ck)
{
	uint64_t txids[TT_MAX_LEFTOVER];
	size_t n = 0;

	if (!r->o.pg || r->check_only)
		return;
	if (tt_pg_prepared(r, txids, TT_MAX_LEFTOVER, &n)) {
		tt_out(r, "cannot list pg_prepared_xacts after the run\n");
		tt_checker_add_death(ck, "postgresql", "pg_prepared_xacts unreadable after the run");
		return;
	}
	r->pg_orphans = n;
	if (r->pg_restart_failures)
		tt_checker_add_death(ck, "postgresql", "a restart after a crash failed");
	for (size_t i = 0; i < n && i < TT_MAX_LEFTOVER; i++)
		tt_checker_add_prepared(ck, TT_PG_INDEX, txids[i]);
}

static void feed_deaths(struct tt_runner *r, struct tt_checker *ck)
{
	for (size_t i = 0; i < r->ndeaths; i++)
		tt_checker_add_death(ck, r->death_who[i], r->deaths[i]);
	for (size_t i = 0; i < r->nstranger_bad; i++)
		tt_checker_add_stranger(ck, r->stranger_bad_part[i], r->stranger_bad[i]);
}

static void feed_leftovers(struct tt_runner *r, struct tt_checker *ck)
{
	for (size_t c = 0; c < r->nleft; c++) {
		const struct tt_leftover *lo = &r->left[c];
		if (lo->ms <= r->o.quiet_bound_ms && lo->quiet)
			continue;
		tt_checker_add_slow_recovery(ck, lo->ms, r->o.quiet_bound_ms);
		for (size_t i = 0; i < lo->nunacked && i < TT_MAX_LEFTOVER; i++)
			tt_checker_add_unacked(ck, lo->unacked[i]);
		for (unsigned p = 0; p < r->o.nparts; p++)
			for (size_t i = 0; i < lo->nprepared[p] && i < TT_MAX_LEFTOVER; i++)
				tt_checker_add_prepared(ck, p, lo->prepared[p][i]);
	}
}

/* ---- fault lines in the logs ---- */

enum { FIRED_CRASH, FIRED_DELAY, FIRED_FAIL, FIRED_KINDS };

struct fired {
	uint64_t n[TPC_FP_COUNT][FIRED_KINDS];
	uint64_t by_role[TT_ROLE_COUNT];
};

static void count_fault_lines(const struct tt_proc *p, struct fired *fd)
{
	FILE *f = fopen(p->log_path, "r");
	char line[1024], name[64], action[16];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		const char *at = strstr(line, "fault ");
		if (!at || sscanf(at, "fault %63s fired: %15s", name, action) != 2)
			continue;
		int pt = tpc_fault_lookup(name);
		int kind = !strcmp(action, "crash") ? FIRED_CRASH : !strcmp(action, "delay")
			   ? FIRED_DELAY : FIRED_FAIL;
		if (pt < 0)
			continue;
		fd->n[pt][kind]++;
		fd->by_role[p->role]++;
	}
	fclose(f);
}

/* ---- the report ---- */

static void report_schedule(struct tt_runner *r)
{
	const struct tt_stats *s = &r->st;

	tt_out(r, "seed:                 %" PRIu64 "\n", r->o.seed);
	tt_out(r, "schedule:             %zu actions planned, %" PRIu64 " carried out, %" PRIu64
	       " checkpoint(s)\n", r->sched.n, s->actions + s->checkpoints, s->checkpoints);
}

static void report_txns(struct tt_runner *r, const struct tt_counts *c)
{
	tt_out(r, "transactions checked: %" PRIu64 ": committed %" PRIu64 ", aborted %" PRIu64
	       ", unknown %" PRIu64 "\n", c->txns, c->committed, c->aborted, c->unknown);
	tt_out(r, "  settled by beginning again with the key %" PRIu64 "; learnt by status query"
	       " after healing %" PRIu64 " (still pending %" PRIu64 "); unknown and applied"
	       " everywhere %" PRIu64 "\n", c->by_key, c->resolved, r->still_pending,
	       c->unknown_applied);
	tt_out(r, "  never asked to commit %" PRIu64 " (aborted on purpose %" PRIu64
	       "); with a NO vote %" PRIu64 "\n", c->never_requested, c->client_aborts, c->refused);
	tt_out(r, "  sent in stages %" PRIu64 "; operator-decided (forced, not checked for "
	       "atomicity) %" PRIu64 "\n", c->staged, c->operator_decided);
	tt_out(r, "  sink writes read %" PRIu64 "; transfer sum %" PRId64 "; torn record lines %"
	       PRIu64 "\n", c->sink_writes, c->transfer_sum, c->bad_lines);
}

static void report_actors(struct tt_runner *r)
{
	const struct tt_stats *s = &r->st;

	tt_out(r, "  strangers: another folder %" PRIu64 " started, %" PRIu64 " refused; same "
	       "folder %" PRIu64 " started, %" PRIu64 " refused\n", s->strangers[0],
	       s->strangers_refused[0], s->strangers[1], s->strangers_refused[1]);
	tt_out(r, "  operator decisions: %" PRIu64 " asked (%" PRIu64 " forced): %" PRIu64
	       " accepted, %" PRIu64 " refused, %" PRIu64 " unreachable, %" PRIu64
	       " uncertain\n", s->op_calls, s->op_forced, s->op_accepted, s->op_refused,
	       s->op_unreachable, s->op_uncertain);
}

static void report_faults(struct tt_runner *r, const struct fired *fd)
{
	const struct tt_stats *s = &r->st;

	tt_out(r, "faults injected:\n");
	tt_out(r, "  SIGKILL by the schedule: coordinator %" PRIu64 ", participants %" PRIu64
	       ", clients %" PRIu64 "\n", s->kills[TT_ROLE_COORD], s->kills[TT_ROLE_PART],
	       s->kills[TT_ROLE_CLIENT]);
	tt_out(r, "  crashes at fault points: coordinator %" PRIu64 ", participants %" PRIu64
	       "; other deaths (bugs): %" PRIu64 "\n", s->crashes[TT_ROLE_COORD],
	       s->crashes[TT_ROLE_PART], s->unclean[TT_ROLE_COORD] + s->unclean[TT_ROLE_PART] +
	       s->unclean[TT_ROLE_CLIENT] + s->unclean[TT_ROLE_PROXY] +
	       s->crashes[TT_ROLE_CLIENT] + s->crashes[TT_ROLE_PROXY]);
	tt_out(r, "  starts with fault points armed: coordinator %" PRIu64 ", participants %"
	       PRIu64 "\n", s->armed_starts[TT_ROLE_COORD], s->armed_starts[TT_ROLE_PART]);
	tt_out(r, "  links: %" PRIu64 " partitions, %" PRIu64 " resets, %" PRIu64
	       " drop windows, %" PRIu64 " delay windows; %" PRIu64 " control errors\n",
	       s->partitions, s->resets, s->drops, s->delays, s->control_errors);
	report_actors(r);
	tt_out(r, "  hits per fault point (starts armed; fired: crash / delay / fail):\n");
	for (int p = 0; p < TPC_FP_COUNT; p++) {
		const uint64_t *n = fd->n[p];
		tt_out(r, "    %-28s armed %4" PRIu64 "  fired %5" PRIu64 " (%" PRIu64 " / %" PRIu64
		       " / %" PRIu64 ")%s\n", tpc_fault_name((enum tpc_fault_point)p),
		       s->armed_point[p], n[0] + n[1] + n[2], n[0], n[1], n[2],
		       n[0] + n[1] + n[2] ? "" : "  <- not hit");
	}
}

static void report_recovery(struct tt_runner *r)
{
	tt_out(r, "recovery:             worst %.3f s, mean %.3f s over %zu checkpoint(s) "
	       "(bound %.1f s)\n", r->st.worst_recovery_ms / 1000.0,
	       r->nleft ? r->st.total_recovery_ms / 1000.0 / (double)r->nleft : 0.0, r->nleft,
	       r->o.quiet_bound_ms / 1000.0);
	if (r->o.pg)
		tt_out(r, "postgresql:           %" PRIu64 " crash(es) by pg_ctl stop -m immediate, "
		       "%" PRIu64 " failed restart(s); orphans left in pg_prepared_xacts: %" PRIu64
		       "\n", r->pg_crashes, r->pg_restart_failures, r->pg_orphans);
}

static void report_violations(struct tt_runner *r, const struct tt_checker *ck)
{
	size_t n, total = 0;
	const struct tt_violation *v = tt_checker_violations(ck, &n);

	for (int k = 0; k < TT_V_COUNT; k++)
		total += tt_checker_count_kind(ck, (enum tt_violation_kind)k);
	tt_out(r, "violations:           %zu\n", total);
	for (int k = 0; k < TT_V_COUNT; k++) {
		size_t cnt = tt_checker_count_kind(ck, (enum tt_violation_kind)k), shown = 0;
		if (!cnt)
			continue;
		tt_out(r, "  %s: %zu\n", tt_violation_name((enum tt_violation_kind)k), cnt);
		for (size_t i = 0; i < n && shown < PER_KIND_SHOWN; i++) {
			if (v[i].kind != (enum tt_violation_kind)k)
				continue;
			char where[32] = "";
			if (v[i].part >= 0)
				snprintf(where, sizeof(where), " at kv%d", v[i].part + 1);
			shown++;
			tt_out(r, "    txid %" PRIu64 "%s: %s\n", v[i].txid, where, v[i].detail);
		}
		if (cnt > shown)
			tt_out(r, "    ... %zu more\n", cnt - shown);
	}
}

long tt_check_and_report(struct tt_runner *r)
{
	struct tt_checker *ck = tt_checker_new(r->o.nparts,
					       r->o.broken != TT_BROKEN_ACK_BEFORE_APPLY);
	struct fired fd;
	long total = 0;

	if (!ck)
		return -ENOMEM;
	memset(&fd, 0, sizeof(fd));
	int rc = feed_outcomes(r, ck);
	if (!rc)
		rc = feed_sinks(r, ck);
	feed_leftovers(r, ck);
	feed_pg_orphans(r, ck);
	feed_deaths(r, ck);
	if (!rc)
		rc = tt_checker_run(ck);
	if (rc) {
		tt_checker_free(ck);
		return rc;
	}
	for (size_t i = 0; i < r->nall; i++)
		count_fault_lines(r->all[i], &fd);
	tt_out(r, "\n== tpc-torture result ==\n");
	if (!r->check_only)
		report_schedule(r);
	report_txns(r, tt_checker_counts(ck));
	if (!r->check_only) {
		report_faults(r, &fd);
		report_recovery(r);
	}
	report_violations(r, ck);
	for (int k = 0; k < TT_V_COUNT; k++)
		total += (long)tt_checker_count_kind(ck, (enum tt_violation_kind)k);
	tt_checker_free(ck);
	return total;
}
