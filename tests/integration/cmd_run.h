/*
 * cmd_run.h - run a short command to completion with its stdout and stderr captured,
 * for tests of command-line programs (tpcctl, tpc-coordinator --check-config).
 *
 * The output goes through files in a test's temporary folder (no pipes to drain), the
 * wait has a deadline (polled; the child is SIGKILLed when it passes), and the child
 * gets SIGKILL if the test dies.
 */
#ifndef TPC_TESTS_CMD_RUN_H
#define TPC_TESTS_CMD_RUN_H

#include <stddef.h>

#define CMD_OUT_MAX 262144

struct cmd_result {
	int code;             /* exit status; -1 if killed by a signal or timed out */
	char out[CMD_OUT_MAX];/* stdout, NUL-terminated (truncated) */
	char err[16384];      /* stderr, likewise */
};

/**
 * @brief Run argv[0] (a path) with argv in folder @p dir's files, and wait.
 * @param env NULL-terminated: "NAME=VALUE" sets, "NAME" unsets, in the child only; or NULL
 * @param timeout_ms deadline for the child to exit
 * @return 0 with @p r filled, or -errno (fork/exec/files), -ETIMEDOUT.
 */
int cmd_run(const char *dir, char *const argv[], const char *const env[], int timeout_ms,
	    struct cmd_result *r);

#endif
