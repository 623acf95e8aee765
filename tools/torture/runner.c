/*
 * runner.c - one torture run (`tpc-torture run`): the run folder, the processes, the
 * seeded schedule, the checkpoints, and the orderly end.
 *
 * Topology (127.0.0.1, ports chosen free at start and kept across restarts):
 *
 *   client1..C ──> proxy-clients ──┐
 *        │                         ├──> coordinator (DIR/coord)
 *        │  kv1 ──> proxy-kv1 ─────┤
 *        ├─> kv2 ──> proxy-kv2 ────┤     kvN: tpc-kv --sink file (DIR/kvN), the last one
 *        └─> ...                   ┘     with --refuse-key refuse-me
 *
 * (--no-proxy: everyone talks to the coordinator directly.) Clients talk to the kv
 * services directly.
 *
 * The loop carries out the schedule's actions at their times, notices processes that
 * died on their own (a crash fault point) and restarts them shortly after, with the
 * faults of their next start. A checkpoint heals everything: proxies forward again,
 * every process that is down or armed starts clean, clients pause (SIGSTOP; at the last
 * checkpoint they are stopped with SIGTERM) and the runner polls until no participant
 * has a prepared transaction and the coordinator's log holds no unacknowledged decision.
 *
 * Invariants: every child is reaped by this file; all state hangs off struct tt_runner;
 * SIGINT/SIGTERM reach the runner through a signalfd (no handler, no global flag).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "quiet.h"
#include "torture.h"
#include "tpc/common.h"
#include "util.h"

#define AUTO_RESTART_MS 300u
#define POLL_MS 50u
#define QUIET_POLL_MS 100u
#define QUIET_GRACE_MS 20000u      /* after the bound: how long to keep looking, to report */
#define CLIENT_STOP_MS 8000

uint64_t tt_elapsed(const struct tt_runner *r)
{
	return tpc_now_ms() - r->t0;
}

void tt_slog(struct tt_runner *r, const char *fmt, ...)
{
	va_list ap;
	uint64_t t = tt_elapsed(r);

	if (!r->slog)
		return;
	fprintf(r->slog, "%6" PRIu64 ".%03" PRIu64 " ", t / 1000, t % 1000);
	va_start(ap, fmt);
	vfprintf(r->slog, fmt, ap);
	va_end(ap);
	fputc('\n', r->slog);
	fflush(r->slog);
}

static struct tt_proc *proc_of(struct tt_runner *r, enum tt_role role, unsigned index)
{
	switch (role) {
	case TT_ROLE_COORD: return &r->coord;
	case TT_ROLE_PART: return index < r->o.nparts ? &r->kv[index] : NULL;
	case TT_ROLE_CLIENT: return index < r->o.nclients ? &r->client[index] : NULL;
	case TT_ROLE_PROXY: return index <= r->o.nparts ? &r->proxy[index] : NULL;
	default: return NULL;
	}
}

/* ---- process definitions ---- */

static void hostport(char *buf, size_t cap, int port)
{
	snprintf(buf, cap, "127.0.0.1:%d", port);
}

void tt_add_tls_args(const struct tt_runner *r, const char *name, const char *argv[],
		     size_t *n, char buf[3][PATH_MAX + 48])
{
	if (!r->o.tls_dir)
		return;
	snprintf(buf[0], sizeof(buf[0]), "%s/%s.crt", r->o.tls_dir, name);
	snprintf(buf[1], sizeof(buf[1]), "%s/%s.key", r->o.tls_dir, name);
	snprintf(buf[2], sizeof(buf[2]), "%s/ca.crt", r->o.tls_dir);
	argv[(*n)++] = "--tls-cert";
	argv[(*n)++] = buf[0];
	argv[(*n)++] = "--tls-key";
	argv[(*n)++] = buf[1];
	argv[(*n)++] = "--tls-ca";
	argv[(*n)++] = buf[2];
}

static int define_coord(struct tt_runner *r)
{
	char tls[3][PATH_MAX + 48];
	char listen[32], admin[32], data[PATH_MAX + 32], gc[16];
	const char *retention = r->o.broken == TT_BROKEN_ACK_BEFORE_APPLY ? "0" : "24h";
	/* Tokens required: every client write carries its transaction's token, so a run
	 * also proves the token survives reconnects and re-sent Joins. */
	const char *argv[TT_MAX_ARGS] = { r->coord_bin, "--listen", listen, "--data", data,
		"--prepare-timeout", "1s", "--txn-timeout", "5s", "--retry-max", "500ms",
		"--outcome-retention", retention, "--admin", admin, "--require-txn-token", NULL };
	size_t n = 16;

	hostport(listen, sizeof(listen), r->coord_port);
	hostport(admin, sizeof(admin), r->admin_port);
	snprintf(data, sizeof(data), "%s/coord", r->dir);
	if (r->o.group_commit) {
		snprintf(gc, sizeof(gc), "%u", r->o.group_commit);
		argv[n++] = "--group-commit";
		argv[n++] = gc;
	}
	tt_add_tls_args(r, "coordinator", argv, &n, tls);
	argv[n] = NULL;
	snprintf(r->coord.name, sizeof(r->coord.name), "coordinator");
	r->coord.role = TT_ROLE_COORD;
	return tt_proc_set_argv(&r->coord, argv);
}

