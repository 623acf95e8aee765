/*
 * fuzz_part_txn.c - libFuzzer harness for the participant stub's pure transaction
 * machine (participant/src/part_txn.c): event sequences decoded from the input, with
 * the stub's part (the PREPARED log write, the sink apply) modelled here: PEV_LOGGED
 * comes only for a PREPARED write in flight, PEV_APPLIED only for an apply in flight.
 *
 * Checked on every action the machine emits:
 *   - D2: a YES vote only once the PREPARED record is durable (PEV_LOGGED ok, or the
 *     transaction was recovered from the log);
 *   - no apply without a COMMIT (a Decision(COMMIT) of a current epoch, or a status
 *     answer COMMITTED), and only of a prepared transaction;
 *   - D3: an Ack only after an apply finished (PEV_APPLIED ok);
 *   - never both applied and discarded;
 *   - D7: a Prepare or Decision of an epoch older than the highest seen changes nothing
 *     (no vote, apply or discard) and the highest epoch never goes down.
 * The machine itself aborts on an illegal transition or too many actions.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"
#include "part_txn.h"
#include "tpc/common.h"

struct model {
	int durable;         /* the PREPARED record is durable */
	uint32_t logs;       /* PREPARED writes in flight */
	uint32_t applies;    /* sink applies in flight */
	int commit_seen;     /* a COMMIT reached the machine (current epoch) */
	int applied;         /* an apply finished ok */
	int apply_started, discarded;
	int stale;           /* this step's message is of an older epoch */
};

static void check_action(const struct part_txn *t, struct model *m, const struct part_action *a)
{
	switch (a->type) {
	case PACT_SEND_VOTE:
		FZ_CHECK(!m->stale, "voted on a stale Prepare");
		FZ_CHECK(!a->vote || m->durable, "D2: YES before the PREPARED record is durable");
		break;
	case PACT_LOG_PREPARED: m->logs++; break;
	case PACT_APPLY:
		FZ_CHECK(!m->stale, "applied a stale Decision");
		FZ_CHECK(m->commit_seen, "apply without a COMMIT");
		FZ_CHECK(m->durable, "apply of a transaction that never was prepared");
		FZ_CHECK(!m->discarded, "apply after discard");
		m->applies++;
		m->apply_started = 1;
		break;
	case PACT_SEND_ACK:
		FZ_CHECK(m->applied, "D3: Ack before the apply finished");
		break;
	case PACT_DISCARD:
		FZ_CHECK(!m->stale, "discarded on a stale Decision");
		FZ_CHECK(!m->apply_started, "discard after the apply started");
		m->discarded = 1;
		break;
	default: break;
	}
	(void)t;
}

static int completion(struct fz *f, uint32_t *in_flight, struct part_event *ev,
		      enum part_ev_type type)
{
	if (!*in_flight)
		return 0;
	(*in_flight)--;
	ev->type = type;
	ev->status = fz_pick(f, 3) ? 0 : -EIO;
	return 1;
}

/* Decode one event; 0 when the chosen one cannot happen now (skipped). */
static int next_event(struct fz *f, struct model *m, struct part_event *ev)
{
	static const int errs[] = { TPC_ENOTFOUND, TPC_ENOTACTIVE, TPC_ENOTPART, TPC_ECLOSED };

	memset(ev, 0, sizeof(*ev));
	ev->epoch = 1 + fz_pick(f, 3);
	switch (fz_pick(f, 12)) {
	case 0: ev->type = PEV_STAGE; return 1;
	case 1: ev->type = PEV_JOIN_OK; return 1;
	case 2: ev->type = PEV_JOIN_FAILED; ev->err = errs[fz_pick(f, 4)]; return 1;
	case 3: ev->type = PEV_PREPARE; ev->sink_ok = fz_pick(f, 4) ? 0 : -EIO; return 1;
	case 4: return completion(f, &m->logs, ev, PEV_LOGGED);
	case 5: ev->type = PEV_DECISION; ev->commit = (int)fz_pick(f, 2); return 1;
	case 6: return completion(f, &m->applies, ev, PEV_APPLIED);
	case 7: ev->type = PEV_STATUS; ev->status = (int)fz_pick(f, 4); return 1;
	case 8: ev->type = PEV_REFUSED; ev->err = errs[fz_pick(f, 4)]; return 1;
	case 9: ev->type = PEV_TICK; return 1;
	case 10: ev->type = PEV_CONN_UP; return 1;
	default: ev->type = PEV_CONN_DOWN; return 1;
	}
}

/* What the model learns from the event before the machine sees it. */
static void before_step(struct model *m, const struct part_event *ev, uint64_t highest)
{
	m->stale = (ev->type == PEV_PREPARE || ev->type == PEV_DECISION) && ev->epoch < highest;
	if (ev->type == PEV_LOGGED && ev->status == 0)
		m->durable = 1;
	if (ev->type == PEV_APPLIED && ev->status == 0)
		m->applied = 1;
	if ((ev->type == PEV_DECISION && ev->commit && !m->stale) ||
	    (ev->type == PEV_STATUS && ev->status == PART_STATUS_COMMITTED))
		m->commit_seen = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct part_txn_config cfg = {
		.txn_timeout_ms = 1 + fz_pick(&f, 100) * 10, .query_initial_ms = 10,
		.query_max_ms = 200, .apply_retry_ms = 20, .tombstone_ms = 500,
	};
	struct model m = { 0 };
	struct part_txn t;
	struct part_actions out;
	uint64_t now = 1000, highest = fz_pick(&f, 3);

	if (fz_pick(&f, 8) == 0) {
		part_txn_init_recovered(&t, 7, now, 123);
		m.durable = 1;
	} else {
		part_txn_init(&t, 7, now, &cfg);
	}
	for (int steps = 0; fz_more(&f) && t.state != PS_DONE && steps < 4096; steps++) {
		struct part_event ev;
		uint64_t was = highest;
		now += fz_u8(&f) * (uint64_t)fz_pick(&f, 4);
		if (!next_event(&f, &m, &ev))
			continue;
		before_step(&m, &ev, highest);
		out.n = 0;
		part_txn_step(&t, &cfg, &ev, now, &highest, &out);
		FZ_CHECK(highest >= was, "highest epoch went down: %llu -> %llu",
			 (unsigned long long)was, (unsigned long long)highest);
		for (size_t i = 0; i < out.n; i++)
			check_action(&t, &m, &out.a[i]);
	}
	return 0;
}
