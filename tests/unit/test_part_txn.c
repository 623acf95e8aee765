/*
 * test_part_txn.c - unit tests of the participant stub's pure per-transaction state
 * machine (participant/src/part_txn.c).
 *
 * Every step goes through step(), which checks what the step emitted against the
 * durability rules and the state diagram:
 *  - D2: a YES vote leaves only on PEV_LOGGED ok out of LOGGING, or again from PREPARED
 *    (a repeated Prepare, a PENDING status answer); never from JOINING/ACTIVE; never
 *    without a successful PEV_LOGGED in the transaction's history (or a recovered record).
 *  - D3: an Ack leaves only on PEV_APPLIED ok out of APPLYING, answering an APPLY.
 *  - D7: a Prepare/Decision below the highest epoch emits PACT_REJECT_STALE and nothing
 *    else and changes nothing; one more than max_epoch_jump above it emits
 *    PACT_REJECT_JUMP and nothing else and changes nothing (the highest epoch neither);
 *    a newer one within the bound raises the highest epoch.
 *  - A prepared transaction never decides alone: it leaves PREPARED only on a COMMIT or
 *    ABORT decision or status answer, never on a timeout, a connection event, a stale
 *    message or a FORGOTTEN answer (which it reports once and keeps asking).
 *  - D8: staged writes that expire (JOINING/ACTIVE past txn_timeout) are discarded, a NO
 *    vote goes out if the coordinator may hold the Join, and an EXPIRED tombstone stays:
 *    it refuses stages (TPC_EEXPIRED), answers Prepare NO, re-sends NO on reconnect and
 *    ends only on an ABORT, a status answer, a refused vote or tombstone_ms.
 * A seeded random driver (TPC_TEST_SEED overrides the seed) runs the same checks over
 * thousands of event orders.
 *
 * What lives outside the machine (part_net.c) and so is not tested here: a Prepare for a
 * txid the participant does not know (never staged, expired, aborted, or lost in a crash
 * before PREPARED was durable) is answered NO by the caller; a COMMIT for an unknown txid
 * is acked without applying (already applied). The machine's part of those paths is that
 * it reaches PS_DONE, after which the caller frees the transaction.
 *
 * The Join: the first write is PEV_BEGIN, which emits PACT_SEND_JOIN when connected
 * (h_init()); a write staged while disconnected leaves join_sent 0 and the machine emits
 * PACT_SEND_JOIN on PEV_CONN_UP (h_init_disconnected()).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "part_txn.h"
#include "tpc/common.h"

#define T0 1000u      /* time of the first staged write in most tests */
#define TXID 42u
#define EPOCH 7u      /* the coordinator's current epoch in most tests */

static const struct part_txn_config CFG = {
	.txn_timeout_ms = 5000,
	.query_initial_ms = 100,
	.query_max_ms = 800,
	.apply_retry_ms = 50,
	.tombstone_ms = 20000,
	.max_epoch_jump = 100,
};

/* ---- the harness ---------------------------------------------------------------------- */

struct h {
	struct part_txn t;
	struct part_txn_config cfg;
	uint64_t highest;
	uint64_t now;
	struct part_actions out;
	int rc;
	/* history, for the invariants that span steps */
	int logged_ok;         /* a PEV_LOGGED ok moved LOGGING to PREPARED */
	int log_outstanding;   /* PACT_LOG_PREPARED emitted, PEV_LOGGED not yet fed */
	int apply_outstanding; /* PACT_APPLY emitted, PEV_APPLIED not yet fed */
	int ever_prepared;
	unsigned applies, acks, yes_votes, no_votes, discards, log_prepared, queries;
	unsigned forgotten_reports;
	/* context for failure messages */
	uint64_t seed;
	unsigned seq, nstep;
	enum part_state from;
	struct part_event ev;
};

