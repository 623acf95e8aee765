/*
 * fuzz_coord_txn.c - libFuzzer harness for the coordinator's pure transaction machine
 * (coordinator/txn.c): event sequences decoded from the input, with the server's part
 * (the log, the DROP record) modelled here as faithfully as the machine expects it.
 *
 * The model: ACT_LOG_COMMIT starts a write; EV_LOGGED comes only for a write in flight
 * (ok, failed with -EIO: maybe durable, or refused with -EINVAL: nothing written).
 * A forced operator abort of COMMITTING deletes the record: EV_DROPPED comes only then.
 *
 * Checked on every action the machine emits:
 *   - D1: Decision(COMMIT) and a client's COMMITTED only once a COMMIT record is durable
 *     (an EV_LOGGED ok was delivered, or the transaction was recovered from the log);
 *     the one exception is by design: with no YES voter (no participant, or only
 *     read-only ones) and no key there is nothing to make durable, and COMMITTED is told;
 *   - Decision(COMMIT) only to a participant that voted YES;
 *   - ABORTED or Decision(ABORT) to a YES voter never while a COMMIT record may be on
 *     disk (unless an operator's DROP of it completed);
 *   - D4: ACT_LOG_COMPLETE only once every YES voter acked;
 *   - a client never hears both COMMITTED and ABORTED;
 *   - ACT_FORGET leaves the transaction DONE, and nothing is stepped after it.
 * The machine itself aborts on an illegal transition or too many actions.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"
#include "txn.h"

#define NPEERS 4

struct model {
	int durable;         /* a COMMIT record is known durable */
	int maybe_on_disk;   /* a COMMIT record may be on disk (written, in flight, failed) */
	uint32_t in_flight;  /* COMMIT writes not yet answered by EV_LOGGED */
	int drop_in_flight;  /* the operator's DROP record is being written */
	int told_committed, told_aborted;
	int forgotten;
};

static int any_yes(const struct coord_txn *t)
{
	for (uint8_t i = 0; i < t->nparts; i++)
		if (t->parts[i].state == PART_YES || t->parts[i].state == PART_ACKED)
			return 1;
	return 0;
}

static void check_action(struct coord_txn *t, struct model *m, const struct coord_action *a)
{
	struct coord_txn_part *p;

	switch (a->type) {
	case ACT_SEND_DECISION:
		p = coord_txn_find_part(t, a->peer);
		FZ_CHECK(p, "decision to peer %u that is not a participant", a->peer);
		if (a->decision == DECIDE_COMMIT) {
			FZ_CHECK(m->durable, "D1: Decision(COMMIT) to %u before the record is "
				 "durable", a->peer);
			FZ_CHECK(p->state == PART_YES || p->state == PART_ACKED,
				 "Decision(COMMIT) to %u, which did not vote YES", a->peer);
		} else if (p->state == PART_YES || p->state == PART_ACKED) {
			FZ_CHECK(!m->maybe_on_disk, "Decision(ABORT) to YES voter %u while a COMMIT "
				 "record may be on disk", a->peer);
		}
		break;
	case ACT_REPLY_OUTCOME:
		if (a->outcome == OUTCOME_COMMITTED) {
			FZ_CHECK(m->durable || (!any_yes(t) && !t->key),
				 "D1: COMMITTED before the record is durable");
			m->told_committed = 1;
		} else if (a->outcome == OUTCOME_ABORTED) {
			FZ_CHECK(!m->maybe_on_disk, "ABORTED while a COMMIT record may be on disk");
			m->told_aborted = 1;
		}
		FZ_CHECK(!(m->told_committed && m->told_aborted), "told COMMITTED and ABORTED");
		break;
	case ACT_LOG_COMMIT:
		m->in_flight++;
		m->maybe_on_disk = 1;
		break;
	case ACT_LOG_COMPLETE:
		for (uint8_t i = 0; i < t->nparts; i++)
			FZ_CHECK(t->parts[i].state != PART_YES, "D4: completed with %u unacked",
				 t->parts[i].peer);
		break;
	case ACT_FORGET:
		FZ_CHECK(t->state == TXN_DONE, "forgotten in state %s",
			 coord_txn_state_str(t->state));
		m->forgotten = 1;
		break;
	default: break;
	}
}

/* The server's answer to its COMMIT write; NULL-event (returns 0) when none is due. */
static int logged_event(struct fz *f, struct model *m, struct coord_event *ev)
{
	static const int results[] = { 0, 0, -EIO, -EINVAL };

	if (!m->in_flight)
		return 0;
	m->in_flight--;
	ev->type = EV_LOGGED;
	ev->status = results[fz_pick(f, 4)];
	if (ev->status == 0)
		m->durable = 1;
	else if (ev->status == -EINVAL && !m->in_flight && !m->durable)
		m->maybe_on_disk = 0; /* refused before anything was written */
	return 1;
}

