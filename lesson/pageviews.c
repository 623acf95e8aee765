/*
 * pageviews.c - lesson-pageviews, the page-view counter (a dashboard that tolerates
 * noise), in three modes that trade cost for guarantee:
 *
 *   at-least-once     per batch: add the counts in the local LMDB store (one commit),
 *                     then save the offset in a separate file (one more force). A crash
 *                     between the two replays the batch: over-counting. Producer-retry
 *                     duplicates are counted too.
 *   effectively-once  an idempotent consumer: per batch ONE local LMDB transaction
 *                     holds the counts, the processed event ids and the offset; an event
 *                     id already recorded changes nothing, whether it comes back after a
 *                     crash, from a replay, or from a retrying producer.
 *   exactly-once      through tpc, like the financial close (txagg.h), with event-id
 *                     dedupe in the ledger (2PC alone would count a producer's retry
 *                     twice: it makes processing exactly-once, not the source).
 *
 * The events counted are grouped by their fourth field: the page of a page view, or
 * the merchant of a payment (which is how the outbox lesson counts orders).
 *
 * Local store layout (--store DIR, LMDB, synced commits): "counts" group -> decimal,
 * "seen" event id -> "", "meta" "pos" -> decimal; at-least-once keeps its offset in
 * DIR/offset instead ("%020llu\n", rewritten in place and forced).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "cli.h"
#include "eventlog.h"
#include "events.h"
#include "tpc/sink_lmdb.h"
#include "txagg.h"
#include "util.h"

enum pv_mode { MODE_ALO, MODE_EO, MODE_XO };

struct pv_opts {
	const char *cmd, *mode_name, *log, *store, *coordinator, *ledger, *offsets, *ns;
	const char *from_time, *progress, *ledger_data;
	enum pv_mode mode;
	uint64_t batch, from;
	int from_set, no_dedupe, json;
};

struct pv_stats {
	uint64_t position, events, counted, dups_skipped, batches;
};

/* ---- the local store ---- */

struct store {
	MDB_env *env;
	MDB_dbi counts, seen, meta;
	int offset_fd;   /* at-least-once: DIR/offset */
	evlog_reader *reader;
};

static int mdb_rc(int rc)
{
	return rc > 0 ? -rc : rc;
}

static int open_dbs_in(struct store *s, MDB_txn *txn, unsigned flags)
{
	int rc;

	if ((rc = mdb_rc(mdb_dbi_open(txn, "counts", flags, &s->counts))) ||
	    (rc = mdb_rc(mdb_dbi_open(txn, "seen", flags, &s->seen))) ||
	    (rc = mdb_rc(mdb_dbi_open(txn, "meta", flags, &s->meta))))
		return rc;
	return 0;
}

static int store_open_dbs(struct store *s)
{
	MDB_txn *txn;
	int rc = mdb_rc(mdb_txn_begin(s->env, NULL, 0, &txn));

	if (rc)
		return rc;
	if ((rc = open_dbs_in(s, txn, MDB_CREATE))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_rc(mdb_txn_commit(txn));
}

/* Read-only opens (reports) work while the consumer runs, and never create anything. */
static int store_open(struct store *s, const char *dir, int rdonly)
{
	char path[4096];
	int rc;

	memset(s, 0, sizeof(*s));
	s->offset_fd = -1;
	if (!rdonly && mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	if ((rc = mdb_rc(mdb_env_create(&s->env))) ||
	    (rc = mdb_rc(mdb_env_set_maxdbs(s->env, 4))) ||
	    (rc = mdb_rc(mdb_env_set_mapsize(s->env, 1ull << 30))) ||
	    (rc = mdb_rc(mdb_env_open(s->env, dir, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0644))))
		return rc;
	snprintf(path, sizeof(path), "%s/offset", dir);
	s->offset_fd = open(path, (rdonly ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0644);
	if (s->offset_fd < 0 && !rdonly)
		return -errno;
	return rdonly ? 0 : store_open_dbs(s);
}

static void store_close(struct store *s)
{
	if (s->env)
		mdb_env_close(s->env);
	if (s->offset_fd >= 0)
		close(s->offset_fd);
	evlog_reader_close(s->reader);
}

static int get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v)
{
	MDB_val k = { strlen(key), (void *)key }, d;
	char buf[32];
	int rc = mdb_get(txn, dbi, &k, &d);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_rc(rc);
	snprintf(buf, sizeof(buf), "%.*s", (int)d.mv_size, (const char *)d.mv_data);
	return lesson_parse_u64(buf, v) ? -EBADMSG : 1;
}

static int put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);
	MDB_val k = { strlen(key), (void *)key }, d = { (size_t)n, buf };

	return mdb_rc(mdb_put(txn, dbi, &k, &d, 0));
}

