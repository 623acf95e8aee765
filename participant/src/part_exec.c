/*
 * part_exec.c - carrying out what the participant's state machine returns: frames to
 * the coordinator, PREPARED records and sink applies to the log writer, stage
 * callbacks, timers; and the log writer's batch function itself.
 *
 * D2: PACT_SEND_VOTE(YES) comes only from PEV_LOGGED ok, which part_writer_done()
 * feeds only after part_log_write() committed (synced) the batch holding the record.
 * D3: PACT_SEND_ACK comes only from PEV_APPLIED ok, fed only after the sink's commit()
 * returned 0 for that txid.
 * D8: a vote names the incarnation that joined (t->incarnation: ours for a live
 * transaction, the PREPARED record's for one recovered from the log).
 * D9: once the drop of an applied transaction's PREPARED record is durable, the sink
 * is told to forget the txid (a repeated COMMIT is acked without reaching it).
 * Sink calls keep tpc/sink.h's threading contract: prepare() (part_sink_prepare),
 * abort() (discard) and committing() (PACT_APPLY) run on the loop thread, commit() and forget() only in
 * part_sink_writer_write() on the sink writer. The per-txid rules come from the
 * machine: PACT_APPLY only after the sink's prepare() returned 0 (ACTIVE -> LOGGING),
 * PACT_DISCARD never once APPLYING, and a forget only after the durable drop that
 * follows PEV_APPLIED ok.
 */
#include "part_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "sink_int.h"

static void queue_drop(struct tpc_participant *p, uint64_t txid, int forget_after);
static struct part_rec *take_forgets(struct tpc_participant *p);

struct ptxn *part_txn_new(struct tpc_participant *p, uint64_t txid)
{
	struct ptxn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	part_txn_init(&t->m, txid, tpc_now_ms(), &p->tcfg);
	t->incarnation = p->incarnation;
	if (u64map_put(&p->txns, txid, t)) {
		free(t);
		return NULL;
	}
	return t;
}

static void complete_stages(struct ptxn *t, int err)
{
	struct stage_waiter *w = t->waiters;

	t->waiters = NULL;
	while (w) {
		struct stage_waiter *next = w->next;
		w->cb(w->arg, err, t->m.txid);
		free(w);
		w = next;
	}
}

void part_txn_free(struct tpc_participant *p, struct ptxn *t)
{
	complete_stages(t, TPC_ECLOSED);
	u64map_del(&p->txns, t->m.txid);
	p->staged_bytes -= part_blob_payload(&t->blob);
	part_blob_free(&t->blob);
	free(t);
}

static struct part_rec *rec_new(enum prec_type type, uint64_t txid)
{
	struct part_rec *r = calloc(1, sizeof(*r));
	if (r) {
		r->type = type;
		r->txid = txid;
		r->wall_ms = tpc_wall_ms();
	}
	return r;
}

/* Queue the PREPARED record with its own copy of the writes. */
static int log_prepared(struct tpc_participant *p, struct ptxn *t)
{
	size_t len;
	const uint8_t *bytes = part_blob_bytes(&t->blob, &len);
	struct part_rec *r = rec_new(PREC_PREPARED, t->m.txid);

	if (!r || !bytes || !(r->blob = malloc(len))) {
		free(r);
		return -ENOMEM;
	}
	memcpy(r->blob, bytes, len);
	r->blob_len = len;
	r->epoch = p->highest_epoch;
	r->incarnation = t->incarnation;
	t->logged = 1;
	t->m.prepared_wall_ms = r->wall_ms;
	lazy_queue_submit_with(&p->lazy, &r->item); /* waiting drops share this sync */
	return 0;
}

