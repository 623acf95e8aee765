/*
 * tpc_bench.c - tpc-bench, tpc's load generator: the command line, and the order of a
 * run (start the services, calibrate, load or memtest, stop, report).
 *
 * Owns no measurement itself (see bench.h for which file measures what). Keeps the
 * promise that a run leaves nothing behind: spawned services are stopped and their
 * folder removed on every path out of main() after they started, SIGINT and SIGTERM
 * included (they are blocked, and only the load's supervisor waits for them).
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tpc/common.h"
#include "util.h"


static const char usage_text[] =
	"Usage: tpc-bench --spawn [options]\n"
	"       tpc-bench --coordinator HOST:PORT [--kv HOST:PORT ...] [options]\n"
	"       tpc-bench --spawn --memtest N [options]\n"
	"\n"
	"Load generator for tpc. C clients each run transactions in a closed loop: begin,\n"
	"one Put to each of P tpc-kv services, commit. Reports throughput (committed/s),\n"
	"latency percentiles from a log-linear histogram, aborts, errors, and CPU per\n"
	"transaction of every process; --calibrate adds this machine's fsync rate and\n"
	"loopback round trip, measured in the same run, and the ratios to them.\n"
	"\n"
	"Services:\n"
	"      --spawn                start a coordinator and P tpc-kv services on free\n"
	"                             127.0.0.1 ports in a temporary folder; stop them and\n"
	"                             remove the folder at the end\n"
	"  -C, --coordinator HOST:PORT  or drive a running coordinator ...\n"
	"  -k, --kv HOST:PORT         ... and running tpc-kv services (repeatable)\n"
	"      --pid NAME=PID         count this running process's CPU too (repeatable)\n"
	"      --inline-sync          with --spawn: start the servers with --inline-sync\n"
	"                             (a lone forced write synced on their event loop)\n"
	"      --group-commit N       with --spawn: records per forced write in the\n"
	"                             coordinator and every tpc-kv; 1 turns group commit off\n"
	"                             (default: the servers' own)\n"
	"      --bin-dir DIR          where tpc-coordinator and tpc-kv are (default: next\n"
	"                             to tpc-bench, in the build tree or installed)\n"
	"      --dir DIR              parent of the run folder (default $TMPDIR or /tmp);\n"
	"                             without --spawn, where --calibrate measures\n"
	"      --keep                 keep the run folder (logs, data)\n"
	"      --tls-cert FILE, --tls-key FILE, --tls-ca FILE\n"
	"                             mutual TLS to the coordinator and the tpc-kv services\n"
	"      --tls-dir DIR          with --spawn: TLS everywhere, with the certificates\n"
	"                             of `scripts/make-certs.sh DIR coordinator kv1 .. kvP\n"
	"                             bench` (the client uses DIR/bench.crt)\n"
	"\n"
	"Load:\n"
	"      --clients C            concurrent clients (default 8)\n"
	"  -p, --participants P       tpc-kv services each transaction writes to (default 2\n"
	"                             with --spawn, else the number of --kv; 0 allowed)\n"
	"  -t, --threads T            client event-loop threads (default 1, 2 from 16\n"
	"                             clients); clients share one coordinator and one tpc-kv\n"
	"                             connection per service per thread\n"
	"  -N, --txns N               measure N transactions ...\n"
	"  -D, --duration DURATION    ... or measure for DURATION (default 10s)\n"
	"  -w, --warmup DURATION      run this long before measuring (default 2s)\n"
	"      --value-size BYTES     bytes per value (default 64)\n"
	"      --key-space N          keys per client, overwritten in turn, so the stored\n"
	"                             data stays bounded (default: a new key per transaction)\n"
	"      --txn-keys             begin each transaction with a unique client\n"
	"                             transaction key (exercises the coordinator's key log)\n"
	"      --timeout DURATION     per request (default 30s)\n"
	"\n"
	"Measurements:\n"
	"      --calibrate            first measure 4 KiB write+fdatasync in the run folder\n"
	"                             and the loopback TCP round-trip time\n"
	"      --calibrate-time DURATION  how long to measure fdatasync (default 2s)\n"
	"      --syscalls             count the servers' system calls (and their fdatasync\n"
	"                             and fsync calls) over the window with `perf stat`\n"
	"      --memtest N            instead of the load: open N transactions (with P\n"
	"                             participants joined each), read the coordinator's\n"
	"                             VmRSS before and after, report bytes per open one\n"
	"\n"
	"Output:\n"
	"      --json                 print one JSON object (every parameter and figure)\n"
	"                             instead of the summary\n"
	"      --json-file FILE       also write that JSON object to FILE\n"
	"      --no-progress          no progress line (shown each second on a terminal)\n"
	"  -h, --help                 show this help\n"
	"  -V, --version              show the version\n"
	"\n"
	"Durations need a unit: ms, s, m or h (1.5s too; a bare number other than 0 is\n"
	"an error). CPU per transaction\n"
	"is user+system time of the coordinator and tpc-kv processes (/proc/PID/stat) and\n"
	"of tpc-bench itself, over the measured window, divided by committed transactions.\n"
	"With --spawn, device syncs per transaction come from the servers' own counters\n"
	"(the coordinator's tpc_log_syncs_total, each tpc-kv's --stats-file) over the same\n"
	"window; a build without them is reported as not counted.\n"
	"\n"
	"Examples:\n"
	"  tpc-bench --spawn --calibrate --participants 2 --clients 256 --duration 20s\n"
	"  tpc-bench --spawn --group-commit 1 --clients 64 --txns 20000 --json\n"
	"  tpc-bench --spawn --memtest 100000 --participants 0\n";

enum {
	OPT_SPAWN = 256, OPT_PID, OPT_GROUP, OPT_BIN_DIR, OPT_DIR, OPT_KEEP,
	OPT_VALUE, OPT_KEY_SPACE, OPT_TXN_KEYS, OPT_TIMEOUT, OPT_CALIBRATE, OPT_CAL_TIME, OPT_MEMTEST, OPT_JSON,
	OPT_JSON_FILE, OPT_NO_PROGRESS, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA, OPT_TLS_DIR,
	OPT_CLIENTS, OPT_SYSCALLS, OPT_INLINE_SYNC,
};

static const struct option long_opts[] = {
	{ "spawn", no_argument, NULL, OPT_SPAWN },
	{ "coordinator", required_argument, NULL, 'C' },
	{ "kv", required_argument, NULL, 'k' },
	{ "pid", required_argument, NULL, OPT_PID },
	{ "group-commit", required_argument, NULL, OPT_GROUP },
	{ "inline-sync", no_argument, NULL, OPT_INLINE_SYNC },
	{ "bin-dir", required_argument, NULL, OPT_BIN_DIR },
	{ "dir", required_argument, NULL, OPT_DIR },
	{ "keep", no_argument, NULL, OPT_KEEP },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-dir", required_argument, NULL, OPT_TLS_DIR },
	{ "clients", required_argument, NULL, OPT_CLIENTS },
	{ "participants", required_argument, NULL, 'p' },
	{ "threads", required_argument, NULL, 't' },
	{ "txns", required_argument, NULL, 'N' },
	{ "duration", required_argument, NULL, 'D' },
	{ "warmup", required_argument, NULL, 'w' },
	{ "value-size", required_argument, NULL, OPT_VALUE },
	{ "key-space", required_argument, NULL, OPT_KEY_SPACE },
	{ "txn-keys", no_argument, NULL, OPT_TXN_KEYS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "calibrate", no_argument, NULL, OPT_CALIBRATE },
	{ "calibrate-time", required_argument, NULL, OPT_CAL_TIME },
	{ "syscalls", no_argument, NULL, OPT_SYSCALLS },
	{ "memtest", required_argument, NULL, OPT_MEMTEST },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "json-file", required_argument, NULL, OPT_JSON_FILE },
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* What the command line said, before defaults that depend on other options. */
struct cli {
	int participants_set, threads_set, duration_set, no_progress;
};

