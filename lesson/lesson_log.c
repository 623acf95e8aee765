/*
 * lesson_log.c - lesson-log: create and read the lesson's event logs.
 *
 *   lesson-log gen --log DIR --kind payments|pageviews --count N [options]
 *   lesson-log dump --log DIR [--from OFFSET | --from-time TIME] [--limit N]
 *   lesson-log info --log DIR
 *   lesson-log offset-at --log DIR --time TIME
 *
 * `gen` appends seeded events (see events.h), forcing every --sync-every records (one
 * fdatasync per append batch), and can add the duplicates a retrying producer makes:
 * the same event, same id, appended again a few records later. `dump` prints records
 * as OFFSET<TAB>TS_MS<TAB>PAYLOAD, which is what the lesson's checks compute the truth
 * from, independently of the aggregators.
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
#include "util.h"

struct log_opts {
	const char *cmd, *log, *kind, *from_time, *time, *start;
	uint64_t count, seed, from, limit, days, sync_every;
	unsigned dup_pct;
	int from_set;
};

static const char usage_text[] =
	"Usage: lesson-log gen --log DIR --kind payments|pageviews --count N [options]\n"
	"       lesson-log dump --log DIR [--from OFFSET | --from-time TIME] [--limit N]\n"
	"       lesson-log info --log DIR\n"
	"       lesson-log offset-at --log DIR --time TIME\n"
	"\n"
	"The lesson's retained source: an append-only event log with offsets and times.\n"
	"\n"
	"  gen        append N seeded events (the log is created if missing)\n"
	"      --kind payments|pageviews\n"
	"      --count N          events to generate (duplicates come on top)\n"
	"      --seed N           the same seed gives the same events (default 1)\n"
	"      --dup-pct P        percent of events a retrying producer appends twice\n"
	"                         (same event id, a few records later; default 0)\n"
	"      --start DATE       first event time, UTC (default 2026-11-23)\n"
	"      --days N           events spread over N days (default 7)\n"
	"      --sync-every N     records per append batch, one fdatasync each (default 1000)\n"
	"  dump       print OFFSET<TAB>TS_MS<TAB>PAYLOAD per record\n"
	"      --from OFFSET | --from-time TIME   where to start (default: the first record)\n"
	"      --limit N          at most N records\n"
	"  info       records, offsets, times and size of the log\n"
	"  offset-at  the offset of the first record at or after --time TIME\n"
	"\n"
	"TIME is YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.mmm]]Z (UTC), or milliseconds since 1970.\n"
	"  -h, --help\n";

enum { OPT_LOG = 256, OPT_KIND, OPT_COUNT, OPT_SEED, OPT_DUP, OPT_START, OPT_DAYS, OPT_SYNC,
       OPT_FROM, OPT_FROM_TIME, OPT_LIMIT, OPT_TIME };

static const struct option long_opts[] = {
	{ "log", required_argument, NULL, OPT_LOG },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "dup-pct", required_argument, NULL, OPT_DUP },
	{ "start", required_argument, NULL, OPT_START },
	{ "days", required_argument, NULL, OPT_DAYS },
	{ "sync-every", required_argument, NULL, OPT_SYNC },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "from-time", required_argument, NULL, OPT_FROM_TIME },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "time", required_argument, NULL, OPT_TIME },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *msg)
{
	return tpc_usage_error("lesson-log", "%s", msg);
}

/* ---- gen ---- */

struct retry {
	uint64_t due;
	char payload[256];
	int len;
	uint64_t ts;
};

#define MAX_RETRIES 64

struct gen_state {
	evlog *log;
	struct retry pending[MAX_RETRIES];
	int npending;
	uint64_t appended, dups, sync_every;
};

static int gen_append(struct gen_state *g, uint64_t ts, const char *payload, int len)
{
	int rc = evlog_append(g->log, ts, payload, (size_t)len, NULL);

	if (rc == 0 && ++g->appended % g->sync_every == 0)
		rc = evlog_sync(g->log);
	return rc;
}

/* Append the retries that are due at step i (all of them when flush). */
static int gen_retries(struct gen_state *g, uint64_t i, int flush)
{
	for (int k = 0; k < g->npending;) {
		struct retry *r = &g->pending[k];
		if (!flush && r->due > i) {
			k++;
			continue;
		}
		int rc = gen_append(g, r->ts, r->payload, r->len);
		if (rc)
			return rc;
		g->dups++;
		*r = g->pending[--g->npending];
	}
	return 0;
}

