/*
 * server_int.h - the coordinator server's internal state, shared by server.c (start-up,
 * timers, shutdown), peers.c (the participant table), conn.c (connections and framing), dispatch.c (requests into the
 * state machine) and actions.c (carrying out what the state machine returns).
 *
 * Everything here lives on the event-loop thread, except the log writer's thread,
 * which only sees struct coord_rec records handed to it through the batch writer.
 */
#ifndef TPC_COORD_SERVER_INT_H
#define TPC_COORD_SERVER_INT_H

#include <stdint.h>

#include <event2/util.h>

#include "aborts.h"
#include "batch_writer.h"
#include "deadline_timer.h"
#include "faults.h"
#include "frame.h"
#include "lazy_queue.h"
#include "log_store.h"
#include "maps.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"
#include "txn.h"
#include "util.h"
#include "wire.h"

struct event_base;
struct event;
struct evconnlistener;
struct bufferevent;

/* Bits of a txid: the epoch above, a per-incarnation sequence below. */
#define COORD_TXID_SEQ_BITS 40
#define COORD_TXID_SEQ_MAX ((1ull << COORD_TXID_SEQ_BITS) - 1)
#define COORD_TXID_EPOCH(txid) ((txid) >> COORD_TXID_SEQ_BITS)

/* CONN_BINDING: a participant's Hello whose name binding is being made durable; it
 * becomes CONN_PARTICIPANT when the HelloReply goes out (identity.c). */
enum conn_role { CONN_NEW = 0, CONN_CLIENT, CONN_PARTICIPANT, CONN_BINDING };

/* Longest participant name a Hello may carry (it goes into log records). */
#define COORD_MAX_PART_NAME 255
#define COORD_MAX_PART_NAME_STR "255"

struct conn {
	uint64_t id;                /* slot | generation << 32; never reused while alive */
	struct coord_server *srv;
	struct bufferevent *bev;
	struct tpc_frame_decoder dec;
	enum conn_role role;
	uint32_t peer;              /* participant: index + 1 into srv->peers; 0 none */
	uint32_t open_txns;         /* transactions this connection began, still open */
	uint64_t incarnation;       /* participant: the incarnation its Hello named */
	int closing;                /* flushing an Error before closing */
	int throttled;              /* reads stopped: unsent output over cfg.max_output */
	uint64_t accepted_ms;       /* the Hello deadline counts from here */
	uint64_t last_read_ms;      /* last bytes from the peer (idle timeout) */
	uint64_t frame_since_ms;    /* first byte of the unfinished frame; 0: none */
	uint32_t held;              /* decoder bytes counted in srv->partial_bytes */
	char addr[64];
	char cn[TPC_TLS_MAX_CN + 1]; /* TLS: the verified certificate's CN; "" without TLS */
};

/* Where a participant name's binding to a participant id stands (identity.c, D8). */
enum peer_bind { PEER_UNBOUND = 0, PEER_BINDING, PEER_BOUND };

/* A prepared transaction of a participant's resource manager it could not resolve, as its
 * last OrphanReport said (peers.c; listed by the admin API). */
struct peer_orphan {
	uint64_t txid;
	uint64_t age_ms;            /* at the report */
	uint32_t locks;
	char gid[TPC_WIRE_MAX_NAME + 1];
	char reason[160];
};

struct peer {
	char *name;
	unsigned char pid[COORD_PARTICIPANT_ID_LEN]; /* bound participant id (BINDING, BOUND) */
	uint8_t bound;              /* enum peer_bind */
	uint8_t forgetting;         /* an operator's forget is being written */
	uint32_t binds_inflight;    /* BIND records queued, not yet done */
	uint64_t bound_wall_ms;     /* when the binding was made durable */
	uint64_t incarnation;       /* newest seen since this coordinator started; 0: none */
	uint64_t conn;              /* live connection id, 0 when disconnected */
	uint64_t last_seen_wall_ms; /* last frame from it (or its disconnect) */
	uint64_t connects;
	char addr[64];              /* address of its latest connection */
	struct peer_orphan *orphans; /* its last OrphanReport (kept across disconnects) */
	uint32_t norphans;
	uint64_t orphans_wall_ms;   /* when it came; 0: none yet */
};

