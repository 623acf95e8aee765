/*
 * kvserve.h - what a server of the tpc-kv protocol answers with, shared by tpc-kv and
 * the torture's PostgreSQL participant (tpc-torture pg-service): the HelloReply, an Error
 * envelope, and the wire ErrorCode for a libtpc error.
 */
#ifndef TPC_TOOLS_KVSERVE_H
#define TPC_TOOLS_KVSERVE_H

#include <stdint.h>

#include <event2/buffer.h>

#include "wire.h"

/** @brief The wire ErrorCode a Put failed with for libtpc error @p err (TPC_E*). */
Tpc__ErrorCode kv_wire_code(int err);

/** @brief Append an Error envelope (answering @p req, about @p txid) to @p out. */
void kv_send_error(struct evbuffer *out, uint64_t req, Tpc__ErrorCode code, const char *msg,
		   uint64_t txid);

/** @brief Append the HelloReply (answering @p req) to @p out. */
void kv_send_hello_reply(struct evbuffer *out, uint64_t req);

#endif
