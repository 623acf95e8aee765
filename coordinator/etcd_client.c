/*
 * etcd_client.c - blocking calls to etcd's JSON gateway over libevent's HTTP client
 * (etcd_client.h).
 *
 * Owns the client's event_base, its connection to the endpoint in use, the endpoint
 * list and the last error text. Invariants: a call holds the client's mutex from the
 * request to the parsed reply; only one request is in flight per client; a connection
 * that failed is freed and the next endpoint gets a fresh one.
 */
#include "etcd_client.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/evp.h>

#define MAX_ENDPOINTS 16

struct endpoint {
	char url[128];           /* http://host:port */
	char host[96];
	int port;
};

struct etcd_client {
	pthread_mutex_t mu;
	struct event_base *base;
	struct evhttp_connection *conn;
	struct endpoint ep[MAX_ENDPOINTS];
	size_t nep, cur;
	uint32_t timeout_ms;
	char err[256];
};

/* One request in flight: what its callbacks saw. */
struct call {
	struct event_base *base;
	int done;
	int rc;                  /* 0, or -ETIMEDOUT / -ECONNREFUSED / -EPROTO */
	int code;                /* HTTP status */
	struct evbuffer *in;     /* the reply body (or, for a watch, unparsed lines) */
	/* a watch: */
	int watching, deleted;
	struct evhttp_request *req;
};

/* ------------------------------------------------------------ endpoints */

static int parse_endpoint(struct endpoint *e, const char *s, size_t len)
{
	struct evhttp_uri *u;
	const char *host;
	int rc = -EINVAL;

	if (len == 0 || len >= sizeof(e->url))
		return -EINVAL;
	memcpy(e->url, s, len);
	e->url[len] = '\0';
	u = evhttp_uri_parse(e->url);
	if (!u)
		return -EINVAL;
	host = evhttp_uri_get_host(u);
	if (host && strlen(host) < sizeof(e->host) && evhttp_uri_get_port(u) > 0 &&
	    evhttp_uri_get_scheme(u) && strcmp(evhttp_uri_get_scheme(u), "http") == 0) {
		strcpy(e->host, host);
		e->port = evhttp_uri_get_port(u);
		rc = 0;
	}
	evhttp_uri_free(u);
	return rc;
}

static int parse_endpoints(struct etcd_client *c, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (c->nep == MAX_ENDPOINTS || parse_endpoint(&c->ep[c->nep], p, len)) {
			tpc_set_err(err, errlen, "bad etcd endpoint \"%.*s\" (want http://HOST:PORT, "
				"at most %d)", (int)len, p, MAX_ENDPOINTS);
			return -EINVAL;
		}
		c->nep++;
		p = comma ? comma + 1 : NULL;
	}
	if (c->nep == 0) {
		tpc_set_err(err, errlen, "no etcd endpoint given");
		return -EINVAL;
	}
	return 0;
}

int etcd_client_new(struct etcd_client **out, const char *endpoints, uint32_t timeout_ms,
		    char *err, size_t errlen)
{
	struct etcd_client *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		tpc_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = parse_endpoints(c, endpoints ? endpoints : "", err, errlen);
	if (rc == 0 && !(c->base = event_base_new())) {
		tpc_set_err(err, errlen, "event_base_new failed");
		rc = -ENOMEM;
	}
	if (rc) {
		free(c);
		return rc;
	}
	pthread_mutex_init(&c->mu, NULL);
	c->timeout_ms = timeout_ms ? timeout_ms : 5000;
	*out = c;
	return 0;
}

void etcd_client_free(struct etcd_client *c)
{
	if (!c)
		return;
	if (c->conn)
		evhttp_connection_free(c->conn);
	event_base_free(c->base);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

const char *etcd_client_err(const struct etcd_client *c)
{
	return c->err;
}

const char *etcd_client_endpoint(const struct etcd_client *c)
{
	return c->ep[c->cur].url;
}

/* ------------------------------------------------------------ one request */

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct call *k = arg;

	k->rc = e == EVREQ_HTTP_TIMEOUT ? -ETIMEDOUT : -ECONNREFUSED;
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct call *k = arg;

	k->done = 1;
	if (!req || evhttp_request_get_response_code(req) == 0) {
		if (!k->rc)
			k->rc = k->deleted ? 0 : -ECONNREFUSED;
	} else {
		k->code = evhttp_request_get_response_code(req);
		evbuffer_add_buffer(k->in, evhttp_request_get_input_buffer(req));
	}
	event_base_loopbreak(k->base);
}

