/*
 * admin.c - the coordinator's admin HTTP API (docs/admin-api.md): evhttp on the server's
 * own event_base, routing, bearer-token authentication, the read-only JSON views
 * (status, transactions, participants, faults), /metrics, /livez, /readyz, and the
 * periodic stuck scan; HTTPS (the protocol port's TLS context) when TLS is on.
 * The one place HTTP and the API's JSON are spoken: operator decisions and retry
 * (heuristic.c) and forgetting a participant name's binding (admin_forget.c) take
 * parsed arguments and hand back a struct admin_result, which answer() words.
 *
 * Owns struct coord_admin (admin_int.h). Invariants:
 *   - everything runs on the loop thread, between the RPC callbacks, so every view is a
 *     consistent snapshot of the server;
 *   - secure by default (docs/security.md): with a token file, every request but /livez
 *     and /readyz needs the bearer token (compared in constant time), reads included;
 *     without one the API serves only on a loopback address (a non-loopback --admin
 *     without --admin-token-file is refused at start and on reload);
 *   - a list view never walks more than one page (at most MAX_PAGE entries, resumed from
 *     a cursor), so no request holds the 2PC loop for long;
 *   - every error is a 4xx/5xx with a JSON {"error": ...} body; nothing a request
 *     carries is trusted (txids, durations and limits are parsed strictly).
 */
#include "admin_int.h"
#include "errname.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#define MAX_BODY 65536
#define MAX_HEADERS 16384
#define HTTP_TIMEOUT_S 30
#define MAX_TOKEN 4096
#define DEFAULT_LIST_LIMIT ADMIN_MAX_PAGE
#define DEFAULT_AUDIT_LIMIT 100

/* ------------------------------------------------------------------ replies */

static void admin_reply_json(struct evhttp_request *req, int code, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct evbuffer *buf = evbuffer_new();

	json_decref(body);
	if (!text || !buf) {
		evhttp_send_error(req, 500, "out of memory");
		goto out_free;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add(buf, text, strlen(text));
	evbuffer_add(buf, "\n", 1);
	evhttp_send_reply(req, code, NULL, buf);
out_free:
	if (buf)
		evbuffer_free(buf);
	free(text);
}

static __attribute__((format(printf, 4, 5))) void
admin_reply_error(struct evhttp_request *req, int code, json_t *extra, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *body = extra ? extra : json_object();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (body)
		json_object_set_new(body, "error", json_string(msg));
	admin_reply_json(req, code, body);
}

static void reply_text(struct evhttp_request *req, int code, const char *type, const char *text)
{
	struct evbuffer *buf = evbuffer_new();

	if (!buf) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evbuffer_add(buf, text, strlen(text));
	evhttp_send_reply(req, code, NULL, buf);
	evbuffer_free(buf);
}

static json_t *admin_txid_json(uint64_t txid)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, txid);
	return json_string(buf);
}

static json_t *time_json(uint64_t wall_ms)
{
	char buf[40];

	if (!wall_ms)
		return json_null();
	tpc_format_wall_ms(wall_ms, buf, sizeof(buf));
	return json_string(buf);
}

static void admin_peer_addr(struct evhttp_request *req, char *buf, size_t len)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *host = NULL;
	ev_uint16_t port = 0;

	if (evcon)
		evhttp_connection_get_peer(evcon, &host, &port);
	snprintf(buf, len, "%s:%u", host ? host : "?", (unsigned)port);
}

/* The HTTP status of an operator call's result. */
static int http_status(enum admin_code code)
{
	static const int status[] = { [ADMIN_OK] = 200, [ADMIN_BAD_REQUEST] = 400,
				      [ADMIN_NOT_FOUND] = 404, [ADMIN_CONFLICT] = 409,
				      [ADMIN_FAILED] = 500, [ADMIN_UNAVAILABLE] = 503 };

	return (unsigned)code < sizeof(status) / sizeof(status[0]) ? status[code] : 500;
}

static json_t *names_json(const char *const *names, uint8_t n)
{
	json_t *arr = json_array();

	for (uint8_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, json_string(names[i]));
	return arr;
}

static void set_str(json_t *o, const char *key, const char *v)
{
	if (v)
		json_object_set_new(o, key, json_string(v));
}

/* An operator call's result as the API's JSON: only the fields it has. */
static json_t *result_json(const struct admin_result *r)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (r->txid)
		json_object_set_new(o, "txid", admin_txid_json(r->txid));
	set_str(o, "participant", r->participant);
	set_str(o, "status", r->status);
	set_str(o, "state", r->state);
	set_str(o, "decision", r->decision);
	set_str(o, "overrode", r->overrode);
	set_str(o, "forgotten_participant_id", r->forgotten_id);
	if (r->audit_id)
		json_object_set_new(o, "audit_id", json_integer((json_int_t)r->audit_id));
	set_str(o, "already", r->already);
	if (r->resent) {
		json_object_set_new(o, "resent_to", names_json(r->resent_to, r->n_resent_to));
		json_object_set_new(o, "not_connected",
				    names_json(r->not_connected, r->n_not_connected));
	}
	return o;
}

/* admin_answer_fn: @p arg is the evhttp request. */
static void answer(void *arg, const struct admin_result *r)
{
	struct evhttp_request *req = arg;

	if (r->code == ADMIN_OK)
		admin_reply_json(req, 200, result_json(r));
	else
		admin_reply_error(req, http_status(r->code), result_json(r), "%s", r->why);
}

/* ------------------------------------------------------------------ parsing */

