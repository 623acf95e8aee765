/*
 * commands.c - tpcctl's commands: one admin-API request each (two for a refused
 * heuristic decision, which looks the transaction up to explain the refusal), then a
 * table for humans or, with -o json, the server's JSON as it came (pretty-printed).
 *
 * Owns the mapping from HTTP statuses to exit codes and messages (ctl_call): 401 says
 * how to give the token, 409 what --force would override, a refused connection where
 * the coordinator should be listening.
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "render.h"

/* ---- one call --------------------------------------------------------------------- */

static const char *error_text(const struct ctl_reply *r)
{
	return ctl_json_str(r->json, "error", "(no message)");
}

static void report_network(const struct ctl *c, int rc, const char *err)
{
	fprintf(stderr, "tpcctl: %s\n", err);
	if (rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH)
		fprintf(stderr,
			"  Is tpc-coordinator running with its admin API on %s? Start it with\n"
			"  --admin %s, or point tpcctl elsewhere with --admin HOST:PORT or TPC_ADMIN.\n",
			c->admin, c->admin);
	if (rc == -EPROTO && !c->tls.ca)
		fprintf(stderr, "  A coordinator with TLS serves its admin API over HTTPS: pass "
			"--tls-ca FILE (its CA).\n");
}

static int report_status(const struct ctl *c, const struct ctl_reply *r)
{
	switch (r->status) {
	case 400:
		fprintf(stderr, "tpcctl: bad request: %s\n", error_text(r));
		return CTL_EXIT_USAGE;
	case 401:
		if (c->token)
			fprintf(stderr, "tpcctl: the coordinator refused the token from %s: %s\n",
				c->token_file, error_text(r));
		else
			fprintf(stderr,
				"tpcctl: this needs the admin token (%s): pass --token-file FILE "
				"or set TPC_ADMIN_TOKEN_FILE\n", error_text(r));
		return CTL_EXIT_ERROR;
	case 403:
		fprintf(stderr, "tpcctl: the coordinator refuses this (%s): give it "
			"--admin-token-file, or use a loopback admin address\n", error_text(r));
		return CTL_EXIT_ERROR;
	case 404:
		fprintf(stderr, "tpcctl: not found: %s\n", error_text(r));
		return CTL_EXIT_NOTFOUND;
	case 409:
		fprintf(stderr, "tpcctl: refused: %s\n", error_text(r));
		return CTL_EXIT_ERROR;
	case 503:
		fprintf(stderr, "tpcctl: the coordinator is not ready (still recovering its log): "
			"%s\n", error_text(r));
		return CTL_EXIT_ERROR;
	}
	fprintf(stderr, "tpcctl: the coordinator answered HTTP %d: %s\n", r->status,
		error_text(r));
	return CTL_EXIT_ERROR;
}

int ctl_call(struct ctl *c, const char *method, const char *path, json_t *body, int expect,
	     struct ctl_reply *out)
{
	struct ctl_http_resp resp;
	char *text = NULL;
	json_error_t jerr;
	int rc;

	memset(out, 0, sizeof(*out));
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return CTL_EXIT_ERROR;
	}
	char err[512] = "";
	rc = ctl_http_request_tls(c->admin, &c->tls, method, path, c->token, text, c->timeout_ms,
				  &resp, err, sizeof(err));
	free(text);
	if (rc) {
		report_network(c, rc, err);
		return CTL_EXIT_ERROR;
	}
	out->status = resp.status;
	out->json = json_loadb(resp.body, resp.body_len, JSON_DECODE_ANY, &jerr);
	ctl_http_resp_free(&resp);
	if (c->json && out->json)
		ctl_json_print(out->json, stdout);
	if ((out->status >= 200 && out->status < 300) || out->status == expect) {
		if (out->json || out->status != 200)
			return CTL_EXIT_OK;
		fprintf(stderr, "tpcctl: the answer from %s%s is not JSON: %s\n", c->admin, path,
			jerr.text);
		return CTL_EXIT_ERROR;
	}
	rc = report_status(c, out);
	json_decref(out->json);
	out->json = NULL;
	return rc;
}

