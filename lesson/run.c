/*
 * run.c - lesson-run, the driver behind `make lesson` (scripts/lesson.sh) and
 * tests/integration/test_lesson.c: runs one scenario with seeded crash injection and
 * prints what happened as one `result key=value ...` line.
 *
 *   lesson-run close      --bin BUILD --work DIR --log DIR [options]
 *   lesson-run pageviews  --mode MODE --bin BUILD --work DIR --log DIR [options]
 *   lesson-run outbox     --mode outbox|dual-write --bin BUILD --work DIR --orders N
 *
 * close and pageviews --mode exactly-once start a cluster in DIR (tpc-coordinator,
 * tpc-kv "ledger" and "offsets"; restarted on the same data when DIR is reused, which
 * is how a replay over the live sink runs) and the aggregator. The other page-view
 * modes run the consumer alone on DIR/store; outbox runs the order service (and the
 * relay) on DIR/db, publishing to DIR/log.
 *
 * Crash injection: --kills K kill -9s at seeded random points of progress (the
 * position the job reports), spread over the scenario's processes (aggregator, both
 * participants, coordinator; or consumer; or order service and relay), each followed
 * by an immediate restart; --fault-pct P arms tpc's fault points (coordinator: after
 * the decision is logged, after sending it to only some participants; participants:
 * after PREPARED is logged, after the vote is sent, after the sink applied) and
 * --crash-pct P the outbox programs' own. A process that dies by itself is restarted
 * too and counted as a fault crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "eventlog.h"
#include "events.h"
#include "util.h"
#include "sup.h"

enum role { ROLE_COORD, ROLE_PART, ROLE_AGG, ROLE_ORDERS, ROLE_RELAY, ROLES };
static const char *const role_names[ROLES] = { "coordinator", "participants", "consumer",
					       "orders", "relay" };
#define FORCE_KINDS 4
#define MAX_KILLS 256

struct run_opts {
	const char *scenario, *mode, *bin, *work, *log, *from_time, *ns;
	uint64_t batch, kills, seed, from, orders, timeout_s;
	unsigned fault_pct, crash_pct;
	int from_set, dedupe, no_dedupe, forces;
};

struct kill_at {
	uint64_t at;
	int target;
};

struct run {
	const struct run_opts *o;
	struct sup sup;
	int job;                        /* the process whose progress drives the kills */
	int jobs[2], njobs;             /* processes that must finish */
	int servers[3], nservers;
	int targets[SUP_MAX_PROCS], ntargets;
	uint64_t start, total;          /* the progress range */
	uint64_t rng;
	struct kill_at plan[MAX_KILLS];
	int nplan;
	char progress[PATH_MAX], forces_path[PATH_MAX], forces_lib[PATH_MAX];
	uint64_t elapsed_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000L };
	nanosleep(&ts, NULL);
}

static uint64_t read_progress(const struct run *r)
{
	char buf[32] = { 0 };
	uint64_t v = 0;
	int fd = open(r->progress, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, buf, sizeof(buf) - 1, 0) > 0) {
		buf[strcspn(buf, "\n")] = 0;
		lesson_parse_u64(buf, &v);
	}
	close(fd);
	return v;
}

/* Records in the log (the progress range of an aggregator). */
static int count_records(const char *log, uint64_t *n)
{
	evlog_reader *rd;
	struct evlog_record rec;
	int rc = evlog_reader_open(log, &rd);

	*n = 0;
	while (!rc && (rc = evlog_reader_next(rd, &rec)) == 1) {
		(*n)++;
		rc = 0;
	}
	if (rc >= 0)
		evlog_reader_close(rd);
	return rc < 0 ? rc : 0;
}

/* ---- setting up the processes ---- */

static int add_proc(struct run *r, const char *name, enum role role, int port, int finite,
		    const char *const argv[])
{
	int i = sup_add(&r->sup, name, role, port, finite, r->o->work, argv);

	if (i < 0)
		fprintf(stderr, "lesson-run: cannot set up %s\n", name);
	return i;
}

struct cluster {
	char coord[32], ledger[32], offsets[32];
};

