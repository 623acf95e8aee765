/*
 * test_limits.c - limits that hold against peers that do not play along, with real
 * processes: a tpc-coordinator (and a tpc-kv) on 127.0.0.1 and raw sockets that idle,
 * trickle a frame a byte at a time, pipeline requests without ever reading, or arrive
 * when the process has no file descriptor left. Each offender is closed (or slowed)
 * within its limit, the process stays small and calm, and everyone else is served.
 *
 * Timeouts are short here (hundreds of ms); every wait polls a condition with a
 * deadline. The two measuring windows (CPU time and log growth over ~2 s while accepts
 * fail) are the quantity under test, not a wait for a condition.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "coord_harness.h"
#include "frame.h"
#include "httpc.h"
#include "kv_harness.h"
#include "wire.h"

/* ---- helpers ------------------------------------------------------------------------ */

static void pause_ms(int ms)
{
	poll(NULL, 0, ms); /* pacing between bytes or polls, never instead of a condition */
}

static void send_header(tpc_wc *wc, uint32_t len)
{
	uint8_t hdr[TPC_FRAME_HEADER_SIZE];

	tpc_frame_put_header(hdr, len);
	assert_int_equal(tpc_wc_send_raw(wc, hdr, sizeof(hdr)), 0);
}

/* A raw TCP connection to 127.0.0.1:@p port (not registered with the cluster), with a
 * receive buffer of @p rcvbuf bytes (0: the system's). */
static int raw_connect(int port, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (rcvbuf)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Wait until @p wc is closed by the peer: an Error of @p code (if it comes), then EOF.
 * @return ms it took. */
static uint64_t expect_closed_with(tpc_wc *wc, Tpc__ErrorCode code)
{
	uint64_t t0 = now_ms();

	client_expect_error(wc, code, 1);
	return now_ms() - t0;
}

/* Field @p key ("VmRSS:") of /proc/PID/status in kB. */
static long proc_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

/* Start @p pid's VmHWM (peak RSS) again from its RSS now. */
static void proc_reset_peak(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs("5", f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* utime + stime of @p pid, in clock ticks. */
static long proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[2048];
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	assert_non_null(p);
	/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime(14) stime(15) */
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st), 2);
	return (long)(ut + st);
}

static int proc_open_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* AddressSanitizer keeps freed memory in quarantine (256 MB), which would show in RSS as
 * if queued: a process started between these two calls keeps it small, so its RSS
 * measures what it holds. */
static char *asan_small_quarantine(void)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char *saved = asan ? strdup(asan) : NULL, opts[1024];

	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=1", saved ? saved : "",
		 saved && *saved ? ":" : "");
	assert_int_equal(setenv("ASAN_OPTIONS", opts, 1), 0);
	return saved;
}

static void asan_restore(char *saved)
{
	if (saved)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved);
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---- idle and slowloris sockets ------------------------------------------------------ */

static void test_silent_socket_is_closed_at_the_hello_deadline(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, "--hello-timeout", "400ms", NULL);
	tpc_wc *silent = client_open_raw(c);
	uint64_t took = expect_closed_with(silent, TPC__ERROR_CODE__ERR_LIMIT);
	assert_true(took < 400 + 2000);
	coord_log_has(c, "no Hello within the hello timeout");
	/* Someone who says Hello in time is served. */
	tpc_wc *good = client_open(c, NULL);
	client_begin(good, NULL);
}

/* One byte every 50 ms of a frame that announces 1000: closed at the frame deadline. */
static void test_slowloris_frame_is_closed_at_the_frame_deadline(void **state)
{
	struct cluster *c = *state;
	uint64_t deadline;

	coord_start(c, NULL, "--frame-timeout", "500ms", NULL);
	tpc_wc *good = client_open(c, NULL);
	tpc_wc *slow = client_open(c, NULL);
	uint64_t t0 = now_ms();
	send_header(slow, 1000);
	deadline = t0 + WAIT_MS;
	struct pollfd p = { .fd = tpc_wc_fd(slow), .events = POLLIN };
	while (poll(&p, 1, 50) == 0) { /* until the coordinator answers (and closes) */
		if (now_ms() > deadline)
			fail_msg("a slowloris frame was not closed within %d ms", WAIT_MS);
		(void)send(tpc_wc_fd(slow), "x", 1, MSG_NOSIGNAL);
		client_begin(good, NULL); /* everyone else is served meanwhile */
	}
	uint64_t took = now_ms() - t0;
	client_expect_error(slow, TPC__ERROR_CODE__ERR_LIMIT, 1);
	assert_true(took >= 450);
	assert_true(took < 500 + 2000);
	coord_log_has(c, "frame was not completed within the frame timeout");
	client_begin(good, NULL);
}