/* ---- a list of admin addresses: one group's coordinators -------------------------- */

/* The @p i-th address of the list in @p buf; 0 when there is none. */
static int list_item(const char *list, int i, char *buf, size_t len)
{
	const char *p = list;

	for (; i > 0 && p; i--)
		p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
	if (!p || !*p)
		return 0;
	size_t n = strcspn(p, ",");
	while (n && *p == ' ')
		p++, n--;
	snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), p);
	return buf[0] != '\0';
}

/* GET @p path from @p addr; the HTTP status (the body parsed into *json when asked), or
 * 0 when it cannot be reached. */
static int probe(const struct ctl *c, const char *addr, const char *path, json_t **json)
{
	struct ctl_http_resp resp;
	char err[512];
	int status;

	if (ctl_http_request_tls(addr, &c->tls, "GET", path, c->token, NULL,
				 c->timeout_ms < 2000 ? c->timeout_ms : 2000, &resp, err, sizeof(err)))
		return 0;
	status = resp.status;
	if (json)
		*json = json_loadb(resp.body, resp.body_len, JSON_DECODE_ANY, NULL);
	ctl_http_resp_free(&resp);
	return status;
}

void ctl_pick_admin(struct ctl *c)
{
	char addr[256];

	c->admin_list = c->admin;
	if (!strchr(c->admin, ','))
		return;
	for (int i = 0; list_item(c->admin_list, i, addr, sizeof(addr)); i++)
		if (probe(c, addr, "/readyz", NULL) == 200) {
			snprintf(c->admin_buf, sizeof(c->admin_buf), "%s", addr);
			c->admin = c->admin_buf;
			return;
		}
	list_item(c->admin_list, 0, c->admin_buf, sizeof(c->admin_buf));
	c->admin = c->admin_buf;
	fprintf(stderr, "tpcctl: no coordinator of %s says ready (no leader?); asking %s\n",
		c->admin_list, c->admin);
}

/* ---- status ----------------------------------------------------------------------- */

static void print_kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void print_kv(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-14s", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void print_by_state(const json_t *st)
{
	static const char *const states[] = { "ACTIVE", "PREPARING", "LOGGING", "COMMITTING" };
	const json_t *by = json_object_get(st, "by_state");
	char line[256] = "";
	size_t n = 0;

	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %" PRId64, i ? ", " : "",
				      states[i], ctl_json_int(by, states[i], 0));
	print_kv("open", "%" PRId64 " (%s)", ctl_json_int(st, "open_transactions", 0), line);
}

static void print_in_doubt(const json_t *st)
{
	char oldest[32], after[32];

	ctl_fmt_age((uint64_t)ctl_json_int(st, "oldest_in_doubt_ms", 0), oldest, sizeof(oldest));
	ctl_fmt_age((uint64_t)ctl_json_int(st, "stuck_after_ms", 0), after, sizeof(after));
	if (ctl_json_int(st, "in_doubt", 0))
		print_kv("in doubt", "%" PRId64 ", oldest %s", ctl_json_int(st, "in_doubt", 0),
			 oldest);
	else
		print_kv("in doubt", "0");
	print_kv("stuck", "%" PRId64 "%s (not delivered within %s)", ctl_json_int(st, "stuck", 0),
		 ctl_json_int(st, "stuck", 0) ? "  <- see: tpcctl txn list --state stuck" : "",
		 after);
}

static void print_log(const json_t *st)
{
	const json_t *lg = json_object_get(st, "log");
	char map[32];

	if (!lg)
		return;
	ctl_fmt_bytes((uint64_t)ctl_json_int(lg, "map_bytes", 0), map, sizeof(map));
	print_kv("log", "%" PRId64 " decisions, %" PRId64 " keys, %s used; %" PRId64
		 " batches, %" PRId64 " records, %" PRId64 " failures",
		 ctl_json_int(lg, "decisions", 0), ctl_json_int(lg, "keys", 0), map,
		 ctl_json_int(lg, "batches", 0), ctl_json_int(lg, "records", 0),
		 ctl_json_int(lg, "log_failures", 0));
}

