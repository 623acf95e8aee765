/*
 * metrics.c - counters, latency histograms, stuck detection and the Prometheus text
 * rendering (metrics.h).
 *
 * Owns struct coord_metrics on the server and the per-transaction timing annotations
 * (coord_txn.prepare_ns, committing_ns, stuck_warned). Invariants: loop thread only;
 * a decision is counted once, when the step that takes it runs (committed on entering
 * COMMITTING or on a commit with nothing to log, aborted on DONE with an abort reason);
 * transactions recovered from the log were counted by the incarnation that decided them.
 * Gauges are not kept incrementally: a scrape walks the open transactions (a few ms for
 * a million), so they can never drift from the truth.
 */
#include "server_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

/* Seconds: 100 us to 10 s, the range between a fast local fsync and a stuck peer. */
static const double seconds_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					 0.01,	 0.025,	  0.05,	  0.1,	 0.25,	 0.5,
					 1,	 2.5,	  5,	  10 };
/* Records per batch: powers of two up to the default group-commit limit. */
static const double batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096 };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Most stuck transactions named one per line in one scan; the rest get a summary line. */
#define STUCK_LINES_PER_SCAN 20

static void hist_init(struct coord_hist *h, const double *bounds, unsigned n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = n;
}

void coord_metrics_init(struct coord_metrics *m)
{
	memset(m, 0, sizeof(*m));
	hist_init(&m->prepare, seconds_bounds, NELEM(seconds_bounds));
	hist_init(&m->force, seconds_bounds, NELEM(seconds_bounds));
	hist_init(&m->delivery, seconds_bounds, NELEM(seconds_bounds));
	hist_init(&m->batch, batch_bounds, NELEM(batch_bounds));
	hist_init(&m->fsync, seconds_bounds, NELEM(seconds_bounds));
}

void coord_hist_observe(struct coord_hist *h, double v)
{
	unsigned i = 0;

	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

/* ---- rendering ---- */

static int head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0;
}

static int scalar(struct evbuffer *out, const char *name, const char *type, const char *help,
		  uint64_t v)
{
	if (head(out, name, type, help))
		return 1;
	return evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v) < 0;
}

static int labelled(struct evbuffer *out, const char *name, const char *label,
		    const char *value, uint64_t v)
{
	return evbuffer_add_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, value, v) < 0;
}

static int histogram(struct evbuffer *out, const char *name, const char *help,
		     const struct coord_hist *h)
{
	uint64_t cum = 0;
	int bad = head(out, name, "histogram", help);

	for (unsigned i = 0; i < h->nbounds && !bad; i++) {
		cum += h->counts[i];
		bad = evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
					  h->bounds[i], cum) < 0;
	}
	if (!bad)
		bad = evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.9g\n"
					  "%s_count %" PRIu64 "\n", name, h->count, name, h->sum,
					  name, h->count) < 0;
	return bad;
}

static int render_transactions(const struct coord_metrics_view *v, struct evbuffer *out)
{
	static const char *const states[COORD_OPEN_NSTATES] = { "active", "preparing", "logging",
								 "committing" };
	int bad = head(out, "tpc_transactions_total", "counter",
		       "Transactions decided by this incarnation, by outcome (unknown: a client "
		       "was told the outcome is not known yet).");

	bad = bad || labelled(out, "tpc_transactions_total", "outcome", "committed", v->committed);
	bad = bad || labelled(out, "tpc_transactions_total", "outcome", "aborted", v->aborted);
	bad = bad || labelled(out, "tpc_transactions_total", "outcome", "unknown", v->unknown);
	bad = bad || head(out, "tpc_transactions_open", "gauge", "Open transactions by state.");
	for (int i = 0; i < COORD_OPEN_NSTATES && !bad; i++)
		bad = labelled(out, "tpc_transactions_open", "state", states[i], v->open[i]);
	bad = bad || scalar(out, "tpc_in_doubt", "gauge",
			    "Transactions whose COMMIT is durable and not acknowledged by every "
			    "participant.", v->in_doubt);
	bad = bad || head(out, "tpc_in_doubt_oldest_seconds", "gauge",
			  "Age of the oldest COMMIT decision not yet acknowledged by every "
			  "participant (0: none).");
	bad = bad || evbuffer_add_printf(out, "tpc_in_doubt_oldest_seconds %.3f\n",
					 (double)v->in_doubt_oldest_ms / 1000.0) < 0;
	bad = bad || scalar(out, "tpc_stuck_transactions", "gauge",
			    "COMMIT decisions not delivered within --stuck-after.", v->stuck);
	bad = bad || scalar(out, "tpc_decision_retries_total", "counter",
			    "Decisions sent again to a participant that had not acknowledged.",
			    v->retries);
	return bad;
}

