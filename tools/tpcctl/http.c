/*
 * http.c - tpcctl's blocking HTTP/1.1 client (see http.h).
 *
 * Owns one socket per request and the receive buffer. The request always says
 * "Connection: close"; the response is read until it is complete by its own framing
 * (Content-Length or chunked) or, with neither, until the server closes.
 */
#include "http.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls.h"
#include "util.h"

/* ---- the pure parser -------------------------------------------------------------- */

struct head {
	int status;
	size_t body_at;          /* offset of the first body byte */
	int chunked;
	int has_length;
	uint64_t length;
};

/* Offset just past the blank line that ends the head, or 0 if it has not arrived. */
static size_t find_head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static int parse_status_line(const char *line, size_t len, int *status)
{
	if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
		return -EPROTO;
	for (int i = 9; i < 12; i++)
		if (line[i] < '0' || line[i] > '9')
			return -EPROTO;
	*status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	return 0;
}

/* True if header line @p line (length @p len) is "NAME:" (any case); *value after it. */
static int header_is(const char *line, size_t len, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return 0;
	*value = line + n + 1;
	return 1;
}

static int parse_header(const char *line, size_t len, struct head *h)
{
	const char *v;

	if (header_is(line, len, "content-length", &v)) {
		char *end;
		while (*v == ' ' || *v == '\t')
			v++;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		if (end == v || errno)
			return -EPROTO;
		h->has_length = 1;
		h->length = n;
	} else if (header_is(line, len, "transfer-encoding", &v)) {
		size_t rest = len - (size_t)(v - line);
		for (size_t i = 0; i + 7 <= rest; i++)
			if (strncasecmp(v + i, "chunked", 7) == 0)
				h->chunked = 1;
	}
	return 0;
}

static int parse_head(const char *buf, size_t head_len, struct head *h)
{
	const char *p = buf, *end = buf + head_len;
	int first = 1;

	memset(h, 0, sizeof(*h));
	h->body_at = head_len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)(nl - p);
		if (len && p[len - 1] == '\r')
			len--;
		if (len == 0)
			break;
		int rc = first ? parse_status_line(p, len, &h->status) : parse_header(p, len, h);
		if (rc)
			return rc;
		first = 0;
		p = nl + 1;
	}
	return first ? -EPROTO : 0;
}

static int set_body(struct ctl_http_resp *out, int status, const char *data, size_t len)
{
	out->body = malloc(len + 1);
	if (!out->body)
		return -ENOMEM;
	memcpy(out->body, data, len);
	out->body[len] = '\0';
	out->body_len = len;
	out->status = status;
	return 1;
}

/* One line ending at or after @p p within @p end: its length without CRLF; -1 if none. */
static long line_len(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	long len;

	if (!nl)
		return -1;
	len = (long)(nl - p);
	if (len && p[len - 1] == '\r')
		len--;
	*next = nl + 1;
	return len;
}

static int parse_chunk_size(const char *p, long len, uint64_t *size)
{
	uint64_t v = 0;
	long i = 0;

	for (; i < len; i++) {
		int c = p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			break;
		if (v > (CTL_HTTP_MAX_RESPONSE >> 4))
			return -EPROTO;
		v = v * 16 + (uint64_t)d;
	}
	if (i == 0 || (i < len && p[i] != ';' && p[i] != ' '))
		return -EPROTO;
	*size = v;
	return 0;
}

/* Decode a chunked body at [p, end): 1 and out filled, 0 incomplete, <0 malformed. */
static int parse_chunked(const char *p, const char *end, int status, struct ctl_http_resp *out)
{
	char *body = NULL;
	size_t blen = 0;
	int rc = 0;

	for (;;) {
		const char *next;
		uint64_t size;
		long len = line_len(p, end, &next);
		if (len < 0)
			goto out; /* rc 0: need more */
		rc = parse_chunk_size(p, len, &size);
		if (rc)
			goto out;
		p = next;
		if (size == 0)
			break;
		if ((uint64_t)(end - p) < size + 1)
			goto out;
		char *nb = realloc(body, blen + size + 1);
		if (!nb) {
			rc = -ENOMEM;
			goto out;
		}
		body = nb;
		memcpy(body + blen, p, size);
		blen += size;
		p += size;
		len = line_len(p, end, &next);
		if (len < 0)
			goto out;
		if (len != 0) {
			rc = -EPROTO;
			goto out;
		}
		p = next;
	}
	/* Trailers, then the empty line that ends the message. */
	for (;;) {
		const char *next;
		long len = line_len(p, end, &next);
		if (len < 0)
			goto out;
		p = next;
		if (len == 0)
			break;
	}
	rc = set_body(out, status, body ? body : "", blen);
out:
	free(body);
	return rc;
}

