/*
 * outbox.c - lesson-outbox: a small order service, its outbox relay, and the dual
 * write the outbox replaces.
 *
 *   lesson-outbox orders --db DIR --log DIR --orders N --mode outbox|dual-write
 *   lesson-outbox relay --db DIR --log DIR
 *   lesson-outbox dump --db DIR
 *
 * The order service creates orders 0..N-1 (order i is a seeded payment event, a pure
 * function of --seed and i, so a restarted service continues where the store says).
 *  - outbox: ONE local LMDB transaction writes the order and its outgoing event (an
 *    "outbox" row). An order never exists without its event, nor an event without
 *    its order. The relay publishes outbox rows to the event log, forces the log,
 *    and only then deletes the rows: at least once. Killed in between, it publishes
 *    those rows again after its restart: duplicates, which the downstream idempotent
 *    consumer absorbs (same event id).
 *  - dual-write: the order is committed, THEN the event is appended to the log. Killed
 *    in between, the order exists and its event never will: a lost event, which no
 *    downstream pattern can bring back.
 *
 * Crash points (--crash-pct P: each point raises SIGKILL with probability P percent,
 * seeded by LESSON_CRASH_SEED so the driver can replay a run): orders.after_commit,
 * orders.after_publish, relay.after_publish, relay.after_delete.
 *
 * Store layout (LMDB, synced commits): "orders" order id -> event payload; "outbox"
 * u64 big-endian sequence -> event payload; "meta": "next_order", "next_seq", "done".
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "bytes.h"
#include "cli.h"
#include "eventlog.h"
#include "events.h"
#include "util.h"
#include "txagg.h"

struct ob_opts {
	const char *cmd, *db, *log, *progress;
	uint64_t orders, seed, batch;
	unsigned crash_pct;
	int dual_write, mode_set;
};

struct ob {
	const struct ob_opts *o;
	MDB_env *env;
	MDB_dbi orders, outbox, meta;
	evlog *log;
	uint64_t rng;       /* crash points */
};

static int mdb_rc(int rc)
{
	return rc > 0 ? -rc : rc;
}

static void crash_point(struct ob *b, const char *name)
{
	if (!b->o->crash_pct || lesson_rng_next(&b->rng) % 10000 >= b->o->crash_pct * 100u)
		return;
	fprintf(stderr, "lesson-outbox: crash point %s fired\n", name);
	raise(SIGKILL);
}

static int ob_open(struct ob *b, const struct ob_opts *o, int rdonly)
{
	MDB_txn *txn;
	const char *seed = getenv("LESSON_CRASH_SEED");
	unsigned flags = rdonly ? 0 : MDB_CREATE;
	int rc;

	memset(b, 0, sizeof(*b));
	b->o = o;
	b->rng = seed ? strtoull(seed, NULL, 10) : (uint64_t)getpid();
	if (!rdonly && mkdir(o->db, 0755) && errno != EEXIST)
		return -errno;
	if ((rc = mdb_rc(mdb_env_create(&b->env))) ||
	    (rc = mdb_rc(mdb_env_set_maxdbs(b->env, 4))) ||
	    (rc = mdb_rc(mdb_env_set_mapsize(b->env, 1ull << 30))) ||
	    (rc = mdb_rc(mdb_env_open(b->env, o->db, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0644))) ||
	    (rc = mdb_rc(mdb_txn_begin(b->env, NULL, rdonly ? MDB_RDONLY : 0, &txn))))
		return rc;
	if ((rc = mdb_rc(mdb_dbi_open(txn, "orders", flags, &b->orders))) ||
	    (rc = mdb_rc(mdb_dbi_open(txn, "outbox", flags, &b->outbox))) ||
	    (rc = mdb_rc(mdb_dbi_open(txn, "meta", flags, &b->meta)))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_rc(mdb_txn_commit(txn));
}

static void ob_close(struct ob *b)
{
	if (b->env)
		mdb_env_close(b->env);
	evlog_close(b->log);
}

static uint64_t meta_get(struct ob *b, MDB_txn *txn, const char *key)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	char buf[32];
	uint64_t n = 0;

	if (mdb_get(txn, b->meta, &k, &v) == 0) {
		snprintf(buf, sizeof(buf), "%.*s", (int)v.mv_size, (const char *)v.mv_data);
		if (lesson_parse_u64(buf, &n))
			n = 0;
	}
	return n;
}

