/*
 * config.c - tpc-coordinator's option table, command line, INI config file and the
 * run-time part of a SIGHUP reload (see config.h).
 *
 * Owns the table `opts`, the one place an option is declared: its name (long option
 * and file key), short option, kind (which parser, and the unit: a count, bytes or a
 * duration), where it lands in struct coord_config, its default, its accepted range,
 * its help text, and whether a SIGHUP may change it in a running server. Everything
 * else here is driven by that table: the defaults (coord_config_defaults), --help's
 * option list (coord_config_help), getopt's option list, the file's keys,
 * --check-config's dump, and the reload's copy-and-describe. To add an option, add a
 * field to struct coord_config and a row here. Invariant: a value reaches a struct coord_config only
 * after its parser accepted it, so a half-read bad file never leaves a bad value
 * (the caller throws the whole half-built config away).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ini.h>

#include "frame.h"
#include "tls.h"
#include "util.h"

enum opt_kind {
	K_STR,    /* const char * */
	K_NUM,    /* a count: uint32_t or uint64_t by field size; K, M, G suffixes accepted */
	K_SIZE,   /* bytes: as K_NUM, and shown with K, M or G when exact */
	K_DUR,    /* uint32_t or uint64_t milliseconds; ms, s, m, h suffixes */
	K_LEVEL,  /* enum tpc_log_level */
	K_FLAG,   /* int 0/1; no value on the command line, a boolean in the file */
	K_TLS,    /* enum coord_tls_mode: required or off */
	K_META,   /* command line only: --config, --check-config, --help, --version */
};

#define RELOAD 1u   /* a SIGHUP applies it to the running server */
#define MARK 2u     /* giving it sets the int at mark_off to 1 (e.g. admin_explicit) */

/*
 * One option. The default is `def` (numbers, durations in ms, enum values, flags) or
 * `sdef` (strings; NULL: none); a number or duration below `lo` in the defaults means
 * "not given" (id 0: the log's own). `arg` names the value in --help (NULL: from the
 * kind); `help` is the --help text, to which the default, the range and [reload] are
 * added from the other fields.
 */
struct opt {
	const char *name;
	int short_name;
	enum opt_kind kind;
	size_t off, size;  /* the field in struct coord_config */
	uint64_t lo, hi;   /* K_NUM, K_SIZE, K_DUR: accepted range */
	unsigned flags;
	size_t mark_off;   /* MARK: an int in struct coord_config */
	uint64_t def;
	const char *sdef;
	const char *arg;
	const char *help;
};

#define FIELD(f) .off = offsetof(struct coord_config, f), \
		 .size = sizeof(((struct coord_config *)0)->f)
#define DUR_MAX (UINT64_MAX / 2)
#define VALUE_MAX 1024  /* longest value shown by dump and reload messages */
#define MIN_MS 60000ull
#define HOUR_MS (60 * MIN_MS)