static int add_cluster(struct run *r, struct cluster *c)
{
	const struct run_opts *o = r->o;
	char bin[PATH_MAX], kv[PATH_MAX], data[3][PATH_MAX], listen[3][32];
	int ports[3];
	const char *names[3] = { "coordinator", "ledger", "offsets" };

	for (int i = 0; i < 3; i++) {
		if ((ports[i] = sup_free_port()) < 0)
			return -1;
		snprintf(listen[i], sizeof(listen[i]), "127.0.0.1:%d", ports[i]);
		snprintf(data[i], sizeof(data[i]), "%s/%s", o->work, names[i]);
	}
	snprintf(bin, sizeof(bin), "%s/coordinator/tpc-coordinator", o->bin);
	snprintf(kv, sizeof(kv), "%s/tools/tpc-kv", o->bin);
	const char *cargv[] = { bin, "--listen", listen[0], "--data", data[0], "--prepare-timeout",
				"1s", "--txn-timeout", "20s", "--log-level", "warn", "--admin", "off",
				NULL };
	int ci = add_proc(r, names[0], ROLE_COORD, ports[0], 0, cargv);
	if (ci < 0)
		return -1;
	r->servers[r->nservers++] = ci;
	for (int k = 1; k < 3; k++) {
		const char *kargv[] = { kv, "--name", names[k], "--listen", listen[k], "--coordinator",
					listen[0], "--data", data[k], "--txn-timeout", "20s", NULL };
		int ki = add_proc(r, names[k], ROLE_PART, ports[k], 0, kargv);
		if (ki < 0)
			return -1;
		r->servers[r->nservers++] = ki;
	}
	if (o->fault_pct) {
		snprintf(r->sup.p[ci].faults, sizeof(r->sup.p[ci].faults),
			 "coord.decision.after_log=crash%%%u,coord.commit.partial_send=crash%%%u",
			 o->fault_pct, o->fault_pct);
		for (int k = 1; k < 3; k++)
			snprintf(r->sup.p[r->servers[k]].faults, sizeof(r->sup.p[0].faults),
				 "part.prepare.after_log=crash%%%u,part.vote.after_send=crash%%%u,"
				 "part.commit.after_apply=crash%%%u", o->fault_pct, o->fault_pct,
				 o->fault_pct);
	}
	memcpy(c->coord, listen[0], 32);
	memcpy(c->ledger, listen[1], 32);
	memcpy(c->offsets, listen[2], 32);
	return 0;
}

/* The aggregator's argv: common options after the program and its fixed arguments. */
static int add_aggregator(struct run *r, const char *const head[], const struct cluster *c)
{
	const struct run_opts *o = r->o;
	const char *argv[SUP_MAX_ARGS];
	char batch[24], from[24];
	int n = 0;

	for (; head[n]; n++)
		argv[n] = head[n];
	snprintf(batch, sizeof(batch), "%" PRIu64, o->batch);
	argv[n++] = "--log";
	argv[n++] = o->log;
	argv[n++] = "--batch";
	argv[n++] = batch;
	argv[n++] = "--progress";
	argv[n++] = r->progress;
	if (c) {
		argv[n++] = "--coordinator";
		argv[n++] = c->coord;
		argv[n++] = "--ledger";
		argv[n++] = c->ledger;
		argv[n++] = "--offsets";
		argv[n++] = c->offsets;
		if (o->ns) {
			argv[n++] = "--ns";
			argv[n++] = o->ns;
		}
	}
	if (o->from_set) {
		snprintf(from, sizeof(from), "%" PRIu64, o->from);
		argv[n++] = "--from";
		argv[n++] = from;
	}
	if (o->from_time) {
		argv[n++] = "--from-time";
		argv[n++] = o->from_time;
	}
	if (o->dedupe)
		argv[n++] = "--dedupe";
	if (o->no_dedupe)
		argv[n++] = "--no-dedupe";
	argv[n] = NULL;
	int i = add_proc(r, "consumer", ROLE_AGG, 0, 1, argv);
	r->job = r->jobs[r->njobs++] = i;
	return i < 0 ? -1 : 0;
}

static int setup_close(struct run *r)
{
	char prog[PATH_MAX];
	struct cluster c;

	snprintf(prog, sizeof(prog), "%s/lesson/lesson-close", r->o->bin);
	const char *head[] = { prog, "run", NULL };
	if (add_cluster(r, &c) || add_aggregator(r, head, &c))
		return -1;
	return 0;
}