static const char *ev_name(enum part_ev_type t)
{
	static const char *const n[] = {
		"BEGIN", "STAGE", "JOIN_OK", "JOIN_FAILED", "PREPARE", "LOGGED", "DECISION",
		"APPLIED", "STATUS", "REFUSED", "TICK", "CONN_UP", "CONN_DOWN",
	};
	return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

static void fail_at(const struct h *h, const char *what, int line)
{
	char where[96] = "directed test";

	if (h->seed) /* from the random driver: how to replay it */
		snprintf(where, sizeof(where), "TPC_TEST_SEED=%llu seq %u",
			 (unsigned long long)h->seed, h->seq);
	fail_msg("invariant broken (line %d): %s\n  %s, step %u: %s in %s -> %s "
		 "(epoch %llu, commit %d, status %d, sink_ok %d; highest %llu, now %llu)",
		 line, what, where, h->nstep, ev_name(h->ev.type),
		 part_state_str(h->from), part_state_str((enum part_state)h->t.state),
		 (unsigned long long)h->ev.epoch, h->ev.commit, h->ev.status, h->ev.sink_ok,
		 (unsigned long long)h->highest, (unsigned long long)h->now);
}

#define CHECK(h, cond)                                  \
	do {                                            \
		if (!(cond))                            \
			fail_at((h), #cond, __LINE__);  \
	} while (0)

static int step(struct h *h, struct part_event ev);

/* The first write (PEV_BEGIN): connected, its Join goes out at once. */
static void h_init_begin(struct h *h, uint64_t now, int connected)
{
	memset(h, 0, sizeof(*h));
	h->cfg = CFG;
	h->now = now;
	h->highest = EPOCH;
	part_txn_init(&h->t, TXID, now, &h->cfg);
	step(h, (struct part_event){ .type = PEV_BEGIN, .connected = connected });
	CHECK(h, h->rc == 0 && h->t.join_sent == connected);
	CHECK(h, h->out.n == (size_t)connected);
	h->nstep = 0;
}

static void h_init(struct h *h, uint64_t now)
{
	h_init_begin(h, now, 1);
}

/* The first write while disconnected: the Join waits for PEV_CONN_UP. */
static void h_init_disconnected(struct h *h, uint64_t now)
{
	h_init_begin(h, now, 0);
}

static void h_init_recovered(struct h *h, uint64_t now, uint64_t highest)
{
	memset(h, 0, sizeof(*h));
	h->cfg = CFG;
	h->now = now;
	h->highest = highest;
	part_txn_init_recovered(&h->t, TXID, now, now - 500);
	h->ever_prepared = 1;
}

static size_t count(const struct h *h, enum part_act_type type)
{
	size_t n = 0;
	for (size_t i = 0; i < h->out.n && i < PART_MAX_ACTIONS; i++)
		n += h->out.a[i].type == type;
	return n;
}

static const struct part_action *find(const struct h *h, enum part_act_type type)
{
	for (size_t i = 0; i < h->out.n && i < PART_MAX_ACTIONS; i++)
		if (h->out.a[i].type == type)
			return &h->out.a[i];
	return NULL;
}

static int is_edge(enum part_state from, enum part_state to)
{
	switch (from) {
	case PS_JOINING: return to == PS_ACTIVE || to == PS_EXPIRED || to == PS_DONE;
	case PS_ACTIVE: return to == PS_LOGGING || to == PS_EXPIRED || to == PS_DONE;
	case PS_LOGGING: return to == PS_PREPARED || to == PS_DONE;
	case PS_PREPARED: return to == PS_APPLYING || to == PS_DONE;
	case PS_APPLYING: return to == PS_DONE;
	case PS_EXPIRED: return to == PS_DONE;
	default: return 0;
	}
}

/* The rules on one step: @p b is the transaction before it, @p hi the highest epoch. */
static void check_step(struct h *h, const struct part_txn *b, uint64_t hi)
{
	const struct part_event *ev = &h->ev;
	enum part_state from = (enum part_state)b->state, to = (enum part_state)h->t.state;
	int epoch_msg = ev->type == PEV_PREPARE || ev->type == PEV_DECISION;
	int jump = epoch_msg && hi && ev->epoch > hi && ev->epoch - hi > h->cfg.max_epoch_jump;
	int stale = (epoch_msg && ev->epoch < hi) || jump;
	int abort_msg = !stale && ((ev->type == PEV_DECISION && !ev->commit) ||
				   (ev->type == PEV_STATUS && ev->status == PART_STATUS_ABORTED));
	int commit_msg = !stale && ((ev->type == PEV_DECISION && ev->commit) ||
				    (ev->type == PEV_STATUS && ev->status == PART_STATUS_COMMITTED));
	int applied_ok = ev->type == PEV_APPLIED && ev->status == 0;
	int logged_ok = ev->type == PEV_LOGGED && ev->status == 0;
	int expiry = ev->type == PEV_TICK && from <= PS_ACTIVE && h->now >= b->expires_ms;
	int refused_gone = ev->type == PEV_REFUSED &&
			   (ev->err == TPC_ENOTFOUND || ev->err == TPC_ENOTACTIVE ||
			    ev->err == TPC_ENOTPART || ev->err == TPC_EINCARNATION);

	CHECK(h, h->out.n <= PART_MAX_ACTIONS);
	CHECK(h, to < PS_NSTATES);
	CHECK(h, h->t.txid == b->txid);
	CHECK(h, h->t.recovered == b->recovered);

	/* D7 */
	if (stale) {
		CHECK(h, h->out.n == 1 && h->out.a[0].type ==
					  (jump ? PACT_REJECT_JUMP : PACT_REJECT_STALE));
		CHECK(h, memcmp(b, &h->t, sizeof(*b)) == 0);
		CHECK(h, h->highest == hi);
	} else {
		CHECK(h, count(h, PACT_REJECT_STALE) == 0 && count(h, PACT_REJECT_JUMP) == 0);
		CHECK(h, h->highest == (epoch_msg ? ev->epoch : hi));
	}
	CHECK(h, h->highest >= hi);

	/* return codes: only a stage on a transaction past ACTIVE, or one whose token is not
	 * the transaction's, is refused */
	if (ev->type == PEV_STAGE) {
		int token_ok = b->has_token == (ev->token != NULL) &&
			       (!b->has_token || memcmp(b->token, ev->token, sizeof(b->token)) == 0);
		CHECK(h, h->rc == (from > PS_ACTIVE ? (from == PS_EXPIRED ? TPC_EEXPIRED
									  : TPC_ENOTACTIVE)
						    : token_ok ? 0 : TPC_EDENIED));
		CHECK(h, h->out.n == 0 && to == from);
	} else if (ev->type == PEV_BEGIN) { /* once, on a fresh transaction */
		CHECK(h, h->rc == (from == PS_JOINING && !b->join_sent ? 0 : TPC_ENOTACTIVE));
		CHECK(h, to == from);
		if (!h->rc)
			CHECK(h, h->t.join_sent == !!ev->connected &&
				 count(h, PACT_SEND_JOIN) == !!ev->connected);
	} else {
		CHECK(h, h->rc == 0);
	}

	/* transitions, and what may cause each */
	CHECK(h, to == from || is_edge(from, to));
	if (from == PS_DONE)
		CHECK(h, h->out.n == 0 || (stale && h->out.n == 1));
	if (from == PS_JOINING && to == PS_ACTIVE)
		CHECK(h, ev->type == PEV_JOIN_OK && h->out.n == 1 &&
			 h->out.a[0].type == PACT_COMPLETE_STAGES && h->out.a[0].err == 0);
	if (from == PS_JOINING && to == PS_DONE)
		CHECK(h, find(h, PACT_COMPLETE_STAGES) && find(h, PACT_COMPLETE_STAGES)->err < 0 &&
			 count(h, PACT_DISCARD) == 1);
	/* a lost connection fails a Join that went out on it; one not sent yet waits */
	if (from == PS_JOINING && ev->type == PEV_CONN_DOWN)
		CHECK(h, (to == PS_DONE) == !!b->join_sent);
	if (from == PS_JOINING && ev->type == PEV_CONN_UP)
		CHECK(h, to == PS_JOINING && h->t.join_sent &&
			 count(h, PACT_SEND_JOIN) == !b->join_sent);
	if (from == PS_JOINING && to == PS_JOINING && ev->type != PEV_CONN_UP &&
	    ev->type != PEV_BEGIN)
		CHECK(h, h->t.join_sent == b->join_sent);
	if (to == PS_LOGGING && from == PS_ACTIVE)
		CHECK(h, ev->type == PEV_PREPARE && ev->sink_ok >= 0 && h->out.n == 1 &&
			 h->out.a[0].type == PACT_LOG_PREPARED);
	if (from == PS_LOGGING && to == PS_PREPARED)
		CHECK(h, logged_ok);
	if (from == PS_PREPARED && to == PS_APPLYING)
		CHECK(h, commit_msg && h->out.n == 1 && h->out.a[0].type == PACT_APPLY);
	if (from == PS_PREPARED && to == PS_DONE) /* D2: never decides alone */
		CHECK(h, abort_msg && h->out.n == 1 && h->out.a[0].type == PACT_DISCARD);
	if (from == PS_APPLYING && to == PS_DONE) /* D3 */
		CHECK(h, applied_ok && h->out.n == 1 && h->out.a[0].type == PACT_SEND_ACK);
	if (from == PS_PREPARED || from == PS_APPLYING)
		CHECK(h, to == from || commit_msg || abort_msg || applied_ok);
	if (h->ever_prepared)
		CHECK(h, to == PS_PREPARED || to == PS_APPLYING || to == PS_DONE);
	/* D8: expiry, and only expiry, makes a tombstone; it discards, fails waiting
	 * stages, and says NO if the coordinator may hold the Join */
	if (to == PS_EXPIRED && from != PS_EXPIRED) {
		CHECK(h, expiry && count(h, PACT_DISCARD) == 1);
		CHECK(h, count(h, PACT_SEND_VOTE) == (from == PS_ACTIVE || b->join_sent));
		CHECK(h, h->t.tell_no == (from == PS_ACTIVE || b->join_sent));
		if (from == PS_JOINING)
			CHECK(h, find(h, PACT_COMPLETE_STAGES) &&
				 find(h, PACT_COMPLETE_STAGES)->err == TPC_EEXPIRED);
	}
	if (expiry)
		CHECK(h, to == PS_EXPIRED);
	/* a tombstone ends only when the coordinator is done with it, or at worst in time */
	if (from == PS_EXPIRED && to == PS_DONE)
		CHECK(h, h->out.n == 0 &&
			 ((ev->type == PEV_DECISION && !ev->commit && !stale) ||
			  (ev->type == PEV_STATUS && ev->status != PART_STATUS_PENDING) || refused_gone ||
			  (ev->type == PEV_TICK && h->now >= b->expires_ms)));
	if (from == PS_EXPIRED && to == PS_EXPIRED)
		CHECK(h, h->t.expires_ms == b->expires_ms && h->t.tell_no == b->tell_no);

	/* each action, and when it may leave */
	for (size_t i = 0; i < h->out.n && i < PART_MAX_ACTIONS; i++) {
		const struct part_action *a = &h->out.a[i];
		switch (a->type) {
		case PACT_SEND_JOIN: /* at the first write when connected, else once connected */
			CHECK(h, (ev->type == PEV_CONN_UP || (ev->type == PEV_BEGIN && ev->connected)) &&
				 from == PS_JOINING && to == PS_JOINING);
			CHECK(h, !b->join_sent && h->t.join_sent);
			CHECK(h, h->out.n == 1);
			break;
		case PACT_SEND_VOTE:
			if (a->vote) { /* D2 */
				CHECK(h, a->vote == 1);
				CHECK(h, from != PS_JOINING && from != PS_ACTIVE);
				CHECK(h, (from == PS_LOGGING && logged_ok) ||
					 (from == PS_PREPARED && (ev->type == PEV_PREPARE ||
								  (ev->type == PEV_STATUS &&
								   ev->status == PART_STATUS_PENDING))));
				CHECK(h, to == PS_PREPARED);
				CHECK(h, h->logged_ok || logged_ok || h->t.recovered);
				CHECK(h, count(h, PACT_SEND_VOTE) == 1);
			} else {
				CHECK(h, a->vote == 0);
				CHECK(h, (to == PS_DONE && count(h, PACT_DISCARD) == 1) ||
					 to == PS_EXPIRED);
				CHECK(h, a->reason && a->reason[0]);
				CHECK(h, !h->ever_prepared && h->yes_votes == 0);
				if (from == PS_EXPIRED) /* again: a Prepare, or NO may be lost */
					CHECK(h, ev->type == PEV_PREPARE ||
						 (b->tell_no && (ev->type == PEV_CONN_UP ||
								 (ev->type == PEV_STATUS &&
								  ev->status == PART_STATUS_PENDING))));
				if (to == PS_EXPIRED)
					CHECK(h, !strcmp(a->reason, PART_EXPIRED_REASON));
			}
			break;
		case PACT_SEND_ACK: /* D3 */
			CHECK(h, applied_ok && from == PS_APPLYING && to == PS_DONE);
			CHECK(h, h->apply_outstanding);
			CHECK(h, h->acks == 0);
			break;
		case PACT_SEND_STATUS_QUERY:
			CHECK(h, (from == PS_PREPARED || from == PS_EXPIRED) && to == from);
			CHECK(h, ev->type == PEV_TICK || ev->type == PEV_CONN_UP);
			break;
		case PACT_LOG_PREPARED:
			CHECK(h, from == PS_ACTIVE && to == PS_LOGGING && h->log_prepared == 0);
			break;
		case PACT_APPLY:
			CHECK(h, to == PS_APPLYING);
			CHECK(h, (from == PS_PREPARED && commit_msg) ||
				 (from == PS_APPLYING && ev->type == PEV_TICK && b->apply_failed));
			CHECK(h, !h->apply_outstanding); /* one apply in flight, ever */
			break;
		case PACT_DISCARD:
			CHECK(h, (to == PS_DONE || (to == PS_EXPIRED && expiry)) &&
				 from != PS_APPLYING && from != PS_DONE && from != PS_EXPIRED);
			CHECK(h, h->acks == 0);
			break;
		case PACT_COMPLETE_STAGES: /* only JOINING has callbacks waiting */
			CHECK(h, from == PS_JOINING);
			CHECK(h, (a->err == 0) == (to == PS_ACTIVE));
			break;
		case PACT_REPORT_FORGOTTEN: /* in doubt, told once, never decided */
			CHECK(h, from == PS_PREPARED && to == PS_PREPARED);
			CHECK(h, ev->type == PEV_STATUS && ev->status == PART_STATUS_FORGOTTEN);
			CHECK(h, h->forgotten_reports == 0 && h->out.n == 1);
			break;
		case PACT_REJECT_STALE:
			CHECK(h, stale && !jump);
			break;
		case PACT_REJECT_JUMP:
			CHECK(h, jump && a->err == TPC_EEPOCH);
			break;
		default:
			CHECK(h, !"unknown action");
		}
	}

	/* deadlines: what the caller arms after the step */
	uint64_t dl = part_txn_next_deadline(&h->t);
	switch (to) {
	case PS_JOINING:
	case PS_ACTIVE: CHECK(h, dl == h->t.expires_ms && dl > 0); break;
	case PS_LOGGING: CHECK(h, dl == 0); break;
	case PS_PREPARED: CHECK(h, dl > 0); break;
	case PS_APPLYING: CHECK(h, h->t.apply_failed ? dl > 0 : dl == 0); break;
	case PS_EXPIRED: CHECK(h, dl > h->now && dl <= h->t.expires_ms); break;
	default: CHECK(h, dl == 0); break;
	}
	/* a due tick does what it is due for */
	if (ev->type == PEV_TICK && from == PS_PREPARED && b->query_at_ms &&
	    h->now >= b->query_at_ms)
		CHECK(h, count(h, PACT_SEND_STATUS_QUERY) == 1 && dl > h->now);
	if (ev->type == PEV_TICK && from <= PS_ACTIVE && h->now < b->expires_ms)
		CHECK(h, to == from && h->out.n == 0);
	if (ev->type == PEV_TICK && from == PS_APPLYING && b->apply_failed &&
	    h->now >= b->query_at_ms)
		CHECK(h, count(h, PACT_APPLY) == 1);
}

/* Feed one event at h->now, check the rules, update the history. @return the rc. */
static int step(struct h *h, struct part_event ev)
{
	struct part_txn before = h->t;
	uint64_t hi = h->highest;

	h->ev = ev;
	h->from = (enum part_state)h->t.state;
	h->nstep++;
	memset(&h->out, 0, sizeof(h->out));
	h->rc = part_txn_step(&h->t, &h->cfg, &ev, h->now, &h->highest, &h->out);
	check_step(h, &before, hi);

	if (ev.type == PEV_LOGGED)
		h->log_outstanding = 0;
	if (ev.type == PEV_APPLIED)
		h->apply_outstanding = 0;
	if (before.state == PS_LOGGING && h->t.state == PS_PREPARED)
		h->logged_ok = 1;
	if (h->t.state == PS_PREPARED)
		h->ever_prepared = 1;
	for (size_t i = 0; i < h->out.n; i++) {
		const struct part_action *a = &h->out.a[i];
		switch (a->type) {
		case PACT_SEND_VOTE:
			if (a->vote)
				h->yes_votes++;
			else
				h->no_votes++;
			break;
		case PACT_SEND_ACK: h->acks++; break;
		case PACT_SEND_STATUS_QUERY: h->queries++; break;
		case PACT_LOG_PREPARED: h->log_prepared++; h->log_outstanding = 1; break;
		case PACT_APPLY: h->applies++; h->apply_outstanding = 1; break;
		case PACT_DISCARD: h->discards++; break;
		case PACT_REPORT_FORGOTTEN: h->forgotten_reports++; break;
		default: break;
		}
	}
	return h->rc;
}

static int step_at(struct h *h, uint64_t now, struct part_event ev)
{
	CHECK(h, now >= h->now); /* time only moves forward */
	h->now = now;
	return step(h, ev);
}

/* ---- events ------------------------------------------------------------------------- */

static struct part_event ev_stage(void) { return (struct part_event){ .type = PEV_STAGE }; }
static struct part_event ev_join_ok(void) { return (struct part_event){ .type = PEV_JOIN_OK }; }
static struct part_event ev_tick(void) { return (struct part_event){ .type = PEV_TICK }; }
static struct part_event ev_up(void) { return (struct part_event){ .type = PEV_CONN_UP }; }
static struct part_event ev_down(void) { return (struct part_event){ .type = PEV_CONN_DOWN }; }

static struct part_event ev_join_failed(int err)
{
	return (struct part_event){ .type = PEV_JOIN_FAILED, .err = err };
}

static struct part_event ev_prepare(uint64_t epoch, int sink_ok)
{
	return (struct part_event){ .type = PEV_PREPARE, .epoch = epoch, .sink_ok = sink_ok };
}

static struct part_event ev_logged(int status)
{
	return (struct part_event){ .type = PEV_LOGGED, .status = status };
}

static struct part_event ev_decision(int commit, uint64_t epoch)
{
	return (struct part_event){ .type = PEV_DECISION, .commit = commit, .epoch = epoch };
}

static struct part_event ev_applied(int status)
{
	return (struct part_event){ .type = PEV_APPLIED, .status = status };
}

enum {
	PENDING = PART_STATUS_PENDING,
	COMMITTED = PART_STATUS_COMMITTED,
	ABORTED = PART_STATUS_ABORTED,
	FORGOTTEN = PART_STATUS_FORGOTTEN,
};

static struct part_event ev_status(int status)
{
	return (struct part_event){ .type = PEV_STATUS, .status = status };
}

static struct part_event ev_refused(int err)
{
	return (struct part_event){ .type = PEV_REFUSED, .err = err };
}

/* ---- helpers that walk a transaction to a state ------------------------------------ */

static void to_active(struct h *h)
{
	h_init(h, T0);
	step(h, ev_join_ok());
	assert_int_equal(h->t.state, PS_ACTIVE);
}

static void to_logging(struct h *h)
{
	to_active(h);
	step_at(h, T0 + 10, ev_prepare(EPOCH, 0));
	assert_int_equal(h->t.state, PS_LOGGING);
}

static void to_prepared(struct h *h)
{
	to_logging(h);
	step_at(h, T0 + 20, ev_logged(0));
	assert_int_equal(h->t.state, PS_PREPARED);
}

static void to_applying(struct h *h)
{
	to_prepared(h);
	step_at(h, T0 + 30, ev_decision(1, EPOCH));
	assert_int_equal(h->t.state, PS_APPLYING);
}

static void assert_only(const struct h *h, enum part_act_type type)
{
	assert_int_equal(h->out.n, 1);
	assert_int_equal(h->out.a[0].type, type);
}

static void assert_vote(const struct h *h, int yes)
{
	const struct part_action *v = find(h, PACT_SEND_VOTE);
	assert_non_null(v);
	assert_int_equal(v->vote, yes);
	assert_int_equal(count(h, PACT_SEND_VOTE), 1);
}

/* ---- happy path --------------------------------------------------------------------- */

static void test_happy_path_stages_prepares_votes_yes_applies_and_acks(void **state)
{
	struct h h;

	h_init(&h, T0);
	assert_int_equal(h.t.state, PS_JOINING);
	assert_int_equal(h.t.txid, TXID);
	assert_int_equal(step(&h, ev_stage()), 0); /* a second write while the Join is out */
	assert_int_equal(h.out.n, 0);

	step_at(&h, T0 + 1, ev_join_ok());
	assert_int_equal(h.t.state, PS_ACTIVE);
	assert_only(&h, PACT_COMPLETE_STAGES);
	assert_int_equal(h.out.a[0].err, 0);
	assert_int_equal(step(&h, ev_stage()), 0);

	step_at(&h, T0 + 2, ev_prepare(EPOCH, 0));
	assert_int_equal(h.t.state, PS_LOGGING);
	assert_only(&h, PACT_LOG_PREPARED); /* no vote before the record is durable */

	step_at(&h, T0 + 3, ev_logged(0));
	assert_int_equal(h.t.state, PS_PREPARED);
	assert_only(&h, PACT_SEND_VOTE);
	assert_int_equal(h.out.a[0].vote, 1);

	step_at(&h, T0 + 4, ev_decision(1, EPOCH));
	assert_int_equal(h.t.state, PS_APPLYING);
	assert_only(&h, PACT_APPLY); /* no ack before the apply is durable */

	step_at(&h, T0 + 5, ev_applied(0));
	assert_int_equal(h.t.state, PS_DONE);
	assert_only(&h, PACT_SEND_ACK);
	assert_int_equal(h.acks, 1);
	assert_int_equal(h.applies, 1);
	assert_int_equal(h.discards, 0);
	assert_int_equal(part_txn_next_deadline(&h.t), 0);
}

static void test_join_ok_completes_every_waiting_stage_with_success(void **state)
{
	struct h h;

	h_init(&h, T0);
	step(&h, ev_stage());
	step(&h, ev_stage());
	step(&h, ev_join_ok());
	/* one action: the caller runs all its waiting callbacks with it */
	assert_only(&h, PACT_COMPLETE_STAGES);
	assert_int_equal(h.out.a[0].err, 0);
	/* once active, writes complete at once: no further completions */
	step(&h, ev_stage());
	assert_int_equal(h.out.n, 0);
}

static void test_second_join_reply_is_ignored(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_join_ok());
	assert_int_equal(h.out.n, 0);
	step(&h, ev_join_failed(TPC_ENOTFOUND));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_ACTIVE);
}

