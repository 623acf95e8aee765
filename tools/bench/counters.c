/*
 * counters.c - what the servers did per transaction besides using CPU: the device
 * syncs they asked of the disk, from their own counters (the coordinator's
 * tpc_log_syncs_total in its /metrics; each tpc-kv's --stats-file, rewritten on
 * SIGUSR1), and, with --syscalls, the system calls of every server process counted by
 * the kernel (`perf stat` on the raw_syscalls:sys_enter, fdatasync and fsync
 * tracepoints).
 *
 * Both are read at the CPU window's edges (counters_edge), so a figure divided by the
 * CPU window and the commit rate is per committed transaction, like CPU per
 * transaction. perf starts before the load with its events disabled and is enabled
 * and disabled through its control FIFO (each step acknowledged), so it counts the
 * window only. A server that has no such counter (an older build) is reported as not
 * counted, never as zero.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "util.h"

#define STATS_TIMEOUT_MS 2000
#define PERF_EVENTS "raw_syscalls:sys_enter,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync"

/* ---- the coordinator: GET /metrics ---- */

static int http_get(const char *addr, const char *path, char *buf, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = STATS_TIMEOUT_MS / 1000 };
	char host[32], req[128];
	const char *colon = strrchr(addr, ':');
	size_t got = 0;
	ssize_t n;
	int fd;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	while (got + 1 < cap && (n = read(fd, buf + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	return 0;
}

/* The value of the line "NAME VALUE" in Prometheus text @p text. @return 0 or -ENOENT. */
static int prom_value(const char *text, const char *name, uint64_t *out)
{
	size_t len = strlen(name);

	for (const char *p = text; (p = strstr(p, name)) != NULL; p += len) {
		if ((p == text || p[-1] == '\n') && p[len] == ' ') {
			*out = strtoull(p + len + 1, NULL, 10);
			return 0;
		}
	}
	return -ENOENT;
}

static int coordinator_syncs(const char *admin, uint64_t *out)
{
	char *buf = malloc(1 << 20);
	int rc = buf ? http_get(admin, "/metrics", buf, 1 << 20) : -ENOMEM;

	if (rc == 0)
		rc = prom_value(buf, "tpc_log_syncs_total", out);
	free(buf);
	return rc;
}

/* ---- tpc-kv: --stats-file, rewritten on SIGUSR1 ---- */

static int read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return 0;
}

static void sleep_1ms(void)
{
	struct timespec ts = { 0, 1000000L };
	nanosleep(&ts, NULL);
}

/* Ask @p pid for a fresh stats file and read its device syncs (log + sink). */
static int kv_syncs(pid_t pid, const char *path, uint64_t *out)
{
	char buf[4096];
	uint64_t gen = 0, now = 0, log = 0, sink = 0;
	uint64_t deadline = tpc_now_ms() + STATS_TIMEOUT_MS;

	if (read_file(path, buf, sizeof(buf)) || prom_value(buf, "tpc_kv_stats_generation", &gen))
		return -ENOENT;
	if (kill(pid, SIGUSR1) != 0)
		return -errno;
	do {
		if (tpc_now_ms() > deadline)
			return -ETIMEDOUT;
		sleep_1ms();
		if (read_file(path, buf, sizeof(buf)) ||
		    prom_value(buf, "tpc_kv_stats_generation", &now))
			now = gen;
	} while (now <= gen);
	if (prom_value(buf, "tpc_participant_log_syncs_total", &log) ||
	    prom_value(buf, "tpc_participant_sink_syncs_total", &sink))
		return -ENOENT;
	*out = log + sink;
	return 0;
}

/* ---- perf stat over the window ---- */

static int perf_ctl(struct server_counters *sc, const char *cmd)
{
	char ack[16] = "";
	struct timeval tv = { .tv_sec = STATS_TIMEOUT_MS / 1000 };
	fd_set rd;
	ssize_t n;

	if (write(sc->perf_ctl, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		return -errno;
	FD_ZERO(&rd);
	FD_SET(sc->perf_ack, &rd);
	if (select(sc->perf_ack + 1, &rd, NULL, NULL, &tv) <= 0)
		return -ETIMEDOUT;
	n = read(sc->perf_ack, ack, sizeof(ack) - 1);
	return n > 0 && strncmp(ack, "ack", 3) == 0 ? 0 : -EPROTO;
}

static void perf_exec(struct bench *b, const char *pids, const char *ctl)
{
	int null = open("/dev/null", O_RDWR);
	sigset_t none;

	/* The load blocks the stop signals to wait for them; perf must get its SIGINT. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
	}
	execlp("perf", "perf", "stat", "-x,", "--no-big-num", "-e", PERF_EVENTS, "-p", pids,
	       "-o", b->counters.perf_out, "--control", ctl, "-D", "-1", (char *)NULL);
	_exit(127);
}

/* Start perf, events off, on every server process; ready once it acknowledges. */
static int perf_start(struct bench *b)
{
	struct server_counters *sc = &b->counters;
	char pids[512] = "", ctl[2 * PATH_MAX + 64], fifo[2][PATH_MAX + 16];
	size_t len = 0;

	for (uint32_t i = 0; i < b->nprocs; i++)
		if (b->procs[i].pid > 0 && len < sizeof(pids) - 16)
			len += (size_t)snprintf(pids + len, sizeof(pids) - len, "%s%d",
						len ? "," : "", (int)b->procs[i].pid);
	if (!len)
		return -ENOENT;
	if (strlen(b->run_dir) + 16 > sizeof(sc->perf_out))
		return -ENAMETOOLONG;
	snprintf(fifo[0], sizeof(fifo[0]), "%s/perf.ctl", b->run_dir);
	snprintf(fifo[1], sizeof(fifo[1]), "%s/perf.ack", b->run_dir);
	snprintf(sc->perf_out, sizeof(sc->perf_out), "%.*s/perf.out", PATH_MAX - 16, b->run_dir);
	snprintf(ctl, sizeof(ctl), "fifo:%s,%s", fifo[0], fifo[1]);
	unlink(fifo[0]);
	unlink(fifo[1]);
	if (mkfifo(fifo[0], 0600) || mkfifo(fifo[1], 0600))
		return -errno;
	/* O_RDWR: neither open waits for perf to open its end. */
	sc->perf_ctl = open(fifo[0], O_RDWR | O_CLOEXEC);
	sc->perf_ack = open(fifo[1], O_RDWR | O_CLOEXEC);
	if (sc->perf_ctl < 0 || sc->perf_ack < 0)
		return -errno;
	sc->perf_pid = fork();
	if (sc->perf_pid < 0)
		return -errno;
	if (sc->perf_pid == 0)
		perf_exec(b, pids, ctl);
	/* A ping acknowledged means perf is attached and listening. */
	return perf_ctl(sc, "ping\n");
}

/* Stop perf and read its counts (once). */
static void perf_finish(struct server_counters *sc)
{
	char buf[4096];
	int status;

	if (sc->perf_pid <= 0)
		return;
	kill(sc->perf_pid, SIGINT);
	uint64_t deadline = tpc_now_ms() + STATS_TIMEOUT_MS;
	while (waitpid(sc->perf_pid, &status, WNOHANG) == 0) {
		if (tpc_now_ms() > deadline) {
			kill(sc->perf_pid, SIGKILL);
			waitpid(sc->perf_pid, &status, 0);
			sc->perf_failed = 1;
			break;
		}
		sleep_1ms();
	}
	sc->perf_pid = 0;
	close(sc->perf_ctl);
	close(sc->perf_ack);
	if (read_file(sc->perf_out, buf, sizeof(buf)))
		return;
	/* -x, lines: COUNT,UNIT,EVENT,... */
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		uint64_t v = strtoull(line, NULL, 10);
		if (strstr(line, ",raw_syscalls:sys_enter,"))
			sc->syscalls = v, sc->syscalls_ok = line[0] >= '0' && line[0] <= '9';
		else if (strstr(line, ",syscalls:sys_enter_fdatasync,"))
			sc->fdatasyncs = v;
		else if (strstr(line, ",syscalls:sys_enter_fsync,"))
			sc->fsyncs = v;
	}
	if (sc->perf_failed)
		sc->syscalls_ok = 0;
}

/* ---- the interface ---- */

int counters_start(struct bench *b)
{
	struct server_counters *sc = &b->counters;

	sc->perf_ctl = sc->perf_ack = -1;
	if (!b->cfg.syscalls)
		return 0;
	int rc = perf_start(b);
	if (rc) {
		fprintf(stderr, "tpc-bench: --syscalls: cannot run perf stat (%s); system calls "
			"not counted\n", strerror(-rc));
		perf_finish(sc);
	}
	return 0;
}

/* The servers' own sync counters, if each of them has one; 0 or -ENOENT. */
static int server_syncs(struct bench *b, uint64_t *coord, uint64_t *kv)
{
	const char *extra;
	pid_t pid;
	int rc;

	*coord = *kv = 0;
	if (!b->cluster || cluster_child(b->cluster, 0, &pid, &extra) || !*extra)
		return -ENOENT;
	if ((rc = coordinator_syncs(extra, coord)))
		return rc;
	for (unsigned i = 1; cluster_child(b->cluster, i, &pid, &extra) == 0; i++) {
		uint64_t v;
		if (!*extra || (rc = kv_syncs(pid, extra, &v)))
			return -ENOENT;
		*kv += v;
	}
	return 0;
}

void counters_edge(struct bench *b, int edge)
{
	struct server_counters *sc = &b->counters;
	uint64_t coord, kv;

	if (sc->perf_pid > 0 && perf_ctl(sc, edge ? "disable\n" : "enable\n")) {
		sc->perf_failed = 1; /* perf went away: nothing it counted is trusted */
		perf_finish(sc);
	}
	if (server_syncs(b, &coord, &kv)) {
		sc->syncs_ok = 0;
		return;
	}
	if (!edge) {
		sc->syncs_ok = 1;
		sc->coord_syncs = coord;
		sc->kv_syncs = kv;
	} else if (sc->syncs_ok) {
		sc->coord_syncs = coord - sc->coord_syncs;
		sc->kv_syncs = kv - sc->kv_syncs;
	}
}

void counters_finish(struct bench *b)
{
	perf_finish(&b->counters);
}
