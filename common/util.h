/*
 * util.h - small helpers shared by every tpc program: clocks, levelled logging to
 * stderr, HOST:PORT parsing, and size parsing for command lines (durations: duration.h).
 */
#ifndef TPC_COMMON_UTIL_H
#define TPC_COMMON_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

/** Monotonic clock in milliseconds / nanoseconds. */
uint64_t tpc_now_ms(void);
uint64_t tpc_now_ns(void);
/** Wall clock in milliseconds since the Unix epoch. */
uint64_t tpc_wall_ms(void);
/** "2026-11-27T09:00:00.123Z" (UTC) for @p wall_ms into @p out; returns its length. */
int tpc_format_wall_ms(uint64_t wall_ms, char *out, size_t cap);
/** @p ms as a struct timeval, for libevent's timers. */
struct timeval tpc_ms_tv(uint64_t ms);

enum tpc_log_level { TPC_LOG_DEBUG, TPC_LOG_INFO, TPC_LOG_WARN, TPC_LOG_ERROR };

/** A logger is a program's own: name and minimum level; no process-wide state. */
struct tpc_logger {
	const char *prog;
	enum tpc_log_level min;
};

/** One line on stderr: "2026-11-27T09:00:00.123Z INFO prog: message". */
void tpc_logf(const struct tpc_logger *lg, enum tpc_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * @brief Parse "HOST:PORT" (HOST may be empty for all addresses, or [v6]) into @p ss.
 * @return 0, or -EINVAL with a reason in @p err (size @p errlen).
 */
int tpc_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *sslen,
		       char *err, size_t errlen);

/** @brief 1 if @p ss is a loopback address (127.0.0.0/8 or ::1), else 0. */
int tpc_sockaddr_is_loopback(const struct sockaddr_storage *ss);

/**
 * @brief Parse a plain decimal (no sign, no suffix) from @p lo to @p hi into @p out,
 *        which is left alone on failure. @return 0 or -EINVAL.
 */
int tpc_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Durations (tpc_parse_duration_ms, tpc_parse_duration_opt) live in duration.h. */
#include "duration.h"

/**
 * @brief A command-line program's usage error: print "PROG: MESSAGE" and
 *        "Try 'PROG --help'." to stderr.
 * @return 2, the exit status of bad usage
 */
int tpc_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** @brief Format a message into @p err (size @p errlen); NULL or 0 size: nothing. */
void tpc_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** @brief mkdir -p: create @p dir and missing parents (mode 0700). @return 0 or -errno. */
int tpc_mkdirs(const char *dir);

/** @brief fsync the folder @p dir, so the entries made in it are durable. @return 0 or -errno. */
int tpc_fsync_dir(const char *dir);

/** @brief tpc_fsync_dir() of the folder @p path is in. @return 0 or -errno. */
int tpc_fsync_parent(const char *path);

/** @brief Parse an unsigned integer with optional K/M/G (binary) suffix. @return 0 or -EINVAL. */
int tpc_parse_size(const char *s, uint64_t *out);

/**
 * @brief Compare two secrets of @p n bytes in time that depends on @p n only (a
 *        transaction token: a mismatch must not tell where it starts).
 * @return 1 if equal, 0 if not
 */
int tpc_secret_equal(const void *a, const void *b, size_t n);

/**
 * @brief Hold SIGTERM, SIGINT and SIGHUP back while a server starts, so that a stop sent
 *        before its event loop handles signals waits for that handler instead of killing
 *        the process mid-start. Threads created meanwhile inherit the block (signals then
 *        go to the loop's thread). @p old receives the mask to give back with
 *        tpc_release_stop_signals() once the loop's signal events are added.
 */
void tpc_hold_stop_signals(sigset_t *old);

/** @brief Give the mask saved by tpc_hold_stop_signals() back: held signals arrive now. */
void tpc_release_stop_signals(const sigset_t *old);

#endif
