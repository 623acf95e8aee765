/*
 * main.c - tpc-coordinator's command line: options into struct coord_config, then run.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#ifndef TPC_VERSION
#define TPC_VERSION "0.1.0"
#endif

static const char usage_text[] =
	"Usage: tpc-coordinator --data DIR [options]\n"
	"\n"
	"The tpc two-phase commit coordinator. Keeps its decision log in DIR (LMDB),\n"
	"recovers undelivered decisions on start, and serves clients and participants.\n"
	"\n"
	"Options:\n"
	"  -l, --listen HOST:PORT       address to serve on (default 127.0.0.1:7400)\n"
	"  -d, --data DIR               log folder, created if missing (required)\n"
	"      --id N                   coordinator id stored in a new log (default 1)\n"
	"      --max-frame BYTES        largest accepted frame (default 1M)\n"
	"      --txn-timeout DURATION   abort transactions not committed in time (default 60s)\n"
	"      --prepare-timeout DURATION  abort when votes take longer (default 10s)\n"
	"      --max-conns N            connection limit (default 4096)\n"
	"      --max-open-txns N        open transaction limit (default 1000000)\n"
	"      --max-txns-per-conn N    open transactions per client connection (default 100000)\n"
	"      --max-participants N     participants per transaction (default 32, max 64)\n"
	"      --retry-max DURATION     cap of the decision resend backoff (default 10s)\n"
	"      --outcome-retention DURATION  how long a completed commit still answers\n"
	"                               status queries (default 10m; 0: forget at once)\n"
	"      --key-retention DURATION how long client transaction keys are kept (default 24h)\n"
	"      --group-commit N         records per log batch; 1 turns group commit off\n"
	"                               (default 4096)\n"
	"      --map-size BYTES         LMDB map size (default 1G)\n"
	"      --log-level LEVEL        debug, info, warn or error (default info)\n"
	"  -h, --help                   show this help\n"
	"  -V, --version                show the version\n"
	"\n"
	"Durations take ms, s, m or h (a bare number is milliseconds); sizes take K, M, G.\n"
	"SIGTERM or SIGINT stops it cleanly.\n"
	"\n"
	"Environment:\n"
	"  TPC_FAULTS=POINT=ACTION[,...]  arm fault points for failure testing, e.g.\n"
	"                               coord.decision.after_log=crash (SIGKILL itself once\n"
	"                               a COMMIT is durable, before anyone is told); actions\n"
	"                               crash, crash@N, crash%P, delay:MS, fail, fail@N, fail%P;\n"
	"                               see docs/failure-injection.md\n"
	"  TPC_FAULT_SEED=N             seed for probabilistic faults\n";

enum {
	OPT_ID = 256, OPT_MAX_FRAME, OPT_TXN_TIMEOUT, OPT_PREPARE_TIMEOUT, OPT_MAX_CONNS,
	OPT_MAX_OPEN, OPT_MAX_PER_CONN, OPT_MAX_PARTS, OPT_RETRY_MAX, OPT_OUTCOME_RET,
	OPT_KEY_RET, OPT_GROUP, OPT_MAP_SIZE, OPT_LOG_LEVEL,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "data", required_argument, NULL, 'd' },
	{ "id", required_argument, NULL, OPT_ID },
	{ "max-frame", required_argument, NULL, OPT_MAX_FRAME },
	{ "txn-timeout", required_argument, NULL, OPT_TXN_TIMEOUT },
	{ "prepare-timeout", required_argument, NULL, OPT_PREPARE_TIMEOUT },
	{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
	{ "max-open-txns", required_argument, NULL, OPT_MAX_OPEN },
	{ "max-txns-per-conn", required_argument, NULL, OPT_MAX_PER_CONN },
	{ "max-participants", required_argument, NULL, OPT_MAX_PARTS },
	{ "retry-max", required_argument, NULL, OPT_RETRY_MAX },
	{ "outcome-retention", required_argument, NULL, OPT_OUTCOME_RET },
	{ "key-retention", required_argument, NULL, OPT_KEY_RET },
	{ "group-commit", required_argument, NULL, OPT_GROUP },
	{ "map-size", required_argument, NULL, OPT_MAP_SIZE },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int bad(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "tpc-coordinator: --%s %s: %s\n", opt, val, why);
	return 2;
}

static int num_opt(const char *opt, const char *val, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (tpc_parse_size(val, out) || *out < lo || *out > hi) {
		char why[96];
		snprintf(why, sizeof(why), "expected a number from %llu to %llu",
			 (unsigned long long)lo, (unsigned long long)hi);
		return bad(opt, val, why);
	}
	return 0;
}

static int dur_opt(const char *opt, const char *val, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (tpc_parse_duration_ms(val, out) || *out < lo || *out > hi)
		return bad(opt, val, "expected a duration such as 500ms, 10s, 2m or 1h, in range");
	return 0;
}

static int level_opt(const char *val, enum tpc_log_level *out)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++)
		if (strcmp(val, names[i]) == 0) {
			*out = (enum tpc_log_level)i;
			return 0;
		}
	return bad("log-level", val, "expected debug, info, warn or error");
}

static int apply_opt(struct coord_config *cfg, int c, const char *v)
{
	uint64_t n = 0;
	int rc = 0;

	switch (c) {
	case 'l': cfg->listen = v; return 0;
	case 'd': cfg->data_dir = v; return 0;
	case OPT_ID: rc = num_opt("id", v, 1, UINT32_MAX, &n); cfg->id = n; break;
	case OPT_MAX_FRAME:
		rc = num_opt("max-frame", v, 64, 64u << 20, &n);
		cfg->max_frame = (uint32_t)n;
		break;
	case OPT_TXN_TIMEOUT:
		rc = dur_opt("txn-timeout", v, 1, UINT32_MAX, &n);
		cfg->txn_timeout_ms = (uint32_t)n;
		break;
	case OPT_PREPARE_TIMEOUT:
		rc = dur_opt("prepare-timeout", v, 1, UINT32_MAX, &n);
		cfg->prepare_timeout_ms = (uint32_t)n;
		break;
	case OPT_MAX_CONNS:
		rc = num_opt("max-conns", v, 1, 1u << 20, &n);
		cfg->max_conns = (uint32_t)n;
		break;
	case OPT_MAX_OPEN:
		rc = num_opt("max-open-txns", v, 1, UINT32_MAX, &n);
		cfg->max_open_txns = (uint32_t)n;
		break;
	case OPT_MAX_PER_CONN:
		rc = num_opt("max-txns-per-conn", v, 1, UINT32_MAX, &n);
		cfg->max_txns_per_conn = (uint32_t)n;
		break;
	case OPT_MAX_PARTS:
		rc = num_opt("max-participants", v, 1, 64, &n);
		cfg->max_parts = (uint32_t)n;
		break;
	case OPT_RETRY_MAX:
		rc = dur_opt("retry-max", v, 1, 3600000, &n);
		cfg->retry_max_ms = (uint32_t)n;
		break;
	case OPT_OUTCOME_RET: rc = dur_opt("outcome-retention", v, 0, UINT64_MAX / 2, &cfg->outcome_retention_ms); break;
	case OPT_KEY_RET: rc = dur_opt("key-retention", v, 0, UINT64_MAX / 2, &cfg->key_retention_ms); break;
	case OPT_GROUP:
		rc = num_opt("group-commit", v, 1, 1u << 20, &n);
		cfg->group_commit_max = (uint32_t)n;
		break;
	case OPT_MAP_SIZE: rc = num_opt("map-size", v, 1u << 20, 1ull << 40, &cfg->map_size); break;
	case OPT_LOG_LEVEL: rc = level_opt(v, &cfg->log_level); break;
	default: return 2;
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct coord_config cfg;
	int c;

	coord_config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "l:d:hV", long_opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			return 0;
		}
		if (c == 'V') {
			printf("tpc-coordinator %s (protocol 1)\n", TPC_VERSION);
			return 0;
		}
		if (c == '?') {
			fputs("Try 'tpc-coordinator --help'.\n", stderr);
			return 2;
		}
		if (apply_opt(&cfg, c, optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "tpc-coordinator: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!cfg.data_dir) {
		fputs("tpc-coordinator: --data DIR is required\nTry 'tpc-coordinator --help'.\n",
		      stderr);
		return 2;
	}
	struct coord_server *s = coord_server_new(&cfg);
	if (!s)
		return 1;
	int rc = coord_server_run(s);
	coord_server_free(s);
	return rc;
}