/* Queue the sink apply; the writes stay in the transaction, which lives until done. */
static int log_apply(struct tpc_participant *p, struct ptxn *t)
{
	size_t len;
	const uint8_t *bytes = part_blob_bytes(&t->blob, &len);
	struct part_rec *r = rec_new(PREC_APPLY, t->m.txid);

	if (!r || !bytes) {
		free(r);
		return -ENOMEM;
	}
	r->blob = (uint8_t *)bytes;
	r->blob_len = len;
	r->item.next = NULL;
	struct part_rec *f = take_forgets(p);
	if (f) { /* waiting forgets ride with this apply's forced write */
		f->item.next = &r->item;
		batch_writer_submit_chain(p->sink_writer, &f->item);
	} else {
		batch_writer_submit(p->sink_writer, &r->item);
	}
	return 0;
}

/* The writes are never needed again: drop them now (an EXPIRED tombstone lives on). */
static void discard(struct tpc_participant *p, struct ptxn *t)
{
	tpc_sink_abort(p->sink, t->m.txid);
	if (t->logged)
		queue_drop(p, t->m.txid, 0);
	p->staged_bytes -= part_blob_payload(&t->blob);
	part_blob_free(&t->blob);
}

/*
 * Carry out one action. An action that cannot even be queued (no memory, an armed
 * fault) sets *followup to the failure event instead of recursing: the caller steps it
 * once every action of this step ran, so the transaction is never freed under us.
 */
static void execute(struct tpc_participant *p, struct ptxn *t, const struct part_action *a,
		    struct part_event *followup)
{
	switch (a->type) {
	case PACT_SEND_JOIN: part_send_join(p, t); break;
	case PACT_SEND_VOTE:
		part_send_vote(p, t->m.txid, a->vote, a->reason, t->incarnation);
		if (!a->vote)
			p->stats.voted_no++;
		break;
	case PACT_SEND_ACK:
		part_send_ack(p, t->m.txid);
		p->stats.committed++;
		break;
	case PACT_SEND_STATUS_QUERY:
		part_send_status_query(p, t->m.txid);
		p->stats.status_queries++;
		break;
	case PACT_LOG_PREPARED:
		if (tpc_fault(&p->faults, TPC_FP_PART_PREPARE_BEFORE_LOG) || log_prepared(p, t))
			*followup = (struct part_event){ .type = PEV_LOGGED, .status = -EIO }; /* NO */
		break;
	case PACT_APPLY:
		tpc_sink_committing(p->sink, t->m.txid); /* before its commit() is queued */
		if (log_apply(p, t)) /* retried later */
			*followup = (struct part_event){ .type = PEV_APPLIED, .status = -ENOMEM };
		break;
	case PACT_DISCARD:
		discard(p, t);
		p->stats.aborted++;
		break;
	case PACT_COMPLETE_STAGES: complete_stages(t, a->err); break;
	case PACT_REJECT_STALE:
		p->stats.stale_epoch_rejected++;
		part_logf(p, TPC_LOG_WARN,
			 "txid %llu: ignored a message from an older coordinator epoch",
			 (unsigned long long)t->m.txid);
		break;
	case PACT_REJECT_JUMP:
		p->stats.epoch_jump_rejected++;
		part_logf(p, TPC_LOG_WARN, "txid %llu: ignored a message whose coordinator epoch "
			  "is too far above the highest seen (%llu)", (unsigned long long)t->m.txid,
			  (unsigned long long)p->highest_epoch);
		break;
	case PACT_REPORT_FORGOTTEN:
		p->stats.forgotten++;
		part_logf(p, TPC_LOG_ERROR, "txid %llu is PREPARED here but the coordinator has "
			  "forgotten its outcome; it stays in doubt (never guessed) and keeps "
			  "asking: resolve it by hand if the coordinator cannot tell",
			  (unsigned long long)t->m.txid);
		break;
	}
}

static void arm(struct tpc_participant *p, struct ptxn *t)
{
	deadline_timer_set(&p->deadlines, t->m.txid, part_txn_next_deadline(&t->m),
			   &t->m.armed_ms); /* out of memory: no timer; the next event steps it */
}