/* ---- staging ------------------------------------------------------------------------ */

static void test_stage_is_refused_once_prepare_has_started(void **state)
{
	struct h h;

	to_logging(&h);
	assert_int_equal(step(&h, ev_stage()), TPC_ENOTACTIVE);
	assert_int_equal(h.t.state, PS_LOGGING);

	to_prepared(&h);
	assert_int_equal(step(&h, ev_stage()), TPC_ENOTACTIVE);
	assert_int_equal(h.t.state, PS_PREPARED);

	to_applying(&h);
	assert_int_equal(step(&h, ev_stage()), TPC_ENOTACTIVE);

	step(&h, ev_applied(0));
	assert_int_equal(h.t.state, PS_DONE);
	assert_int_equal(step(&h, ev_stage()), TPC_ENOTACTIVE);
}

static void test_stage_is_refused_on_a_recovered_transaction(void **state)
{
	struct h h;

	h_init_recovered(&h, T0, EPOCH);
	assert_int_equal(step(&h, ev_stage()), TPC_ENOTACTIVE);
	assert_int_equal(h.t.state, PS_PREPARED);
}

/* ---- join failures ------------------------------------------------------------------ */

static void test_join_failure_completes_stages_with_its_error_and_discards(void **state)
{
	struct h h;

	h_init(&h, T0);
	step(&h, ev_join_failed(TPC_ELIMIT));
	assert_int_equal(h.t.state, PS_DONE);
	assert_int_equal(h.out.n, 2);
	assert_int_equal(h.out.a[0].type, PACT_COMPLETE_STAGES);
	assert_int_equal(h.out.a[0].err, TPC_ELIMIT);
	assert_int_equal(h.out.a[1].type, PACT_DISCARD);
	assert_int_equal(h.no_votes + h.yes_votes, 0); /* nobody asked for a vote */
}

static void test_join_failure_without_a_code_reports_not_active(void **state)
{
	struct h h;

	h_init(&h, T0);
	step(&h, ev_join_failed(0));
	assert_int_equal(h.t.state, PS_DONE);
	assert_int_equal(find(&h, PACT_COMPLETE_STAGES)->err, TPC_ENOTACTIVE);
}

/* ---- prepare ------------------------------------------------------------------------ */

static void test_sink_refusal_at_prepare_votes_no_and_discards(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_prepare(EPOCH, TPC_EREFUSED));
	assert_int_equal(h.t.state, PS_DONE);
	assert_vote(&h, 0);
	assert_int_equal(count(&h, PACT_DISCARD), 1);
	assert_int_equal(count(&h, PACT_LOG_PREPARED), 0); /* nothing forced for a NO */
	assert_int_equal(h.out.a[0].type, PACT_SEND_VOTE);
}

/* The NO vote carries the sink's own words; without any, a generic reason. */
static void test_sink_refusal_votes_no_with_the_sink_reason(void **state)
{
	struct h h;
	struct part_event ev = ev_prepare(EPOCH, TPC_EREFUSED);

	(void)state;
	to_active(&h);
	ev.reason = "negative amount";
	step(&h, ev);
	assert_string_equal(find(&h, PACT_SEND_VOTE)->reason, "negative amount");
	to_active(&h);
	ev.reason = "";
	step(&h, ev);
	assert_string_equal(find(&h, PACT_SEND_VOTE)->reason, "the sink refused the transaction");
}

static void test_prepare_before_the_join_reply_votes_no_and_fails_stages(void **state)
{
	struct h h;

	h_init(&h, T0);
	step(&h, ev_prepare(EPOCH, 0));
	assert_int_equal(h.t.state, PS_DONE);
	assert_vote(&h, 0);
	assert_int_equal(find(&h, PACT_COMPLETE_STAGES)->err, TPC_ENOTACTIVE);
	assert_int_equal(count(&h, PACT_DISCARD), 1);
	assert_int_equal(count(&h, PACT_LOG_PREPARED), 0);
}

