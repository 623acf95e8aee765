/*
 * txagg.c - the exactly-once batch engine (see txagg.h for the protocol).
 *
 * State of one run, all in struct txagg: the tpc client, one kvconn per participant,
 * a reader on the event log, and the batch being built. Every failure on the way
 * (a participant or the coordinator down, a fenced transaction, an unknown outcome)
 * ends the batch attempt; the loop starts over at step 1 and re-reads committed state,
 * so nothing this process remembers can be stale.
 */
#include "txagg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "eventlog.h"
#include "tpc/client.h"
#include "util.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 200

struct txagg {
	const struct txagg_cfg *cfg;
	struct txagg_stats *st;
	tpc_client *client;
	struct kvconn ledger, offsets;
	evlog_reader *reader;
	struct lesson_event *ev;   /* the batch's events, cfg->batch of them */
	size_t nev;
	uint64_t backoff_ms;
	uint64_t last_progress;
};

/* ---- kvbatch ---- */

static struct kv_op *kvb_add(struct kvbatch *b, enum kv_op_kind kind, const char *key)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct kv_op *nv = realloc(b->ops, cap * sizeof(*nv));
		if (!nv)
			return NULL;
		b->ops = nv;
		b->cap = cap;
	}
	struct kv_op *op = &b->ops[b->n];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->key = strdup(key);
	if (!op->key)
		return NULL;
	op->key_len = strlen(key);
	b->n++;
	return op;
}

