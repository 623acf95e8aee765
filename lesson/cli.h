/*
 * cli.h - small helpers the lesson's programs share: number parsing, resolving a
 * replay start given as a time to an offset, the progress probe, and the reports' output.
 */
#ifndef LESSON_CLI_H
#define LESSON_CLI_H

#include <stdint.h>
#include <stdio.h>

struct tally;

/** @brief Parse a non-negative decimal. @return 0 or -EINVAL. */
int lesson_parse_u64(const char *s, uint64_t *out);

/**
 * @brief The offset of the first record at or after @p when (a TIME, see events.h).
 * @return 0, -EINVAL for a bad time, or the reader's error.
 */
int lesson_offset_at(const char *log_dir, const char *when, uint64_t *offset);

/**
 * @brief Write "%020llu\n" to @p path (rewritten in place, not forced): the position a
 *        job reports to the driver, which places its kill points by it. NULL: nothing.
 */
void lesson_write_progress(const char *path, uint64_t pos);

/** @brief Print "123.45" for 12345 minor units (two decimals). */
void lesson_print_amount(FILE *f, int64_t minor);

/** Column names and formats of a tally printed as CSV or JSON. */
enum lesson_report_kind { REPORT_CLOSE, REPORT_COUNTS };

/**
 * @brief Print a finished tally as CSV (header line first) or JSON (jansson).
 *        REPORT_CLOSE: keys are DAY/MERCHANT/CURRENCY; columns day, merchant,
 *        currency, payments, amount_minor, amount. REPORT_COUNTS: group, count.
 * @param position the offset the result is as of (printed in JSON)
 * @return 0 or -ENOMEM
 */
int lesson_print_report(FILE *f, struct tally *t, enum lesson_report_kind kind, int json,
			uint64_t position);

#endif