/* Step one transaction; free it when done. @return the machine's result. */
int part_step(struct tpc_participant *p, struct ptxn *t, const struct part_event *ev)
{
	struct part_actions out = { 0 };
	struct part_event followup = { .type = PEV_TICK };
	int was_tomb = t->m.state == PS_EXPIRED;
	int rc = part_txn_step(&t->m, &p->tcfg, ev, tpc_now_ms(), &p->highest_epoch, &out);

	p->stats.highest_epoch = p->highest_epoch;
	p->ntombstones += (t->m.state == PS_EXPIRED) - was_tomb;
	for (size_t i = 0; i < out.n; i++)
		execute(p, t, &out.a[i], &followup);
	if (t->m.state == PS_DONE) {
		part_txn_free(p, t);
		return rc;
	}
	if (followup.type != PEV_TICK)
		part_step(p, t, &followup);
	else
		arm(p, t);
	return rc;
}

void part_step_all(struct tpc_participant *p, const struct part_event *ev)
{
	struct u64map_iter it;

	for (struct ptxn *t = u64map_iter_first(&it, &p->txns); t; t = u64map_iter_next(&it))
		part_step(p, t, ev);
	u64map_iter_end(&it);
}

/* The sink's prepare() on the staged writes: 0 vote YES, negative vote NO (@p reason,
 * of @p reason_len bytes, says why as the sink worded it; "" when it did not). */
int part_sink_prepare(struct tpc_participant *p, struct ptxn *t, char *reason,
		      size_t reason_len)
{
	size_t len, n;
	tpc_write *w;
	const uint8_t *bytes = part_blob_bytes(&t->blob, &len);

	reason[0] = '\0';
	if (!bytes || part_blob_decode(bytes, len, &w, &n))
		return -ENOMEM;
	tpc_sink_txn st = { .txid = t->m.txid, .writes = w, .nwrites = n };
	int rc = tpc_sink_prepare(p->sink, &st, reason, reason_len);
	reason[reason_len - 1] = '\0';
	free(w);
	if (rc && reason[0])
		part_logf(p, TPC_LOG_INFO, "txid %llu refused by the sink: %s",
			 (unsigned long long)t->m.txid, reason);
	return rc < 0 ? rc : 0;
}

/* ---- timers ---- */

/* The deadline timer's view of a transaction (common/deadline_timer.h). */
uint64_t *part_deadline_armed(void *ctx, uint64_t txid)
{
	struct ptxn *t = u64map_get(&((struct tpc_participant *)ctx)->txns, txid);

	return t ? &t->m.armed_ms : NULL;
}

void part_deadline_fire(void *ctx, uint64_t txid)
{
	struct tpc_participant *p = ctx;
	struct ptxn *t = u64map_get(&p->txns, txid);
	struct part_event ev = { .type = PEV_TICK };
	int was_active = t->m.state <= PS_ACTIVE;

	part_step(p, t, &ev);
	t = u64map_get(&p->txns, txid);
	if (was_active && t && t->m.state == PS_EXPIRED) {
		p->stats.expired++;
		part_logf(p, TPC_LOG_WARN, "txid %llu: staged writes expired (no Prepare "
			  "within %u ms); voted NO, later writes for it fail",
			  (unsigned long long)txid, p->tcfg.txn_timeout_ms);
	}
}

/* ---- the writers (their own threads) ----
 *
 * Two group-commit writers, one per durable store, so a commit's sink apply never
 * waits behind another transaction's PREPARED force, nor the other way round:
 *   p->writer       the state log: PREPARED records (forced before the YES vote, D2)
 *                   and record drops;
 *   p->sink_writer  the sink: applies (durable before the ack, D3).
 * Drops are unforced: a drop that is lost only means the transaction is resolved
 * again after a restart, which the sink's idempotency makes harmless. So drops wait on
 * the loop thread (p->lazy, lazy_queue.h) and ride with the next PREPARED batch, or go
 * on their own PART_LAZY_FLUSH_MS after the first one started waiting.
 */