/* With --log etcd: the group, this coordinator's role and the leader it knows. */
static void print_group(const json_t *st)
{
	const char *role = ctl_json_str(st, "role", "single");

	print_kv("log backend", "%s", ctl_json_str(st, "log_backend", "lmdb"));
	if (strcmp(role, "single") == 0)
		return;
	print_kv("group", "%s: this coordinator (%s) is the %s; the leader is %s",
		 ctl_json_str(st, "group", "?"), ctl_json_str(st, "advertise", "?"), role,
		 ctl_json_str(st, "leader", "not known"));
}

/* Every address of an admin list: its role in the group, or why it did not answer. */
static void print_members(const struct ctl *c)
{
	char addr[256];

	printf("members of %s:\n", c->admin_list);
	for (int i = 0; list_item(c->admin_list, i, addr, sizeof(addr)); i++) {
		json_t *st = NULL;
		int status = probe(c, addr, "/v1/status", &st);

		if (status == 200 && st)
			printf("  %-22s %-8s group %s, coordinator %s, leader %s\n", addr,
			       ctl_json_str(st, "role", "single"), ctl_json_str(st, "group", "-"),
			       ctl_json_str(st, "advertise", ctl_json_str(st, "listen", "?")),
			       ctl_json_str(st, "leader", "not known"));
		else if (status)
			printf("  %-22s answered HTTP %d\n", addr, status);
		else
			printf("  %-22s unreachable\n", addr);
		json_decref(st);
	}
}

static void print_status(const json_t *st)
{
	const json_t *parts = json_object_get(st, "participants");
	char up[32];

	ctl_fmt_age((uint64_t)ctl_json_int(st, "uptime_ms", 0), up, sizeof(up));
	print_kv("coordinator", "id %" PRId64 ", epoch %" PRId64 ", up %s, %s",
		 ctl_json_int(st, "coordinator_id", 0), ctl_json_int(st, "epoch", 0), up,
		 ctl_json_bool(st, "ready") ? "ready" : "NOT READY (recovering)");
	print_kv("listen", "%s", ctl_json_str(st, "listen", "?"));
	print_group(st);
	print_by_state(st);
	print_in_doubt(st);
	print_kv("participants", "%" PRId64 " connected of %" PRId64 " known",
		 ctl_json_int(parts, "connected", 0), ctl_json_int(parts, "known", 0));
	print_kv("connections", "%" PRId64, ctl_json_int(st, "connections", 0));
	print_kv("outcomes", "%" PRId64 " committed, %" PRId64 " aborted, %" PRId64 " unknown",
		 ctl_json_int(st, "committed", 0), ctl_json_int(st, "aborted", 0),
		 ctl_json_int(st, "unknown", 0));
	print_log(st);
}

int ctl_cmd_status(struct ctl *c)
{
	struct ctl_reply r;
	int rc = ctl_call(c, "GET", "/v1/status", NULL, 0, &r);

	if (rc == CTL_EXIT_OK && !c->json) {
		print_status(r.json);
		if (c->admin_list && strchr(c->admin_list, ','))
			print_members(c);
	}
	json_decref(r.json);
	return rc;
}

/* ---- transactions ----------------------------------------------------------------- */

/* "A=acked B=yes(down)": each participant's state, and "(down)" when not connected. */
static void format_parts(const json_t *txn, char *buf, size_t len)
{
	const json_t *parts = json_object_get(txn, "participants"), *p;
	size_t i, n = 0;

	buf[0] = '\0';
	json_array_foreach(parts, i, p) {
		if (n >= len)
			break;
		n += (size_t)snprintf(buf + n, len - n, "%s%s=%s%s", i ? " " : "",
				      ctl_json_str(p, "name", "?"), ctl_json_str(p, "state", "?"),
				      json_is_false(json_object_get(p, "connected")) ? "(down)" : "");
	}
}

