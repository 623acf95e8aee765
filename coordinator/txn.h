/*
 * txn.h - the coordinator's per-transaction state machine, pure.
 *
 * coord_txn_step() takes one event and the current time and returns the actions the
 * server must carry out (send, log, reply, forget). It never touches a socket, a clock
 * or the disk, so tests can drive every transition, and a crash at any step, directly.
 * Participants are named by small integers (peer ids) that the server maps to names.
 */
#ifndef TPC_COORD_TXN_H
#define TPC_COORD_TXN_H

#include <stddef.h>
#include <stdint.h>

/* Most participants one transaction may have (a configured limit may be lower). */
#define COORD_TXN_MAX_PARTS 64

enum coord_txn_state {
	TXN_ACTIVE = 0,  /* begun; participants join; nothing durable */
	TXN_PREPARING,   /* Prepare sent; collecting votes */
	TXN_LOGGING,     /* every vote YES/READ_ONLY; COMMIT record queued, not yet durable */
	TXN_COMMITTING,  /* COMMIT durable; delivering the decision until every YES acked */
	TXN_ABORTING,    /* aborted; ABORT sent (presumed abort: nothing to log, nothing to wait) */
	TXN_DONE,        /* forgotten; the server frees it */
	TXN_NSTATES
};

/* An operator's forced abort of a COMMITTING transaction (coord_txn.dropping). */
enum coord_drop_state {
	DROP_NONE = 0,
	DROP_WRITING,    /* the DROP record is being written: no resends, no completion */
	DROP_RESTORING,  /* every participant acked meanwhile: the COMMIT record (and key)
			  * is being written again, then the transaction completes */
};

enum coord_part_state {
	PART_JOINED = 0, /* joined; no vote yet */
	PART_YES,
	PART_NO,
	PART_READ_ONLY,  /* left out of phase two */
	PART_ACKED,      /* voted YES and acknowledged the COMMIT */
};

/* Errors the machine reports to a requester; the values match tpc.proto's ErrorCode. */
enum coord_err {
	COORD_ERR_PROTOCOL = 2,
	COORD_ERR_NOT_FOUND = 3,
	COORD_ERR_NOT_ACTIVE = 4,
	COORD_ERR_LIMIT = 5,
	COORD_ERR_NOT_PARTICIPANT = 6,
	COORD_ERR_UNAVAILABLE = 7,
	COORD_ERR_INCARNATION = 11, /* Join/Vote from another incarnation than the one that joined */
	COORD_ERR_DENIED = 12,      /* Commit/Abort from a connection that is not the owner */
};

/* Outcomes and votes, matching tpc.proto's OutcomeKind and VoteKind values. */
enum coord_outcome { OUTCOME_UNKNOWN = 0, OUTCOME_COMMITTED = 1, OUTCOME_ABORTED = 2 };
enum coord_vote { VOTE_NO = 0, VOTE_YES = 1, VOTE_READ_ONLY = 2 };
enum coord_decision_kind { DECIDE_ABORT = 0, DECIDE_COMMIT = 1 };

/* Why a transaction aborted; coord_abort_reason_str() names it. */
enum coord_abort_reason {
	ABORT_NONE = 0,
	ABORT_VOTE_NO,
	ABORT_CLIENT,
	ABORT_TXN_TIMEOUT,
	ABORT_PREPARE_TIMEOUT,
	ABORT_PART_LOST,
	ABORT_CLIENT_GONE,
	ABORT_FENCED,
	ABORT_OPERATOR,
	ABORT_PART_RESTARTED, /* the incarnation that joined is gone (D8) */
	ABORT_UNLOGGABLE,  /* the store refused the COMMIT record itself (-EINVAL) */
};

struct coord_txn_part {
	uint32_t peer;
	uint8_t state;        /* enum coord_part_state */
	uint64_t incarnation; /* the incarnation that joined (D8); 0: unknown (recovered) */
};

struct coord_txn_config {
	uint32_t prepare_timeout_ms;
	uint32_t retry_initial_ms; /* first decision resend delay */
	uint32_t retry_max_ms;     /* cap of the doubling backoff */
	uint32_t log_retry_ms;     /* delay before retrying a failed COMMIT write */
	uint32_t jitter_pct;       /* retry delays grow by up to this percent (ev.rand) */
	uint32_t max_parts;        /* <= COORD_TXN_MAX_PARTS */
};

