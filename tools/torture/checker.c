/*
 * checker.c - the torture checker (checker.h).
 *
 * Owns one record per txid (what the client intended, sent and was told) and the
 * violations found. Sink lines are checked as they are added, against the records, so
 * every record must be added before the first sink line; what needs the whole history
 * (atomicity, outcomes, conservation) is checked by tt_checker_run().
 */
#include "checker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"

#define MAX_KEPT_VIOLATIONS 10000

struct ctxn {
	uint64_t txid;
	uint32_t client;
	uint64_t seq;
	uint8_t kind, plan, nwrites, has_intent;
	uint8_t commit_sent, told_commit, told_abort, resolved, by_key;
	uint8_t staged, op_decided;       /* op_decided: a forced operator decision */
	struct tt_write *w;
	uint8_t present[TT_MAX_WRITES];   /* times each write was found in its sink */
	uint8_t acked[TT_MAX_WRITES];     /* its Put was acknowledged to the client */
};

struct tt_checker {
	unsigned nparts;
	int trust_resolved_abort;
	struct u64map by_txid;            /* txid -> struct ctxn */
	struct ctxn **txns;               /* in the order they were first seen */
	size_t ntxns, cap;
	struct tt_violation *v;
	size_t nv, vcap;
	size_t per_kind[TT_V_COUNT];
	struct tt_counts counts;
	int64_t foreign_sum;              /* transfer values of writes no intent announced */
	int nomem;
};

static const char *const violation_names[TT_V_COUNT] = {
	[TT_V_PARTIAL] = "partial",
	[TT_V_COMMIT_LOST] = "commit-lost",
	[TT_V_ABORT_APPLIED] = "abort-applied",
	[TT_V_UNREQUESTED] = "unrequested",
	[TT_V_REFUSED_APPLIED] = "refused-applied",
	[TT_V_LOST_WRITE] = "lost-write",
	[TT_V_DUPLICATE] = "duplicate",
	[TT_V_FOREIGN] = "foreign",
	[TT_V_CONSERVATION] = "conservation",
	[TT_V_CONFLICT] = "conflict",
	[TT_V_TXID_REUSED] = "txid-reused",
	[TT_V_LEFT_PREPARED] = "left-prepared",
	[TT_V_UNACKED] = "unacked",
	[TT_V_SLOW_RECOVERY] = "slow-recovery",
	[TT_V_DIED] = "died",
	[TT_V_STRANGER] = "stranger",
};

const char *tt_violation_name(enum tt_violation_kind k)
{
	return (unsigned)k < TT_V_COUNT ? violation_names[k] : "?";
}

struct tt_checker *tt_checker_new(unsigned nparts, int trust_resolved_abort)
{
	struct tt_checker *ck = calloc(1, sizeof(*ck));

	if (!ck)
		return NULL;
	ck->nparts = nparts;
	ck->trust_resolved_abort = trust_resolved_abort;
	u64map_init(&ck->by_txid);
	return ck;
}

void tt_checker_free(struct tt_checker *ck)
{
	if (!ck)
		return;
	for (size_t i = 0; i < ck->ntxns; i++) {
		free(ck->txns[i]->w);
		free(ck->txns[i]);
	}
	free(ck->txns);
	free(ck->v);
	u64map_free(&ck->by_txid);
	free(ck);
}