/* The stored position: 1 found, 0 none, <0 error. */
static int stored_position(struct store *s, enum pv_mode mode, uint64_t *pos)
{
	if (mode == MODE_ALO) {
		char buf[32] = { 0 };
		if (s->offset_fd < 0)
			return 0;
		ssize_t n = pread(s->offset_fd, buf, sizeof(buf) - 1, 0);
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		buf[strcspn(buf, "\n")] = 0;
		return lesson_parse_u64(buf, pos) ? -EBADMSG : 1;
	}
	MDB_txn *txn;
	int rc = mdb_rc(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn));
	if (rc)
		return rc;
	rc = get_u64(txn, s->meta, "pos", pos);
	mdb_txn_abort(txn);
	return rc;
}

/* at-least-once: the offset, saved on its own after the counts. */
static int save_offset(struct store *s, uint64_t pos)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%020" PRIu64 "\n", pos);

	if (pwrite(s->offset_fd, buf, (size_t)n, 0) != n || fdatasync(s->offset_fd))
		return -errno;
	return 0;
}

/* Count one event in @p txn; with @p dedupe, only if its id was never counted. */
static int count_event(struct store *s, MDB_txn *txn, const struct lesson_event *ev, int dedupe,
		       struct pv_stats *st)
{
	uint64_t c = 0;
	int rc;

	if (dedupe) {
		MDB_val k = { strlen(ev->eid), (void *)ev->eid }, d = { 0, "" };
		rc = mdb_put(txn, s->seen, &k, &d, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST) {
			st->dups_skipped++;
			return 0;
		}
		if (rc)
			return mdb_rc(rc);
	}
	if ((rc = get_u64(txn, s->counts, ev->group, &c)) < 0)
		return rc;
	st->counted++;
	return put_u64(txn, s->counts, ev->group, c + 1);
}

/* One batch from @p pos: 1 done something, 0 at the end. */
static int local_batch(struct store *s, const struct pv_opts *o, uint64_t *pos,
		       uint64_t stored, struct pv_stats *st)
{
	struct evlog_record rec;
	struct lesson_event ev;
	MDB_txn *txn;
	uint64_t n = 0;
	int rc;

	if (evlog_reader_position(s->reader) != *pos && (rc = evlog_reader_seek(s->reader, *pos)))
		return rc;
	if ((rc = mdb_rc(mdb_txn_begin(s->env, NULL, 0, &txn))))
		return rc;
	while (n < o->batch && (rc = evlog_reader_next(s->reader, &rec)) == 1) {
		n++;
		if ((rc = lesson_event_parse(rec.data, rec.len, &ev)) ||
		    (rc = count_event(s, txn, &ev, o->mode == MODE_EO, st)))
			break;
	}
	uint64_t to = *pos + n;
	if (rc < 0 || n == 0 || (o->mode == MODE_EO &&
				 (rc = put_u64(txn, s->meta, "pos", to > stored ? to : stored)))) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_rc(mdb_txn_commit(txn)))) /* synced: one force */
		return rc;
	if (o->mode == MODE_ALO && (rc = save_offset(s, to)))
		return rc;
	st->events += n;
	st->batches++;
	*pos = to;
	lesson_write_progress(o->progress, to);
	return 1;
}

