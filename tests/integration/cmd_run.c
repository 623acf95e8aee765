/*
 * cmd_run.c - run a command and capture its output (see cmd_run.h).
 *
 * Owns two files per run in the caller's folder (cmd-N.out, cmd-N.err), removed after
 * they are read. The child is reaped before cmd_run returns, whatever happens.
 */
#include "cmd_run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static void child(char *const argv[], const char *const env[], int out, int err)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_DFL);
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		if (eq) {
			char name[128];
			snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
			setenv(name, eq + 1, 1);
		} else {
			unsetenv(env[i]);
		}
	}
	if (dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(126);
	execv(argv[0], argv);
	dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static void slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t k;

	buf[0] = '\0';
	if (fd < 0)
		return;
	while (n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	close(fd);
	unlink(path);
}

static int wait_child(pid_t pid, int timeout_ms, int *status)
{
	uint64_t deadline = tpc_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (tpc_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 5);
	}
}

int cmd_run(const char *dir, char *const argv[], const char *const env[], int timeout_ms,
	    struct cmd_result *r)
{
	static const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
	char opath[4096], epath[4096];
	int out, err, status = 0, rc;
	pid_t pid;

	snprintf(opath, sizeof(opath), "%s/cmd-%d.out", dir, (int)getpid());
	snprintf(epath, sizeof(epath), "%s/cmd-%d.err", dir, (int)getpid());
	out = open(opath, flags, 0600);
	err = open(epath, flags, 0600);
	if (out < 0 || err < 0) {
		rc = -errno;
		goto out_close;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out_close;
	}
	if (pid == 0)
		child(argv, env, out, err);
	rc = wait_child(pid, timeout_ms, &status);
	r->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
out_close:
	if (out >= 0)
		close(out);
	if (err >= 0)
		close(err);
	slurp(opath, r->out, sizeof(r->out));
	slurp(epath, r->err, sizeof(r->err));
	return rc;
}