/* A txid: decimal digits only, non-zero, fits in 64 bits. */
static int parse_txid(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (v == 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A positive decimal; more than one page asks for one page (ADMIN_MAX_PAGE). */
static int parse_limit(const char *s, uint32_t *out)
{
	uint64_t v;

	if (parse_txid(s, strlen(s), &v))
		return -EINVAL;
	*out = v > ADMIN_MAX_PAGE ? ADMIN_MAX_PAGE : (uint32_t)v;
	return 0;
}

/* Query parameter @p name as a cursor (a positive decimal) into *out; absent: *out
 * untouched. 400 (replied) when bad. */
static int parse_cursor(struct evhttp_request *req, struct evkeyvalq *q, const char *name,
			uint64_t *out)
{
	const char *v = evhttp_find_header(q, name);

	if (!v || parse_txid(v, strlen(v), out) == 0)
		return 0;
	admin_reply_error(req, 400, NULL, "bad %s '%s' (the \"next\" of the previous page)", name,
			  v);
	return -EINVAL;
}

/* Parse the query; 400 (replied) for a parameter not in @p allowed (NULL-terminated). */
static int parse_query(struct evhttp_request *req, struct evkeyvalq *q,
		       const char *const *allowed)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyval *kv;

	TAILQ_INIT(q);
	if (query && evhttp_parse_query_str(query, q) < 0) {
		admin_reply_error(req, 400, NULL, "malformed query string");
		return -EINVAL;
	}
	TAILQ_FOREACH(kv, q, next) {
		int ok = 0;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = strcmp(kv->key, *a) == 0;
		if (!ok) {
			admin_reply_error(req, 400, NULL, "unknown query parameter '%s'", kv->key);
			evhttp_clear_headers(q);
			return -EINVAL;
		}
	}
	return 0;
}

/* The request body as JSON: NULL with *bad = 0 when empty; a 400 (replied) when bad. */
static json_t *read_body(struct evhttp_request *req, int *bad)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t err;
	json_t *body;

	*bad = 0;
	if (len == 0)
		return NULL;
	body = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, 0, &err);
	if (!body || !json_is_object(body)) {
		admin_reply_error(req, 400, NULL, "the body must be a JSON object%s%s",
				  body ? "" : ": ", body ? "" : err.text);
		json_decref(body);
		*bad = 1;
		return NULL;
	}
	return body;
}

#define MAX_REASON 1024
#define MAX_OPERATOR 128

/* An operator call's body: reason (required), operator (optional) and, where
 * @p with_force, force; a 400 (replied) when bad. Strings point into @p body. */
static int parse_operator_body(struct evhttp_request *req, json_t *body, int with_force,
			       struct admin_args *args)
{
	const char *key;
	json_t *v;

	memset(args, 0, sizeof(*args));
	json_object_foreach(body, key, v) {
		if (strcmp(key, "reason") == 0 && json_is_string(v) && json_string_length(v) &&
		    json_string_length(v) <= MAX_REASON)
			args->reason = json_string_value(v);
		else if (with_force && strcmp(key, "force") == 0 && json_is_boolean(v))
			args->force = json_is_true(v);
		else if (strcmp(key, "operator") == 0 && json_is_string(v) &&
			 json_string_length(v) <= MAX_OPERATOR)
			args->operator = json_string_value(v);
		else if (strcmp(key, "operator") != 0 || !json_is_null(v)) {
			admin_reply_error(req, 400, NULL, "bad field \"%s\" (reason: a string of 1 to "
					  "%d bytes,%s operator: a string)", key, MAX_REASON,
					  with_force ? " force: a boolean," : "");
			return -EINVAL;
		}
	}
	if (!args->reason) {
		admin_reply_error(req, 400, NULL, "the body needs {\"reason\": \"...\"}");
		return -EINVAL;
	}
	admin_peer_addr(req, args->from, sizeof(args->from));
	return 0;
}

/* ------------------------------------------------------------ authentication */

/* Constant time in the token's length: no early exit on the first differing byte. */
static int token_matches(const struct coord_admin *a, const char *given, size_t len)
{
	volatile unsigned char diff = len != a->token_len;

	for (size_t i = 0; i < a->token_len; i++)
		diff |= (unsigned char)a->token[i] ^ (unsigned char)(i < len ? given[i] : 0);
	return diff == 0;
}

/* 0: may be served; otherwise the refusal was replied. Without a token only a loopback
 * address serves (a non-loopback one without a token is refused at start). */
static int check_auth(struct coord_admin *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	if (!a->token) {
		if (a->loopback)
			return 0;
		admin_reply_error(req, 403, NULL, "the admin address is not a loopback address and "
				  "no --admin-token-file is in use: nothing is served");
		return -EACCES;
	}
	if (h && strncasecmp(h, "Bearer ", 7) == 0 && token_matches(a, h + 7, strlen(h + 7)))
		return 0;
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			  "Bearer realm=\"tpc-coordinator\"");
	admin_reply_error(req, 401, NULL, h ? "wrong bearer token"
					    : "this call needs an Authorization: Bearer token");
	return -EACCES;
}

/* ------------------------------------------------------------ transactions */

static const char *txn_error_text(struct coord_server *s, const struct coord_txn *t, char *buf,
				  size_t len)
{
	struct peer *p = coord_peer(s, t->err_peer);
	const char *name = p ? p->name : "?";

	switch (t->err_kind) {
	case TXN_ERR_PREPARE_NOT_SENT:
		snprintf(buf, len, "participant %s not connected (Prepare not sent)", name);
		return buf;
	case TXN_ERR_DECISION_NOT_SENT:
		snprintf(buf, len, "participant %s not connected (decision not sent)", name);
		return buf;
	case TXN_ERR_PEER_LOST:
		snprintf(buf, len, "participant %s not connected (disconnected before "
			 "acknowledging)", name);
		return buf;
	case TXN_ERR_LOG_FAILED:
		snprintf(buf, len, "the COMMIT record write failed (%s); the coordinator retries it",
			 tpc_errname(t->err_status));
		return buf;
	default:
		return NULL;
	}
}

static json_t *parts_json(struct coord_server *s, const struct coord_txn *t)
{
	json_t *arr = json_array();

	for (uint8_t i = 0; arr && i < t->nparts; i++) {
		struct peer *p = coord_peer(s, t->parts[i].peer);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:b}", "name", p ? p->name : "?",
						     "state",
						     coord_part_state_str(t->parts[i].state),
						     "connected",
						     p && coord_conn_get(s, p->conn) != NULL));
	}
	return arr;
}

static json_t *ms_or_null(int have, uint64_t now, uint64_t then)
{
	if (!have)
		return json_null();
	return json_integer(now > then ? (json_int_t)(now - then) : 0);
}

