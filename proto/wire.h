/*
 * wire.h - Envelopes on the wire: packing into a libevent output buffer with the frame
 * header, reading every complete frame out of an input buffer, and checking that an
 * unpacked Envelope carries the fields its body type requires.
 *
 * Internal to tpc (coordinator, libtpc, tools); not a public header.
 */
#ifndef TPC_PROTO_WIRE_H
#define TPC_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "tpc.pb-c.h"

struct evbuffer;

#define TPC_PROTOCOL_VERSION 2u
#define TPC_PROTOCOL_VERSION_STR "2"

/*
 * Longest strings tpc_wire_validate() lets through (bytes). Receivers may set lower
 * limits of their own (the coordinator's --max-key-len; participant names are 255).
 */
#define TPC_WIRE_MAX_NAME 255          /* Hello.name (participant or client label), Join */
#define TPC_WIRE_MAX_NAME_STR "255"
#define TPC_WIRE_MAX_KEY 4096          /* Begin.txn_key */
#define TPC_WIRE_MAX_KEY_STR "4096"
#define TPC_WIRE_MAX_REASON 1024       /* Abort.reason, Vote.reason */
#define TPC_WIRE_MAX_REASON_STR "1024"
#define TPC_WIRE_MAX_ORPHANS 64        /* OrphanReport.orphans */
#define TPC_WIRE_MAX_ORPHANS_STR "64"
/* Length of a transaction token (BeginReply/Join/KvPut.txn_token); empty means none. */
#define TPC_TXN_TOKEN_LEN 16

/** Convenience: one Envelope with every sub-message it may point at, on the stack. */
typedef Tpc__Envelope tpc_env;

/**
 * @brief Append one framed Envelope to @p out (one reserve, no intermediate copy).
 * @return 0, or -ENOMEM, or -EMSGSIZE if the packed size exceeds @p max_frame.
 */
int tpc_wire_send(struct evbuffer *out, const Tpc__Envelope *env, uint32_t max_frame);

struct bufferevent;

/**
 * @brief Write what is queued on a socket bufferevent now, blocking up to 1 s. Used
 *        before a fault point may crash the process, so "after send" means on the wire.
 *        (A socket bufferevent keeps the start of its output buffer frozen; this
 *        unfreezes it around the write, as libevent's own write callback does.) On a
 *        TLS bufferevent the bytes go through SSL_write, never around it.
 */
void tpc_wire_flush_now(struct bufferevent *bev);

/* Callback types of libevent's bufferevents, without including its headers here. */
typedef void (*tpc_bev_data_cb)(struct bufferevent *bev, void *arg);
typedef void (*tpc_bev_event_cb)(struct bufferevent *bev, short what, void *arg);

/**
 * @brief Output backpressure, shared by the coordinator and tpc-kv: stop reading from
 *        @p bev until its output drains to @p low bytes, when @p drained runs (as the
 *        write callback); an output that makes no progress for @p timeout_ms is reported
 *        to @p event as BEV_EVENT_TIMEOUT.
 */
void tpc_wire_throttle(struct bufferevent *bev, size_t low, uint32_t timeout_ms,
		       tpc_bev_data_cb read, tpc_bev_data_cb drained, tpc_bev_event_cb event,
		       void *arg);

/** @brief Undo tpc_wire_throttle(): no write callback, no timeouts, reading again. */
void tpc_wire_resume(struct bufferevent *bev, tpc_bev_data_cb read, tpc_bev_event_cb event,
		     void *arg);

/**
 * @brief Pack one framed Envelope into a caller buffer (for blocking tools and tests).
 * @return bytes written (header included), or -EMSGSIZE if @p cap is too small.
 */
long tpc_wire_pack(const Tpc__Envelope *env, uint8_t *buf, size_t cap);

/** Called once per complete frame body; return non-zero to stop reading (e.g. conn freed):
 *  TPC_WIRE_PAUSE when the frame is done with but no more should be read for now. */
typedef int (*tpc_wire_frame_cb)(void *arg, const uint8_t *body, uint32_t len);

/** A frame callback's "handled; stop here": its frame is drained, the rest stays in the
 *  buffer for a later tpc_wire_read() (output backpressure between two frames). */
#define TPC_WIRE_PAUSE 2

/**
 * @brief Decode and drain every complete frame in @p in, calling @p cb for each.
 * @return 0 when all input was consumed or more is needed; the callback's non-zero
 *         value if it stopped (after TPC_WIRE_PAUSE its frame is drained, after any other
 *         value nothing is touched: the callback may have freed the buffer); a negative
 *         TPC_FRAME_ERR_* or -ENOMEM on a framing error.
 */
int tpc_wire_read(struct evbuffer *in, struct tpc_frame_decoder *dec, tpc_wire_frame_cb cb,
		  void *arg);

/**
 * @brief Check the fields an Envelope's body requires (a body is set; txids non-zero;
 *        names non-empty where required; enum values known) and the length of the
 *        strings a receiver keeps or logs (TPC_WIRE_MAX_NAME, _KEY, _REASON).
 * @return 0 if valid; otherwise -EINVAL with *why set to a static explanation.
 */
int tpc_wire_validate(const Tpc__Envelope *env, const char **why);

/*
 * A bump allocator for unpacking: one Envelope at a time is unpacked into it, and the
 * next unpack reuses the memory, so a frame costs no malloc/free in the common case.
 * Allocations that do not fit go to malloc and are released at the next reset.
 */
struct tpc_arena {
	ProtobufCAllocator alloc; /* must be first: protobuf-c calls through it */
	uint8_t *buf;
	size_t cap, used;
	void **big;
	size_t nbig, big_cap;
};

/** @brief Set up an arena with @p cap bytes in one block (grown by malloc fallback). */
void tpc_arena_init(struct tpc_arena *a, size_t cap);
/** @brief Release everything. */
void tpc_arena_free(struct tpc_arena *a);

/**
 * @brief Unpack an Envelope into @p a, releasing the previous one unpacked there.
 *        The result lives until the next call on @p a; never free it yourself.
 * @return the Envelope, or NULL if the bytes do not decode.
 */
Tpc__Envelope *tpc_wire_unpack(struct tpc_arena *a, const uint8_t *body, size_t len);

/** @brief Name of an Envelope body case, for logs and errors ("begin", "vote", ...). */
const char *tpc_wire_body_name(Tpc__Envelope__BodyCase c);

/** @brief Names for enum values, for logs and tools. */
const char *tpc_wire_outcome_name(Tpc__OutcomeKind k);
const char *tpc_wire_status_name(Tpc__TxnStatus s);

#endif