static struct part_rec *rec_at(struct bw_item *it)
{
	return (struct part_rec *)it;
}

/* State log writer: one synced LMDB transaction with every put and drop of the batch. */
int part_log_writer_write(void *ctx, struct bw_item *head, size_t n)
{
	struct tpc_participant *p = ctx;
	struct part_log_put *puts = calloc(n, sizeof(*puts));
	uint64_t *dels = calloc(n, sizeof(*dels));
	size_t nputs = 0, ndels = 0;
	uint64_t epoch = 0;
	int rc = puts && dels ? 0 : -ENOMEM;

	for (struct bw_item *it = head; !rc && it; it = it->next) {
		struct part_rec *r = rec_at(it);
		if (r->type == PREC_PREPARED) {
			puts[nputs++] = (struct part_log_put){ .txid = r->txid,
				.wall_ms = r->wall_ms, .epoch = r->epoch,
				.incarnation = r->incarnation, .blob = r->blob,
				.blob_len = r->blob_len };
			epoch = r->epoch > epoch ? r->epoch : epoch;
		} else {
			dels[ndels++] = r->txid;
		}
		if (--n == 0)
			break;
	}
	if (!rc)
		rc = tpc_fault(&p->faults, TPC_FP_LOG_SYNC); /* slow or failing fsync */
	if (!rc)
		rc = p->store.ops->write(p->store.self, puts, nputs, dels, ndels, epoch);
	free(puts);
	free(dels);
	return rc;
}

/* Sink writer: the batch's forgets, then every apply through the sink in one call (so
 * a sink may delete what it forgets inside that forced write). */
int part_sink_writer_write(void *ctx, struct bw_item *head, size_t n)
{
	struct tpc_participant *p = ctx;
	tpc_sink_txn *st = calloc(n, sizeof(*st));
	tpc_write **w = calloc(n, sizeof(*w));
	size_t k = 0, i = 0;
	int rc = st && w ? 0 : -ENOMEM;

	for (struct bw_item *it = head; !rc && i < n; it = it->next, i++) {
		struct part_rec *r = rec_at(it);
		if (r->type == PREC_FORGET) {
			tpc_sink_forget(p->sink, r->txids, r->ntxids);
			continue;
		}
		rc = part_blob_decode(r->blob, r->blob_len, &w[k], &st[k].nwrites);
		st[k].txid = r->txid;
		st[k].writes = w[k];
		k++;
	}
	if (!rc && k)
		rc = tpc_fault(&p->faults, TPC_FP_PART_COMMIT_BEFORE_APPLY);
	if (!rc && k)
		rc = tpc_sink_commit(p->sink, st, k);
	/* Between the sink's apply and dropping the PREPARED record: after a crash here
	 * the decision comes again and the sink must see the txid as applied. */
	if (!rc && k)
		tpc_fault(&p->faults, TPC_FP_PART_COMMIT_AFTER_APPLY);
	for (size_t j = 0; w && j < k; j++)
		free(w[j]);
	free(st);
	free(w);
	return rc;
}

/* The waiting forgets as one FORGET record (NULL: none, or no memory: they wait). */
static struct part_rec *take_forgets(struct tpc_participant *p)
{
	struct part_rec *f;

	if (!p->nforgets || !(f = rec_new(PREC_FORGET, 0)))
		return NULL;
	f->txids = p->forgets;
	f->ntxids = p->nforgets;
	p->forgets = NULL;
	p->nforgets = p->forgets_cap = 0;
	return f;
}

/* Hand the waiting forgets to the sink writer on their own: with no apply to ride on,
 * the sink holds them for its next write (see tpc_sink_ops.forget). */