static void test_idle_client_is_closed_but_one_holding_a_transaction_is_not(void **state)
{
	struct cluster *c = *state;

	coord_start(c, NULL, "--idle-timeout", "500ms", NULL);
	tpc_wc *busy = client_open(c, NULL);
	uint64_t txid = client_begin(busy, NULL);
	tpc_wc *idle = client_open(c, NULL);
	uint64_t took = expect_closed_with(idle, TPC__ERROR_CODE__ERR_LIMIT);
	assert_true(took < 500 + 2000);
	coord_log_has(c, "idle with no open transaction");
	/* The one with an open transaction stayed: its transaction is still there. */
	client_status_expect(busy, txid, TPC__TXN_STATUS__STATUS_PENDING);
}

/* ---- a client that never reads ------------------------------------------------------- */

/* Many StatusQuery frames for @p txid back to back, packed once. */
static size_t pack_queries(uint8_t *buf, size_t cap, uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__StatusQuery q = TPC__STATUS_QUERY__INIT;
	size_t n = 0;

	q.txid = txid;
	env.body_case = TPC__ENVELOPE__BODY_STATUS_QUERY;
	env.status_query = &q;
	for (uint64_t id = 1;; id++) {
		env.request_id = id;
		long len = tpc_wire_pack(&env, buf + n, cap - n);
		if (len < 0)
			return n;
		n += (size_t)len;
	}
}

static void test_client_that_never_reads_is_bounded_and_others_are_served(void **state)
{
	struct cluster *c = *state;
	static uint8_t chunk[64 * 1024];
	size_t chunk_len;
	uint64_t sent = 0, stalled_since = 0, deadline;

	char *saved = asan_small_quarantine();
	coord_start(c, NULL, "--max-frame", "64K", "--max-output", "128K", NULL);
	asan_restore(saved);
	pid_t pid = tpc_proc_pid(c->coord);
	tpc_wc *good = client_open(c, NULL);
	tpc_wc *hog = client_open(c, NULL);
	int fd = tpc_wc_fd(hog);
	/* About a live transaction: answered from memory, as fast as the loop goes. */
	chunk_len = pack_queries(chunk, sizeof(chunk), client_begin(hog, NULL));
	long rss0 = proc_status_kb(pid, "VmRSS:");
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);

	/* Pipeline without reading until the coordinator stops taking (2 s of no progress;
	 * without backpressure it keeps reading and queueing, and this never ends). */
	deadline = now_ms() + 3 * WAIT_MS;
	while (!stalled_since || now_ms() - stalled_since < 2000) {
		if (now_ms() > deadline)
			fail_msg("the coordinator kept reading a client that never reads: %llu bytes",
				 (unsigned long long)sent);
		/* The stream is the chunk repeated: a short send resumes mid-chunk, so no
		 * frame is ever torn. */
		size_t off = (size_t)(sent % chunk_len);
		ssize_t n = send(fd, chunk + off, chunk_len - off, MSG_NOSIGNAL);
		if (n > 0) {
			sent += (uint64_t)n;
			stalled_since = 0;
			continue;
		}
		assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
		if (!stalled_since)
			stalled_since = now_ms();
		client_begin(good, NULL); /* served while the hog is held back */
		pause_ms(20);
	}
	long rss1 = proc_status_kb(pid, "VmRSS:");
	print_message("non-reading client: %llu bytes taken before the stall; coordinator RSS "
		      "%ld kB -> %ld kB\n", (unsigned long long)sent, rss0, rss1);
	/* Loopback socket buffers hold a few MB; without backpressure the coordinator would
	 * take all we send and queue every reply. */
	assert_true(sent < 64ull << 20);
	assert_true(rss1 - rss0 < 64 * 1024);
	client_begin(good, NULL);
	assert_true(tpc_proc_alive(c->coord));
}

/* ---- fd exhaustion ------------------------------------------------------------------- */

