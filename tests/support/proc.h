/*
 * proc.h - a harness for multi-process tests: free ports, temporary folders, child
 * processes with a stdin pipe and a line-oriented stdout pipe, and waits with deadlines.
 *
 * Every process belongs to a tpc_procs set, which a test keeps in its cmocka state and
 * frees in teardown: freeing it SIGKILLs every child still alive (its whole process
 * group) and reaps it. Children also get SIGKILL if the test process dies
 * (PR_SET_PDEATHSIG), so a crashed test leaves nothing running. Nothing here sleeps for
 * a fixed time: every wait is a poll() against an absolute deadline.
 *
 * Creating a set ignores SIGPIPE in the test process (a write to a dead child's stdin
 * then fails with EPIPE instead of killing the test); children get default signals back.
 *
 * Error space: 0 on success, -errno on failure (-ETIMEDOUT when a deadline passes).
 */
#ifndef TPC_TESTS_PROC_H
#define TPC_TESTS_PROC_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tpc_procs tpc_procs;
typedef struct tpc_proc tpc_proc;

/** @brief A free TCP port on 127.0.0.1 (bind port 0, read it back, close). @return port or -errno. */
int tpc_free_port(void);

/**
 * @brief A listening TCP socket on 127.0.0.1, on a port the kernel picks.
 * @param backlog for listen()
 * @param[out] port the port it listens on
 * @return the socket (close-on-exec), or -errno.
 */
int tpc_listen_loopback(int backlog, int *port);

/**
 * @brief Make a fresh folder "tpc-test-XXXXXX" under $TMPDIR (or /tmp).
 * @param out receives the path; @p cap should be PATH_MAX.
 * @return 0 or -errno.
 */
int tpc_tmpdir_make(char *out, size_t cap);

/** @brief Remove @p path and everything under it (no symlinks followed). @return 0 or -errno. */
int tpc_tmpdir_remove(const char *path);

/**
 * @brief The end of a test's folder: kept (and its path printed to stderr) when
 *        TPC_KEEP_TMP is set, removed with tpc_tmpdir_remove otherwise.
 * @return 0 or -errno.
 */
int tpc_tmpdir_release(const char *path);

/** A test's fresh temporary folder and one path inside it (a cmocka fixture). */
struct tpc_tmpdir {
	char root[PATH_MAX];
	char path[PATH_MAX + 32];
};

/**
 * @brief Allocate a tpc_tmpdir, make its folder (tpc_tmpdir_make) and set its path to
 *        ROOT/@p leaf (created by nobody: the test decides what it is).
 * @return it (free with tpc_tmpdir_free), or NULL with errno set.
 */
struct tpc_tmpdir *tpc_tmpdir_new(const char *leaf);

/** @brief Remove the folder and everything in it, then free @p t. NULL: nothing. */
void tpc_tmpdir_free(struct tpc_tmpdir *t);

/**
 * @brief Wait until something accepts TCP connections on HOST:@p port.
 * @param host numeric IPv4 address, e.g. "127.0.0.1"
 * @return 0, -ETIMEDOUT, or -EINVAL for a bad host. Retries every 15 ms.
 */
int tpc_wait_port(const char *host, int port, int timeout_ms);

/** @brief A new, empty process set (ignores SIGPIPE in the caller). NULL on out-of-memory. */
tpc_procs *tpc_procs_new(void);

/** @brief SIGKILL and reap every child still alive, then free the set and its processes. */
void tpc_procs_free(tpc_procs *set);

/**
 * @brief Start argv[0] (a path; no PATH search) with argv, in its own process group.
 * @param stderr_path the child's stderr is appended to this file (created 0644)
 * @return the process (owned by @p set until tpc_procs_free), or NULL with errno set
 *         (including the exec error of a binary that cannot run).
 */
tpc_proc *tpc_proc_spawn(tpc_procs *set, char *const argv[], const char *stderr_path);

/**
 * @brief Like tpc_proc_spawn, with extra environment entries for this child only.
 * @param env NULL-terminated "NAME=VALUE" strings; each replaces the caller's NAME (if
 *            set) in the child's environment, the rest of which is the caller's. NULL:
 *            the same as tpc_proc_spawn. The caller's own environment is not changed.
 */
tpc_proc *tpc_proc_spawn_env(tpc_procs *set, char *const argv[], const char *stderr_path,
			     const char *const env[]);

/**
 * @brief Run argv[0] (no PATH search) to completion and capture its stdout; its stderr
 *        is the caller's. For short read-only commands (e.g. `tpc-kv --dump`).
 * @param out receives stdout, NUL-terminated (truncated to @p cap - 1 bytes)
 * @param[out] status the wait status; may be NULL
 * @return 0; -EMSGSIZE if the output did not fit (the command still ran to the end);
 *         -ETIMEDOUT (the child was killed); or -errno (including the exec error).
 */
int tpc_run_capture(char *const argv[], char *out, size_t cap, int timeout_ms, int *status);

/** @brief The child's pid. */
pid_t tpc_proc_pid(const tpc_proc *p);

/** @brief True until the child has been reaped by this harness. */
int tpc_proc_alive(tpc_proc *p);

/**
 * @brief Write @p line and a newline to the child's stdin.
 * @return 0, -EPIPE if the child closed it (or died), or -errno.
 */
int tpc_proc_write_line(tpc_proc *p, const char *line);

/** @brief printf-style tpc_proc_write_line; lines are at most 1023 bytes. */
int tpc_proc_writef(tpc_proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** @brief Close the child's stdin (it then reads EOF). */
void tpc_proc_close_stdin(tpc_proc *p);

/**
 * @brief Wait for a stdout line starting with @p prefix. Lines that do not match are kept,
 *        in order, in the process's backlog; later waits search the backlog first.
 * @return the whole matched line without its newline, owned by @p p and valid until the
 *         next wait on @p p; NULL on timeout or when stdout reached EOF (errno ETIMEDOUT or
 *         EPIPE). On failure the prefix, the backlog and the tail of the child's
 *         stderr log are printed to stderr.
 */
const char *tpc_proc_wait_line(tpc_proc *p, const char *prefix, int timeout_ms);

/** @brief Like tpc_proc_wait_line, but return NULL at once if no such line is buffered. */
const char *tpc_proc_take_line(tpc_proc *p, const char *prefix);

/** @brief Print the backlog and the tail of the child's stderr log to stderr (diagnostics). */
void tpc_proc_dump(tpc_proc *p);

/**
 * @brief Wait for the child to exit on its own.
 * @param[out] status the wait status (WIFEXITED/WEXITSTATUS apply); may be NULL
 * @return 0, or -ETIMEDOUT (the child is left running).
 */
int tpc_proc_wait_exit(tpc_proc *p, int timeout_ms, int *status);

/** @brief SIGKILL the child's process group and reap it. @return 0 (also if already dead). */
int tpc_proc_kill9(tpc_proc *p);

/**
 * @brief SIGTERM the child and wait for it.
 * @return 0 with *status set, or -ETIMEDOUT (the child is left running).
 */
int tpc_proc_term(tpc_proc *p, int timeout_ms, int *status);

#endif
