/*
 * kv_cli.c - `tpc-kv put` and `tpc-kv get`: tpc-kv as a client of a running tpc-kv
 * (tools/lib/kvclient.c on a private event loop), so a person can stage a write in a
 * transaction begun with `tpcctl txn begin`, and read what committed.
 */
#include "kv_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cli.h"
#include "kvclient.h"
#include "tls.h"
#include "tpc/common.h"
#include "tpc.pb-c.h"
#include "util.h"

#define PROG "tpc-kv"

struct kv_call {
	const char *kv;              /* --kv HOST:PORT */
	uint64_t txid;               /* put: --txid */
	uint8_t token[TPC_TXN_TOKEN_LEN];
	int has_token;
	uint64_t timeout_ms;
	struct tpc_tls_files tls;
	struct event_base *base;
	int rc;                      /* the exit status once the reply came */
};

static const char usage_text[] =
	"Usage: tpc-kv put [--kv HOST:PORT] --txid N [--token HEX] KEY VALUE\n"
	"       tpc-kv get [--kv HOST:PORT] KEY\n"
	"\n"
	"A client of a running tpc-kv. put stages KEY=VALUE in transaction N (begun with\n"
	"'tpcctl txn begin', which prints N and its token); it is applied once the\n"
	"transaction commits. get prints KEY's committed value.\n"
	"\n"
	"  -k, --kv HOST:PORT         the tpc-kv service (default $TPC_KV, else\n"
	"                             127.0.0.1:7500)\n"
	"      --txid N               put: the transaction\n"
	"      --token HEX            put: its token (32 hex digits; needed by a tpc-kv\n"
	"                             with --require-txn-token)\n"
	"      --timeout DURATION     give up after this long (default 10s)\n"
	"      --tls-cert FILE, --tls-key FILE, --tls-ca FILE  mutual TLS to tpc-kv\n"
	"  -h, --help\n";

static void put_done(void *arg, int err, uint64_t txid)
{
	struct kv_call *k = arg;

	if (err) {
		fprintf(stderr, PROG ": put in txn %llu: %s\n", (unsigned long long)txid,
			tpc_strerror(err));
		k->rc = 1;
	} else {
		printf("staged in txn %llu\n", (unsigned long long)txid);
		k->rc = 0;
	}
	event_base_loopbreak(k->base);
}

static void get_done(void *arg, int err, const struct Tpc__KvGetReply *r)
{
	struct kv_call *k = arg;

	if (err) {
		fprintf(stderr, PROG ": get: %s\n", tpc_strerror(err));
		k->rc = 1;
	} else if (!r->found) {
		fprintf(stderr, PROG ": get: not found\n");
		k->rc = 3;
	} else {
		fwrite(r->value.data, 1, r->value.len, stdout);
		putchar('\n');
		k->rc = 0;
	}
	event_base_loopbreak(k->base);
}

static int parse_token(struct kv_call *k, const char *v)
{
	if (strlen(v) != 2 * TPC_TXN_TOKEN_LEN)
		return tpc_cli_bad_value(PROG, "--token", v, "32 hex digits");
	for (int i = 0; i < TPC_TXN_TOKEN_LEN; i++) {
		unsigned b;
		if (sscanf(v + 2 * i, "%2x", &b) != 1)
			return tpc_cli_bad_value(PROG, "--token", v, "32 hex digits");
		k->token[i] = (uint8_t)b;
	}
	k->has_token = 1;
	return 0;
}

enum { OPT_TXID = 256, OPT_TOKEN, OPT_TIMEOUT, OPT_CERT, OPT_KEY, OPT_CA };

static int take(struct kv_call *k, int c, const char *v)
{
	switch (c) {
	case 'k': k->kv = v; return 0;
	case OPT_TXID:
		return tpc_parse_u64(v, 1, UINT64_MAX, &k->txid)
			       ? tpc_cli_bad_value(PROG, "--txid", v, "a transaction id")
			       : 0;
	case OPT_TOKEN: return parse_token(k, v);
	case OPT_TIMEOUT: return tpc_cli_duration(PROG, "--timeout", v, 1, 3600000, &k->timeout_ms);
	case OPT_CERT: k->tls.cert = v; return 0;
	case OPT_KEY: k->tls.key = v; return 0;
	case OPT_CA: k->tls.ca = v; return 0;
	}
	return TPC_EXIT_USAGE;
}

static int parse(struct kv_call *k, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kv", required_argument, NULL, 'k' },
		{ "txid", required_argument, NULL, OPT_TXID },
		{ "token", required_argument, NULL, OPT_TOKEN },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "tls-cert", required_argument, NULL, OPT_CERT },
		{ "tls-key", required_argument, NULL, OPT_KEY },
		{ "tls-ca", required_argument, NULL, OPT_CA },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:h", opts, NULL)) != -1) {
		if (c == '?' || c == ':')
			return tpc_cli_getopt_error(PROG, c, argv);
		if (c == 'h') {
			fputs(usage_text, stdout);
			tpc_cli_exit_status(stdout, "staged, or the value printed",
					    "tpc-kv refused or could not be reached");
			fputs("  3  get: no such key\n", stdout);
			return -1;
		}
		if ((rc = take(k, c, optarg)) != 0)
			return rc;
	}
	return 0;
}

/* Send the request, run the loop until its reply. */
static int call(struct kv_call *k, int put, char **words)
{
	char err[256];
	struct kvc *c = kvc_new(k->base, k->kv, (uint32_t)k->timeout_ms);
	int rc;

	if (!c)
		return tpc_cli_bad_value(PROG, "--kv", k->kv, "HOST:PORT");
	if (kvc_set_tls(c, &k->tls, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s\n", err);
		kvc_free(c);
		return 1;
	}
	k->rc = 1;
	rc = put ? kvc_put_token(c, k->txid, k->has_token ? k->token : NULL, words[0],
				 strlen(words[0]), words[1], strlen(words[1]), put_done, k)
		 : kvc_get(c, words[0], strlen(words[0]), get_done, k);
	if (rc) {
		fprintf(stderr, PROG ": %s: %s\n", k->kv, tpc_strerror(rc));
	} else {
		event_base_dispatch(k->base);
		rc = k->rc;
	}
	kvc_free(c);
	return rc ? (rc < 0 ? 1 : rc) : 0;
}

int kv_cli_main(int argc, char **argv)
{
	struct kv_call k = { .kv = getenv("TPC_KV"), .timeout_ms = 10000 };
	int put = strcmp(argv[0], "put") == 0, rc;

	if (!k.kv || !*k.kv)
		k.kv = "127.0.0.1:7500";
	rc = parse(&k, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (argc - optind != (put ? 2 : 1))
		return tpc_usage_error(PROG, "%s takes %s", argv[0], put ? "KEY VALUE" : "KEY");
	if (put && !k.txid)
		return tpc_usage_error(PROG, "put needs --txid N (from 'tpcctl txn begin')");
	k.base = event_base_new();
	if (!k.base)
		return 1;
	rc = call(&k, put, argv + optind);
	event_base_free(k.base);
	return rc;
}