static json_t *txn_json(struct coord_server *s, const struct coord_txn *t, uint64_t now)
{
	char err[192];
	const char *e = txn_error_text(s, t, err, sizeof(err));
	int retrying = (t->state == TXN_LOGGING || t->state == TXN_COMMITTING) && t->retry_at_ms;
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "txid", admin_txid_json(t->txid));
	json_object_set_new(o, "state", json_string(coord_txn_state_str(t->state)));
	json_object_set_new(o, "age_ms", ms_or_null(1, now, t->begun_ms));
	json_object_set_new(o, "decided_ms", ms_or_null(t->decided_ms != 0, now, t->decided_ms));
	json_object_set_new(o, "key", t->key ? json_string(t->key) : json_null());
	json_object_set_new(o, "attempts", json_integer(t->attempts));
	json_object_set_new(o, "next_retry_ms", !retrying ? json_null()
				: json_integer(t->retry_at_ms > now ? (json_int_t)(t->retry_at_ms - now) : 0));
	json_object_set_new(o, "stuck", json_boolean(coord_txn_stuck(s, t, now)));
	json_object_set_new(o, "last_error", e ? json_string(e) : json_null());
	json_object_set_new(o, "participants", parts_json(s, t));
	return o;
}

static int state_filter(const char *v)
{
	if (!v)
		return -1;
	if (strcasecmp(v, "stuck") == 0)
		return TXN_NSTATES; /* stands for "stuck" */
	for (int st = TXN_ACTIVE; st <= TXN_COMMITTING; st++)
		if (strcasecmp(v, coord_txn_state_str((enum coord_txn_state)st)) == 0)
			return st;
	return -2;
}

struct txn_filter {
	int state;             /* -1: any; TXN_NSTATES: stuck */
	uint64_t older_than_ms;
	uint32_t limit;
	uint64_t after;        /* cursor: txids above this one (0: from the first) */
};

static int txn_matches(struct coord_server *s, const struct coord_txn *t,
		       const struct txn_filter *f, uint64_t now)
{
	if (t->state > TXN_COMMITTING)
		return 0;
	if (f->state == TXN_NSTATES && !coord_txn_stuck(s, t, now))
		return 0;
	if (f->state >= 0 && f->state < TXN_NSTATES && t->state != f->state)
		return 0;
	return f->older_than_ms == 0 || now - t->begun_ms > f->older_than_ms;
}

