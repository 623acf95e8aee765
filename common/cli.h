/*
 * cli.h - the house style every tpc program's command line shares (docs/cli.md): one
 * wording for an unknown option, a missing value and a bad value ("PROG: ...", then
 * "Try 'PROG --help'.", exit status 2), one --version line carrying the project's
 * version, and one "Exit status:" section at the end of every --help.
 */
#ifndef TPC_COMMON_CLI_H
#define TPC_COMMON_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "util.h"

/** Exit status of a command-line mistake (unknown option, bad value, missing argument). */
#define TPC_EXIT_USAGE 2

/** @brief Print "PROG VERSION" (the project's version, from CMake) on stdout. @return 0 */
int tpc_cli_version(const char *prog);

/**
 * @brief Report what getopt_long() (run with opterr = 0 and an optstring that starts
 *        with ':') answered with '?' or ':' for @p argv: "unknown option '--x'" or
 *        "option '--x' needs a value". @return TPC_EXIT_USAGE
 */
int tpc_cli_getopt_error(const char *prog, int c, char **argv);

/**
 * @brief Report a bad value: "PROG: --opt VALUE: expected WHAT". @return TPC_EXIT_USAGE
 */
int tpc_cli_bad_value(const char *prog, const char *opt, const char *value, const char *what);

/**
 * @brief Parse option @p opt's duration @p value into @p out_ms within [lo, hi], or
 *        report it the house way. @return 0 or TPC_EXIT_USAGE
 */
int tpc_cli_duration(const char *prog, const char *opt, const char *value, uint64_t lo,
		     uint64_t hi, uint64_t *out_ms);

/**
 * @brief Parse a --log-level value (debug, info, warn, error) into @p out, or report
 *        it the house way. @return 0 or TPC_EXIT_USAGE
 */
int tpc_cli_log_level(const char *prog, const char *opt, const char *value,
		      enum tpc_log_level *out);

/**
 * @brief Print the closing "Exit status:" section of --help: 0 @p ok, 1 @p failed,
 *        2 a mistake on the command line.
 */
void tpc_cli_exit_status(FILE *f, const char *ok, const char *failed);

#endif