static int setup_pageviews(struct run *r)
{
	char prog[PATH_MAX], store[PATH_MAX], mode[32];
	struct cluster c;
	int xo = !strcmp(r->o->mode, "exactly-once");

	snprintf(prog, sizeof(prog), "%s/lesson/lesson-pageviews", r->o->bin);
	snprintf(store, sizeof(store), "%s/store", r->o->work);
	snprintf(mode, sizeof(mode), "%s", r->o->mode);
	const char *head_local[] = { prog, "run", "--mode", mode, "--store", store, NULL };
	const char *head_xo[] = { prog, "run", "--mode", mode, NULL };
	if (xo && add_cluster(r, &c))
		return -1;
	return add_aggregator(r, xo ? head_xo : head_local, xo ? &c : NULL);
}

static int setup_outbox(struct run *r)
{
	const struct run_opts *o = r->o;
	char prog[PATH_MAX], db[PATH_MAX], log[PATH_MAX], n[24], seed[24], pct[16], rprog[PATH_MAX];
	int dual = !strcmp(o->mode, "dual-write");

	snprintf(prog, sizeof(prog), "%s/lesson/lesson-outbox", o->bin);
	snprintf(db, sizeof(db), "%s/db", o->work);
	snprintf(log, sizeof(log), "%s/log", o->work);
	snprintf(n, sizeof(n), "%" PRIu64, o->orders);
	snprintf(seed, sizeof(seed), "%" PRIu64, o->seed);
	snprintf(pct, sizeof(pct), "%u", o->crash_pct);
	snprintf(rprog, sizeof(rprog), "%s/relay.progress", o->work);
	const char *oargv[] = { prog, "orders", "--db", db, "--log", log, "--orders", n, "--seed",
				seed, "--mode", o->mode, "--crash-pct", pct, "--progress",
				r->progress, NULL };
	const char *rargv[] = { prog, "relay", "--db", db, "--log", log, "--crash-pct", pct,
				"--progress", rprog, NULL };
	int oi = add_proc(r, "orders", ROLE_ORDERS, 0, 1, oargv);
	if (oi < 0)
		return -1;
	r->job = r->jobs[r->njobs++] = oi;
	r->targets[r->ntargets++] = oi;
	if (!dual) {
		int ri = add_proc(r, "relay", ROLE_RELAY, 0, 1, rargv);
		if (ri < 0)
			return -1;
		r->jobs[r->njobs++] = ri;
		r->targets[r->ntargets++] = ri;
	}
	r->start = 0;
	r->total = o->orders;
	return 0;
}

/* Kill points: positions spread over 5%..90% of the range, targets dealt evenly. */
static void plan_kills(struct run *r)
{
	r->nplan = (int)(r->o->kills < MAX_KILLS ? r->o->kills : MAX_KILLS);
	for (int k = 0; k < r->nplan; k++) {
		r->plan[k].at = r->start + r->total * (50 + lesson_rng_next(&r->rng) % 850) / 1000;
		r->plan[k].target = r->targets[k % r->ntargets];
	}
	for (int k = r->nplan - 1; k > 0; k--) { /* shuffle the targets */
		int j = (int)(lesson_rng_next(&r->rng) % (uint64_t)(k + 1)), t = r->plan[k].target;
		r->plan[k].target = r->plan[j].target;
		r->plan[j].target = t;
	}
	for (int a = 1; a < r->nplan; a++) /* sort the points */
		for (int b = a; b > 0 && r->plan[b - 1].at > r->plan[b].at; b--) {
			struct kill_at t = r->plan[b];
			r->plan[b] = r->plan[b - 1];
			r->plan[b - 1] = t;
		}
}

static int fail(struct run *r, const char *what)
{
	fprintf(stderr, "lesson-run: %s: %s\n", what, r->sup.err);
	for (int i = 0; i < r->sup.n; i++)
		sup_dump(&r->sup, i);
	return -1;
}

/* ---- the supervision loop ---- */

static int check_procs(struct run *r, int *jobs_done)
{
	*jobs_done = 0;
	for (int i = 0; i < r->sup.n; i++) {
		int rc = sup_poll(&r->sup, i);
		if (rc < 0)
			return fail(r, "a process failed");
		if (rc == 2 && sup_start(&r->sup, i))
			return fail(r, "restarting after a crash");
	}
	for (int j = 0; j < r->njobs; j++)
		*jobs_done += r->sup.p[r->jobs[j]].done;
	return 0;
}

