/*
 * torture_client.c - `tpc-torture client`: one workload process of a torture run.
 *
 * A libevent program with N transaction slots in flight over one async tpc_client (to
 * the coordinator) and one kvclient per tpc-kv. Each slot: Begin; write "begin" and
 * "intent" to the outcomes file (flushed, before any Put leaves); Put every write,
 * writing "put-ok" as each is acknowledged; then Commit (or Abort: on purpose, or
 * because a Put failed), writing "commit-sent" or "abort-sent" before the request
 * leaves and "outcome" when the answer comes. The records format is records.h.
 *
 * About --staged-pct of the transactions are staged: some of their legs are split into
 * 2 or 3 writes to the same participant, sent in stages (stage N: the Nth write of each
 * participant), each stage only once the previous one was acknowledged, with a pause
 * in between (up to --stage-pause; for --expiry-pause-pct of the pauses, --expiry-pause
 * plus up to 0.8 s, past a short participant expiry). A participant restarted, or whose
 * staged writes expired, between two stages must not let the transaction commit with
 * only the later stages (D8); the checker sees such a loss as a lost-write.
 *
 * About --key-pct of the transactions begin with a client transaction key. When such a
 * Commit ends UNKNOWN the client begins again with the same key, as an application
 * would: the coordinator reports the key's commit (by-key COMMITTED) or starts a new
 * transaction, which means the old one can no longer commit (by-key ABORTED; the new
 * one is aborted at once).
 *
 * SIGTERM or SIGINT: start nothing new, let in-flight work finish for --drain, then
 * abandon the rest (pending Commits are written as UNKNOWN) and exit 0.
 *
 * A restarted client appends to the same file and carries on after the highest
 * sequence number it finds there, so keys stay unique per transaction.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "kvclient.h"
#include "records.h"
#include "schedule.h"
#include "tls.h"
#include "torture.h"
#include "tpc/client.h"
#include "tpc/libevent.h"
#include "cli.h"
#include "util.h"

struct tc;

struct tc_slot;

struct tc_put {               /* one Put in flight: the slot and the write's index */
	struct tc_slot *s;
	uint8_t i;
};

struct tc_slot {
	struct tc *c;
	uint64_t seq, txid;
	struct tt_rec intent;
	struct tc_put puts[TT_MAX_WRITES];
	uint8_t stage_of[TT_MAX_WRITES];  /* 1-based; every write 1 when not staged */
	uint8_t stage, nstages;
	int pending, failed, committing;
	char key[32];          /* client transaction key, or "" */
	unsigned key_tries;
	uint8_t token[TPC_TXN_TOKEN_LEN]; /* the transaction's token, passed with each Put */
	int has_token;
	uint64_t stage_deadline; /* --stage-retry: a later stage's Puts are retried until then */
};

struct tc_opts {
	unsigned id, nparts, refuse, inflight, abort_pct, refuse_pct, key_pct;
	unsigned staged_pct, expiry_pause_pct;
	uint32_t stage_pause_ms, expiry_pause_ms, stage_retry_ms;
	const char *coordinator, *outcomes;
	const char *kv[TT_MAX_PARTS];
	uint64_t seed;
	uint32_t timeout_ms, drain_ms;
	struct tpc_tls_files tls;     /* --tls-cert, --tls-key, --tls-ca */
};

struct tc {
	struct tc_opts o;
	struct event_base *base;
	tpc_client *cli;
	struct kvc *kv[TT_MAX_PARTS];
	FILE *out;
	struct tc_slot *slots;
	unsigned active;             /* slots not yet retired */
	uint64_t next_seq, rng;
	int stopping;
	struct event *sig_term, *sig_int, *drain;
	uint64_t begun, committed, aborted, unknown, begin_failures, put_failures, by_key;
	uint64_t staged, long_pauses, put_retries;
};

static void slot_next(struct tc_slot *s);

/* ---- the outcomes file ---- */

static void emit(struct tc *c, const struct tt_rec *r)
{
	char line[1024];
	int n = tt_rec_format(r, line, sizeof(line));

	if (n > 0)
		fwrite(line, 1, (size_t)n, c->out);
}

