/*
 * cli.c - the shared wording of tpc's command lines (see cli.h and docs/cli.md). It
 * prints and returns exit codes; it never exits, so a program keeps its own cleanup.
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

#include "duration.h"
#include "util.h"

#ifndef TPC_VERSION
#error "TPC_VERSION comes from CMake's project(VERSION)"
#endif

int tpc_cli_version(const char *prog)
{
	printf("%s %s\n", prog, TPC_VERSION);
	return 0;
}

int tpc_cli_getopt_error(const char *prog, int c, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	char shortopt[3] = { '-', (char)optopt, '\0' };

	/* a short option inside a cluster ("-xv"): name the letter, not the cluster */
	if (optopt > 0 && optopt < 128 && strncmp(arg, "--", 2) != 0)
		arg = shortopt;
	if (c == ':')
		return tpc_usage_error(prog, "option '%s' needs a value", arg);
	return tpc_usage_error(prog, "unknown option '%s'", arg);
}

int tpc_cli_bad_value(const char *prog, const char *opt, const char *value, const char *what)
{
	return tpc_usage_error(prog, "%s %s: expected %s", opt, value ? value : "", what);
}

int tpc_cli_duration(const char *prog, const char *opt, const char *value, uint64_t lo,
		     uint64_t hi, uint64_t *out_ms)
{
	char err[256];

	if (tpc_parse_duration_opt(opt, value, lo, hi, out_ms, err, sizeof(err)) == 0)
		return 0;
	return tpc_usage_error(prog, "%s", err);
}

int tpc_cli_log_level(const char *prog, const char *opt, const char *value,
		      enum tpc_log_level *out)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };

	for (int i = 0; i < 4; i++) {
		if (value && strcmp(value, names[i]) == 0) {
			*out = (enum tpc_log_level)i;
			return 0;
		}
	}
	return tpc_cli_bad_value(prog, opt, value, "debug, info, warn or error");
}

void tpc_cli_exit_status(FILE *f, const char *ok, const char *failed)
{
	fprintf(f, "\nExit status:\n  0  %s\n  1  %s\n  2  a mistake on the command line "
		   "(unknown option, bad value)\n", ok, failed);
}