static void violate(struct tt_checker *ck, enum tt_violation_kind kind, uint64_t txid, int part,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void violate(struct tt_checker *ck, enum tt_violation_kind kind, uint64_t txid, int part,
		    const char *fmt, ...)
{
	va_list ap;

	ck->per_kind[kind]++;
	if (ck->nv == MAX_KEPT_VIOLATIONS)
		return; /* counted, not kept */
	if (ck->nv == ck->vcap) {
		size_t cap = ck->vcap ? ck->vcap * 2 : 64;
		struct tt_violation *nv = realloc(ck->v, cap * sizeof(*nv));
		if (!nv) {
			ck->nomem = 1;
			return;
		}
		ck->v = nv;
		ck->vcap = cap;
	}
	struct tt_violation *v = &ck->v[ck->nv++];
	v->kind = kind;
	v->txid = txid;
	v->part = part;
	va_start(ap, fmt);
	vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
	va_end(ap);
}

static struct ctxn *txn_get(struct tt_checker *ck, uint64_t txid)
{
	struct ctxn *t = u64map_get(&ck->by_txid, txid);

	if (t)
		return t;
	if (ck->ntxns == ck->cap) {
		size_t cap = ck->cap ? ck->cap * 2 : 1024;
		struct ctxn **nv = realloc(ck->txns, cap * sizeof(*nv));
		if (!nv)
			return NULL;
		ck->txns = nv;
		ck->cap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t || u64map_put(&ck->by_txid, txid, t)) {
		free(t);
		return NULL;
	}
	t->txid = txid;
	ck->txns[ck->ntxns++] = t;
	return t;
}

static int add_intent(struct tt_checker *ck, unsigned client, struct ctxn *t,
		      const struct tt_rec *r)
{
	if (t->has_intent) {
		violate(ck, TT_V_TXID_REUSED, r->txid, -1,
			"txid given to client %" PRIu32 " seq %" PRIu64 " and to client %" PRIu32
			" seq %" PRIu64, t->client, t->seq, r->client, r->seq);
		return 0; /* the first transaction keeps the txid */
	}
	t->w = malloc(r->nwrites * sizeof(*t->w));
	if (!t->w)
		return -ENOMEM;
	memcpy(t->w, r->w, r->nwrites * sizeof(*t->w));
	t->nwrites = r->nwrites;
	t->has_intent = 1;
	t->client = client;
	t->seq = r->seq;
	t->kind = r->kind;
	t->plan = r->plan;
	t->staged = r->staged;
	return 0;
}

/*
 * A forced decision that may break atomicity on purpose: an accepted forced commit, an
 * accepted forced abort that overrode a COMMIT, or a forced call that may have been
 * carried out. A forced abort that overrode nothing is an ordinary abort.
 */
static void add_operator(struct tt_checker *ck, struct ctxn *t, const struct tt_rec *r)
{
	int accepted = strcmp(r->why, "accepted") == 0;
	int uncertain = strcmp(r->why, "uncertain") == 0;

	ck->counts.operator_calls++;
	ck->counts.operator_accepted += accepted;
	if (!r->force)
		return;
	if (uncertain || (accepted && (r->outcome == TT_OUT_COMMITTED ||
				       strcmp(r->overrode, "none") != 0)))
		t->op_decided = 1;
}

int tt_checker_add_rec(struct tt_checker *ck, unsigned client, const struct tt_rec *r)
{
	struct ctxn *t = txn_get(ck, r->txid);

	if (!t)
		return -ENOMEM;
	switch (r->type) {
	case TT_REC_INTENT: return add_intent(ck, client, t, r);
	case TT_REC_COMMIT_SENT: t->commit_sent = 1; break;
	case TT_REC_PUT_OK:
		if (t->has_intent && r->index < t->nwrites)
			t->acked[r->index] = 1;
		break;
	case TT_REC_OPERATOR: add_operator(ck, t, r); break;
	case TT_REC_BY_KEY: /* the coordinator told the client, as an Outcome does */
	case TT_REC_OUTCOME:
		t->by_key |= r->type == TT_REC_BY_KEY;
		t->told_commit |= r->outcome == TT_OUT_COMMITTED;
		t->told_abort |= r->outcome == TT_OUT_ABORTED;
		break;
	case TT_REC_RESOLVED:
		if (r->outcome == TT_OUT_COMMITTED || r->outcome == TT_OUT_ABORTED)
			t->resolved = r->outcome;
		break;
	default: break;
	}
	return 0;
}

void tt_checker_add_bad_lines(struct tt_checker *ck, uint64_t n)
{
	ck->counts.bad_lines += n;
}

static int64_t transfer_value(const char *key, size_t klen, const char *value, size_t vlen)
{
	char buf[32];

	if (klen < 2 || memcmp(key, "x/", 2) != 0 || vlen == 0 || vlen >= sizeof(buf))
		return 0;
	memcpy(buf, value, vlen);
	buf[vlen] = '\0';
	return strtoll(buf, NULL, 10);
}

static int find_write(const struct ctxn *t, unsigned part, const char *key, size_t klen)
{
	for (uint8_t i = 0; i < t->nwrites; i++)
		if (t->w[i].part == part && strlen(t->w[i].key) == klen &&
		    memcmp(t->w[i].key, key, klen) == 0)
			return i;
	return -1;
}

int tt_checker_add_sink(struct tt_checker *ck, unsigned part, uint64_t txid, const char *key,
			size_t klen, const char *value, size_t vlen)
{
	struct ctxn *t = u64map_get(&ck->by_txid, txid);
	int kl = klen > 60 ? 60 : (int)klen, vl = vlen > 30 ? 30 : (int)vlen;

	ck->counts.sink_writes++;
	if (!t || !t->has_intent || find_write(t, part, key, klen) < 0)
		ck->foreign_sum += transfer_value(key, klen, value, vlen);
	if (!t || !t->has_intent) {
		violate(ck, TT_V_FOREIGN, txid, (int)part, "sink holds %.*s=%.*s for a txid no client began",
			kl, key, vl, value);
		return 0;
	}
	int i = find_write(t, part, key, klen);
	if (i < 0) {
		violate(ck, TT_V_FOREIGN, txid, (int)part,
			"sink holds key %.*s that client %" PRIu32 " did not send to this participant",
			kl, key, t->client);
		return 0;
	}
	if (strlen(t->w[i].value) != vlen || memcmp(t->w[i].value, value, vlen) != 0) {
		violate(ck, TT_V_FOREIGN, txid, (int)part, "sink holds %.*s=%.*s, the client sent %s",
			kl, key, vl, value, t->w[i].value);
		return 0;
	}
	if (t->present[i] == 1)
		violate(ck, TT_V_DUPLICATE, txid, (int)part, "write %s=%s applied more than once",
			t->w[i].key, t->w[i].value);
	if (t->present[i] < UINT8_MAX)
		t->present[i]++;
	return 0;
}

int tt_checker_add_prepared(struct tt_checker *ck, unsigned part, uint64_t txid)
{
	violate(ck, TT_V_LEFT_PREPARED, txid, (int)part,
		"participant still prepared after healing (within the quiet bound)");
	return 0;
}

int tt_checker_add_unacked(struct tt_checker *ck, uint64_t txid)
{
	violate(ck, TT_V_UNACKED, txid, -1,
		"coordinator still holds an unacknowledged COMMIT decision after healing");
	return 0;
}

int tt_checker_add_slow_recovery(struct tt_checker *ck, uint64_t ms, uint64_t bound_ms)
{
	violate(ck, TT_V_SLOW_RECOVERY, 0, -1, "not quiet %" PRIu64 " ms after healing (bound %" PRIu64
		" ms)", ms, bound_ms);
	return 0;
}

int tt_checker_add_death(struct tt_checker *ck, const char *name, const char *how)
{
	violate(ck, TT_V_DIED, 0, -1, "%s %s", name, how);
	return 0;
}

int tt_checker_add_stranger(struct tt_checker *ck, int part, const char *detail)
{
	violate(ck, TT_V_STRANGER, 0, part, "%s", detail);
	return 0;
}

/* Where the transaction's writes landed. */
struct presence {
	unsigned intended, full, some;   /* participant bitmasks */
};

static struct presence presence_of(const struct ctxn *t)
{
	struct presence p = { 0, 0, 0 };
	unsigned missing = 0;

	for (uint8_t i = 0; i < t->nwrites; i++) {
		unsigned bit = 1u << t->w[i].part;
		p.intended |= bit;
		if (t->present[i])
			p.some |= bit;
		else
			missing |= bit;
	}
	p.full = p.some & ~missing;
	return p;
}

static void part_list(unsigned mask, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < TT_MAX_PARTS && len < cap; i++)
		if (mask & (1u << i))
			len += (size_t)snprintf(buf + len, cap - len, "%skv%u", len ? "," : "", i + 1);
}