int ctl_http_parse(const char *buf, size_t len, int eof, struct ctl_http_resp *out)
{
	struct head h;
	size_t head_len = find_head_end(buf, len);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!head_len)
		return eof ? -EPROTO : 0;
	rc = parse_head(buf, head_len, &h);
	if (rc)
		return rc;
	const char *body = buf + h.body_at, *end = buf + len;
	if (h.status == 204 || h.status == 304 || (h.status >= 100 && h.status < 200))
		return set_body(out, h.status, "", 0);
	if (h.chunked) {
		rc = parse_chunked(body, end, h.status, out);
		return rc == 0 && eof ? -EPROTO : rc;
	}
	if (h.has_length) {
		if (h.length > CTL_HTTP_MAX_RESPONSE)
			return -EPROTO;
		if ((uint64_t)(end - body) < h.length)
			return eof ? -EPROTO : 0;
		return set_body(out, h.status, body, (size_t)h.length);
	}
	return eof ? set_body(out, h.status, body, (size_t)(end - body)) : 0;
}

void ctl_http_resp_free(struct ctl_http_resp *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

/* ---- the socket side -------------------------------------------------------------- */

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = tpc_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Wait for @p events on @p fd until @p deadline: 0 ready, -ETIMEDOUT, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int n = poll(&pfd, 1, remaining_ms(deadline));
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int connect_to(const char *hostport, uint64_t deadline, int *out, char *err,
		      size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int soerr = 0, rc;
	socklen_t elen = sizeof(soerr);

	if (tpc_parse_hostport(hostport, &ss, &sslen, err, errlen))
		return -EINVAL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sslen) == 0)
		goto connected;
	if (errno != EINPROGRESS) {
		rc = -errno;
		goto fail;
	}
	rc = wait_fd(fd, POLLOUT, deadline);
	if (rc)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) == 0 && soerr) {
		rc = -soerr;
		goto fail;
	}
connected:
	*out = fd;
	return 0;
fail:
	close(fd);
	snprintf(err, errlen, "cannot connect to %s: %s", hostport, strerror(-rc));
	return rc;
}

/* One connection: the socket, and the TLS session over it (NULL: plain HTTP). */
struct io {
	int fd;
	SSL *ssl;
};

/* -EAGAIN-style result of a TLS call: wait for what OpenSSL wants; else an error. */
static int tls_wait(struct io *io, int n, uint64_t deadline)
{
	int e = SSL_get_error(io->ssl, n);

	if (e == SSL_ERROR_WANT_READ)
		return wait_fd(io->fd, POLLIN, deadline);
	if (e == SSL_ERROR_WANT_WRITE)
		return wait_fd(io->fd, POLLOUT, deadline);
	ERR_clear_error();
	return e == SSL_ERROR_ZERO_RETURN ? 1 : -EPROTO;
}

