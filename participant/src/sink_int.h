/*
 * sink_int.h - libtpc-internal access to a tpc_sink handle (sink.c owns the struct).
 *
 * The shipped sinks (sink_lmdb.c, sink_file.c) expose functions of their own that take
 * the public tpc_sink handle; they use these to check that the handle is theirs
 * (compare tpc_sink_ops_of() with their ops table) and to reach their state.
 */
#ifndef TPC_SINK_INT_H
#define TPC_SINK_INT_H

#include "tpc/sink.h"

/** @brief The @p self pointer given to tpc_sink_new(); NULL if @p s is NULL. */
void *tpc_sink_self(tpc_sink *s);

/** @brief The ops table given to tpc_sink_new(); NULL if @p s is NULL. */
const tpc_sink_ops *tpc_sink_ops_of(tpc_sink *s);

/** @brief The folder of an LMDB sink (sink_lmdb.c); NULL for any other sink. */
const char *tpc_sink_lmdb_dir(tpc_sink *s);

#endif
