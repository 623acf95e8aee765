/*
 * torture.h - tpc-torture's parts, shared inside tools/torture/.
 *
 *   tpc_torture.c     command line: run / client / check
 *   runner.c          a run: folder, processes, the schedule, checkpoints, the end
 *   collect.c         after a run: status queries, feeding the checker, counting fault
 *                     lines, the report
 *   torture_client.c  the workload process (`tpc-torture client`)
 *   schedule.c        the seeded schedule and fault rotation (pure)
 *   checker.c         the invariants (pure)
 *   records.c         the outcomes-file format
 *   supervise.c       child processes, ports, proxy control lines
 *   quiet.c           read-only looks at the coordinator's and participants' logs
 *   actors.c          the schedule's strangers and operator (heuristic decisions)
 *   pg_run.c          --pg: the PostgreSQL cluster, its crashes, what it holds
 *   pg_service.c      --pg: the PostgreSQL participant (`tpc-torture pg-service`)
 */
#ifndef TPC_TORTURE_H
#define TPC_TORTURE_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "checker.h"
#include "schedule.h"
#include "supervise.h"

#define TT_MAX_CLIENTS 64
#define TT_MAX_CHECKPOINTS 4096
#define TT_MAX_LEFTOVER 64   /* prepared / unacked txids kept per checkpoint */
#define TT_MAX_DEATHS 64     /* unexpected deaths kept for the report */
#define TT_MAX_STRANGER_BAD 64 /* strangers not refused, kept for the checker */
#define TT_STRANGER_MSG 400

struct tt_run_opts {
	uint64_t seed;
	uint64_t duration_ms, round_ms, quiet_bound_ms;
	unsigned nclients, nparts, inflight;
	const char *workdir, *bin_dir;
	const char *coord_bin, *kv_bin, *proxy_bin;   /* explicit paths win over --bin-dir */
	enum tt_profile profile;
	enum tt_broken broken;
	int expect_violation, no_proxy, keep, quiet;
	uint32_t group_commit;
	int seed_given;
	int classic;            /* the workload and schedule from before staged writes */
	unsigned staged_pct;    /* clients' --staged-pct */
	uint64_t short_expiry_ms; /* kv1's --txn-timeout (0: the others' 10s) */
	int pg;                 /* --pg: participant TT_PG_INDEX is PostgreSQL (pg_run.c) */
	const char *pg_harness; /* scripts/pg-harness.sh */
	const char *tls_dir;  /* TLS everywhere: scripts/make-certs.sh DIR coordinator kv1..kvN
				 client (needs no_proxy: the fault proxy reads frames) */
};

/* What healing left behind at one checkpoint. */
struct tt_leftover {
	uint64_t prepared[TT_MAX_PARTS][TT_MAX_LEFTOVER];
	size_t nprepared[TT_MAX_PARTS];
	uint64_t unacked[TT_MAX_LEFTOVER];
	size_t nunacked;
	uint64_t ms;            /* heal to quiet (or to giving up) */
	int quiet;              /* reached quiet at all */
};

struct tt_stats {
	uint64_t actions;                      /* schedule actions carried out */
	uint64_t kills[TT_ROLE_COUNT];         /* SIGKILL by the schedule */
	uint64_t crashes[TT_ROLE_COUNT];       /* died on their own (fault points) */
	uint64_t unclean[TT_ROLE_COUNT];       /* exited otherwise on their own: a bug */
	uint64_t armed_starts[TT_ROLE_COUNT];
	uint64_t armed_point[32];              /* starts with the point armed */
	uint64_t partitions, resets, drops, delays;
	uint64_t checkpoints;
	uint64_t worst_recovery_ms, total_recovery_ms;
	uint64_t control_errors;
	uint64_t strangers[2], strangers_refused[2];  /* [0] another folder, [1] same folder */
	uint64_t op_calls, op_accepted, op_refused, op_unreachable, op_uncertain, op_forced;
};

/* The one stranger process that may be running (actors.c). */
struct tt_stranger {
	struct tt_proc p;
	int on_folder;          /* 1: on the participant's own folder (the lock) */
	unsigned part;
	uint64_t deadline_ms;   /* run time by which it must have exited */
	pid_t holder;           /* on_folder: the participant's pid when it started */
	unsigned count;         /* strangers started so far (names their folders and logs) */
};

