/*
 * close.c - lesson-close, the financial close aggregator: revenue per day, merchant
 * and currency, where exactly-once is a correctness requirement.
 *
 *   lesson-close run --coordinator H:P --ledger H:P --offsets H:P --log DIR [options]
 *   lesson-close report --ledger-data DIR [--json]
 *   lesson-close asof --ledger-data DIR --offsets-data DIR --log DIR (--offset X | --time T)
 *
 * `run` drives the exactly-once engine (txagg.h): each batch is one tpc transaction
 * across the ledger and the offset store (two tpc-kv services). Its plan, here, reads
 * the batch's current totals from the ledger and stages, per DAY/MERCHANT/CURRENCY:
 *   total/<key>        "<payments> <amount_minor>"  the running daily total
 *   hist/<key>/<to>    the same, as of the batch's end offset (for "as of" queries)
 * `report` and `asof` read the ledger's LMDB sink read-only (DIR/sink of the tpc-kv
 * data folder), also while the service runs.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eventlog.h"
#include "events.h"
#include "tpc/sink_lmdb.h"
#include "txagg.h"
#include "util.h"

struct close_opts {
	const char *cmd, *coordinator, *ledger, *offsets, *log, *ns, *from_time, *progress;
	const char *ledger_data, *offsets_data, *at_time;
	uint64_t batch, from, at;
	int from_set, at_set, dedupe, json;
};

/* ---- the plan: new absolute totals for the keys a batch touches ---- */

static int close_plan(void *self, struct txagg *ta, const struct lesson_event *ev, size_t n,
		      uint64_t to, struct kvbatch *puts)
{
	struct tally delta = { 0 };
	struct kvbatch gets = { 0 };
	char key[160];
	int rc = 0;

	for (size_t i = 0; !rc && i < n; i++) {
		lesson_close_key(&ev[i], key, sizeof(key));
		rc = tally_add(&delta, key, 1, ev[i].amount);
	}
	tally_finish(&delta);
	if (!rc)
		rc = txagg_ledger_read_keys(ta, &delta, "total", &gets);
	for (size_t i = 0; !rc && i < delta.n; i++) {
		long long c = 0, a = 0;
		if (gets.ops[i].found && sscanf(gets.ops[i].value, "%lld %lld", &c, &a) != 2)
			rc = -EBADMSG;
		c += delta.v[i].count;
		a += delta.v[i].amount;
		snprintf(key, sizeof(key), "total/%s", delta.v[i].key);
		if (!rc)
			rc = kvb_put(puts, key, "%lld %lld", c, a);
		snprintf(key, sizeof(key), "hist/%s/%012" PRIu64, delta.v[i].key, to);
		if (!rc)
			rc = kvb_put(puts, key, "%lld %lld", c, a);
	}
	kvb_free(&gets);
	tally_free(&delta);
	return rc;
}

static int cmd_run(const struct close_opts *o)
{
	struct tpc_logger lg = { "lesson-close", TPC_LOG_WARN };
	struct txagg_cfg cfg = {
		.coordinator = o->coordinator, .ledger = o->ledger, .offsets = o->offsets,
		.log_dir = o->log, .ns = o->ns ? o->ns : "close", .batch = (uint32_t)o->batch,
		.dedupe = o->dedupe, .from_set = o->from_set, .from = o->from,
		.progress = o->progress, .timeout_ms = 5000, .log = &lg, .plan = close_plan,
	};
	struct txagg_stats st;
	uint64_t t0 = tpc_now_ms();

	if (lesson_from_time("lesson-close", o->log, o->from_time, &cfg.from, &cfg.from_set))
		return 1;
	int rc = txagg_run(&cfg, &st);
	if (rc) {
		fprintf(stderr, "lesson-close: %s\n", tpc_strerror(rc));
		return 1;
	}
	printf("done position=%" PRIu64 " events=%" PRIu64 " batches=%" PRIu64 " resolved=%" PRIu64
	       " confirmed=%" PRIu64 " aborted=%" PRIu64 " retries=%" PRIu64 " dups_skipped=%" PRIu64
	       " elapsed_ms=%" PRIu64 "\n", st.position, st.events, st.batches, st.resolved,
	       st.confirmed, st.aborted, st.retries, st.dups_skipped, tpc_now_ms() - t0);
	return 0;
}

