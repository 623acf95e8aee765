/*
 * faults.h - named fault points for failure injection, shared by the coordinator and
 * libtpc. Armed from a spec string: the coordinator reads it from the TPC_FAULTS
 * environment variable; libtpc never reads the environment, a participant is armed only
 * through tpc_participant_config.faults (tpc-kv passes its --faults, or TPC_FAULTS):
 *
 *   "POINT=ACTION[,POINT=ACTION...][,seed=N]"
 *
 * Actions:
 *   crash          crash now, as kill -9 would (raise(SIGKILL): no cleanup, no flush)
 *   crash@N        crash on the Nth hit of the point (1 = the first)
 *   crash%P        crash with probability P percent per hit (0 < P <= 100)
 *   delay:MS       sleep MS milliseconds at the point, then go on
 *   fail           the I/O at the point fails with -EIO (where the point does I/O)
 *   fail@N, fail%P as crash@N / crash%P, but failing
 * Randomness comes from seed=N in the spec (or TPC_FAULT_SEED, for the coordinator;
 * default: the process id) so a run can be replayed.
 *
 * An unarmed fault point costs one predictable branch on a flag in the set. Every hit
 * of an armed point is counted; a fired fault logs one line first (the torture runner
 * counts those lines): through the set's log function when one is set (libtpc: its
 * cfg.log, nowhere when that is NULL), else on stderr (the coordinator).
 */
#ifndef TPC_COMMON_FAULTS_H
#define TPC_COMMON_FAULTS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum tpc_fault_point {
	TPC_FP_COORD_PREPARE_PARTIAL_SEND, /* coord.prepare.partial_send */
	TPC_FP_COORD_DECISION_BEFORE_LOG,  /* coord.decision.before_log */
	TPC_FP_COORD_DECISION_AFTER_LOG,   /* coord.decision.after_log */
	TPC_FP_COORD_COMMIT_PARTIAL_SEND,  /* coord.commit.partial_send */
	TPC_FP_COORD_END_BEFORE_LOG,       /* coord.end.before_log */
	TPC_FP_COORD_RECOVERY_RESEND,      /* coord.recovery.resend */
	TPC_FP_PART_PREPARE_BEFORE_LOG,    /* part.prepare.before_log */
	TPC_FP_PART_PREPARE_AFTER_LOG,     /* part.prepare.after_log */
	TPC_FP_PART_VOTE_AFTER_SEND,       /* part.vote.after_send */
	TPC_FP_PART_COMMIT_BEFORE_APPLY,   /* part.commit.before_apply */
	TPC_FP_PART_COMMIT_AFTER_APPLY,    /* part.commit.after_apply */
	TPC_FP_LOG_SYNC,                   /* log.sync */
	TPC_FP_COUNT
};

enum tpc_fault_action { TPC_FA_NONE = 0, TPC_FA_CRASH, TPC_FA_DELAY, TPC_FA_FAIL };

struct tpc_fault {
	uint8_t action;
	uint32_t nth;       /* fire on this hit only (0: every hit, subject to prob) */
	uint32_t prob_pct;  /* 0 or 100: always */
	uint32_t delay_ms;
	uint64_t hits;
	uint64_t fired;
};

struct tpc_faults {
	int armed;                          /* any point armed: the fast-path flag */
	struct tpc_fault pt[TPC_FP_COUNT];
	uint64_t rng;
	const char *prog;                   /* for the stderr line */
	void (*log)(void *arg, const char *msg); /* NULL: stderr (tpc_faults_set_log) */
	void *log_arg;
	pthread_mutex_t mu;                 /* hits and rng: points fire on several threads */
};

/** @brief Initialise an empty (unarmed) set. */
void tpc_faults_init(struct tpc_faults *f, const char *prog);
void tpc_faults_destroy(struct tpc_faults *f);

/**
 * @brief Send the fired-fault lines to @p fn (WARN level) instead of stderr. With
 *        @p fn NULL they go nowhere. Call before arming.
 */
void tpc_faults_set_log(struct tpc_faults *f, void (*fn)(void *arg, const char *msg),
			void *arg);

/**
 * @brief Arm the points named in @p spec (see above; a "seed=N" entry seeds the random
 *        actions). NULL or "" arms nothing.
 * @return 0, or -EINVAL with a message in @p err for an unknown point or action.
 */
int tpc_faults_arm(struct tpc_faults *f, const char *spec, char *err, size_t errlen);

/** @brief Seed the random actions (as a "seed=N" entry does). Nothing here reads the
 *         environment: the coordinator passes TPC_FAULT_SEED, tpc-kv its spec. */
void tpc_faults_seed(struct tpc_faults *f, uint64_t seed);

/** @brief Disarm every point (counters kept). */
void tpc_faults_clear(struct tpc_faults *f);

/** @brief The point's name, or NULL. */
const char *tpc_fault_name(enum tpc_fault_point p);

/** @brief The point named @p name, or -1. */
int tpc_fault_lookup(const char *name);

/** Slow path of tpc_fault(): count the hit and fire. */
int tpc_fault_fire(struct tpc_faults *f, enum tpc_fault_point p);

/**
 * @brief A fault point. Crashes, sleeps, or returns -EIO when armed to; returns 0
 *        otherwise. Callers that do I/O at the point fail it on a negative result.
 */
static inline int tpc_fault(struct tpc_faults *f, enum tpc_fault_point p)
{
	if (__builtin_expect(!f || !f->armed, 1))
		return 0;
	return tpc_fault_fire(f, p);
}

#endif
