/*
 * tpc_torture.c - tpc-torture's command line: `run` (a torture run, runner.c), `client`
 * (a workload process, torture_client.c), `check` (check a kept run folder again) and
 * `pg-service` (the PostgreSQL participant of run --pg, pg_service.c).
 *
 * Owns option parsing, the defaults, finding the binaries under test, and the replay
 * command line printed with a failing run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "torture.h"
#include "tpc/common.h"
#include "util.h"

static const char usage_text[] =
	"Usage: tpc-torture run [options]\n"
	"       tpc-torture check --run-dir DIR [--participants N] [--clients N]\n"
	"       tpc-torture client ...   (a workload process; see 'tpc-torture client --help')\n"
	"       tpc-torture pg-service ...  (the PostgreSQL participant of run --pg)\n"
	"\n"
	"Proves tpc's guarantees by breaking things. `run` starts a coordinator, tpc-kv\n"
	"participants (append-only file sinks), fault proxies and client processes on\n"
	"127.0.0.1; for --duration it follows a schedule drawn from --seed: SIGKILL and\n"
	"restart processes, arm fault points (TPC_FAULTS) for their next start, partition,\n"
	"reset, drop and slow down the links; start strangers (a tpc-kv under an existing\n"
	"participant's name with another folder, or on a running participant's folder:\n"
	"both must be refused) and make operator heuristic decisions through the admin API.\n"
	"Clients stage several writes at one participant in stages, with pauses that the\n"
	"participant bounces land in. Every --round it heals everything and waits\n"
	"until no participant is prepared and the coordinator holds no unacknowledged\n"
	"decision. At the end it checks, per txid, what every client was told against what\n"
	"every sink holds: atomicity, told COMMITTED -> in every sink, told ABORTED -> in\n"
	"none, nothing applied twice, nothing no client sent, transfers conserved, quiet\n"
	"within the bound. See docs/failure-injection.md.\n"
	"\n"
	"Run options:\n"
	"  -s, --seed N           seed of the schedule and workload (default: random, printed)\n"
	"  -D, --duration DURATION  how long to inject faults (default 60s)\n"
	"  --round DURATION       heal and check for quiet this often (default 60s)\n"
	"  --clients N            client processes (default 4)\n"
	"  --inflight N           transactions in flight per client (default 8)\n"
	"  --participants N       tpc-kv participants, 2 to 8 (default 3); the last one votes\n"
	"                         NO on the key refuse-me\n"
	"  --faults-profile P     default (kills, fault points, link faults), none, or\n"
	"                         partitions (link faults only; each round ends with a\n"
	"                         participant cut off for 20 s, then the checkpoint)\n"
	"  --staged-pct P         transactions that stage 2-3 writes at one participant, one\n"
	"                         stage after another, with pauses between (default 40)\n"
	"  --short-expiry DURATION  kv1's staged-write expiry (tpc-kv --txn-timeout), below the\n"
	"                         coordinator's 5 s transaction timeout; 3% of the pauses\n"
	"                         between stages outlast it (default 2s; off: 10s like the rest)\n"
	"  --classic              the workload and schedule from before staged writes: no\n"
	"                         stages, no short expiry, no strangers, no operator decisions\n"
	"  --broken NAME          run the deliberately broken test binaries with TPC_BROKEN=NAME\n"
	"                         and a schedule aimed at that break: coord.commit_before_log,\n"
	"                         part.ack_before_apply, sink.no_dedup or coord.accept_rejoin\n"
	"  --expect-violation     succeed only if a violation is found (tests the checker)\n"
	"  --no-proxy             connect everything directly (no link faults)\n"
	"  --tls-dir DIR          mutual TLS everywhere, with the certificates of\n"
	"                         `scripts/make-certs.sh DIR coordinator kv1 .. kvN client`;\n"
	"                         needs --no-proxy (the fault proxy reads frames)\n"
	"  --pg                   a PostgreSQL participant: a throwaway PostgreSQL 15 cluster\n"
	"                         (scripts/pg-harness.sh in DIR/pg), and participant 2 (kv2) is\n"
	"                         `tpc-torture pg-service` (tpc/pg.h) instead of a tpc-kv; the\n"
	"                         schedule also crashes PostgreSQL (pg_ctl stop -m immediate,\n"
	"                         restart); healing must leave pg_prepared_xacts empty. Needs\n"
	"                         --participants >= 3 and a build with libpq\n"
	"  --pg-harness PATH      the harness script (default: $TPC_PG_HARNESS, else the\n"
	"                         source tree's scripts/pg-harness.sh)\n"
	"  --group-commit N       passed to the coordinator and the participants\n"
	"  --quiet-bound DURATION heal-to-quiet limit (default 10s)\n"
	"  --workdir DIR          where the run folder is made (default $TMPDIR or /tmp)\n"
	"  --bin-dir DIR          where tpc-coordinator, tpc-kv and tpc-faultproxy are: an\n"
	"                         install's bin/ or a build folder (default: next to this\n"
	"                         program, then ../coordinator and ../tools)\n"
	"  --coordinator-bin P, --kv-bin P, --proxy-bin P   exact paths, overriding --bin-dir\n"
	"  --keep                 keep the run folder when the run passes\n"
	"  --quiet                no progress lines, only the result\n"
	"  -h, --help             show this help\n"
	"  -V, --version          show the version\n"
	"\n"
	"Durations need a unit: ms, s, m or h (1.5s too). The run folder holds schedule.log (every action with\n"
	"its time), logs/ (each process's stderr), outcomes/ (what each client did and was\n"
	"told), the data of every process, and report.txt.\n"
	"\n"
	"\n"
	"Exit status:\n"
	"  0  no violation (with --expect-violation: at least one)\n"
	"  1  otherwise, with the run folder kept and the command that replays the\n"
	"     schedule printed\n"
	"  2  a mistake on the command line (unknown option, bad value), or a run that\n"
	"     could not be carried out\n";

void tt_run_opts_defaults(struct tt_run_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->duration_ms = 60000;
	o->round_ms = 60000;
	o->quiet_bound_ms = 10000;
	o->nclients = 4;
	o->nparts = 3;
	o->inflight = 8;
	o->staged_pct = 40;
	o->short_expiry_ms = 2000;
}

static void put_duration(char *buf, size_t cap, size_t *len, const char *opt, uint64_t ms)
{
	if (*len >= cap)
		return;
	if (ms % 1000 == 0)
		*len += (size_t)snprintf(buf + *len, cap - *len, " --%s %" PRIu64 "s", opt, ms / 1000);
	else
		*len += (size_t)snprintf(buf + *len, cap - *len, " --%s %" PRIu64 "ms", opt, ms);
}

void tt_replay_command(const struct tt_run_opts *o, char *buf, size_t cap)
{
	size_t len = (size_t)snprintf(buf, cap, "tpc-torture run --seed %" PRIu64, o->seed);

	put_duration(buf, cap, &len, "duration", o->duration_ms);
	put_duration(buf, cap, &len, "round", o->round_ms);
	if (len < cap)
		len += (size_t)snprintf(buf + len, cap - len, " --clients %u --inflight %u"
					" --participants %u", o->nclients, o->inflight, o->nparts);
	if (len < cap && o->profile != TT_PROFILE_DEFAULT)
		len += (size_t)snprintf(buf + len, cap - len, " --faults-profile %s",
					tt_profile_name(o->profile));
	if (len < cap && o->broken != TT_BROKEN_NONE)
		len += (size_t)snprintf(buf + len, cap - len, " --broken %s",
					tt_broken_name(o->broken));
	if (len < cap && o->classic)
		len += (size_t)snprintf(buf + len, cap - len, " --classic");
	if (len < cap && !o->classic && o->staged_pct != 40)
		len += (size_t)snprintf(buf + len, cap - len, " --staged-pct %u", o->staged_pct);
	if (len < cap && !o->classic && o->short_expiry_ms != 2000) {
		if (o->short_expiry_ms)
			put_duration(buf, cap, &len, "short-expiry", o->short_expiry_ms);
		else
			len += (size_t)snprintf(buf + len, cap - len, " --short-expiry off");
	}
	if (len < cap && o->no_proxy)
		len += (size_t)snprintf(buf + len, cap - len, " --no-proxy");
	if (len < cap && o->tls_dir)
		len += (size_t)snprintf(buf + len, cap - len, " --tls-dir %s", o->tls_dir);
	if (len < cap && o->pg)
		len += (size_t)snprintf(buf + len, cap - len, " --pg");
	if (len < cap && o->group_commit)
		len += (size_t)snprintf(buf + len, cap - len, " --group-commit %u", o->group_commit);
	if (len < cap && o->quiet_bound_ms != 10000)
		put_duration(buf, cap, &len, "quiet-bound", o->quiet_bound_ms);
	if (len < cap && o->bin_dir)
		len += (size_t)snprintf(buf + len, cap - len, " --bin-dir %s", o->bin_dir);
	if (len < cap && o->expect_violation)
		snprintf(buf + len, cap - len, " --expect-violation");
}

/* ---- finding the binaries ---- */

