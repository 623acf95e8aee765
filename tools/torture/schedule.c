/*
 * schedule.c - building the seeded schedule and the fault rotation (schedule.h).
 *
 * All randomness comes from one splitmix64 stream seeded with --seed (events) and from
 * hashes of (seed, role, index, start number) (faults per start), so neither depends on
 * how the run went. Pure: no clock, no I/O.
 */
#include "schedule.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARMUP_MS 1000u     /* no chaos in a round's first second */
#define COOLDOWN_MS 1000u   /* nor in its last */

uint64_t tt_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t tt_rand_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
	return hi <= lo ? lo : lo + tt_rand(state) % (hi - lo + 1);
}

static const char *const role_names[TT_ROLE_COUNT] = { "coordinator", "participant", "client",
							 "proxy" };
static const char *const act_names[] = { "kill", "restart", "partition", "heal", "reset",
					 "drop", "delay", "checkpoint", "stranger", "operator" };
static const char *const broken_names[] = { "", "coord.commit_before_log",
					    "part.ack_before_apply", "sink.no_dedup",
					    "coord.accept_rejoin" };

const char *tt_role_name(enum tt_role r)
{
	return (unsigned)r < TT_ROLE_COUNT ? role_names[r] : "?";
}

const char *tt_act_name(enum tt_act a)
{
	return (unsigned)a <= TT_ACT_OPERATOR ? act_names[a] : "?";
}

const char *tt_profile_name(enum tt_profile p)
{
	return p == TT_PROFILE_NONE ? "none" : p == TT_PROFILE_PARTITIONS ? "partitions"
								 : "default";
}

const char *tt_broken_name(enum tt_broken b)
{
	return (unsigned)b <= TT_BROKEN_ACCEPT_REJOIN ? broken_names[b] : "?";
}

int tt_profile_parse(const char *s, enum tt_profile *out)
{
	if (strcmp(s, "default") == 0)
		*out = TT_PROFILE_DEFAULT;
	else if (strcmp(s, "none") == 0)
		*out = TT_PROFILE_NONE;
	else if (strcmp(s, "partitions") == 0)
		*out = TT_PROFILE_PARTITIONS;
	else
		return -EINVAL;
	return 0;
}

int tt_broken_parse(const char *s, enum tt_broken *out)
{
	for (unsigned i = 1; i <= TT_BROKEN_ACCEPT_REJOIN; i++)
		if (strcmp(s, broken_names[i]) == 0) {
			*out = (enum tt_broken)i;
			return 0;
		}
	return -EINVAL;
}

/* ---- the event list ---- */

struct builder {
	const struct tt_sched_config *cfg;
	struct tt_action *v;
	size_t n, cap;
	uint64_t rng;
	uint64_t round_end;   /* nothing but the checkpoint at or after it */
	int nomem;
};

static void add(struct builder *b, uint64_t at, enum tt_act act, enum tt_role role,
		unsigned index, uint32_t arg)
{
	/* A restart, heal or end of drops due after the round's end is the checkpoint's
	 * job: it heals everything. */
	if (act != TT_ACT_CHECKPOINT && at >= b->round_end)
		return;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct tt_action *nv = realloc(b->v, cap * sizeof(*nv));
		if (!nv) {
			b->nomem = 1;
			return;
		}
		b->v = nv;
		b->cap = cap;
	}
	b->v[b->n++] = (struct tt_action){ at, (uint8_t)act, (uint8_t)role, (uint16_t)index, arg };
}

/* Kill a process and start it again after a while (a short while: a re-arm). */
static void add_kill(struct builder *b, uint64_t at, enum tt_role role, unsigned index,
		     uint64_t down_lo, uint64_t down_hi)
{
	add(b, at, TT_ACT_KILL, role, index, 0);
	add(b, at + tt_rand_range(&b->rng, down_lo, down_hi), TT_ACT_RESTART, role, index, 0);
}

static void add_link_event(struct builder *b, uint64_t at, unsigned kind)
{
	unsigned link = (unsigned)tt_rand_range(&b->rng, 0, b->cfg->nparts);

	if (kind == 0) {
		/* Mostly short cuts; one in five long enough for backoffs to grow. */
		int long_cut = tt_rand_range(&b->rng, 0, 4) == 0;
		add(b, at, TT_ACT_PARTITION, TT_ROLE_PROXY, link, 0);
		add(b, at + (long_cut ? tt_rand_range(&b->rng, 5000, 30000)
				      : tt_rand_range(&b->rng, 200, 2500)),
		    TT_ACT_HEAL, TT_ROLE_PROXY, link, 0);
	} else if (kind == 1) {
		add(b, at, TT_ACT_RESET, TT_ROLE_PROXY, link, 0);
	} else if (kind == 2) {
		add(b, at, TT_ACT_DROP, TT_ROLE_PROXY, link,
		    (uint32_t)tt_rand_range(&b->rng, 100, 500));
		add(b, at + tt_rand_range(&b->rng, 1000, 4000), TT_ACT_DROP, TT_ROLE_PROXY, link, 0);
	} else {
		/* Slow links: votes and decisions race the 1 s prepare timeout. */
		add(b, at, TT_ACT_DELAY, TT_ROLE_PROXY, link,
		    (uint32_t)tt_rand_range(&b->rng, 100, 1500));
		add(b, at + tt_rand_range(&b->rng, 1000, 4000), TT_ACT_DELAY, TT_ROLE_PROXY, link, 0);
	}
}

