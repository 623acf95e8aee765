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
	int coord_port, kv_port[TT_MAX_PARTS];
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
	uint64_t resolved, still_pending;
	int check_only;                        /* `tpc-torture check`: no run to report */
};

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

/* torture_client.c */
int tt_client_main(int argc, char **argv);

#endif
