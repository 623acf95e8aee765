/*
 * supervise.h - the runner's child processes: start with extra environment, SIGKILL,
 * SIGTERM, notice deaths, and free TCP ports and readiness waits.
 *
 * Each process's stdout and stderr are appended to its own log file across restarts
 * (the runner writes a marker line before each start). Children die with the runner
 * (PR_SET_PDEATHSIG), so an interrupted run leaves nothing behind.
 *
 * Error space: 0 or -errno.
 */
#ifndef TPC_TORTURE_SUPERVISE_H
#define TPC_TORTURE_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TT_MAX_ARGS 48

struct tt_proc {
	char name[32];             /* "coordinator", "kv1", "proxy-kv1", "client1" */
	int role;                  /* enum tt_role */
	unsigned index;
	char *argv[TT_MAX_ARGS];   /* owned copies, NULL-terminated */
	char log_path[4096 + 64];
	pid_t pid;                 /* 0: not running */
	int expect_exit;           /* the runner killed or stopped it */
	char faults[512];          /* TPC_FAULTS of the running incarnation ("" none) */
	unsigned starts, armed_starts;
	uint64_t kills, crashes, unclean_exits;
	int held_down;             /* killed by the schedule: wait for its restart */
	uint64_t restart_at_ms;    /* died on its own: restart at this time (0: none) */
};

/** @brief Set the argument vector (copied). @return 0 or -ENOMEM / -E2BIG. */
int tt_proc_set_argv(struct tt_proc *p, const char *const *argv);
void tt_proc_free_argv(struct tt_proc *p);

/**
 * @brief Start the process, its output appended to p->log_path.
 * @param env NULL-terminated "NAME=VALUE" entries set in the child only; "NAME=" unsets
 * @return 0 or -errno (fork failure; an exec failure shows as an exit status 127)
 */
int tt_proc_start(struct tt_proc *p, const char *const *env);

/** @brief Send @p sig; the next exit is expected. @return 0 or -errno (not running: -ESRCH). */
int tt_proc_signal(struct tt_proc *p, int sig);

/** @brief SIGKILL it and wait for it. @return 0 (also when it was not running). */
int tt_proc_kill(struct tt_proc *p);

/**
 * @brief Wait up to @p timeout_ms for it to exit (after a SIGTERM, say).
 * @return 0 with *status set, or -ETIMEDOUT
 */
int tt_proc_wait(struct tt_proc *p, int timeout_ms, int *status);

/**
 * @brief Reap any child that exited: finds it in @p procs and clears its pid.
 * @return the process that exited (status in *status), or NULL when none did.
 */
struct tt_proc *tt_proc_reap(struct tt_proc *const *procs, size_t n, int *status);

/** @brief Append one line to the process's log (a marker). */
void tt_proc_note(const struct tt_proc *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/** @brief A free TCP port on 127.0.0.1. @return the port, or -errno. */
int tt_free_port(void);

/** @brief Wait until 127.0.0.1:@p port accepts. @return 0 or -ETIMEDOUT. */
int tt_wait_port(int port, int timeout_ms);

/** @brief Send one line to a control port and read its one-line reply. @return 0 or -errno. */
int tt_control(int port, const char *cmd, char *reply, size_t cap, int timeout_ms);

/**
 * @brief One HTTP request to 127.0.0.1:@p port (the coordinator's admin API), through
 *        tpcctl's client (tools/tpcctl/http.h).
 * @param body JSON body or NULL
 * @param[out] sent 0 when the connection was refused, else 1 (it may have reached it)
 * @param[out] status the HTTP status; @p resp the body, NUL-terminated (truncated)
 * @return 0, or -errno (not connected: *sent is 0)
 */
int tt_http(int port, const char *method, const char *path, const char *body, int *sent,
	    int *status, char *resp, size_t cap, int timeout_ms);

/** @brief Sleep @p ms milliseconds (restarting after signals). */
void tt_sleep_ms(uint64_t ms);

#endif
