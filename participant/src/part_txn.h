/*
 * part_txn.h - the participant stub's per-transaction state machine, pure.
 *
 * part_txn_step() takes one event (a staged write, a coordinator message, a log or
 * sink completion, time) and returns actions (send Join/Vote/Ack/StatusQuery, queue
 * the PREPARED record, queue the sink apply, discard, complete stage callbacks). The
 * caller owns the staged writes and the sockets; the machine only decides.
 */
#ifndef TPC_PART_TXN_H
#define TPC_PART_TXN_H

#include <stddef.h>
#include <stdint.h>

enum part_state {
	PS_JOINING = 0, /* first write staged; Join sent (or due on connect), reply awaited */
	PS_ACTIVE,      /* joined; staging writes; no Prepare yet */
	PS_LOGGING,     /* sink said yes; PREPARED record queued, not yet durable */
	PS_PREPARED,    /* PREPARED durable, YES sent; waiting for the decision (D2) */
	PS_APPLYING,    /* COMMIT received; sink apply queued */
	PS_EXPIRED,     /* staged writes expired (discarded), NO sent: a tombstone that
			   refuses later stage calls (never a new Join) until the decision */
	PS_DONE,        /* finished: the caller frees it */
	PS_NSTATES
};

enum part_ev_type {
	PEV_BEGIN,        /* the first write made the txn: token (kept), connected (the Join
			     goes out now; otherwise at PEV_CONN_UP) */
	PEV_STAGE,        /* another write staged (the first one creates the txn): token */
	PEV_JOIN_OK,
	PEV_JOIN_FAILED,  /* err: why */
	PEV_PREPARE,      /* epoch; sink_ok: the sink's prepare() answer (0 yes, <0 no) */
	PEV_LOGGED,       /* PREPARED record batch finished: status */
	PEV_DECISION,     /* commit (1/0), epoch */
	PEV_APPLIED,      /* sink apply finished: status */
	PEV_STATUS,       /* StatusQuery answer: status, an enum part_status */
	PEV_REFUSED,      /* an Error for this txn's vote: err (TPC_ENOTFOUND, ...) */
	PEV_TICK,
	PEV_CONN_UP,      /* (re)connected and Hello answered */
	PEV_CONN_DOWN,
};

/* PEV_STATUS's status: the coordinator's answer to a StatusQuery. */
enum part_status {
	PART_STATUS_PENDING = 0, /* still live there: it waits for votes */
	PART_STATUS_COMMITTED,
	PART_STATUS_ABORTED,     /* or no decision and not live (D5, presumed abort) */
	PART_STATUS_FORGOTTEN,   /* an operator forgot the decision: never guess */
};

struct part_event {
	enum part_ev_type type;
	const uint8_t *token; /* PEV_BEGIN, PEV_STAGE: the write's transaction token (16
			       * bytes), or NULL */
	int connected;        /* PEV_BEGIN: the coordinator connection is up */
	uint64_t epoch;
	int commit;
	int status;
	int sink_ok;
	int err;
	const char *reason;   /* PEV_PREPARE with sink_ok < 0: the sink's reason, or NULL;
			       * it must live until the step's actions ran */
};

enum part_act_type {
	PACT_SEND_JOIN,
	PACT_SEND_VOTE,       /* vote: 1 YES, 0 NO */
	PACT_SEND_ACK,
	PACT_SEND_STATUS_QUERY,
	PACT_LOG_PREPARED,    /* queue the PREPARED record (D2: vote only after PEV_LOGGED ok) */
	PACT_APPLY,           /* queue sink commit + record drop (D3: ack after PEV_APPLIED ok) */
	PACT_DISCARD,         /* sink abort; drop the PREPARED record if there is one */
	PACT_COMPLETE_STAGES, /* run pending stage callbacks with err */
	PACT_REJECT_STALE,    /* a message from an older epoch was ignored (D7) */
	PACT_REJECT_JUMP,     /* a message whose epoch jumped too far was ignored (err:
				 TPC_EEPOCH); the highest epoch is unchanged */
	PACT_REPORT_FORGOTTEN, /* PREPARED, and the coordinator forgot the outcome: log ERROR */
};

struct part_action {
	enum part_act_type type;
	int vote;
	int err;
	const char *reason;
};

#define PART_MAX_ACTIONS 8

struct part_actions {
	size_t n;
	struct part_action a[PART_MAX_ACTIONS];
};