/* --pg: participant @p i is `tpc-torture pg-service` on the run's PostgreSQL. */
static int define_pg_service(struct tt_runner *r, unsigned i)
{
	struct tt_proc *p = &r->kv[i];
	char name[16], listen[32], coord[32], data[PATH_MAX + 32];
	const char *argv[] = { r->self, "pg-service", "--name", name, "--listen", listen,
		"--coordinator", coord, "--data", data, "--conninfo", r->pg_conninfo, NULL };

	snprintf(name, sizeof(name), "kv%u", i + 1);
	hostport(listen, sizeof(listen), r->kv_port[i]);
	hostport(coord, sizeof(coord), r->o.no_proxy ? r->coord_port : r->link_port[i]);
	snprintf(data, sizeof(data), "%s/kv%u", r->dir, i + 1);
	if (mkdir(data, 0755) && errno != EEXIST)
		return -errno;
	snprintf(p->name, sizeof(p->name), "kv%u", i + 1);
	p->role = TT_ROLE_PART;
	p->index = i;
	return tt_proc_set_argv(p, argv);
}

static int define_kv(struct tt_runner *r, unsigned i)
{
	struct tt_proc *p = &r->kv[i];
	char name[16], listen[32], coord[32], data[PATH_MAX + 32], gc[16], expiry[24];
	char tls[3][PATH_MAX + 48];
	const char *argv[TT_MAX_ARGS] = { r->kv_bin, "--name", name, "--listen", listen,
		"--coordinator", coord, "--data", data, "--sink", "file", "--txn-timeout", expiry,
		"--require-txn-token", NULL };
	size_t n = 14;

	if (TT_IS_PG(r, i))
		return define_pg_service(r, i);
	/* kv1's staged writes may expire before the coordinator's 5 s transaction timeout */
	if (i == 0 && r->o.short_expiry_ms)
		snprintf(expiry, sizeof(expiry), "%" PRIu64 "ms", r->o.short_expiry_ms);
	else
		snprintf(expiry, sizeof(expiry), "10s");
	snprintf(name, sizeof(name), "kv%u", i + 1);
	hostport(listen, sizeof(listen), r->kv_port[i]);
	hostport(coord, sizeof(coord), r->o.no_proxy ? r->coord_port : r->link_port[i]);
	snprintf(data, sizeof(data), "%s/kv%u", r->dir, i + 1);
	if (i == r->o.nparts - 1) { /* the refusing participant: NO votes */
		argv[n++] = "--refuse-key";
		argv[n++] = TT_REFUSE_KEY;
	}
	if (r->o.group_commit) {
		snprintf(gc, sizeof(gc), "%u", r->o.group_commit);
		argv[n++] = "--group-commit";
		argv[n++] = gc;
	}
	tt_add_tls_args(r, name, argv, &n, tls);
	argv[n] = NULL;
	snprintf(p->name, sizeof(p->name), "kv%u", i + 1);
	p->role = TT_ROLE_PART;
	p->index = i;
	return tt_proc_set_argv(p, argv);
}

static int define_proxy(struct tt_runner *r, unsigned i)
{
	struct tt_proc *p = &r->proxy[i];
	char listen[32], up[32], ctl[32], seed[24];
	const char *argv[] = { r->proxy_bin, "--listen", listen, "--upstream", up, "--control",
			       ctl, "--seed", seed, "--log-level", "warn", NULL };

	hostport(listen, sizeof(listen), r->link_port[i]);
	hostport(up, sizeof(up), r->coord_port);
	hostport(ctl, sizeof(ctl), r->ctl_port[i]);
	snprintf(seed, sizeof(seed), "%" PRIu64, r->o.seed + 1000 + i);
	if (i == r->o.nparts)
		snprintf(p->name, sizeof(p->name), "proxy-clients");
	else
		snprintf(p->name, sizeof(p->name), "proxy-kv%u", i + 1);
	p->role = TT_ROLE_PROXY;
	p->index = i;
	return tt_proc_set_argv(p, argv);
}