/* What to generate, from the options; 0 or a usage error (2). */
static int gen_config(const struct log_opts *o, struct lesson_gen *gen)
{
	*gen = (struct lesson_gen){ .seed = o->seed, .count = o->count };
	if (!strcmp(o->kind, "payments")) {
		gen->kind = 'P';
		gen->eid_prefix = "pay";
	} else if (!strcmp(o->kind, "pageviews")) {
		gen->kind = 'V';
		gen->eid_prefix = "pv";
	} else {
		return usage_error("--kind expects payments or pageviews");
	}
	if (lesson_time_parse(o->start ? o->start : "2026-11-23", &gen->start_ms))
		return usage_error("--start expects a date such as 2026-11-23");
	gen->span_ms = (o->days ? o->days : 7) * 86400000ull;
	return 0;
}

/* Append event i, and maybe schedule a producer retry of it; then the retries due. */
static int gen_one(struct gen_state *g, const struct lesson_gen *gen, uint64_t i, unsigned dup_pct,
		   uint64_t *rng)
{
	struct lesson_event ev;
	char buf[256];

	lesson_gen_event(gen, i, &ev);
	int len = lesson_event_format(&ev, buf, sizeof(buf));
	int rc = len < 0 ? len : gen_append(g, ev.time_ms, buf, len);
	if (!rc && g->npending < MAX_RETRIES && lesson_rng_next(rng) % 10000 < dup_pct * 100) {
		struct retry *r = &g->pending[g->npending++];
		r->due = i + 1 + lesson_rng_next(rng) % 8;
		memcpy(r->payload, buf, (size_t)len);
		r->len = len;
		r->ts = ev.time_ms;
	}
	return rc ? rc : gen_retries(g, i, 0);
}

static int cmd_gen(const struct log_opts *o)
{
	struct lesson_gen gen;
	struct gen_state g = { .sync_every = o->sync_every ? o->sync_every : 1000 };
	uint64_t rng = o->seed ^ 0xd1b54a32d192ed03ull, first;
	char err[256];
	int rc = gen_config(o, &gen);

	if (rc)
		return rc;
	if ((rc = evlog_open(o->log, 1, &g.log, err, sizeof(err)))) {
		fprintf(stderr, "lesson-log: %s\n", err);
		return 1;
	}
	first = evlog_next_offset(g.log);
	for (uint64_t i = 0; i < o->count && !rc; i++)
		rc = gen_one(&g, &gen, i, o->dup_pct, &rng);
	if (!rc)
		rc = gen_retries(&g, UINT64_MAX, 1);
	if (!rc)
		rc = evlog_sync(g.log);
	if (rc)
		fprintf(stderr, "lesson-log: appending to %s: %s\n", o->log, strerror(-rc));
	else
		printf("generated %" PRIu64 " %s events and %" PRIu64
		       " producer-retry duplicates: offsets %" PRIu64 "..%" PRIu64 "\n",
		       o->count, o->kind, g.dups, first, evlog_next_offset(g.log) - 1);
	evlog_close(g.log);
	return rc ? 1 : 0;
}

/* ---- readers ---- */

static int open_reader(const struct log_opts *o, evlog_reader **r)
{
	int rc = evlog_reader_open(o->log, r);

	if (rc) {
		fprintf(stderr, "lesson-log: cannot read %s: %s\n", o->log, strerror(-rc));
		return rc;
	}
	if (o->from_time) {
		uint64_t ts;
		if (lesson_time_parse(o->from_time, &ts))
			return usage_error("--from-time expects a time"), -EINVAL;
		rc = evlog_reader_seek_time(*r, ts, NULL);
	} else if (o->from_set) {
		rc = evlog_reader_seek(*r, o->from);
	}
	if (rc)
		fprintf(stderr, "lesson-log: cannot seek in %s: %s\n", o->log, strerror(-rc));
	return rc;
}

static int cmd_dump(const struct log_opts *o)
{
	evlog_reader *r = NULL;
	struct evlog_record rec;
	uint64_t n = 0;
	int rc = open_reader(o, &r);

	while (!rc && (!o->limit || n < o->limit) && (rc = evlog_reader_next(r, &rec)) == 1) {
		printf("%" PRIu64 "\t%" PRIu64 "\t%.*s\n", rec.offset, rec.ts_ms, (int)rec.len,
		       (const char *)rec.data);
		n++;
		rc = 0;
	}
	if (rc < 0)
		fprintf(stderr, "lesson-log: reading %s: %s\n", o->log, strerror(-rc));
	evlog_reader_close(r);
	return rc < 0;
}