static void set_nofile(pid_t pid, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = { soft, hard };

	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &rl, NULL), 0);
}

static void test_fd_exhaustion_backs_off_without_a_spin(void **state)
{
	struct cluster *c = *state;
	struct rlimit old;
	int fds[40];

	coord_start(c, NULL, NULL);
	pid_t pid = tpc_proc_pid(c->coord);
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, NULL, &old), 0);
	set_nofile(pid, (rlim_t)proc_open_fds(pid) + 2, old.rlim_max);
	for (int i = 0; i < 40; i++)
		fds[i] = raw_connect(c->port, 0); /* the backlog takes them: connect completes */
	coord_wait_log(c, "not accepting for");

	long cpu0 = proc_cpu_ticks(pid), log0 = file_size(c->coord_log);
	uint64_t t0 = now_ms();
	pause_ms(2000); /* the window measured: accepts keep failing all through it */
	long cpu1 = proc_cpu_ticks(pid), log1 = file_size(c->coord_log);
	uint64_t window = now_ms() - t0;
	long hz = sysconf(_SC_CLK_TCK);
	print_message("fd exhaustion: %ld ms of CPU and %ld bytes of log in %llu ms\n",
		      (cpu1 - cpu0) * 1000 / hz, log1 - log0, (unsigned long long)window);
	assert_true((cpu1 - cpu0) * 1000 / hz < 300);   /* a spin would use all of it */
	assert_true(log1 - log0 < 2048);                /* a few lines, once a second */

	/* Room again: the backed-off listener picks up and serves. */
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	set_nofile(pid, old.rlim_cur, old.rlim_max);
	tpc_wc *good = client_open(c, NULL);
	client_begin(good, NULL);
}

/* Spawn the coordinator with RLIMIT_NOFILE set to @p soft/@p hard in the child. */
static pid_t spawn_with_nofile(struct cluster *c, rlim_t soft, rlim_t hard, const char *log,
			       const char *max_conns)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { soft, hard };
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 2) < 0 || setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(99);
		execl(TPC_COORDINATOR_BIN, TPC_COORDINATOR_BIN, "--listen", c->hostport, "--data",
		      c->data, "--admin", "off", "--max-conns", max_conns, (char *)NULL);
		_exit(98);
	}
	return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("pid %d did not exit within %d ms", (int)pid, timeout_ms);
		}
		pause_ms(20);
	}
}

static void test_max_conns_over_the_hard_fd_limit_refuses_to_start(void **state)
{
	struct cluster *c = *state;
	char log[PATH_MAX + 32], text[4096] = "";

	snprintf(log, sizeof(log), "%s/nofile.log", c->dir);
	int st = wait_exit(spawn_with_nofile(c, 64, 64, log, "4096"), WAIT_MS);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 2);
	FILE *f = fopen(log, "r");
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	if (!strstr(text, "--max-conns 4096") || !strstr(text, "open-file limit is 64 (hard limit 64)"))
		fail_msg("the refusal does not name both numbers: %s", text);
}

static void test_low_soft_fd_limit_is_raised_at_start(void **state)
{
	struct cluster *c = *state;
	struct rlimit mine;
	char log[PATH_MAX + 32];

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &mine), 0);
	if (mine.rlim_max != RLIM_INFINITY && mine.rlim_max < 4096 + 64)
		skip();
	snprintf(log, sizeof(log), "%s/raise.log", c->dir);
	pid_t pid = spawn_with_nofile(c, 64, mine.rlim_max, log, "4096");
	if (tpc_wait_port("127.0.0.1", c->port, WAIT_MS) != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("the coordinator did not start with a low soft limit");
	}
	struct rlimit now;
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, NULL, &now), 0);
	kill(pid, SIGTERM);
	int st = wait_exit(pid, WAIT_MS);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(now.rlim_cur >= 4096 + 64);
}

/* ---- caps ---------------------------------------------------------------------------- */

static void test_begin_timeout_over_max_txn_timeout_is_refused(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_begin b;

	coord_start(c, NULL, "--max-txn-timeout", "10s", "--txn-timeout", "5s", NULL);
	tpc_wc *wc = client_open(c, NULL);
	assert_int_equal(tpc_wc_begin(wc, NULL, 10001, &b), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(wc), TPC__ERROR_CODE__ERR_INVALID);
	assert_non_null(strstr(tpc_wc_errmsg(wc), "max-txn-timeout"));
	assert_int_equal(tpc_wc_begin(wc, NULL, 10000, &b), 0); /* at the cap: fine */
	assert_int_equal(tpc_wc_begin(wc, NULL, 0, &b), 0);     /* the default */
}