static int add_txn_row(struct ctl_table *t, const json_t *txn)
{
	char age[32], attempts[24], parts[512];

	ctl_fmt_age((uint64_t)ctl_json_int(txn, "age_ms", 0), age, sizeof(age));
	snprintf(attempts, sizeof(attempts), "%" PRId64, ctl_json_int(txn, "attempts", 0));
	format_parts(txn, parts, sizeof(parts));
	const char *cells[] = { ctl_json_str(txn, "txid", "?"), ctl_json_str(txn, "state", "?"),
				age, attempts, ctl_json_bool(txn, "stuck") ? "STUCK" : "",
				parts, ctl_json_str(txn, "key", ""),
				ctl_json_str(txn, "last_error", "") };
	return ctl_table_add(t, cells);
}

static void url_encode(const char *name, char *out, size_t len);

/* Server pages hold at most this many entries (docs/admin-api.md, "Pages"). */
#define CTL_PAGE_MAX 1000

static void cursor_query(char *path, size_t len, const char *base, const char *cursor,
			 const json_t *next, long long page)
{
	char enc[3 * 255 + 1] = "";

	if (json_is_string(next))
		url_encode(json_string_value(next), enc, sizeof(enc));
	else if (json_is_integer(next))
		snprintf(enc, sizeof(enc), "%lld", (long long)json_integer_value(next));
	snprintf(path, len, "%s%climit=%lld%s%s%s%s", base, strchr(base, '?') ? '&' : '?', page,
		 enc[0] ? "&" : "", enc[0] ? cursor : "", enc[0] ? "=" : "", enc);
}

/*
 * GET @p base page after page, following the reply's "next" in the query parameter
 * @p cursor until no "next" comes or --limit entries were collected; the entries
 * (array @p field) of every page go into the first page's object, which *out gets (the
 * caller decrefs). With -o json that merged object is printed, once.
 */