/* What a transaction's last_error says (coord_txn.err_kind); admin.c words it. */
enum coord_txn_err {
	TXN_ERR_NONE = 0,
	TXN_ERR_PREPARE_NOT_SENT,   /* err_peer not connected when its Prepare was due */
	TXN_ERR_DECISION_NOT_SENT,  /* err_peer not connected when its decision was due */
	TXN_ERR_LOG_FAILED,         /* the COMMIT record write failed: err_status */
	TXN_ERR_PEER_LOST,          /* err_peer disconnected before acknowledging the COMMIT */
};

struct coord_admin;

struct coord_stats {
	uint64_t begun, committed, aborted, unknown;
	uint64_t bad_frames, refused_conns;
	uint64_t timed_out_conns;   /* closed by the hello, idle or frame timeout */
	uint64_t accept_errors;     /* accept() failures (EMFILE, ENFILE, ...) */
	uint64_t decisions_sent, decision_resends, prepares_sent;
	uint64_t log_failures;
	uint64_t swept;             /* log entries deleted by compaction */
};

struct coord_server {
	struct coord_config cfg;
	struct coord_txn_config tcfg;
	struct tpc_logger log;
	struct event_base *base;
	struct evconnlistener *listener;
	SSL_CTX *tls;               /* TLS on: new connections' context (SIGHUP swaps it) */
	struct event *sig_term, *sig_int, *sweep, *sweep_next;
	struct event *sig_hup;      /* reloads the config (server.c, config.h) */
	struct coord_log store;
	struct batch_writer *writer;

	uint64_t id, epoch, next_seq;
	uint64_t rng;               /* retry jitter (coord_rand), seeded at start */
	uint8_t token_pool[512];    /* random bytes for transaction tokens (token.c) */
	uint32_t token_pool_left;   /* unused bytes at the pool's end; 0: refill */
	struct u64map txns;         /* txid -> struct coord_txn * */
	struct strmap live_keys;    /* client key -> txid of its open transaction */
	struct deadline_timer deadlines; /* each open transaction's next EV_TICK */
	struct coord_aborts *aborts; /* why recent transactions aborted (aborts.h) */

	struct peer *peers;
	uint32_t npeers, peers_cap;

	struct conn **conns;        /* slot table */
	uint32_t *conn_gen;
	uint32_t conns_cap, nconns;
	uint64_t partial_bytes;     /* decoder buffers over all connections (conn.c) */
	struct event *reaper;       /* conn.c: hello, idle and frame timeouts */
	struct event *accept_retry; /* conn.c: re-enables the listener after an error */
	uint32_t accept_delay_ms;   /* current accept backoff; 0: no error lately */
	uint64_t accept_logged_ms;  /* last accept error logged (at most one a second) */
	uint64_t accept_quiet;      /* errors not logged since then */

	/* Unforced records (COMPLETE) wait here and ride with the next forced batch, or go
	 * on their own COORD_LAZY_FLUSH_MS after the first one waited (lazy_queue.h). */
	struct lazy_queue lazy;

	struct tpc_arena arena;     /* unpacked Envelopes, one frame at a time */
	/* Set by server.c: where conn.c hands each valid frame and each closed connection
	 * (dispatch.c's coord_dispatch() and coord_on_conn_closed()), so conn.c calls no
	 * module above it. */
	int (*on_frame)(struct conn *c, const Tpc__Envelope *env);
	void (*on_closed)(struct coord_server *s, struct conn *c);
	struct coord_stats stats;
	struct tpc_faults faults;   /* armed fault points (TPC_FAULTS), parsed at start */
	int stopping;
	int exit_code;
	int sweeping;               /* a SWEEP record is with the writer (one at a time) */