static int define_client(struct tt_runner *r, unsigned i)
{
	struct tt_proc *p = &r->client[i];
	char id[16], coord[32], kv[TT_MAX_PARTS][32], refuse[16], out[PATH_MAX + 32];
	char seed[24], inflight[16], staged[16], pause[24], tls[3][PATH_MAX + 48];
	const char *argv[TT_MAX_ARGS] = { r->self, "client", "--id", id, "--coordinator", coord,
		"--refuse", refuse, "--outcomes", out, "--seed", seed, "--inflight", inflight,
		"--timeout", "3s", "--drain", "2s", "--staged-pct", staged, NULL };
	size_t n = 20;

	snprintf(staged, sizeof(staged), "%u", r->o.staged_pct);
	if (r->o.short_expiry_ms) { /* a few pauses between stages outlast kv1's expiry */
		snprintf(pause, sizeof(pause), "%" PRIu64 "ms", r->o.short_expiry_ms + 300);
		argv[n++] = "--expiry-pause-pct";
		argv[n++] = "3";
		argv[n++] = "--expiry-pause";
		argv[n++] = pause;
	}
	if (r->o.broken == TT_BROKEN_ACCEPT_REJOIN) {
		/* Every bounce between two stages must reach the coordinator as a Join from
		 * the new incarnation, however slowly the participant restarts: longer pauses
		 * for the bounces to land in, and a later stage's Put retried until it is back. */
		argv[n++] = "--stage-pause";
		argv[n++] = "1s";
		argv[n++] = "--stage-retry";
		argv[n++] = "2s";
	}
	snprintf(id, sizeof(id), "%u", i + 1);
	hostport(coord, sizeof(coord), r->o.no_proxy ? r->coord_port : r->link_port[r->o.nparts]);
	snprintf(refuse, sizeof(refuse), "%u", r->o.nparts);
	snprintf(out, sizeof(out), "%s/outcomes/client%u.txt", r->dir, i + 1);
	snprintf(seed, sizeof(seed), "%" PRIu64, r->o.seed * 31 + i + 1);
	snprintf(inflight, sizeof(inflight), "%u", r->o.inflight);
	for (unsigned k = 0; k < r->o.nparts; k++) {
		hostport(kv[k], sizeof(kv[k]), r->kv_port[k]);
		argv[n++] = "--kv";
		argv[n++] = kv[k];
	}
	tt_add_tls_args(r, "client", argv, &n, tls);
	argv[n] = NULL;
	snprintf(p->name, sizeof(p->name), "client%u", i + 1);
	p->role = TT_ROLE_CLIENT;
	p->index = i;
	return tt_proc_set_argv(p, argv);
}

static int alloc_ports(struct tt_runner *r)
{
	int *ports[2 + 3 * (TT_MAX_PARTS + 1)];
	size_t n = 0;

	ports[n++] = &r->coord_port;
	ports[n++] = &r->admin_port;
	for (unsigned i = 0; i < r->o.nparts; i++)
		ports[n++] = &r->kv_port[i];
	for (unsigned i = 0; i <= r->o.nparts && !r->o.no_proxy; i++) {
		ports[n++] = &r->link_port[i];
		ports[n++] = &r->ctl_port[i];
	}
	for (size_t i = 0; i < n; i++) {
		int p;
		/* Ask until the port is new to this run (the kernel may hand one out twice). */
		do {
			p = tt_free_port();
			for (size_t j = 0; p > 0 && j < i; j++)
				if (*ports[j] == p)
					p = 0;
		} while (p == 0);
		if (p < 0)
			return p;
		*ports[i] = p;
	}
	return 0;
}

static int define_all(struct tt_runner *r)
{
	int rc = alloc_ports(r);

	if (!rc)
		rc = define_coord(r);
	r->all[r->nall++] = &r->coord;
	for (unsigned i = 0; !rc && i < r->o.nparts; i++) {
		rc = define_kv(r, i);
		r->all[r->nall++] = &r->kv[i];
	}
	for (unsigned i = 0; !rc && !r->o.no_proxy && i <= r->o.nparts; i++) {
		rc = define_proxy(r, i);
		r->all[r->nall++] = &r->proxy[i];
	}
	for (unsigned i = 0; !rc && i < r->o.nclients; i++) {
		rc = define_client(r, i);
		r->all[r->nall++] = &r->client[i];
	}
	for (size_t i = 0; i < r->nall; i++)
		snprintf(r->all[i]->log_path, sizeof(r->all[i]->log_path), "%s/logs/%s.log",
			 r->dir, r->all[i]->name);
	return rc;
}

/* ---- starting, with or without faults ---- */

static void count_armed(struct tt_runner *r, const char *spec)
{
	char copy[512], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", spec);
	for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		e[strcspn(e, "=")] = '\0';
		int pt = tpc_fault_lookup(e);
		if (pt >= 0 && (size_t)pt < sizeof(r->st.armed_point) / sizeof(r->st.armed_point[0]))
			r->st.armed_point[pt]++;
	}
}

static const char *broken_env_for(const struct tt_runner *r, const struct tt_proc *p)
{
	if (r->o.broken == TT_BROKEN_NONE)
		return NULL;
	if (r->o.broken == TT_BROKEN_COMMIT_BEFORE_LOG || r->o.broken == TT_BROKEN_ACCEPT_REJOIN
		    ? p->role == TT_ROLE_COORD : p->role == TT_ROLE_PART)
		return tt_broken_name(r->o.broken);
	return NULL;
}