static int self_dir(char *dir, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	snprintf(dir, cap, "%s", dirname(exe));
	return 0;
}

/* DIR/name, then the build-tree places: DIR/../coordinator, DIR/../tools, DIR/<sub>. */
static int find_bin(const char *dir, const char *name, char *out, size_t cap)
{
	static const char *const subs[] = { "", "../coordinator/", "../tools/", "coordinator/",
					    "tools/" };

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(out, cap, "%s/%s%s", dir, subs[i], name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

static int resolve_one(const char *explicit_path, const char *dir, const char *name, char *out,
		       size_t cap)
{
	if (explicit_path) {
		snprintf(out, cap, "%s", explicit_path);
		if (access(out, X_OK) == 0)
			return 0;
		fprintf(stderr, "tpc-torture: %s is not an executable file\n", explicit_path);
		return -ENOENT;
	}
	if (find_bin(dir, name, out, cap) == 0)
		return 0;
	fprintf(stderr, "tpc-torture: cannot find %s in %s (nor in ../coordinator, ../tools);\n"
		"  use --bin-dir DIR or --coordinator-bin/--kv-bin/--proxy-bin PATH\n", name, dir);
	return -ENOENT;
}

static int resolve_bins(struct tt_runner *r)
{
	char dir[PATH_MAX];
	const char *coord = r->o.broken == TT_BROKEN_COMMIT_BEFORE_LOG ||
			    r->o.broken == TT_BROKEN_ACCEPT_REJOIN ? "tpc-coordinator-broken"
								   : "tpc-coordinator";
	const char *kv = r->o.broken == TT_BROKEN_ACK_BEFORE_APPLY ||
			 r->o.broken == TT_BROKEN_NO_DEDUP ? "tpc-kv-broken" : "tpc-kv";
	int rc = self_dir(dir, sizeof(dir));

	if (rc) {
		fprintf(stderr, "tpc-torture: cannot find my own path: %s\n", strerror(-rc));
		return rc;
	}
	ssize_t n = readlink("/proc/self/exe", r->self, sizeof(r->self) - 1);
	r->self[n > 0 ? n : 0] = '\0';
	if (r->o.bin_dir)
		snprintf(dir, sizeof(dir), "%s", r->o.bin_dir);
	rc = resolve_one(r->o.coord_bin, dir, coord, r->coord_bin, sizeof(r->coord_bin));
	if (!rc)
		rc = resolve_one(r->o.kv_bin, dir, kv, r->kv_bin, sizeof(r->kv_bin));
	if (!rc && !r->o.no_proxy)
		rc = resolve_one(r->o.proxy_bin, dir, "tpc-faultproxy", r->proxy_bin,
				 sizeof(r->proxy_bin));
	return rc;
}

/* ---- run options ---- */

enum {
	OPT_ROUND = 256, OPT_CLIENTS, OPT_INFLIGHT, OPT_PARTS,
	OPT_PROFILE, OPT_BROKEN, OPT_EXPECT, OPT_NO_PROXY, OPT_GROUP, OPT_QUIET_BOUND,
	OPT_WORKDIR, OPT_BIN_DIR, OPT_COORD_BIN, OPT_KV_BIN, OPT_PROXY_BIN, OPT_KEEP, OPT_QUIET,
	OPT_RUN_DIR, OPT_STAGED, OPT_SHORT_EXPIRY, OPT_CLASSIC, OPT_TLS_DIR, OPT_PG, OPT_PG_HARNESS,
};

static const struct option run_opts[] = {
	{ "seed", required_argument, NULL, 's' },
	{ "duration", required_argument, NULL, 'D' },
	{ "round", required_argument, NULL, OPT_ROUND },
	{ "clients", required_argument, NULL, OPT_CLIENTS },
	{ "inflight", required_argument, NULL, OPT_INFLIGHT },
	{ "participants", required_argument, NULL, OPT_PARTS },
	{ "faults-profile", required_argument, NULL, OPT_PROFILE },
	{ "broken", required_argument, NULL, OPT_BROKEN },
	{ "expect-violation", no_argument, NULL, OPT_EXPECT },
	{ "no-proxy", no_argument, NULL, OPT_NO_PROXY },
	{ "tls-dir", required_argument, NULL, OPT_TLS_DIR },
	{ "group-commit", required_argument, NULL, OPT_GROUP },
	{ "quiet-bound", required_argument, NULL, OPT_QUIET_BOUND },
	{ "workdir", required_argument, NULL, OPT_WORKDIR },
	{ "bin-dir", required_argument, NULL, OPT_BIN_DIR },
	{ "coordinator-bin", required_argument, NULL, OPT_COORD_BIN },
	{ "kv-bin", required_argument, NULL, OPT_KV_BIN },
	{ "proxy-bin", required_argument, NULL, OPT_PROXY_BIN },
	{ "keep", no_argument, NULL, OPT_KEEP },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
	{ "staged-pct", required_argument, NULL, OPT_STAGED },
	{ "short-expiry", required_argument, NULL, OPT_SHORT_EXPIRY },
	{ "classic", no_argument, NULL, OPT_CLASSIC },
	{ "pg", no_argument, NULL, OPT_PG },
	{ "pg-harness", required_argument, NULL, OPT_PG_HARNESS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* --pg: a build with libpq, a tpc-kv at participant 1 and at the last (NO votes), the
 * harness script. */
static int check_pg_opts(struct tt_run_opts *o)
{
#ifndef TPC_HAVE_PG
	fputs("tpc-torture: --pg needs a build with libpq (PostgreSQL's client library)\n",
	      stderr);
	return 2;
#endif
	if (o->nparts < 3) {
		fputs("tpc-torture: --pg needs --participants 3 or more (kv2 is PostgreSQL)\n",
		      stderr);
		return 2;
	}
	if (!o->pg_harness)
		o->pg_harness = getenv("TPC_PG_HARNESS");
	if (!o->pg_harness || !*o->pg_harness)
		o->pg_harness = TPC_SOURCE_DIR "/scripts/pg-harness.sh";
	if (access(o->pg_harness, X_OK)) {
		fprintf(stderr, "tpc-torture: %s is not an executable file (--pg-harness)\n",
			o->pg_harness);
		return 2;
	}
	return 0;
}

static int bad(const char *opt, const char *val, const char *why)
{
	return tpc_usage_error("tpc-torture", "--%s %s: %s", opt, val, why);
}

static int num_opt(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 0);
	if (errno || end == v || *end || v[0] == '-' || *out < lo || *out > hi) {
		char why[80];
		snprintf(why, sizeof(why), "expected a number from %" PRIu64 " to %" PRIu64, lo, hi);
		return bad(opt, v, why);
	}
	return 0;
}

static int dur_opt(const char *opt, const char *v, uint64_t lo, uint64_t *out)
{
	char name[40];

	snprintf(name, sizeof(name), "--%s", opt);
	return tpc_cli_duration("tpc-torture", name, v, lo, 7 * 24 * 3600 * 1000ULL, out);
}

static int apply_opt(struct tt_run_opts *o, int c, const char *v, const char **run_dir)
{
	uint64_t n = 0;
	int rc = 0;

	switch (c) {
	case 's': rc = num_opt("seed", v, 0, UINT64_MAX, &o->seed); o->seed_given = 1; break;
	case 'D': rc = dur_opt("duration", v, 1000, &o->duration_ms); break;
	case OPT_ROUND: rc = dur_opt("round", v, 3000, &o->round_ms); break;
	case OPT_CLIENTS: rc = num_opt("clients", v, 1, TT_MAX_CLIENTS, &n); o->nclients = (unsigned)n; break;
	case OPT_INFLIGHT: rc = num_opt("inflight", v, 1, 1024, &n); o->inflight = (unsigned)n; break;
	case OPT_PARTS: rc = num_opt("participants", v, 2, TT_MAX_PARTS, &n); o->nparts = (unsigned)n; break;
	case OPT_PROFILE:
		if (tt_profile_parse(v, &o->profile))
			rc = bad("faults-profile", v, "expected default, none or partitions");
		break;
	case OPT_BROKEN:
		if (tt_broken_parse(v, &o->broken))
			rc = bad("broken", v, "expected coord.commit_before_log, part.ack_before_apply,"
				 " sink.no_dedup or coord.accept_rejoin");
		break;
	case OPT_STAGED: rc = num_opt("staged-pct", v, 0, 100, &n); o->staged_pct = (unsigned)n; break;
	case OPT_SHORT_EXPIRY:
		if (strcmp(v, "off") == 0)
			o->short_expiry_ms = 0;
		else
			rc = dur_opt("short-expiry", v, 500, &o->short_expiry_ms);
		if (!rc && o->short_expiry_ms > 4000)
			rc = bad("short-expiry", v, "must stay below the 5 s transaction timeout (or off)");
		break;
	case OPT_CLASSIC: o->classic = 1; break;
	case OPT_EXPECT: o->expect_violation = 1; break;
	case OPT_NO_PROXY: o->no_proxy = 1; break;
	case OPT_TLS_DIR: o->tls_dir = v; break;
	case OPT_PG: o->pg = 1; break;
	case OPT_PG_HARNESS: o->pg_harness = v; break;
	case OPT_GROUP: rc = num_opt("group-commit", v, 1, 1u << 20, &n); o->group_commit = (uint32_t)n; break;
	case OPT_QUIET_BOUND: rc = dur_opt("quiet-bound", v, 100, &o->quiet_bound_ms); break;
	case OPT_WORKDIR: o->workdir = v; break;
	case OPT_BIN_DIR: o->bin_dir = v; break;
	case OPT_COORD_BIN: o->coord_bin = v; break;
	case OPT_KV_BIN: o->kv_bin = v; break;
	case OPT_PROXY_BIN: o->proxy_bin = v; break;
	case OPT_KEEP: o->keep = 1; break;
	case OPT_QUIET: o->quiet = 1; break;
	case OPT_RUN_DIR: *run_dir = v; break;
	default: return 2;
	}
	return rc;
}

static uint64_t random_seed(void)
{
	uint64_t s = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &s, sizeof(s)) != sizeof(s))
			s = 0;
		close(fd);
	}
	if (!s)
		s = tpc_wall_ms() ^ ((uint64_t)getpid() << 32);
	return s % 1000000000ULL; /* short enough to type */
}

