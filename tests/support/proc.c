/*
 * proc.c - the multi-process test harness (see proc.h).
 *
 * Owns: each child's pipes, its pidfd (used to wait for exit with poll(); a short
 * waitpid(WNOHANG) poll loop stands in where the kernel has no pidfd_open), the bytes
 * of a stdout line not yet complete, and the backlog of complete lines no wait has
 * matched yet. Invariant: a child is reaped exactly once (reap()), and a reaped child's
 * stdin is closed, while its stdout stays readable until EOF so lines it printed
 * before dying can still be waited for.
 */
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define PORT_RETRY_MS 15

struct tpc_proc {
	char name[64];
	pid_t pid;
	int pidfd;    /* -1 if the kernel has no pidfd_open */
	int in_fd;    /* our end of the child's stdin; -1 once closed */
	int out_fd;   /* our end of the child's stdout; -1 after EOF */
	int reaped;
	int status;
	char *part;   /* bytes of an incomplete stdout line */
	size_t part_len, part_cap;
	char **lines; /* backlog: complete lines not matched yet, oldest first */
	size_t nlines, lines_cap;
	char *last;   /* the line the last wait returned */
	char log_path[PATH_MAX]; /* where the child's stderr goes */
};

struct tpc_procs {
	tpc_proc **v;
	size_t n, cap;
};

/* ---- small helpers ------------------------------------------------------------ */

static int ms_left(uint64_t deadline)
{
	uint64_t now = tpc_now_ms();
	if (now >= deadline)
		return 0;
	return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

static uint64_t deadline_in(int timeout_ms)
{
	return tpc_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- ports and folders -------------------------------------------------------- */

int tpc_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, rc;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		rc = -errno;
		goto out_close;
	}
	rc = ntohs(sa.sin_port);
out_close:
	close(fd);
	return rc;
}