static int run_local(const struct pv_opts *o, struct pv_stats *st)
{
	struct store s;
	uint64_t pos = 0, stored = 0;
	int rc = store_open(&s, o->store, 0);

	if (!rc)
		rc = evlog_reader_open(o->log, &s.reader);
	if (!rc && (rc = stored_position(&s, o->mode, &stored)) >= 0) {
		pos = o->from_set ? o->from : (rc ? stored : 0);
		rc = 0;
	}
	lesson_write_progress(o->progress, pos);
	while (!rc && (rc = local_batch(&s, o, &pos, stored, st)) == 1)
		rc = 0;
	st->position = pos > stored || o->mode != MODE_EO ? pos : stored;
	store_close(&s);
	return rc;
}

/* ---- exactly-once: the txagg plan ---- */

static int pv_plan(void *self, struct txagg *ta, const struct lesson_event *ev, size_t n,
		   uint64_t to, struct kvbatch *puts)
{
	struct tally delta = { 0 };
	struct kvbatch gets = { 0 };
	char key[128];
	int rc = 0;

	for (size_t i = 0; !rc && i < n; i++)
		rc = tally_add(&delta, ev[i].group, 1, 0);
	tally_finish(&delta);
	if (!rc)
		rc = txagg_ledger_read_keys(ta, &delta, "count", &gets);
	for (size_t i = 0; !rc && i < delta.n; i++) {
		uint64_t c = 0;
		if (gets.ops[i].found && lesson_parse_u64(gets.ops[i].value, &c))
			rc = -EBADMSG;
		snprintf(key, sizeof(key), "count/%s", delta.v[i].key);
		if (!rc)
			rc = kvb_put(puts, key, "%" PRIu64, c + (uint64_t)delta.v[i].count);
	}
	kvb_free(&gets);
	tally_free(&delta);
	return rc;
}

static int run_exactly_once(const struct pv_opts *o, struct pv_stats *st)
{
	struct tpc_logger lg = { "lesson-pageviews", TPC_LOG_WARN };
	struct txagg_cfg cfg = {
		.coordinator = o->coordinator, .ledger = o->ledger, .offsets = o->offsets,
		.log_dir = o->log, .ns = o->ns ? o->ns : "pageviews", .batch = (uint32_t)o->batch,
		.dedupe = !o->no_dedupe, .from_set = o->from_set, .from = o->from,
		.progress = o->progress, .timeout_ms = 5000, .log = &lg, .plan = pv_plan,
	};
	struct txagg_stats ts;
	int rc = txagg_run(&cfg, &ts);

	st->position = ts.position;
	st->events = ts.events;
	st->dups_skipped = ts.dups_skipped;
	st->counted = ts.events - ts.dups_skipped;
	st->batches = ts.batches;
	return rc;
}

static int cmd_run(struct pv_opts *o)
{
	struct pv_stats st = { 0 };
	uint64_t t0 = tpc_now_ms();
	int rc = 0;

	if (lesson_from_time("lesson-pageviews", o->log, o->from_time, &o->from, &o->from_set))
		return 1;
	rc = o->mode == MODE_XO ? run_exactly_once(o, &st) : run_local(o, &st);
	if (rc) {
		fprintf(stderr, "lesson-pageviews: %s\n", tpc_strerror(rc));
		return 1;
	}
	printf("done mode=%s position=%" PRIu64 " events=%" PRIu64 " counted=%" PRIu64
	       " dups_skipped=%" PRIu64 " batches=%" PRIu64 " elapsed_ms=%" PRIu64 "\n",
	       o->mode_name, st.position, st.events, st.counted, st.dups_skipped, st.batches,
	       tpc_now_ms() - t0);
	return 0;
}

/* ---- report ---- */

static int read_counts(struct store *s, MDB_txn *txn, struct tally *t)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_rc(mdb_cursor_open(txn, s->counts, &cur));

	while (!rc && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		char key[96], val[32];
		uint64_t c;
		snprintf(key, sizeof(key), "%.*s", (int)k.mv_size, (const char *)k.mv_data);
		snprintf(val, sizeof(val), "%.*s", (int)v.mv_size, (const char *)v.mv_data);
		rc = lesson_parse_u64(val, &c) ? -EBADMSG : tally_add(t, key, (int64_t)c, 0);
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cur);
	return mdb_rc(rc);
}

