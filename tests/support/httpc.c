/*
 * httpc.c - the tests' blocking HTTP/1.1 client (see httpc.h).
 *
 * Owns nothing between calls: each request opens a socket, writes the request, reads
 * until the server closes (Connection: close), and parses status line, headers and a
 * Content-Length body. Every wait is a poll() against one absolute deadline.
 */
#include "httpc.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define MAX_RESPONSE (16u << 20)

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long left = deadline - mono_ms();

	if (left <= 0)
		return -ETIMEDOUT;
	int n = poll(&p, 1, (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int connect_to(const char *host, int port, long long deadline, int *fd_out)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, err = 0;
	socklen_t len = sizeof(err);

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		err = -errno;
		goto out_close;
	}
	err = wait_fd(fd, POLLOUT, deadline);
	if (err)
		goto out_close;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		err = -(err ? err : errno);
		goto out_close;
	}
	*fd_out = fd;
	return 0;
out_close:
	close(fd);
	return err;
}

static int write_all(int fd, const char *p, size_t n, long long deadline)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			int rc = wait_fd(fd, POLLOUT, deadline);
			if (rc)
				return rc;
			continue;
		}
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until EOF into a growing buffer (NUL-terminated). */
static int read_all(int fd, long long deadline, char **out, size_t *out_len)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (cap - len < 2) {
			char *nb = cap >= MAX_RESPONSE ? NULL : realloc(buf, cap * 2);
			if (!nb) {
				rc = cap >= MAX_RESPONSE ? -EMSGSIZE : -ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
		if (r == 0)
			break;
		if (r > 0) {
			len += (size_t)r;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			break;
		}
		rc = wait_fd(fd, POLLIN, deadline);
		if (rc)
			break;
	}
	if (rc) {
		free(buf);
		return rc;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

static int build_request(char **req, const char *host, int port, const char *method,
			 const char *path, const char *const *headers, const char *body)
{
	size_t blen = body ? strlen(body) : 0;
	size_t cap = 512 + strlen(path) + blen;
	char *p;
	int off;

	for (const char *const *h = headers; h && *h; h++)
		cap += strlen(*h) + 2;
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	off = snprintf(p, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n", method,
		       path, host, port);
	for (const char *const *h = headers; h && *h; h++)
		off += snprintf(p + off, cap - (size_t)off, "%s\r\n", *h);
	if (body || strcmp(method, "POST") == 0)
		off += snprintf(p + off, cap - (size_t)off,
				"Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
	off += snprintf(p + off, cap - (size_t)off, "\r\n");
	if (blen)
		memcpy(p + off, body, blen + 1);
	*req = p;
	return 0;
}

/* "Name: value" lines between the status line and the blank line. */
static void parse_headers(const char *h, const char *end, struct httpc_resp *r, long *clen)
{
	*clen = -1;
	while (h < end) {
		const char *eol = strstr(h, "\r\n");
		if (!eol || eol > end)
			eol = end;
		if (strncasecmp(h, "Content-Length:", 15) == 0)
			*clen = strtol(h + 15, NULL, 10);
		if (strncasecmp(h, "Content-Type:", 13) == 0) {
			const char *v = h + 13;
			while (*v == ' ')
				v++;
			snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)(eol - v), v);
		}
		h = eol + 2;
	}
}

static int parse_response(char *raw, size_t len, struct httpc_resp *r)
{
	char *hdr_end = strstr(raw, "\r\n\r\n");
	char *line_end = strstr(raw, "\r\n");
	long clen;

	if (!hdr_end || sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1)
		return -EPROTO;
	parse_headers(line_end + 2, hdr_end, r, &clen);
	char *body = hdr_end + 4;
	size_t blen = len - (size_t)(body - raw);
	if (clen >= 0 && (size_t)clen < blen)
		blen = (size_t)clen;
	r->body = malloc(blen + 1);
	if (!r->body)
		return -ENOMEM;
	memcpy(r->body, body, blen);
	r->body[blen] = '\0';
	r->len = blen;
	return 0;
}

int httpc_request(const char *host, int port, const char *method, const char *path,
		  const char *const *headers, const char *body, int timeout_ms,
		  struct httpc_resp *out)
{
	long long deadline = mono_ms() + timeout_ms;
	char *req = NULL, *raw = NULL;
	size_t rawlen = 0;
	int fd = -1;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = build_request(&req, host, port, method, path, headers, body);
	if (rc)
		return rc;
	rc = connect_to(host, port, deadline, &fd);
	if (rc)
		goto out;
	rc = write_all(fd, req, strlen(req), deadline);
	if (rc)
		goto out;
	rc = read_all(fd, deadline, &raw, &rawlen);
	if (rc)
		goto out;
	rc = parse_response(raw, rawlen, out);
	if (rc)
		httpc_resp_free(out);
out:
	if (fd >= 0)
		close(fd);
	free(req);
	free(raw);
	return rc;
}

void httpc_resp_free(struct httpc_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}