static void test_repeated_prepare_while_logging_waits_for_the_log(void **state)
{
	struct h h;

	to_logging(&h);
	step(&h, ev_prepare(EPOCH, 0));
	assert_int_equal(h.out.n, 0); /* no second record, and no vote before it is durable */
	assert_int_equal(h.t.state, PS_LOGGING);
	step(&h, ev_logged(0));
	assert_vote(&h, 1);
	assert_int_equal(h.log_prepared, 1);
}

static void test_repeated_prepare_while_prepared_votes_yes_again(void **state)
{
	struct h h;

	to_prepared(&h);
	step(&h, ev_prepare(EPOCH, 0));
	assert_only(&h, PACT_SEND_VOTE);
	assert_int_equal(h.out.a[0].vote, 1);
	assert_int_equal(h.t.state, PS_PREPARED);
	/* even if the sink would now say no: the YES is durable and stands */
	step(&h, ev_prepare(EPOCH, TPC_EREFUSED));
	assert_vote(&h, 1);
	assert_int_equal(h.t.state, PS_PREPARED);
	assert_int_equal(h.log_prepared, 1);
}

static void test_repeated_prepare_while_applying_sends_nothing(void **state)
{
	struct h h;

	to_applying(&h);
	step(&h, ev_prepare(EPOCH, 0));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_APPLYING);
}

/* ---- the PREPARED record ------------------------------------------------------------ */

static void test_log_failure_votes_no_never_yes(void **state)
{
	struct h h;

	to_logging(&h);
	step(&h, ev_logged(-EIO));
	assert_int_equal(h.t.state, PS_DONE);
	assert_vote(&h, 0);
	assert_int_equal(count(&h, PACT_DISCARD), 1); /* drops the record if it made it */
	/* a late repeat of anything finds it finished and never votes YES */
	step(&h, ev_logged(0));
	step(&h, ev_prepare(EPOCH, 0));
	step(&h, ev_status(PENDING));
	assert_int_equal(h.yes_votes, 0);
	assert_int_equal(h.t.state, PS_DONE);
}

static void test_log_failure_with_a_tpc_code_votes_no(void **state)
{
	struct h h;

	to_logging(&h);
	step(&h, ev_logged(TPC_ECORRUPT));
	assert_vote(&h, 0);
	assert_int_equal(h.t.state, PS_DONE);
}

static void test_log_completion_outside_logging_is_ignored(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_logged(0));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_ACTIVE);

	to_prepared(&h);
	step(&h, ev_logged(0));
	assert_int_equal(h.out.n, 0);
	step(&h, ev_logged(-EIO)); /* never turns a durable YES into a NO */
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_PREPARED);
}

/* ---- abort -------------------------------------------------------------------------- */

static void test_abort_while_active_discards_so_a_late_prepare_finds_nothing(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.t.state, PS_DONE);
	assert_only(&h, PACT_DISCARD);
	/*
	 * The caller frees a DONE transaction, so a late Prepare finds the txid unknown and
	 * part_net.c answers NO itself. Were it fed to the finished machine, it would still
	 * never vote YES or log anything.
	 */
	step(&h, ev_prepare(EPOCH, 0));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.log_prepared, 0);
	assert_int_equal(h.yes_votes, 0);
}

static void test_abort_while_joining_fails_stages_and_discards(void **state)
{
	struct h h;

	h_init(&h, T0);
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.t.state, PS_DONE);
	assert_int_equal(h.out.n, 2);
	assert_int_equal(h.out.a[0].type, PACT_COMPLETE_STAGES);
	assert_true(h.out.a[0].err < 0);
	assert_int_equal(h.out.a[1].type, PACT_DISCARD);
}

static void test_abort_while_logging_discards_and_ignores_the_late_log_result(void **state)
{
	struct h h;

	to_logging(&h);
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.t.state, PS_DONE);
	assert_only(&h, PACT_DISCARD);
	step(&h, ev_logged(0));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.yes_votes, 0);
}

static void test_abort_while_prepared_discards(void **state)
{
	struct h h;

	to_prepared(&h);
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.t.state, PS_DONE);
	assert_only(&h, PACT_DISCARD);
	assert_int_equal(h.applies + h.acks, 0);
}

static void test_abort_after_commit_started_does_not_undo_it(void **state)
{
	struct h h;

	to_applying(&h);
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_APPLYING);
	step(&h, ev_applied(0));
	assert_only(&h, PACT_SEND_ACK);
	assert_int_equal(h.discards, 0);
}

static void test_decision_after_done_is_ignored(void **state)
{
	struct h h;

	/* discarded */
	to_active(&h);
	step(&h, ev_decision(0, EPOCH));
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.out.n, 0);
	step(&h, ev_decision(1, EPOCH));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.discards, 1);

	/* committed and acked */
	to_applying(&h);
	step(&h, ev_applied(0));
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_DONE);
}

/* ---- commit ------------------------------------------------------------------------- */

static void test_duplicate_commit_applies_once(void **state)
{
	struct h h;

	to_prepared(&h);
	step(&h, ev_decision(1, EPOCH));
	assert_only(&h, PACT_APPLY);
	step(&h, ev_decision(1, EPOCH)); /* again, before the apply finished */
	assert_int_equal(h.out.n, 0);
	step(&h, ev_status(COMMITTED));
	assert_int_equal(h.out.n, 0);
	step(&h, ev_applied(0));
	assert_only(&h, PACT_SEND_ACK);
	/* and after the ack: ignored (the caller, having freed it, acks an unknown COMMIT) */
	step(&h, ev_decision(1, EPOCH));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.applies, 1);
	assert_int_equal(h.acks, 1);
}

static void test_commit_before_prepared_is_ignored(void **state)
{
	struct h h;

	h_init(&h, T0);
	step(&h, ev_decision(1, EPOCH));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_JOINING);

	to_active(&h);
	step(&h, ev_decision(1, EPOCH));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_ACTIVE);

	to_logging(&h);
	step(&h, ev_decision(1, EPOCH));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_LOGGING);
	assert_int_equal(h.applies, 0);
}

static void test_apply_failure_withholds_the_ack_and_retries_on_a_later_tick(void **state)
{
	struct h h;

	to_applying(&h);
	uint64_t t = h.now + 5;
	step_at(&h, t, ev_applied(-EIO));
	assert_int_equal(h.out.n, 0); /* D3: no ack */
	assert_int_equal(h.t.state, PS_APPLYING);
	assert_int_equal(part_txn_next_deadline(&h.t), t + CFG.apply_retry_ms);

	step_at(&h, t + CFG.apply_retry_ms - 1, ev_tick()); /* not yet */
	assert_int_equal(h.out.n, 0);
	step_at(&h, t + CFG.apply_retry_ms, ev_tick());
	assert_only(&h, PACT_APPLY);
	assert_int_equal(part_txn_next_deadline(&h.t), 0); /* the apply is out */
	step(&h, ev_tick());
	assert_int_equal(h.out.n, 0); /* no second apply while one is out */

	step(&h, ev_applied(0));
	assert_only(&h, PACT_SEND_ACK);
	assert_int_equal(h.t.state, PS_DONE);
	assert_int_equal(h.applies, 2);
	assert_int_equal(h.acks, 1);
}

static void test_apply_failing_repeatedly_never_acks_until_it_succeeds(void **state)
{
	struct h h;

	to_applying(&h);
	for (int i = 0; i < 5; i++) {
		step(&h, ev_applied(-ENOSPC));
		assert_int_equal(h.acks, 0);
		/* the connection coming and going changes nothing */
		step(&h, ev_down());
		step(&h, ev_up());
		assert_int_equal(h.out.n, 0);
		step_at(&h, part_txn_next_deadline(&h.t), ev_tick());
		assert_only(&h, PACT_APPLY);
	}
	step(&h, ev_applied(0));
	assert_int_equal(h.acks, 1);
	assert_int_equal(h.applies, 6);
}

static void test_apply_result_outside_applying_is_ignored(void **state)
{
	struct h h;

	to_prepared(&h);
	step(&h, ev_applied(0));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_PREPARED);
}

/* ---- epochs (D7) -------------------------------------------------------------------- */

static void test_stale_prepare_is_rejected_without_state_change(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_prepare(EPOCH - 1, 0));
	assert_only(&h, PACT_REJECT_STALE);
	assert_int_equal(h.t.state, PS_ACTIVE);
	assert_int_equal(h.highest, EPOCH);

	/* also from JOINING: no NO vote, the stages keep waiting */
	h_init(&h, T0);
	step(&h, ev_prepare(0, 0));
	assert_only(&h, PACT_REJECT_STALE);
	assert_int_equal(h.t.state, PS_JOINING);

	/* and from PREPARED: no repeated YES to an old coordinator */
	to_prepared(&h);
	step(&h, ev_prepare(EPOCH - 1, 0));
	assert_only(&h, PACT_REJECT_STALE);
}

static void test_stale_decision_is_rejected_without_state_change(void **state)
{
	struct h h;

	to_prepared(&h);
	step(&h, ev_decision(0, EPOCH - 1)); /* an old incarnation's ABORT: not ours to obey */
	assert_only(&h, PACT_REJECT_STALE);
	assert_int_equal(h.t.state, PS_PREPARED);
	step(&h, ev_decision(1, EPOCH - 1));
	assert_only(&h, PACT_REJECT_STALE);
	assert_int_equal(h.t.state, PS_PREPARED);

	to_active(&h);
	step(&h, ev_decision(0, 1));
	assert_only(&h, PACT_REJECT_STALE);
	assert_int_equal(h.t.state, PS_ACTIVE);

	/* the current epoch is not stale */
	to_prepared(&h);
	step(&h, ev_decision(0, EPOCH));
	assert_only(&h, PACT_DISCARD);
}

static void test_newer_epoch_raises_the_highest_seen(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_prepare(EPOCH + 3, 0));
	assert_int_equal(h.highest, EPOCH + 3);
	assert_int_equal(h.t.state, PS_LOGGING);
	step(&h, ev_logged(0));
	/* now the old epoch is stale */
	step(&h, ev_decision(1, EPOCH));
	assert_only(&h, PACT_REJECT_STALE);
	assert_int_equal(h.t.state, PS_PREPARED);
	step(&h, ev_decision(1, EPOCH + 5));
	assert_int_equal(h.highest, EPOCH + 5);
	assert_only(&h, PACT_APPLY);
}

