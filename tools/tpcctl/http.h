/*
 * http.h - tpcctl's blocking HTTP/1.1 client: one request per connection
 * ("Connection: close"), every wait bounded by a deadline.
 *
 * Why not libevent's evhttp client: it reports a failed connect as a NULL request with
 * no errno, so "connection refused" could not be told apart from a timeout, and a CLI
 * that makes one request per run has no use for an event loop.
 *
 * The response parser (ctl_http_parse) is pure: it takes bytes and says whether they
 * hold a whole response, so a test can feed it one byte at a time.
 *
 * HTTPS (ctl_http_request_tls): OpenSSL over the same non-blocking socket, the server's
 * certificate checked against --tls-ca and the admin host (common/tls.h's rule); a
 * client certificate is presented when --tls-cert and --tls-key are given.
 *
 * Error space: 0 on success; -errno (-ECONNREFUSED, -ETIMEDOUT, ...) or -EPROTO for a
 * response that is not HTTP; a message goes to the caller's err buffer.
 */
#ifndef TPCCTL_HTTP_H
#define TPCCTL_HTTP_H

#include <stddef.h>

/** The largest response body accepted (the audit log and a long txn list fit easily). */
#define CTL_HTTP_MAX_RESPONSE (64u << 20)

struct ctl_http_resp {
	int status;          /* e.g. 200, 404 */
	char *body;          /* NUL-terminated, owned; "" when there is none */
	size_t body_len;
};

/**
 * @brief Decide whether @p buf holds a whole HTTP/1.x response, and if so decode it.
 * @param eof 1 when the peer closed the connection after these bytes
 * @param[out] out filled when 1 is returned (the caller frees it with ctl_http_resp_free)
 * @return 1 complete; 0 need more bytes; -EPROTO malformed (or cut short at EOF);
 *         -ENOMEM.
 */
int ctl_http_parse(const char *buf, size_t len, int eof, struct ctl_http_resp *out);

/**
 * @brief Send one request to HOST:PORT and read the whole response.
 * @param token a bearer token, or NULL
 * @param body a JSON body, or NULL for none
 * @param timeout_ms the deadline for everything (connect, send, receive)
 * @return 0 with @p out filled; -errno with a message in @p err.
 */
int ctl_http_request(const char *hostport, const char *method, const char *path,
		     const char *token, const char *body, int timeout_ms,
		     struct ctl_http_resp *out, char *err, size_t errlen);

struct tpc_tls_files;

/**
 * @brief ctl_http_request over HTTPS when @p tls names a CA (tls->ca; with tls->cert
 *        and tls->key also a client certificate); plain HTTP when @p tls is NULL or
 *        names no file.
 * @return as ctl_http_request; -EPROTO for a failed handshake (OpenSSL's reason, e.g.
 *         "certificate verify failed", in @p err), -EINVAL for an unusable file.
 */
int ctl_http_request_tls(const char *hostport, const struct tpc_tls_files *tls,
			 const char *method, const char *path, const char *token,
			 const char *body, int timeout_ms, struct ctl_http_resp *out, char *err,
			 size_t errlen);

/** @brief Free what ctl_http_parse / ctl_http_request put in @p r. */
void ctl_http_resp_free(struct ctl_http_resp *r);

#endif