static int parse_run(int argc, char **argv, struct tt_run_opts *o, const char **run_dir)
{
	int c;

	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:D:hV", run_opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (c == 'V')
			exit(tpc_cli_version("tpc-torture"));
		if (c == '?' || c == ':')
			return tpc_cli_getopt_error("tpc-torture", c, argv);
		if (apply_opt(o, c, optarg, run_dir))
			return 2;
	}
	if (optind < argc)
		return tpc_usage_error("tpc-torture", "unexpected argument '%s'", argv[optind]);
	if (o->tls_dir && !o->no_proxy) {
		fprintf(stderr, "tpc-torture: --tls-dir needs --no-proxy: the fault proxy reads "
			"frames, which TLS hides from it\n");
		return 2;
	}
	if (o->pg && check_pg_opts(o))
		return 2;
	if (!o->seed_given)
		o->seed = random_seed();
	if (o->round_ms > o->duration_ms)
		o->round_ms = o->duration_ms;
	if (o->classic) {
		o->staged_pct = 0;
		o->short_expiry_ms = 0;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	struct tt_runner *r = calloc(1, sizeof(*r));
	const char *run_dir = NULL;
	int rc;

	if (!r)
		return 2;
	tt_run_opts_defaults(&r->o);
	rc = parse_run(argc, argv, &r->o, &run_dir);
	if (!rc && run_dir)
		rc = bad("run-dir", run_dir, "is for `tpc-torture check`");
	if (!rc && (rc = resolve_bins(r)))
		rc = 2;
	if (!rc)
		rc = tt_run(r);
	free(r);
	return rc;
}

