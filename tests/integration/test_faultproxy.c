/*
 * test_faultproxy.c - tpc-faultproxy end to end, without a coordinator: each test starts
 * the proxy as a real process in front of an echo server that runs on a thread of this
 * test (it reads whole frames, records their sequence numbers, and echoes them back), and
 * talks to it through a blocking client socket and the proxy's control port.
 *
 * Frames carry a 4-byte big-endian sequence number and a pattern derived from it, so a
 * frame that arrives is checked intact. Faults apply in both directions, so an echoed
 * frame meets them twice: the echo server's record shows the client-to-upstream side
 * alone. Ports are chosen at run time (the proxy binds port 0 and prints what it got);
 * every wait polls against a deadline; "nothing arrives" is checked only once the
 * proxy's counters show it has handled the frames.
 *
 * The last tests exercise the proxy's pure core (PRNG, parsers), compiled in.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "proc.h"
#include "proxy_core.h"
#include "util.h"

#define WAIT_MS 5000         /* deadline for anything that should happen */
#define QUIET_MS 150         /* how long "nothing arrives" is watched, once handled */
#define POLL_MS 5            /* interval between two looks at the proxy's counters */
#define ECHO_CONNS 16
#define ECHO_SEEN_MAX 4096
#define BIG_FRAME (300u * 1024u)
#define MAX_CLIENTS 8

/* ---- echo server (a thread) ------------------------------------------------------- */

struct echo_conn {
	int fd;
	struct tpc_frame_decoder dec;
};

struct echo {
	int lfd, port;
	int wake[2];
	pthread_t th;
	int running;
	struct echo_conn conns[ECHO_CONNS]; /* the thread's alone */
	size_t nconns;
	pthread_mutex_t mu;                 /* guards seen/nseen */
	uint32_t seen[ECHO_SEEN_MAX];       /* sequence numbers received, in order */
	size_t nseen;
	uint8_t buf[64 * 1024];             /* the thread's receive buffer */
};

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static uint32_t body_seq(const uint8_t *body, uint32_t len)
{
	return len >= 4 ? tpc_frame_get_header(body) : UINT32_MAX;
}

static void echo_record(struct echo *e, uint32_t seq)
{
	pthread_mutex_lock(&e->mu);
	if (e->nseen < ECHO_SEEN_MAX)
		e->seen[e->nseen++] = seq;
	pthread_mutex_unlock(&e->mu);
}

/* Read what is there, echo every whole frame. -1 when the connection is done. */
static int echo_serve(struct echo *e, struct echo_conn *c)
{
	uint8_t *buf = e->buf;
	ssize_t n = recv(c->fd, buf, sizeof(e->buf), 0);
	size_t off = 0;

	if (n <= 0)
		return n < 0 && errno == EINTR ? 0 : -1;
	while (off < (size_t)n) {
		const uint8_t *f = NULL;
		uint32_t flen = 0;
		size_t used = 0;
		uint8_t hdr[TPC_FRAME_HEADER_SIZE];
		int rc = tpc_frame_feed(&c->dec, buf + off, (size_t)n - off, &used, &f, &flen);

		if (rc < 0)
			return -1;
		off += used;
		if (rc != TPC_FRAME_READY)
			continue;
		echo_record(e, body_seq(f, flen));
		tpc_frame_put_header(hdr, flen);
		if (send_all(c->fd, hdr, sizeof(hdr)) < 0 || send_all(c->fd, f, flen) < 0)
			return -1;
	}
	return 0;
}

static void echo_accept(struct echo *e)
{
	int fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (e->nconns == ECHO_CONNS) {
		close(fd);
		return;
	}
	struct echo_conn *c = &e->conns[e->nconns++];
	c->fd = fd;
	tpc_frame_decoder_init(&c->dec, 16u << 20);
}

static void echo_drop(struct echo *e, size_t i)
{
	close(e->conns[i].fd);
	tpc_frame_decoder_free(&e->conns[i].dec);
	e->conns[i] = e->conns[--e->nconns];
}