	/* Operations: admin API (admin.c), metrics (metrics.c), heuristics (heuristic.c). */
	struct coord_metrics metrics;
	struct coord_admin *admin;  /* HTTP server (NULL when off), stuck watch, pending ops */
	/* Set by admin.c: a COMMIT record is done (after its step); NULL: nobody waits. */
	void (*commit_logged)(struct coord_server *s, uint64_t txid, int status);
	int ready;                  /* recovery done and the RPC listener up (/readyz) */
	uint64_t started_ms, started_wall_ms;
	/* --log etcd (ha.c): a standby serves nothing and answers ERR_NOT_LEADER. */
	struct coord_ha *ha;
	int standby;
};

/* token.c: txids and transaction tokens (proto/tpc.proto, "Who may do what") */
/** @brief 16 random bytes for a new transaction. @return 0, or -errno from getrandom. */
int coord_token_new(struct coord_server *s, uint8_t out[TPC_TXN_TOKEN_LEN]);
/**
 * @brief May a Join carrying @p given (@p len bytes; 0: none) join @p t? Compared in
 *        constant time; no token is refused only with --require-txn-token.
 * @param[out] why the reason when refused (static)
 * @return 1 if it may, 0 if not
 */
int coord_token_check(const struct coord_server *s, const struct coord_txn *t,
		      const uint8_t *given, size_t len, const char **why);
/**
 * The next txid (epoch << 40 | seq). When the 40-bit sequence is used up, the epoch is
 * bumped durably first (write_meta; Prepare, Decision and HelloReply carry s->epoch, so
 * they carry the new one) and the sequence starts again at 1. @return 0 when the epoch
 * could not be bumped (logged): no txid.
 */
uint64_t coord_next_txid(struct coord_server *s);

/* conn.c */
int coord_listen(struct coord_server *s);
struct conn *coord_conn_get(struct coord_server *s, uint64_t id);
void coord_conn_send(struct conn *c, const Tpc__Envelope *env);
/** Write what is queued for @p c now (before a fault point may crash). NULL: no-op. */
void coord_conn_flush(struct conn *c);
void coord_conn_send_error(struct conn *c, uint64_t req, int code, const char *msg,
			   uint64_t txid);
void coord_conn_fail(struct conn *c, int code, const char *msg);
/** coord_conn_fail, with the Error answering request @p req. */
void coord_conn_fail_req(struct conn *c, uint64_t req, int code, const char *msg);
void coord_conn_send_hello_reply(struct conn *c, uint64_t req);
void coord_conns_close_all(struct coord_server *s);
/** Free the reaper and accept-retry events (after coord_conns_close_all). */
void coord_conns_free_events(struct coord_server *s);
/** With TLS on (coord_config_tls_on), make the server context s->tls, used by the
 *  protocol port and the admin listener. @return 0 or -EINVAL (logged). */
int coord_tls_start(struct coord_server *s);
/** SIGHUP: read the TLS files again; new connections (protocol and admin) use them,
 *  open ones keep theirs. A file that fails keeps the running context (logged). */
void coord_tls_reload(struct coord_server *s);

/* dispatch.c */
int coord_dispatch(struct conn *c, const Tpc__Envelope *env);
void coord_on_conn_closed(struct coord_server *s, struct conn *c);

/* actions.c */
void coord_step(struct coord_server *s, struct coord_txn *t, const struct coord_event *ev);
/** Step @p type (EV_PEER_UP, EV_PEER_DOWN) on every transaction @p peer is part of. */
void coord_step_peer_all(struct coord_server *s, uint32_t peer, enum coord_ev_type type);
/** The next value of the server's jitter generator (events carry one to the machine). */
uint32_t coord_rand(struct coord_server *s);
int coord_step_rc(struct coord_server *s, struct coord_txn *t, const struct coord_event *ev);
void coord_log_done(void *ctx, struct bw_item *item, int status);
int coord_log_write(void *ctx, struct bw_item *head, size_t n);
int coord_log_sync(void *ctx);
void coord_free_txn(struct coord_server *s, struct coord_txn *t);
/** The sentence an aborted @p t's Outcome.reason carries (a NO vote names the participant
 *  and its reason), in @p buf; @return buf, or a static string. */