static void test_overlong_label_and_abort_reason_are_invalid(void **state)
{
	struct cluster *c = *state;
	char label[TPC_WIRE_MAX_NAME + 2], reason[TPC_WIRE_MAX_REASON + 2];
	struct tpc_wc_outcome o;

	memset(label, 'l', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	coord_start(c, NULL, NULL);
	tpc_wc *a = client_open_raw(c);
	assert_int_equal(tpc_wc_hello(a, TPC__ROLE__ROLE_CLIENT, label, NULL), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(a), TPC__ERROR_CODE__ERR_INVALID);
	tpc_wc *b = client_open(c, NULL);
	uint64_t txid = client_begin(b, NULL);
	assert_int_equal(tpc_wc_abort(b, txid, reason, &o), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(b), TPC__ERROR_CODE__ERR_INVALID);
	tpc_wc *ok = client_open(c, NULL);
	reason[TPC_WIRE_MAX_REASON] = '\0'; /* exactly the limit */
	assert_int_equal(tpc_wc_abort(ok, client_begin(ok, NULL), reason, &o), 0);
}

/* A name forgotten by the operator frees its slot: a new name fits under the cap. */
static void test_forgotten_participant_name_is_freed(void **state)
{
	struct cluster *c = *state;
	struct tpc_wc_identity id;
	struct httpc_resp r;
	char admin[64];
	int aport = tpc_free_port();

	snprintf(admin, sizeof(admin), "127.0.0.1:%d", aport);
	coord_start(c, NULL, "--admin", admin, "--max-participant-names", "1", NULL);
	tpc_wc_default_identity("alpha", &id);
	tpc_wc *alpha = client_open_raw(c);
	assert_int_equal(tpc_wc_hello_participant(alpha, "alpha", &id, NULL), 0);
	tpc_wc_default_identity("beta", &id);
	tpc_wc *beta = client_open_raw(c);
	assert_int_equal(tpc_wc_hello_participant(beta, "beta", &id, NULL), TPC_WC_EREPLY);
	assert_int_equal(tpc_wc_error_code(beta), TPC__ERROR_CODE__ERR_LIMIT);
	client_close(c, alpha);

	uint64_t deadline = now_ms() + WAIT_MS;
	for (;;) { /* 409 while alpha's disconnect is not seen yet */
		assert_int_equal(httpc_request("127.0.0.1", aport, "POST",
					       "/v1/participants/alpha/forget", NULL,
					       "{\"reason\":\"test\"}", WAIT_MS, &r), 0);
		int status = r.status;
		httpc_resp_free(&r);
		if (status == 200)
			break;
		assert_int_equal(status, 409);
		if (now_ms() > deadline)
			fail_msg("alpha could not be forgotten within %d ms", WAIT_MS);
		pause_ms(20);
	}
	tpc_wc *beta2 = client_open_raw(c);
	assert_int_equal(tpc_wc_hello_participant(beta2, "beta", &id, NULL), 0);
}

/* ---- tpc-kv -------------------------------------------------------------------------- */

/* KvGet @p key; @p len (may be NULL) gets the value's length, -1 when not found.
 * @return a tpc_wc code. */
static int kv_get_len(tpc_wc *wc, const char *key, long *len)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT, *rep = NULL;
	Tpc__KvGet g = TPC__KV_GET__INIT;

	g.key.data = (uint8_t *)key;
	g.key.len = strlen(key);
	env.body_case = TPC__ENVELOPE__BODY_KV_GET;
	env.kv_get = &g;
	int rc = tpc_wc_call(wc, &env, &rep);
	if (len)
		*len = rc == 0 && rep->body_case == TPC__ENVELOPE__BODY_KV_GET_REPLY &&
		       rep->kv_get_reply->found ? (long)rep->kv_get_reply->value.len : -1;
	if (rep)
		tpc__envelope__free_unpacked(rep, NULL);
	return rc;
}

static int kv_get_rc(tpc_wc *wc)
{
	return kv_get_len(wc, "k", NULL);
}

/* A served connection: the readiness probe's closed connections may still be counted
 * for a moment, so a refused one is retried until the deadline. */