/* The local store, read-only: counts, and the position (meta, or the offset file). */
static int report_local(const char *dir, struct tally *t, uint64_t *pos)
{
	struct store s;
	MDB_txn *txn = NULL;
	int rc = store_open(&s, dir, 1);

	if (!rc)
		rc = mdb_rc(mdb_txn_begin(s.env, NULL, MDB_RDONLY, &txn));
	if (!rc)
		rc = open_dbs_in(&s, txn, 0);
	if (!rc)
		rc = read_counts(&s, txn, t);
	if (!rc && get_u64(txn, s.meta, "pos", pos) == 0 &&
	    stored_position(&s, MODE_ALO, pos) < 0)
		rc = -EBADMSG;
	if (txn)
		mdb_txn_abort(txn);
	store_close(&s);
	return rc;
}

struct ledger_counts {
	struct tally *t;
	uint64_t pos;
	int rc;
};

static int ledger_entry(void *arg, const void *key, size_t klen, const void *value,
			size_t vlen, tpc_txid txid)
{
	struct ledger_counts *lc = arg;
	char k[128], v[32];
	uint64_t c;

	if (klen >= sizeof(k) || vlen >= sizeof(v))
		return 0;
	snprintf(k, sizeof(k), "%.*s", (int)klen, (const char *)key);
	snprintf(v, sizeof(v), "%.*s", (int)vlen, (const char *)value);
	if (!strcmp(k, "pos"))
		lc->rc = lesson_parse_u64(v, &lc->pos) ? -EBADMSG : 0;
	else if (!strncmp(k, "count/", 6))
		lc->rc = lesson_parse_u64(v, &c) ? -EBADMSG : tally_add(lc->t, k + 6, (int64_t)c, 0);
	return lc->rc;
}

static int cmd_report(const struct pv_opts *o)
{
	struct tally t = { 0 };
	uint64_t pos = 0;
	int rc;

	if (o->ledger_data) {
		char dir[4096];
		struct ledger_counts lc = { &t, 0, 0 };
		snprintf(dir, sizeof(dir), "%s/sink", o->ledger_data);
		rc = tpc_sink_lmdb_dump(dir, ledger_entry, &lc);
		pos = lc.pos;
	} else {
		rc = report_local(o->store, &t, &pos);
	}
	if (rc)
		fprintf(stderr, "lesson-pageviews: reading %s: %s\n",
			o->ledger_data ? o->ledger_data : o->store, tpc_strerror(rc));
	else
		rc = lesson_print_report(stdout, &t, REPORT_COUNTS, o->json, pos);
	tally_free(&t);
	return rc ? 1 : 0;
}

/* ---- command line ---- */

static const char usage_text[] =
	"Usage: lesson-pageviews run --mode MODE --log DIR [options]\n"
	"       lesson-pageviews report (--store DIR | --ledger-data DIR) [--json]\n"
	"\n"
	"The page-view counter: views per page (per merchant, for payments) from the event\n"
	"log, in one of three modes:\n"
	"  at-least-once     counts, then the offset, in two steps: crashes over-count\n"
	"  effectively-once  counts, processed event ids and offset in one local LMDB\n"
	"                    transaction: duplicates (crash replays, producer retries)\n"
	"                    change nothing\n"
	"  exactly-once      through tpc, like lesson-close, with event-id dedupe\n"
	"It stops at the end of the log.\n"
	"\n"
	"  run\n"
	"      --mode MODE        at-least-once, effectively-once or exactly-once\n"
	"      --log DIR          the event log\n"
	"      --store DIR        the local store (at-least-once, effectively-once)\n"
	"      --coordinator H:P, --ledger H:P, --offsets H:P   exactly-once: the tpc\n"
	"                         coordinator and the two tpc-kv services\n"
	"      --ns NAME          exactly-once: transaction key namespace (default pageviews)\n"
	"      --no-dedupe        exactly-once: do not dedupe event ids (shows what 2PC\n"
	"                         alone leaves: producer retries counted twice)\n"
	"      --batch N          events per batch (default 200)\n"
	"      --from OFFSET      replay from OFFSET (over the existing store, or into a\n"
	"                         fresh one)\n"
	"      --from-time TIME   replay from the first event at or after TIME\n"
	"      --progress FILE    write the position here (for the driver)\n"
	"  report                 views per group as CSV (--json for JSON)\n"
	"      --store DIR | --ledger-data DIR (the exactly-once ledger's tpc-kv folder)\n"
	"\n"
	"TIME is YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.mmm]]Z (UTC), or ms since 1970.\n"
	"  -h, --help\n";

