/*
 * server_int.h - the coordinator server's internal state, shared by server.c (start-up,
 * timers, shutdown), conn.c (connections and framing), dispatch.c (requests into the
 * state machine) and actions.c (carrying out what the state machine returns).
 *
 * Everything here lives on the event-loop thread, except the log writer's thread,
 * which only sees struct coord_rec records handed to it through the batch writer.
 */
#ifndef TPC_COORD_SERVER_INT_H
#define TPC_COORD_SERVER_INT_H

#include <stdint.h>

#include "batch_writer.h"
#include "faults.h"
#include "frame.h"
#include "log_store.h"
#include "maps.h"
#include "server.h"
#include "txn.h"
#include "util.h"
#include "wire.h"

struct event_base;
struct event;
struct evconnlistener;
struct bufferevent;

/* Bits of a txid: the epoch above, a per-incarnation sequence below. */
#define COORD_TXID_SEQ_BITS 40
#define COORD_TXID_EPOCH(txid) ((txid) >> COORD_TXID_SEQ_BITS)

enum conn_role { CONN_NEW = 0, CONN_CLIENT, CONN_PARTICIPANT };

struct conn {
	uint64_t id;                /* slot | generation << 32; never reused while alive */
	struct coord_server *srv;
	struct bufferevent *bev;
	struct tpc_frame_decoder dec;
	enum conn_role role;
	uint32_t peer;              /* participant: index + 1 into srv->peers; 0 none */
	uint32_t open_txns;         /* transactions this connection began, still open */
	int closing;                /* flushing an Error before closing */
	char addr[64];
};

struct peer {
	char *name;
	uint64_t conn;              /* live connection id, 0 when disconnected */
	uint64_t last_seen_wall_ms;
	uint64_t connects;
};

struct coord_stats {
	uint64_t begun, committed, aborted, unknown;
	uint64_t bad_frames, refused_conns;
	uint64_t decisions_sent, decision_resends, prepares_sent;
	uint64_t log_failures;
};

struct coord_server {
	struct coord_config cfg;
	struct coord_txn_config tcfg;
	struct tpc_logger log;
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *sig_term, *sig_int, *timer, *sweep;
	struct coord_log store;
	struct batch_writer *writer;

	uint64_t id, epoch, next_seq;
	struct u64map txns;         /* txid -> struct coord_txn * */
	struct strmap live_keys;    /* client key -> txid of its open transaction */
	struct deadline_heap deadlines;
	uint64_t timer_at_ms;       /* when the libevent timer is armed for; 0: not armed */

	struct peer *peers;
	uint32_t npeers, peers_cap;

	struct conn **conns;        /* slot table */
	uint32_t *conn_gen;
	uint32_t conns_cap, nconns;

	struct coord_stats stats;
	struct tpc_faults faults;   /* armed fault points (TPC_FAULTS), parsed at start */
	int stopping;
	int exit_code;
};

/* conn.c */
int coord_listen(struct coord_server *s);
struct conn *coord_conn_get(struct coord_server *s, uint64_t id);
void coord_conn_send(struct conn *c, const Tpc__Envelope *env);
/** Write what is queued for @p c now (before a fault point may crash). NULL: no-op. */
void coord_conn_flush(struct conn *c);
void coord_conn_send_error(struct conn *c, uint64_t req, int code, const char *msg,
			   uint64_t txid);
void coord_conn_fail(struct conn *c, int code, const char *msg);
void coord_conns_close_all(struct coord_server *s);

/* dispatch.c */
int coord_dispatch(struct conn *c, const Tpc__Envelope *env);
void coord_on_conn_closed(struct coord_server *s, struct conn *c);

/* actions.c */
void coord_step(struct coord_server *s, struct coord_txn *t, const struct coord_event *ev);
int coord_step_rc(struct coord_server *s, struct coord_txn *t, const struct coord_event *ev);
void coord_log_done(void *ctx, struct bw_item *item, int status);
int coord_log_write(void *ctx, struct bw_item *head, size_t n);
void coord_free_txn(struct coord_server *s, struct coord_txn *t);
void coord_arm(struct coord_server *s, struct coord_txn *t);

/* server.c */
struct peer *coord_peer(struct coord_server *s, uint32_t peer_id);
uint32_t coord_peer_intern(struct coord_server *s, const char *name);
void coord_timer_arm(struct coord_server *s, uint64_t at_ms);

#endif