struct coord_txn {
	uint64_t txid;
	uint64_t begun_ms;
	uint64_t deadline_ms;      /* transaction timeout (ACTIVE) */
	uint64_t prepare_deadline_ms;
	uint64_t retry_at_ms;      /* next decision resend, or COMMIT log retry; 0: none */
	uint64_t decided_ms;       /* when the decision was taken */
	uint64_t armed_ms;         /* the server's: deadline currently in its timer heap */
	uint64_t waiter;           /* requester of Commit/Abort (connection id); 0: none */
	uint64_t waiter_req;       /* its request id */
	uint64_t owner;            /* connection that began it (0: recovered); the only one
				    * whose Commit/Abort is taken (coord_txn_step) */
	char *key;                 /* client transaction key, or NULL; owned by the server */
	uint8_t token[16];         /* the transaction token (BeginReply.txn_token); the
				    * server's, the machine never looks at it; zero: recovered */
	uint32_t retry_delay_ms;
	uint32_t attempts;         /* decision deliveries (first send included) */
	uint8_t state;             /* enum coord_txn_state */
	uint8_t abort_reason;      /* enum coord_abort_reason */
	uint8_t log_failures;      /* failed COMMIT writes so far */
	uint8_t nparts;
	uint8_t cap;
	uint8_t dropping;          /* enum coord_drop_state */
	uint32_t no_voter;         /* the peer that voted NO (when abort_reason is VOTE_NO) */
	char *no_reason;           /* the reason its first NO Vote gave, or NULL; owned by the
				    * server (dispatch.c), the machine never looks at it */
	struct coord_txn_part *parts;
	/* Observability, written and read by the server only (actions.c, metrics.c, the
	 * admin API); the machine never looks at them. Zero from init. */
	uint64_t prepare_ns;       /* Prepare sent (entered PREPARING), monotonic ns */
	uint64_t committing_ns;    /* the COMMIT record became durable, monotonic ns */
	int32_t err_status;        /* last error: a failed log write's status, or 0 */
	uint32_t err_peer;         /* last error: the participant it concerns, or 0 */
	uint8_t err_kind;          /* last error: enum coord_txn_err (server_int.h), 0: none */
	uint8_t stuck_warned;      /* the "stuck" WARN line was logged */
};

enum coord_ev_type {
	EV_JOIN,         /* peer joins (from its Hello'd connection) */
	EV_COMMIT,       /* client Commit: conn, req; refused unless conn is the owner */
	EV_ABORT,        /* client Abort: conn, req; refused unless conn is the owner */
	EV_VOTE,         /* peer voted: vote */
	EV_LOGGED,       /* the COMMIT record's batch finished: status (0 ok, <0 failed) */
	EV_ACK,          /* peer acked the decision */
	EV_TICK,         /* time passed: check deadlines */
	EV_PEER_UP,      /* peer (re)connected and said Hello */
	EV_PEER_DOWN,    /* peer's connection closed */
	EV_CLIENT_GONE,  /* the owner's connection closed */
	EV_FENCE,        /* a newer Begin under the same key fences this one */
	EV_OPERATOR,     /* an operator decided: decision, force (heuristic; docs/admin-api.md);
			  * a forced abort of COMMITTING only marks it (DROP_WRITING) */
	EV_DROPPED,      /* the operator's DROP record finished: status (0 ok, <0 failed) */
	EV_PEER_RESTARTED, /* peer said Hello as a newer incarnation: inc (D8) */
};

struct coord_event {
	enum coord_ev_type type;
	uint32_t peer;
	uint64_t conn;   /* EV_COMMIT/EV_ABORT: the requester's connection; EV_JOIN: request */
	uint64_t req;    /* request id to echo in the reply */
	int vote;        /* EV_VOTE: enum coord_vote */
	int status;      /* EV_LOGGED: 0 or negative error */
	int decision;    /* EV_OPERATOR: enum coord_decision_kind */
	int force;       /* EV_OPERATOR: override what the operator would otherwise be refused */
	uint64_t inc;    /* EV_JOIN: the joining incarnation; EV_VOTE: the one the vote names;
			  * EV_PEER_RESTARTED: the new incarnation */
	uint32_t rand;   /* any event: a random value from the server, for retry jitter */
};