static const struct opt opts[] = {
	{ "listen", 'l', K_STR, FIELD(listen), .sdef = "127.0.0.1:7400", .arg = "HOST:PORT",
	  .help = "address to serve on" },
	{ "data", 'd', K_STR, FIELD(data_dir), .arg = "DIR",
	  .help = "log folder, created if missing (required unless the log is in etcd)" },
	{ "id", 0, K_NUM, FIELD(id), .lo = 1, .hi = UINT32_MAX,
	  .help = "coordinator id stored in a new log; a log with another id is refused "
		  "(default: the log's own, 1 for a new log)" },
	{ "max-frame", 0, K_SIZE, FIELD(max_frame), .lo = 64, .hi = 64u << 20,
	  .def = TPC_FRAME_DEFAULT_MAX, .help = "largest accepted frame" },
	{ "txn-timeout", 0, K_DUR, FIELD(txn_timeout_ms), .lo = 1, .hi = UINT32_MAX,
	  .flags = RELOAD, .def = MIN_MS,
	  .help = "abort transactions not committed in time" },
	{ "prepare-timeout", 0, K_DUR, FIELD(prepare_timeout_ms), .lo = 1, .hi = UINT32_MAX,
	  .flags = RELOAD, .def = 10000, .help = "abort when votes take longer" },
	{ "max-conns", 0, K_NUM, FIELD(max_conns), .lo = 1, .hi = 1u << 20, .flags = RELOAD,
	  .def = 4096,
	  .help = "connection limit; the open-file limit is raised to N + 64 at start, or "
		  "the start is refused (exit 2) when the hard limit is lower" },
	{ "hello-timeout", 0, K_DUR, FIELD(hello_timeout_ms), .lo = 10, .hi = HOUR_MS,
	  .flags = RELOAD, .def = 5000,
	  .help = "close a connection that has not said Hello within this" },
	{ "idle-timeout", 0, K_DUR, FIELD(idle_timeout_ms), .lo = 0, .hi = UINT32_MAX,
	  .flags = RELOAD, .def = 0, /* off: libtpc's client does not reconnect by itself */
	  .help = "close a client connection idle this long with no open transaction; "
		  "0: never" },
	{ "frame-timeout", 0, K_DUR, FIELD(frame_timeout_ms), .lo = 10, .hi = HOUR_MS,
	  .flags = RELOAD, .def = 30000,
	  .help = "close a connection whose frame is not complete this long after its "
		  "first byte, or whose replies make no progress this long while it is "
		  "throttled" },
	{ "max-output", 0, K_SIZE, FIELD(max_output), .lo = 64u << 10, .hi = 1ull << 32,
	  .flags = RELOAD, .def = 4u << 20,
	  .help = "stop reading from a peer whose unsent replies exceed this, until half "
		  "are taken; at least max-frame" },
	{ "max-partial-bytes", 0, K_SIZE, FIELD(max_partial_bytes), .lo = 1u << 20,
	  .hi = 1ull << 40, .flags = RELOAD, .def = 256u << 20,
	  .help = "bytes of unfinished frames held over all connections; past it the "
		  "sender is closed" },
	{ "max-txn-timeout", 0, K_DUR, FIELD(max_txn_timeout_ms), .lo = 1, .hi = UINT32_MAX,
	  .flags = RELOAD, .def = HOUR_MS,
	  .help = "a Begin asking for a longer timeout_ms is refused with ERR_INVALID; "
		  "txn-timeout may not exceed it" },
	{ "max-participant-names", 0, K_NUM, FIELD(max_part_names), .lo = 1,
	  .hi = 1u << 24, .flags = RELOAD, .def = 65536,
	  .help = "participant names known at once; a Hello with a new name past it gets "
		  "ERR_LIMIT" },
	{ "max-open-txns", 0, K_NUM, FIELD(max_open_txns), .lo = 1, .hi = UINT32_MAX,
	  .flags = RELOAD, .def = 1000000, .help = "open transaction limit" },
	{ "max-txns-per-conn", 0, K_NUM, FIELD(max_txns_per_conn), .lo = 1, .hi = UINT32_MAX,
	  .flags = RELOAD, .def = 100000,
	  .help = "open transactions per client connection" },
	{ "max-participants", 0, K_NUM, FIELD(max_parts), .lo = 1, .hi = 64, .def = 32,
	  .help = "participants per transaction" },
	{ "retry-max", 0, K_DUR, FIELD(retry_max_ms), .lo = 1, .hi = HOUR_MS, .flags = RELOAD,
	  .def = 10000, .help = "cap of the decision resend backoff" },
	{ "outcome-retention", 0, K_DUR, FIELD(outcome_retention_ms), .lo = 0, .hi = DUR_MAX,
	  .flags = RELOAD, .def = 10 * MIN_MS,
	  .help = "how long a completed commit still answers status queries; 0: forget "
		  "at once" },
	{ "key-retention", 0, K_DUR, FIELD(key_retention_ms), .lo = 0, .hi = DUR_MAX,
	  .flags = RELOAD, .def = 24 * HOUR_MS,
	  .help = "how long client transaction keys are kept" },
	{ "audit-retention", 0, K_DUR, FIELD(audit_retention_ms), .lo = 0, .hi = DUR_MAX,
	  .flags = RELOAD, .def = 90 * 24 * HOUR_MS,
	  .help = "how long operator audit entries are kept; 0: for ever" },
	{ "sweep-interval", 0, K_DUR, FIELD(sweep_interval_ms), .lo = 10, .hi = HOUR_MS,
	  .flags = RELOAD, .def = 10000, .help = "how often log compaction runs" },
	{ "sweep-limit", 0, K_NUM, FIELD(sweep_limit), .lo = 1, .hi = 1000000, .flags = RELOAD,
	  .def = 10000,
	  .help = "entries one compaction pass deletes per table; a pass that reaches it "
		  "is followed at once by another" },
	{ "group-commit", 0, K_NUM, FIELD(group_commit_max), .lo = 1, .hi = 1u << 20,
	  .def = 4096, .help = "records per log batch; 1 turns group commit off" },
	{ "inline-sync", 0, K_FLAG, FIELD(inline_sync),
	  .help = "at low load, write and sync a lone log record on the event loop itself "
		  "instead of handing it to the writer thread: lower latency for a single "
		  "client, but the loop waits for the disk meanwhile (a stalled disk stalls "
		  "every connection and the admin API); off by default" },
	{ "map-size", 0, K_SIZE, FIELD(map_size), .lo = 1u << 20, .hi = 1ull << 40,
	  .def = 1ull << 30, .help = "LMDB map size: the largest the log file may grow to" },
	{ "log", 0, K_STR, FIELD(log_kind), .sdef = "lmdb", .arg = "lmdb|etcd",
	  .help = "where the decision log lives: lmdb (a local folder, --data) or etcd "
		  "(a replicated cluster, --etcd-endpoints and --group; see docs/ha.md)" },
	{ "etcd-endpoints", 0, K_STR, FIELD(etcd_endpoints), .arg = "URL,...",
	  .help = "etcd's client URLs (http://HOST:PORT, comma-separated), with --log etcd" },
	{ "group", 0, K_STR, FIELD(group), .arg = "NAME",
	  .help = "the coordinator group (1-64 of A-Z a-z 0-9 _ . -): its log is under "
		  "/tpc/NAME/ in etcd, and one of its coordinators leads" },
	{ "lease", 0, K_DUR, FIELD(lease_ms), .lo = 2000, .hi = 3600000, .def = 5000,
	  .help = "the leader's etcd lease, whole seconds: a standby takes over within it "
		  "after the leader dies; the leader rides out an etcd leader election of up "
		  "to half of it (etcd's own take 1-2 s: keep it at 4s or more)" },
	{ "advertise", 0, K_STR, FIELD(advertise), .arg = "HOST:PORT",
	  .help = "the address standbys name in ERR_NOT_LEADER while this coordinator "
		  "leads (default: --listen)" },
	{ "log-level", 0, K_LEVEL, FIELD(log_level), .flags = RELOAD, .def = TPC_LOG_INFO,
	  .help = "debug, info, warn or error" },
	{ "admin", 0, K_STR, FIELD(admin), .flags = MARK,
	  .mark_off = offsetof(struct coord_config, admin_explicit), .sdef = "127.0.0.1:7401",
	  .arg = "HOST:PORT|off",
	  .help = "admin HTTP API and /metrics (see docs/admin-api.md); an address that is "
		  "not loopback needs --admin-token-file" },
	{ "admin-token-file", 0, K_STR, FIELD(admin_token_file), .flags = RELOAD,
	  .arg = "FILE",
	  .help = "bearer token (the file's first line) that every admin request but /livez "
		  "and /readyz must carry" },
	{ "stuck-after", 0, K_DUR, FIELD(stuck_after_ms), .lo = 1, .hi = UINT32_MAX,
	  .flags = RELOAD, .def = 30000,
	  .help = "flag a COMMIT not delivered within this" },
	{ "allow-fault-injection", 0, K_FLAG, FIELD(allow_fault_injection),
	  .help = "let the admin API arm fault points at run time" },
	{ "require-txn-token", 0, K_FLAG, FIELD(require_txn_token), .flags = RELOAD,
	  .help = "refuse a Join without its transaction's token (BeginReply.txn_token); "
		  "off suits trusted setups: turn it on in an untrusted network" },
	{ "tls-cert", 0, K_STR, FIELD(tls_cert), .flags = RELOAD, .arg = "FILE",
	  .help = "this server's certificate (PEM); turns TLS on for the protocol port and "
		  "the admin API" },
	{ "tls-key", 0, K_STR, FIELD(tls_key), .flags = RELOAD, .arg = "FILE",
	  .help = "its private key (PEM)" },
	{ "tls-ca", 0, K_STR, FIELD(tls_ca), .flags = RELOAD, .arg = "FILE",
	  .help = "CA every peer's certificate must be signed by; peers must present one "
		  "(mutual TLS). A participant's Hello name must equal its certificate's CN" },
	{ "tls", 0, K_TLS, FIELD(tls_mode), .def = COORD_TLS_AUTO, .arg = "required|off",
	  .help = "required: every connection is TLS, a plaintext peer is closed "
		  "unanswered (default: required once --tls-cert is given, else off)" },
	{ .name = "config", .short_name = 'c', .kind = K_META, .arg = "FILE",
	  .help = "read options from an INI file first (keys are the long option names: "
		  "txn-timeout = 5s); the command line overrides it; SIGHUP re-reads it" },
	{ .name = "check-config", .kind = K_META,
	  .help = "check the options and the file, print the resulting configuration, and "
		  "exit (0 valid, 2 not)" },
	{ .name = "help", .short_name = 'h', .kind = K_META, .help = "show this help" },
	{ .name = "version", .short_name = 'V', .kind = K_META, .help = "show the version" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/* ---- values ----------------------------------------------------------------------- */

static void fmt_size(uint64_t n, char *buf, size_t len)
{
	static const char units[] = "GMK";

	for (int i = 0; i < 3; i++) {
		uint64_t mul = 1ull << (10 * (3 - i));
		if (n && n % mul == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", n / mul, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, n);
}

static uint64_t get_u(const struct coord_config *cfg, const struct opt *o)
{
	const char *p = (const char *)cfg + o->off;
	uint32_t v32;
	uint64_t v64;

	if (o->size == sizeof(uint32_t)) {
		memcpy(&v32, p, sizeof(v32));
		return v32;
	}
	memcpy(&v64, p, sizeof(v64));
	return v64;
}

static void put_u(struct coord_config *cfg, const struct opt *o, uint64_t v)
{
	char *p = (char *)cfg + o->off;
	uint32_t v32 = (uint32_t)v;

	if (o->size == sizeof(uint32_t))
		memcpy(p, &v32, sizeof(v32));
	else
		memcpy(p, &v, sizeof(v));
}

static const char *get_str(const struct coord_config *cfg, const struct opt *o)
{
	const char *s;

	memcpy(&s, (const char *)cfg + o->off, sizeof(s));
	return s;
}

static void put_str(struct coord_config *cfg, const struct opt *o, const char *s)
{
	memcpy((char *)cfg + o->off, &s, sizeof(s));
}

static int get_int(const struct coord_config *cfg, const struct opt *o)
{
	int v;

	memcpy(&v, (const char *)cfg + o->off, sizeof(v));
	return v;
}

static void put_int(struct coord_config *cfg, const struct opt *o, int v)
{
	memcpy((char *)cfg + o->off, &v, sizeof(v));
}

/* False for a default that means "not given" (no token file, id 0: the log's own). */
static int is_set(const struct coord_config *cfg, const struct opt *o)
{
	if (o->kind == K_STR)
		return get_str(cfg, o) != NULL;
	if (o->kind == K_NUM || o->kind == K_SIZE || o->kind == K_DUR)
		return get_u(cfg, o) >= o->lo;
	return 1;
}

/* The value of option @p o in @p cfg, as a config file would say it. */
static void fmt_value(const struct coord_config *cfg, const struct opt *o, char *buf,
		      size_t len)
{
	switch (o->kind) {
	case K_STR:
		snprintf(buf, len, "%s", get_str(cfg, o) ? get_str(cfg, o) : "");
		return;
	case K_NUM:
		snprintf(buf, len, "%" PRIu64, get_u(cfg, o));
		return;
	case K_SIZE:
		fmt_size(get_u(cfg, o), buf, len);
		return;
	case K_DUR:
		tpc_format_duration(get_u(cfg, o), buf, len);
		return;
	case K_LEVEL:
		snprintf(buf, len, "%s", level_names[get_int(cfg, o) & 3]);
		return;
	case K_FLAG:
		snprintf(buf, len, "%s", get_int(cfg, o) ? "true" : "false");
		return;
	case K_TLS: /* the effective mode: AUTO says what it resolves to */
		snprintf(buf, len, "%s", coord_config_tls_on(cfg) ? "required" : "off");
		return;
	case K_META:
		break;
	}
	buf[0] = '\0';
}

static int parse_level(const char *v, int *out)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(v, level_names[i]) == 0) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

/* Why @p v is not a good value for @p o (the range, when it has one). */
static void why_bad(const struct opt *o, const char *v, char *why, size_t len)
{
	char lo[32], hi[32];

	switch (o->kind) {
	case K_NUM:
		snprintf(why, len, "expected a number from %" PRIu64 " to %" PRIu64
			 " (K, M and G suffixes allowed)", o->lo, o->hi);
		return;
	case K_SIZE:
		fmt_size(o->lo, lo, sizeof(lo));
		fmt_size(o->hi, hi, sizeof(hi));
		snprintf(why, len, "expected a size from %s to %s (K, M and G suffixes allowed)",
			 lo, hi);
		return;
	case K_DUR:
		tpc_duration_why(v, o->lo, o->hi == DUR_MAX ? UINT64_MAX : o->hi, why, len);
		return;
	case K_LEVEL:
		snprintf(why, len, "expected debug, info, warn or error");
		return;
	case K_FLAG:
		snprintf(why, len, "expected true or false");
		return;
	case K_TLS:
		snprintf(why, len, "expected required or off");
		return;
	default:
		snprintf(why, len, "expected a value");
	}
}

/* The parser of @p o's kind; @p cfg is changed only on success. */
static int parse_into(struct coord_config *cfg, const struct opt *o, const char *v)
{
	uint64_t n = 0;
	int i = 0;

	switch (o->kind) {
	case K_STR:
		if (!v || !*v)
			return -EINVAL;
		put_str(cfg, o, v);
		return 0;
	case K_NUM:
	case K_SIZE:
		if (tpc_parse_size(v, &n) || n < o->lo || n > o->hi)
			return -EINVAL;
		put_u(cfg, o, n);
		return 0;
	case K_DUR:
		if (tpc_parse_duration_ms(v, &n) || n < o->lo || n > o->hi)
			return -EINVAL;
		put_u(cfg, o, n);
		return 0;
	case K_LEVEL:
		if (parse_level(v, &i))
			return -EINVAL;
		put_int(cfg, o, i);
		return 0;
	case K_FLAG:
		if (v && parse_bool(v, &i))
			return -EINVAL;
		put_int(cfg, o, v ? i : 1);
		return 0;
	case K_TLS:
		if (!v || (strcmp(v, "required") && strcmp(v, "off")))
			return -EINVAL;
		put_int(cfg, o, strcmp(v, "off") ? COORD_TLS_REQUIRED : COORD_TLS_OFF);
		return 0;
	case K_META:
		break;
	}
	return -EINVAL;
}

/* Parse @p v for @p o into @p cfg. 0, or -EINVAL with @p cfg untouched. */
static int apply(struct coord_config *cfg, const struct opt *o, const char *v)
{
	int rc = parse_into(cfg, o, v), one = 1;

	if (rc == 0 && (o->flags & MARK))
		memcpy((char *)cfg + o->mark_off, &one, sizeof(one));
	return rc;
}

static const struct opt *find_opt(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

/* ---- defaults and --help ------------------------------------------------------------ */

/* Set by coord_config_defaults() but not options: fixed by the protocol and the design. */
#define MAX_KEY_LEN 256        /* client transaction key, bytes */
#define RETRY_INITIAL_MS 500   /* first decision resend; doubles up to retry-max */

void coord_config_defaults(struct coord_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		switch (o->kind) {
		case K_STR:
			put_str(cfg, o, o->sdef);
			break;
		case K_NUM:
		case K_SIZE:
		case K_DUR:
			put_u(cfg, o, o->def);
			break;
		case K_LEVEL:
		case K_FLAG:
		case K_TLS:
			put_int(cfg, o, (int)o->def);
			break;
		case K_META:
			break;
		}
	}
	cfg->max_key_len = MAX_KEY_LEN;
	cfg->retry_initial_ms = RETRY_INITIAL_MS;
}

#define HELP_COL 31    /* where the text of an option starts */
#define HELP_WIDTH 79

/* Print @p text from column @p col (the cursor is there), wrapped at HELP_WIDTH with
 * continuation lines starting at HELP_COL. */
static void wrap(FILE *f, const char *text, int col)
{
	const char *p = text;
	int first = 1;

	while (*p) {
		size_t word = strcspn(p, " ");
		if (!first && col + 1 + (int)word > HELP_WIDTH) {
			fprintf(f, "\n%*s", HELP_COL, "");
			col = HELP_COL;
		} else if (!first) {
			fputc(' ', f);
			col++;
		}
		first = 0;
		fprintf(f, "%.*s", (int)word, p);
		col += (int)word;
		p += word;
		p += strspn(p, " ");
	}
	fputc('\n', f);
}

/* "; 1 to 64" for a range worth saying (not just "a positive 32-bit number"). */
static void fmt_range(const struct opt *o, char *buf, size_t len)
{
	char lo[32], hi[32];

	buf[0] = '\0';
	if ((o->kind != K_NUM && o->kind != K_SIZE && o->kind != K_DUR) ||
	    o->hi == UINT32_MAX || o->hi == DUR_MAX)
		return;
	if (o->kind == K_DUR) {
		tpc_format_duration(o->lo, lo, sizeof(lo));
		tpc_format_duration(o->hi, hi, sizeof(hi));
	} else if (o->kind == K_SIZE) {
		fmt_size(o->lo, lo, sizeof(lo));
		fmt_size(o->hi, hi, sizeof(hi));
	} else {
		snprintf(lo, sizeof(lo), "%" PRIu64, o->lo);
		snprintf(hi, sizeof(hi), "%" PRIu64, o->hi);
	}
	snprintf(buf, len, "; %s to %s", lo, hi);
}

static const char *arg_name(const struct opt *o)
{
	static const char *const by_kind[] = {
		[K_NUM] = "N", [K_SIZE] = "BYTES", [K_DUR] = "DURATION", [K_LEVEL] = "LEVEL",
	};

	if (o->arg)
		return o->arg;
	return (size_t)o->kind < sizeof(by_kind) / sizeof(by_kind[0]) ? by_kind[o->kind] : NULL;
}

/* One option's --help entry: "  -l, --listen HOST:PORT   text (default X; range) [reload]" */
static void help_one(FILE *f, const struct opt *o, const struct coord_config *defaults)
{
	char spec[80], text[640], v[96], range[80];
	const char *arg = arg_name(o);
	char shorts[8] = "    ";
	int n;

	if (o->short_name)
		snprintf(shorts, sizeof(shorts), "-%c, ", o->short_name);
	n = snprintf(spec, sizeof(spec), "  %s--%s%s%s", shorts, o->name, arg ? " " : "",
		     arg ? arg : "");
	fmt_range(o, range, sizeof(range));
	if (o->kind != K_META && o->kind != K_TLS && is_set(defaults, o)) {
		fmt_value(defaults, o, v, sizeof(v));
		snprintf(text, sizeof(text), "%s (default %s%s)", o->help, v, range);
	} else if (*range) {
		snprintf(text, sizeof(text), "%s (%s)", o->help, range + 2);
	} else {
		snprintf(text, sizeof(text), "%s", o->help);
	}
	if (o->flags & RELOAD)
		strncat(text, " [reload]", sizeof(text) - strlen(text) - 1);
	fputs(spec, f);
	if (n + 2 > HELP_COL)
		n = fprintf(f, "  ") + n;
	else
		n = fprintf(f, "%*s", HELP_COL - n, "") + n;
	wrap(f, text, n);
}

void coord_config_help(FILE *f)
{
	struct coord_config defaults;

	coord_config_defaults(&defaults);
	for (size_t i = 0; i < NOPTS; i++)
		help_one(f, &opts[i], &defaults);
}

/* ---- the command line ------------------------------------------------------------- */

static int keep_setting(struct coord_cmdline *cl, int idx, const char *value)
{
	struct coord_setting *ns = realloc(cl->set, (cl->nset + 1) * sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	cl->set = ns;
	cl->set[cl->nset].opt = idx;
	cl->set[cl->nset].value = value;
	cl->nset++;
	return 0;
}

static void build_getopt(struct option *lo, char *shorts)
{
	size_t ns = 0;

	shorts[ns++] = ':';
	for (size_t i = 0; i < NOPTS; i++) {
		int has_arg = opts[i].kind == K_FLAG ? no_argument : required_argument;
		if (opts[i].kind == K_META && strcmp(opts[i].name, "config") != 0)
			has_arg = no_argument;
		lo[i] = (struct option){ opts[i].name, has_arg, NULL, 256 + (int)i };
		if (opts[i].short_name) {
			shorts[ns++] = (char)opts[i].short_name;
			if (has_arg == required_argument)
				shorts[ns++] = ':';
		}
	}
	lo[NOPTS] = (struct option){ NULL, 0, NULL, 0 };
	shorts[ns] = '\0';
}

/* getopt's answer as an index into opts, or -1 for an error it reported. */
static int opt_index(int c)
{
	if (c >= 256 && c < 256 + (int)NOPTS)
		return c - 256;
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].short_name && opts[i].short_name == c)
			return (int)i;
	return -1;
}

static int take_meta(struct coord_cmdline *cl, const struct opt *o, const char *v)
{
	if (strcmp(o->name, "config") == 0)
		cl->config_path = v;
	else if (strcmp(o->name, "check-config") == 0)
		cl->check_only = 1;
	else if (strcmp(o->name, "help") == 0)
		cl->help = 1;
	else
		cl->version = 1;
	return 0;
}

int coord_cmdline_parse(struct coord_cmdline *cl, int argc, char **argv, char *err,
			size_t errlen)
{
	struct option lo[NOPTS + 1];
	char shorts[2 * NOPTS + 2];
	int c;

	memset(cl, 0, sizeof(*cl));
	build_getopt(lo, shorts);
	opterr = 0;
	optind = 0; /* a full re-initialisation of GNU getopt */
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const char *bad = argv[optind - 1];
		int idx = opt_index(c);
		if (c == ':') {
			snprintf(err, errlen, "option '%s' needs a value", bad);
			return -EINVAL;
		}
		if (idx < 0) {
			snprintf(err, errlen, "unknown option '%s'", bad);
			return -EINVAL;
		}
		int rc = opts[idx].kind == K_META ? take_meta(cl, &opts[idx], optarg)
						  : keep_setting(cl, idx, optarg);
		if (rc) {
			snprintf(err, errlen, "out of memory");
			return rc;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

void coord_cmdline_free(struct coord_cmdline *cl)
{
	for (size_t i = 0; i < cl->nstrs; i++)
		free(cl->strs[i]);
	free(cl->strs);
	free(cl->set);
	memset(cl, 0, sizeof(*cl));
}

/* ---- the config file -------------------------------------------------------------- */

struct file_ctx {
	struct coord_cmdline *cl;
	struct coord_config *cfg;
	const char *path;
	FILE *f;
	int line;              /* the line inih is looking at */
	int long_line;         /* a line did not fit inih's buffer */
	int set_on[NOPTS];     /* line each key was set on, 0: not yet */
	char *err;
	size_t errlen;
	int failed;
};

static char *read_line(char *str, int num, void *stream)
{
	struct file_ctx *x = stream;
	char *s = fgets(str, num, x->f);
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	if (n && s[n - 1] == '\n')
		x->line++;
	else if (!feof(x->f))
		x->long_line = x->long_line ? x->long_line : x->line + 1;
	else
		x->line++; /* the last line, without a newline */
	return s;
}

static int file_error(struct file_ctx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int file_error(struct file_ctx *x, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (x->failed++)
		return 0; /* keep the first error */
	n = snprintf(x->err, x->errlen, "%s:%d: ", x->path, x->line);
	if (n < 0 || (size_t)n >= x->errlen)
		return 0;
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return 0;
}

static const char *keep_string(struct coord_cmdline *cl, const char *s)
{
	if (cl->nstrs == cl->strs_cap) {
		size_t ncap = cl->strs_cap ? cl->strs_cap * 2 : 16;
		char **ns = realloc(cl->strs, ncap * sizeof(*ns));
		if (!ns)
			return NULL;
		cl->strs = ns;
		cl->strs_cap = ncap;
	}
	char *copy = strdup(s);
	if (copy)
		cl->strs[cl->nstrs++] = copy;
	return copy;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct file_ctx *x = user;
	const struct opt *o = find_opt(name);
	char why[160];

	if (*section && strcmp(section, "coordinator") != 0)
		return file_error(x, "unknown section [%s] (keys go at the top or under "
				  "[coordinator])", section);
	if (!o || o->kind == K_META)
		return file_error(x, "unknown key '%s'", name);
	if (x->set_on[o - opts])
		return file_error(x, "%s is set twice (first on line %d)", name,
				  x->set_on[o - opts]);
	x->set_on[o - opts] = x->line;
	if (o->kind == K_STR && (value = keep_string(x->cl, value)) == NULL)
		return file_error(x, "out of memory");
	if (apply(x->cfg, o, value)) {
		why_bad(o, value, why, sizeof(why));
		return file_error(x, "%s = %s: %s", name, value, why);
	}
	return 1;
}

static int load_file(struct coord_cmdline *cl, struct coord_config *cfg, char *err,
		     size_t errlen)
{
	struct file_ctx x = { .cl = cl, .cfg = cfg, .path = cl->config_path, .err = err,
			      .errlen = errlen };
	int rc;

	x.f = fopen(cl->config_path, "r");
	if (!x.f) {
		snprintf(err, errlen, "cannot read the config file %s: %s", cl->config_path,
			 strerror(errno));
		return -EINVAL;
	}
	rc = ini_parse_stream(read_line, &x, on_key, &x);
	fclose(x.f);
	if (x.long_line) {
		snprintf(err, errlen, "%s:%d: line too long", cl->config_path, x.long_line);
		return -EINVAL;
	}
	if (x.failed)
		return -EINVAL;
	if (rc) {
		snprintf(err, errlen, "%s:%d: expected 'key = value', '[coordinator]' or a "
			 "comment", cl->config_path, rc);
		return -EINVAL;
	}
	return 0;
}

int coord_config_build(struct coord_cmdline *cl, struct coord_config *cfg, char *err,
		       size_t errlen)
{
	char why[160];

	if (cl->config_path && load_file(cl, cfg, err, errlen))
		return -EINVAL;
	for (size_t i = 0; i < cl->nset; i++) {
		const struct opt *o = &opts[cl->set[i].opt];
		const char *v = cl->set[i].value;
		if (apply(cfg, o, v)) {
			why_bad(o, v, why, sizeof(why));
			snprintf(err, errlen, "--%s %s: %s", o->name, v ? v : "", why);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- checks, dump, reload ----------------------------------------------------------- */

static int check_address(const char *what, const char *v, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char why[160];

	if (tpc_parse_hostport(v, &ss, &sslen, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen, "%s %s: %s", what, v, why);
	return -EINVAL;
}

/* The admin API off loopback is secure by default: it needs a token (docs/security.md). */
static int check_admin(const char *v, const char *token_file, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (check_address("admin", v, err, errlen))
		return -EINVAL;
	if (token_file || (tpc_parse_hostport(v, &ss, &sslen, err, errlen) == 0 &&
			   tpc_sockaddr_is_loopback(&ss)))
		return 0;
	snprintf(err, errlen, "admin %s is not a loopback address: give admin-token-file too "
		 "(every admin request then needs that token; make one with `umask 077; head -c 32 "
		 "/dev/urandom | base64 > FILE`)", v);
	return -EINVAL;
}

int coord_config_tls_on(const struct coord_config *cfg)
{
	return cfg->tls_mode == COORD_TLS_REQUIRED ||
	       (cfg->tls_mode == COORD_TLS_AUTO && cfg->tls_cert);
}

/* With TLS on, the three files must make a working context (it is thrown away here;
 * the server makes its own). Files given with --tls off are not read. */
static int check_tls(const struct coord_config *cfg, char *err, size_t errlen)
{
	struct tpc_tls_files f = { cfg->tls_cert, cfg->tls_key, cfg->tls_ca };
	SSL_CTX *ctx;

	if (!coord_config_tls_on(cfg)) {
		if (cfg->tls_mode == COORD_TLS_AUTO && tpc_tls_files_given(&f)) {
			snprintf(err, errlen, "--tls-key and --tls-ca need --tls-cert (or --tls off)");
			return -EINVAL;
		}
		return 0;
	}
	ctx = tpc_tls_ctx_new(TPC_TLS_SERVER, &f, err, errlen);
	if (!ctx)
		return -EINVAL;
	SSL_CTX_free(ctx);
	return 0;
}

/* --log: lmdb needs --data; etcd needs --etcd-endpoints and --group. */
static int check_log(const struct coord_config *cfg, char *err, size_t errlen)
{
	int etcd = cfg->log_kind && strcmp(cfg->log_kind, "etcd") == 0;

	if (!etcd && (!cfg->log_kind || strcmp(cfg->log_kind, "lmdb") != 0)) {
		snprintf(err, errlen, "log %s: lmdb or etcd", cfg->log_kind ? cfg->log_kind : "");
		return -EINVAL;
	}
	if (etcd && (!cfg->etcd_endpoints || !*cfg->etcd_endpoints || !cfg->group ||
		     !*cfg->group)) {
		snprintf(err, errlen, "--log etcd needs --etcd-endpoints URL,... and --group NAME");
		return -EINVAL;
	}
	if (etcd && cfg->lease_ms % 1000) {
		snprintf(err, errlen, "lease %" PRIu32 "ms: etcd leases are whole seconds",
			 cfg->lease_ms);
		return -EINVAL;
	}
	if (!etcd && (!cfg->data_dir || !*cfg->data_dir)) {
		snprintf(err, errlen, "no data folder: give --data DIR (or data = DIR in the "
			 "config file)");
		return -EINVAL;
	}
	return 0;
}

int coord_config_check(const struct coord_config *cfg, char *err, size_t errlen)
{
	if (check_log(cfg, err, errlen))
		return -EINVAL;
	if (check_address("listen", cfg->listen, err, errlen))
		return -EINVAL;
	if (cfg->admin && strcmp(cfg->admin, "off") != 0 &&
	    check_admin(cfg->admin, cfg->admin_token_file, err, errlen))
		return -EINVAL;
	if (cfg->txn_timeout_ms > cfg->max_txn_timeout_ms) {
		snprintf(err, errlen, "txn-timeout (%" PRIu32 "ms) is longer than max-txn-timeout "
			 "(%" PRIu32 "ms)", cfg->txn_timeout_ms, cfg->max_txn_timeout_ms);
		return -EINVAL;
	}
	if (cfg->max_output < cfg->max_frame) {
		snprintf(err, errlen, "max-output (%" PRIu64 ") must be at least max-frame (%"
			 PRIu32 ")", cfg->max_output, cfg->max_frame);
		return -EINVAL;
	}
	if (cfg->admin_token_file && access(cfg->admin_token_file, R_OK) != 0) {
		snprintf(err, errlen, "admin-token-file %s: %s", cfg->admin_token_file,
			 strerror(errno));
		return -EINVAL;
	}
	return check_tls(cfg, err, errlen);
}

void coord_config_dump(const struct coord_config *cfg, FILE *f)
{
	char v[VALUE_MAX];

	for (size_t i = 0; i < NOPTS; i++) {
		if (opts[i].kind == K_META)
			continue;
		if (!is_set(cfg, &opts[i])) {
			fprintf(f, "# %s =\n", opts[i].name);
			continue;
		}
		fmt_value(cfg, &opts[i], v, sizeof(v));
		fprintf(f, "%s = %s\n", opts[i].name, v);
	}
}

static int same(const struct coord_config *a, const struct coord_config *b,
		const struct opt *o)
{
	if (o->kind == K_STR) {
		const char *x = get_str(a, o), *y = get_str(b, o);
		return x == y || (x && y && strcmp(x, y) == 0);
	}
	return memcmp((const char *)a + o->off, (const char *)b + o->off, o->size) == 0;
}

static void describe(char *buf, size_t len, const struct coord_config *from,
		     const struct coord_config *to, const struct opt *o)
{
	char a[VALUE_MAX], b[VALUE_MAX];
	size_t n = strlen(buf);

	if (n >= len)
		return;
	fmt_value(from, o, a, sizeof(a));
	fmt_value(to, o, b, sizeof(b));
	snprintf(buf + n, len - n, "%s%s %s -> %s", n ? ", " : "", o->name, *a ? a : "(none)",
		 *b ? b : "(none)");
}

int coord_config_reload(struct coord_config *running, const struct coord_config *fresh,
			char *changed, size_t changed_len, char *restart, size_t restart_len)
{
	int applied = 0;

	changed[0] = restart[0] = '\0';
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		if (o->kind == K_META || same(running, fresh, o))
			continue;
		if (!(o->flags & RELOAD)) {
			describe(restart, restart_len, running, fresh, o);
			continue;
		}
		describe(changed, changed_len, running, fresh, o);
		memcpy((char *)running + o->off, (const char *)fresh + o->off, o->size);
		applied++;
	}
	return applied;
}