static int render_histograms(const struct coord_metrics *m, struct evbuffer *out)
{
	int bad = histogram(out, "tpc_prepare_duration_seconds",
			    "From Prepare sent to the last vote.", &m->prepare);

	bad = bad || histogram(out, "tpc_decision_force_seconds",
			       "From the COMMIT record queued to durable.", &m->force);
	bad = bad || histogram(out, "tpc_commit_delivery_seconds",
			       "From the COMMIT durable to the last acknowledgement.", &m->delivery);
	bad = bad || histogram(out, "tpc_log_batch_records", "Records per log batch (group commit).",
			       &m->batch);
	bad = bad || histogram(out, "tpc_log_fsync_seconds",
			       "One log batch write (a synced LMDB commit).", &m->fsync);
	return bad;
}

static int render_process(const struct coord_metrics_view *v, struct evbuffer *out)
{
	int bad = head(out, "tpc_connections", "gauge",
		       "Open RPC connections by role (new: no Hello yet).");

	bad = bad || labelled(out, "tpc_connections", "role", "client", v->conns_client);
	bad = bad || labelled(out, "tpc_connections", "role", "participant", v->conns_participant);
	bad = bad || labelled(out, "tpc_connections", "role", "new", v->conns_new);
	bad = bad || scalar(out, "tpc_participants_connected", "gauge",
			    "Participants with a live connection.", v->peers_connected);
	bad = bad || scalar(out, "tpc_log_failures_total", "counter",
			    "Log records whose batch write failed.", v->log_failures);
	bad = bad || scalar(out, "tpc_bad_frames_total", "counter",
			    "Frames refused as malformed (the connection was closed).", v->bad_frames);
	bad = bad || scalar(out, "tpc_connections_timed_out_total", "counter",
			    "Connections closed by the hello, idle or frame timeout.",
			    v->timed_out_conns);
	bad = bad || scalar(out, "tpc_connections_refused_total", "counter",
			    "Connections refused at the connection limit or while stopping.",
			    v->refused_conns);
	bad = bad || scalar(out, "tpc_accept_errors_total", "counter",
			    "accept() failures such as EMFILE (the listener backs off).",
			    v->accept_errors);
	bad = bad || scalar(out, "tpc_epoch", "gauge",
			    "The coordinator's epoch (incremented durably at every start).", v->epoch);
	bad = bad || scalar(out, "tpc_log_used_bytes", "gauge",
			    "Bytes of the LMDB decision log in use (its pages up to the last one).",
			    v->log_used_bytes);
	bad = bad || scalar(out, "tpc_log_map_bytes", "gauge",
			    "The log's LMDB map size (--map-size): the most it may grow to.",
			    v->log_map_bytes);
	return bad;
}

int coord_metrics_render(const struct coord_metrics_view *v, struct evbuffer *out)
{
	if (render_transactions(v, out) || render_histograms(v->m, out) || render_process(v, out))
		return -ENOMEM;
	return 0;
}

/* ---- observers ---- */

static double secs_since(uint64_t then_ns, uint64_t now_ns)
{
	return now_ns > then_ns ? (double)(now_ns - then_ns) / 1e9 : 0.0;
}

void coord_metrics_on_step(struct coord_server *s, struct coord_txn *t, uint8_t before)
{
	struct coord_metrics *m = &s->metrics;
	uint8_t after = t->state;
	uint64_t now;

	if (after == before)
		return;
	now = tpc_now_ns();
	if (after == TXN_PREPARING)
		t->prepare_ns = now;
	if (before == TXN_PREPARING && t->prepare_ns &&
	    (after == TXN_LOGGING || (after == TXN_DONE && !t->abort_reason)))
		coord_hist_observe(&m->prepare, secs_since(t->prepare_ns, now));
	if (after == TXN_COMMITTING) {
		m->committed++;
		t->committing_ns = now;
	} else if (after == TXN_DONE && t->abort_reason) {
		m->aborted++;
	} else if (after == TXN_DONE && before == TXN_COMMITTING) {
		if (t->committing_ns) /* 0: recovered, decided by an earlier incarnation */
			coord_hist_observe(&m->delivery, secs_since(t->committing_ns, now));
	} else if (after == TXN_DONE) {
		m->committed++; /* nothing to make durable: read-only or empty */
	}
}

void coord_metrics_on_record(struct coord_server *s, const struct coord_rec *r, int status)
{
	struct coord_metrics *m = &s->metrics;

	if (r->batch_n) {
		coord_hist_observe(&m->batch, (double)r->batch_n);
		coord_hist_observe(&m->fsync, (double)r->batch_ns / 1e9);
	}
	if (r->type == COORD_REC_COMMIT && status == 0 && r->queued_ns)
		coord_hist_observe(&m->force, secs_since(r->queued_ns, tpc_now_ns()));
}

/* ---- gauges ---- */