/* ---- check: the checker again over a kept run folder ---- */

static unsigned count_entries(const char *dir, const char *prefix, const char *suffix)
{
	unsigned n = 0;
	char path[PATH_MAX + 64];

	for (unsigned i = 1; i <= TT_MAX_CLIENTS; i++) {
		snprintf(path, sizeof(path), "%s/%s%u%s", dir, prefix, i, suffix);
		if (access(path, F_OK))
			break;
		n = i;
	}
	return n;
}

static int cmd_check(int argc, char **argv)
{
	struct tt_runner *r = calloc(1, sizeof(*r));
	const char *run_dir = NULL;
	int rc;

	if (!r)
		return 2;
	tt_run_opts_defaults(&r->o);
	r->o.nparts = r->o.nclients = 0;
	rc = parse_run(argc, argv, &r->o, &run_dir);
	if (!rc && !run_dir) {
		fputs("tpc-torture check: --run-dir DIR is required\n", stderr);
		rc = 2;
	}
	if (!rc) {
		snprintf(r->dir, sizeof(r->dir), "%s", run_dir);
		r->check_only = 1;
		if (!r->o.nparts)
			r->o.nparts = count_entries(run_dir, "kv", "/sink.log");
		if (!r->o.nclients)
			r->o.nclients = count_entries(run_dir, "outcomes/client", ".txt");
		long v = r->o.nparts ? tt_check_and_report(r) : -ENOENT;
		if (v < 0)
			fprintf(stderr, "tpc-torture check: cannot check %s: %s\n", run_dir,
				tpc_strerror((int)v));
		rc = v < 0 ? 2 : v > 0;
	}
	free(r);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc, argv);
	if (!strcmp(argv[1], "client"))
		return tt_client_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc, argv);
	if (!strcmp(argv[1], "pg-service"))
		return tt_pg_service_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))
		return tpc_cli_version("tpc-torture");
	return tpc_usage_error("tpc-torture", "unknown command '%s'", argv[1]);
}