static void check_atomicity(struct tt_checker *ck, const struct ctxn *t, struct presence p)
{
	char in[64], out[64];

	if (p.some == p.full && (p.full == 0 || p.full == p.intended))
		return;
	part_list(p.full, in, sizeof(in));
	part_list(p.intended & ~p.full, out, sizeof(out));
	violate(ck, TT_V_PARTIAL, t->txid, -1,
		"applied in [%s] but not (fully) in [%s] (client %" PRIu32 " seq %" PRIu64 ")", in,
		out, t->client, t->seq);
}

static void check_outcome(struct tt_checker *ck, const struct ctxn *t, struct presence p,
			  int committed, int aborted)
{
	char missing[64];

	if (committed && aborted)
		violate(ck, TT_V_CONFLICT, t->txid, -1, "told COMMITTED and ABORTED%s",
			t->resolved ? " (counting the status query after healing)" : "");
	if (committed && p.full != p.intended) {
		part_list(p.intended & ~p.full, missing, sizeof(missing));
		violate(ck, TT_V_COMMIT_LOST, t->txid, -1, "%s COMMITTED, missing in [%s]",
			t->told_commit ? "told" : "resolved", missing);
	}
	if (aborted && p.some)
		violate(ck, TT_V_ABORT_APPLIED, t->txid, -1, "%s ABORTED, yet applied",
			t->told_abort ? "told" : "resolved");
	if (!t->commit_sent && p.some)
		violate(ck, TT_V_UNREQUESTED, t->txid, -1,
			"applied though the client never asked to commit (%s)",
			t->plan == TT_PLAN_ABORT ? "it aborted on purpose" : "it aborted or died");
	if (t->kind == TT_KIND_REFUSE && (p.some || committed))
		violate(ck, TT_V_REFUSED_APPLIED, t->txid, -1,
			"a participant voted NO, yet it %s", p.some ? "was applied" : "was told COMMITTED");
}

