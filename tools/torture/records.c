/*
 * records.c - formatting and parsing the outcomes-file lines (records.h).
 *
 * Pure text handling: no I/O but tt_rec_read_file(). A line that does not parse is
 * reported to the caller as bad, never guessed at.
 */
#include "records.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const outcome_names[] = {
	[TT_OUT_NONE] = "NONE", [TT_OUT_COMMITTED] = "COMMITTED", [TT_OUT_ABORTED] = "ABORTED",
	[TT_OUT_UNKNOWN] = "UNKNOWN", [TT_OUT_PENDING] = "PENDING",
};
static const char *const kind_names[] = { "transfer", "write", "refuse" };
static const char *const plan_names[] = { "commit", "abort" };
static const char *const type_names[] = {
	[TT_REC_BEGIN] = "begin", [TT_REC_INTENT] = "intent",
	[TT_REC_COMMIT_SENT] = "commit-sent", [TT_REC_ABORT_SENT] = "abort-sent",
	[TT_REC_OUTCOME] = "outcome", [TT_REC_RESOLVED] = "resolved", [TT_REC_BY_KEY] = "by-key",
	[TT_REC_PUT_OK] = "put-ok", [TT_REC_OPERATOR] = "operator",
};
static const char *const force_names[] = { "plain", "force" };
static const char *const decision_names[] = { "commit", "abort" };

const char *tt_outcome_name(enum tt_outcome o)
{
	return (unsigned)o <= TT_OUT_PENDING ? outcome_names[o] : "?";
}

const char *tt_kind_name(enum tt_kind k)
{
	return (unsigned)k <= TT_KIND_REFUSE ? kind_names[k] : "?";
}

static int lookup(const char *const *names, size_t n, const char *word)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], word) == 0)
			return (int)i;
	return -1;
}

/* Append to buf at *len; -ENOSPC when it does not fit. */
static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *len)
		return -ENOSPC;
	*len += (size_t)n;
	return 0;
}

static int format_intent(const struct tt_rec *r, char *buf, size_t cap, size_t *len)
{
	int rc = put(buf, cap, len, " %s %s %" PRIu32 "/%" PRIu64 "%s",
		     tt_kind_name((enum tt_kind)r->kind), plan_names[r->plan ? 1 : 0],
		     r->client, r->seq, r->staged ? " staged" : "");

	for (uint8_t i = 0; !rc && i < r->nwrites; i++)
		rc = put(buf, cap, len, " kv%u:%s=%s", r->w[i].part + 1u, r->w[i].key,
			 r->w[i].value);
	return rc;
}

static int format_operator(const struct tt_rec *r, char *buf, size_t cap, size_t *len)
{
	return put(buf, cap, len, " %s %s %s %s",
		   decision_names[r->outcome == TT_OUT_COMMITTED ? 0 : 1],
		   force_names[r->force ? 1 : 0], r->why[0] ? r->why : "-",
		   r->overrode[0] ? r->overrode : "-");
}

