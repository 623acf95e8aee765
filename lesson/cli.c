/*
 * cli.c - helpers shared by the lesson's programs (see cli.h). The JSON form of a
 * report is built with jansson, so that its escaping is not this file's problem.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "eventlog.h"
#include "events.h"
#include "util.h"

int lesson_cli_main(int argc, char **argv, const struct lesson_cli *cli, void *opts,
		    const char **cmd)
{
	int c;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(cli->usage, stdout);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-')
		return tpc_usage_error(cli->prog, "%s", cli->no_cmd);
	*cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", cli->long_opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(cli->usage, stdout);
			return 0;
		}
		if (cli->parse_opt(opts, c, optarg))
			return 2;
	}
	if (optind < argc)
		return tpc_usage_error(cli->prog, "unexpected argument");
	return cli->run(opts);
}

int lesson_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || !*s || *end || *s == '-' ? -EINVAL : 0;
}

int lesson_opt_batch(const char *prog, const char *v, uint64_t *batch)
{
	if (lesson_parse_u64(v, batch) || !*batch || *batch > 100000)
		return tpc_usage_error(prog, "--batch expects 1..100000");
	return 0;
}

int lesson_opt_from(const char *prog, const char *v, uint64_t *from, int *from_set)
{
	*from_set = 1;
	return lesson_parse_u64(v, from) ? tpc_usage_error(prog, "--from expects an offset") : 0;
}

int lesson_from_time(const char *prog, const char *log_dir, const char *when, uint64_t *from,
		     int *from_set)
{
	int rc = when ? lesson_offset_at(log_dir, when, from) : 0;

	if (rc) {
		fprintf(stderr, "%s: --from-time %s: %s\n", prog, when, strerror(-rc));
		return 1;
	}
	*from_set |= when != NULL;
	return 0;
}

int lesson_offset_at(const char *log_dir, const char *when, uint64_t *offset)
{
	evlog_reader *r;
	uint64_t ts;
	int rc;

	if (lesson_time_parse(when, &ts))
		return -EINVAL;
	rc = evlog_reader_open(log_dir, &r);
	if (rc)
		return rc;
	rc = evlog_reader_seek_time(r, ts, offset);
	evlog_reader_close(r);
	return rc;
}

void lesson_write_progress(const char *path, uint64_t pos)
{
	char buf[32];
	int fd;

	if (!path || (fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return;
	int n = snprintf(buf, sizeof(buf), "%020" PRIu64 "\n", pos);
	if (pwrite(fd, buf, (size_t)n, 0) < 0)
		n = 0; /* a progress probe: nothing to do about it */
	close(fd);
}

void lesson_print_amount(FILE *f, int64_t minor)
{
	uint64_t a = minor < 0 ? (uint64_t)-minor : (uint64_t)minor;
	fprintf(f, "%s%" PRIu64 ".%02u", minor < 0 ? "-" : "", a / 100, (unsigned)(a % 100));
}

/* Split "DAY/MERCHANT/CURRENCY" into its three parts. */
static void split_close_key(const char *key, char *day, char *merchant, char *cur)
{
	const char *a = strchr(key, '/'), *b = a ? strchr(a + 1, '/') : NULL;

	if (!a || !b) {
		snprintf(day, 16, "?");
		snprintf(merchant, 48, "%s", key);
		snprintf(cur, 8, "?");
		return;
	}
	snprintf(day, 16, "%.*s", (int)(a - key), key);
	snprintf(merchant, 48, "%.*s", (int)(b - a - 1), a + 1);
	snprintf(cur, 8, "%s", b + 1);
}

static void print_csv(FILE *f, struct tally *t, enum lesson_report_kind kind)
{
	char day[16], merchant[48], cur[8];

	fputs(kind == REPORT_CLOSE ? "day,merchant,currency,payments,amount_minor,amount\n"
				   : "group,count\n", f);
	for (size_t i = 0; i < t->n; i++) {
		const struct tally_entry *e = &t->v[i];
		if (kind == REPORT_COUNTS) {
			fprintf(f, "%s,%" PRId64 "\n", e->key, e->count);
			continue;
		}
		split_close_key(e->key, day, merchant, cur);
		fprintf(f, "%s,%s,%s,%" PRId64 ",%" PRId64 ",", day, merchant, cur, e->count,
			e->amount);
		lesson_print_amount(f, e->amount);
		fputc('\n', f);
	}
}

static json_t *close_row(const struct tally_entry *e)
{
	char day[16], merchant[48], cur[8], amount[40];
	int64_t a = e->amount < 0 ? -e->amount : e->amount;

	split_close_key(e->key, day, merchant, cur);
	snprintf(amount, sizeof(amount), "%s%" PRId64 ".%02d", e->amount < 0 ? "-" : "", a / 100,
		 (int)(a % 100));
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "day", day, "merchant", merchant,
			 "currency", cur, "payments", (json_int_t)e->count, "amount_minor",
			 (json_int_t)e->amount, "amount", amount);
}

static int print_json(FILE *f, struct tally *t, enum lesson_report_kind kind, uint64_t position)
{
	json_t *rows = json_array(), *doc = NULL;
	int rc = -ENOMEM;

	if (!rows)
		return rc;
	for (size_t i = 0; i < t->n; i++) {
		const struct tally_entry *e = &t->v[i];
		json_t *row = kind == REPORT_CLOSE ? close_row(e)
			: json_pack("{s:s, s:I}", "group", e->key, "count", (json_int_t)e->count);
		if (!row || json_array_append_new(rows, row))
			goto out;
	}
	doc = json_pack("{s:I, s:O}", "as_of_offset", (json_int_t)position,
			kind == REPORT_CLOSE ? "days" : "counts", rows);
	if (!doc || json_dumpf(doc, f, JSON_INDENT(2)))
		goto out;
	fputc('\n', f);
	rc = 0;
out:
	json_decref(doc);
	json_decref(rows);
	return rc;
}

int lesson_print_report(FILE *f, struct tally *t, enum lesson_report_kind kind, int json,
			uint64_t position)
{
	tally_finish(t);
	if (json)
		return print_json(f, t, kind, position);
	print_csv(f, t, kind);
	return 0;
}