/* One entry of a weighted event table: what, and how likely (of the table's total). */
struct ev_choice {
	unsigned weight;
	enum { CH_KILL, CH_STRANGER, CH_OPERATOR, CH_LINK } what;
	enum tt_role role;          /* CH_KILL: whom */
	uint64_t down_lo, down_hi;  /* CH_KILL: down for this long (ms) */
	unsigned link_kind;         /* CH_LINK: add_link_event()'s kind */
};

/* The classic schedule: long kills and re-arms. Link events (last) only with proxies. */
static const struct ev_choice classic_events[] = {
	{ 14, CH_KILL, TT_ROLE_COORD, 200, 1500, 0 },
	{ 26, CH_KILL, TT_ROLE_PART, 200, 2000, 0 },
	{ 8, CH_KILL, TT_ROLE_CLIENT, 100, 1000, 0 },
	{ 12, CH_KILL, TT_ROLE_COORD, 30, 100, 0 },   /* re-arm the coordinator */
	{ 14, CH_KILL, TT_ROLE_PART, 30, 100, 0 },    /* re-arm a participant */
	{ 10, CH_LINK, 0, 0, 0, 0 },
	{ 6, CH_LINK, 0, 0, 0, 1 },
	{ 5, CH_LINK, 0, 0, 0, 2 },
	{ 5, CH_LINK, 0, 0, 0, 3 },
};

/* The default: fewer long kills and many participant bounces (down 30-400 ms: clients
 * paused between stages send their next stage to the new incarnation), strangers and
 * operator decisions. */
static const struct ev_choice events[] = {
	{ 10, CH_KILL, TT_ROLE_COORD, 200, 1500, 0 },
	{ 16, CH_KILL, TT_ROLE_PART, 200, 2000, 0 },
	{ 6, CH_KILL, TT_ROLE_CLIENT, 100, 1000, 0 },
	{ 8, CH_KILL, TT_ROLE_COORD, 30, 100, 0 },    /* re-arm the coordinator */
	{ 22, CH_KILL, TT_ROLE_PART, 30, 400, 0 },    /* bounce / re-arm a participant */
	{ 4, CH_STRANGER, TT_ROLE_PART, 0, 0, 0 },
	{ 10, CH_OPERATOR, TT_ROLE_COORD, 0, 0, 0 },
	{ 10, CH_LINK, 0, 0, 0, 0 },
	{ 6, CH_LINK, 0, 0, 0, 1 },
	{ 4, CH_LINK, 0, 0, 0, 2 },
	{ 4, CH_LINK, 0, 0, 0, 3 },
};

/* One random event of table @p t (@p n entries) at @p at, by weight. */
static void add_weighted_event(struct builder *b, uint64_t at, const struct ev_choice *t,
			       size_t n)
{
	const struct tt_sched_config *c = b->cfg;
	unsigned total = 0;

	for (size_t i = 0; i < n; i++)
		total += t[i].what == CH_LINK && !c->proxies ? 0 : t[i].weight;
	unsigned w0 = (unsigned)tt_rand_range(&b->rng, 0, total - 1), w = w0;
	unsigned part = (unsigned)tt_rand_range(&b->rng, 0, c->nparts - 1);
	unsigned client = (unsigned)tt_rand_range(&b->rng, 0, c->nclients - 1);
	size_t i = 0;

	while (i + 1 < n && w >= t[i].weight)
		w -= t[i++].weight;
	switch (t[i].what) {
	case CH_KILL:
		add_kill(b, at, t[i].role, t[i].role == TT_ROLE_PART ? part
					   : t[i].role == TT_ROLE_CLIENT ? client : 0,
			 t[i].down_lo, t[i].down_hi);
		break;
	case CH_STRANGER: add(b, at, TT_ACT_STRANGER, TT_ROLE_PART, part, w0 & 1); break;
	case CH_OPERATOR:
		add(b, at, TT_ACT_OPERATOR, TT_ROLE_COORD, 0, (uint32_t)tt_rand(&b->rng));
		break;
	case CH_LINK: add_link_event(b, at, t[i].link_kind); break;
	}
}

