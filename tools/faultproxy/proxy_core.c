/*
 * proxy_core.c - tpc-faultproxy's pure core (see proxy_core.h): PRNG, verdicts, parsers.
 *
 * Invariants: fp_decide draws exactly four numbers per frame; a percentage is held as
 * parts per million (0..FP_PPM_MAX) and a duration as milliseconds (0..FP_DURATION_MAX_MS);
 * the parsers accept only what they document and never store a value out of range.
 */
#include "proxy_core.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* ---- PRNG ------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void fp_rng_seed(struct fp_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t mix = seed;
	uint64_t st = stream ^ 0x5851F42D4C957F2Dull;

	r->s = splitmix64(&mix) ^ splitmix64(&st);
}

uint64_t fp_rng_next(struct fp_rng *r)
{
	return splitmix64(&r->s);
}

/* ---- verdicts --------------------------------------------------------------------- */

static int roll(uint64_t x, uint32_t ppm)
{
	return (uint32_t)(x % FP_PPM_MAX) < ppm;
}

void fp_decide(const struct fp_faults *f, struct fp_rng *r, struct fp_verdict *v)
{
	uint64_t a = fp_rng_next(r);
	uint64_t b = fp_rng_next(r);
	uint64_t c = fp_rng_next(r);
	uint64_t d = fp_rng_next(r);

	v->drop = roll(a, f->drop_ppm);
	v->dup = roll(b, f->dup_ppm);
	v->hold = roll(c, f->reorder_ppm);
	v->delay_ms = f->delay_ms;
	if (f->jitter_ms)
		v->delay_ms += (uint32_t)(d % ((uint64_t)f->jitter_ms + 1));
}

/* ---- knobs ------------------------------------------------------------------------ */

static const char *const knob_names[FP_KNOB_COUNT] = {
	[FP_KNOB_DROP] = "drop",     [FP_KNOB_DUP] = "dup",       [FP_KNOB_REORDER] = "reorder",
	[FP_KNOB_DELAY] = "delay",   [FP_KNOB_JITTER] = "jitter", [FP_KNOB_HOLD] = "reorder-hold",
};

static int knob_is_pct(enum fp_knob k)
{
	return k == FP_KNOB_DROP || k == FP_KNOB_DUP || k == FP_KNOB_REORDER;
}

const char *fp_knob_name(enum fp_knob k)
{
	return (unsigned)k < FP_KNOB_COUNT ? knob_names[k] : "?";
}

int fp_knob_lookup(const char *name, enum fp_knob *k)
{
	for (int i = 0; i < FP_KNOB_COUNT; i++) {
		if (strcmp(name, knob_names[i]) == 0) {
			*k = (enum fp_knob)i;
			return 0;
		}
	}
	return -1;
}

/* "0".."100" with up to four decimals, into parts per million. */
static int parse_pct(const char *s, uint32_t *ppm)
{
	uint32_t whole = 0, frac = 0, scale = 10000;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint32_t)(*p - '0');
		if (whole > 100)
			return -1;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			scale /= 10;
			if (scale == 0)
				return -1; /* more than four decimals */
			frac += (uint32_t)(*p - '0') * scale;
		}
	}
	if (*p || whole * 10000 + frac > FP_PPM_MAX)
		return -1;
	*ppm = whole * 10000 + frac;
	return 0;
}

int fp_knob_parse(enum fp_knob k, const char *s, uint32_t *value, const char **why)
{
	uint64_t ms;

	if (knob_is_pct(k)) {
		if (parse_pct(s, value) == 0)
			return 0;
		*why = "expected a percentage from 0 to 100 (up to four decimals)";
		return -1;
	}
	if (tpc_parse_duration_ms(s, &ms) == 0 && ms <= FP_DURATION_MAX_MS) {
		*value = (uint32_t)ms;
		return 0;
	}
	if (*s && strspn(s, "0123456789.") == strlen(s))
		*why = "a duration needs a unit: ms, s, m or h (50ms, 1.5s)";
	else
		*why = "expected a duration from 0 to 1h, such as 50ms, 1.5s or 2m";
	return -1;
}

