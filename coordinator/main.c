/*
 * main.c - tpc-coordinator's command line: the config file and options into struct
 * coord_config (config.c holds the one option table both share; add options there),
 * --check-config, then run. SIGHUP re-reads the same sources (server.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
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
	"      --max-conns N            connection limit (default 4096); the open-file limit\n"
	"                               is raised to N + 64 at start, or the start is refused\n"
	"                               (exit 2) when the hard limit is lower\n"
	"      --hello-timeout DURATION close a connection that has not said Hello within\n"
	"                               this (default 5s)\n"
	"      --idle-timeout DURATION  close a client connection idle this long with no open\n"
	"                               transaction (default 0: never)\n"
	"      --frame-timeout DURATION close a connection whose frame is not complete this\n"
	"                               long after its first byte, or whose replies make no\n"
	"                               progress this long while it is throttled (default 30s)\n"
	"      --max-output BYTES       stop reading from a peer whose unsent replies exceed\n"
	"                               this, until half are taken (default 4M)\n"
	"      --max-partial-bytes BYTES  bytes of unfinished frames held over all\n"
	"                               connections; past it the sender is closed (default 256M)\n"
	"      --max-txn-timeout DURATION  a Begin asking for a longer timeout_ms is refused\n"
	"                               with ERR_INVALID (default 1h)\n"
	"      --max-participant-names N  participant names known at once; a Hello with a\n"
	"                               new name past it gets ERR_LIMIT (default 65536)\n"
	"      --max-open-txns N        open transaction limit (default 1000000)\n"
	"      --max-txns-per-conn N    open transactions per client connection (default 100000)\n"
	"      --max-participants N     participants per transaction (default 32, max 64)\n"
	"      --retry-max DURATION     cap of the decision resend backoff (default 10s)\n"
	"      --outcome-retention DURATION  how long a completed commit still answers\n"
	"                               status queries (default 10m; 0: forget at once)\n"
	"      --key-retention DURATION how long client transaction keys are kept (default 24h)\n"
	"      --audit-retention DURATION  how long operator audit entries are kept\n"
	"                               (default 2160h, 90 days; 0: for ever)\n"
	"      --group-commit N         records per log batch; 1 turns group commit off\n"
	"                               (default 4096)\n"
	"      --map-size BYTES         LMDB map size (default 1G)\n"
	"      --log-level LEVEL        debug, info, warn or error (default info)\n"
	"      --admin HOST:PORT|off    admin HTTP API and /metrics (default 127.0.0.1:7401;\n"
	"                               see docs/admin-api.md)\n"
	"      --admin-token-file FILE  bearer token (the file's first line) required by\n"
	"                               mutating admin calls\n"
	"      --stuck-after DURATION   flag a COMMIT not delivered within this (default 30s)\n"
	"      --allow-fault-injection  let the admin API arm fault points at run time\n"
	"      --require-txn-token      refuse a Join without its transaction's token\n"
	"                               (BeginReply.txn_token; default off, for trusted\n"
	"                               setups: turn it on in an untrusted network)\n"
	"      --sweep-interval DURATION  how often log compaction runs (default 10s)\n"
	"      --sweep-limit N          entries one compaction pass deletes per table; a pass\n"
	"                               that reaches it is followed at once by another\n"
	"                               (default 10000)\n"
	"      --tls-cert FILE          this server's certificate (PEM); turns TLS on for\n"
	"                               the protocol port and the admin API\n"
	"      --tls-key FILE           its private key (PEM)\n"
	"      --tls-ca FILE            CA every peer's certificate must be signed by;\n"
	"                               peers must present one (mutual TLS). A\n"
	"                               participant's Hello name must equal its\n"
	"                               certificate's CN\n"
	"      --tls required|off       required: every connection is TLS, a plaintext\n"
	"                               peer is closed unanswered (default: required once\n"
	"                               --tls-cert is given, else off)\n"
	"      --config FILE            read options from an INI file first (keys are the\n"
	"                               long option names: txn-timeout = 5s); the command\n"
	"                               line overrides it; SIGHUP re-reads it\n"
	"      --check-config           check the options and the file, print the resulting\n"
	"                               configuration, and exit (0 valid, 2 not)\n"
	"  -h, --help                   show this help\n"
	"  -V, --version                show the version\n"
	"\n"
	"Durations take ms, s, m or h (a bare number is milliseconds); sizes take K, M, G.\n"
	"SIGTERM or SIGINT stops it cleanly. SIGHUP reloads the config file and applies\n"
	"what can change at run time (log-level, txn-timeout, prepare-timeout, retry-max,\n"
	"outcome-retention, key-retention, audit-retention, sweep-interval, sweep-limit, stuck-after, admin-token-file,\n"
	"require-txn-token, the max-conns/max-open-txns/max-txns-per-conn limits, the timeouts\n"
	"hello, idle, frame and max-txn, max-output, max-partial-bytes, max-participant-names)\n"
	"and reads the TLS certificate, key and CA files again (new connections use them, open\n"
	"ones keep theirs; a bad file keeps the old ones); the rest needs a restart.\n"
	"\n"
	"Environment:\n"
	"  TPC_FAULTS=POINT=ACTION[,...]  arm fault points for failure testing, e.g.\n"
	"                               coord.decision.after_log=crash (SIGKILL itself once\n"
	"                               a COMMIT is durable, before anyone is told); actions\n"
	"                               crash, crash@N, crash%P, delay:MS, fail, fail@N, fail%P;\n"
	"                               see docs/failure-injection.md\n"
	"  TPC_FAULT_SEED=N             seed for probabilistic faults\n";

/* --check-config: say so, show what the server would run with, touch nothing. */
static int check_only(const struct coord_cmdline *cl, const struct coord_config *cfg)
{
	printf("# tpc-coordinator: the configuration is valid (%s%s)\n",
	       cl->config_path ? cl->config_path : "no config file",
	       cl->nset ? ", then the command line" : "");
	coord_config_dump(cfg, stdout);
	return 0;
}

static int configure(struct coord_cmdline *cl, struct coord_config *cfg)
{
	char err[512];

	coord_config_defaults(cfg);
	if (coord_config_build(cl, cfg, err, sizeof(err)) ||
	    coord_config_check(cfg, err, sizeof(err))) {
		fprintf(stderr, "tpc-coordinator: %s\n", err);
		return 2;
	}
	cfg->cmdline = cl;
	return 0;
}

static int run(struct coord_config *cfg)
{
	struct coord_server *s;
	char err[512];
	int rc = coord_fd_limit_fit(cfg->max_conns, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "tpc-coordinator: %s\n", err);
	if (rc < 0)
		return 2;
	s = coord_server_new(cfg);
	if (!s)
		return 1;
	rc = coord_server_run(s);
	coord_server_free(s);
	return rc;
}

int main(int argc, char **argv)
{
	struct coord_cmdline cl;
	struct coord_config cfg;
	char err[256];
	int rc = 0;

	if (coord_cmdline_parse(&cl, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "tpc-coordinator: %s\nTry 'tpc-coordinator --help'.\n", err);
		rc = 2;
	} else if (cl.help) {
		fputs(usage_text, stdout);
	} else if (cl.version) {
		printf("tpc-coordinator %s (protocol 1)\n", TPC_VERSION);
	} else {
		rc = configure(&cl, &cfg);
		if (rc == 0)
			rc = cl.check_only ? check_only(&cl, &cfg) : run(&cfg);
	}
	coord_cmdline_free(&cl);
	return rc;
}