/* Start @p p; @p with_faults: arm the faults of its next start in the rotation. */
static int start_proc(struct tt_runner *r, struct tt_proc *p, int with_faults)
{
	char faults_env[600], seed_env[48], broken_env[64];
	const char *env[] = { faults_env, seed_env, broken_env, NULL };
	const char *broken = broken_env_for(r, p);
	uint64_t fseed = tt_schedule_fault_seed(&r->sched, (enum tt_role)p->role, p->index,
						p->starts);

	p->faults[0] = '\0';
	if (with_faults && (p->role == TT_ROLE_COORD || p->role == TT_ROLE_PART))
		tt_schedule_faults(&r->sched, (enum tt_role)p->role, p->index, p->starts,
				   p->armed_starts, p->faults, sizeof(p->faults));
	snprintf(faults_env, sizeof(faults_env), "TPC_FAULTS=%s", p->faults);
	snprintf(seed_env, sizeof(seed_env), "TPC_FAULT_SEED=%" PRIu64, fseed);
	snprintf(broken_env, sizeof(broken_env), "TPC_BROKEN=%s", broken ? broken : "");
	if (p->faults[0]) {
		p->armed_starts++;
		r->st.armed_starts[p->role]++;
		count_armed(r, p->faults);
	}
	tt_proc_note(p, "=== tpc-torture: start #%u of %s at %.3f s%s%s%s%s", p->starts + 1,
		     p->name, tt_elapsed(r) / 1000.0, p->faults[0] ? ", TPC_FAULTS=" : "",
		     p->faults, broken ? ", TPC_BROKEN=" : "", broken ? broken : "");
	int rc = tt_proc_start(p, env);
	tt_slog(r, "start %s #%u%s%s%s", p->name, p->starts, p->faults[0] ? " TPC_FAULTS=" : "",
		p->faults, rc ? " FAILED" : "");
	p->restart_at_ms = 0;
	return rc;
}

static void kill_proc(struct tt_runner *r, struct tt_proc *p, const char *why)
{
	if (!p->pid)
		return;
	tt_proc_kill(p);
	tt_slog(r, "kill %s (SIGKILL, %s)", p->name, why);
}

/* ---- noticing deaths ---- */

static void describe_status(int status, char *buf, size_t cap)
{
	if (WIFSIGNALED(status))
		snprintf(buf, cap, "killed by signal %d%s", WTERMSIG(status),
			 WTERMSIG(status) == SIGKILL ? " (a crash fault point)" : "");
	else
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
}

/* Not at a fault point: a bug in the process (or a start-up failure). Keep it. */
static void note_death(struct tt_runner *r, const struct tt_proc *p, const char *how)
{
	if (r->ndeaths == TT_MAX_DEATHS)
		return;
	snprintf(r->death_who[r->ndeaths], sizeof(r->death_who[0]), "%s", p->name);
	snprintf(r->deaths[r->ndeaths++], sizeof(r->deaths[0]), "%s at %.3f s (see logs/%s.log)",
		 how, tt_elapsed(r) / 1000.0, p->name);
}

/* Reap whatever died; schedule restarts of what died on its own. */
static void reap(struct tt_runner *r, int clean_restart)
{
	struct tt_proc *p;
	int status;
	char how[96];

	while ((p = tt_proc_reap(r->all, r->nall, &status))) {
		if (p->expect_exit)
			continue;
		describe_status(status, how, sizeof(how));
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
			p->crashes++;
			r->st.crashes[p->role]++;
		} else {
			p->unclean_exits++;
			r->st.unclean[p->role]++;
			note_death(r, p, how);
		}
		tt_slog(r, "%s died on its own: %s", p->name, how);
		if (!p->held_down)
			p->restart_at_ms = tt_elapsed(r) + (clean_restart ? 0 : AUTO_RESTART_MS);
	}
	uint64_t now = tt_elapsed(r);
	for (size_t i = 0; i < r->nall; i++) {
		p = r->all[i];
		if (!p->pid && p->restart_at_ms && p->restart_at_ms <= now && !p->held_down)
			start_proc(r, p, !clean_restart);
	}
}

/* ---- waiting, and noticing SIGINT/SIGTERM ---- */

static int open_sigfd(struct tt_runner *r)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	r->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return r->sigfd < 0 ? -errno : 0;
}

static void wait_ms(struct tt_runner *r, uint64_t ms)
{
	struct pollfd pfd = { .fd = r->sigfd, .events = POLLIN };
	struct signalfd_siginfo si;

	if (poll(&pfd, 1, (int)ms) > 0 && read(r->sigfd, &si, sizeof(si)) == sizeof(si)) {
		r->interrupted = 1;
		tt_slog(r, "interrupted by signal %u", si.ssi_signo);
	}
}

/* ---- schedule actions ---- */

static void proxy_command(struct tt_runner *r, unsigned link, const char *cmd)
{
	char reply[256];
	struct tt_proc *p = &r->proxy[link];
	int rc = tt_control(r->ctl_port[link], cmd, reply, sizeof(reply), 2000);

	if (rc || strncmp(reply, "ok", 2) != 0) {
		r->st.control_errors++;
		tt_slog(r, "%s: %s -> %s", p->name, cmd, rc ? tpc_strerror(rc) : reply);
	} else {
		tt_slog(r, "%s: %s", p->name, cmd);
	}
}

