/*
 * main.c - tpc-coordinator's command line: the config file and options into struct
 * coord_config (config.c holds the one option table both share, with every default,
 * range and help text; add options there), --help, --check-config, then run. SIGHUP
 * re-reads the same sources (server.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "server.h"
#include "util.h"

/* --help: this synopsis, the option list from the table (config.c), then the notes. */
static const char usage_head[] =
	"Usage: tpc-coordinator --data DIR [options]\n"
	"\n"
	"The tpc two-phase commit coordinator. Keeps its decision log in DIR (LMDB),\n"
	"recovers undelivered decisions on start, and serves clients and participants.\n"
	"\n"
	"Options:\n";

static const char usage_tail[] =
	"\n"
	"Durations need a unit: ms, s, m or h (1.5s too; a bare number other than 0 is\n"
	"an error); sizes take K, M or G. Every option but --config, --check-config,\n"
	"--help and --version is also a key of the config file\n"
	"(packaging/coordinator.conf shows them all).\n"
	"SIGTERM or SIGINT stops it cleanly. SIGHUP reloads the config file and applies\n"
	"the options marked [reload] at once, and reads the TLS certificate, key and CA\n"
	"files again (new connections use them, open ones keep theirs; a bad file keeps\n"
	"the old ones); the rest needs a restart.\n"
	"\n"
	"Examples:\n"
	"  tpc-coordinator --data /var/lib/tpc\n"
	"  tpc-coordinator --config /etc/tpc/coordinator.conf --check-config\n"
	"  tpc-coordinator --data /var/lib/tpc --listen 0.0.0.0:7400 --txn-timeout 5s\n"
	"\n"
	"Environment:\n"
	"  TPC_FAULTS=POINT=ACTION[,...]  arm fault points for failure testing, e.g.\n"
	"                               coord.decision.after_log=crash (SIGKILL itself once\n"
	"                               a COMMIT is durable, before anyone is told); actions\n"
	"                               crash, crash@N, crash%P, delay:MS, fail, fail@N, fail%P;\n"
	"                               see docs/failure-injection.md\n"
	"  TPC_FAULT_SEED=N             seed for probabilistic faults\n";

static void usage(void)
{
	fputs(usage_head, stdout);
	coord_config_help(stdout);
	fputs(usage_tail, stdout);
	tpc_cli_exit_status(stdout, "stopped cleanly, or --check-config found the configuration valid",
			    "could not start or run (the log says why)");
	fputs("  3  lost the leadership of its group (--log etcd): start it again, as a standby\n",
	      stdout);
}

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
	sigset_t old;
	tpc_hold_stop_signals(&old); /* a SIGTERM during start-up stops it cleanly after */
	s = coord_server_new(cfg);
	tpc_release_stop_signals(&old);
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
		usage();
	} else if (cl.version) {
		tpc_cli_version("tpc-coordinator");
	} else {
		rc = configure(&cl, &cfg);
		if (rc == 0)
			rc = cl.check_only ? check_only(&cl, &cfg) : run(&cfg);
	}
	coord_cmdline_free(&cl);
	return rc;
}
