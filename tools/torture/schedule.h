/*
 * schedule.h - the torture runner's seeded schedule: what to break, and when.
 *
 * Pure: tt_schedule_build() turns (seed, duration, sizes, profile) into a list of timed
 * actions, and tt_schedule_faults() names the fault points armed (TPC_FAULTS) for the
 * Nth start of a process. The same inputs give the same schedule, so a failing run is
 * replayed with its seed. (The processes' own timing is not replayed: a fault armed with
 * crash%P fires on whichever hit the process's own seeded draw picks.)
 *
 * Every round of --round length ends with a checkpoint: heal everything, wait for quiet,
 * measure the recovery time; the last checkpoint ends the run.
 */
#ifndef TPC_TORTURE_SCHEDULE_H
#define TPC_TORTURE_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

enum tt_role { TT_ROLE_COORD, TT_ROLE_PART, TT_ROLE_CLIENT, TT_ROLE_PROXY, TT_ROLE_COUNT };

enum tt_act {
	TT_ACT_KILL,        /* SIGKILL the process; it stays down until its RESTART */
	TT_ACT_RESTART,     /* start it again (with the faults of its next start) */
	TT_ACT_PARTITION,   /* proxy: black-hole both ways */
	TT_ACT_HEAL,        /* proxy: forward again */
	TT_ACT_RESET,       /* proxy: reset every connection */
	TT_ACT_DROP,        /* proxy: drop frames with probability arg/100 percent */
	TT_ACT_DELAY,       /* proxy: delay every frame arg ms (plus jitter up to arg/2) */
	TT_ACT_CHECKPOINT,  /* heal all, wait for quiet; the last one ends the run */
	TT_ACT_STRANGER,    /* start a tpc-kv that must be refused: under participant index's
			       name with a folder of its own (arg 0), or on its running
			       participant's folder (arg 1) */
	TT_ACT_OPERATOR,    /* a heuristic decision through the admin API; arg: the draw that
			       picks the transaction, commit or abort, and --force */
};

struct tt_action {
	uint64_t at_ms;     /* since the start of the run */
	uint8_t act;        /* enum tt_act */
	uint8_t role;       /* enum tt_role; TT_ROLE_PROXY for link actions */
	uint16_t index;     /* participant, client or link (links: 0..nparts-1 participant
			       i's link to the coordinator, nparts the clients' link) */
	uint32_t arg;       /* TT_ACT_DROP: hundredths of a percent; TT_ACT_DELAY: ms */
};

/*
 * default     kills, fault points and link faults; participants bounced (killed and
 *             restarted within 0.4 s) often, to land between the stages of staged
 *             transactions; strangers (a tpc-kv under an existing name with another
 *             folder, or a second one on a running participant's folder); operator
 *             heuristic decisions (unless classic)
 * none        nothing: a baseline
 * partitions  link faults only (no kills, no fault points), and every round ends with a
 *             participant cut off for its last 20 s, so each checkpoint measures how
 *             soon in-doubt transactions settle after a long partition heals
 */
enum tt_profile { TT_PROFILE_DEFAULT, TT_PROFILE_NONE, TT_PROFILE_PARTITIONS };

/* The deliberately broken variants (common/broken.h) and their focused schedules. */
enum tt_broken {
	TT_BROKEN_NONE,
	TT_BROKEN_COMMIT_BEFORE_LOG,  /* coord.commit_before_log */
	TT_BROKEN_ACK_BEFORE_APPLY,   /* part.ack_before_apply */
	TT_BROKEN_NO_DEDUP,           /* sink.no_dedup */
	TT_BROKEN_ACCEPT_REJOIN,      /* coord.accept_rejoin */
};

struct tt_sched_config {
	uint64_t seed;
	uint64_t duration_ms;
	uint64_t round_ms;          /* checkpoint every round (>= duration: only at the end) */
	unsigned nparts, nclients;
	int proxies;                /* 0: no link actions */
	int classic;                /* no strangers, no operator actions, the old weights */
	enum tt_profile profile;
	enum tt_broken broken;
};

struct tt_schedule {
	struct tt_sched_config cfg;
	struct tt_action *v;        /* sorted by at_ms */
	size_t n;
};

/** @brief Build the schedule. @return 0, -EINVAL for a bad config, or -ENOMEM. */
int tt_schedule_build(const struct tt_sched_config *cfg, struct tt_schedule *out);
void tt_schedule_free(struct tt_schedule *s);

/**
 * @brief The TPC_FAULTS value for start number @p start (0 = the first) of a process,
 *        written to @p buf; "" for a start without faults. Checkpoint restarts never
 *        take faults (the runner passes no faults then).
 * @param armed_before how many earlier starts of this process were armed: the fault
 *        points are taken in turn from a fixed rotation, so a long enough run arms every
 *        point of common/faults.h that the role has
 */
void tt_schedule_faults(const struct tt_schedule *s, enum tt_role role, unsigned index,
			unsigned start, unsigned armed_before, char *buf, size_t cap);

/** @brief TPC_FAULT_SEED for that start. */
uint64_t tt_schedule_fault_seed(const struct tt_schedule *s, enum tt_role role, unsigned index,
				unsigned start);

/** @brief Parse "default"/"none"/"partitions" and the broken names of common/broken.h. @return 0 / -EINVAL. */
int tt_profile_parse(const char *s, enum tt_profile *out);
int tt_broken_parse(const char *s, enum tt_broken *out);
const char *tt_profile_name(enum tt_profile p);
const char *tt_broken_name(enum tt_broken b);

const char *tt_role_name(enum tt_role r);
const char *tt_act_name(enum tt_act a);

/** @brief splitmix64: the tool's one PRNG step (state in the caller's hands). */
uint64_t tt_rand(uint64_t *state);
/** @brief A uniform draw in [lo, hi]. */
uint64_t tt_rand_range(uint64_t *state, uint64_t lo, uint64_t hi);

#endif