/* coord.accept_rejoin: participants bounced all the time, nothing else. */
static void build_rejoin_round(struct builder *b, uint64_t start, uint64_t end)
{
	for (uint64_t t = start + WARMUP_MS; t + COOLDOWN_MS < end;
	     t += tt_rand_range(&b->rng, 300, 900))
		add_kill(b, t, TT_ROLE_PART, (unsigned)tt_rand_range(&b->rng, 0, b->cfg->nparts - 1),
			 30, 300);
}

#define LAST_CUT_MS 20000u   /* partitions profile: the cut that ends each round */

/* Link faults only; the round's last stretch is one participant cut off. */
static void build_partitions_round(struct builder *b, uint64_t start, uint64_t end)
{
	uint64_t cut = end - start > 2 * LAST_CUT_MS ? end - LAST_CUT_MS : start + (end - start) / 2;

	uint64_t slow = cut - 4000; /* votes held back: many transactions prepared at the cut */
	unsigned victim = (unsigned)tt_rand_range(&b->rng, 0, b->cfg->nparts - 1);

	b->round_end = slow; /* the short faults, and their ends, come before the cut */
	for (uint64_t t = start + WARMUP_MS; t + COOLDOWN_MS < slow;
	     t += tt_rand_range(&b->rng, 250, 1200))
		add_link_event(b, t, (unsigned)tt_rand_range(&b->rng, 0, 3));
	b->round_end = end;
	for (unsigned link = 0; link <= b->cfg->nparts; link++) { /* all links clean first */
		add(b, slow, TT_ACT_HEAL, TT_ROLE_PROXY, link, 0);
		add(b, slow, TT_ACT_DROP, TT_ROLE_PROXY, link, 0);
		add(b, slow, TT_ACT_DELAY, TT_ROLE_PROXY, link, 0);
	}
	add(b, slow + 1, TT_ACT_DELAY, TT_ROLE_PROXY, victim, 600);
	add(b, cut, TT_ACT_PARTITION, TT_ROLE_PROXY, victim, 0);
}

static void build_round(struct builder *b, uint64_t start, uint64_t end)
{
	const struct tt_sched_config *c = b->cfg;

	b->round_end = end;
	if (c->profile == TT_PROFILE_DEFAULT && c->broken == TT_BROKEN_NONE) {
		for (uint64_t t = start + WARMUP_MS; t + COOLDOWN_MS < end;
		     t += tt_rand_range(&b->rng, 250, 1200)) {
			if (c->classic)
				add_weighted_event(b, t, classic_events,
						   sizeof(classic_events) / sizeof(classic_events[0]));
			else
				add_weighted_event(b, t, events, sizeof(events) / sizeof(events[0]));
		}
	} else if (c->broken == TT_BROKEN_ACCEPT_REJOIN) {
		build_rejoin_round(b, start, end);
	} else if (c->profile == TT_PROFILE_PARTITIONS && c->broken == TT_BROKEN_NONE &&
		   c->proxies) {
		build_partitions_round(b, start, end);
	}
	add(b, end, TT_ACT_CHECKPOINT, TT_ROLE_COORD, 0, 0);
}

struct sort_item {
	struct tt_action a;
	size_t i;       /* creation order */
};

static int by_time(const void *a, const void *b)
{
	const struct sort_item *x = a, *y = b;
	if (x->a.at_ms != y->a.at_ms)
		return x->a.at_ms < y->a.at_ms ? -1 : 1;
	/* Same time: keep the order they were made in (a kill before its restart). */
	return x->i < y->i ? -1 : x->i > y->i;
}