static void do_link_action(struct tt_runner *r, const struct tt_action *a)
{
	char cmd[64];

	if (r->o.no_proxy || a->index > r->o.nparts)
		return;
	switch (a->act) {
	case TT_ACT_PARTITION: r->st.partitions++; proxy_command(r, a->index, "partition"); break;
	case TT_ACT_HEAL: proxy_command(r, a->index, "heal"); break;
	case TT_ACT_RESET: r->st.resets++; proxy_command(r, a->index, "reset"); break;
	case TT_ACT_DROP:
		r->st.drops += a->arg != 0;
		snprintf(cmd, sizeof(cmd), "set drop %u.%02u", a->arg / 100, a->arg % 100);
		proxy_command(r, a->index, cmd);
		break;
	case TT_ACT_DELAY:
		r->st.delays += a->arg != 0;
		snprintf(cmd, sizeof(cmd), "set delay %ums", a->arg);
		proxy_command(r, a->index, cmd);
		snprintf(cmd, sizeof(cmd), "set jitter %ums", a->arg / 2);
		proxy_command(r, a->index, cmd);
		break;
	default: break;
	}
}

static void do_action(struct tt_runner *r, const struct tt_action *a)
{
	struct tt_proc *p = proc_of(r, (enum tt_role)a->role, a->index);

	r->st.actions++;
	if (a->role == TT_ROLE_PROXY) {
		do_link_action(r, a);
		return;
	}
	if (a->act == TT_ACT_STRANGER) {
		if (a->index < r->o.nparts && !TT_IS_PG(r, a->index))
			tt_stranger_start(r, a->index, a->arg != 0);
		return;
	}
	if (a->act == TT_ACT_OPERATOR) {
		tt_operator_act(r, a->arg);
		return;
	}
	if (!p)
		return;
	if (a->act == TT_ACT_KILL) {
		p->held_down = 1;
		p->restart_at_ms = 0;
		if (p->pid) {
			r->st.kills[p->role]++;
			p->kills++;
			kill_proc(r, p, "schedule");
		} else {
			tt_slog(r, "kill %s: already down", p->name);
		}
	} else if (a->act == TT_ACT_RESTART) {
		p->held_down = 0;
		if (!p->pid)
			start_proc(r, p, 1);
	}
}

/* ---- checkpoints ---- */

/* The prepared transactions PostgreSQL holds go to participant @p i's leftovers. */
static int check_pg_quiet(struct tt_runner *r, struct tt_leftover *lo, unsigned i)
{
	size_t have = lo->nprepared[i], n = 0;
	int rc = tt_pg_prepared(r, lo->prepared[i] + have, TT_MAX_LEFTOVER - have, &n);

	lo->nprepared[i] = have + n > TT_MAX_LEFTOVER ? TT_MAX_LEFTOVER : have + n;
	return rc == 0 && n == 0;
}

static int check_quiet(struct tt_runner *r, struct tt_leftover *lo)
{
	char dir[PATH_MAX + 32];
	size_t n;
	int quiet = 1;

	snprintf(dir, sizeof(dir), "%s/coord", r->dir);
	if (tt_coord_unacked(dir, lo->unacked, TT_MAX_LEFTOVER, &n) < 0)
		quiet = 0; /* unreadable right now: ask again */
	lo->nunacked = n;
	quiet &= n == 0;
	for (unsigned i = 0; i < r->o.nparts; i++) {
		snprintf(dir, sizeof(dir), "%s/kv%u/state", r->dir, i + 1);
		if (tt_part_prepared(dir, lo->prepared[i], TT_MAX_LEFTOVER, &n) < 0)
			quiet = 0;
		lo->nprepared[i] = n;
		quiet &= n == 0;
		if (TT_IS_PG(r, i)) /* and nothing of it in pg_prepared_xacts */
			quiet &= check_pg_quiet(r, lo, i);
	}
	return quiet;
}

static void heal_links(struct tt_runner *r)
{
	for (unsigned i = 0; !r->o.no_proxy && i <= r->o.nparts; i++) {
		if (!r->proxy[i].pid)
			start_proc(r, &r->proxy[i], 0);
		proxy_command(r, i, "heal");
		proxy_command(r, i, "set drop 0");
		proxy_command(r, i, "set delay 0");
		proxy_command(r, i, "set jitter 0");
	}
}

/*
 * Every server that is down starts again, clean. A running one keeps its faults: a
 * slow or failing disk does not heal by itself, and what it leaves behind (a record
 * it could not drop, say) must still settle; one that crashes from now on is
 * restarted clean at once (reap(r, 1)). The exception is a skipped tombstone
 * (coord.end.before_log=fail): by design only a restart sends that decision again.
 */
static void heal_servers(struct tt_runner *r)
{
	struct tt_proc *servers[1 + TT_MAX_PARTS] = { &r->coord };

	for (unsigned i = 0; i < r->o.nparts; i++)
		servers[i + 1] = &r->kv[i];
	for (unsigned i = 0; i <= r->o.nparts; i++) {
		struct tt_proc *p = servers[i];
		p->held_down = 0;
		if (p->pid && strstr(p->faults, "coord.end.before_log=fail"))
			kill_proc(r, p, "checkpoint: a skipped tombstone is resent on restart");
		if (!p->pid)
			start_proc(r, p, 0);
	}
}

