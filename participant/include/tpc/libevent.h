/*
 * tpc/libevent.h - the libevent adapter: run a participant or a client on the
 * application's own event loop. The library never owns a loop it was attached to: it
 * adds events to it and removes them in *_free(). Call every function of an attached
 * handle from that loop's thread.
 */
#ifndef TPC_LIBEVENT_H
#define TPC_LIBEVENT_H

#include <event2/event.h>

#include "tpc/client.h"
#include "tpc/participant.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Run the participant on @p base: it connects to the coordinator, recovers its
 *        prepared transactions, and serves prepare/decision from the loop.
 * @return 0, TPC_ESTATE if already attached or started, or a negative code (then
 *         nothing is left on @p base and attach may be called again)
 */
TPC_API int tpc_participant_attach(tpc_participant *p, struct event_base *base);

/**
 * @brief Run the client on @p base; its _async calls then complete on that loop.
 * @return 0, TPC_ESTATE if already attached or used in blocking mode
 */
TPC_API int tpc_client_attach(tpc_client *c, struct event_base *base);

#ifdef __cplusplus
}
#endif

#endif