int coord_txn_stuck(const struct coord_server *s, const struct coord_txn *t, uint64_t now_ms)
{
	return t->state == TXN_COMMITTING && now_ms >= t->decided_ms &&
	       now_ms - t->decided_ms >= s->cfg.stuck_after_ms;
}

static void snapshot_txns(struct coord_server *s, uint64_t now_ms, struct coord_metrics_view *v)
{
	for (size_t i = 0; i < s->txns.cap; i++) {
		const struct coord_txn *t = s->txns.slots[i].key ? s->txns.slots[i].val : NULL;
		if (!t || t->state >= COORD_OPEN_NSTATES)
			continue;
		v->open[t->state]++;
		v->open_total++;
		if (t->state != TXN_COMMITTING)
			continue;
		v->in_doubt++;
		uint64_t age = now_ms > t->decided_ms ? now_ms - t->decided_ms : 0;
		if (age > v->in_doubt_oldest_ms)
			v->in_doubt_oldest_ms = age;
		v->stuck += (uint64_t)coord_txn_stuck(s, t, now_ms);
	}
}

static void snapshot_conns(struct coord_server *s, struct coord_metrics_view *v)
{
	for (uint32_t i = 0; i < s->conns_cap; i++) {
		const struct conn *c = s->conns[i];
		if (!c)
			continue;
		if (c->role == CONN_CLIENT)
			v->conns_client++;
		else if (c->role == CONN_PARTICIPANT)
			v->conns_participant++;
		else
			v->conns_new++;
	}
	for (uint32_t i = 0; i < s->npeers; i++) {
		v->peers_known += s->peers[i].name != NULL; /* NULL: a freed slot */
		v->peers_connected += coord_conn_get(s, s->peers[i].conn) != NULL;
	}
}

void coord_metrics_snapshot(struct coord_server *s, uint64_t now_ms,
			    struct coord_metrics_view *v)
{
	memset(v, 0, sizeof(*v));
	v->m = &s->metrics;
	v->committed = s->metrics.committed;
	v->aborted = s->metrics.aborted;
	v->unknown = s->stats.unknown;
	v->retries = s->stats.decision_resends;
	v->log_failures = s->stats.log_failures;
	v->bad_frames = s->stats.bad_frames;
	v->timed_out_conns = s->stats.timed_out_conns;
	v->accept_errors = s->stats.accept_errors;
	v->refused_conns = s->stats.refused_conns;
	v->epoch = s->epoch;
	v->log_map_bytes = s->cfg.map_size;
	if (s->store.ops->stats(s->store.self, NULL, NULL, &v->log_used_bytes))
		v->log_used_bytes = 0; /* unreadable: the scrape still answers */
	snapshot_txns(s, now_ms, v);
	snapshot_conns(s, v);
}

/* ---- stuck detection ---- */

/* "p1 (not connected), p2": the participants that have not acked. */
static void unacked_names(struct coord_server *s, const struct coord_txn *t, char *buf,
			  size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (uint8_t i = 0; i < t->nparts && off < len; i++) {
		if (t->parts[i].state != PART_YES)
			continue;
		struct peer *p = coord_peer(s, t->parts[i].peer);
		int up = p && coord_conn_get(s, p->conn);
		int n = snprintf(buf + off, len - off, "%s%s%s", off ? ", " : "",
				 p ? p->name : "?", up ? "" : " (not connected)");
		off += n > 0 ? (size_t)n : 0;
	}
}

static void warn_stuck(struct coord_server *s, const struct coord_txn *t, uint64_t now_ms)
{
	char names[256];

	unacked_names(s, t, names, sizeof(names));
	tpc_logf(&s->log, TPC_LOG_WARN,
		 "txid %" PRIu64 " stuck: its COMMIT was decided %" PRIu64 " ms ago and is not "
		 "acknowledged by %s; %u delivery attempt(s), still retrying (backoff capped at "
		 "%u ms)", t->txid, now_ms - t->decided_ms, names[0] ? names : "?", t->attempts,
		 s->cfg.retry_max_ms);
}

void coord_stuck_scan(struct coord_server *s, uint64_t now_ms)
{
	unsigned lines = 0, more = 0;

	for (size_t i = 0; i < s->txns.cap; i++) {
		struct coord_txn *t = s->txns.slots[i].key ? s->txns.slots[i].val : NULL;
		if (!t || t->stuck_warned || !coord_txn_stuck(s, t, now_ms))
			continue;
		t->stuck_warned = 1;
		if (lines++ < STUCK_LINES_PER_SCAN)
			warn_stuck(s, t, now_ms);
		else
			more++;
	}
	if (more)
		tpc_logf(&s->log, TPC_LOG_WARN,
			 "%u more transaction(s) became stuck (GET /v1/transactions?state=stuck)",
			 more);
}