enum coord_act_type {
	ACT_SEND_PREPARE,   /* peer */
	ACT_SEND_DECISION,  /* peer, decision */
	ACT_LOG_COMMIT,     /* write the COMMIT record (participants: those with state YES);
			     * also when a raced DROP is undone (DROP_RESTORING) */
	ACT_LOG_COMPLETE,   /* every YES voter acked: mark the record completed (unforced) */
	ACT_REPLY_JOIN,     /* conn, req: join accepted */
	ACT_REPLY_OUTCOME,  /* conn, req, outcome, reason */
	ACT_REPLY_ERROR,    /* conn, req, err */
	ACT_FORGET,         /* the transaction is done: remove and free it */
};

struct coord_action {
	enum coord_act_type type;
	uint32_t peer;
	int decision;
	int outcome;
	int err;
	const char *reason; /* static string */
	uint64_t conn;
	uint64_t req;
};

/* Actions from one step. A step emits at most two per participant plus a few more. */
#define COORD_MAX_ACTIONS (2 * COORD_TXN_MAX_PARTS + 8)

struct coord_actions {
	size_t n;
	struct coord_action a[COORD_MAX_ACTIONS];
};

/**
 * @brief Initialise a transaction in ACTIVE.
 * @param timeout_ms transaction timeout: ACTIVE longer than this aborts.
 */
void coord_txn_init(struct coord_txn *t, uint64_t txid, uint64_t owner, uint64_t now_ms,
		    uint32_t timeout_ms);

/**
 * @brief Initialise a transaction recovered from the log: COMMITTING, every listed
 *        participant YES (not acked). The caller adds the participants with
 *        coord_txn_add_part().
 */
void coord_txn_init_recovered(struct coord_txn *t, uint64_t txid, uint64_t now_ms);

/** @brief Add a participant (recovery, or Join). @return 0, -ENOSPC at the limit, -ENOMEM. */
int coord_txn_add_part(struct coord_txn *t, uint32_t peer, uint8_t state, uint32_t max_parts);

/** @brief Release what the transaction owns (participant array). Not the key. */
void coord_txn_release(struct coord_txn *t);

/**
 * @brief Apply one event at time @p now_ms; append the actions to @p out.
 * @return 0 if the event applied; a positive enum coord_err if it was refused (an
 *         ACT_REPLY_ERROR is then in @p out where there is a requester to tell).
 */
int coord_txn_step(struct coord_txn *t, const struct coord_txn_config *cfg,
		   const struct coord_event *ev, uint64_t now_ms, struct coord_actions *out);

/* What an operator's decision (EV_OPERATOR) would do to an open transaction. */
enum coord_op_plan {
	COORD_OP_NOOP, /* it already has that outcome */
	COORD_OP_STEP, /* the machine decides now (abort, or commit through the log) */
	COORD_OP_DROP, /* a forced abort of a durable COMMIT: the server deletes the record */
};

struct coord_op_check {
	enum coord_op_plan plan;
	const char *overrode; /* the decision it overrides: "none" or "COMMIT" */
	const char *already;  /* COORD_OP_NOOP: the outcome it has ("COMMITTED"); else NULL */
	const char *why;      /* refused: why, for the operator */
};

/**
 * @brief The operator's rules, in one place: EV_OPERATOR follows them, and the admin API
 *        asks first so it can refuse before it writes an audit record. Pure.
 * @param decision enum coord_decision_kind; @param force override what is else refused.
 * @return 0 (accepted: out->plan) or COORD_ERR_NOT_ACTIVE (refused: out->why).
 */
int coord_txn_operator_check(const struct coord_txn *t, int decision, int force,
			     struct coord_op_check *out);

/** @brief The earliest time the transaction needs an EV_TICK, or 0 for none. */
uint64_t coord_txn_next_deadline(const struct coord_txn *t);

/** @brief The participant slot for @p peer, or NULL. */
struct coord_txn_part *coord_txn_find_part(struct coord_txn *t, uint32_t peer);

/** @brief Names for logs and the admin API. */
const char *coord_txn_state_str(enum coord_txn_state s);
const char *coord_part_state_str(enum coord_part_state s);
const char *coord_abort_reason_str(enum coord_abort_reason r);

#endif
