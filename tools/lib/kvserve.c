/*
 * kvserve.c - the HelloReply and Error answers of a tpc-kv protocol server (kvserve.h).
 */
#include <errno.h>

#include "kvserve.h"
#include "tpc/common.h"

Tpc__ErrorCode kv_wire_code(int err)
{
	switch (err) {
	case TPC_ENOTFOUND: return TPC__ERROR_CODE__ERR_NOT_FOUND;
	case TPC_ENOTACTIVE:
	case TPC_EEXPIRED: return TPC__ERROR_CODE__ERR_NOT_ACTIVE;
	case TPC_EINCARNATION: return TPC__ERROR_CODE__ERR_INCARNATION;
	case TPC_EDENIED: return TPC__ERROR_CODE__ERR_DENIED;
	case TPC_ELIMIT: return TPC__ERROR_CODE__ERR_LIMIT;
	case -EINVAL: return TPC__ERROR_CODE__ERR_INVALID;
	default: return TPC__ERROR_CODE__ERR_UNAVAILABLE;
	}
}

void kv_send_error(struct evbuffer *out, uint64_t req, Tpc__ErrorCode code, const char *msg,
		   uint64_t txid)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__Error e = TPC__ERROR__INIT;

	e.code = code;
	e.message = (char *)msg;
	e.txid = txid;
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_ERROR;
	env.error = &e;
	tpc_wire_send(out, &env, TPC_FRAME_DEFAULT_MAX);
}

void kv_send_hello_reply(struct evbuffer *out, uint64_t req)
{
	Tpc__Envelope env = TPC__ENVELOPE__INIT;
	Tpc__HelloReply r = TPC__HELLO_REPLY__INIT;

	r.protocol_version = TPC_PROTOCOL_VERSION;
	env.request_id = req;
	env.body_case = TPC__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &r;
	tpc_wire_send(out, &env, TPC_FRAME_DEFAULT_MAX);
}
