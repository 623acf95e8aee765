/*
 * supervise.c - child processes, ports, control lines and admin API calls for the
 * runner (supervise.h).
 *
 * Owns nothing global: every process is a struct tt_proc of the caller's. A child gets
 * its own process group, an empty signal mask and default SIGPIPE (the runner blocks
 * its signals for its signalfd, and ignores SIGPIPE), and dies with the runner.
 */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "http.h"
#include "util.h"

int tt_proc_set_argv(struct tt_proc *p, const char *const *argv)
{
	size_t n = 0;

	tt_proc_free_argv(p);
	for (; argv[n]; n++) {
		if (n + 1 == TT_MAX_ARGS) {
			tt_proc_free_argv(p);
			return -E2BIG;
		}
		if (!(p->argv[n] = strdup(argv[n]))) {
			tt_proc_free_argv(p);
			return -ENOMEM;
		}
	}
	p->argv[n] = NULL;
	return 0;
}

void tt_proc_free_argv(struct tt_proc *p)
{
	for (size_t i = 0; i < TT_MAX_ARGS && p->argv[i]; i++) {
		free(p->argv[i]);
		p->argv[i] = NULL;
	}
}

/* In the child, between fork and exec: only async-signal-safe calls matter little here
 * (the runner is single-threaded), but keep it short. */
static void child_exec(struct tt_proc *p, const char *const *env, pid_t parent)
{
	sigset_t none;
	int fd = open(p->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int devnull = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126); /* the runner is already gone */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (fd < 0 || devnull < 0)
		_exit(126);
	dup2(devnull, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		char name[64];
		if (!eq || (size_t)(eq - env[i]) >= sizeof(name))
			continue;
		memcpy(name, env[i], (size_t)(eq - env[i]));
		name[eq - env[i]] = '\0';
		if (eq[1])
			setenv(name, eq + 1, 1);
		else
			unsetenv(name);
	}
	execv(p->argv[0], p->argv);
	fprintf(stderr, "tpc-torture: cannot run %s: %s\n", p->argv[0], strerror(errno));
	_exit(127);
}

int tt_proc_start(struct tt_proc *p, const char *const *env)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_exec(p, env, parent);
	p->pid = pid;
	p->expect_exit = 0;
	p->starts++;
	return 0;
}

int tt_proc_signal(struct tt_proc *p, int sig)
{
	if (!p->pid)
		return -ESRCH;
	p->expect_exit = 1;
	return kill(p->pid, sig) ? -errno : 0;
}

int tt_proc_kill(struct tt_proc *p)
{
	int status;

	if (!p->pid)
		return 0;
	p->expect_exit = 1;
	kill(p->pid, SIGKILL);
	kill(p->pid, SIGCONT); /* a stopped process dies at once either way */
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
	return 0;
}

int tt_proc_wait(struct tt_proc *p, int timeout_ms, int *status)
{
	uint64_t deadline = tpc_now_ms() + (uint64_t)timeout_ms;

	while (p->pid) {
		pid_t r = waitpid(p->pid, status, WNOHANG);
		if (r == p->pid || (r < 0 && errno == ECHILD)) {
			p->pid = 0;
			return 0;
		}
		if (tpc_now_ms() >= deadline)
			return -ETIMEDOUT;
		tt_sleep_ms(10);
	}
	return 0;
}

struct tt_proc *tt_proc_reap(struct tt_proc *const *procs, size_t n, int *status)
{
	for (size_t i = 0; i < n; i++) {
		struct tt_proc *p = procs[i];
		if (p->pid && waitpid(p->pid, status, WNOHANG) == p->pid) {
			p->pid = 0;
			return p;
		}
	}
	return NULL;
}

void tt_proc_note(const struct tt_proc *p, const char *fmt, ...)
{
	FILE *f = fopen(p->log_path, "a");
	va_list ap;

	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

int tt_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len))
		rc = -errno;
	else
		rc = ntohs(sa.sin_port);
	close(fd);
	return rc;
}

static int connect_local(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int tt_wait_port(int port, int timeout_ms)
{
	uint64_t deadline = tpc_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int fd = connect_local(port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (tpc_now_ms() >= deadline)
			return -ETIMEDOUT;
		tt_sleep_ms(15);
	}
}

/* Read up to a newline, within the deadline. */
static int read_line(int fd, char *buf, size_t cap, uint64_t deadline)
{
	size_t len = 0;

	while (len + 1 < cap) {
		uint64_t now = tpc_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (now >= deadline)
			return -ETIMEDOUT;
		int pr = poll(&pfd, 1, (int)(deadline - now));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return pr ? -errno : -ETIMEDOUT;
		ssize_t r = read(fd, buf + len, 1);
		if (r <= 0)
			return r ? -errno : -EPIPE;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return 0;
}

int tt_control(int port, const char *cmd, char *reply, size_t cap, int timeout_ms)
{
	char line[256];
	int fd = connect_local(port), rc;
	int n = snprintf(line, sizeof(line), "%s\n", cmd);

	if (fd < 0)
		return fd;
	if (n < 0 || (size_t)n >= sizeof(line))
		rc = -EINVAL;
	else if (write(fd, line, (size_t)n) != n)
		rc = -errno;
	else
		rc = read_line(fd, reply, cap, tpc_now_ms() + (uint64_t)timeout_ms);
	close(fd);
	return rc;
}

/* The admin API through tpcctl's HTTP client (tools/tpcctl/http.h). */
int tt_http(int port, const char *method, const char *path, const char *body, int *sent,
	    int *status, char *resp, size_t cap, int timeout_ms)
{
	char hostport[32], err[256];
	struct ctl_http_resp r;
	int rc;

	snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
	rc = ctl_http_request(hostport, method, path, NULL, body, timeout_ms, &r, err,
			      sizeof(err));
	*sent = rc != -ECONNREFUSED; /* a loopback server that is down refuses at once */
	*status = rc ? 0 : r.status;
	snprintf(resp, cap, "%s", rc ? "" : r.body);
	if (!rc)
		ctl_http_resp_free(&r);
	return rc;
}

void tt_sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}