static tpc_wc *kv_open_served(struct kv_svc *k)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		tpc_wc *wc = kv_svc_connect(k);
		int rc = kv_get_rc(wc);
		if (rc == 0)
			return wc;
		tpc_wc_free(wc);
		if (now_ms() > deadline)
			fail_msg("no connection to tpc-kv was served within %d ms: %s", WAIT_MS,
				 tpc_wc_strerror(rc));
		pause_ms(20);
	}
}

static void test_kv_limits_connections_and_reclaims_idle_and_slow_ones(void **state)
{
	struct cluster *c = *state;
	struct kv_svc k;
	const char *const extra[] = { "--max-conns", "2", "--idle-timeout", "600ms",
				      "--frame-timeout", "400ms", NULL };

	coord_start(c, NULL, NULL);
	kv_svc_init(&k, c, "kv0", "kv0");
	kv_svc_start(&k, c, NULL, extra);
	tpc_wc *idle = kv_open_served(&k);
	tpc_wc *slow = kv_open_served(&k);
	/* A third is over the limit: told so, and closed. */
	tpc_wc *third = kv_svc_connect(&k);
	client_expect_error(third, TPC__ERROR_CODE__ERR_LIMIT, 1);
	tpc_wc_free(third);
	/* A started frame that is never finished, and a connection that goes quiet. */
	send_header(slow, 100);
	assert_true(expect_closed_with(slow, TPC__ERROR_CODE__ERR_LIMIT) < 400 + 2000);
	assert_true(expect_closed_with(idle, TPC__ERROR_CODE__ERR_LIMIT) < 600 + 2000);
	tpc_wc_free(slow);
	tpc_wc_free(idle);
	assert_true(kv_svc_log_count(&k, "frame timeout", NULL) >= 1);
	assert_true(kv_svc_log_count(&k, "idle timeout", NULL) >= 1);
	/* Their slots are free again. */
	tpc_wc_free(kv_open_served(&k));
}

/* ---- tpc-kv's output backpressure ----------------------------------------------------- */

#define BIG_VALUE (256 * 1024)
#define BIG_GETS 400           /* 100 MB of replies, a few kB of requests */
#define KV_MAX_OUTPUT_KB 1024  /* --max-output 1M, its smallest */

/* Commit key "big" = BIG_VALUE bytes through tpc-kv. */
static void kv_put_big(struct cluster *c, struct kv_svc *k)
{
	char *value = malloc(BIG_VALUE + 1);

	assert_non_null(value);
	memset(value, 'v', BIG_VALUE);
	value[BIG_VALUE] = 0;
	tpc_wc *wc = client_open(c, NULL);
	uint64_t txid = client_begin(wc, NULL);
	kv_svc_put(k, txid, "big", value);
	client_commit_expect(wc, txid, TPC__OUTCOME_KIND__OUTCOME_COMMITTED, NULL, 0);
	free(value);
	/* COMMITTED is told before tpc-kv applies it: wait until a get finds it. */
	uint64_t deadline = now_ms() + WAIT_MS;
	long len = -1;
	while (kv_get_len(k->wc, "big", &len) == 0 && len != BIG_VALUE && now_ms() < deadline)
		pause_ms(20);
	assert_int_equal(len, BIG_VALUE);
	kv_svc_close_conn(k);
}

/* BIG_GETS KvGet frames of "big", back to back. @return their length. */
static size_t pack_big_gets(uint8_t *buf, size_t cap)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__KvGet g = TPC__KV_GET__INIT;
	size_t n = 0;

	g.key.data = (uint8_t *)"big";
	g.key.len = 3;
	env.body_case = TPC__ENVELOPE__BODY_KV_GET;
	env.kv_get = &g;
	for (int i = 0; i < BIG_GETS; i++) {
		env.request_id = (uint64_t)i + 1;
		long len = tpc_wire_pack(&env, buf + n, cap - n);
		assert_true(len > 0);
		n += (size_t)len;
	}
	return n;
}

/* Take whole frames off the front of @p buf (@p *len bytes); each must be a KvGetReply
 * holding the big value. @return how many. */