static int bad(const char *opt, const char *val, const char *why)
{
	return tpc_usage_error("tpc-bench", "--%s %s: %s", opt, val, why);
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v;
	if (tpc_parse_u64(s, lo, hi, &v))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int add_pid(struct bench *b, const char *arg)
{
	const char *eq = strchr(arg, '=');
	uint64_t pid;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(b->procs[0].name) ||
	    tpc_parse_u64(eq + 1, 1, INT32_MAX, &pid) || b->nprocs == BENCH_MAX_PROCS - 1)
		return -EINVAL;
	struct bench_proc *p = &b->procs[b->nprocs++];
	memcpy(p->name, arg, (size_t)(eq - arg));
	p->name[eq - arg] = '\0';
	p->pid = (pid_t)pid;
	return 0;
}

/* A duration of at least @p lo ms (at most a week), the house way (common/cli.h). */
static int dur(const char *opt, const char *arg, uint64_t lo, uint64_t *out)
{
	return tpc_cli_duration("tpc-bench", opt, arg, lo, 7 * 24 * 3600000ull, out);
}

/* One option; returns 0, or the exit code for a bad one. */
static int take_option(struct bench *b, struct cli *cli, int c, const char *arg)
{
	struct bench_config *cfg = &b->cfg;
	const char *name = NULL;
	int rc = 0;

	switch (c) {
	case OPT_SPAWN: cfg->spawn = 1; break;
	case 'C': cfg->coordinator = arg; break;
	case 'k':
		if (cfg->nkv == BENCH_MAX_PARTS)
			return bad("kv", arg, "too many services");
		cfg->kv[cfg->nkv++] = arg;
		break;
	case OPT_PID: rc = add_pid(b, arg); name = "pid"; break;
	case OPT_GROUP: rc = parse_u32(arg, 1, 1u << 20, &cfg->group_commit); name = "group-commit"; break;
	case OPT_INLINE_SYNC: cfg->inline_sync = 1; break;
	case OPT_BIN_DIR: cfg->bin_dir = arg; break;
	case OPT_DIR: cfg->dir = arg; break;
	case OPT_KEEP: cfg->keep = 1; break;
	case OPT_TLS_CERT: cfg->tls_cert = arg; break;
	case OPT_TLS_KEY: cfg->tls_key = arg; break;
	case OPT_TLS_CA: cfg->tls_ca = arg; break;
	case OPT_TLS_DIR: cfg->tls_dir = arg; break;
	case OPT_CLIENTS: rc = parse_u32(arg, 1, 1u << 20, &cfg->clients); name = "clients"; break;
	case 'p':
		rc = parse_u32(arg, 0, BENCH_MAX_PARTS, &cfg->participants);
		cli->participants_set = 1;
		name = "participants";
		break;
	case 't': rc = parse_u32(arg, 1, 256, &cfg->threads); cli->threads_set = 1; name = "threads"; break;
	case 'N': rc = tpc_parse_u64(arg, 1, UINT64_MAX / 2, &cfg->txns); name = "txns"; break;
	case 'D':
		cli->duration_set = 1;
		return dur("--duration", arg, 1, &cfg->duration_ms);
	case 'w': return dur("--warmup", arg, 0, &cfg->warmup_ms);
	case OPT_VALUE: {
		uint64_t v;
		rc = tpc_parse_size(arg, &v) || v > (1u << 19) ? -EINVAL : 0;
		cfg->value_size = (uint32_t)v;
		name = "value-size";
		break;
	}
	case OPT_TXN_KEYS: cfg->txn_keys = 1; break;
	case OPT_KEY_SPACE: rc = tpc_parse_u64(arg, 1, UINT64_MAX, &cfg->key_space); name = "key-space"; break;
	case OPT_TIMEOUT: {
		uint64_t ms = 0;
		rc = tpc_cli_duration("tpc-bench", "--timeout", arg, 1, UINT32_MAX, &ms);
		cfg->timeout_ms = (uint32_t)ms;
		return rc;
	}
	case OPT_CALIBRATE: cfg->calibrate = 1; break;
	case OPT_SYSCALLS: cfg->syscalls = 1; break;
	case OPT_CAL_TIME: return dur("--calibrate-time", arg, 1, &cfg->calibrate_ms);
	case OPT_MEMTEST: rc = tpc_parse_u64(arg, 1, 100000000, &cfg->memtest); name = "memtest"; break;
	case OPT_JSON: cfg->json = 1; break;
	case OPT_JSON_FILE: cfg->json_file = arg; break;
	case OPT_NO_PROGRESS: cli->no_progress = 1; break;
	default: return TPC_EXIT_USAGE;
	}
	return rc ? bad(name, arg, "not a valid value") : 0;
}

