/*
 * metrics.h - the coordinator's counters and latency histograms, the observers that feed
 * them (transaction steps, log batches), stuck detection, and the Prometheus text
 * rendering of GET /metrics (docs/admin-api.md).
 *
 * Everything lives on the server struct and is touched on the event-loop thread only:
 * the log writer's timings reach it through the records themselves (coord_rec's
 * batch_n/batch_ns, read in done()), so nothing here needs a lock. The rendering is pure
 * (a view in, text out) so a unit test can check it without a server.
 */
#ifndef TPC_COORD_METRICS_H
#define TPC_COORD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct coord_server;
struct coord_txn;
struct coord_rec;

#define COORD_HIST_MAX_BOUNDS 24

/** A histogram with fixed upper bounds (ascending; +Inf is implicit). */
struct coord_hist {
	const double *bounds;
	unsigned nbounds;
	uint64_t counts[COORD_HIST_MAX_BOUNDS + 1]; /* per bucket, not cumulative; last: +Inf */
	uint64_t count;
	double sum;
};

struct coord_metrics {
	uint64_t committed, aborted;   /* decisions taken by this incarnation */
	struct coord_hist prepare;     /* seconds: Prepare sent to the last vote */
	struct coord_hist force;       /* seconds: COMMIT record queued to durable */
	struct coord_hist delivery;    /* seconds: COMMIT durable to the last ack */
	struct coord_hist batch;       /* records per log batch */
	struct coord_hist fsync;       /* seconds: one batch write (synced LMDB commit) */
};

enum { COORD_OPEN_ACTIVE, COORD_OPEN_PREPARING, COORD_OPEN_LOGGING, COORD_OPEN_COMMITTING,
       COORD_OPEN_NSTATES };

/** What one scrape (or /v1/status) reports; coord_metrics_snapshot() fills it. */
struct coord_metrics_view {
	const struct coord_metrics *m;
	uint64_t committed, aborted, unknown;
	uint64_t open[COORD_OPEN_NSTATES];
	uint64_t open_total;
	uint64_t in_doubt;             /* COMMITTING */
	uint64_t in_doubt_oldest_ms;   /* age of the oldest COMMIT decision not fully acked */
	uint64_t stuck;
	uint64_t retries;
	uint64_t conns_client, conns_participant, conns_new;
	uint64_t peers_known, peers_connected;
	uint64_t log_failures, bad_frames;
	uint64_t timed_out_conns, accept_errors, refused_conns; /* limits (conn.c) */
	uint64_t epoch;
	uint64_t log_used_bytes, log_map_bytes; /* the LMDB log: pages in use, --map-size */
};

/** @brief Zero @p m and give each histogram its buckets. */
void coord_metrics_init(struct coord_metrics *m);

/** @brief Count one observation @p v in @p h. */
void coord_hist_observe(struct coord_hist *h, double v);

/**
 * @brief Append the Prometheus text exposition (format 0.0.4) of @p v to @p out.
 * @return 0, or -ENOMEM.
 */
int coord_metrics_render(const struct coord_metrics_view *v, struct evbuffer *out);

/* ---- server side (metrics.c includes server_int.h for these) ---- */

/** @brief After one step of @p t (state @p before it): counters and histograms. */
void coord_metrics_on_step(struct coord_server *s, struct coord_txn *t, uint8_t before);

/** @brief A log record is done: batch size and write time (first record of a batch),
 *         decision force time (a COMMIT record written with @p status 0). */
void coord_metrics_on_record(struct coord_server *s, const struct coord_rec *r, int status);

/** @brief Walk the open transactions, connections and peers into @p v. */
void coord_metrics_snapshot(struct coord_server *s, uint64_t now_ms,
			    struct coord_metrics_view *v);

/** @brief 1 if @p t is COMMITTING with a decision older than --stuck-after. */
int coord_txn_stuck(const struct coord_server *s, const struct coord_txn *t, uint64_t now_ms);

/** @brief Log one WARN line for each transaction that became stuck since the last scan. */
void coord_stuck_scan(struct coord_server *s, uint64_t now_ms);

#endif
