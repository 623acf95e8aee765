/*
 * tpc/sink_file.h - the append-only file sink: one line per write, carrying its txid.
 *
 * Line format (text, one per write, '\n'-terminated):
 *   <txid> <TAB> <index>/<count> <TAB> <hex key> <TAB> <hex value>
 * A transaction's lines are appended with one write() and one fdatasync(); on open the
 * sink scans the file, rebuilds the set of applied txids, and truncates a torn tail: a
 * last line with no newline, or a last transaction with fewer lines than its count.
 * Committing a txid already in the file is a no-op.
 */
#ifndef TPC_SINK_FILE_H
#define TPC_SINK_FILE_H

#include "tpc/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Open (creating if needed) an append-only file sink, repairing a torn tail.
 *        A missing folder on the way to @p path is created (mode 0700), as
 *        tpc_participant_config.state_dir is. The file is locked (flock) while open: a
 *        second open of it fails with -EBUSY.
 * @param[out] err on failure, a negative code
 * @param[out] repaired_bytes if not NULL, how many bytes of torn tail were cut
 * @return the sink, or NULL
 */
TPC_API tpc_sink *tpc_sink_file_open(const char *path, int *err, uint64_t *repaired_bytes);

/** Callback for tpc_sink_file_dump(); return non-zero to stop. */
typedef int (*tpc_sink_file_dump_fn)(void *arg, tpc_txid txid, uint64_t index, uint64_t count,
				     const void *key, size_t key_len, const void *value,
				     size_t value_len);

/**
 * @brief Read every complete write line of the file sink at @p path, in file order,
 *        read-only (a torn last line is skipped, not repaired). A txid applied twice
 *        (which a correct sink never does) shows up as its lines twice.
 * @return 0, the callback's non-zero value, -EBADMSG for a malformed line, or -errno
 */
TPC_API int tpc_sink_file_dump(const char *path, tpc_sink_file_dump_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