static int take_big_replies(uint8_t *buf, size_t *len)
{
	size_t off = 0;
	int n = 0;

	while (*len - off >= TPC_FRAME_HEADER_SIZE) {
		uint32_t flen = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 |
				(uint32_t)buf[off + 2] << 8 | buf[off + 3];
		if (*len - off - TPC_FRAME_HEADER_SIZE < flen)
			break;
		Tpc__Envelope *env = tpc__envelope__unpack(NULL, flen,
							   buf + off + TPC_FRAME_HEADER_SIZE);
		assert_non_null(env);
		assert_int_equal(env->body_case, TPC__ENVELOPE__BODY_KV_GET_REPLY);
		assert_true(env->kv_get_reply->found);
		assert_int_equal(env->kv_get_reply->value.len, BIG_VALUE);
		tpc__envelope__free_unpacked(env, NULL);
		off += TPC_FRAME_HEADER_SIZE + flen;
		n++;
	}
	memmove(buf, buf + off, *len - off);
	*len -= off;
	return n;
}

/* Read until @p want replies came (fails after the deadline). */
static void read_big_replies(int fd, int want)
{
	size_t cap = 2 * BIG_VALUE, len = 0;
	uint8_t *buf = malloc(cap);
	uint64_t deadline = now_ms() + 3 * WAIT_MS;
	int got = 0;

	assert_non_null(buf);
	while (got < want) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (now_ms() > deadline)
			fail_msg("only %d of %d replies came", got, want);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		assert_true(n > 0);
		len += (size_t)n;
		got += take_big_replies(buf, &len);
	}
	free(buf);
}

static void test_kv_client_that_does_not_read_holds_kv_output_to_max_output(void **state)
{
	struct cluster *c = *state;
	static uint8_t gets[BIG_GETS * 32];
	const char *const extra[] = { "--max-output", "1M", NULL };
	struct kv_svc k;

	coord_start(c, NULL, NULL);
	kv_svc_init(&k, c, "kv0", "kv0");
	char *saved = asan_small_quarantine();
	kv_svc_start(&k, c, NULL, extra);
	asan_restore(saved);
	kv_put_big(c, &k);
	pid_t pid = tpc_proc_pid(k.proc);
	proc_reset_peak(pid);
	long rss0 = proc_status_kb(pid, "VmRSS:");

	/* All the requests at once (they fit in the socket buffers), then no reading: a
	 * small receive buffer keeps what the kernel takes off tpc-kv's hands small. */
	int fd = raw_connect(k.port, 16 * 1024);
	size_t n = pack_big_gets(gets, sizeof(gets));
	assert_int_equal(send(fd, gets, n, MSG_NOSIGNAL), (ssize_t)n);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, WAIT_MS), 1); /* tpc-kv answered: it read them */

	/* Replies are packed before any is written: the first byte here means a read's
	 * worth of requests was answered. Its peak holds what it queued. */
	long peak = proc_status_kb(pid, "VmHWM:");
	print_message("tpc-kv RSS %ld kB before %d pipelined gets of %d kB; peak %ld kB\n", rss0,
		      BIG_GETS, BIG_VALUE / 1024, peak);
	assert_true(peak - rss0 < 8 * KV_MAX_OUTPUT_KB);

	/* Reading lets it go on: every request is answered, the peak stays bounded. */
	read_big_replies(fd, BIG_GETS);
	peak = proc_status_kb(pid, "VmHWM:");
	print_message("after reading all %d replies: peak %ld kB\n", BIG_GETS, peak);
	assert_true(peak - rss0 < 8 * KV_MAX_OUTPUT_KB);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, cluster_setup, cluster_teardown)
		T(test_silent_socket_is_closed_at_the_hello_deadline),
		T(test_slowloris_frame_is_closed_at_the_frame_deadline),
		T(test_idle_client_is_closed_but_one_holding_a_transaction_is_not),
		T(test_client_that_never_reads_is_bounded_and_others_are_served),
		T(test_fd_exhaustion_backs_off_without_a_spin),
		T(test_max_conns_over_the_hard_fd_limit_refuses_to_start),
		T(test_low_soft_fd_limit_is_raised_at_start),
		T(test_begin_timeout_over_max_txn_timeout_is_refused),
		T(test_overlong_label_and_abort_reason_are_invalid),
		T(test_forgotten_participant_name_is_freed),
		T(test_kv_limits_connections_and_reclaims_idle_and_slow_ones),
		T(test_kv_client_that_does_not_read_holds_kv_output_to_max_output),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