/* ---- reading the ledger ---- */

struct ledger_scan {
	struct tally totals;     /* total/<key> */
	struct tally hist;       /* as of a cut: the newest hist/<key>/<to> with to <= cut */
	uint64_t cut, pos;
	int has_pos;
	int rc;
};

static int has_prefix(const void *key, size_t len, const char *p)
{
	size_t n = strlen(p);
	return len >= n && !memcmp(key, p, n);
}

/* Parse "<count> <amount>" into a tally under @p key (replacing an earlier value). */
static int scan_value(struct tally *t, const char *key, const void *value, size_t len)
{
	char buf[64];
	long long c, a;

	snprintf(buf, sizeof(buf), "%.*s", (int)len, (const char *)value);
	if (sscanf(buf, "%lld %lld", &c, &a) != 2)
		return -EBADMSG;
	struct tally_entry *e = t->n && !strcmp(t->v[t->n - 1].key, key) ? &t->v[t->n - 1] : NULL;
	if (e) {
		e->count = c;
		e->amount = a;
		return 0;
	}
	return tally_add(t, key, c, a);
}

static int ledger_entry(void *arg, const void *key, size_t klen, const void *value,
			size_t vlen, tpc_txid txid)
{
	struct ledger_scan *s = arg;
	char k[200];

	if (klen >= sizeof(k))
		return 0;
	memcpy(k, key, klen);
	k[klen] = 0;
	if (!strcmp(k, "pos")) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%.*s", (int)vlen, (const char *)value);
		s->has_pos = lesson_parse_u64(buf, &s->pos) == 0;
	} else if (has_prefix(k, klen, "total/")) {
		s->rc = scan_value(&s->totals, k + 6, value, vlen);
	} else if (has_prefix(k, klen, "hist/")) {
		char *cut = strrchr(k, '/'); /* hist/<key>/<to>: entries come in order of to */
		uint64_t to;
		if (!cut || lesson_parse_u64(cut + 1, &to))
			return s->rc = -EBADMSG;
		*cut = 0;
		if (to <= s->cut)
			s->rc = scan_value(&s->hist, k + 5, value, vlen);
	}
	return s->rc;
}

static int read_ledger(const char *data_dir, struct ledger_scan *s)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/sink", data_dir);
	int rc = tpc_sink_lmdb_dump(dir, ledger_entry, s);
	if (rc)
		fprintf(stderr, "lesson-close: reading %s: %s\n", dir, tpc_strerror(rc));
	return rc;
}

static int cmd_report(const struct close_opts *o)
{
	struct ledger_scan s = { 0 };
	int rc = read_ledger(o->ledger_data, &s);

	if (!rc)
		rc = lesson_print_report(stdout, &s.totals, REPORT_CLOSE, o->json, s.pos);
	tally_free(&s.totals);
	tally_free(&s.hist);
	return rc ? 1 : 0;
}

/* ---- as of offset X: the ledger at the last batch end <= X, plus the source after it ---- */

struct batch_scan {
	uint64_t cut, best, origin;
	int found, has_origin;
};

static int batch_entry(void *arg, const void *key, size_t klen, const void *value, size_t vlen,
		       tpc_txid txid)
{
	struct batch_scan *s = arg;
	char buf[32];
	uint64_t to;

	snprintf(buf, sizeof(buf), "%.*s", (int)vlen, (const char *)value);
	if (klen == 6 && !memcmp(key, "origin", 6))
		s->has_origin = lesson_parse_u64(buf, &s->origin) == 0;
	if (!has_prefix(key, klen, "batch/") || lesson_parse_u64(buf, &to))
		return 0;
	if (to <= s->cut && (!s->found || to > s->best)) {
		s->best = to;
		s->found = 1;
	}
	return 0;
}

