/*
 * cluster.c - tpc-bench --spawn: a coordinator and P tpc-kv services as real processes
 * in a fresh temporary folder, on 127.0.0.1 ports chosen free at run time; plus what
 * the benchmark reads about processes and the machine from /proc.
 *
 * Invariants: every child runs in its own process group (a Ctrl-C at the terminal
 * reaches tpc-bench only, which then stops the children in order) and gets SIGKILL if
 * tpc-bench dies (PR_SET_PDEATHSIG), so nothing outlives a run; cluster_stop() reaps
 * every child and removes the folder unless --keep. Readiness is polled (connect every
 * 10 ms against a deadline), never waited for with a fixed sleep.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "util.h"

#define READY_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 10000

struct child {
	char name[32];
	char addr[32];
	char log[PATH_MAX + 32];
	char extra[PATH_MAX + 32]; /* coordinator: its admin address; tpc-kv: its --stats-file */
	pid_t pid;
};

struct cluster {
	char dir[PATH_MAX];
	char coord_bin[PATH_MAX], kv_bin[PATH_MAX];
	int keep;
	int kv_stats;              /* this tpc-kv knows --stats-file */
	struct child kids[BENCH_MAX_PROCS];
	unsigned nkids;
};

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port = -errno;

	if (fd < 0)
		return port;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	else
		port = -errno;
	close(fd);
	return port;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Look for NAME next to tpc-bench in a build tree (tools/, coordinator/) or installed. */
static int find_binary(const char *bin_dir, const char *name, char *out, size_t cap)
{
	static const char *const rel[] = { "", "../coordinator/", "../tools/", "coordinator/",
					   "tools/" };
	char self[PATH_MAX];
	const char *dir = bin_dir;

	if (!dir) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0)
			return -errno;
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		dir = self;
	}
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		if ((size_t)snprintf(out, cap, "%s/%s%s", dir, rel[i], name) >= cap)
			continue;
		if (access(out, X_OK) == 0)
			return 0;
	}
	fprintf(stderr, "tpc-bench: cannot find %s in or near %s (use --bin-dir)\n", name, dir);
	return -ENOENT;
}

/* In the child: own process group, die with the parent, default signals, log file. */
static void child_exec(char *const argv[], const char *log, int errpipe, pid_t parent)
{
	sigset_t none;
	int err;

	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	int null = open("/dev/null", O_RDONLY);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execv(argv[0], argv);
	err = errno;
	if (write(errpipe, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

/* fork + exec; the exec's errno comes back through a close-on-exec pipe. */
static pid_t spawn(char *const argv[], const char *log)
{
	int p[2], err = 0;
	pid_t parent = getpid(), pid;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid == 0)
		child_exec(argv, log, p[1], parent);
	close(p[1]);
	if (pid > 0)
		setpgid(pid, pid); /* also done by the child: whichever runs first */
	if (pid < 0) {
		close(p[0]);
		return -errno;
	}
	ssize_t n = read(p[0], &err, sizeof(err));
	close(p[0]);
	if (n == (ssize_t)sizeof(err)) {
		waitpid(pid, NULL, 0);
		return -err;
	}
	return pid;
}

static void print_log_tail(const char *path)
{
	char buf[2048];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "--- tail of %s ---\n%s", path, buf);
}

static int try_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	close(fd);
	return rc;
}

/* Poll until the child accepts on @p port; fail at once if it exits. */
static int wait_ready(struct child *k, int port)
{
	uint64_t deadline = tpc_now_ms() + READY_TIMEOUT_MS;
	int status;

	while (try_connect(port) != 0) {
		if (waitpid(k->pid, &status, WNOHANG) == k->pid) {
			fprintf(stderr, "tpc-bench: %s exited before it was ready\n", k->name);
			k->pid = 0;
			print_log_tail(k->log);
			return -ECHILD;
		}
		if (tpc_now_ms() > deadline) {
			fprintf(stderr, "tpc-bench: %s never opened port %d\n", k->name, port);
			print_log_tail(k->log);
			return -ETIMEDOUT;
		}
		sleep_ms(10);
	}
	return 0;
}