static int kill_one(struct run *r, int target)
{
	struct sup_proc *p = &r->sup.p[target];

	if (!p->pid)
		return 0; /* finished (a job), or restarting: nothing to kill */
	sleep_us(lesson_rng_next(&r->rng) % 3000); /* land at a random phase of its work */
	sup_kill9(&r->sup, target);
	return sup_start(&r->sup, target) ? fail(r, "restarting after kill -9") : 0;
}

static int supervise(struct run *r)
{
	uint64_t deadline = now_ms() + r->o->timeout_s * 1000, last_kill = UINT64_MAX;
	int next = 0, done = 0;

	while (done < r->njobs) {
		if (check_procs(r, &done))
			return -1;
		uint64_t prog = read_progress(r);
		if (next < r->nplan && prog >= r->plan[next].at && prog != last_kill) {
			if (kill_one(r, r->plan[next].target))
				return -1;
			last_kill = prog;
			next++;
		}
		if (now_ms() > deadline) {
			snprintf(r->sup.err, sizeof(r->sup.err), "no finish in %" PRIu64 " s",
				 r->o->timeout_s);
			return fail(r, "timeout");
		}
		sleep_us(1000);
	}
	return 0;
}

static int run_scenario(struct run *r)
{
	uint64_t t0;

	for (int i = 0; i < r->nservers; i++)
		if (sup_start(&r->sup, r->servers[i]))
			return fail(r, "starting the cluster");
	plan_kills(r);
	t0 = now_ms();
	for (int j = 0; j < r->njobs; j++)
		if (sup_start(&r->sup, r->jobs[j]))
			return fail(r, "starting");
	if (supervise(r))
		return -1;
	r->elapsed_ms = now_ms() - t0;
	for (int i = 0; i < r->nservers; i++)
		sup_stop(&r->sup, r->servers[i], 5000);
	return 0;
}

/* ---- results ---- */

static void print_forces(const struct run *r)
{
	uint64_t total = 0, by_role[ROLES] = { 0 };
	int fd = open(r->forces_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		printf(" forces=-");
		return;
	}
	uint64_t c[8 * FORCE_KINDS] = { 0 };
	if (pread(fd, c, sizeof(c), 0) != (ssize_t)sizeof(c))
		memset(c, 0, sizeof(c));
	close(fd);
	for (int role = 0; role < ROLES; role++)
		for (int k = 0; k < FORCE_KINDS; k++)
			by_role[role] += c[role * FORCE_KINDS + k];
	for (int role = 0; role < ROLES; role++)
		total += by_role[role];
	printf(" forces=%" PRIu64, total);
	for (int role = 0; role < ROLES; role++)
		printf(" forces_%s=%" PRIu64, role_names[role], by_role[role]);
}

static void print_last_line(const char *path, const char *prefix)
{
	char line[1024], last[1024] = "";
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, prefix, strlen(prefix)))
			memcpy(last, line, sizeof(last));
	fclose(f);
	if (last[0])
		printf("job %s", last);
}

static void print_result(struct run *r)
{
	unsigned kills = 0, crashes = 0;
	uint64_t pos = read_progress(r);

	for (int i = 0; i < r->sup.n; i++) {
		kills += r->sup.p[i].kills;
		crashes += r->sup.p[i].crashes;
	}
	printf("result scenario=%s mode=%s events=%" PRIu64 " position=%" PRIu64 " kills=%u"
	       " fault_crashes=%u crashes=%u elapsed_ms=%" PRIu64, r->o->scenario,
	       r->o->mode ? r->o->mode : "exactly-once",
	       !strcmp(r->o->scenario, "outbox") ? r->o->orders : pos - r->start, pos, kills,
	       crashes, kills + crashes, r->elapsed_ms);
	for (int i = 0; i < r->sup.n; i++)
		printf(" kills_%s=%u crashes_%s=%u", r->sup.p[i].name, r->sup.p[i].kills,
		       r->sup.p[i].name, r->sup.p[i].crashes);
	if (r->o->forces)
		print_forces(r);
	putchar('\n');
	print_last_line(r->sup.p[r->job].out_path, "done");
}