/* A forged epoch far above the highest seen (a fake coordinator's 2^62) is refused and
 * not remembered, so the real coordinator's next Prepare and Decision still count. */
static void test_epoch_jump_past_the_bound_is_refused_and_not_remembered(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_prepare((uint64_t)1 << 62, 0));
	assert_only(&h, PACT_REJECT_JUMP);
	assert_int_equal(h.out.a[0].err, TPC_EEPOCH);
	assert_int_equal(h.t.state, PS_ACTIVE);
	assert_int_equal(h.highest, EPOCH);
	step(&h, ev_prepare(EPOCH + CFG.max_epoch_jump + 1, 0)); /* one past the bound */
	assert_only(&h, PACT_REJECT_JUMP);
	assert_int_equal(h.highest, EPOCH);
	step_at(&h, T0 + 10, ev_prepare(EPOCH + CFG.max_epoch_jump, 0)); /* at the bound: ok */
	assert_only(&h, PACT_LOG_PREPARED);
	assert_int_equal(h.highest, EPOCH + CFG.max_epoch_jump);
	step(&h, ev_logged(0));
	assert_int_equal(h.t.state, PS_PREPARED);
	/* a forged COMMIT with an absurd epoch is not applied */
	step(&h, ev_decision(1, (uint64_t)1 << 62));
	assert_only(&h, PACT_REJECT_JUMP);
	assert_int_equal(h.t.state, PS_PREPARED);
	step(&h, ev_decision(1, EPOCH + CFG.max_epoch_jump));
	assert_only(&h, PACT_APPLY);
}

static void test_epoch_check_takes_a_first_epoch_and_bounds_the_rest(void **state)
{
	(void)state;
	assert_int_equal(part_epoch_check((uint64_t)1 << 62, 0, 10), PART_EPOCH_OK);
	assert_int_equal(part_epoch_check(5, 5, 10), PART_EPOCH_OK);
	assert_int_equal(part_epoch_check(15, 5, 10), PART_EPOCH_OK);
	assert_int_equal(part_epoch_check(16, 5, 10), PART_EPOCH_JUMP);
	assert_int_equal(part_epoch_check(4, 5, 10), PART_EPOCH_STALE);
	assert_int_equal(part_epoch_check(UINT64_MAX, 5, 10), PART_EPOCH_JUMP);
	/* 0: the default bound */
	assert_int_equal(part_epoch_check(5 + PART_DEFAULT_MAX_EPOCH_JUMP, 5, 0), PART_EPOCH_OK);
	assert_int_equal(part_epoch_check(6 + PART_DEFAULT_MAX_EPOCH_JUMP, 5, 0),
			 PART_EPOCH_JUMP);
}

/* ---- transaction tokens -------------------------------------------------------------- */

static const uint8_t TOKEN_A[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t TOKEN_B[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17 };

static struct part_event ev_stage_token(const uint8_t *token)
{
	return (struct part_event){ .type = PEV_STAGE, .token = token };
}

/* The first write's PEV_BEGIN keeps its token and sends the Join when connected; a
 * second PEV_BEGIN is refused and changes nothing. */
static void test_begin_keeps_the_token_and_sends_the_join_once(void **state)
{
	struct h h;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.cfg = CFG;
	h.now = T0;
	h.highest = EPOCH;
	part_txn_init(&h.t, TXID, T0, &h.cfg);
	step(&h, (struct part_event){ .type = PEV_BEGIN, .token = TOKEN_A, .connected = 1 });
	assert_int_equal(h.rc, 0);
	assert_int_equal(count(&h, PACT_SEND_JOIN), 1);
	assert_true(h.t.has_token && h.t.join_sent);
	struct part_txn before = h.t;
	step(&h, (struct part_event){ .type = PEV_BEGIN, .token = TOKEN_B, .connected = 1 });
	assert_int_equal(h.rc, TPC_ENOTACTIVE);
	assert_int_equal(h.out.n, 0);
	assert_memory_equal(&before, &h.t, sizeof(before));
	step(&h, ev_stage_token(TOKEN_A));
	assert_int_equal(h.rc, 0);
	step(&h, ev_stage_token(TOKEN_B));
	assert_int_equal(h.rc, TPC_EDENIED);
}

/* Joined with a token: a write with another token, or none, is refused and changes
 * nothing; the same token is taken, while joining and once joined. */
static void test_write_with_another_token_is_refused_and_changes_nothing(void **state)
{
	struct h h;

	h_init(&h, T0);
	part_txn_set_token(&h.t, TOKEN_A);
	struct part_txn before = h.t;
	step(&h, ev_stage_token(TOKEN_B));
	assert_int_equal(h.rc, TPC_EDENIED);
	assert_int_equal(h.out.n, 0);
	assert_memory_equal(&before, &h.t, sizeof(before));
	step(&h, ev_stage_token(NULL));
	assert_int_equal(h.rc, TPC_EDENIED);
	step(&h, ev_stage_token(TOKEN_A));
	assert_int_equal(h.rc, 0);
	step(&h, ev_join_ok());
	assert_int_equal(h.t.state, PS_ACTIVE);
	step(&h, ev_stage_token(TOKEN_B));
	assert_int_equal(h.rc, TPC_EDENIED);
	step(&h, ev_stage_token(TOKEN_A));
	assert_int_equal(h.rc, 0);
	assert_int_equal(h.t.state, PS_ACTIVE);
}

/* Joined without a token: a write that brings one was never checked by the coordinator
 * for this transaction, so it is refused too (the writers are not the same party). */
static void test_write_with_a_token_to_a_txn_joined_without_is_refused(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_stage_token(TOKEN_A));
	assert_int_equal(h.rc, TPC_EDENIED);
	step(&h, ev_stage());
	assert_int_equal(h.rc, 0);
}

static void test_newer_epoch_on_an_ignored_message_still_raises_the_highest(void **state)
{
	struct h h;

	to_applying(&h);
	step(&h, ev_prepare(EPOCH + 1, 0));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.highest, EPOCH + 1);
	step(&h, ev_decision(1, EPOCH));
	assert_only(&h, PACT_REJECT_STALE);
}

/* ---- expiry of staged writes -------------------------------------------------------- */

static void test_staged_writes_expire_when_active_past_the_txn_timeout(void **state)
{
	struct h h;

	to_active(&h);
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + CFG.txn_timeout_ms);
	step_at(&h, T0 + CFG.txn_timeout_ms - 1, ev_tick());
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_ACTIVE);
	step_at(&h, T0 + CFG.txn_timeout_ms, ev_tick());
	assert_int_equal(h.t.state, PS_EXPIRED);
	assert_int_equal(h.out.n, 2);
	assert_int_equal(h.out.a[0].type, PACT_DISCARD);
	assert_vote(&h, 0);
	assert_string_equal(find(&h, PACT_SEND_VOTE)->reason, PART_EXPIRED_REASON);
}

static void test_more_writes_do_not_extend_the_expiry(void **state)
{
	struct h h;

	to_active(&h);
	step_at(&h, T0 + CFG.txn_timeout_ms - 1, ev_stage());
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + CFG.txn_timeout_ms);
	step_at(&h, T0 + CFG.txn_timeout_ms + 1, ev_tick());
	assert_int_equal(h.t.state, PS_EXPIRED);
}

static void test_expiry_while_joining_fails_stages_with_eexpired_and_votes_no(void **state)
{
	struct h h;

	h_init(&h, T0); /* the Join went out: the coordinator may hold it */
	step_at(&h, T0 + CFG.txn_timeout_ms, ev_tick());
	assert_int_equal(h.t.state, PS_EXPIRED);
	assert_int_equal(h.out.n, 3);
	assert_int_equal(h.out.a[0].type, PACT_COMPLETE_STAGES);
	assert_int_equal(h.out.a[0].err, TPC_EEXPIRED);
	assert_int_equal(h.out.a[1].type, PACT_DISCARD);
	assert_vote(&h, 0);
}

static void expire_active(struct h *h)
{
	to_active(h);
	step_at(h, T0 + CFG.txn_timeout_ms, ev_tick());
	assert_int_equal(h->t.state, PS_EXPIRED);
}

static void test_stage_after_expiry_fails_with_eexpired_and_never_joins_again(void **state)
{
	struct h h;

	expire_active(&h);
	assert_int_equal(step(&h, ev_stage()), TPC_EEXPIRED);
	assert_int_equal(h.out.n, 0);
	step(&h, ev_down());
	step(&h, ev_up()); /* a reconnect: NO again and a question, never a Join */
	assert_int_equal(count(&h, PACT_SEND_JOIN), 0);
	assert_int_equal(step(&h, ev_stage()), TPC_EEXPIRED);
	assert_int_equal(h.t.state, PS_EXPIRED);
}

static void test_prepare_after_expiry_votes_no_and_keeps_the_tombstone(void **state)
{
	struct h h;

	expire_active(&h);
	step(&h, ev_prepare(EPOCH, 0));
	assert_only(&h, PACT_SEND_VOTE);
	assert_vote(&h, 0);
	assert_int_equal(h.t.state, PS_EXPIRED);
	step(&h, ev_prepare(EPOCH - 1, 0)); /* an older epoch: still rejected (D7) */
	assert_only(&h, PACT_REJECT_STALE);
}

static void test_reconnect_after_expiry_resends_no_and_asks(void **state)
{
	struct h h;

	expire_active(&h);
	step(&h, ev_down());
	assert_int_equal(h.out.n, 0);
	step(&h, ev_up());
	assert_int_equal(h.out.n, 2);
	assert_vote(&h, 0);
	assert_int_equal(count(&h, PACT_SEND_STATUS_QUERY), 1);
	assert_int_equal(h.t.state, PS_EXPIRED);
}

static void test_abort_ends_the_tombstone_and_a_commit_does_not(void **state)
{
	struct h h;

	expire_active(&h);
	step(&h, ev_decision(1, EPOCH)); /* cannot come without our YES: ignored */
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_EXPIRED);
	step(&h, ev_decision(0, EPOCH - 1)); /* stale */
	assert_int_equal(h.t.state, PS_EXPIRED);
	step(&h, ev_decision(0, EPOCH));
	assert_int_equal(h.out.n, 0); /* the writes went at expiry */
	assert_int_equal(h.t.state, PS_DONE);
}