/* Txids are allocated in increasing order (epoch, then sequence): oldest first. */
static int cmp_txid(const void *arg, uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int parse_txn_filter(struct evhttp_request *req, struct evkeyvalq *q,
			    struct txn_filter *f)
{
	const char *st = evhttp_find_header(q, "state");
	const char *older = evhttp_find_header(q, "older-than");
	const char *limit = evhttp_find_header(q, "limit");

	f->state = state_filter(st);
	f->older_than_ms = 0;
	f->limit = DEFAULT_LIST_LIMIT;
	f->after = 0;
	if (f->state == -2) {
		admin_reply_error(req, 400, NULL, "unknown state '%s' (ACTIVE, PREPARING, LOGGING, "
				  "COMMITTING or stuck)", st);
		return -EINVAL;
	}
	if (older && tpc_parse_duration_ms(older, &f->older_than_ms)) {
		admin_reply_error(req, 400, NULL, "bad older-than '%s' (a duration: 500ms, 30s, 5m)",
				  older);
		return -EINVAL;
	}
	if (limit && parse_limit(limit, &f->limit)) {
		admin_reply_error(req, 400, NULL, "bad limit '%s' (a positive number; at most %d "
				  "are listed per page)", limit, ADMIN_MAX_PAGE);
		return -EINVAL;
	}
	return parse_cursor(req, q, "after", &f->after);
}

/*
 * One page: the smallest txids above the cursor, picked from the table's keys alone (no
 * transaction is touched), then looked up and filtered; so a page builds at most
 * `limit` entries however many are open. With a filter a page may hold fewer (even none)
 * while "next" says more follow.
 */
static void get_transactions(struct coord_admin *a, struct evhttp_request *req)
{
	static const char *const allowed[] = { "state", "older-than", "limit", "after", NULL };
	struct coord_server *s = a->srv;
	struct evkeyvalq q;
	struct txn_filter f;
	struct admin_page pg;
	uint64_t now = tpc_now_ms();

	if (parse_query(req, &q, allowed))
		return;
	int bad = parse_txn_filter(req, &q, &f);
	evhttp_clear_headers(&q);
	if (bad)
		return;
	json_t *arr = json_array();
	if (!arr || admin_page_init(&pg, f.limit, cmp_txid, NULL)) {
		json_decref(arr);
		admin_reply_error(req, 500, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < s->txns.cap; i++)
		if (s->txns.slots[i].key > f.after && s->txns.slots[i].val)
			admin_page_offer(&pg, s->txns.slots[i].key);
	admin_page_sort(&pg);
	for (size_t i = 0; i < pg.n; i++) {
		const struct coord_txn *t = u64map_get(&s->txns, pg.v[i]);
		if (t && txn_matches(s, t, &f, now))
			json_array_append_new(arr, txn_json(s, t, now));
	}
	json_t *o = json_pack("{s:o, s:I}", "transactions", arr, "open", (json_int_t)s->txns.n);
	if (o && pg.more)
		json_object_set_new(o, "next", admin_txid_json(pg.v[pg.n - 1]));
	admin_page_free(&pg);
	admin_reply_json(req, o ? 200 : 500, o);
}

/* 404 for a transaction that aborted lately: why (aborts.h), with the NO voter. */
static void aborted_reply(struct evhttp_request *req, const struct coord_abort_rec *ab)
{
	json_t *o = json_pack("{s:o, s:s, s:s, s:o, s:o}", "txid", admin_txid_json(ab->txid),
			      "status", "ABORTED", "reason", ab->reason ? ab->reason : "",
			      "abort_participant",
			      ab->participant ? json_string(ab->participant) : json_null(),
			      "abort_reason", ab->detail ? json_string(ab->detail) : json_null());

	admin_reply_error(req, 404, o, "no open transaction %" PRIu64 " (it aborted: %s)",
			  ab->txid, ab->reason ? ab->reason : "?");
}

static void get_transaction(struct coord_admin *a, struct evhttp_request *req, uint64_t txid)
{
	struct coord_server *s = a->srv;
	const struct coord_txn *t = u64map_get(&s->txns, txid);
	const char *st;

	if (t) {
		admin_reply_json(req, 200, txn_json(s, t, tpc_now_ms()));
		return;
	}
	st = heuristic_logged_status(s, txid);
	if (!st) {
		admin_reply_error(req, 503, NULL, "cannot read the decision log; ask again");
		return;
	}
	const struct coord_abort_rec *ab = st[0] == 'A' ? coord_aborts_get(s->aborts, txid) : NULL;
	if (ab) {
		aborted_reply(req, ab);
		return;
	}
	admin_reply_error(req, 404, json_pack("{s:o, s:s}", "txid", admin_txid_json(txid), "status",
					      st),
			  "no open transaction %" PRIu64 " (%s)", txid,
			  st[0] == 'C'   ? "it committed and every participant acknowledged it"
			  : st[0] == 'F' ? "forgotten: its outcome is older than the outcome "
					   "retention"
					 : "unknown or aborted: presumed abort");
}

/* ------------------------------------------------------------ status, participants */

static json_t *log_json(struct coord_server *s, const struct coord_metrics_view *v)
{
	uint64_t decisions = 0, keys = 0, bytes = 0;
	struct bw_stats bw;

	s->store.ops->stats(s->store.self, &decisions, &keys, &bytes);
	batch_writer_stats(s->writer, &bw);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "decisions", (json_int_t)decisions,
			 "keys", (json_int_t)keys, "map_bytes", (json_int_t)bytes, "batches",
			 (json_int_t)bw.batches, "records", (json_int_t)bw.items, "log_failures",
			 (json_int_t)v->log_failures);
}

/* Where the log lives and, with --log etcd, this coordinator's place in its group. */
static void set_ha_fields(struct coord_server *s, json_t *o)
{
	int etcd = s->cfg.log_kind && strcmp(s->cfg.log_kind, "etcd") == 0;
	char leader[256];

	json_object_set_new(o, "log_backend", json_string(etcd ? "etcd" : "lmdb"));
	if (!etcd) {
		json_object_set_new(o, "role", json_string("single"));
		return;
	}
	json_object_set_new(o, "group", json_string(s->cfg.group ? s->cfg.group : ""));
	json_object_set_new(o, "role", json_string(s->standby ? "standby" : "leader"));
	json_object_set_new(o, "advertise", json_string(s->cfg.advertise ? s->cfg.advertise
								       : s->cfg.listen));
	if (!s->standby)
		snprintf(leader, sizeof(leader), "%s", s->cfg.advertise ? s->cfg.advertise
									: s->cfg.listen);
	else
		coord_ha_leader(s, leader, sizeof(leader));
	json_object_set_new(o, "leader", *leader ? json_string(leader) : json_null());
}

static void get_status(struct coord_admin *a, struct evhttp_request *req)
{
	struct coord_server *s = a->srv;
	struct coord_metrics_view v;
	uint64_t now = tpc_now_ms();

	coord_metrics_snapshot(s, now, &v);
	json_t *by_state = json_pack("{s:I, s:I, s:I, s:I}",
				     "ACTIVE", (json_int_t)v.open[COORD_OPEN_ACTIVE],
				     "PREPARING", (json_int_t)v.open[COORD_OPEN_PREPARING],
				     "LOGGING", (json_int_t)v.open[COORD_OPEN_LOGGING],
				     "COMMITTING", (json_int_t)v.open[COORD_OPEN_COMMITTING]);
	json_t *o = json_pack("{s:I, s:I, s:o, s:I, s:b, s:s, s:I, s:o, s:I, s:I, s:I, s:I}",
			      "coordinator_id", (json_int_t)s->id, "epoch", (json_int_t)s->epoch,
			      "started_at", time_json(s->started_wall_ms),
			      "uptime_ms", (json_int_t)(now - s->started_ms), "ready", s->ready,
			      "listen", s->cfg.listen, "open_transactions", (json_int_t)v.open_total,
			      "by_state", by_state, "in_doubt", (json_int_t)v.in_doubt,
			      "oldest_in_doubt_ms", (json_int_t)v.in_doubt_oldest_ms,
			      "stuck", (json_int_t)v.stuck,
			      "stuck_after_ms", (json_int_t)s->cfg.stuck_after_ms);
	if (o) {
		json_object_set_new(o, "participants",
				    json_pack("{s:I, s:I}", "known", (json_int_t)v.peers_known,
					      "connected", (json_int_t)v.peers_connected));
		json_object_set_new(o, "connections", json_integer(s->nconns));
		json_object_set_new(o, "committed", json_integer((json_int_t)v.committed));
		json_object_set_new(o, "aborted", json_integer((json_int_t)v.aborted));
		json_object_set_new(o, "unknown", json_integer((json_int_t)v.unknown));
		json_object_set_new(o, "log", log_json(s, &v));
		set_ha_fields(s, o);
	}
	admin_reply_json(req, o ? 200 : 500, o);
}

/* Per peer: COMMITTING transactions it has not acked. */
static uint64_t *outstanding_per_peer(struct coord_server *s)
{
	uint64_t *n = calloc(s->npeers ? s->npeers : 1, sizeof(*n));

	for (size_t i = 0; n && i < s->txns.cap; i++) {
		const struct coord_txn *t = s->txns.slots[i].key ? s->txns.slots[i].val : NULL;
		if (!t || t->state != TXN_COMMITTING)
			continue;
		for (uint8_t j = 0; j < t->nparts; j++)
			if (t->parts[j].state == PART_YES && t->parts[j].peer <= s->npeers)
				n[t->parts[j].peer - 1]++;
	}
	return n;
}

/* D8: the bound participant id (hex) and when it was bound, and the newest incarnation
 * seen since this coordinator started (null when none). */
static void add_identity_json(json_t *o, const struct peer *p)
{
	char hex[2 * COORD_PARTICIPANT_ID_LEN + 1];

	coord_participant_id_hex(p->pid, hex);
	json_object_set_new(o, "participant_id", p->bound == PEER_BOUND ? json_string(hex)
									 : json_null());
	json_object_set_new(o, "bound_at", p->bound == PEER_BOUND ? time_json(p->bound_wall_ms)
								  : json_null());
	json_object_set_new(o, "incarnation", p->incarnation
						       ? json_integer((json_int_t)p->incarnation)
						       : json_null());
}

/* Participants by name; @p arg is the server. */
static int cmp_peer_name(const void *arg, uint64_t x, uint64_t y)
{
	const struct coord_server *s = arg;

	return strcmp(s->peers[x].name, s->peers[y].name);
}

/* The participant's last OrphanReport; each age grown by the time since it came. */
static json_t *orphans_json(const struct peer *p, uint64_t wall)
{
	json_t *arr = json_array();
	uint64_t since = wall > p->orphans_wall_ms ? wall - p->orphans_wall_ms : 0;

	for (uint32_t i = 0; arr && i < p->norphans; i++) {
		const struct peer_orphan *o = &p->orphans[i];
		json_array_append_new(arr, json_pack("{s:I, s:s, s:I, s:I, s:s}", "txid",
						     (json_int_t)o->txid, "gid", o->gid, "age_ms",
						     (json_int_t)(o->age_ms + since), "locks",
						     (json_int_t)o->locks, "reason", o->reason));
	}
	return arr;
}

static json_t *participant_json(struct coord_server *s, const struct peer *p, uint64_t wall,
				uint64_t outstanding)
{
	json_t *o = json_pack(
		"{s:s, s:b, s:o, s:o, s:o, s:I, s:I}", "name", p->name, "connected",
		coord_conn_get(s, p->conn) != NULL, "address",
		p->addr[0] ? json_string(p->addr) : json_null(), "last_seen_at",
		time_json(p->last_seen_wall_ms), "last_seen_ms",
		ms_or_null(p->last_seen_wall_ms != 0, wall, p->last_seen_wall_ms), "connects",
		(json_int_t)p->connects, "decisions_outstanding", (json_int_t)outstanding);

	if (o) {
		add_identity_json(o, p);
		json_object_set_new(o, "orphans", orphans_json(p, wall));
		json_object_set_new(o, "orphans_reported_at", p->orphans_wall_ms
				    ? time_json(p->orphans_wall_ms) : json_null());
	}
	return o;
}

/* GET /v1/participants?limit=N&after=NAME: one page, by name. */
static void get_participants(struct coord_admin *a, struct evhttp_request *req)
{
	static const char *const allowed[] = { "limit", "after", NULL };
	struct coord_server *s = a->srv;
	struct evkeyvalq q;
	struct admin_page pg;
	uint32_t limit = ADMIN_MAX_PAGE;
	uint64_t wall = tpc_wall_ms();

	if (parse_query(req, &q, allowed))
		return;
	const char *l = evhttp_find_header(&q, "limit");
	const char *after = evhttp_find_header(&q, "after");
	if (l && parse_limit(l, &limit)) {
		admin_reply_error(req, 400, NULL, "bad limit '%s' (a positive number)", l);
		evhttp_clear_headers(&q);
		return;
	}
	uint64_t *outstanding = outstanding_per_peer(s);
	json_t *arr = json_array();
	if (!outstanding || !arr || admin_page_init(&pg, limit, cmp_peer_name, s)) {
		free(outstanding);
		json_decref(arr);
		evhttp_clear_headers(&q);
		admin_reply_error(req, 500, NULL, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < s->npeers; i++)
		if (s->peers[i].name && (!after || strcmp(s->peers[i].name, after) > 0))
			admin_page_offer(&pg, i);
	admin_page_sort(&pg);
	for (size_t i = 0; i < pg.n; i++)
		json_array_append_new(arr, participant_json(s, &s->peers[pg.v[i]], wall,
							    outstanding[pg.v[i]]));
	json_t *o = json_pack("{s:o}", "participants", arr);
	if (o && pg.more)
		json_object_set_new(o, "next", json_string(s->peers[pg.v[pg.n - 1]].name));
	evhttp_clear_headers(&q);
	free(outstanding);
	admin_page_free(&pg);
	admin_reply_json(req, o ? 200 : 500, o);
}

/* ------------------------------------------------------------ metrics, faults */

static void get_metrics(struct coord_admin *a, struct evhttp_request *req)
{
	struct coord_metrics_view v;
	struct evbuffer *buf = evbuffer_new();

	coord_metrics_snapshot(a->srv, tpc_now_ms(), &v);
	if (!buf || coord_metrics_render(&v, buf)) {
		if (buf)
			evbuffer_free(buf);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, NULL, buf);
	evbuffer_free(buf);
}

/* "crash@3", "fail%20", "delay:50", or NULL when the point is not armed. */
static const char *fault_action(const struct tpc_fault *pt, char *buf, size_t len)
{
	const char *verb = pt->action == TPC_FA_CRASH ? "crash" : "fail";

	if (pt->action == TPC_FA_NONE)
		return NULL;
	if (pt->action == TPC_FA_DELAY)
		snprintf(buf, len, "delay:%u", pt->delay_ms);
	else if (pt->nth)
		snprintf(buf, len, "%s@%u", verb, pt->nth);
	else if (pt->prob_pct && pt->prob_pct < 100)
		snprintf(buf, len, "%s%%%u", verb, pt->prob_pct);
	else
		snprintf(buf, len, "%s", verb);
	return buf;
}

static json_t *faults_json(struct tpc_faults *f)
{
	json_t *arr = json_array();
	char act[48];

	pthread_mutex_lock(&f->mu);
	for (int i = 0; arr && i < TPC_FP_COUNT; i++) {
		const char *a = fault_action(&f->pt[i], act, sizeof(act));
		json_array_append_new(arr, json_pack("{s:s, s:o, s:I, s:I}", "point",
						     tpc_fault_name((enum tpc_fault_point)i),
						     "action", a ? json_string(a) : json_null(),
						     "hits", (json_int_t)f->pt[i].hits, "fired",
						     (json_int_t)f->pt[i].fired));
	}
	int armed = f->armed;
	pthread_mutex_unlock(&f->mu);
	return json_pack("{s:b, s:o}", "armed", armed, "faults", arr);
}

static void post_faults(struct coord_admin *a, struct evhttp_request *req)
{
	struct coord_server *s = a->srv;
	char err[192] = "", peer[80];
	int bad;
	json_t *body = read_body(req, &bad);
	json_t *spec = body ? json_object_get(body, "spec") : NULL;

	if (bad)
		return;
	if (!json_is_string(spec)) {
		json_decref(body);
		admin_reply_error(req, 400, NULL, "the body needs \"spec\": a string (\"\" disarms)");
		return;
	}
	const char *v = json_string_value(spec);
	if (!v[0])
		tpc_faults_clear(&s->faults);
	else if (tpc_faults_arm(&s->faults, v, err, sizeof(err))) {
		admin_reply_error(req, 400, NULL, "%s", err[0] ? err : "bad fault spec");
		json_decref(body);
		return;
	}
	admin_peer_addr(req, peer, sizeof(peer));
	tpc_logf(&s->log, TPC_LOG_WARN, "fault injection %s at run time by %s%s%s",
		 v[0] ? "armed" : "disarmed", peer, v[0] ? ": " : "", v);
	json_decref(body);
	admin_reply_json(req, 200, faults_json(&s->faults));
}

/* ------------------------------------------------------------ routing */

enum route_kind { R_NONE, R_LIVEZ, R_READYZ, R_METRICS, R_STATUS, R_TXNS, R_TXN, R_RETRY,
		  R_COMMIT, R_ABORT, R_PARTICIPANTS, R_AUDIT, R_FAULTS, R_FORGET };

struct route {
	enum route_kind kind;
	uint64_t txid;
	int bad_txid;
	char name[4 * COORD_MAX_PART_NAME]; /* R_FORGET: the name, still URL-encoded */
};

static const struct {
	const char *path;
	enum route_kind kind;
} fixed_routes[] = {
	{ "/livez", R_LIVEZ },		 { "/readyz", R_READYZ },
	{ "/metrics", R_METRICS },	 { "/v1/status", R_STATUS },
	{ "/v1/transactions", R_TXNS },	 { "/v1/participants", R_PARTICIPANTS },
	{ "/v1/audit", R_AUDIT },	 { "/v1/faults", R_FAULTS },
};

/* "/v1/transactions/{txid}[/retry|/commit|/abort]" */
static void route_txn(const char *rest, struct route *r)
{
	const char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);

	r->kind = R_TXN;
	if (slash && strcmp(slash, "/retry") == 0)
		r->kind = R_RETRY;
	else if (slash && strcmp(slash, "/commit") == 0)
		r->kind = R_COMMIT;
	else if (slash && strcmp(slash, "/abort") == 0)
		r->kind = R_ABORT;
	else if (slash) {
		r->kind = R_NONE;
		return;
	}
	r->bad_txid = parse_txid(rest, len, &r->txid) != 0;
}

/* "/v1/participants/{name}/forget" */
static void route_participant(const char *rest, struct route *r)
{
	static const char suffix[] = "/forget";
	size_t len = strlen(rest), slen = sizeof(suffix) - 1;

	if (len <= slen || len - slen >= sizeof(r->name) || strcmp(rest + len - slen, suffix) ||
	    memchr(rest, '/', len - slen))
		return;
	memcpy(r->name, rest, len - slen);
	r->name[len - slen] = '\0';
	r->kind = R_FORGET;
}

static struct route route_of(const char *path)
{
	static const char txn_prefix[] = "/v1/transactions/";
	static const char part_prefix[] = "/v1/participants/";
	struct route r = { R_NONE, 0, 0, "" };

	for (size_t i = 0; i < sizeof(fixed_routes) / sizeof(fixed_routes[0]); i++)
		if (strcmp(path, fixed_routes[i].path) == 0)
			r.kind = fixed_routes[i].kind;
	if (r.kind == R_NONE && strncmp(path, txn_prefix, sizeof(txn_prefix) - 1) == 0)
		route_txn(path + sizeof(txn_prefix) - 1, &r);
	if (r.kind == R_NONE && strncmp(path, part_prefix, sizeof(part_prefix) - 1) == 0)
		route_participant(path + sizeof(part_prefix) - 1, &r);
	return r;
}

static int route_method_ok(const struct route *r, enum evhttp_cmd_type cmd)
{
	switch (r->kind) {
	case R_RETRY:
	case R_COMMIT:
	case R_ABORT:
	case R_FORGET: return cmd == EVHTTP_REQ_POST;
	case R_FAULTS: return cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_POST;
	default: return cmd == EVHTTP_REQ_GET;
	}
}

struct audit_page {
	json_t *arr;
	uint32_t limit;
	uint64_t last_id;           /* id of the last entry kept */
	int more;                   /* one more entry than the page exists */
};

static int add_audit_entry(void *arg, uint64_t id, const char *text, size_t len)
{
	struct audit_page *pg = arg;
	json_t *e;

	if (json_array_size(pg->arr) == pg->limit) {
		pg->more = 1; /* the look-ahead entry: not listed */
		return 0;
	}
	e = json_loadb(text, len, 0, NULL);
	if (!e)
		e = json_pack("{s:I, s:s}", "id", (json_int_t)id, "error", "undecodable entry");
	pg->last_id = id;
	return json_array_append_new(pg->arr, e) ? -ENOMEM : 0;
}

/* At most @p limit entries with id < @p before (0: from the newest), newest first, and
 * "next" when more follow. */
static void audit_list(struct coord_admin *a, struct evhttp_request *req, uint32_t limit,
		       uint64_t before)
{
	struct coord_server *s = a->srv;
	struct audit_page pg = { json_array(), limit, 0, 0 };
	/* One entry past the page says whether a next page exists. */
	int rc = pg.arr ? s->store.ops->audit_list(s->store.self, before, limit + 1,
						   add_audit_entry, &pg)
			: -ENOMEM;

	if (rc) {
		json_decref(pg.arr);
		admin_reply_error(req, 503, NULL, "cannot read the audit log (%d)", rc);
		return;
	}
	json_t *o = json_pack("{s:o}", "entries", pg.arr);
	if (o && pg.more)
		json_object_set_new(o, "next", json_integer((json_int_t)pg.last_id));
	admin_reply_json(req, 200, o);
}

static void get_audit(struct coord_admin *a, struct evhttp_request *req)
{
	static const char *const allowed[] = { "limit", "before", NULL };
	struct evkeyvalq q;
	uint32_t limit = DEFAULT_AUDIT_LIMIT;
	uint64_t before = 0;
	const char *l;
	int bad;

	if (parse_query(req, &q, allowed))
		return;
	l = evhttp_find_header(&q, "limit");
	bad = l && parse_limit(l, &limit);
	if (bad)
		admin_reply_error(req, 400, NULL, "bad limit '%s' (a positive number; at most %d "
				  "are listed per page)", l, ADMIN_MAX_PAGE);
	bad = bad || parse_cursor(req, &q, "before", &before);
	evhttp_clear_headers(&q);
	if (!bad)
		audit_list(a, req, limit, before);
}

static void post_retry(struct coord_admin *a, struct evhttp_request *req, uint64_t txid)
{
	struct admin_result r = { 0 };

	heuristic_retry(a, txid, &r);
	answer(req, &r);
}

/* POST .../commit, .../abort and /v1/participants/{name}/forget. */
static void post_operator_call(struct coord_admin *a, struct evhttp_request *req,
			       const struct route *r)
{
	int bad = 0;
	json_t *body = read_body(req, &bad);
	struct admin_args args;
	char *name = NULL;

	if (bad)
		return;
	if (!body) {
		admin_reply_error(req, 400, NULL, "the body needs {\"reason\": \"...\"}");
		return;
	}
	if (parse_operator_body(req, body, r->kind != R_FORGET, &args))
		goto out;
	if (r->kind != R_FORGET) {
		heuristic_decide(a, r->txid, r->kind == R_COMMIT ? DECIDE_COMMIT : DECIDE_ABORT,
				 &args, answer, req);
		goto out;
	}
	name = evhttp_uridecode(r->name, 0, NULL);
	if (!name)
		admin_reply_error(req, 500, NULL, "out of memory");
	else
		admin_forget_participant(a, name, &args, answer, req);
out:
	free(name);
	json_decref(body); /* the calls copied what they keep */
}

static void serve_get(struct coord_admin *a, struct evhttp_request *req, const struct route *r)
{
	/* Whatever a view calls stuck has been logged first: nothing stuck in silence. */
	coord_stuck_scan(a->srv, tpc_now_ms());
	switch (r->kind) {
	case R_LIVEZ: reply_text(req, 200, "text/plain", "ok\n"); return;
	case R_READYZ:
		reply_text(req, a->srv->ready ? 200 : 503, "text/plain",
			   a->srv->ready ? "ready\n" : "recovering\n");
		return;
	case R_METRICS: get_metrics(a, req); return;
	case R_STATUS: get_status(a, req); return;
	case R_TXNS: get_transactions(a, req); return;
	case R_TXN: get_transaction(a, req, r->txid); return;
	case R_PARTICIPANTS: get_participants(a, req); return;
	case R_FAULTS: admin_reply_json(req, 200, faults_json(&a->srv->faults)); return;
	case R_AUDIT: get_audit(a, req); return;
	default: admin_reply_error(req, 404, NULL, "no such route"); return;
	}
}

static void serve_post(struct coord_admin *a, struct evhttp_request *req, const struct route *r)
{
	if (!a->srv->ready || a->srv->stopping) {
		admin_reply_error(req, 503, NULL, "%s", a->srv->stopping ? "shutting down"
									 : "recovering");
		return;
	}
	switch (r->kind) {
	case R_FAULTS: post_faults(a, req); return;
	case R_RETRY: post_retry(a, req, r->txid); return;
	case R_COMMIT:
	case R_ABORT:
	case R_FORGET: post_operator_call(a, req, r); return;
	default: admin_reply_error(req, 404, NULL, "no such route"); return;
	}
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct coord_admin *a = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct route r = route_of(path ? path : "");

	/* Health probes say only "up" and "ready"; everything else needs the token. */
	if (r.kind != R_LIVEZ && r.kind != R_READYZ && check_auth(a, req))
		return;
	if (r.kind == R_NONE || (r.kind == R_FAULTS && !a->srv->cfg.allow_fault_injection)) {
		admin_reply_error(req, 404, NULL, "no such route: %s%s", path ? path : "",
				  r.kind == R_FAULTS ? " (start with --allow-fault-injection)" : "");
		return;
	}
	if (!route_method_ok(&r, cmd)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  r.kind == R_FAULTS ? "GET, POST" : route_method_ok(&r, EVHTTP_REQ_GET)
								     ? "GET" : "POST");
		admin_reply_error(req, 405, NULL, "method not allowed on %s", path);
		return;
	}
	if (r.bad_txid) {
		admin_reply_error(req, 400, NULL, "bad txid: expected a decimal number from 1 to "
				  "18446744073709551615");
		return;
	}
	if (cmd == EVHTTP_REQ_POST)
		serve_post(a, req, &r);
	else
		serve_get(a, req, &r);
}