static int meta_put(struct ob *b, MDB_txn *txn, const char *key, uint64_t n)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64, n);
	MDB_val k = { strlen(key), (void *)key }, v = { (size_t)len, buf };

	return mdb_rc(mdb_put(txn, b->meta, &k, &v, 0));
}

/* ---- the order service ---- */

/* Order i: write it (and, with the outbox, its event) in one local transaction. */
static int create_order(struct ob *b, uint64_t i, const char *payload, size_t len,
			const struct lesson_event *ev)
{
	MDB_txn *txn;
	MDB_val k = { strlen(ev->eid), (void *)ev->eid }, v = { len, (void *)payload };
	int rc = mdb_rc(mdb_txn_begin(b->env, NULL, 0, &txn));

	if (rc)
		return rc;
	rc = mdb_rc(mdb_put(txn, b->orders, &k, &v, 0));
	if (!rc && !b->o->dual_write) {
		uint8_t seq[8];
		uint64_t s = meta_get(b, txn, "next_seq");
		MDB_val sk = { sizeof(seq), seq };
		tpc_put_be64(seq, s);
		rc = mdb_rc(mdb_put(txn, b->outbox, &sk, &v, 0));
		if (!rc)
			rc = meta_put(b, txn, "next_seq", s + 1);
	}
	if (!rc)
		rc = meta_put(b, txn, "next_order", i + 1);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_rc(mdb_txn_commit(txn));
}

static int mark_done(struct ob *b)
{
	MDB_txn *txn;
	int rc = mdb_rc(mdb_txn_begin(b->env, NULL, 0, &txn));

	if (!rc && (rc = meta_put(b, txn, "done", 1)))
		mdb_txn_abort(txn);
	return rc ? rc : mdb_rc(mdb_txn_commit(txn));
}

static uint64_t next_order(struct ob *b)
{
	MDB_txn *txn;
	uint64_t n = 0;

	if (mdb_txn_begin(b->env, NULL, MDB_RDONLY, &txn) == 0) {
		n = meta_get(b, txn, "next_order");
		mdb_txn_abort(txn);
	}
	return n;
}

static int cmd_orders(const struct ob_opts *o)
{
	struct lesson_gen gen = { 'P', "order", o->seed, o->orders, 0, 7 * 86400000ull };
	struct ob b;
	char err[256];
	int rc = ob_open(&b, o, 0);

	lesson_time_parse("2026-11-23", &gen.start_ms);
	if (!rc && o->dual_write && (rc = evlog_open(o->log, 1, &b.log, err, sizeof(err))))
		fprintf(stderr, "lesson-outbox: %s\n", err);
	for (uint64_t i = rc ? o->orders : next_order(&b); i < o->orders && !rc; i++) {
		struct lesson_event ev;
		char payload[256];
		lesson_gen_event(&gen, i, &ev);
		int len = lesson_event_format(&ev, payload, sizeof(payload));
		if (len < 0 || (rc = create_order(&b, i, payload, (size_t)len, &ev)))
			break;
		crash_point(&b, "orders.after_commit");
		if (o->dual_write) {
			rc = evlog_append(b.log, ev.time_ms, payload, (size_t)len, NULL);
			if (!rc)
				rc = evlog_sync(b.log);
			crash_point(&b, "orders.after_publish");
		}
		lesson_write_progress(o->progress, i + 1);
	}
	if (!rc)
		rc = mark_done(&b);
	if (rc)
		fprintf(stderr, "lesson-outbox: orders: %s\n", strerror(-rc));
	ob_close(&b);
	return rc ? 1 : 0;
}

/* ---- the relay ---- */

struct taken {
	uint8_t seq[8];
	uint64_t ts;
	char payload[256];
	size_t len;
};

