/*
 * config.h - tpc-coordinator's options: one table that serves the command line, the
 * INI config file (--config FILE, read with inih) and SIGHUP reloads.
 *
 * Every option has one name, used as the long option (--txn-timeout 5s) and as the
 * file key (txn-timeout = 5s), one parser and one range, so the two ways of saying it
 * can never disagree; its default, range, unit and help text sit in the same table
 * row, which --help and --check-config read. Precedence: the table's defaults, then
 * the file, then the command line. A SIGHUP rebuilds the configuration the same way
 * (the file is read again, the command line applied again over it) and copies only
 * the options that may change at run time into the running server
 * (coord_config_reload).
 *
 * Ownership: struct coord_cmdline keeps the command line's settings (pointers into
 * argv) and every string read from a file; a struct coord_config built from it points
 * into both, so the cmdline must outlive every config built from it. Strings read on
 * each reload are kept too (a few hundred bytes per SIGHUP), since the running
 * config may point at any of them; they go with coord_cmdline_free().
 *
 * Error space: 0 on success, -EINVAL with a message in the caller's buffer
 * ("FILE:LINE: key = value: why" for the file, "--key value: why" for the command line).
 */
#ifndef TPC_COORD_CONFIG_H
#define TPC_COORD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "server.h"

/** One option given on the command line, in the order given. */
struct coord_setting {
	int opt;                /* index into the option table */
	const char *value;      /* argv's string; NULL for a flag */
};

struct coord_cmdline {
	const char *config_path;  /* --config FILE, or NULL */
	int check_only;           /* --check-config */
	int help, version;
	struct coord_setting *set;
	size_t nset;
	char **strs;              /* strings read from config files (owned) */
	size_t nstrs, strs_cap;
};

/**
 * @brief Take argv apart: --config, --check-config, --help, --version, and every other
 *        option kept (unchecked) for coord_config_build(). Uses getopt_long.
 * @return 0, or -EINVAL (unknown option, missing value, stray argument) with @p err
 *         set; @p cl is then still to be freed.
 */
int coord_cmdline_parse(struct coord_cmdline *cl, int argc, char **argv, char *err,
			size_t errlen);

/** @brief Free what @p cl owns (not argv). */
void coord_cmdline_free(struct coord_cmdline *cl);

/**
 * @brief Apply the config file (if any) and then the command line over @p cfg, which
 *        the caller has filled with coord_config_defaults(). Unknown keys, keys set
 *        twice, unknown sections ([coordinator] is the only one) and bad values are
 *        refused with FILE:LINE in the message.
 * @return 0 or -EINVAL (message in @p err; @p cfg is then partly applied).
 */
int coord_config_build(struct coord_cmdline *cl, struct coord_config *cfg, char *err,
		       size_t errlen);

/**
 * @brief Checks across options and of addresses, without opening anything durable:
 *        the data folder is given, listen and admin addresses parse, the admin token
 *        file (if any) is readable.
 * @return 0 or -EINVAL with a message.
 */
int coord_config_check(const struct coord_config *cfg, char *err, size_t errlen);

/**
 * @brief Fill @p cfg with the defaults in the option table (and the two fixed values
 *        that are not options: max_key_len, retry_initial_ms). Strings point at
 *        constants.
 */
void coord_config_defaults(struct coord_config *cfg);

/**
 * @brief Print the option list of --help: each option with its value's name, its help
 *        text, its default and range from the table, and [reload] when a SIGHUP
 *        applies it to a running server.
 */
void coord_config_help(FILE *f);

/** @brief Print every option as "key = value" lines, a valid config file. */
void coord_config_dump(const struct coord_config *cfg, FILE *f);

/**
 * @brief Copy the options that may change at run time from @p fresh into @p running
 *        and describe the differences: @p changed receives "key old -> new, ..." for
 *        what was applied, @p restart the same for options that differ but only take
 *        effect after a restart (listen, data, id, ...). Both "" when nothing differs.
 * @return how many options were applied.
 */
int coord_config_reload(struct coord_config *running, const struct coord_config *fresh,
			char *changed, size_t changed_len, char *restart, size_t restart_len);

#endif