void part_flush_forgets(struct tpc_participant *p)
{
	if (!p->sink_writer)
		return; /* shutting down: tpc_participant_free() hands them over */
	struct part_rec *f = take_forgets(p);
	if (f)
		batch_writer_submit(p->sink_writer, &f->item);
}

/* The lazy queue's timer: the drops went; the forgets go too. */
void part_on_lazy_timer(void *arg)
{
	part_flush_forgets(arg);
}

/* An applied transaction's record drop is durable: its sink entry may go (D9). */
static void queue_forget(struct tpc_participant *p, uint64_t txid)
{
	if (p->nforgets == p->forgets_cap) {
		size_t ncap = p->forgets_cap ? p->forgets_cap * 2 : 64;
		uint64_t *nf = realloc(p->forgets, ncap * sizeof(*nf));
		if (!nf)
			return; /* the sink keeps this entry: harmless */
		p->forgets = nf;
		p->forgets_cap = ncap;
	}
	p->forgets[p->nforgets++] = txid;
	if (p->nforgets >= PART_LAZY_MAX)
		part_flush_forgets(p);
	else
		lazy_queue_arm(&p->lazy);
}

/* Queue a record drop: unforced, it waits for the next forced batch (see above). */
static void queue_drop(struct tpc_participant *p, uint64_t txid, int forget_after)
{
	struct part_rec *r = rec_new(PREC_DROP, txid);

	if (!r)
		return; /* the record stays and is resolved again after a restart: safe */
	r->forget_after = forget_after;
	lazy_queue_add(&p->lazy, &r->item);
}

/* Loop thread: a record's batch is done. */
void part_writer_done(void *ctx, struct bw_item *item, int status)
{
	struct tpc_participant *p = ctx;
	struct part_rec *r = (struct part_rec *)item;
	int result = status;
	struct ptxn *t = r->type == PREC_FORGET ? NULL : u64map_get(&p->txns, r->txid);

	if (r->type == PREC_FORGET) {
		free(r->txids);
		free(r);
		return;
	}
	p->stats.log_records++;
	if (result < 0)
		part_logf(p, TPC_LOG_ERROR, "txid %llu: %s failed: %s",
			 (unsigned long long)r->txid,
			 r->type == PREC_APPLY ? "sink apply" : "state log write",
			 tpc_strerror(result));
	/* A drop that failed (a failing fsync) would leave the PREPARED record of a finished
	 * transaction behind until the next restart, listed as in doubt: try it again with
	 * the next batch. */
	if (r->type == PREC_DROP && result < 0 && !p->stopping)
		queue_drop(p, r->txid, r->forget_after);
	if (r->type == PREC_DROP && result == 0 && r->forget_after)
		queue_forget(p, r->txid);
	if (t && r->type != PREC_DROP) {
		struct part_event ev = { .type = r->type == PREC_APPLY ? PEV_APPLIED : PEV_LOGGED,
					 .status = result };
		if (r->type == PREC_PREPARED && result == 0) {
			p->stats.prepared++;
			tpc_fault(&p->faults, TPC_FP_PART_PREPARE_AFTER_LOG);
		} else if (r->type == PREC_APPLY && result == 0) {
			queue_drop(p, r->txid, 1); /* applied durably: the record may go, lazily */
		}
		part_step(p, t, &ev);
	}
	if (r->type == PREC_PREPARED)
		free(r->blob);
	free(r);
}

/* The participant cannot go on (its identity was refused): every stage call waiting for
 * its Join fails with @p err, and those transactions end. */
void part_fail_all_stages(struct tpc_participant *p, int err)
{
	struct u64map_iter it;

	for (struct ptxn *t = u64map_iter_first(&it, &p->txns); t; t = u64map_iter_next(&it))
		if (t->m.state == PS_JOINING)
			part_step(p, t, &(struct part_event){ .type = PEV_JOIN_FAILED, .err = err });
	u64map_iter_end(&it);
}
