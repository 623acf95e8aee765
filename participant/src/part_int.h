/*
 * part_int.h - the participant stub's internal state, shared by participant.c (API,
 * lifecycle, background-thread mode), part_net.c (the coordinator connection and its
 * messages) and part_exec.c (carrying out state machine actions, the log writer).
 *
 * Everything here belongs to the event-loop thread, except what the log writer's
 * thread reads from struct part_rec items handed to it.
 */
#ifndef TPC_PART_INT_H
#define TPC_PART_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "batch_writer.h"
#include "coord_addrs.h"
#include "deadline_timer.h"
#include "faults.h"
#include "frame.h"
#include "lazy_queue.h"
#include "maps.h"
#include "part_blob.h"
#include "part_log.h"
#include "part_txn.h"
#include "tpc/participant.h"
#include "util.h"
#include "wire.h"

struct event_base;
struct event;
struct bufferevent;

/* A stage call waiting for its Join to be acknowledged. */
struct stage_waiter {
	struct stage_waiter *next;
	tpc_stage_cb cb;
	void *arg;
};

/* One transaction: the pure machine plus what it holds. */
struct ptxn {
	struct part_txn m;
	struct part_blob blob;        /* staged writes, encoded */
	struct stage_waiter *waiters; /* completed on JoinReply */
	int logged;                   /* a PREPARED record exists or is queued */
	uint64_t incarnation;         /* the incarnation that joined (D8): ours, or the
					 recovered record's */
};

/* PREPARED, DROP: the state log writer; APPLY, FORGET: the sink writer. */
enum prec_type { PREC_PREPARED, PREC_APPLY, PREC_DROP, PREC_FORGET };

/* A log writer item. */
struct part_rec {
	struct bw_item item;          /* must be first */
	enum prec_type type;
	uint64_t txid;
	uint64_t epoch;
	uint64_t wall_ms;
	uint64_t incarnation;         /* PREPARED: the one that joined */
	uint8_t *blob;                /* PREPARED: owned copy; APPLY: the txn's (alive) */
	size_t blob_len;
	int forget_after;             /* DROP after an apply: once durable, the sink forgets */
	uint64_t *txids;              /* FORGET: owned */
	size_t ntxids;
};

/* A call from another thread, run on the loop thread (background-thread mode). */
struct loop_call {
	struct loop_call *next;
	void (*fn)(struct tpc_participant *p, void *arg);
	void *arg;
	int done;
};

#define PART_RECONNECT_MIN_MS 50    /* reconnect backoff bounds (coord_addrs.h) */
#define PART_RECONNECT_MAX_MS 500

struct tpc_participant {
	tpc_participant_config cfg;
	char *coordinator, *name, *state_dir; /* owned copies behind cfg's strings */
	char *tls_cert, *tls_key, *tls_ca;
	struct part_txn_config tcfg;
	tpc_sink *sink;
	struct part_store store;      /* the state log (part_log.h), through its ops */
	uint8_t id[PART_ID_LEN];      /* the state folder's participant id (D8) */
	uint64_t incarnation;         /* this process's, durable before anything was sent */
	int fatal;                    /* TPC_EIDENTITY once refused: no more connections */

	struct event_base *base;
	int own_base;                 /* started: the base and thread are ours */
	pthread_t thread;
	int thread_running;

	struct coord_addrs addrs;     /* cfg.coordinator's list, the leader hint, the backoff */
	int redirected;               /* the connection ended in ERR_NOT_LEADER: addrs moved */
	uint32_t redirect_delay_ms;   /* ... and said to wait this long before the next try */
	struct sockaddr_storage addr; /* coord_addrs_current(), resolved at each connect */
	socklen_t addrlen;
	struct ssl_ctx_st *tls;       /* TLS to the coordinator (tls_cert..); NULL: plaintext */
	struct bufferevent *bev;
	struct tpc_frame_decoder dec;
	int connected;                /* HelloReply received on the current connection */
	struct event *reconnect_ev, *hello_ev;
	struct event *unreach_ev;     /* fires unreachable_timeout_ms after the connection
					 went (or never came), then every UNREACH_WARN_MS */
	uint64_t down_since_ms;       /* no connection since (monotonic); 0: connected */
	int unreachable;              /* down for unreachable_timeout_ms: new work fails */
	char net_err[340];            /* why the last connection attempt failed */