/* Read up to @p max outbox rows (oldest first); sets *done when the service finished. */
static int take_rows(struct ob *b, struct taken *t, size_t max, size_t *n, int *done)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_rc(mdb_txn_begin(b->env, NULL, MDB_RDONLY, &txn));

	*n = 0;
	if (rc)
		return rc;
	*done = meta_get(b, txn, "done") == 1;
	if ((rc = mdb_rc(mdb_cursor_open(txn, b->outbox, &cur)))) {
		mdb_txn_abort(txn);
		return rc;
	}
	while (!rc && *n < max && mdb_cursor_get(cur, &k, &v, *n ? MDB_NEXT : MDB_FIRST) == 0) {
		struct lesson_event ev = { 0 };
		struct taken *r = &t[(*n)++];
		if (k.mv_size != 8 || v.mv_size >= sizeof(r->payload) ||
		    lesson_event_parse(v.mv_data, v.mv_size, &ev))
			rc = -EBADMSG;
		memcpy(r->seq, k.mv_data, 8);
		r->len = v.mv_size < sizeof(r->payload) ? v.mv_size : 0;
		memcpy(r->payload, v.mv_data, r->len);
		r->ts = ev.time_ms;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

static int delete_rows(struct ob *b, struct taken *t, size_t n)
{
	MDB_txn *txn;
	int rc = mdb_rc(mdb_txn_begin(b->env, NULL, 0, &txn));

	for (size_t i = 0; !rc && i < n; i++) {
		MDB_val k = { 8, t[i].seq };
		rc = mdb_rc(mdb_del(txn, b->outbox, &k, NULL));
	}
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_rc(mdb_txn_commit(txn));
}

/* One relay round: 1 published something, 0 idle, 2 finished, <0 error. */
static int relay_round(struct ob *b, struct taken *t, size_t max)
{
	size_t n;
	int done, rc = take_rows(b, t, max, &n, &done);

	if (rc)
		return rc;
	if (n == 0)
		return done ? 2 : 0;
	for (size_t i = 0; !rc && i < n; i++)
		rc = evlog_append(b->log, t[i].ts, t[i].payload, t[i].len, NULL);
	if (!rc)
		rc = evlog_sync(b->log);    /* published: at least once from here on */
	if (rc)
		return rc;
	crash_point(b, "relay.after_publish");
	rc = delete_rows(b, t, n);
	crash_point(b, "relay.after_delete");
	return rc ? rc : 1;
}

static int cmd_relay(const struct ob_opts *o)
{
	size_t max = o->batch ? o->batch : 50;
	struct taken *t = calloc(max, sizeof(*t));
	struct ob b;
	char err[256];
	int rc = t ? ob_open(&b, o, 0) : -ENOMEM;

	if (!rc && (rc = evlog_open(o->log, 1, &b.log, err, sizeof(err))))
		fprintf(stderr, "lesson-outbox: %s\n", err);
	while (!rc) {
		rc = relay_round(&b, t, max);
		if (rc == 0) {
			struct timespec ts = { 0, 2000000 };
			nanosleep(&ts, NULL);
		} else if (rc == 1) {
			lesson_write_progress(o->progress, evlog_next_offset(b.log));
			rc = 0;
		}
	}
	if (rc < 0)
		fprintf(stderr, "lesson-outbox: relay: %s\n", strerror(-rc));
	if (t)
		ob_close(&b);
	free(t);
	return rc < 0 ? 1 : 0;
}

/* ---- dump ---- */

static int cmd_dump(const struct ob_opts *o)
{
	struct ob b;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = ob_open(&b, o, 1);

	if (!rc && !(rc = mdb_rc(mdb_txn_begin(b.env, NULL, MDB_RDONLY, &txn)))) {
		if (!(rc = mdb_rc(mdb_cursor_open(txn, b.orders, &cur)))) {
			while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
				printf("%.*s\n", (int)v.mv_size, (const char *)v.mv_data);
			mdb_cursor_close(cur);
		}
		mdb_txn_abort(txn);
	}
	if (rc)
		fprintf(stderr, "lesson-outbox: reading %s: %s\n", o->db, strerror(-rc));
	ob_close(&b);
	return rc ? 1 : 0;
}

/* ---- command line ---- */

static const char usage_text[] =
	"Usage: lesson-outbox orders --db DIR --log DIR --orders N --mode outbox|dual-write\n"
	"       lesson-outbox relay --db DIR --log DIR [--batch N]\n"
	"       lesson-outbox dump --db DIR\n"
	"\n"
	"The transactional outbox lesson. `orders` creates orders 0..N-1 (continuing where\n"
	"its store says after a restart):\n"
	"  outbox      the order and its event in ONE local LMDB transaction; `relay`\n"
	"              publishes the events to the log at least once (again after a crash)\n"
	"  dual-write  the order is committed, then its event appended to the log: a\n"
	"              crash in between loses the event\n"
	"`relay` stops once the order service finished and the outbox is empty.\n"
	"`dump` prints every order as an event payload, one a line (the truth downstream\n"
	"results are checked against).\n"
	"\n"
	"      --db DIR           the order service's LMDB store\n"
	"      --log DIR          the event log events are published to\n"
	"      --orders N         orders to create\n"
	"      --seed N           order i is a pure function of the seed and i (default 1)\n"
	"      --batch N          relay: outbox rows per publish (default 50)\n"
	"      --crash-pct P      raise SIGKILL at each crash point with probability P%\n"
	"                         (seeded by LESSON_CRASH_SEED)\n"
	"      --progress FILE    write the number of orders (relay: of log records) here\n"
	"  -h, --help\n";

enum { OPT_DB = 256, OPT_LOG, OPT_ORDERS, OPT_MODE, OPT_SEED, OPT_BATCH, OPT_CRASH,
       OPT_PROGRESS };

static const struct option long_opts[] = {
	{ "db", required_argument, NULL, OPT_DB },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "orders", required_argument, NULL, OPT_ORDERS },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "crash-pct", required_argument, NULL, OPT_CRASH },
	{ "progress", required_argument, NULL, OPT_PROGRESS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *msg)
{
	return tpc_usage_error("lesson-outbox", "%s", msg);
}

