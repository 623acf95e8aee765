/*
 * duration.c - durations as people write them: an unsigned decimal, optionally with a
 * fraction, then a unit (ms, s, m, h). It owns the rule that a duration always carries a
 * unit (only "0" may go without) and the wording of a bad duration, naming the option.
 */
#include "duration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const struct unit {
	const char *name;
	uint64_t ms;
} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };

static const struct unit *find_unit(const char *suffix)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(suffix, units[i].name) == 0)
			return &units[i];
	return NULL;
}

/* Digits from *p into *acc (at most 19 of them, so no overflow); *p moves past them. */
static int take_digits(const char **p, uint64_t *acc, unsigned *ndigits)
{
	*acc = 0;
	*ndigits = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++) {
		if (++*ndigits > 18)
			return -EINVAL;
		*acc = *acc * 10 + (uint64_t)(**p - '0');
	}
	return 0;
}

/* whole.frac (frac has @p nfrac digits) times @p mul ms: exact, or -EINVAL. */
static int scale(uint64_t whole, uint64_t frac, unsigned nfrac, uint64_t mul, uint64_t *out)
{
	uint64_t div = 1, part;

	for (unsigned i = 0; i < nfrac; i++)
		div *= 10;
	if (whole > UINT64_MAX / mul)
		return -EINVAL;
	part = frac * mul; /* frac < 10^18, mul <= 3.6e6: may overflow, so check */
	if (frac && part / mul != frac)
		return -EINVAL;
	if (part % div) /* finer than a millisecond */
		return -EINVAL;
	if (whole * mul > UINT64_MAX - part / div)
		return -EINVAL;
	*out = whole * mul + part / div;
	return 0;
}

int tpc_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	uint64_t whole, frac = 0;
	unsigned nwhole, nfrac = 0;
	const struct unit *u;
	const char *p = s;

	if (!s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	if (take_digits(&p, &whole, &nwhole))
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (take_digits(&p, &frac, &nfrac) || nfrac == 0)
			return -EINVAL;
	}
	if (nwhole == 0 || !(u = find_unit(p)))
		return -EINVAL;
	return scale(whole, frac, nfrac, u->ms, out_ms);
}

void tpc_format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = sizeof(units) / sizeof(units[0]); i-- > 1;) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(ms / units[i].ms),
				 units[i].name);
			return;
		}
	}
	snprintf(buf, len, "%llums", (unsigned long long)ms);
}

/* A bare number: the most likely slip, so the message shows the fix. */
static int is_bare_number(const char *s)
{
	return *s && strspn(s, "0123456789.") == strlen(s);
}

void tpc_duration_why(const char *s, uint64_t lo, uint64_t hi, char *why, size_t len)
{
	char los[32], his[32];

	if (s && is_bare_number(s) && strcmp(s, "0") != 0) {
		snprintf(why, len, "a duration needs a unit: %sms, %ss, %sm or %sh", s, s, s, s);
		return;
	}
	tpc_format_duration(lo, los, sizeof(los));
	tpc_format_duration(hi, his, sizeof(his));
	if (hi == UINT64_MAX)
		snprintf(why, len, "expected a duration such as 500ms, 1.5s, 2m or 1h, at least %s",
			 los);
	else
		snprintf(why, len, "expected a duration such as 500ms, 1.5s, 2m or 1h, from %s "
			 "to %s", los, his);
}

int tpc_parse_duration_opt(const char *opt, const char *s, uint64_t lo, uint64_t hi,
			   uint64_t *out_ms, char *err, size_t errlen)
{
	char why[160];
	uint64_t v;

	if (s && tpc_parse_duration_ms(s, &v) == 0 && v >= lo && v <= hi) {
		*out_ms = v;
		return 0;
	}
	tpc_duration_why(s, lo, hi, why, sizeof(why));
	tpc_set_err(err, errlen, "%s %s: %s", opt, s ? s : "", why);
	return -EINVAL;
}