int tt_schedule_build(const struct tt_sched_config *cfg, struct tt_schedule *out)
{
	struct builder b = { .cfg = cfg, .rng = cfg->seed };

	memset(out, 0, sizeof(*out));
	if (!cfg->duration_ms || !cfg->nparts || cfg->nparts > 8 || !cfg->nclients)
		return -EINVAL;
	uint64_t round = cfg->round_ms && cfg->round_ms < cfg->duration_ms ? cfg->round_ms
									     : cfg->duration_ms;
	for (uint64_t s = 0; s < cfg->duration_ms && !b.nomem; s += round)
		build_round(&b, s, s + round < cfg->duration_ms ? s + round : cfg->duration_ms);
	if (b.nomem) {
		free(b.v);
		return -ENOMEM;
	}
	/* qsort is not stable: sort by (time, creation order). */
	struct sort_item *tmp = malloc((b.n ? b.n : 1) * sizeof(*tmp));
	if (!tmp) {
		free(b.v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < b.n; i++) {
		tmp[i].a = b.v[i];
		tmp[i].i = i;
	}
	qsort(tmp, b.n, sizeof(*tmp), by_time);
	for (size_t i = 0; i < b.n; i++)
		b.v[i] = tmp[i].a;
	free(tmp);
	out->cfg = *cfg;
	out->v = b.v;
	out->n = b.n;
	return 0;
}

void tt_schedule_free(struct tt_schedule *s)
{
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* ---- faults per start ---- */

/* Fault specs in turn; %P is a crash/fail percentage, %D a delay in ms. */
static const char *const coord_rotation[] = {
	"coord.decision.after_log=crash%P",
	"coord.recovery.resend=crash%50",
	"coord.prepare.partial_send=crash%P",
	"log.sync=delay:%D",
	"coord.decision.before_log=crash%P",
	"coord.commit.partial_send=crash%P",
	"log.sync=fail%P",
	"coord.end.before_log=fail%P",
	"coord.end.before_log=crash%P",
	"log.sync=crash%P",
	"coord.commit.partial_send=delay:%D",
	"coord.prepare.partial_send=delay:%D",
};

static const char *const part_rotation[] = {
	"part.prepare.before_log=crash%P",
	"part.prepare.after_log=crash%P",
	"part.vote.after_send=crash%P",
	"part.commit.before_apply=crash%P",
	"part.commit.after_apply=crash%P",
	"log.sync=delay:%D",
	"log.sync=fail%P",
	"log.sync=crash%P",
	"part.prepare.before_log=fail%P",
	"part.commit.before_apply=fail%P",
	"part.prepare.after_log=delay:%D",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t start_hash(const struct tt_schedule *s, enum tt_role role, unsigned index,
			   unsigned start, uint64_t salt)
{
	uint64_t st = s->cfg.seed ^ ((uint64_t)role << 56) ^ ((uint64_t)index << 40) ^
		      ((uint64_t)start << 8) ^ salt;
	return tt_rand(&st);
}

uint64_t tt_schedule_fault_seed(const struct tt_schedule *s, enum tt_role role, unsigned index,
				unsigned start)
{
	return start_hash(s, role, index, start, 0x5eed) >> 1;
}

/* Expand %P and %D in @p tmpl. */
static void expand(const char *tmpl, uint64_t *rng, char *buf, size_t cap)
{
	size_t len = 0;

	for (const char *p = tmpl; *p && len + 8 < cap; p++) {
		if (p[0] == '%' && (p[1] == 'P' || p[1] == 'D')) {
			uint64_t v = p[1] == 'P' ? tt_rand_range(rng, 2, 8) : tt_rand_range(rng, 5, 120);
			len += (size_t)snprintf(buf + len, cap - len, "%s%llu", p[1] == 'P' ? "%" : "",
						(unsigned long long)v);
			p++;
		} else {
			buf[len++] = *p;
		}
	}
	buf[len] = '\0';
}

static void broken_faults(const struct tt_schedule *s, enum tt_role role, char *buf, size_t cap)
{
	if (s->cfg.broken == TT_BROKEN_COMMIT_BEFORE_LOG && role == TT_ROLE_COORD)
		snprintf(buf, cap, "coord.decision.before_log=crash%%10");
	else if (s->cfg.broken == TT_BROKEN_ACK_BEFORE_APPLY && role == TT_ROLE_PART)
		snprintf(buf, cap, "part.commit.before_apply=crash%%10");
	else if (s->cfg.broken == TT_BROKEN_NO_DEDUP && role == TT_ROLE_PART)
		snprintf(buf, cap, "part.commit.after_apply=crash%%10");
}

void tt_schedule_faults(const struct tt_schedule *s, enum tt_role role, unsigned index,
			unsigned start, unsigned armed_before, char *buf, size_t cap)
{
	const char *const *rot = role == TT_ROLE_COORD ? coord_rotation : part_rotation;
	size_t nrot = role == TT_ROLE_COORD ? NELEM(coord_rotation) : NELEM(part_rotation);
	uint64_t h = start_hash(s, role, index, start, 0xfa17);
	size_t len;

	buf[0] = '\0';
	if (s->cfg.broken != TT_BROKEN_NONE) {
		broken_faults(s, role, buf, cap);
		return;
	}
	if (s->cfg.profile != TT_PROFILE_DEFAULT || start == 0 ||
	    (role != TT_ROLE_COORD && role != TT_ROLE_PART) || h % 100 >= 60)
		return;
	size_t at = (armed_before + index * 4 + (size_t)(s->cfg.seed % nrot)) % nrot;
	expand(rot[at], &h, buf, cap);
	if ((h >> 8) % 4 == 0 && (len = strlen(buf)) + 2 < cap) { /* sometimes two at once */
		const char *next = rot[(at + 1 + (h >> 16) % (nrot - 1)) % nrot];
		if (strncmp(next, buf, strcspn(buf, "=")) != 0) {
			buf[len] = ',';
			expand(next, &h, buf + len + 1, cap - len - 1);
		}
	}
}