static int get_pages(struct ctl *c, const char *base, const char *field, const char *cursor,
		     json_t **out)
{
	long long want = c->limit ? atoll(c->limit) : 0, got = 0;
	int json = c->json, rc = CTL_EXIT_OK;
	char path[1024];
	json_t *next = NULL;

	*out = NULL;
	c->json = 0; /* print the merged object at the end, not each page */
	for (;;) {
		struct ctl_reply r;
		long long page = want ? want - got : CTL_PAGE_MAX;
		cursor_query(path, sizeof(path), base, cursor, next,
			     page > CTL_PAGE_MAX ? CTL_PAGE_MAX : page);
		rc = ctl_call(c, "GET", path, NULL, 0, &r);
		if (rc != CTL_EXIT_OK)
			break;
		json_t *arr = json_object_get(r.json, field);
		got += (long long)json_array_size(arr);
		if (!*out)
			*out = json_incref(r.json);
		else
			json_array_extend(json_object_get(*out, field), arr);
		json_decref(next);
		next = json_incref(json_object_get(r.json, "next"));
		json_decref(r.json);
		if (!next || (want && got >= want))
			break;
	}
	c->json = json;
	if (*out)
		json_object_del(*out, "next");
	if (rc == CTL_EXIT_OK && json)
		ctl_json_print(*out, stdout);
	json_decref(next);
	if (rc != CTL_EXIT_OK) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static int print_txn_list(const json_t *list)
{
	static const char *const hdr[] = { "TXID", "STATE", "AGE", "ATTEMPTS", "STUCK",
					   "PARTICIPANTS", "KEY", "LAST-ERROR" };
	const json_t *txns = json_object_get(list, "transactions"), *txn;
	struct ctl_table *t = ctl_table_new(8, hdr);
	size_t i;

	if (!t)
		return CTL_EXIT_ERROR;
	json_array_foreach(txns, i, txn)
		if (add_txn_row(t, txn))
			break;
	if (json_array_size(txns))
		ctl_table_print(t, stdout);
	ctl_table_free(t);
	printf("%zu of %" PRId64 " open transaction(s)\n", json_array_size(txns),
	       ctl_json_int(list, "open", (int64_t)json_array_size(txns)));
	return CTL_EXIT_OK;
}

static void append_query(char *path, size_t len, const char *name, const char *value)
{
	size_t n = strlen(path);

	if (value)
		snprintf(path + n, len - n, "%c%s=%s", strchr(path, '?') ? '&' : '?', name, value);
}

int ctl_cmd_txn_list(struct ctl *c)
{
	char path[256] = "/v1/transactions";
	json_t *list;
	int rc;

	append_query(path, sizeof(path), "state", c->state);
	append_query(path, sizeof(path), "older-than", c->older_than);
	rc = get_pages(c, path, "transactions", "after", &list);
	if (rc == CTL_EXIT_OK && !c->json)
		rc = print_txn_list(list);
	json_decref(list);
	return rc;
}

static void print_txn_parts(const json_t *txn)
{
	static const char *const hdr[] = { "PARTICIPANT", "STATE", "CONNECTED" };
	const json_t *parts = json_object_get(txn, "participants"), *p;
	struct ctl_table *t = ctl_table_new(3, hdr);
	size_t i;

	if (!t)
		return;
	json_array_foreach(parts, i, p) {
		const json_t *conn = json_object_get(p, "connected");
		const char *cells[] = { ctl_json_str(p, "name", "?"), ctl_json_str(p, "state", "?"),
					json_is_true(conn) ? "yes" : json_is_false(conn) ? "no" : "?" };
		ctl_table_add(t, cells);
	}
	putchar('\n');
	ctl_table_print(t, stdout);
	ctl_table_free(t);
}

static void print_txn(const json_t *txn)
{
	char age[32], decided[32], retry[32];
	int64_t decided_ms = ctl_json_int(txn, "decided_ms", -1);
	int64_t next_ms = ctl_json_int(txn, "next_retry_ms", -1);

	ctl_fmt_age((uint64_t)ctl_json_int(txn, "age_ms", 0), age, sizeof(age));
	ctl_fmt_age(decided_ms > 0 ? (uint64_t)decided_ms : 0, decided, sizeof(decided));
	ctl_fmt_age(next_ms > 0 ? (uint64_t)next_ms : 0, retry, sizeof(retry));
	print_kv("txid", "%s", ctl_json_str(txn, "txid", "?"));
	print_kv("state", "%s%s", ctl_json_str(txn, "state", "?"),
		 ctl_json_bool(txn, "stuck") ? "  STUCK: the decision was not delivered in time"
					     : "");
	if (decided_ms >= 0)
		print_kv("age", "%s (decided %s ago)", age, decided);
	else
		print_kv("age", "%s", age);
	if (ctl_json_str(txn, "key", NULL))
		print_kv("key", "%s", ctl_json_str(txn, "key", ""));
	if (next_ms >= 0)
		print_kv("attempts", "%" PRId64 ", next retry in %s",
			 ctl_json_int(txn, "attempts", 0), retry);
	else
		print_kv("attempts", "%" PRId64, ctl_json_int(txn, "attempts", 0));
	if (ctl_json_str(txn, "last_error", NULL) && *ctl_json_str(txn, "last_error", ""))
		print_kv("last error", "%s", ctl_json_str(txn, "last_error", ""));
	print_txn_parts(txn);
}

/* 404 for a txid: say what a participant asking about it would be told. */
static void print_not_open(const char *txid, const json_t *body)
{
	const char *st = ctl_json_str(body, "status", NULL);

	if (st && strcmp(st, "COMMITTED") == 0)
		fprintf(stderr, "tpcctl: txn %s is not open: it COMMITTED and every participant "
			"acknowledged it (it is kept for the outcome retention)\n", txid);
	else if (st && strcmp(st, "FORGOTTEN") == 0)
		fprintf(stderr, "tpcctl: txn %s is not open: FORGOTTEN, its outcome is older than "
			"the coordinator's outcome retention and no longer known (it may have "
			"committed); a participant asking is told FORGOTTEN and stays in doubt\n",
			txid);
	else if (st)
		fprintf(stderr, "tpcctl: txn %s is not open: a participant asking is told %s "
			"(presumed abort: the coordinator has no decision for it)\n", txid, st);
	else
		fprintf(stderr, "tpcctl: txn %s: %s\n", txid, ctl_json_str(body, "error", "not found"));
}

int ctl_cmd_txn_show(struct ctl *c)
{
	char path[96];
	struct ctl_reply r;
	int rc;

	snprintf(path, sizeof(path), "/v1/transactions/%s", c->txid);
	rc = ctl_call(c, "GET", path, NULL, 404, &r);
	if (rc == CTL_EXIT_OK && r.status == 404) {
		print_not_open(c->txid, r.json);
		rc = CTL_EXIT_NOTFOUND;
	} else if (rc == CTL_EXIT_OK && !c->json) {
		print_txn(r.json);
	}
	json_decref(r.json);
	return rc;
}

static void join_names(const json_t *arr, char *buf, size_t len)
{
	const json_t *v;
	size_t i, n = 0;

	buf[0] = '\0';
	json_array_foreach(arr, i, v)
		if (n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
					      json_is_string(v) ? json_string_value(v) : "?");
}

int ctl_cmd_txn_retry(struct ctl *c)
{
	char path[96], sent[512], down[512];
	struct ctl_reply r;
	int rc;

	snprintf(path, sizeof(path), "/v1/transactions/%s/retry", c->txid);
	rc = ctl_call(c, "POST", path, NULL, 0, &r);
	if (rc == CTL_EXIT_OK && !c->json) {
		join_names(json_object_get(r.json, "resent_to"), sent, sizeof(sent));
		join_names(json_object_get(r.json, "not_connected"), down, sizeof(down));
		printf("txn %s: resent to %s", c->txid, *sent ? sent : "nobody");
		if (*down)
			printf("; not connected (will get it when they return): %s", down);
		putchar('\n');
	}
	json_decref(r.json);
	return rc;
}

/* ---- heuristic decisions ---------------------------------------------------------- */

static const char *login_name(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;

	if (u && *u)
		return u;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : NULL;
}

/* What --force would override, by action and the transaction's state (NULL: not open). */
static const char *force_hint(int commit, const char *state)
{
	if (state && strcmp(state, "LOGGING") == 0)
		return "the coordinator is making its own COMMIT decision durable right now; "
		       "retry in a moment (--force does not apply)";
	if (commit && !state)
		return "the coordinator has no open transaction with this id: it is presumed "
		       "aborted (or it already completed). --force records a COMMIT anyway and "
		       "sends it to the participants";
	if (commit)
		return "not every participant has voted YES. --force commits the participants "
		       "that voted YES; the others never prepared and will not apply it";
	return "the COMMIT decision is durable and some participants may already have applied "
	       "it. --force sends ABORT to every participant that has not acknowledged, drops "
	       "the decision record, and names the overridden COMMIT in the audit log";
}

static void explain_refusal(struct ctl *c, int commit, const struct ctl_reply *r)
{
	char path[96];
	struct ctl_reply st;
	int json = c->json, rc;

	fprintf(stderr, "tpcctl: %s of txn %s refused: %s\n", commit ? "commit" : "abort",
		c->txid, error_text(r));
	snprintf(path, sizeof(path), "/v1/transactions/%s", c->txid);
	c->json = 0; /* the lookup is for the hint only */
	rc = ctl_call(c, "GET", path, NULL, 404, &st);
	c->json = json;
	if (rc != CTL_EXIT_OK)
		return;
	const char *state = st.status == 404 ? NULL : ctl_json_str(st.json, "state", NULL);
	fprintf(stderr, "  state: %s\n  %s\n", state ? state : "not open",
		force_hint(commit, state));
	json_decref(st.json);
}

static void print_decided(const struct ctl *c, const json_t *res)
{
	const char *already = ctl_json_str(res, "already", NULL);
	const char *overrode = ctl_json_str(res, "overrode", "none");

	if (already) {
		printf("txn %s: already %s; nothing to do\n", c->txid, already);
		return;
	}
	printf("txn %s: %s recorded (audit #%" PRId64 ") and sent to the participants", c->txid,
	       ctl_json_str(res, "decision", "?"), ctl_json_int(res, "audit_id", 0));
	if (strcmp(overrode, "none") != 0)
		printf("; it overrode a durable %s decision", overrode);
	putchar('\n');
}

static int decide(struct ctl *c, int commit)
{
	char path[96];
	struct ctl_reply r;
	const char *op = c->operator_name ? c->operator_name : login_name();
	json_t *body = json_pack("{s:s, s:b}", "reason", c->reason, "force", c->force);
	int rc;

	if (!body)
		return CTL_EXIT_ERROR;
	if (op)
		json_object_set_new(body, "operator", json_string(op));
	snprintf(path, sizeof(path), "/v1/transactions/%s/%s", c->txid, commit ? "commit" : "abort");
	rc = ctl_call(c, "POST", path, body, 409, &r);
	json_decref(body);
	if (rc == CTL_EXIT_OK && r.status == 409) {
		explain_refusal(c, commit, &r);
		rc = CTL_EXIT_ERROR;
	} else if (rc == CTL_EXIT_OK && !c->json) {
		print_decided(c, r.json);
	}
	json_decref(r.json);
	return rc;
}

int ctl_cmd_txn_commit(struct ctl *c)
{
	return decide(c, 1);
}

int ctl_cmd_txn_abort(struct ctl *c)
{
	return decide(c, 0);
}

/* ---- participants and audit ------------------------------------------------------- */

static int add_part_row(struct ctl_table *t, const json_t *p)
{
	char seen[40], connects[24], outstanding[24], inc[24];
	int64_t incarnation = ctl_json_int(p, "incarnation", 0);
	int64_t ms = ctl_json_int(p, "last_seen_ms", -1);

	if (ms >= 0) {
		ctl_fmt_age((uint64_t)ms, seen, sizeof(seen) - 5);
		strcat(seen, " ago");
	} else {
		strcpy(seen, "never");
	}
	snprintf(connects, sizeof(connects), "%" PRId64, ctl_json_int(p, "connects", 0));
	snprintf(outstanding, sizeof(outstanding), "%" PRId64,
		 ctl_json_int(p, "decisions_outstanding", 0));
	if (incarnation > 0)
		snprintf(inc, sizeof(inc), "%" PRId64, incarnation);
	else
		strcpy(inc, "-");
	char orphans[24];
	snprintf(orphans, sizeof(orphans), "%zu", json_array_size(json_object_get(p, "orphans")));
	const char *cells[] = { ctl_json_str(p, "name", "?"),
				ctl_json_bool(p, "connected") ? "yes" : "no",
				ctl_json_str(p, "address", ""), seen, connects, outstanding,
				ctl_json_str(p, "participant_id", "(not bound)"), inc, orphans };
	return ctl_table_add(t, cells);
}

/* A listing: a GET whose reply holds an array shown one row per element. */
struct listing {
	const char *field; /* the array's name in the reply */
	const char *cursor; /* the query parameter that takes the reply's "next" */
	int ncols;
	const char *const *hdr;
	int (*add_row)(struct ctl_table *t, const json_t *elem);
	const char *none; /* printed instead of an empty table */
};

/* GET @p path, every page; with -o json the merged reply is printed, else as @p l says. */
static int print_listing(struct ctl *c, const char *path, const struct listing *l)
{
	struct ctl_table *t = NULL;
	const json_t *e;
	json_t *all;
	size_t i;
	int rc = get_pages(c, path, l->field, l->cursor, &all);

	if (rc != CTL_EXIT_OK || c->json)
		goto out;
	t = ctl_table_new(l->ncols, l->hdr);
	if (!t) {
		rc = CTL_EXIT_ERROR;
		goto out;
	}
	json_array_foreach(json_object_get(all, l->field), i, e)
		l->add_row(t, e);
	if (i)
		ctl_table_print(t, stdout);
	else
		puts(l->none);
out:
	ctl_table_free(t);
	json_decref(all);
	return rc;
}

int ctl_cmd_participants(struct ctl *c)
{
	static const char *const hdr[] = { "NAME", "CONNECTED", "ADDRESS", "LAST-SEEN",
					   "CONNECTS", "OUTSTANDING", "PARTICIPANT-ID",
					   "INCARNATION", "ORPHANS" };
	static const struct listing l = { "participants", "after", 9, hdr, add_part_row,
					  "no participants known" };

	return print_listing(c, "/v1/participants", &l);
}

/* One row per orphan of participant @p p. */
static void add_orphan_rows(struct ctl_table *t, const json_t *p)
{
	const json_t *o;
	size_t i;

	json_array_foreach(json_object_get(p, "orphans"), i, o) {
		char txid[24], age[40], locks[24];
		snprintf(txid, sizeof(txid), "%" PRId64, ctl_json_int(o, "txid", 0));
		ctl_fmt_age((uint64_t)ctl_json_int(o, "age_ms", 0), age, sizeof(age));
		snprintf(locks, sizeof(locks), "%" PRId64, ctl_json_int(o, "locks", 0));
		const char *cells[] = { ctl_json_str(p, "name", "?"), txid,
					ctl_json_str(o, "gid", ""), age, locks,
					ctl_json_str(o, "reason", "") };
		ctl_table_add(t, cells);
	}
}

int ctl_cmd_participant_orphans(struct ctl *c)
{
	static const char *const hdr[] = { "PARTICIPANT", "TXID", "GID", "AGE", "LOCKS",
					   "REASON" };
	struct ctl_table *t = NULL;
	const json_t *p;
	json_t *all;
	size_t i, n = 0;
	int rc = get_pages(c, "/v1/participants", "participants", "after", &all);

	if (rc != CTL_EXIT_OK || c->json)
		goto out;
	if (!(t = ctl_table_new(6, hdr))) {
		rc = CTL_EXIT_ERROR;
		goto out;
	}
	json_array_foreach(json_object_get(all, "participants"), i, p) {
		add_orphan_rows(t, p);
		n += json_array_size(json_object_get(p, "orphans"));
	}
	if (n)
		ctl_table_print(t, stdout);
	else
		puts("no unresolved prepared transactions reported");
out:
	ctl_table_free(t);
	json_decref(all);
	return rc;
}

/* @p name with every byte outside [A-Za-z0-9._~-] percent-encoded. */
static void url_encode(const char *name, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("._~-", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

int ctl_cmd_participant_forget(struct ctl *c)
{
	char enc[3 * 255 + 1], path[sizeof(enc) + 48];
	struct ctl_reply r;
	const char *op = c->operator_name ? c->operator_name : login_name();
	json_t *body = json_pack("{s:s}", "reason", c->reason);
	int rc;

	if (!body)
		return CTL_EXIT_ERROR;
	if (op)
		json_object_set_new(body, "operator", json_string(op));
	url_encode(c->part_name, enc, sizeof(enc));
	snprintf(path, sizeof(path), "/v1/participants/%s/forget", enc);
	rc = ctl_call(c, "POST", path, body, 0, &r);
	json_decref(body);
	if (rc == CTL_EXIT_OK && !c->json)
		printf("participant %s: binding to participant id %s forgotten (audit #%" PRId64
		       "); the next state folder to connect under this name takes it\n",
		       c->part_name, ctl_json_str(r.json, "forgotten_participant_id", "?"),
		       ctl_json_int(r.json, "audit_id", 0));
	json_decref(r.json);
	return rc;
}

static int add_audit_row(struct ctl_table *t, const json_t *e)
{
	char id[24];

	snprintf(id, sizeof(id), "%" PRId64, ctl_json_int(e, "id", 0));
	const char *cells[] = { id, ctl_json_str(e, "at", ""), ctl_json_str(e, "operator", ""),
				ctl_json_str(e, "action", ""),
				ctl_json_str(e, "txid", ctl_json_str(e, "participant", "")),
				ctl_json_bool(e, "forced") ? "yes" : "no",
				ctl_json_str(e, "state_before", ""),
				ctl_json_str(e, "overrode", ""), ctl_json_str(e, "reason", "") };
	return ctl_table_add(t, cells);
}

int ctl_cmd_audit(struct ctl *c)
{
	static const char *const hdr[] = { "ID", "AT", "OPERATOR", "ACTION", "TXID", "FORCED",
					   "STATE-BEFORE", "OVERRODE", "REASON" };
	static const struct listing l = { "entries", "before", 9, hdr, add_audit_row,
					  "the audit log is empty" };

	if (!c->limit)
		c->limit = "100"; /* the newest 100 unless told otherwise */
	return print_listing(c, "/v1/audit", &l);
}
