/*
 * faults.c - arming fault points from a spec, and firing them (see faults.h).
 */
#include "faults.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *const names[TPC_FP_COUNT] = {
	[TPC_FP_COORD_PREPARE_PARTIAL_SEND] = "coord.prepare.partial_send",
	[TPC_FP_COORD_DECISION_BEFORE_LOG] = "coord.decision.before_log",
	[TPC_FP_COORD_DECISION_AFTER_LOG] = "coord.decision.after_log",
	[TPC_FP_COORD_COMMIT_PARTIAL_SEND] = "coord.commit.partial_send",
	[TPC_FP_COORD_END_BEFORE_LOG] = "coord.end.before_log",
	[TPC_FP_COORD_RECOVERY_RESEND] = "coord.recovery.resend",
	[TPC_FP_PART_PREPARE_BEFORE_LOG] = "part.prepare.before_log",
	[TPC_FP_PART_PREPARE_AFTER_LOG] = "part.prepare.after_log",
	[TPC_FP_PART_VOTE_AFTER_SEND] = "part.vote.after_send",
	[TPC_FP_PART_COMMIT_BEFORE_APPLY] = "part.commit.before_apply",
	[TPC_FP_PART_COMMIT_AFTER_APPLY] = "part.commit.after_apply",
	[TPC_FP_LOG_SYNC] = "log.sync",
};

static void discard_line(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static void seed_rng(struct tpc_faults *f, uint64_t seed)
{
	f->rng = seed * 0x9e3779b97f4a7c15ULL | 1;
}

const char *tpc_fault_name(enum tpc_fault_point p)
{
	return (unsigned)p < TPC_FP_COUNT ? names[p] : NULL;
}

int tpc_fault_lookup(const char *name)
{
	for (int i = 0; i < TPC_FP_COUNT; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

void tpc_faults_init(struct tpc_faults *f, const char *prog)
{
	memset(f, 0, sizeof(*f));
	f->prog = prog;
	seed_rng(f, (uint64_t)getpid());
	pthread_mutex_init(&f->mu, NULL);
}

void tpc_faults_set_log(struct tpc_faults *f, void (*fn)(void *arg, const char *msg),
			void *arg)
{
	f->log = fn ? fn : discard_line;
	f->log_arg = arg;
}

void tpc_faults_destroy(struct tpc_faults *f)
{
	pthread_mutex_destroy(&f->mu);
}

void tpc_faults_clear(struct tpc_faults *f)
{
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < TPC_FP_COUNT; i++)
		f->pt[i].action = TPC_FA_NONE;
	f->armed = 0;
	pthread_mutex_unlock(&f->mu);
}


/* "crash", "crash@3", "crash%20", "delay:50", "fail", "fail@2", "fail%5" */
static int parse_action(const char *s, struct tpc_fault *out)
{
	char *end;
	unsigned long v;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "delay:", 6) == 0) {
		v = strtoul(s + 6, &end, 10);
		if (end == s + 6 || *end || v > 600000)
			return -EINVAL;
		out->action = TPC_FA_DELAY;
		out->delay_ms = (uint32_t)v;
		return 0;
	}
	size_t len = strcspn(s, "@%");
	if (len == 5 && strncmp(s, "crash", 5) == 0)
		out->action = TPC_FA_CRASH;
	else if (len == 4 && strncmp(s, "fail", 4) == 0)
		out->action = TPC_FA_FAIL;
	else
		return -EINVAL;
	if (!s[len])
		return 0;
	v = strtoul(s + len + 1, &end, 10);
	if (end == s + len + 1 || *end || v == 0)
		return -EINVAL;
	if (s[len] == '@')
		out->nth = (uint32_t)v;
	else if (v <= 100)
		out->prob_pct = (uint32_t)v;
	else
		return -EINVAL;
	return 0;
}