static int add_source(const char *log, uint64_t from, uint64_t to, struct tally *t)
{
	evlog_reader *r;
	struct evlog_record rec;
	struct lesson_event ev;
	char key[160];
	int rc = evlog_reader_open(log, &r);

	if (!rc)
		rc = evlog_reader_seek(r, from);
	while (!rc && evlog_reader_position(r) < to && (rc = evlog_reader_next(r, &rec)) == 1) {
		rc = lesson_event_parse(rec.data, rec.len, &ev);
		lesson_close_key(&ev, key, sizeof(key));
		if (!rc)
			rc = tally_add(t, key, 1, ev.amount);
	}
	evlog_reader_close(r);
	return rc < 0 ? rc : 0;
}

static int cmd_asof(const struct close_opts *o)
{
	struct batch_scan b = { 0 };
	struct ledger_scan s = { 0 };
	char dir[4096];
	uint64_t x = o->at;
	int rc = 0;

	if (o->at_time && (rc = lesson_offset_at(o->log, o->at_time, &x))) {
		fprintf(stderr, "lesson-close: --time %s: %s\n", o->at_time, strerror(-rc));
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/sink", o->offsets_data);
	b.cut = x;
	rc = tpc_sink_lmdb_dump(dir, batch_entry, &b);
	if (rc || !b.has_origin || x < b.origin) {
		fprintf(stderr, "lesson-close: %s holds no history as of offset %" PRIu64 "\n", dir, x);
		return 1;
	}
	uint64_t cut = b.found ? b.best : b.origin;
	s.cut = cut;
	rc = read_ledger(o->ledger_data, &s);
	if (!rc)
		rc = add_source(o->log, cut, x, &s.hist);
	fprintf(stderr, "lesson-close: as of offset %" PRIu64 ": the ledger at batch end %" PRIu64
		" plus %" PRIu64 " events read from the source\n", x, cut, x - cut);
	if (!rc)
		rc = lesson_print_report(stdout, &s.hist, REPORT_CLOSE, o->json, x);
	tally_free(&s.totals);
	tally_free(&s.hist);
	return rc ? 1 : 0;
}

/* ---- command line ---- */

static const char usage_text[] =
	"Usage: lesson-close run --coordinator H:P --ledger H:P --offsets H:P --log DIR [options]\n"
	"       lesson-close report --ledger-data DIR [--json]\n"
	"       lesson-close asof --ledger-data DIR --offsets-data DIR --log DIR\n"
	"                         (--offset X | --time TIME) [--json]\n"
	"\n"
	"The financial close: payments from the event log summed per day, merchant and\n"
	"currency. `run` commits every batch as one tpc transaction across the ledger and\n"
	"the offset store (two tpc-kv services), under the deterministic transaction key\n"
	"NS/FROM-OFFSET, so a restarted run learns what its predecessor committed instead of\n"
	"counting it twice. It stops at the end of the log.\n"
	"\n"
	"  run\n"
	"      --coordinator H:P  the tpc coordinator\n"
	"      --ledger H:P       tpc-kv holding the daily totals\n"
	"      --offsets H:P      tpc-kv holding the position\n"
	"      --log DIR          the payments event log\n"
	"      --batch N          events per transaction (default 200)\n"
	"      --from OFFSET      replay: start here (a fresh sink starts its history here;\n"
	"                         over an existing sink, committed batches are re-begun\n"
	"                         under their keys and must answer ALREADY_COMMITTED)\n"
	"      --from-time TIME   replay from the first event at or after TIME\n"
	"      --ns NAME          transaction key namespace (default close)\n"
	"      --dedupe           also count each event id once (producer retries)\n"
	"      --progress FILE    write the committed position here (for the driver)\n"
	"  report                 the daily close (CSV; --json for JSON)\n"
	"      --ledger-data DIR  the ledger's tpc-kv data folder (read-only)\n"
	"  asof                   the close as of offset X: the ledger at the last batch\n"
	"                         end at or before X, plus the source from there to X\n"
	"      --offsets-data DIR the offset store's tpc-kv data folder (read-only)\n"
	"      --offset X | --time TIME\n"
	"\n"
	"TIME is YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.mmm]]Z (UTC), or ms since 1970.\n"
	"  -h, --help\n";

enum { OPT_COORD = 256, OPT_LEDGER, OPT_OFFSETS, OPT_LOG, OPT_BATCH, OPT_FROM, OPT_FROM_TIME,
       OPT_NS, OPT_DEDUPE, OPT_PROGRESS, OPT_LEDGER_DATA, OPT_OFFSETS_DATA, OPT_OFFSET,
       OPT_TIME, OPT_JSON };

static const struct option long_opts[] = {
	{ "coordinator", required_argument, NULL, OPT_COORD },
	{ "ledger", required_argument, NULL, OPT_LEDGER },
	{ "offsets", required_argument, NULL, OPT_OFFSETS },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "from-time", required_argument, NULL, OPT_FROM_TIME },
	{ "ns", required_argument, NULL, OPT_NS },
	{ "dedupe", no_argument, NULL, OPT_DEDUPE },
	{ "progress", required_argument, NULL, OPT_PROGRESS },
	{ "ledger-data", required_argument, NULL, OPT_LEDGER_DATA },
	{ "offsets-data", required_argument, NULL, OPT_OFFSETS_DATA },
	{ "offset", required_argument, NULL, OPT_OFFSET },
	{ "time", required_argument, NULL, OPT_TIME },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *msg)
{
	return tpc_usage_error("lesson-close", "%s", msg);
}