static void emit_simple(struct tc *c, enum tt_rec_type type, uint64_t txid, uint8_t outcome,
			const char *why)
{
	struct tt_rec r = { .type = type, .txid = txid, .outcome = outcome };

	if (why)
		snprintf(r.why, sizeof(r.why), "%s", why);
	emit(c, &r);
	fflush(c->out); /* one record, one write(): it survives a SIGKILL */
}

/* ---- the workload ---- */

static void add_write(struct tt_rec *in, unsigned part, const char *key, const char *value)
{
	struct tt_write *w = &in->w[in->nwrites++];

	w->part = (uint8_t)part;
	snprintf(w->key, sizeof(w->key), "%s", key);
	snprintf(w->value, sizeof(w->value), "%s", value);
}

/* Pick n distinct participants into @p out (partial Fisher-Yates). */
static void pick_parts(struct tc *c, unsigned n, unsigned *out)
{
	unsigned all[TT_MAX_PARTS];

	for (unsigned i = 0; i < c->o.nparts; i++)
		all[i] = i;
	for (unsigned i = 0; i < n; i++) {
		unsigned j = i + (unsigned)tt_rand_range(&c->rng, 0, c->o.nparts - 1 - i);
		unsigned t = all[i];
		all[i] = all[j];
		all[j] = t;
		out[i] = all[i];
	}
}

/*
 * One leg of @p v (|v| >= 3 when split) as @p k writes to @p part: the first under @p key,
 * the later ones under KEY.s2, KEY.s3; the parts keep v's sign and sum to v.
 */
static void add_leg(struct tc *c, struct tt_rec *in, unsigned part, const char *key, int64_t v,
		    unsigned k)
{
	char kk[TT_KEY_MAX], val[TT_VAL_MAX];
	int64_t sign = v < 0 ? -1 : 1, left = v < 0 ? -v : v;

	for (unsigned i = 1; i <= k; i++) {
		int64_t share = i == k ? left
				       : (int64_t)tt_rand_range(&c->rng, 1, (uint64_t)(left - (k - i)));
		left -= share;
		int n = i == 1 ? snprintf(kk, sizeof(kk), "%s", key)
			       : snprintf(kk, sizeof(kk), "%s.s%u", key, i);
		if (n < 0 || (size_t)n >= sizeof(kk))
			abort(); /* keys are built far below TT_KEY_MAX */
		snprintf(val, sizeof(val), "%+" PRId64, sign * share);
		add_write(in, part, kk, val);
	}
}

/* Stages per leg: 1, or for a staged transaction 2-3 on at least one leg (at most
 * @p room writes in all). */
static void plan_stages(struct tc *c, unsigned n, int staged, unsigned room, unsigned *k)
{
	unsigned total = n, must = staged ? (unsigned)tt_rand_range(&c->rng, 0, n - 1) : n;

	for (unsigned i = 0; i < n; i++) {
		k[i] = 1;
		if (!staged || (i != must && tt_rand_range(&c->rng, 0, 1)))
			continue;
		unsigned want = (unsigned)tt_rand_range(&c->rng, 2, 3);
		while (want > 1 && total + want - 1 > room)
			want--;
		k[i] = want;
		total += want - 1;
	}
}

static void plan_transfer(struct tc *c, struct tt_rec *in, const unsigned *parts, unsigned n,
			  int staged)
{
	char key[TT_KEY_MAX];
	static const char *const legs[] = { "from", "to", "to2" };
	int64_t amount = (int64_t)tt_rand_range(&c->rng, 6, 1000);
	int64_t first = n == 3 ? (int64_t)tt_rand_range(&c->rng, 3, (uint64_t)amount - 3) : amount;
	int64_t v[3] = { -amount, first, amount - first };
	unsigned k[3];

	plan_stages(c, n, staged, TT_MAX_WRITES - 1, k);
	for (unsigned i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "x/%u/%" PRIu64 "/%s", c->o.id, in->seq, legs[i]);
		add_leg(c, in, parts[i], key, v[i], k[i]);
	}
}