const char *coord_abort_text(struct coord_server *s, const struct coord_txn *t, char *buf,
			     size_t len);
void coord_arm(struct coord_server *s, struct coord_txn *t);
#define COORD_LAZY_FLUSH_MS 50
#define COORD_LAZY_MAX 4096

/* admin.c: start before recovery (binds the admin address), free after the log
 * writer (pending operator calls get their answer); heuristic.c: operator decisions */
int coord_admin_start(struct coord_server *s);
void coord_admin_free(struct coord_server *s);
/** SIGHUP: re-read --admin-token-file (a bad file keeps the old token), re-pace the
 *  stuck watch for a changed --stuck-after. */
void coord_admin_reload(struct coord_server *s);

/** What an operator call came to; admin.c alone turns it into an HTTP status. */
enum admin_code {
	ADMIN_OK = 0,
	ADMIN_BAD_REQUEST,          /* 400 */
	ADMIN_NOT_FOUND,            /* 404 */
	ADMIN_CONFLICT,             /* 409: the state does not allow it */
	ADMIN_FAILED,               /* 500 */
	ADMIN_UNAVAILABLE,          /* 503: ask again (log unreadable, shutting down) */
};

/* identity.c: participant name bindings and incarnations (D8) */
int coord_identity_load(struct coord_server *s);

/* ha.c: a coordinator of a group whose log is in etcd (docs/ha.md). */
/** Open the etcd log and campaign once: s->standby says whether another leads. */
int coord_ha_open(struct coord_server *s);
/** A standby: wait for leadership on a thread; coord_lead() runs when it comes. */
int coord_ha_wait(struct coord_server *s);
/** 1: this coordinator leads and may serve; 0: a standby, or it just stepped down. */
int coord_ha_check(struct coord_server *s);
/** A standby's answer to any request: ERR_NOT_LEADER naming the leader; closes. */
int coord_ha_refuse(struct conn *c, uint64_t req);
/** The leader's address for Error.leader ("" when unknown). */
const char *coord_ha_leader(struct coord_server *s, char *buf, size_t len);
void coord_ha_stop(struct coord_server *s);   /* before the store closes */
void coord_ha_free(struct coord_server *s);   /* after */
/* server.c: the steps of taking the lead: a new durable epoch (D7); bindings and
 * undelivered decisions loaded, resends armed, ready. */
int coord_take_epoch(struct coord_server *s);
int coord_lead(struct coord_server *s);
/** A participant's Hello. @return 1 if the connection was closed. */
int coord_identity_hello(struct conn *c, uint64_t req, const Tpc__Hello *h);
/** 0 (ADMIN_OK) if @p peer's binding may be forgotten now; else an enum admin_code and
 *  @p why. */
int coord_identity_forget_blocker(struct coord_server *s, uint32_t peer, char *why,
				  size_t len);
/** The UNBIND record of @p peer is durable: forget the binding in memory too. */
void coord_identity_unbound(struct coord_server *s, uint32_t peer);
void coord_participant_id_hex(const unsigned char *id,
			      char out[2 * COORD_PARTICIPANT_ID_LEN + 1]);

/* server.c */
struct peer *coord_peer(struct coord_server *s, uint32_t peer_id);
/** The id for @p name, registered on first sight (a free slot is reused).
 *  @return 0 when out of memory, or when @p limit names are known already. */
uint32_t coord_peer_intern(struct coord_server *s, const char *name, uint32_t limit);
/** Free @p peer's name if nothing refers to it any more: no binding (nor one being
 *  written or forgotten), no connection, no transaction. Its id may then be reused. */
void coord_peer_release(struct coord_server *s, uint32_t peer);
/** Free every name and the table (shutdown). */
void coord_peers_free(struct coord_server *s);
/** Replace @p peer's orphans with those of @p r. @return 0 or -ENOMEM (kept as before). */
int coord_peer_set_orphans(struct coord_server *s, uint32_t peer, const Tpc__OrphanReport *r);

#endif