/* ------------------------------------------------------------ start and stop */

static void on_stuck_timer(evutil_socket_t fd, short what, void *arg)
{
	struct coord_admin *a = arg;

	coord_stuck_scan(a->srv, tpc_now_ms());
}

/* Scan a few times per threshold, at most once a second, at least every 25 ms. */
static int arm_stuck_watch(struct coord_admin *a)
{
	uint64_t every = a->srv->cfg.stuck_after_ms / 4;
	struct timeval tv;

	every = every < 25 ? 25 : every > 1000 ? 1000 : every;
	tv = tpc_ms_tv(every);
	if (!a->stuck_ev)
		a->stuck_ev = event_new(a->srv->base, -1, EV_PERSIST, on_stuck_timer, a);
	if (!a->stuck_ev || event_add(a->stuck_ev, &tv))
		return -ENOMEM;
	return 0;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	size_t i = 0;

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, n - i + 1);
}

/* The token file's first line, trimmed, into *token (owned) and *len. */
static int read_token(struct coord_admin *a, const char *path, char **token, size_t *len)
{
	struct tpc_logger *lg = &a->srv->log;
	char *line = calloc(1, MAX_TOKEN + 2);
	FILE *f = fopen(path, "re");
	struct stat st;
	int rc = -EINVAL;

	if (!line || !f) {
		tpc_logf(lg, TPC_LOG_ERROR, "--admin-token-file %s: %s", path,
			 f ? "out of memory" : strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		tpc_logf(lg, TPC_LOG_WARN, "--admin-token-file %s is readable by others (chmod 600)",
			 path);
	if (!fgets(line, MAX_TOKEN + 2, f) || (trim(line), !line[0])) {
		tpc_logf(lg, TPC_LOG_ERROR, "--admin-token-file %s: the first line holds no token",
			 path);
		goto out;
	}
	*len = strlen(line);
	*token = line;
	line = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	free(line);
	return rc;
}

static void setup_http(struct coord_admin *a)
{
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(a->http, MAX_BODY);
	evhttp_set_max_headers_size(a->http, MAX_HEADERS);
	evhttp_set_timeout(a->http, HTTP_TIMEOUT_S);
	evhttp_set_gencb(a->http, on_request, a);
}

/*
 * HTTPS (TLS on): each admin connection is a server-side TLS bufferevent on the
 * server's context (the protocol port's certificate, reloaded on SIGHUP). A client
 * certificate is asked for and, when one is sent, must be signed by --tls-ca; one is
 * not required, since the admin API has its own bearer token (curl --cacert works).
 */
static struct bufferevent *https_bev(struct event_base *base, void *arg)
{
	struct coord_admin *a = arg;
	SSL *ssl = tpc_tls_server_ssl(a->srv->tls);

	if (!ssl)
		return NULL;
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return tpc_tls_bev_new(base, -1, ssl, 1);
}

/* Bind; a busy default address (not given by the operator) only disables the API. */
static int bind_http(struct coord_admin *a)
{
	struct coord_server *s = a->srv;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct evconnlistener *l;
	char err[160];

	if (tpc_parse_hostport(s->cfg.admin, &ss, &sslen, err, sizeof(err))) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "--admin %s: %s (or 'off')", s->cfg.admin, err);
		return -EINVAL;
	}
	a->loopback = tpc_sockaddr_is_loopback(&ss);
	if (!a->loopback && !a->token) { /* coord_config_check refuses this already */
		tpc_logf(&s->log, TPC_LOG_ERROR, "--admin %s is not a loopback address: it needs "
			 "--admin-token-file", s->cfg.admin);
		return -EINVAL;
	}
	a->http = evhttp_new(s->base);
	if (!a->http)
		return -ENOMEM;
	setup_http(a);
	if (s->tls)
		evhttp_set_bevcb(a->http, https_bev, a);
	l = evconnlistener_new_bind(s->base, NULL, NULL,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
				    128, (struct sockaddr *)&ss, (int)sslen);
	if (!l || !evhttp_bind_listener(a->http, l)) {
		int e = errno;
		if (l)
			evconnlistener_free(l);
		evhttp_free(a->http);
		a->http = NULL;
		tpc_logf(&s->log, s->cfg.admin_explicit ? TPC_LOG_ERROR : TPC_LOG_WARN,
			 "cannot serve the admin API on %s: %s%s", s->cfg.admin, strerror(e),
			 s->cfg.admin_explicit ? "" : "; going on without it (--admin to choose)");
		return s->cfg.admin_explicit ? -e : 0;
	}
	tpc_logf(&s->log, TPC_LOG_INFO, "admin API on %s://%s%s", s->tls ? "https" : "http",
		 s->cfg.admin,
		 a->token ? " (every request but /livez and /readyz needs the token)"
			  : " (loopback, no token)");
	return 0;
}