/* Defaults that depend on other options, and combinations that make no sense. */
static int settle_config(struct bench *b, const struct cli *cli)
{
	struct bench_config *cfg = &b->cfg;

	if (cfg->spawn == !!cfg->coordinator) {
		fputs("tpc-bench: give either --spawn or --coordinator HOST:PORT\n"
		      "Try 'tpc-bench --help'.\n", stderr);
		return 2;
	}
	if (cfg->spawn && cfg->nkv) {
		fputs("tpc-bench: --kv goes with --coordinator, not --spawn\n", stderr);
		return 2;
	}
	if (!cfg->spawn && cfg->group_commit) {
		fputs("tpc-bench: --group-commit needs --spawn (set it on your servers)\n", stderr);
		return 2;
	}
	if (cfg->tls_dir && !cfg->spawn) {
		fputs("tpc-bench: --tls-dir goes with --spawn (give --tls-cert, --tls-key and "
		      "--tls-ca for running servers)\n", stderr);
		return 2;
	}
	if (cfg->tls_dir) { /* the client's own files, unless given */
		static const char *const ext[3] = { "bench.crt", "bench.key", "ca.crt" };
		const char **dst[3] = { &cfg->tls_cert, &cfg->tls_key, &cfg->tls_ca };
		for (int i = 0; i < 3; i++) {
			snprintf(cfg->tls_path[i], sizeof(cfg->tls_path[i]), "%s/%s", cfg->tls_dir,
				 ext[i]);
			if (!*dst[i])
				*dst[i] = cfg->tls_path[i];
		}
	}
	if (!cli->participants_set)
		cfg->participants = cfg->spawn ? 2 : cfg->nkv;
	if (!cfg->spawn && cfg->participants > cfg->nkv) {
		fprintf(stderr, "tpc-bench: --participants %u needs as many --kv\n", cfg->participants);
		return 2;
	}
	if (cfg->txns && cli->duration_set) {
		fputs("tpc-bench: give --txns or --duration, not both\n", stderr);
		return 2;
	}
	if (!cli->threads_set)
		cfg->threads = cfg->clients >= 16 ? 2 : 1;
	if (cfg->threads > cfg->clients)
		cfg->threads = cfg->clients;
	cfg->progress = !cli->no_progress && !cfg->json && isatty(STDOUT_FILENO);
	return 0;
}