static void *echo_main(void *arg)
{
	struct echo *e = arg;
	struct pollfd p[2 + ECHO_CONNS];

	for (;;) {
		size_t n = e->nconns;

		p[0] = (struct pollfd){ .fd = e->lfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = e->wake[0], .events = POLLIN };
		for (size_t i = 0; i < n; i++)
			p[2 + i] = (struct pollfd){ .fd = e->conns[i].fd, .events = POLLIN };
		if (poll(p, 2 + n, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		for (size_t i = n; i-- > 0;) { /* backwards: echo_drop moves the last one here */
			if (p[2 + i].revents && echo_serve(e, &e->conns[i]) < 0)
				echo_drop(e, i);
		}
		if (p[0].revents & POLLIN)
			echo_accept(e);
	}
	while (e->nconns)
		echo_drop(e, e->nconns - 1);
	return NULL;
}

static void echo_start(struct echo *e)
{
	pthread_mutex_init(&e->mu, NULL);
	e->lfd = tpc_listen_loopback(64, &e->port);
	assert_true(e->lfd >= 0);
	assert_int_equal(pipe2(e->wake, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&e->th, NULL, echo_main, e), 0);
	e->running = 1;
}

static void echo_stop(struct echo *e)
{
	if (!e->running)
		return;
	assert_int_equal(write(e->wake[1], "x", 1), 1);
	pthread_join(e->th, NULL);
	close(e->wake[0]);
	close(e->wake[1]);
	close(e->lfd);
	pthread_mutex_destroy(&e->mu);
	e->running = 0;
}

/* Copy what the echo server has seen (up to @p cap); returns how many it has seen. */
static size_t echo_seen(struct echo *e, uint32_t *out, size_t cap)
{
	pthread_mutex_lock(&e->mu);
	size_t n = e->nseen;
	if (out)
		memcpy(out, e->seen, (n < cap ? n : cap) * sizeof(*out));
	pthread_mutex_unlock(&e->mu);
	return n;
}

static void echo_clear(struct echo *e)
{
	pthread_mutex_lock(&e->mu);
	e->nseen = 0;
	pthread_mutex_unlock(&e->mu);
}

/* ---- fixture and the proxy process ------------------------------------------------ */

struct stats {
	unsigned long long conns, in, fwd, dropped, dup, reordered, delayed, resets, part;
};

struct fixture {
	tpc_procs *procs;
	char dir[PATH_MAX];
	char log[PATH_MAX + 32];
	struct echo echo;
	tpc_proc *proxy;
	int port, ctl_port;
	int ctl_fd;
	int clients[MAX_CLIENTS];
	int nclients;
	int nlogs; /* stderr logs of short-lived runs, numbered */
	int upstream_port; /* where the proxy connects: the echo server unless a test says */
	char reply[1024];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->ctl_fd = -1;
	fx->procs = tpc_procs_new();
	assert_non_null(fx->procs);
	assert_int_equal(tpc_tmpdir_make(fx->dir, sizeof(fx->dir)), 0);
	snprintf(fx->log, sizeof(fx->log), "%s/proxy.log", fx->dir);
	echo_start(&fx->echo);
	fx->upstream_port = fx->echo.port;
	*state = fx;
	return 0;
}

static void close_clients(struct fixture *fx)
{
	for (int i = 0; i < fx->nclients; i++)
		close(fx->clients[i]);
	fx->nclients = 0;
}

/* Stop the proxy with SIGTERM; it must exit 0 (a clean stop, no leak under ASan). */
static void proxy_stop(struct fixture *fx)
{
	int status = -1;

	if (fx->ctl_fd >= 0)
		close(fx->ctl_fd);
	fx->ctl_fd = -1;
	if (!fx->proxy)
		return;
	if (tpc_proc_alive(fx->proxy)) {
		assert_int_equal(tpc_proc_term(fx->proxy, WAIT_MS, &status), 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			tpc_proc_dump(fx->proxy);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	fx->proxy = NULL;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	close_clients(fx);
	proxy_stop(fx);
	echo_stop(&fx->echo);
	tpc_procs_free(fx->procs);
	assert_int_equal(tpc_tmpdir_release(fx->dir), 0);
	free(fx);
	return 0;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A client connection through the proxy, closed in teardown. */
static int client(struct fixture *fx)
{
	assert_true(fx->nclients < MAX_CLIENTS);
	int fd = tcp_connect(fx->port);
	fx->clients[fx->nclients++] = fd;
	return fd;
}

/*
 * Start the proxy in front of fx->upstream_port; extra arguments end with NULL. Learns
 * both ports from the "listening" line and opens the control connection.
 */
static void proxy_start(struct fixture *fx, ...)
{
	char up[32];
	char *argv[32] = { TPC_FAULTPROXY_BIN, "--listen", "127.0.0.1:0", "--upstream", up,
			   "--control", "127.0.0.1:0", "--log-level", "debug" };
	int n = 9;
	va_list ap;

	snprintf(up, sizeof(up), "127.0.0.1:%d", fx->upstream_port);
	va_start(ap, fx);
	while (n < 31 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	fx->proxy = tpc_proc_spawn(fx->procs, argv, fx->log);
	assert_non_null(fx->proxy);
	const char *line = tpc_proc_wait_line(fx->proxy, "listening ", WAIT_MS);
	assert_non_null(line);
	assert_int_equal(sscanf(line, "listening 127.0.0.1:%d control 127.0.0.1:%d", &fx->port,
				&fx->ctl_port), 2);
	fx->ctl_fd = tcp_connect(fx->ctl_port);
}

/* ---- frames ----------------------------------------------------------------------- */

static uint8_t pattern(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 131u + i * 7u + 1u);
}

/* Frame @p seq with a body of @p len bytes (at least 4), written in pieces of @p piece. */
static void send_frame_split(int fd, uint32_t seq, size_t len, size_t piece)
{
	size_t total = TPC_FRAME_HEADER_SIZE + len;
	uint8_t *buf = malloc(total);

	assert_non_null(buf);
	assert_true(len >= 4);
	tpc_frame_put_header(buf, (uint32_t)len);
	tpc_frame_put_header(buf + TPC_FRAME_HEADER_SIZE, seq);
	for (size_t i = 4; i < len; i++)
		buf[TPC_FRAME_HEADER_SIZE + i] = pattern(seq, i);
	for (size_t off = 0; off < total; off += piece)
		assert_int_equal(send_all(fd, buf + off, total - off < piece ? total - off : piece), 0);
	free(buf);
}

static void send_frame(int fd, uint32_t seq, size_t len)
{
	send_frame_split(fd, seq, len, SIZE_MAX);
}

static size_t body_len_for(uint32_t seq)
{
	return 4 + (seq * 37u) % 300u;
}

/* Read exactly @p len bytes by @p deadline. 1, 0 (timeout), -1 (EOF), -2 (error, errno). */
static int read_exact(int fd, uint8_t *buf, size_t len, uint64_t deadline)
{
	size_t have = 0;

	while (have < len) {
		uint64_t now = tpc_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = poll(&p, 1, now >= deadline ? 0 : (int)(deadline - now));

		if (rc == 0)
			return 0;
		if (rc < 0 && errno == EINTR)
			continue;
		ssize_t n = recv(fd, buf + have, len - have, 0);
		if (n == 0)
			return -1;
		if (n < 0 && errno != EINTR)
			return -2;
		if (n > 0)
			have += (size_t)n;
	}
	return 1;
}

/*
 * Read one frame within @p timeout_ms and check its body. 1: got it (*seq, *len); 0:
 * nothing arrived; -1: EOF; -2: socket error (errno). A torn or corrupt frame fails.
 */
static int recv_frame(int fd, int timeout_ms, uint32_t *seq, size_t *len)
{
	uint64_t deadline = tpc_now_ms() + (uint64_t)timeout_ms;
	uint8_t hdr[TPC_FRAME_HEADER_SIZE];
	int rc = read_exact(fd, hdr, 1, deadline);

	if (rc <= 0)
		return rc;
	assert_int_equal(read_exact(fd, hdr + 1, 3, deadline + WAIT_MS), 1);
	*len = tpc_frame_get_header(hdr);
	assert_true(*len >= 4 && *len <= 16u << 20);
	uint8_t *body = malloc(*len);
	assert_non_null(body);
	assert_int_equal(read_exact(fd, body, *len, deadline + WAIT_MS), 1);
	*seq = tpc_frame_get_header(body);
	for (size_t i = 4; i < *len; i++) {
		if (body[i] != pattern(*seq, i))
			fail_msg("frame %u is corrupt at byte %zu", *seq, i);
	}
	free(body);
	return 1;
}

/* Expect frame @p want (any length check left to the caller) within WAIT_MS. */
static size_t expect_frame(int fd, uint32_t want)
{
	uint32_t seq = 0;
	size_t len = 0;

	assert_int_equal(recv_frame(fd, WAIT_MS, &seq, &len), 1);
	assert_int_equal(seq, want);
	return len;
}

static void expect_nothing(int fd)
{
	uint32_t seq = 0;
	size_t len = 0;
	int rc = recv_frame(fd, QUIET_MS, &seq, &len);

	if (rc == 1)
		fail_msg("frame %u arrived, expected none", seq);
	assert_int_equal(rc, 0);
}

/* The connection must close within WAIT_MS, with no frame before: by an RST when
 * @p rst, otherwise by a FIN or an RST. */
static void expect_closed(int fd, int rst)
{
	uint32_t seq = 0;
	size_t len = 0;
	int rc = recv_frame(fd, WAIT_MS, &seq, &len);

	if (rc == 1)
		fail_msg("frame %u arrived, expected the connection to close", seq);
	if (rc == -2)
		assert_int_equal(errno, ECONNRESET);
	else
		assert_int_equal(rc, rst ? -2 : -1);
}

/* ---- control ---------------------------------------------------------------------- */

/* Send one command line; return its reply line (owned by @p fx). */
static const char *ctl(struct fixture *fx, const char *cmd)
{
	uint64_t deadline = tpc_now_ms() + WAIT_MS;
	size_t n = 0;
	char c;

	assert_int_equal(send_all(fx->ctl_fd, cmd, strlen(cmd)), 0);
	assert_int_equal(send_all(fx->ctl_fd, "\n", 1), 0);
	for (;;) {
		assert_int_equal(read_exact(fx->ctl_fd, (uint8_t *)&c, 1, deadline), 1);
		if (c == '\n')
			break;
		assert_true(n < sizeof(fx->reply) - 1);
		fx->reply[n++] = c;
	}
	fx->reply[n] = '\0';
	return fx->reply;
}

static void ctl_ok(struct fixture *fx, const char *cmd)
{
	const char *r = ctl(fx, cmd);

	if (strncmp(r, "ok", 2) != 0)
		fail_msg("'%s' answered '%s'", cmd, r);
}

static void get_stats(struct fixture *fx, struct stats *s)
{
	const char *r = ctl(fx, "stats");

	assert_int_equal(sscanf(r,
				"ok conns=%llu frames_in=%llu forwarded=%llu dropped=%llu "
				"duplicated=%llu reordered=%llu delayed=%llu resets=%llu "
				"partitioned=%llu",
				&s->conns, &s->in, &s->fwd, &s->dropped, &s->dup, &s->reordered,
				&s->delayed, &s->resets, &s->part),
			 9);
}

#define STAT(field) offsetof(struct stats, field)

static unsigned long long stat_at(const struct stats *s, size_t off)
{
	return *(const unsigned long long *)((const char *)s + off);
}

/* Poll the counters until the one at @p off reaches @p want (>=, or == when @p exact). */
static void wait_stat(struct fixture *fx, size_t off, unsigned long long want, int exact,
		      struct stats *out)
{
	uint64_t deadline = tpc_now_ms() + WAIT_MS;
	struct stats s;

	for (;;) {
		get_stats(fx, &s);
		unsigned long long v = stat_at(&s, off);
		if (exact ? v == want : v >= want)
			break;
		if (tpc_now_ms() >= deadline)
			fail_msg("counter at offset %zu is %llu, waited for %llu (%s)", off, v, want,
				 fx->reply);
		poll(NULL, 0, POLL_MS);
	}
	if (out)
		*out = s;
}

static void wait_echo_seen(struct fixture *fx, size_t want)
{
	uint64_t deadline = tpc_now_ms() + WAIT_MS;

	while (echo_seen(&fx->echo, NULL, 0) < want) {
		if (tpc_now_ms() >= deadline)
			fail_msg("the echo server saw %zu frames, waited for %zu",
				 echo_seen(&fx->echo, NULL, 0), want);
		poll(NULL, 0, POLL_MS);
	}
}

/*
 * After @p sent frames went out on @p fd (no dup, no reorder, no delay), read until the
 * proxy has nothing in flight: every frame read was forwarded or dropped, every echo
 * came back through it, and the client got every frame forwarded to it.
 */
static size_t collect_until_quiet(struct fixture *fx, int fd, size_t sent, uint32_t *got,
				  size_t cap)
{
	uint64_t deadline = tpc_now_ms() + WAIT_MS;
	size_t ngot = 0;
	struct stats s;

	for (;;) {
		uint32_t seq;
		size_t len;

		while (recv_frame(fd, POLL_MS, &seq, &len) == 1) {
			assert_true(ngot < cap);
			got[ngot++] = seq;
		}
		size_t up = echo_seen(&fx->echo, NULL, 0);
		get_stats(fx, &s);
		if (s.in == sent + up && s.in == s.fwd + s.dropped && ngot == s.fwd - up)
			return ngot;
		if (tpc_now_ms() >= deadline)
			fail_msg("never quiet: got %zu, echo saw %zu, %s", ngot, up, fx->reply);
	}
}

/* ---- tests: forwarding ------------------------------------------------------------ */

static void test_frames_pass_through_in_order_and_intact(void **state)
{
	struct fixture *fx = *state;
	uint32_t seen[100];

	proxy_start(fx, NULL);
	int fd = client(fx);
	for (uint32_t i = 0; i < 100; i++) {
		if (i == 50) /* a large frame, in many writes, the header split too */
			send_frame_split(fd, i, BIG_FRAME, 3);
		else
			send_frame(fd, i, body_len_for(i));
	}
	for (uint32_t i = 0; i < 100; i++) {
		size_t len = expect_frame(fd, i);
		assert_int_equal(len, i == 50 ? BIG_FRAME : body_len_for(i));
	}
	assert_int_equal(echo_seen(&fx->echo, seen, 100), 100);
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(seen[i], i);
	struct stats s;
	wait_stat(fx, STAT(fwd), 200, 1, &s);
	assert_int_equal(s.in, 200);
	assert_int_equal(s.dropped + s.dup + s.reordered + s.delayed, 0);
	assert_int_equal(s.conns, 1);
}

static void test_drop_all_black_holes_until_drop_is_set_to_zero(void **state)
{
	struct fixture *fx = *state;

	proxy_start(fx, "--drop", "100", NULL);
	int fd = client(fx);
	for (uint32_t i = 0; i < 10; i++)
		send_frame(fd, i, body_len_for(i));
	wait_stat(fx, STAT(dropped), 10, 1, NULL);
	expect_nothing(fd);
	assert_int_equal(echo_seen(&fx->echo, NULL, 0), 0);

	assert_string_equal(ctl(fx, "set drop 0"), "ok drop=0");
	for (uint32_t i = 100; i < 110; i++)
		send_frame(fd, i, body_len_for(i));
	for (uint32_t i = 100; i < 110; i++)
		expect_frame(fd, i);
}

static void test_dup_all_sends_every_frame_twice(void **state)
{
	struct fixture *fx = *state;
	uint32_t seen[10];
	int count[5] = { 0 };

	proxy_start(fx, "--dup", "100", NULL);
	int fd = client(fx);
	for (uint32_t i = 0; i < 5; i++)
		send_frame(fd, i, body_len_for(i));
	/* Upstream gets each frame twice, back to back. */
	wait_echo_seen(fx, 10);
	assert_int_equal(echo_seen(&fx->echo, seen, 10), 10);
	for (uint32_t i = 0; i < 10; i++)
		assert_int_equal(seen[i], i / 2);
	/* Both echoes are duplicated on the way back: four copies each. */
	for (int i = 0; i < 20; i++) {
		uint32_t seq = 0;
		size_t len = 0;
		assert_int_equal(recv_frame(fd, WAIT_MS, &seq, &len), 1);
		assert_true(seq < 5);
		count[seq]++;
	}
	for (int i = 0; i < 5; i++)
		assert_int_equal(count[i], 4);
	struct stats s;
	wait_stat(fx, STAT(dup), 15, 1, &s);
	assert_int_equal(s.in, 15);
	assert_int_equal(s.fwd, 15);
	expect_nothing(fd);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void test_reorder_changes_order_but_not_the_frames(void **state)
{
	struct fixture *fx = *state;
	uint32_t got[40];
	int in_order = 1;

	proxy_start(fx, "--reorder", "30", "--seed", "7", NULL);
	int fd = client(fx);
	for (uint32_t i = 0; i < 40; i++)
		send_frame(fd, i, body_len_for(i));
	for (int i = 0; i < 40; i++) {
		size_t len = 0;
		assert_int_equal(recv_frame(fd, WAIT_MS, &got[i], &len), 1);
		if (got[i] != (uint32_t)i)
			in_order = 0;
	}
	assert_false(in_order);
	qsort(got, 40, sizeof(got[0]), cmp_u32);
	for (uint32_t i = 0; i < 40; i++)
		assert_int_equal(got[i], i);
	struct stats s;
	wait_stat(fx, STAT(fwd), 80, 1, &s);
	assert_true(s.reordered > 0);
	assert_int_equal(s.dropped, 0);
	expect_nothing(fd);
}

static void test_delay_keeps_order_and_counts_delayed_frames(void **state)
{
	struct fixture *fx = *state;

	proxy_start(fx, "--delay", "40ms", "--jitter", "30ms", NULL);
	int fd = client(fx);
	uint64_t t0 = tpc_now_ms();
	for (uint32_t i = 0; i < 10; i++)
		send_frame(fd, i, body_len_for(i));
	for (uint32_t i = 0; i < 10; i++)
		expect_frame(fd, i);
	/* Each frame crossed the proxy twice, at least 40 ms each time. */
	assert_true(tpc_now_ms() - t0 >= 80);
	struct stats s;
	wait_stat(fx, STAT(delayed), 20, 1, &s);
	assert_int_equal(s.fwd, 20);
}

/* ---- tests: connection faults ----------------------------------------------------- */

static void test_partition_black_holes_frames_and_heal_restores_flow(void **state)
{
	struct fixture *fx = *state;
	uint32_t seen[8];
	struct stats s;

	proxy_start(fx, NULL);
	int c1 = client(fx);
	send_frame(c1, 1, 10);
	expect_frame(c1, 1);

	assert_string_equal(ctl(fx, "partition"), "ok partitioned");
	for (uint32_t i = 2; i <= 4; i++)
		send_frame(c1, i, 10);
	wait_stat(fx, STAT(dropped), 3, 1, NULL);
	/* A connection made during the partition is accepted; its frames vanish too. */
	int c2 = client(fx);
	send_frame(c2, 10, 10);
	wait_stat(fx, STAT(dropped), 4, 1, &s);
	assert_int_equal(s.part, 1);
	assert_int_equal(s.conns, 2);
	expect_nothing(c1);
	expect_nothing(c2);
	assert_int_equal(echo_seen(&fx->echo, NULL, 0), 1);

	assert_string_equal(ctl(fx, "heal"), "ok healed");
	send_frame(c1, 5, 10);
	expect_frame(c1, 5); /* 2..4 are gone for good */
	send_frame(c2, 11, 10);
	expect_frame(c2, 11);
	assert_int_equal(echo_seen(&fx->echo, seen, 8), 3);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 5);
	assert_int_equal(seen[2], 11);
	get_stats(fx, &s);
	assert_int_equal(s.part, 0);
}

static void test_reset_closes_every_connection_and_new_ones_work(void **state)
{
	struct fixture *fx = *state;
	struct stats s;

	proxy_start(fx, NULL);
	int c1 = client(fx);
	send_frame(c1, 1, 10);
	expect_frame(c1, 1);
	assert_string_equal(ctl(fx, "reset"), "ok reset 1");
	expect_closed(c1, 1);
	wait_stat(fx, STAT(conns), 0, 1, &s);
	assert_int_equal(s.resets, 1);

	int c2 = client(fx);
	send_frame(c2, 2, 10);
	expect_frame(c2, 2);
	/* SIGUSR1 does the same, for scripts. */
	assert_int_equal(kill(tpc_proc_pid(fx->proxy), SIGUSR1), 0);
	expect_closed(c2, 1);
	wait_stat(fx, STAT(resets), 2, 1, NULL);

	int c3 = client(fx);
	send_frame(c3, 3, 10);
	expect_frame(c3, 3);
}

static void test_oversized_frame_closes_the_pair(void **state)
{
	struct fixture *fx = *state;
	uint32_t seen[4];

	proxy_start(fx, "--max-frame", "1024", NULL);
	int c1 = client(fx);
	send_frame(c1, 1, 1024); /* exactly the limit: fine */
	expect_frame(c1, 1);
	send_frame(c1, 2, 1025);
	expect_closed(c1, 0);
	wait_stat(fx, STAT(conns), 0, 1, NULL);
	assert_int_equal(echo_seen(&fx->echo, seen, 4), 1);
	assert_int_equal(seen[0], 1);

	int c2 = client(fx); /* the proxy still serves everyone else */
	send_frame(c2, 3, 100);
	expect_frame(c2, 3);
}

static void test_unreachable_upstream_closes_the_client(void **state)
{
	struct fixture *fx = *state;

	fx->upstream_port = tpc_free_port(); /* nothing listens there */
	assert_true(fx->upstream_port > 0);
	proxy_start(fx, NULL);
	int fd = client(fx);
	send_frame(fd, 1, 10);
	expect_closed(fd, 0);
	wait_stat(fx, STAT(conns), 0, 1, NULL);
}

/* ---- tests: determinism ----------------------------------------------------------- */

struct pattern {
	uint32_t up[64];   /* what reached upstream */
	size_t nup;
	uint32_t back[64]; /* what came back to the client */
	size_t nback;
};

/* One proxy run with --drop 50 and @p seed: 40 frames through one connection. */
static void drop_run(struct fixture *fx, const char *seed, struct pattern *p)
{
	echo_clear(&fx->echo);
	proxy_start(fx, "--drop", "50", "--seed", seed, NULL);
	int fd = tcp_connect(fx->port);
	for (uint32_t i = 0; i < 40; i++)
		send_frame(fd, i, body_len_for(i));
	p->nback = collect_until_quiet(fx, fd, 40, p->back, 64);
	p->nup = echo_seen(&fx->echo, p->up, 64);
	close(fd);
	proxy_stop(fx);
}

static void test_same_seed_gives_the_same_drop_pattern(void **state)
{
	struct fixture *fx = *state;
	struct pattern a = { 0 }, b = { 0 }, c = { 0 };

	drop_run(fx, "42", &a);
	drop_run(fx, "42", &b);
	drop_run(fx, "43", &c);
	assert_true(a.nup > 0 && a.nup < 40);
	assert_int_equal(a.nup, b.nup);
	assert_memory_equal(a.up, b.up, a.nup * sizeof(a.up[0]));
	assert_int_equal(a.nback, b.nback);
	assert_memory_equal(a.back, b.back, a.nback * sizeof(a.back[0]));
	/* Another seed, another pattern (equal by chance with odds of about 2^-40). */
	assert_true(a.nup != c.nup || memcmp(a.up, c.up, a.nup * sizeof(a.up[0])) != 0);
}

/* ---- tests: control and command line ---------------------------------------------- */

static void expect_error(struct fixture *fx, const char *cmd, const char *needle)
{
	const char *r = ctl(fx, cmd);

	if (strncmp(r, "error ", 6) != 0 || !strstr(r, needle))
		fail_msg("'%s' answered '%s', expected an error mentioning '%s'", cmd, r, needle);
}

static void test_bad_commands_get_errors_and_good_ones_apply(void **state)
{
	struct fixture *fx = *state;

	proxy_start(fx, NULL);
	expect_error(fx, "frobnicate", "unknown command");
	expect_error(fx, "set drop 101", "percentage");
	expect_error(fx, "set drop -1", "percentage");
	expect_error(fx, "set delay soon", "duration");
	expect_error(fx, "set colour 3", "unknown knob");
	expect_error(fx, "set drop", "usage");
	expect_error(fx, "stats now", "no arguments");
	expect_error(fx, "", "empty");
	assert_string_equal(ctl(fx, "set drop 12.5\r"), "ok drop=12.5");
	assert_string_equal(ctl(fx, "set jitter 2s"), "ok jitter=2000ms");
	const char *r = ctl(fx, "show");
	assert_non_null(strstr(r, "drop=12.5 "));
	assert_non_null(strstr(r, "jitter=2000ms"));
	ctl_ok(fx, "stats");
	/* A line past the limit gets an error and closes that control connection only. */
	char line[2048];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	expect_error(fx, line, "longer than");
	uint8_t c;
	assert_int_equal(read_exact(fx->ctl_fd, &c, 1, tpc_now_ms() + WAIT_MS), -1);
	close(fx->ctl_fd);
	fx->ctl_fd = tcp_connect(fx->ctl_port);
	ctl_ok(fx, "stats");
}

static void test_quit_stops_the_proxy(void **state)
{
	struct fixture *fx = *state;
	int status = -1;

	proxy_start(fx, NULL);
	int fd = client(fx);
	send_frame(fd, 1, 10);
	expect_frame(fd, 1);
	assert_string_equal(ctl(fx, "quit"), "ok bye");
	assert_int_equal(tpc_proc_wait_exit(fx->proxy, WAIT_MS, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_closed(fd, 0);
}

/* Run the proxy with bad flags: exit status 2 and @p needle in its stderr. */
static void expect_usage_error(struct fixture *fx, const char *needle, char *const argv[])
{
	char log[PATH_MAX + 48], text[4096] = "";
	int status = -1;

	snprintf(log, sizeof(log), "%s/usage-%d.log", fx->dir, fx->nlogs++);
	tpc_proc *p = tpc_proc_spawn(fx->procs, argv, log);
	assert_non_null(p);
	assert_int_equal(tpc_proc_wait_exit(p, WAIT_MS, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
	FILE *f = fopen(log, "r");
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	if (!strstr(text, needle))
		fail_msg("stderr '%s' does not mention '%s'", text, needle);
}

static void test_bad_flags_are_refused_with_a_clear_error(void **state)
{
	struct fixture *fx = *state;
	char *const bin = TPC_FAULTPROXY_BIN;
	int status = -1;

	expect_usage_error(fx, "--drop 150: expected a percentage",
			   (char *const[]){ bin, "--listen", ":0", "--upstream", "127.0.0.1:9",
					    "--drop", "150", NULL });
	expect_usage_error(fx, "--delay 5parsecs: expected a duration",
			   (char *const[]){ bin, "--listen", ":0", "--upstream", "127.0.0.1:9",
					    "--delay", "5parsecs", NULL });
	expect_usage_error(fx, "--max-frame 0",
			   (char *const[]){ bin, "--listen", ":0", "--upstream", "127.0.0.1:9",
					    "--max-frame", "0", NULL });
	expect_usage_error(fx, "--upstream 127.0.0.1:0",
			   (char *const[]){ bin, "--listen", ":0", "--upstream", "127.0.0.1:0", NULL });
	expect_usage_error(fx, "--upstream are required",
			   (char *const[]){ bin, "--listen", ":0", NULL });
	expect_usage_error(fx, "--seed x", (char *const[]){ bin, "--listen", ":0", "--upstream",
							    "127.0.0.1:9", "--seed", "x", NULL });

	tpc_proc *help = tpc_proc_spawn(fx->procs, (char *const[]){ bin, "--help", NULL }, fx->log);
	assert_non_null(help);
	assert_non_null(tpc_proc_wait_line(help, "Usage: tpc-faultproxy", WAIT_MS));
	assert_non_null(tpc_proc_wait_line(help, "  partition", WAIT_MS));
	assert_int_equal(tpc_proc_wait_exit(help, WAIT_MS, &status), 0);
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- tests: the pure core --------------------------------------------------------- */

static void test_core_same_seed_and_stream_give_the_same_verdicts(void **state)
{
	struct fp_faults f = { .drop_ppm = 500000, .dup_ppm = 100000, .reorder_ppm = 200000,
			       .delay_ms = 5, .jitter_ms = 10 };
	struct fp_rng a, b, c;
	int differ = 0;

	fp_rng_seed(&a, 42, 3);
	fp_rng_seed(&b, 42, 3);
	fp_rng_seed(&c, 42, 4);
	for (int i = 0; i < 1000; i++) {
		struct fp_verdict va, vb, vc;
		fp_decide(&f, &a, &va);
		fp_decide(&f, &b, &vb);
		fp_decide(&f, &c, &vc);
		assert_memory_equal(&va, &vb, sizeof(va));
		assert_true(va.delay_ms >= 5 && va.delay_ms <= 15);
		differ |= va.drop != vc.drop;
	}
	assert_true(differ);
}

static void test_core_percentages_and_durations_are_validated(void **state)
{
	const char *why = NULL;
	uint32_t v = 0;

	assert_int_equal(fp_knob_parse(FP_KNOB_DROP, "100", &v, &why), 0);
	assert_int_equal(v, FP_PPM_MAX);
	assert_int_equal(fp_knob_parse(FP_KNOB_DUP, "12.25", &v, &why), 0);
	assert_int_equal(v, 122500);
	assert_int_equal(fp_knob_parse(FP_KNOB_DUP, "0.0001", &v, &why), 0);
	assert_int_equal(v, 1);
	const char *bad_pct[] = { "", "-1", "100.01", "101", "1e2", "12.", ".5", "0.00001", "5%", "nan" };
	for (size_t i = 0; i < sizeof(bad_pct) / sizeof(bad_pct[0]); i++)
		assert_int_equal(fp_knob_parse(FP_KNOB_REORDER, bad_pct[i], &v, &why), -1);
	assert_int_equal(fp_knob_parse(FP_KNOB_DELAY, "2s", &v, &why), 0);
	assert_int_equal(v, 2000);
	assert_int_equal(fp_knob_parse(FP_KNOB_JITTER, "2h", &v, &why), -1);
	assert_int_equal(fp_knob_parse(FP_KNOB_HOLD, "-5", &v, &why), -1);
}

static void test_core_control_lines_parse(void **state)
{
	struct fp_cmd cmd;
	char why[256];
	char l1[] = "set reorder-hold 250ms", l2[] = "  heal \r", l3[] = "set drop 5 6",
	     l4[] = "partition now";

	assert_int_equal(fp_cmd_parse(l1, &cmd, why, sizeof(why)), 0);
	assert_int_equal(cmd.kind, FP_CMD_SET);
	assert_int_equal(cmd.knob, FP_KNOB_HOLD);
	assert_int_equal(cmd.value, 250);
	assert_int_equal(fp_cmd_parse(l2, &cmd, why, sizeof(why)), 0);
	assert_int_equal(cmd.kind, FP_CMD_HEAL);
	assert_int_equal(fp_cmd_parse(l3, &cmd, why, sizeof(why)), -1);
	assert_int_equal(fp_cmd_parse(l4, &cmd, why, sizeof(why)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frames_pass_through_in_order_and_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_all_black_holes_until_drop_is_set_to_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dup_all_sends_every_frame_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reorder_changes_order_but_not_the_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_keeps_order_and_counts_delayed_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partition_black_holes_frames_and_heal_restores_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_closes_every_connection_and_new_ones_work, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_frame_closes_the_pair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_upstream_closes_the_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_seed_gives_the_same_drop_pattern, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_commands_get_errors_and_good_ones_apply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quit_stops_the_proxy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_flags_are_refused_with_a_clear_error, setup, teardown),
		cmocka_unit_test(test_core_same_seed_and_stream_give_the_same_verdicts),
		cmocka_unit_test(test_core_percentages_and_durations_are_validated),
		cmocka_unit_test(test_core_control_lines_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