static void test_tombstone_asks_and_ends_on_any_final_status(void **state)
{
	for (int st = COMMITTED; st <= FORGOTTEN; st++) {
		struct h h;

		expire_active(&h);
		uint64_t at = part_txn_next_deadline(&h.t);
		assert_int_equal(at, h.now + CFG.query_initial_ms);
		step_at(&h, at, ev_tick());
		assert_only(&h, PACT_SEND_STATUS_QUERY);
		step(&h, ev_status(PENDING)); /* our NO may not be in yet: say it again */
		assert_only(&h, PACT_SEND_VOTE);
		assert_int_equal(h.t.state, PS_EXPIRED);
		step(&h, ev_status(st));
		assert_int_equal(h.out.n, 0);
		assert_int_equal(h.t.state, PS_DONE);
	}
}

static void test_refused_vote_ends_the_tombstone_only_when_the_txn_is_gone(void **state)
{
	static const int gone[] = { TPC_ENOTFOUND, TPC_ENOTACTIVE, TPC_ENOTPART, TPC_EINCARNATION };
	struct h h;

	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
		expire_active(&h);
		step(&h, ev_refused(TPC_EUNAVAIL)); /* not an answer about the txn */
		assert_int_equal(h.t.state, PS_EXPIRED);
		step(&h, ev_refused(gone[i]));
		assert_int_equal(h.t.state, PS_DONE);
	}
	to_active(&h); /* outside EXPIRED a refusal changes nothing */
	step(&h, ev_refused(TPC_ENOTFOUND));
	assert_int_equal(h.t.state, PS_ACTIVE);
	assert_int_equal(h.out.n, 0);
}

static void test_tombstone_is_dropped_after_tombstone_ms_at_worst(void **state)
{
	struct h h;
	unsigned queries = 0;

	expire_active(&h);
	uint64_t until = h.now + CFG.tombstone_ms;
	while (h.t.state == PS_EXPIRED) { /* nobody ever answers */
		uint64_t at = part_txn_next_deadline(&h.t);
		assert_true(at <= until);
		step_at(&h, at, ev_tick());
		queries += count(&h, PACT_SEND_STATUS_QUERY);
	}
	assert_int_equal(h.now, until);
	assert_int_equal(h.out.n, 0);
	assert_true(queries >= CFG.tombstone_ms / CFG.query_max_ms - 1); /* capped backoff */
}

static void test_join_reply_after_expiry_is_ignored(void **state)
{
	struct h h;

	h_init(&h, T0);
	step_at(&h, T0 + CFG.txn_timeout_ms, ev_tick());
	step(&h, ev_join_ok());
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_EXPIRED);
	step(&h, ev_join_failed(TPC_ENOTFOUND));
	assert_int_equal(h.t.state, PS_EXPIRED);
}

static void test_logging_and_prepared_never_expire(void **state)
{
	struct h h;

	to_logging(&h);
	step_at(&h, T0 + 100u * CFG.txn_timeout_ms, ev_tick());
	assert_int_equal(h.t.state, PS_LOGGING);
	assert_int_equal(h.out.n, 0);

	to_prepared(&h);
	for (uint64_t t = h.now; t < T0 + 100u * CFG.txn_timeout_ms; t += 97) {
		step_at(&h, t, ev_tick());
		assert_int_equal(h.t.state, PS_PREPARED);
		assert_int_equal(count(&h, PACT_DISCARD), 0);
	}
	assert_true(h.queries > 0);
}

/* ---- status queries ----------------------------------------------------------------- */

static void test_prepared_txn_queries_status_after_query_initial_ms(void **state)
{
	struct h h;

	to_prepared(&h); /* logged at T0 + 20 */
	uint64_t logged_at = T0 + 20;
	assert_int_equal(part_txn_next_deadline(&h.t), logged_at + CFG.query_initial_ms);
	step_at(&h, logged_at + CFG.query_initial_ms - 1, ev_tick());
	assert_int_equal(h.out.n, 0);
	step_at(&h, logged_at + CFG.query_initial_ms, ev_tick());
	assert_only(&h, PACT_SEND_STATUS_QUERY);
	assert_int_equal(h.t.queries, 1);
	/* unanswered: asks again later, backing off */
	assert_int_equal(part_txn_next_deadline(&h.t), h.now + 2 * CFG.query_initial_ms);
}

static void test_unanswered_queries_back_off_doubling_to_the_cap(void **state)
{
	struct h h;
	uint64_t prev = 0, gap = 0;

	to_prepared(&h);
	for (int i = 0; i < 10; i++) {
		uint64_t at = part_txn_next_deadline(&h.t);
		if (prev) {
			uint64_t want = gap ? gap * 2 : CFG.query_initial_ms;
			if (want > CFG.query_max_ms)
				want = CFG.query_max_ms;
			assert_int_equal(at - prev, want);
			gap = at - prev;
		}
		step_at(&h, at, ev_tick());
		assert_only(&h, PACT_SEND_STATUS_QUERY);
		prev = at;
		if (!gap)
			gap = CFG.query_initial_ms;
	}
	assert_int_equal(gap, CFG.query_max_ms);
	assert_int_equal(h.t.queries, 10);
}

static void test_pending_status_votes_yes_again_and_backs_off_doubling_to_the_cap(void **state)
{
	struct h h;
	uint64_t expect = CFG.query_initial_ms;

	/* a recovered transaction, as after a participant crash with PREPARED durable */
	h_init_recovered(&h, T0, EPOCH);
	step(&h, ev_up());
	assert_only(&h, PACT_SEND_STATUS_QUERY);
	/* each round: the query is answered PENDING at once, the next one comes later */
	for (int i = 0; i < 8; i++) {
		step_at(&h, h.now + 1, ev_status(PENDING));
		assert_int_equal(h.t.state, PS_PREPARED);
		assert_vote(&h, 1); /* the coordinator accepts a repeated vote */
		assert_int_equal(count(&h, PACT_DISCARD) + count(&h, PACT_APPLY), 0);
		uint64_t at = part_txn_next_deadline(&h.t);
		assert_int_equal(at - h.now, expect);
		step_at(&h, at - 1, ev_tick());
		assert_int_equal(h.out.n, 0);
		step_at(&h, at, ev_tick());
		assert_only(&h, PACT_SEND_STATUS_QUERY);
		expect = expect * 2 > CFG.query_max_ms ? CFG.query_max_ms : expect * 2;
	}
	assert_int_equal(expect, CFG.query_max_ms);
}

static void test_status_answers_outside_prepared_are_ignored(void **state)
{
	struct h h;

	to_active(&h);
	for (int s = PENDING; s <= ABORTED; s++) {
		step(&h, ev_status(s));
		assert_int_equal(h.out.n, 0);
		assert_int_equal(h.t.state, PS_ACTIVE);
	}
	to_logging(&h);
	step(&h, ev_status(PENDING)); /* no YES before the record is durable */
	assert_int_equal(h.out.n, 0);
	step(&h, ev_status(COMMITTED));
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_LOGGING);
	to_applying(&h);
	step(&h, ev_status(ABORTED)); /* never undo a commit */
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_APPLYING);
}

static void test_prepared_txn_committed_by_status_applies_then_acks(void **state)
{
	struct h h;

	to_prepared(&h);
	step_at(&h, part_txn_next_deadline(&h.t), ev_tick());
	step(&h, ev_status(COMMITTED));
	assert_only(&h, PACT_APPLY);
	step(&h, ev_applied(0));
	assert_only(&h, PACT_SEND_ACK);
}

/* ---- recovery ----------------------------------------------------------------------- */

static void test_forgotten_status_stays_prepared_reports_once_and_keeps_asking(void **state)
{
	struct h h;

	to_prepared(&h);
	uint64_t at = part_txn_next_deadline(&h.t);
	step_at(&h, at, ev_tick());
	step(&h, ev_status(FORGOTTEN));
	assert_only(&h, PACT_REPORT_FORGOTTEN); /* never a vote, never a decision */
	assert_int_equal(h.t.state, PS_PREPARED);
	for (int i = 0; i < 6; i++) { /* keeps asking, backoff capped, reported only once */
		uint64_t next = part_txn_next_deadline(&h.t);
		assert_true(next > h.now && next - h.now <= CFG.query_max_ms);
		step_at(&h, next, ev_tick());
		assert_only(&h, PACT_SEND_STATUS_QUERY);
		step(&h, ev_status(FORGOTTEN));
		assert_int_equal(h.out.n, 0);
		assert_int_equal(h.t.state, PS_PREPARED);
	}
	step(&h, ev_status(COMMITTED)); /* an answer after all: it applies */
	assert_int_equal(h.t.state, PS_APPLYING);
}

static void test_recovered_txn_told_forgotten_stays_in_doubt(void **state)
{
	struct h h;

	h_init_recovered(&h, T0, EPOCH);
	step(&h, ev_up());
	step(&h, ev_status(FORGOTTEN));
	assert_only(&h, PACT_REPORT_FORGOTTEN);
	assert_int_equal(h.t.state, PS_PREPARED);
	assert_true(part_txn_next_deadline(&h.t) > h.now);
}

static void test_recovered_txn_is_prepared_and_asks_at_once(void **state)
{
	struct h h;

	h_init_recovered(&h, T0, EPOCH);
	assert_int_equal(h.t.state, PS_PREPARED);
	assert_int_equal(h.t.recovered, 1);
	assert_int_equal(h.t.prepared_wall_ms, T0 - 500);
	assert_int_equal(part_txn_next_deadline(&h.t), T0);
	step(&h, ev_up());
	assert_only(&h, PACT_SEND_STATUS_QUERY);
	assert_int_equal(h.t.state, PS_PREPARED);
	/* each reconnection asks again: a decision may have been lost with the connection */
	step(&h, ev_down());
	assert_int_equal(h.out.n, 0);
	step(&h, ev_up());
	assert_only(&h, PACT_SEND_STATUS_QUERY);
	assert_int_equal(h.t.queries, 2);
}

static void test_recovered_txn_status_committed_applies_then_acks(void **state)
{
	struct h h;

	h_init_recovered(&h, T0, EPOCH);
	step(&h, ev_up());
	step(&h, ev_status(COMMITTED));
	assert_int_equal(h.t.state, PS_APPLYING);
	assert_only(&h, PACT_APPLY);
	step(&h, ev_applied(0));
	assert_only(&h, PACT_SEND_ACK);
	assert_int_equal(h.t.state, PS_DONE);
}