static char *join_argv(int argc, char **argv)
{
	size_t len = 1;
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	for (int i = 0; i < argc; i++)
		p += sprintf(p, i ? " %s" : "%s", argv[i]);
	*p = '\0';
	return s;
}

static int parse_args(struct bench *b, int argc, char **argv)
{
	struct bench_config *cfg = &b->cfg;
	struct cli cli = { 0 };
	int c, rc;

	*cfg = (struct bench_config){ .clients = 8, .duration_ms = 10000, .warmup_ms = 2000,
				      .value_size = 64, .timeout_ms = 30000, .calibrate_ms = 2000 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":C:k:p:t:N:D:w:hV", long_opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			tpc_cli_exit_status(stdout, "the run finished and its figures were printed",
					    "the run failed (a server did not start, errors)");
			return -1;
		}
		if (c == 'V') {
			tpc_cli_version("tpc-bench");
			return -1;
		}
		if (c == '?' || c == ':')
			return tpc_cli_getopt_error("tpc-bench", c, argv);
		if ((rc = take_option(b, &cli, c, optarg)))
			return rc;
	}
	if (optind < argc)
		return tpc_usage_error("tpc-bench", "unexpected argument '%s'", argv[optind]);
	return settle_config(b, &cli);
}

static pid_t find_proc(const struct bench *b, const char *name)
{
	for (uint32_t i = 0; i < b->nprocs; i++)
		if (strcmp(b->procs[i].name, name) == 0)
			return b->procs[i].pid;
	return 0;
}

/* The folder where --calibrate measures and whose filesystem is reported. */
static void pick_run_dir(struct bench *b)
{
	const char *tmp = getenv("TMPDIR");

	if (b->run_dir[0])
		return;
	snprintf(b->run_dir, sizeof(b->run_dir), "%s",
		 b->cfg.dir ? b->cfg.dir : tmp && *tmp ? tmp : "/tmp");
}

static int measure(struct bench *b)
{
	int rc = 0;

	if (b->cfg.calibrate && (rc = calibrate_run(&b->cal, b->run_dir, b->cfg.calibrate_ms)))
		return rc;
	if (!b->cfg.memtest) {
		counters_start(b);
		rc = load_run(b);
		counters_finish(b);
		return rc;
	}
	pid_t coord = b->cluster ? cluster_coordinator_pid(b->cluster) : find_proc(b, "coordinator");
	if (!coord) {
		fputs("tpc-bench: --memtest needs --spawn or --pid coordinator=PID\n", stderr);
		return -EINVAL;
	}
	return memtest_run(b, coord);
}

static int run(struct bench *b)
{
	struct bench_proc *self;
	int rc;

	if (b->cfg.spawn &&
	    (rc = cluster_start(b, b->cfg.participants,
				b->cfg.memtest ? CLUSTER_MEMTEST : CLUSTER_LOAD, &b->cluster)))
		return rc;
	self = &b->procs[b->nprocs++];
	snprintf(self->name, sizeof(self->name), "tpc-bench");
	self->pid = 0;
	pick_run_dir(b);
	machine_describe(&b->machine, b->run_dir);
	rc = measure(b);
	cluster_stop(b->cluster);
	b->cluster = NULL;
	return rc;
}

static int output(const struct bench *b)
{
	int rc = 0;

	if (b->cfg.json)
		rc = report_json(b, "-");
	else
		report_human(b);
	if (b->cfg.json_file && report_json(b, b->cfg.json_file)) {
		fprintf(stderr, "tpc-bench: cannot write %s\n", b->cfg.json_file);
		rc = -EIO;
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	sigset_t stop;
	int rc;

	if (!b)
		return 1;
	rc = parse_args(b, argc, argv);
	if (rc) {
		free(b);
		return rc < 0 ? 0 : rc;
	}
	b->argv_line = join_argv(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	rc = run(b);
	if (rc == 0)
		rc = output(b);
	int failed = rc || (!b->cfg.memtest && b->load.committed == 0);
	if (!rc && failed)
		fputs("tpc-bench: no transaction committed\n", stderr);
	free((char *)b->argv_line);
	free(b);
	return failed ? 1 : 0;
}
