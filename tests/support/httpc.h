/*
 * httpc.h - a tiny blocking HTTP/1.1 client for tests: one request per connection
 * ("Connection: close"), a deadline on the whole exchange, the status, the
 * Content-Type and the body back. Enough for the coordinator's admin API; not a
 * general client (no chunked bodies, no redirects, no TLS).
 *
 * Error space: 0 on success, -errno on failure (-ETIMEDOUT when the deadline passes,
 * -EPROTO for a response it cannot parse).
 */
#ifndef TPC_TESTS_HTTPC_H
#define TPC_TESTS_HTTPC_H

#include <stddef.h>

struct httpc_resp {
	int status;              /* e.g. 200 */
	char content_type[128];  /* "" when absent */
	char *body;              /* NUL-terminated (owned; httpc_resp_free) */
	size_t len;
};

/**
 * @brief Send one request to 127.0.0.1-style @p host (numeric IPv4) and @p port and read
 *        the whole response.
 * @param headers extra header lines ("Name: value"), NULL-terminated; may be NULL
 * @param body request body or NULL (then no Content-Length unless @p method is POST)
 * @return 0 with @p out filled, or -errno (@p out then holds nothing to free).
 */
int httpc_request(const char *host, int port, const char *method, const char *path,
		  const char *const *headers, const char *body, int timeout_ms,
		  struct httpc_resp *out);

/** @brief Free what httpc_request() put in @p r. */
void httpc_resp_free(struct httpc_resp *r);

#endif
