/*
 * util.c - clocks, levelled logging to stderr, the command-line parsers and the
 * constant-time secret comparison declared in util.h.
 *
 * Owns no state: a logger is the caller's struct, every parser writes only through
 * its out-parameters. Invariants kept here:
 *   - tpc_logf emits each line with exactly one write() (short writes aside), so lines
 *     from several threads never interleave within a line, and it preserves errno;
 *   - the parsers accept only what they document (no signs, no blanks, no fractions)
 *     and reject values that would overflow rather than wrapping them.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sys/stat.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/inet.h>

/* ------------------------------------------------------------------ clocks */

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tpc_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t tpc_now_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000u;
}

uint64_t tpc_wall_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000u;
}

/* ----------------------------------------------------------------- logging */

#define LOG_LINE_STACK 1024   /* most lines fit; longer ones go to the heap */
#define LOG_LINE_MAX (64 * 1024) /* longer messages are cut here */

static const char *level_name(enum tpc_log_level lvl)
{
	switch (lvl) {
	case TPC_LOG_DEBUG: return "DEBUG";
	case TPC_LOG_INFO: return "INFO";
	case TPC_LOG_WARN: return "WARN";
	case TPC_LOG_ERROR: return "ERROR";
	}
	return "?";
}

int tpc_format_wall_ms(uint64_t wall_ms, char *out, size_t cap)
{
	time_t secs = (time_t)(wall_ms / 1000);
	struct tm tm;

	if (!gmtime_r(&secs, &tm))
		memset(&tm, 0, sizeof(tm));
	return snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			(unsigned)(wall_ms % 1000));
}

struct timeval tpc_ms_tv(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	return tv;
}

/* Keep a line one line: control characters (a stray '\n' in a peer's name) become '?'. */
static void sanitize_line(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			s[i] = '?';
	}
}

/* One write() for the whole line; retried only on EINTR or after a short write. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * Render "prefix" + message into @p stack, or into a heap buffer when it does not
 * fit; returns the buffer used (free it if it is not @p stack) and its length.
 */
static char *render_line(char *stack, size_t cap, const char *prefix, const char *fmt,
			 va_list ap, size_t *out_len)
{
	va_list ap2;
	size_t plen = strlen(prefix);
	char *buf = stack;
	int n;

	memcpy(stack, prefix, plen + 1);
	va_copy(ap2, ap);
	n = vsnprintf(stack + plen, cap - plen - 1, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= cap - plen - 1) {
		size_t want = plen + (size_t)n + 2;
		char *heap;

		if (want > LOG_LINE_MAX)
			want = LOG_LINE_MAX;
		heap = malloc(want);
		if (heap) {
			memcpy(heap, prefix, plen);
			vsnprintf(heap + plen, want - plen - 1, fmt, ap2);
			buf = heap;
			cap = want;
		}
		n = (int)(cap - plen - 2); /* what fitted */
	}
	va_end(ap2);
	*out_len = plen + (size_t)n;
	return buf;
}

void tpc_logf(const struct tpc_logger *lg, enum tpc_log_level lvl, const char *fmt, ...)
{
	char stack[LOG_LINE_STACK];
	char prefix[160];
	const char *prog = lg && lg->prog ? lg->prog : "tpc";
	int saved_errno = errno;
	size_t len;
	char *line;
	va_list ap;
	int plen;

	if (lg && lvl < lg->min)
		return;
	plen = tpc_format_wall_ms(tpc_wall_ms(), prefix, sizeof(prefix));
	snprintf(prefix + plen, sizeof(prefix) - (size_t)plen, " %s %s: ", level_name(lvl), prog);

	va_start(ap, fmt);
	line = render_line(stack, sizeof(stack), prefix, fmt, ap, &len);
	va_end(ap);

	while (len > 0 && line[len - 1] == '\n') /* callers sometimes add their own */
		len--;
	sanitize_line(line, len);
	line[len++] = '\n';
	write_all(STDERR_FILENO, line, len);
	if (line != stack)
		free(line);
	errno = saved_errno;
}

/* ----------------------------------------------------------- HOST:PORT parsing */

int tpc_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", prog);
	return 2;
}

void tpc_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Decimal port, 0..65535, digits only. */
static int parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

/*
 * Split @p s into host (copied into @p host, cap @p hcap) and port string; strips the
 * brackets of "[v6]:port" and says so in *bracketed.
 */