static int arm_one(struct tpc_faults *f, char *entry, char *err, size_t errlen)
{
	char *eq = strchr(entry, '=');
	struct tpc_fault parsed;

	if (!eq) {
		tpc_set_err(err, errlen, "fault '%s': expected POINT=ACTION", entry);
		return -EINVAL;
	}
	*eq = '\0';
	if (strcmp(entry, "seed") == 0) {
		char *end;
		unsigned long long v = strtoull(eq + 1, &end, 0);
		if (end == eq + 1 || *end) {
			tpc_set_err(err, errlen, "fault seed '%s': expected a number", eq + 1);
			return -EINVAL;
		}
		seed_rng(f, v);
		return 0;
	}
	int p = tpc_fault_lookup(entry);
	if (p < 0) {
		tpc_set_err(err, errlen, "unknown fault point '%s'", entry);
		return -EINVAL;
	}
	if (parse_action(eq + 1, &parsed)) {
		tpc_set_err(err, errlen, "fault %s: unknown action '%s' (crash, crash@N, crash%%P, "
			"delay:MS, fail, fail@N, fail%%P)", entry, eq + 1);
		return -EINVAL;
	}
	parsed.hits = f->pt[p].hits;
	parsed.fired = f->pt[p].fired;
	f->pt[p] = parsed;
	return 0;
}

int tpc_faults_arm(struct tpc_faults *f, const char *spec, char *err, size_t errlen)
{
	char *copy, *save = NULL;
	int rc = 0;

	if (!spec || !*spec)
		return 0;
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&f->mu);
	for (char *e = strtok_r(copy, ",", &save); e && !rc; e = strtok_r(NULL, ",", &save))
		rc = arm_one(f, e, err, errlen);
	f->armed = 0;
	for (int i = 0; i < TPC_FP_COUNT; i++)
		f->armed |= f->pt[i].action != TPC_FA_NONE;
	pthread_mutex_unlock(&f->mu);
	free(copy);
	return rc;
}

void tpc_faults_seed(struct tpc_faults *f, uint64_t seed)
{
	pthread_mutex_lock(&f->mu);
	seed_rng(f, seed);
	pthread_mutex_unlock(&f->mu);
}

static uint32_t next_rand(struct tpc_faults *f)
{
	f->rng ^= f->rng << 13; /* xorshift64 */
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return (uint32_t)(f->rng >> 32);
}

/* Decide under the lock whether this hit fires. */
static int should_fire(struct tpc_faults *f, struct tpc_fault *pt)
{
	pt->hits++;
	if (pt->nth)
		return pt->hits == pt->nth;
	if (pt->prob_pct && pt->prob_pct < 100)
		return next_rand(f) % 100 < pt->prob_pct;
	return 1;
}

/* One line for a fired fault: the set's log function, or stderr. */
static void fired(struct tpc_faults *f, const char *fmt, ...)
{
	struct tpc_logger lg = { f->prog ? f->prog : "tpc", TPC_LOG_WARN };
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (f->log)
		f->log(f->log_arg, msg);
	else
		tpc_logf(&lg, TPC_LOG_WARN, "%s", msg);
}

int tpc_fault_fire(struct tpc_faults *f, enum tpc_fault_point p)
{
	pthread_mutex_lock(&f->mu);
	struct tpc_fault *pt = &f->pt[p];
	uint8_t action = pt->action;
	int fire = action != TPC_FA_NONE && should_fire(f, pt);
	uint32_t delay = pt->delay_ms;
	if (fire)
		pt->fired++;
	pthread_mutex_unlock(&f->mu);
	if (!fire)
		return 0;
	switch (action) {
	case TPC_FA_CRASH:
		fired(f, "fault %s fired: crash", names[p]);
		raise(SIGKILL);
		return 0;
	case TPC_FA_DELAY: {
		fired(f, "fault %s fired: delay %u ms", names[p], delay);
		struct timespec ts = { delay / 1000, (long)(delay % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		return 0;
	}
	case TPC_FA_FAIL:
		fired(f, "fault %s fired: fail", names[p]);
		return -EIO;
	default:
		return 0;
	}
}