static int dropped_event(struct fz *f, struct model *m, struct coord_event *ev)
{
	if (!m->drop_in_flight)
		return 0;
	m->drop_in_flight = 0;
	ev->type = EV_DROPPED;
	ev->status = fz_pick(f, 2) ? 0 : -EIO;
	if (ev->status == 0)
		m->durable = m->maybe_on_disk = 0; /* the COMMIT record is deleted */
	return 1;
}

/* Decode one event; 0 when the chosen event cannot happen now (skipped). */
static int next_event(struct fz *f, struct model *m, struct coord_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->peer = 1 + fz_pick(f, NPEERS);
	ev->inc = 1 + fz_pick(f, 2);
	ev->conn = 1 + fz_pick(f, 3);
	ev->req = fz_u8(f);
	ev->rand = fz_u8(f) * 16777619u;
	switch (fz_pick(f, 14)) {
	case 0: ev->type = EV_JOIN; return 1;
	case 1: ev->type = EV_COMMIT; return 1;
	case 2: ev->type = EV_ABORT; return 1;
	case 3: ev->type = EV_VOTE; ev->vote = (int)fz_pick(f, 3); return 1;
	case 4: return logged_event(f, m, ev);
	case 5: ev->type = EV_ACK; return 1;
	case 6: ev->type = EV_TICK; return 1;
	case 7: ev->type = EV_PEER_UP; return 1;
	case 8: ev->type = EV_PEER_DOWN; return 1;
	case 9: ev->type = EV_CLIENT_GONE; return 1;
	case 10: ev->type = EV_FENCE; return 1;
	case 11:
		ev->type = EV_OPERATOR;
		ev->decision = (int)fz_pick(f, 2);
		ev->force = (int)fz_pick(f, 2);
		return 1;
	case 12: return dropped_event(f, m, ev);
	default: ev->type = EV_PEER_RESTARTED; ev->inc = 2 + fz_pick(f, 2); return 1;
	}
}

static void init_txn(struct fz *f, struct coord_txn *t, struct model *m, uint64_t now)
{
	if (fz_pick(f, 8) == 0) { /* a decision recovered from the log */
		uint32_t n = 1 + fz_pick(f, NPEERS);
		coord_txn_init_recovered(t, 7, now);
		for (uint32_t i = 1; i <= n; i++)
			coord_txn_add_part(t, i, PART_YES, 0);
		m->durable = m->maybe_on_disk = 1;
		return;
	}
	coord_txn_init(t, 7, 1, now, 1 + fz_pick(f, 200) * 10);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct coord_txn_config cfg = {
		.prepare_timeout_ms = 1 + fz_pick(&f, 100) * 10, .retry_initial_ms = 10,
		.retry_max_ms = 200, .log_retry_ms = 20, .jitter_pct = fz_pick(&f, 50),
		.max_parts = 1 + fz_pick(&f, NPEERS),
	};
	struct model m = { 0 };
	struct coord_txn t;
	static struct coord_actions out;
	uint64_t now = 1000;
	int trace = getenv("FUZZ_TRACE") != NULL; /* print each step (reproducing a crash) */

	init_txn(&f, &t, &m, now);
	for (int steps = 0; fz_more(&f) && !m.forgotten && steps < 4096; steps++) {
		struct coord_event ev;
		now += fz_u8(&f) * (uint64_t)fz_pick(&f, 4);
		if (!next_event(&f, &m, &ev))
			continue;
		uint8_t before = t.dropping;
		out.n = 0;
		int rc = coord_txn_step(&t, &cfg, &ev, now, &out);
		if (trace)
			fprintf(stderr, "t=%llu ev=%d peer=%u vote=%d status=%d dec=%d force=%d "
				"-> rc=%d state=%s, %zu actions:", (unsigned long long)now, ev.type,
				ev.peer, ev.vote, ev.status, ev.decision, ev.force, rc,
				coord_txn_state_str(t.state), out.n);
		for (size_t i = 0; trace && i < out.n; i++)
			fprintf(stderr, " [type %d peer %u dec %d outcome %d]", out.a[i].type,
				out.a[i].peer, out.a[i].decision, out.a[i].outcome);
		if (trace)
			fputc('\n', stderr);
		if (before == DROP_NONE && t.dropping == DROP_WRITING)
			m.drop_in_flight = 1; /* the server writes the DROP record now */
		for (size_t i = 0; i < out.n; i++)
			check_action(&t, &m, &out.a[i]);
	}
	coord_txn_release(&t);
	return 0;
}