static void test_recovered_txn_status_aborted_discards(void **state)
{
	struct h h;

	h_init_recovered(&h, T0, EPOCH);
	step(&h, ev_up());
	step(&h, ev_status(ABORTED));
	assert_int_equal(h.t.state, PS_DONE);
	assert_only(&h, PACT_DISCARD);
	assert_int_equal(h.applies + h.acks, 0);
}

static void test_recovered_txn_decision_commit_applies_again_idempotently(void **state)
{
	struct h h;

	/* crashed between the sink's apply and the record drop: the decision comes again */
	h_init_recovered(&h, T0, EPOCH);
	step(&h, ev_up());
	step(&h, ev_decision(1, EPOCH + 1)); /* from the restarted coordinator */
	assert_only(&h, PACT_APPLY);
	assert_int_equal(h.highest, EPOCH + 1);
	step(&h, ev_applied(0));
	assert_only(&h, PACT_SEND_ACK);
}

static void test_recovered_txn_answers_a_repeated_prepare_yes(void **state)
{
	struct h h;

	h_init_recovered(&h, T0, EPOCH);
	step(&h, ev_prepare(EPOCH, 0));
	assert_vote(&h, 1);
	assert_int_equal(h.t.state, PS_PREPARED);
}

static void test_recovered_txn_rejects_an_older_epoch(void **state)
{
	struct h h;

	h_init_recovered(&h, T0, EPOCH);
	step(&h, ev_decision(0, EPOCH - 1));
	assert_only(&h, PACT_REJECT_STALE);
	assert_int_equal(h.t.state, PS_PREPARED);
}

/* ---- the connection ----------------------------------------------------------------- */

static void test_conn_down_while_joining_fails_stages_as_closed(void **state)
{
	struct h h;

	h_init(&h, T0);
	step(&h, ev_stage());
	step(&h, ev_down());
	assert_int_equal(h.t.state, PS_DONE);
	assert_int_equal(h.out.n, 2);
	assert_int_equal(h.out.a[0].type, PACT_COMPLETE_STAGES);
	assert_int_equal(h.out.a[0].err, TPC_ECLOSED);
	assert_int_equal(h.out.a[1].type, PACT_DISCARD);
}

static void test_stage_while_disconnected_sends_the_join_once_connected(void **state)
{
	struct h h;

	h_init_disconnected(&h, T0);
	step(&h, ev_stage());
	step(&h, ev_down()); /* still no connection: the writes wait, nothing fails */
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_JOINING);
	step(&h, ev_up());
	assert_only(&h, PACT_SEND_JOIN);
	assert_int_equal(h.t.state, PS_JOINING);
	step(&h, ev_up()); /* a second CONN_UP does not send the Join twice */
	assert_int_equal(h.out.n, 0);
	step(&h, ev_join_ok());
	assert_only(&h, PACT_COMPLETE_STAGES);
	assert_int_equal(h.out.a[0].err, 0);
	assert_int_equal(h.t.state, PS_ACTIVE);
}

static void test_conn_down_after_the_delayed_join_went_out_fails_stages(void **state)
{
	struct h h;

	h_init_disconnected(&h, T0);
	step(&h, ev_up());
	assert_only(&h, PACT_SEND_JOIN);
	step(&h, ev_down());
	assert_int_equal(h.t.state, PS_DONE);
	assert_int_equal(find(&h, PACT_COMPLETE_STAGES)->err, TPC_ECLOSED);
	assert_int_equal(count(&h, PACT_DISCARD), 1);
}

static void test_join_waiting_for_a_connection_still_expires(void **state)
{
	struct h h;

	h_init_disconnected(&h, T0);
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + CFG.txn_timeout_ms);
	step_at(&h, T0 + CFG.txn_timeout_ms, ev_tick());
	assert_int_equal(h.t.state, PS_EXPIRED);
	assert_int_equal(find(&h, PACT_COMPLETE_STAGES)->err, TPC_EEXPIRED);
	assert_int_equal(h.out.a[1].type, PACT_DISCARD);
	/* the Join never went out: the coordinator cannot hold it, nothing to say NO to */
	assert_int_equal(count(&h, PACT_SEND_VOTE), 0);
	step(&h, ev_up());
	assert_only(&h, PACT_SEND_STATUS_QUERY); /* no Join, no vote: only asks */
	assert_int_equal(step(&h, ev_stage()), TPC_EEXPIRED);
}

static void test_conn_down_while_active_keeps_the_staged_writes(void **state)
{
	struct h h;

	to_active(&h);
	step(&h, ev_down());
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_ACTIVE);
	step(&h, ev_up());
	assert_int_equal(h.out.n, 0);
	step(&h, ev_prepare(EPOCH, 0));
	assert_only(&h, PACT_LOG_PREPARED);
}

static void test_conn_down_while_prepared_stays_prepared(void **state)
{
	struct h h;

	to_prepared(&h);
	step(&h, ev_down());
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_PREPARED);
	/* a long outage: it keeps asking on its timer, never decides alone */
	for (int i = 0; i < 50; i++) {
		step_at(&h, part_txn_next_deadline(&h.t), ev_tick());
		assert_only(&h, PACT_SEND_STATUS_QUERY);
		step(&h, ev_down());
		assert_int_equal(h.t.state, PS_PREPARED);
	}
	step(&h, ev_up());
	assert_only(&h, PACT_SEND_STATUS_QUERY);
	step(&h, ev_decision(1, EPOCH));
	assert_only(&h, PACT_APPLY);
}

static void test_conn_events_while_logging_or_applying_do_nothing(void **state)
{
	struct h h;

	to_logging(&h);
	step(&h, ev_down());
	step(&h, ev_up());
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_LOGGING);
	to_applying(&h);
	step(&h, ev_down());
	step(&h, ev_up());
	assert_int_equal(h.out.n, 0);
	assert_int_equal(h.t.state, PS_APPLYING);
}

/* ---- deadlines and odds and ends ---------------------------------------------------- */

static void test_next_deadline_per_state(void **state)
{
	struct h h;

	h_init(&h, T0);
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + CFG.txn_timeout_ms); /* JOINING */
	step(&h, ev_join_ok());
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + CFG.txn_timeout_ms); /* ACTIVE */
	step_at(&h, T0 + 10, ev_prepare(EPOCH, 0));
	assert_int_equal(part_txn_next_deadline(&h.t), 0); /* LOGGING: the log always answers */
	step_at(&h, T0 + 20, ev_logged(0));
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + 20 + CFG.query_initial_ms);
	step_at(&h, T0 + 30, ev_decision(1, EPOCH));
	assert_int_equal(part_txn_next_deadline(&h.t), 0); /* APPLYING, apply out */
	step_at(&h, T0 + 40, ev_applied(-EIO));
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + 40 + CFG.apply_retry_ms);
	step_at(&h, T0 + 40 + CFG.apply_retry_ms, ev_tick());
	assert_int_equal(part_txn_next_deadline(&h.t), 0);
	step(&h, ev_applied(0));
	assert_int_equal(part_txn_next_deadline(&h.t), 0); /* DONE */

	h_init_recovered(&h, T0 + 7, EPOCH);
	assert_int_equal(part_txn_next_deadline(&h.t), T0 + 7); /* recovered: at once */
}

static void test_unknown_event_is_a_protocol_error(void **state)
{
	struct h h;
	struct part_event ev = { .type = (enum part_ev_type)99 };

	to_active(&h);
	memset(&h.out, 0, sizeof(h.out));
	struct part_txn before = h.t;
	assert_int_equal(part_txn_step(&h.t, &h.cfg, &ev, h.now, &h.highest, &h.out), TPC_EPROTO);
	assert_int_equal(h.out.n, 0);
	assert_memory_equal(&before, &h.t, sizeof(before));
}

static void test_state_names(void **state)
{
	assert_string_equal(part_state_str(PS_JOINING), "JOINING");
	assert_string_equal(part_state_str(PS_ACTIVE), "ACTIVE");
	assert_string_equal(part_state_str(PS_LOGGING), "LOGGING");
	assert_string_equal(part_state_str(PS_PREPARED), "PREPARED");
	assert_string_equal(part_state_str(PS_APPLYING), "APPLYING");
	assert_string_equal(part_state_str(PS_EXPIRED), "EXPIRED");
	assert_string_equal(part_state_str(PS_DONE), "DONE");
	assert_string_equal(part_state_str(PS_NSTATES), "?");
}

/* ---- the seeded random driver ------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	/* splitmix64: good enough, and the same everywhere */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned pick(uint64_t *s, unsigned n)
{
	return (unsigned)(rnd(s) % n);
}

static uint64_t random_epoch(uint64_t *s, uint64_t highest)
{
	switch (pick(s, 6)) {
	case 0: return highest ? highest - 1 : 0;  /* stale (or 0) */
	case 1: return highest + 1 + pick(s, 2);  /* a restarted coordinator */
	case 2: return pick(s, 2) ? highest + CFG.max_epoch_jump + 1 /* just too far */
				  : (uint64_t)1 << 62;  /* a fake coordinator's */
	default: return highest;
	}
}

/*
 * One random event, as a caller keeping its contract would feed it: PEV_LOGGED only
 * answers a PACT_LOG_PREPARED, PEV_APPLIED only a PACT_APPLY. Coordinator messages and
 * time are arbitrary (duplicated, reordered, stale, absurd).
 */
