/*
 * proxy.h - tpc-faultproxy's event-driven side: the proxy, its connection pairs and the
 * control connections, shared by proxy_conn.c, proxy_control.c and tpc_faultproxy.c.
 *
 * Everything hangs off one struct fp_proxy, which main() owns; there is no process-wide
 * mutable state. One libevent loop runs it all on one thread.
 *
 * A pair is one accepted client connection and the upstream connection opened for it.
 * Each pair has two directions (client to upstream, upstream to client); a direction
 * owns a frame decoder, a PRNG stream, a queue of frames waiting for their release time
 * and at most one frame held back for reordering. Bytes leave a direction only as whole
 * frames.
 */
#ifndef TPC_FAULTPROXY_PROXY_H
#define TPC_FAULTPROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "frame.h"
#include "proxy_core.h"
#include "util.h"

struct event;
struct event_base;
struct bufferevent;
struct evconnlistener;

#define FP_MAX_PAIRS 4096u
#define FP_MAX_CTLS 32u

/* Counters reported by `stats`. */
struct fp_stats {
	uint64_t accepted;   /* pairs ever accepted */
	uint64_t frames_in;  /* whole frames read, both directions */
	uint64_t forwarded;  /* frames written on (a duplicate's second copy not counted) */
	uint64_t dropped;    /* dropped by chance, black-holed by a partition, or discarded
				by a reset or a close while waiting */
	uint64_t duplicated; /* extra copies written */
	uint64_t reordered;  /* frames held back and sent after their successor */
	uint64_t delayed;    /* frames given a non-zero delay */
	uint64_t resets;     /* pairs closed abruptly by `reset` or SIGUSR1 */
};

/* A frame waiting in a direction (its body; the header is written on release). */
struct fp_frame {
	TAILQ_ENTRY(fp_frame) link;
	uint64_t due_ms; /* monotonic release time */
	int dup;         /* write it twice */
	uint32_t size;   /* body length */
	uint8_t bytes[];
};

TAILQ_HEAD(fp_frame_queue, fp_frame);

struct fp_pair;

struct fp_dir {
	struct fp_pair *pair;
	int from;                    /* index of the source side in pair->bev[] */
	struct tpc_frame_decoder dec;
	struct fp_rng rng;
	struct fp_frame_queue queue; /* due times never decrease along the queue */
	size_t queued_bytes;
	uint64_t last_due_ms;        /* keeps release times in arrival order */
	struct fp_frame *held;       /* held back for reordering, or NULL */
	uint64_t held_until_ms;
	struct event *timer;
	int throttled;               /* source reading paused until the sink drains */
};

struct fp_pair {
	LIST_ENTRY(fp_pair) link;
	struct fp_proxy *px;
	uint64_t id;
	struct bufferevent *bev[2];  /* [0] client, [1] upstream (NULL until connected to) */
	struct fp_dir dir[2];        /* [0] client to upstream, [1] upstream to client */
	int closing;                 /* one side is gone; the other drains, then closes */
	struct event *close_timer;   /* bounds the drain */
};

struct fp_ctl {
	LIST_ENTRY(fp_ctl) link;
	struct fp_proxy *px;
	struct bufferevent *bev;
	int closing; /* free once the last reply is written */
	int quit;    /* stop the proxy once the last reply is written */
};

struct fp_config {
	const char *listen;
	const char *upstream;
	const char *control;         /* NULL: no control listener */
	struct sockaddr_storage listen_addr, upstream_addr, control_addr;
	socklen_t listen_len, upstream_len, control_len;
	uint64_t seed;
	uint32_t max_frame;
	struct fp_faults faults;     /* the initial settings */
};

struct fp_proxy {
	struct tpc_logger lg;
	struct fp_config cfg;
	struct fp_faults faults;     /* live settings */
	struct event_base *base;
	struct evconnlistener *listener;
	struct evconnlistener *ctl_listener;
	struct event *sig_usr1, *sig_term, *sig_int;
	LIST_HEAD(, fp_pair) pairs;
	size_t npairs;
	LIST_HEAD(, fp_ctl) ctls;
	size_t nctls;
	int partitioned;
	struct fp_stats st;
};

/* ---- proxy_conn.c ------------------------------------------------------------------ */

/** @brief Take over an accepted client socket: make its pair, connect upstream. */
void fp_pair_accept(struct fp_proxy *px, int fd);

/** @brief Close every pair abruptly (RST). @return how many were closed. */
size_t fp_reset_all(struct fp_proxy *px);

/** @brief Close every pair quietly (at shutdown); nothing is counted. */
void fp_close_all(struct fp_proxy *px);

/** @brief Stop forwarding: black-hole every frame, including those waiting. */
void fp_partition(struct fp_proxy *px);

/** @brief Forward again; connect the pairs accepted during the partition. */
void fp_heal(struct fp_proxy *px);

/* ---- proxy_control.c --------------------------------------------------------------- */

/** @brief Take over an accepted control socket. */
void fp_ctl_accept(struct fp_proxy *px, int fd);

/** @brief Close every control connection (at shutdown). */
void fp_ctl_close_all(struct fp_proxy *px);

/** @brief Render the `stats` reply (without newline) into @p buf. */
void fp_stats_format(const struct fp_proxy *px, char *buf, size_t cap);

#endif