static int parse_opt(void *opts, int c, const char *v)
{
	struct close_opts *o = opts;

	switch (c) {
	case OPT_COORD: o->coordinator = v; return 0;
	case OPT_LEDGER: o->ledger = v; return 0;
	case OPT_OFFSETS: o->offsets = v; return 0;
	case OPT_LOG: o->log = v; return 0;
	case OPT_NS: o->ns = v; return 0;
	case OPT_FROM_TIME: o->from_time = v; return 0;
	case OPT_PROGRESS: o->progress = v; return 0;
	case OPT_LEDGER_DATA: o->ledger_data = v; return 0;
	case OPT_OFFSETS_DATA: o->offsets_data = v; return 0;
	case OPT_TIME: o->at_time = v; return 0;
	case OPT_DEDUPE: o->dedupe = 1; return 0;
	case OPT_JSON: o->json = 1; return 0;
	case OPT_BATCH: return lesson_opt_batch("lesson-close", v, &o->batch);
	case OPT_FROM: return lesson_opt_from("lesson-close", v, &o->from, &o->from_set);
	case OPT_OFFSET:
		o->at_set = 1;
		return lesson_parse_u64(v, &o->at) ? usage_error("--offset expects an offset") : 0;
	default: return usage_error("unknown option");
	}
}

static int run_command(void *opts)
{
	const struct close_opts *o = opts;

	if (!strcmp(o->cmd, "run")) {
		if (!o->coordinator || !o->ledger || !o->offsets || !o->log)
			return usage_error("run needs --coordinator, --ledger, --offsets and --log");
		if (o->from_set && o->from_time)
			return usage_error("--from and --from-time exclude each other");
		return cmd_run(o);
	}
	if (!strcmp(o->cmd, "report"))
		return o->ledger_data ? cmd_report(o) : usage_error("report needs --ledger-data");
	if (!strcmp(o->cmd, "asof")) {
		if (!o->ledger_data || !o->offsets_data || !o->log || o->at_set == !!o->at_time)
			return usage_error("asof needs --ledger-data, --offsets-data, --log and "
					   "one of --offset, --time");
		return cmd_asof(o);
	}
	return usage_error("unknown command");
}

static const struct lesson_cli cli = {
	.prog = "lesson-close",
	.usage = usage_text,
	.no_cmd = "a command is required: run, report or asof",
	.long_opts = long_opts,
	.parse_opt = parse_opt,
	.run = run_command,
};

int main(int argc, char **argv)
{
	struct close_opts o = { .batch = 200 };

	return lesson_cli_main(argc, argv, &cli, &o, &o.cmd);
}
