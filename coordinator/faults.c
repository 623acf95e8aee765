/*
 * faults.c - parsing TPC_FAULTS into a struct coord_faults, and looking fault points
 * up (see faults.h). Pure: no environment, no I/O; the server reads the variable and
 * carries out the action where the point is hit.
 */
#include "faults.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const known_points[] = {
	COORD_FAULT_DECISION_AFTER_LOG,
};

static const char *point_name(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(known_points) / sizeof(known_points[0]); i++)
		if (strlen(known_points[i]) == len && memcmp(known_points[i], s, len) == 0)
			return known_points[i];
	return NULL;
}

static int parse_action(const char *s, size_t len, enum coord_fault_action *out)
{
	if (len == 5 && memcmp(s, "crash", 5) == 0) {
		*out = COORD_FAULT_CRASH;
		return 0;
	}
	return -EINVAL;
}

static int fail(char *err, size_t errlen, int rc, const char *what, const char *s, size_t len)
{
	if (err && errlen)
		snprintf(err, errlen, "%s \"%.*s\"", what, (int)len, s);
	return rc;
}

/* One "POINT=ACTION" entry of @p len bytes at @p s. */
static int parse_entry(struct coord_faults *f, const char *s, size_t len, char *err,
		       size_t errlen)
{
	const char *eq = memchr(s, '=', len);

	if (!eq)
		return fail(err, errlen, -EINVAL, "expected POINT=ACTION, got", s, len);
	const char *name = point_name(s, (size_t)(eq - s));
	if (!name)
		return fail(err, errlen, -EINVAL, "unknown fault point", s, (size_t)(eq - s));
	enum coord_fault_action action;
	size_t alen = len - (size_t)(eq - s) - 1;
	if (parse_action(eq + 1, alen, &action))
		return fail(err, errlen, -EINVAL, "unknown fault action (expected crash)", eq + 1,
			    alen);
	if (f->n == COORD_FAULTS_MAX)
		return fail(err, errlen, -E2BIG, "too many fault entries at", s, len);
	f->armed[f->n].name = name;
	f->armed[f->n].action = action;
	f->n++;
	return 0;
}

int coord_faults_parse(struct coord_faults *f, const char *spec, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	if (err && errlen)
		err[0] = '\0';
	while (spec && *spec) {
		size_t len = strcspn(spec, ",");
		if (len > 0) {
			int rc = parse_entry(f, spec, len, err, errlen);
			if (rc) {
				memset(f, 0, sizeof(*f));
				return rc;
			}
		}
		spec += len;
		if (*spec == ',')
			spec++;
	}
	return 0;
}

int coord_fault_hit(const struct coord_faults *f, const char *name)
{
	for (size_t i = 0; f && i < f->n; i++)
		if (strcmp(f->armed[i].name, name) == 0)
			return f->armed[i].action;
	return COORD_FAULT_NONE;
}