static int start_child(struct cluster *cl, const char *name, char *const argv[], int port)
{
	struct child *k = &cl->kids[cl->nkids];
	char log[sizeof(k->log)];

	snprintf(log, sizeof(log), "%s/%s.log", cl->dir, name); /* cl->dir: not into cl */
	memcpy(k->log, log, sizeof(log));
	snprintf(k->name, sizeof(k->name), "%s", name);
	snprintf(k->addr, sizeof(k->addr), "127.0.0.1:%d", port);
	pid_t pid = spawn(argv, k->log);
	if (pid < 0) {
		fprintf(stderr, "tpc-bench: cannot start %s: %s\n", argv[0], strerror((int)-pid));
		return (int)pid;
	}
	k->pid = pid;
	cl->nkids++;
	return wait_ready(k, port);
}

/* --tls-dir: "--tls-cert DIR/NAME.crt --tls-key DIR/NAME.key --tls-ca DIR/ca.crt" into
 * @p argv at @p n (paths in @p buf, which must outlive the spawn). @return the new n. */
static int add_tls(const struct bench_config *cfg, const char *name, char *argv[], int n,
		   char buf[3][PATH_MAX + 48])
{
	if (!cfg->tls_dir)
		return n;
	snprintf(buf[0], sizeof(buf[0]), "%s/%s.crt", cfg->tls_dir, name);
	snprintf(buf[1], sizeof(buf[1]), "%s/%s.key", cfg->tls_dir, name);
	snprintf(buf[2], sizeof(buf[2]), "%s/ca.crt", cfg->tls_dir);
	argv[n++] = "--tls-cert";
	argv[n++] = buf[0];
	argv[n++] = "--tls-key";
	argv[n++] = buf[1];
	argv[n++] = "--tls-ca";
	argv[n++] = buf[2];
	return n;
}

static int start_coordinator(struct cluster *cl, const struct bench_config *cfg,
			     enum cluster_profile profile)
{
	char tls[3][PATH_MAX + 48];
	char listen[32], data[PATH_MAX + 32], gc[16], lim[32], admin[32];
	int port = free_port(), admin_port = free_port();
	char *argv[24] = { cl->coord_bin, "--listen", listen, "--data", data, "--log-level",
			   "warn", "--admin", admin };
	int n = 9, rc;

	if (port < 0 || admin_port < 0)
		return port < 0 ? port : admin_port;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", admin_port);
	snprintf(data, sizeof(data), "%s/coordinator", cl->dir);
	snprintf(gc, sizeof(gc), "%u", cfg->group_commit);
	snprintf(lim, sizeof(lim), "%llu", (unsigned long long)cfg->memtest + 1000);
	if (cfg->group_commit) {
		argv[n++] = "--group-commit";
		argv[n++] = gc;
	}
	if (cfg->inline_sync)
		argv[n++] = "--inline-sync";
	if (profile == CLUSTER_MEMTEST) {
		argv[n++] = "--max-open-txns";
		argv[n++] = lim;
		argv[n++] = "--max-txns-per-conn";
		argv[n++] = lim;
		argv[n++] = "--txn-timeout";
		argv[n++] = "1h";
	}
	n = add_tls(cfg, "coordinator", argv, n, tls);
	argv[n] = NULL;
	rc = start_child(cl, "coordinator", argv, port);
	if (cl->nkids)
		snprintf(cl->kids[0].extra, sizeof(cl->kids[0].extra), "%s", admin);
	return rc;
}

static int start_kv(struct cluster *cl, const struct bench_config *cfg,
		    enum cluster_profile profile, unsigned i)
{
	char name[16], listen[32], data[PATH_MAX + 32], gc[16], tls[3][PATH_MAX + 48];
	char stats[PATH_MAX + 32];
	int port = free_port(), rc;
	char *argv[24] = { cl->kv_bin, "--name", name, "--listen", listen, "--coordinator",
			   cl->kids[0].addr, "--data", data };
	int n = 9;