static struct evhttp_connection *conn_new(struct etcd_client *c, uint32_t timeout_ms)
{
	const struct endpoint *e = &c->ep[c->cur];
	struct evhttp_connection *conn = evhttp_connection_base_new(c->base, NULL, e->host,
								   (uint16_t)e->port);
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (conn) {
		evhttp_connection_set_timeout_tv(conn, &tv);
		evhttp_connection_set_retries(conn, 0);
	}
	return conn;
}

static struct evhttp_request *req_new(struct etcd_client *c, struct call *k,
				      const char *body, size_t len)
{
	struct evhttp_request *req = evhttp_request_new(on_done, k);
	struct evkeyvalq *h;

	if (!req)
		return NULL;
	evhttp_request_set_error_cb(req, on_error);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", c->ep[c->cur].host);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	return req;
}

/* Send @p body to the current endpoint and wait: 0 with the reply in k->in, or <0. */
static int send_once(struct etcd_client *c, struct call *k, const char *path,
		     const char *body, size_t len)
{
	struct evhttp_request *req;

	if (!c->conn && !(c->conn = conn_new(c, c->timeout_ms)))
		return -ENOMEM;
	req = req_new(c, k, body, len);
	if (!req)
		return -ENOMEM;
	if (evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, path))
		return -ECONNREFUSED; /* libevent freed the request */
	while (!k->done)
		event_base_loop(c->base, EVLOOP_ONCE);
	return k->rc;
}

static int parse_reply(struct etcd_client *c, struct call *k, const char *path, json_t **reply)
{
	json_error_t je;
	size_t len = evbuffer_get_length(k->in);
	json_t *j = json_loadb((const char *)evbuffer_pullup(k->in, -1), len, 0, &je);

	if (k->code != 200 || !j || !json_is_object(j)) {
		const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
		tpc_set_err(c->err, sizeof(c->err), "%s: %s: HTTP %d: %s", c->ep[c->cur].url, path,
			k->code, msg ? msg : j ? "unexpected reply" : je.text);
		json_decref(j);
		return -EPROTO;
	}
	*reply = j;
	return 0;
}

static void next_endpoint(struct etcd_client *c, int rc, const char *path)
{
	tpc_set_err(c->err, sizeof(c->err), "%s: %s: %s", c->ep[c->cur].url, path,
		rc == -ETIMEDOUT ? "timed out" : "no answer");
	if (c->conn)
		evhttp_connection_free(c->conn);
	c->conn = NULL;
	c->cur = (c->cur + 1) % c->nep;
}

static int call_locked(struct etcd_client *c, const char *path, const char *body, size_t len,
		       json_t **reply)
{
	int rc = -ECONNREFUSED;

	for (size_t tries = 0; tries < c->nep; tries++) {
		struct call k = { .base = c->base, .in = evbuffer_new() };

		if (!k.in)
			return -ENOMEM;
		rc = send_once(c, &k, path, body, len);
		if (rc == 0)
			rc = parse_reply(c, &k, path, reply);
		evbuffer_free(k.in);
		if (rc != -ETIMEDOUT && rc != -ECONNREFUSED)
			return rc;
		next_endpoint(c, rc, path);
	}
	return rc;
}

int etcd_call(struct etcd_client *c, const char *path, json_t *body, json_t **reply)
{
	char *text = json_dumps(body, JSON_COMPACT);
	int rc;

	json_decref(body);
	if (!text)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	rc = call_locked(c, path, text, strlen(text), reply);
	pthread_mutex_unlock(&c->mu);
	free(text);
	return rc;
}

/* ------------------------------------------------------------ watch */

/* One line of the watch stream: does it carry a DELETE event? */
static int line_has_delete(const char *line, size_t len)
{
	json_t *j = json_loadb(line, len, 0, NULL);
	json_t *events = json_object_get(json_object_get(j, "result"), "events");
	size_t i;
	json_t *ev;
	int found = 0;

	json_array_foreach(events, i, ev) {
		const char *type = json_string_value(json_object_get(ev, "type"));
		if (type && strcmp(type, "DELETE") == 0)
			found = 1;
	}
	json_decref(j);
	return found;
}