/* After a SIGTERM: a clean stop is exit status 0; anything else is a bug to report. */
static void wait_stopped(struct tt_runner *r, struct tt_proc *p, int timeout_ms)
{
	char how[128];
	int status = 0;

	if (!p->pid)
		return;
	if (tt_proc_wait(p, timeout_ms, &status)) {
		snprintf(how, sizeof(how), "did not stop within %d ms of SIGTERM", timeout_ms);
		kill_proc(r, p, "did not stop on SIGTERM");
		note_death(r, p, how);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	describe_status(status, how, sizeof(how) - 16);
	strcat(how, " on SIGTERM");
	tt_slog(r, "%s stopped badly: %s", p->name, how);
	note_death(r, p, how);
}

static void stop_clients(struct tt_runner *r, int final)
{
	for (unsigned i = 0; i < r->o.nclients; i++) {
		struct tt_proc *p = &r->client[i];
		p->held_down = 1;
		p->restart_at_ms = 0;
		if (!p->pid)
			continue;
		if (final) {
			tt_proc_signal(p, SIGTERM);
			kill(p->pid, SIGCONT);
		} else {
			kill(p->pid, SIGSTOP);
		}
	}
	for (unsigned i = 0; final && i < r->o.nclients; i++)
		wait_stopped(r, &r->client[i], CLIENT_STOP_MS);
	tt_slog(r, final ? "clients stopped" : "clients paused");
}

static void resume_clients(struct tt_runner *r)
{
	for (unsigned i = 0; i < r->o.nclients; i++) {
		struct tt_proc *p = &r->client[i];
		p->held_down = 0;
		if (p->pid)
			kill(p->pid, SIGCONT);
		else
			start_proc(r, p, 0);
	}
}

static void log_leftover(struct tt_runner *r, const struct tt_leftover *lo)
{
	for (size_t i = 0; i < lo->nunacked && i < TT_MAX_LEFTOVER; i++)
		tt_slog(r, "  coordinator: unacknowledged decision txid %" PRIu64, lo->unacked[i]);
	for (unsigned p = 0; p < r->o.nparts; p++)
		for (size_t i = 0; i < lo->nprepared[p] && i < TT_MAX_LEFTOVER; i++)
			tt_slog(r, "  kv%u: prepared txid %" PRIu64, p + 1, lo->prepared[p][i]);
}

/* Poll until quiet; keep what was left at the bound. */
static void wait_quiet(struct tt_runner *r, uint64_t t_heal, struct tt_leftover *lo)
{
	int past_bound = 0;

	for (;;) {
		struct tt_leftover now;
		reap(r, 1);
		tt_stranger_poll(r);
		memset(&now, 0, sizeof(now));
		uint64_t took = tt_elapsed(r) - t_heal;
		if (check_quiet(r, &now)) {
			lo->quiet = 1;
			lo->ms = took;
			return;
		}
		if (!past_bound && took > r->o.quiet_bound_ms) {
			past_bound = 1;
			*lo = now;
			tt_slog(r, "NOT QUIET %" PRIu64 " ms after healing:", took);
			log_leftover(r, lo);
		}
		if (took > r->o.quiet_bound_ms + QUIET_GRACE_MS || r->interrupted) {
			lo->ms = took;
			return;
		}
		wait_ms(r, QUIET_POLL_MS);
	}
}

static struct tt_leftover *new_leftover(struct tt_runner *r)
{
	if (r->nleft == TT_MAX_CHECKPOINTS)
		return NULL;
	struct tt_leftover *nv = realloc(r->left, (r->nleft + 1) * sizeof(*nv));
	if (!nv)
		return NULL;
	r->left = nv;
	memset(&nv[r->nleft], 0, sizeof(*nv));
	return &nv[r->nleft++];
}

static void checkpoint(struct tt_runner *r, int final)
{
	struct tt_leftover spare, *lo = new_leftover(r);
	uint64_t t_heal = tt_elapsed(r);

	r->st.checkpoints++;
	tt_slog(r, "checkpoint %" PRIu64 "%s: heal everything", r->st.checkpoints,
		final ? " (final)" : "");
	if (!lo) { /* past TT_MAX_CHECKPOINTS: heal and measure, keep nothing */
		memset(&spare, 0, sizeof(spare));
		lo = &spare;
	}
	heal_links(r);
	heal_servers(r);
	stop_clients(r, final);
	wait_quiet(r, t_heal, lo);
	if (lo->quiet)
		tt_slog(r, "checkpoint %" PRIu64 ": quiet %" PRIu64 " ms after healing%s",
			r->st.checkpoints, lo->ms,
			lo->ms > r->o.quiet_bound_ms ? " (PAST THE BOUND)" : "");
	else
		tt_slog(r, "checkpoint %" PRIu64 ": never quiet", r->st.checkpoints);
	if (lo->ms > r->st.worst_recovery_ms)
		r->st.worst_recovery_ms = lo->ms;
	r->st.total_recovery_ms += lo->ms;
	if (!r->o.quiet)
		printf("  checkpoint %" PRIu64 " at %.0f s: %s %.3f s after healing\n",
		       r->st.checkpoints, t_heal / 1000.0, lo->quiet ? "quiet" : "NOT quiet",
		       lo->ms / 1000.0);
	if (!final)
		resume_clients(r);
}

/* ---- the run ---- */

static int make_folder(struct tt_runner *r)
{
	const char *parent = r->o.workdir ? r->o.workdir : getenv("TMPDIR");
	char sub[PATH_MAX + 32];

	if (!parent || !*parent)
		parent = "/tmp";
	if (mkdir(parent, 0755) && errno != EEXIST)
		return -errno;
	if (snprintf(r->dir, sizeof(r->dir), "%s/tpc-torture-%" PRIu64 "-XXXXXX", parent,
		     r->o.seed) >= (int)sizeof(r->dir))
		return -ENAMETOOLONG;
	if (!mkdtemp(r->dir))
		return -errno;
	static const char *const subs[] = { "logs", "outcomes" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", r->dir, subs[i]);
		if (mkdir(sub, 0755))
			return -errno;
	}
	snprintf(sub, sizeof(sub), "%s/outcomes/operator.txt", r->dir);
	if (!(r->oplog = fopen(sub, "a")))
		return -errno;
	snprintf(sub, sizeof(sub), "%s/schedule.log", r->dir);
	r->slog = fopen(sub, "w");
	snprintf(sub, sizeof(sub), "%s/report.txt", r->dir);
	r->report = fopen(sub, "w");
	return r->slog && r->report ? 0 : -errno;
}

static void write_plan(struct tt_runner *r)
{
	for (size_t i = 0; i < r->sched.n; i++) {
		const struct tt_action *a = &r->sched.v[i];
		fprintf(r->slog, "# plan %6" PRIu64 ".%03" PRIu64 " %s %s %u %u\n", a->at_ms / 1000,
			a->at_ms % 1000, tt_act_name((enum tt_act)a->act),
			tt_role_name((enum tt_role)a->role), a->index, a->arg);
	}
	fflush(r->slog);
}

static int start_all(struct tt_runner *r)
{
	int focused = r->o.broken != TT_BROKEN_NONE; /* a broken run is armed from the start */
	int rc = start_proc(r, &r->coord, focused);

	if (!rc)
		rc = tt_wait_port(r->coord_port, 10000);
	for (unsigned i = 0; !rc && !r->o.no_proxy && i <= r->o.nparts; i++) {
		rc = start_proc(r, &r->proxy[i], 0);
		if (!rc)
			rc = tt_wait_port(r->link_port[i], 10000);
	}
	for (unsigned i = 0; !rc && i < r->o.nparts; i++) {
		rc = start_proc(r, &r->kv[i], focused);
		if (!rc)
			rc = tt_wait_port(r->kv_port[i], 10000);
	}
	for (unsigned i = 0; !rc && i < r->o.nclients; i++)
		rc = start_proc(r, &r->client[i], 0);
	if (rc)
		fprintf(stderr, "tpc-torture: could not start the processes (%s); see %s/logs\n",
			tpc_strerror(rc), r->dir);
	return rc;
}

static void progress(struct tt_runner *r, uint64_t *next_ms)
{
	uint64_t now = tt_elapsed(r);

	if (r->o.quiet || now < *next_ms)
		return;
	*next_ms = now + 10000;
	printf("  [%4" PRIu64 " s] %" PRIu64 " actions; kills: coordinator %" PRIu64
	       ", participants %" PRIu64 ", clients %" PRIu64 "; crashes by faults: %" PRIu64 "\n",
	       now / 1000, r->st.actions, r->st.kills[TT_ROLE_COORD], r->st.kills[TT_ROLE_PART],
	       r->st.kills[TT_ROLE_CLIENT],
	       r->st.crashes[TT_ROLE_COORD] + r->st.crashes[TT_ROLE_PART]);
	fflush(stdout);
}

static void run_schedule(struct tt_runner *r)
{
	uint64_t next_progress = 10000;
	size_t last = r->sched.n; /* the final checkpoint: the run ends with it */

	while (last > 0 && r->sched.v[last - 1].act != TT_ACT_CHECKPOINT)
		last--;
	for (size_t next = 0; next < last && !r->interrupted;) {
		const struct tt_action *a = &r->sched.v[next];
		reap(r, 0);
		tt_stranger_poll(r);
		tt_pg_poll(r);
		progress(r, &next_progress);
		uint64_t now = tt_elapsed(r);
		if (a->at_ms > now) {
			uint64_t wait = a->at_ms - now;
			wait_ms(r, wait < POLL_MS ? wait : POLL_MS);
			continue;
		}
		if (a->act == TT_ACT_CHECKPOINT)
			checkpoint(r, next + 1 == last);
		else
			do_action(r, a);
		next++;
	}
}

static void stop_all(struct tt_runner *r)
{
	for (size_t i = 0; i < r->nall; i++)
		if (r->all[i]->pid) {
			kill(r->all[i]->pid, SIGCONT);
			tt_proc_signal(r->all[i], SIGTERM);
		}
	for (size_t i = 0; i < r->nall; i++)
		wait_stopped(r, r->all[i], 5000);
	tt_slog(r, "all processes stopped");
}

static void free_all(struct tt_runner *r)
{
	for (size_t i = 0; i < r->nall; i++) {
		tt_proc_kill(r->all[i]);
		tt_proc_free_argv(r->all[i]);
	}
	tt_proc_kill(&r->stranger.p);
	tt_proc_free_argv(&r->stranger.p);
	tt_schedule_free(&r->sched);
	free(r->left);
	if (r->oplog)
		fclose(r->oplog);
	if (r->slog)
		fclose(r->slog);
	if (r->report)
		fclose(r->report);
	if (r->sigfd > 0)
		close(r->sigfd);
}

static int remove_tree(const char *path)
{
	char *argv[] = { "rm", "-rf", "--", (char *)path, NULL };
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		execvp("rm", argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int finish(struct tt_runner *r, long violations)
{
	char replay[1024];
	int failed = violations != 0;
	int ok = r->o.expect_violation ? violations > 0 : violations == 0;

	tt_replay_command(&r->o, replay, sizeof(replay));
	if (violations < 0) {
		tt_out(r, "the run could not be checked; run folder kept: %s\n", r->dir);
		return 2;
	}
	if (failed)
		tt_out(r, "replay with: %s\n", replay);
	if (r->o.expect_violation)
		tt_out(r, "%s (--expect-violation)\n",
		       ok ? "OK: the checker caught the violation" : "FAILED: no violation found");
	if (failed || r->o.keep || r->interrupted)
		tt_out(r, "run folder kept: %s\n", r->dir);
	else {
		fclose(r->slog);
		fclose(r->report);
		r->slog = r->report = NULL;
		remove_tree(r->dir);
	}
	return ok ? 0 : 1;
}

static int prepare(struct tt_runner *r)
{
	struct tt_sched_config sc = {
		.seed = r->o.seed, .duration_ms = r->o.duration_ms, .round_ms = r->o.round_ms,
		.nparts = r->o.nparts, .nclients = r->o.nclients, .proxies = !r->o.no_proxy,
		.profile = r->o.profile, .broken = r->o.broken, .classic = r->o.classic,
	};
	int rc = tt_schedule_build(&sc, &r->sched);

	if (rc) {
		fprintf(stderr, "tpc-torture: cannot build the schedule: %s\n", tpc_strerror(rc));
		return rc;
	}
	rc = make_folder(r);
	if (rc) {
		fprintf(stderr, "tpc-torture: cannot make the run folder under %s: %s\n",
			r->o.workdir ? r->o.workdir : "$TMPDIR", tpc_strerror(rc));
		return rc;
	}
	if (r->o.pg && (rc = tt_pg_start(r)) != 0)
		return rc;
	rc = define_all(r);
	if (!rc)
		rc = open_sigfd(r);
	if (rc)
		fprintf(stderr, "tpc-torture: cannot set up the run: %s\n", tpc_strerror(rc));
	return rc;
}

static void print_header(struct tt_runner *r)
{
	tt_out(r, "tpc-torture: seed %" PRIu64 ", %" PRIu64 " s, %u participants, %u clients x %u"
	       " in flight, %s, faults profile %s%s%s\n", r->o.seed, r->o.duration_ms / 1000,
	       r->o.nparts, r->o.nclients, r->o.inflight,
	       r->o.no_proxy ? "no proxies" : "proxies on", tt_profile_name(r->o.profile),
	       r->o.broken ? ", broken " : "", r->o.broken ? tt_broken_name(r->o.broken) : "");
	tt_out(r, "run folder: %s\n", r->dir);
	if (r->o.pg)
		tt_out(r, "postgresql (kv2): %s\n", r->pg_conninfo);
	tt_out(r, "binaries: %s, %s%s%s\n", r->coord_bin, r->kv_bin, r->o.no_proxy ? "" : ", ",
	       r->o.no_proxy ? "" : r->proxy_bin);
	fflush(stdout);
}

int tt_run(struct tt_runner *r)
{
	long violations = -1;
	int rc = prepare(r);

	r->t0 = tpc_now_ms();
	if (rc) {
		tt_pg_stop(r);
		free_all(r);
		return 2;
	}
	print_header(r);
	write_plan(r);
	r->oprng = r->o.seed ^ 0x09e7a7011ULL;
	if (start_all(r) == 0) {
		run_schedule(r);
		tt_stranger_finish(r);
		if (!r->interrupted)
			tt_resolve_unknown(r);
		stop_all(r);
		violations = tt_check_and_report(r);
	} else {
		stop_all(r);
	}
	tt_pg_stop(r);
	rc = finish(r, violations);
	free_all(r);
	return rc;
}
