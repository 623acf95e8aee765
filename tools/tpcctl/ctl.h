/*
 * ctl.h - what tpcctl's parts share: the parsed invocation (struct ctl), exit codes,
 * one admin-API call with its error reporting, and the commands.
 *
 * Division: tpcctl.c parses the command line and prints help; commands.c runs one
 * command (request, then a table or the server's JSON); http.c speaks HTTP; render.c
 * formats. Messages for humans go to stderr, results to stdout.
 */
#ifndef TPCCTL_CTL_H
#define TPCCTL_CTL_H

#include <jansson.h>
#include <stdint.h>

#include "tls.h"

enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_ERROR = 1,    /* server, network, refused (409), token (401) */
	CTL_EXIT_USAGE = 2,    /* bad command line, or the server said 400 */
	CTL_EXIT_NOTFOUND = 3, /* 404: no such transaction */
};

#define CTL_DEFAULT_ADMIN "127.0.0.1:7401"
#define CTL_DEFAULT_COORDINATOR "127.0.0.1:7400"
#define CTL_DEFAULT_TIMEOUT_MS 10000

struct ctl {
	const char *admin;        /* HOST:PORT of the admin API (the one chosen from a list) */
	const char *admin_list;   /* --admin as given: HOST:PORT[,HOST:PORT...] */
	char admin_buf[256];      /* the address chosen from admin_list */
	const char *token_file;   /* NULL: no token */
	char *token;              /* its first line, trimmed (owned) */
	int json;                 /* -o json */
	struct tpc_tls_files tls; /* --tls-ca (HTTPS), --tls-cert/--tls-key; NULL: HTTP */
	int timeout_ms;
	/* command arguments */
	const char *txid;         /* decimal, checked */
	const char *part_name;    /* participant forget NAME: 1 to 255 bytes, checked */
	const char *state;        /* txn list --state, upper-cased (or "stuck") */
	const char *older_than;   /* txn list --older-than, checked */
	const char *limit;        /* --limit, checked */
	const char *reason;       /* txn commit/abort --reason */
	const char *operator_name;/* --operator, else the login name */
	int force;
	char state_buf[16];
	const char *coordinator;  /* txn begin: HOST:PORT of the protocol port */
	const char *key;          /* txn begin --key: the client transaction key, or NULL */
	uint32_t txn_timeout_ms;  /* txn begin --txn-timeout; 0: the coordinator's default */
};

/** One call's outcome: HTTP status and the body parsed as JSON (NULL if it is not). */
struct ctl_reply {
	int status;
	json_t *json;
};

/**
 * @brief Call the admin API. Prints the JSON body on stdout in -o json mode (whatever
 *        the status), and a message on stderr for a network failure or any status it
 *        does not leave to the caller.
 * @param body a JSON object to send (POST), or NULL; not consumed
 * @param expect a status besides 2xx the caller handles itself (404, 409), or 0
 * @return CTL_EXIT_OK with @p out filled (caller frees out->json with json_decref) for
 *         2xx and @p expect; another exit code when it already reported an error.
 */
int ctl_call(struct ctl *c, const char *method, const char *path, json_t *body, int expect,
	     struct ctl_reply *out);

/**
 * @brief With a list of admin addresses (the coordinators of one group), aim c->admin at
 *        the one whose /readyz says 200 (the leader); none ready: the first, and a note
 *        on stderr. One address: nothing to do.
 */
void ctl_pick_admin(struct ctl *c);

int ctl_cmd_status(struct ctl *c);
int ctl_cmd_txn_list(struct ctl *c);
int ctl_cmd_txn_show(struct ctl *c);
int ctl_cmd_txn_retry(struct ctl *c);
int ctl_cmd_txn_commit(struct ctl *c);
/** `txn begin` (session.c): a transaction on the protocol port, decided from stdin. */
int ctl_cmd_txn_begin(struct ctl *c);
int ctl_cmd_txn_abort(struct ctl *c);
int ctl_cmd_participants(struct ctl *c);
int ctl_cmd_participant_forget(struct ctl *c);
int ctl_cmd_participant_orphans(struct ctl *c);
int ctl_cmd_audit(struct ctl *c);

#endif