static int prepare(struct run *r)
{
	const struct run_opts *o = r->o;

	if (mkdir(o->work, 0755) && errno != EEXIST) {
		fprintf(stderr, "lesson-run: cannot create %s: %s\n", o->work, strerror(errno));
		return -1;
	}
	snprintf(r->progress, sizeof(r->progress), "%s/progress", o->work);
	unlink(r->progress);
	if (!o->forces)
		return 0;
	snprintf(r->forces_path, sizeof(r->forces_path), "%s/forces.counters", o->work);
	snprintf(r->forces_lib, sizeof(r->forces_lib), "%s/lesson/liblesson_forces.so", o->bin);
	int fd = open(r->forces_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 4096)) {
		fprintf(stderr, "lesson-run: cannot create %s\n", r->forces_path);
		return -1;
	}
	close(fd);
	r->sup.forces_file = r->forces_path;
	r->sup.forces_lib = r->forces_lib;
	return 0;
}

/* The progress range of an aggregator: from its start offset to the end of the log. */
static int aggregator_range(struct run *r)
{
	const struct run_opts *o = r->o;
	int rc = count_records(o->log, &r->total);

	if (rc) {
		fprintf(stderr, "lesson-run: cannot read %s: %s\n", o->log, strerror(-rc));
		return -1;
	}
	r->start = o->from_set ? o->from : 0;
	if (o->from_time && lesson_offset_at(o->log, o->from_time, &r->start))
		return -1;
	r->total = r->total > r->start ? r->total - r->start : 0;
	/* kill targets: the aggregator and every server, dealt evenly */
	r->ntargets = 0;
	r->targets[r->ntargets++] = r->job;
	for (int i = 0; i < r->nservers; i++)
		r->targets[r->ntargets++] = r->servers[i];
	return 0;
}

static int run_main(const struct run_opts *o)
{
	struct run r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.rng = o->seed * 0x9e3779b97f4a7c15ull + 17;
	r.sup.seed = o->seed;
	if (prepare(&r))
		return 1;
	if (!strcmp(o->scenario, "close"))
		rc = setup_close(&r) || aggregator_range(&r);
	else if (!strcmp(o->scenario, "pageviews"))
		rc = setup_pageviews(&r) || aggregator_range(&r);
	else
		rc = setup_outbox(&r);
	if (!rc)
		rc = run_scenario(&r);
	if (!rc)
		print_result(&r);
	sup_free(&r.sup);
	return rc ? 1 : 0;
}

/* ---- command line ---- */

static const char usage_text[] =
	"Usage: lesson-run close --bin BUILD --work DIR --log DIR [options]\n"
	"       lesson-run pageviews --mode MODE --bin BUILD --work DIR --log DIR [options]\n"
	"       lesson-run outbox --mode outbox|dual-write --bin BUILD --work DIR --orders N\n"
	"\n"
	"Runs one lesson scenario with seeded crash injection and prints a line\n"
	"`result key=value ...` (events, kills, fault crashes, elapsed time, forces), then\n"
	"the job's own summary (`job done ...`). Reports are read afterwards from DIR with\n"
	"lesson-close report / lesson-pageviews report / lesson-outbox dump.\n"
	"\n"
	"  --bin BUILD          the CMake build folder (coordinator/, tools/, lesson/)\n"
	"  --work DIR           where the scenario's processes keep their data and logs;\n"
	"                       reusing it restarts the cluster on the same data\n"
	"  --log DIR            the event log to aggregate\n"
	"  --mode MODE          pageviews: at-least-once, effectively-once, exactly-once;\n"
	"                       outbox: outbox or dual-write\n"
	"  --orders N           outbox: orders to create\n"
	"  --batch N            events per batch or transaction (default 200)\n"
	"  --kills K            kill -9 K times at seeded random points of progress (default 0)\n"
	"  --fault-pct P        arm tpc fault points with crash%%P (default 0)\n"
	"  --crash-pct P        outbox: the programs' own crash points fire with P%%\n"
	"  --seed N             seeds the kill points, targets and fault seeds (default 1)\n"
	"  --from OFFSET | --from-time TIME   replay start, passed to the aggregator\n"
	"  --ns NAME            transaction key namespace (2PC aggregators)\n"
	"  --dedupe             close: also dedupe event ids\n"
	"  --no-dedupe          pageviews exactly-once: do not dedupe event ids\n"
	"  --forces             count disk forces (LD_PRELOAD BUILD/lesson/liblesson_forces.so;\n"
	"                       not with a sanitizer build)\n"
	"  --timeout SECONDS    give up after this long (default 300)\n"
	"  -h, --help\n";

