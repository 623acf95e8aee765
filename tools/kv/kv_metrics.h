/*
 * kv_metrics.h - tpc-kv's participant-side view for operators: libtpc's stats
 * (tpc_participant_get_stats, tpc_participant_list_prepared) as Prometheus text on
 * GET /metrics of an HTTP listener of its own (tpc-kv --metrics HOST:PORT).
 */
#ifndef TPC_KV_METRICS_H
#define TPC_KV_METRICS_H

#include <stddef.h>

#include <event2/event.h>

#include "tpc/participant.h"

struct kv_metrics;

/**
 * @brief Serve /metrics on @p hostport from @p base's loop, the loop @p p is attached to.
 * @param name the participant's name, for the tpc_participant_info metric
 * @param err why it failed (the address, the bind), for the caller's log
 * @return the server, or NULL
 */
struct kv_metrics *kv_metrics_start(struct event_base *base, const char *hostport,
				    tpc_participant *p, const char *name, char *err,
				    size_t errlen);

/** @brief Stop serving and free. NULL is a no-op. */
void kv_metrics_free(struct kv_metrics *m);

#endif
