/*
 * proxy_core.h - the pure part of tpc-faultproxy: the seeded PRNG, the fault settings
 * and the per-frame verdict drawn from them, and the parsers shared by the command line
 * and the control protocol.
 *
 * Nothing here touches a socket, a clock or libevent, so the same seed and the same
 * sequence of frames always give the same verdicts. Every verdict draws exactly four
 * numbers from its stream, whatever the settings, so changing one knob at run time does
 * not shift the pattern of another.
 */
#ifndef TPC_FAULTPROXY_CORE_H
#define TPC_FAULTPROXY_CORE_H

#include <stdint.h>

#define FP_PPM_MAX 1000000u          /* 100 % in parts per million */
#define FP_DURATION_MAX_MS 3600000u  /* one hour: the cap on delay, jitter, hold */

/** A splitmix64 stream; one per connection direction. */
struct fp_rng {
	uint64_t s;
};

/**
 * @brief Seed a stream: the same (seed, stream) always gives the same numbers, and
 *        different streams of one seed are independent.
 */
void fp_rng_seed(struct fp_rng *r, uint64_t seed, uint64_t stream);

/** @brief The next 64 random bits. */
uint64_t fp_rng_next(struct fp_rng *r);

/** Live fault settings; the control protocol changes them while frames flow. */
struct fp_faults {
	uint32_t drop_ppm;     /* probability a frame is dropped */
	uint32_t dup_ppm;      /* probability a frame is sent twice */
	uint32_t reorder_ppm;  /* probability a frame is held and sent after the next one */
	uint32_t delay_ms;     /* fixed delay of every frame */
	uint32_t jitter_ms;    /* plus a uniform 0..jitter_ms */
	uint32_t hold_ms;      /* a held frame with no successor goes out after this */
};

/** What happens to one frame. */
struct fp_verdict {
	int drop;
	int dup;
	int hold;
	uint32_t delay_ms; /* delay + drawn jitter */
};

/** @brief Draw the verdict for the next frame of a stream (always four draws). */
void fp_decide(const struct fp_faults *f, struct fp_rng *r, struct fp_verdict *v);

/** The knobs `set` and the command line can change. */
enum fp_knob {
	FP_KNOB_DROP,
	FP_KNOB_DUP,
	FP_KNOB_REORDER,
	FP_KNOB_DELAY,
	FP_KNOB_JITTER,
	FP_KNOB_HOLD,
	FP_KNOB_COUNT
};

/** @brief The knob's name as `set` spells it ("drop", "reorder-hold", ...). */
const char *fp_knob_name(enum fp_knob k);

/** @brief Look a knob up by name. @return 0, or -1 if there is no such knob. */
int fp_knob_lookup(const char *name, enum fp_knob *k);

/**
 * @brief Parse a value for @p k: a percentage "0".."100" with up to four decimals for
 *        drop/dup/reorder, a duration ("250", "250ms", "2s") up to one hour otherwise.
 * @param[out] value parts per million, or milliseconds
 * @param[out] why on failure, a static explanation
 * @return 0 or -1.
 */
int fp_knob_parse(enum fp_knob k, const char *s, uint32_t *value, const char **why);

/** @brief Store a parsed value into @p f. */
void fp_knob_apply(struct fp_faults *f, enum fp_knob k, uint32_t value);

/** @brief Read a knob back out of @p f. */
uint32_t fp_knob_get(const struct fp_faults *f, enum fp_knob k);

/**
 * @brief Format a knob value as the command line would take it ("12.5", "40ms").
 * @return @p buf
 */
const char *fp_knob_format(enum fp_knob k, uint32_t value, char *buf, unsigned cap);

enum fp_cmd_kind {
	FP_CMD_PARTITION,
	FP_CMD_HEAL,
	FP_CMD_RESET,
	FP_CMD_SET,
	FP_CMD_STATS,
	FP_CMD_SHOW,
	FP_CMD_QUIT,
};

struct fp_cmd {
	enum fp_cmd_kind kind;
	enum fp_knob knob;  /* FP_CMD_SET only */
	uint32_t value;     /* FP_CMD_SET only */
};

/**
 * @brief Parse one control line (without its newline; a trailing '\r' is ignored).
 * @param line modified in place (split into words)
 * @param[out] why on failure, an explanation (one line, at most @p cap bytes)
 * @return 0, or -1 with @p why set.
 */
int fp_cmd_parse(char *line, struct fp_cmd *cmd, char *why, unsigned cap);

#endif