/* The 1-based stage of write @p i: its place among the writes to its participant. */
static unsigned stage_of(const struct ctxn *t, uint8_t i)
{
	unsigned n = 1;

	for (uint8_t j = 0; j < i; j++)
		n += t->w[j].part == t->w[i].part;
	return n;
}

/* Per sink: an acknowledged write missing while another write of the txid is there. */
static void check_lost_writes(struct tt_checker *ck, const struct ctxn *t, struct presence p)
{
	for (uint8_t i = 0; i < t->nwrites; i++) {
		unsigned part = t->w[i].part;
		if (!t->acked[i] || t->present[i] || !(p.some & (1u << part)))
			continue;
		violate(ck, TT_V_LOST_WRITE, t->txid, (int)part,
			"acknowledged write %s=%s (stage %u) missing while other writes of the "
			"txid are applied here (client %" PRIu32 " seq %" PRIu64 ")", t->w[i].key,
			t->w[i].value, stage_of(t, i), t->client, t->seq);
	}
}

/* Transfer values applied, with the times each was found. */
static int64_t applied_sum(const struct ctxn *t)
{
	int64_t sum = 0;

	for (uint8_t i = 0; i < t->nwrites; i++)
		if (t->present[i])
			sum += t->present[i] *
			       transfer_value(t->w[i].key, strlen(t->w[i].key), t->w[i].value,
					      strlen(t->w[i].value));
	return sum;
}

static void check_txn(struct tt_checker *ck, const struct ctxn *t)
{
	struct tt_counts *c = &ck->counts;
	struct presence p = presence_of(t);
	int committed = t->told_commit || t->resolved == TT_OUT_COMMITTED;
	int aborted = t->told_abort || (t->resolved == TT_OUT_ABORTED && ck->trust_resolved_abort);

	check_lost_writes(ck, t, p);
	c->staged += t->staged;
	if (t->op_decided) { /* atomicity and outcomes are the operator's call */
		c->txns++;
		c->operator_decided++;
		return;
	}
	c->transfer_sum += applied_sum(t);
	c->txns++;
	c->resolved += !t->told_commit && !t->told_abort && t->resolved;
	c->by_key += t->by_key;
	c->never_requested += !t->commit_sent;
	c->client_aborts += t->plan == TT_PLAN_ABORT;
	c->refused += t->kind == TT_KIND_REFUSE;
	if (committed)
		c->committed++;
	else if (aborted)
		c->aborted++;
	else {
		c->unknown++;
		c->unknown_applied += p.full && p.full == p.intended;
	}
	check_atomicity(ck, t, p);
	check_outcome(ck, t, p, committed, aborted);
}

int tt_checker_run(struct tt_checker *ck)
{
	ck->counts.transfer_sum = ck->foreign_sum;
	for (size_t i = 0; i < ck->ntxns; i++)
		if (ck->txns[i]->has_intent)
			check_txn(ck, ck->txns[i]);
	if (ck->counts.transfer_sum != 0)
		violate(ck, TT_V_CONSERVATION, 0, -1,
			"transfer amounts in all sinks (operator-decided txids aside) sum to %"
			PRId64 ", not 0",
			ck->counts.transfer_sum);
	return ck->nomem ? -ENOMEM : 0;
}

const struct tt_violation *tt_checker_violations(const struct tt_checker *ck, size_t *n)
{
	*n = ck->nv;
	return ck->v;
}

size_t tt_checker_count_kind(const struct tt_checker *ck, enum tt_violation_kind k)
{
	return (unsigned)k < TT_V_COUNT ? ck->per_kind[k] : 0;
}

const struct tt_counts *tt_checker_counts(const struct tt_checker *ck)
{
	return &ck->counts;
}