static void on_chunk(struct evhttp_request *req, void *arg)
{
	struct call *k = arg;
	char *line;
	size_t len;

	evbuffer_add_buffer(k->in, evhttp_request_get_input_buffer(req));
	while (!k->deleted && (line = evbuffer_readln(k->in, &len, EVBUFFER_EOL_LF))) {
		k->deleted = line_has_delete(line, len);
		free(line);
	}
	if (k->deleted)
		event_base_loopbreak(k->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct call *k = arg;

	(void)fd;
	(void)what;
	k->rc = -ETIMEDOUT;
	event_base_loopbreak(k->base);
}

static json_t *watch_body(const void *key, size_t key_len, int64_t after_rev)
{
	char rev[24];

	snprintf(rev, sizeof(rev), "%lld", (long long)after_rev + 1);
	return json_pack("{s:{s:o,s:s}}", "create_request", "key", etcd_b64(key, key_len),
			 "start_revision", rev);
}

/* Run one watch on its own connection until a DELETE, the deadline, or an error. */
static int watch_locked(struct etcd_client *c, const char *text, uint32_t timeout_ms)
{
	struct call k = { .base = c->base, .in = evbuffer_new(), .watching = 1 };
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct evhttp_connection *conn = conn_new(c, timeout_ms + 1000);
	struct event *deadline = evtimer_new(c->base, on_deadline, &k);
	int rc = -ENOMEM;

	if (!k.in || !conn || !deadline || !(k.req = req_new(c, &k, text, strlen(text))))
		goto out;
	evhttp_request_set_chunked_cb(k.req, on_chunk);
	if (evhttp_make_request(conn, k.req, EVHTTP_REQ_POST, "/v3/watch")) {
		rc = -ECONNREFUSED;
		goto out;
	}
	evtimer_add(deadline, &tv);
	while (!k.done && !k.deleted && !k.rc)
		event_base_loop(c->base, EVLOOP_ONCE);
	rc = k.deleted ? 0 : k.rc ? k.rc : -ECONNREFUSED;
	if (!k.done)
		evhttp_cancel_request(k.req);
out:
	if (deadline)
		event_free(deadline);
	if (conn)
		evhttp_connection_free(conn);
	if (k.in)
		evbuffer_free(k.in);
	return rc;
}

int etcd_watch_delete(struct etcd_client *c, const void *key, size_t key_len,
		      int64_t after_rev, uint32_t timeout_ms)
{
	char *text;
	json_t *body = watch_body(key, key_len, after_rev);
	int rc;

	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	rc = watch_locked(c, text, timeout_ms);
	if (rc == -ECONNREFUSED)
		next_endpoint(c, rc, "/v3/watch");
	pthread_mutex_unlock(&c->mu);
	free(text);
	return rc;
}

/* ------------------------------------------------------------ JSON pieces */

json_t *etcd_b64(const void *p, size_t len)
{
	size_t room = 4 * ((len + 2) / 3) + 1;
	char *buf = malloc(room);
	json_t *s;

	if (!buf)
		return NULL;
	EVP_EncodeBlock((unsigned char *)buf, p, (int)len);
	s = json_string(buf);
	free(buf);
	return s;
}

int etcd_unb64(const json_t *s, unsigned char **out, size_t *len)
{
	const char *text = json_string_value(s);
	size_t n = text ? strlen(text) : 0;
	unsigned char *buf;
	int got;

	if (!text || n % 4)
		return -EPROTO;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	got = n ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)n) : 0;
	if (got < 0) {
		free(buf);
		return -EPROTO;
	}
	for (size_t i = n; i > 0 && text[i - 1] == '='; i--)
		got--; /* EVP_DecodeBlock counts the padding as bytes */
	buf[got] = '\0';
	*out = buf;
	*len = (size_t)got;
	return 0;
}

int64_t etcd_int(const json_t *obj, const char *field)
{
	const json_t *v = json_object_get(obj, field);

	if (json_is_integer(v))
		return json_integer_value(v);
	return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
}

json_t *etcd_op_put(const void *k, size_t klen, const void *v, size_t vlen, int64_t lease)
{
	char id[24];

	snprintf(id, sizeof(id), "%lld", (long long)lease);
	return json_pack("{s:{s:o,s:o,s:s}}", "request_put", "key", etcd_b64(k, klen), "value",
			 etcd_b64(v, vlen), "lease", id);
}

json_t *etcd_op_del(const void *k, size_t klen)
{
	return json_pack("{s:{s:o}}", "request_delete_range", "key", etcd_b64(k, klen));
}

json_t *etcd_range_req(const void *k, size_t klen, const void *end, size_t endlen,
		       int64_t limit)
{
	json_t *r = json_pack("{s:o,s:I}", "key", etcd_b64(k, klen), "limit", (json_int_t)limit);

	if (r && end && json_object_set_new(r, "range_end", etcd_b64(end, endlen))) {
		json_decref(r);
		return NULL;
	}
	return r;
}

json_t *etcd_op_range(const void *k, size_t klen, const void *end, size_t endlen,
		      int64_t limit)
{
	json_t *r = etcd_range_req(k, klen, end, endlen, limit);

	return r ? json_pack("{s:o}", "request_range", r) : NULL;
}

size_t etcd_prefix_end(const char *prefix, size_t len, char *out)
{
	memcpy(out, prefix, len);
	while (len > 0 && (unsigned char)out[len - 1] == 0xff)
		len--;
	if (len > 0)
		out[len - 1] = (char)((unsigned char)out[len - 1] + 1);
	return len;
}