/* A one-participant write, in 2-3 stages when staged: w/C/SEQ, w/C/SEQ.s2, ... */
static void plan_write(struct tc *c, struct tt_rec *in, unsigned part, int staged)
{
	char key[TT_KEY_MAX], val[TT_VAL_MAX];
	unsigned k = staged ? (unsigned)tt_rand_range(&c->rng, 2, 3) : 1;

	for (unsigned i = 1; i <= k; i++) {
		if (i == 1)
			snprintf(key, sizeof(key), "w/%u/%" PRIu64, c->o.id, in->seq);
		else
			snprintf(key, sizeof(key), "w/%u/%" PRIu64 ".s%u", c->o.id, in->seq, i);
		snprintf(val, sizeof(val), "v%" PRIu64 "-%u", in->seq, i);
		add_write(in, part, key, val);
	}
}

static void plan_txn(struct tc *c, struct tc_slot *s)
{
	struct tt_rec *in = &s->intent;
	unsigned parts[3], r = (unsigned)tt_rand_range(&c->rng, 0, 99);
	unsigned w = (unsigned)tt_rand_range(&c->rng, 0, 99);
	unsigned n = w < 15 ? 1 : w < 70 ? 2 : 3;
	int staged = tt_rand_range(&c->rng, 0, 99) < c->o.staged_pct;
	char val[TT_VAL_MAX];

	memset(in, 0, sizeof(*in));
	in->staged = (uint8_t)staged;
	in->type = TT_REC_INTENT;
	in->txid = s->txid;
	in->client = c->o.id;
	in->seq = s->seq;
	in->plan = r < c->o.abort_pct ? TT_PLAN_ABORT : TT_PLAN_COMMIT;
	if (n > c->o.nparts)
		n = c->o.nparts;
	pick_parts(c, n, parts);
	if (n >= 2) {
		in->kind = TT_KIND_TRANSFER;
		plan_transfer(c, in, parts, n, staged);
	} else {
		in->kind = TT_KIND_WRITE;
		plan_write(c, in, parts[0], staged);
	}
	if (c->o.refuse && in->plan == TT_PLAN_COMMIT &&
	    r < c->o.abort_pct + c->o.refuse_pct) {
		in->kind = TT_KIND_REFUSE;
		snprintf(val, sizeof(val), "%u/%" PRIu64, c->o.id, s->seq);
		add_write(in, c->o.refuse - 1, TT_REFUSE_KEY, val);
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	slot_next(arg);
}

static void retry_later(struct tc_slot *s, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (event_base_once(s->c->base, -1, EV_TIMEOUT, on_retry, s, &tv))
		slot_next(s);
}

/* ---- settling an UNKNOWN commit through its transaction key ---- */

static void key_retry_later(struct tc_slot *s, long ms);

static void on_probe_aborted(void *arg, int err, tpc_txid txid, tpc_outcome o, const char *why)
{
}

static void on_key_begin(void *arg, int err, tpc_txid txid, tpc_begin_result res)
{
	struct tc_slot *s = arg;
	struct tc *c = s->c;

	if (err || res == TPC_BEGIN_PENDING) {
		if (++s->key_tries >= 20 || c->stopping)
			slot_next(s); /* leave it UNKNOWN: the runner asks after healing */
		else
			key_retry_later(s, 200);
		return;
	}
	if (res == TPC_BEGIN_ALREADY_COMMITTED && txid != s->txid)
		fprintf(stderr, "tpc-torture client %u: key %s reports txid %" PRIu64
			" committed, but its transaction was %" PRIu64 "\n", c->o.id, s->key,
			(uint64_t)txid, s->txid);
	emit_simple(c, TT_REC_BY_KEY, s->txid, res == TPC_BEGIN_ALREADY_COMMITTED &&
		    txid == s->txid ? TT_OUT_COMMITTED : TT_OUT_ABORTED, NULL);
	c->by_key++;
	if (res == TPC_BEGIN_STARTED) /* a new transaction we do not want */
		tpc_client_abort_async(c->cli, txid, "torture: key probe", on_probe_aborted, NULL);
	slot_next(s);
}

static void on_key_retry(evutil_socket_t fd, short what, void *arg)
{
	struct tc_slot *s = arg;

	if (s->c->stopping ||
	    tpc_client_begin_async(s->c->cli, s->key, 0, on_key_begin, s) != 0)
		slot_next(s);
}

static void key_retry_later(struct tc_slot *s, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (event_base_once(s->c->base, -1, EV_TIMEOUT, on_key_retry, s, &tv))
		slot_next(s);
}

static void on_outcome(void *arg, int err, tpc_txid txid, tpc_outcome outcome, const char *why)
{
	struct tc_slot *s = arg;
	struct tc *c = s->c;
	uint8_t o = err || outcome == TPC_OUTCOME_UNKNOWN || outcome == TPC_OUTCOME_FORGOTTEN
		    ? TT_OUT_UNKNOWN
		    : outcome == TPC_OUTCOME_COMMITTED ? TT_OUT_COMMITTED : TT_OUT_ABORTED;

	emit_simple(c, TT_REC_OUTCOME, s->txid, o, NULL);
	c->committed += o == TT_OUT_COMMITTED;
	c->aborted += o == TT_OUT_ABORTED;
	c->unknown += o == TT_OUT_UNKNOWN;
	if (o == TT_OUT_UNKNOWN && s->committing && s->key[0] && !c->stopping) {
		s->key_tries = 0;
		key_retry_later(s, 200); /* ask again the way an application would */
	} else if (s->failed || o == TT_OUT_UNKNOWN) {
		retry_later(s, 50); /* something is down: give it a moment */
	} else {
		slot_next(s);
	}
}

static void decide(struct tc_slot *s)
{
	struct tc *c = s->c;
	int abort_it = s->failed || s->intent.plan == TT_PLAN_ABORT;
	int rc;

	if (abort_it) {
		emit_simple(c, TT_REC_ABORT_SENT, s->txid, 0, s->failed ? "put-failed" : "planned");
		rc = tpc_client_abort_async(c->cli, s->txid, "torture abort", on_outcome, s);
	} else {
		emit_simple(c, TT_REC_COMMIT_SENT, s->txid, 0, NULL);
		s->committing = 1;
		rc = tpc_client_commit_async(c->cli, s->txid, on_outcome, s);
	}
	if (rc)
		on_outcome(s, rc, s->txid, TPC_OUTCOME_UNKNOWN, NULL);
}

static void send_stage(struct tc_slot *s);

static void on_stage_pause(evutil_socket_t fd, short what, void *arg)
{
	struct tc_slot *s = arg;

	s->stage++;
	send_stage(s);
}

/* Between stages: mostly a short pause, sometimes one past a short participant expiry. */
static void pause_then_next_stage(struct tc_slot *s)
{
	struct tc *c = s->c;
	uint64_t ms = tt_rand_range(&c->rng, 0, c->o.stage_pause_ms);
	struct timeval tv;

	if (c->o.expiry_pause_ms && tt_rand_range(&c->rng, 0, 99) < c->o.expiry_pause_pct) {
		ms = c->o.expiry_pause_ms + tt_rand_range(&c->rng, 0, 800);
		c->long_pauses++;
	}
	tv = tpc_ms_tv(ms);
	if (event_base_once(c->base, -1, EV_TIMEOUT, on_stage_pause, s, &tv))
		on_stage_pause(-1, 0, s);
}

/* A stage's Puts are all answered: the next stage, or the decision. */
static void stage_done(struct tc_slot *s)
{
	if (s->failed || s->stage >= s->nstages)
		decide(s);
	else
		pause_then_next_stage(s);
}

/*
 * --stage-retry: a Put of a later stage that fails (its participant was bounced between
 * the stages, so it is not back yet, or its new incarnation refused the Join) is sent
 * again every PUT_RETRY_MS until the stage's deadline. So a bounce between two stages
 * reaches the coordinator as a Join from the participant's new incarnation, which it
 * must refuse (D8), however long the restart takes.
 */
#define PUT_RETRY_MS 50

static void on_put(void *arg, int err, uint64_t txid);

static int may_retry(const struct tc_put *p)
{
	const struct tc_slot *s = p->s;

	return s->c->o.stage_retry_ms && s->stage > 1 && p->i < TT_MAX_WRITES &&
	       !s->c->stopping && tpc_now_ms() < s->stage_deadline;
}

static int issue_put(struct tc_put *p)
{
	struct tc_slot *s = p->s;
	const struct tt_write *w = &s->intent.w[p->i];

	return kvc_put_token(s->c->kv[w->part], s->txid, s->has_token ? s->token : NULL,
			     w->key, strlen(w->key), w->value, strlen(w->value), on_put, p);
}

static void on_put_retry(evutil_socket_t fd, short what, void *arg)
{
	struct tc_put *p = arg;
	int rc = issue_put(p);

	(void)fd;
	(void)what;
	if (rc)
		on_put(p, rc, p->s->txid); /* retries again, or fails the stage */
}

/* 0: the Put is sent again later (it stays pending), or -1. */
static int retry_put(struct tc_put *p)
{
	struct timeval tv = tpc_ms_tv(PUT_RETRY_MS);

	if (!may_retry(p) || event_base_once(p->s->c->base, -1, EV_TIMEOUT, on_put_retry, p, &tv))
		return -1;
	p->s->c->put_retries++;
	return 0;
}

static void on_put(void *arg, int err, uint64_t txid)
{
	struct tc_put *p = arg;
	struct tc_slot *s = p->s;

	if (err && retry_put(p) == 0)
		return;
	if (err && !s->failed) {
		s->failed = 1;
		s->c->put_failures++;
	} else if (!err && p->i < TT_MAX_WRITES) {
		struct tt_rec r = { .type = TT_REC_PUT_OK, .txid = s->txid, .index = p->i };
		emit(s->c, &r);
		fflush(s->c->out);
	}
	if (--s->pending == 0)
		stage_done(s);
}

static void send_stage(struct tc_slot *s)
{
	struct tc *c = s->c;
	struct tc_put held = { s, TT_MAX_WRITES };

	s->pending = 1; /* held until every Put of the stage is issued */
	s->stage_deadline = tpc_now_ms() + c->o.stage_retry_ms;
	for (uint8_t i = 0; i < s->intent.nwrites; i++) {
		if (s->stage_of[i] != s->stage)
			continue;
		s->puts[i] = (struct tc_put){ s, i };
		if (issue_put(&s->puts[i]) == 0 || retry_put(&s->puts[i]) == 0)
			s->pending++;
		else
			s->failed = 1;
	}
	on_put(&held, 0, s->txid);
}

/* Number the stages: the Nth write to a participant is its stage N (staged only). */
static void send_puts(struct tc_slot *s)
{
	const struct tt_rec *in = &s->intent;

	s->nstages = 1;
	for (uint8_t i = 0; i < in->nwrites; i++) {
		uint8_t n = 1;
		for (uint8_t j = 0; in->staged && j < i; j++)
			n += in->w[j].part == in->w[i].part;
		s->stage_of[i] = n;
		if (n > s->nstages)
			s->nstages = n;
	}
	s->stage = 1;
	s->c->staged += in->staged;
	send_stage(s);
}

static void on_begin(void *arg, int err, tpc_txid txid, tpc_begin_result res,
		     const uint8_t *token)
{
	struct tc_slot *s = arg;
	struct tc *c = s->c;
	struct tt_rec b = { .type = TT_REC_BEGIN, .txid = txid };

	if (err || res != TPC_BEGIN_STARTED) {
		c->begin_failures++;
		retry_later(s, 100);
		return;
	}
	s->txid = txid;
	s->has_token = token != NULL;
	if (token)
		memcpy(s->token, token, sizeof(s->token));
	c->begun++;
	plan_txn(c, s);
	emit(c, &b);
	emit(c, &s->intent);
	fflush(c->out); /* begin and intent in one write(), before any Put */
	send_puts(s);
}

static void retire(struct tc_slot *s)
{
	struct tc *c = s->c;

	if (--c->active == 0)
		event_base_loopbreak(c->base);
}

static void slot_next(struct tc_slot *s)
{
	struct tc *c = s->c;

	if (c->stopping) {
		retire(s);
		return;
	}
	s->seq = ++c->next_seq;
	s->txid = 0;
	s->failed = 0;
	s->pending = 0;
	s->committing = 0;
	s->key[0] = '\0';
	if (tt_rand_range(&c->rng, 0, 99) < c->o.key_pct)
		snprintf(s->key, sizeof(s->key), "t%u-%" PRIu64, c->o.id, s->seq);
	if (tpc_client_begin_token_async(c->cli, s->key[0] ? s->key : NULL, 0, on_begin, s)) {
		c->begin_failures++;
		retry_later(s, 100);
	}
}

/* ---- set-up, signals, tear-down ---- */

static void on_drained(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(((struct tc *)arg)->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct tc *c = arg;
	struct timeval tv = { c->o.drain_ms / 1000, (c->o.drain_ms % 1000) * 1000 };

	if (c->stopping)
		return;
	c->stopping = 1;
	evtimer_add(c->drain, &tv);
}

static int max_seq(void *arg, const struct tt_rec *r)
{
	uint64_t *seq = arg;

	if (r->type == TT_REC_INTENT && r->seq > *seq)
		*seq = r->seq;
	return 0;
}

static int setup(struct tc *c)
{
	tpc_client_config cc;
	int err = 0;

	tt_rec_read_file(c->o.outcomes, max_seq, &c->next_seq, NULL); /* absent: start at 1 */
	c->out = fopen(c->o.outcomes, "a");
	if (!c->out) {
		fprintf(stderr, "tpc-torture client: cannot open %s: %s\n", c->o.outcomes,
			strerror(errno));
		return -errno;
	}
	setvbuf(c->out, NULL, _IOFBF, 1 << 14);
	c->base = event_base_new();
	tpc_client_config_init(&cc);
	cc.coordinator = c->o.coordinator;
	cc.name = "tpc-torture";
	cc.connect_timeout_ms = 1000;
	cc.request_timeout_ms = c->o.timeout_ms;
	cc.tls_cert = c->o.tls.cert;
	cc.tls_key = c->o.tls.key;
	cc.tls_ca = c->o.tls.ca;
	c->cli = c->base ? tpc_client_new(&cc, &err) : NULL;
	if (!c->cli || tpc_client_attach(c->cli, c->base)) {
		fprintf(stderr, "tpc-torture client: cannot set up the client: %s\n",
			tpc_strerror(err));
		return err ? err : -ENOMEM;
	}
	for (unsigned i = 0; i < c->o.nparts; i++) {
		char why[512];
		if (!(c->kv[i] = kvc_new(c->base, c->o.kv[i], c->o.timeout_ms))) {
			fprintf(stderr, "tpc-torture client: bad --kv address %s\n", c->o.kv[i]);
			return -EINVAL;
		}
		if (kvc_set_tls(c->kv[i], &c->o.tls, why, sizeof(why))) {
			fprintf(stderr, "tpc-torture client: %s\n", why);
			return -EINVAL;
		}
	}
	c->sig_term = evsignal_new(c->base, SIGTERM, on_signal, c);
	c->sig_int = evsignal_new(c->base, SIGINT, on_signal, c);
	c->drain = evtimer_new(c->base, on_drained, c);
	c->slots = calloc(c->o.inflight, sizeof(*c->slots));
	if (!c->sig_term || !c->sig_int || !c->drain || !c->slots)
		return -ENOMEM;
	event_add(c->sig_term, NULL);
	event_add(c->sig_int, NULL);
	return 0;
}

static void teardown(struct tc *c)
{
	c->stopping = 1;
	/* Pending Puts fail (their slots abort), then pending Commits end as UNKNOWN. */
	for (unsigned i = 0; i < c->o.nparts; i++)
		kvc_free(c->kv[i]);
	tpc_client_free(c->cli);
	if (c->out) {
		fflush(c->out);
		fclose(c->out);
	}
	if (c->sig_term)
		event_free(c->sig_term);
	if (c->sig_int)
		event_free(c->sig_int);
	if (c->drain)
		event_free(c->drain);
	if (c->base)
		event_base_free(c->base);
	free(c->slots);
}

static int run(struct tc *c)
{
	int rc = setup(c);

	if (rc == 0) {
		c->rng = c->o.seed ^ (c->next_seq * 0x9e3779b97f4a7c15ULL);
		c->active = c->o.inflight;
		for (unsigned i = 0; i < c->o.inflight; i++) {
			c->slots[i].c = c;
			slot_next(&c->slots[i]);
		}
		event_base_dispatch(c->base);
	}
	teardown(c);
	fprintf(stderr, "tpc-torture client %u: %" PRIu64 " begun, %" PRIu64 " committed, %"
		PRIu64 " aborted, %" PRIu64 " unknown (%" PRIu64 " settled by key); %" PRIu64
		" begin and %" PRIu64 " put failures, %" PRIu64 " put retries; %" PRIu64
		" staged (%" PRIu64 " long pauses)\n", c->o.id, c->begun, c->committed, c->aborted,
		c->unknown, c->by_key, c->begin_failures, c->put_failures, c->put_retries,
		c->staged, c->long_pauses);
	return rc ? 1 : 0;
}

/* ---- command line ---- */

static const char usage_text[] =
	"Usage: tpc-torture client --id N --coordinator H:P --kv H:P [--kv H:P ...]\n"
	"                          --outcomes FILE [options]\n"
	"\n"
	"One workload process of a torture run (the runner starts these; you rarely need\n"
	"to). Runs transactions over the coordinator and the tpc-kv services (--kv in\n"
	"participant order: kv1, kv2, ...) and appends what it did and was told to FILE.\n"
	"\n"
	"  --id N               client number (keys are x/N/SEQ/...)\n"
	"  --refuse K           participant K (1-based) votes NO on the key refuse-me\n"
	"  --seed N             workload seed (default 1)\n"
	"  --inflight N         transactions in flight (default 8)\n"
	"  --abort-pct P        transactions the client aborts on purpose (default 5)\n"
	"  --refuse-pct P       transactions that write refuse-me (default 5)\n"
	"  --key-pct P          transactions begun with a client transaction key (default 30)\n"
	"  --staged-pct P       transactions sent in stages: 2-3 writes to one participant,\n"
	"                       one stage after another (default 0)\n"
	"  --stage-pause DURATION  longest ordinary pause between stages (default 400ms)\n"
	"  --stage-retry DURATION  a later stage's failed Put is sent again until this long\n"
	"                       after the stage began (default 0: not retried)\n"
	"  --expiry-pause-pct P pauses between stages that last --expiry-pause (default 0)\n"
	"  --expiry-pause DURATION  a long pause: this plus up to 0.8 s (default 2500ms)\n"
	"  --timeout DURATION   request timeout (default 3s)\n"
	"  --drain DURATION     on SIGTERM, how long in-flight work may finish (default 2s)\n";

enum { OPT_ID = 256, OPT_COORD, OPT_KV, OPT_OUT, OPT_REFUSE, OPT_SEED, OPT_INFLIGHT,
       OPT_ABORT, OPT_REFPCT, OPT_KEYPCT, OPT_TIMEOUT, OPT_DRAIN, OPT_STAGED, OPT_STAGE_PAUSE,
       OPT_EXP_PCT, OPT_EXP_PAUSE, OPT_STAGE_RETRY, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA };

static int num(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 10);
	if (errno || end == v || *end || *out < lo || *out > hi) {
		fprintf(stderr, "tpc-torture client: --%s %s: expected a number from %" PRIu64
			" to %" PRIu64 "\n", opt, v, lo, hi);
		return -EINVAL;
	}
	return 0;
}

static int dur(const char *opt, const char *v, uint32_t *out)
{
	char name[40];
	uint64_t ms;

	snprintf(name, sizeof(name), "--%s", opt);
	if (tpc_cli_duration("tpc-torture client", name, v, 1, 600000, &ms))
		return -EINVAL;
	*out = (uint32_t)ms;
	return 0;
}

static int parse_opt(struct tc_opts *o, int c, const char *v)
{
	uint64_t n = 0;
	int rc = 0;

	switch (c) {
	case OPT_ID: rc = num("id", v, 1, 1000000, &n); o->id = (unsigned)n; break;
	case OPT_COORD: o->coordinator = v; break;
	case OPT_KV:
		if (o->nparts == TT_MAX_PARTS) {
			fprintf(stderr, "tpc-torture client: at most %d --kv\n", TT_MAX_PARTS);
			return -EINVAL;
		}
		o->kv[o->nparts++] = v;
		break;
	case OPT_OUT: o->outcomes = v; break;
	case OPT_REFUSE: rc = num("refuse", v, 1, TT_MAX_PARTS, &n); o->refuse = (unsigned)n; break;
	case OPT_SEED: rc = num("seed", v, 0, UINT64_MAX, &o->seed); break;
	case OPT_INFLIGHT: rc = num("inflight", v, 1, 4096, &n); o->inflight = (unsigned)n; break;
	case OPT_ABORT: rc = num("abort-pct", v, 0, 100, &n); o->abort_pct = (unsigned)n; break;
	case OPT_REFPCT: rc = num("refuse-pct", v, 0, 100, &n); o->refuse_pct = (unsigned)n; break;
	case OPT_KEYPCT: rc = num("key-pct", v, 0, 100, &n); o->key_pct = (unsigned)n; break;
	case OPT_TIMEOUT: rc = dur("timeout", v, &o->timeout_ms); break;
	case OPT_DRAIN: rc = dur("drain", v, &o->drain_ms); break;
	case OPT_STAGED: rc = num("staged-pct", v, 0, 100, &n); o->staged_pct = (unsigned)n; break;
	case OPT_STAGE_PAUSE: rc = dur("stage-pause", v, &o->stage_pause_ms); break;
	case OPT_STAGE_RETRY: rc = dur("stage-retry", v, &o->stage_retry_ms); break;
	case OPT_EXP_PCT:
		rc = num("expiry-pause-pct", v, 0, 100, &n);
		o->expiry_pause_pct = (unsigned)n;
		break;
	case OPT_EXP_PAUSE: rc = dur("expiry-pause", v, &o->expiry_pause_ms); break;
	case OPT_TLS_CERT: o->tls.cert = v; break;
	case OPT_TLS_KEY: o->tls.key = v; break;
	case OPT_TLS_CA: o->tls.ca = v; break;
	default: return -EINVAL;
	}
	return rc;
}

int tt_client_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, OPT_ID },
		{ "coordinator", required_argument, NULL, OPT_COORD },
		{ "kv", required_argument, NULL, OPT_KV },
		{ "outcomes", required_argument, NULL, OPT_OUT },
		{ "refuse", required_argument, NULL, OPT_REFUSE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "inflight", required_argument, NULL, OPT_INFLIGHT },
		{ "abort-pct", required_argument, NULL, OPT_ABORT },
		{ "refuse-pct", required_argument, NULL, OPT_REFPCT },
		{ "key-pct", required_argument, NULL, OPT_KEYPCT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "drain", required_argument, NULL, OPT_DRAIN },
		{ "staged-pct", required_argument, NULL, OPT_STAGED },
		{ "stage-pause", required_argument, NULL, OPT_STAGE_PAUSE },
		{ "stage-retry", required_argument, NULL, OPT_STAGE_RETRY },
		{ "expiry-pause-pct", required_argument, NULL, OPT_EXP_PCT },
		{ "expiry-pause", required_argument, NULL, OPT_EXP_PAUSE },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tc c = { .o = { .seed = 1, .inflight = 8, .abort_pct = 5, .refuse_pct = 5,
			       .key_pct = 30, .timeout_ms = 3000, .drain_ms = 2000,
			       .stage_pause_ms = 400, .expiry_pause_ms = 2500 } };
	int ch;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(usage_text, stdout);
			tpc_cli_exit_status(stdout, "the workload ran and stopped cleanly",
					    "the workload could not run");
			return 0;
		}
		if (ch == '?' || ch == ':')
			return tpc_cli_getopt_error("tpc-torture client", ch, argv);
		if (parse_opt(&c.o, ch, optarg)) {
			fputs("Try 'tpc-torture client --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc || !c.o.id || !c.o.coordinator || !c.o.nparts || !c.o.outcomes) {
		fputs("tpc-torture client: --id, --coordinator, --kv and --outcomes are required\n"
		      "Try 'tpc-torture client --help'.\n", stderr);
		return 2;
	}
	if (c.o.refuse > c.o.nparts) {
		fputs("tpc-torture client: --refuse names a participant without --kv\n", stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	return run(&c);
}