void fp_knob_apply(struct fp_faults *f, enum fp_knob k, uint32_t value)
{
	switch (k) {
	case FP_KNOB_DROP: f->drop_ppm = value; break;
	case FP_KNOB_DUP: f->dup_ppm = value; break;
	case FP_KNOB_REORDER: f->reorder_ppm = value; break;
	case FP_KNOB_DELAY: f->delay_ms = value; break;
	case FP_KNOB_JITTER: f->jitter_ms = value; break;
	case FP_KNOB_HOLD: f->hold_ms = value; break;
	case FP_KNOB_COUNT: break;
	}
}

uint32_t fp_knob_get(const struct fp_faults *f, enum fp_knob k)
{
	switch (k) {
	case FP_KNOB_DROP: return f->drop_ppm;
	case FP_KNOB_DUP: return f->dup_ppm;
	case FP_KNOB_REORDER: return f->reorder_ppm;
	case FP_KNOB_DELAY: return f->delay_ms;
	case FP_KNOB_JITTER: return f->jitter_ms;
	case FP_KNOB_HOLD: return f->hold_ms;
	case FP_KNOB_COUNT: break;
	}
	return 0;
}

const char *fp_knob_format(enum fp_knob k, uint32_t value, char *buf, unsigned cap)
{
	if (!knob_is_pct(k)) {
		snprintf(buf, cap, "%ums", (unsigned)value);
		return buf;
	}
	int n = snprintf(buf, cap, "%u.%04u", (unsigned)(value / 10000), (unsigned)(value % 10000));
	/* Trim "12.5000" to "12.5" and "100.0000" to "100". */
	while (n > 0 && (unsigned)n < cap && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && (unsigned)n < cap && buf[n - 1] == '.')
		buf[--n] = '\0';
	return buf;
}

/* ---- control commands ------------------------------------------------------------- */

static const struct {
	const char *verb;
	enum fp_cmd_kind kind;
} plain_cmds[] = {
	{ "partition", FP_CMD_PARTITION }, { "heal", FP_CMD_HEAL }, { "reset", FP_CMD_RESET },
	{ "stats", FP_CMD_STATS },         { "show", FP_CMD_SHOW }, { "quit", FP_CMD_QUIT },
};

#define CMD_LIST "partition, heal, reset, set KNOB VALUE, stats, show, quit"
#define KNOB_LIST "drop, dup, reorder, delay, jitter, reorder-hold"

static int parse_set(char *knob, char *val, char *extra, struct fp_cmd *cmd, char *why,
		     unsigned cap)
{
	const char *reason = NULL;

	if (!knob || !val || extra) {
		snprintf(why, cap, "usage: set KNOB VALUE (knobs: " KNOB_LIST ")");
		return -1;
	}
	if (fp_knob_lookup(knob, &cmd->knob) < 0) {
		snprintf(why, cap, "unknown knob '%.40s' (knobs: " KNOB_LIST ")", knob);
		return -1;
	}
	if (fp_knob_parse(cmd->knob, val, &cmd->value, &reason) < 0) {
		snprintf(why, cap, "set %s '%.40s': %s", knob, val, reason);
		return -1;
	}
	cmd->kind = FP_CMD_SET;
	return 0;
}

int fp_cmd_parse(char *line, struct fp_cmd *cmd, char *why, unsigned cap)
{
	char *save = NULL;
	char *verb = strtok_r(line, " \t\r", &save);
	char *a1 = strtok_r(NULL, " \t\r", &save);
	char *a2 = strtok_r(NULL, " \t\r", &save);
	char *a3 = strtok_r(NULL, " \t\r", &save);

	if (!verb) {
		snprintf(why, cap, "empty command (commands: " CMD_LIST ")");
		return -1;
	}
	if (strcmp(verb, "set") == 0)
		return parse_set(a1, a2, a3, cmd, why, cap);
	for (size_t i = 0; i < sizeof(plain_cmds) / sizeof(plain_cmds[0]); i++) {
		if (strcmp(verb, plain_cmds[i].verb) != 0)
			continue;
		if (a1) {
			snprintf(why, cap, "'%s' takes no arguments", verb);
			return -1;
		}
		cmd->kind = plain_cmds[i].kind;
		return 0;
	}
	snprintf(why, cap, "unknown command '%.40s' (commands: " CMD_LIST ")", verb);
	return -1;
}
