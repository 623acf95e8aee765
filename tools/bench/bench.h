/*
 * bench.h - what tpc-bench's parts share: the run's configuration (filled from the
 * command line, then read-only), the figures each part measures, and the functions
 * that connect the parts:
 *
 *   tpc_bench.c  command line, order of the steps, exit code
 *   cluster.c    --spawn: a coordinator and tpc-kv services in a temporary folder;
 *                CPU and memory of processes from /proc
 *   calibrate.c  write+fdatasync rate in the run folder, loopback round-trip time
 *   load.c       the closed-loop load: client threads, the measured window
 *   counters.c   the servers' device syncs (their own counters) and system calls (perf)
 *   memtest.c    coordinator memory per open transaction
 *   report.c     the human summary and the JSON object
 *
 * There is no process-wide mutable state: everything hangs off struct bench.
 */
#ifndef TPC_BENCH_BENCH_H
#define TPC_BENCH_BENCH_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hist.h"

#define BENCH_MAX_PARTS 16
#define BENCH_MAX_PROCS (BENCH_MAX_PARTS + 2)

struct bench_config {
	/* load */
	uint32_t clients, participants, threads;
	uint64_t txns;                 /* measured transactions, or 0 for a timed run */
	uint64_t duration_ms, warmup_ms;
	uint32_t value_size;
	uint64_t key_space;            /* keys per client, reused in turn; 0: a new key each time */
	int txn_keys;                  /* Begin with a client transaction key (unique per txn) */
	uint32_t timeout_ms;           /* per request */
	/* cluster */
	int spawn;
	const char *coordinator;       /* HOST:PORT (given, or the spawned one's) */
	const char *kv[BENCH_MAX_PARTS];
	uint32_t nkv;
	uint32_t group_commit;         /* 0: the servers' default */
	int inline_sync;               /* --inline-sync: pass it to the spawned servers */
	const char *bin_dir, *dir;
	int keep;
	/* TLS (common/tls.h): the client's files (--tls-cert/-key/-ca), and with --spawn
	 * --tls-dir the folder scripts/make-certs.sh filled for every process */
	const char *tls_cert, *tls_key, *tls_ca;
	const char *tls_dir;
	char tls_path[3][PATH_MAX];    /* --tls-dir: the client's files, filled in */
	/* measurements */
	int calibrate;
	uint64_t calibrate_ms;
	int syscalls;                  /* --syscalls: count the servers' system calls (perf) */
	uint64_t memtest;              /* open transactions, or 0 */
	/* output */
	int json, progress;
	const char *json_file;
};

/* One process whose CPU time the run accounts for. */
struct bench_proc {
	char name[32];
	pid_t pid;                     /* 0: this process (getrusage) */
	double cpu_a, cpu_b;           /* user+system seconds at the window's edges */
};

struct calibration {
	int done;
	char path[PATH_MAX];
	double fsync_secs, fsync_ops_per_s, fsync_mean_us, fsync_p50_us, fsync_p99_us;
	uint64_t fsync_n;
	uint32_t fsync_block;
	double rtt_mean_us, rtt_p50_us, rtt_p99_us;
	uint64_t rtt_n;
};

struct load_result {
	int done, interrupted;
	double window_s;               /* the measured window */
	uint64_t committed, aborted, err_begin, err_put, err_commit, unfinished;
	double throughput, throughput_median_1s;
	struct hist lat;               /* committed transactions, ns */
	double cpu_window_s;           /* between the CPU snapshots */
};

/* Over the CPU window: the servers' device syncs and system calls. */
struct server_counters {
	int syncs_ok;                  /* every server had a sync counter at both edges */
	uint64_t coord_syncs, kv_syncs; /* at the first edge, then the window's growth */
	int syscalls_ok;               /* perf counted the window */
	uint64_t syscalls, fdatasyncs, fsyncs;
	/* perf stat, while it runs */
	pid_t perf_pid;
	int perf_ctl, perf_ack, perf_failed;
	char perf_out[PATH_MAX];
};

struct memtest_result {
	int done;
	uint64_t open_txns, failed;
	uint32_t participants;
	uint64_t rss_before_kib, rss_after_kib;
	double bytes_per_txn;
};