int tpc_listen_loopback(int backlog, int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int tpc_tmpdir_make(char *out, size_t cap)
{
	const char *base = getenv("TMPDIR");

	if (!base || !base[0])
		base = "/tmp";
	if ((size_t)snprintf(out, cap, "%s/tpc-test-XXXXXX", base) >= cap)
		return -ENAMETOOLONG;
	return mkdtemp(out) ? 0 : -errno;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

int tpc_tmpdir_remove(const char *path)
{
	return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

int tpc_tmpdir_release(const char *path)
{
	if (getenv("TPC_KEEP_TMP")) {
		fprintf(stderr, "kept %s\n", path);
		return 0;
	}
	return tpc_tmpdir_remove(path);
}

struct tpc_tmpdir *tpc_tmpdir_new(const char *leaf)
{
	struct tpc_tmpdir *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return NULL;
	rc = tpc_tmpdir_make(t->root, sizeof(t->root));
	if (rc) {
		free(t);
		errno = -rc;
		return NULL;
	}
	snprintf(t->path, sizeof(t->path), "%s/%s", t->root, leaf);
	return t;
}

void tpc_tmpdir_free(struct tpc_tmpdir *t)
{
	if (!t)
		return;
	tpc_tmpdir_remove(t->root);
	free(t);
}

/* One non-blocking connect attempt, waiting at most wait_ms. 0 if it connected. */
static int try_connect(const struct sockaddr_in *sa, int wait_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc = -1;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
		rc = 0;
	} else if (errno == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int soerr = 0;
		socklen_t l = sizeof(soerr);
		if (poll(&p, 1, wait_ms) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) == 0 && soerr == 0)
			rc = 0;
	}
	close(fd);
	return rc;
}

int tpc_wait_port(const char *host, int port, int timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint64_t deadline = deadline_in(timeout_ms);

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || port <= 0 || port > 65535)
		return -EINVAL;
	for (;;) {
		int left = ms_left(deadline);
		if (try_connect(&sa, left < 100 ? left : 100) == 0)
			return 0;
		left = ms_left(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		poll(NULL, 0, left < PORT_RETRY_MS ? left : PORT_RETRY_MS);
	}
}

/* ---- the set ------------------------------------------------------------------ */

tpc_procs *tpc_procs_new(void)
{
	signal(SIGPIPE, SIG_IGN);
	return calloc(1, sizeof(tpc_procs));
}

static void proc_free(tpc_proc *p)
{
	tpc_proc_kill9(p);
	close_fd(&p->out_fd);
	for (size_t i = 0; i < p->nlines; i++)
		free(p->lines[i]);
	free(p->lines);
	free(p->part);
	free(p->last);
	free(p);
}

void tpc_procs_free(tpc_procs *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		proc_free(set->v[i]);
	free(set->v);
	free(set);
}

static int set_add(tpc_procs *set, tpc_proc *p)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 8;
		tpc_proc **v = realloc(set->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = p;
	return 0;
}

/* ---- spawning ----------------------------------------------------------------- */

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(char *const argv[], char *const envp[], pid_t parent, int in_rd,
		       int out_wr, int err_fd, int report_fd)
{
	sigset_t none;
	int e;

	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (dup2(in_rd, 0) < 0 || dup2(out_wr, 1) < 0 || dup2(err_fd, 2) < 0)
		goto out_report;
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL); /* ignored signals would survive exec */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, envp);
out_report:
	e = errno;
	if (write(report_fd, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

/* Parent side: wait for exec (the report pipe closes) or its failure (errno arrives). */
static int exec_result(int report_fd)
{
	int e = 0;
	ssize_t n;

	do
		n = read(report_fd, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(e) ? -e : 0;
}

static tpc_proc *proc_alloc(const char *path)
{
	tpc_proc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	const char *base = strrchr(path, '/');
	snprintf(p->name, sizeof(p->name), "%s", base ? base + 1 : path);
	p->pid = -1;
	p->pidfd = p->in_fd = p->out_fd = -1;
	return p;
}

extern char **environ;

/* The caller's environment with @p extra ("NAME=VALUE") replacing or adding entries;
 * built before fork() because the child may only make async-signal-safe calls.
 * The strings are shared with environ and extra; free only the array. */
static char **env_merge(const char *const extra[])
{
	size_t n = 0, k = 0, m = 0;

	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	char **v = calloc(n + m + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int replaced = 0;
		for (size_t j = 0; j < m && !replaced; j++) {
			const char *eq = strchr(extra[j], '=');
			size_t len = eq ? (size_t)(eq - extra[j]) : strlen(extra[j]);
			replaced = strncmp(environ[i], extra[j], len) == 0 && environ[i][len] == '=';
		}
		if (!replaced)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		v[k++] = (char *)extra[j];
	return v;
}

tpc_proc *tpc_proc_spawn(tpc_procs *set, char *const argv[], const char *stderr_path)
{
	return tpc_proc_spawn_env(set, argv, stderr_path, NULL);
}

tpc_proc *tpc_proc_spawn_env(tpc_procs *set, char *const argv[], const char *stderr_path,
			     const char *const env[])
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, rep[2] = { -1, -1 }, err_fd = -1;
	int rc = -ENOMEM;
	tpc_proc *p = proc_alloc(argv[0]);
	char **envp = env_merge(env);

	if (!p || !envp)
		goto out_fail;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
		goto out_errno;
	err_fd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (err_fd < 0)
		goto out_errno;
	pid_t parent = getpid();
	snprintf(p->log_path, sizeof(p->log_path), "%s", stderr_path);
	p->pid = fork();
	if (p->pid < 0)
		goto out_errno;
	if (p->pid == 0)
		child_exec(argv, envp, parent, in[0], out[1], err_fd, rep[1]);
	setpgid(p->pid, p->pid); /* also done by the child; whichever runs first wins */
	close_fd(&rep[1]);
	rc = exec_result(rep[0]);
	if (rc < 0) {
		waitpid(p->pid, NULL, 0);
		p->reaped = 1;
		goto out_fail;
	}
	p->in_fd = in[1];
	in[1] = -1;
	p->out_fd = out[0];
	out[0] = -1;
	fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	snprintf(p->name + strlen(p->name), sizeof(p->name) - strlen(p->name), "[%d]",
		 (int)p->pid);
	rc = set_add(set, p);
	if (rc < 0) {
		proc_free(p);
		p = NULL;
		goto out_close;
	}
	goto out_close;

out_errno:
	rc = -errno;
out_fail:
	free(p);
	p = NULL;
out_close:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&rep[0]);
	close_fd(&rep[1]);
	close_fd(&err_fd);
	free(envp);
	if (!p)
		errno = -rc;
	return p;
}

/* ---- one-shot commands -------------------------------------------------------- */

/* Read the child's stdout to EOF or the deadline; bytes past cap - 1 are dropped. */
static int capture_out(int fd, char *out, size_t cap, uint64_t deadline)
{
	size_t len = 0;
	int rc = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char buf[4096];
		int n = poll(&pfd, 1, ms_left(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return -ETIMEDOUT;
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			break;
		size_t take = (size_t)got < cap - 1 - len ? (size_t)got : cap - 1 - len;
		memcpy(out + len, buf, take);
		len += take;
		if (take < (size_t)got)
			rc = -EMSGSIZE;
	}
	out[len] = '\0';
	return rc;
}

int tpc_run_capture(char *const argv[], char *out, size_t cap, int timeout_ms, int *status)
{
	int pipefd[2], rep[2] = { -1, -1 }, nul = -1, st = 0, rc;
	uint64_t deadline = deadline_in(timeout_ms);
	pid_t pid;

	if (!cap)
		return -EINVAL;
	out[0] = '\0';
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(rep, O_CLOEXEC) < 0 || (nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		goto out_close;
	}
	pid_t parent = getpid();
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out_close;
	}
	if (pid == 0)
		child_exec(argv, environ, parent, nul, pipefd[1], 2, rep[1]);
	close_fd(&pipefd[1]);
	close_fd(&rep[1]);
	rc = exec_result(rep[0]);
	if (rc == 0)
		rc = capture_out(pipefd[0], out, cap, deadline);
	if (rc == -ETIMEDOUT)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (status)
		*status = st;
out_close:
	close_fd(&pipefd[0]);
	close_fd(&pipefd[1]);
	close_fd(&rep[0]);
	close_fd(&rep[1]);
	close_fd(&nul);
	return rc;
}

pid_t tpc_proc_pid(const tpc_proc *p) { return p->pid; }

/* ---- stdin -------------------------------------------------------------------- */

int tpc_proc_write_line(tpc_proc *p, const char *line)
{
	size_t len = strlen(line);
	char *buf;
	int rc = 0;

	if (p->in_fd < 0)
		return -EPIPE;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, line, len);
	buf[len++] = '\n';
	for (size_t off = 0; off < len;) {
		ssize_t n = write(p->in_fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	free(buf);
	return rc;
}

int tpc_proc_writef(tpc_proc *p, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EMSGSIZE;
	return tpc_proc_write_line(p, line);
}

void tpc_proc_close_stdin(tpc_proc *p)
{
	close_fd(&p->in_fd);
}

/* ---- stdout lines ------------------------------------------------------------- */

static int backlog_push(tpc_proc *p, const char *s, size_t len)
{
	if (p->nlines == p->lines_cap) {
		size_t cap = p->lines_cap ? p->lines_cap * 2 : 32;
		char **v = realloc(p->lines, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->lines = v;
		p->lines_cap = cap;
	}
	char *line = strndup(s, len);
	if (!line)
		return -ENOMEM;
	p->lines[p->nlines++] = line;
	return 0;
}

static int part_append(tpc_proc *p, const char *s, size_t len)
{
	if (p->part_len + len > p->part_cap) {
		size_t cap = p->part_cap ? p->part_cap : 256;
		while (cap < p->part_len + len)
			cap *= 2;
		char *np = realloc(p->part, cap);
		if (!np)
			return -ENOMEM;
		p->part = np;
		p->part_cap = cap;
	}
	memcpy(p->part + p->part_len, s, len);
	p->part_len += len;
	return 0;
}

/* Move every complete line of part[] into the backlog. */
static int split_lines(tpc_proc *p)
{
	size_t start = 0;
	int rc = 0;

	for (size_t i = 0; i < p->part_len && rc == 0; i++) {
		if (p->part[i] != '\n')
			continue;
		rc = backlog_push(p, p->part + start, i - start);
		start = i + 1;
	}
	memmove(p->part, p->part + start, p->part_len - start);
	p->part_len -= start;
	return rc;
}

/* At EOF: a last line without a newline still counts as a line. */
static void stdout_eof(tpc_proc *p)
{
	if (p->part_len)
		backlog_push(p, p->part, p->part_len);
	p->part_len = 0;
	close_fd(&p->out_fd);
}

/* Read whatever the child printed, waiting at most wait_ms for the first byte. */
static int pump(tpc_proc *p, int wait_ms)
{
	struct pollfd pfd = { .fd = p->out_fd, .events = POLLIN };
	char buf[4096];

	int n = poll(&pfd, 1, wait_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ETIMEDOUT;
	for (;;) {
		ssize_t got = read(p->out_fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (got == 0) {
			stdout_eof(p);
			return 0;
		}
		int rc = part_append(p, buf, (size_t)got);
		if (rc == 0)
			rc = split_lines(p);
		if (rc < 0)
			return rc;
	}
}

static const char *backlog_take(tpc_proc *p, const char *prefix)
{
	size_t plen = strlen(prefix);

	for (size_t i = 0; i < p->nlines; i++) {
		if (strncmp(p->lines[i], prefix, plen) != 0)
			continue;
		free(p->last);
		p->last = p->lines[i];
		memmove(&p->lines[i], &p->lines[i + 1], (p->nlines - i - 1) * sizeof(char *));
		p->nlines--;
		return p->last;
	}
	return NULL;
}

/* The last bytes of the child's stderr log, for failure reports. */
static void dump_log_tail(const tpc_proc *p, long max)
{
	char buf[2048];
	FILE *f = fopen(p->log_path, "r");

	if (!f)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > max)
		fseek(f, -max, SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	fprintf(stderr, "[%s] tail of %s:\n", p->name, p->log_path);
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
}

void tpc_proc_dump(tpc_proc *p)
{
	fprintf(stderr, "[%s] %zu unmatched stdout line(s):\n", p->name, p->nlines);
	for (size_t i = 0; i < p->nlines; i++)
		fprintf(stderr, "[%s]   %s\n", p->name, p->lines[i]);
	dump_log_tail(p, 2048);
}

const char *tpc_proc_take_line(tpc_proc *p, const char *prefix)
{
	if (p->out_fd >= 0)
		pump(p, 0);
	return backlog_take(p, prefix);
}

const char *tpc_proc_wait_line(tpc_proc *p, const char *prefix, int timeout_ms)
{
	uint64_t deadline = deadline_in(timeout_ms);
	const char *line;
	int rc = 0;

	while (!(line = backlog_take(p, prefix))) {
		if (p->out_fd < 0) {
			rc = -EPIPE;
			break;
		}
		rc = pump(p, ms_left(deadline));
		if (rc < 0)
			break;
	}
	if (line)
		return line;
	fprintf(stderr, "[%s] no line starting with \"%s\" within %d ms (%s)\n", p->name, prefix,
		timeout_ms, rc == -EPIPE ? "stdout closed" : strerror(-rc));
	tpc_proc_dump(p);
	errno = -rc;
	return NULL;
}

/* ---- exit --------------------------------------------------------------------- */

static void reap(tpc_proc *p)
{
	int st = 0;
	pid_t r;

	do
		r = waitpid(p->pid, &st, 0);
	while (r < 0 && errno == EINTR);
	p->reaped = 1;
	p->status = st;
	close_fd(&p->pidfd);
	close_fd(&p->in_fd);
}

/* Wait until the child has exited (without reaping). 0 or -ETIMEDOUT. */
static int wait_exited(tpc_proc *p, uint64_t deadline)
{
	if (p->pidfd >= 0) {
		struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
		int n;
		do
			n = poll(&pfd, 1, ms_left(deadline));
		while (n < 0 && errno == EINTR);
		return n == 1 ? 0 : -ETIMEDOUT;
	}
	for (;;) { /* no pidfd: peek with waitid(WNOWAIT) every few ms */
		siginfo_t si = { 0 };
		if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == p->pid)
			return 0;
		int left = ms_left(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		poll(NULL, 0, left < 5 ? left : 5);
	}
}

int tpc_proc_alive(tpc_proc *p)
{
	if (p->reaped)
		return 0;
	if (wait_exited(p, 0) == 0)
		reap(p);
	return !p->reaped;
}

int tpc_proc_wait_exit(tpc_proc *p, int timeout_ms, int *status)
{
	if (!p->reaped) {
		if (wait_exited(p, deadline_in(timeout_ms)) < 0)
			return -ETIMEDOUT;
		reap(p);
	}
	if (status)
		*status = p->status;
	return 0;
}

int tpc_proc_kill9(tpc_proc *p)
{
	if (p->reaped || p->pid <= 0)
		return 0;
	if (kill(-p->pid, SIGKILL) < 0)
		kill(p->pid, SIGKILL);
	reap(p);
	return 0;
}

int tpc_proc_term(tpc_proc *p, int timeout_ms, int *status)
{
	if (!p->reaped)
		kill(p->pid, SIGTERM);
	return tpc_proc_wait_exit(p, timeout_ms, status);
}