static int parse_opt(void *opts, int c, const char *v)
{
	struct ob_opts *o = opts;
	uint64_t n;

	switch (c) {
	case OPT_DB: o->db = v; return 0;
	case OPT_LOG: o->log = v; return 0;
	case OPT_PROGRESS: o->progress = v; return 0;
	case OPT_MODE:
		if (strcmp(v, "outbox") && strcmp(v, "dual-write"))
			return usage_error("--mode expects outbox or dual-write");
		o->dual_write = !strcmp(v, "dual-write");
		o->mode_set = 1;
		return 0;
	case OPT_ORDERS: return lesson_parse_u64(v, &o->orders) ? usage_error("--orders expects N") : 0;
	case OPT_SEED: return lesson_parse_u64(v, &o->seed) ? usage_error("--seed expects N") : 0;
	case OPT_BATCH:
		return lesson_parse_u64(v, &o->batch) || !o->batch || o->batch > 10000
			       ? usage_error("--batch expects 1..10000") : 0;
	case OPT_CRASH:
		if (lesson_parse_u64(v, &n) || n > 100)
			return usage_error("--crash-pct expects 0..100");
		o->crash_pct = (unsigned)n;
		return 0;
	default: return usage_error("unknown option");
	}
}

/* Check the options against the command and run it. */
static int run_command(void *opts)
{
	struct ob_opts *o = opts;

	if (!o->db)
		return usage_error("--db DIR is required");
	if (!strcmp(o->cmd, "dump"))
		return cmd_dump(o);
	if (!o->log)
		return usage_error("--log DIR is required");
	if (!strcmp(o->cmd, "orders"))
		return o->orders && o->mode_set ? cmd_orders(o)
					      : usage_error("orders needs --orders N and --mode");
	if (!strcmp(o->cmd, "relay"))
		return cmd_relay(o);
	return usage_error("unknown command");
}

static const struct lesson_cli cli = {
	.prog = "lesson-outbox",
	.usage = usage_text,
	.no_cmd = "a command is required: orders, relay or dump",
	.long_opts = long_opts,
	.parse_opt = parse_opt,
	.run = run_command,
};

int main(int argc, char **argv)
{
	struct ob_opts o = { .seed = 1 };

	return lesson_cli_main(argc, argv, &cli, &o, &o.cmd);
}