static void random_event(struct h *h, uint64_t *s)
{
	struct part_event ev = { 0 };

	for (;;) {
		switch (pick(s, 13)) {
		case 0:
			ev.type = PEV_STAGE;
			ev.token = pick(s, 4) ? NULL : TOKEN_A; /* not the txn's: refused */
			break;
		case 1: ev.type = PEV_JOIN_OK; break;
		case 2:
			ev.type = PEV_JOIN_FAILED;
			ev.err = pick(s, 2) ? TPC_ENOTFOUND : 0;
			break;
		case 3:
			ev.type = PEV_PREPARE;
			ev.epoch = random_epoch(s, h->highest);
			ev.sink_ok = pick(s, 4) ? 0 : TPC_EREFUSED;
			break;
		case 4:
			if (!h->log_outstanding)
				continue;
			ev.type = PEV_LOGGED;
			ev.status = pick(s, 4) ? 0 : -EIO;
			break;
		case 5:
			ev.type = PEV_DECISION;
			ev.commit = (int)pick(s, 2);
			ev.epoch = random_epoch(s, h->highest);
			break;
		case 6:
			if (!h->apply_outstanding)
				continue;
			ev.type = PEV_APPLIED;
			ev.status = pick(s, 3) ? 0 : -EIO;
			break;
		case 7:
			ev.type = PEV_STATUS;
			ev.status = (int)pick(s, 4);
			break;
		case 11: {
			static const int errs[] = { TPC_ENOTFOUND, TPC_ENOTACTIVE, TPC_ENOTPART,
						    TPC_EINCARNATION, TPC_EUNAVAIL, TPC_ELIMIT };
			ev.type = PEV_REFUSED;
			ev.err = errs[pick(s, 6)];
			break;
		}
		case 8: ev.type = PEV_CONN_UP; break;
		case 9: ev.type = PEV_CONN_DOWN; break;
		case 10: { /* a tick exactly when asked for */
			uint64_t at = part_txn_next_deadline(&h->t);
			if (at > h->now)
				h->now = at;
			ev.type = PEV_TICK;
			break;
		}
		default: /* time passes, sometimes a lot */
			h->now += pick(s, 4) ? pick(s, 200) : pick(s, 3 * CFG.txn_timeout_ms);
			ev.type = PEV_TICK;
			break;
		}
		break;
	}
	step(h, ev);
}

static uint64_t test_seed(void)
{
	const char *env = getenv("TPC_TEST_SEED");
	uint64_t seed = env && *env ? strtoull(env, NULL, 0) : 0x7c0ffee5eedull;
	return seed ? seed : 1; /* 0 marks a directed test in failure messages */
}

static void test_random_event_sequences_keep_d2_d3_and_never_decide_alone(void **state)
{
	const uint64_t seed = test_seed();
	const unsigned nseq = 20000;
	unsigned reached[PS_NSTATES] = { 0 }, acked = 0, voted_yes = 0, discarded_prepared = 0;
	unsigned long steps = 0;

	for (unsigned seq = 0; seq < nseq; seq++) {
		struct h h;
		uint64_t s = seed ^ (0x100000001b3ull * (seq + 1));
		uint64_t start = 1 + pick(&s, 100000);
		uint64_t highest = pick(&s, 4);
		unsigned seen = 0;

		switch (pick(&s, 4)) {
		case 0: h_init_recovered(&h, start, highest); break;
		case 1: h_init_disconnected(&h, start); h.highest = highest; break;
		default: h_init(&h, start); h.highest = highest; break;
		}
		h.seed = seed;
		h.seq = seq;
		for (unsigned i = 0; i < 60; i++) {
			enum part_state from = (enum part_state)h.t.state;
			random_event(&h, &s);
			seen |= 1u << h.t.state;
			if (from == PS_PREPARED && h.t.state == PS_DONE)
				discarded_prepared++;
			if (h.t.state == PS_DONE && pick(&s, 8) == 0)
				break; /* the caller frees it; sometimes keep poking the corpse */
		}
		/* whole-history rules */
		CHECK(&h, h.acks <= 1 && h.acks <= h.applies);
		CHECK(&h, !(h.acks && h.discards));
		CHECK(&h, !(h.yes_votes && h.no_votes));
		CHECK(&h, h.log_prepared <= 1);
		CHECK(&h, !h.yes_votes || h.logged_ok || h.t.recovered);
		CHECK(&h, !h.acks || h.ever_prepared);
		CHECK(&h, h.discards <= 1);
		for (int st = 0; st < PS_NSTATES; st++)
			reached[st] += (seen >> st) & 1;
		acked += h.acks;
		steps += h.nstep;
		voted_yes += h.yes_votes > 0;
	}
	print_message("seed %llu: %u sequences, %lu steps; %u voted YES, %u acked, %u prepared "
		      "then aborted\n", (unsigned long long)seed, nseq, steps, voted_yes, acked,
		      discarded_prepared);
	/* the driver really explored: every state, both endings of a prepared transaction */
	for (int st = 0; st < PS_NSTATES; st++)
		assert_true(reached[st] > nseq / 100);
	assert_true(acked > nseq / 100);
	assert_true(voted_yes > nseq / 100);
	assert_true(discarded_prepared > nseq / 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_happy_path_stages_prepares_votes_yes_applies_and_acks),
		cmocka_unit_test(test_join_ok_completes_every_waiting_stage_with_success),
		cmocka_unit_test(test_second_join_reply_is_ignored),
		cmocka_unit_test(test_stage_is_refused_once_prepare_has_started),
		cmocka_unit_test(test_stage_is_refused_on_a_recovered_transaction),
		cmocka_unit_test(test_join_failure_completes_stages_with_its_error_and_discards),
		cmocka_unit_test(test_join_failure_without_a_code_reports_not_active),
		cmocka_unit_test(test_sink_refusal_at_prepare_votes_no_and_discards),
		cmocka_unit_test(test_sink_refusal_votes_no_with_the_sink_reason),
		cmocka_unit_test(test_prepare_before_the_join_reply_votes_no_and_fails_stages),
		cmocka_unit_test(test_repeated_prepare_while_logging_waits_for_the_log),
		cmocka_unit_test(test_repeated_prepare_while_prepared_votes_yes_again),
		cmocka_unit_test(test_repeated_prepare_while_applying_sends_nothing),
		cmocka_unit_test(test_log_failure_votes_no_never_yes),
		cmocka_unit_test(test_log_failure_with_a_tpc_code_votes_no),
		cmocka_unit_test(test_log_completion_outside_logging_is_ignored),
		cmocka_unit_test(test_abort_while_active_discards_so_a_late_prepare_finds_nothing),
		cmocka_unit_test(test_abort_while_joining_fails_stages_and_discards),
		cmocka_unit_test(test_abort_while_logging_discards_and_ignores_the_late_log_result),
		cmocka_unit_test(test_abort_while_prepared_discards),
		cmocka_unit_test(test_abort_after_commit_started_does_not_undo_it),
		cmocka_unit_test(test_decision_after_done_is_ignored),
		cmocka_unit_test(test_duplicate_commit_applies_once),
		cmocka_unit_test(test_commit_before_prepared_is_ignored),
		cmocka_unit_test(test_apply_failure_withholds_the_ack_and_retries_on_a_later_tick),
		cmocka_unit_test(test_apply_failing_repeatedly_never_acks_until_it_succeeds),
		cmocka_unit_test(test_apply_result_outside_applying_is_ignored),
		cmocka_unit_test(test_stale_prepare_is_rejected_without_state_change),
		cmocka_unit_test(test_stale_decision_is_rejected_without_state_change),
		cmocka_unit_test(test_newer_epoch_raises_the_highest_seen),
		cmocka_unit_test(test_newer_epoch_on_an_ignored_message_still_raises_the_highest),
		cmocka_unit_test(test_epoch_jump_past_the_bound_is_refused_and_not_remembered),
		cmocka_unit_test(test_epoch_check_takes_a_first_epoch_and_bounds_the_rest),
		cmocka_unit_test(test_begin_keeps_the_token_and_sends_the_join_once),
		cmocka_unit_test(test_write_with_another_token_is_refused_and_changes_nothing),
		cmocka_unit_test(test_write_with_a_token_to_a_txn_joined_without_is_refused),
		cmocka_unit_test(test_staged_writes_expire_when_active_past_the_txn_timeout),
		cmocka_unit_test(test_more_writes_do_not_extend_the_expiry),
		cmocka_unit_test(test_expiry_while_joining_fails_stages_with_eexpired_and_votes_no),
		cmocka_unit_test(test_stage_after_expiry_fails_with_eexpired_and_never_joins_again),
		cmocka_unit_test(test_prepare_after_expiry_votes_no_and_keeps_the_tombstone),
		cmocka_unit_test(test_reconnect_after_expiry_resends_no_and_asks),
		cmocka_unit_test(test_abort_ends_the_tombstone_and_a_commit_does_not),
		cmocka_unit_test(test_tombstone_asks_and_ends_on_any_final_status),
		cmocka_unit_test(test_refused_vote_ends_the_tombstone_only_when_the_txn_is_gone),
		cmocka_unit_test(test_tombstone_is_dropped_after_tombstone_ms_at_worst),
		cmocka_unit_test(test_join_reply_after_expiry_is_ignored),
		cmocka_unit_test(test_forgotten_status_stays_prepared_reports_once_and_keeps_asking),
		cmocka_unit_test(test_recovered_txn_told_forgotten_stays_in_doubt),
		cmocka_unit_test(test_logging_and_prepared_never_expire),
		cmocka_unit_test(test_prepared_txn_queries_status_after_query_initial_ms),
		cmocka_unit_test(test_unanswered_queries_back_off_doubling_to_the_cap),
		cmocka_unit_test(test_pending_status_votes_yes_again_and_backs_off_doubling_to_the_cap),
		cmocka_unit_test(test_status_answers_outside_prepared_are_ignored),
		cmocka_unit_test(test_prepared_txn_committed_by_status_applies_then_acks),
		cmocka_unit_test(test_recovered_txn_is_prepared_and_asks_at_once),
		cmocka_unit_test(test_recovered_txn_status_committed_applies_then_acks),
		cmocka_unit_test(test_recovered_txn_status_aborted_discards),
		cmocka_unit_test(test_recovered_txn_decision_commit_applies_again_idempotently),
		cmocka_unit_test(test_recovered_txn_answers_a_repeated_prepare_yes),
		cmocka_unit_test(test_recovered_txn_rejects_an_older_epoch),
		cmocka_unit_test(test_conn_down_while_joining_fails_stages_as_closed),
		cmocka_unit_test(test_stage_while_disconnected_sends_the_join_once_connected),
		cmocka_unit_test(test_conn_down_after_the_delayed_join_went_out_fails_stages),
		cmocka_unit_test(test_join_waiting_for_a_connection_still_expires),
		cmocka_unit_test(test_conn_down_while_active_keeps_the_staged_writes),
		cmocka_unit_test(test_conn_down_while_prepared_stays_prepared),
		cmocka_unit_test(test_conn_events_while_logging_or_applying_do_nothing),
		cmocka_unit_test(test_next_deadline_per_state),
		cmocka_unit_test(test_unknown_event_is_a_protocol_error),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_random_event_sequences_keep_d2_d3_and_never_decide_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