struct part_txn_config {
	uint32_t txn_timeout_ms;      /* staged writes with no Prepare expire */
	uint32_t query_initial_ms;    /* first StatusQuery after this long prepared */
	uint32_t query_max_ms;        /* cap of the doubling backoff */
	uint32_t apply_retry_ms;      /* sink commit failed: retry after */
	uint32_t tombstone_ms;        /* an EXPIRED tombstone is dropped after this at worst */
	uint64_t max_epoch_jump;      /* a coordinator epoch more than this above the highest
					 seen (when one was seen) is refused: part_epoch_check() */
};

struct part_txn {
	uint64_t txid;
	uint64_t created_ms;
	uint64_t expires_ms;     /* ACTIVE/JOINING: staged writes expire; EXPIRED: dropped */
	uint64_t query_at_ms;    /* PREPARED, EXPIRED: next StatusQuery; APPLYING after failure:
				    retry */
	uint64_t prepared_wall_ms;
	uint64_t armed_ms;       /* the caller's: deadline in its timer heap */
	uint32_t query_delay_ms;
	uint32_t queries;
	uint8_t state;
	uint8_t recovered;       /* loaded from the log at start */
	uint8_t apply_failed;
	uint8_t join_sent;       /* JOINING: the Join went out on the current connection */
	uint8_t tell_no;         /* EXPIRED: the coordinator may hold our Join: (re)send NO */
	uint8_t forgotten;       /* PREPARED: told FORGOTTEN once already (logged) */
	uint8_t has_token;       /* joined with a transaction token: every write must carry it */
	uint8_t token[16];       /* the token of the first write (sent in the Join) */
};

/** @brief Start a transaction at the first staged write (PS_JOINING). */
void part_txn_init(struct part_txn *t, uint64_t txid, uint64_t now_ms,
		   const struct part_txn_config *cfg);

/**
 * @brief Keep the first write's transaction token (@p token: 16 bytes, or NULL for none).
 *        Later writes must carry the same (PEV_STAGE: TPC_EDENIED otherwise).
 */
void part_txn_set_token(struct part_txn *t, const uint8_t *token);

/** What part_epoch_check() makes of a coordinator's epoch. */
enum part_epoch_verdict {
	PART_EPOCH_OK = 0,    /* not older than the highest seen, and a sane step above it */
	PART_EPOCH_STALE,     /* older than the highest seen (D7) */
	PART_EPOCH_JUMP,      /* more than max_epoch_jump above the highest seen: refused,
				 never remembered (a fake coordinator's must not lock out the
				 real one) */
};

/**
 * @brief Judge a coordinator epoch (HelloReply, Prepare, Decision) against the highest
 *        seen. The first epoch ever (@p highest 0) is always OK.
 * @param max_jump the bound; 0: PART_DEFAULT_MAX_EPOCH_JUMP
 */
enum part_epoch_verdict part_epoch_check(uint64_t epoch, uint64_t highest, uint64_t max_jump);

#define PART_DEFAULT_MAX_EPOCH_JUMP 1000000u

/** @brief A transaction recovered from the PREPARED log (PS_PREPARED, ask at once). */
void part_txn_init_recovered(struct part_txn *t, uint64_t txid, uint64_t now_ms,
			     uint64_t prepared_wall_ms);

/** The reason an EXPIRED transaction's NO vote gives. */
#define PART_EXPIRED_REASON "staged writes expired at this participant"

/**
 * @brief Apply one event. @p highest_epoch is the highest coordinator epoch seen; the
 *        machine raises it on newer Prepare/Decision and rejects older ones (D7), and
 *        ones more than cfg->max_epoch_jump above it (PACT_REJECT_JUMP).
 * @return 0, or a negative TPC_E* code when the event is refused (stage on a
 *         transaction that no longer takes writes: TPC_ENOTACTIVE; on one whose staged
 *         writes expired: TPC_EEXPIRED; a write whose token is not the one the
 *         transaction was joined with, or that lacks it: TPC_EDENIED)
 */
int part_txn_step(struct part_txn *t, const struct part_txn_config *cfg,
		  const struct part_event *ev, uint64_t now_ms, uint64_t *highest_epoch,
		  struct part_actions *out);

/** @brief Earliest time the transaction needs PEV_TICK; 0 for none. */
uint64_t part_txn_next_deadline(const struct part_txn *t);

const char *part_state_str(enum part_state s);

#endif