struct tt_runner {
	struct tt_run_opts o;
	struct tt_schedule sched;
	char dir[PATH_MAX];                    /* the run folder */
	char coord_bin[PATH_MAX], kv_bin[PATH_MAX], proxy_bin[PATH_MAX], self[PATH_MAX];
	FILE *slog;                            /* schedule.log */
	FILE *report;                          /* report.txt */
	uint64_t t0;
	int sigfd;
	int interrupted;
	int coord_port, admin_port, kv_port[TT_MAX_PARTS];
	int link_port[TT_MAX_PARTS + 1], ctl_port[TT_MAX_PARTS + 1];
	struct tt_proc coord, kv[TT_MAX_PARTS], proxy[TT_MAX_PARTS + 1];
	struct tt_proc client[TT_MAX_CLIENTS];
	struct tt_proc *all[1 + 2 * TT_MAX_PARTS + 1 + TT_MAX_CLIENTS];
	size_t nall;
	struct tt_stats st;
	struct tt_leftover *left;              /* one per checkpoint */
	size_t nleft;
	char death_who[TT_MAX_DEATHS][32];     /* "kv2" */
	char deaths[TT_MAX_DEATHS][160];       /* "exited with status 1 at 12.3 s (see ...)" */
	size_t ndeaths;
	struct tt_stranger stranger;
	char stranger_bad[TT_MAX_STRANGER_BAD][TT_STRANGER_MSG];
	int stranger_bad_part[TT_MAX_STRANGER_BAD];
	size_t nstranger_bad;
	FILE *oplog;                           /* outcomes/operator.txt */
	uint64_t oprng;                        /* picks among the open transactions */
	uint64_t resolved, still_pending;
	int check_only;                        /* `tpc-torture check`: no run to report */
	char pg_conninfo[1400];                /* --pg: the cluster; "" when not started */
	uint64_t pg_rng, pg_next_crash_ms;     /* the PostgreSQL crashes of the schedule */
	uint64_t pg_crashes, pg_restart_failures;
	uint64_t pg_orphans;                   /* prepared transactions left after the run */
};

/* --pg: the participant that is PostgreSQL (kv2) */
#define TT_PG_INDEX 1u
#define TT_IS_PG(r, i) ((r)->o.pg && (i) == TT_PG_INDEX)

/* tpc_torture.c */
void tt_run_opts_defaults(struct tt_run_opts *o);
/** @brief The command line that replays this run's schedule. */
void tt_replay_command(const struct tt_run_opts *o, char *buf, size_t cap);

/* runner.c */
int tt_run(struct tt_runner *r);
/** @brief Milliseconds since the run started. */
uint64_t tt_elapsed(const struct tt_runner *r);
/** @brief One line in schedule.log, stamped with the run time. */
void tt_slog(struct tt_runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** @brief With --tls-dir: append the three TLS options of certificate @p name at argv[*n]
 *         (their paths are written into @p buf); without it, nothing. */
void tt_add_tls_args(const struct tt_runner *r, const char *name, const char *argv[],
		     size_t *n, char buf[3][PATH_MAX + 48]);

/* collect.c */
/** @brief Ask the coordinator about every outcome no client learnt; append "resolved". */
int tt_resolve_unknown(struct tt_runner *r);
/**
 * @brief Check the run folder and print the report.
 * @return the number of violations, or a negative code when the check itself failed
 */
long tt_check_and_report(struct tt_runner *r);
/** @brief printf to stdout and to report.txt. */
void tt_out(struct tt_runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* actors.c */
/** @brief Start a stranger for participant @p part (TT_ACT_STRANGER). */
void tt_stranger_start(struct tt_runner *r, unsigned part, int on_folder);
/** @brief Notice the stranger's exit, or kill it past its deadline. */
void tt_stranger_poll(struct tt_runner *r);
/** @brief At the end: wait for a running stranger until its deadline. */
void tt_stranger_finish(struct tt_runner *r);
/** @brief One heuristic decision through the admin API (TT_ACT_OPERATOR). */
void tt_operator_act(struct tt_runner *r, uint32_t draw);

/* torture_client.c */
int tt_client_main(int argc, char **argv);

/* pg_run.c: the cluster of --pg, its crashes, its prepared transactions and tt_writes */
int tt_pg_start(struct tt_runner *r);
void tt_pg_stop(struct tt_runner *r);
/** @brief In the schedule loop: crash and restart PostgreSQL when its time has come. */
void tt_pg_poll(struct tt_runner *r);
/** @brief The txids of pg_prepared_xacts (*n may exceed @p cap). @return 0 or -EIO. */
int tt_pg_prepared(struct tt_runner *r, uint64_t *txids, size_t cap, size_t *n);
/** @brief Feed tt_writes to the checker as participant @p part's sink. */
int tt_pg_feed(struct tt_runner *r, struct tt_checker *ck, unsigned part);

/* pg_service.c: `tpc-torture pg-service`, the PostgreSQL participant of run --pg */
int tt_pg_service_main(int argc, char **argv);

#endif
