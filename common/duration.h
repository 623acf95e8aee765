/*
 * duration.h - the one parser for durations on every tpc command line, config file and
 * admin query: a number with a unit (ms, s, m, h; "1.5s" too). A bare number is an
 * error, so "60" can never silently mean 60 ms; "0" alone is the one exception (zero of
 * any unit is zero).
 */
#ifndef TPC_COMMON_DURATION_H
#define TPC_COMMON_DURATION_H

#include <stddef.h>
#include <stdint.h>

/**
 * @brief Parse "250ms", "10s", "1.5s", "2m", "1h" (or "0") into milliseconds.
 * @return 0; -EINVAL if the text is not a duration (a bare number included), has more
 *         precision than a millisecond, or overflows. @p out_ms is left alone on failure.
 */
int tpc_parse_duration_ms(const char *s, uint64_t *out_ms);

/**
 * @brief Parse the value @p s of option @p opt (as the user wrote it, e.g. "--timeout"
 *        or "txn-timeout") and check it lies in [@p lo, @p hi] milliseconds.
 * @return 0, or -EINVAL with a message naming the option in @p err (size @p errlen),
 *         e.g. "--timeout 10: a duration needs a unit: 10ms, 10s, 10m or 10h".
 */
int tpc_parse_duration_opt(const char *opt, const char *s, uint64_t lo, uint64_t hi,
			   uint64_t *out_ms, char *err, size_t errlen);

/**
 * @brief Why @p s is not a duration in [@p lo, @p hi] ms, for "OPTION VALUE: WHY"
 *        messages; a bare number gets "a duration needs a unit: 60ms, 60s, 60m or 60h".
 *        @p hi of UINT64_MAX means no upper bound.
 */
void tpc_duration_why(const char *s, uint64_t lo, uint64_t hi, char *why, size_t len);

/** @brief Write @p ms the shortest way this parser reads back ("1500ms", "2s", "1h"). */
void tpc_format_duration(uint64_t ms, char *buf, size_t len);

#endif