int coord_admin_start(struct coord_server *s)
{
	struct coord_admin *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	s->admin = a;
	a->srv = s;
	s->commit_logged = heuristic_commit_logged;
	if (arm_stuck_watch(a))
		return -ENOMEM;
	if (heuristic_load(a)) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot read the audit log");
		return -EIO;
	}
	if (strcmp(s->cfg.admin, "off") == 0) {
		tpc_logf(&s->log, TPC_LOG_INFO, "admin API off");
		return 0;
	}
	if (s->cfg.admin_token_file &&
	    read_token(a, s->cfg.admin_token_file, &a->token, &a->token_len))
		return -EINVAL;
	return bind_http(a);
}

static void drop_token(struct coord_admin *a)
{
	if (a->token) {
		explicit_bzero(a->token, a->token_len);
		free(a->token);
	}
	a->token = NULL;
	a->token_len = 0;
}

void coord_admin_reload(struct coord_server *s)
{
	struct coord_admin *a = s->admin;
	char *token = NULL;
	size_t len = 0;

	if (!a)
		return;
	if (arm_stuck_watch(a)) /* --stuck-after may have changed */
		tpc_logf(&s->log, TPC_LOG_ERROR, "cannot re-arm the stuck watch");
	if (!a->http)
		return;
	if (s->cfg.admin_token_file && read_token(a, s->cfg.admin_token_file, &token, &len)) {
		tpc_logf(&s->log, TPC_LOG_ERROR, "keeping the admin token in use");
		return;
	}
	drop_token(a);
	a->token = token;
	a->token_len = len;
	if (!a->token && !a->loopback) /* coord_config_check refuses such a reload */
		tpc_logf(&s->log, TPC_LOG_WARN, "no --admin-token-file any more and the admin "
			 "address is not loopback: the admin API serves nothing");
}

void coord_admin_free(struct coord_server *s)
{
	struct coord_admin *a = s->admin;

	if (!a)
		return;
	heuristic_free_waiting(a);
	s->commit_logged = NULL;
	if (a->http)
		evhttp_free(a->http);
	if (a->stuck_ev)
		event_free(a->stuck_ev);
	drop_token(a);
	free(a);
	s->admin = NULL;
}