	struct batch_writer *writer;      /* the state log: PREPARED records, drops */
	struct batch_writer *sink_writer; /* the sink: applies */
	struct lazy_queue lazy;           /* drops waiting for the next forced batch */
	uint64_t *forgets;            /* applied txids whose drop is durable: for the sink */
	size_t nforgets, forgets_cap;
	struct u64map txns;           /* txid -> struct ptxn * */
	struct u64map asks;           /* txid -> struct part_ask * (part_ask.c) */
	size_t ntombstones;           /* txns in PS_EXPIRED (not counted as open) */
	struct deadline_timer deadlines; /* each transaction's next PEV_TICK */
	uint64_t highest_epoch;
	uint64_t staged_bytes;

	/* background-thread mode: calls from other threads */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct loop_call *calls;
	int wake_fd;
	struct event *wake_ev;
	int stopping;
	int draining;                 /* tpc_participant_drain(): no new transactions */

	struct tpc_arena arena;       /* unpacked Envelopes, one frame at a time */
	struct tpc_faults faults;      /* armed from cfg.faults at creation */
	tpc_participant_stats stats;
	char errmsg[256];
};

/** Keep @p fmt's message as the participant's last error (tpc_participant_errmsg()). */
static inline __attribute__((format(printf, 2, 3))) void
part_set_err(struct tpc_participant *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
	va_end(ap);
}

/** Log through the application's callback, if it set one (libtpc logs nowhere else). */
static inline __attribute__((format(printf, 3, 4))) void
part_logf(struct tpc_participant *p, enum tpc_log_level lvl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!p->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->cfg.log(p->cfg.log_arg, (int)lvl, msg);
}

/* part_net.c */
int part_net_start(struct tpc_participant *p);
void part_net_stop(struct tpc_participant *p);
/** Bytes queued for the coordinator and not yet written to the socket. */
size_t part_net_unsent(struct tpc_participant *p);

/* part_send.c */
void part_send_join(struct tpc_participant *p, const struct ptxn *t);
void part_send_vote(struct tpc_participant *p, uint64_t txid, int yes, const char *reason,
		    uint64_t incarnation);
void part_send_ack(struct tpc_participant *p, uint64_t txid);
void part_send_status_query(struct tpc_participant *p, uint64_t txid);
void part_send_orphan_report(struct tpc_participant *p, Tpc__OrphanReport *rep);

/* part_exec.c */
int part_step(struct tpc_participant *p, struct ptxn *t, const struct part_event *ev);
void part_step_all(struct tpc_participant *p, const struct part_event *ev);
struct ptxn *part_txn_new(struct tpc_participant *p, uint64_t txid);
void part_txn_free(struct tpc_participant *p, struct ptxn *t);
int part_sink_prepare(struct tpc_participant *p, struct ptxn *t, char *reason,
		      size_t reason_len);
int part_log_writer_write(void *ctx, struct bw_item *head, size_t n);
int part_log_writer_sync(void *ctx);
int part_sink_writer_write(void *ctx, struct bw_item *head, size_t n);
void part_flush_forgets(struct tpc_participant *p);
void part_fail_all_stages(struct tpc_participant *p, int err);
void part_on_lazy_timer(void *arg);
#define PART_LAZY_FLUSH_MS 50
#define PART_LAZY_MAX 4096
void part_writer_done(void *ctx, struct bw_item *item, int status);
uint64_t *part_deadline_armed(void *ctx, uint64_t txid);
void part_deadline_fire(void *ctx, uint64_t txid);

/**
 * @brief Replace every zero numeric field of @p cfg by its documented default (the
 *        rule of tpc/participant.h: zero means the default, never "none").
 */
void part_config_resolve(tpc_participant_config *cfg);

/* part_ask.c: status queries for txids the participant holds no record of. */
int part_ask_reply(struct tpc_participant *p, uint64_t txid, int status);
/* @p until = now (CLOCK_REALTIME, for pthread_cond_timedwait) + @p ms. */
struct timespec;
void part_deadline(struct timespec *until, uint32_t ms);
/* participant.c: run fn(p, arg) on the loop thread and wait (started mode), or at once. */
int part_run_on_loop(struct tpc_participant *p, void (*fn)(struct tpc_participant *, void *),
		     void *arg);

#endif