static int split_hostport(const char *s, char *host, size_t hcap, const char **port,
			  int *bracketed, char *err, size_t errlen)
{
	const char *colon;
	size_t hlen;

	*bracketed = s[0] == '[';
	if (*bracketed) {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':') {
			tpc_set_err(err, errlen, "\"%s\": expected [IPv6]:PORT", s);
			return -EINVAL;
		}
		s++;
		hlen = (size_t)(close - s);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			tpc_set_err(err, errlen, "\"%s\": missing \":PORT\"", s);
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen)) {
			tpc_set_err(err, errlen, "\"%s\": write IPv6 addresses in brackets, "
				"as [::1]:7000", s);
			return -EINVAL;
		}
	}
	if (hlen >= hcap) {
		tpc_set_err(err, errlen, "\"%s\": host name too long", s);
		return -EINVAL;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	*port = colon + 1;
	return 0;
}

/* First IPv4 result if any (so "localhost" means 127.0.0.1 everywhere), else the first. */
static const struct addrinfo *pick_addr(const struct addrinfo *res)
{
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET)
			return ai;
	return res;
}

static int resolve(const char *host, const char *port, int bracketed,
		   struct sockaddr_storage *ss, socklen_t *sslen, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	const struct addrinfo *ai;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	hints.ai_family = AF_UNSPEC;
	if (bracketed) {
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else if (host[0] == '\0') {
		/* Empty host: the IPv4 wildcard; "[::]:PORT" asks for the IPv6 one. */
		hints.ai_family = AF_INET;
		hints.ai_flags |= AI_PASSIVE;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		tpc_set_err(err, errlen, "cannot resolve \"%s\": %s", host[0] ? host : "*",
			rc == EAI_SYSTEM ? strerrordesc_np(errno) : gai_strerror(rc));
		return -EINVAL;
	}
	ai = pick_addr(res);
	if (!ai || ai->ai_addrlen > sizeof(*ss)) {
		tpc_set_err(err, errlen, "cannot resolve \"%s\": no usable address", host);
		freeaddrinfo(res);
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = (socklen_t)ai->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int tpc_sockaddr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

int tpc_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *sslen,
		       char *err, size_t errlen)
{
	char host[256], portstr[8];
	const char *port;
	unsigned portnum;
	int bracketed;
	int rc;

	if (!s || !*s) {
		tpc_set_err(err, errlen, "empty address: expected HOST:PORT");
		return -EINVAL;
	}
	rc = split_hostport(s, host, sizeof(host), &port, &bracketed, err, errlen);
	if (rc)
		return rc;
	if (parse_port(port, &portnum)) {
		tpc_set_err(err, errlen, "\"%s\": port \"%s\" is not a number in 0-65535", s, port);
		return -EINVAL;
	}
	if (bracketed && host[0] == '\0') {
		tpc_set_err(err, errlen, "\"%s\": empty IPv6 address", s);
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%u", portnum);
	return resolve(host, portstr, bracketed, ss, sslen, err, errlen);
}

/* ------------------------------------------------------- number + suffix parsing */

int tpc_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Leading decimal digits of @p s into *v (no sign, no blanks); *end after them. */
static int parse_u64_prefix(const char *s, uint64_t *v, const char **end)
{
	uint64_t acc = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (acc > (UINT64_MAX - d) / 10)
			return -EINVAL; /* overflow */
		acc = acc * 10 + d;
	}
	if (p == s)
		return -EINVAL;
	*v = acc;
	*end = p;
	return 0;
}

static int mul_checked(uint64_t v, uint64_t mul, uint64_t *out)
{
	if (mul && v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* "", "B", "K", "KB", "KiB", ... (case-insensitive); all binary multiples. */
static int size_unit(const char *suffix, uint64_t *mul)
{
	static const struct { char letter; unsigned shift; } units[] = {
		{ 'K', 10 }, { 'M', 20 }, { 'G', 30 },
	};
	const char *rest = suffix + 1;

	if (*suffix == '\0' || strcasecmp(suffix, "B") == 0) {
		*mul = 1;
		return 0;
	}
	if (*rest && strcasecmp(rest, "B") != 0 && strcasecmp(rest, "iB") != 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if ((*suffix & ~0x20) == units[i].letter) {
			*mul = (uint64_t)1 << units[i].shift;
			return 0;
		}
	}
	return -EINVAL;
}

int tpc_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v, mul;

	if (!s || parse_u64_prefix(s, &v, &end) || size_unit(end, &mul))
		return -EINVAL;
	return mul_checked(v, mul, out);
}

/* mkdir -p with mode 0700 for the parts that are created; the result must be a dir. */
int tpc_mkdirs(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	struct stat st;

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	if (stat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int tpc_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int tpc_fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int rc;

	if (!copy)
		return -ENOMEM;
	rc = tpc_fsync_dir(dirname(copy));
	free(copy);
	return rc;
}

int tpc_secret_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(x[i] ^ y[i]);
	return diff == 0;
}

void tpc_hold_stop_signals(sigset_t *old)
{
	sigset_t stop;

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, old);
}

void tpc_release_stop_signals(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}