	if (port < 0)
		return port;
	snprintf(name, sizeof(name), "kv%u", i + 1);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(data, sizeof(data), "%s/%s", cl->dir, name);
	snprintf(gc, sizeof(gc), "%u", cfg->group_commit);
	if (cfg->group_commit) {
		argv[n++] = "--group-commit";
		argv[n++] = gc;
	}
	if (cfg->inline_sync)
		argv[n++] = "--inline-sync";
	if (profile == CLUSTER_MEMTEST) {
		argv[n++] = "--txn-timeout";
		argv[n++] = "1h";
	}
	snprintf(stats, sizeof(stats), "%s/%s.stats", cl->dir, name);
	if (cl->kv_stats) {
		argv[n++] = "--stats-file";
		argv[n++] = stats;
	}
	n = add_tls(cfg, name, argv, n, tls);
	argv[n] = NULL;
	rc = start_child(cl, name, argv, port);
	if (rc == 0 && cl->kv_stats)
		memcpy(cl->kids[cl->nkids - 1].extra, stats, sizeof(stats));
	return rc;
}

static int make_run_dir(struct cluster *cl, const char *parent)
{
	if (!parent)
		parent = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int rc = tpc_mkdirs(parent);
	if (rc) {
		fprintf(stderr, "tpc-bench: cannot create %s: %s\n", parent, strerror(-rc));
		return rc;
	}
	if ((size_t)snprintf(cl->dir, sizeof(cl->dir), "%s/tpc-bench-XXXXXX", parent) >=
	    sizeof(cl->dir))
		return -ENAMETOOLONG;
	if (!mkdtemp(cl->dir)) {
		rc = -errno;
		fprintf(stderr, "tpc-bench: cannot make a folder in %s: %s\n", parent, strerror(errno));
		return rc;
	}
	return 0;
}

/* 1 if `BIN --help` mentions @p word (an option an older build may not have). */
static int help_mentions(const char *bin, const char *word)
{
	char cmd[PATH_MAX + 32], line[512];
	int found = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s' --help 2>&1", bin);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		found = found || strstr(line, word) != NULL;
	pclose(f);
	return found;
}

static void publish(struct bench *b, struct cluster *cl)
{
	/* Copies: the report outlives the cluster. */
	for (unsigned i = 0; i < cl->nkids; i++)
		snprintf(b->spawned_addr[i], sizeof(b->spawned_addr[i]), "%s", cl->kids[i].addr);
	b->cfg.coordinator = b->spawned_addr[0];
	b->cfg.nkv = cl->nkids - 1;
	for (unsigned i = 1; i < cl->nkids; i++)
		b->cfg.kv[i - 1] = b->spawned_addr[i];
	for (unsigned i = 0; i < cl->nkids && b->nprocs < BENCH_MAX_PROCS; i++) {
		struct bench_proc *p = &b->procs[b->nprocs++];
		snprintf(p->name, sizeof(p->name), "%s", cl->kids[i].name);
		p->pid = cl->kids[i].pid;
	}
	snprintf(b->run_dir, sizeof(b->run_dir), "%s", cl->dir);
}

int cluster_start(struct bench *b, uint32_t nkv, enum cluster_profile profile,
		  struct cluster **out)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	int rc = -ENOMEM;

	if (!cl)
		return rc;
	cl->keep = b->cfg.keep;
	rc = make_run_dir(cl, b->cfg.dir);
	if (rc)
		goto out_free;
	if ((rc = find_binary(b->cfg.bin_dir, "tpc-coordinator", cl->coord_bin, sizeof(cl->coord_bin))) ||
	    (rc = find_binary(b->cfg.bin_dir, "tpc-kv", cl->kv_bin, sizeof(cl->kv_bin))))
		goto out_stop;
	cl->kv_stats = help_mentions(cl->kv_bin, "--stats-file");
	rc = start_coordinator(cl, &b->cfg, profile);
	for (unsigned i = 0; !rc && i < nkv; i++)
		rc = start_kv(cl, &b->cfg, profile, i);
	if (rc)
		goto out_stop;
	publish(b, cl);
	*out = cl;
	return 0;