enum { OPT_MODE = 256, OPT_LOG, OPT_STORE, OPT_COORD, OPT_LEDGER, OPT_OFFSETS, OPT_NS,
       OPT_NO_DEDUPE, OPT_BATCH, OPT_FROM, OPT_FROM_TIME, OPT_PROGRESS, OPT_LEDGER_DATA,
       OPT_JSON };

static const struct option long_opts[] = {
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "store", required_argument, NULL, OPT_STORE },
	{ "coordinator", required_argument, NULL, OPT_COORD },
	{ "ledger", required_argument, NULL, OPT_LEDGER },
	{ "offsets", required_argument, NULL, OPT_OFFSETS },
	{ "ns", required_argument, NULL, OPT_NS },
	{ "no-dedupe", no_argument, NULL, OPT_NO_DEDUPE },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "from-time", required_argument, NULL, OPT_FROM_TIME },
	{ "progress", required_argument, NULL, OPT_PROGRESS },
	{ "ledger-data", required_argument, NULL, OPT_LEDGER_DATA },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *msg)
{
	return tpc_usage_error("lesson-pageviews", "%s", msg);
}

static int parse_mode(struct pv_opts *o, const char *v)
{
	static const char *const names[] = { "at-least-once", "effectively-once", "exactly-once" };

	for (int i = 0; i < 3; i++)
		if (!strcmp(v, names[i])) {
			o->mode = (enum pv_mode)i;
			o->mode_name = names[i];
			return 0;
		}
	return usage_error("--mode expects at-least-once, effectively-once or exactly-once");
}

static int parse_opt(void *opts, int c, const char *v)
{
	struct pv_opts *o = opts;

	switch (c) {
	case OPT_MODE: return parse_mode(o, v);
	case OPT_LOG: o->log = v; return 0;
	case OPT_STORE: o->store = v; return 0;
	case OPT_COORD: o->coordinator = v; return 0;
	case OPT_LEDGER: o->ledger = v; return 0;
	case OPT_OFFSETS: o->offsets = v; return 0;
	case OPT_NS: o->ns = v; return 0;
	case OPT_NO_DEDUPE: o->no_dedupe = 1; return 0;
	case OPT_FROM_TIME: o->from_time = v; return 0;
	case OPT_PROGRESS: o->progress = v; return 0;
	case OPT_LEDGER_DATA: o->ledger_data = v; return 0;
	case OPT_JSON: o->json = 1; return 0;
	case OPT_BATCH: return lesson_opt_batch("lesson-pageviews", v, &o->batch);
	case OPT_FROM: return lesson_opt_from("lesson-pageviews", v, &o->from, &o->from_set);
	default: return usage_error("unknown option");
	}
}

static int run_command(void *opts)
{
	struct pv_opts *o = opts;

	if (!strcmp(o->cmd, "report"))
		return !o->store == !o->ledger_data
			       ? usage_error("report needs one of --store, --ledger-data")
			       : cmd_report(o);
	if (strcmp(o->cmd, "run"))
		return usage_error("unknown command");
	if (!o->mode_name || !o->log)
		return usage_error("run needs --mode and --log");
	if (o->from_set && o->from_time)
		return usage_error("--from and --from-time exclude each other");
	if (o->mode == MODE_XO && (!o->coordinator || !o->ledger || !o->offsets))
		return usage_error("exactly-once needs --coordinator, --ledger and --offsets");
	if (o->mode != MODE_XO && !o->store)
		return usage_error("this mode needs --store DIR");
	return cmd_run(o);
}

static const struct lesson_cli cli = {
	.prog = "lesson-pageviews",
	.usage = usage_text,
	.no_cmd = "a command is required: run or report",
	.long_opts = long_opts,
	.parse_opt = parse_opt,
	.run = run_command,
};

int main(int argc, char **argv)
{
	struct pv_opts o = { .batch = 200 };

	return lesson_cli_main(argc, argv, &cli, &o, &o.cmd);
}
