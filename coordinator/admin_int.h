/*
 * admin_int.h - what admin.c (HTTP routes, authentication, JSON replies, the stuck
 * watch) shares with the modules below it: admin_page.c (paging), heuristic.c
 * (operator decisions, retry) and admin_forget.c (forgetting a name). Calls go one
 * way, from admin.c down; the lower modules answer through struct admin_result.
 *
 * Loop thread only. An operator call that must wait for the log keeps admin.c's
 * answer function and its argument (the evhttp request) in its op until a log
 * completion answers it; libevent keeps such a request alive even if its client hangs
 * up (evhttp_send_reply then just frees it).
 */
#ifndef TPC_COORD_ADMIN_INT_H
#define TPC_COORD_ADMIN_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include <jansson.h>

#include "server_int.h"

struct evhttp;
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

/* ---- what heuristic.c and admin_forget.c take and hand back ----
 * They see no HTTP and write no reply: admin.c parses the request into struct
 * admin_args and turns each struct admin_result into a status and a JSON body. */

/** An operator call's request, as admin.c parsed it from the body. */
struct admin_args {
	const char *reason;         /* required */
	const char *operator;       /* NULL: not given */
	int force;
	char from[80];              /* who asked, "HOST:PORT" (the audit entry's "peer") */
};

/** What an operator call came to. Every field but @c code and @c why is optional:
 *  0 or NULL leaves it out of the reply. */
struct admin_result {
	enum admin_code code;
	char why[512];              /* code != ADMIN_OK: the reason, for the operator */
	uint64_t txid;
	const char *participant;
	const char *status;         /* what a participant asking about txid is told */
	const char *state;          /* the transaction's state */
	const char *decision;       /* a carried-out decision: "COMMIT" or "ABORT" */
	const char *overrode;
	const char *already;        /* a no-op: "COMMITTED" or "ABORTED" */
	const char *forgotten_id;   /* forget: the participant id unbound (hex) */
	uint64_t audit_id;          /* the audit entry written */
	int resent;                 /* retry: the two lists below are the answer */
	const char *resent_to[COORD_TXN_MAX_PARTS];
	const char *not_connected[COORD_TXN_MAX_PARTS];
	uint8_t n_resent_to, n_not_connected;
};

/** Receives an operator call's answer, now or once the log has it (loop thread); the
 *  result's strings live until it returns. */
typedef void (*admin_answer_fn)(void *arg, const struct admin_result *r);

/** Fill @p r's code and reason (printf-style). */
static inline __attribute__((format(printf, 3, 4))) void
admin_result_fail(struct admin_result *r, enum admin_code code, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* ---- admin_forget.c ---- */

/** Forget the binding of participant @p name; @p answer gets the result. */
void admin_forget_participant(struct coord_admin *a, const char *name,
			      const struct admin_args *args, admin_answer_fn answer, void *arg);

/* ---- heuristic.c ---- */

/** Read the newest audit id from the log (start-up). @return 0 or a log error. */
int heuristic_load(struct coord_admin *a);

/** What a participant asking about @p txid would be told: "COMMITTED", "ABORTED" or
 *  "FORGOTTEN"; NULL when the log cannot be read. */
const char *heuristic_logged_status(struct coord_server *s, uint64_t txid);

/** An operator's commit or abort (@p decision: DECIDE_COMMIT or DECIDE_ABORT) of
 *  @p txid; @p answer gets the result, possibly after the log wrote it. */
void heuristic_decide(struct coord_admin *a, uint64_t txid, int decision,
		      const struct admin_args *args, admin_answer_fn answer, void *arg);

/** Resend what the participants of @p txid lack; @p r gets the result. */
void heuristic_retry(struct coord_admin *a, uint64_t txid, struct admin_result *r);

/** A COMMIT record is done (struct coord_server's commit_logged). */
void heuristic_commit_logged(struct coord_server *s, uint64_t txid, int status);

/** Shutdown: answer every operator call still waiting (unavailable) and free it. */
void heuristic_free_waiting(struct coord_admin *a);

#endif