out_stop:
	cluster_stop(cl);
	return rc;
out_free:
	free(cl);
	return rc;
}

/* Wait for @p pid until @p deadline; SIGKILL its group after that. */
static void reap(pid_t pid, uint64_t deadline)
{
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		if (tpc_now_ms() > deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return;
		}
		sleep_ms(5);
	}
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) ? -1 : 0;
}

void cluster_stop(struct cluster *cl)
{
	if (!cl)
		return;
	/* Services first (they flush to the coordinator), then the coordinator. */
	for (unsigned i = cl->nkids; i-- > 0;)
		if (cl->kids[i].pid > 0)
			kill(cl->kids[i].pid, SIGTERM);
	uint64_t deadline = tpc_now_ms() + STOP_TIMEOUT_MS;
	for (unsigned i = cl->nkids; i-- > 0;)
		if (cl->kids[i].pid > 0)
			reap(cl->kids[i].pid, deadline);
	if (cl->keep)
		fprintf(stderr, "tpc-bench: run folder kept: %s\n", cl->dir);
	else if (cl->dir[0] && nftw(cl->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
		fprintf(stderr, "tpc-bench: cannot remove %s: %s\n", cl->dir, strerror(errno));
	free(cl);
}

int cluster_child(const struct cluster *cl, unsigned i, pid_t *pid, const char **extra)
{
	if (!cl || i >= cl->nkids)
		return -ENOENT;
	*pid = cl->kids[i].pid;
	*extra = cl->kids[i].extra;
	return 0;
}

pid_t cluster_coordinator_pid(const struct cluster *cl)
{
	return cl && cl->nkids ? cl->kids[0].pid : 0;
}

int proc_cpu_seconds(pid_t pid, double *out)
{
	char path[64], buf[1024];
	unsigned long long ut, st;

	if (pid == 0) {
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru))
			return -errno;
		*out = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After "pid (comm) ": state is field 3, utime 14, stime 15. */
	const char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return -EPROTO;
	*out = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

int machine_busy_seconds(double *out)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return -errno;
	/* cpu  user nice system idle iowait irq softirq steal */
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		       &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7)
		return -EPROTO;
	*out = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

int proc_rss_kib(pid_t pid, uint64_t *out)
{
	char path[64], line[256];
	unsigned long long kib;
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) {
			*out = kib;
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

static void cpu_model(char *out, size_t cap)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(out, cap, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon || strncmp(line, "model name", 10))
			continue;
		colon += strspn(colon + 1, " \t") + 1;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(out, cap, "%s", colon);
		break;
	}
	fclose(f);
}

/* The type of the longest mount point that is a prefix of @p dir's real path. */
static void fs_type(const char *dir, char *out, size_t cap)
{
	char real[PATH_MAX], mnt[PATH_MAX], type[64];
	size_t best = 0;
	FILE *f;

	snprintf(out, cap, "unknown");
	if (!realpath(dir, real) || !(f = fopen("/proc/self/mounts", "r")))
		return;
	while (fscanf(f, "%*s %4095s %63s %*[^\n]", mnt, type) == 2) {
		size_t len = strlen(mnt);
		int under = strncmp(real, mnt, len) == 0 &&
			    (real[len] == '/' || real[len] == '\0' || len == 1);
		if (under && len >= best) {
			best = len;
			snprintf(out, cap, "%s", type);
		}
	}
	fclose(f);
}

void machine_describe(struct machine_info *m, const char *dir)
{
	struct utsname u;

	cpu_model(m->cpu_model, sizeof(m->cpu_model));
	m->cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname, u.release, u.machine);
	else
		snprintf(m->kernel, sizeof(m->kernel), "unknown");
	fs_type(dir, m->fs_type, sizeof(m->fs_type));
	FILE *f = fopen("/proc/loadavg", "r");
	if (!f || fscanf(f, "%lf", &m->loadavg_1m) != 1)
		m->loadavg_1m = -1;
	if (f)
		fclose(f);
}
