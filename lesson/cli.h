/*
 * cli.h - small helpers the lesson's programs share: the command line every program
 * takes (PROG COMMAND [options]), number parsing, resolving a replay start given as a
 * time to an offset, the progress probe, and the reports' output.
 */
#ifndef LESSON_CLI_H
#define LESSON_CLI_H

#include <stdint.h>
#include <stdio.h>

struct option;
struct tally;

/** What a lesson program's command line is read with (see lesson_cli_main). */
struct lesson_cli {
	const char *prog;		/* "lesson-close": names it in usage errors */
	const char *usage;		/* printed to stdout for -h/--help */
	const char *no_cmd;		/* the usage error when argv[1] is not a command */
	const struct option *long_opts; /* for getopt_long, with "help" mapped to 'h' */
	/* Take option @p c with value @p v into @p opts; on a bad value print the usage
	 * error (tpc_usage_error) and return non-zero. Unknown options come as '?'. */
	int (*parse_opt)(void *opts, int c, const char *v);
	/* Check the options against the command and run it. @return main()'s exit code. */
	int (*run)(void *opts);
};

/**
 * @brief A lesson program's main(): read "PROG COMMAND [options]" and run the command.
 *        -h/--help first or among the options prints the usage and ends; each other
 *        option goes to @p cli->parse_opt; no argument may follow the options; then
 *        @p cli->run(@p opts).
 * @param opts the program's options (with their defaults), passed to parse_opt and run
 * @param cmd set to argv[1], the command
 * @return main()'s exit code: 0 after --help, 2 after a usage error (already printed),
 *         else what run returned
 */
int lesson_cli_main(int argc, char **argv, const struct lesson_cli *cli, void *opts,
		    const char **cmd);

/** @brief Parse a non-negative decimal. @return 0 or -EINVAL. */
int lesson_parse_u64(const char *s, uint64_t *out);

/** @brief --batch: 1..100000 events into @p batch; else @p prog's usage error (2). */
int lesson_opt_batch(const char *prog, const char *v, uint64_t *batch);

/** @brief --from: an offset into @p from, @p from_set = 1; else @p prog's usage error. */
int lesson_opt_from(const char *prog, const char *v, uint64_t *from, int *from_set);

/**
 * @brief --from-time: when @p when is not NULL, the offset it names in @p log_dir into
 *        @p from (@p from_set = 1). @return 0, or 1 (main's exit code) after printing
 *        why as @p prog.
 */
int lesson_from_time(const char *prog, const char *log_dir, const char *when, uint64_t *from,
		     int *from_set);

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