static int send_all(struct io *io, const char *p, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = io->ssl ? SSL_write(io->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len))
				    : send(io->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (io->ssl) {
			int rc = tls_wait(io, (int)n, deadline);
			if (rc)
				return rc > 0 ? -EPIPE : rc;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		int rc = wait_fd(io->fd, POLLOUT, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

/* One read: >0 bytes, 0 EOF, -EAGAIN (waited: try again), or -errno. */
static ssize_t read_some(struct io *io, char *buf, size_t cap, uint64_t deadline)
{
	ssize_t n;
	int rc;

	if (!io->ssl) {
		n = recv(io->fd, buf, cap, 0);
		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		rc = wait_fd(io->fd, POLLIN, deadline);
		return rc ? rc : -EAGAIN;
	}
	n = SSL_read(io->ssl, buf, (int)(cap > INT32_MAX ? INT32_MAX : cap));
	if (n > 0)
		return n;
	rc = tls_wait(io, (int)n, deadline);
	return rc > 0 ? 0 : rc ? rc : -EAGAIN;
}

/* The TLS handshake on io->fd within @p deadline; @p err says why it failed. */
static int tls_handshake(struct io *io, SSL_CTX *ctx, const char *hostport, uint64_t deadline,
			 char *err, size_t errlen)
{
	int n, rc;

	io->ssl = tpc_tls_client_ssl(ctx, hostport, err, errlen);
	if (!io->ssl || SSL_set_fd(io->ssl, io->fd) != 1)
		return -EINVAL;
	while ((n = SSL_connect(io->ssl)) != 1) {
		long vr = SSL_get_verify_result(io->ssl);
		char why[256] = "";
		ERR_error_string_n(ERR_peek_last_error(), why, sizeof(why));
		rc = tls_wait(io, n, deadline);
		if (rc == 0)
			continue;
		snprintf(err, errlen, "%s: TLS handshake failed: %s", hostport,
			 vr != X509_V_OK ? X509_verify_cert_error_string(vr)
			 : rc == -ETIMEDOUT ? "timed out" : why[0] ? why : "the server hung up "
			 "(is the admin API HTTPS?)");
		return rc == -ETIMEDOUT ? rc : -EPROTO;
	}
	return 0;
}

static char *format_request(const char *hostport, const char *method, const char *path,
			    const char *token, const char *body, size_t *len)
{
	size_t blen = body ? strlen(body) : 0;
	size_t cap = strlen(method) + strlen(path) + strlen(hostport) + blen +
		     (token ? strlen(token) : 0) + 256;
	char *req = malloc(cap);
	int n;

	if (!req)
		return NULL;
	n = snprintf(req, cap,
		     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tpcctl\r\n"
		     "Accept: application/json\r\nConnection: close\r\n%s%s%s"
		     "%s%zu\r\n\r\n%s",
		     method, path, hostport, token ? "Authorization: Bearer " : "",
		     token ? token : "", token ? "\r\n" : "",
		     body ? "Content-Type: application/json\r\nContent-Length: "
			  : "Content-Length: ",
		     blen, body ? body : "");
	*len = (size_t)n;
	return req;
}

/* Read until the response is whole (or the peer closes): 1 done, <0 error. */
static int recv_response(struct io *io, uint64_t deadline, struct ctl_http_resp *out)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0, eof = 0;

	while (rc == 0) {
		if (cap - len < 16384) {
			cap = cap ? cap * 2 : 65536;
			char *nb = cap <= 2 * (size_t)CTL_HTTP_MAX_RESPONSE ? realloc(buf, cap) : NULL;
			if (!nb) {
				rc = -EMSGSIZE;
				break;
			}
			buf = nb;
		}
		ssize_t n = read_some(io, buf + len, cap - len, deadline);
		if (n > 0)
			len += (size_t)n;
		else if (n == 0)
			eof = 1;
		else if (n == -EAGAIN)
			continue;
		else {
			rc = (int)n;
			break;
		}
		rc = ctl_http_parse(buf, len, eof, out);
	}
	free(buf);
	return rc;
}

/* The TLS context for @p tls: with a client certificate, or checking the server only. */
static SSL_CTX *tls_ctx(const struct tpc_tls_files *tls, char *err, size_t errlen)
{
	if (tls->cert || tls->key)
		return tpc_tls_ctx_new(TPC_TLS_CLIENT, tls, err, errlen);
	return tpc_tls_ctx_new_ca_only(tls->ca, err, errlen);
}

int ctl_http_request(const char *hostport, const char *method, const char *path,
		     const char *token, const char *body, int timeout_ms,
		     struct ctl_http_resp *out, char *err, size_t errlen)
{
	return ctl_http_request_tls(hostport, NULL, method, path, token, body, timeout_ms, out,
				    err, errlen);
}

int ctl_http_request_tls(const char *hostport, const struct tpc_tls_files *tls,
			 const char *method, const char *path, const char *token,
			 const char *body, int timeout_ms, struct ctl_http_resp *out, char *err,
			 size_t errlen)
{
	uint64_t deadline = tpc_now_ms() + (uint64_t)timeout_ms;
	struct io io = { -1, NULL };
	SSL_CTX *ctx = NULL;
	size_t len;
	int rc;
	char *req;

	memset(out, 0, sizeof(*out));
	if (tpc_tls_files_given(tls) && !(ctx = tls_ctx(tls, err, errlen)))
		return -EINVAL;
	rc = connect_to(hostport, deadline, &io.fd, err, errlen);
	if (rc)
		goto out_ctx;
	if (ctx && (rc = tls_handshake(&io, ctx, hostport, deadline, err, errlen)))
		goto out_close;
	req = format_request(hostport, method, path, token, body, &len);
	if (!req) {
		rc = -ENOMEM;
		goto out_close;
	}
	rc = send_all(&io, req, len, deadline);
	free(req);
	if (rc) {
		snprintf(err, errlen, "%s: sending the request: %s", hostport, strerror(-rc));
		goto out_close;
	}
	rc = recv_response(&io, deadline, out);
	if (rc == 1)
		rc = 0;
	else if (rc == -EPROTO)
		snprintf(err, errlen, "%s: the answer is not a valid HTTP response", hostport);
	else
		snprintf(err, errlen, "%s: reading the response: %s", hostport, strerror(-rc));
out_close:
	SSL_free(io.ssl);
	close(io.fd);
out_ctx:
	SSL_CTX_free(ctx);
	return rc;
}
