/*
 * eventlog.h - the lesson's retained source: an append-only event log with positions
 * (offsets) and timestamps, readable from any offset or from the first record at or
 * after a time.
 *
 * A log is a folder with two files:
 *   log    a 16-byte header ("TPCEVLOG", version), then records, each
 *          { u32 len, u32 crc32c, u64 offset, u64 ts_ms, payload[len] } little-endian;
 *          the CRC covers len, offset, ts_ms and the payload. Offsets are 0, 1, 2, ...
 *          with no gaps; ts_ms never decreases (an append with an older time is
 *          stamped with the newest time seen, so the log can be searched by time).
 *   index  a 16-byte header, then one { u64 offset, u64 ts_ms, u64 file_pos } entry
 *          for every record whose offset is a multiple of the index interval. The
 *          index is derived data: it is never forced, and it is checked against the
 *          log, cut back and rebuilt where it disagrees.
 *
 * Durability: evlog_append() only buffers; evlog_sync() writes the buffered records
 * and forces them with one fdatasync (one disk force per append batch). Opening a log
 * for writing repairs a torn tail: the first record from the last indexed one on that
 * is short or fails its CRC, and everything after it, is cut off.
 *
 * One writer per log (an exclusive flock on the log file, released by the kernel when
 * the writer dies, even by kill -9); any number of readers, in any process, also
 * while the writer appends. A reader stops at the first record it cannot verify,
 * which is how it sees a record still being written, and sees it later once it is
 * complete.
 *
 * Error space: 0 or a count on success, -errno on failure (-EBADMSG for a damaged
 * record where one must be whole, -EBUSY for a second writer).
 */
#ifndef LESSON_EVENTLOG_H
#define LESSON_EVENTLOG_H

#include <stddef.h>
#include <stdint.h>

#define EVLOG_MAX_RECORD (1u << 20) /* largest payload */
#define EVLOG_INDEX_INTERVAL 64u    /* records per index entry */

typedef struct evlog evlog;
typedef struct evlog_reader evlog_reader;

/** Counters of a writer, for tests and for the lesson's cost table. */
struct evlog_stats {
	uint64_t appended;       /**< records appended by this handle */
	uint64_t syncs;          /**< evlog_sync() calls that forced something */
	uint64_t forces;         /**< fdatasync/fsync calls made */
	uint64_t repaired_bytes; /**< torn tail cut off at open */
	uint64_t index_rebuilt;  /**< index entries rebuilt at open */
};

/** One record as a reader returns it; data is valid until the next call on the reader. */
struct evlog_record {
	uint64_t offset;
	uint64_t ts_ms;
	const void *data;
	size_t len;
};

/** @brief CRC-32C (Castagnoli) of @p len bytes, continuing from @p crc (0 to start). */
uint32_t evlog_crc32c(uint32_t crc, const void *data, size_t len);

/**
 * @brief Open the log in @p dir for appending, creating it if @p create, repairing a
 *        torn tail and the index.
 * @param err a message on failure (may be NULL)
 * @return 0 with *out set, or -errno (-EBUSY: another writer holds it; -EBADMSG: not
 *         a log, or damaged before its tail).
 */
int evlog_open(const char *dir, int create, evlog **out, char *err, size_t errlen);

/**
 * @brief Buffer one record. Not durable until evlog_sync().
 * @param ts_ms its time (clamped to the newest time in the log)
 * @param[out] offset the offset it gets (may be NULL)
 * @return 0, -EMSGSIZE (payload over EVLOG_MAX_RECORD), -ENOMEM
 */
int evlog_append(evlog *l, uint64_t ts_ms, const void *data, size_t len, uint64_t *offset);

/**
 * @brief Write every buffered record and force it to disk (one fdatasync), then add
 *        their index entries. On failure the buffered records are dropped and the
 *        file is cut back to its last durable end.
 * @return 0 or -errno
 */
int evlog_sync(evlog *l);

/** @brief The offset the next append will get (durable or buffered records count). */
uint64_t evlog_next_offset(const evlog *l);

/** @brief Copy the counters. */
void evlog_get_stats(const evlog *l, struct evlog_stats *out);

/** @brief Close without syncing (buffered records are dropped). NULL is a no-op. */
void evlog_close(evlog *l);

/**
 * @brief Open a reader positioned at the first record.
 * @return 0 with *out set, or -errno (-ENOENT: no log there).
 */
int evlog_reader_open(const char *dir, evlog_reader **out);

/** @brief Free the reader. NULL is a no-op. */
void evlog_reader_close(evlog_reader *r);

/**
 * @brief Position at @p offset: the next evlog_reader_next() returns that record
 *        (or, when the log does not reach it yet, nothing until it does).
 * @return 0 or -errno (-EBADMSG: a damaged record on the way)
 */
int evlog_reader_seek(evlog_reader *r, uint64_t offset);

/**
 * @brief Position at the first record whose ts_ms >= @p ts_ms.
 * @param[out] offset that record's offset, or the log's end when there is none
 * @return 0 or -errno
 */
int evlog_reader_seek_time(evlog_reader *r, uint64_t ts_ms, uint64_t *offset);

/**
 * @brief Read the next record.
 * @return 1 with *rec filled, 0 at the end (for now: call again later to see records
 *         appended since), or -errno (-EBADMSG: offsets out of sequence).
 */
int evlog_reader_next(evlog_reader *r, struct evlog_record *rec);

/** @brief The offset the next evlog_reader_next() would return. */
uint64_t evlog_reader_position(const evlog_reader *r);

#endif
