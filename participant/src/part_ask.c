/*
 * part_ask.c - tpc_participant_query_status(): ask the coordinator, on the participant's
 * own connection, how a txid the participant holds no record of ended (a resource
 * manager's orphan: the PostgreSQL participant's scanner, pg_scan.c). Asked as a
 * participant, the coordinator answers ABORTED rather than FORGOTTEN below its forget
 * horizon (presumed abort holds for participants, D4/D5).
 *
 * The asking thread registers a struct part_ask in p->asks on the loop thread and sends
 * the StatusQuery there; part_net.c hands a StatusReply for a txid with no transaction
 * here to part_ask_reply(), which fills the ask and wakes the asker. The asker removes
 * its ask on the loop thread before returning, answered or not, so a late reply never
 * touches it.
 *
 * tpc_participant_report_orphans(): the orphans it could not resolve, sent to the
 * coordinator (OrphanReport) on the loop thread; no answer.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "part_int.h"
#include "wire.h"
#include "tpc.pb-c.h"

struct part_ask {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	tpc_txid txid;
	int answered;
	tpc_status status;
	int rc;
};

static void ask_start(struct tpc_participant *p, void *arg)
{
	struct part_ask *a = arg;

	if (!p->connected)
		a->rc = TPC_ECLOSED;
	else if (u64map_get(&p->asks, a->txid))
		a->rc = -EBUSY;
	else if (u64map_put(&p->asks, a->txid, a))
		a->rc = -ENOMEM;
	else {
		part_send_status_query(p, a->txid);
		p->stats.status_queries++;
	}
}

static void ask_end(struct tpc_participant *p, void *arg)
{
	struct part_ask *a = arg;

	if (u64map_get(&p->asks, a->txid) == a)
		u64map_del(&p->asks, a->txid);
}

int part_ask_reply(struct tpc_participant *p, uint64_t txid, int status)
{
	struct part_ask *a = u64map_del(&p->asks, txid);

	if (!a)
		return 0;
	pthread_mutex_lock(&a->mu);
	switch (status) {
	case TPC__TXN_STATUS__STATUS_COMMITTED: a->status = TPC_STATUS_COMMITTED; break;
	case TPC__TXN_STATUS__STATUS_ABORTED: a->status = TPC_STATUS_ABORTED; break;
	case TPC__TXN_STATUS__STATUS_FORGOTTEN: a->status = TPC_STATUS_FORGOTTEN; break;
	default: a->status = TPC_STATUS_PENDING; break;
	}
	a->answered = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return 1;
}

void part_deadline(struct timespec *until, uint32_t ms)
{
	clock_gettime(CLOCK_REALTIME, until);
	until->tv_sec += ms / 1000;
	until->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until->tv_nsec >= 1000000000L) {
		until->tv_sec++;
		until->tv_nsec -= 1000000000L;
	}
}

static void wait_answer(struct part_ask *a, uint32_t timeout_ms)
{
	struct timespec until;

	part_deadline(&until, timeout_ms);
	pthread_mutex_lock(&a->mu);
	while (!a->answered && pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&a->mu);
}

int tpc_participant_query_status(tpc_participant *p, tpc_txid txid, uint32_t timeout_ms,
				 tpc_status *status)
{
	struct part_ask a = { .txid = txid };
	int rc;

	if (!p->own_base || !p->thread_running || !txid)
		return !txid ? -EINVAL : TPC_ESTATE;
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	rc = part_run_on_loop(p, ask_start, &a);
	if (!rc)
		rc = a.rc;
	if (!rc)
		wait_answer(&a, timeout_ms ? timeout_ms : 5000);
	if (!rc && part_run_on_loop(p, ask_end, &a) == 0 && !a.answered)
		rc = -ETIMEDOUT;
	if (!rc)
		*status = a.status;
	pthread_cond_destroy(&a.cv);
	pthread_mutex_destroy(&a.mu);
	return rc;
}

struct orphan_send {
	const tpc_orphan *v;
	size_t n;
	int rc;
};

static void orphans_send(struct tpc_participant *p, void *arg)
{
	struct orphan_send *o = arg;
	Tpc__Orphan items[TPC_WIRE_MAX_ORPHANS], *ptrs[TPC_WIRE_MAX_ORPHANS];
	Tpc__OrphanReport rep = TPC__ORPHAN_REPORT__INIT;
	size_t n = o->n < TPC_WIRE_MAX_ORPHANS ? o->n : TPC_WIRE_MAX_ORPHANS;

	if (!p->connected) {
		o->rc = TPC_ECLOSED;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		tpc__orphan__init(&items[i]);
		items[i].txid = o->v[i].txid;
		items[i].gid = (char *)(o->v[i].gid ? o->v[i].gid : "");
		items[i].age_ms = o->v[i].age_ms;
		items[i].locks = o->v[i].locks;
		items[i].reason = (char *)(o->v[i].reason ? o->v[i].reason : "");
		ptrs[i] = &items[i];
	}
	rep.n_orphans = n;
	rep.orphans = ptrs;
	part_send_orphan_report(p, &rep);
}

int tpc_participant_report_orphans(tpc_participant *p, const tpc_orphan *v, size_t n)
{
	struct orphan_send o = { v, n, 0 };

	if (!p->own_base || !p->thread_running)
		return TPC_ESTATE;
	int rc = part_run_on_loop(p, orphans_send, &o);
	return rc ? rc : o.rc;
}
