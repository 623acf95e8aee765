/*
 * admin_int.h - what admin.c (HTTP routes, authentication, JSON replies, the stuck
 * watch) and heuristic.c (operator decisions, retry, the audit log) share.
 *
 * Loop thread only. An operator call that must wait for the log keeps its evhttp
 * request in a struct admin_op until a log completion answers it; libevent keeps such a
 * request alive even if its client hangs up (evhttp_send_reply then just frees it).
 */
#ifndef TPC_COORD_ADMIN_INT_H
#define TPC_COORD_ADMIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server_int.h"

struct evhttp;
struct evhttp_request;
struct admin_op;

struct coord_admin {
	struct coord_server *srv;
	struct evhttp *http;        /* NULL: --admin off, or the default address was busy */
	struct event *stuck_ev;     /* periodic stuck scan (runs with or without HTTP) */
	char *token;                /* --admin-token-file's first line; NULL: no token */
	size_t token_len;
	int loopback;               /* the admin address is a loopback address */
	uint64_t next_audit_id;     /* ids are allocated here, on the loop thread */
	struct admin_op *waiting;   /* operator calls waiting for a COMMIT record */
};

/* ---- admin_page.c: one page of a list view ---- */

/** The hard maximum of entries in one page of a list view (larger limits are cut). */
#define ADMIN_MAX_PAGE 1000

/** Orders two items of a page: <0, 0, >0. */
typedef int (*admin_page_cmp)(const void *arg, uint64_t a, uint64_t b);

/** The @c cap smallest items offered (a bounded max-heap until admin_page_sort). */
struct admin_page {
	uint64_t *v;
	size_t n, cap;
	int more;                   /* an item was offered beyond the page: one follows */
	admin_page_cmp cmp;
	const void *arg;
};

/** @return 0 or -ENOMEM. */
int admin_page_init(struct admin_page *p, size_t cap, admin_page_cmp cmp, const void *arg);
/** Keep @p item if it is among the @c cap smallest so far. O(log cap). */
void admin_page_offer(struct admin_page *p, uint64_t item);
/** Sort the kept items ascending (after the last offer). */
void admin_page_sort(struct admin_page *p);
void admin_page_free(struct admin_page *p);

/* ---- admin.c: replies and formatting ---- */

/** Reply with @p body as JSON (compact, newline-terminated); takes @p body's reference. */
void admin_reply_json(struct evhttp_request *req, int code, json_t *body);

/** Reply {"error": message, ...@p extra} with status @p code; takes @p extra (may be NULL). */
void admin_reply_error(struct evhttp_request *req, int code, json_t *extra, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));

/** A txid as the API writes it: a decimal string. */
json_t *admin_txid_json(uint64_t txid);

/** "2026-11-27T09:00:00.123Z" for a wall-clock time in ms. */
void admin_format_time(uint64_t wall_ms, char *buf, size_t len);

/** The peer of @p req as "HOST:PORT" (or "?"). */
void admin_peer_addr(struct evhttp_request *req, char *buf, size_t len);

/** What a participant asking about @p txid would be told: "COMMITTED" or "ABORTED";
 *  NULL when the log cannot be read. */
const char *admin_logged_status(struct coord_server *s, uint64_t txid);

/* ---- admin_forget.c ---- */

/** POST /v1/participants/{name}/forget; @p raw_name still URL-encoded; takes @p body. */
void admin_forget_participant(struct coord_admin *a, struct evhttp_request *req,
			      const char *raw_name, json_t *body);

/* ---- heuristic.c ---- */

/** Read the newest audit id from the log (start-up). @return 0 or a log error. */
int heuristic_load(struct coord_admin *a);

/** POST /v1/transactions/{txid}/commit|abort with its JSON @p body (NULL: none). */
void heuristic_decide(struct coord_admin *a, struct evhttp_request *req, uint64_t txid,
		      int decision, json_t *body);

/** POST /v1/transactions/{txid}/retry. */
void heuristic_retry(struct coord_admin *a, struct evhttp_request *req, uint64_t txid);

/** GET /v1/audit?limit=N&before=ID: at most @p limit (<= ADMIN_MAX_PAGE) entries with
 *  id < @p before (0: from the newest), newest first, and "next" when more follow. */
void heuristic_audit_list(struct coord_admin *a, struct evhttp_request *req, uint32_t limit,
			  uint64_t before);

/** Shutdown: answer every operator call still waiting (503) and free it. */
void heuristic_free_waiting(struct coord_admin *a);

#endif
