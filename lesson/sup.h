/*
 * sup.h - the lesson driver's process supervisor: start programs with their own
 * environment (fault seeds, the forces shim), wait until a server listens, kill -9 a
 * process on purpose, notice one that died by itself (a fault point fired), restart
 * it, and stop everything at the end.
 *
 * All state is in struct sup, owned by the caller. Children get SIGKILL if the driver
 * dies (PR_SET_PDEATHSIG), so an interrupted run leaves nothing behind.
 */
#ifndef LESSON_SUP_H
#define LESSON_SUP_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#define SUP_MAX_PROCS 8
#define SUP_MAX_ARGS 40

struct sup_proc {
	char name[32];
	char *argv[SUP_MAX_ARGS];  /* owned */
	int role;                  /* forces counter slot */
	int port;                  /* wait for 127.0.0.1:port after each start; 0: none */
	int finite;                /* a job: exits 0 when its work is done */
	char faults[160];          /* TPC_FAULTS for this process ("" for none) */
	pid_t pid;                 /* 0 when not running */
	int done;                  /* a job that exited 0 */
	unsigned starts, kills, crashes;
	char out_path[PATH_MAX], err_path[PATH_MAX];
};

struct sup {
	struct sup_proc p[SUP_MAX_PROCS];
	int n;
	uint64_t seed;             /* TPC_FAULT_SEED / LESSON_CRASH_SEED = seed*1000 + start */
	const char *forces_file;   /* NULL: do not count forces */
	const char *forces_lib;
	char err[512];
};

/**
 * @brief Register a process (not started). argv is copied; its stdout and stderr go
 *        to DIR/NAME.out and DIR/NAME.err (appended across restarts).
 * @return its index, or -1 (too many / out of memory)
 */
int sup_add(struct sup *s, const char *name, int role, int port, int finite, const char *dir,
	    const char *const argv[]);

/**
 * @brief Start it, then wait (up to 20 s) for its port. A server killed by a signal
 *        before it listens (a fault point fired while it recovered) counts as a crash
 *        and is started again.
 * @return 0 or -errno (s->err says why)
 */
int sup_start(struct sup *s, int i);

/** @brief SIGKILL it and reap it (a kill on purpose: p->kills++). */
void sup_kill9(struct sup *s, int i);

/**
 * @brief Check on it without blocking.
 * @return 0 running (or not started), 1 a job finished (exit 0), 2 it died by a
 *         signal we did not send (p->crashes++; restart it), -1 it exited with an error
 */
int sup_poll(struct sup *s, int i);

/** @brief SIGTERM, wait up to @p timeout_ms, then SIGKILL. */
void sup_stop(struct sup *s, int i, int timeout_ms);

/** @brief Kill whatever still runs and free every argv. */
void sup_free(struct sup *s);

/** @brief Print the last lines of its stderr file to stderr. */
void sup_dump(const struct sup *s, int i);

/** @brief A TCP port free on 127.0.0.1 right now. @return the port or -errno. */
int sup_free_port(void);

#endif
