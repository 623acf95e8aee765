/*
 * sup.c - the driver's process supervisor (see sup.h).
 *
 * A child's environment is set between fork and exec (the driver is single-threaded):
 * TPC_FAULTS and TPC_FAULT_SEED for tpc's fault points, LESSON_CRASH_SEED for the
 * lesson programs' own crash points, and LD_PRELOAD plus LESSON_FORCES_* when forces
 * are counted. Each start gets a new seed, so a restarted process does not crash at
 * the same point again and again, and the same run seed replays the same sequence.
 */
#include "sup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sup_add(struct sup *s, const char *name, int role, int port, int finite, const char *dir,
	    const char *const argv[])
{
	if (s->n == SUP_MAX_PROCS)
		return -1;
	struct sup_proc *p = &s->p[s->n];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->role = role;
	p->port = port;
	p->finite = finite;
	snprintf(p->out_path, sizeof(p->out_path), "%s/%s.out", dir, name);
	snprintf(p->err_path, sizeof(p->err_path), "%s/%s.err", dir, name);
	for (int i = 0; argv[i]; i++) {
		if (i == SUP_MAX_ARGS - 1 || !(p->argv[i] = strdup(argv[i])))
			return -1;
	}
	return s->n++;
}

static void child_env(const struct sup *s, const struct sup_proc *p)
{
	char v[32];

	snprintf(v, sizeof(v), "%llu", (unsigned long long)(s->seed * 1000 + p->starts));
	setenv("TPC_FAULT_SEED", v, 1);
	setenv("LESSON_CRASH_SEED", v, 1);
	if (p->faults[0])
		setenv("TPC_FAULTS", p->faults, 1);
	else
		unsetenv("TPC_FAULTS");
	if (s->forces_file) {
		snprintf(v, sizeof(v), "%d", p->role);
		setenv("LESSON_FORCES_FILE", s->forces_file, 1);
		setenv("LESSON_FORCES_ROLE", v, 1);
		setenv("LD_PRELOAD", s->forces_lib, 1);
	}
}

static void child_exec(const struct sup *s, const struct sup_proc *p)
{
	int out = open(p->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int err = open(p->err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(126);
	child_env(s, p);
	execv(p->argv[0], p->argv);
	fprintf(stderr, "cannot run %s: %s\n", p->argv[0], strerror(errno));
	_exit(127);
}

static int can_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* 0 once it listens; -EINTR if a signal killed it on the way (a fault point fired
 * during its recovery: start it again); another negative code if it failed. */
static int wait_port(struct sup *s, int i)
{
	struct sup_proc *p = &s->p[i];
	uint64_t deadline = now_ms() + 20000;

	while (!can_connect(p->port)) {
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			if (WIFSIGNALED(st)) {
				p->crashes++;
				return -EINTR;
			}
			snprintf(s->err, sizeof(s->err), "%s died while starting (status %d)", p->name, st);
			return -ECHILD;
		}
		if (now_ms() > deadline) {
			snprintf(s->err, sizeof(s->err), "%s never listened on port %d", p->name, p->port);
			return -ETIMEDOUT;
		}
		sleep_ms(5);
	}
	return 0;
}

static int start_once(struct sup *s, int i)
{
	struct sup_proc *p = &s->p[i];
	pid_t pid = fork();

	if (pid < 0) {
		snprintf(s->err, sizeof(s->err), "fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0)
		child_exec(s, p);
	p->pid = pid;
	p->starts++;
	p->done = 0;
	return p->port ? wait_port(s, i) : 0;
}

int sup_start(struct sup *s, int i)
{
	int rc = -EINTR;

	for (int attempt = 0; rc == -EINTR && attempt < 50; attempt++)
		rc = start_once(s, i);
	if (rc == -EINTR)
		snprintf(s->err, sizeof(s->err), "%s kept crashing while starting", s->p[i].name);
	return rc;
}

void sup_kill9(struct sup *s, int i)
{
	struct sup_proc *p = &s->p[i];

	if (!p->pid)
		return;
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
	p->kills++;
}

int sup_poll(struct sup *s, int i)
{
	struct sup_proc *p = &s->p[i];
	int st;

	if (!p->pid || waitpid(p->pid, &st, WNOHANG) != p->pid)
		return 0;
	p->pid = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && p->finite) {
		p->done = 1;
		return 1;
	}
	if (WIFSIGNALED(st)) {
		p->crashes++;
		return 2;
	}
	snprintf(s->err, sizeof(s->err), "%s exited with status %d", p->name,
		 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return -1;
}

void sup_stop(struct sup *s, int i, int timeout_ms)
{
	struct sup_proc *p = &s->p[i];
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	if (!p->pid)
		return;
	kill(p->pid, SIGTERM);
	while (waitpid(p->pid, NULL, WNOHANG) != p->pid) {
		if (now_ms() > deadline) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			break;
		}
		sleep_ms(5);
	}
	p->pid = 0;
}

void sup_free(struct sup *s)
{
	for (int i = 0; i < s->n; i++) {
		struct sup_proc *p = &s->p[i];
		if (p->pid) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
		}
		for (int a = 0; p->argv[a]; a++)
			free(p->argv[a]);
		memset(p->argv, 0, sizeof(p->argv));
	}
	s->n = 0;
}

void sup_dump(const struct sup *s, int i)
{
	char line[512];
	FILE *f = fopen(s->p[i].err_path, "r");
	long n = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		n++;
	rewind(f);
	fprintf(stderr, "---- last lines of %s ----\n", s->p[i].err_path);
	for (long k = 0; fgets(line, sizeof(line), f); k++)
		if (k >= n - 15)
			fputs(line, stderr);
	fclose(f);
}

int sup_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	if (fd < 0)
		return -errno;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len)) {
		port = -errno;
	} else {
		port = ntohs(sa.sin_port);
	}
	close(fd);
	return port;
}