static int cmd_info(const struct log_opts *o)
{
	evlog_reader *r = NULL;
	struct evlog_record rec;
	uint64_t n = 0, first_ts = 0, last_ts = 0;
	int rc = open_reader(o, &r);

	while (!rc && (rc = evlog_reader_next(r, &rec)) == 1) {
		if (n++ == 0)
			first_ts = rec.ts_ms;
		last_ts = rec.ts_ms;
		rc = 0;
	}
	if (rc >= 0) {
		char a[32], b[32];
		lesson_time_format(first_ts, a, sizeof(a));
		lesson_time_format(last_ts, b, sizeof(b));
		printf("records %" PRIu64 "\nnext_offset %" PRIu64 "\nfirst_time %s\nlast_time %s\n",
		       n, evlog_reader_position(r), n ? a : "-", n ? b : "-");
	} else {
		fprintf(stderr, "lesson-log: reading %s: %s\n", o->log, strerror(-rc));
	}
	evlog_reader_close(r);
	return rc < 0;
}

static int cmd_offset_at(const struct log_opts *o)
{
	evlog_reader *r = NULL;
	uint64_t ts, off;
	int rc;

	if (!o->time || lesson_time_parse(o->time, &ts))
		return usage_error("offset-at needs --time TIME");
	rc = evlog_reader_open(o->log, &r);
	if (!rc)
		rc = evlog_reader_seek_time(r, ts, &off);
	if (rc)
		fprintf(stderr, "lesson-log: %s: %s\n", o->log, strerror(-rc));
	else
		printf("%" PRIu64 "\n", off);
	evlog_reader_close(r);
	return rc ? 1 : 0;
}

static int parse_opt(void *opts, int c, const char *v)
{
	struct log_opts *o = opts;
	uint64_t n;

	switch (c) {
	case OPT_LOG: o->log = v; return 0;
	case OPT_KIND: o->kind = v; return 0;
	case OPT_START: o->start = v; return 0;
	case OPT_FROM_TIME: o->from_time = v; return 0;
	case OPT_TIME: o->time = v; return 0;
	case OPT_COUNT: return lesson_parse_u64(v, &o->count) ? usage_error("--count expects a number") : 0;
	case OPT_SEED: return lesson_parse_u64(v, &o->seed) ? usage_error("--seed expects a number") : 0;
	case OPT_DAYS: return lesson_parse_u64(v, &o->days) || !o->days ? usage_error("--days expects N > 0") : 0;
	case OPT_LIMIT: return lesson_parse_u64(v, &o->limit) ? usage_error("--limit expects a number") : 0;
	case OPT_SYNC:
		return lesson_parse_u64(v, &o->sync_every) || !o->sync_every
			       ? usage_error("--sync-every expects N > 0") : 0;
	case OPT_FROM:
		o->from_set = 1;
		return lesson_parse_u64(v, &o->from) ? usage_error("--from expects an offset") : 0;
	case OPT_DUP:
		if (lesson_parse_u64(v, &n) || n > 50)
			return usage_error("--dup-pct expects 0..50");
		o->dup_pct = (unsigned)n;
		return 0;
	default: return usage_error("unknown option");
	}
}

/* Check the options against the command and run it. */
static int run_command(void *opts)
{
	struct log_opts *o = opts;

	if (!o->log)
		return usage_error("--log DIR is required");
	if (!strcmp(o->cmd, "gen"))
		return o->kind && o->count ? cmd_gen(o) : usage_error("gen needs --kind and --count");
	if (!strcmp(o->cmd, "dump"))
		return cmd_dump(o);
	if (!strcmp(o->cmd, "info"))
		return cmd_info(o);
	if (!strcmp(o->cmd, "offset-at"))
		return cmd_offset_at(o);
	return usage_error("unknown command");
}

static const struct lesson_cli cli = {
	.prog = "lesson-log",
	.usage = usage_text,
	.no_cmd = "a command is required: gen, dump, info or offset-at",
	.long_opts = long_opts,
	.parse_opt = parse_opt,
	.run = run_command,
};

int main(int argc, char **argv)
{
	struct log_opts o = { .seed = 1 };

	return lesson_cli_main(argc, argv, &cli, &o, &o.cmd);
}