int kvb_put(struct kvbatch *b, const char *key, const char *fmt, ...)
{
	char val[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	struct kv_op *op = kvb_add(b, KV_PUT, key);
	if (!op || !(op->val = strdup(val)))
		return -ENOMEM;
	op->val_len = strlen(val);
	return 0;
}

int kvb_get(struct kvbatch *b, const char *key)
{
	return kvb_add(b, KV_GET, key) ? 0 : -ENOMEM;
}

void kvb_reset(struct kvbatch *b)
{
	kv_ops_clear(b->ops, b->n);
	for (size_t i = 0; i < b->n; i++) {
		free((void *)b->ops[i].key);
		free((void *)b->ops[i].val);
	}
	b->n = 0;
}

void kvb_free(struct kvbatch *b)
{
	kvb_reset(b);
	free(b->ops);
	b->ops = NULL;
	b->cap = 0;
}

/* ---- helpers ---- */

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void backoff(struct txagg *ta)
{
	ta->st->retries++;
	ta->backoff_ms = ta->backoff_ms ? ta->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (ta->backoff_ms > BACKOFF_MAX_MS)
		ta->backoff_ms = BACKOFF_MAX_MS;
	sleep_ms(ta->backoff_ms);
}

static int parse_pos(const struct kv_op *op, uint64_t *pos)
{
	char *end;

	if (op->err || !op->found)
		return op->err ? op->err : -ENOENT;
	*pos = strtoull(op->value, &end, 10);
	return *end ? -EBADMSG : 0;
}

int txagg_ledger_read(struct txagg *ta, struct kvbatch *gets)
{
	int rc = kvconn_exec(&ta->ledger, 0, gets->ops, gets->n);

	for (size_t i = 0; !rc && i < gets->n; i++)
		rc = gets->ops[i].err;
	return rc;
}

int txagg_ledger_read_keys(struct txagg *ta, const struct tally *keys, const char *prefix,
			   struct kvbatch *gets)
{
	char key[160];
	int rc = 0;

	for (size_t i = 0; !rc && i < keys->n; i++) {
		snprintf(key, sizeof(key), "%s/%s", prefix, keys->v[i].key);
		rc = kvb_get(gets, key);
	}
	return rc ? rc : txagg_ledger_read(ta, gets);
}

/* One Get of one key at one participant. 1 found (*v set), 0 absent, <0 error. */
static int get_u64(struct kvconn *kv, const char *key, uint64_t *v)
{
	struct kv_op op = { .kind = KV_GET, .key = key, .key_len = strlen(key) };
	int rc = kvconn_exec(kv, 0, &op, 1);

	if (!rc)
		rc = op.err ? op.err : op.found ? (parse_pos(&op, v) ? -EBADMSG : 1) : 0;
	kv_ops_clear(&op, 1);
	return rc;
}

/*
 * Step 1: wait until both participants show the same position. *fresh is set when
 * neither has one (a new sink: its history starts at cfg->from, or 0).
 */
static int sync_positions(struct txagg *ta, uint64_t *pos, int *fresh)
{
	for (;;) {
		uint64_t lp = 0, op = 0;
		int lf = get_u64(&ta->ledger, "pos", &lp);
		int of = lf < 0 ? lf : get_u64(&ta->offsets, "pos", &op);
		if (lf < 0 || of < 0)
			return lf < 0 ? lf : of;
		if (!lf && !of) {
			*pos = ta->cfg->from_set ? ta->cfg->from : 0;
			*fresh = 1;
			return 0;
		}
		if (lf && of && lp == op) {
			*pos = lp;
			*fresh = 0;
			return 0;
		}
		sleep_ms(1); /* a commit is on its way to one of them */
	}
}

/* After ALREADY_COMMITTED for the batch at @p from: wait until it reached both. */
static int wait_past(struct txagg *ta, uint64_t from)
{
	for (;;) {
		uint64_t pos;
		int fresh, rc = sync_positions(ta, &pos, &fresh);
		if (rc || pos > from)
			return rc;
		sleep_ms(2);
	}
}

/* Read up to cfg->batch events from offset @p from into ta->ev. */
static int read_batch(struct txagg *ta, uint64_t from)
{
	struct evlog_record rec;
	int rc = 0;

	ta->nev = 0;
	if (evlog_reader_position(ta->reader) != from && (rc = evlog_reader_seek(ta->reader, from)))
		return rc;
	while (ta->nev < ta->cfg->batch && (rc = evlog_reader_next(ta->reader, &rec)) == 1) {
		if (lesson_event_parse(rec.data, rec.len, &ta->ev[ta->nev])) {
			tpc_logf(ta->cfg->log, TPC_LOG_ERROR, "offset %" PRIu64 " is not an event",
				 rec.offset);
			return -EBADMSG;
		}
		ta->nev++;
	}
	return rc < 0 ? rc : 0;
}

/* ---- dedupe: count each event id once ---- */

static int cmp_eid_ptr(const void *a, const void *b)
{
	const struct lesson_event *x = *(const struct lesson_event *const *)a;
	const struct lesson_event *y = *(const struct lesson_event *const *)b;
	int c = strcmp(x->eid, y->eid);
	return c ? c : (x < y ? -1 : x > y);
}

/* Mark events whose id repeats inside the batch (kind = 0), keeping the first. */
static int dedupe_in_batch(struct txagg *ta)
{
	const struct lesson_event **v = malloc(ta->nev * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < ta->nev; i++)
		v[i] = &ta->ev[i];
	qsort(v, ta->nev, sizeof(*v), cmp_eid_ptr);
	for (size_t i = 1; i < ta->nev; i++)
		if (!strcmp(v[i]->eid, v[i - 1]->eid))
			((struct lesson_event *)v[i])->kind = 0;
	free(v);
	return 0;
}

/* Drop events counted by an earlier batch ("seen/<id>" in the ledger) and add their
 * "seen/" Puts; leaves the survivors packed at the front of ta->ev. */
static int dedupe(struct txagg *ta, struct kvbatch *puts)
{
	struct kvbatch gets = { 0 };
	char key[64];
	size_t out = 0;
	int rc = dedupe_in_batch(ta);

	for (size_t i = 0; !rc && i < ta->nev; i++)
		if (ta->ev[i].kind) {
			snprintf(key, sizeof(key), "seen/%s", ta->ev[i].eid);
			rc = kvb_get(&gets, key);
		}
	if (!rc)
		rc = txagg_ledger_read(ta, &gets);
	for (size_t i = 0, g = 0; !rc && i < ta->nev; i++) {
		if (!ta->ev[i].kind || gets.ops[g++].found)
			continue;
		snprintf(key, sizeof(key), "seen/%s", ta->ev[i].eid);
		rc = kvb_put(puts, key, "1");
		ta->ev[out++] = ta->ev[i];
	}
	if (!rc) {
		ta->st->dups_skipped += ta->nev - out;
		ta->nev = out;
	}
	kvb_free(&gets);
	return rc;
}

/* ---- one batch ---- */

static int stage(struct kvconn *kv, tpc_txid txid, struct kvbatch *b)
{
	int rc = kvconn_exec(kv, txid, b->ops, b->n);

	for (size_t i = 0; !rc && i < b->n; i++)
		rc = b->ops[i].err;
	return rc;
}

static int build_and_stage(struct txagg *ta, tpc_txid txid, uint64_t from, uint64_t to,
			   int fresh)
{
	struct kvbatch lp = { 0 }, op = { 0 };
	char key[64];
	int rc = 0;

	if (ta->cfg->dedupe)
		rc = dedupe(ta, &lp);
	if (!rc)
		rc = ta->cfg->plan(ta->cfg->plan_self, ta, ta->ev, ta->nev, to, &lp);
	if (!rc)
		rc = kvb_put(&lp, "pos", "%" PRIu64, to);
	snprintf(key, sizeof(key), "batch/%012" PRIu64, from);
	if (!rc)
		rc = kvb_put(&op, key, "%" PRIu64, to);
	if (!rc)
		rc = kvb_put(&op, "pos", "%" PRIu64, to);
	if (!rc && fresh)
		rc = kvb_put(&op, "origin", "%" PRIu64, from);
	if (!rc)
		rc = stage(&ta->ledger, txid, &lp);
	if (!rc)
		rc = stage(&ta->offsets, txid, &op);
	kvb_free(&lp);
	kvb_free(&op);
	return rc;
}

static void key_for(const struct txagg *ta, uint64_t from, char *key, size_t cap)
{
	snprintf(key, cap, "%s/%012" PRIu64, ta->cfg->ns, from);
}

/* Steps 2-3 for the batch at @p from. 1: the position moved on; 0: try again. */
static int run_batch(struct txagg *ta, uint64_t from, int fresh)
{
	char key[96], reason[128];
	tpc_txid txid;
	tpc_begin_result res;
	tpc_outcome outcome;
	uint64_t to = from + ta->nev;

	key_for(ta, from, key, sizeof(key));
	int rc = tpc_client_begin(ta->client, key, 10000, &txid, &res);
	if (rc)
		return rc;
	if (res == TPC_BEGIN_PENDING)
		return 0;
	if (res == TPC_BEGIN_ALREADY_COMMITTED) {
		tpc_logf(ta->cfg->log, TPC_LOG_INFO, "batch %s committed earlier as txid %" PRIu64
			 ": waiting for it to reach both participants", key, txid);
		ta->st->resolved++;
		rc = wait_past(ta, from);
		return rc ? rc : 1;
	}
	uint64_t events_before = ta->nev;
	rc = build_and_stage(ta, txid, from, to, fresh);
	if (rc) {
		tpc_client_abort(ta->client, txid, "staging failed", &outcome);
		ta->st->aborted++;
		return rc;
	}
	rc = tpc_client_commit(ta->client, txid, &outcome, reason, sizeof(reason));
	if (rc || outcome != TPC_OUTCOME_COMMITTED) {
		if (!rc && outcome == TPC_OUTCOME_ABORTED)
			ta->st->aborted++;
		return rc ? rc : 0; /* UNKNOWN: the next Begin under the key says */
	}
	ta->st->batches++;
	ta->st->events += events_before;
	/* The participants apply after we hear COMMITTED: wait for that before reading. */
	rc = wait_past(ta, from);
	return rc ? rc : 1;
}

/* ---- replay over an existing sink ---- */

/* Re-begin every committed batch from the one holding @p from up to @p pos. */
static int confirm_range(struct txagg *ta, uint64_t from, uint64_t pos)
{
	uint64_t b, to;
	char key[96];
	int rc = get_u64(&ta->offsets, "origin", &b);

	if (rc <= 0)
		return rc < 0 ? rc : -ENOENT;
	if (from < b) {
		tpc_logf(ta->cfg->log, TPC_LOG_ERROR, "replay from %" PRIu64 ": this sink's history "
			 "starts at %" PRIu64, from, b);
		return -ERANGE;
	}
	while (b < pos) {
		snprintf(key, sizeof(key), "batch/%012" PRIu64, b);
		if ((rc = get_u64(&ta->offsets, key, &to)) <= 0)
			return rc < 0 ? rc : -EBADMSG;
		if (to <= from) { /* wholly before the replay's start */
			b = to;
			continue;
		}
		key_for(ta, b, key, sizeof(key));
		tpc_txid txid;
		tpc_begin_result res;
		if ((rc = tpc_client_begin(ta->client, key, 10000, &txid, &res)))
			return rc;
		if (res == TPC_BEGIN_PENDING) {
			sleep_ms(10);
			continue;
		}
		if (res == TPC_BEGIN_STARTED) {
			tpc_outcome o;
			tpc_client_abort(ta->client, txid, "replay found no commit", &o);
			tpc_logf(ta->cfg->log, TPC_LOG_ERROR, "replay: batch %s has no commit", key);
			return -EBADMSG;
		}
		if ((rc = read_batch(ta, b)))
			return rc;
		ta->st->events += to - b; /* reprocessed: each batch is a no-op by its key */
		ta->st->confirmed++;
		b = to;
	}
	return 0;
}

/* ---- the run ---- */

static int txagg_open(struct txagg *ta, const struct txagg_cfg *cfg, struct txagg_stats *st)
{
	tpc_client_config cc;
	int err = 0;

	memset(ta, 0, sizeof(*ta));
	ta->cfg = cfg;
	ta->st = st;
	ta->ledger.fd = ta->offsets.fd = -1;
	if (kvconn_init(&ta->ledger, cfg->ledger, cfg->timeout_ms) ||
	    kvconn_init(&ta->offsets, cfg->offsets, cfg->timeout_ms))
		return -EINVAL;
	tpc_client_config_init(&cc);
	cc.coordinator = cfg->coordinator;
	cc.name = cfg->ns;
	cc.request_timeout_ms = cfg->timeout_ms;
	cc.connect_timeout_ms = cfg->timeout_ms;
	ta->client = tpc_client_new(&cc, &err);
	if (!ta->client)
		return err;
	ta->ev = calloc(cfg->batch, sizeof(*ta->ev));
	if (!ta->ev)
		return -ENOMEM;
	return evlog_reader_open(cfg->log_dir, &ta->reader);
}

static void txagg_close(struct txagg *ta)
{
	tpc_client_free(ta->client);
	kvconn_free(&ta->ledger);
	kvconn_free(&ta->offsets);
	evlog_reader_close(ta->reader);
	free(ta->ev);
}

static void note_position(struct txagg *ta, uint64_t pos)
{
	ta->st->position = pos;
	if (pos != ta->last_progress || !ta->last_progress)
		lesson_write_progress(ta->cfg->progress, pos);
	ta->last_progress = pos;
}

/* One turn of the loop: 1 at the end of the log, 0 to go on, <0 fatal. */
static int step(struct txagg *ta, int *replay_pending)
{
	uint64_t pos;
	int fresh, rc = sync_positions(ta, &pos, &fresh);

	if (rc) {
		tpc_logf(ta->cfg->log, TPC_LOG_WARN, "reading positions: %s", tpc_strerror(rc));
		backoff(ta);
		return 0;
	}
	note_position(ta, pos);
	if (*replay_pending) {
		*replay_pending = 0;
		if (!fresh && ta->cfg->from < pos && (rc = confirm_range(ta, ta->cfg->from, pos)))
			return rc;
	}
	if ((rc = read_batch(ta, pos)))
		return rc;
	if (ta->nev == 0)
		return 1;
	rc = run_batch(ta, pos, fresh);
	if (rc < 0) {
		tpc_logf(ta->cfg->log, TPC_LOG_WARN, "batch at %" PRIu64 ": %s", pos,
			 tpc_strerror(rc));
		backoff(ta);
	} else if (rc == 0) {
		sleep_ms(5);
	} else {
		ta->backoff_ms = 0;
	}
	return 0;
}

int txagg_run(const struct txagg_cfg *cfg, struct txagg_stats *st)
{
	struct txagg ta;
	int replay_pending = cfg->from_set, rc;

	memset(st, 0, sizeof(*st));
	rc = txagg_open(&ta, cfg, st);
	while (!rc)
		rc = step(&ta, &replay_pending);
	txagg_close(&ta);
	return rc < 0 ? rc : 0;
}