struct machine_info {
	char cpu_model[128], kernel[256], fs_type[64];
	long cores;
	double loadavg_1m;             /* when the run started */
};

struct bench {
	struct bench_config cfg;
	char run_dir[PATH_MAX];        /* the folder of this run's data (spawn) or --dir */
	struct bench_proc procs[BENCH_MAX_PROCS];
	uint32_t nprocs;
	double busy_a, busy_b;         /* the whole machine's busy CPU seconds at the edges */
	struct calibration cal;
	struct load_result load;
	struct server_counters counters;
	struct memtest_result mem;
	struct machine_info machine;
	struct cluster *cluster;       /* --spawn only */
	char spawned_addr[BENCH_MAX_PROCS][32]; /* --spawn: what cfg.coordinator, cfg.kv point to */
	const char *argv_line;         /* the command line, for the JSON */
};

/* ---- cluster.c ---- */
struct cluster;

/** @brief Which extra limits the spawned coordinator and tpc-kv get. */
enum cluster_profile { CLUSTER_LOAD, CLUSTER_MEMTEST };

/**
 * @brief Make the run folder under cfg->dir, start a coordinator and @p nkv tpc-kv
 *        services on free ports, wait until each accepts connections.
 * @param[out] out the cluster; its addresses go to b->cfg.coordinator and b->cfg.kv,
 *             its processes to b->procs
 * @return 0, or a negative errno with a message on stderr (nothing is left running)
 */
int cluster_start(struct bench *b, uint32_t nkv, enum cluster_profile profile,
		  struct cluster **out);

/** @brief SIGTERM (then SIGKILL) every process, reap them, remove the folder unless kept. */
void cluster_stop(struct cluster *cl);

/**
 * @brief Child @p i (0: the coordinator, then tpc-kv 1..P): its pid, and @p extra: the
 *        coordinator's admin address, a tpc-kv's --stats-file ("" if it has none).
 * @return 0, or -ENOENT past the last child
 */
int cluster_child(const struct cluster *cl, unsigned i, pid_t *pid, const char **extra);

/** @brief The pid of the spawned coordinator, or 0. */
pid_t cluster_coordinator_pid(const struct cluster *cl);

/** @brief user+system CPU seconds of @p pid (all its threads), or of this process for 0. */
int proc_cpu_seconds(pid_t pid, double *out);

/** @brief CPU seconds the whole machine spent busy (all CPUs, /proc/stat) since boot. */
int machine_busy_seconds(double *out);

/** @brief VmRSS of @p pid in KiB. @return 0 or a negative errno. */
int proc_rss_kib(pid_t pid, uint64_t *out);

/** @brief Fill @p m: CPU model, cores, kernel, filesystem type of @p dir. */
void machine_describe(struct machine_info *m, const char *dir);

/* ---- calibrate.c ---- */
/** @brief Measure write+fdatasync in @p dir and the loopback RTT. @return 0 or -errno. */
int calibrate_run(struct calibration *cal, const char *dir, uint64_t fsync_ms);

/* ---- counters.c ---- */
/** @brief With --syscalls, start perf stat (events off) on the servers. @return 0. */
int counters_start(struct bench *b);

/** @brief At a CPU window edge (0: start, 1: end): read the sync counters, switch perf. */
void counters_edge(struct bench *b, int edge);

/** @brief Stop perf and read its counts. */
void counters_finish(struct bench *b);

/* ---- load.c ---- */
/** @brief Run the closed-loop load against b->cfg's services. @return 0 or -errno. */
int load_run(struct bench *b);

/* ---- memtest.c ---- */
/** @brief Open b->cfg.memtest transactions and measure the coordinator's RSS growth. */
int memtest_run(struct bench *b, pid_t coordinator);

/* ---- report.c ---- */
/** @brief The human summary on stdout. */
void report_human(const struct bench *b);

/** @brief The JSON object to @p path ("-": stdout). @return 0 or -errno. */
int report_json(const struct bench *b, const char *path);

/** @brief CPU microseconds per committed transaction over the window, all processes. */
double report_cpu_us_per_txn(const struct bench *b);

#endif