enum { OPT_MODE = 256, OPT_BIN, OPT_WORK, OPT_LOG, OPT_ORDERS, OPT_BATCH, OPT_KILLS,
       OPT_FAULT, OPT_CRASH, OPT_SEED, OPT_FROM, OPT_FROM_TIME, OPT_NS, OPT_DEDUPE,
       OPT_NO_DEDUPE, OPT_FORCES, OPT_TIMEOUT };

static const struct option long_opts[] = {
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "bin", required_argument, NULL, OPT_BIN },
	{ "work", required_argument, NULL, OPT_WORK },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "orders", required_argument, NULL, OPT_ORDERS },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "kills", required_argument, NULL, OPT_KILLS },
	{ "fault-pct", required_argument, NULL, OPT_FAULT },
	{ "crash-pct", required_argument, NULL, OPT_CRASH },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "from-time", required_argument, NULL, OPT_FROM_TIME },
	{ "ns", required_argument, NULL, OPT_NS },
	{ "dedupe", no_argument, NULL, OPT_DEDUPE },
	{ "no-dedupe", no_argument, NULL, OPT_NO_DEDUPE },
	{ "forces", no_argument, NULL, OPT_FORCES },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *msg)
{
	return tpc_usage_error("lesson-run", "%s", msg);
}

static int parse_pct(const char *v, unsigned *out, const char *what)
{
	uint64_t n;

	if (lesson_parse_u64(v, &n) || n > 100)
		return usage_error(what);
	*out = (unsigned)n;
	return 0;
}

static int parse_num(const char *v, uint64_t *out, const char *what)
{
	return lesson_parse_u64(v, out) ? usage_error(what) : 0;
}

static int parse_opt(void *opts, int c, const char *v)
{
	struct run_opts *o = opts;

	switch (c) {
	case OPT_MODE: o->mode = v; return 0;
	case OPT_BIN: o->bin = v; return 0;
	case OPT_WORK: o->work = v; return 0;
	case OPT_LOG: o->log = v; return 0;
	case OPT_FROM_TIME: o->from_time = v; return 0;
	case OPT_NS: o->ns = v; return 0;
	case OPT_DEDUPE: o->dedupe = 1; return 0;
	case OPT_NO_DEDUPE: o->no_dedupe = 1; return 0;
	case OPT_FORCES: o->forces = 1; return 0;
	case OPT_ORDERS: return parse_num(v, &o->orders, "--orders expects N");
	case OPT_BATCH: return parse_num(v, &o->batch, "--batch expects N");
	case OPT_KILLS: return parse_num(v, &o->kills, "--kills expects N");
	case OPT_SEED: return parse_num(v, &o->seed, "--seed expects N");
	case OPT_TIMEOUT: return parse_num(v, &o->timeout_s, "--timeout expects seconds");
	case OPT_FROM: o->from_set = 1; return parse_num(v, &o->from, "--from expects an offset");
	case OPT_FAULT: return parse_pct(v, &o->fault_pct, "--fault-pct expects 0..100");
	case OPT_CRASH: return parse_pct(v, &o->crash_pct, "--crash-pct expects 0..100");
	default: return usage_error("unknown option");
	}
}

static int check_opts(const struct run_opts *o)
{
	const char *s = o->scenario;

	if (strcmp(s, "close") && strcmp(s, "pageviews") && strcmp(s, "outbox"))
		return usage_error("the scenario is close, pageviews or outbox");
	if (!o->bin || !o->work)
		return usage_error("--bin and --work are required");
	if (!strcmp(s, "outbox"))
		return o->mode && o->orders ? 0 : usage_error("outbox needs --mode and --orders");
	if (!o->log)
		return usage_error("--log is required");
	if (!strcmp(s, "pageviews") && !o->mode)
		return usage_error("pageviews needs --mode");
	if (!o->batch)
		return usage_error("--batch must be at least 1");
	return 0;
}

/* Check the options against the command and run it. */
static int run_command(void *opts)
{
	struct run_opts *o = opts;

	if (check_opts(o))
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_main(o);
}

static const struct lesson_cli cli = {
	.prog = "lesson-run",
	.usage = usage_text,
	.no_cmd = "a scenario is required: close, pageviews or outbox",
	.long_opts = long_opts,
	.parse_opt = parse_opt,
	.run = run_command,
};

int main(int argc, char **argv)
{
	struct run_opts o = { .batch = 200, .seed = 1, .timeout_s = 300 };

	return lesson_cli_main(argc, argv, &cli, &o, &o.scenario);
}