int tt_rec_format(const struct tt_rec *r, char *buf, size_t cap)
{
	size_t len = 0;
	int rc;

	if ((unsigned)r->type > TT_REC_OPERATOR)
		return -EINVAL;
	rc = put(buf, cap, &len, "%s %" PRIu64, type_names[r->type], r->txid);
	if (!rc && r->type == TT_REC_INTENT)
		rc = format_intent(r, buf, cap, &len);
	else if (!rc && (r->type == TT_REC_OUTCOME || r->type == TT_REC_RESOLVED ||
			 r->type == TT_REC_BY_KEY))
		rc = put(buf, cap, &len, " %s", tt_outcome_name((enum tt_outcome)r->outcome));
	else if (!rc && r->type == TT_REC_ABORT_SENT)
		rc = put(buf, cap, &len, " %s", r->why[0] ? r->why : "-");
	else if (!rc && r->type == TT_REC_PUT_OK)
		rc = put(buf, cap, &len, " %u", (unsigned)r->index);
	else if (!rc && r->type == TT_REC_OPERATOR)
		rc = format_operator(r, buf, cap, &len);
	if (!rc)
		rc = put(buf, cap, &len, "\n");
	return rc ? rc : (int)len;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

/* "kvN:KEY=VALUE" */
static int parse_write(char *tok, struct tt_write *w)
{
	char *colon = strchr(tok, ':');
	char *eq = colon ? strchr(colon, '=') : NULL;
	uint64_t part;

	if (!eq || strncmp(tok, "kv", 2) != 0)
		return -EINVAL;
	*colon = *eq = '\0';
	if (parse_u64(tok + 2, &part) || part < 1 || part > TT_MAX_PARTS)
		return -EINVAL;
	if (strlen(colon + 1) >= sizeof(w->key) || strlen(eq + 1) >= sizeof(w->value))
		return -EINVAL;
	w->part = (uint8_t)(part - 1);
	strcpy(w->key, colon + 1);
	strcpy(w->value, eq + 1);
	return 0;
}

/* "C/SEQ" */
static int parse_tid(char *tok, struct tt_rec *r)
{
	char *slash = tok ? strchr(tok, '/') : NULL;
	uint64_t c;

	if (!slash)
		return -EINVAL;
	*slash = '\0';
	if (parse_u64(tok, &c) || c > UINT32_MAX || parse_u64(slash + 1, &r->seq))
		return -EINVAL;
	r->client = (uint32_t)c;
	return 0;
}

static int parse_intent(char **save, struct tt_rec *r)
{
	char *kind = strtok_r(NULL, " ", save), *plan = strtok_r(NULL, " ", save);
	int k = kind ? lookup(kind_names, 3, kind) : -1;
	int p = plan ? lookup(plan_names, 2, plan) : -1;
	char *tok;

	if (k < 0 || p < 0 || parse_tid(strtok_r(NULL, " ", save), r))
		return -EINVAL;
	r->kind = (uint8_t)k;
	r->plan = (uint8_t)p;
	while ((tok = strtok_r(NULL, " ", save))) {
		if (r->nwrites == 0 && !r->staged && strcmp(tok, "staged") == 0) {
			r->staged = 1;
			continue;
		}
		if (r->nwrites == TT_MAX_WRITES || parse_write(tok, &r->w[r->nwrites]))
			return -EINVAL;
		r->nwrites++;
	}
	return r->nwrites ? 0 : -EINVAL;
}

/* A word of @p names into *out; -EINVAL when it is none of them. */
static int parse_word(char **save, const char *const *names, size_t n, int *out)
{
	char *word = strtok_r(NULL, " ", save);

	*out = word ? lookup(names, n, word) : -1;
	return *out < 0 ? -EINVAL : 0;
}

/* "commit|abort force|plain RESULT OVERRODE" */
static int parse_operator(char **save, struct tt_rec *r)
{
	int d, f;
	char *result, *overrode;

	if (parse_word(save, decision_names, 2, &d) || parse_word(save, force_names, 2, &f))
		return -EINVAL;
	result = strtok_r(NULL, " ", save);
	overrode = strtok_r(NULL, " ", save);
	if (!result || !overrode || strlen(result) >= sizeof(r->why) ||
	    strlen(overrode) >= sizeof(r->overrode) || strtok_r(NULL, " ", save))
		return -EINVAL;
	r->outcome = d == 0 ? TT_OUT_COMMITTED : TT_OUT_ABORTED;
	r->force = (uint8_t)f;
	strcpy(r->why, result);
	strcpy(r->overrode, overrode);
	return 0;
}

static int parse_rest(char **save, struct tt_rec *r)
{
	uint64_t n;
	char *word;
	int o;

	switch (r->type) {
	case TT_REC_INTENT:
		return parse_intent(save, r);
	case TT_REC_OUTCOME:
	case TT_REC_RESOLVED:
	case TT_REC_BY_KEY:
		word = strtok_r(NULL, " ", save);
		o = word ? lookup(outcome_names, TT_OUT_PENDING + 1, word) : -1;
		if (o <= TT_OUT_NONE)
			return -EINVAL;
		r->outcome = (uint8_t)o;
		return strtok_r(NULL, " ", save) ? -EINVAL : 0;
	case TT_REC_PUT_OK:
		if (parse_u64(strtok_r(NULL, " ", save), &n) || n >= TT_MAX_WRITES)
			return -EINVAL;
		r->index = (uint8_t)n;
		return strtok_r(NULL, " ", save) ? -EINVAL : 0;
	case TT_REC_OPERATOR:
		return parse_operator(save, r);
	case TT_REC_ABORT_SENT:
		word = strtok_r(NULL, " ", save);
		if (!word || strlen(word) >= sizeof(r->why))
			return -EINVAL;
		strcpy(r->why, word);
		return 0;
	default:
		return strtok_r(NULL, " ", save) ? -EINVAL : 0;
	}
}

int tt_rec_parse(const char *line, struct tt_rec *out)
{
	char copy[1024], *save = NULL;
	size_t len = strlen(line);

	if (len && line[len - 1] == '\n')
		len--;
	if (len == 0 || len >= sizeof(copy))
		return -EINVAL;
	memcpy(copy, line, len);
	copy[len] = '\0';
	memset(out, 0, sizeof(*out));
	char *type = strtok_r(copy, " ", &save);
	int t = type ? lookup(type_names, TT_REC_OPERATOR + 1, type) : -1;
	if (t < 0 || parse_u64(strtok_r(NULL, " ", &save), &out->txid) || out->txid == 0)
		return -EINVAL;
	out->type = (enum tt_rec_type)t;
	return parse_rest(&save, out);
}

int tt_rec_read_file(const char *path, tt_rec_fn fn, void *arg, uint64_t *bad)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	struct tt_rec r;
	int rc = 0;

	if (bad)
		*bad = 0;
	if (!f)
		return -errno;
	while (!rc && fgets(line, sizeof(line), f)) {
		/* A line without its newline is the torn tail of a killed client. */
		if (!strchr(line, '\n') || tt_rec_parse(line, &r)) {
			if (bad)
				(*bad)++;
			continue;
		}
		rc = fn(arg, &r);
	}
	fclose(f);
	return rc;
}
